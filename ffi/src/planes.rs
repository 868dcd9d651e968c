//! Multi-plane image descriptors (`bridge_image_planes`) and `bridge_restore_planes`: frames
//! whose planes live in separate buffers with their own pitches, as camera stacks hand them
//! out (V4L2 multiplanar buffers, `NvBufSurface`, GStreamer frames with plane offsets).
//!
//! Additive to `bridge_image`, which keeps its layout and meaning: that struct has no
//! `struct_size`, so it cannot grow without breaking compiled callers. This one is versioned
//! from the start (`struct_size`, set by `bridge_image_planes_init`).

use crate::handles::{self, bridge_restorer};
use crate::image::{BRIDGE_FORMAT_NV12, BRIDGE_IMAGE_MEMORY_CUDA, BRIDGE_IMAGE_YUV_BT709, BRIDGE_IMAGE_YUV_FULL_RANGE};
use crate::image::{Frame, FrameKind, bridge_image, bridge_progress_fn, buffer, layout_status, restore_frames};
use crate::status::{Failure, bridge_status, guard};
use sdk::pixel::{Nv12Layout, YuvMatrix};
use std::ffi::c_void;

/// Number of plane slots in a `bridge_image_planes` (the most any format uses is 2 today; the
/// spare slots keep room for 3-plane formats without a new struct).
pub const BRIDGE_MAX_PLANES: usize = 4;

/// A caller-owned image whose planes are separate buffers, each with its own pitch.
/// libbridge never keeps a pointer after a call returns.
///
/// Planes by format:
/// * `BRIDGE_FORMAT_NV12`: plane 0 is luma (`height` rows of `width` bytes, pitch
///   `stride[0]`), plane 1 the interleaved U/V plane (`height/2` rows of `width` bytes —
///   `width/2` U, V pairs — pitch `stride[1]`). The planes may be anywhere: separate
///   allocations, one allocation at any offsets (e.g. GStreamer's plane offsets), the same
///   pitch or not. Width and height must be even.
/// * every other `BRIDGE_FORMAT_*`: plane 0 only, laid out exactly as `bridge_image.data` with
///   `stride[0]` (planar float's three planes stay in that one buffer).
///
/// Unused plane slots must be NULL with stride and size 0 (`bridge_image_planes_init` sets
/// them so): a slot that is set means the caller thinks the format has more planes than it
/// has, which is reported instead of ignored.
///
/// `struct_size` makes the struct extensible: `bridge_image_planes_init` sets it to
/// `sizeof(bridge_image_planes)` of the header you compiled against. libbridge reads at most
/// `struct_size` bytes and never more than its own `sizeof`: a size smaller than the first
/// published struct (this one) or larger than this library's is `BRIDGE_ERR_INVALID_ARGUMENT`
/// (a newer header's fields cannot be honoured), without reading past either.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct bridge_image_planes {
    /// `sizeof(bridge_image_planes)`, set by `bridge_image_planes_init`.
    pub struct_size: u32,
    /// One of `BRIDGE_FORMAT_*`.
    pub format: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `BRIDGE_IMAGE_*` bits (0 for none): the YUV bits as in `bridge_image`, and
    /// `BRIDGE_IMAGE_MEMORY_CUDA` when the planes are CUDA device pointers.
    pub flags: u32,
    /// The planes' pixels: read for an input, written for an output.
    pub data: [*mut c_void; BRIDGE_MAX_PLANES],
    /// Bytes from the start of one row of each plane to the next; at least one row of that
    /// plane. Larger than `PTRDIFF_MAX` (e.g. a negative pitch cast to `size_t`) is refused.
    pub stride: [usize; BRIDGE_MAX_PLANES],
    /// Bytes available at each `data`; at least what `bridge_image_planes_required_sizes`
    /// reports for that plane.
    pub size: [usize; BRIDGE_MAX_PLANES],
}

