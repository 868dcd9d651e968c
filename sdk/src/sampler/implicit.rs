//! The generic implicit (DBIM/DDIM-type) step for any Gaussian bridge of eq. (1): its rows
//! ([`rows`], the plan of the `implicit` sampler and of DBIM order 1, applied by
//! [`super::plan::run`]) and DBIM's high-order loop ([`run_high_order`]).
//!
//! From `x_t` to `x_s` (s < t) with kept-state ratio `ρ`:
//!
//! ```text
//! x_s = ρ·x_t + (a_s − ρ a_t)·x0̂ + (b_s − ρ b_t)·x_T + sqrt(c_s² − ρ² c_t²)·z
//! ```
//!
//! `ρ = c_s/c_t` is the deterministic step; the family's ancestral ratio gives exact posterior
//! (ancestral) sampling; `η ∈ [0, 1]` scales the ancestral noise between them exactly as DBIM
//! does (`ω = η·ω_anc`, `ρ = √(c_s² − ω²)/c_t`, [`eta_row`]). Only the [`Family`] trait is used
//! (grid, marginal, net_call, ancestral_ratio), so it runs on every family; `η > 0` needs the
//! family's ancestral ratio ([`Error::Incompatible`] otherwise).
//!
//! * **Grid.** The family's default grid for `nfe` ([`grid_for`]): DBIM's uniform grid on
//!   DDBM/DBIM schedules, the family's own elsewhere.
//! * **Start** (the convention documented on [`Family::grid`]). The state starts at `x_T`. The
//!   first step leaves the top of the grid, where the state carries no noise the step could
//!   keep, so it always uses `ρ = 0` and draws the marginal's noise fresh (draw 0), whatever η:
//!   `x = a x0̂ + b x_T + c z`. When the top marginal is exactly `x_T` (`a = 0, b = 1, c = 0`:
//!   GOUB, RDBM, NADB, DDBM VE/VP at `t_max`) any `ρ` gives this same step — it is the
//!   deterministic step's limit `c_t → 0`; elsewhere (I2SB's top index, DBIM's I2SB schedule,
//!   UniDB's soft endpoint) it is DBIM's bootstrap `x = bridge_sample(x0̂, x_T, t_1, z)`.
//!   Never dividing by the top std matters for RDBM/NADB/GOUB, whose top std is 0.
//! * **Undefined `x0̂` at the top.** Where the family cannot form `x0̂` at the top (GOUB/UniDB
//!   at `t = T`; RDBM with `pred_noise`) the first step uses `x0̂ = x_T` without a network call,
//!   as UniDB++'s data solvers do, and the grid gets one more step so that NFE still counts
//!   network calls ([`grid_for`]).
//! * **Last step.** It adds no noise (DBIM drops its ω-term there; NADB and I2SB draw none), so
//!   the output is the step's mean. The `implicit` sampler clamps it where the family clamps
//!   `x0̂`; DBIM clamps to [−1, 1] as its reference does.
//! * **Draws.** Draw `k` is the noise of step `k` (numbered even where it is not used; DBIM
//!   draws them all).
//! * **Inpainting** (`Model::mask`, 1 = generate): `x0̂ ← mask·x0̂ + (1 − mask)·x_T` after every
//!   call, as DBIM's samplers do.
//! * **High order** (DBIM's `sample_dbim_high_order`, η = 0): a step of order `p ∈ {2, 3}`
//!   replaces `(a_s − ρ a_t)·x0̂` by the exponential-integrator combination
//!   `a_s·[(1 − e^{−h})x0̂ + (e^{−h} + h − 1)·D1 + (h²/2 − h + 1 − e^{−h})·D2]` of the current and
//!   the `p − 1` previous estimates, with `λ = log(a/c)` (x0-coefficient over std),
//!   `h = λ_s − λ_t`, `D1`, `D2` the divided differences in `λ`. Step 0 (the bootstrap), step 1
//!   and the last step are first order (the reference's `i == 0` and `lower_order_final`), so
//!   step `k` has order `min(p, k)`.

use super::Model;
use super::plan::{Builder, Plan, Source};
use crate::family::{Family, Marginal};
use crate::rng::NoiseSource;
use crate::step::{self, NoiseTerm, Term};
use crate::{Error, Result, Tensor, TensorView};

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

