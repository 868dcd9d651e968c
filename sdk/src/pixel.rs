//! Caller pixel buffers ↔ planar `f32` RGB.
//!
//! The C ABI and camera pipelines hand us frames in many layouts (packed RGB/BGR with or
//! without alpha, gray, 16-bit RGB, planar float, NV12 from an ISP), each with its own row
//! stride. This module validates a buffer against its [`Layout`] and converts it to the SDK's
//! working form — a `[1, 3, H, W]` tensor with values in `[0, 1]` (plus the alpha plane, kept
//! aside and written back unchanged) — and back. No bridge math here.

use crate::{Error, Result, Tensor};

/// Pixel formats accepted at the SDK's buffer boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PixelFormat {
    /// 8-bit R, G, B.
    Rgb8,
    /// 8-bit R, G, B, A (alpha passed through).
    Rgba8,
    /// 8-bit B, G, R.
    Bgr8,
    /// 8-bit B, G, R, A (alpha passed through).
    Bgra8,
    /// 8-bit luma; replicated to RGB on input, BT.601 luma of the result on output.
    Gray8,
    /// 16-bit R, G, B, native endianness, full scale 65535.
    Rgb16,
    /// Three `f32` planes R, G, B, values in `[0, 1]`; `stride` is the byte pitch of one plane's
    /// rows and the planes follow each other every `stride·height` bytes.
    RgbF32Planar,
    /// NV12: a luma plane (`height` rows) followed by an interleaved U/V plane at half
    /// resolution (`height/2` rows), both with pitch `stride`. Width and height must be even.
    Nv12,
}

impl PixelFormat {
    /// Bytes of one row of `width` pixels (of the first plane for planar formats).
    fn row_bytes(self, width: usize) -> Option<usize> {
        let bpp = match self {
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => 3,
            PixelFormat::Rgba8 | PixelFormat::Bgra8 => 4,
            PixelFormat::Gray8 | PixelFormat::Nv12 => 1,
            PixelFormat::Rgb16 => 6,
            PixelFormat::RgbF32Planar => 4,
        };
        width.checked_mul(bpp)
    }

    /// Whether the format carries an alpha channel.
    pub fn has_alpha(self) -> bool {
        matches!(self, PixelFormat::Rgba8 | PixelFormat::Bgra8)
    }
}

/// YUV → RGB matrix for [`PixelFormat::Nv12`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum YuvMatrix {
    /// ITU-R BT.601 (SD; most camera ISPs' default).
    #[default]
    Bt601,
    /// ITU-R BT.709 (HD).
    Bt709,
}

/// How a caller's buffer is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Bytes from one row to the next (of each plane for planar formats); at least one row.
    pub stride: usize,
    /// Pixel format.
    pub format: PixelFormat,
    /// NV12 only: the YUV matrix.
    pub yuv_matrix: YuvMatrix,
    /// NV12 only: full-range (0–255) rather than video-range (Y 16–235, UV 16–240) YUV.
    pub yuv_full_range: bool,
}

impl Layout {
    /// A tightly packed layout (stride = one row).
    pub fn packed(width: usize, height: usize, format: PixelFormat) -> Result<Self> {
        let stride = format.row_bytes(width).ok_or_else(|| Error::param("width", "row size overflows"))?;
        Ok(Layout { width, height, stride, format, yuv_matrix: YuvMatrix::default(), yuv_full_range: false })
    }

