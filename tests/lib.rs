//! Shared helpers for libbridge's end-to-end tests.
use std::path::PathBuf;

/// Root of the repository (the workspace).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The golden directory: `BRIDGE_GOLDEN_DIR`, else the repository's vendored `tests/golden`.
pub fn golden_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("BRIDGE_GOLDEN_DIR") {
        return Some(PathBuf::from(d));
    }
    let d = repo_root().join("tests").join("golden");
    d.is_dir().then_some(d)
}
