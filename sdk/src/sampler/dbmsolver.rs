//! DBMSolver (snumprlab/dbmsolver @976f431, CVPR 2026; `ddbm/karras_diffusion.py`
//! `sample_dbmsolver`): a training-free exponential-integrator solver for pretrained DDBM VP/VE
//! checkpoints (same networks and preconditioning as DDBM/DBIM).
//!
//! * **Grid.** `steps = N`: `σ_0 > … > σ_{N−2}` is the float32 Karras grid (ρ = 7) of `N − 1`
//!   points from `t_max − 1e-4` to `t_min` ([`Ddbm::karras_grid`], the same float32 rounding as
//!   DDBM's Heun grid), then `σ_{N−1} = 0`.
//! * **NFE.** `nfe` is the number of network calls: `2N − 2` with `sde_order = 1` (so NFE is even
//!   and ≥ 2), `2N − 1` with `sde_order = 2` (odd and ≥ 3). Any other NFE is
//!   [`Error::InvalidNfe`] — the reference's `scripts/sample.sh` sets `N = (NFE + 2)/2` and its
//!   order-2 runs silently cost one call more; here NFE is always what is spent.
//! * **First step** `T → σ_0`: `x0̂_T = D(x_T, T)`, then the bridge sample
//!   `x = a_{σ0}x_T + b_{σ0}x0̂_T + c_{σ0}z` (the SDE exponential integrator from `x_T`). With
//!   `sde_order = 2` a temp point at the log-time midpoint (`ℓ'_T` rounded to float32 as the
//!   reference does, so the ratio `r` is ≈ ½ but not ½) adds `b_{σ0}/(2r)·(x0̂_tmp − x0̂_T)`; the
//!   temp state reuses the same `z`.
//! * **Steps** `s = σ_i → t = σ_{i+1} > 0` (2 calls): `x0̂_s = D(x, s)`; midpoint `m`
//!   ([`Midpoint::Lambda`]: `t(½(ℓ_s + ℓ_t))`, [`Midpoint::Time`]: `s + ½(t − s)` in float32);
//!   `x_m = Ψ_{s→m}(x, x0̂_s)`, `x0̂_m = D(x_m, m)`, and
//!   `x_t = Ψ_{s→t}(x, x0̂_s) + b_t·B·(x0̂_m − x0̂_s)/(ℓ_m − ℓ_s)` with the bracket
//!   `B = (atan q_t − atan q_s)/q_t + (ℓ_t − ℓ_s − 1) + q_s/q_t` ([`bracket`]), where `Ψ` is DBIM's
//!   η = 0 map. `Ψ` is applied in the residual form
//!   `Ψ_{s→u}(x, x0̂) = a_u x_T + b_u x0̂ + (c_u/c_s)·(x − a_s x_T − b_s x0̂)`: the states are float32
//!   here (the reference promotes them to float64), and out of `σ_0` the ratio `c_u/c_s` reaches
//!   ~300 (VE); the reference's coefficient form would cancel terms of that size.
//! * **Last step** `σ_{N−2} → 0` (1 call): one Euler step of the DDBM probability-flow ODE,
//!   `d = f x − g²(½∇log q − ∇log p_T)`, `x_0 = x − σ_{N−2}·d`; output clamped to [−1, 1]
//!   (the recorded last state is the unclamped one).
//! * **Noise.** One tensor `z` for the whole run, used only in the first step. The reference
//!   draws and discards one tensor before it, and one more (multiplied by 0) in the final Euler
//!   step; the draws keep those numbers — `z` is draw 1, draws 0 and 2 are never used — so a
//!   recorded run replays by draw index.
//! * **Inpainting** (`Model::mask`, 1 = generate): `x0̂ ← mask·x0̂ + (1 − mask)·x_T` after every
//!   call except the final Euler one (as the reference).
//! * **Families:** DDBM VP and VE (the [`Ddbm`] family on a continuous schedule with DDBM
//!   preconditioning); DBIM's I2SB schedule has no `t(ℓ)` ([`Error::Incompatible`]).

use super::Model;
use super::implicit::keep_known;
use crate::family::Family;
use crate::family::ddbm::{Ddbm, Precond};
use crate::rng::NoiseSource;
use crate::step::{self, NoiseTerm, Term};
use crate::{Error, Result, Tensor, TensorView};

