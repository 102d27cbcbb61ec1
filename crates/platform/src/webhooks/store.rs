//! The webhooks slice's tables.

use kernel::{
    Db, Stmt, Tx, db_run,
    ids::{DeliveryId, OrgId, WebhookId},
    tx_run,
};
use uuid::Uuid;

use crate::identity::Tenant;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Endpoint {
    pub id: WebhookId,
    pub url: String,
    pub event_types: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_until: Option<i64>,
    pub status: String,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<i64>,
    pub created_at: i64,
}

pub fn insert_endpoint(t: &Tenant, e: &Endpoint) -> Stmt {
    Stmt::new(
        "INSERT INTO webhook_endpoints (id, org_id, url, event_types, secret, status, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(e.id)
    .bind(t.org())
    .bind(e.url.clone())
    .bind(e.event_types.clone())
    .bind(e.secret.clone())
    .bind(e.status.clone())
    .bind(e.created_at)
}

/// Applies `change` and, when it changed a row, its audit entry, in one
/// transaction. False when nothing matched.
pub async fn audited(db: &Db, change: Stmt, audit: Stmt) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    if change.execute_in(&mut tx).await? == 0 {
        return Ok(false);
    }
    audit.execute_in(&mut tx).await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn endpoints(db: &Db, t: &Tenant) -> Result<Vec<Endpoint>, sqlx::Error> {
    let sql = "SELECT id, url, event_types, secret, previous_secret, previous_until, status, disabled_reason, failing_since, created_at
               FROM webhook_endpoints WHERE org_id = $1 ORDER BY id LIMIT 100";
    db_run!(db, p => sqlx::query_as(sql).bind(t.org()).fetch_all(p).await)
}

pub async fn endpoint(db: &Db, t: &Tenant, id: WebhookId) -> Result<Option<Endpoint>, sqlx::Error> {
    let sql = "SELECT id, url, event_types, secret, previous_secret, previous_until, status, disabled_reason, failing_since, created_at
               FROM webhook_endpoints WHERE org_id = $1 AND id = $2";
    db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(id).fetch_optional(p).await)
}

/// The new secret signs from now on; the old one also verifies until `until`.
pub fn rotate(t: &Tenant, id: WebhookId, secret: &str, until: i64) -> Stmt {
    Stmt::new(
        "UPDATE webhook_endpoints SET previous_secret = secret, previous_until = $1, secret = $2
         WHERE org_id = $3 AND id = $4",
    )
    .bind(until)
    .bind(secret)
    .bind(t.org())
    .bind(id)
}

pub fn set_status(t: &Tenant, id: WebhookId, status: &str) -> Stmt {
    Stmt::new(
        "UPDATE webhook_endpoints SET status = $1, disabled_reason = NULL, failing_since = NULL
         WHERE org_id = $2 AND id = $3",
    )
    .bind(status)
    .bind(t.org())
    .bind(id)
}

pub fn delete(t: &Tenant, id: WebhookId) -> Stmt {
    Stmt::new("DELETE FROM webhook_endpoints WHERE org_id = $1 AND id = $2")
        .bind(t.org())
        .bind(id)
}

/// The active endpoints of `org` and the types each wants (in the relay's
/// transaction).
pub async fn active_in(tx: &mut Tx, org: OrgId) -> Result<Vec<(WebhookId, String)>, sqlx::Error> {
    tx_run!(tx, c => sqlx::query_as(
        "SELECT id, event_types FROM webhook_endpoints WHERE org_id = $1 AND status = 'active'")
        .bind(org).fetch_all(c).await)
}

/// A delivery with what sending it needs from its endpoint.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Pending {
    pub org_id: OrgId,
    pub endpoint_id: WebhookId,
    pub event_id: Uuid,
    pub subject: String,
    pub body: String,
    pub status: String,
    pub url: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_until: Option<i64>,
    pub endpoint_status: String,
    pub failing_since: Option<i64>,
}

