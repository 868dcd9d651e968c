//! Families: schedules, marginals and parameterizations, all in `f64`.
//!
//! A family knows nothing about samplers. It answers four questions about its time axis
//! (the family's own: integer steps for I2SB/GOUB/RDBM/NADB, σ or t for DDBM/DBIM):
//! the marginal `(a, b, c)` of eq. (1), how the network is called and read at `t`
//! ([`NetCall`]), the default grid for an NFE, and — where the bridge is Markov — the
//! ancestral (posterior) ratio used by stochastic implicit steps.

pub mod ddbm;
pub mod gou;
pub mod i2sb;
pub mod nadb;
pub mod rdbm;
pub mod registry;

use crate::Result;
use std::any::Any;
use std::fmt;

/// Coefficients of eq. (1) at one time: `x_t = x0·x0 + xt·x_T + std·z`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Marginal {
    /// Coefficient of the clean image `x0`.
    pub x0: f64,
    /// Coefficient of the degraded endpoint `x_T`.
    pub xt: f64,
    /// Standard deviation of the noise.
    pub std: f64,
}

/// A linear form `x·x_t + xt·x_T + out·raw` over the state, the endpoint and the raw output.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Lin {
    /// Coefficient of the current state `x_t`.
    pub x: f64,
    /// Coefficient of the endpoint `x_T`.
    pub xt: f64,
    /// Coefficient of the network's raw output.
    pub out: f64,
}

/// How the network is called at time `t`, and how its raw output becomes `x0̂`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetCall {
    /// The family time of this call.
    pub t: f64,
    /// The scalar time value fed to the network (the reference's `t_net`).
    pub t_net: f64,
    /// Input scaling: the network receives `c_in·x_t` (1 except for DDBM/DBIM preconditioning).
    pub c_in: f64,
    /// `x0̂ = clamp(x0.x·x_t + x0.xt·x_T + x0.out·raw)`; `None` where `x0̂` is undefined
    /// (e.g. GOUB/UniDB at `t = T`, where `a_t = 0`).
    pub x0: Option<Lin>,
    /// Clamp applied to `x0̂`, where the reference clamps.
    pub clamp: Option<(f32, f32)>,
    /// The raw output is the noise `ε` of eq. (1) itself (noise-predicting networks).
    pub raw_is_eps: bool,
}

/// A bridge family (see the module docs).
pub trait Family: Send + Sync + fmt::Debug + Any {
    /// Short name, e.g. `"i2sb"`, `"ddbm-vp"`, `"goub"`.
    fn name(&self) -> &'static str;

    /// The marginal of eq. (1) at time `t`.
    fn marginal(&self, t: f64) -> Marginal;

    /// How the network is called and read at time `t`.
    fn net_call(&self, t: f64) -> NetCall;

    /// The default descending grid for `nfe` network evaluations: `nfe + 1` times from the top
    /// (where sampling starts) to the clean end. Errors if `nfe` is 0 or beyond the grid.
    ///
    /// Start convention of the generic samplers (implicit, DBIM; `sampler::implicit`): sampling
    /// starts from the state `x_T` at `grid[0]`. If the top marginal is exactly `x_T`
    /// (`x0 = 0, xt = 1, std = 0`) that state *is* the marginal and the first step starts from
    /// it; otherwise (I2SB's top index, DBIM's I2SB schedule, UniDB's soft endpoint) it is
    /// bootstrapped as DBIM does: `x0̂ = D(x_T, grid[0])`, then `x = eq. (1)(x0̂, x_T, grid[1])`
    /// with fresh noise. Both are one rule — the first step keeps nothing of the state (ρ = 0:
    /// never divide by a top std, which is 0 for GOUB/RDBM/NADB) — and where `x0̂` is undefined
    /// at the top (`net_call(grid[0]).x0 == None`) it is `x_T` there, without a network call.
    fn grid(&self, nfe: usize) -> Result<Vec<f64>>;

    /// The kept-state ratio `ρ` of the exact posterior `q(x_s | x_t, x0)` (s < t), where the
    /// bridge is Markov; `None` where the family defines no such posterior.
    fn ancestral_ratio(&self, _t: f64, _s: f64) -> Option<f64> {
        None
    }

    /// How the family calls its *mean network* — the network that maps the degraded input to
    /// the bridge endpoint (`x_T = M(x1)`, evaluated on `x1` with `x1` as its conditioning) —
    /// where the family defines that call itself (NADB: index 1); `None` where a package's own
    /// `bridge.mean_network.t_net` says. Only the call's `t_net` is used: the output is `x_T`.
    fn mean_network_call(&self) -> Option<NetCall> {
        None
    }

    /// For downcasting in family-specific samplers.
    fn as_any(&self) -> &dyn Any;
}

impl dyn Family {
    /// The concrete family, if it is a `F`.
    pub fn downcast<F: Family>(&self) -> Option<&F> {
        self.as_any().downcast_ref::<F>()
    }
}
