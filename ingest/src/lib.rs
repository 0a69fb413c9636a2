//! Ingest: terminal connections in, decrypted and validated records into Kafka (issue 3).
//!
//! Not built yet. It will run a tokio TCP server whose `Decoder` is a thin adapter over
//! `schemas::frame::Frame::parse`, open frames with `schemas::payload::open`, publish
//! `schemas::message` telemetry messages keyed by VIN, and reply to a terminal only after the
//! broker acknowledged its record.
