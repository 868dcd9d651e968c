//! `bridge-export` — train bridge U-Nets with libtorch and write libbridge model packages.
//!
//! Run through `scripts/with-torch.sh` (it installs libtorch and sets the library path):
//!
//! ```text
//! scripts/with-torch.sh cargo run --release -p bridge-export --features train -- \
//!     train --family rdbm --task denoise --steps 2000 --out models/denoise.onnx
//! ```

use bridge_export::data::{default_data_dir, write_eval_pairs};
use bridge_export::package::Task;
use bridge_export::package::redefault_package;
use bridge_export::train::parity;
use bridge_export::train::trainer::{Reporting, Spec, export_checkpoint, train};
use bridge_export::{Error, Result, UNetConfig};
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "bridge-export", version, about = "Train bridge U-Nets (libtorch) and write libbridge model packages")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train (or resume) a model and write its package.
    Train(Box<TrainArgs>),
    /// Write the package of a checkpoint (EMA weights), e.g. while training goes on; or, with
    /// `--package`, rewrite a package with other defaults (sampler/NFE chosen after `bridge eval`).
    Export {
        /// The checkpoint (.safetensors).
        #[arg(long, conflicts_with = "package", required_unless_present = "package")]
        ckpt: Option<PathBuf>,
        /// A package (.onnx) whose weights and training record are kept.
        #[arg(long)]
        package: Option<PathBuf>,
        /// The package to write (.onnx).
        #[arg(long)]
        out: PathBuf,
        /// Default sampler written into the package (default: the training spec's).
        #[arg(long)]
        sampler: Option<String>,
        /// Default NFE written into the package (default: the training spec's).
        #[arg(long)]
        nfe: Option<usize>,
        /// Write `bridge.channel_ensemble`: `--channel-ensemble` or `=true` asks the SDK to run
        /// the package with the channel ensemble by default, `=false` not (default: the
        /// package's as it was; off for a checkpoint).
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
        channel_ensemble: Option<bool>,
    },
    /// Check libtorch vs the reference backend vs ONNX Runtime on a tiny model trained a few steps.
    Parity {
        /// Training steps before the comparison.
        #[arg(long, default_value_t = 4)]
        steps: usize,
        /// Seed.
        #[arg(long, default_value_t = 11)]
        seed: u64,
        /// Network: `tiny` or `demo`.
        #[arg(long, default_value = "tiny")]
        unet: String,
        /// Where to write the package.
        #[arg(long, default_value = "target/parity")]
        dir: PathBuf,
    },
    /// Write held-out evaluation pairs (`<out>/clean/*.png`, `<out>/degraded/*.png`, 16-bit unless --bits 8) for a task.
    Pairs {
        /// Task (`sr4`, `denoise`, `deblur`, `jpeg`).
        #[arg(long)]
        task: String,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Centre-crop side.
        #[arg(long, default_value_t = 256)]
        crop: usize,
        /// Photos are shrunk to this longer side first (0: as shipped).
        #[arg(long, default_value_t = 1024)]
        max_side: usize,
        /// Seed of the random degradations (noise).
        #[arg(long, default_value_t = 2024)]
        seed: u64,
        /// Split (`test` is the held-out one).
        #[arg(long, default_value = "test")]
        split: String,
        /// Turn the photos grey first (to measure a model's colour cast).
        #[arg(long)]
        gray: bool,
        /// Bit depth of the degraded images: 16, or 8 as cameras and image files deliver them
        /// (recorded in degradation.json; the classical baseline is tuned for it).
        #[arg(long, default_value_t = 16)]
        bits: u32,
    },
    /// Shrink a split's photos once (as training does) and save them as JPEG
    /// (`<out>/<split>/<name>.jpg`): a compact copy of the training data for another machine
    /// (`BRIDGE_DATA_DIR=<out>` then trains on it).
    Shrink {
        /// Split folder of the data directory (`train`, `val`, …).
        #[arg(long, default_value = "train")]
        split: String,
        /// Output data directory.
        #[arg(long)]
        out: PathBuf,
        /// Longer side after shrinking.
        #[arg(long, default_value_t = 1024)]
        max_side: usize,
        /// JPEG quality (1–100).
        #[arg(long, default_value_t = 97)]
        quality: u8,
    },
}

