//! The config file, layered: built-in defaults, then the TOML file (`--config`), then
//! `CHARGEWATCH__SECTION__KEY` environment variables, then command-line flags. Parsed once, at
//! start, into typed values; unknown keys are errors.

use std::path::Path;

use anyhow::{Context, Result};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use forward::ForwardConfig;
use ingest::IngestConfig;
use lake::LakeConfig;
use processor::ProcessorConfig;
use query::QueryConfig;
use schemas::message::{KafkaSettings, Topics};
use serde::{Deserialize, Serialize};
use sinks::SinkConfig;

/// Every section of the config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// How to reach Kafka (every role).
    pub kafka: KafkaSettings,
    /// Topic names (every role).
    pub topics: Topics,
    /// The ingest role.
    pub ingest: IngestConfig,
    /// The processor role.
    pub processor: ProcessorConfig,
    /// Where the lake is, for the sink that writes it and `compact`, `query` and `serve-query`
    /// that read it.
    pub lake: LakeConfig,
    /// The sink role.
    pub sink: SinkConfig,
    /// The query role.
    pub query: QueryConfig,
    /// The relay to public platforms.
    pub forward: ForwardConfig,
}

/// Loads the layers; `flags` are `(dotted.key, value)` pairs from the command line.
pub fn load(
    file: Option<&Path>,
    flags: Vec<(&'static str, figment::value::Value)>,
) -> Result<Config> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(file) = file {
        anyhow::ensure!(file.exists(), "config file {} not found", file.display());
        figment = figment.merge(Toml::file(file));
    }
    figment = figment.merge(Env::prefixed("CHARGEWATCH__").split("__"));
    for (key, value) in flags {
        figment = figment.merge(Serialized::default(key, value));
    }
    figment.extract().context("invalid configuration")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_layers() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/chargewatch.example.toml");
        let config = load(Some(&example), Vec::new()).unwrap();
        assert_eq!(config.topics.telemetry, "chargewatch.telemetry");
        assert_eq!(config.ingest.listen.port(), 32960);
        let flagged = load(
            Some(&example),
            vec![("kafka.brokers", "10.0.0.1:9092".into())],
        )
        .unwrap();
        assert_eq!(flagged.kafka.brokers, "10.0.0.1:9092");
        assert_eq!(flagged.ingest, config.ingest);
        assert_eq!(config.processor.allowed_lateness.as_secs(), 5);
        let overrides = config.processor.overrides();
        assert_eq!(overrides["comm_loss.silence_s"], "30");
        assert_eq!(overrides["inverter_freq_out_of_band.min_khz"], "81.38");
        assert_eq!(config.lake.location, "./data/lake");
        assert_eq!(config.sink.roll_max_age.as_secs(), 60);
        assert_eq!(config.sink.roll_max_bytes, 128 << 20);
        assert_eq!(config.query.timeout.as_secs(), 60);
        assert_eq!(config.query.http_listen.port(), 9468);
        assert_eq!(config.query.flight_listen.port(), 50051);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("cw-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bad.toml");
        std::fs::write(&file, "[ingest]\nlisten_port = 1\n").unwrap();
        let error = format!("{:#}", load(Some(&file), Vec::new()).unwrap_err());
        assert!(error.contains("listen_port"), "{error}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
