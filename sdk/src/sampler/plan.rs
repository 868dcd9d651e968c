//! Row plans: the one definition of every sampler whose steps are linear rows.
//!
//! Most samplers move the state with one fused update per step (see [`crate::step::update`]):
//!
//! ```text
//! x ← c_x·x + Σ_k a_k·src_k + c_z·s⊙z(draw),   src_k ∈ {x0̂, x_T, raw}
//! x0̂ = clamp(l_x·x + l_T·x_T + l_o·raw)         (the family's NetCall::x0, or x_T without a call)
//! ```
//!
//! with at most one network call per step, whose time and coefficients depend only on the
//! family, the grid and the step — never on the data. Such a sampler is *defined* by its plan
//! ([`plan`]): the network call of each step, how `x0̂` is read from it, the update's
//! coefficients in a fixed source order ([`Plan::order`]), the noise draw and its per-pixel
//! scale `s` (1, or RDBM's residual `|x0̂ − x_T|`, [`NoiseScale`]), and the inpainting rules of
//! a masked run ([`PlanStep::mask_x0`], [`PlanStep::reset`]). Each sampler's module builds its
//! rows (`implicit`, `dbim` order 1, `i2sb`, `i3sb`, `nadb`, `rdbm`, `euler` (with `pf-ode`), `unidbpp`'s
//! `data-solver-1`/`noise-solver-1`); two kernels apply them:
//!
//! * [`run`], on the host, through [`Model`] and [`crate::step::update`] — what
//!   [`super::sample`] does for every planned sampler;
//! * the device loop ([`crate::runtime::device`]), which applies the same rows in a small ONNX
//!   graph next to the network so the state never leaves the accelerator. It takes the plans
//!   that need nothing per pixel beyond the rows ([`Plan::host_only`]).
//!
//! A source with a zero coefficient adds `±0` in the device graph where the host skips it, so
//! one source order per sampler serves all its steps (the host result is unchanged; the device
//! result differs at most in the sign of an exact zero).
//!
//! Not planned — [`plan`] returns `Ok(None)` and [`super::sample`] runs their loops: `heun`,
//! `dbmsolver` and `noise-solver-2` (two calls per step), `dbim` orders 2 and 3 and `data-solver-2` (they
//! combine earlier `x0̂`), `distilled` (the generator's noise is a network input of its own,
//! drawn per call, which a row cannot feed). Samplers without inpainting rules (all but `implicit`, `dbim` and `i2sb`) ignore a
//! mask, as they always have.

use super::Model;
use super::implicit::keep_known;
use super::{Sampler, dbim, euler, i2sb, i3sb, implicit, nadb, rdbm, unidbpp};
use crate::family::rdbm::Rdbm;
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

/// How a step's noise is scaled per pixel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NoiseScale {
    /// Not at all: `c_z·z`.
    #[default]
    Uniform,
    /// By the estimated residual: `c_z·|x0̂ − x_T|⊙z` (RDBM's residual-modulated noise,
    /// [`Rdbm::modulation`]); the step forms `x0̂` for it.
    Residual,
}

/// Inpainting reset after a step's update: `x ← mask·x + (1 − mask)·known` with
/// `known = x_T + c·z(draw)` (`known = x_T` without noise).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reset {
    /// The known pixels' noise `(c, draw)`, if any.
    pub noise: Option<(f64, u64)>,
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
    /// Inpainting: `x0̂ ← mask·x0̂ + (1 − mask)·x_T` before the update (a masked run only).
    pub mask_x0: bool,
    /// Coefficient of the current state.
    pub c_x: f64,
    /// Coefficients of the sources, in [`Plan::order`].
    pub coefs: Vec<f64>,
    /// Noise `(c_z, draw)`, if the step adds any.
    pub noise: Option<(f64, u64)>,
    /// Per-pixel scale of the noise.
    pub noise_scale: NoiseScale,
    /// Inpainting: reset the known pixels after the update (a masked run only).
    pub reset: Option<Reset>,
    /// Whether the sampler reports the state after this step to the trajectory hook.
    pub record: bool,
}

