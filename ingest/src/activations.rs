//! Activated terminals' public keys (GB/T 32960.3-2025 activation 0x09), shared by every ingest
//! replica through one compacted topic.
//!
//! Decision: the key of an activated terminal lives on the `terminal_keys` topic
//! (`chargewatch.terminal-keys`, `cleanup.policy=compact`, key = VIN, value
//! [`ActivationRecord`] JSON). A replica that accepts an activation writes the record and waits
//! for the broker before answering 0x0A, then uses the key at once; every replica reads the
//! whole topic at start and follows it, so a terminal activated through one replica verifies on
//! all of them within the consumer's poll interval (about 100 ms). Compaction keeps the newest
//! record per VIN for ever, so a restart or a new replica knows every key. A public key in the
//! key file wins over an activation (the operator's registration is authoritative).
//!
//! Known limit: two replicas that accept activations of one chip for two VINs within that
//! interval both succeed; replicas then keep the VIN whose record came last.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use schemas::message::{ActivationRecord, KafkaSettings};
use schemas::{PublicKey, Vin};
use tokio_util::sync::CancellationToken;

/// One activated terminal.
#[derive(Debug, Clone)]
pub struct Activated {
    pub chip_id: String,
    pub public_key: Arc<PublicKey>,
}

#[derive(Debug, Default)]
struct Registry {
    by_vin: HashMap<Vin, Activated>,
    by_chip: HashMap<String, Vin>,
}

/// Why an activation is refused: the 0x0A information code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The chip is already activated for another VIN (information 0x01).
    ChipActivated,
    /// The VIN is already activated with another chip (information 0x02).
    VinDuplicate,
}

/// The keys of every activated terminal known to this replica.
#[derive(Debug, Default)]
pub struct Activations {
    registry: RwLock<Registry>,
}

impl Activations {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The public key `vin` activated with, if any.
    pub fn public_key(&self, vin: &Vin) -> Option<Arc<PublicKey>> {
        self.read().by_vin.get(vin).map(|a| a.public_key.clone())
    }

    /// How many terminals are activated.
    pub fn len(&self) -> usize {
        self.read().by_vin.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `vin` may activate with `chip_id`: the same pair again is fine (a terminal that
    /// did not get its reply activates again).
    pub fn check(&self, vin: &Vin, chip_id: &str) -> Result<(), Conflict> {
        let registry = self.read();
        if registry
            .by_chip
            .get(chip_id)
            .is_some_and(|owner| owner != vin)
        {
            return Err(Conflict::ChipActivated);
        }
        match registry.by_vin.get(vin) {
            Some(known) if known.chip_id != chip_id => Err(Conflict::VinDuplicate),
            _ => Ok(()),
        }
    }

    /// Applies one record of the topic (or one this replica just wrote). `None` is a tombstone:
    /// the VIN is no longer activated.
    pub fn apply(&self, vin: Vin, record: Option<&ActivationRecord>) {
        let mut registry = self.write();
        if let Some(old) = registry.by_vin.remove(&vin) {
            registry.by_chip.remove(&old.chip_id);
        }
        let Some(record) = record else { return };
        let key = hex::decode(&record.public_key_hex)
            .map_err(|e| e.to_string())
            .and_then(|bytes| match record.algorithm.as_str() {
                "sm2" => PublicKey::from_sm2_point(&bytes),
                _ => PublicKey::from_rsa_der(&bytes),
            });
        match key {
            Ok(key) => {
                registry.by_chip.insert(record.chip_id.clone(), vin);
                registry.by_vin.insert(
                    vin,
                    Activated {
                        chip_id: record.chip_id.clone(),
                        public_key: Arc::new(key),
                    },
                );
            }
            Err(error) => tracing::warn!(%error, %vin, "terminal key record ignored"),
        }
    }

    /// Reads the topic from its beginning until caught up (at most `catch_up`), then follows it
    /// on a thread of its own until `stop` (`stage::compacted`).
    pub fn follow(
        self: &Arc<Self>,
        kafka: &KafkaSettings,
        topic: &str,
        catch_up: Duration,
        stop: CancellationToken,
    ) -> crate::Result<stage::compacted::Follower> {
        let activations = self.clone();
        let follower = stage::compacted::follow(
            kafka,
            topic,
            "terminal keys",
            catch_up,
            stop,
            move |key, value, _| {
                let Some(vin) = std::str::from_utf8(key).ok().and_then(|k| Vin::new(k).ok()) else {
                    return;
                };
                match value.map(serde_json::from_slice::<ActivationRecord>) {
                    None => activations.apply(vin, None),
                    Some(Ok(record)) => activations.apply(vin, Some(&record)),
                    Some(Err(error)) => {
                        tracing::warn!(%error, %vin, "unreadable terminal key record")
                    }
                }
            },
        )?;
        tracing::info!(topic, activated = self.len(), "terminal keys loaded");
        Ok(follower)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(vin: &str, chip: &str, seed: &[u8]) -> ActivationRecord {
        let signer = schemas::sign::Sm2Signer::from_seed(seed);
        ActivationRecord {
            vin: vin.into(),
            chip_id: chip.into(),
            algorithm: "sm2".into(),
            public_key_hex: hex::encode_upper(signer.public_point()),
            activated_at_us: 0,
            received_time_us: 0,
        }
    }

    #[test]
    fn chips_and_vins_conflict_and_tombstones_forget() {
        let a = Activations::default();
        let vin = Vin::new("LWPT2025000000001").unwrap();
        let other = Vin::new("LWPT2025000000002").unwrap();
        assert!(a.public_key(&vin).is_none());
        a.apply(vin, Some(&record("LWPT2025000000001", "CHIP-1", b"1")));
        assert!(a.public_key(&vin).is_some());
        assert_eq!(a.check(&vin, "CHIP-1"), Ok(()));
        assert_eq!(a.check(&other, "CHIP-1"), Err(Conflict::ChipActivated));
        assert_eq!(a.check(&vin, "CHIP-2"), Err(Conflict::VinDuplicate));
        // A newer record for the VIN replaces its chip.
        a.apply(vin, Some(&record("LWPT2025000000001", "CHIP-2", b"2")));
        assert_eq!(a.check(&other, "CHIP-1"), Ok(()));
        a.apply(vin, None);
        assert!(a.is_empty());
    }
}
