//! Venue layouts in the console: the org's layouts (import a JSON one,
//! export each), and on an event's seat-map editor: keep its map as a
//! layout, or copy a layout in, choosing a ticket type for each category.

use std::collections::BTreeMap;

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
    ids::{EventId, LayoutId, TicketTypeId},
};

use super::layouts::{self, LayoutInput};
use crate::{
    App,
    identity::SessionActor,
    web::{Fields, csrf_matches, csrf_refused, field, page, said},
};

pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/dashboard/venue-layouts", get(list_page))
        .route(
            "/dashboard/venue-layouts/import",
            post(import).layer(axum::extract::DefaultBodyLimit::max(
                super::seating::MAX_MAP_BYTES,
            )),
        )
        .route("/dashboard/venue-layouts/{layout_id}/export", get(export))
        .route(
            "/dashboard/events/{event_id}/seating/save-layout",
            post(save_layout),
        )
        .route(
            "/dashboard/events/{event_id}/seating/from-layout",
            post(from_layout),
        )
}

#[derive(Template)]
#[template(path = "venue_layouts.html")]
struct ListPage {
    csrf: String,
    layouts: Vec<layouts::LayoutSummary>,
    error: Option<String>,
    json: String,
}

async fn list_of(app: &App, session: &SessionActor) -> Result<ListPage, ApiError> {
    Ok(ListPage {
        csrf: session.csrf.clone(),
        layouts: layouts::list_layouts(app, &session.actor).await?,
        error: None,
        json: String::new(),
    })
}

async fn list_page(State(app): State<App>, session: SessionActor) -> Result<Response, ApiError> {
    Ok(page(StatusCode::OK, list_of(&app, &session).await?))
}

async fn import(
    State(app): State<App>,
    session: SessionActor,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let typed = field(&form, "json").to_string();
    let made = match serde_json::from_str::<LayoutInput>(&typed) {
        Ok(input) => layouts::create_layout(&app, &session.actor, input)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(ApiError::field("json", &format!("not a venue layout: {e}"))),
    };
    match made {
        Ok(_) => Ok(Redirect::to("/dashboard/venue-layouts").into_response()),
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::NOT_FOUND => {
            let mut p = list_of(&app, &session).await?;
            p.error = Some(said(&e));
            p.json = typed;
            Ok(page(e.status(), p))
        }
        Err(e) => Err(e),
    }
}

/// The layout as JSON, as the import (and `POST …/venue-layouts`) takes it.
async fn export(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(id): ApiPath<LayoutId>,
) -> Result<Response, ApiError> {
    let v = layouts::get_layout(&app, &session.actor, id).await?;
    let mut res = axum::Json(LayoutInput {
        name: v.name,
        sections: v.sections,
        areas: v.areas,
    })
    .into_response();
    res.headers_mut().insert(
        axum::http::header::CONTENT_DISPOSITION,
        axum::http::HeaderValue::from_static("attachment; filename=\"venue-layout.json\""),
    );
    Ok(res)
}

async fn save_layout(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let saved = layouts::layout_from_event(&app, &session.actor, event, field(&form, "name"))
        .await
        .map_err(ApiError::from);
    match saved {
        Ok(_) => Ok(Redirect::to("/dashboard/venue-layouts").into_response()),
        Err(e) => super::views::seating_failed(&app, &session, event, e, String::new()).await,
    }
}

/// The editor's "use a layout" form: `layout_id`, and per category `i`
/// its name (`cat_name_i`) and the ticket type chosen (`cat_type_i`).
async fn from_layout(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let map = async {
        let layout: LayoutId = field(&form, "layout_id")
            .parse()
            .map_err(|_| ApiError::field("layout_id", "choose a layout"))?;
        let mut types = BTreeMap::new();
        for i in 0..layouts::MAX_CATEGORIES {
            let name = field(&form, &format!("cat_name_{i}"));
            if name.is_empty() {
                break;
            }
            if let Ok(tt) = field(&form, &format!("cat_type_{i}")).parse::<TicketTypeId>() {
                types.insert(name.to_string(), tt);
            }
        }
        layouts::map_for_event(&app, &session.actor, layout, &types)
            .await
            .map_err(ApiError::from)
    }
    .await;
    super::views::store_map(&app, &session, event, map, String::new()).await
}

/// A layout chosen on the editor, its categories each with the event's
/// ticket type of the same name preselected.
pub(super) struct Chosen {
    pub id: String,
    pub name: String,
    pub categories: Vec<(String, String)>,
}

/// The org's layouts (id, name) and the one chosen, for the editor.
pub(super) async fn for_editor(
    app: &App,
    session: &SessionActor,
    types: &[(String, String)],
    chosen: Option<LayoutId>,
) -> Result<(Vec<(String, String)>, Option<Chosen>), ApiError> {
    let all = layouts::list_layouts(app, &session.actor).await?;
    let chosen = match chosen {
        Some(id) => {
            let v = layouts::get_layout(app, &session.actor, id).await?;
            Some(Chosen {
                id: v.id.to_string(),
                name: v.name,
                categories: v
                    .categories
                    .into_iter()
                    .map(|c| {
                        let same = types
                            .iter()
                            .find(|(_, n)| n.eq_ignore_ascii_case(&c))
                            .map(|(id, _)| id.clone())
                            .unwrap_or_default();
                        (c, same)
                    })
                    .collect(),
            })
        }
        None => None,
    };
    Ok((
        all.into_iter()
            .map(|l| (l.id.to_string(), l.name))
            .collect(),
        chosen,
    ))
}
