//! Consumed messages packed into one buffer, for a columnar decode of many at once.
//!
//! A consumer's messages are borrowed from librdkafka only until the next poll, and decoding
//! one at a time would build a `RecordBatch` per message. So the values are copied end to end
//! into one `Vec<u8>` (one allocation that grows, not one per message) with each message's
//! partition, offset and what its headers said ([`Received`]); [`Packed::messages`] then hands
//! the lot to [`TelemetryDecoder`](super::TelemetryDecoder) in one call. (What a Kafka message's
//! headers say, and the received-time rule, is the consumer's side: `stage::kafka::received`.)

use std::time::Instant;

use super::Message;
use crate::message::MessageMeta;

/// Where a message came from and what its headers said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub partition: i32,
    pub offset: i64,
    /// The `cw-received-us` header, else the broker's timestamp, else 0 (unknown).
    pub received_us: i64,
    pub meta: MessageMeta,
}

/// Messages being gathered, in the order they were consumed.
#[derive(Debug, Default)]
pub struct Packed {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
    received: Vec<Received>,
    since: Option<Instant>,
}

impl Packed {
    /// Adds a value with what is known of it.
    pub fn push(&mut self, value: &[u8], received: Received) {
        self.spans.push((self.bytes.len(), value.len()));
        self.bytes.extend_from_slice(value);
        self.received.push(received);
        self.since.get_or_insert_with(Instant::now);
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The values' bytes, all together.
    pub fn value_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// When the oldest message still here was added (for a wait bound on the batch).
    pub fn since(&self) -> Option<Instant> {
        self.since
    }

    /// The `i`-th message's value.
    pub fn value(&self, i: usize) -> &[u8] {
        let (at, len) = self.spans[i];
        &self.bytes[at..at + len]
    }

    /// The `i`-th message's origin and headers.
    pub fn received(&self, i: usize) -> &Received {
        &self.received[i]
    }

    /// Every message, as the telemetry decoder takes them.
    pub fn messages(&self) -> Vec<Message<'_>> {
        (0..self.len())
            .map(|i| {
                let received = &self.received[i];
                Message {
                    value: self.value(i),
                    received_us: received.received_us,
                    profile: received.meta.profile,
                    signature: received.meta.signature,
                }
            })
            .collect()
    }

    /// Empties the buffer, keeping its memory for the next batch.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        self.received.clear();
        self.since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_back_whole_and_in_order() {
        let mut packed = Packed::default();
        assert!(packed.since().is_none());
        let meta = MessageMeta::default();
        for (offset, value) in [(7, &b"first"[..]), (8, b""), (9, b"third value")] {
            let received = Received {
                partition: 2,
                offset,
                received_us: offset * 10,
                meta,
            };
            packed.push(value, received);
        }
        assert_eq!(packed.len(), 3);
        assert!(packed.since().is_some());
        assert_eq!(packed.value(0), b"first");
        assert_eq!(packed.value(1), b"");
        assert_eq!(packed.value(2), b"third value");
        assert_eq!(packed.received(2).offset, 9);
        let messages = packed.messages();
        assert_eq!(messages[2].value, b"third value");
        assert_eq!(messages[2].received_us, 90);
        packed.clear();
        assert!(packed.is_empty() && packed.since().is_none());
    }
}
