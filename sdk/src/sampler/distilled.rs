//! IBMD's distilled generator (Inverse Bridge Matching Distillation, Gushchin et al.,
//! arXiv 2502.01362): a `k`-step sampler for any family, `k = nfe`, as a row plan
//! ([`super::plan`]).
//!
//! Choices (the paper gives the scheme, not an SDK convention; these are ours):
//!
//! * **Grid** — the family's own grid for `k`: `t_k = grid[K − k]`, so `t_K` is the top (where
//!   the bridge state is `x_T`) and `grid[K]` the clean end.
//! * **Generator output** — the generator has the teacher's architecture and is read through
//!   the family's [`NetCall`](crate::family::NetCall): `x0̂ = G(x_{t_k})` is the family's
//!   `x0̂` of the raw output (clamped where the family clamps). A generator exported to predict
//!   `x0` directly is a package whose family uses an `x0` parameterization. A family whose `x0̂`
//!   is undefined at its top time (GOUB/UniDB `ε`-networks at `t = T`) cannot host a generator:
//!   the first call returns [`Error::Incompatible`](crate::Error::Incompatible).
//! * **Input noise `z`** — injected as the bridge state at `t_max = t_K`: eq. (1) with the
//!   unknown clean image replaced by the endpoint, `x_{t_K} = (a + b)·x_T + c·z` (draw 0). For
//!   the families here `c(t_K) = 0`, so the one-step generator sees `x_T` exactly; a family
//!   whose top keeps noise (e.g. a DDBM grid starting below `σ_max`) gets it.
//! * **Re-noising** — after every estimate but the last, `x_{t_{k−1}} ~ q(x | x0̂, x_T)`, eq. (1):
//!   `a·x0̂ + b·x_T + c·z` with fresh noise (draw `K − k + 1`, i.e. draws 1, 2, … in order).
//!   The output is the last estimate `x0̂`.

use super::plan::{Builder, Plan, Source};
use crate::family::Family;
use crate::{Error, Result};

