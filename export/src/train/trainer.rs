//! The training loop: a bridge network for any family (plus NADB's mean network) or an IBMD
//! generator distilled from a teacher package, with Adam, gradient clipping, an EMA of the
//! weights, resumable checkpoints and export of the EMA weights as a model package.
//!
//! * **Determinism.** Step `s` sees the same data whatever happened before: the crops come from
//!   [`PairSampler::batch`] (a function of seed, step and batch size), the training times and the
//!   noise from Philox streams keyed by `(seed, s)`. A run stopped and resumed from a checkpoint
//!   continues with exactly the batches it would have seen.
//! * **Checkpoints** (safetensors, via [`Weights`]): every network's parameters (`<net>.p.*`), Adam
//!   moments (`<net>.m.*`, `<net>.v.*`, `<net>.t`), EMA (`<net>.ema.*`), and in the metadata the
//!   step, the accumulated wall-clock seconds and the [`Spec`] (a resumed run must have the same
//!   spec, except `steps`, which may be raised). Written atomically (temporary file + rename).
//! * **Phases.** NADB with a mean network first trains `M` by MSE(M(x1), x0) for `mean_steps`
//!   steps, then the bridge with the endpoint `M_ema(x1)` (frozen). IBMD alternates a fake-model
//!   update (the family's own objective on generator samples) and a generator update
//!   ([`super::ibmd`]).
//! * **Degraded inputs** are clipped to the value range (noise included), as any image file would
//!   hold them.

use super::ibmd::{Ibmd, generator_weights};
use super::optim::{Adam, clip_grad_norm, ema_decay, ema_update, learning_rate};
use super::tch_ops::{ParamSet, backend, tensor, values};
use crate::data::{PairSampler, Photo, default_data_dir, load_dir};
use crate::degrade::Rng;
use crate::error::{Error, Result};
use crate::objective::{Draw, Loss, Objective};
use crate::package::{Task, build_family, has_mean_network, package_meta, read_package, write_package};
use crate::unet::UNetConfig;
use crate::weights::Weights;
use bridge::family::Family;
use bridge::runtime::package::PackageMeta;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Everything that defines a training run (stored in checkpoints and in the package metadata).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// Family name (`i2sb`, `ddbm-vp`, `ddbm-ve`, `dbim-i2sb`, `goub`, `unidb`, `rdbm`, `nadb`), or
    /// `ibmd` (then `teacher` names the teacher package).
    pub family: String,
    /// Parameterization (`x0`/`eps` for RDBM); `None` = the family's.
    pub parameterization: Option<String>,
    /// `bridge.family_params`.
    pub family_params: Map<String, Value>,
    /// Task (`sr4`, `denoise`, `deblur`, `jpeg`).
    pub task: String,
    /// The bridge network (ignored for IBMD: the teacher's).
    pub unet: UNetConfig,
    /// NADB's mean network (unconditional).
    pub mean_unet: Option<UNetConfig>,
    /// Total optimizer steps (all phases).
    pub steps: u64,
    /// NADB: steps spent on the mean network first.
    pub mean_steps: u64,
    /// Batch size.
    pub batch: usize,
    /// Square crop side (a multiple of the U-Net's spatial multiple and the SR factor).
    pub crop: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Warm-up steps (then cosine decay to lr/10).
    pub warmup: u64,
    /// EMA decay.
    pub ema: f64,
    /// Global gradient-norm clip (0: off).
    pub grad_clip: f64,
    /// Seed of the initialization, data, times and noise.
    pub seed: u64,
    /// Spend a fraction `focus_p` of the draws on the times of the default sampler's grid for
    /// this NFE ([`Objective::with_focus`]).
    pub focus_nfe: Option<usize>,
    /// See `focus_nfe`.
    pub focus_p: f64,
    /// Package default sampler (`None`: the family's).
    pub sampler: Option<String>,
    /// Package default NFE (`None`: the family's; IBMD: the generator's step count).
    pub nfe: Option<usize>,
    /// Photos are shrunk so their longer side is at most this (0: as shipped).
    pub max_side: usize,
    /// IBMD: the teacher package.
    pub teacher: Option<PathBuf>,
    /// Fraction of training crops turned grey ([`crate::data::Colour`]).
    #[serde(default)]
    pub gray_p: f64,
    /// Random RGB channel permutations of the training crops ([`crate::data::Colour`]).
    #[serde(default)]
    pub permute_channels: bool,
    /// IBMD: channels of the generator's noise input (0: a deterministic generator); `None`: as
    /// many as the image has ([`Spec::generator_noise`]). Other families take none.
    #[serde(default)]
    pub noise_channels: Option<usize>,
    /// Start from this package's (EMA) weights instead of the seeded initializer: fine-tuning,
    /// e.g. a long CPU run continuing a shipped model with new data. The package must be the
    /// same family, parameterization, family parameters, task and U-Net, and a pre-pass package
    /// needs the same pre-pass (`--prepass`; a plain package may start a pre-pass run) ([`init_weights`]);
    /// its training record is kept in the new package as `train.init.*`.
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Fraction of degraded training inputs rounded to 8 bits ([`crate::data::PairConfig`]).
    #[serde(default)]
    pub input_8bit_p: f64,
    /// Run the task's classical pre-pass ([`Task::prepass`]) on every training input and declare
    /// it in the package (`bridge.prepass`), so the SDK runs it before the bridge too.
    #[serde(default)]
    pub prepass: bool,
}

