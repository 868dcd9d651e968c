//! The thread pool the SDK's own data-parallel loops run on.
//!
//! Why not rayon's global pool: rayon starts it implicitly on first use and *panics* when its
//! threads cannot be created (an address-space cap, a thread limit, a host short of memory),
//! and once that start has failed every later use of the global pool panics too. The SDK runs
//! inside other people's processes, where a panic is never how a restore may fail. So the pool
//! is started here, fallibly; a caller that cannot get one runs the loop on its own thread, which
//! gives the same bits (every loop that uses this is thread-count independent by construction).
//!
//! How many threads: a [`crate::Restorer`] built with `threads(n)` (the C ABI's `threads`) runs
//! its restores under `with_thread_limit(n)`, so the step uses at most `n` threads as ONNX
//! Runtime does (1: the calling thread alone, no pool started). Callers that want to choose the
//! threads otherwise wrap the SDK call in their own pool (`pool.install(|| restorer.restore(..))`):
//! a loop started on a rayon worker stays in that worker's pool. Unlimited, the SDK's pool has
//! rayon's default size (`RAYON_NUM_THREADS`, else one thread per logical CPU).

use rayon::{ThreadPool, ThreadPoolBuildError, ThreadPoolBuilder};
use std::cell::Cell;
use std::sync::{Mutex, OnceLock};

thread_local! {
    /// The thread limit of the restore running on this thread (0: none).
    static LIMIT: Cell<usize> = const { Cell::new(0) };
}

/// Run `f` with the SDK's parallel loops started on this thread limited to `threads` threads
/// (0: no limit). Nests; the previous limit is back when `f` returns or unwinds.
pub(crate) fn with_thread_limit<R>(threads: usize, f: impl FnOnce() -> R) -> R {
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            LIMIT.with(|l| l.set(self.0));
        }
    }
    let _restore = Restore(LIMIT.with(|l| l.replace(threads)));
    f()
}

/// Where a data-parallel loop should run.
pub(crate) enum Pool {
    /// The caller is a rayon worker: run in its pool (`current_num_threads` threads).
    Current(usize),
    /// The SDK's own pool, used by at most `threads` of its threads at a time.
    Own { pool: &'static ThreadPool, threads: usize },
    /// Run on the calling thread: a limit of 1, or no pool could be started.
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
        let limit = LIMIT.with(Cell::get);
        if limit == 1 {
            return Pool::Serial;
        }
        static OWN: OnceLock<ThreadPool> = OnceLock::new();
        static STARTING: Mutex<()> = Mutex::new(());
        match started(&OWN, &STARTING, || ThreadPoolBuilder::new().thread_name(|i| format!("libbridge-{i}")).build()) {
            Some(pool) => {
                let all = pool.current_num_threads();
                Pool::Own { pool, threads: if limit == 0 { all } else { limit.min(all) } }
            }
            None => Pool::Serial,
        }
    }

    /// How many threads the loop may use at once (1: run it serially).
    pub(crate) fn threads(&self) -> usize {
        match self {
            Pool::Current(n) => *n,
            Pool::Own { threads, .. } => *threads,
            Pool::Serial => 1,
        }
    }

    /// The units per task for a loop of `n` units whose tasks hold at least `grain` units: with
    /// a limit below the pool's size, `n / threads()` rounded up (at most `threads()` tasks, so
    /// no more threads than that can work on the loop); else `grain` (small tasks the whole pool
    /// balances).
    pub(crate) fn task_size(&self, n: usize, grain: usize) -> usize {
        let grain = grain.max(1);
        match self {
            Pool::Own { pool, threads } if *threads < pool.current_num_threads() => grain.max(n.div_ceil(*threads)),
            _ => grain,
        }
    }

    /// Run `f` inside the pool (so rayon's parallel iterators in it use this pool's threads).
    pub(crate) fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self {
            Pool::Own { pool, .. } => pool.install(f),
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

    /// On a rayon worker the loop stays in that worker's pool, whatever its size or limit.
    #[test]
    fn a_workers_loop_stays_in_its_pool() {
        let pool = ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let threads = pool.install(|| with_thread_limit(1, || Pool::get().threads()));
        assert_eq!(threads, 3);
        assert!(matches!(Pool::get(), Pool::Own { .. } | Pool::Serial));
    }

    /// A limit of 1 is the calling thread; a limit `n` uses at most `n` threads, by cutting the
    /// loop into at most `n` tasks; the limit nests and is restored, also after a panic.
    #[test]
    fn the_limit_bounds_the_threads() {
        assert!(matches!(with_thread_limit(1, Pool::get), Pool::Serial));
        let own: &'static ThreadPool = Box::leak(Box::new(ThreadPoolBuilder::new().num_threads(4).build().unwrap()));
        let limited = Pool::Own { pool: own, threads: 2 };
        assert_eq!(limited.task_size(1000, 10), 500);
        assert_eq!(limited.task_size(1001, 10), 501);
        assert_eq!(limited.task_size(10, 64), 64);
        assert_eq!(Pool::Own { pool: own, threads: 4 }.task_size(1000, 10), 10);
        assert_eq!(Pool::Serial.task_size(1000, 0), 1);
        if let Pool::Own { threads, .. } = with_thread_limit(2, Pool::get) {
            assert!(threads <= 2);
        }
        with_thread_limit(3, || {
            with_thread_limit(1, || assert!(matches!(Pool::get(), Pool::Serial)));
            assert_eq!(LIMIT.with(Cell::get), 3);
            let r = std::panic::catch_unwind(|| with_thread_limit(1, || panic!("unwinds")));
            assert!(r.is_err());
            assert_eq!(LIMIT.with(Cell::get), 3);
        });
        assert_eq!(LIMIT.with(Cell::get), 0);
    }
}
