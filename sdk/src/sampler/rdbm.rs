//! RDBM's sampler, a row plan ([`super::plan`]) (`ddim_sample` in MiliLab/RDBM `code/rdbm.py`, `docs/math/rdbm.md` §4), on the family's
//! truncated-linspace grid `T−1 = i_S > … > i_1 > −1` (NFE = `sampling_timesteps` = S).
//!
//! Step `i → j` (`Θ`, `Σ` the family's tables):
//!
//! ```text
//! j = −1 (last):           x ← x0̂ (clamped)
//! i = T−1 (top), x0 form:  x ← μ + Θ_j(x0̂ − μ)
//! i = T−1 (top), ε form:   x ← μ            (the reference's call there is wasted; we skip it)
//! else, x0 form:           x ← μ + ρ(x − μ) + (Θ_j − ρΘ_i)(x0̂ − μ),   ρ = Σ_j/Σ_i
//! else, ε form:            x ← μ + (Θ_j/Θ_i)(x − μ) − ((Θ_j/Θ_i)Σ_i − Σ_j)·ε
//! ```
//!
//! `eps_form` is the reference's `sampling_type = pred_noise`. With the `pred_x_start`
//! objective its `ε` is derived from the clamped `x0̂`, which makes the ε-form step identical to
//! the x0-form one, so we apply the x0-form row there (only the top step differs); with the
//! `pred_noise` objective the ε form uses the raw, unclamped `ε` as the reference does.
//!
//! **Rejected combination.** Objective `pred_noise` with x0-form sampling divides 0/0 at the
//! top index (`x0̂ = (x − μ − Σε)/Θ` with `Θ = Σ = 0`); the reference propagates the NaN to its
//! output. We return [`Error::Incompatible`] before any network call (use `eps_form`).
//!
//! **Residual-modulated noise** (the paper's option, [`ResidualNoise`], family docs): with
//! `η > 0` every step except the last adds noise scaled elementwise by the estimated residual
//! `|x0̂ − μ|`, keeping the residual-modulated marginals (std `|π|·Σ`):
//!
//! ```text
//! ω = η·sqrt(Σ_j² − ρ_a²Σ_i²),  ρ_a = sinh c_j / sinh c_i (the bridge posterior),  σ_d = sqrt(Σ_j² − ω²)
//! x0 form:  x ← μ + ρ(x − μ) + (Θ_j − ρΘ_i)(x0̂ − μ) + ω·|x0̂ − μ|⊙z,   ρ = σ_d/Σ_i
//! ε form:   x ← μ + (Θ_j/Θ_i)(x − μ) − ((Θ_j/Θ_i)Σ_i − σ_d)·ε + ω·|x0̂ − μ|⊙z
//! ```
//!
//! (`ε` is then the network's `π⊙ε`). `η = 0` is the reference sampler exactly: `π` cancels from
//! the deterministic step. The ε-form top step stays `x ← μ` (no `x0̂` there). Draw `k` is the
//! noise of step `k`.
//!
//! [`ResidualNoise`]: crate::family::rdbm::ResidualNoise

use super::plan::{Builder, NoiseScale, Plan, Source};
use crate::family::rdbm::{Objective, Rdbm};
use crate::family::{Family, Marginal};
use crate::{Error, Result};

