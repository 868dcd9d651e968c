//! Generates the ONNX protobuf types from the vendored `proto/onnx.proto` with `protox` (a pure-Rust
//! protobuf compiler) and `prost-build`, so building this crate needs neither `protoc` nor libtorch.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let fds = protox::compile(["onnx.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
