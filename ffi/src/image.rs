//! Image descriptors and `bridge_restore`. Buffer conversions are the SDK's ([`sdk::pixel`]);
//! this module only maps the C descriptor onto a [`Layout`] and the SDK's errors onto statuses.

use crate::handles::{self, bridge_restorer};
use crate::restorer::{RestorerEntry, output_size};
use crate::status::{Failure, bridge_status, guard, put};
use sdk::pixel::{self, Layout, Nv12Layout, PixelFormat, Planar, YuvMatrix};
use sdk::restorer::{Progress, Restorer, Stage};
use sdk::runtime::device_memory::{self, Memory};
use sdk::runtime::pixel_graph::FrameLayout;
use std::ffi::c_void;
use std::sync::{MutexGuard, TryLockError};

/// 8-bit R, G, B (3 bytes per pixel).
pub const BRIDGE_FORMAT_RGB8: u32 = 1;
/// 8-bit R, G, B, A (4 bytes per pixel); alpha passes through unchanged (replicated for SR).
pub const BRIDGE_FORMAT_RGBA8: u32 = 2;
/// 8-bit B, G, R (3 bytes per pixel).
pub const BRIDGE_FORMAT_BGR8: u32 = 3;
/// 8-bit B, G, R, A (4 bytes per pixel); alpha as for RGBA8.
pub const BRIDGE_FORMAT_BGRA8: u32 = 4;
/// 8-bit gray: replicated to RGB on input; the BT.601 luma of the result on output.
pub const BRIDGE_FORMAT_GRAY8: u32 = 5;
/// 16-bit R, G, B in native byte order, full scale 65535 (6 bytes per pixel).
pub const BRIDGE_FORMAT_RGB16: u32 = 6;
/// Three `float` planes R, G, B with values in [0, 1]: `stride` is the byte pitch of one
/// plane's rows (a multiple of 4) and plane k starts at byte `k·stride·height`.
pub const BRIDGE_FORMAT_RGB_F32_PLANAR: u32 = 7;
/// NV12 (camera ISPs): a Y plane of `height` rows, then an interleaved U/V plane of `height/2`
/// rows, both with pitch `stride`. Width and height must be even. BT.601 video range unless
/// `flags` says otherwise.
pub const BRIDGE_FORMAT_NV12: u32 = 8;

/// `bridge_image.flags`, NV12 only: BT.709 matrix instead of BT.601.
pub const BRIDGE_IMAGE_YUV_BT709: u32 = 1;
/// `bridge_image.flags`, NV12 only: full-range YUV (0–255) instead of video range.
pub const BRIDGE_IMAGE_YUV_FULL_RANGE: u32 = 2;
/// `bridge_image_planes.flags` only (in `bridge_image` it is an unknown flag,
/// `BRIDGE_ERR_INVALID_ARGUMENT`): the plane pointers are CUDA device pointers on the
/// restorer's GPU (`device_id` of its options). Needs a restorer running on the CUDA or
/// TensorRT provider; on the CPU (including after a CPU fallback) `bridge_restore_planes`
/// returns `BRIDGE_ERR_UNSUPPORTED`. When input and output are both device planes in NV12,
/// RGB8 or BGR8 and the restore runs the device loop on the whole frame as it is (no
/// super-resolution, no padding to the model's spatial multiple, no tiling, no mean network,
/// no colour fix), the frame is converted and restored on the GPU: the pixels never go to the
/// host (only the sampler's noise comes from it). Otherwise each plane is copied to the host,
/// restored as usual and copied back (through ONNX Runtime; the output plane is read first so
/// its row padding is kept). Either way the output has the same pixels as from host memory and
/// row padding is never changed. The caller must have finished its own work on the planes
/// (e.g. synchronised its CUDA stream) before the call.
pub const BRIDGE_IMAGE_MEMORY_CUDA: u32 = 4;

/// A caller-owned image buffer. libbridge never keeps the pointer after a call returns.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct bridge_image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes from the start of one row to the next (of each plane for planar formats); at least
    /// one row of pixels.
    pub stride: usize,
    /// One of `BRIDGE_FORMAT_*`.
    pub format: u32,
    /// `BRIDGE_IMAGE_*` bits (0 for none).
    pub flags: u32,
    /// The pixels: read for an input, written for an output.
    pub data: *mut c_void,
    /// Bytes available at `data`; at least `bridge_image_required_size()`.
    pub size: usize,
}

/// Progress callback of `bridge_restore`: `done` of `total` units of work are finished (a unit
/// is one tile of one network evaluation) and `fraction` = done/total in [0, 1]. Called on the
/// thread running `bridge_restore`, after every batch of tiles. Return 0 to continue, nonzero to
/// cancel (the restore then returns `BRIDGE_ERR_CANCELLED`). It may call
/// `bridge_restorer_cancel`; other calls on the same restorer return `BRIDGE_ERR_BUSY`.
pub type bridge_progress_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, done: u64, total: u64, fraction: f64) -> i32>;

