//! The `bridgerestore` element.

mod imp;
mod settings;

use gst::glib;
use gst::prelude::*;

glib::wrapper! {
    /// Restores every video frame with a libbridge model package (see `docs/gstreamer.md`).
    pub struct BridgeRestore(ObjectSubclass<imp::BridgeRestore>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Register `bridgerestore` with the plugin.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "bridgerestore", gst::Rank::NONE, BridgeRestore::static_type())
}
