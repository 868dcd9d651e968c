//! DDBM's Heun sampler with churn (alexzhou907/DDBM `sample_heun`, `to_d`, `get_d_vp`).
//!
//! On Karras et al.'s grid `σ_0 > … > σ_{n−1} > 0` (ρ = 7, from `t_max − 1e-4` to `t_min`),
//! each interval `σ_i → σ_{i+1}`:
//!
//! 1. with `churn = r > 0`, one stochastic Euler step to `σ̂ = σ_i + r·(σ_{i+1} − σ_i)` along the
//!    bridge SDE's drift, with noise `√|dt|·g`;
//! 2. a Heun (two-evaluation) step of the probability-flow ODE from `σ̂` to `σ_{i+1}` — an Euler
//!    step when `σ_{i+1} = 0`.
//!
//! Both drifts are linear in `(x, x0̂, x_T)`: the family's [`Ddbm::drift`] (coefficients in f64). VE uses
//! the score of the VE bridge; VP uses DDBM's `get_d_vp` in α–ρ form (`σ̃ = ρ`, `s = α`), with
//! the log-SNR differences from the family's cancellation-free `ρ̄` (the reference's float32
//! `exp(x) − 1` loses digits near `t_min`: the golden VP files allow 5e-4 for that; likewise its
//! float32 `1 − σ²/σ_max²` at `σ_max − 1e-4` puts `c_in` 3e-4 and `c_skip` 1% off, which is the
//! 1.7e-5 of `ddbm_ve_n10_churn0.json`'s first state — we keep the exact values). It needs a
//! [`Ddbm`] family on the VE or VP schedule ([`Error::Incompatible`] otherwise, including DBIM's
//! I2SB schedule, which DDBM's drift does not cover).
//!
//! NFE: `n` steps (`n` Karras times + the final 0, the reference's `steps`) cost `2n − 1`
//! evaluations (`3n − 1` with churn): every interval makes a Heun step (2 calls) except the last,
//! an Euler step into σ = 0 (1 call), plus one churn call per interval. A requested NFE must be
//! of that form (`n = (nfe + 1)/2`, resp. `(nfe + 1)/3`); any other NFE is an
//! [`Error::InvalidNfe`] naming the nearest ones that are (a sampler never silently runs fewer
//! calls than asked). Draw `i` is the churn noise of step `i`. The output is clamped to [−1, 1]
//! as the reference's `karras_sample` does; recorded states are the unclamped path after every
//! churn and Heun step (the golden files' `trajectory_note`).
//!
//! With few steps DDBM's VP Heun is far from its ODE's solution (with the exact denoiser: error
//! 1.8 at NFE 5, 1e-5 at NFE 19, ~3e-4 beyond, where the final Euler step into σ = 0 leaves half
//! of the `t_min` marginal's noise — VP's std ∝ √t); an independent float64 transcription of
//! `sample_heun` gives the same numbers. The VE sampler's last Euler step lands on `x0̂` exactly.

use super::Model;
use crate::family::Family;
use crate::family::ddbm::Ddbm;
use crate::rng::NoiseSource;
use crate::step::{self, NoiseTerm, Term};
use crate::{Error, Result, Tensor};

/// Karras grid exponent.
const RHO: f64 = 7.0;

/// `x0̂ − x` and `x_T − x`, formed before scaling (see [`Drift`](crate::family::ddbm::Drift)).
fn diffs(x: &Tensor, x0: &Tensor, x_end: crate::TensorView<'_>) -> Result<(Tensor, Tensor)> {
    let dd = step::combine(x.shape(), &[Term::new(1.0, x0.view()), Term::new(-1.0, x.view())])?;
    let dt = step::combine(x.shape(), &[Term::new(1.0, x_end), Term::new(-1.0, x.view())])?;
    Ok((dd, dt))
}

/// The number of Heun steps `n` for exactly `nfe` evaluations: `nfe = 2n − 1` (`3n − 1` with
/// churn), else [`Error::InvalidNfe`] with the nearest valid NFEs.
pub fn steps_for(nfe: usize, churn: bool) -> Result<usize> {
    let per = if churn { 3 } else { 2 };
    if nfe > 300_000 {
        return Err(Error::nfe(nfe, "DDBM's Heun sampler is limited to 100000 steps"));
    }
    let n = (nfe + 1) / per;
    if n >= 1 && n * per - 1 == nfe {
        return Ok(n);
    }
    let (lo, hi) = (n.max(1) * per - 1, (n + 1) * per - 1);
    let near = if lo < nfe { format!("{lo} or {hi}") } else { format!("{lo}") };
    Err(Error::nfe(
        nfe,
        format!("DDBM's Heun sampler makes {}n − 1 calls for n steps{}: use {near}", per, if churn { " with churn" } else { "" }),
    ))
}