impl PlanStep {
    /// The coefficient of `src` (0 if the plan's order lacks it).
    pub fn coef(&self, order: &[Source], src: Source) -> f64 {
        order.iter().zip(&self.coefs).filter(|(s, _)| **s == src).map(|(_, c)| *c).sum()
    }

    pub(super) fn set_noise(&mut self, c_z: f64, draw: u64) -> &mut Self {
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
    /// Built for a run with an inpainting mask ([`run`] checks the model has one, and only then).
    pub masked: bool,
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
    /// Why the plan needs the host kernel ([`run`]): per-pixel work the device step graph does
    /// not express (inpainting blends, residual-scaled noise); `None` if the rows say it all.
    pub fn host_only(&self) -> Option<&'static str> {
        if self.steps.iter().any(|s| s.mask_x0 || s.reset.is_some()) {
            return Some("inpainting masks are applied on the host");
        }
        if self.steps.iter().any(|s| s.noise_scale != NoiseScale::Uniform) {
            return Some("the noise is scaled per pixel (residual-modulated)");
        }
        None
    }
}

/// Builds a plan step by step (used by the samplers' modules).
pub(super) struct Builder<'f> {
    family: &'f dyn Family,
    order: Vec<Source>,
    /// The sampler forms `x0̂` from every call (so an undefined `x0̂` is its error).
    reads_x0: bool,
    masked: bool,
    steps: Vec<PlanStep>,
}

impl<'f> Builder<'f> {
    pub(super) fn new(family: &'f dyn Family, order: &[Source], reads_x0: bool, masked: bool) -> Self {
        Builder { family, order: order.to_vec(), reads_x0, masked, steps: Vec::new() }
    }

