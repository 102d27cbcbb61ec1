//! Gates as the organizer sets them up: which ticket types a gate admits,
//! whether a ticket may come back in after going out (`in_out`), a JsonLogic
//! rule, a capacity and an opening window. Every change is announced with
//! `gate.changed`, so every node's hot tier reloads the event's gates.

use kernel::{
    Db, Permission, Stmt, clock,
    error::Checks,
    events::Pending,
    ids::{EventId, GateId, TicketTypeId},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    GateChanged,
    error::{Error, Result},
    rules,
};
use crate::{
    App,
    identity::{Actor, Tenant},
};

/// Whether a ticket may enter again through this gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reentry {
    /// A ticket enters once, ever.
    Single,
    /// A ticket enters again after an exit scan (`"direction": "out"`).
    InOut,
}

impl Reentry {
    pub fn as_str(self) -> &'static str {
        match self {
            Reentry::Single => "single",
            Reentry::InOut => "in_out",
        }
    }
    fn parse(s: &str) -> Option<Reentry> {
        match s {
            "single" => Some(Reentry::Single),
            "in_out" => Some(Reentry::InOut),
            _ => None,
        }
    }
}

/// A gate's setup, as the hot tier and the replies use it.
#[derive(Clone, Debug)]
pub struct GateSetup {
    pub id: GateId,
    pub event_id: EventId,
    pub name: String,
    /// `None`: every ticket type of the event.
    pub ticket_type_ids: Option<Vec<TicketTypeId>>,
    pub reentry: Reentry,
    pub rules: Option<serde_json::Value>,
    pub capacity: Option<i64>,
    pub opens_at: Option<i64>,
    pub closes_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl GateSetup {
    pub fn admits_type(&self, tt: TicketTypeId) -> bool {
        self.ticket_type_ids
            .as_ref()
            .is_none_or(|ids| ids.contains(&tt))
    }
}

/// A gate's live figures, counted by the database (every node's scans).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct GateFigures {
    /// Tickets that came in through this gate and have not gone out.
    pub inside: i64,
    /// Entries through this gate, ever.
    pub entries: i64,
    /// Scans at this gate in the last minute, whatever their result.
    pub scans_last_minute: i64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct GateView {
    pub id: GateId,
    pub event_id: EventId,
    pub name: String,
    /// The ticket types it admits; `null`: every type of the event.
    pub ticket_type_ids: Option<Vec<TicketTypeId>>,
    pub reentry: Reentry,
    /// The JsonLogic rule a ticket must pass to enter, if any.
    #[schema(value_type = Option<Object>)]
    pub rules: Option<serde_json::Value>,
    /// The rule in words, as a refusal explains it.
    pub rules_text: Option<String>,
    /// At most this many inside through this gate at once.
    pub capacity: Option<i64>,
    /// Before this, its scans answer `not_valid_now`.
    pub opens_at: Option<String>,
    /// After this, its scans answer `not_valid_now`.
    pub closes_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub figures: GateFigures,
}

impl GateSetup {
    pub fn view(&self, figures: GateFigures) -> GateView {
        GateView {
            id: self.id,
            event_id: self.event_id,
            name: self.name.clone(),
            ticket_type_ids: self.ticket_type_ids.clone(),
            reentry: self.reentry,
            rules: self.rules.clone(),
            rules_text: self.rules.as_ref().map(rules::describe),
            capacity: self.capacity,
            opens_at: self.opens_at.map(clock::rfc3339),
            closes_at: self.closes_at.map(clock::rfc3339),
            created_at: clock::rfc3339(self.created_at),
            updated_at: clock::rfc3339(self.updated_at),
            figures,
        }
    }
}

/// A gate's setup as given (a create, or a patch applied to the current one).
#[derive(Debug, Default)]
pub struct GateInput {
    pub name: Option<String>,
    pub ticket_type_ids: Option<Option<Vec<TicketTypeId>>>,
    pub reentry: Option<String>,
    pub rules: Option<Option<serde_json::Value>>,
    pub capacity: Option<Option<i64>>,
    pub opens_at: Option<Option<String>>,
    pub closes_at: Option<Option<String>>,
}

/// Applies `input` onto `base` (a new gate's defaults, or the gate as it
/// is), checking every field against the event.
async fn apply(
    app: &App,
    t: &Tenant,
    event: EventId,
    base: GateSetup,
    input: GateInput,
) -> Result<GateSetup> {
    let catalog = crate::events::catalog(app, t, event)
        .await?
        .ok_or(Error::NotFound)?;
    let mut g = base;
    let mut c = Checks::default();
    if let Some(name) = input.name
        && let Some(n) = c.take("name", kernel::parse::name(&name, 100))
    {
        g.name = n;
    }
    if let Some(types) = input.ticket_type_ids {
        if let Some(ids) = &types {
            if ids.is_empty() || ids.len() > 100 {
                c.fail(
                    "ticket_type_ids",
                    "must name 1 to 100 ticket types, or be left out for all",
                );
            }
            for (i, id) in ids.iter().enumerate() {
                if catalog.ticket_type(*id).is_none() {
                    c.fail(
                        &format!("ticket_type_ids[{i}]"),
                        "is not a ticket type of this event",
                    );
                }
            }
        }
        g.ticket_type_ids = types;
    }
    if let Some(r) = input.reentry {
        match Reentry::parse(&r) {
            Some(r) => g.reentry = r,
            None => c.fail("reentry", "must be \"single\" or \"in_out\""),
        }
    }
    if let Some(rule) = input.rules {
        if let Some(rule) = &rule
            && let Err(e) = rules::validate(rule)
        {
            c.fail("rules", &e);
        }
        g.rules = rule;
    }
    if let Some(cap) = input.capacity {
        if cap.is_some_and(|n| !(1..=10_000_000).contains(&n)) {
            c.fail("capacity", "must be 1 to 10000000, or null for none");
        }
        g.capacity = cap;
    }
    for (field, given, slot) in [
        ("opens_at", input.opens_at, &mut g.opens_at),
        ("closes_at", input.closes_at, &mut g.closes_at),
    ] {
        match given {
            None => {}
            Some(None) => *slot = None,
            Some(Some(s)) => match clock::parse_rfc3339(&s) {
                Some(at) => *slot = Some(at),
                None => c.fail(field, "must be an RFC 3339 time"),
            },
        }
    }
    if let (Some(o), Some(cl)) = (g.opens_at, g.closes_at)
        && o >= cl
    {
        c.fail("closes_at", "must be after opens_at");
    }
    c.finish()?;
    Ok(g)
}

/// Adds a gate to an event.
pub async fn create(
    app: &App,
    actor: &Actor,
    event: EventId,
    input: GateInput,
) -> Result<GateView> {
    let t = actor.require(Permission::EventsWrite)?;
    let now = app.kernel.now();
    let mut c = Checks::default();
    if input.name.is_none() {
        c.fail("name", "is required");
    }
    c.finish()?;
    let base = GateSetup {
        id: GateId::new(),
        event_id: event,
        name: String::new(),
        ticket_type_ids: None,
        reentry: Reentry::Single,
        rules: None,
        capacity: None,
        opens_at: None,
        closes_at: None,
        created_at: now,
        updated_at: now,
    };
    let g = apply(app, t, event, base, input).await?;
    let audit = actor
        .audit("gate.create", "gate")
        .object(g.id)
        .after(audit_json(&g))
        .stmt(now);
    app.db()
        .write_grouped(vec![store_insert(t, &g), changed(t, event, now)?, audit])
        .await?;
    Ok(g.view(GateFigures::default()))
}

/// Changes a gate: a field left out stays; `null` clears one that may be unset.
pub async fn update(
    app: &App,
    actor: &Actor,
    event: EventId,
    gate: GateId,
    input: GateInput,
) -> Result<GateView> {
    let t = actor.require(Permission::EventsWrite)?;
    let before = one(app.db(), t, event, gate)
        .await?
        .ok_or(Error::NotFound)?;
    let now = app.kernel.now();
    let mut g = apply(app, t, event, before.clone(), input).await?;
    g.updated_at = now;
    let audit = actor
        .audit("gate.update", "gate")
        .object(g.id)
        .before(audit_json(&before))
        .after(audit_json(&g))
        .stmt(now);
    app.db()
        .write_grouped(vec![store_update(t, &g), changed(t, event, now)?, audit])
        .await?;
    let figures = figures(app.db(), t, event, now).await?;
    Ok(g.view(figures.get(&g.id).cloned().unwrap_or_default()))
}

/// An event's gates, with their figures.
pub async fn list(app: &App, actor: &Actor, event: EventId) -> Result<Vec<GateView>> {
    let t = actor.require(Permission::EventsRead)?;
    if crate::events::catalog(app, t, event).await?.is_none() {
        return Err(Error::NotFound);
    }
    let now = app.kernel.now();
    let figures = figures(app.db(), t, event, now).await?;
    Ok(for_event(app.db(), t, event)
        .await?
        .iter()
        .map(|g| g.view(figures.get(&g.id).cloned().unwrap_or_default()))
        .collect())
}

pub async fn get(app: &App, actor: &Actor, event: EventId, gate: GateId) -> Result<GateView> {
    let t = actor.require(Permission::EventsRead)?;
    let g = one(app.db(), t, event, gate)
        .await?
        .ok_or(Error::NotFound)?;
    let figures = figures(app.db(), t, event, app.kernel.now()).await?;
    Ok(g.view(figures.get(&g.id).cloned().unwrap_or_default()))
}

fn audit_json(g: &GateSetup) -> serde_json::Value {
    serde_json::json!({
        "name": g.name,
        "ticket_type_ids": g.ticket_type_ids,
        "reentry": g.reentry,
        "rules": g.rules,
        "capacity": g.capacity,
        "opens_at": g.opens_at.map(clock::rfc3339),
        "closes_at": g.closes_at.map(clock::rfc3339),
    })
}

fn changed(t: &Tenant, event: EventId, now: i64) -> Result<Stmt> {
    let e = GateChanged {
        org_id: t.org(),
        event_id: event,
    };
    Ok(Pending::of(&e, now)
        .map_err(kernel::ApiError::internal)?
        .stmt())
}

// Storage.

fn join<T: ToString>(ids: &[T]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

type Row = (
    GateId,
    EventId,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
);

const COLS: &str = "id, event_id, name, ticket_type_ids, reentry, rules, capacity, opens_at, closes_at, created_at, updated_at";

fn from_row(r: Row) -> GateSetup {
    let (
        id,
        event_id,
        name,
        types,
        reentry,
        rules,
        capacity,
        opens_at,
        closes_at,
        created_at,
        updated_at,
    ) = r;
    GateSetup {
        id,
        event_id,
        name,
        ticket_type_ids: types.map(|s| {
            s.split_whitespace()
                .filter_map(|t| t.parse().ok())
                .collect()
        }),
        reentry: Reentry::parse(&reentry).unwrap_or(Reentry::Single),
        rules: rules.and_then(|r| serde_json::from_str(&r).ok()),
        capacity,
        opens_at,
        closes_at,
        created_at,
        updated_at,
    }
}

fn store_insert(t: &Tenant, g: &GateSetup) -> Stmt {
    Stmt::new(
        "INSERT INTO gates (org_id, id, event_id, name, ticket_type_ids, reentry, rules, capacity, opens_at, closes_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(t.org())
    .bind(g.id)
    .bind(g.event_id)
    .bind(g.name.clone())
    .bind(g.ticket_type_ids.as_deref().map(join))
    .bind(g.reentry.as_str())
    .bind(g.rules.as_ref().map(|r| r.to_string()))
    .bind(g.capacity)
    .bind(g.opens_at)
    .bind(g.closes_at)
    .bind(g.created_at)
    .bind(g.updated_at)
}

fn store_update(t: &Tenant, g: &GateSetup) -> Stmt {
    Stmt::new(
        "UPDATE gates SET name = $3, ticket_type_ids = $4, reentry = $5, rules = $6, capacity = $7,
                opens_at = $8, closes_at = $9, updated_at = $10
         WHERE org_id = $1 AND id = $2",
    )
    .bind(t.org())
    .bind(g.id)
    .bind(g.name.clone())
    .bind(g.ticket_type_ids.as_deref().map(join))
    .bind(g.reentry.as_str())
    .bind(g.rules.as_ref().map(|r| r.to_string()))
    .bind(g.capacity)
    .bind(g.opens_at)
    .bind(g.closes_at)
    .bind(g.updated_at)
}

/// The event's gates, oldest first.
pub async fn for_event(db: &Db, t: &Tenant, event: EventId) -> Result<Vec<GateSetup>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLS} FROM gates WHERE org_id = $1 AND event_id = $2 ORDER BY created_at, id"
    );
    let rows: Vec<Row> = kernel::db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(t.org()).bind(event).fetch_all(p).await)?;
    Ok(rows.into_iter().map(from_row).collect())
}

