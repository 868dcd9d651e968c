//! Set-up shared by the training tests (feature `train`): a tiny-U-Net spec, quiet reporting,
//! and a few synthetic photos in a temporary `BRIDGE_DATA_DIR`.
#![allow(dead_code)] // each test binary uses its own subset

use bridge_export::UNetConfig;
use bridge_export::data::save_png;
use bridge_export::train::trainer::{Reporting, Spec};
use ndarray::Array3;
use serde_json::Map;
use std::path::{Path, PathBuf};

/// A few steps of `family` on `task` with the tiny U-Net, batch 2 of 16² crops (NADB: with a
/// mean network trained for one step first).
pub fn tiny_spec(family: &str, task: &str, steps: u64) -> Spec {
    let unet = UNetConfig::tiny(3, 3, 3);
    let mut mean = unet.clone();
    mean.cond_channels = 0;
    Spec {
        family: family.into(),
        parameterization: None,
        family_params: Map::new(),
        task: task.into(),
        unet,
        mean_unet: (family == "nadb").then_some(mean),
        steps,
        mean_steps: if family == "nadb" { 1 } else { 0 },
        batch: 2,
        crop: 16,
        lr: 1e-3,
        warmup: 1,
        ema: 0.9,
        grad_clip: 1.0,
        seed: 3,
        focus_nfe: None,
        focus_p: 0.5,
        sampler: None,
        nfe: None,
        max_side: 0,
        teacher: None,
        gray_p: 0.0,
        input_8bit_p: 0.0,
        prepass: false,
        permute_channels: false,
        noise_channels: None,
        init: None,
    }
}

/// No logs, no progress bar, one data thread, no time budget.
pub fn quiet(max_steps_now: Option<u64>) -> Reporting {
    Reporting { log_every: 0, progress_bar: false, ckpt_every: 100, max_steps_now, data_threads: 1, time_budget: None }
}

/// A fresh folder `<tmp>/<name>` whose `data/train/` holds `photos` synthetic 40×48 images,
/// made this process's `BRIDGE_DATA_DIR`. Call once, from the only test of a binary.
pub fn synthetic_data(name: &str, photos: usize) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let train = dir.join("data/train");
    std::fs::create_dir_all(&train).unwrap();
    for k in 0..photos {
        let img = Array3::from_shape_fn((3, 40, 48), |(c, y, x)| {
            (0.5 + 0.4 * ((x as f32 * 0.3 + k as f32).sin() * (y as f32 * 0.2 + c as f32).cos())).clamp(0.0, 1.0)
        });
        save_png(img.view(), &train.join(format!("p{k}.png")), false).unwrap();
    }
    // SAFETY: each test binary calls this from its only test, before any thread reads the
    // environment.
    unsafe { std::env::set_var("BRIDGE_DATA_DIR", dir.join("data")) };
    dir
}
