//! Choosing the training device.
//!
//! The project's libtorch (`scripts/install-torch.sh`) ships no `libtorch_cuda.so`, so the binary
//! never links it and runs on CPU-only machines. On a GPU machine the CUDA backend is brought in at
//! run time: `dlopen("libtorch_cuda.so", RTLD_GLOBAL)` runs its static initializers, which register
//! the CUDA hooks with libtorch_cpu. The library (and its CUDA dependencies through its own RPATH) is
//! found on `LD_LIBRARY_PATH`, e.g. a GPU machine's own PyTorch 2.11 `torch/lib`
//! (`BRIDGE_TORCH_LIB=... scripts/with-torch.sh ...`).
//!
//! libtorch caches its CUDA hooks on first use, so [`load_cuda`] must run before anything asks
//! libtorch about CUDA; [`best_device`] does both in the right order.

use std::ffi::{CStr, CString};
use std::sync::OnceLock;

static CUDA: OnceLock<Result<(), String>> = OnceLock::new();

/// Load `libtorch_cuda.so` once per process. `Err` carries the loader's message (library absent,
/// or one of its CUDA dependencies missing, e.g. a PyTorch installed without its NVIDIA wheels).
/// Loading succeeds on a GPU-less machine too if the libraries are there; whether a GPU is usable
/// is [`best_device`]'s question.
pub fn load_cuda() -> Result<(), String> {
    CUDA.get_or_init(|| {
        let name = CString::new("libtorch_cuda.so").map_err(|e| e.to_string())?;
        // SAFETY: dlopen with a valid NUL-terminated name; the handle is deliberately never closed
        // (the CUDA backend stays registered for the life of the process).
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if handle.is_null() {
            // SAFETY: dlerror returns NULL or a valid C string owned by the loader.
            let msg = unsafe { libc::dlerror() };
            // The loader's message may name only a missing dependency (`libcusparse.so.12: …`),
            // so say which library was being loaded.
            let msg =
                if msg.is_null() { "unknown error".to_owned() } else { unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned() };
            return Err(format!("dlopen(libtorch_cuda.so): {msg}"));
        }
        Ok(())
    })
    .clone()
}

/// CUDA device 0 when libtorch_cuda loads and sees a GPU, else the CPU.
pub fn best_device() -> tch::Device {
    if load_cuda().is_ok() && tch::Cuda::is_available() { tch::Device::Cuda(0) } else { tch::Device::Cpu }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a loadable libtorch_cuda (absent, or present without its CUDA libraries) the answer
    /// is the CPU, not a crash; with it and a GPU (the lent GPU machine) the answer must be CUDA and
    /// a tensor must round-trip through it.
    #[test]
    fn best_device_matches_loadability() {
        let dev = best_device();
        match load_cuda() {
            Err(msg) => {
                assert!(msg.starts_with("dlopen(libtorch_cuda.so): ") && msg.len() > 26, "loader message: {msg}");
                assert_eq!(dev, tch::Device::Cpu);
            }
            Ok(()) if tch::Cuda::is_available() => {
                assert_eq!(dev, tch::Device::Cuda(0));
                let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]).to_device(dev);
                let back: Vec<f32> = Vec::try_from((&t * 2.0).to_device(tch::Device::Cpu)).unwrap();
                assert_eq!(back, vec![2.0, 4.0, 6.0]);
            }
            Ok(()) => assert_eq!(dev, tch::Device::Cpu),
        }
    }
}
