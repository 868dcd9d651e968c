//! Finding ONNX Runtime and the one process-global environment.
//!
//! `ort` is built with `load-dynamic`: the shared library is opened at run time, never linked.
//! ONNX Runtime allows one environment per process for the life of the process (a second one
//! fails even after the first is dropped), and one library can be loaded per process, so this
//! module keeps a single [`Environment`] behind a mutex and hands out clones.
//!
//! Library search order (the first candidate that exists and passes the ownership check is
//! loaded; a candidate that passes but fails to load is an error, not a reason to try the next):
//!
//! 1. the explicit path the caller passes (a file, or a folder holding the library);
//! 2. `ORT_DYLIB_PATH` (if set and non-empty it must name a loadable library);
//! 3. next to the object that contains this code (libbridge.so for a C host, the executable for
//!    a Rust one, found with `dladdr`), next to the executable, and their `lib/` and `../lib/`;
//! 4. the system loader: `dlopen("libonnxruntime.so.1")` with the loader's normal search
//!    (`LD_LIBRARY_PATH`, the ld.so cache, `/usr/lib`, ...), trusted like any linked library;
//! 5. debug and test builds only: the `.deps/onnxruntime/` of the source tree this crate was
//!    built from (where `scripts/install-ort.sh` puts it) — never a folder found by walking up
//!    from the executable, and never in a release build;
//! 6. otherwise [`Error::RuntimeNotFound`] naming what was searched, what was refused and why,
//!    and the set-up command.
//!
//! Every file candidate (1–3, 5) is refused when someone other than root and the current user
//! could have put it there: the file is world-writable, group-writable by a group other than
//! root's or the user's own, or owned by another non-root user; or a folder on its path (where
//! the name lives and every folder of the real path up to `/`) is world-writable without the
//! sticky bit, or is a sticky shared folder (like `/tmp`) owned by another non-root user or whose
//! entry on the path belongs to another non-root user. So a `libonnxruntime.so` planted in a
//! temporary folder never runs inside a program that uses libbridge.
//!
//! We never call `ort::init()`: with a bad `ORT_DYLIB_PATH` it panics. `ort::init_from` returns
//! an error instead.

use crate::{Error, Result};
use ort::environment::Environment;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The command that installs ONNX Runtime into the project (named in errors).
pub const INSTALL_HINT: &str = "run `scripts/install-ort.sh` (installs libonnxruntime 1.31.1 from the PyPI \
    `onnxruntime` wheel into .deps/onnxruntime/), set ORT_DYLIB_PATH to a libonnxruntime shared library, \
    or pass the library path explicitly";

struct Loaded {
    env: Environment,
    /// The library file that was loaded (`None` if the caller installed its own environment).
    library: Option<PathBuf>,
}

static GLOBAL: Mutex<Option<Loaded>> = Mutex::new(None);

/// The process-global ONNX Runtime environment, created on first use.
///
/// `library` is an explicit library path (file or folder); it only matters on the first call
/// that loads the library. A later call naming a *different* library is an error, because a
/// process can hold only one ONNX Runtime.
pub fn environment(library: Option<&Path>) -> Result<Environment> {
    let mut g = GLOBAL.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(l) = g.as_ref() {
        if let (Some(want), Some(have)) = (library, l.library.as_ref()) {
            let want = resolve_file(want);
            if !same_file(&want, have) {
                return Err(Error::RuntimeNotFound(format!(
                    "ONNX Runtime is already loaded from {} in this process; cannot also load {} \
                     (one library per process)",
                    have.display(),
                    want.display()
                )));
            }
        }
        return Ok(l.env.clone());
    }
    let path = find_library(library, &SearchPlaces::from_process())?;
    let env = load(&path)?;
    *g = Some(Loaded { env: env.clone(), library: Some(path) });
    Ok(env)
}

