//! The device loop: a whole sampler run with the state on the network's device.
//!
//! The host loop ([`crate::sampler::sample`] over an [`OnnxDenoiser`]) copies every network
//! output to the host, applies the step there and copies the next input back. Here the state,
//! `x_T`, the conditioning image, the raw output and the noise stay in ONNX Runtime values
//! bound to the device with `IoBinding`, and each step of the run's [`Plan`] is one run of the
//! network (output bound to a device buffer) followed by one run of the [`step_graph`] (bound
//! inputs and outputs, ping-pong state buffers). Nothing crosses to the host between steps
//! except the noise:
//!
//! * **Noise** is generated on the host by the run's [`NoiseSource`] (the counter-based Philox
//!   generator: same numbers as the host loop, on every device) and uploaded into a bound
//!   buffer — `4·B·C·H·W` bytes on each step that draws noise (3 MiB at 512², RGB), none on
//!   deterministic steps. On a GPU the upload overlaps the network's run (a second thread).
//!   ONNX's `RandomNormal` is not used: its numbers differ between providers, and a bit-exact
//!   device Philox would need a CUDA kernel ONNX cannot express (opset ≤ 17 has no 32-bit
//!   bitwise XOR, and Box–Muller's `log`/`cos` differ between CUDA and the host).
//! * **Coefficients** of every step are uploaded once, before the first step (`4·(n + 9)` bytes
//!   each); the time input is written into one fixed buffer per call (a few bytes).
//! * **Read-back** happens once, after the last step: the state and a 4-byte flag holding the
//!   first network call whose output had a NaN or Inf (reported as [`Error::NonFinite`], as the
//!   host loop reports it).
//!
//! The same code runs on ONNX Runtime's CPU provider (tensors in host memory, uploads are plain
//! writes) and on CUDA/TensorRT (tensors in CUDA memory from the network session's allocator,
//! transfers through ONNX Runtime's copies; the step graph runs on the CUDA provider even when
//! the network runs on TensorRT, so its `Mul`/`Add` nodes are not fused). [`DeviceLoop::staged`]
//! makes the CPU provider take the GPU path (allocator from the session, every transfer an
//! ONNX Runtime copy, noise upload overlapped), so CI exercises it.
//!
//! **Tiled frames** ([`DeviceLoop::sample_tiled`], `device_tiles.rs`): the state stays a whole
//! frame on the device and each network call runs the host loop's tiling there — per tile
//! batch, a crop graph cuts the tiles out of the device frame, the network runs on them, and a
//! blend graph folds the outputs into the host's weighted running mean ([`super::tile_graph`]);
//! the step graph then runs on the whole frame. Same tile layout, batches (fixed-shape padding
//! rows, a graph's fixed batch size), blend factors and order as
//! [`crate::tile::TiledDenoiser`], so the output is the host loop's bit for bit on the CPU
//! provider. This is what fixed-shape TensorRT engines need: every real frame is tiled there.
//!
//! Scope: row samplers only ([`crate::sampler::plan`]) whose rows need no per-pixel work
//! ([`Plan::host_only`]: inpainting masks, RDBM's residual-modulated noise); no generator-noise
//! input. Untiled ([`DeviceLoop::sample`]), the network sees the whole frame in one run and a
//! graph with a fixed batch must fix it to the frame's batch; tiled, a fixed height and width
//! must be the tile's. Trajectory hooks are not called. [`crate::restorer::Restorer`] falls
//! back to the host loop for everything else ([`SamplingLoop`]).

use super::cancel::CancelToken;
use super::env;
use super::ep::{CudaOptions, ExecutionProvider};
use super::package::{Elem, TimeFeed};
use super::session::{OnnxDenoiser, SessionConfig};
use super::step_graph::{self, names};
use crate::alloc::{try_standard, try_to_vec, try_vec};
use crate::rng::NoiseSource;
use crate::sampler::plan::{Plan, Source};
use crate::tile::TileProgress;
use crate::{Error, Result, Tensor, TensorView};
use ndarray::Ix4;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, RunOptions, Session};
use ort::value::{PrimitiveTensorElementType, Tensor as OrtTensor};
use std::path::PathBuf;

/// Which loop a restore used, and why not the device loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SamplingLoop {
    /// No restore yet.
    None,
    /// The state stayed on the network's device ([`DeviceLoop`]).
    Device,
    /// The host loop, for this reason.
    Host(&'static str),
}

