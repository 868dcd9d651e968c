//! A seeded, deterministic mutation test of the image descriptors and the options struct as a
//! hostile C caller would fill them: format codes, flags (YUV range / matrix bits and unknown
//! ones), widths, heights, strides (negative ones cast to `size_t`, huge, misaligned), NULL
//! pointers, buffer sizes, NV12 odd sizes, `struct_size`. Every described buffer is really
//! allocated at its declared size, except where the descriptor is invalid before any byte is
//! read (the library must then reject it without reading). Each case must return the status
//! an independent model of the rules predicts — never a panic (`BRIDGE_ERR_PANIC`) or an abort
//! — and must not write past the output's declared size (canary bytes).
//!
//! Multi-plane descriptors (`bridge_image_planes`, mostly two-plane NV12) are mutated the same
//! way — struct_size, each plane's pitch, pointer and size, planes the format does not have,
//! output planes that overlap — against their own model; valid ones are restored and must
//! equal the one-buffer NV12 restore of the same pixels.
//!
//! Valid cases run the conversion round trip the C ABI uses (`sdk::pixel` on the descriptor's
//! layout); a small subset runs the whole `bridge_restore` through the oracle network and
//! checks its pixels.

// The oracle mirrors the C structs field by field: index loops over parallel arrays and
// field-by-field filling read closer to the header than iterator chains would.
#![allow(clippy::needless_range_loop, clippy::field_reassign_with_default)]

use crate::handles::bridge_restorer;
use crate::image::*;
use crate::restorer::{OPTIONS_V1_SIZE, bridge_restorer_free, bridge_restorer_new, bridge_restorer_options};
use crate::status::bridge_status as S;
use std::ffi::c_void;

/// The rejections both descriptor mutation tests must reach, each at least 20 times.
const DESCRIPTOR_REJECTIONS: [&str; 6] = [
    "BRIDGE_ERR_UNSUPPORTED_FORMAT",
    "BRIDGE_ERR_INVALID_ARGUMENT",
    "BRIDGE_ERR_IMAGE_SIZE",
    "BRIDGE_ERR_STRIDE",
    "BRIDGE_ERR_BUFFER_TOO_SMALL",
    "BRIDGE_ERR_NULL_ARGUMENT",
];

