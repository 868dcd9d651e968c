//! Degradations for training pairs, in Rust, deterministic given a seed.
//!
//! Images are planar `[C, H, W]` `f32` arrays in `[0, 1]`. Every random choice comes from [`Rng`]
//! (the SDK's Philox-4×32-10 under the key `seed`), so a `(seed, stream)` pair always gives the
//! same degradation on every machine.
//!
//! | task | function | parameters |
//! | --- | --- | --- |
//! | 4× super-resolution | [`resize_bicubic`] / [`Degradation::Bicubic`] | MATLAB `imresize` bicubic: Keys cubic a = −0.5, antialiased (kernel stretched by the scale when shrinking), symmetric borders |
//! | deblurring | [`gaussian_blur`] | σ = 3.0 px, 61 × 61 taps (DPS's Gaussian-deblur setting), reflect borders |
//! | denoising | [`add_gaussian_noise`] | σ = 25 on the 0–255 scale, not clipped here (training clips every input to the model range, and the evaluation pairs are PNGs: both see clipped noise, as real 8/16-bit frames carry) |
//! | JPEG repair | [`jpeg`] | quality 10, the `image` crate's baseline encoder (libjpeg's tables and quality scaling, 4:4:4) |
//! | inpainting | [`center_mask`], [`free_form_mask`] | centre square of half the side; brush strokes covering a given fraction |
//!
//! Masks are `[H, W]`, 1 where pixels are missing (to be generated) and 0 where they are kept —
//! the SDK's inpainting convention (`sampler::Model::with_mask`).

mod mask;

pub use mask::{center_mask, free_form_mask};
// The SR operator lives in the SDK, whose back-projection baseline must apply exactly this operator.
pub use bridge::baseline::resize_bicubic;

use bridge::rng::{box_muller, philox4x32_10};
use bridge::{Error, Result};
use ndarray::{Array2, Array3, ArrayView3, Axis};

/// Counter-based random stream: Philox-4×32-10 with key `seed`, counter `[n, stream]`.
/// Different `stream`s of one seed are independent, so per-sample streams need no shared state.
#[derive(Clone, Debug)]
pub struct Rng {
    key: [u32; 2],
    stream: u64,
    n: u64,
    buf: [u32; 4],
    left: usize,
    spare: Option<f32>,
}

impl Rng {
    pub fn new(seed: u64, stream: u64) -> Self {
        Rng { key: [seed as u32, (seed >> 32) as u32], stream, n: 0, buf: [0; 4], left: 0, spare: None }
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.left == 0 {
            let ctr = [self.n as u32, (self.n >> 32) as u32, self.stream as u32, (self.stream >> 32) as u32];
            self.buf = philox4x32_10(ctr, self.key);
            self.n += 1;
            self.left = 4;
        }
        self.left -= 1;
        self.buf[3 - self.left]
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        let hi = u64::from(self.next_u32()) << 21;
        let lo = u64::from(self.next_u32() >> 11);
        (hi | lo) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in `0..n` (`n ≥ 1`; Lemire's multiply-shift, bias < n / 2³²).
    pub fn below(&mut self, n: usize) -> usize {
        ((u64::from(self.next_u32()) * n as u64) >> 32) as usize
    }

    /// Standard normal (Box–Muller on two words; the second value is kept for the next call).
    pub fn normal(&mut self) -> f32 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let (a, b) = (self.next_u32(), self.next_u32());
        let (z0, z1) = box_muller(a, b);
        self.spare = Some(z1);
        z0
    }
}

/// Mirror index without repeating the edge (PyTorch `ReflectionPad`, numpy `reflect`), any overshoot.
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let p = 2 * (n as isize - 1);
    let k = i.rem_euclid(p);
    (if k < n as isize { k } else { p - k }) as usize
}