fn rt(e: impl std::fmt::Display) -> Error {
    Error::Runtime(e.to_string())
}

/// Runs row samplers with the state on the device (module docs). Holds the step-graph
/// sessions (one per source order, built on first use).
pub struct DeviceLoop {
    library: Option<PathBuf>,
    threads: usize,
    device_id: i32,
    staged: bool,
    graphs: Vec<((Vec<Source>, bool), Session)>,
    /// Crop and blend sessions of the tiled loop ([`tiles`]), built on first use.
    tile_graphs: Vec<((tiles::TileGraph, bool), Session)>,
    /// Final-clamp sessions of [`DeviceLoop::sample_values`]: (lo, hi bits, gpu).
    clamps: Vec<((u32, u32, bool), Session)>,
}

impl std::fmt::Debug for DeviceLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceLoop")
            .field("device_id", &self.device_id)
            .field("staged", &self.staged)
            .field("graphs", &self.graphs.len())
            .finish()
    }
}

impl DeviceLoop {
    /// A device loop for networks opened with `cfg` (its library, threads and CUDA device).
    pub fn new(cfg: &SessionConfig) -> Self {
        let device_id = match &cfg.provider {
            ExecutionProvider::Cuda(o) => o.device_id,
            ExecutionProvider::TensorRt(o) => o.device_id,
            _ => 0,
        };
        DeviceLoop {
            library: cfg.library.clone(),
            threads: cfg.threads,
            device_id,
            staged: false,
            graphs: Vec::new(),
            tile_graphs: Vec::new(),
            clamps: Vec::new(),
        }
    }

    /// On the CPU provider, take the GPU code path (module docs). No effect on a GPU.
    pub fn staged(mut self, on: bool) -> Self {
        self.staged = on;
        self
    }

