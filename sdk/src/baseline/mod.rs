//! Classical restoration baselines, so a model's scores can be read against what a user already
//! has without a network: Wiener deconvolution with the true kernel ([`wiener`]), iterative
//! back-projection with the true down-sampling operator ([`backproject`]) and colour non-local
//! means ([`nlm`]; the stand-in for CBM3D, which has no maintained Rust implementation).
//!
//! Every baseline knows the degradation exactly: it comes from the `degradation.json` that
//! `bridge-export pairs` writes next to its pairs ([`PairsInfo`], schema in `docs/eval.md`).
//! Their parameters are fixed in [`Params::for_degradation`], chosen on the *training*
//! photographs (`sdk/examples/tune_baselines.rs`), never on the held-out pairs.
//!
//! Images are `[C, H, W]` planes in [0, 1]; outputs are clipped to [0, 1].

pub mod backproject;
pub mod nlm;
pub mod resize;
pub mod wiener;

pub use resize::resize_bicubic;

use crate::{Error, Result};
use ndarray::{Array3, ArrayView3};
use serde::{Deserialize, Serialize};

/// File name of the degradation description in a pairs folder.
pub const DEGRADATION_FILE: &str = "degradation.json";

/// A degradation with its exact parameters (the `degradation` object of `degradation.json`,
/// tagged by `kind`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Degradation {
    /// Separable Gaussian blur of standard deviation `sigma` px with `size` taps (odd), reflect
    /// borders (mirror without repeating the edge).
    GaussianBlur { sigma: f64, size: usize },
    /// MATLAB `imresize(x, 1/factor, 'bicubic')` (antialiased Keys a = −0.5, symmetric borders;
    /// [`resize_bicubic`]), then clipped to [0, 1].
    BicubicDown { factor: usize },
    /// Additive white Gaussian noise, `sigma` on the 0–255 scale.
    GaussianNoise { sigma: f64 },
    /// JPEG at `quality` (1–100), libjpeg's tables and quality scaling, 4:4:4.
    Jpeg { quality: u8 },
}

/// The whole `degradation.json`: what made a pairs folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairsInfo {
    /// Schema version (1).
    pub version: u32,
    /// Task name (`sr4`, `denoise`, `deblur`, `jpeg`).
    pub task: String,
    /// The degradation applied to the clean crops.
    pub degradation: Degradation,
    /// Seed of the random parts (noise), if any.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Bit depth of the degraded images: 16 (the default; rounding is negligible) or 8, as
    /// cameras and image files deliver them, whose rounding is noise a deconvolution amplifies
    /// (so the Wiener baseline is tuned per depth).
    #[serde(default = "sixteen")]
    pub input_bits: u32,
}

fn sixteen() -> u32 {
    16
}

impl PairsInfo {
    /// Parse a `degradation.json` text.
    pub fn from_json(text: &str) -> Result<Self> {
        let info: PairsInfo = serde_json::from_str(text).map_err(|e| Error::param(DEGRADATION_FILE, e.to_string()))?;
        if info.version != 1 {
            return Err(Error::param(DEGRADATION_FILE, format!("version {} is not supported (1)", info.version)));
        }
        Self::check_input_bits(info.input_bits).map_err(|e| Error::param(DEGRADATION_FILE, e.to_string()))?;
        Params::for_degradation(&info.degradation)?;
        Ok(info)
    }

    /// The bit depths pairs may have (what `input_bits` accepts): 16 or 8.
    pub fn check_input_bits(bits: u32) -> Result<()> {
        match bits {
            8 | 16 => Ok(()),
            b => Err(Error::param("input_bits", format!("{b} is not 8 or 16"))),
        }
    }

    /// Read `<dir>/degradation.json`; `Ok(None)` when the folder has none.
    pub fn read(dir: &std::path::Path) -> Result<Option<Self>> {
        let p = dir.join(DEGRADATION_FILE);
        match std::fs::read_to_string(&p) {
            Ok(t) => Self::from_json(&t).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io { path: p.display().to_string(), source: e }),
        }
    }

    /// Write `<dir>/degradation.json`.
    pub fn write(&self, dir: &std::path::Path) -> Result<()> {
        let p = dir.join(DEGRADATION_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::param(DEGRADATION_FILE, e.to_string()))?;
        crate::atomic_file::write_atomic(&p, (text + "\n").as_bytes(), || true)
    }
}

/// Which baseline to run (`bridge eval --baseline`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// The one that fits the degradation (see [`Method::auto`]).
    Auto,
    /// No classical baseline.
    None,
    /// Wiener deconvolution (blur).
    Wiener,
    /// Iterative back-projection (down-sampling).
    BackProject,
    /// Colour non-local means (noise, JPEG).
    Nlm,
}