/// Run DDBM's Heun sampler (module docs).
pub fn sample(model: &mut Model<'_>, nfe: usize, churn: f64, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    if !(churn.is_finite() && (0.0..1.0).contains(&churn)) {
        return Err(Error::param("churn", format!("{churn} must lie in [0, 1)")));
    }
    let family = model.family();
    let f = family
        .downcast::<Ddbm>()
        .ok_or_else(|| Error::incompatible("heun", family.name(), "DDBM's Heun sampler needs a DDBM (VE/VP) family"))?;
    if !f.is_continuous() {
        return Err(Error::incompatible("heun", f.name(), "DDBM's Heun drift is defined for the VE and VP schedules"));
    }
    // The drift divides by σ² (VE) or ρ_σ (VP): the Karras grid must stop above 0.
    if f.t_min() <= 0.0 {
        return Err(Error::param("t_min", format!("{}: DDBM's Heun sampler needs t_min > 0", f.t_min())));
    }
    let n = steps_for(nfe, churn > 0.0)?;
    let sigmas = f.karras_grid(n, RHO);
    let x_end = model.x_end();
    let mut x = crate::alloc::try_copy(x_end, "the sampler state")?;
    for i in 0..n {
        let (si, snext) = (sigmas[i], sigmas[i + 1]);
        let sigma_hat = if churn > 0.0 {
            let sigma_hat = (snext - si) * churn + si;
            let d0 = model.x0(&x, si)?;
            let d = f.drift(si, true)?;
            let dt = sigma_hat - si;
            let (dd, dtd) = diffs(&x, &d0, x_end)?;
            let z = NoiseTerm { coef: (dt.abs() * d.g2).sqrt(), draw: i as u64, source: &mut *noise };
            step::update(&mut x, 1.0 + dt * d.x, &[Term::new(dt * d.dd, dd.view()), Term::new(dt * d.dt, dtd.view())], Some(z))?;
            model.record(&x);
            sigma_hat
        } else {
            si
        };
        let d0 = model.x0(&x, sigma_hat)?;
        let d = f.drift(sigma_hat, false)?;
        let dt = snext - sigma_hat;
        let (dd, dtd) = diffs(&x, &d0, x_end)?;
        if snext == 0.0 {
            step::update(&mut x, 1.0 + dt * d.x, &[Term::new(dt * d.dd, dd.view()), Term::new(dt * d.dt, dtd.view())], None)?;
        } else {
            let mut x2 = crate::alloc::try_copy(x.view(), "the Heun predictor")?;
            step::update(&mut x2, 1.0 + dt * d.x, &[Term::new(dt * d.dd, dd.view()), Term::new(dt * d.dt, dtd.view())], None)?;
            let d2_0 = model.x0(&x2, snext)?;
            let d2 = f.drift(snext, false)?;
            let (dd2, dtd2) = diffs(&x2, &d2_0, x_end)?;
            let h = 0.5 * dt;
            step::update(
                &mut x,
                1.0 + h * d.x,
                &[
                    Term::new(h * d.dd, dd.view()),
                    Term::new(h * d.dt, dtd.view()),
                    Term::new(h * d2.x, x2.view()),
                    Term::new(h * d2.dd, dd2.view()),
                    Term::new(h * d2.dt, dtd2.view()),
                ],
                None,
            )?;
        }
        model.record(&x);
    }
    step::clamp(&mut x, -1.0, 1.0);
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::ddbm::DdbmParams;
    use crate::family::i2sb::{I2sb, I2sbParams};
    use crate::rng::PhiloxNoise;
    use crate::sampler::testing;
    use crate::sampler::{Sampler, sample as run};
    use crate::{FnDenoiser, PointMassOracle, TensorView};

    fn images() -> (Tensor, Tensor) {
        testing::images(1)
    }

    /// With the exact denoiser: VE lands on x0 (its last Euler step into σ = 0 is exact, and
    /// churn's noise is removed by the later steps once there are a few of them); VP's ODE gets
    /// within 1e-3 with ≥ 10 steps (its last Euler step keeps half of the t_min noise, see the
    /// module docs), within 1e-2 with churn (plus the last churn step's noise).
    #[test]
    fn point_mass_lands_on_x0() {
        let (x0, xt) = images();
        let cases: [(DdbmParams, f64, &[usize], f32); 4] = [
            (DdbmParams::ve(), 0.0, &[1, 3, 5, 19, 39], 1e-5),
            (DdbmParams::ve(), 0.33, &[11, 29, 59], 1e-5),
            (DdbmParams::vp(), 0.0, &[19, 39, 79, 199], 1e-3),
            (DdbmParams::vp(), 0.33, &[29, 59, 119], 1e-2),
        ];
        for (p, churn, nfes, tol) in cases {
            let f = Ddbm::new(p).unwrap();
            for &nfe in nfes {
                let mut oracle = PointMassOracle::new(x0.clone());
                let mut model = Model::new(&mut oracle, &f, xt.view(), xt.view()).unwrap();
                let out = run(&mut model, &Sampler::Heun { churn }, nfe, &mut PhiloxNoise::new(7)).unwrap();
                assert_eq!(model.calls(), nfe);
                let err = out.iter().zip(&x0).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(err < tol, "{} churn {churn} nfe {nfe}: {err}", f.name());
            }
        }
    }

    #[test]
    fn nfe_maps_to_steps() {
        assert_eq!(steps_for(19, false).unwrap(), 10);
        assert_eq!(steps_for(29, true).unwrap(), 10);
        assert_eq!(steps_for(79, false).unwrap(), 40);
        assert_eq!(steps_for(1, false).unwrap(), 1);
        assert_eq!(steps_for(2, true).unwrap(), 1);
        for (nfe, churn) in [(0, false), (20, false), (0, true), (1, true), (30, true), (usize::MAX - 1, false)] {
            assert!(matches!(steps_for(nfe, churn), Err(Error::InvalidNfe { .. })), "{nfe} {churn}");
        }
        let msg = steps_for(20, false).unwrap_err().to_string();
        assert!(msg.contains("19 or 21"), "{msg}");
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let (x0, xt) = images();
        let mut oracle = PointMassOracle::new(x0.clone());
        let i2 = I2sb::new(I2sbParams::default()).unwrap();
        let mut m = Model::new(&mut oracle, &i2, xt.view(), xt.view()).unwrap();
        assert!(matches!(run(&mut m, &Sampler::Heun { churn: 0.0 }, 5, &mut PhiloxNoise::new(0)), Err(Error::Incompatible { .. })));
        let dbim_i2sb = Ddbm::new(DdbmParams::dbim_i2sb()).unwrap();
        let mut m = Model::new(&mut oracle, &dbim_i2sb, xt.view(), xt.view()).unwrap();
        assert!(matches!(run(&mut m, &Sampler::Heun { churn: 0.0 }, 5, &mut PhiloxNoise::new(0)), Err(Error::Incompatible { .. })));
        let vp = Ddbm::new(DdbmParams::vp()).unwrap();
        let mut m = Model::new(&mut oracle, &vp, xt.view(), xt.view()).unwrap();
        for churn in [-0.1, 1.0, f64::NAN] {
            assert!(matches!(run(&mut m, &Sampler::Heun { churn }, 5, &mut PhiloxNoise::new(0)), Err(Error::InvalidParam { .. })));
        }
        let mut p0 = DdbmParams::ve();
        p0.t_min = 0.0;
        let ve0 = Ddbm::new(p0).unwrap();
        let mut m = Model::new(&mut oracle, &ve0, xt.view(), xt.view()).unwrap();
        assert!(matches!(run(&mut m, &Sampler::Heun { churn: 0.0 }, 5, &mut PhiloxNoise::new(0)), Err(Error::InvalidParam { .. })));
        let mut nan = FnDenoiser(|x: TensorView<'_>, _c: TensorView<'_>, _t: f64| Ok(x.mapv(|_| f32::INFINITY)));
        let mut m = Model::new(&mut nan, &vp, xt.view(), xt.view()).unwrap();
        assert!(matches!(run(&mut m, &Sampler::Heun { churn: 0.0 }, 5, &mut PhiloxNoise::new(0)), Err(Error::NonFinite { .. })));
    }
}
