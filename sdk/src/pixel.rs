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
        if self.format == PixelFormat::RgbF32Planar && !self.stride.is_multiple_of(4) {
            return Err(Error::param("stride", "planar f32 rows must start on 4-byte boundaries"));
        }
        if self.format == PixelFormat::Rgb16 && !self.stride.is_multiple_of(2) {
            return Err(Error::param("stride", "16-bit rows must start on 2-byte boundaries"));
        }
        let rows = match self.format {
            PixelFormat::Nv12 => {
                if !self.width.is_multiple_of(2) || !self.height.is_multiple_of(2) {
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

impl Layout {
    /// The two-plane view of a one-buffer NV12 layout: the luma plane at byte 0, the chroma
    /// plane at `height·stride`, both with pitch `stride`. `None` for other formats.
    pub fn nv12_planes(&self) -> Option<(Nv12Layout, usize)> {
        (self.format == PixelFormat::Nv12).then(|| {
            let l = Nv12Layout {
                width: self.width,
                height: self.height,
                y_pitch: self.stride,
                uv_pitch: self.stride,
                yuv_matrix: self.yuv_matrix,
                yuv_full_range: self.yuv_full_range,
            };
            (l, self.height.saturating_mul(self.stride))
        })
    }
}

/// NV12 in two separate planes, each with its own pitch, as camera stacks hand it out (V4L2
/// multiplanar buffers, `NvBufSurface`, GStreamer video frames with plane offsets): a luma plane
/// of `height` rows of `width` bytes, and an interleaved U/V plane of `height/2` rows of `width`
/// bytes (`width/2` U, V pairs). Width and height must be even. The one-buffer
/// [`PixelFormat::Nv12`] is the special case `y_pitch = uv_pitch = stride` with the chroma plane
/// at byte `height·stride`; the conversions are bit-identical.
///
/// Convert with [`decode_nv12`] and [`encode_nv12`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Nv12Layout {
    /// Width in pixels (even).
    pub width: usize,
    /// Height in pixels (even).
    pub height: usize,
    /// Bytes from one luma row to the next; at least `width`.
    pub y_pitch: usize,
    /// Bytes from one chroma row to the next; at least `width`.
    pub uv_pitch: usize,
    /// The YUV matrix.
    pub yuv_matrix: YuvMatrix,
    /// Full-range (0–255) rather than video-range (Y 16–235, UV 16–240) YUV.
    pub yuv_full_range: bool,
}

impl Nv12Layout {
    /// Tightly packed planes (both pitches = `width`), BT.601 video range.
    pub fn new(width: usize, height: usize) -> Self {
        Nv12Layout { width, height, y_pitch: width, uv_pitch: width, yuv_matrix: YuvMatrix::default(), yuv_full_range: false }
    }

    /// The bytes the luma and the chroma plane need, `(y, uv)`, after validating the layout:
    /// non-zero, even width and height; each pitch at least `width` (errors name `y_pitch` or
    /// `uv_pitch`); no byte count past `isize::MAX` (a pitch that alone exceeds it, typically a
    /// negative pitch cast to `usize`, is a pitch error, anything else an image-size error).
    /// Check that planes of `y_len` and `uv_len` bytes hold this layout (longer is fine).
    fn check_planes(&self, y_len: usize, uv_len: usize) -> Result<()> {
        let (need_y, need_uv) = self.plane_lens()?;
        if y_len < need_y {
            return Err(Error::param("y plane", format!("{y_len} bytes, the layout needs {need_y}")));
        }
        if uv_len < need_uv {
            return Err(Error::param("uv plane", format!("{uv_len} bytes, the layout needs {need_uv}")));
        }
        Ok(())
    }

    pub fn plane_lens(&self) -> Result<(usize, usize)> {
        if self.width == 0 || self.height == 0 {
            return Err(Error::param("image size", format!("{}×{} is empty", self.width, self.height)));
        }
        for (name, pitch) in [("y_pitch", self.y_pitch), ("uv_pitch", self.uv_pitch)] {
            if pitch < self.width {
                return Err(Error::param(name, format!("{pitch} bytes is smaller than a row ({} bytes)", self.width)));
            }
        }
        if !self.width.is_multiple_of(2) || !self.height.is_multiple_of(2) {
            return Err(Error::param("image size", "NV12 needs an even width and height"));
        }
        let plane = |name: &str, rows: usize, pitch: usize| {
            // The last row needs only `width` bytes, not a whole pitch.
            match (rows - 1).checked_mul(pitch).and_then(|v| v.checked_add(self.width)) {
                Some(n) if n <= isize::MAX as usize => Ok(n),
                _ if pitch > isize::MAX as usize => {
                    Err(Error::param(name, format!("{pitch} bytes is larger than any buffer (a negative pitch?)")))
                }
                _ => Err(Error::param(
                    "image size",
                    format!("{}×{} with {name} {pitch} needs more bytes than a buffer can hold", self.width, self.height),
                )),
            }
        };
        Ok((plane("y_pitch", self.height, self.y_pitch)?, plane("uv_pitch", self.height / 2, self.uv_pitch)?))
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
    if let Some((nl, uv_at)) = layout.nv12_planes() {
        // `uv_at` ≤ `need` (the chroma plane follows `height` whole luma rows).
        return decode_nv12(&data[..uv_at], &data[uv_at..need], &nl);
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
                    if layout.format == PixelFormat::Rgba8 { [u8s(p[0]), u8s(p[1]), u8s(p[2])] } else { [u8s(p[2]), u8s(p[1]), u8s(p[0])] }
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
                PixelFormat::Nv12 => unreachable!("NV12 is decoded by decode_nv12"),
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
    if let Some(a) = &p.alpha
        && a.len() != w * h
    {
        return Err(Error::shape("alpha plane", &[h, w], &[a.len()]));
    }
    if let Some((nl, uv_at)) = layout.nv12_planes() {
        let (y, uv) = out[..need].split_at_mut(uv_at);
        return encode_nv12(p, &nl, y, uv);
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
                PixelFormat::Nv12 => unreachable!("NV12 is encoded by encode_nv12"),
            }
        }
    }
    Ok(())
}

/// Convert two-plane NV12 ([`Nv12Layout`]) to planar RGB. `y` must hold at least the luma
/// plane's bytes and `uv` the chroma plane's ([`Nv12Layout::plane_lens`]); longer slices are
/// fine (only the layout's bytes are read). The planes may be anywhere, even overlapping.
pub fn decode_nv12(y: &[u8], uv: &[u8], layout: &Nv12Layout) -> Result<Planar> {
    layout.check_planes(y.len(), uv.len())?;
    let (w, h) = (layout.width, layout.height);
    // `w·h` ≤ the luma plane's bytes ≤ `isize::MAX`: no overflow; the allocation may still be
    // refused.
    let mut rgb: Tensor = crate::alloc::try_zeros((1, 3, h, w), "the planar RGB image")?;
    for row in 0..h {
        let yr = &y[row * layout.y_pitch..][..w];
        let cr = &uv[(row / 2) * layout.uv_pitch..][..w];
        for (x, &yv) in yr.iter().enumerate() {
            let c = x & !1;
            let px = yuv_to_rgb(yv, cr[c], cr[c + 1], layout.yuv_matrix, layout.yuv_full_range);
            for (k, v) in px.into_iter().enumerate() {
                rgb[[0, k, row, x]] = v;
            }
        }
    }
    Ok(Planar { rgb, alpha: None })
}

/// Write planar RGB (`p.rgb` is `[1, 3, height, width]`; values clamped to `[0, 1]`; alpha
/// ignored) as two-plane NV12: luma per pixel, each U/V pair from the mean RGB of its 2×2
/// block. Writes only the layout's bytes of `y` and `uv` (row padding is left as it was).
/// Two `&mut` slices cannot overlap, so neither can the planes.
pub fn encode_nv12(p: &Planar, layout: &Nv12Layout, y: &mut [u8], uv: &mut [u8]) -> Result<()> {
    layout.check_planes(y.len(), uv.len())?;
    let (w, h) = (layout.width, layout.height);
    if p.rgb.shape() != [1, 3, h, w] {
        return Err(Error::shape("image to encode", &[1, 3, h, w], p.rgb.shape()));
    }
    let (m, full) = (layout.yuv_matrix, layout.yuv_full_range);
    let px = |x: usize, y: usize| [p.rgb[[0, 0, y, x]], p.rgb[[0, 1, y, x]], p.rgb[[0, 2, y, x]]];
    for row in 0..h {
        let yr = &mut y[row * layout.y_pitch..][..w];
        for (x, out) in yr.iter_mut().enumerate() {
            let [r, g, b] = px(x, row);
            *out = rgb_to_y(r, g, b, m, full);
        }
    }
    for cy in 0..h / 2 {
        let cr = &mut uv[cy * layout.uv_pitch..][..w];
        for cx in 0..w / 2 {
            let mut mean = [0f32; 3];
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let v = px(2 * cx + dx, 2 * cy + dy);
                for k in 0..3 {
                    mean[k] += 0.25 * v[k];
                }
            }
            let (u, v) = rgb_to_uv(mean[0], mean[1], mean[2], m, full);
            cr[2 * cx] = u;
            cr[2 * cx + 1] = v;
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

fn yuv_to_rgb(y: u8, u: u8, v: u8, m: YuvMatrix, full: bool) -> [f32; 3] {
    let (kr, kb) = kr_kb(m);
    let ((ys, yo), (cs, co)) = ranges(full);
    let yy = (y as f32 - yo) / ys;
    let pb = (u as f32 - co) / cs;
    let pr = (v as f32 - co) / cs;
    let r = yy + 2.0 * (1.0 - kr) * pr;
    let b = yy + 2.0 * (1.0 - kb) * pb;
    let g = (yy - kr * r - kb * b) / (1.0 - kr - kb);
    [r.clamp(0.0, 1.0), g.clamp(0.0, 1.0), b.clamp(0.0, 1.0)]
}

fn rgb_to_y(r: f32, g: f32, b: f32, m: YuvMatrix, full: bool) -> u8 {
    let (kr, kb) = kr_kb(m);
    let ((ys, yo), _) = ranges(full);
    let (r, g, b) = (r.clamp(0.0, 1.0), g.clamp(0.0, 1.0), b.clamp(0.0, 1.0));
    let yy = kr * r + (1.0 - kr - kb) * g + kb * b;
    (yy * ys + yo + 0.5).clamp(0.0, 255.0) as u8
}

fn rgb_to_uv(r: f32, g: f32, b: f32, m: YuvMatrix, full: bool) -> (u8, u8) {
    let (kr, kb) = kr_kb(m);
    let (_, (cs, co)) = ranges(full);
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
        let rgb = Tensor::from_shape_fn((1, 3, h, w), |(_, c, y, x)| ((x * 37 + y * 11 + c * 71) % 256) as f32 / 255.0);
        Planar { rgb, alpha: None }
    }

    #[test]
    fn packed_formats_round_trip_exactly_with_padding() {
        let (w, h) = (7, 5);
        for f in
            [PixelFormat::Rgb8, PixelFormat::Bgr8, PixelFormat::Rgba8, PixelFormat::Bgra8, PixelFormat::Rgb16, PixelFormat::RgbF32Planar]
        {
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

    /// A fixed xorshift stream for test content and pitches (the cases must not change).
    fn stream(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }

    /// The one-buffer NV12 layout is two planes laid out contiguously: decoding it and
    /// decoding its two halves with `decode_nv12` give the same floats bit for bit, and
    /// encoding writes the same bytes.
    #[test]
    fn nv12_two_planes_equal_one_buffer_bit_for_bit() {
        let mut next = stream(0x0123_4567);
        for (w, h, pad) in [(2, 2, 0), (8, 6, 0), (10, 4, 6), (6, 8, 1)] {
            for (m, full) in [(YuvMatrix::Bt601, false), (YuvMatrix::Bt709, true)] {
                let l = Layout { stride: w + pad, yuv_matrix: m, yuv_full_range: full, ..Layout::packed(w, h, PixelFormat::Nv12).unwrap() };
                let need = l.required_len().unwrap();
                let buf: Vec<u8> = (0..need).map(|_| next() as u8).collect();
                let one = decode(&buf, &l).unwrap();
                let (nl, uv_at) = l.nv12_planes().unwrap();
                assert_eq!(nl.plane_lens().unwrap(), (uv_at - pad, need - uv_at));
                let two = decode_nv12(&buf[..uv_at], &buf[uv_at..], &nl).unwrap();
                assert!(one.rgb.iter().zip(two.rgb.iter()).all(|(a, b)| a.to_bits() == b.to_bits()), "{w}x{h}+{pad}");
                // And both index the one buffer as the NV12 format defines it: chroma row y/2
                // at byte (h + y/2)·stride, U at the even column, V after it.
                let st = l.stride;
                for (yy, xx) in [(0, 0), (h - 1, w - 1), (h / 2, 1), (1, w / 2)] {
                    let uv = (h + yy / 2) * st + (xx & !1);
                    let want = yuv_to_rgb(buf[yy * st + xx], buf[uv], buf[uv + 1], m, full);
                    let got = [0, 1, 2].map(|k| one.rgb[[0, k, yy, xx]]);
                    assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits), "{w}x{h}+{pad} at ({xx}, {yy})");
                }
                // Encode content that is not a round trip of the buffer (random floats).
                let p = Planar { rgb: Tensor::from_shape_fn((1, 3, h, w), |_| (next() % 1001) as f32 / 1000.0), alpha: None };
                let mut a = vec![0x5Au8; need];
                encode(&p, &l, &mut a).unwrap();
                let mut b = vec![0x5Au8; need];
                let (y, uv) = b.split_at_mut(uv_at);
                encode_nv12(&p, &nl, y, uv).unwrap();
                assert_eq!(a, b, "{w}x{h}+{pad}");
            }
        }
    }

    /// Separate planes with random, different pitches decode like the same pixels packed
    /// tightly, and encoding writes exactly the packed bytes, leaving row padding alone.
    #[test]
    fn nv12_random_pitches_match_packed_planes() {
        let mut next = stream(0x00C0_FFEE);
        for case in 0..40 {
            let (w, h) = (2 * (1 + next() as usize % 9), 2 * (1 + next() as usize % 7));
            let packed = Nv12Layout::new(w, h);
            let l = Nv12Layout { y_pitch: w + next() as usize % 40, uv_pitch: w + next() as usize % 40, ..packed };
            let (ny, nuv) = l.plane_lens().unwrap();
            let (py, puv) = packed.plane_lens().unwrap();
            assert_eq!((py, puv), (w * h, w * h / 2));
            let ty: Vec<u8> = (0..py).map(|_| next() as u8).collect();
            let tuv: Vec<u8> = (0..puv).map(|_| next() as u8).collect();
            // The same pixels at the padded pitches; padding bytes are a marker.
            let mut y = vec![0xEEu8; ny + next() as usize % 5];
            let mut uv = vec![0xEEu8; nuv];
            for r in 0..h {
                y[r * l.y_pitch..][..w].copy_from_slice(&ty[r * w..][..w]);
            }
            for r in 0..h / 2 {
                uv[r * l.uv_pitch..][..w].copy_from_slice(&tuv[r * w..][..w]);
            }
            let want = decode_nv12(&ty, &tuv, &packed).unwrap();
            assert_eq!(decode_nv12(&y, &uv, &l).unwrap(), want, "case {case}");
            let p = Planar { rgb: Tensor::from_shape_fn((1, 3, h, w), |_| (next() % 256) as f32 / 255.0), alpha: None };
            let (mut ey, mut euv) = (vec![0u8; py], vec![0u8; puv]);
            encode_nv12(&p, &packed, &mut ey, &mut euv).unwrap();
            let (mut gy, mut guv) = (vec![0xEEu8; y.len()], vec![0xEEu8; uv.len()]);
            encode_nv12(&p, &l, &mut gy, &mut guv).unwrap();
            for r in 0..h {
                let row = &gy[r * l.y_pitch..];
                assert_eq!(&row[..w], &ey[r * w..][..w], "case {case} y row {r}");
                let pad_end = if r + 1 < h { l.y_pitch } else { gy.len() - r * l.y_pitch };
                assert!(row[w..pad_end].iter().all(|&b| b == 0xEE), "case {case}: y padding written");
            }
            for r in 0..h / 2 {
                let row = &guv[r * l.uv_pitch..];
                assert_eq!(&row[..w], &euv[r * w..][..w], "case {case} uv row {r}");
                let pad_end = if r + 1 < h / 2 { l.uv_pitch } else { guv.len() - r * l.uv_pitch };
                assert!(row[w..pad_end].iter().all(|&b| b == 0xEE), "case {case}: uv padding written");
            }
        }
    }

    #[test]
    fn nv12_plane_errors_are_typed() {
        let named = |l: Nv12Layout| match l.plane_lens() {
            Err(Error::InvalidParam { name, .. }) => name,
            other => panic!("{l:?}: {other:?}"),
        };
        let ok = Nv12Layout { y_pitch: 8, uv_pitch: 12, ..Nv12Layout::new(6, 4) };
        assert_eq!(ok.plane_lens().unwrap(), (3 * 8 + 6, 12 + 6));
        assert_eq!(named(Nv12Layout { width: 0, ..ok }), "image size");
        assert_eq!(named(Nv12Layout { height: 0, ..ok }), "image size");
        assert_eq!(named(Nv12Layout { width: 5, ..ok }), "image size");
        assert_eq!(named(Nv12Layout { height: 3, ..ok }), "image size");
        assert_eq!(named(Nv12Layout { y_pitch: 5, ..ok }), "y_pitch");
        assert_eq!(named(Nv12Layout { uv_pitch: 5, ..ok }), "uv_pitch");
        assert_eq!(named(Nv12Layout { y_pitch: -16isize as usize, ..ok }), "y_pitch");
        assert_eq!(named(Nv12Layout { uv_pitch: usize::MAX, ..ok }), "uv_pitch");
        assert_eq!(named(Nv12Layout { uv_pitch: isize::MAX as usize + 1, ..ok }), "uv_pitch");
        // Pitches that fit but whose planes overflow a buffer: the image is too big.
        assert_eq!(named(Nv12Layout { height: 1 << 20, y_pitch: 1 << 44, ..ok }), "image size");
        assert_eq!(named(Nv12Layout { width: 2, height: usize::MAX - 1, y_pitch: 2, uv_pitch: 2, ..ok }), "image size");
        // Short planes and shape mismatches.
        let (ny, nuv) = ok.plane_lens().unwrap();
        let (y, uv) = (vec![0u8; ny], vec![128u8; nuv]);
        assert!(decode_nv12(&y, &uv, &ok).is_ok());
        assert!(matches!(decode_nv12(&y[..ny - 1], &uv, &ok), Err(Error::InvalidParam { name, .. }) if name == "y plane"));
        assert!(matches!(decode_nv12(&y, &uv[..nuv - 1], &ok), Err(Error::InvalidParam { name, .. }) if name == "uv plane"));
        let p = gradient(6, 4);
        let (mut oy, mut ouv) = (vec![0u8; ny], vec![0u8; nuv]);
        assert!(encode_nv12(&p, &ok, &mut oy, &mut ouv).is_ok());
        assert!(encode_nv12(&p, &ok, &mut oy[..ny - 1], &mut ouv).is_err());
        assert!(encode_nv12(&p, &ok, &mut oy, &mut ouv[..nuv - 1]).is_err());
        assert!(matches!(encode_nv12(&gradient(4, 4), &ok, &mut oy, &mut ouv), Err(Error::ShapeMismatch { .. })));
        // Other formats have no two-plane view.
        assert!(Layout::packed(4, 4, PixelFormat::Gray8).unwrap().nv12_planes().is_none());
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