impl Spec {
    fn task(&self) -> Result<Task> {
        Task::parse(&self.task)
    }

    /// The IBMD generator's noise channels for a teacher of `teacher`'s architecture: the
    /// spec's, else one per image channel (`docs/math/ibmd.md`).
    pub fn generator_noise(&self, teacher: &UNetConfig) -> usize {
        self.noise_channels.unwrap_or(teacher.in_channels)
    }

    /// Same run, possibly with more steps.
    fn resumable_from(&self, other: &Spec) -> bool {
        Spec { steps: other.steps, ..self.clone() } == *other
    }
}

/// One trained network with its optimizer state and EMA.
pub struct Net {
    /// Architecture.
    pub cfg: UNetConfig,
    /// Trainable parameters.
    pub params: ParamSet,
    /// Exponential moving average of `params` (what is exported).
    pub ema: ParamSet,
    adam: Adam,
}

impl Net {
    /// A network initialized from `w`.
    pub fn from_weights(cfg: &UNetConfig, w: &Weights, device: Device) -> Result<Self> {
        let params = ParamSet::from_weights(w, device, true)?;
        let ema = ParamSet::from_weights(w, device, false)?;
        let adam = Adam::new(&params);
        Ok(Net { cfg: cfg.clone(), params, ema, adam })
    }

    /// A network from the seeded training initializer.
    pub fn init(cfg: &UNetConfig, seed: u64, device: Device) -> Result<Self> {
        Self::from_weights(cfg, &Weights::for_unet(cfg, seed, crate::weights::InitMode::Training)?, device)
    }

    /// Backward `loss` into this network's parameters, clip, Adam step, EMA update; returns the
    /// gradient norm before clipping.
    pub fn update(&mut self, loss: &Tensor, lr: f64, clip: f64, ema: f64) -> Result<f64> {
        let mut grads = Tensor::f_run_backward(&[loss], &self.params.tensors(), false, false).map_err(backend)?;
        let norm = clip_grad_norm(&mut grads, clip)?;
        if !norm.is_finite() {
            return Err(Error::Backend(format!("non-finite gradient norm {norm}")));
        }
        self.adam.step(&self.params, &grads, lr)?;
        ema_update(&self.ema, &self.params, ema_decay(ema, self.adam.t))?;
        Ok(norm)
    }

    fn save(&self, name: &str, ck: &mut Weights) -> Result<()> {
        for (set, tag) in [(&self.params, "p"), (&self.ema, "ema")] {
            let w = set.to_weights(None)?;
            for n in w.names() {
                let t = w.get(n).ok_or_else(|| Error::Weights(n.into()))?;
                ck.insert(&format!("{name}.{tag}.{n}"), &t.shape, t.data.clone())?;
            }
        }
        self.adam.save(&self.params, &format!("{name}."), ck)
    }

    fn load(&mut self, name: &str, ck: &Weights) -> Result<()> {
        let dev = self.params.device();
        let part = |tag: &str| -> Result<Weights> {
            let mut w = Weights::new();
            let pre = format!("{name}.{tag}.");
            for n in ck.names().filter(|n| n.starts_with(&pre)) {
                let t = ck.get(n).ok_or_else(|| Error::Weights(n.into()))?;
                w.insert(&n[pre.len()..], &t.shape, t.data.clone())?;
            }
            w.check_exact(&self.cfg.params()?)?;
            Ok(w)
        };
        self.params = ParamSet::from_weights(&part("p")?, dev, true)?;
        self.ema = ParamSet::from_weights(&part("ema")?, dev, false)?;
        self.adam = Adam::new(&self.params);
        self.adam.load(&self.params, &format!("{name}."), ck)
    }

    /// The EMA weights (with the config in the metadata).
    pub fn ema_weights(&self) -> Result<Weights> {
        self.ema.to_weights(Some(&self.cfg))
    }
}

/// `[B, 1, 1, 1]` per-item coefficients.
pub fn column(v: &[f64], device: Device) -> Result<Tensor> {
    let f: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    tensor(&f, &[v.len(), 1, 1, 1], device)
}

/// `[B]` time values.
pub fn times(v: &[f64], device: Device) -> Result<Tensor> {
    let f: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    tensor(&f, &[v.len()], device)
}

