//! IBMD — Inverse Bridge Matching Distillation (Gushchin et al., ICML 2025, arXiv 2502.01362).
//!
//! A generator `G` with the teacher's architecture (initialized from the teacher) learns a
//! coupling `p_θ(x0 | x_T)` such that bridge matching *on that coupling* reproduces the teacher.
//! The paper's tractable objective (its Theorem 3.2) replaces the inner bridge-matching problem by
//! an auxiliary "fake" bridge model `φ` trained on generator samples, and minimizes over `θ`
//!
//! ```text
//! L(θ) = BM(teacher; x0 = G_θ) − BM(φ; x0 = G_θ),      φ ≈ argmin_φ BM(φ; x0 = G_θ)
//! ```
//!
//! where `BM(net; x0)` is the family's own bridge-matching loss with clean images `x0` (same time
//! distribution, noise, target and weighting as the teacher was trained with: here
//! [`crate::objective`] through [`super::trainer::bridge_loss`]). Gradients reach `θ` through `x0`
//! everywhere it appears — in `x_t = a·x0 + b·x_T + c·z` and in the target. Only degraded images
//! are used: `x_T` and the conditioning are the degraded crops; the clean crops are never read.
//!
//! Each step alternates (1) one Adam step of `φ` on `BM(φ; x0 = sg(G))` and (2) one step of `G` on
//! `L(θ)`, with independent times and noise.
//!
//! **Generator calls** follow the SDK's `distilled` sampler exactly (`sampler::distilled`): on the
//! family's grid for `K` steps, the input at `grid[0]` is `(a + b)·x_T + c·z` (= `x_T` when the top
//! marginal has no noise), `x0̂ = G(x_{t_k})` is read through the family's `NetCall` (without the
//! clamp during training, which would stop gradients), and for `k > 0` the input is the teacher's
//! posterior step from the previous state given the previous estimate,
//! `c_x·x + c_0·x0̂ + c_t·x_T + c_z·z` (`sampler::distilled::posterior_row`: I2SB's `p_posterior`,
//! DBIM's η = 1 step elsewhere). The marginal `q(x | x0̂, x_T)` appears only inside the bridge
//! losses. A training step picks `k` uniformly and builds `x_{t_k}` by running the current
//! generator (without gradients) for the first `k` steps.
//!
//! **Generator noise.** The generator takes `concat(c_in·x_t, cond, z)`: the teacher's inputs
//! plus `z`, [`UNetConfig::noise_channels`] channels of standard normal noise drawn fresh for
//! every generator call of every training step (libtorch's generator, seeded from the step's
//! stream). Its `conv_in` is the teacher's with zero weights on the noise channels
//! ([`generator_weights`]), so training starts from the teacher exactly and learns how much noise
//! to use. The package exposes `z` as its own graph input `z` with role `noise` (a static channel
//! count, see `docs/model-package.md`); the SDK's distilled sampler fills it per call from the
//! run's counter-based source (`GENERATOR_DRAW + k`). With 0 noise channels the generator keeps
//! the teacher's inputs and is deterministic given its input state (the paper's inpainting
//! generators). Default: as many noise channels as the image has (`docs/math/ibmd.md`).
//!
//! **Gap to the paper.** The paper's body (its weighting `λ(t)`, and how its multistep variant
//! chooses inputs) was not readable from this workplace; only the abstract and overview pages
//! were. The objective above is the published "teacher loss minus fake-model loss" form with the
//! teacher's own weighting; the multistep input rule is the SDK's distilled sampler's.

use super::tch_ops::{ParamSet, backend};
use super::trainer::{Net, Prepared, Spec, bridge_loss, times};
use crate::error::{Error, Result};
use crate::objective::Objective;
use crate::unet::UNetConfig;
use crate::weights::Weights;
use bridge::family::{Family, NetCall};
use bridge::sampler::distilled::posterior_row;
use tch::{Device, Kind, Tensor};

/// The teacher (frozen), the fake bridge model, and the generator's grid.
pub struct Ibmd {
    teacher: ParamSet,
    tcfg: UNetConfig,
    /// The fake bridge model `φ`.
    pub fake: Net,
    grid: Vec<f64>,
    calls: Vec<NetCall>,
}

