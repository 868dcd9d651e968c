//! Status codes, the thread-local last-error message, and [`guard`], the wrapper every entry
//! point runs its body in: it clears the last error, catches panics (none crosses the ABI), and
//! turns a [`Failure`] into a status plus a message.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

/// What a libbridge function returns. `BRIDGE_OK` is 0; every other value is an error whose
/// message `bridge_last_error()` returns on the same thread.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum bridge_status {
    /// Success.
    BRIDGE_OK = 0,
    /// A required pointer argument (handle, descriptor, buffer, out-parameter) is NULL.
    BRIDGE_ERR_NULL_ARGUMENT = 1,
    /// A handle that is not live: already freed, never created by libbridge, or of the wrong
    /// type (a restorer passed as a model or vice versa).
    BRIDGE_ERR_INVALID_HANDLE = 2,
    /// An argument is out of its domain: an unknown constant or flag, an options struct with a
    /// bad `struct_size`, a bad sampler name, η < 0, a non-finite float input, …
    BRIDGE_ERR_INVALID_ARGUMENT = 3,
    /// The image format constant is not one of `BRIDGE_FORMAT_*`.
    BRIDGE_ERR_UNSUPPORTED_FORMAT = 4,
    /// Width or height is zero, odd for NV12, over the restorer's limits (each output side at
    /// most 65536 pixels, at most 2^25 output pixels), a buffer size that overflows, or the
    /// output descriptor's size is not the restorer's output size for the input.
    BRIDGE_ERR_IMAGE_SIZE = 5,
    /// The row stride is smaller than a row of pixels, misaligned for 16-bit / float rows, or
    /// larger than `PTRDIFF_MAX` (e.g. a negative stride cast to `size_t`).
    BRIDGE_ERR_STRIDE = 6,
    /// A buffer's `size` is smaller than its layout needs (see `bridge_image_required_size`).
    BRIDGE_ERR_BUFFER_TOO_SMALL = 7,
    /// The model cannot process this input: e.g. a 1-channel model given an RGB restore, or a
    /// graph whose output size does not match its input.
    BRIDGE_ERR_MODEL_MISMATCH = 8,
    /// The model package is invalid: not ONNX, missing or contradictory metadata.
    BRIDGE_ERR_MODEL = 9,
    /// A file could not be read (missing, permissions).
    BRIDGE_ERR_IO = 10,
    /// The ONNX Runtime library could not be found or loaded.
    BRIDGE_ERR_RUNTIME_NOT_FOUND = 11,
    /// The requested execution provider (CUDA, TensorRT) cannot be used and CPU fallback was
    /// not allowed.
    BRIDGE_ERR_PROVIDER_UNAVAILABLE = 12,
    /// The run was cancelled (progress callback returned nonzero, or `bridge_restorer_cancel`).
    BRIDGE_ERR_CANCELLED = 13,
    /// ONNX Runtime failed while running the network, or the network returned NaN/Inf.
    BRIDGE_ERR_RUNTIME = 14,
    /// The restorer is already running a restore on another thread (a restorer is used by one
    /// thread at a time).
    BRIDGE_ERR_BUSY = 15,
    /// The operation is not supported (e.g. a package with a mean network loaded from memory).
    BRIDGE_ERR_UNSUPPORTED = 16,
    /// A bug inside libbridge was caught (a Rust panic); the message says where. A restorer that
    /// was running when it happened refuses further restores: free it.
    BRIDGE_ERR_PANIC = 17,
    /// Any other internal error.
    BRIDGE_ERR_INTERNAL = 18,
    /// A buffer for this input could not be allocated (the system refused the memory, e.g.
    /// under a `RLIMIT_AS` or container limit): one of libbridge's frame- or tile-sized buffers,
    /// or an allocation inside ONNX Runtime's run. Sizes are checked against the limits first;
    /// nothing is leaked and the restorer stays usable.
    BRIDGE_ERR_OUT_OF_MEMORY = 19,
}

use bridge_status as S;

/// Every status, in value order (for names and tests).
pub(crate) const ALL: [bridge_status; 20] = [
    S::BRIDGE_OK,
    S::BRIDGE_ERR_NULL_ARGUMENT,
    S::BRIDGE_ERR_INVALID_HANDLE,
    S::BRIDGE_ERR_INVALID_ARGUMENT,
    S::BRIDGE_ERR_UNSUPPORTED_FORMAT,
    S::BRIDGE_ERR_IMAGE_SIZE,
    S::BRIDGE_ERR_STRIDE,
    S::BRIDGE_ERR_BUFFER_TOO_SMALL,
    S::BRIDGE_ERR_MODEL_MISMATCH,
    S::BRIDGE_ERR_MODEL,
    S::BRIDGE_ERR_IO,
    S::BRIDGE_ERR_RUNTIME_NOT_FOUND,
    S::BRIDGE_ERR_PROVIDER_UNAVAILABLE,
    S::BRIDGE_ERR_CANCELLED,
    S::BRIDGE_ERR_RUNTIME,
    S::BRIDGE_ERR_BUSY,
    S::BRIDGE_ERR_UNSUPPORTED,
    S::BRIDGE_ERR_PANIC,
    S::BRIDGE_ERR_INTERNAL,
    S::BRIDGE_ERR_OUT_OF_MEMORY,
];

