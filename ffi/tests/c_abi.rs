//! The C ABI from C and C++: builds `tests/c/abi_test.c` and the examples (`examples/c/*.c`,
//! `examples/cpp/restore.cpp`) with the system gcc/g++ against the libbridge cargo built for
//! this test run, runs them on fixtures written here, and runs the C test under valgrind.
//!
//! C is compiled with `-std=c99 -Wall -Wextra -Werror -pedantic`; the header must also compile
//! as C++ (`-std=c++11 -pedantic`). ONNX Runtime is installed into `.deps/onnxruntime` when
//! missing (`scripts/install-ort.sh`); libbridge finds it there by itself.

mod fixtures;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const C_FLAGS: [&str; 6] = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1"];
const CXX_FLAGS: [&str; 6] = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1"];

/// A folder with `libbridge.so` and its SONAME link `libbridge.so.0`, freshly built.
///
/// Cargo does not build a cdylib-only library for its integration tests, so this runs
/// `cargo build -p bridge-ffi` itself, into this test's target folder and profile (the `test`
/// profile reuses the SDK already compiled for the tests). Cargo writes only `libbridge.so`;
/// the SONAME link lives in the scratch folder.
fn lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
        let target = profile_dir.parent().expect("target folder");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "test",
            Some(other) => other,
            None => "test",
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        run(Command::new(cargo)
            .args(["build", "--quiet", "--locked", "-p", "bridge-ffi", "--lib", "--profile", profile, "--target-dir"])
            .arg(target)
            .current_dir(fixtures::repo_root()));
        let built = profile_dir.join("libbridge.so");
        assert!(built.is_file(), "cargo build did not write {}", built.display());
        let dir = work().join("lib");
        std::fs::create_dir_all(&dir).expect("lib folder");
        for name in ["libbridge.so", "libbridge.so.0"] {
            let _ = std::fs::remove_file(dir.join(name));
            std::os::unix::fs::symlink(&built, dir.join(name)).expect("symlink libbridge");
        }
        dir
    })
}

/// A scratch folder for this process.
fn work() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Inside the build's target/tmp (never the shared system temp folder); folders of
        // earlier runs whose process is gone are removed.
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        if let Ok(rd) = std::fs::read_dir(root) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("bridge-c-abi-")
                    && !Path::new("/proc").join(pid).exists()
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let d = root.join(format!("bridge-c-abi-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch folder");
        d
    })
}

/// The fixtures (models, PPMs), written once per process.
fn fixture_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        fixtures::ensure_ort();
        let d = work().join("fixtures");
        fixtures::write_all(&d);
        d
    })
}

fn show(o: &Output) -> String {
    format!("status {}\n--- stdout\n{}\n--- stderr\n{}", o.status, String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?} failed: {}", show(&o));
    o
}

/// Compile `sources` with `compiler` and `flags` into `work()/name`, linked to libbridge.
fn build(compiler: &str, flags: &[&str], sources: &[&Path], name: &str, extra: &[&str]) -> PathBuf {
    let root = fixtures::repo_root();
    let lib = lib_dir();
    let out = work().join(name);
    let mut cmd = Command::new(compiler);
    cmd.args(flags).arg("-I").arg(root.join("include")).args(sources).arg("-o").arg(&out);
    cmd.arg(format!("-L{}", lib.display())).arg("-lbridge").arg(format!("-Wl,-rpath,{}", lib.display())).args(extra);
    run(&mut cmd);
    out
}

fn abi_test_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = fixtures::repo_root().join("ffi/tests/c/abi_test.c");
        build("gcc", &C_FLAGS, &[&src], "abi_test", &["-pthread", "-lm"])
    })
}

fn read_ppm(path: &Path) -> (usize, usize, Vec<u8>) {
    let bytes = std::fs::read(path).expect("read PPM");
    let header: Vec<&[u8]> = bytes.splitn(5, |b| b.is_ascii_whitespace()).collect();
    assert_eq!(header[0], b"P6", "{}", path.display());
    let num = |s: &[u8]| std::str::from_utf8(s).unwrap().parse::<usize>().unwrap();
    let (w, h) = (num(header[1]), num(header[2]));
    assert_eq!(num(header[3]), 255);
    let px = header[4].to_vec();
    assert_eq!(px.len(), w * h * 3);
    (w, h, px)
}