    /// A recorded step without noise; `coefs` in the builder's order.
    pub(super) fn step(&mut self, call: Option<NetCall>, c_x: f64, coefs: &[f64]) -> Result<&mut PlanStep> {
        let has = |src: Source| self.order.iter().zip(coefs).any(|(s, c)| *s == src && *c != 0.0);
        let (uses_x0, uses_raw) = (has(Source::X0), has(Source::Raw));
        let (x0, clamp) = match call {
            Some(c) if self.reads_x0 || uses_x0 => {
                let lin = self.x0_of(&c)?;
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
        self.steps.push(PlanStep {
            call,
            x0,
            clamp,
            mask_x0: false,
            c_x,
            coefs: coefs.to_vec(),
            noise: None,
            noise_scale: NoiseScale::Uniform,
            reset: None,
            record: true,
        });
        let last = self.steps.len() - 1;
        Ok(&mut self.steps[last])
    }

    /// `x0̂`'s linear form at `call`, or the sampler's error where the family leaves it undefined.
    pub(super) fn x0_of(&self, call: &NetCall) -> Result<Lin> {
        call.x0
            .ok_or_else(|| Error::incompatible("x0-prediction", self.family.name(), format!("x0̂ is undefined at t_net = {}", call.t_net)))
    }

    pub(super) fn finish(self, clamp: Option<(f32, f32)>) -> Plan {
        Plan { order: self.order, steps: self.steps, clamp, masked: self.masked }
    }
}

/// The plan of `sampler` with `nfe` evaluations on `family` (for a run with an inpainting mask
/// if `masked`), or `Ok(None)` if the sampler is not a row sampler (module docs). Errors are
/// those of the sampler (bad NFE, η, incompatible family), before any network call.
pub fn plan(family: &dyn Family, sampler: &Sampler, nfe: usize, masked: bool) -> Result<Option<Plan>> {
    if nfe == 0 {
        return Err(Error::nfe(0, "at least one network evaluation is needed"));
    }
    Ok(Some(match *sampler {
        Sampler::Implicit { eta } => implicit::plan(family, nfe, eta, masked)?,
        Sampler::Dbim { eta, order: 1 } => dbim::plan(family, nfe, eta, masked)?,
        Sampler::I2sb { ot_ode } => i2sb::plan(family, nfe, ot_ode, masked)?,
        Sampler::Nadb => nadb::plan(family, nfe, masked)?,
        Sampler::Rdbm { eps_form } => rdbm::plan(family, nfe, eps_form, masked)?,
        Sampler::Euler { sde } => euler::plan(family, nfe, if sde { euler::Drift::Sde } else { euler::Drift::MeanOde }, masked)?,
        Sampler::PfOde => euler::plan(family, nfe, euler::Drift::PfOde, masked)?,
        Sampler::DataSolver1 { sde } => unidbpp::data_solver_1(family, nfe, sde, masked)?,
        Sampler::NoiseSolver1 { sde } => unidbpp::noise_solver_1(family, nfe, sde, masked)?,
        Sampler::I3sb { eta, ot_ode } => i3sb::plan(family, nfe, eta, ot_ode, masked)?,
        _ => return Ok(None),
    }))
}

/// Apply a plan on the host (module docs). `noise` is the run's noise source (draw numbers are
/// the plan's); the model's mask must be there exactly when the plan was built for one.
pub fn run(model: &mut Model<'_>, plan: &Plan, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    if plan.order.is_empty() || plan.steps.iter().any(|s| s.coefs.len() != plan.order.len()) {
        return Err(Error::param("plan", "every step needs one coefficient per source"));
    }
    let x_end = model.x_end();
    let mask = model.mask();
    if plan.masked != mask.is_some() {
        return Err(Error::param("plan", "built for a run with an inpainting mask exactly when the model has one"));
    }
    let mut x = crate::alloc::try_copy(x_end, "the sampler state")?;
    for st in &plan.steps {
        let raw = match &st.call {
            Some(c) => Some(model.raw_with(&x, c)?),
            None => None,
        };
        let mut x0 = match (&raw, &st.call, st.x0) {
            (Some(r), Some(c), Some(lin)) => Some(model.x0_from_raw(&x, r, &NetCall { x0: Some(lin), clamp: st.clamp, ..*c })?),
            _ => None,
        };
        if let (true, Some(m)) = (st.mask_x0, mask) {
            let mut t = match x0.take() {
                Some(t) => t,
                None => crate::alloc::try_copy(x_end, "x0̂")?,
            };
            keep_known(&mut t, x_end, m)?;
            x0 = Some(t);
        }
        let scaled;
        let mut terms: Vec<Term<'_>> = Vec::with_capacity(plan.order.len() + 1);
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
        let z = match (st.noise, st.noise_scale) {
            (None, _) => None,
            (Some((coef, draw)), NoiseScale::Uniform) => Some(NoiseTerm { coef, draw, source: &mut *noise }),
            (Some((coef, draw)), NoiseScale::Residual) => {
                // An elementwise scale, which the update's scalar noise term cannot express.
                let x0 = x0.as_ref().ok_or_else(|| Error::param("plan", "residual-scaled noise needs the step's x0̂"))?;
                let mut z: Tensor = crate::alloc::try_zeros(x0.raw_dim(), "a noise tensor")?;
                noise.fill(draw, z.view_mut())?;
                let scale = Rdbm::modulation(x0.view(), x_end)?;
                z.zip_mut_with(&scale, |v, &s| *v *= s);
                scaled = z;
                terms.push(Term::new(coef, scaled.view()));
                None
            }
        };
        step::update(&mut x, st.c_x, &terms, z)?;
        if let (Some(r), Some(m)) = (st.reset, mask) {
            let mut known = crate::alloc::try_copy(x_end, "the known pixels")?;
            if let Some((coef, draw)) = r.noise {
                step::update(&mut known, 1.0, &[], Some(NoiseTerm { coef, draw, source: &mut *noise }))?;
            }
            keep_known(&mut x, known.view(), m)?;
        }
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
    use crate::PointMassOracle;
    use crate::family::ddbm::{Ddbm, DdbmParams};
    use crate::family::gou::{Gou, GouParams};
    use crate::family::i2sb::{I2sb, I2sbParams};
    use crate::family::rdbm::{Objective, RdbmParams, ResidualNoise};
    use crate::rng::PhiloxNoise;

    /// Samplers that are not rows are not planned; bad parameters are the sampler's typed errors.
    #[test]
    fn unplanned_and_errors() {
        let vp = Ddbm::new(DdbmParams::vp()).unwrap();
        for s in [Sampler::Heun { churn: 0.0 }, Sampler::Dbim { eta: 0.0, order: 2 }, Sampler::Dbim { eta: 0.0, order: 3 }] {
            assert_eq!(plan(&vp, &s, 5, false).unwrap(), None, "{s:?}");
        }
        let g = Gou::new(GouParams::unidb(1e-7)).unwrap();
        assert_eq!(plan(&g, &Sampler::DataSolver2 { sde: true }, 5, false).unwrap(), None);
        let r0 = Rdbm::new(RdbmParams { residual: Some(ResidualNoise { eta: 0.0 }), ..Default::default() }).unwrap();
        assert_eq!(plan(&r0, &Sampler::Rdbm { eps_form: false }, 5, false).unwrap().unwrap().host_only(), None);
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

    /// Inpainting rules and residual-scaled noise are step attributes; they keep the plan on
    /// the host, and a masked plan runs only with a mask (and an unmasked one only without).
    #[test]
    fn host_only_attributes() {
        let i2 = I2sb::new(I2sbParams::default()).unwrap();
        let p = plan(&i2, &Sampler::I2sb { ot_ode: false }, 4, true).unwrap().unwrap();
        // The masked start (draw 0, not recorded), then four steps with resets; the last step
        // draws no posterior noise, so its reset is draw 7.
        assert_eq!((p.steps.len(), p.calls(), p.steps[0].record), (5, 4, false));
        assert_eq!(p.steps[4].reset, Some(Reset { noise: Some((i2.std_sb(0.0), 7)) }));
        assert!(p.host_only().is_some());
        let plain = plan(&i2, &Sampler::I2sb { ot_ode: false }, 4, false).unwrap().unwrap();
        assert!(plain.host_only().is_none() && plain.steps.iter().all(|s| s.reset.is_none()));
        let vp = Ddbm::new(DdbmParams::vp()).unwrap();
        let p = plan(&vp, &Sampler::Dbim { eta: 0.5, order: 1 }, 4, true).unwrap().unwrap();
        assert!(p.steps.iter().all(|s| s.mask_x0) && p.host_only().is_some());
        let r = Rdbm::new(RdbmParams { residual: Some(ResidualNoise { eta: 0.5 }), ..Default::default() }).unwrap();
        let p = plan(&r, &Sampler::Rdbm { eps_form: true }, 5, false).unwrap().unwrap();
        assert!(p.steps.iter().any(|s| s.noise_scale == NoiseScale::Residual && s.x0.is_some()));
        assert!(p.host_only().is_some());
        // A mask-blind sampler's masked plan is its plain plan.
        let n = crate::family::nadb::Nadb::new(Default::default()).unwrap();
        let (a, b) = (plan(&n, &Sampler::Nadb, 3, true).unwrap().unwrap(), plan(&n, &Sampler::Nadb, 3, false).unwrap().unwrap());
        assert!(a.masked && !b.masked);
        assert_eq!(a.steps, b.steps);
        // The model's mask must match the plan.
        let xt = Tensor::zeros((1, 3, 4, 4));
        let mut oracle = PointMassOracle::new(xt.clone());
        let p = plan(&i2, &Sampler::I2sb { ot_ode: true }, 3, true).unwrap().unwrap();
        let mut model = Model::new(&mut oracle, &i2, xt.view(), xt.view()).unwrap();
        assert!(matches!(run(&mut model, &p, &mut PhiloxNoise::new(0)), Err(Error::InvalidParam { .. })));
    }
}
