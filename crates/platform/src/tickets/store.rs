//! Tickets' tables.

use std::collections::HashMap;

use kernel::{
    Db, Stmt, Tx,
    auth::{SigningKey, VerifyingKey},
    db_run,
    ids::{DeviceId, EventId, GateId, OrderId, OrgId, SigningKeyId, TicketId, TicketTypeId},
    secrets::MasterKey,
    tx_run,
};

use super::{OrgKeys, TicketStatus};
use crate::identity::Tenant;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TicketRecord {
    pub id: TicketId,
    pub event_id: EventId,
    pub ticket_type_id: TicketTypeId,
    pub code: String,
    #[sqlx(try_from = "String")]
    pub status: TicketStatus,
    pub admitted_at: Option<i64>,
    /// The seat's id in the event's seat map (seated events).
    pub seat_id: Option<String>,
    /// The attendee's answers (JSON: question id → answer).
    pub answers: Option<String>,
    pub order_id: OrderId,
    /// Who it was handed on to (a ticket issued by a transfer).
    pub holder_email: Option<String>,
    pub holder_name: Option<String>,
    /// The ticket this one replaced (a transfer).
    pub replaces: Option<TicketId>,
    /// When it was handed on (it is revoked since).
    pub transferred_at: Option<i64>,
}

const COLS: &str = "id, event_id, ticket_type_id, code, status, admitted_at, seat_id, answers,
    order_id, holder_email, holder_name, replaces, transferred_at";

/// A new signing key for `org`, sealed under the master key: its row's
/// values (kid, sealed secret, public key).
fn new_key(master: &MasterKey, org: OrgId) -> (String, Vec<u8>, Vec<u8>) {
    let key = kernel::auth::generate_signing_key();
    let kid = hex8(&kernel::auth::random_bytes::<4>());
    let sealed = master.seal(&key_context(org, &kid), &key.to_bytes());
    (kid, sealed, key.verifying_key().to_bytes().to_vec())
}

/// What a sealed key is bound to: its org and kid (a sealed value copied to
/// another row does not open).
fn key_context(org: OrgId, kid: &str) -> Vec<u8> {
    format!("org-signing-key:{org}:{kid}").into_bytes()
}

