//! Shared fixtures of the unit tests: the RGB oracle package (`raw = 0.5·cond + 0.25`, so a
//! restored pixel is `clamp(0.5·v + 0.375)`) written once per process, and a restorer on it.

use crate::handles::{bridge_model, bridge_restorer};
use crate::model::{bridge_model_free, bridge_model_load};
use crate::restorer::{bridge_restorer_new, bridge_restorer_options};
use crate::status::bridge_status;
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The oracle package's path (written on first use; ONNX Runtime installed if missing).
pub(crate) fn oracle_path() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        bridge_export::fixtures::ensure_ort();
        let dir = bridge_export::fixtures::scratch_root().join(format!("bridge-ffi-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        bridge_export::fixtures::save(&bridge_export::fixtures::oracle(Some(3)), &dir.join("oracle.onnx"))
    })
}

/// A new restorer on the oracle package, one thread; the model handle is freed (the restorer
/// keeps what it needs). Free the restorer with `bridge_restorer_free`.
pub(crate) fn oracle_restorer() -> *mut bridge_restorer {
    oracle_restorer_with(bridge_restorer_options { threads: 1, ..Default::default() })
}

/// [`oracle_restorer`] with other options.
pub(crate) fn oracle_restorer_with(o: bridge_restorer_options) -> *mut bridge_restorer {
    let path = CString::new(oracle_path().to_str().expect("UTF-8 temp path")).unwrap();
    let mut m: *mut bridge_model = std::ptr::null_mut();
    assert_eq!(unsafe { bridge_model_load(path.as_ptr(), &mut m) }, bridge_status::BRIDGE_OK);
    let mut r: *mut bridge_restorer = std::ptr::null_mut();
    assert_eq!(unsafe { bridge_restorer_new(m, &o, &mut r) }, bridge_status::BRIDGE_OK);
    assert_eq!(bridge_model_free(m), bridge_status::BRIDGE_OK);
    r
}
