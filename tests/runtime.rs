//! End-to-end tests of the runtime: ONNX packages written by the project itself, run through
//! ONNX Runtime by `OnnxDenoiser` and `Restorer`.
//!
//! ONNX Runtime is installed into `.deps/onnxruntime` by `scripts/install-ort.sh` when missing.

mod runtime_models;

use bridge::family::{Family, Lin, Marginal, NetCall};
use bridge::image::{Image, ImageRef, Samples};
use bridge::restorer::{Progress, Restorer};
use bridge::runtime::{CudaOptions, ExecutionProvider, OnnxDenoiser, SessionConfig};
use bridge::tile::{TileConfig, TiledDenoiser};
use bridge::{Denoiser, Error, Tensor};
use runtime_models as models;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A family whose network predicts `x0` directly, on a Brownian-bridge path
/// `x_t = (1 − t)·x0 + t·x_T + σ·sqrt(t(1 − t))·z`. Tests pass it with `.family(..)`, which
/// also exercises the family override.
#[derive(Debug)]
struct LinearX0 {
    sigma: f64,
}

impl Family for LinearX0 {
    fn name(&self) -> &'static str {
        "test-linear-x0"
    }
    fn marginal(&self, t: f64) -> Marginal {
        Marginal { x0: 1.0 - t, xt: t, std: self.sigma * (t * (1.0 - t)).max(0.0).sqrt() }
    }
    fn net_call(&self, t: f64) -> NetCall {
        NetCall { t, t_net: t, c_in: 1.0, x0: Some(Lin { x: 0.0, xt: 0.0, out: 1.0 }), clamp: None, raw_is_eps: false }
    }
    fn grid(&self, nfe: usize) -> bridge::Result<Vec<f64>> {
        if nfe == 0 {
            return Err(Error::nfe(0, "need at least one step"));
        }
        Ok((0..=nfe).map(|i| 1.0 - i as f64 / nfe as f64).collect())
    }
    fn ancestral_ratio(&self, t: f64, s: f64) -> Option<f64> {
        // Brownian bridge posterior q(x_s | x_t, x0): mean x0 + (s/t)(x_t − x0).
        Some(if t > 0.0 { s / t } else { 0.0 })
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn fam() -> Box<dyn Family> {
    Box::new(LinearX0 { sigma: 0.5 })
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bridge-rt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cfg() -> SessionConfig {
    models::ensure_ort();
    SessionConfig { threads: 1, ..Default::default() }
}

fn builder(model: &Path) -> bridge::restorer::RestorerBuilder {
    models::ensure_ort();
    Restorer::builder(model).threads(1)
}

/// A deterministic test image: smooth plus texture, u8 RGB.
fn test_image(w: usize, h: usize) -> Vec<u8> {
    (0..w * h * 3)
        .map(|i| {
            let (p, c) = (i / 3, i % 3);
            let (x, y) = (p % w, p / w);
            ((x * 7 + y * 3 + c * 50 + (x * y) % 13 * 9) % 256) as u8
        })
        .collect()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

/// The oracle package's network returns `0.5·cond + 0.25` whatever `x_t` and `t` are; an
/// x0-predicting package (RDBM `pred_x_start`, whose sampler ends on `x0̂`) must return exactly
/// that, through value-range mapping, SR upsampling, padding and cropping.
#[test]
fn oracle_end_to_end_is_exact() {
    let dir = tmpdir("oracle");
    for (sr, multiple, bgr) in [(1usize, 1usize, false), (1, 8, true), (2, 4, false)] {
        let path = models::oracle(&dir, &format!("o{sr}{multiple}{bgr}.onnx"), sr, multiple, bgr);
        let mut r = builder(&path).nfe(4).tile(0).build().unwrap();
        let (w, h) = (21, 13);
        let px = test_image(w, h);
        let out = r.restore(&ImageRef::rgb8(&px, w, h).unwrap()).unwrap();
        // The same computation by hand: to [-1, 1], upsample, f, back.
        let x = ImageRef::rgb8(&px, w, h).unwrap().to_tensor((-1.0, 1.0), bridge::runtime::ChannelOrder::Rgb).unwrap();
        let up = bridge::image::upsample(x.view(), sr, bridge::runtime::Upsample::Bicubic).unwrap();
        let want = up.mapv(|c| 0.5 * c + 0.25);
        let want = Image::from_tensor(want.view(), (-1.0, 1.0), bridge::runtime::ChannelOrder::Rgb, bridge::image::SampleType::U8).unwrap();
        assert_eq!(out, want, "sr {sr} multiple {multiple} bgr {bgr}");
        assert_eq!((out.width(), out.height()), (w * sr, h * sr));
        // The planar [0, 1] entry point (the C ABI's) gives the same image.
        let unit = x.mapv(|v| (v + 1.0) / 2.0);
        let planar = r.restore_rgb(unit.view()).unwrap();
        let Image::U8 { data, .. } = &out else { panic!() };
        let (ow, oh) = (w * sr, h * sr);
        for (i, &v) in data.iter().enumerate() {
            let (p, c) = (i / 3, i % 3);
            let f = planar[[0, c, p / ow, p % ow]];
            assert!((f * 255.0 - v as f32).abs() <= 0.5 + 1e-3, "pixel {p} channel {c}: {f} vs {v}");
        }
        assert_eq!(planar.shape(), &[1, 3, oh, ow]);
    }
}

/// A package's `bridge.prepass` (Wiener with the known blur) runs on the whole frame before the
/// bridge, at the noise ratio of the input's bit depth: the oracle's output is exactly
/// `0.5·prepass(x) + 0.25`, the same with and without tiles, and 8-bit and 16-bit copies of one
/// image take different ratios.
#[test]
fn prepass_runs_before_the_bridge_on_the_whole_frame() {
    use bridge::prepass::{Grid, Prepass};
    let dir = tmpdir("prepass");
    let p = Prepass::wiener(3.0, 61).unwrap();
    let path = models::oracle_with(&dir, "wiener.onnx", &[("bridge.prepass", &p.to_json())]);
    assert_eq!(bridge::runtime::ModelPackage::load(&path).unwrap().meta().prepass, Some(p.clone()));
    let (w, h) = (70, 45);
    let px = test_image(w, h);
    let img = ImageRef::rgb8(&px, w, h).unwrap();
    let x = img.to_tensor((-1.0, 1.0), bridge::runtime::ChannelOrder::Rgb).unwrap();
    let by_hand = |x: &Tensor| p.apply_batch(x.view(), (-1.0, 1.0)).unwrap().mapv(|c| 0.5 * c + 0.25);
    let want = by_hand(&x);
    // The pre-pass changed the image (a no-op would pass the identity checks below).
    assert!(max_diff(&want, &x.mapv(|c| 0.5 * c + 0.25)) > 0.05);
    let mut whole = builder(&path).nfe(2).tile(0).build().unwrap();
    let mut tiled = builder(&path).nfe(2).tile(32).tile_overlap(8).build().unwrap();
    let a = whole.restore_tensor(x.view()).unwrap();
    let b = tiled.restore_tensor(x.view()).unwrap();
    assert!(max_diff(&a, &want) < 1e-5, "whole frame: {}", max_diff(&a, &want));
    assert_eq!(a, b, "tiles must not change a whole-frame pre-pass");
    // 16-bit input off the 8-bit grid: the small 16-bit ratio, so a different result.
    let px16: Vec<u16> = px.iter().enumerate().map(|(i, &v)| (v as u16 * 257) ^ ((i % 3) as u16 + 1)).collect();
    let x16 = ImageRef::rgb16(&px16, w, h).unwrap().to_tensor((-1.0, 1.0), bridge::runtime::ChannelOrder::Rgb).unwrap();
    let unit16 = x16.index_axis(ndarray::Axis(0), 0).mapv(|v| (v + 1.0) / 2.0);
    assert_eq!(Grid::of(unit16.view()), Grid::Bits16);
    let got16 = whole.restore_tensor(x16.view()).unwrap();
    assert!(max_diff(&got16, &by_hand(&x16)) < 1e-5);
    assert!(max_diff(&got16, &a) > 0.05, "16-bit input must use the 16-bit ratio");
}

/// 16-bit and float images keep their type; strided input buffers are read correctly.
#[test]
fn sample_types_and_strides() {
    let dir = tmpdir("types");
    let path = models::oracle(&dir, "o.onnx", 1, 1, false);
    let mut r = builder(&path).nfe(2).build().unwrap();
    let (w, h) = (9, 5);
    let px16: Vec<u16> = (0..w * h * 3).map(|i| (i * 997 % 65536) as u16).collect();
    let out16 = r.restore(&ImageRef::rgb16(&px16, w, h).unwrap()).unwrap();
    let Image::U16 { data, .. } = &out16 else { panic!("u16 in, {out16:?} out") };
    for (o, i) in data.iter().zip(&px16) {
        // f(c) = 0.5c + 0.25 in [-1, 1] is u ↦ 0.5u + 0.375 in [0, 1].
        let want = ((*i as f64 / 65535.0) * 0.5 + 0.375) * 65535.0;
        assert!((*o as f64 - want).abs() <= 1.0, "{o} vs {want}");
    }
    let pxf: Vec<f32> = px16.iter().map(|&v| v as f32 / 65535.0).collect();
    let outf = r.restore(&ImageRef::rgb32f(&pxf, w, h).unwrap()).unwrap();
    assert!(matches!(outf, Image::F32 { .. }));
    // A strided view of the middle of a bigger buffer equals the packed copy.
    let (bw, bh) = (15, 9);
    let big = test_image(bw, bh);
    let stride = bw * 3;
    let off = 2 * stride + 3 * 3;
    let view = ImageRef::with_stride(Samples::U8(&big[off..]), 6, 4, stride).unwrap();
    let packed: Vec<u8> = (0..4).flat_map(|y| big[off + y * stride..off + y * stride + 18].to_vec()).collect();
    assert_eq!(r.restore(&view).unwrap(), r.restore(&ImageRef::rgb8(&packed, 6, 4).unwrap()).unwrap());
}

/// A 2-layer 3×3 conv network (receptive radius 2): tiled runs match the whole-frame run up
/// to rounding when tiles drop ≥ 2 pixels at inner edges, and visibly differ without it.
/// Prints the seam difference (recorded in docs/performance.md).
#[test]
fn conv_seams_within_receptive_field() {
    let dir = tmpdir("seams");
    let path = models::conv(&dir, "conv.onnx");
    let (mut net, _) = OnnxDenoiser::load_package(&path, &cfg()).unwrap();
    let x = Tensor::from_shape_fn((1, 3, 100, 77), |(_, c, y, x)| (((c * 7 + y * 13 + x * 5) % 29) as f32 / 14.0) - 1.0);
    let whole = net.eval(x.view(), x.view(), 0.7).unwrap();
    let mut diffs = Vec::new();
    for trim in [0usize, 1, 2, 3] {
        let tc = TileConfig { size: (32, 32), overlap: 8, trim, batch: 3, align: 1, fixed_shape: false };
        let tiled = TiledDenoiser::new(&mut net, tc).eval(x.view(), x.view(), 0.7).unwrap();
        diffs.push(max_diff(&whole, &tiled));
    }
    println!("conv seam max |tiled − whole| for trim 0..3: {diffs:?}");
    assert!(diffs[0] > 1e-3 && diffs[1] > 1e-4, "{diffs:?}");
    assert!(diffs[2] < 1e-5 && diffs[3] < 1e-5, "{diffs:?}");
}

/// A network that outputs NaN is a typed error, never a NaN image.
#[test]
fn nan_network_is_typed_error() {
    let dir = tmpdir("nan");
    let path = models::nan(&dir, "nan.onnx");
    let mut r = builder(&path).nfe(3).build().unwrap();
    let px = test_image(8, 8);
    let e = r.restore(&ImageRef::rgb8(&px, 8, 8).unwrap()).unwrap_err();
    assert!(matches!(e, Error::NonFinite { .. }), "{e}");
}

/// Corrupt, truncated, empty, foreign and missing files are typed errors.
#[test]
fn bad_model_files_are_typed_errors() {
    let dir = tmpdir("bad");
    let good = models::oracle(&dir, "good.onnx", 1, 1, false);
    let bytes = std::fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.onnx", bytes[..bytes.len() / 2].to_vec()),
        ("empty.onnx", Vec::new()),
        ("junk.onnx", (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()),
    ];
    for (name, data) in cases {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        let e = OnnxDenoiser::load_package(&p, &cfg()).unwrap_err();
        assert!(matches!(e, Error::Package { .. }), "{name}: {e}");
    }
    let plain = models::plain(&dir, "plain.onnx");
    let e = OnnxDenoiser::load_package(&plain, &cfg()).unwrap_err();
    assert!(matches!(&e, Error::Package { reason, .. } if reason.contains("not a libbridge model package")), "{e}");
    let e = OnnxDenoiser::load_package(dir.join("missing.onnx"), &cfg()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    let e = OnnxDenoiser::load_package(&dir, &cfg()).unwrap_err();
    assert!(matches!(e, Error::Package { .. }), "{e}");
}

/// Metadata that contradicts the graph (names, channels, missing roles) or itself is rejected.
#[test]
fn metadata_graph_mismatch_is_rejected() {
    let dir = tmpdir("mismatch");
    let cases: [(&str, &str); 5] = [
        ("bridge.inputs", r#"{"x": "x_t", "cond": "cond", "t": "t"}"#),
        ("bridge.inputs", r#"{"x_t": "x_t", "cond": "cond"}"#),
        ("bridge.outputs", r#"{"out": "raw"}"#),
        ("bridge.channels", "1"),
        ("bridge.value_range", "[1, 0]"),
    ];
    for (i, (k, v)) in cases.iter().enumerate() {
        let p = models::oracle_with(&dir, &format!("m{i}.onnx"), &[(k, v)]);
        let e = OnnxDenoiser::load_package(&p, &cfg()).unwrap_err();
        assert!(matches!(e, Error::Package { .. }), "{k}={v}: {e}");
    }
}

/// Empty, absurdly large and badly strided images are typed errors.
#[test]
fn bad_images_are_typed_errors() {
    let dir = tmpdir("img");
    let path = models::oracle(&dir, "o.onnx", 2, 1, false);
    let mut r = builder(&path).nfe(1).max_pixels(10_000).build().unwrap();
    let px = vec![0u8; 3 * 100 * 100];
    assert!(matches!(ImageRef::rgb8(&px, 0, 0), Err(Error::Image(_))));
    assert!(matches!(ImageRef::with_stride(Samples::U8(&px), 100, 100, 200), Err(Error::Image(_))));
    assert!(matches!(ImageRef::rgb8(&px[..299], 10, 10), Err(Error::Image(_))));
    // 60×60 ×2 = 14 400 output pixels > 10 000.
    let e = r.restore(&ImageRef::rgb8(&px, 60, 60).unwrap()).unwrap_err();
    assert!(matches!(e, Error::Image(_)), "{e}");
    let e = r.restore_tensor(Tensor::zeros((1, 3, 1, 70_000)).view()).unwrap_err();
    assert!(matches!(e, Error::Image(_)), "{e}");
    let e = r.restore_tensor(Tensor::from_elem((1, 3, 4, 4), f32::NAN).view()).unwrap_err();
    assert!(matches!(e, Error::Image(_)), "{e}");
    let e = r.restore_tensor(Tensor::zeros((1, 4, 4, 4)).view()).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    // The restorer still works afterwards.
    assert!(r.restore(&ImageRef::rgb8(&px, 10, 10).unwrap()).is_ok());
}

/// A graph with a fixed 32×32 input and batch 1 restores any size (tiled at 32, padded up
/// when smaller), and with the oracle's pointwise math the result is exact.
#[test]
fn fixed_shape_graph() {
    let dir = tmpdir("fixed");
    let path = models::fixed(&dir, "fixed.onnx", 32);
    for (w, h) in [(50, 70), (20, 12), (32, 32)] {
        let mut r = builder(&path).nfe(2).tile_batch(3).build().unwrap();
        let px = test_image(w, h);
        let x = ImageRef::rgb8(&px, w, h).unwrap().to_tensor((-1.0, 1.0), bridge::runtime::ChannelOrder::Rgb).unwrap();
        let out = r.restore_tensor(x.view()).unwrap();
        assert!(max_diff(&out, &x.mapv(|c| 0.5 * c + 0.25)) < 1e-6, "{w}x{h}");
    }
}

/// Cancelling from another thread stops a long network run mid-way; the restorer works again
/// afterwards. Progress is monotone and ends at 1; a callback returning false cancels.
#[test]
fn cancel_and_progress() {
    let dir = tmpdir("cancel");
    let path = models::slow(&dir, "slow.onnx");
    let px = test_image(192, 192);
    let img = ImageRef::rgb8(&px, 192, 192).unwrap();
    let log: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let l2 = log.clone();
    let mut r = builder(&path)
        .nfe(3)
        .tile(128)
        .tile_overlap(32)
        .on_progress(move |p| {
            l2.lock().unwrap().push(*p);
            true
        })
        .build()
        .unwrap();
    let t0 = Instant::now();
    r.restore(&img).unwrap();
    let full = t0.elapsed();
    let fr: Vec<f64> = log.lock().unwrap().iter().map(Progress::fraction).collect();
    assert!(fr.windows(2).all(|w| w[1] >= w[0]), "{fr:?}");
    assert_eq!(*fr.last().unwrap(), 1.0);
    assert_eq!(fr.len(), 3 * 4, "3 calls × 4 tiles");

    let token = r.cancel_token();
    let t1 = Instant::now();
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        token.cancel();
    });
    let e = r.restore(&img).unwrap_err();
    let took = t1.elapsed();
    h.join().unwrap();
    assert!(matches!(e, Error::Cancelled), "{e}");
    println!("full restore {full:?}; cancelled after {took:?}");
    assert!(took < full / 2, "cancel took {took:?} (full run {full:?})");
    assert!(r.restore(&img).is_ok(), "usable after a cancel");

    r.set_progress(Some(Box::new(|p: &Progress| p.call < 1)));
    assert!(matches!(r.restore(&img), Err(Error::Cancelled)));
}

/// Asking for CUDA in a build without it is a typed error; CPU fallback only on request.
#[test]
fn provider_unavailable_is_typed() {
    let dir = tmpdir("ep");
    let path = models::oracle(&dir, "o.onnx", 1, 1, false);
    let cuda = ExecutionProvider::Cuda(CudaOptions::default());
    let e = builder(&path).execution_provider(cuda.clone()).build().unwrap_err();
    assert!(matches!(e, Error::ProviderUnavailable { .. }), "{e}");
    let c = SessionConfig { provider: cuda, cpu_fallback: true, ..cfg() };
    let (d, _) = OnnxDenoiser::load_package(&path, &c).unwrap();
    assert_eq!(d.provider(), "cpu");
    assert!(d.fallback_reason().is_some());
    let r = builder(&path).execution_provider(ExecutionProvider::Cuda(CudaOptions::default())).cpu_fallback(true).build().unwrap();
    assert_eq!(r.provider(), "cpu");
    assert!(r.fallback_reason().is_some_and(|m| m.contains("cuda")));
}

/// A mean network with a package-given time value (here under RDBM): loaded by relative
/// path, checked by SHA-256, its output is the endpoint and start. The network returns its
/// state, so RDBM's single step ends on `clamp(M(x)) = clamp(x + 0.5)`.
#[test]
fn mean_network_checksum() {
    let dir = tmpdir("mean");
    let (pkg, mean) = models::with_mean_network(&dir);
    let mut r = builder(&pkg).nfe(1).build().unwrap();
    let px = test_image(16, 16);
    let x = ImageRef::rgb8(&px, 16, 16).unwrap().to_tensor((-1.0, 1.0), bridge::runtime::ChannelOrder::Rgb).unwrap();
    let out = r.restore_tensor(x.view()).unwrap();
    assert!(max_diff(&out, &x.mapv(|c| (c + 0.5).clamp(-1.0, 1.0))) < 1e-6);
    // Tamper with the mean network: the checksum catches it.
    let mut bytes = std::fs::read(&mean).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&mean, bytes).unwrap();
    let e = builder(&pkg).build().unwrap_err();
    assert!(matches!(&e, Error::Package { reason, .. } if reason.contains("sha256")), "{e}");
    std::fs::remove_file(&mean).unwrap();
    let e = builder(&pkg).build().unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
}

/// A family given in code replaces the package's; a sampler that cannot serve it is a typed
/// error when the restorer is built (not at the first restore, and not a panic); a sampler
/// that can serve it runs.
#[test]
fn family_override() {
    let dir = tmpdir("override");
    let path = models::oracle(&dir, "o.onnx", 1, 1, false);
    let e = builder(&path).family(fam()).build().expect_err("the package's RDBM sampler cannot serve the test family");
    assert!(matches!(e, Error::Incompatible { .. }), "{e}");
    let mut r = builder(&path).family(fam()).sampler("implicit").build().unwrap();
    assert_eq!(r.family().name(), "test-linear-x0");
    let px = test_image(8, 8);
    r.restore(&ImageRef::rgb8(&px, 8, 8).unwrap()).unwrap();
}

/// The small U-Net (downsampling twice, so its receptive field spans most of a tile):
/// tiled vs whole-frame network output, for the seam numbers in docs/performance.md.
#[test]
fn unet_seam_difference() {
    let dir = tmpdir("unet");
    let path = models::unet_model::unet().write(&dir.join("unet.onnx")).unwrap();
    let (mut net, _) = OnnxDenoiser::load_package(&path, &cfg()).unwrap();
    let x = Tensor::from_shape_fn((1, 3, 192, 256), |(_, c, y, x)| ((((c * 7 + y * 3 + x * 5) % 61) as f32 / 30.0) - 1.0) * 0.8);
    let whole = net.eval(x.view(), x.view(), 0.5).unwrap();
    let scale = whole.iter().map(|v| v.abs()).fold(0f32, f32::max);
    let mut rows = Vec::new();
    for (size, overlap, trim) in [(64usize, 16usize, 0usize), (64, 16, 4), (128, 32, 0), (128, 32, 8), (128, 64, 16)] {
        let tc = TileConfig { size: (size, size), overlap, trim, batch: 4, align: 4, fixed_shape: false };
        let tiled = TiledDenoiser::new(&mut net, tc).eval(x.view(), x.view(), 0.5).unwrap();
        let d = max_diff(&whole, &tiled);
        let mean = whole.iter().zip(&tiled).map(|(a, b)| (a - b).abs() as f64).sum::<f64>() / whole.len() as f64;
        rows.push((size, overlap, trim, d, mean));
        println!("unet seams: tile {size} overlap {overlap} trim {trim}: max |Δ| {d:.3e}, mean |Δ| {mean:.3e} (output max |v| {scale:.3})");
    }
    // Larger overlap and trim bring the tiled output closer to the whole-frame one.
    assert!(rows[4].3 <= rows[2].3 && rows[3].4 <= rows[2].4, "{rows:?}");
    assert!(rows[4].3 < 0.1 * scale, "{rows:?}");
}

/// A real family from package metadata alone (no override): RDBM with `pred_x_start` and its
/// own sampler ends on `x0̂ = clamp(out)`, so the oracle package returns exactly
/// `0.5·cond + 0.25`, whole-frame or tiled.
#[test]
fn rdbm_package_oracle_is_exact() {
    let dir = tmpdir("rdbm");
    let meta = [
        ("bridge.family", "rdbm"),
        ("bridge.schedule", "cosine"),
        ("bridge.parameterization", "x0"),
        ("bridge.family_params", r#"{"lamb": 0.0001, "t_max": 100}"#),
        ("bridge.sampler", "rdbm"),
        ("bridge.nfe", "5"),
        ("bridge.sr_scale", "2"),
    ];
    let path = models::linear_with(&dir, "rdbm.onnx", (0.0, 0.5, 0.25), &meta);
    let (w, h) = (33, 20);
    let px = test_image(w, h);
    let img = ImageRef::rgb8(&px, w, h).unwrap();
    let x = img.to_tensor((-1.0, 1.0), bridge::runtime::ChannelOrder::Rgb).unwrap();
    let want =
        bridge::image::upsample(x.view(), 2, bridge::runtime::Upsample::Bicubic).unwrap().mapv(|c| (0.5 * c + 0.25).clamp(-1.0, 1.0));
    for tile in [0, 16, 32] {
        models::ensure_ort();
        let mut r = Restorer::builder(&path).threads(1).tile(tile).build().unwrap();
        assert_eq!(r.family().name(), "rdbm");
        let out = r.restore_tensor(x.view()).unwrap();
        assert_eq!(max_diff(&out, &want), 0.0, "tile {tile}");
    }
}

/// NADB from package metadata: the mean network (checked by SHA-256) gives the endpoint and
/// start `M(x) = x + 0.5`; with a zero drift one step lands on it exactly. More steps add
/// noise, identically for any tile size.
#[test]
fn nadb_package_with_mean_network() {
    let dir = tmpdir("nadb");
    let path = models::nadb_with_mean(&dir);
    let px = test_image(24, 16);
    let x = ImageRef::rgb8(&px, 24, 16).unwrap().to_tensor((-1.0, 1.0), bridge::runtime::ChannelOrder::Rgb).unwrap();
    models::ensure_ort();
    let mut r = Restorer::builder(&path).threads(1).nfe(1).build().unwrap();
    assert_eq!(r.family().name(), "nadb");
    let out = r.restore_tensor(x.view()).unwrap();
    assert!(max_diff(&out, &x.mapv(|c| c + 0.5)) < 1e-6);
    let run = |tile: usize| Restorer::builder(&path).threads(1).seed(3).tile(tile).build().unwrap().restore_tensor(x.view()).unwrap();
    let whole = run(0);
    assert!(whole.iter().all(|v| v.is_finite()));
    assert_eq!(max_diff(&whole, &run(8)), 0.0);
}

/// GOUB from package metadata with UniDB++'s stochastic data-solver-1 and a pointwise network
/// that mixes state and condition: same seed → the same image, bit for bit, for any tile size,
/// tile batch and thread count (whole-frame counter-based noise); another seed → another image.
#[test]
fn goub_stochastic_sampler_is_tile_invariant() {
    let dir = tmpdir("goub");
    let meta = [
        ("bridge.family", "goub"),
        ("bridge.schedule", "cosine"),
        ("bridge.parameterization", "eps"),
        ("bridge.sampler", "data-solver-1"),
        ("bridge.nfe", "4"),
    ];
    let path = models::linear_with(&dir, "goub.onnx", (0.3, -0.2, 0.0), &meta);
    let px = test_image(40, 28);
    let x = ImageRef::rgb8(&px, 40, 28).unwrap().to_tensor((-1.0, 1.0), bridge::runtime::ChannelOrder::Rgb).unwrap();
    models::ensure_ort();
    let run = |tile: usize, threads: usize, seed: u64| {
        Restorer::builder(&path).threads(threads).seed(seed).tile(tile).tile_batch(3).build().unwrap().restore_tensor(x.view()).unwrap()
    };
    let whole = run(0, 1, 5);
    assert!(whole.iter().all(|v| v.is_finite()));
    for (tile, threads) in [(16, 2), (32, 1), (24, 2), (0, 2)] {
        assert_eq!(max_diff(&whole, &run(tile, threads, 5)), 0.0, "tile {tile} threads {threads}");
    }
    assert!(max_diff(&whole, &run(0, 1, 6)) > 1e-3, "a different seed must change the output");
    // A frame large enough for the host step to split across threads (≥ 2^16 elements): the
    // restorer's thread limit (1: serial; 0: the whole pool) changes no bit either.
    let big = ImageRef::rgb8(&test_image(192, 160), 192, 160).unwrap().to_tensor((-1.0, 1.0), bridge::runtime::ChannelOrder::Rgb).unwrap();
    let run_big =
        |threads: usize| Restorer::builder(&path).threads(threads).seed(5).tile(0).build().unwrap().restore_tensor(big.view()).unwrap();
    let serial = run_big(1);
    for threads in [0, 2, 3] {
        assert_eq!(max_diff(&serial, &run_big(threads)), 0.0, "192x160, threads {threads}");
    }
}
