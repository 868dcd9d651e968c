//! Photographs → `(clean, degraded)` training pairs as NCHW `f32` batches. No libtorch here, so
//! data handling builds and tests without it.
//!
//! * [`load_dir`] reads every `.jpg`/`.jpeg`/`.png` of a folder (sorted by name), as RGB in
//!   `[0, 1]`, optionally shrunk so the longer side is at most `max_side` (antialiased bicubic,
//!   [`crate::degrade::resize_bicubic`]). Shrinking multi-megapixel wallpapers to ~1024 px gives
//!   crops with the texture density of DIV2K-like training sets and averages away their JPEG noise.
//! * [`PairSampler::batch`] draws a batch for a training step: per item a photo, a crop position
//!   and (optionally) one of the 8 flips/transposes, then the degradation. Item `k` of step `s`
//!   uses the random stream `Rng::new(seed, s·B + k)`, so a batch depends only on
//!   `(seed, step, batch size)`: a resumed run sees exactly the batches it would have seen.
//! * [`eval_pairs`] gives one deterministic centre crop per photo, for held-out evaluation.
//!
//! The project's photos are fetched by `scripts/fetch-data.sh` into `.deps/data/{train,test}/`
//! (sources and licences in `docs/data.md`); [`default_data_dir`] finds that folder.

use crate::degrade::{Degradation, Rng, resize_bicubic};
use bridge::image::upsample;
use bridge::runtime::package::Upsample;
use bridge::{Error, Result, Tensor};
use ndarray::{Array3, ArrayView3, Axis, s};
use std::path::{Path, PathBuf};

/// One photograph, `[3, H, W]` RGB in `[0, 1]`.
#[derive(Clone, Debug)]
pub struct Photo {
    pub name: String,
    pub image: Array3<f32>,
}

/// `$BRIDGE_DATA_DIR` if set, else the workspace's `.deps/data` (where `scripts/fetch-data.sh`
/// puts the photos; its `train/`, `test/` (held out), `val/` (choosing defaults) and `unseen/`
/// (a second quality check, never used to choose anything) subfolders are the splits).
pub fn default_data_dir() -> PathBuf {
    match std::env::var_os("BRIDGE_DATA_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.deps/data"),
    }
}

/// Load every JPEG/PNG in `dir` (not recursive), sorted by file name. With `max_side`, photos
/// whose longer side exceeds it are shrunk (aspect ratio kept, sides rounded).
pub fn load_dir(dir: &Path, max_side: Option<usize>) -> Result<Vec<Photo>> {
    let io = |e| Error::Io { path: dir.display().to_string(), source: e };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            matches!(ext.as_deref(), Some("jpg" | "jpeg" | "png"))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(Error::Image(format!(
            "no .jpg/.png photos in {} (run scripts/fetch-data.sh for the project's data set)",
            dir.display()
        )));
    }
    paths.iter().map(|p| load_photo(p, max_side)).collect()
}

/// Load one photo (see [`load_dir`]).
pub fn load_photo(path: &Path, max_side: Option<usize>) -> Result<Photo> {
    let rgb = image::open(path).map_err(|e| Error::Image(format!("{}: {e}", path.display())))?.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let raw = rgb.into_raw();
    let mut img = Array3::from_shape_fn((3, h, w), |(c, y, x)| f32::from(raw[(y * w + x) * 3 + c]) / 255.0);
    if let Some(m) = max_side {
        let long = h.max(w);
        if m > 0 && long > m {
            let sc = m as f64 / long as f64;
            let (nh, nw) = (((h as f64 * sc).round() as usize).max(1), ((w as f64 * sc).round() as usize).max(1));
            img = resize_bicubic(img.view(), nh, nw)?.mapv(|v| v.clamp(0.0, 1.0));
        }
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Photo { name, image: img })
}

/// Value range of the tensors handed to the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// `[0, 1]`.
    Unit,
    /// `[−1, 1]` (`2v − 1`), what the bridge papers train on.
    Signed,
}

/// How training pairs are made.
#[derive(Clone, Debug)]
pub struct PairConfig {
    /// Side of the square clean crop (a multiple of the SR factor for `Bicubic`).
    pub crop: usize,
    pub degradation: Degradation,
    /// For `Bicubic`: bring the low-resolution image back to `crop × crop` with the SDK's own
    /// up-sampler (the model package's `upsample` kind), as bridge models take `x_T` at full size.
    /// `None` keeps the small image.
    pub upsample: Option<Upsample>,
    pub range: Range,
    /// Random flips/transposes (the 8 symmetries of the square).
    pub augment: bool,
    /// Colour augmentation (training only; `Colour::NONE` keeps the photo's colours).
    pub colour: Colour,
    /// Fraction of degraded inputs rounded to 8 bits (training only; 0: never, and the random
    /// streams are not touched). Why: the files users restore are 8-bit, and a deblurring network
    /// that only ever saw exact floating-point blur learns a near-exact inverse that amplifies
    /// 8-bit rounding (`models/deblur.md`).
    pub input_8bit_p: f64,
    /// A classical pre-pass run on each degraded input as the SDK runs it at restore time
    /// ([`bridge::prepass`]); inputs not rounded to 8 bits are then rounded to 16 bits, as a
    /// 16-bit file stores them, so the pre-pass picks the same noise ratio as on such a file.
    pub prepass: Option<bridge::prepass::Prepass>,
}

