//! The skeleton every chargewatch role is built on, so that a new role copies nothing:
//!
//! - [`admin`]: what every role serves to be operated (`/metrics`, `/healthz`, `/readyz`);
//! - [`kafka`]: clients made from `[kafka]` one way (consumer in a group with lag and rebalance
//!   tracking, idempotent producer, topic creation), the received-time rule, and delivery
//!   retried until the broker takes it;
//! - [`packed`]: consumed messages packed into one buffer for a columnar decode;
//! - [`role`]: a started role as one handle (its own thread or the caller's runtime, its admin
//!   server, its stop token), so the binary drives every role alike.
//!
//! A role is then its own loop over these: see `processor::runner` and `sinks::runner`.

pub mod admin;
pub mod kafka;
pub mod packed;
pub mod role;

pub use packed::{Packed, Received};
pub use role::{Admin, Role};
