//! Models written by the ONNX writer, run in ONNX Runtime.
//!
//! ONNX Runtime is found through `ORT_DYLIB_PATH` or the project's `.deps/onnxruntime/` (installed by
//! `scripts/install-ort.sh` if missing). One environment for the whole test process.

use bridge_export::onnx::{Attr, Dim, FLOAT, Graph, INT64};
use bridge_export::reference::unet_reference;
use bridge_export::{InitMode, UNetConfig, Weights, unet_graph};
use ndarray::{ArrayD, IxDyn};
use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("export/ has a parent").to_path_buf()
}

fn ort_library() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let lib = repo_root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1");
    if lib.exists() {
        return lib;
    }
    let out =
        std::process::Command::new("bash").arg(repo_root().join("scripts/install-ort.sh")).output().expect("run scripts/install-ort.sh");
    assert!(out.status.success(), "scripts/install-ort.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn env() -> &'static Environment {
    static ENV: OnceLock<Environment> = OnceLock::new();
    ENV.get_or_init(|| {
        let lib = ort_library();
        let b = ort::init_from(&lib).unwrap_or_else(|e| panic!("cannot load {}: {e}", lib.display()));
        b.with_name("bridge-export-tests").build().expect("ONNX Runtime environment")
    })
}

fn session(path: &Path) -> Session {
    let b = Session::builder(env()).expect("session builder");
    let mut b = b.with_intra_threads(2).unwrap_or_else(|e| panic!("{e}"));
    b.commit_from_file(path).unwrap_or_else(|e| panic!("ONNX Runtime cannot load {}: {e}", path.display()))
}

/// Run a session on named `f32` inputs; returns the named output.
fn run(s: &mut Session, inputs: Vec<(&str, ArrayD<f32>)>, output: &str) -> ArrayD<f32> {
    let feed: Vec<(std::borrow::Cow<'_, str>, ort::session::SessionInputValue<'_>)> =
        inputs.into_iter().map(|(n, a)| (n.into(), Tensor::from_array(a).expect("input tensor").into())).collect();
    let out = s.run(feed).expect("run");
    out[output].try_extract_array::<f32>().expect("f32 output").to_owned()
}

/// Deterministic inputs uniform on [−1, 1).
fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    })
}

/// ‖a − b‖₂ / ‖b‖₂ and max|a − b| / max|b|.
fn rel_err(a: &ArrayD<f32>, b: &ArrayD<f32>) -> (f64, f64) {
    assert_eq!(a.shape(), b.shape());
    let (mut d2, mut b2, mut dmax, mut bmax) = (0f64, 0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b.iter()) {
        let d = (x as f64 - y as f64).abs();
        d2 += d * d;
        b2 += (y as f64).powi(2);
        dmax = dmax.max(d);
        bmax = bmax.max((y as f64).abs());
    }
    ((d2 / b2).sqrt(), dmax / bmax)
}

/// A path in cargo's per-target scratch folder for integration tests (overwritten each run).
fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// (a) `y = 0.5·x + 0.25·cond + 0·t` built by hand (initializers, a `Constant` node, an int64
/// shape): ONNX Runtime computes the expected arithmetic and sees the metadata.
#[test]
fn hand_built_graph_matches_arithmetic() {
    let img = [Dim::S("N"), Dim::N(3), Dim::S("H"), Dim::S("W")];
    let mut g = Graph::default();
    g.input("x", FLOAT, &img).input("cond", FLOAT, &img).input("t", FLOAT, &[Dim::S("N")]).output("y", FLOAT, &img);
    g.floats("a", &[], &[0.5])
        .constant_floats("b", &[], &[0.25])
        .floats("zero", &[], &[0.0])
        .ints("tshape", &[4], &[-1, 1, 1, 1])
        .node("Mul", &["x", "a"], &["p"], &[])
        .node("Mul", &["cond", "b"], &["q"], &[])
        .node("Add", &["p", "q"], &["r"], &[])
        .node("Reshape", &["t", "tshape"], &["t4"], &[])
        .node("Mul", &["t4", "zero"], &["tz"], &[])
        .node("Add", &["r", "tz"], &["y"], &[]);
    g.meta("bridge.family", "test").meta("note", "hand-built").doc("y = 0.5 x + 0.25 cond");
    g.check().unwrap();
    let path = g.write(&tmp("affine.onnx")).unwrap();
    let mut s = session(&path);
    let meta = s.metadata().unwrap();
    assert_eq!(meta.custom("bridge.family").as_deref(), Some("test"));
    assert_eq!(meta.custom("note").as_deref(), Some("hand-built"));
    assert_eq!(meta.producer().as_deref(), Some("libbridge"));
    drop(meta);
    let (x, c) = (random(&[2, 3, 4, 5], 1), random(&[2, 3, 4, 5], 2));
    let t = ArrayD::from_shape_vec(IxDyn(&[2]), vec![0.3, 7.0]).unwrap();
    let y = run(&mut s, vec![("x", x.clone()), ("cond", c.clone()), ("t", t)], "y");
    let want = &x * 0.5 + &c * 0.25;
    assert_eq!(y.shape(), want.shape());
    for (a, b) in y.iter().zip(want.iter()) {
        assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
    }
}

