//! UniDB++'s fast solvers for GOUB/UniDB models (data-solver-1 and noise-solver-1 are row plans,
//! [`super::plan`]; data-solver-2 and noise-solver-2 are loops: the first combines two `x0̂`, the
//! second calls the network twice per step) (Pan, Zhu et al., arXiv 2505.21528; code
//! 2769433owo/UniDB-plusplus @b128385, `UniDB/utils/sde_utils.py`; `docs/math/goub.md` §7).
//!
//! All work on a [`Gou`] family (UniDB with `γ⁻¹`, or GOUB with `γ⁻¹ = 0`) with the helper
//! tables `A_t`, `A^γ_t`, `S_t`, `β^γ_t` (`Gou::ode_*`), on the grid `t = T, T − h, …, h` with
//! `h = T/solver_step`, each step `t → s = t − h`; `solver_step` must divide `T` (the
//! reference silently wraps to the end of its tables otherwise).
//!
//! * **data-solver-1** (`unidb_sde_solver_data_prediction` / `…mean_ode…`): `x0̂ = μ` at `t = T`
//!   (no call), else from the network through the family's `ε → x0̂` (with `m_t`); then
//!   `x_s = (S_s/S_t)·x_t + C_μ·μ + C_0·x0̂ + δ·z` with `C_0 = A^γ_s/S_T − S_s A^γ_t/(S_T S_t)`,
//!   `C_μ = 1 − S_s/S_t − C_0`, `δ = L·S_s·sqrt(1/(e^{2τ_s} − 1) − 1/(e^{2τ_t} − 1))` (SDE; 0 on
//!   the last step and for the Mean-ODE). The update uses `ã_t = A^γ_t/S_T` while `x0̂` uses
//!   `m_t = A^γ_t/A^γ_0` — two different `a_t` in one step (`docs/math/goub.md` §7.3); we keep both,
//!   so the last step's `x0̂` coefficient is `1.000007` at `γ⁻¹ = 1e-7`, as in the reference.
//!   NFE = `solver_step − 1`. Draws: one per step (the last one's multiplied by 0, not drawn).
//! * **data-solver-2** (`unidb_reverse_sde_solver_2_data_prediction`, multistep, `r = 1`):
//!   data-solver-1's terms plus `C₂·(x0̂_t − x0̂_prev)` with
//!   `C₂ = [S_s A^γ_t/(S_T S_t) + A^γ_t/S_T·(h_i − 1)]/h_{i−1}`, `h_i = β^γ_s − β^γ_t`,
//!   `h_{i−1} = β^γ_t − β^γ_{t+h}`, `C₂ = 0` on the first and last steps; `x0̂_prev` is the
//!   previous step's estimate (`μ` before the first call). NFE = `solver_step` as the reference
//!   counts it (it calls the network at `t = T` too and discards the output; we skip that
//!   call). Draws: `z₁` (number `2k`, unused for `r = 1`) and `z₂` (number `2k + 1`) every step.
//! * **noise-solver-1** (`unidb_noise_sde_solver` / `…mean_ode…`): at `t = T`,
//!   `x_s = e^{τ_T − τ_s}x + (1 − e^{τ_T − τ_s})μ` (no call); else, with `ε` the raw output,
//!   Mean-ODE: `x_s = (A^γ_s/A^γ_t)x + (1 − A^γ_s/A^γ_t)μ − 2L·A^γ_s/√S_T·(√(S_t/A^γ_t) − √(S_s/A^γ_s))·ε`;
//!   SDE: the same with `A` for `A^γ` plus `L·A_t·sqrt(1/(c + 1 − e^{−2τ_{t:T}}) − 1/(c + 1 − e^{−2τ_{s:T}}))·z`
//!   (`γ` enters the SDE only through its noise, as in the reference). NFE = `solver_step − 1`.
//!   Draws: one per step (the first, at `t = T`, unused).
//! * **noise-solver-2** (`unidb_noise_sde_solver_2`, single step, `r = ½`; `solver_type` sde or
//!   mean-ode, which only switches its noise off). With `ρ_u = A^γ_u/A^γ_t`, `e_u = √(S_u/A_u)`
//!   (γ-free), `K_u = 2L·A^γ_u/√S_T` and `δ_u = L·A^γ_u·sqrt(1/(c + 1 − e^{−2τ_{t:T}}) − 1/(c + 1 − e^{−2τ_{u:T}}))`:
//!   at `t = T`, `x_s = ρ_s x + (1 − ρ_s)μ` (no call; evaluated in float32 like the reference,
//!   whose rounding there is large: see [`noise_solver_2`]); on the last step (`s = 0`),
//!   `x_s = ρ_s x + (1 − ρ_s)μ − K_s(e_t − e_s)ε + δ_s z₂`; else, with `h = β^γ_s − β^γ_t` and the
//!   intermediate integer time `m = argmin_u |τ_u − β⁻¹(β^γ_t + r·h)|` (`beta_inv_gamma`),
//!   `y = ρ_m x + (1 − ρ_m)μ − K_m(e_t − e_m)ε + δ_m z₁`, `ε' = net(y, m)`,
//!   `x_s = ρ_s x + (1 − ρ_s)μ − 2K_s(e_t − ½h·e_s − e_s)(ε' − ε)/(r·h) − K_s(e_t − e_s)ε + δ_s z₂`.
//!   NFE = `2·solver_step − 3`. Draws: `z₁` (number `2k`) and `z₂` (`2k + 1`) every step, as the
//!   reference draws them (both unused at `t = T`, `z₁` unused on the last step). GOUB (and a
//!   `γ⁻¹` so small that float32 `A^γ_T = fl(1 + c) − 1` is 0) is refused: the first step's
//!   ratio is infinite there (the reference divides by zero).

