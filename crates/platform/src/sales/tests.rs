//! The inventory invariant under any interleaving: after every step of a
//! random sequence of holds (of two ticket types sharing a quota, some with
//! a voucher of limited use, which may reserve its uses until its time is
//! up), checkouts, cancellations, hold expiries,
//! payment deadlines, capacity changes, waiting-list joins and offers,
//! every counter equals its capacity − Σ(active + consumed holds) in the
//! ledger — each type's, the quota's, the voucher's uses — and none leaves
//! [0, capacity]. Run on the in-process tier and on Redis. (Transfers move
//! no inventory: their races are tested end to end.)

use std::time::Duration;

use proptest::prelude::*;

use super::{
    Buyer, HoldItem, checkout, create_hold, expire_pending_orders, inventory::Inventory,
    release_expired, store,
};
use crate::{
    events::{self, NewEvent, NewTicketType},
    identity::Actor,
    testing,
};

#[derive(Clone, Debug)]
enum Step {
    /// Of the first type or the second, with the voucher or not.
    Hold(i64, bool, bool),
    Checkout(usize),
    /// Cancel the order of a checked-out hold (pending or paid).
    Cancel(usize),
    /// Move the clock past the hold time and sweep.
    ExpireHolds,
    /// Move the clock past the payment deadline and sweep.
    ExpireOrders,
    /// Change a type's capacity (refused below what is taken).
    Resize(bool, i64),
    /// Join the waiting list of a type for this many.
    Join(bool, i64),
    /// The waiting list's sweep: offers to the first in line.
    Offer,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
                4 => (1i64..=3, any::<bool>(), any::<bool>()).prop_map(|(q, b, v)| Step::Hold(q, b, v)),
        3 => (0usize..50).prop_map(Step::Checkout),
        1 => (0usize..50).prop_map(Step::Cancel),
        1 => Just(Step::ExpireHolds),
        1 => Just(Step::ExpireOrders),
        1 => (any::<bool>(), 1i64..=10).prop_map(|(b, c)| Step::Resize(b, c)),
        1 => (any::<bool>(), 1i64..=2).prop_map(|(b, q)| Step::Join(b, q)),
        1 => Just(Step::Offer),
    ]
}

const HOLD_TTL: u64 = 60;
const PAYMENT_TIMEOUT: u64 = 120;

