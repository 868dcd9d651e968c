//! An exported U-Net with package metadata loads in the SDK (`bridge::runtime`) as a denoiser and
//! computes what the reference backend computes. Its own test binary: the SDK creates the process's
//! ONNX Runtime environment (found through `ORT_DYLIB_PATH` or `.deps/onnxruntime/`).

use bridge::Denoiser;
use bridge::runtime::{OnnxDenoiser, SessionConfig};
use bridge_export::reference::unet_reference;
use bridge_export::{InitMode, UNetConfig, Weights, unet_graph};
use ndarray::{ArrayD, IxDyn};
use std::path::Path;

#[test]
fn exported_unet_is_a_runnable_package() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    if std::env::var_os("ORT_DYLIB_PATH").is_none() && !root.join(".deps/onnxruntime/libonnxruntime.so").exists() {
        let st = std::process::Command::new("bash").arg(root.join("scripts/install-ort.sh")).status().unwrap();
        assert!(st.success(), "scripts/install-ort.sh failed");
    }
    let cfg = UNetConfig::tiny(3, 3, 3);
    let w = Weights::for_unet(&cfg, 21, InitMode::Random).unwrap();
    let mut g = unet_graph(&cfg, &w).unwrap();
    g.metas([
        ("bridge.schema_version", "1"),
        ("bridge.family", "rdbm"),
        ("bridge.schedule", "cosine"),
        ("bridge.parameterization", "x0"),
        ("bridge.inputs", r#"{"x": "x_t", "cond": "cond", "t": "t"}"#),
        ("bridge.outputs", r#"{"out": "raw"}"#),
        ("bridge.value_range", "[-1, 1]"),
        ("bridge.channel_order", "rgb"),
        ("bridge.spatial_multiple", &cfg.spatial_multiple().to_string()),
        ("bridge.sampler", "rdbm"),
        ("bridge.nfe", "3"),
    ]);
    let path = g.write(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("unet-package.onnx")).unwrap();
    let (mut net, meta) = OnnxDenoiser::load_package(&path, &SessionConfig::default()).unwrap();
    assert_eq!(meta.spatial_multiple, 2);
    assert_eq!(meta.other.get("unet.config").map(String::as_str), Some(cfg.to_json().as_str()));

    let x = ndarray::Array4::from_shape_fn((1, 3, 6, 10), |(_, c, i, j)| ((c * 7 + i * 3 + j) as f32 * 0.37).sin());
    let cond = x.mapv(|v| 0.5 * v - 0.1);
    let t_net = 0.37;
    let got = net.eval(x.view(), cond.view(), t_net).unwrap();
    let want =
        unet_reference(&cfg, &w, &x.clone().into_dyn(), Some(&cond.clone().into_dyn()), &ArrayD::from_elem(IxDyn(&[1]), t_net as f32))
            .unwrap();
    let num: f64 = got.iter().zip(want.iter()).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
    let den: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
    assert!((num / den).sqrt() <= 1e-4, "SDK vs reference: {:.2e}", (num / den).sqrt());
}
