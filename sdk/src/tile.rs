//! Tiling inside every network call: [`TiledDenoiser`].
//!
//! The sampler always works on the whole frame — its state, its noise (counter-based, keyed by
//! whole-image coordinates) and every update — and only the network sees tiles. Each call cuts
//! the full-frame input into overlapping tiles, runs them in batches, and blends the outputs
//! with smooth weights. So the noise and every update are identical for any tile size, and the
//! only tile dependence left is the network's own receptive field: pixels near tile seams for
//! a convolutional network, but every pixel for a network with attention or global pooling
//! (its receptive field is the whole tile), whose output changes with the tile size.
//!
//! Weights along each axis: inside an overlap of length `ov` between two neighbours, each tile
//! drops the `trim` pixels nearest its inner edge (weight 0: the pixels whose receptive field
//! the tile cuts the most), and the remaining `ov − 2·trim` pixels cross-fade with a raised
//! cosine (the two cross-fades sum to 1). A 2-D weight is the product of the two axes'. The
//! blend is a weighted running mean, `acc += (w / Σw)·(v − acc)`, so a pixel covered by a
//! single tile — or by tiles whose outputs agree — gets exactly that value, bit for bit: a
//! pointwise network is exactly tile-invariant. If a network's
//! receptive radius is `r` and `trim ≥ r`, every kept pixel sees exactly what it would see in
//! a whole-frame run, so the tiled output equals the whole-frame output up to rounding.

use crate::family::NetCall;
use crate::runtime::CancelToken;
use crate::{Denoiser, Error, Result, Tensor, TensorView};
use ndarray::{Array2, Array4, Axis, s};

/// Tiling parameters (pixels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileConfig {
    /// Tile height and width (0 in either: no tiling, the network sees the whole frame). A
    /// frame smaller than the tile along an axis is one tile along that axis.
    pub size: (usize, usize),
    /// Overlap between neighbouring tiles (at most half the tile).
    pub overlap: usize,
    /// Pixels dropped at each inner tile edge (see the module docs; at most `(overlap − 1)/2`
    /// is used).
    pub trim: usize,
    /// Tiles per network run.
    pub batch: usize,
    /// Tile starts are multiples of this (keeps the phase of strided layers).
    pub align: usize,
    /// Always run full batches of full-size tiles (the last batch is padded with repeats), so
    /// the network sees one input shape — what a TensorRT engine cache needs. The frame must
    /// then be at least one tile large (the restorer pads it).
    pub fixed_shape: bool,
}

impl Default for TileConfig {
    fn default() -> Self {
        TileConfig { size: (0, 0), overlap: 64, trim: 16, batch: 1, align: 1, fixed_shape: false }
    }
}

impl TileConfig {
    /// Square tiles of side `size` (0: no tiling) with `overlap`, trimming a quarter of it.
    pub fn square(size: usize, overlap: usize) -> Self {
        TileConfig { size: (size, size), overlap, trim: overlap / 4, ..Self::default() }
    }
}

/// Tile starts along an axis of length `n`: evenly spread, multiples of `g`, the last one
/// ending at `n`, neighbours overlapping by at least `o`.
pub fn axis_starts(n: usize, t: usize, o: usize, g: usize) -> Vec<usize> {
    if t >= n {
        return vec![0];
    }
    let g = if g > 0 && t > o && t - o >= g && (n - t).is_multiple_of(g) { g } else { 1 };
    let step = (t - o).max(1);
    let mut k = (n - t).div_ceil(step) + 1;
    loop {
        let starts: Vec<usize> = (0..k)
            .map(|i| {
                let x = (i * (n - t)) as f64 / (k - 1) as f64 / g as f64;
                (x.round() as usize) * g
            })
            .collect();
        if starts.windows(2).all(|w| w[1] - w[0] <= t.saturating_sub(o).max(1)) || k > n {
            let mut s = starts;
            s.dedup();
            return s;
        }
        k += 1;
    }
}

