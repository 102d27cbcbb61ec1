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

    t.eventually("four entries, sealed", || async {
        let v = entries(&t, &org, "").await;
        v["data"]
            .as_array()
            .is_some_and(|d| d.len() == 4 && d.iter().all(|e| e["seq"].is_i64()))
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
            "event.create"
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
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"][0]["action"], "event.create");
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
    assert_eq!(verdict[0].entries, 4);
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
    let sql = "DELETE FROM audit_log WHERE org_id = $1 AND seq = 4";
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
