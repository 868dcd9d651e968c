//! The generic implicit (DBIM/DDIM-type) step for any Gaussian bridge of eq. (1).
//!
//! From `x_t` to `x_s` (s < t) with kept-state ratio `ρ`:
//!
//! ```text
//! x_s = ρ·x_t + (a_s − ρ a_t)·x0̂ + (b_s − ρ b_t)·x_T + sqrt(c_s² − ρ² c_t²)·z
//! ```
//!
//! `ρ = c_s/c_t` gives the deterministic step; the family's ancestral ratio gives exact
//! posterior (ancestral) sampling; η interpolates the noise between them as DBIM does.

use super::Model;
use crate::family::Marginal;
use crate::rng::NoiseSource;
use crate::{Result, Tensor};

/// Coefficients of one linear step `x_s = c_x·x_t + c_0·x0̂ + c_t·x_T + c_z·z`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRow {
    /// Coefficient of the current state.
    pub c_x: f64,
    /// Coefficient of `x0̂`.
    pub c_0: f64,
    /// Coefficient of `x_T`.
    pub c_t: f64,
    /// Coefficient of the noise.
    pub c_z: f64,
}

/// The implicit step from marginal `mt` to `ms` keeping a fraction `rho` of the state.
/// A tiny negative variance from rounding is clamped to 0.
pub fn implicit_row(mt: Marginal, ms: Marginal, rho: f64) -> StepRow {
    StepRow {
        c_x: rho,
        c_0: ms.x0 - rho * mt.x0,
        c_t: ms.xt - rho * mt.xt,
        c_z: (ms.std * ms.std - rho * rho * mt.std * mt.std).max(0.0).sqrt(),
    }
}

/// Run the generic implicit sampler: family default grid, `η`-scaled ancestral noise.
pub fn sample(model: &mut Model<'_>, nfe: usize, eta: f64, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    let _ = (model, nfe, eta, noise);
    Err(crate::Error::incompatible("implicit", "any", "not implemented yet"))
}