/// The distilled generator's plan for `nfe` steps on the family's grid (the generator ignores
/// an inpainting mask).
pub(super) fn plan(family: &dyn Family, nfe: usize, masked: bool) -> Result<Plan> {
    let grid = family.grid(nfe)?;
    if grid.len() < 2 {
        return Err(Error::nfe(nfe, "the family's grid has no step"));
    }
    let top = family.marginal(grid[0]);
    let mut b = Builder::new(family, &[Source::X0, Source::XEnd], true, masked);
    // The generator's input x_{t_K} = (a + b)·x_T + c·z (draw 0), not recorded.
    b.step(None, top.x0 + top.xt, &[0.0, 0.0])?.set_noise(top.std, 0).record = false;
    for (k, w) in grid.windows(2).enumerate() {
        let call = Some(family.net_call(w[0]));
        if k + 2 == grid.len() {
            b.step(call, 0.0, &[1.0, 0.0])?; // the output is the last estimate: x ← x0̂
        } else {
            // Re-noising: x_{t_{k−1}} = a·x0̂ + b·x_T + c·z (draw k + 1).
            let m = family.marginal(w[1]);
            b.step(call, 0.0, &[m.x0, m.xt])?.set_noise(m.std, k as u64 + 1);
        }
    }
    Ok(b.finish(None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::Model;
    use crate::Tensor;
    use crate::family::gou::{Gou, GouParams};
    use crate::family::nadb::{Nadb, NadbParams};
    use crate::family::rdbm::{Rdbm, RdbmParams};
    use crate::rng::PhiloxNoise;
    use crate::sampler::{Hooks, Sampler, sample as run};
    use crate::{FnDenoiser, PointMassOracle, TensorView};

    fn images() -> (Tensor, Tensor) {
        let x0 = Tensor::from_shape_fn((1, 3, 4, 4), |(_, c, y, x)| ((c * 5 + y * 3 + x) % 7) as f32 * 0.3 - 0.9);
        let xt = Tensor::from_shape_fn((1, 3, 4, 4), |(_, c, y, x)| ((c + y * 2 + x) % 5) as f32 * 0.2 - 0.4);
        (x0, xt)
    }

    /// An exact generator (the point-mass oracle) returns x0 for every k, on families whose
    /// x0̂ is defined at the top.
    #[test]
    fn exact_generator_returns_x0() {
        let (x0, xt) = images();
        let nadb = Nadb::new(NadbParams::default()).unwrap();
        let rdbm = Rdbm::new(RdbmParams::default()).unwrap();
        let fams: [&dyn Family; 2] = [&nadb, &rdbm];
        for f in fams {
            for k in [1, 2, 4] {
                let mut oracle = PointMassOracle::new(x0.clone());
                let mut model = Model::new(&mut oracle, f, xt.view(), xt.view()).unwrap();
                let out = run(&mut model, &Sampler::Distilled, k, &mut PhiloxNoise::new(4)).unwrap();
                assert_eq!(model.calls(), k);
                let err = out.iter().zip(&x0).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(err < 1e-5, "{} k {k}: {err}", f.name());
            }
        }
    }

    /// Re-noising draws x_{t_{k−1}} from eq. (1) around the generator's estimate.
    #[test]
    fn renoising_samples_the_marginal() {
        let f = Nadb::new(NadbParams::default()).unwrap();
        let shape = (1, 1, 128, 128);
        let (x0v, xtv) = (0.6f32, -0.2f32);
        let xt = Tensor::from_elem(shape, xtv);
        let mut generator = PointMassOracle::new(Tensor::from_elem(shape, x0v));
        let mut states = Vec::new();
        let mut rec = |x: &Tensor| states.push(x.clone());
        let mut model = Model::new(&mut generator, &f, xt.view(), xt.view())
            .unwrap()
            .with_hooks(Hooks { on_call: None, on_state: Some(&mut rec) });
        run(&mut model, &Sampler::Distilled, 2, &mut PhiloxNoise::new(1)).unwrap();
        let m = f.marginal(500.0);
        let first = &states[0];
        let n = first.len() as f64;
        let mean = first.iter().map(|&v| v as f64).sum::<f64>() / n;
        let sd = (first.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        let want = m.x0 * x0v as f64 + m.xt * xtv as f64;
        assert!((mean - want).abs() < 4.0 * m.std / n.sqrt() && (sd / m.std - 1.0).abs() < 0.03, "{mean} {sd}");
    }

    #[test]
    fn bad_input_is_an_error() {
        let (x0, xt) = images();
        let goub = Gou::new(GouParams::goub()).unwrap();
        let mut oracle = PointMassOracle::new(x0.clone());
        let mut model = Model::new(&mut oracle, &goub, xt.view(), xt.view()).unwrap();
        // GOUB's ε-network defines no x0̂ at t = T.
        assert!(matches!(
            run(&mut model, &Sampler::Distilled, 2, &mut PhiloxNoise::new(0)),
            Err(Error::Incompatible { .. })
        ));
        let nadb = Nadb::new(NadbParams::default()).unwrap();
        let mut model = Model::new(&mut oracle, &nadb, xt.view(), xt.view()).unwrap();
        assert!(matches!(
            run(&mut model, &Sampler::Distilled, 0, &mut PhiloxNoise::new(0)),
            Err(Error::InvalidNfe { .. })
        ));
        assert!(matches!(
            run(&mut model, &Sampler::Distilled, 5000, &mut PhiloxNoise::new(0)),
            Err(Error::InvalidNfe { .. })
        ));
        let mut nan = FnDenoiser(|x: TensorView<'_>, _c: TensorView<'_>, _t: f64| Ok(x.mapv(|_| f32::NAN)));
        let mut model = Model::new(&mut nan, &nadb, xt.view(), xt.view()).unwrap();
        assert!(matches!(
            run(&mut model, &Sampler::Distilled, 2, &mut PhiloxNoise::new(0)),
            Err(Error::NonFinite { .. })
        ));
    }
}
