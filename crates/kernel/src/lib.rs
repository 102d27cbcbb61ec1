//! The shared kernel: what every slice needs and no slice owns.
//!
//! Config, the database (`Db`, both backends), the warm tier handle (Redis),
//! PubSub, the transactional outbox, auth primitives (tokens, passwords,
//! Ed25519 keys), typed ids, the tenant context (`Actor`) and the API error
//! contract. It knows no slice.

pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod outbox;
pub mod parse;
pub mod pubsub;
pub mod ratelimit;
pub mod tenant;
pub mod warm;

use std::sync::Arc;

pub use config::Config;
pub use db::{Backend, Db, Stmt, Tx};
pub use error::{ApiError, ApiResult, FieldError};
pub use tenant::{Actor, ActorKind, Permission};

/// The shared handles every slice is given: database, warm tier, PubSub.
#[derive(Clone)]
pub struct Kernel {
    pub db: Db,
    pub warm: Option<warm::Warm>,
    pub hub: pubsub::Hub,
    pub config: Arc<Config>,
    pub limits: ratelimit::Limits,
    /// Turns true when the process is shutting down; long-lived streams end.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}