/// Use an environment the application built itself (with `ort::init_from(..)?.build()`), for
/// an app that also uses `ort` directly. Must be called before anything in libbridge creates
/// one; returns an error if libbridge already has an environment.
pub fn set_environment(env: Environment) -> Result<()> {
    let mut g = GLOBAL.lock().unwrap_or_else(|p| p.into_inner());
    if g.is_some() {
        return Err(Error::RuntimeNotFound("libbridge already created its ONNX Runtime environment".into()));
    }
    *g = Some(Loaded { env, library: None });
    Ok(())
}

/// The library file libbridge loaded, if it loaded one.
pub fn loaded_library() -> Option<PathBuf> {
    GLOBAL.lock().unwrap_or_else(|p| p.into_inner()).as_ref().and_then(|l| l.library.clone())
}

/// Drop libbridge's handle on the environment, so that ONNX Runtime releases it (and stops the
/// background thread it starts with it) once no session uses it. For process exit only — the
/// C ABI calls it from an `atexit` handler, before ONNX Runtime's own static destructors run,
/// which its thread could otherwise still read. No environment can be created afterwards (one
/// per process). Never blocks: returns whether an environment was released.
pub fn release_for_exit() -> bool {
    let released = match GLOBAL.try_lock() {
        Ok(mut g) => g.take(),
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().take(),
        Err(std::sync::TryLockError::WouldBlock) => None,
    };
    released.is_some()
}

fn load(path: &Path) -> Result<Environment> {
    // `ort` has `expect`s on paths we do not expect to reach; never let one unwind into a caller
    // (a C host in particular).
    let built = std::panic::catch_unwind(|| -> Result<Environment> {
        let builder = ort::init_from(path).map_err(|e| {
            Error::RuntimeNotFound(format!("cannot load {}: {e}. To install a compatible one: {INSTALL_HINT}", path.display()))
        })?;
        builder.with_name("libbridge").with_telemetry(false).build().map_err(|e| {
            let msg = e.to_string();
            if msg.contains("only one environment") {
                Error::RuntimeNotFound(format!(
                    "{msg}: this process already created an ONNX Runtime environment outside libbridge; \
                     pass it with bridge::runtime::set_environment"
                ))
            } else {
                Error::Runtime(format!("creating the environment: {msg}"))
            }
        })
    });
    built.unwrap_or_else(|p| Err(Error::Runtime(format!("ONNX Runtime initialisation panicked: {}", panic_text(&p)))))
}

pub(crate) fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
}

/// Where to look for the library, besides the explicit path and `ORT_DYLIB_PATH`.
#[derive(Clone, Debug, Default)]
pub struct SearchPlaces {
    /// The value of `ORT_DYLIB_PATH` (`None` or empty: unset).
    pub env_path: Option<String>,
    /// Folders to look in, in order (next to libbridge / the executable).
    pub beside: Vec<PathBuf>,
    /// Library names handed to the system loader's own search, in order (empty: skip it).
    pub system: Vec<String>,
    /// Development folders holding the library (the source tree's `.deps/onnxruntime`; empty in
    /// release builds). Looked in as given, never searched upwards.
    pub dev: Vec<PathBuf>,
}

impl SearchPlaces {
    /// The places this process would search.
    pub fn from_process() -> Self {
        let mut beside = Vec::new();
        if let Some(d) = own_object_dir() {
            beside.push(d);
        }
        let exe_dir = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf));
        if let Some(d) = &exe_dir {
            beside.push(d.clone());
        }
        let mut more = Vec::new();
        for d in &beside {
            more.push(d.join("lib"));
            if let Some(p) = d.parent() {
                more.push(p.join("lib"));
            }
        }
        beside.extend(more);
        beside.dedup();
        let system = if cfg!(target_os = "linux") {
            vec!["libonnxruntime.so.1".to_string(), "libonnxruntime.so".to_string()]
        } else {
            library_names()
        };
        // The build machine's source tree is compiled into the binary, so only a development
        // build may look there (a released binary must not trust a path on someone else's disk).
        let dev = if cfg!(any(debug_assertions, test)) {
            Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(|root| root.join(".deps").join("onnxruntime")).into_iter().collect()
        } else {
            Vec::new()
        };
        SearchPlaces { env_path: std::env::var("ORT_DYLIB_PATH").ok(), beside, system, dev }
    }
}

