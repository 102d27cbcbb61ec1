//! The transactional outbox: domain events are written in the same
//! transaction as the change that causes them ([`crate::events::emit`]), so
//! none is lost and none is invented by a rolled-back change. The relay
//! hands them to their consumers and to PubSub.
//!
//! One relay round: claim a batch of undelivered events (`SKIP LOCKED` on
//! PostgreSQL, so many nodes can relay), apply the in-transaction consumers,
//! enqueue the reaction jobs, mark the batch delivered and commit — all in
//! one transaction, so each event reaches each in-transaction consumer
//! exactly once and each reaction's job is added once. Then publish the
//! batch on PubSub (a hint for live views: a node that dies between commit
//! and publish leaves views to their next change). A batch whose consumers
//! fail is applied again event by event; an event that keeps failing is
//! set aside after [`MAX_ATTEMPTS`] (`failed_at`), logged, and skipped.

use std::{sync::Arc, time::Duration};

use uuid::Uuid;

use crate::{
    Kernel,
    db::{Backend, Stmt, Tx},
    db_run,
    events::{Consumers, Recorded},
    ids::OrgId,
    tx_run,
};

const BATCH: i64 = 500;
/// Attempts at an event whose consumers fail before it is set aside.
pub const MAX_ATTEMPTS: i64 = 5;

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    event_id: Uuid,
    org_id: OrgId,
    topic: String,
    kind: String,
    version: i64,
    payload: String,
    created_at: i64,
}

