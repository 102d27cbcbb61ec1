//! The audit log (ARCHITECTURE.md guardrails: who changed what, provably).
//!
//! A change made by a user, API key or device adds an [`Entry`] to the
//! writes of its own transaction, so the record and the change commit or
//! vanish together. Entries are written unsealed; the sealer ([`seal`])
//! links each org's entries into a SHA-256 hash chain in commit order
//! (`seq`, `prev_hash`, `hash`, and the org's head in `audit_heads`), so
//! that an entry edited or deleted after sealing is found by [`verify`].
//! The request's id and client address come from the [`RequestContext`] the
//! server sets around every request.

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    db::{Db, Stmt},
    db_run, tx_run,
};

/// What the server knows about the request a change is made in.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    pub request_id: Option<String>,
    pub client_ip: Option<String>,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// Runs `f` with `ctx` as the current request's context.
pub async fn with_context<F: std::future::Future>(ctx: RequestContext, f: F) -> F::Output {
    CONTEXT.scope(ctx, f).await
}

/// The current request's context (empty outside a request: jobs, the
/// command line).
pub fn context() -> RequestContext {
    CONTEXT.try_with(|c| c.clone()).unwrap_or_default()
}

/// One audited change.
#[derive(Clone, Debug)]
pub struct Entry {
    pub org: Uuid,
    /// `user`, `api_key`, `device` or `operator`.
    pub actor_kind: &'static str,
    pub actor_id: Option<String>,
    /// What was done: `event.create`, `webhook.rotate_secret`, ...
    pub action: &'static str,
    pub object_type: &'static str,
    pub object_id: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl Entry {
    pub fn object(mut self, id: impl ToString) -> Entry {
        self.object_id = Some(id.to_string());
        self
    }

    pub fn before(mut self, v: impl Serialize) -> Entry {
        self.before = serde_json::to_value(v).ok();
        self
    }

    pub fn after(mut self, v: impl Serialize) -> Entry {
        self.after = serde_json::to_value(v).ok();
        self
    }

    /// The insert, for the change's own transaction.
    pub fn stmt(&self, now: i64) -> Stmt {
        Stmt::insert_rows(INSERT_HEAD, vec![self.row(&context(), now)])
    }

    /// The entry's values for [`stmt_many`], with the context of the
    /// request that made the change (captured there: a batch is written
    /// from another task).
    pub fn row(&self, ctx: &RequestContext, now: i64) -> Vec<crate::db::Val> {
        vec![
            Uuid::now_v7().into(),
            self.org.into(),
            now.into(),
            self.actor_kind.to_string().into(),
            self.actor_id.clone().into(),
            self.action.to_string().into(),
            self.object_type.to_string().into(),
            self.object_id.clone().into(),
            self.before.as_ref().map(|v| v.to_string()).into(),
            self.after.as_ref().map(|v| v.to_string()).into(),
            ctx.client_ip.clone().into(),
            ctx.request_id.clone().into(),
        ]
    }
}

const INSERT_HEAD: &str = "INSERT INTO audit_log (id, org_id, at, actor_kind, actor_id, action, object_type, object_id, before, after, client_ip, request_id)";

/// One insert of many entries' rows (a batch of admissions, say); `None`
/// when there are none.
pub fn stmt_many(rows: Vec<Vec<crate::db::Val>>) -> Option<Stmt> {
    (!rows.is_empty()).then(|| Stmt::insert_rows(INSERT_HEAD, rows))
}

/// An entry as stored.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Row {
    pub id: Uuid,
    pub at: i64,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub object_type: String,
    pub object_id: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
    pub seq: Option<i64>,
    #[serde(skip)]
    pub prev_hash: Option<Vec<u8>>,
    #[serde(skip)]
    pub hash: Option<Vec<u8>>,
}

const COLUMNS: &str = "id, at, actor_kind, actor_id, action, object_type, object_id, before, after, client_ip, request_id, seq, prev_hash, hash";

