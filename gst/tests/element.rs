//! `bridgerestore` through GStreamer's test harness: the element's output must be exactly what
//! the SDK computes for the same frame (same conversion, same restorer settings), for NV12 and
//! for packed RGB with padded rows; the caps of a super-resolution package are scaled; a bad
//! model is an error message on the bus, not a crash.
//!
//! Needs ONNX Runtime (found by this debug build in `.deps/onnxruntime`, or ORT_DYLIB_PATH) and
//! the shipped models.

use bridge::pixel::{self, Layout, PixelFormat, Planar, YuvMatrix};
use bridge::restorer::Restorer;
use gst::prelude::*;
use gst_check::Harness;
use std::path::PathBuf;
use std::sync::Once;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstbridge::plugin_register_static().unwrap();
    });
}

fn model(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models").join(name).display().to_string()
}

/// A deterministic test frame of `len` bytes (not flat, so the network has work to do).
fn pattern(len: usize, salt: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 37 + salt * 101 + (i / 7) * 13) % 251) as u8).collect()
}

/// What the element must output for `frame` in layout `lin`: decode, restore with the same
/// settings, encode into layout `lout`.
fn expected(model: &str, nfe: usize, frame: &[u8], lin: &Layout, lout: &Layout) -> Vec<u8> {
    let mut r = Restorer::builder(model).nfe(nfe).threads(1).build().unwrap();
    let p = pixel::decode(frame, lin).unwrap();
    let rgb = r.restore_rgb(p.rgb.view()).unwrap();
    let mut out = vec![0u8; lout.required_len().unwrap()];
    pixel::encode(&Planar { rgb, alpha: None }, lout, &mut out).unwrap();
    out
}

fn harness(props: &str, caps: &str) -> Harness {
    init();
    let mut h = Harness::new_parse(&format!("bridgerestore name=restore threads=1 {props}"));
    h.set_src_caps_str(caps);
    h
}

#[test]
fn nv12_frames_are_restored_exactly_as_the_sdk_restores_them() {
    let (w, h) = (64, 64);
    let m = model("denoise.onnx");
    // BT.709, video range: the colorimetry in the caps must reach the YUV conversion.
    let mut hs = harness(&format!("model={m} nfe=1"), "video/x-raw,format=NV12,width=64,height=64,colorimetry=bt709,framerate=30/1");
    let mut l = Layout::packed(w, h, PixelFormat::Nv12).unwrap();
    l.yuv_matrix = YuvMatrix::Bt709;
    // GStreamer's NV12 64×64 frame is exactly this layout: stride 64, chroma right after luma.
    let size = l.required_len().unwrap();
    for k in 0..2 {
        let frame = pattern(size, k);
        let out = hs.push_and_pull(gst::Buffer::from_slice(frame.clone())).unwrap();
        let got = out.map_readable().unwrap();
        let want = expected(&m, 1, &frame, &l, &l);
        assert_eq!(got.len(), want.len());
        assert!(got.as_slice() == want.as_slice(), "frame {k}: element output differs from the SDK's");
        assert_ne!(got.as_slice(), frame.as_slice(), "frame {k}: the restore changed nothing");
    }
}

#[test]
fn nv12_with_padded_rows_and_separate_planes_is_read_through_its_video_meta() {
    // Luma rows of 80 bytes, the chroma plane 512 bytes after the luma plane's end: what a
    // camera or hardware decoder hands out. The element must read the frame through the
    // buffer's video meta, not assume GStreamer's default layout.
    let (w, h, stride, gap) = (64usize, 32usize, 80usize, 512usize);
    let m = model("denoise.onnx");
    let mut hs = harness(&format!("model={m} nfe=1"), "video/x-raw,format=NV12,width=64,height=32,framerate=30/1");
    let l = Layout::packed(w, h, PixelFormat::Nv12).unwrap();
    let packed = pattern(l.required_len().unwrap(), 9);
    let uv_offset = h * stride + gap;
    let mut padded = vec![0xEEu8; uv_offset + h / 2 * stride];
    for (r, row) in packed.chunks_exact(w).enumerate() {
        let o = if r < h { r * stride } else { uv_offset + (r - h) * stride };
        padded[o..o + w].copy_from_slice(row);
    }
    let mut buf = gst::Buffer::from_slice(padded);
    gst_video::VideoMeta::add_full(
        buf.get_mut().unwrap(),
        gst_video::VideoFrameFlags::empty(),
        gst_video::VideoFormat::Nv12,
        w as u32,
        h as u32,
        &[0, uv_offset],
        &[stride as i32, stride as i32],
    )
    .unwrap();
    let out = hs.push_and_pull(buf).unwrap();
    let got = out.map_readable().unwrap();
    let want = expected(&m, 1, &packed, &l, &l);
    assert!(got.as_slice() == want.as_slice(), "element output differs from the SDK's for the packed frame");
}

