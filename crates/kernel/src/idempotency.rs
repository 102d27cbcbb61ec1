//! `Idempotency-Key` (API.md): the same key with the same request within
//! 24 h answers the first reply again, byte for byte; with another request,
//! 422 `idempotency_conflict`; while the first is in flight, 409.
//!
//! A request [`begin`]s by claiming its key with a claim token of its own.
//! It stores its reply with [`Claim::complete`] (or, for a change, inside
//! the change's transaction after [`Claim::still_held`]): both are
//! conditional on the claim token, so a claim taken over after it was
//! abandoned (no reply after [`ABANDONED_AFTER`]) can never overwrite the
//! new holder's reply, and a change whose claim was lost writes nothing.

use std::time::Duration;

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    Tx,
    clock::{Clock, micros},
    db::{Backend, Db, Stmt},
    db_run,
    error::{ApiError, FieldError},
    ids::OrgId,
    tx_run,
};

/// How long a key answers with its first reply.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// A claim with no reply after this long is taken to be abandoned (its
/// request died) and may be taken over by a retry.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(60);

/// A client's `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    pub const HEADER: &'static str = "idempotency-key";

    pub fn parse(s: &str) -> Result<Key, String> {
        if s.is_empty() || s.len() > 255 {
            return Err("must be 1 to 255 characters".into());
        }
        if !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err("must be visible ASCII characters".into());
        }
        Ok(Key(s.to_string()))
    }

    /// The key of a request, if it sent one; 422 naming the header when it
    /// is malformed.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Key>, ApiError> {
        let Some(v) = headers.get(Self::HEADER) else {
            return Ok(None);
        };
        let text = v.to_str().map_err(|_| {
            ApiError::validation(vec![FieldError::new(
                "Idempotency-Key",
                "must be visible ASCII characters",
            )])
        })?;
        Key::parse(text)
            .map(Some)
            .map_err(|m| ApiError::validation(vec![FieldError::new("Idempotency-Key", m)]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What makes two requests "the same": a SHA-256 over their parts (each
/// length-prefixed, so parts cannot run into each other).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint(Vec<u8>);

impl Fingerprint {
    /// A request of an id (its path's) and a JSON body: equal bodies give
    /// equal fingerprints whatever the order of their members.
    pub fn of_json(id: &[u8], body: &serde_json::Value) -> Fingerprint {
        Fingerprint::of(&[id, canonical_json(body).as_bytes()])
    }

    pub fn of(parts: &[&[u8]]) -> Fingerprint {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p);
        }
        Fingerprint(h.finalize().to_vec())
    }
}

/// `v` as JSON text with every object's members in key order (serde_json
/// keeps the order they came in when a dependency asks it to preserve it).
fn canonical_json(v: &serde_json::Value) -> String {
    use serde_json::Value;
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut members: Vec<_> = m.iter().collect();
                members.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (k, v)) in members.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

/// A reply stored under a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub status: u16,
    pub body: String,
}

/// What a request finds when it presents its key.
#[derive(Debug)]
pub enum Begin {
    /// The key is this request's: go ahead, then complete the claim.
    Claimed(Claim),
    /// The first request's reply, to send again.
    Replay(Stored),
    /// The first request with this key is still being processed.
    InFlight,
    /// The key was used with another request.
    Conflict,
}

/// This request's hold on a key.
#[derive(Clone, Debug)]
pub struct Claim {
    org: OrgId,
    scope: &'static str,
    key: String,
    token: Uuid,
}

#[derive(sqlx::FromRow)]
struct Row {
    request_hash: Vec<u8>,
    status_code: Option<i32>,
    response: Option<String>,
    created_at: i64,
}

impl Row {
    /// The key's row, if it has one.
    async fn of(db: &Db, org: OrgId, scope: &str, key: &Key) -> Result<Option<Row>, sqlx::Error> {
        let select = "SELECT request_hash, status_code, response, created_at FROM idempotency_keys
                      WHERE org_id = $1 AND scope = $2 AND key = $3";
        db_run!(db, p => sqlx::query_as(select).bind(org).bind(scope).bind(&key.0).fetch_optional(p).await)
    }

    fn expired(&self, now: i64) -> bool {
        now - self.created_at > micros(RETENTION)
    }

    /// Past its retention, or a claim left without a reply: the key may
    /// be had again.
    fn stale(&self, now: i64) -> bool {
        self.expired(now)
            || (self.status_code.is_none() && now - self.created_at > micros(ABANDONED_AFTER))
    }

