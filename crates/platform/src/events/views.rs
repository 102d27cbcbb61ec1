//! The organizer's catalog from the console: create an event (times typed
//! and shown in its own time zone), add ticket types and quotas, publish,
//! cancel. (The event's live dashboard page is the live slice's.)

use askama::Template;
use axum::{
    Form,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use kernel::{
    ApiError,
    http::ApiPath,
    ids::{EventId, QuotaId, TicketTypeId},
};

use super::domain::{self, NewEvent, NewQuota, NewTicketType, local_to_rfc3339, shown_in};
use crate::{
    App,
    identity::SessionActor,
    money,
    web::{Fields, all, csrf_matches, csrf_refused, field, page, said},
};

pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/dashboard/events/new", get(new_event_page))
        .route("/dashboard/events/create", post(create_event))
        .route("/dashboard/events/{event_id}/catalog", get(catalog_page))
        .route(
            "/dashboard/events/{event_id}/ticket-types",
            post(add_ticket_type),
        )
        .route(
            "/dashboard/events/{event_id}/ticket-types/{ticket_type_id}",
            get(edit_type_page).post(edit_type),
        )
        .route("/dashboard/events/{event_id}/quotas", post(add_quota))
        .route(
            "/dashboard/events/{event_id}/quotas/{quota_id}/delete",
            post(delete_quota),
        )
        .route("/dashboard/events/{event_id}/vouchers", post(add_vouchers))
        .route("/dashboard/events/{event_id}/publish", post(publish))
        .route("/dashboard/events/{event_id}/dates", post(add_date))
        .route(
            "/dashboard/events/{event_id}/transfers",
            post(set_transfers),
        )
        .route("/dashboard/events/{event_id}/cancel", post(cancel))
        .route("/dashboard/events/{event_id}/seating", get(seating_page))
        .route(
            "/dashboard/events/{event_id}/seating.json",
            get(seating_json),
        )
        .route(
            "/dashboard/events/{event_id}/seating/section",
            post(add_section),
        )
        .route(
            "/dashboard/events/{event_id}/seating/remove-section",
            post(remove_section),
        )
        .route(
            "/dashboard/events/{event_id}/seating/flag",
            post(toggle_flag),
        )
        .route("/dashboard/events/{event_id}/seating/area", post(put_area))
        .route(
            "/dashboard/events/{event_id}/seating/remove-area",
            post(remove_area),
        )
        .route(
            "/dashboard/events/{event_id}/seating/import",
            post(import_map).layer(axum::extract::DefaultBodyLimit::max(
                super::seating::MAX_MAP_BYTES,
            )),
        )
        .merge(super::layout_views::routes())
}

/// Common IANA zones offered first; any other name the database knows is
/// accepted too.
const ZONES: &[&str] = &[
    "Africa/Johannesburg",
    "Africa/Lagos",
    "Africa/Nairobi",
    "Africa/Cairo",
    "Europe/London",
    "Europe/Amsterdam",
    "Europe/Berlin",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
    "UTC",
];

#[derive(Template)]
#[template(path = "event_new.html")]
struct NewEventPage {
    csrf: String,
    zones: &'static [&'static str],
    name: String,
    starts: String,
    ends: String,
    timezone: String,
    error: Option<String>,
}

async fn new_event_page(session: SessionActor) -> Result<Response, ApiError> {
    session.actor.require(kernel::Permission::EventsWrite)?;
    Ok(page(
        StatusCode::OK,
        NewEventPage {
            csrf: session.csrf,
            zones: ZONES,
            name: String::new(),
            starts: String::new(),
            ends: String::new(),
            timezone: "Africa/Johannesburg".into(),
            error: None,
        },
    ))
}

async fn create_event(
    State(app): State<App>,
    session: SessionActor,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let mut p = NewEventPage {
        csrf: session.csrf.clone(),
        zones: ZONES,
        name: field(&form, "name").to_string(),
        starts: field(&form, "starts_at").to_string(),
        ends: field(&form, "ends_at").to_string(),
        timezone: field(&form, "timezone").trim().to_string(),
        error: None,
    };
    // The times are the venue's wall clock, in the zone chosen.
    let starts = local_to_rfc3339(&p.starts, &p.timezone);
    let ends = local_to_rfc3339(&p.ends, &p.timezone);
    let (starts, ends) = match (starts, ends) {
        (Ok(s), Ok(e)) => (s, e),
        (s, e) => {
            let mut errors = Vec::new();
            if let Err(m) = s {
                errors.push(format!("Starts: {m}"));
            }
            if let Err(m) = e {
                errors.push(format!("Ends: {m}"));
            }
            p.error = Some(errors.join("; "));
            return Ok(page(StatusCode::UNPROCESSABLE_ENTITY, p));
        }
    };
    let made = domain::create_event(
        &app,
        &session.actor,
        NewEvent {
            name: p.name.clone(),
            starts_at: starts,
            ends_at: ends,
            timezone: p.timezone.clone(),
            series: field(&form, "series") == "on",
        },
    )
    .await
    .map_err(ApiError::from);
    match made {
        Ok(e) => Ok(Redirect::to(&format!("/dashboard/events/{}/catalog", e.id)).into_response()),
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::NOT_FOUND => {
            p.error = Some(said(&e));
            Ok(page(e.status(), p))
        }
        Err(e) => Err(e),
    }
}