/// A NaN-producing model (`ln(x − 10)`) and a Cast of an int64 time: ONNX Runtime runs both and
/// returns NaN where the arithmetic says so.
#[test]
fn nan_model_and_cast() {
    let img = [Dim::S("N"), Dim::N(1), Dim::S("H"), Dim::S("W")];
    let mut g = Graph::default();
    g.input("x", FLOAT, &img).input("t", INT64, &[]).output("y", FLOAT, &img);
    g.floats("ten", &[], &[10.0])
        .node("Sub", &["x", "ten"], &["d"], &[])
        .node("Log", &["d"], &["l"], &[])
        .node("Cast", &["t"], &["tf"], &[("to", Attr::Int(FLOAT))])
        .node("Add", &["l", "tf"], &["y"], &[]);
    g.check().unwrap();
    let path = g.write(&tmp("nan.onnx")).unwrap();
    let mut s = session(&path);
    let x = ArrayD::from_shape_vec(IxDyn(&[1, 1, 1, 2]), vec![0.5f32, 11.0]).unwrap();
    let t = Tensor::from_array(ArrayD::from_elem(IxDyn(&[]), 2i64)).unwrap();
    let xt = Tensor::from_array(x).unwrap();
    let out = s.run(ort::inputs!["x" => xt, "t" => t]).unwrap();
    let y = out["y"].try_extract_array::<f32>().unwrap();
    assert!(y[[0, 0, 0, 0]].is_nan());
    assert!((y[[0, 0, 0, 1]] - 2.0).abs() < 1e-6);
}

/// (b) + (c): a small random U-Net (2 levels, residual blocks, attention at the low level and in the
/// middle, time embedding, cond concatenation) loads in ONNX Runtime, gives finite output of the right
/// shape at two spatial sizes, and matches the plain-ndarray backend of the same `Ops` trait to
/// ≤ 1e-4 relative error: the emitter writes the network the trait defines.
#[test]
fn unet_matches_reference_backend() {
    for (cond, seed) in [(3usize, 11u64), (0, 12)] {
        let mut cfg = UNetConfig::tiny(3, cond, 3);
        cfg.time_scale = 1000.0;
        let w = Weights::for_unet(&cfg, seed, InitMode::Random).unwrap();
        let path = unet_graph(&cfg, &w).unwrap().write(&tmp(&format!("unet{cond}.onnx"))).unwrap();
        let mut s = session(&path);
        assert_eq!(s.metadata().unwrap().custom("unet.spatial_multiple").as_deref(), Some("2"));
        for (n, h, wd) in [(2usize, 8usize, 8usize), (1, 12, 20)] {
            let x = random(&[n, 3, h, wd], seed + 1);
            let c = random(&[n, cond, h, wd], seed + 2);
            let t = random(&[n], seed + 3).mapv(|v| 0.5 + 0.5 * v);
            let mut feed = vec![("x", x.clone()), ("t", t.clone())];
            if cond > 0 {
                feed.push(("cond", c.clone()));
            }
            let got = run(&mut s, feed, "out");
            assert_eq!(got.shape(), &[n, 3, h, wd]);
            assert!(got.iter().all(|v| v.is_finite()));
            let want = unet_reference(&cfg, &w, &x, (cond > 0).then_some(&c), &t).unwrap();
            let (l2, max) = rel_err(&got, &want);
            eprintln!("cond {cond}, {n}×{h}×{wd}: ORT vs reference rel L2 {l2:.2e}, rel max {max:.2e}");
            assert!(l2 <= 1e-4 && max <= 1e-4, "ORT vs reference: rel L2 {l2:.2e}, rel max {max:.2e}");
            // The output is not trivially constant.
            let spread = got.iter().fold(0f32, |a, &v| a.max(v)) - got.iter().fold(0f32, |a, &v| a.min(v));
            assert!(spread > 1e-2, "output spread {spread}");
            // The comparison is sensitive: the reference with one attention key weight changed by
            // 1 % (or the time shifted by 1e-3) no longer matches.
            let mut w2 = w.clone();
            let k = w2.get("down.1.attn.0.k.weight").unwrap().clone();
            w2.insert("down.1.attn.0.k.weight", &k.shape, k.data.iter().map(|v| v * 1.01).collect()).unwrap();
            let off = unet_reference(&cfg, &w2, &x, (cond > 0).then_some(&c), &t).unwrap();
            assert!(rel_err(&got, &off).0 > 1e-4, "a 1 % attention change went unnoticed");
            let t2 = t.mapv(|v| v + 1e-3);
            let off = unet_reference(&cfg, &w, &x, (cond > 0).then_some(&c), &t2).unwrap();
            assert!(rel_err(&got, &off).0 > 1e-4, "a time shift went unnoticed");
        }
    }
}

/// The demo configuration writes a model under 8 MB that ONNX Runtime runs; training
/// initialization (zero output layer) gives exactly zero output.
#[test]
fn demo_model_size_and_training_init() {
    let cfg = UNetConfig::demo(3, 3, 3);
    let w = Weights::for_unet(&cfg, 0, InitMode::Training).unwrap();
    let path = unet_graph(&cfg, &w).unwrap().write(&tmp("demo.onnx")).unwrap();
    let bytes = std::fs::metadata(&path).unwrap().len();
    assert!(bytes <= 8_000_000, "demo model is {bytes} bytes");
    assert!(bytes as usize >= 4 * cfg.param_count().unwrap());
    let mut s = session(&path);
    let x = random(&[1, 3, 16, 24], 5);
    let y = run(&mut s, vec![("x", x.clone()), ("cond", x), ("t", ArrayD::from_elem(IxDyn(&[1]), 0.5))], "out");
    assert_eq!(y.shape(), &[1, 3, 16, 24]);
    assert!(y.iter().all(|&v| v == 0.0));
}
