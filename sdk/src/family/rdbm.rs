//! RDBM, the Residual Diffusion Bridge Model (Wang, Zhang et al., arXiv 2510.23116; code
//! MiliLab/RDBM @ddc8ef9, `code/rdbm.py`, `docs/math/rdbm.md`).
//!
//! Integer index `i ∈ {−1, 0, …, T−1}` (T = 100): `i = T−1` is the degraded end (`Θ = Σ = 0`),
//! `−1` the clean sentinel (`Θ = 1`, `Σ = 0`, not stored in the reference tables).
//!
//! ```text
//! θ_i = min(1 − ᾱ((i+1)/T)/ᾱ(i/T), 0.999),  ᾱ(u) = cos²((u + 0.008)/1.008·π/2)   (improved-DDPM betas)
//! c_i = Σ_{j≤i} θ_j,  c_{i:T} = c_{T−1} − c_i
//! Θ_i = sinh(c_{i:T})/sinh(c_{T−1}),  Σ_i² = 2λ sinh(c_i) sinh(c_{i:T})/sinh(c_{T−1})
//! x_i = μ + Θ_i(x0 − μ) + Σ_i·z                                  (a = Θ, b = 1 − Θ, s = Σ)
//! ```
//!
//! `λ = 1e-4` in the release (it was 10/255 before 2025-11-23, and the paper reports 10/255).
//! The family carries the network's `objective`: `pred_x_start` (`x0̂ = clamp(out, −1, 1)`) or
//! `pred_noise` (`ε = out`, `x0̂ = clamp((x_t − μ − Σ ε)/Θ + μ)`), clamped as the reference's
//! default `clip_denoised = True` does.
//!
//! ## Residual modulation (the paper's mechanism, absent from the release)
//!
//! [`ResidualNoise`] marks a model trained with the paper's residual-modulated noise: the
//! diffusion coefficient of the bridge SDE is multiplied elementwise by the residual
//! `π = x0 − μ`, so the forward marginal becomes
//!
//! ```text
//! x_i = μ + Θ_i(x0 − μ) + Σ_i·π⊙z          (per pixel: std |x0 − μ|·Σ_i)
//! ```
//!
//! and a `pred_noise` network predicts the product `π⊙ε`. Source: the arXiv HTML body was not
//! reachable from this workplace (only its first page); the formula is taken from a published
//! summary of the paper's §4 (eqs. 10–13 and 19: marginal mean `μ + (x0 − μ)Θ_t`, variance
//! `π²Σ_t²` with `π = x0 − μ`, reverse step driven by the predicted `πε`; the ablation reports
//! `|x0 − μ|` as equivalent), and it matches the release's commented-out `# * (x_start - mu)`
//! on its training-noise line. Because `π` cancels from the deterministic step, the reference
//! sampler is unchanged by it; it matters where the sampler injects noise, see
//! `sampler::rdbm`.

use super::{Family, Lin, Marginal, NetCall};
use crate::{Error, Result, Tensor, TensorView};
use std::any::Any;

/// What the RDBM network predicts (the reference's `objective`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Objective {
    /// `x0̂ = clamp(out)` (the release's default and only trained objective).
    #[default]
    PredXStart,
    /// `ε = out` (with residual modulation: `π⊙ε`).
    PredNoise,
}

/// The paper's residual-modulated noise (module docs). `eta ∈ [0, 1]` scales the noise the
/// RDBM sampler injects at each step (0: the reference's deterministic sampler; 1: the
/// ancestral posterior step), always multiplied elementwise by `|x0̂ − μ|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResidualNoise {
    /// Noise scale in `[0, 1]`.
    pub eta: f64,
}

/// RDBM hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RdbmParams {
    /// Number of indices `T` (100).
    pub t_max: usize,
    /// `λ` (`lamb`, 1e-4 in the release).
    pub lamb: f64,
    /// What the network predicts.
    pub objective: Objective,
    /// Clamp `x0̂` to `[−1, 1]` (`clip_denoised`, default true).
    pub clip: bool,
    /// Residual-modulated noise (the paper), `None` for the release's bridge.
    pub residual: Option<ResidualNoise>,
}