pub(crate) fn format(code: u32) -> Result<PixelFormat, Failure> {
    Ok(match code {
        BRIDGE_FORMAT_RGB8 => PixelFormat::Rgb8,
        BRIDGE_FORMAT_RGBA8 => PixelFormat::Rgba8,
        BRIDGE_FORMAT_BGR8 => PixelFormat::Bgr8,
        BRIDGE_FORMAT_BGRA8 => PixelFormat::Bgra8,
        BRIDGE_FORMAT_GRAY8 => PixelFormat::Gray8,
        BRIDGE_FORMAT_RGB16 => PixelFormat::Rgb16,
        BRIDGE_FORMAT_RGB_F32_PLANAR => PixelFormat::RgbF32Planar,
        BRIDGE_FORMAT_NV12 => PixelFormat::Nv12,
        other => {
            return Err(Failure::new(
                bridge_status::BRIDGE_ERR_UNSUPPORTED_FORMAT,
                format!("format {other} is not one of the BRIDGE_FORMAT_* constants"),
            ));
        }
    })
}

/// The SDK layout of a descriptor and the bytes it needs. `what` names it in messages.
pub(crate) fn layout(d: &bridge_image, what: &str) -> Result<(Layout, usize), Failure> {
    let format = format(d.format).map_err(|e| Failure { message: format!("{what}: {}", e.message), ..e })?;
    if d.flags & !(BRIDGE_IMAGE_YUV_BT709 | BRIDGE_IMAGE_YUV_FULL_RANGE) != 0 {
        return Err(Failure::invalid(format!("{what}: unknown flags {:#x}", d.flags)));
    }
    if d.width == 0 || d.height == 0 {
        return Err(Failure::new(bridge_status::BRIDGE_ERR_IMAGE_SIZE, format!("{what}: size {}x{} is empty", d.width, d.height)));
    }
    let layout = Layout {
        width: d.width as usize,
        height: d.height as usize,
        stride: d.stride,
        format,
        yuv_matrix: if d.flags & BRIDGE_IMAGE_YUV_BT709 != 0 { YuvMatrix::Bt709 } else { YuvMatrix::Bt601 },
        yuv_full_range: d.flags & BRIDGE_IMAGE_YUV_FULL_RANGE != 0,
    };
    let need = layout.required_len().map_err(|e| Failure::new(layout_status(&e), format!("{what}: {e}")))?;
    Ok((layout, need))
}

/// The status of an SDK layout error: a stride/pitch named as the cause is
/// `BRIDGE_ERR_STRIDE`, anything else (sizes, overflow) `BRIDGE_ERR_IMAGE_SIZE`.
pub(crate) fn layout_status(e: &sdk::Error) -> bridge_status {
    match e {
        sdk::Error::InvalidParam { name, .. } if matches!(name.as_str(), "stride" | "y_pitch" | "uv_pitch") => {
            bridge_status::BRIDGE_ERR_STRIDE
        }
        _ => bridge_status::BRIDGE_ERR_IMAGE_SIZE,
    }
}

/// Check a descriptor's buffer pointer and size; the bytes it needs.
pub(crate) fn buffer(d: &bridge_image, what: &str) -> Result<(Layout, usize), Failure> {
    let (l, need) = layout(d, what)?;
    if d.data.is_null() {
        return Err(Failure::null(&format!("{what}.data")));
    }
    if d.size < need {
        return Err(Failure::new(
            bridge_status::BRIDGE_ERR_BUFFER_TOO_SMALL,
            format!("{what}: size is {} bytes, a {}x{} image with stride {} needs {need}", d.size, d.width, d.height, d.stride),
        ));
    }
    Ok((l, need))
}

