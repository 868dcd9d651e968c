//! [`ModelPackage`]: a model package read once and validated fully, owning its bytes.
//!
//! Loading reads the ONNX file (and NADB's mean network) into memory once and checks, without
//! ONNX Runtime, everything the metadata promises: the schema ([`PackageMeta`]), the graph's
//! inputs and outputs against the declared roles ([`check_io`]), that the family can be built
//! ([`build_family`]), that the default sampler exists and runs on that family at the default
//! NFE (a dry run on a 1×1 image with a zero network), and the mean network's presence, place,
//! size, SHA-256 and signature. A package that loads can run; one that cannot never loads.
//!
//! Restorers build their ONNX Runtime sessions from the package's bytes (an `Arc<[u8]>` shared
//! by every restorer), so deleting or replacing the file after loading changes nothing.
//!
//! Files are opened defensively: `O_NONBLOCK` (a FIFO cannot block the open), then `fstat` on
//! the opened descriptor must say "regular file" (no devices such as `/dev/zero`, no FIFOs,
//! no folders), the size must be at most [`MAX_MODEL_BYTES`], and reading stops there even if
//! the file grows. The mean network's path must resolve (symbolic links included) inside the
//! package's folder, and it is opened with `O_NOFOLLOW`; its SHA-256 is computed while reading.

use super::families::{build_family, default_sampler};
use super::onnx_proto;
use super::package::{GraphPlan, PackageMeta, check_io};
use crate::family::Family;
use crate::rng::PhiloxNoise;
use crate::sampler::{Model, Sampler, sample};
use crate::{Error, FnDenoiser, Result, Tensor, TensorView};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest ONNX file read (a package or its mean network): 2 GiB, protobuf's own limit on
/// one serialized message (larger networks need external data, which packages do not use).
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

/// NADB's mean network, read and checked with its package.
#[derive(Clone, Debug)]
pub struct MeanNetworkFile {
    /// Where it was read from (inside the package's folder).
    pub path: PathBuf,
    /// Its bytes (SHA-256 verified).
    pub bytes: Arc<[u8]>,
    /// What its graph allows.
    pub plan: GraphPlan,
}

/// A model package, loaded once and validated (see the module docs).
#[derive(Clone, Debug)]
pub struct ModelPackage {
    label: String,
    path: Option<PathBuf>,
    bytes: Arc<[u8]>,
    meta: PackageMeta,
    plan: GraphPlan,
    mean: Option<MeanNetworkFile>,
}

fn package_err(label: &str, reason: impl Into<String>) -> Error {
    Error::Package { path: label.to_string(), reason: reason.into() }
}

/// Open `path` for reading without blocking (FIFOs) and, unless `follow`, without following a
/// final symbolic link.
fn open_nonblocking(path: &Path, follow: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NONBLOCK | if follow { 0 } else { libc::O_NOFOLLOW });
    }
    #[cfg(not(unix))]
    let _ = follow;
    o.open(path)
}

/// Read a whole regular file of at most `cap` bytes, returning its bytes and SHA-256 (hex).
/// `follow`: whether a final symbolic link is followed.
pub fn read_regular_file(path: &Path, cap: u64, follow: bool) -> Result<(Vec<u8>, String)> {
    let shown = path.display().to_string();
    let io = |e: std::io::Error| Error::Io { path: shown.clone(), source: e };
    let mut f = open_nonblocking(path, follow).map_err(|e| {
        #[cfg(unix)]
        if !follow && e.raw_os_error() == Some(libc::ELOOP) {
            return package_err(&shown, "is a symbolic link (opened with O_NOFOLLOW)");
        }
        io(e)
    })?;
    // fstat of the descriptor just opened: no window for a swap between check and read.
    let md = f.metadata().map_err(io)?;
    if !md.is_file() {
        return Err(package_err(&shown, "not a regular file (a folder, device, FIFO or socket)"));
    }
    if md.len() > cap {
        return Err(package_err(&shown, format!("{} bytes is larger than the limit of {cap} bytes", md.len())));
    }
    let mut bytes = Vec::with_capacity(md.len() as usize);
    let mut hash = Sha256::new();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = match f.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        if bytes.len() as u64 + n as u64 > cap {
            return Err(package_err(&shown, format!("grew past the limit of {cap} bytes while being read")));
        }
        hash.update(&chunk[..n]);
        bytes.extend_from_slice(&chunk[..n]);
    }
    let hex = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((bytes, hex))
}

/// The mean network's file: `rel` (already checked to be relative, without `..`) resolved
/// with every symbolic link, which must stay inside the package's folder `dir`.
fn resolve_inside(dir: &Path, rel: &str) -> Result<PathBuf> {
    let io = |p: &Path, e| Error::Io { path: p.display().to_string(), source: e };
    let base = std::fs::canonicalize(dir).map_err(|e| io(dir, e))?;
    let joined = base.join(rel);
    let real = std::fs::canonicalize(&joined).map_err(|e| io(&joined, e))?;
    if !real.starts_with(&base) {
        return Err(package_err(
            &joined.display().to_string(),
            format!("the mean network resolves to {}, outside the package's folder {}", real.display(), base.display()),
        ));
    }
    Ok(real)
}

