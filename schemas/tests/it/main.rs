//! Integration tests of the `schemas` crate: one test binary, one module per suite.

mod columnar;
mod framing;
mod roundtrip;
mod support;
mod vectors;
