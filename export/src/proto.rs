//! The ONNX protobuf messages (`ModelProto`, `GraphProto`, `NodeProto`, `TensorProto`, …), generated at
//! build time from the vendored `proto/onnx.proto` (Apache-2.0, see `proto/README.md`).
//!
//! Decode a written model with `prost::Message::decode`, e.g. to inspect its metadata in tests.
#![allow(clippy::all, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
