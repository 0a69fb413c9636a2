//! The `[lake]` section of the config file: where the lake is, for the sink that writes it and
//! for everything that reads it (query, compact).

use serde::{Deserialize, Serialize};

/// `[lake]` (`CHARGEWATCH__LAKE__…` in the environment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LakeConfig {
    /// Where the lake is: a directory (`./data/lake`), `file:///…`, `s3://bucket/prefix`,
    /// `gs://…`, `az://…`, `memory://`.
    pub location: String,
    /// Object store options, by object_store's names: `aws_endpoint`, `aws_region`,
    /// `aws_access_key_id`, `aws_secret_access_key`, `aws_allow_http`, `google_…`, `azure_…`.
    /// For S3 the `AWS_*` environment variables are read first; these override them. Secret
    /// ones (`aws_secret_access_key`, …) are never shown.
    pub storage: schemas::secret::Properties,
}

impl Default for LakeConfig {
    fn default() -> Self {
        LakeConfig {
            location: "./data/lake".into(),
            storage: Default::default(),
        }
    }
}

impl LakeConfig {
    /// The lake at `location`, with no storage options.
    pub fn at(location: impl Into<String>) -> Self {
        LakeConfig {
            location: location.into(),
            storage: Default::default(),
        }
    }
}
