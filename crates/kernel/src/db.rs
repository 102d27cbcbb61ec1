//! The system of record on either backend: one `Db`, two arms.
//!
//! SQL is written once (numbered `$1` placeholders work on both drivers) and
//! run through [`db_run!`] / [`tx_run!`], which type-check the same body
//! against each driver. Only where the dialects differ is a second text
//! written, chosen by [`Db::backend`].

use std::{fmt, str::FromStr, time::Duration};

use sqlx::{
    PgPool, Postgres, Sqlite, SqlitePool,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::{
    batch::{BatchError, Batcher},
    config::{Config, redact_url},
};

/// Binds a [`Val`] to a query of either driver.
macro_rules! bind_val {
    ($q:expr, $v:expr) => {
        match $v {
            Val::Int(v) => $q.bind(v),
            Val::Text(v) => $q.bind(v),
            Val::Bytes(v) => $q.bind(v),
            Val::Uuid(v) => $q.bind(v),
        }
    };
}

#[derive(Clone)]
pub enum Db {
    Pg(PgDb),
    Sqlite(SqliteDb),
}

#[derive(Clone)]
pub struct PgDb {
    pub pool: PgPool,
    group: Option<Group>,
    commits: Commits,
}

/// Woken after every commit: the outbox relay waits on it, so events go
/// out at once without anyone having to remember to wake it.
pub type Commits = std::sync::Arc<tokio::sync::Notify>;

/// How many transactions commit grouped work at once on PostgreSQL (SQLite
/// has one writer, so one).
const PG_COMMITTERS: usize = 4;
/// Most callers' work in one grouped transaction.
const GROUP_MAX: usize = 64;

/// SQLite has one writer at a time. Write transactions take `write_lock`
/// first, so they queue in process (fairly, without holding a connection)
/// instead of spinning in SQLite's busy handler — and a transaction that
/// needs a second connection for a read can always get one.
#[derive(Clone)]
pub struct SqliteDb {
    pub pool: SqlitePool,
    write_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    group: Option<Group>,
    commits: Commits,
}

/// The longest a write waits its turn on SQLite. Past it the caller is
/// told the database is busy (a 503) instead of waiting on: a write queued
/// that long is past any request's limit, and a task that began a second
/// transaction while holding its first would otherwise wait forever.
const WRITE_TURN_WAIT: Duration = Duration::from_secs(30);

impl SqliteDb {
    async fn write_turn(&self) -> Result<tokio::sync::OwnedMutexGuard<()>, sqlx::Error> {
        match tokio::time::timeout(WRITE_TURN_WAIT, self.write_lock.clone().lock_owned()).await {
            Ok(guard) => Ok(guard),
            Err(_) => {
                tracing::warn!("a SQLite write waited its turn too long");
                Err(sqlx::Error::PoolTimedOut)
            }
        }
    }
}

/// Transactional work that may share its transaction with other callers'
/// (see [`Db::transact_grouped`]). It may run more than once (a failed group
/// is retried job by job), so it must build its writes afresh each call.
/// `Ok(false)`: the work decided to write nothing.
pub type GroupWork = Box<
    dyn for<'a> Fn(&'a mut Tx) -> futures::future::BoxFuture<'a, Result<bool, sqlx::Error>>
        + Send
        + Sync,
>;

pub enum GroupTask {
    /// Plain writes: all of a group's go to the connection as one batch.
    Writes(Vec<Stmt>),
    /// Writes made only if `guard` (a query) finds a row in the group's
    /// transaction, before any write; the task's result says whether they
    /// were. Equal guards of one group are asked once.
    Guarded {
        guard: Stmt,
        writes: Vec<Stmt>,
    },
    /// Writes made only if `take` — a data-modifying statement with
    /// `RETURNING`, such as a conditional `UPDATE` — changes a row, in the
    /// same transaction; the task's result says whether it did. Unlike a
    /// guard, never shared with another task.
    Taking {
        take: Stmt,
        writes: Vec<Stmt>,
    },
    Work(GroupWork),
}

/// Group commit: the kernel's batcher over transactions.
type Group = Batcher<GroupTask, bool, sqlx::Error>;

/// Writes queued by [`Db::enqueue_writes`]; their outcome to come. A
/// future that can be polled by reference (`(&mut ticket).await`), so a
/// caller dropped while waiting still holds it and can hand it on.
pub struct WriteTicket(crate::batch::Ticket<bool, sqlx::Error>);

impl std::future::Future for WriteTicket {
    /// `Ok(false)`: the writes' guard found nothing, they were not made.
    type Output = Result<bool, sqlx::Error>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|r| {
            r.map_err(|e| match e {
                BatchError::Failed(e) => e,
                BatchError::Full | BatchError::Closed => sqlx::Error::PoolClosed,
            })
        })
    }
}

async fn run_group(db: &Db, jobs: &[GroupTask]) -> Result<Vec<bool>, sqlx::Error> {
    if let Db::Pg(s) = db
        && let Some(results) = pg_group_statement(s, jobs).await?
    {
        return Ok(results);
    }
    if let Db::Sqlite(_) = db
        && let Some(results) = sqlite_takes_at_once(db, jobs).await?
    {
        return Ok(results);
    }
    let mut tx = db.begin().await?;
    let mut results = Vec::with_capacity(jobs.len());
    let mut writes = Vec::new();
    let mut asked: Vec<(&Stmt, bool)> = Vec::new();
    for job in jobs {
        match job {
            GroupTask::Writes(stmts) => {
                writes.extend(stmts.iter().cloned());
                results.push(true);
            }
            GroupTask::Guarded { guard, writes: w } => {
                let pass = match asked.iter().find(|(g, _)| *g == guard) {
                    Some((_, pass)) => *pass,
                    None => {
                        let pass = guard.exists_in(&mut tx).await?;
                        asked.push((guard, pass));
                        pass
                    }
                };
                if pass {
                    writes.extend(w.iter().cloned());
                }
                results.push(pass);
            }
            GroupTask::Taking { take, writes: w } => {
                let taken = take.exists_in(&mut tx).await?;
                if taken {
                    writes.extend(w.iter().cloned());
                }
                results.push(taken);
            }
            GroupTask::Work(work) => results.push(work(&mut tx).await?),
        }
    }
    if !writes.is_empty() {
        tx.run_all(writes).await?;
    }
    tx.commit().await?;
    Ok(results)
}

