//! `include/bridge.h` must be exactly what cbindgen generates from `ffi/src` with
//! `ffi/cbindgen.toml`. `scripts/gen-header.sh` regenerates it (this test with
//! `BRIDGE_UPDATE_HEADER=1`).

use std::path::Path;

#[test]
fn header_is_current() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = crate_dir.parent().expect("ffi/ has a parent").join("include/bridge.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("read ffi/cbindgen.toml");
    let bindings = cbindgen::Builder::new().with_crate(crate_dir).with_config(config).generate().expect("cbindgen parses ffi/src");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    if std::env::var_os("BRIDGE_UPDATE_HEADER").is_some_and(|v| v == "1") {
        std::fs::write(&header, &generated).expect("write include/bridge.h");
        eprintln!("wrote {}", header.display());
        return;
    }
    let committed = std::fs::read(&header).unwrap_or_default();
    if committed != generated {
        let (a, b) = (String::from_utf8_lossy(&committed), String::from_utf8_lossy(&generated));
        let line = a.lines().zip(b.lines()).position(|(x, y)| x != y).unwrap_or(a.lines().count().min(b.lines().count()));
        panic!(
            "include/bridge.h is stale (first difference at line {}: committed {:?}, generated {:?}); run scripts/gen-header.sh",
            line + 1,
            a.lines().nth(line).unwrap_or("<end>"),
            b.lines().nth(line).unwrap_or("<end>")
        );
    }
}
