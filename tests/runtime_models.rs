//! Small ONNX model packages for the runtime tests, written with the export crate's graph
//! builder (`bridge_export::onnx`).
#![allow(dead_code)]

#[path = "unet_model.rs"]
pub mod unet_model;

use bridge_export::onnx::{Attr, Dim, FLOAT, Graph, INT64};

/// Write a graph (test models: a failure to write is a test failure).
trait Save {
    fn save(&self, path: &Path) -> PathBuf;
}

impl Save for Graph {
    fn save(&self, path: &Path) -> PathBuf {
        self.check().expect("well-formed test graph");
        self.write(path).expect("write model")
    }
}
use std::path::{Path, PathBuf};
use std::process::Command;

/// Install ONNX Runtime into `.deps/onnxruntime` if it is missing (idempotent).
pub fn ensure_ort() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let root = bridge_e2e::repo_root();
        let lib = root.join(".deps/onnxruntime/libonnxruntime.so");
        if std::env::var_os("ORT_DYLIB_PATH").is_none() && !lib.exists() {
            let st = Command::new("bash").arg(root.join("scripts/install-ort.sh")).status().expect("run scripts/install-ort.sh");
            assert!(st.success(), "scripts/install-ort.sh failed");
        }
    });
}

const B: Dim = Dim::S("B");
const H: Dim = Dim::S("H");
const W: Dim = Dim::S("W");

