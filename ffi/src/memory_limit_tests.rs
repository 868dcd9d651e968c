//! `bridge_restore` under a memory cap, in a child process (the cap must not constrain the
//! other tests): the size limits are checked before anything is allocated, and an allocation
//! the system refuses is `BRIDGE_ERR_OUT_OF_MEMORY` — never an abort.
//!
//! The test re-runs itself in a child process that lowers `RLIMIT_AS` and prints the statuses it
//! got (`bridge_export::memcap`); the parent checks that the child exited normally and what it
//! printed.
#![cfg(all(target_os = "linux", target_pointer_width = "64"))]

use crate::image::{BRIDGE_FORMAT_GRAY8, bridge_image, bridge_restore};
use crate::restorer::bridge_restorer_free;
use crate::status::bridge_status as S;
use bridge_export::memcap::{self, address_space, cap_address_space, is_child};

fn gray(w: u32, h: u32, buf: &mut [u8]) -> bridge_image {
    bridge_image {
        width: w,
        height: h,
        stride: w as usize,
        format: BRIDGE_FORMAT_GRAY8,
        flags: 0,
        data: buf.as_mut_ptr().cast(),
        size: buf.len(),
    }
}

/// Run `test` (this module's test of that name) in a child with a lowered address-space
/// limit ([`bridge_export::memcap::in_child`]); the child's stdout.
fn in_child(test: &str) -> String {
    memcap::in_child(&format!("memory_limit_tests::{test}"))
}

/// A 16384² frame (4× the restorer's pixel limit) is refused with `BRIDGE_ERR_IMAGE_SIZE`
/// before its 3 GiB planar copy is allocated: under a cap of 512 MiB above what the process
/// uses, the old order (convert, then check) aborted.
#[test]
fn oversized_frame_is_refused_before_allocating() {
    if !is_child() {
        let out = in_child("oversized_frame_is_refused_before_allocating");
        assert!(out.contains("status BRIDGE_ERR_IMAGE_SIZE"), "{out}");
        return;
    }
    let r = crate::test_support::oracle_restorer();
    let side = 16_384u32;
    // Zeroed pages are mapped lazily: the 256 MiB buffers cost address space, not memory.
    let (mut a, mut b) = (vec![0u8; (side * side) as usize], vec![0u8; (side * side) as usize]);
    let (din, dout) = (gray(side, side, &mut a), gray(side, side, &mut b));
    cap_address_space(address_space() + (512 << 20));
    let st = unsafe { bridge_restore(r, &din, &dout, None, std::ptr::null_mut()) };
    println!("status {st:?}");
    assert_eq!(bridge_restorer_free(r), S::BRIDGE_OK);
}

/// A frame just under the pixel limit (5792² ≈ 2²⁵) passes the checks; with only 64 MiB of
/// address space to spare, its 400 MB planar copy is refused by the allocator:
/// `BRIDGE_ERR_OUT_OF_MEMORY`. With the cap lifted, the same restorer restores a small frame.
#[test]
fn refused_allocation_is_a_status() {
    if !is_child() {
        let out = in_child("refused_allocation_is_a_status");
        assert!(out.contains("capped BRIDGE_ERR_OUT_OF_MEMORY"), "{out}");
        assert!(out.contains("after BRIDGE_OK"), "{out}");
        return;
    }
    let r = crate::test_support::oracle_restorer();
    let side = 5_792u32;
    assert!((side as usize).pow(2) <= sdk::restorer::DEFAULT_MAX_PIXELS);
    let (mut a, mut b) = (vec![0u8; (side * side) as usize], vec![0u8; (side * side) as usize]);
    let (din, dout) = (gray(side, side, &mut a), gray(side, side, &mut b));
    let old = cap_address_space(address_space() + (64 << 20));
    let st = unsafe { bridge_restore(r, &din, &dout, None, std::ptr::null_mut()) };
    cap_address_space(old);
    println!("capped {st:?}");
    let msg = unsafe { std::ffi::CStr::from_ptr(crate::status::bridge_last_error()) }.to_string_lossy().into_owned();
    println!("message {msg}");
    let (mut c, mut d) = (vec![100u8; 64], vec![0u8; 64]);
    let st = unsafe { bridge_restore(r, &gray(8, 8, &mut c), &gray(8, 8, &mut d), None, std::ptr::null_mut()) };
    println!("after {st:?}");
    assert_eq!(bridge_restorer_free(r), S::BRIDGE_OK);
}