/// Raised-cosine ramp position `u` (0 at the inner edge) in an overlap of `ov` with `trim`.
fn ramp(u: usize, ov: usize, trim: usize) -> f32 {
    let trim = trim.min(ov.saturating_sub(1) / 2);
    if u < trim {
        return 0.0;
    }
    if u + trim >= ov {
        return 1.0;
    }
    let r = (u - trim) as f64 + 0.5;
    let len = (ov - 2 * trim) as f64;
    (0.5 - 0.5 * (std::f64::consts::PI * r / len).cos()) as f32
}

/// Weights of each tile along one axis.
fn axis_weights(starts: &[usize], t: usize, trim: usize) -> Vec<Vec<f32>> {
    (0..starts.len())
        .map(|i| {
            let s0 = starts[i];
            (0..t)
                .map(|u| {
                    let mut w = 1.0;
                    if i > 0 {
                        let ov = (starts[i - 1] + t).saturating_sub(s0);
                        if ov > 0 {
                            w *= ramp(u, ov, trim);
                        }
                    }
                    if i + 1 < starts.len() {
                        let ov = (s0 + t).saturating_sub(starts[i + 1]);
                        if ov > 0 {
                            w *= ramp(t - 1 - u, ov, trim);
                        }
                    }
                    w
                })
                .collect()
        })
        .collect()
}

/// Where the tiles of one frame lie and how they blend.
#[derive(Clone, Debug)]
pub struct TileLayout {
    /// Frame height and width.
    pub frame: (usize, usize),
    /// Tile height and width (≤ the frame's).
    pub tile: (usize, usize),
    /// Tile row starts.
    pub ys: Vec<usize>,
    /// Tile column starts.
    pub xs: Vec<usize>,
    wy: Vec<Vec<f32>>,
    wx: Vec<Vec<f32>>,
    /// 1 / summed weight per pixel (∞ where no tile has weight: checked at construction).
    inv: Array2<f32>,
}

impl TileLayout {
    /// The layout for an `h × w` frame.
    pub fn new(h: usize, w: usize, cfg: &TileConfig) -> Result<Self> {
        let (sh, sw) = cfg.size;
        if sh == 0 || sw == 0 || (sh >= h && sw >= w) {
            return Self::build(h, w, (h, w), vec![0], vec![0], 0);
        }
        // `overlap > size / 2` rather than `2·overlap > size`: no overflow for huge overlaps.
        if cfg.overlap > sh.min(sw) / 2 {
            return Err(Error::param("tile overlap", format!("{} is more than half the tile size {sh}x{sw}", cfg.overlap)));
        }
        let (th, tw) = (sh.min(h), sw.min(w));
        let ys = axis_starts(h, th, cfg.overlap, cfg.align);
        let xs = axis_starts(w, tw, cfg.overlap, cfg.align);
        let l = Self::build(h, w, (th, tw), ys.clone(), xs.clone(), cfg.trim)?;
        if l.inv.iter().all(|v| v.is_finite()) {
            return Ok(l);
        }
        // Some pixel got weight 0 from every tile (only possible with very uneven spacing):
        // without trimming every weight is positive.
        Self::build(h, w, (th, tw), ys, xs, 0)
    }

    fn build(h: usize, w: usize, tile: (usize, usize), ys: Vec<usize>, xs: Vec<usize>, trim: usize) -> Result<Self> {
        let wy = axis_weights(&ys, tile.0, trim);
        let wx = axis_weights(&xs, tile.1, trim);
        let mut sum: Array2<f64> = crate::alloc::try_zeros((h, w), "the tile weight map")?;
        for (y0, wyt) in ys.iter().zip(&wy) {
            for (x0, wxt) in xs.iter().zip(&wx) {
                let mut win = sum.slice_mut(s![*y0..y0 + tile.0, *x0..x0 + tile.1]);
                for ((i, j), v) in win.indexed_iter_mut() {
                    *v += (wyt[i] * wxt[j]) as f64;
                }
            }
        }
        let mut inv: Array2<f32> = crate::alloc::try_zeros((h, w), "the tile weight map")?;
        ndarray::Zip::from(&mut inv).and(&sum).for_each(|i, &v| *i = if v > 0.0 { (1.0 / v) as f32 } else { f32::INFINITY });
        Ok(TileLayout { frame: (h, w), tile, ys, xs, wy, wx, inv })
    }

