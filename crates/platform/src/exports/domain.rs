//! Exports: what an organizer may ask for, the signed links that fetch
//! the result, and the build (rows streamed from the owning slices into
//! CSV or XLSX, stored in chunks as they are made).

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use kernel::{
    ApiError, ApiResult, Permission,
    clock::{MICROS_PER_SEC, rfc3339},
    ids::{EventId, ExportId, OrderId, TicketId},
    jobs::{HandlerResult, JobError, NewJob},
};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use super::{Build, store};
use crate::{
    App,
    events::Catalog,
    identity::{self, Actor, Tenant},
    sales, tickets,
};

/// How long a finished export is kept.
pub const KEEP_MICROS: i64 = 24 * 3600 * MICROS_PER_SEC;
/// How long a download link works.
pub const LINK_MICROS: i64 = 10 * 60 * MICROS_PER_SEC;
/// Rows read from the owning slice per query.
const PAGE: i64 = 1000;
/// Exports an org may have queued or running at once (then 429).
pub const MAX_IN_PROGRESS: i64 = 5;
/// Bytes per stored chunk (and per piece of a download).
pub const CHUNK: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportKind {
    /// One row per ticket: type, holder, order, status, admission.
    Attendees,
    /// One row per order: buyer, status, total.
    Orders,
    /// One row per admitted ticket: when and at which gate.
    Checkins,
}

impl ExportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportKind::Attendees => "attendees",
            ExportKind::Orders => "orders",
            ExportKind::Checkins => "checkins",
        }
    }
    pub fn parse(s: &str) -> Option<ExportKind> {
        [
            ExportKind::Attendees,
            ExportKind::Orders,
            ExportKind::Checkins,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    Csv,
    Xlsx,
}

impl ExportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Xlsx => "xlsx",
        }
    }
    pub fn parse(s: &str) -> Option<ExportFormat> {
        match s {
            "csv" => Some(ExportFormat::Csv),
            "xlsx" => Some(ExportFormat::Xlsx),
            _ => None,
        }
    }
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Xlsx => {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            }
        }
    }
}

/// An export and, once it is ready, a link that downloads it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ExportView {
    pub id: ExportId,
    pub event_id: EventId,
    pub kind: ExportKind,
    pub format: ExportFormat,
    /// `queued`, `running`, `ready` or `failed`.
    #[schema(pattern = "^(queued|running|ready|failed)$")]
    pub status: String,
    /// Rows written so far (all of them once ready).
    pub rows: i64,
    pub bytes: i64,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// When the file is deleted.
    pub expires_at: String,
    /// Downloads the file without credentials (the link is signed); valid
    /// for 10 minutes. Present once the export is ready: ask again for a
    /// fresh one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_expires_at: Option<String>,
}

fn view(r: store::ExportRow, now: i64) -> ExportView {
    let ready = r.status == "ready";
    let until = (now + LINK_MICROS).min(r.expires_at);
    ExportView {
        id: r.id,
        event_id: r.event_id,
        kind: ExportKind::parse(&r.kind).unwrap_or(ExportKind::Attendees),
        format: ExportFormat::parse(&r.format).unwrap_or(ExportFormat::Csv),
        download_url: ready.then(|| {
            let expires = until / MICROS_PER_SEC;
            format!(
                "/api/v1/exports/{}/file?expires={expires}&signature={}",
                r.id,
                signature(&r.link_key, r.id, expires)
            )
        }),
        download_expires_at: ready.then(|| rfc3339(until / MICROS_PER_SEC * MICROS_PER_SEC)),
        status: r.status,
        rows: r.rows_done,
        bytes: r.bytes,
        error: r.error,
        created_at: rfc3339(r.created_at),
        finished_at: r.finished_at.map(rfc3339),
        expires_at: rfc3339(r.expires_at),
    }
}

