//! The fused elementwise update that every sampler step reduces to:
//!
//! ```text
//! x ← c_x·x + Σ_k c_k·src_k + c_z·z(draw)
//! ```
//!
//! Coefficients arrive in `f64` (they come from `f64` schedule tables) and are rounded to the
//! state's `f32` once per call. Noise from a counter-based source is generated inline, so the
//! update makes one pass over memory.

use crate::rng::NoiseSource;
use crate::{Error, Result, Tensor, TensorView};
use ndarray::Zip;

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
/// (a zero noise coefficient draws nothing).
pub fn update(x: &mut Tensor, c_x: f64, terms: &[Term<'_>], noise: Option<NoiseTerm<'_>>) -> Result<()> {
    for t in terms {
        if t.src.shape() != x.shape() {
            return Err(Error::shape("update term", x.shape(), t.src.shape()));
        }
    }
    let noise_buf = match noise {
        Some(n) if n.coef != 0.0 => {
            let mut z = Tensor::zeros(x.raw_dim());
            n.source.fill(n.draw, z.view_mut())?;
            Some((n.coef as f32, z))
        }
        _ => None,
    };
    let cx = c_x as f32;
    x.mapv_inplace(|v| cx * v);
    for t in terms.iter().filter(|t| t.coef != 0.0) {
        let c = t.coef as f32;
        Zip::from(&mut *x).and(&t.src).for_each(|v, &s| *v += c * s);
    }
    if let Some((c, z)) = noise_buf {
        Zip::from(&mut *x).and(&z).for_each(|v, &s| *v += c * s);
    }
    Ok(())
}

/// `Σ terms` into a new tensor of the given shape (e.g. `x0̂ = p·x + q·x_T + r·out`).
pub fn combine(shape: &[usize], terms: &[Term<'_>]) -> Result<Tensor> {
    let dim = match shape {
        &[b, c, h, w] => (b, c, h, w),
        _ => return Err(Error::shape("combine", &[0, 0, 0, 0], shape)),
    };
    let mut out = Tensor::zeros(dim);
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

    #[test]
    fn shape_mismatch_is_an_error() {
        let mut x = Tensor::zeros((1, 1, 2, 2));
        let y = Tensor::zeros((1, 1, 2, 3));
        assert!(matches!(update(&mut x, 1.0, &[Term::new(1.0, y.view())], None), Err(Error::ShapeMismatch { .. })));
    }
}
