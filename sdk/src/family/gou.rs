//! GOUB (Yue et al., ICML 2024) and UniDB-GOU (Zhu et al., ICML 2025): the generalized
//! Ornstein–Uhlenbeck bridge, one struct. UniDB's terminal penalty enters only through
//! `γ⁻¹` (`gamma_inv`); `γ⁻¹ = 0` is GOUB exactly.
//!
//! Integer time `t = 0..=T` (T = 100 in every official config), `t = T` is the degraded end.
//! Reference: `docs/math/goub.md` §1–6 (Hammour-steak/GOUB @895876e, UniDB-SOC/UniDB @5625e73,
//! `utils/sde_utils.py`). With `L` the config's `lambda_square` (divided by 255 when ≥ 1; the
//! code uses it as a standard deviation), `θ_i` the schedule, `Θ_t = Σ_{i≤t} θ_i − θ_0`,
//! `dt = −ln(eps)/Θ_T`, `τ_t = Θ_t·dt`, `τ_{t:T} = τ_T − τ_t`:
//!
//! ```text
//! σ̄_t² = L²(1 − e^{−2τ_t}),  σ̄²_{t:T} = L²(1 − e^{−2τ_{t:T}}),  f_σ(t) = σ̄_t σ̄_{t:T}/σ̄_T
//! m_t = e^{−τ_t}(γ⁻¹ + σ̄²_{t:T})/(γ⁻¹ + σ̄_T²),  n_t = 1 − m_t      x_t = m_t x0 + n_t μ + f_σ(t) z
//! ```
//!
//! The schedule tables `θ`, `Θ` and `dt` are reproduced with the reference's float32 semantics
//! (float32 cosine over `T + 2` points, cumulative sum accumulated in double and stored as
//! float32, `dt` a float32 scalar): the networks were trained with those values. Everything
//! derived from them is `f64`. The network predicts the noise `ε`; `f_σ` keeps GOUB's form for
//! UniDB too (as the code does, `docs/math/goub.md` §6).
//!
//! UniDB++'s solver helpers (`A_t`, `A^γ_t`, `S_t`, `β^γ_t`, `docs/math/goub.md` §7.1) live here too.

use super::{Family, Lin, Marginal, NetCall};
use crate::{Error, Result};
use std::any::Any;

/// The `θ_t` schedule of GOUB/UniDB (`schedule` in the option files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ThetaSchedule {
    /// "Flipped" cosine over `T + 2` points: `θ_i = 1 − ᾱ(i + 1)` (official default).
    #[default]
    Cosine,
    /// `linspace(0.1/(T+1), 20/(T+1), T+1)`.
    Linear,
    /// All ones.
    Constant,
}

/// Hyper-parameters of a GOUB/UniDB model, as the official option files name them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GouParams {
    /// `lambda_square` as configured (30 in every task); values ≥ 1 are divided by 255.
    pub lambda_square: f64,
    /// Number of integer steps `T` (100).
    pub t_max: usize,
    /// `eps`, the target `e^{−τ_T}` (0.005 in the task configs).
    pub eps: f64,
    /// The `θ` schedule.
    pub schedule: ThetaSchedule,
    /// UniDB's `γ⁻¹` (`gamma_inv`, ≥ 0); 0 is GOUB.
    pub gamma_inv: f64,
}

impl GouParams {
    /// GOUB's official defaults (`lambda_square` 30, T 100, cosine, eps 0.005).
    pub fn goub() -> Self {
        GouParams { lambda_square: 30.0, t_max: 100, eps: 0.005, schedule: ThetaSchedule::Cosine, gamma_inv: 0.0 }
    }
    /// UniDB-GOU with the given `γ⁻¹` (official: 1e-7 for SR/inpainting, 1e-8 for deraining).
    pub fn unidb(gamma_inv: f64) -> Self {
        GouParams { gamma_inv, ..Self::goub() }
    }
}

/// The GOUB / UniDB family (see the module docs).
#[derive(Clone, Debug)]
pub struct Gou {
    t_max: usize,
    l: f64,
    gamma_inv: f64,
    dt: f64,
    /// θ_i, i = 0..=T (float32 values).
    theta: Vec<f64>,
    /// Θ_t (float32, as the reference stores `thetas_cumsum`), t = 0..=T.
    big_theta: Vec<f32>,
    /// τ_t = Θ_t·dt, t = 0..=T.
    tau: Vec<f64>,
}

