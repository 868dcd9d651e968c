//! I2SB's DDPM-posterior sampler and OT-ODE, as a row plan ([`super::plan`]) (NVlabs/I2SB @1ffdfaa, `Diffusion.ddpm_sampling` /
//! `p_posterior`, `Runner.ddpm_sampling`).
//!
//! On the grid `space_indices(N, nfe + 1)` walked from `N − 1` ([`I2sb`]'s grid), each step
//! `n → m` samples the forward chain's posterior given `x0̂` ([`I2sb::posterior`]):
//!
//! ```text
//! δ² = σ_f(n)² − σ_f(m)²,   x_m = δ²/σ_f(n)²·x0̂ + σ_f(m)²/σ_f(n)²·x_n + √(σ_f(m)²δ²/σ_f(n)²)·z
//! ```
//!
//! with no `z` on the step to `m = 0` and none at all with OT-ODE. NFE = `nfe` network calls,
//! `0 < nfe < N`. The last state is the posterior at index 0, which still keeps
//! `σ_f(0)²/σ_f(n)²` of the previous state (`σ_f(0)² = β_0 = 1e-4`): the reference's output.
//!
//! **Inpainting** (`Model::mask`, 1 = generate): the start state is `x_T` outside the mask and
//! noise inside (`x1 = (1 − mask)·x1 + mask·z`); after each step the pixels outside the mask are
//! reset to `x_T + std_sb(m)·z` (`x_T` with OT-ODE) — also after the last step, where
//! `std_sb(0) ≈ 0.01`, as the reference does.
//!
//! **Draws** are numbered in the reference's order, counting only tensors it draws: the mask's
//! start noise (with a mask), then per step the posterior noise (not on the last step, not with
//! OT-ODE) and the reset noise (with a mask, not with OT-ODE). Without a mask: draw `k` is the
//! noise of step `k`.
//!
//! The posterior is I2SB's own chain (it has no `x_T` term: the forward process is a Brownian
//! motion from `x0`), so the sampler needs the [`I2sb`] family; the implicit sampler with η = 1
//! is its analogue on every family.

use super::plan::{Builder, Plan, Reset, Source};
use crate::family::Family;
use crate::family::i2sb::I2sb;
use crate::{Error, Result};

