//! [`Restorer`]: a model package plus a sampler, turning degraded images into restored ones.
//!
//! ```no_run
//! use bridge::image::{Image, ImageRef};
//! use bridge::restorer::Restorer;
//!
//! # fn main() -> bridge::Result<()> {
//! let mut restorer = Restorer::builder("models/sr4x.onnx")
//!     .threads(2)
//!     .nfe(10)
//!     .seed(7)
//!     .on_progress(|p| {
//!         eprintln!("{:.0}%", 100.0 * p.fraction());
//!         true // false cancels
//!     })
//!     .build()?;
//! let (w, h) = (64, 48);
//! let pixels = vec![128u8; w * h * 3];
//! let out: Image = restorer.restore(&ImageRef::rgb8(&pixels, w, h)?)?;
//! assert_eq!(out.width(), w * restorer.package().sr_scale);
//! # Ok(())
//! # }
//! ```
//!
//! What `restore` does, in order: map pixel values to the model's range and channel order;
//! upsample by the package's SR factor (bicubic); pad bottom/right by reflection to the spatial
//! multiple (and to the graph's fixed size, if it has one); run the sampler on the whole frame
//! with counter-based noise, the network seeing overlapping tiles blended smoothly
//! ([`crate::tile`]); crop; map back (clamped to [0, 1], rounded for integer images).
//!
//! Same seed and settings → same output on every rerun, for any thread count and tile batch.
//! The tile size and overlap do change the output wherever a pixel's receptive field crosses
//! its tile: near seams for convolutional networks, nearly everywhere for networks with
//! attention or global pooling; only `tile(0)` is independent of tiling (`docs/performance.md`).
//!
//! **Device loop.** With [`RestorerBuilder::device_loop`] (default on for CUDA and TensorRT,
//! off on the CPU) a row sampler runs with the state on the network's device
//! ([`crate::runtime::device`]): same noise, same step arithmetic, no host round-trip between
//! steps. A tiled frame — any frame larger than a tile, and every frame of a fixed-shape
//! (TensorRT) graph — keeps the whole state on the device too; each network call cuts, runs
//! and blends the same tiles in the same batches and order as the host loop, so the output is
//! the host loop's. Anything else — Heun, DBIM orders 2–3, data-solver-2, residual-modulated
//! RDBM, generator noise, Rust networks — runs the host loop; [`Restorer::sampling_loop`] says
//! which loop the last restore used and why.

use crate::color_fix::ColorFix;
use crate::family::Family;
use crate::image::{Image, ImageRef, pad_reflect, round_up, upsample};
use crate::rng::PhiloxNoise;
use crate::runtime::conventions;
use crate::runtime::device::{DeviceLoop, SamplingLoop};
use crate::runtime::families::{build_family, default_sampler, parse_sampler};
use crate::runtime::model_package::{ModelPackage, check_mean_t_net};
use crate::runtime::package::PackageMeta;
use crate::runtime::{CancelToken, ExecutionProvider, OnnxDenoiser, SessionConfig};
use crate::sampler::{Model, Sampler, plan, sample};
use crate::tile::{TileConfig, TileLayout, TileProgress, TiledDenoiser};
use crate::{Denoiser, Error, Result, Tensor, TensorView};
use ndarray::s;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Default limit on output pixels (after super-resolution): 2²⁵ ≈ 33.5 M, which admits 8K UHD
/// (7680×4320). The sampler keeps a few full-frame `f32` tensors (≈ 400 MB each at the limit).
pub const DEFAULT_MAX_PIXELS: usize = 1 << 25;
/// Largest accepted width or height, in pixels.
pub const MAX_SIDE: usize = 1 << 16;
/// Default tile side when the package recommends none.
pub const DEFAULT_TILE: usize = 512;
/// Default overlap when the package recommends none.
pub const DEFAULT_OVERLAP: usize = 64;
/// Most tiles per network run ([`RestorerBuilder::tile_batch`]).
pub const MAX_TILE_BATCH: usize = 256;

/// Which part of a restore is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// NADB's mean network, once per image.
    MeanNetwork,
    /// The sampler's network calls.
    Sampling,
}

/// Progress of a restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Stage.
    pub stage: Stage,
    /// Network calls finished before this one (in this stage).
    pub call: usize,
    /// Network calls this stage expects (the NFE for sampling).
    pub calls: usize,
    /// Tiles of the current call finished.
    pub tile: usize,
    /// Tiles in the current call.
    pub tiles: usize,
    /// Whether a mean-network stage is part of this restore.
    pub has_mean: bool,
}

impl Progress {
    /// Fraction of the whole restore done, in [0, 1].
    pub fn fraction(&self) -> f64 {
        let tile = if self.tiles > 0 { self.tile as f64 / self.tiles as f64 } else { 0.0 };
        let extra = usize::from(self.has_mean);
        let done = match self.stage {
            Stage::MeanNetwork => tile,
            Stage::Sampling => extra as f64 + self.call as f64 + tile,
        };
        (done / (self.calls + extra).max(1) as f64).clamp(0.0, 1.0)
    }
}

/// A boxed progress callback (see [`RestorerBuilder::on_progress`]).
pub type ProgressFn = Box<dyn FnMut(&Progress) -> bool + Send>;

/// Knobs of a restore (the builder fills them from the package's defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct RestoreOptions {
    /// Sampler.
    pub sampler: Sampler,
    /// Network evaluations.
    pub nfe: usize,
    /// Noise seed.
    pub seed: u64,
    /// Tiling of network calls.
    pub tile: TileConfig,
    /// Limit on output pixels.
    pub max_pixels: usize,
    /// Colour correction of the output towards the input ([`ColorFix`]; default off).
    pub color_fix: ColorFix,
    /// Average every network call over the three cyclic shifts of the colour channels
    /// ([`crate::ChannelCycle`]): no tint on grey input, at three times the network time.
    /// Default off.
    pub channel_ensemble: bool,
}

