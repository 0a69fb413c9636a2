//! End-to-end tests of the `chargewatch` binary: one test binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod cli;
mod console;
mod deploy;
mod faults;
mod forward;
mod lifecycle;
mod outage;
mod processor;
mod published;
mod sink;