    /// Why `net` cannot run a `shape` frame on the device, if it cannot.
    pub fn unsupported(net: &OnnxDenoiser, shape: &[usize]) -> Option<&'static str> {
        let p = net.plan();
        if shape.len() != 4 || shape.contains(&0) {
            return Some("empty frame");
        }
        if p.fixed_batch.is_some_and(|b| b != shape[0]) {
            return Some("the graph fixes another batch size");
        }
        if p.fixed_hw.is_some_and(|hw| hw != (shape[2], shape[3])) {
            return Some("the graph fixes another frame size");
        }
        if p.noise_channels > 0 {
            return Some("the network takes generator noise (the distilled sampler runs on the host)");
        }
        None
    }

    /// Run `plan` with `net` from `x_end` (conditioning `cond`), drawing from `noise`; returns
    /// the final state as the host loop would (same operations; the network's own numerics
    /// aside). `progress` is told after every network call (one "tile" per call) and cancels
    /// with `false`.
    pub fn sample(
        &mut self,
        net: &mut OnnxDenoiser,
        plan: &Plan,
        x_end: TensorView<'_>,
        cond: TensorView<'_>,
        noise: &mut dyn NoiseSource,
        progress: Option<&mut dyn FnMut(TileProgress) -> bool>,
    ) -> Result<Tensor> {
        crate::sampler::check_cond(x_end, cond)?;
        if let Some(why) = Self::unsupported(net, x_end.shape()) {
            return Err(Error::incompatible("device loop", "this network", why));
        }
        check_run(plan, x_end, cond)?;
        let mut progress = progress;
        guard(|| {
            let (mv, end) = self.sample_inner(net, plan, Src::Host(x_end), Src::Host(cond), noise, &mut progress)?;
            finish(&mv, plan, &end.flags, &end.xs, &end.call_times, end.img)
        })
    }

    /// [`DeviceLoop::sample`] with `x_T` and the conditioning image already values in the
    /// network's memory (CUDA memory on a GPU; host memory on the CPU provider), e.g. a
    /// camera frame converted on the device ([`super::device_pixels`]). Returns the final
    /// state as a value in that memory, the plan's final clamp applied, so nothing
    /// frame-sized goes to the host (the noise still comes from it, as in every device loop;
    /// the NaN flag is read back, 4 bytes). Whole frames only (no tiling). The inputs are not
    /// checked for NaN or Inf (that would read them back): a frame decoded from 8-bit pixels
    /// has none. A plan whose first call scales its input (`c_in ≠ 1`) is
    /// [`Error::Incompatible`] here (the scaling is a host step today).
    pub fn sample_values(
        &mut self,
        net: &mut OnnxDenoiser,
        plan: &Plan,
        x_end: &OrtTensor<f32>,
        cond: &OrtTensor<f32>,
        noise: &mut dyn NoiseSource,
        progress: Option<&mut dyn FnMut(TileProgress) -> bool>,
    ) -> Result<OrtTensor<f32>> {
        let (xe, c) = (Src::Device(x_end), Src::Device(cond));
        let img = xe.dim()?;
        if c.dim()? != img {
            return Err(Error::shape("conditioning image", &img, &c.dim()?));
        }
        if let Some(why) = Self::unsupported(net, &img) {
            return Err(Error::incompatible("device loop", "this network", why));
        }
        if plan.steps.is_empty() || plan.steps.iter().any(|s| s.coefs.len() != plan.order.len()) {
            return Err(Error::param("plan", "no steps, or a step without one coefficient per source"));
        }
        if let Some(why) = plan.host_only() {
            return Err(Error::incompatible("device loop", "this plan", why));
        }
        let mut progress = progress;
        guard(|| {
            let gpu = net.provider() != "cpu";
            let (mv, end) = self.sample_inner(net, plan, xe, c, noise, &mut progress)?;
            let last = plan.steps.len() % 2;
            let flag = mv.get(&end.flags[last])?;
            if let Some(&f) = flag.first()
                && f >= 1.0
            {
                let call = f as usize;
                return Err(Error::NonFinite { call, t_net: end.call_times.get(call - 1).copied().unwrap_or(f64::NAN) });
            }
            let [x0, x1] = end.xs;
            let x = if last == 0 { x0 } else { x1 };
            match plan.clamp {
                None => Ok(x),
                Some((lo, hi)) => self.clamp_value(&x, lo, hi, gpu, &mv, net),
            }
        })
    }

    /// `x` clamped to `[lo, hi]` on the device (the host's `step::clamp` as `Max` then `Min`).
    fn clamp_value(
        &mut self,
        x: &OrtTensor<f32>,
        lo: f32,
        hi: f32,
        gpu: bool,
        mv: &Mover,
        net: &mut OnnxDenoiser,
    ) -> Result<OrtTensor<f32>> {
        let key = (lo.to_bits(), hi.to_bits(), gpu);
        if !self.clamps.iter().any(|(k, _)| *k == key) {
            let s = self.graph_session(&step_graph::clamp(lo, hi), gpu, "clamp graph")?;
            self.clamps.push((key, s));
        }
        let device_id = self.device_id;
        let (session, _, _) = net.device_parts();
        let alloc = mv.allocator(session, gpu, device_id)?;
        let shape: Vec<usize> = x.shape().iter().map(|&d| d as usize).collect();
        let mut out = OrtTensor::<f32>::new(&alloc, shape).map_err(rt)?;
        let s = &mut self.clamps.iter_mut().find(|(k, _)| *k == key).expect("built above").1;
        let mut bind = s.create_binding().map_err(rt)?;
        bind.bind_input(names::X, x).map_err(rt)?;
        bind.bind_output(names::X_NEXT, &mut out).map_err(rt)?;
        drop(s.run_binding(&bind).map_err(|e| super::session::run_error("clamp graph", e.message()))?);
        drop(bind);
        Ok(out)
    }

    fn step_session(&mut self, order: &[Source], gpu: bool) -> Result<&mut Session> {
        let key = (order.to_vec(), gpu);
        if let Some(i) = self.graphs.iter().position(|(k, _)| *k == key) {
            return Ok(&mut self.graphs[i].1);
        }
        let session = self.graph_session(&step_graph::build(order), gpu, "step graph")?;
        self.graphs.push((key, session));
        let last = self.graphs.len() - 1;
        Ok(&mut self.graphs[last].1)
    }

    /// A session for one of the loop's own graphs: on the CPU provider, or on CUDA when the
    /// network runs on a GPU.
    fn graph_session(&self, model: &[u8], gpu: bool, what: &str) -> Result<Session> {
        let environment = env::environment(self.library.as_deref())?;
        let mut b = Session::builder(&environment).map_err(rt)?;
        if self.threads > 0 {
            b = b.with_intra_threads(self.threads).map_err(rt)?;
        }
        b = b.with_config_entry("session.intra_op.allow_spinning", "0").map_err(rt)?.with_inter_threads(1).map_err(rt)?;
        if gpu {
            // CUDA even under TensorRT: TensorRT would fuse the row into FMAs.
            let eps = ExecutionProvider::Cuda(CudaOptions { device_id: self.device_id, ..CudaOptions::default() }).dispatch()?;
            b = b
                .with_execution_providers(eps)
                .map_err(|e| Error::ProviderUnavailable { provider: "cuda".into(), reason: e.to_string() })?;
        }
        b.commit_from_memory(model).map_err(|e| Error::Runtime(format!("{what}: {e}")))
    }

    fn sample_inner(
        &mut self,
        net: &mut OnnxDenoiser,
        plan: &Plan,
        x_end: Src<'_>,
        cond: Src<'_>,
        noise: &mut dyn NoiseSource,
        progress: &mut Option<&mut dyn FnMut(TileProgress) -> bool>,
    ) -> Result<(Mover, End)> {
        let gpu = net.provider() != "cpu";
        let mv = Mover { resident: !gpu && !self.staged };
        let io = net.io().clone();
        let feed = net.plan().time;
        let (time_input, class_feed, label) = (net.time_input(), net.plan().class, net.class_label());
        let device_id = self.device_id;
        let step = self.step_session(&plan.order, gpu)?;
        let (session, run_opts, cancel) = net.device_parts();
        let alloc = mv.allocator(session, gpu, device_id)?;

        // Device buffers.
        let img = x_end.dim()?;
        let b = img[0];
        let new = |shape: &[usize]| OrtTensor::<f32>::new(&alloc, shape).map_err(rt);
        let State { xe, mut xs, mut z, mut x_in, mut flags, coefs, call_times, zeros } = State::new(&alloc, &mv, plan, &x_end)?;
        // Raw output starts at 0 so a zero coefficient on it always gives 0.
        let mut raw = new(&img)?;
        mv.put(&mut raw, &zeros)?;
        drop(zeros);
        let cond_dev = match io.cond.as_ref() {
            Some(_) => {
                let mut t = new(&cond.dim()?)?;
                cond.put(&mv, &mut t, "the conditioning input")?;
                Some(t)
            }
            None => None,
        };
        let mut t_buf = match (io.time.as_ref(), feed) {
            (Some(_), Some(f)) => Some(TimeBuf::new(&alloc, f, b)?),
            _ => None,
        };
        // A class-conditional network's label: one integer buffer, written once.
        let class_buf = match (io.class.as_ref(), class_feed) {
            (Some(name), Some(f)) => {
                let label =
                    label.ok_or_else(|| Error::param("class label", format!("the network takes a class label (input `{name}`)")))?;
                let mut cb = TimeBuf::new(&alloc, f, b)?;
                cb.set(&mv, b, label as f64)?;
                Some((name.clone(), cb))
            }
            _ => None,
        };
        let mut z_host = mv.noise_staging(img)?;

        // Bindings: the network's output once, its inputs per call; the step graph per step.
        let mut net_bind = session.create_binding().map_err(rt)?;
        net_bind.bind_output(io.output.as_str(), &mut raw).map_err(rt)?;
        let mut step_bind = step.create_binding().map_err(rt)?;
        step_bind.bind_input(names::X_END, &xe).map_err(rt)?;
        step_bind.bind_input(names::RAW, &raw).map_err(rt)?;
        step_bind.bind_input(names::Z, &z).map_err(rt)?;
        step_bind.bind_output(names::X_IN, &mut x_in).map_err(rt)?;

        let mut done = 0usize;
        for (k, st) in plan.steps.iter().enumerate() {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let draw = st.noise.map(|(_, d)| d);
            if let Some(cl) = st.call {
                net_bind.bind_input(io.state.as_str(), &x_in).map_err(rt)?;
                if let (Some(name), Some(cd)) = (io.cond.as_ref(), cond_dev.as_ref()) {
                    net_bind.bind_input(name.as_str(), cd).map_err(rt)?;
                }
                if let (Some(name), Some(tb)) = (io.time.as_ref(), t_buf.as_mut()) {
                    tb.set(&mv, b, super::session::time_for(time_input, &cl)?)?;
                    tb.bind(&mut net_bind, name)?;
                }
                if let Some((name, cb)) = class_buf.as_ref() {
                    cb.bind(&mut net_bind, name)?;
                }
                match (draw, z_host.as_mut()) {
                    // Off the host: prepare this step's noise while the network runs.
                    (Some(d), Some(zh)) => {
                        let (sess, bind, opts) = (&mut *session, &mut net_bind, &run_opts);
                        let (r_net, r_noise) = std::thread::scope(|s| {
                            let job = s.spawn(move || run_net(sess, bind, opts));
                            let r_noise = fill_staged(noise, d, zh, &mut z);
                            let r_net = job
                                .join()
                                .unwrap_or_else(|p| Err(Error::Runtime(format!("network thread panicked: {}", env::panic_text(&p)))));
                            (r_net, r_noise)
                        });
                        net_error(r_net, &cancel)?;
                        r_noise?;
                    }
                    _ => net_error(run_net(session, &net_bind, &run_opts), &cancel)?,
                }
                done += 1;
                if let Some(p) = progress.as_mut()
                    && !p(TileProgress { call: done - 1, done: 1, total: 1 })
                {
                    return Err(Error::Cancelled);
                }
            }
            if let Some(d) = draw
                && (st.call.is_none() || z_host.is_none())
            {
                fill_noise(noise, d, z_host.as_mut(), &mut z)?;
            }
            run_step(step, &mut step_bind, k, &mut xs, &mut flags, &coefs[k])?;
        }
        drop(step_bind);
        drop(net_bind);
        Ok((mv, End { xs, flags, call_times, img }))
    }
}