/// The midpoint rule of the inner steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Midpoint {
    /// Log-time midpoint `t(½(ℓ_s + ℓ_t))` (the code's `dataset == 'diode'`; the default).
    Lambda,
    /// Time midpoint `s + ½(t − s)` in float32 (the code's `dataset == 'e2h'`).
    Time,
}

impl Midpoint {
    /// The option's name (`lambda` / `time`).
    pub fn name(self) -> &'static str {
        match self {
            Midpoint::Lambda => "lambda",
            Midpoint::Time => "time",
        }
    }
}

/// The draw that holds the run's single noise tensor `z` (draw 0 is the reference's discarded one).
pub const Z_DRAW: u64 = 1;

/// `N` (the reference's `steps`) for `nfe` calls with `sde_order`, or a typed error.
pub fn steps_for(nfe: usize, sde_order: u8) -> Result<usize> {
    match sde_order {
        1 if nfe >= 2 && nfe.is_multiple_of(2) => Ok(nfe / 2 + 1),
        1 => Err(Error::nfe(nfe, "DBMSolver with sde_order 1 makes 2N − 2 calls: NFE must be even and ≥ 2")),
        2 if nfe >= 3 && !nfe.is_multiple_of(2) => Ok(nfe.div_ceil(2)),
        2 => Err(Error::nfe(nfe, "DBMSolver with sde_order 2 makes 2N − 1 calls: NFE must be odd and ≥ 3")),
        o => Err(Error::param("sde_order", format!("{o}: DBMSolver has sde_order 1 and 2"))),
    }
}

/// The family as DBMSolver needs it: DDBM VP or VE with DDBM preconditioning.
fn ddbm_family(family: &dyn Family) -> Result<&Ddbm> {
    let why = "DBMSolver runs on DDBM VP/VE checkpoints (it needs t(ℓ) and DDBM's preconditioning)";
    let f = family.downcast::<Ddbm>().ok_or_else(|| Error::incompatible("dbmsolver", family.name(), why))?;
    if !f.is_continuous() || !matches!(f.params().precond, Precond::Ddbm { .. }) || f.t_min() <= 0.0 {
        return Err(Error::incompatible("dbmsolver", family.name(), why));
    }
    Ok(f)
}

/// The grid `σ_0 > … > σ_{N−2} > σ_{N−1} = 0` for `steps = N ≥ 2` (module docs).
pub fn grid(f: &Ddbm, steps: usize) -> Vec<f64> {
    f.karras_grid(steps - 1, 7.0)
}

/// The bracket `(atan q_t − atan q_s)/q_t + (ℓ_t − ℓ_s − 1) + q_s/q_t` of the midpoint step:
/// `(1/q_t)∫_{q_s}^{q_t}(ℓ(q) − ℓ_s)dq`, the weight of the `x0̂` slope in ℓ.
pub fn bracket(q_s: f64, q_t: f64, l_s: f64, l_t: f64) -> f64 {
    (q_t.atan() - q_s.atan()) / q_t + (l_t - l_s - 1.0) + q_s / q_t
}

/// The midpoint of the step `s → t` by `rule`.
pub fn midpoint(f: &Ddbm, s: f64, t: f64, rule: Midpoint) -> Result<f64> {
    let m = match rule {
        Midpoint::Lambda => f.time_of_log_time(0.5 * (f.log_time(s) + f.log_time(t))),
        Midpoint::Time => {
            let (s, t) = (s as f32, t as f32);
            Some((s + 0.5 * (t - s)) as f64)
        }
    };
    m.filter(|m| m.is_finite() && *m < s && *m > t)
        .ok_or_else(|| Error::param("dbmsolver grid", format!("no midpoint strictly inside ({t}, {s})")))
}

