//! NADB's posterior sampler, a row plan ([`super::plan`]) (`Diffusion.ddpm_sampling` / `p_posterior` in gyr02/NADB
//! `nadb/diffusion.py`, `docs/math/nadb.md` §4).
//!
//! Starts at the model's endpoint `x_T` — the mean network's `M(x1)` (see
//! [`crate::family::nadb::endpoint`]) or `x1` — and walks the family's grid
//! (`space_indices(1001, nfe + 1)` from 1000 down). Each step `n → n'` is the implicit step of
//! eq. (1) on `x0̂ = x_t − t^α·D`:
//!
//! ```text
//! x_s = ρ x_t + (a_s − ρ a_t) x0̂ + (b_s − ρ b_t) x_T + sqrt(s_s² − ρ² s_t²)·z,
//! ρ = s/t if s < d (float32 comparison) else (s/t)^α
//! ```
//!
//! which is algebraically the reference's `A·D + B·x + C·x̃1` mean (and, in the `s ≥ d` branch,
//! `x − D(t^α − s^α)`, where `b_s − ρ b_t = 0`). No noise on the last step (to `n = 0`).
//! NFE = `nfe` bridge-network calls (the one mean-network call is the runtime's). Draw `k` is
//! the noise of step `k` (`k = 0..nfe−2`).

use super::implicit::{StepRow, implicit_row};
use super::plan::{Builder, Plan, Source};
use crate::family::Family;
use crate::family::nadb::Nadb;
use crate::{Error, Result};

/// NADB's plan for `nfe` steps (the sampler ignores an inpainting mask).
pub(super) fn plan(family: &dyn Family, nfe: usize, masked: bool) -> Result<Plan> {
    let f = family.downcast::<Nadb>().ok_or_else(|| Error::incompatible("nadb", family.name(), "NADB's sampler needs the NADB family"))?;
    let grid = f.grid(nfe)?;
    let mut b = Builder::new(family, &[Source::X0, Source::XEnd], true, masked);
    for (k, w) in grid.windows(2).enumerate() {
        let (n, n_prev) = (w[0], w[1]);
        let row = step_row(f, n, n_prev)?;
        b.step(Some(family.net_call(n)), row.c_x, &[row.c_0, row.c_t])?.set_noise(row.c_z, k as u64);
    }
    Ok(b.finish(None))
}

