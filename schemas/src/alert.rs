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
}

impl AlertKind {
    /// `raised`, `updated` or `cleared` (metrics labels, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Raised => "raised",
            AlertKind::Updated => "updated",
            AlertKind::Cleared => "cleared",
        }
    }

    /// The CloudEvents `type` (and the `ce_type` header, and the `kind` column of the lake).
    pub fn event_type(self) -> &'static str {
        match self {
            AlertKind::Raised => "chargewatch.alert.raised",
            AlertKind::Updated => "chargewatch.alert.updated",
            AlertKind::Cleared => "chargewatch.alert.cleared",
        }
    }
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
            },
        }
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
