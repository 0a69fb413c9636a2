//! The alert message on `chargewatch.alerts`: a CloudEvents 1.0 JSON document, keyed by VIN,
//! with headers `ce_type` and `ce_id`. The processor builds it, the processor reads it back to
//! restore open alerts, the sink turns it into rows of the `alerts` table, and every fixture
//! makes its alerts with it: one definition for all of them.
//!
//! ```json
//! {"specversion":"1.0","type":"chargewatch.alert.raised",
//!  "source":"/chargewatch/processor/rules/tx_coil_overheat","id":"<32 hex>",
//!  "time":"2026-11-24T01:00:10.000000Z","subject":"<VIN>","datacontenttype":"application/json",
//!  "data":{"rule":"tx_coil_overheat","description":"…","severity":"critical",
//!          "entity":{"vin":"…"},
//!          "window":{"start":"…","end":"…","spec":"10s"},
//!          "raised_window_start":"…","evidence":{"max_c":91.5},
//!          "station_id":"ST-0001","pad_no":1,"partition":3}}
//! ```
//!
//! Times are UTC with microseconds (`YYYY-MM-DDTHH:MM:SS.ffffffZ`); `time` is the end of the
//! window that produced the event (event time). `partition` is the VIN's telemetry partition.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The CloudEvents version of every alert.
pub const SPEC_VERSION: &str = "1.0";
/// What `datacontenttype` says.
pub const CONTENT_TYPE: &str = "application/json";

/// What happened to an alert: the CloudEvents `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlertKind {
    #[serde(rename = "chargewatch.alert.raised")]
    Raised,
    #[serde(rename = "chargewatch.alert.updated")]
    Updated,
    #[serde(rename = "chargewatch.alert.cleared")]
    Cleared,
    /// An operator acknowledged the alert (the console); `data.note` says who and why.
    #[serde(rename = "chargewatch.alert.acknowledged")]
    Acknowledged,
    /// An operator commented on the alert without acknowledging it; `data.note` holds it.
    #[serde(rename = "chargewatch.alert.commented")]
    Commented,
}

impl AlertKind {
    /// `raised`, `updated` or `cleared` (metrics labels, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Raised => "raised",
            AlertKind::Updated => "updated",
            AlertKind::Cleared => "cleared",
            AlertKind::Acknowledged => "acknowledged",
            AlertKind::Commented => "commented",
        }
    }

    /// The CloudEvents `type` (and the `ce_type` header, and the `kind` column of the lake).
    pub fn event_type(self) -> &'static str {
        match self {
            AlertKind::Raised => "chargewatch.alert.raised",
            AlertKind::Updated => "chargewatch.alert.updated",
            AlertKind::Cleared => "chargewatch.alert.cleared",
            AlertKind::Acknowledged => "chargewatch.alert.acknowledged",
            AlertKind::Commented => "chargewatch.alert.commented",
        }
    }

    /// Whether the processor's rules made it (raised, updated, cleared), rather than an
    /// operator (acknowledged, commented): only those drive an alert's lifecycle.
    pub fn is_lifecycle(self) -> bool {
        matches!(
            self,
            AlertKind::Raised | AlertKind::Updated | AlertKind::Cleared
        )
    }
}

/// An event's id: XXH3-128 of rule, entity key (the entity as JSON, keys sorted), the raise
/// window's start and the kind, plus the window end for updates; as 32 hex digits. The
/// processor names every lifecycle event so; replays repeat the ids.
pub fn event_id(
    rule: &str,
    entity_key: &str,
    raised_start: i64,
    kind: AlertKind,
    end: i64,
) -> String {
    let end = if kind == AlertKind::Updated { end } else { 0 };
    let text = format!(
        "{rule}\u{0}{entity_key}\u{0}{raised_start}\u{0}{}\u{0}{end}",
        kind.as_str()
    );
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()))
}

/// One alert event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertMessage {
    pub specversion: String,
    #[serde(rename = "type")]
    pub kind: AlertKind,
    /// `/chargewatch/processor/rules/<rule>`.
    pub source: String,
    pub id: String,
    #[serde(rename = "time", with = "utc")]
    pub time_us: i64,
    /// The VIN.
    pub subject: String,
    #[serde(default = "content_type")]
    pub datacontenttype: String,
    pub data: AlertData,
}

