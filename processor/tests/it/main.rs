//! Processor integration tests: one binary, one module per concern.
#![recursion_limit = "256"]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod golden;
mod rule_files;
mod runner;
mod support;
mod windows;
