//! Pinned outputs: every sampler on fixed inputs, network, masks and seeds, hashed bit for bit
//! (output, every recorded state, the number of calls). The expected hashes were produced by
//! the samplers' own loops before the row samplers became plans only (`sampler::plan`), so a
//! change here is a change of behaviour, not of structure. Covers the cases the golden replays
//! do not: inpainting masks (binary over channels, fractional per channel), RDBM's
//! residual-modulated noise, and samplers that ignore a mask.
//!
//! `BRIDGE_PIN_PRINT=1 cargo test -p bridge --lib sampler::pinned -- --nocapture` prints the
//! table (after a deliberate change of behaviour, to update it). Changed deliberately since:
//! `distilled` (IBMD: the teacher's posterior between calls, not eq. (1) from x_T).

use super::{Hooks, Model, Sampler, sample};
use crate::family::Family;
use crate::family::ddbm::{Ddbm, DdbmParams};
use crate::family::gou::{Gou, GouParams};
use crate::family::i2sb::{I2sb, I2sbParams};
use crate::family::nadb::{Nadb, NadbParams};
use crate::family::rdbm::{Objective, Rdbm, RdbmParams, ResidualNoise};
use crate::rng::PhiloxNoise;
use crate::{FnDenoiser, Result, Tensor, TensorView};

/// A nonlinear network that uses all three inputs (so every coefficient matters).
fn net(x: TensorView<'_>, c: TensorView<'_>, t: f64) -> Result<Tensor> {
    let s = (0.37 * t).sin() as f32 * 0.05;
    Ok(ndarray::Zip::from(&x).and(&c).map_collect(|&a, &b| (0.6 * a - 0.3 * b).tanh() + 0.4 * b + s))
}

fn x_end(lo: f32) -> Tensor {
    Tensor::from_shape_fn((2, 3, 5, 7), |(b, c, y, x)| ((b * 3 + c * 5 + y * 3 + x) % 11) as f32 * 0.08 + lo)
}

/// Masks: none, binary over channels (`[B, 1, H, W]`), fractional per channel.
fn mask(kind: u8) -> Option<Tensor> {
    match kind {
        0 => None,
        1 => Some(Tensor::from_shape_fn((2, 1, 5, 7), |(b, _, y, x)| if (1..4).contains(&y) && x >= 2 + b { 1.0 } else { 0.0 })),
        _ => Some(Tensor::from_shape_fn((2, 3, 5, 7), |(b, c, y, x)| ((b + c * 2 + y + x * 3) % 5) as f32 * 0.25)),
    }
}