    /// The number of bytes a buffer with this layout needs, after validating the layout:
    /// non-zero size, stride at least one row, NV12 dimensions even, no overflow.
    pub fn required_len(&self) -> Result<usize> {
        if self.width == 0 || self.height == 0 {
            return Err(Error::param("image size", format!("{}×{} is empty", self.width, self.height)));
        }
        let row = self.format.row_bytes(self.width).ok_or_else(|| Error::param("width", "row size overflows"))?;
        if self.stride < row {
            return Err(Error::param("stride", format!("{} bytes is smaller than a row ({row} bytes)", self.stride)));
        }
        if self.format == PixelFormat::RgbF32Planar && self.stride % 4 != 0 {
            return Err(Error::param("stride", "planar f32 rows must start on 4-byte boundaries"));
        }
        if self.format == PixelFormat::Rgb16 && self.stride % 2 != 0 {
            return Err(Error::param("stride", "16-bit rows must start on 2-byte boundaries"));
        }
        let rows = match self.format {
            PixelFormat::Nv12 => {
                if self.width % 2 != 0 || self.height % 2 != 0 {
                    return Err(Error::param("image size", "NV12 needs an even width and height"));
                }
                // Overflows only where `usize` is 32 bits, but then it must be an error.
                self.height.checked_add(self.height / 2).ok_or_else(|| Error::param("image size", "height overflows"))?
            }
            PixelFormat::RgbF32Planar => self.height.checked_mul(3).ok_or_else(|| Error::param("image size", "height overflows"))?,
            _ => self.height,
        };
        // The last row needs only `row` bytes, not a whole stride. A slice (and so a caller's
        // buffer) holds at most `isize::MAX` bytes: more is an overflow, typically a negative
        // stride or size cast to `size_t`.
        let need = (rows - 1).checked_mul(self.stride).and_then(|v| v.checked_add(row));
        match need {
            Some(n) if n <= isize::MAX as usize => Ok(n),
            _ if self.stride > isize::MAX as usize => {
                Err(Error::param("stride", format!("{} bytes is larger than any buffer (a negative stride?)", self.stride)))
            }
            _ => Err(Error::param(
                "image size",
                format!("{}×{} with stride {} needs more bytes than a buffer can hold", self.width, self.height, self.stride),
            )),
        }
    }
}

/// An image in the SDK's working form.
#[derive(Clone, Debug, PartialEq)]
pub struct Planar {
    /// `[1, 3, H, W]`, values in `[0, 1]` (not clamped on input for float formats).
    pub rgb: Tensor,
    /// The alpha plane (`H·W` values in `[0, 1]`), for formats that carry one.
    pub alpha: Option<Vec<f32>>,
}

/// Convert a caller buffer to planar RGB.
pub fn decode(data: &[u8], layout: &Layout) -> Result<Planar> {
    let need = layout.required_len()?;
    if data.len() < need {
        return Err(Error::param("buffer", format!("{} bytes, the layout needs {need}", data.len())));
    }
    let (w, h, st) = (layout.width, layout.height, layout.stride);
    // `w·h` ≤ `need` ≤ `isize::MAX`, so the sizes below do not overflow; the allocator may still
    // refuse them (a typed error, not an abort).
    let mut rgb: Tensor = crate::alloc::try_zeros((1, 3, h, w), "the planar RGB image")?;
    let mut alpha = match layout.format.has_alpha() {
        true => Some(crate::alloc::try_vec(w * h, 0f32, "the alpha plane")?),
        false => None,
    };
    let u8s = |v: u8| v as f32 / 255.0;
    for y in 0..h {
        let row = &data[y * st..];
        for x in 0..w {
            let px = match layout.format {
                PixelFormat::Rgb8 => [u8s(row[3 * x]), u8s(row[3 * x + 1]), u8s(row[3 * x + 2])],
                PixelFormat::Bgr8 => [u8s(row[3 * x + 2]), u8s(row[3 * x + 1]), u8s(row[3 * x])],
                PixelFormat::Rgba8 | PixelFormat::Bgra8 => {
                    let p = &row[4 * x..4 * x + 4];
                    if let Some(a) = alpha.as_mut() {
                        a[y * w + x] = u8s(p[3]);
                    }
                    if layout.format == PixelFormat::Rgba8 {
                        [u8s(p[0]), u8s(p[1]), u8s(p[2])]
                    } else {
                        [u8s(p[2]), u8s(p[1]), u8s(p[0])]
                    }
                }
                PixelFormat::Gray8 => [u8s(row[x]); 3],
                PixelFormat::Rgb16 => {
                    let c = |k: usize| u16::from_ne_bytes([row[6 * x + 2 * k], row[6 * x + 2 * k + 1]]) as f32 / 65535.0;
                    [c(0), c(1), c(2)]
                }
                PixelFormat::RgbF32Planar => {
                    let c = |k: usize| {
                        let o = (k * h + y) * st + 4 * x;
                        f32::from_ne_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]])
                    };
                    [c(0), c(1), c(2)]
                }
                PixelFormat::Nv12 => {
                    let yv = row[x];
                    let uv = &data[(h + y / 2) * st + (x & !1)..];
                    yuv_to_rgb(yv, uv[0], uv[1], layout)
                }
            };
            for (c, v) in px.into_iter().enumerate() {
                rgb[[0, c, y, x]] = v;
            }
        }
    }
    if layout.format == PixelFormat::RgbF32Planar && rgb.iter().any(|v| !v.is_finite()) {
        return Err(Error::param("buffer", "planar f32 input contains NaN or Inf"));
    }
    Ok(Planar { rgb, alpha })
}

