//! The Stripe stand-in as a Stripe client meets it: Stripe's own Python
//! library accepts its objects, errors, replays and signed events
//! (`scripts/stripe_standin_check.py`), and over plain HTTP its signatures
//! verify, idempotency keys replay, keys are checked, refunds are bounded,
//! a slow provider outlasts a short client timeout, and a checkout page on
//! another origin can confirm with the publishable key.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use voelgoed::stripe_standin::{self, Standin, StandinHandle};

const SECRET: &str = "sk_test_itest";
const PUBLISHABLE: &str = "pk_test_itest";
const WEBHOOK_SECRET: &str = "whsec_itest";

struct Stripe {
    handle: StandinHandle,
    http: reqwest::Client,
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Stripe {
    async fn start(webhook_url: Option<String>) -> Stripe {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = stripe_standin::start(
            Standin {
                secret_key: SECRET.into(),
                publishable_key: PUBLISHABLE.into(),
                webhook_secret: WEBHOOK_SECRET.into(),
                webhook_url,
                ..Standin::default()
            },
            listener,
        )
        .await;
        Stripe {
            handle,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.base_url())
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.json().await.unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A form POST with the secret key, as Stripe's libraries send it.
    async fn post(&self, path: &str, form: &[(&str, &str)], key: Option<&str>) -> Reply {
        let mut request = self
            .http
            .post(self.url(path))
            .bearer_auth(SECRET)
            .form(form);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        self.send(request).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.url(path)).bearer_auth(SECRET))
            .await
    }