/// Run `sampler` for `nfe` evaluations on a 1×1 image with a zero network: errors that say the
/// sampler, the NFE or the family cannot work together are the package's; anything else (a
/// zero network may be outside a family's domain) is not a statement about the package.
pub(crate) fn dry_run(family: &dyn Family, sampler: &Sampler, nfe: usize, channels: usize) -> Result<()> {
    let x = Tensor::zeros((1, channels, 1, 1));
    let mut net = FnDenoiser(|x: TensorView<'_>, _c: TensorView<'_>, _t: f64| Ok(Tensor::zeros(x.raw_dim())));
    let mut model = Model::new(&mut net, family, x.view(), x.view())?;
    match sample(&mut model, sampler, nfe, &mut PhiloxNoise::new(0)) {
        Err(e @ (Error::Incompatible { .. } | Error::InvalidNfe { .. } | Error::InvalidParam { .. } | Error::UnknownSampler(_))) => Err(e),
        _ => Ok(()),
    }
}

/// `bridge.mean_network.t_net` against the family: NADB feeds its own time value (a package
/// value must agree); any other family needs one.
pub(crate) fn check_mean_t_net(meta: &PackageMeta, family: &dyn Family, label: &str) -> Result<()> {
    let Some(m) = &meta.mean_network else { return Ok(()) };
    match family.mean_network_call() {
        // The family feeds its mean network its own time value; a package value must agree.
        Some(call) => {
            let t = call.t_net;
            if m.t_net.is_some_and(|v| (v - t).abs() > 1e-6 * t.abs().max(1.0)) {
                return Err(package_err(
                    label,
                    format!("bridge.mean_network.t_net {:?} contradicts family `{}`'s own mean-network time {t}", m.t_net, family.name()),
                ));
            }
        }
        None if m.t_net.is_none() => {
            return Err(package_err(label, format!("bridge.mean_network.t_net is required for family `{}`", family.name())));
        }
        None => {}
    }
    Ok(())
}