impl Default for RdbmParams {
    fn default() -> Self {
        RdbmParams { t_max: 100, lamb: 1e-4, objective: Objective::PredXStart, clip: true, residual: None }
    }
}

/// The RDBM family (module docs).
#[derive(Clone, Debug)]
pub struct Rdbm {
    p: RdbmParams,
    /// c_i (float32 values), i = 0..T−1.
    c: Vec<f64>,
    /// Θ_i, Σ_i for i = 0..T−1.
    big_theta: Vec<f64>,
    sigma: Vec<f64>,
}

impl Rdbm {
    /// Build the family; errors on `λ ≤ 0`, `T < 2` or `η ∉ [0, 1]`.
    pub fn new(p: RdbmParams) -> Result<Self> {
        if !(p.lamb.is_finite() && p.lamb > 0.0) {
            return Err(Error::param("lamb", format!("{} must be positive and finite", p.lamb)));
        }
        if !(2..=100_000).contains(&p.t_max) {
            return Err(Error::param("timesteps", format!("{} must lie in 2..=100000", p.t_max)));
        }
        if let Some(r) = p.residual
            && !(r.eta.is_finite() && (0.0..=1.0).contains(&r.eta))
        {
            return Err(Error::param("eta", format!("{} is outside [0, 1]", r.eta)));
        }
        let n = p.t_max;
        let ab = |u: f64| ((u + 0.008) / 1.008 * std::f64::consts::PI / 2.0).cos().powi(2);
        // Betas in double, stored float32; cumsum accumulated in double, stored float32.
        let mut acc = 0.0f64;
        let c: Vec<f32> = (0..n)
            .map(|i| {
                let th = (1.0 - ab((i + 1) as f64 / n as f64) / ab(i as f64 / n as f64)).min(0.999) as f32;
                acc += th as f64;
                acc as f32
            })
            .collect();
        let c_end = c[n - 1];
        let (mut big_theta, mut sigma) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for &ci in &c {
            let rest = (c_end - ci) as f64; // float32 subtraction, as the reference
            let (sh_i, sh_rest, sh_end) = ((ci as f64).sinh(), rest.sinh(), (c_end as f64).sinh());
            big_theta.push(sh_rest / sh_end);
            sigma.push((2.0 * p.lamb * sh_i * sh_rest / sh_end).max(0.0).sqrt());
        }
        Ok(Rdbm { p, c: c.into_iter().map(f64::from).collect(), big_theta, sigma })
    }

    /// The parameters.
    pub fn params(&self) -> &RdbmParams {
        &self.p
    }
    /// The network's objective.
    pub fn objective(&self) -> Objective {
        self.p.objective
    }
    /// The residual-modulation option.
    pub fn residual(&self) -> Option<ResidualNoise> {
        self.p.residual
    }
    /// `T`; the top index is `T − 1`.
    pub fn t_max(&self) -> usize {
        self.p.t_max
    }
    /// `(Θ_i, Σ_i)` at real `i ∈ [−1, T−1]` (linear in `c` between integers, `c_{−1} = 0`).
    pub fn theta_sigma(&self, i: f64) -> (f64, f64) {
        let top = (self.p.t_max - 1) as f64;
        let i = if i.is_nan() { -1.0 } else { i.clamp(-1.0, top) };
        if i.fract() == 0.0 {
            return match i as i64 {
                -1 => (1.0, 0.0),
                k => (self.big_theta[k as usize], self.sigma[k as usize]),
            };
        }
        let c = self.c_at(i);
        let c_end = self.c[self.p.t_max - 1];
        let rest = c_end - c;
        (rest.sinh() / c_end.sinh(), (2.0 * self.p.lamb * c.sinh() * rest.sinh() / c_end.sinh()).max(0.0).sqrt())
    }

    /// `c_i` at real `i` (`c_{−1} = 0`, linear between integers).
    fn c_at(&self, i: f64) -> f64 {
        let top = (self.p.t_max - 1) as f64;
        let i = if i.is_nan() { -1.0 } else { i.clamp(-1.0, top) };
        let at = |k: i64| if k < 0 { 0.0 } else { self.c[k as usize] };
        let k = i.floor() as i64;
        at(k) + (i - k as f64) * (at((k + 1).min(self.p.t_max as i64 - 1)) - at(k))
    }

