//! Adam, global-norm gradient clipping, the EMA of the weights, and the learning-rate schedule —
//! written out (a few tensor ops each) so that every piece of optimizer state is a plain tensor we
//! can checkpoint and restore bit-for-bit (libtorch's built-in optimizers keep theirs inside C++).

use super::tch_ops::{ParamSet, backend, shape, tensor, values};
use crate::error::{Error, Result};
use crate::weights::Weights;
use tch::Tensor;

/// Adam (Kingma & Ba) with bias correction, as `torch.optim.Adam` without weight decay.
pub struct Adam {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Steps taken (bias correction uses it).
    pub t: u64,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    /// Zero moments for `params` (β = 0.9, 0.999; ε = 1e-8).
    pub fn new(params: &ParamSet) -> Self {
        let z = |p: &Tensor| p.zeros_like().set_requires_grad(false);
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: 0,
            m: params.tensors().into_iter().map(z).collect(),
            v: params.tensors().into_iter().map(z).collect(),
        }
    }

    /// One update of `params` (in path order) with `grads`, learning rate `lr`.
    pub fn step(&mut self, params: &ParamSet, grads: &[Tensor], lr: f64) -> Result<()> {
        let ps = params.tensors();
        if grads.len() != ps.len() {
            return Err(Error::Backend(format!("{} gradients for {} parameters", grads.len(), ps.len())));
        }
        let _g = tch::no_grad_guard();
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.t.min(i32::MAX as u64) as i32);
        let c2 = 1.0 - b2.powi(self.t.min(i32::MAX as u64) as i32);
        for (((p, g), m), v) in ps.into_iter().zip(grads).zip(&mut self.m).zip(&mut self.v) {
            // m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;  p ← p − lr·(m/c₁)/(√(v/c₂) + ε).
            let _ = m.f_mul_scalar_(b1).map_err(backend)?;
            let _ = m.f_add_(&g.f_mul_scalar(1.0 - b1).map_err(backend)?).map_err(backend)?;
            let _ = v.f_mul_scalar_(b2).map_err(backend)?;
            let _ = v.f_add_(&g.f_square().and_then(|s| s.f_mul_scalar(1.0 - b2)).map_err(backend)?).map_err(backend)?;
            let denom = v.f_div_scalar(c2).and_then(|x| x.f_sqrt()).and_then(|x| x.f_add_scalar(self.eps)).map_err(backend)?;
            let upd = m.f_div(&denom).and_then(|x| x.f_mul_scalar(lr / c1)).map_err(backend)?;
            let mut p = p.shallow_clone();
            let _ = p.f_sub_(&upd).map_err(backend)?;
        }
        Ok(())
    }

    /// The moments as named tensors (`<prefix>m.<path>`, `<prefix>v.<path>`) into `w`.
    pub fn save(&self, params: &ParamSet, prefix: &str, w: &mut Weights) -> Result<()> {
        for (((name, _), m), v) in params.iter().zip(&self.m).zip(&self.v) {
            w.insert(&format!("{prefix}m.{name}"), &shape(m), values(m)?)?;
            w.insert(&format!("{prefix}v.{name}"), &shape(v), values(v)?)?;
        }
        w.set_meta(&format!("{prefix}t"), &self.t.to_string());
        Ok(())
    }

    /// Restore what [`Adam::save`] wrote.
    pub fn load(&mut self, params: &ParamSet, prefix: &str, w: &Weights) -> Result<()> {
        let dev = params.device();
        for (((name, p), m), v) in params.iter().zip(&mut self.m).zip(&mut self.v) {
            for (slot, key) in [(m, "m"), (v, "v")] {
                let t = w.fetch(&format!("{prefix}{key}.{name}"), &shape(p))?;
                *slot = tensor(&t.data, &t.shape, dev)?;
            }
        }
        let t = w.meta(&format!("{prefix}t")).ok_or_else(|| Error::Weights(format!("checkpoint lacks `{prefix}t`")))?;
        self.t = t.parse().map_err(|_| Error::Weights(format!("`{prefix}t` = {t} is not a step count")))?;
        Ok(())
    }
}

/// Scale `grads` so that their global L2 norm is at most `max` (no-op for `max ≤ 0`); returns the
/// norm before clipping.
pub fn clip_grad_norm(grads: &mut [Tensor], max: f64) -> Result<f64> {
    let _g = tch::no_grad_guard();
    let mut sq = 0.0;
    for g in grads.iter() {
        sq += g.f_square().and_then(|s| s.f_sum(tch::Kind::Double)).and_then(|s| s.f_double_value(&[])).map_err(backend)?;
    }
    let norm = sq.sqrt();
    if max > 0.0 && norm > max {
        for g in grads.iter_mut() {
            let _ = g.f_mul_scalar_(max / norm).map_err(backend)?;
        }
    }
    Ok(norm)
}

