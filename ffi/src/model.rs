//! Model packages: loading (from a file or from memory) and queries.

use crate::handles::{self, bridge_model};
use crate::status::{Failure, bridge_status, cstring, guard, path_arg, put};
use sdk::runtime::{ModelPackage, OnnxDenoiser, PackageMeta, SessionConfig, onnx_proto};
use std::ffi::{CString, c_char, c_void};
use std::sync::Arc;

/// A validated package (immutable, shared): it owns the package's bytes (and NADB's mean
/// network's), from which every restorer builds its sessions.
pub(crate) struct Model {
    pub(crate) package: Arc<ModelPackage>,
    pub(crate) meta: PackageMeta,
    family: CString,
    sampler: CString,
}

/// The label of a package loaded from memory (in messages).
pub(crate) const MEMORY_LABEL: &str = "<model in memory>";

impl Model {
    fn new(package: ModelPackage) -> Self {
        let meta = package.meta().clone();
        let family = cstring(&meta.family);
        let sampler = cstring(&meta.sampler);
        Model { package: Arc::new(package), meta, family, sampler }
    }
}

/// The session used to check at load time that ONNX Runtime accepts the package: one thread,
/// CPU.
fn probe_config() -> SessionConfig {
    SessionConfig { threads: 1, ..SessionConfig::default() }
}

/// Everything `bridge_model_load*` checks: the package itself ([`ModelPackage`]: metadata,
/// graph signature, family, default sampler, mean network), then that ONNX Runtime loads its
/// networks.
fn validate(package: ModelPackage) -> Result<Model, Failure> {
    let cfg = probe_config();
    let probed = OnnxDenoiser::from_package(&package, &cfg).and_then(|_| match (package.mean_network(), &package.meta().mean_network) {
        (Some(file), Some(m)) => {
            let meta = package.meta();
            let shown = file.path.display().to_string();
            OnnxDenoiser::from_memory_with_io(&file.bytes, &shown, &m.io, meta.channels, meta.spatial_multiple, &cfg).map(drop)
        }
        _ => Ok(()),
    });
    crate::release_runtime_at_exit();
    probed?;
    Ok(Model::new(package))
}

unsafe fn out_arg<'a>(out: *mut *mut bridge_model) -> Result<&'a mut *mut bridge_model, Failure> {
    if out.is_null() {
        return Err(Failure::null("out"));
    }
    // SAFETY: non-NULL; the caller promises it is writable.
    let out = unsafe { &mut *out };
    *out = std::ptr::null_mut();
    Ok(out)
}

/// Load a model package (an ONNX file with libbridge metadata, see docs/model-package.md) from
/// `path`. The file (and a NADB package's mean network) is read once and validated fully: the
/// metadata, the graph's inputs and outputs, the family, the default sampler, the mean network's
/// place and SHA-256, and that ONNX Runtime loads it on the CPU. A package that loads can run.
/// Each restorer then builds its own sessions from the model's copy of the bytes, on its
/// execution provider: the file may be deleted or replaced afterwards. The first load also loads
/// ONNX Runtime (see `bridge_set_onnxruntime_library` for where it is searched).
///
/// On success `*out` receives a model handle; on failure `*out` is set to NULL (when `out` is
/// not NULL). Errors: `BRIDGE_ERR_NULL_ARGUMENT`, `BRIDGE_ERR_IO` (missing file),
/// `BRIDGE_ERR_MODEL` (not a valid package), `BRIDGE_ERR_RUNTIME_NOT_FOUND`.
///
/// Ownership: `path` is read during the call only; the caller owns the returned model and frees
/// it with `bridge_model_free`. Thread-safety: any thread; the model may then be shared by any
/// number of threads.
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bridge_model_load(path: *const c_char, out: *mut *mut bridge_model) -> bridge_status {
    guard(|| {
        let out = unsafe { out_arg(out)? };
        let path = unsafe { path_arg(path, "path")? };
        let model = validate(ModelPackage::load(&path)?)?;
        *out = handles::new_model(model)?;
        Ok(())
    })
}