/// `Σ_k form_k(x0, x_end, n)` per item: `x0·a + x_end·b + n·c` with `[B,1,1,1]` coefficients.
fn form(x0: &Tensor, x_end: &Tensor, n: &Tensor, a: &[f64], b: &[f64], c: &[f64]) -> Result<Tensor> {
    let d = x0.device();
    let r = |x: std::result::Result<Tensor, tch::TchError>| x.map_err(backend);
    let ta = r(x0.f_mul(&column(a, d)?))?;
    let tb = r(x_end.f_mul(&column(b, d)?))?;
    let tc = r(n.f_mul(&column(c, d)?))?;
    r(ta.f_add(&tb).and_then(|s| s.f_add(&tc)))
}

/// The noise slot `n`: `z`, or `(x0 − x_end)⊙z` for RDBM's residual-modulated bridge.
pub fn noise_slot(x0: &Tensor, x_end: &Tensor, z: &Tensor, residual: bool) -> Result<Tensor> {
    if residual { x0.f_sub(x_end).and_then(|d| d.f_mul(z)).map_err(backend) } else { Ok(z.shallow_clone()) }
}

/// The state `x_t` of each draw.
pub fn bridge_state(x0: &Tensor, x_end: &Tensor, z: &Tensor, draws: &[Draw]) -> Result<Tensor> {
    let n = noise_slot(x0, x_end, z, draws.first().is_some_and(|d| d.residual_noise))?;
    let g = |f: fn(&Draw) -> f64| draws.iter().map(f).collect::<Vec<f64>>();
    form(x0, x_end, &n, &g(|d| d.x_t.x0), &g(|d| d.x_t.xt), &g(|d| d.x_t.z))
}

/// The family's bridge-matching loss of `net` on clean images `x0` (any tensor, e.g. generator
/// samples with gradient), endpoint `x_end`, conditioning `cond`, noise `z` and one draw per item:
/// `mean_i (w_i/w̄)·mean_pixels |raw_i − target_i|^p`.
#[allow(clippy::too_many_arguments)]
pub fn bridge_loss(
    net: &ParamSet,
    cfg: &UNetConfig,
    norm: Loss,
    weight_scale: f64,
    x0: &Tensor,
    x_end: &Tensor,
    cond: Option<&Tensor>,
    z: &Tensor,
    draws: &[Draw],
) -> Result<Tensor> {
    let dev = x0.device();
    let r = |x: std::result::Result<Tensor, tch::TchError>| x.map_err(backend);
    let n = noise_slot(x0, x_end, z, draws.first().is_some_and(|d| d.residual_noise))?;
    let g = |f: fn(&Draw) -> f64| draws.iter().map(f).collect::<Vec<f64>>();
    let x_t = form(x0, x_end, &n, &g(|d| d.x_t.x0), &g(|d| d.x_t.xt), &g(|d| d.x_t.z))?;
    let inp = r(x_t.f_mul(&column(&g(|d| d.c_in), dev)?))?;
    let out = net.forward(cfg, &inp, cond, &times(&g(|d| d.t_net), dev)?)?;
    let target = form(x0, x_end, &n, &g(|d| d.target.x0), &g(|d| d.target.xt), &g(|d| d.target.z))?;
    let diff = r(out.f_sub(&target))?;
    let e = match norm {
        Loss::L2 => r(diff.f_square())?,
        Loss::L1 => r(diff.f_abs())?,
    };
    let per_item = r(e.f_mean_dim([1i64, 2, 3].as_slice(), false, Kind::Float))?;
    let w: Vec<f64> = draws.iter().map(|d| d.weight / weight_scale).collect();
    r(per_item.f_mul(&times(&w, dev)?).and_then(|x| x.f_mean(Kind::Float)))
}

/// The mean per-draw weight over the objective's distribution (so losses are O(1) whatever the
/// family's weighting; GOUB's `|C_ε|` is small).
pub fn weight_scale(obj: &Objective<'_>, seed: u64) -> Result<f64> {
    let mut rng = Rng::new(seed, u64::MAX);
    let n = 512;
    let mut s = 0.0;
    for _ in 0..n {
        s += obj.draw(&mut rng)?.weight;
    }
    Ok((s / n as f64).max(1e-30))
}

/// A step's inputs, prepared off the training thread.
pub struct Prepared {
    /// Clean crops `[B, 3, S, S]` in [−1, 1].
    pub clean: Tensor,
    /// Degraded crops (the network's conditioning and, except NADB with a mean network, the
    /// bridge endpoint), clipped to [−1, 1].
    pub degraded: Tensor,
    /// Standard normal noise of the clean crops' shape.
    pub z: Tensor,
    /// One training draw per item.
    pub draws: Vec<Draw>,
    /// A second, independent set (IBMD's generator update).
    pub draws2: Vec<Draw>,
    /// A second noise tensor (IBMD).
    pub z2: Tensor,
    /// Step-seeded Philox stream for anything else random in the step (IBMD's `k`).
    pub rng: Rng,
}

const TIME_STREAM: u64 = 0x7431_0000_0000_0000;
const NOISE_STREAM: u64 = 0x6e01_0000_0000_0000;

