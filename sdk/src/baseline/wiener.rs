//! Wiener deconvolution with the known, separable, symmetric blur kernel, per channel, by FFT.
//!
//! **Boundaries.** The project's blur uses reflect borders (mirror without repeating the edge).
//! The reflect extension of an `n`-sample signal is periodic with period `2(n − 1)`, and a
//! symmetric kernel maps that extension to the reflect extension of the blurred signal. So on
//! the extended `2(H − 1) × 2(W − 1)` image the blur is exactly a circular convolution, and
//! the DFT diagonalizes it with no edge taper and no boundary error.
//!
//! **Filter.** `X = H·Y / (H² + NSR)` per frequency, with `H` the kernel's (real, separable)
//! DFT and a constant noise-to-signal ratio `NSR` ([`super::WIENER_NSR`]).

use crate::{Error, Result};
use ndarray::{Array3, ArrayView3};
use rustfft::{FftPlanner, num_complex::Complex};

/// Normalized 1-D Gaussian taps `exp(−k²/2σ²)`, `k = −(size−1)/2 ..= (size−1)/2` (the taps of
/// the project's blur).
pub fn gaussian_kernel(sigma: f64, size: usize) -> Vec<f64> {
    let r = (size / 2) as f64;
    let g: Vec<f64> = (0..size).map(|k| (-(k as f64 - r).powi(2) / (2.0 * sigma * sigma)).exp()).collect();
    let s: f64 = g.iter().sum();
    g.into_iter().map(|v| v / s).collect()
}

/// DFT of a centred symmetric kernel on a period `p`: real, `K(u) = Σ_j k_j cos(2π u j / p)`.
fn kernel_dft(kernel: &[f64], p: usize) -> Vec<f64> {
    let r = (kernel.len() / 2) as isize;
    (0..p)
        .map(|u| {
            kernel
                .iter()
                .enumerate()
                .map(|(j, &k)| k * (2.0 * std::f64::consts::PI * u as f64 * (j as isize - r) as f64 / p as f64).cos())
                .sum()
        })
        .collect()
}

/// In-place 2-D FFT (rows, then columns) of a row-major `h × w` buffer.
fn fft2(buf: &mut [Complex<f64>], h: usize, w: usize, planner: &mut FftPlanner<f64>, inverse: bool) {
    let (fr, fc) = if inverse {
        (planner.plan_fft_inverse(w), planner.plan_fft_inverse(h))
    } else {
        (planner.plan_fft_forward(w), planner.plan_fft_forward(h))
    };
    fr.process(buf);
    let mut col = vec![Complex::new(0.0, 0.0); h];
    for x in 0..w {
        for (y, c) in col.iter_mut().enumerate() {
            *c = buf[y * w + x];
        }
        fc.process(&mut col);
        for (y, c) in col.iter().enumerate() {
            buf[y * w + x] = *c;
        }
    }
}

