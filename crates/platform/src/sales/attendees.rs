//! The answers a checkout gives to each ticket type's questions, one set
//! per ticket (the attendee's name, say), checked against the catalog and
//! kept with the order until its tickets are issued, then on each ticket.

use std::collections::BTreeMap;

use kernel::{error::Checks, ids::TicketTypeId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{Error, Result};
use crate::events::{Catalog, Question};

/// One ticket's answers, by question id.
pub type Answers = BTreeMap<String, String>;

/// One ticket's attendee, as the checkout takes it: the `n`th entry of a
/// ticket type answers for that type's `n`th ticket of the order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Attendee {
    pub ticket_type_id: TicketTypeId,
    /// Question id → answer; an empty answer counts as none.
    #[serde(default)]
    pub answers: Answers,
}

/// At most this many attendees per checkout (an order holds at most 50
/// tickets of a type and 20 types, but no more than 1,000 tickets).
pub const MAX_ATTENDEES: usize = 1000;

/// The attendees checked against the order's `items`: known types, no more
/// entries than tickets, each answer of a question of its type and of its
/// kind, every required question answered for every ticket. The answers
/// kept, in the order given (fields named `attendees[i].answers.<id>`).
pub fn check(
    catalog: &Catalog,
    items: &[(TicketTypeId, i64)],
    input: &[Attendee],
) -> Result<Vec<Attendee>> {
    let mut c = Checks::default();
    if input.len() > MAX_ATTENDEES {
        return Err(Error::field("attendees", "at most 1000 attendees"));
    }
    let mut out = Vec::with_capacity(input.len());
    let mut seen: BTreeMap<TicketTypeId, i64> = BTreeMap::new();
    for (i, a) in input.iter().enumerate() {
        let Some(q) = items
            .iter()
            .find(|(tt, _)| *tt == a.ticket_type_id)
            .map(|(_, q)| *q)
        else {
            c.fail(
                &format!("attendees[{i}].ticket_type_id"),
                "is not a ticket type of this order",
            );
            continue;
        };
        let n = seen.entry(a.ticket_type_id).or_default();
        *n += 1;
        if *n > q {
            c.fail(
                &format!("attendees[{i}]"),
                "more attendees than tickets of this type",
            );
            continue;
        }
        let questions: &[Question] = catalog
            .ticket_type(a.ticket_type_id)
            .map(|t| t.questions.as_slice())
            .unwrap_or_default();
        let mut kept = Answers::new();
        for (id, answer) in &a.answers {
            let field = format!("attendees[{i}].answers.{id}");
            let Some(question) = questions.iter().find(|q| &q.id == id) else {
                c.fail(&field, "is not a question of this ticket type");
                continue;
            };
            if answer.trim().is_empty() {
                continue;
            }
            if let Some(v) = c.take(
                &field,
                crate::events::questions::check_answer(question, answer),
            ) {
                kept.insert(id.clone(), v);
            }
        }
        for q in questions.iter().filter(|q| q.required) {
            // (An answer given but refused is named above already.)
            let refused = a.answers.get(&q.id).is_some_and(|v| !v.trim().is_empty());
            if !kept.contains_key(&q.id) && !refused {
                c.fail(&format!("attendees[{i}].answers.{}", q.id), "is required");
            }
        }
        out.push(Attendee {
            ticket_type_id: a.ticket_type_id,
            answers: kept,
        });
    }
    // Tickets with no entry: fine unless their type asks something required.
    for (tt, q) in items {
        let given = seen.get(tt).copied().unwrap_or(0);
        if let Some(ty) = catalog.ticket_type(*tt)
            && given < *q
            && ty.questions.iter().any(|q| q.required)
        {
            let asks: Vec<&str> = ty
                .questions
                .iter()
                .filter(|q| q.required)
                .map(|q| q.label.as_str())
                .collect();
            c.fail(
                "attendees",
                &format!(
                    "each of the {q} tickets of {} needs: {}",
                    ty.name,
                    asks.join(", ")
                ),
            );
        }
    }
    c.finish()?;
    Ok(out)
}

/// Each ticket's answers for [`crate::tickets::issue`]: per ticket type,
/// in order.
pub fn stored(json: Option<&str>) -> Vec<Attendee> {
    json.and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

/// The attendees as an order keeps them (`None`: none given).
pub fn to_stored(a: &[Attendee]) -> Option<String> {
    if a.iter().all(|a| a.answers.is_empty()) {
        None
    } else {
        serde_json::to_string(a).ok()
    }
}
