//! The backend registry: names → constructors, with the built-in backends pre-registered.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use crate::backend::{Backend, BackendContext, Constructor};
use crate::backends;
use crate::Result;

fn registry() -> &'static RwLock<BTreeMap<String, Constructor>> {
    static REGISTRY: OnceLock<RwLock<BTreeMap<String, Constructor>>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut map: BTreeMap<String, Constructor> = BTreeMap::new();
        for (name, ctor) in backends::builtins() {
            map.insert(name.to_string(), ctor);
        }
        RwLock::new(map)
    })
}

/// Registers (or replaces) a backend constructor under `name`, so that `name` can be used in
/// [`TrackerBuilder::backends`](crate::TrackerBuilder::backends) and `EZPZ_TRACKER_BACKENDS`.
///
/// ```
/// use ezpz_tracker::{register_backend, MemoryBackend};
/// register_backend("my-memory", |_ctx| Ok(Box::new(MemoryBackend::new())));
/// assert!(ezpz_tracker::registered_backends().contains(&"my-memory".to_string()));
/// ezpz_tracker::unregister_backend("my-memory");
/// ```
pub fn register_backend<F>(name: &str, constructor: F)
where
    F: Fn(&BackendContext) -> Result<Box<dyn Backend>> + Send + Sync + 'static,
{
    let mut map = registry().write().unwrap_or_else(|e| e.into_inner());
    map.insert(name.to_string(), Arc::new(constructor));
}

/// Removes a registered backend; returns whether it was there.
pub fn unregister_backend(name: &str) -> bool {
    let mut map = registry().write().unwrap_or_else(|e| e.into_inner());
    map.remove(name).is_some()
}

/// The registered backend names, sorted.
pub fn registered_backends() -> Vec<String> {
    let map = registry().read().unwrap_or_else(|e| e.into_inner());
    map.keys().cloned().collect()
}

/// The constructor registered under `name`.
pub(crate) fn constructor(name: &str) -> Option<Constructor> {
    let map = registry().read().unwrap_or_else(|e| e.into_inner());
    map.get(name).cloned()
}
