//! I2SB, the image-to-image Schrödinger bridge (Liu et al., ICML 2023; code NVlabs/I2SB @1ffdfaa,
//! `i2sb/runner.py`, `i2sb/diffusion.py`).
//!
//! Integer steps `n = 0..N−1` (`interval`, N = 1000); `n = N−1` is the degraded end. Betas (float64,
//! as `make_beta_schedule`): `b = linspace(1e-4^½, (β_max/N)^½, N)²`, then made symmetric — the
//! first half followed by the first half reversed. With `σ_f(n)² = Σ_{i≤n} b_i` and
//! `σ_b(n)² = Σ_{i≥n} b_i`:
//!
//! ```text
//! x_n = σ_b²/(σ_f²+σ_b²)·x0 + σ_f²/(σ_f²+σ_b²)·x_T + σ_fσ_b/sqrt(σ_f²+σ_b²)·z      (eq. 1)
//! ```
//!
//! The network receives `t_net = noise_levels[n]` (float32 `linspace(t0, T, N)·N`) and predicts
//! `(x_n − x0)/σ_f(n)`: `x0̂ = x_n − σ_f(n)·out`, clamped to [−1, 1] with `clip_denoise`.
//! The DDPM posterior `p(x_m | x_n, x0)` (m < n) is the Brownian bridge of the forward process:
//! with `δ² = σ_f(n)² − σ_f(m)²`, `x_m = δ²/σ_f(n)²·x0 + σ_f(m)²/σ_f(n)²·x_n + σ_f(m)δ/σ_f(n)·z`
//! ([`I2sb::posterior`]); it keeps the state with ratio `σ_f(m)²/σ_f(n)²`, which is also the
//! family's [`Family::ancestral_ratio`].
//!
//! Tables are kept in `f64` (the reference stores float32 copies; an `f64` replay of its
//! golden files agrees to < 1e-6). A real-valued `n` interpolates the tables linearly (the
//! cumulative sums are piecewise linear in continuous time); integer `n` reads them exactly.

use super::{Family, Lin, Marginal, NetCall};
use crate::{Error, Result};
use std::any::Any;

/// I2SB hyper-parameters, as the official options name them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct I2sbParams {
    /// Number of discrete steps `N` (`interval`, 1000); even.
    pub interval: usize,
    /// `β_max` (`beta_max`, 0.3 in every released checkpoint); the last beta is `β_max/N`.
    pub beta_max: f64,
    /// `t0` of the network's time table (1e-4).
    pub t0: f64,
    /// `T` of the network's time table (1.0).
    pub t_end: f64,
    /// Clamp `x0̂` to [−1, 1] (`clip_denoise`, off by default in the reference).
    pub clip: bool,
}

impl Default for I2sbParams {
    fn default() -> Self {
        I2sbParams { interval: 1000, beta_max: 0.3, t0: 1e-4, t_end: 1.0, clip: false }
    }
}

/// The I2SB family (module docs).
#[derive(Clone, Debug)]
pub struct I2sb {
    p: I2sbParams,
    /// `b_n`, n = 0..N−1.
    betas: Vec<f64>,
    /// `σ_f(n)²` (forward cumulative sum).
    var_fwd: Vec<f64>,
    /// `σ_b(n)²` (backward cumulative sum).
    var_bwd: Vec<f64>,
}

/// The first beta of every I2SB-type schedule (`linear_start` of `make_beta_schedule`).
pub const BETA_START: f64 = 1e-4;

/// torch's CPU `linspace` in float64: `start + i·step` for the first half, `end − (n−1−i)·step`
/// for the second (the last element is exactly `end`), each one fused multiply-add as in
/// [`torch_linspace_f32_at`].
pub(crate) fn linspace_f64_at(start: f64, end: f64, n: usize, i: usize) -> f64 {
    if n <= 1 {
        return start;
    }
    let step = (end - start) / (n - 1) as f64;
    if i < n / 2 { step.mul_add(i as f64, start) } else { (-step).mul_add((n - 1 - i) as f64, end) }
}

/// Element `i` of torch's CPU `linspace(start, end, n)` in float32: `step = (end − start)/(n − 1)`
/// in float32, then `start + step·i` for the first half and `end − step·(n − 1 − i)` for the
/// second, each with a single rounding — the kernel's multiply-add is compiled to an FMA. This
/// form reproduces every `t_net` and Karras `σ` recorded in `tests/golden/` (I2SB, DBIM's I2SB
/// schedule, DDBM); rounding the product and the sum separately is an ulp off at about one
/// index in four, enough to move a VE Karras σ near 80 by 10 ulps after `^ρ`.
pub fn torch_linspace_f32_at(start: f64, end: f64, n: usize, i: usize) -> f32 {
    let (a, b) = (start as f32, end as f32);
    if n <= 1 {
        return a;
    }
    let step = (b - a) / (n - 1) as f32;
    // `i` < 2^24 is exact in f32 for any grid we build.
    if i < n / 2 { step.mul_add(i as f32, a) } else { (-step).mul_add((n - 1 - i) as f32, b) }
}

