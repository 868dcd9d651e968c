//! Counter-based noise.
//!
//! Every Gaussian number is a pure function of `(seed, draw, image, channel, y, x)` in the
//! coordinates of the *whole* image, so a run produces the same noise whatever the thread
//! count, the tile size or the batch composition. `draw` numbers the noise tensors of one run
//! in the order the reference implementation draws them (samplers number discarded draws too,
//! so recorded noise can be replayed by index).
//!
//! The generator is Philox-4×32-10 (Salmon et al., SC'11): one counter
//! `[x/4, y, image·4096 + channel, draw]` under the key `seed` yields four 32-bit words, which
//! Box–Muller turns into the normals of the four horizontally adjacent pixels `4⌊x/4⌋ … +3`.

use crate::{Error, Result, TensorViewMut};

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox-4×32 with 10 rounds: the raw counter-based generator.
#[inline(always)]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (ctr, key);
    for _ in 0..10 {
        let p0 = (M0 as u64) * (c[0] as u64);
        let p1 = (M1 as u64) * (c[2] as u64);
        c = [
            ((p1 >> 32) as u32) ^ c[1] ^ k[0],
            p1 as u32,
            ((p0 >> 32) as u32) ^ c[3] ^ k[1],
            p0 as u32,
        ];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

/// Box–Muller on two 32-bit words → two independent N(0, 1) numbers.
#[inline(always)]
pub fn box_muller(a: u32, b: u32) -> (f32, f32) {
    // u1 ∈ (0, 1]: never 0, so ln is finite; u2 ∈ [0, 1).
    let u1 = ((a >> 8) as f32 + 1.0) * (1.0 / 16_777_216.0);
    let u2 = (b >> 8) as f32 * (1.0 / 16_777_216.0);
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (std::f32::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}

/// Where a batch element lies in the whole image, so noise is keyed by global coordinates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Placement {
    /// Index of the image in the user's batch (not the tile's position in a tile batch).
    pub image: u32,
    /// Row of the element's top-left pixel in the whole image.
    pub y0: u32,
    /// Column of the element's top-left pixel in the whole image.
    pub x0: u32,
}

/// A source of standard-normal noise tensors.
pub trait NoiseSource {
    /// Fill `out` (`[B, C, H, W]`) with noise tensor number `draw` of this run.
    fn fill(&mut self, draw: u64, out: TensorViewMut<'_>) -> Result<()>;

    /// A counter-based source exposes itself so fused kernels can generate noise inline.
    fn as_philox(&self) -> Option<&PhiloxNoise> {
        None
    }
}

impl<N: NoiseSource + ?Sized> NoiseSource for &mut N {
    fn fill(&mut self, draw: u64, out: TensorViewMut<'_>) -> Result<()> {
        (**self).fill(draw, out)
    }
    fn as_philox(&self) -> Option<&PhiloxNoise> {
        (**self).as_philox()
    }
}

impl<N: NoiseSource + ?Sized> NoiseSource for Box<N> {
    fn fill(&mut self, draw: u64, out: TensorViewMut<'_>) -> Result<()> {
        (**self).fill(draw, out)
    }
    fn as_philox(&self) -> Option<&PhiloxNoise> {
        (**self).as_philox()
    }
}

/// Seeded counter-based noise (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhiloxNoise {
    seed: u64,
    /// One placement per batch element; empty means "batch element b is image b at (0, 0)".
    placements: Vec<Placement>,
}

impl PhiloxNoise {
    /// Noise for whole images: batch element `b` is image `b`.
    pub fn new(seed: u64) -> Self {
        PhiloxNoise { seed, placements: Vec::new() }
    }

    /// Noise for tiles: batch element `b` lies at `placements[b]` in the whole image.
    pub fn with_placements(seed: u64, placements: Vec<Placement>) -> Self {
        PhiloxNoise { seed, placements }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The placement of batch element `b`.
    pub fn placement(&self, b: usize) -> Placement {
        self.placements.get(b).copied().unwrap_or(Placement { image: b as u32, y0: 0, x0: 0 })
    }

    /// The normal number at global coordinates `(image, channel, y, x)` for draw `draw`.
    pub fn sample_at(&self, draw: u64, image: u32, channel: u32, y: u32, x: u32) -> f32 {
        let w = self.block(draw, image, channel, y, x >> 2);
        let pair = if x & 2 == 0 { box_muller(w[0], w[1]) } else { box_muller(w[2], w[3]) };
        if x & 1 == 0 { pair.0 } else { pair.1 }
    }

    #[inline(always)]
    fn key(&self) -> [u32; 2] {
        [self.seed as u32, (self.seed >> 32) as u32]
    }

    #[inline(always)]
    fn block(&self, draw: u64, image: u32, channel: u32, y: u32, xq: u32) -> [u32; 4] {
        philox4x32_10([xq, y, image.wrapping_mul(4096).wrapping_add(channel), draw as u32], self.key())
    }

    /// Fill one row of `out.len()` pixels starting at global column `x0`.
    pub fn fill_row(&self, draw: u64, image: u32, channel: u32, y: u32, x0: u32, out: &mut [f32]) {
        let mut x = x0;
        let mut i = 0;
        while i < out.len() {
            let w = self.block(draw, image, channel, y, x >> 2);
            let (n0, n1) = box_muller(w[0], w[1]);
            let (n2, n3) = box_muller(w[2], w[3]);
            let quad = [n0, n1, n2, n3];
            let start = (x & 3) as usize;
            for &q in &quad[start..] {
                if i == out.len() {
                    break;
                }
                out[i] = q;
                i += 1;
                x += 1;
            }
        }
    }
}

impl NoiseSource for PhiloxNoise {
    fn fill(&mut self, draw: u64, mut out: TensorViewMut<'_>) -> Result<()> {
        if draw > u32::MAX as u64 {
            return Err(Error::Noise(format!("draw index {draw} exceeds 2^32")));
        }
        let (b, c, h, _w) = out.dim();
        if c > 4096 {
            return Err(Error::Noise(format!("{c} channels exceed the 4096 the noise key supports")));
        }
        for bi in 0..b {
            let p = self.placement(bi);
            for ci in 0..c {
                for yi in 0..h {
                    let mut row = out.slice_mut(ndarray::s![bi, ci, yi, ..]);
                    let y = p.y0 + yi as u32;
                    match row.as_slice_mut() {
                        Some(s) => self.fill_row(draw, p.image, ci as u32, y, p.x0, s),
                        None => {
                            for (xi, v) in row.iter_mut().enumerate() {
                                *v = self.sample_at(draw, p.image, ci as u32, y, p.x0 + xi as u32);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn as_philox(&self) -> Option<&PhiloxNoise> {
        Some(self)
    }
}

/// Replays recorded noise: draw `k` is the `k`-th recorded tensor.
#[derive(Clone, Debug, Default)]
pub struct RecordedNoise {
    tensors: Vec<crate::Tensor>,
}

impl RecordedNoise {
    /// Noise tensors in the order they were drawn.
    pub fn new(tensors: Vec<crate::Tensor>) -> Self {
        RecordedNoise { tensors }
    }
}

impl NoiseSource for RecordedNoise {
    fn fill(&mut self, draw: u64, mut out: TensorViewMut<'_>) -> Result<()> {
        let t = self.tensors.get(draw as usize).ok_or_else(|| {
            Error::Noise(format!("recorded noise has {} draws, draw {draw} requested", self.tensors.len()))
        })?;
        if t.shape() != out.shape() {
            return Err(Error::shape(format!("recorded noise draw {draw}"), out.shape(), t.shape()));
        }
        out.assign(t);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array4, s};

    /// Known-answer test from the Random123 distribution (kat_vectors, philox4x32_10).
    #[test]
    fn philox_known_answers() {
        assert_eq!(philox4x32_10([0, 0, 0, 0], [0, 0]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        assert_eq!(
            philox4x32_10([0xffffffff; 4], [0xffffffff; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn tiles_equal_whole() {
        let mut whole = Array4::<f32>::zeros((2, 3, 13, 17));
        let mut src = PhiloxNoise::new(42);
        src.fill(5, whole.view_mut()).unwrap();
        // Cut an odd-aligned tile from image 1 and draw it on its own.
        let (y0, x0, h, w) = (3usize, 5usize, 7usize, 9usize);
        let mut tile = Array4::<f32>::zeros((1, 3, h, w));
        let mut tsrc =
            PhiloxNoise::with_placements(42, vec![Placement { image: 1, y0: y0 as u32, x0: x0 as u32 }]);
        tsrc.fill(5, tile.view_mut()).unwrap();
        assert_eq!(tile.slice(s![0, .., .., ..]), whole.slice(s![1, .., y0..y0 + h, x0..x0 + w]));
    }

    #[test]
    fn moments_are_standard_normal() {
        let mut x = Array4::<f32>::zeros((1, 1, 256, 256));
        PhiloxNoise::new(7).fill(0, x.view_mut()).unwrap();
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
        // Different draws and seeds differ.
        let mut y = Array4::<f32>::zeros((1, 1, 256, 256));
        PhiloxNoise::new(7).fill(1, y.view_mut()).unwrap();
        assert_ne!(x, y);
    }
}