/// Colour augmentation of the clean crop before it is degraded.
///
/// Why: the demo models learned a colour cast (tinted grey photos, red-shifted SR) from a few
/// dozen mostly warm wallpapers. Permuting the RGB channels makes every hue equally likely, so a
/// consistent tint lowers no loss; grey crops teach that equal channels stay equal.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Colour {
    /// Fraction of crops turned grey (BT.601 luma in all three channels).
    pub gray_p: f64,
    /// Apply one of the 6 RGB channel permutations, uniformly.
    pub permute: bool,
}

impl Colour {
    /// No colour augmentation (the random streams are not touched).
    pub const NONE: Colour = Colour { gray_p: 0.0, permute: false };

    /// Apply to a `[3, H, W]` crop with draws from `rng` (none when disabled, so crops of
    /// configurations without colour augmentation are unchanged).
    pub fn apply(&self, crop: Array3<f32>, rng: &mut Rng) -> Array3<f32> {
        let mut crop = crop;
        if self.permute {
            const PERMS: [[usize; 3]; 6] = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
            let p = PERMS[rng.below(6)];
            if p != [0, 1, 2] {
                crop = ndarray::stack(
                    Axis(0),
                    &[crop.index_axis(Axis(0), p[0]), crop.index_axis(Axis(0), p[1]), crop.index_axis(Axis(0), p[2])],
                )
                .expect("three equal planes stack");
            }
        }
        if self.gray_p > 0.0 && rng.uniform() < self.gray_p {
            to_gray(&mut crop);
        }
        crop
    }
}

/// Turn a `[3, H, W]` image grey in place: BT.601 luma in all three channels.
pub fn to_gray(img: &mut Array3<f32>) {
    let y = &img.index_axis(Axis(0), 0) * 0.299 + &img.index_axis(Axis(0), 1) * 0.587 + &img.index_axis(Axis(0), 2) * 0.114;
    for mut c in img.outer_iter_mut() {
        c.assign(&y);
    }
}

/// A batch: `clean` `[B, 3, S, S]`, `degraded` `[B, 3, S', S']` (`S' = S` except SR without
/// up-sampling), `mask` `[B, 1, S, S]` (1 = missing) for inpainting.
#[derive(Clone, Debug)]
pub struct Batch {
    pub clean: Tensor,
    pub degraded: Tensor,
    pub mask: Option<Tensor>,
}

/// Draws training batches from a set of photos (see module docs for the determinism contract).
pub struct PairSampler<'a> {
    photos: &'a [Photo],
    cfg: PairConfig,
    seed: u64,
}

impl<'a> PairSampler<'a> {
    /// Checks that every photo is at least `crop × crop` and the crop suits the degradation.
    pub fn new(photos: &'a [Photo], cfg: PairConfig, seed: u64) -> Result<Self> {
        if photos.is_empty() || cfg.crop == 0 {
            return Err(Error::param("photos/crop", "need at least one photo and crop > 0".to_owned()));
        }
        if let Degradation::Bicubic { factor } = cfg.degradation
            && (factor == 0 || !cfg.crop.is_multiple_of(factor))
        {
            return Err(Error::param("crop", format!("{} is not a multiple of the SR factor {factor}", cfg.crop)));
        }
        if let Some(p) = photos.iter().find(|p| p.image.dim().1 < cfg.crop || p.image.dim().2 < cfg.crop) {
            let (_, h, w) = p.image.dim();
            let c = cfg.crop;
            return Err(Error::Image(format!("{} is {h}×{w}, smaller than the {c}×{c} crop", p.name)));
        }
        Ok(PairSampler { photos, cfg, seed })
    }

    /// The batch of training step `step` (pure function of seed, step and `size`).
    pub fn batch(&self, step: u64, size: usize) -> Result<Batch> {
        let items = (0..size)
            .map(|k| {
                let mut rng = Rng::new(self.seed, step * size as u64 + k as u64);
                let photo = &self.photos[rng.below(self.photos.len())].image;
                let (_, h, w) = photo.dim();
                let c = self.cfg.crop;
                let (y, x) = (rng.below(h - c + 1), rng.below(w - c + 1));
                let mut crop = photo.slice(s![.., y..y + c, x..x + c]).to_owned();
                if self.cfg.augment {
                    crop = dihedral(crop.view(), rng.below(8));
                }
                let crop = self.cfg.colour.apply(crop, &mut rng);
                self.pair(crop, &mut rng)
            })
            .collect::<Result<Vec<_>>>()?;
        stack(items)
    }

    fn pair(&self, clean: Array3<f32>, rng: &mut Rng) -> Result<Item> {
        make_pair(clean, &self.cfg, rng)
    }
}

struct Item {
    clean: Array3<f32>,
    degraded: Array3<f32>,
    mask: Option<ndarray::Array2<f32>>,
}