fn signature(key: &[u8], id: ExportId, expires: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(format!("{id}.{expires}").as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Asks for an export of one event; a job builds it.
pub async fn create(
    app: &App,
    actor: &Actor,
    event: EventId,
    kind: ExportKind,
    format: ExportFormat,
) -> ApiResult<ExportView> {
    let t = actor.require(Permission::OrdersRead)?;
    if crate::events::catalog(app, t, event).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    // Each export copies an event's data for a day: a few at a time.
    if store::in_progress(app.db(), t).await? >= MAX_IN_PROGRESS {
        return Err(ApiError::RateLimited {
            retry_after_secs: 10,
            limit: None,
        });
    }
    let now = app.kernel.now();
    let id = ExportId::new();
    let insert = store::insert(
        t,
        store::NewExport {
            id,
            event,
            kind: kind.as_str(),
            format: format.as_str(),
            link_key: kernel::auth::random_bytes::<32>().to_vec(),
            expires_at: now + KEEP_MICROS,
        },
        now,
    );
    let job = NewJob::of(&Build { export: id })
        .for_org(t.org().0)
        .stmt(now);
    let audit = actor
        .audit("export.create", "export")
        .object(id)
        .after(serde_json::json!({"event_id": event, "kind": kind, "format": format}))
        .stmt(now);
    let mut tx = app.db().begin().await?;
    tx.run_all(vec![insert, job, audit]).await?;
    tx.commit().await?;
    kernel::jobs::wake(super::QUEUE.name);
    get(app, actor, id).await
}

pub async fn get(app: &App, actor: &Actor, id: ExportId) -> ApiResult<ExportView> {
    let t = actor.require(Permission::OrdersRead)?;
    let row = store::get(app.db(), t, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(view(row, app.kernel.now()))
}

pub async fn list(
    app: &App,
    actor: &Actor,
    before: Option<ExportId>,
    limit: i64,
) -> ApiResult<Vec<ExportView>> {
    let t = actor.require(Permission::OrdersRead)?;
    let now = app.kernel.now();
    Ok(store::list(app.db(), t, before, limit)
        .await?
        .into_iter()
        .map(|r| view(r, now))
        .collect())
}

/// The export a signed link names, if the link is genuine and current.
pub async fn by_link(
    app: &App,
    id: ExportId,
    expires: i64,
    sig: &str,
) -> ApiResult<(store::ExportRow, String)> {
    let row = store::by_id(app.db(), id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&row.link_key).expect("HMAC takes any key");
    mac.update(format!("{id}.{expires}").as_bytes());
    let given = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| ApiError::Forbidden("the link's signature is not valid".into()))?;
    mac.verify_slice(&given)
        .map_err(|_| ApiError::Forbidden("the link's signature is not valid".into()))?;
    let now = app.kernel.now();
    if expires * MICROS_PER_SEC < now || now > row.expires_at {
        return Err(ApiError::Gone(
            "the link has expired; ask for the export again".into(),
        ));
    }
    if row.status != "ready" {
        return Err(ApiError::Conflict("the export is not ready".into()));
    }
    let event = match identity::upkeep_tenant(app, row.org_id).await? {
        Some(t) => crate::events::catalog(app, &t, row.event_id)
            .await?
            .map(|c| c.event.name.clone()),
        None => None,
    };
    let name = format!(
        "{}-{}.{}",
        row.kind,
        file_stem(event.as_deref().unwrap_or("event")),
        row.format
    );
    Ok((row, name))
}

/// A file name's stem from an event name: letters, digits and dashes.
fn file_stem(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "event".into()
    } else {
        out.chars().take(60).collect()
    }
}

/// Deletes expired exports; how many chunks went.
pub async fn prune(app: &App) -> Result<usize, String> {
    store::prune(app.db(), app.kernel.now())
        .await
        .map(|n| n as usize)
        .map_err(|e| e.to_string())
}

// The build.

/// A cell that a spreadsheet would run as a formula is written as text
/// (CSV injection: a buyer named "=HYPERLINK(...)").
pub fn defuse(s: String) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s
    }
}

