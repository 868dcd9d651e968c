//! The graphs come from [`crate::onnx`] with deterministic weights: no training, and every file
//! is the same bytes on every run (tests assert exact restored values and pin files by SHA-256).
//!
//! Shared by the end-to-end runtime tests (`tests/runtime_models.rs`), the C ABI fixtures
//! (`ffi/tests/fixtures/mod.rs`, also behind `cargo run -p bridge-ffi --example c-fixtures`) and
//! the runtime bench (through `tests/unet_model.rs`).
//!
//! Most builders take `channels: Option<usize>`: `None` is the RGB graph whose metadata leaves out
//! `bridge.channels` (the SDK's default of 3; the runtime tests' packages), `Some(c)` a
//! `c`-channel graph that declares `bridge.channels = c` (the C ABI fixtures).
//!
//! These are fixtures: a failure to write one panics with the reason.

use crate::onnx::{Attr, BOOL, Dim, FLOAT, Graph, INT64};
use std::path::{Path, PathBuf};

/// The dynamic batch axis.
pub const B: Dim = Dim::S("B");
/// The dynamic height axis.
pub const H: Dim = Dim::S("H");
/// The dynamic width axis.
pub const W: Dim = Dim::S("W");

/// An image tensor's dims `[B, c, H, W]`.
pub fn image(c: i64) -> [Dim; 4] {
    [B, Dim::N(c), H, W]
}

/// The channel count of a graph built with `channels` (see the module docs).
fn count(channels: Option<usize>) -> i64 {
    channels.unwrap_or(3) as i64
}

/// The repository root (the parent of this crate's folder).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("export/ has a parent").to_path_buf()
}

/// Scratch space for unit tests: the build's own `target/tmp` (a test binary runs from
/// `target/<profile>/deps/`; integration tests get the same folder as `CARGO_TARGET_TMPDIR`), so
/// test files go with the build and never pile up in a shared system temp folder.
pub fn scratch_root() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors().nth(3).map(|t| t.join("tmp")).unwrap_or_else(std::env::temp_dir)
}

/// Install ONNX Runtime into `.deps/onnxruntime` (`scripts/install-ort.sh`) unless it or
/// `ORT_DYLIB_PATH` is already there; once per process.
pub fn ensure_ort() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let root = repo_root();
        if std::env::var_os("ORT_DYLIB_PATH").is_none() && !root.join(".deps/onnxruntime/libonnxruntime.so").exists() {
            let st =
                std::process::Command::new("bash").arg(root.join("scripts/install-ort.sh")).status().expect("run scripts/install-ort.sh");
            assert!(st.success(), "scripts/install-ort.sh failed");
        }
    });
}

/// Check and write a fixture graph to `path`; returns the path.
pub fn save(g: &Graph, path: &Path) -> PathBuf {
    g.check().expect("well-formed fixture graph");
    g.write(path).expect("write fixture model")
}

/// The bridge network's signature: inputs `x_t`, `cond` `[B, c, H, W]` and `t` `[B]`, output
/// `raw` `[B, c, H, W]`.
pub fn io(g: &mut Graph, c: i64) -> &mut Graph {
    g.input("x_t", FLOAT, &image(c)).input("cond", FLOAT, &image(c)).input("t", FLOAT, &[B]).output("raw", FLOAT, &image(c))
}

/// The metadata every x0-predicting fixture starts with: schema 1, `family` and `schedule`, the
/// [`io`] signature, model range [−1, 1], RGB order.
fn x0_meta<'g>(g: &'g mut Graph, family: &str, schedule: &str) -> &'g mut Graph {
    g.meta("bridge.schema_version", "1")
        .meta("bridge.family", family)
        .meta("bridge.schedule", schedule)
        .meta("bridge.parameterization", "x0")
        .meta("bridge.inputs", r#"{"x_t": "x_t", "cond": "cond", "t": "t"}"#)
        .meta("bridge.outputs", r#"{"raw": "raw"}"#)
        .meta("bridge.value_range", "[-1, 1]")
        .meta("bridge.channel_order", "rgb")
}

/// Package metadata of an RDBM x0-predicting (`pred_x_start`) network with RDBM's own sampler
/// (3 steps), whose last step returns `x0̂ = clamp(raw, −1, 1)`; declares `bridge.channels` only
/// when `channels` is `Some`.
pub fn package(g: &mut Graph, channels: Option<usize>) -> &mut Graph {
    x0_meta(g, "rdbm", "cosine");
    if let Some(c) = channels {
        g.meta("bridge.channels", &c.to_string());
    }
    g.meta("bridge.sampler", "rdbm").meta("bridge.nfe", "3")
}

/// `out = x + 0·t` (`t` reshaped to `[B, 1, 1, 1]`): keeps the time input in a graph that does
/// not depend on it. Adds the `tshape` initializer; needs a `zero` initializer.
pub fn plus_zero_time<'g>(g: &'g mut Graph, x: &str, out: &str) -> &'g mut Graph {
    g.ints("tshape", &[4], &[-1, 1, 1, 1]).node("Reshape", &["t", "tshape"], &["t4"], &[]).node("Mul", &["t4", "zero"], &["tz"], &[]).node(
        "Add",
        &[x, "tz"],
        &[out],
        &[],
    )
}

