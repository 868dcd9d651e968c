//! Restorer options, creation, cancellation and size queries.

use crate::handles::{self, bridge_model, bridge_restorer};
use crate::status::{Failure, bridge_status, guard, path_arg, put, str_arg};
use sdk::color_fix::ColorFix;
use sdk::restorer::Restorer;
use sdk::runtime::{CancelToken, CudaOptions, ExecutionProvider, TensorRtOptions};
use std::ffi::{CStr, c_char};
use std::sync::Mutex;

/// Execution provider: ONNX Runtime's CPU provider (always available).
pub const BRIDGE_EP_CPU: u32 = 0;
/// Execution provider: NVIDIA CUDA (libbridge built with the `cuda` feature, and the
/// onnxruntime-gpu provider libraries, CUDA and cuDNN at run time).
pub const BRIDGE_EP_CUDA: u32 = 1;
/// Execution provider: NVIDIA TensorRT (feature `tensorrt`; the TensorRT that the ONNX Runtime
/// build links — 8.6 for ONNX Runtime 1.17, 10.x for 1.18 and newer, see docs/jetson.md); nodes
/// TensorRT does not take run on CUDA.
pub const BRIDGE_EP_TENSORRT: u32 = 2;

/// `tile_size` value that disables tiling (the network sees the whole frame at once).
pub const BRIDGE_TILE_NONE: u32 = 0xFFFF_FFFF;
/// `tile_overlap` value that requests no overlap between tiles (0 means the default).
pub const BRIDGE_OVERLAP_NONE: u32 = 0xFFFF_FFFF;

