//! Counter-based noise.
//!
//! Every Gaussian number is a pure function of `(seed, draw, image, channel, y, x)` in the
//! coordinates of the *whole* image, so a run produces the same noise whatever the thread
//! count, the tile size or the batch composition. `draw` numbers the noise tensors of one run
//! in the order the reference implementation draws them (samplers number discarded draws too,
//! so recorded noise can be replayed by index).
//!
//! The generator is Philox-4×32-10 (Salmon et al., SC'11) under the key `seed`. Pixels of a
//! row are taken in aligned groups of 64: pixel `x` has group `g = x / 64`, lane `l = x % 16`
//! and word pair `k = (x / 16) % 4`. The counter `[16·g + l, y, image·4096 + channel, draw]`
//! gives four 32-bit words; Box–Muller turns words (0, 1) into the normals of `k = 0, 1`
//! (cos, sin) and words (2, 3) into those of `k = 2, 3`. This layout lets 16 SIMD lanes write
//! 16 consecutive pixels at once with no shuffling.

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
        c = [((p1 >> 32) as u32) ^ c[1] ^ k[0], p1 as u32, ((p0 >> 32) as u32) ^ c[3] ^ k[1], p0 as u32];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

/// Box–Muller on two 32-bit words → two independent N(0, 1) numbers.
///
/// Only IEEE-exact operations (add, mul, sqrt, int↔float conversions) and fixed polynomials are
/// used — no libm, no fused multiply-add — so every platform (x86 SIMD or scalar, aarch64 on a
/// Jetson) produces the same bits. `ln` is Cephes' `logf` scheme (mantissa in [√½, √2),
/// degree-9 polynomial, error ≲ 1 ulp); `sin`/`cos` reduce `2π·u` to a quadrant by integer
/// arithmetic on the 24-bit uniform, so the reduction is exact.
#[inline(always)]
pub fn box_muller(a: u32, b: u32) -> (f32, f32) {
    // u1 = ((a >> 8) + 1)·2⁻²⁴ ∈ (0, 1]: never 0, so ln is finite.
    let u1 = ((a >> 8) + 1) as f32 * (1.0 / 16_777_216.0);
    let r = (-2.0 * ln_unit(u1)).sqrt();
    // θ = 2π·k·2⁻²⁴ with k = b >> 8. Nearest quadrant j = round(k / 2²²) ∈ 0..=4 and the exact
    // remainder k − j·2²² ∈ [−2²¹, 2²¹] give θ = j·π/2 + ρ with |ρ| ≤ π/4.
    let k = (b >> 8) as i32;
    let j = (k + (1 << 21)) >> 22;
    let rho = (k - (j << 22)) as f32 * (std::f32::consts::FRAC_PI_2 / 4_194_304.0);
    let (s, c) = sin_cos_small(rho);
    // Quadrant j: odd j swaps sin and cos; sin is negative for j ∈ {2, 3}, cos for j ∈ {1, 2}.
    let swap = j & 1 != 0;
    let (sin, cos) = if swap { (c, s) } else { (s, c) };
    let sin = f32::from_bits(sin.to_bits() ^ (((j & 2) as u32) << 30));
    let cos = f32::from_bits(cos.to_bits() ^ ((((j + 1) & 2) as u32) << 30));
    (r * cos, r * sin)
}

/// `ln(u)` for `u ∈ (0, 1]` (normal floats), Cephes `logf` scheme.
#[inline(always)]
fn ln_unit(u: f32) -> f32 {
    let bits = u.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    // m ∈ [0.5, 1)
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    // Shift to [√½, √2) so that f = m − 1 is small.
    if m < std::f32::consts::FRAC_1_SQRT_2 {
        e -= 1;
        m = m + m - 1.0;
    } else {
        m -= 1.0;
    }
    let x = m;
    let z = x * x;
    let mut y = 7.037_683_6e-2_f32;
    y = y * x - 1.151_461e-1;
    y = y * x + 1.167_699_9e-1;
    y = y * x - 1.242_014_1e-1;
    y = y * x + 1.424_932_3e-1;
    y = y * x - 1.666_805_8e-1;
    y = y * x + 2.000_071_4e-1;
    y = y * x - 2.499_999_4e-1;
    y = y * x + 3.333_333e-1;
    y = y * x * z;
    let ef = e as f32;
    y += -2.121_944_4e-4 * ef;
    y += -0.5 * z;
    x + y + 0.693_359_4 * ef
}

