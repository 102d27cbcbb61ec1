//! Scanning: gate devices and admission at the gate.
//!
//! Owns: `devices` (name, the events a device scans for; its credential is
//! identity's), the gate hot tier, the admission writer.
//! Emits: `ticket.admitted` (outbox, in the admission's own transaction).
//! Consumes: `ticket.admitted` over PubSub (other nodes' admissions keep
//! this node's gate in step).
//! Invariants: a ticket is `admitted` exactly once, however many devices
//! scan it at once: the hot tier's compare-and-swap decides within a node,
//! and the database's conditional update decides across nodes. `admitted`
//! is answered only after the admission is committed. Once an event's
//! tickets are loaded, a scan reads no database.

mod api;
mod domain;
mod error;
mod gate;
mod store;

pub use domain::{NewDeviceView, PairedView, ScanOutcome, ScanResult, create_device, pair};
pub use error::Error;
pub use gate::Gates;
use kernel::{
    DomainEvent, Kernel, Slice,
    ids::{DeviceId, EventId, OrgId, TicketId},
};
use serde::{Deserialize, Serialize};

use crate::App;

/// A ticket was admitted at the gate (once, ever).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TicketAdmitted {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub ticket_id: TicketId,
    pub device_id: DeviceId,
    pub gate: Option<String>,
    pub admitted_at: String,
}

impl DomainEvent for TicketAdmitted {
    const NAME: &'static str = "ticket.admitted";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

pub fn slice(kernel: &Kernel) -> Slice<App> {
    Slice::new("scanning")
        .routes(api::routes())
        .state(Gates::new(kernel))
}
