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
    /// When its tickets admit (a date's copy of a series' type keeps its
    /// own: these are not passed on to the dates).
    pub valid_from: Option<Option<String>>,
    pub valid_until: Option<Option<String>>,
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
    apply(&mut row, &patch, now, &mut c);
    check_terms(&mut c, &row);
    // A series' type: its dates' copies take the same change (all but the
    // capacity, which is each date's own), checked before anything is written.
    let followers = if row.template_id.is_none() {
        follow(app, t, &row, &patch, now, &mut c).await?
    } else {
        Vec::new()
    };
    c.finish()?;
    let after = row.clone().into_view();
    let updated = updated_event(t, &before, &after);
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
    if !followers.is_empty() {
        let mut writes = Vec::with_capacity(followers.len() * 2);
        for (row, before) in &followers {
            writes.push(store::update_ticket_type(t, row, before.capacity));
            writes.push(emit(
                &updated_event(t, before, &row.clone().into_view()),
                now,
            )?);
        }
        app.db().write_grouped(writes).await?;
        for (row, _) in &followers {
            super::invalidate(app, t, row.event_id).await;
        }
    }
    Ok(after)
}

/// The dates' copies of a series' ticket type with `patch` applied (its
/// capacity left out), each with what it was; a copy whose own terms the
/// change would break fails the whole change, naming its date.
async fn follow(
    app: &App,
    t: &crate::identity::Tenant,
    row: &store::TicketTypeRow,
    patch: &TicketTypePatch,
    now: i64,
    c: &mut Checks,
) -> Result<Vec<(store::TicketTypeRow, TicketTypeView)>> {
    let mut out = Vec::new();
    for mut copy in store::following(app.db(), t, row.id).await? {
        let before = copy.clone().into_view();
        let mut own = Checks::default();
        apply(&mut copy, patch, now, &mut own);
        // A date's own validity stays (absolute times fit one date only).
        (copy.valid_from, copy.valid_until) = (row.valid_from, row.valid_until);
        copy.capacity = before.capacity;
        check_terms(&mut own, &copy);
        if own.finish().is_err() {
            c.fail(
                "dates",
                &format!(
                    "the change breaks the terms of this type on date {} (changed there)",
                    copy.event_id
                ),
            );
            continue;
        }
        out.push((copy, before));
    }
    Ok(out)
}

fn updated_event(
    t: &crate::identity::Tenant,
    before: &TicketTypeView,
    after: &TicketTypeView,
) -> TicketTypeUpdated {
    TicketTypeUpdated {
        org_id: t.org(),
        event_id: after.event_id,
        ticket_type_id: after.id,
        name: after.name.clone(),
        capacity: after.capacity,
        capacity_was: before.capacity,
        price_cents: after.price_cents,
        hidden: after.hidden,
        retired: after.retired_at.is_some(),
    }
}
/// Writes the patch into `row` (text fields checked into `c`; the terms
/// as a whole are checked by the caller).
fn apply(row: &mut store::TicketTypeRow, patch: &TicketTypePatch, now: i64, c: &mut Checks) {
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
    if let Some(s) = &patch.valid_from {
        row.valid_from = match s {
            Some(s) => c.take("valid_from", parse_time(s)),
            None => None,
        };
    }
    if let Some(s) = &patch.valid_until {
        row.valid_until = match s {
            Some(s) => c.take("valid_until", parse_time(s)),
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
        let qs = questions::check(c, q);
        row.questions = questions::to_stored(&qs);
    }
}
