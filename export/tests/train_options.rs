//! Training options that must not change what is learned, and the time budget (feature `train`):
//! batches made on 1 or 3 data threads give the same weights; a time budget lowers the step
//! count so the run ends in time and records it; colour augmentation trains and exports; `init` fine-tunes from a package and refuses one of another task, family or network.
#![cfg(feature = "train")]

mod common;

use bridge_export::package::read_package;
use bridge_export::train::trainer::{Reporting, Spec, train};
use std::path::Path;

fn spec(steps: u64) -> Spec {
    let mut s = common::tiny_spec("rdbm", "denoise", steps);
    s.seed = 5;
    // A time budget measures the rate during the warm-up.
    s.warmup = 20;
    s
}

fn rep(data_threads: usize, time_budget: Option<f64>) -> Reporting {
    Reporting { log_every: 0, progress_bar: false, ckpt_every: 1000, max_steps_now: None, data_threads, time_budget }
}

fn weights(pkg: &Path) -> Vec<(String, Vec<f32>)> {
    let (_, w, _) = read_package(pkg).unwrap();
    w.names().map(|n| (n.to_string(), w.get(n).unwrap().data.clone())).collect()
}

#[test]
fn data_threads_time_budget_and_colour() {
    let dir = common::synthetic_data("train-options", 3);

    // The same 9 steps with batches made on one thread and on three.
    let run = |threads: usize, name: &str| {
        let s = train(&spec(9), &dir.join(format!("{name}.onnx")), &dir.join(format!("{name}.ckpt")), "test", &rep(threads, None)).unwrap();
        assert_eq!((s.step, s.steps), (9, 9));
        weights(&s.package)
    };
    let one = run(1, "one");
    let three = run(3, "three");
    assert!(!one.is_empty());
    assert_eq!(one, three, "weights depend on the number of data threads");

    // A budget far below what 100,000 steps need: the total is fixed after the warm-up, the run
    // ends there, and the package records that total.
    let s = train(&spec(100_000), &dir.join("budget.onnx"), &dir.join("budget.ckpt"), "test", &rep(2, Some(3.0))).unwrap();
    assert!(s.steps >= 20 && s.steps < 100_000, "{} steps", s.steps);
    assert_eq!(s.step, s.steps);
    let props = bridge_export::onnx::read_model(&s.package).unwrap().metadata_props;
    let spec_json = props.iter().find(|e| e.key.as_deref() == Some("train.spec")).and_then(|e| e.value.clone()).unwrap();
    let recorded: Spec = serde_json::from_str(&spec_json).unwrap();
    assert_eq!(recorded.steps, s.steps);
    // A budget needs a warm-up to measure in.
    let mut short = spec(100);
    short.warmup = 5;
    assert!(train(&short, &dir.join("short.onnx"), &dir.join("short.ckpt"), "test", &rep(1, Some(3.0))).is_err());

    // Colour augmentation: grey crops and channel permutations train and export.
    let mut c = spec(4);
    c.gray_p = 0.5;
    c.permute_channels = true;
    let s = train(&c, &dir.join("colour.onnx"), &dir.join("colour.ckpt"), "test", &rep(1, None)).unwrap();
    assert_eq!(s.step, 4);
    assert_ne!(weights(&s.package), weights(&dir.join("one.onnx")));

    // Fine-tuning (`--init`): with no further steps the package is the init package's weights;
    // with steps it moves on and records where it started.
    let base = dir.join("one.onnx");
    let mut f = spec(0);
    f.init = Some(base.clone());
    let s = train(&f, &dir.join("init0.onnx"), &dir.join("init0.ckpt"), "test", &rep(1, None)).unwrap();
    assert!(weights(&s.package) == one, "the package of an init run without steps is not the init package");
    let mut f = spec(3);
    f.init = Some(base.clone());
    let s = train(&f, &dir.join("init3.onnx"), &dir.join("init3.ckpt"), "test", &rep(1, None)).unwrap();
    assert_eq!(s.step, 3);
    assert!(weights(&s.package) != one, "three fine-tuning steps changed nothing");
    let props: std::collections::BTreeMap<String, String> =
        bridge_export::onnx::read_model(&s.package).unwrap().metadata_props.into_iter().filter_map(|e| Some((e.key?, e.value?))).collect();
    assert_eq!(props.get("train.init").map(String::as_str), base.to_str());
    assert_eq!(props.get("train.init.steps").map(String::as_str), Some("9"));
    assert_eq!(props.get("train.steps").map(String::as_str), Some("3"));
    // The checkpoint carries the record: its export (e.g. mid-run) has it too.
    let e = bridge_export::train::trainer::export_checkpoint(&dir.join("init3.ckpt"), &dir.join("init3-export.onnx"), None, None, false)
        .unwrap();
    let eprops = bridge_export::onnx::read_model(&e).unwrap().metadata_props;
    let get = |k: &str| eprops.iter().find(|p| p.key.as_deref() == Some(k)).and_then(|p| p.value.clone());
    assert_eq!(get("train.init.steps").as_deref(), Some("9"));
    assert_eq!(get("train.init").as_deref(), base.to_str());
    // Another task, family or network is refused, naming what differs.
    for (family, task, unet, what) in [
        ("rdbm", "sr4", None, "SR factor"),
        ("i2sb", "denoise", None, "family"),
        ("rdbm", "denoise", Some(bridge_export::UNetConfig::demo(3, 3, 3)), "U-Net"),
    ] {
        let mut g = common::tiny_spec(family, task, 2);
        g.init = Some(base.clone());
        if let Some(u) = unet {
            g.unet = u;
        }
        let e = train(&g, &dir.join("bad.onnx"), &dir.join(format!("bad-{what}.ckpt")), "test", &rep(1, None)).unwrap_err().to_string();
        assert!(e.contains(what), "{family}/{task}: {e}");
    }

    // The pre-pass: a plain package may start a pre-pass model; a pre-pass package's run must keep it.
    let mut plain = common::tiny_spec("rdbm", "deblur", 1);
    let plain_pkg = train(&plain, &dir.join("deblur-plain.onnx"), &dir.join("deblur-plain.ckpt"), "test", &rep(1, None)).unwrap().package;
    let mut pre = plain.clone();
    pre.prepass = true;
    pre.init = Some(plain_pkg);
    let pre_pkg = train(&pre, &dir.join("deblur-pre.onnx"), &dir.join("deblur-pre.ckpt"), "test", &rep(1, None)).unwrap().package;
    pre.init = Some(pre_pkg.clone());
    train(&pre, &dir.join("deblur-pre2.onnx"), &dir.join("deblur-pre2.ckpt"), "test", &rep(1, None)).unwrap();
    plain.init = Some(pre_pkg);
    let e = train(&plain, &dir.join("deblur-drop.onnx"), &dir.join("deblur-drop.ckpt"), "test", &rep(1, None)).unwrap_err().to_string();
    assert!(e.contains("pre-pass") && e.contains("--prepass"), "{e}");
    assert!(!dir.join("deblur-drop.onnx").exists(), "a refused run wrote a package");
}