use super::Model;
use super::plan::{Builder, Plan, Source};
use crate::family::Family;
use crate::family::gou::Gou;
use crate::rng::NoiseSource;
use crate::step::{self, NoiseTerm, Term};
use crate::{Error, Result, Tensor};

/// The family and `h` for a solver run (`solver_step = nfe + extra`), or the typed error.
fn setup_family<'f>(family: &'f dyn Family, name: &str, nfe: usize, extra: usize) -> Result<(&'f Gou, usize)> {
    let f = family
        .downcast::<Gou>()
        .ok_or_else(|| Error::incompatible(name, family.name(), "UniDB++ solvers need a UniDB (or GOUB) family"))?;
    let t = f.t_max();
    match nfe.checked_add(extra) {
        Some(solver_step) if nfe > 0 && solver_step <= t && t % solver_step == 0 => Ok((f, t / solver_step)),
        _ => {
            let ok: Vec<String> = (1..=t).filter(|k| t % k == 0 && *k > extra).map(|k| (k - extra).to_string()).collect();
            Err(Error::nfe(nfe, format!("{name}: solver_step = NFE + {extra} must divide T = {t} (NFE ∈ {{{}}})", ok.join(", "))))
        }
    }
}

/// Data-solver-1's coefficients for `t → s`: `(C_x, C_μ, C_0, δ)`.
pub fn data_row(f: &Gou, t: usize, s: usize, sde: bool) -> (f64, f64, f64, f64) {
    let (st, ss, send) = (f.ode_s(t), f.ode_s(s), f.ode_s(f.t_max()));
    let c_x = ss / st;
    let c_0 = f.ode_a_gamma(s) / send - ss * f.ode_a_gamma(t) / (send * st);
    let delta = if sde && s > 0 {
        let (ts, tt) = (f.tau(s), f.tau(t));
        f.lambda() * ss * (1.0 / (2.0 * ts).exp_m1() - 1.0 / (2.0 * tt).exp_m1()).max(0.0).sqrt()
    } else {
        0.0
    };
    (c_x, 1.0 - c_x - c_0, c_0, delta)
}

/// UniDB++ data-solver-1's plan (SDE or Mean-ODE); `nfe = solver_step − 1` (the solver
/// ignores an inpainting mask).
pub(super) fn data_solver_1(family: &dyn Family, nfe: usize, sde: bool, masked: bool) -> Result<Plan> {
    let (f, h) = setup_family(family, "data-solver-1", nfe, 1)?;
    let mut b = Builder::new(family, &[Source::XEnd, Source::X0], true, masked);
    for (k, t) in (1..=f.t_max() / h).rev().map(|i| i * h).enumerate() {
        let s = t - h;
        let (c_x, c_mu, c_0, delta) = data_row(f, t, s, sde);
        // x0̂ = μ at t = T (no call).
        let call = (t != f.t_max()).then(|| family.net_call(t as f64));
        b.step(call, c_x, &[c_mu, c_0])?.set_noise(delta, k as u64);
    }
    Ok(b.finish(None))
}

/// UniDB++ data-solver-2 (multistep, one `x0̂` of history); `nfe = solver_step`.
pub fn data_solver_2(model: &mut Model<'_>, nfe: usize, sde: bool, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    let (f, h) = setup_family(model.family(), "data-solver-2", nfe, 0)?;
    let t_max = f.t_max();
    let mu = model.x_end();
    let mut x = crate::alloc::try_copy(mu, "the sampler state")?;
    let mut prev: Option<Tensor> = None; // x0̂ of the previous visited time (μ before the first call)
    for (k, t) in (1..=t_max / h).rev().map(|i| i * h).enumerate() {
        let s = t - h;
        let x0 = if t == t_max { None } else { Some(model.x0(&x, t as f64)?) };
        let (c_x, c_mu, c_0, delta) = data_row(f, t, s, sde);
        let c2 = if t == t_max || s == 0 {
            0.0
        } else {
            let (bt, bs, bl) = (f.beta_gamma(t), f.beta_gamma(s), f.beta_gamma(t + h));
            let (hi, hi1) = (bs - bt, bt - bl);
            let (st, ss, send, agt) = (f.ode_s(t), f.ode_s(s), f.ode_s(t_max), f.ode_a_gamma(t));
            (ss * agt / (send * st) + agt / send * (hi - 1.0)) / hi1
        };
        let x0v = x0.as_ref().map_or(mu, |t| t.view());
        let prevv = prev.as_ref().map_or(mu, |t| t.view());
        let z = NoiseTerm { coef: delta, draw: 2 * k as u64 + 1, source: &mut *noise };
        step::update(&mut x, c_x, &[Term::new(c_mu, mu), Term::new(c_0 + c2, x0v), Term::new(-c2, prevv)], Some(z))?;
        prev = x0;
        model.record(&x);
    }
    Ok(x)
}

