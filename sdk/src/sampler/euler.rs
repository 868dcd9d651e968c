//! GOUB / UniDB reverse SDE, Mean-ODE and probability-flow ODE (row plans, [`super::plan`]): one
//! Euler step of the h-transformed reverse SDE per integer step `t = T, …, 1` (`docs/math/goub.md`
//! §4, §6, §7; `reverse_sde`, `reverse_mean_ode`, `sde_reverse_drift_1`, `dispersion` in the official
//! GOUB/UniDB `sde_utils.py`; UniDB++'s adds `reverse_pf_ode`, `sde_reverse_drift_2`).
//!
//! Kept in noise (`ε`) form — `x0̂` is undefined at `t = T` and ill-conditioned near it:
//!
//! ```text
//! x_{t−1} = C_x·x_t + C_μ·μ + C_ε·ε + C_z·z
//! C_x = 1 + (θ_t + g_t² E_t)·dt,  C_μ = 1 − C_x,  C_ε = −g_t²·dt/f_σ(t),  C_z = −g_t·√dt (SDE only)
//! ```
//!
//! with `E_t` the h-term coefficient (γ⁻¹ for UniDB) and, at `t = T`, score and h-term 0 as the
//! reference does. This is not an implicit (posterior) step: `C_x > 1`. The probability-flow ODE
//! (UniDB++'s `pf-ode`, `sde_reverse_drift_2`) is the Mean-ODE with half the score term,
//! `C_ε = −½g_t²·dt/f_σ(t)`, and no noise.
//!
//! **NFE.** The reference visits every integer step and calls the network `T` times (100);
//! `nfe` must be `T` — any other value is an [`Error::InvalidNfe`] (step skipping is what
//! UniDB++'s solvers and the implicit sampler are for). The call at `t = T` is skipped: its
//! output is multiplied by 0 there, so the result is the same with `T − 1` evaluations.
//! Noise: draw `k` is the `z` of the `k`-th step (`t = T − k`), one per step including the last
//! (`t = 1 → 0` adds noise, as the reference does).

use super::plan::{Builder, Plan, Source};
use crate::family::Family;
use crate::family::gou::Gou;
use crate::{Error, Result};

/// One Euler step in `ε` form (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpsRow {
    /// Coefficient of `x_t`.
    pub c_x: f64,
    /// Coefficient of `μ = x_T`.
    pub c_mu: f64,
    /// Coefficient of the network's `ε` (0 at `t = T`).
    pub c_eps: f64,
    /// Coefficient of the noise (0 for the Mean-ODE).
    pub c_z: f64,
}

/// Which of the reference's Euler samplers: the reverse SDE, the Mean-ODE (its drift without
/// noise) or the probability-flow ODE (half the score, no noise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drift {
    /// `reverse_sde`: full score term plus noise.
    Sde,
    /// `reverse_mean_ode`: full score term, no noise.
    MeanOde,
    /// `reverse_pf_ode`: ½ the score term, no noise.
    PfOde,
}

impl Drift {
    /// The registry name of the sampler.
    pub fn name(self) -> &'static str {
        match self {
            Drift::Sde => "euler-sde",
            Drift::MeanOde => "mean-ode",
            Drift::PfOde => "pf-ode",
        }
    }
}

/// The Euler row of step `t → t − 1` (reverse SDE if `sde`, else Mean-ODE).
pub fn euler_row(f: &Gou, t: usize, sde: bool) -> EpsRow {
    drift_row(f, t, if sde { Drift::Sde } else { Drift::MeanOde })
}

/// The Euler row of step `t → t − 1` for any of the three drifts.
pub fn drift_row(f: &Gou, t: usize, drift: Drift) -> EpsRow {
    let (dt, g2) = (f.dt(), f.g2(t));
    let k = (f.theta(t) + g2 * f.h_coef(t)) * dt;
    let top = t >= f.t_max();
    // The probability-flow drift carries ½·g_t²·score where the SDE's carries g_t²·score.
    let score_weight = if drift == Drift::PfOde { 0.5 } else { 1.0 };
    let c_eps = if top { 0.0 } else { -score_weight * g2 * dt / f.f_sigma(t as f64) };
    let c_z = if drift == Drift::Sde { -g2.sqrt() * dt.sqrt() } else { 0.0 };
    EpsRow { c_x: 1.0 + k, c_mu: -k, c_eps, c_z }
}

