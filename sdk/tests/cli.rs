//! The `bridge` command as a hostile user drives it: the output is written all-or-nothing
//! (encoder failure, unsupported extension, a full device), the input is read once within
//! limits (a pixel bomb, a file swapped during the run), and Ctrl-C cancels a network that
//! would never finish.
//!
//! Runs the built `bridge` binary; ONNX Runtime comes from the source tree's `.deps/onnxruntime`
//! (debug builds), installed by `scripts/install-ort.sh` when missing.

use bridge_export::fixtures as fx;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tmp(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bridge-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An oracle package (`raw = 0.5·cond + 0.25`) with super-resolution factor `sr`.
fn oracle(dir: &Path, sr: usize) -> PathBuf {
    fx::ensure_ort();
    let mut g = fx::oracle(None);
    g.meta("bridge.sr_scale", &sr.to_string());
    fx::save(&g, &dir.join("oracle.onnx"))
}

fn bridge() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bridge"));
    c.stdin(Stdio::null());
    c
}

/// `bridge restore` on one thread, not yet run (without `-q`: its summary line is printed).
fn restore_cmd(model: &Path, input: &Path, output: &Path, extra: &[&str]) -> Command {
    let mut c = bridge();
    c.arg("restore").arg("--threads").arg("1").arg("-m").arg(model).arg("-i").arg(input).arg("-o").arg(output).args(extra);
    c
}

fn restore(model: &Path, input: &Path, output: &Path, extra: &[&str]) -> Output {
    restore_cmd(model, input, output, extra).arg("-q").output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn gray_png(path: &Path, w: u32, h: u32) {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7 + y) as u8, 100, 200])).save(path).unwrap();
}

/// Files in `dir` other than `keep` (left-over temporary files).
fn others(dir: &Path, keep: &[&Path]) -> Vec<PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| !keep.iter().any(|k| k == p)).collect()
}

