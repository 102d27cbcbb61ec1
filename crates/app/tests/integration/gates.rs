//! Gates: which ticket types a gate admits, rules that explain a refusal,
//! in/out gates counting people inside, capacity, supervisors' overrides,
//! device control and the scan log.

use serde_json::{Value, json};

use crate::{
    both,
    support::{Backend, Event, Org, TestApp, problem},
};

/// Microseconds of an RFC 3339 time (for the manual clock).
fn at(s: &str) -> i64 {
    kernel::clock::parse_rfc3339(s).expect("time")
}

async fn gate(t: &TestApp, org: &Org, event: &Event, body: Value) -> Value {
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{}/gates", org.slug, event.id),
            Some(&org.key),
            body,
        )
        .await;
    assert_eq!(r.status(), 201, "create gate");
    r.json().await.unwrap()
}

/// A paired device with these extra settings (role, gate_ids); its token.
async fn device_with(t: &TestApp, org: &Org, event: &Event, extra: Value) -> String {
    let mut body = json!({"name": "Door", "event_ids": [event.id]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/devices", org.slug),
            Some(&org.key),
            body,
        )
        .await;
    assert_eq!(r.status(), 201, "add device");
    let d: Value = r.json().await.unwrap();
    pair(t, d["pairing_code"].as_str().unwrap()).await
}

async fn pair(t: &TestApp, code: &str) -> String {
    let r = t
        .post("/api/v1/devices/pair", None, json!({"pairing_code": code}))
        .await;
    assert_eq!(r.status(), 201, "pair");
    let p: Value = r.json().await.unwrap();
    p["device_token"].as_str().unwrap().to_string()
}

async fn scan_at(t: &TestApp, device: &str, code: &str, event: &Event, extra: Value) -> Value {
    let mut body = json!({"code": code, "event_id": event.id});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = t.post("/api/v1/scan", Some(device), body).await;
    assert_eq!(r.status(), 200, "scan");
    r.json().await.unwrap()
}

fn codes(order: &Value) -> Vec<String> {
    order["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["code"].as_str().unwrap().to_string())
        .collect()
}

/// A second ticket type on the event; its id.
async fn ticket_type(t: &TestApp, org: &Org, event: &Event, name: &str) -> String {
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{}/ticket-types", org.slug, event.id),
            Some(&org.key),
            json!({"name": name, "price_cents": 0, "currency": "ZAR", "capacity": 10}),
        )
        .await;
    assert_eq!(r.status(), 201, "ticket type");
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_string()
}

async fn buy_type(t: &TestApp, org: &Org, event: &Event, tt: &str, n: i64) -> Value {
    let h = t
        .post(
            &format!("/api/v1/store/{}/events/{}/holds", org.slug, event.id),
            None,
            json!({"items": [{"ticket_type_id": tt, "quantity": n}]}),
        )
        .await;
    assert_eq!(h.status(), 201, "hold");
    let h: Value = h.json().await.unwrap();
    let o = t
        .checkout(org, h["id"].as_str().unwrap(), None, "buyer@example.com")
        .await;
    assert_eq!(o.status(), 201, "checkout");
    o.json().await.unwrap()
}

async fn scan_log(t: &TestApp, org: &Org, event: &Event, query: &str) -> Value {
    let r = t
        .get(
            &format!("/api/v1/orgs/{}/events/{}/scans{query}", org.slug, event.id),
            Some(&org.key),
        )
        .await;
    assert_eq!(r.status(), 200, "scan log");
    r.json().await.unwrap()
}

both!(a_gate_admits_its_ticket_types_and_explains_its_rule);
async fn a_gate_admits_its_ticket_types_and_explains_its_rule(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let vip = ticket_type(&t, &org, &event, "VIP").await;
    let general = codes(&t.buy(&org, &event, 2).await);
    let vips = codes(&buy_type(&t, &org, &event, &vip, 1).await);
    let vip_door = gate(
        &t,
        &org,
        &event,
        json!({"name": "VIP door", "ticket_type_ids": [vip]}),
    )
    .await;
    assert_eq!(vip_door["reentry"], "single");
    assert_eq!(vip_door["ticket_type_ids"], json!([vip]));
    // Johannesburg is UTC+2: 17:00 there is 15:00Z.
    let early = gate(
        &t,
        &org,
        &event,
        json!({"name": "Early", "rules": {"<": [{"var": "minutes_of_day"}, 1020]}}),
    )
    .await;
    assert_eq!(early["rules_text"], "only before 17:00");
    let device = t.device(&org, &[&event.id]).await;

    let wrong = scan_at(
        &t,
        &device,
        &general[0],
        &event,
        json!({"gate": vip_door["id"]}),
    )
    .await;
    assert_eq!(wrong["result"], "wrong_gate");
    assert_eq!(wrong["reason"], "this gate does not admit this ticket type");
    assert_eq!(wrong["gate_id"], vip_door["id"]);
    let ok = scan_at(
        &t,
        &device,
        &vips[0],
        &event,
        json!({"gate": vip_door["id"]}),
    )
    .await;
    assert_eq!(ok["result"], "admitted", "{ok}");

    t.clock().set(at("2030-06-01T14:30:00Z"));
    let before = scan_at(
        &t,
        &device,
        &general[0],
        &event,
        json!({"gate": early["id"]}),
    )
    .await;
    assert_eq!(before["result"], "admitted", "{before}");
    t.clock().set(at("2030-06-01T15:05:00Z"));
    let late = scan_at(
        &t,
        &device,
        &general[1],
        &event,
        json!({"gate": early["id"]}),
    )
    .await;
    assert_eq!(late["result"], "rule");
    assert_eq!(late["explanation"], "only before 17:00");
    assert!(
        late["reason"]
            .as_str()
            .unwrap()
            .contains("only before 17:00")
    );
    assert_eq!(late["ticket"]["admitted_at"], Value::Null);
    // Already in: a single gate never admits twice, whatever gate.
    let again = scan_at(
        &t,
        &device,
        &general[0],
        &event,
        json!({"gate": vip_door["id"]}),
    )
    .await;
    assert_eq!(again["result"], "already_admitted");
    assert!(
        again["reason"]
            .as_str()
            .unwrap()
            .starts_with("already admitted at ")
    );

    // Bad requests are 4xx naming the field.
    let r = t
        .post(
            "/api/v1/scan",
            Some(&device),
            json!({"code": general[1], "event_id": event.id, "gate": uuid::Uuid::now_v7().to_string()}),
        )
        .await;
    let p = problem(r, 422, "validation").await;
    assert_eq!(p["errors"][0]["field"], "gate");
    let r = t
        .post(
            "/api/v1/scan",
            Some(&device),
            json!({"code": general[1], "event_id": event.id, "gate": early["id"], "direction": "out"}),
        )
        .await;
    let p = problem(r, 422, "validation").await;
    assert_eq!(p["errors"][0]["field"], "direction");
    let r = t
        .post(
            "/api/v1/scan",
            Some(&device),
            json!({"code": general[1], "event_id": event.id, "direction": "sideways"}),
        )
        .await;
    assert!(r.status().is_client_error(), "{}", r.status());
    for (rules, why) in [
        (json!({"foo": [1, 2]}), "an unknown operator"),
        (json!({"==": [{"var": "seat"}, 1]}), "an unknown fact"),
        (json!([1, 2]), "not a rule"),
    ] {
        let r = t
            .post(
                &format!("/api/v1/orgs/{}/events/{}/gates", org.slug, event.id),
                Some(&org.key),
                json!({"name": "Bad", "rules": rules}),
            )
            .await;
        let p = problem(r, 422, "validation").await;
        assert_eq!(p["errors"][0]["field"], "rules", "{why}");
    }
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{}/gates", org.slug, event.id),
            Some(&org.key),
            json!({"name": "Bad", "ticket_type_ids": [uuid::Uuid::now_v7().to_string()]}),
        )
        .await;
    problem(r, 422, "validation").await;
    // Another org sees nothing of it.
    let other = t.signup().await;
    let r = t
        .get(
            &format!(
                "/api/v1/orgs/{}/events/{}/gates/{}",
                other.slug,
                event.id,
                early["id"].as_str().unwrap()
            ),
            Some(&other.key),
        )
        .await;
    problem(r, 404, "not_found").await;

    // The scan log has every scan, admitted or not, in order; cursors page it.
    let mut seen = Vec::new();
    t.eventually("the scan log has the five scans", || async {
        scan_log(&t, &org, &event, "").await["data"]
            .as_array()
            .unwrap()
            .len()
            == 5
    })
    .await;
    let mut cursor = String::new();
    loop {
        let q = if cursor.is_empty() {
            "?limit=2".to_string()
        } else {
            format!("?limit=2&cursor={cursor}")
        };
        let page = scan_log(&t, &org, &event, &q).await;
        let data = page["data"].as_array().unwrap().clone();
        if data.is_empty() {
            assert_eq!(
                page["next_cursor"].as_str().unwrap(),
                cursor,
                "an empty page keeps the cursor"
            );
            break;
        }
        seen.extend(
            data.iter()
                .map(|s| s["result"].as_str().unwrap().to_string()),
        );
        cursor = page["next_cursor"].as_str().unwrap().to_string();
    }
    assert_eq!(
        seen,
        [
            "wrong_gate",
            "admitted",
            "admitted",
            "rule",
            "already_admitted"
        ]
    );
    let log = scan_log(&t, &org, &event, "").await;
    let rule = &log["data"][3];
    assert_eq!(rule["explanation"], "only before 17:00");
    assert_eq!(rule["gate_id"], early["id"]);
    assert_eq!(rule["direction"], "in");
    t.stop().await;
}

