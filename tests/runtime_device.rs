//! The device loop (`bridge::runtime::device`) on ONNX Runtime's CPU provider: the same code
//! path as on CUDA, checked against the host loop — same packages, samplers and seeds, outputs
//! compared element by element.
//!
//! ONNX Runtime is installed into `.deps/onnxruntime` by `scripts/install-ort.sh` when missing.

mod runtime_models;

use bridge::restorer::{Restorer, RestorerBuilder};
use bridge::rng::PhiloxNoise;
use bridge::runtime::{DeviceLoop, OnnxDenoiser, SamplingLoop, SessionConfig, build_family, parse_sampler};
use bridge::sampler::{Model, plan, sample};
use bridge::tile::{TileConfig, TiledDenoiser};
use bridge::{Error, Tensor};
use runtime_models as models;
use std::path::{Path, PathBuf};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bridge-dev-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The small restoration U-Net of `tests/unet_model.rs` as a package of `family`.
fn unet_package(dir: &Path, name: &str, meta: &[(&str, &str)]) -> PathBuf {
    let mut g = models::unet_model::unet();
    for (k, v) in meta {
        if v.is_empty() {
            g.unset_meta(k)
        } else {
            g.meta(k, v)
        };
    }
    g.check().expect("well-formed U-Net");
    g.write(&dir.join(name)).expect("write the U-Net")
}

/// A degraded image in [-1, 1] (or [lo, hi]).
fn image(h: usize, w: usize, lo: f32, hi: f32) -> Tensor {
    Tensor::from_shape_fn((1, 3, h, w), |(_, c, y, x)| {
        let v = ((c * 7 + y * 3 + x * 5) % 23) as f32 / 22.0;
        lo + (hi - lo) * v
    })
}

/// Max |a − b| and the number of elements that differ (`!=`, so ±0 count as equal).
fn diff(a: &Tensor, b: &Tensor) -> (f32, usize) {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b).fold((0f32, 0usize), |(m, n), (x, y)| (m.max((x - y).abs()), n + usize::from(x != y)))
}

/// Restore `x` with the host loop and with the device loop; the outputs must be identical.
fn same_both_ways(pkg: &Path, sampler: &str, eta: Option<f64>, nfe: usize, x: &Tensor, tag: &str) -> Tensor {
    models::ensure_ort();
    let build = |on: bool| {
        let mut b = Restorer::builder(pkg).threads(2).sampler(sampler).nfe(nfe).seed(11).tile(0).device_loop(on);
        if let Some(e) = eta {
            b = b.eta(e);
        }
        b.build().unwrap_or_else(|e| panic!("{tag}: {e}"))
    };
    let mut host = build(false);
    let a = host.restore_tensor(x.view()).unwrap_or_else(|e| panic!("{tag} host: {e}"));
    assert_eq!(host.sampling_loop(), SamplingLoop::Host("device loop off"));
    let mut dev = build(true);
    assert!(dev.device_loop());
    let b = dev.restore_tensor(x.view()).unwrap_or_else(|e| panic!("{tag} device: {e}"));
    assert_eq!(dev.sampling_loop(), SamplingLoop::Device, "{tag}");
    let (max, n) = diff(&a, &b);
    let bits = a.iter().zip(&b).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
    let saturated = a.iter().filter(|v| v.abs() == 1.0).count();
    let top = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    println!(
        "{tag}: {} elements ({saturated} at ±1, max |v| {top:.3}), max |host − device| = {max:e}, {n} differ, {bits} differ in bits",
        a.len()
    );
    assert!(a.iter().all(|v| v.is_finite()), "{tag}: finite output");
    assert_eq!(n, 0, "{tag}: device loop differs from the host loop (max {max:e})");
    assert!(4 * saturated < 3 * a.len(), "{tag}: the output is not just the clamp");
    // A stochastic sampler's device run depends on the seed: the uploaded noise is used.
    let p = plan::plan(dev.family(), &dev.options().sampler, nfe, false).unwrap().unwrap();
    if p.noisy_steps() > 0 {
        dev.set_seed(12);
        let c = dev.restore_tensor(x.view()).unwrap();
        assert!(diff(&b, &c).1 > 0, "{tag}: another seed, another image");
    }
    a
}

