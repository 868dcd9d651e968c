//! Bicubic resizing as MATLAB's `imresize(x, [m n], 'bicubic')` computes it (antialiasing on),
//! the operator SR benchmarks use to make low-resolution inputs.
//!
//! Per axis (length `n → m`, scale `s = m / n`):
//! * kernel: Keys' cubic convolution with `a = −0.5`,
//!   `k(x) = 1.5|x|³ − 2.5|x|² + 1` on `|x| ≤ 1`, `−0.5|x|³ + 2.5|x|² − 4|x| + 2` on `1 < |x| < 2`;
//! * antialiasing: when shrinking (`s < 1`) the kernel is stretched, `h(x) = s·k(s·x)`, so its
//!   support grows to `4/s` input pixels (16 taps + 2 for ×4) and acts as a low-pass filter;
//! * centres: output pixel `i` (0-based) samples input coordinate `u = (i + ½)/s − ½`;
//! * weights of the taps `⌊u − width/2⌋ + k`, `k = 0 .. ⌈width⌉ + 2`, normalized to sum 1;
//! * borders: symmetric padding with the edge pixel repeated (`…, 1, 0 | 0, 1, …`), as MATLAB.
//!
//! Rows (H) are resized first, then columns (W), in `f64` weights with `f32` samples. Output is not
//! clipped (the cubic kernel overshoots near edges); callers clip where an image is expected.

use crate::{Error, Result};
use ndarray::{Array3, ArrayView3};

fn keys_cubic(x: f64) -> f64 {
    let x = x.abs();
    if x <= 1.0 {
        (1.5 * x - 2.5) * x * x + 1.0
    } else if x < 2.0 {
        ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0
    } else {
        0.0
    }
}

/// Symmetric index with edge repeat (MATLAB `symmetric` padding), any overshoot.
fn symmetric(i: i64, n: usize) -> usize {
    let p = 2 * n as i64;
    let k = i.rem_euclid(p);
    (if k < n as i64 { k } else { p - 1 - k }) as usize
}

/// Taps `(input index, weight)` of every output index along one axis.
fn taps(n: usize, m: usize) -> Vec<Vec<(usize, f64)>> {
    let s = m as f64 / n as f64;
    let (kscale, width) = if s < 1.0 { (s, 4.0 / s) } else { (1.0, 4.0) };
    (0..m)
        .map(|i| {
            let u = (i as f64 + 0.5) / s - 0.5;
            let left = (u - width / 2.0).floor() as i64;
            let count = width.ceil() as i64 + 2;
            let mut t: Vec<(usize, f64)> = (left..left + count)
                .map(|j| (symmetric(j, n), kscale * keys_cubic(kscale * (u - j as f64))))
                .filter(|&(_, w)| w != 0.0)
                .collect();
            let sum: f64 = t.iter().map(|&(_, w)| w).sum();
            for tap in &mut t {
                tap.1 /= sum;
            }
            t
        })
        .collect()
}

