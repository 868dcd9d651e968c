//! NADB, the noise-aligned diffusion bridge ("Resolving Endpoint Underfitting in Diffusion
//! Bridges via Noise Alignment", arXiv 2605.28962; code gyr02/NADB @14e33f1, built on I2SB;
//! `docs/math/nadb.md`).
//!
//! Integer time `n = 0..=1000`, bridge time `t = n/1000` (a float32 value, as the reference
//! forms it). The "magnitude-aligned interpolant":
//!
//! ```text
//! x_t = (1 − t^α)·x0 + t^α·x̃1 + k·t(1 − t)·z          (a = 1 − t^α, b = t^α, s = k t (1 − t))
//! ```
//!
//! where the endpoint `x̃1` is the mean network's output `M(x1)` when the model has one (then
//! it is also the sampler's start) and the raw degraded `x1` otherwise. Defaults α = 0.4,
//! k = 0.75; the threshold `d` is "smallest" = (1 − α)/(2 − α) for restoration, 1 for image
//! translation. The bridge network receives `noise_levels[n]` (float32
//! `linspace(1e-4, 1, 1001)·1000`) and predicts the drift `D = (x_t − x0)/t^α`, trained on `2·D`
//! with the mean network (`out_scale` 2) and on `D` without (1): `x0̂ = x_t − t^α·out/out_scale`.

use super::{Family, Lin, Marginal, NetCall};
use crate::{Denoiser, Error, Result, Tensor, TensorView};
use std::any::Any;

/// The number of discrete indices (`interval`).
const INTERVAL: usize = 1001;

/// NADB's threshold `d` between the endpoint (`s < d`) and no-endpoint posterior branches.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Threshold {
    /// `(1 − α)/(2 − α)`, the smallest `d` whose no-endpoint branch keeps a non-negative
    /// variance (restoration checkpoints).
    #[default]
    Smallest,
    /// An explicit value (1 for the edges2* translation checkpoints); must be ≥ the smallest.
    Value(f64),
}

/// NADB hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NadbParams {
    /// `α` (0.4).
    pub alpha: f64,
    /// `k` (0.75).
    pub k: f64,
    /// The threshold `d`.
    pub d: Threshold,
    /// The checkpoint was trained with the mean network (its output is `2·D`).
    pub mean_network: bool,
}

impl Default for NadbParams {
    fn default() -> Self {
        NadbParams { alpha: 0.4, k: 0.75, d: Threshold::Smallest, mean_network: true }
    }
}

/// The NADB family (module docs).
#[derive(Clone, Debug)]
pub struct Nadb {
    alpha: f64,
    k: f64,
    d: f64,
    out_scale: f64,
}

impl Nadb {
    /// Build the family; errors on α ∉ (0, 1), k < 0, or `d` below `(1 − α)/(2 − α)` (where the
    /// reference's no-endpoint variance can turn negative and it divides by zero on purpose).
    pub fn new(p: NadbParams) -> Result<Self> {
        if !(p.alpha.is_finite() && p.alpha > 0.0 && p.alpha < 1.0) {
            return Err(Error::param("alpha", format!("{} must lie in (0, 1)", p.alpha)));
        }
        if !(p.k.is_finite() && p.k >= 0.0) {
            return Err(Error::param("k", format!("{} must be finite and ≥ 0", p.k)));
        }
        let smallest = (1.0 - p.alpha) / (2.0 - p.alpha);
        let d = match p.d {
            Threshold::Smallest => smallest,
            Threshold::Value(d) => d,
        };
        // The reference compares in float32.
        if !(d.is_finite() && d as f32 >= smallest as f32) {
            return Err(Error::param("d", format!("{d} is below (1 − α)/(2 − α) = {smallest}: the posterior variance would be negative")));
        }
        Ok(Nadb { alpha: p.alpha, k: p.k, d, out_scale: if p.mean_network { 2.0 } else { 1.0 } })
    }

    /// `α`.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }
    /// The effective threshold `d`.
    pub fn d(&self) -> f64 {
        self.d
    }
    /// 2 for mean-network checkpoints, 1 otherwise.
    pub fn out_scale(&self) -> f64 {
        self.out_scale
    }
    /// Bridge time `t = n/1000` as the reference's float32 value (`n` clamped to `0..=1000`).
    pub fn time(n: f64) -> f64 {
        let n = if n.is_nan() { 0.0 } else { n.clamp(0.0, 1000.0) };
        (n / 1000.0) as f32 as f64
    }
    /// `t^α` at index `n`.
    pub fn t_pow(&self, n: f64) -> f64 {
        Self::time(n).powf(self.alpha)
    }
    /// The kept-state ratio of NADB's posterior step `n → n'` (`p_posterior`): `s/t` if `s < d`
    /// (compared in float32, so `s = d` takes the other branch), else `(s/t)^α`.
    pub fn rho(&self, n: f64, n_prev: f64) -> f64 {
        let (t, s) = (Self::time(n), Self::time(n_prev));
        if (s as f32) < (self.d as f32) { s / t } else { (s / t).powf(self.alpha) }
    }
}