/// The SQLSTATE `voelgoed_guard(false)` raises (migration 0015).
const GUARD_FAILED: &str = "VGGRD";

/// A PostgreSQL group without [`GroupTask::Work`] as one statement, in no
/// explicit transaction (one round trip instead of `BEGIN`, a statement per
/// guard or take, the writes and `COMMIT`): guards (equal ones once) and
/// takes as its first `WITH` parts, every write after them, and a last
/// `SELECT voelgoed_guard(...)` that raises [`GUARD_FAILED`] unless every
/// guard found its row and every take changed its row. So the writes commit
/// all together, each task's condition met, or nothing does: a group with
/// one condition unmet is then run the careful way (in a transaction, each
/// condition asked on its own), and a task alone whose condition is unmet
/// answers false. A guard's table
/// lock is taken before the statement's snapshot, as it was before the
/// writes when asked apart. `None` when the group cannot be one statement
/// (work to run, or more arguments than one statement takes).
async fn pg_group_statement(
    s: &PgDb,
    jobs: &[GroupTask],
) -> Result<Option<Vec<bool>>, sqlx::Error> {
    use crate::pg_group::{Args, Column, Expect, Part};
    let mut guards: Vec<&Stmt> = Vec::new();
    let mut takes: Vec<&Stmt> = Vec::new();
    let mut writes: Vec<&Stmt> = Vec::new();
    for job in jobs {
        match job {
            GroupTask::Writes(w) => writes.extend(w),
            GroupTask::Guarded { guard, writes: w } => {
                if !guards.contains(&guard) {
                    guards.push(guard);
                }
                writes.extend(w);
            }
            GroupTask::Taking { take, writes: w } => {
                takes.push(take);
                writes.extend(w);
            }
            GroupTask::Work(_) => return Ok(None),
        }
    }
    if guards.is_empty() && takes.is_empty() && writes.is_empty() {
        return Ok(Some(vec![true; jobs.len()]));
    }
    let mut conditions: Vec<(Part, Expect)> = guards
        .into_iter()
        .map(|g| (Part::of(g), Expect::Row))
        .collect();
    conditions.extend(crate::pg_group::merge_takes(&takes));
    let writes = crate::pg_group::merge(&writes);
    let args: usize = conditions
        .iter()
        .map(|(p, _)| p)
        .chain(&writes)
        .map(|p| p.args.len())
        .sum();
    if args > PG_MAX_ARGS {
        return Ok(None);
    }
    let sql = pg_guarded(&conditions, &writes);
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for part in conditions.into_iter().map(|(p, _)| p).chain(writes) {
        match part.args {
            Args::Vals(vals) => {
                for v in vals.iter().cloned() {
                    q = bind_val!(q, v);
                }
            }
            Args::Columns(columns) => {
                for c in columns {
                    q = match c {
                        Column::Int(v) => q.bind(v),
                        Column::Text(v) => q.bind(v),
                        Column::Bytes(v) => q.bind(v),
                        Column::Uuid(v) => q.bind(v),
                    };
                }
            }
        }
    }
    match q.execute(&s.pool).await {
        Ok(_) => {
            s.commits.notify_one();
            Ok(Some(vec![true; jobs.len()]))
        }
        // A condition unmet: nothing was written. Alone, the task's
        // answer; in a group, each condition is asked on its own.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(GUARD_FAILED) => {
            Ok((jobs.len() == 1).then(|| vec![false]))
        }
        Err(e) => Err(e),
    }
}

/// On SQLite, a group whose tasks take (checkouts) and write, sent to the
/// connection's thread as one text — each take followed by its writes —
/// instead of one trip per take: committed when every take changed its
/// row; else rolled back, and `None` asks each take on its own (as a task
/// alone: false). Groups with guards or work: `None`.
async fn sqlite_takes_at_once(
    db: &Db,
    jobs: &[GroupTask],
) -> Result<Option<Vec<bool>>, sqlx::Error> {
    use futures::TryStreamExt;
    let mut stmts: Vec<&Stmt> = Vec::new();
    let mut takes: Vec<usize> = Vec::new();
    for job in jobs {
        match job {
            GroupTask::Writes(w) => stmts.extend(w),
            GroupTask::Taking { take, writes } => {
                takes.push(stmts.len());
                stmts.push(take);
                stmts.extend(writes);
            }
            GroupTask::Guarded { .. } | GroupTask::Work(_) => return Ok(None),
        }
    }
    if takes.is_empty() {
        return Ok(None);
    }
    let mut tx = db.begin().await?;
    let Tx::Sqlite(t, _, _) = &mut tx else {
        return Ok(None);
    };
    let q = sqlite_batch(&stmts);
    // One result a statement, in order (rows of a `RETURNING` between).
    let mut changed = Vec::with_capacity(stmts.len());
    {
        #[allow(deprecated)]
        let mut results = q.fetch_many(&mut **t);
        while let Some(item) = results.try_next().await? {
            if let sqlx::Either::Left(done) = item {
                changed.push(done.rows_affected());
            }
        }
    }
    if takes
        .iter()
        .all(|&i| changed.get(i).is_some_and(|n| *n > 0))
    {
        tx.commit().await?;
        return Ok(Some(vec![true; jobs.len()]));
    }
    tx.rollback().await?;
    Ok((jobs.len() == 1).then(|| vec![false]))
}