/// `-i s.jpg -o s.jpg` where the encoder fails (a 2× super-resolution output wider than JPEG's
/// 65535 pixels): an error exit, and the input keeps every byte.
#[test]
fn encoder_failure_keeps_the_input() {
    let dir = tmp("enc");
    let model = oracle(&dir, 2);
    let img = dir.join("s.jpg");
    image::RgbImage::from_pixel(32768, 1, image::Rgb([90, 120, 150])).save(&img).unwrap();
    let before = std::fs::read(&img).unwrap();
    let o = restore(&model, &img, &img, &["--tile", "0"]);
    assert!(!o.status.success(), "{o:?}");
    assert!(stderr(&o).contains("s.jpg"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&img).unwrap(), before, "the input was changed");
    assert_eq!(others(&dir, &[&img, &model]), Vec::<PathBuf>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

/// An output name with no encoder is refused before anything runs; an existing file of that
/// name is untouched.
#[test]
fn unsupported_extension_leaves_the_output_alone() {
    let dir = tmp("ext");
    let model = oracle(&dir, 1);
    let input = dir.join("in.png");
    gray_png(&input, 16, 12);
    let out = dir.join("out.xyz");
    std::fs::write(&out, b"precious").unwrap();
    let o = restore(&model, &input, &out, &[]);
    assert_eq!(std::fs::read(&out).unwrap(), b"precious", "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr(&o).contains("unsupported output format"), "{}", stderr(&o));
    // A good name next to it works (the refusal is about the name, not the run).
    let good = dir.join("out.png");
    let o = restore(&model, &input, &good, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(image::open(&good).unwrap().width(), 16);
    assert_eq!(others(&dir, &[&input, &out, &good, &model]), Vec::<PathBuf>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writing to a full device (through `full.png -> /dev/full`) is an error exit, not success.
#[test]
fn full_device_is_an_error() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let dir = tmp("full");
    let model = oracle(&dir, 1);
    let input = dir.join("in.png");
    gray_png(&input, 16, 12);
    let out = dir.join("full.png");
    std::os::unix::fs::symlink("/dev/full", &out).unwrap();
    let o = restore(&model, &input, &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr(&o).contains("full.png"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A PNG whose header claims `w`×`h` RGB8 pixels, followed by a little compressed data.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    // zlib: a stored block of 1000 zero bytes (filter 0 rows of black), not the whole image.
    let mut z = vec![0x78, 0x01, 0x01];
    z.extend_from_slice(&1000u16.to_le_bytes());
    z.extend_from_slice(&(!1000u16).to_le_bytes());
    z.extend_from_slice(&[0; 1000]);
    chunk(&mut png, b"IDAT", &z);
    chunk(&mut png, b"IEND", &[]);
    png
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// Run `bridge` with its address space capped at 8 GiB, so that allocating the 30 GB a
/// 100000×100000 RGB image needs fails (and aborts) instead of succeeding lazily.
fn capped(c: &mut Command) -> &mut Command {
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        c.pre_exec(|| {
            let cap = libc::rlimit { rlim_cur: 8 << 30, rlim_max: 8 << 30 };
            if libc::setrlimit(libc::RLIMIT_AS, &cap) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// A header claiming 100000×100000 pixels is refused from the header: a clean error exit,
/// quickly, under a memory cap far below what the pixels would need.
#[test]
fn pixel_bomb_is_refused_from_the_header() {
    let dir = tmp("bomb");
    let model = oracle(&dir, 1);
    let bomb = dir.join("bomb.png");
    std::fs::write(&bomb, png_claiming(100_000, 100_000)).unwrap();
    let t = Instant::now();
    let mut c = bridge();
    c.arg("restore").arg("-q").arg("--threads").arg("1").arg("-m").arg(&model).arg("-i").arg(&bomb).arg("-o").arg(dir.join("o.png"));
    let o = capped(&mut c).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr(&o).contains("bomb.png"), "{}", stderr(&o));
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    assert!(!dir.join("o.png").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The input is opened once: a bomb renamed over it right after `bridge` first read it is
/// never decoded (the old command checked one file and decoded another, and aborted).
#[test]
fn input_swapped_after_reading_is_not_reread() {
    let dir = tmp("swap");
    let model = oracle(&dir, 1);
    let input = dir.join("in.png");
    gray_png(&input, 16, 12);
    let bomb = dir.join("bomb.png");
    std::fs::write(&bomb, png_claiming(100_000, 100_000)).unwrap();
    // SAFETY: inotify on a path we own; the fd is closed below.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    assert!(fd >= 0);
    let cpath = std::ffi::CString::new(input.to_str().unwrap()).unwrap();
    assert!(unsafe { libc::inotify_add_watch(fd, cpath.as_ptr(), libc::IN_CLOSE_NOWRITE) } >= 0);
    let mut c = bridge();
    c.arg("restore").arg("-q").arg("--threads").arg("1").arg("-m").arg(&model).arg("-i").arg(&input).arg("-o").arg(dir.join("o.png"));
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = capped(&mut c).spawn().unwrap();
    // Wait for the first close of the input after reading, then swap the bomb in.
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let ready = unsafe { libc::poll(&mut pfd, 1, 60_000) };
    assert_eq!(ready, 1, "bridge never read its input");
    std::fs::rename(&bomb, &input).unwrap();
    unsafe { libc::close(fd) };
    let o = child.wait_with_output().unwrap();
    assert!(o.status.signal().is_none(), "bridge was killed by signal {:?}: {}", o.status.signal(), stderr(&o));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(image::open(dir.join("o.png")).unwrap().width(), 16);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether process `pid` catches SIGINT (its handler is installed).
fn catches_sigint(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|m| m & (1 << (libc::SIGINT - 1)) != 0)
}

/// Ctrl-C on a network with a 2^62-iteration `Loop` stops the run within seconds, through the
/// restorer's cancel token: exit status 130, a "cancelled" message and no output file.
#[test]
fn sigint_cancels_a_network_that_never_ends() {
    let dir = tmp("sigint");
    fx::ensure_ort();
    let model = fx::save(&fx::endless(None), &dir.join("endless.onnx"));
    let input = dir.join("in.png");
    gray_png(&input, 8, 8);
    let out = dir.join("o.png");
    let mut c = bridge();
    c.arg("restore").arg("-q").arg("--threads").arg("1").arg("-m").arg(&model).arg("-i").arg(&input).arg("-o").arg(&out);
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let t = Instant::now();
    while !catches_sigint(child.id()) {
        if let Some(s) = child.try_wait().unwrap() {
            panic!("bridge ended before the run: {s}");
        }
        if t.elapsed() > Duration::from_secs(120) {
            let _ = child.kill(); // never leave the endless run behind
            panic!("bridge never installed its SIGINT handler");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Inside the endless network call by now.
    std::thread::sleep(Duration::from_secs(1));
    if let Some(s) = child.try_wait().unwrap() {
        panic!("the endless network ended: {s}");
    }
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let sent = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if sent.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("bridge did not stop within 20 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{o:?}");
    assert!(stderr(&o).contains("cancelled"), "{}", stderr(&o));
    assert!(sent.elapsed() < Duration::from_secs(5), "took {:?}", sent.elapsed());
    assert!(!out.exists());
    assert_eq!(others(&dir, &[&input, &model]), Vec::<PathBuf>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The samplers for existing checkpoints run from a package through the CLI: I3SB on an I2SB
/// package (η from `--eta`, also > 1) and DBMSolver (both midpoint rules, sde_order 2) on DDBM
/// VP/VE packages; the wrong family or an NFE the solver cannot take is a clean error exit.
#[test]
fn new_samplers_run_from_packages() {
    let dir = tmp("samplers");
    fx::ensure_ort();
    let package = |family: &str, schedule: &str, param: &str, sampler: &str, nfe: &str| {
        let mut g = fx::oracle(Some(3));
        g.meta("bridge.family", family)
            .meta("bridge.schedule", schedule)
            .meta("bridge.parameterization", param)
            .meta("bridge.sampler", sampler)
            .meta("bridge.nfe", nfe);
        fx::save(&g, &dir.join(format!("{family}.onnx")))
    };
    let i2sb = package("i2sb", "i2sb-symmetric", "i2sb", "i3sb", "5");
    let vp = package("ddbm-vp", "vp", "ddbm-precond", "dbmsolver", "4");
    let ve = package("ddbm-ve", "ve", "ddbm-precond", "dbmsolver", "4");
    let input = dir.join("in.png");
    gray_png(&input, 24, 16);
    let runs: &[(&Path, &[&str])] = &[
        (&i2sb, &[]),
        (&i2sb, &["--sampler", "i3sb", "--eta", "1.4", "--nfe", "4"]),
        (&i2sb, &["--sampler", "i3sb-ot-ode", "--eta", "0"]),
        (&vp, &[]),
        (&vp, &["--sampler", "dbmsolver-time", "--nfe", "6"]),
        (&ve, &["--sampler", "dbmsolver-sde2", "--nfe", "5"]),
        (&ve, &["--sampler", "dbmsolver-time-sde2", "--nfe", "3"]),
    ];
    restore_all(&dir, &input, runs);
    // Wrong family, impossible NFE, η < 0: error exits naming the problem, no output.
    let bad: &[(&Path, &[&str], &str)] = &[
        (&i2sb, &["--sampler", "dbmsolver"], "dbmsolver"),
        (&vp, &["--sampler", "i3sb"], "i3sb"),
        (&vp, &["--sampler", "dbmsolver", "--nfe", "5"], "5"),
        (&i2sb, &["--sampler", "i3sb", "--eta=-0.5"], "eta"),
    ];
    refused_all(&dir, &input, bad);
    let _ = std::fs::remove_dir_all(&dir);
}

/// UniDB++'s pf-ode and noise-solver-2 are selectable by name from a package (`bridge.sampler`)
/// and with `--sampler` (the C ABI's `options.sampler` takes the same builder path); GOUB refuses
/// noise-solver-2, the release's broken data-solver-1 + pf-ode is refused with its reason, and an
/// NFE the solver cannot take names itself.
#[test]
fn unidbpp_samplers_run_from_packages() {
    let dir = tmp("unidbpp");
    fx::ensure_ort();
    let package = |family: &str, sampler: &str, nfe: &str| {
        let mut g = fx::oracle(Some(3));
        g.meta("bridge.family", family)
            .meta("bridge.schedule", "cosine")
            .meta("bridge.parameterization", "eps")
            .meta("bridge.sampler", sampler)
            .meta("bridge.nfe", nfe);
        if family == "unidb" {
            g.meta("bridge.family_params", r#"{"gamma_inv": 1e-7}"#);
        }
        fx::save(&g, &dir.join(format!("{family}.onnx")))
    };
    let unidb = package("unidb", "noise-solver-2", "17");
    let goub = package("goub", "pf-ode", "100");
    let input = dir.join("in.png");
    gray_png(&input, 24, 16);
    let runs: &[(&Path, &[&str])] = &[
        (&unidb, &[]),
        (&unidb, &["--sampler", "noise-solver-2-ode", "--nfe", "7"]),
        (&unidb, &["--sampler", "pf-ode", "--nfe", "100"]),
        (&goub, &[]),
        (&goub, &["--sampler", "euler-pf-ode"]),
    ];
    let outputs = restore_all(&dir, &input, runs);
    // The alias is the same sampler; the package default is what `--sampler` names.
    assert_eq!(outputs[3], outputs[4]);
    assert_ne!(outputs[0], outputs[2], "noise-solver-2 and pf-ode gave the same image");
    let bad: &[(&Path, &[&str], &str)] = &[
        (&goub, &["--sampler", "noise-solver-2", "--nfe", "17"], "A^γ_T"),
        (&unidb, &["--sampler", "data-solver-1-pf-ode"], "ode_T"),
        (&unidb, &["--sampler", "noise-solver-2", "--nfe", "16"], "2·solver_step − 3"),
        (&unidb, &["--sampler", "pf-ode", "--nfe", "10"], "pf-ode"),
    ];
    refused_all(&dir, &input, bad);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Restore the 24×16 `input` with each `(model, extra arguments)`; every run must succeed with a
/// 24×16 output. Returns the outputs' RGB bytes in order.
fn restore_all(dir: &Path, input: &Path, runs: &[(&Path, &[&str])]) -> Vec<Vec<u8>> {
    let mut outputs = Vec::new();
    for (k, (model, extra)) in runs.iter().enumerate() {
        let out = dir.join(format!("out{k}.png"));
        let o = restore(model, input, &out, extra);
        assert!(o.status.success(), "{model:?} {extra:?}: {}", stderr(&o));
        let img = image::open(&out).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (24, 16), "{extra:?}");
        outputs.push(img.into_raw());
    }
    outputs
}

/// Each `(model, extra arguments, needle)` must exit with an error whose message contains
/// `needle`, writing no output.
fn refused_all(dir: &Path, input: &Path, bad: &[(&Path, &[&str], &str)]) {
    for (k, (model, extra, needle)) in bad.iter().enumerate() {
        let out = dir.join(format!("bad{k}.png"));
        let o = restore(model, input, &out, extra);
        assert!(!o.status.success(), "{extra:?} should fail");
        assert!(stderr(&o).contains(needle), "{extra:?}: {}", stderr(&o));
        assert!(!out.exists(), "{extra:?} wrote an output");
    }
}

/// A pairs folder: 40×36 clean images, degraded by `degrade`, 16-bit PNGs (as `bridge-export
/// pairs` writes them); `degradation.json` when `info` is given.
fn pairs_dir(name: &str, info: Option<&str>, degrade: impl Fn(&ndarray::Array3<f32>) -> ndarray::Array3<f32>) -> PathBuf {
    let dir = tmp(name);
    for sub in ["clean", "degraded"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for k in 0..2u32 {
        let clean = ndarray::Array3::from_shape_fn((3, 36, 40), |(c, y, x)| {
            let (yf, xf) = (y as f32, x as f32);
            0.5 + 0.2 * (0.3 * xf + c as f32 + k as f32).sin() * (0.2 * yf).cos()
                + 0.1 * (0.8 * xf).sin() * (0.6 * yf + c as f32).cos()
                + if x > 20 { 0.1 } else { -0.1 }
        });
        let save = |a: &ndarray::Array3<f32>, sub: &str| {
            let (_, h, w) = a.dim();
            image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(w as u32, h as u32, |x, y| {
                image::Rgb(std::array::from_fn(|c| (a[[c, y as usize, x as usize]].clamp(0.0, 1.0) * 65535.0).round() as u16))
            })
            .save(dir.join(sub).join(format!("p{k}.png")))
            .unwrap();
        };
        save(&clean, "clean");
        save(&degrade(&clean), "degraded");
    }
    if let Some(text) = info {
        std::fs::write(dir.join("degradation.json"), text).unwrap();
    }
    dir
}

fn eval(extra: &[&str]) -> Output {
    bridge().arg("eval").arg("--threads").arg("1").args(extra).output().unwrap()
}

/// The `| label | nfe | psnr | ssim | s/image | shift |` row whose label starts with `label`.
fn table_row(stdout: &str, label: &str) -> Option<Vec<String>> {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("| {label}")))
        .map(|l| l.trim().trim_matches('|').split('|').map(|c| c.trim().to_string()).collect())
}

/// `bridge eval` reads the degradation from the pairs' `degradation.json` and adds the matching
/// classical baseline: Wiener with the true kernel beats the blurred input; without a model
/// only the baselines are scored; with one, the sampler rows follow.
#[test]
fn eval_adds_the_classical_baseline() {
    let blur = |a: &ndarray::Array3<f32>| bridge_export::degrade::gaussian_blur(a.view(), 2.0, 15).unwrap();
    let info = r#"{"version": 1, "task": "deblur", "degradation": {"kind": "gaussian-blur", "sigma": 2.0, "size": 15}}"#;
    let dir = pairs_dir("eval-wiener", Some(info), blur);
    let o = eval(&["-p", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let input = table_row(&out, "input (identity)").unwrap_or_else(|| panic!("no input row:\n{out}"));
    let wiener = table_row(&out, "Wiener (true kernel").unwrap_or_else(|| panic!("no Wiener row:\n{out}"));
    let psnr = |r: &[String]| r[2].parse::<f64>().unwrap();
    assert!(psnr(&wiener) > psnr(&input) + 2.0, "Wiener {} vs input {}:\n{out}", psnr(&wiener), psnr(&input));
    assert_eq!(wiener[1], "–");
    assert!(out.contains("No model (baselines only)"), "{out}");
    // With a model: the same two rows, then the package's default sampler.
    let model = oracle(&dir, 1);
    let md = dir.join("table.md");
    let o = eval(&["-m", model.to_str().unwrap(), "-p", dir.to_str().unwrap(), "--markdown", md.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = std::fs::read_to_string(&md).unwrap();
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| sampler")).collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(rows[0].starts_with("| input (identity)") && rows[1].starts_with("| Wiener"), "{table}");
    assert!(table.contains("Model `"), "{table}");
    // `--baseline none` drops the row.
    let o = eval(&["-p", dir.to_str().unwrap(), "--baseline", "none"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(table_row(&String::from_utf8_lossy(&o.stdout), "Wiener").is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

/// NLM for noise from `auto`; an explicit baseline that does not fit the degradation, or one
/// asked for without `degradation.json`, is an error exit that says why.
#[test]
fn eval_baseline_choice_and_errors() {
    let noise = |a: &ndarray::Array3<f32>| {
        ndarray::Array3::from_shape_fn(a.dim(), |(c, y, x)| {
            a[[c, y, x]] + 0.08 * if (c * 7 + y * 13 + x * 5) % 3 == 0 { 1.0 } else { -0.5 }
        })
    };
    let info = r#"{"version": 1, "task": "denoise", "degradation": {"kind": "gaussian-noise", "sigma": 20}}"#;
    let dir = pairs_dir("eval-nlm", Some(info), noise);
    let o = eval(&["-p", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let nlm = table_row(&out, "NLM (σ 20").unwrap_or_else(|| panic!("no NLM row:\n{out}"));
    let input = table_row(&out, "input").unwrap();
    assert!(nlm[2].parse::<f64>().unwrap() > input[2].parse::<f64>().unwrap(), "{out}");
    let o = eval(&["-p", dir.to_str().unwrap(), "--baseline", "wiener"]);
    assert!(!o.status.success() && stderr(&o).contains("does not fit"), "{}", stderr(&o));
    let o = eval(&["-p", dir.to_str().unwrap(), "--baseline", "bm3d"]);
    assert!(!o.status.success() && stderr(&o).contains("bm3d"), "{}", stderr(&o));
    std::fs::remove_file(dir.join("degradation.json")).unwrap();
    let o = eval(&["-p", dir.to_str().unwrap(), "--baseline", "nlm"]);
    assert!(!o.status.success() && stderr(&o).contains("degradation.json"), "{}", stderr(&o));
    // `auto` without the file: no baseline row, a note.
    let o = eval(&["-p", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(table_row(&out, "NLM").is_none() && out.contains("no classical baseline"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The colour-shift column is the mean signed error per channel in 0–255 levels: a cast of
/// +10 red and −5 green levels on the input shows as such on the input row (exactly: 10/255 is
/// 2570 steps of 16 bits).
#[test]
fn eval_reports_the_colour_shift() {
    let cast = |a: &ndarray::Array3<f32>| ndarray::Array3::from_shape_fn(a.dim(), |(c, y, x)| a[[c, y, x]] + [10.0, -5.0, 0.0][c] / 255.0);
    let dir = pairs_dir("eval-shift", None, cast);
    let o = eval(&["-p", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let input = table_row(&out, "input").unwrap_or_else(|| panic!("{out}"));
    assert_eq!(input[5], "+10.00 / -5.00 / +0.00", "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--color-fix`: the oracle package brightens every pixel (`0.5·v + 0.375` in [0, 1]: a cast
/// of up to +0.375); `bridge eval --color-fix wavelet` scores it without the cast (a colour
/// shift near 0 on the row labelled `+ color fix (5)`, and a higher PSNR than without), and
/// `bridge restore --color-fix` takes the same option; a bad value is an error exit.
#[test]
fn color_fix_in_eval_and_restore() {
    let dir = pairs_dir("eval-colorfix", None, |a| a.clone());
    let model = oracle(&dir, 1);
    let shift = |row: &[String]| -> f64 { row[5].split('/').map(|v| v.trim().parse::<f64>().unwrap().abs()).fold(0.0, f64::max) };
    let o = eval(&["-m", model.to_str().unwrap(), "-p", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plain = String::from_utf8_lossy(&o.stdout).into_owned();
    let o = eval(&["-m", model.to_str().unwrap(), "-p", dir.to_str().unwrap(), "--color-fix", "wavelet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let fixed = String::from_utf8_lossy(&o.stdout).into_owned();
    let p = fixed.lines().find(|l| l.contains("+ color fix (5)")).unwrap_or_else(|| panic!("no colour-fix row:\n{fixed}"));
    let row_fixed: Vec<String> = p.trim().trim_matches('|').split('|').map(|c| c.trim().to_string()).collect();
    let row_plain = plain
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| input") && !l.starts_with("| sampler"))
        .map(|l| l.trim().trim_matches('|').split('|').map(|c| c.trim().to_string()).collect::<Vec<_>>())
        .next()
        .unwrap_or_else(|| panic!("no model row:\n{plain}"));
    assert!(shift(&row_plain) > 20.0, "the oracle's cast is missing:\n{plain}");
    assert!(shift(&row_fixed) < 2.0, "the colour fix left a cast:\n{fixed}");
    assert!(row_fixed[2].parse::<f64>().unwrap() > row_plain[2].parse::<f64>().unwrap() + 5.0, "{plain}\n{fixed}");
    // restore: accepted, and refused with a bad value.
    let input = dir.join("in.png");
    gray_png(&input, 24, 16);
    let out = restore_all(&dir, &input, &[(&model, &["--color-fix", "wavelet:3"])]);
    assert_eq!(out.len(), 1);
    refused_all(&dir, &input, &[(&model, &["--color-fix", "wavelet:99"], "color fix")]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `bridge info m.onnx | head -1`: a reader that has gone away ends the program by SIGPIPE, as
/// any Unix filter, not by a panic message on stderr. The pipe's read end is closed before the
/// child starts, so the first write fails every time.
#[test]
fn closed_stdout_pipe_is_not_a_panic() {
    let dir = tmp("pipe");
    let model = oracle(&dir, 1);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = bridge().arg("info").arg(&model).stdout(writer).stderr(Stdio::piped()).output().unwrap();
    assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "{o:?}");
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--channel-ensemble`: the restore runs, says so on its summary line, and on the oracle (which
/// treats every channel alike) writes the plain image to within rounding.
#[test]
fn channel_ensemble_flag() {
    let dir = tmp("ensemble");
    let model = oracle(&dir, 1);
    let input = dir.join("in.png");
    gray_png(&input, 24, 16);
    let (plain, even) = (dir.join("plain.png"), dir.join("even.png"));
    assert!(restore(&model, &input, &plain, &[]).status.success());
    let o = restore_cmd(&model, &input, &even, &["--channel-ensemble"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(" + channel ensemble, seed 0"), "{}", stderr(&o));
    let (a, b) = (image::open(&plain).unwrap().to_rgb8(), image::open(&even).unwrap().to_rgb8());
    let most = a.as_raw().iter().zip(b.as_raw()).map(|(&p, &q)| (p as i32 - q as i32).abs()).max().unwrap();
    assert!(most <= 1, "{most}");
}

/// A package that asks for the channel ensemble (`bridge.channel_ensemble`) gets it without the
/// flag — `bridge info` says so, the summary line says so and the tinted network's cast is gone
/// from a grey input — and `--channel-ensemble=false` turns it off (the cast is back).
#[test]
fn package_default_channel_ensemble() {
    let dir = tmp("ensemble-default");
    fx::ensure_ort();
    let mut g = fx::tinted();
    g.meta("bridge.channel_ensemble", "true");
    let model = fx::save(&g, &dir.join("tinted.onnx"));
    let info = bridge().arg("info").arg(&model).output().unwrap();
    assert!(String::from_utf8_lossy(&info.stdout).contains(" NFE, channel ensemble (--channel-ensemble=false"), "{info:?}");
    let input = dir.join("grey.png");
    image::RgbImage::from_fn(24, 16, |x, y| {
        let v = (x * 7 + y * 3) as u8;
        image::Rgb([v, v, v])
    })
    .save(&input)
    .unwrap();
    let tint = |p: &Path| image::open(p).unwrap().to_rgb8().pixels().map(|q| (q[0] as i32 - q[2] as i32).abs()).max().unwrap();
    for (extra, on) in [(&[][..], true), (&["--channel-ensemble=false"][..], false), (&["--channel-ensemble=true"][..], true)] {
        let out = dir.join("out.png");
        let o = restore_cmd(&model, &input, &out, extra).output().unwrap();
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        assert_eq!(stderr(&o).contains(" + channel ensemble, seed 0"), on, "{extra:?}: {}", stderr(&o));
        if on {
            assert!(tint(&out) <= 1, "{extra:?}: {}", tint(&out));
        } else {
            assert!(tint(&out) >= 20, "{extra:?}: {}", tint(&out));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
