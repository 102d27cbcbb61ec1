//! Mail as a buyer's inbox sees it: a real SMTP server on loopback (Python's
//! aiosmtpd, writing a Maildir) receives the confirmation with one PDF per
//! ticket whose QR code decodes (from the PDF's pixels) to the ticket's
//! code; the org's sender name and reply-to are on it; an unpaid order's
//! expiry sends a notice; the reminder goes out once, its lead before the
//! event; the buyer's order page offers the same PDFs; the embedded mode
//! writes `.eml` files; bad settings get 422.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};

use crate::{both, support::*};

/// aiosmtpd on a free loopback port, delivering into a Maildir.
struct Smtp {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Smtp {
    async fn start() -> Smtp {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = std::env::temp_dir().join(unique("maildir"));
        let child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 -m aiosmtpd (pip install aiosmtpd)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Smtp {
                    child,
                    port,
                    maildir,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        panic!("aiosmtpd did not listen on {port} (is it installed? pip install aiosmtpd)");
    }

    fn messages(&self) -> Vec<Mail> {
        read_messages(&self.maildir.join("new"))
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

/// A received message, parsed by Python's `email` package (not ours).
#[derive(Debug)]
pub(crate) struct Mail {
    pub headers: Value,
    pub body: String,
    pub pdfs: Vec<(String, Vec<u8>)>,
}

/// Parses every message file in `dir` (Maildir `new/`, or `.eml` files),
/// oldest first.
pub(crate) fn read_messages(dir: &Path) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    let script = r#"
import base64, email, email.policy, json, sys
out = []
for path in sys.argv[1:]:
    m = email.message_from_binary_file(open(path, "rb"), policy=email.policy.default)
    body = m.get_body(preferencelist=("plain",))
    out.append({
        "headers": {k.lower(): str(v) for k, v in m.items()},
        "body": body.get_content() if body else "",
        "pdfs": [[p.get_filename(), base64.b64encode(p.get_payload(decode=True)).decode()]
                 for p in m.iter_attachments() if p.get_content_type() == "application/pdf"],
    })
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&files)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    use base64::Engine;
    parsed
        .into_iter()
        .map(|m| Mail {
            headers: m["headers"].clone(),
            body: m["body"].as_str().unwrap_or_default().to_string(),
            pdfs: m["pdfs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap_or_default().to_string(),
                        base64::engine::general_purpose::STANDARD
                            .decode(p[1].as_str().unwrap())
                            .unwrap(),
                    )
                })
                .collect(),
        })
        .collect()
}

fn header<'a>(m: &'a Mail, name: &str) -> &'a str {
    m.headers[name].as_str().unwrap_or("")
}

/// The codes the PDFs' QR images decode to, and each PDF's text.
fn decode(pdfs: &[(String, Vec<u8>)]) -> (BTreeSet<String>, Vec<String>) {
    let mut codes = BTreeSet::new();
    let mut texts = Vec::new();
    for (_, pdf) in pdfs {
        let found = ticketpdf::decode::qr_codes(pdf).expect("a readable PDF");
        assert_eq!(found.len(), 1, "one QR code per ticket PDF");
        codes.extend(found);
        texts.push(ticketpdf::decode::text(pdf).expect("text"));
    }
    (codes, texts)
}

