//! The fused elementwise update that every sampler step reduces to:
//!
//! ```text
//! x ← c_x·x + Σ_k c_k·src_k + c_z·z(draw)
//! ```
//!
//! Coefficients arrive in `f64` (they come from `f64` schedule tables) and are rounded to the
//! state's `f32` once per call. Noise from a counter-based source is generated inline, so the
//! update makes one pass over memory. The frame-sized buffers made here (a non-counter noise
//! tensor, [`combine`]'s result) are allocated fallibly ([`crate::alloc`]).

use crate::pool::Pool;
use crate::rng::{NoiseSource, PhiloxNoise};
use crate::{Error, Result, Tensor, TensorView};
use ndarray::Zip;
use rayon::prelude::*;

/// One `coef·src` term of an update.
#[derive(Clone, Copy, Debug)]
pub struct Term<'a> {
    /// The scalar coefficient (f64; rounded to f32 when applied).
    pub coef: f64,
    /// The tensor it multiplies; must have the state's shape.
    pub src: TensorView<'a>,
}

impl<'a> Term<'a> {
    /// `coef·src`.
    pub fn new(coef: f64, src: TensorView<'a>) -> Self {
        Term { coef, src }
    }
}

/// The noise term `c_z·z(draw)` of an update.
pub struct NoiseTerm<'n> {
    /// Coefficient of the noise.
    pub coef: f64,
    /// Which draw of the run (see [`crate::rng`]).
    pub draw: u64,
    /// Where the noise comes from.
    pub source: &'n mut dyn NoiseSource,
}

/// `x ← c_x·x + Σ terms + noise`, in place. Terms with a zero coefficient are skipped
/// (a zero noise coefficient draws nothing); `c_x = 0` overwrites `x` without reading it.
///
/// Every element is computed as `((c_x·x + c_1·s_1) + c_2·s_2 …) + c_z·z` in `f32` with no
/// fused multiply-add, whatever the thread count or SIMD width, so results are reproducible
/// bit for bit. Large contiguous tensors are split by rows across the caller's rayon pool, else
/// the SDK's own (`sdk/src/pool.rs`: started fallibly, bounded by the restorer's `threads`;
/// without a pool the update runs serially).
pub fn update(x: &mut Tensor, c_x: f64, terms: &[Term<'_>], noise: Option<NoiseTerm<'_>>) -> Result<()> {
    for t in terms {
        if t.src.shape() != x.shape() {
            return Err(Error::shape("update term", x.shape(), t.src.shape()));
        }
    }
    let mut live: Vec<(f32, TensorView<'_>)> = terms.iter().filter(|t| t.coef != 0.0).map(|t| (t.coef as f32, t.src)).collect();
    // Counter-based noise is generated inline; any other source is filled into a buffer first.
    let mut inline: Option<(f32, u64, PhiloxNoise)> = None;
    let buffered;
    if let Some(n) = noise.filter(|n| n.coef != 0.0) {
        match n.source.as_philox() {
            Some(p) if n.draw <= u32::MAX as u64 && x.shape()[1] <= 4096 => inline = Some((n.coef as f32, n.draw, p.clone())),
            _ => {
                let mut z: Tensor = crate::alloc::try_zeros(x.raw_dim(), "a noise tensor")?;
                n.source.fill(n.draw, z.view_mut())?;
                buffered = z;
                live.push((n.coef as f32, buffered.view()));
            }
        }
    }
    let cx = c_x as f32;
    let contiguous = x.is_standard_layout() && live.iter().all(|(_, s)| s.is_standard_layout());
    if !contiguous {
        return update_strided(x, cx, &live, inline.as_ref());
    }
    let (_, c, h, w) = x.dim();
    let srcs: Vec<(f32, &[f32])> = live.iter().map(|(k, s)| (*k, s.as_slice().unwrap_or(&[]))).collect();
    let Some(xs) = x.as_slice_mut() else { return Err(Error::Noise("state is not contiguous".into())) };
    if xs.is_empty() || w == 0 {
        return Ok(());
    }
    // The pool is looked up (and started, fallibly) only for a tensor worth splitting.
    let pool = if xs.len() >= PAR_GRAIN * 2 { Pool::get() } else { Pool::Serial };
    // Row-aligned tasks; their count does not change a bit (each element's arithmetic is fixed).
    let rows_per_task = pool.task_size(xs.len() / w, PAR_GRAIN / w);
    let task = |(ti, xrows): (usize, &mut [f32])| {
        let row0 = ti * rows_per_task;
        for (ri, xrow) in xrows.chunks_mut(w).enumerate() {
            let row = row0 + ri;
            let off = row * w;
            let noise_at = inline.as_ref().map(|(cz, draw, p)| {
                let (b, rem) = (row / (c * h), row % (c * h));
                let pl = p.placement(b);
                (*cz, p, *draw, pl.image, (rem / h) as u32, pl.y0 + (rem % h) as u32, pl.x0)
            });
            row_kernel(xrow, cx, &srcs, off, noise_at);
        }
    };
    if pool.threads() > 1 {
        pool.install(|| xs.par_chunks_mut(rows_per_task * w).enumerate().for_each(task));
    } else {
        xs.chunks_mut(rows_per_task * w).enumerate().for_each(task);
    }
    Ok(())
}

/// Elements per parallel task (a few rows of a large image; small tensors stay on one thread).
const PAR_GRAIN: usize = 1 << 15;
/// Elements processed per inner block (fits L1 with the noise buffer).
const BLOCK: usize = 256;

type RowNoise<'p> = (f32, &'p PhiloxNoise, u64, u32, u32, u32, u32);

/// One row: `x[i] = c_x·x[i] + Σ c_k·src_k[off + i] (+ c_z·z)`, in blocks that stay in L1.
#[inline]
fn row_kernel(x: &mut [f32], cx: f32, srcs: &[(f32, &[f32])], off: usize, noise: Option<RowNoise<'_>>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked above); the body is the same safe code.
            unsafe { row_kernel_avx2(x, cx, srcs, off, noise) };
            return;
        }
    }
    row_kernel_generic(x, cx, srcs, off, noise)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn row_kernel_avx2(x: &mut [f32], cx: f32, srcs: &[(f32, &[f32])], off: usize, noise: Option<RowNoise<'_>>) {
    row_kernel_generic(x, cx, srcs, off, noise)
}

