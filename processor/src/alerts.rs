//! The alert lifecycle and its CloudEvents.
//!
//! State is kept per (rule, entity): an alert is **raised** the first window a rule returns the
//! entity, **updated** when a later window changes its severity or its evidence materially (a
//! number by more than the configured fraction, any text), and **cleared** once the rule has
//! not returned the entity for the quiet period of event time. Every event is a CloudEvents 1.0
//! JSON document (schema in ARCHITECTURE.md) whose fields all derive from the data, so a replay
//! produces the same bytes:
//!
//! - `id`: XXH3-128 of rule, entity and the window the alert was raised in, plus the window end
//!   for updates; a clear's id does not depend on the window it came in, so a replay that
//!   clears one window earlier or later still repeats the same id.
//! - `time`: the end of the window that produced the event (event time, not wall-clock).

use std::collections::{BTreeMap, HashMap};

use schemas::alert::{self, AlertData, AlertMessage, AlertWindow, event_id};
use serde_json::{Map, Value};

use crate::rules::{Rule, Severity, WindowSpec};

pub use schemas::alert::AlertKind;

/// One row a rule returned for a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// The key columns and their values.
    pub entity: BTreeMap<String, Value>,
    pub vin: String,
    pub severity: Severity,
    pub station_id: Option<String>,
    pub pad_no: Option<u8>,
    pub evidence: Map<String, Value>,
}

impl Firing {
    fn entity_key(&self) -> String {
        serde_json::to_string(&self.entity).unwrap_or_default()
    }
}

/// One alert event, as produced on the alerts topic.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    pub kind: AlertKind,
    pub id: String,
    pub rule: String,
    pub description: String,
    pub severity: Severity,
    pub vin: String,
    pub entity: BTreeMap<String, Value>,
    pub window: WindowSpec,
    pub window_start_us: i64,
    pub window_end_us: i64,
    /// Start of the window the alert was raised in (the lifecycle's identity).
    pub raised_window_start_us: i64,
    pub evidence: Map<String, Value>,
    pub station_id: Option<String>,
    pub pad_no: Option<u8>,
    /// The telemetry partition of the VIN (which processor instance owns the alert).
    pub partition: i32,
}

impl AlertEvent {
    /// The message on the alerts topic ([`schemas::alert`]).
    pub fn to_message(&self) -> AlertMessage {
        AlertMessage {
            specversion: alert::SPEC_VERSION.to_owned(),
            kind: self.kind,
            source: AlertMessage::source_of(&self.rule),
            id: self.id.clone(),
            time_us: self.window_end_us,
            subject: self.vin.clone(),
            datacontenttype: alert::CONTENT_TYPE.to_owned(),
            data: AlertData {
                rule: self.rule.clone(),
                description: self.description.clone(),
                severity: self.severity.as_str().to_owned(),
                entity: self.entity.clone().into_iter().collect(),
                window: AlertWindow {
                    start_us: self.window_start_us,
                    end_us: self.window_end_us,
                    spec: self.window.to_string(),
                },
                raised_window_start_us: self.raised_window_start_us,
                evidence: self.evidence.clone(),
                station_id: self.station_id.clone(),
                pad_no: self.pad_no,
                partition: self.partition,
                note: None,
            },
        }
    }

    /// The CloudEvents 1.0 JSON document.
    pub fn to_cloudevent(&self) -> Value {
        serde_json::to_value(self.to_message()).unwrap_or_default()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_message().to_bytes()
    }

    /// Reads an event back (state restore); `None` for anything that is not one of ours.
    pub fn from_bytes(bytes: &[u8]) -> Option<AlertEvent> {
        Self::from_message(AlertMessage::from_bytes(bytes).ok()?)
    }

    /// `None` where the severity or window is not one a rule can have, and for operators'
    /// acknowledgements and comments (they are not part of a rule's lifecycle).
    pub fn from_message(message: AlertMessage) -> Option<AlertEvent> {
        if !message.kind.is_lifecycle() {
            return None;
        }
        let data = message.data;
        Some(AlertEvent {
            kind: message.kind,
            id: message.id,
            severity: Severity::parse(&data.severity)?,
            window: WindowSpec::parse(&data.window.spec).ok()?,
            rule: data.rule,
            description: data.description,
            vin: message.subject,
            entity: data.entity.into_iter().collect(),
            window_start_us: data.window.start_us,
            window_end_us: data.window.end_us,
            raised_window_start_us: data.raised_window_start_us,
            evidence: data.evidence,
            station_id: data.station_id,
            pad_no: data.pad_no,
            partition: data.partition,
        })
    }
}

/// One open alert.
#[derive(Debug, Clone)]
struct Open {
    raised_start: i64,
    last_fired_end: i64,
    last: AlertEvent,
}

/// The open alerts of every (rule, entity).
#[derive(Debug)]
pub struct Lifecycle {
    open: HashMap<(String, String), Open>,
    quiet_us: i64,
    change: f64,
}