impl Gou {
    /// Build the family; errors on a non-finite or out-of-domain parameter (γ⁻¹ < 0, eps ∉ (0,1), …).
    pub fn new(p: GouParams) -> Result<Self> {
        if !(p.lambda_square.is_finite() && p.lambda_square > 0.0) {
            return Err(Error::param("lambda_square", format!("{} must be positive and finite", p.lambda_square)));
        }
        if !(p.eps.is_finite() && p.eps > 0.0 && p.eps < 1.0) {
            return Err(Error::param("eps", format!("{} must lie in (0, 1)", p.eps)));
        }
        if !(p.gamma_inv.is_finite() && p.gamma_inv >= 0.0) {
            return Err(Error::param("gamma_inv", format!("{} must be finite and ≥ 0 (0 is GOUB)", p.gamma_inv)));
        }
        if !(2..=100_000).contains(&p.t_max) {
            return Err(Error::param("T", format!("{} must lie in 2..=100000", p.t_max)));
        }
        let l = if p.lambda_square >= 1.0 { p.lambda_square / 255.0 } else { p.lambda_square };
        let theta = match p.schedule {
            ThetaSchedule::Cosine => cosine_thetas(p.t_max),
            ThetaSchedule::Linear => linear_thetas(p.t_max),
            ThetaSchedule::Constant => vec![1.0; p.t_max + 1],
        };
        // Θ_t = cumsum(θ)_t − θ_0: torch's CPU cumsum accumulates in double and stores float32;
        // the subtraction is float32.
        let mut acc = 0.0f64;
        let theta0 = theta[0] as f32;
        let big: Vec<f32> = theta
            .iter()
            .map(|&th| {
                acc += th;
                acc as f32 - theta0
            })
            .collect();
        let big_t = big[p.t_max];
        if big_t.is_nan() || big_t <= 0.0 {
            return Err(Error::param("schedule", "Θ_T must be positive"));
        }
        // dt = −1/Θ_T·ln(eps): torch forms 1/Θ_T in float32 and multiplies by ln(eps) cast to float32.
        let dt = ((1.0f32 / big_t) * (-(p.eps.ln()) as f32)) as f64;
        let tau = big.iter().map(|&b| b as f64 * dt).collect();
        Ok(Gou { t_max: p.t_max, l, gamma_inv: p.gamma_inv, dt, theta, big_theta: big, tau })
    }