/// The text of [`pg_group_statement`]: conditions `c0..`, writes `w0..`,
/// placeholders renumbered in that order. With no conditions, the last
/// write is the statement's own part.
fn pg_guarded(
    conditions: &[(crate::pg_group::Part, crate::pg_group::Expect)],
    writes: &[crate::pg_group::Part],
) -> String {
    let mut sql = String::from("WITH ");
    let mut offset = 0;
    let mut parts = 0;
    let mut part = |sql: &mut String, name: String, p: &crate::pg_group::Part| {
        if parts > 0 {
            sql.push_str(", ");
        }
        parts += 1;
        sql.push_str(&format!(
            "{name} AS ({})",
            shift_placeholders(&p.sql, offset)
        ));
        offset += p.args.len();
    };
    for (i, (c, _)) in conditions.iter().enumerate() {
        part(&mut sql, format!("c{i}"), c);
    }
    if conditions.is_empty() {
        let Some((last, rest)) = writes.split_last() else {
            return String::new();
        };
        for (i, w) in rest.iter().enumerate() {
            part(&mut sql, format!("w{i}"), w);
        }
        if parts == 0 {
            return last.sql.to_string();
        }
        sql.push(' ');
        sql.push_str(&shift_placeholders(&last.sql, offset));
        return sql;
    }
    for (i, w) in writes.iter().enumerate() {
        part(&mut sql, format!("w{i}"), w);
    }
    sql.push_str(" SELECT voelgoed_guard(");
    for (i, (_, expect)) in conditions.iter().enumerate() {
        if i > 0 {
            sql.push_str(" AND ");
        }
        match expect {
            crate::pg_group::Expect::Row => sql.push_str(&format!("EXISTS (SELECT 1 FROM c{i})")),
            crate::pg_group::Expect::Changed(n) => {
                sql.push_str(&format!("(SELECT count(*) FROM c{i}) = {n}"))
            }
        }
    }
    sql.push(')');
    sql
}

