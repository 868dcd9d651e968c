//! Training objectives for every family, from the SDK's own schedules (no second copy of the
//! bridge math: every coefficient below comes from `bridge::family::*`).
//!
//! A training example is drawn as in each reference implementation: a time `t` from the family's
//! training distribution, then
//!
//! ```text
//! x_t = a·x0 + b·x_T + c·n,     n = z ~ N(0, I)   (n = (x0 − x_T)⊙z for RDBM's residual-modulated noise)
//! ```
//!
//! with `(a, b, c) = family.marginal(t)`. The network sees `c_in·x_t`, the conditioning image and
//! `t_net`, both from `family.net_call(t)`. Its raw output is regressed onto a **target that is
//! linear in `(x0, x_T, n)`** ([`Form`]), with a per-example weight and an L1 or L2 norm. The
//! generic target is the raw value that maps back to `x0` through the family's parameterization
//! (`x0 = L.x·x_t + L.xt·x_T + L.out·raw`, [`bridge::family::NetCall::x0`]):
//! `raw* = (x0 − L.x·x_t − L.xt·x_T)/L.out`. Per family (the Training section of each family's
//! note in `docs/math/`, and the DDBM release):
//!
//! | family | `t` | target | norm, weight |
//! |---|---|---|---|
//! | I2SB | `n ~ U{0, …, N−1}` | generic: `(x_t − x0)/σ_f(n)` | L2, 1 |
//! | DDBM VP/VE, DBIM-I2SB | `t ~ U[t_min, t_max]` (`real-uniform`) | generic: `(x0 − c_skip·x_t)/c_out` | L2, 1 (≡ DDBM's `bridge_karras` weight `1/c_out²` on the `x0` error) |
//! | GOUB, UniDB | `t ~ U{1, …, T−1}` | the `ε` whose Euler reverse-SDE mean step lands on the exact posterior mean of `x_{t−1}` | L1, `|C_ε|` (≡ L1 between the two means, GOUB's `MatchingLoss`) |
//! | RDBM (`x0`) | `i ~ U{0, …, T−1}` | `x0` | L1, 1 |
//! | RDBM (`eps`) | `i ~ U{0, …, T−2}` | generic: `z` (`(x0 − μ)⊙z` residual-modulated) | L2, 1 (the release has no `ε` training path) |
//! | NADB | `n ~ U{1, …, 1000}` | generic: `out_scale·(x_t − x0)/t^α` | L2, 1 |
//!
//! NADB's endpoint `x_T` is the mean network's output `M(x1)` when the model has one (the trainer
//! substitutes it); its mean network is trained separately by MSE(M(x1), x0).
//!
//! **GOUB/UniDB target.** One reverse Euler mean step with `ε` is affine in `ε`:
//! `x_{t−1} = C_x·x_t + C_μ·μ + C_ε·ε`, `C_x = 1 + (θ_t + g_t²E_t)dt`, `C_μ = 1 − C_x`,
//! `C_ε = −g_t²dt/f_σ(t)` (`docs/math/goub.md` §4, §8, with the family's γ-aware `E_t`). The reference's target,
//! `r_mean_1`, is the mean of `q(x_{t−1} | x_t, x0)` = `m_s x0 + n_s μ + ρ(x_t − m_t x0 − n_t μ)`
//! with `ρ = f_σ(s)²(m_t/m_s)/f_σ(t)²` (its code's formula, rearranged; `s = t − 1`). So
//! `|mean(ε) − r_mean| = |C_ε|·|ε − ε*|` with `ε* = (r_mean − C_x x_t − C_μ μ)/C_ε`, linear in
//! `(x0, μ, z)`.
//!
//! **Focus on a sampler grid.** A small training budget is better spent at the times the default
//! sampler visits: [`Objective::with_focus`] draws, with probability `p`, one of the grid points
//! of `family.grid(nfe)` where the network is called (projected into the training support).

use crate::degrade::Rng;
use crate::error::{Error, Result};
use bridge::family::ddbm::Ddbm;
use bridge::family::gou::Gou;
use bridge::family::i2sb::I2sb;
use bridge::family::nadb::Nadb;
use bridge::family::rdbm::{Objective as RdbmObjective, Rdbm};
use bridge::family::{Family, Lin};

/// A linear form `x0·x0 + xt·x_T + z·n` over the clean image, the endpoint and the noise.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Form {
    /// Coefficient of `x0`.
    pub x0: f64,
    /// Coefficient of `x_T`.
    pub xt: f64,
    /// Coefficient of the noise `n`.
    pub z: f64,
}