/// Load a model package from `len` bytes at `data` (e.g. a package embedded in the
/// application). libbridge keeps its own copy: the caller may free `data` when this returns.
///
/// Packages that name a mean network (NADB) need that second file beside them and are refused
/// with `BRIDGE_ERR_UNSUPPORTED`: load those with `bridge_model_load`. Other errors as
/// `bridge_model_load`, plus `BRIDGE_ERR_INVALID_ARGUMENT` for `len == 0`.
///
/// Ownership: the caller owns the returned model (free with `bridge_model_free`) and keeps
/// owning `data`. Thread-safety: any thread.
///
/// # Safety
/// `data` must be NULL or readable for `len` bytes; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bridge_model_load_memory(data: *const c_void, len: usize, out: *mut *mut bridge_model) -> bridge_status {
    guard(|| {
        let out = unsafe { out_arg(out)? };
        if data.is_null() {
            return Err(Failure::null("data"));
        }
        if len == 0 {
            return Err(Failure::invalid("`len` is 0: an empty buffer is not a model package"));
        }
        // SAFETY: non-NULL; the caller promises `len` readable bytes.
        let bytes: Arc<[u8]> = Arc::from(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) });
        // A mean network is a second file, which bytes in memory cannot name.
        let names_mean = onnx_proto::read(&bytes).is_ok_and(|h| h.props.contains_key("bridge.mean_network"));
        if names_mean {
            return Err(Failure::new(
                bridge_status::BRIDGE_ERR_UNSUPPORTED,
                "this package names a mean network (a second ONNX file beside it), which cannot be found for a package \
                 loaded from memory; load it with bridge_model_load from its folder",
            ));
        }
        let model = validate(ModelPackage::from_memory(bytes, MEMORY_LABEL)?)?;
        *out = handles::new_model(model)?;
        Ok(())
    })
}

/// Free a model. NULL is a no-op (`BRIDGE_OK`); a handle already freed, or a restorer, is
/// `BRIDGE_ERR_INVALID_HANDLE` (nothing is freed).
///
/// Restorers created from the model stay valid: they own what they need. Strings returned by
/// the model's query functions become invalid. Thread-safety: any thread, but no other call may
/// be using this model at the same time.
#[unsafe(no_mangle)]
pub extern "C" fn bridge_model_free(model: *mut bridge_model) -> bridge_status {
    guard(|| handles::free_model(model))
}

/// Run a query on a live model, writing its answer through a checked out-pointer.
fn query<T>(model: *const bridge_model, out: *mut T, f: impl FnOnce(&Model) -> T) -> bridge_status {
    guard(|| {
        let m = handles::model(model)?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let v = f(&m);
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { put(out, v) };
        Ok(())
    })
}

/// The package's family name (`"i2sb"`, `"ddbm-vp"`, `"goub"`, `"rdbm"`, …) into `*out`.
///
/// Ownership: the string is owned by the model and valid until `bridge_model_free(model)`; do
/// not free it. Thread-safety: any thread.
///
/// # Safety
/// `out` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bridge_model_family(model: *const bridge_model, out: *mut *const c_char) -> bridge_status {
    query(model, out, |m| m.family.as_ptr())
}

/// The package's default sampler name (used when the options leave `sampler` NULL) into `*out`.
///
/// Ownership: owned by the model, valid until `bridge_model_free(model)`; do not free.
/// Thread-safety: any thread.
///
/// # Safety
/// `out` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bridge_model_default_sampler(model: *const bridge_model, out: *mut *const c_char) -> bridge_status {
    query(model, out, |m| m.sampler.as_ptr())
}

/// The package's default number of network evaluations (NFE) into `*out`.
///
/// Thread-safety: any thread. Ownership: nothing to free.
///
/// # Safety
/// `out` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bridge_model_default_nfe(model: *const bridge_model, out: *mut u32) -> bridge_status {
    query(model, out, |m| u32::try_from(m.meta.nfe).unwrap_or(u32::MAX))
}

/// The package's super-resolution factor into `*out` (1: same size; 4: output 4× wider and
/// taller).
///
/// Thread-safety: any thread. Ownership: nothing to free.
///
/// # Safety
/// `out` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bridge_model_sr_scale(model: *const bridge_model, out: *mut u32) -> bridge_status {
    query(model, out, |m| u32::try_from(m.meta.sr_scale).unwrap_or(u32::MAX))
}

/// The number of image channels the package's network works on (3 for RGB, 1 for gray-only
/// models, which `bridge_restore` does not run: it returns `BRIDGE_ERR_MODEL_MISMATCH`).
///
/// Thread-safety: any thread. Ownership: nothing to free.
///
/// # Safety
/// `out` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bridge_model_channels(model: *const bridge_model, out: *mut u32) -> bridge_status {
    query(model, out, |m| u32::try_from(m.meta.channels).unwrap_or(u32::MAX))
}
