//! Integration tests of the sink: one test binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod compaction;
mod runner;
mod support;