/// The EMA decay at `step` for a target `decay`: `min(decay, (1 + step)/(10 + step))`, so that
/// the average forgets the random initialization quickly in short runs.
pub fn ema_decay(decay: f64, step: u64) -> f64 {
    decay.min((1.0 + step as f64) / (10.0 + step as f64))
}

/// `ema ← d·ema + (1 − d)·params`.
pub fn ema_update(ema: &ParamSet, params: &ParamSet, d: f64) -> Result<()> {
    let _g = tch::no_grad_guard();
    for ((_, e), (_, p)) in ema.iter().zip(params.iter()) {
        let mut e = e.shallow_clone();
        let _ = e.f_lerp_(p, 1.0 - d).map_err(backend)?;
    }
    Ok(())
}

/// Linear warm-up over `warmup` steps, then a cosine decay from `lr` to `lr/10` at `total`.
pub fn learning_rate(lr: f64, step: u64, warmup: u64, total: u64) -> f64 {
    let w = if warmup > 0 { ((step + 1) as f64 / warmup as f64).min(1.0) } else { 1.0 };
    let span = total.saturating_sub(warmup).max(1) as f64;
    let p = (step.saturating_sub(warmup) as f64 / span).min(1.0);
    lr * w * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * p).cos()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Our Adam matches libtorch's own on the same problem for several steps.
    #[test]
    fn adam_matches_torch() {
        let mut w = Weights::new();
        w.insert("a", &[3, 2], vec![0.5, -1.0, 0.25, 2.0, -0.75, 1.5]).unwrap();
        let ps = ParamSet::from_weights(&w, Device::Cpu, true).unwrap();
        let mut adam = Adam::new(&ps);
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let b = vs.root().var_copy("a", &ps.get("a").unwrap().detach());
        let mut opt = tch::nn::OptimizerConfig::build(tch::nn::Adam::default(), &vs, 0.05).unwrap();
        let x = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 3.0]).view([2, 2]);
        for _ in 0..5 {
            let loss = |p: &Tensor| x.matmul(&p.transpose(0, 1)).sin().sum(Kind::Float);
            let l = loss(ps.get("a").unwrap());
            let g = Tensor::run_backward(&[&l], &ps.tensors(), false, false);
            adam.step(&ps, &g, 0.05).unwrap();
            opt.backward_step(&loss(&b));
        }
        let d = (ps.get("a").unwrap() - &b).abs().max().double_value(&[]);
        assert!(d < 1e-6, "max diff {d}");
        // Moments survive a save/load round trip.
        let mut ck = Weights::new();
        adam.save(&ps, "o.", &mut ck).unwrap();
        let mut again = Adam::new(&ps);
        again.load(&ps, "o.", &ck).unwrap();
        assert_eq!(again.t, 5);
        assert_eq!(values(&again.m[0]).unwrap(), values(&adam.m[0]).unwrap());
    }

    #[test]
    fn clipping_ema_and_schedule() {
        let mut g = vec![Tensor::from_slice(&[3.0f32, 0.0]), Tensor::from_slice(&[4.0f32])];
        assert!((clip_grad_norm(&mut g, 1.0).unwrap() - 5.0).abs() < 1e-9);
        assert!((values(&g[0]).unwrap()[0] - 0.6).abs() < 1e-6);
        let mut w = Weights::new();
        w.insert("a", &[1], vec![1.0]).unwrap();
        let p = ParamSet::from_weights(&w, Device::Cpu, true).unwrap();
        w.insert("a", &[1], vec![0.0]).unwrap();
        let e = ParamSet::from_weights(&w, Device::Cpu, false).unwrap();
        ema_update(&e, &p, 0.75).unwrap();
        assert!((values(e.get("a").unwrap()).unwrap()[0] - 0.25).abs() < 1e-7);
        assert_eq!(ema_decay(0.999, 0), 0.1);
        assert_eq!(ema_decay(0.999, 1_000_000), 0.999);
        assert!((learning_rate(1.0, 0, 10, 100) - 0.1).abs() < 1e-12);
        assert!((learning_rate(1.0, 9, 10, 100) - 1.0).abs() < 1e-12);
        assert!((learning_rate(1.0, 100, 10, 100) - 0.1).abs() < 1e-12);
    }
}
