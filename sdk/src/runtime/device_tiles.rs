//! The device loop for tiled frames: the sampler state stays a whole frame on the device, and
//! every network call runs the host loop's tiling ([`crate::tile::TiledDenoiser`]) there.
//!
//! Per call, for each network run of a tile batch (step-major, as the host): the crop graph
//! ([`tile_graph::crop`]) cuts the batch's tile windows out of the device frame `x_in` into
//! the bound tile buffer, the network runs on it (conditioning tiles were cut once, before the
//! first step: the conditioning image does not change), and the blend graph
//! ([`tile_graph::blend`]) folds the real rows' outputs into the running weighted mean, a device
//! frame that is the step graph's `raw` after the call's last run. Tile layout, blend factors,
//! trim, batch rows (a fixed-shape batch repeats its last tile; a graph with a fixed batch size
//! runs in chunks padded the same way) and the order of the blend are the host's, so the output
//! equals the host loop's bit for bit on the CPU provider.
//!
//! Device memory: the whole-frame buffers of the untiled loop, a second blend frame (the
//! blend ping-pongs), the tile input and output buffers of each run size, the blend factors
//! (one tile-sized plane per tile) and the conditioning tiles (about the conditioning image
//! times the tile overlap factor). Each blend run reads and writes whole frames (`Pad` and
//! `Where` on the frame): negligible next to a network run on a GPU, noticeable on the CPU
//! provider (`docs/performance.md`).

use super::*;
use crate::runtime::tile_graph::{self, names as tn};
use crate::tile::{TileConfig, TileLayout};

/// A crop or blend graph ([`tile_graph`]), the key of its cached session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TileGraph {
    Crop(usize),
    Blend { rows: usize, real: usize, first: bool },
}

impl TileGraph {
    fn model(self) -> Vec<u8> {
        match self {
            TileGraph::Crop(rows) => tile_graph::crop(rows),
            TileGraph::Blend { rows, real, first } => tile_graph::blend(rows, real, first),
        }
    }
}

/// One network run of a tiled call: the jobs (image × tile, in host order) of its rows — repeats
/// pad a fixed-size batch — of which the first `real` are blended.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    rows: Vec<usize>,
    real: usize,
}

/// One tile batch of the host loop: `jobs` tiles, reported together, run as `runs`.
#[derive(Debug, PartialEq, Eq)]
struct Group {
    jobs: usize,
    runs: Vec<Run>,
}

/// The network runs of one call, as the host loop makes them: [`TiledDenoiser`]'s batches of
/// `batch` jobs (padded to `batch` rows by repeating the last tile when `fixed_shape`), each
/// split by [`OnnxDenoiser`] into chunks of a graph's fixed batch size, padded by repeating
/// the chunk's last row. Chunks holding only padding rows are left out: the host drops their
/// outputs.
///
/// [`TiledDenoiser`]: crate::tile::TiledDenoiser
fn schedule(jobs: usize, batch: usize, fixed_shape: bool, fixed_batch: Option<usize>) -> Vec<Group> {
    let batch = batch.max(1);
    let mut out = Vec::new();
    let mut j0 = 0;
    while j0 < jobs {
        let n = batch.min(jobs - j0);
        let width = if fixed_shape { batch } else { n };
        let list: Vec<usize> = (0..width).map(|i| j0 + i.min(n - 1)).collect();
        let runs = match fixed_batch.map(|f| f.max(1)) {
            Some(fb) if fb != width => (0..width)
                .step_by(fb)
                .filter_map(|i| {
                    let nn = fb.min(width - i);
                    let real = n.saturating_sub(i).min(nn);
                    (real > 0).then(|| Run { rows: (0..fb).map(|k| list[i + k.min(nn - 1)]).collect(), real })
                })
                .collect(),
            _ => vec![Run { rows: list, real: n }],
        };
        out.push(Group { jobs: n, runs });
        j0 += n;
    }
    out
}

/// Where job `j` (image `j / tiles`, tile `j % tiles`) lies: Slice starts and ends, Pad widths
/// (host tensors), and its tile.
struct Job {
    starts: OrtTensor<i64>,
    ends: OrtTensor<i64>,
    pads: OrtTensor<i64>,
    tile: usize,
}