/// Write planar RGB (values clamped to `[0, 1]` for integer formats) into a caller buffer.
/// `p.rgb` must be `[1, 3, layout.height, layout.width]`; the alpha plane is written where the
/// format has one (opaque if `p.alpha` is `None`).
pub fn encode(p: &Planar, layout: &Layout, out: &mut [u8]) -> Result<()> {
    let need = layout.required_len()?;
    if out.len() < need {
        return Err(Error::param("output buffer", format!("{} bytes, the layout needs {need}", out.len())));
    }
    let (w, h, st) = (layout.width, layout.height, layout.stride);
    if p.rgb.shape() != [1, 3, h, w] {
        return Err(Error::shape("image to encode", &[1, 3, h, w], p.rgb.shape()));
    }
    if let Some(a) = &p.alpha {
        if a.len() != w * h {
            return Err(Error::shape("alpha plane", &[h, w], &[a.len()]));
        }
    }
    let q8 = |v: f32| (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
    let px = |x: usize, y: usize| [p.rgb[[0, 0, y, x]], p.rgb[[0, 1, y, x]], p.rgb[[0, 2, y, x]]];
    for y in 0..h {
        for x in 0..w {
            let [r, g, b] = px(x, y);
            let a = p.alpha.as_ref().map_or(1.0, |a| a[y * w + x]);
            let o = y * st;
            match layout.format {
                PixelFormat::Rgb8 => out[o + 3 * x..o + 3 * x + 3].copy_from_slice(&[q8(r), q8(g), q8(b)]),
                PixelFormat::Bgr8 => out[o + 3 * x..o + 3 * x + 3].copy_from_slice(&[q8(b), q8(g), q8(r)]),
                PixelFormat::Rgba8 => out[o + 4 * x..o + 4 * x + 4].copy_from_slice(&[q8(r), q8(g), q8(b), q8(a)]),
                PixelFormat::Bgra8 => out[o + 4 * x..o + 4 * x + 4].copy_from_slice(&[q8(b), q8(g), q8(r), q8(a)]),
                PixelFormat::Gray8 => out[o + x] = q8(0.299 * r + 0.587 * g + 0.114 * b),
                PixelFormat::Rgb16 => {
                    for (k, v) in [r, g, b].into_iter().enumerate() {
                        let q = (v.clamp(0.0, 1.0) * 65535.0 + 0.5) as u16;
                        out[o + 6 * x + 2 * k..o + 6 * x + 2 * k + 2].copy_from_slice(&q.to_ne_bytes());
                    }
                }
                PixelFormat::RgbF32Planar => {
                    for (k, v) in [r, g, b].into_iter().enumerate() {
                        let o = (k * h + y) * st + 4 * x;
                        out[o..o + 4].copy_from_slice(&v.to_ne_bytes());
                    }
                }
                PixelFormat::Nv12 => out[o + x] = rgb_to_y(r, g, b, layout),
            }
        }
    }
    if layout.format == PixelFormat::Nv12 {
        // Chroma: each U/V pair from the mean RGB of its 2×2 block.
        for cy in 0..h / 2 {
            for cx in 0..w / 2 {
                let mut m = [0f32; 3];
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let v = px(2 * cx + dx, 2 * cy + dy);
                    for k in 0..3 {
                        m[k] += 0.25 * v[k];
                    }
                }
                let (u, v) = rgb_to_uv(m[0], m[1], m[2], layout);
                let o = (h + cy) * st + 2 * cx;
                out[o] = u;
                out[o + 1] = v;
            }
        }
    }
    Ok(())
}

/// (Kr, Kb) luma weights of a matrix.
fn kr_kb(m: YuvMatrix) -> (f32, f32) {
    match m {
        YuvMatrix::Bt601 => (0.299, 0.114),
        YuvMatrix::Bt709 => (0.2126, 0.0722),
    }
}

/// Scale and offset of luma and chroma codes for the range.
fn ranges(full: bool) -> ((f32, f32), (f32, f32)) {
    if full { ((255.0, 0.0), (255.0, 128.0)) } else { ((219.0, 16.0), (224.0, 128.0)) }
}

