//! DBIM, diffusion bridge implicit models (Zheng et al., ICLR 2025; thu-ml/DiffusionBridge
//! @9252273, `ddbm/karras_diffusion.py` `sample_dbim`, `sample_dbim_high_order`).
//!
//! DBIM *is* the generic implicit step ([`super::implicit`]): order 1 is its rows (a plan),
//! orders 2 and 3 its high-order loop:
//!
//! * **NFE and grid.** `nfe` network calls on the family's grid ([`super::implicit::grid_for`]).
//!   On DDBM/DBIM schedules that is DBIM's: the bootstrap call at `t_max`, then
//!   `steps = nfe − 1` steps on float32 `linspace(t_max − 1e-3, t_min, nfe)`
//!   ([`crate::family::ddbm::Ddbm`]'s grid).
//! * **Bootstrap** `x0̂ = D(x_T, t_max)`, `x = a·x0̂ + b·x_T + c·z` at the first grid time (draw 0).
//! * **Order 1, η ∈ [0, 1]:** each step `s → t` is the η-step `ω = η·α_t ρ_t √(1 − ρ_t²/ρ_s²)`,
//!   `x_t = (b_t − k b_s)·x0̂ + (a_t − k a_s)·x_T + k·x_s + ω·z`, `k = √(c_t² − ω²)/c_s` — the implicit
//!   row with the family's ancestral ratio (for DDBM/DBIM families that ratio is defined from this
//!   very ω, so η = 1 is DBIM's ancestral step); the last step drops the ω-term, its draw (number
//!   `k` for step `k`) still counted. On any other family η > 0 uses that family's ancestral ratio.
//! * **Orders 2 and 3** (η = 0 only: the reference's high-order sampler has no η and is
//!   deterministic) reuse the one or two previous `x0̂` estimates in an exponential integrator in
//!   `λ = log(b/c)`; the first step after the bootstrap and the last step are first order.
//!   They run on any family whose marginal has `b > 0`, `c > 0` inside the grid.
//! * **Inpainting:** `x0̂ ← mask·x0̂ + (1 − mask)·x_T` after every call.
//! * **Output** clamped to [−1, 1] (`karras_sample` clamps its result); recorded states are the
//!   unclamped path (bootstrap state, then every step).

use super::Model;
use super::implicit::{check_eta, grid_for, rows, run_high_order};
use super::plan::Plan;
use crate::family::Family;
use crate::rng::NoiseSource;
use crate::step;
use crate::{Error, Result, Tensor};

/// DBIM order 1's plan: the implicit rows on the family's grid, the output clamped to [−1, 1].
pub(super) fn plan(family: &dyn Family, nfe: usize, eta: f64, masked: bool) -> Result<Plan> {
    check_eta(eta)?;
    rows(family, &grid_for(family, nfe)?, eta, Some((-1.0, 1.0)), masked)
}

