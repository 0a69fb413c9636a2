//! The lake's four tables, one per topic, and how a topic's messages become a `RecordBatch` of
//! its table.
//!
//! Telemetry goes through `schemas::arrow::TelemetryDecoder` (column at a time); alerts
//! (CloudEvents JSON), events (`EventMessage` JSON) and dead letters (raw value + headers) are
//! small and built row by row. A message that does not fit its table is refused with its offset
//! and reason; the caller counts and logs it.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder, UInt8Builder,
    UInt16Builder,
};
use schemas::alert::AlertMessage;
use schemas::arrow::TelemetryDecoder;
use schemas::arrow::{Packed, Received};
use schemas::message::{DeadLetter, EventMessage, MessageMeta};
use serde_json::Value;

use crate::error::Result;
pub use lake::Table;

/// Messages of one topic partition waiting to be decoded ([`schemas::arrow::Packed`]), and the dead
/// letters' header labels.
#[derive(Debug)]
pub struct Pending {
    table: Table,
    packed: Packed,
    dead: Vec<Option<DeadLetter>>,
}

/// What decoding the pending messages gives.
#[derive(Debug)]
pub struct Decoded {
    /// One row per accepted message, in offset order.
    pub batch: RecordBatch,
    /// The offset of each row.
    pub offsets: Vec<i64>,
    /// Offset and reason of each refused message.
    pub refused: Vec<(i64, String)>,
}

impl Pending {
    pub fn new(table: Table) -> Self {
        Pending {
            table,
            packed: Packed::default(),
            dead: Vec::new(),
        }
    }

    /// Adds one message; `meta` is what its headers say, `dead` a dead letter's header values.
    pub fn push(
        &mut self,
        offset: i64,
        value: &[u8],
        received_us: i64,
        meta: MessageMeta,
        dead: Option<DeadLetter>,
    ) {
        let received = Received {
            partition: 0,
            offset,
            received_us,
            meta,
        };
        self.packed.push(value, received);
        if self.table == Table::DeadLetters {
            self.dead.push(dead);
        }
    }

    pub fn len(&self) -> usize {
        self.packed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packed.is_empty()
    }

    fn offset(&self, i: usize) -> i64 {
        self.packed.received(i).offset
    }

    fn received_us(&self, i: usize) -> i64 {
        self.packed.received(i).received_us
    }

    /// Decodes everything pending into one batch of the table's schema and empties the buffer.
    pub fn decode(&mut self, telemetry: &mut TelemetryDecoder) -> Result<Decoded> {
        let decoded = match self.table {
            Table::Telemetry => self.decode_telemetry(telemetry),
            Table::Alerts => self.decode_rows(alert_row, alert_columns),
            Table::Events => self.decode_rows(event_row, event_columns),
            Table::DeadLetters => self.decode_deadletters(),
        };
        self.packed.clear();
        self.dead.clear();
        decoded
    }

    fn decode_telemetry(&self, decoder: &mut TelemetryDecoder) -> Result<Decoded> {
        let out = decoder.decode(&self.packed.messages())?;
        let mut refused = Vec::with_capacity(out.rejected.len());
        let mut offsets = Vec::with_capacity(out.batch.num_rows());
        let mut next_refused = out.rejected.iter().peekable();
        for i in 0..self.len() {
            match next_refused.peek() {
                Some((at, error)) if *at == i => {
                    refused.push((self.offset(i), error.to_string()));
                    next_refused.next();
                }
                _ => offsets.push(self.offset(i)),
            }
        }
        Ok(Decoded {
            batch: out.batch,
            offsets,
            refused,
        })
    }

    /// Row-by-row tables: `row` parses one message into the builders, `finish` makes columns.
    fn decode_rows<B: Default>(
        &self,
        row: fn(&mut B, &[u8], i64) -> std::result::Result<(), String>,
        finish: fn(B) -> Vec<ArrayRef>,
    ) -> Result<Decoded> {
        let mut builders = B::default();
        let mut offsets = Vec::with_capacity(self.len());
        let mut refused = Vec::new();
        for i in 0..self.len() {
            match row(&mut builders, self.packed.value(i), self.received_us(i)) {
                Ok(()) => offsets.push(self.offset(i)),
                Err(reason) => refused.push((self.offset(i), reason)),
            }
        }
        let batch = RecordBatch::try_new(self.table.record_schema(), finish(builders))?;
        Ok(Decoded {
            batch,
            offsets,
            refused,
        })
    }

