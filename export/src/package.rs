//! Model packages from trained weights: the `bridge.*` metadata of a family and task (through the
//! SDK's own [`PackageMeta`], so the runtime reads exactly what is written), the ONNX files (the
//! U-Net, and NADB's mean network next to it), and the way back (weights and metadata from a
//! package, e.g. an IBMD teacher). No libtorch here.

use crate::data::{PairConfig, Range};
use crate::degrade::Degradation;
use crate::error::{Error, Result};
use crate::onnx::read_model;
use crate::onnx_ops::{io, unet_graph};
use crate::unet::UNetConfig;
use crate::weights::{CONFIG_KEY, Weights};
use bridge::family::Family;
use bridge::family::registry;
use bridge::runtime::package::{IoNames, MeanNetwork, PackageMeta, TileHint, Upsample};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A restoration task: the degradation of the training pairs and how the package takes its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// 4× super-resolution (MATLAB bicubic down-sampling; the package up-samples its input with the
    /// a = −0.5 bicubic, which is aligned with it: see `data::tests::sr_round_trip_is_aligned`).
    Sr4,
    /// Additive Gaussian noise σ = 25/255.
    Denoise,
    /// Gaussian blur σ = 3.
    Deblur,
    /// JPEG quality 10.
    Jpeg,
}

impl Task {
    /// Parse `sr4`, `denoise`, `deblur`, `jpeg`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "sr4" | "sr" => Task::Sr4,
            "denoise" | "noise" => Task::Denoise,
            "deblur" | "blur" => Task::Deblur,
            "jpeg" | "jpeg10" => Task::Jpeg,
            o => return Err(Error::Config(format!("unknown task `{o}` (sr4, denoise, deblur, jpeg)"))),
        })
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Task::Sr4 => "sr4",
            Task::Denoise => "denoise",
            Task::Deblur => "deblur",
            Task::Jpeg => "jpeg",
        }
    }

    /// The degradation.
    pub fn degradation(self) -> Degradation {
        match self {
            Task::Sr4 => Degradation::SR4,
            Task::Denoise => Degradation::NOISE25,
            Task::Deblur => Degradation::BLUR,
            Task::Jpeg => Degradation::JPEG10,
        }
    }

    /// The SR factor (1 for the others).
    pub fn sr_scale(self) -> usize {
        if self == Task::Sr4 { 4 } else { 1 }
    }

    /// The SDK up-sampler the package asks for (SR only).
    pub fn upsample(self) -> Option<Upsample> {
        (self == Task::Sr4).then_some(Upsample::BicubicA05)
    }

    /// Training pairs in the package's value range ([−1, 1]) at `crop × crop`.
    pub fn pairs(self, crop: usize, augment: bool) -> PairConfig {
        PairConfig {
            crop,
            degradation: self.degradation(),
            upsample: self.upsample(),
            range: Range::Signed,
            augment,
            colour: Default::default(),
            input_8bit_p: 0.0,
            prepass: None,
        }
    }

    /// The task's classical pre-pass (`bridge-export train --prepass`): deblur runs Wiener
    /// deconvolution with its known kernel; the other tasks have none.
    pub fn prepass(self) -> Result<bridge::prepass::Prepass> {
        match self.degradation() {
            Degradation::GaussianBlur { sigma, size } => {
                bridge::prepass::Prepass::wiener(sigma, size).map_err(|e| Error::Config(e.to_string()))
            }
            _ => Err(Error::Config(format!("task {} has no pre-pass (deblur has: Wiener with the known kernel)", self.name()))),
        }
    }
}

/// `(schedule, parameterization, default sampler, default NFE)` of a trainable family, from the
/// SDK's registry (every family the SDK builds is trainable here).
fn family_defaults(family: &str, parameterization: Option<&str>) -> Result<(&'static str, String, &'static str, usize)> {
    let e = registry::family_entry(family)
        .ok_or_else(|| Error::Config(format!("no trainable family `{family}` ({}; ibmd distills a package)", registry::family_names())))?;
    let p = parameterization.unwrap_or(e.parameterizations[0]);
    if !e.parameterizations.contains(&p) {
        return Err(Error::Config(format!("family `{family}` has parameterization {}, not `{p}`", e.parameterizations.join(" or "))));
    }
    Ok((e.schedules[0], p.to_string(), e.default_sampler, e.default_nfe))
}

