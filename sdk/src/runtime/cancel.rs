//! Cancellation that also stops a network run in the middle.

use ort::session::RunOptions;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

struct Inner {
    flag: AtomicBool,
    runs: Mutex<Vec<Arc<RunOptions>>>,
}

/// A handle that cancels a restore from any thread.
///
/// [`CancelToken::cancel`] sets a flag the SDK checks between network calls and tiles, and
/// calls ONNX Runtime's `RunOptions::terminate()` on every session attached to the token, so a
/// network run in progress stops within milliseconds instead of finishing. The interrupted
/// restore returns [`crate::Error::Cancelled`]. A restore clears the token when it starts:
/// a cancel applies to the run in progress (or the next one, if none is running).
///
/// ```no_run
/// use bridge::image::ImageRef;
/// use bridge::restorer::Restorer;
/// use std::time::Duration;
///
/// # fn main() -> bridge::Result<()> {
/// let mut restorer = Restorer::builder("model.onnx").build()?;
/// let token = restorer.cancel_token();
/// std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_secs(2));
///     token.cancel(); // the restore below returns within milliseconds
/// });
/// let pixels = vec![0u8; 1024 * 768 * 3];
/// match restorer.restore(&ImageRef::rgb8(&pixels, 1024, 768)?) {
///     Err(bridge::Error::Cancelled) => eprintln!("cancelled"),
///     other => drop(other?),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken { inner: Arc::new(Inner { flag: AtomicBool::new(false), runs: Mutex::new(Vec::new()) }) }
    }
}

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelToken").field("cancelled", &self.is_cancelled()).finish()
    }
}

impl CancelToken {
    /// A fresh, un-cancelled token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancel: the running restore stops with [`crate::Error::Cancelled`].
    pub fn cancel(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        for r in self.inner.runs.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            // Only fails if the options pointer is invalid, which an Arc'd one never is.
            let _ = r.terminate();
        }
    }

    /// Whether [`CancelToken::cancel`] was called since the last reset.
    pub fn is_cancelled(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    /// Clear the flag and make the attached sessions runnable again.
    pub(crate) fn reset(&self) {
        for r in self.inner.runs.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = r.unterminate();
        }
        self.inner.flag.store(false, Ordering::SeqCst);
    }

    /// Attach a session's run options so [`CancelToken::cancel`] terminates its runs.
    pub(crate) fn attach(&self, run: Arc<RunOptions>) {
        let mut runs = self.inner.runs.lock().unwrap_or_else(|p| p.into_inner());
        if !runs.iter().any(|r| Arc::ptr_eq(r, &run)) {
            runs.push(run);
        }
    }
}