impl Default for bridge_image_planes {
    fn default() -> Self {
        bridge_image_planes {
            struct_size: std::mem::size_of::<bridge_image_planes>() as u32,
            format: 0,
            width: 0,
            height: 0,
            flags: 0,
            data: [std::ptr::null_mut(); BRIDGE_MAX_PLANES],
            stride: [0; BRIDGE_MAX_PLANES],
            size: [0; BRIDGE_MAX_PLANES],
        }
    }
}

/// `struct_size` of the first published `bridge_image_planes` (ABI 0.1.0 + planes): the
/// smallest accepted. Fields added later go after `size`; a caller compiled against this header
/// keeps passing this size.
pub(crate) const PLANES_V1_SIZE: usize = std::mem::size_of::<bridge_image_planes>();

/// Read a caller's descriptor, checking `struct_size` first and copying at most
/// `min(struct_size, sizeof)` bytes.
///
/// # Safety
/// `p` must be non-NULL and readable for 4 bytes and for `min(struct_size, sizeof)` bytes.
unsafe fn read(p: *const bridge_image_planes, what: &str) -> Result<bridge_image_planes, Failure> {
    let ours = std::mem::size_of::<bridge_image_planes>();
    // SAFETY: the struct starts with `struct_size`; readable by contract.
    let size = unsafe { p.cast::<u32>().read_unaligned() } as usize;
    if size < PLANES_V1_SIZE {
        return Err(Failure::invalid(format!(
            "{what}.struct_size is {size}, smaller than any published bridge_image_planes ({PLANES_V1_SIZE} bytes): \
             call bridge_image_planes_init() first"
        )));
    }
    if size > ours {
        return Err(Failure::invalid(format!(
            "{what}.struct_size is {size}: a descriptor from a newer libbridge header (this library knows {ours} bytes \
             and cannot honour fields it does not have); build against this library's bridge.h"
        )));
    }
    let mut d = bridge_image_planes::default();
    // SAFETY: `size` ≤ `ours` bytes readable at `p` and writable at `d`; every bit pattern is
    // valid for the fields (integers and pointers).
    unsafe { std::ptr::copy_nonoverlapping(p.cast::<u8>(), (&raw mut d).cast::<u8>(), size) };
    Ok(d)
}

/// Planes a format uses in this descriptor.
fn plane_count(format: u32) -> usize {
    if format == BRIDGE_FORMAT_NV12 { 2 } else { 1 }
}

/// Plane 0 of a single-plane descriptor as the `bridge_image` it is equivalent to (the memory
/// flag, which `bridge_image` does not have, aside).
fn as_image(d: &bridge_image_planes) -> bridge_image {
    bridge_image {
        width: d.width,
        height: d.height,
        stride: d.stride[0],
        format: d.format,
        flags: d.flags & !BRIDGE_IMAGE_MEMORY_CUDA,
        data: d.data[0],
        size: d.size[0],
    }
}

/// The two-plane NV12 layout of a descriptor (format already known to be NV12), its flags
/// checked, and the bytes each plane needs.
fn nv12_layout(d: &bridge_image_planes, what: &str) -> Result<(Nv12Layout, [usize; 2]), Failure> {
    if d.flags & !(BRIDGE_IMAGE_YUV_BT709 | BRIDGE_IMAGE_YUV_FULL_RANGE | BRIDGE_IMAGE_MEMORY_CUDA) != 0 {
        return Err(Failure::invalid(format!("{what}: unknown flags {:#x}", d.flags)));
    }
    let layout = Nv12Layout {
        width: d.width as usize,
        height: d.height as usize,
        y_pitch: d.stride[0],
        uv_pitch: d.stride[1],
        yuv_matrix: if d.flags & BRIDGE_IMAGE_YUV_BT709 != 0 { YuvMatrix::Bt709 } else { YuvMatrix::Bt601 },
        yuv_full_range: d.flags & BRIDGE_IMAGE_YUV_FULL_RANGE != 0,
    };
    let (y, uv) =
        layout.plane_lens().map_err(|e| Failure::new(layout_status(&e), format!("{what}: {e} (stride[0] is luma, stride[1] chroma)")))?;
    Ok((layout, [y, uv]))
}