    /// The top time `T`.
    pub fn t_max(&self) -> usize {
        self.t_max
    }
    /// `L` (the effective `lambda_square`, a standard deviation).
    pub fn lambda(&self) -> f64 {
        self.l
    }
    /// `γ⁻¹` (0 for GOUB).
    pub fn gamma_inv(&self) -> f64 {
        self.gamma_inv
    }
    /// The float32 `dt` of the reference.
    pub fn dt(&self) -> f64 {
        self.dt
    }
    /// `θ_t` at integer `t`.
    pub fn theta(&self, t: usize) -> f64 {
        self.theta[t.min(self.t_max)]
    }
    /// `g_t² = 2L²θ_t`, the squared diffusion coefficient (`sigmas[t]²`).
    pub fn g2(&self, t: usize) -> f64 {
        2.0 * self.l * self.l * self.theta(t)
    }
    /// `Θ_t` at integer `t`, the reference's float32 value (`thetas_cumsum`).
    pub fn theta_cumsum(&self, t: usize) -> f32 {
        self.big_theta[t.min(self.t_max)]
    }
    /// `τ_t = Θ_t·dt` at integer `t`.
    pub fn tau(&self, t: usize) -> f64 {
        self.tau[t.min(self.t_max)]
    }
    /// `τ(t)` for real `t` in `[0, T]` (linear in `Θ` between integer steps; clamped outside).
    pub fn tau_at(&self, t: f64) -> f64 {
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, self.t_max as f64) };
        let i = (t.floor() as usize).min(self.t_max - 1);
        let f = t - i as f64;
        self.tau[i] + f * (self.tau[i + 1] - self.tau[i])
    }
    fn tau_end(&self) -> f64 {
        self.tau[self.t_max]
    }
    /// `σ̄_t²` at real `t`.
    pub fn sigma_bar2(&self, t: f64) -> f64 {
        -self.l * self.l * (-2.0 * self.tau_at(t)).exp_m1()
    }
    /// `σ̄²_{t:T}` at real `t`.
    pub fn sigma_bar2_to_end(&self, t: f64) -> f64 {
        -self.l * self.l * (-2.0 * (self.tau_end() - self.tau_at(t))).exp_m1()
    }
    /// The marginal std `f_σ(t) = σ̄_t σ̄_{t:T}/σ̄_T` (GOUB's, also for UniDB).
    pub fn f_sigma(&self, t: f64) -> f64 {
        (self.sigma_bar2(t) * self.sigma_bar2_to_end(t) / self.sigma_bar2(self.t_max as f64)).max(0.0).sqrt()
    }
    /// `m_t`, the coefficient of `x0` (with `γ⁻¹`).
    pub fn m(&self, t: f64) -> f64 {
        let gi = self.gamma_inv;
        (-self.tau_at(t)).exp() * (gi + self.sigma_bar2_to_end(t)) / (gi + self.sigma_bar2(self.t_max as f64))
    }
    /// The h-transform coefficient `E_t = e^{−2τ_{t:T}}/(γ⁻¹ + σ̄²_{t:T})` of the reverse drift
    /// (the term is `−g_t²·E_t·(x − μ)`); 0 at `t = T`, where the reference drops it.
    pub fn h_coef(&self, t: usize) -> f64 {
        if t >= self.t_max {
            return 0.0;
        }
        let tt = t as f64;
        (-2.0 * (self.tau_end() - self.tau(t))).exp() / (self.gamma_inv + self.sigma_bar2_to_end(tt))
    }

    // UniDB++ helpers (docs/math/goub.md §7.1), c = γ⁻¹/L².
    /// `A_t = e^{τ_{t:T}} − e^{−τ_{t:T}}` (`ode_alpha_t`).
    pub fn ode_a(&self, t: usize) -> f64 {
        2.0 * (self.tau_end() - self.tau(t)).sinh()
    }
    /// `A^γ_t = (1 + c)e^{τ_{t:T}} − e^{−τ_{t:T}}` (`ode_alpha_t_gamma`).
    pub fn ode_a_gamma(&self, t: usize) -> f64 {
        let r = self.tau_end() - self.tau(t);
        self.ode_a(t) + self.c() * r.exp()
    }
    /// `S_t = e^{τ_t} − e^{−τ_t}` (`ode_sigma_t`).
    pub fn ode_s(&self, t: usize) -> f64 {
        2.0 * self.tau(t).sinh()
    }
    /// `β^γ_t = ln(A^γ_t/S_t)` (`beta_t_gamma`; +∞ at `t = 0`).
    pub fn beta_gamma(&self, t: usize) -> f64 {
        (self.ode_a_gamma(t) / self.ode_s(t)).ln()
    }
    /// `c = γ⁻¹/L²` (UniDB++'s `1/(γλ²)`).
    pub fn c(&self) -> f64 {
        self.gamma_inv / (self.l * self.l)
    }

    /// The integer step `t` if `t` is one (`0..=T`).
    pub fn step_index(&self, t: f64) -> Option<usize> {
        (t.fract() == 0.0 && t >= 0.0 && t <= self.t_max as f64).then_some(t as usize)
    }
}

