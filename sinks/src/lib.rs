//! Sinks: telemetry, alerts, dead letters and events as Parquet on object storage (issue 5).
//!
//! Not built yet. It will write the Arrow schemas of `schemas::arrow` as Hive-partitioned,
//! zstd-compressed Parquet through `object_store`, naming each object by its partition and
//! offsets so a replay rewrites the same objects.
