//! Reading the input image (once, within limits) and writing the output (encoded in memory,
//! then [`bridge::atomic_file::write_atomic`]: a temporary file in the target's folder, fsync, rename).

use bridge::image::Image;
use std::path::Path;

pub fn img_err(path: &Path, e: impl std::fmt::Display) -> bridge::Error {
    bridge::Error::Image(format!("{}: {e}", path.display()))
}

fn io_err(path: &Path, source: std::io::Error) -> bridge::Error {
    bridge::Error::Io { path: path.display().to_string(), source }
}

/// Decode `path`, opened once: the size comes from the header and is checked against
/// `max_input_pixels` before any pixel buffer exists, and the decoder itself runs under the
/// `image` crate's limits (width, height, bytes), so a file swapped or crafted after the check
/// cannot make it allocate more.
pub fn decode(path: &Path, max_input_pixels: u64) -> bridge::Result<image::DynamicImage> {
    use image::ImageDecoder;
    let mut reader = image::ImageReader::open(path).map_err(|e| io_err(path, e))?.with_guessed_format().map_err(|e| io_err(path, e))?;
    let side = u32::try_from(max_input_pixels).unwrap_or(u32::MAX);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    // The decoded buffer (at most 16 bytes a pixel: RGBA f32) plus the decoder's own buffers.
    limits.max_alloc = Some(max_input_pixels.saturating_mul(16).max(512 << 20));
    reader.limits(limits.clone());
    let decoder = reader.into_decoder().map_err(|e| img_err(path, e))?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > max_input_pixels {
        return Err(img_err(path, format!("{w}x{h} exceeds the pixel limit ({max_input_pixels} input pixels for this model)")));
    }
    limits.reserve(decoder.total_bytes()).map_err(|e| img_err(path, e))?;
    image::DynamicImage::from_decoder(decoder).map_err(|e| img_err(path, e))
}

/// The output encoder, chosen from the file name before anything is run or written.
#[derive(Clone, Copy, Debug)]
pub struct OutputFormat(image::ImageFormat);

impl OutputFormat {
    pub fn for_path(path: &Path) -> bridge::Result<Self> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "png" => Ok(OutputFormat(image::ImageFormat::Png)),
            "jpg" | "jpeg" => Ok(OutputFormat(image::ImageFormat::Jpeg)),
            "tif" | "tiff" => Ok(OutputFormat(image::ImageFormat::Tiff)),
            _ => Err(img_err(path, "unsupported output format (the extension must be .png, .jpg, .jpeg, .tif or .tiff)")),
        }
    }

    fn keeps16(self) -> bool {
        matches!(self.0, image::ImageFormat::Png | image::ImageFormat::Tiff)
    }

    /// The encoded file.
    pub fn encode(self, img: &Image, path: &Path) -> bridge::Result<Vec<u8>> {
        let (w, h) = (img.width() as u32, img.height() as u32);
        let dynimg = match img {
            Image::U16 { data, .. } if self.keeps16() => {
                image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(w, h, data.clone()).map(image::DynamicImage::ImageRgb16)
            }
            Image::U16 { data, .. } => image::ImageBuffer::<image::Rgb<u8>, _>::from_raw(
                w,
                h,
                data.iter().map(|&v| ((v as u32 * 255 + 32767) / 65535) as u8).collect(),
            )
            .map(image::DynamicImage::ImageRgb8),
            Image::U8 { data, .. } => {
                image::ImageBuffer::<image::Rgb<u8>, _>::from_raw(w, h, data.clone()).map(image::DynamicImage::ImageRgb8)
            }
            Image::F32 { data, .. } => {
                image::ImageBuffer::<image::Rgb<u8>, _>::from_raw(w, h, data.iter().map(|&v| (v * 255.0).round() as u8).collect())
                    .map(image::DynamicImage::ImageRgb8)
            }
        }
        .ok_or_else(|| img_err(path, "internal: output buffer size"))?;
        let mut bytes = std::io::Cursor::new(Vec::new());
        dynimg.write_to(&mut bytes, self.0).map_err(|e| img_err(path, e))?;
        Ok(bytes.into_inner())
    }
}