    /// Used with another request (and not past its retention).
    fn conflicts(&self, now: i64, fingerprint: &Fingerprint) -> bool {
        !self.expired(now) && self.request_hash != fingerprint.0
    }

    /// The first request's reply; `None` while it is in flight.
    fn reply(self) -> Option<Stored> {
        match (self.status_code, self.response) {
            (Some(status), Some(body)) => Some(Stored {
                status: u16::try_from(status).unwrap_or(500),
                body,
            }),
            _ => None,
        }
    }
}

/// Claims `key` (within `scope`, e.g. `store.checkout`) for a request.
pub async fn begin(
    db: &Db,
    clock: &Clock,
    org: OrgId,
    scope: &'static str,
    key: &Key,
    fingerprint: &Fingerprint,
) -> Result<Begin, sqlx::Error> {
    for _ in 0..5 {
        let now = clock.now();
        let token = Uuid::now_v7();
        let claim = Claim {
            org,
            scope,
            key: key.0.clone(),
            token,
        };
        let insert = std::sync::Arc::new(
            Stmt::new(
                "INSERT INTO idempotency_keys (org_id, scope, key, request_hash, claim_id, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(org)
            .bind(scope)
            .bind(key.0.clone())
            .bind(fingerprint.0.clone())
            .bind(token)
            .bind(now),
        );
        // Group-committed with other writes waiting at the same moment.
        let inserted = db
            .transact_grouped(Box::new(move |tx| {
                let insert = insert.clone();
                Box::pin(async move { Ok(insert.execute_in(tx).await? == 1) })
            }))
            .await?;
        if inserted {
            return Ok(Begin::Claimed(claim));
        }
        let Some(row) = Row::of(db, org, scope, key).await? else {
            continue;
        };
        if row.conflicts(now, fingerprint) {
            return Ok(Begin::Conflict);
        }
        if row.stale(now) {
            // Take the key over, only if nobody else did meanwhile.
            let take =
                "UPDATE idempotency_keys SET request_hash = $1, claim_id = $2, created_at = $3,
                            status_code = NULL, response = NULL
                        WHERE org_id = $4 AND scope = $5 AND key = $6 AND created_at = $7";
            let taken = {
                let _queued = db.serial_write().await;
                db_run!(db, p => sqlx::query(take).bind(&fingerprint.0).bind(token).bind(now)
                    .bind(org).bind(scope).bind(&key.0).bind(row.created_at)
                    .execute(p).await.map(|r| r.rows_affected()))?
            };
            if taken == 1 {
                return Ok(Begin::Claimed(claim));
            }
            continue;
        }
        return Ok(match row.reply() {
            Some(stored) => Begin::Replay(stored),
            None => Begin::InFlight,
        });
    }
    Err(sqlx::Error::Protocol(
        "an idempotency key kept changing hands".into(),
    ))
}

impl Claim {
    /// Scope, key and claim token: for a statement that must act only while
    /// this request holds the claim (`... AND EXISTS (SELECT 1 FROM
    /// idempotency_keys WHERE org_id = .. AND scope = .. AND key = .. AND
    /// claim_id = .. AND status_code IS NULL)`, locked on PostgreSQL).
    pub fn parts(&self) -> (&'static str, &str, Uuid) {
        (self.scope, &self.key, self.token)
    }

    /// Stores the reply, only while this request still holds the claim.
    /// False when the claim was lost (taken over after it was abandoned).
    pub async fn complete(&self, db: &Db, status: u16, body: &str) -> Result<bool, sqlx::Error> {
        let stmt = self.complete_stmt(status, body.to_string());
        let _queued = db.serial_write().await;
        Ok(stmt.execute(db).await? == 1)
    }

    /// The statement that stores the reply, conditional on the claim: to run
    /// inside the change's transaction after [`Claim::still_held`].
    pub fn complete_stmt(&self, status: u16, body: String) -> Stmt {
        Stmt::new(
            "UPDATE idempotency_keys SET status_code = $1, response = $2
             WHERE org_id = $3 AND scope = $4 AND key = $5 AND claim_id = $6 AND status_code IS NULL",
        )
        .bind(status as i64)
        .bind(body)
        .bind(self.org)
        .bind(self.scope)
        .bind(self.key.clone())
        .bind(self.token)
    }

    /// Inside the change's transaction: true while this request holds the
    /// claim and no reply is stored. On PostgreSQL the key's row is locked
    /// until the transaction ends, so a takeover waits for it; on SQLite the
    /// transaction holds the single writer.
    pub async fn still_held(&self, tx: &mut Tx) -> Result<bool, sqlx::Error> {
        let sql = match tx.backend() {
            Backend::Postgres => {
                "SELECT 1 FROM idempotency_keys WHERE org_id = $1 AND scope = $2 AND key = $3
                 AND claim_id = $4 AND status_code IS NULL FOR UPDATE"
            }
            Backend::Sqlite => {
                "SELECT 1 FROM idempotency_keys WHERE org_id = $1 AND scope = $2 AND key = $3
                 AND claim_id = $4 AND status_code IS NULL"
            }
        };
        let found: Option<i32> = tx_run!(tx, c => sqlx::query_scalar(sql).bind(self.org).bind(self.scope)
            .bind(&self.key).bind(self.token).fetch_optional(c).await)?;
        Ok(found.is_some())
    }

    /// Gives the key up (nothing was done: a retry may go ahead at once).
    pub async fn release(self, db: &Db) -> Result<(), sqlx::Error> {
        let sql = "DELETE FROM idempotency_keys WHERE org_id = $1 AND scope = $2 AND key = $3
                   AND claim_id = $4 AND status_code IS NULL";
        let _queued = db.serial_write().await;
        db_run!(db, p => sqlx::query(sql).bind(self.org).bind(self.scope).bind(&self.key).bind(self.token)
            .execute(p).await.map(|_| ()))
    }
}

/// What a key holds, looked up without claiming it. For a change that is
/// once-only by itself (a hold is checked out at most once): it does not
/// claim its key first, but writes its reply as the key's row in its own
/// transaction ([`record_stmt`]); when the change cannot happen (already
/// made, or the key was used), the key says what to answer.
#[derive(Debug)]
pub enum Found {
    /// Nobody holds the key: a reply past its retention, or a claim
    /// abandoned, is forgotten on the way.
    Free,
    /// The first request's reply, to send again.
    Replay(Stored),
    /// Claimed and not yet answered.
    InFlight,
    /// The key was used with another request.
    Conflict,
}

/// What the key holds for this request.
pub async fn find(db: &Db, clock: &Clock, at: Under<'_>) -> Result<Found, sqlx::Error> {
    let Under {
        org,
        scope,
        key,
        fingerprint,
    } = at;
    let Some(row) = Row::of(db, org, scope, key).await? else {
        return Ok(Found::Free);
    };
    let now = clock.now();
    if row.conflicts(now, fingerprint) {
        return Ok(Found::Conflict);
    }
    if row.stale(now) {
        let forget = "DELETE FROM idempotency_keys
                      WHERE org_id = $1 AND scope = $2 AND key = $3 AND created_at = $4";
        let _queued = db.serial_write().await;
        db_run!(db, p => sqlx::query(forget).bind(org).bind(scope).bind(&key.0).bind(row.created_at)
            .execute(p).await.map(|_| ()))?;
        return Ok(Found::Free);
    }
    Ok(match row.reply() {
        Some(stored) => Found::Replay(stored),
        None => Found::InFlight,
    })
}

/// A request's key within its scope, and what makes the request itself:
/// where [`record_stmt`] and [`record`] keep a reply, and [`find`] looks.
#[derive(Clone, Copy, Debug)]
pub struct Under<'a> {
    pub org: OrgId,
    pub scope: &'static str,
    pub key: &'a Key,
    pub fingerprint: &'a Fingerprint,
}

