//! Seat maps: sections of rows of seats, each seat with its place on the
//! map (x, y), its ticket type and flags; blocked seats are never sold. The
//! events slice keeps the map (one JSON document per event, validated
//! here); which seats are held or sold is the sales slice's.
//!
//! Seat ids are stable: a map stored again keeps the id of every seat with
//! the same section, row and label.
//!
//! A map may also have general-admission *areas* (a standing floor, a
//! lawn): a place on the map with a capacity, sold by quantity through
//! ticket types that have no seats. Each area's capacity is kept by a quota
//! of its ticket types that the map owns (written with the map, replaced
//! when the area's capacity or types change, removed with the area), so
//! every hold draws on it through the same counters as any quota.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

use kernel::{
    FieldError, Permission, clock,
    events::emit,
    ids::{EventId, OrgId, QuotaId, TicketTypeId},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    Hot,
    error::{Error, Result},
    store,
};
use crate::{
    App,
    identity::{Actor, Tenant},
};

pub const MAX_SEATS: usize = 50_000;

/// The largest seat map body taken (its routes only; every other body
/// keeps the server's limit).
pub const MAX_MAP_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatMapInput {
    /// Section names unique in the map; row labels unique in a section;
    /// seat labels unique in a row; at most 50,000 seats in all.
    #[schema(max_items = 200)]
    pub sections: Vec<SectionInput>,
    /// General-admission areas in the same map.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub areas: Vec<AreaInput>,
}

/// At most this many general-admission areas in one map.
pub const MAX_AREAS: usize = 50;
/// At most this many ticket types sold into one area.
pub const MAX_AREA_TYPES: usize = 20;

/// A general-admission area: a place on the map holding `capacity`
/// people, sold by quantity through its ticket types.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AreaInput {
    /// Unique among the map's areas.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    /// The area's top-left corner, in the seats' units.
    #[schema(minimum = -1_000_000, maximum = 1_000_000)]
    pub x: f64,
    #[schema(minimum = -1_000_000, maximum = 1_000_000)]
    pub y: f64,
    /// Its size in the seats' units: more than 0, at most 10000.
    #[schema(minimum = 0.1, maximum = 10_000)]
    pub width: f64,
    #[schema(minimum = 0.1, maximum = 10_000)]
    pub height: f64,
    /// How many people it holds, over all its ticket types.
    #[schema(minimum = 0, maximum = 10_000_000)]
    pub capacity: i64,
    /// Ticket types of this event without seats in the map, each in one
    /// area at most.
    #[schema(min_items = 1, max_items = 20)]
    pub ticket_type_ids: Vec<TicketTypeId>,
}

/// One general-admission area of a stored map.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema, PartialEq)]
pub struct Area {
    /// Stable across edits of the map (same name).
    pub id: String,
    pub name: String,
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub capacity: i64,
    pub ticket_type_ids: Vec<TicketTypeId>,
    /// The quota of its ticket types that keeps its capacity.
    pub quota_id: QuotaId,
}

/// A seat's flag.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum SeatFlag {
    Accessible,
    Companion,
    RestrictedView,
    /// Never sold.
    Blocked,
}