    /// The per-pixel noise modulation `|x0̂ − μ|` of the residual-modulated bridge.
    pub fn modulation(x0: TensorView<'_>, mu: TensorView<'_>) -> Result<Tensor> {
        if x0.shape() != mu.shape() {
            return Err(Error::shape("residual", mu.shape(), x0.shape()));
        }
        let mut out = crate::alloc::try_copy(x0, "the noise modulation")?;
        ndarray::Zip::from(&mut out).and(&mu).for_each(|o, &m| *o = (*o - m).abs());
        Ok(out)
    }
}

impl Family for Rdbm {
    fn name(&self) -> &'static str {
        "rdbm"
    }

    fn marginal(&self, t: f64) -> Marginal {
        let (th, s) = self.theta_sigma(t);
        Marginal { x0: th, xt: 1.0 - th, std: s }
    }

    /// `net(x_t, μ, i)` with the integer index; `x0̂` per the objective, clamped to `[−1, 1]`.
    /// With `pred_noise`, `x0̂` is undefined at the top index (`Θ = 0`): `x0` is `None` there.
    fn net_call(&self, t: f64) -> NetCall {
        let (th, s) = self.theta_sigma(t);
        let clamp = self.p.clip.then_some((-1.0, 1.0));
        let (x0, raw_is_eps) = match self.p.objective {
            Objective::PredXStart => (Some(Lin { x: 0.0, xt: 0.0, out: 1.0 }), false),
            Objective::PredNoise => ((th > 0.0).then(|| Lin { x: 1.0 / th, xt: 1.0 - 1.0 / th, out: -s / th }), true),
        };
        NetCall { t, t_net: t, c_in: 1.0, x0, clamp, raw_is_eps }
    }

    /// `ddim_sample`'s grid: float32 `linspace(−1, T−1, S+1)` truncated toward zero, reversed
    /// (`S = nfe`, `1 ≤ S ≤ T`), with torch's linspace formula (`torch_linspace_f32_at`). torch computes full SIMD
    /// blocks as `base + lane·step` instead, which moves a value across an integer for a few `S`
    /// only, depending on the CPU's vector width (T = 100: S ∈ {55, 85, 90} with AVX2, {85, 90}
    /// with AVX-512, also 58, 60, 65, 75 with 4 lanes — one index off by 1). Every `S` dividing
    /// `T` (5, 10, 20, 25, 50, 100: the configurations in use) is exact on all of them.
    fn grid(&self, nfe: usize) -> Result<Vec<f64>> {
        if nfe == 0 || nfe > self.p.t_max {
            return Err(Error::nfe(nfe, format!("RDBM samples with 1..={} steps", self.p.t_max)));
        }
        let lin = super::gou::linspace_f32(-1.0, (self.p.t_max - 1) as f64, nfe + 1);
        Ok(lin.into_iter().rev().map(|v| v.trunc() as f64).collect())
    }

    /// The OU-bridge posterior (GOUB's with `τ → c`): `ρ = sinh c_s / sinh c_t`.
    fn ancestral_ratio(&self, t: f64, s: f64) -> Option<f64> {
        let (ct, cs) = (self.c_at(t), self.c_at(s));
        (ct > 0.0 && s < t).then(|| cs.sinh() / ct.sinh())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from the reference's float32 buffers (`tests/golden/rdbm_*.json`, `tables`)
    /// at i = 0, 1, 50, 79, 98, 99.
    const IDX: [usize; 6] = [0, 1, 50, 79, 98, 99];
    const THETA: [f64; 6] = [0.9993689060211182, 0.9982534646987915, 0.4817883372306824, 0.09949416667222977, 0.0008888133452273905, 0.0];
    const SIGMA: [f64; 6] =
        [0.00035521353129297495, 0.0005907903541810811, 0.008762872777879238, 0.009950307197868824, 0.009297274053096771, 0.0];

    #[test]
    fn tables_match_the_reference() {
        let f = Rdbm::new(RdbmParams::default()).unwrap();
        for (k, &i) in IDX.iter().enumerate() {
            let m = f.marginal(i as f64);
            assert!((m.x0 - THETA[k]).abs() < 3e-7, "Θ_{i}: {} vs {}", m.x0, THETA[k]);
            assert!((m.std - SIGMA[k]).abs() < 1e-8, "Σ_{i}: {} vs {}", m.std, SIGMA[k]);
        }
        assert_eq!(f.marginal(-1.0), Marginal { x0: 1.0, xt: 0.0, std: 0.0 });
        assert_eq!(f.marginal(99.0), Marginal { x0: 0.0, xt: 1.0, std: 0.0 });
    }

    #[test]
    fn grid_is_the_truncated_linspace() {
        let f = Rdbm::new(RdbmParams::default()).unwrap();
        assert_eq!(f.grid(10).unwrap(), vec![99.0, 89.0, 79.0, 69.0, 59.0, 49.0, 39.0, 29.0, 19.0, 9.0, -1.0]);
        assert_eq!(f.grid(5).unwrap(), vec![99.0, 79.0, 59.0, 39.0, 19.0, -1.0]);
        // docs/math/rdbm.md §1: S = 7 → 99, 84, 70, 56, 41, 27, 13, −1.
        assert_eq!(f.grid(7).unwrap(), vec![99.0, 84.0, 70.0, 56.0, 41.0, 27.0, 13.0, -1.0]);
        assert_eq!(f.grid(100).unwrap().len(), 101);
        assert!(matches!(f.grid(0), Err(Error::InvalidNfe { .. })));
        assert!(matches!(f.grid(101), Err(Error::InvalidNfe { .. })));
    }

    #[test]
    fn parameterizations() {
        let x = Rdbm::new(RdbmParams::default()).unwrap();
        let c = x.net_call(59.0);
        assert_eq!(c.x0, Some(Lin { x: 0.0, xt: 0.0, out: 1.0 }));
        assert_eq!((c.clamp, c.t_net, c.raw_is_eps), (Some((-1.0, 1.0)), 59.0, false));
        let e = Rdbm::new(RdbmParams { objective: Objective::PredNoise, ..Default::default() }).unwrap();
        assert!(e.net_call(99.0).x0.is_none());
        let (th, s) = e.theta_sigma(59.0);
        let l = e.net_call(59.0).x0.unwrap();
        // x0̂ = (x − μ − Σε)/Θ + μ.
        assert!((l.x - 1.0 / th).abs() < 1e-12 && (l.xt - (1.0 - 1.0 / th)).abs() < 1e-12 && (l.out + s / th).abs() < 1e-12);
    }

    /// ρ = Σ_s²Θ_t/(Σ_t²Θ_s) (the OU-bridge posterior) = sinh c_s/sinh c_t.
    #[test]
    fn ancestral_ratio_is_the_bridge_posterior() {
        let f = Rdbm::new(RdbmParams::default()).unwrap();
        let (mt, ms) = (f.marginal(69.0), f.marginal(39.0));
        let want = ms.std.powi(2) * mt.x0 / (mt.std.powi(2) * ms.x0);
        assert!((f.ancestral_ratio(69.0, 39.0).unwrap() - want).abs() < 1e-6 * want);
        assert_eq!(f.ancestral_ratio(69.0, -1.0), Some(0.0));
    }

    #[test]
    fn bad_parameters_are_errors() {
        for p in [
            RdbmParams { lamb: 0.0, ..Default::default() },
            RdbmParams { t_max: 1, ..Default::default() },
            RdbmParams { residual: Some(ResidualNoise { eta: 1.5 }), ..Default::default() },
            RdbmParams { residual: Some(ResidualNoise { eta: f64::NAN }), ..Default::default() },
        ] {
            assert!(matches!(Rdbm::new(p), Err(Error::InvalidParam { .. })), "{p:?}");
        }
        let a = Tensor::zeros((1, 1, 2, 2));
        let b = Tensor::zeros((1, 1, 2, 3));
        assert!(matches!(Rdbm::modulation(a.view(), b.view()), Err(Error::ShapeMismatch { .. })));
    }
}
