//! IBMD's distilled generator (Inverse Bridge Matching Distillation, Gushchin et al.,
//! arXiv 2502.01362): a `k`-step sampler for any family, `k = nfe`.
//!
//! Choices (the paper gives the scheme, not an SDK convention; these are ours):
//!
//! * **Grid** — the family's own grid for `k`: `t_k = grid[K − k]`, so `t_K` is the top (where
//!   the bridge state is `x_T`) and `grid[K]` the clean end.
//! * **Generator output** — the generator has the teacher's architecture and is read through
//!   the family's [`NetCall`](crate::family::NetCall): `x0̂ = G(x_{t_k}, z, t_k)` is the
//!   family's `x0̂` of the raw output (clamped where the family clamps). A generator exported
//!   to predict `x0` directly is a package whose family uses an `x0` parameterization. A family
//!   whose `x0̂` is undefined at its top time (GOUB/UniDB `ε`-networks at `t = T`) cannot host
//!   a generator: the first call returns [`Error::Incompatible`](crate::Error::Incompatible).
//! * **Start** — the generator's first input is the bridge state at `t_K`: eq. (1) with the
//!   unknown clean image replaced by the endpoint, `x_{t_K} = (a + b)·x_T + c·z` (draw 0). For
//!   most families `c(t_K) = 0` and the first input is `x_T` exactly.
//! * **Generator noise `z`** — its own network input: `Model::generator_noise` channels (0: a
//!   deterministic generator without that input), drawn fresh for every call from the run's
//!   counter-based source as draw [`GENERATOR_DRAW`]` + k` (call `k = 0, 1, …`), so tiles and
//!   threads see the same numbers. The noise travels to the network as extra channels after
//!   the conditioning image (`Denoiser` docs).
//! * **Between calls** — the teacher's posterior from the current state, `x_{t_{k−1}} ~
//!   q(x | x_{t_k}, x0̂)`: the family's ancestral step (I2SB's `p_posterior`, DBIM with η = 1;
//!   [`implicit::eta_row`] with η = 1), fresh noise as draw `K − k + 1` (draws 1, 2, … in
//!   order). The marginal `q(x | x0̂, x_T)` is used only in training. The output is the last
//!   estimate `x0̂`.

use super::Model;
use super::implicit;
use crate::rng::NoiseSource;
use crate::step::{self, NoiseTerm, Term};
use crate::{Result, Tensor};

/// First draw number of the generator's input noise (call `k` uses `GENERATOR_DRAW + k`); far
/// above the step draws so the two never share numbers. Philox keys draws by 32 bits.
pub const GENERATOR_DRAW: u64 = 1 << 31;

/// Run the distilled generator for `nfe` steps on the family's grid.
pub fn sample(model: &mut Model<'_>, nfe: usize, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    let family = model.family();
    let grid = family.grid(nfe)?;
    let x_end = model.x_end();
    let top = family.marginal(grid[0]);
    let mut x = crate::alloc::try_copy(x_end, "the sampler state")?;
    step::update(&mut x, top.x0 + top.xt, &[], Some(NoiseTerm { coef: top.std, draw: 0, source: &mut *noise }))?;
    for (k, w) in grid.windows(2).enumerate() {
        let x0 = model.x0_generator(&x, w[0], GENERATOR_DRAW + k as u64, &mut *noise)?;
        if k + 2 == grid.len() {
            model.record(&x0);
            return Ok(x0);
        }
        let row = posterior_row(family, w[0], w[1])?;
        let z = NoiseTerm { coef: row.c_z, draw: k as u64 + 1, source: &mut *noise };
        step::update(&mut x, row.c_x, &[Term::new(row.c_0, x0.view()), Term::new(row.c_t, x_end)], Some(z))?;
        model.record(&x);
    }
    // `grid` has at least two points (nfe ≥ 1), so the loop returns.
    Err(crate::Error::nfe(nfe, "the family's grid has no step"))
}

