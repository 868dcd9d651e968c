//! Running packaged networks with ONNX Runtime.
//!
//! * [`env`] — finds `libonnxruntime` and keeps the one process-global environment.
//! * [`ep`] — execution providers (CPU; CUDA and TensorRT behind features).
//! * [`package`] — the model-package metadata schema and its checks against the graph.
//! * [`model_package`] — [`ModelPackage`]: a package read once, validated fully, owning its bytes.
//! * [`onnx_proto`] — the metadata and graph signature read from ONNX bytes (bounded).
//! * [`session`] — [`OnnxDenoiser`], a session as a [`crate::Denoiser`].
//! * [`cancel`] — [`CancelToken`], which also stops a network run mid-way.
//! * [`families`] — package metadata → family and sampler.
//! * [`conventions`] — time input, class label and generator noise checked against the family.
//! * [`device`] — the device-resident sampling loop (IO binding + [`step_graph`]).
//! * [`tile_graph`] — the crop and blend graphs of the device loop for tiled frames.
//! * [`device_memory`] — caller buffers in CUDA memory, copied to and from the host through ONNX Runtime.

pub mod cancel;
pub mod conventions;
pub mod device;
pub mod device_memory;
pub mod device_pixels;
pub mod env;
pub mod ep;
pub mod families;
pub mod model_package;
pub mod onnx_proto;
pub mod package;
pub mod pixel_graph;
pub mod session;
pub mod step_graph;
pub mod tile_graph;

pub use cancel::CancelToken;
pub use device::{DeviceLoop, SamplingLoop};
pub use ep::{CudaOptions, ExecutionProvider, TensorRtOptions};
pub use families::{build_family, parse_sampler, sampler_label};
pub use model_package::ModelPackage;
/// The `ort` crate the device APIs take values of ([`DeviceLoop::sample_values`],
/// [`device_pixels`]), so callers build them with the same version.
pub use ort;
pub use package::{ChannelOrder, IoNames, MeanNetwork, PackageMeta, TileHint, TimeInput, Upsample};
pub use session::{OnnxDenoiser, SessionConfig};
