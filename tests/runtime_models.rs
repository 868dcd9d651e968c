//! Small ONNX model packages for the runtime tests: the shared builders of
//! `bridge_export::fixtures` (RDBM x0 packages without a `bridge.channels` key) plus the
//! test-only graphs below.
#![allow(dead_code)]

#[path = "unet_model.rs"]
pub mod unet_model;

use bridge_export::fixtures::{self as fx, image, package, save};
use bridge_export::onnx::{Attr, Dim, FLOAT, Graph, INT64};
use std::path::{Path, PathBuf};

#[allow(unused_imports)] // not every includer installs ONNX Runtime
pub use bridge_export::fixtures::ensure_ort;

/// The runtime tests' packages leave `bridge.channels` to the SDK's default (3).
const RGB: Option<usize> = None;

/// Apply metadata overrides (an empty value removes the key).
fn overrides(g: &mut Graph, over: &[(&str, &str)]) {
    for (k, v) in over {
        if v.is_empty() {
            g.unset_meta(k)
        } else {
            g.meta(k, v)
        };
    }
}

/// `raw = 0.5·cond + 0.25` (ignores `x_t` and `t`).
pub fn oracle(dir: &Path, name: &str, sr: usize, multiple: usize, bgr: bool) -> PathBuf {
    let mut g = fx::oracle(RGB);
    g.meta("bridge.sr_scale", &sr.to_string())
        .meta("bridge.spatial_multiple", &multiple.to_string())
        .meta("bridge.channel_order", if bgr { "bgr" } else { "rgb" });
    save(&g, &dir.join(name))
}

/// The oracle with metadata overrides (an empty value removes the key).
pub fn oracle_with(dir: &Path, name: &str, over: &[(&str, &str)]) -> PathBuf {
    let mut g = fx::oracle(RGB);
    overrides(&mut g, over);
    save(&g, &dir.join(name))
}

/// `raw = a_x·x_t + a_c·cond + b` with metadata overrides (an empty value removes the key).
pub fn linear_with(dir: &Path, name: &str, (a_x, a_c, b): (f32, f32, f32), over: &[(&str, &str)]) -> PathBuf {
    let mut g = fx::linear(RGB, a_x, a_c, b);
    overrides(&mut g, over);
    save(&g, &dir.join(name))
}

/// A NADB package: bridge network `raw = 0·x_t` (inputs `x_t`, `t`: no conditioning, as NADB's
/// restoration networks), mean network `M(x) = x + 0.5` shipped beside it with its SHA-256.
pub fn nadb_with_mean(dir: &Path) -> PathBuf {
    fx::nadb(dir, RGB)
}

/// `raw = 0.5·x_t + 0.3·cond` (pointwise, depends on the state so noise matters).
pub fn oracle_mixing(dir: &Path, name: &str) -> PathBuf {
    save(&fx::linear(RGB, 0.5, 0.3, 0.0), &dir.join(name))
}

/// `raw = t·(conv3(tanh(conv3(x_t))) + cond)`, receptive radius 2.
pub fn conv(dir: &Path, name: &str) -> PathBuf {
    let mut g = Graph::default();
    fx::io(&mut g, 3);
    package(&mut g, RGB).meta("bridge.receptive_field", "2");
    conv_body(&mut g);
    save(&g, &dir.join(name))
}

/// [`conv`] on a graph that fixes height and width to `size` and, if given, the batch size (as
/// a TensorRT engine's shape), with metadata overrides (an empty value removes the key).
pub fn conv_fixed(dir: &Path, name: &str, size: i64, batch: Option<i64>, over: &[(&str, &str)]) -> PathBuf {
    let n = batch.map_or(Dim::S("N"), Dim::N);
    let d = [n.clone(), Dim::N(3), Dim::N(size), Dim::N(size)];
    let mut g = Graph::default();
    g.input("x_t", FLOAT, &d).input("cond", FLOAT, &d).input("t", FLOAT, &[n]).output("raw", FLOAT, &d);
    package(&mut g, RGB).meta("bridge.receptive_field", "2");
    overrides(&mut g, over);
    conv_body(&mut g);
    save(&g, &dir.join(name))
}