async fn run_case(
    p: &testing::TestPlatform,
    actor: &Actor,
    capacity: i64,
    priced: bool,
    reserve: bool,
    steps: Vec<Step>,
) -> Result<(), TestCaseError> {
    let app = &p.app;
    let t = actor.tenant();
    let event = events::create_event(
        app,
        actor,
        NewEvent {
            name: "Property".into(),
            starts_at: "2030-01-01T18:00:00Z".into(),
            ends_at: "2030-01-01T23:00:00Z".into(),
            timezone: "UTC".into(),
            series: false,
        },
    )
    .await
    .map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let tt = events::add_ticket_type(
        app,
        actor,
        event.id,
        NewTicketType {
            name: "GA".into(),
            price_cents: if priced { 1000 } else { 0 },
            currency: "ZAR".into(),
            capacity,
            sale_starts_at: None,
            sale_ends_at: None,
            max_per_order: Some(10),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let fail = |e: &dyn std::fmt::Display| TestCaseError::fail(format!("{e}"));
    let tt2 = events::add_ticket_type(
        app,
        actor,
        event.id,
        NewTicketType {
            name: "GA 2".into(),
            price_cents: 0,
            currency: "ZAR".into(),
            capacity,
            sale_starts_at: None,
            sale_ends_at: None,
            max_per_order: Some(10),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| fail(&e))?;
    // The two share a quota smaller than both together.
    let quota_cap = capacity + capacity / 2;
    let quota = events::create_quota(
        app,
        actor,
        event.id,
        events::NewQuota {
            name: "Floor".into(),
            capacity: quota_cap,
            ticket_type_ids: vec![tt.id, tt2.id],
        },
    )
    .await
    .map_err(|e| fail(&e))?;
    // A reserving voucher keeps its uses of the first type aside until its
    // time is up (a few sweeps into the case), then gives back the unused.
    let max_uses = if reserve { capacity.min(3) } else { 3 };
    let valid_until = reserve.then(|| {
        kernel::clock::rfc3339(p.clock.now() + kernel::clock::micros(Duration::from_secs(300)))
    });
    let voucher = events::create_voucher(
        app,
        actor,
        event.id,
        "PROP",
        events::NewVoucher {
            percent_off: Some(50),
            amount_off_cents: None,
            max_uses,
            valid_until,
            ticket_type_ids: vec![tt.id],
            reserve,
        },
    )
    .await
    .map_err(|e| fail(&e))?;
    events::publish(app, actor, event.id)
        .await
        .map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let mut holds = Vec::new();
    let mut orders = Vec::new();
    let mut caps = [capacity, capacity];
    let mut joined = 0;
    for s in steps {
        match s {
            Step::Resize(second, cap) => {
                let id = if second { tt2.id } else { tt.id };
                let patch = events::TicketTypePatch {
                    capacity: Some(cap),
                    ..Default::default()
                };
                match events::update_ticket_type(app, actor, event.id, id, patch).await {
                    Ok(_) => caps[usize::from(second)] = cap,
                    Err(e) => {
                        let e = kernel::ApiError::from(e);
                        if !matches!(e, kernel::ApiError::Conflict(_)) {
                            return Err(TestCaseError::fail(format!("resize: {e}")));
                        }
                    }
                }
            }
            Step::Join(second, q) => {
                joined += 1;
                let join = super::waitlist::Join {
                    ticket_type_id: if second { tt2.id } else { tt.id },
                    quantity: q,
                    email: format!("w{joined}@example.com"),
                    name: "W".into(),
                };
                if let Err(e) = super::waitlist::join(app, t, event.id, join).await {
                    // Tickets left: no line to join (409), nothing written.
                    let e = kernel::ApiError::from(e);
                    if !matches!(e, kernel::ApiError::Conflict(_)) {
                        return Err(TestCaseError::fail(format!("join: {e}")));
                    }
                }
            }
            Step::Offer => {
                super::waitlist::sweep(app)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("offer: {e}")))?;
            }
            Step::Hold(q, second, with_voucher) => {
                let items = vec![HoldItem {
                    ticket_type_id: if second { tt2.id } else { tt.id },
                    quantity: q,
                }];
                let code = with_voucher.then_some("prop");
                match create_hold(app, t, event.id, items, None, code, Default::default()).await {
                    Ok(h) => holds.push(h.id),
                    Err(super::Error::SoldOut(_)) => {}
                    Err(e) => {
                        // The voucher used up, or not for the second type:
                        // a 422 naming `voucher`, nothing taken.
                        let e = kernel::ApiError::from(e);
                        let p = e.problem();
                        if p.errors.is_empty() || p.errors.iter().any(|f| f.field != "voucher") {
                            return Err(TestCaseError::fail(format!("hold: {e}")));
                        }
                    }
                }
            }
            Step::Cancel(i) if !orders.is_empty() => {
                let order = orders[i % orders.len()];
                if let Err(e) = super::money::cancel(app, actor, order, "property").await {
                    let e = kernel::ApiError::from(e);
                    // Cancelled already, or expired: told so (4xx), nothing moves.
                    if !e.status().is_client_error() {
                        return Err(TestCaseError::fail(format!("cancel: {e}")));
                    }
                }
            }
            Step::Cancel(_) => {}
            Step::Checkout(i) if !holds.is_empty() => {
                let hold = holds[i % holds.len()];
                let buyer = Buyer {
                    email: "p@example.com".into(),
                    name: "P".into(),
                };
                match checkout(
                    app,
                    t,
                    hold,
                    buyer,
                    Vec::new(),
                    super::PaymentMethod::Eft,
                    None,
                )
                .await
                {
                    Ok(reply) => {
                        let v: serde_json::Value =
                            serde_json::from_str(&reply.body).map_err(|e| fail(&e))?;
                        if let Some(id) = v["id"].as_str().and_then(|s| s.parse().ok()) {
                            orders.push(kernel::ids::OrderId(id));
                        }
                    }
                    Err(super::Error::HoldExpired) | Err(super::Error::HoldConsumed) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("checkout: {e}"))),
                }
            }
            Step::Checkout(_) => {}
            Step::ExpireHolds => {
                p.clock.advance(Duration::from_secs(HOLD_TTL + 1));
                release_expired(app)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{e}")))?;
                super::end_reservations(app)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{e}")))?;
            }
            Step::ExpireOrders => {
                p.clock.advance(Duration::from_secs(PAYMENT_TIMEOUT + 1));
                expire_pending_orders(app)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{e}")))?;
                super::end_reservations(app)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{e}")))?;
            }
        }
        let inv = app.state::<Inventory>();
        let left = inv
            .remaining(app, t, event.id, &[tt.id, tt2.id])
            .await
            .map_err(|e| fail(&e))?;
        let taken1 = store::taken_from_ledger(app.db(), t, tt.id)
            .await
            .map_err(|e| fail(&e))?;
        let taken2 = store::taken_from_ledger(app.db(), t, tt2.id)
            .await
            .map_err(|e| fail(&e))?;
        let quota_left = quota_cap - taken1 - taken2;
        prop_assert!(quota_left >= 0, "quota exceeded: {}", -quota_left);
        prop_assert!(taken1 <= caps[0] && taken2 <= caps[1], "a type oversold");
        prop_assert_eq!(
            left[0],
            (caps[0] - taken1).min(quota_left).max(0),
            "first type's availability and the ledger disagree"
        );
        prop_assert_eq!(
            left[1],
            (caps[1] - taken2).min(quota_left).max(0),
            "second type's availability and the ledger disagree"
        );
        let q_counter = inv
            .quotas_left(app, t, event.id)
            .await
            .map_err(|e| fail(&e))?;
        prop_assert_eq!(q_counter, vec![(quota.id, quota_left)], "quota counter");
        let uses = store::voucher_uses(app.db(), t, voucher.id)
            .await
            .map_err(|e| fail(&e))?;
        prop_assert!(uses <= max_uses, "voucher over its limit: {}", uses);
        let uses_left = inv
            .vouchers_left(app, t, event.id, &[voucher.id])
            .await
            .map_err(|e| fail(&e))?;
        prop_assert_eq!(uses_left, vec![max_uses - uses], "voucher counter");
    }
    Ok(())
}