    fn decode_deadletters(&self) -> Result<Decoded> {
        let n = self.len();
        let mut received = utc_builder(n);
        let (mut reason, mut error, mut source, mut vin) = (
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
        );
        let mut command = UInt8Builder::with_capacity(n);
        let mut raw = BinaryBuilder::with_capacity(n, self.packed.value_bytes());
        for i in 0..n {
            match &self.dead[i] {
                Some(dead) => {
                    let at = if dead.received_us > 0 {
                        dead.received_us
                    } else {
                        self.received_us(i)
                    };
                    received.append_value(at);
                    reason.append_value(dead.reason.as_str());
                    error.append_value(&dead.error);
                    source.append_option(Some(&dead.source).filter(|s| !s.is_empty()));
                    vin.append_option(dead.vin.as_deref());
                    command.append_option(dead.command);
                }
                // Kept, not refused: a dead letter is evidence even without its labels.
                None => {
                    received.append_value(self.received_us(i));
                    reason.append_value("unlabelled");
                    error.append_value("dead letter without a cw-reason header");
                    source.append_null();
                    vin.append_null();
                    command.append_null();
                }
            }
            raw.append_value(self.packed.value(i));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(received.finish()),
            Arc::new(reason.finish()),
            Arc::new(error.finish()),
            Arc::new(source.finish()),
            Arc::new(vin.finish()),
            Arc::new(command.finish()),
            Arc::new(raw.finish()),
        ];
        let batch = RecordBatch::try_new(Table::DeadLetters.record_schema(), columns)?;
        Ok(Decoded {
            batch,
            offsets: (0..n).map(|i| self.offset(i)).collect(),
            refused: Vec::new(),
        })
    }
}

fn utc_builder(capacity: usize) -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC")
}

struct AlertBuilders {
    id: StringBuilder,
    kind: StringBuilder,
    time: TimestampMicrosecondBuilder,
    vin: StringBuilder,
    rule: StringBuilder,
    severity: StringBuilder,
    window_start: TimestampMicrosecondBuilder,
    window_end: TimestampMicrosecondBuilder,
    station_id: StringBuilder,
    pad_no: UInt8Builder,
    evidence: StringBuilder,
    entity: StringBuilder,
    raised_window_start: TimestampMicrosecondBuilder,
    operator: StringBuilder,
    comment: StringBuilder,
}

impl Default for AlertBuilders {
    fn default() -> Self {
        AlertBuilders {
            id: StringBuilder::new(),
            kind: StringBuilder::new(),
            time: utc_builder(0),
            vin: StringBuilder::new(),
            rule: StringBuilder::new(),
            severity: StringBuilder::new(),
            window_start: utc_builder(0),
            window_end: utc_builder(0),
            station_id: StringBuilder::new(),
            pad_no: UInt8Builder::new(),
            evidence: StringBuilder::new(),
            entity: StringBuilder::new(),
            raised_window_start: utc_builder(0),
            operator: StringBuilder::new(),
            comment: StringBuilder::new(),
        }
    }
}

/// One alert ([`schemas::alert`]). It is parsed whole before the first append, so a refused
/// message leaves the builders as they were.
fn alert_row(
    b: &mut AlertBuilders,
    value: &[u8],
    _received_us: i64,
) -> std::result::Result<(), String> {
    let alert = AlertMessage::from_bytes(value)?;
    let data = alert.data;
    let json = |map: &serde_json::Map<String, Value>| Value::Object(map.clone()).to_string();
    b.id.append_value(&alert.id);
    b.kind.append_value(alert.kind.event_type());
    b.time.append_value(alert.time_us);
    b.vin.append_value(&alert.subject);
    b.rule.append_value(&data.rule);
    b.severity.append_value(&data.severity);
    b.window_start.append_value(data.window.start_us);
    b.window_end.append_value(data.window.end_us);
    b.station_id.append_option(data.station_id.as_deref());
    b.pad_no.append_option(data.pad_no);
    b.evidence.append_value(json(&data.evidence));
    b.entity.append_value(json(&data.entity));
    b.raised_window_start
        .append_value(data.raised_window_start_us);
    b.operator
        .append_option(data.note.as_ref().map(|n| n.by.as_str()));
    b.comment
        .append_option(data.note.as_ref().map(|n| n.comment.as_str()));
    Ok(())
}

fn alert_columns(mut b: AlertBuilders) -> Vec<ArrayRef> {
    vec![
        Arc::new(b.id.finish()),
        Arc::new(b.kind.finish()),
        Arc::new(b.time.finish()),
        Arc::new(b.vin.finish()),
        Arc::new(b.rule.finish()),
        Arc::new(b.severity.finish()),
        Arc::new(b.window_start.finish()),
        Arc::new(b.window_end.finish()),
        Arc::new(b.station_id.finish()),
        Arc::new(b.pad_no.finish()),
        Arc::new(b.evidence.finish()),
        Arc::new(b.entity.finish()),
        Arc::new(b.raised_window_start.finish()),
        Arc::new(b.operator.finish()),
        Arc::new(b.comment.finish()),
    ]
}