/// The library file names tried in a folder, best first.
fn library_names() -> Vec<String> {
    let base = format!("{}onnxruntime{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    if cfg!(target_os = "linux") { vec![base.clone(), format!("{base}.1")] } else { vec![base] }
}

/// A file path as given, or the library inside it if it is a folder.
fn resolve_file(p: &Path) -> PathBuf {
    if p.is_dir() {
        for n in library_names() {
            let f = p.join(&n);
            if f.exists() {
                return f;
            }
        }
        // Any versioned name (`libonnxruntime.so.1.31.1`).
        if let Ok(rd) = std::fs::read_dir(p) {
            let mut found: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        n.starts_with(&format!("{}onnxruntime{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX))
                    })
                })
                .collect();
            found.sort();
            if let Some(f) = found.pop() {
                return f;
            }
        }
        return p.join(&library_names()[0]);
    }
    p.to_path_buf()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// A named library (explicit path or `ORT_DYLIB_PATH`): it must exist and pass the ownership
/// check; `what` names where the path came from.
fn named(given: &Path, what: &str) -> Result<PathBuf> {
    let f = resolve_file(given);
    if !f.is_file() {
        return Err(Error::RuntimeNotFound(format!("{what} ({}) does not name an existing file. {INSTALL_HINT}", given.display())));
    }
    match trust::refusal(&f) {
        None => Ok(f),
        Some(why) => Err(Error::RuntimeNotFound(format!("{what}: refusing {}: {why}. {INSTALL_HINT}", f.display()))),
    }
}

/// Resolve the library to load (see the module docs for the order). Pure apart from looking at
/// the file system (and, for the system step, the dynamic loader), so the order is testable.
pub fn find_library(explicit: Option<&Path>, places: &SearchPlaces) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return named(p, "the library path given");
    }
    if let Some(v) = places.env_path.as_deref().filter(|v| !v.is_empty()) {
        return named(Path::new(v), &format!("ORT_DYLIB_PATH={v}"));
    }
    let mut searched = Vec::new();
    let mut refused = Vec::new();
    let mut candidate = |d: &Path, searched: &mut Vec<String>| -> Option<PathBuf> {
        let f = resolve_file(d);
        searched.push(d.display().to_string());
        if !f.is_file() {
            return None;
        }
        match trust::refusal(&f) {
            None => Some(f),
            Some(why) => {
                refused.push(format!("{}: {why}", f.display()));
                None
            }
        }
    };
    for d in &places.beside {
        if let Some(f) = candidate(d, &mut searched) {
            return Ok(f);
        }
    }
    for name in &places.system {
        searched.push(format!("the system loader's search for {name}"));
        if let Some(f) = system_lookup(name)? {
            return Ok(f);
        }
    }
    for d in &places.dev {
        if let Some(f) = candidate(d, &mut searched) {
            return Ok(f);
        }
    }
    let refused = if refused.is_empty() {
        String::new()
    } else {
        format!("; refused (could have been planted by another user): {}", refused.join("; "))
    };
    Err(Error::RuntimeNotFound(format!(
        "libonnxruntime not found (ORT_DYLIB_PATH unset; searched {}{refused}). {INSTALL_HINT}",
        searched.join(", ")
    )))
}

