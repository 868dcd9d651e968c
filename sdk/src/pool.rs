//! The thread pool the SDK's own data-parallel loops run on.
//!
//! Why not rayon's global pool: rayon starts it implicitly on first use and *panics* when its
//! threads cannot be created (an address-space cap, a thread limit, a host short of memory),
//! and once that start has failed every later use of the global pool panics too. The SDK runs
//! inside other people's processes, where a panic is never how a restore may fail. So the pool
//! is started here, fallibly; a caller that cannot get one runs the loop on its own thread, which
//! gives the same bits (every loop that uses this is thread-count independent by construction).
//!
//! Callers that want to choose the threads wrap the SDK call in their own pool
//! (`pool.install(|| restorer.restore(..))`): a loop started on a rayon worker stays in that
//! worker's pool. Otherwise the SDK's pool has rayon's default size (`RAYON_NUM_THREADS`, else one
//! thread per logical CPU).

use rayon::{ThreadPool, ThreadPoolBuildError, ThreadPoolBuilder};
use std::sync::{Mutex, OnceLock};

/// Where a data-parallel loop should run.
pub(crate) enum Pool {
    /// The caller is a rayon worker: run in its pool (`current_num_threads` threads).
    Current(usize),
    /// The SDK's own pool.
    Own(&'static ThreadPool),
    /// No pool could be started: run on the calling thread.
    Serial,
}

impl Pool {
    /// The pool for a loop started on this thread (starting the SDK's pool if need be).
    pub(crate) fn get() -> Pool {
        if rayon::current_thread_index().is_some() {
            // On a worker, `current_num_threads` reads that worker's pool; it never touches the
            // global one.
            return Pool::Current(rayon::current_num_threads());
        }
        static OWN: OnceLock<ThreadPool> = OnceLock::new();
        static STARTING: Mutex<()> = Mutex::new(());
        match started(&OWN, &STARTING, || ThreadPoolBuilder::new().thread_name(|i| format!("libbridge-{i}")).build()) {
            Some(p) => Pool::Own(p),
            None => Pool::Serial,
        }
    }

    /// How many threads the loop would be split across (1: run it serially).
    pub(crate) fn threads(&self) -> usize {
        match self {
            Pool::Current(n) => *n,
            Pool::Own(p) => p.current_num_threads(),
            Pool::Serial => 1,
        }
    }

    /// Run `f` inside the pool (so rayon's parallel iterators in it use this pool's threads).
    pub(crate) fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self {
            Pool::Own(p) => p.install(f),
            Pool::Current(_) | Pool::Serial => f(),
        }
    }
}

/// The pool in `cell`, started with `start` if no earlier call managed to. A failed start is not
/// remembered: the next call tries again (a transient shortage should not leave the process
/// serial for good), and attempts are serialized so two threads never both start one.
fn started(
    cell: &'static OnceLock<ThreadPool>,
    starting: &Mutex<()>,
    start: impl FnOnce() -> Result<ThreadPool, ThreadPoolBuildError>,
) -> Option<&'static ThreadPool> {
    if let Some(p) = cell.get() {
        return Some(p);
    }
    let _one_at_a_time = starting.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(p) = cell.get() {
        return Some(p);
    }
    let pool = start().ok()?;
    Some(cell.get_or_init(|| pool))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn no_threads() -> Result<ThreadPool, ThreadPoolBuildError> {
        ThreadPoolBuilder::new().num_threads(2).spawn_handler(|_| Err(std::io::Error::other("no threads"))).build()
    }

    /// A start that cannot create threads is a `None`, not a panic, and is retried later.
    #[test]
    fn failed_start_is_none_and_retried() {
        static CELL: OnceLock<ThreadPool> = OnceLock::new();
        static STARTING: Mutex<()> = Mutex::new(());
        assert!(started(&CELL, &STARTING, no_threads).is_none());
        assert!(CELL.get().is_none());
        let calls = AtomicUsize::new(0);
        let start = || {
            calls.fetch_add(1, Ordering::SeqCst);
            ThreadPoolBuilder::new().num_threads(2).build()
        };
        let p = started(&CELL, &STARTING, start).expect("a pool once threads can be made");
        assert_eq!(p.current_num_threads(), 2);
        // Started once: a later call takes the same pool without starting another.
        let again = started(&CELL, &STARTING, || panic!("must not start twice")).unwrap();
        assert!(std::ptr::eq(p, again));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    /// On a rayon worker the loop stays in that worker's pool, whatever its size.
    #[test]
    fn a_workers_loop_stays_in_its_pool() {
        let pool = ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let threads = pool.install(|| Pool::get().threads());
        assert_eq!(threads, 3);
        assert!(matches!(Pool::get(), Pool::Own(_) | Pool::Serial));
    }
}
