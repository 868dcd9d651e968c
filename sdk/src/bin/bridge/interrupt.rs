//! Ctrl-C (SIGINT) and SIGTERM cancel a restore through the restorer's [`CancelToken`] — the
//! same path as the C ABI's `bridge_restorer_cancel` — so a network run in progress is
//! terminated by ONNX Runtime instead of running to its end.
//!
//! The signal handler only writes the signal number to a pipe (async-signal-safe); a thread
//! reads it, records it and cancels the token. It keeps cancelling every 50 ms, because a
//! restore clears its token when it starts and a signal may land just before that. After the
//! first signal the default disposition is restored, so a second Ctrl-C kills the process.

use bridge::runtime::CancelToken;
use std::sync::atomic::{AtomicI32, Ordering};

/// Write end of the pipe (−1: not installed).
static PIPE_W: AtomicI32 = AtomicI32::new(-1);
/// The signal received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = PIPE_W.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; `b` outlives the call. A full pipe only drops
        // a repeated signal.
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
}

/// Route SIGINT and SIGTERM to `token` from now on. Installing twice is a no-op.
pub fn cancel_on_signal(token: CancelToken) {
    if PIPE_W.load(Ordering::SeqCst) >= 0 {
        return;
    }
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe(2) fills the two-element array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        eprintln!("note: Ctrl-C will not cancel cleanly (pipe: {})", std::io::Error::last_os_error());
        return;
    }
    let [read_fd, write_fd] = fds;
    PIPE_W.store(write_fd, Ordering::SeqCst);
    std::thread::spawn(move || {
        let mut b = 0u8;
        // SAFETY: reads one byte into `b` from the pipe this function created.
        let n = unsafe { libc::read(read_fd, (&mut b as *mut u8).cast(), 1) };
        if n != 1 {
            return;
        }
        RECEIVED.store(i32::from(b), Ordering::SeqCst);
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: restoring the default disposition of a standard signal.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
        loop {
            token.cancel();
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a handler that only calls write(2); SA_RESTART keeps
        // other threads' system calls from failing with EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// The signal that cancelled the run, if one arrived.
pub fn received() -> Option<i32> {
    Some(RECEIVED.load(Ordering::SeqCst)).filter(|&s| s != 0)
}