pub async fn pending(db: &Db, id: DeliveryId) -> Result<Option<Pending>, sqlx::Error> {
    db_run!(db, p => sqlx::query_as(
        "SELECT d.org_id, d.endpoint_id, d.event_id, d.subject, d.body, d.status,
                e.url, e.secret, e.previous_secret, e.previous_until, e.status AS endpoint_status, e.failing_since
         FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE d.id = $1")
        .bind(id).fetch_optional(p).await)
}

/// Whether an earlier delivery about the same subject to the same endpoint
/// is still to be made (waiting or being retried): this one waits for it.
pub async fn earlier_waiting(db: &Db, d: &Pending) -> Result<bool, sqlx::Error> {
    let n: Option<i64> = db_run!(db, p => sqlx::query_scalar(
        "SELECT CAST(1 AS BIGINT) FROM webhook_deliveries w JOIN jobs j ON j.id = w.job_id
         WHERE w.endpoint_id = $1 AND w.subject = $2 AND w.event_id < $3
           AND w.status IN ('pending', 'failed') AND j.state IN ('available', 'running')
         LIMIT 1")
        .bind(d.endpoint_id).bind(&d.subject).bind(d.event_id).fetch_optional(p).await)?;
    Ok(n.is_some())
}

/// What one attempt came to.
pub struct Attempt {
    pub delivery: DeliveryId,
    pub org: OrgId,
    pub at: i64,
    pub status: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub headers: String,
    /// `delivered`, `failed` or `cancelled`.
    pub outcome: &'static str,
}

pub fn attempt_stmts(a: &Attempt) -> Vec<Stmt> {
    vec![
        Stmt::new(
            "INSERT INTO webhook_attempts (id, org_id, delivery_id, attempted_at, status, latency_ms, error, request_headers)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(Uuid::now_v7())
        .bind(a.org)
        .bind(a.delivery)
        .bind(a.at)
        .bind(a.status)
        .bind(a.latency_ms)
        .bind(a.error.clone())
        .bind(a.headers.clone()),
        Stmt::new(
            "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, last_status = $2,
               last_latency_ms = $3, last_error = $4,
               delivered_at = CASE WHEN $1 = 'delivered' THEN $5 ELSE delivered_at END
             WHERE id = $6",
        )
        .bind(a.outcome)
        .bind(a.status)
        .bind(a.latency_ms)
        .bind(a.error.clone())
        .bind(a.at)
        .bind(a.delivery),
    ]
}

/// After a delivery is made, the later ones about its subject that wait
/// for it go now instead of at the end of their snooze.
pub fn wake_followers(d: &Pending, now: i64) -> Stmt {
    Stmt::new(
        "UPDATE jobs SET run_at = $1
         WHERE state = 'available' AND run_at > $1 AND id IN (
           SELECT job_id FROM webhook_deliveries
           WHERE endpoint_id = $2 AND subject = $3 AND event_id > $4 AND status = 'pending')",
    )
    .bind(now)
    .bind(d.endpoint_id)
    .bind(d.subject.clone())
    .bind(d.event_id)
}

pub fn endpoint_ok(id: WebhookId) -> Stmt {
    // Only when it was failing: a success does not lock the endpoint's row.
    Stmt::new(
        "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL",
    )
    .bind(id)
}

pub fn endpoint_failing(id: WebhookId, now: i64) -> Stmt {
    Stmt::new(
        "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $1) WHERE id = $2",
    )
    .bind(now)
    .bind(id)
}

pub fn endpoint_disabled(id: WebhookId, reason: &str) -> Stmt {
    Stmt::new(
        "UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = $1 WHERE id = $2",
    )
    .bind(reason)
    .bind(id)
}

pub fn cancel(id: DeliveryId, why: &str) -> Stmt {
    Stmt::new("UPDATE webhook_deliveries SET status = 'cancelled', last_error = $1 WHERE id = $2")
        .bind(why)
        .bind(id)
}

/// A delivery as the log shows it, with its job's state.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Logged {
    pub id: DeliveryId,
    pub event_id: Uuid,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_latency_ms: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    pub job_state: Option<String>,
    pub job_run_at: Option<i64>,
}

pub async fn deliveries(
    db: &Db,
    t: &Tenant,
    endpoint: WebhookId,
    before: Option<DeliveryId>,
    limit: i64,
) -> Result<Vec<Logged>, sqlx::Error> {
    db_run!(db, p => sqlx::query_as(
        "SELECT d.id, d.event_id, d.event_type, d.status, d.attempts, d.last_status, d.last_latency_ms,
                d.last_error, d.created_at, d.delivered_at, j.state AS job_state, j.run_at AS job_run_at
         FROM webhook_deliveries d LEFT JOIN jobs j ON j.id = d.job_id
         WHERE d.org_id = $1 AND d.endpoint_id = $2 AND ($3 IS NULL OR d.id < $3)
         ORDER BY d.id DESC LIMIT $4")
        .bind(t.org()).bind(endpoint).bind(before).bind(limit).fetch_all(p).await)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LoggedAttempt {
    pub attempted_at: i64,
    pub status: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub request_headers: String,
}

pub async fn attempts(
    db: &Db,
    t: &Tenant,
    delivery: DeliveryId,
) -> Result<Vec<LoggedAttempt>, sqlx::Error> {
    db_run!(db, p => sqlx::query_as(
        "SELECT attempted_at, status, latency_ms, error, request_headers
         FROM webhook_attempts WHERE org_id = $1 AND delivery_id = $2 ORDER BY attempted_at LIMIT 50")
        .bind(t.org()).bind(delivery).fetch_all(p).await)
}

/// Points the delivery at a new job and marks it pending again.
pub async fn redeliver(
    db: &Db,
    t: &Tenant,
    endpoint: WebhookId,
    delivery: DeliveryId,
    job: Stmt,
    job_id: Uuid,
    audit: Stmt,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = Stmt::new(
        "UPDATE webhook_deliveries SET status = 'pending', job_id = $1
         WHERE org_id = $2 AND endpoint_id = $3 AND id = $4",
    )
    .bind(job_id)
    .bind(t.org())
    .bind(endpoint)
    .bind(delivery)
    .execute_in(&mut tx)
    .await?;
    if n != 1 {
        return Ok(false);
    }
    job.execute_in(&mut tx).await?;
    audit.execute_in(&mut tx).await?;
    tx.commit().await?;
    Ok(true)
}
