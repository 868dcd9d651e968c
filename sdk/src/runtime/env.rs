//! Finding ONNX Runtime and the one process-global environment.
//!
//! `ort` is built with `load-dynamic`: the shared library is opened at run time, never linked.
//! ONNX Runtime allows one environment per process for the life of the process (a second one
//! fails even after the first is dropped), and one library can be loaded per process, so this
//! module keeps a single [`Environment`] behind a mutex and hands out clones.
//!
//! Library search order (the first candidate that exists is loaded; a candidate that exists but
//! fails to load is an error, not a reason to try the next one):
//!
//! 1. the explicit path the caller passes (a file, or a folder holding the library);
//! 2. `ORT_DYLIB_PATH` (if set and non-empty it must name a loadable library);
//! 3. next to the object that contains this code (libbridge.so for a C host, the executable for
//!    a Rust one, found with `dladdr`), next to the executable, and their `lib/` and `../lib/`;
//! 4. the project's `.deps/onnxruntime/` (where `scripts/install-ort.sh` puts it), looked up
//!    from the executable's folder upwards and from the source tree this crate was built from;
//! 5. otherwise [`Error::RuntimeNotFound`] naming the set-up command.
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
    /// Folders from which to look upwards for `.deps/onnxruntime`.
    pub project_roots: Vec<PathBuf>,
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
        let mut project_roots: Vec<PathBuf> = exe_dir.into_iter().collect();
        project_roots.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        SearchPlaces { env_path: std::env::var("ORT_DYLIB_PATH").ok(), beside, project_roots }
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

/// Resolve the library to load (see the module docs for the order). Pure apart from looking at
/// the file system, so the order is testable.
pub fn find_library(explicit: Option<&Path>, places: &SearchPlaces) -> Result<PathBuf> {
    if let Some(p) = explicit {
        let f = resolve_file(p);
        return if f.is_file() {
            Ok(f)
        } else {
            Err(Error::RuntimeNotFound(format!("the library path given ({}) does not exist. {INSTALL_HINT}", p.display())))
        };
    }
    if let Some(v) = places.env_path.as_deref().filter(|v| !v.is_empty()) {
        let f = resolve_file(Path::new(v));
        return if f.is_file() {
            Ok(f)
        } else {
            Err(Error::RuntimeNotFound(format!("ORT_DYLIB_PATH={v} does not name an existing file. {INSTALL_HINT}")))
        };
    }
    let mut searched = Vec::new();
    for d in &places.beside {
        let f = resolve_file(d);
        if f.is_file() {
            return Ok(f);
        }
        searched.push(d.display().to_string());
    }
    for root in &places.project_roots {
        for anc in root.ancestors() {
            let d = anc.join(".deps").join("onnxruntime");
            if d.is_dir() {
                let f = resolve_file(&d);
                if f.is_file() {
                    return Ok(f);
                }
            }
        }
        searched.push(format!("{}/**/.deps/onnxruntime", root.display()));
    }
    Err(Error::RuntimeNotFound(format!(
        "libonnxruntime not found (ORT_DYLIB_PATH unset; searched {}). {INSTALL_HINT}",
        searched.join(", ")
    )))
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
        let d = std::env::temp_dir().join(format!("bridge-env-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Explicit path beats ORT_DYLIB_PATH beats "beside" beats the project cache; a named but
    /// missing library is an error rather than a silent fall-through.
    #[test]
    fn search_order() {
        let root = tmp("order");
        let lib = library_names()[0].clone();
        let (a, b, c) = (root.join("a"), root.join("b"), root.join("proj/.deps/onnxruntime"));
        for d in [&a, &b, &c] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join(&lib), b"x").unwrap();
        }
        let deep = root.join("proj/target/release");
        std::fs::create_dir_all(&deep).unwrap();
        let places = |env: Option<&Path>| SearchPlaces {
            env_path: env.map(|p| p.display().to_string()),
            beside: vec![b.clone()],
            project_roots: vec![deep.clone()],
        };
        assert_eq!(find_library(Some(&a), &places(Some(&b))).unwrap(), a.join(&lib));
        assert_eq!(find_library(None, &places(Some(&a.join(&lib)))).unwrap(), a.join(&lib));
        assert_eq!(find_library(None, &places(None)).unwrap(), b.join(&lib));
        let no_beside = SearchPlaces { beside: vec![root.join("nothing")], ..places(None) };
        assert_eq!(find_library(None, &no_beside).unwrap(), c.join(&lib));
        // Errors name the set-up command.
        let e = find_library(Some(&root.join("missing.so")), &places(None)).unwrap_err();
        assert!(matches!(e, Error::RuntimeNotFound(ref m) if m.contains("install-ort.sh")), "{e}");
        let e = find_library(None, &places(Some(&root.join("missing.so")))).unwrap_err();
        assert!(matches!(e, Error::RuntimeNotFound(ref m) if m.contains("ORT_DYLIB_PATH")), "{e}");
        let none = SearchPlaces { env_path: Some(String::new()), beside: vec![], project_roots: vec![root.join("x")] };
        let e = find_library(None, &none).unwrap_err();
        assert!(matches!(e, Error::RuntimeNotFound(ref m) if m.contains("install-ort.sh")), "{e}");
        // A versioned file name in a folder is found too.
        let v = root.join("v");
        std::fs::create_dir_all(&v).unwrap();
        std::fs::write(v.join(format!("{lib}.1.31.1")), b"x").unwrap();
        assert_eq!(resolve_file(&v), v.join(format!("{lib}.1.31.1")));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn own_object_dir_exists() {
        let d = own_object_dir().expect("dladdr finds this test binary");
        assert!(d.is_dir());
    }
}