    /// Number of tiles per image.
    pub fn len(&self) -> usize {
        self.ys.len() * self.xs.len()
    }

    /// Never true: a layout has at least one tile.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the layout is a single tile covering the frame.
    pub fn is_whole(&self) -> bool {
        self.len() == 1 && self.tile == self.frame
    }

    /// `(y0, x0, row weights, column weights)` of tile `k`.
    fn tile(&self, k: usize) -> (usize, usize, &[f32], &[f32]) {
        let (i, j) = (k / self.xs.len(), k % self.xs.len());
        (self.ys[i], self.xs[j], &self.wy[i], &self.wx[j])
    }

    /// Top-left corner `(y0, x0)` of tile `k` (row-major over `ys × xs`).
    pub(crate) fn origin(&self, k: usize) -> (usize, usize) {
        let (y0, x0, _, _) = self.tile(k);
        (y0, x0)
    }

    /// The factor `w / Σw` with which [`TiledDenoiser`] blends each pixel of each tile into the
    /// running mean (`acc += k·(v − acc)`; 0 where it skips the pixel), tile `k` at index `k`,
    /// `tile.0 × tile.1` row-major: the same `f32` operations in the same order as its blend
    /// loop, so the device loop's blend ([`crate::runtime::device`]) gives the same bits. The
    /// factors do not depend on the data, and every image of a batch gets the same ones.
    pub(crate) fn blend_factors(&self) -> Result<Vec<Vec<f32>>> {
        let (h, w) = self.frame;
        let (th, tw) = self.tile;
        let n = th.checked_mul(tw).ok_or_else(|| Error::param("tile size", "too large"))?;
        let mut wsum =
            crate::alloc::try_vec(h.checked_mul(w).ok_or_else(|| Error::param("frame size", "too large"))?, 0f32, "the tile weight sums")?;
        let mut out = Vec::with_capacity(self.len());
        for k in 0..self.len() {
            let (y0, x0, wy, wx) = self.tile(k);
            let mut f = crate::alloc::try_vec(n, 0f32, "the tile blend factors")?;
            for (yy, &wyv) in wy.iter().enumerate().take(th) {
                if wyv == 0.0 {
                    continue;
                }
                let row = &mut wsum[(y0 + yy) * w + x0..(y0 + yy) * w + x0 + tw];
                for ((kx, wsx), &wxv) in f[yy * tw..(yy + 1) * tw].iter_mut().zip(row.iter_mut()).zip(wx) {
                    let wv = wyv * wxv;
                    if wv > 0.0 {
                        *wsx += wv;
                        *kx = wv / *wsx;
                    }
                }
            }
            out.push(f);
        }
        Ok(out)
    }
}

/// Progress inside one network call: `done` of `total` tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileProgress {
    /// Network call index (0-based) of this denoiser.
    pub call: usize,
    /// Tiles finished in this call.
    pub done: usize,
    /// Tiles in this call.
    pub total: usize,
}

/// A [`Denoiser`] that runs its inner denoiser on overlapping tiles of every input and blends
/// the outputs (see the module docs).
pub struct TiledDenoiser<'a> {
    inner: &'a mut dyn Denoiser,
    cfg: TileConfig,
    layout: Option<TileLayout>,
    calls: usize,
    progress: Option<&'a mut dyn FnMut(TileProgress) -> bool>,
    cancel: Option<CancelToken>,
}

impl<'a> TiledDenoiser<'a> {
    /// Tile `inner` as `cfg` says.
    pub fn new(inner: &'a mut dyn Denoiser, cfg: TileConfig) -> Self {
        TiledDenoiser { inner, cfg, layout: None, calls: 0, progress: None, cancel: None }
    }