/// The network's time value at index `n`: float32 `linspace(1e-4, 1, 1001)[n]·1000`.
pub fn noise_level(n: usize) -> f64 {
    (super::gou::linspace_f32_at(1e-4, 1.0, INTERVAL, n.min(INTERVAL - 1)) * 1000.0f32) as f64
}

/// The mean network's call: index 1 (`noise_levels[1]`), as the reference's `x1_to_x10`; its
/// output is the endpoint itself (no `x0̂`).
pub fn mean_network_call() -> NetCall {
    NetCall { t: 1.0, t_net: noise_level(1), c_in: 1.0, x0: None, clamp: None, raw_is_eps: false }
}

/// The bridge endpoint `x̃1 = M(x1)`: the mean network evaluated once at index 1
/// (`noise_levels[1]`), as the reference's `x1_to_x10`. The mean network is unconditional;
/// it receives `x1` as its conditioning input too, for backends with a second input.
/// The result is both the endpoint and the sampler's start (`sampler::Model`'s `x_end`).
pub fn endpoint(mean_net: &mut dyn Denoiser, x1: TensorView<'_>) -> Result<Tensor> {
    if x1.iter().any(|v| !v.is_finite()) {
        return Err(Error::param("x1", "input contains NaN or Inf"));
    }
    // A call at step 1 (`mean_network_call`), so a network fed the step index
    // (`bridge.time_input = index`) gets 1.
    let call = mean_network_call();
    let out = mean_net.eval_call(x1, x1, &call)?;
    if out.shape() != x1.shape() {
        return Err(Error::shape("mean network output", x1.shape(), out.shape()));
    }
    if !out.iter().all(|v| v.is_finite()) {
        return Err(Error::NonFinite { call: 0, t_net: call.t_net });
    }
    Ok(out)
}

