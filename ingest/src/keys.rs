//! The key store, reloaded when the key file changes (a Kubernetes Secret update swaps it).
//!
//! Readers take a snapshot per frame (`load`), lock-free; a reload swaps the whole store, so a
//! frame is always opened with one consistent store. A key file that fails to parse keeps the
//! previous store in force and is reported, never half-applied.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use schemas::KeyStore;
use tokio_util::sync::CancellationToken;

/// The current key store.
#[derive(Debug)]
pub struct KeyRing {
    path: PathBuf,
    current: ArcSwap<KeyStore>,
    text: std::sync::Mutex<String>,
}

impl KeyRing {
    /// Loads the key file; fails when it cannot be read or parsed.
    pub fn load(path: PathBuf) -> crate::Result<Self> {
        let text = std::fs::read_to_string(&path)?;
        let store = KeyStore::from_toml(&text)?;
        Ok(KeyRing {
            path,
            current: ArcSwap::from_pointee(store),
            text: std::sync::Mutex::new(text),
        })
    }

    /// A snapshot of the current store.
    pub fn snapshot(&self) -> Arc<KeyStore> {
        self.current.load_full()
    }

    /// Re-reads the file; swaps the store when its text changed and parses. Returns whether it
    /// swapped.
    pub fn reload(&self) -> crate::Result<bool> {
        let text = std::fs::read_to_string(&self.path)?;
        let mut last = self
            .text
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *last == text {
            return Ok(false);
        }
        let store = KeyStore::from_toml(&text)?;
        tracing::info!(terminals = store.len(), path = %self.path.display(), "key file reloaded");
        self.current.store(Arc::new(store));
        *last = text;
        Ok(true)
    }

    /// Checks the file every `interval` until `stop`.
    pub async fn watch(self: Arc<Self>, interval: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    let ring = self.clone();
                    match tokio::task::spawn_blocking(move || ring.reload()).await {
                        Ok(Err(error)) => tracing::warn!(%error, "key file not reloaded; keeping the previous keys"),
                        Err(error) => tracing::warn!(%error, "key reload task failed"),
                        Ok(Ok(_)) => {}
                    }
                }
            }
        }
    }
}