impl ModelPackage {
    /// Load and validate the package at `path` (and its mean network, beside it).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_file(path.as_ref(), true)
    }

    /// Validate a package held in memory; `label` names it in errors. A package that names a
    /// mean network (a second file) cannot be loaded this way: load it from its folder.
    pub fn from_memory(bytes: impl Into<Arc<[u8]>>, label: &str) -> Result<Self> {
        Self::open(label.to_string(), None, bytes.into(), None, true)
    }

    /// As [`ModelPackage::load`] / [`ModelPackage::from_memory`]; `own_family: false` skips
    /// the checks that need the package's own family (a caller-supplied family replaces it).
    pub(crate) fn open_file(path: &Path, own_family: bool) -> Result<Self> {
        let label = path.display().to_string();
        let (bytes, _) = read_regular_file(path, MAX_MODEL_BYTES, true)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self::open(label, Some(path.to_path_buf()), bytes.into(), Some(&dir), own_family)
    }

    pub(crate) fn open(label: String, path: Option<PathBuf>, bytes: Arc<[u8]>, dir: Option<&Path>, own_family: bool) -> Result<Self> {
        let header = onnx_proto::read(&bytes).map_err(|r| package_err(&label, r))?;
        if header.external_data {
            return Err(package_err(&label, "initializers with external data are not supported (a package is one file)"));
        }
        let meta = PackageMeta::from_props(&header.props, &label)?;
        let plan = check_io(&meta.io, meta.channels, meta.spatial_multiple, &header.inputs, &header.outputs)
            .map_err(|r| package_err(&label, r))?;
        if meta.io.cond.is_some() && plan.cond_channels != meta.channels {
            return Err(package_err(
                &label,
                format!(
                    "the graph's conditioning input has {} channels; the restorer feeds the {}-channel degraded image",
                    plan.cond_channels, meta.channels
                ),
            ));
        }
        if own_family {
            // Family and sampler errors at load are the package's: report them as such.
            let in_package = |e: Error| package_err(&label, e.to_string());
            let family = build_family(&meta).map_err(in_package)?;
            let sampler = default_sampler(&meta).map_err(in_package)?;
            dry_run(family.as_ref(), &sampler, meta.nfe, meta.channels)
                .map_err(|e| package_err(&label, format!("the default sampler `{}` at {} NFE cannot run: {e}", meta.sampler, meta.nfe)))?;
            check_mean_t_net(&meta, family.as_ref(), &label)?;
        }
        let mean = match (&meta.mean_network, dir) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(package_err(
                    &label,
                    "the package names a mean network (a second file beside it), which cannot be found for a package \
                     loaded from memory; load it from a file",
                ));
            }
            (Some(m), Some(dir)) => {
                let path = resolve_inside(dir, &m.path)?;
                let shown = path.display().to_string();
                let (bytes, sha) = read_regular_file(&path, MAX_MODEL_BYTES, false)?;
                if sha != m.sha256 {
                    return Err(package_err(
                        &shown,
                        format!("sha256 {sha} does not match the package's {} (wrong or corrupted mean network)", m.sha256),
                    ));
                }
                let h = onnx_proto::read(&bytes).map_err(|r| package_err(&shown, r))?;
                let mplan =
                    check_io(&m.io, meta.channels, meta.spatial_multiple, &h.inputs, &h.outputs).map_err(|r| package_err(&shown, r))?;
                if let (Some(a), Some(b)) = (plan.fixed_hw, mplan.fixed_hw)
                    && a != b
                {
                    return Err(package_err(&shown, format!("the mean network fixes its size to {b:?}, the bridge network to {a:?}")));
                }
                Some(MeanNetworkFile { path, bytes: bytes.into(), plan: mplan })
            }
        };
        Ok(ModelPackage { label, path, bytes, meta, plan, mean })
    }

    /// The package description.
    pub fn meta(&self) -> &PackageMeta {
        &self.meta
    }
    /// What the graph allows (fixed batch or size, cond channels, time feed).
    pub fn plan(&self) -> GraphPlan {
        self.plan
    }
    /// The ONNX bytes, shared.
    pub fn bytes(&self) -> &Arc<[u8]> {
        &self.bytes
    }
    /// NADB's mean network, if the package has one.
    pub fn mean_network(&self) -> Option<&MeanNetworkFile> {
        self.mean.as_ref()
    }
    /// The file it was read from (`None` for a package from memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
    /// How errors name it (the path, or the label given for a package from memory).
    pub fn label(&self) -> &str {
        &self.label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        crate::test_support::fresh_dir("pkg", name)
    }

    /// Devices, FIFOs, folders and oversized files are refused before anything is read.
    #[cfg(unix)]
    #[test]
    fn only_bounded_regular_files_are_read() {
        let dir = tmpdir("read");
        let e = read_regular_file(Path::new("/dev/zero"), MAX_MODEL_BYTES, true).unwrap_err();
        assert!(matches!(&e, Error::Package { reason, .. } if reason.contains("not a regular file")), "{e}");
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_regular_file(&fifo, MAX_MODEL_BYTES, true).unwrap_err();
        assert!(matches!(&e, Error::Package { reason, .. } if reason.contains("not a regular file")), "{e}");
        let e = read_regular_file(&dir, MAX_MODEL_BYTES, true).unwrap_err();
        assert!(matches!(e, Error::Package { .. }), "{e}");
        // A sparse file: oversize is found by fstat, nothing is read.
        let big = dir.join("big");
        std::fs::File::create(&big).unwrap().set_len(MAX_MODEL_BYTES + 1).unwrap();
        let e = read_regular_file(&big, MAX_MODEL_BYTES, true).unwrap_err();
        assert!(matches!(&e, Error::Package { reason, .. } if reason.contains("larger than")), "{e}");
        let small = dir.join("small");
        std::fs::write(&small, b"abc").unwrap();
        let (b, sha) = read_regular_file(&small, 3, true).unwrap();
        assert_eq!((b.as_slice(), sha.as_str()), (&b"abc"[..], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
        assert!(read_regular_file(&small, 2, true).is_err());
        let link = dir.join("link");
        std::os::unix::fs::symlink(&small, &link).unwrap();
        let e = read_regular_file(&link, 3, false).unwrap_err();
        assert!(matches!(&e, Error::Package { reason, .. } if reason.contains("symbolic link")), "{e}");
        assert!(read_regular_file(&link, 3, true).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn mean_network_stays_in_the_folder() {
        let dir = tmpdir("inside");
        let pkg = dir.join("pkg");
        std::fs::create_dir_all(pkg.join("sub")).unwrap();
        std::fs::write(pkg.join("sub/m.onnx"), b"x").unwrap();
        std::fs::write(dir.join("outside.onnx"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.join("outside.onnx"), pkg.join("escape.onnx")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", pkg.join("zero.onnx")).unwrap();
        std::os::unix::fs::symlink("sub/m.onnx", pkg.join("inner.onnx")).unwrap();
        assert!(resolve_inside(&pkg, "sub/m.onnx").unwrap().ends_with("sub/m.onnx"));
        assert!(resolve_inside(&pkg, "inner.onnx").unwrap().ends_with("sub/m.onnx"));
        for bad in ["escape.onnx", "zero.onnx"] {
            let e = resolve_inside(&pkg, bad).unwrap_err();
            assert!(matches!(&e, Error::Package { reason, .. } if reason.contains("outside the package's folder")), "{bad}: {e}");
        }
        assert!(matches!(resolve_inside(&pkg, "missing.onnx"), Err(Error::Io { .. })));
    }
}