/// The file the system loader finds for `name` (its normal search: `LD_LIBRARY_PATH`, the
/// ld.so cache, the default folders), as an absolute path so that nothing else re-resolves the
/// bare name (`ort` would first try the executable's folder). `None` if the loader finds
/// nothing; an error if what it finds is not ONNX Runtime. The library stays loaded: it is
/// the one about to be used.
#[cfg(unix)]
fn system_lookup(name: &str) -> Result<Option<PathBuf>> {
    use std::ffi::{CStr, CString};
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = CString::new(name) else { return Ok(None) };
    // SAFETY: plain dlopen/dlsym/dladdr calls with valid NUL-terminated strings; a library that
    // is found stays loaded (its handle is never closed), so `dli_fname` stays valid.
    unsafe {
        let h = libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if h.is_null() {
            return Ok(None);
        }
        let sym = libc::dlsym(h, c"OrtGetApiBase".as_ptr());
        let mut info: libc::Dl_info = std::mem::zeroed();
        if sym.is_null() || libc::dladdr(sym, &mut info) == 0 || info.dli_fname.is_null() {
            libc::dlclose(h);
            return Err(Error::RuntimeNotFound(format!(
                "the system loader's {name} is not ONNX Runtime (no OrtGetApiBase). {INSTALL_HINT}"
            )));
        }
        let p = Path::new(std::ffi::OsStr::from_bytes(CStr::from_ptr(info.dli_fname).to_bytes()));
        Ok(Some(p.canonicalize().unwrap_or_else(|_| p.to_path_buf())))
    }
}

#[cfg(not(unix))]
fn system_lookup(_name: &str) -> Result<Option<PathBuf>> {
    Ok(None)
}

/// Whether a library file could have been put in place by someone other than root and the
/// current user (see the module docs).
mod trust {
    use std::path::Path;

    /// Why `file` is refused, or `None` if it may be loaded.
    #[cfg(unix)]
    pub fn refusal(file: &Path) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid/getegid cannot fail and touch no memory.
        let (me, my_group) = unsafe { (libc::geteuid(), libc::getegid()) };
        let trusted = |uid: u32| uid == 0 || uid == me;
        let real = match file.canonicalize() {
            Ok(r) => r,
            Err(e) => return Some(format!("cannot resolve the path: {e}")),
        };
        let m = match std::fs::metadata(&real) {
            Ok(m) => m,
            Err(e) => return Some(format!("cannot read {}: {e}", real.display())),
        };
        if m.mode() & 0o002 != 0 {
            return Some(format!("{} is writable by every user", real.display()));
        }
        if m.mode() & 0o020 != 0 && m.gid() != 0 && m.gid() != my_group {
            return Some(format!("{} is writable by group {}", real.display(), m.gid()));
        }
        if !trusted(m.uid()) {
            return Some(format!("{} belongs to user {} (neither root nor you)", real.display(), m.uid()));
        }
        // The folders of the real file, and those of the name as given (a symbolic link there
        // could be swapped as easily as a file).
        if let Some(why) = folders(real.parent().unwrap_or(Path::new("/")), m.uid(), me) {
            return Some(why);
        }
        let named_in = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        match (std::fs::symlink_metadata(file), named_in.canonicalize()) {
            (Ok(link), Ok(dir)) => folders(&dir, link.uid(), me),
            (Err(e), _) | (_, Err(e)) => Some(format!("cannot read {}: {e}", file.display())),
        }
    }

    /// Walk `dir` (canonical) up to `/`: refuse a world-writable folder without the sticky bit,
    /// and a sticky one owned by, or whose entry on the path belongs to, another non-root user.
    #[cfg(unix)]
    fn folders(dir: &Path, mut entry_owner: u32, me: u32) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let trusted = |uid: u32| uid == 0 || uid == me;
        for d in dir.ancestors() {
            let m = match std::fs::metadata(d) {
                Ok(m) => m,
                Err(e) => return Some(format!("cannot read {}: {e}", d.display())),
            };
            if m.mode() & 0o002 != 0 {
                if m.mode() & 0o1000 == 0 {
                    return Some(format!("the folder {} is writable by every user", d.display()));
                }
                if !trusted(m.uid()) {
                    return Some(format!("the shared folder {} belongs to user {}", d.display(), m.uid()));
                }
                if !trusted(entry_owner) {
                    return Some(format!("its path leaves the shared folder {} through an entry of user {entry_owner}", d.display()));
                }
            }
            entry_owner = m.uid();
        }
        None
    }

    #[cfg(not(unix))]
    pub fn refusal(_file: &Path) -> Option<String> {
        None
    }
}

