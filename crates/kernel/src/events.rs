//! Typed domain events.
//!
//! Every domain event is a Rust type that names itself (`order.paid`), has a
//! schema version and a serde payload. It is recorded in the outbox inside
//! the transaction of the change ([`emit`]), so none is lost and none is
//! invented by a rolled-back change. The relay (`outbox::relay`) hands each
//! recorded event to the consumers registered for its type, decoded back to
//! that type ([`Envelope`]), and publishes it on PubSub for live views.
//!
//! Consumers come in two kinds (see `docs/decisions.md`):
//! - **in the relay's transaction** ([`Consumers::on_commit`]): writes to the
//!   consuming slice's own tables (projections, derived state), committed
//!   with the event's delivery mark — applied exactly once;
//! - **as a durable job** ([`Consumers::reacts`]): outside effects (webhooks,
//!   e-mail), at least once, retried with backoff; the event id is the job's
//!   unique key and the handler's deduplication key.

use std::{collections::BTreeMap, sync::Arc};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::{
    db::{Stmt, Tx},
    ids::{EventId, OrgId},
};

/// A domain event: a fact a slice announces to the others.
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The event type as the outside world sees it: `order.paid`.
    const NAME: &'static str;
    /// The payload's schema version; bump it when the payload changes shape.
    const VERSION: u32 = 1;
    /// The tenant the event belongs to.
    fn org(&self) -> OrgId;
    /// The event (the occasion people buy tickets for) this is about, if
    /// any: its live views and devices listen on that event's topic.
    fn event(&self) -> Option<EventId> {
        None
    }
}

/// The PubSub topic of an org, or of one of its events. Every topic starts
/// with the org, so a tenant can never subscribe to another's.
pub fn topic(org: OrgId, event: Option<EventId>) -> String {
    match event {
        Some(e) => format!("org:{org}:event:{e}"),
        None => format!("org:{org}"),
    }
}

/// A decoded event with what the outbox knows about it. Built only from a
/// recorded event, so its id and org are the ones stored with the change.
#[derive(Clone, Debug)]
pub struct Envelope<E> {
    id: Uuid,
    org: OrgId,
    occurred_at: i64,
    version: u32,
    data: E,
}

impl<E> Envelope<E> {
    /// The event's id: the same on every delivery, for deduplication.
    pub fn id(&self) -> Uuid {
        self.id
    }
    pub fn org(&self) -> OrgId {
        self.org
    }
    /// When the change was made (microseconds).
    pub fn occurred_at(&self) -> i64 {
        self.occurred_at
    }
    pub fn version(&self) -> u32 {
        self.version
    }
    pub fn data(&self) -> &E {
        &self.data
    }
    pub fn into_data(self) -> E {
        self.data
    }
}

/// An event as stored in the outbox and as carried between nodes, not yet
/// decoded. Consumers never read its payload by key: they [`decode`] it.
///
/// [`decode`]: Recorded::decode
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recorded {
    pub id: Uuid,
    pub org: OrgId,
    pub topic: String,
    pub kind: String,
    pub version: u32,
    pub occurred_at: i64,
    pub payload: serde_json::Value,
    /// Set on delivery when the event came from another node through Redis
    /// (a node's own events need no following by its own hot tiers).
    #[serde(skip)]
    pub from_another_node: bool,
}

impl Recorded {
    /// The typed event, when this is one of type `E` (by name) and its
    /// payload decodes.
    pub fn decode<E: DomainEvent>(&self) -> Option<Envelope<E>> {
        if self.kind != E::NAME {
            return None;
        }
        match serde_json::from_value(self.payload.clone()) {
            Ok(data) => Some(Envelope {
                id: self.id,
                org: self.org,
                occurred_at: self.occurred_at,
                version: self.version,
                data,
            }),
            Err(e) => {
                tracing::error!(kind = %self.kind, event = %self.id, error = %e, "an event does not decode as its type");
                None
            }
        }
    }

    /// A not-yet-recorded event, for PubSub-only signals (no outbox row).
    pub fn signal<E: DomainEvent>(e: &E, at: i64) -> Recorded {
        Recorded {
            id: Uuid::now_v7(),
            org: e.org(),
            topic: topic(e.org(), e.event()),
            kind: E::NAME.to_string(),
            version: E::VERSION,
            occurred_at: at,
            payload: serde_json::to_value(e).unwrap_or(serde_json::Value::Null),
            from_another_node: false,
        }
    }
}

/// An event ready to be written into the outbox.
#[derive(Clone, Debug)]
pub struct Pending {
    pub id: Uuid,
    pub org: OrgId,
    pub topic: String,
    pub kind: &'static str,
    pub version: u32,
    pub payload: String,
    pub at: i64,
}

