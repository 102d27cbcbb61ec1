//! The live projection's table.

use kernel::{
    Db, Tx, db_run,
    ids::{EventId, OrgId},
    tx_run,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::Delta;
use crate::identity::Tenant;

/// An event's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Figures {
    pub capacity: i64,
    /// Tickets issued to paid orders.
    pub sold: i64,
    /// In live holds.
    pub held: i64,
    /// Left to sell: capacity less what holds and orders (paid or pending) took.
    pub available: i64,
    pub admitted: i64,
    /// The event's gates: people inside, entries, scans in the last minute
    /// (refreshed at most every [`super::GATES_EVERY`]).
    pub gates: Vec<crate::scanning::LiveGate>,
}

pub async fn add(tx: &mut Tx, org: OrgId, event: EventId, d: &Delta) -> Result<(), sqlx::Error> {
    let sql =
        "INSERT INTO live_figures (org_id, event_id, capacity, held, reserved, sold, admitted)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (org_id, event_id) DO UPDATE SET
                 capacity = live_figures.capacity + excluded.capacity,
                 held = live_figures.held + excluded.held,
                 reserved = live_figures.reserved + excluded.reserved,
                 sold = live_figures.sold + excluded.sold,
                 admitted = live_figures.admitted + excluded.admitted";
    tx_run!(tx, c => sqlx::query(sql).bind(org).bind(event).bind(d.capacity).bind(d.held)
        .bind(d.reserved).bind(d.sold).bind(d.admitted).execute(c).await.map(|_| ()))
}

#[tracing::instrument(skip_all)]
pub async fn figures(db: &Db, t: &Tenant, event: EventId) -> Result<Figures, sqlx::Error> {
    let sql = "SELECT capacity, held, reserved, sold, admitted FROM live_figures WHERE org_id = $1 AND event_id = $2";
    let row: Option<(i64, i64, i64, i64, i64)> =
        db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(event).fetch_optional(p).await)?;
    let (capacity, held, reserved, sold, admitted) = row.unwrap_or_default();
    Ok(Figures {
        capacity,
        sold,
        held: held.max(0),
        available: (capacity - held - reserved).clamp(0, capacity.max(0)),
        admitted,
        gates: Vec::new(),
    })
}
