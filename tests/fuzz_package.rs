//! Seeded mutation test of the package loader (issue 9: "a fuzz target or a seeded mutation
//! test over the package loader"). cargo-fuzz needs a nightly toolchain, which CI does not
//! install; this test runs the same kind of hostile inputs deterministically on stable.
//!
//! Valid fixture packages (the project's own ONNX writer) are mutated two ways and validated
//! with [`ModelPackage::from_memory`] — the whole load-time check (ONNX header reader, metadata
//! caps, family, default sampler), without creating an ONNX Runtime session:
//!
//! * bytes: bit flips, byte overwrites with boundary values, truncation, inserted and
//!   duplicated ranges, varint-looking runs of 0xFF;
//! * metadata: a random `bridge.*` key set to a hostile value (huge/negative/NaN numbers,
//!   unknown names, broken JSON, long strings, deep nesting) or removed, several per case.
//!
//! Every case must return `Ok` or a typed error (a panic fails the test with the case number, so
//! `CASE=n` reproduces one case), and the unmutated packages must still load.

use bridge::runtime::ModelPackage;
use bridge_export::fixtures;
use bridge_export::onnx::Graph;
use bridge_export::weights::SplitMix;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A seeded generator (SplitMix64), so every run draws the same cases.
struct Rng(SplitMix);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

const KEYS: &[&str] = &[
    "bridge.schema_version",
    "bridge.family",
    "bridge.schedule",
    "bridge.parameterization",
    "bridge.family_params",
    "bridge.inputs",
    "bridge.outputs",
    "bridge.value_range",
    "bridge.channel_order",
    "bridge.channels",
    "bridge.sampler",
    "bridge.sampler_params",
    "bridge.nfe",
    "bridge.sr_scale",
    "bridge.spatial_multiple",
    "bridge.tile",
    "bridge.receptive_field",
    "bridge.time_input",
    "bridge.class_label",
    "bridge.mean_network",
];

fn hostile_value(rng: &mut Rng) -> String {
    let fixed: &[&str] = &[
        "",
        "0",
        "-1",
        "1e308",
        "NaN",
        "inf",
        "-inf",
        "18446744073709551615",
        "18446744073709551616",
        "9223372036854775807",
        "-9223372036854775808",
        "4294967296",
        "null",
        "[]",
        "{}",
        "[-1, 1]",
        "[1, -1]",
        "[NaN, 1]",
        "{\"x_t\": \"nope\"}",
        "{\"x_t\": \"x_t\", \"cond\": \"x_t\", \"t\": \"x_t\"}",
        "{\"size\": 18446744073709551615, \"overlap\": 9223372036854775808}",
        "{\"size\": 256, \"overlap\": 9223372036854775807}",
        "{\"eta\": \"high\"}",
        "{\"gamma_inv\": -1}",
        "{\"T\": 0}",
        "{\"path\": \"../../etc/passwd\"}",
        "{\"path\": \"/dev/zero\"}",
        "i2sb",
        "ddbm-vp",
        "goub",
        "unidb",
        "nadb",
        "no-such-family",
        "dbmsolver",
        "i3sb",
        "heun",
        "distilled",
        "no-such-sampler",
        "index",
        "value",
        "bgr",
        "x0",
        "eps",
        "\u{0}\u{ffff}",
    ];
    match rng.below(4) {
        0 => "[".repeat(rng.below(5000)),
        1 => "9".repeat(1 + rng.below(400)),
        _ => rng.pick(fixed).to_string(),
    }
}

/// One metadata mutation case: 1–4 keys changed or removed.
fn mutate_meta(base: &Graph, rng: &mut Rng) -> Vec<u8> {
    let mut g = base.clone();
    for _ in 0..1 + rng.below(4) {
        let key = *rng.pick(KEYS);
        if rng.below(5) == 0 {
            g.unset_meta(key);
        } else {
            let v = hostile_value(rng);
            g.meta(key, &v);
        }
    }
    g.encode()
}

/// One byte mutation case: 1–8 edits of the encoded package.
fn mutate_bytes(base: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..1 + rng.below(8) {
        if b.is_empty() {
            break;
        }
        let at = rng.below(b.len());
        match rng.below(6) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = *rng.pick(&[0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0A, 0x12, 0x1A, 0x22, 0x3A, 0x72]),
            2 => b.truncate(at),
            3 => {
                let n = 1 + rng.below(10);
                b.splice(at..at, std::iter::repeat_n(0xFF, n));
            }
            4 => {
                let end = (at + 1 + rng.below(64)).min(b.len());
                let copy = b[at..end].to_vec();
                let to = rng.below(b.len());
                b.splice(to..to, copy);
            }
            _ => {
                let end = (at + rng.below(32)).min(b.len());
                b.drain(at..end);
            }
        }
    }
    b
}

#[test]
fn mutated_packages_are_ok_or_typed_errors() {
    // Valid starting points: an RDBM package with and without declared channels, and the same
    // network described as other families (with their new samplers as defaults).
    let mut bases: Vec<Graph> = vec![fixtures::oracle(Some(3)), fixtures::oracle(None)];
    for (family, schedule, param, sampler, nfe) in [
        ("i2sb", "i2sb-symmetric", "i2sb", "i3sb", "5"),
        ("ddbm-vp", "vp", "ddbm-precond", "dbmsolver", "4"),
        ("ddbm-ve", "ve", "ddbm-precond", "dbmsolver-sde2", "5"),
        ("goub", "cosine", "eps", "data-solver-1-ode", "4"),
    ] {
        let mut g = fixtures::oracle(Some(3));
        g.meta("bridge.family", family)
            .meta("bridge.schedule", schedule)
            .meta("bridge.parameterization", param)
            .meta("bridge.sampler", sampler)
            .meta("bridge.nfe", nfe);
        bases.push(g);
    }
    let encoded: Vec<Vec<u8>> = bases.iter().map(Graph::encode).collect();
    for (i, e) in encoded.iter().enumerate() {
        if let Err(err) = ModelPackage::from_memory(e.clone(), &format!("base {i}")) {
            panic!("base package {i} does not load: {err}");
        }
    }

    let only: Option<usize> = std::env::var("CASE").ok().and_then(|v| v.parse().ok());
    const CASES: usize = 20_000;
    let (mut ok, mut err) = (0usize, 0usize);
    let start = std::time::Instant::now();
    for case in 0..CASES {
        if only.is_some_and(|c| c != case) {
            continue;
        }
        let mut rng = Rng(SplitMix(0x5EED_0000 + case as u64));
        let k = rng.below(bases.len());
        let bytes = if case % 2 == 0 { mutate_bytes(&encoded[k], &mut rng) } else { mutate_meta(&bases[k], &mut rng) };
        let r = catch_unwind(AssertUnwindSafe(|| ModelPackage::from_memory(bytes, "mutated").map(|_| ())));
        match r {
            Ok(Ok(())) => ok += 1,
            Ok(Err(e)) => {
                assert!(!e.to_string().is_empty(), "case {case}: an error without a message");
                err += 1;
            }
            Err(_) => panic!("case {case} panicked in the package loader (rerun with CASE={case})"),
        }
    }
    eprintln!("{} package cases in {:?}: {ok} loaded, {err} typed errors", ok + err, start.elapsed());
    if only.is_none() {
        assert_eq!(ok + err, CASES);
        // Both outcomes occur (a mutator that only breaks, or never breaks, tests little).
        assert!(ok > 200 && err > 2000, "{ok} loaded, {err} rejected");
    }
}
