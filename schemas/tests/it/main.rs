//! Integration tests of the `schemas` crate: one test binary, one module per suite.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod columnar;
mod framing;
mod fuzzing;
mod roundtrip;
mod support;
mod vectors;