fn invariant_holds_on(redis: Option<String>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let p = rt.block_on(testing::platform(redis, |c| {
        c.hold_ttl_secs = HOLD_TTL as i64;
        c.payment_timeout_secs = PAYMENT_TIMEOUT as i64;
    }));
    let actor = rt.block_on(testing::org(&p.app));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    let strategy = (
        1i64..=8,
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(step(), 1..30),
    );
    let result = runner.run(&strategy, |(capacity, priced, reserve, steps)| {
        // A case takes well under a second: one that waits a minute is
        // stuck, and says so instead of holding the suite up.
        rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(60),
                run_case(&p, &actor, capacity, priced, reserve, steps),
            )
            .await
            .unwrap_or_else(|_| Err(TestCaseError::fail("stuck for a minute")))
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn the_counter_is_capacity_less_the_ledger_in_process() {
    invariant_holds_on(None);
}

#[test]
fn the_counter_is_capacity_less_the_ledger_in_redis() {
    if let Some(url) = testing::redis_url() {
        invariant_holds_on(Some(url));
    }
}

/// A node's first touch of Redis may be a capacity raise: learning the
/// epoch then writes a new one, which on SQLite must not wait behind the
/// raise's own open transaction (it did, forever).
#[test]
fn a_raise_first_on_a_fresh_redis_node_completes() {
    let Some(url) = testing::redis_url() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let p = testing::platform(Some(url), |_| {}).await;
        let actor = testing::org(&p.app).await;
        let event = events::create_event(
            &p.app,
            &actor,
            NewEvent {
                name: "Raise".into(),
                starts_at: "2030-01-01T18:00:00Z".into(),
                ends_at: "2030-01-01T23:00:00Z".into(),
                timezone: "UTC".into(),
                series: false,
            },
        )
        .await
        .expect("event");
        let tt = events::add_ticket_type(
            &p.app,
            &actor,
            event.id,
            NewTicketType {
                name: "GA".into(),
                price_cents: 0,
                currency: "ZAR".into(),
                capacity: 2,
                ..Default::default()
            },
        )
        .await
        .expect("type");
        let patch = events::TicketTypePatch {
            capacity: Some(5),
            ..Default::default()
        };
        let raised = tokio::time::timeout(
            Duration::from_secs(60),
            events::update_ticket_type(&p.app, &actor, event.id, tt.id, patch),
        )
        .await
        .expect("the raise finishes");
        assert!(
            raised.is_ok(),
            "raise: {:?}",
            raised.err().map(|e| e.to_string())
        );
        let left = p
            .app
            .state::<Inventory>()
            .remaining(&p.app, actor.tenant(), event.id, &[tt.id])
            .await
            .expect("remaining");
        assert_eq!(left, vec![5]);
    });
}