/// Whether evidence moved enough to tell downstream: a number by more than `change` of its
/// previous magnitude, or any other value.
fn material(old: &Map<String, Value>, new: &Map<String, Value>, change: f64) -> bool {
    if old.len() != new.len() {
        return true;
    }
    new.iter().any(|(key, value)| match (old.get(key), value) {
        (Some(Value::Number(a)), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            (a - b).abs() > change * a.abs().max(1e-9)
        }
        (Some(a), b) => a != b,
        (None, _) => true,
    })
}

impl Lifecycle {
    pub fn new(quiet_us: i64, change: f64) -> Self {
        Lifecycle {
            open: HashMap::new(),
            quiet_us,
            change,
        }
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Applies one closed window of `rule`: its firings (already one per entity) give raises
    /// and updates, and the rule's silent open alerts past the quiet period give clears.
    /// Events come out sorted by entity, so a replay orders them the same way.
    pub fn step(
        &mut self,
        rule: &Rule,
        start: i64,
        end: i64,
        mut firings: Vec<Firing>,
        partition_of: impl Fn(&str) -> i32,
    ) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        firings.sort_by_cached_key(Firing::entity_key);
        firings.dedup_by(|a, b| a.entity == b.entity);
        let mut fired = std::collections::HashSet::new();
        for firing in firings {
            let entity_key = firing.entity_key();
            let key = (rule.id.clone(), entity_key.clone());
            let mut event = AlertEvent {
                kind: AlertKind::Raised,
                id: String::new(),
                rule: rule.id.clone(),
                description: rule.description.clone(),
                severity: firing.severity,
                partition: partition_of(&firing.vin),
                vin: firing.vin,
                entity: firing.entity,
                window: rule.window,
                window_start_us: start,
                window_end_us: end,
                raised_window_start_us: start,
                evidence: firing.evidence,
                station_id: firing.station_id,
                pad_no: firing.pad_no,
            };
            match self.open.get_mut(&key) {
                // Restored from the alerts topic with an event of this window or a later one:
                // the previous owner already told downstream; a replay stays silent.
                Some(open) if open.last.window_end_us >= end => {
                    open.last_fired_end = open.last_fired_end.max(end);
                }
                Some(open) => {
                    open.last_fired_end = end;
                    let changed = open.last.severity != event.severity
                        || material(&open.last.evidence, &event.evidence, self.change);
                    if changed {
                        event.kind = AlertKind::Updated;
                        event.raised_window_start_us = open.raised_start;
                        event.id =
                            event_id(&rule.id, &entity_key, open.raised_start, event.kind, end);
                        open.last = event.clone();
                        events.push(event);
                    }
                }
                None => {
                    event.id = event_id(&rule.id, &entity_key, start, event.kind, end);
                    self.open.insert(
                        key.clone(),
                        Open {
                            raised_start: start,
                            last_fired_end: end,
                            last: event.clone(),
                        },
                    );
                    events.push(event);
                }
            }
            fired.insert(key);
        }
        let mut quiet: Vec<(String, String)> = self
            .open
            .iter()
            .filter(|(key, open)| {
                key.0 == rule.id
                    && !fired.contains(*key)
                    && end - open.last_fired_end >= self.quiet_us
            })
            .map(|(key, _)| key.clone())
            .collect();
        quiet.sort();
        for key in quiet {
            let Some(open) = self.open.remove(&key) else {
                continue;
            };
            let mut event = open.last;
            event.kind = AlertKind::Cleared;
            event.id = event_id(&rule.id, &key.1, open.raised_start, AlertKind::Cleared, end);
            event.window = rule.window;
            event.window_start_us = start;
            event.window_end_us = end;
            events.push(event);
        }
        events
    }

    /// Replays an event read back from the alerts topic.
    pub fn restore(&mut self, event: AlertEvent) {
        let entity_key = serde_json::to_string(&event.entity).unwrap_or_default();
        let key = (event.rule.clone(), entity_key);
        match event.kind {
            AlertKind::Cleared => {
                self.open.remove(&key);
            }
            // Operators' notes never reach here (`from_message` skips them).
            AlertKind::Acknowledged | AlertKind::Commented => {}
            AlertKind::Raised | AlertKind::Updated => {
                self.open.insert(
                    key,
                    Open {
                        raised_start: event.raised_window_start_us,
                        last_fired_end: event.window_end_us,
                        last: event,
                    },
                );
            }
        }
    }

    /// Drops the state of rules no longer loaded.
    pub fn retain_rules(&mut self, keep: impl Fn(&str) -> bool) {
        self.open.retain(|(rule, _), _| keep(rule));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_changes() {
        let a: Map<String, Value> = serde_json::from_str(r#"{"t": 100, "s": "x"}"#).unwrap();
        let b: Map<String, Value> = serde_json::from_str(r#"{"t": 105, "s": "x"}"#).unwrap();
        let c: Map<String, Value> = serde_json::from_str(r#"{"t": 120, "s": "x"}"#).unwrap();
        let d: Map<String, Value> = serde_json::from_str(r#"{"t": 100, "s": "y"}"#).unwrap();
        assert!(!material(&a, &b, 0.1));
        assert!(material(&a, &c, 0.1));
        assert!(material(&a, &d, 0.1));
    }
}
