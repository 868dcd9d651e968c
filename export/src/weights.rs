//! Named `f32` tensors (a network's trained weights), a seeded pure-Rust initializer, and the file
//! format: **safetensors** (8-byte little-endian header length, a JSON header
//! `{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}`,
//! then the raw little-endian data). The format is what `tch::nn::VarStore::save` writes for a
//! `.safetensors` path and what Python's `safetensors` reads, so weights move between the tch
//! trainer, this crate's ONNX emitter and Python tools unchanged. The U-Net's configuration travels
//! in the metadata under [`CONFIG_KEY`].

use crate::error::{Error, Result};
use crate::ops::{Init, ParamSpec};
use crate::unet::UNetConfig;
use std::collections::BTreeMap;
use std::path::Path;

/// Metadata key holding the U-Net configuration JSON in a weights file.
pub const CONFIG_KEY: &str = "unet_config";

/// A dense row-major `f32` tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major data, `shape.iter().product()` long.
    pub data: Vec<f32>,
}

/// Named tensors plus string metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights {
    tensors: BTreeMap<String, Tensor>,
    meta: BTreeMap<String, String>,
}

/// SplitMix64: a tiny, well-mixed 64-bit generator (one per parameter, seeded from the run seed and
/// the parameter path, so adding a parameter never changes the others' values). Also the seeded
/// case generator of the mutation tests (`tests/fuzz_package.rs`, `ffi/src/mutation_tests.rs`).
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform on [−1, 1) with 24-bit resolution.
    fn symmetric(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn path_seed(seed: u64, path: &str) -> u64 {
    // FNV-1a over the path, mixed with the seed.
    let h = path.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01B3));
    h ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// How [`Weights::from_specs`] fills parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitMode {
    /// The training initialization each [`Init`] names (zeros where the network starts as identity).
    Training,
    /// Every parameter random and non-trivial (norm scales `1 ± 0.2`, shifts `± 0.2`, zero-initialized
    /// layers at their fan-in scale): for tests, so that every weight influences the output.
    Random,
}

impl Weights {
    /// Empty container.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parameters for `specs`, generated deterministically from `seed`.
    pub fn from_specs(specs: &[ParamSpec], seed: u64, mode: InitMode) -> Self {
        let mut w = Weights::new();
        for p in specs {
            let mut rng = SplitMix(path_seed(seed, &p.path));
            let n = p.numel();
            let fan = |f: usize| 1.0 / (f.max(1) as f32).sqrt();
            let data: Vec<f32> = match (p.init, mode) {
                (Init::FanIn(f), _) | (Init::ZeroOr(f), InitMode::Random) => {
                    let b = fan(f);
                    (0..n).map(|_| rng.symmetric() * b).collect()
                }
                (Init::ZeroOr(_), InitMode::Training) | (Init::Zeros, InitMode::Training) => {
                    vec![0.0; n]
                }
                (Init::Ones, InitMode::Training) => vec![1.0; n],
                (Init::Ones, InitMode::Random) => (0..n).map(|_| 1.0 + 0.2 * rng.symmetric()).collect(),
                (Init::Zeros, InitMode::Random) => (0..n).map(|_| 0.2 * rng.symmetric()).collect(),
            };
            w.tensors.insert(p.path.clone(), Tensor { shape: p.shape.clone(), data });
        }
        w
    }

    /// A U-Net's parameters, initialized for `mode` from `seed`, with the config in the metadata.
    pub fn for_unet(cfg: &UNetConfig, seed: u64, mode: InitMode) -> Result<Self> {
        let mut w = Weights::from_specs(&cfg.params()?, seed, mode);
        w.set_meta(CONFIG_KEY, &cfg.to_json());
        Ok(w)
    }