/// Options of `bridge_restorer_new`. Always fill it with `bridge_restorer_options_init` first,
/// then change what you need: "0 / NULL / NaN" means "the package's default".
///
/// `struct_size` lets the struct grow in later versions: `bridge_restorer_options_init` sets it
/// to `sizeof(bridge_restorer_options)` of the header you compiled against. libbridge reads at
/// most `struct_size` bytes of the struct, and never more than its own `sizeof`:
/// * `struct_size` smaller than the first published struct (ABI 0.1: every field before
///   `class_label`, `offsetof(bridge_restorer_options, class_label)`) →
///   `BRIDGE_ERR_INVALID_ARGUMENT` (typically: the struct was not initialised);
/// * an older header's (smaller) struct → accepted; the fields it lacks take their defaults;
/// * a newer header's (larger) struct → `BRIDGE_ERR_INVALID_ARGUMENT`, without reading the
///   bytes past this library's struct: its newer fields cannot be honoured, and libbridge does
///   not silently ignore options.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct bridge_restorer_options {
    /// `sizeof(bridge_restorer_options)`, set by `bridge_restorer_options_init`.
    pub struct_size: u32,
    /// `BRIDGE_EP_CPU` (default), `BRIDGE_EP_CUDA` or `BRIDGE_EP_TENSORRT`.
    pub execution_provider: u32,
    /// GPU ordinal for CUDA / TensorRT (default 0).
    pub device_id: i32,
    /// Threads per restore (0: one per core): ONNX Runtime's intra-op threads and the most the
    /// host sampler step uses (1: the calling thread alone). The output does not depend on it.
    pub threads: u32,
    /// Nonzero: if the requested GPU provider cannot be used, run on the CPU instead of failing
    /// with `BRIDGE_ERR_PROVIDER_UNAVAILABLE` (default 0).
    pub allow_cpu_fallback: u32,
    /// Sampler name (e.g. `"dbim"`, `"heun"`, `"i2sb"`, `"data-solver-2"`), NULL: the package's.
    /// Read during `bridge_restorer_new` only.
    pub sampler: *const c_char,
    /// Network evaluations (0: the package's).
    pub nfe: u32,
    /// Noise seed (default 0). Determinism: with the same model, options, input and library
    /// build, the same seed gives a bit-identical image on reruns and for any `threads` (the
    /// noise is counter-based, keyed by whole-frame pixel coordinates, and the CPU provider's
    /// kernels do not depend on the thread count). It does NOT promise the same image across
    /// different `tile_size`/`tile_overlap` values: pixels near a tile seam depend on what the
    /// network sees around them, so a network whose receptive field exceeds the overlap (e.g.
    /// attention) gives different pixels there. GPU providers may use kernels that are not
    /// bit-reproducible.
    pub seed: u64,
    /// η of DBIM / implicit samplers (NaN: the package's, else 0).
    pub eta: f64,
    /// Churn of the Heun sampler (NaN: the package's, else 0).
    pub churn: f64,
    /// Tile side in pixels (0: the package's recommendation, else 512; `BRIDGE_TILE_NONE`: no
    /// tiling). Rounded up to the package's spatial multiple.
    pub tile_size: u32,
    /// Overlap between tiles in pixels (0: the package's, else 64; `BRIDGE_OVERLAP_NONE`: none).
    pub tile_overlap: u32,
    /// TensorRT only: folder where built engines are cached (NULL: no cache). Keep the tile size
    /// fixed so one engine serves every frame. Read during `bridge_restorer_new` only.
    pub tensorrt_engine_cache_dir: *const c_char,
    /// TensorRT only: nonzero builds fp16 engines.
    pub tensorrt_fp16: u32,
    /// Class label for a class-conditional network (a graph input with role `class`, e.g.
    /// I2SB's ImageNet checkpoints); -1 (default): the package's `bridge.class_label`. A label
    /// for a network without a class input, or none for one with it, is `BRIDGE_ERR_INVALID`.
    pub class_label: i64,
    /// Colour correction: 0 (default) off; `n` in 1–16: the output keeps its detail and takes its
    /// coarse colours (the lowest band of `n` à trous wavelet passes; 5 ≈ 32 px) from the input.
    /// Removes a model's colour cast — and any colour change the model should make. Added after
    /// ABI 0.1's `class_label`: a struct from an older header (smaller `struct_size`) leaves it off.
    pub color_fix_levels: u32,
    /// Ignored. It occupies what was the struct's tail padding after `color_fix_levels`, so
    /// that `channel_ensemble` lies beyond every older header's `struct_size` (an older caller's
    /// padding bytes are never read as an option).
    pub reserved0: u32,
    /// The channel ensemble: every network call averaged over the three cyclic shifts of the
    /// colour channels — the network's channel asymmetry (a tint) cancels, a grey input stays
    /// grey — at three times the network time, on the host sampling loop. 0 (default): the
    /// package's choice (`bridge.channel_ensemble`; off for a package that does not ask for it);
    /// 1: on; 2: off; other values are `BRIDGE_ERR_INVALID_ARGUMENT`. Added after
    /// `color_fix_levels`: a struct from an older header gets the package's choice.
    pub channel_ensemble: u32,
}

impl Default for bridge_restorer_options {
    fn default() -> Self {
        bridge_restorer_options {
            struct_size: std::mem::size_of::<bridge_restorer_options>() as u32,
            execution_provider: BRIDGE_EP_CPU,
            device_id: 0,
            threads: 0,
            allow_cpu_fallback: 0,
            sampler: std::ptr::null(),
            nfe: 0,
            seed: 0,
            eta: f64::NAN,
            churn: f64::NAN,
            tile_size: 0,
            tile_overlap: 0,
            tensorrt_engine_cache_dir: std::ptr::null(),
            tensorrt_fp16: 0,
            class_label: -1,
            color_fix_levels: 0,
            reserved0: 0,
            channel_ensemble: 0,
        }
    }
}

/// Fill `*options` with the defaults (every field "the package's default", CPU provider) and
/// set `struct_size`.
///
/// Ownership: the caller owns `*options`. Thread-safety: any thread.
///
/// # Safety
/// `options` must be NULL or writable for `sizeof(bridge_restorer_options)` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bridge_restorer_options_init(options: *mut bridge_restorer_options) -> bridge_status {
    guard(|| {
        if options.is_null() {
            return Err(Failure::null("options"));
        }
        // SAFETY: non-NULL, writable by contract; `write_unaligned` needs no alignment.
        unsafe { options.write_unaligned(bridge_restorer_options::default()) };
        Ok(())
    })
}