impl bridge_status {
    fn name(self) -> &'static CStr {
        match self {
            S::BRIDGE_OK => c"BRIDGE_OK",
            S::BRIDGE_ERR_NULL_ARGUMENT => c"BRIDGE_ERR_NULL_ARGUMENT",
            S::BRIDGE_ERR_INVALID_HANDLE => c"BRIDGE_ERR_INVALID_HANDLE",
            S::BRIDGE_ERR_INVALID_ARGUMENT => c"BRIDGE_ERR_INVALID_ARGUMENT",
            S::BRIDGE_ERR_UNSUPPORTED_FORMAT => c"BRIDGE_ERR_UNSUPPORTED_FORMAT",
            S::BRIDGE_ERR_IMAGE_SIZE => c"BRIDGE_ERR_IMAGE_SIZE",
            S::BRIDGE_ERR_STRIDE => c"BRIDGE_ERR_STRIDE",
            S::BRIDGE_ERR_BUFFER_TOO_SMALL => c"BRIDGE_ERR_BUFFER_TOO_SMALL",
            S::BRIDGE_ERR_MODEL_MISMATCH => c"BRIDGE_ERR_MODEL_MISMATCH",
            S::BRIDGE_ERR_MODEL => c"BRIDGE_ERR_MODEL",
            S::BRIDGE_ERR_IO => c"BRIDGE_ERR_IO",
            S::BRIDGE_ERR_RUNTIME_NOT_FOUND => c"BRIDGE_ERR_RUNTIME_NOT_FOUND",
            S::BRIDGE_ERR_PROVIDER_UNAVAILABLE => c"BRIDGE_ERR_PROVIDER_UNAVAILABLE",
            S::BRIDGE_ERR_CANCELLED => c"BRIDGE_ERR_CANCELLED",
            S::BRIDGE_ERR_RUNTIME => c"BRIDGE_ERR_RUNTIME",
            S::BRIDGE_ERR_BUSY => c"BRIDGE_ERR_BUSY",
            S::BRIDGE_ERR_UNSUPPORTED => c"BRIDGE_ERR_UNSUPPORTED",
            S::BRIDGE_ERR_PANIC => c"BRIDGE_ERR_PANIC",
            S::BRIDGE_ERR_INTERNAL => c"BRIDGE_ERR_INTERNAL",
            S::BRIDGE_ERR_OUT_OF_MEMORY => c"BRIDGE_ERR_OUT_OF_MEMORY",
        }
    }
}

/// The name of a status value (`"BRIDGE_ERR_CANCELLED"`), or `"BRIDGE_UNKNOWN_STATUS"`.
///
/// Ownership: a static string, valid for the life of the process; do not free.
/// Thread-safety: any thread. Does not change `bridge_last_error()`.
#[unsafe(no_mangle)]
pub extern "C" fn bridge_status_name(status: u32) -> *const c_char {
    ALL.get(status as usize).map_or(c"BRIDGE_UNKNOWN_STATUS", |s| s.name()).as_ptr()
}

thread_local! {
    static LAST: RefCell<CString> = RefCell::new(CString::default());
}

/// The message of the last failed libbridge call on the calling thread, or `""` if the last call
/// succeeded. Every libbridge function except `bridge_last_error`, `bridge_status_name`,
/// `bridge_abi_version`, `bridge_version_string` and `bridge_onnxruntime_library` resets it.
///
/// Ownership: owned by libbridge; valid until the next libbridge call on the same thread; do not
/// free (copy it to keep it). Thread-safety: per thread; never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn bridge_last_error() -> *const c_char {
    LAST.try_with(|m| m.borrow().as_ptr()).unwrap_or(c"(thread is exiting)".as_ptr())
}

fn set_last_error(msg: &str) {
    let c = cstring(msg);
    let _ = LAST.try_with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            *m = c;
        }
    });
}

/// A C string from text, interior NULs replaced.
pub(crate) fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

/// An error on its way to the caller: the status and the message for `bridge_last_error`.
#[derive(Debug)]
pub struct Failure {
    pub(crate) status: bridge_status,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: bridge_status, message: impl Into<String>) -> Self {
        Failure { status, message: message.into() }
    }
    pub(crate) fn null(what: &str) -> Self {
        Failure::new(S::BRIDGE_ERR_NULL_ARGUMENT, format!("`{what}` is NULL"))
    }
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Failure::new(S::BRIDGE_ERR_INVALID_ARGUMENT, message)
    }
}