fn make_pair(clean: Array3<f32>, cfg: &PairConfig, rng: &mut Rng) -> Result<Item> {
    let d = cfg.degradation.apply(clean.view(), rng)?;
    let mut degraded = d.image;
    // Rounded as a file would store it (SR: the small image, before the package's up-sampler).
    let rounded8 = cfg.input_8bit_p > 0.0 && rng.uniform() < cfg.input_8bit_p;
    if rounded8 {
        degraded.mapv_inplace(quantize8);
    }
    if let Some(p) = &cfg.prepass {
        if !rounded8 {
            degraded.mapv_inplace(quantize16);
        }
        degraded = p.apply(degraded.view())?;
    }
    if let (Degradation::Bicubic { factor }, Some(kind)) = (&cfg.degradation, cfg.upsample) {
        let lr = degraded.insert_axis(Axis(0));
        degraded = upsample(lr.view(), *factor, kind)?.index_axis_move(Axis(0), 0);
    }
    let to_range = |a: Array3<f32>| match cfg.range {
        Range::Unit => a,
        Range::Signed => a.mapv(|v| 2.0 * v - 1.0),
    };
    Ok(Item { clean: to_range(clean), degraded: to_range(degraded), mask: d.mask })
}

fn stack(items: Vec<Item>) -> Result<Batch> {
    let first = items.first().ok_or_else(|| Error::param("batch", "size must be ≥ 1".to_owned()))?;
    let (c, h, w) = first.clean.dim();
    let (dc, dh, dw) = first.degraded.dim();
    let has_mask = first.mask.is_some();
    let b = items.len();
    let mut clean = Tensor::zeros((b, c, h, w));
    let mut degraded = Tensor::zeros((b, dc, dh, dw));
    let mut mask = has_mask.then(|| Tensor::zeros((b, 1, h, w)));
    for (i, it) in items.into_iter().enumerate() {
        clean.index_axis_mut(Axis(0), i).assign(&it.clean);
        degraded.index_axis_mut(Axis(0), i).assign(&it.degraded);
        if let (Some(m), Some(im)) = (mask.as_mut(), it.mask) {
            m.slice_mut(s![i, 0, .., ..]).assign(&im);
        }
    }
    Ok(Batch { clean, degraded, mask })
}

/// One of the 8 symmetries of the square: bit 0 = flip left-right, bit 1 = flip up-down,
/// bit 2 = transpose (square crops keep their shape).
pub fn dihedral(img: ArrayView3<f32>, k: usize) -> Array3<f32> {
    let mut v = img;
    if k & 1 != 0 {
        v.invert_axis(Axis(2));
    }
    if k & 2 != 0 {
        v.invert_axis(Axis(1));
    }
    if k & 4 != 0 {
        v.swap_axes(1, 2);
    }
    v.as_standard_layout().into_owned()
}

/// Held-out pairs: the centred `crop × crop` window of every photo, degraded with the stream
/// `Rng::new(seed, index)` (noise and free-form masks are random, so the seed fixes them).
pub fn eval_pairs(photos: &[Photo], cfg: &PairConfig, seed: u64) -> Result<Batch> {
    let c = cfg.crop;
    let items = photos
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (_, h, w) = p.image.dim();
            if h < c || w < c {
                return Err(Error::Image(format!("{} is {h}×{w}, smaller than the {c}×{c} crop", p.name)));
            }
            let (y, x) = ((h - c) / 2, (w - c) / 2);
            let crop = p.image.slice(s![.., y..y + c, x..x + c]).to_owned();
            make_pair(crop, cfg, &mut Rng::new(seed, i as u64))
        })
        .collect::<Result<Vec<_>>>()?;
    stack(items)
}

/// A value in [0, 1] as an 8-bit file stores it (clipped, rounded to the nearest of 256 levels).
pub fn quantize8(v: f32) -> f32 {
    (v.clamp(0.0, 1.0) * 255.0).round() / 255.0
}

/// Round a value in [0, 1] (clipped) to the 16-bit grid, as a 16-bit PNG stores it.
pub fn quantize16(v: f32) -> f32 {
    (v.clamp(0.0, 1.0) * 65535.0).round() / 65535.0
}

/// Save a `[3, H, W]` image in [0, 1] (clipped) as an RGB PNG, 16-bit or 8-bit.
pub fn save_png(img: ArrayView3<f32>, path: &Path, sixteen: bool) -> Result<()> {
    let (_, h, w) = img.dim();
    let (wu, hu) = (w as u32, h as u32);
    let saved = if sixteen {
        let buf: Vec<u16> = interleaved(img, 65535.0).map(|v| v as u16).collect();
        image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(wu, hu, buf).map(|im| im.save(path))
    } else {
        image::RgbImage::from_raw(wu, hu, rgb8(img)).map(|im| im.save(path))
    };
    saved.ok_or_else(|| Error::Image("image buffer".into()))?.map_err(|e| Error::Image(format!("{}: {e}", path.display())))
}