#[derive(Args)]
struct TrainArgs {
    /// Family: i2sb, ddbm-vp, ddbm-ve, dbim-i2sb, goub, unidb, rdbm, nadb, or ibmd (with --teacher).
    #[arg(long)]
    family: String,
    /// Task: sr4, denoise, deblur, jpeg.
    #[arg(long)]
    task: String,
    /// Total optimizer steps (all phases).
    #[arg(long)]
    steps: u64,
    /// The package to write (.onnx).
    #[arg(long)]
    out: PathBuf,
    /// Checkpoint (default: `<out>.ckpt.safetensors`); an existing one is resumed.
    #[arg(long)]
    ckpt: Option<PathBuf>,
    /// U-Net: `tiny`, `demo`, or a JSON file / string of a `UNetConfig`.
    #[arg(long, default_value = "demo")]
    unet: String,
    /// Parameterization (RDBM: x0 or eps).
    #[arg(long)]
    parameterization: Option<String>,
    /// A family parameter, `key=value` (JSON value), repeatable (e.g. `gamma_inv=1e-7`, `mean_network=false`).
    #[arg(long = "param")]
    params: Vec<String>,
    /// Batch size.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Crop side.
    #[arg(long, default_value_t = 64)]
    crop: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
    /// Warm-up steps.
    #[arg(long, default_value_t = 100)]
    warmup: u64,
    /// EMA decay.
    #[arg(long, default_value_t = 0.999)]
    ema: f64,
    /// Gradient-norm clip (0: off).
    #[arg(long, default_value_t = 1.0)]
    grad_clip: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Focus a fraction of the training times on the default grid for this NFE.
    #[arg(long)]
    focus_nfe: Option<usize>,
    /// Fraction of focused draws.
    #[arg(long, default_value_t = 0.5)]
    focus_p: f64,
    /// Default sampler written into the package.
    #[arg(long)]
    sampler: Option<String>,
    /// Default NFE written into the package (IBMD: generator steps).
    #[arg(long)]
    nfe: Option<usize>,
    /// Photos are shrunk to this longer side (0: as shipped).
    #[arg(long, default_value_t = 1024)]
    max_side: usize,
    /// NADB: steps spent on the mean network first (default: a quarter).
    #[arg(long)]
    mean_steps: Option<u64>,
    /// IBMD: the teacher package.
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// IBMD: channels of the generator's noise input (0: deterministic; default: the image's).
    #[arg(long)]
    noise_channels: Option<usize>,
    /// Log every this many steps.
    #[arg(long, default_value_t = 50)]
    log_every: u64,
    /// Checkpoint every this many steps.
    #[arg(long, default_value_t = 100)]
    ckpt_every: u64,
    /// Stop after this many steps in this invocation (resume later).
    #[arg(long)]
    max_steps_now: Option<u64>,
    /// Fraction of training crops turned grey (colour augmentation).
    #[arg(long, default_value_t = 0.0)]
    gray_p: f64,
    /// Randomly permute the RGB channels of training crops (colour augmentation).
    #[arg(long)]
    permute_channels: bool,
    /// Fraction of degraded training inputs rounded to 8 bits, as image files store them.
    #[arg(long, default_value_t = 0.0)]
    input_8bit_p: f64,
    /// Run the task's classical pre-pass on every training input and declare it in the package
    /// (deblur: Wiener deconvolution with the known kernel; the network refines its output).
    #[arg(long)]
    prepass: bool,
    /// Threads preparing batches ahead of training (results do not depend on it).
    #[arg(long, default_value_t = 1)]
    data_threads: usize,
    /// Fresh runs: lower --steps so training ends within this many seconds (rate measured
    /// during the warm-up; the learning-rate schedule then ends in time).
    #[arg(long)]
    time_budget: Option<f64>,
    /// Start from this package's weights (fine-tuning; same family, task and U-Net).
    #[arg(long)]
    init: Option<PathBuf>,
    /// libtorch intra-op threads (0: libtorch's default).
    #[arg(long, default_value_t = 0)]
    threads: i32,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Train(a) => run_train(&a),
        Command::Export { ckpt, package, out, sampler, nfe, channel_ensemble } => match (ckpt, package) {
            (Some(c), _) => export_checkpoint(&c, &out, sampler.as_deref(), nfe, channel_ensemble.unwrap_or(false)),
            (None, Some(p)) => redefault_package(&p, &out, sampler.as_deref(), nfe, channel_ensemble),
            (None, None) => Err(Error::Config("export needs --ckpt or --package".into())),
        }
        .map(|p| println!("wrote {}", p.display())),
        Command::Parity { steps, seed, unet, dir } => run_parity(steps, seed, &unet, &dir),
        Command::Pairs { task, out, crop, max_side, seed, split, gray, bits } => {
            write_pairs(&task, &out, crop, max_side, seed, &split, gray, bits)
        }
        Command::Shrink { split, out, max_side, quality } => shrink(&split, &out, max_side, quality),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn unet_config(s: &str, cond: usize) -> Result<UNetConfig> {
    match s {
        "tiny" => Ok(UNetConfig::tiny(3, cond, 3)),
        "demo" => Ok(UNetConfig::demo(3, cond, 3)),
        s if s.trim_start().starts_with('{') => UNetConfig::from_json(s),
        path => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            UNetConfig::from_json(&text)
        }
    }
}