impl Job {
    fn new(layout: &TileLayout, b: usize, j: usize) -> Result<Self> {
        let (h, w) = layout.frame;
        let (th, tw) = layout.tile;
        let (bi, tile) = (j / layout.len(), j % layout.len());
        let (y0, x0) = layout.origin(tile);
        let i = |v: usize| i64::try_from(v).map_err(|_| Error::param("frame size", "too large"));
        let host = |v: Vec<i64>| OrtTensor::from_array((vec![v.len() as i64], v)).map_err(rt);
        // Channels end at i64::MAX: Slice clamps it, so one job serves the state and the
        // conditioning image whatever their channel counts.
        let starts = host(vec![i(bi)?, 0, i(y0)?, i(x0)?])?;
        let ends = host(vec![i(bi + 1)?, i64::MAX, i(y0 + th)?, i(x0 + tw)?])?;
        let pads = host(vec![i(bi)?, 0, i(y0)?, i(x0)?, i(b - 1 - bi)?, 0, i(h - y0 - th)?, i(w - x0 - tw)?])?;
        Ok(Job { starts, ends, pads, tile })
    }
}

/// Product of `dims`, or [`Error::OutOfMemory`] when it overflows.
fn elems(dims: &[usize], what: &str) -> Result<usize> {
    dims.iter()
        .try_fold(4usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::OutOfMemory { what: what.to_string(), bytes: usize::MAX })?;
    Ok(dims.iter().product())
}

/// The buffers of the network runs with `rows` tiles.
struct RowBufs {
    rows: usize,
    x: OrtTensor<f32>,
    out: OrtTensor<f32>,
    time: Option<TimeBuf>,
    class: Option<TimeBuf>,
}

/// Cut the windows of `run`'s rows out of `src` into `dst` (`[rows, C, th, tw]`).
fn crop(sess: &mut Session, src: &OrtTensor<f32>, run: &Run, jobs: &[Job], dst: &mut OrtTensor<f32>) -> Result<()> {
    let mut bind = sess.create_binding().map_err(rt)?;
    bind.bind_input(tn::X, src).map_err(rt)?;
    for (i, &j) in run.rows.iter().enumerate() {
        bind.bind_input(tn::starts(i), &jobs[j].starts).map_err(rt)?;
        bind.bind_input(tn::ends(i), &jobs[j].ends).map_err(rt)?;
    }
    bind.bind_output(tn::TILES, dst).map_err(rt)?;
    drop(sess.run_binding(&bind).map_err(|e| crate::runtime::session::run_error("tile crop graph", e.message()))?);
    Ok(())
}

/// Blend `run`'s real rows of `v` into the running mean: run `j` of a call reads
/// `acc[(j + 1) % 2]` (nothing for `j = 0`: it starts from zero) and writes `acc[j % 2]`.
fn blend(
    sess: &mut Session,
    v: &OrtTensor<f32>,
    run: &Run,
    jobs: &[Job],
    factors: &[OrtTensor<f32>],
    acc: &mut [OrtTensor<f32>; 2],
    j: usize,
) -> Result<()> {
    let mut bind = sess.create_binding().map_err(rt)?;
    bind.bind_input(tn::V, v).map_err(rt)?;
    let [a0, a1] = acc;
    let (src, dst) = if j.is_multiple_of(2) { (&*a1, a0) } else { (&*a0, a1) };
    if j > 0 {
        bind.bind_input(tn::ACC, src).map_err(rt)?;
    }
    for (i, &jb) in run.rows.iter().take(run.real).enumerate() {
        let job = &jobs[jb];
        bind.bind_input(tn::factors(i), &factors[job.tile]).map_err(rt)?;
        bind.bind_input(tn::starts(i), &job.starts).map_err(rt)?;
        bind.bind_input(tn::ends(i), &job.ends).map_err(rt)?;
        bind.bind_input(tn::pads(i), &job.pads).map_err(rt)?;
    }
    bind.bind_output(tn::ACC_OUT, dst).map_err(rt)?;
    drop(sess.run_binding(&bind).map_err(|e| crate::runtime::session::run_error("tile blend graph", e.message()))?);
    Ok(())
}