/// The bad-input matrix and the rest of `abi_test.c`, natively.
#[test]
fn c_abi_test() {
    let dir = fixture_dir();
    let o = run(Command::new(abi_test_binary()).arg(dir));
    let text = String::from_utf8_lossy(&o.stdout);
    println!("{text}");
    assert!(text.contains(" 0 failures"), "{}", show(&o));
}

/// `abi_test.c` under valgrind memcheck: no errors, no definite leaks. The suppressions file
/// (`tests/c/valgrind.supp`) documents each entry.
#[test]
fn c_abi_test_under_valgrind() {
    let dir = fixture_dir();
    let supp = fixtures::repo_root().join("ffi/tests/c/valgrind.supp");
    let log = work().join("valgrind.log");
    let o = Command::new("valgrind")
        .args(["--tool=memcheck", "--leak-check=full", "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite"])
        .args(["--error-exitcode=99", "--num-callers=30"])
        .arg(format!("--suppressions={}", supp.display()))
        .arg(format!("--log-file={}", log.display()))
        .arg(abi_test_binary())
        .arg(dir)
        // Skips the cross-thread cancel of the deliberately slow network (see abi_test.c).
        .env("BRIDGE_ABI_TEST_VALGRIND", "1")
        .output()
        .expect("valgrind is needed for this test (scripts/test-c.sh installs it: apt-get install valgrind)");
    let report = std::fs::read_to_string(&log).unwrap_or_default();
    let summary: Vec<&str> = report.lines().filter(|l| l.contains("ERROR SUMMARY") || l.contains("definitely lost")).collect();
    println!("valgrind: {}", summary.join(" | "));
    assert!(o.status.success(), "valgrind run failed: {}\n--- valgrind log\n{report}", show(&o));
    assert!(report.contains("ERROR SUMMARY: 0 errors"), "valgrind found errors:\n{report}");
    let definite = report.lines().find(|l| l.contains("definitely lost:"));
    assert!(definite.is_none_or(|l| l.contains("definitely lost: 0 bytes")), "definite leaks:\n{report}");
}

/// `examples/c/restore.c` and `examples/cpp/restore.cpp` restore the sample photo (file → file)
/// and agree byte for byte; the SR ×2 oracle package makes the expected image known.
#[test]
fn restore_examples() {
    let root = fixtures::repo_root();
    let dir = fixture_dir();
    let c = build("gcc", &C_FLAGS, &[&root.join("examples/c/restore.c")], "restore", &[]);
    let cxx = build("g++", &CXX_FLAGS, &[&root.join("examples/cpp/restore.cpp")], "restore_cpp", &[]);
    let model = dir.join("oracle_sr2.onnx");
    let input = dir.join("chelsea.ppm");
    let (out_c, out_cxx) = (work().join("out-c.ppm"), work().join("out-cpp.ppm"));
    let o = run(Command::new(&c).arg(&model).arg(&input).arg(&out_c).args(["3", "7"]));
    println!("{}", String::from_utf8_lossy(&o.stdout));
    run(Command::new(&cxx).arg(&model).arg(&input).arg(&out_cxx).args(["3", "7"]));
    let (w, h, src) = read_ppm(&input);
    let (ow, oh, got) = read_ppm(&out_c);
    assert_eq!((ow, oh), (2 * w, 2 * h));
    assert_eq!(got, read_ppm(&out_cxx).2, "C and C++ examples disagree");
    // Nearest ×2 then the oracle: out(x, y) = round(255·(0.5·v/255 + 0.375)), v = src(x/2, y/2).
    let mut worst = 0i32;
    for y in 0..oh {
        for x in 0..ow {
            for k in 0..3 {
                let v = src[((y / 2) * w + x / 2) * 3 + k] as f64;
                let want = ((0.5 * v / 255.0 + 0.375) * 255.0).round() as i32;
                worst = worst.max((got[(y * ow + x) * 3 + k] as i32 - want).abs());
            }
        }
    }
    assert!(worst <= 1, "restored pixels differ from the oracle by up to {worst}");
    // A bad model path fails cleanly with the status name on stderr.
    let o = Command::new(&c).arg(dir.join("missing.onnx")).arg(&input).arg(&out_c).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("BRIDGE_ERR_IO"), "{}", show(&o));
}