/// Normalized 1-D Gaussian taps `exp(−k²/2σ²)`, `k = −(size−1)/2 ..= (size−1)/2`.
pub fn gaussian_kernel(sigma: f64, size: usize) -> Result<Vec<f64>> {
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(Error::param("sigma", format!("must be finite and > 0, got {sigma}")));
    }
    if size.is_multiple_of(2) {
        return Err(Error::param("size", format!("must be odd, got {size}")));
    }
    let r = (size / 2) as f64;
    let g: Vec<f64> = (0..size).map(|k| (-(k as f64 - r).powi(2) / (2.0 * sigma * sigma)).exp()).collect();
    let s: f64 = g.iter().sum();
    Ok(g.into_iter().map(|v| v / s).collect())
}

/// Separable Gaussian blur with reflect borders. The defaults for the deblurring task are
/// σ = 3.0 and 61 taps (DPS's setting; beyond ±3σ the taps add < 0.3 % of the mass).
pub fn gaussian_blur(img: ArrayView3<f32>, sigma: f64, size: usize) -> Result<Array3<f32>> {
    let k = gaussian_kernel(sigma, size)?;
    let r = (size / 2) as isize;
    let (c, h, w) = img.dim();
    let src = img.as_standard_layout();
    let src = src.as_slice().ok_or_else(|| Error::Image("non-contiguous image".into()))?;
    // Along W: reflect-pad each row once, then contiguous dot products (f64 accumulation).
    let mut mid = vec![0f32; c * h * w];
    let mut padded = vec![0f32; w + size - 1];
    for (row_in, row_out) in src.chunks_exact(w).zip(mid.chunks_exact_mut(w)) {
        for (i, p) in padded.iter_mut().enumerate() {
            *p = row_in[reflect(i as isize - r, w)];
        }
        for (x, o) in row_out.iter_mut().enumerate() {
            *o = k.iter().zip(&padded[x..x + size]).map(|(&kj, &v)| kj * f64::from(v)).sum::<f64>() as f32;
        }
    }
    // Along H: accumulate whole (reflected) rows.
    let mut out = vec![0f32; c * h * w];
    let mut acc = vec![0f64; w];
    for ci in 0..c {
        for y in 0..h {
            acc.fill(0.0);
            for (j, &kj) in k.iter().enumerate() {
                let yy = reflect(y as isize + j as isize - r, h);
                for (a, &v) in acc.iter_mut().zip(&mid[(ci * h + yy) * w..][..w]) {
                    *a += kj * f64::from(v);
                }
            }
            for (o, &a) in out[(ci * h + y) * w..][..w].iter_mut().zip(&acc) {
                *o = a as f32;
            }
        }
    }
    Array3::from_shape_vec((c, h, w), out).map_err(|e| Error::Image(e.to_string()))
}

/// `img + σ/255 · z`, `z ~ N(0, 1)` per element. Not clipped here (the denoising literature's
/// convention); the trainer clips the network's input to the model range and the evaluation
/// pairs are saved as PNGs, so both use the clipped noisy image that real frames are.
pub fn add_gaussian_noise(img: ArrayView3<f32>, sigma_255: f64, rng: &mut Rng) -> Array3<f32> {
    let s = (sigma_255 / 255.0) as f32;
    img.mapv(|v| v + s * rng.normal())
}