/// The teacher's posterior step `t → s` given `x0̂`. I2SB: its own `p_posterior` (the
/// reference's DDPM posterior, which has no `x_T` term; I2SB's tabulated marginal is off by one
/// β from it, so the generic row would differ slightly). Every other family: the implicit step
/// with the family's ancestral ratio (η = 1, DBIM's ancestral step). From a state without noise
/// (the top of GOUB/RDBM/NADB, where the state is `x_T`) that is the marginal of eq. (1).
pub fn posterior_row(family: &dyn crate::family::Family, t: f64, s: f64) -> Result<implicit::StepRow> {
    if let Some(f) = family.downcast::<crate::family::i2sb::I2sb>() {
        let (c_0, c_x, var) = f.posterior(t, s);
        return Ok(implicit::StepRow { c_x, c_0, c_t: 0.0, c_z: var.max(0.0).sqrt() });
    }
    implicit::eta_row(family, t, s, 1.0).map_err(|e| match e {
        crate::Error::Incompatible { family, reason, .. } => crate::Error::Incompatible { sampler: "distilled".into(), family, reason },
        e => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use crate::family::Family;
    use crate::family::ddbm::{Ddbm, DdbmParams};
    use crate::family::gou::{Gou, GouParams};
    use crate::family::i2sb::{I2sb, I2sbParams};
    use crate::family::nadb::{Nadb, NadbParams};
    use crate::family::rdbm::{Rdbm, RdbmParams};
    use crate::rng::PhiloxNoise;
    use crate::sampler::testing::{images, max_abs_diff};
    use crate::sampler::{Hooks, Sampler, sample as run};
    use crate::tile::{TileConfig, TiledDenoiser};
    use crate::{Denoiser, FnDenoiser, PointMassOracle, TensorView};

    /// An exact generator (the point-mass oracle) returns x0 for every k, on families whose
    /// x0̂ is defined at the top: the posterior steps keep the estimate.
    #[test]
    fn exact_generator_returns_x0() {
        let (x0, xt) = images(2);
        let nadb = Nadb::new(NadbParams::default()).unwrap();
        let rdbm = Rdbm::new(RdbmParams::default()).unwrap();
        let i2sb = I2sb::new(I2sbParams::default()).unwrap();
        let vp = Ddbm::new(DdbmParams::vp()).unwrap();
        let fams: [&dyn Family; 4] = [&nadb, &rdbm, &i2sb, &vp];
        for f in fams {
            for k in [1, 2, 4] {
                let mut oracle = PointMassOracle::new(x0.clone());
                let mut model = Model::new(&mut oracle, f, xt.view(), xt.view()).unwrap();
                let out = run(&mut model, &Sampler::Distilled, k, &mut PhiloxNoise::new(4)).unwrap();
                assert_eq!(model.calls(), k);
                let err = max_abs_diff(&out, &x0);
                assert!(err < 1e-5, "{} k {k}: {err}", f.name());
            }
        }
    }

    /// Between calls the state moves by I2SB's own `p_posterior` from the current state (not by
    /// the marginal from x_T): x_m = c_x0·x0̂ + c_xn·x_n + sqrt(var)·z, with the run's draws.
    #[test]
    fn k_step_uses_the_teachers_posterior() {
        let f = I2sb::new(I2sbParams::default()).unwrap();
        let (x0, xt) = images(1);
        let mut states = Vec::new();
        let mut rec = |x: &Tensor| states.push(x.clone());
        let mut oracle = PointMassOracle::new(x0.clone());
        let mut model =
            Model::new(&mut oracle, &f, xt.view(), xt.view()).unwrap().with_hooks(Hooks { on_call: None, on_state: Some(&mut rec) });
        let seed = 11;
        run(&mut model, &Sampler::Distilled, 3, &mut PhiloxNoise::new(seed)).unwrap();
        let grid = f.grid(3).unwrap();
        let src = PhiloxNoise::new(seed);
        let z = |d: u64| {
            let mut z = Tensor::zeros(xt.raw_dim());
            let mut s = src.clone();
            s.fill(d, z.view_mut()).unwrap();
            z
        };
        // The top state: eq. (1) with x0 replaced by x_T (draw 0).
        let top = f.marginal(grid[0]);
        let mut x = xt.mapv(|v| ((top.x0 + top.xt) * v as f64) as f32) + z(0).mapv(|v| (top.std * v as f64) as f32);
        assert_eq!(states.len(), 3);
        for k in 0..2 {
            let (c0, cx, var) = f.posterior(grid[k], grid[k + 1]);
            let zk = z(k as u64 + 1);
            let want = ndarray::Zip::from(&x0)
                .and(&x)
                .and(&zk)
                .map_collect(|&a, &b, &n| (c0 * a as f64 + cx * b as f64 + var.sqrt() * n as f64) as f32);
            let err = max_abs_diff(&states[k], &want);

            assert!(err < 2e-5, "step {k}: {err}");
            // The marginal from x_T (the old rule) is a different state.
            let m = f.marginal(grid[k + 1]);
            let marg = ndarray::Zip::from(&x0)
                .and(&xt)
                .and(&zk)
                .map_collect(|&a, &b, &n| (m.x0 * a as f64 + m.xt * b as f64 + m.std * n as f64) as f32);
            assert!(max_abs_diff(&states[k], &marg) > 1e-3, "step {k} equals the marginal");
            x = want;
        }
        assert!(max_abs_diff(&states[2], &x0) < 1e-5);
        // Elsewhere the row is DBIM's η = 1 step: on DDBM VP, the ancestral ratio and the noise
        // that completes the marginal variance.
        let vp = Ddbm::new(DdbmParams::vp()).unwrap();
        let (t, s) = (0.7, 0.4);
        let row = posterior_row(&vp, t, s).unwrap();
        let (mt, ms) = (vp.marginal(t), vp.marginal(s));
        let rho = vp.ancestral_ratio(t, s).unwrap();
        assert!((row.c_x - rho).abs() < 1e-12 && (row.c_0 - (ms.x0 - rho * mt.x0)).abs() < 1e-12);
        assert!((row.c_z * row.c_z + rho * rho * mt.std * mt.std - ms.std * ms.std).abs() < 1e-12);
    }

    /// A generator with a noise input gets `nc` extra channels after the conditioning image on
    /// every call: fresh per call, different per seed, and the same whether the network runs
    /// whole or tiled (the noise is drawn on the whole frame).
    #[test]
    fn generator_noise_is_fed_per_seed_not_per_tile() {
        let f = Nadb::new(NadbParams::default()).unwrap();
        let xt = Tensor::from_shape_fn((1, 3, 24, 20), |(_, c, y, x)| ((c + 3 * y + x) % 9) as f32 * 0.1 - 0.4);
        let nc = 2;
        let run_with = |seed: u64, tile: Option<usize>, seen: &mut Vec<Tensor>| -> Tensor {
            // Pointwise: the output at a pixel depends on that pixel's noise only.
            let mut net = FnDenoiser(|x: TensorView<'_>, c: TensorView<'_>, _t: f64| {
                assert_eq!(c.shape()[1], 3 + nc);
                Ok(Tensor::from_shape_fn(x.raw_dim(), |(b, ch, y, xx)| 0.1 * x[[b, ch, y, xx]] + 0.05 * c[[b, 3 + ch % nc, y, xx]]))
            });
            let mut spy = FnDenoiser(|x: TensorView<'_>, c: TensorView<'_>, t: f64| {
                seen.push(c.slice(ndarray::s![.., 3.., .., ..]).to_owned());
                net.eval(x, c, t)
            });
            match tile {
                None => {
                    let mut model = Model::new(&mut spy, &f, xt.view(), xt.view()).unwrap().with_generator_noise(nc);
                    run(&mut model, &Sampler::Distilled, 3, &mut PhiloxNoise::new(seed)).unwrap()
                }
                Some(sz) => {
                    let cfg = TileConfig { size: (sz, sz), overlap: 4, trim: 0, batch: 2, align: 1, fixed_shape: false };
                    let mut tiled = TiledDenoiser::new(&mut spy, cfg);
                    let mut model = Model::new(&mut tiled, &f, xt.view(), xt.view()).unwrap().with_generator_noise(nc);
                    run(&mut model, &Sampler::Distilled, 3, &mut PhiloxNoise::new(seed)).unwrap()
                }
            }
        };
        let mut seen = Vec::new();
        let whole = run_with(5, None, &mut seen);
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|z| z.shape() == [1, nc, 24, 20]));
        let sd = (seen[0].iter().map(|v| v * v).sum::<f32>() / seen[0].len() as f32).sqrt();
        assert!((0.8..1.2).contains(&sd), "noise std {sd}");
        assert!(max_abs_diff(&seen[0], &seen[1]) > 0.5, "the same noise on two calls");
        let mut seen_tiled = Vec::new();
        let tiled = run_with(5, Some(12), &mut seen_tiled);
        assert!(seen_tiled.len() > 3, "not tiled");
        assert_eq!(max_abs_diff(&whole, &tiled), 0.0);
        let mut seen2 = Vec::new();
        let other = run_with(6, None, &mut seen2);
        assert!(max_abs_diff(&seen[0], &seen2[0]) > 0.5 && max_abs_diff(&whole, &other) > 1e-3);
        // Without noise channels the conditioning image is passed as is.
        let mut plain = FnDenoiser(|x: TensorView<'_>, c: TensorView<'_>, _t: f64| {
            assert_eq!(c.shape()[1], 3);
            Ok(x.to_owned())
        });
        let mut model = Model::new(&mut plain, &f, xt.view(), xt.view()).unwrap();
        run(&mut model, &Sampler::Distilled, 2, &mut PhiloxNoise::new(0)).unwrap();
    }

    #[test]
    fn bad_input_is_an_error() {
        let (x0, xt) = images(1);
        let goub = Gou::new(GouParams::goub()).unwrap();
        let mut oracle = PointMassOracle::new(x0.clone());
        let mut model = Model::new(&mut oracle, &goub, xt.view(), xt.view()).unwrap();
        // GOUB's ε-network defines no x0̂ at t = T.
        assert!(matches!(run(&mut model, &Sampler::Distilled, 2, &mut PhiloxNoise::new(0)), Err(Error::Incompatible { .. })));
        let nadb = Nadb::new(NadbParams::default()).unwrap();
        let mut model = Model::new(&mut oracle, &nadb, xt.view(), xt.view()).unwrap();
        assert!(matches!(run(&mut model, &Sampler::Distilled, 0, &mut PhiloxNoise::new(0)), Err(Error::InvalidNfe { .. })));
        assert!(matches!(run(&mut model, &Sampler::Distilled, 5000, &mut PhiloxNoise::new(0)), Err(Error::InvalidNfe { .. })));
        let mut nan = FnDenoiser(|x: TensorView<'_>, _c: TensorView<'_>, _t: f64| Ok(x.mapv(|_| f32::NAN)));
        let mut model = Model::new(&mut nan, &nadb, xt.view(), xt.view()).unwrap();
        assert!(matches!(run(&mut model, &Sampler::Distilled, 2, &mut PhiloxNoise::new(0)), Err(Error::NonFinite { .. })));
    }
}