/// Makes the org's first signing key unless it has an active one (the
/// partial unique index on active keys settles a race).
#[tracing::instrument(skip_all)]
pub async fn ensure_signing_key(
    tx: &mut Tx,
    master: &MasterKey,
    org: OrgId,
    now: i64,
) -> Result<(), sqlx::Error> {
    let (kid, sealed, public) = new_key(master, org);
    let sql = "INSERT INTO org_signing_keys (org_id, id, kid, secret_key, public_key, active, created_at, sealed_key, sealed_with)
               SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
               WHERE NOT EXISTS (SELECT 1 FROM org_signing_keys WHERE org_id = $1 AND active = $6)
               ON CONFLICT DO NOTHING";
    tx_run!(tx, c => sqlx::query(sql)
        .bind(org).bind(SigningKeyId::new()).bind(&kid).bind(Vec::<u8>::new())
        .bind(&public).bind(true).bind(now).bind(&sealed).bind(&master.fingerprint)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Rotates the org's signing key: the active one stays to verify, a new
/// one signs from now on. The new key's kid.
pub async fn rotate_key(
    tx: &mut Tx,
    master: &MasterKey,
    org: OrgId,
    now: i64,
) -> Result<String, sqlx::Error> {
    let sql = "UPDATE org_signing_keys SET active = $2 WHERE org_id = $1 AND active = $3";
    tx_run!(tx, c => sqlx::query(sql).bind(org).bind(false).bind(true).execute(c).await.map(|r| r.rows_affected()))?;
    let (kid, sealed, public) = new_key(master, org);
    let sql = "INSERT INTO org_signing_keys (org_id, id, kid, secret_key, public_key, active, created_at, sealed_key, sealed_with)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    tx_run!(tx, c => sqlx::query(sql)
        .bind(org).bind(SigningKeyId::new()).bind(&kid).bind(Vec::<u8>::new())
        .bind(&public).bind(true).bind(now).bind(&sealed).bind(&master.fingerprint)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(kid)
}

/// Retires a key that is not the active one: it verifies nothing any more.
/// False when there is no such inactive, unretired key.
pub async fn retire_key(tx: &mut Tx, org: OrgId, kid: &str, now: i64) -> Result<bool, sqlx::Error> {
    let sql = "UPDATE org_signing_keys SET retired_at = $3, sealed_key = NULL, secret_key = $4
               WHERE org_id = $1 AND kid = $2 AND active = $5 AND retired_at IS NULL";
    let n = tx_run!(tx, c => sqlx::query(sql).bind(org).bind(kid).bind(now).bind(Vec::<u8>::new()).bind(false)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// A signing key as the organizer's list shows it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KeyRow {
    pub kid: String,
    pub public_key: Vec<u8>,
    pub active: bool,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    /// Valid tickets whose codes it signed.
    pub tickets: i64,
}

pub async fn key_rows(db: &Db, org: OrgId) -> Result<Vec<KeyRow>, sqlx::Error> {
    let sql = "SELECT k.kid, k.public_key, k.active, k.created_at, k.retired_at,
                      (SELECT COUNT(*) FROM tickets t WHERE t.org_id = k.org_id AND t.kid = k.kid AND t.status = 'valid') AS tickets
               FROM org_signing_keys k WHERE k.org_id = $1 ORDER BY k.created_at DESC, k.kid";
    db_run!(db, p => sqlx::query_as(sql).bind(org).fetch_all(p).await)
}

/// Valid tickets whose codes `kid` signed.
pub async fn tickets_of_key(
    db: &Db,
    t: &Tenant,
    kid: &str,
) -> Result<Vec<TicketRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLS} FROM tickets WHERE org_id = $1 AND kid = $2 AND status = 'valid' ORDER BY created_at, id"
    );
    db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(t.org()).bind(kid).fetch_all(p).await)
}

fn hex8(b: &[u8; 4]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The org's keys; `None` when it has no active key yet. A key still in
/// clear (made before keys were sealed) or sealed under another master key
/// (the database's, before a file was given) is sealed under this node's
/// key as it is read.
#[tracing::instrument(skip_all)]
pub async fn org_keys(
    db: &Db,
    master: &MasterKey,
    org: OrgId,
) -> Result<Option<OrgKeys>, sqlx::Error> {
    type Row = (
        String,
        Vec<u8>,
        Vec<u8>,
        bool,
        Option<Vec<u8>>,
        Option<String>,
    );
    let sql =
        "SELECT kid, secret_key, public_key, active, sealed_key, sealed_with FROM org_signing_keys
               WHERE org_id = $1 AND retired_at IS NULL ORDER BY created_at DESC";
    let rows: Vec<Row> = db_run!(db, p => sqlx::query_as(sql).bind(org).fetch_all(p).await)?;
    let mut signing = None;
    let mut verifying = Vec::new();
    for (kid, clear, public, active, sealed, sealed_with) in rows {
        let bad = |what: &str| sqlx::Error::Decode(format!("org key {kid}: {what}").into());
        let public: [u8; 32] = public.try_into().map_err(|_| bad("bad public key"))?;
        verifying.push((
            kid.clone(),
            VerifyingKey::from_bytes(&public).map_err(|_| bad("bad public key"))?,
        ));
        if !active || signing.is_some() {
            continue;
        }
        let context = key_context(org, &kid);
        let secret = match (sealed, sealed_with) {
            (Some(s), Some(with)) if with == master.fingerprint => master.open(&context, &s),
            (Some(s), _) => {
                // Sealed under another master key: the database's, if any.
                let other = MasterKey::database(db)
                    .await
                    .map_err(|e| bad(&e.to_string()))?;
                let opened = other.and_then(|o| o.open(&context, &s));
                if let Some(secret) = &opened {
                    reseal(db, master, org, &kid, secret).await?;
                }
                opened
            }
            (None, _) if clear.len() == 32 => {
                reseal(db, master, org, &kid, &clear).await?;
                Some(clear)
            }
            _ => None,
        };
        let secret: [u8; 32] = secret
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| bad("does not open under this node's master key (give every node the same --master-key-file)"))?;
        signing = Some((kid, SigningKey::from_bytes(&secret)));
    }
    Ok(signing.map(|signing| OrgKeys { signing, verifying }))
}