/// The alert itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertData {
    pub rule: String,
    #[serde(default)]
    pub description: String,
    /// `info`, `warning`, `major` or `critical`.
    pub severity: String,
    /// The rule's key columns and their values (the alert's identity with the rule).
    pub entity: Map<String, Value>,
    pub window: AlertWindow,
    /// Start of the window the alert was raised in.
    #[serde(rename = "raised_window_start", with = "utc")]
    pub raised_window_start_us: i64,
    /// The rule's other columns.
    pub evidence: Map<String, Value>,
    pub station_id: Option<String>,
    pub pad_no: Option<u8>,
    pub partition: i32,
    /// An operator's acknowledgement or comment (only on `acknowledged` and `commented`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<AlertNote>,
}

/// Who acknowledged or commented on an alert, and what they wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertNote {
    /// The alert's lifecycle id ([`AlertMessage::alert_id`]): the id of its raised event.
    pub alert_id: String,
    /// Who: the name the operator gave the console.
    pub by: String,
    #[serde(default)]
    pub comment: String,
}

/// The window that produced the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertWindow {
    #[serde(rename = "start", with = "utc")]
    pub start_us: i64,
    #[serde(rename = "end", with = "utc")]
    pub end_us: i64,
    /// The rule's window, as written in its file (`10s`, `5m/1m`).
    pub spec: String,
}

fn content_type() -> String {
    CONTENT_TYPE.to_owned()
}

impl AlertMessage {
    /// The source of a rule's alerts.
    pub fn source_of(rule: &str) -> String {
        format!("/chargewatch/processor/rules/{rule}")
    }

    /// The id of the alert this event belongs to: its raised event's id, the same for every
    /// event of one lifecycle (an acknowledgement names it in its note).
    pub fn alert_id(&self) -> String {
        if let Some(note) = &self.data.note {
            return note.alert_id.clone();
        }
        let entity_key = serde_json::to_string(&self.data.entity).unwrap_or_default();
        event_id(
            &self.data.rule,
            &entity_key,
            self.data.raised_window_start_us,
            AlertKind::Raised,
            0,
        )
    }

    /// An operator's acknowledgement (`Acknowledged`) or comment (`Commented`) of the alert
    /// this event belongs to, at `now_us`: the alert's rule, entity, windows, evidence and
    /// partition, its lifecycle id and the note; source `/chargewatch/console`.
    pub fn note(&self, kind: AlertKind, by: &str, comment: &str, now_us: i64) -> AlertMessage {
        let alert_id = self.alert_id();
        let text = format!(
            "{alert_id}\u{0}{}\u{0}{by}\u{0}{comment}\u{0}{now_us}",
            kind.as_str()
        );
        let mut data = self.data.clone();
        data.note = Some(AlertNote {
            alert_id,
            by: by.to_owned(),
            comment: comment.to_owned(),
        });
        AlertMessage {
            specversion: SPEC_VERSION.to_owned(),
            kind,
            source: "/chargewatch/console".to_owned(),
            id: format!("{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes())),
            time_us: now_us,
            subject: self.subject.clone(),
            datacontenttype: CONTENT_TYPE.to_owned(),
            data,
        }
    }

    /// The document's bytes, as produced on the alerts topic.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a document, saying what is wrong with one that is not an alert.
    pub fn from_bytes(bytes: &[u8]) -> Result<AlertMessage, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not an alert message: {e}"))
    }

    /// The `(name, value)` headers it is produced with.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ce_type", self.kind.event_type().to_owned()),
            ("ce_id", self.id.clone()),
        ]
    }
}