impl Ibmd {
    /// Set up distillation of the teacher `(cfg, w)` of `family` into a `k`-step generator.
    pub fn new(cfg: &UNetConfig, w: &Weights, family: &dyn Family, k: usize, device: Device) -> Result<Self> {
        let grid = family.grid(k).map_err(|e| Error::Config(e.to_string()))?;
        let calls: Vec<NetCall> = grid[..grid.len() - 1].iter().map(|&t| family.net_call(t)).collect();
        if let Some(c) = calls.iter().find(|c| c.x0.is_none_or(|l| l.out == 0.0)) {
            return Err(Error::Config(format!(
                "family `{}` has no x0̂ at t = {} of its grid: it cannot host a distilled generator (use an x0-defined family)",
                family.name(),
                c.t
            )));
        }
        Ok(Ibmd {
            teacher: ParamSet::from_weights(w, device, false)?,
            tcfg: cfg.clone(),
            fake: Net::from_weights(cfg, w, device)?,
            grid,
            calls,
        })
    }

    /// `x0̂ = L.x·x + L.xt·x_T + L.out·G(c_in·x, cond, z, t_net)` at grid call `k` (no clamp),
    /// with fresh generator noise `z` when the generator takes some.
    fn generate(&self, generator: &ParamSet, cfg: &UNetConfig, x: &Tensor, x_end: &Tensor, k: usize) -> Result<Tensor> {
        let c = &self.calls[k];
        let l = c.x0.ok_or_else(|| Error::Config("x0̂ undefined".into()))?;
        let s = x.size();
        let b = s[0] as usize;
        let inp = x.f_mul_scalar(c.c_in).map_err(backend)?;
        let cond = (cfg.cond_channels > 0).then_some(x_end);
        let z = match cfg.noise_channels {
            0 => None,
            n => Some(Tensor::f_randn([s[0], n as i64, s[2], s[3]].as_slice(), (Kind::Float, x.device())).map_err(backend)?),
        };
        let raw = generator.forward_with_noise(cfg, &inp, cond, z.as_ref(), &times(&vec![c.t_net; b], x.device())?)?;
        let r = |v: std::result::Result<Tensor, tch::TchError>| v.map_err(backend);
        let a = r(x.f_mul_scalar(l.x))?;
        let bb = r(x_end.f_mul_scalar(l.xt))?;
        let cc = r(raw.f_mul_scalar(l.out))?;
        r(a.f_add(&bb).and_then(|s| s.f_add(&cc)))
    }

    /// The generator's input at grid call `k`: the top state, then `k` generator steps with
    /// re-noising (no gradients).
    fn input(&self, generator: &ParamSet, cfg: &UNetConfig, family: &dyn Family, x_end: &Tensor, k: usize) -> Result<Tensor> {
        let _g = tch::no_grad_guard();
        let r = |v: std::result::Result<Tensor, tch::TchError>| v.map_err(backend);
        let noise = || r(Tensor::f_randn(x_end.size().as_slice(), (Kind::Float, x_end.device())));
        let top = family.marginal(self.grid[0]);
        let n0 = r(noise()?.f_mul_scalar(top.std))?;
        let mut x = r(x_end.f_mul_scalar(top.x0 + top.xt).and_then(|a| a.f_add(&n0)))?;
        for j in 0..k {
            let x0 = self.generate(generator, cfg, &x, x_end, j)?;
            let row = posterior_row(family, self.grid[j], self.grid[j + 1]).map_err(|e| Error::Config(e.to_string()))?;
            let n = r(noise()?.f_mul_scalar(row.c_z))?;
            x = r(x
                .f_mul_scalar(row.c_x)
                .and_then(|a| a.f_add(&x0.f_mul_scalar(row.c_0)?))
                .and_then(|a| a.f_add(&x_end.f_mul_scalar(row.c_t)?))
                .and_then(|a| a.f_add(&n)))?;
        }
        Ok(x)
    }

    /// One distillation step (fake model, then generator); returns the generator loss.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        generator: &mut Net,
        obj: &Objective<'_>,
        wscale: f64,
        degraded: &Tensor,
        p: &Prepared,
        device: Device,
        lr: f64,
        spec: &Spec,
    ) -> Result<Tensor> {
        let family = obj.family();
        let mut rng = p.rng.clone();
        let k = rng.below(self.calls.len());
        // The re-noising draws of `input` and the generator noise use libtorch's generator: seed
        // it from the step stream.
        tch::manual_seed(i64::from(rng.next_u32()));
        let x_end = degraded;
        let cond = (self.tcfg.cond_channels > 0).then_some(x_end);
        let x_in = self.input(&generator.params, &generator.cfg, family, x_end, k)?;
        let x0_g = self.generate(&generator.params, &generator.cfg, &x_in, x_end, k)?;
        let z = p.z.to_device(device);
        let z2 = p.z2.to_device(device);

        // (1) The fake model: the family's objective on generator samples (no gradient to G).
        let x0_sg = x0_g.detach();
        let lf = bridge_loss(&self.fake.params, &self.fake.cfg, obj.loss(), wscale, &x0_sg, x_end, cond, &z, &p.draws)?;
        self.fake.update(&lf, lr, spec.grad_clip, spec.ema)?;

        // (2) The generator: teacher's loss minus the (updated) fake model's, same draws and noise.
        let lt = bridge_loss(&self.teacher, &self.tcfg, obj.loss(), wscale, &x0_g, x_end, cond, &z2, &p.draws2)?;
        let lfk = bridge_loss(&self.fake.params, &self.fake.cfg, obj.loss(), wscale, &x0_g, x_end, cond, &z2, &p.draws2)?;
        let lg = lt.f_sub(&lfk).map_err(backend)?;
        generator.update(&lg, lr, spec.grad_clip, spec.ema)?;
        Ok(lg)
    }
}

