//! Replay of the GOUB and UniDB golden files (reverse SDE and Mean-ODE, `T = 100`), and the
//! pieces the other OU-type replays (UniDB++, RDBM, NADB) share: running a sampler while
//! recording its states, reading a family's parameters, and the `x0-consistent` stand-in.

use super::{AffineSin, GoldenFile, Replayed};
use crate::family::gou::{Gou, GouParams, ThetaSchedule};
use crate::family::{Family, NetCall};
use crate::sampler::{Hooks, Model, Sampler, sample};
use crate::{Denoiser, Error, Result, Tensor, TensorView};
use serde_json::Value;

pub(super) fn replay(g: &GoldenFile) -> Result<Replayed> {
    let mut params = gou_params(g)?;
    if g.str(&["family"])? == "goub" {
        params.gamma_inv = 0.0;
    }
    let fam = Gou::new(params)?;
    let sde = match g.str(&["variant"])? {
        "sde" => true,
        "mean_ode" => false,
        v => return Err(Error::Golden(format!("{}: unknown GOUB/UniDB variant `{v}`", g.name))),
    };
    let mut net = AffineSin::from_golden(g)?;
    let (x_end, cond) = (g.tensor(&["inputs", "x_T"])?, g.tensor(&["inputs", "cond"])?);
    run(g, &fam, &mut net, &x_end, &cond, &Sampler::Euler { sde }, nfe(g)?)
}

/// GOUB/UniDB/UniDB++ parameters from a file's `params` (`gamma_inv`, or UniDB++'s `gamma`).
pub(super) fn gou_params(g: &GoldenFile) -> Result<GouParams> {
    let p = g.params()?;
    let num = |k: &str| p.get(k).and_then(Value::as_f64);
    let need = |k: &str| num(k).ok_or_else(|| Error::Golden(format!("{}: params.{k} missing", g.name)));
    let schedule = match p.get("schedule").and_then(Value::as_str).unwrap_or("cosine") {
        "cosine" => ThetaSchedule::Cosine,
        "linear" => ThetaSchedule::Linear,
        "constant" => ThetaSchedule::Constant,
        s => return Err(Error::Golden(format!("{}: unknown schedule `{s}`", g.name))),
    };
    let gamma_inv = match (num("gamma_inv"), num("gamma")) {
        (Some(gi), _) => gi,
        (None, Some(gamma)) if gamma > 0.0 => 1.0 / gamma,
        _ => 0.0,
    };
    Ok(GouParams { lambda_square: need("lambda_square")?, t_max: need("T")? as usize, eps: need("eps")?, schedule, gamma_inv })
}

/// The file's `nfe`.
pub(super) fn nfe(g: &GoldenFile) -> Result<usize> {
    let n = g.f64(&["nfe"])?;
    if !(n >= 1.0 && n.fract() == 0.0) {
        return Err(Error::Golden(format!("{}: nfe {n} is not a positive integer", g.name)));
    }
    Ok(n as usize)
}

/// Run `sampler` with the file's recorded noise, collecting every state the sampler reports.
pub(super) fn run(
    g: &GoldenFile,
    family: &dyn Family,
    net: &mut dyn Denoiser,
    x_end: &Tensor,
    cond: &Tensor,
    sampler: &Sampler,
    nfe: usize,
) -> Result<Replayed> {
    let mut noise = g.noise()?;
    let mut trajectory = Vec::new();
    let mut record = |x: &Tensor| trajectory.push(x.clone());
    let mut model = Model::new(net, family, x_end.view(), cond.view())?.with_hooks(Hooks { on_call: None, on_state: Some(&mut record) });
    let final_ = sample(&mut model, sampler, nfe, &mut noise)?;
    Ok(Replayed { trajectory, final_ })
}

