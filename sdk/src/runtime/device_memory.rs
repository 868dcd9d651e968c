//! Caller buffers in device memory: byte copies between them and the host through ONNX
//! Runtime (a one-node `Identity` graph for reads, `ort`'s IO-binding copy for writes, as the
//! device loop's transfers), so libbridge needs no CUDA runtime library of its own.
//!
//! A restore from device memory stages each plane on the host (one device→host copy), runs the
//! usual conversion and restore, and writes each output plane back (a device→host copy of the
//! plane, so its row padding survives, then a host→device copy). The pixels are exactly those
//! of the host path; the cost is the copies (a 1080p NV12 frame is 3 MB each way), small next
//! to a network run. Where the restore allows it, `bridge_restore_planes` avoids these copies:
//! [`super::device_pixels`] converts the frame on the device and
//! `Restorer::restore_frame_on_device` keeps it there.
//!
//! [`Memory::Host`] takes the same copy path with host memory (ONNX Runtime's CPU provider),
//! so CPU-only tests exercise everything but the CUDA provider itself.

use super::ep::{CudaOptions, ExecutionProvider};
use super::{env, step_graph};
use crate::{Error, Result};
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::value::{Shape, Tensor as OrtTensor, TensorRefMut};
use std::sync::Mutex;

/// Where a caller's buffer lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Memory {
    /// Host memory, copied by ONNX Runtime's CPU provider (tests take the device path with it).
    Host,
    /// CUDA device memory of this device ordinal (needs the `cuda` feature and the CUDA
    /// provider libraries).
    Cuda {
        /// The CUDA device ordinal.
        device_id: i32,
    },
}

impl Memory {
    fn device(self) -> (AllocationDevice<'static>, i32) {
        match self {
            Memory::Host => (AllocationDevice::CPU, 0),
            Memory::Cuda { device_id } => (AllocationDevice::CUDA, device_id),
        }
    }

    fn info(self) -> Result<MemoryInfo<'static>> {
        let (device, id) = self.device();
        MemoryInfo::new(device, id, AllocatorType::Device, MemoryType::Default).map_err(|e| copy_error(self, "memory info", e))
    }
}

fn copy_error(m: Memory, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Runtime(format!("{what} ({m:?} memory): {e}"))
}

/// Bytes as a rank-1 tensor shape; `len` ≤ `isize::MAX` for any real buffer.
fn shape(len: usize) -> Result<Shape> {
    let n = i64::try_from(len).map_err(|_| Error::param("buffer", format!("{len} bytes do not fit a tensor")))?;
    Ok(Shape::new([n]))
}

/// The sessions of [`download`], one per memory (built on first use, kept for the process).
static COPY_SESSIONS: Mutex<Vec<(Memory, Session)>> = Mutex::new(Vec::new());

/// Copy `len` bytes at `src` in `memory` into a new host vector. ONNX Runtime's environment
/// must exist (any restorer created it).
///
/// A one-node `Identity` graph ([`step_graph::identity_u8`]) on `memory`'s provider, run with
/// the caller's buffer as its input and without IO binding: ONNX Runtime then returns the
/// output in host memory. (`ort`'s own `copy_into` cannot take a borrowed buffer as its source:
/// binding it clones it through the same copy session, which deadlocks in `ort` 2.0.0-rc.15.)
///
/// # Safety
/// `src` must point to `len` readable bytes in `memory`, not written by anyone during the call.
pub unsafe fn download(src: *const u8, len: usize, memory: Memory) -> Result<Vec<u8>> {
    let input = unsafe { TensorRefMut::<u8>::from_raw(memory.info()?, src.cast_mut().cast(), shape(len)?) }
        .map_err(|e| copy_error(memory, "wrapping the source", e))?;
    let mut sessions = COPY_SESSIONS.lock().unwrap_or_else(|p| p.into_inner());
    let k = match sessions.iter().position(|(m, _)| *m == memory) {
        Some(k) => k,
        None => {
            sessions.push((memory, copy_session(memory)?));
            sessions.len() - 1
        }
    };
    let out = sessions[k].1.run(ort::inputs![input]).map_err(|e| copy_error(memory, "device→host copy", e))?;
    let (_, bytes) = out[0].try_extract_tensor::<u8>().map_err(|e| copy_error(memory, "device→host copy", e))?;
    if bytes.len() != len {
        return Err(copy_error(memory, "device→host copy", format!("{} bytes came back, {len} expected", bytes.len())));
    }
    Ok(bytes.to_vec())
}

