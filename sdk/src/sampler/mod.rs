//! Samplers: small functions over a [`Model`] (the network seen through a family).
//!
//! Each sampler moves the state from `x_T` to `x0` on a grid, calling the network through
//! [`Model`] and applying updates with [`crate::step::update`]. Family-specific samplers
//! (Euler SDE for GOUB/UniDB, UniDB++'s solvers, DDBM Heun, …) downcast the family and return
//! [`Error::Incompatible`] for a family whose math they cannot use. The generic implicit step
//! ([`implicit`]) serves every family expressible as eq. (1).
//!
//! Every frame-sized tensor a sampler makes (its state, `x0̂`, network inputs, differences,
//! noise) is allocated fallibly — through [`crate::alloc`] or [`step::combine`] — so a refused
//! allocation ends the run with [`Error::OutOfMemory`] instead of aborting the process.

pub mod dbim;
pub mod dbmsolver;
pub mod distilled;
pub mod euler;
pub mod heun;
pub mod i2sb;
pub mod i3sb;
pub mod implicit;
pub mod nadb;
#[cfg(test)]
mod pinned;
pub mod plan;
pub mod rdbm;
pub mod unidbpp;

use crate::family::{Family, NetCall};
use crate::rng::NoiseSource;
use crate::step::{self, Term};
use crate::{Denoiser, Error, Result, Tensor, TensorView};

/// Which sampler to run, with its own knobs. NFE is passed separately (see [`sample`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Sampler {
    /// I2SB's DDPM-posterior sampler; `ot_ode` drops the noise (OT-ODE).
    I2sb { ot_ode: bool },
    /// DDBM's Heun sampler with a stochastic churn step of ratio `churn` (0 = pure ODE).
    Heun { churn: f64 },
    /// DBIM: `eta` ∈ [0, 1] (0 deterministic, 1 ancestral); `order` 1, 2 or 3 (high order: η = 0).
    Dbim { eta: f64, order: u8 },
    /// The generic implicit (DBIM/DDIM-type) step on the family's default grid, any family.
    Implicit { eta: f64 },
    /// GOUB/UniDB reverse SDE (`sde`) or Mean-ODE, every integer step.
    Euler { sde: bool },
    /// GOUB/UniDB probability-flow ODE (UniDB++'s `euler` + `pf-ode`), every integer step.
    PfOde,
    /// UniDB++ data-solver-1 (SDE or Mean-ODE).
    DataSolver1 { sde: bool },
    /// UniDB++ data-solver-2 (multistep, one `x0̂` of history).
    DataSolver2 { sde: bool },
    /// UniDB++ noise-solver-1 (exponential integrator in `ε`).
    NoiseSolver1 { sde: bool },
    /// UniDB++ noise-solver-2 (single-step second order in `ε`, `r = ½`, one intermediate call).
    NoiseSolver2 { sde: bool },
    /// RDBM's deterministic sampler; `eps_form` = the reference's `sampling_type = pred_noise`.
    Rdbm { eps_form: bool },
    /// NADB's posterior sampler with the family's threshold `d`.
    Nadb,
    /// IBMD's distilled generator, `k` = NFE steps.
    Distilled,
    /// DBMSolver for DDBM VP/VE checkpoints: midpoint rule and `sde_order` 1 or 2
    /// (NFE = 2N − 2 or 2N − 1, see [`dbmsolver`]).
    Dbmsolver { midpoint: dbmsolver::Midpoint, sde_order: u8 },
    /// I3SB for I2SB checkpoints: `eta ≥ 0` (> 1 reaches the clamp branch); `ot_ode` makes the
    /// first (I2SB posterior) step noise-free.
    I3sb { eta: f64, ot_ode: bool },
}

impl Sampler {
    /// The sampler's canonical name (as the CLI and model packages spell it), from the
    /// registry ([`crate::family::registry::SAMPLERS`]).
    pub fn name(&self) -> &'static str {
        crate::family::registry::sampler_name(self)
    }
}

/// `x_T` and the conditioning image must agree in batch, height and width (their channel
/// counts may differ). Checked by [`Model::new`] and the device loop.
pub(crate) fn check_cond(x_end: TensorView<'_>, cond: TensorView<'_>) -> Result<()> {
    let (e, c) = (x_end.shape(), cond.shape());
    if e[0] != c[0] || e[2] != c[2] || e[3] != c[3] {
        return Err(Error::shape("conditioning image (batch, height, width)", &[e[0], c[1], e[2], e[3]], c));
    }
    Ok(())
}

