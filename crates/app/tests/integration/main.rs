//! The platform end to end over real HTTP, one binary organised by flow.
//! Every test runs on SQLite, and on PostgreSQL + Redis when configured.

mod support;

mod areas;
mod audit;
mod bad_input;
mod browser;
mod catalog;
mod contention;
mod core_flow;
mod edges;
mod exports;
mod gates;
mod idempotency;
mod integrity;
mod jobs;
mod keys;
mod layouts;
mod limits;
mod lookup;
mod mail;
mod money;
mod multi_node;
mod queue;
mod reserved_vouchers;
mod series;
mod snapshots;
mod soak;
mod stripe_standin;
mod tenancy;
mod ticket_types;
mod transfers;
mod waitlist;
mod webhooks;
