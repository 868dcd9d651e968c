//! Every golden trajectory replays within its tolerance.
use bridge::golden::replay_file;

#[test]
fn every_golden_file_replays() {
    let Some(dir) = bridge_e2e::golden_dir() else {
        panic!("shared golden directory not found: set BRIDGE_GOLDEN_DIR");
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden files in {}", dir.display());
    let mut failures = Vec::new();
    for f in &files {
        match replay_file(f) {
            Ok(o) if o.passed => {}
            Ok(o) => failures.push(format!("{}: err {:.3e} > {:.0e} {:?}", o.file, o.max_rel_err, o.tolerance, o.detail)),
            Err(e) => failures.push(format!("{}: {e}", f.display())),
        }
    }
    assert!(failures.is_empty(), "{} of {} golden files failed:\n{}", failures.len(), files.len(), failures.join("\n"));
}
