//! Replay of the I2SB golden files (DDPM posterior sampler and OT-ODE, NFE 5/10/20, with and
//! without clip_denoise) with the `affine_sin` stand-in.

use super::gou::{nfe, run};
use super::{AffineSin, GoldenFile, Replayed};
use crate::family::i2sb::{I2sb, I2sbParams};
use crate::sampler::Sampler;
use crate::{Error, Result};

/// The I2SB family a golden file's `params` describe (also I3SB's files: same checkpoints).
pub(super) fn family(g: &GoldenFile) -> Result<I2sb> {
    let p = |k: &str| g.f64(&["params", k]);
    let interval = p("interval")?;
    if !(interval >= 2.0 && interval.fract() == 0.0) {
        return Err(Error::Golden(format!("{}: params.interval {interval}", g.name)));
    }
    I2sb::new(I2sbParams {
        interval: interval as usize,
        beta_max: p("beta_max")?,
        t0: p("t0")?,
        t_end: p("T")?,
        clip: g.bool(&["params", "clip_denoise"])?,
    })
}

pub(super) fn replay(g: &GoldenFile) -> Result<Replayed> {
    let fam = family(g)?;
    let ot_ode = g.bool(&["params", "ot_ode"])?;
    let mut net = AffineSin::from_golden(g)?;
    let (x_end, cond) = (g.tensor(&["inputs", "x_T"])?, g.tensor(&["inputs", "cond"])?);
    run(g, &fam, &mut net, &x_end, &cond, &Sampler::I2sb { ot_ode }, nfe(g)?)
}