struct TypeRow {
    id: String,
    name: String,
    price: String,
    capacity: i64,
    available: i64,
    window: String,
    max_per_order: String,
    /// hidden / retired / "".
    state: &'static str,
}

struct VoucherRow {
    code: String,
    discount: String,
    uses_left: i64,
    max_uses: i64,
    valid_until: String,
    types: String,
    reserved: bool,
}

struct QuotaRow {
    id: String,
    name: String,
    capacity: i64,
    left: i64,
    types: String,
}

#[derive(Template)]
#[template(path = "event_catalog.html")]
struct CatalogPage {
    csrf: String,
    event_id: String,
    name: String,
    status: &'static str,
    when: String,
    timezone: String,
    store_url: String,
    types: Vec<TypeRow>,
    type_choices: Vec<(String, String)>,
    quotas: Vec<QuotaRow>,
    vouchers: Vec<VoucherRow>,
    /// More vouchers than the page lists.
    more_vouchers: bool,
    transfers_allowed: bool,
    /// The deadline as a `datetime-local` value in the event's zone.
    transfer_deadline: String,
    /// A series: sold on its dates (listed here).
    series: bool,
    /// The series this event is a date of.
    series_id: Option<String>,
    dates: Vec<DateRow>,
    error: Option<String>,
}

struct DateRow {
    id: String,
    name: String,
    when: String,
    status: &'static str,
}

