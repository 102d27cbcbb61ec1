//! Handing a ticket on: the old code stops admitting at once, the new
//! holder gets a new ticket by mail (and a key to its page), the event's
//! policy can forbid it or close it, and a ticket is handed on once however
//! many try at the same moment — or admitted, never both.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::{both, mail::read_messages, support::*};

async fn transfer(
    t: &TestApp,
    org: &Org,
    ticket: &str,
    token: &str,
    email: &str,
) -> reqwest::Response {
    t.post(
        &format!("/api/v1/store/{}/tickets/{ticket}/transfer", org.slug),
        None,
        json!({"access_token": token, "to": {"email": email, "name": "Fred Friend"}}),
    )
    .await
}

fn tickets(order: &Value) -> Vec<Value> {
    order["tickets"].as_array().unwrap().clone()
}

async fn org_order(t: &TestApp, org: &Org, id: &str) -> Value {
    t.get(
        &format!("/api/v1/orgs/{}/orders/{id}", org.slug),
        Some(&org.key),
    )
    .await
    .json()
    .await
    .unwrap()
}

async fn put_policy(t: &TestApp, org: &Org, event: &Event, body: Value) -> reqwest::Response {
    t.api
        .client
        .put(t.url(&format!(
            "/api/v1/orgs/{}/events/{}/transfer-policy",
            org.slug, event.id
        )))
        .bearer_auth(&org.key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The key in the newest transfer mail to `email` (the embedded mode writes
/// mail as files).
async fn mailed_key(t: &TestApp, email: &str) -> String {
    let dir = t.config().data_dir.join("mail");
    let found = || {
        read_messages(&dir).into_iter().rev().find(|m| {
            m.headers["to"].as_str().unwrap_or("").contains(email)
                && m.headers["subject"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("Your ticket to")
        })
    };
    t.eventually("the transfer mail", || async { found().is_some() })
        .await;
    let mail = found().unwrap();
    assert_eq!(mail.pdfs.len(), 1, "the ticket is attached");
    let at = mail.body.find("access_token=").expect("a link with a key") + "access_token=".len();
    mail.body[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

both!(a_ticket_handed_on_stops_admitting_and_its_new_code_admits);
async fn a_ticket_handed_on_stops_admitting_and_its_new_code_admits(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let device = t.device(&org, &[&event.id]).await;
    let order = t.buy(&org, &event, 2).await;
    let token = order["access_token"].as_str().unwrap().to_string();
    let id = order["id"].as_str().unwrap().to_string();
    let [first, second] = [0, 1].map(|i| tickets(&order)[i].clone());
    let old_code = first["code"].as_str().unwrap().to_string();

    let r = transfer(
        &t,
        &org,
        first["id"].as_str().unwrap(),
        &token,
        "fred@example.com",
    )
    .await;
    assert_eq!(r.status(), 201);
    let old: Value = r.json().await.unwrap();
    assert_eq!(old["status"], "revoked");
    assert_eq!(
        old["transferred_to"],
        json!({"email": "fred@example.com", "name": "Fred Friend"})
    );
    // The old code no longer admits, at once.
    assert_eq!(
        t.scan(&device, &old_code, &event.id).await["result"],
        "revoked"
    );

    // The organizer sees all three; the buyer their own two (the one handed
    // on, marked so); the new code is the new holder's alone.
    let all = tickets(&org_order(&t, &org, &id).await);
    assert_eq!(all.len(), 3);
    let new = all
        .iter()
        .find(|x| x["replaces"] == first["id"])
        .expect("the new ticket")
        .clone();
    assert_eq!(new["holder"]["email"], "fred@example.com");
    assert_eq!(new["status"], "valid");
    let mine: Value = t
        .get(
            &format!(
                "/api/v1/store/{}/orders/{id}?access_token={token}",
                org.slug
            ),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<String> = tickets(&mine)
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(!ids.iter().any(|x| *x == new["id"]));
    // The order's key does not open the new ticket; the mailed key does.
    let new_id = new["id"].as_str().unwrap();
    let holder_url = |key: &str| {
        format!(
            "/api/v1/store/{}/tickets/{new_id}?access_token={key}",
            org.slug
        )
    };
    assert_eq!(t.get(&holder_url(&token), None).await.status(), 404);
    let key = mailed_key(&t, "fred@example.com").await;
    let mine: Value = t.get(&holder_url(&key), None).await.json().await.unwrap();
    assert_eq!(mine["code"], new["code"]);
    problem(
        transfer(&t, &org, new_id, &token, "eve@example.com").await,
        404,
        "not_found",
    )
    .await;
    // Handed on twice is refused; handed on in turn by its holder works.
    problem(
        transfer(
            &t,
            &org,
            first["id"].as_str().unwrap(),
            &token,
            "eve@example.com",
        )
        .await,
        409,
        "conflict",
    )
    .await;
    let r = transfer(&t, &org, new_id, &key, "gina@example.com").await;
    assert_eq!(r.status(), 201);
    let gina_key = mailed_key(&t, "gina@example.com").await;
    assert_ne!(gina_key, key);
    // The newest ticket admits; once scanned it is not handed on.
    let newest = tickets(&org_order(&t, &org, &id).await)
        .into_iter()
        .find(|x| x["replaces"] == new["id"])
        .unwrap();
    let code = newest["code"].as_str().unwrap();
    assert_eq!(t.scan(&device, code, &event.id).await["result"], "admitted");
    problem(
        transfer(
            &t,
            &org,
            newest["id"].as_str().unwrap(),
            &gina_key,
            "h@example.com",
        )
        .await,
        409,
        "conflict",
    )
    .await;
    // The other ticket of the order still admits.
    assert_eq!(
        t.scan(&device, second["code"].as_str().unwrap(), &event.id)
            .await["result"],
        "admitted"
    );
    t.stop().await;
}

both!(the_events_policy_forbids_or_closes_transfers_and_bad_ones_are_refused);
async fn the_events_policy_forbids_or_closes_transfers_and_bad_ones_are_refused(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let order = t.buy(&org, &event, 3).await;
    let token = order["access_token"].as_str().unwrap().to_string();
    let ids: Vec<String> = tickets(&order)
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    let policy: Value = t
        .get(
            &format!(
                "/api/v1/orgs/{}/events/{}/transfer-policy",
                org.slug, event.id
            ),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(policy, json!({"allowed": true, "deadline": null}));

    // Bad input: nothing written.
    for (body, field) in [
        (
            json!({"access_token": token, "to": {"email": "not an address", "name": "X"}}),
            "to.email",
        ),
        (
            json!({"access_token": token, "to": {"email": "x@example.com", "name": " "}}),
            "to.name",
        ),
        (
            json!({"access_token": token, "to": {"email": "x@example.com"}}),
            "",
        ),
        (json!({"access_token": token}), ""),
        (
            json!({"access_token": token, "to": {"email": "x@example.com", "name": "X"}, "extra": 1}),
            "",
        ),
    ] {
        let p = problem(
            t.post(
                &format!("/api/v1/store/{}/tickets/{}/transfer", org.slug, ids[0]),
                None,
                body.clone(),
            )
            .await,
            422,
            "validation",
        )
        .await;
        if !field.is_empty() {
            assert_eq!(p["errors"][0]["field"], field, "{body} → {p}");
        }
    }
    // Not opened by a wrong key, another org's slug, or an unknown ticket.
    let other = t.signup().await;
    for (slug, ticket, key) in [
        (org.slug.as_str(), ids[0].as_str(), "wrong"),
        (other.slug.as_str(), ids[0].as_str(), token.as_str()),
        (
            org.slug.as_str(),
            &*uuid::Uuid::now_v7().to_string(),
            token.as_str(),
        ),
    ] {
        let r = t
            .post(
                &format!("/api/v1/store/{slug}/tickets/{ticket}/transfer"),
                None,
                json!({"access_token": key, "to": {"email": "x@example.com", "name": "X"}}),
            )
            .await;
        problem(r, 404, "not_found").await;
    }
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM tickets WHERE event_id = $1 AND status = 'valid'",
            &event.id
        )
        .await,
        3
    );

    // Forbidden; then allowed until a deadline that passes.
    let p = problem(
        put_policy(
            &t,
            &org,
            &event,
            json!({"allowed": true, "deadline": "soon"}),
        )
        .await,
        422,
        "validation",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "deadline");
    assert_eq!(
        put_policy(&t, &org, &event, json!({"allowed": false}))
            .await
            .status(),
        200
    );
    let p = problem(
        transfer(&t, &org, &ids[0], &token, "x@example.com").await,
        409,
        "conflict",
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("does not allow"),
        "{p}"
    );
    let soon = kernel::clock::rfc3339(t.clock().now() + 3_600_000_000);
    let r = put_policy(&t, &org, &event, json!({"allowed": true, "deadline": soon})).await;
    assert_eq!(r.json::<Value>().await.unwrap()["deadline"], soon);
    assert_eq!(
        transfer(&t, &org, &ids[0], &token, "x@example.com")
            .await
            .status(),
        201
    );
    t.advance(std::time::Duration::from_secs(3601));
    let p = problem(
        transfer(&t, &org, &ids[1], &token, "x@example.com").await,
        409,
        "conflict",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("no longer"), "{p}");
    // A cancelled event's tickets are not handed on either.
    assert_eq!(
        put_policy(&t, &org, &event, json!({"allowed": true, "deadline": null}))
            .await
            .status(),
        200
    );
    assert_eq!(
        transfer(&t, &org, &ids[1], &token, "y@example.com")
            .await
            .status(),
        201
    );
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{}/cancel", org.slug, event.id),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    problem(
        transfer(&t, &org, &ids[2], &token, "z@example.com").await,
        409,
        "conflict",
    )
    .await;
    t.stop().await;
}

both!(a_ticket_is_handed_on_once_or_admitted_never_both);
async fn a_ticket_is_handed_on_once_or_admitted_never_both(backend: Backend) {
    let t = Arc::new(TestApp::spawn(backend).await);
    let org = t.signup().await;
    let event = t.event(&org, 40).await;
    let device = t.device(&org, &[&event.id]).await;
    // Twenty buyers each try to hand the same ticket to twenty people.
    let order = t.buy(&org, &event, 1).await;
    let token = order["access_token"].as_str().unwrap().to_string();
    let ticket = tickets(&order)[0]["id"].as_str().unwrap().to_string();
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut tries = Vec::new();
    for i in 0..20 {
        let (t, org, ticket, token, barrier) = (
            t.clone(),
            org.clone(),
            ticket.clone(),
            token.clone(),
            barrier.clone(),
        );
        tries.push(tokio::spawn(async move {
            barrier.wait().await;
            transfer(&t, &org, &ticket, &token, &format!("p{i}@example.com"))
                .await
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for x in tries {
        statuses.push(x.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| matches!(s, 201 | 409)),
        "{statuses:?}"
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM tickets WHERE replaces = $1", &ticket)
            .await,
        1
    );

    // A scan and a transfer of each of twenty tickets at the same moment:
    // admitted (and not handed on), or handed on (and the scan says revoked).
    let order = t.buy(&org, &event, 20).await;
    let token = order["access_token"].as_str().unwrap().to_string();
    let barrier = Arc::new(tokio::sync::Barrier::new(40));
    let mut races = Vec::new();
    for x in tickets(&order) {
        let id = x["id"].as_str().unwrap().to_string();
        let code = x["code"].as_str().unwrap().to_string();
        let scan = {
            let (t, device, event_id, barrier) =
                (t.clone(), device.clone(), event.id.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                t.scan(&device, &code, &event_id).await["result"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
        };
        let hand = {
            let (t, org, token, barrier, id) = (
                t.clone(),
                org.clone(),
                token.clone(),
                barrier.clone(),
                id.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                transfer(&t, &org, &id, &token, "q@example.com")
                    .await
                    .status()
                    .as_u16()
            })
        };
        races.push((id, scan, hand));
    }
    for (id, scan, hand) in races {
        let (scanned, handed) = (scan.await.unwrap(), hand.await.unwrap());
        match (scanned.as_str(), handed) {
            ("admitted", 409) | ("revoked", 201) => {}
            other => panic!("ticket {id}: {other:?}"),
        }
        let admitted = t
            .count(
                "SELECT COUNT(*) FROM tickets WHERE id = $1 AND admitted_at IS NOT NULL",
                &id,
            )
            .await;
        let replaced = t
            .count("SELECT COUNT(*) FROM tickets WHERE replaces = $1", &id)
            .await;
        assert_eq!(admitted + replaced, 1, "ticket {id}");
    }
    Arc::try_unwrap(t).ok().expect("sole owner").stop().await;
}

both!(a_transfer_racing_a_cancellation_leaves_no_valid_ticket_behind);
async fn a_transfer_racing_a_cancellation_leaves_no_valid_ticket_behind(backend: Backend) {
    let t = Arc::new(TestApp::spawn(backend).await);
    let org = t.signup().await;
    let event = t.event(&org, 20).await;
    let mut races = Vec::new();
    for _ in 0..10 {
        let order = t.buy(&org, &event, 1).await;
        let id = order["id"].as_str().unwrap().to_string();
        let token = order["access_token"].as_str().unwrap().to_string();
        let ticket = tickets(&order)[0]["id"].as_str().unwrap().to_string();
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let hand = {
            let (t, org, barrier) = (t.clone(), org.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                transfer(&t, &org, &ticket, &token, "r@example.com")
                    .await
                    .status()
                    .as_u16()
            })
        };
        let cancel = {
            let (t, org, barrier) = (t.clone(), org.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                t.post(
                    &format!("/api/v1/orgs/{}/orders/{id}/cancel", org.slug),
                    Some(&org.key),
                    json!({"reason": "race"}),
                )
                .await
                .status()
                .as_u16()
            })
        };
        races.push((hand, cancel));
    }
    for (hand, cancel) in races {
        let (h, c) = (hand.await.unwrap(), cancel.await.unwrap());
        assert!(matches!(h, 201 | 409), "transfer answered {h}");
        assert_eq!(c, 200, "cancel");
    }
    // Whatever won, a cancelled order has no ticket that still admits.
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM tickets k JOIN orders o ON o.org_id = k.org_id AND o.id = k.order_id
             WHERE k.event_id = $1 AND o.status = 'cancelled' AND k.status = 'valid'",
            &event.id
        )
        .await,
        0
    );
    Arc::try_unwrap(t).ok().expect("sole owner").stop().await;
}
