//! The shared kernel: what every slice needs and no slice owns.
//!
//! Config, the clock, the database (`Db`, both backends) and its batching
//! primitive, the warm tier handle (Redis), PubSub, typed domain events and
//! the transactional outbox, the durable job queue, idempotency, the slice
//! contract, auth primitives (tokens, passwords, Ed25519 keys), typed ids,
//! permissions and roles, and the API error contract. It knows no slice.

pub mod audit;
pub mod auth;
pub mod batch;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod jobs;
pub mod load;
pub mod outbox;
pub mod parse;
mod pg_group;
pub mod pubsub;
pub mod ratelimit;
pub mod secrets;
pub mod slice;
pub mod tenant;
pub mod warm;

use std::sync::Arc;

pub use clock::Clock;
pub use config::Config;
pub use db::{Backend, Db, Stmt, Tx};
pub use error::{ApiError, ApiResult, FieldError, ProblemType};
pub use events::{DomainEvent, Envelope};
pub use slice::Slice;
pub use tenant::{Permission, Role};

/// The shared handles every slice is given.
#[derive(Clone)]
pub struct Kernel {
    pub db: Db,
    pub warm: Option<warm::Warm>,
    pub hub: pubsub::Hub,
    pub clock: Clock,
    pub config: Arc<Config>,
    pub limits: ratelimit::Limits,
    /// Turns true when the process is shutting down; long-lived streams end.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Requests in flight on this node; background work yields to them.
    pub load: load::Load,
    /// Seals private keys at rest.
    pub master: Arc<secrets::MasterKey>,
}

impl Kernel {
    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}