impl Family for Gou {
    fn name(&self) -> &'static str {
        if self.gamma_inv == 0.0 { "goub" } else { "unidb" }
    }

    fn marginal(&self, t: f64) -> Marginal {
        let m = self.m(t);
        Marginal { x0: m, xt: 1.0 - m, std: self.f_sigma(t) }
    }

    /// `net(x_t, μ, t)` with the integer `t`; the output is `ε`, so
    /// `x0̂ = (x_t − n_t μ − f_σ(t) ε)/m_t`. Where `f_σ(t) = 0` (`t = 0` and `t = T`) the output
    /// does not determine `x0̂` and `x0` is `None` (GOUB's `m_T = 0` makes it undefined anyway).
    fn net_call(&self, t: f64) -> NetCall {
        let (m, s) = (self.m(t), self.f_sigma(t));
        let x0 = (s > 0.0 && m > 0.0).then(|| Lin { x: 1.0 / m, xt: -(1.0 - m) / m, out: -s / m });
        NetCall { t, t_net: t, c_in: 1.0, x0, clamp: None, raw_is_eps: true }
    }

    /// `nfe + 1` integer times from `T` down to 0, evenly spaced (`round(T·i/nfe)`, ties up):
    /// UniDB++'s grid `T, T − h, …, 0` when `nfe` divides `T`. `1 ≤ nfe ≤ T`.
    fn grid(&self, nfe: usize) -> Result<Vec<f64>> {
        if nfe == 0 || nfe > self.t_max {
            return Err(Error::nfe(nfe, format!("the GOUB/UniDB grid has {} steps (1 ≤ NFE ≤ {})", self.t_max, self.t_max)));
        }
        let t = self.t_max;
        Ok((0..=nfe).rev().map(|i| ((2 * t * i + nfe) / (2 * nfe)) as f64).collect())
    }

    /// GOUB's exact posterior `q(x_s | x_t, x0)` keeps `ρ = sinh τ_s / sinh τ_t` (`docs/math/goub.md` §5;
    /// UniDB++'s data-solver-1 uses the same ratio for UniDB).
    fn ancestral_ratio(&self, t: f64, s: f64) -> Option<f64> {
        let (ts, tt) = (self.tau_at(s), self.tau_at(t));
        (tt > 0.0 && s < t).then(|| ts.sinh() / tt.sinh())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The flipped cosine schedule as the reference computes it in float32: with `K = T + 2`,
/// `ᾱ_j = cos²(π/2·(j/K + s)/(1 + s))/ᾱ_0` for `j = 0..=K`, `θ_i = 1 − ᾱ_{i+1}` (`i = 0..=T`).
fn cosine_thetas(t_max: usize) -> Vec<f64> {
    let k = (t_max + 2) as f32;
    let (s, one_s, pi) = (0.008f32, 1.008f32, std::f32::consts::PI);
    let ac: Vec<f32> = (0..=t_max + 2)
        .map(|j| {
            let arg = ((j as f32 / k) + s) / one_s * pi * 0.5f32;
            let c = (arg as f64).cos() as f32;
            c * c
        })
        .collect();
    let a0 = ac[0];
    (1..=t_max + 1).map(|j| (1.0f32 - ac[j] / a0) as f64).collect()
}

/// `linspace(0.1/(T+1), 20/(T+1), T+1)` in float32 (torch's two-sided linspace).
fn linear_thetas(t_max: usize) -> Vec<f64> {
    let n = t_max + 1;
    let scale = 1000.0 / n as f64;
    linspace_f32(scale * 0.0001, scale * 0.02, n).into_iter().map(f64::from).collect()
}

/// torch's CPU `linspace` in float32 (see [`torch_linspace_f32_at`]).
pub(crate) fn linspace_f32(start: f64, end: f64, n: usize) -> Vec<f32> {
    (0..n).map(|i| linspace_f32_at(start, end, n, i)).collect()
}

pub(crate) use super::i2sb::torch_linspace_f32_at as linspace_f32_at;

#[cfg(test)]
mod tests {
    use super::*;

    /// Values recorded from the reference objects (float32; `tests/golden/goub_sde.json`,
    /// `unidb_sde_ginv0.001.json`, `unidbpp_data1_sde_S10.json`, field `tables`) at
    /// t = 0, 1, 2, 37, 73, 99, 100.
    const TS: [usize; 7] = [0, 1, 2, 37, 73, 99, 100];
    const THETA: [f64; 7] = [
        0.0006142854690551758,
        0.0016945600509643555,
        0.0032401084899902344,
        0.3122272491455078,
        0.827873706817627,
        0.9990665316581726,
        0.9997665882110596,
    ];
    const F_SIGMA: [f64; 7] =
        [0.0, 0.002209574216976762, 0.0037698661908507347, 0.09106873720884323, 0.11706028878688812, 0.050997644662857056, 0.0];
    const M_GOUB: [f64; 7] =
        [1.0, 0.9998235106468201, 0.9994863271713257, 0.633041262626648, 0.0702747330069542, 0.0010426013031974435, 0.0];
    const M_UNIDB_1E3: [f64; 7] =
        [1.0, 0.9998235106468201, 0.9994863271713257, 0.6330428719520569, 0.0702984631061554, 0.0013462159549817443, 0.0003369162150193006];
    const A: [f64; 7] =
        [199.9949951171875, 199.95973205566406, 199.89222717285156, 126.6050796508789, 14.054598808288574, 0.20851510763168335, 0.0];
    const A_GAMMA_1E7: [f64; 7] = [
        199.99644470214844,
        199.961181640625,
        199.8936767578125,
        126.60600280761719,
        14.054701805114746,
        0.2085232138633728,
        7.271766662597656e-06,
    ];
    const S: [f64; 7] =
        [0.0, 0.0003527998924255371, 0.0010273456573486328, 0.9465518593788147, 14.088274002075195, 180.22695922851562, 199.9949951171875];

    /// Our tables against the float32 tables of the reference.
    #[test]
    fn schedule_matches_the_reference_tables() {
        let g = Gou::new(GouParams::goub()).unwrap();
        assert_eq!(g.dt(), 0.10409380495548248, "dt");
        let u3 = Gou::new(GouParams::unidb(1e-3)).unwrap();
        let u7 = Gou::new(GouParams::unidb(1e-7)).unwrap();
        for (k, &t) in TS.iter().enumerate() {
            let tt = t as f64;
            // θ = 1 − ᾱ in float32: allow two float32 ulps of ᾱ (the reference's cos differs by ≤ 1 ulp).
            assert!((g.theta(t) - THETA[k]).abs() < 1.2e-7, "θ_{t}: {} vs {}", g.theta(t), THETA[k]);
            assert!((g.f_sigma(tt) - F_SIGMA[k]).abs() < 2e-7, "f_σ({t})");
            assert!((g.m(tt) - M_GOUB[k]).abs() < 3e-7, "m({t}) {} vs {}", g.m(tt), M_GOUB[k]);
            assert!((u3.m(tt) - M_UNIDB_1E3[k]).abs() < 3e-7, "UniDB m({t})");
            let close = |a: f64, b: f64| (a - b).abs() <= 2e-6 * b.abs().max(1.0);
            assert!(close(u7.ode_a(t), A[k]), "A_{t}");
            assert!(close(u7.ode_a_gamma(t), A_GAMMA_1E7[k]), "A^γ_{t} {} vs {}", u7.ode_a_gamma(t), A_GAMMA_1E7[k]);
            assert!(close(u7.ode_s(t), S[k]), "S_{t}");
        }
    }

    #[test]
    fn closed_forms_and_endpoints() {
        let f = Gou::new(GouParams::goub()).unwrap();
        assert!((f.tau(100) - (-(0.005f64).ln())).abs() < 1e-6);
        assert_eq!(f.marginal(100.0), Marginal { x0: 0.0, xt: 1.0, std: 0.0 });
        let m0 = f.marginal(0.0);
        assert!((m0.x0 - 1.0).abs() < 1e-15 && m0.std == 0.0);
        let (tt, te) = (f.tau(37), f.tau(100));
        // m_t = sinh τ_{t:T}/sinh τ_T, f_σ² = 2L² sinh τ_t sinh τ_{t:T}/sinh τ_T (docs/math/goub.md §2).
        assert!((f.m(37.0) - (te - tt).sinh() / te.sinh()).abs() < 1e-12);
        let v = 2.0 * f.lambda().powi(2) * tt.sinh() * (te - tt).sinh() / te.sinh();
        assert!((f.f_sigma(37.0).powi(2) - v).abs() < 1e-14);
        assert!(f.net_call(100.0).x0.is_none() && f.net_call(50.0).x0.is_some());
        assert!(f.net_call(50.0).raw_is_eps);
    }

    /// γ⁻¹ → 0 recovers GOUB's marginals.
    #[test]
    fn unidb_tends_to_goub() {
        let g = Gou::new(GouParams::goub()).unwrap();
        let u = Gou::new(GouParams::unidb(1e-12)).unwrap();
        assert_eq!((g.name(), u.name()), ("goub", "unidb"));
        for t in [1.0, 10.0, 50.0, 99.0, 100.0] {
            let (a, b) = (g.marginal(t), u.marginal(t));
            assert!((a.x0 - b.x0).abs() < 1e-9 && (a.xt - b.xt).abs() < 1e-9 && a.std == b.std, "t = {t}");
            assert!((g.h_coef(t as usize) - u.h_coef(t as usize)).abs() <= 1e-8 * g.h_coef(t as usize).max(1.0));
        }
        // The soft endpoint: m_T = e^{−τ_T}γ⁻¹/(γ⁻¹ + σ̄_T²) > 0 for UniDB.
        let u7 = Gou::new(GouParams::unidb(1e-7)).unwrap();
        assert!((u7.m(100.0) - 3.6e-8).abs() < 1e-9);
    }

    #[test]
    fn grid_and_ratio() {
        let f = Gou::new(GouParams::goub()).unwrap();
        assert_eq!(f.grid(4).unwrap(), vec![100.0, 75.0, 50.0, 25.0, 0.0]);
        let g8 = f.grid(8).unwrap();
        assert_eq!(g8.len(), 9);
        assert!(g8.windows(2).all(|w| w[0] > w[1]) && g8[0] == 100.0 && g8[8] == 0.0);
        assert_eq!(f.grid(100).unwrap().len(), 101);
        assert!(matches!(f.grid(0), Err(Error::InvalidNfe { .. })));
        assert!(matches!(f.grid(101), Err(Error::InvalidNfe { .. })));
        let rho = f.ancestral_ratio(60.0, 40.0).unwrap();
        // ρ = f_σ(s)²·(m_t/m_s)/f_σ(t)² (docs/math/goub.md §5).
        let want = f.f_sigma(40.0).powi(2) * (f.m(60.0) / f.m(40.0)) / f.f_sigma(60.0).powi(2);
        assert!((rho - want).abs() < 1e-12);
        assert_eq!(f.ancestral_ratio(60.0, 0.0), Some(0.0));
    }

    /// GOUB's exact posterior step (the ancestral ratio through the generic implicit row) from
    /// x_t ~ q(x_t | x0, μ) reproduces the marginal at s: mean and std over 16k iid pixels.
    #[test]
    fn posterior_step_reproduces_the_marginal() {
        use crate::rng::{NoiseSource, PhiloxNoise};
        use crate::sampler::implicit::implicit_row;
        use crate::step::{NoiseTerm, Term, update};
        let f = Gou::new(GouParams::goub()).unwrap();
        let shape = (1, 1, 128, 128);
        let (x0v, muv) = (0.9f32, 0.2f32);
        let (x0, mu) = (crate::Tensor::from_elem(shape, x0v), crate::Tensor::from_elem(shape, muv));
        for (t, s) in [(90.0, 60.0), (40.0, 10.0), (10.0, 3.0)] {
            let mt = f.marginal(t);
            let mut z = crate::Tensor::zeros(shape);
            PhiloxNoise::new(21).fill(0, z.view_mut()).unwrap();
            let mut x = z.mapv(|v| (mt.x0 * x0v as f64 + mt.xt * muv as f64 + mt.std * v as f64) as f32);
            let ms = f.marginal(s);
            let row = implicit_row(mt, ms, f.ancestral_ratio(t, s).unwrap());
            let mut noise = PhiloxNoise::new(22);
            let zt = NoiseTerm { coef: row.c_z, draw: 0, source: &mut noise };
            update(&mut x, row.c_x, &[Term::new(row.c_0, x0.view()), Term::new(row.c_t, mu.view())], Some(zt)).unwrap();
            let n = x.len() as f64;
            let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
            let sd = (x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
            let want = ms.x0 * x0v as f64 + ms.xt * muv as f64;
            assert!((mean - want).abs() < 4.0 * ms.std / n.sqrt(), "{t}→{s}: mean {mean} vs {want}");
            assert!((sd / ms.std - 1.0).abs() < 0.03, "{t}→{s}: std {sd} vs {}", ms.std);
        }
    }

    #[test]
    fn bad_parameters_are_errors() {
        let bad = [
            GouParams::unidb(-1e-7),
            GouParams::unidb(f64::NAN),
            GouParams { eps: 0.0, ..GouParams::goub() },
            GouParams { lambda_square: -1.0, ..GouParams::goub() },
            GouParams { t_max: 1, ..GouParams::goub() },
        ];
        for p in bad {
            assert!(matches!(Gou::new(p), Err(Error::InvalidParam { .. })), "{p:?}");
        }
        assert!(Gou::new(GouParams { schedule: ThetaSchedule::Linear, ..GouParams::goub() }).is_ok());
        assert!(Gou::new(GouParams { schedule: ThetaSchedule::Constant, ..GouParams::goub() }).is_ok());
    }
}