impl DeviceLoop {
    /// Why `net` cannot run a `shape` frame tiled as `layout` (from `tile`) on the device, if it
    /// cannot. A layout the host loop does not tile ([`TileLayout::is_whole`], no fixed shape)
    /// is [`DeviceLoop::unsupported`]'s question.
    pub fn unsupported_tiled(net: &OnnxDenoiser, shape: &[usize], layout: &TileLayout, tile: &TileConfig) -> Option<&'static str> {
        if shape.len() != 4 || shape.contains(&0) {
            return Some("empty frame");
        }
        if layout.is_whole() && !tile.fixed_shape {
            return Self::unsupported(net, shape);
        }
        let p = net.plan();
        if layout.frame != (shape[2], shape[3]) {
            return Some("the tile layout is for another frame size");
        }
        if p.fixed_hw.is_some_and(|hw| hw != layout.tile) {
            return Some("the graph fixes another tile size");
        }
        if p.noise_channels > 0 {
            return Some("the network takes generator noise (the distilled sampler runs on the host)");
        }
        None
    }

    /// [`DeviceLoop::sample`] with the network seeing the frame in tiles as `tile` says, as the
    /// host loop's [`crate::tile::TiledDenoiser`] cuts and blends them (module docs of
    /// `device_tiles`); a frame the host does not tile runs [`DeviceLoop::sample`]. `progress`
    /// is told after every tile batch, as the host loop tells it.
    #[allow(clippy::too_many_arguments)]
    pub fn sample_tiled(
        &mut self,
        net: &mut OnnxDenoiser,
        plan: &Plan,
        x_end: TensorView<'_>,
        cond: TensorView<'_>,
        noise: &mut dyn NoiseSource,
        tile: &TileConfig,
        progress: Option<&mut dyn FnMut(TileProgress) -> bool>,
    ) -> Result<Tensor> {
        crate::sampler::check_cond(x_end, cond)?;
        let (_, _, h, w) = x_end.dim();
        let layout = TileLayout::new(h, w, tile)?;
        if layout.is_whole() && !tile.fixed_shape {
            return self.sample(net, plan, x_end, cond, noise, progress);
        }
        if let Some(why) = Self::unsupported_tiled(net, x_end.shape(), &layout, tile) {
            return Err(Error::incompatible("device loop", "this network", why));
        }
        check_run(plan, x_end, cond)?;
        let mut progress = progress;
        guard(|| self.tiled_inner(net, plan, x_end, cond, noise, tile, &layout, &mut progress))
    }

    /// The index of `g`'s session in the cache.
    fn tile_session(&mut self, g: TileGraph, gpu: bool) -> Result<usize> {
        if let Some(i) = self.tile_graphs.iter().position(|(k, _)| *k == (g, gpu)) {
            return Ok(i);
        }
        let session = self.graph_session(&g.model(), gpu, "tile graph")?;
        self.tile_graphs.push(((g, gpu), session));
        Ok(self.tile_graphs.len() - 1)
    }

    #[allow(clippy::too_many_arguments)]
    fn tiled_inner(
        &mut self,
        net: &mut OnnxDenoiser,
        plan: &Plan,
        x_end: TensorView<'_>,
        cond: TensorView<'_>,
        noise: &mut dyn NoiseSource,
        tile: &TileConfig,
        layout: &TileLayout,
        progress: &mut Option<&mut dyn FnMut(TileProgress) -> bool>,
    ) -> Result<Tensor> {
        let gpu = net.provider() != "cpu";
        let mv = Mover { resident: !gpu && !self.staged };
        let io = net.io().clone();
        let gp = net.plan();
        let (time_input, label) = (net.time_input(), net.class_label());
        let (b, c, h, w) = x_end.dim();
        let img = [b, c, h, w];
        let (th, tw) = layout.tile;
        let cc = cond.shape()[1];
        let n_jobs = b.checked_mul(layout.len()).ok_or_else(|| Error::param("tiles", "too many"))?;
        let groups = schedule(n_jobs, tile.batch, tile.fixed_shape, gp.fixed_batch);
        let runs: Vec<&Run> = groups.iter().flat_map(|g| &g.runs).collect();
        let mut sizes: Vec<usize> = runs.iter().map(|r| r.rows.len()).collect();
        sizes.sort_unstable();
        sizes.dedup();
        for &r in &sizes {
            elems(&[r, c.max(cc), th, tw], "a tile batch")?;
        }

        // Sessions first (they borrow the loop mutably), then disjoint borrows of the caches.
        let crop_ix = sizes.iter().map(|&r| self.tile_session(TileGraph::Crop(r), gpu)).collect::<Result<Vec<_>>>()?;
        let blend_ix = runs
            .iter()
            .enumerate()
            .map(|(j, r)| self.tile_session(TileGraph::Blend { rows: r.rows.len(), real: r.real, first: j == 0 }, gpu))
            .collect::<Result<Vec<_>>>()?;
        self.step_session(&plan.order, gpu)?;
        let key = (plan.order.clone(), gpu);
        let si = self.graphs.iter().position(|(k, _)| *k == key).ok_or_else(|| Error::Runtime("step graph session missing".into()))?;
        let device_id = self.device_id;
        let DeviceLoop { graphs, tile_graphs, .. } = self;
        let step = &mut graphs[si].1;
        let (session, run_opts, cancel) = net.device_parts();
        let alloc = mv.allocator(session, gpu, device_id)?;
        let new = |shape: &[usize]| OrtTensor::<f32>::new(&alloc, shape).map_err(rt);

        // Whole-frame buffers; the blend ping-pongs between two frames, and the one the call's
        // last run writes is the step graph's `raw` (0 before the first call, as untiled).
        let State { xe, mut xs, mut z, mut x_in, mut flags, coefs, call_times, zeros } = State::new(&alloc, &mv, plan, &Src::Host(x_end))?;
        let mut acc = [new(&img)?, new(&img)?];
        mv.put(&mut acc[0], &zeros)?;
        mv.put(&mut acc[1], &zeros)?;
        drop(zeros);
        let raw_ix = (runs.len() - 1) % 2;

        // Per-tile data: positions (host), blend factors (device), run buffers per row count.
        let jobs = (0..n_jobs).map(|j| Job::new(layout, b, j)).collect::<Result<Vec<_>>>()?;
        let factors = layout
            .blend_factors()?
            .into_iter()
            .map(|f| {
                let mut t = new(&[1, 1, th, tw])?;
                mv.put(&mut t, &f)?;
                Ok(t)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut bufs = Vec::with_capacity(sizes.len());
        for &rows in &sizes {
            let time = match (io.time.as_ref(), gp.time) {
                (Some(_), Some(f)) => Some(TimeBuf::new(&alloc, f, rows)?),
                _ => None,
            };
            let class = match (io.class.as_ref(), gp.class) {
                (Some(name), Some(f)) => {
                    let label =
                        label.ok_or_else(|| Error::param("class label", format!("the network takes a class label (input `{name}`)")))?;
                    let mut cb = TimeBuf::new(&alloc, f, rows)?;
                    cb.set(&mv, rows, label as f64)?;
                    Some(cb)
                }
                _ => None,
            };
            bufs.push(RowBufs { rows, x: new(&[rows, c, th, tw])?, out: new(&[rows, c, th, tw])?, time, class });
        }
        let buf_of = |r: usize| sizes.iter().position(|&s| s == r).ok_or_else(|| Error::Runtime("tile buffer missing".into()));
        // Conditioning tiles, cut once from the uploaded image (which is then freed).
        let mut cond_tiles: Vec<Option<OrtTensor<f32>>> = Vec::with_capacity(runs.len());
        if io.cond.is_some() {
            let ch = try_standard(cond, "the conditioning input")?;
            let mut frame = new(cond.shape())?;
            mv.put(&mut frame, ch.as_slice().ok_or_else(|| Error::Runtime("cond is not contiguous".into()))?)?;
            drop(ch);
            for run in &runs {
                let mut t = new(&[run.rows.len(), cc, th, tw])?;
                crop(&mut tile_graphs[crop_ix[buf_of(run.rows.len())?]].1, &frame, run, &jobs, &mut t)?;
                cond_tiles.push(Some(t));
            }
        } else {
            cond_tiles.resize_with(runs.len(), || None);
        }
        let mut z_host = mv.noise_staging(img)?;

        let mut step_bind = step.create_binding().map_err(rt)?;
        step_bind.bind_input(names::X_END, &xe).map_err(rt)?;
        step_bind.bind_input(names::RAW, &acc[raw_ix]).map_err(rt)?;
        step_bind.bind_input(names::Z, &z).map_err(rt)?;
        step_bind.bind_output(names::X_IN, &mut x_in).map_err(rt)?;

        let mut call = 0usize;
        for (k, st) in plan.steps.iter().enumerate() {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let draw = st.noise.map(|(_, d)| d);
            let mut drawn = false;
            if let Some(cl) = st.call {
                let t = crate::runtime::session::time_for(time_input, &cl)?;
                for rb in bufs.iter_mut() {
                    if let Some(tb) = rb.time.as_mut() {
                        tb.set(&mv, rb.rows, t)?;
                    }
                }
                let (mut j, mut done) = (0usize, 0usize);
                for g in &groups {
                    for run in &g.runs {
                        let bi = buf_of(run.rows.len())?;
                        let rb = &mut bufs[bi];
                        crop(&mut tile_graphs[crop_ix[bi]].1, &x_in, run, &jobs, &mut rb.x)?;
                        let mut nb = session.create_binding().map_err(rt)?;
                        nb.bind_input(io.state.as_str(), &rb.x).map_err(rt)?;
                        if let (Some(name), Some(ct)) = (io.cond.as_ref(), cond_tiles[j].as_ref()) {
                            nb.bind_input(name.as_str(), ct).map_err(rt)?;
                        }
                        if let (Some(name), Some(tb)) = (io.time.as_ref(), rb.time.as_ref()) {
                            tb.bind(&mut nb, name)?;
                        }
                        if let (Some(name), Some(cb)) = (io.class.as_ref(), rb.class.as_ref()) {
                            cb.bind(&mut nb, name)?;
                        }
                        nb.bind_output(io.output.as_str(), &mut rb.out).map_err(rt)?;
                        match (draw, z_host.as_mut()) {
                            // Off the host: prepare this step's noise while the call's first run goes.
                            (Some(d), Some(zh)) if !drawn => {
                                let (sess, bind, opts) = (&mut *session, &mut nb, &run_opts);
                                let (r_net, r_noise) = std::thread::scope(|s| {
                                    let job = s.spawn(move || run_net(sess, bind, opts));
                                    let r_noise = fill_staged(noise, d, zh, &mut z);
                                    let r_net = job.join().unwrap_or_else(|p| {
                                        Err(Error::Runtime(format!("network thread panicked: {}", env::panic_text(&p))))
                                    });
                                    (r_net, r_noise)
                                });
                                net_error(r_net, &cancel)?;
                                r_noise?;
                                drawn = true;
                            }
                            _ => net_error(run_net(session, &nb, &run_opts), &cancel)?,
                        }
                        drop(nb);
                        blend(&mut tile_graphs[blend_ix[j]].1, &rb.out, run, &jobs, &factors, &mut acc, j)?;
                        j += 1;
                    }
                    done += g.jobs;
                    if let Some(p) = progress.as_mut()
                        && !p(TileProgress { call, done, total: n_jobs })
                    {
                        return Err(Error::Cancelled);
                    }
                    if cancel.is_cancelled() {
                        return Err(Error::Cancelled);
                    }
                }
                call += 1;
            }
            if let Some(d) = draw
                && !drawn
            {
                fill_noise(noise, d, z_host.as_mut(), &mut z)?;
            }
            run_step(step, &mut step_bind, k, &mut xs, &mut flags, &coefs[k])?;
        }
        drop(step_bind);
        finish(&mv, plan, &flags, &xs, &call_times, img)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(g: &[Group]) -> Vec<(Vec<usize>, usize)> {
        g.iter().flat_map(|g| g.runs.iter().map(|r| (r.rows.clone(), r.real))).collect()
    }

    /// Runs as the host makes them: batches of jobs, the last padded by repeating its last
    /// tile under a fixed shape, and chunks of a graph's fixed batch size padded the same way.
    #[test]
    fn schedule_matches_the_host_batches() {
        let g = schedule(5, 2, false, None);
        assert_eq!(g.iter().map(|g| g.jobs).collect::<Vec<_>>(), vec![2, 2, 1]);
        assert_eq!(rows(&g), vec![(vec![0, 1], 2), (vec![2, 3], 2), (vec![4], 1)]);
        let g = schedule(5, 3, true, None);
        assert_eq!(rows(&g), vec![(vec![0, 1, 2], 3), (vec![3, 4, 4], 2)]);
        // A graph fixed to batch 1 under a tile batch of 3: one run per real tile.
        let g = schedule(5, 3, true, Some(1));
        assert_eq!(rows(&g), vec![(vec![0], 1), (vec![1], 1), (vec![2], 1), (vec![3], 1), (vec![4], 1)]);
        assert_eq!(g.iter().map(|g| g.runs.len()).collect::<Vec<_>>(), vec![3, 2]);
        // Fixed batch 2 under a dynamic tile batch of 3: [0 1] [2 2], then [3 4].
        let g = schedule(5, 3, false, Some(2));
        assert_eq!(rows(&g), vec![(vec![0, 1], 2), (vec![2, 2], 1), (vec![3, 4], 2)]);
        // A fixed batch equal to the rows: one run.
        assert_eq!(rows(&schedule(4, 2, true, Some(2))), vec![(vec![0, 1], 2), (vec![2, 3], 2)]);
    }

    #[test]
    fn sizes_overflow_is_a_typed_error() {
        assert!(matches!(elems(&[usize::MAX, 2], "x"), Err(Error::OutOfMemory { .. })));
        assert_eq!(elems(&[2, 3, 4], "x").unwrap(), 24);
    }
}