    /// Report progress after every tile batch; returning `false` cancels.
    pub fn with_progress(mut self, f: &'a mut dyn FnMut(TileProgress) -> bool) -> Self {
        self.progress = Some(f);
        self
    }

    /// Stop between tile batches when `token` is cancelled.
    pub fn with_cancel(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// The layout of the last call (for inspection).
    pub fn layout(&self) -> Option<&TileLayout> {
        self.layout.as_ref()
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel.as_ref().is_some_and(CancelToken::is_cancelled) { Err(Error::Cancelled) } else { Ok(()) }
    }

    fn run(&mut self, x_in: TensorView<'_>, cond: TensorView<'_>, call: &NetCall) -> Result<Tensor> {
        self.check_cancel()?;
        let (b, c, h, w) = x_in.dim();
        if cond.shape()[0] != b || cond.shape()[2] != h || cond.shape()[3] != w {
            return Err(Error::shape("conditioning input (batch, height, width)", &[b, cond.shape()[1], h, w], cond.shape()));
        }
        if self.layout.as_ref().is_none_or(|l| l.frame != (h, w)) {
            self.layout = Some(TileLayout::new(h, w, &self.cfg)?);
        }
        let call_idx = self.calls;
        self.calls += 1;
        let Some(layout) = self.layout.take() else { return Err(Error::Denoiser("tile layout missing".into())) };
        let res = self.run_tiles(&layout, x_in, cond, call, call_idx, (b, c, h, w));
        self.layout = Some(layout);
        res
    }

    fn run_tiles(
        &mut self,
        layout: &TileLayout,
        x_in: TensorView<'_>,
        cond: TensorView<'_>,
        call: &NetCall,
        call_idx: usize,
        (b, c, h, w): (usize, usize, usize, usize),
    ) -> Result<Tensor> {
        let total = b * layout.len();
        if layout.is_whole() && !self.cfg.fixed_shape {
            let out = self.inner.eval_call(x_in, cond, call)?;
            self.report(call_idx, total, total)?;
            return Ok(out);
        }
        let (th, tw) = layout.tile;
        let cc = cond.shape()[1];
        let batch = self.cfg.batch.max(1);
        let mut acc: Array4<f32> = crate::alloc::try_zeros((b, c, h, w), "the tiled output")?;
        // Running weight sum per pixel (shared by the channels).
        let mut wsum: ndarray::Array3<f32> = crate::alloc::try_zeros((b, h, w), "the tile weight sums")?;
        let mut k = vec![0f32; tw];
        let mut done = 0;
        let jobs: Vec<(usize, usize)> = (0..b).flat_map(|bi| (0..layout.len()).map(move |k| (bi, k))).collect();
        for chunk in jobs.chunks(batch) {
            let n = chunk.len();
            let rows = if self.cfg.fixed_shape { batch } else { n };
            let mut xb: Array4<f32> = crate::alloc::try_zeros((rows, c, th, tw), "a tile batch")?;
            let mut cb: Array4<f32> = crate::alloc::try_zeros((rows, cc, th, tw), "a tile batch")?;
            // Padding rows (fixed shape only) repeat the last tile; their outputs are dropped.
            for i in 0..rows {
                let (bi, k) = chunk[i.min(n - 1)];
                let (y0, x0, _, _) = layout.tile(k);
                xb.index_axis_mut(Axis(0), i).assign(&x_in.slice(s![bi, .., y0..y0 + th, x0..x0 + tw]));
                cb.index_axis_mut(Axis(0), i).assign(&cond.slice(s![bi, .., y0..y0 + th, x0..x0 + tw]));
            }
            let out = self.inner.eval_call(xb.view(), cb.view(), call)?;
            if out.shape() != xb.shape() {
                return Err(Error::shape("network output (tile batch)", xb.shape(), out.shape()));
            }
            // Weighted running mean, `acc += (w / Σw)·(v − acc)`: a pixel covered by one tile
            // (or by tiles that agree) gets the tile's value exactly, whatever the weights.
            for (i, &(bi, tk)) in chunk.iter().enumerate() {
                let (y0, x0, wy, wx) = layout.tile(tk);
                for (yy, &wyv) in wy.iter().enumerate().take(th) {
                    if wyv == 0.0 {
                        continue;
                    }
                    let mut ws = wsum.slice_mut(s![bi, y0 + yy, x0..x0 + tw]);
                    for ((kx, wsx), &wxv) in k.iter_mut().zip(ws.iter_mut()).zip(wx) {
                        let wv = wyv * wxv;
                        if wv > 0.0 {
                            *wsx += wv;
                            *kx = wv / *wsx;
                        } else {
                            *kx = 0.0;
                        }
                    }
                    for ci in 0..c {
                        let src = out.slice(s![i, ci, yy, ..]);
                        let mut dst = acc.slice_mut(s![bi, ci, y0 + yy, x0..x0 + tw]);
                        for ((d, &v), &kx) in dst.iter_mut().zip(src.iter()).zip(&k) {
                            if kx != 0.0 {
                                *d += kx * (v - *d);
                            }
                        }
                    }
                }
            }
            done += n;
            self.report(call_idx, done, total)?;
        }
        Ok(acc)
    }

    fn report(&mut self, call: usize, done: usize, total: usize) -> Result<()> {
        if let Some(p) = self.progress.as_mut()
            && !p(TileProgress { call, done, total })
        {
            return Err(Error::Cancelled);
        }
        self.check_cancel()
    }
}

impl Denoiser for TiledDenoiser<'_> {
    fn eval(&mut self, x_in: TensorView<'_>, cond: TensorView<'_>, t_net: f64) -> Result<Tensor> {
        let call = NetCall { t: t_net, t_net, c_in: 1.0, x0: None, clamp: None, raw_is_eps: false };
        self.run(x_in, cond, &call)
    }
    fn eval_call(&mut self, x_in: TensorView<'_>, cond: TensorView<'_>, call: &NetCall) -> Result<Tensor> {
        self.run(x_in, cond, call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FnDenoiser;

    /// Starts cover the axis, are aligned, and neighbours overlap by at least the overlap.
    #[test]
    fn starts_cover_with_overlap() {
        for n in [1usize, 7, 64, 65, 100, 129, 257, 500, 1000, 1031] {
            for (t, o, g) in [(64usize, 16usize, 8usize), (64, 0, 1), (32, 16, 8), (128, 32, 16), (48, 8, 1)] {
                let st = axis_starts(n, t, o, g);
                let tt = t.min(n);
                assert_eq!(st[0], 0);
                assert_eq!(st.last().unwrap() + tt, n.max(tt), "n {n} t {t}");
                for wnd in st.windows(2) {
                    assert!(wnd[1] > wnd[0] && wnd[1] - wnd[0] <= tt - o, "n {n} t {t} o {o}: {st:?}");
                }
                if n % g == 0 {
                    assert!(st.iter().all(|s| s % g == 0), "{st:?}");
                }
            }
        }
    }

    /// Weights are a partition of unity over uniform overlaps and never leave a pixel uncovered.
    #[test]
    fn weights_cover_every_pixel() {
        for (h, w) in [(64, 64), (100, 37), (257, 130), (33, 500)] {
            for (size, overlap, trim) in [(32, 16, 4), (64, 16, 16), (48, 24, 11), (16, 8, 3)] {
                let cfg = TileConfig { size: (size, size), overlap, trim, batch: 3, align: 1, fixed_shape: false };
                let l = TileLayout::new(h, w, &cfg).unwrap();
                assert!(l.inv.iter().all(|v| v.is_finite() && *v > 0.0), "{h}x{w} {cfg:?}");
            }
        }
        // Two tiles, overlap 16, trim 4: the two ramps sum to exactly one.
        let st = vec![0, 48];
        let ws = axis_weights(&st, 64, 4);
        for p in 48..64 {
            let s = ws[0][p] + ws[1][p - 48];
            assert!((s - 1.0).abs() < 1e-6, "{p}: {s}");
        }
        assert_eq!(&ws[1][..4], &[0.0; 4]);
        assert_eq!(&ws[0][60..], &[0.0; 4]);
    }

    /// A pointwise network gives the same output tiled and whole, for any tile size and batch,
    /// and sees batches of tiles of the tile size.
    #[test]
    fn pointwise_network_is_tile_invariant() {
        let x = Tensor::from_shape_fn((2, 3, 45, 70), |(b, c, y, x)| ((b * 5 + c * 3 + y * 7 + x * 11) % 17) as f32 * 0.1 - 0.8);
        let cond = x.mapv(|v| 0.5 - v);
        let mut seen = Vec::new();
        let mut net = FnDenoiser(|xi: TensorView<'_>, ci: TensorView<'_>, t: f64| {
            seen.push(xi.shape().to_vec());
            Ok(ndarray::Zip::from(&xi).and(&ci).map_collect(|&a, &b| (a * 0.7 + b * 0.2 + t as f32).tanh()))
        });
        let whole = net.eval(x.view(), cond.view(), 0.25).unwrap();
        for (size, overlap, batch) in [(16, 4, 1), (32, 8, 5), (24, 12, 7), (64, 16, 2)] {
            let cfg = TileConfig { size: (size, size), overlap, trim: overlap / 4, batch, align: 1, fixed_shape: batch == 5 };
            let mut tiled = TiledDenoiser::new(&mut net, cfg);
            let out = tiled.eval(x.view(), cond.view(), 0.25).unwrap();
            let diff = out.iter().zip(&whole).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert_eq!(diff, 0.0, "size {size}");
        }
        assert!(seen.iter().skip(1).any(|s| s[2] == 16 && s[3] == 16 && s[0] == 1));
        // Batch 5 runs with `fixed_shape`: every run is a full batch of 32×32 tiles.
        let b5: Vec<_> = seen.iter().filter(|s| s[2] == 32).collect();
        assert!(!b5.is_empty() && b5.iter().all(|s| s[0] == 5 && s[3] == 32), "{b5:?}");
    }

    /// With `trim ≥` the receptive radius, a local (3×3 box) network tiled equals whole-frame.
    #[test]
    fn local_network_exact_with_trim() {
        let x = Tensor::from_shape_fn((1, 1, 50, 61), |(_, _, y, x)| ((y * 13 + x * 7) % 23) as f32 * 0.05);
        let mut net = FnDenoiser(|xi: TensorView<'_>, _c: TensorView<'_>, _t: f64| {
            let (b, c, h, w) = xi.dim();
            Ok(Tensor::from_shape_fn((b, c, h, w), |(bi, ci, y, x)| {
                let mut s = 0.0;
                for dy in -1i64..=1 {
                    for dx in -1i64..=1 {
                        let (yy, xx) = (y as i64 + dy, x as i64 + dx);
                        if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w {
                            s += xi[[bi, ci, yy as usize, xx as usize]];
                        }
                    }
                }
                s / 9.0
            }))
        });
        let whole = net.eval(x.view(), x.view(), 0.0).unwrap();
        let run = |net: &mut dyn Denoiser, trim| {
            let cfg = TileConfig { size: (24, 24), overlap: 8, trim, batch: 2, align: 1, fixed_shape: false };
            let out = TiledDenoiser::new(net, cfg).eval(x.view(), x.view(), 0.0).unwrap();
            out.iter().zip(&whole).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max)
        };
        assert!(run(&mut net, 1) < 1e-6);
        assert!(run(&mut net, 0) > 1e-3, "without trim the zero-padded tile borders leak in");
    }

    /// The running mean with `blend_factors` reproduces `TiledDenoiser`'s output bit for bit
    /// (a network whose outputs differ per tile, so every overlap blends).
    #[test]
    fn blend_factors_reproduce_the_blend() {
        let (h, w) = (45, 70);
        let cfg = TileConfig { size: (16, 24), overlap: 7, trim: 2, batch: 3, align: 1, fixed_shape: false };
        let x = Tensor::from_shape_fn((2, 2, h, w), |(b, c, y, x)| ((b * 5 + c * 3 + y * 7 + x * 11) % 17) as f32 * 0.1 - 0.8);
        let mut runs = 0u32;
        let mut net = FnDenoiser(|xi: TensorView<'_>, _c: TensorView<'_>, _t: f64| {
            runs += 1;
            let r = runs as f32;
            Ok(xi.mapv(|v| (v * r).sin()))
        });
        let want = TiledDenoiser::new(&mut net, cfg).eval(x.view(), x.view(), 0.0).unwrap();
        let l = TileLayout::new(h, w, &cfg).unwrap();
        let f = l.blend_factors().unwrap();
        let (th, tw) = l.tile;
        let mut acc = Tensor::zeros((2, 2, h, w));
        let mut run = 0u32;
        let jobs: Vec<(usize, usize)> = (0..2).flat_map(|b| (0..l.len()).map(move |k| (b, k))).collect();
        for chunk in jobs.chunks(3) {
            run += 1;
            for &(b, k) in chunk {
                let (y0, x0) = l.origin(k);
                for c in 0..2 {
                    for yy in 0..th {
                        for xx in 0..tw {
                            let kx = f[k][yy * tw + xx];
                            let d = &mut acc[[b, c, y0 + yy, x0 + xx]];
                            let v = (x[[b, c, y0 + yy, x0 + xx]] * run as f32).sin();
                            if kx != 0.0 {
                                *d += kx * (v - *d);
                            }
                        }
                    }
                }
            }
        }
        assert!(acc.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(f.iter().flatten().any(|&k| k > 0.0 && k < 1.0), "some pixels blend");
    }

    #[test]
    fn progress_and_cancel() {
        let x = Tensor::zeros((1, 3, 40, 40));
        let mut net = FnDenoiser(|xi: TensorView<'_>, _c: TensorView<'_>, _t: f64| Ok(xi.to_owned()));
        let mut log = Vec::new();
        let mut cb = |p: TileProgress| {
            log.push(p);
            p.done < 4
        };
        let cfg = TileConfig { size: (16, 16), overlap: 4, trim: 1, batch: 2, align: 1, fixed_shape: false };
        let r = TiledDenoiser::new(&mut net, cfg).with_progress(&mut cb).eval(x.view(), x.view(), 0.0);
        assert!(matches!(r, Err(Error::Cancelled)));
        assert_eq!(log.iter().map(|p| p.done).collect::<Vec<_>>(), vec![2, 4]);
        assert_eq!(log[0].total, 9);
        let tok = CancelToken::new();
        tok.cancel();
        let r = TiledDenoiser::new(&mut net, cfg).with_cancel(tok).eval(x.view(), x.view(), 0.0);
        assert!(matches!(r, Err(Error::Cancelled)));
        assert!(matches!(TileLayout::new(40, 40, &TileConfig { size: (16, 16), overlap: 9, ..cfg }), Err(Error::InvalidParam { .. })));
        // Huge user values: a typed error or a valid layout, never an overflow.
        assert!(matches!(
            TileLayout::new(40, 40, &TileConfig { size: (16, 16), overlap: usize::MAX, ..cfg }),
            Err(Error::InvalidParam { .. })
        ));
        assert!(matches!(
            TileLayout::new(40, 40, &TileConfig { size: (16, 16), overlap: 1 << 63, ..cfg }),
            Err(Error::InvalidParam { .. })
        ));
        let l = TileLayout::new(40, 40, &TileConfig { size: (16, 16), overlap: 4, trim: usize::MAX, align: usize::MAX, ..cfg }).unwrap();
        assert!(l.inv.iter().all(|v| v.is_finite()));
        let l = TileLayout::new(40, 40, &TileConfig { size: (usize::MAX, usize::MAX), overlap: usize::MAX, ..cfg }).unwrap();
        assert!(l.is_whole());
    }
}