/// The bytes each plane of a descriptor needs (unused slots 0), after the layout checks.
fn required(d: &bridge_image_planes, what: &str) -> Result<[usize; BRIDGE_MAX_PLANES], Failure> {
    // The format first, so an unknown code is UNSUPPORTED_FORMAT whatever the planes say.
    crate::image::format(d.format).map_err(|e| Failure { message: format!("{what}: {}", e.message), ..e })?;
    let mut need = [0usize; BRIDGE_MAX_PLANES];
    if d.format == BRIDGE_FORMAT_NV12 {
        // Flags, then sizes and pitches in `bridge_image`'s order (`Nv12Layout::plane_lens`).
        let (_, [y, uv]) = nv12_layout(d, what)?;
        need[..2].copy_from_slice(&[y, uv]);
    } else {
        need[0] = crate::image::layout(&as_image(d), what)?.1;
    }
    Ok(need)
}

/// Check a descriptor's planes (pointers, sizes, unused slots; for an output, that its planes
/// do not overlap) and build the frame.
fn frame(d: &bridge_image_planes, what: &str, output: bool) -> Result<Frame, Failure> {
    let need = required(d, what)?;
    let n = plane_count(d.format);
    for k in n..BRIDGE_MAX_PLANES {
        if !d.data[k].is_null() || d.stride[k] != 0 || d.size[k] != 0 {
            return Err(Failure::invalid(format!(
                "{what}: plane {k} is set, but format {} has {n} plane(s) (leave unused planes NULL with stride and size 0)",
                d.format
            )));
        }
    }
    let mut ranges = [(0usize, 0usize); 2];
    for k in 0..n {
        if d.data[k].is_null() {
            return Err(Failure::null(&format!("{what}.data[{k}]")));
        }
        if d.size[k] < need[k] {
            return Err(Failure::new(
                bridge_status::BRIDGE_ERR_BUFFER_TOO_SMALL,
                format!("{what}: plane {k} size is {} bytes, its layout needs {} (stride {})", d.size[k], need[k], d.stride[k]),
            ));
        }
        // A slice may not wrap the address space: such a buffer cannot exist.
        let start = d.data[k] as usize;
        let Some(end) = start.checked_add(need[k]) else {
            return Err(Failure::invalid(format!("{what}: plane {k} at {start:#x} + {} bytes wraps the address space", need[k])));
        };
        ranges[k] = (start, end);
    }
    if output && n == 2 && ranges[0].0 < ranges[1].1 && ranges[1].0 < ranges[0].1 {
        return Err(Failure::invalid(format!(
            "{what}: the output planes overlap (plane 0 at {:#x}..{:#x}, plane 1 at {:#x}..{:#x}); libbridge writes both",
            ranges[0].0, ranges[0].1, ranges[1].0, ranges[1].1
        )));
    }
    let kind = if d.format == BRIDGE_FORMAT_NV12 {
        let (layout, _) = nv12_layout(d, what)?;
        FrameKind::Nv12 { layout, y: d.data[0].cast(), y_len: need[0], uv: d.data[1].cast(), uv_len: need[1] }
    } else {
        let (layout, len) = buffer(&as_image(d), what)?;
        FrameKind::Packed { layout, data: d.data[0].cast(), len }
    };
    Ok(Frame { kind, cuda: d.flags & BRIDGE_IMAGE_MEMORY_CUDA != 0 })
}

/// Fill `*image` with an empty descriptor: `struct_size` set, every other field 0 / NULL.
/// Then set format, width, height, flags and the planes the format uses.
///
/// Ownership: the caller owns `*image`. Thread-safety: any thread.
///
/// # Safety
/// `image` must be NULL or writable for `sizeof(bridge_image_planes)` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bridge_image_planes_init(image: *mut bridge_image_planes) -> bridge_status {
    guard(|| {
        if image.is_null() {
            return Err(Failure::null("image"));
        }
        // SAFETY: non-NULL, writable by contract; `write_unaligned` needs no alignment.
        unsafe { image.write_unaligned(bridge_image_planes::default()) };
        Ok(())
    })
}