/// Run DBMSolver with `nfe` calls (module docs).
pub fn sample(model: &mut Model<'_>, nfe: usize, midpoint_rule: Midpoint, sde_order: u8, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    let f = ddbm_family(model.family())?;
    let steps = steps_for(nfe, sde_order)?;
    if steps > 100_000 {
        return Err(Error::nfe(nfe, "more than 100000 steps"));
    }
    let sigmas = grid(f, steps);
    // Negated so that a NaN time is refused too.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if sigmas.windows(2).any(|w| !(w[1] < w[0])) {
        return Err(Error::nfe(nfe, "the float32 Karras grid repeats a time at this NFE"));
    }
    let x_end = model.x_end();
    let mask = model.mask();
    let t_top = f.t_max();
    let mut z: Tensor = crate::alloc::try_zeros(x_end.raw_dim(), "a noise tensor")?;
    noise.fill(Z_DRAW, z.view_mut())?;
    let x0_at = |model: &mut Model<'_>, x: &Tensor, t: f64, masked: bool| -> Result<Tensor> {
        let mut x0 = model.x0(x, t)?;
        if let (Some(m), true) = (mask, masked) {
            keep_known(&mut x0, x_end, m)?;
        }
        Ok(x0)
    };

    // First step T → σ_0 (module docs).
    let s0 = sigmas[0];
    let x_start = crate::alloc::try_copy(x_end, "the sampler state")?;
    let x0_top = x0_at(model, &x_start, t_top, true)?;
    let m0 = f.marginal(s0);
    let mut x = step::combine(x_end.shape(), &[Term::new(m0.xt, x_end), Term::new(m0.x0, x0_top.view()), Term::new(m0.std, z.view())])?;
    if sde_order == 2 {
        let l_top = f.log_time(t_top);
        // The reference rounds 1/ρ_T and its log to float32 here only.
        let l_top32 = ((1.0 / f.rho_top()) as f32).ln() as f64;
        let l0 = f.log_time(s0);
        let t_tmp = f
            .time_of_log_time(l_top32 + 0.5 * (l0 - l_top32))
            .filter(|t| t.is_finite() && *t > s0 && *t < t_top)
            .ok_or_else(|| Error::param("dbmsolver grid", "the order-2 temp point is not inside (σ_0, T)"))?;
        let mt = f.marginal(t_tmp);
        let x_tmp = step::combine(x_end.shape(), &[Term::new(mt.xt, x_end), Term::new(mt.x0, x0_top.view()), Term::new(mt.std, z.view())])?;
        let x0_tmp = x0_at(model, &x_tmp, t_tmp, true)?;
        let r = (f.log_time(t_tmp) - l_top) / (l0 - l_top);
        let c = m0.x0 / (2.0 * r);
        step::update(&mut x, 1.0, &[Term::new(c, x0_tmp.view()), Term::new(-c, x0_top.view())], None)?;
    }
    model.record(&x);

    // Midpoint steps σ_i → σ_{i+1} > 0.
    for w in sigmas[..sigmas.len() - 1].windows(2) {
        let (s, t) = (w[0], w[1]);
        let x0_s = x0_at(model, &x, s, true)?;
        let m = midpoint(f, s, t, midpoint_rule)?;
        let (ms, mm, mt) = (f.marginal(s), f.marginal(m), f.marginal(t));
        // r = x − a_s x_T − b_s x0̂_s, the part Ψ scales by c_u/c_s.
        let resid = step::combine(x_end.shape(), &[Term::new(1.0, x.view()), Term::new(-ms.xt, x_end), Term::new(-ms.x0, x0_s.view())])?;
        let x_m = psi(mm, ms.std, x_end, x0_s.view(), resid.view())?;
        let x0_m = x0_at(model, &x_m, m, true)?;
        let (l_s, l_m, l_t) = (f.log_time(s), f.log_time(m), f.log_time(t));
        let slope = mt.x0 * bracket(f.q_ratio(s), f.q_ratio(t), l_s, l_t) / (l_m - l_s);
        x = psi(mt, ms.std, x_end, x0_s.view(), resid.view())?;
        step::update(&mut x, 1.0, &[Term::new(slope, x0_m.view()), Term::new(-slope, x0_s.view())], None)?;
        model.record(&x);
    }

    // Final Euler step of the probability-flow ODE, σ_{N−2} → 0 (no mask on this call).
    let t = sigmas[sigmas.len() - 2];
    let x0 = x0_at(model, &x, t, false)?;
    x = euler_to_zero(f, t, &x, x_end, x0.view())?;
    model.record(&x);
    step::clamp(&mut x, -1.0, 1.0);
    Ok(x)
}

/// `Ψ_{s→u}` in residual form: `a_u x_T + b_u x0̂ + (c_u/c_s)·resid`.
fn psi(mu: crate::family::Marginal, c_s: f64, x_end: TensorView<'_>, x0: TensorView<'_>, resid: TensorView<'_>) -> Result<Tensor> {
    step::combine(x_end.shape(), &[Term::new(mu.xt, x_end), Term::new(mu.x0, x0), Term::new(mu.std / c_s, resid)])
}

