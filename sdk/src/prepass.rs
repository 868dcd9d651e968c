//! Classical pre-passes a model package can declare (`bridge.prepass`): a known restoration
//! step applied to the degraded image before the bridge, by the SDK at restore time and by the
//! trainer on every training input, so the network learns to refine that step's output instead
//! of re-deriving it.
//!
//! The one pre-pass so far is **Wiener deconvolution with the package's known Gaussian blur**,
//! `{"kind": "wiener", "blur_sigma": 3, "taps": 61, "nsr": 3e-8, "nsr_8bit": 1e-3}`. Why: for a
//! non-blind deblurring model the exact inverse filter is known in closed form, and a small
//! network trained on CPU budgets approached it from the blurred image only slowly
//! (`models/deblur.md`); started from the Wiener estimate it has only Wiener's residual
//! (amplified noise, ringing, lost frequencies) left to remove.
//!
//! **Noise level.** Wiener's noise-to-signal ratio must fit the input's noise, and the inputs
//! this SDK restores are files or frames whose only noise besides the blur is quantization:
//! `nsr_8bit` applies to an image on the 8-bit grid (every value `k/255`), `nsr` to one on the
//! 16-bit grid (`k/65535`) but not on the 8-bit one. Anything else (floating point of unknown
//! origin) gets `nsr_8bit`, the conservative choice: the small ratio amplifies any noise above
//! 16-bit rounding (an 8-bit input deconvolved at 3e-8 scores about 8 dB).
//!
//! The pre-pass runs on the whole frame before tiling (the same output for every tile size) and
//! costs an FFT of the `2(H−1) × 2(W−1)` reflect extension per channel: 64 bytes of scratch per
//! pixel (see [`crate::baseline::wiener::deconvolve`]).

use crate::baseline::wiener;
use crate::{Error, Result};
use ndarray::{Array3, ArrayView3};
use serde_json::{Value, json};

/// Largest Gaussian σ (pixels) and tap count a package may declare (keeps the kernel small and
/// the metadata sane).
const MAX_SIGMA: f64 = 64.0;
const MAX_TAPS: usize = 1025;

/// A package's pre-pass (`bridge.prepass`).
#[derive(Clone, Debug, PartialEq)]
pub enum Prepass {
    /// Wiener deconvolution of a Gaussian blur with reflect borders (the project's `deblur`
    /// degradation), noise-to-signal ratio by the input's quantization grid (module docs).
    Wiener { blur_sigma: f64, taps: usize, nsr: f64, nsr_8bit: f64 },
}

/// The quantization grid an image in `[0, 1]` lies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grid {
    /// Every value is `k/255`.
    Bits8,
    /// Every value is `k/65535` (and not all on the 8-bit grid).
    Bits16,
    /// Neither.
    Float,
}

impl Grid {
    /// The grid of `img` (values in `[0, 1]`). Tolerances absorb the f32 round trip through a
    /// model's value range (e.g. `2v − 1` and back): about 1e-5 of an 8-bit level and 1e-2 of a
    /// 16-bit one; the nearest off-grid 16-bit value is 1/257 of an 8-bit level away.
    pub fn of(img: ArrayView3<f32>) -> Grid {
        let on = |levels: f32, tol: f32| {
            img.iter().all(|&v| {
                let q = v * levels;
                (q - q.round()).abs() <= tol
            })
        };
        if on(255.0, 1e-3) {
            Grid::Bits8
        } else if on(65535.0, 2e-2) {
            Grid::Bits16
        } else {
            Grid::Float
        }
    }
}

impl Prepass {
    /// Wiener for the Gaussian blur `blur_sigma`, `taps`, with the SDK's tuned ratios
    /// ([`crate::baseline::WIENER_NSR`], [`crate::baseline::WIENER_NSR_8BIT`]).
    pub fn wiener(blur_sigma: f64, taps: usize) -> Result<Prepass> {
        let p = Prepass::Wiener { blur_sigma, taps, nsr: crate::baseline::WIENER_NSR, nsr_8bit: crate::baseline::WIENER_NSR_8BIT };
        p.check().map_err(|e| Error::param("prepass", e))?;
        Ok(p)
    }

