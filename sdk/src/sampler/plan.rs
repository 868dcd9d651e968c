//! Row plans: the samplers whose every step is one linear row, written out ahead of time.
//!
//! Most samplers move the state with one fused update per step (see [`crate::step::update`]):
//!
//! ```text
//! x ← c_x·x + Σ_k a_k·src_k + c_z·z(draw),   src_k ∈ {x0̂, x_T, raw}
//! x0̂ = clamp(l_x·x + l_T·x_T + l_o·raw)      (the family's NetCall::x0, or x_T without a call)
//! ```
//!
//! with at most one network call per step, whose time and coefficients depend only on the
//! family, the grid and the step — never on the data. [`plan`] writes those rows out for a whole
//! run: the network call of each step, how `x0̂` is read from it, the update's coefficients in
//! a fixed source order ([`Plan::order`]) and the noise draw. Two kernels apply a plan:
//!
//! * [`run`], on the host, through [`Model`] and [`crate::step::update`]. It reproduces the
//!   sampler's own loop exactly (same operations in the same order: tested bit for bit against
//!   [`super::sample`] for every planned sampler below);
//! * the device loop ([`crate::runtime::device`]), which applies the same rows in a small ONNX
//!   graph next to the network so the state never leaves the accelerator.
//!
//! A source with a zero coefficient adds `±0` in the device graph where the host skips it, so
//! one source order per sampler serves all its steps (the host result is unchanged; the device
//! result differs at most in the sign of an exact zero).
//!
//! Planned: `implicit` and `dbim` order 1 (any η), `i2sb` (SDE and OT-ODE), `nadb`, `rdbm`
//! (release bridge; not the residual-modulated noise, whose noise is scaled per pixel),
//! `euler-sde`/`mean-ode`, UniDB++ `data-solver-1` and `noise-solver-1`. Not
//! planned — [`plan`] returns `Ok(None)` and callers use [`super::sample`]: `heun` (two calls
//! per step), `distilled` (the generator's noise is a network input of its own), `dbim` orders 2 and 3 and `data-solver-2` (they combine earlier `x0̂`), RDBM
//! with residual-modulated noise, and any run with an inpainting mask.

use super::Model;
use super::implicit::{check_eta, eta_row, grid_for, implicit_row};
use super::{Sampler, nadb as nadb_sampler, rdbm as rdbm_sampler, unidbpp};
use crate::family::gou::Gou;
use crate::family::i2sb::I2sb;
use crate::family::nadb::Nadb;
use crate::family::rdbm::{Objective, Rdbm};
use crate::family::{Family, Lin, NetCall};
use crate::rng::NoiseSource;
use crate::step::{self, NoiseTerm, Term};
use crate::{Error, Result, Tensor, TensorView};

/// A term's source in a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The clean estimate `x0̂` of this step.
    X0,
    /// The bridge endpoint `x_T`.
    XEnd,
    /// The network's raw output of this step.
    Raw,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanStep {
    /// The network call made at the start of the step, on the current state.
    pub call: Option<NetCall>,
    /// How `x0̂` is read from the call's raw output; `None`: `x0̂ = x_T` (a step without a call,
    /// or one whose update does not use `x0̂`).
    pub x0: Option<Lin>,
    /// Clamp of `x0̂`.
    pub clamp: Option<(f32, f32)>,
    /// Coefficient of the current state.
    pub c_x: f64,
    /// Coefficients of the sources, in [`Plan::order`].
    pub coefs: Vec<f64>,
    /// Noise `(c_z, draw)`, if the step adds any.
    pub noise: Option<(f64, u64)>,
    /// Whether the sampler reports the state after this step to the trajectory hook.
    pub record: bool,
}

impl PlanStep {
    /// The coefficient of `src` (0 if the plan's order lacks it).
    pub fn coef(&self, order: &[Source], src: Source) -> f64 {
        order.iter().zip(&self.coefs).filter(|(s, _)| **s == src).map(|(_, c)| *c).sum()
    }