async fn one(
    db: &Db,
    t: &Tenant,
    event: EventId,
    gate: GateId,
) -> Result<Option<GateSetup>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM gates WHERE org_id = $1 AND event_id = $2 AND id = $3");
    let row: Option<Row> = kernel::db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(t.org()).bind(event).bind(gate).fetch_optional(p).await)?;
    Ok(row.map(from_row))
}

/// A gate on the live dashboard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct LiveGate {
    pub id: GateId,
    pub name: String,
    pub inside: i64,
    pub entries: i64,
    pub scans_last_minute: i64,
    pub capacity: Option<i64>,
}

/// The event's gates with their figures, for the live stream (the caller
/// checked who asks).
pub async fn live_gates(app: &App, t: &Tenant, event: EventId) -> kernel::ApiResult<Vec<LiveGate>> {
    let gates = for_event(app.db(), t, event).await?;
    if gates.is_empty() {
        return Ok(Vec::new());
    }
    let figures = figures(app.db(), t, event, app.kernel.now()).await?;
    Ok(gates
        .into_iter()
        .map(|g| {
            let f = figures.get(&g.id).cloned().unwrap_or_default();
            LiveGate {
                id: g.id,
                name: g.name,
                inside: f.inside,
                entries: f.entries,
                scans_last_minute: f.scans_last_minute,
                capacity: g.capacity,
            }
        })
        .collect())
}