impl Method {
    /// Parse `auto`, `none`, `wiener`, `backproject`, `nlm`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => Method::Auto,
            "none" => Method::None,
            "wiener" => Method::Wiener,
            "backproject" | "ibp" => Method::BackProject,
            "nlm" => Method::Nlm,
            o => return Err(Error::param("baseline", format!("`{o}` is not one of auto, none, wiener, backproject, nlm"))),
        })
    }

    /// The baseline for a degradation: Wiener for blur, back-projection for down-sampling, NLM
    /// for noise and JPEG.
    pub fn auto(d: &Degradation) -> Method {
        match d {
            Degradation::GaussianBlur { .. } => Method::Wiener,
            Degradation::BicubicDown { .. } => Method::BackProject,
            Degradation::GaussianNoise { .. } | Degradation::Jpeg { .. } => Method::Nlm,
        }
    }
}

/// A baseline with its parameters for one degradation.
#[derive(Clone, Debug, PartialEq)]
pub enum Params {
    /// See [`wiener::deconvolve`].
    Wiener { kernel: Vec<f64>, nsr: f64 },
    /// See [`backproject::backproject`].
    BackProject { factor: usize, iterations: usize, step: f64 },
    /// See [`nlm::denoise`].
    Nlm(nlm::NlmParams),
}

/// Wiener noise-to-signal ratio for the Gaussian-blur pairs, whose only noise is the 16-bit PNG
/// quantization: the best PSNR of 1e-10 … 1e-3 on the training photographs
/// (`sdk/examples/tune_baselines.rs`: 35.39 dB at 3e-8 against 35.21 at 1e-8 and 35.25 at 1e-7).
/// 8-bit inputs carry 65 000 times more quantization noise power and need a larger one
/// ([`WIENER_NSR_8BIT`]).
pub const WIENER_NSR: f64 = 3e-8;
/// Wiener noise-to-signal ratio for 8-bit Gaussian-blur pairs (`pairs --bits 8`): the best PSNR
/// of the same sweep on the training photographs rounded to 8 bits
/// (`sdk/examples/tune_baselines.rs`: 31.53 dB at 1e-3 against 31.42 at 3e-4 and 31.22 at 3e-3;
/// 8.24 dB at the 16-bit value, 3e-8, which amplifies the rounding).
pub const WIENER_NSR_8BIT: f64 = 1e-3;
/// Back-projection iterations and step, fixed a priori (Irani & Peleg's unit step; 20
/// iterations bring the LR residual near its floor).
pub const IBP_ITERATIONS: usize = 20;
/// See [`IBP_ITERATIONS`].
pub const IBP_STEP: f64 = 1.0;
/// NLM's noise level for JPEG q10 deblocking (0–255 scale): the best PSNR of σ ∈ {4, 6, 8, 10,
/// 12, 15, 20} on the training photographs (`sdk/examples/tune_baselines.rs`: 30.24 dB at 12,
/// 30.18 at 10, 30.12 at 15); JPEG error is not white noise, so σ is a knob here.
pub const JPEG_NLM_SIGMA: f64 = 12.0;

impl Params {
    /// The default baseline for a degradation (see the constants above for where the numbers
    /// come from).
    pub fn for_degradation(d: &Degradation) -> Result<Params> {
        Self::of(Method::auto(d), d)
    }

    /// Method `m` (`Auto`: the one that fits) for the pairs `info` describes: the degradation's
    /// parameters, and Wiener's NSR for the images' bit depth.
    pub fn for_pairs(m: Method, info: &PairsInfo) -> Result<Params> {
        let mut p = Self::of(m, &info.degradation)?;
        if let (Params::Wiener { nsr, .. }, 8) = (&mut p, info.input_bits) {
            *nsr = WIENER_NSR_8BIT;
        }
        Ok(p)
    }

    /// Method `m` with its parameters for degradation `d` (16-bit images; see
    /// [`Params::for_pairs`]); an error when `m` does not fit `d`.
    pub fn of(m: Method, d: &Degradation) -> Result<Params> {
        let wrong = || Error::param("baseline", format!("{m:?} does not fit the degradation {d:?}"));
        match (m, d) {
            (Method::Auto, _) => Self::of(Method::auto(d), d),
            (Method::None, _) => Err(Error::param("baseline", "`none` has no parameters")),
            (Method::Wiener, &Degradation::GaussianBlur { sigma, size }) => {
                if !(sigma.is_finite() && sigma > 0.0) || size % 2 == 0 {
                    return Err(Error::param("degradation", format!("Gaussian blur σ {sigma}, {size} taps: need σ > 0 and odd taps")));
                }
                Ok(Params::Wiener { kernel: wiener::gaussian_kernel(sigma, size), nsr: WIENER_NSR })
            }
            (Method::BackProject, &Degradation::BicubicDown { factor }) => {
                if factor < 2 {
                    return Err(Error::param("degradation", format!("down-sampling factor {factor}: need ≥ 2")));
                }
                Ok(Params::BackProject { factor, iterations: IBP_ITERATIONS, step: IBP_STEP })
            }
            (Method::Nlm, &Degradation::GaussianNoise { sigma }) => {
                if !(sigma.is_finite() && sigma > 0.0) {
                    return Err(Error::param("degradation", format!("noise σ {sigma}: need > 0")));
                }
                Ok(Params::Nlm(nlm::NlmParams::for_sigma(sigma)))
            }
            (Method::Nlm, &Degradation::Jpeg { quality }) => {
                if !(1..=100).contains(&quality) {
                    return Err(Error::param("degradation", format!("JPEG quality {quality}: need 1..=100")));
                }
                Ok(Params::Nlm(nlm::NlmParams::for_sigma(JPEG_NLM_SIGMA)))
            }
            _ => Err(wrong()),
        }
    }