/// I2SB's plan for `nfe` steps (OT-ODE when `ot_ode`; inpainting rules when `masked`).
pub(super) fn plan(family: &dyn Family, nfe: usize, ot_ode: bool, masked: bool) -> Result<Plan> {
    let f = family
        .downcast::<I2sb>()
        .ok_or_else(|| Error::incompatible("i2sb", family.name(), "I2SB's posterior is the I2SB chain's; use `implicit` (η = 1) here"))?;
    let grid = f.grid(nfe)?;
    let mut b = Builder::new(family, &[Source::X0], true, masked);
    // Only drawn tensors are numbered (the reference's order).
    let mut draw = 0u64;
    if masked {
        // x1 = (1 − mask)·x1 + mask·z: a fresh draw, then x_T outside the mask; not recorded.
        let st = b.step(None, 0.0, &[0.0])?.set_noise(1.0, draw);
        st.reset = Some(Reset { noise: None });
        st.record = false;
        draw += 1;
    }
    for w in grid.windows(2) {
        let (n, m) = (w[0], w[1]);
        let (c_x0, c_xn, var) = f.posterior(n, m);
        let c_z = if !ot_ode && m > 0.0 { var.sqrt() } else { 0.0 };
        let st = b.step(Some(family.net_call(n)), c_xn, &[c_x0])?.set_noise(c_z, draw);
        if c_z != 0.0 {
            draw += 1;
        }
        if masked {
            // Outside the mask: x_T + std_sb(m)·z (x_T with OT-ODE).
            st.reset = Some(Reset { noise: (!ot_ode).then(|| (f.std_sb(m), draw)) });
            if !ot_ode {
                draw += 1;
            }
        }
    }
    Ok(b.finish(None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;
    use crate::family::i2sb::I2sbParams;
    use crate::rng::NoiseSource;
    use crate::rng::PhiloxNoise;
    use crate::sampler::Model;
    use crate::sampler::testing::{self, max_abs_diff};
    use crate::sampler::{Hooks, Sampler, sample as run};
    use crate::{FnDenoiser, PointMassOracle, TensorView};

    fn images() -> (Tensor, Tensor) {
        testing::images(2)
    }

    /// With the exact denoiser the last step (noise-free) lands on the posterior mean at index
    /// 0 given x0: `x0 + σ_f(0)²/σ_f(n)²·(x_n − x0)` with `x_n` the previous state — exactly, for
    /// the SDE and the OT-ODE, several NFEs, with and without clipping; so the output is x0 up to
    /// that fraction `σ_f(0)²/σ_f(n)² ≈ NFE/1000` of the last state's deviation from x0.
    #[test]
    fn point_mass_lands_on_x0() {
        let (x0, xt) = images();
        for clip in [false, true] {
            let f = I2sb::new(I2sbParams { clip, ..Default::default() }).unwrap();
            for ot_ode in [false, true] {
                for nfe in [1, 2, 5, 20, 999] {
                    let mut states = Vec::new();
                    let mut rec = |x: &Tensor| states.push(x.clone());
                    let mut oracle = PointMassOracle::new(x0.clone());
                    let mut model = Model::new(&mut oracle, &f, xt.view(), xt.view())
                        .unwrap()
                        .with_hooks(Hooks { on_call: None, on_state: Some(&mut rec) });
                    let out = run(&mut model, &Sampler::I2sb { ot_ode }, nfe, &mut PhiloxNoise::new(1)).unwrap();
                    assert_eq!(model.calls(), nfe);
                    assert_eq!(states.len(), nfe);
                    let grid = f.grid(nfe).unwrap();
                    let n = grid[grid.len() - 2];
                    let prev = if nfe == 1 { xt.clone() } else { states[nfe - 2].clone() };
                    let keep = f.std_fwd(0.0).powi(2) / f.std_fwd(n).powi(2);
                    let want = ndarray::Zip::from(&x0).and(&prev).map_collect(|&a, &p| a + (keep * (p - a) as f64) as f32);
                    let tag = format!("clip {clip} ot {ot_ode} nfe {nfe}");
                    assert!(max_abs_diff(&out, &want) < 1e-5, "{tag}: {}", max_abs_diff(&out, &want));
                    assert!(keep < 1.2 * nfe as f64 / 1000.0 + 1e-3 && keep <= 0.5 + 1e-9, "{tag}: keep {keep}");
                }
            }
        }
    }

    /// Posterior/marginal consistency: from x_n ~ q(x_n | x0, x_T), one SDE step gives the
    /// Brownian-bridge posterior's mean and std (64k pixels, fixed seed).
    #[test]
    fn one_step_is_the_posterior() {
        let f = I2sb::new(I2sbParams::default()).unwrap();
        let shape = (1, 1, 256, 256);
        let (x0v, xtv) = (0.5f32, -0.4f32);
        let (x0, xt) = (Tensor::from_elem(shape, x0v), Tensor::from_elem(shape, xtv));
        // NFE 2 visits 999 → 500 → 0: states[0] is x_500 from x_T.
        let mut states = Vec::new();
        let mut rec = |x: &Tensor| states.push(x.clone());
        let mut oracle = PointMassOracle::new(x0.clone());
        let mut model =
            Model::new(&mut oracle, &f, xt.view(), xt.view()).unwrap().with_hooks(Hooks { on_call: None, on_state: Some(&mut rec) });
        run(&mut model, &Sampler::I2sb { ot_ode: false }, 2, &mut PhiloxNoise::new(6)).unwrap();
        let (c0, cx, var) = f.posterior(999.0, 500.0);
        let want_mean = c0 * x0v as f64 + cx * xtv as f64;
        let s = &states[0];
        let n = s.len() as f64;
        let mean = s.iter().map(|&v| v as f64).sum::<f64>() / n;
        let sd = (s.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!((mean - want_mean).abs() < 4.0 * var.sqrt() / n.sqrt());
        assert!((sd / var.sqrt() - 1.0).abs() < 0.02, "std {sd} vs {}", var.sqrt());
        // The posterior keeps the bridge's marginal at 500 up to I2SB's discretization (β_n terms).
        let m = f.marginal(500.0);
        assert!((mean - (m.x0 * x0v as f64 + m.xt * xtv as f64)).abs() < 2e-3 && (sd / m.std - 1.0).abs() < 0.03);
    }

    /// Inpainting: inside the mask the last step is the posterior mean at index 0 given x0 (as
    /// without a mask, from the noise-started state); outside, the known
    /// pixels are x_T plus the reset noise of the last step (std_sb(0)), exactly x_T with the
    /// OT-ODE. Draws follow the reference's order.
    #[test]
    fn inpainting_keeps_the_known_pixels() {
        let (x0, xt) = images();
        let f = I2sb::new(I2sbParams::default()).unwrap();
        let mask = Tensor::from_shape_fn((2, 1, 4, 4), |(_, _, y, x)| if (1..3).contains(&y) && x >= 1 { 1.0 } else { 0.0 });
        struct Log(Vec<u64>, PhiloxNoise);
        impl NoiseSource for Log {
            fn fill(&mut self, draw: u64, out: crate::TensorViewMut<'_>) -> Result<()> {
                self.0.push(draw);
                self.1.fill(draw, out)
            }
        }
        for ot_ode in [false, true] {
            let mut log = Log(Vec::new(), PhiloxNoise::new(3));
            let mut oracle = PointMassOracle::new(x0.clone());
            let mut states = Vec::new();
            let mut rec = |x: &Tensor| states.push(x.clone());
            let mut model = Model::new(&mut oracle, &f, xt.view(), xt.view())
                .unwrap()
                .with_mask(mask.view())
                .unwrap()
                .with_hooks(Hooks { on_call: None, on_state: Some(&mut rec) });
            let out = run(&mut model, &Sampler::I2sb { ot_ode }, 5, &mut log).unwrap();
            let keep = f.std_fwd(0.0).powi(2) / f.std_fwd(200.0).powi(2);
            // Start noise; then (posterior, reset) × 4 and the last step's reset; none per step with OT-ODE.
            let want: Vec<u64> = if ot_ode { vec![0] } else { (0..10).collect() };
            assert_eq!(log.0, want, "ot {ot_ode}");
            let mut last_reset = Tensor::zeros(xt.raw_dim());
            PhiloxNoise::new(3).fill(9, last_reset.view_mut()).unwrap();
            for ((b, c, y, x), &v) in out.indexed_iter() {
                if mask[[b, 0, y, x]] == 1.0 {
                    let (a, p) = (x0[[b, c, y, x]], states[3][[b, c, y, x]]);
                    let want = a + (keep * (p - a) as f64) as f32;
                    assert!((v - want).abs() < 1e-5, "generated pixel {v} vs {want}");
                } else {
                    let z = if ot_ode { 0.0 } else { f.std_sb(0.0) as f32 * last_reset[[b, c, y, x]] };
                    assert!((v - (xt[[b, c, y, x]] + z)).abs() < 1e-6, "ot {ot_ode}: known pixel");
                }
            }
        }
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let (x0, xt) = images();
        let f = I2sb::new(I2sbParams::default()).unwrap();
        let mut oracle = PointMassOracle::new(x0.clone());
        let mut model = Model::new(&mut oracle, &f, xt.view(), xt.view()).unwrap();
        let mut z = PhiloxNoise::new(0);
        assert!(matches!(run(&mut model, &Sampler::I2sb { ot_ode: false }, 0, &mut z), Err(Error::InvalidNfe { .. })));
        assert!(matches!(run(&mut model, &Sampler::I2sb { ot_ode: false }, 1000, &mut z), Err(Error::InvalidNfe { .. })));
        let other = crate::family::ddbm::Ddbm::new(crate::family::ddbm::DdbmParams::vp()).unwrap();
        let mut m2 = Model::new(&mut oracle, &other, xt.view(), xt.view()).unwrap();
        assert!(matches!(run(&mut m2, &Sampler::I2sb { ot_ode: true }, 5, &mut z), Err(Error::Incompatible { .. })));
        let mut nan = FnDenoiser(|x: TensorView<'_>, _c: TensorView<'_>, t: f64| Ok(x.mapv(|v| if t < 500.0 { f32::NAN } else { v })));
        let mut m3 = Model::new(&mut nan, &f, xt.view(), xt.view()).unwrap();
        assert!(matches!(run(&mut m3, &Sampler::I2sb { ot_ode: false }, 5, &mut z), Err(Error::NonFinite { .. })));
        let bad_mask = Tensor::zeros((2, 2, 4, 4));
        let m4 = Model::new(&mut oracle, &f, xt.view(), xt.view()).unwrap();
        assert!(matches!(m4.with_mask(bad_mask.view()), Err(Error::ShapeMismatch { .. })));
    }
}
