//! Helpers for the load driver (`tessera-load`): the login flow as a browser drives it, and the
//! latency record that turns into the benchmark's table row.

pub mod flow;
pub mod stats;