/// Noise-solver-1's coefficients for `t → s` (`t < T`): `(C_x, C_μ, C_ε, C_z)`.
pub fn noise_row(f: &Gou, t: usize, s: usize, sde: bool) -> (f64, f64, f64, f64) {
    let (st, ss, send, l) = (f.ode_s(t), f.ode_s(s), f.ode_s(f.t_max()), f.lambda());
    let (at, as_) = if sde { (f.ode_a(t), f.ode_a(s)) } else { (f.ode_a_gamma(t), f.ode_a_gamma(s)) };
    let r = as_ / at;
    let c_eps = -2.0 * l * as_ / send.sqrt() * ((st / at).sqrt() - (ss / as_).sqrt());
    let c_z = if sde { l * f.ode_a(t) * noise_solver_gap_f32(f, t, s).sqrt() } else { 0.0 };
    (r, 1.0 - r, c_eps, c_z)
}

/// `1/(c + 1 − e^{−2τ_{t:T}}) − 1/(c + 1 − e^{−2τ_{s:T}})` evaluated as the reference does, in
/// float32. The two terms are nearly equal for small `t` (both ≈ 1/(1 + c)), so float32 loses
/// most of the digits there (at `t = 5 → 0` the reference's noise coefficient is 0.00810 where
/// the exact value is 0.00906). We reproduce the reference's value, not the exact one: it is
/// what the released sampler — and the results reported with it — uses.
fn noise_solver_gap_f32(f: &Gou, t: usize, s: usize) -> f64 {
    let (dt, big_end) = (f.dt() as f32, f.theta_cumsum(f.t_max()));
    let one_c = (1.0 + f.c()) as f32;
    let q = |u: usize| {
        let e = (((f.theta_cumsum(u) - big_end) * dt) as f64).exp() as f32;
        1.0f32 / (one_c - e * e)
    };
    ((q(t) - q(s)) as f64).max(0.0)
}

/// UniDB++ noise-solver-1's plan (SDE or Mean-ODE); `nfe = solver_step − 1` (the solver
/// ignores an inpainting mask).
pub(super) fn noise_solver_1(family: &dyn Family, nfe: usize, sde: bool, masked: bool) -> Result<Plan> {
    let (f, h) = setup_family(family, "noise-solver-1", nfe, 1)?;
    let t_max = f.t_max();
    let mut b = Builder::new(family, &[Source::XEnd, Source::Raw], false, masked);
    for (k, t) in (1..=t_max / h).rev().map(|i| i * h).enumerate() {
        let s = t - h;
        if t == t_max {
            let e = (f.tau(t_max) - f.tau(s)).exp();
            b.step(None, e, &[1.0 - e, 0.0])?;
        } else {
            // The family's raw output is ε.
            let (c_x, c_mu, c_eps, c_z) = noise_row(f, t, s, sde);
            b.step(Some(family.net_call(t as f64)), c_x, &[c_mu, c_eps])?.set_noise(c_z, k as u64);
        }
    }
    Ok(b.finish(None))
}

/// `A^γ_u` evaluated as the reference does, in float32 (`ode_alpha_t_gamma`,
/// `(1 + c)/tmp − tmp`, where torch turns `float / tensor` into `reciprocal(tmp)·fl(1 + c)`). At
/// `u = T` it is `fl(1 + c) − 1`: `c` keeps only its float32 rounding (7.2718e-6 for 7.2254e-6 at
/// γ⁻¹ = 1e-7).
fn ode_a_gamma_f32(f: &Gou, u: usize) -> f32 {
    let tmp = ((((f.theta_cumsum(u) - f.theta_cumsum(f.t_max())) * f.dt() as f32) as f64).exp()) as f32;
    (1.0f32 / tmp) * ((1.0 + f.c()) as f32) - tmp
}

/// noise-solver-2's intermediate fraction `r` (hard-coded in the reference).
const NS2_R: f64 = 0.5;

