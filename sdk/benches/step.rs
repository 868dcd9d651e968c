//! Bench `step`: the fused update `x ← a·x0̂ + b·x_T + c·x + d·noise` (noise generated inline by
//! the counter-based generator) beside a plain memcpy of the same bytes, in the same run.
//!
//! Bytes counted for the update: `x` read and written, `x0̂` and `x_T` read = 16 bytes/element.
//! The memcpy copies a buffer of 2 elements per state element (8 bytes read + 8 written = the
//! same 16 bytes/element). Both sides run inside one rayon pool the bench builds (all cores by
//! default; `RAYON_NUM_THREADS` overrides): the update splits across the pool it is called
//! from, so both sides get the same threads. After criterion's runs, an interleaved timing of both sides
//! prints the ratio directly.
//!
//! Run: `cargo bench -p bridge --bench step`

use bridge::Tensor;
use bridge::rng::PhiloxNoise;
use bridge::step::{NoiseTerm, Term, update};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use std::hint::black_box;
use std::time::Instant;

/// The one pool both sides run in.
fn pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| rayon::ThreadPoolBuilder::new().build().expect("the bench's thread pool"))
}

const SIZES: [(usize, &str); 2] = [(512, "512x512x3"), (2048, "2048x2048x3")];

struct Case {
    x: Tensor,
    x0: Tensor,
    xt: Tensor,
    src: Vec<f32>,
    dst: Vec<f32>,
    noise: PhiloxNoise,
}

impl Case {
    fn new(side: usize) -> Self {
        let shape = (1, 3, side, side);
        let f = |k: f32| Tensor::from_shape_fn(shape, move |(_, c, y, x)| ((c * 31 + y * 7 + x) % 255) as f32 * k);
        let n = 3 * side * side;
        Case { x: f(0.004), x0: f(-0.003), xt: f(0.002), src: vec![0.5; 2 * n], dst: vec![0.0; 2 * n], noise: PhiloxNoise::new(1) }
    }
    fn step(&mut self, draw: u64) {
        let Case { x, x0, xt, noise, .. } = self;
        pool()
            .install(|| {
                update(x, 0.7, &[Term::new(0.2, x0.view()), Term::new(0.1, xt.view())], Some(NoiseTerm { coef: 0.05, draw, source: noise }))
            })
            .expect("update");
        black_box(&self.x);
    }
    fn memcpy(&mut self) {
        // Same grain as the update's parallel split.
        let Case { src, dst, .. } = self;
        pool().install(|| dst.par_chunks_mut(1 << 16).zip(src.par_chunks(1 << 16)).for_each(|(d, s)| d.copy_from_slice(s)));
        black_box(&self.dst);
    }
    fn bytes(&self) -> u64 {
        16 * self.x.len() as u64
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("step");
    for (side, name) in SIZES {
        let mut case = Case::new(side);
        g.throughput(Throughput::Bytes(case.bytes()));
        let mut draw = 0u64;
        g.bench_function(BenchmarkId::new("fused_update", name), |b| {
            b.iter(|| {
                draw += 1;
                case.step(draw)
            })
        });
        g.bench_function(BenchmarkId::new("memcpy_same_bytes", name), |b| b.iter(|| case.memcpy()));
    }
    g.finish();
    ratio_report();
}

/// Interleaved timing of both sides; prints GB/s and update/memcpy bandwidth ratio.
fn ratio_report() {
    for (side, name) in SIZES {
        let mut case = Case::new(side);
        let reps = if side > 1024 { 30 } else { 300 };
        let (mut tu, mut tm) = (Vec::new(), Vec::new());
        for r in 0..reps {
            let t = Instant::now();
            case.step(r as u64);
            tu.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            case.memcpy();
            tm.push(t.elapsed().as_secs_f64());
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        let (u, m) = (med(&mut tu), med(&mut tm));
        let gb = case.bytes() as f64 / 1e9;
        println!(
            "step ratio {name}: fused update {:.2} GB/s, memcpy {:.2} GB/s, update/memcpy = {:.0}% ({} threads)",
            gb / u,
            gb / m,
            100.0 * m / u,
            pool().current_num_threads()
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