/// `examples/c/camera_loop.c`: NV12 frames through a small U-Net with reused buffers; the
/// program itself fails if memory grows beyond its bound or handles leak.
#[test]
fn camera_loop_example() {
    let root = fixtures::repo_root();
    let dir = fixture_dir();
    let bin = build("gcc", &C_FLAGS, &[&root.join("examples/c/camera_loop.c")], "camera_loop", &[]);
    let o = run(Command::new(&bin).arg(dir.join("unet.onnx")).args(["40", "160", "120", "16"]));
    let text = String::from_utf8_lossy(&o.stdout);
    println!("{text}");
    assert!(text.contains("frames/s") && text.contains("growth"), "{}", show(&o));
}

/// The header alone compiles as C++11 (pedantic), and as C99 in a translation unit of its own.
#[test]
fn header_compiles_standalone() {
    let root = fixtures::repo_root();
    let src = work().join("header_only.c");
    std::fs::write(&src, "#include <bridge.h>\nint main(void) { return bridge_abi_version() == BRIDGE_ABI_VERSION ? 0 : 1; }\n").unwrap();
    for (compiler, std_flag, lang) in [("gcc", "-std=c99", "c"), ("g++", "-std=c++11", "c++")] {
        let obj = work().join(format!("header_only-{lang}.o"));
        run(Command::new(compiler)
            .args(["-x", lang, std_flag, "-Wall", "-Wextra", "-Werror", "-pedantic", "-c", "-I"])
            .arg(root.join("include"))
            .arg(&src)
            .arg("-o")
            .arg(&obj));
    }
}

/// The C program in README.md's "Using libbridge from C" compiles cleanly and runs.
#[test]
fn readme_example() {
    let root = fixtures::repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let section = readme.split("## Using libbridge from C").nth(1).expect("README has the C section");
    let code = section.split("```c\n").nth(1).and_then(|s| s.split("```").next()).expect("a ```c block");
    let dir = work().join("readme");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("readme.c");
    std::fs::write(&src, code).unwrap();
    let bin = build("gcc", &C_FLAGS, &[&src], "readme/readme", &[]);
    std::fs::copy(fixture_dir().join("oracle.onnx"), dir.join("model.onnx")).unwrap();
    let o = run(Command::new(&bin).current_dir(&dir));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "restored", "{}", show(&o));
}

/// The SDK side of `bridge_model_load_memory`: `Restorer::builder_from_memory` runs a package
/// from bytes, and refuses one whose mean network (a second file) it cannot resolve.
#[test]
fn sdk_builder_from_memory() {
    let dir = fixture_dir();
    let bytes = std::fs::read(dir.join("oracle.onnx")).unwrap();
    let mut r = sdk::restorer::Restorer::builder_from_memory(bytes, "oracle in memory").threads(1).build().expect("package from memory");
    assert_eq!(r.model_path(), None);
    let x = sdk::Tensor::from_elem((1, 3, 4, 6), 0.5);
    let y = r.restore_rgb(x.view()).unwrap();
    assert!(y.iter().all(|v| (v - 0.625).abs() < 1e-6), "0.5·0.5 + 0.375");
    let nadb = std::fs::read(dir.join("nadb.onnx")).unwrap();
    let e = sdk::restorer::Restorer::builder_from_memory(nadb, "nadb in memory").build().unwrap_err();
    assert!(matches!(&e, sdk::Error::Package { reason, .. } if reason.contains("mean network")), "{e}");
}
