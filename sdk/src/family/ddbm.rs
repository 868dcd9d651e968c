//! DDBM bridges (alexzhou907/DDBM @1a92834, `ddbm/karras_diffusion.py`) and the noise
//! schedules DBIM samples them with (thu-ml/DiffusionBridge @9252273: `VPNoiseSchedule`,
//! `VENoiseSchedule`, `I2SBNoiseSchedule`, `DDBMPreCond`, `I2SBPreCond`).
//!
//! Every schedule is written as DBIM does, through `α_t` (signal scale), `ρ_t` (noise-to-signal
//! ratio) and `ρ̄_t`:
//!
//! ```text
//! x_t = ᾱ_t ρ_t²/ρ_T²·x_T + α_t ρ̄_t²/ρ_T²·x0 + α_t ρ̄_t ρ_t/ρ_T·z,     ᾱ_t = α_t/α_T
//! ```
//!
//! * **VP** (β_d 2, β_min 0.1, t ∈ [1e-4, 1]): `α_t = e^{−β_min t/2 − β_d t²/4}`,
//!   `ρ_t = √(e^{β_min t + β_d t²/2} − 1)` (computed with `expm1`, so near `t_min` nothing
//!   cancels — DDBM's float32 code loses digits there; the golden VP tolerance allows for it),
//!   `ρ̄_t = √(ρ_T² − ρ_t²)`. This is DDBM's `vp_logsnr`/`vp_logs` marginal exactly.
//! * **VE** (σ_max 80, t = σ ∈ [0.002, 80]): `α = 1`, `ρ_t = t`, `ρ_T = σ_max`.
//! * **I2SB** (DBIM's variant: β_min 0.1, β_max 1.0, N = 1000): `ρ_t = σ_f[n]`,
//!   `ρ̄_t = σ_b[n]` at `n = round((N − 1)·t)` (half to even, as torch's `round`), `α = 1`.
//!
//! Preconditioning: DDBM's `get_bridge_scalings` ([`bridge_scalings`], generic in the marginal
//! and in `σ_data`, `σ_data_end`, `cov_xy`, `c`; the references fix `σ_data_end = σ_data`,
//! `c = 1`; defaults σ_data 0.5, cov_xy 0), with `c_noise = 1000·¼·log(t + 1e-44)`; or, for the I2SB schedule, I2SB's own
//! (`x0̂ = x_t − ρ_t·out`, `c_noise = noise_levels[n]`). `x0̂` is clamped to [−1, 1] with
//! `clip_denoised`.

use super::i2sb::{std_fwd_bwd, symmetric_betas, torch_linspace_f32_at as linspace_f32_at};
use super::{Family, Lin, Marginal, NetCall};
use crate::{Error, Result};
use std::any::Any;

/// The noise schedule of a DDBM/DBIM bridge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// Variance preserving: `β_d`, `β_min` (2, 0.1); `t ∈ [t_min, 1]`.
    Vp { beta_d: f64, beta_min: f64 },
    /// Variance exploding: `σ_max` (80); `t = σ ∈ [t_min, σ_max]`.
    Ve { sigma_max: f64 },
    /// DBIM's I2SB schedule: `n_timestep` (1000), `β_min` (0.1), `β_max` (1.0); `t ∈ [0, 1]`.
    I2sb { n_timestep: usize, beta_min: f64, beta_max: f64 },
}

/// How the network is called and read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Precond {
    /// DDBM's bridge scalings with `σ_data` (0.5) and `cov_xy` (0).
    Ddbm { sigma_data: f64, cov_xy: f64 },
    /// I2SB's parameterization on the I2SB schedule: network time table `linspace(t0, T, N)·N`.
    I2sb { t0: f64, t_end: f64 },
}

/// DDBM/DBIM family parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DdbmParams {
    /// The schedule.
    pub schedule: Schedule,
    /// The parameterization.
    pub precond: Precond,
    /// Smallest time sampled (`sigma_min` / `t_min`).
    pub t_min: f64,
    /// Largest time (`sigma_max` / `t_max`), where `x_t = x_T`.
    pub t_max: f64,
    /// Clamp `x0̂` to [−1, 1] (`clip_denoised`).
    pub clip: bool,
}

impl DdbmParams {
    /// DDBM-VP defaults (β_d 2, β_min 0.1, t ∈ [1e-4, 1], σ_data 0.5, clipped).
    pub fn vp() -> Self {
        DdbmParams {
            schedule: Schedule::Vp { beta_d: 2.0, beta_min: 0.1 },
            precond: Precond::Ddbm { sigma_data: 0.5, cov_xy: 0.0 },
            t_min: 1e-4,
            t_max: 1.0,
            clip: true,
        }
    }
    /// DDBM-VE defaults (σ ∈ [0.002, 80], σ_data 0.5, clipped).
    pub fn ve() -> Self {
        DdbmParams {
            schedule: Schedule::Ve { sigma_max: 80.0 },
            precond: Precond::Ddbm { sigma_data: 0.5, cov_xy: 0.0 },
            t_min: 0.002,
            t_max: 80.0,
            clip: true,
        }
    }
    /// DBIM's I2SB defaults (N 1000, β ∈ [0.1, 1.0], t ∈ [1e-4, 1], I2SB parameterization).
    pub fn dbim_i2sb() -> Self {
        DdbmParams {
            schedule: Schedule::I2sb { n_timestep: 1000, beta_min: 0.1, beta_max: 1.0 },
            precond: Precond::I2sb { t0: 1e-4, t_end: 1.0 },
            t_min: 1e-4,
            t_max: 1.0,
            clip: true,
        }
    }
}