/// The U-Net on every family with its row samplers: identical output both ways (`==` on every
/// element), for stochastic and deterministic samplers, input scaling (DDBM's `c_in`), clamps,
/// steps without a network call (GOUB/UniDB tops) and the ε and x0 sources.
#[test]
fn unet_families_identical_both_ways() {
    let dir = tmpdir("unet");
    let x = image(24, 32, -1.0, 1.0);
    let goub = unet_package(
        &dir,
        "goub.onnx",
        &[("bridge.family", "goub"), ("bridge.schedule", "cosine"), ("bridge.parameterization", "eps"), ("bridge.value_range", "[0, 1]")],
    );
    let xg = image(24, 32, 0.0, 1.0);
    for (s, nfe) in [("data-solver-1", 4), ("data-solver-1-ode", 9), ("noise-solver-1", 4), ("euler-sde", 100)] {
        same_both_ways(&goub, s, None, nfe, &xg, &format!("goub {s} nfe {nfe}"));
    }
    same_both_ways(&goub, "implicit", Some(1.0), 5, &xg, "goub implicit η 1");
    let unidb = unet_package(
        &dir,
        "unidb.onnx",
        &[
            ("bridge.family", "unidb"),
            ("bridge.schedule", "cosine"),
            ("bridge.parameterization", "eps"),
            ("bridge.family_params", r#"{"gamma_inv": 1e-7}"#),
        ],
    );
    same_both_ways(&unidb, "data-solver-1", None, 4, &xg, "unidb data-solver-1");
    same_both_ways(&unidb, "mean-ode", None, 100, &xg, "unidb mean-ode");
    let vp = unet_package(
        &dir,
        "vp.onnx",
        &[("bridge.family", "ddbm-vp"), ("bridge.schedule", "vp"), ("bridge.parameterization", "ddbm-precond")],
    );
    for (s, eta) in [("dbim", 0.0), ("dbim", 0.5), ("implicit", 1.0)] {
        same_both_ways(&vp, s, Some(eta), 6, &x, &format!("ddbm-vp {s} η {eta}"));
    }
    let ve = unet_package(
        &dir,
        "ve.onnx",
        &[("bridge.family", "ddbm-ve"), ("bridge.schedule", "ve"), ("bridge.parameterization", "ddbm-precond")],
    );
    same_both_ways(&ve, "dbim", Some(1.0), 5, &x, "ddbm-ve dbim η 1");
    let i2sb = unet_package(
        &dir,
        "i2sb.onnx",
        &[("bridge.family", "i2sb"), ("bridge.schedule", "i2sb-symmetric"), ("bridge.parameterization", "i2sb")],
    );
    same_both_ways(&i2sb, "i2sb", None, 5, &x, "i2sb");
    same_both_ways(&i2sb, "i2sb-ot-ode", None, 5, &x, "i2sb ot-ode");
    // `distilled` is not a row sampler (the generator's noise is a network input): host loop only.
    let rdbm =
        unet_package(&dir, "rdbm.onnx", &[("bridge.family", "rdbm"), ("bridge.schedule", "cosine"), ("bridge.parameterization", "x0")]);
    same_both_ways(&rdbm, "rdbm", None, 5, &x, "rdbm x0");
    same_both_ways(&rdbm, "rdbm-eps", None, 5, &x, "rdbm x0 eps-form");
    let rdbm_eps = unet_package(
        &dir,
        "rdbm-eps.onnx",
        &[("bridge.family", "rdbm"), ("bridge.schedule", "cosine"), ("bridge.parameterization", "eps")],
    );
    same_both_ways(&rdbm_eps, "rdbm-eps", None, 5, &x, "rdbm pred_noise eps-form");
}

/// NADB: the mean network (host, once) gives `x_T`, which differs from the conditioning image;
/// the bridge network has no conditioning input.
#[test]
fn nadb_with_mean_network_identical() {
    let dir = tmpdir("nadb");
    let pkg = models::nadb_with_mean(&dir);
    same_both_ways(&pkg, "nadb", None, 5, &image(8, 12, -1.0, 1.0), "nadb");
}

/// An int64 scalar time on a graph with a fixed 1×3×16×16 shape: the device loop fills the
/// graph's own time type; a frame of another size pads up to it and still runs on the device.
#[test]
fn fixed_graph_and_integer_time() {
    let dir = tmpdir("fixed");
    let pkg = models::fixed(&dir, "fixed.onnx", 16);
    let x = image(16, 16, -1.0, 1.0);
    same_both_ways(&pkg, "rdbm", None, 3, &x, "fixed int64 t");
    let mut r = Restorer::builder(&pkg).threads(1).device_loop(true).build().unwrap();
    r.restore_tensor(image(10, 12, -1.0, 1.0).view()).unwrap();
    assert_eq!(r.sampling_loop(), SamplingLoop::Device);
}

/// What the device loop does not take runs the host loop, automatically, with the reason.
#[test]
fn automatic_fallback() {
    models::ensure_ort();
    let dir = tmpdir("fallback");
    let vp = unet_package(
        &dir,
        "vp.onnx",
        &[("bridge.family", "ddbm-vp"), ("bridge.schedule", "vp"), ("bridge.parameterization", "ddbm-precond")],
    );
    let x = image(24, 32, -1.0, 1.0);
    for (s, want) in [("heun", "the sampler is not one row per step"), ("dbim-2", "the sampler is not one row per step")] {
        let mut r = Restorer::builder(&vp).threads(2).sampler(s).nfe(5).tile(0).device_loop(true).build().unwrap();
        r.restore_tensor(x.view()).unwrap();
        assert_eq!(r.sampling_loop(), SamplingLoop::Host(want), "{s}");
    }
    // A frame larger than a tile runs on the device too (tiled), and within one tile.
    let mut r = Restorer::builder(&vp).threads(2).sampler("dbim").nfe(3).tile(16).tile_overlap(4).device_loop(true).build().unwrap();
    r.restore_tensor(x.view()).unwrap();
    assert_eq!(r.sampling_loop(), SamplingLoop::Device);
    r.options_mut().tile.size = (64, 64);
    r.restore_tensor(x.view()).unwrap();
    assert_eq!(r.sampling_loop(), SamplingLoop::Device);
    // A tiled frame with a sampler the device loop does not take runs the host loop.
    let mut r = Restorer::builder(&vp).threads(2).sampler("heun").nfe(3).tile(16).tile_overlap(4).device_loop(true).build().unwrap();
    r.restore_tensor(x.view()).unwrap();
    assert_eq!(r.sampling_loop(), SamplingLoop::Host("the sampler is not one row per step"));
    // Off by default on the CPU; switchable per restorer.
    let mut r = Restorer::builder(&vp).threads(2).nfe(3).tile(0).build().unwrap();
    assert!(!r.device_loop());
    r.set_device_loop(true);
    r.restore_tensor(x.view()).unwrap();
    assert_eq!(r.sampling_loop(), SamplingLoop::Device);
    // A sampler that cannot serve the family is the same typed error with the device loop on,
    // and it comes when the restorer is built, not at the first frame.
    let err = Restorer::builder(&vp).threads(2).sampler("i2sb").nfe(3).tile(0).device_loop(true).build().err();
    assert!(matches!(err, Some(Error::Incompatible { .. })), "{err:?}");
}

/// NaN from the network: the device loop reports the same call as the host loop, after one
/// read-back at the end.
#[test]
fn non_finite_is_the_same_error() {
    models::ensure_ort();
    let dir = tmpdir("nan");
    let pkg = models::nan(&dir, "nan.onnx");
    let x = image(8, 8, -1.0, 1.0);
    let err = |on: bool| Restorer::builder(&pkg).threads(1).tile(0).device_loop(on).build().unwrap().restore_tensor(x.view()).unwrap_err();
    let (h, d) = (err(false), err(true));
    assert!(matches!(h, Error::NonFinite { .. }), "{h}");
    assert_eq!(h.to_string(), d.to_string());
}

/// The progress callback sees one report per call and cancels the device loop.
#[test]
fn progress_and_cancel() {
    models::ensure_ort();
    let dir = tmpdir("progress");
    let pkg = models::oracle_mixing(&dir, "mix.onnx");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let mut r = Restorer::builder(&pkg)
        .threads(1)
        .nfe(4)
        .tile(0)
        .device_loop(true)
        .on_progress(move |p| {
            s2.lock().unwrap().push((p.call, p.tile, p.tiles));
            p.call < 2
        })
        .build()
        .unwrap();
    assert!(matches!(r.restore_tensor(image(8, 8, -1.0, 1.0).view()), Err(Error::Cancelled)));
    assert_eq!(r.sampling_loop(), SamplingLoop::Device);
    assert_eq!(*seen.lock().unwrap(), vec![(0, 1, 1), (1, 1, 1), (2, 1, 1)]);
}

/// The GPU code path on the CPU provider (`staged`: buffers from the session's allocator, every
/// transfer an ONNX Runtime copy, the noise upload overlapped with the network run) gives the
/// host loop's output, and so does the direct path; checked through `DeviceLoop::sample`
/// against `sampler::sample` over the same `OnnxDenoiser`.
#[test]
fn staged_path_equals_host_loop() {
    models::ensure_ort();
    let dir = tmpdir("staged");
    let pkg =
        unet_package(&dir, "goub.onnx", &[("bridge.family", "goub"), ("bridge.schedule", "cosine"), ("bridge.parameterization", "eps")]);
    let cfg = SessionConfig { threads: 2, ..Default::default() };
    let (mut net, meta) = OnnxDenoiser::load_package(&pkg, &cfg).unwrap();
    let family = build_family(&meta).unwrap();
    let x = image(20, 28, 0.0, 1.0);
    for (name, nfe) in [("data-solver-1", 4), ("implicit", 3), ("noise-solver-1", 9)] {
        let eta = (name == "implicit").then_some(0.7);
        let sampler = parse_sampler(name, eta, None).unwrap();
        let p = plan::plan(family.as_ref(), &sampler, nfe, false).unwrap().unwrap();
        let host = {
            let mut model = Model::new(&mut net, family.as_ref(), x.view(), x.view()).unwrap();
            sample(&mut model, &sampler, nfe, &mut PhiloxNoise::new(5)).unwrap()
        };
        for staged in [false, true] {
            let mut dev = DeviceLoop::new(&cfg).staged(staged);
            let out = dev.sample(&mut net, &p, x.view(), x.view(), &mut PhiloxNoise::new(5), None).unwrap();
            let (max, n) = diff(&host, &out);
            println!("{name} staged {staged}: max {max:e}, {n} differ");
            assert_eq!(n, 0, "{name} staged {staged}");
        }
        // Another seed gives another image (the uploaded noise is used).
        let other = DeviceLoop::new(&cfg).sample(&mut net, &p, x.view(), x.view(), &mut PhiloxNoise::new(6), None).unwrap();
        if p.noisy_steps() > 0 {
            assert!(diff(&host, &other).1 > 0, "{name}: seed");
        }
    }
    // Bad input is a typed error.
    let mut dev = DeviceLoop::new(&cfg);
    let p = plan::plan(family.as_ref(), &parse_sampler("implicit", None, None).unwrap(), 3, false).unwrap().unwrap();
    let bad = x.mapv(|v| v * f32::NAN);
    assert!(matches!(dev.sample(&mut net, &p, bad.view(), x.view(), &mut PhiloxNoise::new(0), None), Err(Error::InvalidParam { .. })));
    let small = image(20, 20, 0.0, 1.0);
    assert!(matches!(dev.sample(&mut net, &p, x.view(), small.view(), &mut PhiloxNoise::new(0), None), Err(Error::ShapeMismatch { .. })));
}

/// `DeviceLoop::sample_values` (x_T and cond as ONNX Runtime values, the final state returned
/// as one, the final clamp on the device) gives `DeviceLoop::sample`'s output bit for bit,
/// direct and on the GPU code path (`staged`), for stochastic and deterministic samplers.
#[test]
fn device_values_equal_host_views() {
    use bridge::runtime::ort::value::Tensor as OrtTensor;
    models::ensure_ort();
    let dir = tmpdir("values");
    let pkg =
        unet_package(&dir, "goub.onnx", &[("bridge.family", "goub"), ("bridge.schedule", "cosine"), ("bridge.parameterization", "eps")]);
    let cfg = SessionConfig { threads: 2, ..Default::default() };
    let (mut net, meta) = OnnxDenoiser::load_package(&pkg, &cfg).unwrap();
    let family = build_family(&meta).unwrap();
    let x = image(12, 20, 0.0, 1.0);
    let xv = OrtTensor::from_array(([1usize, 3, 12, 20], x.iter().copied().collect::<Vec<f32>>())).unwrap();
    for (name, nfe) in [("data-solver-1", 4), ("implicit", 3)] {
        let sampler = parse_sampler(name, (name == "implicit").then_some(0.7), None).unwrap();
        let p = plan::plan(family.as_ref(), &sampler, nfe, false).unwrap().unwrap();
        let want = DeviceLoop::new(&cfg).sample(&mut net, &p, x.view(), x.view(), &mut PhiloxNoise::new(5), None).unwrap();
        for staged in [false, true] {
            let mut dev = DeviceLoop::new(&cfg).staged(staged);
            let out = dev.sample_values(&mut net, &p, &xv, &xv, &mut PhiloxNoise::new(5), None).unwrap();
            let got = Tensor::from_shape_vec((1, 3, 12, 20), out.extract_tensor().1.to_vec()).unwrap();
            let (max, n) = diff(&want, &got);
            assert_eq!(n, 0, "{name} staged {staged}: max {max:e}");
            if p.clamp.is_some() {
                assert!(got.iter().all(|&v| (p.clamp.unwrap().0..=p.clamp.unwrap().1).contains(&v)), "{name}: clamped");
            }
        }
    }
    // A value of the wrong rank or a cond of another size is a typed error.
    let p = plan::plan(family.as_ref(), &parse_sampler("implicit", None, None).unwrap(), 3, false).unwrap().unwrap();
    let flat = OrtTensor::from_array(([720usize], vec![0f32; 720])).unwrap();
    let mut dev = DeviceLoop::new(&cfg);
    assert!(matches!(dev.sample_values(&mut net, &p, &flat, &flat, &mut PhiloxNoise::new(0), None), Err(Error::InvalidParam { .. })));
    let small = OrtTensor::from_array(([1usize, 3, 12, 12], vec![0f32; 432])).unwrap();
    assert!(matches!(dev.sample_values(&mut net, &p, &xv, &small, &mut PhiloxNoise::new(0), None), Err(Error::ShapeMismatch { .. })));
}

/// A frame "in device memory" (host memory on the CPU provider: the same graphs and copies as
/// CUDA memory) restored on the device — converted by the pixel graphs, sampled by
/// `DeviceLoop::sample_values` — gives the host path's bytes (`pixel::decode*`,
/// `restore_rgb`, `pixel::encode*`), row padding untouched: NV12 with pitches past the width
/// and an odd chroma width, and RGB8/BGR8; an RGB and a BGR network of another value range.
/// The device path really ran (`Ok(None)`, `SamplingLoop::Device`); a frame it cannot take is
/// told why and left alone.
#[test]
fn device_frames_equal_host_frames() {
    use bridge::pixel::{self, Layout, Nv12Layout, PixelFormat, YuvMatrix};
    use bridge::runtime::device_memory::Memory;
    use bridge::runtime::pixel_graph::FrameLayout;
    models::ensure_ort();
    let dir = tmpdir("frames");
    let bytes = |n: usize, seed: u64| -> Vec<u8> {
        let mut s = bridge_export::weights::SplitMix(seed);
        (0..n).map(|_| s.next_u64() as u8).collect()
    };
    let (w, h) = (20usize, 12usize);
    for (k, (range, order)) in [("[-1, 1]", "rgb"), ("[0, 1]", "bgr")].into_iter().enumerate() {
        let pkg = unet_package(
            &dir,
            &format!("goub{k}.onnx"),
            &[
                ("bridge.family", "goub"),
                ("bridge.schedule", "cosine"),
                ("bridge.parameterization", "eps"),
                ("bridge.value_range", range),
                ("bridge.channel_order", order),
            ],
        );
        let mut r =
            Restorer::builder(&pkg).threads(2).sampler("implicit").eta(0.5).nfe(3).seed(3).tile(0).device_loop(true).build().unwrap();
        let nv = Nv12Layout { y_pitch: 23, uv_pitch: 24, yuv_matrix: YuvMatrix::Bt709, ..Nv12Layout::new(w, h) };
        let (ny, nuv) = nv.plane_lens().unwrap();
        let mut rgb = Layout::packed(w, h, PixelFormat::Bgr8).unwrap();
        rgb.stride += 5;
        let nrgb = rgb.required_len().unwrap();
        let (y, uv, px) = (bytes(ny, 1), bytes(nuv, 2), bytes(nrgb, 3));
        let fnv = FrameLayout::Nv12(nv);
        let frgb = FrameLayout::Packed8 { width: w, height: h, stride: rgb.stride, format: PixelFormat::Bgr8 };

        // NV12 in, NV12 out; then BGR8 in, NV12 out and NV12 in, BGR8 out.
        let host_in = |f: &FrameLayout| match f {
            FrameLayout::Nv12(l) => pixel::decode_nv12(&y, &uv, l).unwrap(),
            _ => pixel::decode(&px, &rgb).unwrap(),
        };
        for (fin, fout) in [(fnv, fnv), (frgb, fnv), (fnv, frgb)] {
            let p = host_in(&fin);
            let restored = pixel::Planar { rgb: r.restore_rgb(p.rgb.view()).unwrap(), alpha: None };
            let (mut wy, mut wuv, mut wpx) = (vec![0xEEu8; ny], vec![0xEEu8; nuv], vec![0xEEu8; nrgb]);
            match fout {
                FrameLayout::Nv12(l) => pixel::encode_nv12(&restored, &l, &mut wy, &mut wuv).unwrap(),
                _ => pixel::encode(&restored, &rgb, &mut wpx).unwrap(),
            }
            let (mut iy, mut iuv, mut ipx) = (y.clone(), uv.clone(), px.clone());
            let (mut oy, mut ouv, mut opx) = (vec![0xEEu8; ny], vec![0xEEu8; nuv], vec![0xEEu8; nrgb]);
            let ins: Vec<*mut u8> = match fin {
                FrameLayout::Nv12(_) => vec![iy.as_mut_ptr(), iuv.as_mut_ptr()],
                _ => vec![ipx.as_mut_ptr()],
            };
            let outs: Vec<*mut u8> = match fout {
                FrameLayout::Nv12(_) => vec![oy.as_mut_ptr(), ouv.as_mut_ptr()],
                _ => vec![opx.as_mut_ptr()],
            };
            let ran = unsafe { r.restore_frame_on_device(&ins, &fin, &outs, &fout, Memory::Host) }.unwrap();
            assert_eq!(ran, None, "{range} {order}: the device path must run");
            assert_eq!(r.sampling_loop(), SamplingLoop::Device);
            assert_eq!((oy, ouv, opx), (wy, wuv, wpx), "{range} {order}: {fin:?} -> {fout:?}");
        }
    }
    // A frame the device path cannot take: told why, nothing written.
    let pkg = dir.join("goub0.onnx");
    let mut off = Restorer::builder(&pkg).threads(2).sampler("implicit").nfe(3).tile(0).device_loop(false).build().unwrap();
    let nv = Nv12Layout::new(w, h);
    let (ny, nuv) = nv.plane_lens().unwrap();
    let (mut y, mut uv, mut oy, mut ouv) = (vec![16u8; ny], vec![128u8; nuv], vec![0xEEu8; ny], vec![0xEEu8; nuv]);
    let f = FrameLayout::Nv12(nv);
    let why = unsafe {
        off.restore_frame_on_device(&[y.as_mut_ptr(), uv.as_mut_ptr()], &f, &[oy.as_mut_ptr(), ouv.as_mut_ptr()], &f, Memory::Host)
    }
    .unwrap();
    assert_eq!(why, Some("device loop off"));
    assert!(oy.iter().chain(&ouv).all(|&b| b == 0xEE));
    // Host-only stages keep a frame on the host even with the device loop on: a package's
    // pre-pass and the channel ensemble (each would otherwise be skipped).
    let wiener = bridge::prepass::Prepass::wiener(3.0, 61).unwrap().to_json();
    let pre = unet_package(
        &dir,
        "goub-prepass.onnx",
        &[("bridge.family", "goub"), ("bridge.schedule", "cosine"), ("bridge.parameterization", "eps"), ("bridge.prepass", &wiener)],
    );
    // A package that asks for the ensemble (`bridge.channel_ensemble`) gets it by default; the
    // builder's `channel_ensemble(false)` turns it off, and the frame then runs on the device.
    let asks = unet_package(
        &dir,
        "goub-ensemble.onnx",
        &[
            ("bridge.family", "goub"),
            ("bridge.schedule", "cosine"),
            ("bridge.parameterization", "eps"),
            ("bridge.channel_ensemble", "true"),
        ],
    );
    let host = Some("the channel ensemble runs on the host");
    for (pkg, ensemble, want) in [
        (&pre, Some(false), Some("the pre-pass runs on the host")),
        (&pkg, Some(true), host),
        (&asks, None, host),
        (&asks, Some(false), None),
    ] {
        let b = Restorer::builder(pkg).threads(2).sampler("implicit").nfe(3).tile(0).device_loop(true);
        let mut r = b.channel_ensemble(ensemble).build().unwrap();
        assert_eq!(r.options().channel_ensemble, want == host, "{pkg:?} {ensemble:?}");
        oy.fill(0xEE);
        ouv.fill(0xEE);
        let why = unsafe {
            r.restore_frame_on_device(&[y.as_mut_ptr(), uv.as_mut_ptr()], &f, &[oy.as_mut_ptr(), ouv.as_mut_ptr()], &f, Memory::Host)
        }
        .unwrap();
        assert_eq!(why, want, "{pkg:?} {ensemble:?}");
        if want.is_some() {
            assert!(oy.iter().chain(&ouv).all(|&b| b == 0xEE), "nothing written when the frame is refused");
        } else {
            assert_eq!(r.sampling_loop(), SamplingLoop::Device);
            assert!(oy.iter().any(|&b| b != 0xEE), "the device path wrote the frame");
        }
    }
}

/// The GOUB metadata the tiled tests run their networks as (ε-predicting; a stochastic and a
/// deterministic row sampler).
const GOUB: [(&str, &str); 5] = [
    ("bridge.family", "goub"),
    ("bridge.schedule", "cosine"),
    ("bridge.parameterization", "eps"),
    ("bridge.value_range", "[0, 1]"),
    ("bridge.sampler", "data-solver-1"),
];

/// Progress reports `(call, tiles done, tiles)` of a restore.
type Log = std::sync::Arc<std::sync::Mutex<Vec<(usize, usize, usize)>>>;

/// Restore `x` tiled (`tune` sets the tiling) with the host loop and with the device loop: the
/// device loop is taken, the outputs are identical element by element and the progress reports
/// are the host's. Returns the reports. A stochastic sampler's device output changes with the
/// seed (the noise is used).
fn tiled_both_ways(
    pkg: &Path,
    sampler: &str,
    nfe: usize,
    x: &Tensor,
    tune: impl Fn(RestorerBuilder) -> RestorerBuilder,
    tag: &str,
) -> Vec<(usize, usize, usize)> {
    models::ensure_ort();
    let run = |on: bool| {
        let log: Log = Default::default();
        let l2 = log.clone();
        let b = Restorer::builder(pkg).threads(2).sampler(sampler).nfe(nfe).seed(11).device_loop(on).on_progress(move |p| {
            l2.lock().unwrap().push((p.call, p.tile, p.tiles));
            true
        });
        let mut r = tune(b).build().unwrap_or_else(|e| panic!("{tag}: {e}"));
        let out = r.restore_tensor(x.view()).unwrap_or_else(|e| panic!("{tag} ({on}): {e}"));
        let log = log.lock().unwrap().clone();
        (out, log, r)
    };
    let (a, host_log, host) = run(false);
    assert_eq!(host.sampling_loop(), SamplingLoop::Host("device loop off"));
    let (b, dev_log, mut dev) = run(true);
    assert_eq!(dev.sampling_loop(), SamplingLoop::Device, "{tag}");
    let (max, n) = diff(&a, &b);
    println!("{tag}: {} elements, max |host − device| = {max:e}, {n} differ; tiles per call {:?}", a.len(), host_log.first().map(|p| p.2));
    assert!(a.iter().all(|v| v.is_finite()), "{tag}: finite output");
    assert_eq!(n, 0, "{tag}: tiled device loop differs from the host loop (max {max:e})");
    assert_eq!(host_log, dev_log, "{tag}: progress reports");
    assert!(host_log.iter().all(|p| p.2 > 1), "{tag}: the frame is tiled");
    let p = plan::plan(dev.family(), &dev.options().sampler, nfe, false).unwrap().unwrap();
    if p.noisy_steps() > 0 {
        dev.set_seed(12);
        let c = dev.restore_tensor(x.view()).unwrap();
        assert!(diff(&b, &c).1 > 0, "{tag}: another seed, another image");
    }
    host_log
}

/// Tiles done after each report of the first call.
fn first_call(log: &[(usize, usize, usize)]) -> Vec<usize> {
    log.iter().filter(|p| p.0 == 0).map(|p| p.1).collect()
}

/// A dynamic-shape network (the U-Net) on a frame of 3×4 tiles with overlap and trim, in
/// batches of 5 (the last one holds 2): the device loop gives the host loop's bits, for a
/// stochastic and a deterministic sampler.
#[test]
fn tiled_frames_identical_both_ways() {
    let dir = tmpdir("tiled");
    let goub = unet_package(&dir, "goub.onnx", &GOUB);
    let x = image(40, 52, 0.0, 1.0);
    for (s, nfe) in [("data-solver-1", 4), ("data-solver-1-ode", 4)] {
        let log = tiled_both_ways(&goub, s, nfe, &x, |b| b.tile(16).tile_overlap(4).tile_trim(1).tile_batch(5), &format!("unet {s}"));
        assert_eq!(first_call(&log), vec![5, 10, 12], "{s}");
        assert_eq!(log.len(), 3 * 4, "{s}: 3 reports per call");
    }
}

/// Fixed-shape graphs (16×16, as a TensorRT engine) on larger frames: full batches of 5 tiles,
/// the last padded by repeating its last tile, with a dynamic batch axis and with the batch
/// fixed to 1 (every batch runs tile by tile); a frame smaller than the graph pads up to one
/// tile and still runs a full batch. The device loop gives the host loop's bits.
#[test]
fn fixed_shape_tiles_identical_both_ways() {
    let dir = tmpdir("fixed-tiles");
    for batch in [None, Some(1)] {
        let pkg = models::conv_fixed(&dir, &format!("conv-{batch:?}.onnx"), 16, batch, &GOUB);
        for (s, nfe) in [("data-solver-1", 3), ("data-solver-1-ode", 3)] {
            let tag = format!("fixed batch {batch:?} {s}");
            let tune = |b: RestorerBuilder| b.fixed_tile_shape(true).tile_batch(5);
            let log = tiled_both_ways(&pkg, s, nfe, &image(40, 44, 0.0, 1.0), tune, &tag);
            assert_eq!(first_call(&log), vec![5, 10, 12], "{tag}");
            // One 16×16 tile: a full batch of 5 rows, one of them real.
            let small = image(12, 10, 0.0, 1.0);
            models::ensure_ort();
            let mut host = tune(Restorer::builder(&pkg).threads(1).sampler(s).nfe(nfe)).build().unwrap();
            let mut dev = tune(Restorer::builder(&pkg).threads(1).sampler(s).nfe(nfe).device_loop(true)).build().unwrap();
            let (a, b) = (host.restore_tensor(small.view()).unwrap(), dev.restore_tensor(small.view()).unwrap());
            assert_eq!(dev.sampling_loop(), SamplingLoop::Device, "{tag}");
            assert_eq!(diff(&a, &b).1, 0, "{tag}: one padded tile");
        }
    }
}

/// Tiled frames without a conditioning input (NADB: the mean network's `x_T`, computed tiled on
/// the host) and on a graph fixed to 1×3×16×16 with an int64 scalar time: the host loop's bits.
#[test]
fn tiled_nadb_and_integer_time_identical() {
    let dir = tmpdir("tiled-nadb");
    let nadb = models::nadb_with_mean(&dir);
    tiled_both_ways(&nadb, "nadb", 4, &image(24, 40, -1.0, 1.0), |b| b.tile(16).tile_overlap(4).tile_batch(2), "nadb tiled");
    let fixed = models::fixed(&dir, "fixed.onnx", 16);
    tiled_both_ways(&fixed, "rdbm", 3, &image(40, 44, -1.0, 1.0), |b| b.fixed_tile_shape(true).tile_batch(3), "fixed int64 t tiled");
}

/// Two images per frame, tiled, through `DeviceLoop::sample_tiled` directly against the host
/// loop (`TiledDenoiser` over the same `OnnxDenoiser`), on the CPU provider's direct path and on
/// the GPU code path (`staged`): identical, for a dynamic-shape and fixed-shape networks.
#[test]
fn staged_tiled_path_equals_host_loop() {
    models::ensure_ort();
    let dir = tmpdir("staged-tiles");
    let two = |h: usize, w: usize| {
        let a = image(h, w, 0.0, 1.0);
        Tensor::from_shape_fn((2, 3, h, w), |(b, c, y, x)| if b == 0 { a[[0, c, y, x]] } else { 1.0 - a[[0, c, y, x]].powi(2) })
    };
    let tiles = |batch, align, fixed_shape| TileConfig { size: (16, 16), overlap: 4, trim: 1, batch, align, fixed_shape };
    let cases = [
        (unet_package(&dir, "goub.onnx", &GOUB), tiles(3, 4, false), two(28, 36)),
        (models::conv_fixed(&dir, "conv.onnx", 16, None, &GOUB), tiles(4, 1, true), two(30, 28)),
        (models::conv_fixed(&dir, "conv1.onnx", 16, Some(1), &GOUB), tiles(3, 1, true), two(30, 28)),
    ];
    let cfg = SessionConfig { threads: 2, ..Default::default() };
    for (pkg, tile, x) in &cases {
        let (mut net, meta) = OnnxDenoiser::load_package(pkg, &cfg).unwrap();
        let family = build_family(&meta).unwrap();
        for (name, nfe) in [("data-solver-1", 3), ("data-solver-1-ode", 3)] {
            let sampler = parse_sampler(name, None, None).unwrap();
            let p = plan::plan(family.as_ref(), &sampler, nfe, false).unwrap().unwrap();
            let host = {
                let mut tiled = TiledDenoiser::new(&mut net, *tile);
                let mut model = Model::new(&mut tiled, family.as_ref(), x.view(), x.view()).unwrap();
                sample(&mut model, &sampler, nfe, &mut PhiloxNoise::new(5)).unwrap()
            };
            for staged in [false, true] {
                let mut dev = DeviceLoop::new(&cfg).staged(staged);
                let mut seen = Vec::new();
                let mut cb = |t: bridge::tile::TileProgress| {
                    seen.push(t);
                    true
                };
                let out = dev.sample_tiled(&mut net, &p, x.view(), x.view(), &mut PhiloxNoise::new(5), tile, Some(&mut cb)).unwrap();
                let (max, n) = diff(&host, &out);
                println!("{} {name} staged {staged}: max {max:e}, {n} differ", pkg.display());
                assert_eq!(n, 0, "{} {name} staged {staged}", pkg.display());
                let last = seen.last().unwrap();
                assert!(last.total > 2 && last.done == last.total && last.call + 1 == p.calls(), "{last:?}");
            }
        }
    }
}

/// A tiled device run reports after every tile batch and cancels between batches, as the host
/// loop does: the callback's `false` stops it with `Cancelled` before the next batch.
#[test]
fn tiled_progress_cancels_between_batches() {
    models::ensure_ort();
    let dir = tmpdir("tiled-cancel");
    let pkg = models::oracle_mixing(&dir, "mix.onnx");
    for on in [false, true] {
        let seen: Log = Default::default();
        let s2 = seen.clone();
        let mut r = Restorer::builder(&pkg)
            .threads(1)
            .nfe(4)
            .tile(16)
            .tile_overlap(4)
            .tile_batch(2)
            .device_loop(on)
            .on_progress(move |p| {
                s2.lock().unwrap().push((p.call, p.tile, p.tiles));
                !(p.call == 1 && p.tile == 4)
            })
            .build()
            .unwrap();
        assert!(matches!(r.restore_tensor(image(24, 40, -1.0, 1.0).view()), Err(Error::Cancelled)), "device loop {on}");
        let want = if on { SamplingLoop::Device } else { SamplingLoop::Host("device loop off") };
        assert_eq!(r.sampling_loop(), want);
        // 2×3 tiles in batches of 2: three reports per call, the fifth report cancels.
        assert_eq!(*seen.lock().unwrap(), vec![(0, 2, 6), (0, 4, 6), (0, 6, 6), (1, 2, 6), (1, 4, 6)], "device loop {on}");
    }
}

/// Timing, host loop vs tiled device loop on the CPU provider (ignored: run it by name with
/// `--ignored --nocapture`; `docs/performance.md` quotes it): the U-Net on a 256² frame in
/// 64² tiles (overlap 16, batch 4: 25 tiles), 4 steps, median of 3; the outputs are identical.
#[test]
#[ignore]
fn tiled_timing_host_vs_device() {
    models::ensure_ort();
    let dir = tmpdir("tiled-timing");
    let pkg = unet_package(&dir, "goub.onnx", &GOUB);
    let x = image(256, 256, 0.0, 1.0);
    let time = |on: bool| {
        let mut r = Restorer::builder(&pkg)
            .threads(2)
            .sampler("data-solver-1")
            .nfe(4)
            .tile(64)
            .tile_overlap(16)
            .tile_batch(4)
            .device_loop(on)
            .build()
            .unwrap();
        let out = r.restore_tensor(x.view()).unwrap();
        let mut t: Vec<f64> = (0..3)
            .map(|_| {
                let t0 = std::time::Instant::now();
                std::hint::black_box(r.restore_tensor(x.view()).unwrap());
                t0.elapsed().as_secs_f64()
            })
            .collect();
        t.sort_by(f64::total_cmp);
        (out, t[1], r.sampling_loop())
    };
    let (a, th, lh) = time(false);
    let (b, td, ld) = time(true);
    assert_eq!(ld, SamplingLoop::Device);
    assert_ne!(lh, SamplingLoop::Device);
    assert_eq!(diff(&a, &b).1, 0);
    println!("tiled 256² (25 tiles of 64², batch 4), 4 steps, CPU provider, 2 threads: device loop / host loop time = {:.3}", td / th);
}
