//! Replay of the DDBM golden files (Heun sampler, VE and VP, churn 0 and 0.33) with the
//! `affine_sin` stand-in, which sees the preconditioned input `c_in·x_t` and `cond = x_T`.

use super::gou::{nfe, run};
use super::{AffineSin, GoldenFile, Replayed};
use crate::family::ddbm::{Ddbm, DdbmParams, Precond, Schedule};
use crate::sampler::Sampler;
use crate::{Error, Result};

pub(super) fn replay(g: &GoldenFile) -> Result<Replayed> {
    let p = |k: &str| g.f64(&["params", k]);
    let (sigma_min, sigma_max) = (p("sigma_min")?, p("sigma_max")?);
    let schedule = match g.str(&["params", "pred_mode"])? {
        "ve" => Schedule::Ve { sigma_max },
        "vp" => Schedule::Vp { beta_d: p("beta_d")?, beta_min: p("beta_min")? },
        m => return Err(Error::Golden(format!("{}: unsupported pred_mode `{m}`", g.name))),
    };
    if p("rho")? != 7.0 || p("guidance")? != 1.0 {
        return Err(Error::Golden(format!("{}: only ρ = 7 and guidance 1 are modelled", g.name)));
    }
    let fam = Ddbm::new(DdbmParams {
        schedule,
        precond: Precond::Ddbm { sigma_data: p("sigma_data")?, cov_xy: p("cov_xy")? },
        t_min: sigma_min,
        t_max: sigma_max,
        clip: g.bool(&["params", "clip_denoised"])?,
    })?;
    let churn = p("churn_step_ratio")?;
    // The file's NFE must map to its `steps` (2n − 1 calls, 3n − 1 with churn).
    let n = crate::sampler::heun::steps_for(nfe(g)?, churn > 0.0)?;
    if n as f64 != p("steps")? {
        return Err(Error::Golden(format!("{}: nfe {} does not give steps = {}", g.name, nfe(g)?, p("steps")?)));
    }
    let mut net = AffineSin::from_golden(g)?;
    let (x_end, cond) = (g.tensor(&["inputs", "x_T"])?, g.tensor(&["inputs", "cond"])?);
    run(g, &fam, &mut net, &x_end, &cond, &Sampler::Heun { churn }, nfe(g)?)
}