/// Seals a key under `master` and forgets its clear copy.
async fn reseal(
    db: &Db,
    master: &MasterKey,
    org: OrgId,
    kid: &str,
    secret: &[u8],
) -> Result<(), sqlx::Error> {
    let sealed = master.seal(&key_context(org, kid), secret);
    let sql = "UPDATE org_signing_keys SET sealed_key = $3, sealed_with = $4, secret_key = $5 WHERE org_id = $1 AND kid = $2";
    db_run!(db, p => sqlx::query(sql).bind(org).bind(kid).bind(&sealed).bind(&master.fingerprint).bind(Vec::<u8>::new()).execute(p).await.map(|r| r.rows_affected()))?;
    tracing::info!(org = %org, kid, "sealed a signing key under this node's master key");
    Ok(())
}

pub fn insert_ticket(t: &Tenant, order: OrderId, r: &TicketRecord, now: i64) -> Stmt {
    Stmt::new(
                "INSERT INTO tickets (org_id, id, order_id, event_id, ticket_type_id, code, status, created_at, seat_id, answers,
             holder_email, holder_name, replaces, kid)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(t.org())
    .bind(r.id)
    .bind(order)
    .bind(r.event_id)
    .bind(r.ticket_type_id)
    .bind(r.code.as_str())
        .bind(r.status.as_str())
    .bind(now)
    .bind(r.seat_id.clone())
    .bind(r.answers.clone())
    .bind(r.holder_email.clone())
    .bind(r.holder_name.clone())
    .bind(r.replaces.map(|id| id.0))
    .bind(super::code::parse_code(&r.code).map(|c| c.kid))
}

/// Revokes a ticket handed on, only while it is valid and not admitted
/// (one row when it did).
pub fn hand_on(t: &Tenant, ticket: TicketId, now: i64) -> Stmt {
    Stmt::new(
        "UPDATE tickets SET status = 'revoked', transferred_at = $1
         WHERE org_id = $2 AND id = $3 AND status = 'valid' AND admitted_at IS NULL",
    )
    .bind(now)
    .bind(t.org())
    .bind(ticket)
}

/// Keeps the hash of a new key to a handed-on ticket's page (the last
/// mailed link is the one that works).
pub fn set_holder_token(t: &Tenant, ticket: TicketId, hash: &[u8]) -> Stmt {
    Stmt::new("UPDATE tickets SET holder_token_hash = $1 WHERE org_id = $2 AND id = $3")
        .bind(hash.to_vec())
        .bind(t.org())
        .bind(ticket)
}

#[tracing::instrument(skip_all)]
pub async fn holder_token_hash(
    db: &Db,
    t: &Tenant,
    ticket: TicketId,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let sql = "SELECT holder_token_hash FROM tickets WHERE org_id = $1 AND id = $2";
    let h: Option<Option<Vec<u8>>> = db_run!(db, p => sqlx::query_scalar(sql).bind(t.org()).bind(ticket).fetch_optional(p).await)?;
    Ok(h.flatten())
}

#[tracing::instrument(skip_all)]
pub async fn for_order(
    db: &Db,
    t: &Tenant,
    order: OrderId,
) -> Result<Vec<TicketRecord>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM tickets WHERE org_id = $1 AND order_id = $2 ORDER BY id");
    db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(t.org()).bind(order).fetch_all(p).await)
}

