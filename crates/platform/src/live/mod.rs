//! Live figures: an event's sales and check-ins, pushed as they change.
//!
//! Owns: nothing stored. Consumes: every message on the event's PubSub topic
//! (`order.paid`, `ticket.admitted`, `inventory.changed`, ...).
//! Figures are recomputed at most every 250 ms per stream, whatever the rate
//! of change, so a busy gate cannot turn dashboards into a database load.

mod api;
mod store;
pub mod views;

pub use api::routes;
pub use store::Figures;

use kernel::{
    ApiResult,
    ids::{EventId, OrgId},
};

use crate::App;

/// Sold, available and admitted, now.
pub async fn figures(app: &App, org: OrgId, event: EventId) -> ApiResult<Figures> {
    Ok(store::figures(app.db(), org, event).await?)
}