/// The `η`-step row for `t → s` on `family`: the ancestral noise scaled by `η`. `η = 0` is the
/// deterministic step (no noise at all); `η > 0` needs the family's ancestral ratio. A state
/// without noise (`c_t = 0`) keeps nothing (`ρ = 0`, full marginal noise).
pub fn eta_row(family: &dyn Family, t: f64, s: f64, eta: f64) -> Result<StepRow> {
    let (mt, ms) = (family.marginal(t), family.marginal(s));
    if mt.std <= 0.0 {
        return Ok(implicit_row(mt, ms, 0.0));
    }
    if eta == 0.0 {
        return Ok(StepRow { c_z: 0.0, ..implicit_row(mt, ms, ms.std / mt.std) });
    }
    let anc = family
        .ancestral_ratio(t, s)
        .ok_or_else(|| Error::incompatible("implicit", family.name(), "η > 0 needs an ancestral posterior, which this family lacks"))?;
    let anc_var = (ms.std * ms.std - anc * anc * mt.std * mt.std).max(0.0);
    let omega = eta * anc_var.sqrt();
    let rho = (ms.std * ms.std - omega * omega).max(0.0).sqrt() / mt.std;
    Ok(StepRow { c_z: omega, ..implicit_row(mt, ms, rho) })
}

/// Check `η ∈ [0, 1]`.
pub fn check_eta(eta: f64) -> Result<()> {
    if eta.is_finite() && (0.0..=1.0).contains(&eta) { Ok(()) } else { Err(Error::param("eta", format!("{eta} must lie in [0, 1]"))) }
}

/// The grid the implicit-type samplers walk for `nfe` network calls: `family.grid(nfe)`, or
/// `family.grid(nfe + 1)` when the family defines no `x0̂` at its top (that first step makes no
/// call, so one more step keeps NFE equal to the number of calls).
pub fn grid_for(family: &dyn Family, nfe: usize) -> Result<Vec<f64>> {
    let grid = family.grid(nfe)?;
    if grid.len() < 2 {
        return Err(Error::nfe(nfe, "the family's grid has no step"));
    }
    if family.net_call(grid[0]).x0.is_some() {
        return Ok(grid);
    }
    family
        .grid(nfe + 1)
        .map_err(|_| Error::nfe(nfe, format!("{}'s top step makes no network call: at most NFE = (grid size − 1) here", family.name())))
}

/// `x ← mask·x + (1 − mask)·known`: keep `x` where the mask is 1 (generated pixels), take
/// `known` where it is 0. The mask is `x`'s shape or `[B, 1, H, W]` (broadcast over channels).
/// (An elementwise blend, which [`step::update`]'s scalar coefficients cannot express.)
pub fn keep_known(x: &mut Tensor, known: TensorView<'_>, mask: TensorView<'_>) -> Result<()> {
    if known.shape() != x.shape() {
        return Err(Error::shape("known pixels", x.shape(), known.shape()));
    }
    let m = mask.broadcast(x.raw_dim()).ok_or_else(|| Error::shape("inpainting mask", x.shape(), mask.shape()))?;
    // Same operation order as the references: (1 − mask)·known + mask·x.
    ndarray::Zip::from(x).and(&known).and(&m).for_each(|v, &k, &w| *v = (1.0 - w) * k + w * *v);
    Ok(())
}

/// The `implicit` sampler's plan (module docs) for `nfe` network calls: the family's grid, the
/// output clamped where the family clamps `x0̂`.
pub(super) fn plan(family: &dyn Family, nfe: usize, eta: f64, masked: bool) -> Result<Plan> {
    check_eta(eta)?;
    let grid = grid_for(family, nfe)?;
    let clamp = family.net_call(grid[grid.len() - 1]).clamp;
    rows(family, &grid, eta, clamp, masked)
}

/// Check an explicit grid: at least one step, finite, strictly descending.
fn check_grid(grid: &[f64]) -> Result<()> {
    if grid.len() < 2 {
        return Err(Error::nfe(0, "the grid has no step"));
    }
    if grid.iter().any(|t| !t.is_finite()) || grid.windows(2).any(|w| w[1] >= w[0]) {
        return Err(Error::param("grid", "times must be finite and strictly descending"));
    }
    Ok(())
}