/// Builds a [`Restorer`] from a model package (see the module docs for an example).
pub struct RestorerBuilder {
    model: PathBuf,
    /// The package's bytes, for [`Restorer::builder_from_memory`] (`model` is then a label).
    model_bytes: Option<Arc<[u8]>>,
    /// A package already loaded ([`Restorer::builder_from_package`]).
    package: Option<Arc<ModelPackage>>,
    session: SessionConfig,
    sampler: Option<String>,
    eta: Option<f64>,
    churn: Option<f64>,
    nfe: Option<usize>,
    seed: u64,
    tile: Option<usize>,
    overlap: Option<usize>,
    trim: Option<usize>,
    tile_batch: Option<usize>,
    fixed_tile_shape: Option<bool>,
    max_pixels: usize,
    color_fix: ColorFix,
    channel_ensemble: Option<bool>,
    family: Option<Box<dyn Family>>,
    progress: Option<ProgressFn>,
    device_loop: Option<bool>,
    class_label: Option<i64>,
}

impl RestorerBuilder {
    /// Execution provider (default CPU).
    pub fn execution_provider(mut self, ep: ExecutionProvider) -> Self {
        self.session.provider = ep;
        self
    }
    /// Run on the CPU if the requested provider cannot be used (default: fail).
    pub fn cpu_fallback(mut self, allow: bool) -> Self {
        self.session.cpu_fallback = allow;
        self
    }
    /// Threads per restore (default 0: ONNX Runtime's one per physical core, and the host step's
    /// one per logical CPU): ONNX Runtime's intra-op threads, and the most threads the host
    /// sampler step uses between network calls (1: the calling thread alone). The output does
    /// not depend on it.
    pub fn threads(mut self, n: usize) -> Self {
        self.session.threads = n;
        self
    }
    /// Let ONNX Runtime's idle threads spin between runs (default off; see
    /// [`SessionConfig::spin`]).
    pub fn ort_spinning(mut self, on: bool) -> Self {
        self.session.spin = on;
        self
    }
    /// Explicit path of `libonnxruntime` (file or folder).
    pub fn onnxruntime_library(mut self, path: impl Into<PathBuf>) -> Self {
        self.session.library = Some(path.into());
        self
    }
    /// Sampler by name (default: the package's); see [`crate::runtime::parse_sampler`].
    pub fn sampler(mut self, name: impl Into<String>) -> Self {
        self.sampler = Some(name.into());
        self
    }
    /// η of DBIM / implicit samplers.
    pub fn eta(mut self, eta: f64) -> Self {
        self.eta = Some(eta);
        self
    }
    /// Churn of the Heun sampler.
    pub fn churn(mut self, churn: f64) -> Self {
        self.churn = Some(churn);
        self
    }
    /// Network evaluations (default: the package's).
    pub fn nfe(mut self, nfe: usize) -> Self {
        self.nfe = Some(nfe);
        self
    }
    /// Noise seed (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Tile side in pixels; 0 disables tiling (default: the package's, else 512).
    pub fn tile(mut self, size: usize) -> Self {
        self.tile = Some(size);
        self
    }
    /// Tile overlap in pixels (default: the package's, else 64, at most a quarter of the tile).
    pub fn tile_overlap(mut self, overlap: usize) -> Self {
        self.overlap = Some(overlap);
        self
    }
    /// Pixels dropped at inner tile edges (default: the package's receptive field, else a
    /// quarter of the overlap).
    pub fn tile_trim(mut self, trim: usize) -> Self {
        self.trim = Some(trim);
        self
    }
    /// Tiles per network run (default 1 on CPU, 8 on GPU providers; at most
    /// [`MAX_TILE_BATCH`]).
    pub fn tile_batch(mut self, n: usize) -> Self {
        self.tile_batch = Some(n);
        self
    }
    /// Run every network call on full batches of full-size tiles, padding small frames up to a
    /// tile, so the network sees a single input shape (default: on for TensorRT, whose engines
    /// are built per shape; off otherwise).
    pub fn fixed_tile_shape(mut self, on: bool) -> Self {
        self.fixed_tile_shape = Some(on);
        self
    }
    /// Limit on output pixels (default [`DEFAULT_MAX_PIXELS`]).
    pub fn max_pixels(mut self, n: usize) -> Self {
        self.max_pixels = n;
        self
    }
    /// Average every network call over the three cyclic shifts of the colour channels
    /// ([`crate::ChannelCycle`]): the network's channel asymmetry, which shows as a tint, cancels
    /// (a grey input stays grey) at three times the network time. Runs on the host sampling
    /// loop. Default: the package's (`bridge.channel_ensemble`, chosen on validation photos like
    /// its sampler and NFE), else off; `false` turns it off for a package that asks for it, and
    /// `None` goes back to the package's (what a front end with an unset option passes).
    pub fn channel_ensemble(mut self, on: impl Into<Option<bool>>) -> Self {
        self.channel_ensemble = on.into();
        self
    }
    /// Correct the output's colours towards the input's (default [`ColorFix::Off`]): the
    /// output keeps its detail and takes the input's coarsest wavelet band
    /// ([`crate::color_fix`]). A remedy for a model's colour cast, at the price of any colour
    /// change the model should make.
    pub fn color_fix(mut self, fix: ColorFix) -> Self {
        self.color_fix = fix;
        self
    }
    /// Use this family instead of the one the package names (research / custom families).
    pub fn family(mut self, family: Box<dyn Family>) -> Self {
        self.family = Some(family);
        self
    }
    /// Keep the sampling loop on the network's device (module docs): default on when the
    /// network runs on CUDA or TensorRT, off on the CPU (where it is correct but not faster:
    /// `docs/performance.md`).
    pub fn device_loop(mut self, on: bool) -> Self {
        self.device_loop = Some(on);
        self
    }
    /// The class label for a class-conditional network (a graph input with role `class`, e.g.
    /// I2SB's ImageNet checkpoints); overrides the package's `bridge.class_label`. A label for
    /// a network without a class input is an error at [`RestorerBuilder::build`].
    pub fn class_label(mut self, label: i64) -> Self {
        self.class_label = Some(label);
        self
    }
    /// Progress callback, called after every batch of tiles; return `false` to cancel.
    pub fn on_progress(mut self, f: impl FnMut(&Progress) -> bool + Send + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Load the package (and NADB's mean network) once and check everything
    /// ([`ModelPackage`]), then create the sessions from the package's bytes.
    pub fn build(self) -> Result<Restorer> {
        // With a caller's family the package's own family is not required to build.
        let own_family = self.family.is_none();
        let pkg = match (self.package, self.model_bytes) {
            (Some(p), _) => p,
            (None, Some(b)) => Arc::new(ModelPackage::open(self.model.display().to_string(), None, b, None, own_family)?),
            (None, None) => Arc::new(ModelPackage::open_file(&self.model, own_family)?),
        };
        let meta = pkg.meta().clone();
        let mut net = OnnxDenoiser::from_package(&pkg, &self.session)?;
        let plan = net.plan();
        let cancel = CancelToken::new();
        net.attach_cancel(&cancel);
        net.set_class_label(conventions::class_label(&meta, self.class_label)?);
        let mean = match (&meta.mean_network, pkg.mean_network()) {
            (Some(m), Some(file)) => {
                let shown = file.path.display().to_string();
                let mut d =
                    OnnxDenoiser::from_memory_with_io(&file.bytes, &shown, &m.io, meta.channels, meta.spatial_multiple, &self.session)?;
                d.set_time_input(meta.time_input);
                d.attach_cancel(&cancel);
                Some(MeanNet { plan_hw: d.plan().fixed_hw, net: Box::new(d), t_net: m.t_net })
            }
            _ => None,
        };
        let family = match self.family {
            Some(f) => f,
            None => build_family(&meta)?,
        };
        conventions::check_time_input(&meta, family.as_ref(), pkg.label())?;
        check_mean_t_net(&meta, family.as_ref(), pkg.label())?;
        let sampler = match &self.sampler {
            Some(name) => parse_sampler(name, self.eta, self.churn)?,
            None if self.eta.is_some() || self.churn.is_some() => parse_sampler(&meta.sampler, self.eta, self.churn)?,
            None => default_sampler(&meta)?,
        };
        conventions::check_noise_input(plan.noise_channels, &sampler, family.as_ref())?;
        let (provider, fallback) = (net.provider(), net.fallback_reason().map(str::to_string));
        let device_loop = self.device_loop.unwrap_or(provider != "cpu");
        let batch = self.tile_batch.unwrap_or(if net.provider() != "cpu" { 8 } else { 1 });
        let fixed_shape = self.fixed_tile_shape.unwrap_or(net.provider() == "tensorrt");
        let options = RestoreOptions {
            sampler,
            nfe: self.nfe.unwrap_or(meta.nfe),
            seed: self.seed,
            tile: TileConfig { fixed_shape, ..tile_config(&meta, self.tile, self.overlap, self.trim, batch)? },
            max_pixels: self.max_pixels,
            color_fix: self.color_fix,
            channel_ensemble: self.channel_ensemble.unwrap_or(meta.channel_ensemble),
        };
        let mut r = Restorer::assemble(meta, family, Network::Onnx(Box::new(net)), options)?;
        r.device = Some(DeviceLoop::new(&self.session));
        r.threads = self.session.threads;
        r.device_loop = device_loop;
        r.fixed_hw = plan.fixed_hw;
        r.gen_noise = plan.noise_channels;
        r.mean = mean;
        r.cancel = cancel;
        r.progress = self.progress;
        r.model_path = pkg.path().map(Path::to_path_buf);
        r.provider = provider;
        r.fallback_reason = fallback;
        Ok(r)
    }
}

/// The tiling a restorer uses, from the package's hints and the caller's overrides.
fn tile_config(meta: &PackageMeta, size: Option<usize>, overlap: Option<usize>, trim: Option<usize>, batch: usize) -> Result<TileConfig> {
    let g = meta.spatial_multiple;
    if batch > MAX_TILE_BATCH {
        return Err(Error::param("tile batch", format!("{batch} is more than {MAX_TILE_BATCH} tiles per network run")));
    }
    let size = size.unwrap_or(meta.tile.map_or(DEFAULT_TILE, |t| t.size));
    if size == 0 {
        return Ok(TileConfig { size: (0, 0), overlap: 0, trim: 0, batch: batch.max(1), align: g, fixed_shape: false });
    }
    // A tile is a whole number of spatial multiples. No frame side exceeds MAX_SIDE, so a
    // larger tile is the same as a tile of MAX_SIDE (one tile per frame), and rounding it up
    // cannot overflow.
    let size = round_up(size.min(MAX_SIDE), g);
    let overlap = match overlap {
        Some(o) => {
            if o > size / 2 {
                return Err(Error::param("tile overlap", format!("{o} is more than half the tile size {size}")));
            }
            o
        }
        None => meta.tile.map_or(DEFAULT_OVERLAP, |t| t.overlap).min(size / 4),
    };
    let trim = trim.or(meta.receptive_field).unwrap_or(overlap / 4);
    Ok(TileConfig { size: (size, size), overlap, trim, batch: batch.max(1), align: g, fixed_shape: false })
}

/// The bridge network: an ONNX session (which can also run the device loop) or any Rust
/// denoiser.
enum Network {
    Onnx(Box<OnnxDenoiser>),
    Other(Box<dyn Denoiser + Send>),
}

impl Network {
    fn denoiser(&mut self) -> &mut dyn Denoiser {
        match self {
            Network::Onnx(n) => n.as_mut(),
            Network::Other(b) => b.as_mut(),
        }
    }
}

struct MeanNet {
    net: Box<dyn Denoiser + Send>,
    t_net: Option<f64>,
    plan_hw: Option<(usize, usize)>,
}

/// Restores images with one model package (see the module docs).
///
/// A `Restorer` is `Send` but not `Sync`: one restore at a time per handle (ONNX Runtime's
/// sessions need exclusive access while running). Use [`Restorer::cancel_token`] to cancel
/// from another thread.
pub struct Restorer {
    meta: PackageMeta,
    family: Box<dyn Family>,
    net: Network,
    mean: Option<MeanNet>,
    options: RestoreOptions,
    fixed_hw: Option<(usize, usize)>,
    /// A distilled generator's noise channels (0: none).
    gen_noise: usize,
    cancel: CancelToken,
    progress: Option<ProgressFn>,
    model_path: Option<PathBuf>,
    provider: &'static str,
    fallback_reason: Option<String>,
    device: Option<DeviceLoop>,
    device_loop: bool,
    last_loop: SamplingLoop,
    /// The builder's `threads` (0: no limit): also the most threads the host step may use.
    threads: usize,
}

impl std::fmt::Debug for Restorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restorer")
            .field("model", &self.model_path)
            .field("family", &self.family.name())
            .field("options", &self.options)
            .field("mean_network", &self.mean.is_some())
            .finish_non_exhaustive()
    }
}

