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

/// A network averaged over the three cyclic shifts of the colour channels,
/// `f̄(x, c) = ⅓ Σₖ S⁻ᵏ f(Sᵏx, Sᵏc)` with `(Sᵏx)_ch = x_(ch+k mod 3)`.
///
/// Why: a trained network is never exactly symmetric in its colour channels, and what is left
/// shows as a tint (the demo models shift grey photos by about a level of 255 towards red,
/// although their training data are channel-symmetric). The average is equivariant by
/// construction (`f̄(Sx, Sc) = S f̄(x, c)`): on a grey input every output channel is the same
/// mean of the network's three, so grey stays grey. It costs three network calls per call.
/// Inputs that are not 3-channel pass through unchanged; the conditioning is shifted with the
/// state when it has 3 channels.
pub struct ChannelCycle<D>(pub D);

/// `out[:, ch] = x[:, (ch + k) mod 3]` for a 3-channel `[B, 3, H, W]` tensor.
fn shift_channels(x: TensorView<'_>, k: usize) -> Result<Tensor> {
    let mut out = crate::alloc::try_zeros(x.raw_dim(), "a channel-shifted copy")?;
    for ch in 0..3 {
        out.index_axis_mut(ndarray::Axis(1), ch).assign(&x.index_axis(ndarray::Axis(1), (ch + k) % 3));
    }
    Ok(out)
}

impl<D: Denoiser> ChannelCycle<D> {
    fn average(
        &mut self,
        x_in: TensorView<'_>,
        cond: TensorView<'_>,
        mut call: impl FnMut(&mut D, TensorView<'_>, TensorView<'_>) -> Result<Tensor>,
    ) -> Result<Tensor> {
        if x_in.shape()[1] != 3 {
            return call(&mut self.0, x_in, cond);
        }
        let shift_cond = cond.ndim() == 4 && cond.shape()[1] == 3;
        let mut sum: Option<Tensor> = None;
        for k in 0..3 {
            let xs = shift_channels(x_in, k)?;
            let cs = if shift_cond { Some(shift_channels(cond, k)?) } else { None };
            let y = call(&mut self.0, xs.view(), cs.as_ref().map_or(cond, |c| c.view()))?;
            if y.shape() != x_in.shape() {
                return Err(Error::shape("network output", x_in.shape(), y.shape()));
            }
            // Undo the shift: channel ch of the output came from input channel ch + k.
            let back = shift_channels(y.view(), 3 - k)?;
            match sum.as_mut() {
                None => sum = Some(back),
                Some(s) => *s += &back,
            }
        }
        let mut out = sum.expect("three terms");
        out.mapv_inplace(|v| v / 3.0);
        Ok(out)
    }
}

impl<D: Denoiser> Denoiser for ChannelCycle<D> {
    fn eval(&mut self, x_in: TensorView<'_>, cond: TensorView<'_>, t_net: f64) -> Result<Tensor> {
        self.average(x_in, cond, |d, x, c| d.eval(x, c, t_net))
    }
    fn eval_call(&mut self, x_in: TensorView<'_>, cond: TensorView<'_>, call: &NetCall) -> Result<Tensor> {
        self.average(x_in, cond, |d, x, c| d.eval_call(x, c, call))
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array4, Axis};

    fn image(c: usize, grey: bool) -> Tensor {
        Array4::from_shape_fn((2, c, 5, 7), |(b, ch, y, x)| {
            let ch = if grey { 0 } else { ch };
            ((b * 3 + ch * 5 + y * 7 + x * 11) % 17) as f32 / 17.0 - 0.4
        })
    }

    /// A channel-asymmetric network: channel 0 gets a bias and a share of the others.
    fn skewed() -> impl Denoiser {
        FnDenoiser(|x: TensorView<'_>, c: TensorView<'_>, t: f64| {
            let mut y = &x * 0.5 + &c * 0.25;
            if x.shape()[1] == 3 {
                let mix = &x.index_axis(Axis(1), 1) * 0.2 + &x.index_axis(Axis(1), 2) * 0.1 + 0.05 + t as f32;
                let mut r = y.index_axis_mut(Axis(1), 0);
                r += &mix;
            }
            Ok(y)
        })
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn channel_cycle_is_equivariant_and_keeps_grey_grey() {
        let mut plain = skewed();
        let mut cyc = ChannelCycle(skewed());
        // Grey in: the plain network tints, the cycle does not.
        let g = image(3, true);
        let tinted = plain.eval(g.view(), g.view(), 0.1).unwrap();
        assert!(
            max_diff(
                &tinted.index_axis(Axis(1), 0).to_owned().insert_axis(Axis(1)),
                &tinted.index_axis(Axis(1), 1).to_owned().insert_axis(Axis(1))
            ) > 0.01
        );
        let out = cyc.eval(g.view(), g.view(), 0.1).unwrap();
        for ch in 1..3 {
            let d = (&out.index_axis(Axis(1), 0) - &out.index_axis(Axis(1), ch)).mapv(f32::abs).fold(0.0f32, |m, &v| m.max(v));
            assert!(d < 1e-6, "channel {ch}: {d}");
        }
        // Each grey output channel is the mean of the plain network's three.
        let mean = tinted.mean_axis(Axis(1)).unwrap();
        let d = (&out.index_axis(Axis(1), 0) - &mean).mapv(f32::abs).fold(0.0f32, |m, &v| m.max(v));
        assert!(d < 1e-6, "{d}");
        // Equivariance on a colour input: shifting the input shifts the output.
        let x = image(3, false);
        let c = image(3, false).mapv(|v| v * 0.7);
        let a = shift_channels(cyc.eval(x.view(), c.view(), 0.2).unwrap().view(), 1).unwrap();
        let b = cyc.eval(shift_channels(x.view(), 1).unwrap().view(), shift_channels(c.view(), 1).unwrap().view(), 0.2).unwrap();
        assert!(max_diff(&a, &b) < 1e-6, "{}", max_diff(&a, &b));
    }

    #[test]
    fn channel_cycle_leaves_symmetric_and_other_networks_alone() {
        let sym = || FnDenoiser(|x: TensorView<'_>, c: TensorView<'_>, _t: f64| Ok(&x * 0.5 + &c * 0.3));
        let x = image(3, false);
        let want = sym().eval(x.view(), x.view(), 0.0).unwrap();
        let got = ChannelCycle(sym()).eval(x.view(), x.view(), 0.0).unwrap();
        assert!(max_diff(&got, &want) < 1e-6);
        // One channel: the network's own output, untouched.
        let one = image(1, false);
        let mut inner = skewed();
        let mut cyc = ChannelCycle(skewed());
        assert_eq!(cyc.eval(one.view(), one.view(), 0.0).unwrap(), inner.eval(one.view(), one.view(), 0.0).unwrap());
        // A network that changes the shape is an error, not a panic.
        let mut bad =
            ChannelCycle(FnDenoiser(|x: TensorView<'_>, _c: TensorView<'_>, _t: f64| Ok(x.slice(ndarray::s![.., .., ..2, ..]).to_owned())));
        assert!(matches!(bad.eval(x.view(), x.view(), 0.0), Err(Error::ShapeMismatch { .. })));
    }
}
