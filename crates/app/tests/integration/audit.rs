//! The audit log: changes are recorded with who, what, from where and in
//! which request; owners read them with filters and cursors; the hash chain
//! finds an edited, a deleted and a truncated entry.

use serde_json::{Value, json};

use crate::{both, support::*};

async fn entries(t: &TestApp, org: &Org, query: &str) -> Value {
    t.get(
        &format!("/api/v1/orgs/{}/audit{query}", org.slug),
        Some(&org.key),
    )
    .await
    .json()
    .await
    .unwrap()
}

both!(changes_are_recorded_sealed_and_tampering_is_found);
async fn changes_are_recorded_sealed_and_tampering_is_found(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| c.webhooks_allow_private = true).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await; // create, add a ticket type, publish
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/webhooks", org.slug),
            Some(&org.key),
            json!({"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let hook: Value = r.json().await.unwrap();

    t.eventually("five entries, sealed", || async {
        let v = entries(&t, &org, "").await;
        v["data"]
            .as_array()
            .is_some_and(|d| d.len() == 5 && d.iter().all(|e| e["seq"].is_i64()))
    })
    .await;
    let v = entries(&t, &org, "").await;
    let actions: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "webhook.create",
            "event.publish",
            "ticket_type.create",
            "event.create",
            "org.create"
        ]
    );
    let created = &v["data"][3];
    assert_eq!(created["actor_kind"], "api_key");
    assert!(created["actor_id"].is_string());
    assert_eq!(created["object_type"], "event");
    assert_eq!(created["object_id"], event.id.as_str());
    assert_eq!(created["client_ip"], "127.0.0.1");
    assert!(
        created["request_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert_eq!(created["after"]["name"], "Test Night");
    assert_eq!(v["data"][1]["before"]["status"], "draft");
    assert_eq!(v["data"][0]["after"]["url"], "http://127.0.0.1:9/hook");
    assert!(
        v["data"][0]["after"].get("secret").is_none(),
        "no secret in the log"
    );

    // Filters and cursors.
    let only = entries(&t, &org, "?object_type=webhook").await;
    assert_eq!(only["data"].as_array().unwrap().len(), 1);
    assert_eq!(only["data"][0]["object_id"], hook["id"]);
    let page = entries(&t, &org, "?limit=3").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = entries(&t, &org, &format!("?limit=3&cursor={cursor}")).await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 2);
    assert_eq!(rest["data"][0]["action"], "event.create");
    assert_eq!(rest["data"][1]["action"], "org.create");
    assert_eq!(rest["data"][1]["actor_kind"], "user");
    // Another org sees none of it.
    let other = t.signup().await;
    let r = t
        .get(
            &format!("/api/v1/orgs/{}/audit", org.slug),
            Some(&other.key),
        )
        .await;
    problem(r, 404, "not_found").await;

    let db = t.app().db().clone();
    let org_id: uuid::Uuid = kernel::db_run!(&db, p => sqlx::query_scalar("SELECT id FROM orgs WHERE slug = $1").bind(&org.slug).fetch_one(p).await).unwrap();
    let verdict = kernel::audit::verify(&db, Some(org_id)).await.unwrap();
    assert_eq!(verdict[0].entries, 5);
    assert!(verdict[0].problems.is_empty(), "{:?}", verdict[0].problems);

    // An edit is found.
    let sql = "UPDATE audit_log SET after = '{\"name\":\"Something else\"}' WHERE org_id = $1 AND seq = 1";
    kernel::db_run!(&db, p => sqlx::query(sql).bind(org_id).execute(p).await.map(|_| ())).unwrap();
    let verdict = kernel::audit::verify(&db, Some(org_id)).await.unwrap();
    assert!(
        verdict[0]
            .problems
            .iter()
            .any(|p| p.contains("entry 1") && p.contains("changed")),
        "{:?}",
        verdict[0].problems
    );

    // So is a deletion in the middle, and one at the end.
    let sql = "DELETE FROM audit_log WHERE org_id = $1 AND seq = 2";
    kernel::db_run!(&db, p => sqlx::query(sql).bind(org_id).execute(p).await.map(|_| ())).unwrap();
    let verdict = kernel::audit::verify(&db, Some(org_id)).await.unwrap();
    assert!(
        verdict[0].problems.iter().any(|p| p.contains("missing")),
        "{:?}",
        verdict[0].problems
    );
    let sql = "DELETE FROM audit_log WHERE org_id = $1 AND seq = 5";
    kernel::db_run!(&db, p => sqlx::query(sql).bind(org_id).execute(p).await.map(|_| ())).unwrap();
    let verdict = kernel::audit::verify(&db, Some(org_id)).await.unwrap();
    assert!(
        verdict[0]
            .problems
            .iter()
            .any(|p| p.contains("removed from the end")),
        "{:?}",
        verdict[0].problems
    );
    // The other org's chain is untouched.
    let all = kernel::audit::verify(&db, None).await.unwrap();
    assert!(
        all.iter()
            .filter(|v| v.org != org_id)
            .all(|v| v.problems.is_empty())
    );
    t.stop().await;
}