fn reply_row(sql: &'static str, at: Under<'_>, status: u16, body: String, now: i64) -> Stmt {
    Stmt::new(sql)
        .bind(at.org)
        .bind(at.scope)
        .bind(at.key.0.clone())
        .bind(at.fingerprint.0.clone())
        .bind(now)
        .bind(status as i64)
        .bind(body)
}

/// The reply as the key's new row, for the change's own transaction. If the
/// key was used meanwhile (by any request), the insert fails as a unique
/// violation and the change with it: the caller then [`find`]s the key.
pub fn record_stmt(at: Under<'_>, status: u16, body: String, now: i64) -> Stmt {
    reply_row(
        "INSERT INTO idempotency_keys (org_id, scope, key, request_hash, claim_id, created_at, status_code, response)
         VALUES ($1, $2, $3, $4, NULL, $5, $6, $7)",
        at,
        status,
        body,
        now,
    )
}

/// Stores the reply of a request that changed nothing (a client error: the
/// same request would fail the same way), unless the key is taken.
pub async fn record(
    db: &Db,
    at: Under<'_>,
    status: u16,
    body: String,
    now: i64,
) -> Result<(), sqlx::Error> {
    let stmt = reply_row(
        "INSERT INTO idempotency_keys (org_id, scope, key, request_hash, claim_id, created_at, status_code, response)
         VALUES ($1, $2, $3, $4, NULL, $5, $6, $7) ON CONFLICT DO NOTHING",
        at,
        status,
        body,
        now,
    );
    db.write_grouped(vec![stmt]).await
}

