//! Holds, checkout and orders.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use kernel::{
    Actor, ApiError, ApiResult, Permission,
    auth::{self, PlainToken},
    clock::{self, MICROS_PER_SEC, now_micros},
    error::Checks,
    ids::{EventId, HoldId, OrderId, OrgId, TicketTypeId},
    outbox,
    pubsub::Message,
    tenant::event_topic,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{inventory::Reserve, store};
use crate::{App, events, tickets};

/// Most items and most of one ticket type a hold may take when the type
/// sets no `max_per_order`.
const MAX_ITEMS: usize = 20;
const DEFAULT_MAX_PER_ORDER: i64 = 50;

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct HoldItem {
    pub ticket_type_id: TicketTypeId,
    pub quantity: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HoldView {
    pub id: HoldId,
    pub event_id: EventId,
    pub expires_at: String,
    pub items: Vec<HoldItem>,
}

/// A published event of `org`, or 404 (drafts are invisible to buyers).
pub async fn published_catalog(
    app: &App,
    org: OrgId,
    event: EventId,
) -> ApiResult<std::sync::Arc<events::Catalog>> {
    match events::catalog(app, org, event).await? {
        Some(c) if c.is_published() => Ok(c),
        _ => Err(ApiError::NotFound),
    }
}

/// Holds quantities of ticket types for the configured time. One atomic
/// step takes all items or none; nothing is ever sold twice.
pub async fn create_hold(
    app: &App,
    org: OrgId,
    event: EventId,
    items: Vec<HoldItem>,
) -> ApiResult<HoldView> {
    let catalog = published_catalog(app, org, event).await?;
    let now = now_micros();
    let mut c = Checks::default();
    if items.is_empty() {
        c.fail("items", "must hold at least one ticket type");
    }
    if items.len() > MAX_ITEMS {
        c.fail("items", "must hold at most 20 ticket types");
    }
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("items[{i}]");
        let Some(tt) = catalog.ticket_type(item.ticket_type_id) else {
            c.fail(
                &format!("{field}.ticket_type_id"),
                "is not a ticket type of this event",
            );
            continue;
        };
        if !seen.insert(item.ticket_type_id) {
            c.fail(&format!("{field}.ticket_type_id"), "appears twice");
        }
        let max = tt.max_per_order.unwrap_or(DEFAULT_MAX_PER_ORDER);
        if item.quantity < 1 || item.quantity > max {
            c.fail(
                &format!("{field}.quantity"),
                &format!("must be between 1 and {max}"),
            );
        }
        if !tt.on_sale_at(now) {
            c.fail(&format!("{field}.ticket_type_id"), "is not on sale now");
        }
    }
    c.finish()?;
    let pairs: Vec<(TicketTypeId, i64)> = items
        .iter()
        .map(|i| (i.ticket_type_id, i.quantity))
        .collect();
    if let Reserve::SoldOut(tt) = app
        .inventory
        .reserve(&app.kernel, org, event, &pairs)
        .await?
    {
        return Err(ApiError::SoldOut(format!(
            "not enough tickets left of {tt}"
        )));
    }
    let hold = HoldId::new();
    let expires_at = now + app.kernel.config.hold_ttl_secs * MICROS_PER_SEC;
    if let Err(e) = store::insert_hold(app.db(), org, hold, event, expires_at, now, &pairs).await {
        app.inventory.release(org, event, &pairs).await?;
        return Err(e.into());
    }
    announce_inventory(app, org, event).await;
    Ok(HoldView {
        id: hold,
        event_id: event,
        expires_at: clock::rfc3339(expires_at),
        items,
    })
}

