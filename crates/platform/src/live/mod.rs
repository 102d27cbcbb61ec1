//! Live figures: an event's sales and check-ins, pushed as they change.
//!
//! Owns: `live_figures`, a projection fed by domain events in the relay's
//! transaction (so each event counts exactly once): `ticket_type.created`,
//! `ticket_type.updated` (capacity), `hold.created`/`hold.expired` (held), `order.created`/
//! `order.expired` (reserved by orders), `order.paid` (sold),
//! `ticket.admitted`/`ticket.admission_undone` (admitted).
//! Emits: nothing. Streams: per node and event, one watcher re-reads the
//! event's row at most every 250 ms after a message on its topic, and every
//! open stream of that event gets the result — a busy gate cannot turn
//! dashboards into database load, however many are open.

mod api;
mod store;
mod views;

use std::{sync::Arc, time::Duration};

use crate::{
    App,
    events::{TicketTypeCreated, TicketTypeUpdated},
    identity::Tenant,
    sales::{HoldCreated, HoldExpired, OrderCreated, OrderExpired, OrderPaid},
    scanning::{TicketAdmissionUndone, TicketAdmitted},
};
use dashmap::DashMap;
use kernel::{
    ApiResult, DomainEvent, Envelope, Kernel, Slice, Tx,
    events::TxFuture,
    ids::{EventId, OrgId},
    tenant::event_topic,
};
pub use store::Figures;
use tokio::sync::{broadcast::error::RecvError, watch};

pub fn slice(_kernel: &Kernel) -> Slice<App> {
    Slice::new("live")
        .routes(api::routes())
        .pages(views::routes())
        .state(Watchers::default())
        .consumes::<TicketTypeCreated, _>("live.figures", project::<TicketTypeCreated>)
        .consumes::<TicketTypeUpdated, _>("live.figures", project::<TicketTypeUpdated>)
        .consumes::<HoldCreated, _>("live.figures", project::<HoldCreated>)
        .consumes::<HoldExpired, _>("live.figures", project::<HoldExpired>)
        .consumes::<OrderCreated, _>("live.figures", project::<OrderCreated>)
        .consumes::<OrderExpired, _>("live.figures", project::<OrderExpired>)
        .consumes::<OrderPaid, _>("live.figures", project::<OrderPaid>)
        .consumes::<TicketAdmitted, _>("live.figures", project::<TicketAdmitted>)
        .consumes::<TicketAdmissionUndone, _>("live.figures", project::<TicketAdmissionUndone>)
}

/// How an event moves an event's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    pub capacity: i64,
    pub held: i64,
    pub reserved: i64,
    pub sold: i64,
    pub admitted: i64,
}

trait Counts: DomainEvent {
    fn delta(&self) -> Delta;
}

fn quantity(items: &[crate::sales::HoldItem]) -> i64 {
    items.iter().map(|i| i.quantity).sum()
}

impl Counts for TicketTypeCreated {
    fn delta(&self) -> Delta {
        Delta {
            capacity: self.capacity,
            ..Delta::default()
        }
    }
}
impl Counts for TicketTypeUpdated {
    fn delta(&self) -> Delta {
        Delta {
            capacity: self.capacity - self.capacity_was,
            ..Delta::default()
        }
    }
}
impl Counts for HoldCreated {
    fn delta(&self) -> Delta {
        Delta {
            held: quantity(&self.items),
            ..Delta::default()
        }
    }
}
impl Counts for HoldExpired {
    fn delta(&self) -> Delta {
        Delta {
            held: -quantity(&self.items),
            ..Delta::default()
        }
    }
}
impl Counts for OrderCreated {
    fn delta(&self) -> Delta {
        let q = quantity(&self.items);
        Delta {
            held: -q,
            reserved: q,
            ..Delta::default()
        }
    }
}
impl Counts for OrderExpired {
    fn delta(&self) -> Delta {
        Delta {
            reserved: -quantity(&self.items),
            ..Delta::default()
        }
    }
}
impl Counts for OrderPaid {
    fn delta(&self) -> Delta {
        Delta {
            sold: self.tickets,
            ..Delta::default()
        }
    }
}
impl Counts for TicketAdmitted {
    fn delta(&self) -> Delta {
        Delta {
            admitted: i64::from(!self.reentry),
            ..Delta::default()
        }
    }
}

impl Counts for TicketAdmissionUndone {
    fn delta(&self) -> Delta {
        Delta {
            admitted: -1,
            ..Delta::default()
        }
    }
}

