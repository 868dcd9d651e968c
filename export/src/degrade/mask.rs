//! Inpainting masks, `[H, W]` with 1 = missing and 0 = kept.
//!
//! * [`center_mask`]: the centred `H/2 × W/2` square (the "center" task of I2SB and Palette).
//! * [`free_form_mask`]: brush strokes in the style of DeepFill v2's free-form masks, generated
//!   until the hole covers a target fraction `[lo, hi]` of the image (I2SB's "freeform1020" is
//!   `[0.1, 0.2]`, "freeform2030" is `[0.2, 0.3]`). A stroke is a polyline of 4–12 segments
//!   drawn with a round brush: each vertex turns by a uniform angle in ±π/2 (a random walk of
//!   directions) and moves 5–25 % of the shorter side; the brush diameter is 3–10 % of the
//!   shorter side. A stroke that would push the coverage over `hi` is dropped and another one is
//!   drawn, so the result lands inside the range.

use super::Rng;
use bridge::{Error, Result};
use ndarray::Array2;

/// Centred hole of `⌊H/2⌋ × ⌊W/2⌋` pixels.
pub fn center_mask(h: usize, w: usize) -> Array2<f32> {
    let (mh, mw) = (h / 2, w / 2);
    let (y0, x0) = ((h - mh) / 2, (w - mw) / 2);
    Array2::from_shape_fn((h, w), |(y, x)| f32::from(u8::from((y0..y0 + mh).contains(&y) && (x0..x0 + mw).contains(&x))))
}

/// Free-form brush-stroke hole covering a fraction in `[lo, hi]` of the pixels (see module docs).
/// Deterministic in `rng`. `0 ≤ lo ≤ hi ≤ 1` and `hi − lo ≥ 0.02` so a stroke can land inside.
pub fn free_form_mask(h: usize, w: usize, lo: f64, hi: f64, rng: &mut Rng) -> Result<Array2<f32>> {
    if !(0.0..=1.0).contains(&lo) || !(0.0..=1.0).contains(&hi) || hi - lo < 0.02 {
        return Err(Error::param("coverage", format!("need 0 ≤ lo ≤ hi ≤ 1 and hi − lo ≥ 0.02, got [{lo}, {hi}]")));
    }
    if h < 8 || w < 8 {
        return Err(Error::param("size", format!("free-form masks need at least 8×8, got {h}×{w}")));
    }
    let total = (h * w) as f64;
    let mut mask = Array2::<f32>::zeros((h, w));
    let mut holes = 0usize;
    // Each try draws one stroke; bounded so a pathological range cannot loop forever.
    for _ in 0..10_000 {
        if holes as f64 >= lo * total {
            break;
        }
        let mut trial = mask.clone();
        stroke(&mut trial, rng);
        let n = trial.iter().filter(|&&v| v > 0.0).count();
        if n as f64 <= hi * total {
            mask = trial;
            holes = n;
        }
    }
    Ok(mask)
}

/// One polyline stroke with a round brush.
fn stroke(mask: &mut Array2<f32>, rng: &mut Rng) {
    let (h, w) = mask.dim();
    let side = h.min(w) as f64;
    let radius = rng.range(0.03, 0.10) * side / 2.0;
    let (mut y, mut x) = (rng.range(0.0, h as f64), rng.range(0.0, w as f64));
    let mut angle = rng.range(0.0, std::f64::consts::TAU);
    let vertices = 4 + rng.below(9);
    for _ in 0..vertices {
        angle += rng.range(-std::f64::consts::FRAC_PI_2, std::f64::consts::FRAC_PI_2);
        let len = rng.range(0.05, 0.25) * side;
        let ny = (y + len * angle.sin()).clamp(0.0, h as f64 - 1.0);
        let nx = (x + len * angle.cos()).clamp(0.0, w as f64 - 1.0);
        capsule(mask, (y, x), (ny, nx), radius);
        (y, x) = (ny, nx);
    }
}

/// Set every pixel whose centre lies within `r` of the segment `a–b` (coordinates in pixels).
fn capsule(mask: &mut Array2<f32>, a: (f64, f64), b: (f64, f64), r: f64) {
    let (h, w) = mask.dim();
    let clampi = |v: f64, n: usize| (v.max(0.0) as usize).min(n - 1);
    let (y0, y1) = (clampi(a.0.min(b.0) - r, h), clampi(a.0.max(b.0) + r + 1.0, h));
    let (x0, x1) = (clampi(a.1.min(b.1) - r, w), clampi(a.1.max(b.1) + r + 1.0, w));
    let (dy, dx) = (b.0 - a.0, b.1 - a.1);
    let len2 = dy * dy + dx * dx;
    for yy in y0..=y1 {
        for xx in x0..=x1 {
            let (py, px) = (yy as f64, xx as f64); // pixel centres sit on integer coordinates
            let t = if len2 > 0.0 { (((py - a.0) * dy + (px - a.1) * dx) / len2).clamp(0.0, 1.0) } else { 0.0 };
            let (qy, qx) = (a.0 + t * dy - py, a.1 + t * dx - px);
            if qy * qy + qx * qx <= r * r {
                mask[[yy, xx]] = 1.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn center_mask_is_the_middle_quarter() {
        let m = center_mask(64, 48);
        assert_eq!(m.sum(), (32 * 24) as f32);
        assert_eq!(m[[16, 12]], 1.0);
        assert_eq!(m[[47, 35]], 1.0);
        assert_eq!(m[[15, 12]], 0.0);
        assert_eq!(m[[16, 11]], 0.0);
        assert_eq!(m[[48, 35]], 0.0);
        assert_eq!(m[[47, 36]], 0.0);
    }

    #[test]
    fn free_form_coverage_lands_in_range() {
        for &(h, w) in &[(64, 64), (128, 96), (256, 256)] {
            for &(lo, hi) in &[(0.1, 0.2), (0.2, 0.3), (0.1, 0.3)] {
                let mut covs = Vec::new();
                for seed in 0..20 {
                    let m = free_form_mask(h, w, lo, hi, &mut Rng::new(seed, 0)).unwrap();
                    assert!(m.iter().all(|&v| v == 0.0 || v == 1.0));
                    let cov = f64::from(m.sum()) / (h * w) as f64;
                    assert!((lo..=hi).contains(&cov), "{h}×{w} seed {seed}: coverage {cov} outside [{lo}, {hi}]");
                    covs.push(cov);
                }
                // Masks vary with the seed (not one shape repeated).
                covs.dedup();
                assert!(covs.len() > 10, "coverages barely vary: {covs:?}");
            }
        }
    }

    #[test]
    fn free_form_is_deterministic_and_seed_dependent() {
        let a = free_form_mask(64, 64, 0.1, 0.2, &mut Rng::new(11, 3)).unwrap();
        let b = free_form_mask(64, 64, 0.1, 0.2, &mut Rng::new(11, 3)).unwrap();
        let c = free_form_mask(64, 64, 0.1, 0.2, &mut Rng::new(12, 3)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(free_form_mask(64, 64, 0.3, 0.2, &mut Rng::new(0, 0)).is_err());
        assert!(free_form_mask(4, 64, 0.1, 0.2, &mut Rng::new(0, 0)).is_err());
    }
}