    async fn intent(&self, amount: &str) -> Value {
        let r = self
            .post(
                "/v1/payment_intents",
                &[
                    ("amount", amount),
                    ("currency", "zar"),
                    ("metadata[order_id]", "ord_1"),
                ],
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    async fn paid_intent(&self, amount: &str) -> Value {
        let pi = self.intent(amount).await;
        let r = self
            .post(
                &format!("/v1/payment_intents/{}/confirm", pi["id"].as_str().unwrap()),
                &[("payment_method", "pm_card_visa")],
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }
}

/// A webhook endpoint on loopback keeping each request's headers and raw
/// body; it answers 500 to the first `fail_first` requests.
#[derive(Clone, Default)]
struct Hooks {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    fail_first: Arc<AtomicU32>,
}

impl Hooks {
    async fn start() -> (Hooks, String) {
        async fn take(State(h): State<Hooks>, headers: HeaderMap, body: Bytes) -> StatusCode {
            h.got.lock().unwrap().push((headers, body));
            let failing = h
                .fail_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
        }
        let hooks = Hooks::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/stripe/webhook", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .route("/stripe/webhook", axum::routing::post(take))
            .with_state(hooks.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (hooks, url)
    }

    /// Every delivery of `kind` about `object_id`, waiting up to 10 s for the first.
    async fn wait_for(&self, kind: &str, object_id: &str) -> Vec<(HeaderMap, Bytes, Value)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<_> = self
                .got
                .lock()
                .unwrap()
                .iter()
                .map(|(h, b)| {
                    (
                        h.clone(),
                        b.clone(),
                        serde_json::from_slice::<Value>(b).unwrap(),
                    )
                })
                .filter(|(_, _, e)| e["type"] == kind && e["data"]["object"]["id"] == object_id)
                .collect();
            if !found.is_empty() {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} webhook for {object_id} within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks a `Stripe-Signature` header the way Stripe documents it, with no
/// code of the stand-in's: `t=<secs>,v1=<hex HMAC-SHA256("<t>.<body>")>`.
fn assert_signed(headers: &HeaderMap, body: &[u8]) {
    let header = headers["stripe-signature"].to_str().unwrap();
    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("malformed Stripe-Signature {header}"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t: i64 = t.parse().unwrap();
    assert!((now - t).abs() <= 60, "timestamp {t} is not now ({now})");
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "the signature does not verify");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripes_own_python_library_accepts_the_standin() {
    let has_library = std::process::Command::new("python3")
        .args(["-c", "import stripe"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_library,
        "Stripe's Python library is missing: run scripts/test.sh (it installs stripe==16.1.0)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stripe = Stripe::start(Some(format!("http://127.0.0.1:{port}/"))).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/stripe_standin_check.py"
    );
    let base = stripe.handle.base_url();
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args(["--base", &base, "--secret-key", SECRET])
        .args(["--webhook-secret", WEBHOOK_SECRET])
        .args(["--webhook-port", &port.to_string()])
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "scripts/stripe_standin_check.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("checks held"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_signed_sent_retried_and_can_be_sent_again() {
    let (hooks, url) = Hooks::start().await;
    let stripe = Stripe::start(Some(url)).await;
    // The receiver is down for the first two attempts: the event still arrives.
    hooks.fail_first.store(2, Ordering::SeqCst);
    let pi = stripe.intent("1500").await;
    let id = pi["id"].as_str().unwrap();
    let confirmed = stripe
        .post(
            &format!("/v1/payment_intents/{id}/confirm"),
            &[("payment_method", "pm_card_visa")],
            Some("confirm-1"),
        )
        .await;
    assert_eq!(confirmed.body["status"], "succeeded");

    let got = hooks.wait_for("payment_intent.succeeded", id).await;
    let (headers, body, event) = got.last().unwrap();
    assert_signed(headers, body);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert!(event["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(event["object"], "event");
    assert_eq!(event["api_version"], stripe_standin::API_VERSION);
    assert_eq!(event["livemode"], false);
    assert_eq!(event["request"]["idempotency_key"], "confirm-1");
    assert_eq!(event["data"]["object"]["amount_received"], 1500);
    assert_eq!(event["data"]["object"]["metadata"]["order_id"], "ord_1");
    // The refused attempts were retried; the stand-in's log shows both.
    let event_id = event["id"].as_str().unwrap().to_string();
    eventually(
        "the delivery log shows the refusals and the success",
        || {
            let log = stripe.handle.deliveries();
            log.iter().filter(|d| d.status == Some(500)).count() == 2
                && log
                    .iter()
                    .any(|d| d.event_id == event_id && d.status == Some(200))
        },
    )
    .await;

    // Sent again: the same event, signed afresh.
    assert_eq!(stripe.handle.resend(&event_id).await.unwrap(), 200);
    let got = hooks.wait_for("payment_intent.succeeded", id).await;
    let again: Vec<_> = got
        .iter()
        .filter(|(_, _, e)| e["id"] == event_id.as_str())
        .collect();
    assert!(again.len() >= 2);
    let (headers, body, _) = again.last().unwrap();
    assert_signed(headers, body);

    // Any body, signed and sent once: how a test delivers out of order.
    let made_up = json!({"id": "evt_made_up", "object": "event", "type": "payment_intent.payment_failed",
                         "data": {"object": {"id": "pi_made_up", "object": "payment_intent"}}});
    assert_eq!(stripe.handle.deliver(&made_up).await.unwrap(), 200);
    let got = hooks
        .wait_for("payment_intent.payment_failed", "pi_made_up")
        .await;
    assert_signed(&got[0].0, &got[0].1);

    // Signed at the time a test's clock says.
    stripe.handle.set_signing_clock(|| 4_000_000_000);
    assert_eq!(stripe.handle.resend(&event_id).await.unwrap(), 200);
    eventually("a delivery signed at the test's time", || {
        hooks.got.lock().unwrap().iter().any(|(h, _)| {
            h["stripe-signature"]
                .to_str()
                .is_ok_and(|s| s.starts_with("t=4000000000,v1="))
        })
    })
    .await;

    // The customer's side played by the test: paid, declined.
    let other = stripe.intent("800").await;
    let other_id = other["id"].as_str().unwrap();
    let declined = stripe.handle.fail(other_id).unwrap();
    assert_eq!(declined["status"], "requires_payment_method");
    assert_eq!(declined["last_payment_error"]["code"], "card_declined");
    hooks
        .wait_for("payment_intent.payment_failed", other_id)
        .await;
    let paid = stripe.handle.succeed(other_id).unwrap();
    assert_eq!(paid["status"], "succeeded");
    hooks.wait_for("payment_intent.succeeded", other_id).await;
    assert!(stripe.handle.succeed(other_id).is_err(), "paying twice");
    let kinds: Vec<String> = stripe
        .handle
        .events()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(&"payment_intent.created".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_names_one_request() {
    let stripe = Stripe::start(None).await;
    let form = [
        ("amount", "2000"),
        ("currency", "ZAR"),
        ("metadata[order_id]", "ord_9"),
    ];
    let first = stripe
        .post("/v1/payment_intents", &form, Some("order-9"))
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["currency"], "zar");
    assert_eq!(first.header("idempotent-replayed"), None);
    assert!(first.header("request-id").unwrap().starts_with("req_"));

    let replay = stripe
        .post("/v1/payment_intents", &form, Some("order-9"))
        .await;
    assert_eq!(replay.status, 200);
    assert_eq!(replay.body, first.body);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        replay.header("original-request"),
        first.header("request-id")
    );
    assert_eq!(stripe.handle.create_calls(), 2);
    assert_eq!(stripe.handle.intents().len(), 1);

    let other = [
        ("amount", "2100"),
        ("currency", "zar"),
        ("metadata[order_id]", "ord_9"),
    ];
    let clash = stripe
        .post("/v1/payment_intents", &other, Some("order-9"))
        .await;
    assert_eq!(clash.status, 400);
    assert_eq!(clash.body["error"]["type"], "idempotency_error");
    assert!(
        clash.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Keys for idempotent requests can only be used with the same parameters")
    );
    let elsewhere = stripe
        .post(
            "/v1/refunds",
            &[("payment_intent", "pi_x")],
            Some("order-9"),
        )
        .await;
    assert_eq!(elsewhere.status, 400);
    assert_eq!(elsewhere.body["error"]["type"], "idempotency_error");

    // A refused request keeps nothing under its key: corrected, it goes through.
    let refused = stripe
        .post(
            "/v1/payment_intents",
            &[("currency", "zar")],
            Some("order-10"),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.body["error"]["type"], "invalid_request_error");
    assert_eq!(refused.body["error"]["param"], "amount");
    assert_eq!(refused.body["error"]["code"], "parameter_missing");
    let corrected = stripe
        .post(
            "/v1/payment_intents",
            &[("amount", "5"), ("currency", "zar")],
            Some("order-10"),
        )
        .await;
    assert_eq!(corrected.status, 200);
    for (form, param) in [
        (vec![("amount", "0"), ("currency", "zar")], "amount"),
        (vec![("amount", "1.5"), ("currency", "zar")], "amount"),
        (vec![("amount", "100"), ("currency", "zzz")], "currency"),
        (
            vec![("amount", "100"), ("currency", "zar"), ("colour", "red")],
            "colour",
        ),
    ] {
        let r = stripe.post("/v1/payment_intents", &form, None).await;
        assert_eq!(r.status, 400, "{form:?}");
        assert_eq!(r.body["error"]["param"], param, "{form:?}");
    }
    let missing = stripe.get("/v1/payment_intents/pi_nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "resource_missing");
    assert_eq!(stripe.handle.intents().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_right_keys_are_let_in() {
    let stripe = Stripe::start(None).await;
    let wrong = stripe
        .send(
            stripe
                .http
                .get(stripe.url("/v1/payment_intents"))
                .bearer_auth("sk_test_wrongkey1234"),
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body["error"]["type"], "invalid_request_error");
    let message = wrong.body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Invalid API Key provided: sk_test_"),
        "{message}"
    );
    assert!(
        !message.contains("wrongkey"),
        "the key is not echoed: {message}"
    );
    let none = stripe
        .send(stripe.http.get(stripe.url("/v1/payment_intents")))
        .await;
    assert_eq!(none.status, 401);
    assert!(
        none.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("You did not provide an API key")
    );
    let basic = stripe
        .send(
            stripe
                .http
                .get(stripe.url("/v1/payment_intents?limit=1"))
                .basic_auth(SECRET, Some("")),
        )
        .await;
    assert_eq!(basic.status, 200);
    assert_eq!(basic.body["object"], "list");
    let publishable = stripe
        .send(
            stripe
                .http
                .post(stripe.url("/v1/payment_intents"))
                .bearer_auth(PUBLISHABLE)
                .form(&[("amount", "100"), ("currency", "zar")]),
        )
        .await;
    assert_eq!(publishable.status, 401);
    assert_eq!(stripe.handle.intents().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_never_exceed_what_was_received() {
    let stripe = Stripe::start(None).await;
    let unpaid = stripe.intent("1000").await;
    let r = stripe
        .post(
            "/v1/refunds",
            &[("payment_intent", unpaid["id"].as_str().unwrap())],
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["type"], "invalid_request_error");

    let paid = stripe.paid_intent("1000").await;
    let id = paid["id"].as_str().unwrap();
    assert_eq!(paid["amount_received"], 1000);
    assert!(paid["latest_charge"].as_str().unwrap().starts_with("ch_"));
    let part = stripe
        .post(
            "/v1/refunds",
            &[
                ("payment_intent", id),
                ("amount", "600"),
                ("metadata[why]", "one seat"),
            ],
            Some("refund-1"),
        )
        .await;
    assert_eq!(part.status, 200, "{}", part.body);
    assert_eq!(part.body["object"], "refund");
    assert_eq!(part.body["amount"], 600);
    assert_eq!(part.body["status"], "succeeded");
    assert_eq!(part.body["charge"], paid["latest_charge"]);
    assert_eq!(part.body["metadata"]["why"], "one seat");
    let too_much = stripe
        .post(
            "/v1/refunds",
            &[("payment_intent", id), ("amount", "500")],
            None,
        )
        .await;
    assert_eq!(too_much.status, 400);
    assert_eq!(too_much.body["error"]["param"], "amount");
    let rest = stripe
        .post("/v1/refunds", &[("payment_intent", id)], None)
        .await;
    assert_eq!(rest.body["amount"], 400);
    let again = stripe
        .post("/v1/refunds", &[("payment_intent", id)], None)
        .await;
    assert_eq!(again.status, 400);
    assert_eq!(again.body["error"]["code"], "charge_already_refunded");
    // The key's replay does not refund twice.
    let replay = stripe
        .post(
            "/v1/refunds",
            &[
                ("payment_intent", id),
                ("amount", "600"),
                ("metadata[why]", "one seat"),
            ],
            Some("refund-1"),
        )
        .await;
    assert_eq!(replay.body["id"], part.body["id"]);
    assert_eq!(stripe.handle.refunds().len(), 2);
    assert_eq!(stripe.handle.refund_calls(), 6);

    let listed = stripe
        .get(&format!("/v1/refunds?payment_intent={id}"))
        .await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 2);
    let one = stripe
        .get(&format!(
            "/v1/refunds/{}",
            part.body["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(one.body["amount"], 600);
    let charge = stripe
        .get(&format!(
            "/v1/charges/{}",
            paid["latest_charge"].as_str().unwrap()
        ))
        .await;
    assert_eq!(charge.body["amount_refunded"], 1000);
    assert_eq!(charge.body["refunded"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_failing_provider_as_a_client_meets_it() {
    let stripe = Stripe::start(None).await;
    let form = [("amount", "700"), ("currency", "zar")];

    // Late: the client gives up, the intent was made all the same, and
    // the retry with the same key gets it at once.
    stripe.handle.delay_next_creates(1, Duration::from_secs(3));
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let timed_out = impatient
        .post(stripe.url("/v1/payment_intents"))
        .bearer_auth(SECRET)
        .header("Idempotency-Key", "slow-1")
        .form(&form)
        .send()
        .await
        .unwrap_err();
    assert!(timed_out.is_timeout(), "{timed_out}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(stripe.handle.intents().len(), 1);
    let retry = stripe
        .post("/v1/payment_intents", &form, Some("slow-1"))
        .await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body["id"], stripe.handle.intents()[0]["id"]);

    // Failing: nothing is made and nothing kept under the key.
    stripe.handle.fail_next_creates(1);
    let failed = stripe
        .post("/v1/payment_intents", &form, Some("fail-1"))
        .await;
    assert_eq!(failed.status, 500);
    assert_eq!(failed.body["error"]["type"], "api_error");
    assert_eq!(stripe.handle.intents().len(), 1);
    let retry = stripe
        .post("/v1/payment_intents", &form, Some("fail-1"))
        .await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.header("idempotent-replayed"), None);
    assert_eq!(stripe.handle.intents().len(), 2);
    assert_eq!(stripe.handle.create_calls(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_page_on_another_origin_confirms_with_the_publishable_key() {
    let (hooks, url) = Hooks::start().await;
    let stripe = Stripe::start(Some(url)).await;
    let preflight = stripe
        .send(
            stripe
                .http
                .request(
                    reqwest::Method::OPTIONS,
                    stripe.url("/v1/payment_intents/pi_x/confirm"),
                )
                .header("Origin", "http://shop.localhost:8080")
                .header("Access-Control-Request-Method", "POST")
                .header("Access-Control-Request-Headers", "content-type"),
        )
        .await;
    assert_eq!(preflight.status, 200);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert!(
        preflight
            .header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("content-type")
    );

    let pi = stripe.intent("1200").await;
    let id = pi["id"].as_str().unwrap();
    let secret = pi["client_secret"].as_str().unwrap();
    assert!(secret.starts_with(&format!("{id}_secret_")));
    let confirm = |client_secret: &str, method: &str| {
        stripe
            .http
            .post(stripe.url(&format!("/v1/payment_intents/{id}/confirm")))
            .header("Origin", "http://shop.localhost:8080")
            .form(&[
                ("key", PUBLISHABLE),
                ("client_secret", client_secret),
                ("payment_method", method),
                ("return_url", "http://shop.localhost:8080/done"),
            ])
    };
    let wrong = stripe.send(confirm("pi_x_secret_y", "pm_card_visa")).await;
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.body["error"]["param"], "client_secret");

    let declined = stripe.send(confirm(secret, "pm_card_chargeDeclined")).await;
    assert_eq!(declined.status, 402);
    assert_eq!(declined.body["error"]["type"], "card_error");
    assert_eq!(declined.body["error"]["code"], "card_declined");
    assert_eq!(
        declined.body["error"]["payment_intent"]["status"],
        "requires_payment_method"
    );
    assert_eq!(declined.header("access-control-allow-origin"), Some("*"));
    hooks.wait_for("payment_intent.payment_failed", id).await;

    let paid = stripe.send(confirm(secret, "pm_card_visa")).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.body["status"], "succeeded");
    assert_eq!(paid.header("access-control-allow-origin"), Some("*"));
    let (headers, body, _) = hooks
        .wait_for("payment_intent.succeeded", id)
        .await
        .remove(0);
    assert_signed(&headers, &body);

    // The page may read its intent back with the same pair.
    let read = stripe
        .send(stripe.http.get(stripe.url(&format!(
            "/v1/payment_intents/{id}?key={PUBLISHABLE}&client_secret={secret}"
        ))))
        .await;
    assert_eq!(read.body["status"], "succeeded");

    // Lists page newest first.
    for amount in ["101", "102", "103"] {
        stripe.intent(amount).await;
    }
    let first = stripe
        .get("/v1/payment_intents?limit=2&created[gte]=0")
        .await;
    assert_eq!(first.body["object"], "list");
    assert_eq!(first.body["url"], "/v1/payment_intents");
    assert_eq!(first.body["has_more"], true);
    let amounts = |r: &Reply| -> Vec<i64> {
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["amount"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(amounts(&first), [103, 102]);
    let last_id = first.body["data"][1]["id"].as_str().unwrap().to_string();
    let next = stripe
        .get(&format!(
            "/v1/payment_intents?limit=2&starting_after={last_id}"
        ))
        .await;
    assert_eq!(amounts(&next), [101, 1200]);
    assert_eq!(next.body["has_more"], false);
}