/// The status the C API reports for an SDK error.
pub(crate) fn status_of(e: &sdk::Error) -> bridge_status {
    use sdk::Error as E;
    match e {
        E::ShapeMismatch { .. } => S::BRIDGE_ERR_MODEL_MISMATCH,
        E::InvalidNfe { .. } | E::UnknownSampler(_) | E::Incompatible { .. } | E::InvalidParam { .. } => S::BRIDGE_ERR_INVALID_ARGUMENT,
        E::UnknownFamily(_) | E::Package { .. } => S::BRIDGE_ERR_MODEL,
        E::NonFinite { .. } | E::Denoiser(_) | E::Runtime(_) | E::Noise(_) => S::BRIDGE_ERR_RUNTIME,
        E::Cancelled => S::BRIDGE_ERR_CANCELLED,
        E::RuntimeNotFound(_) => S::BRIDGE_ERR_RUNTIME_NOT_FOUND,
        E::ProviderUnavailable { .. } => S::BRIDGE_ERR_PROVIDER_UNAVAILABLE,
        E::Image(_) => S::BRIDGE_ERR_IMAGE_SIZE,
        E::Io { .. } => S::BRIDGE_ERR_IO,
        E::OutOfMemory { .. } => S::BRIDGE_ERR_OUT_OF_MEMORY,
        _ => S::BRIDGE_ERR_INTERNAL,
    }
}

impl From<sdk::Error> for Failure {
    fn from(e: sdk::Error) -> Self {
        Failure { status: status_of(&e), message: e.to_string() }
    }
}

/// Run an entry point's body: reset the last error, contain panics, report failures.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), Failure>) -> bridge_status {
    set_last_error("");
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            // A progress callback may have called libbridge (and failed) on this thread.
            set_last_error("");
            S::BRIDGE_OK
        }
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.status
        }
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            set_last_error(&format!("internal error: libbridge panicked: {what}"));
            S::BRIDGE_ERR_PANIC
        }
    }
}

/// A filesystem path from a C string (any bytes on Unix; UTF-8 elsewhere).
///
/// # Safety
/// `p` must be NULL or a NUL-terminated string.
pub(crate) unsafe fn path_arg(p: *const c_char, what: &str) -> Result<PathBuf, Failure> {
    if p.is_null() {
        return Err(Failure::null(what));
    }
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    if bytes.is_empty() {
        return Err(Failure::invalid(format!("`{what}` is an empty string")));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(bytes).map(PathBuf::from).map_err(|_| Failure::invalid(format!("`{what}` is not UTF-8")))
    }
}

/// Text from an optional C string (NULL → `None`).
///
/// # Safety
/// `p` must be NULL or a NUL-terminated string.
pub(crate) unsafe fn str_arg(p: *const c_char, what: &str) -> Result<Option<String>, Failure> {
    if p.is_null() {
        return Ok(None);
    }
    let s = unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| Failure::invalid(format!("`{what}` is not UTF-8")))?;
    Ok(Some(s.to_string()))
}

/// Write `v` through an out-pointer checked non-NULL earlier.
///
/// # Safety
/// `p` must be valid for writes of `T` (alignment included).
pub(crate) unsafe fn put<T>(p: *mut T, v: T) {
    unsafe { p.write(v) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_values() {
        for (i, s) in ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
            let name = unsafe { CStr::from_ptr(bridge_status_name(i as u32)) }.to_str().unwrap();
            assert_eq!(name, format!("{s:?}"));
        }
        let unknown = unsafe { CStr::from_ptr(bridge_status_name(999)) };
        assert_eq!(unknown.to_str().unwrap(), "BRIDGE_UNKNOWN_STATUS");
    }

    #[test]
    fn last_error_is_per_call_and_per_thread() {
        let st = guard(|| Err(Failure::invalid("bad \0 thing")));
        assert_eq!(st, S::BRIDGE_ERR_INVALID_ARGUMENT);
        let msg = unsafe { CStr::from_ptr(bridge_last_error()) }.to_str().unwrap().to_string();
        assert_eq!(msg, "bad \u{FFFD} thing");
        // Another thread sees its own (empty) message.
        let other = std::thread::spawn(|| unsafe { CStr::from_ptr(bridge_last_error()) }.to_bytes().len()).join().unwrap();
        assert_eq!(other, 0);
        // A successful call clears it.
        assert_eq!(guard(|| Ok(())), S::BRIDGE_OK);
        assert!(unsafe { CStr::from_ptr(bridge_last_error()) }.to_bytes().is_empty());
    }

    #[test]
    fn sdk_errors_map_to_statuses() {
        let cases = [
            (sdk::Error::Cancelled, S::BRIDGE_ERR_CANCELLED),
            (sdk::Error::shape("x", &[1], &[2]), S::BRIDGE_ERR_MODEL_MISMATCH),
            (sdk::Error::param("eta", "negative"), S::BRIDGE_ERR_INVALID_ARGUMENT),
            (sdk::Error::Package { path: "p".into(), reason: "r".into() }, S::BRIDGE_ERR_MODEL),
            (sdk::Error::RuntimeNotFound("x".into()), S::BRIDGE_ERR_RUNTIME_NOT_FOUND),
            (sdk::Error::Runtime("x".into()), S::BRIDGE_ERR_RUNTIME),
            (sdk::Error::OutOfMemory { what: "x".into(), bytes: 1 }, S::BRIDGE_ERR_OUT_OF_MEMORY),
        ];
        for (e, s) in cases {
            assert_eq!(Failure::from(e).status, s);
        }
    }
}
