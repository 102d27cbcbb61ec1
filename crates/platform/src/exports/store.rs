//! The exports slice's tables: `exports`, `export_chunks`.

use kernel::{
    Db, Stmt, db_run,
    ids::{EventId, ExportId, OrgId},
};

use crate::identity::Tenant;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ExportRow {
    pub id: ExportId,
    pub org_id: OrgId,
    pub event_id: EventId,
    pub kind: String,
    pub format: String,
    pub status: String,
    pub rows_done: i64,
    pub bytes: i64,
    pub error: Option<String>,
    pub link_key: Vec<u8>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub expires_at: i64,
}

const COLS: &str = "SELECT id, org_id, event_id, kind, format, status, rows_done, bytes, error, link_key, created_at, finished_at, expires_at FROM exports";

pub struct NewExport<'a> {
    pub id: ExportId,
    pub event: EventId,
    pub kind: &'a str,
    pub format: &'a str,
    pub link_key: Vec<u8>,
    pub expires_at: i64,
}

pub fn insert(t: &Tenant, e: NewExport<'_>, now: i64) -> Stmt {
    Stmt::new(
        "INSERT INTO exports (id, org_id, event_id, kind, format, status, rows_done, bytes, link_key, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, 'queued', 0, 0, $6, $7, $8)",
    )
    .bind(e.id)
    .bind(t.org())
    .bind(e.event)
    .bind(e.kind.to_string())
    .bind(e.format.to_string())
    .bind(e.link_key)
    .bind(now)
    .bind(e.expires_at)
}

pub async fn get(db: &Db, t: &Tenant, id: ExportId) -> Result<Option<ExportRow>, sqlx::Error> {
    let sql = format!("{COLS} WHERE org_id = $1 AND id = $2");
    db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(t.org()).bind(id).fetch_optional(p).await)
}

/// By id alone: for the build job and for a signed link (which carries no
/// tenant; its signature is the credential).
pub async fn by_id(db: &Db, id: ExportId) -> Result<Option<ExportRow>, sqlx::Error> {
    let sql = format!("{COLS} WHERE id = $1");
    db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await)
}

pub async fn list(
    db: &Db,
    t: &Tenant,
    before: Option<ExportId>,
    limit: i64,
) -> Result<Vec<ExportRow>, sqlx::Error> {
    let sql =
        format!("{COLS} WHERE org_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3");
    db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(t.org()).bind(before).bind(limit).fetch_all(p).await)
}

/// Starts (or restarts) a build: drops the chunks of an earlier try and
/// makes `token` the build whose writes count.
pub async fn start(db: &Db, id: ExportId, token: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    tx.run_all(vec![
        Stmt::new("DELETE FROM export_chunks WHERE export_id = $1").bind(id),
        Stmt::new(
            "UPDATE exports SET status = 'running', rows_done = 0, bytes = 0, error = NULL, finished_at = NULL, build_token = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(token.to_string()),
    ])
    .await?;
    tx.commit().await
}

/// Stores a chunk of build `token`; false (and nothing stored) when another
/// build has taken the export over.
pub async fn put_chunk(
    db: &Db,
    id: ExportId,
    token: &str,
    seq: i64,
    data: Vec<u8>,
    rows: i64,
) -> Result<bool, sqlx::Error> {
    let n = data.len() as i64;
    let mut tx = db.begin().await?;
    let ours = Stmt::new(
        "UPDATE exports SET rows_done = $2, bytes = bytes + $3 WHERE id = $1 AND build_token = $4",
    )
    .bind(id)
    .bind(rows)
    .bind(n)
    .bind(token.to_string())
    .execute_in(&mut tx)
    .await?;
    if ours == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    Stmt::new("INSERT INTO export_chunks (export_id, seq, data) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(seq)
        .bind(data)
        .execute_in(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Records progress; false when another build has taken over.
pub async fn progress(db: &Db, id: ExportId, token: &str, rows: i64) -> Result<bool, sqlx::Error> {
    Stmt::new("UPDATE exports SET rows_done = $2 WHERE id = $1 AND build_token = $3")
        .bind(id)
        .bind(rows)
        .bind(token.to_string())
        .execute(db)
        .await
        .map(|n| n == 1)
}

/// Ends build `token` (`ready` or `failed`); false when it is no longer
/// the export's build.
pub async fn finish(
    db: &Db,
    id: ExportId,
    token: &str,
    status: &str,
    error: Option<String>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    Stmt::new(
        "UPDATE exports SET status = $2, error = $3, finished_at = $4 WHERE id = $1 AND build_token = $5",
    )
    .bind(id)
    .bind(status.to_string())
    .bind(error)
    .bind(now)
    .bind(token.to_string())
    .execute(db)
    .await
    .map(|n| n == 1)
}

/// Queued or running exports of the org (a cap on how many it may ask
/// for at once).
pub async fn in_progress(db: &Db, t: &Tenant) -> Result<i64, sqlx::Error> {
    let sql = "SELECT COUNT(*) FROM exports WHERE org_id = $1 AND status IN ('queued', 'running')";
    db_run!(db, p => sqlx::query_scalar(sql).bind(t.org()).fetch_one(p).await)
}

pub async fn chunk(db: &Db, id: ExportId, seq: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let sql = "SELECT data FROM export_chunks WHERE export_id = $1 AND seq = $2";
    db_run!(db, p => sqlx::query_scalar(sql).bind(id).bind(seq).fetch_optional(p).await)
}

/// Deletes up to 10 exports past their expiry, each with its chunks in a
/// transaction of its own (a big export's delete never holds the write
/// lock for long); how many.
pub async fn prune(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let sql = "SELECT id FROM exports WHERE expires_at < $1 LIMIT 10";
    let ids: Vec<ExportId> =
        db_run!(db, p => sqlx::query_scalar(sql).bind(now).fetch_all(p).await)?;
    for id in &ids {
        // Chunks a few at a time, then the export.
        loop {
            let mut tx = db.begin().await?;
            let n = Stmt::new(
                "DELETE FROM export_chunks WHERE export_id = $1 AND seq IN
                 (SELECT seq FROM export_chunks WHERE export_id = $1 ORDER BY seq LIMIT 64)",
            )
            .bind(*id)
            .execute_in(&mut tx)
            .await?;
            if n == 0 {
                Stmt::new("DELETE FROM exports WHERE id = $1")
                    .bind(*id)
                    .execute_in(&mut tx)
                    .await?;
                tx.commit().await?;
                break;
            }
            tx.commit().await?;
        }
    }
    Ok(ids.len() as u64)
}
