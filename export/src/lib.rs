//! Training (tch, behind a feature) and the libtorch-free ONNX writer for libbridge model packages.

#[cfg(feature = "train")]
pub mod train;

pub mod data;
pub mod degrade;

pub mod error;
/// Small ONNX model packages written with the graph builder for tests, examples and demos (no libtorch needed).
pub mod fixtures;
pub mod memcap;
pub mod objective;
pub mod onnx;
pub mod onnx_ops;
pub mod ops;
pub mod package;
pub mod proto;
pub mod reference;
pub mod unet;
pub mod weights;

pub use error::{Error, Result};
pub use onnx_ops::{unet_graph, unet_graph_from_weights};
pub use ops::{Init, Ops, ParamSpec};
pub use unet::{UNetConfig, unet_forward};
pub use weights::{InitMode, Weights};