impl Pending {
    pub fn of<E: DomainEvent>(e: &E, at: i64) -> Result<Pending, serde_json::Error> {
        Ok(Pending {
            id: Uuid::now_v7(),
            org: e.org(),
            topic: topic(e.org(), e.event()),
            kind: E::NAME,
            version: E::VERSION,
            payload: serde_json::to_string(e)?,
            at,
        })
    }

    /// One statement recording every event, in order (ids follow it).
    /// Gives `events` fresh ids in the order of the slice, so the order in
    /// which a change announces its events is the order consumers see (ids
    /// are time-ordered; events built in another order get renumbered).
    pub fn in_order(events: &mut [Pending]) {
        for e in events {
            e.id = Uuid::now_v7();
        }
    }

    pub fn stmt_all(events: &[Pending]) -> Option<Stmt> {
        if events.is_empty() {
            return None;
        }
        let rows = events
            .iter()
            .map(|e| {
                vec![
                    e.id.into(),
                    e.org.into(),
                    e.topic.clone().into(),
                    e.kind.into(),
                    (e.version as i64).into(),
                    e.payload.clone().into(),
                    e.at.into(),
                ]
            })
            .collect();
        Some(Stmt::insert_rows(
            "INSERT INTO outbox (event_id, org_id, topic, kind, version, payload, created_at)",
            rows,
        ))
    }

    pub fn stmt(&self) -> Stmt {
        Stmt::new(
            "INSERT INTO outbox (event_id, org_id, topic, kind, version, payload, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(self.id)
        .bind(self.org)
        .bind(self.topic.clone())
        .bind(self.kind)
        .bind(self.version as i64)
        .bind(self.payload.clone())
        .bind(self.at)
    }
}

/// The statement that records `e` in the outbox, to run in the transaction
/// of the change it announces.
pub fn emit<E: DomainEvent>(e: &E, at: i64) -> Result<Stmt, sqlx::Error> {
    Pending::of(e, at)
        .map(|p| p.stmt())
        .map_err(|err| sqlx::Error::Encode(Box::new(err)))
}

/// Records many events inside `tx`: one statement on PostgreSQL.
pub async fn record_many(tx: &mut Tx, events: &[Pending]) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    if let Tx::Pg(t, _) = tx {
        let sql = "INSERT INTO outbox (event_id, org_id, topic, kind, version, payload, created_at)
                   SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[])";
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        let orgs: Vec<Uuid> = events.iter().map(|e| e.org.0).collect();
        let topics: Vec<&str> = events.iter().map(|e| e.topic.as_str()).collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind).collect();
        let versions: Vec<i64> = events.iter().map(|e| e.version as i64).collect();
        let payloads: Vec<&str> = events.iter().map(|e| e.payload.as_str()).collect();
        let ats: Vec<i64> = events.iter().map(|e| e.at).collect();
        sqlx::query(sql)
            .bind(&ids)
            .bind(&orgs)
            .bind(&topics)
            .bind(&kinds)
            .bind(&versions)
            .bind(&payloads)
            .bind(&ats)
            .execute(&mut **t)
            .await?;
        return Ok(());
    }
    match Pending::stmt_all(events) {
        Some(stmt) => tx.run_all(vec![stmt]).await,
        None => Ok(()),
    }
}

/// What an in-transaction consumer returns.
pub type TxFuture<'a> = BoxFuture<'a, Result<(), sqlx::Error>>;

type ApplyFn<C> =
    Arc<dyn for<'a> Fn(&'a C, &'a mut Tx, &'a [Recorded]) -> TxFuture<'a> + Send + Sync>;
type ReactFn<C> =
    Arc<dyn Fn(C, Recorded) -> BoxFuture<'static, crate::jobs::HandlerResult> + Send + Sync>;

struct OnCommit<C> {
    name: &'static str,
    apply: ApplyFn<C>,
}

/// A consumer that runs as a durable job per event.
pub struct Reaction<C> {
    pub name: &'static str,
    pub kind: &'static str,
    pub run: ReactFn<C>,
}

/// The consumers every slice registered, by event type; `C` is the
/// application context handed to them.
pub struct Consumers<C> {
    on_commit: BTreeMap<&'static str, Vec<OnCommit<C>>>,
    reactions: BTreeMap<&'static str, Vec<Arc<Reaction<C>>>>,
}

impl<C> Default for Consumers<C> {
    fn default() -> Self {
        Consumers {
            on_commit: BTreeMap::new(),
            reactions: BTreeMap::new(),
        }
    }
}

/// The job kind that carries events to a reaction named `name`.
pub fn reaction_job_kind(name: &str) -> String {
    format!("event:{name}")
}