fn run_train(a: &TrainArgs) -> Result<()> {
    if a.threads > 0 {
        tch::set_num_threads(a.threads);
    }
    let mut params = Map::new();
    for p in &a.params {
        let (k, v) = p.split_once('=').ok_or_else(|| Error::Config(format!("--param `{p}`: expected key=value")))?;
        let v: Value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        params.insert(k.trim().to_string(), v);
    }
    let unet = unet_config(&a.unet, 3)?;
    let nadb_mean = a.family == "nadb" && params.get("mean_network") != Some(&Value::Bool(false));
    let mut mean_unet = unet.clone();
    mean_unet.cond_channels = 0;
    let spec = Spec {
        family: a.family.clone(),
        parameterization: a.parameterization.clone(),
        family_params: params,
        task: Task::parse(&a.task)?.name().to_string(),
        unet,
        mean_unet: nadb_mean.then_some(mean_unet),
        steps: a.steps,
        mean_steps: if nadb_mean { a.mean_steps.unwrap_or(a.steps / 4) } else { 0 },
        batch: a.batch,
        crop: a.crop,
        lr: a.lr,
        warmup: a.warmup,
        ema: a.ema,
        grad_clip: a.grad_clip,
        seed: a.seed,
        focus_nfe: a.focus_nfe,
        focus_p: a.focus_p,
        sampler: a.sampler.clone(),
        nfe: a.nfe,
        max_side: a.max_side,
        teacher: a.teacher.clone(),
        gray_p: a.gray_p,
        permute_channels: a.permute_channels,
        input_8bit_p: a.input_8bit_p,
        prepass: a.prepass,
        noise_channels: a.noise_channels,
        init: a.init.clone(),
    };
    let ckpt = a.ckpt.clone().unwrap_or_else(|| {
        let mut s = a.out.clone().into_os_string();
        s.push(".ckpt.safetensors");
        PathBuf::from(s)
    });
    if let Some(d) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let rep = Reporting {
        log_every: a.log_every,
        progress_bar: !a.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ckpt_every: a.ckpt_every,
        max_steps_now: a.max_steps_now,
        data_threads: a.data_threads,
        time_budget: a.time_budget,
    };
    let s = train(&spec, &a.out, &ckpt, &command, &rep)?;
    println!(
        "wrote {} ({} of {} steps, {:.0} s of training, last loss {:.5})",
        s.package.display(),
        s.step,
        s.steps,
        s.seconds,
        s.last_loss
    );
    Ok(())
}

fn run_parity(steps: usize, seed: u64, unet: &str, dir: &Path) -> Result<()> {
    let cfg = unet_config(unet, 3)?;
    let m = cfg.spatial_multiple();
    let mut worst: f64 = 0.0;
    for (hw, t) in [((2 * m, 2 * m), 437.5), ((3 * m, 5 * m), 3.25)] {
        let p = parity::check(&cfg, steps, seed, dir, hw, t)?;
        println!(
            "{}x{} t={t}: tch vs reference {:.2e}, ORT vs reference {:.2e}, ORT vs tch {:.2e} (weights moved {:.2e}, loss {:.4} -> {:.4})",
            hw.0, hw.1, p.tch_vs_ref, p.ort_vs_ref, p.ort_vs_tch, p.weight_change, p.losses.0, p.losses.1
        );
        worst = worst.max(p.tch_vs_ref).max(p.ort_vs_ref).max(p.ort_vs_tch);
    }
    if worst > 1e-4 {
        return Err(Error::Backend(format!("parity: worst relative error {worst:.2e} exceeds 1e-4")));
    }
    println!("parity: ok (worst relative error {worst:.2e} <= 1e-4)");
    Ok(())
}

#[allow(clippy::too_many_arguments)] // the `pairs` options, one each
fn write_pairs(task: &str, out: &Path, crop: usize, max_side: usize, seed: u64, split: &str, gray: bool, bits: u32) -> Result<()> {
    let task = Task::parse(task)?;
    let dir = default_data_dir().join(split);
    let n = write_eval_pairs(task, &dir, out, crop, max_side, seed, gray, bits).map_err(|e| Error::Backend(e.to_string()))?;
    let grey = if gray { " grey" } else { "" };
    println!("wrote {n}{grey} {bits}-bit {} pairs ({crop}×{crop} crops of {}) to {}", task.name(), dir.display(), out.display());
    Ok(())
}

fn shrink(split: &str, out: &Path, max_side: usize, quality: u8) -> Result<()> {
    let src = default_data_dir().join(split);
    let dst = out.join(split);
    let n = bridge_export::data::write_shrunk(&src, &dst, max_side, quality).map_err(|e| Error::Backend(e.to_string()))?;
    println!("wrote {n} photos of {} to {}", src.display(), dst.display());
    Ok(())
}