/// The folder of the shared object (or executable) that contains this function.
#[cfg(unix)]
fn own_object_dir() -> Option<PathBuf> {
    use std::ffi::CStr;
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: dladdr only reads the address and fills `info`; `dli_fname` points into the
    // dynamic loader's own tables and stays valid while the object is loaded.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let addr = own_object_dir as *const () as *const libc::c_void;
    if unsafe { libc::dladdr(addr, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    let p = Path::new(std::ffi::OsStr::from_bytes(name.to_bytes()));
    let p = p.canonicalize().ok()?;
    p.parent().map(Path::to_path_buf)
}

#[cfg(not(unix))]
fn own_object_dir() -> Option<PathBuf> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        crate::test_support::fresh_dir("env", name)
    }

    /// Explicit path beats ORT_DYLIB_PATH beats "beside" beats the system loader beats the
    /// development folder; a named but missing library is an error rather than a silent
    /// fall-through; the development folder is used as given, never searched upwards.
    #[test]
    fn search_order() {
        let root = tmp("order");
        let lib = library_names()[0].clone();
        let (a, b, c) = (root.join("a"), root.join("b"), root.join("proj/.deps/onnxruntime"));
        for d in [&a, &b, &c] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join(&lib), b"x").unwrap();
        }
        let places = |env: Option<&Path>| SearchPlaces {
            env_path: env.map(|p| p.display().to_string()),
            beside: vec![b.clone()],
            system: vec!["libbridge-test-no-such-library.so.9".into()],
            dev: vec![c.clone()],
        };
        assert_eq!(find_library(Some(&a), &places(Some(&b))).unwrap(), a.join(&lib));
        assert_eq!(find_library(None, &places(Some(&a.join(&lib)))).unwrap(), a.join(&lib));
        assert_eq!(find_library(None, &places(None)).unwrap(), b.join(&lib));
        let no_beside = SearchPlaces { beside: vec![root.join("nothing")], ..places(None) };
        assert_eq!(find_library(None, &no_beside).unwrap(), c.join(&lib));
        // A folder below the development folder does not make the search walk up to it.
        let deep = SearchPlaces { beside: vec![], dev: vec![root.join("proj/target/release")], ..places(None) };
        let e = find_library(None, &deep).unwrap_err();
        assert!(matches!(e, Error::RuntimeNotFound(ref m) if m.contains("proj/target/release") && m.contains("no-such-library")), "{e}");
        // Errors name the set-up command.
        let e = find_library(Some(&root.join("missing.so")), &places(None)).unwrap_err();
        assert!(matches!(e, Error::RuntimeNotFound(ref m) if m.contains("install-ort.sh")), "{e}");
        let e = find_library(None, &places(Some(&root.join("missing.so")))).unwrap_err();
        assert!(matches!(e, Error::RuntimeNotFound(ref m) if m.contains("ORT_DYLIB_PATH")), "{e}");
        let none = SearchPlaces { env_path: Some(String::new()), ..Default::default() };
        let e = find_library(None, &none).unwrap_err();
        assert!(matches!(e, Error::RuntimeNotFound(ref m) if m.contains("install-ort.sh")), "{e}");
        // A versioned file name in a folder is found too.
        let v = root.join("v");
        std::fs::create_dir_all(&v).unwrap();
        std::fs::write(v.join(format!("{lib}.1.31.1")), b"x").unwrap();
        assert_eq!(resolve_file(&v), v.join(format!("{lib}.1.31.1")));
        let _ = std::fs::remove_dir_all(&root);
    }

    /// The system step asks the dynamic loader (its normal search by bare name) and accepts
    /// only ONNX Runtime: a missing name is skipped, another library is an error.
    #[cfg(target_os = "linux")]
    #[test]
    fn system_loader_step() {
        assert!(system_lookup("libbridge-test-no-such-library.so.9").unwrap().is_none());
        let e = system_lookup("libc.so.6").unwrap_err();
        assert!(matches!(e, Error::RuntimeNotFound(ref m) if m.contains("not ONNX Runtime")), "{e}");
    }

    /// A library planted in a world-writable folder without the sticky bit (or below it) is
    /// refused wherever it is found, and the error says which file and why; a planted
    /// `.deps/onnxruntime` in a parent of the executable's folder is not even looked at.
    #[cfg(unix)]
    #[test]
    fn planted_library_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let root = tmp("planted");
        let lib = library_names()[0].clone();
        let shared = root.join("shared");
        let app = shared.join("app");
        let deps = shared.join(".deps/onnxruntime");
        for d in [&app, &deps] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(app.join(&lib), b"x").unwrap();
        std::fs::write(deps.join(&lib), b"x").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let places = SearchPlaces { beside: vec![app.clone()], ..Default::default() };
        let e = find_library(None, &places).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("refused") && m.contains(&app.join(&lib).display().to_string()), "{m}");
        assert!(m.contains(&format!("the folder {} is writable by every user", shared.display())), "{m}");
        assert!(!m.contains(&deps.display().to_string()), "searched a parent's .deps: {m}");
        // Named explicitly or through ORT_DYLIB_PATH: refused too (an error, not a fall-through).
        let e = find_library(Some(&app), &places).unwrap_err();
        assert!(matches!(e, Error::RuntimeNotFound(ref m) if m.contains("refusing")), "{e}");
        let env = SearchPlaces { env_path: Some(app.join(&lib).display().to_string()), ..places.clone() };
        assert!(matches!(find_library(None, &env), Err(Error::RuntimeNotFound(m)) if m.contains("refusing")));
        // With the sticky bit (like /tmp) the folder is fine, as is the file of its owner.
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(find_library(None, &places).unwrap(), app.join(&lib));
        // A world-writable file is refused wherever it lies.
        std::fs::set_permissions(app.join(&lib), std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = find_library(None, &places).unwrap_err();
        assert!(e.to_string().contains("is writable by every user"), "{e}");
        std::fs::set_permissions(app.join(&lib), std::fs::Permissions::from_mode(0o644)).unwrap();
        // Files and shared-folder entries of another (non-root) user: only root can set this
        // up, so it is checked when the tests run as root.
        if std::os::unix::fs::chown(app.join(&lib), Some(54321), Some(54321)).is_ok() {
            let e = find_library(None, &places).unwrap_err();
            assert!(e.to_string().contains("belongs to user 54321"), "{e}");
            std::os::unix::fs::chown(app.join(&lib), Some(0), Some(0)).unwrap();
            std::os::unix::fs::chown(&app, Some(54321), None).unwrap();
            let e = find_library(None, &places).unwrap_err();
            assert!(e.to_string().contains("through an entry of user 54321"), "{e}");
            std::os::unix::fs::chown(&app, Some(0), None).unwrap();
            std::fs::set_permissions(app.join(&lib), std::fs::Permissions::from_mode(0o664)).unwrap();
            std::os::unix::fs::chown(app.join(&lib), None, Some(54321)).unwrap();
            let e = find_library(None, &places).unwrap_err();
            assert!(e.to_string().contains("writable by group 54321"), "{e}");
        }
        // A symbolic link that lives in an open folder is refused even if its target is fine.
        let good = root.join("good");
        std::fs::create_dir_all(&good).unwrap();
        std::fs::write(good.join(&lib), b"x").unwrap();
        let open = root.join("open");
        std::fs::create_dir_all(&open).unwrap();
        std::os::unix::fs::symlink(good.join(&lib), open.join(&lib)).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = find_library(Some(&open.join(&lib)), &places).unwrap_err();
        assert!(e.to_string().contains(&format!("the folder {} is writable", open.display())), "{e}");
        assert_eq!(find_library(Some(&good.join(&lib)), &places).unwrap(), good.join(&lib));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn own_object_dir_exists() {
        let d = own_object_dir().expect("dladdr finds this test binary");
        assert!(d.is_dir());
    }
}