/// Committers share waiting work in one transaction each: one commit, and
/// one trip to the connection per statement rather than four per
/// transaction. `db` is a handle without a group of its own, so committers
/// do not keep themselves alive.
fn committers(db: Db, n: usize) -> Group {
    let db = std::sync::Arc::new(db);
    Batcher::start(
        4096,
        n,
        GROUP_MAX,
        std::sync::Arc::new(move |jobs: &[GroupTask]| {
            let db = db.clone();
            Box::pin(async move { run_group(&db, jobs).await })
        }),
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

pub enum Tx {
    Pg(sqlx::Transaction<'static, Postgres>, Commits),
    Sqlite(
        sqlx::Transaction<'static, Sqlite>,
        tokio::sync::OwnedMutexGuard<()>,
        Commits,
    ),
}

/// Runs `$body` with `$c` bound to the pool of whichever backend `$db` is.
#[macro_export]
macro_rules! db_run {
    ($db:expr, $c:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Pg(s) => {
                let $c = &s.pool;
                $body
            }
            $crate::db::Db::Sqlite(s) => {
                let $c = &s.pool;
                $body
            }
        }
    };
}

/// Runs `$body` with `$c` bound to the open connection of transaction `$tx`.
#[macro_export]
macro_rules! tx_run {
    ($tx:expr, $c:ident => $body:expr) => {
        match $tx {
            $crate::db::Tx::Pg(t, _) => {
                let $c = &mut **t;
                $body
            }
            $crate::db::Tx::Sqlite(t, _, _) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Db({:?})", self.backend())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot open the database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Db {
    /// Opens PostgreSQL when `database_url` is set, else the SQLite file in
    /// the data directory (created, WAL mode).
    pub async fn connect(config: &Config) -> Result<Db, ConnectError> {
        match &config.database_url {
            Some(url) if url.starts_with("sqlite:") => {
                let opts =
                    SqliteConnectOptions::from_str(url).map_err(|source| ConnectError::Open {
                        url: redact_url(url),
                        source,
                    })?;
                Self::open_sqlite(opts, config).await
            }
            Some(url) => {
                let opts = PgConnectOptions::from_str(url)
                    .map_err(|source| ConnectError::Open {
                        url: redact_url(url),
                        source,
                    })?
                    // Plan every execution with the table's size now. A
                    // generic plan cached on a pooled connection is made
                    // once; made while a table was nearly empty (a new
                    // deployment's first on-sale), the planner cannot tell
                    // one `org_id`-leading index from another, and the
                    // foreign-key check of every ticket then walked all of
                    // the org's orders (23 ms a checkout at 4,000 orders)
                    // until autovacuum's next ANALYZE. docs/decisions.md.
                    .options([("plan_cache_mode", "force_custom_plan")]);
                let pool = PgPoolOptions::new()
                    .max_connections(config.db_max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await
                    .map_err(|source| ConnectError::Open {
                        url: redact_url(url),
                        source,
                    })?;
                let commits = Commits::default();
                let group = committers(
                    Db::Pg(PgDb {
                        pool: pool.clone(),
                        group: None,
                        commits: commits.clone(),
                    }),
                    PG_COMMITTERS,
                );
                Ok(Db::Pg(PgDb {
                    pool,
                    group: Some(group),
                    commits,
                }))
            }
            None => {
                std::fs::create_dir_all(&config.data_dir)
                    .map_err(|e| ConnectError::DataDir(config.data_dir.display().to_string(), e))?;
                let path = config.data_dir.join("voelgoed.db");
                let opts = SqliteConnectOptions::new().filename(&path);
                Self::open_sqlite(opts, config).await
            }
        }
    }

    async fn open_sqlite(opts: SqliteConnectOptions, config: &Config) -> Result<Db, ConnectError> {
        let label = opts.get_filename().display().to_string();
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if config.sqlite_synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-32000");
        let pool = SqlitePoolOptions::new()
            .max_connections(config.db_max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .map_err(|source| ConnectError::Open { url: label, source })?;
        let write_lock: std::sync::Arc<tokio::sync::Mutex<()>> = Default::default();
        let commits = Commits::default();
        let committer = Db::Sqlite(SqliteDb {
            pool: pool.clone(),
            write_lock: write_lock.clone(),
            group: None,
            commits: commits.clone(),
        });
        let group = committers(committer, 1);
        Ok(Db::Sqlite(SqliteDb {
            pool,
            write_lock,
            group: Some(group),
            commits,
        }))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Pg(_) => Backend::Postgres,
            Db::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Applies the forward-only migrations of this backend.
    pub async fn migrate(&self) -> Result<(), ConnectError> {
        match self {
            Db::Pg(s) => {
                sqlx::migrate!("../../migrations/postgres")
                    .run(&s.pool)
                    .await?
            }
            Db::Sqlite(s) => {
                sqlx::migrate!("../../migrations/sqlite")
                    .run(&s.pool)
                    .await?
            }
        }
        Ok(())
    }

    /// Starts a transaction. On SQLite it begins `IMMEDIATE`, so a
    /// read-then-write transaction cannot fail later on a lock upgrade.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Pg(s) => Tx::Pg(s.pool.begin().await?, s.commits.clone()),
            Db::Sqlite(s) => {
                let guard = s.write_turn().await?;
                Tx::Sqlite(
                    s.pool.begin_with("BEGIN IMMEDIATE").await?,
                    guard,
                    s.commits.clone(),
                )
            }
        })
    }

    /// Taken around a single write made outside a transaction: on SQLite the
    /// write lock, so it queues with the transactions instead of spinning in
    /// the busy handler; on PostgreSQL nothing. (Its turn not come within
    /// [`WRITE_TURN_WAIT`], the write goes ahead and SQLite's busy handler
    /// decides.)
    pub async fn serial_write(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self {
            Db::Pg(_) => None,
            Db::Sqlite(s) => s.write_turn().await.ok(),
        }
    }

    /// Commits `stmts` atomically, possibly in one transaction with other
    /// callers' writes (group commit). For independent writes whose results
    /// are not read back, and that touch no row another caller's grouped
    /// write may touch: on PostgreSQL a group runs as one statement, whose
    /// parts see one snapshot and, of two updates to one row, keep one.
    pub async fn write_grouped(&self, stmts: Vec<Stmt>) -> Result<(), sqlx::Error> {
        self.grouped(GroupTask::Writes(stmts)).await.map(|_| ())
    }

    /// Queues `stmts` for group commit and returns once they are queued: from
    /// then on they are committed (or fail) whatever happens to the caller.
    /// The result comes with [`WriteTicket::result`]. For callers that must
    /// stay consistent when dropped mid-request (see the sales slice's
    /// holds).
    pub async fn enqueue_writes(&self, stmts: Vec<Stmt>) -> Result<WriteTicket, sqlx::Error> {
        self.enqueue(GroupTask::Writes(stmts)).await
    }

    /// [`Db::enqueue_writes`], made only if `guard` finds a row in the
    /// group's transaction (see [`GroupTask::Guarded`]).
    pub async fn enqueue_guarded(
        &self,
        guard: Stmt,
        stmts: Vec<Stmt>,
    ) -> Result<WriteTicket, sqlx::Error> {
        self.enqueue(GroupTask::Guarded {
            guard,
            writes: stmts,
        })
        .await
    }

    /// Runs `take` (a data-modifying statement with `RETURNING`, e.g. a
    /// conditional `UPDATE`) and, only if it changed a row, `stmts`: in one
    /// transaction, possibly shared with other callers' work (group commit).
    /// True when it did.
    pub async fn write_if_taken(&self, take: Stmt, stmts: Vec<Stmt>) -> Result<bool, sqlx::Error> {
        self.grouped(GroupTask::Taking {
            take,
            writes: stmts,
        })
        .await
    }

    async fn enqueue(&self, task: GroupTask) -> Result<WriteTicket, sqlx::Error> {
        let group = match self {
            Db::Pg(s) => s.group.as_ref(),
            Db::Sqlite(s) => s.group.as_ref(),
        };
        let Some(group) = group else {
            return Err(sqlx::Error::PoolClosed);
        };
        group
            .enqueue(task)
            .await
            .map(WriteTicket)
            .map_err(|_| sqlx::Error::PoolClosed)
    }

    /// Runs `work` in a transaction, possibly shared with other callers' work
    /// (group commit: one committer on SQLite, several on PostgreSQL).
    /// Returns what the work returned, once committed.
    pub async fn transact_grouped(&self, work: GroupWork) -> Result<bool, sqlx::Error> {
        self.grouped(GroupTask::Work(work)).await
    }

    async fn grouped(&self, task: GroupTask) -> Result<bool, sqlx::Error> {
        let group = match self {
            Db::Pg(s) => s.group.as_ref(),
            Db::Sqlite(s) => s.group.as_ref(),
        };
        let Some(group) = group else {
            // A committer's own handle: run alone.
            return run_group(self, std::slice::from_ref(&task))
                .await
                .map(|r| r.first().copied().unwrap_or(false));
        };
        group.submit(task).await.map_err(|e| match e {
            BatchError::Failed(e) => e,
            BatchError::Full | BatchError::Closed => sqlx::Error::PoolClosed,
        })
    }

    /// Woken after every commit (a permit is kept when nobody waits).
    pub fn commits(&self) -> Commits {
        match self {
            Db::Pg(s) => s.commits.clone(),
            Db::Sqlite(s) => s.commits.clone(),
        }
    }

    /// `SELECT 1`, for readiness.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        db_run!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))
    }

    pub async fn close(&self) {
        db_run!(self, p => p.close().await)
    }
}

impl Tx {
    pub fn backend(&self) -> Backend {
        match self {
            Tx::Pg(..) => Backend::Postgres,
            Tx::Sqlite(..) => Backend::Sqlite,
        }
    }

    /// Rolls back now (a dropped transaction rolls back only when its
    /// connection is next used, holding its row locks until then).
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Pg(t, _) => t.rollback().await,
            Tx::Sqlite(t, _guard, _) => t.rollback().await,
        }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Pg(t, commits) => {
                t.commit().await?;
                commits.notify_one();
                Ok(())
            }
            Tx::Sqlite(t, _guard, commits) => {
                t.commit().await?;
                commits.notify_one();
                Ok(())
            }
        }
    }
}