struct EventBuilders {
    time: TimestampMicrosecondBuilder,
    received: TimestampMicrosecondBuilder,
    kind: StringBuilder,
    vin: StringBuilder,
    peer: StringBuilder,
    login_seq: UInt16Builder,
    iccid: StringBuilder,
    detail: StringBuilder,
    edition: UInt16Builder,
}

impl Default for EventBuilders {
    fn default() -> Self {
        EventBuilders {
            time: utc_builder(0),
            received: utc_builder(0),
            kind: StringBuilder::new(),
            vin: StringBuilder::new(),
            peer: StringBuilder::new(),
            login_seq: UInt16Builder::new(),
            iccid: StringBuilder::new(),
            detail: StringBuilder::new(),
            edition: UInt16Builder::new(),
        }
    }
}

fn event_row(
    b: &mut EventBuilders,
    value: &[u8],
    _received_us: i64,
) -> std::result::Result<(), String> {
    let event: EventMessage =
        serde_json::from_slice(value).map_err(|e| format!("event is not an EventMessage: {e}"))?;
    b.time.append_value(event.time_us);
    b.received.append_value(event.received_time_us);
    b.kind.append_value(&event.kind);
    b.vin.append_option(event.vin.as_deref());
    b.peer
        .append_option(Some(event.peer.as_str()).filter(|p| !p.is_empty()));
    b.login_seq.append_option(event.login_seq);
    b.iccid.append_option(event.iccid.as_deref());
    b.detail.append_option(event.detail.as_deref());
    b.edition.append_option(event.edition);
    Ok(())
}

fn event_columns(mut b: EventBuilders) -> Vec<ArrayRef> {
    vec![
        Arc::new(b.time.finish()),
        Arc::new(b.received.finish()),
        Arc::new(b.kind.finish()),
        Arc::new(b.vin.finish()),
        Arc::new(b.peer.finish()),
        Arc::new(b.login_seq.finish()),
        Arc::new(b.iccid.finish()),
        Arc::new(b.detail.finish()),
        Arc::new(b.edition.finish()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;
    use lake::table::row_times;

    #[test]
    fn alerts_and_events_decode_and_refuse_whole_messages() {
        let mut evidence = serde_json::Map::new();
        evidence.insert("max_c".into(), 91.5.into());
        let alert = schemas::testing::alert(
            schemas::alert::AlertKind::Raised,
            "a1",
            "tx_coil_overheat",
            "LSIM0000000000001",
            schemas::time::parse_utc_micros("2026-11-24T01:00:10.000000Z").unwrap(),
            evidence,
        );
        let mut pending = Pending::new(Table::Alerts);
        pending.push(7, &alert.to_bytes(), 0, Default::default(), None);
        pending.push(8, b"{\"type\": 1}", 0, Default::default(), None);
        let out = pending.decode(&mut TelemetryDecoder::new()).unwrap();
        assert_eq!(out.offsets, vec![7]);
        assert_eq!(out.refused.len(), 1);
        assert_eq!(out.refused[0].0, 8);
        assert_eq!(out.batch.num_rows(), 1);
        let times = row_times(Table::Alerts, &out.batch).unwrap();
        assert_eq!(
            schemas::time::format_utc_micros(times[0]),
            "2026-11-24T01:00:10.000000Z"
        );
        let evidence = out
            .batch
            .column_by_name("evidence")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(evidence.value(0), r#"{"max_c":91.5}"#);
        assert!(pending.is_empty());

        let mut events = Pending::new(Table::Events);
        events.push(
            1,
            br#"{"kind":"login","time_us":5,"received_time_us":6,"peer":"1.2.3.4:5"}"#,
            0,
            Default::default(),
            None,
        );
        events.push(2, b"not json", 0, Default::default(), None);
        let out = events.decode(&mut TelemetryDecoder::new()).unwrap();
        assert_eq!((out.offsets, out.refused.len()), (vec![1], 1));
    }

    #[test]
    fn dead_letters_without_labels_are_kept() {
        let mut pending = Pending::new(Table::DeadLetters);
        pending.push(3, b"\x23\x23junk", 42, Default::default(), None);
        let out = pending.decode(&mut TelemetryDecoder::new()).unwrap();
        assert_eq!(out.batch.num_rows(), 1);
        let reason = out
            .batch
            .column_by_name("reason")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(reason.value(0), "unlabelled");
        assert_eq!(row_times(Table::DeadLetters, &out.batch).unwrap(), vec![42]);
    }
}