fn conv_body(g: &mut Graph) {
    let w = |seed: u32| -> Vec<f32> { (0..81u32).map(|i| (((i * 37 + seed * 11) % 23) as f32 - 11.0) * 0.03).collect() };
    let pads = || ("pads", Attr::Ints(vec![1, 1, 1, 1]));
    g.floats("w1", &[3, 3, 3, 3], &w(1))
        .floats("w2", &[3, 3, 3, 3], &w(2))
        .ints("tshape", &[4], &[-1, 1, 1, 1])
        .node("Conv", &["x_t", "w1"], &["c1"], &[pads()])
        .node("Tanh", &["c1"], &["a1"], &[])
        .node("Conv", &["a1", "w2"], &["c2"], &[pads()])
        .node("Add", &["c2", "cond"], &["s"], &[])
        .node("Reshape", &["t", "tshape"], &["t4"], &[])
        .node("Mul", &["s", "t4"], &["raw"], &[]);
}

/// `raw = ln(x_t − 10)` (NaN for images); no time input.
pub fn nan(dir: &Path, name: &str) -> PathBuf {
    let mut g = Graph::default();
    g.input("x_t", FLOAT, &image(3)).input("cond", FLOAT, &image(3)).output("raw", FLOAT, &image(3));
    package(&mut g, RGB).meta("bridge.inputs", r#"{"x_t": "x_t", "cond": "cond"}"#);
    g.floats("ten", &[], &[10.0])
        .floats("zero", &[], &[0.0])
        .node("Sub", &["x_t", "ten"], &["d"], &[])
        .node("Log", &["d"], &["l"], &[])
        .node("Mul", &["cond", "zero"], &["cz"], &[])
        .node("Add", &["l", "cz"], &["raw"], &[]);
    save(&g, &dir.join(name))
}

/// The oracle on a fixed `[1, 3, size, size]` graph with an int64 scalar time.
pub fn fixed(dir: &Path, name: &str, size: i64) -> PathBuf {
    let mut g = Graph::default();
    let d = [Dim::N(1), Dim::N(3), Dim::N(size), Dim::N(size)];
    g.input("x_t", FLOAT, &d).input("cond", FLOAT, &d).input("t", INT64, &[]).output("raw", FLOAT, &d);
    package(&mut g, RGB).meta("bridge.spatial_multiple", "8");
    g.floats("zero", &[], &[0.0])
        .floats("half", &[], &[0.5])
        .floats("q", &[], &[0.25])
        .node("Cast", &["t"], &["tf"], &[("to", Attr::Int(FLOAT))])
        .node("Mul", &["tf", "zero"], &["tz"], &[])
        .node("Mul", &["cond", "half"], &["a"], &[])
        .node("Add", &["a", "q"], &["a2"], &[])
        .node("Add", &["a2", "tz"], &["raw0"], &[])
        .node("Mul", &["x_t", "zero"], &["xz"], &[])
        .node("Add", &["raw0", "xz"], &["raw"], &[]);
    save(&g, &dir.join(name))
}

/// 42 3×3 convolutions of 32 channels (slow enough to cancel mid-run); `raw = cond`.
pub fn slow(dir: &Path, name: &str) -> PathBuf {
    save(&fx::slow(RGB), &dir.join(name))
}

/// An ONNX file without package metadata.
pub fn plain(dir: &Path, name: &str) -> PathBuf {
    let mut g = Graph::default();
    g.input("x_t", FLOAT, &image(3)).output("raw", FLOAT, &image(3)).node("Identity", &["x_t"], &["raw"], &[]);
    save(&g, &dir.join(name))
}

/// A package whose network is `raw = x_t` with a mean network `M(x) = x + 0.5` (`mean.onnx`,
/// evaluated at `t_net = 1.0999`).
pub fn with_mean_network(dir: &Path) -> (PathBuf, PathBuf) {
    let (mean, sha) = fx::mean_network(dir, "mean.onnx", RGB);
    let mn =
        serde_json::json!({"path": "mean.onnx", "sha256": sha, "t_net": 1.0999, "inputs": {"x": "x_t", "t": "t"}, "outputs": {"y": "raw"}})
            .to_string();
    let mut g = fx::linear(RGB, 1.0, 0.0, 0.0);
    g.meta("bridge.mean_network", &mn);
    (save(&g, &dir.join("pkg.onnx")), mean)
}