/// I2SB's symmetric schedule (`make_beta_schedule` + mirroring): `n` betas from
/// `linspace(start^½, end^½, n)²`, first half followed by its reverse. `n` must be even.
pub fn symmetric_betas(n: usize, start: f64, end: f64) -> Vec<f64> {
    let half: Vec<f64> = (0..n / 2).map(|i| linspace_f64_at(start.sqrt(), end.sqrt(), n, i).powi(2)).collect();
    half.iter().chain(half.iter().rev()).copied().collect()
}

/// Forward and backward cumulative sums of `betas` (`σ_f²`, `σ_b²`), summed in order as numpy does.
pub fn cumulative_variances(betas: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut acc = 0.0;
    let fwd: Vec<f64> = betas
        .iter()
        .map(|b| {
            acc += b;
            acc
        })
        .collect();
    acc = 0.0;
    let mut bwd: Vec<f64> = betas
        .iter()
        .rev()
        .map(|b| {
            acc += b;
            acc
        })
        .collect();
    bwd.reverse();
    (fwd, bwd)
}

/// `(σ_f, σ_b)` tables of `betas`: square roots of [`cumulative_variances`].
pub fn std_fwd_bwd(betas: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let (f, b) = cumulative_variances(betas);
    (f.into_iter().map(f64::sqrt).collect(), b.into_iter().map(f64::sqrt).collect())
}

/// The network's time table `noise_levels[n]`: float32 `linspace(t0, T, N)·N` (torch's formula).
pub fn noise_level(t0: f64, t_end: f64, interval: usize, n: usize) -> f64 {
    (torch_linspace_f32_at(t0, t_end, interval, n.min(interval.saturating_sub(1))) * interval as f32) as f64
}

/// `util.space_indices(num_steps, count)`: `count` indices from 0 to `num_steps − 1` with an
/// accumulated float stride, rounded half to even (Python's `round`). (`num_steps = 0` is read
/// as 1: every index is 0.)
pub fn space_indices(num_steps: usize, count: usize) -> Vec<usize> {
    let stride = if count <= 1 { 1.0 } else { num_steps.saturating_sub(1) as f64 / (count - 1) as f64 };
    let mut cur = 0.0f64;
    (0..count)
        .map(|_| {
            let v = cur.round_ties_even() as usize;
            cur += stride;
            v
        })
        .collect()
}

impl I2sb {
    /// Build the family; errors on an odd or too small `interval`, or a non-positive `β_max`/time range.
    pub fn new(p: I2sbParams) -> Result<Self> {
        if p.interval < 4 || !p.interval.is_multiple_of(2) || p.interval > 1_000_000 {
            return Err(Error::param("interval", format!("{} must be even and in 4..=1000000", p.interval)));
        }
        if !(p.beta_max.is_finite() && p.beta_max > 0.0) {
            return Err(Error::param("beta_max", format!("{} must be positive and finite", p.beta_max)));
        }
        if !(p.t0.is_finite() && p.t_end.is_finite() && p.t0 >= 0.0 && p.t_end > p.t0) {
            return Err(Error::param("t0/T", format!("need 0 ≤ t0 < T, got {} and {}", p.t0, p.t_end)));
        }
        let betas = symmetric_betas(p.interval, BETA_START, p.beta_max / p.interval as f64);
        let (var_fwd, var_bwd) = cumulative_variances(&betas);
        Ok(I2sb { p, betas, var_fwd, var_bwd })
    }

    /// The parameters.
    pub fn params(&self) -> &I2sbParams {
        &self.p
    }
    /// The top step `N − 1`.
    pub fn top(&self) -> usize {
        self.p.interval - 1
    }
    /// `b_n` at integer `n` (clamped to the table).
    pub fn beta(&self, n: usize) -> f64 {
        self.betas[n.min(self.top())]
    }

    /// Linear interpolation of a table at real `n` (clamped to `[0, N−1]`).
    fn at(&self, table: &[f64], n: f64) -> f64 {
        let top = self.top() as f64;
        let n = if n.is_nan() { 0.0 } else { n.clamp(0.0, top) };
        let i = (n.floor() as usize).min(self.top() - 1);
        let f = n - i as f64;
        if f == 0.0 { table[i] } else { table[i] + f * (table[i + 1] - table[i]) }
    }