/// The whole frame through the sampler (`BRIDGE_TILE_NONE`): a 2048² frame (48 MB per frame
/// tensor) passes the checks and is restored under caps rising by half a frame from one
/// frame above what the process uses. Each capped restore either succeeds or is
/// `BRIDGE_ERR_OUT_OF_MEMORY` (the child would die of SIGABRT otherwise); the lowest caps
/// are refused past the conversion, in the sampler's buffers; after each refusal a small
/// restore under the same cap succeeds, and the first successful capped restore equals the
/// uncapped one.
#[test]
fn whole_frame_sampling_refused_allocation_is_a_status() {
    if !is_child() {
        let out = in_child("whole_frame_sampling_refused_allocation_is_a_status");
        assert!(out.contains("refused in the sampler"), "{out}");
        assert!(out.contains("restored under the cap"), "{out}");
        return;
    }
    let o = crate::restorer::bridge_restorer_options { threads: 1, tile_size: crate::restorer::BRIDGE_TILE_NONE, ..Default::default() };
    let r = crate::test_support::oracle_restorer_with(o);
    let side = 2_048u32;
    let n = (side * side) as usize;
    let input: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
    let restore = |src: &[u8], w: u32, h: u32| -> (S, Vec<u8>) {
        let (mut a, mut b) = (src.to_vec(), vec![0u8; src.len()]);
        let st = unsafe { bridge_restore(r, &gray(w, h, &mut a), &gray(w, h, &mut b), None, std::ptr::null_mut()) };
        (st, b)
    };
    // Uncapped first: the expected outputs; ONNX Runtime's and the thread pools are set up.
    let (st, want) = restore(&input, side, side);
    assert_eq!(st, S::BRIDGE_OK);
    let small: Vec<u8> = (0..64u32).map(|i| (i * 5) as u8).collect();
    let (st, want_small) = restore(&small, 8, 8);
    assert_eq!(st, S::BRIDGE_OK);
    // The caller's buffers exist before the cap.
    let (mut a, mut b) = (input.clone(), vec![0u8; n]);
    let (din, dout) = (gray(side, side, &mut a), gray(side, side, &mut b));
    let (mut sa, mut sb) = (small.clone(), vec![0u8; 64]);
    let (sin, sout) = (gray(8, 8, &mut sa), gray(8, 8, &mut sb));
    let frame = (n * 3 * 4) as u64;
    let base = address_space();
    for k in 2..=40u64 {
        let old = cap_address_space(base + k * frame / 2);
        let st = unsafe { bridge_restore(r, &din, &dout, None, std::ptr::null_mut()) };
        let msg = unsafe { std::ffi::CStr::from_ptr(crate::status::bridge_last_error()) }.to_string_lossy().into_owned();
        let after = unsafe { bridge_restore(r, &sin, &sout, None, std::ptr::null_mut()) };
        cap_address_space(old);
        println!("cap {k}/2 frames: {st:?} ({msg}); small {after:?}");
        assert_eq!(after, S::BRIDGE_OK, "small restore under cap {k}");
        assert_eq!(sb, want_small);
        match st {
            S::BRIDGE_OK => {
                assert_eq!(b, want, "capped restore differs");
                println!("restored under the cap");
                break;
            }
            S::BRIDGE_ERR_OUT_OF_MEMORY => {
                if !msg.contains("planar RGB image") && !msg.contains("model-range image") {
                    println!("refused in the sampler");
                }
            }
            other => panic!("cap {k}: {other:?} ({msg})"),
        }
    }
    assert_eq!(bridge_restorer_free(r), S::BRIDGE_OK);
}

/// ONNX Runtime's own allocations (its arena, the network's intermediate tensors and output):
/// a fresh restorer's first whole-frame restore under rising caps. ONNX Runtime reports a
/// refused allocation as a failed run, which libbridge returns as
/// `BRIDGE_ERR_OUT_OF_MEMORY` like its own refusals; never an abort.
#[test]
fn onnx_runtime_refused_allocation_is_a_status() {
    if !is_child() {
        let out = in_child("onnx_runtime_refused_allocation_is_a_status");
        assert!(out.contains("refused by ONNX Runtime"), "{out}");
        assert!(out.contains("restored under the cap"), "{out}");
        return;
    }
    let o = crate::restorer::bridge_restorer_options { threads: 1, tile_size: crate::restorer::BRIDGE_TILE_NONE, ..Default::default() };
    let side = 2_048u32;
    let n = (side * side) as usize;
    let (mut a, mut b) = ((0..n).map(|i| (i * 37 % 251) as u8).collect::<Vec<u8>>(), vec![0u8; n]);
    let (din, dout) = (gray(side, side, &mut a), gray(side, side, &mut b));
    let frame = (n * 3 * 4) as u64;
    for k in 2..=40u64 {
        let r = crate::test_support::oracle_restorer_with(o);
        let base = address_space();
        let old = cap_address_space(base + k * frame / 2);
        let st = unsafe { bridge_restore(r, &din, &dout, None, std::ptr::null_mut()) };
        let msg = unsafe { std::ffi::CStr::from_ptr(crate::status::bridge_last_error()) }.to_string_lossy().into_owned();
        cap_address_space(old);
        println!("fresh cap {k}/2 frames: {st:?} ({msg})");
        assert_eq!(bridge_restorer_free(r), S::BRIDGE_OK);
        match st {
            S::BRIDGE_OK => {
                println!("restored under the cap");
                break;
            }
            S::BRIDGE_ERR_OUT_OF_MEMORY if msg.contains("ONNX Runtime") => println!("refused by ONNX Runtime"),
            S::BRIDGE_ERR_OUT_OF_MEMORY => {}
            other => panic!("cap {k}: {other:?} ({msg})"),
        }
    }
}
