//! Degrade one image the way the training data is degraded (to make sample inputs):
//!
//! ```text
//! cargo run -p bridge-export --example degrade -- denoise docs/assets/chelsea-256.png noisy.png [seed]
//! ```
//!
//! Tasks: `sr4` (bicubic ×4 down), `denoise` (Gaussian σ = 25/255), `deblur` (Gaussian blur σ = 3),
//! `jpeg` (quality 10). Writes an 8-bit RGB PNG.

use bridge_export::data::{load_photo, save_png};
use bridge_export::degrade::Rng;
use bridge_export::package::Task;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 3 {
        return Err("usage: degrade TASK IN OUT [SEED]".into());
    }
    let task = Task::parse(&a[0])?;
    let seed: u64 = a.get(3).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let photo = load_photo(Path::new(&a[1]), None)?;
    let out = task.degradation().apply(photo.image.view(), &mut Rng::new(seed, 0))?.image;
    let (_, h, w) = out.dim();
    save_png(out.view(), Path::new(&a[2]), false)?;
    println!("wrote {} ({w}x{h}, {})", a[2], task.name());
    Ok(())
}
