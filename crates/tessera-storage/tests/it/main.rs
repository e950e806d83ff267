//! The storage integration tests: one conformance suite, run against every backend.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failing test should stop loudly

mod backends;
mod conformance;
mod migrations;