/// RDBM's plan for `nfe` = S steps (see the module docs; the sampler ignores an inpainting mask).
pub(super) fn plan(family: &dyn Family, nfe: usize, eps_form: bool, masked: bool) -> Result<Plan> {
    let f = family.downcast::<Rdbm>().ok_or_else(|| Error::incompatible("rdbm", family.name(), "RDBM's sampler needs the RDBM family"))?;
    if f.objective() == Objective::PredNoise && (!eps_form || nfe == 1) {
        // x0̂ = (x − μ − Σε)/Θ is 0/0 at the top index; the reference returns NaN.
        let why = if eps_form {
            "a single step returns x0̂ at the top index, where it is 0/0"
        } else {
            "x0-form sampling needs x0̂ at the top index, where it is 0/0"
        };
        return Err(Error::incompatible("rdbm", "rdbm", format!("objective pred_noise: {why} (the reference returns NaN)")));
    }
    let grid = f.grid(nfe)?;
    let top = (f.t_max() - 1) as f64;
    let eta = f.residual().map_or(0.0, |r| r.eta);
    // ε form with the raw network ε (pred_noise objective).
    let raw_form = eps_form && f.objective() == Objective::PredNoise;
    let order: &[Source] = if raw_form { &[Source::XEnd, Source::Raw, Source::X0] } else { &[Source::X0, Source::XEnd] };
    let mut b = Builder::new(family, order, true, masked);
    // Coefficients in `order` from (x0̂, μ, raw).
    let put = |x0: f64, mu: f64, raw: f64| if raw_form { vec![mu, raw, x0] } else { vec![x0, mu] };
    for (k, w) in grid.windows(2).enumerate() {
        let (i, j) = (w[0], w[1]);
        let last = j < 0.0;
        if i == top && eps_form && !last {
            b.step(None, 0.0, &put(0.0, 1.0, 0.0))?; // x ← μ
            continue;
        }
        let call = f.net_call(i);
        if last {
            b.step(Some(call), 0.0, &put(1.0, 0.0, 0.0))?; // x ← x0̂
            continue;
        }
        let (mi, mj) = (f.marginal(i), f.marginal(j));
        let omega = if eta > 0.0 {
            let rho_a = f.ancestral_ratio(i, j).unwrap_or(0.0);
            eta * (mj.std * mj.std - rho_a * rho_a * mi.std * mi.std).max(0.0).sqrt()
        } else {
            0.0
        };
        let sigma_dir = (mj.std * mj.std - omega * omega).max(0.0).sqrt();
        let st = if raw_form {
            let r = mj.x0 / mi.x0;
            b.step(Some(call), r, &put(0.0, 1.0 - r, -(r * mi.std - sigma_dir)))?
        } else {
            let (c_x, c_0, c_t) = x0_row(mi, mj, sigma_dir);
            b.step(Some(call), c_x, &put(c_0, c_t, 0.0))?
        };
        if omega > 0.0 {
            // ω·|x0̂ − μ|⊙z: the step forms x0̂ for the scale even where its row does not use it.
            st.set_noise(omega, k as u64).noise_scale = NoiseScale::Residual;
            st.x0 = call.x0;
            st.clamp = call.clamp;
        }
    }
    Ok(b.finish(None))
}