both!(an_in_out_gate_counts_people_inside_and_keeps_its_capacity);
async fn an_in_out_gate_counts_people_inside_and_keeps_its_capacity(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let c = codes(&t.buy(&org, &event, 4).await);
    let lounge = gate(
        &t,
        &org,
        &event,
        json!({"name": "Lounge", "reentry": "in_out", "capacity": 2}),
    )
    .await;
    let bar = gate(
        &t,
        &org,
        &event,
        json!({"name": "Bar", "reentry": "in_out", "rules": {"<": [{"var": "entries_today"}, 2]}}),
    )
    .await;
    assert_eq!(bar["rules_text"], "at most 2 entries a day");
    let device = t.device(&org, &[&event.id]).await;
    let l = json!({"gate": lounge["id"]});
    let out = json!({"gate": lounge["id"], "direction": "out"});

    let s = scan_at(&t, &device, &c[0], &event, l.clone()).await;
    assert_eq!(
        (s["result"].as_str(), s["inside"].as_i64()),
        (Some("admitted"), Some(1))
    );
    let s = scan_at(&t, &device, &c[0], &event, l.clone()).await;
    assert_eq!(s["result"], "already_admitted");
    let s = scan_at(&t, &device, &c[0], &event, out.clone()).await;
    assert_eq!(
        (s["result"].as_str(), s["inside"].as_i64()),
        (Some("exited"), Some(0))
    );
    let s = scan_at(&t, &device, &c[0], &event, l.clone()).await;
    assert_eq!(s["result"], "admitted");
    assert_eq!(s["reason"], "admitted again (entry 2)");
    let s = scan_at(&t, &device, &c[1], &event, l.clone()).await;
    assert_eq!(
        (s["result"].as_str(), s["inside"].as_i64()),
        (Some("admitted"), Some(2))
    );
    let s = scan_at(&t, &device, &c[2], &event, l.clone()).await;
    assert_eq!(s["result"], "gate_full");
    assert_eq!(s["ticket"]["admitted_at"], Value::Null);

    // The rule counts entries before this one: twice today, then no more.
    let b = json!({"gate": bar["id"]});
    let b_out = json!({"gate": bar["id"], "direction": "out"});
    for _ in 0..2 {
        assert_eq!(
            scan_at(&t, &device, &c[3], &event, b.clone()).await["result"],
            "admitted"
        );
        assert_eq!(
            scan_at(&t, &device, &c[3], &event, b_out.clone()).await["result"],
            "exited"
        );
    }
    let s = scan_at(&t, &device, &c[3], &event, b.clone()).await;
    assert_eq!(s["result"], "rule");
    assert_eq!(s["explanation"], "already entered twice today");

    // The database agrees: two inside through the lounge, one ticket with
    // two entries; the first admission is announced once per ticket.
    let gates: Value = t
        .get(
            &format!("/api/v1/orgs/{}/events/{}/gates", org.slug, event.id),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    let lounge_now = gates["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == lounge["id"])
        .unwrap();
    assert_eq!(lounge_now["figures"]["inside"], 2);
    assert_eq!(lounge_now["figures"]["entries"], 3);
    let bar_now = gates["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == bar["id"])
        .unwrap();
    assert_eq!(bar_now["figures"]["inside"], 0);
    assert_eq!(bar_now["figures"]["entries"], 2);
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM tickets WHERE event_id = $1 AND inside_since IS NOT NULL",
            &event.id
        )
        .await,
        2
    );
    assert_eq!(
        t.count(
            "SELECT CAST(COALESCE(SUM(entries), 0) AS BIGINT) FROM tickets WHERE event_id = $1",
            &event.id
        )
        .await,
        5
    );
    t.eventually("the live figures count each ticket once", || async {
        t.count("SELECT CAST(COALESCE(SUM(admitted), 0) AS BIGINT) FROM live_figures WHERE event_id = $1", &event.id).await == 3
    })
    .await;

    // A fresh node (its hot tier loaded from the database) sees the same.
    if backend == Backend::Postgres {
        let other = t.another_node().await;
        let s = scan_at(&other, &device, &c[2], &event, l.clone()).await;
        assert_eq!(s["result"], "gate_full");
        let s = scan_at(&other, &device, &c[1], &event, out.clone()).await;
        assert_eq!(s["result"], "exited");
        let s = scan_at(&other, &device, &c[2], &event, l.clone()).await;
        assert_eq!(s["result"], "admitted");
        let s = scan_at(&other, &device, &c[3], &event, b.clone()).await;
        assert_eq!(s["explanation"], "already entered twice today");
        other.stop().await;
    }
    t.stop().await;
}

both!(a_supervisor_overrides_a_refusal_with_a_reason_and_a_steward_cannot);
async fn a_supervisor_overrides_a_refusal_with_a_reason_and_a_steward_cannot(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let vip = ticket_type(&t, &org, &event, "VIP").await;
    let c = codes(&t.buy(&org, &event, 2).await);
    let door = gate(
        &t,
        &org,
        &event,
        json!({"name": "VIP door", "ticket_type_ids": [vip]}),
    )
    .await;
    let steward = device_with(&t, &org, &event, json!({})).await;
    let supervisor = device_with(&t, &org, &event, json!({"role": "supervisor"})).await;
    let body = json!({"code": c[0], "event_id": event.id, "gate": door["id"], "override_reason": "guest of the artist"});
    let r = t.post("/api/v1/scan", Some(&steward), body.clone()).await;
    problem(r, 403, "forbidden").await;
    let r = t
        .post("/api/v1/scan", Some(&supervisor), body.clone())
        .await;
    assert_eq!(r.status(), 200);
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["result"], "admitted");
    assert_eq!(s["overridden"], true);
    // An override never admits twice.
    let s = scan_at(
        &t,
        &supervisor,
        &c[0],
        &event,
        json!({"gate": door["id"], "override_reason": "again"}),
    )
    .await;
    assert_eq!(s["result"], "already_admitted");
    // Audited, and in the scan log with its reason.
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'ticket.admit_override' AND org_id = (SELECT org_id FROM events WHERE id = $1)",
            &event.id
        )
        .await,
        1
    );
    t.eventually("the override is in the scan log", || async {
        scan_log(&t, &org, &event, "").await["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["override_reason"] == "guest of the artist" && s["result"] == "admitted")
    })
    .await;
    t.stop().await;
}