impl<C: Send + Sync + 'static> Consumers<C> {
    /// Runs `f` inside the relay's transaction for every batch of `E`
    /// events: its writes commit with the events' delivery mark, so each
    /// event is applied exactly once. `f` must only write to its own slice's
    /// tables, and must be deterministic for a batch (a failed batch is
    /// applied again event by event).
    pub fn on_commit<E, F>(&mut self, name: &'static str, f: F)
    where
        E: DomainEvent,
        F: for<'a> Fn(&'a C, &'a mut Tx, Vec<Envelope<E>>) -> TxFuture<'a> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let apply: ApplyFn<C> = Arc::new(move |ctx: &C, tx: &mut Tx, rows: &[Recorded]| {
            let events: Vec<Envelope<E>> = rows.iter().filter_map(Recorded::decode::<E>).collect();
            let f = f.clone();
            Box::pin(async move {
                if events.is_empty() {
                    return Ok(());
                }
                f(ctx, tx, events).await
            })
        });
        self.on_commit
            .entry(E::NAME)
            .or_default()
            .push(OnCommit { name, apply });
    }

    /// Runs `f` as a durable job for every `E` event: at least once, retried
    /// with backoff; the event id ([`Envelope::id`]) deduplicates.
    pub fn reacts<E, F, Fut>(&mut self, name: &'static str, f: F)
    where
        E: DomainEvent,
        C: Clone,
        F: Fn(C, Envelope<E>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = crate::jobs::HandlerResult> + Send + 'static,
    {
        let f = Arc::new(f);
        let kind: &'static str = Box::leak(reaction_job_kind(name).into_boxed_str());
        let run: ReactFn<C> = Arc::new(move |ctx: C, rec: Recorded| {
            let f = f.clone();
            Box::pin(async move {
                let Some(env) = rec.decode::<E>() else {
                    return Err(crate::jobs::JobError::Discard(format!(
                        "event {} is not a {}",
                        rec.id,
                        E::NAME
                    )));
                };
                f(ctx, env).await
            })
        });
        self.reactions
            .entry(E::NAME)
            .or_default()
            .push(Arc::new(Reaction { name, kind, run }));
    }

    /// Every reaction, to register their job kinds with the worker.
    pub fn reactions(&self) -> impl Iterator<Item = &Arc<Reaction<C>>> {
        self.reactions.values().flatten()
    }

    /// Applies the in-transaction consumers of `rows`, in the order they
    /// were registered.
    pub async fn apply(&self, ctx: &C, tx: &mut Tx, rows: &[Recorded]) -> Result<(), sqlx::Error> {
        for (kind, consumers) in &self.on_commit {
            let of_kind: Vec<Recorded> = rows.iter().filter(|r| r.kind == *kind).cloned().collect();
            if of_kind.is_empty() {
                continue;
            }
            for c in consumers {
                (c.apply)(ctx, tx, &of_kind).await.map_err(|e| {
                    tracing::warn!(consumer = c.name, kind, error = %e, "an event consumer failed");
                    e
                })?;
            }
        }
        Ok(())
    }

    /// The jobs that carry `rows` to their reactions (unique per event and
    /// reaction, so a re-relayed event adds no second job).
    pub fn reaction_jobs(&self, rows: &[Recorded], now: i64) -> Vec<Stmt> {
        let mut out = Vec::new();
        for row in rows {
            let Some(reactions) = self.reactions.get(row.kind.as_str()) else {
                continue;
            };
            for r in reactions {
                let payload = serde_json::to_value(row).unwrap_or(serde_json::Value::Null);
                out.push(
                    crate::jobs::NewJob::new(crate::jobs::EVENTS_QUEUE, r.kind, payload)
                        .unique(row.id.to_string())
                        .stmt(now),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
    struct Paid {
        org: OrgId,
        order: Uuid,
    }
    impl DomainEvent for Paid {
        const NAME: &'static str = "test.paid";
        fn org(&self) -> OrgId {
            self.org
        }
    }

    #[test]
    fn an_event_decodes_only_as_its_own_type() {
        let e = Paid {
            org: OrgId::new(),
            order: Uuid::now_v7(),
        };
        let rec = Recorded::signal(&e, 7);
        assert_eq!(rec.topic, format!("org:{}", e.org));
        let env = rec.decode::<Paid>().expect("decodes");
        assert_eq!(env.data(), &e);
        assert_eq!((env.org(), env.occurred_at(), env.version()), (e.org, 7, 1));
        let mut other = rec.clone();
        other.kind = "test.other".into();
        assert!(other.decode::<Paid>().is_none());
        let mut broken = rec;
        broken.payload = serde_json::json!({"org": 1});
        assert!(broken.decode::<Paid>().is_none());
    }
}