/// A fixed generator (the project's SplitMix64; the cases must not change between runs).
struct Rng(bridge_export::weights::SplitMix);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `p` percent.
    fn pct(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// Largest buffer a case allocates.
const CAP: usize = 1 << 20;

fn bytes_per_pixel(format: u32) -> Option<u128> {
    Some(match format {
        BRIDGE_FORMAT_RGB8 | BRIDGE_FORMAT_BGR8 => 3,
        BRIDGE_FORMAT_RGBA8 | BRIDGE_FORMAT_BGRA8 | BRIDGE_FORMAT_RGB_F32_PLANAR => 4,
        BRIDGE_FORMAT_GRAY8 | BRIDGE_FORMAT_NV12 => 1,
        BRIDGE_FORMAT_RGB16 => 6,
        _ => return None,
    })
}

/// The rules of `bridge_image_required_size`, written out independently (128-bit arithmetic,
/// so nothing here can overflow): the bytes a descriptor needs, or the status it must get.
fn model_required(d: &bridge_image) -> Result<usize, S> {
    let bpp = bytes_per_pixel(d.format).ok_or(S::BRIDGE_ERR_UNSUPPORTED_FORMAT)?;
    if d.flags & !3 != 0 {
        return Err(S::BRIDGE_ERR_INVALID_ARGUMENT);
    }
    if d.width == 0 || d.height == 0 {
        return Err(S::BRIDGE_ERR_IMAGE_SIZE);
    }
    let (w, h, st) = (d.width as u128, d.height as u128, d.stride as u128);
    let row = w * bpp;
    if st < row || (d.format == BRIDGE_FORMAT_RGB_F32_PLANAR && st % 4 != 0) || (d.format == BRIDGE_FORMAT_RGB16 && st % 2 != 0) {
        return Err(S::BRIDGE_ERR_STRIDE);
    }
    let rows = match d.format {
        BRIDGE_FORMAT_NV12 if w % 2 != 0 || h % 2 != 0 => return Err(S::BRIDGE_ERR_IMAGE_SIZE),
        BRIDGE_FORMAT_NV12 => h + h / 2,
        BRIDGE_FORMAT_RGB_F32_PLANAR => 3 * h,
        _ => h,
    };
    let need = (rows - 1) * st + row;
    let max = isize::MAX as u128;
    if need > max {
        return Err(if st > max { S::BRIDGE_ERR_STRIDE } else { S::BRIDGE_ERR_IMAGE_SIZE });
    }
    Ok(need as usize)
}

/// A caller buffer: `len` really allocated bytes (+ canary bytes after them).
struct Buffer {
    bytes: Vec<u8>,
    len: usize,
}

const CANARY: u8 = 0xC5;

impl Buffer {
    fn new(len: usize, rng: &mut Rng) -> Self {
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        bytes.extend_from_slice(&[CANARY; 16]);
        Buffer { bytes, len }
    }
    fn ptr(&mut self) -> *mut c_void {
        self.bytes.as_mut_ptr().cast()
    }
    fn canary_intact(&self) -> bool {
        self.bytes[self.len..].iter().all(|&b| b == CANARY)
    }
}

fn mutate_format(rng: &mut Rng) -> u32 {
    let any = rng.next() as u32;
    if rng.pct(92) { rng.below(8) as u32 + 1 } else { rng.pick(&[0, 9, 100, u32::MAX, any]) }
}

fn mutate_flags(rng: &mut Rng) -> u32 {
    let any = rng.next() as u32;
    if rng.pct(93) { rng.below(4) as u32 } else { rng.pick(&[4, 8, 0x8000_0000, any]) }
}

fn mutate_side(rng: &mut Rng) -> u32 {
    let any = rng.next() as u32;
    if rng.pct(88) { rng.below(9) as u32 + 1 } else { rng.pick(&[0, 1, 2, 3, 65_536, 65_537, 16_384, 1 << 31, u32::MAX, any]) }
}

fn mutate_stride(rng: &mut Rng, row: u128) -> usize {
    let row = usize::try_from(row).unwrap_or(usize::MAX);
    match rng.below(20) {
        0..=8 => row,
        9..=12 => row.saturating_add(rng.below(17) as usize),
        13 => row.saturating_sub(1),
        14 => 0,
        15 => usize::MAX,
        16 => (isize::MAX as usize).wrapping_add(1 + rng.below(4) as usize),
        // A negative stride (bottom-up rows), as `size_t`.
        17 => (-(rng.below(64) as isize + 1)) as usize,
        18 => row.saturating_mul(1 << (rng.below(40) + 8)),
        _ => rng.next() as usize,
    }
}

/// A mutated descriptor of `w`×`h` (or mutated sides), with its buffer.
fn descriptor(rng: &mut Rng, sides: Option<(u32, u32)>) -> (bridge_image, Option<Buffer>, Result<usize, S>) {
    let format = mutate_format(rng);
    let (width, height) = match sides {
        Some(s) if rng.pct(90) => s,
        _ => (mutate_side(rng), mutate_side(rng)),
    };
    let row = bytes_per_pixel(format).unwrap_or(3) * width as u128;
    let mut d = bridge_image {
        width,
        height,
        stride: mutate_stride(rng, row),
        format,
        flags: mutate_flags(rng),
        data: std::ptr::null_mut(),
        size: 0,
    };
    let expect = model_required(&d);
    let mut buf = match expect {
        Ok(need) if need <= CAP => {
            let len = match rng.below(20) {
                0..=12 => need,
                13..=15 => need + rng.below(32) as usize,
                16..=17 => need.saturating_sub(1 + rng.below(3) as usize),
                _ => rng.below(need as u64 + 1) as usize,
            };
            Buffer::new(len, rng)
        }
        // Too big to allocate here: a real small buffer, honestly declared (BUFFER_TOO_SMALL).
        Ok(_) => Buffer::new(rng.below(64) as usize, rng),
        Err(_) => Buffer::new(rng.below(64) as usize, rng),
    };
    d.size = buf.len;
    // An invalid descriptor is rejected before its buffer is read, so it may even claim more
    // bytes than exist (the library must not look).
    if expect.is_err() && rng.pct(20) {
        d.size = usize::MAX;
    }
    if d.format == BRIDGE_FORMAT_RGB_F32_PLANAR {
        // Valid floats in [0, 1] (random bytes would be NaN at times); sometimes one NaN.
        for c in buf.bytes[..buf.len].chunks_exact_mut(4) {
            c.copy_from_slice(&((rng.below(1001) as f32) / 1000.0).to_ne_bytes());
        }
        if buf.len >= 4 && rng.pct(3) {
            buf.bytes[..4].copy_from_slice(&f32::NAN.to_ne_bytes());
        }
    }
    let buf = if rng.pct(3) {
        None
    } else {
        d.data = buf.ptr();
        Some(buf)
    };
    (d, buf, expect)
}

fn required(d: *const bridge_image) -> Result<usize, S> {
    let mut n = 0usize;
    match unsafe { bridge_image_required_size(d, &mut n) } {
        S::BRIDGE_OK => Ok(n),
        s => Err(s),
    }
}

/// What `bridge_restore` must return for a (scale 1) restorer, by the documented order of
/// checks; `None` for a valid pair.
fn model_restore(input: &bridge_image, ein: Result<usize, S>, output: &bridge_image, eout: Result<usize, S>) -> Option<S> {
    let buffer_check = |d: &bridge_image, e: Result<usize, S>| -> Option<S> {
        match e {
            Err(s) => Some(s),
            Ok(_) if d.data.is_null() => Some(S::BRIDGE_ERR_NULL_ARGUMENT),
            Ok(n) if d.size < n => Some(S::BRIDGE_ERR_BUFFER_TOO_SMALL),
            Ok(_) => None,
        }
    };
    if let Some(s) = buffer_check(input, ein) {
        return Some(s);
    }
    if (output.width, output.height) != (input.width, input.height) {
        return Some(S::BRIDGE_ERR_IMAGE_SIZE);
    }
    if let Some(s) = buffer_check(output, eout) {
        return Some(s);
    }
    let (w, h) = (input.width as usize, input.height as usize);
    if w > sdk::restorer::MAX_SIDE || h > sdk::restorer::MAX_SIDE || w * h > sdk::restorer::DEFAULT_MAX_PIXELS {
        return Some(S::BRIDGE_ERR_IMAGE_SIZE);
    }
    if input.format == BRIDGE_FORMAT_RGB_F32_PLANAR {
        // SAFETY: the buffer holds at least the layout's bytes (checked above).
        let first = unsafe { std::slice::from_raw_parts(input.data.cast::<u8>(), 4) };
        if f32::from_ne_bytes([first[0], first[1], first[2], first[3]]).is_nan() {
            return Some(S::BRIDGE_ERR_INVALID_ARGUMENT);
        }
    }
    None
}

/// The SDK layout a valid descriptor maps to (the same mapping `bridge_restore` uses).
fn sdk_layout(d: &bridge_image) -> sdk::pixel::Layout {
    use sdk::pixel::{Layout, PixelFormat as F, YuvMatrix};
    let format = [F::Rgb8, F::Rgba8, F::Bgr8, F::Bgra8, F::Gray8, F::Rgb16, F::RgbF32Planar, F::Nv12][d.format as usize - 1];
    Layout {
        width: d.width as usize,
        height: d.height as usize,
        stride: d.stride,
        format,
        yuv_matrix: if d.flags & BRIDGE_IMAGE_YUV_BT709 != 0 { YuvMatrix::Bt709 } else { YuvMatrix::Bt601 },
        yuv_full_range: d.flags & BRIDGE_IMAGE_YUV_FULL_RANGE != 0,
    }
}

/// Decode → encode into a copy → decode: the formats without subsampling come back exactly
/// (within one 8-bit step for gray's luma); NV12 stays in range.
fn round_trip(d: &bridge_image, need: usize) {
    let l = sdk_layout(d);
    // SAFETY: the case's buffer holds at least `need` bytes.
    let src = unsafe { std::slice::from_raw_parts(d.data.cast::<u8>(), need) };
    let p = sdk::pixel::decode(src, &l).expect("a valid descriptor decodes");
    let mut copy = src.to_vec();
    sdk::pixel::encode(&p, &l, &mut copy).expect("a valid descriptor encodes");
    let q = sdk::pixel::decode(&copy, &l).expect("decodes again");
    let tol = match d.format {
        BRIDGE_FORMAT_NV12 => {
            assert!(q.rgb.iter().all(|v| (0.0..=1.0).contains(v)));
            return;
        }
        BRIDGE_FORMAT_GRAY8 => 1.5 / 255.0,
        _ => 1e-6,
    };
    let err = p.rgb.iter().zip(q.rgb.iter()).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err <= tol, "round trip of {d:?}: {err}");
    assert_eq!(p.alpha, q.alpha);
}

