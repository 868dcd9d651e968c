//! Bench `runtime`: the SDK's overhead per sampler step over the bare ONNX Runtime session run
//! of the same network, at 256² and 512² on the CPU, as ratios in one run.
//!
//! * bare — `ort::Session::run` on preallocated `x_t`, `cond`, `t` (the network alone);
//! * sdk — `Restorer::restore_tensor` with GOUB and UniDB++'s stochastic data-solver-1 (noise
//!   generated every step), no tiling, divided by its NFE: the network plus everything the SDK
//!   adds per step (input views, output copy, NaN/Inf check, the fused update with inline
//!   Philox noise) and, amortised, the per-image work (padding, cropping).
//!
//! The network is the package named by `BRIDGE_BENCH_MODEL` (dynamic `[B, 3, H, W]` inputs
//! `x_t`, `cond` and a `[B]` time `t`); by default the small restoration U-Net of
//! `tests/unet_model.rs` (≈ 0.37 M parameters, two downsamplings; written with the export
//! crate's ONNX builder), written to a temporary file. The network's output is read as GOUB's `ε` (the overhead does not depend on what the
//! weights mean).
//!
//! Run: `cargo bench -p bridge --bench runtime` (ONNX Runtime from `scripts/install-ort.sh`).

use bridge::Tensor;
use bridge::family::gou::{Gou, GouParams};
use bridge::restorer::{RestoreOptions, Restorer};
use bridge::runtime::{OnnxDenoiser, SessionConfig};
use bridge::sampler::Sampler;
use bridge::tile::TileConfig;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

const SIDES: [usize; 2] = [256, 512];
const NFE: usize = 4;
const THREADS: usize = 2;

#[path = "../../tests/unet_model.rs"]
mod unet_model;

fn model_path() -> PathBuf {
    std::env::var_os("BRIDGE_BENCH_MODEL").map(PathBuf::from).unwrap_or_else(|| {
        let p = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bridge-bench-unet-{}.onnx", std::process::id()));
        unet_model::unet().write(&p).expect("write the bench U-Net")
    })
}

struct Case {
    session: ort::session::Session,
    restorer: Restorer,
    /// The same restorer around a Rust pass-through network (`raw = cond`, one copy like the
    /// ONNX output copy): its time per step is the SDK's own cost.
    noop: Restorer,
    x: Tensor,
    t: Vec<f32>,
}

impl Case {
    fn new(side: usize) -> Self {
        let path = model_path();
        let cfg = SessionConfig { threads: THREADS, ..Default::default() };
        // The bare session, built the same way as the SDK builds its own.
        // A bench build is a release build, which does not look in the source tree by itself.
        let dev = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.deps/onnxruntime");
        let lib = std::env::var_os("ORT_DYLIB_PATH").is_none().then_some(dev);
        let env = bridge::runtime::env::environment(lib.as_deref()).expect("ONNX Runtime (run scripts/install-ort.sh)");
        let build = || -> Result<ort::session::Session, String> {
            let b = ort::session::Session::builder(&env).map_err(|e| e.to_string())?;
            let b = b.with_intra_threads(THREADS).map_err(|e| e.to_string())?;
            // Built as the SDK builds its sessions (no spin-waiting).
            let b = b.with_config_entry("session.intra_op.allow_spinning", "0").map_err(|e| e.to_string())?;
            let mut b = b.with_inter_threads(1).map_err(|e| e.to_string())?;
            b.commit_from_file(&path).map_err(|e| e.to_string())
        };
        let session = build().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (net, meta) = OnnxDenoiser::load_package(&path, &cfg).expect("bench package");
        let options = RestoreOptions {
            sampler: Sampler::DataSolver1 { sde: true },
            nfe: NFE,
            seed: 1,
            tile: TileConfig::default(),
            max_pixels: usize::MAX,
            color_fix: bridge::color_fix::ColorFix::Off,
            channel_ensemble: false,
        };
        let noop_net = bridge::FnDenoiser(|_x: bridge::TensorView<'_>, c: bridge::TensorView<'_>, _t: f64| Ok(c.to_owned()));
        let noop =
            Restorer::from_parts(meta.clone(), Box::new(Gou::new(GouParams::goub()).expect("GOUB")), Box::new(noop_net), options.clone())
                .expect("restorer");
        let restorer =
            Restorer::from_parts(meta, Box::new(Gou::new(GouParams::goub()).expect("GOUB")), Box::new(net), options).expect("restorer");
        let x = Tensor::from_shape_fn((1, 3, side, side), |(_, c, y, x)| (((c * 7 + y * 3 + x * 5) % 61) as f32 / 30.0) - 1.0);
        Case { session, restorer, noop, x, t: vec![0.5] }
    }