/// `(α_t, ᾱ_t, ρ_t, ρ̄_t)` of DBIM's `get_alpha_rho`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlphaRho {
    /// `α_t`, the signal scale.
    pub alpha: f64,
    /// `ᾱ_t = α_t/α_T`.
    pub alpha_bar: f64,
    /// `ρ_t`, the noise-to-signal ratio from the clean end.
    pub rho: f64,
    /// `ρ̄_t` (`√(ρ_T² − ρ_t²)` for VP/VE; `σ_b` on the I2SB schedule).
    pub rho_bar: f64,
}

/// A DDBM/DBIM bridge family (module docs). Time is `t` (VP, I2SB) or `σ` (VE).
#[derive(Clone, Debug)]
pub struct Ddbm {
    p: DdbmParams,
    /// `(σ_f, σ_b)` for the I2SB schedule.
    table: Option<(Vec<f64>, Vec<f64>)>,
    /// I2SB network time table.
    noise_levels: Vec<f64>,
    alpha_t: f64,
    rho_t: f64,
}

impl Ddbm {
    /// Build the family; validates the parameters.
    pub fn new(p: DdbmParams) -> Result<Self> {
        let finite_pos = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 { Ok(()) } else { Err(Error::param(name, format!("{v} must be finite and > 0"))) }
        };
        finite_pos("t_max", p.t_max)?;
        if !(p.t_min.is_finite() && p.t_min >= 0.0 && p.t_min < p.t_max) {
            return Err(Error::param("t_min", format!("need 0 ≤ t_min < t_max, got {} and {}", p.t_min, p.t_max)));
        }
        let (mut table, mut noise_levels) = (None, Vec::new());
        match p.schedule {
            Schedule::Vp { beta_d, beta_min } => {
                if !(beta_d.is_finite() && beta_min.is_finite() && beta_d >= 0.0 && beta_min > 0.0) {
                    return Err(Error::param("beta_d/beta_min", "must be finite, β_d ≥ 0, β_min > 0"));
                }
                // Both references normalize the VP bridge by its value at T = 1 (`vp_logsnr(1, …)`,
                // `rho_fn(1)`): beyond 1 the marginal's variance would be negative.
                if p.t_max > 1.0 {
                    return Err(Error::param("t_max", format!("{} exceeds the VP schedule's T = 1", p.t_max)));
                }
            }
            Schedule::Ve { sigma_max } => {
                finite_pos("sigma_max", sigma_max)?;
                if p.t_max > sigma_max {
                    return Err(Error::param("t_max", format!("{} exceeds σ_max {sigma_max}", p.t_max)));
                }
            }
            Schedule::I2sb { n_timestep, beta_min, beta_max } => {
                if !(2..=1_000_000).contains(&n_timestep) || !n_timestep.is_multiple_of(2) {
                    return Err(Error::param("n_timestep", format!("{n_timestep} must be even and in 2..=1000000")));
                }
                finite_pos("beta_min", beta_min)?;
                finite_pos("beta_max", beta_max)?;
                if p.t_max > 1.0 {
                    return Err(Error::param("t_max", "the I2SB schedule lives on t ∈ [0, 1]"));
                }
                let n = n_timestep as f64;
                table = Some(std_fwd_bwd(&symmetric_betas(n_timestep, beta_min / n, beta_max / n)));
            }
        }
        match (p.precond, p.schedule) {
            (Precond::Ddbm { sigma_data, cov_xy }, _) => {
                finite_pos("sigma_data", sigma_data)?;
                if !(cov_xy.is_finite() && cov_xy.abs() < sigma_data * sigma_data) {
                    return Err(Error::param("cov_xy", "must be finite with |cov_xy| < σ_data²"));
                }
            }
            (Precond::I2sb { t0, t_end }, Schedule::I2sb { n_timestep, .. }) => {
                noise_levels = (0..n_timestep).map(|i| (linspace_f32_at(t0, t_end, n_timestep, i) * n_timestep as f32) as f64).collect();
            }
            (Precond::I2sb { .. }, _) => {
                return Err(Error::param("precond", "the I2SB parameterization needs the I2SB schedule"));
            }
        }
        let mut f = Ddbm { p, table, noise_levels, alpha_t: 1.0, rho_t: 1.0 };
        let top = f.raw_alpha_rho(match p.schedule {
            Schedule::Vp { .. } | Schedule::I2sb { .. } => 1.0,
            Schedule::Ve { sigma_max } => sigma_max,
        });
        (f.alpha_t, f.rho_t) = (top.0, top.1);
        Ok(f)
    }

    /// The parameters.
    pub fn params(&self) -> &DdbmParams {
        &self.p
    }
    /// `t_min`.
    pub fn t_min(&self) -> f64 {
        self.p.t_min
    }
    /// `t_max`.
    pub fn t_max(&self) -> f64 {
        self.p.t_max
    }

    /// I2SB-schedule index of `t`: `round((N − 1)·t)`, half to even, clamped.
    fn index(&self, t: f64, n: usize) -> usize {
        // The reference multiplies the float32 time tensor: float32 product, then torch's round.
        let i = ((n - 1) as f32 * t as f32).round_ties_even();
        if i.is_nan() { 0 } else { (i.max(0.0) as usize).min(n - 1) }
    }

    /// `(α_t, ρ_t)` before normalization by the top.
    fn raw_alpha_rho(&self, t: f64) -> (f64, f64) {
        match self.p.schedule {
            Schedule::Vp { beta_d, beta_min } => {
                let e = beta_min * t + 0.5 * beta_d * t * t;
                ((-0.5 * e).exp(), e.exp_m1().max(0.0).sqrt())
            }
            Schedule::Ve { .. } => (1.0, t),
            Schedule::I2sb { n_timestep, .. } => {
                let (fwd, _) = self.table.as_ref().expect("I2SB table built in new()");
                (1.0, fwd[self.index(t, n_timestep)])
            }
        }
    }

    /// DBIM's `get_alpha_rho(t)`.
    pub fn alpha_rho(&self, t: f64) -> AlphaRho {
        let (alpha, rho) = self.raw_alpha_rho(t);
        let rho_bar = match self.p.schedule {
            Schedule::I2sb { n_timestep, .. } => self.table.as_ref().expect("table").1[self.index(t, n_timestep)],
            // ρ_T² − ρ_t² = e^{q_t}·(e^{q_T − q_t} − 1), q(t) = β_min t + β_d t²/2, with
            // q_T − q_t = (1 − t)(β_min + β_d(1 + t)/2): no cancellation near the top (Heun
            // starts at t_max − 1e-4, DBIM at t_max − 1e-3).
            Schedule::Vp { beta_d, beta_min } => {
                let q_t = beta_min * t + 0.5 * beta_d * t * t;
                let dq = (1.0 - t) * (beta_min + 0.5 * beta_d * (1.0 + t));
                (q_t.exp() * dq.exp_m1()).max(0.0).sqrt()
            }
            Schedule::Ve { sigma_max } => ((sigma_max - rho) * (sigma_max + rho)).max(0.0).sqrt(),
        };
        AlphaRho { alpha, alpha_bar: alpha / self.alpha_t, rho, rho_bar }
    }

    /// `ρ_T` (the ratio at the top of the schedule).
    pub fn rho_top(&self) -> f64 {
        self.rho_t
    }

    /// The VP schedule's `(β_d, β_min)`, if VP.
    pub fn vp_betas(&self) -> Option<(f64, f64)> {
        match self.p.schedule {
            Schedule::Vp { beta_d, beta_min } => Some((beta_d, beta_min)),
            _ => None,
        }
    }

    /// The VE schedule's `σ_max`, if VE.
    pub fn ve_sigma_max(&self) -> Option<f64> {
        match self.p.schedule {
            Schedule::Ve { sigma_max } => Some(sigma_max),
            _ => None,
        }
    }

    /// DBMSolver's log-time `ℓ_t = −log ρ_t` (the code's "lambda"; not a log-SNR), VP/VE only;
    /// `+∞` at `t = 0`.
    pub fn log_time(&self, t: f64) -> f64 {
        -self.alpha_rho(t).rho.ln()
    }

    /// The inverse of [`Ddbm::log_time`] (`get_timestep_from_lambda`): VP
    /// `(−β_min + √(β_min² + 2β_d·log(1 + e^{−2ℓ})))/β_d` (`log(1 + ρ²)` is exactly
    /// `β_min t + β_d t²/2`, so this solves that quadratic), VE `e^{−ℓ}`. `None` on the I2SB
    /// schedule, whose time is a table index (DBMSolver's reference has no inverse there either).
    pub fn time_of_log_time(&self, l: f64) -> Option<f64> {
        match self.p.schedule {
            Schedule::Vp { beta_d, beta_min } => {
                let q = (-2.0 * l).exp().ln_1p();
                if beta_d == 0.0 {
                    return Some(q / beta_min);
                }
                Some((-beta_min + (beta_min * beta_min + 2.0 * beta_d * q).sqrt()) / beta_d)
            }
            Schedule::Ve { .. } => Some((-l).exp()),
            Schedule::I2sb { .. } => None,
        }
    }

    /// `q_t = √(ρ_T²/ρ_t² − 1) = ρ̄_t/ρ_t` (DBMSolver's `cf` ratios are `q_u/q_s`).
    pub fn q_ratio(&self, t: f64) -> f64 {
        let ar = self.alpha_rho(t);
        ar.rho_bar / ar.rho
    }

    /// Drift and squared diffusion `(f(t), g²(t))` of the forward SDE (`get_f_g2`): VP
    /// `(−½(β_min + β_d t), β_min + β_d t)`, VE `(0, 2t)`; `None` on the I2SB schedule.
    pub fn f_g2(&self, t: f64) -> Option<(f64, f64)> {
        match self.p.schedule {
            Schedule::Vp { beta_d, beta_min } => {
                let b = beta_min + beta_d * t;
                Some((-0.5 * b, b))
            }
            Schedule::Ve { .. } => Some((0.0, 2.0 * t)),
            Schedule::I2sb { .. } => None,
        }
    }

    /// Whether time is continuous (VP/VE) rather than a discrete table (I2SB).
    pub fn is_continuous(&self) -> bool {
        !matches!(self.p.schedule, Schedule::I2sb { .. })
    }

    /// DBIM's uniform grid: `[t_max] ++ linspace(t_max − 1e-3, t_min, steps + 1)` — the first
    /// entry is the bootstrap evaluation at `t_max` (where `x_t = x_T`). The linspace is
    /// float32, as the reference's `torch.linspace`: near `t_max` of a VE bridge the marginal is
    /// so sensitive to `t` that only the same float32 grid reproduces its trajectories.
    pub fn uniform_grid(&self, steps: usize) -> Vec<f64> {
        let (a, b) = (self.p.t_max - 1e-3, self.p.t_min);
        let mut g = vec![self.p.t_max];
        g.extend((0..=steps).map(|i| linspace_f32_at(a, b, steps + 1, i) as f64));
        g
    }

    /// Karras et al.'s grid for DDBM's Heun sampler: `n` points from `t_max − 1e-4` down to
    /// `t_min` with exponent `rho`, then 0 — in float32 as `get_sigmas_karras` forms it
    /// (float32 ramp, `σ = (max^{1/ρ} + ramp·(min^{1/ρ} − max^{1/ρ}))^ρ`), for the reason given
    /// at [`Ddbm::uniform_grid`].
    pub fn karras_grid(&self, n: usize, rho: f64) -> Vec<f64> {
        let lo = self.p.t_min.powf(1.0 / rho);
        let hi = (self.p.t_max - 1e-4).powf(1.0 / rho);
        let mut g: Vec<f64> = (0..n)
            .map(|i| {
                let ramp = linspace_f32_at(0.0, 1.0, n, i);
                let v = hi as f32 + ramp * (lo - hi) as f32;
                (v as f64).powf(rho) as f32 as f64
            })
            .collect();
        g.push(0.0);
        g
    }
}