#[test]
fn mutated_descriptors_get_their_status() {
    const CASES: usize = 12_000;
    const NETWORK_RUNS: usize = 150;
    let r = crate::test_support::oracle_restorer();
    let mut rng = Rng(bridge_export::weights::SplitMix(0x5EED_0009));
    let (mut ok, mut rejected, mut ran) = (0usize, std::collections::BTreeMap::<String, usize>::new(), 0usize);
    for case in 0..CASES {
        let (din, mut bin, ein) = descriptor(&mut rng, None);
        // The C query sees exactly what the model predicts.
        assert_eq!(required(&din), ein, "case {case}: bridge_image_required_size({din:?})");
        let (dout, mut bout, eout) = descriptor(&mut rng, Some((din.width, din.height)));
        let null_in = rng.pct(1);
        let null_out = rng.pct(1);
        let expect = if null_in || null_out { Some(S::BRIDGE_ERR_NULL_ARGUMENT) } else { model_restore(&din, ein, &dout, eout) };
        if expect.is_none() && ran >= NETWORK_RUNS {
            // Valid: the conversion the restore would run, without the network.
            round_trip(&din, ein.unwrap());
            ok += 1;
            continue;
        }
        let pin: *const bridge_image = if null_in { std::ptr::null() } else { &din };
        let pout: *const bridge_image = if null_out { std::ptr::null() } else { &dout };
        let got = unsafe { bridge_restore(r, pin, pout, None, std::ptr::null_mut()) };
        assert_eq!(got, expect.unwrap_or(S::BRIDGE_OK), "case {case}: input {din:?}, output {dout:?}");
        if let Some(b) = &bout {
            assert!(b.canary_intact(), "case {case}: wrote past the output's declared size");
        }
        match expect {
            Some(s) => *rejected.entry(format!("{s:?}")).or_default() += 1,
            None => {
                ran += 1;
                check_oracle_pixels(&din, &dout, bin.as_mut(), bout.as_mut());
            }
        }
    }
    assert_eq!(bridge_restorer_free(r), S::BRIDGE_OK);
    eprintln!("{CASES} descriptor cases: {ok} converted, {ran} restored, rejected {rejected:?}");
    // The generator must actually reach every kind of rejection and plenty of valid cases.
    assert!(ok > 1_000 && ran == NETWORK_RUNS, "{ok} valid, {ran} restored");
    for s in DESCRIPTOR_REJECTIONS {
        assert!(rejected.get(s).is_some_and(|&n| n >= 20), "too few {s} cases: {rejected:?}");
    }
}

