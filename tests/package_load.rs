//! A package is read once and validated fully at load (issue 9, items 4 and 5): packages that
//! could never run are refused by `ModelPackage::load` (and so by `bridge info` and
//! `bridge_model_load`), a hostile NADB mean network is refused before anything reads it, and a
//! restorer built from a loaded package never goes back to the file.

use bridge::Error;
use bridge::image::ImageRef;
use bridge::restorer::Restorer;
use bridge::runtime::ModelPackage;
use bridge_export::fixtures as fx;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bridge-load-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn oracle_with(dir: &Path, file: &str, edits: &[(&str, Option<&str>)]) -> PathBuf {
    let mut g = fx::oracle(Some(3));
    for (k, v) in edits {
        match v {
            Some(v) => g.meta(k, v),
            None => g.unset_meta(k),
        };
    }
    fx::save(&g, &dir.join(file))
}

fn refused(path: &Path, needle: &str) {
    match ModelPackage::load(path) {
        Ok(_) => panic!("{} loaded; it can never run", path.display()),
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            assert!(e.to_string().contains(needle), "{}: {e}", path.display())
        }
    }
}

#[test]
fn packages_that_can_never_run_are_refused_at_load() {
    let dir = tmpdir("never");
    assert!(ModelPackage::load(oracle_with(&dir, "ok.onnx", &[])).is_ok());
    refused(&oracle_with(&dir, "fam.onnx", &[("bridge.family", Some("no-such-family"))]), "no-such-family");
    refused(&oracle_with(&dir, "params.onnx", &[("bridge.family_params", Some("{\"T\": 0}"))]), "bridge.family_params");
    refused(&oracle_with(&dir, "sampler.onnx", &[("bridge.sampler", Some("no-such-sampler"))]), "no-such-sampler");
    // A sampler of another family, and an NFE the default sampler cannot take.
    refused(&oracle_with(&dir, "incompatible.onnx", &[("bridge.sampler", Some("heun"))]), "heun");
    refused(&oracle_with(&dir, "nfe.onnx", &[("bridge.nfe", Some("1000"))]), "1000");
    // NADB without its mean network beside it.
    let nadb = fx::nadb(&dir, Some(3));
    assert!(ModelPackage::load(&nadb).is_ok());
    std::fs::remove_file(dir.join("nadb_mean.onnx")).unwrap();
    assert!(ModelPackage::load(&nadb).is_err(), "a NADB package without its mean network loaded");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hostile_mean_networks_are_refused() {
    let dir = tmpdir("mean");
    let nadb = fx::nadb(&dir, Some(3));
    let mean = dir.join("nadb_mean.onnx");
    let good = std::fs::read(&mean).unwrap();
    // A symlink out of the package folder (to a valid copy elsewhere: only the path is wrong).
    let outside = tmpdir("mean-outside");
    std::fs::write(outside.join("m.onnx"), &good).unwrap();
    std::fs::remove_file(&mean).unwrap();
    std::os::unix::fs::symlink(outside.join("m.onnx"), &mean).unwrap();
    assert!(ModelPackage::load(&nadb).is_err(), "a mean network outside the package folder was read");
    // /dev/zero (would be read until memory runs out) and a FIFO (would block forever).
    std::fs::remove_file(&mean).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &mean).unwrap();
    assert!(ModelPackage::load(&nadb).is_err(), "/dev/zero was accepted as a mean network");
    std::fs::remove_file(&mean).unwrap();
    let c = std::ffi::CString::new(mean.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc_mkfifo(c.as_ptr(), 0o600) }, 0);
    let t = std::time::Instant::now();
    assert!(ModelPackage::load(&nadb).is_err(), "a FIFO was accepted as a mean network");
    assert!(t.elapsed() < std::time::Duration::from_secs(10), "the FIFO blocked the load");
    // Back to the real file: loads again.
    std::fs::remove_file(&mean).unwrap();
    std::fs::write(&mean, &good).unwrap();
    assert!(ModelPackage::load(&nadb).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&outside);
}

unsafe extern "C" {
    #[link_name = "mkfifo"]
    fn libc_mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
}

#[test]
fn restorers_use_the_loaded_bytes() {
    fx::ensure_ort();
    let dir = tmpdir("bytes");
    let path = oracle_with(&dir, "m.onnx", &[("bridge.sr_scale", Some("2"))]);
    let pkg = Arc::new(ModelPackage::load(&path).unwrap());
    // Swap in a package with another SR scale, then delete it: restorers made from the loaded
    // package still see the original (2×) network.
    oracle_with(&dir, "m.onnx", &[("bridge.sr_scale", Some("4"))]);
    let px = vec![120u8; 8 * 6 * 3];
    let img = ImageRef::rgb8(&px, 8, 6).unwrap();
    let out = Restorer::builder_from_package(pkg.clone()).threads(1).build().unwrap().restore(&img).unwrap();
    assert_eq!((out.width(), out.height()), (16, 12), "the swapped file was read");
    std::fs::remove_file(&path).unwrap();
    let out = Restorer::builder_from_package(pkg).threads(1).build().unwrap().restore(&img).unwrap();
    assert_eq!((out.width(), out.height()), (16, 12));
    // Loading the path now is an IO error, not a panic.
    assert!(matches!(ModelPackage::load(&path), Err(Error::Io { .. })));
    let _ = std::fs::remove_dir_all(&dir);
}
