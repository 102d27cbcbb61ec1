//! The `voelgoed` binary's library half: configuration, one node with its
//! HTTP edges (`server`), the demo seed, the load driver, the local Stripe
//! stand-in (`stripe_standin`), and the test kit the integration tests and
//! the load driver share. `main.rs` only parses the command line.

pub mod bench;
pub mod bench_flash;
pub mod bench_jobs;
pub mod config;
pub mod demo;
pub mod server;
pub mod stripe_standin;
pub mod testkit;
