//! The element's properties: the restorer options of [`bridge::restorer::RestorerBuilder`].
//! They are read when the element starts (READY → PAUSED), so they can be changed in the NULL
//! and READY states only.

use bridge::restorer::{Restorer, RestorerBuilder};
use bridge::runtime::ExecutionProvider;
use gst::glib;
use gst::prelude::*;

/// Property values; `None` means "the package's default".
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub model: Option<String>,
    pub sampler: Option<String>,
    pub nfe: u32,
    pub seed: u64,
    pub threads: u32,
    pub tile_size: i32,
    pub tile_overlap: i32,
    pub device: String,
    pub cpu_fallback: bool,
    pub class_label: i64,
    pub eta: f64,
    pub onnxruntime_library: Option<String>,
    pub color_fix: u32,
    /// −1: the package's choice, 0 off, 1 on.
    pub channel_ensemble: i32,
}

impl Settings {
    pub fn new() -> Self {
        Settings {
            tile_size: -1,
            tile_overlap: -1,
            device: "cpu".into(),
            class_label: -1,
            eta: -1.0,
            channel_ensemble: -1,
            ..Default::default()
        }
    }

    /// The restorer builder for these settings (the model is checked by `build`).
    pub fn builder(&self, model: &str) -> bridge::Result<RestorerBuilder> {
        let mut b = Restorer::builder(model)
            .seed(self.seed)
            .threads(self.threads as usize)
            .execution_provider(ExecutionProvider::parse(&self.device)?)
            .cpu_fallback(self.cpu_fallback);
        if let Some(s) = &self.sampler {
            b = b.sampler(s.clone());
        }
        if self.nfe > 0 {
            b = b.nfe(self.nfe as usize);
        }
        if let Ok(t) = usize::try_from(self.tile_size) {
            b = b.tile(t);
        }
        if let Ok(o) = usize::try_from(self.tile_overlap) {
            b = b.tile_overlap(o);
        }
        if self.class_label >= 0 {
            b = b.class_label(self.class_label);
        }
        if self.eta >= 0.0 {
            b = b.eta(self.eta);
        }
        if let Some(lib) = &self.onnxruntime_library {
            b = b.onnxruntime_library(lib);
        }
        if self.color_fix > 0 {
            b = b.color_fix(bridge::color_fix::ColorFix::Wavelet { levels: self.color_fix });
        }
        // -1: the package's; the property's range keeps it to -1, 0 or 1.
        Ok(b.channel_ensemble((self.channel_ensemble >= 0).then_some(self.channel_ensemble == 1)))
    }
}

