//! [`OnnxDenoiser`]: an ONNX Runtime session as a [`Denoiser`].

use super::cancel::CancelToken;
use super::env;
use super::ep::ExecutionProvider;
use super::model_package::ModelPackage;
use super::package::{Elem, GraphPlan, IoNames, PackageMeta, TensorSig, TimeFeed, TimeInput, check_io};
use crate::alloc::{try_copy, try_standard, try_zeros};
use crate::family::NetCall;
use crate::{Denoiser, Error, Result, Tensor, TensorView};
use ndarray::{Axis, Ix4, s};
use ort::session::{RunOptions, Session, SessionInputValue};
use ort::value::{TensorElementType, TensorRef, ValueType};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How sessions are created.
#[derive(Clone, Debug, Default)]
pub struct SessionConfig {
    /// Explicit ONNX Runtime library (file or folder); see [`super::env`] for the search order.
    pub library: Option<PathBuf>,
    /// Execution provider.
    pub provider: ExecutionProvider,
    /// If the provider cannot be registered, run on the CPU instead of failing.
    pub cpu_fallback: bool,
    /// Intra-op threads (0: ONNX Runtime's default, one per physical core).
    pub threads: usize,
    /// Let ONNX Runtime's idle intra-op threads spin-wait for the next run (its default).
    /// Off by default here: between network calls the SDK runs its own parallel step kernel,
    /// and spinning ONNX Runtime threads would compete with it for the cores.
    pub spin: bool,
}

/// An ONNX network as a [`Denoiser`]: feeds `x_in`, `cond` and `t_net` to the inputs named by
/// the package, returns the raw output.
///
/// Inputs may be any layout (they are made contiguous when needed); a graph with a static
/// batch size is run in chunks of that size. A handle is single-threaded: ONNX Runtime's
/// `run` needs exclusive access, and the output is copied out before the next run.
pub struct OnnxDenoiser {
    session: Session,
    io: IoNames,
    plan: GraphPlan,
    run: Arc<RunOptions>,
    cancel: CancelToken,
    provider: &'static str,
    fallback_reason: Option<String>,
    path: String,
    time_input: TimeInput,
    class_label: Option<i64>,
}

impl std::fmt::Debug for OnnxDenoiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxDenoiser")
            .field("path", &self.path)
            .field("io", &self.io)
            .field("plan", &self.plan)
            .field("provider", &self.provider)
            .finish()
    }
}

fn rt(e: impl std::fmt::Display) -> Error {
    Error::Runtime(e.to_string())
}

fn elem(t: TensorElementType) -> Elem {
    match t {
        TensorElementType::Float32 => Elem::F32,
        TensorElementType::Float64 => Elem::F64,
        TensorElementType::Float16 => Elem::F16,
        TensorElementType::Int64 => Elem::I64,
        TensorElementType::Int32 => Elem::I32,
        _ => Elem::Other,
    }
}

fn sig(o: &ort::value::Outlet) -> TensorSig {
    match o.dtype() {
        ValueType::Tensor { ty, shape, .. } => {
            TensorSig { name: o.name().to_string(), elem: elem(*ty), shape: Some(shape.iter().copied().collect()) }
        }
        _ => TensorSig { name: o.name().to_string(), elem: Elem::Other, shape: None },
    }
}

/// A loaded session plus what it says about itself.
struct Opened {
    session: Session,
    props: BTreeMap<String, String>,
    inputs: Vec<TensorSig>,
    outputs: Vec<TensorSig>,
    provider: &'static str,
    fallback_reason: Option<String>,
}

