//! Processor integration tests: one binary, one module per concern.
#![recursion_limit = "256"]

mod golden;
mod rule_files;
mod runner;
mod support;
mod windows;