/// The package metadata of `family` (with `params` as `bridge.family_params`) for `task`, with a
/// U-Net of `cfg`. UniDB gets `gamma_inv = 1e-7` (the official SR value) unless given; NADB's
/// `mean_network` key is set by [`write_package`] when the mean network is written.
pub fn package_meta(
    family: &str,
    parameterization: Option<&str>,
    params: Map<String, Value>,
    task: Task,
    cfg: &UNetConfig,
) -> Result<PackageMeta> {
    let (schedule, par, sampler, nfe) = family_defaults(family, parameterization)?;
    let mut m = PackageMeta::new(family, schedule, &par, sampler, nfe);
    m.family_params = params;
    if family == "unidb" && !m.family_params.contains_key("gamma_inv") {
        m.family_params.insert("gamma_inv".into(), json!(1e-7));
    }
    m.io = IoNames {
        state: io::X.into(),
        cond: (cfg.cond_channels > 0).then(|| io::COND.to_string()),
        time: Some(io::T.into()),
        class: None,
        noise: (cfg.noise_channels > 0).then(|| io::Z.to_string()),
        output: io::OUT.into(),
    };
    m.sr_scale = task.sr_scale();
    m.sr_upsample = task.upsample().unwrap_or(Upsample::Bicubic);
    m.spatial_multiple = cfg.spatial_multiple();
    // Attention's memory is quadratic in the tile area (docs/unet.md): 256-pixel tiles.
    let size = 256usize.div_ceil(m.spatial_multiple) * m.spatial_multiple;
    m.tile = Some(TileHint { size, overlap: 32 });
    m.info.insert("name".into(), format!("libbridge {} {} demo", family, task.name()));
    Ok(m)
}

/// The family the metadata describes, built by the SDK's own constructor (what the runtime
/// will run). NADB's mean-network flag is taken from `bridge.family_params.mean_network` when the
/// mean network is not attached yet.
pub fn build_family(meta: &PackageMeta) -> Result<Box<dyn Family>> {
    let mut m = meta.clone();
    if m.family == "nadb" && m.mean_network.is_none() && m.family_params.get("mean_network") != Some(&json!(false)) {
        // A placeholder so the constructor picks the mean-network (×2) parameterization.
        m.mean_network = Some(MeanNetwork {
            path: "mean.onnx".into(),
            sha256: "0".repeat(64),
            t_net: None,
            io: IoNames { state: io::X.into(), cond: None, time: Some(io::T.into()), class: None, noise: None, output: io::OUT.into() },
        });
        m.family_params.remove("mean_network");
    }
    bridge::runtime::build_family(&m).map_err(|e| Error::Config(e.to_string()))
}

/// Whether a NADB package trains (and ships) a mean network.
pub fn has_mean_network(meta: &PackageMeta) -> bool {
    meta.family == "nadb" && meta.family_params.get("mean_network") != Some(&json!(false))
}

/// Lower-case hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

/// `<dir>/<stem>.mean.onnx` for a package at `<dir>/<stem>.onnx`.
pub fn mean_path(package: &Path) -> PathBuf {
    let stem = package.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    package.with_file_name(format!("{stem}.mean.onnx"))
}