impl SeatFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            SeatFlag::Accessible => "accessible",
            SeatFlag::Companion => "companion",
            SeatFlag::RestrictedView => "restricted_view",
            SeatFlag::Blocked => "blocked",
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionInput {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    #[schema(max_items = 1000)]
    pub rows: Vec<RowInput>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RowInput {
    #[schema(
        min_length = 1,
        max_length = 20,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub label: String,
    #[schema(max_items = 1000)]
    pub seats: Vec<SeatInput>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatInput {
    #[schema(
        min_length = 1,
        max_length = 20,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub label: String,
    /// Across, in any unit (seats are drawn 1 unit apart); front-to-back is
    /// `y` (the front row has the smallest).
    #[schema(minimum = -1_000_000, maximum = 1_000_000)]
    pub x: f64,
    #[schema(minimum = -1_000_000, maximum = 1_000_000)]
    pub y: f64,
    /// A ticket type of this event.
    pub ticket_type_id: TicketTypeId,
    #[serde(default)]
    #[schema(max_items = 4)]
    pub flags: Vec<SeatFlag>,
}

/// One seat of a stored map.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct Seat {
    /// Stable across edits of the map (same section, row and label).
    pub id: String,
    pub section: String,
    pub row: String,
    pub label: String,
    pub x: f64,
    pub y: f64,
    pub ticket_type_id: TicketTypeId,
    pub flags: Vec<String>,
}

impl Seat {
    pub fn blocked(&self) -> bool {
        self.flags.iter().any(|f| f == "blocked")
    }
}

/// A stored map: its seats in map order (section, row, seat), with an
/// index by id.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SeatMap {
    pub event_id: EventId,
    pub sections: Vec<SectionView>,
    pub areas: Vec<Area>,
    pub updated_at: String,
    #[serde(skip)]
    pub seats: Vec<Seat>,
    /// The ticket types that have seats here (held by seat only).
    #[serde(skip)]
    pub types: BTreeSet<TicketTypeId>,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SectionView {
    pub name: String,
    pub rows: Vec<RowView>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RowView {
    pub label: String,
    pub seats: Vec<Seat>,
}

impl SeatMap {
    fn from_seats(event: EventId, seats: Vec<Seat>, areas: Vec<Area>, updated_at: i64) -> SeatMap {
        let index = seats
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        let mut sections: Vec<SectionView> = Vec::new();
        for s in &seats {
            if sections.last().is_none_or(|x| x.name != s.section) {
                sections.push(SectionView {
                    name: s.section.clone(),
                    rows: Vec::new(),
                });
            }
            let section = sections.last_mut().expect("pushed");
            if section.rows.last().is_none_or(|r| r.label != s.row) {
                section.rows.push(RowView {
                    label: s.row.clone(),
                    seats: Vec::new(),
                });
            }
            section
                .rows
                .last_mut()
                .expect("pushed")
                .seats
                .push(s.clone());
        }
        SeatMap {
            event_id: event,
            sections,
            areas,
            updated_at: clock::rfc3339(updated_at),
            types: seats.iter().map(|s| s.ticket_type_id).collect(),
            seats,
            index,
        }
    }

    #[cfg(test)]
    pub fn for_tests(seats: Vec<Seat>) -> SeatMap {
        SeatMap::from_seats(EventId(uuid::Uuid::nil()), seats, Vec::new(), 0)
    }

    pub fn seat(&self, id: &str) -> Option<&Seat> {
        self.index.get(id).map(|i| &self.seats[*i])
    }

    /// A seat's place in [`SeatMap::seats`].
    pub fn seat_index(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The area a ticket type is sold into, if any.
    pub fn area_of(&self, tt: TicketTypeId) -> Option<&Area> {
        self.areas.iter().find(|a| a.ticket_type_ids.contains(&tt))
    }
}

/// The stored document: the seats, flat, and the areas.
#[derive(Serialize, Deserialize)]
struct Stored {
    seats: Vec<Seat>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    areas: Vec<Area>,
}

/// A seat map was stored for an event.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SeatingUpdated {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub seats: i64,
}

impl kernel::DomainEvent for SeatingUpdated {
    const NAME: &'static str = "seating.updated";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

fn text_ok(s: &str, max: usize) -> bool {
    let t = s.trim();
    !t.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

/// Checks a map against the event's catalog, naming the offending seat;
/// the seats in map order with ids (kept from `old` where the seat is the
/// same).
pub(super) fn validate(
    known: &dyn Fn(TicketTypeId) -> bool,
    input: &SeatMapInput,
    old: Option<&SeatMap>,
) -> std::result::Result<Vec<Seat>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut fail = |field: String, message: &str| {
        if errors.len() < 50 {
            errors.push(FieldError::new(&field, message));
        }
    };
    let kept: HashMap<(&str, &str, &str), &str> = old
        .map(|m| {
            m.seats
                .iter()
                .map(|s| {
                    (
                        (s.section.as_str(), s.row.as_str(), s.label.as_str()),
                        s.id.as_str(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let total: usize = input
        .sections
        .iter()
        .flat_map(|s| &s.rows)
        .map(|r| r.seats.len())
        .sum();
    if total > MAX_SEATS {
        fail("sections".into(), "a map has at most 50000 seats");
        return Err(errors);
    }
    let mut sections_seen = BTreeSet::new();
    let mut seats = Vec::with_capacity(total);
    for (si, section) in input.sections.iter().enumerate() {
        let sf = format!("sections[{si}]");
        if !text_ok(&section.name, 100) {
            fail(format!("{sf}.name"), "must be 1 to 100 characters");
        } else if !sections_seen.insert(section.name.trim().to_string()) {
            fail(format!("{sf}.name"), "appears twice");
        }
        let mut rows_seen = BTreeSet::new();
        for (ri, row) in section.rows.iter().enumerate() {
            let rf = format!("{sf}.rows[{ri}]");
            if !text_ok(&row.label, 20) {
                fail(format!("{rf}.label"), "must be 1 to 20 characters");
            } else if !rows_seen.insert(row.label.trim().to_string()) {
                fail(format!("{rf}.label"), "appears twice in the section");
            }
            let mut seats_seen = BTreeSet::new();
            for (xi, seat) in row.seats.iter().enumerate() {
                let f = format!("{rf}.seats[{xi}]");
                if !text_ok(&seat.label, 20) {
                    fail(format!("{f}.label"), "must be 1 to 20 characters");
                } else if !seats_seen.insert(seat.label.trim().to_string()) {
                    fail(
                        format!("{f}.label"),
                        &format!(
                            "seat {} appears twice in row {}",
                            seat.label.trim(),
                            row.label.trim()
                        ),
                    );
                }
                if !seat.x.is_finite()
                    || !seat.y.is_finite()
                    || seat.x.abs() > 1e6
                    || seat.y.abs() > 1e6
                {
                    fail(format!("{f}.x"), "x and y must be numbers within ±1000000");
                }
                if !known(seat.ticket_type_id) {
                    fail(
                        format!("{f}.ticket_type_id"),
                        "is not a ticket type of this event",
                    );
                }
                let flags: BTreeSet<String> =
                    seat.flags.iter().map(|f| f.as_str().to_string()).collect();
                let (sn, rl, sl) = (section.name.trim(), row.label.trim(), seat.label.trim());
                let id = kept
                    .get(&(sn, rl, sl))
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
                seats.push(Seat {
                    id,
                    section: sn.to_string(),
                    row: rl.to_string(),
                    label: sl.to_string(),
                    x: seat.x,
                    y: seat.y,
                    ticket_type_id: seat.ticket_type_id,
                    flags: flags.into_iter().collect(),
                });
            }
        }
    }
    if errors.is_empty() {
        Ok(seats)
    } else {
        Err(errors)
    }
}

/// Checks a map's areas (after its seats, `seats`), naming the offending
/// area: each area with its id kept from `old` by name, and its quota kept
/// while its capacity and ticket types stay the same (a new one else).
pub(super) fn validate_areas(
    known: &dyn Fn(TicketTypeId) -> bool,
    input: &SeatMapInput,
    seats: &[Seat],
    old: Option<&SeatMap>,
) -> std::result::Result<Vec<Area>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut fail = |field: String, message: &str| {
        if errors.len() < 50 {
            errors.push(FieldError::new(&field, message));
        }
    };
    if input.areas.len() > MAX_AREAS {
        fail("areas".into(), "a map has at most 50 areas");
        return Err(errors);
    }
    let seated: BTreeSet<TicketTypeId> = seats.iter().map(|s| s.ticket_type_id).collect();
    let mut names = BTreeSet::new();
    let mut placed: HashMap<TicketTypeId, &str> = HashMap::new();
    let mut areas = Vec::with_capacity(input.areas.len());
    for (ai, area) in input.areas.iter().enumerate() {
        let f = format!("areas[{ai}]");
        let name = area.name.trim();
        if !text_ok(&area.name, 100) {
            fail(format!("{f}.name"), "must be 1 to 100 characters");
        } else if !names.insert(name.to_string()) {
            fail(format!("{f}.name"), "appears twice");
        }
        if !area.x.is_finite() || !area.y.is_finite() || area.x.abs() > 1e6 || area.y.abs() > 1e6 {
            fail(format!("{f}.x"), "x and y must be numbers within ±1000000");
        }
        for (k, v) in [("width", area.width), ("height", area.height)] {
            if !(v.is_finite() && v > 0.0 && v <= 10_000.0) {
                fail(format!("{f}.{k}"), "must be more than 0 and at most 10000");
            }
        }
        if !(0..=10_000_000).contains(&area.capacity) {
            fail(format!("{f}.capacity"), "must be between 0 and 10000000");
        }
        if area.ticket_type_ids.is_empty() || area.ticket_type_ids.len() > MAX_AREA_TYPES {
            fail(
                format!("{f}.ticket_type_ids"),
                "must name 1 to 20 ticket types",
            );
        }
        let mut types = Vec::with_capacity(area.ticket_type_ids.len());
        for (ti, tt) in area.ticket_type_ids.iter().enumerate() {
            let tf = format!("{f}.ticket_type_ids[{ti}]");
            if !known(*tt) {
                fail(tf, "is not a ticket type of this event");
            } else if seated.contains(tt) {
                fail(
                    tf,
                    "has seats in this map: an area's ticket types are sold by quantity",
                );
            } else if let Some(other) = placed.get(tt) {
                if *other == name {
                    fail(tf, "appears twice");
                } else {
                    fail(tf, &format!("is sold into area {other} already"));
                }
            } else {
                placed.insert(*tt, name);
                types.push(*tt);
            }
        }
        types.sort();
        let before = old.and_then(|m| m.areas.iter().find(|a| a.name == name));
        let quota_id = before
            .filter(|a| a.capacity == area.capacity && a.ticket_type_ids == types)
            .map(|a| a.quota_id)
            .unwrap_or_default();
        areas.push(Area {
            id: before
                .map(|a| a.id.clone())
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            name: name.to_string(),
            x: area.x,
            y: area.y,
            width: area.width,
            height: area.height,
            capacity: area.capacity,
            ticket_type_ids: types,
            quota_id,
        });
    }
    if errors.is_empty() {
        Ok(areas)
    } else {
        Err(errors)
    }
}

/// The quota that keeps an area's capacity.
fn area_quota(event: EventId, a: &Area, now: i64) -> super::QuotaView {
    super::QuotaView {
        id: a.quota_id,
        event_id: event,
        name: format!("{} (area)", a.name),
        capacity: a.capacity,
        ticket_type_ids: a.ticket_type_ids.clone(),
        created_at: clock::rfc3339(now),
    }
}

/// Stores the event's seat map (replacing the one before). A seat that is
/// held or sold may not be removed nor moved to another ticket type
/// (`claimed` says which are: the sales slice knows) → 409.
pub async fn put_seating(
    app: &App,
    actor: &Actor,
    event: EventId,
    input: SeatMapInput,
    claimed: &BTreeSet<String>,
) -> Result<SeatMap> {
    let t = actor.require(Permission::EventsWrite)?;
    let Some(catalog) = store::load_catalog(app.db(), t, event).await? else {
        return Err(Error::NotFound);
    };
    let old = load(app.db(), t, event).await?;
    let known = |tt| catalog.ticket_type(tt).is_some();
    let checked = validate(&known, &input, old.as_ref());
    let areas = validate_areas(
        &known,
        &input,
        checked.as_deref().unwrap_or_default(),
        old.as_ref(),
    );
    let (seats, areas) = match (checked, areas) {
        (Ok(seats), Ok(areas)) => (seats, areas),
        (a, b) => {
            let mut errors = a.err().unwrap_or_default();
            errors.extend(b.err().unwrap_or_default());
            return Err(Error::Invalid(errors));
        }
    };
    // Each area's quota: kept while the area is the same, else replaced.
    let kept: BTreeSet<QuotaId> = areas.iter().map(|a| a.quota_id).collect();
    let gone: Vec<QuotaId> = old
        .iter()
        .flat_map(|m| &m.areas)
        .map(|a| a.quota_id)
        .filter(|q| !kept.contains(q) && catalog.quota(*q).is_some())
        .collect();
    let added: Vec<&Area> = areas
        .iter()
        .filter(|a| catalog.quota(a.quota_id).is_none())
        .collect();
    if catalog.quotas.len() + added.len() - gone.len() > super::domain::MAX_QUOTAS {
        return Err(Error::field(
            "areas",
            "an event has at most 100 quotas, its areas' included",
        ));
    }
    if let Some(old) = &old {
        let now: HashMap<&str, &Seat> = seats.iter().map(|s| (s.id.as_str(), s)).collect();
        for s in old.seats.iter().filter(|s| claimed.contains(&s.id)) {
            let kept = now.get(s.id.as_str());
            if kept.is_none_or(|k| k.ticket_type_id != s.ticket_type_id || k.blocked()) {
                return Err(Error::Api(kernel::ApiError::Conflict(format!(
                    "seat {} {} {} is held or sold: it stays, with its ticket type",
                    s.section, s.row, s.label
                ))));
            }
        }
    }
    let now = app.kernel.now();
    let doc = serde_json::to_string(&Stored {
        seats: seats.clone(),
        areas: areas.clone(),
    })
    .map_err(kernel::ApiError::internal)?;
    let updated = SeatingUpdated {
        org_id: t.org(),
        event_id: event,
        seats: seats.len() as i64,
    };
    let mut writes = vec![store::put_seat_map(t, event, &doc, now)];
    for q in &gone {
        writes.extend(store::delete_quota(t, *q));
        writes.push(emit(
            &super::QuotaDeleted {
                org_id: t.org(),
                event_id: event,
                quota_id: *q,
            },
            now,
        )?);
    }
    for a in &added {
        let q = area_quota(event, a, now);
        writes.extend(store::insert_quota(t, &q, now));
        writes.push(emit(
            &super::QuotaCreated {
                org_id: t.org(),
                event_id: event,
                quota_id: q.id,
                capacity: q.capacity,
                ticket_type_ids: q.ticket_type_ids.clone(),
            },
            now,
        )?);
    }
    writes.push(emit(&updated, now)?);
    writes.push(
        actor
            .audit("seating.update", "event")
            .object(event)
            .after(&updated)
            .stmt(now),
    );
    app.db().write_grouped(writes).await?;
    app.state::<Hot>()
        .seat_maps
        .invalidate(&(t.org(), event))
        .await;
    if !(gone.is_empty() && added.is_empty()) {
        super::invalidate(app, t, event).await;
    }
    Ok(SeatMap::from_seats(event, seats, areas, now))
}

async fn load(db: &kernel::Db, t: &Tenant, event: EventId) -> Result<Option<SeatMap>> {
    let Some((doc, updated_at)) = store::seat_map(db, t, event).await? else {
        return Ok(None);
    };
    let stored: Stored = serde_json::from_str(&doc).map_err(kernel::ApiError::internal)?;
    Ok(Some(SeatMap::from_seats(
        event,
        stored.seats,
        stored.areas,
        updated_at,
    )))
}

/// The event's seat map, if it has one; served from the hot tier.
pub async fn seating(
    app: &App,
    t: &Tenant,
    event: EventId,
) -> kernel::ApiResult<Option<Arc<SeatMap>>> {
    if let Some(m) = app.state::<Hot>().seat_maps.get(&(t.org(), event)).await {
        return Ok(m);
    }
    let db = app.db().clone();
    let t2 = t.clone();
    app.state::<Hot>()
        .seat_maps
        .try_get_with((t.org(), event), async move {
            load(&db, &t2, event).await.map(|m| m.map(Arc::new))
        })
        .await
        .map_err(|e| match Arc::try_unwrap(e) {
            Ok(e) => kernel::ApiError::from(e),
            Err(e) => kernel::ApiError::internal(e.to_string()),
        })
}

impl SeatMap {
    /// The map as a `PUT …/seating` body (export, and the editor's edits).
    pub fn to_input(&self) -> SeatMapInput {
        SeatMapInput {
            sections: self
                .sections
                .iter()
                .map(|s| SectionInput {
                    name: s.name.clone(),
                    rows: s
                        .rows
                        .iter()
                        .map(|r| RowInput {
                            label: r.label.clone(),
                            seats: r
                                .seats
                                .iter()
                                .map(|x| SeatInput {
                                    label: x.label.clone(),
                                    x: x.x,
                                    y: x.y,
                                    ticket_type_id: x.ticket_type_id,
                                    flags: x.flags.iter().filter_map(|f| flag(f)).collect(),
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
            areas: self
                .areas
                .iter()
                .map(|a| AreaInput {
                    name: a.name.clone(),
                    x: a.x,
                    y: a.y,
                    width: a.width,
                    height: a.height,
                    capacity: a.capacity,
                    ticket_type_ids: a.ticket_type_ids.clone(),
                })
                .collect(),
        }
    }
}

fn flag(f: &str) -> Option<SeatFlag> {
    match f {
        "accessible" => Some(SeatFlag::Accessible),
        "companion" => Some(SeatFlag::Companion),
        "restricted_view" => Some(SeatFlag::RestrictedView),
        "blocked" => Some(SeatFlag::Blocked),
        _ => None,
    }
}

/// A seat map laid out for drawing as SVG (the storefront's and the
/// editor's): seat centres in pixels, row and section labels.
pub struct Drawing {
    pub view_box: String,
    pub seats: Vec<DrawnSeat>,
    pub labels: Vec<DrawnText>,
    pub areas: Vec<DrawnArea>,
}

/// A general-admission area as a rectangle, with its name in it.
pub struct DrawnArea {
    pub id: String,
    pub name: String,
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    /// Where its name and what is left are written (its centre).
    pub cx: String,
    pub cy: String,
    pub capacity: i64,
    pub ticket_type_ids: Vec<TicketTypeId>,
}

pub struct DrawnSeat {
    pub id: String,
    pub cx: String,
    pub cy: String,
    /// "Stalls, row A, seat 1, accessible".
    pub label: String,
    pub flags: Vec<String>,
    pub ticket_type_id: TicketTypeId,
}

pub struct DrawnText {
    pub x: String,
    pub y: String,
    pub text: String,
    /// `row-label` or `section-label`.
    pub class: &'static str,
}

const SEAT_PX: f64 = 28.0;

/// Lays the map out: one map unit is 28 px, with room on the left for row
/// labels and above for section names.
pub fn draw(map: &SeatMap) -> Drawing {
    let (mut min_x, mut min_y, mut max_x, mut max_y) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for s in &map.seats {
        min_x = min_x.min(s.x);
        min_y = min_y.min(s.y);
        max_x = max_x.max(s.x);
        max_y = max_y.max(s.y);
    }
    for a in &map.areas {
        // An area's corners as seat centres: it spans `width` units.
        min_x = min_x.min(a.x);
        min_y = min_y.min(a.y);
        max_x = max_x.max(a.x + a.width - 1.0);
        max_y = max_y.max(a.y + a.height - 1.0);
    }
    if map.seats.is_empty() && map.areas.is_empty() {
        (min_x, min_y, max_x, max_y) = (0.0, 0.0, 0.0, 0.0);
    }
    let px = |x: f64| (x - min_x) * SEAT_PX + 50.0;
    let py = |y: f64| (y - min_y) * SEAT_PX + 40.0;
    let seats = map
        .seats
        .iter()
        .map(|s| {
            let mut label = format!("{}, row {}, seat {}", s.section, s.row, s.label);
            for f in s.flags.iter().filter(|f| *f != "blocked") {
                label.push_str(&format!(", {}", f.replace('_', " ")));
            }
            DrawnSeat {
                id: s.id.clone(),
                cx: format!("{:.1}", px(s.x)),
                cy: format!("{:.1}", py(s.y)),
                label,
                flags: s.flags.clone(),
                ticket_type_id: s.ticket_type_id,
            }
        })
        .collect();
    let mut labels = Vec::new();
    for section in &map.sections {
        let all = || section.rows.iter().flat_map(|r| r.seats.iter());
        if let Some(first) = all().min_by(|a, b| a.x.total_cmp(&b.x)) {
            let top = all().map(|s| s.y).fold(f64::MAX, f64::min);
            labels.push(DrawnText {
                x: format!("{:.1}", px(first.x)),
                y: format!("{:.1}", py(top) - 20.0),
                text: section.name.clone(),
                class: "section-label",
            });
        }
        for row in &section.rows {
            if let Some(left) = row.seats.iter().min_by(|a, b| a.x.total_cmp(&b.x)) {
                labels.push(DrawnText {
                    x: format!("{:.1}", px(left.x) - 24.0),
                    y: format!("{:.1}", py(left.y) + 4.0),
                    text: row.label.clone(),
                    class: "row-label",
                });
            }
        }
    }
    let areas = map
        .areas
        .iter()
        .map(|a| DrawnArea {
            id: a.id.clone(),
            name: a.name.clone(),
            x: format!("{:.1}", px(a.x) - SEAT_PX / 2.0),
            y: format!("{:.1}", py(a.y) - SEAT_PX / 2.0),
            width: format!("{:.1}", a.width * SEAT_PX),
            height: format!("{:.1}", a.height * SEAT_PX),
            cx: format!("{:.1}", px(a.x) - SEAT_PX / 2.0 + a.width * SEAT_PX / 2.0),
            cy: format!("{:.1}", py(a.y) - SEAT_PX / 2.0 + a.height * SEAT_PX / 2.0),
            capacity: a.capacity,
            ticket_type_ids: a.ticket_type_ids.clone(),
        })
        .collect();
    Drawing {
        areas,
        view_box: format!(
            "0 0 {:.0} {:.0}",
            (max_x - min_x) * SEAT_PX + 100.0,
            (max_y - min_y) * SEAT_PX + 80.0
        ),
        seats,
        labels,
    }
}

/// Row labels A, B, … Z, AA, AB, …
fn row_label(mut i: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push((b'A' + (i % 26) as u8) as char);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    s.iter().rev().collect()
}

impl SeatMapInput {
    /// The lowest point of the map (seats and areas), if it has any.
    fn bottom(&self) -> Option<f64> {
        let below = self
            .sections
            .iter()
            .flat_map(|s| s.rows.iter().flat_map(|r| r.seats.iter()))
            .map(|s| s.y)
            .chain(self.areas.iter().map(|a| a.y + a.height - 1.0))
            .fold(f64::MIN, f64::max);
        (below != f64::MIN).then_some(below)
    }

    /// Where a new area goes: below everything, at the left edge.
    pub fn free_spot(&self) -> (f64, f64) {
        let left = self
            .sections
            .iter()
            .flat_map(|s| s.rows.iter().flat_map(|r| r.seats.iter()))
            .map(|s| s.x)
            .chain(self.areas.iter().map(|a| a.x))
            .fold(f64::MAX, f64::min);
        (
            if left == f64::MAX { 0.0 } else { left },
            self.bottom().map_or(0.0, |b| b + 2.0),
        )
    }

    /// Adds a section of `rows` × `per_row` seats of `tt` on a grid below
    /// the sections already there: rows lettered A, B, … from the front,
    /// seats numbered from 1.
    pub fn add_grid(&mut self, name: &str, rows: usize, per_row: usize, tt: TicketTypeId) {
        let top = self.bottom().map_or(0.0, |b| b + 2.0);
        self.sections.push(SectionInput {
            name: name.trim().to_string(),
            rows: (0..rows)
                .map(|r| RowInput {
                    label: row_label(r),
                    seats: (0..per_row)
                        .map(|s| SeatInput {
                            label: (s + 1).to_string(),
                            x: s as f64,
                            y: top + r as f64,
                            ticket_type_id: tt,
                            flags: Vec::new(),
                        })
                        .collect(),
                })
                .collect(),
        });
    }
}

impl SeatMap {
    /// The map as a `PUT` body with `flag` set on each seat of `ids` that
    /// lacks it and cleared on each that has it.
    pub fn with_flag_toggled(&self, ids: &BTreeSet<&str>, flag: SeatFlag) -> SeatMapInput {
        let mut map = self.to_input();
        // `to_input` keeps the map's order, the order of `self.seats`.
        let mut stored = self.seats.iter();
        for seat in map
            .sections
            .iter_mut()
            .flat_map(|s| s.rows.iter_mut())
            .flat_map(|r| r.seats.iter_mut())
        {
            if stored.next().is_some_and(|s| ids.contains(s.id.as_str())) {
                match seat.flags.iter().position(|f| *f == flag) {
                    Some(at) => {
                        seat.flags.remove(at);
                    }
                    None => seat.flags.push(flag),
                }
            }
        }
        map
    }
}

impl SeatFlag {
    pub fn parse(s: &str) -> Option<SeatFlag> {
        flag(s)
    }
}

/// The series' stored map as a date's: the same seats (ids kept), each
/// on the date's ticket type that follows its own (`types`: series' →
/// date's), and the same areas, each kept by the date's copy of its quota
/// (`quotas`: series' → date's).
pub(super) async fn copied(
    db: &kernel::Db,
    t: &Tenant,
    series: EventId,
    types: &HashMap<TicketTypeId, TicketTypeId>,
    quotas: &HashMap<QuotaId, QuotaId>,
) -> Result<Option<(String, i64)>> {
    let Some(map) = load(db, t, series).await? else {
        return Ok(None);
    };
    let areas: Vec<Area> = map
        .areas
        .into_iter()
        .filter_map(|mut a| {
            a.quota_id = *quotas.get(&a.quota_id)?;
            a.ticket_type_ids = a
                .ticket_type_ids
                .iter()
                .filter_map(|tt| types.get(tt).copied())
                .collect();
            a.ticket_type_ids.sort();
            Some(a)
        })
        .collect();
    let seats: Vec<Seat> = map
        .seats
        .into_iter()
        .filter_map(|mut s| {
            s.ticket_type_id = *types.get(&s.ticket_type_id)?;
            Some(s)
        })
        .collect();
    let n = seats.len() as i64;
    let doc =
        serde_json::to_string(&Stored { seats, areas }).map_err(kernel::ApiError::internal)?;
    Ok(Some((doc, n)))
}
