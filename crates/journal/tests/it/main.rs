//! Integration tests of `coss-journal`, in one binary.
// The whole crate is tests: a helper that unwraps is the test failing, as in a `#[test]`.
#![allow(clippy::unwrap_used, clippy::panic)]

mod journal;
mod snapshot;
