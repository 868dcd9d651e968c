//! Reading the input image (once, within limits) and writing the output (encoded in memory,
//! then a temporary file in the target's folder, fsync, rename).

use bridge::image::Image;
use std::io::Write;
use std::path::{Path, PathBuf};

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
            Image::U8 { data, .. } => image::ImageBuffer::<image::Rgb<u8>, _>::from_raw(w, h, data.clone()).map(image::DynamicImage::ImageRgb8),
            Image::F32 { data, .. } => image::ImageBuffer::<image::Rgb<u8>, _>::from_raw(
                w,
                h,
                data.iter().map(|&v| (v * 255.0).round() as u8).collect(),
            )
            .map(image::DynamicImage::ImageRgb8),
        }
        .ok_or_else(|| img_err(path, "internal: output buffer size"))?;
        let mut bytes = std::io::Cursor::new(Vec::new());
        dynimg.write_to(&mut bytes, self.0).map_err(|e| img_err(path, e))?;
        Ok(bytes.into_inner())
    }
}

/// Write `bytes` to `path` so that `path` either keeps its old content or gets all of the new:
/// a new temporary file next to the target (`create_new`, so nothing is clobbered), written,
/// fsynced, then renamed over the target (a symbolic link is followed: its target is replaced).
/// `keep` is asked last, before the rename: `false` drops the temporary file and returns
/// [`bridge::Error::Cancelled`]. A target that exists but is not a regular file (a device such
/// as `/dev/full`, a pipe) is written in place, every write and the flush checked.
pub fn write_atomic(path: &Path, bytes: &[u8], keep: impl Fn() -> bool) -> bridge::Result<()> {
    let target = match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => return write_special(path, bytes, keep),
        Ok(_) => path.canonicalize().map_err(|e| io_err(path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(io_err(path, e)),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target.file_name().ok_or_else(|| img_err(path, "not a file name"))?.to_string_lossy().into_owned();
    let (tmp, mut file) = create_temp(&dir, &name)?;
    let written = (|| -> bridge::Result<()> {
        file.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
        file.sync_all().map_err(|e| io_err(&tmp, e))?;
        drop(file);
        if !keep() {
            return Err(bridge::Error::Cancelled);
        }
        std::fs::rename(&tmp, &target).map_err(|e| io_err(&target, e))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename itself durable; some file systems cannot fsync a folder (EINVAL).
    match std::fs::File::open(&dir).and_then(|d| d.sync_all()) {
        Err(e) if e.raw_os_error() != Some(libc::EINVAL) => Err(io_err(&dir, e)),
        _ => Ok(()),
    }
}

/// A fresh file `.NAME.bridge-XXXXXXXX.tmp` in `dir` that did not exist before.
fn create_temp(dir: &Path, name: &str) -> bridge::Result<(PathBuf, std::fs::File)> {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let mut last = None;
    for k in 0u32..64 {
        let tag = (seed ^ std::process::id().rotate_left(16)).wrapping_add(k.wrapping_mul(0x9E37_79B9));
        let tmp = dir.join(format!(".{name}.bridge-{tag:08x}.tmp"));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(io_err(&tmp, e)),
        }
    }
    Err(io_err(dir, last.unwrap_or_else(|| std::io::Error::other("no free temporary file name"))))
}

fn write_special(path: &Path, bytes: &[u8], keep: impl Fn() -> bool) -> bridge::Result<()> {
    if !keep() {
        return Err(bridge::Error::Cancelled);
    }
    let mut f = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| io_err(path, e))?;
    f.write_all(bytes).map_err(|e| io_err(path, e))?;
    f.flush().map_err(|e| io_err(path, e))?;
    // Devices and pipes may not support fsync (EINVAL); any other error is a failed write.
    match f.sync_all() {
        Err(e) if e.raw_os_error() != Some(libc::EINVAL) => Err(io_err(path, e)),
        _ => Ok(()),
    }
}