/// For an RGB8 → RGB8 restore through the oracle: every pixel is `round(255·(0.5·v/255 + 0.375))`.
fn check_oracle_pixels(din: &bridge_image, dout: &bridge_image, bin: Option<&mut Buffer>, bout: Option<&mut Buffer>) {
    let (Some(bin), Some(bout)) = (bin, bout) else { return };
    if din.format != BRIDGE_FORMAT_RGB8 || dout.format != BRIDGE_FORMAT_RGB8 {
        return;
    }
    for y in 0..din.height as usize {
        for x in 0..3 * din.width as usize {
            let v = bin.bytes[y * din.stride + x] as f64;
            let want = ((0.5 * v / 255.0 + 0.375) * 255.0).round() as i32;
            let got = bout.bytes[y * dout.stride + x] as i32;
            assert!((got - want).abs() <= 1, "pixel ({x}, {y}): {got} vs {want}");
        }
    }
}

/// `bridge_restorer_new` with `struct_size` mutated, the options struct allocated at exactly
/// `struct_size` bytes (or, for absurd sizes, at the real struct's size: a garbage
/// `struct_size` must be rejected without reading past the struct).
#[test]
fn mutated_options_struct_size() {
    let path = std::ffi::CString::new(crate::test_support::oracle_path().to_str().unwrap()).unwrap();
    let mut m = std::ptr::null_mut();
    assert_eq!(unsafe { crate::model::bridge_model_load(path.as_ptr(), &mut m) }, S::BRIDGE_OK);
    let ours = std::mem::size_of::<bridge_restorer_options>();
    let template = bridge_restorer_options { threads: 1, ..Default::default() };
    // SAFETY: a plain `repr(C)` struct viewed as bytes.
    let tbytes = unsafe { std::slice::from_raw_parts((&raw const template).cast::<u8>(), ours) }.to_vec();
    let mut rng = Rng(bridge_export::weights::SplitMix(0x0975_0009));
    let mut created = 0;
    for case in 0..1_000 {
        let size: u32 = match rng.below(8) {
            0 => 0,
            1 => rng.below(OPTIONS_V1_SIZE as u64) as u32,
            2 => OPTIONS_V1_SIZE as u32 - 1,
            3 => ours as u32 + 1 + rng.below(64) as u32,
            4 => ours as u32 + 8,
            5 => {
                let any = rng.next() as u32;
                rng.pick(&[4096, 65_536, u32::MAX, any])
            }
            6 if created < 3 => ours as u32,
            _ => ours as u32 + rng.below(4096) as u32 + 1,
        };
        let alloc = if (size as usize) <= 1 << 16 { (size as usize).max(4) } else { ours };
        let mut bytes = vec![0u8; alloc];
        let n = alloc.min(ours);
        bytes[..n].copy_from_slice(&tbytes[..n]);
        // The tail past our struct (a newer header's fields) is zero or random.
        if rng.pct(50) {
            for b in bytes.iter_mut().skip(ours) {
                *b = rng.next() as u8;
            }
        }
        bytes[..4].copy_from_slice(&size.to_ne_bytes());
        let mut r: *mut bridge_restorer = std::ptr::null_mut();
        let st = unsafe { bridge_restorer_new(m, bytes.as_ptr().cast(), &mut r) };
        let want = if size as usize == ours { S::BRIDGE_OK } else { S::BRIDGE_ERR_INVALID_ARGUMENT };
        assert_eq!(st, want, "case {case}: struct_size {size}");
        if st == S::BRIDGE_OK {
            created += 1;
            assert_eq!(bridge_restorer_free(r), S::BRIDGE_OK);
        } else {
            assert!(r.is_null());
        }
    }
    assert_eq!(created, 3);
    assert_eq!(crate::model::bridge_model_free(m), S::BRIDGE_OK);
}