/// Write the package: the U-Net with `weights` and the `bridge.*` keys of `meta` (plus
/// `extra` non-`bridge` keys, e.g. the training command). With `mean` (NADB), the mean network is
/// written first next to it ([`mean_path`]) and referenced by file name and SHA-256.
pub fn write_package(
    path: &Path,
    cfg: &UNetConfig,
    weights: &Weights,
    meta: &PackageMeta,
    mean: Option<(&UNetConfig, &Weights)>,
    extra: &BTreeMap<String, String>,
) -> Result<PathBuf> {
    let mut meta = meta.clone();
    if let Some((mcfg, mw)) = mean {
        let mp = mean_path(path);
        let mut g = unet_graph(mcfg, mw)?;
        g.doc("libbridge NADB mean network M(x1)");
        g.write(&mp)?;
        let name = mp.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        meta.mean_network = Some(MeanNetwork {
            path: name,
            sha256: sha256_file(&mp)?,
            t_net: None,
            io: IoNames { state: io::X.into(), cond: None, time: Some(io::T.into()), class: None, noise: None, output: io::OUT.into() },
        });
        meta.family_params.remove("mean_network");
    }
    // The graph has a noise input exactly when the network has noise channels; the metadata
    // must give it its role (the SDK reads the channel count from the graph).
    let want_noise = (cfg.noise_channels > 0).then(|| io::Z.to_string());
    if meta.io.noise != want_noise {
        return Err(Error::Config(format!(
            "the network has {} noise channels but bridge.inputs gives the noise role to {:?}",
            cfg.noise_channels, meta.io.noise
        )));
    }
    // The metadata must parse back exactly as the runtime reads it, and build its family.
    let back = PackageMeta::from_props(&meta.to_props(), &path.display().to_string()).map_err(|e| Error::Config(e.to_string()))?;
    bridge::runtime::build_family(&back).map_err(|e| Error::Config(format!("package family: {e}")))?;
    let mut g = unet_graph(cfg, weights)?;
    // The graph's own `unet.*` keys describe the network written; a package read back (an IBMD
    // teacher's metadata) must not overwrite them with another network's.
    g.metas(meta.to_props().into_iter().filter(|(k, _)| !k.starts_with("unet.")));
    g.metas(extra.iter());
    g.write(path)
}

/// A package's U-Net configuration, weights (initializers) and metadata.
pub fn read_package(path: &Path) -> Result<(UNetConfig, Weights, PackageMeta)> {
    package_of(read_model(path)?, path)
}

/// [`read_package`] of a model already read from `path` (named in errors).
fn package_of(m: crate::proto::ModelProto, path: &Path) -> Result<(UNetConfig, Weights, PackageMeta)> {
    let props: BTreeMap<String, String> = m.metadata_props.iter().filter_map(|e| Some((e.key.clone()?, e.value.clone()?))).collect();
    let bad = |msg: String| Error::Format { path: path.into(), msg };
    let cfg = UNetConfig::from_json(props.get("unet.config").ok_or_else(|| bad("no unet.config metadata".into()))?)?;
    let meta = PackageMeta::from_props(&props, &path.display().to_string()).map_err(|e| bad(e.to_string()))?;
    let graph = m.graph.ok_or_else(|| bad("no graph".into()))?;
    let specs = cfg.params()?;
    let mut w = Weights::new();
    for init in graph.initializer {
        let Some(name) = init.name.clone() else { continue };
        let Some(spec) = specs.iter().find(|p| p.path == name) else { continue };
        let raw = init.raw_data.unwrap_or_default();
        if raw.len() != 4 * spec.numel() {
            return Err(bad(format!("initializer `{name}` has {} bytes, expected {}", raw.len(), 4 * spec.numel())));
        }
        let data = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        w.insert(&name, &spec.shape, data)?;
    }
    w.set_meta(CONFIG_KEY, &cfg.to_json());
    w.check_exact(&specs)?;
    Ok((cfg, w, meta))
}

