//! Finding ONNX Runtime: a missing or broken library is a typed error that names the set-up
//! command, and a good one loads afterwards in the same process. (Own test binary: the
//! library and environment are process-global.)

mod runtime_models;

use bridge::Error;
use bridge::restorer::Restorer;

#[test]
fn missing_or_broken_library_then_good() {
    runtime_models::ensure_ort();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bridge-rt-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = runtime_models::oracle(&dir, "o.onnx", 1, 1, false);
    let fam = || Box::new(TestFamily) as Box<dyn bridge::family::Family>;

    let e = Restorer::builder(&model).onnxruntime_library(dir.join("nope/libonnxruntime.so")).family(fam()).build().unwrap_err();
    assert!(matches!(&e, Error::RuntimeNotFound(m) if m.contains("scripts/install-ort.sh")), "{e}");

    let fake = dir.join("libonnxruntime.so");
    std::fs::write(&fake, b"not a shared library").unwrap();
    let e = Restorer::builder(&model).onnxruntime_library(&fake).family(fam()).build().unwrap_err();
    assert!(matches!(&e, Error::RuntimeNotFound(m) if m.contains("cannot load")), "{e}");
    // A folder is searched for the library too (here: the fake one).
    let e = Restorer::builder(&model).onnxruntime_library(&dir).family(fam()).build().unwrap_err();
    assert!(matches!(e, Error::RuntimeNotFound(_)), "{e}");

    // The project's copy loads (found without any path), and a second, different library
    // cannot be loaded into the same process.
    let r = Restorer::builder(&model).family(fam()).sampler("implicit").build();
    assert!(r.is_ok(), "{:?}", r.err());
    let loaded = bridge::runtime::env::loaded_library().expect("a library was loaded");
    assert!(loaded.to_string_lossy().contains("onnxruntime"));
    let e = Restorer::builder(&model).onnxruntime_library(&fake).family(fam()).build().unwrap_err();
    assert!(matches!(&e, Error::RuntimeNotFound(m) if m.contains("already loaded")), "{e}");
}

#[derive(Debug)]
struct TestFamily;

impl bridge::family::Family for TestFamily {
    fn name(&self) -> &'static str {
        "test"
    }
    fn marginal(&self, t: f64) -> bridge::family::Marginal {
        bridge::family::Marginal { x0: 1.0 - t, xt: t, std: 0.5 * (t * (1.0 - t)).max(0.0).sqrt() }
    }
    fn net_call(&self, t: f64) -> bridge::family::NetCall {
        let x0 = Some(bridge::family::Lin { x: 0.0, xt: 0.0, out: 1.0 });
        bridge::family::NetCall { t, t_net: t, c_in: 1.0, x0, clamp: None, raw_is_eps: false }
    }
    fn grid(&self, nfe: usize) -> bridge::Result<Vec<f64>> {
        Ok((0..=nfe).map(|i| 1.0 - i as f64 / nfe.max(1) as f64).collect())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
