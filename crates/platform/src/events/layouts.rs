//! Venue layouts: an org's seat maps kept for reuse. A layout is a seat map
//! whose seats carry a *category* ("Stalls", "Balcony") instead of a
//! ticket type; an event copies one, mapping each category to one of its
//! ticket types (the copy is then the event's own map, checked and stored
//! as any map is). A layout is made from JSON (import) or from an event's
//! map (its ticket types' names become the categories), read back as JSON
//! (export) and replaced whole; events that copied it keep their copy.
//! Its general-admission areas carry categories too (the ticket types sold
//! into the area, once mapped).

use std::collections::{BTreeMap, BTreeSet};

use kernel::{
    Permission, clock,
    error::Checks,
    ids::{EventId, LayoutId, TicketTypeId},
    parse,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AreaInput, RowInput, SeatFlag, SeatInput, SeatMap, SeatMapInput, SectionInput,
    error::{Error, Result},
    seating::{validate, validate_areas},
    store,
};
use crate::{
    App,
    identity::{Actor, Tenant},
};

/// At most this many categories in one layout.
pub const MAX_CATEGORIES: usize = 100;

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LayoutInput {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    /// As a seat map's (unique names, labels; at most 50,000 seats).
    #[schema(max_items = 200)]
    pub sections: Vec<LayoutSection>,
    /// General-admission areas, as a seat map's, each sold as categories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 50)]
    pub areas: Vec<LayoutArea>,
}

/// A general-admission area of a layout.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LayoutArea {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    #[schema(minimum = -1_000_000, maximum = 1_000_000)]
    pub x: f64,
    #[schema(minimum = -1_000_000, maximum = 1_000_000)]
    pub y: f64,
    #[schema(minimum = 0.1, maximum = 10_000)]
    pub width: f64,
    #[schema(minimum = 0.1, maximum = 10_000)]
    pub height: f64,
    #[schema(minimum = 0, maximum = 10_000_000)]
    pub capacity: i64,
    /// What its places are sold as; each category is mapped to a ticket
    /// type (without seats) when an event copies the layout.
    #[schema(min_items = 1, max_items = 20)]
    pub categories: Vec<String>,
}