    /// Insert (or replace) a tensor; `data.len()` must match the shape.
    pub fn insert(&mut self, name: &str, shape: &[usize], data: Vec<f32>) -> Result<()> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::Weights(format!("`{name}`: shape {shape:?} needs {n} values, got {}", data.len())));
        }
        self.tensors.insert(name.to_string(), Tensor { shape: shape.to_vec(), data });
        Ok(())
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// The tensor called `name`, which must have `shape`.
    pub fn fetch(&self, name: &str, shape: &[usize]) -> Result<&Tensor> {
        let t = self.get(name).ok_or_else(|| Error::Weights(format!("missing parameter `{name}` (shape {shape:?})")))?;
        if t.shape != shape {
            return Err(Error::Weights(format!("parameter `{name}` has shape {:?}, the network needs {shape:?}", t.shape)));
        }
        Ok(t)
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// No tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Total number of scalars.
    pub fn numel(&self) -> usize {
        self.tensors.values().map(|t| t.data.len()).sum()
    }

    /// Set a metadata entry.
    pub fn set_meta(&mut self, key: &str, value: &str) {
        self.meta.insert(key.into(), value.into());
    }

    /// A metadata entry.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta.get(key).map(String::as_str)
    }

    /// The U-Net configuration stored under [`CONFIG_KEY`].
    pub fn unet_config(&self) -> Result<UNetConfig> {
        let s = self.meta(CONFIG_KEY).ok_or_else(|| Error::Weights(format!("no `{CONFIG_KEY}` in the metadata")))?;
        UNetConfig::from_json(s)
    }

    /// Check that the tensors are exactly `specs` (names and shapes): a missing, extra or mis-shaped
    /// tensor is an error naming it.
    pub fn check_exact(&self, specs: &[ParamSpec]) -> Result<()> {
        for p in specs {
            self.fetch(&p.path, &p.shape)?;
        }
        if let Some(extra) = self.names().find(|n| !specs.iter().any(|p| p.path == *n)) {
            return Err(Error::Weights(format!("tensor `{extra}` is not a parameter of the network")));
        }
        Ok(())
    }

    /// Serialize as safetensors.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        let mut offset = 0usize;
        for (name, t) in &self.tensors {
            let end = offset + 4 * t.data.len();
            header.insert(name.clone(), serde_json::json!({"dtype": "F32", "shape": t.shape, "data_offsets": [offset, end]}));
            offset = end;
        }
        if !self.meta.is_empty() {
            header.insert("__metadata__".into(), serde_json::json!(self.meta));
        }
        let mut h = serde_json::Value::Object(header).to_string().into_bytes();
        // The data starts 8-byte aligned (the format pads the header with spaces).
        while !h.len().is_multiple_of(8) {
            h.push(b' ');
        }
        let mut out = Vec::with_capacity(8 + h.len() + offset);
        out.extend_from_slice(&(h.len() as u64).to_le_bytes());
        out.extend_from_slice(&h);
        for t in self.tensors.values() {
            for v in &t.data {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Parse safetensors bytes (`F32` tensors only; `path` names the source in errors).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |msg: String| Error::Format { path: path.into(), msg };
        let n = bytes.get(..8).ok_or_else(|| bad("shorter than the 8-byte header length".into()))?;
        let n = u64::from_le_bytes(n.try_into().map_err(|_| bad("header length".into()))?);
        let end = usize::try_from(n).ok().and_then(|n| n.checked_add(8)).filter(|&e| e <= bytes.len());
        let end = end.ok_or_else(|| bad(format!("header length {n} exceeds the file")))?;
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes[8..end]).map_err(|e| bad(format!("header JSON: {e}")))?;
        let data = &bytes[end..];
        let mut w = Weights::new();
        for (name, v) in header {
            if name == "__metadata__" {
                let m: BTreeMap<String, String> = serde_json::from_value(v).map_err(|e| bad(format!("__metadata__: {e}")))?;
                w.meta = m;
                continue;
            }
            let dtype = v.get("dtype").and_then(|d| d.as_str()).unwrap_or("?");
            if dtype != "F32" {
                return Err(bad(format!("tensor `{name}` has dtype {dtype}; only F32 is supported")));
            }
            let shape: Vec<usize> = v
                .get("shape")
                .cloned()
                .and_then(|s| serde_json::from_value(s).ok())
                .ok_or_else(|| bad(format!("tensor `{name}`: bad shape")))?;
            let off: [usize; 2] = v
                .get("data_offsets")
                .cloned()
                .and_then(|s| serde_json::from_value(s).ok())
                .ok_or_else(|| bad(format!("tensor `{name}`: bad data_offsets")))?;
            let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            let raw = data.get(off[0]..off[1]).filter(|r| numel.and_then(|n| n.checked_mul(4)) == Some(r.len()));
            let raw = raw.ok_or_else(|| bad(format!("tensor `{name}`: data_offsets {off:?} do not fit shape {shape:?}")))?;
            let vals = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            w.tensors.insert(name, Tensor { shape, data: vals });
        }
        Ok(w)
    }

    /// Write a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_bytes()).map_err(|e| Error::io(path, e))
    }

    /// Read a safetensors file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Weights::from_bytes(&bytes, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_round_trip_and_layout() {
        let mut w = Weights::new();
        w.insert("b.weight", &[2, 3], (0..6).map(|i| i as f32).collect()).unwrap();
        w.insert("a", &[], vec![-1.5]).unwrap();
        w.set_meta("k", "v");
        let bytes = w.to_bytes();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        // Sorted names: `a` first at offset 0, then `b.weight`.
        let h: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        assert_eq!(h["a"]["data_offsets"], serde_json::json!([0, 4]));
        assert_eq!(h["b.weight"]["data_offsets"], serde_json::json!([4, 28]));
        assert_eq!(&bytes[8 + n..8 + n + 4], &(-1.5f32).to_le_bytes());
        assert_eq!(Weights::from_bytes(&bytes, Path::new("x")).unwrap(), w);
    }

    #[test]
    fn malformed_files_are_typed_errors() {
        let p = Path::new("w.safetensors");
        assert!(matches!(Weights::from_bytes(&[1, 2, 3], p), Err(Error::Format { .. })));
        let mut b = 1000u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"{}");
        assert!(Weights::from_bytes(&b, p).is_err());
        let mut w = Weights::new();
        w.insert("a", &[2], vec![1.0, 2.0]).unwrap();
        let mut bytes = w.to_bytes();
        bytes.truncate(bytes.len() - 4);
        assert!(Weights::from_bytes(&bytes, p).unwrap_err().to_string().contains("`a`"));
        let h = br#"{"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}"#;
        let mut b = (h.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(h);
        b.extend_from_slice(&[0, 0]);
        assert!(Weights::from_bytes(&b, p).unwrap_err().to_string().contains("F16"));
        assert!(w.insert("c", &[3], vec![0.0]).is_err());
    }

    /// Seeded, deterministic, per-path independent; training init honours zeros/ones and fan-in bounds.
    #[test]
    fn seeded_init() {
        let cfg = UNetConfig::tiny(3, 3, 3);
        let a = Weights::for_unet(&cfg, 7, InitMode::Training).unwrap();
        assert_eq!(a, Weights::for_unet(&cfg, 7, InitMode::Training).unwrap());
        assert_ne!(a, Weights::for_unet(&cfg, 8, InitMode::Training).unwrap());
        assert_eq!(a.unet_config().unwrap(), cfg);
        a.check_exact(&cfg.params().unwrap()).unwrap();
        assert!(a.get("out.conv.weight").unwrap().data.iter().all(|&v| v == 0.0));
        assert!(a.get("out.norm.weight").unwrap().data.iter().all(|&v| v == 1.0));
        let w = &a.get("conv_in.weight").unwrap().data;
        let bound = 1.0 / (6.0f32 * 9.0).sqrt();
        assert!(w.iter().all(|v| v.abs() <= bound));
        let mean = w.iter().sum::<f32>() / w.len() as f32;
        let var = w.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / w.len() as f32;
        // U(−b, b) has variance b²/3.
        assert!((var / (bound * bound / 3.0) - 1.0).abs() < 0.15, "var ratio {}", var / (bound * bound / 3.0));
        let r = Weights::for_unet(&cfg, 7, InitMode::Random).unwrap();
        assert!(r.get("out.conv.weight").unwrap().data.iter().any(|&v| v != 0.0));
        assert_eq!(r.get("conv_in.weight"), a.get("conv_in.weight"));
    }

    #[test]
    fn check_exact_names_the_problem() {
        let cfg = UNetConfig::tiny(3, 0, 3);
        let specs = cfg.params().unwrap();
        let mut w = Weights::for_unet(&cfg, 1, InitMode::Training).unwrap();
        w.insert("extra", &[1], vec![0.0]).unwrap();
        assert!(w.check_exact(&specs).unwrap_err().to_string().contains("`extra`"));
        let mut w = Weights::for_unet(&cfg, 1, InitMode::Training).unwrap();
        w.insert("out.conv.bias", &[4], vec![0.0; 4]).unwrap();
        assert!(w.check_exact(&specs).unwrap_err().to_string().contains("out.conv.bias"));
    }
}