/// Adds a batch of events to the figures: one upsert per event affected.
fn project<'a, E: Counts>(_app: &'a App, tx: &'a mut Tx, events: Vec<Envelope<E>>) -> TxFuture<'a> {
    Box::pin(async move {
        let mut sums: std::collections::BTreeMap<(OrgId, EventId), Delta> = Default::default();
        for e in &events {
            let Some(event) = e.data().event() else {
                continue;
            };
            let d = e.data().delta();
            let s = sums.entry((e.org(), event)).or_default();
            s.capacity += d.capacity;
            s.held += d.held;
            s.reserved += d.reserved;
            s.sold += d.sold;
            s.admitted += d.admitted;
        }
        // In key order, so two relays never wait on each other's rows.
        for ((org, event), d) in sums {
            store::add(tx, org, event, &d).await?;
        }
        Ok(())
    })
}

/// The figures now, as the projection has them, with the gates' figures.
pub async fn figures(app: &App, t: &Tenant, event: EventId) -> ApiResult<Figures> {
    let mut f = store::figures(app.db(), t, event).await?;
    f.gates = crate::scanning::live_gates(app, t, event).await?;
    Ok(f)
}

const DEBOUNCE: Duration = Duration::from_millis(250);
/// The gates' figures count the scan log: read at most this often per
/// event and node, and this often while nothing happens (scans in the last
/// minute fall as the minute passes; an event without gates costs one
/// indexed read).
pub const GATES_EVERY: Duration = Duration::from_secs(2);

/// One watcher per event with open streams on this node.
#[derive(Default)]
pub struct Watchers {
    events: DashMap<(OrgId, EventId), Arc<watch::Sender<Figures>>>,
    open: DashMap<OrgId, usize>,
}

/// Holds one of an org's stream places until dropped.
pub struct StreamPlace {
    app: App,
    org: OrgId,
}

impl Drop for StreamPlace {
    fn drop(&mut self) {
        let w = self.app.state::<Watchers>();
        w.open.remove_if_mut(&self.org, |_, n| {
            *n = n.saturating_sub(1);
            *n == 0
        });
    }
}

impl Watchers {
    /// Takes one of the org's stream places, or `None` when all are taken.
    pub fn take_place(app: &App, org: OrgId) -> Option<StreamPlace> {
        let cap = app.kernel.config.live_streams_per_org;
        let w = app.state::<Watchers>();
        let mut n = w.open.entry(org).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(StreamPlace {
            app: app.clone(),
            org,
        })
    }

    /// The event's figures as they change: starts a watcher when this is
    /// the first stream of the event on this node.
    pub async fn watch(
        app: &App,
        t: &Tenant,
        event: EventId,
    ) -> ApiResult<watch::Receiver<Figures>> {
        let w = app.state::<Watchers>();
        if let Some(tx) = w.events.get(&(t.org(), event))
            && !tx.is_closed()
        {
            return Ok(tx.subscribe());
        }
        // Subscribe before the first read, so no change falls between them.
        let rx = app.kernel.hub.subscribe(&event_topic(t.org(), event));
        let first = figures(app, t, event).await?;
        let (tx, figures_rx) = watch::channel(first);
        let tx = Arc::new(tx);
        w.events.insert((t.org(), event), tx.clone());
        tokio::spawn(follow(app.clone(), t.clone(), event, rx, tx));
        Ok(figures_rx)
    }
}

async fn follow(
    app: App,
    t: Tenant,
    event: EventId,
    mut rx: tokio::sync::broadcast::Receiver<kernel::pubsub::Message>,
    tx: Arc<watch::Sender<Figures>>,
) {
    let mut shutdown = app.kernel.shutdown.clone();
    let mut gates = tx.borrow().gates.clone();
    let mut gates_read = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(GATES_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            // Also without gates yet: one added after the stream opened
            // shows within the tick.
            _ = tick.tick() => {}
            _ = tx.closed() => break,
            _ = crate::web::until_down(&mut shutdown) => break,
        }
        tokio::time::sleep(DEBOUNCE).await;
        // Everything that arrived meanwhile is covered by one read.
        while rx.try_recv().is_ok() {}
        if gates_read.elapsed() >= GATES_EVERY {
            match crate::scanning::live_gates(&app, &t, event).await {
                Ok(g) => gates = g,
                Err(e) => tracing::warn!(error = %e, "live gate figures failed"),
            }
            gates_read = tokio::time::Instant::now();
        }
        match store::figures(app.db(), &t, event).await {
            Ok(mut f) => {
                f.gates = gates.clone();
                tx.send_if_modified(|old| {
                    let changed = *old != f;
                    *old = f;
                    changed
                });
            }
            Err(e) => tracing::warn!(error = %e, "live figures failed"),
        }
    }
    let w = app.state::<Watchers>();
    w.events
        .remove_if(&(t.org(), event), |_, s| Arc::ptr_eq(s, &tx));
}