/// What `bridge_restore` runs on: the SDK restorer behind a lock (one restore at a time), and
/// its cancel token outside the lock (cancel from any thread).
pub(crate) struct RestorerEntry {
    pub(crate) restorer: Mutex<Restorer>,
    pub(crate) cancel: CancelToken,
    pub(crate) sr_scale: usize,
    /// The CUDA device the restorer runs on (CUDA or TensorRT provider, after any fallback):
    /// where `BRIDGE_IMAGE_MEMORY_CUDA` planes are. `None` on the CPU.
    pub(crate) cuda_device: Option<i32>,
}

/// `struct_size` of the first published `bridge_restorer_options` (ABI 0.1, everything before
/// `class_label`): the smallest accepted. Fields added later go after it, and a caller compiled
/// against that header keeps passing this size (its missing fields take their defaults).
pub(crate) const OPTIONS_V1_SIZE: usize = std::mem::offset_of!(bridge_restorer_options, class_label);

/// Read the caller's options, checking `struct_size` — reading at most `struct_size` bytes of
/// the caller's memory, and never more than this library's struct.
///
/// * `struct_size` < [`OPTIONS_V1_SIZE`]: not a published version (e.g. the struct was never
///   initialised): `BRIDGE_ERR_INVALID_ARGUMENT`, nothing read past `struct_size`.
/// * from [`OPTIONS_V1_SIZE`] up to ours: an older header's struct; the first `struct_size`
///   bytes are read and the fields it lacks keep their defaults.
/// * larger than ours: a newer header's struct, with fields this library does not know and so
///   cannot honour: `BRIDGE_ERR_INVALID_ARGUMENT`, and the caller's extra bytes are not read
///   (they may not even exist when `struct_size` is garbage).
///
/// # Safety
/// `p` must be NULL or readable for 4 bytes and for `min(struct_size, sizeof)` bytes.
unsafe fn read_options(p: *const bridge_restorer_options) -> Result<bridge_restorer_options, Failure> {
    if p.is_null() {
        return Ok(bridge_restorer_options::default());
    }
    let ours = std::mem::size_of::<bridge_restorer_options>();
    // SAFETY: the struct starts with `struct_size`; the caller promises it is readable.
    let size = unsafe { p.cast::<u32>().read_unaligned() } as usize;
    if size < OPTIONS_V1_SIZE {
        return Err(Failure::invalid(format!(
            "options.struct_size is {size}, smaller than any published bridge_restorer_options ({OPTIONS_V1_SIZE} bytes): \
             call bridge_restorer_options_init() first"
        )));
    }
    if size > ours {
        return Err(Failure::invalid(format!(
            "options.struct_size is {size}: options from a newer libbridge header (this library knows {ours} bytes and \
             cannot honour fields it does not have); build against this library's bridge.h"
        )));
    }
    let mut o = bridge_restorer_options::default();
    // SAFETY: `size` ≤ `ours` bytes are readable at `p` (the caller's struct) and writable at
    // `o`; every bit pattern is valid for the fields (integers, floats, pointers).
    unsafe { std::ptr::copy_nonoverlapping(p.cast::<u8>(), (&raw mut o).cast::<u8>(), size) };
    o.struct_size = size as u32;
    Ok(o)
}

fn provider(o: &bridge_restorer_options) -> Result<ExecutionProvider, Failure> {
    match o.execution_provider {
        BRIDGE_EP_CPU => Ok(ExecutionProvider::Cpu),
        BRIDGE_EP_CUDA => Ok(ExecutionProvider::Cuda(CudaOptions { device_id: o.device_id, ..CudaOptions::default() })),
        BRIDGE_EP_TENSORRT => {
            let cache = if o.tensorrt_engine_cache_dir.is_null() {
                None
            } else {
                Some(unsafe { path_arg(o.tensorrt_engine_cache_dir, "options.tensorrt_engine_cache_dir")? })
            };
            Ok(ExecutionProvider::TensorRt(TensorRtOptions {
                device_id: o.device_id,
                fp16: o.tensorrt_fp16 != 0,
                engine_cache_dir: cache,
                ..TensorRtOptions::default()
            }))
        }
        other => Err(Failure::invalid(format!("options.execution_provider {other} is not one of BRIDGE_EP_CPU/CUDA/TENSORRT"))),
    }
}