/// FNV-1a over the bit patterns (an exact zero of either sign hashes as +0).
fn hash(h: &mut u64, t: &Tensor) {
    for v in t.iter() {
        let bits = if *v == 0.0 { 0u32 } else { v.to_bits() };
        for byte in bits.to_le_bytes() {
            *h ^= byte as u64;
            *h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// Hash of one run (output, trajectory, calls); an error hashes as its kind.
fn run_hash(h: &mut u64, f: &dyn Family, s: &Sampler, nfe: usize, lo: f32, mask_kind: u8) {
    let xt = x_end(lo);
    let m = mask(mask_kind);
    let mut states = Vec::new();
    let mut rec = |x: &Tensor| states.push(x.clone());
    let mut n = FnDenoiser(net);
    let mut model = Model::new(&mut n, f, xt.view(), xt.view()).unwrap();
    if let Some(m) = &m {
        model = model.with_mask(m.view()).unwrap();
    }
    let mut model = model.with_hooks(Hooks { on_call: None, on_state: Some(&mut rec) });
    let out = sample(&mut model, s, nfe, &mut PhiloxNoise::new(17));
    let calls = model.calls();
    match out {
        Ok(o) => {
            assert!(o.iter().all(|v| v.is_finite()), "{} {s:?} nfe {nfe}", f.name());
            hash(h, &o);
        }
        Err(e) => panic!("{} {s:?} nfe {nfe} mask {mask_kind}: {e}", f.name()),
    }
    for st in &states {
        hash(h, st);
    }
    *h ^= ((calls as u64) << 32) | states.len() as u64;
    *h = h.wrapping_mul(0x100_0000_01b3);
}

/// Every family of the SDK with the lower end of its data range, and a short tag.
fn families() -> Vec<(&'static str, Box<dyn Family>, f32)> {
    vec![
        ("i2sb-clip", Box::new(I2sb::new(I2sbParams { clip: true, ..Default::default() }).unwrap()), -0.9),
        ("ddbm-vp", Box::new(Ddbm::new(DdbmParams::vp()).unwrap()), -0.9),
        ("ddbm-ve", Box::new(Ddbm::new(DdbmParams::ve()).unwrap()), -0.9),
        ("dbim-i2sb", Box::new(Ddbm::new(DdbmParams::dbim_i2sb()).unwrap()), -0.9),
        ("goub", Box::new(Gou::new(GouParams::goub()).unwrap()), 0.05),
        ("unidb", Box::new(Gou::new(GouParams::unidb(1e-7)).unwrap()), 0.05),
        ("rdbm", Box::new(Rdbm::new(RdbmParams::default()).unwrap()), -0.9),
        ("nadb", Box::new(Nadb::new(NadbParams::default()).unwrap()), -0.9),
        ("nadb-nomean", Box::new(Nadb::new(NadbParams { mean_network: false, ..Default::default() }).unwrap()), -0.9),
    ]
}

/// The cases: `(label, hash)` computed now.
fn cases() -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut push = |label: String, f: &mut dyn FnMut(&mut u64)| {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        f(&mut h);
        out.push((label, h));
    };
    for (tag, f, lo) in families() {
        for mk in [0u8, 1, 2] {
            push(format!("{tag} implicit/dbim mask {mk}"), &mut |h| {
                for nfe in [1, 3, 6] {
                    for eta in [0.0, 0.5, 1.0] {
                        run_hash(h, f.as_ref(), &Sampler::Implicit { eta }, nfe, lo, mk);
                        if nfe > 1 {
                            run_hash(h, f.as_ref(), &Sampler::Dbim { eta, order: 1 }, nfe, lo, mk);
                        }
                    }
                }
            });
        }
        if f.downcast::<Gou>().is_none() {
            push(format!("{tag} distilled"), &mut |h| {
                for (nfe, mk) in [(1, 0), (3, 0), (4, 1)] {
                    run_hash(h, f.as_ref(), &Sampler::Distilled, nfe, lo, mk);
                }
            });
        }
    }
    let i2sb = I2sb::new(I2sbParams::default()).unwrap();
    for ot_ode in [false, true] {
        for mk in [0u8, 1, 2] {
            push(format!("i2sb ot_ode {ot_ode} mask {mk}"), &mut |h| {
                for nfe in [1, 4, 9] {
                    run_hash(h, &i2sb, &Sampler::I2sb { ot_ode }, nfe, -0.9, mk);
                }
            });
        }
    }
    for p in [NadbParams::default(), NadbParams { mean_network: false, ..Default::default() }] {
        let f = Nadb::new(p).unwrap();
        push(format!("nadb mean {}", p.mean_network), &mut |h| {
            for (nfe, mk) in [(1, 0), (2, 0), (5, 0), (5, 1)] {
                run_hash(h, &f, &Sampler::Nadb, nfe, -0.9, mk);
            }
        });
    }
    for (obj, forms) in [(Objective::PredXStart, &[false, true][..]), (Objective::PredNoise, &[true][..])] {
        for residual in [None, Some(0.0), Some(0.5), Some(1.0)] {
            let f = Rdbm::new(RdbmParams { objective: obj, residual: residual.map(|eta| ResidualNoise { eta }), ..Default::default() })
                .unwrap();
            for &eps_form in forms {
                push(format!("rdbm {obj:?} eps {eps_form} residual {residual:?}"), &mut |h| {
                    for (nfe, mk) in [(2, 0), (3, 0), (7, 0), (7, 1)] {
                        run_hash(h, &f, &Sampler::Rdbm { eps_form }, nfe, -0.9, mk);
                    }
                });
            }
        }
    }
    for gi in [0.0, 1e-7] {
        let f = Gou::new(if gi == 0.0 { GouParams::goub() } else { GouParams::unidb(gi) }).unwrap();
        for sde in [false, true] {
            push(format!("gou {gi} sde {sde}"), &mut |h| {
                run_hash(h, &f, &Sampler::Euler { sde }, 100, 0.05, 0);
                run_hash(h, &f, &Sampler::Euler { sde }, 100, 0.05, 1);
                for nfe in [1, 4, 9] {
                    run_hash(h, &f, &Sampler::DataSolver1 { sde }, nfe, 0.05, 0);
                    run_hash(h, &f, &Sampler::NoiseSolver1 { sde }, nfe, 0.05, 0);
                }
                run_hash(h, &f, &Sampler::DataSolver1 { sde }, 4, 0.05, 1);
                run_hash(h, &f, &Sampler::NoiseSolver1 { sde }, 4, 0.05, 1);
                for nfe in [5, 10] {
                    run_hash(h, &f, &Sampler::DataSolver2 { sde }, nfe, 0.05, 0);
                }
            });
        }
    }
    for (tag, p) in [("vp", DdbmParams::vp()), ("ve", DdbmParams::ve()), ("dbim-i2sb", DdbmParams::dbim_i2sb())] {
        let f = Ddbm::new(p).unwrap();
        push(format!("dbim high order {tag}"), &mut |h| {
            for order in [2, 3] {
                for (nfe, mk) in [(4, 0), (6, 0), (6, 1), (6, 2)] {
                    run_hash(h, &f, &Sampler::Dbim { eta: 0.0, order }, nfe, -0.9, mk);
                }
            }
        });
        if tag != "dbim-i2sb" {
            push(format!("heun {tag}"), &mut |h| {
                for (churn, nfe) in [(0.0, 1), (0.0, 5), (0.33, 8)] {
                    run_hash(h, &f, &Sampler::Heun { churn }, nfe, -0.9, 0);
                }
            });
        }
    }
    out
}

/// Hashes recorded with the samplers' loops before they became plans (module docs).
const PINNED: &[(&str, u64)] = &[
    ("i2sb-clip implicit/dbim mask 0", 0xa0d4aeee3258d856),
    ("i2sb-clip implicit/dbim mask 1", 0x11b329632efcd888),
    ("i2sb-clip implicit/dbim mask 2", 0x3b55021964ee016a),
    ("i2sb-clip distilled", 0xe3120c6da1a8e9fc),
    ("ddbm-vp implicit/dbim mask 0", 0x2c7c42374c879190),
    ("ddbm-vp implicit/dbim mask 1", 0xbf77f3eb020d5f4e),
    ("ddbm-vp implicit/dbim mask 2", 0x9229b5ae2fd0f57e),
    ("ddbm-vp distilled", 0x7163902721057313),
    ("ddbm-ve implicit/dbim mask 0", 0x379d7485bf602042),
    ("ddbm-ve implicit/dbim mask 1", 0x374b2201342859f6),
    ("ddbm-ve implicit/dbim mask 2", 0x88f1934ebf31d750),
    ("ddbm-ve distilled", 0xb23856ddbef3b24a),
    ("dbim-i2sb implicit/dbim mask 0", 0x5742a4a87786d336),
    ("dbim-i2sb implicit/dbim mask 1", 0xe581b48c79b3a1c6),
    ("dbim-i2sb implicit/dbim mask 2", 0x39386061b29e524e),
    ("dbim-i2sb distilled", 0x301f20d5483eccdb),
    ("goub implicit/dbim mask 0", 0x50214ede39b16f55),
    ("goub implicit/dbim mask 1", 0xb2d17a61e266d89f),
    ("goub implicit/dbim mask 2", 0x3779de70acad6731),
    ("unidb implicit/dbim mask 0", 0x43eac704797fe01a),
    ("unidb implicit/dbim mask 1", 0x1d665cf616974bf8),
    ("unidb implicit/dbim mask 2", 0x638c66555e613112),
    ("rdbm implicit/dbim mask 0", 0x346fb9b68a8cc338),
    ("rdbm implicit/dbim mask 1", 0x951466b6b85e63bc),
    ("rdbm implicit/dbim mask 2", 0xaae9767f5a538040),
    ("rdbm distilled", 0x3345a10f6d22372e),
    ("nadb implicit/dbim mask 0", 0xe415c362b0840fbc),
    ("nadb implicit/dbim mask 1", 0xf8f3db05ee03e67e),
    ("nadb implicit/dbim mask 2", 0x5bf27d5766238438),
    ("nadb distilled", 0x205b04b9849a05fd),
    ("nadb-nomean implicit/dbim mask 0", 0xec8191aa9eeb203e),
    ("nadb-nomean implicit/dbim mask 1", 0x3cc30b3e20fbfc58),
    ("nadb-nomean implicit/dbim mask 2", 0x220117e914af3062),
    ("nadb-nomean distilled", 0x083826684645f159),
    ("i2sb ot_ode false mask 0", 0x7c8242d06e86d7a1),
    ("i2sb ot_ode false mask 1", 0xe49e363cd8c81e88),
    ("i2sb ot_ode false mask 2", 0x6ff5c6cfba478b19),
    ("i2sb ot_ode true mask 0", 0x014447c7dcca1c01),
    ("i2sb ot_ode true mask 1", 0x341b0409f5307db1),
    ("i2sb ot_ode true mask 2", 0x30b0f11918d1de3d),
    ("nadb mean true", 0xfb4c122c52a161de),
    ("nadb mean false", 0x2d1c97c05cc4e0c4),
    ("rdbm PredXStart eps false residual None", 0x7108602f8c3bcf77),
    ("rdbm PredXStart eps true residual None", 0x70a7c1188e861099),
    ("rdbm PredXStart eps false residual Some(0.0)", 0x7108602f8c3bcf77),
    ("rdbm PredXStart eps true residual Some(0.0)", 0x70a7c1188e861099),
    ("rdbm PredXStart eps false residual Some(0.5)", 0x0a7b9d435febfe95),
    ("rdbm PredXStart eps true residual Some(0.5)", 0x90c47ed2cd12381b),
    ("rdbm PredXStart eps false residual Some(1.0)", 0x6e0fa69f79f85568),
    ("rdbm PredXStart eps true residual Some(1.0)", 0x466b13263bf7d002),
    ("rdbm PredNoise eps true residual None", 0x966cb6dcb2830a43),
    ("rdbm PredNoise eps true residual Some(0.0)", 0x966cb6dcb2830a43),
    ("rdbm PredNoise eps true residual Some(0.5)", 0x0b46780de207769b),
    ("rdbm PredNoise eps true residual Some(1.0)", 0x8fe759e81aa8f1b5),
    ("gou 0 sde false", 0xa757228faea5267e),
    ("gou 0 sde true", 0x69eecdcef17c71b9),
    ("gou 0.0000001 sde false", 0xf30877083f77fa48),
    ("gou 0.0000001 sde true", 0x3d2bed95bc88b5cd),
    ("dbim high order vp", 0x741fe6e628f6756d),
    ("heun vp", 0xae35a4765e83e914),
    ("dbim high order ve", 0x5075ad82decceab7),
    ("heun ve", 0xa7b40775bcfd5712),
    ("dbim high order dbim-i2sb", 0x795b16fa2cd618c8),
];

#[test]
fn outputs_are_pinned() {
    let got = cases();
    if std::env::var_os("BRIDGE_PIN_PRINT").is_some() {
        for (label, h) in &got {
            println!("    (\"{label}\", {h:#018x}),");
        }
    }
    assert_eq!(got.len(), PINNED.len(), "case count");
    let mut bad = Vec::new();
    for ((label, h), (want_label, want)) in got.iter().zip(PINNED) {
        assert_eq!(label, want_label);
        if h != want {
            bad.push(label.clone());
        }
    }
    assert!(bad.is_empty(), "changed outputs: {bad:?}");
}