/// The CSV writer's output, which the build takes from a chunk at a time.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn len(&self) -> usize {
        self.0.lock().expect("not poisoned").len()
    }
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("not poisoned"))
    }
}

/// Where rows go.
enum Sink {
    Csv(Box<csv::Writer<Shared>>, Shared),
    Xlsx {
        book: Box<rust_xlsxwriter::Workbook>,
        row: u32,
    },
}

impl Sink {
    fn new(format: ExportFormat) -> Result<Sink, String> {
        Ok(match format {
            ExportFormat::Csv => {
                let out = Shared::default();
                Sink::Csv(Box::new(csv::Writer::from_writer(out.clone())), out)
            }
            ExportFormat::Xlsx => {
                let mut book = rust_xlsxwriter::Workbook::new();
                book.add_worksheet_with_constant_memory()
                    .map_err(|e| e.to_string())?;
                Sink::Xlsx {
                    book: Box::new(book),
                    row: 0,
                }
            }
        })
    }

    fn write(&mut self, cells: &[String]) -> Result<(), String> {
        match self {
            Sink::Csv(w, _) => w
                .write_record(cells.iter().map(|c| defuse(c.clone())))
                .map_err(|e| e.to_string()),
            Sink::Xlsx { book, row } => {
                let sheet = book.worksheet_from_index(0).map_err(|e| e.to_string())?;
                for (col, cell) in cells.iter().enumerate() {
                    sheet
                        .write_string(*row, col as u16, cell)
                        .map_err(|e| e.to_string())?;
                }
                *row += 1;
                Ok(())
            }
        }
    }

    /// A chunk's worth of finished CSV bytes, when there is one.
    fn full_chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        match self {
            Sink::Csv(w, out) => {
                // The writer buffers a little itself: flush it first.
                w.flush().map_err(|e| e.to_string())?;
                Ok((out.len() >= CHUNK).then(|| out.take()))
            }
            _ => Ok(None),
        }
    }
}

/// Why a build stopped.
enum Stop {
    /// Worth another attempt (the database was busy, a disk was full).
    Transient(String),
    /// Never worth another (the event is gone).
    Permanent(String),
    /// A newer build of the same export took over (a rescued job).
    Superseded,
}

impl From<sqlx::Error> for Stop {
    fn from(e: sqlx::Error) -> Stop {
        Stop::Transient(e.to_string())
    }
}

fn transient(e: impl std::fmt::Display) -> Stop {
    Stop::Transient(e.to_string())
}

/// Stores `data` as chunks from `seq` on; returns the next seq.
async fn store_chunks(
    app: &App,
    id: ExportId,
    token: &str,
    mut seq: i64,
    data: &[u8],
    rows: i64,
) -> Result<i64, Stop> {
    for piece in data.chunks(CHUNK) {
        if !store::put_chunk(app.db(), id, token, seq, piece.to_vec(), rows).await? {
            return Err(Stop::Superseded);
        }
        seq += 1;
    }
    Ok(seq)
}

/// The `exports.build` job: builds the export under a token of its own, so
/// that if the job is rescued while it still runs (a node cut off), the
/// newer build wins and this one stops at its next write.
pub async fn build(app: &App, id: ExportId) -> HandlerResult {
    let Some(row) = store::by_id(app.db(), id).await? else {
        return Err(JobError::Discard(format!("export {id} is gone")));
    };
    if row.status == "ready" {
        return Ok(());
    }
    let token = uuid::Uuid::now_v7().to_string();
    let result = build_file(app, &row, &token).await;
    let failed = |e: &str| {
        store::finish(
            app.db(),
            id,
            &token,
            "failed",
            Some(e.to_string()),
            app.kernel.now(),
        )
    };
    match result {
        Ok(()) | Err(Stop::Superseded) => Ok(()),
        Err(Stop::Transient(e)) => {
            failed(&e).await?;
            Err(JobError::Failed(e))
        }
        Err(Stop::Permanent(e)) => {
            failed(&e).await?;
            Err(JobError::Discard(e))
        }
    }
}