#[tracing::instrument(skip_all)]
pub async fn for_event(
    db: &Db,
    t: &Tenant,
    event: EventId,
) -> Result<Vec<TicketRecord>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM tickets WHERE org_id = $1 AND event_id = $2");
    db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(t.org()).bind(event).fetch_all(p).await)
}

#[tracing::instrument(skip_all)]
pub async fn by_id(db: &Db, t: &Tenant, id: TicketId) -> Result<Option<TicketRecord>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM tickets WHERE org_id = $1 AND id = $2");
    db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(t.org()).bind(id).fetch_optional(p).await)
}

/// One admission to make durable (admissions of many tenants share a batch,
/// so each carries its org).
#[derive(Clone, Debug)]
pub struct AdmissionWrite {
    pub org: OrgId,
    pub ticket: TicketId,
    pub at: i64,
    /// `None`: checked in at the box office.
    pub device: Option<DeviceId>,
    /// The gate's id (as text), or a device's own label for its place.
    pub gate: Option<String>,
    /// The gate it came in through (NULL: no gate set up).
    pub gate_id: Option<GateId>,
    /// `true`: a ticket enters once, ever; `false` (an `in_out` gate): it
    /// enters whenever it is not inside.
    pub single: bool,
}

/// See [`super::clear_admission`].
pub fn clear_admission(t: &Tenant, ticket: TicketId, admitted_at: i64) -> Stmt {
    Stmt::new(
        "UPDATE tickets SET admitted_at = NULL, admitted_device = NULL, admitted_gate = NULL,
                inside_since = NULL, inside_gate = NULL, entries = 0, last_entry_at = NULL
         WHERE org_id = $1 AND id = $2 AND admitted_at = $3 RETURNING id",
    )
    .bind(t.org())
    .bind(ticket)
    .bind(admitted_at)
}

/// Revokes the order's valid tickets.
pub fn revoke_order(t: &Tenant, order: OrderId) -> Stmt {
    Stmt::new("UPDATE tickets SET status = 'revoked' WHERE org_id = $1 AND order_id = $2 AND status = 'valid'")
        .bind(t.org())
        .bind(order)
}

/// What the database said to one admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// This write admitted the ticket.
    Admitted,
    /// It had been admitted before, at this time.
    Before(i64),
    /// It was revoked (refunded or cancelled): it never admits.
    Revoked,
}