/// The property specs.
pub fn specs() -> Vec<glib::ParamSpec> {
    vec![
        glib::ParamSpecString::builder("model")
            .nick("Model")
            .blurb("Path of the model package (.onnx) to restore with")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("sampler")
            .nick("Sampler")
            .blurb("Sampler name (NULL: the package's default; see `bridge info MODEL`)")
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("nfe")
            .nick("NFE")
            .blurb("Network evaluations per frame (0: the package's default)")
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt64::builder("seed")
            .nick("Seed")
            .blurb("Noise seed (the same for every frame, so a still scene restores the same way each frame)")
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("threads")
            .nick("Threads")
            .blurb("Threads per frame: ONNX Runtime intra-op threads and the most the sampler step uses (0: one per core)")
            .mutable_ready()
            .build(),
        glib::ParamSpecInt::builder("tile-size")
            .nick("Tile size")
            .blurb("Tile side in pixels (-1: the package's, else 512; 0: no tiling)")
            .minimum(-1)
            .default_value(-1)
            .mutable_ready()
            .build(),
        glib::ParamSpecInt::builder("tile-overlap")
            .nick("Tile overlap")
            .blurb("Tile overlap in pixels (-1: the package's, else 64)")
            .minimum(-1)
            .default_value(-1)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("device")
            .nick("Device")
            .blurb("Execution provider: cpu, cuda or tensorrt (GPU providers need a plugin built with the cuda/tensorrt feature)")
            .default_value(Some("cpu"))
            .mutable_ready()
            .build(),
        glib::ParamSpecBoolean::builder("cpu-fallback")
            .nick("CPU fallback")
            .blurb("Run on the CPU when the requested device cannot be used (default: fail)")
            .mutable_ready()
            .build(),
        glib::ParamSpecInt64::builder("class-label")
            .nick("Class label")
            .blurb("Class label for class-conditional networks (-1: the package's)")
            .minimum(-1)
            .default_value(-1)
            .mutable_ready()
            .build(),
        glib::ParamSpecDouble::builder("eta")
            .nick("Eta")
            .blurb("η of DBIM / implicit samplers (negative: the sampler's default)")
            .minimum(-1.0)
            .default_value(-1.0)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("onnxruntime-library")
            .nick("ONNX Runtime library")
            .blurb("Path of libonnxruntime (file or folder; NULL: ORT_DYLIB_PATH, then the usual search)")
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("color-fix")
            .nick("Colour fix")
            .blurb("Take the output's coarse colours from the input: 0 off, else the wavelet levels (5 ≈ 32 px); removes a model's colour cast and any colour change it should make")
            .maximum(bridge::color_fix::ColorFix::MAX_LEVELS)
            .build(),
        glib::ParamSpecInt::builder("channel-ensemble")
            .nick("Channel ensemble")
            .blurb("Average every network call over the three cyclic shifts of the colour channels (no tint, a grey input stays grey; three times the network time): -1 the package's choice, 0 off, 1 on")
            .minimum(-1)
            .maximum(1)
            .default_value(-1)
            .build(),
        glib::ParamSpecUInt::builder("scale")
            .nick("Scale")
            .blurb("The loaded package's super-resolution factor (0 until the element has started)")
            .read_only()
            .build(),
    ]
}

impl Settings {
    /// Set a property from its value (GObject has checked its type against the spec, so a
    /// value of another type, which cannot arrive, is ignored rather than unwrapped).
    pub fn set(&mut self, name: &str, value: &glib::Value) {
        macro_rules! put {
            ($field:expr) => {
                if let Ok(v) = value.get() {
                    $field = v;
                }
            };
        }
        match name {
            "model" => put!(self.model),
            "sampler" => put!(self.sampler),
            "nfe" => put!(self.nfe),
            "seed" => put!(self.seed),
            "threads" => put!(self.threads),
            "tile-size" => put!(self.tile_size),
            "tile-overlap" => put!(self.tile_overlap),
            "device" => {
                if let Ok(v) = value.get::<Option<String>>() {
                    self.device = v.unwrap_or_else(|| "cpu".into());
                }
            }
            "cpu-fallback" => put!(self.cpu_fallback),
            "class-label" => put!(self.class_label),
            "eta" => put!(self.eta),
            "onnxruntime-library" => put!(self.onnxruntime_library),
            "color-fix" => put!(self.color_fix),
            "channel-ensemble" => put!(self.channel_ensemble),
            _ => {}
        }
    }

    /// A property's value (`scale` is answered by the element).
    pub fn get(&self, name: &str) -> glib::Value {
        match name {
            "model" => self.model.to_value(),
            "sampler" => self.sampler.to_value(),
            "nfe" => self.nfe.to_value(),
            "seed" => self.seed.to_value(),
            "threads" => self.threads.to_value(),
            "tile-size" => self.tile_size.to_value(),
            "tile-overlap" => self.tile_overlap.to_value(),
            "device" => self.device.to_value(),
            "cpu-fallback" => self.cpu_fallback.to_value(),
            "class-label" => self.class_label.to_value(),
            "eta" => self.eta.to_value(),
            "onnxruntime-library" => self.onnxruntime_library.to_value(),
            "color-fix" => self.color_fix.to_value(),
            "channel-ensemble" => self.channel_ensemble.to_value(),
            _ => 0u32.to_value(),
        }
    }
}