async fn build_file(app: &App, row: &store::ExportRow, token: &str) -> Result<(), Stop> {
    let kind = ExportKind::parse(&row.kind).ok_or(Stop::Permanent("unknown export kind".into()))?;
    let format =
        ExportFormat::parse(&row.format).ok_or(Stop::Permanent("unknown export format".into()))?;
    let t = identity::upkeep_tenant(app, row.org_id)
        .await
        .map_err(transient)?
        .ok_or(Stop::Permanent("the organization is gone".into()))?;
    let catalog = crate::events::catalog(app, &t, row.event_id)
        .await
        .map_err(transient)?
        .ok_or(Stop::Permanent("the event is gone".into()))?;
    store::start(app.db(), row.id, token).await?;
    let mut sink = Sink::new(format).map_err(transient)?;
    let mut seq = 0;
    let mut rows = 0i64;
    sink.write(&header(kind)).map_err(transient)?;
    let mut pages = Pages::new(kind);
    loop {
        let lines = pages
            .next(app, &t, &catalog, row.event_id)
            .await
            .map_err(transient)?;
        if lines.is_empty() {
            break;
        }
        for line in &lines {
            sink.write(line).map_err(transient)?;
        }
        rows += lines.len() as i64;
        match sink.full_chunk().map_err(transient)? {
            Some(bytes) => seq = store_chunks(app, row.id, token, seq, &bytes, rows).await?,
            None => {
                if !store::progress(app.db(), row.id, token, rows).await? {
                    return Err(Stop::Superseded);
                }
            }
        }
    }
    match sink {
        Sink::Csv(w, out) => {
            drop((*w).into_inner().map_err(transient)?);
            let rest = out.take();
            store_chunks(app, row.id, token, seq, &rest, rows).await?;
        }
        Sink::Xlsx { mut book, .. } => {
            // The workbook's rows sit in temporary files (constant memory
            // mode); the saved file is read back a chunk at a time, and
            // removed whatever happens.
            let dir = app.kernel.config.data_dir.join("tmp");
            std::fs::create_dir_all(&dir).map_err(transient)?;
            let path = dir.join(format!("export-{}-{token}.xlsx", row.id));
            let p = path.clone();
            let saved = tokio::task::spawn_blocking(move || book.save(&p)).await;
            let result = match saved {
                Ok(Ok(())) => copy_file(app, row.id, token, &path, rows).await,
                Ok(Err(e)) => Err(transient(e)),
                Err(e) => Err(transient(e)),
            };
            let _ = std::fs::remove_file(&path);
            result?;
        }
    }
    if store::finish(app.db(), row.id, token, "ready", None, app.kernel.now()).await? {
        Ok(())
    } else {
        Err(Stop::Superseded)
    }
}

async fn copy_file(
    app: &App,
    id: ExportId,
    token: &str,
    path: &std::path::Path,
    rows: i64,
) -> Result<(), Stop> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await.map_err(transient)?;
    let mut seq = 0;
    loop {
        let mut buf = Vec::with_capacity(CHUNK);
        let n = (&mut file)
            .take(CHUNK as u64)
            .read_to_end(&mut buf)
            .await
            .map_err(transient)?;
        if n == 0 {
            return Ok(());
        }
        seq = store_chunks(app, id, token, seq, &buf, rows).await?;
    }
}

