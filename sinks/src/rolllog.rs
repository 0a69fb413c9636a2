//! The roll log: per table and topic partition, the offset ranges of the last rolls written,
//! kept in the lake at `_chargewatch/sink/<table>/partition-<n>.json`.
//!
//! A roll's entry is written *before* its files, and the consumer offset is committed only
//! after them. A sink that restarts (or takes the partition over) at offset `c` finds the roll
//! that starts at `c` in the log and closes its replay at that roll's last offset, whatever its
//! own size and time bounds say: the replay then writes exactly the files the first attempt
//! wrote (or began to write), under the same names, and no row lands twice.
//!
//! `committed` is the next offset known committed; compaction only merges files below it, so it
//! never merges a file that a replay might write again.

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use lake::{Lake, Table};

/// Entries kept per partition: more than a sink ever writes between two commits.
const KEEP: usize = 64;

/// One roll: offsets `first..=last` of the partition, written as `files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollEntry {
    pub first: i64,
    pub last: i64,
    pub files: Vec<String>,
}

/// The log of one table partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollLog {
    pub rolls: Vec<RollEntry>,
    /// The next offset to consume, as last committed by the sink (0 when none yet).
    pub committed: i64,
}

impl RollLog {
    pub fn path(lake: &Lake, table: Table, partition: i32) -> Path {
        lake.root
            .clone()
            .join("_chargewatch")
            .join("sink")
            .join(table.name())
            .join(format!("partition-{partition}.json"))
    }

    /// The log, or an empty one when the partition was never written.
    pub async fn load(lake: &Lake, table: Table, partition: i32) -> Result<RollLog> {
        let path = Self::path(lake, table, partition);
        match lake.store.get(&path).await {
            Ok(got) => {
                let bytes = got.bytes().await?;
                serde_json::from_slice(&bytes).map_err(|e| Error::RollLog {
                    path: path.to_string(),
                    reason: e.to_string(),
                })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(RollLog::default()),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn save(&self, lake: &Lake, table: Table, partition: i32) -> Result<()> {
        let path = Self::path(lake, table, partition);
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::RollLog {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        lake.store.put(&path, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Where a roll that starts at `offset` must end: the last offset of the logged roll that
    /// holds `offset`, if any.
    pub fn boundary(&self, offset: i64) -> Option<&RollEntry> {
        self.rolls
            .iter()
            .find(|r| r.first <= offset && offset <= r.last)
    }

    /// Records a roll (replacing an entry with the same start: a replay) and keeps the newest.
    pub fn record(&mut self, entry: RollEntry) {
        self.rolls.retain(|r| r.first != entry.first);
        self.rolls.push(entry);
        self.rolls.sort_by_key(|r| r.first);
        let excess = self.rolls.len().saturating_sub(KEEP);
        self.rolls.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(first: i64, last: i64) -> RollEntry {
        RollEntry {
            first,
            last,
            files: Vec::new(),
        }
    }

    #[test]
    fn boundary_and_record() {
        let mut log = RollLog::default();
        log.record(entry(0, 99));
        log.record(entry(100, 149));
        assert_eq!(log.boundary(100).map(|r| r.last), Some(149));
        assert_eq!(log.boundary(150), None);
        log.record(entry(100, 149));
        assert_eq!(log.rolls.len(), 2);
        for i in 0..100 {
            log.record(entry(200 + i * 10, 209 + i * 10));
        }
        assert_eq!(log.rolls.len(), KEEP);
        assert_eq!(log.rolls.last().map(|r| r.last), Some(1199));
    }
}