    fn set_noise(&mut self, c_z: f64, draw: u64) -> &mut Self {
        self.noise = (c_z != 0.0).then_some((c_z, draw));
        self
    }
}

/// A whole run of a row sampler (module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The source order of every step's terms.
    pub order: Vec<Source>,
    /// The steps.
    pub steps: Vec<PlanStep>,
    /// Clamp applied to the final state.
    pub clamp: Option<(f32, f32)>,
}

impl Plan {
    /// Network calls of the run.
    pub fn calls(&self) -> usize {
        self.steps.iter().filter(|s| s.call.is_some()).count()
    }
    /// Steps that draw noise.
    pub fn noisy_steps(&self) -> usize {
        self.steps.iter().filter(|s| s.noise.is_some()).count()
    }
}

/// Builds a plan step by step.
struct Builder<'f> {
    family: &'f dyn Family,
    order: Vec<Source>,
    /// The sampler forms `x0̂` from every call (so an undefined `x0̂` is its error).
    reads_x0: bool,
    steps: Vec<PlanStep>,
}

impl<'f> Builder<'f> {
    fn new(family: &'f dyn Family, order: &[Source], reads_x0: bool) -> Self {
        Builder { family, order: order.to_vec(), reads_x0, steps: Vec::new() }
    }

    /// A recorded step without noise; `coefs` in the builder's order.
    fn step(&mut self, call: Option<NetCall>, c_x: f64, coefs: &[f64]) -> Result<&mut PlanStep> {
        let has = |src: Source| self.order.iter().zip(coefs).any(|(s, c)| *s == src && *c != 0.0);
        let (uses_x0, uses_raw) = (has(Source::X0), has(Source::Raw));
        let (x0, clamp) = match call {
            Some(c) if self.reads_x0 || uses_x0 => {
                let lin = c.x0.ok_or_else(|| {
                    Error::incompatible("x0-prediction", self.family.name(), format!("x0̂ is undefined at t_net = {}", c.t_net))
                })?;
                if uses_x0 { (Some(lin), c.clamp) } else { (None, None) }
            }
            _ => (None, None),
        };
        if call.is_none() && uses_raw {
            return Err(Error::param("plan", "a step without a network call cannot use the raw output"));
        }
        if coefs.len() != self.order.len() {
            return Err(Error::param("plan", "one coefficient per source"));
        }
        self.steps.push(PlanStep { call, x0, clamp, c_x, coefs: coefs.to_vec(), noise: None, record: true });
        let last = self.steps.len() - 1;
        Ok(&mut self.steps[last])
    }

    fn finish(self, clamp: Option<(f32, f32)>) -> Option<Plan> {
        Some(Plan { order: self.order, steps: self.steps, clamp })
    }
}

/// The plan of `sampler` with `nfe` evaluations on `family`, or `Ok(None)` if the sampler is not
/// a row sampler (module docs) or `masked` (inpainting). Errors are those the sampler itself
/// would return before its first network call (bad NFE, η, incompatible family).
pub fn plan(family: &dyn Family, sampler: &Sampler, nfe: usize, masked: bool) -> Result<Option<Plan>> {
    if nfe == 0 {
        return Err(Error::nfe(0, "at least one network evaluation is needed"));
    }
    if masked {
        return Ok(None);
    }
    match *sampler {
        Sampler::Implicit { eta } => {
            check_eta(eta)?;
            let grid = grid_for(family, nfe)?;
            let clamp = family.net_call(grid[grid.len() - 1]).clamp;
            implicit(family, &grid, eta, clamp)
        }
        Sampler::Dbim { eta, order: 1 } => {
            check_eta(eta)?;
            implicit(family, &grid_for(family, nfe)?, eta, Some((-1.0, 1.0)))
        }
        Sampler::I2sb { ot_ode } => i2sb(family, nfe, ot_ode),
        Sampler::Nadb => nadb(family, nfe),
        Sampler::Rdbm { eps_form } => rdbm(family, nfe, eps_form),
        Sampler::Euler { sde } => euler(family, nfe, sde),
        Sampler::DataSolver1 { sde } => data_solver_1(family, nfe, sde),
        Sampler::NoiseSolver1 { sde } => noise_solver_1(family, nfe, sde),
        _ => Ok(None),
    }
}

