//! Every golden trajectory replays within its tolerance.
use bridge::golden::replay_file;

#[test]
fn every_golden_file_replays() {
    let Some(dir) = bridge_e2e::golden_dir() else {
        panic!("golden directory not found (tests/golden, or set BRIDGE_GOLDEN_DIR)");
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden files in {}", dir.display());
    // Every family's files are there (a partial copy would pass silently otherwise).
    for prefix in ["i2sb_", "ddbm_", "dbim_", "goub_", "unidb_", "unidbpp_", "rdbm_", "nadb_", "dbmsolver_", "i3sb_"] {
        let has = files.iter().any(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)));
        assert!(has, "no {prefix}*.json in {}", dir.display());
    }
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
