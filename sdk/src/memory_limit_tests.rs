//! Whole-frame restores under a memory cap, in a child process (the cap must not constrain the
//! other tests): wherever in the sampler the cap is reached, the restore returns
//! [`Error::OutOfMemory`] — never an abort — and the restorer keeps working.
//!
//! The test re-runs itself in a child process that lowers `RLIMIT_AS` and prints what it got
//! (`bridge_export::memcap`, shared with the C ABI's `memory_limit_tests`); the parent checks
//! that the child exited normally and what it printed.
#![cfg(all(target_os = "linux", target_pointer_width = "64"))]

use crate::family::Family;
use crate::family::ddbm::{Ddbm, DdbmParams};
use crate::family::gou::{Gou, GouParams};
use crate::family::rdbm::{Rdbm, RdbmParams};
use crate::restorer::{DEFAULT_MAX_PIXELS, RestoreOptions, Restorer};
use crate::runtime::package::PackageMeta;
use crate::sampler::Sampler;
use crate::sampler::dbmsolver::Midpoint;
use crate::tile::TileConfig;
use crate::{Error, FnDenoiser, Result, Tensor, TensorView};

use bridge_export::memcap::{address_space, cap_address_space, in_child, is_child};

/// A network whose output (like everything else of the restore) is allocated fallibly, so
/// the cap is met by the restorer's own buffers; nonlinear in both inputs.
fn net(x: TensorView<'_>, c: TensorView<'_>, _t: f64) -> Result<Tensor> {
    let mut o: Tensor = crate::alloc::try_zeros(x.raw_dim(), "the test network's output")?;
    ndarray::Zip::from(&mut o).and(&x).and(&c).for_each(|o, &a, &b| *o = (0.6 * a - 0.3 * b).tanh() + 0.4 * b);
    Ok(o)
}

fn restorer(family: Box<dyn Family>, sampler: Sampler, nfe: usize) -> Restorer {
    let meta = PackageMeta::new("memcap", "s", "x0", "implicit", 3);
    let options = RestoreOptions {
        sampler,
        nfe,
        seed: 5,
        tile: TileConfig { size: (0, 0), ..TileConfig::default() },
        max_pixels: DEFAULT_MAX_PIXELS,
        color_fix: crate::color_fix::ColorFix::Off,
        channel_ensemble: false,
    };
    Restorer::from_parts(meta, family, Box::new(FnDenoiser(net)), options).expect("restorer")
}

fn frame(side: usize) -> Tensor {
    Tensor::from_shape_fn((1, 3, side, side), |(_, c, y, x)| ((c * 7 + y * 3 + x) % 19) as f32 * 0.09 - 0.8)
}

/// For each kind of sampler loop (a plan, Heun, DBIM order 2, data-solver-2, noise-solver-2,
/// DBMSolver): a
/// 1792² frame (38.5 MB per tensor, above glibc's largest mmap threshold, so every frame
/// buffer is its own mapping) is restored whole under caps rising by half a frame from half
/// a frame above what the process uses. Below the restore's peak it must fail with
/// `OutOfMemory`, above it succeed with the uncapped result; after every capped attempt a
/// small restore, still under the cap, gives its uncapped result.
#[test]
fn sampler_allocations_are_fallible() {
    if !is_child() {
        // Before the fallible sampler buffers the child died of SIGABRT ("memory allocation of
        // … failed") at the first cap.
        let out = in_child("memory_limit_tests::sampler_allocations_are_fallible");
        for tag in ["rdbm", "heun", "dbim-2", "data-solver-2", "noise-solver-2", "dbmsolver"] {
            assert!(out.contains(&format!("{tag}: refused then restored")), "{tag}:\n{out}");
        }
        return;
    }
    let cases: Vec<(&str, Box<dyn Family>, Sampler, usize)> = vec![
        ("rdbm", Box::new(Rdbm::new(RdbmParams::default()).unwrap()), Sampler::Rdbm { eps_form: false }, 3),
        ("heun", Box::new(Ddbm::new(DdbmParams::vp()).unwrap()), Sampler::Heun { churn: 0.0 }, 3),
        ("dbim-2", Box::new(Ddbm::new(DdbmParams::vp()).unwrap()), Sampler::Dbim { eta: 0.0, order: 2 }, 4),
        ("data-solver-2", Box::new(Gou::new(GouParams::goub()).unwrap()), Sampler::DataSolver2 { sde: true }, 5),
        ("noise-solver-2", Box::new(Gou::new(GouParams::unidb(1e-3)).unwrap()), Sampler::NoiseSolver2 { sde: true }, 7),
        ("dbmsolver", Box::new(Ddbm::new(DdbmParams::vp()).unwrap()), Sampler::Dbmsolver { midpoint: Midpoint::Lambda, sde_order: 1 }, 4),
    ];
    let side = 1792;
    let step = (3 * side * side * 4 / 2) as u64;
    let (x, small) = (frame(side), frame(8));
    for (tag, family, sampler, nfe) in cases {
        let mut r = restorer(family, sampler, nfe);
        // Uncapped first: the expected outputs, and the thread pool is started.
        let want = r.restore_tensor(x.view()).expect("uncapped restore");
        let want_small = r.restore_tensor(small.view()).expect("uncapped small restore");
        let base = address_space();
        let mut refused = Vec::new();
        let mut restored = false;
        for k in 1..=40u64 {
            let old = cap_address_space(base + k * step);
            // The output is compared and dropped before the small restore.
            let res = r.restore_tensor(x.view()).map(|o| o == want);
            let after = r.restore_tensor(small.view());
            cap_address_space(old);
            assert_eq!(after.expect("small restore under the cap"), want_small, "{tag} cap {k}");
            match res {
                Ok(same) => {
                    assert!(same, "{tag}: the capped restore differs from the uncapped one");
                    restored = true;
                    break;
                }
                Err(Error::OutOfMemory { what, .. }) => refused.push(what),
                Err(e) => panic!("{tag} cap {k}: {e}"),
            }
        }
        println!("{tag}: refused at {refused:?}");
        if !refused.is_empty() && restored {
            println!("{tag}: refused then restored");
        }
    }
}