/// Open a session from the file `path`, or from `bytes` (then `path` only names it in errors).
fn open_session(path: &Path, bytes: Option<&[u8]>, cfg: &SessionConfig) -> Result<Opened> {
    let shown = path.display().to_string();
    if bytes.is_none() {
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(Error::Package { path: shown, reason: "not a file".into() }),
            Err(e) => return Err(Error::Io { path: shown, source: e }),
        }
    }
    let environment = env::environment(cfg.library.as_deref())?;
    let builder = || -> Result<ort::session::builder::SessionBuilder> {
        let mut b = Session::builder(&environment).map_err(rt)?;
        if cfg.threads > 0 {
            b = b.with_intra_threads(cfg.threads).map_err(rt)?;
        }
        if !cfg.spin {
            b = b.with_config_entry("session.intra_op.allow_spinning", "0").map_err(rt)?;
        }
        // One graph path at a time: the sampler is sequential anyway.
        b.with_inter_threads(1).map_err(rt)
    };
    let mut provider = cfg.provider.name();
    let mut fallback_reason = None;
    let registered = cfg.provider.dispatch().and_then(|eps| {
        let b = builder()?;
        if eps.is_empty() {
            return Ok(b);
        }
        b.with_execution_providers(eps).map_err(|e| Error::ProviderUnavailable {
            provider: cfg.provider.name().into(),
            reason: format!(
                "{} (CUDA needs the onnxruntime-gpu provider libraries next to libonnxruntime and CUDA + cuDNN on the \
                 library path; TensorRT also needs the TensorRT that ONNX Runtime was built against: 8.6 for 1.17, 10 for \
                 1.18 and later)",
                e.message()
            ),
        })
    });
    let mut b = match registered {
        Ok(b) => b,
        Err(e) if cfg.cpu_fallback => {
            provider = "cpu";
            fallback_reason = Some(e.to_string());
            builder()?
        }
        Err(e) => return Err(e),
    };
    let committed = match bytes {
        Some(m) => b.commit_from_memory(m),
        None => b.commit_from_file(path),
    };
    let session = committed.map_err(|e| {
        use ort::error::ErrorCode as C;
        match e.code() {
            C::NoSuchFile => {
                Error::Io { path: shown.clone(), source: std::io::Error::new(std::io::ErrorKind::NotFound, e.message().to_string()) }
            }
            C::ExecutionProviderFailure => Error::ProviderUnavailable { provider: provider.into(), reason: e.message().to_string() },
            _ => Error::Package { path: shown.clone(), reason: format!("ONNX Runtime cannot load it: {}", e.message()) },
        }
    })?;
    let meta = session.metadata().map_err(rt)?;
    let mut props = BTreeMap::new();
    for k in meta.custom_keys().map_err(rt)? {
        if let Some(v) = meta.custom(&k) {
            props.insert(k, v);
        }
    }
    drop(meta);
    let inputs = session.inputs().iter().map(sig).collect();
    let outputs = session.outputs().iter().map(sig).collect();
    Ok(Opened { session, props, inputs, outputs, provider, fallback_reason })
}

/// What an ONNX file says about itself, whether or not it is a valid package.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// All `metadata_props`.
    pub props: BTreeMap<String, String>,
    /// Graph inputs.
    pub inputs: Vec<TensorSig>,
    /// Graph outputs.
    pub outputs: Vec<TensorSig>,
}

/// Load an ONNX file and report its metadata and signature (for `bridge info`).
/// The file is read like a package ([`super::model_package::read_regular_file`]: regular
/// files of bounded size) and its metadata must be within the limits of [`super::onnx_proto`].
pub fn inspect(path: impl AsRef<Path>, cfg: &SessionConfig) -> Result<ModelInfo> {
    let path = path.as_ref();
    let (bytes, _) = super::model_package::read_regular_file(path, super::model_package::MAX_MODEL_BYTES, true)?;
    super::onnx_proto::read(&bytes).map_err(|r| Error::Package { path: path.display().to_string(), reason: r })?;
    let o = guard(|| open_session(path, Some(&bytes), cfg))?;
    Ok(ModelInfo { props: o.props, inputs: o.inputs, outputs: o.outputs })
}

