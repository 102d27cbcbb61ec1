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
/// How long the relay lets commits gather before a round: the delay live
/// views see, against one relay transaction per commit under load.
const GATHER: Duration = Duration::from_millis(50);
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
            from_another_node: false,
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
                // Let a burst of commits gather into one batch: under load a
                // relay round (and its commit) per GATHER, not per commit.
                tokio::time::sleep(GATHER).await;
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
            // Now, not on the connection's next use: its row locks would
            // make the one-by-one claims below skip the very rows they retry.
            let _ = tx.rollback().await;
            tracing::warn!(error = %e, n = rows.len(), "an event batch failed; delivering event by event");
            one_by_one(kernel, ctx, consumers, &rows).await?
        }
    };
    let n = delivered.len();
    if n > 0 {
        // Jobs committed with the batch (reactions, consumers' own).
        crate::jobs::wake_marked();
    }
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
    if !writes.is_empty() {
        crate::jobs::wake_after_commit(crate::jobs::EVENTS_QUEUE);
    }
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
                let _ = tx.rollback().await;
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

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    };

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::{
        Clock, Db, DomainEvent, Envelope,
        events::{TxFuture, emit},
        ids::OrgId,
        jobs::{EVENTS_QUEUE, Worker},
        pubsub::Hub,
        ratelimit::Limits,
    };

    #[derive(Clone, Debug, Serialize, Deserialize)]
    struct Counted {
        org: OrgId,
        n: i64,
    }
    impl DomainEvent for Counted {
        const NAME: &'static str = "test.counted";
        fn org(&self) -> OrgId {
            self.org
        }
    }

    /// A kernel on SQLite, or on a fresh PostgreSQL database when
    /// VOELGOED_TEST_DATABASE_URL is set and `pg` is asked for.
    async fn kernel(pg: bool) -> Option<(Kernel, crate::db::TestDb)> {
        let test = crate::db::TestDb::new(pg).await?;
        let db = Db::connect(&test.config).await.unwrap();
        db.migrate().await.unwrap();
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        Some((
            Kernel {
                master: Arc::new(crate::secrets::MasterKey::random()),
                db,
                warm: None,
                hub: Hub::local(),
                clock: Clock::manual_from_now(),
                config: Arc::new(test.config.clone()),
                limits: Limits::new(10, 0),
                shutdown,
                load: Default::default(),
            },
            test,
        ))
    }

    /// The in-transaction consumer of the tests: counts events into a
    /// table of its own, and fails on the event numbered 13.
    fn count<'a>(_: &'a (), tx: &'a mut Tx, events: Vec<Envelope<Counted>>) -> TxFuture<'a> {
        Box::pin(async move {
            for e in events {
                if e.data().n == 13 {
                    return Err(sqlx::Error::Protocol("thirteen".into()));
                }
                Stmt::new("INSERT INTO idempotency_keys (org_id, scope, key, request_hash, created_at) VALUES ($1, 'counted', $2, $3, 0)")
                    .bind(e.org())
                    .bind(e.id().to_string())
                    .bind(vec![0u8])
                    .execute_in(tx)
                    .await?;
            }
            Ok(())
        })
    }

    async fn counted(k: &Kernel) -> i64 {
        db_run!(&k.db, p => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM idempotency_keys WHERE scope = 'counted'").fetch_one(p).await).unwrap()
    }

    async fn emit_in_tx(k: &Kernel, org: OrgId, ns: &[i64], commit: bool) {
        let mut tx = k.db.begin().await.unwrap();
        for n in ns {
            emit(&Counted { org, n: *n }, k.clock.now())
                .unwrap()
                .execute_in(&mut tx)
                .await
                .unwrap();
        }
        if commit {
            tx.commit().await.unwrap();
        }
    }

    async fn events_reach_their_consumers_once(pg: bool) {
        let Some((k, test)) = kernel(pg).await else {
            return;
        };
        let org = OrgId::new();
        let reacted: Arc<Mutex<Vec<i64>>> = Arc::default();
        let mut consumers = Consumers::<()>::default();
        consumers.on_commit::<Counted, _>("test.count", count);
        {
            let reacted = reacted.clone();
            consumers.reacts::<Counted, _, _>("test.react", move |(), e: Envelope<Counted>| {
                let reacted = reacted.clone();
                async move {
                    reacted.lock().unwrap().push(e.data().n);
                    Ok(())
                }
            });
        }
        // A rolled-back change announces nothing.
        emit_in_tx(&k, org, &[100, 101], false).await;
        // Committed ones, with a poison event among them.
        emit_in_tx(&k, org, &[1, 2, 13, 3], true).await;
        let mut rx = k.hub.subscribe(&crate::events::topic(org, None));
        let mut delivered = 0;
        for _ in 0..(MAX_ATTEMPTS + 2) {
            delivered += relay_batch(&k, &(), &consumers).await.unwrap();
        }
        assert_eq!(delivered, 3, "three delivered, the poison one set aside");
        assert_eq!(counted(&k).await, 3, "applied exactly once each");
        let failed: Vec<(i64, Option<i64>)> = db_run!(&k.db, p => sqlx::query_as("SELECT attempts, failed_at FROM outbox WHERE delivered_at IS NULL").fetch_all(p).await).unwrap();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].0, MAX_ATTEMPTS, "{failed:?}");
        assert!(failed[0].1.is_some(), "set aside: {failed:?}");
        // PubSub got the typed events.
        let mut seen = Vec::new();
        while let Ok(m) = rx.try_recv() {
            seen.push(m.decode::<Counted>().expect("typed").data().n);
        }
        seen.sort();
        assert_eq!(seen, vec![1, 2, 3]);
        // Each reaction is a job per event: three, once each, however often
        // the relay ran.
        let worker = {
            let mut w = Worker::<()>::new();
            for r in consumers.reactions() {
                let run = r.run.clone();
                w = w.handle(r.kind, move |(), p| {
                    let run = run.clone();
                    async move {
                        let rec: Recorded = serde_json::from_value(p).map_err(|e| e.to_string())?;
                        run((), rec).await
                    }
                });
            }
            w
        };
        let runs = AtomicUsize::new(0);
        while worker
            .run_one(&(), &k.db, &k.clock, EVENTS_QUEUE)
            .await
            .unwrap()
        {
            runs.fetch_add(1, Ordering::SeqCst);
        }
        let mut r = reacted.lock().unwrap().clone();
        r.sort();
        assert_eq!(r, vec![1, 2, 3]);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        k.db.close().await;
        test.remove().await;
    }

    /// Orgs whose events make [`count_then_stall`] stop after applying
    /// them, as if the process died before the relay marked them delivered.
    static STALLING: std::sync::LazyLock<dashmap::DashMap<OrgId, Arc<tokio::sync::Notify>>> =
        std::sync::LazyLock::new(dashmap::DashMap::new);

    fn count_then_stall<'a>(
        c: &'a (),
        tx: &'a mut Tx,
        events: Vec<Envelope<Counted>>,
    ) -> TxFuture<'a> {
        Box::pin(async move {
            let org = events.first().map(|e| e.org());
            count(c, tx, events).await?;
            if let Some(applied) = org.and_then(|o| STALLING.get(&o).map(|n| n.clone())) {
                applied.notify_one();
                std::future::pending::<()>().await;
            }
            Ok(())
        })
    }

    /// The relay applies a batch in its transaction and dies before the
    /// commit that marks it delivered: nothing of it stays, and the next
    /// relay delivers every event once.
    async fn a_relay_that_dies_mid_batch_leaves_nothing_and_the_next_delivers_once(pg: bool) {
        let Some((k, test)) = kernel(pg).await else {
            return;
        };
        let org = OrgId::new();
        let mut consumers = Consumers::<()>::default();
        consumers.on_commit::<Counted, _>("test.count", count_then_stall);
        consumers.reacts::<Counted, _, _>("test.react", |(), _| async { Ok(()) });
        let consumers = Arc::new(consumers);
        emit_in_tx(&k, org, &[1, 2, 3], true).await;

        let applied = Arc::new(tokio::sync::Notify::new());
        STALLING.insert(org, applied.clone());
        let relay = {
            let (k, consumers) = (k.clone(), consumers.clone());
            tokio::spawn(async move { relay_batch(&k, &(), &consumers).await })
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), applied.notified())
            .await
            .expect("the consumer ran");
        relay.abort();
        assert!(relay.await.unwrap_err().is_cancelled(), "the relay died");
        STALLING.remove(&org);
        assert_eq!(counted(&k).await, 0, "the dead relay's work rolled back");

        let mut delivered = 0;
        for _ in 0..5 {
            delivered += relay_batch(&k, &(), &consumers).await.unwrap();
        }
        assert_eq!(delivered, 3);
        assert_eq!(counted(&k).await, 3, "each event applied once");
        let jobs: i64 = db_run!(&k.db, p => sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE queue = 'events'").fetch_one(p).await).unwrap();
        assert_eq!(jobs, 3, "one reaction job per event");
        let undelivered: i64 = db_run!(&k.db, p => sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL").fetch_one(p).await).unwrap();
        assert_eq!(undelivered, 0);
        k.db.close().await;
        test.remove().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_relay_that_dies_mid_batch_on_sqlite() {
        a_relay_that_dies_mid_batch_leaves_nothing_and_the_next_delivers_once(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_relay_that_dies_mid_batch_on_postgres() {
        a_relay_that_dies_mid_batch_leaves_nothing_and_the_next_delivers_once(true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_reach_their_consumers_once_on_sqlite() {
        events_reach_their_consumers_once(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_reach_their_consumers_once_on_postgres() {
        events_reach_their_consumers_once(true).await;
    }
}
