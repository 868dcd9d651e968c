//! Training smoke test for every family (feature `train`): a tiny U-Net trained a few steps with
//! each family's objective writes a package that the SDK loads and restores with (finite output,
//! the package's default sampler); NADB trains and ships its mean network; IBMD distills a
//! generator from one of the trained packages; a run stopped early resumes from its checkpoint.
//! Photos: a few synthetic images in a temporary `BRIDGE_DATA_DIR` (the real photographs are
//! used by the parity test's sibling, the model cards test).
#![cfg(feature = "train")]

mod common;

use bridge::restorer::Restorer;
use bridge_export::train::trainer::train;
use std::path::{Path, PathBuf};

use common::{quiet, tiny_spec as spec};

/// Restore a 16×16 image with the package's defaults; the output must be finite and of size.
fn restores(pkg: &Path, sr: usize) {
    let mut r = Restorer::builder(pkg).threads(1).tile(0).build().unwrap_or_else(|e| panic!("{}: {e}", pkg.display()));
    let x = bridge::Tensor::from_shape_fn((1, 3, 16 / sr, 16 / sr), |(_, c, y, x)| ((c + y + 2 * x) % 7) as f32 / 7.0);
    let out = r.restore_rgb(x.view()).unwrap_or_else(|e| panic!("{}: {e}", pkg.display()));
    assert_eq!(out.shape(), &[1, 3, 16, 16]);
    assert!(out.iter().all(|v| v.is_finite()));
}

#[test]
fn every_family_trains_exports_and_restores() {
    let dir = common::synthetic_data("train-families", 3);

    let mut packages: Vec<(String, PathBuf)> = Vec::new();
    for (family, task) in [
        ("i2sb", "sr4"),
        ("ddbm-vp", "deblur"),
        ("ddbm-ve", "denoise"),
        ("dbim-i2sb", "jpeg"),
        ("goub", "denoise"),
        ("unidb", "jpeg"),
        ("rdbm", "denoise"),
        ("nadb", "deblur"),
    ] {
        let out = dir.join(format!("{family}.onnx"));
        let s = train(&spec(family, task, 2), &out, &dir.join(format!("{family}.ckpt")), "test", &quiet(None)).unwrap();
        assert_eq!(s.step, 2, "{family}");
        assert!(s.last_loss.is_finite(), "{family}: loss {}", s.last_loss);
        restores(&s.package, if task == "sr4" { 4 } else { 1 });
        if family == "nadb" {
            assert!(dir.join("nadb.mean.onnx").exists(), "NADB ships its mean network");
        }
        packages.push((family.to_string(), s.package));
    }

    // IBMD: distill a one-step generator from the RDBM package.
    let mut s = spec("ibmd", "denoise", 2);
    s.teacher = Some(packages.iter().find(|(f, _)| f == "rdbm").unwrap().1.clone());
    let sum = train(&s, &dir.join("ibmd.onnx"), &dir.join("ibmd.ckpt"), "test", &quiet(None)).unwrap();
    assert_eq!(sum.step, 2);
    restores(&sum.package, 1);

    // Resume: stop after 1 of 3 steps, then go on from the checkpoint to 3.
    let (out, ck) = (dir.join("resume.onnx"), dir.join("resume.ckpt"));
    let first = train(&spec("rdbm", "denoise", 3), &out, &ck, "test", &quiet(Some(1))).unwrap();
    assert_eq!(first.step, 1);
    let second = train(&spec("rdbm", "denoise", 3), &out, &ck, "test", &quiet(None)).unwrap();
    assert_eq!(second.step, 3);
    restores(&second.package, 1);
}
