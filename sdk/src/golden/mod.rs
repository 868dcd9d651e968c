//! Replaying the golden trajectories recorded from the official implementations
//! (`tests/golden/*.json`, vendored from the project's shared golden set; format `bridge-golden/1`).
//!
//! For each file we build *our* family and sampler from the file's parameters, run it with the
//! file's network stand-in and its recorded noise (replayed by draw index), and compare every
//! trajectory state and the final output with the file's relative measure
//! `max|x − ref| / max(1, max|ref|)` against its `tolerance`.

mod dbim;
mod dbmsolver;
mod ddbm;
mod gou;
mod i2sb;
mod i3sb;
mod nadb;
mod rdbm;
mod unidbpp;

use crate::rng::RecordedNoise;
use crate::{Denoiser, Error, Result, Tensor, TensorView};
use serde_json::Value;
use std::path::Path;

/// A parsed golden file.
#[derive(Debug)]
pub struct GoldenFile {
    /// File name (for reports).
    pub name: String,
    /// The whole document.
    pub json: Value,
}

impl GoldenFile {
    /// Read and parse a golden file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.display().to_string(), source: e })?;
        let json: Value = serde_json::from_str(&text).map_err(|e| Error::Golden(format!("{}: {e}", path.display())))?;
        if json.get("format").and_then(Value::as_str) != Some("bridge-golden/1") {
            return Err(Error::Golden(format!("{}: not a bridge-golden/1 file", path.display())));
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(GoldenFile { name, json })
    }

    /// A field by path, e.g. `&["params", "eta"]`.
    pub fn get(&self, path: &[&str]) -> Result<&Value> {
        let mut v = &self.json;
        for k in path {
            v = v.get(*k).ok_or_else(|| Error::Golden(format!("{}: missing field {}", self.name, path.join("."))))?;
        }
        Ok(v)
    }

    /// A string field.
    pub fn str(&self, path: &[&str]) -> Result<&str> {
        self.get(path)?.as_str().ok_or_else(|| self.bad(path, "a string"))
    }

    /// A numeric field.
    pub fn f64(&self, path: &[&str]) -> Result<f64> {
        self.get(path)?.as_f64().ok_or_else(|| self.bad(path, "a number"))
    }

    /// A boolean field.
    pub fn bool(&self, path: &[&str]) -> Result<bool> {
        self.get(path)?.as_bool().ok_or_else(|| self.bad(path, "a boolean"))
    }

    /// A list of numbers.
    pub fn f64s(&self, path: &[&str]) -> Result<Vec<f64>> {
        let v = self.get(path)?;
        // Some tables are stored as JSON strings of a list.
        let owned;
        let v = match v {
            Value::String(s) => {
                owned = serde_json::from_str::<Value>(s).map_err(|_| self.bad(path, "a list of numbers"))?;
                &owned
            }
            v => v,
        };
        v.as_array()
            .ok_or_else(|| self.bad(path, "a list"))?
            .iter()
            .map(|x| x.as_f64().ok_or_else(|| self.bad(path, "a list of numbers")))
            .collect()
    }

    /// The family's parameters object.
    pub fn params(&self) -> Result<&serde_json::Map<String, Value>> {
        self.get(&["params"])?.as_object().ok_or_else(|| self.bad(&["params"], "an object"))
    }

    /// One array `{"shape": [b, c, h, w], "data": [...]}` as a tensor.
    pub fn tensor(&self, path: &[&str]) -> Result<Tensor> {
        to_tensor(self.get(path)?).map_err(|e| Error::Golden(format!("{}: {}: {e}", self.name, path.join("."))))
    }

    /// A list of arrays as tensors.
    pub fn tensors(&self, path: &[&str]) -> Result<Vec<Tensor>> {
        let v = self.get(path)?;
        let list = v.as_array().ok_or_else(|| self.bad(path, "a list of arrays"))?;
        list.iter()
            .enumerate()
            .map(|(i, a)| to_tensor(a).map_err(|e| Error::Golden(format!("{}: {}[{i}]: {e}", self.name, path.join(".")))))
            .collect()
    }

    /// The recorded noise, replayable by draw index.
    pub fn noise(&self) -> Result<RecordedNoise> {
        Ok(RecordedNoise::new(self.tensors(&["noise"])?))
    }

    /// The file's tolerance.
    pub fn tolerance(&self) -> Result<f64> {
        self.f64(&["tolerance"])
    }

    fn bad(&self, path: &[&str], what: &str) -> Error {
        Error::Golden(format!("{}: field {} is not {what}", self.name, path.join(".")))
    }
}

fn to_tensor(v: &Value) -> std::result::Result<Tensor, String> {
    let shape: Vec<usize> = v
        .get("shape")
        .and_then(Value::as_array)
        .ok_or("no shape")?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize).ok_or("bad shape"))
        .collect::<std::result::Result<_, _>>()?;
    let data: Vec<f32> = v
        .get("data")
        .and_then(Value::as_array)
        .ok_or("no data")?
        .iter()
        .map(|x| x.as_f64().map(|x| x as f32).ok_or("non-numeric data"))
        .collect::<std::result::Result<_, _>>()?;
    let dim = match shape[..] {
        [b, c, h, w] => (b, c, h, w),
        _ => return Err(format!("expected a 4-d array, got shape {shape:?}")),
    };
    Tensor::from_shape_vec(dim, data).map_err(|e| e.to_string())
}

