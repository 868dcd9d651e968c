//! Images in and out of the SDK: borrowed RGB buffers with strides, value-range mapping,
//! super-resolution pre-upsampling, reflect padding.
//!
//! Images are interleaved RGB (`R G B R G B …`), row-major, with a row stride in samples (so
//! sub-images and padded rows are accepted without copying). Pixel values: `u8` in 0..=255,
//! `u16` in 0..=65535, `f32` nominally in [0, 1] (values outside are passed to the model
//! unclamped). Outputs are clamped to [0, 1] (and rounded to the nearest integer for `u8` and
//! `u16`).

use crate::runtime::package::{ChannelOrder, Upsample};
use crate::{Error, Result, Tensor, TensorView};
use ndarray::{Array4, s};

/// Borrowed pixel samples.
#[derive(Clone, Copy, Debug)]
pub enum Samples<'a> {
    /// 8-bit.
    U8(&'a [u8]),
    /// 16-bit.
    U16(&'a [u16]),
    /// 32-bit float.
    F32(&'a [f32]),
}

impl Samples<'_> {
    fn len(&self) -> usize {
        match self {
            Samples::U8(s) => s.len(),
            Samples::U16(s) => s.len(),
            Samples::F32(s) => s.len(),
        }
    }
}

/// Sample type of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleType {
    /// 8-bit.
    U8,
    /// 16-bit.
    U16,
    /// 32-bit float.
    F32,
}

/// A borrowed interleaved RGB image with a row stride.
#[derive(Clone, Copy, Debug)]
pub struct ImageRef<'a> {
    samples: Samples<'a>,
    width: usize,
    height: usize,
    row_stride: usize,
}

/// An owned, tightly packed interleaved RGB image.
#[derive(Clone, Debug, PartialEq)]
pub enum Image {
    /// 8-bit samples.
    U8 { width: usize, height: usize, data: Vec<u8> },
    /// 16-bit samples.
    U16 { width: usize, height: usize, data: Vec<u16> },
    /// 32-bit float samples in [0, 1].
    F32 { width: usize, height: usize, data: Vec<f32> },
}

/// Channels per pixel.
pub const CHANNELS: usize = 3;

impl<'a> ImageRef<'a> {
    /// A tightly packed image (`row_stride = 3·width`).
    pub fn new(samples: Samples<'a>, width: usize, height: usize) -> Result<Self> {
        let stride = width.checked_mul(CHANNELS).ok_or_else(|| Error::Image(format!("width {width} overflows")))?;
        Self::with_stride(samples, width, height, stride)
    }