/// The samples of a `[3, H, W]` image in `[0, 1]` in interleaved RGB order, clamped, scaled to
/// `[0, scale]` and rounded.
fn interleaved(img: ArrayView3<'_, f32>, scale: f32) -> impl Iterator<Item = f32> + '_ {
    let (_, h, w) = img.dim();
    (0..h)
        .flat_map(move |y| (0..w).flat_map(move |x| (0..3).map(move |c| (c, y, x))))
        .map(move |(c, y, x)| (img[[c, y, x]].clamp(0.0, 1.0) * scale).round())
}

/// Interleaved 8-bit RGB of a `[3, H, W]` image in `[0, 1]`.
fn rgb8(img: ArrayView3<'_, f32>) -> Vec<u8> {
    interleaved(img, 255.0).map(|v| v as u8).collect()
}

/// Load every photo of `src` as training does (shrunk to `max_side`) and save it as a JPEG of
/// `quality` in `dst` (created); returns the count. Existing files are replaced atomically.
pub fn write_shrunk(src: &Path, dst: &Path, max_side: usize, quality: u8) -> Result<usize> {
    let photos = load_dir(src, (max_side > 0).then_some(max_side))?;
    std::fs::create_dir_all(dst).map_err(|e| Error::Image(format!("{}: {e}", dst.display())))?;
    for p in &photos {
        let (_, h, w) = p.image.dim();
        let buf = rgb8(p.image.view());
        let stem = Path::new(&p.name).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| p.name.clone());
        let path = dst.join(format!("{stem}.jpg"));
        let tmp = dst.join(format!(".{stem}.jpg.tmp"));
        let file = std::fs::File::create(&tmp).map_err(|e| Error::Image(format!("{}: {e}", tmp.display())))?;
        let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::BufWriter::new(file), quality.clamp(1, 100));
        enc.encode(&buf, w as u32, h as u32, image::ExtendedColorType::Rgb8)
            .map_err(|e| Error::Image(format!("{}: {e}", path.display())))?;
        drop(enc);
        std::fs::rename(&tmp, &path).map_err(|e| Error::Image(format!("{}: {e}", path.display())))?;
    }
    Ok(photos.len())
}