/// `bridge_restorer_new(m, o)` must return `want` (`what` names the case). On `BRIDGE_OK`, the
/// packed RGB8 `input` (`w`×`h`) restored with that restorer, which is then freed; otherwise
/// `None`, and no restorer was made.
fn new_and_restore_rgb8(
    m: *const crate::handles::bridge_model,
    o: &bridge_restorer_options,
    want: S,
    w: u32,
    h: u32,
    input: &[u8],
    what: &str,
) -> Option<Vec<u8>> {
    let mut r: *mut bridge_restorer = std::ptr::null_mut();
    assert_eq!(unsafe { bridge_restorer_new(m, o, &mut r) }, want, "{what}");
    if want != S::BRIDGE_OK {
        assert!(r.is_null(), "{what}");
        return None;
    }
    let mut a = input.to_vec();
    let mut b = vec![0u8; a.len()];
    let din = bridge_image {
        width: w,
        height: h,
        stride: 3 * w as usize,
        format: BRIDGE_FORMAT_RGB8,
        flags: 0,
        data: a.as_mut_ptr().cast(),
        size: a.len(),
    };
    let dout = bridge_image { data: b.as_mut_ptr().cast(), ..din };
    assert_eq!(unsafe { bridge_restore(r, &din, &dout, None, std::ptr::null_mut()) }, S::BRIDGE_OK, "{what}");
    assert_eq!(bridge_restorer_free(r), S::BRIDGE_OK);
    Some(b)
}

/// `color_fix_levels`: an older header's struct (ending at `class_label`) is accepted and leaves
/// it off; 1–16 are accepted, 17 is `BRIDGE_ERR_INVALID_ARGUMENT`; and on the oracle (which
/// changes every pixel to `0.5·v + 0.375`: a brightness cast) the fix brings the output's mean
/// back to the input's while the uncorrected output keeps the cast.
#[test]
fn color_fix_levels_option() {
    let path = std::ffi::CString::new(crate::test_support::oracle_path().to_str().unwrap()).unwrap();
    let mut m = std::ptr::null_mut();
    assert_eq!(unsafe { crate::model::bridge_model_load(path.as_ptr(), &mut m) }, S::BRIDGE_OK);
    let old_size = std::mem::offset_of!(bridge_restorer_options, color_fix_levels);
    let (w, h) = (48u32, 40u32);
    let input: Vec<u8> = (0..(w * h * 3) as usize).map(|i| ((i * 7 + (i / 144) * 3) % 200) as u8).collect();
    let mean = |b: &[u8]| b.iter().map(|&v| v as f64).sum::<f64>() / b.len() as f64;
    let mut means = Vec::new();
    for (levels, size, want) in [
        (0u32, std::mem::size_of::<bridge_restorer_options>(), S::BRIDGE_OK),
        (5, old_size, S::BRIDGE_OK), // an older header: the field is not read
        (5, std::mem::size_of::<bridge_restorer_options>(), S::BRIDGE_OK),
        (16, std::mem::size_of::<bridge_restorer_options>(), S::BRIDGE_OK),
        (17, std::mem::size_of::<bridge_restorer_options>(), S::BRIDGE_ERR_INVALID_ARGUMENT),
    ] {
        let o = bridge_restorer_options { threads: 1, color_fix_levels: levels, struct_size: size as u32, ..Default::default() };
        let Some(b) = new_and_restore_rgb8(m, &o, want, w, h, &input, &format!("levels {levels}, struct_size {size}")) else { continue };
        means.push((levels, size, mean(&b) - mean(&input)));
    }
    let cast = |i: usize| means[i].2;
    // Off (explicitly, or by an older struct): the oracle's cast, 0.375·255 − v/2 ≈ +51 on average.
    assert!(cast(0) > 40.0 && (cast(1) - cast(0)).abs() < 1e-9, "{means:?}");
    // On: within two levels of the input's mean (not exactly: clamped borders make the blur
    // not quite mean-preserving, most with 16 levels on a 48×40 frame; 8-bit rounding).
    for i in [2, 3] {
        assert!(cast(i).abs() < 2.0, "{means:?}");
    }
    assert_eq!(crate::model::bridge_model_free(m), S::BRIDGE_OK);
}

