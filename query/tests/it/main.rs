//! Integration tests of the query role: one test binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod console;
mod docs;
mod engine;
mod flight;
mod http;
mod support;