/// `implicit::run` with order 1 (module docs there).
fn implicit(family: &dyn Family, grid: &[f64], eta: f64, clamp: Option<(f32, f32)>) -> Result<Option<Plan>> {
    if grid.len() < 2 {
        return Err(Error::nfe(0, "the grid has no step"));
    }
    if grid.iter().any(|t| !t.is_finite()) || grid.windows(2).any(|w| w[1] >= w[0]) {
        return Err(Error::param("grid", "times must be finite and strictly descending"));
    }
    let mut b = Builder::new(family, &[Source::X0, Source::XEnd], true);
    let steps = grid.len() - 1;
    for k in 0..steps {
        let (t, s) = (grid[k], grid[k + 1]);
        let call = family.net_call(t);
        // Where x0̂ is undefined at the top, the first step uses x_T without a call.
        let call = if k == 0 && call.x0.is_none() { None } else { Some(call) };
        let row = if k == 0 { implicit_row(family.marginal(t), family.marginal(s), 0.0) } else { eta_row(family, t, s, eta)? };
        let c_z = if k + 1 == steps { 0.0 } else { row.c_z };
        b.step(call, row.c_x, &[row.c_0, row.c_t])?.set_noise(c_z, k as u64);
    }
    Ok(b.finish(clamp))
}

fn i2sb(family: &dyn Family, nfe: usize, ot_ode: bool) -> Result<Option<Plan>> {
    let f = family.downcast::<I2sb>().ok_or_else(|| {
        Error::incompatible("i2sb", family.name(), "I2SB's posterior is the I2SB chain's; use `implicit` (η = 1) here")
    })?;
    let grid = f.grid(nfe)?;
    let mut b = Builder::new(family, &[Source::X0], true);
    let mut draw = 0u64;
    for w in grid.windows(2) {
        let (n, m) = (w[0], w[1]);
        let (c_x0, c_xn, var) = f.posterior(n, m);
        let c_z = if !ot_ode && m > 0.0 { var.sqrt() } else { 0.0 };
        b.step(Some(family.net_call(n)), c_xn, &[c_x0])?.set_noise(c_z, draw);
        // Only drawn tensors are numbered (the reference's order).
        if c_z != 0.0 {
            draw += 1;
        }
    }
    Ok(b.finish(None))
}

fn nadb(family: &dyn Family, nfe: usize) -> Result<Option<Plan>> {
    let f = family.downcast::<Nadb>().ok_or_else(|| Error::incompatible("nadb", family.name(), "NADB's sampler needs the NADB family"))?;
    let grid = f.grid(nfe)?;
    let mut b = Builder::new(family, &[Source::X0, Source::XEnd], true);
    for (k, w) in grid.windows(2).enumerate() {
        let (n, n_prev) = (w[0], w[1]);
        let row = nadb_sampler::step_row(f, n, n_prev)?;
        b.step(Some(family.net_call(n)), row.c_x, &[row.c_0, row.c_t])?.set_noise(row.c_z, k as u64);
    }
    Ok(b.finish(None))
}

