//! The platform-login serial (GB/T 32960.3 platform login 0x05): 1 at the first login of each
//! day (the Beijing date, UTC+8), +1 per login, back to 1 after 65531; never the same twice in
//! a day, across restarts and replicas.
//!
//! Decision: the serial lives on the compacted forward-state topic, key `serial/<upstream>`,
//! value [`ForwardSerial`] JSON. Every forwarder follows the topic
//! ([`stage::compacted`]); to take a serial it reads the topic to its end, writes the next
//! serial, waits for the broker, then reads up to its own record: if another replica's record
//! for the same upstream came in between, the other took that serial first and this one tries
//! again with the next (the partition's order decides, like a compare-and-set). A login sent
//! is one serial used, whether or not the upstream accepted it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::TerminalTime;
use schemas::message::{ForwardSerial, KafkaSettings};
use stage::compacted::Follower;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// The largest serial; the next is 1.
pub const MAX_SERIAL: u16 = 65531;

/// The Beijing (UTC+8) date of a UTC time, `YYYY-MM-DD`.
pub fn beijing_date(utc_us: i64) -> String {
    let [yy, mm, dd, ..] = TerminalTime::from_utc_micros(utc_us).bytes();
    format!("20{yy:02}-{mm:02}-{dd:02}")
}

/// The serial after `last` on `date`.
pub fn next_serial(last: Option<&ForwardSerial>, date: &str) -> u16 {
    match last {
        Some(last) if last.date == date && last.serial < MAX_SERIAL => last.serial + 1,
        _ => 1,
    }
}

/// The records seen per key, newest last (a few are enough to see a concurrent writer).
type Seen = Arc<Mutex<HashMap<String, VecDeque<(i64, ForwardSerial)>>>>;

/// Serials of every upstream, on the forward-state topic.
pub struct Serials {
    topic: String,
    seen: Seen,
    follower: Follower,
    producer: FutureProducer,
    owner: String,
}

impl std::fmt::Debug for Serials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serials")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

fn key(upstream: &str) -> String {
    format!("serial/{upstream}")
}

impl Serials {
    /// Reads the topic to its end and follows it until `stop` (blocking until caught up).
    pub fn start(kafka: &KafkaSettings, topic: &str, stop: CancellationToken) -> Result<Self> {
        let seen = Seen::default();
        let applied = seen.clone();
        let follower = stage::compacted::follow(
            kafka,
            topic,
            "login serials",
            Duration::from_secs(10),
            stop,
            move |key, value, offset| {
                let (Ok(key), Some(value)) = (std::str::from_utf8(key), value) else {
                    return;
                };
                let Ok(record) = serde_json::from_slice::<ForwardSerial>(value) else {
                    tracing::warn!(key, "unreadable forward-state record");
                    return;
                };
                let mut seen = applied.lock().unwrap_or_else(|p| p.into_inner());
                let records = seen.entry(key.to_owned()).or_default();
                records.push_back((offset, record));
                if records.len() > 16 {
                    records.pop_front();
                }
            },
        )?;
        let producer = stage::kafka::producer_config(kafka, Duration::from_secs(10), &[])
            .create()
            .map_err(|source| stage::KafkaFailure {
                op: "creating the login-serial producer",
                source,
            })?;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        Ok(Serials {
            topic: topic.to_owned(),
            seen,
            follower,
            producer,
            owner: format!("{host}/{}", std::process::id()),
        })
    }

    fn newest(&self, upstream: &str) -> Option<(i64, ForwardSerial)> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&key(upstream)).and_then(|r| r.back().cloned())
    }

    /// The last serial taken for `upstream`, if any.
    pub fn last(&self, upstream: &str) -> Option<ForwardSerial> {
        self.newest(upstream).map(|(_, record)| record)
    }

    /// Takes the next serial for a login to `upstream` at `now_us`.
    pub async fn take(&self, upstream: &str, now_us: i64) -> Result<u16> {
        let date = beijing_date(now_us);
        for _ in 0..16 {
            if !self.follower.sync(Duration::from_secs(10)).await {
                return Err(Error::Config(format!(
                    "the forward-state topic {} could not be read to its end",
                    self.topic
                )));
            }
            let before = self.newest(upstream);
            let serial = next_serial(before.as_ref().map(|(_, r)| r), &date);
            let record = ForwardSerial {
                date: date.clone(),
                serial,
                owner: self.owner.clone(),
            };
            let value = serde_json::to_vec(&record).unwrap_or_default();
            let key = key(upstream);
            let delivered = self
                .producer
                .send(
                    FutureRecord::to(&self.topic).key(&key).payload(&value),
                    Duration::from_secs(10),
                )
                .await;
            let (partition, offset) = match delivered {
                Ok(delivery) => (delivery.partition, delivery.offset),
                Err((source, _)) => {
                    return Err(stage::KafkaFailure {
                        op: "storing the login serial",
                        source,
                    }
                    .into());
                }
            };
            if !self
                .follower
                .wait_for(partition, offset, Duration::from_secs(10))
                .await
            {
                return Err(Error::Config(format!(
                    "the login serial written to {} did not come back",
                    self.topic
                )));
            }
            let since = before.map_or(-1, |(at, _)| at);
            let raced = {
                let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                seen.get(&key)
                    .is_some_and(|r| r.iter().any(|(at, _)| *at > since && *at < offset))
            };
            if !raced {
                return Ok(serial);
            }
            tracing::info!(
                upstream,
                serial,
                "another forwarder took this serial; taking the next"
            );
        }
        Err(Error::Config(format!(
            "no login serial for {upstream}: 16 attempts raced with other forwarders"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(date: &str, serial: u16) -> ForwardSerial {
        ForwardSerial {
            date: date.into(),
            serial,
            owner: "test".into(),
        }
    }

    #[test]
    fn serials_count_per_beijing_day_and_wrap_above_65531() {
        assert_eq!(next_serial(None, "2026-12-02"), 1);
        assert_eq!(next_serial(Some(&at("2026-12-02", 7)), "2026-12-02"), 8);
        assert_eq!(next_serial(Some(&at("2026-12-01", 7)), "2026-12-02"), 1);
        assert_eq!(
            next_serial(Some(&at("2026-12-02", 65530)), "2026-12-02"),
            65531
        );
        assert_eq!(next_serial(Some(&at("2026-12-02", 65531)), "2026-12-02"), 1);
    }

    #[test]
    fn the_day_turns_at_midnight_in_beijing_not_in_utc() {
        // 2026-12-01 15:59:59 UTC is 23:59:59 in Beijing; a second later it is the 2nd there.
        let before = schemas::time::parse_utc_micros("2026-12-01T15:59:59.000000Z").unwrap();
        assert_eq!(beijing_date(before), "2026-12-01");
        assert_eq!(beijing_date(before + 1_000_000), "2026-12-02");
    }
}