    /// A short label for tables, e.g. `Wiener (true kernel, NSR 1e-4)`.
    pub fn label(&self) -> String {
        match self {
            Params::Wiener { nsr, .. } => format!("Wiener (true kernel, NSR {nsr:e})"),
            Params::BackProject { iterations, .. } => format!("back-projection ({iterations} it.)"),
            Params::Nlm(p) => format!(
                "NLM (σ {}, h {:.1}, {}×{} patch, {}×{} search)",
                p.sigma,
                p.h,
                2 * p.patch + 1,
                2 * p.patch + 1,
                2 * p.search + 1,
                2 * p.search + 1
            ),
        }
    }

    /// Restore one degraded `[C, H, W]` image.
    pub fn restore(&self, degraded: ArrayView3<f32>) -> Result<Array3<f32>> {
        match self {
            Params::Wiener { kernel, nsr } => wiener::deconvolve(degraded, kernel, *nsr),
            &Params::BackProject { factor, iterations, step } => backproject::backproject(degraded, factor, iterations, step),
            Params::Nlm(p) => nlm::denoise(degraded, p),
        }
    }
}

/// Mirror index without repeating the edge (`numpy.pad(mode="reflect")`), any overshoot.
pub(crate) fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let p = 2 * (n as isize - 1);
    let k = i.rem_euclid(p);
    (if k < n as isize { k } else { p - k }) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema round-trips, unknown kinds and versions are refused, `auto` picks per kind.
    #[test]
    fn degradation_json_schema() {
        let info = PairsInfo {
            version: 1,
            task: "deblur".into(),
            degradation: Degradation::GaussianBlur { sigma: 3.0, size: 61 },
            seed: Some(2024),
            input_bits: 16,
        };
        let text = serde_json::to_string(&info).unwrap();
        assert!(text.contains(r#""kind":"gaussian-blur""#), "{text}");
        assert_eq!(PairsInfo::from_json(&text).unwrap(), info);
        let sr = PairsInfo::from_json(r#"{"version":1,"task":"sr4","degradation":{"kind":"bicubic-down","factor":4}}"#).unwrap();
        assert_eq!(sr.degradation, Degradation::BicubicDown { factor: 4 });
        assert_eq!(Method::auto(&sr.degradation), Method::BackProject);
        assert!(PairsInfo::from_json(r#"{"version":2,"task":"x","degradation":{"kind":"jpeg","quality":10}}"#).is_err());
        assert!(PairsInfo::from_json(r#"{"version":1,"task":"x","degradation":{"kind":"motion-blur"}}"#).is_err());
        assert!(PairsInfo::from_json(r#"{"version":1,"task":"x","degradation":{"kind":"gaussian-blur","sigma":3,"size":60}}"#).is_err());
        assert!(PairsInfo::from_json(r#"{"version":1,"task":"x","degradation":{"kind":"jpeg","quality":0}}"#).is_err());
        assert_eq!(Method::auto(&Degradation::Jpeg { quality: 10 }), Method::Nlm);
        assert!(Params::of(Method::Wiener, &Degradation::Jpeg { quality: 10 }).is_err());
        assert!(Method::parse("bm3d").is_err());
        // Older files have no bit depth (16); 8-bit pairs get the 8-bit Wiener NSR; others are refused.
        assert_eq!(sr.input_bits, 16);
        let nsr = |i: &PairsInfo| match Params::for_pairs(Method::Auto, i).unwrap() {
            Params::Wiener { nsr, .. } => nsr,
            p => panic!("{p:?}"),
        };
        assert_eq!(nsr(&info), WIENER_NSR);
        assert_eq!(nsr(&PairsInfo { input_bits: 8, ..info.clone() }), WIENER_NSR_8BIT);
        assert!(PairsInfo::from_json(r#"{"version":1,"task":"x","degradation":{"kind":"jpeg","quality":10},"input_bits":12}"#).is_err());
    }
}