impl Restorer {
    /// Start building a restorer for the package at `model`.
    pub fn builder(model: impl AsRef<Path>) -> RestorerBuilder {
        RestorerBuilder {
            model: model.as_ref().to_path_buf(),
            model_bytes: None,
            package: None,
            session: SessionConfig::default(),
            sampler: None,
            eta: None,
            churn: None,
            nfe: None,
            seed: 0,
            tile: None,
            overlap: None,
            trim: None,
            tile_batch: None,
            fixed_tile_shape: None,
            max_pixels: DEFAULT_MAX_PIXELS,
            color_fix: ColorFix::Off,
            channel_ensemble: None,
            family: None,
            progress: None,
            device_loop: None,
            class_label: None,
        }
    }

    /// Start building a restorer for a package held in memory; `label` names it in errors.
    /// Packages with a mean network (NADB) need the file next to them: load those from a path.
    pub fn builder_from_memory(bytes: impl Into<Arc<[u8]>>, label: &str) -> RestorerBuilder {
        RestorerBuilder { model_bytes: Some(bytes.into()), ..Self::builder(label) }
    }

    /// Start building a restorer for a package already loaded and validated: its sessions are
    /// built from the package's bytes (the file is not read again), so many restorers share
    /// one copy.
    pub fn builder_from_package(package: Arc<ModelPackage>) -> RestorerBuilder {
        let label = package.label().to_string();
        RestorerBuilder { package: Some(package), ..Self::builder(label) }
    }