impl Family for Ddbm {
    fn name(&self) -> &'static str {
        match self.p.schedule {
            Schedule::Vp { .. } => "ddbm-vp",
            Schedule::Ve { .. } => "ddbm-ve",
            Schedule::I2sb { .. } => "dbim-i2sb",
        }
    }

    /// DBIM's `get_abc`: `a` (x_T) = `ᾱρ²/ρ_T²`, `b` (x0) = `αρ̄²/ρ_T²`, `c` = `αρ̄ρ/ρ_T`.
    /// At `t = 0` (VP/VE) the marginal is the clean image.
    fn marginal(&self, t: f64) -> Marginal {
        if t <= 0.0 && self.is_continuous() {
            return Marginal { x0: 1.0, xt: 0.0, std: 0.0 };
        }
        let ar = self.alpha_rho(t);
        let rt = self.rho_t;
        Marginal {
            x0: ar.alpha * ar.rho_bar * ar.rho_bar / (rt * rt),
            xt: ar.alpha_bar * ar.rho * ar.rho / (rt * rt),
            std: ar.alpha * ar.rho_bar * ar.rho / rt,
        }
    }

    fn net_call(&self, t: f64) -> NetCall {
        let clamp = self.p.clip.then_some((-1.0, 1.0));
        match self.p.precond {
            Precond::Ddbm { sigma_data, cov_xy } => {
                // The reference fixes σ_data_end = σ_data and c = 1.
                let (c_skip, c_out, c_in) = bridge_scalings(self.marginal(t), sigma_data, sigma_data, cov_xy, 1.0);
                NetCall {
                    t,
                    t_net: 1000.0 * 0.25 * (t + 1e-44).ln(),
                    c_in,
                    x0: Some(Lin { x: c_skip, xt: 0.0, out: c_out }),
                    clamp,
                    raw_is_eps: false,
                }
            }
            Precond::I2sb { .. } => {
                let n = match self.p.schedule {
                    Schedule::I2sb { n_timestep, .. } => self.index(t, n_timestep),
                    _ => 0,
                };
                NetCall {
                    t,
                    t_net: self.noise_levels.get(n).copied().unwrap_or(0.0),
                    c_in: 1.0,
                    x0: Some(Lin { x: 1.0, xt: 0.0, out: -self.alpha_rho(t).rho }),
                    clamp,
                    raw_is_eps: false,
                }
            }
        }
    }

    /// DBIM's grid for `nfe` evaluations: the bootstrap at `t_max`, then
    /// `linspace(t_max − 1e-3, t_min, nfe)` (for `nfe = 1`: `[t_max, t_min]`).
    fn grid(&self, nfe: usize) -> Result<Vec<f64>> {
        match nfe {
            0 => Err(Error::nfe(0, "at least one network evaluation is needed")),
            1 => Ok(vec![self.p.t_max, self.p.t_min]),
            n if n > 100_000 => Err(Error::nfe(n, "more than 100000 steps")),
            n => {
                let g = self.uniform_grid(n - 1);
                // On the discrete I2SB schedule consecutive times must hit distinct indices.
                if let Schedule::I2sb { n_timestep, .. } = self.p.schedule {
                    let idx: Vec<usize> = g.iter().map(|&t| self.index(t, n_timestep)).collect();
                    if idx.windows(2).any(|w| w[0] <= w[1]) {
                        return Err(Error::nfe(n, format!("DBIM's I2SB schedule has {n_timestep} indices: the grid repeats one")));
                    }
                }
                Ok(g)
            }
        }
    }

    /// The ancestral (η = 1) kept ratio of DBIM: `√(c_s² − ω²)/c_t` with
    /// `ω = α_s ρ_s √(1 − ρ_s²/ρ_t²)` (s < t).
    fn ancestral_ratio(&self, t: f64, s: f64) -> Option<f64> {
        let (mt, ms) = (self.marginal(t), self.marginal(s));
        if mt.std <= 0.0 {
            return Some(0.0);
        }
        let omega = dbim_omega(self, t, s);
        Some((ms.std * ms.std - omega * omega).max(0.0).sqrt() / mt.std)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A drift `d = x·x + dd·(x0̂ − x) + dt·(x_T − x)`, and the squared diffusion `g²`.
///
/// Written on the differences `x0̂ − x` and `x_T − x` because near `t_max` the `x_T` pull has
/// a huge coefficient (`1/(σ_max² − σ²)`) that multiplies a near-zero difference: formed as
/// separate `x` and `x_T` terms it would cancel catastrophically in `f32`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Drift {
    /// Coefficient of the state `x`.
    pub x: f64,
    /// Coefficient of `x0̂ − x`.
    pub dd: f64,
    /// Coefficient of `x_T − x`.
    pub dt: f64,
    /// The squared diffusion coefficient `g²` (churn noise `√(|dt|·g²)`).
    pub g2: f64,
}