/// A finished whole-frame run: the state and NaN flag ping-pong buffers, for [`finish`] or
/// [`DeviceLoop::sample_values`].
struct End {
    xs: [OrtTensor<f32>; 2],
    flags: [OrtTensor<f32>; 2],
    call_times: Vec<f64>,
    img: [usize; 4],
}

/// Where a run's `x_T` or conditioning image comes from.
enum Src<'a> {
    /// A host array, uploaded.
    Host(TensorView<'a>),
    /// A value already in the loop's memory, copied there (ONNX Runtime's copy).
    Device(&'a OrtTensor<f32>),
}

impl Src<'_> {
    fn dim(&self) -> Result<[usize; 4]> {
        match self {
            Src::Host(v) => {
                let (b, c, h, w) = v.dim();
                Ok([b, c, h, w])
            }
            Src::Device(t) => match t.shape()[..] {
                [b, c, h, w] if [b, c, h, w].iter().all(|&d| d > 0) => Ok([b as usize, c as usize, h as usize, w as usize]),
                _ => Err(Error::param("x_T", format!("a device value of shape {:?}, not [B, C, H, W]", &t.shape()[..]))),
            },
        }
    }

    /// Copy into `dst` (same shape).
    fn put(&self, mv: &Mover, dst: &mut OrtTensor<f32>, what: &str) -> Result<()> {
        match self {
            Src::Host(v) => {
                let ch = try_standard(*v, what)?;
                mv.put(dst, ch.as_slice().ok_or_else(|| Error::Runtime(format!("{what} is not contiguous")))?)
            }
            Src::Device(t) => t.copy_into(&mut *dst).map_err(|e| Error::Runtime(format!("{what}: device copy: {e}"))),
        }
    }
}

