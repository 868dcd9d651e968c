//! IBMD generator noise end to end (feature `train`): a tiny generator distilled for a few steps
//! from an RDBM teacher package is exported with its noise input (role `noise`, a static channel
//! count), loaded by the SDK and run with the distilled sampler. With noise channels, the seed
//! reaches the output (different seeds differ, the same seed repeats); without, the one-step
//! generator is deterministic. RDBM's top state is `x_T` exactly, so at one step the generator
//! noise is the only randomness of the run.
#![cfg(feature = "train")]

mod common;

use bridge::restorer::Restorer;
use bridge_export::UNetConfig;
use bridge_export::package::{Task, package_meta, read_package, write_package};
use bridge_export::train::trainer::{Reporting, Spec, train};
use bridge_export::weights::{InitMode, Weights};
use serde_json::Map;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn spec(teacher: &Path, noise_channels: Option<usize>) -> Spec {
    let mut s = common::tiny_spec("ibmd", "denoise", 3);
    s.seed = 7;
    s.nfe = Some(1);
    s.teacher = Some(teacher.to_path_buf());
    s.noise_channels = noise_channels;
    s
}

fn quiet() -> Reporting {
    common::quiet(None)
}

/// Restore one 16×16 frame with the package's defaults (the distilled sampler) and `seed`.
fn restore(pkg: &Path, seed: u64) -> bridge::Tensor {
    let mut r = Restorer::builder(pkg).threads(1).tile(0).seed(seed).build().unwrap_or_else(|e| panic!("{}: {e}", pkg.display()));
    let x = bridge::Tensor::from_shape_fn((1, 3, 16, 16), |(_, c, y, x)| ((c + y + 2 * x) % 7) as f32 / 7.0);
    let out = r.restore_rgb(x.view()).unwrap();
    assert!(out.iter().all(|v| v.is_finite()));
    out
}

fn max_diff(a: &bridge::Tensor, b: &bridge::Tensor) -> f32 {
    a.iter().zip(b.iter()).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max)
}

#[test]
fn generator_noise_is_trained_exported_and_drawn_per_seed() {
    let dir = common::synthetic_data("train-ibmd", 2);

    // The teacher: an (untrained) RDBM x0 package of the tiny U-Net.
    let tcfg = UNetConfig::tiny(3, 3, 3);
    let tw = Weights::for_unet(&tcfg, 11, InitMode::Random).unwrap();
    let tmeta = package_meta("rdbm", None, Map::new(), Task::Denoise, &tcfg).unwrap();
    let teacher = write_package(&dir.join("teacher.onnx"), &tcfg, &tw, &tmeta, None, &BTreeMap::new()).unwrap();

    let distill = |name: &str, nc: Option<usize>| -> PathBuf {
        let s = spec(&teacher, nc);
        let sum = train(&s, &dir.join(format!("{name}.onnx")), &dir.join(format!("{name}.ckpt")), "test", &quiet()).unwrap();
        assert_eq!(sum.step, 3, "{name}");
        assert!(sum.last_loss.is_finite(), "{name}: loss {}", sum.last_loss);
        sum.package
    };

    // Noise channels: the package declares the noise input and its width.
    let noisy = distill("ibmd-z2", Some(2));
    let (cfg, w, meta) = read_package(&noisy).unwrap();
    assert_eq!(cfg.noise_channels, 2);
    assert_eq!(meta.io.noise.as_deref(), Some("z"));
    assert_eq!(meta.to_props().get("bridge.inputs").map(|s| s.contains(r#""z":"noise""#)), Some(true), "{:?}", meta.to_props());
    assert_eq!((meta.sampler.as_str(), meta.nfe), ("distilled", 1));
    // Training moved the (zero-initialized) noise weights of conv_in.
    let cw = w.get("conv_in.weight").unwrap();
    let (cout, cin) = (cw.shape[0], cw.shape[1]);
    assert_eq!(cin, 3 + 3 + 2);
    let noise_w = (0..cout).flat_map(|o| cw.data[(o * cin + 6) * 9..(o * cin + 8) * 9].to_vec()).fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(noise_w > 0.0, "the noise weights did not train");
    // The SDK feeds the noise per seed: another seed changes the output, the same one repeats it.
    let (a, a2, b) = (restore(&noisy, 1), restore(&noisy, 1), restore(&noisy, 2));
    assert_eq!(max_diff(&a, &a2), 0.0, "the same seed gave different outputs");
    assert!(max_diff(&a, &b) > 1e-5, "the seed does not reach the generator: {}", max_diff(&a, &b));
    // Only the distilled sampler may run a network with a noise input.
    let Err(e) = Restorer::builder(&noisy).threads(1).sampler("rdbm").build() else { panic!("the rdbm sampler accepted a generator") };
    assert!(matches!(e, bridge::Error::Incompatible { .. }), "{e}");

    // The default is one noise channel per image channel.
    let (_, c_default) = bridge_export::train::trainer::spec_meta(&spec(&teacher, None)).unwrap();
    assert_eq!(c_default.noise_channels, 3);

    // No noise channels: no noise input, and the one-step generator ignores the seed.
    let plain = distill("ibmd-z0", Some(0));
    let (cfg0, _, meta0) = read_package(&plain).unwrap();
    assert_eq!((cfg0.noise_channels, meta0.io.noise), (0, None));
    assert_eq!(max_diff(&restore(&plain, 1), &restore(&plain, 2)), 0.0, "a generator without noise depends on the seed");

    // Noise channels belong to IBMD generators only.
    let mut bad = spec(&teacher, Some(2));
    bad.family = "rdbm".into();
    bad.teacher = None;
    assert!(bridge_export::train::trainer::spec_meta(&bad).is_err());
}
