//! Replay of the NADB golden files (`ddpm_sampling` / `p_posterior`, with and without the mean
//! network, d = smallest and d = 1) with the `x0-consistent` drift stand-in; with the mean
//! network the endpoint is recomputed through [`endpoint`] and checked against the file.

use super::gou::{X0Consistent, formula_numbers, nfe, run};
use super::{GoldenFile, Replayed, rel_err};
use crate::family::nadb::{Nadb, NadbParams, Threshold, endpoint};
use crate::sampler::Sampler;
use crate::{Error, FnDenoiser, Result, Tensor, TensorView};
use serde_json::Value;

pub(super) fn replay(g: &GoldenFile) -> Result<Replayed> {
    let p = g.params()?;
    let num = |k: &str| p.get(k).and_then(Value::as_f64).ok_or_else(|| Error::Golden(format!("{}: params.{k}", g.name)));
    let d = match p.get("d") {
        Some(Value::String(s)) if s == "smallest" => Threshold::Smallest,
        Some(v) => Threshold::Value(v.as_f64().ok_or_else(|| Error::Golden(format!("{}: params.d", g.name)))?),
        None => return Err(Error::Golden(format!("{}: params.d missing", g.name))),
    };
    let mean_network = g.bool(&["params", "use_mean"])?;
    let fam = Nadb::new(NadbParams { alpha: num("alpha")?, k: num("k")?, d, mean_network })?;
    let x1 = g.tensor(&["inputs", "x1"])?;
    let x_end = if mean_network {
        let k = formula_numbers(g.str(&["stand_in", "mean_network"])?, 3)?;
        let (a, c, w) = (k[0], k[1], k[2]);
        let mut mean = FnDenoiser(move |x: TensorView<'_>, _c: TensorView<'_>, _t: f64| {
            Ok(x.mapv(|v| (a * v as f64 + c * (w * v as f64).sin()) as f32))
        });
        let e = endpoint(&mut mean, x1.view())?;
        let recorded: Tensor = g.tensor(&["inputs", "x_T"])?;
        if rel_err(&e, &recorded) > g.tolerance()? {
            return Err(Error::Golden(format!("{}: M(x1) differs from the recorded x_T", g.name)));
        }
        e
    } else {
        x1.clone()
    };
    // The stand-in's x0s reads the raw degraded x1 as its conditioning input.
    let mut net = X0Consistent::from_golden(g, x_end.clone())?;
    run(g, &fam, &mut net, &x_end, &x1, &Sampler::Nadb, nfe(g)?)
}
