//! Replay of the I3SB golden files (η 0 / 0.6 / 1 / 1.4, OT-ODE, clip_denoise, NFE 5/10/25) with
//! the `affine_sin` stand-in on I2SB's family.

use super::gou::{nfe, run};
use super::{AffineSin, GoldenFile, Replayed};
use crate::family::i2sb::{I2sb, I2sbParams};
use crate::sampler::Sampler;
use crate::{Error, Result};

pub(super) fn replay(g: &GoldenFile) -> Result<Replayed> {
    let p = |k: &str| g.f64(&["params", k]);
    let interval = p("interval")?;
    if !(interval >= 2.0 && interval.fract() == 0.0) {
        return Err(Error::Golden(format!("{}: params.interval {interval}", g.name)));
    }
    let fam = I2sb::new(I2sbParams {
        interval: interval as usize,
        beta_max: p("beta_max")?,
        t0: p("t0")?,
        t_end: p("T")?,
        clip: g.bool(&["params", "clip_denoise"])?,
    })?;
    let sampler = Sampler::I3sb { eta: p("eta")?, ot_ode: g.bool(&["params", "ot_ode"])? };
    let mut net = AffineSin::from_golden(g)?;
    let (x_end, cond) = (g.tensor(&["inputs", "x_T"])?, g.tensor(&["inputs", "cond"])?);
    run(g, &fam, &mut net, &x_end, &cond, &sampler, nfe(g)?)
}
