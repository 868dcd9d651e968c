//! The libtorch backend of [`Ops`]: eager `tch` tensors with autograd, so
//! [`crate::unet::unet_forward`] — the same function the ONNX emitter runs — is also the training
//! forward pass.
//!
//! Parameters live in a [`ParamSet`]: one leaf tensor per dotted path (`down.1.res.0.conv1.weight`),
//! created from a [`Weights`] (the crate's seeded pure-Rust initializer, or trained weights) and
//! exported back to one. We keep them in a plain map rather than a `tch::nn::VarStore` because the
//! optimizer here is our own (`train::optim`): its moments are checkpointed next to the weights,
//! which libtorch's built-in optimizers do not expose. A parameter that the network asks for but
//! the set lacks (or with another shape) is an error, never a silent new variable.
//!
//! The op semantics are the table in `docs/unet.md`; `tests/parity.rs` checks this backend against
//! [`crate::reference::RefOps`] and ONNX Runtime on the written model.

use crate::error::{Error, Result};
use crate::ops::{Init, Ops};
use crate::unet::{UNetConfig, unet_forward, unet_forward_with_noise};
use crate::weights::{CONFIG_KEY, Weights};
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// A libtorch error as the crate's error.
pub fn backend(e: tch::TchError) -> Error {
    Error::Backend(e.to_string())
}

/// An `f32` tensor of `shape` from row-major `data` on `device`.
pub fn tensor(data: &[f32], shape: &[usize], device: Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    if n != data.len() {
        return Err(Error::Shape(format!("{} values for shape {shape:?}", data.len())));
    }
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(data).f_reshape(dims.as_slice()).and_then(|t| t.f_to_device(device)).map_err(backend)
}

/// The values of `t` as a row-major `Vec<f32>` (copied to the CPU).
pub fn values(t: &Tensor) -> Result<Vec<f32>> {
    let flat = t
        .f_to_kind(Kind::Float)
        .and_then(|t| t.f_to_device(Device::Cpu))
        .and_then(|t| t.f_contiguous())
        .and_then(|t| t.f_flatten(0, -1))
        .map_err(backend)?;
    Vec::<f32>::try_from(&flat).map_err(backend)
}

/// The shape of `t` as `usize`s.
pub fn shape(t: &Tensor) -> Vec<usize> {
    t.size().iter().map(|&d| d as usize).collect()
}

/// One network's trainable parameters: a leaf tensor per dotted path.
pub struct ParamSet {
    vars: BTreeMap<String, Tensor>,
    device: Device,
}

impl ParamSet {
    /// Leaves holding `weights`' tensors on `device`; `trainable` sets `requires_grad` (a frozen
    /// teacher is not trainable, but gradients still flow through its inputs).
    pub fn from_weights(weights: &Weights, device: Device, trainable: bool) -> Result<Self> {
        let mut vars = BTreeMap::new();
        for name in weights.names() {
            let t = weights.get(name).ok_or_else(|| Error::Weights(format!("`{name}` vanished")))?;
            let v = tensor(&t.data, &t.shape, device)?.f_set_requires_grad(trainable).map_err(backend)?;
            vars.insert(name.to_string(), v);
        }
        Ok(ParamSet { vars, device })
    }