fn header(kind: ExportKind) -> Vec<String> {
    let cols: &[&str] = match kind {
        ExportKind::Attendees => &[
            "ticket_id",
            "ticket_type",
            "holder_name",
            "holder_email",
            "order_id",
            "order_status",
            "ticket_status",
            "issued_at",
            "admitted_at",
        ],
        ExportKind::Orders => &[
            "order_id",
            "status",
            "buyer_name",
            "buyer_email",
            "total",
            "currency",
            "created_at",
        ],
        ExportKind::Checkins => &[
            "ticket_id",
            "ticket_type",
            "holder_name",
            "admitted_at",
            "gate",
        ],
    };
    cols.iter().map(|c| c.to_string()).collect()
}

/// Reads the owning slices a page at a time, by id.
struct Pages {
    kind: ExportKind,
    after_ticket: Option<TicketId>,
    after_order: Option<OrderId>,
}

impl Pages {
    fn new(kind: ExportKind) -> Pages {
        Pages {
            kind,
            after_ticket: None,
            after_order: None,
        }
    }

    async fn next(
        &mut self,
        app: &App,
        t: &Tenant,
        catalog: &Catalog,
        event: EventId,
    ) -> Result<Vec<Vec<String>>, String> {
        let api_err = |e: ApiError| e.to_string();
        let type_name = |id| {
            catalog
                .ticket_type(id)
                .map(|tt| tt.name.clone())
                .unwrap_or_default()
        };
        match self.kind {
            ExportKind::Orders => {
                let orders = sales::orders_page(app, t, event, self.after_order, PAGE)
                    .await
                    .map_err(|e| api_err(e.into()))?;
                self.after_order = orders.last().map(|o| o.id);
                Ok(orders
                    .into_iter()
                    .map(|o| {
                        vec![
                            o.id.to_string(),
                            o.status.as_str().to_string(),
                            o.buyer_name,
                            o.buyer_email,
                            crate::money::amount(o.total_cents, &o.currency),
                            o.currency,
                            rfc3339(o.created_at),
                        ]
                    })
                    .collect())
            }
            ExportKind::Attendees | ExportKind::Checkins => {
                let admitted_only = self.kind == ExportKind::Checkins;
                let page =
                    tickets::export_page(app, t, event, self.after_ticket, admitted_only, PAGE)
                        .await
                        .map_err(api_err)?;
                self.after_ticket = page.last().map(|x| x.id);
                let mut ids: Vec<OrderId> = page.iter().map(|x| x.order_id).collect();
                ids.sort_unstable();
                ids.dedup();
                let orders: HashMap<OrderId, sales::OrderSummary> =
                    sales::order_summaries(app, t, &ids)
                        .await
                        .map_err(|e| api_err(e.into()))?;
                Ok(page
                    .into_iter()
                    .map(|x| {
                        let o = orders.get(&x.order_id);
                        let holder = o.map(|o| o.buyer_name.clone()).unwrap_or_default();
                        if admitted_only {
                            vec![
                                x.id.to_string(),
                                type_name(x.ticket_type_id),
                                holder,
                                x.admitted_at.map(rfc3339).unwrap_or_default(),
                                x.admitted_gate.unwrap_or_default(),
                            ]
                        } else {
                            vec![
                                x.id.to_string(),
                                type_name(x.ticket_type_id),
                                holder,
                                o.map(|o| o.buyer_email.clone()).unwrap_or_default(),
                                x.order_id.to_string(),
                                o.map(|o| o.status.as_str().to_string()).unwrap_or_default(),
                                x.status.as_str().to_string(),
                                rfc3339(x.created_at),
                                x.admitted_at.map(rfc3339).unwrap_or_default(),
                            ]
                        }
                    })
                    .collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_defused_and_amounts_are_decimal() {
        assert_eq!(defuse("=HYPERLINK(\"x\")".into()), "'=HYPERLINK(\"x\")");
        assert_eq!(defuse("-1".into()), "'-1");
        assert_eq!(defuse("Zoë".into()), "Zoë");
        assert_eq!(
            file_stem("Kaapse Klopse: Night 2!"),
            "kaapse-klopse-night-2"
        );
        assert_eq!(file_stem("!!!"), "event");
    }
}
