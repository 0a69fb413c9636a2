//! Processor: windowed fault-diagnosis rules in SQL on DataFusion (issue 4).
//!
//! Not built yet. It will consume telemetry messages in a consumer group, decode them with
//! `schemas::arrow::TelemetryDecoder` into `RecordBatch`es, evaluate the rules per closed
//! window, and publish alerts with a raise/clear lifecycle.