/// Package metadata: an RDBM x0-predicting (`pred_x_start`) package with RDBM's own sampler,
/// whose last step returns `x0̂ = clamp(out, −1, 1)`.
fn package(g: &mut Graph) -> &mut Graph {
    g.meta("bridge.schema_version", "1")
        .meta("bridge.family", "rdbm")
        .meta("bridge.schedule", "cosine")
        .meta("bridge.parameterization", "x0")
        .meta("bridge.inputs", r#"{"x_t": "x_t", "cond": "cond", "t": "t"}"#)
        .meta("bridge.outputs", r#"{"raw": "raw"}"#)
        .meta("bridge.value_range", "[-1, 1]")
        .meta("bridge.channel_order", "rgb")
        .meta("bridge.sampler", "rdbm")
        .meta("bridge.nfe", "3")
}

/// Inputs `x_t`, `cond` `[B, 3, H, W]` and `t` `[B]`, output `raw` `[B, 3, H, W]`.
fn io(g: &mut Graph) -> &mut Graph {
    g.input("x_t", FLOAT, &[B, Dim::N(3), H, W])
        .input("cond", FLOAT, &[B, Dim::N(3), H, W])
        .input("t", FLOAT, &[B])
        .output("raw", FLOAT, &[B, Dim::N(3), H, W])
}

/// `raw = a_x·x_t + a_c·cond + b + 0·t` (t reshaped to `[B, 1, 1, 1]`).
fn linear(a_x: f32, a_c: f32, b: f32) -> Graph {
    let mut g = Graph::default();
    io(&mut g);
    package(&mut g);
    g.floats("ax", &[], &[a_x])
        .floats("ac", &[], &[a_c])
        .floats("b", &[], &[b])
        .floats("zero", &[], &[0.0])
        .ints("tshape", &[4], &[-1, 1, 1, 1])
        .node("Mul", &["x_t", "ax"], &["p"], &[])
        .node("Mul", &["cond", "ac"], &["q"], &[])
        .node("Add", &["p", "q"], &["r"], &[])
        .node("Add", &["r", "b"], &["r2"], &[])
        .node("Reshape", &["t", "tshape"], &["t4"], &[])
        .node("Mul", &["t4", "zero"], &["tz"], &[])
        .node("Add", &["r2", "tz"], &["raw"], &[]);
    g
}

/// `raw = 0.5·cond + 0.25` (ignores `x_t` and `t`).
pub fn oracle(dir: &Path, name: &str, sr: usize, multiple: usize, bgr: bool) -> PathBuf {
    let mut g = linear(0.0, 0.5, 0.25);
    g.meta("bridge.sr_scale", &sr.to_string())
        .meta("bridge.spatial_multiple", &multiple.to_string())
        .meta("bridge.channel_order", if bgr { "bgr" } else { "rgb" });
    g.save(&dir.join(name))
}

/// The oracle with metadata overrides (an empty value removes the key).
pub fn oracle_with(dir: &Path, name: &str, over: &[(&str, &str)]) -> PathBuf {
    let mut g = linear(0.0, 0.5, 0.25);
    for (k, v) in over {
        if v.is_empty() { g.unset_meta(k) } else { g.meta(k, v) };
    }
    g.save(&dir.join(name))
}

/// `raw = a_x·x_t + a_c·cond + b` with metadata overrides (an empty value removes the key).
pub fn linear_with(dir: &Path, name: &str, (a_x, a_c, b): (f32, f32, f32), over: &[(&str, &str)]) -> PathBuf {
    let mut g = linear(a_x, a_c, b);
    for (k, v) in over {
        if v.is_empty() { g.unset_meta(k) } else { g.meta(k, v) };
    }
    g.save(&dir.join(name))
}

/// A NADB package: bridge network `raw = 0·x_t` (inputs `x_t`, `t`: no conditioning, as NADB's
/// restoration networks), mean network `M(x) = x + 0.5` shipped beside it with its SHA-256.
pub fn nadb_with_mean(dir: &Path) -> PathBuf {
    let mut m = Graph::default();
    m.input("x", FLOAT, &[B, Dim::N(3), H, W])
        .input("t", FLOAT, &[B])
        .output("y", FLOAT, &[B, Dim::N(3), H, W])
        .floats("half", &[], &[0.5])
        .floats("zero", &[], &[0.0])
        .ints("tshape", &[4], &[-1, 1, 1, 1])
        .node("Add", &["x", "half"], &["y0"], &[])
        .node("Reshape", &["t", "tshape"], &["t4"], &[])
        .node("Mul", &["t4", "zero"], &["tz"], &[])
        .node("Add", &["y0", "tz"], &["y"], &[]);
    let mean = m.save(&dir.join("nadb_mean.onnx"));
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(std::fs::read(&mean).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
    let mn = serde_json::json!({"path": "nadb_mean.onnx", "sha256": sha, "inputs": {"x": "x_t", "t": "t"}, "outputs": {"y": "raw"}}).to_string();
    let mut g = Graph::default();
    g.input("x_t", FLOAT, &[B, Dim::N(3), H, W]).input("t", FLOAT, &[B]).output("raw", FLOAT, &[B, Dim::N(3), H, W]);
    package(&mut g)
        .meta("bridge.family", "nadb")
        .meta("bridge.schedule", "nadb")
        .meta("bridge.parameterization", "drift")
        .meta("bridge.inputs", r#"{"x_t": "x_t", "t": "t"}"#)
        .meta("bridge.sampler", "nadb")
        .meta("bridge.nfe", "5")
        .meta("bridge.mean_network", &mn);
    g.floats("zero", &[], &[0.0])
        .ints("tshape", &[4], &[-1, 1, 1, 1])
        .node("Mul", &["x_t", "zero"], &["xz"], &[])
        .node("Reshape", &["t", "tshape"], &["t4"], &[])
        .node("Mul", &["t4", "zero"], &["tz"], &[])
        .node("Add", &["xz", "tz"], &["raw"], &[]);
    g.save(&dir.join("nadb.onnx"))
}

/// `raw = 0.5·x_t + 0.3·cond` (pointwise, depends on the state so noise matters).
pub fn oracle_mixing(dir: &Path, name: &str) -> PathBuf {
    linear(0.5, 0.3, 0.0).save(&dir.join(name))
}

/// `raw = t·(conv3(tanh(conv3(x_t))) + cond)`, receptive radius 2.
pub fn conv(dir: &Path, name: &str) -> PathBuf {
    let mut g = Graph::default();
    io(&mut g);
    package(&mut g).meta("bridge.receptive_field", "2");
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
    g.save(&dir.join(name))
}

/// `raw = ln(x_t − 10)` (NaN for images); no time input.
pub fn nan(dir: &Path, name: &str) -> PathBuf {
    let mut g = Graph::default();
    g.input("x_t", FLOAT, &[B, Dim::N(3), H, W]).input("cond", FLOAT, &[B, Dim::N(3), H, W]).output("raw", FLOAT, &[B, Dim::N(3), H, W]);
    package(&mut g).meta("bridge.inputs", r#"{"x_t": "x_t", "cond": "cond"}"#);
    g.floats("ten", &[], &[10.0])
        .floats("zero", &[], &[0.0])
        .node("Sub", &["x_t", "ten"], &["d"], &[])
        .node("Log", &["d"], &["l"], &[])
        .node("Mul", &["cond", "zero"], &["cz"], &[])
        .node("Add", &["l", "cz"], &["raw"], &[]);
    g.save(&dir.join(name))
}

/// The oracle on a fixed `[1, 3, size, size]` graph with an int64 scalar time.
pub fn fixed(dir: &Path, name: &str, size: i64) -> PathBuf {
    let mut g = Graph::default();
    let d = [Dim::N(1), Dim::N(3), Dim::N(size), Dim::N(size)];
    g.input("x_t", FLOAT, &d).input("cond", FLOAT, &d).input("t", INT64, &[]).output("raw", FLOAT, &d);
    package(&mut g).meta("bridge.spatial_multiple", "8");
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
    g.save(&dir.join(name))
}

/// 42 3×3 convolutions of 32 channels (slow enough to cancel mid-run); `raw = cond`.
pub fn slow(dir: &Path, name: &str) -> PathBuf {
    let mut g = Graph::default();
    io(&mut g);
    package(&mut g);
    let w = |n: usize, k: u32| -> Vec<f32> { (0..n as u32).map(|i| ((i.wrapping_mul(2654435761u32).wrapping_add(k.wrapping_mul(40503)) >> 20) % 17) as f32 * 0.004 - 0.032).collect() };
    let pads = || ("pads", Attr::Ints(vec![1, 1, 1, 1]));
    g.floats("win", &[32, 3, 3, 3], &w(32 * 27, 0)).node("Conv", &["x_t", "win"], &["h0"], &[pads()]);
    for k in 0..40 {
        let (wi, hi, ho) = (format!("w{k}"), format!("h{k}"), format!("h{}", k + 1));
        g.floats(&wi, &[32, 32, 3, 3], &w(32 * 32 * 9, k + 1)).node("Conv", &[hi.as_str(), wi.as_str()], &[ho.as_str()], &[pads()]);
    }
    g.floats("wout", &[3, 32, 3, 3], &w(3 * 32 * 9, 99))
        .floats("zero", &[], &[0.0])
        .ints("tshape", &[4], &[-1, 1, 1, 1])
        .node("Conv", &["h40", "wout"], &["o"], &[pads()])
        .node("Mul", &["o", "zero"], &["oz"], &[])
        .node("Add", &["oz", "cond"], &["o2"], &[])
        .node("Reshape", &["t", "tshape"], &["t4"], &[])
        .node("Mul", &["t4", "zero"], &["tz"], &[])
        .node("Add", &["o2", "tz"], &["raw"], &[]);
    g.save(&dir.join(name))
}

/// An ONNX file without package metadata.
pub fn plain(dir: &Path, name: &str) -> PathBuf {
    let mut g = Graph::default();
    g.input("x_t", FLOAT, &[B, Dim::N(3), H, W]).output("raw", FLOAT, &[B, Dim::N(3), H, W]).node("Identity", &["x_t"], &["raw"], &[]);
    g.save(&dir.join(name))
}

/// A package whose network is `raw = x_t` with a mean network `M(x) = x + 0.5`.
pub fn with_mean_network(dir: &Path) -> (PathBuf, PathBuf) {
    let mut m = Graph::default();
    m.input("x", FLOAT, &[B, Dim::N(3), H, W])
        .input("t", FLOAT, &[B])
        .output("y", FLOAT, &[B, Dim::N(3), H, W])
        .floats("half", &[], &[0.5])
        .floats("zero", &[], &[0.0])
        .ints("tshape", &[4], &[-1, 1, 1, 1])
        .node("Add", &["x", "half"], &["y0"], &[])
        .node("Reshape", &["t", "tshape"], &["t4"], &[])
        .node("Mul", &["t4", "zero"], &["tz"], &[])
        .node("Add", &["y0", "tz"], &["y"], &[]);
    let mean = m.save(&dir.join("mean.onnx"));
    let bytes = std::fs::read(&mean).unwrap();
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let mn = serde_json::json!({"path": "mean.onnx", "sha256": sha, "t_net": 1.0999, "inputs": {"x": "x_t", "t": "t"}, "outputs": {"y": "raw"}}).to_string();
    let mut g = linear(1.0, 0.0, 0.0);
    g.meta("bridge.mean_network", &mn);
    (g.save(&dir.join("pkg.onnx")), mean)
}