/// The generator's architecture and initial weights: the teacher's, with `noise_channels` more
/// input channels whose `conv_in` weights are zero (the generator starts as the teacher, whatever
/// its noise).
pub fn generator_weights(teacher: &UNetConfig, w: &Weights, noise_channels: usize) -> Result<(UNetConfig, Weights)> {
    if teacher.noise_channels != 0 {
        return Err(Error::Config("the teacher is itself a distilled generator (it has noise channels)".into()));
    }
    let mut cfg = teacher.clone();
    cfg.noise_channels = noise_channels;
    cfg.validate()?;
    let mut out = w.clone();
    out.set_meta(crate::weights::CONFIG_KEY, &cfg.to_json());
    if noise_channels > 0 {
        let name = "conv_in.weight";
        let old = w.get(name).ok_or_else(|| Error::Weights(format!("the teacher has no `{name}`")))?;
        let (cout, cin, kh, kw) = match old.shape.as_slice() {
            &[a, b, c, d] => (a, b, c, d),
            s => return Err(Error::Weights(format!("`{name}` has shape {s:?}, not 4-D"))),
        };
        let k = kh * kw;
        let wide = cin.checked_add(noise_channels).ok_or_else(|| Error::Config("too many noise channels".into()))?;
        let mut data = vec![0.0f32; cout * wide * k];
        for o in 0..cout {
            let src = &old.data[o * cin * k..(o + 1) * cin * k];
            data[o * wide * k..o * wide * k + cin * k].copy_from_slice(src);
        }
        out.insert(name, &[cout, wide, kh, kw], data)?;
    }
    out.check_exact(&cfg.params()?)?;
    Ok((cfg, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::InitMode;

    /// The widened generator computes exactly the teacher's output at initialization, whatever
    /// its noise; a non-zero noise weight makes the noise matter.
    #[test]
    fn generator_starts_as_the_teacher() {
        let tcfg = UNetConfig::tiny(3, 3, 3);
        let tw = Weights::for_unet(&tcfg, 5, InitMode::Random).unwrap();
        let (gcfg, gw) = generator_weights(&tcfg, &tw, 2).unwrap();
        assert_eq!(gcfg.noise_channels, 2);
        let (t, g) = (ParamSet::from_weights(&tw, Device::Cpu, false).unwrap(), ParamSet::from_weights(&gw, Device::Cpu, false).unwrap());
        tch::manual_seed(1);
        let x = Tensor::randn([1, 3, 8, 8], (Kind::Float, Device::Cpu));
        let c = Tensor::randn([1, 3, 8, 8], (Kind::Float, Device::Cpu));
        let z = Tensor::randn([1, 2, 8, 8], (Kind::Float, Device::Cpu));
        let tt = Tensor::from_slice(&[0.3f32]);
        let a = t.forward(&tcfg, &x, Some(&c), &tt).unwrap();
        let b = g.forward_with_noise(&gcfg, &x, Some(&c), Some(&z), &tt).unwrap();
        assert_eq!(a.f_sub(&b).unwrap().abs().max().double_value(&[]), 0.0);
        // Noise weights that are not zero: the output moves with z.
        let mut gw2 = gw.clone();
        let cw = gw.get("conv_in.weight").unwrap();
        gw2.insert("conv_in.weight", &cw.shape, cw.data.iter().map(|v| if *v == 0.0 { 0.1 } else { *v }).collect()).unwrap();
        let g2 = ParamSet::from_weights(&gw2, Device::Cpu, false).unwrap();
        let b2 = g2.forward_with_noise(&gcfg, &x, Some(&c), Some(&z), &tt).unwrap();
        assert!(a.f_sub(&b2).unwrap().abs().max().double_value(&[]) > 1e-4);
        // A generator cannot be a teacher; no noise keeps the teacher's weights.
        assert!(generator_weights(&gcfg, &gw, 1).is_err());
        assert_eq!(generator_weights(&tcfg, &tw, 0).unwrap().1, tw);
    }
}