/// One Euler step `t → 0` of DDBM's probability-flow ODE (`ddbm_simulate` / `get_d`):
/// `d = f x + g²·(½(x − a x_T − b x0̂)/c² − (x − ᾱ x_T)/(α²ρ̄²))`, `x_0 = x − t·d`.
pub fn euler_to_zero(f: &Ddbm, t: f64, x: &Tensor, x_end: TensorView<'_>, x0: TensorView<'_>) -> Result<Tensor> {
    let (drift, g2) = f.f_g2(t).ok_or_else(|| Error::incompatible("dbmsolver", f.name(), "no SDE drift on this schedule"))?;
    let (m, ar) = (f.marginal(t), f.alpha_rho(t));
    let k_q = 0.5 * g2 / (m.std * m.std);
    let k_p = g2 / (ar.alpha * ar.alpha * ar.rho_bar * ar.rho_bar);
    // Residual first (it cancels), then x_0 = (1 − t f + t k_p)·x − t k_q·resid − t k_p ᾱ·x_T.
    let resid = step::combine(x.shape(), &[Term::new(1.0, x.view()), Term::new(-m.xt, x_end), Term::new(-m.x0, x0)])?;
    let mut out = crate::alloc::try_copy(x.view(), "the sampler state")?;
    step::update(
        &mut out,
        1.0 - t * drift + t * k_p,
        &[Term::new(-t * k_q, resid.view()), Term::new(-t * k_p * ar.alpha_bar, x_end)],
        None::<NoiseTerm<'_>>,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::ddbm::DdbmParams;
    use crate::family::i2sb::{I2sb, I2sbParams};
    use crate::rng::PhiloxNoise;
    use crate::sampler::testing::{self, max_abs_diff};
    use crate::sampler::{Hooks, Sampler, sample as run};
    use crate::{FnDenoiser, PointMassOracle};

    fn fams() -> [Ddbm; 2] {
        [Ddbm::new(DdbmParams::vp()).unwrap(), Ddbm::new(DdbmParams::ve()).unwrap()]
    }

    #[test]
    fn nfe_maps_to_steps() {
        assert_eq!(steps_for(2, 1).unwrap(), 2);
        assert_eq!(steps_for(10, 1).unwrap(), 6);
        assert_eq!(steps_for(20, 1).unwrap(), 11);
        assert_eq!(steps_for(3, 2).unwrap(), 2);
        assert_eq!(steps_for(7, 2).unwrap(), 4);
        assert_eq!(steps_for(21, 2).unwrap(), 11);
        for (nfe, o) in [(0, 1), (1, 1), (5, 1), (2, 2), (1, 2), (10, 2)] {
            assert!(matches!(steps_for(nfe, o), Err(Error::InvalidNfe { .. })), "nfe {nfe} order {o}");
        }
        assert!(matches!(steps_for(4, 3), Err(Error::InvalidParam { .. })));
    }

    /// `t(ℓ)` inverts `ℓ(t)` on both schedules; the midpoints lie inside their steps.
    #[test]
    fn log_time_round_trips() {
        for f in fams() {
            for frac in [1e-4, 0.01, 0.3, 0.9, 0.9999] {
                let t = frac * f.t_max();
                let back = f.time_of_log_time(f.log_time(t)).unwrap();
                assert!((back - t).abs() < 1e-10 * t.max(1.0), "{} t {t}: {back}", f.name());
            }
            let (s, t) = (0.5 * f.t_max(), 0.01 * f.t_max());
            for rule in [Midpoint::Lambda, Midpoint::Time] {
                let m = midpoint(&f, s, t, rule).unwrap();
                assert!(m < s && m > t);
            }
            let ml = midpoint(&f, s, t, Midpoint::Lambda).unwrap();
            assert!((f.log_time(ml) - 0.5 * (f.log_time(s) + f.log_time(t))).abs() < 1e-9);
        }
        let i2 = Ddbm::new(DdbmParams::dbim_i2sb()).unwrap();
        assert!(i2.time_of_log_time(1.0).is_none());
    }

    /// The bracket is `(1/q_t)∫_{q_s}^{q_t}(ℓ(q) − ℓ_s)dq` with `ℓ(q) = −log ρ = ½log(1 + q²) − log ρ_T`
    /// (from `q² = ρ_T²/ρ² − 1`): checked by Simpson quadrature.
    #[test]
    fn bracket_is_the_integral() {
        let l = |q: f64| 0.5 * (1.0 + q * q).ln();
        for (qs, qt) in [(0.01, 3.0), (2.0, 40.0), (0.5, 0.6)] {
            let n = 20_000;
            let h = (qt - qs) / n as f64;
            let g = |q: f64| l(q) - l(qs);
            let sum: f64 = (0..=n)
                .map(|i| {
                    let w = if i == 0 || i == n {
                        1.0
                    } else if i % 2 == 1 {
                        4.0
                    } else {
                        2.0
                    };
                    w * g(qs + i as f64 * h)
                })
                .sum();
            let integral = sum * h / 3.0 / qt;
            let b = bracket(qs, qt, l(qs), l(qt));
            assert!((b - integral).abs() < 1e-9 * integral.abs().max(1.0), "{qs}→{qt}: {b} vs {integral}");
        }
    }

    /// With the exact denoiser every intermediate state is on the deterministic path
    /// `a_t x_T + b_t x0 + c_t·z`-shaped (the Ψ map keeps `(x − a x_T − b x0)/c` fixed), the
    /// slope terms vanish, and the final Euler step from `t` lands on `x0 + O(c_t)`: the output is
    /// x0 to within a few `c_{t_min}` (≤ 1e-2), for both rules and orders, several NFEs.
    #[test]
    fn point_mass_lands_on_x0() {
        let (x0, xt) = testing::images(2);
        let mut z = Tensor::zeros(x0.raw_dim());
        PhiloxNoise::new(4).fill(Z_DRAW, z.view_mut()).unwrap();
        for f in fams() {
            for rule in [Midpoint::Lambda, Midpoint::Time] {
                for (order, nfes) in [(1u8, [2usize, 4, 10, 20]), (2, [3, 5, 11, 21])] {
                    for nfe in nfes {
                        let mut states = Vec::new();
                        let mut rec = |x: &Tensor| states.push(x.clone());
                        let mut oracle = PointMassOracle::new(x0.clone());
                        let mut model = Model::new(&mut oracle, &f, xt.view(), xt.view())
                            .unwrap()
                            .with_hooks(Hooks { on_call: None, on_state: Some(&mut rec) });
                        let s = Sampler::Dbmsolver { midpoint: rule, sde_order: order };
                        let out = run(&mut model, &s, nfe, &mut PhiloxNoise::new(4)).unwrap();
                        let tag = format!("{} {rule:?} order {order} nfe {nfe}", f.name());
                        assert_eq!(model.calls(), nfe, "{tag}");
                        let sig = grid(&f, steps_for(nfe, order).unwrap());
                        assert_eq!(states.len(), sig.len(), "{tag}");
                        // Each state before the Euler step is the marginal mean plus c_σ·z.
                        for (k, st) in states[..sig.len() - 1].iter().enumerate() {
                            let m = f.marginal(sig[k]);
                            let want = ndarray::Zip::from(&x0)
                                .and(&xt)
                                .and(&z)
                                .map_collect(|&a, &b, &zz| (m.x0 * a as f64 + m.xt * b as f64 + m.std * zz as f64) as f32);
                            let scale = 1.0 + m.std as f32 * 5.0;
                            assert!(max_abs_diff(st, &want) < 2e-5 * scale, "{tag} state {k}: {}", max_abs_diff(st, &want));
                        }
                        // With N = 2 the Euler step starts at σ_0 ≈ T: no accuracy to claim.
                        let c_last = f.marginal(sig[sig.len() - 2]).std;
                        if sig.len() > 2 {
                            assert!((max_abs_diff(&out, &x0) as f64) < 1e-5 + 5.0 * c_last, "{tag}: {}", max_abs_diff(&out, &x0));
                        }
                    }
                }
            }
        }
    }

    /// The order-2 first step differs from order 1 when x0̂ moves with t; the two rules differ.
    #[test]
    fn options_change_the_path() {
        let (_, xt) = testing::images(1);
        let f = Ddbm::new(DdbmParams::vp()).unwrap();
        let go = |s: Sampler, nfe: usize| {
            let mut net = FnDenoiser(|x: TensorView<'_>, c: TensorView<'_>, t: f64| {
                Ok(ndarray::Zip::from(&x).and(&c).map_collect(|&a, &b| 0.3 * a + 0.5 * b + 0.001 * t as f32))
            });
            let mut model = Model::new(&mut net, &f, xt.view(), xt.view()).unwrap();
            run(&mut model, &s, nfe, &mut PhiloxNoise::new(3)).unwrap()
        };
        let a = go(Sampler::Dbmsolver { midpoint: Midpoint::Lambda, sde_order: 1 }, 8);
        let b = go(Sampler::Dbmsolver { midpoint: Midpoint::Time, sde_order: 1 }, 8);
        let c = go(Sampler::Dbmsolver { midpoint: Midpoint::Lambda, sde_order: 2 }, 9);
        assert!(max_abs_diff(&a, &b) > 1e-6 && max_abs_diff(&a, &c) > 1e-7);
        assert!(a.iter().chain(b.iter()).chain(c.iter()).all(|v| v.is_finite() && v.abs() <= 1.0));
    }

    /// Inpainting: with a zero mask (keep everything) every x0̂ but the final Euler one is x_T,
    /// so every state before that step is `(a + b)·x_T + c·z`; with a mask of ones the run is the
    /// unmasked one, bit for bit.
    #[test]
    fn mask_replaces_x0_outside() {
        let (x0, xt) = testing::images(1);
        let f = Ddbm::new(DdbmParams::vp()).unwrap();
        let mut z = Tensor::zeros(x0.raw_dim());
        PhiloxNoise::new(1).fill(Z_DRAW, z.view_mut()).unwrap();
        let s = Sampler::Dbmsolver { midpoint: Midpoint::Lambda, sde_order: 2 };
        let go = |mask: Option<Tensor>| {
            let mut states = Vec::new();
            let mut rec = |x: &Tensor| states.push(x.clone());
            let mut net = FnDenoiser(|x: TensorView<'_>, c: TensorView<'_>, _t: f64| {
                Ok(ndarray::Zip::from(&x).and(&c).map_collect(|&a, &b| 0.3 * a + 0.5 * b))
            });
            let mut model =
                Model::new(&mut net, &f, xt.view(), xt.view()).unwrap().with_hooks(Hooks { on_call: None, on_state: Some(&mut rec) });
            if let Some(m) = &mask {
                model = model.with_mask(m.view()).unwrap();
            }
            let out = run(&mut model, &s, 7, &mut PhiloxNoise::new(1)).unwrap();
            (out, states)
        };
        let sig = grid(&f, 4);
        let (_, kept) = go(Some(Tensor::zeros((1, 1, 4, 4))));
        for (k, st) in kept[..sig.len() - 1].iter().enumerate() {
            let m = f.marginal(sig[k]);
            let want = ndarray::Zip::from(&xt).and(&z).map_collect(|&b, &zz| ((m.x0 + m.xt) * b as f64 + m.std * zz as f64) as f32);
            assert!(max_abs_diff(st, &want) < 2e-5, "state {k}: {}", max_abs_diff(st, &want));
        }
        let (a, sa) = go(Some(Tensor::ones((1, 1, 4, 4))));
        let (b, sb) = go(None);
        assert!(a == b && sa == sb);
    }

    #[test]
    fn wrong_family_and_nfe_are_typed_errors() {
        let (x0, xt) = testing::images(1);
        let s = Sampler::Dbmsolver { midpoint: Midpoint::Lambda, sde_order: 1 };
        let i2 = I2sb::new(I2sbParams::default()).unwrap();
        let dbim_i2 = Ddbm::new(DdbmParams::dbim_i2sb()).unwrap();
        let vp = Ddbm::new(DdbmParams::vp()).unwrap();
        let mut oracle = PointMassOracle::new(x0.clone());
        for fam in [&i2 as &dyn Family, &dbim_i2] {
            let mut m = Model::new(&mut oracle, fam, xt.view(), xt.view()).unwrap();
            assert!(matches!(run(&mut m, &s, 4, &mut PhiloxNoise::new(0)), Err(Error::Incompatible { .. })));
        }
        let mut m = Model::new(&mut oracle, &vp, xt.view(), xt.view()).unwrap();
        assert!(matches!(run(&mut m, &s, 5, &mut PhiloxNoise::new(0)), Err(Error::InvalidNfe { .. })));
        let s2 = Sampler::Dbmsolver { midpoint: Midpoint::Time, sde_order: 2 };
        assert!(matches!(run(&mut m, &s2, 4, &mut PhiloxNoise::new(0)), Err(Error::InvalidNfe { .. })));
        let s3 = Sampler::Dbmsolver { midpoint: Midpoint::Time, sde_order: 3 };
        assert!(matches!(run(&mut m, &s3, 5, &mut PhiloxNoise::new(0)), Err(Error::InvalidParam { .. })));
        assert_eq!(m.calls(), 0);
    }
}