/// True when the error is a unique-constraint violation (on either backend).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// A value bound to a [`Stmt`], with the same meaning on both backends.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Vec<u8>),
    Uuid(Option<uuid::Uuid>),
}

impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::Int(Some(v))
    }
}
impl From<Option<i64>> for Val {
    fn from(v: Option<i64>) -> Val {
        Val::Int(v)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::Text(Some(v.to_string()))
    }
}
impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::Text(Some(v))
    }
}
impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Val {
        Val::Text(v)
    }
}
impl From<Vec<u8>> for Val {
    fn from(v: Vec<u8>) -> Val {
        Val::Bytes(v)
    }
}
impl From<uuid::Uuid> for Val {
    fn from(v: uuid::Uuid) -> Val {
        Val::Uuid(Some(v))
    }
}
impl From<Option<uuid::Uuid>> for Val {
    fn from(v: Option<uuid::Uuid>) -> Val {
        Val::Uuid(v)
    }
}

/// One write statement with its arguments, for [`Tx::run_all`].
#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    sql: std::borrow::Cow<'static, str>,
    args: Vec<Val>,
    /// A multi-row insert ([`Stmt::insert_rows`]): its head's length in
    /// `sql` and its row width, so SQLite can take it in a fixed shape.
    rows: Option<(usize, usize)>,
}

impl Stmt {
    pub fn new(sql: &'static str) -> Stmt {
        Stmt {
            sql: std::borrow::Cow::Borrowed(sql),
            args: Vec::new(),
            rows: None,
        }
    }

    /// An `INSERT ... VALUES` of many rows: `head` is the statement up to
    /// `VALUES`, each row a list of values of the same length.
    pub fn insert_rows(head: &str, rows: Vec<Vec<Val>>) -> Stmt {
        let width = rows.first().map_or(0, Vec::len);
        let mut sql = String::from(head);
        sql.push_str(" VALUES ");
        let mut args = Vec::new();
        for (i, row) in rows.into_iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for j in 0..row.len() {
                if j > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", args.len() + j + 1));
            }
            sql.push(')');
            args.extend(row);
        }
        Stmt {
            sql: std::borrow::Cow::Owned(sql),
            args,
            rows: Some((head.len(), width)),
        }
    }

    /// The form SQLite runs: a multi-row insert of many rows as one JSON
    /// argument read through `json_each` (ids as hex, back to blobs by
    /// `unhex`), so its text is the same whatever the row count. SQLite
    /// looks every numbered placeholder up by a linear scan, so a
    /// thousand-row `VALUES` of 12 columns cost about half a second in
    /// binding alone; this costs one. `None`: run as it is (one row, or a
    /// column whose values are not all of one kind).
    fn sqlite_rows(&self) -> Option<Stmt> {
        let (head, width) = self.rows?;
        if width == 0 || self.args.len() < 2 * width {
            return None;
        }
        let kinds: Vec<std::mem::Discriminant<Val>> = self.args[..width]
            .iter()
            .map(std::mem::discriminant)
            .collect();
        let mut rows = Vec::with_capacity(self.args.len() / width);
        for row in self.args.chunks(width) {
            let mut out = Vec::with_capacity(width);
            for (i, v) in row.iter().enumerate() {
                if std::mem::discriminant(v) != kinds[i] {
                    return None;
                }
                out.push(match v {
                    Val::Int(v) => serde_json::json!(v),
                    Val::Text(v) => serde_json::json!(v),
                    Val::Bytes(b) => serde_json::json!(hex_of(b)),
                    Val::Uuid(u) => serde_json::json!(u.map(|u| u.simple().to_string())),
                });
            }
            rows.push(serde_json::Value::Array(out));
        }
        let columns: Vec<String> = self.args[..width]
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Val::Int(_) | Val::Text(_) => format!("json_extract(value, '$[{i}]')"),
                Val::Bytes(_) | Val::Uuid(_) => format!("unhex(json_extract(value, '$[{i}]'))"),
            })
            .collect();
        Some(Stmt {
            sql: std::borrow::Cow::Owned(format!(
                "{} SELECT {} FROM json_each($1)",
                &self.sql[..head],
                columns.join(", ")
            )),
            args: vec![Val::Text(Some(serde_json::Value::Array(rows).to_string()))],
            rows: None,
        })
    }

    pub fn bind(mut self, v: impl Into<Val>) -> Stmt {
        self.args.push(v.into());
        self
    }

    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }

    pub(crate) fn args(&self) -> &[Val] {
        &self.args
    }
}

impl Stmt {
    /// Runs this one statement on the pool; the rows it affected.
    pub async fn execute(&self, db: &Db) -> Result<u64, sqlx::Error> {
        match db {
            Db::Pg(s) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(self.sql.clone().into_owned()));
                for v in self.args.iter().cloned() {
                    q = bind_val!(q, v);
                }
                Ok(q.execute(&s.pool).await?.rows_affected())
            }
            Db::Sqlite(s) => {
                let fixed = self.sqlite_rows();
                let st = fixed.as_ref().unwrap_or(self);
                let mut q = sqlx::query(sqlx::AssertSqlSafe(st.sql.clone().into_owned()));
                for v in st.args.iter().cloned() {
                    q = bind_val!(q, v);
                }
                Ok(q.execute(&s.pool).await?.rows_affected())
            }
        }
    }

    /// Runs this query inside `tx`: whether it found a row.
    pub async fn exists_in(&self, tx: &mut Tx) -> Result<bool, sqlx::Error> {
        match tx {
            Tx::Pg(t, _) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(self.sql.clone().into_owned()));
                for v in self.args.iter().cloned() {
                    q = bind_val!(q, v);
                }
                Ok(q.fetch_optional(&mut **t).await?.is_some())
            }
            Tx::Sqlite(t, _, _) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(self.sql.clone().into_owned()));
                for v in self.args.iter().cloned() {
                    q = bind_val!(q, v);
                }
                Ok(q.fetch_optional(&mut **t).await?.is_some())
            }
        }
    }

    /// Runs this one statement inside `tx`; the rows it affected.
    pub async fn execute_in(&self, tx: &mut Tx) -> Result<u64, sqlx::Error> {
        match tx {
            Tx::Pg(t, _) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(self.sql.clone().into_owned()));
                for v in self.args.iter().cloned() {
                    q = bind_val!(q, v);
                }
                Ok(q.execute(&mut **t).await?.rows_affected())
            }
            Tx::Sqlite(t, _, _) => {
                let fixed = self.sqlite_rows();
                let st = fixed.as_ref().unwrap_or(self);
                let mut q = sqlx::query(sqlx::AssertSqlSafe(st.sql.clone().into_owned()));
                for v in st.args.iter().cloned() {
                    q = bind_val!(q, v);
                }
                Ok(q.execute(&mut **t).await?.rows_affected())
            }
        }
    }
}