/// Sets `admitted_at` of each valid ticket unless it is already set, for a
/// batch of admissions in one transaction: one statement for the whole
/// batch on either backend (round trips, not rows, cost). Per admission:
/// admitted by this write, admitted before (and when), or revoked (the
/// database is the final arbiter; a ticket twice in one batch is admitted
/// by one write only).
pub async fn mark_admitted_batch(
    tx: &mut Tx,
    writes: &[&AdmissionWrite],
) -> Result<Vec<Admit>, sqlx::Error> {
    let t = match tx {
        Tx::Pg(t, _) => t,
        Tx::Sqlite(t, ..) => return mark_admitted_batch_sqlite(t, writes).await,
    };
    let orgs: Vec<uuid::Uuid> = writes.iter().map(|w| w.org.0).collect();
    let ids: Vec<uuid::Uuid> = writes.iter().map(|w| w.ticket.0).collect();
    let ats: Vec<i64> = writes.iter().map(|w| w.at).collect();
    let devices: Vec<Option<uuid::Uuid>> = writes.iter().map(|w| w.device.map(|d| d.0)).collect();
    let gates: Vec<Option<String>> = writes.iter().map(|w| w.gate.clone()).collect();
    let gate_ids: Vec<Option<uuid::Uuid>> = writes.iter().map(|w| w.gate_id.map(|g| g.0)).collect();
    let single: Vec<i64> = writes.iter().map(|w| i64::from(w.single)).collect();
    let sql = "UPDATE tickets t SET admitted_at = COALESCE(t.admitted_at, v.at),
                      admitted_device = COALESCE(t.admitted_device, v.device),
                      admitted_gate = CASE WHEN t.admitted_at IS NULL THEN v.gate ELSE t.admitted_gate END,
                      inside_since = v.at, inside_gate = v.gate_id, entries = t.entries + 1, last_entry_at = v.at
               FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[], $6::uuid[], $7::bigint[])
                    AS v(org_id, id, at, device, gate, gate_id, single)
               WHERE t.org_id = v.org_id AND t.id = v.id AND t.status = 'valid'
                 AND ((v.single = 1 AND t.admitted_at IS NULL) OR (v.single = 0 AND t.inside_since IS NULL))
               RETURNING t.id, t.last_entry_at";
    let won: Vec<(uuid::Uuid, i64)> = sqlx::query_as(sql)
        .bind(&orgs)
        .bind(&ids)
        .bind(&ats)
        .bind(&devices)
        .bind(&gates)
        .bind(&gate_ids)
        .bind(&single)
        .fetch_all(&mut **t)
        .await?;
    let (mut out, lost) = settle(writes, won);
    if !lost.is_empty() {
        let sql = "SELECT t.id, t.admitted_at, t.status FROM tickets t
                   JOIN UNNEST($1::uuid[], $2::uuid[]) AS v(org_id, id) ON t.org_id = v.org_id AND t.id = v.id";
        let lo: Vec<uuid::Uuid> = lost.iter().map(|&i| writes[i].org.0).collect();
        let li: Vec<uuid::Uuid> = lost.iter().map(|&i| writes[i].ticket.0).collect();
        let earlier: Vec<(uuid::Uuid, Option<i64>, String)> = sqlx::query_as(sql)
            .bind(&lo)
            .bind(&li)
            .fetch_all(&mut **t)
            .await?;
        explain_lost(writes, &lost, earlier, &mut out);
    }
    Ok(out)
}

/// Which writes won (`Admitted`), and the indexes of those that did not.
fn settle(writes: &[&AdmissionWrite], won: Vec<(uuid::Uuid, i64)>) -> (Vec<Admit>, Vec<usize>) {
    let mut won: HashMap<uuid::Uuid, i64> = won.into_iter().collect();
    let mut out = Vec::with_capacity(writes.len());
    let mut lost = Vec::new();
    for (i, w) in writes.iter().enumerate() {
        // `remove`: a ticket twice in one batch is admitted by one write only.
        match won.remove(&w.ticket.0) {
            Some(at) if at == w.at => out.push(Admit::Admitted),
            _ => {
                lost.push(i);
                out.push(Admit::Before(w.at));
            }
        }
    }
    (out, lost)
}

/// Why the lost writes lost: an earlier admission, or a revoked ticket.
fn explain_lost(
    writes: &[&AdmissionWrite],
    lost: &[usize],
    rows: Vec<(uuid::Uuid, Option<i64>, String)>,
    out: &mut [Admit],
) {
    let rows: HashMap<uuid::Uuid, (Option<i64>, String)> = rows
        .into_iter()
        .map(|(id, at, st)| (id, (at, st)))
        .collect();
    for &i in lost {
        let w = writes[i];
        out[i] = match rows.get(&w.ticket.0) {
            Some((Some(at), _)) => Admit::Before(*at),
            Some((None, st)) if st.as_str() != TicketStatus::Valid.as_str() => Admit::Revoked,
            // Admitted by another write of this batch.
            _ => Admit::Before(w.at),
        };
    }
}

fn hex(u: uuid::Uuid) -> String {
    u.simple().to_string()
}