impl OnnxDenoiser {
    /// Open a model package: read the file once ([`ModelPackage`]: bounded, regular files
    /// only), parse and check the metadata against the graph, and build the session from those
    /// bytes. The family and default sampler are not checked here (see [`ModelPackage::load`]).
    pub fn load_package(path: impl AsRef<Path>, cfg: &SessionConfig) -> Result<(OnnxDenoiser, PackageMeta)> {
        let pkg = ModelPackage::open_file(path.as_ref(), false)?;
        let d = Self::from_package(&pkg, cfg)?;
        Ok((d, pkg.meta().clone()))
    }

    /// Open a model package held in memory (e.g. embedded in an application); `label` names it
    /// in errors. ONNX Runtime copies what it needs: `bytes` may be dropped afterwards.
    pub fn load_package_from_memory(bytes: &[u8], label: &str, cfg: &SessionConfig) -> Result<(OnnxDenoiser, PackageMeta)> {
        let pkg = ModelPackage::open(label.to_string(), None, Arc::from(bytes), None, false)?;
        let d = Self::from_package(&pkg, cfg)?;
        Ok((d, pkg.meta().clone()))
    }

    /// The bridge network of a loaded package, as a session built from the package's bytes,
    /// fed as the package's conventions say (time input, class label, generator noise).
    pub fn from_package(pkg: &ModelPackage, cfg: &SessionConfig) -> Result<OnnxDenoiser> {
        let m = pkg.meta();
        let mut d = Self::from_memory_with_io(pkg.bytes(), pkg.label(), &m.io, m.channels, m.spatial_multiple, cfg)?;
        d.set_conventions(m);
        Ok(d)
    }

    /// Open an ONNX network whose tensor roles are given by the caller (e.g. NADB's mean
    /// network, whose roles the main package declares).
    pub fn load_with_io(
        path: impl AsRef<Path>,
        io: &IoNames,
        channels: usize,
        multiple: usize,
        cfg: &SessionConfig,
    ) -> Result<OnnxDenoiser> {
        let path = path.as_ref();
        let (bytes, _) = super::model_package::read_regular_file(path, super::model_package::MAX_MODEL_BYTES, true)?;
        Self::from_memory_with_io(&bytes, &path.display().to_string(), io, channels, multiple, cfg)
    }

    /// As [`OnnxDenoiser::load_with_io`], from bytes; `label` names it in errors.
    pub fn from_memory_with_io(
        bytes: &[u8],
        label: &str,
        io: &IoNames,
        channels: usize,
        multiple: usize,
        cfg: &SessionConfig,
    ) -> Result<OnnxDenoiser> {
        let o = guard(|| open_session(Path::new(label), Some(bytes), cfg))?;
        Self::from_opened(o, io, channels, multiple, label.to_string())
    }

    fn from_opened(o: Opened, io: &IoNames, channels: usize, multiple: usize, path: String) -> Result<OnnxDenoiser> {
        let plan = check_io(io, channels, multiple, &o.inputs, &o.outputs).map_err(|r| Error::Package { path: path.clone(), reason: r })?;
        let run = Arc::new(RunOptions::new().map_err(rt)?);
        let cancel = CancelToken::new();
        cancel.attach(run.clone());
        Ok(OnnxDenoiser {
            session: o.session,
            io: io.clone(),
            plan,
            run,
            cancel,
            provider: o.provider,
            fallback_reason: o.fallback_reason,
            path,
            time_input: TimeInput::Value,
            class_label: None,
        })
    }

    /// The package's time convention and default class label.
    fn set_conventions(&mut self, meta: &PackageMeta) {
        self.time_input = meta.time_input;
        self.class_label = meta.class_label;
    }

    /// What the time input receives (the package's `bridge.time_input`; NADB's mean network
    /// takes its package's).
    pub fn set_time_input(&mut self, t: TimeInput) {
        self.time_input = t;
    }

    /// What the time input receives.
    pub fn time_input(&self) -> TimeInput {
        self.time_input
    }

    /// The label fed to the `class` input (a graph with one and no label fails to run).
    pub fn set_class_label(&mut self, label: Option<i64>) {
        self.class_label = label;
    }