    /// The network's parameters from `cfg`'s seeded training initializer (see [`Weights::for_unet`]).
    pub fn init(cfg: &UNetConfig, seed: u64, device: Device) -> Result<Self> {
        let w = Weights::for_unet(cfg, seed, crate::weights::InitMode::Training)?;
        Self::from_weights(&w, device, true)
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// `(path, tensor)` in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The tensors in path order (what the optimizer steps).
    pub fn tensors(&self) -> Vec<&Tensor> {
        self.vars.values().collect()
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// No tensors.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// The tensor at `path`.
    pub fn get(&self, path: &str) -> Option<&Tensor> {
        self.vars.get(path)
    }

    /// Overwrite every parameter's values with `other`'s (same paths and shapes), in place.
    pub fn copy_from(&mut self, other: &ParamSet) -> Result<()> {
        let _g = tch::no_grad_guard();
        for (k, v) in self.vars.iter_mut() {
            let src = other.vars.get(k).ok_or_else(|| Error::Weights(format!("copy: `{k}` missing")))?;
            v.f_copy_(src).map_err(backend)?;
        }
        Ok(())
    }

    /// The values as a [`Weights`] (with `cfg` in the metadata when given).
    pub fn to_weights(&self, cfg: Option<&UNetConfig>) -> Result<Weights> {
        let mut w = Weights::new();
        for (k, v) in &self.vars {
            w.insert(k, &shape(v), values(v)?)?;
        }
        if let Some(c) = cfg {
            w.set_meta(CONFIG_KEY, &c.to_json());
        }
        Ok(w)
    }

    /// Run the U-Net with these parameters.
    pub fn forward(&self, cfg: &UNetConfig, x: &Tensor, cond: Option<&Tensor>, t: &Tensor) -> Result<Tensor> {
        unet_forward(&mut TchOps::new(self), cfg, x, cond, t)
    }

    /// Run a distilled generator (a U-Net with `noise_channels`) on its noise `z`.
    pub fn forward_with_noise(
        &self,
        cfg: &UNetConfig,
        x: &Tensor,
        cond: Option<&Tensor>,
        z: Option<&Tensor>,
        t: &Tensor,
    ) -> Result<Tensor> {
        unet_forward_with_noise(&mut TchOps::new(self), cfg, x, cond, z, t)
    }
}

/// The eager backend over a [`ParamSet`].
pub struct TchOps<'p> {
    params: &'p ParamSet,
}

impl<'p> TchOps<'p> {
    /// A backend reading parameters from `params`.
    pub fn new(params: &'p ParamSet) -> Self {
        TchOps { params }
    }
}

fn r<T>(x: std::result::Result<T, tch::TchError>) -> Result<T> {
    x.map_err(backend)
}

impl Ops for TchOps<'_> {
    type T = Tensor;

    fn share(&self, x: &Tensor) -> Tensor {
        x.shallow_clone()
    }

    fn param(&mut self, path: &str, shape_: &[usize], _init: Init) -> Result<Tensor> {
        let v = self.params.vars.get(path).ok_or_else(|| Error::Weights(format!("missing parameter `{path}` (shape {shape_:?})")))?;
        if shape(v) != shape_ {
            return Err(Error::Weights(format!("parameter `{path}` has shape {:?}, the network needs {shape_:?}", shape(v))));
        }
        Ok(v.shallow_clone())
    }

    fn constant(&mut self, shape_: &[usize], data: &[f32]) -> Result<Tensor> {
        tensor(data, shape_, self.params.device)
    }

    fn conv2d(&mut self, x: &Tensor, w: &Tensor, b: &Tensor, stride: usize, pad: usize) -> Result<Tensor> {
        let (s, p) = (stride as i64, pad as i64);
        r(x.f_conv2d(w, Some(b), [s, s], [p, p], [1, 1], 1))
    }

    fn linear(&mut self, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
        r(x.f_linear(w, Some(b)))
    }

    fn group_norm(&mut self, x: &Tensor, groups: usize, eps: f64, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
        r(x.f_group_norm(groups as i64, Some(gamma), Some(beta), eps, true))
    }

    fn silu(&mut self, x: &Tensor) -> Result<Tensor> {
        r(x.f_silu())
    }

    fn sin(&mut self, x: &Tensor) -> Result<Tensor> {
        r(x.f_sin())
    }

    fn cos(&mut self, x: &Tensor) -> Result<Tensor> {
        r(x.f_cos())
    }

    fn add(&mut self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        r(a.f_add(b))
    }

    fn mul(&mut self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        r(a.f_mul(b))
    }

    fn scale(&mut self, x: &Tensor, s: f32) -> Result<Tensor> {
        r(x.f_mul_scalar(s as f64))
    }

    fn concat(&mut self, xs: &[&Tensor], axis: usize) -> Result<Tensor> {
        r(Tensor::f_cat(xs, axis as i64))
    }

    fn upsample_nearest2x(&mut self, x: &Tensor) -> Result<Tensor> {
        let s = x.size();
        if s.len() != 4 {
            return Err(Error::Shape(format!("upsample: expected a 4-D tensor, got {s:?}")));
        }
        r(x.f_upsample_nearest2d([2 * s[2], 2 * s[3]], None, None))
    }

    fn reshape(&mut self, x: &Tensor, spec: &[i64]) -> Result<Tensor> {
        // ONNX Reshape: 0 copies the input's dimension at that position (libtorch has no such code).
        let s = x.size();
        let dims = spec
            .iter()
            .enumerate()
            .map(|(i, &d)| match d {
                0 => s.get(i).copied().ok_or_else(|| Error::Shape(format!("reshape {spec:?} of {s:?}"))),
                d => Ok(d),
            })
            .collect::<Result<Vec<i64>>>()?;
        r(x.f_reshape(dims.as_slice()))
    }

    fn reshape_like(&mut self, x: &Tensor, like: &Tensor) -> Result<Tensor> {
        r(x.f_reshape(like.size().as_slice()))
    }