/// The SQLite form of [`mark_admitted_batch`]: the batch travels as one JSON
/// array (ids as hex, turned back into blobs by `unhex`).
async fn mark_admitted_batch_sqlite(
    t: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    writes: &[&AdmissionWrite],
) -> Result<Vec<Admit>, sqlx::Error> {
    let rows: Vec<serde_json::Value> = writes
        .iter()
        .map(|w| {
            serde_json::json!([
                hex(w.org.0),
                hex(w.ticket.0),
                w.at,
                w.device.map(|d| hex(d.0)),
                w.gate,
                w.gate_id.map(|g| hex(g.0)),
                i64::from(w.single)
            ])
        })
        .collect();
    let batch = serde_json::Value::Array(rows).to_string();
    let sql = "UPDATE tickets SET admitted_at = COALESCE(tickets.admitted_at, v.at),
                      admitted_device = COALESCE(tickets.admitted_device, v.device),
                      admitted_gate = CASE WHEN tickets.admitted_at IS NULL THEN v.gate ELSE tickets.admitted_gate END,
                      inside_since = v.at, inside_gate = v.gate_id, entries = tickets.entries + 1, last_entry_at = v.at
               FROM (SELECT unhex(json_extract(value, '$[0]')) AS org, unhex(json_extract(value, '$[1]')) AS id,
                            json_extract(value, '$[2]') AS at, unhex(json_extract(value, '$[3]')) AS device,
                            json_extract(value, '$[4]') AS gate, unhex(json_extract(value, '$[5]')) AS gate_id,
                            json_extract(value, '$[6]') AS single
                     FROM json_each($1)) AS v
               WHERE tickets.org_id = v.org AND tickets.id = v.id AND tickets.status = 'valid'
                 AND ((v.single = 1 AND tickets.admitted_at IS NULL) OR (v.single = 0 AND tickets.inside_since IS NULL))
               RETURNING tickets.id, tickets.last_entry_at";
    let won: Vec<(uuid::Uuid, i64)> = sqlx::query_as(sql).bind(&batch).fetch_all(&mut **t).await?;
    let (mut out, lost) = settle(writes, won);
    if !lost.is_empty() {
        let sql = "SELECT id, admitted_at, status FROM tickets
                   WHERE (org_id, id) IN (SELECT unhex(json_extract(value, '$[0]')), unhex(json_extract(value, '$[1]'))
                                          FROM json_each($1))";
        let earlier: Vec<(uuid::Uuid, Option<i64>, String)> =
            sqlx::query_as(sql).bind(&batch).fetch_all(&mut **t).await?;
        explain_lost(writes, &lost, earlier, &mut out);
    }
    Ok(out)
}

/// A ticket as an export lists it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ExportRow {
    pub id: TicketId,
    pub order_id: OrderId,
    pub ticket_type_id: TicketTypeId,
    #[sqlx(try_from = "String")]
    pub status: TicketStatus,
    pub admitted_at: Option<i64>,
    pub admitted_gate: Option<String>,
    pub created_at: i64,
}

/// The event's tickets after `after` by id, `limit` of them; only the
/// admitted ones when `admitted_only`.
#[tracing::instrument(skip_all)]
pub async fn export_page(
    db: &Db,
    t: &Tenant,
    event: EventId,
    after: Option<TicketId>,
    admitted_only: bool,
    limit: i64,
) -> Result<Vec<ExportRow>, sqlx::Error> {
    // Two texts, so that with a cursor the primary key (org_id, id) is
    // walked from it, never sorted whole: a page costs its own rows only.
    let sql = match after {
        None => "SELECT id, order_id, ticket_type_id, status, admitted_at, admitted_gate, created_at FROM tickets
                 WHERE org_id = $1 AND event_id = $2 AND ($3 = 0 OR admitted_at IS NOT NULL) ORDER BY id LIMIT $4",
        Some(_) => "SELECT id, order_id, ticket_type_id, status, admitted_at, admitted_gate, created_at FROM tickets
                 WHERE org_id = $1 AND event_id = $2 AND ($3 = 0 OR admitted_at IS NOT NULL) AND id > $5 ORDER BY id LIMIT $4",
    };
    db_run!(db, p => {
        let q = sqlx::query_as(sql).bind(t.org()).bind(event).bind(admitted_only as i64).bind(limit);
        match after {
            Some(a) => q.bind(a).fetch_all(p).await,
            None => q.fetch_all(p).await,
        }
    })
}

