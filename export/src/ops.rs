//! The backend abstraction the U-Net is written against, once.
//!
//! [`crate::unet::unet_forward`] builds the network from these primitives only. Each backend gives
//! them a meaning:
//!
//! * [`crate::onnx_ops::OnnxOps`]: symbolic — a value is an ONNX value name, every call appends
//!   nodes, every parameter becomes an initializer (taken from a [`crate::weights::Weights`]);
//! * [`crate::reference::RefOps`]: eager `f32` arrays (`ndarray`), the executable reference the ONNX
//!   graph is checked against;
//! * [`Collect`]: nothing but the parameter list (names, shapes, initializers);
//! * the `tch` backend behind the `train` feature: eager libtorch tensors with autograd.
//!
//! The exact semantics every backend must implement are in `docs/unet.md` ("Op semantics").
//! All tensors are `f32`; image tensors are NCHW.

use crate::error::Result;
use serde::{Deserialize, Serialize};

/// How a parameter is initialized for training (see [`crate::weights::Weights::init`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Init {
    /// Uniform on `[−1/√fan_in, 1/√fan_in)`: PyTorch's default for `Linear`/`Conv2d` weights and biases.
    FanIn(usize),
    /// Zero at the start of training (the last layer of a residual branch and of the network, so that
    /// every block starts as the identity); random test weights use `FanIn(fan_in)` instead.
    ZeroOr(usize),
    /// All ones (GroupNorm scale).
    Ones,
    /// All zeros (GroupNorm shift).
    Zeros,
}

/// One parameter of a network: its dotted path (`down.1.res.0.conv1.weight`), shape and initializer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// Stable dotted path; also the ONNX initializer name and the weights-file key.
    pub path: String,
    /// Shape (PyTorch layout: conv `[out, in, k, k]`, linear `[out, in]`, bias/norm `[C]`).
    pub shape: Vec<usize>,
    /// Training initializer.
    pub init: Init,
}

impl ParamSpec {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The primitives of the U-Net. Every method returns a new value; inputs are borrowed.
///
/// Broadcasting (`add`, `mul`) follows NumPy: shapes are right-aligned and a size-1 dimension
/// stretches. Shapes named below are the ones the U-Net uses; backends may accept more.
pub trait Ops {
    /// A tensor (an array, a libtorch tensor, or an ONNX value name). No `Clone` bound: libtorch
    /// tensors are not `Clone`; see [`Ops::share`].
    type T;

    /// Another handle to the same value (tch: `shallow_clone`, which keeps the autograd graph;
    /// arrays and names: `clone`).
    fn share(&self, x: &Self::T) -> Self::T;

    /// The parameter at `path` with `shape` (created with `init` by training backends, looked up by
    /// the others). The same path always names the same parameter; asking again returns it again.
    fn param(&mut self, path: &str, shape: &[usize], init: Init) -> Result<Self::T>;
    /// A constant tensor (row-major `data`, `data.len()` = product of `shape`).
    fn constant(&mut self, shape: &[usize], data: &[f32]) -> Result<Self::T>;

