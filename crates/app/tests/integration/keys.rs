//! Ticket-signing keys: compact codes, sealed keys, rotation, re-issue and
//! retirement, and forged codes that never admit.

use serde_json::{Value, json};

use crate::{
    both,
    support::{Backend, Org, TestApp, problem},
};

async fn keys(t: &TestApp, org: &Org) -> Vec<Value> {
    let r = t
        .get(
            &format!("/api/v1/orgs/{}/signing-keys", org.slug),
            Some(&org.key),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["data"].as_array().unwrap().clone()
}

fn kid_of(code: &str) -> String {
    platform::tickets::parse_code(code).expect("a code").kid
}

/// Another character of the base32 alphabet at `i` (not a case change).
fn flip(code: &str, i: usize) -> String {
    let mut b = code.as_bytes().to_vec();
    b[i] = if b[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

both!(rotated_keys_sign_new_tickets_and_old_codes_admit_until_retired);
async fn rotated_keys_sign_new_tickets_and_old_codes_admit_until_retired(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let first = t.buy(&org, &event, 3).await;
    let code = |o: &Value, i: usize| o["tickets"][i]["code"].as_str().unwrap().to_string();
    let c0 = code(&first, 0);
    assert!(c0.starts_with("VG2") && c0.len() < 180, "{c0}");
    let k1 = kid_of(&c0);
    let listed = keys(&t, &org).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0]["kid"].as_str(), listed[0]["active"].as_bool()),
        (Some(k1.as_str()), Some(true))
    );
    assert_eq!(listed[0]["tickets"], 3);
    // Sealed at rest: no clear private key in the database.
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM org_signing_keys WHERE org_id = (SELECT org_id FROM events WHERE id = $1)
               AND (length(secret_key) > 0 OR sealed_key IS NULL OR sealed_with IS NULL)",
            &event.id
        )
        .await,
        0
    );

    let r = t
        .post(
            &format!("/api/v1/orgs/{}/signing-keys/rotate", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let k2: Value = r.json().await.unwrap();
    assert_eq!(k2["active"], true);
    let k2 = k2["kid"].as_str().unwrap().to_string();
    assert_ne!(k1, k2);
    let second = t.buy(&org, &event, 1).await;
    assert_eq!(
        kid_of(&code(&second, 0)),
        k2,
        "new tickets are signed with the new key"
    );
    let device = t.device(&org, &[&event.id]).await;
    // The old key still verifies its codes.
    assert_eq!(t.scan(&device, &c0, &event.id).await["result"], "admitted");

    // Retiring it while tickets carry its codes: refused, nothing changed.
    let retire = format!("/api/v1/orgs/{}/signing-keys/{k1}/retire", org.slug);
    problem(
        t.post(&retire, Some(&org.key), json!({})).await,
        409,
        "conflict",
    )
    .await;
    problem(
        t.post(
            &format!("/api/v1/orgs/{}/signing-keys/{k2}/retire", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await,
        409,
        "conflict",
    )
    .await;

    // One ticket re-issued: the old code is revoked at once, the new one admits.
    let old_id = first["tickets"][1]["id"].as_str().unwrap();
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/tickets/{old_id}/reissue", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let fresh: Value = r.json().await.unwrap();
    let fresh_code = fresh["code"].as_str().unwrap();
    assert_eq!(kid_of(fresh_code), k2);
    assert_eq!(
        t.scan(&device, &code(&first, 1), &event.id).await["result"],
        "revoked"
    );
    assert_eq!(
        t.scan(&device, fresh_code, &event.id).await["result"],
        "admitted"
    );
    // Re-issuing it again is a conflict; another org's ticket is unknown.
    problem(
        t.post(
            &format!("/api/v1/orgs/{}/tickets/{old_id}/reissue", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await,
        409,
        "conflict",
    )
    .await;
    let other = t.signup().await;
    problem(
        t.post(
            &format!("/api/v1/orgs/{}/tickets/{old_id}/reissue", other.slug),
            Some(&other.key),
            json!({}),
        )
        .await,
        404,
        "not_found",
    )
    .await;

    // Retired with its tickets re-issued: every code it signed stops
    // admitting, on this node and on a fresh one.
    let r = t
        .post(&retire, Some(&org.key), json!({"reissue": true}))
        .await;
    assert_eq!(r.status(), 200);
    let retired: Value = r.json().await.unwrap();
    assert!(retired["retired_at"].is_string());
    assert_eq!(retired["tickets"], 0);
    let order: Value = t
        .get(
            &format!(
                "/api/v1/orgs/{}/orders/{}",
                org.slug,
                first["id"].as_str().unwrap()
            ),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    let valid: Vec<&Value> = order["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "valid")
        .collect();
    assert_eq!(valid.len(), 3, "three valid tickets, all under the new key");
    assert!(
        valid
            .iter()
            .all(|v| kid_of(v["code"].as_str().unwrap()) == k2)
    );
    // The admitted ticket stays admitted under its new code.
    let readmitted = valid
        .iter()
        .find(|v| v["replaces"] == first["tickets"][0]["id"])
        .unwrap();
    assert_eq!(
        t.scan(&device, readmitted["code"].as_str().unwrap(), &event.id)
            .await["result"],
        "already_admitted"
    );
    // Revoked at once in the database; this node's hot tier follows
    // `ticket.revoked` within moments (and never admits meanwhile).
    for i in 0..3 {
        let c = code(&first, i);
        t.eventually("an old code is refused", || async {
            let r = t.scan(&device, &c, &event.id).await;
            assert_ne!(r["result"], "admitted");
            matches!(r["result"].as_str(), Some("revoked" | "invalid"))
        })
        .await;
    }
    if backend == Backend::Postgres {
        let b = t.another_node().await;
        let r = b.scan(&device, &code(&first, 2), &event.id).await;
        assert!(
            matches!(r["result"].as_str(), Some("revoked" | "invalid")),
            "{r}"
        );
        b.stop().await;
    }
    let me: Value = t
        .get("/api/v1/devices/me", Some(&device))
        .await
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = me["signing_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [k2.as_str()],
        "a retired key is not handed to devices"
    );
    t.stop().await;
}

both!(forged_compact_codes_never_admit);
async fn forged_compact_codes_never_admit(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let other_event = t.event(&org, 10).await;
    let o = t.buy(&org, &event, 2).await;
    let elsewhere = t.buy(&org, &other_event, 1).await;
    let code = o["tickets"][0]["code"].as_str().unwrap().to_string();
    let ticket: kernel::ids::TicketId = o["tickets"][0]["id"].as_str().unwrap().parse().unwrap();
    let device = t.device(&org, &[&event.id]).await;
    let kid = kid_of(&code);

    let event_id: kernel::ids::EventId = event.id.parse().unwrap();
    let tt: kernel::ids::TicketTypeId = event.ticket_type.parse().unwrap();
    // Re-signed with a key that is not the org's (another org's, say),
    // under the org's own kid.
    let stranger = kernel::auth::generate_signing_key();
    let forged =
        platform::tickets::sign_compact(&kid, &stranger, ticket, event_id, tt, Default::default());
    // Another org's genuine code, scanned here.
    let org_b = t.signup().await;
    let event_b = t.event(&org_b, 10).await;
    let theirs = t.buy(&org_b, &event_b, 1).await;
    let mut attempts = vec![
        ("re-signed", forged),
        (
            "another org's",
            theirs["tickets"][0]["code"].as_str().unwrap().to_string(),
        ),
        ("truncated", code[..code.len() - 4].to_string()),
        ("cut in half", code[..code.len() / 2].to_string()),
        ("no prefix", code[3..].to_string()),
    ];
    for i in [3, 10, 40, 100, code.len() - 2] {
        attempts.push(("a character changed", flip(&code, i)));
    }
    for (what, c) in &attempts {
        let r = t.scan(&device, c, &event.id).await;
        assert_eq!(r["result"], "invalid", "{what}: {r}");
        assert_eq!(r["ticket"], Value::Null, "{what}");
    }
    // A genuine code of another event of the org.
    let r = t
        .scan(
            &device,
            elsewhere["tickets"][0]["code"].as_str().unwrap(),
            &event.id,
        )
        .await;
    assert_eq!(r["result"], "wrong_event");
    // Nothing was admitted; the genuine code still is, once, in any case.
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM tickets WHERE event_id = $1 AND admitted_at IS NOT NULL",
            &event.id
        )
        .await,
        0
    );
    assert_eq!(
        t.scan(&device, &code.to_lowercase(), &event.id).await["result"],
        "admitted"
    );
    assert_eq!(
        t.scan(&device, &code, &event.id).await["result"],
        "already_admitted"
    );
    t.stop().await;
}