/// The `affine_sin` stand-in: `out = a·x + b·cond + c·sin(w·x) + d·t_net`, elementwise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineSin {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub w: f64,
    pub d: f64,
}

impl AffineSin {
    /// Read the stand-in's coefficients from a golden file.
    pub fn from_golden(g: &GoldenFile) -> Result<Self> {
        let kind = g.str(&["stand_in", "kind"])?;
        if kind != "affine_sin" {
            return Err(Error::Golden(format!("{}: stand-in kind `{kind}` is not affine_sin", g.name)));
        }
        let f = |k: &str| g.f64(&["stand_in", k]);
        Ok(AffineSin { a: f("a")?, b: f("b")?, c: f("c")?, w: f("w")?, d: f("d")? })
    }
}

impl Denoiser for AffineSin {
    fn eval(&mut self, x: TensorView<'_>, cond: TensorView<'_>, t_net: f64) -> Result<Tensor> {
        if cond.shape() != x.shape() {
            return Err(Error::shape("stand-in cond", x.shape(), cond.shape()));
        }
        let mut out = Tensor::zeros(x.raw_dim());
        ndarray::Zip::from(&mut out).and(&x).and(&cond).for_each(|o, &x, &c| {
            let (x, c) = (x as f64, c as f64);
            *o = (self.a * x + self.b * c + self.c * (self.w * x).sin() + self.d * t_net) as f32;
        });
        Ok(out)
    }
}

/// What one family's replay produced.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Every recorded state, in the order the file's `trajectory` lists them.
    pub trajectory: Vec<Tensor>,
    /// The sampler's output (compared with the file's `final`).
    pub final_: Tensor,
}

/// The outcome of replaying one file.
#[derive(Debug)]
pub struct Outcome {
    /// File name.
    pub file: String,
    /// Whether every state is within tolerance.
    pub passed: bool,
    /// The largest relative error over the trajectory and the final output.
    pub max_rel_err: f64,
    /// The file's tolerance.
    pub tolerance: f64,
    /// Why it failed, where that is not just the error size.
    pub detail: Option<String>,
}

/// `max|x − ref| / max(1, max|ref|)` (the golden README's measure).
pub fn rel_err(x: &Tensor, reference: &Tensor) -> f64 {
    if x.shape() != reference.shape() {
        return f64::INFINITY;
    }
    let scale = reference.iter().fold(1.0f64, |m, &v| m.max((v as f64).abs()));
    let diff = x.iter().zip(reference.iter()).fold(0.0f64, |m, (&a, &b)| {
        let d = (a as f64 - b as f64).abs();
        if d.is_nan() { f64::INFINITY } else { m.max(d) }
    });
    diff / scale
}

/// Replay one golden file with our implementation.
pub fn replay_file(path: &Path) -> Result<Outcome> {
    let g = GoldenFile::load(path)?;
    let tolerance = g.tolerance()?;
    let family = g.str(&["family"])?;
    let replayed = match family {
        "i2sb" => i2sb::replay(&g)?,
        "ddbm" => ddbm::replay(&g)?,
        "dbim" => dbim::replay(&g)?,
        "goub" | "unidb" => gou::replay(&g)?,
        "unidb++" => unidbpp::replay(&g)?,
        "rdbm" => rdbm::replay(&g)?,
        "nadb" => nadb::replay(&g)?,
        "dbmsolver" => dbmsolver::replay(&g)?,
        "i3sb" => i3sb::replay(&g)?,
        other => return Err(Error::Golden(format!("{}: unknown family `{other}`", g.name))),
    };
    let reference = g.tensors(&["trajectory"])?;
    let final_ref = g.tensor(&["final"])?;
    let mut max_err = rel_err(&replayed.final_, &final_ref);
    let mut detail = None;
    if replayed.trajectory.len() != reference.len() {
        detail = Some(format!("trajectory has {} states, the reference {}", replayed.trajectory.len(), reference.len()));
        max_err = f64::INFINITY;
    } else {
        for (i, (ours, theirs)) in replayed.trajectory.iter().zip(&reference).enumerate() {
            let e = rel_err(ours, theirs);
            if e > max_err {
                max_err = e;
                if e > tolerance && detail.is_none() {
                    detail = Some(format!("first state over tolerance: trajectory[{i}] (err {e:.3e})"));
                }
            }
        }
    }
    Ok(Outcome { file: g.name.clone(), passed: max_err <= tolerance, max_rel_err: max_err, tolerance, detail })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rel_err_uses_the_scaled_measure() {
        let a = Tensor::from_elem((1, 1, 1, 2), 4.0);
        let mut b = a.clone();
        b[[0, 0, 0, 1]] = 4.4;
        assert!((rel_err(&b, &a) - 0.1).abs() < 1e-6);
        let small = Tensor::from_elem((1, 1, 1, 1), 0.1);
        let small2 = Tensor::from_elem((1, 1, 1, 1), 0.3);
        assert!((rel_err(&small2, &small) - 0.2).abs() < 1e-6);
        assert!(rel_err(&small, &a).is_infinite());
    }
}