impl Form {
    /// The value for scalars (tests, per-pixel reference code).
    pub fn at(&self, x0: f64, xt: f64, n: f64) -> f64 {
        self.x0 * x0 + self.xt * xt + self.z * n
    }
}

/// The norm of the regression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Mean squared error.
    L2,
    /// Mean absolute error.
    L1,
}

/// One drawn training time with everything the loss needs (all scalars; images come from the
/// trainer).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Draw {
    /// Family time.
    pub t: f64,
    /// The network's time input.
    pub t_net: f64,
    /// Input scaling: the network sees `c_in·x_t`.
    pub c_in: f64,
    /// `x_t` as a form over `(x0, x_T, n)`.
    pub x_t: Form,
    /// The regression target of the raw output.
    pub target: Form,
    /// Per-example loss weight.
    pub weight: f64,
    /// How the raw output maps to `x0̂` (over `x_t`, `x_T`, raw), where defined.
    pub x0: Option<Lin>,
    /// `n = (x0 − x_T)⊙z` instead of `z` (RDBM's residual-modulated noise).
    pub residual_noise: bool,
}

impl Draw {
    /// `x0̂` from a raw output, for scalars: `L.x·x_t + L.xt·x_T + L.out·raw`.
    pub fn x0_of(&self, x_t: f64, x_end: f64, raw: f64) -> Option<f64> {
        self.x0.map(|l| l.x * x_t + l.xt * x_end + l.out * raw)
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    I2sb { top: usize },
    Ddbm { t_min: f64, t_max: f64 },
    Gou { t_max: usize },
    Rdbm { t_max: usize, eps: bool, residual: bool },
    Nadb { mean_network: bool },
}

/// The training objective of one family (see the module docs).
pub struct Objective<'f> {
    family: &'f dyn Family,
    kind: Kind,
    focus: Option<(Vec<f64>, f64)>,
}

impl<'f> Objective<'f> {
    /// The objective of `family` (one of the SDK's families).
    pub fn new(family: &'f dyn Family) -> Result<Self> {
        let kind = if let Some(f) = family.downcast::<I2sb>() {
            Kind::I2sb { top: f.top() }
        } else if let Some(f) = family.downcast::<Ddbm>() {
            Kind::Ddbm { t_min: f.t_min(), t_max: f.t_max() }
        } else if let Some(f) = family.downcast::<Gou>() {
            Kind::Gou { t_max: f.t_max() }
        } else if let Some(f) = family.downcast::<Rdbm>() {
            Kind::Rdbm { t_max: f.t_max(), eps: f.objective() == RdbmObjective::PredNoise, residual: f.residual().is_some() }
        } else if let Some(f) = family.downcast::<Nadb>() {
            Kind::Nadb { mean_network: f.out_scale() == 2.0 }
        } else {
            return Err(Error::Config(format!("no training objective for family `{}`", family.name())));
        };
        Ok(Objective { family, kind, focus: None })
    }

