//! Venue layouts: a seat map kept for reuse with categories instead of
//! ticket types; an event copies one in, a ticket type per category; bad
//! layouts are refused naming the seat, nothing kept.

use serde_json::{Value, json};

use crate::{both, support::*};

fn layout(name: &str) -> Value {
    json!({"name": name, "sections": [
        {"name": "Stalls", "rows": [{"label": "A", "seats": [
            {"label": "1", "x": 0.0, "y": 0.0, "category": "Stalls", "flags": ["accessible"]},
            {"label": "2", "x": 30.0, "y": 0.0, "category": "Stalls", "flags": []}]}]},
        {"name": "Balcony", "rows": [{"label": "A", "seats": [
            {"label": "1", "x": 0.0, "y": 100.0, "category": "Balcony", "flags": []}]}]}]})
}

async fn put(t: &TestApp, org: &Org, path: &str, body: Value) -> reqwest::Response {
    t.api
        .client
        .put(t.url(&format!("/api/v1/orgs/{}{path}", org.slug)))
        .bearer_auth(&org.key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn layouts(t: &TestApp, org: &Org) -> Vec<Value> {
    let r: Value = t
        .get(
            &format!("/api/v1/orgs/{}/venue-layouts", org.slug),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    r["data"].as_array().unwrap().clone()
}

both!(an_event_copies_a_venue_layout_a_ticket_type_per_category);
async fn an_event_copies_a_venue_layout_a_ticket_type_per_category(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/venue-layouts", org.slug),
            Some(&org.key),
            layout("City Hall"),
        )
        .await;
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    assert_eq!(made["seats"], 3);
    assert_eq!(made["categories"], json!(["Balcony", "Stalls"]));
    let id = made["id"].as_str().unwrap().to_string();

    // Two events copy it, each onto its own ticket types.
    for _ in 0..2 {
        let event = t.event(&org, 10).await;
        let balcony: Value = t
            .post(
                &format!("/api/v1/orgs/{}/events/{}/ticket-types", org.slug, event.id),
                Some(&org.key),
                json!({"name": "Balcony", "price_cents": 0, "currency": "ZAR", "capacity": 10}),
            )
            .await
            .json()
            .await
            .unwrap();
        let from = |types: Value| {
            let (t, org, event, id) = (&t, &org, event.clone(), id.clone());
            async move {
                t.post(
                    &format!(
                        "/api/v1/orgs/{}/events/{}/seating/from-layout",
                        org.slug, event.id
                    ),
                    Some(&org.key),
                    json!({"layout_id": id, "ticket_types": types}),
                )
                .await
            }
        };
        // A category left without a type is named; no map is stored.
        let p = problem(
            from(json!({"Stalls": event.ticket_type})).await,
            422,
            "validation",
        )
        .await;
        assert!(p.to_string().contains("ticket_types.Balcony"), "{p}");
        let r = t
            .get(
                &format!("/api/v1/orgs/{}/events/{}/seating", org.slug, event.id),
                Some(&org.key),
            )
            .await;
        assert_eq!(r.status(), 404);
        // Another event's ticket type is not this event's.
        let other = t.event(&org, 5).await;
        problem(
            from(json!({"Stalls": other.ticket_type, "Balcony": balcony["id"]})).await,
            422,
            "validation",
        )
        .await;
        let r = from(json!({"Stalls": event.ticket_type, "Balcony": balcony["id"]})).await;
        assert_eq!(r.status(), 200);
        let map: Value = r.json().await.unwrap();
        let seats: Vec<&Value> = map["sections"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["rows"][0]["seats"].as_array().unwrap())
            .collect();
        assert_eq!(seats.len(), 3);
        assert_eq!(seats[0]["ticket_type_id"], event.ticket_type.as_str());
        assert_eq!(seats[0]["flags"], json!(["accessible"]));
        assert_eq!(seats[2]["ticket_type_id"], balcony["id"]);
        // The copy sells.
        let r = t
            .post(
                &format!("/api/v1/store/{}/events/{}/holds", org.slug, event.id),
                None,
                json!({"seats": [seats[2]["id"]]}),
            )
            .await;
        assert_eq!(r.status(), 201);
        // And is kept back as a layout, categories from the type names.
        let r = t
            .post(
                &format!(
                    "/api/v1/orgs/{}/events/{}/seating/save-as-layout",
                    org.slug, event.id
                ),
                Some(&org.key),
                json!({"name": "Copy"}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let copy: Value = r.json().await.unwrap();
        assert_eq!(copy["categories"], json!(["Balcony", "General"]));
    }

    // Replaced whole; exported as it was given.
    let r = put(
        &t,
        &org,
        &format!("/venue-layouts/{id}"),
        layout("City Hall (2031)"),
    )
    .await;
    assert_eq!(r.status(), 200);
    let got: Value = t
        .get(
            &format!("/api/v1/orgs/{}/venue-layouts/{id}", org.slug),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["name"], "City Hall (2031)");
    assert_eq!(got["sections"], layout("x")["sections"]);
    assert_eq!(layouts(&t, &org).await.len(), 3);
}

both!(bad_layouts_are_refused_naming_the_seat);
async fn bad_layouts_are_refused_naming_the_seat(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let post = |body: Value| {
        let (t, org) = (&t, &org);
        async move {
            t.post(
                &format!("/api/v1/orgs/{}/venue-layouts", org.slug),
                Some(&org.key),
                body,
            )
            .await
        }
    };
    let mut twice = layout("Dup");
    twice["sections"][0]["rows"][0]["seats"][1]["label"] = "1".into();
    let p = problem(post(twice).await, 422, "validation").await;
    assert!(
        p.to_string().contains("sections[0].rows[0].seats[1].label"),
        "{p}"
    );
    let mut blank = layout("Blank");
    blank["sections"][1]["rows"][0]["seats"][0]["category"] = " ".into();
    let p = problem(post(blank).await, 422, "validation").await;
    assert!(p.to_string().contains("category"), "{p}");
    // Flags given twice are kept once (the schema's at most four).
    let mut flagged = layout("Flags");
    flagged["sections"][0]["rows"][0]["seats"][0]["flags"] = json!([
        "blocked",
        "blocked",
        "blocked",
        "blocked",
        "blocked",
        "accessible"
    ]);
    let kept: Value = post(flagged).await.json().await.unwrap();
    assert_eq!(
        kept["sections"][0]["rows"][0]["seats"][0]["flags"],
        json!(["accessible", "blocked"])
    );
    let mut far = layout("Far");
    far["sections"][0]["rows"][0]["seats"][0]["x"] = 1e9.into();
    problem(post(far).await, 422, "validation").await;
    let mut typed = layout("Typed");
    typed["sections"][0]["rows"][0]["seats"][0]["ticket_type_id"] =
        "0190f3f4-0000-7000-8000-000000000000".into();
    assert_eq!(post(typed).await.status(), 422);
    assert_eq!(post(json!({"name": "x"})).await.status(), 422);
    assert_eq!(layouts(&t, &org).await.len(), 1, "nothing else kept");

    // Another tenant's layout, or none, is not found.
    let mine: Value = post(layout("Mine")).await.json().await.unwrap();
    let other = t.signup().await;
    let id = mine["id"].as_str().unwrap();
    let r = t
        .get(
            &format!("/api/v1/orgs/{}/venue-layouts/{id}", other.slug),
            Some(&other.key),
        )
        .await;
    problem(r, 404, "not_found").await;
    problem(
        put(
            &t,
            &other,
            &format!("/venue-layouts/{id}"),
            layout("Stolen"),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    let event = t.event(&other, 5).await;
    let r = t
        .post(
            &format!(
                "/api/v1/orgs/{}/events/{}/seating/from-layout",
                other.slug, event.id
            ),
            Some(&other.key),
            json!({"layout_id": id, "ticket_types": {"Stalls": event.ticket_type, "Balcony": event.ticket_type}}),
        )
        .await;
    problem(r, 404, "not_found").await;
    // An event without a map has nothing to keep.
    let r = t
        .post(
            &format!(
                "/api/v1/orgs/{}/events/{}/seating/save-as-layout",
                other.slug, event.id
            ),
            Some(&other.key),
            json!({"name": "Nothing"}),
        )
        .await;
    problem(r, 404, "not_found").await;
}