/// The link hash of an entry: SHA-256 over the previous hash and every
/// field, each length-prefixed so no two entries can collide by shifting
/// text between fields.
pub fn link_hash(org: Uuid, seq: i64, prev: &[u8], r: &Row) -> Vec<u8> {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    field(prev);
    field(org.as_bytes());
    field(&seq.to_be_bytes());
    field(r.id.as_bytes());
    field(&r.at.to_be_bytes());
    for s in [
        Some(r.actor_kind.as_str()),
        r.actor_id.as_deref(),
        Some(r.action.as_str()),
        Some(r.object_type.as_str()),
        r.object_id.as_deref(),
        r.before.as_deref(),
        r.after.as_deref(),
        r.client_ip.as_deref(),
        r.request_id.as_deref(),
    ] {
        match s {
            Some(s) => field(s.as_bytes()),
            None => field(b"\xff-null"),
        }
    }
    h.finalize().to_vec()
}

/// Links every org's unsealed entries into its chain, oldest first.
/// Serialised per org by a lock on its head (SQLite's writer, PostgreSQL's
/// row lock), so nodes sealing at once never fork a chain. Returns how many
/// it sealed.
pub async fn seal(db: &Db) -> Result<usize, sqlx::Error> {
    seal_up_to(db, 10).await
}

/// [`seal`], at most `batches` batches of 1,000 per org (one while the
/// node is busy answering requests: sealing can wait a little, a gate
/// cannot).
pub async fn seal_up_to(db: &Db, batches: usize) -> Result<usize, sqlx::Error> {
    let orgs: Vec<(Uuid,)> = db_run!(db, p => sqlx::query_as(
        "SELECT DISTINCT org_id FROM audit_log WHERE seq IS NULL LIMIT 100").fetch_all(p).await)?;
    let mut sealed = 0;
    for (org,) in orgs {
        // A gate's burst of admissions leaves thousands: up to 10 batches
        // of 1,000 per org and run, each its own transaction so writers
        // get the lock between them.
        for _ in 0..batches.max(1) {
            let n = seal_batch(db, org).await?;
            sealed += n;
            if n < SEAL_BATCH {
                break;
            }
        }
    }
    Ok(sealed)
}

const SEAL_BATCH: usize = 1000;

/// Links up to [`SEAL_BATCH`] of the org's unsealed entries; how many.
async fn seal_batch(db: &Db, org: Uuid) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin().await?;
    Stmt::new(
        "INSERT INTO audit_heads (org_id, seq, hash) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING",
    )
    .bind(org)
    .bind(Vec::<u8>::new())
    .execute_in(&mut tx)
    .await?;
    let head_sql = match tx.backend() {
        crate::Backend::Postgres => {
            "SELECT seq, hash FROM audit_heads WHERE org_id = $1 FOR UPDATE"
        }
        crate::Backend::Sqlite => "SELECT seq, hash FROM audit_heads WHERE org_id = $1",
    };
    let (mut seq, mut prev): (i64, Vec<u8>) =
        tx_run!(&mut tx, c => sqlx::query_as(head_sql).bind(org).fetch_one(c).await)?;
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log WHERE org_id = $1 AND seq IS NULL ORDER BY id LIMIT {SEAL_BATCH}"
    );
    let rows: Vec<Row> = tx_run!(&mut tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(org).fetch_all(c).await)?;
    let mut links = Links::default();
    for r in &rows {
        seq += 1;
        let hash = link_hash(org, seq, &prev, r);
        links.ids.push(r.id);
        links.seqs.push(seq);
        links.prevs.push(std::mem::replace(&mut prev, hash.clone()));
        links.hashes.push(hash);
    }
    links.write(&mut tx).await?;
    Stmt::new("UPDATE audit_heads SET seq = $1, hash = $2 WHERE org_id = $3")
        .bind(seq)
        .bind(prev)
        .bind(org)
        .execute_in(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(rows.len())
}

/// A batch of links, written by one statement (a gate's burst of
/// admissions is sealed in a few statements, not one per entry).
#[derive(Default)]
struct Links {
    ids: Vec<Uuid>,
    seqs: Vec<i64>,
    prevs: Vec<Vec<u8>>,
    hashes: Vec<Vec<u8>>,
}

