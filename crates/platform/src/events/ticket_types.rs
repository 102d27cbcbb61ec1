//! Editing a ticket type once it exists: its terms, its capacity (moved in
//! one step with the sales slice's counters, never below what is held or
//! sold), hiding it, ordering it, and retiring it. A ticket type is never
//! deleted: its holds, orders and tickets name it for ever.

use kernel::{
    Permission,
    error::Checks,
    events::emit,
    ids::{EventId, OrgId, TicketTypeId},
    parse,
};
use serde::{Deserialize, Serialize};

use super::{
    domain::{TicketTypeView, check_terms, parse_time},
    error::{Error, Result},
    questions::{self, QuestionInput},
    store,
};
use crate::{App, identity::Actor};

/// What changes; a field left out stays as it is, `null` clears one that
/// may be unset.
#[derive(Default)]
pub struct TicketTypePatch {
    pub name: Option<String>,
    pub price_cents: Option<i64>,
    pub capacity: Option<i64>,
    pub sale_starts_at: Option<Option<String>>,
    pub sale_ends_at: Option<Option<String>>,
    pub max_per_order: Option<Option<i64>>,
    pub min_per_order: Option<Option<i64>>,
    pub hidden: Option<bool>,
    pub sort_order: Option<i64>,
    /// `true` retires it (off sale for good), `false` puts it back.
    pub retired: Option<bool>,
    pub questions: Option<Vec<QuestionInput>>,
}

/// A ticket type's terms changed.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TicketTypeUpdated {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub ticket_type_id: TicketTypeId,
    pub name: String,
    pub capacity: i64,
    /// The capacity before (the live figures move by the difference).
    pub capacity_was: i64,
    pub price_cents: i64,
    pub hidden: bool,
    pub retired: bool,
}

impl kernel::DomainEvent for TicketTypeUpdated {
    const NAME: &'static str = "ticket_type.updated";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

/// Changes a ticket type. A new capacity takes effect with the counters in
/// one step (`sales::resize_ticket_type`): lowered, the difference is taken
/// like a hold first, so it is refused (409) when more than the new
/// capacity is already held or sold, whatever sells meanwhile. Two edits
/// at once: the second is refused (409) rather than undo the first.
pub async fn update_ticket_type(
    app: &App,
    actor: &Actor,
    event: EventId,
    id: TicketTypeId,
    patch: TicketTypePatch,
) -> Result<TicketTypeView> {
    let t = actor.require(Permission::EventsWrite)?;
    let Some(mut row) = store::ticket_type_row(app.db(), t, event, id).await? else {
        return Err(Error::NotFound);
    };
    let before = row.clone().into_view();
    let now = app.kernel.now();
    let mut c = Checks::default();
    if let Some(name) = &patch.name
        && let Some(name) = c.take("name", parse::name(name, 200))
    {
        row.name = name;
    }
    if let Some(p) = patch.price_cents {
        row.price_cents = p;
    }
    if let Some(cap) = patch.capacity {
        row.capacity = cap;
    }
    if let Some(s) = &patch.sale_starts_at {
        row.sale_starts_at = match s {
            Some(s) => c.take("sale_starts_at", parse_time(s)),
            None => None,
        };
    }
    if let Some(s) = &patch.sale_ends_at {
        row.sale_ends_at = match s {
            Some(s) => c.take("sale_ends_at", parse_time(s)),
            None => None,
        };
    }
    if let Some(m) = patch.max_per_order {
        row.max_per_order = m;
    }
    if let Some(m) = patch.min_per_order {
        row.min_per_order = m;
    }
    if let Some(h) = patch.hidden {
        row.hidden = h.into();
    }
    if let Some(o) = patch.sort_order {
        row.sort_order = o;
    }
    match (patch.retired, row.retired_at) {
        (Some(true), None) => row.retired_at = Some(now),
        (Some(false), Some(_)) => row.retired_at = None,
        _ => {}
    }
    if let Some(q) = &patch.questions {
        let qs = questions::check(&mut c, q);
        row.questions = questions::to_stored(&qs);
    }
    check_terms(&mut c, &row);
    c.finish()?;
    let after = row.clone().into_view();
    let updated = TicketTypeUpdated {
        org_id: t.org(),
        event_id: event,
        ticket_type_id: id,
        name: after.name.clone(),
        capacity: after.capacity,
        capacity_was: before.capacity,
        price_cents: after.price_cents,
        hidden: after.hidden,
        retired: after.retired_at.is_some(),
    };
    let writes = vec![
        store::update_ticket_type(t, &row, before.capacity),
        emit(&updated, now)?,
        actor
            .audit("ticket_type.update", "ticket_type")
            .object(id)
            .before(&before)
            .after(&after)
            .stmt(now),
    ];
    let moved = crate::sales::resize_ticket_type(
        app,
        t,
        event,
        id,
        (before.capacity, after.capacity),
        writes,
    )
    .await;
    super::invalidate(app, t, event).await;
    moved?;
    Ok(after)
}