fn yuv_to_rgb(y: u8, u: u8, v: u8, l: &Layout) -> [f32; 3] {
    let (kr, kb) = kr_kb(l.yuv_matrix);
    let ((ys, yo), (cs, co)) = ranges(l.yuv_full_range);
    let yy = (y as f32 - yo) / ys;
    let pb = (u as f32 - co) / cs;
    let pr = (v as f32 - co) / cs;
    let r = yy + 2.0 * (1.0 - kr) * pr;
    let b = yy + 2.0 * (1.0 - kb) * pb;
    let g = (yy - kr * r - kb * b) / (1.0 - kr - kb);
    [r.clamp(0.0, 1.0), g.clamp(0.0, 1.0), b.clamp(0.0, 1.0)]
}

fn rgb_to_y(r: f32, g: f32, b: f32, l: &Layout) -> u8 {
    let (kr, kb) = kr_kb(l.yuv_matrix);
    let ((ys, yo), _) = ranges(l.yuv_full_range);
    let (r, g, b) = (r.clamp(0.0, 1.0), g.clamp(0.0, 1.0), b.clamp(0.0, 1.0));
    let yy = kr * r + (1.0 - kr - kb) * g + kb * b;
    (yy * ys + yo + 0.5).clamp(0.0, 255.0) as u8
}

