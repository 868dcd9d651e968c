//! Test support for memory-cap tests (Linux, 64-bit): run a test again in a child process that
//! lowers its own address-space limit (`RLIMIT_AS`), so the cap constrains no other test.
//!
//! The parent calls [`in_child`] with the test's path; the child (where [`is_child`] is true)
//! lowers the soft limit with [`cap_address_space`] (and may raise it again), prints what it
//! observed, and the parent checks the output. Used by the SDK's and the C ABI's
//! `memory_limit_tests`.
#![cfg(all(target_os = "linux", target_pointer_width = "64"))]

use std::process::Command;

#[repr(C)]
struct Rlimit {
    cur: u64,
    max: u64,
}

unsafe extern "C" {
    fn getrlimit(resource: i32, rlim: *mut Rlimit) -> i32;
    fn setrlimit(resource: i32, rlim: *const Rlimit) -> i32;
}

/// `RLIMIT_AS` on Linux (x86-64 and AArch64).
const RLIMIT_AS: i32 = 9;

/// The environment variable that marks the child.
const CHILD: &str = "BRIDGE_MEMCAP_CHILD";

/// The process's current address-space size in bytes (`/proc/self/statm`, in pages).
pub fn address_space() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().next().and_then(|p| p.parse().ok()).expect("statm size");
    pages * 4096
}

/// Set the soft `RLIMIT_AS` (never above the hard limit); returns the previous soft limit.
pub fn cap_address_space(bytes: u64) -> u64 {
    let mut r = Rlimit { cur: 0, max: 0 };
    // SAFETY: `r` is a valid `struct rlimit` (two `rlim_t` = u64 on 64-bit Linux).
    assert_eq!(unsafe { getrlimit(RLIMIT_AS, &mut r) }, 0);
    let old = r.cur;
    r.cur = bytes.min(r.max);
    // SAFETY: as above.
    assert_eq!(unsafe { setrlimit(RLIMIT_AS, &r) }, 0);
    old
}

/// Whether this process is the child of [`in_child`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Run the test `path` (e.g. `memory_limit_tests::name`) of this test binary alone in a child
/// process; asserts that the child exited normally (an allocation failure that aborts shows
/// up here as SIGABRT) and returns its stdout.
pub fn in_child(path: &str) -> String {
    let exe = std::env::current_exe().expect("test binary");
    let o =
        Command::new(exe).args(["--exact", path, "--nocapture", "--test-threads=1"]).env(CHILD, "1").output().expect("run the test binary");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "child {path} failed ({}):\n{out}\n{}", o.status, String::from_utf8_lossy(&o.stderr));
    out
}
