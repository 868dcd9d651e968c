// libbridge's shared library carries a SONAME so that installed copies can be versioned
// (libbridge.so -> libbridge.so.0 -> libbridge.so.0.1.0); `make install` makes the links.
fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbridge.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