/// The buffers of every device loop: the endpoint, the state (ping-pong), the noise, the next
/// network input, the NaN flag (ping-pong) and every step's coefficients.
struct State {
    xe: OrtTensor<f32>,
    xs: [OrtTensor<f32>; 2],
    z: OrtTensor<f32>,
    x_in: OrtTensor<f32>,
    flags: [OrtTensor<f32>; 2],
    coefs: Vec<OrtTensor<f32>>,
    /// `t_net` of each network call (error reports).
    call_times: Vec<f64>,
    /// A zero frame on the host, for the callers' own zero-initialised buffers.
    zeros: Vec<f32>,
}

impl State {
    fn new(alloc: &Allocator, mv: &Mover, plan: &Plan, x_end: &Src<'_>) -> Result<Self> {
        let img = x_end.dim()?;
        let n = img.iter().product::<usize>();
        let new = |shape: &[usize]| OrtTensor::<f32>::new(alloc, shape).map_err(rt);
        let mut xe = new(&img)?;
        x_end.put(mv, &mut xe, "x_T")?;
        let mut xs = [new(&img)?, new(&img)?];
        x_end.put(mv, &mut xs[0], "x_T")?;
        let zeros = try_vec(n, 0f32, "a zero frame")?;
        // The noise starts at 0 so a zero coefficient on it always gives 0.
        let mut z = new(&img)?;
        mv.put(&mut z, &zeros)?;
        let c_in0 = plan.steps[0].call.map_or(1.0, |cl| cl.c_in);
        let mut x_in = new(&img)?;
        match x_end {
            _ if c_in0 == 1.0 => x_end.put(mv, &mut x_in, "x_T")?,
            Src::Host(v) => {
                let k = c_in0 as f32;
                let mut v = try_to_vec(
                    try_standard(*v, "x_T")?.as_slice().ok_or_else(|| Error::Runtime("x_T is not contiguous".into()))?,
                    "the network input",
                )?;
                v.iter_mut().for_each(|v| *v *= k);
                mv.put(&mut x_in, &v)?;
            }
            Src::Device(_) => return Err(Error::incompatible("device values", "this plan", "its first call scales the input (c_in ≠ 1)")),
        }
        let mut flags = [new(&[1])?, new(&[1])?];
        mv.put(&mut flags[0], &[-1.0])?;
        // Every step's coefficients, uploaded once.
        let mut coefs = Vec::with_capacity(plan.steps.len());
        let mut calls = 0usize;
        let mut call_times = Vec::new();
        for (k, st) in plan.steps.iter().enumerate() {
            if let Some(cl) = st.call {
                calls += 1;
                call_times.push(cl.t_net);
            }
            let c_in = plan.steps.get(k + 1).and_then(|n| n.call).map_or(1.0, |cl| cl.c_in);
            let v = step_graph::coefficients(plan, st, c_in, calls);
            let mut t = new(&[v.len()])?;
            mv.put(&mut t, &v)?;
            coefs.push(t);
        }
        Ok(State { xe, xs, z, x_in, flags, coefs, call_times, zeros })
    }
}