/// The first-order rows on an explicit descending grid (module docs: start, undefined `x0̂` at
/// the top, last step, draws, inpainting), the final state clamped to `clamp`.
pub(super) fn rows(family: &dyn Family, grid: &[f64], eta: f64, clamp: Option<(f32, f32)>, masked: bool) -> Result<Plan> {
    check_eta(eta)?;
    check_grid(grid)?;
    let mut b = Builder::new(family, &[Source::X0, Source::XEnd], true, masked);
    let steps = grid.len() - 1;
    for k in 0..steps {
        let (t, s) = (grid[k], grid[k + 1]);
        let call = family.net_call(t);
        // Where x0̂ is undefined at the top, the first step uses x_T without a call.
        let call = if k == 0 && call.x0.is_none() { None } else { Some(call) };
        let row = if k == 0 { implicit_row(family.marginal(t), family.marginal(s), 0.0) } else { eta_row(family, t, s, eta)? };
        let c_z = if k + 1 == steps { 0.0 } else { row.c_z };
        let st = b.step(call, row.c_x, &[row.c_0, row.c_t])?.set_noise(c_z, k as u64);
        st.mask_x0 = masked;
    }
    Ok(b.finish(clamp))
}

/// `λ = log(a/c)` (x0-coefficient over std) at `t`, for the high-order steps.
fn lambda(family: &dyn Family, t: f64) -> Result<f64> {
    let m = family.marginal(t);
    let l = (m.x0 / m.std).ln();
    if l.is_finite() {
        Ok(l)
    } else {
        Err(Error::incompatible(
            "dbim",
            family.name(),
            format!("high-order steps need x0-coefficient > 0 and std > 0 inside the grid (t = {t})"),
        ))
    }
}

/// Weights `(w_0, w_1, w_2)` of the high-order step (multiplied by `a_s`) on the current
/// estimate and the one/two previous ones; `times = [t, u_1, u_2]` (current first).
fn high_order_weights(family: &dyn Family, s: f64, times: &[f64]) -> Result<[f64; 3]> {
    let (ls, lt, l1) = (lambda(family, s)?, lambda(family, times[0])?, lambda(family, times[1])?);
    let (h, h1) = (ls - lt, lt - l1);
    let em = (-h).exp();
    let phi2 = em + h - 1.0;
    let w = if times.len() == 2 {
        // (1 − e^{−h})·x̂ + φ₂·(x̂ − x̂₁)/h₁
        [1.0 - em + phi2 / h1, -phi2 / h1, 0.0]
    } else {
        let h2 = l1 - lambda(family, times[2])?;
        let hs = h1 + h2;
        let phi3 = h * h / 2.0 - h + 1.0 - em;
        // D1 = ((x̂ − x̂₁)(2h₁ + h₂)/h₁ − (x̂₁ − x̂₂)h₁/h₂)/(h₁ + h₂), D2 = 2((x̂ − x̂₁)/h₁ − (x̂₁ − x̂₂)/h₂)/(h₁ + h₂)
        [
            1.0 - em + phi2 * (2.0 * h1 + h2) / (h1 * hs) + 2.0 * phi3 / (h1 * hs),
            -phi2 * ((2.0 * h1 + h2) / h1 + h1 / h2) / hs - 2.0 * phi3 * (1.0 / h1 + 1.0 / h2) / hs,
            phi2 * h1 / (h2 * hs) + 2.0 * phi3 / (h2 * hs),
        ]
    };
    if w.iter().all(|v| v.is_finite()) {
        Ok(w)
    } else {
        Err(Error::incompatible("dbim", family.name(), "high-order weights are not finite on this grid (repeated λ)"))
    }
}

