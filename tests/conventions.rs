//! Conventions of networks exported from the official repositories, end to end through ONNX
//! Runtime: `bridge.time_input = index` (a graph that looks the noise level up itself, as I2SB's
//! `Image256Net`), a class-label input, a distilled generator's noise input.

#[path = "runtime_models.rs"]
mod runtime_models;

use bridge::family::Family;
use bridge::family::i2sb::{I2sb, I2sbParams};
use bridge::restorer::{Restorer, RestorerBuilder};
use bridge::runtime::SamplingLoop;
use bridge::{Error, Tensor};
use bridge_export::fixtures::{B, image, save};
use bridge_export::onnx::{FLOAT, Graph, INT64};
use std::path::{Path, PathBuf};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bridge-conv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn builder(model: &Path) -> RestorerBuilder {
    runtime_models::ensure_ort();
    Restorer::builder(model).threads(1)
}

fn frame(h: usize, w: usize) -> Tensor {
    Tensor::from_shape_fn((1, 3, h, w), |(_, c, y, x)| (((c * 7 + y * 3 + x * 5) % 23) as f32 / 11.0 - 1.0) * 0.8)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

/// I2SB metadata for a graph with inputs `x_t`, `cond`, `t` (+ `extra` roles), output `raw`.
fn i2sb_meta(g: &mut Graph, extra_inputs: &str) {
    g.meta("bridge.schema_version", "1")
        .meta("bridge.family", "i2sb")
        .meta("bridge.schedule", "i2sb-symmetric")
        .meta("bridge.parameterization", "i2sb")
        .meta("bridge.inputs", &format!(r#"{{"x_t": "x_t", "cond": "cond", "t": "t"{extra_inputs}}}"#))
        .meta("bridge.outputs", r#"{"raw": "raw"}"#)
        .meta("bridge.value_range", "[-1, 1]")
        .meta("bridge.channel_order", "rgb")
        .meta("bridge.sampler", "i2sb")
        .meta("bridge.nfe", "5");
}

/// `raw = 0.1·x_t + 0.2·cond + 0.001·level`, where `level` is the `[B]` float time value.
fn body(g: &mut Graph, level: &str) {
    g.floats("a", &[], &[0.1])
        .floats("c", &[], &[0.2])
        .floats("k", &[], &[0.001])
        .ints("tshape", &[4], &[-1, 1, 1, 1])
        .node("Reshape", &[level, "tshape"], &["l4"], &[])
        .node("Mul", &["l4", "k"], &["lk"], &[])
        .node("Mul", &["x_t", "a"], &["p"], &[])
        .node("Mul", &["cond", "c"], &["q"], &[])
        .node("Add", &["p", "q"], &["pq"], &[])
        .node("Add", &["pq", "lk"], &["raw"], &[]);
}

/// The same I2SB network twice: fed the time value, and fed the integer step with the noise
/// levels tabulated inside the graph (`Gather(noise_levels, n)`, as `Image256Net` does). With
/// `bridge.time_input = index` the SDK feeds the exact step, so both restore identically; the
/// index graph fed `round(noise_level)` (the old behaviour) would read a neighbouring level.
#[test]
fn i2sb_index_time_matches_value_time() {
    let dir = tmpdir("index");
    let fam = I2sb::new(I2sbParams::default()).unwrap();
    let mut value = Graph::default();
    value.input("x_t", FLOAT, &image(3)).input("cond", FLOAT, &image(3)).input("t", FLOAT, &[B]).output("raw", FLOAT, &image(3));
    i2sb_meta(&mut value, "");
    body(&mut value, "t");
    let value = save(&value, &dir.join("value.onnx"));

    let levels: Vec<f32> = (0..1000).map(|n| fam.net_call(n as f64).t_net as f32).collect();
    // The table is not the identity on integers: a rounded level would index another entry.
    assert!((0..1000).filter(|&n| levels[n].round() as usize != n).count() > 500);
    let mut index = Graph::default();
    index.input("x_t", FLOAT, &image(3)).input("cond", FLOAT, &image(3)).input("t", INT64, &[B]).output("raw", FLOAT, &image(3));
    i2sb_meta(&mut index, "");
    index.meta("bridge.time_input", "index").floats("noise_levels", &[1000], &levels).node(
        "Gather",
        &["noise_levels", "t"],
        &["level"],
        &[],
    );
    body(&mut index, "level");
    let index = save(&index, &dir.join("index.onnx"));

    let x = frame(16, 20);
    for sampler in ["i2sb", "i2sb-ot-ode", "distilled"] {
        let a = builder(&value).sampler(sampler).seed(3).build().unwrap().restore_tensor(x.view()).unwrap();
        let mut r = builder(&index).sampler(sampler).seed(3).build().unwrap();
        let b = r.restore_tensor(x.view()).unwrap();
        let d = max_diff(&a, &b);
        assert!(d <= 1e-6, "{sampler}: value vs index time differ by {d}");
        assert!(a.iter().any(|v| (v - x[[0, 0, 0, 0]]).abs() > 1e-3), "{sampler}: output is just the input");
    }
    // The device loop feeds the step index too.
    let a = builder(&value).device_loop(true).build().unwrap().restore_tensor(x.view()).unwrap();
    let mut r = builder(&index).device_loop(true).build().unwrap();
    let b = r.restore_tensor(x.view()).unwrap();
    assert_eq!(r.sampling_loop(), SamplingLoop::Device);
    assert!(max_diff(&a, &b) <= 1e-6);
}

/// `index` on a continuous-time family is a typed error at load.
#[test]
fn index_time_on_a_continuous_family_is_rejected() {
    let dir = tmpdir("index-vp");
    let mut g = Graph::default();
    g.input("x_t", FLOAT, &image(3)).input("cond", FLOAT, &image(3)).input("t", INT64, &[B]).output("raw", FLOAT, &image(3));
    i2sb_meta(&mut g, "");
    g.meta("bridge.family", "ddbm-vp")
        .meta("bridge.schedule", "vp")
        .meta("bridge.parameterization", "ddbm-precond")
        .meta("bridge.sampler", "dbim");
    g.meta("bridge.time_input", "index").floats("levels", &[1000], &[0.5; 1000]).node("Gather", &["levels", "t"], &["level"], &[]);
    body(&mut g, "level");
    let p = save(&g, &dir.join("vp.onnx"));
    let e = builder(&p).build().unwrap_err();
    assert!(matches!(&e, Error::Package { reason, .. } if reason.contains("time_input")), "{e}");
}

/// A class-conditional network: the label reaches the graph (builder option, else the
/// package's default), on the host and the device loop; no label is a typed error.
#[test]
fn class_label_input() {
    let dir = tmpdir("class");
    let mut g = Graph::default();
    g.input("x_t", FLOAT, &image(3)).input("cond", FLOAT, &image(3)).input("t", FLOAT, &[B]).input("label", INT64, &[B]).output(
        "raw",
        FLOAT,
        &image(3),
    );
    // RDBM x0 package: the restored image is clamp(raw) = clamp(0.5·cond + 0.01·label).
    // The fixtures' RDBM x0 package metadata, with the class input's role.
    bridge_export::fixtures::package(&mut g, None).meta("bridge.inputs", r#"{"x_t": "x_t", "cond": "cond", "t": "t", "label": "class"}"#);
    g.floats("h", &[], &[0.5])
        .floats("k", &[], &[0.01])
        .floats("zero", &[], &[0.0])
        .ints("tshape", &[4], &[-1, 1, 1, 1])
        .node("Cast", &["label"], &["lf"], &[("to", bridge_export::onnx::Attr::Int(FLOAT))])
        .node("Reshape", &["lf", "tshape"], &["l4"], &[])
        .node("Mul", &["l4", "k"], &["lk"], &[])
        .node("Reshape", &["t", "tshape"], &["t4"], &[])
        .node("Mul", &["t4", "zero"], &["tz"], &[])
        .node("Mul", &["cond", "h"], &["hc"], &[])
        .node("Add", &["hc", "lk"], &["s"], &[])
        .node("Add", &["s", "tz"], &["raw"], &[]);
    let p = save(&g, &dir.join("class.onnx"));
    let x = frame(8, 12);
    let want = |label: f32| x.mapv(|v| (0.5 * v + 0.01 * label).clamp(-1.0, 1.0));
    for device in [false, true] {
        let got = builder(&p).class_label(7).device_loop(device).build().unwrap().restore_tensor(x.view()).unwrap();
        assert!(max_diff(&got, &want(7.0)) < 1e-6, "device {device}");
    }
    let e = builder(&p).build().unwrap_err();
    assert!(matches!(&e, Error::InvalidParam { reason, .. } if reason.contains("class")), "{e}");
    let mut g2 = g.clone();
    g2.meta("bridge.class_label", "2");
    let p2 = save(&g2, &dir.join("class-default.onnx"));
    let got = builder(&p2).build().unwrap().restore_tensor(x.view()).unwrap();
    assert!(max_diff(&got, &want(2.0)) < 1e-6);
    // A label for a network without a class input.
    let oracle = runtime_models::oracle(&dir, "oracle.onnx", 1, 1, false);
    assert!(matches!(builder(&oracle).class_label(1).build(), Err(Error::InvalidParam { .. })));
}

/// A distilled generator with a noise input: the SDK draws the noise per call (different per
/// seed, the same with and without tiling); other samplers are refused.
#[test]
fn generator_noise_input() {
    let dir = tmpdir("noise");
    let mut g = Graph::default();
    g.input("x_t", FLOAT, &image(3)).input("cond", FLOAT, &image(3)).input("t", FLOAT, &[B]).input("z", FLOAT, &image(2)).output(
        "raw",
        FLOAT,
        &image(3),
    );
    // The fixtures' RDBM x0 package metadata, with the noise input's role and the generator's sampler.
    bridge_export::fixtures::package(&mut g, None)
        .meta("bridge.inputs", r#"{"x_t": "x_t", "cond": "cond", "t": "t", "z": "noise"}"#)
        .meta("bridge.sampler", "distilled")
        .meta("bridge.nfe", "2");
    // raw = 0.5·cond + 0.05·mean_c(z) + 0·t (pointwise).
    g.floats("h", &[], &[0.5])
        .floats("k", &[], &[0.05])
        .floats("zero", &[], &[0.0])
        .ints("tshape", &[4], &[-1, 1, 1, 1])
        .node(
            "ReduceMean",
            &["z"],
            &["zm"],
            &[("axes", bridge_export::onnx::Attr::Ints(vec![1])), ("keepdims", bridge_export::onnx::Attr::Int(1))],
        )
        .node("Mul", &["zm", "k"], &["zk"], &[])
        .node("Mul", &["cond", "h"], &["hc"], &[])
        .node("Reshape", &["t", "tshape"], &["t4"], &[])
        .node("Mul", &["t4", "zero"], &["tz"], &[])
        .node("Add", &["hc", "zk"], &["s"], &[])
        .node("Add", &["s", "tz"], &["raw"], &[]);
    let p = save(&g, &dir.join("gen.onnx"));
    let x = frame(32, 40);
    let run = |seed: u64, tile: Option<usize>| {
        let mut b = builder(&p).seed(seed);
        if let Some(t) = tile {
            b = b.tile(t).tile_overlap(8);
        }
        b.build().unwrap().restore_tensor(x.view()).unwrap()
    };
    let whole = run(1, None);
    let tiled = run(1, Some(16));
    assert_eq!(max_diff(&whole, &tiled), 0.0, "tiling changed the generator noise");
    let other = run(2, None);
    assert!(max_diff(&whole, &other) > 1e-3, "the seed does not reach the noise input");
    // The output is 0.5·x + 0.05·(noise mean) (clamped): the noise is standard normal.
    let dev: Vec<f32> = whole.iter().zip(x.iter()).map(|(o, v)| (o - 0.5 * v) / 0.05).collect();
    let var = dev.iter().map(|d| d * d).sum::<f32>() / dev.len() as f32;
    assert!((0.35..0.65).contains(&var), "mean of 2 normals has variance 0.5, got {var}");
    let e = builder(&p).sampler("rdbm").build().unwrap_err();
    assert!(matches!(e, Error::Incompatible { .. }), "{e}");
}
