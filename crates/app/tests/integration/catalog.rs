//! The catalog: quotas shared by ticket types (API.md Part 2, "Catalog").

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};

use crate::{both, support::*};

/// A second ticket type on `event`; its id.
async fn add_type(t: &TestApp, org: &Org, event: &Event, name: &str, capacity: i64) -> String {
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{}/ticket-types", org.slug, event.id),
            Some(&org.key),
            json!({"name": name, "price_cents": 0, "currency": "ZAR", "capacity": capacity}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_string()
}

async fn quota(t: &TestApp, org: &Org, event: &Event, capacity: i64, types: &[&str]) -> Value {
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{}/quotas", org.slug, event.id),
            Some(&org.key),
            json!({"name": "Floor", "capacity": capacity, "ticket_type_ids": types}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

/// What the storefront says is left of each ticket type, by id.
async fn available(
    t: &TestApp,
    org: &Org,
    event: &Event,
) -> std::collections::HashMap<String, i64> {
    store_types(t, org, event, None).await.into_iter().collect()
}

async fn hold_of(
    t: &TestApp,
    org: &Org,
    event: &Event,
    items: &[(&str, i64)],
) -> reqwest::Response {
    let items: Vec<Value> = items
        .iter()
        .map(|(tt, q)| json!({"ticket_type_id": tt, "quantity": q}))
        .collect();
    t.post(
        &format!("/api/v1/store/{}/events/{}/holds", org.slug, event.id),
        None,
        json!({"items": items}),
    )
    .await
}

both!(a_quota_caps_the_ticket_types_that_share_it);
async fn a_quota_caps_the_ticket_types_that_share_it(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let a = event.ticket_type.clone();
    let b = add_type(&t, &org, &event, "Student", 10).await;
    let q = quota(&t, &org, &event, 12, &[&a, &b]).await;
    assert_eq!(q["capacity"], 12);
    assert_eq!(q["ticket_type_ids"].as_array().unwrap().len(), 2);

    // Each type alone is limited by its own capacity, both by the quota.
    let left = available(&t, &org, &event).await;
    assert_eq!((left[&a], left[&b]), (10, 10));
    assert_eq!(hold_of(&t, &org, &event, &[(&a, 8)]).await.status(), 201);
    let left = available(&t, &org, &event).await;
    assert_eq!((left[&a], left[&b]), (2, 4));
    problem(hold_of(&t, &org, &event, &[(&b, 5)]).await, 409, "sold_out").await;
    // One hold across both types takes from the quota once per ticket.
    problem(
        hold_of(&t, &org, &event, &[(&a, 1), (&b, 4)]).await,
        409,
        "sold_out",
    )
    .await;
    assert_eq!(
        hold_of(&t, &org, &event, &[(&a, 1), (&b, 3)])
            .await
            .status(),
        201
    );
    let left = available(&t, &org, &event).await;
    assert_eq!((left[&a], left[&b]), (0, 0));
    assert_eq!(taken(&t, &[&a, &b]).await, 12);

    // Listed, then removed: each type sells up to its own capacity again.
    let list: Value = t
        .get(
            &format!("/api/v1/orgs/{}/events/{}/quotas", org.slug, event.id),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["id"], q["id"]);
    let r = t
        .api
        .client
        .delete(t.url(&format!(
            "/api/v1/orgs/{}/events/{}/quotas/{}",
            org.slug,
            event.id,
            q["id"].as_str().unwrap()
        )))
        .bearer_auth(&org.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    t.eventually("the quota no longer limits", || async {
        let left = available(&t, &org, &event).await;
        (left[&a], left[&b]) == (1, 7)
    })
    .await;
    t.stop().await;
}

both!(buyers_race_for_a_quota_shared_by_two_types);
async fn buyers_race_for_a_quota_shared_by_two_types(backend: Backend) {
    let t = Arc::new(TestApp::spawn(backend).await);
    let org = t.signup().await;
    let event = t.event(&org, 80).await;
    let a = event.ticket_type.clone();
    let b = add_type(&t, &org, &event, "Student", 80).await;
    let c = add_type(&t, &org, &event, "Balcony", 30).await;
    // Floor: a and b share 100; c is outside it.
    quota(&t, &org, &event, 100, &[&a, &b]).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(300));
    let mut tasks = Vec::new();
    for i in 0..300 {
        let (t, org, event, barrier) = (t.clone(), org.clone(), event.clone(), barrier.clone());
        let (a, b, c) = (a.clone(), b.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            let items: Vec<(&str, i64)> = match i % 4 {
                0 => vec![(&a, 1)],
                1 => vec![(&b, 2)],
                2 => vec![(&a, 1), (&b, 1)],
                _ => vec![(&c, 1), (&a, 1)],
            };
            barrier.wait().await;
            let r = hold_of(&t, &org, &event, &items).await;
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (status, body["type"].as_str().unwrap_or("").to_string())
        }));
    }
    for task in tasks {
        match task.await.unwrap() {
            (201, _) => {}
            (409, kind) if kind == "sold_out" => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    // The ledger, not the replies: the quota and every type within bounds,
    // and the quota used up (demand was 450 tickets of it).
    let floor = taken(&t, &[&a, &b]).await;
    assert!(floor <= 100, "quota exceeded: {floor}");
    assert!(floor >= 99, "quota left unsold: {floor}");
    assert!(taken(&t, &[&a]).await <= 80);
    assert!(taken(&t, &[&b]).await <= 80);
    assert!(taken(&t, &[&c]).await <= 30);
    let left = available(&t, &org, &event).await;
    assert_eq!(left[&a].max(left[&b]), 100 - floor);

    // Every hold expires: the quota comes back whole, once.
    t.advance(Duration::from_secs(t.config().hold_ttl_secs as u64 + 1));
    t.eventually("every hold released", || async {
        t.count(
            "SELECT COUNT(*) FROM holds WHERE event_id = $1 AND status = 'active'",
            &event.id,
        )
        .await
            == 0
    })
    .await;
    t.eventually("the quota back whole", || async {
        let left = available(&t, &org, &event).await;
        (left[&a], left[&b], left[&c]) == (80, 80, 30)
    })
    .await;
    // And it caps again, at exactly 100.
    for _ in 0..5 {
        assert_eq!(
            hold_of(&t, &org, &event, &[(&a, 10), (&b, 10)])
                .await
                .status(),
            201
        );
    }
    problem(hold_of(&t, &org, &event, &[(&a, 1)]).await, 409, "sold_out").await;
    Arc::try_unwrap(t).ok().expect("sole owner").stop().await;
}

both!(a_bad_quota_is_refused_and_nothing_is_written);
async fn a_bad_quota_is_refused_and_nothing_is_written(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let other = t.signup().await;
    let event = t.event(&org, 10).await;
    let second = t.event(&org, 10).await;
    let theirs = t.event(&other, 10).await;
    let path = format!("/api/v1/orgs/{}/events/{}/quotas", org.slug, event.id);
    let tt = event.ticket_type.clone();
    for (body, field) in [
        (
            json!({"name": "Q", "capacity": -1, "ticket_type_ids": [tt]}),
            "capacity",
        ),
        (
            json!({"name": "Q", "capacity": 1_000_000_000, "ticket_type_ids": [tt]}),
            "capacity",
        ),
        (
            json!({"name": "Q", "capacity": 5, "ticket_type_ids": []}),
            "ticket_type_ids",
        ),
        (
            json!({"name": " ", "capacity": 5, "ticket_type_ids": [tt]}),
            "name",
        ),
        (
            json!({"name": "Q", "capacity": 5, "ticket_type_ids": [tt, tt]}),
            "ticket_type_ids[1]",
        ),
        (
            json!({"name": "Q", "capacity": 5, "ticket_type_ids": [second.ticket_type]}),
            "ticket_type_ids[0]",
        ),
        (
            json!({"name": "Q", "capacity": 5, "ticket_type_ids": [theirs.ticket_type]}),
            "ticket_type_ids[0]",
        ),
        (
            json!({"name": "Q", "capacity": 5, "ticket_type_ids": [uuid::Uuid::now_v7()]}),
            "ticket_type_ids[0]",
        ),
    ] {
        let v = problem(
            t.post(&path, Some(&org.key), body.clone()).await,
            422,
            "validation",
        )
        .await;
        assert!(
            v["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{body} → {v}"
        );
    }
    // Wrong shapes: 422 or 400, never a 500.
    for body in [
        json!({"name": "Q", "capacity": "5", "ticket_type_ids": [tt]}),
        json!({"name": "Q", "capacity": 5, "ticket_type_ids": ["not-an-id"]}),
        json!({"name": "Q", "capacity": 5, "ticket_type_ids": [tt], "extra": 1}),
        json!([]),
    ] {
        let r = t.post(&path, Some(&org.key), body).await;
        assert!(matches!(r.status().as_u16(), 400 | 422), "{}", r.status());
    }
    // Another tenant's event, or none: 404, the same body either way.
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{}/quotas", org.slug, theirs.id),
            Some(&org.key),
            json!({"name": "Q", "capacity": 5, "ticket_type_ids": [theirs.ticket_type]}),
        )
        .await;
    problem(r, 404, "not_found").await;
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{}/quotas", other.slug, event.id),
            Some(&org.key),
            json!({"name": "Q", "capacity": 5, "ticket_type_ids": [tt]}),
        )
        .await;
    assert!(matches!(r.status().as_u16(), 403 | 404));
    let r = t
        .api
        .client
        .delete(t.url(&format!(
            "/api/v1/orgs/{}/events/{}/quotas/{}",
            org.slug,
            event.id,
            uuid::Uuid::now_v7()
        )))
        .bearer_auth(&org.key)
        .send()
        .await
        .unwrap();
    problem(r, 404, "not_found").await;
    for e in [&event, &second, &theirs] {
        assert_eq!(
            t.count("SELECT COUNT(*) FROM quotas WHERE event_id = $1", &e.id)
                .await,
            0
        );
    }
    // A quota of zero closes its types.
    quota(&t, &org, &event, 0, &[&tt]).await;
    t.eventually("closed", || async { t.available(&org, &event).await == 0 })
        .await;
    problem(t.hold(&org, &event, 1).await, 409, "sold_out").await;
    t.stop().await;
}

// With Redis away a hold is taken from the ledger: the quota binds there
// too. And a quota counter that drifted (a node died between reserving
// and writing) is repaired from the ledger like a ticket type's.
both!(the_ledger_and_the_reconciliation_know_quotas);
async fn the_ledger_and_the_reconciliation_know_quotas(backend: Backend) {
    use platform::sales::{Inventory, Reserve, integrity};
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let a = event.ticket_type.clone();
    let b = add_type(&t, &org, &event, "Student", 10).await;
    quota(&t, &org, &event, 5, &[&a, &b]).await;
    assert_eq!(hold_of(&t, &org, &event, &[(&b, 2)]).await.status(), 201);
    let app = t.app();
    let org_id: kernel::ids::OrgId = kernel::db_run!(app.db(), p => sqlx::query_scalar("SELECT id FROM orgs WHERE slug = $1").bind(&org.slug).fetch_one(p).await).unwrap();
    let tenant = platform::identity::upkeep_tenant(app, org_id)
        .await
        .unwrap()
        .unwrap();
    let ev: kernel::ids::EventId = event.id.parse().unwrap();
    let (ta, tb): (kernel::ids::TicketTypeId, kernel::ids::TicketTypeId) =
        (a.parse().unwrap(), b.parse().unwrap());
    let inv = app.state::<Inventory>();
    let mut tx = app.db().begin().await.unwrap();
    assert!(matches!(
        inv.reserve_in_tx(app, &mut tx, &tenant, ev, &[(ta, 4)], None)
            .await
            .unwrap()
            .0,
        Reserve::SoldOut(tt) if tt == ta
    ));
    assert!(matches!(
        inv.reserve_in_tx(app, &mut tx, &tenant, ev, &[(ta, 3)], None)
            .await
            .unwrap()
            .0,
        Reserve::Taken(None)
    ));
    tx.rollback().await.unwrap();
    // A voucher's uses bind on the ledger too.
    let v = voucher(
        &t,
        &org,
        &event,
        json!({"code": "ONE", "percent_off": 5, "max_uses": 1}),
    )
    .await;
    let vid: kernel::ids::VoucherId = v["id"].as_str().unwrap().parse().unwrap();
    let mut tx = app.db().begin().await.unwrap();
    assert!(matches!(
        inv.reserve_in_tx(app, &mut tx, &tenant, ev, &[(ta, 2)], Some((vid, 2)))
            .await
            .unwrap()
            .0,
        Reserve::VoucherSpent
    ));
    assert!(matches!(
        inv.reserve_in_tx(app, &mut tx, &tenant, ev, &[(ta, 1)], Some((vid, 1)))
            .await
            .unwrap()
            .0,
        Reserve::Taken(None)
    ));
    tx.rollback().await.unwrap();

    // A node reserves 2 of the quota and dies before writing its hold.
    assert!(matches!(
        inv.reserve(app, &tenant, ev, &[(tb, 2)], None)
            .await
            .unwrap(),
        Reserve::Taken(_)
    ));
    assert_eq!(available(&t, &org, &event).await[&a], 1, "the leak shows");
    let repaired = integrity::reconcile_only(app, Some(org_id), Duration::from_millis(50))
        .await
        .unwrap();
    let mut seen: Vec<(bool, i64, i64)> = repaired
        .iter()
        .map(|r| (r.quota_id.is_some(), r.counter_was, r.ledger_says))
        .collect();
    seen.sort();
    assert_eq!(seen, vec![(false, 6, 8), (true, 1, 3)]);
    assert_eq!(available(&t, &org, &event).await[&a], 3, "repaired");
    t.stop().await;
}

async fn voucher(t: &TestApp, org: &Org, event: &Event, body: Value) -> Value {
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{}/vouchers", org.slug, event.id),
            Some(&org.key),
            body,
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn hold_with(
    t: &TestApp,
    org: &Org,
    event: &Event,
    items: &[(&str, i64)],
    code: &str,
) -> reqwest::Response {
    let items: Vec<Value> = items
        .iter()
        .map(|(tt, q)| json!({"ticket_type_id": tt, "quantity": q}))
        .collect();
    t.post(
        &format!("/api/v1/store/{}/events/{}/holds", org.slug, event.id),
        None,
        json!({"items": items, "voucher": code}),
    )
    .await
}

/// Σ uses of the voucher's live holds, from the ledger.
async fn uses(t: &TestApp, voucher_id: &str) -> i64 {
    t.count(
        "SELECT CAST(COALESCE(SUM(voucher_uses), 0) AS BIGINT) FROM holds
         WHERE voucher_id = $1 AND status IN ('active', 'consumed')",
        voucher_id,
    )
    .await
}

both!(a_voucher_discounts_the_tickets_it_applies_to_until_it_is_used_up);
async fn a_voucher_discounts_the_tickets_it_applies_to_until_it_is_used_up(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t
        .try_event(&org, &EventSpec::capacity(50).priced(10_000))
        .await
        .unwrap();
    let a = event.ticket_type.clone();
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{}/ticket-types", org.slug, event.id),
            Some(&org.key),
            json!({"name": "Balcony", "price_cents": 5000, "currency": "ZAR", "capacity": 50}),
        )
        .await;
    let b = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = voucher(
        &t,
        &org,
        &event,
        json!({"code": "Save20", "percent_off": 20, "max_uses": 3, "ticket_type_ids": [a]}),
    )
    .await;
    assert_eq!(v["code"], "SAVE20");
    let vid = v["id"].as_str().unwrap().to_string();

    // Two of its three uses: the balcony ticket is not discounted.
    let h = hold_with(&t, &org, &event, &[(&a, 2), (&b, 1)], "save20").await;
    assert_eq!(h.status(), 201);
    let h: Value = h.json().await.unwrap();
    assert_eq!(h["voucher"], "SAVE20");
    assert_eq!(uses(&t, &vid).await, 2);
    let o = t
        .checkout(&org, h["id"].as_str().unwrap(), None, "ada@example.com")
        .await;
    assert_eq!(o.status(), 201);
    let o: Value = o.json().await.unwrap();
    let line = |tt: &str| {
        o["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["ticket_type_id"] == tt)
            .unwrap()
            .clone()
    };
    assert_eq!(line(&a)["discount_cents"], 4000);
    assert_eq!(line(&a)["total_cents"], 16_000);
    assert_eq!(line(&b)["discount_cents"], 0);
    assert_eq!(o["total_cents"], 21_000);

    // One use left: two tickets are refused, naming the voucher; one goes.
    let v = problem(
        hold_with(&t, &org, &event, &[(&a, 2)], "SAVE20").await,
        422,
        "validation",
    )
    .await;
    assert_eq!(v["errors"][0]["field"], "voucher");
    for (items, code) in [
        (vec![(b.as_str(), 1)], "SAVE20"),
        (vec![(a.as_str(), 1)], "NOPE"),
        (vec![(a.as_str(), 1)], "not a code!"),
    ] {
        let v = problem(
            hold_with(&t, &org, &event, &items, code).await,
            422,
            "validation",
        )
        .await;
        assert_eq!(v["errors"][0]["field"], "voucher", "{code}: {v}");
    }
    let last = hold_with(&t, &org, &event, &[(&a, 1)], "SAVE20").await;
    assert_eq!(last.status(), 201);
    assert_eq!(uses(&t, &vid).await, 3);
    problem(
        hold_with(&t, &org, &event, &[(&a, 1)], "SAVE20").await,
        422,
        "validation",
    )
    .await;

    // The last hold lapses: its use comes back, once.
    t.advance(Duration::from_secs(t.config().hold_ttl_secs as u64 + 1));
    t.eventually("the lapsed hold's use back", || async {
        uses(&t, &vid).await == 2
    })
    .await;
    assert_eq!(
        hold_with(&t, &org, &event, &[(&a, 1)], "SAVE20")
            .await
            .status(),
        201
    );
    problem(
        hold_with(&t, &org, &event, &[(&a, 1)], "SAVE20").await,
        422,
        "validation",
    )
    .await;
    // The unpaid order lapses too: its two uses come back.
    t.advance(Duration::from_secs(
        t.config().payment_timeout_secs as u64 + 1,
    ));
    t.eventually("the lapsed order's uses back", || async {
        uses(&t, &vid).await == 0
    })
    .await;
    assert_eq!(
        hold_with(&t, &org, &event, &[(&a, 3)], "SAVE20")
            .await
            .status(),
        201
    );

    // An amount off never takes a line below zero.
    voucher(
        &t,
        &org,
        &event,
        json!({"code": "BIG", "amount_off_cents": 8000, "max_uses": 5}),
    )
    .await;
    let h: Value = hold_with(&t, &org, &event, &[(&a, 1), (&b, 2)], "big")
        .await
        .json()
        .await
        .unwrap();
    let o: Value = t
        .checkout(&org, h["id"].as_str().unwrap(), None, "bo@example.com")
        .await
        .json()
        .await
        .unwrap();
    let total: i64 = o["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["total_cents"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 2000, "{o}");
    assert_eq!(o["total_cents"], 2000);
    t.stop().await;
}

both!(buyers_race_for_a_voucher_of_limited_use);
async fn buyers_race_for_a_voucher_of_limited_use(backend: Backend) {
    let t = Arc::new(TestApp::spawn(backend).await);
    let org = t.signup().await;
    let event = t.event(&org, 500).await;
    let v = voucher(
        &t,
        &org,
        &event,
        json!({"code": "FIRST10", "percent_off": 100, "max_uses": 10}),
    )
    .await;
    let vid = v["id"].as_str().unwrap().to_string();
    let barrier = Arc::new(tokio::sync::Barrier::new(120));
    let mut tasks = Vec::new();
    for i in 0..120 {
        let (t, org, event, barrier) = (t.clone(), org.clone(), event.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let r = hold_with(
                &t,
                &org,
                &event,
                &[(&event.ticket_type, 1 + i % 2)],
                "first10",
            )
            .await;
            r.status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 422),
        "{statuses:?}"
    );
    // Never more than ten uses, and (demand far above) all ten taken.
    let used = uses(&t, &vid).await;
    assert!((9..=10).contains(&used), "{used} uses");
    t.advance(Duration::from_secs(t.config().hold_ttl_secs as u64 + 1));
    t.eventually("every use back", || async { uses(&t, &vid).await == 0 })
        .await;
    for _ in 0..10 {
        assert_eq!(
            hold_with(&t, &org, &event, &[(&event.ticket_type, 1)], "FIRST10")
                .await
                .status(),
            201
        );
    }
    problem(
        hold_with(&t, &org, &event, &[(&event.ticket_type, 1)], "FIRST10").await,
        422,
        "validation",
    )
    .await;
    Arc::try_unwrap(t).ok().expect("sole owner").stop().await;
}

both!(bad_vouchers_are_refused_and_bulk_codes_are_made_at_once);
async fn bad_vouchers_are_refused_and_bulk_codes_are_made_at_once(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let other = t.signup().await;
    let event = t.event(&org, 10).await;
    let second = t.event(&org, 10).await;
    let theirs = t.event(&other, 10).await;
    let path = format!("/api/v1/orgs/{}/events/{}/vouchers", org.slug, event.id);
    voucher(
        &t,
        &org,
        &event,
        json!({"code": "TAKEN", "percent_off": 10, "max_uses": 1}),
    )
    .await;
    for (body, field) in [
        (
            json!({"code": "A", "percent_off": 10, "amount_off_cents": 100, "max_uses": 1}),
            "percent_off",
        ),
        (json!({"code": "A", "max_uses": 1}), "percent_off"),
        (
            json!({"code": "A", "percent_off": -1, "max_uses": 1}),
            "percent_off",
        ),
        (
            json!({"code": "A", "percent_off": 101, "max_uses": 1}),
            "percent_off",
        ),
        (
            json!({"code": "A", "amount_off_cents": 0, "max_uses": 1}),
            "amount_off_cents",
        ),
        (
            json!({"code": "A", "percent_off": 10, "max_uses": 0}),
            "max_uses",
        ),
        (
            json!({"code": "A", "percent_off": 10, "max_uses": 1_000_000_000}),
            "max_uses",
        ),
        (
            json!({"code": "has space", "percent_off": 10, "max_uses": 1}),
            "code",
        ),
        (
            json!({"code": "x".repeat(65), "percent_off": 10, "max_uses": 1}),
            "code",
        ),
        (
            json!({"code": "taken", "percent_off": 10, "max_uses": 1}),
            "code",
        ),
        (
            json!({"code": "A", "percent_off": 10, "max_uses": 1, "valid_until": "soon"}),
            "valid_until",
        ),
        (
            json!({"code": "A", "percent_off": 10, "max_uses": 1, "ticket_type_ids": [second.ticket_type]}),
            "ticket_type_ids[0]",
        ),
        (
            json!({"code": "A", "percent_off": 10, "max_uses": 1, "ticket_type_ids": [theirs.ticket_type]}),
            "ticket_type_ids[0]",
        ),
    ] {
        let v = problem(
            t.post(&path, Some(&org.key), body.clone()).await,
            422,
            "validation",
        )
        .await;
        assert!(
            v["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{body} → {v}"
        );
    }
    for body in [
        json!({"code": 5, "percent_off": 10, "max_uses": 1}),
        json!({"code": "A", "percent_off": "10", "max_uses": 1}),
        json!({"code": "A", "percent_off": 10, "max_uses": 1, "extra": true}),
    ] {
        let r = t.post(&path, Some(&org.key), body).await;
        assert!(matches!(r.status().as_u16(), 400 | 422), "{}", r.status());
    }
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{}/vouchers", org.slug, theirs.id),
            Some(&org.key),
            json!({"code": "B", "percent_off": 10, "max_uses": 1}),
        )
        .await;
    problem(r, 404, "not_found").await;
    // A voucher of another event is no voucher here.
    voucher(
        &t,
        &org,
        &second,
        json!({"code": "ELSEWHERE", "percent_off": 10, "max_uses": 5}),
    )
    .await;
    let v = problem(
        hold_with(&t, &org, &event, &[(&event.ticket_type, 1)], "ELSEWHERE").await,
        422,
        "validation",
    )
    .await;
    assert_eq!(v["errors"][0]["field"], "voucher");
    // An expired one neither.
    voucher(
        &t,
        &org,
        &event,
        json!({"code": "OLD", "percent_off": 10, "max_uses": 5, "valid_until": "2001-01-01T00:00:00Z"}),
    )
    .await;
    let v = problem(
        hold_with(&t, &org, &event, &[(&event.ticket_type, 1)], "old").await,
        422,
        "validation",
    )
    .await;
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM vouchers WHERE event_id = $1",
            &event.id
        )
        .await,
        2,
        "only the good ones written"
    );

    // Bulk: all or none.
    let bulk = format!("{path}/bulk");
    for body in [
        json!({"count": 0, "percent_off": 10, "max_uses": 1}),
        json!({"count": 1001, "percent_off": 10, "max_uses": 1}),
        json!({"count": 5, "prefix": "no spaces", "percent_off": 10, "max_uses": 1}),
        json!({"count": 5, "percent_off": 10, "max_uses": 0}),
    ] {
        let r = t.post(&bulk, Some(&org.key), body).await;
        assert!(matches!(r.status().as_u16(), 400 | 422), "{}", r.status());
    }
    let r = t
        .post(
            &bulk,
            Some(&org.key),
            json!({"count": 30, "prefix": "vip-", "amount_off_cents": 500, "max_uses": 2}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    let codes: std::collections::BTreeSet<String> = made["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 30);
    assert!(codes.iter().all(|c| c.starts_with("VIP-") && c.len() == 14));
    // Listed in pages.
    let page1: Value = t
        .get(&format!("{path}?limit=20"), Some(&org.key))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page1["data"].as_array().unwrap().len(), 20);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2: Value = t
        .get(&format!("{path}?limit=20&cursor={cursor}"), Some(&org.key))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page2["data"].as_array().unwrap().len(), 12);
    assert!(page2["next_cursor"].is_null());
    // A bulk code works at the storefront.
    let code = codes.iter().next().unwrap();
    assert_eq!(
        hold_with(&t, &org, &event, &[(&event.ticket_type, 2)], code)
            .await
            .status(),
        201
    );
    t.stop().await;
}

/// A map of `rows` rows × `per_row` seats of one ticket type, in one
/// section "Stalls" (row A at the front), the seat `blocked` (if any)
/// flagged so.
fn seat_map(tt: &str, rows: usize, per_row: usize, blocked: Option<(usize, usize)>) -> Value {
    let rows: Vec<Value> = (0..rows)
        .map(|r| {
            let seats: Vec<Value> = (0..per_row)
                .map(|s| {
                    let mut flags = vec![];
                    if blocked == Some((r, s)) {
                        flags.push("blocked");
                    }
                    if s == 0 {
                        flags.push("accessible");
                    }
                    json!({"label": format!("{}", s + 1), "x": s as f64, "y": r as f64,
                           "ticket_type_id": tt, "flags": flags})
                })
                .collect();
            json!({"label": ((b'A' + r as u8) as char).to_string(), "seats": seats})
        })
        .collect();
    json!({"sections": [{"name": "Stalls", "rows": rows}]})
}

async fn put_map(t: &TestApp, org: &Org, event: &Event, map: &Value) -> reqwest::Response {
    t.api
        .client
        .put(t.url(&format!(
            "/api/v1/orgs/{}/events/{}/seating",
            org.slug, event.id
        )))
        .bearer_auth(&org.key)
        .json(map)
        .send()
        .await
        .unwrap()
}

/// Seat ids by "row-label", from the storefront's read.
async fn seats_of(t: &TestApp, org: &Org, event: &Event) -> Vec<Value> {
    let r = t
        .get(
            &format!("/api/v1/store/{}/events/{}/seats", org.slug, event.id),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["seats"].as_array().unwrap().clone()
}

fn seat_id(seats: &[Value], row: &str, label: &str) -> String {
    seats
        .iter()
        .find(|s| s["row"] == row && s["label"] == label)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn status_of(seats: &[Value], id: &str) -> String {
    seats.iter().find(|s| s["id"] == id).unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

both!(a_seat_map_keeps_its_seat_ids_and_a_bad_one_names_the_seat);
async fn a_seat_map_keeps_its_seat_ids_and_a_bad_one_names_the_seat(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let other = t.signup().await;
    let event = t.event(&org, 100).await;
    let theirs = t.event(&other, 10).await;
    let tt = event.ticket_type.clone();
    let r = put_map(&t, &org, &event, &seat_map(&tt, 3, 5, Some((0, 2)))).await;
    assert_eq!(r.status(), 200);
    let first: Value = r.json().await.unwrap();
    let ids = |m: &Value| -> Vec<String> {
        m["sections"][0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["seats"].as_array().unwrap().clone())
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&first).len(), 15);
    // Stored again (a row added): the seats already there keep their ids.
    let r = put_map(&t, &org, &event, &seat_map(&tt, 4, 5, Some((0, 2)))).await;
    let second: Value = r.json().await.unwrap();
    assert_eq!(ids(&second)[..15], ids(&first)[..]);
    let got: Value = t
        .get(
            &format!("/api/v1/orgs/{}/events/{}/seating", org.slug, event.id),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&got), ids(&second));
    let seats = seats_of(&t, &org, &event).await;
    assert_eq!(seats.len(), 20);
    assert_eq!(status_of(&seats, &seat_id(&seats, "A", "3")), "blocked");
    assert_eq!(status_of(&seats, &seat_id(&seats, "A", "1")), "available");

    // Bad maps name the seat; nothing is stored.
    let mut dup = seat_map(&tt, 1, 3, None);
    dup["sections"][0]["rows"][0]["seats"][2]["label"] = json!("2");
    let mut unknown_type = seat_map(&tt, 1, 3, None);
    unknown_type["sections"][0]["rows"][0]["seats"][1]["ticket_type_id"] =
        json!(theirs.ticket_type);
    let mut bad_flag = seat_map(&tt, 1, 3, None);
    bad_flag["sections"][0]["rows"][0]["seats"][0]["flags"] = json!(["vip"]);
    let mut dup_row = seat_map(&tt, 2, 3, None);
    dup_row["sections"][0]["rows"][1]["label"] = json!("A");
    // An unknown flag is refused with the rest of a malformed body.
    let r = put_map(&t, &org, &event, &bad_flag).await;
    assert!(matches!(r.status().as_u16(), 400 | 422), "{}", r.status());
    for (map, field) in [
        (dup, "sections[0].rows[0].seats[2].label"),
        (unknown_type, "sections[0].rows[0].seats[1].ticket_type_id"),
        (dup_row, "sections[0].rows[1].label"),
    ] {
        let v = problem(put_map(&t, &org, &event, &map).await, 422, "validation").await;
        assert!(
            v["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{field}: {v}"
        );
    }
    for body in [
        json!({"sections": "no"}),
        json!({"sections": [{"name": "S", "rows": [{"label": "A", "seats": [{"label": "1", "x": "a", "y": 0, "ticket_type_id": tt}]}]}]}),
        json!({"sections": [{"name": "S", "rows": [{"label": "A", "seats": [{"label": "1", "x": 0, "y": 0, "ticket_type_id": "nope"}]}]}]}),
    ] {
        let r = put_map(&t, &org, &event, &body).await;
        assert!(matches!(r.status().as_u16(), 400 | 422), "{}", r.status());
    }
    assert_eq!(seats_of(&t, &org, &event).await.len(), 20, "unchanged");
    // Another tenant's event: 404.
    problem(
        put_map(
            &t,
            &org,
            &theirs,
            &seat_map(&theirs.ticket_type, 1, 1, None),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    t.stop().await;
}

both!(a_seat_is_held_once_and_its_ticket_carries_it);
async fn a_seat_is_held_once_and_its_ticket_carries_it(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 40).await;
    let tt = event.ticket_type.clone();
    let ga = add_type(&t, &org, &event, "Standing", 100).await;
    assert_eq!(
        put_map(&t, &org, &event, &seat_map(&tt, 4, 10, Some((0, 9))))
            .await
            .status(),
        200
    );
    let seats = seats_of(&t, &org, &event).await;
    let (a1, a2) = (seat_id(&seats, "A", "1"), seat_id(&seats, "A", "2"));
    let hold_seats = |body: Value| {
        let t = &t;
        let path = format!("/api/v1/store/{}/events/{}/holds", org.slug, event.id);
        async move { t.post(&path, None, body).await }
    };
    // Two seats and two standing tickets in one hold.
    let r =
        hold_seats(json!({"seats": [a1, a2], "items": [{"ticket_type_id": ga, "quantity": 2}]}))
            .await;
    let status = r.status();
    let h: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{h}");
    let held: Vec<&str> = h["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(held, ["1", "2"]);
    assert_eq!(h["seats"][0]["row"], "A");
    assert_eq!(h["seats"][0]["section"], "Stalls");
    // Taken, blocked: 409 seat_unavailable. Unknown, twice, a seated type
    // as items, both ways at once: 422.
    problem(
        hold_seats(json!({"seats": [a2]})).await,
        409,
        "seat_unavailable",
    )
    .await;
    problem(
        hold_seats(json!({"seats": [seat_id(&seats, "A", "10")]})).await,
        409,
        "seat_unavailable",
    )
    .await;
    for (body, field) in [
        (json!({"seats": ["no-such-seat"]}), "seats[0]"),
        (
            json!({"seats": [seat_id(&seats, "B", "1"), seat_id(&seats, "B", "1")]}),
            "seats[1]",
        ),
        (
            json!({"items": [{"ticket_type_id": tt, "quantity": 1}]}),
            "items[0].ticket_type_id",
        ),
        (json!({"seats": []}), "seats"),
        (
            json!({"seats": [seat_id(&seats, "B", "1")], "best_available": {"ticket_type_id": tt, "quantity": 1}}),
            "best_available",
        ),
        (
            json!({"best_available": {"ticket_type_id": ga, "quantity": 1}}),
            "best_available.ticket_type_id",
        ),
        (
            json!({"best_available": {"ticket_type_id": tt, "quantity": 0}}),
            "best_available.quantity",
        ),
        (
            json!({"best_available": {"ticket_type_id": tt, "quantity": 1000000000}}),
            "best_available.quantity",
        ),
    ] {
        let v = problem(hold_seats(body.clone()).await, 422, "validation").await;
        assert!(
            v["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{body} → {v}"
        );
    }
    let seats = seats_of(&t, &org, &event).await;
    assert_eq!(status_of(&seats, &a1), "held");
    // Checked out: the tickets carry their seats; the seats are sold.
    let o = t
        .checkout(&org, h["id"].as_str().unwrap(), None, "sit@example.com")
        .await;
    assert_eq!(o.status(), 201);
    let o: Value = o.json().await.unwrap();
    let mut sat: Vec<String> = o["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|tk| tk["seat"]["id"].as_str().map(str::to_string))
        .collect();
    sat.sort();
    let mut want = vec![a1.clone(), a2.clone()];
    want.sort();
    assert_eq!(sat, want);
    assert_eq!(o["tickets"].as_array().unwrap().len(), 4);
    let seated = o["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tk| tk["seat"]["id"] == a1)
        .unwrap();
    assert_eq!(seated["seat"]["label"], "1");
    assert_eq!(seated["seat"]["row"], "A");
    let seats = seats_of(&t, &org, &event).await;
    assert_eq!(status_of(&seats, &a1), "sold");

    // Best available: three together, in the front row (A has 3–9 free).
    let r = hold_seats(json!({"best_available": {"ticket_type_id": tt, "quantity": 3}})).await;
    assert_eq!(r.status(), 201);
    let b: Value = r.json().await.unwrap();
    let rows: std::collections::BTreeSet<&str> = b["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["row"].as_str().unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{b}");
    let mut labels: Vec<i64> = b["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap().parse().unwrap())
        .collect();
    labels.sort();
    assert!(labels.windows(2).all(|w| w[1] == w[0] + 1), "{labels:?}");
    // A held seat cannot leave the map.
    problem(
        put_map(&t, &org, &event, &seat_map(&tt, 4, 10, Some((0, 0)))).await,
        409,
        "conflict",
    )
    .await;
    // The hold lapses: its seats are free again; the sold ones stay sold.
    t.advance(Duration::from_secs(t.config().hold_ttl_secs as u64 + 1));
    let first = b["seats"][0]["id"].as_str().unwrap().to_string();
    t.eventually("the lapsed hold's seats free", || async {
        let seats = seats_of(&t, &org, &event).await;
        status_of(&seats, &first) == "available"
    })
    .await;
    assert_eq!(status_of(&seats_of(&t, &org, &event).await, &a1), "sold");
    assert_eq!(hold_seats(json!({"seats": [first]})).await.status(), 201);
    t.stop().await;
}

both!(buyers_race_for_seats_and_no_seat_is_sold_twice);
async fn buyers_race_for_seats_and_no_seat_is_sold_twice(backend: Backend) {
    let t = Arc::new(TestApp::spawn(backend).await);
    let org = t.signup().await;
    let event = t.event(&org, 60).await;
    let tt = event.ticket_type.clone();
    assert_eq!(
        put_map(&t, &org, &event, &seat_map(&tt, 6, 10, None))
            .await
            .status(),
        200
    );
    let ids: Vec<String> = seats_of(&t, &org, &event)
        .await
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(300));
    let mut tasks = Vec::new();
    for i in 0..300usize {
        let (t, org, event, barrier) = (t.clone(), org.clone(), event.clone(), barrier.clone());
        let body = if i % 2 == 0 {
            // Two neighbouring seats picked by hand (many want the same).
            let a = (i * 7) % 59;
            json!({"seats": [ids[a], ids[a + 1]]})
        } else {
            json!({"best_available": {"ticket_type_id": tt, "quantity": 1 + i % 3}})
        };
        let best = i % 2 == 1;
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            // A buyer told the best seats were taken meanwhile asks once
            // more, as one would on the page.
            let mut answer = (0, String::new());
            for _ in 0..2 {
                let r = t
                    .post(
                        &format!("/api/v1/store/{}/events/{}/holds", org.slug, event.id),
                        None,
                        body.clone(),
                    )
                    .await;
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap();
                answer = (status, v["type"].as_str().unwrap_or("").to_string());
                if !(best && answer.1 == "seat_unavailable") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            answer
        }));
    }
    for task in tasks {
        match task.await.unwrap() {
            (201, _) => {}
            (409, k) if k == "sold_out" || k == "seat_unavailable" => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // The database: each live hold claims exactly the seats it counts, no
    // more seats are taken than there are, and the counter agrees.
    let claims = t
        .count(
            "SELECT COUNT(*) FROM seat_claims WHERE event_id = $1",
            &event.id,
        )
        .await;
    let counted = taken(&t, &[&tt]).await;
    assert_eq!(claims, counted, "claims and the ledger disagree");
    assert!(claims <= 60);
    // Utilization, not the invariant: on a quiet machine every run sells 55
    // or more; with the whole suite running beside it seats stay marked in
    // flight longer (runs sold 42 and 49 before best-available buyers asked
    // twice).
    assert!(
        claims >= 50,
        "{claims} of 60 seats taken under heavy demand"
    );
    let mismatched = t
        .count(
            "SELECT COUNT(*) FROM holds h WHERE h.event_id = $1 AND h.status = 'active' AND
               (SELECT COUNT(*) FROM seat_claims c WHERE c.org_id = h.org_id AND c.hold_id = h.id) <>
               (SELECT COALESCE(SUM(i.quantity), 0) FROM hold_items i WHERE i.org_id = h.org_id AND i.hold_id = h.id)",
            &event.id,
        )
        .await;
    assert_eq!(mismatched, 0);
    let left = available(&t, &org, &event).await[&tt];
    assert_eq!(left, 60 - counted);
    t.eventually("the board agrees", || async {
        seats_of(&t, &org, &event)
            .await
            .iter()
            .filter(|s| s["status"] == "available")
            .count() as i64
            == 60 - claims
    })
    .await;
    Arc::try_unwrap(t).ok().expect("sole owner").stop().await;
}

// The contention story: 2,000 buyers at once for 300 seats (some
// by hand, some best available) and general admission under a shared
// quota, with a voucher of limited use; a third of what is held is
// checked out, the rest lapses. Judged by the database afterwards, not by
// the replies: no seat twice, every limit kept, every lapsed hold given
// back once.
both!(two_thousand_buyers_mix_seats_quotas_and_vouchers);
async fn two_thousand_buyers_mix_seats_quotas_and_vouchers(backend: Backend) {
    let t = Arc::new(TestApp::spawn(backend).await);
    let org = t.signup().await;
    let event = t.event(&org, 300).await;
    let s = event.ticket_type.clone();
    let g1 = add_type(&t, &org, &event, "Floor early", 400).await;
    let g2 = add_type(&t, &org, &event, "Floor", 400).await;
    quota(&t, &org, &event, 250, &[&g1, &g2]).await;
    let v = voucher(
        &t,
        &org,
        &event,
        json!({"code": "HALF", "percent_off": 50, "max_uses": 40, "ticket_type_ids": [s, g1]}),
    )
    .await;
    let vid = v["id"].as_str().unwrap().to_string();
    assert_eq!(
        put_map(&t, &org, &event, &seat_map(&s, 15, 20, None))
            .await
            .status(),
        200
    );
    let ids: Vec<String> = seats_of(&t, &org, &event)
        .await
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    let path = format!("/api/v1/store/{}/events/{}/holds", org.slug, event.id);
    let barrier = Arc::new(tokio::sync::Barrier::new(2000));
    let mut tasks = Vec::new();
    for i in 0..2000usize {
        let (t, org, path, barrier) = (t.clone(), org.clone(), path.clone(), barrier.clone());
        let body = match i % 5 {
            0 => {
                let a = (i * 13) % 299;
                json!({"seats": [ids[a], ids[a + 1]]})
            }
            1 => json!({"best_available": {"ticket_type_id": s, "quantity": 1 + i % 3}}),
            2 => json!({"best_available": {"ticket_type_id": s, "quantity": 2}, "voucher": "half"}),
            3 => {
                json!({"items": [{"ticket_type_id": g1, "quantity": 1 + i % 2}], "voucher": "HALF"})
            }
            _ => json!({"items": [{"ticket_type_id": g2, "quantity": 1 + i % 2}]}),
        };
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let r = t.post(&path, None, body).await;
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            // A third of the holds made are bought.
            if status == 201 && i % 3 == 0 {
                let o = t
                    .checkout(
                        &org,
                        v["id"].as_str().unwrap(),
                        None,
                        &format!("b{i}@example.com"),
                    )
                    .await;
                assert_eq!(o.status(), 201);
            }
            (status, v["type"].as_str().unwrap_or("").to_string())
        }));
    }
    let mut made = 0;
    for task in tasks {
        match task.await.unwrap() {
            (201, _) => made += 1,
            (409, k) if k == "sold_out" || k == "seat_unavailable" => {}
            (422, k) if k == "validation" => {} // the voucher used up
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(made > 100, "only {made} holds made");
    let (seated, floor, used) = mixed_invariants(&t, &event, &s, &g1, &g2, &vid).await;
    assert!(seated >= 260, "{seated} of 300 seats taken");
    assert!(floor >= 240, "{floor} of the 250 floor taken");
    // (The voucher's uses may go unused: its floor tickets compete with
    // the others for the quota, and its seats with every seat buyer.)
    let _ = used;
    // Everything not bought lapses, and comes back once.
    t.advance(Duration::from_secs(t.config().hold_ttl_secs as u64 + 1));
    t.eventually("every unbought hold released", || async {
        t.count(
            "SELECT COUNT(*) FROM holds WHERE event_id = $1 AND status = 'active'",
            &event.id,
        )
        .await
            == 0
    })
    .await;
    let (seated, floor, used) = mixed_invariants(&t, &event, &s, &g1, &g2, &vid).await;
    t.eventually("the counters back to the ledger", || async {
        let left = available(&t, &org, &event).await;
        left[&s] == 300 - seated && left[&g1] == (400 - taken(&t, &[&g1]).await).min(250 - floor)
    })
    .await;
    let free = seats_of(&t, &org, &event)
        .await
        .iter()
        .filter(|x| x["status"] == "available")
        .count() as i64;
    assert_eq!(free, 300 - seated);
    // The voucher's lapsed uses are back: exactly 40 − used more.
    let mut more = 0;
    loop {
        let r = hold_with(&t, &org, &event, &[(&g1, 1)], "HALF").await;
        if r.status() != 201 {
            break;
        }
        more += 1;
    }
    assert_eq!(more, 40 - used);
    Arc::try_unwrap(t).ok().expect("sole owner").stop().await;
}

/// The mixed story's invariants, from the database: (seats taken, floor
/// taken, voucher uses).
async fn mixed_invariants(
    t: &TestApp,
    event: &Event,
    s: &str,
    g1: &str,
    g2: &str,
    vid: &str,
) -> (i64, i64, i64) {
    let seated = taken(t, &[s]).await;
    let claims = t
        .count(
            "SELECT COUNT(*) FROM seat_claims WHERE event_id = $1",
            &event.id,
        )
        .await;
    assert_eq!(
        claims, seated,
        "a seated ticket without its seat, or the reverse"
    );
    assert!(seated <= 300);
    let (ev, st): (uuid::Uuid, uuid::Uuid) = (event.id.parse().unwrap(), s.parse().unwrap());
    let per_hold: i64 = kernel::db_run!(t.app().db(), p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM holds h WHERE h.event_id = $1 AND h.status IN ('active', 'consumed') AND
               (SELECT COUNT(*) FROM seat_claims c WHERE c.org_id = h.org_id AND c.hold_id = h.id) <>
               (SELECT COALESCE(SUM(i.quantity), 0) FROM hold_items i
                WHERE i.org_id = h.org_id AND i.hold_id = h.id AND i.ticket_type_id = $2)")
            .bind(ev).bind(st).fetch_one(p).await)
        .unwrap();
    assert_eq!(
        per_hold, 0,
        "a hold's claims differ from its seated quantity"
    );
    let floor = taken(t, &[g1, g2]).await;
    assert!(floor <= 250, "quota exceeded: {floor}");
    let used = uses(t, vid).await;
    assert!(used <= 40, "voucher over its limit: {used}");
    (seated, floor, used)
}

both!(the_storefront_says_where_the_sale_stands);
async fn the_storefront_says_where_the_sale_stands(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let now = t.app().kernel.now();
    let at = |secs: i64| kernel::clock::rfc3339(now + secs * 1_000_000);
    let (hour, day) = (3600, 86_400);
    let o = |p: &str| format!("/api/v1/orgs/{}{p}", org.slug);
    let e: Value = t
        .post(
            &o("/events"),
            Some(&org.key),
            json!({"name": "Later", "starts_at": at(2 * day), "ends_at": at(3 * day), "timezone": "Africa/Johannesburg"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = e["id"].as_str().unwrap().to_string();
    let tt: Value = t
        .post(
            &o(&format!("/events/{id}/ticket-types")),
            Some(&org.key),
            json!({"name": "GA", "price_cents": 0, "currency": "ZAR", "capacity": 2,
                   "sale_starts_at": at(hour), "sale_ends_at": at(day)}),
        )
        .await
        .json()
        .await
        .unwrap();
    t.post(
        &o(&format!("/events/{id}/publish")),
        Some(&org.key),
        json!({}),
    )
    .await;
    let state = || async {
        let s: Value = t
            .get(&format!("/api/v1/store/{}/events/{id}", org.slug), None)
            .await
            .json()
            .await
            .unwrap();
        s["sale_state"].as_str().unwrap().to_string()
    };
    assert_eq!(state().await, "not_yet_on_sale");
    t.advance(Duration::from_secs(hour as u64 + 1));
    assert_eq!(state().await, "on_sale");
    let r = t
        .post(
            &format!("/api/v1/store/{}/events/{id}/holds", org.slug),
            None,
            json!({"items": [{"ticket_type_id": tt["id"], "quantity": 2}]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(state().await, "sold_out");
    t.advance(Duration::from_secs(day as u64));
    assert_eq!(state().await, "sales_closed");
    t.advance(Duration::from_secs(2 * day as u64));
    assert_eq!(state().await, "ended");
    t.stop().await;
}