/// The integer time whose `τ` is nearest to `β^γ`'s inverse at `beta` (`beta_inv_gamma`, first
/// on ties like `torch.argmin`): `e^{2τ} = (e^{2τ_T}(1 + c) + e^{τ_T + β})/(1 + e^{τ_T + β})`.
pub fn beta_inv_index(f: &Gou, beta: f64) -> usize {
    let te = f.tau(f.t_max());
    let eb = (te + beta).exp();
    let real = 0.5 * (((2.0 * te).exp() * (1.0 + f.c()) + eb) / (1.0 + eb)).ln();
    let dist = |u: usize| (f.tau(u) - real).abs();
    (0..=f.t_max()).min_by(|&a, &b| dist(a).total_cmp(&dist(b))).unwrap_or(0)
}

/// noise-solver-2's step `h` for `nfe = 2·solver_step − 3` (no call at `t = T`, two per step,
/// one on the last step), or the typed error listing the valid NFEs.
fn noise_solver_2_h(f: &Gou, nfe: usize) -> Result<usize> {
    let t = f.t_max();
    let steps = nfe.checked_add(3).filter(|n| n % 2 == 0).map(|n| n / 2);
    match steps {
        Some(k) if nfe > 0 && k <= t && t.is_multiple_of(k) => Ok(t / k),
        _ => {
            let ok: Vec<String> = (2..=t).filter(|k| t.is_multiple_of(*k)).map(|k| (2 * k - 3).to_string()).collect();
            Err(Error::nfe(
                nfe,
                format!("noise-solver-2: NFE = 2·solver_step − 3 with solver_step ≥ 2 dividing T = {t} (NFE ∈ {{{}}})", ok.join(", ")),
            ))
        }
    }
}