/// The high-order loop (module docs; DBIM orders 2 and 3, η = 0) on an explicit descending
/// grid. Not a plan: each step combines the current `x0̂` with earlier ones. Returns the
/// unclamped last state.
pub fn run_high_order(model: &mut Model<'_>, grid: &[f64], order: u8, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    if !(2..=3).contains(&order) {
        return Err(Error::param("order", format!("{order}: the high-order loop has orders 2 and 3 (order 1 is a plan)")));
    }
    check_grid(grid)?;
    let family = model.family();
    let x_end = model.x_end();
    let mask = model.mask();
    let mut x = crate::alloc::try_copy(x_end, "the sampler state")?;
    let steps = grid.len() - 1;
    // (time, x0̂) of the previous calls, most recent last.
    let mut hist: Vec<(f64, Tensor)> = Vec::new();
    for k in 0..steps {
        let (t, s) = (grid[k], grid[k + 1]);
        let last = k + 1 == steps;
        let mut x0 = if k == 0 && family.net_call(t).x0.is_none() { crate::alloc::try_copy(x_end, "x0̂")? } else { model.x0(&x, t)? };
        if let Some(m) = mask {
            keep_known(&mut x0, x_end, m)?;
        }
        let row = if k == 0 { implicit_row(family.marginal(t), family.marginal(s), 0.0) } else { eta_row(family, t, s, 0.0)? };
        let c_z = if last { 0.0 } else { row.c_z };
        let z = NoiseTerm { coef: c_z, draw: k as u64, source: &mut *noise };
        // Step 0 (the bootstrap), step 1 and the last step are first order.
        let p = if k == 0 || last { 1 } else { (order as usize).min(k) };
        if p == 1 {
            step::update(&mut x, row.c_x, &[Term::new(row.c_0, x0.view()), Term::new(row.c_t, x_end)], Some(z))?;
        } else {
            let prev = &hist[hist.len() + 1 - p..];
            let mut times = vec![t];
            times.extend(prev.iter().rev().map(|(u, _)| *u));
            let w = high_order_weights(family, s, &times)?;
            let a_s = family.marginal(s).x0;
            let mut terms = vec![Term::new(row.c_t, x_end), Term::new(a_s * w[0], x0.view())];
            for (j, (_, xu)) in prev.iter().rev().enumerate() {
                terms.push(Term::new(a_s * w[j + 1], xu.view()));
            }
            step::update(&mut x, row.c_x, &terms, None)?;
        }
        model.record(&x);
        if k > 0 {
            hist.push((t, x0));
            if hist.len() > order as usize - 1 {
                hist.remove(0);
            }
        }
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::ddbm::{Ddbm, DdbmParams};
    use crate::family::gou::{Gou, GouParams};
    use crate::family::i2sb::{I2sb, I2sbParams};
    use crate::family::nadb::{Nadb, NadbParams};
    use crate::family::rdbm::{Objective, Rdbm, RdbmParams};
    use crate::rng::PhiloxNoise;
    use crate::sampler::testing::max_abs_diff;
    use crate::sampler::{Hooks, Sampler, sample as run_sampler};
    use crate::{FnDenoiser, PointMassOracle};

    fn images(lo: f32) -> (Tensor, Tensor) {
        let x0 = Tensor::from_shape_fn((1, 3, 4, 5), |(_, c, y, x)| ((c * 5 + y * 3 + x) % 7) as f32 * 0.25 + lo);
        let xt = Tensor::from_shape_fn((1, 3, 4, 5), |(_, c, y, x)| ((c + y * 2 + x) % 5) as f32 * 0.2 + lo);
        (x0, xt)
    }

    /// Every family of the SDK, with the lower end of its data range.
    fn families() -> Vec<(Box<dyn Family>, f32)> {
        vec![
            (Box::new(I2sb::new(I2sbParams::default()).unwrap()), -0.9),
            (Box::new(Ddbm::new(DdbmParams::vp()).unwrap()), -0.9),
            (Box::new(Ddbm::new(DdbmParams::ve()).unwrap()), -0.9),
            (Box::new(Ddbm::new(DdbmParams::dbim_i2sb()).unwrap()), -0.9),
            (Box::new(Gou::new(GouParams::goub()).unwrap()), 0.05),
            (Box::new(Gou::new(GouParams::unidb(1e-7)).unwrap()), 0.05),
            (Box::new(Rdbm::new(RdbmParams::default()).unwrap()), -0.9),
            (Box::new(Rdbm::new(RdbmParams { objective: Objective::PredNoise, ..Default::default() }).unwrap()), -0.9),
            (Box::new(Nadb::new(NadbParams::default()).unwrap()), -0.9),
            (Box::new(Nadb::new(NadbParams { mean_network: false, ..Default::default() }).unwrap()), -0.9),
        ]
    }

    /// With the exact denoiser every state is a sample of eq. (1) around x0, and the output is
    /// the last grid point's marginal mean `a·x0 + b·x_T` up to its std (the implicit step keeps
    /// at most `c_s` of noise; the last step adds none). That mean is x0 itself on GOUB, UniDB,
    /// RDBM and NADB (landing exactly); DDBM/DBIM stop at `t_min` and I2SB at index 0, whose
    /// marginals keep a small std (≤ 0.01). With η = 0 the noise is the bootstrap draw carried
    /// along (DDIM consistency): the output is exactly `a·x0 + b·x_T + c·z₀`.
    #[test]
    fn point_mass_lands_on_x0_on_every_family() {
        for (f, lo) in families() {
            let (x0, xt) = images(lo);
            for nfe in [1, 2, 5, 10] {
                for eta in [0.0, 0.5, 1.0] {
                    let mut oracle = PointMassOracle::new(x0.clone());
                    let mut model = Model::new(&mut oracle, f.as_ref(), xt.view(), xt.view()).unwrap();
                    let out = run_sampler(&mut model, &Sampler::Implicit { eta }, nfe, &mut PhiloxNoise::new(4))
                        .unwrap_or_else(|e| panic!("{} nfe {nfe} η {eta}: {e}", f.name()));
                    assert_eq!(model.calls(), nfe, "{} nfe {nfe}", f.name());
                    let grid = grid_for(f.as_ref(), nfe).unwrap();
                    let m = f.marginal(grid[grid.len() - 1]);
                    let mean = x0.mapv(|v| v) * (m.x0 as f32) + &(xt.mapv(|v| v) * (m.xt as f32));
                    let err = max_abs_diff(&out, &mean) as f64;
                    assert!(err <= 1e-5 + 5.0 * m.std, "{} nfe {nfe} η {eta}: {err} (final std {})", f.name(), m.std);
                    if m.std == 0.0 {
                        assert!(max_abs_diff(&out, &x0) < 1e-5, "{} lands on x0", f.name());
                    }
                    if eta == 0.0 && nfe > 1 {
                        let mut z0 = Tensor::zeros(x0.raw_dim());
                        PhiloxNoise::new(4).fill(0, z0.view_mut()).unwrap();
                        let want = &mean + &(z0 * (m.std as f32));
                        assert!(max_abs_diff(&out, &want) < 2e-5, "{} nfe {nfe}: DDIM consistency", f.name());
                    }
                }
            }
        }
    }

    /// The η = 1 step is the family's posterior: from x_t ~ q(x_t | x0, x_T), one step lands on
    /// the marginal at s (mean and std over 64k pixels, fixed seed), on every family with an
    /// ancestral ratio (all of them here) and for η = 0.5, where DBIM's noise split keeps the
    /// marginal too.
    #[test]
    fn eta_steps_preserve_the_marginal() {
        for (f, _) in families() {
            let grid = f.grid(4).unwrap();
            let (t, s) = (grid[1], grid[2]);
            let (mt, ms) = (f.marginal(t), f.marginal(s));
            assert!(f.ancestral_ratio(t, s).is_some(), "{}", f.name());
            for eta in [1.0, 0.5] {
                let (x0v, xtv) = (0.3f32, -0.2f32);
                let shape = (1, 1, 256, 256);
                let mut z = Tensor::zeros(shape);
                PhiloxNoise::new(10).fill(0, z.view_mut()).unwrap();
                let mut x = z.mapv(|v| (mt.x0 * x0v as f64 + mt.xt * xtv as f64 + mt.std * v as f64) as f32);
                let row = eta_row(f.as_ref(), t, s, eta).unwrap();
                let (x0, xt) = (Tensor::from_elem(shape, x0v), Tensor::from_elem(shape, xtv));
                let mut src = PhiloxNoise::new(11);
                step::update(
                    &mut x,
                    row.c_x,
                    &[Term::new(row.c_0, x0.view()), Term::new(row.c_t, xt.view())],
                    Some(NoiseTerm { coef: row.c_z, draw: 0, source: &mut src }),
                )
                .unwrap();
                let n = x.len() as f64;
                let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
                let sd = (x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
                let want = ms.x0 * x0v as f64 + ms.xt * xtv as f64;
                assert!((mean - want).abs() < 4.0 * ms.std / n.sqrt() + 1e-6, "{} η {eta}: mean {mean} vs {want}", f.name());
                assert!((sd / ms.std - 1.0).abs() < 0.02, "{} η {eta}: std {sd} vs {}", f.name(), ms.std);
            }
        }
    }

    /// η = 0 adds no noise after the bootstrap, η = 1 uses exactly the ancestral ratio, and η
    /// interpolates the noise std linearly.
    #[test]
    fn eta_interpolates_the_noise() {
        let f = Ddbm::new(DdbmParams::vp()).unwrap();
        let (t, s) = (0.7, 0.4);
        let r0 = eta_row(&f, t, s, 0.0).unwrap();
        let r1 = eta_row(&f, t, s, 1.0).unwrap();
        let rh = eta_row(&f, t, s, 0.5).unwrap();
        let (mt, ms) = (f.marginal(t), f.marginal(s));
        assert_eq!(r0.c_z, 0.0);
        assert!((r0.c_x - ms.std / mt.std).abs() < 1e-15);
        assert!((r1.c_x - f.ancestral_ratio(t, s).unwrap()).abs() < 1e-12);
        assert!((rh.c_z - 0.5 * r1.c_z).abs() < 1e-15);
        // Every row keeps the marginal variance: c_z² + c_x²·c_t² = c_s².
        for r in [r0, r1, rh] {
            assert!((r.c_z * r.c_z + r.c_x * r.c_x * mt.std * mt.std - ms.std * ms.std).abs() < 1e-14);
        }
    }

    /// Draw k belongs to step k; the last step's is never drawn; a top without x0̂ makes no call.
    #[test]
    fn draws_and_calls() {
        struct Log(Vec<u64>);
        impl NoiseSource for Log {
            fn fill(&mut self, draw: u64, mut out: crate::TensorViewMut<'_>) -> Result<()> {
                self.0.push(draw);
                out.fill(0.0);
                Ok(())
            }
        }
        let (x0, xt) = images(0.05);
        let g = Gou::new(GouParams::goub()).unwrap();
        for (eta, want) in [(0.0, vec![0]), (1.0, vec![0, 1, 2, 3])] {
            let mut log = Log(Vec::new());
            let mut oracle = PointMassOracle::new(x0.clone());
            let mut states = 0;
            let mut count = |_: &Tensor| states += 1;
            let mut model =
                Model::new(&mut oracle, &g, xt.view(), xt.view()).unwrap().with_hooks(Hooks { on_call: None, on_state: Some(&mut count) });
            run_sampler(&mut model, &Sampler::Implicit { eta }, 4, &mut log).unwrap();
            assert_eq!(model.calls(), 4);
            assert_eq!((log.0, states), (want, 5), "η {eta}");
        }
        assert_eq!(grid_for(&g, 4).unwrap(), vec![100.0, 80.0, 60.0, 40.0, 20.0, 0.0]);
    }

    /// DBIM's inpainting rule: outside the mask x0̂ is x_T, so with the exact denoiser the known
    /// pixels follow the bridge from x_T to x_T and the generated ones land on x0.
    #[test]
    fn mask_keeps_the_known_pixels() {
        let (x0, xt) = images(-0.9);
        let f = Nadb::new(NadbParams::default()).unwrap();
        let mask = Tensor::from_shape_fn((1, 1, 4, 5), |(_, _, y, x)| if y >= 2 && x >= 1 { 1.0 } else { 0.0 });
        let mut oracle = PointMassOracle::new(x0.clone());
        let mut model = Model::new(&mut oracle, &f, xt.view(), xt.view()).unwrap().with_mask(mask.view()).unwrap();
        let out = run_sampler(&mut model, &Sampler::Implicit { eta: 1.0 }, 6, &mut PhiloxNoise::new(2)).unwrap();
        for ((b, c, y, x), &v) in out.indexed_iter() {
            let want = if mask[[b, 0, y, x]] == 1.0 { x0[[b, c, y, x]] } else { xt[[b, c, y, x]] };
            assert!((v - want).abs() < 1e-5, "({c},{y},{x}): {v} vs {want}");
        }
        let mut bad = Tensor::zeros((1, 3, 4, 5));
        assert!(matches!(keep_known(&mut bad, xt.view(), Tensor::zeros((1, 2, 4, 5)).view()), Err(Error::ShapeMismatch { .. })));
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let f = Ddbm::new(DdbmParams::vp()).unwrap();
        let (x0, xt) = images(-0.5);
        let mut oracle = PointMassOracle::new(x0.clone());
        let mut model = Model::new(&mut oracle, &f, xt.view(), xt.view()).unwrap();
        let mut z = PhiloxNoise::new(0);
        for eta in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            assert!(matches!(run_sampler(&mut model, &Sampler::Implicit { eta }, 4, &mut z), Err(Error::InvalidParam { .. })));
        }
        assert!(matches!(run_sampler(&mut model, &Sampler::Implicit { eta: 0.0 }, 0, &mut z), Err(Error::InvalidNfe { .. })));
        assert!(matches!(rows(&f, &[1.0], 0.0, None, false), Err(Error::InvalidNfe { .. })));
        assert!(matches!(run_high_order(&mut model, &[1.0], 2, &mut z), Err(Error::InvalidNfe { .. })));
        assert!(matches!(run_high_order(&mut model, &[1.0, 0.5], 1, &mut z), Err(Error::InvalidParam { .. })));
        for grid in [[0.5, 1.0], [0.5, 0.5], [f64::NAN, 0.5]] {
            assert!(matches!(rows(&f, &grid, 0.0, None, false), Err(Error::InvalidParam { .. })), "{grid:?}");
            assert!(matches!(run_high_order(&mut model, &grid, 2, &mut z), Err(Error::InvalidParam { .. })), "{grid:?}");
        }
        let i2 = I2sb::new(I2sbParams::default()).unwrap();
        let mut m2 = Model::new(&mut oracle, &i2, xt.view(), xt.view()).unwrap();
        assert!(matches!(run_sampler(&mut m2, &Sampler::Implicit { eta: 0.0 }, 1000, &mut z), Err(Error::InvalidNfe { .. })));
        // GOUB's top step makes no call, so NFE ≤ T − 1.
        let g = Gou::new(GouParams::goub()).unwrap();
        let mut m3 = Model::new(&mut oracle, &g, xt.view(), xt.view()).unwrap();
        assert!(run_sampler(&mut m3, &Sampler::Implicit { eta: 0.0 }, 99, &mut z).is_ok());
        assert!(matches!(run_sampler(&mut m3, &Sampler::Implicit { eta: 0.0 }, 100, &mut z), Err(Error::InvalidNfe { .. })));
        let mut nan = FnDenoiser(|x: TensorView<'_>, _c: TensorView<'_>, _t: f64| Ok(x.mapv(|_| f32::NAN)));
        let mut m4 = Model::new(&mut nan, &f, xt.view(), xt.view()).unwrap();
        assert!(matches!(run_sampler(&mut m4, &Sampler::Implicit { eta: 0.0 }, 4, &mut z), Err(Error::NonFinite { .. })));
    }

    /// A family without an ancestral posterior serves η = 0 but not η > 0.
    #[test]
    fn eta_needs_an_ancestral_ratio() {
        #[derive(Debug)]
        struct NoPosterior(Nadb);
        impl Family for NoPosterior {
            fn name(&self) -> &'static str {
                "no-posterior"
            }
            fn marginal(&self, t: f64) -> Marginal {
                self.0.marginal(t)
            }
            fn net_call(&self, t: f64) -> crate::family::NetCall {
                self.0.net_call(t)
            }
            fn grid(&self, nfe: usize) -> Result<Vec<f64>> {
                self.0.grid(nfe)
            }
            fn as_any(&self) -> &dyn std::any::Any {
                self
            }
        }
        let f = NoPosterior(Nadb::new(NadbParams::default()).unwrap());
        let (x0, xt) = images(-0.5);
        let mut oracle = PointMassOracle::new(x0.clone());
        let mut model = Model::new(&mut oracle, &f, xt.view(), xt.view()).unwrap();
        let out = run_sampler(&mut model, &Sampler::Implicit { eta: 0.0 }, 5, &mut PhiloxNoise::new(1)).unwrap();
        assert!(max_abs_diff(&out, &x0) < 1e-5);
        assert!(matches!(
            run_sampler(&mut model, &Sampler::Implicit { eta: 0.5 }, 5, &mut PhiloxNoise::new(1)),
            Err(Error::Incompatible { .. })
        ));
    }
}
