//! `libgstbridge.so`: the GStreamer plugin `bridge` with one element, `bridgerestore`, a video
//! filter that restores every frame with a libbridge model package (denoising, deblurring,
//! JPEG repair, super-resolution) through the safe SDK ([`bridge::restorer::Restorer`]).
//!
//! Pipelines, properties and caps are described in `docs/gstreamer.md`.

mod caps;
mod frame;
mod restore;

pub use restore::BridgeRestore;

use gst::glib;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    restore::register(plugin)
}

// GStreamer only loads plugins whose licence is one of its known strings; "MIT/X11" stands for
// the crate's MIT OR Apache-2.0.
gst::plugin_define!(
    bridge,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    env!("CARGO_PKG_VERSION"),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY")
);