/// Step `k` of the plan: one run of the step graph from the current state and flag into the
/// other ping-pong buffers (the other inputs are bound once by the caller).
fn run_step(
    step: &mut Session,
    bind: &mut IoBinding,
    k: usize,
    xs: &mut [OrtTensor<f32>; 2],
    flags: &mut [OrtTensor<f32>; 2],
    coef: &OrtTensor<f32>,
) -> Result<()> {
    let cur = k % 2;
    let [x0, x1] = xs;
    let (xc, xn) = if cur == 0 { (&*x0, x1) } else { (&*x1, x0) };
    let [f0, f1] = flags;
    let (fc, fnext) = if cur == 0 { (&*f0, f1) } else { (&*f1, f0) };
    bind.bind_input(names::X, xc).map_err(rt)?;
    bind.bind_input(names::COEF, coef).map_err(rt)?;
    bind.bind_input(names::FLAG, fc).map_err(rt)?;
    bind.bind_output(names::X_NEXT, xn).map_err(rt)?;
    bind.bind_output(names::FLAG_NEXT, fnext).map_err(rt)?;
    drop(step.run_binding(bind).map_err(|e| super::session::run_error("step graph", e.message()))?);
    Ok(())
}

/// After the last step: the NaN flag and the state, read back once; the plan's final clamp.
fn finish(
    mv: &Mover,
    plan: &Plan,
    flags: &[OrtTensor<f32>; 2],
    xs: &[OrtTensor<f32>; 2],
    call_times: &[f64],
    img: [usize; 4],
) -> Result<Tensor> {
    let last = plan.steps.len() % 2;
    let flag = mv.get(&flags[last])?;
    if let Some(&f) = flag.first()
        && f >= 1.0
    {
        let call = f as usize;
        return Err(Error::NonFinite { call, t_net: call_times.get(call - 1).copied().unwrap_or(f64::NAN) });
    }
    let out = mv.get(&xs[last])?;
    let mut x = Tensor::from_shape_vec(img, out).map_err(|e| Error::Runtime(format!("state read-back: {e}")))?;
    if let Some((lo, hi)) = plan.clamp {
        crate::step::clamp(&mut x, lo, hi);
    }
    Ok(x)
}

