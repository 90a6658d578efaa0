//! Sessions shared across the process. Every camera of `faceveil serve` (and every element of a
//! pipeline) asks for the same detector and SDN graphs; opened once, a model's weights and
//! optimized graph are held once, and a camera after the first starts without loading anything.
//! The cache holds weak references: the last user to drop a session frees it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::SystemTime;

use anyhow::{Context, Result};
use ort::session::Session;

use super::{Provider, RuntimeOptions};

/// What makes two requests the same session: the file (by its canonical path, and its size and
/// modification time, so that a model replaced on disk is loaded afresh) and how it runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
    provider: Provider,
    intra_threads: usize,
    device_id: i32,
}

impl Key {
    fn of(model: &Path, opts: &RuntimeOptions) -> Result<Self> {
        let path = model.canonicalize().with_context(|| format!("model not found: {}", model.display()))?;
        let meta = std::fs::metadata(&path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Self {
            path,
            len: meta.len(),
            modified: meta.modified().ok(),
            provider: opts.provider,
            intra_threads: opts.intra_threads,
            device_id: opts.device_id,
        })
    }
}

/// One key's place in the cache. Its own lock lets a second user of a model wait for the first
/// to finish opening it, while other models open at the same time.
type Slot = Arc<Mutex<Weak<Mutex<Session>>>>;

static CACHE: Mutex<Option<HashMap<Key, Slot>>> = Mutex::new(None);

/// A session that may be shared with other users in the process. ort runs a session through
/// `&mut`, so users take turns; on the CPU a run already uses every core it was given, so turns
/// cost little against two runs fighting for the same cores.
#[derive(Clone)]
pub struct SharedSession(Arc<Mutex<Session>>);

impl SharedSession {
    /// The session, once no other user is running it. A user that panicked mid-run left the
    /// session as ONNX Runtime leaves it after any run, so a poisoned lock is taken as is.
    pub fn lock(&self) -> MutexGuard<'_, Session> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many users hold the session.
    #[cfg(test)]
    pub(crate) fn users(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

/// The session of `model` on `opts`: the one already open in this process if any, otherwise a
/// new one (see [`super::session`]).
pub fn shared(model: &Path, opts: &RuntimeOptions) -> Result<SharedSession> {
    let key = Key::of(model, opts)?;
    let slot = {
        let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        let cache = cache.get_or_insert_with(HashMap::new);
        // Keys whose session has gone, and that nobody is opening, are forgotten.
        cache.retain(|_, slot| Arc::strong_count(slot) > 1 || slot.try_lock().is_ok_and(|w| w.strong_count() > 0));
        cache.entry(key).or_default().clone()
    };
    let mut weak = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(session) = weak.upgrade() {
        return Ok(SharedSession(session));
    }
    let session = Arc::new(Mutex::new(super::session(model, opts)?));
    *weak = Arc::downgrade(&session);
    Ok(SharedSession(session))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::assets;

    #[test]
    fn users_of_one_model_share_its_session_until_the_last_lets_go() {
        let model = assets::centerface_model(None).unwrap().path;
        let (one, two) = (RuntimeOptions { intra_threads: 1, ..Default::default() }, RuntimeOptions::default());
        let a = shared(&model, &one).unwrap();
        let b = shared(&model, &one).unwrap();
        assert!(Arc::ptr_eq(&a.0, &b.0), "the same model and options: one session");
        let other = shared(&model, &two).unwrap();
        assert!(!Arc::ptr_eq(&a.0, &other.0), "other thread counts: another session");
        assert_eq!(Arc::strong_count(&a.0), 2);
        let weak = Arc::downgrade(&a.0);
        drop(a);
        assert!(weak.upgrade().is_some(), "a user is left");
        drop(b);
        assert!(weak.upgrade().is_none(), "the last user's drop frees the session");
        let again = shared(&model, &one).unwrap();
        assert_eq!(Arc::strong_count(&again.0), 1, "opened afresh");
    }
}
