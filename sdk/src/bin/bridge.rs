//! `bridge` — libbridge's command-line tool.

// Submodules live in bridge/ (a file directly in src/bin/ would be taken for another binary).
#[path = "bridge/image_file.rs"]
mod image_file;
#[path = "bridge/interrupt.rs"]
mod interrupt;

use bridge::image::ImageRef;
use bridge::restorer::{Progress, Restorer, Stage};
use bridge::runtime::{CudaOptions, ExecutionProvider, SessionConfig, TensorRtOptions};
use clap::{Parser, Subcommand, ValueEnum};
use image_file::OutputFormat;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "bridge", version, about = "Diffusion-bridge image restoration (libbridge)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay golden trajectories recorded from the official implementations.
    Replay {
        /// Golden files (`bridge-golden/1` JSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Restore an image with a model package.
    Restore(Box<RestoreArgs>),
    /// PSNR/SSIM/colour shift of a model over image pairs across samplers and NFEs, beside the input and a classical baseline (markdown table + PNG plot).
    Eval(Box<EvalArgs>),
    /// Print a model package's metadata and graph signature.
    Info {
        /// The model package (.onnx).
        model: PathBuf,
        /// Explicit path of libonnxruntime (file or folder).
        #[arg(long)]
        ort_lib: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct EvalArgs {
    /// The model package (.onnx); without one only the baselines are scored.
    #[arg(short, long)]
    model: Option<PathBuf>,
    /// Classical baseline row: `auto` (from the pairs' degradation.json: Wiener for blur,
    /// back-projection for down-sampling, NLM for noise and JPEG), `wiener`, `backproject`, `nlm`, `none`.
    #[arg(long, default_value = "auto")]
    baseline: String,
    /// Folder with `clean/` and `degraded/` images matched by file name (e.g. from `bridge-export pairs`).
    #[arg(short, long)]
    pairs: PathBuf,
    /// Samplers, comma-separated (default: the package's).
    #[arg(long, value_delimiter = ',')]
    sampler: Vec<String>,
    /// NFEs, comma-separated (default: the package's).
    #[arg(long, value_delimiter = ',')]
    nfe: Vec<usize>,
    /// η for dbim / implicit / i3sb.
    #[arg(long)]
    eta: Option<f64>,
    /// Noise seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the markdown table here.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Write the PNG plot here.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Title (default: the package's name).
    #[arg(long)]
    title: Option<String>,
    #[command(flatten)]
    colour: ColourArgs,
    /// Threads per restore: ONNX Runtime intra-op threads and the most the sampler step uses (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Explicit path of libonnxruntime (file or folder).
    #[arg(long)]
    ort_lib: Option<PathBuf>,
}

/// The colour options `restore` and `eval` share, so both spell and document them alike.
#[derive(clap::Args)]
struct ColourArgs {
    /// Colour correction: `off` (default), `wavelet` or `wavelet:LEVELS` — keep the output's
    /// detail, take its coarse colours from the input (undoes a model's colour cast).
    #[arg(long, default_value = "off")]
    color_fix: String,
    /// Average the network over the three cyclic shifts of the colour channels: the network's
    /// channel asymmetry (a tint) cancels, a grey input stays grey; three times the network time.
    /// `--channel-ensemble` or `=true` on, `=false` off (default: the package's, `bridge info`
    /// shows it).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    channel_ensemble: Option<bool>,
}

impl ColourArgs {
    fn color_fix(&self) -> bridge::Result<bridge::color_fix::ColorFix> {
        bridge::color_fix::ColorFix::parse(&self.color_fix)
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Ep {
    Cpu,
    Cuda,
    Tensorrt,
}

#[derive(clap::Args)]
struct RestoreArgs {
    /// The model package (.onnx).
    #[arg(short, long)]
    model: PathBuf,
    /// Input image (PNG, JPEG, TIFF; 8- or 16-bit).
    #[arg(short, long)]
    input: PathBuf,
    /// Output image (format from the extension; 16-bit inputs stay 16-bit in PNG/TIFF).
    #[arg(short, long)]
    output: PathBuf,
    /// Network evaluations (default: the package's).
    #[arg(long)]
    nfe: Option<usize>,
    /// Sampler (default: the package's), e.g. dbim, implicit, heun, i2sb, euler-sde, i3sb,
    /// dbmsolver (options in the name: dbmsolver[-time][-sde2]).
    #[arg(long)]
    sampler: Option<String>,
    /// η for dbim / implicit (0 deterministic … 1 ancestral) and i3sb (≥ 0; default 0.6).
    #[arg(long)]
    eta: Option<f64>,
    /// Churn for heun.
    #[arg(long)]
    churn: Option<f64>,
    /// Noise seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Class label for a class-conditional network (default: the package's bridge.class_label).
    #[arg(long = "class", value_name = "N")]
    class: Option<i64>,
    /// Tile side in pixels (0: whole frame; default: the package's, else 512).
    #[arg(long)]
    tile: Option<usize>,
    /// Tile overlap in pixels.
    #[arg(long)]
    overlap: Option<usize>,
    /// Tiles per network run.
    #[arg(long)]
    tile_batch: Option<usize>,
    /// Execution provider.
    #[arg(long, value_enum, default_value_t = Ep::Cpu)]
    ep: Ep,
    /// Run on the CPU if the provider cannot be used (instead of failing).
    #[arg(long)]
    cpu_fallback: bool,
    /// GPU device id (cuda, tensorrt).
    #[arg(long, default_value_t = 0)]
    device_id: i32,
    /// TensorRT: build fp16 engines.
    #[arg(long)]
    fp16: bool,
    /// TensorRT: engine cache folder.
    #[arg(long)]
    trt_cache: Option<PathBuf>,
    /// CUDA/TensorRT: capture CUDA graphs.
    #[arg(long)]
    cuda_graph: bool,
    /// Threads per restore: ONNX Runtime intra-op threads and the most the sampler step uses (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Explicit path of libonnxruntime (file or folder).
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    #[command(flatten)]
    colour: ColourArgs,
    /// Keep the sampling loop on the network's device (IO binding + step graph): `true`/`false`
    /// (default: on for cuda/tensorrt, off for cpu).
    #[arg(long)]
    device_loop: Option<bool>,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    // `bridge info m.onnx | head`: a reader that closes the pipe ends the program quietly, as it
    // does any Unix filter. Rust starts programs with SIGPIPE ignored, which turns that into a
    // panic in `println!`. Output files are written to a temporary name and renamed, and nothing
    // is printed between creating that file and the rename, so a SIGPIPE never leaves one behind.
    // An output that is itself a pipe (`-o` naming a FIFO) whose reader has gone ends the same
    // way, killed by SIGPIPE (a shell shows 141) as `cat` would, not with a `Broken pipe` error.
    // SAFETY: called first thing in main, before any thread exists; sets a default disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Replay { files } => replay(&files),
        Command::Restore(a) => report(restore(&a)),
        Command::Eval(a) => report(eval(&a)),
        Command::Info { model, ort_lib } => report(info(&model, ort_lib)),
    }
}

fn report(r: bridge::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(bridge::Error::Cancelled) if interrupt::received().is_some() => {
            let sig = interrupt::received().unwrap_or(libc::SIGINT);
            eprintln!("error: cancelled by signal {sig} (no output written)");
            // The shell convention for "ended by signal N".
            ExitCode::from(128u8.saturating_add(sig as u8))
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn provider(a: &RestoreArgs) -> ExecutionProvider {
    match a.ep {
        Ep::Cpu => ExecutionProvider::Cpu,
        Ep::Cuda => ExecutionProvider::Cuda(CudaOptions { device_id: a.device_id, cuda_graph: a.cuda_graph, ..Default::default() }),
        Ep::Tensorrt => ExecutionProvider::TensorRt(TensorRtOptions {
            device_id: a.device_id,
            fp16: a.fp16,
            engine_cache_dir: a.trt_cache.clone(),
            cuda_graph: a.cuda_graph,
            ..Default::default()
        }),
    }
}

fn restore(a: &RestoreArgs) -> bridge::Result<()> {
    // The encoder comes from the output name: an unsupported one fails before anything runs.
    let format = OutputFormat::for_path(&a.output)?;
    let mut b = Restorer::builder(&a.model)
        .execution_provider(provider(a))
        .cpu_fallback(a.cpu_fallback)
        .threads(a.threads)
        .seed(a.seed)
        .color_fix(a.colour.color_fix()?)
        .channel_ensemble(a.colour.channel_ensemble);
    if let Some(p) = &a.ort_lib {
        b = b.onnxruntime_library(p);
    }
    if let Some(s) = &a.sampler {
        b = b.sampler(s);
    }
    if let Some(c) = a.class {
        b = b.class_label(c);
    }
    if let Some(v) = a.eta {
        b = b.eta(v);
    }
    if let Some(v) = a.churn {
        b = b.churn(v);
    }
    if let Some(v) = a.nfe {
        b = b.nfe(v);
    }
    if let Some(v) = a.tile {
        b = b.tile(v);
    }
    if let Some(v) = a.overlap {
        b = b.tile_overlap(v);
    }
    if let Some(v) = a.tile_batch {
        b = b.tile_batch(v);
    }
    if let Some(v) = a.device_loop {
        b = b.device_loop(v);
    }
    let bar = if a.quiet { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(1000) };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{bar:40}] {percent:>3}% {msg} (eta {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let pb = bar.clone();
    b = b.on_progress(move |p: &Progress| {
        pb.set_position((p.fraction() * 1000.0) as u64);
        let stage = if p.stage == Stage::MeanNetwork { "mean network" } else { "step" };
        let tiles = if p.tiles > 1 { format!(", tile {}/{}", p.tile, p.tiles) } else { String::new() };
        pb.set_message(format!("{stage} {}/{}{tiles}", (p.call + 1).min(p.calls.max(1)), p.calls));
        true
    });

    let mut restorer = b.build()?;
    if let Some(why) = restorer.fallback_reason() {
        eprintln!("note: running on the CPU: {why}");
    }
    // The input may have at most max_pixels / scale² pixels; the header is checked against that
    // before any pixel buffer exists, and the file is opened and decoded once.
    let s = restorer.package().sr_scale.max(1) as u64;
    let max_input = (restorer.options().max_pixels as u64) / s.saturating_mul(s);
    let dynimg = image_file::decode(&a.input, max_input)?;
    let (w, h) = (dynimg.width(), dynimg.height());
    if dynimg.color().has_alpha() {
        eprintln!("note: {} has an alpha channel; it is dropped", a.input.display());
    }
    // Ctrl-C from here on cancels through the restorer's token (ONNX Runtime stops the running
    // network call) and leaves no output file.
    interrupt::cancel_on_signal(restorer.cancel_token());
    let deep = matches!(dynimg.color().bytes_per_pixel() / dynimg.color().channel_count().max(1), 2 | 4);
    let out = if deep {
        let rgb = dynimg.to_rgb16();
        restorer.restore(&ImageRef::rgb16(rgb.as_raw(), w as usize, h as usize)?)
    } else {
        let rgb = dynimg.to_rgb8();
        restorer.restore(&ImageRef::rgb8(rgb.as_raw(), w as usize, h as usize)?)
    };
    let out = match out {
        Ok(_) if interrupt::received().is_some() => {
            bar.abandon();
            return Err(bridge::Error::Cancelled);
        }
        Ok(o) => o,
        Err(e) => {
            bar.abandon();
            return Err(e);
        }
    };
    bar.finish_and_clear();
    let bytes = format.encode(&out, &a.output)?;
    bridge::atomic_file::write_atomic(&a.output, &bytes, || interrupt::received().is_none())?;
    if !a.quiet {
        eprintln!(
            "restored {} ({}x{}) -> {} ({}x{}), {} NFE {}{}, seed {}, {} on {} ({})",
            a.input.display(),
            w,
            h,
            a.output.display(),
            out.width(),
            out.height(),
            bridge::runtime::sampler_label(&restorer.options().sampler),
            restorer.options().nfe,
            if restorer.options().channel_ensemble { " + channel ensemble" } else { "" },
            a.seed,
            restorer.package().family,
            restorer.provider(),
            match restorer.sampling_loop() {
                bridge::runtime::SamplingLoop::Device => "device loop".to_string(),
                bridge::runtime::SamplingLoop::Host(why) => format!("host loop: {why}"),
                bridge::runtime::SamplingLoop::None => "no loop".to_string(),
            }
        );
    }
    Ok(())
}

fn eval(a: &EvalArgs) -> bridge::Result<()> {
    let o = bridge::eval::EvalOptions {
        model: a.model.clone(),
        baseline: bridge::baseline::Method::parse(&a.baseline)?,
        pairs: a.pairs.clone(),
        samplers: a.sampler.clone(),
        nfes: a.nfe.clone(),
        eta: a.eta,
        seed: a.seed,
        markdown: a.markdown.clone(),
        plot: a.plot.clone(),
        threads: a.threads,
        ort_lib: a.ort_lib.clone(),
        title: a.title.clone(),
        color_fix: a.colour.color_fix()?,
        channel_ensemble: a.colour.channel_ensemble,
    };
    bridge::eval::run(&o, |msg| eprint!("\r{msg}    ")).map(|_| eprintln!())
}

fn info(model: &Path, ort_lib: Option<PathBuf>) -> bridge::Result<()> {
    let cfg = SessionConfig { library: ort_lib, threads: 1, ..Default::default() };
    let mi = bridge::runtime::session::inspect(model, &cfg)?;
    println!("{}", model.display());
    let sig = |s: &bridge::runtime::package::TensorSig| {
        let dims: Vec<String> = s.shape.as_deref().unwrap_or(&[]).iter().map(|d| if *d < 0 { "?".into() } else { d.to_string() }).collect();
        format!("{} {:?} [{}]", s.name, s.elem, dims.join(", "))
    };
    println!("graph inputs:");
    for s in &mi.inputs {
        println!("  {}", sig(s));
    }
    println!("graph outputs:");
    for s in &mi.outputs {
        println!("  {}", sig(s));
    }
    println!("metadata:");
    if mi.props.is_empty() {
        println!("  (none)");
    }
    for (k, v) in &mi.props {
        println!("  {k} = {v}");
    }
    // "valid" means what loading checks: everything a restore needs (docs/model-package.md).
    let pkg = bridge::runtime::ModelPackage::load(model)?;
    let (meta, plan) = (pkg.meta(), pkg.plan());
    println!("package: valid (schema {})", meta.schema_version);
    match bridge::runtime::build_family(meta) {
        Ok(f) => println!("  family: {}", f.name()),
        Err(e) => println!("  family: {e}"),
    }
    match bridge::runtime::families::default_sampler(meta) {
        Ok(s) => println!(
            "  default sampler: {}, {} NFE{}",
            bridge::runtime::sampler_label(&s),
            meta.nfe,
            if meta.channel_ensemble { ", channel ensemble (--channel-ensemble=false turns it off)" } else { "" }
        ),
        Err(e) => println!("  default sampler: {e}"),
    }
    println!(
        "  pixels: range [{}, {}], {:?}, SR x{} ({}), spatial multiple {}",
        meta.value_range.0,
        meta.value_range.1,
        meta.channel_order,
        meta.sr_scale,
        meta.sr_upsample.name(),
        meta.spatial_multiple
    );
    if let Some(p) = &meta.prepass {
        println!("  pre-pass: {}", p.label());
    }
    if let Some((h, w)) = plan.fixed_hw {
        println!("  the graph fixes the input size to {h}x{w} (images are tiled at that size)");
    }
    if let Some(m) = &meta.mean_network {
        let t = m.t_net.map_or("the family's".to_string(), |t| t.to_string());
        println!("  mean network: {} (sha256 {}), t_net {t}", m.path, m.sha256);
    }
    Ok(())
}

fn replay(files: &[PathBuf]) -> ExitCode {
    let (mut passed, mut failed) = (0usize, 0usize);
    for f in files {
        match bridge::golden::replay_file(f) {
            Ok(o) => {
                let verdict = if o.passed { "PASS" } else { "FAIL" };
                let extra = o.detail.map(|d| format!(" ({d})")).unwrap_or_default();
                println!("{verdict} {} max_rel_err={:.3e} tol={:.0e}{extra}", f.display(), o.max_rel_err, o.tolerance);
                if o.passed { passed += 1 } else { failed += 1 }
            }
            Err(e) => {
                println!("FAIL {} max_rel_err=inf ({e})", f.display());
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