/// Tickets issued per (ticket type, `bucket`-long slice of time since the
/// epoch): the sales report's raw counts.
#[tracing::instrument(skip_all)]
pub async fn issued_by_type(
    db: &Db,
    t: &Tenant,
    event: EventId,
    bucket: i64,
) -> Result<Vec<(TicketTypeId, i64, i64)>, sqlx::Error> {
    let sql = "SELECT ticket_type_id, created_at / $3 AS slot, COUNT(*) FROM tickets
               WHERE org_id = $1 AND event_id = $2 GROUP BY ticket_type_id, created_at / $3 ORDER BY slot";
    db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(event).bind(bucket).fetch_all(p).await)
}

/// Marks tickets as gone out (an exit scan at an `in_out` gate), one
/// statement for the batch. An exit of a ticket not inside changes nothing.
pub async fn mark_exited_batch(
    tx: &mut Tx,
    exits: &[(OrgId, TicketId)],
) -> Result<(), sqlx::Error> {
    if exits.is_empty() {
        return Ok(());
    }
    let batch = serde_json::Value::Array(
        exits
            .iter()
            .map(|(o, t)| serde_json::json!([hex(o.0), hex(t.0)]))
            .collect(),
    )
    .to_string();
    match tx {
        Tx::Pg(t, _) => {
            let orgs: Vec<uuid::Uuid> = exits.iter().map(|(o, _)| o.0).collect();
            let ids: Vec<uuid::Uuid> = exits.iter().map(|(_, t)| t.0).collect();
            sqlx::query(
                "UPDATE tickets t SET inside_since = NULL, inside_gate = NULL
                 FROM UNNEST($1::uuid[], $2::uuid[]) AS v(org_id, id)
                 WHERE t.org_id = v.org_id AND t.id = v.id AND t.inside_since IS NOT NULL",
            )
            .bind(&orgs)
            .bind(&ids)
            .execute(&mut **t)
            .await?;
        }
        Tx::Sqlite(t, ..) => {
            sqlx::query(
                "UPDATE tickets SET inside_since = NULL, inside_gate = NULL
                 WHERE inside_since IS NOT NULL
                   AND (org_id, id) IN (SELECT unhex(json_extract(value, '$[0]')), unhex(json_extract(value, '$[1]'))
                                        FROM json_each($1))",
            )
            .bind(&batch)
            .execute(&mut **t)
            .await?;
        }
    }
    Ok(())
}

/// Who is inside now, and through which gate (to load a gate's hot tier).
#[tracing::instrument(skip_all)]
pub async fn presence_for_event(
    db: &Db,
    t: &Tenant,
    event: EventId,
) -> Result<Vec<(TicketId, Option<GateId>)>, sqlx::Error> {
    let sql = "SELECT id, inside_gate FROM tickets WHERE org_id = $1 AND event_id = $2 AND inside_since IS NOT NULL";
    db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(event).fetch_all(p).await)
}

/// Revokes one valid ticket (it is re-issued).
pub fn revoke_one(t: &Tenant, ticket: TicketId) -> Stmt {
    Stmt::new(
        "UPDATE tickets SET status = 'revoked' WHERE org_id = $1 AND id = $2 AND status = 'valid'",
    )
    .bind(t.org())
    .bind(ticket)
}

/// Gives a re-issued ticket where its old one stands at the gate (admitted
/// when, inside or not, its entries).
pub fn carry_presence(t: &Tenant, from: TicketId, to: TicketId) -> Stmt {
    Stmt::new(
        "UPDATE tickets SET (admitted_at, admitted_device, admitted_gate, inside_since, inside_gate, entries, last_entry_at) =
             (SELECT o.admitted_at, o.admitted_device, o.admitted_gate, o.inside_since, o.inside_gate, o.entries, o.last_entry_at
              FROM tickets o WHERE o.org_id = $1 AND o.id = $2)
         WHERE org_id = $1 AND id = $3",
    )
    .bind(t.org())
    .bind(from)
    .bind(to)
}