/// Tells live views that availability changed (not durable: a view that
/// misses it recomputes on the next change).
async fn announce_inventory(app: &App, org: OrgId, event: EventId) {
    app.kernel
        .hub
        .publish(Message {
            topic: event_topic(org, event),
            kind: "inventory.changed".into(),
            payload: serde_json::json!({ "event": event }),
        })
        .await;
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Buyer {
    pub email: String,
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    pub status: String,
    pub amount_cents: i64,
    pub currency: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    pub id: OrderId,
    pub event_id: EventId,
    pub status: String,
    pub buyer: Buyer,
    pub total_cents: i64,
    pub currency: String,
    pub tickets: Vec<tickets::TicketView>,
    pub payment: Option<PaymentView>,
    pub created_at: String,
    /// Shown in the checkout reply only: the buyer's key to this order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
}

pub const CHECKOUT_SCOPE: &str = "store.checkout";

/// What an idempotent request answers: status and body, replayed as-is.
pub struct Reply {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

/// Checks a hold out into an order. A free order is `paid` at once and its
/// tickets issued; a priced one is `pending` with a payment to complete.
/// With an idempotency key, the reply is stored in the same transaction as
/// the order, so a retry can never make a second order.
pub async fn checkout(
    app: &App,
    org: OrgId,
    hold: HoldId,
    buyer: Buyer,
    idempotency: Option<(&str, &[u8])>,
) -> ApiResult<Reply> {
    let Some((key, hash)) = idempotency else {
        return checkout_once(app, org, hold, buyer, None).await;
    };
    let now = now_micros();
    loop {
        if store::claim_key(app.db(), org, CHECKOUT_SCOPE, key, hash, now).await? {
            break;
        }
        let Some(row) = store::key_row(app.db(), org, CHECKOUT_SCOPE, key).await? else {
            continue;
        };
        let age = now - row.created_at;
        let expired = age > 24 * 3600 * MICROS_PER_SEC;
        let abandoned = row.status_code.is_none() && age > 60 * MICROS_PER_SEC;
        if expired || abandoned {
            store::drop_key(app.db(), org, CHECKOUT_SCOPE, key, row.created_at).await?;
            continue;
        }
        if row.request_hash != hash {
            return Err(ApiError::IdempotencyConflict);
        }
        return match (row.status_code, row.response) {
            (Some(status), Some(body)) => Ok(Reply {
                status: StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK),
                body: serde_json::from_str(&body).map_err(ApiError::internal)?,
            }),
            _ => Err(ApiError::IdempotencyInFlight),
        };
    }
    match checkout_once(app, org, hold, buyer, Some(key)).await {
        Ok(reply) => Ok(reply),
        Err(e) if e.status().is_client_error() => {
            // The same request would fail the same way: remember the answer.
            let body = serde_json::to_string(&e.problem()).map_err(ApiError::internal)?;
            store::complete_key(
                app.db(),
                org,
                CHECKOUT_SCOPE,
                key,
                e.status().as_u16() as i32,
                &body,
            )
            .await?;
            Err(e)
        }
        Err(e) => {
            // Nothing was written: free the key so a retry can go through.
            let _ = store::drop_key(app.db(), org, CHECKOUT_SCOPE, key, now).await;
            Err(e)
        }
    }
}

async fn checkout_once(
    app: &App,
    org: OrgId,
    hold: HoldId,
    buyer: Buyer,
    key: Option<&str>,
) -> ApiResult<Reply> {
    let mut c = Checks::default();
    let email = c.take("buyer.email", kernel::parse::email(&buyer.email));
    let name = c.take("buyer.name", kernel::parse::name(&buyer.name, 200));
    c.finish()?;
    let (Some(email), Some(name)) = (email, name) else {
        return Err(ApiError::internal("checks passed with a missing value"));
    };
    let now = now_micros();
    // Prepare everything outside the write transaction (a read, signing,
    // rendering), so the transaction itself is a handful of writes. A hold's
    // items never change; the conditional consume below re-checks its state.
    let Some((event, items)) = store::hold_for_checkout(app.db(), org, hold).await? else {
        return Err(ApiError::NotFound);
    };
    let catalog = events::catalog(app, org, event)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut total = 0i64;
    let mut currencies = BTreeSet::new();
    for (tt, q) in &items {
        let t = catalog
            .ticket_type(*tt)
            .ok_or_else(|| ApiError::internal("held ticket type vanished"))?;
        total += t.price_cents * q;
        currencies.insert(t.currency.clone());
    }
    if currencies.len() > 1 {
        return Err(ApiError::field(
            "items",
            "ticket types of one order must share a currency",
        ));
    }
    let currency = currencies
        .into_iter()
        .next()
        .unwrap_or_else(|| "ZAR".into());
    let status = if total == 0 { "paid" } else { "pending" };
    let order = OrderId::new();
    let access = PlainToken::generate("");
    let issued = if status == "paid" {
        tickets::prepare(app, org, event, &items).await?
    } else {
        Vec::new()
    };
    let topic = event_topic(org, event);
    let payload =
        serde_json::json!({ "order": order, "tickets": issued.len(), "total_cents": total });
    let view = OrderView {
        id: order,
        event_id: event,
        status: status.into(),
        buyer: Buyer {
            email: email.clone(),
            name: name.clone(),
        },
        total_cents: total,
        currency: currency.clone(),
        tickets: issued.iter().cloned().map(Into::into).collect(),
        payment: (status == "pending").then(|| PaymentView {
            status: "requires_payment".into(),
            amount_cents: total,
            currency: currency.clone(),
        }),
        created_at: clock::rfc3339(now),
        access_token: Some(access.expose().to_string()),
    };
    let body = serde_json::to_value(&view).map_err(ApiError::internal)?;
    let body_text = body.to_string();

    let mut writes = vec![store::insert_order(&store::NewOrder {
        org,
        id: order,
        event,
        hold,
        status,
        buyer_email: &email,
        buyer_name: &name,
        total_cents: total,
        currency: &currency,
        access_token_hash: &access.hash().0,
        created_at: now,
    })];
    writes.extend(
        issued
            .iter()
            .map(|t| tickets::insert_stmt(org, order, t, now)),
    );
    writes.push(outbox::stmt(
        org,
        &topic,
        if status == "paid" {
            "order.paid"
        } else {
            "order.created"
        },
        &payload,
    )?);
    if let Some(key) = key {
        writes.push(store::complete_key_stmt(
            org,
            CHECKOUT_SCOPE,
            key,
            201,
            body_text,
        ));
    }
    // Consume the hold and write the order in one transaction, which on
    // SQLite is shared with other checkouts waiting at the same moment.
    let writes = std::sync::Arc::new(writes);
    let applied = app
        .db()
        .transact_grouped(Box::new(move |tx| {
            let writes = writes.clone();
            Box::pin(async move {
                if store::consume_hold(tx, org, hold, now).await?.is_none() {
                    return Ok(false);
                }
                tx.run_all(writes.as_ref().clone()).await?;
                Ok(true)
            })
        }))
        .await?;
    if !applied {
        return Err(match store::hold_status(app.db(), org, hold).await? {
            None => ApiError::NotFound,
            Some(status) if status == "consumed" => {
                ApiError::Conflict("this hold was already checked out".into())
            }
            Some(_) => ApiError::HoldExpired,
        });
    }
    outbox::WAKE.notify_one();
    Ok(Reply {
        status: StatusCode::CREATED,
        body,
    })
}

/// Holds and checks out in one step (the storefront page's "Get ticket").
pub async fn take_now(
    app: &App,
    org: OrgId,
    event: EventId,
    item: HoldItem,
    buyer: Buyer,
) -> ApiResult<OrderView> {
    let hold = create_hold(app, org, event, vec![item]).await?;
    let reply = checkout(app, org, hold.id, buyer, None).await?;
    serde_json::from_value(reply.body).map_err(ApiError::internal)
}

async fn order_view(app: &App, org: OrgId, row: store::OrderRow) -> ApiResult<OrderView> {
    let issued = tickets::for_order(app, org, row.id).await?;
    let pending = row.status == "pending";
    Ok(OrderView {
        id: row.id,
        event_id: row.event_id,
        status: row.status,
        buyer: Buyer {
            email: row.buyer_email,
            name: row.buyer_name,
        },
        total_cents: row.total_cents,
        currency: row.currency.clone(),
        tickets: issued,
        payment: pending.then(|| PaymentView {
            status: "requires_payment".into(),
            amount_cents: row.total_cents,
            currency: row.currency,
        }),
        created_at: clock::rfc3339(row.created_at),
        access_token: None,
    })
}

/// An order for the organizer.
pub async fn get_order(app: &App, actor: &Actor, order: OrderId) -> ApiResult<OrderView> {
    actor.require(Permission::OrdersRead)?;
    let row = store::order(app.db(), actor.org(), order)
        .await?
        .ok_or(ApiError::NotFound)?;
    order_view(app, actor.org(), row).await
}

/// An order for its buyer, who proves it with the access token.
pub async fn get_order_for_buyer(
    app: &App,
    org: OrgId,
    order: OrderId,
    access_token: &str,
) -> ApiResult<OrderView> {
    let row = store::order(app.db(), org, order)
        .await?
        .ok_or(ApiError::NotFound)?;
    if auth::sha256(access_token.as_bytes()) != row.access_token_hash {
        return Err(ApiError::NotFound);
    }
    order_view(app, org, row).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreTicketType {
    pub id: TicketTypeId,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub available: i64,
    pub on_sale: bool,
    pub max_per_order: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreEvent {
    pub id: EventId,
    pub name: String,
    pub starts_at: String,
    pub ends_at: String,
    pub timezone: String,
    pub ticket_types: Vec<StoreTicketType>,
}

/// The published event as buyers see it, with live availability from the
/// hot or warm tier (no database read once warm).
pub async fn store_event(app: &App, org: OrgId, event: EventId) -> ApiResult<StoreEvent> {
    let catalog = published_catalog(app, org, event).await?;
    let types: Vec<TicketTypeId> = catalog.event.ticket_types.iter().map(|t| t.id).collect();
    let left = app
        .inventory
        .remaining(&app.kernel, org, event, &types)
        .await?;
    let now = now_micros();
    let e = &catalog.event;
    Ok(StoreEvent {
        id: e.id,
        name: e.name.clone(),
        starts_at: e.starts_at.clone(),
        ends_at: e.ends_at.clone(),
        timezone: e.timezone.clone(),
        ticket_types: e
            .ticket_types
            .iter()
            .zip(left)
            .map(|(t, available)| StoreTicketType {
                id: t.id,
                name: t.name.clone(),
                price_cents: t.price_cents,
                currency: t.currency.clone(),
                available,
                on_sale: t.on_sale_at(now),
                max_per_order: t.max_per_order.unwrap_or(DEFAULT_MAX_PER_ORDER),
            })
            .collect(),
    })
}

/// Releases expired holds; run periodically by every node.
pub async fn release_expired(app: &App) -> ApiResult<usize> {
    app.inventory
        .release_expired(&app.kernel, now_micros())
        .await
}

/// Forgets idempotency keys older than a day.
pub async fn prune_idempotency_keys(app: &App) -> ApiResult<u64> {
    Ok(store::prune_keys(app.db(), now_micros() - 25 * 3600 * MICROS_PER_SEC).await?)
}