/// The rules of `bridge_image_planes_required_sizes` for the formats the plane mutation uses
/// (NV12: two planes; GRAY8: plane 0), written out independently in 128-bit arithmetic.
fn model_plane_sizes(d: &crate::planes::bridge_image_planes) -> Result<[usize; 4], S> {
    use crate::planes::PLANES_V1_SIZE;
    if d.struct_size as usize != PLANES_V1_SIZE {
        return Err(S::BRIDGE_ERR_INVALID_ARGUMENT);
    }
    if d.format != BRIDGE_FORMAT_NV12 && d.format != BRIDGE_FORMAT_GRAY8 {
        return Err(S::BRIDGE_ERR_UNSUPPORTED_FORMAT);
    }
    // The YUV bits and BRIDGE_IMAGE_MEMORY_CUDA.
    if d.flags & !7 != 0 {
        return Err(S::BRIDGE_ERR_INVALID_ARGUMENT);
    }
    if d.width == 0 || d.height == 0 {
        return Err(S::BRIDGE_ERR_IMAGE_SIZE);
    }
    let (w, h) = (d.width as u128, d.height as u128);
    let planes: &[(u128, u128)] = if d.format == BRIDGE_FORMAT_NV12 {
        &[(h, d.stride[0] as u128), (h / 2, d.stride[1] as u128)]
    } else {
        &[(h, d.stride[0] as u128)]
    };
    if planes.iter().any(|&(_, st)| st < w) {
        return Err(S::BRIDGE_ERR_STRIDE);
    }
    if d.format == BRIDGE_FORMAT_NV12 && (w % 2 != 0 || h % 2 != 0) {
        return Err(S::BRIDGE_ERR_IMAGE_SIZE);
    }
    let max = isize::MAX as u128;
    let mut need = [0usize; 4];
    for (k, &(rows, st)) in planes.iter().enumerate() {
        let n = (rows - 1) * st + w;
        if n > max {
            return Err(if st > max { S::BRIDGE_ERR_STRIDE } else { S::BRIDGE_ERR_IMAGE_SIZE });
        }
        need[k] = n as usize;
    }
    Ok(need)
}

/// What `bridge_restore_planes` must return (scale-1 restorer), by its documented order.
fn model_restore_planes(din: &crate::planes::bridge_image_planes, dout: &crate::planes::bridge_image_planes) -> Option<S> {
    let check = |d: &crate::planes::bridge_image_planes, output: bool| -> Option<S> {
        let need = match model_plane_sizes(d) {
            Err(s) => return Some(s),
            Ok(n) => n,
        };
        let n = if d.format == BRIDGE_FORMAT_NV12 { 2 } else { 1 };
        if (n..4).any(|k| !d.data[k].is_null() || d.stride[k] != 0 || d.size[k] != 0) {
            return Some(S::BRIDGE_ERR_INVALID_ARGUMENT);
        }
        for k in 0..n {
            if d.data[k].is_null() {
                return Some(S::BRIDGE_ERR_NULL_ARGUMENT);
            }
            if d.size[k] < need[k] {
                return Some(S::BRIDGE_ERR_BUFFER_TOO_SMALL);
            }
        }
        let range = |k: usize| (d.data[k] as usize, d.data[k] as usize + need[k]);
        if output && n == 2 && range(0).0 < range(1).1 && range(1).0 < range(0).1 {
            return Some(S::BRIDGE_ERR_INVALID_ARGUMENT);
        }
        None
    };
    if let Some(s) = check(din, false) {
        return Some(s);
    }
    if dout.struct_size as usize != crate::planes::PLANES_V1_SIZE {
        return Some(S::BRIDGE_ERR_INVALID_ARGUMENT);
    }
    if (dout.width, dout.height) != (din.width, din.height) {
        return Some(S::BRIDGE_ERR_IMAGE_SIZE);
    }
    if let Some(s) = check(dout, true) {
        return Some(s);
    }
    // CUDA device planes on the (CPU) oracle restorer.
    if (din.flags | dout.flags) & BRIDGE_IMAGE_MEMORY_CUDA != 0 {
        return Some(S::BRIDGE_ERR_UNSUPPORTED);
    }
    let (w, h) = (din.width as usize, din.height as usize);
    if w > sdk::restorer::MAX_SIDE || h > sdk::restorer::MAX_SIDE || w * h > sdk::restorer::DEFAULT_MAX_PIXELS {
        return Some(S::BRIDGE_ERR_IMAGE_SIZE);
    }
    None
}