/// An RDBM package computing `raw = a_x·x_t + a_c·cond + b + 0·t` (`t` reshaped to
/// `[B, 1, 1, 1]`, so the graph uses every input).
pub fn linear(channels: Option<usize>, a_x: f32, a_c: f32, b: f32) -> Graph {
    affine(channels, a_x, a_c, &[b])
}

/// `linear` with one offset per channel (`b.len()` is 1 or the channel count).
fn affine(channels: Option<usize>, a_x: f32, a_c: f32, b: &[f32]) -> Graph {
    let mut g = Graph::default();
    io(&mut g, count(channels));
    package(&mut g, channels);
    let b_dims: &[i64] = if b.len() == 1 { &[] } else { &[1, b.len() as i64, 1, 1] };
    g.floats("ax", &[], &[a_x])
        .floats("ac", &[], &[a_c])
        .floats("b", b_dims, b)
        .floats("zero", &[], &[0.0])
        .node("Mul", &["x_t", "ax"], &["p"], &[])
        .node("Mul", &["cond", "ac"], &["q"], &[])
        .node("Add", &["p", "q"], &["r"], &[])
        .node("Add", &["r", "b"], &["r2"], &[]);
    plus_zero_time(&mut g, "r2", "raw");
    g
}

/// The oracle: `raw = 0.5·cond + 0.25` (ignores `x_t` and `t`). With RDBM's x0 sampler the
/// restored pixel is exactly `clamp(0.5·v + 0.375)` for an input `v` in [0, 1] (model range
/// [−1, 1]: `(2v − 1)/2 + 1/4` mapped back).
pub fn oracle(channels: Option<usize>) -> Graph {
    linear(channels, 0.0, 0.5, 0.25)
}

/// The oracle with a tint: `raw = 0.5·cond + (0.35, 0.25, 0.15)` per RGB channel, so a grey
/// input comes out reddish; under the channel ensemble the offsets average to the oracle's 0.25
/// and the output is the oracle's (to within rounding). RGB only.
pub fn tinted() -> Graph {
    affine(None, 0.0, 0.5, &[0.35, 0.25, 0.15])
}

/// A deliberately slow RDBM package (for cancelling mid-run): 42 padded 3×3 convolutions
/// (`c` → 32, 40 × 32 → 32, 32 → `c`) with deterministic pseudo-random weights whose result is
/// multiplied by 0, so `raw = cond`.
pub fn slow(channels: Option<usize>) -> Graph {
    let c = count(channels);
    let mut g = Graph::default();
    io(&mut g, c);
    package(&mut g, channels);
    let w = |n: usize, k: u32| -> Vec<f32> {
        (0..n as u32)
            .map(|i| ((i.wrapping_mul(2654435761).wrapping_add(k.wrapping_mul(40503)) >> 20) % 17) as f32 * 0.004 - 0.032)
            .collect()
    };
    let pads = || ("pads", Attr::Ints(vec![1, 1, 1, 1]));
    g.floats("win", &[32, c, 3, 3], &w(32 * c as usize * 9, 0)).node("Conv", &["x_t", "win"], &["h0"], &[pads()]);
    for k in 0..40 {
        let (wi, hi, ho) = (format!("w{k}"), format!("h{k}"), format!("h{}", k + 1));
        g.floats(&wi, &[32, 32, 3, 3], &w(32 * 32 * 9, k + 1)).node("Conv", &[hi.as_str(), wi.as_str()], &[ho.as_str()], &[pads()]);
    }
    g.floats("wout", &[c, 32, 3, 3], &w(c as usize * 32 * 9, 99))
        .floats("zero", &[], &[0.0])
        .node("Conv", &["h40", "wout"], &["o"], &[pads()])
        .node("Mul", &["o", "zero"], &["oz"], &[])
        .node("Add", &["oz", "cond"], &["o2"], &[]);
    plus_zero_time(&mut g, "o2", "raw");
    g
}