impl Ddbm {
    /// DDBM's drift at `σ` (`stochastic`: the churn SDE's drift; else the probability-flow
    /// ODE's), guidance `w = 1` (`to_d`, `get_d_vp`; used by the Heun sampler).
    pub fn drift(&self, sigma: f64, stochastic: bool) -> Result<Drift> {
        let w = 1.0;
        let k = if stochastic { 1.0 } else { 0.5 };
        if let Some(sigma_max) = self.ve_sigma_max() {
            // to_d: grad_pxtlx0 = (x0̂ − x)/σ², grad_pxTlxt = (x_T − x)/(σ_max² − σ²), g² = 2σ;
            // ODE d = −½g²(grad_pxtlx0 − w·grad_pxTlxt); SDE d = −g²·grad_pxtlx0.
            let (s2, g2) = (sigma * sigma, 2.0 * sigma);
            let dt = if stochastic { 0.0 } else { k * g2 * w / (sigma_max * sigma_max - s2) };
            return Ok(Drift { x: 0.0, dd: -k * g2 / s2, dt, g2 });
        }
        let (beta_d, beta_min) = self
            .vp_betas()
            .ok_or_else(|| Error::incompatible("ddbm drift", self.name(), "DDBM's drift is defined for the VE and VP schedules"))?;
        // get_d_vp in α–ρ form: σ̃ = ρ, σ̃' = ½(β_min + β_d t)(ρ + 1/ρ), s = α, s' = −ρσ̃'α³.
        // The bridge's end is the schedule's T = 1, which the family's marginal is normalized by
        // (the reference's `sigma_max` = t_max = 1).
        let (ar, top) = (self.alpha_rho(sigma), self.alpha_rho(1.0));
        let (alpha, rho) = (ar.alpha, ar.rho);
        let rho_d = 0.5 * (beta_min + beta_d * sigma) * (rho + 1.0 / rho);
        let s_d = -rho * rho_d * alpha.powi(3);
        let std2 = (alpha * rho).powi(2);
        let ratio = (rho / top.rho).powi(2); // e^{logsnr_T − logsnr_t}
        // −expm1(logsnr_T − logsnr_t) = ρ̄²/ρ_T² and expm1(logsnr_t − logsnr_T) = ρ̄²/ρ², from the
        // family's cancellation-free ρ̄ (1 − ratio would lose digits near t_max).
        let rbar2 = ar.rho_bar * ar.rho_bar;
        let rbar = rbar2 / (top.rho * top.rho);
        let e = rbar2 / (rho * rho);
        let (a, b) = (ratio * alpha / top.alpha, rbar * alpha);
        let beta = alpha / top.alpha;
        let g2 = 2.0 * alpha * alpha * rho * rho_d;
        // d = f − g²(k·grad_logq − w·grad_logpxTlxt), f = s'/α·x, with
        // grad_logq = −q(x − a x_T − b x0̂) = −q(1 − a − b)x + q a (x_T − x) + q b (x0̂ − x), q = 1/(std² r̄),
        // grad_logpxTlxt = −p(x − β x_T) = −p(1 − β)x + p β (x_T − x), p = 1/(std² e).
        let (q, p) = (1.0 / (std2 * rbar), 1.0 / (std2 * e));
        Ok(Drift {
            x: s_d / alpha + g2 * k * q * (1.0 - a - b) - g2 * w * p * (1.0 - beta),
            dd: -g2 * k * q * b,
            dt: -g2 * k * q * a + g2 * w * p * beta,
            g2,
        })
    }
}