    /// A restorer around any [`Denoiser`] (a Rust network, a test oracle) with the package
    /// description `meta` and a family. No ONNX Runtime involved.
    pub fn from_parts(meta: PackageMeta, family: Box<dyn Family>, net: Box<dyn Denoiser + Send>, options: RestoreOptions) -> Result<Self> {
        Self::assemble(meta, family, Network::Other(net), options)
    }

    fn assemble(meta: PackageMeta, family: Box<dyn Family>, net: Network, options: RestoreOptions) -> Result<Self> {
        if options.nfe == 0 {
            return Err(Error::nfe(0, "at least one network evaluation is needed"));
        }
        // The sampler, NFE and family must work together: refused here (a dry run of the
        // coefficient tables on a 1×1 image), not at the first restore.
        crate::runtime::model_package::dry_run(family.as_ref(), &options.sampler, options.nfe, meta.channels)?;
        Ok(Restorer {
            meta,
            family,
            net,
            mean: None,
            options,
            fixed_hw: None,
            gen_noise: 0,
            cancel: CancelToken::new(),
            progress: None,
            model_path: None,
            provider: "rust",
            fallback_reason: None,
            device: None,
            device_loop: false,
            last_loop: SamplingLoop::None,
            threads: 0,
        })
    }

    /// The package description.
    pub fn package(&self) -> &PackageMeta {
        &self.meta
    }
    /// The family in use.
    pub fn family(&self) -> &dyn Family {
        self.family.as_ref()
    }
    /// Current options.
    pub fn options(&self) -> &RestoreOptions {
        &self.options
    }
    /// Change options (sampler, NFE, seed, tiling) between restores.
    pub fn options_mut(&mut self) -> &mut RestoreOptions {
        &mut self.options
    }
    /// Set the seed for the next restores.
    pub fn set_seed(&mut self, seed: u64) {
        self.options.seed = seed;
    }
    /// Replace the progress callback.
    pub fn set_progress(&mut self, f: Option<ProgressFn>) {
        self.progress = f;
    }
    /// A token that cancels the running (or next) restore from any thread.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }
    /// The execution provider the network runs on (`"cpu"`, `"cuda"`, `"tensorrt"`; `"rust"`
    /// for [`Restorer::from_parts`]).
    pub fn provider(&self) -> &'static str {
        self.provider
    }
    /// Why the requested provider is not in use, after a permitted CPU fallback.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }
    /// Turn the device loop on or off for the next restores (see [`RestorerBuilder::device_loop`]).
    pub fn set_device_loop(&mut self, on: bool) {
        self.device_loop = on;
    }
    /// Whether the device loop is enabled.
    pub fn device_loop(&self) -> bool {
        self.device_loop
    }
    /// Which sampling loop the last restore used (and why not the device loop).
    pub fn sampling_loop(&self) -> SamplingLoop {
        self.last_loop
    }
    /// The package file, if loaded from one.
    pub fn model_path(&self) -> Option<&Path> {
        self.model_path.as_deref()
    }

    /// Restore an RGB image; the output has the input's sample type and is `sr_scale` times
    /// larger.
    pub fn restore(&mut self, image: &ImageRef<'_>) -> Result<Image> {
        if self.meta.channels != 3 {
            return Err(Error::Image(format!(
                "this package has {} channel(s); restore() takes RGB (use restore_tensor)",
                self.meta.channels
            )));
        }
        self.check_size(image.width(), image.height())?;
        let x = image.to_tensor(self.meta.value_range, self.meta.channel_order)?;
        let out = self.restore_tensor(x.view())?;
        Image::from_tensor(out.view(), self.meta.value_range, self.meta.channel_order, image.sample_type())
    }

    /// Restore a planar RGB image `[1, 3, H, W]` with values in [0, 1] (RGB order, whatever the
    /// model's); returns `[1, 3, s·H, s·W]` clamped to [0, 1]. This is the form the C ABI uses.
    pub fn restore_rgb(&mut self, rgb: TensorView<'_>) -> Result<Tensor> {
        let (b, c, h, w) = rgb.dim();
        if b != 1 || c != 3 || self.meta.channels != 3 {
            return Err(Error::shape("planar RGB image", &[1, 3, h, w], rgb.shape()));
        }
        self.check_size(w, h)?;
        if rgb.iter().any(|v| !v.is_finite()) {
            return Err(Error::Image("input contains NaN or Inf".into()));
        }
        let (lo, hi) = (self.meta.value_range.0 as f32, self.meta.value_range.1 as f32);
        let bgr = self.meta.channel_order == crate::runtime::ChannelOrder::Bgr;
        // Range mapping and channel order in one fallible copy (a reversed view, read in
        // order, is the BGR tensor).
        let mut src = rgb;
        if bgr {
            src.invert_axis(ndarray::Axis(1));
        }
        let x = crate::alloc::try_map(src, |&v| lo + (hi - lo) * v, "the model-range image")?;
        let mut out = self.restore_tensor(x.view())?;
        drop(x);
        // Back to [0, 1] and RGB in place: no second output-sized buffer.
        out.mapv_inplace(|v| ((v - lo) / (hi - lo)).clamp(0.0, 1.0));
        if bgr {
            let (mut b, mut r) = out.multi_slice_mut((s![.., 0, .., ..], s![.., 2, .., ..]));
            ndarray::Zip::from(&mut b).and(&mut r).for_each(std::mem::swap);
        }
        if !out.is_standard_layout() {
            out = crate::alloc::try_copy(out.view(), "the restored image")?;
        }
        Ok(out)
    }

    /// Check a `w`×`h` input against this restorer's limits ([`MAX_SIDE`], `max_pixels`) without
    /// allocating anything: callers that convert a frame first (the C ABI) run this before the
    /// conversion so an oversized frame is refused before its buffers are allocated.
    pub fn check_size(&self, w: usize, h: usize) -> Result<()> {
        let s = self.meta.sr_scale;
        if w == 0 || h == 0 {
            return Err(Error::Image(format!("empty image ({w}x{h})")));
        }
        let (ow, oh) = (w.saturating_mul(s), h.saturating_mul(s));
        if ow > MAX_SIDE || oh > MAX_SIDE {
            return Err(Error::Image(format!("output {ow}x{oh} exceeds the largest side {MAX_SIDE}")));
        }
        if ow.saturating_mul(oh) > self.options.max_pixels {
            return Err(Error::Image(format!(
                "output {ow}x{oh} = {} pixels exceeds the limit of {} (RestorerBuilder::max_pixels)",
                ow * oh,
                self.options.max_pixels
            )));
        }
        Ok(())
    }

    /// Restore a tensor already in the model's range and channel order, `[B, C, H, W]`:
    /// SR upsampling, padding, sampling, cropping. Returns `[B, C, s·H, s·W]` (unclamped).
    pub fn restore_tensor(&mut self, x: TensorView<'_>) -> Result<Tensor> {
        crate::pool::with_thread_limit(self.threads, || self.restore_tensor_limited(x))
    }

    fn restore_tensor_limited(&mut self, x: TensorView<'_>) -> Result<Tensor> {
        let (b, c, h, w) = x.dim();
        if c != self.meta.channels || b == 0 {
            return Err(Error::shape("degraded image", &[b.max(1), self.meta.channels, h, w], x.shape()));
        }
        self.check_size(w, h)?;
        if x.iter().any(|v| !v.is_finite()) {
            return Err(Error::Image("input contains NaN or Inf".into()));
        }
        self.cancel.reset();
        let s = self.meta.sr_scale;
        // Copies only where something changes (SR, pre-pass, padding, cropping). The pre-pass
        // (only with `sr_scale` 1, checked at load) sees the whole frame: the same for every tile.
        let up: ndarray::CowArray<'_, f32, ndarray::Ix4> = match &self.meta.prepass {
            _ if s > 1 => upsample(x, s, self.meta.sr_upsample)?.into(),
            Some(p) => p.apply_batch(x, self.meta.value_range)?.into(),
            None => x.into(),
        };
        let (oh, ow) = (h * s, w * s);
        let g = self.meta.spatial_multiple;
        let (mut ph, mut pw) = (round_up(oh, g), round_up(ow, g));
        let fixed = self.fixed_hw.or(self.mean.as_ref().and_then(|m| m.plan_hw));
        let mut tile = self.options.tile;
        if let Some((fh, fw)) = fixed {
            // A fixed-shape graph: tiles are exactly its size; small frames are padded up to it.
            ph = ph.max(fh);
            pw = pw.max(fw);
            tile.size = (fh, fw);
            if 2 * tile.overlap > fh.min(fw) {
                tile.overlap = fh.min(fw) / 4;
            }
        } else if tile.fixed_shape && tile.size.0 > 0 && tile.size.1 > 0 {
            // One network input shape: frames smaller than a tile are padded up to it.
            ph = ph.max(tile.size.0);
            pw = pw.max(tile.size.1);
        }
        let cond: ndarray::CowArray<'_, f32, ndarray::Ix4> = if (ph, pw) != (oh, ow) { pad_reflect(up.view(), ph, pw)?.into() } else { up };
        let opts = self.options.clone();
        let has_mean = self.mean.is_some();
        let Restorer { family, net, mean, cancel, progress, device, device_loop, last_loop, gen_noise, .. } = self;
        let mut report = |stage: Stage, calls: usize, p: TileProgress| -> bool {
            match progress.as_mut() {
                Some(f) => f(&Progress { stage, call: p.call, calls, tile: p.done, tiles: p.total, has_mean }),
                None => true,
            }
        };
        let x_end = match mean.as_mut() {
            None => None,
            Some(m) => {
                let mut cb = |p: TileProgress| report(Stage::MeanNetwork, 1, p);
                let mut tiled = TiledDenoiser::new(m.net.as_mut(), tile).with_cancel(cancel.clone()).with_progress(&mut cb);
                // The family's own mean-network call where it defines one (NADB: noise_levels[1],
                // as `family::nadb::endpoint`), else the package's time value (checked at build).
                let t_net = match (family.mean_network_call(), m.t_net) {
                    (Some(c), _) => c.t_net,
                    (None, Some(t)) => t,
                    (None, None) => return Err(Error::Denoiser("mean network without a time value".into())),
                };
                let e = tiled.eval(cond.view(), cond.view(), t_net)?;
                if e.shape() != cond.shape() {
                    return Err(Error::shape("mean network output", cond.shape(), e.shape()));
                }
                if !crate::step::all_finite(&e) {
                    return Err(Error::NonFinite { call: 0, t_net });
                }
                Some(e)
            }
        };
        let x_end = match &x_end {
            Some(e) => e.view(),
            None => cond.view(),
        };
        let mut cb = |p: TileProgress| report(Stage::Sampling, opts.nfe, p);
        let mut noise = PhiloxNoise::new(opts.seed);
        // The device loop takes a row sampler on an ONNX network, whole frame or tiled as the
        // host loop tiles it.
        let route = match (&*net, device.as_ref()) {
            _ if !*device_loop => Err("device loop off"),
            _ if opts.channel_ensemble => Err("the channel ensemble runs on the host loop"),
            (Network::Onnx(n), Some(_)) => match TileLayout::new(ph, pw, &tile) {
                Ok(l) => match DeviceLoop::unsupported_tiled(n, x_end.shape(), &l, &tile) {
                    Some(why) => Err(why),
                    None => match plan::plan(family.as_ref(), &opts.sampler, opts.nfe, false) {
                        Ok(Some(p)) => match p.host_only() {
                            Some(why) => Err(why),
                            None => Ok(p),
                        },
                        Ok(None) => Err("the sampler is not one row per step"),
                        // The host loop returns the sampler's error.
                        Err(_) => Err("the sampler rejects its parameters"),
                    },
                },
                // The host loop returns the tiling error.
                Err(_) => Err("the tiling is invalid"),
            },
            _ => Err("not an ONNX network"),
        };
        let (out, calls) = match (route, net, device.as_mut()) {
            (Ok(p), Network::Onnx(n), Some(dev)) => {
                *last_loop = SamplingLoop::Device;
                (dev.sample_tiled(n, &p, x_end, cond.view(), &mut noise, &tile, Some(&mut cb))?, p.calls())
            }
            (route, net, _) => {
                *last_loop = SamplingLoop::Host(route.err().unwrap_or("device loop unavailable"));
                let mut cycle;
                let inner: &mut dyn Denoiser = if opts.channel_ensemble {
                    cycle = crate::ChannelCycle(net.denoiser());
                    &mut cycle
                } else {
                    net.denoiser()
                };
                let mut tiled = TiledDenoiser::new(inner, tile).with_cancel(cancel.clone()).with_progress(&mut cb);
                let mut model = Model::new(&mut tiled, family.as_ref(), x_end, cond.view())?.with_generator_noise(*gen_noise);
                let out = sample(&mut model, &opts.sampler, opts.nfe, &mut noise)?;
                (out, model.calls())
            }
        };
        if !crate::step::all_finite(&out) {
            return Err(Error::NonFinite { call: calls, t_net: f64::NAN });
        }
        // On the whole padded frame, after sampling: independent of tiles and loops.
        let mut out = out;
        opts.color_fix.apply(&mut out, cond.view())?;
        if (ph, pw) == (oh, ow) {
            return Ok(out);
        }
        crate::alloc::try_copy(out.slice(s![.., .., ..oh, ..ow]), "the cropped output")
    }
}