both!(a_revoked_device_is_refused_and_pairs_again);
async fn a_revoked_device_is_refused_and_pairs_again(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let c = codes(&t.buy(&org, &event, 2).await);
    let a = gate(&t, &org, &event, json!({"name": "A"})).await;
    let b = gate(&t, &org, &event, json!({"name": "B"})).await;
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/devices", org.slug),
            Some(&org.key),
            json!({"name": "North", "event_ids": [event.id], "gate_ids": [a["id"]]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["role"], "steward");
    let id = d["id"].as_str().unwrap().to_string();
    let token = pair(&t, d["pairing_code"].as_str().unwrap()).await;
    // Its one gate is the default; another gate is not its.
    let s = scan_at(&t, &token, &c[0], &event, json!({})).await;
    assert_eq!(
        (s["result"].as_str(), s["gate_id"].as_str()),
        (Some("admitted"), a["id"].as_str())
    );
    let r = t
        .post(
            "/api/v1/scan",
            Some(&token),
            json!({"code": c[1], "event_id": event.id, "gate": b["id"]}),
        )
        .await;
    problem(r, 403, "forbidden").await;
    let me: Value = t
        .get("/api/v1/devices/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["gates"].as_array().unwrap().len(), 1);

    // Renamed and moved to gate B: at once.
    let r = t
        .patch(
            &format!("/api/v1/orgs/{}/devices/{id}", org.slug),
            Some(&org.key),
            json!({"name": "North 2", "gate_ids": [b["id"]]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["name"].as_str(), v["status"].as_str()),
        (Some("North 2"), Some("paired"))
    );
    let s = scan_at(&t, &token, &c[1], &event, json!({"gate": b["id"]})).await;
    assert_eq!(s["result"], "admitted");
    let r = t
        .patch(
            &format!("/api/v1/orgs/{}/devices/{id}", org.slug),
            Some(&org.key),
            json!({"gate_ids": [uuid::Uuid::now_v7().to_string()]}),
        )
        .await;
    problem(r, 422, "validation").await;

    // Revoked: refused on its next request.
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/devices/{id}/revoke", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "revoked");
    let r = t.get("/api/v1/devices/me", Some(&token)).await;
    problem(r, 401, "unauthorized").await;
    let list: Value = t
        .get(
            &format!("/api/v1/orgs/{}/devices", org.slug),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["status"], "revoked");

    // Paired again: a new token; the old one stays refused.
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/devices/{id}/pairing", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let p: Value = r.json().await.unwrap();
    let fresh = pair(&t, p["pairing_code"].as_str().unwrap()).await;
    assert_eq!(
        t.get("/api/v1/devices/me", Some(&fresh)).await.status(),
        200
    );
    problem(
        t.get("/api/v1/devices/me", Some(&token)).await,
        401,
        "unauthorized",
    )
    .await;
    // Another org's device ids are unknown here.
    let other = t.signup().await;
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/devices/{id}/revoke", other.slug),
            Some(&other.key),
            json!({}),
        )
        .await;
    problem(r, 404, "not_found").await;
    t.stop().await;
}

/// Two nodes on one PostgreSQL and Redis: a device revoked on one is
/// refused by the other within a second, and so is a refunded ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_device_and_a_cancelled_ticket_are_refused_on_every_node_within_a_second() {
    if !crate::support::postgres_configured() {
        eprintln!("VOELGOED_TEST_DATABASE_URL / VOELGOED_TEST_REDIS_URL unset: not run here");
        return;
    }
    let a = TestApp::spawn(Backend::Postgres).await;
    let b = a.another_node().await;
    let org = a.signup().await;
    let event = a.event(&org, 10).await;
    let order = a.buy(&org, &event, 2).await;
    let c = codes(&order);
    let r = a
        .post(
            &format!("/api/v1/orgs/{}/devices", org.slug),
            Some(&org.key),
            json!({"name": "D", "event_ids": [event.id]}),
        )
        .await;
    let d: Value = r.json().await.unwrap();
    let token = pair(&a, d["pairing_code"].as_str().unwrap()).await;
    // Both nodes know the device and the tickets (warm).
    assert_eq!(
        b.get("/api/v1/devices/me", Some(&token)).await.status(),
        200
    );
    let s = scan_at(&b, &token, &c[0], &event, json!({})).await;
    assert_eq!(s["result"], "admitted");
    // Cancelled on node A: node B refuses its other ticket within a second.
    let r = a
        .post(
            &format!(
                "/api/v1/orgs/{}/orders/{}/cancel",
                org.slug,
                order["id"].as_str().unwrap()
            ),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert!(r.status().is_success(), "cancel: {}", r.status());
    let started = std::time::Instant::now();
    loop {
        let s = scan_at(&b, &token, &c[1], &event, json!({})).await;
        if s["result"] == "revoked" {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "still {s}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Revoked on node A: node B refuses the token within a second.
    let r = a
        .post(
            &format!(
                "/api/v1/orgs/{}/devices/{}/revoke",
                org.slug,
                d["id"].as_str().unwrap()
            ),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let started = std::time::Instant::now();
    loop {
        if b.get("/api/v1/devices/me", Some(&token)).await.status() == 401 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "node B still takes the token"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    b.stop().await;
    a.stop().await;
}

both!(fifty_devices_scan_a_thousand_tickets_with_duplicates_and_each_is_admitted_once);
/// 50 devices, 1,000 tickets, every ticket scanned by three devices at once
/// at a gate (on PostgreSQL + Redis through two nodes): each admitted once.
/// Then 100 tickets go in and out of an in/out gate through both nodes, and
/// the count inside comes out right.
async fn fifty_devices_scan_a_thousand_tickets_with_duplicates_and_each_is_admitted_once(
    backend: Backend,
) {
    use futures::StreamExt;
    let t =
        std::sync::Arc::new(TestApp::spawn_with(backend, |c| c.sensitive_per_minute = 1_000).await);
    let other = match backend {
        Backend::Postgres => std::sync::Arc::new(t.another_node().await),
        Backend::Sqlite => t.clone(),
    };
    let org = t.signup().await;
    let event = t.event(&org, 1_000).await;
    let mut codes = Vec::new();
    for _ in 0..50 {
        codes.extend(codes_of(&t.buy(&org, &event, 20).await));
    }
    let main = gate(&t, &org, &event, json!({"name": "Main"})).await;
    let lounge = gate(
        &t,
        &org,
        &event,
        json!({"name": "Lounge", "reentry": "in_out"}),
    )
    .await;
    let mut devices = Vec::new();
    for _ in 0..50 {
        devices.push(t.device(&org, &[&event.id]).await);
    }
    let nodes = [t.clone(), other.clone()];
    let scans = codes
        .iter()
        .enumerate()
        .flat_map(|(i, code)| (0..3).map(move |k| (code.clone(), (i * 3 + k) % 50, (i + k) % 2)));
    let results: Vec<(String, String)> = futures::stream::iter(scans)
        .map(|(code, d, n)| {
            let (node, device) = (nodes[n].clone(), devices[d].clone());
            let (event, gate) = (event.clone(), main["id"].clone());
            async move {
                let r = scan_at(&node, &device, &code, &event, json!({"gate": gate})).await;
                (code, r["result"].as_str().unwrap().to_string())
            }
        })
        .buffer_unordered(96)
        .collect()
        .await;
    let mut admitted = std::collections::HashMap::<String, usize>::new();
    for (code, result) in &results {
        assert!(
            matches!(result.as_str(), "admitted" | "already_admitted"),
            "{result}"
        );
        if result == "admitted" {
            *admitted.entry(code.clone()).or_default() += 1;
        }
    }
    assert_eq!(admitted.len(), 1_000, "every ticket admitted");
    assert!(
        admitted.values().all(|&n| n == 1),
        "no ticket admitted twice"
    );
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM tickets WHERE event_id = $1 AND admitted_at IS NOT NULL",
            &event.id
        )
        .await,
        1_000
    );
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM scans WHERE event_id = $1 AND result = 'admitted'",
            &event.id
        )
        .await,
        1_000
    );
    // Already in: the in/out gate sees them inside. Out through one node,
    // back in through the other, out again for every other ticket.
    let lounge_id = lounge["id"].clone();
    let moves: Vec<String> = futures::stream::iter(codes.iter().take(100).enumerate())
        .map(|(i, code)| {
            let (a, b) = (nodes[i % 2].clone(), nodes[(i + 1) % 2].clone());
            let (device, event, g) = (devices[i % 50].clone(), event.clone(), lounge_id.clone());
            let code = code.clone();
            async move {
                let mut seen = String::new();
                let steps: &[(&TestApp, &str)] = if i % 2 == 0 {
                    &[(&*a, "out"), (&*b, "in"), (&*a, "out")]
                } else {
                    &[(&*a, "out"), (&*b, "in")]
                };
                for (node, dir) in steps {
                    let r = scan_at(
                        node,
                        &device,
                        &code,
                        &event,
                        json!({"gate": g, "direction": dir}),
                    )
                    .await;
                    seen.push_str(r["result"].as_str().unwrap());
                    seen.push(' ');
                }
                seen
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(
        moves.iter().all(|m| m.starts_with("exited admitted")),
        "{moves:?}"
    );
    // 1,000 came in at Main; 100 went out, 50 came back in through the
    // lounge and stayed.
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM tickets WHERE event_id = $1 AND inside_since IS NOT NULL",
            &event.id
        )
        .await,
        950
    );
    let gates: Value = t
        .get(
            &format!("/api/v1/orgs/{}/events/{}/gates", org.slug, event.id),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    let lounge_now = gates["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == lounge_id)
        .unwrap()
        .clone();
    assert_eq!(lounge_now["figures"]["inside"], 50);
    drop(nodes);
    if let Ok(other) = std::sync::Arc::try_unwrap(other)
        && backend == Backend::Postgres
    {
        other.stop().await;
    }
    if let Ok(t) = std::sync::Arc::try_unwrap(t) {
        t.stop().await;
    }
}

fn codes_of(order: &Value) -> Vec<String> {
    codes(order)
}

both!(the_box_office_finds_a_ticket_checks_it_in_by_hand_and_undoes_a_mistaken_admission);
async fn the_box_office_finds_a_ticket_checks_it_in_by_hand_and_undoes_a_mistaken_admission(
    backend: Backend,
) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 20).await;
    let other = t.event(&org, 20).await;
    // A rule no ticket passes: a check-in by hand admits anyway.
    let closed = gate(
        &t,
        &org,
        &event,
        json!({"name": "Closed", "rules": {"<": [{"var": "minutes_of_day"}, 0]}}),
    )
    .await;
    let side = gate(&t, &org, &event, json!({"name": "Side"})).await;
    let order = t.buy(&org, &event, 2).await;
    t.buy(&org, &other, 1).await;
    let ticket = order["tickets"][0]["id"].as_str().unwrap().to_string();
    let code = order["tickets"][0]["code"].as_str().unwrap().to_string();
    let base = format!("/api/v1/orgs/{}/events/{}", org.slug, event.id);

    // Looked up by e-mail, by name and by order id: this event's tickets only.
    for q in ["BUYER@example", "buyer", order["id"].as_str().unwrap()] {
        let r = t
            .get(&format!("{base}/box-office?q={q}"), Some(&org.key))
            .await;
        assert_eq!(r.status(), 200, "{q}");
        let found: Value = r.json().await.unwrap();
        let found = found["data"].as_array().unwrap();
        assert_eq!(found.len(), 2, "{q}: {found:?}");
        assert!(
            found
                .iter()
                .all(|f| f["ticket"]["event_id"] == json!(event.id))
        );
        assert_eq!(found[0]["buyer_email"], "buyer@example.com");
        assert_eq!(found[0]["inside"], false);
    }
    let r = t
        .get(&format!("{base}/box-office?q=a"), Some(&org.key))
        .await;
    problem(r, 422, "validation").await;
    let r = t
        .get(&format!("{base}/box-office?q=nobody-here"), Some(&org.key))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["data"], json!([]));
    // Two characters as sent, one once trimmed: the contract's length is
    // met, so it is a search that finds nobody, not a 422.
    let r = t
        .get(&format!("{base}/box-office?q=%C2%A0%C3%90"), Some(&org.key))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["data"], json!([]));

    // Bad check-ins: no reason, a gate of no such kind, a ticket of
    // another event or none at all, another org's credential.
    let check_in = |ticket: String, body: Value| {
        let t = &t;
        let base = base.clone();
        let key = org.key.clone();
        async move {
            t.post(
                &format!("{base}/tickets/{ticket}/check-in"),
                Some(&key),
                body,
            )
            .await
        }
    };
    problem(
        check_in(ticket.clone(), json!({"reason": "  "})).await,
        422,
        "validation",
    )
    .await;
    problem(
        check_in(
            ticket.clone(),
            json!({"reason": "flat phone", "gate_id": other.id}),
        )
        .await,
        422,
        "validation",
    )
    .await;
    problem(
        check_in(uuid::Uuid::now_v7().to_string(), json!({"reason": "x"})).await,
        404,
        "not_found",
    )
    .await;
    let stranger = t.signup().await;
    let r = t
        .post(
            &format!("{base}/tickets/{ticket}/check-in"),
            Some(&stranger.key),
            json!({"reason": "x"}),
        )
        .await;
    assert!(matches!(r.status().as_u16(), 403 | 404), "{}", r.status());

    // By hand, through the gate whose rule refuses everyone: admitted once.
    let r = check_in(
        ticket.clone(),
        json!({"reason": "flat phone", "gate_id": closed["id"]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["result"], "admitted", "{out}");
    assert_eq!(out["reason"], "checked in at the box office");
    let again: Value = check_in(ticket.clone(), json!({"reason": "flat phone"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["result"], "already_admitted", "{again}");
    let steward = device_with(&t, &org, &event, json!({})).await;
    let s = scan_at(&t, &steward, &code, &event, json!({"gate": side["id"]})).await;
    assert_eq!(s["result"], "already_admitted", "{s}");
    let log = scan_log(&t, &org, &event, &format!("?ticket_id={ticket}")).await;
    let first = &log["data"][0];
    assert_eq!(first["result"], "admitted");
    assert_eq!(first["device_id"], Value::Null);
    assert_eq!(first["override_reason"], "flat phone");

    // Undone: as if never scanned, on the gate too; the live count follows.
    let undo = |body: Value| {
        let t = &t;
        let url = format!("{base}/tickets/{ticket}/undo-admission");
        let key = org.key.clone();
        async move { t.post(&url, Some(&key), body).await }
    };
    problem(undo(json!({})).await, 422, "validation").await;
    let r = undo(json!({"reason": "scanned the wrong ticket"})).await;
    assert_eq!(r.status(), 200);
    let u: Value = r.json().await.unwrap();
    assert_eq!(u["reason"], "scanned the wrong ticket");
    problem(undo(json!({"reason": "twice"})).await, 409, "conflict").await;
    let mut last = Value::Null;
    for _ in 0..100 {
        last = scan_at(&t, &steward, &code, &event, json!({"gate": side["id"]})).await;
        if last["result"] == "admitted" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(last["result"], "admitted", "{last}");
    assert_eq!(last["reason"], "admitted", "a first entry again: {last}");
    let log = scan_log(&t, &org, &event, &format!("?ticket_id={ticket}")).await;
    let results: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert!(results.contains(&"undone"), "{results:?}");
    assert_eq!(results.last(), Some(&"admitted"), "{results:?}");
    let r = t
        .get(&format!("{base}/box-office?q=buyer"), Some(&org.key))
        .await;
    let found: Value = r.json().await.unwrap();
    let me = found["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["ticket"]["id"] == json!(ticket))
        .unwrap()
        .clone();
    assert_eq!(me["inside"], true);
    assert_eq!(me["entries"], 1);

    // A node that loads the gate now replays the scan log: the undone
    // entry is gone there too; undone again, it admits as a first entry.
    if backend == Backend::Postgres {
        let other = t.another_node().await;
        let found: Value = other
            .get(&format!("{base}/box-office?q=buyer"), Some(&org.key))
            .await
            .json()
            .await
            .unwrap();
        let me = found["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["ticket"]["id"] == json!(ticket))
            .unwrap()
            .clone();
        assert_eq!(
            (&me["inside"], &me["entries"]),
            (&json!(true), &json!(1)),
            "{me}"
        );
        other.stop().await;
        assert_eq!(undo(json!({"reason": "wrong again"})).await.status(), 200);
        let third = t.another_node().await;
        let s = scan_at(&third, &steward, &code, &event, json!({"gate": side["id"]})).await;
        assert_eq!(
            (&s["result"], &s["reason"]),
            (&json!("admitted"), &json!("admitted")),
            "{s}"
        );
        third.stop().await;
    }

    // At the gate, a supervisor's phone looks up; a steward's may not.
    let supervisor = device_with(&t, &org, &event, json!({"role": "supervisor"})).await;
    let r = t
        .get(
            &format!("/api/v1/devices/lookup?event_id={}&q=buyer", event.id),
            Some(&supervisor),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = t
        .get(
            &format!("/api/v1/devices/lookup?event_id={}&q=buyer", event.id),
            Some(&steward),
        )
        .await;
    problem(r, 403, "forbidden").await;
    let r = t
        .get(
            &format!("/api/v1/devices/lookup?event_id={}&q=buyer", other.id),
            Some(&supervisor),
        )
        .await;
    problem(r, 403, "forbidden").await;
    t.stop().await;
}

both!(a_ticket_type_admits_only_within_its_validity_window);
async fn a_ticket_type_admits_only_within_its_validity_window(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let day = ticket_type(&t, &org, &event, "Day pass").await;
    let types = format!("/api/v1/orgs/{}/events/{}/ticket-types", org.slug, event.id);
    // Until before from: refused, naming the field.
    let r = t
        .patch(
            &format!("{types}/{day}"),
            Some(&org.key),
            json!({"valid_from": "2030-06-01T19:00:00Z", "valid_until": "2030-06-01T18:00:00Z"}),
        )
        .await;
    let p = problem(r, 422, "validation").await;
    assert_eq!(p["errors"][0]["field"], "valid_until", "{p}");
    let r = t
        .patch(
            &format!("{types}/{day}"),
            Some(&org.key),
            json!({"valid_from": "2030-06-01T19:00:00Z", "valid_until": "2030-06-01T23:00:00Z"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["valid_from"], "2030-06-01T19:00:00Z");
    let passes = codes(&buy_type(&t, &org, &event, &day, 3).await);
    let plain = codes(&t.buy(&org, &event, 1).await);
    let steward = device_with(&t, &org, &event, json!({})).await;
    let supervisor = device_with(&t, &org, &event, json!({"role": "supervisor"})).await;

    // 20:30 in Johannesburg: before the pass's window; a plain ticket admits.
    t.clock().set(at("2030-06-01T18:30:00Z"));
    let s = scan_at(&t, &steward, &passes[0], &event, json!({})).await;
    assert_eq!(s["result"], "not_valid_now", "{s}");
    assert_eq!(s["reason"], "this ticket admits from 21:00");
    let s = scan_at(&t, &steward, &plain[0], &event, json!({})).await;
    assert_eq!(s["result"], "admitted", "{s}");
    // A supervisor may let it in anyway.
    let s = scan_at(
        &t,
        &supervisor,
        &passes[1],
        &event,
        json!({"override_reason": "artist's family"}),
    )
    .await;
    assert_eq!(s["result"], "admitted", "{s}");
    assert_eq!(s["overridden"], true);
    // In the window: admitted.
    t.clock().set(at("2030-06-01T19:30:00Z"));
    let s = scan_at(&t, &steward, &passes[0], &event, json!({})).await;
    assert_eq!(s["result"], "admitted", "{s}");
    // After it: refused, and the gate follows a change at once.
    t.clock().set(at("2030-06-01T23:30:00Z"));
    let s = scan_at(&t, &steward, &passes[2], &event, json!({})).await;
    assert_eq!(s["result"], "not_valid_now", "{s}");
    assert_eq!(s["reason"], "this ticket admitted until 01:00");
    let r = t
        .patch(
            &format!("{types}/{day}"),
            Some(&org.key),
            json!({"valid_until": null}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let mut last = Value::Null;
    for _ in 0..100 {
        last = scan_at(&t, &steward, &passes[2], &event, json!({})).await;
        if last["result"] == "admitted" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(last["result"], "admitted", "{last}");
    t.stop().await;
}
