//! Exports and reports: an event's attendees, orders and check-ins as CSV
//! or XLSX, built by a job and fetched through a short-lived signed link;
//! the sales report per ticket type and per day.
//!
//! Owns: `exports`, `export_chunks`.
//! Reads (through their public functions): tickets' pages of an event's
//! tickets, sales' pages of orders, the events catalog.
//! Invariants: a build reads a page (1,000 rows) at a time and stores its
//! output in 256 KiB chunks as it goes, and a download streams the chunks
//! one at a time, so no node holds a whole export in memory; any node can
//! serve any export. Exports are deleted 24 h after they were asked for.

mod api;
mod domain;
mod report;
mod store;
mod views;

use std::time::Duration;

use kernel::{
    Kernel, Slice,
    ids::ExportId,
    jobs::{Job, Queue},
};
use serde::{Deserialize, Serialize};

use crate::App;

/// One export builds at a time per node: they are long and read a lot.
pub const QUEUE: Queue = Queue::new("exports", 1);

/// Builds one export.
#[derive(Serialize, Deserialize)]
pub struct Build {
    pub export: ExportId,
}

impl Job for Build {
    const KIND: &'static str = "exports.build";
    const QUEUE: &'static str = QUEUE.name;
    const MAX_ATTEMPTS: i64 = 3;
}

pub fn slice(_kernel: &Kernel) -> Slice<App> {
    Slice::new("exports")
        .routes(api::routes())
        .pages(views::routes())
        .queue(QUEUE)
        .job::<Build, _, _>(
            |app: App, job: Build| async move { domain::build(&app, job.export).await },
        )
        .every(
            "exports.prune",
            Duration::from_secs(60),
            |app: App| async move { domain::prune(&app).await },
        )
}