/// `(sin ρ, cos ρ)` for `|ρ| ≤ π/4` (Cephes `sinf`/`cosf` polynomials).
#[inline(always)]
fn sin_cos_small(x: f32) -> (f32, f32) {
    let z = x * x;
    let s = ((-1.951_529_6e-4 * z + 8.332_161e-3) * z - 1.666_665_5e-1) * z * x + x;
    let c = ((2.443_315_7e-5 * z - 1.388_731_6e-3) * z + 4.166_664_6e-2) * z * z - 0.5 * z + 1.0;
    (s, c)
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
        let c0 = ((x >> 6) << 4) | (x & 15);
        let w = philox4x32_10([c0, y, plane(image, channel), draw as u32], self.key());
        let k = (x >> 4) & 3;
        let pair = if k < 2 { box_muller(w[0], w[1]) } else { box_muller(w[2], w[3]) };
        if k & 1 == 0 { pair.0 } else { pair.1 }
    }

    #[inline(always)]
    fn key(&self) -> [u32; 2] {
        [self.seed as u32, (self.seed >> 32) as u32]
    }

    /// Fill one row of `out.len()` pixels starting at global column `x0`, bit-identical to
    /// [`PhiloxNoise::sample_at`], 64 pixels at a time with the widest SIMD the CPU has.
    pub fn fill_row(&self, draw: u64, image: u32, channel: u32, y: u32, x0: u32, out: &mut [f32]) {
        let key = self.key();
        let plane = plane(image, channel);
        let kernel = group_kernel();
        let kernel4 = group4_kernel();
        let mut buf = [0f32; GROUP];
        let mut i = 0;
        let mut x = x0;
        while i < out.len() {
            if let Some(k4) = kernel4
                && x & (GROUP as u32 - 1) == 0
                && out.len() - i >= 4 * GROUP
            {
                let dst: &mut [f32; 4 * GROUP] = (&mut out[i..i + 4 * GROUP]).try_into().expect("256 elements");
                k4(x >> 6, y, plane, draw as u32, key, dst);
                i += 4 * GROUP;
                x = x.wrapping_add(4 * GROUP as u32);
                continue;
            }
            let skip = (x & (GROUP as u32 - 1)) as usize;
            let n = (GROUP - skip).min(out.len() - i);
            if skip == 0 && n == GROUP {
                let dst: &mut [f32; GROUP] = (&mut out[i..i + GROUP]).try_into().expect("64 elements");
                kernel(x >> 6, y, plane, draw as u32, key, dst);
            } else {
                kernel(x >> 6, y, plane, draw as u32, key, &mut buf);
                out[i..i + n].copy_from_slice(&buf[skip..skip + n]);
            }
            i += n;
            x = x.wrapping_add(n as u32);
        }
    }
}

/// Pixels per Philox group (16 counters × 4 words).
pub const GROUP: usize = 64;

#[inline(always)]
fn plane(image: u32, channel: u32) -> u32 {
    image.wrapping_mul(4096).wrapping_add(channel)
}

type GroupFn = fn(u32, u32, u32, u32, [u32; 2], &mut [f32; GROUP]);

/// The fastest bit-identical generator of one 64-pixel group this CPU runs.
#[inline]
fn group_kernel() -> GroupFn {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY (both closures): the feature was detected at run time just above.
            return |g, y, plane, draw, key, out| unsafe { simd::group_avx512(g, y, plane, draw, key, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return |g, y, plane, draw, key, out| unsafe { simd::group_avx2(g, y, plane, draw, key, out) };
        }
    }
    group_portable
}

type Group4Fn = fn(u32, u32, u32, u32, [u32; 2], &mut [f32; 4 * GROUP]);

/// A generator of four consecutive groups at once, where the CPU has one.
#[inline]
fn group4_kernel() -> Option<Group4Fn> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was detected at run time just above.
            return Some(|g, y, plane, draw, key, out| unsafe { simd::group4_avx512(g, y, plane, draw, key, out) });
        }
    }
    None
}

