//! Caller frames in device memory converted on the device: the [`super::pixel_graph`] models
//! run on the memory's provider with the caller's planes as their inputs (decode) or outputs
//! (encode), wrapped as ONNX Runtime values over the existing memory, so the frame's bytes do
//! not go through the host. The float frame is a value in the same memory, for the device
//! loop.
//!
//! [`Memory::Host`] runs the same graphs on the CPU provider over host memory: CPU-only tests
//! take this path bit for bit (only the CUDA provider itself needs a GPU).

use super::device_memory::Memory;
use super::env;
use super::ep::{CudaOptions, ExecutionProvider};
use super::pixel_graph::{self, FrameLayout, ModelRange, names};
use crate::{Error, Result};
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{OutputSelector, RunOptions, Session, SessionInputValue};
use ort::value::{Shape, Tensor as OrtTensor, TensorRefMut, TensorValueType};
use std::sync::Mutex;

/// Which graph, for which frame, network and memory.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Key {
    memory: Memory,
    layout: FrameLayout,
    range: ModelRange,
    encode: bool,
}

/// Built sessions, most recent last; a few frame layouts at a time (a camera's) stay built.
static SESSIONS: Mutex<Vec<(Key, Session)>> = Mutex::new(Vec::new());
const KEEP: usize = 8;

fn rt<E: std::fmt::Display>(what: &str, m: Memory) -> impl Fn(E) -> Error + '_ {
    move |e| Error::Runtime(format!("{what} ({m:?} memory): {e}"))
}

fn info(memory: Memory) -> Result<MemoryInfo<'static>> {
    let (device, id) = match memory {
        Memory::Host => (AllocationDevice::CPU, 0),
        Memory::Cuda { device_id } => (AllocationDevice::CUDA, device_id),
    };
    MemoryInfo::new(device, id, AllocatorType::Device, MemoryType::Default).map_err(rt("memory info", memory))
}

fn session(memory: Memory, model: &[u8]) -> Result<Session> {
    let environment = env::environment(None)?;
    let mut b = Session::builder(&environment).map_err(rt("pixel graph session", memory))?;
    b = b.with_intra_threads(1).map_err(rt("pixel graph session", memory))?;
    if let Memory::Cuda { device_id } = memory {
        let eps = ExecutionProvider::Cuda(CudaOptions { device_id, ..CudaOptions::default() }).dispatch()?;
        b = b.with_execution_providers(eps).map_err(|e| Error::ProviderUnavailable { provider: "cuda".into(), reason: e.to_string() })?;
    }
    b.commit_from_memory(model).map_err(rt("pixel graph", memory))
}

/// Run `f` with the session of `key`, building it on first use.
fn with_session<T>(key: Key, f: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
    let mut sessions = SESSIONS.lock().unwrap_or_else(|p| p.into_inner());
    let k = match sessions.iter().position(|(k, _)| *k == key) {
        Some(k) => k,
        None => {
            let model =
                if key.encode { pixel_graph::encode(&key.layout, key.range)? } else { pixel_graph::decode(&key.layout, key.range)? };
            if sessions.len() >= KEEP {
                sessions.remove(0);
            }
            sessions.push((key, session(key.memory, &model)?));
            sessions.len() - 1
        }
    };
    f(&mut sessions[k].1)
}

fn len_shape(len: usize) -> Result<Shape> {
    let n = i64::try_from(len).map_err(|_| Error::param("plane", format!("{len} bytes do not fit a tensor")))?;
    Ok(Shape::new([n]))
}

/// Check the plane pointers against the layout: one per plane, none NULL.
fn check(planes: &[*mut u8], dims: &[(usize, usize, usize)]) -> Result<()> {
    if planes.len() != dims.len() {
        return Err(Error::param("planes", format!("{} given, the layout has {}", planes.len(), dims.len())));
    }
    if planes.iter().any(|p| p.is_null()) {
        return Err(Error::param("planes", "a plane pointer is NULL"));
    }
    Ok(())
}

