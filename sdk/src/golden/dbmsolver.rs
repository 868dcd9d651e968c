//! Replay of the DBMSolver golden files (VP/VE, λ- and time-midpoint rules, sde_order 1 and 2,
//! one inpainting file) with the `affine_sin` stand-in, which sees `c_in·x_t` and `cond = x_T`.
//! The recorded noise is `[discarded, z, discarded]`: draw 1 is the sampler's `z`.

use super::gou::{nfe, run};
use super::{AffineSin, GoldenFile, Replayed};
use crate::family::ddbm::{Ddbm, DdbmParams, Precond, Schedule};
use crate::sampler::dbmsolver::{self, Midpoint};
use crate::sampler::{Hooks, Model, Sampler, sample};
use crate::{Error, Result};

pub(super) fn replay(g: &GoldenFile) -> Result<Replayed> {
    let p = |k: &str| g.f64(&["params", k]);
    let schedule = match g.str(&["params", "noise_schedule"])? {
        "vp" => Schedule::Vp { beta_d: p("beta_d")?, beta_min: p("beta_min")? },
        "ve" => Schedule::Ve { sigma_max: p("t_max")? },
        s => return Err(Error::Golden(format!("{}: unsupported noise_schedule `{s}`", g.name))),
    };
    if p("rho")? != 7.0 || p("midpoint_ratio")? != 0.5 {
        return Err(Error::Golden(format!("{}: only ρ = 7 and midpoint ratio ½ are modelled", g.name)));
    }
    let fam = Ddbm::new(DdbmParams {
        schedule,
        precond: Precond::Ddbm { sigma_data: p("sigma_data")?, cov_xy: p("cov_xy")? },
        t_min: p("t_min")?,
        t_max: p("t_max")?,
        clip: g.bool(&["params", "clip_denoised"])?,
    })?;
    let midpoint = match g.str(&["params", "dataset"])? {
        "diode" => Midpoint::Lambda,
        "e2h" => Midpoint::Time,
        d => return Err(Error::Golden(format!("{}: dataset `{d}` selects no midpoint rule", g.name))),
    };
    let sde_order = p("sde_order")?;
    if sde_order != 1.0 && sde_order != 2.0 {
        return Err(Error::Golden(format!("{}: sde_order {sde_order}", g.name)));
    }
    let sde_order = sde_order as u8;
    let n = nfe(g)?;
    let steps = dbmsolver::steps_for(n, sde_order)?;
    if steps as f64 != p("steps")? {
        return Err(Error::Golden(format!("{}: nfe {n} does not give steps = {}", g.name, p("steps")?)));
    }
    // Our float32 Karras grid must be the recorded one, as float32 values bit for bit (the file
    // writes some of them one float64 ulp off the float32 value).
    let sigmas = g.f64s(&["sigmas"])?;
    let as_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    if as_f32(&dbmsolver::grid(&fam, steps)) != as_f32(&sigmas) {
        return Err(Error::Golden(format!("{}: our grid {:?} is not the recorded {sigmas:?}", g.name, dbmsolver::grid(&fam, steps))));
    }
    let sampler = Sampler::Dbmsolver { midpoint, sde_order };
    let mut net = AffineSin::from_golden(g)?;
    let (x_end, cond) = (g.tensor(&["inputs", "x_T"])?, g.tensor(&["inputs", "cond"])?);
    if !g.bool(&["params", "mask"]).unwrap_or(false) {
        return run(g, &fam, &mut net, &x_end, &cond, &sampler, n);
    }
    let mask = g.tensor(&["inputs", "mask"])?;
    let mut noise = g.noise()?;
    let mut trajectory = Vec::new();
    let mut record = |x: &crate::Tensor| trajectory.push(x.clone());
    let mut model = Model::new(&mut net, &fam, x_end.view(), cond.view())?
        .with_mask(mask.view())?
        .with_hooks(Hooks { on_call: None, on_state: Some(&mut record) });
    let final_ = sample(&mut model, &sampler, n, &mut noise)?;
    Ok(Replayed { trajectory, final_ })
}