/// Quantize to 8 bits, JPEG-encode at `quality` (1–100) with the `image` crate's baseline encoder
/// (libjpeg's standard tables scaled by libjpeg's quality formula; no chroma subsampling), decode.
/// Takes 1 (grey) or 3 (RGB) channels.
pub fn jpeg(img: ArrayView3<f32>, quality: u8) -> Result<Array3<f32>> {
    use image::{ColorType, ImageEncoder, codecs::jpeg::JpegEncoder};
    let (c, h, w) = img.dim();
    let color = match c {
        1 => ColorType::L8,
        3 => ColorType::Rgb8,
        _ => return Err(Error::param("channels", format!("JPEG takes 1 or 3 channels, got {c}"))),
    };
    if !(1..=100).contains(&quality) {
        return Err(Error::param("quality", format!("must be in 1..=100, got {quality}")));
    }
    let (wu, hu) = (u32::try_from(w), u32::try_from(h));
    let (Ok(wu), Ok(hu)) = (wu, hu) else { return Err(Error::Image(format!("{w}×{h} too large for JPEG"))) };
    // Interleaved HWC bytes.
    let mut bytes = Vec::with_capacity(c * h * w);
    for y in 0..h {
        for x in 0..w {
            for ci in 0..c {
                bytes.push((img[[ci, y, x]].clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        }
    }
    let mut encoded = Vec::new();
    JpegEncoder::new_with_quality(&mut encoded, quality)
        .write_image(&bytes, wu, hu, color.into())
        .map_err(|e| Error::Image(format!("JPEG encode: {e}")))?;
    let decoded =
        image::load_from_memory_with_format(&encoded, image::ImageFormat::Jpeg).map_err(|e| Error::Image(format!("JPEG decode: {e}")))?;
    let raw = if c == 1 { decoded.to_luma8().into_raw() } else { decoded.to_rgb8().into_raw() };
    Ok(Array3::from_shape_fn((c, h, w), |(ci, y, x)| f32::from(raw[(y * w + x) * c + ci]) / 255.0))
}

/// One of the project's degradations with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum Degradation {
    /// Bicubic down-sampling by an integer factor (see [`resize_bicubic`]); output clipped to [0, 1].
    Bicubic {
        factor: usize,
    },
    GaussianBlur {
        sigma: f64,
        size: usize,
    },
    /// Additive Gaussian noise, σ on the 0–255 scale.
    GaussianNoise {
        sigma: f64,
    },
    Jpeg {
        quality: u8,
    },
    /// Centre square hole of half the height and width.
    CenterMask,
    /// Brush strokes covering a fraction in `[lo, hi]` of the pixels.
    FreeFormMask {
        lo: f64,
        hi: f64,
    },
}

impl Degradation {
    pub const SR4: Degradation = Degradation::Bicubic { factor: 4 };
    pub const BLUR: Degradation = Degradation::GaussianBlur { sigma: 3.0, size: 61 };
    pub const NOISE25: Degradation = Degradation::GaussianNoise { sigma: 25.0 };
    pub const JPEG10: Degradation = Degradation::Jpeg { quality: 10 };
    pub const FREE_FORM: Degradation = Degradation::FreeFormMask { lo: 0.1, hi: 0.3 };

    /// Degrade a clean `[C, H, W]` image in `[0, 1]`. For `Bicubic` the output is `H/f × W/f`
    /// (H and W must be multiples of f); for masks the holes of the returned image are 0.
    pub fn apply(&self, clean: ArrayView3<f32>, rng: &mut Rng) -> Result<Degraded> {
        let (_, h, w) = clean.dim();
        let plain = |image| Ok(Degraded { image, mask: None });
        match *self {
            Degradation::Bicubic { factor } => {
                if factor == 0 || !h.is_multiple_of(factor) || !w.is_multiple_of(factor) {
                    return Err(Error::param("factor", format!("{h}×{w} is not a multiple of {factor}")));
                }
                plain(resize_bicubic(clean, h / factor, w / factor)?.mapv(|v| v.clamp(0.0, 1.0)))
            }
            Degradation::GaussianBlur { sigma, size } => plain(gaussian_blur(clean, sigma, size)?),
            Degradation::GaussianNoise { sigma } => plain(add_gaussian_noise(clean, sigma, rng)),
            Degradation::Jpeg { quality } => plain(jpeg(clean, quality)?),
            Degradation::CenterMask => Ok(masked(clean, center_mask(h, w))),
            Degradation::FreeFormMask { lo, hi } => Ok(masked(clean, free_form_mask(h, w, lo, hi, rng)?)),
        }
    }
}

impl Degradation {
    /// The SDK's description of this degradation (`degradation.json`); masks have none.
    pub fn describe(&self) -> Result<bridge::baseline::Degradation> {
        use bridge::baseline::Degradation as D;
        Ok(match *self {
            Degradation::Bicubic { factor } => D::BicubicDown { factor },
            Degradation::GaussianBlur { sigma, size } => D::GaussianBlur { sigma, size },
            Degradation::GaussianNoise { sigma } => D::GaussianNoise { sigma },
            Degradation::Jpeg { quality } => D::Jpeg { quality },
            Degradation::CenterMask | Degradation::FreeFormMask { .. } => {
                return Err(Error::param("degradation", format!("{self:?} has no degradation.json description")));
            }
        })
    }
}

fn masked(clean: ArrayView3<f32>, mask: Array2<f32>) -> Degraded {
    let mut image = clean.to_owned();
    for mut plane in image.axis_iter_mut(Axis(0)) {
        plane.zip_mut_with(&mask, |v, &m| *v *= 1.0 - m);
    }
    Degraded { image, mask: Some(mask) }
}

/// A degraded image and, for inpainting, its mask (`[H, W]`, 1 = missing).
#[derive(Clone, Debug)]
pub struct Degraded {
    pub image: Array3<f32>,
    pub mask: Option<Array2<f32>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth test photo stand-in: gradients plus a few sinusoids, in [0, 1].
    pub(crate) fn smooth(c: usize, h: usize, w: usize) -> Array3<f32> {
        Array3::from_shape_fn((c, h, w), |(ci, y, x)| {
            let (y, x) = (y as f32 / h as f32, x as f32 / w as f32);
            (0.5 + 0.25 * (6.0 * x + ci as f32).sin() * (4.0 * y).cos() + 0.2 * (x - y)).clamp(0.0, 1.0)
        })
    }

    #[test]
    fn rng_is_deterministic_and_uniform() {
        let draw = |seed, stream| {
            let mut r = Rng::new(seed, stream);
            (0..8).map(|_| r.next_u32()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7, 0), draw(7, 0));
        assert_ne!(draw(7, 0), draw(7, 1));
        assert_ne!(draw(7, 0), draw(8, 0));
        let mut r = Rng::new(1, 0);
        let n = 100_000;
        let u: Vec<f64> = (0..n).map(|_| r.uniform()).collect();
        let mean = u.iter().sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.005, "uniform mean {mean}");
        assert!(u.iter().all(|&v| (0.0..1.0).contains(&v)));
        let mut counts = [0usize; 5];
        for _ in 0..n {
            counts[r.below(5)] += 1;
        }
        assert!(counts.iter().all(|&k| (k as f64 / n as f64 - 0.2).abs() < 0.01), "{counts:?}");
    }

    #[test]
    fn noise_has_sigma_25_over_255() {
        let clean = Array3::<f32>::from_elem((3, 128, 128), 0.5);
        let noisy = add_gaussian_noise(clean.view(), 25.0, &mut Rng::new(3, 0));
        let d: Vec<f64> = noisy.iter().zip(clean.iter()).map(|(a, b)| f64::from(a - b)).collect();
        let n = d.len() as f64;
        let mean = d.iter().sum::<f64>() / n;
        let std = (d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 1e-3, "noise mean {mean}");
        assert!((std * 255.0 / 25.0 - 1.0).abs() < 0.01, "noise std {} on the 0-255 scale", std * 255.0);
        // Same seed, same noise; another seed, other noise.
        assert_eq!(noisy, add_gaussian_noise(clean.view(), 25.0, &mut Rng::new(3, 0)));
        assert_ne!(noisy, add_gaussian_noise(clean.view(), 25.0, &mut Rng::new(4, 0)));
    }

    #[test]
    fn gaussian_kernel_moments() {
        let k = gaussian_kernel(3.0, 61).unwrap();
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let var: f64 = k.iter().enumerate().map(|(i, v)| v * (i as f64 - 30.0).powi(2)).sum();
        assert!((var - 9.0).abs() < 1e-6, "variance {var}");
        assert!(gaussian_kernel(3.0, 60).is_err());
        assert!(gaussian_kernel(0.0, 5).is_err());
    }

    #[test]
    fn blur_preserves_mean_and_spreads_an_impulse() {
        // A constant image is a fixed point (weights sum to 1, reflect borders).
        let flat = Array3::<f32>::from_elem((1, 40, 40), 0.3);
        let b = gaussian_blur(flat.view(), 3.0, 61).unwrap();
        assert!(b.iter().all(|v| (v - 0.3).abs() < 1e-6));
        // An interior impulse becomes the 2-D kernel: total mass 1, per-axis variance σ².
        let mut imp = Array3::<f32>::zeros((1, 81, 81));
        imp[[0, 40, 40]] = 1.0;
        let b = gaussian_blur(imp.view(), 2.0, 21).unwrap();
        let mass: f64 = b.iter().map(|&v| f64::from(v)).sum();
        let var_x: f64 = b.indexed_iter().map(|((_, _, x), &v)| f64::from(v) * (x as f64 - 40.0).powi(2)).sum();
        assert!((mass - 1.0).abs() < 1e-5, "mass {mass}");
        assert!((var_x - 4.0).abs() < 1e-3, "variance {var_x}");
        // On a textured image the global mean moves only through the borders.
        let img = smooth(3, 64, 64);
        let b = gaussian_blur(img.view(), 3.0, 61).unwrap();
        assert!((b.mean().unwrap() - img.mean().unwrap()).abs() < 5e-3);
        assert!(b.iter().zip(img.iter()).any(|(a, c)| (a - c).abs() > 1e-2), "blur changed nothing");
    }

    #[test]
    fn jpeg_q10_makes_8x8_blocking() {
        let img = smooth(3, 64, 64);
        let out = jpeg(img.view(), 10).unwrap();
        assert_eq!(out.dim(), img.dim());
        let err: f64 = out.iter().zip(img.iter()).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>() / img.len() as f64;
        let psnr = -10.0 * err.log10();
        assert!(psnr < 35.0, "QF 10 is too faithful: {psnr:.1} dB");
        assert!(psnr > 15.0, "QF 10 destroyed the image: {psnr:.1} dB");
        // Blocking: jumps between columns 8k−1 and 8k are larger than jumps inside blocks,
        // measured on the error image (the smooth input has no such structure).
        let (mut edge, mut inner, mut ne, mut ni) = (0.0f64, 0.0f64, 0, 0);
        for c in 0..3 {
            for y in 0..64 {
                for x in 1..64 {
                    let d = f64::from((out[[c, y, x]] - img[[c, y, x]]) - (out[[c, y, x - 1]] - img[[c, y, x - 1]])).abs();
                    if x % 8 == 0 {
                        edge += d;
                        ne += 1;
                    } else {
                        inner += d;
                        ni += 1;
                    }
                }
            }
        }
        let ratio = (edge / ne as f64) / (inner / ni as f64);
        assert!(ratio > 1.5, "no blocking at 8×8 boundaries (ratio {ratio:.2})");
        // Higher quality is closer to the input.
        let hq = jpeg(img.view(), 90).unwrap();
        let err_hq: f64 = hq.iter().zip(img.iter()).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>() / img.len() as f64;
        assert!(err_hq < err / 4.0);
        assert!(jpeg(Array3::<f32>::zeros((2, 8, 8)).view(), 10).is_err());
        assert!(jpeg(img.view(), 0).is_err());
    }

    #[test]
    fn degradations_shapes_and_determinism() {
        let img = smooth(3, 64, 48);
        let mut rng = Rng::new(5, 9);
        let sr = Degradation::SR4.apply(img.view(), &mut rng).unwrap();
        assert_eq!(sr.image.dim(), (3, 16, 12));
        assert!(sr.image.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(Degradation::SR4.apply(smooth(3, 30, 48).view(), &mut rng).is_err());
        for d in [Degradation::BLUR, Degradation::NOISE25, Degradation::JPEG10] {
            assert_eq!(d.apply(img.view(), &mut rng).unwrap().image.dim(), (3, 64, 48));
        }
        let a = Degradation::FREE_FORM.apply(img.view(), &mut Rng::new(1, 2)).unwrap();
        let b = Degradation::FREE_FORM.apply(img.view(), &mut Rng::new(1, 2)).unwrap();
        assert_eq!(a.mask, b.mask);
        let m = a.mask.unwrap();
        for c in 0..3 {
            for ((y, x), &mv) in m.indexed_iter() {
                let want = if mv == 1.0 { 0.0 } else { img[[c, y, x]] };
                assert_eq!(a.image[[c, y, x]], want);
            }
        }
    }
}
