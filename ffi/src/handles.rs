//! The registry of live handles.
//!
//! A handle given to C is an opaque token — a key into this registry — that libbridge never
//! dereferences. Every entry point looks the token up: a freed handle, a value libbridge never
//! issued, or a handle of the other type is `BRIDGE_ERR_INVALID_HANDLE`, not undefined
//! behaviour. Tokens are never reused, so a stale handle cannot alias a newer object.
//!
//! Objects are reference-counted: a call in progress keeps what it uses alive, so freeing a
//! restorer while another thread runs it (a contract violation, but a detectable one) cancels
//! that run and releases the memory when it returns.

use crate::model::Model;
use crate::restorer::RestorerEntry;
use crate::status::{Failure, bridge_status};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A loaded model package (opaque). Immutable: may be shared by any number of threads.
pub struct bridge_model {
    _opaque: [u8; 0],
}

/// A restorer: a model plus sampler settings and ONNX Runtime sessions (opaque). Used by one
/// thread at a time; `bridge_restorer_cancel` may be called from any thread.
pub struct bridge_restorer {
    _opaque: [u8; 0],
}

enum Entry {
    Model(Arc<Model>),
    Restorer(Arc<RestorerEntry>),
}

impl Entry {
    fn kind(&self) -> &'static str {
        match self {
            Entry::Model(_) => "bridge_model",
            Entry::Restorer(_) => "bridge_restorer",
        }
    }
}

static LIVE: Mutex<BTreeMap<usize, Entry>> = Mutex::new(BTreeMap::new());
/// Next token number; tokens are `n·16` so they look like aligned addresses and are never 0.
static NEXT: AtomicUsize = AtomicUsize::new(1);

fn live() -> MutexGuard<'static, BTreeMap<usize, Entry>> {
    // The map stays consistent even if a holder panicked (inserts/removes are single calls).
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

fn issue(e: Entry) -> Result<usize, Failure> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let key =
        n.checked_mul(16).ok_or_else(|| Failure::new(bridge_status::BRIDGE_ERR_INTERNAL, "handle numbers exhausted in this process"))?;
    live().insert(key, e);
    Ok(key)
}

fn lookup<T>(key: usize, want: &str, pick: impl FnOnce(&Entry) -> Option<Arc<T>>) -> Result<Arc<T>, Failure> {
    if key == 0 {
        return Err(Failure::null(want));
    }
    let map = live();
    match map.get(&key) {
        None => Err(Failure::new(
            bridge_status::BRIDGE_ERR_INVALID_HANDLE,
            format!("{key:#x} is not a live {want} (already freed, or never created by libbridge)"),
        )),
        Some(e) => pick(e)
            .ok_or_else(|| Failure::new(bridge_status::BRIDGE_ERR_INVALID_HANDLE, format!("{key:#x} is a {}, not a {want}", e.kind()))),
    }
}

fn remove(key: usize, want: &str, is: impl Fn(&Entry) -> bool) -> Result<Option<Entry>, Failure> {
    if key == 0 {
        return Ok(None);
    }
    let mut map = live();
    match map.get(&key) {
        None => Err(Failure::new(
            bridge_status::BRIDGE_ERR_INVALID_HANDLE,
            format!("{key:#x} is not a live {want} (double free, or never created by libbridge)"),
        )),
        Some(e) if !is(e) => {
            Err(Failure::new(bridge_status::BRIDGE_ERR_INVALID_HANDLE, format!("{key:#x} is a {}, not a {want}", e.kind())))
        }
        Some(_) => Ok(map.remove(&key)),
    }
}

/// Register a model; the token to hand to C.
pub(crate) fn new_model(m: Model) -> Result<*mut bridge_model, Failure> {
    issue(Entry::Model(Arc::new(m))).map(|k| k as *mut bridge_model)
}

/// The live model behind a token.
pub(crate) fn model(p: *const bridge_model) -> Result<Arc<Model>, Failure> {
    lookup(p as usize, "bridge_model", |e| match e {
        Entry::Model(m) => Some(m.clone()),
        _ => None,
    })
}

/// Unregister a model (NULL: nothing). Its memory goes when the last restorer using it does.
pub(crate) fn free_model(p: *mut bridge_model) -> Result<(), Failure> {
    remove(p as usize, "bridge_model", |e| matches!(e, Entry::Model(_))).map(drop)
}

/// Register a restorer; the token to hand to C.
pub(crate) fn new_restorer(r: RestorerEntry) -> Result<*mut bridge_restorer, Failure> {
    issue(Entry::Restorer(Arc::new(r))).map(|k| k as *mut bridge_restorer)
}

/// The live restorer behind a token.
pub(crate) fn restorer(p: *const bridge_restorer) -> Result<Arc<RestorerEntry>, Failure> {
    lookup(p as usize, "bridge_restorer", |e| match e {
        Entry::Restorer(r) => Some(r.clone()),
        _ => None,
    })
}

/// Unregister a restorer (NULL: nothing), returning it so the caller can cancel a run in flight.
pub(crate) fn free_restorer(p: *mut bridge_restorer) -> Result<Option<Arc<RestorerEntry>>, Failure> {
    Ok(remove(p as usize, "bridge_restorer", |e| matches!(e, Entry::Restorer(_)))?.and_then(|e| match e {
        Entry::Restorer(r) => Some(r),
        Entry::Model(_) => None,
    }))
}

/// The number of live handles (models plus restorers) in the process: a diagnostic for leak
/// checks in hosts and tests (e.g. it should return to its starting value after a pipeline shuts
/// down).
///
/// Thread-safety: any thread. Does not change `bridge_last_error()`.
#[unsafe(no_mangle)]
pub extern "C" fn bridge_live_handle_count() -> usize {
    std::panic::catch_unwind(|| live().len()).unwrap_or(0)
}