/// An RDBM package whose network never finishes in practice: a `Loop` of 2^62 iterations that
/// passes `cond` through unchanged (`raw = cond`, if it ever ended). For cancellation tests:
/// only terminating the run (`RunOptions::terminate`) stops it.
pub fn endless(channels: Option<usize>) -> Graph {
    let c = count(channels);
    let mut body = Graph::new("body");
    body.input("i", INT64, &[])
        .input("go", BOOL, &[])
        .input("v", FLOAT, &image(c))
        .output("go_out", BOOL, &[])
        .output("v_out", FLOAT, &image(c))
        .node("Identity", &["go"], &["go_out"], &[])
        .node("Identity", &["v"], &["v_out"], &[]);
    let mut g = Graph::default();
    io(&mut g, c);
    package(&mut g, channels);
    g.ints("trips", &[], &[1 << 62])
        .floats("zero", &[], &[0.0])
        .node("Loop", &["trips", "", "cond"], &["looped"], &[("body", Attr::Graph(Box::new(body)))])
        .node("Mul", &["x_t", "zero"], &["xz"], &[])
        .node("Add", &["looped", "xz"], &["o"], &[]);
    plus_zero_time(&mut g, "o", "raw");
    g
}

/// Write a mean network `M(x) = x + 0.5 + 0·t` (inputs `x` `[B, c, H, W]`, `t` `[B]`; output `y`)
/// as `dir/file`; returns its path and lower-case hex SHA-256 (for `bridge.mean_network`).
pub fn mean_network(dir: &Path, file: &str, channels: Option<usize>) -> (PathBuf, String) {
    let img = image(count(channels));
    let mut m = Graph::default();
    m.input("x", FLOAT, &img)
        .input("t", FLOAT, &[B])
        .output("y", FLOAT, &img)
        .floats("half", &[], &[0.5])
        .floats("zero", &[], &[0.0])
        .node("Add", &["x", "half"], &["y0"], &[]);
    plus_zero_time(&mut m, "y0", "y");
    let path = save(&m, &dir.join(file));
    let sha = crate::package::sha256_file(&path).expect("read the mean network back");
    (path, sha)
}