/// Forgets keys past their retention.
pub async fn prune(db: &Db, clock: &Clock) -> Result<u64, sqlx::Error> {
    let before = clock.now() - micros(RETENTION) - micros(Duration::from_secs(3600));
    let _queued = db.serial_write().await;
    db_run!(db, p => sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1").bind(before)
        .execute(p).await.map(|r| r.rows_affected()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    async fn sqlite() -> (Db, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("vg-idem-{}", Uuid::now_v7()));
        let db = Db::connect(&Config {
            data_dir: dir.clone(),
            ..Config::default()
        })
        .await
        .unwrap();
        db.migrate().await.unwrap();
        (db, dir)
    }

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(Key::parse("order-42").is_ok());
        assert!(Key::parse("").is_err());
        assert!(Key::parse(&"k".repeat(256)).is_err());
        assert!(Key::parse("has space").is_err());
        assert_ne!(
            Fingerprint::of(&[b"ab", b"c"]),
            Fingerprint::of(&[b"a", b"bc"])
        );
        // Members in another order are the same body; other values are not.
        let a: serde_json::Value = serde_json::from_str(
            r#"{"reason":"","amount_cents":1,"x":{"b":[1,{"d":1,"c":2}],"a":null}}"#,
        )
        .unwrap();
        let b: serde_json::Value = serde_json::from_str(
            r#"{"x":{"a":null,"b":[1,{"c":2,"d":1}]},"amount_cents":1,"reason":""}"#,
        )
        .unwrap();
        assert_eq!(
            Fingerprint::of_json(b"o", &a),
            Fingerprint::of_json(b"o", &b)
        );
        let c: serde_json::Value =
            serde_json::from_str(r#"{"reason":"","amount_cents":2}"#).unwrap();
        assert_ne!(
            Fingerprint::of_json(b"o", &a),
            Fingerprint::of_json(b"o", &c)
        );
        assert_ne!(
            Fingerprint::of_json(b"o", &a),
            Fingerprint::of_json(b"p", &a)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_takeover_of_an_abandoned_claim_cannot_be_overwritten_by_the_first_request() {
        let (db, dir) = sqlite().await;
        let clock = Clock::manual_from_now();
        let org = OrgId::new();
        let key = Key::parse("k-1").unwrap();
        let fp = Fingerprint::of(&[b"body"]);
        let Begin::Claimed(first) = begin(&db, &clock, org, "t", &key, &fp).await.unwrap() else {
            panic!("the first request claims the key");
        };
        assert!(matches!(
            begin(&db, &clock, org, "t", &key, &fp).await.unwrap(),
            Begin::InFlight
        ));
        assert!(matches!(
            begin(&db, &clock, org, "t", &key, &Fingerprint::of(&[b"other"]))
                .await
                .unwrap(),
            Begin::Conflict
        ));
        // The first request stalls past the abandonment limit; a retry takes over.
        clock.advance(ABANDONED_AFTER + Duration::from_secs(1));
        let Begin::Claimed(second) = begin(&db, &clock, org, "t", &key, &fp).await.unwrap() else {
            panic!("an abandoned claim is taken over");
        };
        assert!(second.complete(&db, 201, "second").await.unwrap());
        // The first request wakes up: its reply is not stored.
        assert!(!first.complete(&db, 201, "first").await.unwrap());
        match begin(&db, &clock, org, "t", &key, &fp).await.unwrap() {
            Begin::Replay(s) => assert_eq!(
                s,
                Stored {
                    status: 201,
                    body: "second".into()
                }
            ),
            other => panic!("expected the second reply, got {other:?}"),
        }
        // A day later the key is free again.
        clock.advance(RETENTION + Duration::from_secs(1));
        assert!(matches!(
            begin(&db, &clock, org, "t", &key, &Fingerprint::of(&[b"new"]))
                .await
                .unwrap(),
            Begin::Claimed(_)
        ));
        db.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