/// The row of step `n → n_prev`, with no noise on the last step (to `n = 0`).
pub(crate) fn step_row(f: &Nadb, n: f64, n_prev: f64) -> Result<StepRow> {
    let (mt, ms) = (f.marginal(n), f.marginal(n_prev));
    let rho = f.rho(n, n_prev);
    let var = ms.std * ms.std - rho * rho * mt.std * mt.std;
    if var < -1e-12 {
        // Unreachable for d ≥ (1 − α)/(2 − α) (checked by the family); the reference divides by zero.
        return Err(Error::param("d", format!("negative posterior variance {var} at step {n} → {n_prev}")));
    }
    let row = implicit_row(mt, ms, rho);
    Ok(StepRow { c_z: if n_prev > 0.0 { row.c_z } else { 0.0 }, ..row })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;
    use crate::family::nadb::{NadbParams, Threshold};
    use crate::rng::NoiseSource;
    use crate::rng::PhiloxNoise;
    use crate::sampler::Model;
    use crate::sampler::{Hooks, Sampler, sample as run};
    use crate::step::{self, NoiseTerm, Term};
    use crate::{FnDenoiser, PointMassOracle, TensorView};

    fn images() -> (Tensor, Tensor) {
        let x0 = Tensor::from_shape_fn((1, 3, 4, 4), |(_, c, y, x)| ((c * 5 + y * 3 + x) % 7) as f32 * 0.3 - 0.9);
        let xt = Tensor::from_shape_fn((1, 3, 4, 4), |(_, c, y, x)| ((c + y * 2 + x) % 5) as f32 * 0.2 - 0.4);
        (x0, xt)
    }

    /// With the exact denoiser the stochastic sampler ends exactly on x0 (ρ = 0 and no noise on
    /// the last step), for both thresholds and both output scalings.
    #[test]
    fn point_mass_lands_on_x0() {
        let (x0, xt) = images();
        for d in [Threshold::Smallest, Threshold::Value(1.0)] {
            for mean_network in [true, false] {
                let f = Nadb::new(NadbParams { d, mean_network, ..Default::default() }).unwrap();
                for nfe in [1, 2, 5, 16] {
                    let mut oracle = PointMassOracle::new(x0.clone());
                    let mut model = Model::new(&mut oracle, &f, xt.view(), xt.view()).unwrap();
                    let out = run(&mut model, &Sampler::Nadb, nfe, &mut PhiloxNoise::new(2)).unwrap();
                    assert_eq!(model.calls(), nfe);
                    let err = out.iter().zip(&x0).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                    assert!(err < 1e-5, "{d:?} mean {mean_network} nfe {nfe}: {err}");
                }
            }
        }
    }

    /// Posterior/marginal consistency: from x_t ~ q(x_t | x0, x_T), one sampler step lands on
    /// the marginal at s (mean and std over many pixels, fixed seed).
    #[test]
    fn one_step_reproduces_the_marginal() {
        let f = Nadb::new(NadbParams::default()).unwrap();
        let (x0v, xtv) = (0.5f32, -0.3f32);
        let shape = (1, 1, 128, 128);
        let (x0, xt) = (Tensor::from_elem(shape, x0v), Tensor::from_elem(shape, xtv));
        for (t, s) in [(800.0, 500.0), (500.0, 300.0)] {
            // Sample x_t from the marginal with seed 7, then one step with seed 8 (draw 0).
            let mt = f.marginal(t);
            let mut z = Tensor::zeros(shape);
            PhiloxNoise::new(7).fill(0, z.view_mut()).unwrap();
            let xt_state = z.mapv(|v| (mt.x0 * x0v as f64 + mt.xt * xtv as f64 + mt.std * v as f64) as f32);
            let mut oracle = PointMassOracle::new(x0.clone());
            let mut model = Model::new(&mut oracle, &f, xt.view(), xt.view()).unwrap();
            let x0h = model.x0(&xt_state, t).unwrap();
            let (ms, rho) = (f.marginal(s), f.rho(t, s));
            let row = implicit_row(mt, ms, rho);
            let mut x = xt_state.clone();
            let mut noise = PhiloxNoise::new(8);
            let zt = NoiseTerm { coef: row.c_z, draw: 0, source: &mut noise };
            step::update(&mut x, row.c_x, &[Term::new(row.c_0, x0h.view()), Term::new(row.c_t, xt.view())], Some(zt)).unwrap();
            let n = x.len() as f64;
            let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
            let sd = (x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
            let want = ms.x0 * x0v as f64 + ms.xt * xtv as f64;
            assert!((mean - want).abs() < 4.0 * ms.std / n.sqrt(), "{t}→{s}: mean {mean} vs {want}");
            assert!((sd / ms.std - 1.0).abs() < 0.03, "{t}→{s}: std {sd} vs {}", ms.std);
        }
    }

    #[test]
    fn draws_are_numbered_per_step_and_none_on_the_last() {
        let (x0, xt) = images();
        let f = Nadb::new(NadbParams::default()).unwrap();
        struct Log(Vec<u64>);
        impl NoiseSource for Log {
            fn fill(&mut self, draw: u64, mut out: crate::TensorViewMut<'_>) -> Result<()> {
                self.0.push(draw);
                out.fill(0.0);
                Ok(())
            }
        }
        let mut log = Log(Vec::new());
        let mut oracle = PointMassOracle::new(x0);
        let mut n_states = 0;
        let mut count = |_: &Tensor| n_states += 1;
        let mut model =
            Model::new(&mut oracle, &f, xt.view(), xt.view()).unwrap().with_hooks(Hooks { on_call: None, on_state: Some(&mut count) });
        run(&mut model, &Sampler::Nadb, 5, &mut log).unwrap();
        assert_eq!(log.0, vec![0, 1, 2, 3]);
        assert_eq!(n_states, 5);
    }

    #[test]
    fn bad_input_is_an_error() {
        let (x0, xt) = images();
        let f = Nadb::new(NadbParams::default()).unwrap();
        let mut oracle = PointMassOracle::new(x0.clone());
        for nfe in [0, 1001] {
            let mut model = Model::new(&mut oracle, &f, xt.view(), xt.view()).unwrap();
            assert!(matches!(run(&mut model, &Sampler::Nadb, nfe, &mut PhiloxNoise::new(0)), Err(Error::InvalidNfe { .. })));
        }
        let r = crate::family::rdbm::Rdbm::new(Default::default()).unwrap();
        let mut model = Model::new(&mut oracle, &r, xt.view(), xt.view()).unwrap();
        assert!(matches!(run(&mut model, &Sampler::Nadb, 5, &mut PhiloxNoise::new(0)), Err(Error::Incompatible { .. })));
        let mut nan = FnDenoiser(|x: TensorView<'_>, _c: TensorView<'_>, _t: f64| Ok(x.mapv(|_| f32::NAN)));
        let mut model = Model::new(&mut nan, &f, xt.view(), xt.view()).unwrap();
        assert!(matches!(run(&mut model, &Sampler::Nadb, 5, &mut PhiloxNoise::new(0)), Err(Error::NonFinite { .. })));
    }
}