fn copy_session(memory: Memory) -> Result<Session> {
    let environment = env::environment(None)?;
    let mut b = Session::builder(&environment).map_err(|e| copy_error(memory, "copy session", e))?;
    b = b.with_intra_threads(1).map_err(|e| copy_error(memory, "copy session", e))?;
    if let Memory::Cuda { device_id } = memory {
        let eps = ExecutionProvider::Cuda(CudaOptions { device_id, ..CudaOptions::default() }).dispatch()?;
        b = b.with_execution_providers(eps).map_err(|e| Error::ProviderUnavailable { provider: "cuda".into(), reason: e.to_string() })?;
    }
    b.commit_from_memory(&step_graph::identity_u8()).map_err(|e| copy_error(memory, "copy session", e))
}

/// Copy `src` to `dst` in `memory`.
///
/// # Safety
/// `dst` must point to `src.len()` writable bytes in `memory`, not accessed by anyone else
/// during the call.
pub unsafe fn upload(src: &[u8], dst: *mut u8, memory: Memory) -> Result<()> {
    let host = OrtTensor::from_array((shape(src.len())?, src.to_vec())).map_err(|e| copy_error(memory, "host buffer", e))?;
    let dev = unsafe { TensorRefMut::<u8>::from_raw(memory.info()?, dst.cast(), shape(src.len())?) }
        .map_err(|e| copy_error(memory, "wrapping the target", e))?;
    host.copy_into(dev).map_err(|e| copy_error(memory, "host→device copy", e))
}

/// Bytes in `memory` that ONNX Runtime allocated: a device buffer for tests and checks (a host
/// application brings its own, e.g. from its camera stack).
pub struct DeviceBytes {
    value: OrtTensor<u8>,
    memory: Memory,
}

impl std::fmt::Debug for DeviceBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBytes").field("memory", &self.memory).field("len", &self.len()).finish()
    }
}

impl DeviceBytes {
    /// A copy of `bytes` in `memory`. ONNX Runtime's environment must exist.
    pub fn from_host(bytes: &[u8], memory: Memory) -> Result<Self> {
        let host = OrtTensor::from_array((shape(bytes.len())?, bytes.to_vec())).map_err(|e| copy_error(memory, "host buffer", e))?;
        let (device, id) = memory.device();
        let value = host.to(device, id).map_err(|e| copy_error(memory, "host→device copy", e))?;
        Ok(DeviceBytes { value, memory })
    }

    /// The buffer's address in its memory.
    pub fn ptr(&mut self) -> *mut u8 {
        self.value.data_ptr_mut().cast()
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.value.shape().iter().product::<i64>() as usize
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A host copy of the bytes.
    pub fn to_host(&self) -> Result<Vec<u8>> {
        let host = self.value.to(AllocationDevice::CPU, 0).map_err(|e| copy_error(self.memory, "device→host copy", e))?;
        Ok(host.extract_tensor().1.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copy path on the CPU provider: bytes survive a round trip, partial writes land at the
    /// right offset and leave the rest alone.
    #[test]
    fn host_memory_takes_the_copy_path() {
        bridge_export::fixtures::ensure_ort();
        crate::runtime::env::environment(None).unwrap();
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut d = DeviceBytes::from_host(&bytes, Memory::Host).unwrap();
        assert_eq!(d.len(), 1000);
        assert_eq!(d.to_host().unwrap(), bytes);
        let p = d.ptr();
        assert_eq!(unsafe { download(p.add(100), 50, Memory::Host) }.unwrap(), &bytes[100..150]);
        unsafe { upload(&[9u8; 20], p.add(10), Memory::Host) }.unwrap();
        let back = d.to_host().unwrap();
        assert!(back[10..30].iter().all(|&b| b == 9));
        assert_eq!(&back[..10], &bytes[..10]);
        assert_eq!(&back[30..], &bytes[30..]);
    }
}
