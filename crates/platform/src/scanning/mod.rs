//! Scanning: devices, pairing, and admission at the gate.
//!
//! Owns: `devices`; writes admissions through the tickets slice.
//! Emits: `ticket.admitted` (outbox, in the admission's own transaction).
//! Invariants: a ticket is `admitted` exactly once, however many devices
//! scan it at once: the hot tier's compare-and-swap decides within a node,
//! and the database's conditional update decides across nodes (other nodes'
//! hot tiers follow `ticket.admitted`). `admitted` is answered only after the
//! admission is committed. Once an event's tickets are loaded, a scan reads
//! no database.

mod api;
mod domain;
mod gate;
mod store;

pub use api::routes;
pub use domain::{ScanOutcome, ScanResult, create_device, pair};
pub use gate::{Gates, start_writers};
