//! Exports and reports as an organizer uses them: ask, watch the job,
//! download through the signed link (no key), open the files with readers
//! that are not ours (Python's csv and zipfile); links that are forged or
//! stale are refused; the sales report adds up; and a 200,000-ticket
//! export runs in the real binary with memory that does not grow with it.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};

use crate::{both, support::*};

async fn ask(t: &Api, org: &Org, event: &str, kind: &str, format: &str) -> Value {
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{event}/exports", org.slug),
            Some(&org.key),
            json!({"kind": kind, "format": format}),
        )
        .await;
    assert_eq!(r.status(), 202, "export asked");
    r.json().await.unwrap()
}

/// Polls the export until it is ready (or fails the test).
async fn ready(t: &Api, org: &Org, id: &str, secs: u64) -> Value {
    for _ in 0..secs * 10 {
        let v: Value = t
            .get(
                &format!("/api/v1/orgs/{}/exports/{id}", org.slug),
                Some(&org.key),
            )
            .await
            .json()
            .await
            .unwrap();
        match v["status"].as_str() {
            Some("ready") => return v,
            Some("failed") => panic!("export failed: {v}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("export {id} not ready in {secs} s");
}

/// Rows of a CSV file as Python's csv module reads them.
fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    let out = python(
        "import csv, io, json, sys\nprint(json.dumps(list(csv.reader(io.StringIO(sys.stdin.read())))))",
        bytes,
    );
    serde_json::from_slice(&out).unwrap()
}

/// Rows of the first sheet of an XLSX file, read with Python's zipfile and
/// XML parser (shared strings and inline strings both).
fn xlsx_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    let script = r#"
import io, json, sys, zipfile
import xml.etree.ElementTree as ET
ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
z = zipfile.ZipFile(io.BytesIO(sys.stdin.buffer.read()))
shared = []
if "xl/sharedStrings.xml" in z.namelist():
    for si in ET.fromstring(z.read("xl/sharedStrings.xml")).findall("m:si", ns):
        shared.append("".join(t.text or "" for t in si.iter("{%s}t" % ns["m"])))
rows = []
for row in ET.fromstring(z.read("xl/worksheets/sheet1.xml")).iter("{%s}row" % ns["m"]):
    cells = []
    for c in row.findall("m:c", ns):
        v = c.find("m:v", ns)
        if c.get("t") == "s":
            cells.append(shared[int(v.text)])
        elif c.get("t") == "inlineStr":
            cells.append("".join(t.text or "" for t in c.iter("{%s}t" % ns["m"])))
        else:
            cells.append(v.text if v is not None else "")
    rows.append(cells)
print(json.dumps(rows))
"#;
    serde_json::from_slice(&python(script, bytes)).unwrap()
}

fn python(script: &str, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

async fn checkout_named(t: &TestApp, org: &Org, event: &Event, qty: i64, name: &str) -> Value {
    let h: Value = t.hold(org, event, qty).await.json().await.unwrap();
    let r = t
        .post(
            &format!(
                "/api/v1/store/{}/holds/{}/checkout",
                org.slug,
                h["id"].as_str().unwrap()
            ),
            None,
            json!({"buyer": {"email": "zoe@example.com", "name": name}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

both!(attendees_orders_and_checkins_export_through_signed_links);
async fn attendees_orders_and_checkins_export_through_signed_links(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 50).await;
    let a = t.buy(&org, &event, 2).await;
    // A buyer whose name a spreadsheet would run as a formula.
    let b = checkout_named(&t, &org, &event, 1, "=HYPERLINK(\"http://evil\")").await;
    let device = t.device(&org, &[&event.id]).await;
    let code = a["tickets"][0]["code"].as_str().unwrap();
    assert_eq!(t.scan(&device, code, &event.id).await["result"], "admitted");

    // Attendees, CSV: one row per ticket.
    let x = ask(&t, &org, &event.id, "attendees", "csv").await;
    assert!(matches!(
        x["status"].as_str(),
        Some("queued" | "running" | "ready")
    ));
    let x = ready(&t, &org, x["id"].as_str().unwrap(), 10).await;
    assert_eq!(x["rows"], 3);
    let url = x["download_url"].as_str().unwrap().to_string();
    let r = t.client.get(t.url(&url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attendees-test-night.csv")
    );
    let rows = csv_rows(&r.bytes().await.unwrap());
    assert_eq!(rows.len(), 4, "header and three tickets: {rows:?}");
    assert_eq!(rows[0][0], "ticket_id");
    let evil = rows
        .iter()
        .find(|r| r[4] == b["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(evil[2], "'=HYPERLINK(\"http://evil\")", "defused");
    let admitted = rows
        .iter()
        .find(|r| r[0] == a["tickets"][0]["id"].as_str().unwrap())
        .unwrap();
    assert!(!admitted[8].is_empty(), "admitted_at filled: {admitted:?}");

    // Orders, XLSX: one row per order.
    let y = ask(&t, &org, &event.id, "orders", "xlsx").await;
    let y = ready(&t, &org, y["id"].as_str().unwrap(), 20).await;
    let r = t
        .client
        .get(t.url(y["download_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rows = xlsx_rows(&r.bytes().await.unwrap());
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0][..3], ["order_id", "status", "buyer_name"]);
    assert!(
        rows.iter()
            .any(|r| r[0] == a["id"].as_str().unwrap() && r[1] == "paid")
    );

    // Check-ins: the one admitted ticket.
    let z = ask(&t, &org, &event.id, "checkins", "csv").await;
    let z = ready(&t, &org, z["id"].as_str().unwrap(), 10).await;
    let r = t
        .client
        .get(t.url(z["download_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    let rows = csv_rows(&r.bytes().await.unwrap());
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][0], a["tickets"][0]["id"].as_str().unwrap());

    // Forged, truncated and stale links.
    let forged = url.replace("signature=", "signature=AAAA");
    problem(
        t.client.get(t.url(&forged)).send().await.unwrap(),
        403,
        "forbidden",
    )
    .await;
    let truncated = &url[..url.find("&signature=").unwrap()];
    problem(
        t.client.get(t.url(truncated)).send().await.unwrap(),
        422,
        "validation",
    )
    .await;
    let other_id = url.replace(x["id"].as_str().unwrap(), y["id"].as_str().unwrap());
    problem(
        t.client.get(t.url(&other_id)).send().await.unwrap(),
        403,
        "forbidden",
    )
    .await;
    t.advance(Duration::from_secs(11 * 60));
    problem(t.client.get(t.url(&url)).send().await.unwrap(), 410, "gone").await;
    // A fresh view gives a fresh link.
    let x = ready(&t, &org, x["id"].as_str().unwrap(), 1).await;
    assert_eq!(
        t.client
            .get(t.url(x["download_url"].as_str().unwrap()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Another org sees none of it; bad requests are 4xx.
    let other = t.signup().await;
    let path = format!(
        "/api/v1/orgs/{}/exports/{}",
        org.slug,
        x["id"].as_str().unwrap()
    );
    let r = t.get(&path, Some(&other.key)).await;
    assert!(matches!(r.status().as_u16(), 403 | 404));
    let mine = format!(
        "/api/v1/orgs/{}/exports/{}",
        other.slug,
        x["id"].as_str().unwrap()
    );
    problem(t.get(&mine, Some(&other.key)).await, 404, "not_found").await;
    let asks = format!("/api/v1/orgs/{}/events/{}/exports", org.slug, event.id);
    for body in [
        json!({"kind": "everything", "format": "csv"}),
        json!({"kind": "orders"}),
        json!({"kind": "orders", "format": "pdf", "x": 1}),
    ] {
        problem(t.post(&asks, Some(&org.key), body).await, 422, "validation").await;
    }
    let unknown = format!(
        "/api/v1/orgs/{}/events/{}/exports",
        org.slug,
        uuid::Uuid::now_v7()
    );
    problem(
        t.post(
            &unknown,
            Some(&org.key),
            json!({"kind": "orders", "format": "csv"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;

    // After 24 h the files are gone.
    t.advance(Duration::from_secs(25 * 3600));
    t.eventually("expired exports pruned", || async {
        t.get(&path, Some(&org.key)).await.status() == 404
    })
    .await;
    t.stop().await;
}

both!(the_sales_report_adds_up_per_type_and_day);
async fn the_sales_report_adds_up_per_type_and_day(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t
        .try_event(&org, &EventSpec::capacity(20).priced(15_000))
        .await
        .unwrap();
    // Priced orders stay pending (no payment provider yet): nothing sold.
    t.buy(&org, &event, 2).await;
    let free = t.event(&org, 20).await;
    t.buy(&org, &free, 3).await;
    t.buy(&org, &free, 1).await;
    let r: Value = t
        .get(
            &format!("/api/v1/orgs/{}/events/{}/reports/sales", org.slug, free.id),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["totals"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["totals"][0]["sold"], 4, "{r}");
    assert_eq!(r["by_ticket_type"][0]["sold"], 4);
    assert_eq!(r["by_ticket_type"][0]["revenue_cents"], 0);
    assert_eq!(r["timezone"], "Africa/Johannesburg");
    // Today in Johannesburg, by the node's clock.
    let today = jiff::Timestamp::from_microsecond(t.clock().now())
        .unwrap()
        .in_tz("Africa/Johannesburg")
        .unwrap()
        .date()
        .to_string();
    assert_eq!(r["by_day"][0]["date"], today.as_str());
    assert_eq!(r["by_day"][0]["sold"], 4);
    let priced: Value = t
        .get(
            &format!(
                "/api/v1/orgs/{}/events/{}/reports/sales",
                org.slug, event.id
            ),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(priced["totals"][0]["sold"], 0);
    assert_eq!(priced["by_day"], json!([]));
    let csv = t
        .get(
            &format!(
                "/api/v1/orgs/{}/events/{}/reports/sales?format=csv",
                org.slug, free.id
            ),
            Some(&org.key),
        )
        .await;
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let rows = csv_rows(&csv.bytes().await.unwrap());
    assert_eq!(rows[0][0], "date");
    assert_eq!(rows[1][0], today);
    assert_eq!(rows[1][3], "4");
    let bad = format!(
        "/api/v1/orgs/{}/events/{}/reports/sales?format=pdf",
        org.slug, free.id
    );
    problem(t.get(&bad, Some(&org.key)).await, 422, "validation").await;
    t.stop().await;
}

/// Runs an attendee export of `tickets` tickets in the real binary, on
/// PostgreSQL and Redis (whose caches live in their own processes, so the
/// node's memory is the export code's alone); the growth of the node's
/// peak resident memory over the export and its download (KiB), and the
/// rows downloaded.
async fn export_in_own_process(tickets: i64) -> (u64, usize) {
    let admin = std::env::var(TEST_DATABASE_URL).unwrap();
    let (url, name) = fresh_pg_database(&admin, "vg_test").await.unwrap();
    let dir = std::env::temp_dir().join(unique("voelgoed-export"));
    let redis = std::env::var(TEST_REDIS_URL).unwrap();
    let node = Binary::start(
        &dir,
        &[
            ("DATABASE_URL", &url),
            ("REDIS_URL", &redis),
            ("VOELGOED_STOREFRONT_PER_MINUTE", "0"),
        ],
    )
    .await;
    let api = node.api.clone();
    let org = api.signup().await;
    let event = api.event(&org, 10).await;
    let order = api.buy(&org, &event, 1).await;
    // The rest of the tickets straight into the database, on the one order
    // (the export reads them a page at a time either way).
    let db = sqlx::postgres::PgPoolOptions::new()
        .connect(&url)
        .await
        .unwrap();
    let order_id = uuid::Uuid::parse_str(order["id"].as_str().unwrap()).unwrap();
    let (org_id, tt): (uuid::Uuid, uuid::Uuid) =
        sqlx::query_as("SELECT org_id, ticket_type_id FROM tickets WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&db)
            .await
            .unwrap();
    let event_id = uuid::Uuid::parse_str(&event.id).unwrap();
    sqlx::query(
        "INSERT INTO tickets (org_id, id, order_id, event_id, ticket_type_id, code, status, created_at)
         SELECT $1, gen_random_uuid(), $2, $3, $4, 'VG1.x.' || i, 'valid', 1700000000000000 + i
         FROM generate_series(1, $5) i",
    )
    .bind(org_id)
    .bind(order_id)
    .bind(event_id)
    .bind(tt)
    .bind(tickets - 1)
    .execute(&db)
    .await
    .unwrap();
    db.close().await;
    let pid = node.pid();
    // Start the peak afresh (Linux: "5" resets VmHWM to the current
    // resident size), so the start-up's own peak does not hide the export's.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak");
    let before = node.status_kib("VmRSS:");
    let x = ask(&api, &org, &event.id, "attendees", "csv").await;
    let x = ready(&api, &org, x["id"].as_str().unwrap(), 300).await;
    // Stream the download, counting lines, never holding it.
    let mut r = api
        .client
        .get(api.url(x["download_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut lines = 0;
    while let Some(chunk) = r.chunk().await.unwrap() {
        lines += chunk.iter().filter(|&&b| b == b'\n').count();
    }
    let grown = node.status_kib("VmHWM:").saturating_sub(before);
    drop(node);
    drop_pg_database(&admin, &name).await;
    let _ = std::fs::remove_dir_all(dir);
    (grown, lines - 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200000_ticket_export_runs_in_flat_memory() {
    if !postgres_configured() {
        eprintln!(
            "VOELGOED_TEST_DATABASE_URL / VOELGOED_TEST_REDIS_URL unset: the export memory test did not run"
        );
        return;
    }
    let (small, n_small) = export_in_own_process(20_000).await;
    let (large, n_large) = export_in_own_process(200_000).await;
    eprintln!("export memory: 20,000 rows +{small} KiB, 200,000 rows +{large} KiB peak");
    assert_eq!((n_small, n_large), (20_000, 200_000));
    // The 180,000 extra rows are about 30 MB of CSV; held in memory they
    // would lift the peak by at least that. Flat: within 12 MiB.
    assert!(
        large < small + 12 * 1024,
        "peak memory grew with the export: +{small} KiB for 20,000 rows, +{large} KiB for 200,000"
    );
}

both!(an_org_gets_five_exports_in_progress_and_then_429);
async fn an_org_gets_five_exports_in_progress_and_then_429(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 5).await;
    // Five asks still waiting (written straight in, so none finishes first).
    let db = t.app().db().clone();
    let org_id: uuid::Uuid = kernel::db_run!(&db, p => sqlx::query_scalar("SELECT id FROM orgs WHERE slug = $1").bind(&org.slug).fetch_one(p).await).unwrap();
    let event_id: uuid::Uuid = event.id.parse().unwrap();
    for _ in 0..5 {
        kernel::Stmt::new(
            "INSERT INTO exports (id, org_id, event_id, kind, format, status, rows_done, bytes, link_key, created_at, expires_at)
             VALUES ($1, $2, $3, 'orders', 'csv', 'queued', 0, 0, $4, 0, $5)",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(org_id)
        .bind(event_id)
        .bind(vec![1u8; 32])
        .bind(t.clock().now() + 3_600_000_000)
        .execute(&db)
        .await
        .unwrap();
    }
    let asks = format!("/api/v1/orgs/{}/events/{}/exports", org.slug, event.id);
    let r = t
        .post(
            &asks,
            Some(&org.key),
            json!({"kind": "orders", "format": "csv"}),
        )
        .await;
    assert!(r.headers().contains_key("retry-after"));
    problem(r, 429, "rate_limited").await;
    // Another org is not held up by this one's queue.
    let other = t.signup().await;
    let theirs = t.event(&other, 5).await;
    ask(&t, &other, &theirs.id, "orders", "csv").await;
    t.stop().await;
}
