//! GStreamer video frames ↔ the SDK's planar RGB ([`bridge::pixel`]).
//!
//! Packed RGB formats are read and written in place with the frame's row stride; NV12 in place
//! from its two planes, each with its own pitch ([`pixel::decode_nv12`] / [`pixel::encode_nv12`]),
//! whether or not GStreamer laid them out contiguously.

use bridge::pixel::{self, Layout, Nv12Layout, PixelFormat, Planar, YuvMatrix};
use bridge::{Error, Result};
use gst_video::prelude::*;
use gst_video::{VideoFormat, VideoFrameRef, VideoInfo};

/// The packed formats the element accepts (the same on both pads), besides NV12.
pub const PACKED_FORMATS: [VideoFormat; 6] =
    [VideoFormat::Rgb, VideoFormat::Bgr, VideoFormat::Rgba, VideoFormat::Bgra, VideoFormat::Rgbx, VideoFormat::Bgrx];

/// The SDK format for a GStreamer format, and whether its fourth byte is a real alpha channel
/// (passed through) rather than padding.
fn sdk_format(f: VideoFormat) -> Option<(PixelFormat, bool)> {
    Some(match f {
        VideoFormat::Rgb => (PixelFormat::Rgb8, false),
        VideoFormat::Bgr => (PixelFormat::Bgr8, false),
        VideoFormat::Rgba => (PixelFormat::Rgba8, true),
        VideoFormat::Bgra => (PixelFormat::Bgra8, true),
        VideoFormat::Rgbx => (PixelFormat::Rgba8, false),
        VideoFormat::Bgrx => (PixelFormat::Bgra8, false),
        VideoFormat::Nv12 => (PixelFormat::Nv12, false),
        _ => return None,
    })
}

/// The SDK layout of frames with `info`: the frame's stride for packed formats; for NV12 the
/// size and colorimetry (the pitches come from each frame, [`nv12`]). Checks what the SDK
/// checks (even NV12 sizes, …).
pub fn layout(info: &VideoInfo) -> Result<Layout> {
    let (format, _) =
        sdk_format(info.format()).ok_or_else(|| Error::param("video format", format!("{} is not supported", info.format().to_str())))?;
    let mut l = Layout::packed(info.width() as usize, info.height() as usize, format)?;
    if format != PixelFormat::Nv12 {
        l.stride = usize::try_from(info.stride()[0]).map_err(|_| Error::param("stride", "negative row stride"))?;
    }
    let c = info.colorimetry();
    l.yuv_matrix = if c.matrix() == gst_video::VideoColorMatrix::Bt709 { YuvMatrix::Bt709 } else { YuvMatrix::Bt601 };
    l.yuv_full_range = c.range() == gst_video::VideoColorRange::Range0_255;
    l.required_len()?;
    Ok(l)
}

fn plane_err(e: gst::glib::BoolError) -> Error {
    Error::Image(format!("video frame: {e}"))
}

fn stride(frame_strides: &[i32], plane: usize) -> Result<usize> {
    frame_strides
        .get(plane)
        .and_then(|&s| usize::try_from(s).ok())
        .ok_or_else(|| Error::param("stride", format!("plane {plane} has no usable row stride")))
}

/// The two-plane NV12 layout of `frame`: `l`'s size and colorimetry, the frame's pitches.
fn nv12(frame_strides: &[i32], l: &Layout) -> Result<Nv12Layout> {
    Ok(Nv12Layout {
        y_pitch: stride(frame_strides, 0)?,
        uv_pitch: stride(frame_strides, 1)?,
        yuv_matrix: l.yuv_matrix,
        yuv_full_range: l.yuv_full_range,
        ..Nv12Layout::new(l.width, l.height)
    })
}

/// Read a frame into planar RGB (and its alpha plane where the format has a real one).
pub fn read(frame: &VideoFrameRef<&gst::BufferRef>, l: &Layout) -> Result<Planar> {
    let mut p = if l.format == PixelFormat::Nv12 {
        let nv = nv12(frame.plane_stride(), l)?;
        pixel::decode_nv12(frame.plane_data(0).map_err(plane_err)?, frame.plane_data(1).map_err(plane_err)?, &nv)?
    } else {
        pixel::decode(frame.plane_data(0).map_err(plane_err)?, l)?
    };
    if !sdk_format(frame.format()).is_some_and(|(_, alpha)| alpha) {
        p.alpha = None;
    }
    Ok(p)
}

/// Write planar RGB into a frame (`p.rgb` must be the frame's size). A padding byte (RGBx,
/// BGRx) is written as 255.
pub fn write(p: &Planar, frame: &mut VideoFrameRef<&mut gst::BufferRef>, l: &Layout) -> Result<()> {
    if l.format != PixelFormat::Nv12 {
        return pixel::encode(p, l, frame.plane_data_mut(0).map_err(plane_err)?);
    }
    let nv = nv12(frame.plane_stride(), l)?;
    if frame.n_planes() != 2 {
        return Err(Error::Image(format!("an NV12 frame with {} planes", frame.n_planes())));
    }
    let [y, uv, ..] = frame.planes_data_mut();
    pixel::encode_nv12(p, &nv, y, uv)
}

/// An alpha plane of `w`×`h` enlarged `k` times (nearest neighbour: the SDK restores RGB only).
pub fn upscale_alpha(a: &[f32], w: usize, h: usize, k: usize) -> Vec<f32> {
    let ow = w * k;
    (0..h * k).flat_map(|y| (0..ow).map(move |x| a[(y / k) * w + x / k])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_upscale_repeats_each_value_in_a_k_by_k_block() {
        let a = [0.0, 0.5, 1.0, 0.25];
        let up = upscale_alpha(&a, 2, 2, 2);
        assert_eq!(up, [0.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.5, 0.5, 1.0, 1.0, 0.25, 0.25, 1.0, 1.0, 0.25, 0.25]);
    }

    #[test]
    fn layouts_follow_the_frame_stride_and_colorimetry() {
        gst::init().unwrap();
        let info = VideoInfo::builder(VideoFormat::Rgb, 5, 3).build().unwrap();
        let l = layout(&info).unwrap();
        assert_eq!((l.format, l.stride), (PixelFormat::Rgb8, info.stride()[0] as usize));
        assert!(l.stride >= 15);
        let c = gst_video::VideoColorimetry::new(
            gst_video::VideoColorRange::Range0_255,
            gst_video::VideoColorMatrix::Bt709,
            gst_video::VideoTransferFunction::Bt709,
            gst_video::VideoColorPrimaries::Bt709,
        );
        let info = VideoInfo::builder(VideoFormat::Nv12, 4, 2).colorimetry(&c).build().unwrap();
        let l = layout(&info).unwrap();
        assert_eq!((l.format, l.stride, l.yuv_matrix, l.yuv_full_range), (PixelFormat::Nv12, 4, YuvMatrix::Bt709, true));
        let odd = VideoInfo::builder(VideoFormat::Nv12, 5, 2).build().unwrap();
        assert!(layout(&odd).is_err());
        let gray = VideoInfo::builder(VideoFormat::Gray8, 4, 2).build().unwrap();
        assert!(layout(&gray).is_err());
    }
}