/// Convert the frame `planes` (laid out as `layout`, in `memory`) to a `[1, 3, H, W]` float
/// frame in the range and channel order `range`, allocated in `memory`: the host's
/// `pixel::decode_nv12` / `pixel::decode` then `restore_rgb`'s mapping, bit for bit. ONNX
/// Runtime's environment must exist.
///
/// # Safety
/// Each `planes[k]` must point to the layout's bytes of plane k in `memory`
/// ([`pixel_graph::plane_len`]), readable and not written by anyone during the call.
pub unsafe fn decode(planes: &[*mut u8], layout: &FrameLayout, range: ModelRange, memory: Memory) -> Result<OrtTensor<f32>> {
    let dims = layout.planes()?;
    check(planes, &dims)?;
    let (w, h) = layout.size();
    let mut inputs = Vec::new();
    for (k, (&p, &(rows, pitch, row))) in planes.iter().zip(&dims).enumerate() {
        let shape = len_shape(pixel_graph::plane_len(rows, pitch, row))?;
        // SAFETY: readable for the plane's bytes in `memory` by contract; only read.
        let v = unsafe { TensorRefMut::<u8>::from_raw(info(memory)?, p.cast(), shape) }.map_err(rt("wrapping a plane", memory))?;
        inputs.push((names::plane(k), v));
    }
    with_session(Key { memory, layout: *layout, range, encode: false }, |s| {
        let alloc = allocator(s, memory)?;
        let x = OrtTensor::<f32>::new(&alloc, [1usize, 3, h, w]).map_err(rt("frame allocation", memory))?;
        let opts = RunOptions::new().map_err(rt("run options", memory))?.with_outputs(OutputSelector::default().preallocate(names::X, x));
        let mut out = s.run_with_options(inputs, &opts).map_err(rt("device decode", memory))?;
        let x = out.remove(names::X).ok_or_else(|| Error::Runtime("device decode: no output".into()))?;
        x.downcast::<TensorValueType<f32>>().map_err(rt("device decode", memory))
    })
}

