//! Values that must never be shown: platform passwords, keys carried in data units, secrets
//! in the config. [`Secret`]: `Debug` prints `<redacted>`; serializing (what `check-config`
//! prints) gives `<redacted>` too, or `""` for an unset secret, so a printed config never
//! carries one. [`Properties`]: string options (librdkafka properties, object-store options)
//! among which some name secrets (`sasl.password`, `aws_secret_access_key`, …); those values
//! are redacted the same way, the others shown.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// A secret value; see the module docs.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(pub T);

impl<T> Secret<T> {
    /// The value itself, for the one place that needs it (a comparison, a cipher).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret<String> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

/// Whether an option of this name holds a secret: its name says password, secret, token,
/// credential, passphrase or private, or it is a key (`…key`, `…key.pem`, `…_key_…`) other than
/// a key id. Errs on the side of hiding: a hidden path costs nothing, a shown password does.
pub fn is_sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let words = [
        "password",
        "secret",
        "token",
        "credential",
        "passphrase",
        "private",
    ];
    if words.iter().any(|w| name.contains(w)) {
        return true;
    }
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|part| part == "key" || (part.ends_with("key") && part != "keyid"))
        && !name.ends_with("_id")
        && !name.ends_with(".id")
}

/// String options of which some are secrets (see [`is_sensitive`]): shown by `Debug` and
/// serialization with those values replaced by `<redacted>`.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Properties(pub BTreeMap<String, String>);

impl Properties {
    /// The options with their secret values replaced, for showing.
    fn shown(&self) -> BTreeMap<&str, &str> {
        self.0
            .iter()
            .map(|(k, v)| {
                let v = if is_sensitive(k) && !v.is_empty() {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect()
    }
}

impl std::ops::Deref for Properties {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Properties {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl From<BTreeMap<String, String>> for Properties {
    fn from(map: BTreeMap<String, String>) -> Self {
        Properties(map)
    }
}

impl<'a> IntoIterator for &'a Properties {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.shown()).finish()
    }
}

impl Serialize for Properties {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.shown().serialize(s)
    }
}

/// Compares two byte strings in time that depends only on their lengths (credentials).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shown() {
        let secret = Secret("hunter2".to_owned());
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"<redacted>\"");
        assert_eq!(
            serde_json::to_string(&Secret(String::new())).unwrap(),
            "\"\""
        );
        let back: Secret<String> = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(back.expose(), "hunter2");
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn secret_options_are_redacted_and_the_others_shown() {
        for name in [
            "sasl.password",
            "ssl.key.password",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
            "aws_secret_access_key",
            "aws_session_token",
            "google_service_account_key",
            "azure_storage_account_key",
            "ssl.keystore.password",
        ] {
            assert!(is_sensitive(name), "{name}");
        }
        for name in [
            "sasl.username",
            "security.protocol",
            "aws_access_key_id",
            "aws_region",
            "aws_endpoint",
            "compression.type",
            "allow_http",
        ] {
            assert!(!is_sensitive(name), "{name}");
        }
        let options = Properties::from(BTreeMap::from([
            ("sasl.username".to_owned(), "ingest".to_owned()),
            ("sasl.password".to_owned(), "hunter2".to_owned()),
        ]));
        let json = serde_json::to_string(&options).unwrap();
        assert_eq!(
            json,
            r#"{"sasl.password":"<redacted>","sasl.username":"ingest"}"#
        );
        assert!(!format!("{options:?}").contains("hunter2"));
        assert_eq!(options["sasl.password"], "hunter2");
        let back: Properties = serde_json::from_str(r#"{"a":"b"}"#).unwrap();
        assert_eq!(back["a"], "b");
    }
}