/// Create a restorer for `model` with `options` (NULL: all defaults). This opens the model's
/// ONNX Runtime sessions on the requested execution provider, so it is the slow call; reuse the
/// restorer for every image.
///
/// Errors: `BRIDGE_ERR_NULL_ARGUMENT`, `BRIDGE_ERR_INVALID_HANDLE`, `BRIDGE_ERR_INVALID_ARGUMENT`
/// (struct_size, unknown provider, sampler name or knob the family does not allow, tile overlap
/// more than half the tile), `BRIDGE_ERR_PROVIDER_UNAVAILABLE`, `BRIDGE_ERR_MODEL`.
///
/// Ownership: `options` and the strings it points to are read during the call only. The caller
/// owns the restorer and frees it with `bridge_restorer_free`; it stays valid after the model is
/// freed. Thread-safety: any thread, concurrently with other calls on the same model.
///
/// # Safety
/// `options` must be NULL or point to an initialised `bridge_restorer_options`; `out` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bridge_restorer_new(
    model: *const bridge_model,
    options: *const bridge_restorer_options,
    out: *mut *mut bridge_restorer,
) -> bridge_status {
    guard(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY: non-NULL; writable by contract.
        let out = unsafe { &mut *out };
        *out = std::ptr::null_mut();
        let m = handles::model(model)?;
        let o = unsafe { read_options(options)? };
        // Sessions come from the model's bytes: the file is not read again.
        let mut b = Restorer::builder_from_package(m.package.clone());
        b = b.execution_provider(provider(&o)?).cpu_fallback(o.allow_cpu_fallback != 0).threads(o.threads as usize).seed(o.seed);
        if let Some(name) = unsafe { str_arg(o.sampler, "options.sampler")? } {
            b = b.sampler(name);
        }
        if o.nfe != 0 {
            b = b.nfe(o.nfe as usize);
        }
        if !o.eta.is_nan() {
            b = b.eta(o.eta);
        }
        if !o.churn.is_nan() {
            b = b.churn(o.churn);
        }
        match o.class_label {
            -1 => {}
            n if n < 0 => return Err(Failure::invalid(format!("options.class_label is {n}: a label is >= 0 (-1: the package's)"))),
            n => b = b.class_label(n),
        }
        match o.color_fix_levels {
            0 => {}
            n if n > ColorFix::MAX_LEVELS => {
                return Err(Failure::invalid(format!("options.color_fix_levels is {n}: 0 (off) or 1 to {}", ColorFix::MAX_LEVELS)));
            }
            levels => b = b.color_fix(ColorFix::Wavelet { levels }),
        }
        b = b.channel_ensemble(match o.channel_ensemble {
            0 => None,
            1 => Some(true),
            2 => Some(false),
            n => return Err(Failure::invalid(format!("options.channel_ensemble is {n}: 0 (the package's), 1 (on) or 2 (off)"))),
        });
        match o.tile_size {
            0 => {}
            BRIDGE_TILE_NONE => b = b.tile(0),
            n => b = b.tile(n as usize),
        }
        match o.tile_overlap {
            0 => {}
            BRIDGE_OVERLAP_NONE => b = b.tile_overlap(0),
            n => b = b.tile_overlap(n as usize),
        }
        let r = b.build()?;
        let cuda_device = matches!(r.provider(), "cuda" | "tensorrt").then_some(o.device_id);
        let entry = RestorerEntry { cancel: r.cancel_token(), sr_scale: r.package().sr_scale, cuda_device, restorer: Mutex::new(r) };
        *out = handles::new_restorer(entry)?;
        Ok(())
    })
}