/// UniDB++ noise-solver-2 (SDE or Mean-ODE, module docs); `nfe = 2·solver_step − 3`.
pub fn noise_solver_2(model: &mut Model<'_>, nfe: usize, sde: bool, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    let family = model.family();
    let f = family
        .downcast::<Gou>()
        .ok_or_else(|| Error::incompatible("noise-solver-2", family.name(), "UniDB++ solvers need a UniDB family"))?;
    if ode_a_gamma_f32(f, f.t_max()) == 0.0 {
        return Err(Error::incompatible(
            "noise-solver-2",
            family.name(),
            format!(
                "its first step divides by A^γ_T = fl(1 + c) − 1 (float32, c = γ⁻¹/L² = {:e}), which is 0 for GOUB \
                 and for γ⁻¹ below float32 resolution (the reference divides by zero there); use noise-solver-1 or a \
                 data solver",
                f.c()
            ),
        ));
    }
    let h = noise_solver_2_h(f, nfe)?;
    let (t_max, l, send) = (f.t_max(), f.lambda(), f.ode_s(f.t_max()));
    let ag = |u: usize| f.ode_a_gamma(u);
    let k_of = |u: usize| 2.0 * l * ag(u) / send.sqrt();
    let e_of = |u: usize| (f.ode_s(u) / f.ode_a(u)).sqrt();
    let mu = model.x_end();
    let mut x = crate::alloc::try_copy(mu, "the sampler state")?;
    for (k, t) in (1..=t_max / h).rev().map(|i| i * h).enumerate() {
        let s = t - h;
        let (z1, z2) = (2 * k as u64, 2 * k as u64 + 1);
        // δ_u: the noise of a jump t → u (0 for the Mean-ODE).
        let delta = |u: usize| if sde { l * ag(u) * noise_solver_gap_f32(f, t, u).sqrt() } else { 0.0 };
        if t == t_max {
            // In exact arithmetic this step keeps the start state x = μ. But ρ = A^γ_s/A^γ_T is
            // ~3e5 at γ⁻¹ = 1e-7 (A^γ_T = c), and the reference's float32 ρ·x + (1 − ρ)·μ leaves
            // rounding of ~ρ·2⁻²⁴·|μ| (0.03 on [0, 1] images) that the rest of its run carries. We
            // reproduce the released sampler: ρ and 1 − ρ in float32 and the update in its order.
            let rho = ode_a_gamma_f32(f, s) / ode_a_gamma_f32(f, t);
            step::update(&mut x, rho as f64, &[Term::new((1.0f32 - rho) as f64, mu)], None)?;
        } else {
            let rho_s = ag(s) / ag(t);
            let eps = model.raw(&x, t as f64)?;
            let (e_t, e_s) = (e_of(t), e_of(s));
            let first = -k_of(s) * (e_t - e_s);
            if s == 0 {
                let z = NoiseTerm { coef: delta(0), draw: z2, source: &mut *noise };
                step::update(&mut x, rho_s, &[Term::new(1.0 - rho_s, mu), Term::new(first, eps.view())], Some(z))?;
            } else {
                let hi = f.beta_gamma(s) - f.beta_gamma(t);
                let m = beta_inv_index(f, f.beta_gamma(t) + NS2_R * hi);
                let rho_m = ag(m) / ag(t);
                let mut y = crate::alloc::try_copy(x.view(), "the intermediate state")?;
                let c_eps_m = -k_of(m) * (e_t - e_of(m));
                let z = NoiseTerm { coef: delta(m), draw: z1, source: &mut *noise };
                step::update(&mut y, rho_m, &[Term::new(1.0 - rho_m, mu), Term::new(c_eps_m, eps.view())], Some(z))?;
                // ε' − ε is formed first, as the reference does: its coefficient is large.
                let diff = model.raw(&y, m as f64)? - &eps;
                let c_diff = -2.0 * k_of(s) * (e_t - 0.5 * hi * e_s - e_s) / (NS2_R * hi);
                let z = NoiseTerm { coef: delta(s), draw: z2, source: &mut *noise };
                let terms = [Term::new(1.0 - rho_s, mu), Term::new(c_diff, diff.view()), Term::new(first, eps.view())];
                step::update(&mut x, rho_s, &terms, Some(z))?;
            }
        }
        model.record(&x);
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::gou::GouParams;
    use crate::rng::PhiloxNoise;
    use crate::sampler::implicit::implicit_row;
    use crate::sampler::{Sampler, sample as run};
    use crate::{FnDenoiser, PointMassOracle, TensorView, TensorViewMut};

    fn images() -> (Tensor, Tensor) {
        let x0 = Tensor::from_shape_fn((1, 3, 4, 4), |(_, c, y, x)| ((c * 5 + y * 3 + x) % 7) as f32 * 0.15);
        let xt = Tensor::from_shape_fn((1, 3, 4, 4), |(_, c, y, x)| 0.2 + ((c + y * 2 + x) % 5) as f32 * 0.1);
        (x0, xt)
    }

    fn solve(f: &Gou, s: &Sampler, nfe: usize, x0: &Tensor, xt: &Tensor, noise: &mut dyn NoiseSource) -> Result<Tensor> {
        let mut oracle = PointMassOracle::new(x0.clone());
        let mut model = Model::new(&mut oracle, f, xt.view(), xt.view())?;
        run(&mut model, s, nfe, noise)
    }

    /// Data solvers with the exact denoiser end on x0 — exactly for GOUB, and for UniDB up to
    /// the reference's `A^γ_0/S_T = 1 + O(γ⁻¹)` last-step coefficient.
    #[test]
    fn data_solvers_land_on_x0() {
        let (x0, xt) = images();
        for gi in [0.0, 1e-7] {
            let f = Gou::new(GouParams::unidb(gi)).unwrap();
            let quirk = f.ode_a_gamma(0) / f.ode_s(f.t_max()) - 1.0;
            for sde in [false, true] {
                for (s, nfes) in [(Sampler::DataSolver1 { sde }, [4, 9, 19]), (Sampler::DataSolver2 { sde }, [5, 10, 20])] {
                    for nfe in nfes {
                        let out = solve(&f, &s, nfe, &x0, &xt, &mut PhiloxNoise::new(6)).unwrap();
                        for ((&o, &a), &m) in out.iter().zip(&x0).zip(&xt) {
                            let want = a as f64 + quirk * (a - m) as f64;
                            assert!((o as f64 - want).abs() < 1e-5, "γ⁻¹ {gi} {s:?} nfe {nfe}: {o} vs {want}");
                        }
                    }
                }
            }
        }
        // The last-step x0̂ coefficient A^γ_0/S_T = 1 + c/(1 − e^{−2τ_T}) at γ = 1e7; the
        // reference's float32 tables give 1.0000072718 (golden step_coefficients).
        let u = Gou::new(GouParams::unidb(1e-7)).unwrap();
        let c0 = data_row(&u, 10, 0, true).2;
        assert!((c0 - 1.0 - u.c() / (-(-2.0 * u.tau(100)).exp_m1())).abs() < 1e-12);
        assert!((c0 - 1.0000072717666626).abs() < 5e-8, "{c0}");
    }

    /// Noise-solver-1 with the exact ε: the Mean-ODE lands on x0 (coarse grids keep an error
    /// from the first steps: 0.07 at NFE 4); the SDE is the Mean-ODE (γ-free) plus noise on
    /// every step including the last, so with zero noise it is the Mean-ODE of GOUB and with
    /// noise its error shrinks as the steps shrink.
    #[test]
    fn noise_solver_lands_near_x0() {
        let (x0, xt) = images();
        let f = Gou::new(GouParams::goub()).unwrap();
        let err = |a: &Tensor| a.iter().zip(&x0).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        for nfe in [9, 19, 49, 99] {
            let ode = solve(&f, &Sampler::NoiseSolver1 { sde: false }, nfe, &x0, &xt, &mut PhiloxNoise::new(6)).unwrap();
            assert!(err(&ode) < 1e-5, "nfe {nfe}: {}", err(&ode));
            let quiet = solve(&f, &Sampler::NoiseSolver1 { sde: true }, nfe, &x0, &xt, &mut Log(Vec::new())).unwrap();
            assert!(err(&quiet) < 1e-5);
        }
        let coarse = solve(&f, &Sampler::NoiseSolver1 { sde: false }, 4, &x0, &xt, &mut PhiloxNoise::new(6)).unwrap();
        assert!(err(&coarse) < 0.1);
        let sde: Vec<f32> = [9, 19, 49, 99]
            .iter()
            .map(|&n| err(&solve(&f, &Sampler::NoiseSolver1 { sde: true }, n, &x0, &xt, &mut PhiloxNoise::new(6)).unwrap()))
            .collect();
        assert!(sde.windows(2).all(|w| w[1] < w[0]) && sde[3] < 5e-3, "{sde:?}");
    }

    /// Data-solver-1's row is the implicit step with ρ = sinh τ_s/sinh τ_t and the exact posterior
    /// noise, on the mean ã_t = A^γ_t/S_T (docs/math/goub.md §7.3); for GOUB ã = m, the exact posterior.
    #[test]
    fn data_solver_1_is_the_ancestral_step() {
        for gi in [0.0, 1e-3] {
            let f = Gou::new(GouParams::unidb(gi)).unwrap();
            let a_tilde = |u: usize| f.ode_a_gamma(u) / f.ode_s(f.t_max());
            for (t, s) in [(100, 90), (60, 40), (20, 10), (10, 0)] {
                let (c_x, c_mu, c_0, delta) = data_row(&f, t, s, true);
                let rho = f.ancestral_ratio(t as f64, s as f64).unwrap();
                let std = |u: usize| f.f_sigma(u as f64);
                let m = |u: usize| crate::family::Marginal { x0: a_tilde(u), xt: 1.0 - a_tilde(u), std: std(u) };
                let row = implicit_row(m(t), m(s), rho);
                assert!((c_x - row.c_x).abs() < 1e-12 && (c_0 - row.c_0).abs() < 1e-9 && (c_mu - row.c_t).abs() < 1e-9);
                if s > 0 {
                    assert!((delta - row.c_z).abs() < 1e-9 * row.c_z.max(1e-3), "δ {delta} vs {}", row.c_z);
                }
                if gi == 0.0 {
                    assert!((a_tilde(t) - f.m(t as f64)).abs() < 1e-12);
                }
            }
        }
    }

    /// From x_t ~ q(x_t | x0, μ), one data-solver-1 SDE step of GOUB (its exact posterior)
    /// reproduces the marginal at s (fixed seeds).
    #[test]
    fn posterior_step_reproduces_the_marginal() {
        let f = Gou::new(GouParams::goub()).unwrap();
        let shape = (1, 1, 128, 128);
        let (x0v, muv) = (0.8f32, 0.1f32);
        let mu = Tensor::from_elem(shape, muv);
        for (t, s) in [(80usize, 50usize), (50, 20)] {
            let mt = f.marginal(t as f64);
            let mut z = Tensor::zeros(shape);
            PhiloxNoise::new(3).fill(0, z.view_mut()).unwrap();
            let mut x = z.mapv(|v| (mt.x0 * x0v as f64 + mt.xt * muv as f64 + mt.std * v as f64) as f32);
            let x0 = Tensor::from_elem(shape, x0v);
            let (c_x, c_mu, c_0, delta) = data_row(&f, t, s, true);
            let mut noise = PhiloxNoise::new(4);
            step::update(
                &mut x,
                c_x,
                &[Term::new(c_mu, mu.view()), Term::new(c_0, x0.view())],
                Some(NoiseTerm { coef: delta, draw: 0, source: &mut noise }),
            )
            .unwrap();
            let ms = f.marginal(s as f64);
            let n = x.len() as f64;
            let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
            let sd = (x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
            let want = ms.x0 * x0v as f64 + ms.xt * muv as f64;
            assert!((mean - want).abs() < 4.0 * ms.std / n.sqrt(), "{t}→{s}: {mean} vs {want}");
            assert!((sd / ms.std - 1.0).abs() < 0.03, "{t}→{s}: {sd} vs {}", ms.std);
        }
    }

    struct Log(Vec<u64>);
    impl NoiseSource for Log {
        fn fill(&mut self, draw: u64, mut out: TensorViewMut<'_>) -> Result<()> {
            self.0.push(draw);
            out.fill(0.0);
            Ok(())
        }
    }

    /// Draws are numbered as the reference draws them; discarded ones are numbered, not filled.
    #[test]
    fn draws_follow_the_reference_order() {
        let (x0, xt) = images();
        let f = Gou::new(GouParams::unidb(1e-7)).unwrap();
        let draws = |s: Sampler, nfe: usize| {
            let mut log = Log(Vec::new());
            solve(&f, &s, nfe, &x0, &xt, &mut log).unwrap();
            log.0
        };
        // data-solver-1 SDE, solver_step 5: one z per step, the last multiplied by 0.
        assert_eq!(draws(Sampler::DataSolver1 { sde: true }, 4), vec![0, 1, 2, 3]);
        assert!(draws(Sampler::DataSolver1 { sde: false }, 4).is_empty());
        // data-solver-2, solver_step 5: z₁ (even, unused) and z₂ (odd) every step, z₂ unused last.
        assert_eq!(draws(Sampler::DataSolver2 { sde: true }, 5), vec![1, 3, 5, 7]);
        // noise-solver-2 SDE, solver_step 5 (NFE 7): z₁, z₂ unused at t = T, z₁ unused last.
        assert_eq!(draws(Sampler::NoiseSolver2 { sde: true }, 7), vec![2, 3, 4, 5, 6, 7, 9]);
        assert!(draws(Sampler::NoiseSolver2 { sde: false }, 7).is_empty());
        // noise-solver-1 SDE, solver_step 5: the z of the first step (t = T) is unused.
        assert_eq!(draws(Sampler::NoiseSolver1 { sde: true }, 4), vec![1, 2, 3, 4]);
        assert!(draws(Sampler::NoiseSolver1 { sde: false }, 4).is_empty());
    }

    /// `beta_inv_index` inverts `β^γ` on the grid, and noise-solver-2's intermediate time lies in
    /// `[s, t]`, not within 1e-6 (in τ) of a tie between two grid points, for every `solver_step`
    /// dividing `T`. The closest call is solver_step 100 (margin 2e-6 near t = 73, where the
    /// target is halfway between s and t); the golden `unidbpp_noise2_sde_S100` shows the float64
    /// evaluation picks the reference's float32 index there.
    #[test]
    fn noise_solver_2_intermediate_time() {
        for gi in [1e-7, 1e-3] {
            let f = Gou::new(GouParams::unidb(gi)).unwrap();
            for u in 1..=f.t_max() {
                assert_eq!(beta_inv_index(&f, f.beta_gamma(u)), u, "γ⁻¹ {gi} u {u}");
            }
            for steps in (2..=100).filter(|k| 100 % k == 0) {
                let h = 100 / steps;
                for t in (2..steps).map(|i| i * h) {
                    let s = t - h;
                    let beta = f.beta_gamma(t) + NS2_R * (f.beta_gamma(s) - f.beta_gamma(t));
                    let m = beta_inv_index(&f, beta);
                    assert!((s..=t).contains(&m), "γ⁻¹ {gi} {t}→{s}: m {m}");
                    // Distance to the target τ of the winner and of its neighbours.
                    let te = f.tau(100);
                    let eb = (te + beta).exp();
                    let real = 0.5 * (((2.0 * te).exp() * (1.0 + f.c()) + eb) / (1.0 + eb)).ln();
                    let d = |u: usize| (f.tau(u) - real).abs();
                    let runner = d(m - 1).min(d((m + 1).min(100)));
                    assert!(runner - d(m) > 1e-6 || m == 100, "γ⁻¹ {gi} {t}→{s}: near tie at {m}");
                }
            }
        }
    }

    /// noise-solver-2 with the exact ε lands near x0, closer as the steps shrink; its SDE without
    /// noise is its Mean-ODE (the two differ only in δ). At γ⁻¹ = 1e-7 the float32 first step
    /// moves the state off μ by the reference's rounding (≤ ρ·2⁻²⁴·max|μ|), not more.
    #[test]
    fn noise_solver_2_lands_near_x0() {
        let (x0, xt) = images();
        let err = |a: &Tensor| a.iter().zip(&x0).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        for gi in [1e-7, 1e-3] {
            let f = Gou::new(GouParams::unidb(gi)).unwrap();
            let errs: Vec<f32> = [7, 17, 37, 97]
                .iter()
                .map(|&nfe| {
                    let ode = solve(&f, &Sampler::NoiseSolver2 { sde: false }, nfe, &x0, &xt, &mut PhiloxNoise::new(6)).unwrap();
                    let quiet = solve(&f, &Sampler::NoiseSolver2 { sde: true }, nfe, &x0, &xt, &mut Log(Vec::new())).unwrap();
                    assert_eq!(ode, quiet, "γ⁻¹ {gi} nfe {nfe}");
                    err(&ode)
                })
                .collect();
            assert!(errs.windows(2).all(|w| w[1] < w[0]) && errs[2] < 1e-5, "γ⁻¹ {gi}: {errs:?}");
            let rho = ode_a_gamma_f32(&f, 80) as f64 / ode_a_gamma_f32(&f, 100) as f64;
            let first = &trajectory(&f, &Sampler::NoiseSolver2 { sde: false }, 7, &x0, &xt, None)[0];
            let off = first.iter().zip(&xt).fold(0.0f64, |m, (a, b)| m.max((a - b).abs() as f64));
            assert!(off <= 2.0 * rho * 2f64.powi(-24), "γ⁻¹ {gi}: first step off μ by {off} (ρ {rho})");
        }
    }

    /// The states of a run with the exact denoiser, or with a network that always answers `eps`.
    fn trajectory(f: &Gou, s: &Sampler, nfe: usize, x0: &Tensor, xt: &Tensor, eps: Option<&Tensor>) -> Vec<Tensor> {
        let mut states = Vec::new();
        let mut rec = |x: &Tensor| states.push(x.clone());
        let mut oracle = PointMassOracle::new(x0.clone());
        let mut constant = FnDenoiser(|_x: TensorView<'_>, _c: TensorView<'_>, _t: f64| Ok(eps.cloned().unwrap_or_default()));
        let net: &mut dyn crate::Denoiser = if eps.is_some() { &mut constant } else { &mut oracle };
        let hooks = crate::sampler::Hooks { on_call: None, on_state: Some(&mut rec) };
        let mut model = Model::new(net, f, xt.view(), xt.view()).unwrap().with_hooks(hooks);
        run(&mut model, s, nfe, &mut PhiloxNoise::new(6)).unwrap();
        states
    }

    /// With an ε network that ignores its input, ε' = ε and the second-order term vanishes; the
    /// first-order steps then compose exactly (`(x − μ)/A^γ` moves by `−2L(e_t − e_s)ε/√S_T`), so
    /// the result depends on the grid only through the first state:
    /// `x_0 = μ + A^γ_0·[(x_{T−h} − μ)/A^γ_{T−h} − 2L·e_{T−h}·ε/√S_T]`.
    #[test]
    fn noise_solver_2_with_constant_eps_telescopes() {
        let (x0, xt) = images();
        let f = Gou::new(GouParams::unidb(1e-3)).unwrap();
        let eps = Tensor::from_shape_fn(xt.raw_dim(), |(_, c, y, x)| 0.3 * ((c + 2 * y + x) % 5) as f32 - 0.6);
        let e_of = |u: usize| (f.ode_s(u) / f.ode_a(u)).sqrt();
        let k = 2.0 * f.lambda() / f.ode_s(100).sqrt();
        for (nfe, h) in [(7usize, 20usize), (17, 10), (37, 5)] {
            let states = trajectory(&f, &Sampler::NoiseSolver2 { sde: false }, nfe, &x0, &xt, Some(&eps));
            let (first, last) = (&states[0], &states[states.len() - 1]);
            let (a0, a1) = (f.ode_a_gamma(0), f.ode_a_gamma(100 - h));
            for (((&o, &x1), &m), &e) in last.iter().zip(first).zip(&xt).zip(&eps) {
                let want = m as f64 + a0 * ((x1 - m) as f64 / a1 - k * e_of(100 - h) * e as f64);
                assert!((o as f64 - want).abs() < 2e-5 * want.abs().max(1.0), "nfe {nfe}: {o} vs {want}");
            }
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let (x0, xt) = images();
        let f = Gou::new(GouParams::unidb(1e-7)).unwrap();
        let mut p = PhiloxNoise::new(0);
        for (s, bad) in [
            (Sampler::DataSolver1 { sde: true }, [0, 10, 100, usize::MAX]),
            (Sampler::DataSolver2 { sde: true }, [0, 9, 101, usize::MAX]),
            (Sampler::NoiseSolver1 { sde: false }, [0, 10, 100, usize::MAX]),
            (Sampler::NoiseSolver2 { sde: true }, [0, 8, 15, usize::MAX]),
        ] {
            for nfe in bad {
                assert!(matches!(solve(&f, &s, nfe, &x0, &xt, &mut p), Err(Error::InvalidNfe { .. })), "{s:?} {nfe}");
            }
            let r = crate::family::rdbm::Rdbm::new(Default::default()).unwrap();
            let mut oracle = PointMassOracle::new(x0.clone());
            let mut model = Model::new(&mut oracle, &r, xt.view(), xt.view()).unwrap();
            assert!(matches!(run(&mut model, &s, 9, &mut p), Err(Error::Incompatible { .. })));
            let mut nan = FnDenoiser(|x: TensorView<'_>, _c: TensorView<'_>, _t: f64| Ok(x.mapv(|_| f32::NAN)));
            let mut model = Model::new(&mut nan, &f, xt.view(), xt.view()).unwrap();
            let nfe = match s {
                Sampler::DataSolver2 { .. } => 10,
                Sampler::NoiseSolver2 { .. } => 17,
                _ => 9,
            };
            assert!(matches!(run(&mut model, &s, nfe, &mut p), Err(Error::NonFinite { .. })));
        }
        // noise-solver-2 divides by A^γ_T: refused for GOUB and a γ⁻¹ below float32 resolution.
        for gi in [0.0, 1e-12] {
            let g = Gou::new(GouParams::unidb(gi)).unwrap();
            let r = solve(&g, &Sampler::NoiseSolver2 { sde: true }, 17, &x0, &xt, &mut p);
            assert!(matches!(&r, Err(Error::Incompatible { reason, .. }) if reason.contains("A^γ_T")), "{r:?}");
        }
        assert_eq!(noise_solver_2_h(&f, 1).unwrap(), 50);
        assert_eq!(noise_solver_2_h(&f, 197).unwrap(), 1);
    }
}
