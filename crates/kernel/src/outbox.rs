//! The transactional outbox: domain events are written in the same
//! transaction as the change that causes them, so none is lost and none is
//! invented by a rolled-back change. The relay fans them out to PubSub
//! (at least once; every event carries an id for idempotent consumers).

use std::time::Duration;

use serde::Serialize;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    Kernel, clock,
    db::{Backend, Stmt, Tx},
    db_run,
    ids::OrgId,
    pubsub::Message,
    tx_run,
};

/// Records `kind` (e.g. `ticket.admitted`) on `topic` inside `tx`.
pub async fn record(
    tx: &mut Tx,
    org: OrgId,
    topic: &str,
    kind: &str,
    payload: &impl Serialize,
) -> Result<(), sqlx::Error> {
    tx.run_all(vec![stmt(org, topic, kind, payload)?]).await
}

/// The statement that records an event, to run with others in one batch.
pub fn stmt(
    org: OrgId,
    topic: &str,
    kind: &str,
    payload: &impl Serialize,
) -> Result<Stmt, sqlx::Error> {
    let payload = serde_json::to_string(payload).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    Ok(Stmt::new(
        "INSERT INTO outbox (event_id, org_id, topic, kind, payload, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7())
    .bind(org)
    .bind(topic)
    .bind(kind)
    .bind(payload)
    .bind(clock::now_micros()))
}

/// An event to record, its payload already JSON.
pub struct Pending {
    pub org: OrgId,
    pub topic: String,
    pub kind: &'static str,
    pub payload: String,
}

/// Records many events inside `tx`: one statement on PostgreSQL.
pub async fn record_many(tx: &mut Tx, events: &[Pending]) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let now = clock::now_micros();
    if let Tx::Pg(t) = tx {
        let sql = "INSERT INTO outbox (event_id, org_id, topic, kind, payload, created_at)
                   SELECT e, o, t, k, p, $6 FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[]) AS v(e, o, t, k, p)";
        let ids: Vec<Uuid> = events.iter().map(|_| Uuid::now_v7()).collect();
        let orgs: Vec<Uuid> = events.iter().map(|e| e.org.0).collect();
        let topics: Vec<&str> = events.iter().map(|e| e.topic.as_str()).collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind).collect();
        let payloads: Vec<&str> = events.iter().map(|e| e.payload.as_str()).collect();
        sqlx::query(sql)
            .bind(&ids)
            .bind(&orgs)
            .bind(&topics)
            .bind(&kinds)
            .bind(&payloads)
            .bind(now)
            .execute(&mut **t)
            .await?;
        return Ok(());
    }
    let sql = "INSERT INTO outbox (event_id, org_id, topic, kind, payload, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
    for e in events {
        tx_run!(tx, c => sqlx::query(sql)
            .bind(Uuid::now_v7()).bind(e.org).bind(&e.topic).bind(e.kind).bind(&e.payload).bind(now)
            .execute(c).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    event_id: Uuid,
    topic: String,
    kind: String,
    payload: String,
}

/// Wakes the relay right after a commit, so live views need not wait for
/// the next poll.
pub static WAKE: Notify = Notify::const_new();

/// Publishes undelivered events until `shutdown` resolves. Safe on many
/// nodes: on PostgreSQL each batch is claimed with `SKIP LOCKED`.
pub async fn relay(kernel: Kernel, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        match relay_batch(&kernel).await {
            Ok(BATCH) => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "outbox relay failed; retrying"),
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = WAKE.notified() => {
                // Let a burst of commits gather into one batch.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

const BATCH: usize = 500;

async fn relay_batch(kernel: &Kernel) -> Result<usize, sqlx::Error> {
    let rows: Vec<Row>;
    let mut tx = match kernel.db.backend() {
        Backend::Postgres => {
            // Claimed in the transaction, so another node skips these rows.
            let select =
                "SELECT id, event_id, topic, kind, payload FROM outbox WHERE delivered_at IS NULL
                          ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED";
            let mut tx = kernel.db.begin().await?;
            rows = tx_run!(&mut tx, c => sqlx::query_as(select).fetch_all(c).await)?;
            tx
        }
        Backend::Sqlite => {
            // One node: read without the write lock; lock only to mark.
            let select =
                "SELECT id, event_id, topic, kind, payload FROM outbox WHERE delivered_at IS NULL
                          ORDER BY id LIMIT 500";
            rows = db_run!(&kernel.db, p => sqlx::query_as(select).fetch_all(p).await)?;
            if rows.is_empty() {
                return Ok(0);
            }
            kernel.db.begin().await?
        }
    };
    if rows.is_empty() {
        return Ok(0);
    }
    let msgs = rows
        .iter()
        .map(|row| {
            let payload =
                match serde_json::from_str(&row.payload).unwrap_or(serde_json::Value::Null) {
                    serde_json::Value::Object(mut m) => {
                        m.insert("event_id".into(), row.event_id.to_string().into());
                        serde_json::Value::Object(m)
                    }
                    other => other,
                };
            Message {
                topic: row.topic.clone(),
                kind: row.kind.clone(),
                payload,
            }
        })
        .collect();
    kernel.hub.publish_many(msgs).await;
    let last = rows.last().map(|r| r.id).unwrap_or(0);
    let first = rows.first().map(|r| r.id).unwrap_or(0);
    let now = clock::now_micros();
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    // Rows in [first, last] not claimed by this batch belong to another
    // node's batch; mark exactly ours.
    for chunk in ids.chunks(100) {
        let list = chunk
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "UPDATE outbox SET delivered_at = $1 WHERE id IN ({list}) AND id BETWEEN $2 AND $3"
        );
        tx_run!(&mut tx, c => sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(now).bind(first).bind(last).execute(c).await.map(|r| r.rows_affected()))?;
    }
    tx.commit().await?;
    Ok(rows.len())
}

/// Deletes delivered events older than `age`.
pub async fn prune(kernel: &Kernel, age: Duration) -> Result<u64, sqlx::Error> {
    let before = clock::now_micros() - age.as_micros() as i64;
    let sql = "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1";
    let r = db_run!(&kernel.db, p => sqlx::query(sql).bind(before).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(r)
}