/// DDBM's `get_bridge_scalings` for a marginal `x_t = b·x0 + a·x_T + c·z` (`m.x0 = b`,
/// `m.xt = a`, `m.std = c`): with `A = a²σ_e² + b²σ_d² + 2ab·cov + k²c²` (σ_d = `sigma_data`,
/// σ_e = `sigma_data_end`, cov = `cov_xy`, k = `c_scale`), returns
/// `(c_skip, c_out, c_in) = ((bσ_d² + a·cov)/A, √(a²(σ_e²σ_d² − cov²) + σ_d²k²c²)/√A, 1/√A)` — the
/// minimum-variance `x0̂ = c_skip·x_t + c_out·F(c_in·x_t)` for data of std σ_d and endpoints of
/// std σ_e with covariance cov (VE's and VP's formulas in the reference are this one).
pub fn bridge_scalings(m: Marginal, sigma_data: f64, sigma_data_end: f64, cov_xy: f64, c_scale: f64) -> (f64, f64, f64) {
    let (a, b, c) = (m.xt, m.x0, m.std);
    let (sd, se) = (sigma_data * sigma_data, sigma_data_end * sigma_data_end);
    let big_a = a * a * se + b * b * sd + 2.0 * a * b * cov_xy + c_scale * c_scale * c * c;
    let c_in = 1.0 / big_a.sqrt();
    let c_skip = (b * sd + a * cov_xy) / big_a;
    let c_out = (a * a * (se * sd - cov_xy * cov_xy) + sd * c_scale * c_scale * c * c).sqrt() * c_in;
    (c_skip, c_out, c_in)
}