    /// An image whose rows start every `row_stride` samples (`row_stride ≥ 3·width`).
    ///
    /// Errors: zero width or height, a stride shorter than a row, or a buffer too short for
    /// `(height − 1)·row_stride + 3·width` samples.
    pub fn with_stride(samples: Samples<'a>, width: usize, height: usize, row_stride: usize) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::Image(format!("empty image ({width}x{height})")));
        }
        let row = width.checked_mul(CHANNELS).ok_or_else(|| Error::Image(format!("width {width} overflows")))?;
        if row_stride < row {
            return Err(Error::Image(format!("row stride {row_stride} is shorter than a row of {width} RGB pixels ({row} samples)")));
        }
        let need = (height - 1)
            .checked_mul(row_stride)
            .and_then(|n| n.checked_add(row))
            .ok_or_else(|| Error::Image(format!("{width}x{height} with stride {row_stride} overflows")))?;
        if samples.len() < need {
            return Err(Error::Image(format!(
                "buffer holds {} samples, a {width}x{height} RGB image with row stride {row_stride} needs {need}",
                samples.len()
            )));
        }
        Ok(ImageRef { samples, width, height, row_stride })
    }

    /// Packed 8-bit RGB.
    pub fn rgb8(data: &'a [u8], width: usize, height: usize) -> Result<Self> {
        Self::new(Samples::U8(data), width, height)
    }
    /// Packed 16-bit RGB.
    pub fn rgb16(data: &'a [u16], width: usize, height: usize) -> Result<Self> {
        Self::new(Samples::U16(data), width, height)
    }
    /// Packed float RGB in [0, 1].
    pub fn rgb32f(data: &'a [f32], width: usize, height: usize) -> Result<Self> {
        Self::new(Samples::F32(data), width, height)
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }
    /// Sample type.
    pub fn sample_type(&self) -> SampleType {
        match self.samples {
            Samples::U8(_) => SampleType::U8,
            Samples::U16(_) => SampleType::U16,
            Samples::F32(_) => SampleType::F32,
        }
    }

    /// To a `[1, 3, H, W]` tensor in the model's range and channel order.
    pub fn to_tensor(&self, range: (f64, f64), order: ChannelOrder) -> Result<Tensor> {
        let (w, h) = (self.width, self.height);
        let mut t: Array4<f32> = crate::alloc::try_zeros((1, CHANNELS, h, w), "the input tensor")?;
        let (lo, span) = (range.0 as f32, (range.1 - range.0) as f32);
        let map = |c: usize| if order == ChannelOrder::Bgr { 2 - c } else { c };
        macro_rules! fill {
            ($s:expr, $scale:expr) => {{
                for y in 0..h {
                    let row = &$s[y * self.row_stride..y * self.row_stride + w * CHANNELS];
                    for c in 0..CHANNELS {
                        let mut dst = t.slice_mut(s![0, map(c), y, ..]);
                        for (x, d) in dst.iter_mut().enumerate() {
                            *d = lo + span * (row[x * CHANNELS + c] as f32 * $scale);
                        }
                    }
                }
            }};
        }
        match self.samples {
            Samples::U8(d) => fill!(d, 1.0 / 255.0),
            Samples::U16(d) => fill!(d, 1.0 / 65535.0),
            Samples::F32(d) => {
                if d.iter().take((h - 1) * self.row_stride + w * CHANNELS).any(|v| !v.is_finite()) {
                    return Err(Error::Image("input contains NaN or Inf".into()));
                }
                fill!(d, 1.0)
            }
        }
        Ok(t)
    }
}

impl Image {
    /// Width in pixels.
    pub fn width(&self) -> usize {
        match self {
            Image::U8 { width, .. } | Image::U16 { width, .. } | Image::F32 { width, .. } => *width,
        }
    }
    /// Height in pixels.
    pub fn height(&self) -> usize {
        match self {
            Image::U8 { height, .. } | Image::U16 { height, .. } | Image::F32 { height, .. } => *height,
        }
    }
    /// Borrow as an [`ImageRef`].
    pub fn as_ref(&self) -> ImageRef<'_> {
        let (samples, w, h) = match self {
            Image::U8 { width, height, data } => (Samples::U8(data), *width, *height),
            Image::U16 { width, height, data } => (Samples::U16(data), *width, *height),
            Image::F32 { width, height, data } => (Samples::F32(data), *width, *height),
        };
        ImageRef { samples, width: w, height: h, row_stride: w * CHANNELS }
    }

    /// From a `[1, 3, H, W]` tensor in the model's range and channel order, clamped to [0, 1].
    pub fn from_tensor(t: TensorView<'_>, range: (f64, f64), order: ChannelOrder, ty: SampleType) -> Result<Image> {
        let (b, c, h, w) = t.dim();
        if b != 1 || c != CHANNELS {
            return Err(Error::shape("output image tensor", &[1, CHANNELS, h, w], t.shape()));
        }
        let (lo, inv) = (range.0 as f32, 1.0 / (range.1 - range.0) as f32);
        let map = |c: usize| if order == ChannelOrder::Bgr { 2 - c } else { c };
        let unit = |v: f32| ((v - lo) * inv).clamp(0.0, 1.0);
        macro_rules! pack {
            ($ty:ty, $conv:expr) => {{
                // The tensor holds `w·h·CHANNELS` values, so the count does not overflow.
                let mut data: Vec<$ty> = crate::alloc::try_vec(w * h * CHANNELS, Default::default(), "the output image")?;
                for ch in 0..CHANNELS {
                    let plane = t.slice(s![0, map(ch), .., ..]);
                    for ((y, x), &v) in plane.indexed_iter() {
                        data[(y * w + x) * CHANNELS + ch] = $conv(unit(v));
                    }
                }
                data
            }};
        }
        Ok(match ty {
            SampleType::U8 => Image::U8 { width: w, height: h, data: pack!(u8, |u: f32| (u * 255.0).round() as u8) },
            SampleType::U16 => Image::U16 { width: w, height: h, data: pack!(u16, |u: f32| (u * 65535.0).round() as u16) },
            SampleType::F32 => Image::F32 { width: w, height: h, data: pack!(f32, |u: f32| u) },
        })
    }
}

