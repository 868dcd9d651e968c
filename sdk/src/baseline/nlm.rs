//! Colour non-local means (Buades, Coll & Morel), the pixel-wise variant, with the parameter
//! table and weight of their IPOL 2011 article ("Non-Local Means Denoising"):
//!
//! `û(p) = Σ_q w(p, q)·u(q) / Σ_q w(p, q)` over the search window of `p`, with
//! `w = exp(−max(d² − 2σ², 0) / h²)` and `d²` the squared distance of the patches around `p`
//! and `q`, averaged over the patch's pixels and the three channels (one weight for all
//! channels). Colour, σ on the 0–255 scale: σ ≤ 25: 3×3 patches, 21×21 search, `h = 0.55σ`;
//! σ ≤ 55: 5×5, 35×35, `h = 0.4σ`; above: 7×7, 35×35, `h = 0.35σ`.
//!
//! Patch distances for one offset `q − p` are box sums of one squared-difference image, taken
//! from its summed-area table, so the cost is `O(H·W·search²)` whatever the patch size.
//! Borders: the image is reflect-padded by `search + patch`.

use crate::{Error, Result};
use ndarray::{Array3, ArrayView3};

/// NLM parameters; `sigma` and `h` on the 0–255 scale, `patch` and `search` as radii.
#[derive(Clone, Debug, PartialEq)]
pub struct NlmParams {
    /// Noise standard deviation (0–255).
    pub sigma: f64,
    /// Filtering parameter (0–255).
    pub h: f64,
    /// Patch radius (side `2·patch + 1`).
    pub patch: usize,
    /// Search-window radius (side `2·search + 1`).
    pub search: usize,
}

impl NlmParams {
    /// The IPOL table for colour images at noise σ (module docs).
    pub fn for_sigma(sigma: f64) -> Self {
        let (patch, search, k) = if sigma <= 25.0 {
            (1, 10, 0.55)
        } else if sigma <= 55.0 {
            (2, 17, 0.4)
        } else {
            (3, 17, 0.35)
        };
        NlmParams { sigma, h: k * sigma, patch, search }
    }
}

