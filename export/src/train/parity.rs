//! Parity of the three executions of the one U-Net: libtorch ([`super::tch_ops`], the training
//! forward), the reference backend ([`crate::reference`]) and ONNX Runtime on the written package
//! (through the SDK's own `OnnxDenoiser`, i.e. what `bridge restore` runs).
//!
//! The network is first trained for a few steps (Adam, the I2SB objective on random images) so
//! that the checked weights are trained weights exported back from libtorch, not just the
//! initializer's. `bridge-export parity` and `tests/parity.rs` run it.

use super::tch_ops::{ParamSet, tensor, values};
use super::trainer::{Net, bridge_loss};
use crate::degrade::Rng;
use crate::error::{Error, Result};
use crate::objective::Objective;
use crate::package::{Task, build_family, package_meta, write_package};
use crate::reference::unet_reference;
use crate::unet::UNetConfig;
use crate::weights::{InitMode, Weights};
use bridge::Denoiser;
use bridge::runtime::{OnnxDenoiser, SessionConfig};
use ndarray::{ArrayD, IxDyn};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Device, Tensor};

/// Relative L2 errors between the executions, and how far training moved the weights.
#[derive(Clone, Debug)]
pub struct Parity {
    /// ‖tch − reference‖/‖reference‖.
    pub tch_vs_ref: f64,
    /// ‖ORT − reference‖/‖reference‖.
    pub ort_vs_ref: f64,
    /// ‖ORT − tch‖/‖tch‖.
    pub ort_vs_tch: f64,
    /// Relative L2 change of all weights during training.
    pub weight_change: f64,
    /// Training losses, first and last.
    pub losses: (f64, f64),
}

fn rel(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum();
    let den: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (num / den.max(1e-300)).sqrt()
}

fn smooth(rng: &mut Rng, shape: &[usize]) -> Vec<f32> {
    // Random but image-like values in [−1, 1]: a random smooth pattern plus noise.
    let (fa, fb, ph) = (rng.range(0.2, 0.9), rng.range(0.2, 0.9), rng.range(0.0, 6.0));
    let n: usize = shape.iter().product();
    (0..n).map(|i| ((i as f64 * fa).sin() * 0.5 + (i as f64 * fb + ph).cos() * 0.3 + 0.2 * rng.range(-1.0, 1.0)) as f32).collect()
}

/// Train `cfg` (conditional) for `steps` Adam steps from random weights, write the package into
/// `dir`, and compare the three executions on a random `[2, C, h, w]` input at time `t_net`.
pub fn check(cfg: &UNetConfig, steps: usize, seed: u64, dir: &Path, (h, w): (usize, usize), t_net: f64) -> Result<Parity> {
    if cfg.cond_channels == 0 {
        return Err(Error::Config("parity runs a conditional network".into()));
    }
    let dev = Device::Cpu;
    let init = Weights::for_unet(cfg, seed, InitMode::Random)?;
    let mut net = Net::from_weights(cfg, &init, dev)?;
    let meta = package_meta("i2sb", None, Default::default(), Task::Denoise, cfg)?;
    let family = build_family(&meta)?;
    let obj = Objective::new(family.as_ref())?;
    let mut rng = Rng::new(seed, 1);
    let (b, c, s) = (4, cfg.in_channels, 2 * cfg.spatial_multiple().max(4));
    let img = [b, c, s, s];
    let mut losses = (f64::NAN, f64::NAN);
    for i in 0..steps {
        let x0 = tensor(&smooth(&mut rng, &img), &img, dev)?;
        let xe = tensor(&smooth(&mut rng, &img), &img, dev)?;
        let z = tensor(&(0..img.iter().product::<usize>()).map(|_| rng.normal()).collect::<Vec<_>>(), &img, dev)?;
        let draws = (0..b).map(|_| obj.draw(&mut rng)).collect::<Result<Vec<_>>>()?;
        let l = bridge_loss(&net.params, cfg, obj.loss(), 1.0, &x0, &xe, Some(&xe), &z, &draws)?;
        let lv = l.double_value(&[]);
        if i == 0 {
            losses.0 = lv;
        }
        losses.1 = lv;
        net.update(&l, 1e-3, 0.0, 0.0)?;
    }
    let trained = net.params.to_weights(Some(cfg))?;
    let flat = |w: &Weights| w.names().flat_map(|n| w.get(n).map(|t| t.data.clone()).unwrap_or_default()).collect::<Vec<f32>>();
    let weight_change = rel(&flat(&trained), &flat(&init));

    // The package the SDK loads.
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = write_package(&dir.join("parity.onnx"), cfg, &trained, &meta, None, &BTreeMap::new())?;

    let shape = [2, cfg.in_channels, h, w];
    let cshape = [2, cfg.cond_channels, h, w];
    let xv = smooth(&mut rng, &shape);
    let cv = smooth(&mut rng, &cshape);
    let t = vec![t_net as f32; 2];

    let ps = ParamSet::from_weights(&trained, dev, false)?;
    let out_tch = tch::no_grad(|| -> Result<Vec<f32>> {
        let o = ps.forward(cfg, &tensor(&xv, &shape, dev)?, Some(&tensor(&cv, &cshape, dev)?), &Tensor::from_slice(&t))?;
        values(&o)
    })?;
    let arr = |v: &[f32], s: &[usize]| ArrayD::from_shape_vec(IxDyn(s), v.to_vec()).map_err(|e| Error::Shape(e.to_string()));
    let out_ref = unet_reference(cfg, &trained, &arr(&xv, &shape)?, Some(&arr(&cv, &cshape)?), &arr(&t, &[2])?)?;
    let out_ref: Vec<f32> = out_ref.iter().copied().collect();

    let (mut ort, _) = OnnxDenoiser::load_package(&path, &SessionConfig { threads: 1, ..Default::default() })
        .map_err(|e| Error::Backend(format!("ONNX Runtime: {e}")))?;
    let x4 = ndarray::Array4::from_shape_vec((2, cfg.in_channels, h, w), xv).map_err(|e| Error::Shape(e.to_string()))?;
    let c4 = ndarray::Array4::from_shape_vec((2, cfg.cond_channels, h, w), cv).map_err(|e| Error::Shape(e.to_string()))?;
    let out_ort = ort.eval(x4.view(), c4.view(), t_net).map_err(|e| Error::Backend(format!("ONNX Runtime: {e}")))?;
    let out_ort: Vec<f32> = out_ort.iter().copied().collect();

    Ok(Parity {
        tch_vs_ref: rel(&out_tch, &out_ref),
        ort_vs_ref: rel(&out_ort, &out_ref),
        ort_vs_tch: rel(&out_ort, &out_tch),
        weight_change,
        losses,
    })
}