/// Noise draw `d` into the device buffer: directly when it is host memory (`host` is `None`),
/// else through the host staging buffer.
fn fill_noise(noise: &mut dyn NoiseSource, d: u64, host: Option<&mut OrtTensor<f32>>, z: &mut OrtTensor<f32>) -> Result<()> {
    match host {
        Some(zh) => fill_staged(noise, d, zh, z),
        None => {
            let mut v = z.extract_array_mut();
            let v4 = v.view_mut().into_dimensionality::<Ix4>().map_err(|_| Error::Runtime("noise buffer rank".into()))?;
            noise.fill(d, v4)
        }
    }
}

#[path = "device_tiles.rs"]
mod tiles;

/// The checks every device run makes on its inputs and plan.
fn check_run(plan: &Plan, x_end: TensorView<'_>, cond: TensorView<'_>) -> Result<()> {
    if x_end.iter().any(|v| !v.is_finite()) || cond.iter().any(|v| !v.is_finite()) {
        return Err(Error::param("x_T", "input contains NaN or Inf"));
    }
    if plan.steps.is_empty() || plan.steps.iter().any(|s| s.coefs.len() != plan.order.len()) {
        return Err(Error::param("plan", "no steps, or a step without one coefficient per source"));
    }
    if let Some(why) = plan.host_only() {
        // The step graph applies scalar rows only; per-pixel blends and scales stay on the host.
        return Err(Error::incompatible("device loop", "this plan", why));
    }
    Ok(())
}

/// One network run with the bound inputs and output.
fn run_net(session: &mut Session, binding: &IoBinding, opts: &RunOptions) -> Result<()> {
    session.run_binding_with_options(binding, opts).map(drop).map_err(|e| super::session::run_error("running the network", e.message()))
}

/// A network error, or [`Error::Cancelled`] if the run was terminated by the token.
fn net_error(r: Result<()>, cancel: &CancelToken) -> Result<()> {
    r.map_err(|e| if cancel.is_cancelled() { Error::Cancelled } else { e })
}

/// Fill the host staging buffer with noise `draw` and copy it into the device buffer.
fn fill_staged(noise: &mut dyn NoiseSource, draw: u64, host: &mut OrtTensor<f32>, dev: &mut OrtTensor<f32>) -> Result<()> {
    {
        let mut v = host.extract_array_mut();
        let v4 = v.view_mut().into_dimensionality::<Ix4>().map_err(|_| Error::Runtime("noise buffer rank".into()))?;
        noise.fill(draw, v4)?;
    }
    host.copy_into(dev).map_err(|e| Error::Runtime(format!("noise upload: {e}")))
}

/// How data reaches the loop's buffers.
struct Mover {
    /// Buffers are host memory the SDK writes directly; otherwise every transfer is an ONNX
    /// Runtime copy.
    resident: bool,
}

impl Mover {
    fn put<T: PrimitiveTensorElementType + std::fmt::Debug + Copy + 'static>(&self, dst: &mut OrtTensor<T>, src: &[T]) -> Result<()> {
        if self.resident {
            let (_, d) = dst.extract_tensor_mut();
            if d.len() != src.len() {
                return Err(Error::Runtime(format!("upload of {} values into {}", src.len(), d.len())));
            }
            d.copy_from_slice(src);
            Ok(())
        } else {
            let shape: Vec<i64> = dst.shape().to_vec();
            let host = OrtTensor::from_array((shape, try_to_vec(src, "an upload buffer")?)).map_err(rt)?;
            host.copy_into(dst).map_err(|e| Error::Runtime(format!("upload: {e}")))
        }
    }

    /// Where the loop's buffers live: host memory when resident, else the session's device
    /// allocator (CUDA, or the CPU provider's for [`DeviceLoop::staged`]).
    fn allocator(&self, session: &Session, gpu: bool, device_id: i32) -> Result<Allocator> {
        if self.resident {
            return Ok(Allocator::default());
        }
        let (dev, id) = if gpu { (AllocationDevice::CUDA, device_id) } else { (AllocationDevice::CPU, 0) };
        let info = MemoryInfo::new(dev, id, AllocatorType::Device, MemoryType::Default).map_err(rt)?;
        Allocator::new(session, info).map_err(|e| Error::Runtime(format!("device allocator: {e}")))
    }

    /// The host buffer noise is generated into before its upload, when the loop's buffers are
    /// not host memory.
    fn noise_staging(&self, img: [usize; 4]) -> Result<Option<OrtTensor<f32>>> {
        if self.resident { Ok(None) } else { Ok(Some(OrtTensor::<f32>::new(&Allocator::default(), img).map_err(rt)?)) }
    }

    fn get(&self, src: &OrtTensor<f32>) -> Result<Vec<f32>> {
        if self.resident {
            return try_to_vec(src.extract_tensor().1, "the state read-back");
        }
        let shape: Vec<i64> = src.shape().to_vec();
        let mut host = OrtTensor::<f32>::new(&Allocator::default(), shape).map_err(rt)?;
        src.copy_into(&mut host).map_err(|e| Error::Runtime(format!("read-back: {e}")))?;
        try_to_vec(host.extract_tensor().1, "the state read-back")
    }
}