/// Run `sampler` for `nfe` network evaluations (each sampler documents how NFE maps to its
/// steps) and return the final state. A row sampler is its plan, applied on the host
/// ([`plan::plan`], [`plan::run`]); the others are loops.
pub fn sample(model: &mut Model<'_>, sampler: &Sampler, nfe: usize, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    if nfe == 0 {
        return Err(Error::nfe(0, "at least one network evaluation is needed"));
    }
    if let Some(p) = plan::plan(model.family(), sampler, nfe, model.mask().is_some())? {
        return plan::run(model, &p, noise);
    }
    match *sampler {
        Sampler::Heun { churn } => heun::sample(model, nfe, churn, noise),
        Sampler::Dbim { eta, order } => dbim::sample(model, nfe, eta, order, noise),
        Sampler::DataSolver2 { sde } => unidbpp::data_solver_2(model, nfe, sde, noise),
        Sampler::NoiseSolver2 { sde } => unidbpp::noise_solver_2(model, nfe, sde, noise),
        Sampler::Dbmsolver { midpoint, sde_order } => dbmsolver::sample(model, nfe, midpoint, sde_order, noise),
        Sampler::Distilled => distilled::sample(model, nfe, noise),
        ref s => Err(Error::param("sampler", format!("{s:?} has neither a plan nor a loop"))),
    }
}

/// Callbacks a run reports to.
#[derive(Default)]
pub struct Hooks<'a> {
    /// Called before every network evaluation with the number of evaluations so far;
    /// returning `false` cancels the run ([`Error::Cancelled`]).
    pub on_call: Option<&'a mut dyn FnMut(usize) -> bool>,
    /// Called with the state after every step (and sub-step, where the reference records
    /// one), in order; the golden replay uses it to compare whole trajectories.
    pub on_state: Option<&'a mut dyn FnMut(&Tensor)>,
}

/// The network seen through a family: what every sampler works with.
pub struct Model<'a> {
    net: &'a mut dyn Denoiser,
    family: &'a dyn Family,
    x_end: TensorView<'a>,
    cond: TensorView<'a>,
    mask: Option<TensorView<'a>>,
    gen_noise: usize,
    calls: usize,
    hooks: Hooks<'a>,
}

impl<'a> Model<'a> {
    /// `x_end` is the bridge endpoint `x_T` (where sampling starts); `cond` is what the network
    /// receives as its conditioning input (usually `x_T` itself). Both `[B, C, H, W]` with the
    /// same batch and spatial size.
    pub fn new(net: &'a mut dyn Denoiser, family: &'a dyn Family, x_end: TensorView<'a>, cond: TensorView<'a>) -> Result<Self> {
        check_cond(x_end, cond)?;
        if x_end.iter().any(|v| !v.is_finite()) || cond.iter().any(|v| !v.is_finite()) {
            return Err(Error::param("x_T", "input contains NaN or Inf"));
        }
        Ok(Model { net, family, x_end, cond, mask: None, gen_noise: 0, calls: 0, hooks: Hooks::default() })
    }

    /// Attach callbacks.
    pub fn with_hooks(mut self, hooks: Hooks<'a>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Inpainting: `mask` is 1 where pixels are generated and 0 where `x_T` is kept
    /// (shape of `x_T`, or broadcastable over channels as `[B, 1, H, W]`).
    pub fn with_mask(mut self, mask: TensorView<'a>) -> Result<Self> {
        let (m, e) = (mask.shape(), self.x_end.shape());
        if m[0] != e[0] || m[2] != e[2] || m[3] != e[3] || (m[1] != 1 && m[1] != e[1]) {
            return Err(Error::shape("inpainting mask", e, m));
        }
        self.mask = Some(mask);
        Ok(self)
    }

    /// A distilled generator's input noise: `channels` noise channels are drawn for every
    /// generator call and passed after the conditioning image's channels
    /// ([`Model::x0_generator`]; 0, the default: no noise input).
    pub fn with_generator_noise(mut self, channels: usize) -> Self {
        self.gen_noise = channels;
        self
    }

    /// The generator's noise channels (0: none).
    pub fn generator_noise(&self) -> usize {
        self.gen_noise
    }

    /// The family.
    pub fn family(&self) -> &'a dyn Family {
        self.family
    }

