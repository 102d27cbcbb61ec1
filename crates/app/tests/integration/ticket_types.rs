//! Ticket types after they are made: edited, resized (never below what is
//! held or sold, whatever sells meanwhile), retired, hidden behind a
//! voucher, ordered; and the questions each ticket's attendee answers.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::{both, support::*};

fn type_url(org: &Org, event: &Event, tt: &str) -> String {
    format!(
        "/api/v1/orgs/{}/events/{}/ticket-types/{tt}",
        org.slug, event.id
    )
}

async fn patch(t: &TestApp, org: &Org, event: &Event, tt: &str, body: Value) -> reqwest::Response {
    t.patch(&type_url(org, event, tt), Some(&org.key), body)
        .await
}

async fn shown(t: &TestApp, org: &Org, event: &Event, voucher: Option<&str>) -> Vec<(String, i64)> {
    store_types(t, org, event, voucher).await
}

async fn hold(
    t: &TestApp,
    org: &Org,
    event: &Event,
    tt: &str,
    quantity: i64,
    voucher: Option<&str>,
) -> reqwest::Response {
    let mut body = json!({"items": [{"ticket_type_id": tt, "quantity": quantity}]});
    if let Some(v) = voucher {
        body["voucher"] = v.into();
    }
    t.post(
        &format!("/api/v1/store/{}/events/{}/holds", org.slug, event.id),
        None,
        body,
    )
    .await
}

async fn capacity_in_db(t: &TestApp, tt: &str) -> i64 {
    t.count("SELECT capacity FROM ticket_types WHERE id = $1", tt)
        .await
}

