//! Ingest against real brokers: Tansu (a Kafka-protocol broker, started per test) and
//! librdkafka's mock cluster (for broker outages). One test binary, one module per suite.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod bad_input;
mod editions;
mod end_to_end;
mod lifecycle;
mod outage;
mod support;