impl Family for Nadb {
    fn name(&self) -> &'static str {
        "nadb"
    }

    fn marginal(&self, n: f64) -> Marginal {
        let t = Self::time(n);
        let ta = t.powf(self.alpha);
        Marginal { x0: 1.0 - ta, xt: ta, std: self.k * t * (1.0 - t) }
    }

    /// [`mean_network_call`]: NADB feeds its mean network its own time value.
    fn mean_network_call(&self) -> Option<NetCall> {
        Some(mean_network_call())
    }

    /// `net(x_t, noise_levels[n])`; `x0̂ = x_t − t^α·out/out_scale` (undefined at `n = 0`).
    fn net_call(&self, n: f64) -> NetCall {
        let ta = self.t_pow(n);
        let idx = if n.is_nan() { 0 } else { n.round().clamp(0.0, 1000.0) as usize };
        let x0 = (ta > 0.0).then(|| Lin { x: 1.0, xt: 0.0, out: -ta / self.out_scale });
        NetCall { t: n, t_net: noise_level(idx), c_in: 1.0, x0, clamp: None, raw_is_eps: false }
    }

    /// `util.space_indices(1001, nfe + 1)` walked from 1000 down: an accumulated float stride
    /// `1000/nfe` rounded half to even (Python's `round`), `1 ≤ nfe ≤ 1000`.
    fn grid(&self, nfe: usize) -> Result<Vec<f64>> {
        if nfe == 0 || nfe >= INTERVAL {
            return Err(Error::nfe(nfe, format!("NADB samples with 1..={} steps", INTERVAL - 1)));
        }
        let stride = (INTERVAL - 1) as f64 / nfe as f64;
        let mut cur = 0.0f64;
        let mut steps = Vec::with_capacity(nfe + 1);
        for _ in 0..=nfe {
            steps.push(cur.round_ties_even());
            cur += stride;
        }
        steps.reverse();
        Ok(steps)
    }

    /// NADB's own posterior (`p_posterior`), which keeps every marginal when `d` is at least
    /// the smallest threshold: [`Nadb::rho`].
    fn ancestral_ratio(&self, t: f64, s: f64) -> Option<f64> {
        (s < t && Self::time(t) > 0.0).then(|| self.rho(t, s))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FnDenoiser;

    #[test]
    fn grid_uses_bankers_rounding() {
        let f = Nadb::new(NadbParams::default()).unwrap();
        let g10: Vec<f64> = (0..=10).rev().map(|i| (i * 100) as f64).collect();
        assert_eq!(f.grid(10).unwrap(), g10);
        // Recorded `steps_visited` of tests/golden/nadb_mean_dsmallest_nfe16.json (62.5 → 62, 187.5 → 188).
        let want16 = [1000, 938, 875, 812, 750, 688, 625, 562, 500, 438, 375, 312, 250, 188, 125, 62, 0];
        assert_eq!(f.grid(16).unwrap(), want16.iter().map(|&v| v as f64).collect::<Vec<_>>());
        assert_eq!(f.grid(1000).unwrap().len(), 1001);
        assert!(matches!(f.grid(0), Err(Error::InvalidNfe { .. })));
        assert!(matches!(f.grid(1001), Err(Error::InvalidNfe { .. })));
    }

    #[test]
    fn time_values_match_the_reference() {
        // Recorded `noise_levels` (float32); torch's vectorized linspace may differ by an ulp.
        for (n, v) in [(1000, 1000.0), (938, 938.0062255859375), (62, 62.09379577636719), (0, 0.09999999403953552), (1, 1.0998998880386353)]
        {
            assert!((noise_level(n) - v).abs() <= 1.2e-4 * v.max(1.0) / 1000.0 + 1e-7, "n = {n}: {} vs {v}", noise_level(n));
        }
        let f = Nadb::new(NadbParams::default()).unwrap();
        assert!((f.t_pow(938.0) - 0.9747228622436523).abs() < 1e-7);
        assert!((f.marginal(938.0).std - 0.04361698403954506).abs() < 1e-8);
        assert_eq!(f.marginal(1000.0), Marginal { x0: 0.0, xt: 1.0, std: 0.0 });
    }

    #[test]
    fn threshold_branches() {
        let f = Nadb::new(NadbParams::default()).unwrap();
        assert!((f.d() - 0.375).abs() < 1e-12);
        // s = 0.375 = d takes the no-endpoint branch (float32 comparison).
        assert!((f.rho(438.0, 375.0) - (0.375f32 as f64 / 0.438f32 as f64).powf(0.4)).abs() < 1e-12);
        assert!((f.rho(375.0, 312.0) - 0.312f32 as f64 / 0.375f32 as f64).abs() < 1e-12);
        let one = Nadb::new(NadbParams { d: Threshold::Value(1.0), ..Default::default() }).unwrap();
        assert!((one.rho(1000.0, 900.0) - 0.9f32 as f64).abs() < 1e-12);
        // Both branches keep the marginal variance non-negative: s_s² − ρ²s_t² ≥ 0.
        for nfe in [3, 5, 10, 16, 50] {
            let g = f.grid(nfe).unwrap();
            for w in g.windows(2) {
                let (mt, ms, r) = (f.marginal(w[0]), f.marginal(w[1]), f.rho(w[0], w[1]));
                assert!(ms.std.powi(2) - r * r * mt.std.powi(2) >= -1e-12, "{w:?}");
            }
        }
    }

    #[test]
    fn parameterization_and_endpoint() {
        let f = Nadb::new(NadbParams::default()).unwrap();
        let c = f.net_call(500.0);
        assert_eq!(c.x0, Some(Lin { x: 1.0, xt: 0.0, out: -f.t_pow(500.0) / 2.0 }));
        assert!(f.net_call(0.0).x0.is_none());
        // The family defines its mean network's call (index 1, no x0̂); other families leave it
        // to the package.
        let m = f.mean_network_call().unwrap();
        assert_eq!((m.t, m.t_net, m.c_in, m.x0), (1.0, noise_level(1), 1.0, None));
        assert!(crate::family::rdbm::Rdbm::new(Default::default()).unwrap().mean_network_call().is_none());
        let x1 = Tensor::from_elem((1, 3, 2, 2), 0.5);
        let mut m = FnDenoiser(|x: TensorView<'_>, _c: TensorView<'_>, t: f64| {
            assert!((t - 1.0998998880386353).abs() < 1e-6);
            Ok(x.mapv(|v| 0.8 * v))
        });
        let e = endpoint(&mut m, x1.view()).unwrap();
        assert!(e.iter().all(|&v| (v - 0.4).abs() < 1e-7));
        let mut bad = FnDenoiser(|x: TensorView<'_>, _c: TensorView<'_>, _t: f64| Ok(x.mapv(|_| f32::NAN)));
        assert!(matches!(endpoint(&mut bad, x1.view()), Err(Error::NonFinite { .. })));
        let mut wrong = FnDenoiser(|_x: TensorView<'_>, _c: TensorView<'_>, _t: f64| Ok(Tensor::zeros((1, 3, 2, 3))));
        assert!(matches!(endpoint(&mut wrong, x1.view()), Err(Error::ShapeMismatch { .. })));
    }

    #[test]
    fn bad_parameters_are_errors() {
        for p in [
            NadbParams { alpha: 0.0, ..Default::default() },
            NadbParams { alpha: 1.0, ..Default::default() },
            NadbParams { k: -1.0, ..Default::default() },
            NadbParams { d: Threshold::Value(0.3), ..Default::default() },
            NadbParams { d: Threshold::Value(f64::NAN), ..Default::default() },
        ] {
            assert!(matches!(Nadb::new(p), Err(Error::InvalidParam { .. })), "{p:?}");
        }
    }
}