/// The x0-form row `(C_x, C_0, C_T)` keeping `σ_d/Σ_i` of the state (`C_x = 0` at the top,
/// where `Σ_i = 0`).
pub(crate) fn x0_row(mi: Marginal, mj: Marginal, sigma_dir: f64) -> (f64, f64, f64) {
    let rho = if mi.std > 0.0 { sigma_dir / mi.std } else { 0.0 };
    (rho, mj.x0 - rho * mi.x0, mj.xt - rho * mi.xt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;
    use crate::family::rdbm::{RdbmParams, ResidualNoise};
    use crate::rng::PhiloxNoise;
    use crate::sampler::Model;
    use crate::sampler::{Sampler, sample as run};
    use crate::{FnDenoiser, PointMassOracle, TensorView};

    fn images() -> (Tensor, Tensor) {
        let x0 = Tensor::from_shape_fn((2, 3, 4, 5), |(b, c, y, x)| ((b + c * 7 + y * 3 + x) % 9) as f32 * 0.2 - 0.8);
        let xt = Tensor::from_shape_fn((2, 3, 4, 5), |(b, c, y, x)| ((b * 2 + c + y + x * 2) % 7) as f32 * 0.25 - 0.7);
        (x0, xt)
    }

    fn fam(objective: Objective, residual: Option<ResidualNoise>) -> Rdbm {
        Rdbm::new(RdbmParams { objective, residual, ..Default::default() }).unwrap()
    }

    fn go(f: &Rdbm, net: &mut dyn crate::Denoiser, xt: &Tensor, nfe: usize, eps_form: bool, seed: u64) -> Result<Tensor> {
        let mut model = Model::new(net, f, xt.view(), xt.view())?;
        run(&mut model, &Sampler::Rdbm { eps_form }, nfe, &mut PhiloxNoise::new(seed))
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
    }

    /// The exact denoiser lands on x0 for every objective, form and NFE, with and without the
    /// residual-modulated noise.
    #[test]
    fn point_mass_lands_on_x0() {
        let (x0, xt) = images();
        for (obj, eps) in [(Objective::PredXStart, false), (Objective::PredXStart, true), (Objective::PredNoise, true)] {
            for res in [None, Some(ResidualNoise { eta: 1.0 })] {
                let f = fam(obj, res);
                // A single step is rejected for pred_noise (see bad_input_is_an_error).
                let nfes: &[usize] = if obj == Objective::PredNoise { &[2, 5, 7, 10] } else { &[1, 2, 5, 7, 10] };
                for &nfe in nfes {
                    let mut oracle = PointMassOracle::new(x0.clone());
                    let out = go(&f, &mut oracle, &xt, nfe, eps, 3).unwrap();
                    assert!(max_diff(&out, &x0) < 1e-5, "{obj:?} eps {eps} {res:?} nfe {nfe}: {}", max_diff(&out, &x0));
                }
            }
        }
    }

    /// η = 0 is the reference sampler bit for bit; the residual noise vanishes where x0̂ = μ and
    /// keeps the modulated marginal elsewhere.
    #[test]
    fn residual_modulation() {
        let (_, xt) = images();
        let net = |x: TensorView<'_>, c: TensorView<'_>, t: f64| -> Result<Tensor> {
            let mut o = x.to_owned();
            o.zip_mut_with(&c, |v, &m| *v = 0.7 * *v + 0.2 * m + 0.001 * t as f32);
            Ok(o)
        };
        let plain = go(&fam(Objective::PredXStart, None), &mut FnDenoiser(net), &xt, 10, false, 1).unwrap();
        let eta0 = go(&fam(Objective::PredXStart, Some(ResidualNoise { eta: 0.0 })), &mut FnDenoiser(net), &xt, 10, false, 1).unwrap();
        assert_eq!(plain, eta0);
        // x0̂ = μ everywhere: |x0̂ − μ| = 0, so the modulated sampler adds no noise at all.
        let ident = |_x: TensorView<'_>, c: TensorView<'_>, _t: f64| Ok(c.to_owned());
        let f1 = fam(Objective::PredXStart, Some(ResidualNoise { eta: 1.0 }));
        let a = go(&f1, &mut FnDenoiser(ident), &xt, 5, false, 1).unwrap();
        let b = go(&fam(Objective::PredXStart, None), &mut FnDenoiser(ident), &xt, 5, false, 1).unwrap();
        assert_eq!(a, b);
        // One ancestral step from the top with a constant x0̂: x_j ~ N(μ + Θ_j(x0̂ − μ), (|x0̂ − μ|Σ_j)²).
        let (mu, x0v) = (0.2f32, -0.6f32);
        let xt1 = Tensor::from_elem((1, 1, 64, 64), mu);
        let mut states = Vec::new();
        let mut rec = |x: &Tensor| states.push(x.clone());
        let mut c = FnDenoiser(move |x: TensorView<'_>, _c: TensorView<'_>, _t: f64| Ok(x.mapv(|_| x0v)));
        let mut model = Model::new(&mut c, &f1, xt1.view(), xt1.view())
            .unwrap()
            .with_hooks(crate::sampler::Hooks { on_call: None, on_state: Some(&mut rec) });
        run(&mut model, &Sampler::Rdbm { eps_form: false }, 5, &mut PhiloxNoise::new(11)).unwrap();
        let mj = f1.marginal(79.0);
        let first = &states[0];
        let n = first.len() as f64;
        let mean = first.iter().map(|&v| v as f64).sum::<f64>() / n;
        let sd = (first.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        let (want_mean, want_sd) = (mu as f64 + mj.x0 * (x0v - mu) as f64, (x0v - mu).abs() as f64 * mj.std);
        assert!((mean - want_mean).abs() < 4.0 * want_sd / n.sqrt(), "{mean} vs {want_mean}");
        assert!((sd / want_sd - 1.0).abs() < 0.05, "{sd} vs {want_sd}");
    }

    /// With the pred_x_start objective the reference's ε-form step (ε derived from the clamped
    /// x0̂) is what we compute through the x0-form row.
    #[test]
    fn eps_form_for_x0_networks_is_the_reference_formula() {
        let (_, xt) = images();
        let netf = |x: f32, m: f32| 1.3 * x + 0.4 * m; // leaves [−1, 1] often: the clamp is active
        let net = move |x: TensorView<'_>, c: TensorView<'_>, _t: f64| -> Result<Tensor> {
            let mut o = x.to_owned();
            o.zip_mut_with(&c, |v, &m| *v = netf(*v, m));
            Ok(o)
        };
        let f = fam(Objective::PredXStart, None);
        for nfe in [1, 3, 10] {
            let ours = go(&f, &mut FnDenoiser(net), &xt, nfe, true, 0).unwrap();
            let grid = f.grid(nfe).unwrap();
            let mut want = xt.mapv(|v| v as f64);
            for w in grid.windows(2) {
                let (i, j) = (w[0], w[1]);
                let x0: Vec<f64> = want.iter().zip(xt.iter()).map(|(&x, &m)| (netf(x as f32, m) as f64).clamp(-1.0, 1.0)).collect();
                if j < 0.0 {
                    want.iter_mut().zip(&x0).for_each(|(x, &v)| *x = v);
                } else if i == 99.0 {
                    want.iter_mut().zip(xt.iter()).for_each(|(x, &m)| *x = m as f64);
                } else {
                    let ((ti, si), (tj, sj)) = (f.theta_sigma(i), f.theta_sigma(j));
                    for ((x, &m), &x0v) in want.iter_mut().zip(xt.iter()).zip(&x0) {
                        let m = m as f64;
                        let eps = (*x - m - ti * (x0v - m)) / si;
                        *x = m + tj / ti * (*x - m) - (tj / ti * si - sj) * eps;
                    }
                }
            }
            let err = ours.iter().zip(want.iter()).fold(0.0f64, |e, (&a, &b)| e.max((a as f64 - b).abs()));
            assert!(err < 2e-6, "nfe {nfe}: {err}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let (x0, xt) = images();
        let mut oracle = PointMassOracle::new(x0.clone());
        let noise_net = fam(Objective::PredNoise, None);
        assert!(matches!(go(&noise_net, &mut oracle, &xt, 10, false, 0), Err(Error::Incompatible { .. })));
        assert!(matches!(go(&noise_net, &mut oracle, &xt, 1, true, 0), Err(Error::Incompatible { .. })));
        let f = fam(Objective::PredXStart, None);
        for nfe in [0, 101] {
            assert!(matches!(go(&f, &mut oracle, &xt, nfe, false, 0), Err(Error::InvalidNfe { .. })));
        }
        let goub = crate::family::gou::Gou::new(crate::family::gou::GouParams::goub()).unwrap();
        let mut model = Model::new(&mut oracle, &goub, xt.view(), xt.view()).unwrap();
        assert!(matches!(
            run(&mut model, &Sampler::Rdbm { eps_form: true }, 10, &mut PhiloxNoise::new(0)),
            Err(Error::Incompatible { .. })
        ));
        let mut nan = FnDenoiser(|x: TensorView<'_>, _c: TensorView<'_>, _t: f64| Ok(x.mapv(|_| f32::NAN)));
        assert!(matches!(go(&f, &mut nan, &xt, 10, false, 0), Err(Error::NonFinite { .. })));
    }
}
