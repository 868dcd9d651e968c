//! I3SB, the implicit (non-Markovian, DDIM-like) sampler for I2SB checkpoints (wangya22/I3SB
//! @892c040, `i2sb/diffusion.py` `i3sb_sampling`, `p_posterior`, `i3sb_p_posterior`).
//!
//! On I2SB's grid (`space_indices(N, nfe + 1)` from `N − 1` down to 0, [`I2sb`]'s grid), starting
//! at `x = x_1` (no noise), NFE = `nfe`:
//!
//! * **First step** `n → m`: I2SB's posterior step, unchanged ([`I2sb::posterior`]), with noise
//!   unless OT-ODE (or `m = 0`).
//! * **Every later step** `n → m`: with I2SB's marginal per index, `μ_k(x0̂) = σ_b(k)²/S_k·x0̂ +
//!   σ_f(k)²/S_k·x_1` and `s_k = σ_f(k)σ_b(k)/√S_k`, `S_k = σ_f(k)² + σ_b(k)²` (its own per index:
//!   `S_k` is not `σ_T²`), and `g = η·` (the I2SB posterior std):
//!   `x_m = μ_m(x0̂) + √(s_m² − g²)/s_n·(x_n − μ_n(x0̂)) + g·z` while `g < s_m`, else the clamp
//!   branch `x_m = μ_m(x0̂) + s_m·z` (a fresh marginal sample). `z` only for `m > 0`; OT-ODE does
//!   not change these steps (the reference's `i3sb_p_posterior` ignores it).
//! * **Draws** are numbered as the reference draws them: the first step draws when it adds
//!   noise; every later step with `m > 0` draws — also with η = 0, where the draw is multiplied
//!   by 0 (so its number is taken and nothing is added).
//! * **No final clamp**: the output is the state at index 0 (`σ_f(0) ≠ 0`, so not exactly x0̂).
//! * **Inpainting** (`Model::mask`, 1 = generate) exactly as I2SB's sampler
//!   ([`super::i2sb`]): start from `(1 − mask)·x_1 + mask·z`, and after each step reset the pixels
//!   outside the mask to `x_1 + s_m·z` (`x_1` with OT-ODE); draws in that order.
//!
//! Each step is one linear row in `(x, x0̂, x_1, z)` ([`rows`]); [`plan`] is the sampler's one
//! definition (host and device loop, see [`super::plan`]).

use super::plan::{Builder, Plan, Reset, Source};
use crate::family::Family;
use crate::family::i2sb::I2sb;
use crate::{Error, Result};

/// One I3SB step `n → m`: `x_m = c_x·x_n + c_0·x0̂ + c_1·x_1 + c_z·z(draw)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    /// The step's start index `n` (where the network is called).
    pub n: f64,
    /// The step's end index `m`.
    pub m: f64,
    /// Coefficient of `x_n`.
    pub c_x: f64,
    /// Coefficient of `x0̂`.
    pub c_0: f64,
    /// Coefficient of `x_1`.
    pub c_1: f64,
    /// Noise coefficient (0 when the step adds none).
    pub c_z: f64,
    /// The draw number this step takes, if the reference draws a tensor here (even one it
    /// multiplies by 0).
    pub draw: Option<u64>,
}

/// Checks η: finite and ≥ 0 (η > 1 is allowed: it reaches the clamp branch).
pub fn check_eta(eta: f64) -> Result<()> {
    if eta.is_finite() && eta >= 0.0 { Ok(()) } else { Err(Error::param("eta", format!("{eta}: I3SB needs a finite η ≥ 0"))) }
}

/// The I2SB family, or [`Error::Incompatible`].
pub fn i2sb_family(family: &dyn Family) -> Result<&I2sb> {
    family.downcast::<I2sb>().ok_or_else(|| Error::incompatible("i3sb", family.name(), "I3SB runs on I2SB checkpoints (the I2SB family)"))
}

