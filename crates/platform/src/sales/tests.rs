//! The inventory invariant under any interleaving: after every step of a
//! random sequence of holds, checkouts, hold expiries and payment
//! deadlines, each tier's counter equals capacity − Σ(active + consumed
//! holds) in the ledger, and never leaves [0, capacity]. Run on the
//! in-process tier and on Redis.

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
    Hold(i64),
    Checkout(usize),
    /// Move the clock past the hold time and sweep.
    ExpireHolds,
    /// Move the clock past the payment deadline and sweep.
    ExpireOrders,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1i64..=3).prop_map(Step::Hold),
        3 => (0usize..50).prop_map(Step::Checkout),
        1 => Just(Step::ExpireHolds),
        1 => Just(Step::ExpireOrders),
    ]
}

const HOLD_TTL: u64 = 60;
const PAYMENT_TIMEOUT: u64 = 120;

async fn run_case(
    p: &testing::TestPlatform,
    actor: &Actor,
    capacity: i64,
    priced: bool,
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
        },
    )
    .await
    .map_err(|e| TestCaseError::fail(format!("{e}")))?;
    events::publish(app, actor, event.id)
        .await
        .map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let mut holds = Vec::new();
    for s in steps {
        match s {
            Step::Hold(q) => {
                let items = vec![HoldItem {
                    ticket_type_id: tt.id,
                    quantity: q,
                }];
                match create_hold(app, t, event.id, items, None, None, Default::default()).await {
                    Ok(h) => holds.push(h.id),
                    Err(super::Error::SoldOut(_)) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("hold: {e}"))),
                }
            }
            Step::Checkout(i) if !holds.is_empty() => {
                let hold = holds[i % holds.len()];
                let buyer = Buyer {
                    email: "p@example.com".into(),
                    name: "P".into(),
                };
                match checkout(app, t, hold, buyer, super::PaymentMethod::Eft, None).await {
                    Ok(_) | Err(super::Error::HoldExpired) | Err(super::Error::HoldConsumed) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("checkout: {e}"))),
                }
            }
            Step::Checkout(_) => {}
            Step::ExpireHolds => {
                p.clock.advance(Duration::from_secs(HOLD_TTL + 1));
                release_expired(app)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{e}")))?;
            }
            Step::ExpireOrders => {
                p.clock.advance(Duration::from_secs(PAYMENT_TIMEOUT + 1));
                expire_pending_orders(app)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{e}")))?;
            }
        }
        let counter = app
            .state::<Inventory>()
            .remaining(app, t, event.id, &[tt.id])
            .await
            .map_err(|e| TestCaseError::fail(format!("{e}")))?[0];
        let taken = store::taken_from_ledger(app.db(), t, tt.id)
            .await
            .map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(counter, capacity - taken, "counter and ledger disagree");
        prop_assert!(
            (0..=capacity).contains(&counter),
            "counter {} outside [0, {}]",
            counter,
            capacity
        );
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
        proptest::collection::vec(step(), 1..30),
    );
    let result = runner.run(&strategy, |(capacity, priced, steps)| {
        rt.block_on(run_case(&p, &actor, capacity, priced, steps))
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
