//! The small restoration U-Net (`bridge_export::fixtures::unet`), under the name that
//! `tests/runtime_models.rs` and `sdk/benches/runtime.rs` include with `#[path]`.

#[allow(unused_imports)] // not every test target that includes `runtime_models` runs the U-Net
pub use bridge_export::fixtures::unet;