/// The number of bytes a buffer described by `*image` needs (its `data` and `size` are not
/// looked at): `stride·(rows − 1) + one row`, with NV12's chroma rows and planar float's three
/// planes counted. Checks, in this order: `BRIDGE_ERR_UNSUPPORTED_FORMAT` (format not a
/// `BRIDGE_FORMAT_*`); `BRIDGE_ERR_INVALID_ARGUMENT` (flags other than `BRIDGE_IMAGE_*`);
/// `BRIDGE_ERR_IMAGE_SIZE` (zero width or height); `BRIDGE_ERR_STRIDE` (stride smaller than
/// a row, or not a multiple of 2 for RGB16 / 4 for planar float); `BRIDGE_ERR_IMAGE_SIZE` (odd
/// NV12 width or height); then the byte count, computed without overflow: more than
/// `PTRDIFF_MAX` is `BRIDGE_ERR_STRIDE` if the stride alone exceeds `PTRDIFF_MAX` (e.g. a
/// negative stride cast to `size_t`), else `BRIDGE_ERR_IMAGE_SIZE`. Allocates nothing.
///
/// Thread-safety: any thread. Ownership: nothing to free.
///
/// # Safety
/// `image` must be NULL or point to a `bridge_image`; `bytes` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bridge_image_required_size(image: *const bridge_image, bytes: *mut usize) -> bridge_status {
    guard(|| {
        if image.is_null() || bytes.is_null() {
            return Err(Failure::null(if image.is_null() { "image" } else { "bytes" }));
        }
        // SAFETY: non-NULL; points to a descriptor by contract.
        let d = unsafe { image.read_unaligned() };
        let (_, need) = layout(&d, "image")?;
        unsafe { put(bytes, need) };
        Ok(())
    })
}

/// Lock a restorer for one call; `BRIDGE_ERR_BUSY` if another thread holds it.
pub(crate) fn lock(r: &RestorerEntry) -> Result<MutexGuard<'_, Restorer>, Failure> {
    match r.restorer.try_lock() {
        Ok(g) => Ok(g),
        Err(TryLockError::WouldBlock) => {
            Err(Failure::new(bridge_status::BRIDGE_ERR_BUSY, "this restorer is running on another thread (use one restorer per thread)"))
        }
        Err(TryLockError::Poisoned(_)) => Err(Failure::new(
            bridge_status::BRIDGE_ERR_PANIC,
            "an earlier call panicked inside libbridge while using this restorer; free it and create a new one",
        )),
    }
}

/// The C callback and its user data, moved into the SDK's progress hook.
struct Callback {
    f: unsafe extern "C" fn(*mut c_void, u64, u64, f64) -> i32,
    user: *mut c_void,
}

// SAFETY: the hook runs only on the thread inside `bridge_restore` (the caller's thread, or one
// it handed the restorer to) and is removed before `bridge_restore` returns.
unsafe impl Send for Callback {}

impl Callback {
    /// Report progress; `false` cancels.
    fn call(&self, p: &Progress) -> bool {
        let (done, total) = units(p);
        // SAFETY: the caller provided a valid function pointer and the user data it expects.
        unsafe { (self.f)(self.user, done, total, p.fraction()) == 0 }
    }
}

/// Progress in tile evaluations: (done, total).
fn units(p: &Progress) -> (u64, u64) {
    let tiles = p.tiles.max(1) as u64;
    let extra = u64::from(p.has_mean);
    let total = (p.calls as u64 + extra) * tiles;
    let done = match p.stage {
        Stage::MeanNetwork => p.tile as u64,
        Stage::Sampling => (extra + p.call as u64) * tiles + p.tile as u64,
    };
    (done.min(total), total)
}

/// Nearest-neighbour enlargement of an alpha plane by the SR factor (alpha is not restored).
/// The output size was checked against the restorer's limits, so `ow·oh` fits; the allocation
/// may still be refused (a status, not an abort).
fn scale_alpha(a: Vec<f32>, w: usize, h: usize, s: usize) -> Result<Vec<f32>, Failure> {
    if s == 1 {
        return Ok(a);
    }
    let n = w.checked_mul(s).and_then(|ow| h.checked_mul(s).and_then(|oh| ow.checked_mul(oh)));
    let n = n.ok_or_else(|| Failure::new(bridge_status::BRIDGE_ERR_IMAGE_SIZE, "alpha plane size overflows"))?;
    let ow = w * s;
    let mut out = sdk::alloc::try_vec(n, 0f32, "the enlarged alpha plane")?;
    for (i, v) in out.iter_mut().enumerate() {
        *v = a[(i / ow / s) * w + (i % ow) / s];
    }
    Ok(out)
}