/// The bytes each plane of `*image` needs, into `sizes[0..BRIDGE_MAX_PLANES]` (0 for planes
/// the format does not use); `data` and `size` are not looked at. For each plane:
/// `stride·(rows − 1) + one row`. Checks, in this order: `BRIDGE_ERR_INVALID_ARGUMENT`
/// (`struct_size`); `BRIDGE_ERR_UNSUPPORTED_FORMAT`; `BRIDGE_ERR_INVALID_ARGUMENT` (flags other
/// than `BRIDGE_IMAGE_*`); `BRIDGE_ERR_IMAGE_SIZE` (zero width or height); `BRIDGE_ERR_STRIDE`
/// (a plane's stride smaller than its row, or misaligned, as for `bridge_image`);
/// `BRIDGE_ERR_IMAGE_SIZE` (odd NV12 width or height); then each plane's byte count, computed
/// without overflow (more than `PTRDIFF_MAX` is `BRIDGE_ERR_STRIDE` if that stride alone
/// exceeds it, else `BRIDGE_ERR_IMAGE_SIZE`). On failure `sizes` is not written. Allocates
/// nothing.
///
/// Thread-safety: any thread. Ownership: nothing to free.
///
/// # Safety
/// `image` must be NULL or point to a descriptor readable for `min(struct_size, sizeof)`
/// bytes; `sizes` NULL or writable for `BRIDGE_MAX_PLANES` `size_t`s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bridge_image_planes_required_sizes(image: *const bridge_image_planes, sizes: *mut usize) -> bridge_status {
    guard(|| {
        if image.is_null() || sizes.is_null() {
            return Err(Failure::null(if image.is_null() { "image" } else { "sizes" }));
        }
        let d = unsafe { read(image, "image")? };
        let need = required(&d, "image")?;
        // SAFETY: non-NULL, writable for BRIDGE_MAX_PLANES elements by contract; unaligned
        // writes because the caller's array needs no particular alignment here.
        for (k, n) in need.into_iter().enumerate() {
            unsafe { sizes.add(k).write_unaligned(n) };
        }
        Ok(())
    })
}

