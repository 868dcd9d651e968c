//! Replay of the UniDB++ golden files (data-solver-1 SDE/Mean-ODE, data-solver-2 multistep,
//! noise-solver-1) on the UniDB family with the `x0-consistent` noise stand-in.

use super::gou::{X0Consistent, gou_params, nfe, run};
use super::{GoldenFile, Replayed};
use crate::family::gou::Gou;
use crate::sampler::Sampler;
use crate::{Error, Result};

pub(super) fn replay(g: &GoldenFile) -> Result<Replayed> {
    let fam = Gou::new(gou_params(g)?)?;
    let sde = match g.str(&["params", "solver_type"])? {
        "sde" => true,
        "mean-ode" => false,
        v => return Err(Error::Golden(format!("{}: solver_type `{v}` has no golden replay", g.name))),
    };
    let sampler = match g.str(&["params", "method"])? {
        "data-solver-1" => Sampler::DataSolver1 { sde },
        "data-solver-2" => Sampler::DataSolver2 { sde },
        "noise-solver-1" => Sampler::NoiseSolver1 { sde },
        m => return Err(Error::Golden(format!("{}: UniDB++ method `{m}` is not implemented", g.name))),
    };
    let (x_end, cond) = (g.tensor(&["inputs", "x_T"])?, g.tensor(&["inputs", "cond"])?);
    let mut net = X0Consistent::from_golden(g, x_end.clone())?;
    run(g, &fam, &mut net, &x_end, &cond, &sampler, nfe(g)?)
}