fn fields(p: &Value) -> Vec<String> {
    p["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| e["field"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

both!(a_ticket_type_is_resized_never_below_what_is_taken);
async fn a_ticket_type_is_resized_never_below_what_is_taken(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let tt = event.ticket_type.clone();

    // Renamed and grown: the storefront sells the new capacity at once.
    let r = patch(
        &t,
        &org,
        &event,
        &tt,
        json!({"name": "General", "capacity": 15}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["name"].as_str(), v["capacity"].as_i64()),
        (Some("General"), Some(15))
    );
    assert_eq!(shown(&t, &org, &event, None).await, [(tt.clone(), 15)]);

    // Four held: it cannot shrink below four, and a refusal changes nothing.
    assert_eq!(hold(&t, &org, &event, &tt, 4, None).await.status(), 201);
    let p = problem(
        patch(&t, &org, &event, &tt, json!({"capacity": 3})).await,
        409,
        "conflict",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains('4'), "{p}");
    assert_eq!(capacity_in_db(&t, &tt).await, 15);
    assert_eq!(shown(&t, &org, &event, None).await, [(tt.clone(), 11)]);
    // Exactly what is taken: sold out.
    assert_eq!(
        patch(&t, &org, &event, &tt, json!({"capacity": 4}))
            .await
            .status(),
        200
    );
    assert_eq!(shown(&t, &org, &event, None).await, [(tt.clone(), 0)]);
    problem(hold(&t, &org, &event, &tt, 1, None).await, 409, "sold_out").await;
    assert_eq!(
        patch(&t, &org, &event, &tt, json!({"capacity": 6}))
            .await
            .status(),
        200
    );
    assert_eq!(shown(&t, &org, &event, None).await, [(tt.clone(), 2)]);
    assert_eq!(capacity_in_db(&t, &tt).await, 6);

    // A least per order; then retired: off the storefront, not sold, back.
    let r = patch(&t, &org, &event, &tt, json!({"min_per_order": 2})).await;
    assert_eq!(r.status(), 200);
    let p = problem(
        hold(&t, &org, &event, &tt, 1, None).await,
        422,
        "validation",
    )
    .await;
    assert_eq!(fields(&p), ["items[0].quantity"]);
    let r = patch(
        &t,
        &org,
        &event,
        &tt,
        json!({"retired": true, "min_per_order": null}),
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert!(v["retired_at"].is_string(), "{v}");
    assert_eq!(v["min_per_order"], Value::Null);
    assert!(shown(&t, &org, &event, None).await.is_empty());
    let p = problem(
        hold(&t, &org, &event, &tt, 1, None).await,
        422,
        "validation",
    )
    .await;
    assert_eq!(fields(&p), ["items[0].ticket_type_id"]);
    let r = patch(&t, &org, &event, &tt, json!({"retired": false})).await;
    assert_eq!(r.json::<Value>().await.unwrap()["retired_at"], Value::Null);
    assert_eq!(hold(&t, &org, &event, &tt, 1, None).await.status(), 201);
    t.stop().await;
}

both!(a_hidden_ticket_type_is_sold_only_with_a_voucher_that_names_it);
async fn a_hidden_ticket_type_is_sold_only_with_a_voucher_that_names_it(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let ga = event.ticket_type.clone();
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{}/ticket-types", org.slug, event.id),
            Some(&org.key),
            json!({"name": "Crew", "price_cents": 0, "currency": "ZAR", "capacity": 5,
                   "hidden": true, "sort_order": -1}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let crew = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let voucher = |body: Value| {
        let (t, org, event) = (&t, &org, &event);
        async move {
            let r = t
                .post(
                    &format!("/api/v1/orgs/{}/events/{}/vouchers", org.slug, event.id),
                    Some(&org.key),
                    body,
                )
                .await;
            assert_eq!(r.status(), 201);
        }
    };
    // 0 % off: a voucher that only unlocks.
    voucher(json!({"code": "CREW", "percent_off": 0, "max_uses": 5, "ticket_type_ids": [crew]}))
        .await;
    voucher(json!({"code": "ALL", "percent_off": 10, "max_uses": 5})).await;

    assert_eq!(shown(&t, &org, &event, None).await, [(ga.clone(), 10)]);
    // A voucher for every type unlocks none.
    assert_eq!(
        shown(&t, &org, &event, Some("ALL")).await,
        [(ga.clone(), 10)]
    );
    assert_eq!(
        shown(&t, &org, &event, Some("NOSUCH")).await,
        [(ga.clone(), 10)]
    );
    // The one that names it shows it, first (its sort order).
    assert_eq!(
        shown(&t, &org, &event, Some("crew")).await,
        [(crew.clone(), 5), (ga.clone(), 10)]
    );
    for v in [None, Some("ALL")] {
        let p = problem(hold(&t, &org, &event, &crew, 1, v).await, 422, "validation").await;
        assert_eq!(fields(&p), ["items[0].ticket_type_id"], "{v:?}");
    }
    let r = hold(&t, &org, &event, &crew, 2, Some("CREW")).await;
    assert_eq!(r.status(), 201);
    // Shown again once no longer hidden; order by sort order, then age.
    patch(
        &t,
        &org,
        &event,
        &crew,
        json!({"hidden": false, "sort_order": 5}),
    )
    .await;
    assert_eq!(
        shown(&t, &org, &event, None).await,
        [(ga.clone(), 10), (crew.clone(), 3)]
    );
    t.stop().await;
}

both!(bad_ticket_type_changes_are_refused_and_nothing_is_written);
async fn bad_ticket_type_changes_are_refused_and_nothing_is_written(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let tt = event.ticket_type.clone();
    let before: Value = t
        .get(
            &format!("/api/v1/orgs/{}/events/{}", org.slug, event.id),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    for (body, field) in [
        (json!({"capacity": 0}), "capacity"),
        (json!({"capacity": 1_000_000_000}), "capacity"),
        (json!({"capacity": "many"}), "capacity"),
        (json!({"price_cents": -1}), "price_cents"),
        (json!({"name": "  "}), "name"),
        (json!({"currency": "USD"}), "currency"),
        (
            json!({"min_per_order": 5, "max_per_order": 2}),
            "min_per_order",
        ),
        (json!({"max_per_order": 0}), "max_per_order"),
        (json!({"sort_order": 10_000_000}), "sort_order"),
        (json!({"sale_starts_at": "tomorrow"}), "sale_starts_at"),
        (
            json!({"sale_starts_at": "2030-01-02T00:00:00Z", "sale_ends_at": "2030-01-01T00:00:00Z"}),
            "sale_ends_at",
        ),
        (json!({"hidden": "yes"}), "hidden"),
        (
            json!({"questions": [{"label": "Size", "kind": "choice"}]}),
            "questions[0].options",
        ),
        (
            json!({"questions": [{"label": "Size", "kind": "shoe"}]}),
            "questions",
        ),
        (
            json!({"questions": [{"id": "a", "label": "A", "kind": "text"}, {"id": "a", "label": "B", "kind": "text"}]}),
            "questions[1].id",
        ),
    ] {
        let p = problem(
            patch(&t, &org, &event, &tt, body.clone()).await,
            422,
            "validation",
        )
        .await;
        assert!(
            fields(&p).iter().any(|f| f.starts_with(field)),
            "{body} → {p}"
        );
    }
    // Malformed JSON; unknown ids; another event's, another tenant's.
    let r = t
        .api
        .client
        .patch(t.url(&type_url(&org, &event, &tt)))
        .bearer_auth(&org.key)
        .header("content-type", "application/json")
        .body("{\"capacity\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16() / 100, 4);
    problem(
        patch(
            &t,
            &org,
            &event,
            &uuid::Uuid::now_v7().to_string(),
            json!({"capacity": 5}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    let other_event = t.event(&org, 10).await;
    problem(
        patch(&t, &org, &other_event, &tt, json!({"capacity": 5})).await,
        404,
        "not_found",
    )
    .await;
    let other = t.signup().await;
    let r = t
        .patch(
            &format!(
                "/api/v1/orgs/{}/events/{}/ticket-types/{tt}",
                other.slug, event.id
            ),
            Some(&other.key),
            json!({"capacity": 5}),
        )
        .await;
    problem(r, 404, "not_found").await;
    let r = t
        .patch(&type_url(&org, &event, &tt), None, json!({"capacity": 5}))
        .await;
    assert_eq!(r.status(), 401);
    let after: Value = t
        .get(
            &format!("/api/v1/orgs/{}/events/{}", org.slug, event.id),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before["ticket_types"], after["ticket_types"]);
    t.stop().await;
}

both!(capacity_shrinks_while_buyers_race_and_nothing_oversells);
async fn capacity_shrinks_while_buyers_race_and_nothing_oversells(backend: Backend) {
    let t = Arc::new(TestApp::spawn(backend).await);
    let org = t.signup().await;
    let event = t.event(&org, 200).await;
    let tt = event.ticket_type.clone();
    let barrier = Arc::new(tokio::sync::Barrier::new(301));
    let mut buyers = Vec::new();
    for _ in 0..300 {
        let (t, org, event, tt, barrier) = (
            t.clone(),
            org.clone(),
            event.clone(),
            tt.clone(),
            barrier.clone(),
        );
        buyers.push(tokio::spawn(async move {
            barrier.wait().await;
            let r = hold(&t, &org, &event, &tt, 1, None).await;
            r.status().as_u16()
        }));
    }
    // The organizer shrinks it, and grows it, while they buy.
    let organizer = {
        let (t, org, event, tt, barrier) = (
            t.clone(),
            org.clone(),
            event.clone(),
            tt.clone(),
            barrier.clone(),
        );
        tokio::spawn(async move {
            barrier.wait().await;
            let mut answers = Vec::new();
            for cap in [150, 120, 100, 130, 90, 110] {
                let r = patch(&t, &org, &event, &tt, json!({"capacity": cap})).await;
                answers.push((cap, r.status().as_u16()));
            }
            answers
        })
    };
    let mut made = 0;
    for b in buyers {
        match b.await.unwrap() {
            201 => made += 1,
            409 => {}
            other => panic!("a hold answered {other}"),
        }
    }
    for (cap, status) in organizer.await.unwrap() {
        assert!(matches!(status, 200 | 409), "capacity {cap}: {status}");
    }
    // The ledger: never more taken than the capacity now; the counter
    // agrees with both; and demand (300) used it up.
    let capacity = capacity_in_db(&t, &tt).await;
    let sold = taken(&t, &[&tt]).await;
    assert_eq!(sold, made);
    assert!(sold <= capacity, "{sold} taken of {capacity}");
    assert_eq!(
        shown(&t, &org, &event, None).await,
        [(tt.clone(), capacity - sold)]
    );
    // One more change, then holds fill it exactly.
    assert_eq!(
        patch(&t, &org, &event, &tt, json!({"capacity": sold + 3}))
            .await
            .status(),
        200
    );
    assert_eq!(hold(&t, &org, &event, &tt, 3, None).await.status(), 201);
    problem(hold(&t, &org, &event, &tt, 1, None).await, 409, "sold_out").await;
    Arc::try_unwrap(t).ok().expect("sole owner").stop().await;
}

/// A ticket type asking each attendee's name (required), a diet (a
/// choice) and an e-mail (optional).
async fn with_questions(t: &TestApp, org: &Org, event: &Event, price_cents: i64) -> String {
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{}/ticket-types", org.slug, event.id),
            Some(&org.key),
            json!({"name": "Dinner", "price_cents": price_cents, "currency": "ZAR", "capacity": 20,
                   "questions": [
                       {"label": "Attendee name", "kind": "name", "required": true},
                       {"id": "diet", "label": "Diet", "kind": "choice", "options": ["Vegan", "None"]},
                       {"label": "E-mail", "kind": "email"}]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let ids: Vec<&str> = v["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["attendee_name", "diet", "e_mail"]);
    v["id"].as_str().unwrap().to_string()
}

async fn checkout(t: &TestApp, org: &Org, hold: &str, attendees: Value) -> reqwest::Response {
    t.post(
        &format!("/api/v1/store/{}/holds/{hold}/checkout", org.slug),
        None,
        json!({"buyer": {"email": "host@example.com", "name": "Host"},
               "payment_method": "eft", "attendees": attendees}),
    )
    .await
}

both!(each_ticket_carries_its_attendees_answers);
async fn each_ticket_carries_its_attendees_answers(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let dinner = with_questions(&t, &org, &event, 0).await;
    // A type made without questions asks the name, optionally.
    let store: Value = t
        .get(
            &format!("/api/v1/store/{}/events/{}", org.slug, event.id),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let ga = store["ticket_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == event.ticket_type)
        .unwrap();
    assert_eq!(
        ga["questions"],
        json!([{"id": "name", "label": "Attendee name", "kind": "name", "required": false}])
    );

    let h: Value = hold(&t, &org, &event, &dinner, 2, None)
        .await
        .json()
        .await
        .unwrap();
    let h = h["id"].as_str().unwrap();
    let a = |name: &str, extra: Value| {
        let mut answers = json!({"attendee_name": name});
        for (k, v) in extra.as_object().unwrap() {
            answers[k] = v.clone();
        }
        json!({"ticket_type_id": dinner, "answers": answers})
    };
    for (attendees, want) in [
        (json!([]), vec!["attendees"]),
        (json!([a("Ann", json!({}))]), vec!["attendees"]),
        (
            json!([
                a("Ann", json!({"diet": "Halal"})),
                a("Ben", json!({"e_mail": "ben@"}))
            ]),
            vec!["attendees[0].answers.diet", "attendees[1].answers.e_mail"],
        ),
        (
            json!([a("Ann", json!({"shoe": "42"})), a("", json!({}))]),
            vec![
                "attendees[0].answers.shoe",
                "attendees[1].answers.attendee_name",
            ],
        ),
        (
            json!([a("Ann", json!({})), a("Ben", json!({})), a("Cy", json!({}))]),
            vec!["attendees[2]"],
        ),
        (
            json!([{"ticket_type_id": event.ticket_type, "answers": {}}]),
            vec!["attendees[0].ticket_type_id", "attendees"],
        ),
        // (A wrong type is refused while reading the body.)
        (
            json!([{"ticket_type_id": dinner, "answers": {"diet": 5}}]),
            vec!["body"],
        ),
    ] {
        let p = problem(
            checkout(&t, &org, h, attendees.clone()).await,
            422,
            "validation",
        )
        .await;
        let got = fields(&p);
        for w in &want {
            assert!(got.iter().any(|f| f.starts_with(w)), "{attendees} → {p}");
        }
    }
    // Nothing written by the refusals: the hold is still to be checked out.
    assert_eq!(
        t.count("SELECT COUNT(*) FROM orders WHERE hold_id = $1", h)
            .await,
        0
    );
    let r = checkout(
        &t,
        &org,
        h,
        json!([
            a(" Ann Smith ", json!({"diet": "Vegan"})),
            a("Ben", json!({"e_mail": "ben@example.com", "diet": ""}))
        ]),
    )
    .await;
    assert_eq!(r.status(), 201);
    let o: Value = r.json().await.unwrap();
    let answers: Vec<&Value> = o["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| &x["answers"])
        .collect();
    assert_eq!(
        answers,
        [
            &json!({"attendee_name": "Ann Smith", "diet": "Vegan"}),
            &json!({"attendee_name": "Ben", "e_mail": "ben@example.com"})
        ]
    );
    t.stop().await;
}

both!(answers_given_at_checkout_reach_tickets_issued_on_payment);
async fn answers_given_at_checkout_reach_tickets_issued_on_payment(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let dinner = with_questions(&t, &org, &event, 25_000).await;
    let h: Value = hold(&t, &org, &event, &dinner, 1, None)
        .await
        .json()
        .await
        .unwrap();
    let r = checkout(
        &t,
        &org,
        h["id"].as_str().unwrap(),
        json!([{"ticket_type_id": dinner, "answers": {"attendee_name": "Cleo", "diet": "None"}}]),
    )
    .await;
    assert_eq!(r.status(), 201);
    let o: Value = r.json().await.unwrap();
    assert_eq!(o["status"], "pending");
    let id = o["id"].as_str().unwrap();
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/orders/{id}/mark-paid", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let o: Value = t
        .get(
            &format!("/api/v1/orgs/{}/orders/{id}", org.slug),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        o["tickets"][0]["answers"],
        json!({"attendee_name": "Cleo", "diet": "None"})
    );
    t.stop().await;
}