#[inline(always)]
fn row_kernel_generic(x: &mut [f32], cx: f32, srcs: &[(f32, &[f32])], off: usize, noise: Option<RowNoise<'_>>) {
    let mut z = [0f32; BLOCK];
    for (bi, xb) in x.chunks_mut(BLOCK).enumerate() {
        let start = bi * BLOCK;
        let n = xb.len();
        let s = |k: usize| &srcs[k].1[off + start..off + start + n];
        // One pass per block for the common term counts (same operation order as the general
        // path below, so the bits do not depend on which path runs).
        match (srcs.len(), noise) {
            (2, Some((cz, p, draw, image, ch, y, x0))) if cx != 0.0 => {
                let zb = &mut z[..n];
                p.fill_row(draw, image, ch, y, x0 + start as u32, zb);
                let ((k1, _), (k2, _)) = (srcs[0], srcs[1]);
                for (((v, &a), &b), &w) in xb.iter_mut().zip(s(0)).zip(s(1)).zip(zb.iter()) {
                    *v = ((cx * *v + k1 * a) + k2 * b) + cz * w;
                }
            }
            (2, None) if cx != 0.0 => {
                let ((k1, _), (k2, _)) = (srcs[0], srcs[1]);
                for ((v, &a), &b) in xb.iter_mut().zip(s(0)).zip(s(1)) {
                    *v = (cx * *v + k1 * a) + k2 * b;
                }
            }
            _ => {
                if cx == 0.0 {
                    xb.fill(0.0);
                } else if cx != 1.0 {
                    for v in xb.iter_mut() {
                        *v *= cx;
                    }
                }
                for (k, &(c, _)) in srcs.iter().enumerate() {
                    for (v, &a) in xb.iter_mut().zip(s(k)) {
                        *v += c * a;
                    }
                }
                if let Some((cz, p, draw, image, ch, y, x0)) = noise {
                    let zb = &mut z[..n];
                    p.fill_row(draw, image, ch, y, x0 + start as u32, zb);
                    for (v, &w) in xb.iter_mut().zip(zb.iter()) {
                        *v += cz * w;
                    }
                }
            }
        }
    }
}