    /// Parse the `bridge.prepass` JSON value (errors name the bad field).
    pub fn from_json(text: &str) -> std::result::Result<Prepass, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("bridge.prepass: not JSON ({e})"))?;
        let m = v.as_object().ok_or("bridge.prepass: expected a JSON object")?;
        let num = |k: &str| m.get(k).and_then(Value::as_f64).ok_or_else(|| format!("bridge.prepass: `{k}` must be a number"));
        match m.get("kind").and_then(Value::as_str) {
            Some("wiener") => {
                if let Some(k) = m.keys().find(|k| !matches!(k.as_str(), "kind" | "blur_sigma" | "taps" | "nsr" | "nsr_8bit")) {
                    return Err(format!("bridge.prepass: unknown field `{k}` for kind wiener"));
                }
                let taps = m
                    .get("taps")
                    .and_then(Value::as_u64)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or("bridge.prepass: `taps` must be a positive integer")?;
                let p = Prepass::Wiener { blur_sigma: num("blur_sigma")?, taps, nsr: num("nsr")?, nsr_8bit: num("nsr_8bit")? };
                p.check().map_err(|e| format!("bridge.prepass: {e}"))?;
                Ok(p)
            }
            Some(k) => Err(format!("bridge.prepass: unknown kind `{k}` (known: wiener)")),
            None => Err("bridge.prepass: `kind` must be a string".into()),
        }
    }

    fn check(&self) -> std::result::Result<(), String> {
        let Prepass::Wiener { blur_sigma, taps, nsr, nsr_8bit } = *self;
        if !(blur_sigma.is_finite() && blur_sigma > 0.0 && blur_sigma <= MAX_SIGMA) {
            return Err(format!("blur σ {blur_sigma} must be in (0, {MAX_SIGMA}]"));
        }
        if taps % 2 == 0 || taps > MAX_TAPS {
            return Err(format!("{taps} taps: need an odd count ≤ {MAX_TAPS}"));
        }
        for (name, r) in [("nsr", nsr), ("nsr_8bit", nsr_8bit)] {
            if !(r.is_finite() && r > 0.0 && r < 1.0) {
                return Err(format!("`{name}` {r} must be in (0, 1)"));
            }
        }
        Ok(())
    }

    /// The `bridge.prepass` JSON value.
    pub fn to_json(&self) -> String {
        let Prepass::Wiener { blur_sigma, taps, nsr, nsr_8bit } = *self;
        json!({"kind": "wiener", "blur_sigma": blur_sigma, "taps": taps, "nsr": nsr, "nsr_8bit": nsr_8bit}).to_string()
    }

    /// A short description for `bridge info` and tables.
    pub fn label(&self) -> String {
        let Prepass::Wiener { blur_sigma, taps, nsr, nsr_8bit } = *self;
        format!("Wiener deconvolution (Gaussian σ {blur_sigma}, {taps} taps; NSR {nsr_8bit:e} on 8-bit or other input, {nsr:e} on 16-bit)")
    }

    /// The noise-to-signal ratio used for an input on `grid`.
    pub fn nsr_for(&self, grid: Grid) -> f64 {
        let Prepass::Wiener { nsr, nsr_8bit, .. } = *self;
        if grid == Grid::Bits16 { nsr } else { nsr_8bit }
    }

    /// Apply to one `[C, H, W]` image in `[0, 1]`; the output is in `[0, 1]`.
    pub fn apply(&self, img: ArrayView3<f32>) -> Result<Array3<f32>> {
        let Prepass::Wiener { blur_sigma, taps, .. } = *self;
        let kernel = wiener::gaussian_kernel(blur_sigma, taps);
        wiener::deconvolve(img, &kernel, self.nsr_for(Grid::of(img)))
    }

    /// Apply to each image of a `[B, C, H, W]` batch in the model's `range` (mapped to `[0, 1]`
    /// and back).
    pub fn apply_batch(&self, x: ndarray::ArrayView4<f32>, range: (f64, f64)) -> Result<crate::Tensor> {
        let (lo, hi) = (range.0 as f32, range.1 as f32);
        let mut out = crate::alloc::try_zeros(x.raw_dim(), "the pre-pass output")?;
        for (src, mut dst) in x.outer_iter().zip(out.outer_iter_mut()) {
            let unit = crate::alloc::try_map(src, |&v| ((v - lo) / (hi - lo)).clamp(0.0, 1.0), "the pre-pass input")?;
            let y = self.apply(unit.view())?;
            dst.zip_mut_with(&y, |d, &v| *d = lo + (hi - lo) * v);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array4, Axis};

    fn wiener() -> Prepass {
        Prepass::wiener(3.0, 61).unwrap()
    }

    #[test]
    fn json_round_trip_and_typed_refusals() {
        let p = wiener();
        assert_eq!(Prepass::from_json(&p.to_json()).unwrap(), p);
        for (bad, needle) in [
            ("[]", "JSON object"),
            ("{", "not JSON"),
            (r#"{"kind": "median"}"#, "unknown kind"),
            (r#"{"blur_sigma": 3}"#, "`kind`"),
            (r#"{"kind": "wiener", "blur_sigma": 3, "taps": 61, "nsr": 1e-8}"#, "nsr_8bit"),
            (r#"{"kind": "wiener", "blur_sigma": 3, "taps": 60, "nsr": 1e-8, "nsr_8bit": 1e-3}"#, "odd"),
            (r#"{"kind": "wiener", "blur_sigma": 3, "taps": -1, "nsr": 1e-8, "nsr_8bit": 1e-3}"#, "taps"),
            (r#"{"kind": "wiener", "blur_sigma": 0, "taps": 61, "nsr": 1e-8, "nsr_8bit": 1e-3}"#, "blur σ"),
            (r#"{"kind": "wiener", "blur_sigma": 3, "taps": 61, "nsr": 0, "nsr_8bit": 1e-3}"#, "`nsr`"),
            (r#"{"kind": "wiener", "blur_sigma": 3, "taps": 61, "nsr": 1e-8, "nsr_8bit": 1e-3, "x": 1}"#, "unknown field"),
        ] {
            let e = Prepass::from_json(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn grid_detection() {
        let img = |f: &dyn Fn(usize) -> f32| Array3::from_shape_fn((3, 8, 8), |(c, y, x)| f(c * 64 + y * 8 + x));
        assert_eq!(Grid::of(img(&|i| (i % 256) as f32 / 255.0).view()), Grid::Bits8);
        // 16-bit values that are not all multiples of 257.
        assert_eq!(Grid::of(img(&|i| (i * 101 % 65536) as f32 / 65535.0).view()), Grid::Bits16);
        // An 8-bit image widened to 16 bits (k·257) is still 8-bit.
        assert_eq!(Grid::of(img(&|i| ((i % 256) * 257) as f32 / 65535.0).view()), Grid::Bits8);
        assert_eq!(Grid::of(img(&|i| (i as f32 * 0.001234).fract()).view()), Grid::Float);
        // Through a signed model range and back (f32 rounding) the grid survives.
        let signed = img(&|i| (i % 256) as f32 / 255.0).mapv(|v| 2.0 * v - 1.0).mapv(|v| (v + 1.0) / 2.0);
        assert_eq!(Grid::of(signed.view()), Grid::Bits8);
    }

    /// The pre-pass is exactly the Wiener baseline at the grid's NSR, in any model range.
    #[test]
    fn batch_matches_the_baseline_in_every_range() {
        let p = wiener();
        let clean =
            Array3::from_shape_fn((3, 24, 20), |(c, y, x)| 0.5 + 0.4 * ((x as f32 * 0.7 + c as f32).sin() * (y as f32 * 0.3).cos()));
        // (Any input on the 8-bit grid serves: the point is the same function, not a good result.)
        let blurred = clean.mapv(|v| (v * 255.0).round() / 255.0);
        let kernel = wiener::gaussian_kernel(3.0, 61);
        let want = wiener::deconvolve(blurred.view(), &kernel, crate::baseline::WIENER_NSR_8BIT).unwrap();
        for range in [(0.0, 1.0), (-1.0, 1.0)] {
            let (lo, hi) = (range.0 as f32, range.1 as f32);
            let x: Array4<f32> = blurred.mapv(|v| lo + (hi - lo) * v).insert_axis(Axis(0));
            let got = p.apply_batch(x.view(), range).unwrap();
            let back = got.index_axis(Axis(0), 0).mapv(|v| (v - lo) / (hi - lo));
            let err = back.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(err < 1e-5, "range {range:?}: {err}");
        }
        assert_eq!(p.nsr_for(Grid::Bits16), crate::baseline::WIENER_NSR);
        assert_eq!(p.nsr_for(Grid::Float), crate::baseline::WIENER_NSR_8BIT);
    }
}