    /// 2-D cross-correlation (PyTorch `conv2d`): `x` `[N, Cin, H, W]`, `w` `[Cout, Cin, k, k]`,
    /// `b` `[Cout]`, zero padding `pad` on all four sides, the same `stride` on both axes.
    fn conv2d(&mut self, x: &Self::T, w: &Self::T, b: &Self::T, stride: usize, pad: usize) -> Result<Self::T>;
    /// `x·wᵀ + b` with `x` `[N, in]`, `w` `[out, in]`, `b` `[out]`.
    fn linear(&mut self, x: &Self::T, w: &Self::T, b: &Self::T) -> Result<Self::T>;
    /// Group normalization of `x` `[N, C, H, W]` over `groups` groups of `C/groups` channels, with the
    /// biased variance: `(x − mean)/√(var + eps)·gamma[c] + beta[c]`.
    fn group_norm(&mut self, x: &Self::T, groups: usize, eps: f64, gamma: &Self::T, beta: &Self::T) -> Result<Self::T>;
    /// `x·sigmoid(x)`.
    fn silu(&mut self, x: &Self::T) -> Result<Self::T>;
    /// Elementwise sine.
    fn sin(&mut self, x: &Self::T) -> Result<Self::T>;
    /// Elementwise cosine.
    fn cos(&mut self, x: &Self::T) -> Result<Self::T>;
    /// `a + b` (broadcasting).
    fn add(&mut self, a: &Self::T, b: &Self::T) -> Result<Self::T>;
    /// `a · b` elementwise (broadcasting).
    fn mul(&mut self, a: &Self::T, b: &Self::T) -> Result<Self::T>;
    /// `s · x` for a scalar `s`.
    fn scale(&mut self, x: &Self::T, s: f32) -> Result<Self::T>;
    /// Concatenation along `axis` (all other dimensions equal).
    fn concat(&mut self, xs: &[&Self::T], axis: usize) -> Result<Self::T>;
    /// Nearest-neighbour 2× upsampling of `[N, C, H, W]`: `y[.., i, j] = x[.., ⌊i/2⌋, ⌊j/2⌋]`.
    fn upsample_nearest2x(&mut self, x: &Self::T) -> Result<Self::T>;
    /// Row-major reshape. `spec` follows ONNX `Reshape`: `0` copies the input's dimension at that
    /// position, `-1` (at most once) is inferred from the element count.
    fn reshape(&mut self, x: &Self::T, spec: &[i64]) -> Result<Self::T>;
    /// Row-major reshape of `x` to the (run-time) shape of `like` (same element count).
    fn reshape_like(&mut self, x: &Self::T, like: &Self::T) -> Result<Self::T>;
    /// Axis permutation: output axis `i` is input axis `perm[i]`.
    fn transpose(&mut self, x: &Self::T, perm: &[usize]) -> Result<Self::T>;
    /// Batched matrix product of `[..., n, k]` and `[..., k, m]` (equal leading dimensions).
    fn matmul(&mut self, a: &Self::T, b: &Self::T) -> Result<Self::T>;
    /// Softmax along the last axis.
    fn softmax_last(&mut self, x: &Self::T) -> Result<Self::T>;
}

/// A backend that computes nothing and records every parameter the network asks for.
#[derive(Debug, Default)]
pub struct Collect {
    /// The parameters, in the order the forward pass first asks for them.
    pub params: Vec<ParamSpec>,
}

impl Ops for Collect {
    type T = ();

    fn share(&self, _: &()) {}
    fn param(&mut self, path: &str, shape: &[usize], init: Init) -> Result<()> {
        match self.params.iter().find(|p| p.path == path) {
            Some(p) if p.shape != shape => {
                Err(crate::Error::Config(format!("parameter `{path}` asked for with shapes {:?} and {shape:?}", p.shape)))
            }
            Some(_) => Ok(()),
            None => {
                self.params.push(ParamSpec { path: path.into(), shape: shape.to_vec(), init });
                Ok(())
            }
        }
    }
    fn constant(&mut self, _: &[usize], _: &[f32]) -> Result<()> {
        Ok(())
    }
    fn conv2d(&mut self, _: &(), _: &(), _: &(), _: usize, _: usize) -> Result<()> {
        Ok(())
    }
    fn linear(&mut self, _: &(), _: &(), _: &()) -> Result<()> {
        Ok(())
    }
    fn group_norm(&mut self, _: &(), _: usize, _: f64, _: &(), _: &()) -> Result<()> {
        Ok(())
    }
    fn silu(&mut self, _: &()) -> Result<()> {
        Ok(())
    }
    fn sin(&mut self, _: &()) -> Result<()> {
        Ok(())
    }
    fn cos(&mut self, _: &()) -> Result<()> {
        Ok(())
    }
    fn add(&mut self, _: &(), _: &()) -> Result<()> {
        Ok(())
    }
    fn mul(&mut self, _: &(), _: &()) -> Result<()> {
        Ok(())
    }
    fn scale(&mut self, _: &(), _: f32) -> Result<()> {
        Ok(())
    }
    fn concat(&mut self, _: &[&()], _: usize) -> Result<()> {
        Ok(())
    }
    fn upsample_nearest2x(&mut self, _: &()) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, _: &(), _: &[i64]) -> Result<()> {
        Ok(())
    }
    fn reshape_like(&mut self, _: &(), _: &()) -> Result<()> {
        Ok(())
    }
    fn transpose(&mut self, _: &(), _: &[usize]) -> Result<()> {
        Ok(())
    }
    fn matmul(&mut self, _: &(), _: &()) -> Result<()> {
        Ok(())
    }
    fn softmax_last(&mut self, _: &()) -> Result<()> {
        Ok(())
    }
}
