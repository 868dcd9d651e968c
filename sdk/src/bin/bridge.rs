//! `bridge` — libbridge's command-line tool.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Replay { files } => replay(&files),
    }
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