/// Every mutating operation of the OpenAPI document, and what records it:
/// the audit log (its action) for every change by a user, an API key or a
/// device; for a buyer's holds and checkouts (no credential, many), their
/// own ledgers. A new mutating route without a row here fails the test.
const MUTATIONS: &[(&str, &str, Record)] = &[
    ("post", "/api/v1/signup", Record::Audit("org.create")),
    (
        "post",
        "/api/v1/orgs/{org}/events",
        Record::Audit("event.create"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/events/{event_id}/ticket-types",
        Record::Audit("ticket_type.create"),
    ),
    (
        "patch",
        "/api/v1/orgs/{org}/events/{event_id}/ticket-types/{ticket_type_id}",
        Record::Audit("ticket_type.update"),
    ),
    (
        "put",
        "/api/v1/orgs/{org}/events/{event_id}/transfer-policy",
        Record::Audit("event.transfer_policy"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/events/{event_id}/dates",
        Record::Audit("event.add_date"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/venue-layouts",
        Record::Audit("layout.create"),
    ),
    (
        "put",
        "/api/v1/orgs/{org}/venue-layouts/{layout_id}",
        Record::Audit("layout.update"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/events/{event_id}/seating/from-layout",
        Record::Audit("seating.update"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/events/{event_id}/seating/save-as-layout",
        Record::Audit("layout.create"),
    ),
    (
        "post",
        "/api/v1/store/{org}/events/{event_id}/waiting-list",
        Record::Ledger("waiting_list (the line itself)"),
    ),
    (
        "post",
        "/api/v1/store/{org}/waiting-list/{entry_id}/leave",
        Record::Ledger("waiting_list (the entry's status: left)"),
    ),
    (
        "post",
        "/api/v1/store/{org}/tickets/{ticket_id}/transfer",
        Record::Ledger(
            "the tickets (the old one's transferred_at, the new one's replaces) and ticket.transferred",
        ),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/events/{event_id}/publish",
        Record::Audit("event.publish"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/events/{event_id}/quotas",
        Record::Audit("quota.create"),
    ),
    (
        "delete",
        "/api/v1/orgs/{org}/events/{event_id}/quotas/{quota_id}",
        Record::Audit("quota.delete"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/events/{event_id}/vouchers",
        Record::Audit("voucher.create"),
    ),
    (
        "put",
        "/api/v1/orgs/{org}/events/{event_id}/seating",
        Record::Audit("seating.update"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/events/{event_id}/vouchers/bulk",
        Record::Audit("voucher.create"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/events/{event_id}/exports",
        Record::Audit("export.create"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/devices",
        Record::Audit("device.create"),
    ),
    ("post", "/api/v1/devices/pair", Record::Audit("device.pair")),
    (
        "patch",
        "/api/v1/orgs/{org}/devices/{device_id}",
        Record::Audit("device.update"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/devices/{device_id}/revoke",
        Record::Audit("device.revoke"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/devices/{device_id}/pairing",
        Record::Audit("device.repair"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/events/{event_id}/gates",
        Record::Audit("gate.create"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/signing-keys/rotate",
        Record::Audit("signing_key.rotate"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/signing-keys/{kid}/retire",
        Record::Audit("signing_key.retire"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/tickets/{ticket_id}/reissue",
        Record::Audit("ticket.reissue"),
    ),
    (
        "patch",
        "/api/v1/orgs/{org}/events/{event_id}/gates/{gate_id}",
        Record::Audit("gate.update"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/events/{event_id}/tickets/{ticket_id}/check-in",
        Record::Audit("ticket.check_in"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/events/{event_id}/tickets/{ticket_id}/undo-admission",
        Record::Audit("ticket.undo_admission"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/webhooks",
        Record::Audit("webhook.create"),
    ),
    (
        "delete",
        "/api/v1/orgs/{org}/webhooks/{webhook_id}",
        Record::Audit("webhook.delete"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/webhooks/{webhook_id}/rotate",
        Record::Audit("webhook.rotate_secret"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/webhooks/{webhook_id}/enable",
        Record::Audit("webhook.enable"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/webhooks/{webhook_id}/disable",
        Record::Audit("webhook.disable"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
        Record::Audit("webhook.redeliver"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/jobs/{job_id}/retry",
        Record::Audit("job.retry"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/jobs/{job_id}/discard",
        Record::Audit("job.discard"),
    ),
    (
        "put",
        "/api/v1/orgs/{org}/mail/settings",
        Record::Audit("mail.settings_update"),
    ),
    (
        "post",
        "/api/v1/store/{org}/events/{event_id}/holds",
        Record::Ledger("holds (the inventory ledger)"),
    ),
    (
        "post",
        "/api/v1/store/{org}/holds/{hold_id}/checkout",
        Record::Ledger("orders and their events"),
    ),
    ("post", "/api/v1/scan", Record::Audit("ticket.admit")),
    (
        "post",
        "/api/v1/orgs/{org}/orders/{order_id}/mark-paid",
        Record::Audit("order.mark_paid"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/orders/{order_id}/refunds",
        Record::Audit("order.refund"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/orders/{order_id}/cancel",
        Record::Audit("order.cancel"),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/events/{event_id}/cancel",
        Record::Audit("event.cancel"),
    ),
    (
        "put",
        "/api/v1/orgs/{org}/money/settings",
        Record::Audit("money.settings_update"),
    ),
    (
        "put",
        "/api/v1/orgs/{org}/events/{event_id}/sales-limits",
        Record::Audit("event.sales_limits_update"),
    ),
    (
        "put",
        "/api/v1/orgs/{org}/events/{event_id}/waiting-room",
        Record::Audit("event.waiting_room_update"),
    ),
    (
        "post",
        "/api/v1/store/{org}/events/{event_id}/queue",
        Record::Ledger("the room's line (Redis or the process): a visitor's place"),
    ),
    (
        "post",
        "/api/v1/store/{org}/orders/lookup",
        Record::Ledger("order_lookup_requests and the order.lookup_requested event"),
    ),
    (
        "post",
        "/api/v1/payments/stripe/webhook",
        Record::Ledger("the payment it applies and provider_events"),
    ),
];

#[derive(Debug, Clone, Copy)]
enum Record {
    Audit(&'static str),
    Ledger(&'static str),
}

both!(every_mutating_route_leaves_a_record);
async fn every_mutating_route_leaves_a_record(backend: Backend) {
    let sink = HttpSink::start(vec![]).await;
    let t = TestApp::spawn_with(backend, |c| c.webhooks_allow_private = true).await;

    // The table matches the document: every mutating operation, no more.
    let doc: Value = t.get("/api/openapi.json", None).await.json().await.unwrap();
    let mut documented = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ["post", "put", "patch", "delete"] {
            if ops.get(method).is_some() {
                documented.push(format!("{method} {path}"));
            }
        }
    }
    let mut listed: Vec<String> = MUTATIONS
        .iter()
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    documented.sort();
    listed.sort();
    assert_eq!(
        documented, listed,
        "every mutating operation has a row in MUTATIONS"
    );

    // Every operation once, as an integrator would call it.
    let org = t.signup().await;
    let event = t.event(&org, 10).await; // create, ticket type, publish
    let o = |p: &str| format!("/api/v1/orgs/{}{p}", org.slug);
    let ok = |r: reqwest::Response, what: &str| {
        assert!(r.status().is_success(), "{what}: {}", r.status());
        r
    };
    ok(
        t.api
            .client
            .patch(t.url(&o(&format!(
                "/events/{}/ticket-types/{}",
                event.id, event.ticket_type
            ))))
            .bearer_auth(&org.key)
            .json(&json!({"capacity": 12, "sort_order": 1}))
            .send()
            .await
            .unwrap(),
        "update ticket type",
    );
    ok(
        t.api
            .client
            .put(t.url(&o(&format!("/events/{}/transfer-policy", event.id))))
            .bearer_auth(&org.key)
            .json(&json!({"allowed": true, "deadline": null}))
            .send()
            .await
            .unwrap(),
        "transfer policy",
    );
    let series: Value = ok(
        t.post(
            &o("/events"),
            Some(&org.key),
            json!({"name": "Run", "starts_at": "2030-06-01T18:00:00Z", "ends_at": "2030-06-30T18:00:00Z",
                   "timezone": "UTC", "series": true}),
        )
        .await,
        "series",
    )
    .json()
    .await
    .unwrap();
    ok(
        t.post(
            &o(&format!("/events/{}/dates", series["id"].as_str().unwrap())),
            Some(&org.key),
            json!({"starts_at": "2030-06-02T18:00:00Z", "ends_at": "2030-06-02T21:00:00Z"}),
        )
        .await,
        "date",
    );
    let hall = json!({"name": "Hall", "sections": [{"name": "Floor", "rows": [{"label": "A", "seats": [
        {"label": "1", "x": 0.0, "y": 0.0, "category": "Seats"}]}]}]});
    let layout: Value = ok(
        t.post(&o("/venue-layouts"), Some(&org.key), hall.clone())
            .await,
        "layout",
    )
    .json()
    .await
    .unwrap();
    let layout_id = layout["id"].as_str().unwrap();
    ok(
        t.api
            .client
            .put(t.url(&o(&format!("/venue-layouts/{layout_id}"))))
            .bearer_auth(&org.key)
            .json(&hall)
            .send()
            .await
            .unwrap(),
        "layout replaced",
    );
    let seated = t.event(&org, 5).await;
    ok(
        t.post(
            &o(&format!("/events/{}/seating/from-layout", seated.id)),
            Some(&org.key),
            json!({"layout_id": layout_id, "ticket_types": {"Seats": seated.ticket_type}}),
        )
        .await,
        "from layout",
    );
    ok(
        t.post(
            &o(&format!("/events/{}/seating/save-as-layout", seated.id)),
            Some(&org.key),
            json!({"name": "Kept"}),
        )
        .await,
        "save as layout",
    );
    let quota: Value = ok(
        t.post(
            &o(&format!("/events/{}/quotas", event.id)),
            Some(&org.key),
            json!({"name": "Floor", "capacity": 100, "ticket_type_ids": [event.ticket_type]}),
        )
        .await,
        "quota",
    )
    .json()
    .await
    .unwrap();
    ok(
        t.api
            .client
            .delete(t.url(&o(&format!(
                "/events/{}/quotas/{}",
                event.id,
                quota["id"].as_str().unwrap()
            ))))
            .bearer_auth(&org.key)
            .send()
            .await
            .unwrap(),
        "delete quota",
    );
    ok(
        t.post(
            &o(&format!("/events/{}/vouchers", event.id)),
            Some(&org.key),
            json!({"code": "AUDITED", "percent_off": 10, "max_uses": 1}),
        )
        .await,
        "voucher",
    );
    ok(
        t.post(
            &o(&format!("/events/{}/vouchers/bulk", event.id)),
            Some(&org.key),
            json!({"count": 2, "percent_off": 10, "max_uses": 1}),
        )
        .await,
        "vouchers",
    );
    let second = t.event(&org, 10).await;
    ok(
        t.api
            .client
            .put(t.url(&o(&format!("/events/{}/seating", second.id))))
            .bearer_auth(&org.key)
            .json(
                &json!({"sections": [{"name": "Stalls", "rows": [{"label": "A", "seats": [
                {"label": "1", "x": 0, "y": 0, "ticket_type_id": second.ticket_type}]}]}]}),
            )
            .send()
            .await
            .unwrap(),
        "seating",
    );
    ok(
        t.post(
            &o(&format!("/events/{}/exports", event.id)),
            Some(&org.key),
            json!({"kind": "orders", "format": "csv"}),
        )
        .await,
        "export",
    );
    let device: Value = ok(
        t.post(
            &o("/devices"),
            Some(&org.key),
            json!({"name": "Gate 1", "event_ids": [event.id]}),
        )
        .await,
        "device",
    )
    .json()
    .await
    .unwrap();
    let paired: Value = ok(
        t.post(
            "/api/v1/devices/pair",
            None,
            json!({"pairing_code": device["pairing_code"]}),
        )
        .await,
        "pair",
    )
    .json()
    .await
    .unwrap();
    let hook: Value = ok(
        t.post(
            &o("/webhooks"),
            Some(&org.key),
            json!({"url": sink.url, "event_types": ["*"]}),
        )
        .await,
        "webhook",
    )
    .json()
    .await
    .unwrap();
    let hook = hook["id"].as_str().unwrap().to_string();
    ok(
        t.post(
            &o(&format!("/webhooks/{hook}/rotate")),
            Some(&org.key),
            json!({}),
        )
        .await,
        "rotate",
    );
    let order = t.buy(&org, &event, 1).await; // an order: deliveries to redeliver
    let token = paired["device_token"].as_str().unwrap();
    let code = order["tickets"][0]["code"].as_str().unwrap();
    assert_eq!(t.scan(token, code, &event.id).await["result"], "admitted");
    // A repeat changes nothing and records nothing.
    assert_eq!(
        t.scan(token, code, &event.id).await["result"],
        "already_admitted"
    );
    let delivery = {
        let mut id = None;
        for _ in 0..100 {
            let v: Value = t
                .get(&o(&format!("/webhooks/{hook}/deliveries")), Some(&org.key))
                .await
                .json()
                .await
                .unwrap();
            if let Some(d) = v["data"][0]["id"].as_str() {
                id = Some(d.to_string());
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        id.expect("a delivery")
    };
    ok(
        t.post(
            &o(&format!("/webhooks/{hook}/deliveries/{delivery}/retry")),
            Some(&org.key),
            json!({}),
        )
        .await,
        "redeliver",
    );
    ok(
        t.post(
            &o(&format!("/webhooks/{hook}/disable")),
            Some(&org.key),
            json!({}),
        )
        .await,
        "disable",
    );
    ok(
        t.post(
            &o(&format!("/webhooks/{hook}/enable")),
            Some(&org.key),
            json!({}),
        )
        .await,
        "enable",
    );
    let r = t
        .api
        .client
        .delete(t.url(&o(&format!("/webhooks/{hook}"))))
        .bearer_auth(&org.key)
        .send()
        .await
        .unwrap();
    ok(r, "delete");
    // A waiting job of the org (the event's reminders): give up on it, then
    // run it again.
    let jobs: Value = t
        .get(&o("/jobs?state=available&queue=mail"), Some(&org.key))
        .await
        .json()
        .await
        .unwrap();
    // The reminders job waits for its time; a mail due now may be claimed
    // by a worker between the listing and the discard.
    let job = jobs["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "mail.reminders")
        .and_then(|j| j["id"].as_str())
        .expect("the reminders job")
        .to_string();
    ok(
        t.post(
            &o(&format!("/jobs/{job}/discard")),
            Some(&org.key),
            json!({}),
        )
        .await,
        "discard",
    );
    ok(
        t.post(&o(&format!("/jobs/{job}/retry")), Some(&org.key), json!({}))
            .await,
        "retry",
    );
    let r = t
        .api
        .client
        .put(t.url(&o("/mail/settings")))
        .bearer_auth(&org.key)
        .json(&json!({"reminder_hours": 12}))
        .send()
        .await
        .unwrap();
    ok(r, "mail settings");
    let r = t
        .api
        .client
        .put(t.url(&o("/money/settings")))
        .bearer_auth(&org.key)
        .json(
            &json!({"currency": "ZAR", "tax_bp": 1500, "tax_name": "VAT",
            "fee_per_ticket_cents": 0, "invoice_prefix": "INV"}),
        )
        .send()
        .await
        .unwrap();
    ok(r, "money settings");
    let r = t
        .api
        .client
        .put(t.url(&o(&format!("/events/{}/sales-limits", event.id))))
        .bearer_auth(&org.key)
        .json(&json!({"max_tickets_per_order": 8, "max_tickets_per_buyer": null}))
        .send()
        .await
        .unwrap();
    ok(r, "sales limits");
    let r = t
        .api
        .client
        .put(t.url(&o(&format!("/events/{}/waiting-room", event.id))))
        .bearer_auth(&org.key)
        .json(&json!({"enabled": false, "per_minute": 600}))
        .send()
        .await
        .unwrap();
    ok(r, "waiting room");
    // Money: an EFT order marked paid, refunded in part; another cancelled.
    let priced = t
        .try_event(&org, &EventSpec::capacity(10).priced(5000))
        .await
        .unwrap();
    let eft = t.buy(&org, &priced, 2).await;
    let eft_id = eft["id"].as_str().unwrap();
    ok(
        t.post(
            &o(&format!("/orders/{eft_id}/mark-paid")),
            Some(&org.key),
            json!({}),
        )
        .await,
        "mark paid",
    );
    ok(
        t.post(
            &o(&format!("/orders/{eft_id}/refunds")),
            Some(&org.key),
            json!({"amount_cents": 1000, "reason": "one seat was broken"}),
        )
        .await,
        "refund",
    );
    let other = t.buy(&org, &priced, 1).await;
    ok(
        t.post(
            &o(&format!("/orders/{}/cancel", other["id"].as_str().unwrap())),
            Some(&org.key),
            json!({}),
        )
        .await,
        "cancel",
    );
    ok(
        t.post(
            &o(&format!("/events/{}/cancel", priced.id)),
            Some(&org.key),
            json!({}),
        )
        .await,
        "cancel event",
    );

    // Gates and devices.
    let gate: Value = ok(
        t.post(
            &o(&format!("/events/{}/gates", event.id)),
            Some(&org.key),
            json!({"name": "North"}),
        )
        .await,
        "gate",
    )
    .json()
    .await
    .unwrap();
    ok(
        t.patch(
            &o(&format!(
                "/events/{}/gates/{}",
                event.id,
                gate["id"].as_str().unwrap()
            )),
            Some(&org.key),
            json!({"reentry": "in_out"}),
        )
        .await,
        "update gate",
    );
    let device_id = device["id"].as_str().unwrap();
    ok(
        t.patch(
            &o(&format!("/devices/{device_id}")),
            Some(&org.key),
            json!({"name": "Gate 1 (north)"}),
        )
        .await,
        "update device",
    );
    ok(
        t.post(
            &o(&format!("/devices/{device_id}/revoke")),
            Some(&org.key),
            json!({}),
        )
        .await,
        "revoke device",
    );
    ok(
        t.post(
            &o(&format!("/devices/{device_id}/pairing")),
            Some(&org.key),
            json!({}),
        )
        .await,
        "pair device again",
    );

    // The box office: a ticket checked in by hand, its admission undone.
    let walk_in = t.buy(&org, &event, 1).await;
    let walk_in = walk_in["tickets"][0]["id"].as_str().unwrap().to_string();
    ok(
        t.post(
            &o(&format!("/events/{}/tickets/{walk_in}/check-in", event.id)),
            Some(&org.key),
            json!({"reason": "flat phone"}),
        )
        .await,
        "check in",
    );
    ok(
        t.post(
            &o(&format!(
                "/events/{}/tickets/{walk_in}/undo-admission",
                event.id
            )),
            Some(&org.key),
            json!({"reason": "the wrong ticket"}),
        )
        .await,
        "undo admission",
    );

    // Keys: a ticket re-issued, the key rotated, the old one retired with
    // its tickets re-issued.
    let keep = t.buy(&org, &event, 1).await;
    let old_kid = platform::tickets::parse_code(keep["tickets"][0]["code"].as_str().unwrap())
        .unwrap()
        .kid;
    ok(
        t.post(
            &o(&format!(
                "/tickets/{}/reissue",
                keep["tickets"][0]["id"].as_str().unwrap()
            )),
            Some(&org.key),
            json!({}),
        )
        .await,
        "reissue",
    );
    ok(
        t.post(&o("/signing-keys/rotate"), Some(&org.key), json!({}))
            .await,
        "rotate",
    );
    ok(
        t.post(
            &o(&format!("/signing-keys/{old_kid}/retire")),
            Some(&org.key),
            json!({"reissue": true}),
        )
        .await,
        "retire",
    );

    // Each audited operation left its entry, in this org's log.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let v = entries(&t, &org, &format!("?limit=200{cursor}")).await;
        for e in v["data"].as_array().unwrap() {
            seen.push(e["action"].as_str().unwrap().to_string());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        seen.iter().filter(|a| *a == "ticket.admit").count(),
        1,
        "one admission, one entry"
    );
    for (m, p, record) in MUTATIONS {
        match record {
            Record::Audit(action) => {
                assert!(
                    seen.iter().any(|a| a == action),
                    "{m} {p} left no {action} entry: {seen:?}"
                )
            }
            // A buyer's hold or checkout: its ledger is the record.
            Record::Ledger(ledger) => eprintln!("{m} {p}: recorded in {ledger}"),
        }
    }
    t.stop().await;
}