fn normals(seed: u64, stream: u64, n: usize) -> Vec<f32> {
    let mut r = Rng::new(seed, stream);
    (0..n).map(|_| r.normal()).collect()
}

fn prepare(sampler: &PairSampler<'_>, obj: Option<&Objective<'_>>, spec: &Spec, step: u64) -> Result<Prepared> {
    let b = sampler.batch(step, spec.batch).map_err(|e| Error::Backend(format!("data: {e}")))?;
    let dims = |a: &bridge::Tensor| a.shape().to_vec();
    let flat = |a: &bridge::Tensor| a.iter().copied().collect::<Vec<f32>>();
    let clean = tensor(&flat(&b.clean), &dims(&b.clean), Device::Cpu)?;
    // Clipped to the model range, as every 8/16-bit input is (a camera's noisy frame, the
    // evaluation pairs' PNGs): the noise of a denoising pair never leaves [0, 1] here.
    let deg: Vec<f32> = b.degraded.iter().map(|v| v.clamp(-1.0, 1.0)).collect();
    let degraded = tensor(&deg, &dims(&b.degraded), Device::Cpu)?;
    let n = b.clean.len();
    let z = tensor(&normals(spec.seed, NOISE_STREAM ^ (2 * step), n), &dims(&b.clean), Device::Cpu)?;
    let z2 = tensor(&normals(spec.seed, NOISE_STREAM ^ (2 * step + 1), n), &dims(&b.clean), Device::Cpu)?;
    let mut rng = Rng::new(spec.seed, TIME_STREAM ^ step);
    let (mut draws, mut draws2) = (Vec::new(), Vec::new());
    if let Some(o) = obj {
        for _ in 0..spec.batch {
            draws.push(o.draw(&mut rng)?);
        }
        for _ in 0..spec.batch {
            draws2.push(o.draw(&mut rng)?);
        }
    }
    Ok(Prepared { clean, degraded, z, draws, draws2, z2, rng })
}

/// What a finished (or interrupted) run reports.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Steps completed.
    pub step: u64,
    /// Wall-clock seconds spent training, summed over resumed segments.
    pub seconds: f64,
    /// The written package.
    pub package: PathBuf,
    /// Mean loss of the last logging window.
    pub last_loss: f64,
    /// The run's total step count (lower than the spec's after a time budget).
    pub steps: u64,
}

/// How the loop reports.
pub struct Reporting {
    /// Print a log line every this many steps (0: never).
    pub log_every: u64,
    /// Draw a progress bar (terminals).
    pub progress_bar: bool,
    /// Write a checkpoint every this many steps (and at the end).
    pub ckpt_every: u64,
    /// Stop after this many steps in this invocation (the checkpoint lets a later run go on).
    pub max_steps_now: Option<u64>,
    /// Threads that prepare batches (crops, degradations, noise) ahead of the training thread
    /// (0 or 1: one). Batch `s` is the same whichever thread makes it.
    pub data_threads: usize,
    /// A fresh run: fit the total step count into this many wall-clock seconds. The rate is
    /// measured over the warm-up (whose learning rate does not depend on the total), then
    /// `steps` is lowered (never raised) so the cosine decay ends inside the budget.
    pub time_budget: Option<f64>,
}

/// The total step count that fits a time budget: `per_step` measured during warm-up, `spent`
/// seconds already used, 3 % kept for checkpoints and export; never below `done` nor above `max`.
pub fn budget_steps(budget: f64, spent: f64, per_step: f64, done: u64, max: u64) -> u64 {
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // a NaN step time means "unknown" too
    if !(per_step > 0.0) || !budget.is_finite() {
        return max;
    }
    let more = ((budget - spent).max(0.0) * 0.97 / per_step).floor();
    let more = if more >= u64::MAX as f64 { u64::MAX } else { more as u64 };
    done.saturating_add(more).clamp(done, max.max(done))
}

/// The package metadata a spec produces (family, task, defaults; IBMD: the teacher's).
pub fn spec_meta(spec: &Spec) -> Result<(PackageMeta, UNetConfig)> {
    let task = spec.task()?;
    let (mut meta, cfg) = if spec.family == "ibmd" {
        let t = spec.teacher.as_ref().ok_or_else(|| Error::Config("ibmd needs a teacher package".into()))?;
        let (tcfg, _, mut meta) = read_package(t)?;
        meta.sampler = "distilled".into();
        meta.nfe = 1;
        meta.sampler_params.clear();
        // The teacher's network description and training record are not the generator's.
        meta.other.retain(|k, _| !k.starts_with("unet.") && !k.starts_with("train."));
        meta.info.insert("name".into(), format!("libbridge IBMD ({}) {} demo", meta.family, task.name()));
        // The generator: the teacher's network plus its noise input (role `noise`).
        let mut cfg = tcfg.clone();
        cfg.noise_channels = spec.generator_noise(&tcfg);
        meta.io.noise = (cfg.noise_channels > 0).then(|| crate::onnx_ops::io::Z.to_string());
        (meta, cfg)
    } else {
        if spec.noise_channels.is_some_and(|n| n > 0) {
            return Err(Error::Config(format!("noise channels are an IBMD generator's input; family `{}` takes none", spec.family)));
        }
        let m = package_meta(&spec.family, spec.parameterization.as_deref(), spec.family_params.clone(), task, &spec.unet)?;
        (m, spec.unet.clone())
    };
    if let Some(s) = &spec.sampler {
        meta.sampler = s.clone();
    }
    if let Some(n) = spec.nfe {
        meta.nfe = n;
    }
    if spec.prepass {
        meta.prepass = Some(task.prepass()?);
    }
    if meta.sr_scale != task.sr_scale() {
        return Err(Error::Config(format!("the teacher is a ×{} package, task {} is ×{}", meta.sr_scale, task.name(), task.sr_scale())));
    }
    Ok((meta, cfg))
}

