//! The live stream: `text/event-stream` of an event's figures.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::Stream;
use kernel::{ApiError, Permission, http::ApiPath, ids::EventId};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{ObjectBuilder, Ref, RefOr, Schema, Type},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{Figures, Watchers};
use crate::{App, identity::OrgActor};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(live))
}

/// One server-sent event of the stream, as the OpenAPI document describes
/// it (each event on its own, per OpenAPI 3.1 for `text/event-stream`):
/// `event: figures` with the [`Figures`] as JSON in `data`.
struct FiguresEvent;

impl utoipa::PartialSchema for FiguresEvent {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some(
                "One server-sent event: `event: figures`, `data` the figures as JSON.",
            ))
            .property(
                "event",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["figures"])),
            )
            .required("event")
            .property(
                "data",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .content_media_type("application/json")
                    .content_schema(Some(Ref::from_schema_name(Figures::name()))),
            )
            .required("data")
            .into()
    }
}

impl ToSchema for FiguresEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Figures::name().into(), Figures::schema()));
        <Figures as ToSchema>::schemas(schemas);
    }
}

/// Server-sent events: a `figures` event at once, then one whenever sales or
/// check-ins change them. API key or organizer session. An organization may
/// hold a limited number of streams open at once (`--live-streams-per-org`).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events/{event_id}/live", tag = "live",
    params(("org" = String, Path), ("event_id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, content_type = "text/event-stream", body = FiguresEvent,
               description = "a stream of `figures` events"),
              (status = 429, description = "the organization holds its limit of open streams")))]
async fn live(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (_, event) = path;
    let t = actor.require(Permission::EventsRead)?.clone();
    if crate::events::catalog(&app, &t, event).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let Some(place) = Watchers::take_place(&app, t.org()) else {
        return Err(ApiError::RateLimited {
            retry_after_secs: 5,
            limit: None,
        });
    };
    let mut figures = Watchers::watch(&app, &t, event).await?;
    let mut shutdown = app.kernel.shutdown.clone();
    let stream = async_stream(move |tx| async move {
        let _place = place;
        let first = {
            let seen = figures.borrow_and_update();
            seen.clone()
        };
        if tx.send(figures_event(&first)).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                changed = figures.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let f = {
                        let seen = figures.borrow_and_update();
                        seen.clone()
                    };
                    if tx.send(figures_event(&f)).await.is_err() {
                        return;
                    }
                }
                _ = tx.closed() => return,
                _ = crate::web::until_down(&mut shutdown) => return,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn figures_event(f: &Figures) -> Result<Event, Infallible> {
    Ok(Event::default()
        .event("figures")
        .data(serde_json::to_string(f).unwrap_or_default()))
}

/// A stream fed by a task that ends when the client goes away.
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Event, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(f(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
