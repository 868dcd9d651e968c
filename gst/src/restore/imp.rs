//! `bridgerestore` as a `GstVideoFilter`: the model is loaded in `start` (READY → PAUSED), the
//! caps are scaled by the package's SR factor (`transform_caps`), and each frame is converted
//! to planar RGB, restored and converted back (`transform_frame`). Every failure becomes a
//! GStreamer error message on the bus; nothing panics into GStreamer.

use super::settings::{self, Settings};
use crate::{caps, frame};
use bridge::pixel::{Layout, Planar};
use bridge::restorer::Restorer;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::subclass::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};

/// What exists while the element runs.
struct State {
    restorer: Restorer,
    /// The package's SR factor.
    scale: usize,
    /// Buffer layouts of the negotiated caps (set in `set_info`).
    layouts: Option<(Layout, Layout)>,
}

pub struct BridgeRestore {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// The loaded package's SR scale (0: none loaded), outside `state` so that caps queries
    /// and the `scale` property do not wait for a frame being restored.
    scale: AtomicU32,
}

impl Default for BridgeRestore {
    fn default() -> Self {
        BridgeRestore { settings: Mutex::new(Settings::new()), state: Mutex::new(None), scale: AtomicU32::new(0) }
    }
}

/// A lock that survives a poisoned mutex (a panic elsewhere must not become a second one here).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| gst::DebugCategory::new("bridgerestore", gst::DebugColorFlags::empty(), Some("libbridge restoration filter")));

#[glib::object_subclass]
impl ObjectSubclass for BridgeRestore {
    const NAME: &'static str = "GstBridgeRestore";
    type Type = super::BridgeRestore;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for BridgeRestore {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(settings::specs);
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        lock(&self.settings).set(pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "scale" => self.scale.load(Ordering::Acquire).to_value(),
            name => lock(&self.settings).get(name),
        }
    }
}

impl GstObjectImpl for BridgeRestore {}

impl ElementImpl for BridgeRestore {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Diffusion-bridge restoration",
                "Filter/Effect/Video",
                "Restores frames (denoising, deblurring, JPEG repair, super-resolution) with a libbridge model package",
                "libbridge",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            // NV12 only in even sizes (its chroma is subsampled 2×2; the SDK refuses odd
            // sizes), so odd NV12 caps fail at linking rather than at the first frame.
            let mut caps = gst_video::VideoCapsBuilder::new().format_list(frame::PACKED_FORMATS).build();
            let even = gst::IntRange::with_step(2, i32::MAX - 1, 2);
            caps.merge(
                gst_video::VideoCapsBuilder::new().format(gst_video::VideoFormat::Nv12).field("width", even).field("height", even).build(),
            );
            [gst::PadDirection::Src, gst::PadDirection::Sink]
                .into_iter()
                .map(|dir| {
                    let name = if dir == gst::PadDirection::Src { "src" } else { "sink" };
                    gst::PadTemplate::new(name, dir, gst::PadPresence::Always, &caps).expect("static pad template")
                })
                .collect()
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for BridgeRestore {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let model = settings.model.clone().ok_or_else(|| {
            gst::error_msg!(gst::ResourceError::NotFound, ("no model set: set the `model` property to a model package (.onnx)"))
        })?;
        let restorer = settings
            .builder(&model)
            .and_then(|b| b.build())
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ("cannot load model package {}: {}", model, e)))?;
        let scale = restorer.package().sr_scale;
        gst::info!(CAT, imp = self, "loaded {model}: SR ×{scale}, provider {}, options {:?}", restorer.provider(), restorer.options());
        let Ok(scale32) = u32::try_from(scale) else {
            return Err(gst::error_msg!(gst::ResourceError::Settings, ("model package {}: SR scale {} is out of range", model, scale)));
        };
        *lock(&self.state) = Some(State { restorer, scale, layouts: None });
        self.scale.store(scale32, Ordering::Release);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        self.scale.store(0, Ordering::Release);
        Ok(())
    }

    fn transform_caps(&self, direction: gst::PadDirection, caps: &gst::Caps, filter: Option<&gst::Caps>) -> Option<gst::Caps> {
        let scale = Some(self.scale.load(Ordering::Acquire)).filter(|&s| s > 0);
        let other = caps::transform(caps, direction, scale);
        gst::debug!(CAT, imp = self, "transformed {caps:?} ({direction:?}, scale {scale:?}) to {other:?}");
        Some(match filter {
            Some(f) => f.intersect_with_mode(&other, gst::CapsIntersectMode::First),
            None => other,
        })
    }
}

impl VideoFilterImpl for BridgeRestore {
    fn set_info(
        &self,
        _incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        _outcaps: &gst::Caps,
        out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        let mut state = lock(&self.state);
        let Some(state) = state.as_mut() else {
            return Err(gst::loggable_error!(CAT, "caps set before the model was loaded"));
        };
        let checked = (|| {
            let (w, h) = (in_info.width() as usize, in_info.height() as usize);
            let (ow, oh) = (out_info.width() as usize, out_info.height() as usize);
            if in_info.format() != out_info.format() || Some(ow) != w.checked_mul(state.scale) || Some(oh) != h.checked_mul(state.scale) {
                return Err(bridge::Error::Image(format!(
                    "output caps {ow}x{oh} {} do not match input {w}x{h} {} times the model's scale {}",
                    out_info.format().to_str(),
                    in_info.format().to_str(),
                    state.scale
                )));
            }
            state.restorer.check_size(w, h)?;
            Ok((frame::layout(in_info)?, frame::layout(out_info)?))
        })();
        match checked {
            Ok(l) => {
                state.layouts = Some(l);
                Ok(())
            }
            Err(e) => {
                // An element error, not only a log line: the application sees why the caps
                // were refused (odd NV12 size, a frame over the size limit, …).
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ("incompatible caps: {}", e));
                Err(gst::loggable_error!(CAT, "incompatible caps: {e}"))
            }
        }
    }

    fn transform_frame(
        &self,
        inframe: &gst_video::VideoFrameRef<&gst::BufferRef>,
        outframe: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut state = lock(&self.state);
        let Some(state) = state.as_mut() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("frame before the model was loaded"));
            return Err(gst::FlowError::NotNegotiated);
        };
        let Some((lin, lout)) = state.layouts else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("frame before caps were negotiated"));
            return Err(gst::FlowError::NotNegotiated);
        };
        let result = (|| {
            let p = frame::read(inframe, &lin)?;
            let rgb = state.restorer.restore_rgb(p.rgb.view())?;
            let alpha = p.alpha.map(|a| frame::upscale_alpha(&a, lin.width, lin.height, state.scale));
            frame::write(&Planar { rgb, alpha }, outframe, &lout)
        })();
        result.map(|()| gst::FlowSuccess::Ok).map_err(|e| {
            gst::element_imp_error!(self, gst::StreamError::Failed, ("restore failed: {}", e));
            gst::FlowError::Error
        })
    }
}
