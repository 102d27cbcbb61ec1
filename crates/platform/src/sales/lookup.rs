//! A buyer finds their orders by e-mail: they give their address, and a
//! link is mailed to it (never a list on the page: an address is not a
//! password). The link's token, kept as its hash, shows that address's
//! orders of the org for a day, and opens each of them as the order's own
//! access token would.
//!
//! The answer is the same whether the address has orders or not; an
//! address gets at most one such mail per ten minutes.

use kernel::{
    Db, Stmt, auth, db_run,
    events::{self},
    ids::OrgId,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    OrderLookupRequested,
    error::{Error, Result},
};
use crate::{App, identity::Tenant};

/// Look-up tokens start so (a character order tokens never have).
pub const PREFIX: &str = "lk.";
/// How long a mailed link works.
pub const TTL_SECS: i64 = 24 * 3600;
/// One mail per address per this long.
pub const EVERY_SECS: i64 = 600;

const MICROS: i64 = 1_000_000;

/// What the look-up answers, whatever the address.
#[derive(Debug, Serialize, ToSchema)]
pub struct LookupAck {
    /// Always `sent_if_known`: a link goes out when the address has orders.
    pub status: &'static str,
}

/// Asks for the link: when the address has orders here and no link went
/// to it in the last ten minutes, `order.lookup_requested` is recorded
/// (the mail slice sends the link).
pub async fn request(app: &App, t: &Tenant, email: &str) -> Result<LookupAck> {
    let email = kernel::parse::email(email).map_err(|m| Error::field("email", &m))?;
    let ack = LookupAck {
        status: "sent_if_known",
    };
    if !has_orders(app.db(), t.org(), &email).await? {
        return Ok(ack);
    }
    let now = app.kernel.now();
    let mut tx = app.db().begin().await?;
    let claim = Stmt::new(
        "INSERT INTO order_lookup_requests (org_id, email, requested_at) VALUES ($1, $2, $3)
         ON CONFLICT (org_id, email) DO UPDATE SET requested_at = excluded.requested_at
         WHERE order_lookup_requests.requested_at <= $4",
    )
    .bind(t.org())
    .bind(email.as_str())
    .bind(now)
    .bind(now - EVERY_SECS * MICROS);
    if claim.execute_in(&mut tx).await? == 1 {
        let event = OrderLookupRequested {
            org_id: t.org(),
            email,
            request_id: uuid::Uuid::now_v7(),
        };
        events::emit(&event, now)?.execute_in(&mut tx).await?;
        tx.commit().await?;
    }
    Ok(ack)
}

async fn has_orders(db: &Db, org: OrgId, email: &str) -> Result<bool, sqlx::Error> {
    let sql = "SELECT 1 FROM orders WHERE org_id = $1 AND buyer_email = $2 LIMIT 1";
    let found: Option<i32> =
        db_run!(db, p => sqlx::query_scalar(sql).bind(org).bind(email).fetch_optional(p).await)?;
    Ok(found.is_some())
}

/// A new link's token for `email` (the mail slice puts it in the message).
pub async fn mint(app: &App, t: &Tenant, email: &str) -> Result<String> {
    let token = auth::PlainToken::generate(PREFIX);
    let now = app.kernel.now();
    Stmt::new(
        "INSERT INTO order_lookups (org_id, token_hash, email, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(t.org())
    .bind(token.hash().0)
    .bind(email)
    .bind(now + TTL_SECS * MICROS)
    .execute(app.db())
    .await?;
    // Gone links go with the next one.
    Stmt::new("DELETE FROM order_lookups WHERE org_id = $1 AND expires_at <= $2")
        .bind(t.org())
        .bind(now)
        .execute(app.db())
        .await?;
    Ok(token.expose().to_string())
}

/// The address a look-up token stands for, while it works.
pub async fn email_of(app: &App, t: &Tenant, token: &str) -> Result<Option<String>> {
    Ok(link_of(app, t, token).await?.map(|(email, _)| email))
}

/// The address a look-up token stands for and until when it works.
pub async fn link_of(app: &App, t: &Tenant, token: &str) -> Result<Option<(String, i64)>> {
    if !token.starts_with(PREFIX) || token.len() > 200 {
        return Ok(None);
    }
    let hash = auth::PlainToken::from_presented(token).hash().0;
    let sql = "SELECT email, expires_at FROM order_lookups WHERE org_id = $1 AND token_hash = $2 AND expires_at > $3";
    let db = app.db();
    Ok(
        db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(hash).bind(app.kernel.now()).fetch_optional(p).await)?,
    )
}

/// One of a buyer's orders, as their look-up lists it.
#[derive(Clone, Debug)]
pub struct BuyerOrder {
    pub id: kernel::ids::OrderId,
    pub event_name: String,
    pub status: super::domain::OrderStatus,
    pub total_cents: i64,
    pub currency: String,
    pub created_at: i64,
}

/// The address's orders in the org, newest first (at most 100).
pub async fn orders_of(app: &App, t: &Tenant, email: &str) -> Result<Vec<BuyerOrder>> {
    let sql = "SELECT id, event_id, status, total_cents, currency, created_at FROM orders
               WHERE org_id = $1 AND buyer_email = $2 ORDER BY created_at DESC LIMIT 100";
    let db = app.db();
    let rows: Vec<(
        kernel::ids::OrderId,
        kernel::ids::EventId,
        String,
        i64,
        String,
        i64,
    )> = db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(email).fetch_all(p).await)?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, event, status, total_cents, currency, created_at) in rows {
        let event_name = crate::events::catalog(app, t, event)
            .await?
            .map(|c| c.event.name.clone())
            .unwrap_or_default();
        out.push(BuyerOrder {
            id,
            event_name,
            status: super::domain::OrderStatus::try_from(status)
                .map_err(|e| Error::Api(kernel::ApiError::internal(e)))?,
            total_cents,
            currency,
            created_at,
        });
    }
    Ok(out)
}
