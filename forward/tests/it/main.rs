//! The forward role against a real chargewatch upstream: two chained deployments (enterprise:
//! ingest → Kafka → forward; public: ingest accepting the platform login → its own topics).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chain;
mod serials;
mod support;
