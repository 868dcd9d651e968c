//! Execution providers: CPU always; CUDA and TensorRT behind the `cuda` / `tensorrt` features.
//!
//! A GPU provider is registered with `error_on_failure()`: ONNX Runtime otherwise falls back to
//! the CPU *silently* when the provider library (or CUDA, cuDNN, TensorRT) is missing, and
//! `is_available()` says yes even then. A failed registration is [`Error::ProviderUnavailable`];
//! the session builder falls back to the CPU only when the caller allowed it
//! ([`crate::runtime::SessionConfig::cpu_fallback`]).
//!
//! The GPU paths compile (`cargo check -p bridge --features cuda,tensorrt`) but have not been
//! run on a GPU by this project yet; see `docs/model-package.md`.

use crate::{Error, Result};
use std::path::PathBuf;

/// Options of the CUDA execution provider.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CudaOptions {
    /// CUDA device ordinal.
    pub device_id: i32,
    /// Capture the network in a CUDA graph and replay it (needs fixed input shapes and
    /// device-resident inputs; ONNX Runtime rejects it otherwise).
    pub cuda_graph: bool,
    /// Allow TF32 matrix maths on Ampere and newer (faster, ~1e-3 relative error).
    pub tf32: bool,
    /// Limit of the device memory arena in bytes (`None`: ONNX Runtime's default).
    pub memory_limit: Option<usize>,
}

/// Options of the TensorRT execution provider (CUDA is registered after it for the nodes
/// TensorRT does not take).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorRtOptions {
    /// CUDA device ordinal.
    pub device_id: i32,
    /// Build fp16 engines.
    pub fp16: bool,
    /// Cache built engines (and the timing cache) in this folder. Engines depend on the input
    /// shapes: keep the tile size fixed so one engine serves every image (a first build can
    /// take minutes on a Jetson).
    pub engine_cache_dir: Option<PathBuf>,
    /// Capture the engine in a CUDA graph.
    pub cuda_graph: bool,
    /// Maximum TensorRT workspace in bytes (`None`: default).
    pub max_workspace: Option<usize>,
}

/// Where the network runs.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum ExecutionProvider {
    /// ONNX Runtime's CPU provider (always available).
    #[default]
    Cpu,
    /// NVIDIA CUDA (feature `cuda`).
    Cuda(CudaOptions),
    /// NVIDIA TensorRT (feature `tensorrt`).
    TensorRt(TensorRtOptions),
}

impl ExecutionProvider {
    /// `"cpu"`, `"cuda"` or `"tensorrt"`.
    pub fn name(&self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "cpu",
            ExecutionProvider::Cuda(_) => "cuda",
            ExecutionProvider::TensorRt(_) => "tensorrt",
        }
    }

    /// Parse `cpu`, `cuda` or `tensorrt` (default options).
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "cpu" => Ok(ExecutionProvider::Cpu),
            "cuda" => Ok(ExecutionProvider::Cuda(CudaOptions::default())),
            "tensorrt" | "trt" => Ok(ExecutionProvider::TensorRt(TensorRtOptions::default())),
            other => Err(Error::param("execution provider", format!("`{other}` is not one of cpu, cuda, tensorrt"))),
        }
    }

    /// Whether this build of libbridge can register the provider at all.
    pub fn compiled_in(&self) -> bool {
        match self {
            ExecutionProvider::Cpu => true,
            ExecutionProvider::Cuda(_) => cfg!(feature = "cuda"),
            ExecutionProvider::TensorRt(_) => cfg!(feature = "tensorrt"),
        }
    }

    /// The `ort` dispatch list for this provider, each with `error_on_failure()`.
    pub(crate) fn dispatch(&self) -> Result<Vec<ort::ep::ExecutionProviderDispatch>> {
        match self {
            ExecutionProvider::Cpu => Ok(Vec::new()),
            ExecutionProvider::Cuda(o) => cuda_dispatch(o),
            ExecutionProvider::TensorRt(o) => tensorrt_dispatch(o),
        }
    }
}

#[cfg(not(all(feature = "cuda", feature = "tensorrt")))]
fn not_compiled(provider: &str, feature: &str) -> Error {
    Error::ProviderUnavailable {
        provider: provider.into(),
        reason: format!("libbridge was built without the `{feature}` feature (rebuild with `--features {feature}`)"),
    }
}

#[cfg(feature = "cuda")]
fn cuda_ep(o: &CudaOptions) -> ort::ep::CUDA {
    let mut ep = ort::ep::CUDA::default().with_device_id(o.device_id).with_cuda_graph(o.cuda_graph).with_tf32(o.tf32);
    if let Some(l) = o.memory_limit {
        ep = ep.with_memory_limit(l);
    }
    ep
}

#[cfg(feature = "cuda")]
fn cuda_dispatch(o: &CudaOptions) -> Result<Vec<ort::ep::ExecutionProviderDispatch>> {
    Ok(vec![cuda_ep(o).build().error_on_failure()])
}

#[cfg(not(feature = "cuda"))]
fn cuda_dispatch(_: &CudaOptions) -> Result<Vec<ort::ep::ExecutionProviderDispatch>> {
    Err(not_compiled("cuda", "cuda"))
}

#[cfg(feature = "tensorrt")]
fn tensorrt_dispatch(o: &TensorRtOptions) -> Result<Vec<ort::ep::ExecutionProviderDispatch>> {
    let mut trt = ort::ep::TensorRT::default().with_device_id(o.device_id).with_fp16(o.fp16).with_cuda_graph(o.cuda_graph);
    if let Some(dir) = &o.engine_cache_dir {
        // `ort` panics on a NUL inside an option string: check first.
        let s = dir
            .to_str()
            .filter(|s| !s.contains('\0'))
            .ok_or_else(|| Error::param("engine_cache_dir", "must be valid UTF-8 without NUL"))?;
        std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: s.to_string(), source: e })?;
        trt = trt.with_engine_cache(true).with_engine_cache_path(s).with_timing_cache(true).with_timing_cache_path(s);
    }
    if let Some(w) = o.max_workspace {
        trt = trt.with_max_workspace_size(w);
    }
    let cuda = CudaOptions { device_id: o.device_id, ..CudaOptions::default() };
    Ok(vec![trt.build().error_on_failure(), cuda_ep(&cuda).build().error_on_failure()])
}

#[cfg(not(feature = "tensorrt"))]
fn tensorrt_dispatch(_: &TensorRtOptions) -> Result<Vec<ort::ep::ExecutionProviderDispatch>> {
    Err(not_compiled("tensorrt", "tensorrt"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_names() {
        assert_eq!(ExecutionProvider::parse("CPU").unwrap(), ExecutionProvider::Cpu);
        assert_eq!(ExecutionProvider::parse("cuda").unwrap().name(), "cuda");
        assert_eq!(ExecutionProvider::parse("trt").unwrap().name(), "tensorrt");
        assert!(matches!(ExecutionProvider::parse("rocm"), Err(Error::InvalidParam { .. })));
    }

    /// Without the feature, asking for a GPU provider is a typed error, not a silent CPU run.
    #[test]
    fn missing_feature_is_typed() {
        let cuda = ExecutionProvider::Cuda(CudaOptions::default());
        if !cuda.compiled_in() {
            assert!(matches!(cuda.dispatch(), Err(Error::ProviderUnavailable { .. })));
        } else {
            assert_eq!(cuda.dispatch().unwrap().len(), 1);
        }
        assert!(ExecutionProvider::Cpu.dispatch().unwrap().is_empty());
    }
}