    /// `σ_f(n)`, the forward std (`std_fwd`).
    pub fn std_fwd(&self, n: f64) -> f64 {
        self.at(&self.var_fwd, n).sqrt()
    }
    /// `σ_b(n)`, the backward std (`std_bwd`).
    pub fn std_bwd(&self, n: f64) -> f64 {
        self.at(&self.var_bwd, n).sqrt()
    }

    /// `std_sb(n)`, the marginal std of eq. (1) (`σ_fσ_b/sqrt(σ_f²+σ_b²)`).
    pub fn std_sb(&self, n: f64) -> f64 {
        self.marginal(n).std
    }

    /// The DDPM posterior `p(x_m | x_n, x0)` (`p_posterior`, m < n): `(c_x0, c_xn, variance)` with
    /// `x_m = c_x0·x0 + c_xn·x_n + sqrt(variance)·z`.
    pub fn posterior(&self, n: f64, m: f64) -> (f64, f64, f64) {
        let (vn, vm) = (self.at(&self.var_fwd, n), self.at(&self.var_fwd, m));
        let delta2 = (vn - vm).max(0.0);
        let denom = vm + delta2;
        (delta2 / denom, vm / denom, vm * delta2 / denom)
    }
}

impl Family for I2sb {
    fn name(&self) -> &'static str {
        "i2sb"
    }

    /// `compute_gaussian_product_coef(σ_f, σ_b)`: `(σ_b², σ_f², σ_f²σ_b²)/(σ_f²+σ_b²)`.
    fn marginal(&self, n: f64) -> Marginal {
        let (f2, b2) = (self.at(&self.var_fwd, n), self.at(&self.var_bwd, n));
        let d = f2 + b2;
        Marginal { x0: b2 / d, xt: f2 / d, std: (f2 * b2 / d).sqrt() }
    }

    /// `net(x_n, noise_levels[n], cond)`; `x0̂ = x_n − σ_f(n)·out` (clamped with `clip_denoise`).
    fn net_call(&self, n: f64) -> NetCall {
        let lo = if n.is_nan() { 0 } else { n.clamp(0.0, self.top() as f64).floor() as usize };
        let hi = (lo + 1).min(self.top());
        let (a, b) = (noise_level(self.p.t0, self.p.t_end, self.p.interval, lo), noise_level(self.p.t0, self.p.t_end, self.p.interval, hi));
        let f = if n.is_nan() { 0.0 } else { n.clamp(0.0, self.top() as f64) - lo as f64 };
        let t_net = if f == 0.0 { a } else { a + f * (b - a) };
        NetCall {
            t: n,
            t_net,
            c_in: 1.0,
            x0: Some(Lin { x: 1.0, xt: 0.0, out: -self.std_fwd(n) }),
            clamp: self.p.clip.then_some((-1.0, 1.0)),
            raw_is_eps: false,
        }
    }

    /// `space_indices(N, nfe + 1)` walked from `N − 1` down to 0, `1 ≤ nfe ≤ N − 1`
    /// (`Runner.ddpm_sampling`).
    fn grid(&self, nfe: usize) -> Result<Vec<f64>> {
        if nfe == 0 || nfe >= self.p.interval {
            return Err(Error::nfe(nfe, format!("I2SB samples with 1..={} steps", self.top())));
        }
        Ok(space_indices(self.p.interval, nfe + 1).into_iter().rev().map(|n| n as f64).collect())
    }

    /// The DDPM posterior keeps `ρ = σ_f(s)²/σ_f(t)²` of the state.
    fn ancestral_ratio(&self, t: f64, s: f64) -> Option<f64> {
        let (vt, vs) = (self.at(&self.var_fwd, t), self.at(&self.var_fwd, s));
        (s < t && vt > 0.0).then(|| vs / vt)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded float32 tables of the reference (`tests/golden/i2sb_nfe5_sde.json`, `tables`),
    /// steps 0, 1, 2 and the recorded `t_net` of the visited steps.
    #[test]
    fn tables_match_the_reference() {
        let f = I2sb::new(I2sbParams::default()).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-7 * b.abs().max(1e-3);
        for (n, fwd, bwd, sb, mu0, mu1) in [
            (0.0, 0.009999999776482582, 0.3755359649658203, 0.00999645609408617, 0.9992914199829102, 0.0007085803663358092),
            (1.0, 0.014147317968308926, 0.3754027783870697, 0.014137282967567444, 0.9985818266868591, 0.0014181981096044183),
            (2.0, 0.017333203926682472, 0.3752693831920624, 0.017314743250608444, 0.9978711605072021, 0.002128853928297758),
        ] {
            let m = f.marginal(n);
            assert!(close(f.std_fwd(n), fwd) && close(f.std_bwd(n), bwd), "σ at {n}");
            assert!(close(m.std, sb) && close(m.x0, mu0) && close(m.xt, mu1), "marginal at {n}: {m:?}");
        }
        // Recorded `t_net_visited` of i2sb_nfe20_sde.json, bit for bit (torch's FMA linspace;
        // 749, 549, 499, 450 and 400 are an ulp off with two roundings).
        for (n, v) in [
            (999, 1000.0),
            (799, 799.81982421875),
            (749, 749.7747802734375),
            (549, 549.5946044921875),
            (499, 499.5495300292969),
            (450, 450.5054016113281),
            (400, 400.4603576660156),
            (50, 50.14504623413086),
            (0, 0.09999999403953552),
        ] {
            assert_eq!(f.net_call(n as f64).t_net, v, "t_net({n})");
        }
        // Symmetric schedule: σ_f and σ_b mirror each other.
        assert!((f.std_fwd(999.0) - f.std_bwd(0.0)).abs() < 1e-15);
        assert!((f.beta(0) - 1e-4).abs() < 1e-18 && (f.beta(499) - f.beta(500)).abs() < 1e-18);
    }

    #[test]
    fn grid_is_space_indices() {
        let f = I2sb::new(I2sbParams::default()).unwrap();
        let want: Vec<f64> = [999, 799, 599, 400, 200, 0].iter().map(|&v| v as f64).collect();
        assert_eq!(f.grid(5).unwrap(), want);
        // Recorded `steps_visited` of i2sb_nfe20_otode.json (499.5 → 500, 449.55 → 450).
        let g20 = f.grid(20).unwrap();
        assert_eq!(g20[10..13], [499.0, 450.0, 400.0]);
        assert_eq!(f.grid(999).unwrap().len(), 1000);
        assert_eq!(f.grid(1).unwrap(), vec![999.0, 0.0]);
        assert!(matches!(f.grid(0), Err(Error::InvalidNfe { .. })));
        assert!(matches!(f.grid(1000), Err(Error::InvalidNfe { .. })));
        assert_eq!(space_indices(0, 3), vec![0, 0, 0]);
        assert_eq!(space_indices(1001, 17)[..3], [0, 62, 125]); // 62.5 → 62, 125.0 → 125
    }

    /// The posterior is the Brownian bridge of the forward process, and applying it to the
    /// marginal at n gives (up to the discretization's `β_n` term) the marginal at m.
    #[test]
    fn posterior_and_ratio() {
        let f = I2sb::new(I2sbParams::default()).unwrap();
        let (c0, cx, var) = f.posterior(600.0, 300.0);
        assert!((c0 + cx - 1.0).abs() < 1e-15);
        assert_eq!(Some(cx), f.ancestral_ratio(600.0, 300.0));
        let (s6, s3) = (f.std_fwd(600.0), f.std_fwd(300.0));
        assert!((var - s3 * s3 * (s6 * s6 - s3 * s3) / (s6 * s6)).abs() < 1e-15);
        // Posterior of the marginal: mean coefficients and variance close to the marginal at m.
        let (mn, mm) = (f.marginal(600.0), f.marginal(300.0));
        assert!((c0 + cx * mn.x0 - mm.x0).abs() < 1e-3 && (cx * mn.xt - mm.xt).abs() < 1e-3);
        assert!(((cx * cx * mn.std * mn.std + var).sqrt() - mm.std).abs() < 1e-3);
        assert_eq!(f.ancestral_ratio(300.0, 600.0), None);
    }

    #[test]
    fn parameterization_and_interpolation() {
        let f = I2sb::new(I2sbParams { clip: true, ..Default::default() }).unwrap();
        let c = f.net_call(500.0);
        assert_eq!(c.x0, Some(Lin { x: 1.0, xt: 0.0, out: -f.std_fwd(500.0) }));
        assert_eq!(c.clamp, Some((-1.0, 1.0)));
        let mid = f.marginal(500.5);
        let (a, b) = (f.marginal(500.0), f.marginal(501.0));
        assert!(mid.xt > a.xt && mid.xt < b.xt);
        assert!(f.net_call(500.5).t_net > c.t_net);
    }

    #[test]
    fn bad_parameters_are_errors() {
        for p in [
            I2sbParams { interval: 999, ..Default::default() },
            I2sbParams { interval: 2, ..Default::default() },
            I2sbParams { beta_max: 0.0, ..Default::default() },
            I2sbParams { beta_max: f64::NAN, ..Default::default() },
            I2sbParams { t0: 1.0, t_end: 0.5, ..Default::default() },
        ] {
            assert!(matches!(I2sb::new(p), Err(Error::InvalidParam { .. })), "{p:?}");
        }
    }
}