fn rgb_to_uv(r: f32, g: f32, b: f32, l: &Layout) -> (u8, u8) {
    let (kr, kb) = kr_kb(l.yuv_matrix);
    let (_, (cs, co)) = ranges(l.yuv_full_range);
    let (r, g, b) = (r.clamp(0.0, 1.0), g.clamp(0.0, 1.0), b.clamp(0.0, 1.0));
    let yy = kr * r + (1.0 - kr - kb) * g + kb * b;
    let pb = (b - yy) / (2.0 * (1.0 - kb));
    let pr = (r - yy) / (2.0 * (1.0 - kr));
    ((pb * cs + co + 0.5).clamp(0.0, 255.0) as u8, (pr * cs + co + 0.5).clamp(0.0, 255.0) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: usize, h: usize) -> Planar {
        let rgb = Tensor::from_shape_fn((1, 3, h, w), |(_, c, y, x)| {
            ((x * 37 + y * 11 + c * 71) % 256) as f32 / 255.0
        });
        Planar { rgb, alpha: None }
    }

    #[test]
    fn packed_formats_round_trip_exactly_with_padding() {
        let (w, h) = (7, 5);
        for f in [PixelFormat::Rgb8, PixelFormat::Bgr8, PixelFormat::Rgba8, PixelFormat::Bgra8, PixelFormat::Rgb16, PixelFormat::RgbF32Planar] {
            let mut l = Layout::packed(w, h, f).unwrap();
            l.stride += 12; // padded rows
            let mut p = gradient(w, h);
            if f.has_alpha() {
                p.alpha = Some((0..w * h).map(|i| (i % 256) as f32 / 255.0).collect());
            }
            let mut buf = vec![0xAB; l.required_len().unwrap()];
            encode(&p, &l, &mut buf).unwrap();
            let back = decode(&buf, &l).unwrap();
            let err = back.rgb.iter().zip(p.rgb.iter()).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err < 1e-6, "{f:?}: {err}");
            assert_eq!(back.alpha, p.alpha, "{f:?}");
        }
    }

    #[test]
    fn bgr_is_rgb_reversed() {
        let l = Layout::packed(1, 1, PixelFormat::Bgr8).unwrap();
        let p = decode(&[10, 20, 30], &l).unwrap();
        assert_eq!(p.rgb[[0, 0, 0, 0]], 30.0 / 255.0);
        assert_eq!(p.rgb[[0, 2, 0, 0]], 10.0 / 255.0);
    }

    #[test]
    fn gray_replicates_and_returns_luma() {
        let l = Layout::packed(2, 1, PixelFormat::Gray8).unwrap();
        let p = decode(&[0, 200], &l).unwrap();
        for c in 0..3 {
            assert_eq!(p.rgb[[0, c, 0, 1]], 200.0 / 255.0);
        }
        let mut out = [0u8; 2];
        encode(&p, &l, &mut out).unwrap();
        assert_eq!(out, [0, 200]);
    }

    #[test]
    fn nv12_round_trip_is_close() {
        let (w, h) = (8, 6);
        for full in [false, true] {
            for m in [YuvMatrix::Bt601, YuvMatrix::Bt709] {
                let mut l = Layout::packed(w, h, PixelFormat::Nv12).unwrap();
                l.stride = 16;
                l.yuv_matrix = m;
                l.yuv_full_range = full;
                // Smooth content so 4:2:0 subsampling loses little.
                let rgb = Tensor::from_shape_fn((1, 3, h, w), |(_, c, _, _)| [0.8, 0.4, 0.2][c]);
                let p = Planar { rgb, alpha: None };
                let mut buf = vec![0u8; l.required_len().unwrap()];
                encode(&p, &l, &mut buf).unwrap();
                let back = decode(&buf, &l).unwrap();
                let err = back.rgb.iter().zip(p.rgb.iter()).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(err < 0.02, "{m:?} full={full}: {err}");
            }
        }
    }

    /// Strides and sizes from C are untrusted: a negative stride cast to `size_t`, a stride
    /// past `isize::MAX`, or a byte count no slice can hold is a typed error naming the cause,
    /// checked before any buffer is touched.
    #[test]
    fn hostile_strides_and_sizes_are_typed_errors() {
        let named = |l: Layout| match l.required_len() {
            Err(Error::InvalidParam { name, .. }) => name,
            other => panic!("{l:?}: {other:?}"),
        };
        let ok = Layout::packed(4, 4, PixelFormat::Rgb8).unwrap();
        assert_eq!(named(Layout { stride: -12isize as usize, ..ok }), "stride");
        assert_eq!(named(Layout { stride: usize::MAX, ..ok }), "stride");
        assert_eq!(named(Layout { stride: isize::MAX as usize + 1, ..ok }), "stride");
        // A legal stride whose total exceeds `isize::MAX`: the image is too big, not the stride.
        let big = Layout { width: 1 << 20, height: 1 << 20, stride: 3 << 44, ..ok };
        assert_eq!(named(big), "image size");
        // Just at the edge: (rows − 1)·stride + row = isize::MAX is still representable.
        let edge = Layout { width: 1, height: 2, stride: isize::MAX as usize - 3, format: PixelFormat::Rgb8, ..ok };
        assert_eq!(edge.required_len().unwrap(), isize::MAX as usize);
        let over = Layout { stride: isize::MAX as usize - 2, ..edge };
        assert_eq!(named(over), "image size");
        // NV12's chroma rows and planar float's planes are counted without overflow.
        let nv = Layout { width: 2, height: usize::MAX - 1, stride: 2, format: PixelFormat::Nv12, ..ok };
        assert!(nv.required_len().is_err());
        let planar = Layout { width: 1, height: usize::MAX / 2, stride: 4, format: PixelFormat::RgbF32Planar, ..ok };
        assert_eq!(named(planar), "image size");
    }

    #[test]
    fn bad_layouts_are_typed_errors() {
        let ok = Layout::packed(4, 4, PixelFormat::Rgb8).unwrap();
        assert!(matches!(Layout { width: 0, ..ok }.required_len(), Err(Error::InvalidParam { .. })));
        assert!(matches!(Layout { stride: 11, ..ok }.required_len(), Err(Error::InvalidParam { .. })));
        let nv = Layout { format: PixelFormat::Nv12, width: 3, stride: 4, ..ok };
        assert!(nv.required_len().is_err());
        let huge = Layout { width: usize::MAX / 2, stride: usize::MAX, ..ok };
        assert!(huge.required_len().is_err());
        assert!(decode(&[0u8; 10], &ok).is_err(), "short buffer");
        let p = gradient(4, 4);
        assert!(encode(&p, &ok, &mut [0u8; 20]).is_err(), "short output");
        let l5 = Layout::packed(5, 4, PixelFormat::Rgb8).unwrap();
        assert!(encode(&p, &l5, &mut [0u8; 60]).is_err(), "shape mismatch");
        let mut fbuf = vec![0u8; Layout::packed(1, 1, PixelFormat::RgbF32Planar).unwrap().required_len().unwrap()];
        fbuf[..4].copy_from_slice(&f32::NAN.to_ne_bytes());
        assert!(decode(&fbuf, &Layout::packed(1, 1, PixelFormat::RgbF32Planar).unwrap()).is_err());
    }
}