/// Run DBIM's high-order sampler with `nfe` evaluations (`steps = nfe − 1`), `order ∈ {2, 3}`,
/// `eta = 0` (order 1 is a plan: [`super::plan::plan`]).
pub fn sample(model: &mut Model<'_>, nfe: usize, eta: f64, order: u8, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    check_eta(eta)?;
    if !(1..=3).contains(&order) {
        return Err(Error::param("order", format!("{order}: DBIM has orders 1, 2 and 3")));
    }
    if order > 1 && eta != 0.0 {
        return Err(Error::param("eta", format!("{eta}: DBIM's high-order samplers are deterministic (η = 0)")));
    }
    if order == 1 {
        return Err(Error::param("order", "DBIM order 1 runs as a plan (sampler::sample)"));
    }
    let grid = grid_for(model.family(), nfe)?;
    let mut x = run_high_order(model, &grid, order, noise)?;
    step::clamp(&mut x, -1.0, 1.0);
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::Family;
    use crate::family::ddbm::{Ddbm, DdbmParams};
    use crate::family::gou::{Gou, GouParams};
    use crate::family::i2sb::{I2sb, I2sbParams};
    use crate::family::nadb::{Nadb, NadbParams};
    use crate::rng::PhiloxNoise;
    use crate::sampler::testing::{self, max_abs_diff};
    use crate::sampler::{Hooks, Sampler, sample as run_sampler};
    use crate::{FnDenoiser, PointMassOracle, TensorView};

    fn images() -> (Tensor, Tensor) {
        testing::images(1)
    }

    /// With the exact denoiser every variant ends on the marginal at `t_min` around x0: exactly
    /// `b·x0 + a·x_T + c·z₀` for the deterministic ones (η = 0 and the high orders, whose
    /// corrections vanish for a constant x0̂; `z₀` = the bootstrap draw), within `5c` for η > 0.
    /// At `t_min` the marginal's std `c` is 3.2e-3 (VP), 2e-3 (VE), 1e-2 (DBIM's I2SB), and its
    /// mean is x0 up to 1e-4, so the output is x0 to within `6c`.
    #[test]
    fn point_mass_lands_on_x0() {
        let (x0, xt) = images();
        for p in [DdbmParams::vp(), DdbmParams::ve(), DdbmParams::dbim_i2sb()] {
            let f = Ddbm::new(p).unwrap();
            for (eta, order) in [(0.0, 1), (0.5, 1), (1.0, 1), (0.0, 2), (0.0, 3)] {
                for nfe in [2, 4, 10] {
                    let mut oracle = PointMassOracle::new(x0.clone());
                    let mut model = Model::new(&mut oracle, &f, xt.view(), xt.view()).unwrap();
                    let out = run_sampler(&mut model, &Sampler::Dbim { eta, order }, nfe, &mut PhiloxNoise::new(5)).unwrap();
                    assert_eq!(model.calls(), nfe);
                    let m = f.marginal(f.t_min());
                    let mean = x0.mapv(|v| v * m.x0 as f32) + &xt.mapv(|v| v * m.xt as f32);
                    let mut z0 = Tensor::zeros(x0.raw_dim());
                    PhiloxNoise::new(5).fill(0, z0.view_mut()).unwrap();
                    let tag = format!("{} η {eta} order {order} nfe {nfe}", f.name());
                    if eta == 0.0 {
                        let want = &mean + &z0.mapv(|v| v * m.std as f32);
                        assert!(max_abs_diff(&out, &want) < 2e-5, "{tag}: {}", max_abs_diff(&out, &want));
                    } else {
                        assert!((max_abs_diff(&out, &mean) as f64) < 1e-5 + 5.0 * m.std, "{tag}");
                    }
                    assert!((max_abs_diff(&out, &x0) as f64) < 1e-4 + 6.0 * m.std, "{tag}: {}", max_abs_diff(&out, &x0));
                }
            }
        }
    }

    /// η = 1 is ancestral sampling: after the bootstrap, one η = 1 step from a state drawn from
    /// q(x_s | x0, x_T) gives the same distribution as drawing x_t from the bridge posterior
    /// q(x_t | x_s, x0) directly — whose kept ratio, for the VP/VE bridges (Gaussian Markov,
    /// covariance α_sα_t ρ_t² ρ̄_s²/ρ_T² for t < s), is `α_t ρ_t²/(α_s ρ_s²)`. Compared per pixel:
    /// mean and std of 16k samples of both.
    #[test]
    fn eta_one_matches_ancestral_sampling_in_distribution() {
        for p in [DdbmParams::vp(), DdbmParams::ve()] {
            let f = Ddbm::new(p).unwrap();
            let shape = (1, 1, 128, 128);
            let (x0v, xtv) = (0.4f32, -0.5f32);
            let (x0, xt) = (Tensor::from_elem(shape, x0v), Tensor::from_elem(shape, xtv));
            let mut states = Vec::new();
            let mut rec = |x: &Tensor| states.push(x.clone());
            let mut oracle = PointMassOracle::new(x0.clone());
            let mut model =
                Model::new(&mut oracle, &f, xt.view(), xt.view()).unwrap().with_hooks(Hooks { on_call: None, on_state: Some(&mut rec) });
            run_sampler(&mut model, &Sampler::Dbim { eta: 1.0, order: 1 }, 4, &mut PhiloxNoise::new(9)).unwrap();
            let g = f.grid(4).unwrap();
            let (s, t) = (g[1], g[2]);
            // Direct ancestral draw from states[0] (a sample at s) with independent noise.
            let (ars, art) = (f.alpha_rho(s), f.alpha_rho(t));
            let k = art.alpha * art.rho * art.rho / (ars.alpha * ars.rho * ars.rho);
            let (ms, mt) = (f.marginal(s), f.marginal(t));
            let var = mt.std * mt.std - k * k * ms.std * ms.std;
            let mut z = Tensor::zeros(shape);
            PhiloxNoise::new(77).fill(0, z.view_mut()).unwrap();
            let direct = ndarray::Zip::from(&states[0]).and(&z).map_collect(|&xs, &zz| {
                let mean = k * xs as f64 + (mt.x0 - k * ms.x0) * x0v as f64 + (mt.xt - k * ms.xt) * xtv as f64;
                (mean + var.sqrt() * zz as f64) as f32
            });
            let stats = |a: &Tensor| {
                let n = a.len() as f64;
                let m = a.iter().map(|&v| v as f64).sum::<f64>() / n;
                (m, (a.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n).sqrt())
            };
            let ((m1, s1), (m2, s2)) = (stats(&states[1]), stats(&direct));
            let se = mt.std / (shape.2 as f64);
            assert!((m1 - m2).abs() < 6.0 * se, "{}: mean {m1} vs {m2}", f.name());
            assert!((s1 / s2 - 1.0).abs() < 0.04, "{}: std {s1} vs {s2}", f.name());
            // And the family's ancestral ratio is that closed form.
            assert!((f.ancestral_ratio(s, t).unwrap() - k).abs() < 1e-9 * k, "{}", f.name());
        }
    }

    /// With a denoiser whose estimate moves with t, the high orders differ from order 1 and
    /// from each other, but agree on the first two states (bootstrap + first-order step).
    #[test]
    fn high_orders_use_the_history() {
        let (_, xt) = images();
        let f = Ddbm::new(DdbmParams::vp()).unwrap();
        let mut outs = Vec::new();
        for order in [1u8, 2, 3] {
            let mut net = FnDenoiser(|x: TensorView<'_>, c: TensorView<'_>, t: f64| {
                Ok(ndarray::Zip::from(&x).and(&c).map_collect(|&a, &b| 0.3 * a + 0.5 * b + 0.001 * t as f32))
            });
            let mut states = Vec::new();
            let mut rec = |x: &Tensor| states.push(x.clone());
            let mut model =
                Model::new(&mut net, &f, xt.view(), xt.view()).unwrap().with_hooks(Hooks { on_call: None, on_state: Some(&mut rec) });
            run_sampler(&mut model, &Sampler::Dbim { eta: 0.0, order }, 6, &mut PhiloxNoise::new(3)).unwrap();
            outs.push(states);
        }
        for o in [1, 2] {
            assert_eq!(outs[0][..2], outs[o][..2]);
            assert!(max_abs_diff(&outs[0][4], &outs[o][4]) > 1e-6, "order {} uses its history", o + 1);
        }
        assert!(max_abs_diff(&outs[1][4], &outs[2][4]) > 1e-7);
    }

    /// DBIM runs on other families through the Family trait: order 1 with η (their ancestral
    /// ratio) and the high orders, landing on x0 with the exact denoiser.
    #[test]
    fn runs_on_other_families() {
        let (x0, xt) = images();
        let (x0p, xtp) = (x0.mapv(|v| v * 0.5 + 0.5), xt.mapv(|v| v * 0.5 + 0.5));
        let goub = Gou::new(GouParams::goub()).unwrap();
        let nadb = Nadb::new(NadbParams::default()).unwrap();
        let fams: [(&dyn Family, &Tensor, &Tensor); 2] = [(&goub, &x0p, &xtp), (&nadb, &x0, &xt)];
        for (f, a, b) in fams {
            for (eta, order) in [(0.5, 1), (1.0, 1), (0.0, 2), (0.0, 3)] {
                let mut oracle = PointMassOracle::new(a.clone());
                let mut model = Model::new(&mut oracle, f, b.view(), b.view()).unwrap();
                let out = run_sampler(&mut model, &Sampler::Dbim { eta, order }, 8, &mut PhiloxNoise::new(2)).unwrap();
                assert_eq!(model.calls(), 8);
                assert!(max_abs_diff(&out, a) < 1e-5, "{} η {eta} order {order}", f.name());
            }
        }
    }

    /// On I2SB's own family (whose index 0 keeps std σ_f(0)σ_b(0)/… ≈ 0.01) DBIM ends on that
    /// marginal around x0: exactly `a·x0 + b·x_T + c·z₀` when deterministic, within `5c` with η.
    #[test]
    fn runs_on_the_i2sb_family() {
        let (x0, xt) = images();
        let f = I2sb::new(I2sbParams::default()).unwrap();
        let m = f.marginal(0.0);
        let mean = x0.mapv(|v| v * m.x0 as f32) + &xt.mapv(|v| v * m.xt as f32);
        let mut z0 = Tensor::zeros(x0.raw_dim());
        PhiloxNoise::new(8).fill(0, z0.view_mut()).unwrap();
        for (eta, order) in [(0.0, 1), (0.0, 2), (0.0, 3), (0.5, 1), (1.0, 1)] {
            for nfe in [2, 5, 20] {
                let mut oracle = PointMassOracle::new(x0.clone());
                let mut model = Model::new(&mut oracle, &f, xt.view(), xt.view()).unwrap();
                let out = run_sampler(&mut model, &Sampler::Dbim { eta, order }, nfe, &mut PhiloxNoise::new(8)).unwrap();
                assert_eq!(model.calls(), nfe);
                let tag = format!("η {eta} order {order} nfe {nfe}");
                if eta == 0.0 {
                    let want = &mean + &z0.mapv(|v| v * m.std as f32);
                    assert!(max_abs_diff(&out, &want) < 2e-5, "{tag}: {}", max_abs_diff(&out, &want));
                } else {
                    assert!((max_abs_diff(&out, &mean) as f64) < 1e-5 + 5.0 * m.std, "{tag}");
                }
            }
        }
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let (x0, xt) = images();
        let vp = Ddbm::new(DdbmParams::vp()).unwrap();
        let mut oracle = PointMassOracle::new(x0.clone());
        let mut m = Model::new(&mut oracle, &vp, xt.view(), xt.view()).unwrap();
        let mut z = PhiloxNoise::new(0);
        for (eta, order) in [(0.0, 4), (0.0, 0), (0.5, 2), (1.0, 3), (2.0, 1), (-0.5, 1), (f64::NAN, 1)] {
            let r = run_sampler(&mut m, &Sampler::Dbim { eta, order }, 5, &mut z);
            assert!(matches!(r, Err(Error::InvalidParam { .. })), "η {eta} order {order}");
        }
        assert!(matches!(run_sampler(&mut m, &Sampler::Dbim { eta: 0.0, order: 1 }, 0, &mut z), Err(Error::InvalidNfe { .. })));
        assert!(matches!(run_sampler(&mut m, &Sampler::Dbim { eta: 0.0, order: 2 }, 200_000, &mut z), Err(Error::InvalidNfe { .. })));
        // DBIM's I2SB schedule beyond its 1000 indices.
        let i2 = Ddbm::new(DdbmParams::dbim_i2sb()).unwrap();
        let mut m2 = Model::new(&mut oracle, &i2, xt.view(), xt.view()).unwrap();
        assert!(matches!(run_sampler(&mut m2, &Sampler::Dbim { eta: 0.0, order: 1 }, 5000, &mut z), Err(Error::InvalidNfe { .. })));
        let mut nan = FnDenoiser(|x: TensorView<'_>, _c: TensorView<'_>, _t: f64| Ok(x.mapv(|_| f32::NAN)));
        let mut m3 = Model::new(&mut nan, &vp, xt.view(), xt.view()).unwrap();
        assert!(matches!(run_sampler(&mut m3, &Sampler::Dbim { eta: 0.0, order: 3 }, 5, &mut z), Err(Error::NonFinite { .. })));
    }
}
