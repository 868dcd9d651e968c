//! Writes the fixtures the C examples and `scripts/test-c.sh` use: tiny ONNX model packages
//! (`oracle.onnx`, `unet.onnx`, …) and the sample photo as `chelsea.ppm`.
//!
//! Usage: `cargo run -p bridge-ffi --example c-fixtures -- DIR` (default `target/c-fixtures`).

#[path = "../tests/fixtures/mod.rs"]
mod fixtures;

fn main() {
    let dir = std::env::args().nth(1).map(std::path::PathBuf::from).unwrap_or_else(|| fixtures::repo_root().join("target/c-fixtures"));
    fixtures::write_all(&dir);
    println!("{}", dir.display());
}