/// Deconvolve `[C, H, W]` blurred (reflect borders) by the separable symmetric `kernel` (odd
/// length, applied along both axes) with noise-to-signal ratio `nsr` (> 0); clipped to [0, 1].
pub fn deconvolve(blurred: ArrayView3<f32>, kernel: &[f64], nsr: f64) -> Result<Array3<f32>> {
    let (c, h, w) = blurred.dim();
    if h < 2 || w < 2 {
        return Err(Error::Image(format!("Wiener deconvolution needs at least 2×2 pixels, got {h}×{w}")));
    }
    if kernel.len().is_multiple_of(2) {
        return Err(Error::param("kernel", format!("needs an odd number of taps, got {}", kernel.len())));
    }
    if !(nsr.is_finite() && nsr > 0.0) {
        return Err(Error::param("nsr", format!("must be finite and > 0, got {nsr}")));
    }
    // (A kernel longer than the period wraps around: still exact, as reflection repeats.)
    let (ph, pw) = (2 * (h - 1), 2 * (w - 1));
    let (ky, kx) = (kernel_dft(kernel, ph), kernel_dft(kernel, pw));
    let mut planner = FftPlanner::new();
    // Sized by the input (the restorer's pre-pass sees whole frames): fallible, so a frame too
    // large for the host's memory is a typed error, not an abort.
    let mut out = crate::alloc::try_zeros::<f32, _, _>((c, h, w), "the Wiener output")?;
    let mut buf = crate::alloc::try_vec(ph.saturating_mul(pw), Complex::new(0.0, 0.0), "the Wiener FFT buffer")?;
    let norm = 1.0 / (ph * pw) as f64;
    for ci in 0..c {
        for y in 0..ph {
            let sy = super::reflect(y as isize, h);
            for x in 0..pw {
                buf[y * pw + x] = Complex::new(f64::from(blurred[[ci, sy, super::reflect(x as isize, w)]]), 0.0);
            }
        }
        fft2(&mut buf, ph, pw, &mut planner, false);
        for (u, &hu) in ky.iter().enumerate() {
            for (v, &hv) in kx.iter().enumerate() {
                let k = hu * hv;
                buf[u * pw + v] *= k / (k * k + nsr);
            }
        }
        fft2(&mut buf, ph, pw, &mut planner, true);
        for y in 0..h {
            for x in 0..w {
                out[[ci, y, x]] = ((buf[y * pw + x].re * norm) as f32).clamp(0.0, 1.0);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct separable blur with reflect borders (the degradation the filter inverts).
    pub(crate) fn blur(img: &Array3<f32>, k: &[f64]) -> Array3<f32> {
        let (c, h, w) = img.dim();
        let r = (k.len() / 2) as isize;
        let mid = Array3::from_shape_fn((c, h, w), |(ci, y, x)| {
            k.iter()
                .enumerate()
                .map(|(j, &kj)| kj * f64::from(img[[ci, y, super::super::reflect(x as isize + j as isize - r, w)]]))
                .sum::<f64>() as f32
        });
        Array3::from_shape_fn((c, h, w), |(ci, y, x)| {
            k.iter()
                .enumerate()
                .map(|(j, &kj)| kj * f64::from(mid[[ci, super::super::reflect(y as isize + j as isize - r, h), x]]))
                .sum::<f64>() as f32
        })
    }

    fn psnr(a: &Array3<f32>, b: &Array3<f32>) -> f64 {
        let mse = a.iter().zip(b).map(|(&p, &q)| (f64::from(p) - f64::from(q)).powi(2)).sum::<f64>() / a.len() as f64;
        -10.0 * mse.log10()
    }

    /// A test image in (0, 1): coarse and fine sinusoids, a ramp and a soft edge.
    fn scene(c: usize, h: usize, w: usize) -> Array3<f32> {
        Array3::from_shape_fn((c, h, w), |(ci, y, x)| {
            let (yf, xf) = (y as f32, x as f32);
            let edge = 1.0 / (1.0 + (-(xf - 0.6 * w as f32) / 1.5).exp());
            let fine = 0.1 * (0.9 * xf + 0.5 * ci as f32).sin() * (0.7 * yf).cos();
            (0.45 + 0.15 * (0.21 * xf + ci as f32).sin() * (0.13 * yf).cos() + fine + 0.2 * edge + 0.001 * (xf - yf)).clamp(0.0, 1.0)
        })
    }

    /// Without noise the filter inverts the blur to a high PSNR (the blurred input is far lower),
    /// borders included: the reflect extension makes the model exact.
    #[test]
    fn inverts_a_noise_free_blur() {
        let img = scene(3, 48, 40);
        let k = gaussian_kernel(2.0, 21);
        let b = blur(&img, &k);
        let (pb, pr) = (psnr(&b, &img), psnr(&deconvolve(b.view(), &k, 1e-7).unwrap(), &img));
        eprintln!("blurred {pb:.2} dB, Wiener {pr:.2} dB");
        assert!(pb < 30.0, "the test blur is too weak: {pb:.2} dB");
        assert!(pr > 40.0, "Wiener with zero noise: {pr:.2} dB");
        // A larger NSR smooths more: a worse inversion but still better than the input.
        let p_reg = psnr(&deconvolve(b.view(), &k, 1e-2).unwrap(), &img);
        assert!(p_reg < pr && p_reg > pb, "NSR 1e-2: {p_reg:.2} dB");
    }

    #[test]
    fn identity_kernel_and_errors() {
        let img = scene(1, 16, 12);
        let out = deconvolve(img.view(), &[1.0], 1e-9).unwrap();
        assert!(out.iter().zip(img.iter()).all(|(a, b)| (a - b).abs() < 1e-5));
        assert!(deconvolve(img.view(), &[0.5, 0.5], 1e-3).is_err());
        assert!(deconvolve(img.view(), &[1.0], 0.0).is_err());
        assert!(deconvolve(Array3::<f32>::zeros((3, 1, 8)).view(), &[1.0], 1e-3).is_err());
    }
}