#[test]
fn rgb_with_padded_rows_is_read_and_written_with_the_frame_stride() {
    // 30 pixels of RGB = 90 bytes; GStreamer pads rows to 92.
    let (w, h) = (30, 18);
    let m = model("denoise.onnx");
    let mut hs = harness(&format!("model={m} nfe=1"), "video/x-raw,format=RGB,width=30,height=18,framerate=30/1");
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, w as u32, h as u32).build().unwrap();
    let stride = info.stride()[0] as usize;
    assert_eq!(stride, 92);
    let frame = pattern(info.size(), 3);
    let out = hs.push_and_pull(gst::Buffer::from_slice(frame.clone())).unwrap();
    let got = out.map_readable().unwrap();
    let mut l = Layout::packed(w, h, PixelFormat::Rgb8).unwrap();
    l.stride = stride;
    let want = expected(&m, 1, &frame, &l, &l);
    for y in 0..h {
        let row = y * stride..y * stride + 3 * w;
        assert!(got[row.clone()] == want[row], "row {y} differs from the SDK's");
    }
}

/// `color-fix` and `channel-ensemble` reach the restorer: the element's frame is the SDK's with
/// the same options (and differs from the plain restore).
#[test]
fn colour_fix_and_channel_ensemble_properties() {
    let (w, h) = (32, 16);
    let m = model("jpeg.onnx");
    let mut hs =
        harness(&format!("model={m} nfe=1 color-fix=3 channel-ensemble=1"), "video/x-raw,format=RGB,width=32,height=16,framerate=30/1");
    let restore = hs.find_element("bridgerestore").unwrap();
    let (fix, ens) = (restore.property::<u32>("color-fix"), restore.property::<i32>("channel-ensemble"));
    assert_eq!((fix, ens), (3, 1));
    let l = Layout::packed(w, h, PixelFormat::Rgb8).unwrap();
    let frame = pattern(l.required_len().unwrap(), 5);
    let out = hs.push_and_pull(gst::Buffer::from_slice(frame.clone())).unwrap();
    let got = out.map_readable().unwrap();
    let mut r = Restorer::builder(&m)
        .nfe(1)
        .threads(1)
        .color_fix(bridge::color_fix::ColorFix::Wavelet { levels: 3 })
        .channel_ensemble(true)
        .build()
        .unwrap();
    let p = pixel::decode(&frame, &l).unwrap();
    let mut want = vec![0u8; l.required_len().unwrap()];
    pixel::encode(&Planar { rgb: r.restore_rgb(p.rgb.view()).unwrap(), alpha: None }, &l, &mut want).unwrap();
    assert!(got.as_slice() == want.as_slice(), "element output differs from the SDK's with the same options");
    assert_ne!(want, expected(&m, 1, &frame, &l, &l), "the options changed nothing");
}