/// A mutated multi-plane descriptor (mostly two-plane NV12) with its planes really allocated
/// at their declared sizes (plus canaries).
fn plane_descriptor(rng: &mut Rng, sides: Option<(u32, u32)>) -> (crate::planes::bridge_image_planes, Vec<Buffer>) {
    use crate::planes::{PLANES_V1_SIZE, bridge_image_planes};
    let mut d = bridge_image_planes::default();
    d.struct_size = match rng.below(40) {
        0 => 0,
        1 => PLANES_V1_SIZE as u32 + 8,
        2 => rng.next() as u32,
        _ => PLANES_V1_SIZE as u32,
    };
    d.format = match rng.below(20) {
        0 => BRIDGE_FORMAT_GRAY8,
        1 => rng.pick(&[0, 9, u32::MAX]),
        _ => BRIDGE_FORMAT_NV12,
    };
    (d.width, d.height) = match sides {
        Some(s) if rng.pct(90) => s,
        // Mostly even sides, so that enough NV12 cases are valid.
        _ if rng.pct(70) => (2 * (rng.below(5) as u32 + 1), 2 * (rng.below(5) as u32 + 1)),
        _ => (mutate_side(rng), mutate_side(rng)),
    };
    d.flags = mutate_flags(rng);
    let n = if d.format == BRIDGE_FORMAT_GRAY8 { 1 } else { 2 };
    for k in 0..n {
        d.stride[k] = mutate_stride(rng, d.width as u128);
    }
    let need = model_plane_sizes(&d).ok();
    let mut bufs = Vec::new();
    for k in 0..n {
        let want = need.map_or(0, |n| n[k]);
        let len = match want {
            0 | CAP.. => rng.below(64) as usize,
            _ => match rng.below(20) {
                0..=14 => want,
                15..=17 => want + rng.below(32) as usize,
                _ => want.saturating_sub(1 + rng.below(3) as usize),
            },
        };
        let mut b = Buffer::new(len, rng);
        if !rng.pct(3) {
            d.data[k] = b.ptr();
        }
        d.size[k] = len;
        bufs.push(b);
    }
    // An output whose chroma plane lies inside its luma plane (overlap).
    if n == 2 && rng.pct(3) && d.size[0] > 0 {
        (d.data[1], d.size[1]) = (d.data[0], d.size[0]);
    }
    // A plane the format does not have.
    if rng.pct(2) {
        let k = n + rng.below((4 - n) as u64) as usize;
        match rng.below(3) {
            0 => d.data[k] = bufs[0].ptr(),
            1 => d.stride[k] = d.width as usize,
            _ => d.size[k] = 1,
        }
    }
    (d, bufs)
}

#[test]
fn mutated_plane_descriptors_get_their_status() {
    use crate::planes::{bridge_image_planes_required_sizes, bridge_restore_planes};
    const CASES: usize = 6_000;
    const NETWORK_RUNS: usize = 120;
    let r = crate::test_support::oracle_restorer();
    let mut rng = Rng(bridge_export::weights::SplitMix(0x9_1A4E5));
    let (mut ran, mut rejected) = (0usize, std::collections::BTreeMap::<String, usize>::new());
    for case in 0..CASES {
        let (din, _bin) = plane_descriptor(&mut rng, None);
        let mut sizes = [usize::MAX; 4];
        let got = match unsafe { bridge_image_planes_required_sizes(&din, sizes.as_mut_ptr()) } {
            S::BRIDGE_OK => Ok(sizes),
            s => Err(s),
        };
        assert_eq!(got, model_plane_sizes(&din), "case {case}: required sizes of {din:?}");
        let (dout, bout) = plane_descriptor(&mut rng, Some((din.width, din.height)));
        let expect = model_restore_planes(&din, &dout);
        if expect.is_none() && ran >= NETWORK_RUNS {
            continue;
        }
        let st = unsafe { bridge_restore_planes(r, &din, &dout, None, std::ptr::null_mut()) };
        assert_eq!(st, expect.unwrap_or(S::BRIDGE_OK), "case {case}: input {din:?}, output {dout:?}");
        for b in &bout {
            assert!(b.canary_intact(), "case {case}: wrote past an output plane's declared size");
        }
        match expect {
            Some(s) => *rejected.entry(format!("{s:?}")).or_default() += 1,
            None => {
                ran += 1;
                if din.format == BRIDGE_FORMAT_NV12 && dout.format == BRIDGE_FORMAT_NV12 {
                    check_planes_like_one_buffer(r, &din, &dout);
                }
            }
        }
    }
    assert_eq!(crate::restorer::bridge_restorer_free(r), S::BRIDGE_OK);
    eprintln!("{CASES} plane cases: {ran} restored, rejected {rejected:?}");
    assert_eq!(ran, NETWORK_RUNS);
    for s in DESCRIPTOR_REJECTIONS {
        assert!(rejected.get(s).is_some_and(|&n| n >= 20), "too few {s} cases: {rejected:?}");
    }
    assert!(rejected.get("BRIDGE_ERR_UNSUPPORTED").is_some_and(|&n| n >= 5), "too few CUDA-memory cases: {rejected:?}");
}

