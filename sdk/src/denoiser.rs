//! The network as the bridge math sees it.

use crate::family::NetCall;
use crate::{Error, Result, Tensor, TensorView};

/// A bridge network: `raw = f(x_in, cond, t_net)`.
///
/// * `x_in` — the state as the family feeds it (e.g. `c_in·x_t` for DDBM/DBIM preconditioning),
///   `[B, C, H, W]`;
/// * `cond` — the conditioning image (`x_T`, `μ`, the degraded input), `[B, C', H, W]`;
/// * `t_net` — the scalar time value the reference implementation feeds its network.
///
/// The output must have the shape of `x_in`. ONNX sessions, test oracles and the golden
/// stand-ins all implement this trait.
pub trait Denoiser {
    /// Evaluate the network once.
    fn eval(&mut self, x_in: TensorView<'_>, cond: TensorView<'_>, t_net: f64) -> Result<Tensor>;

    /// Evaluate the network for a sampler call. [`crate::sampler::Model`] calls this; the
    /// default forwards to [`Denoiser::eval`] with `call.t_net`. Oracles that need the
    /// family's time or parameterization (see [`PointMassOracle`]) override it.
    fn eval_call(&mut self, x_in: TensorView<'_>, cond: TensorView<'_>, call: &NetCall) -> Result<Tensor> {
        self.eval(x_in, cond, call.t_net)
    }
}

/// A closure as a [`Denoiser`] (test oracles, stand-ins).
pub struct FnDenoiser<F>(pub F);

impl<F> Denoiser for FnDenoiser<F>
where
    F: FnMut(TensorView<'_>, TensorView<'_>, f64) -> Result<Tensor>,
{
    fn eval(&mut self, x_in: TensorView<'_>, cond: TensorView<'_>, t_net: f64) -> Result<Tensor> {
        (self.0)(x_in, cond, t_net)
    }
}

impl<D: Denoiser + ?Sized> Denoiser for &mut D {
    fn eval(&mut self, x_in: TensorView<'_>, cond: TensorView<'_>, t_net: f64) -> Result<Tensor> {
        (**self).eval(x_in, cond, t_net)
    }
    fn eval_call(&mut self, x_in: TensorView<'_>, cond: TensorView<'_>, call: &NetCall) -> Result<Tensor> {
        (**self).eval_call(x_in, cond, call)
    }
}

impl<D: Denoiser + ?Sized> Denoiser for Box<D> {
    fn eval(&mut self, x_in: TensorView<'_>, cond: TensorView<'_>, t_net: f64) -> Result<Tensor> {
        (**self).eval(x_in, cond, t_net)
    }
    fn eval_call(&mut self, x_in: TensorView<'_>, cond: TensorView<'_>, call: &NetCall) -> Result<Tensor> {
        (**self).eval_call(x_in, cond, call)
    }
}

/// The exact denoiser for point-mass data: whatever the state, its clean estimate is `x0`.
///
/// It inverts the family's parameterization at every call (`raw` such that
/// `x0̂ = x0.x·x_t + x0.xt·x_T + x0.out·raw = x0`), so a correct deterministic sampler must land
/// exactly on `x0` and a stochastic one must end there at its last step. It assumes the
/// network's conditioning input is the endpoint `x_T` (as in every family here). Where `x0̂`
/// is undefined (`a_t = 0`, e.g. GOUB at `t = T`) it returns zeros, which a noise-predicting
/// family's sampler discards there.
#[derive(Clone, Debug)]
pub struct PointMassOracle {
    x0: Tensor,
}

impl PointMassOracle {
    /// The oracle for data concentrated at `x0` (`[B, C, H, W]`).
    pub fn new(x0: Tensor) -> Self {
        PointMassOracle { x0 }
    }
}

impl Denoiser for PointMassOracle {
    fn eval(&mut self, _x_in: TensorView<'_>, _cond: TensorView<'_>, _t_net: f64) -> Result<Tensor> {
        Err(Error::Denoiser("PointMassOracle needs the family's call (use it through sampler::Model)".into()))
    }

    fn eval_call(&mut self, x_in: TensorView<'_>, cond: TensorView<'_>, call: &NetCall) -> Result<Tensor> {
        if x_in.shape() != self.x0.shape() || cond.shape() != self.x0.shape() {
            return Err(Error::shape("oracle input", self.x0.shape(), x_in.shape()));
        }
        let Some(lin) = call.x0 else { return crate::alloc::try_zeros(self.x0.raw_dim(), "the oracle output") };
        if lin.out == 0.0 {
            return Err(Error::Denoiser("oracle: x0̂ does not depend on the network output here".into()));
        }
        let mut raw: Tensor = crate::alloc::try_zeros(self.x0.raw_dim(), "the oracle output")?;
        ndarray::Zip::from(&mut raw).and(&self.x0).and(&x_in).and(&cond).for_each(|r, &x0, &xin, &xt| {
            let x_t = xin as f64 / call.c_in;
            *r = ((x0 as f64 - lin.x * x_t - lin.xt * xt as f64) / lin.out) as f32;
        });
        Ok(raw)
    }
}