/// Resize `[C, H, W]` to `[C, out_h, out_w]` (see the module docs for the exact operator).
pub fn resize_bicubic(img: ArrayView3<f32>, out_h: usize, out_w: usize) -> Result<Array3<f32>> {
    let (c, h, w) = img.dim();
    if h == 0 || w == 0 || out_h == 0 || out_w == 0 {
        return Err(Error::param("size", format!("cannot resize {h}×{w} to {out_h}×{out_w}")));
    }
    let ty = taps(h, out_h);
    let tx = taps(w, out_w);
    let src = img.as_standard_layout();
    let src = src.as_slice().ok_or_else(|| Error::Image("non-contiguous image".into()))?;
    // Pass 1 (along H) accumulates whole input rows, so memory is read contiguously.
    let mut mid = vec![0f32; c * out_h * w];
    let mut acc = vec![0f64; w];
    for ci in 0..c {
        for (o, t) in ty.iter().enumerate() {
            acc.fill(0.0);
            for &(j, wt) in t {
                let row = &src[(ci * h + j) * w..][..w];
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += wt * f64::from(v);
                }
            }
            for (m, &a) in mid[(ci * out_h + o) * w..][..w].iter_mut().zip(&acc) {
                *m = a as f32;
            }
        }
    }
    // Pass 2 (along W): each output sample is a short dot product within one row.
    let mut out = vec![0f32; c * out_h * out_w];
    for (row_in, row_out) in mid.chunks_exact(w).zip(out.chunks_exact_mut(out_w)) {
        for (o, t) in row_out.iter_mut().zip(&tx) {
            *o = t.iter().map(|&(j, wt)| wt * f64::from(row_in[j])).sum::<f64>() as f32;
        }
    }
    Array3::from_shape_vec((c, out_h, out_w), out).map_err(|e| Error::Image(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_kernel_shape() {
        assert_eq!(keys_cubic(0.0), 1.0);
        assert_eq!(keys_cubic(1.0), 0.0);
        assert_eq!(keys_cubic(2.0), 0.0);
        assert!((keys_cubic(0.5) - 0.5625).abs() < 1e-12);
        assert!((keys_cubic(1.5) + 0.0625).abs() < 1e-12);
    }

    #[test]
    fn x4_down_has_18_taps_and_reproduces_ramps() {
        let t = taps(64, 16);
        assert!(t[5].len() >= 15 && t[5].len() <= 18, "{} taps", t[5].len());
        // Interior output centres fall on half-integers, the weights are symmetric about them,
        // so a linear ramp comes out exactly as the ramp sampled at u = 4i + 1.5.
        let img = Array3::from_shape_fn((1, 64, 64), |(_, y, x)| 0.01 * x as f32 + 0.02 * y as f32);
        let out = resize_bicubic(img.view(), 16, 16).unwrap();
        for i in 2..14 {
            for j in 2..14 {
                let want = 0.01 * (4.0 * j as f32 + 1.5) + 0.02 * (4.0 * i as f32 + 1.5);
                assert!((out[[0, i, j]] - want).abs() < 1e-5, "({i},{j}): {} vs {want}", out[[0, i, j]]);
            }
        }
        // Constants everywhere, borders included.
        let flat = Array3::from_elem((2, 20, 12), 0.7f32);
        assert!(resize_bicubic(flat.view(), 5, 3).unwrap().iter().all(|v| (v - 0.7).abs() < 1e-6));
    }

    /// Interior values against PIL 13's `Image.resize(BICUBIC)` on a mode-"F" image: PIL uses the
    /// same a = −0.5 kernel stretched by the scale and the same centres (it differs from MATLAB
    /// only at borders, where it drops out-of-range taps instead of mirroring). Reference produced
    /// by `PIL.Image.fromarray(f).resize((8, 8), Image.BICUBIC)` with
    /// `f[y, x] = sin(0.7x) + 0.5·cos(0.45y) + 0.01·x·y` on a 32 × 32 grid.
    #[test]
    fn x4_down_matches_pil_interior() {
        let img = Array3::from_shape_fn((1, 32, 32), |(_, y, x)| {
            let (y, x) = (y as f32, x as f32);
            (0.7 * x).sin() + 0.5 * (0.45 * y).cos() + 0.01 * x * y
        });
        let out = resize_bicubic(img.view(), 8, 8).unwrap();
        let pil: [[f32; 4]; 4] = PIL_REF;
        for (a, row) in pil.iter().enumerate() {
            for (b, &want) in row.iter().enumerate() {
                let got = out[[0, a + 2, b + 2]];
                assert!((got - want).abs() < 1e-5, "({}, {}): {got} vs PIL {want}", a + 2, b + 2);
            }
        }
    }

    const PIL_REF: [[f32; 4]; 4] = [
        [0.93302, 1.075965, 1.279407, 2.229176],
        [1.945076, 2.248021, 2.611463, 3.721232],
        [1.874506, 2.337451, 2.860893, 4.130661],
        [1.827191, 2.450136, 3.133578, 4.563346],
    ];
}