async fn catalog_of(
    app: &App,
    session: &SessionActor,
    event: EventId,
) -> Result<CatalogPage, ApiError> {
    let t = session.actor.require(kernel::Permission::EventsRead)?;
    let catalog = super::catalog(app, t, event)
        .await?
        .ok_or(ApiError::NotFound)?;
    let left = crate::sales::availability(app, t, event).await?;
    let dates = if catalog.event.series {
        super::dates(app, t, event).await.map_err(ApiError::from)?
    } else {
        Vec::new()
    };
    let (vouchers, more) = super::vouchers::list_vouchers(app, &session.actor, event, 200, None)
        .await
        .map_err(ApiError::from)?;
    let ids: Vec<_> = vouchers.iter().map(|v| v.id).collect();
    let uses_left = crate::sales::voucher_uses_left(app, t, event, &ids).await?;
    let e = &catalog.event;
    let tz = e.timezone.as_str();
    let name_of = |id: TicketTypeId| {
        catalog
            .ticket_type(id)
            .map(|t| t.name.clone())
            .unwrap_or_default()
    };
    Ok(CatalogPage {
        csrf: session.csrf.clone(),
        event_id: e.id.to_string(),
        name: e.name.clone(),
        status: e.status.as_str(),
        when: format!(
            "{} – {}",
            shown_in(e.starts_at_micros, tz),
            shown_in(e.ends_at_micros, tz)
        ),
        timezone: tz.to_string(),
        store_url: format!("/s/{}/events/{}", session.actor.org_slug(), e.id),
        types: e
            .ticket_types
            .iter()
            .map(|ty| TypeRow {
                id: ty.id.to_string(),
                name: ty.name.clone(),
                price: money::format(ty.price_cents, &ty.currency),
                capacity: ty.capacity,
                available: left
                    .types
                    .iter()
                    .find(|(id, _)| *id == ty.id)
                    .map(|(_, l)| *l)
                    .unwrap_or(0),
                window: match ty.sale_window {
                    (None, None) => "always".into(),
                    (s, e) => format!(
                        "{} – {}",
                        s.map(|s| shown_in(s, tz)).unwrap_or_default(),
                        e.map(|e| shown_in(e, tz)).unwrap_or_default()
                    ),
                },
                max_per_order: ty.max_per_order.map(|m| m.to_string()).unwrap_or_default(),
                state: if ty.retired_at.is_some() {
                    "retired"
                } else if ty.hidden {
                    "hidden"
                } else {
                    ""
                },
            })
            .collect(),
        type_choices: e
            .ticket_types
            .iter()
            .map(|ty| (ty.id.to_string(), ty.name.clone()))
            .collect(),
        quotas: catalog
            .quotas
            .iter()
            .map(|q| QuotaRow {
                id: q.id.to_string(),
                name: q.name.clone(),
                capacity: q.capacity,
                left: left
                    .quotas
                    .iter()
                    .find(|(id, _)| *id == q.id)
                    .map(|(_, l)| *l)
                    .unwrap_or(0)
                    .max(0),
                types: q
                    .ticket_type_ids
                    .iter()
                    .map(|id| name_of(*id))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect(),
        vouchers: vouchers
            .iter()
            .zip(uses_left)
            .map(|(v, left)| VoucherRow {
                code: v.code.clone(),
                discount: match (v.percent_off, v.amount_off_cents) {
                    (Some(p), _) => format!("{p}% off"),
                    (None, Some(a)) => format!(
                        "{} off",
                        money::amount(
                            a,
                            e.ticket_types
                                .first()
                                .map(|t| t.currency.as_str())
                                .unwrap_or("ZAR")
                        )
                    ),
                    _ => String::new(),
                },
                uses_left: left.max(0),
                max_uses: v.max_uses,
                reserved: v.reserved,
                valid_until: v
                    .valid_until_micros
                    .map(|u| shown_in(u, tz))
                    .unwrap_or_else(|| "no end".into()),
                types: if v.ticket_type_ids.is_empty() {
                    "all".into()
                } else {
                    v.ticket_type_ids
                        .iter()
                        .map(|id| name_of(*id))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })
            .collect(),
        more_vouchers: more.is_some(),
        transfers_allowed: e.transfers.allowed,
        transfer_deadline: e
            .transfer_deadline_micros
            .map(|m| domain::local_input(m, tz))
            .unwrap_or_default(),
        series: e.series,
        series_id: e.series_id.map(|s| s.to_string()),
        dates: dates
            .into_iter()
            .map(|d| DateRow {
                id: d.id.to_string(),
                name: d.name.clone(),
                when: format!(
                    "{} – {}",
                    shown_in(d.starts_at_micros, tz),
                    shown_in(d.ends_at_micros, tz)
                ),
                status: d.status.as_str(),
            })
            .collect(),
        error: None,
    })
}

async fn add_date(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let tz = zone_of(&app, &session, event).await?;
    let done = async {
        let required = |name: &str| {
            local(&form, name, &tz)?.ok_or_else(|| ApiError::field(name, "is required"))
        };
        let name = field(&form, "name").trim();
        super::add_date(
            &app,
            &session.actor,
            event,
            super::NewDate {
                starts_at: required("starts_at")?,
                ends_at: required("ends_at")?,
                name: (!name.is_empty()).then(|| name.to_string()),
            },
        )
        .await
        .map_err(ApiError::from)
    }
    .await;
    outcome(&app, &session, event, done).await
}

async fn catalog_page(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
) -> Result<Response, ApiError> {
    let p = catalog_of(&app, &session, event).await?;
    Ok(page(StatusCode::OK, p))
}

/// After a change: back to the catalog (a redirect, so a reload does not
/// post again), or the catalog with what was wrong.
async fn outcome<T>(
    app: &App,
    session: &SessionActor,
    event: EventId,
    result: Result<T, ApiError>,
) -> Result<Response, ApiError> {
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/dashboard/events/{event}/catalog")).into_response()),
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::NOT_FOUND => {
            let mut p = catalog_of(app, session, event).await?;
            p.error = Some(said(&e));
            Ok(page(e.status(), p))
        }
        Err(e) => Err(e),
    }
}

/// The event's time zone (what its form's times are typed in).
async fn zone_of(app: &App, session: &SessionActor, event: EventId) -> Result<String, ApiError> {
    let t = session.actor.require(kernel::Permission::EventsRead)?;
    let catalog = super::catalog(app, t, event)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(catalog.event.timezone.clone())
}

/// A form's whole number (empty: none).
fn whole(form: &Fields, name: &str) -> Result<Option<i64>, ApiError> {
    let v = field(form, name).trim();
    if v.is_empty() {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|_| ApiError::field(name, "must be a whole number"))
}

/// A form's date and time typed in the event's zone, as RFC 3339 (empty:
/// none).
fn local(form: &Fields, name: &str, tz: &str) -> Result<Option<String>, ApiError> {
    let v = field(form, name).trim();
    if v.is_empty() {
        return Ok(None);
    }
    local_to_rfc3339(v, tz)
        .map(Some)
        .map_err(|m| ApiError::field(name, &m))
}

async fn add_ticket_type(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let tz = zone_of(&app, &session, event).await?;
    let currency = field(&form, "currency").trim().to_ascii_uppercase();
    let price = field(&form, "price").trim();
    let price_cents = if price.is_empty() {
        Some(0)
    } else {
        money::parse(price, &currency)
    };
    let whole = |name: &str| whole(&form, name);
    let local = |name: &str| local(&form, name, &tz);
    let made = async {
        let Some(price_cents) = price_cents else {
            return Err(ApiError::field(
                "price",
                "must be an amount in the currency, e.g. 150.00",
            ));
        };
        let input = NewTicketType {
            name: field(&form, "name").to_string(),
            price_cents,
            currency,
            capacity: whole("capacity")?
                .ok_or_else(|| ApiError::field("capacity", "must be a whole number"))?,
            sale_starts_at: local("sale_starts_at")?,
            sale_ends_at: local("sale_ends_at")?,
            max_per_order: whole("max_per_order")?,
            ..Default::default()
        };
        domain::add_ticket_type(&app, &session.actor, event, input)
            .await
            .map_err(ApiError::from)
    }
    .await;
    outcome(&app, &session, event, made).await
}

/// One question's row on the edit form.
struct QuestionRow {
    id: String,
    label: String,
    kind: &'static str,
    required: bool,
    options: String,
}

#[derive(Template)]
#[template(path = "ticket_type_edit.html")]
struct EditTypePage {
    csrf: String,
    event_id: String,
    event_name: String,
    timezone: String,
    id: String,
    name: String,
    currency: String,
    price: String,
    capacity: i64,
    sale_starts_at: String,
    sale_ends_at: String,
    valid_from: String,
    valid_until: String,
    max_per_order: String,
    min_per_order: String,
    sort_order: i64,
    hidden: bool,
    retired: bool,
    /// The questions, then two empty rows to add one.
    questions: Vec<QuestionRow>,
    /// What the type was when the form was drawn: a save over a change
    /// made meanwhile (elsewhere) is refused, not silently undone.
    version: String,
    error: Option<String>,
}

/// A ticket type's terms as a short fingerprint.
fn version_of(ty: &super::TicketTypeView) -> String {
    let json = serde_json::to_string(ty).unwrap_or_default();
    kernel::auth::sha256(json.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

const KINDS: [&str; 5] = ["name", "email", "phone", "text", "choice"];

impl EditTypePage {
    fn kinds(&self) -> &'static [&'static str] {
        &KINDS
    }
}

async fn edit_type_of(
    app: &App,
    session: &SessionActor,
    event: EventId,
    tt: TicketTypeId,
) -> Result<EditTypePage, ApiError> {
    let t = session.actor.require(kernel::Permission::EventsRead)?;
    let catalog = super::catalog(app, t, event)
        .await?
        .ok_or(ApiError::NotFound)?;
    let ty = catalog.ticket_type(tt).ok_or(ApiError::NotFound)?;
    let tz = catalog.event.timezone.as_str();
    let mut questions: Vec<QuestionRow> = ty
        .questions
        .iter()
        .map(|q| QuestionRow {
            id: q.id.clone(),
            label: q.label.clone(),
            kind: q.kind.as_str(),
            required: q.required,
            options: q.options.join(", "),
        })
        .collect();
    for _ in 0..2 {
        questions.push(QuestionRow {
            id: String::new(),
            label: String::new(),
            kind: "text",
            required: false,
            options: String::new(),
        });
    }
    Ok(EditTypePage {
        csrf: session.csrf.clone(),
        event_id: event.to_string(),
        event_name: catalog.event.name.clone(),
        timezone: tz.to_string(),
        id: ty.id.to_string(),
        name: ty.name.clone(),
        currency: ty.currency.clone(),
        price: money::amount(ty.price_cents, &ty.currency),
        capacity: ty.capacity,
        sale_starts_at: ty
            .sale_window
            .0
            .map(|m| domain::local_input(m, tz))
            .unwrap_or_default(),
        sale_ends_at: ty
            .sale_window
            .1
            .map(|m| domain::local_input(m, tz))
            .unwrap_or_default(),
        valid_from: ty
            .valid_window
            .0
            .map(|m| domain::local_input(m, tz))
            .unwrap_or_default(),
        valid_until: ty
            .valid_window
            .1
            .map(|m| domain::local_input(m, tz))
            .unwrap_or_default(),
        max_per_order: ty.max_per_order.map(|m| m.to_string()).unwrap_or_default(),
        min_per_order: ty.min_per_order.map(|m| m.to_string()).unwrap_or_default(),
        sort_order: ty.sort_order,
        hidden: ty.hidden,
        retired: ty.retired_at.is_some(),
        questions,
        version: version_of(ty),
        error: None,
    })
}

async fn edit_type_page(
    State(app): State<App>,
    session: SessionActor,
    ApiPath((event, tt)): ApiPath<(EventId, TicketTypeId)>,
) -> Result<Response, ApiError> {
    Ok(page(
        StatusCode::OK,
        edit_type_of(&app, &session, event, tt).await?,
    ))
}

/// The edit form as a change: every field as the form shows it (an empty
/// time or limit clears it; a question row without a label is dropped).
fn type_patch(form: &Fields, currency: &str, tz: &str) -> Result<super::TicketTypePatch, ApiError> {
    let whole = |name: &str| whole(form, name);
    let local = |name: &str| local(form, name, tz);
    let price = field(form, "price").trim();
    let price_cents = if price.is_empty() {
        0
    } else {
        money::parse(price, currency).ok_or_else(|| {
            ApiError::field("price", "must be an amount in the currency, e.g. 150.00")
        })?
    };
    let mut questions = Vec::new();
    for i in 0..super::questions::MAX_QUESTIONS + 2 {
        let label = field(form, &format!("q{i}_label")).trim();
        if label.is_empty() {
            continue;
        }
        let kind = super::QuestionKind::parse(field(form, &format!("q{i}_kind")))
            .ok_or_else(|| ApiError::field(&format!("questions[{i}].kind"), "unknown kind"))?;
        let id = field(form, &format!("q{i}_id")).trim();
        questions.push(super::QuestionInput {
            id: (!id.is_empty()).then(|| id.to_string()),
            label: label.to_string(),
            kind,
            required: field(form, &format!("q{i}_required")) == "on",
            options: field(form, &format!("q{i}_options"))
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(String::from)
                .collect(),
        });
    }
    Ok(super::TicketTypePatch {
        name: Some(field(form, "name").to_string()),
        price_cents: Some(price_cents),
        capacity: Some(
            whole("capacity")?
                .ok_or_else(|| ApiError::field("capacity", "must be a whole number"))?,
        ),
        sale_starts_at: Some(local("sale_starts_at")?),
        sale_ends_at: Some(local("sale_ends_at")?),
        valid_from: Some(local("valid_from")?),
        valid_until: Some(local("valid_until")?),
        max_per_order: Some(whole("max_per_order")?),
        min_per_order: Some(whole("min_per_order")?),
        hidden: Some(field(form, "hidden") == "on"),
        sort_order: Some(whole("sort_order")?.unwrap_or(0)),
        retired: Some(field(form, "retired") == "on"),
        questions: Some(questions),
    })
}

async fn edit_type(
    State(app): State<App>,
    session: SessionActor,
    ApiPath((event, tt)): ApiPath<(EventId, TicketTypeId)>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let mut p = edit_type_of(&app, &session, event, tt).await?;
    let stale = field(&form, "version") != p.version;
    let changed = if stale {
        Err(ApiError::Conflict(
            "the ticket type was changed meanwhile: look at it again before saving".into(),
        ))
    } else {
        type_patch(&form, &p.currency, &p.timezone)
    };
    let changed = match changed {
        Ok(patch) => super::update_ticket_type(&app, &session.actor, event, tt, patch)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match changed {
        Ok(_) => Ok(Redirect::to(&format!("/dashboard/events/{event}/catalog")).into_response()),
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::NOT_FOUND => {
            if !stale {
                keep_typed(&mut p, &form);
            }
            p.error = Some(said(&e));
            Ok(page(e.status(), p))
        }
        Err(e) => Err(e),
    }
}

/// The edit page again as it was typed (to put right what was refused).
fn keep_typed(p: &mut EditTypePage, form: &Fields) {
    let text = |name: &str| field(form, name).to_string();
    p.name = text("name");
    p.price = text("price");
    p.capacity = field(form, "capacity").trim().parse().unwrap_or(p.capacity);
    p.sale_starts_at = text("sale_starts_at");
    p.sale_ends_at = text("sale_ends_at");
    p.valid_from = text("valid_from");
    p.valid_until = text("valid_until");
    p.max_per_order = text("max_per_order");
    p.min_per_order = text("min_per_order");
    p.sort_order = field(form, "sort_order")
        .trim()
        .parse()
        .unwrap_or(p.sort_order);
    p.hidden = field(form, "hidden") == "on";
    p.retired = field(form, "retired") == "on";
    p.questions = (0..p.questions.len())
        .map(|i| QuestionRow {
            id: text(&format!("q{i}_id")),
            label: text(&format!("q{i}_label")),
            kind: KINDS
                .into_iter()
                .find(|k| *k == field(form, &format!("q{i}_kind")))
                .unwrap_or("text"),
            required: field(form, &format!("q{i}_required")) == "on",
            options: text(&format!("q{i}_options")),
        })
        .collect();
}

/// Whether tickets may be handed on, and until when (typed in the event's
/// zone; empty: until it starts).
async fn set_transfers(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let tz = zone_of(&app, &session, event).await?;
    let done = async {
        let policy = super::TransferPolicy {
            allowed: field(&form, "allowed") == "on",
            deadline: local(&form, "deadline", &tz)?,
        };
        domain::put_transfer_policy(&app, &session.actor, event, policy)
            .await
            .map_err(ApiError::from)
    }
    .await;
    outcome(&app, &session, event, done).await
}

/// The ticket types ticked on a form.
fn type_ids(form: &Fields) -> Result<Vec<TicketTypeId>, ApiError> {
    all(form, "ticket_type_ids")
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::field("ticket_type_ids", "unknown ticket type"))
        })
        .collect()
}

async fn add_quota(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let made = async {
        let capacity = field(&form, "capacity")
            .trim()
            .parse()
            .map_err(|_| ApiError::field("capacity", "must be a whole number"))?;
        let types = type_ids(&form)?;
        domain::create_quota(
            &app,
            &session.actor,
            event,
            NewQuota {
                name: field(&form, "name").to_string(),
                capacity,
                ticket_type_ids: types,
            },
        )
        .await
        .map_err(ApiError::from)
    }
    .await;
    outcome(&app, &session, event, made).await
}

/// One voucher with its code, or many with a prefix and random codes.
async fn add_vouchers(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let t = session.actor.require(kernel::Permission::EventsRead)?;
    let catalog = super::catalog(&app, t, event)
        .await?
        .ok_or(ApiError::NotFound)?;
    let tz = catalog.event.timezone.clone();
    let currency = catalog
        .event
        .ticket_types
        .first()
        .map(|t| t.currency.clone())
        .unwrap_or_else(|| "ZAR".into());
    let made = async {
        let amount = field(&form, "amount").trim();
        let (percent_off, amount_off_cents) = match field(&form, "kind") {
            "percent" => (
                Some(amount.parse().map_err(|_| {
                    ApiError::field("percent_off", "must be a whole number from 0 to 100")
                })?),
                None,
            ),
            _ => (
                None,
                Some(money::parse(amount, &currency).ok_or_else(|| {
                    ApiError::field("amount_off_cents", "must be an amount, e.g. 50.00")
                })?),
            ),
        };
        let max_uses = field(&form, "max_uses")
            .trim()
            .parse()
            .map_err(|_| ApiError::field("max_uses", "must be a whole number"))?;
        let until = field(&form, "valid_until").trim();
        let valid_until = if until.is_empty() {
            None
        } else {
            Some(local_to_rfc3339(until, &tz).map_err(|m| ApiError::field("valid_until", &m))?)
        };
        let types = type_ids(&form)?;
        let terms = super::NewVoucher {
            percent_off,
            amount_off_cents,
            max_uses,
            valid_until,
            ticket_type_ids: types,
            reserve: field(&form, "reserve") == "on",
        };
        let count = field(&form, "count").trim();
        if count.is_empty() {
            super::create_voucher(&app, &session.actor, event, field(&form, "code"), terms)
                .await
                .map(|_| ())
                .map_err(ApiError::from)
        } else {
            let count = count
                .parse()
                .map_err(|_| ApiError::field("count", "must be a whole number"))?;
            super::create_vouchers(
                &app,
                &session.actor,
                event,
                count,
                field(&form, "prefix"),
                terms,
            )
            .await
            .map(|_| ())
            .map_err(ApiError::from)
        }
    }
    .await;
    outcome(&app, &session, event, made).await
}

async fn delete_quota(
    State(app): State<App>,
    session: SessionActor,
    ApiPath((event, quota)): ApiPath<(EventId, QuotaId)>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let done = domain::delete_quota(&app, &session.actor, event, quota)
        .await
        .map_err(ApiError::from);
    outcome(&app, &session, event, done).await
}

async fn publish(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let done = domain::publish(&app, &session.actor, event)
        .await
        .map_err(ApiError::from);
    outcome(&app, &session, event, done).await
}

async fn cancel(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    if field(&form, "confirm") != "yes" {
        return Err(ApiError::field(
            "confirm",
            "tick the box to cancel the event",
        ));
    }
    domain::cancel(&app, &session.actor, event).await?;
    Ok(Redirect::to(&format!("/dashboard/events/{event}")).into_response())
}

#[derive(Template)]
#[template(path = "seating_editor.html")]
struct SeatingPage {
    csrf: String,
    event_id: String,
    name: String,
    store_url: Option<String>,
    drawing: Option<super::Drawing>,
    sections: Vec<(String, usize, usize)>,
    /// The map's areas: (name, capacity, ticket type names).
    areas: Vec<(String, i64, String)>,
    type_choices: Vec<(String, String)>,
    error: Option<String>,
    json: String,
    /// The org's venue layouts (id, name), and the one chosen to copy in.
    layouts: Vec<(String, String)>,
    chosen: Option<super::layout_views::Chosen>,
}

/// The seat-map editor of `event`, with the venue layout `chosen` to copy
/// in (its categories to map), if any.
async fn seating_of(
    app: &App,
    session: &SessionActor,
    event: EventId,
    chosen: Option<kernel::ids::LayoutId>,
) -> Result<SeatingPage, ApiError> {
    let t = session.actor.require(kernel::Permission::EventsRead)?;
    let catalog = super::catalog(app, t, event)
        .await?
        .ok_or(ApiError::NotFound)?;
    let map = super::seating(app, t, event).await?;
    let e = &catalog.event;
    let type_choices: Vec<(String, String)> = e
        .ticket_types
        .iter()
        .map(|ty| (ty.id.to_string(), ty.name.clone()))
        .collect();
    let (layouts, chosen) =
        super::layout_views::for_editor(app, session, &type_choices, chosen).await?;
    Ok(SeatingPage {
        csrf: session.csrf.clone(),
        event_id: e.id.to_string(),
        name: e.name.clone(),
        store_url: catalog
            .is_published()
            .then(|| format!("/s/{}/events/{}", session.actor.org_slug(), e.id)),
        drawing: map.as_deref().map(super::draw),
        sections: map
            .as_deref()
            .map(|m| {
                m.sections
                    .iter()
                    .map(|s| {
                        (
                            s.name.clone(),
                            s.rows.len(),
                            s.rows.iter().map(|r| r.seats.len()).sum(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        areas: map
            .as_deref()
            .map(|m| {
                m.areas
                    .iter()
                    .map(|a| {
                        let names: Vec<&str> = a
                            .ticket_type_ids
                            .iter()
                            .filter_map(|tt| catalog.ticket_type(*tt).map(|ty| ty.name.as_str()))
                            .collect();
                        (a.name.clone(), a.capacity, names.join(", "))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        type_choices,
        error: None,
        json: String::new(),
        layouts,
        chosen,
    })
}

#[derive(serde::Deserialize)]
struct LayoutChoice {
    /// A venue layout to copy in: the page asks a ticket type per category.
    layout: Option<kernel::ids::LayoutId>,
}

async fn seating_page(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    kernel::http::ApiQuery(q): kernel::http::ApiQuery<LayoutChoice>,
) -> Result<Response, ApiError> {
    Ok(page(
        StatusCode::OK,
        seating_of(&app, &session, event, q.layout).await?,
    ))
}

/// The map as JSON, as `PUT …/seating` takes it (export).
async fn seating_json(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
) -> Result<Response, ApiError> {
    let t = session.actor.require(kernel::Permission::EventsRead)?;
    let map = super::seating(&app, t, event)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut res = axum::Json(map.to_input()).into_response();
    res.headers_mut().insert(
        axum::http::header::CONTENT_DISPOSITION,
        axum::http::HeaderValue::from_static("attachment; filename=\"seating.json\""),
    );
    Ok(res)
}

/// The editor again with what went wrong (and the JSON as typed), or the
/// error itself when it is not the organizer's to put right.
pub(super) async fn seating_failed(
    app: &App,
    session: &SessionActor,
    event: EventId,
    e: ApiError,
    typed: String,
) -> Result<Response, ApiError> {
    if e.status().is_client_error() && e.status() != StatusCode::NOT_FOUND {
        let mut p = seating_of(app, session, event, None).await?;
        p.error = Some(said(&e));
        p.json = typed;
        Ok(page(e.status(), p))
    } else {
        Err(e)
    }
}

/// Stores an edited map; back to the editor, or the editor with what went
/// wrong (and, for an import, the JSON as typed).
pub(super) async fn store_map(
    app: &App,
    session: &SessionActor,
    event: EventId,
    map: Result<super::SeatMapInput, ApiError>,
    typed: String,
) -> Result<Response, ApiError> {
    let stored = match map {
        Ok(map) => {
            let t = session.actor.require(kernel::Permission::EventsWrite)?;
            let claimed = crate::sales::seats::claimed(app.db(), t, event)
                .await?
                .into_iter()
                .map(|(s, _)| s)
                .collect();
            super::put_seating(app, &session.actor, event, map, &claimed)
                .await
                .map_err(ApiError::from)
        }
        Err(e) => Err(e),
    };
    match stored {
        Ok(_) => Ok(Redirect::to(&format!("/dashboard/events/{event}/seating")).into_response()),
        Err(e) => seating_failed(app, session, event, e, typed).await,
    }
}

/// The map now, as an editable body (empty when there is none).
async fn current_map(
    app: &App,
    session: &SessionActor,
    event: EventId,
) -> Result<super::SeatMapInput, ApiError> {
    let t = session.actor.require(kernel::Permission::EventsRead)?;
    Ok(super::seating(app, t, event)
        .await?
        .map(|m| m.to_input())
        .unwrap_or(super::SeatMapInput {
            sections: Vec::new(),
            areas: Vec::new(),
        }))
}

/// Adds a section of `rows` × `seats` on a grid below the others.
async fn add_section(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let built = async {
        let number = |name: &str, max: usize| -> Result<usize, ApiError> {
            field(&form, name)
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::field(name, &format!("must be a whole number from 1 to {max}"))
                })
        };
        let rows = number("rows", 200)?;
        let per_row = number("seats_per_row", 200)?;
        let tt: TicketTypeId = field(&form, "ticket_type_id")
            .parse()
            .map_err(|_| ApiError::field("ticket_type_id", "choose a ticket type"))?;
        let mut map = current_map(&app, &session, event).await?;
        map.add_grid(field(&form, "name"), rows, per_row, tt);
        Ok(map)
    }
    .await;
    store_map(&app, &session, event, built, String::new()).await
}

/// Sets or clears one flag on the seats clicked in the editor.
async fn toggle_flag(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let built = async {
        let flag = super::SeatFlag::parse(field(&form, "flag"))
            .ok_or_else(|| ApiError::field("flag", "choose a flag"))?;
        let t = session.actor.require(kernel::Permission::EventsRead)?;
        let stored = super::seating(&app, t, event)
            .await?
            .ok_or(ApiError::NotFound)?;
        let wanted: std::collections::BTreeSet<&str> = all(&form, "seat").collect();
        if wanted.is_empty() {
            return Err(ApiError::field("seat", "click the seats to change first"));
        }
        Ok(stored.with_flag_toggled(&wanted, flag))
    }
    .await;
    store_map(&app, &session, event, built, String::new()).await
}

/// Adds a general-admission area, or changes the one of the same name:
/// its capacity and ticket types, and where it is (below the map unless
/// `x` and `y` are given).
async fn put_area(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let built = async {
        let number = |name: &str, default: Option<f64>| -> Result<Option<f64>, ApiError> {
            let v = field(&form, name).trim();
            if v.is_empty() {
                return Ok(default);
            }
            v.parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(Some)
                .ok_or_else(|| ApiError::field(name, "must be a number"))
        };
        let capacity: i64 = field(&form, "capacity")
            .trim()
            .parse()
            .map_err(|_| ApiError::field("capacity", "must be a whole number"))?;
        let mut types = Vec::new();
        for v in all(&form, "ticket_type_id") {
            types.push(
                v.parse::<TicketTypeId>()
                    .map_err(|_| ApiError::field("ticket_type_ids", "choose ticket types"))?,
            );
        }
        if types.is_empty() {
            return Err(ApiError::field(
                "ticket_type_ids",
                "choose the ticket types sold into the area",
            ));
        }
        let mut map = current_map(&app, &session, event).await?;
        let name = field(&form, "name").trim().to_string();
        let before = map.areas.iter().position(|a| a.name == name);
        let (x, y) = match (number("x", None)?, number("y", None)?) {
            (Some(x), Some(y)) => (x, y),
            _ => match before {
                Some(i) => (map.areas[i].x, map.areas[i].y),
                None => map.free_spot(),
            },
        };
        let area = super::AreaInput {
            name,
            x,
            y,
            width: number("width", Some(10.0))?.unwrap_or(10.0),
            height: number("height", Some(4.0))?.unwrap_or(4.0),
            capacity,
            ticket_type_ids: types,
        };
        match before {
            Some(i) => map.areas[i] = area,
            None => map.areas.push(area),
        }
        Ok(map)
    }
    .await;
    store_map(&app, &session, event, built, String::new()).await
}

async fn remove_area(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let built = async {
        let mut map = current_map(&app, &session, event).await?;
        let name = field(&form, "area");
        map.areas.retain(|a| a.name != name);
        Ok(map)
    }
    .await;
    store_map(&app, &session, event, built, String::new()).await
}

async fn remove_section(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let built = async {
        let mut map = current_map(&app, &session, event).await?;
        let name = field(&form, "section");
        map.sections.retain(|s| s.name != name);
        Ok(map)
    }
    .await;
    store_map(&app, &session, event, built, String::new()).await
}

/// Replaces the map with one pasted as JSON (as `PUT …/seating` takes it).
async fn import_map(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let typed = field(&form, "json").to_string();
    let map = serde_json::from_str::<super::SeatMapInput>(&typed)
        .map_err(|e| ApiError::field("json", &format!("not a seat map: {e}")));
    store_map(&app, &session, event, map, typed).await
}