/// The network's time input, one fixed buffer of the graph's type and shape.
enum TimeBuf {
    F32(OrtTensor<f32>, TimeFeed),
    F64(OrtTensor<f64>, TimeFeed),
    I64(OrtTensor<i64>, TimeFeed),
    I32(OrtTensor<i32>, TimeFeed),
}

impl TimeBuf {
    fn shape(feed: TimeFeed, b: usize) -> Vec<i64> {
        match feed.kind {
            0 => vec![],
            1 => vec![1],
            2 => vec![b as i64],
            _ => vec![b as i64, 1],
        }
    }

    fn new(alloc: &Allocator, feed: TimeFeed, b: usize) -> Result<Self> {
        let s = Self::shape(feed, b);
        Ok(match feed.elem {
            Elem::F64 => TimeBuf::F64(OrtTensor::new(alloc, s).map_err(rt)?, feed),
            Elem::I64 => TimeBuf::I64(OrtTensor::new(alloc, s).map_err(rt)?, feed),
            Elem::I32 => TimeBuf::I32(OrtTensor::new(alloc, s).map_err(rt)?, feed),
            _ => TimeBuf::F32(OrtTensor::new(alloc, s).map_err(rt)?, feed),
        })
    }

    /// Write `t_net` as [`OnnxDenoiser`] feeds it (integers get the rounded value).
    fn set(&mut self, mv: &Mover, b: usize, t_net: f64) -> Result<()> {
        if !t_net.is_finite() {
            return Err(Error::param("t_net", "not finite"));
        }
        let n = |f: &TimeFeed| Self::shape(*f, b).iter().product::<i64>().max(1) as usize;
        match self {
            TimeBuf::F32(t, f) => mv.put(t, &vec![t_net as f32; n(f)]),
            TimeBuf::F64(t, f) => mv.put(t, &vec![t_net; n(f)]),
            TimeBuf::I64(t, f) => mv.put(t, &vec![t_net.round() as i64; n(f)]),
            TimeBuf::I32(t, f) => mv.put(t, &vec![t_net.round() as i32; n(f)]),
        }
    }

    fn bind(&self, binding: &mut IoBinding, name: &str) -> Result<()> {
        match self {
            TimeBuf::F32(t, _) => binding.bind_input(name, t),
            TimeBuf::F64(t, _) => binding.bind_input(name, t),
            TimeBuf::I64(t, _) => binding.bind_input(name, t),
            TimeBuf::I32(t, _) => binding.bind_input(name, t),
        }
        .map_err(rt)
    }
}

/// Run `f`, turning a panic inside `ort` into an error.
fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|p| Err(Error::Runtime(format!("ONNX Runtime wrapper panicked: {}", env::panic_text(&p)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restorer owns a device loop and moves between threads.
    #[test]
    fn device_loop_is_send() {
        fn send<T: Send>() {}
        send::<DeviceLoop>();
    }

    #[test]
    fn time_buffer_shapes() {
        let f = |kind| TimeFeed { elem: Elem::F32, kind };
        assert_eq!(TimeBuf::shape(f(0), 3), Vec::<i64>::new());
        assert_eq!(TimeBuf::shape(f(1), 3), vec![1]);
        assert_eq!(TimeBuf::shape(f(2), 3), vec![3]);
        assert_eq!(TimeBuf::shape(f(3), 3), vec![3, 1]);
    }
}
