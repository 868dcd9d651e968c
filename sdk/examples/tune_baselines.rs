//! Where the classical baselines' parameters (`bridge::baseline`) come from: sweep them on
//! pairs made from the *training* photographs (`.deps/data/train`, never the held-out test
//! set), same crops and seed as the cards' pairs, and print mean PSNR/SSIM per setting
//! (deblurring twice: 16-bit and 8-bit inputs).
//!
//! ```sh
//! cargo run --release -p bridge --example tune_baselines -- [TASK...]   # sr4 denoise deblur jpeg
//! ```

use bridge::baseline::{Degradation, PairsInfo, Params, nlm::NlmParams, wiener::gaussian_kernel};
use bridge::eval::{classical, load_pairs};
use bridge_export::data::write_eval_pairs;
use bridge_export::package::Task;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let photos = root.join(".deps/data/train");
    let mut tasks: Vec<String> = std::env::args().skip(1).collect();
    if tasks.is_empty() {
        tasks = ["sr4", "denoise", "deblur", "jpeg"].map(String::from).to_vec();
    }
    // Deblurring is also tuned on 8-bit inputs (its NSR depends on the rounding noise).
    let runs: Vec<(String, u32)> =
        tasks.iter().flat_map(|t| if t == "deblur" { vec![(t.clone(), 16), (t.clone(), 8)] } else { vec![(t.clone(), 16)] }).collect();
    for (task, bits) in &runs {
        let dir = std::env::temp_dir().join(format!("bridge-tune-{task}-{bits}-{}", std::process::id()));
        let n = write_eval_pairs(Task::parse(task)?, &photos, &dir, 256, 1024, 2024, false, *bits)?;
        let pairs = load_pairs(&dir)?;
        let info = PairsInfo::read(&dir)?.ok_or("no degradation.json")?;
        println!("## {task}, {bits}-bit inputs: {n} training crops, {:?}", info.degradation);
        let settings: Vec<Params> = match info.degradation {
            Degradation::GaussianBlur { sigma, size } => {
                [1e-10, 1e-9, 1e-8, 3e-8, 1e-7, 3e-7, 1e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
                    .iter()
                    .map(|&nsr| Params::Wiener { kernel: gaussian_kernel(sigma, size), nsr })
                    .collect()
            }
            Degradation::BicubicDown { factor } => {
                [0, 5, 10, 20, 40].iter().map(|&iterations| Params::BackProject { factor, iterations, step: 1.0 }).collect()
            }
            Degradation::GaussianNoise { sigma } => vec![
                Params::Nlm(NlmParams::for_sigma(sigma)),
                Params::Nlm(NlmParams { h: 0.4 * sigma, patch: 2, ..NlmParams::for_sigma(sigma) }),
                Params::Nlm(NlmParams { h: 0.45 * sigma, patch: 2, ..NlmParams::for_sigma(sigma) }),
                Params::Nlm(NlmParams { h: 0.35 * sigma, patch: 3, ..NlmParams::for_sigma(sigma) }),
            ],
            Degradation::Jpeg { .. } => {
                [4.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0].iter().map(|&s| Params::Nlm(NlmParams::for_sigma(s))).collect()
            }
        };
        for p in &settings {
            let r = classical(&pairs, p, |_| {})?;
            println!("| {} | {:.3} | {:.4} | {:.2} s |", r.label, r.psnr, r.ssim, r.seconds);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