/// UTC microseconds as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
mod utc {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(us: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&crate::time::format_utc_micros(*us))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        crate::time::parse_utc_micros(&text).ok_or_else(|| {
            D::Error::custom(format!(
                "{text:?} is not a UTC time YYYY-MM-DDTHH:MM:SS.ffffffZ"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AlertMessage {
        let mut entity = Map::new();
        entity.insert("vin".into(), "LSIM0000000000001".into());
        let mut evidence = Map::new();
        evidence.insert("max_c".into(), 91.5.into());
        AlertMessage {
            specversion: SPEC_VERSION.into(),
            kind: AlertKind::Raised,
            source: AlertMessage::source_of("tx_coil_overheat"),
            id: "a1".into(),
            time_us: 1_795_482_010_000_000,
            subject: "LSIM0000000000001".into(),
            datacontenttype: CONTENT_TYPE.into(),
            data: AlertData {
                rule: "tx_coil_overheat".into(),
                description: String::new(),
                severity: "critical".into(),
                entity,
                window: AlertWindow {
                    start_us: 1_795_482_000_000_000,
                    end_us: 1_795_482_010_000_000,
                    spec: "10s".into(),
                },
                raised_window_start_us: 1_795_482_000_000_000,
                evidence,
                station_id: Some("ST01".into()),
                pad_no: Some(2),
                partition: 0,
                note: None,
            },
        }
    }

    #[test]
    fn every_event_of_a_lifecycle_names_its_raised_event() {
        let raised = sample();
        let entity_key = serde_json::to_string(&raised.data.entity).unwrap();
        let expected = event_id(
            "tx_coil_overheat",
            &entity_key,
            1_795_482_000_000_000,
            AlertKind::Raised,
            0,
        );
        assert_eq!(raised.alert_id(), expected);
        let mut cleared = raised.clone();
        cleared.kind = AlertKind::Cleared;
        cleared.data.window.end_us += 30_000_000;
        assert_eq!(cleared.alert_id(), expected);
        let acknowledged = cleared.note(AlertKind::Acknowledged, "ops", "crew sent", 5);
        assert_eq!(acknowledged.alert_id(), expected);
        assert_eq!(acknowledged.data.note.as_ref().unwrap().by, "ops");
        assert_ne!(
            acknowledged.id,
            cleared
                .note(AlertKind::Acknowledged, "ops", "crew sent", 6)
                .id
        );
        let doc: Value = serde_json::from_slice(&acknowledged.to_bytes()).unwrap();
        assert_eq!(doc["type"], "chargewatch.alert.acknowledged");
        assert_eq!(doc["data"]["note"]["by"], "ops");
        assert_eq!(
            AlertMessage::from_bytes(&acknowledged.to_bytes()).unwrap(),
            acknowledged
        );
        assert!(!AlertKind::Acknowledged.is_lifecycle() && AlertKind::Cleared.is_lifecycle());
        // A lifecycle event has no note on the wire.
        let doc: Value = serde_json::from_slice(&raised.to_bytes()).unwrap();
        assert!(doc["data"].get("note").is_none());
    }

    #[test]
    fn the_document_reads_back_and_names_its_fields_as_cloudevents_does() {
        let alert = sample();
        let bytes = alert.to_bytes();
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["type"], "chargewatch.alert.raised");
        assert_eq!(doc["specversion"], "1.0");
        assert_eq!(doc["time"], "2026-11-24T01:00:10.000000Z");
        assert_eq!(
            doc["data"]["window"]["start"],
            "2026-11-24T01:00:00.000000Z"
        );
        assert_eq!(AlertMessage::from_bytes(&bytes).unwrap(), alert);
    }

    #[test]
    fn what_is_not_an_alert_says_why() {
        let error = AlertMessage::from_bytes(br#"{"type": 1}"#).unwrap_err();
        assert!(error.starts_with("not an alert message"), "{error}");
        let mut doc: Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        doc["type"] = "com.chargewatch.alert.raised".into();
        let error = AlertMessage::from_bytes(doc.to_string().as_bytes()).unwrap_err();
        assert!(error.contains("unknown variant"), "{error}");
        doc["type"] = "chargewatch.alert.raised".into();
        doc["time"] = "yesterday".into();
        let error = AlertMessage::from_bytes(doc.to_string().as_bytes()).unwrap_err();
        assert!(error.contains("not a UTC time"), "{error}");
    }
}