impl Row {
    fn recorded(&self) -> Recorded {
        Recorded {
            id: self.event_id,
            org: self.org_id,
            topic: self.topic.clone(),
            kind: self.kind.clone(),
            version: self.version.clamp(0, u32::MAX as i64) as u32,
            occurred_at: self.created_at,
            payload: serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// Relays events until `shutdown` resolves: woken by every commit (so events
/// go out within milliseconds), and every 250 ms in any case (events of
/// another node's commits).
pub async fn relay<C: Send + Sync + 'static>(
    kernel: Kernel,
    ctx: C,
    consumers: Arc<Consumers<C>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let commits = kernel.db.commits();
    loop {
        match relay_batch(&kernel, &ctx, &consumers).await {
            Ok(n) if n as i64 == BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "outbox relay failed; retrying"),
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = commits.notified() => {
                // Let a burst of commits gather into one batch.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

const SELECT: &str =
    "SELECT id, event_id, org_id, topic, kind, version, payload, created_at FROM outbox
                      WHERE delivered_at IS NULL AND failed_at IS NULL ORDER BY id LIMIT $1";

/// One relay round; the number of events delivered.
pub async fn relay_batch<C: Send + Sync + 'static>(
    kernel: &Kernel,
    ctx: &C,
    consumers: &Consumers<C>,
) -> Result<usize, sqlx::Error> {
    let (rows, mut tx) = claim(kernel, BATCH).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let recorded: Vec<Recorded> = rows.iter().map(Row::recorded).collect();
    let now = kernel.clock.now();
    let applied = deliver(&mut tx, ctx, consumers, &rows, &recorded, now).await;
    let delivered = match applied {
        Ok(()) => {
            tx.commit().await?;
            recorded
        }
        Err(e) => {
            drop(tx);
            tracing::warn!(error = %e, n = rows.len(), "an event batch failed; delivering event by event");
            one_by_one(kernel, ctx, consumers, &rows).await?
        }
    };
    let n = delivered.len();
    kernel.hub.publish_many(delivered).await;
    Ok(n)
}

/// Claims undelivered events in a transaction (on PostgreSQL with `SKIP
/// LOCKED`: another node's relay takes other rows; on SQLite, one node, the
/// write lock is taken only when there is something to deliver).
async fn claim(kernel: &Kernel, limit: i64) -> Result<(Vec<Row>, Tx), sqlx::Error> {
    match kernel.db.backend() {
        Backend::Postgres => {
            let mut tx = kernel.db.begin().await?;
            let sql = format!("{SELECT} FOR UPDATE SKIP LOCKED");
            let rows = tx_run!(&mut tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all(c).await)?;
            Ok((rows, tx))
        }
        Backend::Sqlite => {
            let rows: Vec<Row> =
                db_run!(&kernel.db, p => sqlx::query_as(SELECT).bind(limit).fetch_all(p).await)?;
            let tx = kernel.db.begin().await?;
            Ok((rows, tx))
        }
    }
}

async fn deliver<C: Send + Sync + 'static>(
    tx: &mut Tx,
    ctx: &C,
    consumers: &Consumers<C>,
    rows: &[Row],
    recorded: &[Recorded],
    now: i64,
) -> Result<(), sqlx::Error> {
    consumers.apply(ctx, tx, recorded).await?;
    let mut writes = consumers.reaction_jobs(recorded, now);
    writes.push(mark_delivered(tx.backend(), rows, now));
    tx.run_all(writes).await
}

/// Marks exactly these rows (others in the same id range may belong to
/// another node's batch).
fn mark_delivered(backend: Backend, rows: &[Row], now: i64) -> Stmt {
    let ids = serde_json::to_string(&rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into());
    let sql = match backend {
        Backend::Postgres => {
            "UPDATE outbox SET delivered_at = $1
             WHERE id IN (SELECT value::bigint FROM json_array_elements_text($2::json)) AND delivered_at IS NULL"
        }
        Backend::Sqlite => {
            "UPDATE outbox SET delivered_at = $1
             WHERE id IN (SELECT value FROM json_each($2)) AND delivered_at IS NULL"
        }
    };
    Stmt::new(sql).bind(now).bind(ids)
}

async fn one_by_one<C: Send + Sync + 'static>(
    kernel: &Kernel,
    ctx: &C,
    consumers: &Consumers<C>,
    rows: &[Row],
) -> Result<Vec<Recorded>, sqlx::Error> {
    let mut delivered = Vec::new();
    for row in rows {
        let (claimed, mut tx) = claim_one(kernel, row.id).await?;
        let Some(row) = claimed else { continue };
        let rec = row.recorded();
        let now = kernel.clock.now();
        match deliver(
            &mut tx,
            ctx,
            consumers,
            std::slice::from_ref(&row),
            std::slice::from_ref(&rec),
            now,
        )
        .await
        {
            Ok(()) => {
                tx.commit().await?;
                delivered.push(rec);
            }
            Err(e) => {
                drop(tx);
                set_aside(kernel, &row, &e.to_string()).await?;
            }
        }
    }
    Ok(delivered)
}

async fn claim_one(kernel: &Kernel, id: i64) -> Result<(Option<Row>, Tx), sqlx::Error> {
    let sql = match kernel.db.backend() {
        Backend::Postgres => "SELECT id, event_id, org_id, topic, kind, version, payload, created_at FROM outbox
                              WHERE id = $1 AND delivered_at IS NULL AND failed_at IS NULL FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "SELECT id, event_id, org_id, topic, kind, version, payload, created_at FROM outbox
                            WHERE id = $1 AND delivered_at IS NULL AND failed_at IS NULL",
    };
    let mut tx = kernel.db.begin().await?;
    let row = tx_run!(&mut tx, c => sqlx::query_as(sql).bind(id).fetch_optional(c).await)?;
    Ok((row, tx))
}

/// Counts a failed attempt; after the last one the event is set aside.
async fn set_aside(kernel: &Kernel, row: &Row, error: &str) -> Result<(), sqlx::Error> {
    let now = kernel.clock.now();
    let sql = "UPDATE outbox SET attempts = attempts + 1, last_error = $1,
                   failed_at = CASE WHEN attempts + 1 >= $2 THEN $3 ELSE NULL END
               WHERE id = $4";
    let _queued = kernel.db.serial_write().await;
    db_run!(&kernel.db, p => sqlx::query(sql).bind(error).bind(MAX_ATTEMPTS).bind(now).bind(row.id)
        .execute(p).await.map(|_| ()))?;
    tracing::error!(event = %row.event_id, kind = %row.kind, error, "an event's consumers failed");
    Ok(())
}

/// Deletes delivered events older than `age`.
pub async fn prune(kernel: &Kernel, age: Duration) -> Result<u64, sqlx::Error> {
    let before = kernel.clock.now() - crate::clock::micros(age);
    let sql = "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1";
    let _queued = kernel.db.serial_write().await;
    let r = db_run!(&kernel.db, p => sqlx::query(sql).bind(before).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(r)
}