/// Write the held-out evaluation pairs of `task` (what `bridge eval` reads and the model cards
/// report): every photo of `photos` (shrunk to `max_side`, 0: as shipped), centre-cropped to
/// `crop`, degraded with `seed`, as 16-bit PNGs `out/clean/<name>.png` and
/// `out/degraded/<name>.png`. SR inputs are the small images (the package up-samples them).
/// With `gray`, the photos are turned grey first ([`to_gray`]; same crops and noise draws): a
/// colour-neutral restorer keeps their three channels equal, so the colour shift measured on
/// them is the model's own cast. `bits` (16 or 8) is the depth of the degraded images: 8 is
/// what cameras and image files deliver (the rounding is noise a deconvolution amplifies), and
/// `degradation.json` records it so the classical baseline is tuned for it. Returns the number of
/// pairs.
#[allow(clippy::too_many_arguments)] // the CLI's `pairs` options, one each
pub fn write_eval_pairs(
    task: crate::package::Task,
    photos: &Path,
    out: &Path,
    crop: usize,
    max_side: usize,
    seed: u64,
    gray: bool,
    bits: u32,
) -> Result<usize> {
    bridge::baseline::PairsInfo::check_input_bits(bits)?;
    let mut list = load_dir(photos, (max_side > 0).then_some(max_side))?;
    if gray {
        list.iter_mut().for_each(|p| to_gray(&mut p.image));
    }
    let mut cfg = task.pairs(crop, false);
    cfg.upsample = None;
    cfg.range = Range::Unit;
    let b = eval_pairs(&list, &cfg, seed)?;
    for sub in ["clean", "degraded"] {
        let d = out.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| Error::Io { path: d.display().to_string(), source: e })?;
    }
    for (i, p) in list.iter().enumerate() {
        let stem = Path::new(&p.name).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| i.to_string());
        let name = format!("{stem}.png");
        save_png(b.clean.index_axis(Axis(0), i), &out.join("clean").join(&name), true)?;
        save_png(b.degraded.index_axis(Axis(0), i), &out.join("degraded").join(&name), bits == 16)?;
    }
    // What made the pairs, for the SDK's classical baselines (`bridge eval --baseline`).
    let info = bridge::baseline::PairsInfo {
        version: 1,
        task: task.name().into(),
        degradation: cfg.degradation.describe()?,
        seed: Some(seed),
        input_bits: bits,
    };
    info.write(out)?;
    Ok(list.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder of small synthetic photos (PNG and JPEG) in the temp dir, removed on drop.
    struct TempPhotos(PathBuf);
    impl Drop for TempPhotos {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn temp_photos(tag: &str) -> TempPhotos {
        let dir = crate::fixtures::scratch_root().join(format!("bridge-data-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let draw = |w: u32, h: u32, f: u32| {
            image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * f % 256) as u8, (y * 3 % 256) as u8, ((x + y) % 256) as u8]))
        };
        draw(96, 80, 2).save(dir.join("b.png")).unwrap();
        draw(200, 120, 1).save(dir.join("a.jpg")).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a photo").unwrap();
        TempPhotos(dir)
    }

    fn cfg(degradation: Degradation, upsample: Option<Upsample>, range: Range, augment: bool) -> PairConfig {
        PairConfig { crop: 64, degradation, upsample, range, augment, colour: Colour::NONE, input_8bit_p: 0.0, prepass: None }
    }

    /// `write_eval_pairs` describes its degradation in `degradation.json`, which the SDK reads.
    #[test]
    fn eval_pairs_write_their_degradation() {
        let t = temp_photos("degfile");
        let out = t.0.join("pairs");
        let n = write_eval_pairs(crate::package::Task::Deblur, &t.0, &out, 64, 0, 7, false, 16).unwrap();
        assert_eq!(n, 2);
        let info = bridge::baseline::PairsInfo::read(&out).unwrap().expect("degradation.json");
        assert_eq!(info.task, "deblur");
        assert_eq!(info.degradation, bridge::baseline::Degradation::GaussianBlur { sigma: 3.0, size: 61 });
        assert_eq!((info.seed, info.input_bits), (Some(7), 16));
        // 8-bit pairs: 8-bit degraded PNGs (the clean ones stay 16-bit), the depth recorded.
        let out8 = t.0.join("pairs8");
        write_eval_pairs(crate::package::Task::Deblur, &t.0, &out8, 64, 0, 7, false, 8).unwrap();
        assert_eq!(bridge::baseline::PairsInfo::read(&out8).unwrap().unwrap().input_bits, 8);
        let first = |d: &str| std::fs::read_dir(out8.join(d)).unwrap().next().unwrap().unwrap().path();
        assert_eq!(image::open(first("degraded")).unwrap().color(), image::ColorType::Rgb8);
        assert_eq!(image::open(first("clean")).unwrap().color(), image::ColorType::Rgb16);
        assert!(write_eval_pairs(crate::package::Task::Deblur, &t.0, &t.0.join("p12"), 64, 0, 7, false, 12).is_err());
        assert_eq!(Degradation::SR4.describe().unwrap(), bridge::baseline::Degradation::BicubicDown { factor: 4 });
        assert!(Degradation::CenterMask.describe().is_err());
    }

    /// `gray` pairs: the clean images have R = G = B (BT.601 luma of the colour ones), and a
    /// denoising pair's noise is the colour pair's (same draws): degraded − clean is equal.
    #[test]
    fn gray_eval_pairs_share_crops_and_noise() {
        let t = temp_photos("graypairs");
        let (colour, grey) = (t.0.join("colour"), t.0.join("grey"));
        write_eval_pairs(crate::package::Task::Denoise, &t.0, &colour, 64, 0, 7, false, 16).unwrap();
        write_eval_pairs(crate::package::Task::Denoise, &t.0, &grey, 64, 0, 7, true, 16).unwrap();
        let load = |p: &Path| image::open(p).unwrap().to_rgb16();
        for name in ["a.png", "b.png"] {
            let (gc, gd) = (load(&grey.join("clean").join(name)), load(&grey.join("degraded").join(name)));
            let (cc, cd) = (load(&colour.join("clean").join(name)), load(&colour.join("degraded").join(name)));
            assert!(gc.pixels().all(|p| p[0] == p[1] && p[1] == p[2]), "{name}: grey truth has colour");
            assert!(cc.pixels().any(|p| p[0] != p[1]), "{name}: the colour photo is grey already");
            // The noise (where nothing clipped): the same draws in both.
            let same = gc.pixels().zip(gd.pixels()).zip(cc.pixels().zip(cd.pixels())).all(|((g, gn), (c, cn))| {
                (0..3).all(|k| {
                    let clipped = [gn[k], cn[k]].iter().any(|&v| v == 0 || v == u16::MAX);
                    clipped || (gn[k] as i32 - g[k] as i32 - (cn[k] as i32 - c[k] as i32)).abs() <= 1
                })
            });
            assert!(same, "{name}: the grey pair's noise differs from the colour pair's");
        }
    }

    #[test]
    fn load_sorts_filters_and_shrinks() {
        let t = temp_photos("load");
        let photos = load_dir(&t.0, None).unwrap();
        let names: Vec<_> = photos.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a.jpg", "b.png"]);
        assert_eq!(photos[1].image.dim(), (3, 80, 96));
        // PNG is lossless: pixel (x=5, y=7) of b.png is (10, 21, 12).
        let px = |c| (photos[1].image[[c, 7, 5]] * 255.0).round() as u8;
        assert_eq!((px(0), px(1), px(2)), (10, 21, 12));
        let small = load_dir(&t.0, Some(100)).unwrap();
        assert_eq!(small[0].image.dim(), (3, 60, 100));
        assert_eq!(small[1].image.dim(), (3, 80, 96)); // already within the limit
        assert!(small.iter().all(|p| p.image.iter().all(|v| (0.0..=1.0).contains(v))));
        let empty = crate::fixtures::scratch_root().join(format!("bridge-data-empty-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        assert!(load_dir(&empty, None).is_err());
        let _ = std::fs::remove_dir_all(&empty);
    }

    #[test]
    fn batches_are_deterministic_crops() {
        let t = temp_photos("batch");
        let photos = load_dir(&t.0, None).unwrap();
        let s = PairSampler::new(&photos, cfg(Degradation::NOISE25, None, Range::Unit, false), 42).unwrap();
        let a = s.batch(3, 4).unwrap();
        let b = s.batch(3, 4).unwrap();
        let c = s.batch(4, 4).unwrap();
        assert_eq!(a.clean, b.clean);
        assert_eq!(a.degraded, b.degraded);
        assert_ne!(a.clean, c.clean);
        assert_eq!(a.clean.dim(), (4, 3, 64, 64));
        assert!(a.mask.is_none());
        // Without augmentation every clean crop is a window of one of the photos.
        for i in 0..4 {
            let crop = a.clean.index_axis(Axis(0), i);
            let found = photos.iter().any(|p| {
                let (_, h, w) = p.image.dim();
                (0..=h - 64).any(|y| (0..=w - 64).any(|x| p.image.slice(s![.., y..y + 64, x..x + 64]) == crop))
            });
            assert!(found, "item {i} is not a crop of any photo");
        }
        // Noise: the degraded image differs from the clean one by σ ≈ 25/255.
        let d = &a.degraded - &a.clean;
        let std = (d.mapv(|v| v * v).mean().unwrap()).sqrt();
        assert!((std * 255.0 - 25.0).abs() < 1.0, "noise std {}", std * 255.0);
        assert!(PairSampler::new(&photos, PairConfig { crop: 100, ..cfg(Degradation::NOISE25, None, Range::Unit, false) }, 0).is_err());
    }

    #[test]
    fn sr_pairs_with_and_without_upsampling() {
        let t = temp_photos("sr");
        let photos = load_dir(&t.0, None).unwrap();
        let small = PairSampler::new(&photos, cfg(Degradation::SR4, None, Range::Signed, true), 1).unwrap().batch(0, 2).unwrap();
        assert_eq!(small.degraded.dim(), (2, 3, 16, 16));
        assert!(small.clean.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert!(small.clean.iter().any(|&v| v < 0.0), "signed range not applied");
        let big =
            PairSampler::new(&photos, cfg(Degradation::SR4, Some(Upsample::Bicubic), Range::Signed, true), 1).unwrap().batch(0, 2).unwrap();
        assert_eq!(big.degraded.dim(), (2, 3, 64, 64));
        assert_eq!(big.clean, small.clean);
        // The up-sampled LR is close to the clean crop (smooth synthetic photos), not equal.
        let err = (&big.degraded - &big.clean).mapv(f32::abs).mean().unwrap();
        assert!(err > 1e-3 && err < 0.2, "mean |up(LR) − HR| = {err}");
        let bad = PairConfig { crop: 62, ..cfg(Degradation::SR4, None, Range::Unit, false) };
        assert!(PairSampler::new(&photos, bad, 0).is_err());
    }

    /// MATLAB-style ×4 down-sampling and the SDK's bicubic up-sampling share the half-pixel-centre
    /// convention: no shift between `x_T` and `x0`. With a = −0.5 both reproduce linear functions,
    /// so on a ramp the round trip is the identity away from the borders. PyTorch's a = −0.75 kernel
    /// only reproduces constants: its error on a ramp is a 4-periodic ripple with zero mean (a shift
    /// would show as a mean offset of ~0.003 per ½ pixel here).
    #[test]
    fn sr_round_trip_is_aligned() {
        let ramp = Array3::from_shape_fn((3, 64, 64), |(c, y, x)| 0.2 + 0.004 * x as f32 + 0.003 * y as f32 + 0.05 * c as f32);
        let photos = [Photo { name: "ramp".into(), image: ramp }];
        let interior_err = |kind| {
            let e = eval_pairs(&photos, &cfg(Degradation::SR4, Some(kind), Range::Unit, false), 0).unwrap();
            (&e.degraded - &e.clean).slice(s![.., .., 12..52, 12..52]).to_owned()
        };
        let exact = interior_err(Upsample::BicubicA05);
        let max = exact.mapv(f32::abs).fold(0.0f32, |a, &b| a.max(b));
        assert!(max < 1e-4, "a = -0.5: max interior error {max}");
        let torch = interior_err(Upsample::Bicubic);
        let mean = torch.mean().unwrap();
        let max = torch.mapv(f32::abs).fold(0.0f32, |a, &b| a.max(b));
        assert!(mean.abs() < 1e-5, "a = -0.75: mean offset {mean} (a shift)");
        assert!(max < 2e-3, "a = -0.75: max interior error {max}");
    }

    #[test]
    fn inpainting_batches_carry_masks_and_eval_is_fixed() {
        let t = temp_photos("mask");
        let photos = load_dir(&t.0, None).unwrap();
        let c = cfg(Degradation::FREE_FORM, None, Range::Unit, true);
        let b = PairSampler::new(&photos, c.clone(), 9).unwrap().batch(0, 3).unwrap();
        let m = b.mask.as_ref().unwrap();
        assert_eq!(m.dim(), (3, 1, 64, 64));
        for i in 0..3 {
            let cov = m.index_axis(Axis(0), i).mean().unwrap();
            assert!((0.1..=0.3).contains(&cov), "coverage {cov}");
        }
        let e1 = eval_pairs(&photos, &c, 5).unwrap();
        let e2 = eval_pairs(&photos, &c, 5).unwrap();
        assert_eq!(e1.clean.dim(), (2, 3, 64, 64));
        assert_eq!(e1.mask, e2.mask);
        // Photo 1 (b.png, 80×96): the centred window starts at (8, 16).
        assert_eq!(e1.clean.slice(s![1, .., .., ..]), photos[1].image.slice(s![.., 8..72, 16..80]));
    }

    fn psnr(a: &Tensor, b: &Tensor) -> f64 {
        let mse = a.iter().zip(b.iter()).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>() / a.len() as f64;
        -10.0 * mse.log10()
    }

    /// Mean squared horizontal + vertical difference: the high-frequency energy a blur removes.
    fn gradient_energy(t: &Tensor) -> f64 {
        let dx = &t.slice(s![.., .., .., 1..]) - &t.slice(s![.., .., .., ..-1]);
        let dy = &t.slice(s![.., .., 1.., ..]) - &t.slice(s![.., .., ..-1, ..]);
        f64::from(dx.mapv(|v| v * v).mean().unwrap_or(0.0) + dy.mapv(|v| v * v).mean().unwrap_or(0.0))
    }

    /// Every degradation on a real photograph: the sample image shipped in the repository
    /// (`docs/assets/chelsea-256.png`, a crop of a CC0 photo; see docs/data.md).
    #[test]
    fn degradations_on_the_shipped_sample_photo() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/assets/chelsea-256.png");
        let photos = [load_photo(&path, None).unwrap()];
        assert_eq!(photos[0].image.dim(), (3, 256, 256));
        let pair = |d: Degradation, up: Option<Upsample>| {
            let c = PairConfig {
                crop: 256,
                degradation: d,
                upsample: up,
                range: Range::Unit,
                augment: false,
                colour: Colour::NONE,
                input_8bit_p: 0.0,
                prepass: None,
            };
            eval_pairs(&photos, &c, 7).unwrap()
        };
        // σ = 25/255 unclipped noise: PSNR = 20·log10(255/25) = 20.17 dB (196 608 samples: ±0.02 dB).
        let noisy = pair(Degradation::NOISE25, None);
        assert!((psnr(&noisy.degraded, &noisy.clean) - 20.17).abs() < 0.05);
        // 4× SR: bicubic up-sampling of the LR beats pixel replication; both are far from lossless.
        let bic = psnr(&pair(Degradation::SR4, Some(Upsample::BicubicA05)).degraded, &noisy.clean);
        let near = psnr(&pair(Degradation::SR4, Some(Upsample::Nearest)).degraded, &noisy.clean);
        assert!(near + 0.5 < bic && bic < 35.0, "4x SR baselines: bicubic {bic:.2} dB, nearest {near:.2} dB");
        // Blur σ = 3 removes most of the fur's high-frequency energy.
        let blur = pair(Degradation::BLUR, None);
        let ratio = gradient_energy(&blur.degraded) / gradient_energy(&blur.clean);
        assert!(ratio < 0.2, "blur kept {ratio:.3} of the gradient energy");
        // JPEG: QF 10 is clearly lossy and worse than QF 50.
        let q10 = psnr(&pair(Degradation::JPEG10, None).degraded, &noisy.clean);
        let q50 = psnr(&pair(Degradation::Jpeg { quality: 50 }, None).degraded, &noisy.clean);
        assert!(q10 < 33.0 && q10 + 2.0 < q50, "JPEG PSNR: QF10 {q10:.2} dB, QF50 {q50:.2} dB");
        let center = pair(Degradation::CenterMask, None);
        assert_eq!(center.mask.as_ref().map(|m| m.sum()), Some(128.0 * 128.0));
        eprintln!(
            "chelsea-256: noise {:.2} dB, SR4 bicubic {bic:.2} / nearest {near:.2} dB, blur grad ratio {ratio:.3}, JPEG QF10 {q10:.2} / QF50 {q50:.2} dB",
            psnr(&noisy.degraded, &noisy.clean)
        );
    }

    #[test]
    fn dihedral_group() {
        let img = Array3::from_shape_fn((1, 3, 3), |(_, y, x)| (3 * y + x) as f32);
        assert_eq!(dihedral(img.view(), 0), img);
        assert_eq!(dihedral(img.view(), 1)[[0, 0, 0]], 2.0); // left-right
        assert_eq!(dihedral(img.view(), 2)[[0, 0, 0]], 6.0); // up-down
        assert_eq!(dihedral(img.view(), 4)[[0, 0, 1]], 3.0); // transpose
        let all: Vec<_> = (0..8).map(|k| dihedral(img.view(), k)).collect();
        for i in 0..8 {
            for j in i + 1..8 {
                assert_ne!(all[i], all[j], "symmetries {i} and {j} coincide");
            }
        }
    }

    #[test]
    fn colour_augmentation() {
        let crop = Array3::from_shape_fn((3, 4, 4), |(c, y, x)| (c * 16 + y * 4 + x) as f32 / 48.0);
        // Disabled: the crop and the random stream are untouched.
        let (mut a, b) = (Rng::new(1, 2), Rng::new(1, 2));
        assert_eq!(Colour::NONE.apply(crop.clone(), &mut a), crop);
        assert_eq!(a.clone().uniform(), b.clone().uniform());
        // Permutations: each output channel is one input channel, all 6 orders occur.
        let perm = Colour { gray_p: 0.0, permute: true };
        let mut seen = std::collections::BTreeSet::new();
        let mut rng = Rng::new(7, 0);
        for _ in 0..200 {
            let out = perm.apply(crop.clone(), &mut rng);
            let order: Vec<usize> =
                (0..3).map(|c| (0..3).find(|&k| out.index_axis(Axis(0), c) == crop.index_axis(Axis(0), k)).unwrap()).collect();
            seen.insert(order);
        }
        assert_eq!(seen.len(), 6);
        // Grey: all channels equal the BT.601 luma; gray_p = 1 always, ~gray_p of crops otherwise.
        let out = Colour { gray_p: 1.0, permute: false }.apply(crop.clone(), &mut rng);
        let y = 0.299 * crop[[0, 1, 2]] + 0.587 * crop[[1, 1, 2]] + 0.114 * crop[[2, 1, 2]];
        for c in 0..3 {
            assert!((out[[c, 1, 2]] - y).abs() < 1e-6);
        }
        let half = Colour { gray_p: 0.25, permute: false };
        let grey = (0..400).filter(|_| {
            let o = half.apply(crop.clone(), &mut rng);
            o.index_axis(Axis(0), 0) == o.index_axis(Axis(0), 2)
        });
        let n = grey.count();
        assert!((70..130).contains(&n), "{n} of 400 grey at p = 0.25");
    }

    /// `input_8bit_p`: 0 leaves the degraded input exact; 1 rounds every input to the 256
    /// levels of an 8-bit file — the same input, rounded (the draw comes after the
    /// degradation's); a fraction rounds about that share; the clean target is never rounded.
    #[test]
    fn inputs_rounded_to_8_bits() {
        let t = temp_photos("bits8");
        let photos = load_dir(&t.0, None).unwrap();
        let on_grid = |a: &Tensor| {
            a.iter().all(|&v| {
                let u = (v + 1.0) / 2.0 * 255.0; // Signed range → 0–255
                (u - u.round()).abs() < 2e-3
            })
        };
        let make = |p: f64| {
            let mut c = crate::package::Task::Deblur.pairs(32, true);
            c.input_8bit_p = p;
            PairSampler::new(&photos, c, 11).unwrap()
        };
        let (off, all) = (make(0.0).batch(3, 4).unwrap(), make(1.0).batch(3, 4).unwrap());
        assert!(!on_grid(&off.degraded), "exact blur is off the 8-bit grid");
        assert!(on_grid(&all.degraded));
        assert_eq!(off.clean, all.clean);
        // Rounding moves a value by at most half a level.
        let d = (&off.degraded - &all.degraded).mapv(f32::abs).fold(0.0f32, |m, &v| m.max(v));
        assert!(d <= 1.0 / 255.0 + 1e-6, "{d}");
        // Exactly the exact input, rounded (in the package's [−1, 1] range).
        let rounded = off.degraded.mapv(|v| 2.0 * quantize8((v + 1.0) / 2.0) - 1.0);
        let e = (&rounded - &all.degraded).mapv(f32::abs).fold(0.0f32, |m, &v| m.max(v));
        assert!(e < 1e-6, "{e}");
        let half = make(0.5).batch(0, 64).unwrap();
        let n = (0..64).filter(|&i| on_grid(&half.degraded.slice(s![i..i + 1, .., .., ..]).to_owned())).count();
        assert!((16..48).contains(&n), "{n} of 64 rounded at p = 0.5");
    }

    /// `prepass`: each degraded input is the SDK's pre-pass of the input as a file stores it
    /// (8-bit where rounded, else 16-bit), so training sees what `bridge restore` feeds the
    /// network; the clean targets and the random streams are unchanged.
    #[test]
    fn training_inputs_take_the_packages_prepass() {
        let t = temp_photos("prepass");
        let photos = load_dir(&t.0, None).unwrap();
        let p = crate::package::Task::Deblur.prepass().unwrap();
        assert!(crate::package::Task::Denoise.prepass().is_err());
        for bits8 in [0.0, 1.0] {
            let make = |prepass: Option<bridge::prepass::Prepass>| {
                let mut c = crate::package::Task::Deblur.pairs(32, true);
                c.input_8bit_p = bits8;
                c.prepass = prepass;
                // [0, 1]: no range round trip, so the 16-bit rounding below is bit-exact (the
                // 16-bit ratio amplifies a one-level difference about 3,000-fold).
                c.range = Range::Unit;
                PairSampler::new(&photos, c, 11).unwrap().batch(5, 3).unwrap()
            };
            let (plain, pre) = (make(None), make(Some(p.clone())));
            assert_eq!(plain.clean, pre.clean);
            for i in 0..3 {
                let unit = plain.degraded.index_axis(Axis(0), i).to_owned();
                let stored = if bits8 > 0.0 { unit } else { unit.mapv(quantize16) };
                let want = p.apply(stored.view()).unwrap();
                let got = pre.degraded.index_axis(Axis(0), i);
                let e = (&got - &want).mapv(f32::abs).fold(0.0f32, |m, &v| m.max(v));
                assert!(e < 1e-5, "8-bit share {bits8}, item {i}: {e}");
                // The pre-pass sharpened the blurred input.
                let diff = (&got - &plain.degraded.index_axis(Axis(0), i)).mapv(f32::abs).fold(0.0f32, |m, &v| m.max(v));
                assert!(diff > 0.01, "{diff}");
            }
        }
    }
}