/// The portable generator of group `g` (the reference the SIMD versions must match).
fn group_portable(g: u32, y: u32, plane: u32, draw: u32, key: [u32; 2], out: &mut [f32; GROUP]) {
    for l in 0..16u32 {
        let w = philox4x32_10([(g << 4) | l, y, plane, draw], key);
        let (a, b) = box_muller(w[0], w[1]);
        let (c, d) = box_muller(w[2], w[3]);
        let l = l as usize;
        out[l] = a;
        out[16 + l] = b;
        out[32 + l] = c;
        out[48 + l] = d;
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
        let t = self
            .tensors
            .get(draw as usize)
            .ok_or_else(|| Error::Noise(format!("recorded noise has {} draws, draw {draw} requested", self.tensors.len())))?;
        if t.shape() != out.shape() {
            return Err(Error::shape(format!("recorded noise draw {draw}"), out.shape(), t.shape()));
        }
        out.assign(t);
        Ok(())
    }
}

/// Philox + Box–Muller with SIMD: the scalar code's operations in the same order (no FMA), so
/// the bits are identical to [`group_portable`]. Lanes are the 16 counters of a group.
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{GROUP, M0, M1, W0, W1};
    use std::arch::x86_64::*;
    use std::f32::consts::{FRAC_1_SQRT_2, FRAC_PI_2};

    /// Coefficients of `ln_unit`'s polynomial after the leading 7.0376836e-2, with the sign of
    /// each Horner step (`true` = add).
    const LN_POLY: [(f32, bool); 8] = [
        (1.151_461e-1, false),
        (1.167_699_9e-1, true),
        (1.242_014_1e-1, false),
        (1.424_932_3e-1, true),
        (1.666_805_8e-1, false),
        (2.000_071_4e-1, true),
        (2.499_999_4e-1, false),
        (3.333_333e-1, true),
    ];

    // ---------------------------------------------------------------- AVX2, 8 lanes
    #[inline]
    #[target_feature(enable = "avx2")]
    fn mulhilo8(c: __m256i, m: __m256i) -> (__m256i, __m256i) {
        let even = _mm256_mul_epu32(c, m);
        let odd = _mm256_mul_epu32(_mm256_srli_epi64::<32>(c), m);
        let lo = _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd));
        let hi = _mm256_blend_epi32::<0b1010_1010>(_mm256_srli_epi64::<32>(even), odd);
        (lo, hi)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn box_muller8(a: __m256i, b: __m256i) -> (__m256, __m256) {
        let ps = _mm256_set1_ps;
        let epi = _mm256_set1_epi32;
        let u1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_srli_epi32::<8>(a), epi(1))), ps(1.0 / 16_777_216.0));
        let bits = _mm256_castps_si256(u1);
        let mut e = _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32::<23>(bits), epi(0xff)), epi(126));
        let m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, epi(0x007f_ffff)), epi(0x3f00_0000)));
        let small = _mm256_cmp_ps::<_CMP_LT_OQ>(m, ps(FRAC_1_SQRT_2));
        e = _mm256_add_epi32(e, _mm256_castps_si256(small)); // −1 where small
        let x = _mm256_blendv_ps(_mm256_sub_ps(m, ps(1.0)), _mm256_sub_ps(_mm256_add_ps(m, m), ps(1.0)), small);
        let z = _mm256_mul_ps(x, x);
        let mut y = ps(7.037_683_6e-2);
        for (c, add) in LN_POLY {
            let yx = _mm256_mul_ps(y, x);
            y = if add { _mm256_add_ps(yx, ps(c)) } else { _mm256_sub_ps(yx, ps(c)) };
        }
        y = _mm256_mul_ps(_mm256_mul_ps(y, x), z);
        let ef = _mm256_cvtepi32_ps(e);
        y = _mm256_add_ps(y, _mm256_mul_ps(ps(-2.121_944_4e-4), ef));
        y = _mm256_add_ps(y, _mm256_mul_ps(ps(-0.5), z));
        let ln = _mm256_add_ps(_mm256_add_ps(x, y), _mm256_mul_ps(ps(0.693_359_4), ef));
        let r = _mm256_sqrt_ps(_mm256_mul_ps(ps(-2.0), ln));
        let k = _mm256_srli_epi32::<8>(b);
        let j = _mm256_srai_epi32::<22>(_mm256_add_epi32(k, epi(1 << 21)));
        let rho = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(k, _mm256_slli_epi32::<22>(j))), ps(FRAC_PI_2 / 4_194_304.0));
        let z = _mm256_mul_ps(rho, rho);
        let s = _mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(ps(-1.951_529_6e-4), z), ps(8.332_161e-3)), z);
        let s = _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(s, ps(1.666_665_5e-1)), z), rho), rho);
        let c = _mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(ps(2.443_315_7e-5), z), ps(1.388_731_6e-3)), z);
        let c = _mm256_mul_ps(_mm256_mul_ps(_mm256_add_ps(c, ps(4.166_664_6e-2)), z), z);
        let c = _mm256_add_ps(_mm256_sub_ps(c, _mm256_mul_ps(ps(0.5), z)), ps(1.0));
        let swap = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(j, epi(1)), epi(1)));
        let sin = _mm256_blendv_ps(s, c, swap);
        let cos = _mm256_blendv_ps(c, s, swap);
        let sin = _mm256_xor_ps(sin, _mm256_castsi256_ps(_mm256_slli_epi32::<30>(_mm256_and_si256(j, epi(2)))));
        let cos = _mm256_xor_ps(cos, _mm256_castsi256_ps(_mm256_slli_epi32::<30>(_mm256_and_si256(_mm256_add_epi32(j, epi(1)), epi(2)))));
        (_mm256_mul_ps(r, cos), _mm256_mul_ps(r, sin))
    }

    /// One 64-pixel group with AVX2 (two halves of 8 counters).
    #[target_feature(enable = "avx2")]
    pub(super) fn group_avx2(g: u32, y: u32, plane: u32, draw: u32, key: [u32; 2], out: &mut [f32; GROUP]) {
        for half in 0..2i32 {
            let lanes = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(8 * half));
            let mut c0 = _mm256_or_si256(_mm256_set1_epi32((g << 4) as i32), lanes);
            let (mut c1, mut c2, mut c3) = (_mm256_set1_epi32(y as i32), _mm256_set1_epi32(plane as i32), _mm256_set1_epi32(draw as i32));
            let (m0, m1) = (_mm256_set1_epi32(M0 as i32), _mm256_set1_epi32(M1 as i32));
            let (mut k0, mut k1) = (key[0], key[1]);
            for _ in 0..10 {
                let (lo0, hi0) = mulhilo8(c0, m0);
                let (lo1, hi1) = mulhilo8(c2, m1);
                c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(k0 as i32));
                c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(k1 as i32));
                c1 = lo1;
                c3 = lo0;
                k0 = k0.wrapping_add(W0);
                k1 = k1.wrapping_add(W1);
            }
            let (a, b) = box_muller8(c0, c1);
            let (c, d) = box_muller8(c2, c3);
            let o = 8 * half as usize;
            let p = out.as_mut_ptr();
            // SAFETY: o + 48 + 8 ≤ 64 = out.len().
            unsafe {
                _mm256_storeu_ps(p.add(o), a);
                _mm256_storeu_ps(p.add(o + 16), b);
                _mm256_storeu_ps(p.add(o + 32), c);
                _mm256_storeu_ps(p.add(o + 48), d);
            }
        }
    }

    // ---------------------------------------------------------------- AVX-512, 16 lanes
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn mulhilo16(c: __m512i, m: __m512i) -> (__m512i, __m512i) {
        let even = _mm512_mul_epu32(c, m);
        let odd = _mm512_mul_epu32(_mm512_srli_epi64::<32>(c), m);
        // Gather the low (high) 32-bit words of the even and odd lanes' products in one permute.
        let lo_idx = _mm512_setr_epi32(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
        let hi_idx = _mm512_setr_epi32(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
        (_mm512_permutex2var_epi32(even, lo_idx, odd), _mm512_permutex2var_epi32(even, hi_idx, odd))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn box_muller16(a: __m512i, b: __m512i) -> (__m512, __m512) {
        let ps = _mm512_set1_ps;
        let epi = _mm512_set1_epi32;
        let u1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_srli_epi32::<8>(a), epi(1))), ps(1.0 / 16_777_216.0));
        let bits = _mm512_castps_si512(u1);
        let mut e = _mm512_sub_epi32(_mm512_and_si512(_mm512_srli_epi32::<23>(bits), epi(0xff)), epi(126));
        let m = _mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(bits, epi(0x007f_ffff)), epi(0x3f00_0000)));
        let small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(m, ps(FRAC_1_SQRT_2));
        e = _mm512_mask_sub_epi32(e, small, e, epi(1));
        let x = _mm512_mask_blend_ps(small, _mm512_sub_ps(m, ps(1.0)), _mm512_sub_ps(_mm512_add_ps(m, m), ps(1.0)));
        let z = _mm512_mul_ps(x, x);
        let mut y = ps(7.037_683_6e-2);
        for (c, add) in LN_POLY {
            let yx = _mm512_mul_ps(y, x);
            y = if add { _mm512_add_ps(yx, ps(c)) } else { _mm512_sub_ps(yx, ps(c)) };
        }
        y = _mm512_mul_ps(_mm512_mul_ps(y, x), z);
        let ef = _mm512_cvtepi32_ps(e);
        y = _mm512_add_ps(y, _mm512_mul_ps(ps(-2.121_944_4e-4), ef));
        y = _mm512_add_ps(y, _mm512_mul_ps(ps(-0.5), z));
        let ln = _mm512_add_ps(_mm512_add_ps(x, y), _mm512_mul_ps(ps(0.693_359_4), ef));
        let r = _mm512_sqrt_ps(_mm512_mul_ps(ps(-2.0), ln));
        let k = _mm512_srli_epi32::<8>(b);
        let j = _mm512_srai_epi32::<22>(_mm512_add_epi32(k, epi(1 << 21)));
        let rho = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(k, _mm512_slli_epi32::<22>(j))), ps(FRAC_PI_2 / 4_194_304.0));
        let z = _mm512_mul_ps(rho, rho);
        let s = _mm512_mul_ps(_mm512_add_ps(_mm512_mul_ps(ps(-1.951_529_6e-4), z), ps(8.332_161e-3)), z);
        let s = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(s, ps(1.666_665_5e-1)), z), rho), rho);
        let c = _mm512_mul_ps(_mm512_sub_ps(_mm512_mul_ps(ps(2.443_315_7e-5), z), ps(1.388_731_6e-3)), z);
        let c = _mm512_mul_ps(_mm512_mul_ps(_mm512_add_ps(c, ps(4.166_664_6e-2)), z), z);
        let c = _mm512_add_ps(_mm512_sub_ps(c, _mm512_mul_ps(ps(0.5), z)), ps(1.0));
        let swap = _mm512_test_epi32_mask(j, epi(1));
        let sin = _mm512_mask_blend_ps(swap, s, c);
        let cos = _mm512_mask_blend_ps(swap, c, s);
        let sin_sign = _mm512_slli_epi32::<30>(_mm512_and_si512(j, epi(2)));
        let cos_sign = _mm512_slli_epi32::<30>(_mm512_and_si512(_mm512_add_epi32(j, epi(1)), epi(2)));
        let sin = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(sin), sin_sign));
        let cos = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(cos), cos_sign));
        (_mm512_mul_ps(r, cos), _mm512_mul_ps(r, sin))
    }

    /// `N` consecutive 64-pixel groups with AVX-512 (16 counters per group). Interleaving
    /// independent groups hides the latency of Philox's serial rounds.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn groups_avx512<const N: usize>(g: u32, y: u32, plane: u32, draw: u32, key: [u32; 2], out: &mut [f32]) {
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let mut c0: [__m512i; N] =
            std::array::from_fn(|i| _mm512_or_si512(_mm512_set1_epi32((g.wrapping_add(i as u32) << 4) as i32), lanes));
        let mut c1 = [_mm512_set1_epi32(y as i32); N];
        let mut c2 = [_mm512_set1_epi32(plane as i32); N];
        let mut c3 = [_mm512_set1_epi32(draw as i32); N];
        let (m0, m1) = (_mm512_set1_epi32(M0 as i32), _mm512_set1_epi32(M1 as i32));
        let (mut k0, mut k1) = (key[0], key[1]);
        for _ in 0..10 {
            let (kv0, kv1) = (_mm512_set1_epi32(k0 as i32), _mm512_set1_epi32(k1 as i32));
            for i in 0..N {
                let (lo0, hi0) = mulhilo16(c0[i], m0);
                let (lo1, hi1) = mulhilo16(c2[i], m1);
                c0[i] = _mm512_xor_si512(_mm512_xor_si512(hi1, c1[i]), kv0);
                c2[i] = _mm512_xor_si512(_mm512_xor_si512(hi0, c3[i]), kv1);
                c1[i] = lo1;
                c3[i] = lo0;
            }
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        assert!(out.len() >= GROUP * N);
        let p = out.as_mut_ptr();
        for i in 0..N {
            let (a, b) = box_muller16(c0[i], c1[i]);
            let (c, d) = box_muller16(c2[i], c3[i]);
            // SAFETY: four stores of 16 floats inside group i of `out` (length checked above).
            unsafe {
                let q = p.add(GROUP * i);
                _mm512_storeu_ps(q, a);
                _mm512_storeu_ps(q.add(16), b);
                _mm512_storeu_ps(q.add(32), c);
                _mm512_storeu_ps(q.add(48), d);
            }
        }
    }

    /// One 64-pixel group with AVX-512.
    #[target_feature(enable = "avx512f")]
    pub(super) fn group_avx512(g: u32, y: u32, plane: u32, draw: u32, key: [u32; 2], out: &mut [f32; GROUP]) {
        groups_avx512::<1>(g, y, plane, draw, key, out)
    }

    /// Four consecutive groups (256 pixels) with AVX-512.
    #[target_feature(enable = "avx512f")]
    pub(super) fn group4_avx512(g: u32, y: u32, plane: u32, draw: u32, key: [u32; 2], out: &mut [f32; 4 * GROUP]) {
        groups_avx512::<4>(g, y, plane, draw, key, out)
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
        assert_eq!(philox4x32_10([0xffffffff; 4], [0xffffffff; 2]), [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
        assert_eq!(
            philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    /// The fixed-polynomial Box–Muller agrees with an f64 libm evaluation to ~1e-6, and the
    /// vectorized row generator is bit-identical to the per-pixel one.
    #[test]
    fn box_muller_is_accurate_and_rows_match_pixels() {
        let src = PhiloxNoise::new(11);
        let mut worst = 0f64;
        for i in 0..20_000u32 {
            let w = philox4x32_10([i, 3, 5, 7], [1, 2]);
            let (n0, n1) = box_muller(w[0], w[1]);
            let u1 = ((w[0] >> 8) as f64 + 1.0) / 16_777_216.0;
            let u2 = (w[1] >> 8) as f64 / 16_777_216.0;
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            worst = worst.max((n0 as f64 - r * t.cos()).abs()).max((n1 as f64 - r * t.sin()).abs());
        }
        assert!(worst < 2e-6, "worst abs error {worst}");
        for x0 in [0u32, 1, 2, 3, 5, 30, 33, 64, 100] {
            let mut row = vec![0f32; 777]; // long enough for the 4-group kernels
            src.fill_row(2, 1, 2, 9, x0, &mut row);
            for (i, &v) in row.iter().enumerate() {
                assert_eq!(v.to_bits(), src.sample_at(2, 1, 2, 9, x0 + i as u32).to_bits());
            }
        }
        // Every SIMD kernel this CPU has gives the portable kernel's bits.
        for g in [0u32, 1, 77, 1 << 20] {
            let mut a = [0f32; GROUP];
            group_portable(g, 9, 4098, 2, src.key(), &mut a);
            let mut kernels: Vec<GroupFn> = vec![group_kernel()];
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                kernels.push(|g, y, p, d, k, o| unsafe { simd::group_avx2(g, y, p, d, k, o) });
            }
            for k in kernels {
                let mut b = [0f32; GROUP];
                k(g, 9, 4098, 2, src.key(), &mut b);
                assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits));
            }
        }
    }

    #[test]
    fn tiles_equal_whole() {
        let mut whole = Array4::<f32>::zeros((2, 3, 13, 17));
        let mut src = PhiloxNoise::new(42);
        src.fill(5, whole.view_mut()).unwrap();
        // Cut an odd-aligned tile from image 1 and draw it on its own.
        let (y0, x0, h, w) = (3usize, 5usize, 7usize, 9usize);
        let mut tile = Array4::<f32>::zeros((1, 3, h, w));
        let mut tsrc = PhiloxNoise::with_placements(42, vec![Placement { image: 1, y0: y0 as u32, x0: x0 as u32 }]);
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