fn write_atomic(w: &Weights, path: &Path) -> Result<()> {
    let tmp = path.with_extension("tmp");
    w.save(&tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Run (or resume) training and write the package. `command` is recorded in the package.
pub fn train(spec: &Spec, out: &Path, ckpt: &Path, command: &str, rep: &Reporting) -> Result<Summary> {
    // `steps` may be lowered by a time budget; everything else is fixed.
    let mut spec = spec.clone();
    let task = spec.task()?;
    let (meta, cfg) = spec_meta(&spec)?;
    let family: Box<dyn Family> = build_family(&meta)?;
    let device = super::device::best_device();
    if spec.crop == 0 || !spec.crop.is_multiple_of(cfg.spatial_multiple()) || !spec.crop.is_multiple_of(task.sr_scale()) {
        return Err(Error::Config(format!("crop {} must be a multiple of {} and of the SR factor", spec.crop, cfg.spatial_multiple())));
    }
    let mut obj = Objective::new(family.as_ref())?;
    if let Some(n) = spec.focus_nfe {
        obj = obj.with_focus(n, spec.focus_p)?;
    }
    let wscale = weight_scale(&obj, spec.seed)?;
    let mean_needed = spec.family != "ibmd" && has_mean_network(&meta);
    if mean_needed != obj.endpoint_is_mean() {
        return Err(Error::Config("NADB mean-network flag and family disagree".into()));
    }

    // Networks: IBMD starts generator and fake model from the teacher; others from the seeded init.
    let mut ibmd = None;
    let mut init_record = BTreeMap::new();
    let mut net = if spec.family == "ibmd" {
        if spec.init.is_some() {
            return Err(Error::Config("--init is for bridge networks; an IBMD generator starts from its teacher".into()));
        }
        let t = spec.teacher.as_ref().ok_or_else(|| Error::Config("ibmd needs --teacher".into()))?;
        let (tcfg, tw, _) = read_package(t)?;
        let i = Ibmd::new(&tcfg, &tw, family.as_ref(), spec.nfe.unwrap_or(1), device)?;
        let (gcfg, gw) = generator_weights(&tcfg, &tw, spec.generator_noise(&tcfg))?;
        if gcfg != cfg {
            return Err(Error::Config("the teacher package changed since the spec was read".into()));
        }
        let g = Net::from_weights(&gcfg, &gw, device)?;
        ibmd = Some(i);
        g
    } else if let Some(p) = &spec.init {
        if mean_needed {
            return Err(Error::Config("--init: packages with a mean network (NADB) cannot be fine-tuned yet".into()));
        }
        let (w, record) = init_weights(p, &meta, &cfg)?;
        init_record = record;
        Net::from_weights(&cfg, &w, device)?
    } else {
        Net::init(&cfg, spec.seed, device)?
    };
    let mut mean = match (mean_needed, &spec.mean_unet) {
        (true, Some(mc)) if mc.cond_channels == 0 => Some(Net::init(mc, spec.seed ^ 0x6d65_616e, device)?),
        (true, _) => return Err(Error::Config("NADB with a mean network needs an unconditional mean_unet".into())),
        (false, _) => None,
    };
    let mean_steps = if mean.is_some() { spec.mean_steps.min(spec.steps) } else { 0 };

    // Resume.
    let (mut step, mut seconds) = (0u64, 0.0f64);
    if ckpt.exists() {
        let ck = Weights::load(ckpt)?;
        let old: Spec = serde_json::from_str(ck.meta("spec").unwrap_or("{}"))
            .map_err(|e| Error::Format { path: ckpt.into(), msg: format!("spec: {e}") })?;
        if !spec.resumable_from(&old) {
            return Err(Error::Config(format!(
                "{} was written by a different run (only --steps may change); remove it or pass another --ckpt",
                ckpt.display()
            )));
        }
        net.load("net", &ck)?;
        if let Some(m) = mean.as_mut() {
            m.load("mean", &ck)?;
        }
        if let Some(i) = ibmd.as_mut() {
            i.fake.load("fake", &ck)?;
        }
        if let Some(r) = ck.meta("init_record").and_then(|r| serde_json::from_str(r).ok()) {
            init_record = r;
        }
        step = ck.meta("step").and_then(|s| s.parse().ok()).unwrap_or(0);
        seconds = ck.meta("seconds").and_then(|s| s.parse().ok()).unwrap_or(0.0);
        eprintln!("resuming {} at step {step} ({seconds:.0} s trained so far)", ckpt.display());
    }

    let data_dir = default_data_dir().join("train");
    let photos: Vec<Photo> = if step < spec.steps {
        load_dir(&data_dir, (spec.max_side > 0).then_some(spec.max_side)).map_err(|e| Error::Backend(e.to_string()))?
    } else {
        Vec::new()
    };
    let save = |spec: &Spec, net: &Net, mean: &Option<Net>, ibmd: &Option<Ibmd>, step: u64, seconds: f64| -> Result<()> {
        let mut ck = Weights::new();
        net.save("net", &mut ck)?;
        if let Some(m) = mean {
            m.save("mean", &mut ck)?;
        }
        if let Some(i) = ibmd {
            i.fake.save("fake", &mut ck)?;
        }
        ck.set_meta("step", &step.to_string());
        ck.set_meta("seconds", &format!("{seconds:.1}"));
        ck.set_meta("spec", &serde_json::to_string(spec).unwrap_or_default());
        ck.set_meta("command", command);
        // The fine-tuned package's record travels with the checkpoint (export needs no init file).
        ck.set_meta("init_record", &serde_json::to_string(&init_record).unwrap_or_default());
        write_atomic(&ck, ckpt)
    };

    let mut stop = rep.max_steps_now.map_or(spec.steps, |n| (step + n).min(spec.steps));
    let budget = rep.time_budget.filter(|_| step == 0);
    if budget.is_some() && (spec.warmup < 20 || mean_steps > 0 || spec.family == "ibmd") {
        return Err(Error::Config("a time budget needs ≥ 20 warm-up steps and a single-phase run (not NADB's mean phase or IBMD)".into()));
    }
    let mut last_loss = f64::NAN;
    if step < stop {
        let mut pairs = task.pairs(spec.crop, true);
        pairs.colour = crate::data::Colour { gray_p: spec.gray_p, permute: spec.permute_channels };
        pairs.input_8bit_p = spec.input_8bit_p;
        // Exactly the pre-pass the package declares (and so the SDK runs): `--prepass`, or an
        // IBMD teacher's, whose metadata the generator's package inherits.
        pairs.prepass = meta.prepass.clone();
        let sampler = PairSampler::new(&photos, pairs, spec.seed).map_err(|e| Error::Backend(e.to_string()))?;
        let bar = if rep.progress_bar { indicatif::ProgressBar::new(spec.steps) } else { indicatif::ProgressBar::hidden() };
        bar.set_style(
            indicatif::ProgressStyle::with_template("[{elapsed_precise}] [{bar:30}] {pos}/{len} {msg} (eta {eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_position(step);
        let (mut win_loss, mut win_n, mut win_t) = (0.0f64, 0u64, Instant::now());
        let mut seg_start = Instant::now();
        let run_start = Instant::now();
        let mut probe: Option<(u64, Instant)> = None;
        let data_spec = spec.clone();
        let result: Result<()> = std::thread::scope(|s| {
            // Batches are made ahead on `data_threads` threads (crops, degradations, noise):
            // thread `i` makes steps `first + i + k·n`, and the training thread takes them in
            // order from each thread's queue in turn, so the batches do not depend on `n`.
            let n = rep.data_threads.max(1);
            let first = step;
            let last = stop;
            let mut queues = Vec::with_capacity(n);
            for i in 0..n {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Prepared>>(2);
                queues.push(rx);
                let (obj_ref, sampler_ref, spec_ref) = (&obj, &sampler, &data_spec);
                s.spawn(move || {
                    for st in (first + i as u64..last).step_by(n) {
                        if tx.send(prepare(sampler_ref, Some(obj_ref), spec_ref, st)).is_err() {
                            break;
                        }
                    }
                });
            }
            while step < stop {
                let p = queues[((step - first) % n as u64) as usize].recv().map_err(|_| Error::Backend("data thread stopped".into()))??;
                let lr = learning_rate(spec.lr, step, spec.warmup, spec.steps);
                let x0 = p.clean.to_device(device);
                let deg = p.degraded.to_device(device);
                let z = p.z.to_device(device);
                let loss = if step < mean_steps {
                    // Phase 1 (NADB): the mean network, MSE(M(x1), x0) at noise_levels[1].
                    let m = mean.as_mut().ok_or_else(|| Error::Config("mean phase without a mean network".into()))?;
                    let t = times(&vec![bridge::family::nadb::noise_level(1); spec.batch], device)?;
                    let out = m.params.forward(&m.cfg, &deg, None, &t)?;
                    let l = out.f_sub(&x0).and_then(|d| d.f_square()).and_then(|d| d.f_mean(Kind::Float)).map_err(backend)?;
                    m.update(&l, lr, spec.grad_clip, spec.ema)?;
                    l
                } else if let Some(i) = ibmd.as_mut() {
                    i.step(&mut net, &obj, wscale, &deg, &p, device, lr, &spec)?
                } else {
                    let x_end = match &mean {
                        Some(m) => tch::no_grad(|| {
                            let t = times(&vec![bridge::family::nadb::noise_level(1); spec.batch], device)?;
                            m.ema.forward(&m.cfg, &deg, None, &t)
                        })?,
                        None => deg.shallow_clone(),
                    };
                    let cond = (cfg.cond_channels > 0).then_some(&deg);
                    let l = bridge_loss(&net.params, &net.cfg, obj.loss(), wscale, &x0, &x_end, cond, &z, &p.draws)?;
                    net.update(&l, lr, spec.grad_clip, spec.ema)?;
                    l
                };
                let lv = loss.f_double_value(&[]).map_err(backend)?;
                if !lv.is_finite() {
                    return Err(Error::Backend(format!("loss is {lv} at step {step}")));
                }
                step += 1;
                // Time budget: time the warm-up after its first 10 steps (start-up, kernel
                // selection), then fix the total so the schedule ends in time.
                if let Some(b) = budget {
                    if step == 10 {
                        probe = Some((step, Instant::now()));
                    } else if step == spec.warmup
                        && let Some((s0, t0)) = probe
                    {
                        let per_step = t0.elapsed().as_secs_f64() / (step - s0) as f64;
                        let total = budget_steps(b, run_start.elapsed().as_secs_f64(), per_step, step, spec.steps);
                        eprintln!("time budget {b:.0} s: {per_step:.4} s/step, training {total} of {} steps", spec.steps);
                        spec.steps = total;
                        stop = stop.min(total);
                    }
                }
                win_loss += lv;
                win_n += 1;
                bar.set_position(step);
                bar.set_message(format!("loss {:.4}", win_loss / win_n as f64));
                let log_now = rep.log_every > 0 && step % rep.log_every == 0;
                if log_now || step == stop {
                    let dt = win_t.elapsed().as_secs_f64() / win_n as f64;
                    last_loss = win_loss / win_n as f64;
                    if rep.log_every > 0 {
                        let phase = if step <= mean_steps { "mean" } else { "bridge" };
                        eprintln!(
                            "step {step}/{} [{phase}] loss {last_loss:.5} lr {lr:.2e} {dt:.2} s/step eta {:.1} min",
                            spec.steps,
                            dt * (spec.steps - step) as f64 / 60.0
                        );
                    }
                    (win_loss, win_n, win_t) = (0.0, 0, Instant::now());
                }
                if step % rep.ckpt_every.max(1) == 0 || step == stop {
                    seconds += seg_start.elapsed().as_secs_f64();
                    seg_start = Instant::now();
                    save(&spec, &net, &mean, &ibmd, step, seconds)?;
                }
            }
            Ok(())
        });
        bar.finish_and_clear();
        result?;
    }

    // Export the EMA weights as the package.
    let mut extra = BTreeMap::new();
    extra.insert("train.spec".to_string(), serde_json::to_string(&spec).unwrap_or_default());
    extra.insert("train.steps".to_string(), step.to_string());
    extra.insert("train.seconds".to_string(), format!("{seconds:.0}"));
    extra.insert("train.command".to_string(), command.to_string());
    extra.extend(init_record);
    let mw = match &mean {
        Some(m) => Some((m.cfg.clone(), m.ema_weights()?)),
        None => None,
    };
    let package = write_package(out, &net.cfg, &net.ema_weights()?, &meta, mw.as_ref().map(|(c, w)| (c, w)), &extra)?;
    Ok(Summary { step, seconds, package, last_loss, steps: spec.steps })
}

/// The weights of the package `path` to fine-tune from, after checking that it is the run's
/// family, parameterization, family parameters, task geometry and U-Net; and its training record
/// as `train.init.*` (path, steps, seconds, command, and its own `train.init.*` renamed one level
/// down, so a chain of fine-tunings stays traceable).
fn init_weights(path: &Path, meta: &PackageMeta, cfg: &UNetConfig) -> Result<(Weights, BTreeMap<String, String>)> {
    let (icfg, w, imeta) = read_package(path)?;
    let differs =
        |what: &str, a: String, b: String| Error::Config(format!("--init {}: its {what} is {a}, this run's is {b}", path.display()));
    if icfg != *cfg {
        return Err(differs("U-Net", icfg.to_json(), cfg.to_json()));
    }
    if imeta.mean_network.is_some() {
        return Err(Error::Config(format!("--init {}: packages with a mean network cannot be fine-tuned yet", path.display())));
    }
    let pairs = [
        ("family", imeta.family.clone(), meta.family.clone()),
        ("schedule", imeta.schedule.clone(), meta.schedule.clone()),
        ("parameterization", imeta.parameterization.clone(), meta.parameterization.clone()),
        (
            "family parameters",
            Value::Object(imeta.family_params.clone()).to_string(),
            Value::Object(meta.family_params.clone()).to_string(),
        ),
        ("value range", format!("{:?}", imeta.value_range), format!("{:?}", meta.value_range)),
        ("SR factor", imeta.sr_scale.to_string(), meta.sr_scale.to_string()),
        ("channels", imeta.channels.to_string(), meta.channels.to_string()),
    ];
    for (what, a, b) in pairs {
        if a != b {
            return Err(differs(what, a, b));
        }
    }
    // A pre-pass package's network was trained on pre-passed inputs: a run that drops the pre-pass
    // would fine-tune it on inputs it never saw and ship a package the SDK runs without it. The
    // other way (a plain package as the start of a pre-pass model) is how deblur stage 4 began.
    if imeta.prepass.is_some() && imeta.prepass != meta.prepass {
        let show =
            |p: &Option<bridge::prepass::Prepass>| p.as_ref().map_or("none (pass --prepass to keep it)".to_string(), |p| p.to_json());
        return Err(differs("pre-pass", show(&imeta.prepass), show(&meta.prepass)));
    }
    let mut record = BTreeMap::new();
    record.insert("train.init".to_string(), path.display().to_string());
    for (k, v) in &imeta.other {
        if let Some(rest) = k.strip_prefix("train.") {
            record.insert(format!("train.init.{rest}"), v.clone());
        }
    }
    Ok((w, record))
}

/// Write the package of a checkpoint (e.g. while a run is still going on), optionally with
/// another default sampler and NFE than the training spec's and the channel ensemble on (all
/// chosen after `bridge eval`).
pub fn export_checkpoint(ckpt: &Path, out: &Path, sampler: Option<&str>, nfe: Option<usize>, channel_ensemble: bool) -> Result<PathBuf> {
    let ck = Weights::load(ckpt)?;
    let mut spec: Spec = serde_json::from_str(ck.meta("spec").unwrap_or("{}"))
        .map_err(|e| Error::Format { path: ckpt.into(), msg: format!("spec: {e}") })?;
    if let Some(s) = sampler {
        spec.sampler = Some(s.to_string());
    }
    if nfe.is_some() {
        spec.nfe = nfe;
    }
    let (mut meta, cfg) = spec_meta(&spec)?;
    meta.channel_ensemble = channel_ensemble;
    let pick = |name: &str, cfg: &UNetConfig| -> Result<Weights> {
        let pre = format!("{name}.ema.");
        let mut w = Weights::new();
        for n in ck.names().filter(|n| n.starts_with(&pre)) {
            let t = ck.get(n).ok_or_else(|| Error::Weights(n.into()))?;
            w.insert(&n[pre.len()..], &t.shape, t.data.clone())?;
        }
        w.set_meta(crate::weights::CONFIG_KEY, &cfg.to_json());
        Ok(w)
    };
    let net = pick("net", &cfg)?;
    let mean = match (&spec.mean_unet, has_mean_network(&meta) && spec.family != "ibmd") {
        (Some(mc), true) => Some((mc.clone(), pick("mean", mc)?)),
        _ => None,
    };
    let mut extra = BTreeMap::new();
    extra.insert("train.spec".to_string(), serde_json::to_string(&spec).unwrap_or_default());
    extra.insert("train.steps".to_string(), ck.meta("step").unwrap_or("0").to_string());
    extra.insert("train.seconds".to_string(), ck.meta("seconds").unwrap_or("0").to_string());
    if let Some(r) = ck.meta("init_record").and_then(|r| serde_json::from_str::<BTreeMap<String, String>>(r).ok()) {
        extra.extend(r);
    }
    if let Some(c) = ck.meta("command") {
        extra.insert("train.command".to_string(), c.to_string());
    }
    write_package(out, &cfg, &net, &meta, mean.as_ref().map(|(c, w)| (c, w)), &extra)
}

/// The values of a `[B,…]` tensor (tests).
pub fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    values(t)
}

#[cfg(test)]
mod tests {
    use super::budget_steps;

    #[test]
    fn time_budget_steps() {
        // 100 s budget, 10 s spent, 0.1 s/step: 90 s · 0.97 / 0.1 ≈ 873 more steps (floor of a
        // value a rounding error below or above 873).
        assert!((972..=973).contains(&budget_steps(100.0, 10.0, 0.1, 100, 10_000)));
        // Never above the requested total, never below what is done.
        assert_eq!(budget_steps(1e9, 0.0, 0.1, 100, 2000), 2000);
        assert_eq!(budget_steps(10.0, 50.0, 0.1, 100, 2000), 100);
        // No usable rate: keep the total.
        assert_eq!(budget_steps(10.0, 0.0, 0.0, 100, 2000), 2000);
        assert_eq!(budget_steps(f64::INFINITY, 0.0, 0.1, 100, 2000), 2000);
        assert_eq!(budget_steps(1e300, 0.0, 1e-300, 0, u64::MAX), u64::MAX);
    }
}