fn rdbm(family: &dyn Family, nfe: usize, eps_form: bool) -> Result<Option<Plan>> {
    let f = family.downcast::<Rdbm>().ok_or_else(|| Error::incompatible("rdbm", family.name(), "RDBM's sampler needs the RDBM family"))?;
    let pred_noise = f.objective() == Objective::PredNoise;
    if pred_noise && (!eps_form || nfe == 1) {
        return Err(Error::incompatible("rdbm", "rdbm", "objective pred_noise: x0̂ is 0/0 at the top index (the reference returns NaN)"));
    }
    if f.residual().is_some_and(|r| r.eta > 0.0) {
        // The noise is scaled per pixel by |x0̂ − μ|: not a row.
        return Ok(None);
    }
    let grid = f.grid(nfe)?;
    let top = (f.t_max() - 1) as f64;
    let raw_form = eps_form && pred_noise;
    let order: &[Source] = if raw_form { &[Source::XEnd, Source::Raw, Source::X0] } else { &[Source::X0, Source::XEnd] };
    let mut b = Builder::new(family, order, true);
    // Coefficients in `order` from (x0̂, μ, raw).
    let put = |x0: f64, mu: f64, raw: f64| if raw_form { vec![mu, raw, x0] } else { vec![x0, mu] };
    for w in grid.windows(2) {
        let (i, j) = (w[0], w[1]);
        let last = j < 0.0;
        if i == top && eps_form && !last {
            b.step(None, 0.0, &put(0.0, 1.0, 0.0))?; // x ← μ
            continue;
        }
        let call = Some(f.net_call(i));
        if last {
            b.step(call, 0.0, &put(1.0, 0.0, 0.0))?; // x ← x0̂
            continue;
        }
        let (mi, mj) = (f.marginal(i), f.marginal(j));
        // η = 0, so ω = 0; the sampler's expression is kept for the same rounding.
        let omega = 0.0f64;
        let sigma_dir = (mj.std * mj.std - omega * omega).max(0.0).sqrt();
        if raw_form {
            let r = mj.x0 / mi.x0;
            b.step(call, r, &put(0.0, 1.0 - r, -(r * mi.std - sigma_dir)))?;
        } else {
            let (c_x, c_0, c_t) = rdbm_sampler::x0_row(mi, mj, sigma_dir);
            b.step(call, c_x, &put(c_0, c_t, 0.0))?;
        }
    }
    Ok(b.finish(None))
}

fn euler(family: &dyn Family, nfe: usize, sde: bool) -> Result<Option<Plan>> {
    let name = if sde { "euler-sde" } else { "mean-ode" };
    let f = family.downcast::<Gou>().ok_or_else(|| Error::incompatible(name, family.name(), "the Euler reverse SDE is GOUB/UniDB's"))?;
    let t_max = f.t_max();
    if nfe != t_max {
        return Err(Error::nfe(nfe, format!("{name} visits every integer step: NFE must be T = {t_max}")));
    }
    let mut b = Builder::new(family, &[Source::XEnd, Source::Raw], false);
    for (k, t) in (1..=t_max).rev().enumerate() {
        let row = super::euler::euler_row(f, t, sde);
        // No call at t = T, where ε is multiplied by 0.
        let call = (row.c_eps != 0.0).then(|| family.net_call(t as f64));
        b.step(call, row.c_x, &[row.c_mu, row.c_eps])?.set_noise(row.c_z, k as u64);
    }
    Ok(b.finish(None))
}

fn data_solver_1(family: &dyn Family, nfe: usize, sde: bool) -> Result<Option<Plan>> {
    let (f, h) = unidbpp::setup_family(family, "data-solver-1", nfe, 1)?;
    let mut b = Builder::new(family, &[Source::XEnd, Source::X0], true);
    for (k, t) in (1..=f.t_max() / h).rev().map(|i| i * h).enumerate() {
        let s = t - h;
        let (c_x, c_mu, c_0, delta) = unidbpp::data_row(f, t, s, sde);
        // x0̂ = μ at t = T (no call).
        let call = (t != f.t_max()).then(|| family.net_call(t as f64));
        b.step(call, c_x, &[c_mu, c_0])?.set_noise(delta, k as u64);
    }
    Ok(b.finish(None))
}

fn noise_solver_1(family: &dyn Family, nfe: usize, sde: bool) -> Result<Option<Plan>> {
    let (f, h) = unidbpp::setup_family(family, "noise-solver-1", nfe, 1)?;
    let t_max = f.t_max();
    let mut b = Builder::new(family, &[Source::XEnd, Source::Raw], false);
    for (k, t) in (1..=t_max / h).rev().map(|i| i * h).enumerate() {
        let s = t - h;
        if t == t_max {
            let e = (f.tau(t_max) - f.tau(s)).exp();
            b.step(None, e, &[1.0 - e, 0.0])?;
        } else {
            let (c_x, c_mu, c_eps, c_z) = unidbpp::noise_row(f, t, s, sde);
            b.step(Some(family.net_call(t as f64)), c_x, &[c_mu, c_eps])?.set_noise(c_z, k as u64);
        }
    }
    Ok(b.finish(None))
}