/// The first `n` numeric literals after the first `=` of a stand-in formula such as
/// `x0s(x, c) = 0.6*x + 0.3*c + 0.05*sin(3*x)` (digits inside identifiers like `x1` are skipped).
pub(super) fn formula_numbers(formula: &str, n: usize) -> Result<Vec<f64>> {
    let bad = || Error::Golden(format!("stand-in formula `{formula}`: expected {n} coefficients"));
    let rhs = formula.split_once('=').ok_or_else(bad)?.1;
    let mut out = Vec::new();
    let mut prev_ident = false;
    let chars: Vec<char> = rhs.chars().collect();
    let mut i = 0;
    while i < chars.len() && out.len() < n {
        let ch = chars[i];
        if (ch.is_ascii_digit() || ch == '.') && !prev_ident {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.' || chars[i] == 'e') {
                i += 1;
            }
            let lit: String = chars[start..i].iter().collect();
            out.push(lit.parse::<f64>().map_err(|_| bad())?);
            prev_ident = false;
            continue;
        }
        prev_ident = ch.is_alphanumeric() || ch == '_';
        i += 1;
    }
    if out.len() < n {
        return Err(bad());
    }
    Ok(out)
}

/// The `x0-consistent` stand-in: `x0s = a·x + b·cond + c·sin(w·x)`, and the raw output that the
/// family's own parameterization maps back to `x0s` (`x0.x·x + x0.xt·x_T + x0.out·raw = x0s`);
/// 0 where the family defines no `x0̂` (e.g. `t = T` for noise networks). This is each file's
/// `stand_in.formula` written through [`NetCall`] instead of per family.
pub(super) struct X0Consistent {
    a: f64,
    b: f64,
    c: f64,
    w: f64,
    x_end: Tensor,
}

impl X0Consistent {
    /// From the file's `stand_in.x0s` formula; `x_end` is the bridge endpoint `x_T`.
    pub(super) fn from_golden(g: &GoldenFile, x_end: Tensor) -> Result<Self> {
        let kind = g.str(&["stand_in", "kind"])?;
        if !kind.starts_with("x0-consistent") {
            return Err(Error::Golden(format!("{}: stand-in kind `{kind}` is not x0-consistent", g.name)));
        }
        let k = formula_numbers(g.str(&["stand_in", "x0s"])?, 4)?;
        Ok(X0Consistent { a: k[0], b: k[1], c: k[2], w: k[3], x_end })
    }
}

impl Denoiser for X0Consistent {
    fn eval(&mut self, _x: TensorView<'_>, _c: TensorView<'_>, _t: f64) -> Result<Tensor> {
        Err(Error::Denoiser("the x0-consistent stand-in needs the family's call".into()))
    }

    fn eval_call(&mut self, x_in: TensorView<'_>, cond: TensorView<'_>, call: &NetCall) -> Result<Tensor> {
        if x_in.shape() != self.x_end.shape() || cond.shape() != x_in.shape() {
            return Err(Error::shape("stand-in input", self.x_end.shape(), x_in.shape()));
        }
        let Some(lin) = call.x0 else { return Ok(Tensor::zeros(x_in.raw_dim())) };
        if lin.out == 0.0 {
            return Err(Error::Denoiser("stand-in: x0̂ does not depend on the output here".into()));
        }
        let mut raw = Tensor::zeros(x_in.raw_dim());
        ndarray::Zip::from(&mut raw).and(&x_in).and(&cond).and(&self.x_end).for_each(|r, &xi, &c, &xe| {
            let x = xi as f64 / call.c_in;
            let x0s = self.a * x + self.b * c as f64 + self.c * (self.w * x).sin();
            *r = ((x0s - lin.x * x - lin.xt * xe as f64) / lin.out) as f32;
        });
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_numbers_skip_identifiers() {
        assert_eq!(
            formula_numbers("x0s(x, c) = 0.6*x + 0.3*c + 0.05*sin(3*x)   (elementwise, float32)", 4).unwrap(),
            vec![0.6, 0.3, 0.05, 3.0]
        );
        assert_eq!(formula_numbers("x0s(x, x1) = 0.6*x + 0.3*x1 + 0.05*sin(3*x) with x1 the raw", 4).unwrap(), vec![0.6, 0.3, 0.05, 3.0]);
        assert_eq!(formula_numbers("M(x1) = 0.8*x1 + 0.1*sin(2*x1), called once", 3).unwrap(), vec![0.8, 0.1, 2.0]);
        assert!(formula_numbers("no equals sign 1 2", 1).is_err());
        assert!(formula_numbers("y = 1*x", 2).is_err());
    }
}