/// The same update for non-contiguous views (rare: sliced tensors).
fn update_strided(x: &mut Tensor, cx: f32, srcs: &[(f32, TensorView<'_>)], noise: Option<&(f32, u64, PhiloxNoise)>) -> Result<()> {
    if cx == 0.0 {
        x.fill(0.0);
    } else if cx != 1.0 {
        x.mapv_inplace(|v| cx * v);
    }
    for (k, src) in srcs {
        Zip::from(&mut *x).and(src).for_each(|v, &s| *v += k * s);
    }
    if let Some((cz, draw, p)) = noise {
        let mut z: Tensor = crate::alloc::try_zeros(x.raw_dim(), "a noise tensor")?;
        p.clone().fill(*draw, z.view_mut())?;
        Zip::from(&mut *x).and(&z).for_each(|v, &s| *v += cz * s);
    }
    Ok(())
}

/// `Σ terms` into a new tensor of the given shape (e.g. `x0̂ = p·x + q·x_T + r·out`), allocated
/// fallibly ([`Error::OutOfMemory`]).
pub fn combine(shape: &[usize], terms: &[Term<'_>]) -> Result<Tensor> {
    let dim = match shape {
        &[b, c, h, w] => (b, c, h, w),
        _ => return Err(Error::shape("combine", &[0, 0, 0, 0], shape)),
    };
    let mut out: Tensor = crate::alloc::try_zeros(dim, "a sampler tensor")?;
    update(&mut out, 0.0, terms, None)?;
    Ok(out)
}

/// Clamp every element to `[lo, hi]`, in place.
pub fn clamp(x: &mut Tensor, lo: f32, hi: f32) {
    x.mapv_inplace(|v| v.clamp(lo, hi));
}

/// Whether every element is finite.
pub fn all_finite(x: &Tensor) -> bool {
    x.iter().all(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::PhiloxNoise;
    use ndarray::Array4;

    #[test]
    fn update_is_the_linear_combination() {
        let a = Array4::from_shape_fn((1, 2, 3, 5), |(_, c, y, x)| (c + y * 7 + x) as f32 * 0.1);
        let b = Array4::from_shape_fn((1, 2, 3, 5), |(_, c, y, x)| (c * 3 + y + x * 2) as f32 * -0.05);
        let mut x = Array4::from_elem((1, 2, 3, 5), 2.0f32);
        let mut src = PhiloxNoise::new(3);
        let mut z = Tensor::zeros((1, 2, 3, 5));
        src.fill(9, z.view_mut()).unwrap();
        update(
            &mut x,
            0.5,
            &[Term::new(2.0, a.view()), Term::new(-1.0, b.view())],
            Some(NoiseTerm { coef: 0.25, draw: 9, source: &mut src }),
        )
        .unwrap();
        for ((&v, (&av, &bv)), &zv) in x.iter().zip(a.iter().zip(b.iter())).zip(z.iter()) {
            let want = 1.0 + 2.0 * av - bv + 0.25 * zv;
            assert!((v - want).abs() < 1e-6, "{v} vs {want}");
        }
    }

    /// Thread count, block boundaries and the inline-vs-buffered noise path do not change a bit.
    #[test]
    fn update_is_bitwise_reproducible() {
        let shape = (2, 3, 61, 1031); // > PAR_GRAIN·2 elements, odd width
        let a = Array4::from_shape_fn(shape, |(b, c, y, x)| ((b * 7 + c * 5 + y * 3 + x) % 97) as f32 * 0.013 - 0.6);
        let xt = Array4::from_shape_fn(shape, |(b, c, y, x)| ((b + c * 11 + y * 13 + x * 2) % 89) as f32 * -0.01);
        let x0 = Array4::from_shape_fn(shape, |(_, c, y, x)| ((c + y + x) % 7) as f32 * 0.2);
        let apply = |source: &mut dyn NoiseSource| {
            let mut x = x0.clone();
            update(&mut x, 0.9, &[Term::new(0.3, a.view()), Term::new(-0.2, xt.view())], Some(NoiseTerm { coef: 0.05, draw: 4, source }))
                .unwrap();
            x
        };
        let run = |threads: usize, buffered: bool| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut philox = PhiloxNoise::new(99);
                let mut rec;
                let source: &mut dyn NoiseSource = if buffered {
                    let mut z = Tensor::zeros(shape);
                    philox.fill(4, z.view_mut()).unwrap();
                    let mut list = vec![Tensor::zeros((1, 1, 1, 1)); 4];
                    list.push(z);
                    rec = crate::rng::RecordedNoise::new(list);
                    &mut rec
                } else {
                    &mut philox
                };
                apply(source)
            })
        };
        let one = run(1, false);
        assert_eq!(one, run(2, false));
        assert_eq!(one, run(3, false));
        assert_eq!(one, run(1, true));
        // Outside any pool: the SDK's own pool under a restorer's thread limit (1: serial).
        for limit in [0, 1, 2, 3] {
            let x = crate::pool::with_thread_limit(limit, || apply(&mut PhiloxNoise::new(99)));
            assert_eq!(one, x, "thread limit {limit}");
        }
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let mut x = Tensor::zeros((1, 1, 2, 2));
        let y = Tensor::zeros((1, 1, 2, 3));
        assert!(matches!(update(&mut x, 1.0, &[Term::new(1.0, y.view())], None), Err(Error::ShapeMismatch { .. })));
    }
}