#[path = "restorer_device.rs"]
mod device_frames;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::package::TileHint;

    /// Options of the unit tests' RDBM restorers (x0 sampler, seed 0, no colour fix, no
    /// channel ensemble); tests change a field with struct update syntax.
    fn rdbm_options(nfe: usize, tile: TileConfig) -> RestoreOptions {
        RestoreOptions {
            sampler: Sampler::Rdbm { eps_form: false },
            nfe,
            seed: 0,
            tile,
            max_pixels: DEFAULT_MAX_PIXELS,
            color_fix: ColorFix::Off,
            channel_ensemble: false,
        }
    }

    #[test]
    fn tile_defaults_and_overrides() {
        let mut meta = PackageMeta::new("x", "s", "x0", "implicit", 4);
        meta.spatial_multiple = 8;
        let t = tile_config(&meta, None, None, None, 1).unwrap();
        assert_eq!((t.size, t.overlap, t.trim, t.align), ((512, 512), 64, 16, 8));
        meta.tile = Some(TileHint { size: 256, overlap: 32 });
        meta.receptive_field = Some(5);
        let t = tile_config(&meta, None, None, None, 2).unwrap();
        assert_eq!((t.size, t.overlap, t.trim, t.batch), ((256, 256), 32, 5, 2));
        // A user tile is rounded up to the multiple; a default overlap shrinks to fit.
        let t = tile_config(&meta, Some(30), None, None, 1).unwrap();
        assert_eq!((t.size, t.overlap), ((32, 32), 8));
        assert!(tile_config(&meta, Some(32), Some(17), None, 1).is_err());
        assert_eq!(tile_config(&meta, Some(0), None, None, 1).unwrap().size, (0, 0));
        // Huge values from callers: typed errors or clamps, no overflow (debug builds panic on
        // one, release builds would wrap).
        let t = tile_config(&meta, Some(usize::MAX), None, None, 1).unwrap();
        assert_eq!(t.size, (MAX_SIDE, MAX_SIDE));
        assert!(matches!(tile_config(&meta, Some(64), Some(usize::MAX), None, 1), Err(Error::InvalidParam { .. })));
        assert!(matches!(tile_config(&meta, Some(usize::MAX), Some(1 << 63), None, 1), Err(Error::InvalidParam { .. })));
        assert!(matches!(tile_config(&meta, None, None, None, usize::MAX), Err(Error::InvalidParam { .. })));
        assert!(tile_config(&meta, Some(64), Some(8), Some(usize::MAX), 1).is_ok());
    }

    /// A restorer moves to another thread; its cancel token is shared across threads.
    #[test]
    fn thread_bounds() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync>() {}
        send::<Restorer>();
        send_sync::<CancelToken>();
    }

    /// The whole pipeline with a Rust network (no ONNX Runtime): an x0-predicting RDBM
    /// oracle returns exactly `0.5·cond + 0.25`, for SR ×2 with padding, tiled or not.
    #[test]
    fn pipeline_with_rust_network() {
        use crate::family::rdbm::{Rdbm, RdbmParams};
        let mut meta = PackageMeta::new("rdbm", "cosine", "x0", "rdbm", 3);
        meta.sr_scale = 2;
        meta.spatial_multiple = 8;
        let (w, h) = (13, 7);
        let px: Vec<u8> = (0..w * h * 3).map(|i| (i * 37 % 256) as u8).collect();
        let img = ImageRef::rgb8(&px, w, h).unwrap();
        let x = img.to_tensor((-1.0, 1.0), crate::runtime::ChannelOrder::Rgb).unwrap();
        let want = upsample(x.view(), 2, crate::runtime::Upsample::Bicubic).unwrap().mapv(|c| 0.5 * c + 0.25);
        for tile in [(0, 0), (16, 16)] {
            let net = crate::FnDenoiser(|_x: TensorView<'_>, c: TensorView<'_>, _t: f64| Ok(c.mapv(|v| 0.5 * v + 0.25)));
            let options = rdbm_options(3, TileConfig { size: tile, overlap: 4, trim: 1, ..TileConfig::default() });
            let family = Box::new(Rdbm::new(RdbmParams::default()).unwrap());
            let mut r = Restorer::from_parts(meta.clone(), family, Box::new(net), options).unwrap();
            let out = r.restore_tensor(x.view()).unwrap();
            assert_eq!(out.shape(), &[1, 3, 2 * h, 2 * w]);
            let d = out.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert_eq!(d, 0.0, "tile {tile:?}");
            let u8s = r.restore(&img).unwrap();
            assert_eq!((u8s.width(), u8s.height()), (2 * w, 2 * h));
        }
    }

    /// `channel_ensemble`: a red-biased network tints a grey frame; with the ensemble every
    /// output channel is the mean of its three, tiled or not, and the call count triples.
    #[test]
    fn channel_ensemble_keeps_grey_grey() {
        use crate::family::rdbm::{Rdbm, RdbmParams};
        use ndarray::Axis;
        let meta = PackageMeta::new("rdbm", "cosine", "x0", "rdbm", 2);
        let x = Tensor::from_shape_fn((1, 3, 12, 10), |(_, _, y, x)| ((y * 7 + x * 3) % 11) as f32 / 11.0 - 0.5);
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let run = |ensemble: bool, tile: (usize, usize)| {
            let n = calls.clone();
            let net = crate::FnDenoiser(move |_x: TensorView<'_>, c: TensorView<'_>, _t: f64| {
                n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut y = c.mapv(|v| 0.5 * v);
                y.index_axis_mut(Axis(1), 0).mapv_inplace(|v| v + 0.1);
                Ok(y)
            });
            let options = RestoreOptions {
                channel_ensemble: ensemble,
                ..rdbm_options(2, TileConfig { size: tile, overlap: 2, trim: 1, ..TileConfig::default() })
            };
            let family = Box::new(Rdbm::new(RdbmParams::default()).unwrap());
            let mut r = Restorer::from_parts(meta.clone(), family, Box::new(net), options).unwrap();
            r.restore_tensor(x.view()).unwrap()
        };
        let spread = |t: &Tensor| (&t.index_axis(Axis(1), 0) - &t.index_axis(Axis(1), 2)).mapv(f32::abs).fold(0f32, |m, &v| m.max(v));
        let plain = run(false, (0, 0));
        let plain_calls = calls.swap(0, std::sync::atomic::Ordering::Relaxed);
        assert!(spread(&plain) > 0.05, "the plain network tints: {}", spread(&plain));
        let even = run(true, (0, 0));
        assert_eq!(calls.swap(0, std::sync::atomic::Ordering::Relaxed), 3 * plain_calls);
        assert!(spread(&even) < 1e-6, "{}", spread(&even));
        // The mean of the plain channels (the bias spread over three: +0.1/3 each).
        let d = (&even.index_axis(Axis(1), 1) - &plain.mean_axis(Axis(1)).unwrap()).mapv(f32::abs).fold(0f32, |m, &v| m.max(v));
        assert!(d < 1e-6, "{d}");
        assert_eq!(run(true, (8, 8)), even, "tiles change nothing");
    }

    /// `restore_rgb` maps to the model's range and channel order and back (now in place) as
    /// the plain composition `mapv` → reverse channels → `restore_tensor` → reverse → `mapv`.
    #[test]
    fn restore_rgb_range_and_channel_order() {
        use crate::family::rdbm::{Rdbm, RdbmParams};
        use crate::runtime::ChannelOrder;
        let rgb = Tensor::from_shape_fn((1, 3, 6, 9), |(_, c, y, x)| ((c * 29 + y * 7 + x * 3) % 17) as f32 / 16.0);
        for (order, range) in [(ChannelOrder::Rgb, (-1.0, 1.0)), (ChannelOrder::Bgr, (-1.0, 1.0)), (ChannelOrder::Bgr, (0.0, 1.0))] {
            let mut meta = PackageMeta::new("rdbm", "cosine", "x0", "rdbm", 3);
            meta.channel_order = order;
            meta.value_range = range;
            // Channel-dependent, so a channel mix-up shows.
            let net = |_x: TensorView<'_>, c: TensorView<'_>, _t: f64| {
                Ok(Tensor::from_shape_fn(c.raw_dim(), |(b, ch, y, x)| 0.5 * c[[b, ch, y, x]] + 0.1 * ch as f32 - 0.3))
            };
            let options = rdbm_options(2, TileConfig { size: (0, 0), ..TileConfig::default() });
            let family = Box::new(Rdbm::new(RdbmParams::default()).unwrap());
            let mut r = Restorer::from_parts(meta, family, Box::new(crate::FnDenoiser(net)), options).unwrap();
            let (lo, hi) = (range.0 as f32, range.1 as f32);
            let mut x = rgb.mapv(|v| lo + (hi - lo) * v);
            if order == ChannelOrder::Bgr {
                x.invert_axis(ndarray::Axis(1));
            }
            let mut want = r.restore_tensor(x.as_standard_layout().view()).unwrap();
            if order == ChannelOrder::Bgr {
                want.invert_axis(ndarray::Axis(1));
            }
            let want = want.mapv(|v| ((v - lo) / (hi - lo)).clamp(0.0, 1.0));
            let got = r.restore_rgb(rgb.view()).unwrap();
            assert!(got.is_standard_layout());
            assert_eq!(got, want, "{order:?} {range:?}");
        }
    }

    /// `color_fix`: a network that tints everything (+0.2 in channel 0) restores with most of the tint
    /// when it is off and without it when it is on — the same at every tile size.
    #[test]
    fn color_fix_removes_a_network_cast_at_every_tile_size() {
        use crate::family::rdbm::{Rdbm, RdbmParams};
        let meta = PackageMeta::new("rdbm", "cosine", "x0", "rdbm", 3);
        let x = Tensor::from_shape_fn((1, 3, 40, 36), |(_, c, y, x)| ((c * 13 + y * 5 + x * 3) % 23) as f32 / 11.0 - 1.0);
        let mean0 = |t: &Tensor| (&t.index_axis(ndarray::Axis(1), 0) - &x.index_axis(ndarray::Axis(1), 0)).mean().unwrap();
        let mut fixed = Vec::new();
        for (fix, tile) in [(ColorFix::Off, (0, 0)), (ColorFix::Wavelet { levels: 5 }, (0, 0)), (ColorFix::Wavelet { levels: 5 }, (16, 16))]
        {
            let net = |_x: TensorView<'_>, c: TensorView<'_>, _t: f64| {
                Ok(Tensor::from_shape_fn(c.raw_dim(), |(b, ch, y, x)| c[[b, ch, y, x]] + if ch == 0 { 0.2 } else { 0.0 }))
            };
            let options = RestoreOptions {
                color_fix: fix,
                ..rdbm_options(2, TileConfig { size: tile, overlap: 4, trim: 1, ..TileConfig::default() })
            };
            let family = Box::new(Rdbm::new(RdbmParams::default()).unwrap());
            let mut r = Restorer::from_parts(meta.clone(), family, Box::new(crate::FnDenoiser(net)), options).unwrap();
            let out = r.restore_tensor(x.view()).unwrap();
            match fix {
                ColorFix::Off => assert!(mean0(&out) > 0.15, "cast {}", mean0(&out)),
                _ => {
                    // Not exactly 0: clamped borders make the blur not quite mean-preserving.
                    assert!(mean0(&out).abs() < 2e-3, "cast {} left after the fix", mean0(&out));
                    fixed.push(out);
                }
            }
        }
        assert_eq!(fixed[0], fixed[1], "the colour fix depends on the tile size");
    }

    #[test]
    fn progress_fraction() {
        let p = Progress { stage: Stage::Sampling, call: 4, calls: 10, tile: 1, tiles: 2, has_mean: false };
        assert!((p.fraction() - 0.45).abs() < 1e-12);
        let p = Progress { stage: Stage::MeanNetwork, call: 0, calls: 10, tile: 2, tiles: 2, has_mean: true };
        assert!((p.fraction() - 1.0 / 11.0).abs() < 1e-12);
    }
}