/// Cubic convolution kernel with parameter `a`.
fn cubic(x: f64, a: f64) -> f64 {
    let x = x.abs();
    if x <= 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

/// Per output index: four source indices (clamped) and weights, for an integer upscale.
fn upsample_taps(n: usize, scale: usize, kind: Upsample) -> Vec<([usize; 4], [f32; 4])> {
    let a = if kind == Upsample::BicubicA05 { -0.5 } else { -0.75 };
    (0..n * scale)
        .map(|o| {
            if kind == Upsample::Nearest {
                return ([o / scale; 4], [1.0, 0.0, 0.0, 0.0]);
            }
            // Half-pixel centres (align_corners = False).
            let x = (o as f64 + 0.5) / scale as f64 - 0.5;
            let i0 = x.floor();
            let t = x - i0;
            let mut idx = [0usize; 4];
            let mut wt = [0f32; 4];
            for k in 0..4 {
                let i = i0 as i64 - 1 + k as i64;
                idx[k] = i.clamp(0, n as i64 - 1) as usize;
                wt[k] = cubic(t - (k as f64 - 1.0), a) as f32;
            }
            (idx, wt)
        })
        .collect()
}

/// Upscale `[B, C, H, W]` by an integer `scale` (separable; see [`Upsample`]); the frame-sized
/// buffers are allocated fallibly ([`Error::OutOfMemory`]).
pub fn upsample(x: TensorView<'_>, scale: usize, kind: Upsample) -> Result<Tensor> {
    let (b, c, h, w) = x.dim();
    if scale <= 1 {
        return crate::alloc::try_copy(x, "the upsampled image");
    }
    let (sh, sw) = match (h.checked_mul(scale), w.checked_mul(scale)) {
        (Some(sh), Some(sw)) => (sh, sw),
        _ => return Err(Error::Image(format!("{w}x{h} upsampled {scale} times overflows"))),
    };
    let ty = upsample_taps(h, scale, kind);
    let tx = upsample_taps(w, scale, kind);
    // Rows first: [B, C, H, W·s], then columns.
    let mut mid: Array4<f32> = crate::alloc::try_zeros((b, c, h, sw), "the upsampling buffer")?;
    for bi in 0..b {
        for ci in 0..c {
            for y in 0..h {
                let src = x.slice(s![bi, ci, y, ..]);
                let mut dst = mid.slice_mut(s![bi, ci, y, ..]);
                for (o, d) in dst.iter_mut().enumerate() {
                    let (idx, wt) = &tx[o];
                    *d = wt[0] * src[idx[0]] + wt[1] * src[idx[1]] + wt[2] * src[idx[2]] + wt[3] * src[idx[3]];
                }
            }
        }
    }
    let mut out: Array4<f32> = crate::alloc::try_zeros((b, c, sh, sw), "the upsampled image")?;
    for bi in 0..b {
        for ci in 0..c {
            let src = mid.slice(s![bi, ci, .., ..]);
            let mut dst = out.slice_mut(s![bi, ci, .., ..]);
            for (o, (idx, wt)) in ty.iter().enumerate() {
                let mut row = dst.slice_mut(s![o, ..]);
                for (x, d) in row.iter_mut().enumerate() {
                    *d = wt[0] * src[[idx[0], x]] + wt[1] * src[[idx[1], x]] + wt[2] * src[[idx[2], x]] + wt[3] * src[[idx[3], x]];
                }
            }
        }
    }
    Ok(out)
}

/// Mirror index without repeating the edge (`numpy.pad(mode="reflect")`), for any overshoot.
fn mirror(i: usize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let p = 2 * (n - 1);
    let k = i % p;
    if k < n { k } else { p - k }
}

/// Pad `[B, C, H, W]` on the bottom and right to `(ph, pw)` (≥ H, W) by reflection, so the
/// top-left pixel grid — and the phase of strided layers — is unchanged. The padded frame is
/// allocated fallibly ([`Error::OutOfMemory`]).
pub fn pad_reflect(x: TensorView<'_>, ph: usize, pw: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dim();
    if (ph, pw) == (h, w) {
        return crate::alloc::try_copy(x, "the padded image");
    }
    let mut out: Tensor = crate::alloc::try_zeros((b, c, ph, pw), "the padded image")?;
    ndarray::Zip::indexed(&mut out).for_each(|(bi, ci, y, xx), o| *o = x[[bi, ci, mirror(y, h), mirror(xx, w)]]);
    Ok(out)
}

/// `n` rounded up to a multiple of `m`.
pub fn round_up(n: usize, m: usize) -> usize {
    n.div_ceil(m.max(1)) * m.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_and_bad_buffers() {
        // A 2x2 image inside rows of 8 samples (2 padding samples per row).
        let buf: Vec<u8> = (0..16).collect();
        let img = ImageRef::with_stride(Samples::U8(&buf), 2, 2, 8).unwrap();
        let t = img.to_tensor((0.0, 1.0), ChannelOrder::Rgb).unwrap();
        let near = |a: f32, b: f32| (a - b).abs() < 1e-7;
        assert!(near(t[[0, 0, 1, 0]], 8.0 / 255.0));
        assert!(near(t[[0, 2, 1, 1]], 13.0 / 255.0));
        let bgr = img.to_tensor((0.0, 1.0), ChannelOrder::Bgr).unwrap();
        assert!(near(bgr[[0, 2, 1, 0]], 8.0 / 255.0));
        for (w, h, stride, len) in [(0, 2, 8, 16), (2, 0, 8, 16), (2, 2, 5, 16), (2, 2, 8, 13), (usize::MAX / 2, 1, 8, 16)] {
            let buf = vec![0u8; len];
            assert!(matches!(ImageRef::with_stride(Samples::U8(&buf), w, h, stride), Err(Error::Image(_))), "{w}x{h}/{stride}/{len}");
        }
        let nan = [0.0, f32::NAN, 0.0];
        assert!(matches!(ImageRef::rgb32f(&nan, 1, 1).unwrap().to_tensor((0.0, 1.0), ChannelOrder::Rgb), Err(Error::Image(_))));
    }

    /// u8 and u16 survive the round trip through the model range exactly; f32 to rounding.
    #[test]
    fn value_range_round_trip() {
        let px: Vec<u8> = (0..=255u8).chain(0..=253).collect(); // 510 = 170 px
        let img = ImageRef::rgb8(&px, 17, 10).unwrap();
        for order in [ChannelOrder::Rgb, ChannelOrder::Bgr] {
            let t = img.to_tensor((-1.0, 1.0), order).unwrap();
            assert!(t.iter().all(|&v| (-1.0..=1.0).contains(&v)));
            let back = Image::from_tensor(t.view(), (-1.0, 1.0), order, SampleType::U8).unwrap();
            assert_eq!(back, Image::U8 { width: 17, height: 10, data: px.clone() });
        }
        let px16: Vec<u16> = (0..30).map(|i| (i * 2221) as u16).collect();
        let t = ImageRef::rgb16(&px16, 5, 2).unwrap().to_tensor((-1.0, 1.0), ChannelOrder::Rgb).unwrap();
        let back = Image::from_tensor(t.view(), (-1.0, 1.0), ChannelOrder::Rgb, SampleType::U16).unwrap();
        assert_eq!(back, Image::U16 { width: 5, height: 2, data: px16 });
        // Out-of-range model outputs are clamped.
        let t = Tensor::from_elem((1, 3, 1, 1), 7.0);
        assert_eq!(
            Image::from_tensor(t.view(), (-1.0, 1.0), ChannelOrder::Rgb, SampleType::F32).unwrap(),
            Image::F32 { width: 1, height: 1, data: vec![1.0; 3] }
        );
    }

    /// Reference values for `[0, 1, 4, 9]` ×2, computed with PyTorch's `upsample_bicubic2d`
    /// formulation (`cubic_convolution1/2` with A = −0.75, source index `(o + 0.5)/s − 0.5`,
    /// bounded access) written out separately in Python.
    #[test]
    fn bicubic_matches_pytorch_convention() {
        let x = Tensor::from_shape_vec((1, 1, 1, 4), vec![0.0, 1.0, 4.0, 9.0]).unwrap();
        let up = upsample(x.view(), 2, Upsample::Bicubic).unwrap();
        // The row dimension of a 1-row image replicates the row.
        let want: [f32; 8] = [-0.105_468_75, 0.121_093_75, 0.457_031_25, 1.609_375, 2.828_125, 5.449_218_8, 7.972_656_3, 9.527_344];
        for (a, b) in up.iter().zip(want.iter().chain(want.iter())) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert_eq!(up.shape(), &[1, 1, 2, 8]);
        // A constant stays constant (weights sum to 1), with both kernels.
        for k in [Upsample::Bicubic, Upsample::BicubicA05, Upsample::Nearest] {
            let c = upsample(Tensor::from_elem((1, 3, 5, 3), 0.25).view(), 3, k).unwrap();
            assert!(c.iter().all(|&v| (v - 0.25).abs() < 1e-6));
        }
    }

    #[test]
    fn reflect_pad() {
        let x = Tensor::from_shape_vec((1, 1, 1, 3), vec![1.0, 2.0, 3.0]).unwrap();
        let p = pad_reflect(x.view(), 1, 9).unwrap();
        assert_eq!(p.iter().copied().collect::<Vec<_>>(), vec![1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]);
        let one = Tensor::from_elem((1, 1, 1, 1), 5.0);
        assert!(pad_reflect(one.view(), 4, 4).unwrap().iter().all(|&v| v == 5.0));
        assert_eq!(round_up(13, 8), 16);
        assert_eq!(round_up(16, 8), 16);
    }

    /// A frame whose upsampled or padded copy is larger than any address space is refused with
    /// `OutOfMemory`, not an abort. The input is a broadcast view: no memory behind it.
    #[test]
    fn frame_buffers_are_fallible() {
        let one = Tensor::from_elem((1, 1, 1, 1), 0.5);
        let huge = one.broadcast((1 << 21, 1 << 21, 4, 4)).unwrap();
        let e = upsample(huge, 2, Upsample::Bicubic).unwrap_err();
        assert!(matches!(e, Error::OutOfMemory { ref what, .. } if what == "the upsampling buffer"), "{e}");
        let e = pad_reflect(huge, 8, 8).unwrap_err();
        assert!(matches!(e, Error::OutOfMemory { ref what, .. } if what == "the padded image"), "{e}");
        let e = upsample(huge, 1, Upsample::Nearest).unwrap_err();
        assert!(matches!(e, Error::OutOfMemory { .. }), "{e}");
    }
}