/// `$n` → `$(n + offset)`: the statements of a batch share one argument list.
fn shift_placeholders(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c == '$' {
            let mut n = 0usize;
            let mut digits = false;
            while let Some(&(_, d)) = chars.peek() {
                match d.to_digit(10) {
                    Some(x) => {
                        n = n * 10 + x as usize;
                        digits = true;
                        chars.next();
                    }
                    None => break,
                }
            }
            out.push('$');
            if digits {
                out.push_str(&(n + offset).to_string());
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Tx {
    /// Runs independent write statements: none may depend on another's
    /// effect (on PostgreSQL they become one statement, whose parts all see
    /// the same snapshot). On SQLite they go to the connection as one text
    /// (one round trip to its thread, not one per statement); on PostgreSQL
    /// as one statement of data-modifying `WITH` parts (one round trip to
    /// the server, not one per statement). Each statement numbers its own
    /// arguments from `$1`.
    pub async fn run_all(&mut self, stmts: Vec<Stmt>) -> Result<(), sqlx::Error> {
        match self {
            Tx::Pg(t, _) => {
                for chunk in pg_chunks(stmts) {
                    if chunk.len() == 1 {
                        for s in chunk {
                            let mut q = sqlx::query(sqlx::AssertSqlSafe(s.sql.into_owned()));
                            for v in s.args {
                                q = bind_val!(q, v);
                            }
                            q.execute(&mut **t).await?;
                        }
                        continue;
                    }
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(pg_combined(&chunk)));
                    for s in chunk {
                        for v in s.args {
                            q = bind_val!(q, v);
                        }
                    }
                    q.execute(&mut **t).await?;
                }
            }
            Tx::Sqlite(t, _, _) => {
                sqlite_batch(&stmts.iter().collect::<Vec<_>>())
                    .execute(&mut **t)
                    .await?;
            }
        }
        Ok(())
    }
}

fn hex_of(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Statements as one text for SQLite's connection thread (one trip, not
/// one per statement), placeholders renumbered across them.
fn sqlite_batch<'q>(
    stmts: &[&Stmt],
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments> {
    let fixed: Vec<Option<Stmt>> = stmts.iter().map(|st| st.sqlite_rows()).collect();
    let stmts: Vec<&Stmt> = stmts
        .iter()
        .zip(&fixed)
        .map(|(st, f)| f.as_ref().unwrap_or(st))
        .collect();
    let mut sql = String::new();
    let mut offset = 0;
    for st in &stmts {
        sql.push_str(&shift_placeholders(&st.sql, offset));
        sql.push_str(";\n");
        offset += st.args.len();
    }
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for st in &stmts {
        for v in st.args.iter().cloned() {
            q = bind_val!(q, v);
        }
    }
    q
}

/// PostgreSQL takes at most 65535 arguments a statement.
const PG_MAX_ARGS: usize = 30_000;

fn pg_chunks(stmts: Vec<Stmt>) -> Vec<Vec<Stmt>> {
    let mut chunks: Vec<Vec<Stmt>> = Vec::new();
    let mut args = 0;
    for s in stmts {
        if chunks.is_empty() || args + s.args.len() > PG_MAX_ARGS {
            chunks.push(Vec::new());
            args = 0;
        }
        args += s.args.len();
        if let Some(c) = chunks.last_mut() {
            c.push(s);
        }
    }
    chunks
}

/// `a; b; c` as `WITH w0 AS (a), w1 AS (b) c`, placeholders renumbered.
fn pg_combined(stmts: &[Stmt]) -> String {
    let mut sql = String::from("WITH ");
    let mut offset = 0;
    let last = stmts.len().saturating_sub(1);
    for (i, s) in stmts.iter().enumerate() {
        let text = shift_placeholders(&s.sql, offset);
        offset += s.args.len();
        if i == last {
            sql.push(' ');
            sql.push_str(&text);
        } else {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("w{i} AS ({text})"));
        }
    }
    sql
}

/// A test's own database: a directory (SQLite's file), and a fresh
/// PostgreSQL database when `pg` is asked for and
/// VOELGOED_TEST_DATABASE_URL is set (CI must set it).
#[cfg(test)]
pub(crate) struct TestDb {
    pub config: Config,
    made: Option<(String, String)>,
}

#[cfg(test)]
impl TestDb {
    pub async fn new(pg: bool) -> Option<TestDb> {
        let dir = std::env::temp_dir().join(format!("vg-kernel-{}", uuid::Uuid::now_v7()));
        let mut config = Config {
            data_dir: dir,
            ..Config::default()
        };
        let mut made = None;
        if pg {
            let Ok(admin) = std::env::var("VOELGOED_TEST_DATABASE_URL") else {
                assert!(
                    std::env::var("CI").is_err(),
                    "CI is set but VOELGOED_TEST_DATABASE_URL is not"
                );
                eprintln!("VOELGOED_TEST_DATABASE_URL unset: PostgreSQL variant not run here");
                return None;
            };
            use sqlx::Connection;
            let name = format!("vg_test_kernel_{}", uuid::Uuid::now_v7().simple());
            let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut c)
                .await
                .unwrap();
            config.database_url = Some(format!("{}/{name}", admin.rsplit_once('/').unwrap().0));
            made = Some((admin, name));
        }
        Some(TestDb { config, made })
    }

    /// Drops the database and the directory (close the pools first).
    pub async fn remove(self) {
        use sqlx::Connection;
        let _ = std::fs::remove_dir_all(&self.config.data_dir);
        if let Some((admin, name)) = self.made
            && let Ok(mut c) = sqlx::PgConnection::connect(&admin).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut c)
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Renumbering moves every placeholder by the offset and touches
        /// nothing else, whatever the text around it.
        #[test]
        fn placeholders_shift_and_nothing_else_changes(
            parts in proptest::collection::vec(("[a-zA-Z ,()=*'_.:]{0,12}", 1usize..40), 0..12),
            tail in "[a-zA-Z ,()=*'_.:]{0,12}",
            offset in 0usize..500,
        ) {
            let mut sql = String::new();
            let mut want = String::new();
            for (text, n) in &parts {
                sql.push_str(text);
                sql.push_str(&format!("${n}"));
                want.push_str(text);
                want.push_str(&format!("${}", n + offset));
            }
            sql.push_str(&tail);
            want.push_str(&tail);
            proptest::prop_assert_eq!(shift_placeholders(&sql, offset), want);
        }

        /// Any text at all: no panic, and text without `$` is left alone.
        #[test]
        fn placeholder_shifting_survives_any_text(sql in ".{0,80}", offset in 0usize..100) {
            let out = shift_placeholders(&sql, offset);
            if !sql.contains('$') {
                proptest::prop_assert_eq!(out, sql);
            }
        }
    }

    #[test]
    fn postgres_runs_a_batch_as_one_statement() {
        let a = Stmt::new("INSERT INTO t (x) VALUES ($1)").bind(1i64);
        let b = Stmt::new("UPDATE u SET y = $1 WHERE z = $2")
            .bind(2i64)
            .bind(3i64);
        let c = Stmt::new("DELETE FROM v WHERE w = $1").bind(4i64);
        assert_eq!(
            pg_combined(&[a, b, c]),
            "WITH w0 AS (INSERT INTO t (x) VALUES ($1)), w1 AS (UPDATE u SET y = $2 WHERE z = $3) DELETE FROM v WHERE w = $4"
        );
    }

    #[test]
    fn placeholders_shift_past_earlier_statements() {
        assert_eq!(
            shift_placeholders("SELECT $1, $2, $1", 3),
            "SELECT $4, $5, $4"
        );
        assert_eq!(shift_placeholders("VALUES ($10)", 0), "VALUES ($10)");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_bad_write_in_a_group_fails_only_itself() {
        let dir = std::env::temp_dir().join(format!("vg-kernel-{}", uuid::Uuid::now_v7()));
        let config = Config {
            data_dir: dir.clone(),
            ..Config::default()
        };
        let db = Db::connect(&config).await.unwrap();
        db.migrate().await.unwrap();
        let org = uuid::Uuid::now_v7();
        let insert = |slug: &str| {
            Stmt::new("INSERT INTO orgs (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(uuid::Uuid::now_v7())
                .bind(slug)
                .bind("x")
                .bind(0i64)
        };
        db.write_grouped(vec![
            Stmt::new("INSERT INTO orgs (id, slug, name, created_at) VALUES ($1, 'taken', 'x', 0)")
                .bind(org),
        ])
        .await
        .unwrap();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let (db, stmt) = (
                db.clone(),
                if i == 17 {
                    insert("taken")
                } else {
                    insert(&format!("org-{i}"))
                },
            );
            tasks.push(tokio::spawn(async move {
                db.write_grouped(vec![stmt]).await.is_ok()
            }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += t.await.unwrap() as usize;
        }
        assert_eq!(ok, 39);
        let n: i64 =
            db_run!(&db, p => sqlx::query_scalar("SELECT COUNT(*) FROM orgs").fetch_one(p).await)
                .unwrap();
        assert_eq!(n, 40);
        db.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Many callers race to take the same rows, grouped with guarded and
    /// plain writes: each caller's writes are made exactly when its own
    /// condition held, each row is taken once, and a caller alone whose
    /// condition fails gets false (on PostgreSQL a group is one statement,
    /// undone whole when one condition fails).
    async fn takes_and_guards_decide_each_callers_writes(pg: bool) {
        let Some(test) = TestDb::new(pg).await else {
            return;
        };
        let db = Db::connect(&test.config).await.unwrap();
        db.migrate().await.unwrap();
        let orgs: Vec<uuid::Uuid> = (0..20).map(|_| uuid::Uuid::now_v7()).collect();
        for (i, org) in orgs.iter().enumerate() {
            db.write_grouped(vec![
                Stmt::new(
                    "INSERT INTO orgs (id, slug, name, created_at) VALUES ($1, $2, 'free', 0)",
                )
                .bind(*org)
                .bind(format!("org-{i}")),
            ])
            .await
            .unwrap();
        }
        let mark = |n: usize| {
            Stmt::new(
                "INSERT INTO idempotency_keys (org_id, scope, key, request_hash, created_at)
                 VALUES ($1, 'test', $2, $3, 0)",
            )
            .bind(uuid::Uuid::nil())
            .bind(format!("caller-{n}"))
            .bind(vec![1u8])
        };
        let take = |org: uuid::Uuid| {
            Stmt::new("UPDATE orgs SET name = 'taken' WHERE id = $1 AND name = 'free' RETURNING id")
                .bind(org)
        };
        let mut tasks = Vec::new();
        for n in 0..100usize {
            let db = db.clone();
            let org = orgs[n / 5];
            let (take, mark) = (take(org), mark(n));
            tasks.push(tokio::spawn(async move {
                match n % 5 {
                    // A guard on a row that is there, and on one that is not.
                    3 => db
                        .enqueue_guarded(
                            Stmt::new("SELECT 1 FROM orgs WHERE id = $1").bind(org),
                            vec![mark],
                        )
                        .await
                        .unwrap()
                        .await
                        .unwrap(),
                    4 => db
                        .enqueue_guarded(
                            Stmt::new("SELECT 1 FROM orgs WHERE id = $1")
                                .bind(uuid::Uuid::now_v7()),
                            vec![mark],
                        )
                        .await
                        .unwrap()
                        .await
                        .unwrap(),
                    _ => db.write_if_taken(take, vec![mark]).await.unwrap(),
                }
            }));
        }
        let mut made_writes = Vec::new();
        for (n, t) in tasks.into_iter().enumerate() {
            if t.await.unwrap() {
                made_writes.push(n);
            }
        }
        // Every org taken exactly once, by one of its three takers.
        let takers: Vec<usize> = made_writes.iter().copied().filter(|n| n % 5 < 3).collect();
        assert_eq!(takers.len(), orgs.len(), "each row taken once: {takers:?}");
        for org in 0..orgs.len() {
            assert_eq!(takers.iter().filter(|n| *n / 5 == org).count(), 1);
        }
        assert!(
            made_writes.iter().all(|n| n % 5 != 4),
            "a failed guard wrote"
        );
        assert_eq!(made_writes.iter().filter(|n| *n % 5 == 3).count(), 20);
        let keys: Vec<String> = db_run!(&db, p => sqlx::query_scalar(
            "SELECT key FROM idempotency_keys WHERE scope = 'test' ORDER BY key").fetch_all(p).await)
        .unwrap();
        let mut expected: Vec<String> = made_writes.iter().map(|n| format!("caller-{n}")).collect();
        expected.sort();
        assert_eq!(
            keys, expected,
            "writes made exactly for the callers told so"
        );
        // Alone: a take that finds nothing, and one that does.
        assert!(
            !db.write_if_taken(take(orgs[0]), vec![mark(1000)])
                .await
                .unwrap()
        );
        let fresh = uuid::Uuid::now_v7();
        db.write_grouped(vec![
            Stmt::new(
                "INSERT INTO orgs (id, slug, name, created_at) VALUES ($1, 'fresh', 'free', 0)",
            )
            .bind(fresh),
        ])
        .await
        .unwrap();
        assert!(
            db.write_if_taken(take(fresh), vec![mark(1001)])
                .await
                .unwrap()
        );
        let n: i64 = db_run!(&db, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM idempotency_keys WHERE key IN ('caller-1000', 'caller-1001')").fetch_one(p).await)
        .unwrap();
        assert_eq!(n, 1);
        db.close().await;
        test.remove().await;
    }

    /// A multi-row insert keeps every value as given (SQLite takes it as
    /// JSON, PostgreSQL as `VALUES`): numbers, text that looks like JSON or
    /// a placeholder, bytes that are not UTF-8, ids, and nulls of each kind.
    async fn a_multi_row_insert_keeps_every_value(pg: bool) {
        type Row = (
            i64,
            Option<i64>,
            Option<String>,
            Vec<u8>,
            Option<uuid::Uuid>,
        );
        let Some(test) = TestDb::new(pg).await else {
            return;
        };
        let db = Db::connect(&test.config).await.unwrap();
        let ddl = match db.backend() {
            Backend::Postgres => "CREATE TABLE vals (n BIGINT, i BIGINT, t TEXT, b BYTEA, u UUID)",
            Backend::Sqlite => "CREATE TABLE vals (n BIGINT, i BIGINT, t TEXT, b BLOB, u BLOB)",
        };
        db_run!(&db, p => sqlx::query(ddl).execute(p).await.map(|_| ())).unwrap();
        let id = uuid::Uuid::now_v7();
        let rows: Vec<Row> = vec![
            (
                0,
                Some(i64::MAX),
                Some("plain".into()),
                vec![0, 255, 128],
                Some(id),
            ),
            (
                1,
                None,
                Some("\"quoted\" $1 [0] 'x' é 🎟 \n".into()),
                vec![],
                None,
            ),
            (
                2,
                Some(-7),
                None,
                b"bytes".to_vec(),
                Some(uuid::Uuid::nil()),
            ),
        ];
        let stmt = Stmt::insert_rows(
            "INSERT INTO vals (n, i, t, b, u)",
            rows.iter()
                .map(|(n, i, t, b, u)| {
                    vec![
                        Val::Int(Some(*n)),
                        Val::Int(*i),
                        Val::Text(t.clone()),
                        Val::Bytes(b.clone()),
                        Val::Uuid(*u),
                    ]
                })
                .collect(),
        );
        assert!(stmt.sqlite_rows().is_some());
        assert_eq!(stmt.execute(&db).await.unwrap(), 3);
        // Inside a grouped write (one text of several statements) as well.
        db.write_grouped(vec![
            Stmt::new("DELETE FROM vals WHERE n = $1").bind(99i64),
            stmt.clone(),
        ])
        .await
        .unwrap();
        let got: Vec<Row> = db_run!(&db, p =>
            sqlx::query_as("SELECT n, i, t, b, u FROM vals ORDER BY n").fetch_all(p).await)
        .unwrap();
        let want: Vec<_> = rows.iter().flat_map(|r| [r.clone(), r.clone()]).collect();
        assert_eq!(got, want);
        db.close().await;
        test.remove().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_multi_row_insert_keeps_every_value_sqlite() {
        a_multi_row_insert_keeps_every_value(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_multi_row_insert_keeps_every_value_postgres() {
        a_multi_row_insert_keeps_every_value(true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn takes_and_guards_decide_each_callers_writes_sqlite() {
        takes_and_guards_decide_each_callers_writes(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn takes_and_guards_decide_each_callers_writes_postgres() {
        takes_and_guards_decide_each_callers_writes(true).await;
    }
}