/// Restore `*input` into `*output`. `output` must describe a buffer of exactly the restorer's
/// output size (`bridge_restorer_output_size`) in any format; `input` any supported format. The
/// input is only read, and may overlap the output (it is converted before anything is written).
/// On failure the output buffer's contents are unspecified.
///
/// `progress` (may be NULL) is called with `user_data` as the run advances; returning nonzero
/// cancels. `bridge_restorer_cancel` cancels from another thread.
///
/// Checks, in this order, all before anything is allocated for the frame or any pixel is
/// read: the restorer handle (`BRIDGE_ERR_NULL_ARGUMENT`, `BRIDGE_ERR_INVALID_HANDLE`); both
/// descriptor pointers (`BRIDGE_ERR_NULL_ARGUMENT`); the input descriptor as
/// `bridge_image_required_size` checks it (`BRIDGE_ERR_UNSUPPORTED_FORMAT`,
/// `BRIDGE_ERR_INVALID_ARGUMENT` for unknown flags, `BRIDGE_ERR_IMAGE_SIZE`,
/// `BRIDGE_ERR_STRIDE`), then its `data` (`BRIDGE_ERR_NULL_ARGUMENT`) and `size`
/// (`BRIDGE_ERR_BUFFER_TOO_SMALL`); the output's width and height against the restorer's output
/// size (`BRIDGE_ERR_IMAGE_SIZE`); the output descriptor likewise; `BRIDGE_ERR_BUSY`;
/// `BRIDGE_ERR_MODEL_MISMATCH` (a model that is not RGB); the restorer's limits — each output
/// side at most 65536 pixels and at most 2^25 output pixels (`BRIDGE_ERR_IMAGE_SIZE`). Then the
/// input is converted (`BRIDGE_ERR_INVALID_ARGUMENT` for NaN/Inf in a float input) and
/// restored: `BRIDGE_ERR_OUT_OF_MEMORY` if a buffer cannot be allocated (libbridge's or
/// ONNX Runtime's; see the header's guarantees),
/// `BRIDGE_ERR_MODEL_MISMATCH` (a graph whose output size is wrong), `BRIDGE_ERR_CANCELLED`,
/// `BRIDGE_ERR_RUNTIME`. libbridge reads at most `bridge_image_required_size` bytes of the
/// input and writes at most that many of the output.
///
/// Ownership: the caller owns both buffers; libbridge keeps no pointer after returning.
/// Thread-safety: one thread at a time per restorer (a concurrent second call returns
/// `BRIDGE_ERR_BUSY`); different restorers run in parallel.
///
/// # Safety
/// `input`/`output` must be NULL or point to descriptors whose `data` is readable (input) or
/// writable (output) for `size` bytes; `progress` must be NULL or a valid function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bridge_restore(
    restorer: *mut bridge_restorer,
    input: *const bridge_image,
    output: *const bridge_image,
    progress: bridge_progress_fn,
    user_data: *mut c_void,
) -> bridge_status {
    guard(|| {
        let entry = handles::restorer(restorer)?;
        if input.is_null() || output.is_null() {
            return Err(Failure::null(if input.is_null() { "input" } else { "output" }));
        }
        // SAFETY: non-NULL descriptors by contract.
        let (din, dout) = unsafe { (input.read_unaligned(), output.read_unaligned()) };
        let fin = {
            let (layout, len) = buffer(&din, "input")?;
            Frame::host(FrameKind::Packed { layout, data: din.data.cast(), len })
        };
        let read_out = || {
            let (layout, len) = buffer(&dout, "output")?;
            Ok(Frame::host(FrameKind::Packed { layout, data: dout.data.cast(), len }))
        };
        // SAFETY: the descriptors' buffers are readable / writable for `size` ≥ the checked
        // lengths by contract.
        unsafe { restore_frames(&entry, &fin, (dout.width, dout.height), read_out, progress, user_data) }
    })
}

/// A checked caller image: its layout, where its bytes are and in which memory. Built only
/// after the descriptor's layout, pointers and sizes were checked; the pointers are the
/// caller's and are used during one call only.
pub(crate) struct Frame {
    pub(crate) kind: FrameKind,
    /// The planes are CUDA device pointers (`BRIDGE_IMAGE_MEMORY_CUDA`).
    pub(crate) cuda: bool,
}

pub(crate) enum FrameKind {
    /// One buffer of `len` bytes: every `bridge_image`, and single-plane formats of
    /// `bridge_image_planes`.
    Packed { layout: Layout, data: *mut u8, len: usize },
    /// NV12 in two planes of `y_len` and `uv_len` bytes.
    Nv12 { layout: Nv12Layout, y: *mut u8, y_len: usize, uv: *mut u8, uv_len: usize },
}

impl Frame {
    /// A host frame.
    pub(crate) fn host(kind: FrameKind) -> Self {
        Frame { kind, cuda: false }
    }

    fn size(&self) -> (usize, usize) {
        match &self.kind {
            FrameKind::Packed { layout, .. } => (layout.width, layout.height),
            FrameKind::Nv12 { layout, .. } => (layout.width, layout.height),
        }
    }

    /// Each plane's address and byte count.
    fn planes(&self) -> Vec<(*mut u8, usize)> {
        match self.kind {
            FrameKind::Packed { data, len, .. } => vec![(data, len)],
            FrameKind::Nv12 { y, y_len, uv, uv_len, .. } => vec![(y, y_len), (uv, uv_len)],
        }
    }