    /// The bridge endpoint `x_T`.
    pub fn x_end(&self) -> TensorView<'a> {
        self.x_end
    }

    /// The inpainting mask, if any.
    pub fn mask(&self) -> Option<TensorView<'a>> {
        self.mask
    }

    /// Network evaluations so far.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// Evaluate the network as `call` says (input scaling and time value), check the output.
    pub fn raw_with(&mut self, x: &Tensor, call: &NetCall) -> Result<Tensor> {
        self.raw_cond(x, call, self.cond)
    }

    /// [`Model::raw_with`] with another conditioning tensor (the generator's, with noise).
    fn raw_cond(&mut self, x: &Tensor, call: &NetCall, cond: TensorView<'_>) -> Result<Tensor> {
        if x.shape() != self.x_end.shape() {
            return Err(Error::shape("state", self.x_end.shape(), x.shape()));
        }
        if let Some(cb) = self.hooks.on_call.as_mut()
            && !cb(self.calls)
        {
            return Err(Error::Cancelled);
        }
        let out = if call.c_in == 1.0 {
            self.net.eval_call(x.view(), cond, call)?
        } else {
            let c = call.c_in as f32;
            let x_in = crate::alloc::try_map(x.view(), |&v| c * v, "the network input")?;
            self.net.eval_call(x_in.view(), cond, call)?
        };
        self.calls += 1;
        if out.shape() != x.shape() {
            return Err(Error::shape("network output", x.shape(), out.shape()));
        }
        if !step::all_finite(&out) {
            return Err(Error::NonFinite { call: self.calls, t_net: call.t_net });
        }
        Ok(out)
    }

    /// Raw network output at family time `t`.
    pub fn raw(&mut self, x: &Tensor, t: f64) -> Result<Tensor> {
        let call = self.family.net_call(t);
        self.raw_with(x, &call)
    }

    /// `x0̂` from a raw output, as `call` defines it (clamped where the family clamps).
    pub fn x0_from_raw(&self, x: &Tensor, raw: &Tensor, call: &NetCall) -> Result<Tensor> {
        let lin = call.x0.ok_or_else(|| {
            Error::incompatible("x0-prediction", self.family.name(), format!("x0̂ is undefined at t_net = {}", call.t_net))
        })?;
        let mut x0 =
            step::combine(x.shape(), &[Term::new(lin.x, x.view()), Term::new(lin.xt, self.x_end), Term::new(lin.out, raw.view())])?;
        if let Some((lo, hi)) = call.clamp {
            step::clamp(&mut x0, lo, hi);
        }
        Ok(x0)
    }

    /// The network's clean estimate `x0̂` at family time `t`.
    pub fn x0(&mut self, x: &Tensor, t: f64) -> Result<Tensor> {
        let call = self.family.net_call(t);
        let raw = self.raw_with(x, &call)?;
        self.x0_from_raw(x, &raw, &call)
    }

    /// A distilled generator's `x0̂` at family time `t`: with [`Model::generator_noise`]
    /// channels, noise tensor `draw` of `noise` (`[B, channels, H, W]`, drawn on the whole frame,
    /// so tiling does not change it) is appended to the conditioning image's channels;
    /// without, this is [`Model::x0`].
    pub fn x0_generator(&mut self, x: &Tensor, t: f64, draw: u64, noise: &mut dyn NoiseSource) -> Result<Tensor> {
        if self.gen_noise == 0 {
            return self.x0(x, t);
        }
        let (b, cc, h, w) = self.cond.dim();
        let channels = cc.checked_add(self.gen_noise).ok_or_else(|| Error::param("generator noise channels", "too many"))?;
        let mut cz: Tensor = crate::alloc::try_zeros((b, channels, h, w), "the generator's conditioning input")?;
        cz.slice_mut(ndarray::s![.., ..cc, .., ..]).assign(&self.cond);
        noise.fill(draw, cz.slice_mut(ndarray::s![.., cc.., .., ..]))?;
        let call = self.family.net_call(t);
        let raw = self.raw_cond(x, &call, cz.view())?;
        self.x0_from_raw(x, &raw, &call)
    }

    /// Report a state to the trajectory hook.
    pub fn record(&mut self, x: &Tensor) {
        if let Some(cb) = self.hooks.on_state.as_mut() {
            cb(x);
        }
    }
}

/// Test fixtures shared by the samplers' tests.
#[cfg(test)]
pub(crate) mod testing {
    use crate::Tensor;

    /// A clean image `x0` in [−0.8, 0.7] and an endpoint `x_T` in [−0.6, 0.6], `[batch, 3, 4, 4]`
    /// (the images of batch index `b` differ).
    pub fn images(batch: usize) -> (Tensor, Tensor) {
        let x0 = Tensor::from_shape_fn((batch, 3, 4, 4), |(b, c, y, x)| ((b + c * 5 + y * 3 + x) % 7) as f32 * 0.25 - 0.8);
        let xt = Tensor::from_shape_fn((batch, 3, 4, 4), |(b, c, y, x)| ((b * 2 + c + y * 2 + x) % 5) as f32 * 0.3 - 0.6);
        (x0, xt)
    }

    /// Max |a − b| over all elements.
    pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
    }
}