/// How a layout is kept: its sections, and its areas when it has some.
#[derive(Deserialize, Serialize)]
#[serde(untagged)]
enum Doc {
    /// Layouts kept before areas: the sections alone.
    Sections(Vec<LayoutSection>),
    Full {
        sections: Vec<LayoutSection>,
        #[serde(default)]
        areas: Vec<LayoutArea>,
    },
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LayoutSection {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    #[schema(max_items = 1000)]
    pub rows: Vec<LayoutRow>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LayoutRow {
    #[schema(
        min_length = 1,
        max_length = 20,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub label: String,
    #[schema(max_items = 1000)]
    pub seats: Vec<LayoutSeat>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LayoutSeat {
    #[schema(
        min_length = 1,
        max_length = 20,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub label: String,
    #[schema(minimum = -1_000_000, maximum = 1_000_000)]
    pub x: f64,
    #[schema(minimum = -1_000_000, maximum = 1_000_000)]
    pub y: f64,
    /// What the seat is sold as; an event maps each category to a ticket type.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub category: String,
    #[serde(default)]
    #[schema(max_items = 4)]
    pub flags: Vec<SeatFlag>,
}

/// A layout as stored and read back (`sections` is its JSON export).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LayoutView {
    pub id: LayoutId,
    pub name: String,
    /// Its seats' categories, sorted.
    pub categories: Vec<String>,
    pub seats: i64,
    pub sections: Vec<LayoutSection>,
    pub areas: Vec<LayoutArea>,
    pub created_at: String,
    pub updated_at: String,
}

/// A layout in a list (without its seats).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LayoutSummary {
    pub id: LayoutId,
    pub name: String,
    pub categories: Vec<String>,
    pub seats: i64,
    pub updated_at: String,
}

/// The categories of `sections` and `areas`, sorted, each once.
fn categories(sections: &[LayoutSection], areas: &[LayoutArea]) -> Vec<String> {
    sections
        .iter()
        .flat_map(|s| &s.rows)
        .flat_map(|r| &r.seats)
        .map(|s| s.category.trim().to_string())
        .chain(
            areas
                .iter()
                .flat_map(|a| &a.categories)
                .map(|c| c.trim().to_string()),
        )
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The layout as a seat map of an event, each category's seats on the
/// ticket type `types` gives it (`None` for a category it does not name).
fn as_map(
    sections: &[LayoutSection],
    areas: &[LayoutArea],
    types: &dyn Fn(&str) -> Option<TicketTypeId>,
) -> (SeatMapInput, BTreeSet<String>) {
    let mut missing = BTreeSet::new();
    let areas = areas
        .iter()
        .map(|a| AreaInput {
            name: a.name.clone(),
            x: a.x,
            y: a.y,
            width: a.width,
            height: a.height,
            capacity: a.capacity,
            ticket_type_ids: a
                .categories
                .iter()
                .map(|c| {
                    types(c.trim()).unwrap_or_else(|| {
                        missing.insert(c.trim().to_string());
                        TicketTypeId(uuid::Uuid::nil())
                    })
                })
                .collect(),
        })
        .collect();
    let map = SeatMapInput {
        sections: sections
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
                            .map(|seat| SeatInput {
                                label: seat.label.clone(),
                                x: seat.x,
                                y: seat.y,
                                ticket_type_id: types(seat.category.trim()).unwrap_or_else(|| {
                                    missing.insert(seat.category.trim().to_string());
                                    TicketTypeId(uuid::Uuid::nil())
                                }),
                                flags: seat.flags.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
        areas,
    };
    (map, missing)
}

/// The layout as it is kept: names and labels trimmed (as a seat map's
/// are), each seat's flags once each, in order.
fn normalise(input: &mut LayoutInput) {
    for section in &mut input.sections {
        section.name = section.name.trim().to_string();
        for row in &mut section.rows {
            row.label = row.label.trim().to_string();
            for seat in &mut row.seats {
                seat.label = seat.label.trim().to_string();
                seat.category = seat.category.trim().to_string();
                seat.flags.sort();
                seat.flags.dedup();
            }
        }
    }
    for area in &mut input.areas {
        area.name = area.name.trim().to_string();
        for c in &mut area.categories {
            *c = c.trim().to_string();
        }
    }
}

/// Checks a layout as a seat map is checked (naming the offending seat),
/// and its categories; normalises it.
fn check(input: &mut LayoutInput) -> Result<(String, i64)> {
    normalise(input);
    let mut c = Checks::default();
    let name = c.take("name", parse::name(&input.name, 200));
    let cats = categories(&input.sections, &input.areas);
    if cats.len() > MAX_CATEGORIES {
        c.fail("sections", "a layout has at most 100 categories");
    }
    for (si, s) in input.sections.iter().enumerate() {
        for (ri, r) in s.rows.iter().enumerate() {
            for (xi, seat) in r.seats.iter().enumerate() {
                if parse::name(&seat.category, 100).is_err() {
                    c.fail(
                        &format!("sections[{si}].rows[{ri}].seats[{xi}].category"),
                        "must be 1 to 100 characters",
                    );
                }
            }
        }
    }
    for (ai, a) in input.areas.iter().enumerate() {
        for (ci, cat) in a.categories.iter().enumerate() {
            if parse::name(cat, 100).is_err() {
                c.fail(
                    &format!("areas[{ai}].categories[{ci}]"),
                    "must be 1 to 100 characters",
                );
            }
        }
    }
    // Each category stands for a ticket type while the map is checked.
    let ids: BTreeMap<&str, TicketTypeId> = cats
        .iter()
        .map(|c| (c.as_str(), TicketTypeId::new()))
        .collect();
    let (map, _) = as_map(&input.sections, &input.areas, &|c| ids.get(c).copied());
    let seats = match validate(&|_| true, &map, None) {
        Ok(seats) => {
            if let Err(errors) = validate_areas(&|_| true, &map, &seats, None) {
                for e in errors {
                    // An area's types are its categories here.
                    let field = e.field.replace(".ticket_type_ids", ".categories");
                    let message = e
                        .message
                        .replace("has seats in this map", "is a category of seats too")
                        .replace("ticket types are sold", "places are sold");
                    c.fail(&field, &message);
                }
            }
            seats.len() as i64
        }
        Err(errors) => {
            for e in errors {
                c.fail(&e.field, &e.message);
            }
            0
        }
    };
    c.finish()?;
    Ok((name.unwrap_or_default(), seats))
}

fn view(row: store::LayoutRow) -> Result<LayoutView> {
    let (sections, areas) = match serde_json::from_str(&row.doc) {
        Ok(Doc::Sections(s)) => (s, Vec::new()),
        Ok(Doc::Full { sections, areas }) => (sections, areas),
        Err(e) => return Err(kernel::ApiError::internal(e).into()),
    };
    Ok(LayoutView {
        id: row.id,
        name: row.name,
        categories: categories(&sections, &areas),
        seats: row.seats,
        sections,
        areas,
        created_at: clock::rfc3339(row.created_at),
        updated_at: clock::rfc3339(row.updated_at),
    })
}

/// The row a checked layout is kept as (its categories beside it, so a
/// list reads no seats).
fn stored(
    id: LayoutId,
    input: &LayoutInput,
    name: String,
    seats: i64,
    now: i64,
) -> Result<store::LayoutRow> {
    Ok(store::LayoutRow {
        id,
        name,
        doc: serde_json::to_string(&Doc::Full {
            sections: input.sections.clone(),
            areas: input.areas.clone(),
        })
        .map_err(kernel::ApiError::internal)?,
        categories: serde_json::to_string(&categories(&input.sections, &input.areas))
            .map_err(kernel::ApiError::internal)?,
        seats,
        created_at: now,
        updated_at: now,
    })
}

async fn read(app: &App, t: &Tenant, id: LayoutId) -> Result<LayoutView> {
    store::layout(app.db(), t, id)
        .await?
        .ok_or(Error::NotFound)
        .and_then(view)
}

/// Keeps a new layout (import).
pub async fn create_layout(app: &App, actor: &Actor, mut input: LayoutInput) -> Result<LayoutView> {
    let t = actor.require(Permission::EventsWrite)?;
    let (name, seats) = check(&mut input)?;
    let now = app.kernel.now();
    let row = stored(LayoutId::new(), &input, name, seats, now)?;
    let audit = actor
        .audit("layout.create", "layout")
        .object(row.id)
        .after(serde_json::json!({"name": row.name, "seats": seats}))
        .stmt(now);
    app.db()
        .write_grouped(vec![store::insert_layout(t, &row), audit])
        .await?;
    read(app, t, row.id).await
}

/// Replaces a layout whole (events that copied it keep their copy).
pub async fn put_layout(
    app: &App,
    actor: &Actor,
    id: LayoutId,
    mut input: LayoutInput,
) -> Result<LayoutView> {
    let t = actor.require(Permission::EventsWrite)?;
    let Some(before) = store::layout(app.db(), t, id).await? else {
        return Err(Error::NotFound);
    };
    let (name, seats) = check(&mut input)?;
    let now = app.kernel.now();
    let row = stored(id, &input, name, seats, now)?;
    let audit = actor
        .audit("layout.update", "layout")
        .object(id)
        .before(serde_json::json!({"name": before.name, "seats": before.seats}))
        .after(serde_json::json!({"name": row.name, "seats": seats}))
        .stmt(now);
    app.db()
        .write_grouped(vec![store::update_layout(t, &row), audit])
        .await?;
    read(app, t, id).await
}

pub async fn get_layout(app: &App, actor: &Actor, id: LayoutId) -> Result<LayoutView> {
    read(app, actor.require(Permission::EventsRead)?, id).await
}

/// The org's layouts, newest first (at most 500), without their seats.
pub async fn list_layouts(app: &App, actor: &Actor) -> Result<Vec<LayoutSummary>> {
    let t = actor.require(Permission::EventsRead)?;
    store::layouts(app.db(), t, 500)
        .await?
        .into_iter()
        .map(|r| {
            Ok(LayoutSummary {
                id: r.id,
                name: r.name,
                categories: serde_json::from_str(&r.categories)
                    .map_err(kernel::ApiError::internal)?,
                seats: r.seats,
                updated_at: clock::rfc3339(r.updated_at),
            })
        })
        .collect()
}

/// Keeps an event's seat map as a layout: each seat's category is its
/// ticket type's name.
pub async fn layout_from_event(
    app: &App,
    actor: &Actor,
    event: EventId,
    name: &str,
) -> Result<LayoutView> {
    let t = actor.require(Permission::EventsRead)?;
    let (Some(catalog), Some(map)) = (
        super::catalog(app, t, event).await?,
        super::seating(app, t, event).await?,
    ) else {
        return Err(Error::NotFound);
    };
    let category = |tt| {
        catalog
            .ticket_type(tt)
            .map(|ty| ty.name.clone())
            .unwrap_or_else(|| "Seats".into())
    };
    let input = LayoutInput {
        name: name.to_string(),
        sections: from_map(&map, &category),
        areas: map
            .areas
            .iter()
            .map(|a| LayoutArea {
                name: a.name.clone(),
                x: a.x,
                y: a.y,
                width: a.width,
                height: a.height,
                capacity: a.capacity,
                categories: a.ticket_type_ids.iter().map(|tt| category(*tt)).collect(),
            })
            .collect(),
    };
    create_layout(app, actor, input).await
}

fn from_map(map: &SeatMap, category: &dyn Fn(TicketTypeId) -> String) -> Vec<LayoutSection> {
    map.to_input()
        .sections
        .into_iter()
        .map(|s| LayoutSection {
            name: s.name,
            rows: s
                .rows
                .into_iter()
                .map(|r| LayoutRow {
                    label: r.label,
                    seats: r
                        .seats
                        .into_iter()
                        .map(|seat| LayoutSeat {
                            label: seat.label,
                            x: seat.x,
                            y: seat.y,
                            category: category(seat.ticket_type_id),
                            flags: seat.flags,
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

/// A layout as the event's seat map: every category mapped to one of the
/// event's ticket types (`ticket_types`, by category), else 422 naming the
/// category. Stored by the caller with [`super::put_seating`].
pub async fn map_for_event(
    app: &App,
    actor: &Actor,
    layout: LayoutId,
    ticket_types: &BTreeMap<String, TicketTypeId>,
) -> Result<SeatMapInput> {
    let v = get_layout(app, actor, layout).await?;
    let (map, missing) = as_map(&v.sections, &v.areas, &|c| ticket_types.get(c).copied());
    if !missing.is_empty() {
        let mut c = Checks::default();
        for m in missing {
            c.fail(
                &format!("ticket_types.{m}"),
                "map this category to a ticket type of the event",
            );
        }
        c.finish()?;
    }
    Ok(map)
}