    /// The same layout over host copies of the planes (`staged[k]` holds plane k's bytes).
    fn staged_on(&self, staged: &mut [Vec<u8>]) -> Frame {
        let kind = match (&self.kind, staged) {
            (FrameKind::Packed { layout, .. }, [d]) => FrameKind::Packed { layout: *layout, data: d.as_mut_ptr(), len: d.len() },
            (FrameKind::Nv12 { layout, .. }, [y, uv]) => {
                FrameKind::Nv12 { layout: *layout, y: y.as_mut_ptr(), y_len: y.len(), uv: uv.as_mut_ptr(), uv_len: uv.len() }
            }
            _ => unreachable!("one staged buffer per plane"),
        };
        Frame::host(kind)
    }

    /// Host copies of device planes.
    ///
    /// # Safety
    /// The planes must be readable device memory of `memory` for their lengths.
    unsafe fn download(&self, memory: Memory) -> Result<Vec<Vec<u8>>, Failure> {
        let mut staged = Vec::new();
        for (p, len) in self.planes() {
            staged.push(unsafe { device_memory::download(p, len, memory)? });
        }
        Ok(staged)
    }

    /// Convert to planar RGB; device planes (`memory`) are staged on the host first.
    ///
    /// # Safety
    /// The planes must be readable (host, or device memory of `memory`) for their lengths for
    /// the duration of the call.
    unsafe fn decode(&self, memory: Option<Memory>) -> Result<Planar, Failure> {
        if let Some(m) = memory {
            let mut staged = unsafe { self.download(m)? };
            return unsafe { self.staged_on(&mut staged).decode(None) };
        }
        // SAFETY (all slices): non-NULL, readable for the checked lengths by contract; shared
        // slices may overlap each other and end before anything is written.
        Ok(match self.kind {
            FrameKind::Packed { ref layout, data, len } => pixel::decode(unsafe { std::slice::from_raw_parts(data, len) }, layout)?,
            FrameKind::Nv12 { ref layout, y, y_len, uv, uv_len } => {
                let (y, uv) = unsafe { (std::slice::from_raw_parts(y, y_len), std::slice::from_raw_parts(uv, uv_len)) };
                pixel::decode_nv12(y, uv, layout)?
            }
        })
    }

    /// Write planar RGB; device planes (`memory`) are read to the host (keeping their row
    /// padding), written there and copied back.
    ///
    /// # Safety
    /// The planes must be writable (host, or device memory of `memory`) for their lengths, not
    /// aliased by any live reference, and (two planes) not overlapping each other — checked
    /// when the frame was built.
    unsafe fn encode(&self, p: &Planar, memory: Option<Memory>) -> Result<(), Failure> {
        if let Some(m) = memory {
            let mut staged = unsafe { self.download(m)? };
            unsafe { self.staged_on(&mut staged).encode(p, None)? };
            for ((dst, _), bytes) in self.planes().into_iter().zip(&staged) {
                unsafe { device_memory::upload(bytes, dst, m)? };
            }
            return Ok(());
        }
        match self.kind {
            FrameKind::Packed { ref layout, data, len } => pixel::encode(p, layout, unsafe { std::slice::from_raw_parts_mut(data, len) })?,
            FrameKind::Nv12 { ref layout, y, y_len, uv, uv_len } => {
                let (y, uv) = unsafe { (std::slice::from_raw_parts_mut(y, y_len), std::slice::from_raw_parts_mut(uv, uv_len)) };
                pixel::encode_nv12(p, layout, y, uv)?
            }
        }
        Ok(())
    }
}