/// Rewrite the package at `src` into `out` with another default sampler, NFE and/or channel
/// ensemble (`bridge.channel_ensemble`), keeping its weights, metadata and training record
/// (`train.*`). The new defaults are checked by the same family build as any written package.
/// NADB packages with a mean network are refused (their mean network file would have to be
/// rewritten too).
pub fn redefault_package(
    src: &Path,
    out: &Path,
    sampler: Option<&str>,
    nfe: Option<usize>,
    channel_ensemble: Option<bool>,
) -> Result<PathBuf> {
    let m = read_model(src)?;
    let extra: BTreeMap<String, String> =
        m.metadata_props.iter().filter_map(|e| Some((e.key.clone()?, e.value.clone()?))).filter(|(k, _)| k.starts_with("train.")).collect();
    let (cfg, w, mut meta) = package_of(m, src)?;
    if meta.mean_network.is_some() {
        return Err(Error::Config(format!(
            "{}: a package with a mean network cannot be re-defaulted; export its checkpoint",
            src.display()
        )));
    }
    if let Some(s) = sampler {
        meta.sampler = s.to_string();
    }
    if let Some(n) = nfe {
        meta.nfe = n;
    }
    if let Some(on) = channel_ensemble {
        meta.channel_ensemble = on;
    }
    write_package(out, &cfg, &w, &meta, None, &extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::InitMode;

    /// Every trainable family's metadata parses back, builds the SDK family of that name, and the
    /// written package reads back to the same weights and metadata.
    #[test]
    fn metadata_for_every_family_and_round_trip() {
        let cfg = UNetConfig::tiny(3, 3, 3);
        for fam in ["i2sb", "ddbm-vp", "ddbm-ve", "dbim-i2sb", "goub", "unidb", "rdbm", "nadb"] {
            let m = package_meta(fam, None, Map::new(), Task::Denoise, &cfg).unwrap();
            let f = build_family(&m).unwrap();
            assert_eq!(f.name(), fam);
            // The package's default sampler runs at its default NFE (a stand-in network).
            let sampler = bridge::runtime::families::default_sampler(&m).unwrap();
            let x = bridge::Tensor::from_elem((1, 3, 4, 4), 0.25f32);
            let mut net = bridge::FnDenoiser(|x: bridge::TensorView<'_>, _: bridge::TensorView<'_>, _| Ok(x.mapv(|v| 0.5 * v)));
            let mut model = bridge::sampler::Model::new(&mut net, f.as_ref(), x.view(), x.view()).unwrap();
            let out = bridge::sampler::sample(&mut model, &sampler, m.nfe, &mut bridge::rng::PhiloxNoise::new(1));
            assert!(out.is_ok(), "{fam}: default {} at NFE {}: {:?}", m.sampler, m.nfe, out.err());
        }
        let m = package_meta("rdbm", Some("eps"), Map::new(), Task::Sr4, &cfg).unwrap();
        assert_eq!((m.sr_scale, m.sr_upsample, m.parameterization.as_str()), (4, Upsample::BicubicA05, "eps"));
        assert!(package_meta("rdbm", Some("v"), Map::new(), Task::Sr4, &cfg).is_err());
        assert!(package_meta("nope", None, Map::new(), Task::Sr4, &cfg).is_err());

        let dir = crate::fixtures::scratch_root().join(format!("bridge-pkg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = Weights::for_unet(&cfg, 1, InitMode::Random).unwrap();
        let meta = package_meta("i2sb", None, Map::new(), Task::Jpeg, &cfg).unwrap();
        let extra = BTreeMap::from([("train.command".to_string(), "x".to_string())]);
        let p = write_package(&dir.join("a.onnx"), &cfg, &w, &meta, None, &extra).unwrap();
        let (c2, w2, m2) = read_package(&p).unwrap();
        assert_eq!((c2, &w2), (cfg.clone(), &w));
        assert_eq!((m2.family.as_str(), m2.nfe, m2.other.get("train.command").map(String::as_str)), ("i2sb", 5, Some("x")));
        // New defaults: the rest of the package is kept; unset ones stay as they were.
        let r = redefault_package(&p, &dir.join("r.onnx"), None, Some(1), Some(true)).unwrap();
        let (c3, w3, m3) = read_package(&r).unwrap();
        assert_eq!((c3, &w3), (cfg.clone(), &w));
        assert_eq!((m3.sampler.as_str(), m3.nfe, m3.channel_ensemble), (m2.sampler.as_str(), 1, true));
        assert_eq!(m3.other.get("train.command").map(String::as_str), Some("x"));
        let (_, _, m4) = read_package(&redefault_package(&r, &dir.join("r2.onnx"), None, None, Some(false)).unwrap()).unwrap();
        assert_eq!((m4.nfe, m4.channel_ensemble), (1, false));

        // NADB: the mean network is written next to the package and pinned by its SHA-256.
        let mcfg = UNetConfig::tiny(3, 0, 3);
        let mw = Weights::for_unet(&mcfg, 2, InitMode::Random).unwrap();
        let meta = package_meta("nadb", None, Map::new(), Task::Deblur, &cfg).unwrap();
        assert!(has_mean_network(&meta));
        assert_eq!(build_family(&meta).unwrap().downcast::<bridge::family::nadb::Nadb>().unwrap().out_scale(), 2.0);
        let p = write_package(&dir.join("n.onnx"), &cfg, &w, &meta, Some((&mcfg, &mw)), &BTreeMap::new()).unwrap();
        let (_, _, m3) = read_package(&p).unwrap();
        let mn = m3.mean_network.unwrap();
        assert_eq!(mn.path, "n.mean.onnx");
        assert_eq!(mn.sha256, sha256_file(&dir.join("n.mean.onnx")).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
