//! Live figures, read from the ledger.

use kernel::{
    Db, db_run,
    ids::{EventId, OrgId},
};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Figures {
    pub capacity: i64,
    pub sold: i64,
    pub held: i64,
    pub available: i64,
    pub admitted: i64,
}

#[tracing::instrument(skip_all)]
pub async fn figures(db: &Db, org: OrgId, event: EventId) -> Result<Figures, sqlx::Error> {
    let sql = "SELECT
          CAST(COALESCE((SELECT SUM(capacity) FROM ticket_types WHERE org_id = $1 AND event_id = $2), 0) AS BIGINT) AS capacity,
          (SELECT COUNT(*) FROM tickets WHERE org_id = $1 AND event_id = $2 AND status = 'valid') AS sold,
          CAST(COALESCE((SELECT SUM(i.quantity) FROM hold_items i JOIN holds h ON h.org_id = i.org_id AND h.id = i.hold_id
                         WHERE h.org_id = $1 AND h.event_id = $2 AND h.status = 'active'), 0) AS BIGINT) AS held,
          CAST(COALESCE((SELECT SUM(i.quantity) FROM hold_items i JOIN holds h ON h.org_id = i.org_id AND h.id = i.hold_id
                         WHERE h.org_id = $1 AND h.event_id = $2 AND h.status = 'consumed'), 0) AS BIGINT) AS taken,
          (SELECT COUNT(*) FROM tickets WHERE org_id = $1 AND event_id = $2 AND admitted_at IS NOT NULL) AS admitted";
    let (capacity, sold, held, taken, admitted): (i64, i64, i64, i64, i64) =
        db_run!(db, p => sqlx::query_as(sql).bind(org).bind(event).fetch_one(p).await)?;
    Ok(Figures {
        capacity,
        sold,
        held,
        available: (capacity - held - taken).max(0),
        admitted,
    })
}
