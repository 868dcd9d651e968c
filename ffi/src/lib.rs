//! libbridge's C ABI: a thin, panic-safe skin over the `bridge` SDK. No bridge math lives here —
//! only argument checking, handle bookkeeping and buffer descriptors mapped onto the SDK's
//! [`sdk::pixel`] conversions and [`sdk::restorer::Restorer`].
//!
//! * [`status`] — `bridge_status`, the thread-local last-error string, and the guard every entry
//!   point runs in (null checks, `catch_unwind`: no panic crosses the ABI).
//! * [`handles`] — the registry of live handles: a freed, foreign or wrong-type handle is
//!   reported as `BRIDGE_ERR_INVALID_HANDLE` instead of being dereferenced.
//! * [`model`] — loading packages (file or memory) and querying them.
//! * [`restorer`] — restorer options, creation, cancellation.
//! * [`image`] — image descriptors and `bridge_restore`.
//! * [`planes`] — multi-plane descriptors (separate NV12 luma/chroma planes) and
//!   `bridge_restore_planes`.
//!
//! `include/bridge.h` is generated from these sources by cbindgen (`scripts/gen-header.sh`).
#![allow(non_camel_case_types)]

// Panics are caught at the ABI boundary; with `panic = "abort"` they would abort the host.
#[cfg(panic = "abort")]
compile_error!("libbridge's C ABI must be built with panic = \"unwind\" (it catches panics at every entry point)");

// The header follows this order (cbindgen walks the modules as declared); the blank lines keep
// rustfmt from sorting them.
pub mod status;

pub mod model;

pub mod restorer;

pub mod image;

pub mod planes;

pub mod handles;

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod mutation_tests;

#[cfg(test)]
mod memory_limit_tests;

use status::{bridge_status, guard};
use std::ffi::{CStr, c_char};
use std::sync::OnceLock;

/// The ABI version of this libbridge build: major·10000 + minor·100 + patch. A host compiled
/// against `BRIDGE_ABI_VERSION` can check at run time that the library it loaded matches.
///
/// Thread-safety: any thread, any time. Ownership: nothing to free.
#[unsafe(no_mangle)]
pub extern "C" fn bridge_abi_version() -> u32 {
    BRIDGE_ABI_VERSION
}

/// The ABI version of the header (major·10000 + minor·100 + patch); compare it with
/// `bridge_abi_version()`.
pub const BRIDGE_ABI_VERSION: u32 = 100;

/// The library version as text (e.g. `"0.1.0"`).
///
/// Ownership: a static string owned by libbridge, valid for the life of the process; do not free.
/// Thread-safety: any thread, any time.
#[unsafe(no_mangle)]
pub extern "C" fn bridge_version_string() -> *const c_char {
    const V: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => c"unknown",
    };
    V.as_ptr()
}

/// Load ONNX Runtime from `path` (the library file, or a folder holding it) now, instead of
/// searching for it at the first model load. Without this call libbridge searches, in order:
/// `ORT_DYLIB_PATH`; the folder of libbridge itself (where `make install` puts it) and the
/// executable's folder, with their `lib/` and `../lib/`; the system loader
/// (`libonnxruntime.so.1`, e.g. NVIDIA's JetPack builds); in debug builds only, the source
/// tree's `.deps/onnxruntime/`. A library file another user could have planted (world- or
/// foreign-group-writable, owned by another non-root user, or under a world-writable folder
/// without the sticky bit) is refused with `BRIDGE_ERR_RUNTIME_NOT_FOUND`.
///
/// Returns `BRIDGE_ERR_RUNTIME_NOT_FOUND` if the library cannot be loaded, or if a different
/// one is already loaded (a process holds one ONNX Runtime).
/// Ownership: `path` is read during the call only. Thread-safety: any thread.
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bridge_set_onnxruntime_library(path: *const c_char) -> bridge_status {
    guard(|| {
        let p = unsafe { status::path_arg(path, "path")? };
        let loaded = sdk::runtime::env::environment(Some(&p));
        release_runtime_at_exit();
        loaded?;
        Ok(())
    })
}

/// Once ONNX Runtime is loaded, have libbridge release its environment at process exit.
///
/// ONNX Runtime starts a background thread with its environment. libbridge keeps the one
/// environment for the life of the process; at exit, ONNX Runtime's static destructors would
/// otherwise run while that thread may still read what they free (valgrind saw it). An
/// `atexit` handler registered after the environment exists runs before those destructors and
/// lets ONNX Runtime release the environment (and its thread) first.
pub(crate) fn release_runtime_at_exit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if sdk::runtime::env::loaded_library().is_none() {
        return;
    }
    ONCE.call_once(|| {
        unsafe extern "C" {
            fn atexit(f: extern "C" fn()) -> std::ffi::c_int;
        }
        extern "C" fn on_exit() {
            let _ = std::panic::catch_unwind(sdk::runtime::env::release_for_exit);
        }
        // SAFETY: registers a function with no preconditions; if registration fails the
        // environment simply lives until the process ends, as before.
        unsafe { atexit(on_exit) };
    });
}

/// The path of the ONNX Runtime library libbridge loaded, or NULL if none is loaded yet (it is
/// loaded by the first model load or by `bridge_set_onnxruntime_library`).
///
/// Ownership: a string owned by libbridge, valid for the life of the process; do not free.
/// Thread-safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn bridge_onnxruntime_library() -> *const c_char {
    static PATH: OnceLock<std::ffi::CString> = OnceLock::new();
    let found = std::panic::catch_unwind(|| {
        if let Some(p) = PATH.get() {
            return p.as_ptr();
        }
        match sdk::runtime::env::loaded_library() {
            Some(lib) => PATH.get_or_init(|| status::cstring(&lib.display().to_string())).as_ptr(),
            None => std::ptr::null(),
        }
    });
    found.unwrap_or(std::ptr::null())
}

/// Diagnostics: panics inside libbridge on purpose and returns `BRIDGE_ERR_PANIC`, with the
/// panic's message in `bridge_last_error()`. Lets a host (and libbridge's own tests) check that
/// a panic inside the library never unwinds into the caller. (Rust's default panic hook also
/// prints the message to stderr.)
///
/// Thread-safety: any thread. Ownership: nothing to free.
#[unsafe(no_mangle)]
pub extern "C" fn bridge_selftest_panic() -> bridge_status {
    guard(|| {
        let v: Vec<u32> = Vec::new();
        // An out-of-bounds index: the kind of bug `guard` must contain.
        let i = std::hint::black_box(3usize);
        let _unreachable = v[i];
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let v = unsafe { CStr::from_ptr(bridge_version_string()) }.to_str().unwrap();
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
        let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap());
        let (a, b, c) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        assert_eq!(bridge_abi_version(), a * 10000 + b * 100 + c);
    }

    #[test]
    fn panic_is_contained() {
        assert_eq!(bridge_selftest_panic(), bridge_status::BRIDGE_ERR_PANIC);
        let msg = unsafe { CStr::from_ptr(status::bridge_last_error()) }.to_str().unwrap().to_string();
        assert!(msg.contains("panic") && msg.contains("index out of bounds"), "{msg}");
    }
}
