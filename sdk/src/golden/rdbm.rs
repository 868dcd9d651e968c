//! Replay of the RDBM golden files (deterministic `ddim_sample`, both objectives and both
//! sampling types; the `_clamp` files use the wider `x0-consistent` stand-in).

use super::gou::{X0Consistent, nfe, run};
use super::{AffineSin, GoldenFile, Replayed};
use crate::Denoiser;
use crate::family::rdbm::{Objective, Rdbm, RdbmParams};
use crate::sampler::Sampler;
use crate::{Error, Result};
use serde_json::Value;

pub(super) fn replay(g: &GoldenFile) -> Result<Replayed> {
    let p = g.params()?;
    let objective = |k: &str| match p.get(k).and_then(Value::as_str) {
        Some("pred_x_start") => Ok(Objective::PredXStart),
        Some("pred_noise") => Ok(Objective::PredNoise),
        other => Err(Error::Golden(format!("{}: params.{k} = {other:?}", g.name))),
    };
    let params = RdbmParams {
        t_max: g.f64(&["params", "timesteps"])? as usize,
        lamb: g.f64(&["params", "lamb"])?,
        objective: objective("objective")?,
        clip: p.get("clip_denoised").and_then(Value::as_bool).unwrap_or(true),
        residual: None,
    };
    let eps_form = objective("sampling_type")? == Objective::PredNoise;
    let fam = Rdbm::new(params)?;
    let (x_end, cond) = (g.tensor(&["inputs", "x_T"])?, g.tensor(&["inputs", "cond"])?);
    let mut net: Box<dyn Denoiser> = match g.str(&["stand_in", "kind"])? {
        "affine_sin" => Box::new(AffineSin::from_golden(g)?),
        _ => Box::new(X0Consistent::from_golden(g, x_end.clone())?),
    };
    run(g, &fam, net.as_mut(), &x_end, &cond, &Sampler::Rdbm { eps_form }, nfe(g)?)
}