/// The rows of a whole run without a mask (module docs); draws numbered from 0.
pub fn rows(f: &I2sb, nfe: usize, eta: f64, ot_ode: bool) -> Result<Vec<Row>> {
    check_eta(eta)?;
    let grid = f.grid(nfe)?;
    let mut draw = 0u64;
    let mut out = Vec::with_capacity(grid.len().saturating_sub(1));
    for (k, w) in grid.windows(2).enumerate() {
        let (n, m) = (w[0], w[1]);
        let (c_x0, c_xn, var) = f.posterior(n, m);
        let row = if k == 0 {
            let c_z = if !ot_ode && m > 0.0 { var.sqrt() } else { 0.0 };
            Row { n, m, c_x: c_xn, c_0: c_x0, c_1: 0.0, c_z, draw: (c_z != 0.0).then_some(draw) }
        } else {
            let g = eta * var.sqrt();
            let (mn, mm) = (f.marginal(n), f.marginal(m));
            let draws = m > 0.0;
            let (c_x, c_0, c_1, c_z) = if g < mm.std {
                let k = (mm.std * mm.std - g * g).sqrt() / mn.std;
                (k, mm.x0 - k * mn.x0, mm.xt - k * mn.xt, g)
            } else {
                (0.0, mm.x0, mm.xt, mm.std)
            };
            Row { n, m, c_x, c_0, c_1, c_z: if draws { c_z } else { 0.0 }, draw: draws.then_some(draw) }
        };
        if row.draw.is_some() {
            draw += 1;
        }
        out.push(row);
    }
    Ok(out)
}