/// A NADB package (`dir/nadb.onnx`, 5 steps of NADB's sampler): bridge network
/// `raw = 0·x_t + 0·t` (inputs `x_t`, `t`: no conditioning, as NADB's restoration networks), with
/// the mean network of [`mean_network`] beside it as `nadb_mean.onnx`, pinned by its SHA-256.
pub fn nadb(dir: &Path, channels: Option<usize>) -> PathBuf {
    let (_, sha) = mean_network(dir, "nadb_mean.onnx", channels);
    let mn =
        serde_json::json!({"path": "nadb_mean.onnx", "sha256": sha, "inputs": {"x": "x_t", "t": "t"}, "outputs": {"y": "raw"}}).to_string();
    let img = image(count(channels));
    let mut g = Graph::default();
    g.input("x_t", FLOAT, &img).input("t", FLOAT, &[B]).output("raw", FLOAT, &img);
    package(&mut g, channels)
        .meta("bridge.family", "nadb")
        .meta("bridge.schedule", "nadb")
        .meta("bridge.parameterization", "drift")
        .meta("bridge.inputs", r#"{"x_t": "x_t", "t": "t"}"#)
        .meta("bridge.sampler", "nadb")
        .meta("bridge.nfe", "5")
        .meta("bridge.mean_network", &mn);
    g.floats("zero", &[], &[0.0]).node("Mul", &["x_t", "zero"], &["xz"], &[]);
    plus_zero_time(&mut g, "xz", "raw");
    save(&g, &dir.join("nadb.onnx"))
}

/// A small restoration U-Net (≈ 0.37 M parameters, deterministic pseudo-random weights):
/// `concat(x_t, cond)` → 32 → ↓64 → ↓128 → ↑64 (+skip) → ↑32 (+skip) → 3, ReLU activations,
/// nearest-neighbour upsampling; the time enters as `t·0.01` added to the input. Inputs `x_t`,
/// `cond` `[B, 3, H, W]` (H, W multiples of 4) and `t` `[B]`; output `raw`. Package metadata for
/// the tests' x0 family (`bridge.family = test`, implicit sampler, 4 steps), spatial multiple 4:
/// callers set the family they run it as.
pub fn unet() -> Graph {
    let mut g = Graph::default();
    io(&mut g, 3);
    x0_meta(&mut g, "test", "linear").meta("bridge.spatial_multiple", "4").meta("bridge.sampler", "implicit").meta("bridge.nfe", "4");
    // xorshift32 weights, He-scaled by fan-in (×1.7 so activations do not die out).
    let mut seed = 0x1234_5678u32;
    let mut weights = |n: usize, fan_in: usize| -> Vec<f32> {
        let scale = (2.0 / fan_in as f32).sqrt();
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                ((seed >> 8) as f32 / 16_777_216.0 * 2.0 - 1.0) * scale * 1.7
            })
            .collect()
    };
    let mut conv = |g: &mut Graph, name: &str, x: &str, cin: i64, cout: i64, stride: i64, relu: bool| -> String {
        let (w, b, y) = (format!("{name}_w"), format!("{name}_b"), format!("{name}_y"));
        g.floats(&w, &[cout, cin, 3, 3], &weights((cout * cin * 9) as usize, (cin * 9) as usize));
        g.floats(&b, &[cout], &vec![0.01; cout as usize]);
        g.node("Conv", &[x, &w, &b], &[&y], &[("pads", Attr::Ints(vec![1, 1, 1, 1])), ("strides", Attr::Ints(vec![stride, stride]))]);
        if relu {
            let r = format!("{name}_r");
            g.node("Relu", &[&y], &[&r], &[]);
            r
        } else {
            y
        }
    };
    g.ints("tshape", &[4], &[-1, 1, 1, 1]).floats("tscale", &[], &[0.01]).floats("scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    g.node("Reshape", &["t", "tshape"], &["t4"], &[]).node("Mul", &["t4", "tscale"], &["ts"], &[]);
    g.node("Add", &["x_t", "ts"], &["xin"], &[]).node("Concat", &["xin", "cond"], &["inp"], &[("axis", Attr::Int(1))]);
    let e1 = conv(&mut g, "e1", "inp", 6, 32, 1, true);
    let d1 = conv(&mut g, "d1", &e1, 32, 64, 2, true);
    let e2 = conv(&mut g, "e2", &d1, 64, 64, 1, true);
    let d2 = conv(&mut g, "d2", &e2, 64, 128, 2, true);
    let m = conv(&mut g, "m", &d2, 128, 128, 1, true);
    g.node("Resize", &[&m, "", "scales"], &["u2"], &[]);
    let u2c = conv(&mut g, "u2c", "u2", 128, 64, 1, true);
    g.node("Add", &[&u2c, &e2], &["s2"], &[]);
    g.node("Resize", &["s2", "", "scales"], &["u1"], &[]);
    let u1c = conv(&mut g, "u1c", "u1", 64, 32, 1, true);
    g.node("Add", &[&u1c, &e1], &["s1"], &[]);
    let out = conv(&mut g, "out", "s1", 32, 3, 1, false);
    g.node("Identity", &[&out], &["raw"], &[]);
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every fixture is a well-formed graph, and the declared channel count shapes the graph
    /// and only then appears in the metadata.
    #[test]
    fn fixtures_are_well_formed() {
        for g in [oracle(None), oracle(Some(1)), slow(None), slow(Some(1)), unet()] {
            g.check().unwrap();
        }
        let has = |g: &Graph, k: &str| g.metadata().iter().any(|(key, _)| key == k);
        assert!(!has(&oracle(None), "bridge.channels"));
        let gray = oracle(Some(1));
        assert!(gray.metadata().iter().any(|(k, v)| k == "bridge.channels" && v == "1"));
        assert_eq!(slow(None).node_count(), 42 + 5);
    }

    /// The NADB package pins its mean network by the file's SHA-256.
    #[test]
    fn nadb_pins_its_mean_network() {
        let dir = scratch_root().join(format!("bridge-fixtures-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = nadb(&dir, None);
        let sha = crate::package::sha256_file(&dir.join("nadb_mean.onnx")).unwrap();
        let model = crate::onnx::read_model(&path).unwrap();
        let mn =
            model.metadata_props.iter().find(|p| p.key.as_deref() == Some("bridge.mean_network")).and_then(|p| p.value.clone()).unwrap();
        let mn: serde_json::Value = serde_json::from_str(&mn).unwrap();
        assert_eq!(mn["sha256"], sha.as_str());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
