//! Tickets: issued tickets, their signed codes, and QR rendering.
//!
//! Owns: `tickets`, `org_signing_keys`.
//! Emits: nothing of its own (orders and admissions announce tickets).
//! Invariants: a ticket's `code` is `VG1.<kid>.<payload>.<signature>`, an
//! Ed25519 signature by its org's key over the ticket and event ids, so a
//! device verifies it offline with the org's public key; a ticket is
//! admitted at most once (`admitted_at` is set once, never overwritten).

mod api;
mod code;
mod store;

use std::{sync::Arc, time::Duration};

pub use api::routes;
pub use code::{ParsedCode, parse_code, qr_svg};
use kernel::{
    ApiError, ApiResult, Tx,
    auth::{SigningKey, VerifyingKey},
    clock,
    ids::{EventId, OrderId, OrgId, TicketId, TicketTypeId},
};
use serde::{Deserialize, Serialize};
pub use store::{AdmissionWrite, TicketRecord, mark_admitted_batch};
use utoipa::ToSchema;

use crate::App;

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TicketView {
    pub id: TicketId,
    pub event_id: EventId,
    pub ticket_type_id: TicketTypeId,
    /// The exact text of the ticket's QR code.
    pub code: String,
    pub status: String,
    pub admitted_at: Option<String>,
}

impl From<TicketRecord> for TicketView {
    fn from(r: TicketRecord) -> Self {
        TicketView {
            id: r.id,
            event_id: r.event_id,
            ticket_type_id: r.ticket_type_id,
            code: r.code,
            status: r.status,
            admitted_at: r.admitted_at.map(clock::rfc3339),
        }
    }
}

/// An org's keys: the active one signs, all of them verify.
pub struct OrgKeys {
    pub signing: (String, SigningKey),
    pub verifying: Vec<(String, VerifyingKey)>,
}

pub struct Hot {
    keys: moka::future::Cache<OrgId, Arc<OrgKeys>>,
}

impl Hot {
    pub fn new() -> Hot {
        Hot {
            keys: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
        }
    }
}

impl Default for Hot {
    fn default() -> Self {
        Self::new()
    }
}

/// Creates the org's first signing key (at org creation).
pub async fn provision_signing_key(tx: &mut Tx, org: OrgId) -> Result<(), sqlx::Error> {
    store::insert_signing_key(tx, org, &kernel::auth::generate_signing_key()).await
}

/// The org's signing and verifying keys, from the hot tier when warm.
pub async fn org_keys(app: &App, org: OrgId) -> ApiResult<Arc<OrgKeys>> {
    let db = app.db().clone();
    app.tickets
        .keys
        .try_get_with(
            org,
            async move { store::org_keys(&db, org).await.map(Arc::new) },
        )
        .await
        .map_err(ApiError::internal)
}

/// Mints `quantity` signed tickets per item of a paid order (no writes).
pub async fn prepare(
    app: &App,
    org: OrgId,
    event: EventId,
    items: &[(TicketTypeId, i64)],
) -> ApiResult<Vec<TicketRecord>> {
    let keys = org_keys(app, org).await?;
    let mut out = Vec::new();
    for (tt, q) in items {
        for _ in 0..*q {
            let id = TicketId::new();
            out.push(TicketRecord {
                id,
                event_id: event,
                ticket_type_id: *tt,
                code: code::sign(&keys.signing.0, &keys.signing.1, id, event),
                status: "valid".into(),
                admitted_at: None,
            });
        }
    }
    Ok(out)
}

/// The statement that stores a prepared ticket, for the order's transaction.
pub fn insert_stmt(org: OrgId, order: OrderId, t: &TicketRecord, now: i64) -> kernel::Stmt {
    store::insert_ticket(org, order, t, now)
}

pub async fn for_order(app: &App, org: OrgId, order: OrderId) -> ApiResult<Vec<TicketView>> {
    Ok(store::for_order(app.db(), org, order)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Every ticket of an event (to load a gate's hot tier).
pub async fn for_event(app: &App, org: OrgId, event: EventId) -> ApiResult<Vec<TicketRecord>> {
    Ok(store::for_event(app.db(), org, event).await?)
}

/// One ticket by id.
pub async fn by_id(app: &App, org: OrgId, id: TicketId) -> ApiResult<Option<TicketRecord>> {
    Ok(store::by_id(app.db(), org, id).await?)
}
