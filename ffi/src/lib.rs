//! libbridge's C ABI. A thin, panic-safe skin over the `bridge` SDK: no bridge math lives here.
//! (Entry points beyond the version query arrive with the C-ABI issue.)

/// The ABI version of this libbridge build (major·10000 + minor·100 + patch).
///
/// Thread-safety: may be called from any thread at any time. Ownership: nothing to free.
#[unsafe(no_mangle)]
pub extern "C" fn bridge_abi_version() -> u32 {
    let major: u32 = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap_or(0);
    let minor: u32 = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap_or(0);
    let patch: u32 = env!("CARGO_PKG_VERSION_PATCH").parse().unwrap_or(0);
    major * 10000 + minor * 100 + patch
}

#[doc(hidden)]
pub use sdk as _sdk;
