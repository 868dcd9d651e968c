//! CI parity (feature `train`): a tiny U-Net trained for a few steps in libtorch, exported to ONNX,
//! gives the same output in libtorch, the reference backend and ONNX Runtime (through the SDK's
//! `OnnxDenoiser`): relative L2 error ≤ 1e-4 on random inputs, two sizes.
#![cfg(feature = "train")]

use bridge_export::UNetConfig;
use bridge_export::train::parity::check;
use std::path::Path;

#[test]
fn tch_reference_and_onnx_runtime_agree_after_training() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("parity");
    let cfg = UNetConfig::tiny(3, 3, 3);
    for (i, (hw, t)) in [((8, 8), 437.5), ((12, 20), 3.25)].into_iter().enumerate() {
        let p = check(&cfg, 4, 11 + i as u64, &dir.join(i.to_string()), hw, t).unwrap();
        eprintln!("{hw:?}: {p:?}");
        assert!(p.tch_vs_ref <= 1e-4 && p.ort_vs_ref <= 1e-4 && p.ort_vs_tch <= 1e-4, "{p:?}");
        // Training moved the weights (the checked weights are trained ones) and the loss is finite.
        assert!(p.weight_change > 1e-3, "weights barely changed: {p:?}");
        assert!(p.losses.0.is_finite() && p.losses.1.is_finite());
    }
}
