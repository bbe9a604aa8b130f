//! Spec-like tests of the exchange state machine, one focused test per rule, all through the
//! public API. Every command runs through [`support::World`], which checks the invariants,
//! the event sequence and the no-effect-on-reject rule after each one, and replay determinism
//! and snapshot round trips at the end of each test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod dao;
mod fees;
mod ledger;
mod orders;
mod snapshot;
mod stops;
mod support;