#[test]
fn a_super_resolution_package_scales_the_caps_and_the_frames() {
    let m = model("sr4.onnx");
    let mut hs = harness(&format!("model={m} nfe=1"), "video/x-raw,format=BGRx,width=8,height=6,framerate=30/1");
    let frame = pattern(8 * 6 * 4, 5);
    let out = hs.push_and_pull(gst::Buffer::from_slice(frame.clone())).unwrap();
    let caps = hs.sinkpad().unwrap().current_caps().unwrap();
    let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
    assert_eq!((info.width(), info.height(), info.format()), (32, 24, gst_video::VideoFormat::Bgrx));
    assert_eq!(out.size(), 32 * 24 * 4);
    let element = hs.find_element("bridgerestore").unwrap();
    assert_eq!(element.property::<u32>("scale"), 4);
    let lin = Layout::packed(8, 6, PixelFormat::Bgra8).unwrap();
    let lout = Layout::packed(32, 24, PixelFormat::Bgra8).unwrap();
    let want = expected(&m, 1, &frame, &lin, &lout);
    let got = out.map_readable().unwrap();
    // The padding byte is written as 255 (the SDK writes an opaque alpha there too).
    assert!(got.as_slice() == want.as_slice(), "SR output differs from the SDK's");
}

#[test]
fn rgba_alpha_is_passed_through_and_enlarged_with_the_image() {
    let m = model("sr4.onnx");
    let mut hs = harness(&format!("model={m} nfe=1"), "video/x-raw,format=RGBA,width=4,height=4,framerate=30/1");
    let mut frame = pattern(4 * 4 * 4, 7);
    for (i, px) in frame.chunks_exact_mut(4).enumerate() {
        px[3] = (i * 16) as u8;
    }
    let out = hs.push_and_pull(gst::Buffer::from_slice(frame.clone())).unwrap();
    let got = out.map_readable().unwrap();
    assert_eq!(got.len(), 16 * 16 * 4);
    for y in 0..16 {
        for x in 0..16 {
            assert_eq!(got[(y * 16 + x) * 4 + 3], frame[((y / 4) * 4 + x / 4) * 4 + 3], "alpha at ({x}, {y})");
        }
    }
}

/// The first error message on `pipeline`'s bus after it is set to `state`, as (source, text).
fn first_error(pipeline: &gst::Element, state: gst::State) -> (String, String, bool) {
    let bus = pipeline.bus().unwrap();
    let failed = pipeline.set_state(state).is_err();
    let msg = bus.timed_pop_filtered(gst::ClockTime::from_seconds(60), &[gst::MessageType::Error]).expect("an error message");
    let gst::MessageView::Error(err) = msg.view() else { unreachable!() };
    pipeline.set_state(gst::State::Null).unwrap();
    (msg.src().unwrap().name().to_string(), err.error().to_string(), failed)
}

#[test]
fn a_bad_model_or_setting_is_an_error_message_and_a_failed_state_change() {
    init();
    let m = model("denoise.onnx");
    for (props, want) in [
        ("model=/nonexistent/model.onnx".to_string(), "cannot load model package /nonexistent/model.onnx"),
        (String::new(), "no model set"),
        (format!("model={m} device=nosuchdevice"), "`nosuchdevice` is not one of cpu, cuda, tensorrt"),
        (format!("model={m} sampler=nosuchsampler"), "nosuchsampler"),
    ] {
        let pipeline = gst::parse::launch(&format!("videotestsrc num-buffers=1 ! bridgerestore name=restore {props} ! fakesink")).unwrap();
        let (src, text, failed) = first_error(&pipeline, gst::State::Paused);
        assert!(failed, "{props}: the state change succeeded");
        assert_eq!(src, "restore");
        assert!(text.contains(want), "{props}: {text}");
    }
}

#[test]
fn caps_the_restorer_refuses_are_an_element_error_naming_the_reason() {
    init();
    // ×4 of 20000 pixels is more than the SDK's largest side (65536).
    let launch = format!(
        "videotestsrc num-buffers=1 ! video/x-raw,format=RGB,width=20000,height=8 ! bridgerestore name=restore model={} ! fakesink",
        model("sr4.onnx")
    );
    let pipeline = gst::parse::launch(&launch).unwrap();
    let (src, text, _) = first_error(&pipeline, gst::State::Playing);
    assert_eq!(src, "restore");
    assert!(text.contains("incompatible caps") && text.contains("exceeds the largest side"), "{text}");
}