/// A valid two-plane NV12 → NV12 restore wrote the same pixels as `bridge_restore` on the
/// same frame packed into one buffer. Planes are read through the descriptors (an input's
/// chroma plane may be its luma buffer).
fn check_planes_like_one_buffer(
    r: *mut bridge_restorer,
    din: &crate::planes::bridge_image_planes,
    dout: &crate::planes::bridge_image_planes,
) {
    let (w, h) = (din.width as usize, din.height as usize);
    // SAFETY: a valid case: each plane holds at least its `size` bytes.
    let plane = |d: &crate::planes::bridge_image_planes, k: usize| unsafe { std::slice::from_raw_parts(d.data[k].cast::<u8>(), d.size[k]) };
    let mut one = vec![0u8; w * h * 3 / 2];
    for row in 0..h {
        one[row * w..][..w].copy_from_slice(&plane(din, 0)[row * din.stride[0]..][..w]);
    }
    for row in 0..h / 2 {
        one[(h + row) * w..][..w].copy_from_slice(&plane(din, 1)[row * din.stride[1]..][..w]);
    }
    let mut out = vec![0u8; one.len()];
    let i = bridge_image {
        width: w as u32,
        height: h as u32,
        stride: w,
        format: BRIDGE_FORMAT_NV12,
        flags: din.flags,
        data: one.as_mut_ptr().cast(),
        size: one.len(),
    };
    let o = bridge_image { flags: dout.flags, data: out.as_mut_ptr().cast(), ..i };
    assert_eq!(unsafe { bridge_restore(r, &i, &o, None, std::ptr::null_mut()) }, S::BRIDGE_OK);
    for row in 0..h {
        assert!(plane(dout, 0)[row * dout.stride[0]..][..w] == out[row * w..][..w], "{w}x{h}: luma row {row} differs");
    }
    for row in 0..h / 2 {
        assert!(plane(dout, 1)[row * dout.stride[1]..][..w] == out[(h + row) * w..][..w], "{w}x{h}: chroma row {row} differs");
    }
}

/// `channel_ensemble`: 0 is the package's choice (`bridge.channel_ensemble`), 1 on, 2 off, 3
/// `BRIDGE_ERR_INVALID_ARGUMENT`. The field lies beyond the previous header's struct (which ended
/// at `color_fix_levels`, tail padding included), so such a struct gets the package's choice even
/// with garbage in that padding. On a tinted network (`fixtures::tinted`: a reddish cast) a grey
/// input stays grey exactly when the ensemble runs.
#[test]
fn channel_ensemble_option() {
    use bridge_export::fixtures;
    let dir = fixtures::scratch_root().join(format!("bridge-ffi-ensemble-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plain = fixtures::save(&fixtures::tinted(), &dir.join("tinted.onnx"));
    let mut g = fixtures::tinted();
    g.meta("bridge.channel_ensemble", "true");
    let asks = fixtures::save(&g, &dir.join("tinted-ensemble.onnx"));
    let full = std::mem::size_of::<bridge_restorer_options>();
    let before = std::mem::offset_of!(bridge_restorer_options, channel_ensemble);
    // The previous header's sizeof: `color_fix_levels` plus tail padding to 8 bytes.
    let old_size = (std::mem::offset_of!(bridge_restorer_options, color_fix_levels) + 4).next_multiple_of(8);
    assert!(old_size <= before, "channel_ensemble must lie beyond the old struct ({old_size} > {before})");
    let (w, h) = (40u32, 24u32);
    let input: Vec<u8> = (0..(w * h) as usize).flat_map(|i| [((i * 11 + (i / 40) * 5) % 230) as u8; 3]).collect();
    // The largest red–blue difference of an RGB8 image.
    let tint = |b: &[u8]| b.chunks(3).map(|p| (p[0] as i32 - p[2] as i32).abs()).max().unwrap();
    // (channel_ensemble, reserved0, struct_size, grey output; None: refused). An older struct
    // (fourth case) gets the package's choice, whatever its padding holds.
    let old = |on: u32, grey: bool| (on, 0xdead_beef, old_size, Some(grey));
    for (pkg, cases) in [
        (&plain, [(0, 0, full, Some(false)), (1, 0, full, Some(true)), (2, 0, full, Some(false)), old(1, false), (3, 0, full, None)]),
        (&asks, [(0, 0, full, Some(true)), (1, 0, full, Some(true)), (2, 0, full, Some(false)), old(2, true), (3, 0, full, None)]),
    ] {
        let path = std::ffi::CString::new(pkg.to_str().unwrap()).unwrap();
        let mut m = std::ptr::null_mut();
        assert_eq!(unsafe { crate::model::bridge_model_load(path.as_ptr(), &mut m) }, S::BRIDGE_OK);
        for (on, reserved, size, grey) in cases {
            let o = bridge_restorer_options {
                threads: 1,
                channel_ensemble: on,
                reserved0: reserved,
                struct_size: size as u32,
                ..Default::default()
            };
            let what = format!("{pkg:?}: channel_ensemble {on}, struct_size {size}");
            let want = if grey.is_some() { S::BRIDGE_OK } else { S::BRIDGE_ERR_INVALID_ARGUMENT };
            let Some(out) = new_and_restore_rgb8(m, &o, want, w, h, &input, &what) else {
                continue;
            };
            if grey == Some(true) {
                assert!(tint(&out) <= 1, "{what}: tint {}", tint(&out));
            } else {
                assert!(tint(&out) >= 20, "{what}: the tinted network's cast is missing ({})", tint(&out));
            }
        }
        assert_eq!(crate::model::bridge_model_free(m), S::BRIDGE_OK);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
