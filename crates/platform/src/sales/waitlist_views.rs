//! The waiting list's pages: joining from the storefront (for a sold-out
//! ticket type), and the organizer's view of who waits, who was offered
//! what, who bought.

use askama::Template;
use axum::{
    Form,
    extract::State,
    http::StatusCode,
    response::Response,
    routing::{get, post},
};
use kernel::{
    ApiError,
    http::{ApiPath, ClientAddr},
    ids::{EventId, TicketTypeId},
};

use super::waitlist::{self, Join};
use crate::{
    App,
    identity::{SessionActor, StoreTenant},
    web::{Fields, field, page},
};

pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/s/{org}/events/{event_id}/waiting-list", post(join))
        .route("/s/{org}/waiting-list/{entry_id}", get(place))
        .route("/s/{org}/waiting-list/{entry_id}/leave", post(leave))
        .route(
            "/dashboard/events/{event_id}/waiting-list",
            get(organizer_page),
        )
}

#[derive(Template)]
#[template(path = "waitlist_joined.html")]
struct Joined {
    org: String,
    event_id: String,
    event_name: String,
    type_name: String,
    position: i64,
    error: Option<String>,
    offer_hours: i64,
    /// The place's page and the key to leave it with (while waiting).
    place: Option<(String, String)>,
    /// Where the place stands when it is not waiting (left, offered, …).
    status: &'static str,
}

/// Joins the line (the event page's form); says where they stand, or why
/// not.
async fn join(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    StoreTenant(t): StoreTenant,
    ApiPath((org, event)): ApiPath<(String, EventId)>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    let catalog = super::domain::published_catalog(&app, &t, event).await?;
    let tt: Option<TicketTypeId> = field(&form, "ticket_type_id").parse().ok();
    let joined = async {
        app.kernel.limits.storefront.check(&ip).await?;
        let quantity = field(&form, "quantity")
            .trim()
            .parse()
            .map_err(|_| ApiError::field("quantity", "must be a whole number"))?;
        let ticket_type_id =
            tt.ok_or_else(|| ApiError::field("ticket_type_id", "choose a ticket type"))?;
        waitlist::join(
            &app,
            &t,
            event,
            Join {
                ticket_type_id,
                quantity,
                email: field(&form, "email").to_string(),
                name: field(&form, "name").to_string(),
            },
        )
        .await
        .map_err(ApiError::from)
    }
    .await;
    let mut p = Joined {
        org,
        event_id: event.to_string(),
        event_name: catalog.event.name.clone(),
        type_name: tt
            .and_then(|tt| catalog.ticket_type(tt))
            .map(|t| t.name.clone())
            .unwrap_or_default(),
        position: 0,
        error: None,
        offer_hours: super::limits::of(&app, t.org(), event).await?.offer_secs() / 3600,
        place: None,
        status: "waiting",
    };
    match joined {
        Ok((entry, position, key)) => {
            p.position = position;
            p.place = Some((entry.id.to_string(), key));
            Ok(page(StatusCode::CREATED, p))
        }
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::NOT_FOUND => {
            p.error = Some(crate::web::said(&e));
            Ok(page(e.status(), p))
        }
        Err(e) => Err(e),
    }
}

#[derive(serde::Deserialize)]
struct KeyQuery {
    key: Option<String>,
}

/// A place in line, for its buyer: where it stands, and a way out.
async fn place(
    State(app): State<App>,
    StoreTenant(t): StoreTenant,
    ApiPath((org, entry)): ApiPath<(String, kernel::ids::WaitlistEntryId)>,
    kernel::http::ApiQuery(q): kernel::http::ApiQuery<KeyQuery>,
) -> Result<Response, ApiError> {
    let key = q.key.unwrap_or_default();
    let (e, position) = waitlist::for_buyer(&app, &t, entry, &key).await?;
    let p = place_page(&app, &t, org, &e, position, key, None).await?;
    Ok(page(StatusCode::OK, p))
}

/// Leaves the line (the place page's button); the place as it is then.
async fn leave(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    StoreTenant(t): StoreTenant,
    ApiPath((org, entry)): ApiPath<(String, kernel::ids::WaitlistEntryId)>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    app.kernel.limits.storefront.check(&ip).await?;
    let key = field(&form, "key").to_string();
    let left = waitlist::leave(&app, &t, entry, &key).await;
    let (e, position) = waitlist::for_buyer(&app, &t, entry, &key).await?;
    match left {
        Ok(_) => Ok(page(
            StatusCode::OK,
            place_page(&app, &t, org, &e, position, key, None).await?,
        )),
        Err(err) => {
            let err = ApiError::from(err);
            if err.status() == StatusCode::CONFLICT {
                let said = crate::web::said(&err);
                Ok(page(
                    StatusCode::CONFLICT,
                    place_page(&app, &t, org, &e, position, key, Some(said)).await?,
                ))
            } else {
                Err(err)
            }
        }
    }
}

async fn place_page(
    app: &App,
    t: &crate::identity::Tenant,
    org: String,
    e: &waitlist::WaitlistEntry,
    position: i64,
    key: String,
    error: Option<String>,
) -> Result<Joined, ApiError> {
    let catalog = crate::events::catalog(app, t, e.event_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Joined {
        org,
        event_id: e.event_id.to_string(),
        event_name: catalog.event.name.clone(),
        type_name: catalog
            .ticket_type(e.ticket_type_id)
            .map(|t| t.name.clone())
            .unwrap_or_default(),
        position,
        error,
        offer_hours: super::limits::of(app, t.org(), e.event_id)
            .await?
            .offer_secs()
            / 3600,
        place: Some((e.id.to_string(), key)),
        status: e.status.as_str(),
    })
}

struct EntryRow {
    email: String,
    name: String,
    type_name: String,
    quantity: i64,
    status: &'static str,
    joined: String,
    offered_until: String,
}

#[derive(Template)]
#[template(path = "waiting_list.html")]
struct OrganizerPage {
    offer_hours: i64,
    event_id: String,
    event_name: String,
    entries: Vec<EntryRow>,
    more: bool,
}

async fn organizer_page(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
) -> Result<Response, ApiError> {
    let t = session.actor.require(kernel::Permission::OrdersRead)?;
    let catalog = crate::events::catalog(&app, t, event)
        .await?
        .ok_or(ApiError::NotFound)?;
    let (entries, next) = waitlist::list(&app, &session.actor, event, 200, None).await?;
    let tz = catalog.event.timezone.as_str();
    let at = |s: &str| {
        kernel::clock::parse_rfc3339(s)
            .map(|m| crate::events::shown_in(m, tz))
            .unwrap_or_default()
    };
    Ok(page(
        StatusCode::OK,
        OrganizerPage {
            offer_hours: super::limits::of(&app, t.org(), event).await?.offer_secs() / 3600,
            event_id: event.to_string(),
            event_name: catalog.event.name.clone(),
            entries: entries
                .iter()
                .map(|e| EntryRow {
                    email: e.email.clone(),
                    name: e.name.clone(),
                    type_name: catalog
                        .ticket_type(e.ticket_type_id)
                        .map(|t| t.name.clone())
                        .unwrap_or_default(),
                    quantity: e.quantity,
                    status: e.status.as_str(),
                    joined: at(&e.joined_at),
                    offered_until: e.offer_expires_at.as_deref().map(at).unwrap_or_default(),
                })
                .collect(),
            more: next.is_some(),
        },
    ))
}
