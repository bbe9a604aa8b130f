//! Differential property tests of the exchange core: random command streams run through the
//! engine and through a deliberately simple reference model (`reference`), which must agree on
//! every event; the engine's invariants are checked after every command, and snapshots and
//! replays must reproduce the same state hash. `universe` defines the small world the streams
//! trade in; `props` holds the properties. A failure prints the shrunk command stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod props;
mod reference;
mod universe;