/// The restore shared by `bridge_restore` and `bridge_restore_planes`, after the input was
/// checked: the output's size against the restorer's (`out_size`, before the output
/// descriptor is checked by `read_out`), the model and the restorer's limits, then decode,
/// restore, encode.
///
/// # Safety
/// The frames' planes must be readable (input) / writable (output) for their lengths.
pub(crate) unsafe fn restore_frames(
    entry: &RestorerEntry,
    fin: &Frame,
    out_size: (u32, u32),
    read_out: impl FnOnce() -> Result<Frame, Failure>,
    progress: bridge_progress_fn,
    user_data: *mut c_void,
) -> Result<(), Failure> {
    let (w, h) = fin.size();
    // The sides came from `u32` descriptor fields.
    let (ow, oh) = output_size(entry.sr_scale, w as u32, h as u32)?;
    if out_size != (ow, oh) {
        return Err(Failure::new(
            bridge_status::BRIDGE_ERR_IMAGE_SIZE,
            format!(
                "output: {}x{}, but this restorer makes {ow}x{oh} from a {w}x{h} input (see bridge_restorer_output_size)",
                out_size.0, out_size.1
            ),
        ));
    }
    let fout = read_out()?;
    // Device planes need a restorer on that device.
    let memory = |f: &Frame| -> Result<Option<Memory>, Failure> {
        match (f.cuda, entry.cuda_device) {
            (false, _) => Ok(None),
            (true, Some(device_id)) => Ok(Some(Memory::Cuda { device_id })),
            (true, None) => Err(Failure::new(
                bridge_status::BRIDGE_ERR_UNSUPPORTED,
                "BRIDGE_IMAGE_MEMORY_CUDA planes need a restorer on the CUDA or TensorRT provider; this one runs on the CPU",
            )),
        }
    };
    let (mem_in, mem_out) = (memory(fin)?, memory(&fout)?);
    let mut r = lock(entry)?;
    let channels = r.package().channels;
    if channels != 3 {
        return Err(Failure::new(
            bridge_status::BRIDGE_ERR_MODEL_MISMATCH,
            format!("this package's network works on {channels} channel(s); bridge_restore feeds it RGB"),
        ));
    }
    // The restorer's limits before any allocation: a frame over them is refused here, not
    // after its planar copy (12 bytes per pixel) was allocated.
    r.check_size(w, h)?;
    let hook = || {
        progress.map(|f| {
            let cb = Callback { f, user: user_data };
            Box::new(move |p: &Progress| cb.call(p)) as sdk::restorer::ProgressFn
        })
    };
    // Both frames in the network's device memory: converted and restored there when the
    // restore allows it (else the host round trip below).
    if let (Some(m), Some(m2)) = (mem_in, mem_out)
        && m == m2
    {
        r.set_progress(hook());
        // SAFETY: valid device planes by contract; the output planes are disjoint.
        let ran = unsafe { restore_on_device(&mut r, fin, &fout, m) };
        r.set_progress(None);
        if ran?.is_none() {
            return Ok(());
        }
    }
    // SAFETY: readable by contract; the input slices end inside `decode`, before the output
    // (which may overlap the input) is written.
    let planar = unsafe { fin.decode(mem_in)? };
    r.set_progress(hook());
    let restored = r.restore_rgb(planar.rgb.view());
    r.set_progress(None);
    drop(r);
    let rgb = restored?;
    let alpha = planar.alpha.map(|a| scale_alpha(a, w, h, entry.sr_scale)).transpose()?;
    // SAFETY: writable by contract, planes disjoint (checked by `read_out`).
    unsafe { fout.encode(&Planar { rgb, alpha }, mem_out) }
}

/// The device path of a restore from and to device planes ([`Restorer::restore_frame_on_device`]):
/// `Ok(None)` when it ran, `Ok(Some(why))` when the frame takes the host round trip (nothing
/// read or written): a format without a device conversion (RGB8, BGR8 and NV12 have one), or
/// a restore that needs the host (super-resolution, padding, tiling, a mean network, …).
///
/// # Safety
/// The planes must be valid device memory of `memory` for their lengths; the output planes
/// must not overlap each other (the input may overlap the output: it is read whole first).
pub(crate) unsafe fn restore_on_device(
    r: &mut Restorer,
    fin: &Frame,
    fout: &Frame,
    memory: Memory,
) -> Result<Option<&'static str>, Failure> {
    let (Some(lin), Some(lout)) = (fin.pixel_layout(), fout.pixel_layout()) else {
        return Ok(Some("this format converts on the host"));
    };
    let ptrs = |f: &Frame| f.planes().into_iter().map(|(p, _)| p).collect::<Vec<_>>();
    Ok(unsafe { r.restore_frame_on_device(&ptrs(fin), &lin, &ptrs(fout), &lout, memory)? })
}

