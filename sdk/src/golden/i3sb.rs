//! Replay of the I3SB golden files (η 0 / 0.6 / 1 / 1.4, OT-ODE, clip_denoise, NFE 5/10/25) with
//! the `affine_sin` stand-in on I2SB's family.

use super::gou::{nfe, run};
use super::{AffineSin, GoldenFile, Replayed};
use crate::Result;
use crate::sampler::Sampler;

pub(super) fn replay(g: &GoldenFile) -> Result<Replayed> {
    let p = |k: &str| g.f64(&["params", k]);
    let fam = super::i2sb::family(g)?;
    let sampler = Sampler::I3sb { eta: p("eta")?, ot_ode: g.bool(&["params", "ot_ode"])? };
    let mut net = AffineSin::from_golden(g)?;
    let (x_end, cond) = (g.tensor(&["inputs", "x_T"])?, g.tensor(&["inputs", "cond"])?);
    run(g, &fam, &mut net, &x_end, &cond, &sampler, nfe(g)?)
}