    /// The label fed to the `class` input.
    pub fn class_label(&self) -> Option<i64> {
        self.class_label
    }

    /// The number the time input receives for `call`: its `t_net`, or with
    /// [`TimeInput::Index`] the family's integer step `call.t` (exact: a fractional step is an
    /// error, never rounded to a neighbour).
    pub fn time_for(&self, call: &NetCall) -> Result<f64> {
        time_for(self.time_input, call)
    }

    /// What the graph fixes (batch, size) and how time is fed.
    pub fn plan(&self) -> GraphPlan {
        self.plan
    }

    /// The tensor names in use.
    pub fn io(&self) -> &IoNames {
        &self.io
    }

    /// The provider the session actually runs on (`"cpu"` after a permitted fallback).
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// Why the requested provider was not used, after a permitted CPU fallback.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// Make `token` cancel this session's runs (in addition to its own token).
    pub fn attach_cancel(&mut self, token: &CancelToken) {
        token.attach(self.run.clone());
        self.cancel = token.clone();
    }

    /// This session's cancel token.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// What the device loop ([`super::device`]) binds directly: the session, its run options
    /// (cancellation) and the cancel token.
    pub(crate) fn device_parts(&mut self) -> (&mut Session, Arc<RunOptions>, CancelToken) {
        (&mut self.session, self.run.clone(), self.cancel.clone())
    }

    fn time_value(&self, feed: TimeFeed, b: usize, t_net: f64) -> Result<SessionInputValue<'static>> {
        let shape: Vec<i64> = match feed.kind {
            0 => vec![],
            1 => vec![1],
            2 => vec![b as i64],
            _ => vec![b as i64, 1],
        };
        let n = shape.iter().product::<i64>().max(1) as usize;
        if !t_net.is_finite() {
            return Err(Error::param("t_net", "not finite"));
        }
        let v: SessionInputValue<'static> = match feed.elem {
            Elem::F64 => ort::value::Tensor::from_array((shape, vec![t_net; n])).map_err(rt)?.into(),
            Elem::I64 => ort::value::Tensor::from_array((shape, vec![t_net.round() as i64; n])).map_err(rt)?.into(),
            Elem::I32 => ort::value::Tensor::from_array((shape, vec![t_net.round() as i32; n])).map_err(rt)?.into(),
            _ => ort::value::Tensor::from_array((shape, vec![t_net as f32; n])).map_err(rt)?.into(),
        };
        Ok(v)
    }

    /// One run on a batch the graph accepts as is.
    fn run_chunk(&mut self, x: TensorView<'_>, cond: Option<TensorView<'_>>, z: Option<TensorView<'_>>, t_net: f64) -> Result<Tensor> {
        let b = x.shape()[0];
        let xc = try_standard(x, "the network input")?;
        let cc = cond.map(|c| try_standard(c, "the network's conditioning input")).transpose()?;
        let zc = z.map(|c| try_standard(c, "the generator noise input")).transpose()?;
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(5);
        inputs.push((Cow::from(self.io.state.as_str()), TensorRef::from_array_view(&xc).map_err(rt)?.into()));
        if let (Some(name), Some(c)) = (self.io.cond.as_deref(), cc.as_ref()) {
            inputs.push((Cow::from(name), TensorRef::from_array_view(c).map_err(rt)?.into()));
        }
        if let (Some(name), Some(feed)) = (self.io.time.as_deref(), self.plan.time) {
            inputs.push((Cow::from(name), self.time_value(feed, b, t_net)?));
        }
        if let (Some(name), Some(feed)) = (self.io.class.as_deref(), self.plan.class) {
            let label = self.class_label.ok_or_else(|| {
                Error::param("class label", format!("the network takes a class label (input `{name}`): give one (--class N, RestorerBuilder::class_label) or set bridge.class_label"))
            })?;
            inputs.push((Cow::from(name), self.time_value(feed, b, label as f64)?));
        }
        if let (Some(name), Some(z)) = (self.io.noise.as_deref(), zc.as_ref()) {
            inputs.push((Cow::from(name), TensorRef::from_array_view(z).map_err(rt)?.into()));
        }
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let cancel = self.cancel.clone();
        let out_name = self.io.output.clone();
        let outputs = self
            .session
            .run_with_options(inputs, &*self.run)
            .map_err(|e| if cancel.is_cancelled() { Error::Cancelled } else { run_error("running the network", e.message()) })?;
        let v = outputs.get(&out_name).ok_or_else(|| Error::Runtime(format!("the network did not return `{out_name}`")))?;
        let arr = v.try_extract_array::<f32>().map_err(|e| Error::Runtime(format!("output `{out_name}`: {}", e.message())))?;
        let arr = arr.into_dimensionality::<Ix4>().map_err(|_| {
            Error::shape(
                "network output (rank)",
                &[0; 4],
                v.try_extract_array::<f32>().map(|a| a.shape().to_vec()).unwrap_or_default().as_slice(),
            )
        })?;
        if arr.shape() != x.shape() {
            return Err(Error::shape("network output", x.shape(), arr.shape()));
        }
        // ONNX Runtime owns the output buffer; our copy of it is allocated fallibly.
        try_copy(arr.view(), "the network output")
    }
}