/// Per gate: inside now, entries ever, scans in the last minute.
pub(super) async fn figures(
    db: &Db,
    t: &Tenant,
    event: EventId,
    now: i64,
) -> Result<std::collections::HashMap<GateId, GateFigures>, sqlx::Error> {
    let mut out: std::collections::HashMap<GateId, GateFigures> = Default::default();
    let sql = "SELECT inside_gate, COUNT(*) FROM tickets
               WHERE org_id = $1 AND event_id = $2 AND inside_since IS NOT NULL AND inside_gate IS NOT NULL
               GROUP BY inside_gate";
    let inside: Vec<(GateId, i64)> =
        kernel::db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(event).fetch_all(p).await)?;
    for (g, n) in inside {
        out.entry(g).or_default().inside = n;
    }
    let sql = "SELECT gate_id, SUM(CASE WHEN result = 'admitted' THEN 1 ELSE 0 END),
                      SUM(CASE WHEN scanned_at > $3 THEN 1 ELSE 0 END)
               FROM scans WHERE org_id = $1 AND event_id = $2 AND gate_id IS NOT NULL GROUP BY gate_id";
    let scans: Vec<(GateId, i64, i64)> = kernel::db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(event).bind(now - 60 * clock::MICROS_PER_SEC).fetch_all(p).await)?;
    for (g, entries, recent) in scans {
        let f = out.entry(g).or_default();
        f.entries = entries;
        f.scans_last_minute = recent;
    }
    Ok(out)
}