/// Free a restorer. NULL is a no-op (`BRIDGE_OK`); a handle already freed, or a model, is
/// `BRIDGE_ERR_INVALID_HANDLE` (nothing is freed).
///
/// Thread-safety: any thread. If another thread is inside `bridge_restore` with this restorer
/// (which the contract forbids), that restore is cancelled and the memory is released when it
/// returns.
#[unsafe(no_mangle)]
pub extern "C" fn bridge_restorer_free(restorer: *mut bridge_restorer) -> bridge_status {
    guard(|| {
        if let Some(r) = handles::free_restorer(restorer)? {
            r.cancel.cancel();
        }
        Ok(())
    })
}

/// Cancel the restore running on `restorer`: it returns `BRIDGE_ERR_CANCELLED` within
/// milliseconds (ONNX Runtime stops the network mid-run). A cancel applies to the restore in
/// progress; `bridge_restore` clears it when it starts, so a cancel issued before a restore
/// begins has no effect on it.
///
/// Thread-safety: any thread, at any time, including while another thread runs `bridge_restore`
/// on the same restorer (the one call that may overlap a restore). Ownership: nothing to free.
#[unsafe(no_mangle)]
pub extern "C" fn bridge_restorer_cancel(restorer: *mut bridge_restorer) -> bridge_status {
    guard(|| {
        handles::restorer(restorer)?.cancel.cancel();
        Ok(())
    })
}

/// The output size for a `width`×`height` input: the input size times the package's SR
/// factor. Errors: `BRIDGE_ERR_IMAGE_SIZE` for a zero or overflowing size.
///
/// Thread-safety: any thread (it does not wait for a running restore). Ownership: nothing to
/// free.
///
/// # Safety
/// `out_width` and `out_height` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bridge_restorer_output_size(
    restorer: *const bridge_restorer,
    width: u32,
    height: u32,
    out_width: *mut u32,
    out_height: *mut u32,
) -> bridge_status {
    guard(|| {
        let r = handles::restorer(restorer)?;
        if out_width.is_null() || out_height.is_null() {
            return Err(Failure::null(if out_width.is_null() { "out_width" } else { "out_height" }));
        }
        let (w, h) = output_size(r.sr_scale, width, height)?;
        // SAFETY: checked non-NULL; writable by contract.
        unsafe {
            put(out_width, w);
            put(out_height, h);
        }
        Ok(())
    })
}

/// `scale·width × scale·height`, checked.
pub(crate) fn output_size(scale: usize, width: u32, height: u32) -> Result<(u32, u32), Failure> {
    if width == 0 || height == 0 {
        return Err(Failure::new(bridge_status::BRIDGE_ERR_IMAGE_SIZE, format!("image size {width}x{height} is empty")));
    }
    let s = u32::try_from(scale).unwrap_or(u32::MAX);
    match (width.checked_mul(s), height.checked_mul(s)) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(Failure::new(bridge_status::BRIDGE_ERR_IMAGE_SIZE, format!("output size {width}x{height} × {scale} overflows"))),
    }
}

/// The execution provider the restorer actually runs on (`"cpu"`, `"cuda"`, `"tensorrt"`):
/// `"cpu"` after a permitted fallback (`allow_cpu_fallback`).
///
/// Ownership: a static string; do not free. Thread-safety: one thread at a time per restorer
/// (returns `BRIDGE_ERR_BUSY` while a restore runs on another thread).
///
/// # Safety
/// `out` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bridge_restorer_provider(restorer: *const bridge_restorer, out: *mut *const c_char) -> bridge_status {
    guard(|| {
        let r = handles::restorer(restorer)?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let name: &CStr = match crate::image::lock(&r)?.provider() {
            "cuda" => c"cuda",
            "tensorrt" => c"tensorrt",
            _ => c"cpu",
        };
        // SAFETY: checked non-NULL; writable by contract.
        unsafe { put(out, name.as_ptr()) };
        Ok(())
    })
}