/// I3SB's plan for `nfe` calls with `eta` (OT-ODE first step when `ot_ode`; I2SB's inpainting
/// rules when `masked`): the rows of [`rows`], with draws renumbered in the reference's order
/// for a masked run (the start noise, then per step its own noise and the reset noise).
pub(super) fn plan(family: &dyn Family, nfe: usize, eta: f64, ot_ode: bool, masked: bool) -> Result<Plan> {
    let f = i2sb_family(family)?;
    let mut b = Builder::new(family, &[Source::X0, Source::XEnd], true, masked);
    let mut draw = 0u64;
    if masked {
        // x_1 = (1 − mask)·x_1 + mask·z, as I2SB's sampler; not recorded.
        let st = b.step(None, 0.0, &[0.0, 0.0])?.set_noise(1.0, draw);
        st.reset = Some(Reset { noise: None });
        st.record = false;
        draw += 1;
    }
    for r in rows(f, nfe, eta, ot_ode)? {
        let st = b.step(Some(family.net_call(r.n)), r.c_x, &[r.c_0, r.c_1])?;
        if r.draw.is_some() {
            // A draw the reference multiplies by 0 (η = 0) still takes its number.
            st.set_noise(r.c_z, draw);
            draw += 1;
        }
        if masked {
            // Outside the mask: x_1 + s_m·z (x_1 with OT-ODE).
            st.reset = Some(Reset { noise: (!ot_ode).then(|| (f.std_sb(r.m), draw)) });
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
    use crate::family::ddbm::{Ddbm, DdbmParams};
    use crate::family::i2sb::I2sbParams;
    use crate::rng::PhiloxNoise;
    use crate::sampler::testing::{self, max_abs_diff};
    use crate::sampler::{Hooks, Model, Sampler, sample as run};
    use crate::{FnDenoiser, PointMassOracle, TensorView};

    /// With the exact denoiser and η = 0 + OT-ODE (fully deterministic): after the first step
    /// (I2SB's posterior) each implicit step keeps the residual `(x − μ(x0))/s` fixed. So the output is
    /// `μ_0(x0) + (s_0/s_{m1})·(x_{m1} − μ_{m1}(x0))`, with `x_{m1}` the first state — exactly.
    #[test]
    fn point_mass_keeps_the_residual() {
        let (x0, xt) = testing::images(2);
        for clip in [false, true] {
            let f = I2sb::new(I2sbParams { clip, ..Default::default() }).unwrap();
            for nfe in [2, 5, 10, 25] {
                let mut states = Vec::new();
                let mut rec = |x: &Tensor| states.push(x.clone());
                let mut oracle = PointMassOracle::new(x0.clone());
                let mut model = Model::new(&mut oracle, &f, xt.view(), xt.view())
                    .unwrap()
                    .with_hooks(Hooks { on_call: None, on_state: Some(&mut rec) });
                let out = run(&mut model, &Sampler::I3sb { eta: 0.0, ot_ode: true }, nfe, &mut PhiloxNoise::new(1)).unwrap();
                assert_eq!(model.calls(), nfe);
                assert_eq!(states.len(), nfe);
                let g = f.grid(nfe).unwrap();
                let (m1, m0) = (f.marginal(g[1]), f.marginal(0.0));
                let want = ndarray::Zip::from(&x0).and(&xt).and(&states[0]).map_collect(|&a, &b, &x1| {
                    let resid = x1 as f64 - m1.x0 * a as f64 - m1.xt * b as f64;
                    (m0.x0 * a as f64 + m0.xt * b as f64 + m0.std / m1.std * resid) as f32
                });
                assert!(max_abs_diff(&out, &want) < 2e-5, "clip {clip} nfe {nfe}: {}", max_abs_diff(&out, &want));
                // And that lands on x0 up to the marginal's small weight on x_1 and residual.
                assert!(max_abs_diff(&out, &x0) < 0.05, "nfe {nfe}: {}", max_abs_diff(&out, &x0));
            }
        }
    }

    /// η large enough reaches the clamp branch (c_x = 0, a fresh marginal sample); the last step
    /// never draws; η = 0 still takes draw numbers; S_k varies per index.
    #[test]
    fn rows_follow_the_reference() {
        let f = I2sb::new(I2sbParams::default()).unwrap();
        let r = rows(&f, 10, 1.4, false).unwrap();
        assert_eq!(r.len(), 10);
        assert!(r[1].c_x == 0.0 && r[1].c_z == f.marginal(r[1].m).std, "clamp branch: {:?}", r[1]);
        assert!(r[2].c_x > 0.0);
        assert_eq!(r[9].m, 0.0);
        assert_eq!((r[9].c_z, r[9].draw), (0.0, None));
        assert_eq!(r.iter().filter_map(|q| q.draw).collect::<Vec<_>>(), (0..9).collect::<Vec<_>>());
        let r0 = rows(&f, 10, 0.0, true).unwrap();
        assert_eq!(r0[0].draw, None);
        assert_eq!(r0[1].draw, Some(0));
        assert!(r0.iter().all(|q| q.c_z == 0.0));
        // The rows' x_1 and x0̂ weights against the marginal: c_0 + c_x·μ_n(x0)'s weight = b_m.
        for q in &r[1..] {
            let (mn, mm) = (f.marginal(q.n), f.marginal(q.m));
            assert!((q.c_0 + q.c_x * mn.x0 - mm.x0).abs() < 1e-12 && (q.c_1 + q.c_x * mn.xt - mm.xt).abs() < 1e-12);
        }
        let (a, b) = (f.marginal(999.0), f.marginal(500.0));
        let s = |m: crate::family::Marginal| (m.std * m.std) / (m.x0 * m.xt);
        assert!((s(a) / s(b) - 1.0).abs() > 1e-4, "S_k is per index");
    }

    /// Bad η, a wrong family, NFE beyond the table are typed errors.
    #[test]
    fn typed_errors() {
        let (x0, xt) = testing::images(1);
        let f = I2sb::new(I2sbParams::default()).unwrap();
        let vp = Ddbm::new(DdbmParams::vp()).unwrap();
        let mut oracle = PointMassOracle::new(x0.clone());
        let mut m = Model::new(&mut oracle, &vp, xt.view(), xt.view()).unwrap();
        assert!(matches!(
            run(&mut m, &Sampler::I3sb { eta: 0.5, ot_ode: false }, 5, &mut PhiloxNoise::new(0)),
            Err(Error::Incompatible { .. })
        ));
        let mut m = Model::new(&mut oracle, &f, xt.view(), xt.view()).unwrap();
        for eta in [-0.1, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                run(&mut m, &Sampler::I3sb { eta, ot_ode: false }, 5, &mut PhiloxNoise::new(0)),
                Err(Error::InvalidParam { .. })
            ));
        }
        assert!(matches!(
            run(&mut m, &Sampler::I3sb { eta: 0.5, ot_ode: false }, 1000, &mut PhiloxNoise::new(0)),
            Err(Error::InvalidNfe { .. })
        ));
        assert_eq!(m.calls(), 0);
    }

    /// Inpainting: the pixels outside the mask end as x_1 + s_0·z (x_1 exactly with OT-ODE).
    #[test]
    fn mask_keeps_known_pixels() {
        let (_, xt) = testing::images(1);
        let f = I2sb::new(I2sbParams::default()).unwrap();
        let mask = Tensor::from_shape_fn((1, 1, 4, 4), |(_, _, y, _)| if y < 2 { 1.0 } else { 0.0 });
        let mut net = FnDenoiser(|x: TensorView<'_>, c: TensorView<'_>, _t: f64| {
            Ok(ndarray::Zip::from(&x).and(&c).map_collect(|&a, &b| 0.3 * a + 0.5 * b))
        });
        for ot_ode in [false, true] {
            let mut model = Model::new(&mut net, &f, xt.view(), xt.view()).unwrap().with_mask(mask.view()).unwrap();
            let out = run(&mut model, &Sampler::I3sb { eta: 0.6, ot_ode }, 5, &mut PhiloxNoise::new(2)).unwrap();
            let tol = if ot_ode { 0.0 } else { 6.0 * f.std_sb(0.0) as f32 };
            for ((b, c, y, x), &v) in out.indexed_iter() {
                if y >= 2 {
                    assert!((v - xt[[b, c, y, x]]).abs() <= tol, "ot {ot_ode}");
                }
            }
        }
    }
}