fn codes_of(order: &Value) -> BTreeSet<String> {
    order["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["code"].as_str().unwrap().to_string())
        .collect()
}

async fn wait_for_mail(t: &TestApp, smtp: &Smtp, n: usize) -> Vec<Mail> {
    t.eventually(&format!("{n} message(s) in the maildir"), || async {
        smtp.messages().len() >= n
    })
    .await;
    smtp.messages()
}

async fn put_settings(t: &TestApp, org: &Org, body: Value) -> reqwest::Response {
    t.api
        .client
        .put(t.url(&format!("/api/v1/orgs/{}/mail/settings", org.slug)))
        .bearer_auth(&org.key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

both!(confirmation_expiry_notice_and_reminder_reach_a_real_smtp_server);
async fn confirmation_expiry_notice_and_reminder_reach_a_real_smtp_server(backend: Backend) {
    let smtp = Smtp::start().await;
    let t = TestApp::spawn_with(backend, |c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{}", smtp.port));
        c.mail_from = "tickets@voelgoed.test".into();
    })
    .await;
    let org = t.signup().await;
    let r = put_settings(
        &t,
        &org,
        json!({"sender_name": "Klopse Box Office", "reply_to": "help@klopse.test", "reminder_hours": 48}),
    )
    .await;
    assert_eq!(r.status(), 200);

    // Paid (free) order of two tickets: one message, two PDFs, each QR
    // decoding to one of the order's codes.
    let event = t.event(&org, 10).await;
    let order = t.buy(&org, &event, 2).await;
    let mails = wait_for_mail(&t, &smtp, 1).await;
    let m = &mails[0];
    assert!(
        header(m, "from").contains("Klopse Box Office"),
        "{:?}",
        m.headers
    );
    assert!(
        header(m, "from").contains("<tickets@voelgoed.test>"),
        "{:?}",
        m.headers
    );
    assert_eq!(header(m, "reply-to"), "help@klopse.test");
    assert!(header(m, "to").contains("buyer@example.com"));
    assert_eq!(header(m, "subject"), "Your tickets for Test Night");
    assert!(m.body.contains(order["id"].as_str().unwrap()), "{}", m.body);
    assert_eq!(m.pdfs.len(), 2);
    let (codes, texts) = decode(&m.pdfs);
    assert_eq!(
        codes,
        codes_of(&order),
        "the QR codes are the tickets' codes"
    );
    for text in &texts {
        assert!(text.contains("Test Night"), "{text}");
        // 18:00 UTC in Johannesburg (UTC+2), the venue's time.
        assert!(
            text.contains("Sat 1 Jun 2030, 20:00 (Africa/Johannesburg)"),
            "{text}"
        );
        assert!(text.contains("Buyer"), "{text}");
    }

    // The org's mail log says so.
    let log: Value = t
        .get(&format!("/api/v1/orgs/{}/mail", org.slug), Some(&org.key))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(log["data"][0]["kind"], "order_confirmation");
    assert_eq!(log["data"][0]["attachments"], 2);

    // The buyer's order page offers the same PDF; the wrong key gets 404.
    let ticket = &order["tickets"][0];
    let path = format!(
        "/s/{}/orders/{}/tickets/{}/pdf",
        org.slug,
        order["id"].as_str().unwrap(),
        ticket["id"].as_str().unwrap()
    );
    let r = t
        .get(
            &format!(
                "{path}?access_token={}",
                order["access_token"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let pdf = r.bytes().await.unwrap().to_vec();
    assert_eq!(
        ticketpdf::decode::qr_codes(&pdf).unwrap(),
        vec![ticket["code"].as_str().unwrap().to_string()]
    );
    let r = t
        .get(&format!("{path}?access_token=not-the-key"), None)
        .await;
    problem(r, 404, "not_found").await;

    // An unpaid order that expires: a notice, no PDFs.
    let priced = t
        .try_event(&org, &EventSpec::capacity(5).priced(15_000))
        .await
        .unwrap();
    let pending = t.buy(&org, &priced, 1).await;
    assert_eq!(pending["status"], "pending");
    t.advance(Duration::from_secs(
        t.config().payment_timeout_secs as u64 + 60,
    ));
    let mails = wait_for_mail(&t, &smtp, 2).await;
    let m = &mails[1];
    assert_eq!(
        header(m, "subject"),
        "Your order for Test Night has expired"
    );
    assert!(m.body.contains(pending["id"].as_str().unwrap()));
    assert!(m.pdfs.is_empty());

    // The reminder: 48 h before the start (2030-06-01T18:00Z), once per
    // paid order, with the tickets again.
    let starts = kernel::clock::parse_rfc3339("2030-06-01T18:00:00Z").unwrap();
    let until = starts - 47 * 3600 * 1_000_000 - t.clock().now();
    t.advance(Duration::from_micros(until as u64));
    let mails = wait_for_mail(&t, &smtp, 3).await;
    let m = &mails[2];
    assert_eq!(header(m, "subject"), "Soon: Test Night");
    assert_eq!(decode(&m.pdfs).0, codes_of(&order));
    t.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        smtp.messages().len(),
        3,
        "one reminder per order, and none for the unpaid one"
    );
    t.stop().await;
}

both!(without_smtp_the_mail_is_written_as_eml_files);
async fn without_smtp_the_mail_is_written_as_eml_files(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let order = t.buy(&org, &event, 1).await;
    let dir = t.config().data_dir.join("mail");
    t.eventually("an .eml file", || async { !read_messages(&dir).is_empty() })
        .await;
    let mails = read_messages(&dir);
    assert_eq!(mails.len(), 1);
    assert_eq!(decode(&mails[0].pdfs).0, codes_of(&order));
    t.stop().await;
}

both!(bad_mail_settings_are_refused_and_change_nothing);
async fn bad_mail_settings_are_refused_and_change_nothing(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    for (body, status) in [
        (json!({"reminder_hours": -1}), 422),
        (json!({"reminder_hours": 9000}), 422),
        (
            json!({"reminder_hours": 24, "reply_to": "not an address"}),
            422,
        ),
        (
            json!({"reminder_hours": 24, "sender_name": "x".repeat(101)}),
            422,
        ),
        (json!({"reminder_hours": "24"}), 422),
        (json!({"reminder_hours": 24, "colour": "red"}), 422),
        (json!([1, 2]), 422),
    ] {
        let r = put_settings(&t, &org, body.clone()).await;
        assert_eq!(r.status().as_u16(), status, "{body}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/problem+json"),
            "{body}"
        );
    }
    let r = t
        .api
        .client
        .put(t.url(&format!("/api/v1/orgs/{}/mail/settings", org.slug)))
        .bearer_auth(&org.key)
        .header("content-type", "application/json")
        .body("{\"reminder_hours\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let s: Value = t
        .get(
            &format!("/api/v1/orgs/{}/mail/settings", org.slug),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        s,
        json!({"sender_name": null, "reply_to": null, "reminder_hours": 24})
    );
    // Another org's key cannot read them.
    let other = t.signup().await;
    let r = t
        .get(
            &format!("/api/v1/orgs/{}/mail/settings", org.slug),
            Some(&other.key),
        )
        .await;
    assert!(matches!(r.status().as_u16(), 403 | 404), "{}", r.status());
    t.stop().await;
}

both!(buyers_are_told_of_refunds_and_cancellations_once_each);
async fn buyers_are_told_of_refunds_and_cancellations_once_each(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t
        .try_event(&org, &EventSpec::capacity(10).priced(1000))
        .await
        .unwrap();
    let dir = t.config().data_dir.join("mail");
    let o = |p: &str| format!("/api/v1/orgs/{}{p}", org.slug);
    // Paid by EFT, refunded twice in part; another cancelled unpaid.
    let paid = t.buy(&org, &event, 2).await;
    let paid = paid["id"].as_str().unwrap();
    t.post(
        &o(&format!("/orders/{paid}/mark-paid")),
        Some(&org.key),
        json!({}),
    )
    .await;
    for amount in [300, 200] {
        let r = t
            .post(
                &o(&format!("/orders/{paid}/refunds")),
                Some(&org.key),
                json!({"amount_cents": amount}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let unpaid = t.buy(&org, &event, 1).await;
    let unpaid = unpaid["id"].as_str().unwrap();
    let r = t
        .post(
            &o(&format!("/orders/{unpaid}/cancel")),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    // The confirmation, two refund notices, one cancellation notice.
    for _ in 0..200 {
        if read_messages(&dir).len() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mails = read_messages(&dir);
    let subjects: Vec<&str> = mails.iter().map(|m| header(m, "subject")).collect();
    assert_eq!(mails.len(), 4, "{subjects:?}");
    let refunds: Vec<&Mail> = mails
        .iter()
        .filter(|m| header(m, "subject").starts_with("Refund"))
        .collect();
    assert_eq!(refunds.len(), 2, "{subjects:?}");
    assert!(
        refunds.iter().any(|m| m.body.contains("ZAR 3.00")),
        "{}",
        refunds[0].body
    );
    assert!(refunds.iter().any(|m| m.body.contains("ZAR 2.00")));
    assert!(refunds.iter().all(|m| m.body.contains("stay valid")));
    let cancelled = mails
        .iter()
        .find(|m| header(m, "subject").contains("was cancelled"))
        .expect("a cancellation notice");
    assert!(
        cancelled.body.contains("Nothing was charged"),
        "{}",
        cancelled.body
    );
    t.stop().await;
}