impl Links {
    async fn write(self, tx: &mut crate::db::Tx) -> Result<(), sqlx::Error> {
        if self.ids.is_empty() {
            return Ok(());
        }
        match tx {
            crate::db::Tx::Pg(t, _) => {
                sqlx::query(
                    "UPDATE audit_log a SET seq = v.seq, prev_hash = v.prev, hash = v.hash
                     FROM UNNEST($1::uuid[], $2::bigint[], $3::bytea[], $4::bytea[]) AS v(id, seq, prev, hash)
                     WHERE a.id = v.id",
                )
                .bind(&self.ids)
                .bind(&self.seqs)
                .bind(&self.prevs)
                .bind(&self.hashes)
                .execute(&mut **t)
                .await?;
            }
            crate::db::Tx::Sqlite(t, _, _) => {
                let mut sql = String::from(
                    "UPDATE audit_log SET seq = v.column2, prev_hash = v.column3, hash = v.column4 FROM (VALUES ",
                );
                for i in 0..self.ids.len() {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    let n = i * 4;
                    sql.push_str(&format!("(${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4));
                }
                sql.push_str(") AS v WHERE audit_log.id = v.column1");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for i in 0..self.ids.len() {
                    q = q
                        .bind(self.ids[i])
                        .bind(self.seqs[i])
                        .bind(self.prevs[i].clone())
                        .bind(self.hashes[i].clone());
                }
                q.execute(&mut **t).await?;
            }
        }
        Ok(())
    }
}

/// What [`verify`] found in one org's chain.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub org: Uuid,
    pub entries: i64,
    /// Empty when the chain is intact.
    pub problems: Vec<String>,
}

/// Recomputes every org's chain (or one org's) from its first entry to its
/// head: an edited entry breaks its hash, a deleted one leaves a gap, a
/// truncated tail no longer reaches the head.
pub async fn verify(db: &Db, only: Option<Uuid>) -> Result<Vec<Verdict>, sqlx::Error> {
    let heads: Vec<(Uuid, i64, Vec<u8>)> = db_run!(db, p => sqlx::query_as(
        "SELECT org_id, seq, hash FROM audit_heads WHERE ($1 IS NULL OR org_id = $1) ORDER BY org_id")
        .bind(only).fetch_all(p).await)?;
    let mut out = Vec::new();
    for (org, head_seq, head_hash) in heads {
        let mut problems = Vec::new();
        let mut prev: Vec<u8> = Vec::new();
        let mut expect = 1i64;
        let mut after_seq = 0i64;
        loop {
            let sql = format!(
                "SELECT {COLUMNS} FROM audit_log WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT 5000"
            );
            let rows: Vec<Row> = db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(org).bind(after_seq).fetch_all(p).await)?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let seq = r.seq.unwrap_or(0);
                if seq != expect {
                    problems.push(format!("entries {expect} to {} are missing", seq - 1));
                }
                if r.prev_hash.as_deref().unwrap_or_default() != prev.as_slice() {
                    problems.push(format!(
                        "entry {seq} ({}) does not follow the entry before it",
                        r.id
                    ));
                }
                let recomputed = link_hash(org, seq, r.prev_hash.as_deref().unwrap_or_default(), r);
                if Some(recomputed.as_slice()) != r.hash.as_deref() {
                    problems.push(format!(
                        "entry {seq} ({}) was changed after it was recorded",
                        r.id
                    ));
                }
                prev = r.hash.clone().unwrap_or_default();
                expect = seq + 1;
                after_seq = seq;
            }
        }
        if expect - 1 != head_seq || prev != head_hash {
            problems.push(format!(
                "the chain ends at entry {} but its head says {head_seq}: entries were removed from the end",
                expect - 1
            ));
        }
        out.push(Verdict {
            org,
            entries: expect - 1,
            problems,
        });
    }
    Ok(out)
}

/// Which entries to read.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub actor_id: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    /// Entries older than this id (the cursor), newest first.
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// An org's entries, newest first.
pub async fn read(db: &Db, org: Uuid, q: &Query) -> Result<Vec<Row>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log WHERE org_id = $1
           AND ($2 IS NULL OR actor_id = $2) AND ($3 IS NULL OR object_type = $3)
           AND ($4 IS NULL OR object_id = $4) AND ($5 IS NULL OR id < $5)
         ORDER BY id DESC LIMIT $6"
    );
    db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(org).bind(q.actor_id.clone()).bind(q.object_type.clone())
        .bind(q.object_id.clone()).bind(q.before).bind(q.limit.clamp(1, 500)).fetch_all(p).await)
}
