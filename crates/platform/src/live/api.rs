//! The live stream: `text/event-stream` of an event's figures.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::Stream;
use kernel::{ApiError, Permission, http::ApiPath, ids::EventId, tenant::event_topic};
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::Figures;
use crate::{App, identity::OrgActor};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(live))
}

const DEBOUNCE: Duration = Duration::from_millis(250);

/// Server-sent events: a `figures` event at once, then one whenever sales or
/// check-ins change them. API key or organizer session.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events/{event_id}/live", tag = "live",
    params(("org" = String, Path), ("event_id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, content_type = "text/event-stream", body = Figures,
               description = "a stream of `figures` events"),
              (status = 404, body = kernel::error::Problem)))]
async fn live(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (_, event) = path;
    actor.require(Permission::EventsRead)?;
    let org = actor.org();
    if crate::events::catalog(&app, org, event).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    // Subscribe before the first read, so no change falls between them.
    let mut rx = app.kernel.hub.subscribe(&event_topic(org, event));
    let first = super::figures(&app, org, event).await?;
    let mut shutdown = app.kernel.shutdown.clone();
    let stream = async_stream(move |tx| async move {
        let mut last = first.clone();
        if tx.send(figures_event(&first)).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                },
                _ = tx.closed() => return,
                _ = shutdown.wait_for(|down| *down) => return,
            }
            tokio::time::sleep(DEBOUNCE).await;
            // Everything that arrived meanwhile is covered by one read.
            while rx.try_recv().is_ok() {}
            match super::figures(&app, org, event).await {
                Ok(f) if f != last => {
                    if tx.send(figures_event(&f)).await.is_err() {
                        return;
                    }
                    last = f;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "live figures failed"),
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