/// Apply a plan on the host: the sampler's own loop, step for step (module docs). `noise` is
/// the run's noise source (draw numbers are the plan's).
pub fn run(model: &mut Model<'_>, plan: &Plan, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    if plan.order.is_empty() || plan.steps.iter().any(|s| s.coefs.len() != plan.order.len()) {
        return Err(Error::param("plan", "every step needs one coefficient per source"));
    }
    let x_end = model.x_end();
    let mut x = x_end.to_owned();
    for st in &plan.steps {
        let raw = match &st.call {
            Some(c) => Some(model.raw_with(&x, c)?),
            None => None,
        };
        let x0 = match (&raw, &st.call, st.x0) {
            (Some(r), Some(c), Some(lin)) => Some(model.x0_from_raw(&x, r, &NetCall { x0: Some(lin), clamp: st.clamp, ..*c })?),
            _ => None,
        };
        let mut terms: Vec<Term<'_>> = Vec::with_capacity(plan.order.len());
        for (src, &c) in plan.order.iter().zip(&st.coefs) {
            let v: TensorView<'_> = match src {
                Source::X0 => x0.as_ref().map_or(x_end, |t| t.view()),
                Source::XEnd => x_end,
                Source::Raw => match (&raw, c != 0.0) {
                    (Some(r), _) => r.view(),
                    (None, false) => continue,
                    (None, true) => return Err(Error::param("plan", "a step without a network call cannot use the raw output")),
                },
            };
            terms.push(Term::new(c, v));
        }
        let z = st.noise.map(|(coef, draw)| NoiseTerm { coef, draw, source: &mut *noise });
        step::update(&mut x, st.c_x, &terms, z)?;
        if st.record {
            model.record(&x);
        }
    }
    if let Some((lo, hi)) = plan.clamp {
        step::clamp(&mut x, lo, hi);
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::ddbm::{Ddbm, DdbmParams};
    use crate::family::gou::GouParams;
    use crate::family::i2sb::I2sbParams;
    use crate::family::nadb::NadbParams;
    use crate::family::rdbm::{RdbmParams, ResidualNoise};
    use crate::rng::PhiloxNoise;
    use crate::sampler::{Hooks, sample};
    use crate::{FnDenoiser, TensorView};

    /// A nonlinear network that uses all three inputs (so every coefficient matters).
    fn net(x: TensorView<'_>, c: TensorView<'_>, t: f64) -> Result<Tensor> {
        let s = (0.37 * t).sin() as f32 * 0.05;
        Ok(ndarray::Zip::from(&x).and(&c).map_collect(|&a, &b| (0.6 * a - 0.3 * b).tanh() + 0.4 * b + s))
    }

    fn images(lo: f32) -> Tensor {
        Tensor::from_shape_fn((2, 3, 5, 7), |(b, c, y, x)| ((b * 3 + c * 5 + y * 3 + x) % 11) as f32 * 0.08 + lo)
    }

    /// An output and its recorded trajectory.
    type Run = (Tensor, Vec<Tensor>);

    /// Runs `sampler` both ways; returns the (sample, plan-run) outputs and trajectories.
    fn both(f: &dyn Family, s: &Sampler, nfe: usize, lo: f32) -> Option<(Run, Run)> {
        let xt = images(lo);
        let p = plan(f, s, nfe, false).unwrap_or_else(|e| panic!("{} {s:?} nfe {nfe}: {e}", f.name()))?;
        let go = |planned: bool| {
            let mut states = Vec::new();
            let mut rec = |x: &Tensor| states.push(x.clone());
            let mut n = FnDenoiser(net);
            let mut model = Model::new(&mut n, f, xt.view(), xt.view()).unwrap().with_hooks(Hooks { on_call: None, on_state: Some(&mut rec) });
            let mut z = PhiloxNoise::new(17);
            let out = if planned { run(&mut model, &p, &mut z) } else { sample(&mut model, s, nfe, &mut z) };
            let calls = model.calls();
            (out.unwrap_or_else(|e| panic!("{} {s:?} nfe {nfe} planned {planned}: {e}", f.name())), states, calls)
        };
        let (a, sa, ca) = go(false);
        let (b, sb, cb) = go(true);
        assert_eq!(ca, cb, "{} {s:?}: calls", f.name());
        assert_eq!(cb, p.calls(), "{} {s:?}: planned calls", f.name());
        Some(((a, sa), (b, sb)))
    }

    fn assert_same(f: &dyn Family, s: &Sampler, nfe: usize, lo: f32) {
        let ((a, sa), (b, sb)) = both(f, s, nfe, lo).unwrap_or_else(|| panic!("{} {s:?}: not planned", f.name()));
        assert_eq!(sa.len(), sb.len(), "{} {s:?} nfe {nfe}: recorded states", f.name());
        for (k, (x, y)) in sa.iter().zip(&sb).enumerate() {
            assert!(x == y, "{} {s:?} nfe {nfe}: state {k} differs", f.name());
        }
        assert!(a == b, "{} {s:?} nfe {nfe}: output differs", f.name());
        assert!(a.iter().all(|v| v.is_finite()));
    }

    /// Every planned sampler's plan, applied on the host, is the sampler itself — same output
    /// and same trajectory, compared with `==` (bit for bit up to the sign of zero) — on every
    /// family it supports, stochastic and deterministic, several NFEs.
    #[test]
    fn plans_replay_the_samplers_exactly() {
        let i2sb = I2sb::new(I2sbParams::default()).unwrap();
        let fams: Vec<(Box<dyn Family>, f32)> = vec![
            (Box::new(I2sb::new(I2sbParams { clip: true, ..Default::default() }).unwrap()), -0.9),
            (Box::new(Ddbm::new(DdbmParams::vp()).unwrap()), -0.9),
            (Box::new(Ddbm::new(DdbmParams::ve()).unwrap()), -0.9),
            (Box::new(Ddbm::new(DdbmParams::dbim_i2sb()).unwrap()), -0.9),
            (Box::new(Gou::new(GouParams::goub()).unwrap()), 0.05),
            (Box::new(Gou::new(GouParams::unidb(1e-7)).unwrap()), 0.05),
            (Box::new(Rdbm::new(RdbmParams::default()).unwrap()), -0.9),
            (Box::new(Nadb::new(NadbParams::default()).unwrap()), -0.9),
            (Box::new(Nadb::new(NadbParams { mean_network: false, ..Default::default() }).unwrap()), -0.9),
        ];
        for (f, lo) in &fams {
            for nfe in [1, 3, 6] {
                for eta in [0.0, 0.5, 1.0] {
                    assert_same(f.as_ref(), &Sampler::Implicit { eta }, nfe, *lo);
                    if nfe > 1 {
                        assert_same(f.as_ref(), &Sampler::Dbim { eta, order: 1 }, nfe, *lo);
                    }
                }
            }
        }
        for ot_ode in [false, true] {
            for nfe in [1, 4, 9] {
                assert_same(&i2sb, &Sampler::I2sb { ot_ode }, nfe, -0.9);
            }
        }
        for p in [NadbParams::default(), NadbParams { mean_network: false, ..Default::default() }] {
            let f = Nadb::new(p).unwrap();
            for nfe in [1, 2, 5] {
                assert_same(&f, &Sampler::Nadb, nfe, -0.9);
            }
        }
        for (obj, forms) in [(Objective::PredXStart, &[false, true][..]), (Objective::PredNoise, &[true][..])] {
            let f = Rdbm::new(RdbmParams { objective: obj, ..Default::default() }).unwrap();
            for &eps_form in forms {
                for nfe in [2, 3, 7] {
                    assert_same(&f, &Sampler::Rdbm { eps_form }, nfe, -0.9);
                }
            }
        }
        for gi in [0.0, 1e-7] {
            let f = Gou::new(if gi == 0.0 { GouParams::goub() } else { GouParams::unidb(gi) }).unwrap();
            for sde in [false, true] {
                assert_same(&f, &Sampler::Euler { sde }, 100, 0.05);
                for nfe in [1, 4, 9] {
                    assert_same(&f, &Sampler::DataSolver1 { sde }, nfe, 0.05);
                    assert_same(&f, &Sampler::NoiseSolver1 { sde }, nfe, 0.05);
                }
            }
        }
    }

    /// Samplers that are not rows, masked runs and residual-modulated RDBM are not planned;
    /// bad parameters are the sampler's typed errors.
    #[test]
    fn unplanned_and_errors() {
        let vp = Ddbm::new(DdbmParams::vp()).unwrap();
        for s in [Sampler::Heun { churn: 0.0 }, Sampler::Dbim { eta: 0.0, order: 2 }, Sampler::Dbim { eta: 0.0, order: 3 }] {
            assert_eq!(plan(&vp, &s, 5, false).unwrap(), None, "{s:?}");
        }
        let g = Gou::new(GouParams::unidb(1e-7)).unwrap();
        assert_eq!(plan(&g, &Sampler::DataSolver2 { sde: true }, 5, false).unwrap(), None);
        assert_eq!(plan(&vp, &Sampler::Implicit { eta: 0.0 }, 5, true).unwrap(), None);
        let r = Rdbm::new(RdbmParams { residual: Some(ResidualNoise { eta: 0.5 }), ..Default::default() }).unwrap();
        assert_eq!(plan(&r, &Sampler::Rdbm { eps_form: false }, 5, false).unwrap(), None);
        let r0 = Rdbm::new(RdbmParams { residual: Some(ResidualNoise { eta: 0.0 }), ..Default::default() }).unwrap();
        assert!(plan(&r0, &Sampler::Rdbm { eps_form: false }, 5, false).unwrap().is_some());
        assert!(matches!(plan(&vp, &Sampler::Implicit { eta: 2.0 }, 5, false), Err(Error::InvalidParam { .. })));
        assert!(matches!(plan(&vp, &Sampler::Implicit { eta: 0.0 }, 0, false), Err(Error::InvalidNfe { .. })));
        assert!(matches!(plan(&vp, &Sampler::I2sb { ot_ode: false }, 5, false), Err(Error::Incompatible { .. })));
        assert!(matches!(plan(&g, &Sampler::Euler { sde: true }, 10, false), Err(Error::InvalidNfe { .. })));
        assert!(matches!(plan(&g, &Sampler::DataSolver1 { sde: true }, 10, false), Err(Error::InvalidNfe { .. })));
        let rn = Rdbm::new(RdbmParams { objective: Objective::PredNoise, ..Default::default() }).unwrap();
        assert!(matches!(plan(&rn, &Sampler::Rdbm { eps_form: false }, 5, false), Err(Error::Incompatible { .. })));
        // The distilled generator runs on the host loop (its noise is a network input).
        assert_eq!(plan(&g, &Sampler::Distilled, 4, false).unwrap(), None);
    }

    /// Plans count calls and noisy steps as the samplers document.
    #[test]
    fn plan_shapes() {
        let g = Gou::new(GouParams::goub()).unwrap();
        let p = plan(&g, &Sampler::Implicit { eta: 1.0 }, 4, false).unwrap().unwrap();
        assert_eq!((p.steps.len(), p.calls(), p.noisy_steps()), (5, 4, 4));
        assert!(p.steps[0].call.is_none() && p.steps[4].noise.is_none());
        let p = plan(&g, &Sampler::Euler { sde: true }, 100, false).unwrap().unwrap();
        assert_eq!((p.steps.len(), p.calls(), p.noisy_steps()), (100, 99, 100));
        let p = plan(&g, &Sampler::DataSolver1 { sde: false }, 4, false).unwrap().unwrap();
        assert_eq!((p.calls(), p.noisy_steps(), p.order.clone()), (4, 0, vec![Source::XEnd, Source::X0]));
    }
}