impl Frame {
    /// The frame's layout for the device conversion graphs, if it has one.
    fn pixel_layout(&self) -> Option<FrameLayout> {
        match self.kind {
            FrameKind::Nv12 { layout, .. } => Some(FrameLayout::Nv12(layout)),
            FrameKind::Packed { layout, .. } if matches!(layout.format, PixelFormat::Rgb8 | PixelFormat::Bgr8) => {
                Some(FrameLayout::Packed8 { width: layout.width, height: layout.height, stride: layout.stride, format: layout.format })
            }
            FrameKind::Packed { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(w: u32, h: u32, stride: usize, format: u32) -> bridge_image {
        bridge_image { width: w, height: h, stride, format, flags: 0, data: std::ptr::null_mut(), size: 0 }
    }

    fn required(d: &bridge_image) -> Result<usize, bridge_status> {
        let mut n = 0usize;
        match unsafe { bridge_image_required_size(d, &mut n) } {
            bridge_status::BRIDGE_OK => Ok(n),
            s => Err(s),
        }
    }

    /// The statuses depend on the SDK's error names (`stride`): pin them here.
    #[test]
    fn layout_errors_map_to_statuses() {
        assert_eq!(required(&desc(4, 2, 12, BRIDGE_FORMAT_RGB8)), Ok(24));
        assert_eq!(required(&desc(4, 2, 16, BRIDGE_FORMAT_RGB8)), Ok(28));
        assert_eq!(required(&desc(4, 2, 8, BRIDGE_FORMAT_NV12)), Ok(8 * 2 + 4));
        assert_eq!(required(&desc(4, 2, 16, BRIDGE_FORMAT_RGB_F32_PLANAR)), Ok(16 * 5 + 16));
        assert_eq!(required(&desc(4, 2, 11, BRIDGE_FORMAT_RGB8)), Err(bridge_status::BRIDGE_ERR_STRIDE));
        assert_eq!(required(&desc(4, 2, 18, BRIDGE_FORMAT_RGB_F32_PLANAR)), Err(bridge_status::BRIDGE_ERR_STRIDE));
        assert_eq!(required(&desc(0, 2, 12, BRIDGE_FORMAT_RGB8)), Err(bridge_status::BRIDGE_ERR_IMAGE_SIZE));
        assert_eq!(required(&desc(3, 2, 12, BRIDGE_FORMAT_NV12)), Err(bridge_status::BRIDGE_ERR_IMAGE_SIZE));
        assert_eq!(required(&desc(4, 2, 12, 0)), Err(bridge_status::BRIDGE_ERR_UNSUPPORTED_FORMAT));
        assert_eq!(required(&desc(4, 2, 12, 99)), Err(bridge_status::BRIDGE_ERR_UNSUPPORTED_FORMAT));
        let mut d = desc(4, 2, 12, BRIDGE_FORMAT_RGB8);
        d.flags = 8;
        assert_eq!(required(&d), Err(bridge_status::BRIDGE_ERR_INVALID_ARGUMENT));
        assert_eq!(unsafe { bridge_image_required_size(std::ptr::null(), &mut 0) }, bridge_status::BRIDGE_ERR_NULL_ARGUMENT);
    }

    #[test]
    fn progress_units() {
        let p = Progress { stage: Stage::Sampling, call: 2, calls: 5, tile: 1, tiles: 4, has_mean: true };
        assert_eq!(units(&p), (13, 24));
        let p = Progress { stage: Stage::MeanNetwork, call: 0, calls: 5, tile: 3, tiles: 4, has_mean: true };
        assert_eq!(units(&p), (3, 24));
        let p = Progress { stage: Stage::Sampling, call: 4, calls: 5, tile: 0, tiles: 0, has_mean: false };
        assert_eq!(units(&p), (4, 5));
    }

    /// The device-memory staging of `bridge_restore_planes`, run on host memory through the
    /// same ONNX Runtime copies (only the CUDA provider itself needs a GPU): decoding and
    /// encoding staged planes gives the host path's floats and bytes, and keeps the output's
    /// row padding.
    #[test]
    fn staged_planes_match_host_planes() {
        use sdk::runtime::device_memory::DeviceBytes;
        let _ = crate::test_support::oracle_path(); // loads ONNX Runtime
        sdk::runtime::env::environment(None).unwrap();
        let layout = Nv12Layout { y_pitch: 13, uv_pitch: 16, ..Nv12Layout::new(10, 6) };
        let (ny, nuv) = layout.plane_lens().unwrap();
        let y: Vec<u8> = (0..ny).map(|i| (i * 29 + 5) as u8).collect();
        let uv: Vec<u8> = (0..nuv).map(|i| (i * 53 + 77) as u8).collect();
        let frame = |y: *mut u8, uv: *mut u8| Frame::host(FrameKind::Nv12 { layout, y, y_len: ny, uv, uv_len: nuv });
        let (mut hy, mut huv) = (y.clone(), uv.clone());
        let want = unsafe { frame(hy.as_mut_ptr(), huv.as_mut_ptr()).decode(None) }.unwrap();
        let (mut dy, mut duv) = (DeviceBytes::from_host(&y, Memory::Host).unwrap(), DeviceBytes::from_host(&uv, Memory::Host).unwrap());
        let got = unsafe { frame(dy.ptr(), duv.ptr()).decode(Some(Memory::Host)) }.unwrap();
        assert_eq!(got, want);

        let p = Planar { rgb: want.rgb.mapv(|v| 1.0 - v), alpha: None };
        let (mut oy, mut ouv) = (vec![0xEEu8; ny], vec![0xEEu8; nuv]);
        unsafe { frame(oy.as_mut_ptr(), ouv.as_mut_ptr()).encode(&p, None) }.unwrap();
        let (mut doy, mut douv) = (
            DeviceBytes::from_host(&vec![0xEE; ny], Memory::Host).unwrap(),
            DeviceBytes::from_host(&vec![0xEE; nuv], Memory::Host).unwrap(),
        );
        unsafe { frame(doy.ptr(), douv.ptr()).encode(&p, Some(Memory::Host)) }.unwrap();
        assert_eq!(doy.to_host().unwrap(), oy);
        assert_eq!(douv.to_host().unwrap(), ouv);
        assert!(oy[10..13].iter().all(|&b| b == 0xEE), "padding kept");
    }

    /// Device planes on the device path (host memory on the CPU provider: the graphs and copies
    /// of CUDA memory): the bytes of the host round trip, row padding untouched, for NV12 with
    /// pitches past the width (odd chroma width) and RGB8; the device path really ran; a format
    /// without a device conversion is sent to the host round trip untouched.
    #[test]
    fn device_path_matches_host_path() {
        let r = crate::test_support::oracle_restorer();
        let entry = crate::handles::restorer(r).unwrap();
        let mut rs = lock(&entry).unwrap();
        // The device loop is on by default only on a GPU; the CPU provider runs the same code.
        rs.set_device_loop(true);
        let nv = Nv12Layout { y_pitch: 13, uv_pitch: 16, ..Nv12Layout::new(10, 6) };
        let (ny, nuv) = nv.plane_lens().unwrap();
        let mut rgb = Layout::packed(10, 6, PixelFormat::Rgb8).unwrap();
        rgb.stride += 3;
        let nrgb = rgb.required_len().unwrap();
        let fill = |n: usize, k: usize| (0..n).map(|i| (i * (29 + 2 * k) + 5 * k) as u8).collect::<Vec<u8>>();
        let (mut y, mut uv, mut px) = (fill(ny, 1), fill(nuv, 2), fill(nrgb, 3));
        let nv_frame = |y: *mut u8, uv: *mut u8| Frame::host(FrameKind::Nv12 { layout: nv, y, y_len: ny, uv, uv_len: nuv });
        let rgb_frame = |p: *mut u8| Frame::host(FrameKind::Packed { layout: rgb, data: p, len: nrgb });
        for (in_nv, out_nv) in [(true, true), (false, true), (true, false), (false, false)] {
            let fin = if in_nv { nv_frame(y.as_mut_ptr(), uv.as_mut_ptr()) } else { rgb_frame(px.as_mut_ptr()) };
            let planar = unsafe { fin.decode(None) }.unwrap();
            let restored = Planar { rgb: rs.restore_rgb(planar.rgb.view()).unwrap(), alpha: None };
            let (mut wy, mut wuv, mut wpx) = (vec![0xEEu8; ny], vec![0xEEu8; nuv], vec![0xEEu8; nrgb]);
            let (mut oy, mut ouv, mut opx) = (wy.clone(), wuv.clone(), wpx.clone());
            let want = if out_nv { nv_frame(wy.as_mut_ptr(), wuv.as_mut_ptr()) } else { rgb_frame(wpx.as_mut_ptr()) };
            unsafe { want.encode(&restored, None) }.unwrap();
            let got = if out_nv { nv_frame(oy.as_mut_ptr(), ouv.as_mut_ptr()) } else { rgb_frame(opx.as_mut_ptr()) };
            assert_eq!(unsafe { restore_on_device(&mut rs, &fin, &got, Memory::Host) }.unwrap(), None, "the device path runs");
            assert_eq!(rs.sampling_loop(), sdk::runtime::SamplingLoop::Device);
            assert_eq!((&oy, &ouv, &opx), (&wy, &wuv, &wpx), "nv12 in {in_nv}, out {out_nv}");
        }
        // RGBA8 has no device conversion: the host round trip, nothing written here.
        let mut rgba = Layout::packed(10, 6, PixelFormat::Rgba8).unwrap();
        rgba.stride += 1;
        let mut buf = vec![0xEEu8; rgba.required_len().unwrap()];
        let f = Frame::host(FrameKind::Packed { layout: rgba, data: buf.as_mut_ptr(), len: buf.len() });
        let fin = nv_frame(y.as_mut_ptr(), uv.as_mut_ptr());
        assert!(unsafe { restore_on_device(&mut rs, &fin, &f, Memory::Host) }.unwrap().is_some());
        assert!(buf.iter().all(|&b| b == 0xEE));
        drop(rs);
        assert_eq!(crate::restorer::bridge_restorer_free(r), bridge_status::BRIDGE_OK);
    }

    #[test]
    fn alpha_is_replicated() {
        let a = [0.0, 0.5, 1.0, 0.25];
        assert_eq!(
            scale_alpha(a.to_vec(), 2, 2, 2).unwrap(),
            vec![0.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.5, 0.5, 1.0, 1.0, 0.25, 0.25, 1.0, 1.0, 0.25, 0.25]
        );
    }
}