    fn bare(&mut self) {
        let x = ort::value::TensorRef::from_array_view(&self.x).expect("x");
        let c = ort::value::TensorRef::from_array_view(&self.x).expect("cond");
        let t = ort::value::Tensor::from_array(([1usize], self.t.clone())).expect("t");
        let out = self.session.run(ort::inputs!["x_t" => x, "cond" => c, "t" => t]).expect("run");
        black_box(out.len());
    }

    fn sdk(&mut self) {
        black_box(self.restorer.restore_tensor(self.x.view()).expect("restore"));
    }

    fn sdk_noop(&mut self) {
        black_box(self.noop.restore_tensor(self.x.view()).expect("restore"));
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("runtime");
    g.sample_size(10).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(5));
    for side in SIDES {
        let mut case = Case::new(side);
        g.bench_function(BenchmarkId::new("bare_run", side), |b| b.iter(|| case.bare()));
        g.bench_function(BenchmarkId::new(format!("sdk_restore_{NFE}_steps"), side), |b| b.iter(|| case.sdk()));
        g.bench_function(BenchmarkId::new(format!("sdk_only_{NFE}_steps"), side), |b| b.iter(|| case.sdk_noop()));
    }
    g.finish();
    ratio_report();
}

/// Interleaved timing, printed as ratios. The minimum over repetitions is the estimate least
/// disturbed by other load on the machine (medians are printed too). Two views of the same
/// overhead: the difference `SDK − bare` (noisy: a small difference of large times) and the
/// SDK's own time per step measured with a pass-through network, over the bare run.
fn ratio_report() {
    for side in SIDES {
        let mut case = Case::new(side);
        case.bare();
        case.sdk();
        case.sdk_noop();
        let (mut tb, mut ts, mut tn) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..9 {
            let t = Instant::now();
            for _ in 0..NFE {
                case.bare();
            }
            tb.push(t.elapsed().as_secs_f64() / NFE as f64);
            let t = Instant::now();
            case.sdk();
            ts.push(t.elapsed().as_secs_f64() / NFE as f64);
            let t = Instant::now();
            case.sdk_noop();
            tn.push(t.elapsed().as_secs_f64() / NFE as f64);
        }
        for v in [&mut tb, &mut ts, &mut tn] {
            v.sort_by(f64::total_cmp);
        }
        let (b, s, n) = (tb[0], ts[0], tn[0]);
        println!(
            "runtime overhead {side}x{side}: bare run {:.2} ms, SDK {:.2} ms/step ({:+.2}%), SDK-only work {:.3} ms/step = {:.2}% of the bare run \
             (min of 9; medians {:.2} / {:.2} / {:.3} ms; {THREADS} ORT threads, NFE {NFE}, rayon {} threads)",
            b * 1e3,
            s * 1e3,
            100.0 * (s / b - 1.0),
            n * 1e3,
            100.0 * n / b,
            tb[4] * 1e3,
            ts[4] * 1e3,
            tn[4] * 1e3,
            rayon::current_num_threads()
        );
    }
}

// No HTML plots: with the `cli` feature's plotters (ab_glyph text, no system fonts) criterion's
// plot rendering has no font and panics; the numbers are printed either way.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
