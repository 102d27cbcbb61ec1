//! The `voelgoed` binary's library half: configuration, wiring the slices
//! into one server, the demo seed and the load driver. `main.rs` only parses
//! the command line.

pub mod bench;
pub mod config;
pub mod demo;
pub mod server;