/// A failed ONNX Runtime run as an [`Error`]: a refused allocation inside it (ONNX Runtime
/// reports its arena's and its allocator's failures in the run's status, with these words) is
/// [`Error::OutOfMemory`] like the SDK's own; anything else is [`Error::Runtime`].
pub(crate) fn run_error(context: &str, message: &str) -> Error {
    const ARENA: &str = "Failed to allocate memory for requested buffer of size ";
    if let Some(i) = message.find(ARENA) {
        let digits = message[i + ARENA.len()..].split(|c: char| !c.is_ascii_digit()).next().unwrap_or("");
        return Error::OutOfMemory { what: format!("ONNX Runtime ({context})"), bytes: digits.parse().unwrap_or(0) };
    }
    if message.contains("std::bad_alloc") {
        return Error::OutOfMemory { what: format!("ONNX Runtime ({context})"), bytes: 0 };
    }
    Error::Runtime(format!("{context}: {message}"))
}

/// Run `f`, turning a panic inside `ort` into an error (a C host must never see one).
fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|p| Err(Error::Runtime(format!("ONNX Runtime wrapper panicked: {}", env::panic_text(&p)))))
}

/// See [`OnnxDenoiser::time_for`].
pub(crate) fn time_for(time_input: TimeInput, call: &NetCall) -> Result<f64> {
    match time_input {
        TimeInput::Value => Ok(call.t_net),
        TimeInput::Index => {
            let n = call.t;
            if !n.is_finite() || n < 0.0 || n.fract() != 0.0 {
                return Err(Error::param(
                    "bridge.time_input",
                    format!("`index` feeds the family's integer step, but the sampler calls the network at t = {n}"),
                ));
            }
            Ok(n)
        }
    }
}

impl Denoiser for OnnxDenoiser {
    /// Run the network (panics inside `ort` come back as [`Error::Runtime`]). With
    /// [`TimeInput::Index`] the step is unknown here: use [`Denoiser::eval_call`].
    fn eval(&mut self, x_in: TensorView<'_>, cond: TensorView<'_>, t_net: f64) -> Result<Tensor> {
        if self.time_input == TimeInput::Index && self.io.time.is_some() {
            return Err(Error::param(
                "bridge.time_input",
                "`index` needs the family's step: the network must be called through a sampler call",
            ));
        }
        guard(|| self.eval_inner(x_in, cond, t_net))
    }

    /// Run the network for a sampler call: the time input gets [`OnnxDenoiser::time_for`].
    fn eval_call(&mut self, x_in: TensorView<'_>, cond: TensorView<'_>, call: &NetCall) -> Result<Tensor> {
        let t = self.time_for(call)?;
        guard(|| self.eval_inner(x_in, cond, t))
    }
}

