//! Scanning: gate devices and admission at the gate.
//!
//! Owns: `devices` (name, role, the events and gates a device scans for; its
//! credential is identity's), `gates` (their setup and rules), `scans` (the
//! scan log), the gate hot tier, the admission writer.
//! Emits: `ticket.admitted`, `ticket.exited` (outbox, in the scan's own
//! transaction), `gate.changed` (with a gate's change).
//! Consumes: over PubSub, `ticket.admitted` and `ticket.exited` (other
//! nodes' scans keep this node's gate in step), `ticket.revoked`,
//! `gate.changed` (every node reloads the event's gates).
//! Invariants: a ticket is `admitted` exactly once, however many devices
//! scan it at once: the hot tier's compare-and-swap decides within a node,
//! and the database's conditional update decides across nodes. `admitted`
//! is answered only after the admission is committed. Once an event's
//! tickets are loaded, a scan reads no database.

mod api;
mod box_office;
mod box_office_views;
mod domain;
mod error;
mod gate;
pub mod rules;
mod setup;
mod store;
mod views;

pub use domain::{
    DeviceInput, DeviceRole, NewDeviceView, PairedView, ScanOutcome, ScanResult, create_device,
    pair,
};
pub use error::Error;
pub use gate::Gates;
use kernel::{
    DomainEvent, Kernel, Slice,
    ids::{DeviceId, EventId, GateId, OrgId, TicketId},
};
use serde::{Deserialize, Serialize};
pub use setup::{GateInput, GateView, LiveGate, Reentry, create as create_gate, live_gates};

use crate::App;

/// A ticket was admitted at the gate (once, ever).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TicketAdmitted {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub ticket_id: TicketId,
    /// The device that scanned it; `null` for a check-in at the box office.
    pub device_id: Option<DeviceId>,
    /// The gate's id as text, or the device's own label for its place.
    pub gate: Option<String>,
    /// The gate it came in through, when the event has gates.
    #[serde(default)]
    pub gate_id: Option<GateId>,
    pub admitted_at: String,
    /// A second or later entry (through an `in_out` gate after an exit).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reentry: bool,
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

/// A ticket went out through an `in_out` gate.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TicketExited {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub ticket_id: TicketId,
    pub device_id: DeviceId,
    pub gate_id: Option<GateId>,
    pub exited_at: String,
}

impl DomainEvent for TicketExited {
    const NAME: &'static str = "ticket.exited";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

/// A mistaken admission was undone at the box office: the ticket is as if
/// never scanned.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TicketAdmissionUndone {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub ticket_id: TicketId,
    /// The admission undone (the ticket's first).
    pub admitted_at: String,
    pub undone_at: String,
}

impl DomainEvent for TicketAdmissionUndone {
    const NAME: &'static str = "ticket.admission_undone";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

/// An event's gates changed: every node reloads them.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GateChanged {
    pub org_id: OrgId,
    pub event_id: EventId,
}

impl DomainEvent for GateChanged {
    const NAME: &'static str = "gate.changed";
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
        .pages(views::routes().merge(box_office_views::routes()))
        .state(Gates::new(kernel))
}
