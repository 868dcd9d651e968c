//! Replay of the DBIM golden files (η 0 / 0.5 / 1 on the VP, VE and I2SB schedules, and the
//! order-2/3 samplers) with the `affine_sin` stand-in (which sees `c_in·x_t`, `cond = x_T`).

use super::gou::{nfe, run};
use super::{AffineSin, GoldenFile, Replayed};
use crate::family::ddbm::{Ddbm, DdbmParams, Precond, Schedule};
use crate::sampler::Sampler;
use crate::{Error, Result};

pub(super) fn replay(g: &GoldenFile) -> Result<Replayed> {
    let p = |k: &str| g.f64(&["params", k]);
    let ddbm = || -> Result<Precond> { Ok(Precond::Ddbm { sigma_data: p("sigma_data")?, cov_xy: p("cov_xy")? }) };
    let (schedule, precond) = match g.str(&["params", "noise_schedule"])? {
        "vp" => (Schedule::Vp { beta_d: p("beta_d")?, beta_min: p("beta_min")? }, ddbm()?),
        "ve" => (Schedule::Ve { sigma_max: p("sigma_max")? }, ddbm()?),
        "i2sb" => (
            Schedule::I2sb { n_timestep: p("n_timestep")? as usize, beta_min: p("beta_min")?, beta_max: p("beta_max")? },
            Precond::I2sb { t0: p("t0")?, t_end: p("T")? },
        ),
        s => return Err(Error::Golden(format!("{}: unknown noise_schedule `{s}`", g.name))),
    };
    let fam =
        Ddbm::new(DdbmParams { schedule, precond, t_min: p("t_min")?, t_max: p("t_max")?, clip: g.bool(&["params", "clip_denoised"])? })?;
    // `sample_dbim` ignores `order` (karras_sample passes it to every sampler); only
    // `dbim_high_order` uses it.
    let order = match g.str(&["params", "sampler"])? {
        "dbim" => 1.0,
        "dbim_high_order" => p("order")?,
        s => return Err(Error::Golden(format!("{}: unknown sampler `{s}`", g.name))),
    };
    if !((1.0..=3.0).contains(&order) && order.fract() == 0.0) {
        return Err(Error::Golden(format!("{}: params.order {order}", g.name)));
    }
    let sampler = Sampler::Dbim { eta: p("eta")?, order: order as u8 };
    let steps = p("steps")? as usize;
    if steps + 1 != nfe(g)? {
        return Err(Error::Golden(format!("{}: nfe is not steps + 1", g.name)));
    }
    let mut net = AffineSin::from_golden(g)?;
    let (x_end, cond) = (g.tensor(&["inputs", "x_T"])?, g.tensor(&["inputs", "cond"])?);
    run(g, &fam, &mut net, &x_end, &cond, &sampler, nfe(g)?)
}