/// DBIM's ancestral noise std for the step `t → s`: `α_s ρ_s √(1 − ρ_s²/ρ_t²)`.
pub fn dbim_omega(f: &Ddbm, t: f64, s: f64) -> f64 {
    let (at, as_) = (f.alpha_rho(t), f.alpha_rho(s));
    if at.rho <= 0.0 {
        return 0.0;
    }
    as_.alpha * as_.rho * (1.0 - (as_.rho * as_.rho) / (at.rho * at.rho)).max(0.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DDBM's VP marginal (`vp_logsnr`/`vp_logs` form) equals DBIM's α–ρ form.
    #[test]
    fn vp_marginal_matches_the_logsnr_form() {
        let f = Ddbm::new(DdbmParams::vp()).unwrap();
        let (bd, bm) = (2.0f64, 0.1f64);
        let logsnr = |t: f64| -((0.5 * bd * t * t + bm * t).exp() - 1.0).ln();
        let logs = |t: f64| -0.25 * t * t * bd - 0.5 * t * bm;
        for t in [0.05, 0.3, 0.7, 0.99] {
            let m = f.marginal(t);
            let a = (logsnr(1.0) - logsnr(t) + logs(t) - logs(1.0)).exp();
            let b = -(logsnr(1.0) - logsnr(t)).exp_m1() * logs(t).exp();
            let c2 = -(logsnr(1.0) - logsnr(t)).exp_m1() * (2.0 * logs(t) - logsnr(t)).exp();
            assert!((m.xt - a).abs() < 1e-12 && (m.x0 - b).abs() < 1e-12 && (m.std * m.std - c2).abs() < 1e-12, "t={t}");
        }
        let top = f.marginal(1.0);
        assert!(top.x0.abs() < 1e-12 && (top.xt - 1.0).abs() < 1e-12 && top.std.abs() < 1e-12);
    }

    #[test]
    fn ve_marginal_and_scalings() {
        let f = Ddbm::new(DdbmParams::ve()).unwrap();
        let s = 10.0;
        let m = f.marginal(s);
        let r = s * s / 6400.0;
        assert!((m.xt - r).abs() < 1e-12 && (m.x0 - (1.0 - r)).abs() < 1e-12);
        assert!((m.std - (s * s * (1.0 - r)).sqrt()).abs() < 1e-12);
        let call = f.net_call(s);
        // DDBM's VE get_bridge_scalings with σ_data 0.5, cov 0, c = 1.
        let big_a = r * r * 0.25 + (1.0 - r) * (1.0 - r) * 0.25 + s * s * (1.0 - r);
        assert!((call.c_in - big_a.powf(-0.5)).abs() < 1e-12);
        let lin = call.x0.unwrap();
        assert!((lin.x - (1.0 - r) * 0.25 / big_a).abs() < 1e-12);
        assert!((lin.out - ((r * r) * 0.0625 + 0.25 * s * s * (1.0 - r)).sqrt() / big_a.sqrt()).abs() < 1e-12);
        assert!((call.t_net - 250.0 * 10f64.ln()).abs() < 1e-9);
    }

    #[test]
    fn grids() {
        let f = Ddbm::new(DdbmParams::vp()).unwrap();
        // tests/golden/ddbm_vp_n10_*.json and ddbm_ve_n40_*.json `sigmas` (float32 in the
        // reference), bit for bit.
        let vp: [f64; 11] = [
            0.9998998641967773,
            0.552284300327301,
            0.2887125313282013,
            0.1412457376718521,
            0.0636984333395958,
            0.02593138813972473,
            0.009245450608432293,
            0.0027570563834160566,
            0.0006378973484970629,
            9.999989561038092e-05,
            0.0,
        ];
        assert_eq!(f.karras_grid(10, 7.0), vp);
        let ve = Ddbm::new(DdbmParams::ve()).unwrap().karras_grid(40, 7.0);
        // Indices 24, 26, 28 move by 7–12 ulps when the ramp is rounded twice.
        for (i, w) in [
            (0, 79.99990844726562),
            (24, 0.8229404091835022),
            (26, 0.46997860074043274),
            (28, 0.255629301071167),
            (39, 0.0019999996293336153),
        ] {
            assert_eq!(ve[i], w, "σ[{i}]");
        }
        // dbim_ve_eta0_n9.json `ts` (float32 `linspace(t_max − 1e-3, t_min, 10)`).
        let g = Ddbm::new(DdbmParams::ve()).unwrap().grid(10).unwrap();
        assert_eq!(
            g[1..],
            [
                79.9990005493164,
                71.11044311523438,
                62.22188949584961,
                53.333335876464844,
                44.44477844238281,
                35.55622100830078,
                26.667667388916016,
                17.779111862182617,
                8.890555381774902,
                0.0020000000949949026,
            ]
        );
        let g = f.grid(10).unwrap();
        assert_eq!(g.len(), 11);
        assert_eq!(g[0], 1.0);
        assert!((g[1] - 0.999).abs() < 1e-7 && (g[10] - 1e-4).abs() < 1e-11);
        assert!(matches!(f.grid(0), Err(Error::InvalidNfe { .. })));
    }

    /// The generic scalings against DDBM's VP `get_bridge_scalings` (log-SNR form, c = 1), and
    /// the `cov_xy = σ_data²/2` case the reference's comment names (`c_skip = ½` at σ_max).
    #[test]
    fn bridge_scalings_match_ddbm() {
        let f = Ddbm::new(DdbmParams::vp()).unwrap();
        let (bd, bm, sd) = (2.0f64, 0.1f64, 0.5f64);
        let logsnr = |t: f64| -((0.5 * bd * t * t + bm * t).exp() - 1.0).ln();
        let logs = |t: f64| -0.25 * t * t * bd - 0.5 * t * bm;
        for t in [1e-3, 0.3, 0.9] {
            let a = (logsnr(1.0) - logsnr(t) + logs(t) - logs(1.0)).exp();
            let b = -(logsnr(1.0) - logsnr(t)).exp_m1() * logs(t).exp();
            let c2 = -(logsnr(1.0) - logsnr(t)).exp_m1() * (2.0 * logs(t) - logsnr(t)).exp();
            let big_a = a * a * sd * sd + b * b * sd * sd + c2;
            let call = f.net_call(t);
            let lin = call.x0.unwrap();
            assert!((call.c_in - 1.0 / big_a.sqrt()).abs() < 1e-9 * call.c_in, "c_in at {t}");
            assert!((lin.x - b * sd * sd / big_a).abs() < 1e-9, "c_skip at {t}");
            assert!((lin.out - (a * a * sd.powi(4) + sd * sd * c2).sqrt() / big_a.sqrt()).abs() < 1e-9, "c_out at {t}");
        }
        let top = Marginal { x0: 0.0, xt: 1.0, std: 0.0 };
        let (c_skip, c_out, c_in) = bridge_scalings(top, 0.5, 0.5, 0.125, 1.0);
        assert!((c_skip - 0.5).abs() < 1e-15 && (c_in - 2.0).abs() < 1e-15);
        assert!((c_out - (0.0625f64 - 0.125 * 0.125).sqrt() * 2.0).abs() < 1e-15);
    }

    /// The VP/VE bridges are Gaussian Markov processes with `Cov(x_s, x_t) = α_sα_t ρ_s² ρ̄_t²/ρ_T²`
    /// (s < t), so the posterior keeps `ρ = Cov/Var(x_t)·(α-scaling) = α_s ρ_s²/(α_t ρ_t²)`; DBIM's
    /// ω-based ratio is that closed form.
    #[test]
    fn ancestral_ratio_is_the_bridge_posterior() {
        for p in [DdbmParams::vp(), DdbmParams::ve()] {
            let f = Ddbm::new(p).unwrap();
            let tm = f.t_max();
            for (t, s) in [(0.9 * tm, 0.5 * tm), (0.3 * tm, 0.29 * tm), (0.999 * tm, 0.01 * tm)] {
                let (at, as_) = (f.alpha_rho(t), f.alpha_rho(s));
                let want = as_.alpha * as_.rho * as_.rho / (at.alpha * at.rho * at.rho);
                let got = f.ancestral_ratio(t, s).unwrap();
                assert!((got - want).abs() < 1e-7 * want, "{} {t}→{s}: {got} vs {want}", f.name());
            }
            assert_eq!(f.ancestral_ratio(tm, 0.5 * tm), Some(0.0));
        }
    }

    /// Near the top the VP marginal's x0-coefficient is ∝ (1 − t): computed with expm1 it keeps
    /// full relative precision (a naive ρ_T² − ρ_t² keeps ~4 digits at 1 − t = 2^−40).
    #[test]
    fn vp_top_is_accurate() {
        let f = Ddbm::new(DdbmParams::vp()).unwrap();
        // 1 − 2^−k is exact in f64, so the only error left is the schedule's.
        let slope = |k: i32| {
            let d = 2f64.powi(-k);
            f.marginal(1.0 - d).x0 / d
        };
        assert!((slope(40) / slope(24) - 1.0).abs() < 1e-6, "{} vs {}", slope(40), slope(24));
        let m = f.marginal(1.0 - 2f64.powi(-40));
        assert!(m.std > 0.0 && m.x0 > 0.0 && (m.xt - 1.0).abs() < 1e-9);
    }

    /// DBIM's I2SB schedule: recorded `t_net_visited` of `tests/golden/dbim_i2sb_eta1_n9.json`
    /// (float32 `noise_levels[round(999·t)]`), `x0̂ = x_t − ρ_t·out`, and a grid whose indices
    /// would repeat is an error.
    #[test]
    fn dbim_i2sb_schedule() {
        let f = Ddbm::new(DdbmParams::dbim_i2sb()).unwrap();
        for (t, want) in [
            (1.0, 1000.0),
            (0.9990000128746033, 998.9991455078125),
            (0.5550444722175598, 554.59912109375),
            (0.4440555274486542, 444.5),
            (0.11108888685703278, 111.19999694824219),
        ] {
            assert_eq!(f.net_call(t).t_net, want, "t_net({t})");
        }
        let (ar, lin) = (f.alpha_rho(0.5), f.net_call(0.5).x0.unwrap());
        assert_eq!((lin.x, lin.out), (1.0, -ar.rho));
        assert!(f.grid(10).is_ok() && f.grid(500).is_ok());
        assert!(matches!(f.grid(1000), Err(Error::InvalidNfe { .. })));
    }

    #[test]
    fn bad_params_are_typed_errors() {
        let mut p = DdbmParams::vp();
        p.t_min = 2.0;
        assert!(Ddbm::new(p).is_err());
        let mut p = DdbmParams::ve();
        p.t_max = 100.0;
        assert!(Ddbm::new(p).is_err());
        let mut p = DdbmParams::vp();
        p.t_max = 1.5;
        assert!(matches!(Ddbm::new(p), Err(Error::InvalidParam { .. })));
        let mut p = DdbmParams::vp();
        p.precond = Precond::I2sb { t0: 1e-4, t_end: 1.0 };
        assert!(matches!(Ddbm::new(p), Err(Error::InvalidParam { .. })));
        let mut p = DdbmParams::dbim_i2sb();
        p.schedule = Schedule::I2sb { n_timestep: 3, beta_min: 0.1, beta_max: 1.0 };
        assert!(Ddbm::new(p).is_err());
    }

    /// The VP drift's coefficients equal a direct f64 transcription of DDBM's `get_d_vp`
    /// (log-SNR form) at a few times.
    #[test]
    fn vp_drift_matches_get_d_vp() {
        let f = Ddbm::new(DdbmParams::vp()).unwrap();
        let (bd, bm) = (2.0f64, 0.1f64);
        let snr_rec = |t: f64| ((0.5 * bd * t * t + bm * t).exp() - 1.0).sqrt();
        let snr_rec_d = |t: f64| 0.5 * (bm + bd * t) * (snr_rec(t) + 1.0 / snr_rec(t));
        let s = |t: f64| 1.0 / (1.0 + snr_rec(t).powi(2)).sqrt();
        let s_d = |t: f64| -snr_rec(t) * snr_rec_d(t) * s(t).powi(3);
        let logs = |t: f64| -0.25 * t * t * bd - 0.5 * t * bm;
        let logsnr = |t: f64| -2.0 * snr_rec(t).ln();
        let (x, den, xt) = (0.3f64, -0.2f64, 0.7f64);
        for t in [0.01, 0.2, 0.6, 0.95] {
            for stochastic in [false, true] {
                let std = snr_rec(t) * s(t);
                let a = (logsnr(1.0) - logsnr(t) + logs(t) - logs(1.0)).exp();
                let b = -(logsnr(1.0) - logsnr(t)).exp_m1() * logs(t).exp();
                let mu = a * xt + b * den;
                let grad_q = -(x - mu) / (std * std) / (-(logsnr(1.0) - logsnr(t)).exp_m1());
                let grad_p = -(x - (logs(t) - logs(1.0)).exp() * xt) / (std * std) / (logsnr(t) - logsnr(1.0)).exp_m1();
                let ff = s_d(t) * (-logs(t)).exp() * x;
                let gt2 = 2.0 * logs(t).exp().powi(2) * snr_rec(t) * snr_rec_d(t);
                let want = ff - gt2 * ((if stochastic { 1.0 } else { 0.5 }) * grad_q - grad_p);
                let d = f.drift(t, stochastic).unwrap();
                let got = d.x * x + d.dd * (den - x) + d.dt * (xt - x);
                assert!((got - want).abs() < 1e-9 * want.abs().max(1.0), "t {t} stoch {stochastic}: {got} vs {want}");
                assert!((d.g2 - gt2).abs() < 1e-9 * gt2);
            }
        }
    }
}