impl OnnxDenoiser {
    fn eval_inner(&mut self, x_in: TensorView<'_>, cond: TensorView<'_>, t_net: f64) -> Result<Tensor> {
        let (b, _, h, w) = x_in.dim();
        let (cb, _, ch, cw) = cond.dim();
        if self.io.cond.is_some() && (cb != b || ch != h || cw != w) {
            return Err(Error::shape("conditioning input", &[b, self.plan.cond_channels, h, w], cond.shape()));
        }
        if let Some((fh, fw)) = self.plan.fixed_hw
            && (h, w) != (fh, fw)
        {
            return Err(Error::shape("network input (the graph fixes height and width)", &[b, x_in.shape()[1], fh, fw], x_in.shape()));
        }
        if b == 0 {
            return try_zeros(x_in.raw_dim(), "the network output");
        }
        // A generator's noise arrives as the last channels of `cond` (`Model::x0_generator`).
        let nz = self.plan.noise_channels;
        let (cond, z) = if nz > 0 {
            let want = self.plan.cond_channels + nz;
            if cond.shape()[1] != want {
                return Err(Error::incompatible(
                    "this sampler",
                    "",
                    format!(
                        "the network takes {nz} channels of generator noise (input `{}`): run it with the distilled sampler",
                        self.io.noise.as_deref().unwrap_or("")
                    ),
                ));
            }
            let split = self.plan.cond_channels;
            (cond.slice_move(s![.., ..split, .., ..]), Some(cond.slice_move(s![.., split.., .., ..])))
        } else {
            (cond, None)
        };
        let cond = self.io.cond.as_ref().map(|_| cond);
        let Some(fb) = self.plan.fixed_batch.filter(|&fb| fb != b) else {
            return self.run_chunk(x_in, cond, z, t_net);
        };
        // A fixed batch size: run in chunks of `fb`, padding the last chunk by repeating its
        // final element (outputs of the padding are dropped).
        let mut out: Tensor = try_zeros(x_in.raw_dim(), "the network output")?;
        let mut i = 0;
        while i < b {
            let n = fb.min(b - i);
            let pick = |t: TensorView<'_>| -> Result<Tensor> {
                let (_, c, h, w) = t.dim();
                let mut o: Tensor = try_zeros((fb, c, h, w), "a network batch")?;
                for k in 0..fb {
                    o.index_axis_mut(Axis(0), k).assign(&t.index_axis(Axis(0), i + k.min(n - 1)));
                }
                Ok(o)
            };
            let xo = pick(x_in)?;
            let co = cond.map(pick).transpose()?;
            let zo = z.map(pick).transpose()?;
            let r = self.run_chunk(xo.view(), co.as_ref().map(|c| c.view()), zo.as_ref().map(|c| c.view()), t_net)?;
            out.slice_mut(s![i..i + n, .., .., ..]).assign(&r.slice(s![..n, .., .., ..]));
            i += n;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ONNX Runtime's allocation failures (the words of its arena and allocator) are
    /// `OutOfMemory` with the requested size; other failures stay `Runtime`.
    #[test]
    fn refused_allocations_in_a_run_are_out_of_memory() {
        let arena = "Non-zero status code returned while running Add node. Name:'Add_2' Status Message: /onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:360 void* onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, onnxruntime::Stream*) Failed to allocate memory for requested buffer of size 50331648\n";
        let e = run_error("running the network", arena);
        assert!(matches!(e, Error::OutOfMemory { bytes: 50331648, ref what } if what.contains("ONNX Runtime")), "{e}");
        let e = run_error("step graph", "Exception during initialization: std::bad_alloc");
        assert!(matches!(e, Error::OutOfMemory { bytes: 0, .. }), "{e}");
        let e = run_error("running the network", "Invalid rank for input: x");
        assert!(matches!(e, Error::Runtime(ref m) if m == "running the network: Invalid rank for input: x"), "{e}");
    }
}