    /// Draw, with probability `p`, one of the times where the default grid for `nfe` calls the
    /// network (module docs); otherwise from the family's own distribution.
    pub fn with_focus(mut self, nfe: usize, p: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::Config(format!("focus probability {p} is outside [0, 1]")));
        }
        let grid = self.family.grid(nfe).map_err(|e| Error::Config(e.to_string()))?;
        let mut pts: Vec<f64> = grid[..grid.len() - 1].iter().map(|&t| self.project(t)).collect();
        pts.dedup();
        self.focus = Some((pts, p));
        Ok(self)
    }

    /// The family.
    pub fn family(&self) -> &'f dyn Family {
        self.family
    }

    /// The regression norm.
    pub fn loss(&self) -> Loss {
        match self.kind {
            Kind::Gou { .. } | Kind::Rdbm { eps: false, .. } => Loss::L1,
            _ => Loss::L2,
        }
    }

    /// NADB with a mean network: the bridge's endpoint is `M(x1)`, not the degraded image.
    pub fn endpoint_is_mean(&self) -> bool {
        matches!(self.kind, Kind::Nadb { mean_network: true })
    }

    /// The training support `[lo, hi]` of `t` (integers for the discrete families).
    fn support(&self) -> (f64, f64) {
        match self.kind {
            Kind::I2sb { top } => (0.0, top as f64),
            Kind::Ddbm { t_min, t_max } => (t_min, t_max),
            Kind::Gou { t_max } => (1.0, (t_max - 1) as f64),
            Kind::Rdbm { t_max, eps, .. } => (0.0, (t_max - if eps { 2 } else { 1 }) as f64),
            Kind::Nadb { .. } => (1.0, 1000.0),
        }
    }

    fn discrete(&self) -> bool {
        !matches!(self.kind, Kind::Ddbm { .. })
    }

    /// `t` moved into the training support (and to an integer for discrete families).
    fn project(&self, t: f64) -> f64 {
        let (lo, hi) = self.support();
        let t = t.clamp(lo, hi);
        if self.discrete() { t.round() } else { t }
    }

    /// A training time from the family's distribution (or the focus grid).
    pub fn sample_time(&self, rng: &mut Rng) -> f64 {
        if let Some((pts, p)) = &self.focus
            && !pts.is_empty()
            && rng.uniform() < *p
        {
            return pts[rng.below(pts.len())];
        }
        let (lo, hi) = self.support();
        if self.discrete() {
            let n = (hi - lo) as usize + 1;
            lo + rng.below(n) as f64
        } else {
            rng.range(lo, hi)
        }
    }

    /// A draw at a random time.
    pub fn draw(&self, rng: &mut Rng) -> Result<Draw> {
        self.draw_at(self.sample_time(rng))
    }

    /// The draw at time `t` (must lie in the training support).
    pub fn draw_at(&self, t: f64) -> Result<Draw> {
        let (lo, hi) = self.support();
        if !(t >= lo && t <= hi) {
            return Err(Error::Config(format!("training time {t} is outside [{lo}, {hi}] for `{}`", self.family.name())));
        }
        let m = self.family.marginal(t);
        let call = self.family.net_call(t);
        let x_t = Form { x0: m.x0, xt: m.xt, z: m.std };
        let residual_noise = matches!(self.kind, Kind::Rdbm { residual: true, .. });
        let (target, weight) = match self.kind {
            Kind::Gou { .. } => self.gou_target(t, x_t)?,
            _ => {
                let l = call.x0.ok_or_else(|| Error::Config(format!("x0̂ is undefined at t = {t}")))?;
                if l.out == 0.0 {
                    return Err(Error::Config(format!("x0̂ does not depend on the network at t = {t}")));
                }
                // raw* = (x0 − L.x·x_t − L.xt·x_T)/L.out, expanded over (x0, x_T, n).
                let target = Form { x0: (1.0 - l.x * x_t.x0) / l.out, xt: -(l.x * x_t.xt + l.xt) / l.out, z: -l.x * x_t.z / l.out };
                (target, 1.0)
            }
        };
        Ok(Draw { t, t_net: call.t_net, c_in: call.c_in, x_t, target, weight, x0: call.x0, residual_noise })
    }

    /// GOUB/UniDB: the `ε*` of the module docs and the weight `|C_ε|`.
    fn gou_target(&self, t: f64, x_t: Form) -> Result<(Form, f64)> {
        let f = self.family.downcast::<Gou>().ok_or_else(|| Error::Config("not a GOU family".into()))?;
        let (ti, s) = (t as usize, t - 1.0);
        let (mt, ms) = (f.m(t), f.m(s));
        let (ft, fs) = (f.f_sigma(t), f.f_sigma(s));
        if !(ft > 0.0 && ms > 0.0) {
            return Err(Error::Config(format!("GOU posterior undefined at t = {t}")));
        }
        let rho = fs * fs * (mt / ms) / (ft * ft);
        // Posterior mean of x_{t−1}: ρ·x_t + (m_s − ρ m_t)·x0 + (n_s − ρ n_t)·μ, n = 1 − m.
        let (nt, ns) = (1.0 - mt, 1.0 - ms);
        let dt = f.dt();
        let c_x = 1.0 + (f.theta(ti) + f.g2(ti) * f.h_coef(ti)) * dt;
        let c_mu = 1.0 - c_x;
        let c_eps = -f.g2(ti) * dt / ft;
        // ε* = (r_mean − C_x·x_t − C_μ·μ)/C_ε with x_t = m_t x0 + n_t μ + f_σ z.
        let target = Form { x0: (ms - c_x * mt) / c_eps, xt: (ns - c_x * nt - c_mu) / c_eps, z: (rho - c_x) * x_t.z / c_eps };
        Ok((target, c_eps.abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge::family::ddbm::DdbmParams;
    use bridge::family::gou::GouParams;
    use bridge::family::i2sb::I2sbParams;
    use bridge::family::nadb::NadbParams;
    use bridge::family::rdbm::{RdbmParams, ResidualNoise};

    fn families() -> Vec<Box<dyn Family>> {
        vec![
            Box::new(I2sb::new(I2sbParams::default()).unwrap()),
            Box::new(Ddbm::new(DdbmParams::vp()).unwrap()),
            Box::new(Ddbm::new(DdbmParams::ve()).unwrap()),
            Box::new(Ddbm::new(DdbmParams::dbim_i2sb()).unwrap()),
            Box::new(Gou::new(GouParams::goub()).unwrap()),
            Box::new(Gou::new(GouParams::unidb(1e-7)).unwrap()),
            Box::new(Rdbm::new(RdbmParams::default()).unwrap()),
            Box::new(Rdbm::new(RdbmParams { objective: RdbmObjective::PredNoise, ..Default::default() }).unwrap()),
            Box::new(Nadb::new(NadbParams::default()).unwrap()),
            Box::new(Nadb::new(NadbParams { mean_network: false, ..Default::default() }).unwrap()),
        ]
    }

    /// Point-mass data: for every x-parameterized family, the target fed through the family's own
    /// `x0̂` map returns `x0` exactly, whatever the endpoint and the noise; the target is what the
    /// reference regresses (I2SB's label, RDBM's `x0`, NADB's scaled drift, `z` for `ε`-nets).
    #[test]
    fn targets_map_back_to_x0() {
        let mut rng = Rng::new(3, 0);
        for f in families() {
            if f.name() == "goub" || f.name() == "unidb" {
                continue; // posterior-mean matching, tested below
            }
            let o = Objective::new(f.as_ref()).unwrap();
            for _ in 0..200 {
                let d = o.draw(&mut rng).unwrap();
                let (x0, xe, n) = (rng.range(-1.0, 1.0), rng.range(-1.0, 1.0), rng.normal() as f64);
                let xt = d.x_t.at(x0, xe, n);
                let raw = d.target.at(x0, xe, n);
                let back = d.x0_of(xt, xe, raw).unwrap();
                assert!((back - x0).abs() < 1e-9 * (1.0 + raw.abs()), "{} t={}: {back} vs {x0}", f.name(), d.t);
                match f.name() {
                    "i2sb" => {
                        let s = f.downcast::<I2sb>().unwrap().std_fwd(d.t);
                        assert!((raw - (xt - x0) / s).abs() < 1e-9 * (1.0 + raw.abs()));
                    }
                    "rdbm" if d.target.z == 0.0 => assert_eq!(d.target, Form { x0: 1.0, xt: 0.0, z: 0.0 }),
                    "rdbm" => assert!((raw - n).abs() < 1e-9 * (1.0 + n.abs()), "ε target"),
                    "nadb" => {
                        let nf = f.downcast::<Nadb>().unwrap();
                        let want = nf.out_scale() * (xt - x0) / nf.t_pow(d.t);
                        assert!((raw - want).abs() < 1e-9 * (1.0 + want.abs()));
                    }
                    _ => {}
                }
            }
        }
    }

    /// DDBM's loss equals its `bridge_karras`-weighted `x0` MSE: with `F` off the target by δ,
    /// `x0̂ − x0 = c_out·δ`, and the weight `1/c_out²` cancels it.
    #[test]
    fn ddbm_target_is_the_preconditioned_residual() {
        let f = Ddbm::new(DdbmParams::vp()).unwrap();
        let o = Objective::new(&f).unwrap();
        let d = o.draw_at(0.37).unwrap();
        let l = d.x0.unwrap();
        let (x0, xe, n) = (0.3, -0.6, 0.8);
        let raw = d.target.at(x0, xe, n) + 0.01;
        let err = d.x0_of(d.x_t.at(x0, xe, n), xe, raw).unwrap() - x0;
        assert!((err - 0.01 * l.out).abs() < 1e-12);
        assert_eq!((d.weight, o.loss()), (1.0, Loss::L2));
        assert!(d.c_in > 0.0 && d.c_in != 1.0);
    }

    /// GOUB: the posterior ratio is the closed form `sinh τ_s / sinh τ_t` (the family's
    /// `ancestral_ratio`), and one Euler mean step with `ε*` lands exactly on the posterior mean
    /// computed independently from it. For both GOUB and UniDB, `ε*` is close to the true noise
    /// `z` (the discretization gap is O(dt)) and its weight is `|C_ε|`.
    #[test]
    fn gou_target_is_posterior_mean_matching() {
        for p in [GouParams::goub(), GouParams::unidb(1e-7)] {
            let f = Gou::new(p).unwrap();
            let o = Objective::new(&f).unwrap();
            assert_eq!(o.loss(), Loss::L1);
            for t in [1usize, 2, 30, 70, 99] {
                let d = o.draw_at(t as f64).unwrap();
                let (tf, s) = (t as f64, t as f64 - 1.0);
                let (x0, mu, z) = (0.4, -0.3, 0.9);
                let xt = d.x_t.at(x0, mu, z);
                let eps = d.target.at(x0, mu, z);
                let dt = f.dt();
                let cx = 1.0 + (f.theta(t) + f.g2(t) * f.h_coef(t)) * dt;
                let ce = -f.g2(t) * dt / f.f_sigma(tf);
                let step = cx * xt + (1.0 - cx) * mu + ce * eps;
                let rho = if p.gamma_inv == 0.0 {
                    f.ancestral_ratio(tf, s).unwrap_or(0.0)
                } else {
                    f.f_sigma(s).powi(2) * f.m(tf) / f.m(s) / f.f_sigma(tf).powi(2)
                };
                let (mt, ms) = (f.m(tf), f.m(s));
                let post = ms * x0 + (1.0 - ms) * mu + rho * (xt - mt * x0 - (1.0 - mt) * mu);
                assert!((step - post).abs() < 1e-12, "t={t}: {step} vs {post}");
                assert!((d.weight - ce.abs()).abs() < 1e-15);
                if t > 1 {
                    assert!((eps - z).abs() < 0.1, "t={t}: ε* = {eps}, z = {z}");
                }
            }
            assert!(o.draw_at(100.0).is_err() && o.draw_at(0.0).is_err());
        }
        // The GOUB ratio from the code's formula equals sinh τ_s/sinh τ_t.
        let f = Gou::new(GouParams::goub()).unwrap();
        for t in [2.0, 50.0, 99.0] {
            let rho = f.f_sigma(t - 1.0).powi(2) * f.m(t) / f.m(t - 1.0) / f.f_sigma(t).powi(2);
            assert!((rho - f.ancestral_ratio(t, t - 1.0).unwrap()).abs() < 1e-9, "t={t}");
        }
    }

    /// RDBM with the paper's residual-modulated noise: the noise slot is flagged and the ε target
    /// is the (modulated) noise itself.
    #[test]
    fn rdbm_residual_flags_the_noise() {
        let f =
            Rdbm::new(RdbmParams { objective: RdbmObjective::PredNoise, residual: Some(ResidualNoise { eta: 0.5 }), ..Default::default() })
                .unwrap();
        let d = Objective::new(&f).unwrap().draw_at(40.0).unwrap();
        assert!(d.residual_noise);
        assert!((d.target.z - 1.0).abs() < 1e-12 && d.target.x0.abs() < 1e-12);
    }

    /// Times come from each family's training support; the focus grid puts mass on the sampler's
    /// times; NADB's endpoint rule follows the mean network.
    #[test]
    fn time_distributions() {
        let mut rng = Rng::new(9, 1);
        for f in families() {
            let o = Objective::new(f.as_ref()).unwrap();
            let (lo, hi) = o.support();
            let ts: Vec<f64> = (0..2000).map(|_| o.sample_time(&mut rng)).collect();
            assert!(ts.iter().all(|&t| t >= lo && t <= hi), "{}", f.name());
            let (mn, mx) = ts.iter().fold((f64::MAX, f64::MIN), |(a, b), &t| (a.min(t), b.max(t)));
            assert!(mn - lo < 0.05 * (hi - lo) && hi - mx < 0.05 * (hi - lo), "{}: [{mn}, {mx}]", f.name());
            if o.discrete() {
                assert!(ts.iter().all(|t| t.fract() == 0.0));
            }
        }
        let f = I2sb::new(I2sbParams::default()).unwrap();
        let o = Objective::new(&f).unwrap().with_focus(4, 1.0).unwrap();
        let grid = f.grid(4).unwrap();
        for _ in 0..100 {
            let t = o.sample_time(&mut rng);
            assert!(grid[..4].contains(&t), "{t}");
        }
        assert!(Objective::new(&f).unwrap().with_focus(4, 1.5).is_err());
        let g = Gou::new(GouParams::goub()).unwrap();
        let o = Objective::new(&g).unwrap().with_focus(5, 1.0).unwrap();
        // The grid's top (t = T, no posterior) is projected into the support.
        assert!((0..50).all(|_| o.sample_time(&mut rng) <= 99.0));
        let n = Nadb::new(NadbParams::default()).unwrap();
        assert!(Objective::new(&n).unwrap().endpoint_is_mean());
        let n1 = Nadb::new(NadbParams { mean_network: false, ..Default::default() }).unwrap();
        assert!(!Objective::new(&n1).unwrap().endpoint_is_mean());
    }
}
