//! Replay of the UniDB++ golden files (data-solver-1 SDE/Mean-ODE, data-solver-2 multistep,
//! noise-solver-1, noise-solver-2, the Euler pf-ode) on the UniDB family with the `x0-consistent`
//! noise stand-in.

use super::gou::{X0Consistent, gou_params, nfe, run};
use super::{GoldenFile, Replayed};
use crate::family::gou::Gou;
use crate::sampler::Sampler;
use crate::{Error, Result};

pub(super) fn replay(g: &GoldenFile) -> Result<Replayed> {
    let fam = Gou::new(gou_params(g)?)?;
    let (method, solver_type) = (g.str(&["params", "method"])?, g.str(&["params", "solver_type"])?);
    let sde = match solver_type {
        "sde" => true,
        "mean-ode" | "pf-ode" => false,
        v => return Err(Error::Golden(format!("{}: solver_type `{v}` has no golden replay", g.name))),
    };
    let sampler = match (method, solver_type) {
        ("euler", "pf-ode") => Sampler::PfOde,
        (_, "pf-ode") => return Err(Error::Golden(format!("{}: `{method}` has no pf-ode", g.name))),
        ("euler", _) => Sampler::Euler { sde },
        ("data-solver-1", _) => Sampler::DataSolver1 { sde },
        ("data-solver-2", _) => Sampler::DataSolver2 { sde },
        ("noise-solver-1", _) => Sampler::NoiseSolver1 { sde },
        ("noise-solver-2", _) => Sampler::NoiseSolver2 { sde },
        (m, _) => return Err(Error::Golden(format!("{}: UniDB++ method `{m}` is not implemented", g.name))),
    };
    let (x_end, cond) = (g.tensor(&["inputs", "x_T"])?, g.tensor(&["inputs", "cond"])?);
    let mut net = X0Consistent::from_golden(g, x_end.clone())?;
    run(g, &fam, &mut net, &x_end, &cond, &sampler, nfe(g)?)
}