/// Denoise `[C, H, W]` in [0, 1] (noisy values outside are fine); clipped to [0, 1].
pub fn denoise(img: ArrayView3<f32>, p: &NlmParams) -> Result<Array3<f32>> {
    let (c, h, w) = img.dim();
    if c == 0 || h == 0 || w == 0 {
        return Err(Error::Image(format!("NLM of an empty {c}×{h}×{w} image")));
    }
    if !(p.sigma.is_finite() && p.sigma >= 0.0 && p.h.is_finite() && p.h > 0.0) {
        return Err(Error::param("nlm", format!("need σ ≥ 0 and h > 0, got σ {} h {}", p.sigma, p.h)));
    }
    let (r, big_r) = (p.patch, p.search);
    let pad = r + big_r;
    let (ph, pw) = (h + 2 * pad, w + 2 * pad);
    // Reflect-padded planes, f64.
    let mut padded = vec![0f64; c * ph * pw];
    for ci in 0..c {
        for y in 0..ph {
            let sy = super::reflect(y as isize - pad as isize, h);
            for x in 0..pw {
                padded[(ci * ph + y) * pw + x] = f64::from(img[[ci, sy, super::reflect(x as isize - pad as isize, w)]]);
            }
        }
    }
    let (sigma2, h2) = ((p.sigma / 255.0).powi(2), (p.h / 255.0).powi(2));
    let norm = 1.0 / (c * (2 * r + 1) * (2 * r + 1)) as f64;
    // The squared-difference image covers the centres' patches: (h + 2r) × (w + 2r), starting at
    // padded (big_r, big_r); its summed-area table has a zero first row and column.
    let (dh, dw) = (h + 2 * r, w + 2 * r);
    let mut sat = vec![0f64; (dh + 1) * (dw + 1)];
    let mut acc = vec![0f64; c * h * w];
    let mut wsum = vec![0f64; h * w];
    let side = 2 * big_r + 1;
    for oy in 0..side {
        for ox in 0..side {
            for y in 0..dh {
                let mut row = 0.0;
                for x in 0..dw {
                    let mut d = 0.0;
                    for ci in 0..c {
                        let base = ci * ph * pw;
                        let a = padded[base + (y + big_r) * pw + x + big_r];
                        let b = padded[base + (y + oy) * pw + x + ox];
                        d += (a - b) * (a - b);
                    }
                    row += d;
                    sat[(y + 1) * (dw + 1) + x + 1] = sat[y * (dw + 1) + x + 1] + row;
                }
            }
            let k = 2 * r + 1;
            for y in 0..h {
                for x in 0..w {
                    let box_sum =
                        sat[(y + k) * (dw + 1) + x + k] - sat[y * (dw + 1) + x + k] - sat[(y + k) * (dw + 1) + x] + sat[y * (dw + 1) + x];
                    let d2 = box_sum * norm;
                    let wt = (-(d2 - 2.0 * sigma2).max(0.0) / h2).exp();
                    wsum[y * w + x] += wt;
                    for ci in 0..c {
                        acc[(ci * h + y) * w + x] += wt * padded[(ci * ph + y + r + oy) * pw + x + r + ox];
                    }
                }
            }
        }
    }
    // The centre itself has weight 1, so every sum is ≥ 1.
    Ok(Array3::from_shape_fn((c, h, w), |(ci, y, x)| ((acc[(ci * h + y) * w + x] / wsum[y * w + x]) as f32).clamp(0.0, 1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic standard normals (Box–Muller on a 64-bit LCG).
    fn normals(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        let mut u = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n).map(|_| ((-2.0 * u().ln()).sqrt() * (2.0 * std::f64::consts::PI * u()).cos()) as f32).collect()
    }

    fn std_of(v: impl Iterator<Item = f32>) -> f64 {
        let v: Vec<f64> = v.map(f64::from).collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    }

    /// On a flat patch with σ = 25 noise the output's std falls by about 10. Why: with 3×3×3
    /// patches, `d²` of two pure-noise patches is `2σ²·χ²₂₇/27`, so the weights `exp(−max(d² −
    /// 2σ², 0)/h²)` have mean ≈ 0.70; if they were independent of the noise, the factor would be
    /// `√(441·E[w]²/E[w²]) ≈ 18.5` (simulated), and no weighted mean of 441 samples beats the
    /// uniform 21. But the weights favour neighbours whose patches resemble the noisy centre
    /// patch (the centre's own noise is in every distance), which pulls the output toward the
    /// noisy centre: the measured factor is ≈ 10, and that is what this pins (≥ 8, ≤ 21).
    #[test]
    fn flat_noisy_patch_std_drops_by_the_window_factor() {
        let (h, w, sigma) = (48, 48, 25.0);
        let z = normals(3 * h * w, 7);
        let noisy = Array3::from_shape_fn((3, h, w), |(c, y, x)| 0.5 + (sigma / 255.0) as f32 * z[(c * h + y) * w + x]);
        let out = denoise(noisy.view(), &NlmParams::for_sigma(sigma)).unwrap();
        // Interior (away from the mirrored borders).
        let inner = |a: &Array3<f32>| a.slice(ndarray::s![.., 12..36, 12..36]).iter().copied().collect::<Vec<f32>>();
        let (s_in, s_out) = (std_of(inner(&noisy).into_iter()), std_of(inner(&out).into_iter()));
        let factor = s_in / s_out;
        eprintln!("std {:.3} -> {:.3} (0-255), factor {factor:.1}", s_in * 255.0, s_out * 255.0);
        assert!((s_in * 255.0 - sigma).abs() < 1.5, "noise std {}", s_in * 255.0);
        assert!(factor > 8.0 && factor < 21.0, "std reduction factor {factor:.2}");
        let mean = out.mean().unwrap();
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
    }

    /// Edges survive: a noisy step keeps its contrast, and the error is below the noise's.
    #[test]
    fn keeps_a_step_edge() {
        let (h, w, sigma) = (32, 40, 25.0);
        let z = normals(3 * h * w, 11);
        let clean = Array3::from_shape_fn((3, h, w), |(_, _, x)| if x < w / 2 { 0.25f32 } else { 0.75 });
        let noisy = Array3::from_shape_fn((3, h, w), |(c, y, x)| clean[[c, y, x]] + (sigma / 255.0) as f32 * z[(c * h + y) * w + x]);
        let out = denoise(noisy.view(), &NlmParams::for_sigma(sigma)).unwrap();
        let err = |a: &Array3<f32>| std_of(a.iter().zip(clean.iter()).map(|(p, q)| p - q));
        assert!(err(&out) < err(&noisy) / 3.0, "{} vs {}", err(&out), err(&noisy));
        let jump = out[[0, 16, w / 2]] - out[[0, 16, w / 2 - 1]];
        assert!(jump > 0.35, "edge contrast {jump}");
        assert!(denoise(noisy.view(), &NlmParams { h: 0.0, ..NlmParams::for_sigma(sigma) }).is_err());
    }

    #[test]
    fn parameter_table() {
        assert_eq!(NlmParams::for_sigma(25.0), NlmParams { sigma: 25.0, h: 0.55 * 25.0, patch: 1, search: 10 });
        assert_eq!(NlmParams::for_sigma(40.0).patch, 2);
        assert_eq!(NlmParams::for_sigma(80.0).search, 17);
    }
}