/// The plan of one of the Euler samplers on a GOUB/UniDB family; `nfe` must be `T` (the sampler
/// ignores an inpainting mask).
pub(super) fn plan(family: &dyn Family, nfe: usize, drift: Drift, masked: bool) -> Result<Plan> {
    let name = drift.name();
    let f = family.downcast::<Gou>().ok_or_else(|| Error::incompatible(name, family.name(), "the Euler reverse SDE is GOUB/UniDB's"))?;
    let t_max = f.t_max();
    if nfe != t_max {
        return Err(Error::nfe(nfe, format!("{name} visits every integer step: NFE must be T = {t_max}")));
    }
    let mut b = Builder::new(family, &[Source::XEnd, Source::Raw], false, masked);
    for (k, t) in (1..=t_max).rev().enumerate() {
        let row = drift_row(f, t, drift);
        // No call at t = T, where ε is multiplied by 0.
        let call = (row.c_eps != 0.0).then(|| family.net_call(t as f64));
        b.step(call, row.c_x, &[row.c_mu, row.c_eps])?.set_noise(row.c_z, k as u64);
    }
    Ok(b.finish(None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;
    use crate::family::gou::GouParams;
    use crate::rng::{NoiseSource, PhiloxNoise};
    use crate::sampler::Model;
    use crate::sampler::{Hooks, Sampler, sample as run};
    use crate::{PointMassOracle, TensorView};

    fn images() -> (Tensor, Tensor) {
        let x0 = Tensor::from_shape_fn((1, 2, 3, 4), |(_, c, y, x)| ((c * 7 + y * 3 + x) % 5) as f32 * 0.2);
        let xt = Tensor::from_shape_fn((1, 2, 3, 4), |(_, c, y, x)| 0.3 + ((c + y + x * 2) % 3) as f32 * 0.1);
        (x0, xt)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
    }

    /// With the exact denoiser the Mean-ODE ends on `x0` (its last step removes the remaining
    /// deviation up to a factor `1 − g_1²dt/f_σ(1)² ≈ −2e-4`), and the SDE ends on `x0` plus its
    /// own last-step noise `−g_1√dt·z` (the reference adds noise on the last step).
    #[test]
    fn point_mass_lands_on_x0() {
        let (x0, xt) = images();
        for gi in [0.0, 1e-7] {
            let fam = Gou::new(GouParams::unidb(gi)).unwrap();
            for sde in [false, true] {
                let mut oracle = PointMassOracle::new(x0.clone());
                let mut model = Model::new(&mut oracle, &fam, xt.view(), xt.view()).unwrap();
                let out = run(&mut model, &Sampler::Euler { sde }, 100, &mut PhiloxNoise::new(5)).unwrap();
                assert_eq!(model.calls(), 99);
                let mut want = x0.clone();
                if sde {
                    let mut z = Tensor::zeros(x0.raw_dim());
                    PhiloxNoise::new(5).fill(99, z.view_mut()).unwrap();
                    let c = euler_row(&fam, 1, true).c_z as f32;
                    want.zip_mut_with(&z, |w, &v| *w += c * v);
                }
                assert!(max_diff(&out, &want) < 1e-5, "γ⁻¹ {gi} sde {sde}: {}", max_diff(&out, &want));
            }
        }
    }

    /// UniDB with γ⁻¹ → 0 follows GOUB's trajectory.
    #[test]
    fn unidb_trajectory_tends_to_goub() {
        let (x0, xt) = images();
        let run_with = |gi: f64| {
            let fam = Gou::new(GouParams::unidb(gi)).unwrap();
            let mut oracle = PointMassOracle::new(x0.clone());
            let mut states = Vec::new();
            let mut rec = |x: &Tensor| states.push(x.clone());
            let mut model =
                Model::new(&mut oracle, &fam, xt.view(), xt.view()).unwrap().with_hooks(Hooks { on_call: None, on_state: Some(&mut rec) });
            run(&mut model, &Sampler::Euler { sde: true }, 100, &mut PhiloxNoise::new(9)).unwrap();
            states
        };
        let (g, u) = (run_with(0.0), run_with(1e-12));
        assert_eq!(g.len(), 100);
        for (a, b) in g.iter().zip(&u) {
            assert!(max_diff(a, b) < 1e-5);
        }
    }

    #[test]
    fn rows_follow_the_reference_formulas() {
        let f = Gou::new(GouParams::goub()).unwrap();
        let r = euler_row(&f, 100, true);
        // At t = T: no score and no h-term, only the θ pull (which vanishes from x = μ).
        assert_eq!(r.c_eps, 0.0);
        assert!((r.c_x - 1.0 - f.theta(100) * f.dt()).abs() < 1e-15 && (r.c_x + r.c_mu - 1.0).abs() < 1e-15);
        let r = euler_row(&f, 1, false);
        // g_1²·dt/f_σ(1)² ≈ 1: the last Mean-ODE step almost fully removes the noise.
        assert!((-r.c_eps / f.f_sigma(1.0) - 1.0).abs() < 0.01 && r.c_z == 0.0);
    }

    /// The probability-flow row is the Mean-ODE row with half the score term and no noise
    /// (`sde_reverse_drift_2` vs `sde_reverse_drift_1`), for GOUB and UniDB, at `t = T` too.
    #[test]
    fn pf_ode_row_is_the_half_score_mean_ode() {
        for gi in [0.0, 1e-7, 1e-3] {
            let f = Gou::new(GouParams::unidb(gi)).unwrap();
            for t in [100, 99, 50, 2, 1] {
                let (pf, ode, sde) = (drift_row(&f, t, Drift::PfOde), euler_row(&f, t, false), euler_row(&f, t, true));
                assert_eq!((pf.c_x, pf.c_mu, pf.c_z), (ode.c_x, ode.c_mu, 0.0));
                assert_eq!(pf.c_eps, 0.5 * ode.c_eps);
                assert_eq!(ode.c_eps, sde.c_eps);
            }
        }
    }

    /// With the exact denoiser the probability-flow ODE ends near `x0` (2e-4 here: its last step
    /// removes about half of the remaining deviation where the Mean-ODE's removes all of it), it
    /// draws no noise (an empty recorded source would fail), and UniDB tends to GOUB as γ⁻¹ → 0.
    #[test]
    fn pf_ode_lands_near_x0() {
        let (x0, xt) = images();
        let mut outs = Vec::new();
        for gi in [0.0, 1e-12, 1e-7] {
            let fam = Gou::new(GouParams::unidb(gi)).unwrap();
            let mut oracle = PointMassOracle::new(x0.clone());
            let mut model = Model::new(&mut oracle, &fam, xt.view(), xt.view()).unwrap();
            let mut log = crate::rng::RecordedNoise::new(Vec::new());
            let out = run(&mut model, &Sampler::PfOde, 100, &mut log).unwrap();
            assert_eq!(model.calls(), 99);
            assert!(max_diff(&out, &x0) < 1e-3, "γ⁻¹ {gi}: {}", max_diff(&out, &x0));
            outs.push(out);
        }
        assert!(max_diff(&outs[0], &outs[1]) < 1e-5);
    }

    #[test]
    fn bad_input_is_an_error() {
        let (x0, xt) = images();
        let fam = Gou::new(GouParams::goub()).unwrap();
        let mut oracle = PointMassOracle::new(x0.clone());
        let mut model = Model::new(&mut oracle, &fam, xt.view(), xt.view()).unwrap();
        for nfe in [0, 10, 99, 101] {
            for s in [Sampler::Euler { sde: false }, Sampler::PfOde] {
                assert!(matches!(run(&mut model, &s, nfe, &mut PhiloxNoise::new(1)), Err(Error::InvalidNfe { .. })));
            }
        }
        let rdbm = crate::family::rdbm::Rdbm::new(Default::default()).unwrap();
        let mut model = Model::new(&mut oracle, &rdbm, xt.view(), xt.view()).unwrap();
        for s in [Sampler::Euler { sde: true }, Sampler::PfOde] {
            assert!(matches!(run(&mut model, &s, 100, &mut PhiloxNoise::new(1)), Err(Error::Incompatible { .. })));
        }
        // A network that returns NaN is reported, not propagated.
        let mut nan = crate::FnDenoiser(|x: TensorView<'_>, _c: TensorView<'_>, _t: f64| Ok(x.mapv(|_| f32::NAN)));
        let mut model = Model::new(&mut nan, &fam, xt.view(), xt.view()).unwrap();
        assert!(matches!(run(&mut model, &Sampler::Euler { sde: true }, 100, &mut PhiloxNoise::new(1)), Err(Error::NonFinite { .. })));
    }
}