/// `bridge_restore` for multi-plane descriptors: restore `*input` into `*output`, each in any
/// format (e.g. two-plane NV12 in and out, or NV12 in and RGB8 out). Everything
/// `bridge_restore` documents holds (output size, progress, cancel, statuses, threads); the
/// descriptor checks are those of `bridge_image_planes_required_sizes`, then, per descriptor:
/// unused plane slots not empty (`BRIDGE_ERR_INVALID_ARGUMENT`); for each plane in order, `data`
/// NULL (`BRIDGE_ERR_NULL_ARGUMENT`), `size` short (`BRIDGE_ERR_BUFFER_TOO_SMALL`), a range that
/// wraps the address space (`BRIDGE_ERR_INVALID_ARGUMENT`); for the output, two planes whose
/// byte ranges overlap (`BRIDGE_ERR_INVALID_ARGUMENT`). The full order: the restorer handle;
/// both descriptor pointers (`BRIDGE_ERR_NULL_ARGUMENT`); the input descriptor; the output's
/// `struct_size`, then its width and height against the restorer's output size
/// (`BRIDGE_ERR_IMAGE_SIZE`); the rest of the output descriptor; `BRIDGE_ERR_UNSUPPORTED` if a
/// descriptor has `BRIDGE_IMAGE_MEMORY_CUDA` and the restorer does not run on the CUDA or
/// TensorRT provider; then as `bridge_restore`.
///
/// Device planes (`BRIDGE_IMAGE_MEMORY_CUDA`, on the restorer's GPU) are converted and restored
/// on the GPU where the restore allows it (see `BRIDGE_IMAGE_MEMORY_CUDA`), else copied to the
/// host and back through ONNX Runtime; failures of either are `BRIDGE_ERR_RUNTIME`. libbridge cannot check
/// that a device pointer is valid: an invalid one is the caller's bug, as for host memory.
///
/// The input planes are only read and may overlap each other and the output (the input is
/// converted before anything is written). libbridge reads at most the required bytes of each
/// input plane and writes at most those of each output plane (row padding is not written).
/// On failure the output planes' contents are unspecified.
///
/// Ownership: the caller owns every plane; libbridge keeps no pointer after returning, so the
/// planes need only stay valid (and, for the output, not be read or written by anyone else)
/// for the duration of the call. Thread-safety: as `bridge_restore` (one thread at a time per
/// restorer).
///
/// # Safety
/// `input`/`output` must be NULL or point to descriptors readable for `min(struct_size,
/// sizeof)` bytes whose planes are readable (input) or writable (output) for `size[k]` bytes;
/// `progress` must be NULL or a valid function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bridge_restore_planes(
    restorer: *mut bridge_restorer,
    input: *const bridge_image_planes,
    output: *const bridge_image_planes,
    progress: bridge_progress_fn,
    user_data: *mut c_void,
) -> bridge_status {
    guard(|| {
        let entry = handles::restorer(restorer)?;
        if input.is_null() || output.is_null() {
            return Err(Failure::null(if input.is_null() { "input" } else { "output" }));
        }
        let din = unsafe { read(input, "input")? };
        let fin = frame(&din, "input", false)?;
        let dout = unsafe { read(output, "output")? };
        let read_out = || frame(&dout, "output", true);
        // SAFETY: the planes are readable / writable for `size[k]` ≥ the checked lengths by
        // contract; the output planes were checked not to overlap.
        unsafe { restore_frames(&entry, &fin, (dout.width, dout.height), read_out, progress, user_data) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{BRIDGE_FORMAT_RGB8, bridge_restore};
    use crate::restorer::bridge_restorer_free;
    use crate::status::bridge_status as S;

    /// A fixed byte stream for pixel content (the cases must not change between runs).
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = bridge_export::weights::SplitMix(seed);
        (0..n).map(|_| s.next_u64() as u8).collect()
    }

    fn nv12(w: u32, h: u32, planes: [(&mut [u8], usize); 2]) -> bridge_image_planes {
        let mut d = bridge_image_planes { format: BRIDGE_FORMAT_NV12, width: w, height: h, ..Default::default() };
        for (k, (buf, pitch)) in planes.into_iter().enumerate() {
            d.data[k] = buf.as_mut_ptr().cast();
            d.stride[k] = pitch;
            d.size[k] = buf.len();
        }
        d
    }

    fn image(w: u32, h: u32, stride: usize, format: u32, buf: &mut [u8]) -> bridge_image {
        bridge_image { width: w, height: h, stride, format, flags: 0, data: buf.as_mut_ptr().cast(), size: buf.len() }
    }

    fn sizes(d: &bridge_image_planes) -> Result<[usize; BRIDGE_MAX_PLANES], S> {
        let mut n = [usize::MAX; BRIDGE_MAX_PLANES];
        match unsafe { bridge_image_planes_required_sizes(d, n.as_mut_ptr()) } {
            S::BRIDGE_OK => Ok(n),
            s => Err(s),
        }
    }

    /// Two-plane NV12 at any pitches restores to the same bytes as the one-buffer NV12 of the
    /// same pixels, in both directions, and single-plane formats in plane 0 behave as
    /// `bridge_image`.
    #[test]
    fn planes_restore_like_one_buffer() {
        let r = crate::test_support::oracle_restorer();
        let (w, h, st) = (10usize, 6usize, 14usize);
        let mut one_in = bytes((h + h / 2) * st, 7);
        let mut one_out = vec![0u8; (h + h / 2) * st];
        let din = image(w as u32, h as u32, st, BRIDGE_FORMAT_NV12, &mut one_in);
        let dout = image(w as u32, h as u32, st, BRIDGE_FORMAT_NV12, &mut one_out);
        assert_eq!(unsafe { bridge_restore(r, &din, &dout, None, std::ptr::null_mut()) }, S::BRIDGE_OK);

        // The same pixels in separate planes at other pitches (an odd one too).
        let (yp, uvp) = (16usize, 11usize);
        let mut y = vec![0u8; (h - 1) * yp + w];
        let mut uv = vec![0u8; (h / 2 - 1) * uvp + w];
        for row in 0..h {
            y[row * yp..][..w].copy_from_slice(&one_in[row * st..][..w]);
        }
        for row in 0..h / 2 {
            uv[row * uvp..][..w].copy_from_slice(&one_in[(h + row) * st..][..w]);
        }
        let (oyp, ouvp) = (13usize, 10usize);
        let mut oy = vec![0xEEu8; (h - 1) * oyp + w];
        let mut ouv = vec![0xEEu8; (h / 2 - 1) * ouvp + w];
        let pin = nv12(w as u32, h as u32, [(&mut y, yp), (&mut uv, uvp)]);
        let pout = nv12(w as u32, h as u32, [(&mut oy, oyp), (&mut ouv, ouvp)]);
        assert_eq!(sizes(&pin), Ok([y.len(), uv.len(), 0, 0]));
        assert_eq!(unsafe { bridge_restore_planes(r, &pin, &pout, None, std::ptr::null_mut()) }, S::BRIDGE_OK);
        for row in 0..h {
            assert_eq!(&oy[row * oyp..][..w], &one_out[row * st..][..w], "luma row {row}");
            if row + 1 < h {
                assert!(oy[row * oyp + w..(row + 1) * oyp].iter().all(|&b| b == 0xEE), "luma padding written");
            }
        }
        for row in 0..h / 2 {
            assert_eq!(&ouv[row * ouvp..][..w], &one_out[(h + row) * st..][..w], "chroma row {row}");
        }

        // The one buffer described as two contiguous planes: the same bytes again.
        let mut again = vec![0u8; one_out.len()];
        let (a, b) = one_in.split_at_mut(h * st);
        let pin = nv12(w as u32, h as u32, [(a, st), (b, st)]);
        let (a, b) = again.split_at_mut(h * st);
        let pout = nv12(w as u32, h as u32, [(a, st), (b, st)]);
        assert_eq!(unsafe { bridge_restore_planes(r, &pin, &pout, None, std::ptr::null_mut()) }, S::BRIDGE_OK);
        assert_eq!(again, one_out);

        // NV12 planes in, RGB8 (plane 0) out = one-buffer NV12 in, RGB8 out.
        let mut rgb_a = vec![0u8; w * h * 3];
        let mut rgb_b = vec![0u8; w * h * 3];
        let dout = image(w as u32, h as u32, 3 * w, BRIDGE_FORMAT_RGB8, &mut rgb_a);
        assert_eq!(unsafe { bridge_restore(r, &din, &dout, None, std::ptr::null_mut()) }, S::BRIDGE_OK);
        let pin = nv12(w as u32, h as u32, [(&mut y, yp), (&mut uv, uvp)]);
        let mut pout = bridge_image_planes { format: BRIDGE_FORMAT_RGB8, width: w as u32, height: h as u32, ..Default::default() };
        (pout.data[0], pout.stride[0], pout.size[0]) = (rgb_b.as_mut_ptr().cast(), 3 * w, rgb_b.len());
        assert_eq!(sizes(&pout), Ok([w * h * 3, 0, 0, 0]));
        assert_eq!(unsafe { bridge_restore_planes(r, &pin, &pout, None, std::ptr::null_mut()) }, S::BRIDGE_OK);
        assert_eq!(rgb_a, rgb_b);
        assert_eq!(bridge_restorer_free(r), S::BRIDGE_OK);
    }

    /// Every bad descriptor is its documented status, before any plane byte is touched.
    #[test]
    fn bad_plane_descriptors_are_statuses() {
        let r = crate::test_support::oracle_restorer();
        let (w, h) = (8u32, 4u32);
        let (mut y, mut uv, mut oy, mut ouv) = (vec![16u8; 32], vec![128u8; 16], vec![0u8; 32], vec![0u8; 16]);
        let good_in = nv12(w, h, [(&mut y, 8), (&mut uv, 8)]);
        let good_out = nv12(w, h, [(&mut oy, 8), (&mut ouv, 8)]);
        let run = |i: *const bridge_image_planes, o: *const bridge_image_planes| unsafe {
            bridge_restore_planes(r, i, o, None, std::ptr::null_mut())
        };
        let both = |f: &dyn Fn(&mut bridge_image_planes), want: S| {
            let mut i = good_in;
            f(&mut i);
            assert_eq!(run(&i, &good_out), want, "input {i:?}");
            let mut o = good_out;
            f(&mut o);
            assert_eq!(run(&good_in, &o), want, "output {o:?}");
        };
        assert_eq!(run(&good_in, &good_out), S::BRIDGE_OK);
        assert_eq!(sizes(&good_in), Ok([32, 16, 0, 0]));
        both(&|d| d.struct_size = 0, S::BRIDGE_ERR_INVALID_ARGUMENT);
        both(&|d| d.struct_size = PLANES_V1_SIZE as u32 - 1, S::BRIDGE_ERR_INVALID_ARGUMENT);
        both(&|d| d.struct_size = PLANES_V1_SIZE as u32 + 8, S::BRIDGE_ERR_INVALID_ARGUMENT);
        both(&|d| d.format = 99, S::BRIDGE_ERR_UNSUPPORTED_FORMAT);
        both(&|d| d.flags = 0x40, S::BRIDGE_ERR_INVALID_ARGUMENT);
        both(&|d| d.stride[0] = 7, S::BRIDGE_ERR_STRIDE);
        both(&|d| d.stride[1] = 7, S::BRIDGE_ERR_STRIDE);
        both(&|d| d.stride[1] = -8isize as usize, S::BRIDGE_ERR_STRIDE);
        both(&|d| d.stride[0] = usize::MAX, S::BRIDGE_ERR_STRIDE);
        both(&|d| d.data[0] = std::ptr::null_mut(), S::BRIDGE_ERR_NULL_ARGUMENT);
        both(&|d| d.data[1] = std::ptr::null_mut(), S::BRIDGE_ERR_NULL_ARGUMENT);
        both(&|d| d.size[0] = 31, S::BRIDGE_ERR_BUFFER_TOO_SMALL);
        both(&|d| d.size[1] = 15, S::BRIDGE_ERR_BUFFER_TOO_SMALL);
        both(&|d| d.stride[2] = 8, S::BRIDGE_ERR_INVALID_ARGUMENT);
        both(&|d| d.data[3] = d.data[0], S::BRIDGE_ERR_INVALID_ARGUMENT);
        // A plane range that wraps the address space (never dereferenced).
        both(&|d| (d.data[1], d.size[1]) = (usize::MAX as *mut c_void, usize::MAX), S::BRIDGE_ERR_INVALID_ARGUMENT);
        // Sizes: empty, odd, overflowing; and an output of the wrong size.
        for (dw, dh) in [(0, 4), (8, 0), (7, 4), (8, 3)] {
            let mut i = good_in;
            (i.width, i.height) = (dw, dh);
            assert_eq!(run(&i, &good_out), S::BRIDGE_ERR_IMAGE_SIZE, "{dw}x{dh}");
            assert_eq!(sizes(&i), Err(S::BRIDGE_ERR_IMAGE_SIZE));
        }
        let mut i = good_in;
        (i.width, i.height, i.stride) = (1 << 31, 1 << 31, [1 << 31; BRIDGE_MAX_PLANES]);
        (i.stride[2], i.stride[3]) = (0, 0);
        assert_eq!(sizes(&i), Ok([((1usize << 31) - 1) * (1 << 31) + (1 << 31), ((1usize << 30) - 1) * (1 << 31) + (1 << 31), 0, 0]));
        assert_eq!(run(&i, &good_out), S::BRIDGE_ERR_BUFFER_TOO_SMALL);
        i.stride[0] = 1 << 62;
        assert_eq!(sizes(&i), Err(S::BRIDGE_ERR_IMAGE_SIZE));
        let mut o = good_out;
        o.width = 10;
        assert_eq!(run(&good_in, &o), S::BRIDGE_ERR_IMAGE_SIZE);
        // The output's planes must not overlap (libbridge writes both); the input's may.
        let mut o = good_out;
        (o.data[1], o.size[1]) = (unsafe { o.data[0].cast::<u8>().add(16) }.cast(), 16);
        assert_eq!(run(&good_in, &o), S::BRIDGE_ERR_INVALID_ARGUMENT);
        let mut i = good_in;
        (i.data[1], i.size[1]) = (unsafe { i.data[0].cast::<u8>().add(16) }.cast(), 16);
        assert_eq!(run(&i, &good_out), S::BRIDGE_OK);
        // The input may also be the output (converted before anything is written).
        assert_eq!(run(&good_out, &good_out), S::BRIDGE_OK);
        // CUDA device planes need a restorer on a GPU: a typed refusal on this CPU restorer
        // (the flag itself is valid, so the sizes query accepts it), input or output.
        let mut i = good_in;
        i.flags = crate::image::BRIDGE_IMAGE_MEMORY_CUDA;
        assert_eq!(sizes(&i), Ok([32, 16, 0, 0]));
        assert_eq!(run(&i, &good_out), S::BRIDGE_ERR_UNSUPPORTED);
        let mut o = good_out;
        o.flags = crate::image::BRIDGE_IMAGE_MEMORY_CUDA | crate::image::BRIDGE_IMAGE_YUV_BT709;
        assert_eq!(run(&good_in, &o), S::BRIDGE_ERR_UNSUPPORTED);
        // Checked after the descriptors: a bad one still reports its own status first.
        o.stride[0] = 1;
        assert_eq!(run(&i, &o), S::BRIDGE_ERR_STRIDE);
        // `bridge_image` has no memory flag: there it is an unknown flag, as before.
        let bi = bridge_image { flags: crate::image::BRIDGE_IMAGE_MEMORY_CUDA, ..image(8, 4, 8, BRIDGE_FORMAT_NV12, &mut y) };
        let mut n = 0usize;
        assert_eq!(unsafe { crate::image::bridge_image_required_size(&bi, &mut n) }, S::BRIDGE_ERR_INVALID_ARGUMENT);
        // NULL everywhere.
        assert_eq!(run(std::ptr::null(), &good_out), S::BRIDGE_ERR_NULL_ARGUMENT);
        assert_eq!(run(&good_in, std::ptr::null()), S::BRIDGE_ERR_NULL_ARGUMENT);
        assert_eq!(
            unsafe { bridge_restore_planes(std::ptr::null_mut(), &good_in, &good_out, None, std::ptr::null_mut()) },
            S::BRIDGE_ERR_NULL_ARGUMENT
        );
        assert_eq!(unsafe { bridge_image_planes_required_sizes(&good_in, std::ptr::null_mut()) }, S::BRIDGE_ERR_NULL_ARGUMENT);
        assert_eq!(unsafe { bridge_image_planes_init(std::ptr::null_mut()) }, S::BRIDGE_ERR_NULL_ARGUMENT);
        let mut d = good_in;
        assert_eq!(unsafe { bridge_image_planes_init(&mut d) }, S::BRIDGE_OK);
        assert_eq!((d.struct_size as usize, d.format, d.data[0]), (PLANES_V1_SIZE, 0, std::ptr::null_mut()));
        assert_eq!(bridge_restorer_free(r), S::BRIDGE_OK);
    }
}