/// Write the `[1, 3, H, W]` float frame `x` (in `memory`, range and channel order `range`) into
/// the frame `planes`: `restore_rgb`'s mapping back then the host's `pixel::encode_nv12` /
/// `pixel::encode`, bit for bit. Row padding keeps its bytes (the graph reads them and
/// writes them back unchanged), so the caller sees only the pixels change. ONNX Runtime's
/// environment must exist.
///
/// # Safety
/// Each `planes[k]` must point to the layout's bytes of plane k in `memory`, writable, not
/// overlapping another plane and not accessed by anyone else during the call.
pub unsafe fn encode(x: &OrtTensor<f32>, planes: &[*mut u8], layout: &FrameLayout, range: ModelRange, memory: Memory) -> Result<()> {
    let dims = layout.planes()?;
    check(planes, &dims)?;
    let (w, h) = layout.size();
    let want = [1i64, 3, h as i64, w as i64];
    if x.shape()[..] != want[..] {
        return Err(Error::shape("frame to encode", &[1, 3, h, w], &x.shape().iter().map(|&d| d as usize).collect::<Vec<_>>()));
    }
    with_session(Key { memory, layout: *layout, range, encode: true }, |s| {
        let alloc = allocator(s, memory)?;
        let mut inputs: Vec<(String, SessionInputValue<'_>)> = vec![(names::X.into(), x.into())];
        let mut sel = OutputSelector::default();
        for (k, &(rows, pitch, row)) in dims.iter().enumerate() {
            let len = pixel_graph::plane_len(rows, pitch, row);
            if pixel_graph::keeps_padding(rows, pitch, row) {
                // SAFETY: readable by contract; only read (before anything is written).
                let old = unsafe { TensorRefMut::<u8>::from_raw(info(memory)?, planes[k].cast(), len_shape(len)?) }
                    .map_err(rt("wrapping a plane", memory))?;
                inputs.push((names::old(k), old.into()));
            }
            let out = OrtTensor::<u8>::new(&alloc, [len]).map_err(rt("plane allocation", memory))?;
            sel = sel.preallocate(names::out(k), out);
        }
        let opts = RunOptions::new().map_err(rt("run options", memory))?.with_outputs(sel);
        let mut outs = s.run_with_options(inputs, &opts).map_err(rt("device encode", memory))?;
        // The new planes into the caller's memory: one copy in `memory` each. (The graph cannot
        // write there itself: `ort` binds only its own allocations as outputs of a run with
        // borrowed inputs, and binding a borrowed input deadlocks its copy session.)
        for (k, &(rows, pitch, row)) in dims.iter().enumerate() {
            let len = pixel_graph::plane_len(rows, pitch, row);
            let v = outs.remove(names::out(k).as_str()).ok_or_else(|| Error::Runtime("device encode: an output is missing".into()))?;
            let v = v.downcast::<TensorValueType<u8>>().map_err(rt("device encode", memory))?;
            // SAFETY: writable by contract; not overlapping another plane.
            let dst = unsafe { TensorRefMut::<u8>::from_raw(info(memory)?, planes[k].cast(), len_shape(len)?) }
                .map_err(rt("wrapping a plane", memory))?;
            v.copy_into(dst).map_err(rt("plane write", memory))?;
        }
        Ok(())
    })
}

/// Where a graph's own outputs live: the session's device allocator for CUDA, host memory for
/// [`Memory::Host`].
fn allocator(s: &Session, memory: Memory) -> Result<Allocator> {
    match memory {
        Memory::Host => Ok(Allocator::default()),
        Memory::Cuda { .. } => Allocator::new(s, info(memory)?).map_err(rt("device allocator", memory)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;
    use crate::pixel::{self, Layout, Nv12Layout, PixelFormat, Planar, YuvMatrix};

    fn setup() {
        bridge_export::fixtures::ensure_ort();
        env::environment(None).unwrap();
    }

    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = bridge_export::weights::SplitMix(seed);
        (0..n).map(|_| s.next_u64() as u8).collect()
    }

    /// Model-range floats, a fifth of the range past each end so the clamps are exercised.
    fn frame(h: usize, w: usize, r: ModelRange, seed: u64) -> Vec<f32> {
        let mut s = bridge_export::weights::SplitMix(seed);
        let span = r.hi - r.lo;
        (0..3 * h * w).map(|_| r.lo - 0.2 * span + 1.4 * span * ((s.next_u64() >> 40) as f32 / (1u64 << 24) as f32)).collect()
    }

    const RANGES: [ModelRange; 2] = [ModelRange { lo: 0.0, hi: 1.0, bgr: false }, ModelRange { lo: -1.0, hi: 1.0, bgr: true }];

    /// `restore_rgb`'s mapping of a host-decoded frame into the model's range and order.
    fn to_model(p: &Planar, r: ModelRange) -> Vec<f32> {
        let mut rgb = p.rgb.view();
        if r.bgr {
            rgb.invert_axis(ndarray::Axis(1));
        }
        rgb.iter().map(|&v| r.lo + (r.hi - r.lo) * v).collect()
    }

    /// `restore_rgb`'s mapping of a model-range frame back to planar RGB in `[0, 1]`.
    fn from_model(x: &[f32], h: usize, w: usize, r: ModelRange) -> Planar {
        let mut t =
            Tensor::from_shape_vec((1, 3, h, w), x.iter().map(|&v| ((v - r.lo) / (r.hi - r.lo)).clamp(0.0, 1.0)).collect()).unwrap();
        if r.bgr {
            t.invert_axis(ndarray::Axis(1));
            t = t.as_standard_layout().to_owned();
        }
        Planar { rgb: t, alpha: None }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    fn nv12_layouts() -> Vec<Nv12Layout> {
        let mut out = Vec::new();
        // Pitch > width on both planes (an odd one), chroma of odd width (10/2 = 5 pairs) and odd
        // height (6/2 = 3 rows), tight planes, a 2×2 frame (one chroma row: no padding read).
        for (w, h, yp, uvp) in [(10, 6, 13, 16), (6, 4, 6, 6), (2, 2, 5, 2), (14, 10, 16, 15)] {
            for (m, full) in [(YuvMatrix::Bt601, false), (YuvMatrix::Bt709, true), (YuvMatrix::Bt601, true), (YuvMatrix::Bt709, false)] {
                out.push(Nv12Layout { width: w, height: h, y_pitch: yp, uv_pitch: uvp, yuv_matrix: m, yuv_full_range: full });
            }
        }
        out
    }

    /// NV12 planes decode on the pixel graph to the host's bits, then `restore_rgb`'s mapping.
    #[test]
    fn nv12_decode_matches_host_bits() {
        setup();
        for (i, l) in nv12_layouts().into_iter().enumerate() {
            let (ny, nuv) = l.plane_lens().unwrap();
            let (mut y, mut uv) = (bytes(ny, 3 * i as u64), bytes(nuv, 7 * i as u64 + 1));
            let host = pixel::decode_nv12(&y, &uv, &l).unwrap();
            for r in RANGES {
                let x = unsafe { decode(&[y.as_mut_ptr(), uv.as_mut_ptr()], &FrameLayout::Nv12(l), r, Memory::Host) }.unwrap();
                assert_eq!(x.shape()[..], [1, 3, l.height as i64, l.width as i64]);
                assert_eq!(bits(x.extract_tensor().1), bits(&to_model(&host, r)), "{l:?} {r:?}");
            }
        }
    }

    /// Model-range frames (past both ends of the range) encode on the pixel graph to the host's
    /// NV12 bytes; row padding keeps its bytes.
    #[test]
    fn nv12_encode_matches_host_bytes() {
        setup();
        for (i, l) in nv12_layouts().into_iter().enumerate() {
            let (ny, nuv) = l.plane_lens().unwrap();
            for r in RANGES {
                let x = frame(l.height, l.width, r, 11 * i as u64);
                let (mut hy, mut huv) = (bytes(ny, 5), bytes(nuv, 6));
                let (mut dy, mut duv) = (hy.clone(), huv.clone());
                let before = (hy.clone(), huv.clone());
                pixel::encode_nv12(&from_model(&x, l.height, l.width, r), &l, &mut hy, &mut huv).unwrap();
                let xt = OrtTensor::from_array(([1usize, 3, l.height, l.width], x.clone())).unwrap();
                unsafe { encode(&xt, &[dy.as_mut_ptr(), duv.as_mut_ptr()], &FrameLayout::Nv12(l), r, Memory::Host) }.unwrap();
                assert_eq!(dy, hy, "{l:?} {r:?} luma");
                assert_eq!(duv, huv, "{l:?} {r:?} chroma");
                // The padding really is the old bytes (the host path writes none either).
                for row in 0..l.height - 1 {
                    assert_eq!(
                        dy[row * l.y_pitch + l.width..(row + 1) * l.y_pitch],
                        before.0[row * l.y_pitch + l.width..(row + 1) * l.y_pitch]
                    );
                }
                for row in 0..l.height / 2 - 1 {
                    assert_eq!(
                        duv[row * l.uv_pitch + l.width..(row + 1) * l.uv_pitch],
                        before.1[row * l.uv_pitch + l.width..(row + 1) * l.uv_pitch]
                    );
                }
            }
        }
    }

    /// Packed RGB8 / BGR8 (padded rows or not) decode and encode to the host's bits and bytes.
    #[test]
    fn rgb8_matches_host() {
        setup();
        for (i, (w, h, pad)) in [(7usize, 5usize, 4usize), (4, 3, 0), (1, 1, 0), (3, 4, 1)].into_iter().enumerate() {
            for format in [PixelFormat::Rgb8, PixelFormat::Bgr8] {
                let mut l = Layout::packed(w, h, format).unwrap();
                l.stride += pad;
                let n = l.required_len().unwrap();
                let fl = FrameLayout::Packed8 { width: w, height: h, stride: l.stride, format };
                let mut buf = bytes(n, 13 + i as u64);
                let host = pixel::decode(&buf, &l).unwrap();
                for r in RANGES {
                    let x = unsafe { decode(&[buf.as_mut_ptr()], &fl, r, Memory::Host) }.unwrap();
                    assert_eq!(bits(x.extract_tensor().1), bits(&to_model(&host, r)), "{l:?} {r:?}");

                    let x = frame(h, w, r, 17 + i as u64);
                    let mut want = bytes(n, 19);
                    let mut got = want.clone();
                    pixel::encode(&from_model(&x, h, w, r), &l, &mut want).unwrap();
                    let xt = OrtTensor::from_array(([1usize, 3, h, w], x)).unwrap();
                    unsafe { encode(&xt, &[got.as_mut_ptr()], &fl, r, Memory::Host) }.unwrap();
                    assert_eq!(got, want, "{l:?} {r:?}");
                }
            }
        }
    }

    /// Bad calls are typed errors, before anything runs.
    #[test]
    fn bad_frames_are_errors() {
        setup();
        let r = RANGES[0];
        let mut y = vec![0u8; 64];
        let l = FrameLayout::Nv12(Nv12Layout::new(4, 4));
        assert!(unsafe { decode(&[y.as_mut_ptr()], &l, r, Memory::Host) }.is_err(), "one plane for NV12");
        assert!(unsafe { decode(&[y.as_mut_ptr(), std::ptr::null_mut()], &l, r, Memory::Host) }.is_err(), "NULL plane");
        let odd = FrameLayout::Nv12(Nv12Layout::new(3, 4));
        assert!(unsafe { decode(&[y.as_mut_ptr(), y.as_mut_ptr()], &odd, r, Memory::Host) }.is_err(), "odd NV12 width");
        let gray = FrameLayout::Packed8 { width: 4, height: 4, stride: 4, format: PixelFormat::Gray8 };
        assert!(unsafe { decode(&[y.as_mut_ptr()], &gray, r, Memory::Host) }.is_err(), "no graph for gray");
        let x = OrtTensor::from_array(([1usize, 3, 2, 4], vec![0f32; 24])).unwrap();
        let (mut a, mut b) = (vec![0u8; 16], vec![0u8; 8]);
        assert!(unsafe { encode(&x, &[a.as_mut_ptr(), b.as_mut_ptr()], &l, r, Memory::Host) }.is_err(), "frame of the wrong size");
    }
}