    fn transpose(&mut self, x: &Tensor, perm: &[usize]) -> Result<Tensor> {
        let p: Vec<i64> = perm.iter().map(|&v| v as i64).collect();
        r(x.f_permute(p.as_slice()))
    }

    fn matmul(&mut self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        r(a.f_matmul(b))
    }

    fn softmax_last(&mut self, x: &Tensor) -> Result<Tensor> {
        r(x.f_softmax(-1, Kind::Float))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::RefOps;
    use crate::weights::InitMode;
    use ndarray::{ArrayD, IxDyn};

    fn arr(t: &Tensor) -> ArrayD<f32> {
        ArrayD::from_shape_vec(IxDyn(&shape(t)), values(t).unwrap()).unwrap()
    }

    /// Every primitive agrees with the reference backend on the same inputs (including the ONNX
    /// `0` code of reshape, broadcasting, and the nearest upsampling convention).
    #[test]
    fn primitives_match_the_reference() {
        let w = Weights::new();
        let ps = ParamSet::from_weights(&w, Device::Cpu, false).unwrap();
        let mut t = TchOps::new(&ps);
        let mut rf = RefOps::new(&w);
        let d = |n: usize, k: f32| (0..n).map(|i| (i as f32 * 0.37 + k).sin()).collect::<Vec<f32>>();
        let x = tensor(&d(2 * 4 * 6 * 6, 0.1), &[2, 4, 6, 6], Device::Cpu).unwrap();
        let wk = tensor(&d(3 * 4 * 9, 0.7), &[3, 4, 3, 3], Device::Cpu).unwrap();
        let b = tensor(&d(3, 1.3), &[3], Device::Cpu).unwrap();
        let g = tensor(&d(4, 2.0), &[4], Device::Cpu).unwrap();
        let close = |a: &Tensor, b: ArrayD<f32>| {
            let a = arr(a);
            assert_eq!(a.shape(), b.shape());
            let e = a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            assert!(e < 1e-4, "max abs err {e}");
        };
        let (xa, wa, ba, ga) = (arr(&x), arr(&wk), arr(&b), arr(&g));
        close(&t.conv2d(&x, &wk, &b, 2, 1).unwrap(), rf.conv2d(&xa, &wa, &ba, 2, 1).unwrap());
        close(&t.group_norm(&x, 2, 1e-5, &g, &g).unwrap(), rf.group_norm(&xa, 2, 1e-5, &ga, &ga).unwrap());
        close(&t.upsample_nearest2x(&x).unwrap(), rf.upsample_nearest2x(&xa).unwrap());
        close(&t.reshape(&x, &[0, 2, -1]).unwrap(), rf.reshape(&xa, &[0, 2, -1]).unwrap());
        close(&t.softmax_last(&x).unwrap(), rf.softmax_last(&xa).unwrap());
        let gb = t.reshape(&g, &[-1, 1, 1]).unwrap();
        let gba = rf.reshape(&ga, &[-1, 1, 1]).unwrap();
        close(&t.mul(&x, &gb).unwrap(), rf.mul(&xa, &gba).unwrap());
        close(&t.transpose(&x, &[0, 2, 3, 1]).unwrap(), rf.transpose(&xa, &[0, 2, 3, 1]).unwrap());
        assert!(t.reshape(&x, &[0, 0, 0, 0, 0]).is_err());
    }

    /// Weights → parameter set → weights is lossless; a missing parameter is an error naming it.
    #[test]
    fn weights_round_trip_and_missing_parameters() {
        let cfg = UNetConfig::tiny(3, 3, 3);
        let w = Weights::for_unet(&cfg, 5, InitMode::Random).unwrap();
        let ps = ParamSet::from_weights(&w, Device::Cpu, true).unwrap();
        assert_eq!(ps.len(), cfg.params().unwrap().len());
        assert_eq!(ps.to_weights(Some(&cfg)).unwrap(), w);
        let mut less = Weights::new();
        for n in w.names().filter(|n| *n != "mid.attn.q.weight") {
            let t = w.get(n).unwrap();
            less.insert(n, &t.shape, t.data.clone()).unwrap();
        }
        let ps = ParamSet::from_weights(&less, Device::Cpu, true).unwrap();
        let x = Tensor::zeros([1, 3, 4, 4], (Kind::Float, Device::Cpu));
        let e = ps.forward(&cfg, &x, Some(&x), &Tensor::zeros([1], (Kind::Float, Device::Cpu))).unwrap_err();
        assert!(e.to_string().contains("mid.attn.q.weight"), "{e}");
    }
}
