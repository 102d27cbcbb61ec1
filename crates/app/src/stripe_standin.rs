//! A local stand-in for the part of Stripe's HTTP API that VoelgoedEvents
//! uses, so tests and the load driver can take payments without the
//! internet: PaymentIntents (create, retrieve, list, update, confirm,
//! cancel), Refunds (create, retrieve, list), Charges and Events (read).
//! It speaks Stripe's dialect: form-encoded requests with bracket keys
//! (`metadata[order_id]`), JSON objects shaped like Stripe's, Stripe's error
//! body, API-key authentication (Bearer or Basic; the publishable key plus
//! `client_secret` for what Stripe.js may do), `Idempotency-Key` replays,
//! `Request-Id`, CORS for a checkout page on another origin, and webhook
//! events signed with `Stripe-Signature`. `scripts/stripe_standin_check.py`
//! drives it with Stripe's own Python library to show the shapes hold.
//!
//! Beyond the API a test can look at what was made (`intents`, `refunds`,
//! `events`, `deliveries`), count create calls, make the next creates fail
//! or answer late, play the customer (`succeed`, `fail`) and deliver events
//! again or out of order (`resend`, `deliver`).
//!
//! Invariants: a refund never takes a charge's refunded total past what it
//! received; an idempotency key (per API key) names one request — its replay
//! answers the first answer's bytes and makes nothing new.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State as AxumState,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::Response,
};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::{net::TcpListener, sync::Semaphore};

/// The API version stamped on events and responses.
pub const API_VERSION: &str = "2024-06-20";

/// Delivery attempts per event and the pause before each retry.
const RETRY_PAUSES: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(300),
    Duration::from_secs(1),
    Duration::from_secs(3),
];

/// How the stand-in is set up. `Default` gives test keys and no webhook URL.
#[derive(Clone)]
pub struct Standin {
    pub secret_key: String,
    pub publishable_key: String,
    pub webhook_secret: String,
    /// Where events are POSTed; none records them without sending.
    pub webhook_url: Option<String>,
    /// The event types sent to `webhook_url` (Stripe's `enabled_events`);
    /// `*` sends all. Every event is recorded either way.
    pub enabled_events: Vec<String>,
}

impl Default for Standin {
    fn default() -> Self {
        Standin {
            secret_key: "sk_test_standin".into(),
            publishable_key: "pk_test_standin".into(),
            webhook_secret: "whsec_standin".into(),
            webhook_url: None,
            enabled_events: vec!["*".into()],
        }
    }
}

impl std::fmt::Debug for Standin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standin")
            .field("secret_key", &redact(&self.secret_key))
            .field("publishable_key", &self.publishable_key)
            .field("webhook_secret", &"whsec_…")
            .field("webhook_url", &self.webhook_url)
            .field("enabled_events", &self.enabled_events)
            .finish()
    }
}

/// One attempt to deliver an event to the webhook URL.
#[derive(Clone, Debug, Serialize)]
pub struct Delivery {
    pub event_id: String,
    pub event_type: String,
    pub attempt: u32,
    /// The receiver's HTTP status; none when it could not be reached.
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// The running stand-in: its address, and what tests inspect and steer.
#[derive(Clone)]
pub struct StandinHandle {
    base_url: String,
    shared: Arc<Shared>,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Serves the stand-in on `listener` until [`StandinHandle::stop`] (or the
/// runtime ends).
pub async fn start(config: Standin, listener: TcpListener) -> StandinHandle {
    let addr: SocketAddr = listener
        .local_addr()
        .expect("a bound listener has a local address");
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let shared = Arc::new(Shared {
        keys: Keys {
            secret: config.secret_key,
            publishable: config.publishable_key,
            webhook_secret: config.webhook_secret,
        },
        webhook: Mutex::new(Webhook {
            url: config.webhook_url,
            enabled: config.enabled_events,
        }),
        state: Mutex::new(Store::default()),
        faults: Mutex::new(Faults::default()),
        create_calls: AtomicU64::new(0),
        refund_calls: AtomicU64::new(0),
        signing_clock: Mutex::new(None),
        http,
        delivering: Semaphore::new(32),
        runtime: tokio::runtime::Handle::current(),
    });
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let router = Router::new().fallback(handle).with_state(shared.clone());
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(%error, "stripe stand-in stopped");
        }
    });
    StandinHandle {
        base_url: format!("http://{addr}"),
        shared,
        stop: Arc::new(stop),
    }
}

/// `voelgoed stripe-standin`: serve the stand-in until interrupted.
#[derive(clap::Args, Debug, Clone)]
pub struct StandinArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:12111")]
    pub addr: SocketAddr,
    /// The secret key clients must present (Bearer, or Basic as the user name).
    #[arg(
        long,
        env = "STRIPE_STANDIN_SECRET_KEY",
        default_value = "sk_test_standin",
        hide_env_values = true
    )]
    pub secret_key: String,
    /// The key a checkout page confirms with, beside the intent's client_secret.
    #[arg(
        long,
        env = "STRIPE_STANDIN_PUBLISHABLE_KEY",
        default_value = "pk_test_standin"
    )]
    pub publishable_key: String,
    /// The secret events are signed with (Stripe-Signature), whsec_ included.
    #[arg(
        long,
        env = "STRIPE_STANDIN_WEBHOOK_SECRET",
        default_value = "whsec_standin",
        hide_env_values = true
    )]
    pub webhook_secret: String,
    /// Where to POST signed events; without it events are only kept (GET /v1/events).
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// Event types to send, comma-separated (Stripe's enabled_events); * for all.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub enabled_events: Vec<String>,
}

/// Serves the stand-in on `args.addr`, prints its base URL, and stops on
/// Ctrl-C or SIGTERM.
pub async fn run(args: StandinArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.addr).await?;
    let handle = start(
        Standin {
            secret_key: args.secret_key,
            publishable_key: args.publishable_key,
            webhook_secret: args.webhook_secret,
            webhook_url: args.webhook_url,
            enabled_events: args.enabled_events,
        },
        listener,
    )
    .await;
    println!("{}", handle.base_url());
    crate::server::shutdown_signal().await;
    handle.stop();
    Ok(())
}

/// `Stripe-Signature` for `payload` sent at `timestamp` (Unix seconds):
/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<payload>">`, keyed
/// with the whole secret string (`whsec_` included), as Stripe does.
pub fn signature_header(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    format!("t={timestamp},v1={}", hex(&mac.finalize().into_bytes()))
}

impl StandinHandle {
    /// `http://127.0.0.1:<port>`, what a Stripe client takes as its API base.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The keys and the current webhook settings.
    pub fn config(&self) -> Standin {
        let hook = self.shared.webhook();
        Standin {
            secret_key: self.shared.keys.secret.clone(),
            publishable_key: self.shared.keys.publishable.clone(),
            webhook_secret: self.shared.keys.webhook_secret.clone(),
            webhook_url: hook.url.clone(),
            enabled_events: hook.enabled.clone(),
        }
    }

    /// Events made from now on (and retries still pending) go to `url`.
    pub fn set_webhook_url(&self, url: Option<String>) {
        self.shared.webhook().url = url;
    }

    /// Every PaymentIntent, oldest first, as the API would show it now.
    pub fn intents(&self) -> Vec<Value> {
        let st = self.shared.store();
        let mut all: Vec<&Intent> = st.intents.values().collect();
        all.sort_by_key(|i| i.seq);
        all.into_iter().map(|i| i.render()).collect()
    }

    pub fn intent(&self, id: &str) -> Option<Value> {
        self.shared.store().intents.get(id).map(Intent::render)
    }

    /// Every Refund, oldest first.
    pub fn refunds(&self) -> Vec<Value> {
        let st = self.shared.store();
        let mut all: Vec<&Refund> = st.refunds.values().collect();
        all.sort_by_key(|r| r.seq);
        all.into_iter().map(Refund::render).collect()
    }

    /// Every event made, oldest first, delivered or not.
    pub fn events(&self) -> Vec<Value> {
        self.shared.store().events.clone()
    }

    /// Every delivery attempt, in the order they finished.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.store().deliveries.clone()
    }

    /// Requests that reached `POST /v1/payment_intents`: idempotent
    /// replays, refusals and injected failures included.
    pub fn create_calls(&self) -> u64 {
        self.shared.create_calls.load(Ordering::SeqCst)
    }

    /// Requests that reached `POST /v1/refunds`, replays included.
    pub fn refund_calls(&self) -> u64 {
        self.shared.refund_calls.load(Ordering::SeqCst)
    }

    /// The next `n` creates answer 500 `api_error` without doing anything
    /// (as when the provider fails before the endpoint runs: nothing is
    /// created and nothing is kept under the idempotency key).
    pub fn fail_next_creates(&self, n: u32) {
        self.shared.faults().fail_creates = n;
    }

    /// The next `n` creates (replays included) answer `by` late. The work is
    /// done and kept under the idempotency key first: a client that gives up
    /// waiting leaves an intent behind, which a retry with the same key gets.
    pub fn delay_next_creates(&self, n: u32, by: Duration) {
        let mut f = self.shared.faults();
        f.delay_creates = n;
        f.delay = by;
    }

    /// The customer pays: the intent succeeds with a test Visa card and
    /// `payment_intent.succeeded` is sent.
    pub fn succeed(&self, intent_id: &str) -> anyhow::Result<Value> {
        self.shared.play_customer(intent_id, Card::Pays)
    }

    /// The customer pays with a card whose refunds fail (Stripe's
    /// `pm_card_refundFail`): the intent succeeds; a refund of it later
    /// answers `succeeded`, then fails with `refund.failed`.
    pub fn succeed_refunds_fail(&self, intent_id: &str) -> anyhow::Result<Value> {
        self.shared.play_customer(intent_id, Card::PaysRefundFails)
    }

    /// The customer's card is declined: the intent goes back to
    /// `requires_payment_method` with `last_payment_error`, and
    /// `payment_intent.payment_failed` is sent.
    pub fn fail(&self, intent_id: &str) -> anyhow::Result<Value> {
        self.shared
            .play_customer(intent_id, Card::Declined(Decline::GENERIC))
    }

    /// Delivers an event made earlier again, freshly signed, once; returns
    /// the receiver's status.
    pub async fn resend(&self, event_id: &str) -> anyhow::Result<u16> {
        let event = self
            .shared
            .store()
            .events
            .iter()
            .find(|e| e["id"] == event_id)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no event {event_id}"))?;
        self.deliver(&event).await
    }

    /// Signs and POSTs any event body to the webhook URL, once (for events
    /// out of order, made up or altered); returns the receiver's status.
    pub async fn deliver(&self, event: &Value) -> anyhow::Result<u16> {
        let url = self
            .shared
            .webhook()
            .url
            .clone()
            .ok_or_else(|| anyhow::anyhow!("the stand-in has no webhook URL"))?;
        let body = serde_json::to_vec_pretty(event)?;
        let outcome = self.shared.post_signed(&url, &body).await;
        self.shared.record_delivery(event, 1, &outcome);
        Ok(outcome?)
    }

    /// Signature timestamps from `clock` (Unix seconds) instead of real
    /// time: for a platform under test whose clock runs ahead, so its
    /// tolerance check sees a fresh signature. Objects keep real times.
    pub fn set_signing_clock(&self, clock: impl Fn() -> i64 + Send + Sync + 'static) {
        *self
            .shared
            .signing_clock
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(clock));
    }

    /// Stops accepting connections.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

type SigningClock = Arc<dyn Fn() -> i64 + Send + Sync>;

struct Keys {
    secret: String,
    publishable: String,
    webhook_secret: String,
}

struct Webhook {
    url: Option<String>,
    enabled: Vec<String>,
}

#[derive(Default)]
struct Faults {
    fail_creates: u32,
    delay_creates: u32,
    delay: Duration,
}

struct Shared {
    keys: Keys,
    webhook: Mutex<Webhook>,
    state: Mutex<Store>,
    faults: Mutex<Faults>,
    create_calls: AtomicU64,
    refund_calls: AtomicU64,
    signing_clock: Mutex<Option<SigningClock>>,
    http: reqwest::Client,
    /// Bounds concurrent deliveries so a slow receiver under load is not
    /// sent thousands of requests at once.
    delivering: Semaphore,
    runtime: tokio::runtime::Handle,
}

/// What Stripe would keep: the objects, the events, and each idempotency
/// key's first answer.
#[derive(Default)]
struct Store {
    seq: u64,
    intents: HashMap<String, Intent>,
    charges: HashMap<String, Charge>,
    refunds: HashMap<String, Refund>,
    events: Vec<Value>,
    idempotent: HashMap<(String, String), Saved>,
    deliveries: Vec<Delivery>,
    /// Events made by the request being handled, sent after the lock is let go.
    outbox: Vec<Value>,
}

struct Saved {
    endpoint: String,
    params: Map<String, Value>,
    status: StatusCode,
    body: Bytes,
    request_id: String,
}

/// What confirming with a payment method does.
#[derive(Clone, Copy, Debug)]
enum Card {
    Pays,
    /// Pays; a refund of it starts `succeeded`, then fails
    /// (`pm_card_refundFail`, card 4000000000005126).
    PaysRefundFails,
    Declined(Decline),
}

#[derive(Clone, Copy, Debug)]
struct Decline {
    code: &'static str,
    decline_code: &'static str,
    message: &'static str,
    last4: &'static str,
}

impl Decline {
    const GENERIC: Decline = Decline {
        code: "card_declined",
        decline_code: "generic_decline",
        message: "Your card was declined.",
        last4: "0002",
    };
    const INSUFFICIENT_FUNDS: Decline = Decline {
        code: "card_declined",
        decline_code: "insufficient_funds",
        message: "Your card has insufficient funds.",
        last4: "9995",
    };
}

struct Intent {
    seq: u64,
    id: String,
    created: i64,
    amount: i64,
    currency: String,
    status: &'static str,
    client_secret: String,
    description: Option<String>,
    metadata: Map<String, Value>,
    receipt_email: Option<String>,
    automatic_payment_methods: Option<bool>,
    payment_method_types: Vec<String>,
    payment_method: Option<(String, Card)>,
    latest_charge: Option<String>,
    last_payment_error: Option<Value>,
    amount_received: i64,
    canceled_at: Option<i64>,
    cancellation_reason: Option<String>,
}

impl Intent {
    fn render(&self) -> Value {
        json!({
            "id": self.id,
            "object": "payment_intent",
            "amount": self.amount,
            "amount_capturable": 0,
            "amount_received": self.amount_received,
            "application": null,
            "application_fee_amount": null,
            "automatic_payment_methods": self.automatic_payment_methods
                .map(|enabled| json!({"allow_redirects": "always", "enabled": enabled})),
            "canceled_at": self.canceled_at,
            "cancellation_reason": self.cancellation_reason,
            "capture_method": "automatic",
            "client_secret": self.client_secret,
            "confirmation_method": "automatic",
            "created": self.created,
            "currency": self.currency,
            "customer": null,
            "description": self.description,
            "last_payment_error": self.last_payment_error,
            "latest_charge": self.latest_charge,
            "livemode": false,
            "metadata": self.metadata,
            "next_action": null,
            "on_behalf_of": null,
            "payment_method": self.payment_method.as_ref().map(|(id, _)| id),
            "payment_method_types": self.payment_method_types,
            "processing": null,
            "receipt_email": self.receipt_email,
            "setup_future_usage": null,
            "shipping": null,
            "statement_descriptor": null,
            "statement_descriptor_suffix": null,
            "status": self.status,
            "transfer_data": null,
            "transfer_group": null,
        })
    }
}

struct Charge {
    id: String,
    created: i64,
    intent: String,
    amount: i64,
    amount_refunded: i64,
    payment_method: String,
    failure: Option<Decline>,
    refunds_fail: bool,
}

impl Charge {
    fn render(&self, intent: &Intent) -> Value {
        let paid = self.failure.is_none();
        json!({
            "id": self.id,
            "object": "charge",
            "amount": self.amount,
            "amount_captured": if paid { self.amount } else { 0 },
            "amount_refunded": self.amount_refunded,
            "balance_transaction": null,
            "captured": paid,
            "created": self.created,
            "currency": intent.currency,
            "customer": null,
            "description": intent.description,
            "failure_code": self.failure.map(|d| d.code),
            "failure_message": self.failure.map(|d| d.message),
            "livemode": false,
            "metadata": intent.metadata,
            "outcome": {
                "network_status": if paid { "approved_by_network" } else { "declined_by_network" },
                "reason": self.failure.map(|d| d.decline_code),
                "risk_level": "normal",
                "seller_message": if paid { "Payment complete." } else { "The bank did not return any further details with this decline." },
                "type": if paid { "authorized" } else { "issuer_declined" },
            },
            "paid": paid,
            "payment_intent": self.intent,
            "payment_method": self.payment_method,
            "receipt_email": intent.receipt_email,
            "refunded": paid && self.amount_refunded >= self.amount,
            "status": if paid { "succeeded" } else { "failed" },
        })
    }
}

struct Refund {
    seq: u64,
    id: String,
    created: i64,
    amount: i64,
    currency: String,
    charge: String,
    payment_intent: String,
    metadata: Map<String, Value>,
    reason: Option<String>,
    /// Set once the refund failed (`failure_reason`).
    failure: Option<&'static str>,
}

impl Refund {
    fn render(&self) -> Value {
        json!({
            "id": self.id,
            "object": "refund",
            "amount": self.amount,
            "balance_transaction": null,
            "charge": self.charge,
            "created": self.created,
            "currency": self.currency,
            "destination_details": {"card": {"reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund"}, "type": "card"},
            "metadata": self.metadata,
            "payment_intent": self.payment_intent,
            "reason": self.reason,
            "receipt_number": null,
            "source_transfer_reversal": null,
            "status": if self.failure.is_some() { "failed" } else { "succeeded" },
            "failure_reason": self.failure,
            "transfer_reversal": null,
        })
    }
}

/// Stripe's error body: `{"error": {"type", "message", "code"?, "param"?, ...}}`.
#[derive(Debug)]
struct ApiErr {
    status: StatusCode,
    kind: &'static str,
    message: String,
    code: Option<&'static str>,
    param: Option<String>,
    extra: Box<Map<String, Value>>,
}

impl ApiErr {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiErr {
        ApiErr {
            status,
            kind,
            message: message.into(),
            code: None,
            param: None,
            extra: Box::default(),
        }
    }

    fn invalid(message: impl Into<String>) -> ApiErr {
        ApiErr::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// An object named in the path that does not exist.
    fn no_such(object: &str, id: &str) -> ApiErr {
        ApiErr::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("No such {object}: '{id}'"),
        )
        .code("resource_missing")
        .param("id")
    }

    fn code(mut self, code: &'static str) -> ApiErr {
        self.code = Some(code);
        self
    }

    fn param(mut self, param: impl Into<String>) -> ApiErr {
        self.param = Some(param.into());
        self
    }

    fn with(mut self, key: &str, value: Value) -> ApiErr {
        self.extra.insert(key.into(), value);
        self
    }

    fn body(&self) -> Value {
        let mut error = Map::new();
        if let Some(code) = self.code {
            error.insert("code".into(), code.into());
            error.insert(
                "doc_url".into(),
                format!(
                    "https://stripe.com/docs/error-codes/{}",
                    code.replace('_', "-")
                )
                .into(),
            );
        }
        error.insert("message".into(), self.message.clone().into());
        if let Some(param) = &self.param {
            error.insert("param".into(), param.clone().into());
        }
        error.insert("type".into(), self.kind.into());
        error.extend(self.extra.as_ref().clone());
        json!({ "error": error })
    }
}

/// Who is calling: the secret key, or the publishable key (only where
/// Stripe.js may call, and then with the intent's `client_secret`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    Secret,
    Publishable,
}

struct Call<'a> {
    caller: Caller,
    /// `{"id": request id, "idempotency_key": ...}`, the `request` of the events it makes.
    request: Value,
    params: &'a Params,
}

enum Route {
    CreateIntent,
    ListIntents,
    GetIntent(String),
    UpdateIntent(String),
    ConfirmIntent(String),
    CancelIntent(String),
    CreateRefund,
    ListRefunds,
    GetRefund(String),
    GetCharge(String),
    ListEvents,
    GetEvent(String),
}

fn route(method: &Method, path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let id = |s: &str| s.to_string();
    Some(match (method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "payment_intents"]) => Route::CreateIntent,
        ("GET", ["v1", "payment_intents"]) => Route::ListIntents,
        ("GET", ["v1", "payment_intents", i]) => Route::GetIntent(id(i)),
        ("POST", ["v1", "payment_intents", i]) => Route::UpdateIntent(id(i)),
        ("POST", ["v1", "payment_intents", i, "confirm"]) => Route::ConfirmIntent(id(i)),
        ("POST", ["v1", "payment_intents", i, "cancel"]) => Route::CancelIntent(id(i)),
        ("POST", ["v1", "refunds"]) => Route::CreateRefund,
        ("GET", ["v1", "refunds"]) => Route::ListRefunds,
        ("GET", ["v1", "refunds", i]) => Route::GetRefund(id(i)),
        ("GET", ["v1", "charges", i]) => Route::GetCharge(id(i)),
        ("GET", ["v1", "events"]) => Route::ListEvents,
        ("GET", ["v1", "events", i]) => Route::GetEvent(id(i)),
        _ => return None,
    })
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = new_id("req_", 14);
    let mut response = if method == Method::OPTIONS {
        preflight(&headers)
    } else {
        shared
            .answer(&request_id, &method, &uri, &headers, &body)
            .await
    };
    let h = response.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-expose-headers",
        HeaderValue::from_static(
            "Request-Id, Idempotent-Replayed, Original-Request, Stripe-Version",
        ),
    );
    h.insert("stripe-version", HeaderValue::from_static(API_VERSION));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("request-id", v);
    }
    response
}

/// A browser asks before sending `Authorization` or JSON from another origin.
fn preflight(headers: &HeaderMap) -> Response {
    let allow_headers = headers
        .get("access-control-request-headers")
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_static(
                "Authorization, Content-Type, Idempotency-Key, Stripe-Version, Stripe-Account",
            )
        });
    let mut r = Response::new(Body::empty());
    let h = r.headers_mut();
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
    );
    h.insert("access-control-allow-headers", allow_headers);
    h.insert("access-control-max-age", HeaderValue::from_static("300"));
    r
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &ApiErr) -> Response {
    let mut r = json_response(e.status, pretty(&e.body()));
    if e.status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Stripe\""),
        );
    }
    r
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn webhook(&self) -> MutexGuard<'_, Webhook> {
        self.webhook.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn answer(
        self: &Arc<Self>,
        request_id: &str,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        let Some(route) = route(method, uri.path()) else {
            return error_response(
                &ApiErr::new(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    format!(
                        "Unrecognized request URL ({method}: {}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
                        uri.path()
                    ),
                )
                .with("request_log_url", Value::Null),
            );
        };
        let creating = matches!(route, Route::CreateIntent);
        if creating {
            self.create_calls.fetch_add(1, Ordering::SeqCst);
        }
        if matches!(route, Route::CreateRefund) {
            self.refund_calls.fetch_add(1, Ordering::SeqCst);
        }
        let delay = creating.then(|| self.take_delay()).flatten();
        let response = self
            .answer_route(request_id, method, uri, headers, body, route)
            .await;
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        response
    }

    async fn answer_route(
        self: &Arc<Self>,
        request_id: &str,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        route: Route,
    ) -> Response {
        let raw = if method == Method::GET {
            uri.query().unwrap_or("").as_bytes()
        } else {
            body
        };
        let params = match Params::parse(raw) {
            Ok(p) => p,
            Err(e) => return error_response(&e),
        };
        let (caller, api_key) = match self.authenticate(headers, &params, &route) {
            Ok(c) => c,
            Err(e) => return error_response(&e),
        };
        if matches!(route, Route::CreateIntent) && self.take_failure() {
            return error_response(
                &ApiErr::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "api_error",
                    "An unknown error occurred",
                )
                .with("request_log_url", Value::Null),
            );
        }
        let idempotency_key = if method == Method::POST {
            match headers.get("idempotency-key").map(|v| v.to_str()) {
                None => None,
                Some(Ok(k)) if !k.is_empty() && k.len() <= 255 => Some(k.to_string()),
                Some(_) => {
                    return error_response(
                        &ApiErr::invalid(
                            "Invalid Idempotency-Key: keys must be 1 to 255 printable characters.",
                        )
                        .param("Idempotency-Key"),
                    );
                }
            }
        } else {
            None
        };
        let endpoint = format!("{method} {}", uri.path().trim_end_matches('/'));
        let (status, body, events) = {
            let mut st = self.store();
            if let Some(key) = &idempotency_key
                && let Some(saved) = st.idempotent.get(&(api_key.clone(), key.clone()))
            {
                if saved.endpoint != endpoint {
                    return error_response(&ApiErr::new(
                        StatusCode::BAD_REQUEST,
                        "idempotency_error",
                        format!(
                            "Keys for idempotent requests can only be used for the same endpoint they were first used for ('{}' vs '{endpoint}'). Try using a key other than '{key}' if you meant to execute a different request.",
                            saved.endpoint
                        ),
                    ));
                }
                if saved.params != params.0 {
                    return error_response(&ApiErr::new(
                        StatusCode::BAD_REQUEST,
                        "idempotency_error",
                        format!(
                            "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
                        ),
                    ));
                }
                let mut r = json_response(saved.status, saved.body.clone());
                r.headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                if let Ok(v) = HeaderValue::from_str(&saved.request_id) {
                    r.headers_mut().insert("original-request", v);
                }
                if let Ok(v) = HeaderValue::from_str(key) {
                    r.headers_mut().insert("idempotency-key", v);
                }
                return r;
            }
            let call = Call {
                caller,
                request: json!({"id": request_id, "idempotency_key": idempotency_key}),
                params: &params,
            };
            let (status, body) = match st.execute(&route, &call) {
                Ok(v) => (StatusCode::OK, pretty(&v)),
                Err(e) => (e.status, pretty(&e.body())),
            };
            // Stripe keeps the answer once the endpoint ran: a success, or
            // a card declined while confirming. Refusals of the parameters
            // are not kept, so a corrected retry may use the same key.
            if let Some(key) = &idempotency_key
                && (status == StatusCode::OK || status == StatusCode::PAYMENT_REQUIRED)
            {
                st.idempotent.insert(
                    (api_key.clone(), key.clone()),
                    Saved {
                        endpoint,
                        params: params.0.clone(),
                        status,
                        body: body.clone(),
                        request_id: request_id.to_string(),
                    },
                );
            }
            let events = std::mem::take(&mut st.outbox);
            (status, body, events)
        };
        self.dispatch(events);
        let mut r = json_response(status, body);
        if let Some(key) = &idempotency_key
            && let Ok(v) = HeaderValue::from_str(key)
        {
            r.headers_mut().insert("idempotency-key", v);
        }
        r
    }

    fn take_failure(&self) -> bool {
        let mut f = self.faults();
        if f.fail_creates > 0 {
            f.fail_creates -= 1;
            true
        } else {
            false
        }
    }

    fn take_delay(&self) -> Option<Duration> {
        let mut f = self.faults();
        if f.delay_creates > 0 {
            f.delay_creates -= 1;
            Some(f.delay)
        } else {
            None
        }
    }

    /// The key from `Authorization` (Bearer, or Basic with the key as the
    /// user name), else from the `key` parameter as Stripe.js sends it.
    fn authenticate(
        &self,
        headers: &HeaderMap,
        params: &Params,
        route: &Route,
    ) -> Result<(Caller, String), ApiErr> {
        let presented = match headers.get(header::AUTHORIZATION) {
            Some(value) => {
                let value = value.to_str().unwrap_or("");
                let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
                let rest = rest.trim();
                if scheme.eq_ignore_ascii_case("bearer") {
                    Some(rest.to_string())
                } else if scheme.eq_ignore_ascii_case("basic") {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(rest)
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .unwrap_or_default();
                    Some(decoded.split(':').next().unwrap_or("").to_string())
                } else {
                    Some(value.to_string())
                }
            }
            None => params
                .0
                .get("key")
                .and_then(Value::as_str)
                .map(String::from),
        };
        let Some(key) = presented.filter(|k| !k.is_empty()) else {
            return Err(ApiErr::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.",
            ));
        };
        if key == self.keys.secret {
            return Ok((Caller::Secret, key));
        }
        if key == self.keys.publishable {
            return if matches!(route, Route::GetIntent(_) | Route::ConfirmIntent(_)) {
                Ok((Caller::Publishable, key))
            } else {
                Err(ApiErr::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_request_error",
                    "This API call cannot be made with a publishable API key. Please use a secret API key. You can find a list of your API keys at https://dashboard.stripe.com/account/apikeys.",
                ))
            };
        }
        Err(ApiErr::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            format!("Invalid API Key provided: {}", redact(&key)),
        ))
    }

    fn play_customer(self: &Arc<Self>, intent_id: &str, card: Card) -> anyhow::Result<Value> {
        let (intent, events) = {
            let mut st = self.store();
            let request = json!({"id": null, "idempotency_key": null});
            let intent = st
                .intents
                .get_mut(intent_id)
                .ok_or_else(|| anyhow::anyhow!("no payment intent {intent_id}"))?;
            anyhow::ensure!(
                matches!(
                    intent.status,
                    "requires_payment_method" | "requires_confirmation" | "requires_action"
                ),
                "payment intent {intent_id} is {}, not awaiting payment",
                intent.status
            );
            intent.payment_method = Some((new_id("pm_", 24), card));
            let intent = match st.charge(intent_id, &request) {
                Ok(v) => v,
                Err(e) => e
                    .extra
                    .get("payment_intent")
                    .cloned()
                    .ok_or_else(|| anyhow::anyhow!("{}", e.message))?,
            };
            (intent, std::mem::take(&mut st.outbox))
        };
        self.dispatch(events);
        Ok(intent)
    }

    /// Sends each event in the background, retried with backoff; the API
    /// answer never waits for a receiver.
    fn dispatch(self: &Arc<Self>, events: Vec<Value>) {
        for event in events {
            let kind = event["type"].as_str().unwrap_or("");
            let wanted = {
                let hook = self.webhook();
                hook.url.is_some() && hook.enabled.iter().any(|e| e == "*" || e == kind)
            };
            if !wanted {
                continue;
            }
            let me = self.clone();
            self.runtime
                .spawn(async move { me.deliver_with_retries(event).await });
        }
    }

    async fn deliver_with_retries(&self, event: Value) {
        let Ok(_permit) = self.delivering.acquire().await else {
            return;
        };
        let Ok(body) = serde_json::to_vec_pretty(&event) else {
            return;
        };
        for attempt in 1..=(RETRY_PAUSES.len() as u32 + 1) {
            let Some(url) = self.webhook().url.clone() else {
                return;
            };
            let outcome = self.post_signed(&url, &body).await;
            self.record_delivery(&event, attempt, &outcome);
            if matches!(outcome, Ok(s) if (200..300).contains(&s)) {
                return;
            }
            if let Some(pause) = RETRY_PAUSES.get(attempt as usize - 1) {
                tokio::time::sleep(*pause).await;
            }
        }
    }

    async fn post_signed(&self, url: &str, body: &[u8]) -> Result<u16, reqwest::Error> {
        let clock = self
            .signing_clock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let t = clock.map_or_else(unix_now, |now| now());
        let signature = signature_header(&self.keys.webhook_secret, t, body);
        let response = self
            .http
            .post(url)
            .header("Stripe-Signature", signature)
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .header(
                header::USER_AGENT,
                "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            )
            .body(body.to_vec())
            .send()
            .await?;
        Ok(response.status().as_u16())
    }

    fn record_delivery(&self, event: &Value, attempt: u32, outcome: &Result<u16, reqwest::Error>) {
        let delivery = Delivery {
            event_id: event["id"].as_str().unwrap_or("").to_string(),
            event_type: event["type"].as_str().unwrap_or("").to_string(),
            attempt,
            status: outcome.as_ref().ok().copied(),
            error: outcome.as_ref().err().map(|e| e.to_string()),
        };
        if delivery.status.is_none_or(|s| !(200..300).contains(&s)) {
            tracing::debug!(event = %delivery.event_id, attempt, status = ?delivery.status, "stripe stand-in webhook not accepted");
        }
        self.store().deliveries.push(delivery);
    }
}

impl Store {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn execute(&mut self, route: &Route, call: &Call) -> Result<Value, ApiErr> {
        match route {
            Route::CreateIntent => self.create_intent(call),
            Route::ListIntents => self.list_intents(call.params),
            Route::GetIntent(id) => {
                call.params.only(&["expand", "client_secret", "key"])?;
                let intent = self.intent(id)?;
                check_client_secret(intent, call)?;
                Ok(intent.render())
            }
            Route::UpdateIntent(id) => self.update_intent(id, call.params),
            Route::ConfirmIntent(id) => self.confirm_intent(id, call),
            Route::CancelIntent(id) => self.cancel_intent(id, call),
            Route::CreateRefund => self.create_refund(call),
            Route::ListRefunds => self.list_refunds(call.params),
            Route::GetRefund(id) => {
                call.params.only(&["expand"])?;
                self.refunds
                    .get(id)
                    .map(Refund::render)
                    .ok_or_else(|| ApiErr::no_such("refund", id))
            }
            Route::GetCharge(id) => {
                call.params.only(&["expand"])?;
                let charge = self
                    .charges
                    .get(id)
                    .ok_or_else(|| ApiErr::no_such("charge", id))?;
                Ok(charge.render(self.intent(&charge.intent)?))
            }
            Route::ListEvents => self.list_events(call.params),
            Route::GetEvent(id) => {
                call.params.only(&["expand"])?;
                self.events
                    .iter()
                    .find(|e| e["id"] == id.as_str())
                    .cloned()
                    .ok_or_else(|| ApiErr::no_such("event", id))
            }
        }
    }

    fn intent(&self, id: &str) -> Result<&Intent, ApiErr> {
        self.intents
            .get(id)
            .ok_or_else(|| ApiErr::no_such("payment_intent", id))
    }

    fn emit(&mut self, kind: &str, object: Value, request: &Value) {
        let event = json!({
            "id": new_id("evt_", 24),
            "object": "event",
            "api_version": API_VERSION,
            "created": unix_now(),
            "data": {"object": object},
            "livemode": false,
            "pending_webhooks": 1,
            "request": request,
            "type": kind,
        });
        self.events.push(event.clone());
        self.outbox.push(event);
    }

    fn create_intent(&mut self, call: &Call) -> Result<Value, ApiErr> {
        let p = call.params;
        p.only(&[
            "amount",
            "currency",
            "automatic_payment_methods",
            "capture_method",
            "confirm",
            "confirmation_method",
            "customer",
            "description",
            "error_on_requires_action",
            "expand",
            "mandate",
            "mandate_data",
            "metadata",
            "off_session",
            "on_behalf_of",
            "payment_method",
            "payment_method_configuration",
            "payment_method_data",
            "payment_method_options",
            "payment_method_types",
            "radar_options",
            "receipt_email",
            "return_url",
            "setup_future_usage",
            "shipping",
            "statement_descriptor",
            "statement_descriptor_suffix",
            "transfer_data",
            "transfer_group",
            "use_stripe_sdk",
        ])?;
        let amount = amount(p, "amount")?.ok_or_else(|| missing("amount"))?;
        let currency = currency(p)?.ok_or_else(|| missing("currency"))?;
        let automatic = match p.0.get("automatic_payment_methods") {
            None => None,
            Some(Value::Object(m)) => match m.get("enabled") {
                Some(Value::String(s)) => Some(boolean(s, "automatic_payment_methods[enabled]")?),
                _ => return Err(missing("automatic_payment_methods[enabled]")),
            },
            Some(_) => {
                return Err(ApiErr::invalid("Invalid object").param("automatic_payment_methods"));
            }
        };
        let payment_method_types = match p.0.get("payment_method_types") {
            None => vec!["card".to_string()],
            Some(Value::Array(types)) => types
                .iter()
                .map(|t| t.as_str().map(String::from))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| ApiErr::invalid("Invalid array").param("payment_method_types"))?,
            Some(_) => {
                return Err(ApiErr::invalid("Invalid array").param("payment_method_types"));
            }
        };
        if automatic == Some(true) && p.0.contains_key("payment_method_types") {
            return Err(ApiErr::invalid(
                "You may only specify one of these parameters: automatic_payment_methods, payment_method_types.",
            )
            .param("automatic_payment_methods"));
        }
        let card = payment_method(p)?;
        let confirm = p
            .text("confirm")?
            .map(|c| boolean(c, "confirm"))
            .transpose()?;
        let seq = self.next_seq();
        let id = new_id("pi_", 24);
        let intent = Intent {
            seq,
            client_secret: format!("{id}_secret_{}", token(25)),
            id: id.clone(),
            created: unix_now(),
            amount,
            currency,
            status: if card.is_some() {
                "requires_confirmation"
            } else {
                "requires_payment_method"
            },
            description: p.text("description")?.map(String::from),
            metadata: metadata(p)?.unwrap_or_default(),
            receipt_email: p.text("receipt_email")?.map(String::from),
            automatic_payment_methods: automatic,
            payment_method_types: if automatic == Some(true) {
                vec!["card".to_string()]
            } else {
                payment_method_types
            },
            payment_method: card.map(|c| (new_id("pm_", 24), c)),
            latest_charge: None,
            last_payment_error: None,
            amount_received: 0,
            canceled_at: None,
            cancellation_reason: None,
        };
        let rendered = intent.render();
        self.intents.insert(id.clone(), intent);
        self.emit("payment_intent.created", rendered.clone(), &call.request);
        if confirm == Some(true) {
            if card.is_none() {
                return Err(unconfirmable_without_method(&rendered));
            }
            return self.charge(&id, &call.request);
        }
        Ok(rendered)
    }

    fn list_intents(&self, p: &Params) -> Result<Value, ApiErr> {
        p.only(&[
            "limit",
            "starting_after",
            "ending_before",
            "created",
            "customer",
            "expand",
        ])?;
        let rows = self
            .intents
            .values()
            .map(|i| (i.seq, i.created, i.id.clone(), i.render()))
            .collect();
        list(rows, p, "/v1/payment_intents", "payment_intent")
    }

    fn update_intent(&mut self, id: &str, p: &Params) -> Result<Value, ApiErr> {
        p.only(&[
            "amount",
            "currency",
            "description",
            "metadata",
            "receipt_email",
            "expand",
        ])?;
        let amount = amount(p, "amount")?;
        let currency = currency(p)?;
        let metadata = metadata(p)?;
        let description = p.text("description")?.map(String::from);
        let receipt_email = p.text("receipt_email")?.map(String::from);
        let intent = self
            .intents
            .get_mut(id)
            .ok_or_else(|| ApiErr::no_such("payment_intent", id))?;
        let open = matches!(
            intent.status,
            "requires_payment_method" | "requires_confirmation" | "requires_action"
        );
        if (amount.is_some() || currency.is_some()) && !open {
            return Err(ApiErr::invalid(format!(
                "This PaymentIntent's amount could not be updated because it has a status of {}. You may only update the amount of a PaymentIntent with one of the following statuses: requires_payment_method, requires_confirmation, requires_action.",
                intent.status
            ))
            .code("payment_intent_unexpected_state")
            .with("payment_intent", intent.render()));
        }
        if let Some(a) = amount {
            intent.amount = a;
        }
        if let Some(c) = currency {
            intent.currency = c;
        }
        if let Some(m) = metadata {
            merge_metadata(&mut intent.metadata, m);
        }
        if description.is_some() {
            intent.description = description.filter(|d| !d.is_empty());
        }
        if receipt_email.is_some() {
            intent.receipt_email = receipt_email.filter(|d| !d.is_empty());
        }
        Ok(intent.render())
    }

    fn confirm_intent(&mut self, id: &str, call: &Call) -> Result<Value, ApiErr> {
        // Stripe.js sends more than these (device and session fields);
        // they are taken and ignored, as Stripe does with them.
        let p = call.params;
        let card = payment_method(p)?;
        let receipt_email = p.text("receipt_email")?.map(String::from);
        let intent = self
            .intents
            .get_mut(id)
            .ok_or_else(|| ApiErr::no_such("payment_intent", id))?;
        check_client_secret(intent, call)?;
        if !matches!(
            intent.status,
            "requires_payment_method" | "requires_confirmation" | "requires_action"
        ) {
            let message = if intent.status == "succeeded" {
                "You cannot confirm this PaymentIntent because it has already succeeded after being previously confirmed.".to_string()
            } else {
                format!(
                    "You cannot confirm this PaymentIntent because it has a status of {}. Only a PaymentIntent with one of the following statuses may be confirmed: requires_confirmation, requires_payment_method.",
                    intent.status
                )
            };
            return Err(ApiErr::invalid(message)
                .code("payment_intent_unexpected_state")
                .with("payment_intent", intent.render()));
        }
        if let Some(card) = card {
            intent.payment_method = Some((new_id("pm_", 24), card));
        }
        if receipt_email.is_some() {
            intent.receipt_email = receipt_email;
        }
        if intent.payment_method.is_none() {
            return Err(unconfirmable_without_method(&intent.render()));
        }
        self.charge(id, &call.request)
    }

    /// Charges the intent's payment method: success, or a decline (402
    /// `card_error` carrying the intent, as Stripe answers a confirm).
    fn charge(&mut self, id: &str, request: &Value) -> Result<Value, ApiErr> {
        let charge_id = new_id("ch_", 24);
        let intent = self
            .intents
            .get_mut(id)
            .ok_or_else(|| ApiErr::no_such("payment_intent", id))?;
        let Some((pm, card)) = intent.payment_method.clone() else {
            return Err(unconfirmable_without_method(&intent.render()));
        };
        let failure = match card {
            Card::Pays | Card::PaysRefundFails => None,
            Card::Declined(d) => Some(d),
        };
        let charge = Charge {
            id: charge_id.clone(),
            created: unix_now(),
            intent: id.to_string(),
            amount: intent.amount,
            amount_refunded: 0,
            payment_method: pm.clone(),
            failure,
            refunds_fail: matches!(card, Card::PaysRefundFails),
        };
        intent.latest_charge = Some(charge_id.clone());
        let payment_method = json!({
            "id": pm, "object": "payment_method", "type": "card",
            "card": {"brand": "visa", "country": "US", "exp_month": 12, "exp_year": 2034,
                     "funding": "credit", "last4": failure.map_or("4242", |d| d.last4)},
            "created": unix_now(), "customer": null, "livemode": false, "metadata": {},
        });
        match failure {
            None => {
                intent.status = "succeeded";
                intent.amount_received = intent.amount;
                intent.last_payment_error = None;
                let rendered = intent.render();
                let rendered_charge = charge.render(intent);
                self.charges.insert(charge_id, charge);
                self.emit("charge.succeeded", rendered_charge, request);
                self.emit("payment_intent.succeeded", rendered.clone(), request);
                Ok(rendered)
            }
            Some(d) => {
                intent.status = "requires_payment_method";
                intent.last_payment_error = Some(json!({
                    "charge": charge_id,
                    "code": d.code,
                    "decline_code": d.decline_code,
                    "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                    "message": d.message,
                    "payment_method": payment_method,
                    "type": "card_error",
                }));
                // A declined method does not stay attached: the customer must choose another.
                intent.payment_method = None;
                let rendered = intent.render();
                let rendered_charge = charge.render(intent);
                self.charges.insert(charge_id.clone(), charge);
                self.emit("charge.failed", rendered_charge, request);
                self.emit("payment_intent.payment_failed", rendered.clone(), request);
                Err(
                    ApiErr::new(StatusCode::PAYMENT_REQUIRED, "card_error", d.message)
                        .code(d.code)
                        .with("charge", charge_id.into())
                        .with("decline_code", d.decline_code.into())
                        .with("payment_intent", rendered)
                        .with("payment_method", payment_method),
                )
            }
        }
    }

    fn cancel_intent(&mut self, id: &str, call: &Call) -> Result<Value, ApiErr> {
        let p = call.params;
        p.only(&["cancellation_reason", "expand"])?;
        let reason = p.text("cancellation_reason")?.map(String::from);
        if let Some(r) = &reason
            && ![
                "duplicate",
                "fraudulent",
                "requested_by_customer",
                "abandoned",
            ]
            .contains(&r.as_str())
        {
            return Err(ApiErr::invalid(
                "Invalid cancellation_reason: must be one of duplicate, fraudulent, requested_by_customer, or abandoned",
            )
            .param("cancellation_reason"));
        }
        let intent = self
            .intents
            .get_mut(id)
            .ok_or_else(|| ApiErr::no_such("payment_intent", id))?;
        if matches!(intent.status, "succeeded" | "canceled") {
            return Err(ApiErr::invalid(format!(
                "You cannot cancel this PaymentIntent because it has a status of {}. Only a PaymentIntent with one of the following statuses may be canceled: requires_payment_method, requires_capture, requires_confirmation, requires_action, processing.",
                intent.status
            ))
            .code("payment_intent_unexpected_state")
            .with("payment_intent", intent.render()));
        }
        intent.status = "canceled";
        intent.canceled_at = Some(unix_now());
        intent.cancellation_reason = reason;
        let rendered = intent.render();
        self.emit("payment_intent.canceled", rendered.clone(), &call.request);
        Ok(rendered)
    }

    fn create_refund(&mut self, call: &Call) -> Result<Value, ApiErr> {
        let p = call.params;
        p.only(&[
            "amount",
            "charge",
            "currency",
            "expand",
            "instructions_email",
            "metadata",
            "origin",
            "payment_intent",
            "reason",
            "refund_application_fee",
            "reverse_transfer",
        ])?;
        let requested = amount(p, "amount")?;
        let metadata = metadata(p)?.unwrap_or_default();
        let reason = p.text("reason")?.map(String::from);
        if let Some(r) = &reason
            && !["duplicate", "fraudulent", "requested_by_customer"].contains(&r.as_str())
        {
            return Err(ApiErr::invalid(
                "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer",
            )
            .param("reason"));
        }
        let intent_id = match (p.text("payment_intent")?, p.text("charge")?) {
            (Some(pi), _) => {
                if !self.intents.contains_key(pi) {
                    return Err(ApiErr::invalid(format!("No such payment_intent: '{pi}'"))
                        .code("resource_missing")
                        .param("payment_intent"));
                }
                pi.to_string()
            }
            (None, Some(ch)) => {
                self.charges
                    .get(ch)
                    .map(|c| c.intent.clone())
                    .ok_or_else(|| {
                        ApiErr::invalid(format!("No such charge: '{ch}'"))
                            .code("resource_missing")
                            .param("charge")
                    })?
            }
            (None, None) => {
                return Err(ApiErr::invalid(
                    "One of the following params should be provided for this request: payment_intent or charge.",
                ));
            }
        };
        let seq = self.next_seq();
        let intent = self.intent(&intent_id)?;
        let paid = intent
            .latest_charge
            .as_ref()
            .filter(|_| intent.status == "succeeded")
            .and_then(|c| self.charges.get(c))
            .filter(|c| c.failure.is_none());
        let Some(charge) = paid else {
            return Err(ApiErr::invalid(format!(
                "This PaymentIntent ({intent_id}) does not have a successful charge to refund."
            ))
            .code("payment_intent_unexpected_state")
            .param("payment_intent"));
        };
        let remaining = intent.amount_received - charge.amount_refunded;
        if remaining <= 0 {
            return Err(ApiErr::invalid(format!(
                "Charge {} has already been refunded.",
                charge.id
            ))
            .code("charge_already_refunded"));
        }
        let amount = requested.unwrap_or(remaining);
        if amount > remaining {
            return Err(ApiErr::invalid(format!(
                "Refund amount ({}) is greater than unrefunded amount on charge ({})",
                money(amount, &intent.currency),
                money(remaining, &intent.currency)
            ))
            .code("amount_too_large")
            .param("amount"));
        }
        let refund = Refund {
            seq,
            id: new_id("re_", 24),
            created: unix_now(),
            amount,
            currency: intent.currency.clone(),
            charge: charge.id.clone(),
            payment_intent: intent_id.clone(),
            metadata,
            reason,
            failure: None,
        };
        let refund_fails = charge.refunds_fail;
        let charge_id = charge.id.clone();
        if let Some(c) = self.charges.get_mut(&charge_id) {
            c.amount_refunded += amount;
        }
        let rendered = refund.render();
        let refund_id = refund.id.clone();
        self.refunds.insert(refund.id.clone(), refund);
        let rendered_charge = match (self.charges.get(&charge_id), self.intents.get(&intent_id)) {
            (Some(c), Some(i)) => Some(c.render(i)),
            _ => None,
        };
        self.emit("refund.created", rendered.clone(), &call.request);
        if let Some(c) = rendered_charge {
            self.emit("charge.refunded", c, &call.request);
        }
        if refund_fails {
            // As Stripe's test card does: answered `succeeded`, then the
            // card's bank sends it back; the charge's refunded total drops
            // and `charge.refund.updated` and `refund.failed` follow.
            if let Some(c) = self.charges.get_mut(&charge_id) {
                c.amount_refunded -= amount;
            }
            if let Some(r) = self.refunds.get_mut(&refund_id) {
                r.failure = Some("expired_or_canceled_card");
                let failed = r.render();
                self.emit("charge.refund.updated", failed.clone(), &call.request);
                self.emit("refund.failed", failed, &call.request);
            }
        }
        Ok(rendered)
    }

    fn list_refunds(&self, p: &Params) -> Result<Value, ApiErr> {
        p.only(&[
            "limit",
            "starting_after",
            "ending_before",
            "created",
            "payment_intent",
            "charge",
            "expand",
        ])?;
        let pi = p.text("payment_intent")?;
        let ch = p.text("charge")?;
        let rows = self
            .refunds
            .values()
            .filter(|r| pi.is_none_or(|pi| r.payment_intent == pi))
            .filter(|r| ch.is_none_or(|ch| r.charge == ch))
            .map(|r| (r.seq, r.created, r.id.clone(), r.render()))
            .collect();
        list(rows, p, "/v1/refunds", "refund")
    }

    fn list_events(&self, p: &Params) -> Result<Value, ApiErr> {
        p.only(&[
            "limit",
            "starting_after",
            "ending_before",
            "created",
            "type",
            "types",
            "delivery_success",
            "expand",
        ])?;
        let kind = p.text("type")?;
        let types: Option<Vec<&str>> =
            p.0.get("types")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect());
        let matches = |t: &str| {
            kind.is_none_or(|k| match k.strip_suffix('*') {
                Some(prefix) => t.starts_with(prefix),
                None => t == k,
            }) && types.as_ref().is_none_or(|ts| ts.contains(&t))
        };
        let rows = self
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| matches(e["type"].as_str().unwrap_or("")))
            .map(|(n, e)| {
                (
                    n as u64,
                    e["created"].as_i64().unwrap_or(0),
                    e["id"].as_str().unwrap_or("").to_string(),
                    e.clone(),
                )
            })
            .collect();
        list(rows, p, "/v1/events", "event")
    }
}

fn check_client_secret(intent: &Intent, call: &Call) -> Result<(), ApiErr> {
    let given = call.params.text("client_secret")?;
    match (call.caller, given) {
        (Caller::Publishable, None) => Err(missing("client_secret")),
        (_, Some(secret)) if secret != intent.client_secret => Err(ApiErr::invalid(
            "The client_secret provided does not match any associated PaymentIntent on this account. Ensure the publishable key used belongs to the same account that created the PaymentIntent.",
        )
        .code("payment_intent_invalid_parameter")
        .param("client_secret")),
        _ => Ok(()),
    }
}

fn unconfirmable_without_method(intent: &Value) -> ApiErr {
    ApiErr::invalid(
        "You cannot confirm this PaymentIntent because it's missing a payment method. To confirm the PaymentIntent, pass a payment_method or payment_method_data.",
    )
    .code("payment_intent_unexpected_state")
    .param("payment_method")
    .with("payment_intent", intent.clone())
}

/// Stripe's test payment methods: `pm_card_visa` pays,
/// `pm_card_chargeDeclined` is declined, `pm_card_refundFail` pays but its
/// refunds fail; or card numbers in `payment_method_data[card][number]`
/// (4000000000000002 declines, 4000000000005126 refunds fail).
fn payment_method(p: &Params) -> Result<Option<Card>, ApiErr> {
    if let Some(pm) = p.text("payment_method")? {
        return match pm {
            "pm_card_visa" | "pm_card_mastercard" | "pm_card_amex" | "pm_card_visa_debit"
            | "pm_card_us" | "pm_card_za" => Ok(Some(Card::Pays)),
            "pm_card_refundFail" => Ok(Some(Card::PaysRefundFails)),
            "pm_card_chargeDeclined" | "pm_card_visa_chargeDeclined" => {
                Ok(Some(Card::Declined(Decline::GENERIC)))
            }
            "pm_card_chargeDeclinedInsufficientFunds"
            | "pm_card_visa_chargeDeclinedInsufficientFunds" => {
                Ok(Some(Card::Declined(Decline::INSUFFICIENT_FUNDS)))
            }
            other => Err(ApiErr::invalid(format!("No such PaymentMethod: '{other}'"))
                .code("resource_missing")
                .param("payment_method")),
        };
    }
    match p.0.get("payment_method_data") {
        None => Ok(None),
        Some(Value::Object(data)) => {
            if data.get("type").and_then(Value::as_str) != Some("card") {
                return Err(missing("payment_method_data[type]"));
            }
            let number = data
                .get("card")
                .and_then(|c| c.get("number"))
                .and_then(Value::as_str)
                .unwrap_or("4242424242424242")
                .replace(' ', "");
            Ok(Some(match number.as_str() {
                "4000000000000002" => Card::Declined(Decline::GENERIC),
                "4000000000009995" => Card::Declined(Decline::INSUFFICIENT_FUNDS),
                "4000000000005126" => Card::PaysRefundFails,
                _ => Card::Pays,
            }))
        }
        Some(_) => Err(ApiErr::invalid("Invalid object").param("payment_method_data")),
    }
}

fn missing(param: &str) -> ApiErr {
    ApiErr::invalid(format!("Missing required param: {param}."))
        .code("parameter_missing")
        .param(param)
}

fn boolean(value: &str, param: &str) -> Result<bool, ApiErr> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiErr::invalid(format!("Invalid boolean: {value}")).param(param)),
    }
}

/// An amount in the currency's smallest unit: an integer from 1 to 99999999.
fn amount(p: &Params, param: &str) -> Result<Option<i64>, ApiErr> {
    let Some(raw) = p.text(param)? else {
        return Ok(None);
    };
    let n: i64 = raw.parse().map_err(|_| {
        ApiErr::invalid(format!("Invalid integer: {raw}"))
            .code("parameter_invalid_integer")
            .param(param)
    })?;
    if n < 1 {
        return Err(
            ApiErr::invalid("This value must be greater than or equal to 1.")
                .code("parameter_invalid_integer")
                .param(param),
        );
    }
    if n > 99_999_999 {
        return Err(ApiErr::invalid("Amount must be no more than 99999999")
            .code("amount_too_large")
            .param(param));
    }
    Ok(Some(n))
}

const CURRENCIES: &[&str] = &[
    "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd", "bdt",
    "bgn", "bhd", "bif", "bmd", "bnd", "bob", "brl", "bsd", "bwp", "byn", "bzd", "cad", "cdf",
    "chf", "clp", "cny", "cop", "crc", "cve", "czk", "djf", "dkk", "dop", "dzd", "egp", "etb",
    "eur", "fjd", "fkp", "gbp", "gel", "gip", "gmd", "gnf", "gtq", "gyd", "hkd", "hnl", "htg",
    "huf", "idr", "ils", "inr", "isk", "jmd", "jod", "jpy", "kes", "kgs", "khr", "kmf", "krw",
    "kwd", "kyd", "kzt", "lak", "lbp", "lkr", "lrd", "lsl", "mad", "mdl", "mga", "mkd", "mmk",
    "mnt", "mop", "mur", "mvr", "mwk", "mxn", "myr", "mzn", "nad", "ngn", "nio", "nok", "npr",
    "nzd", "omr", "pab", "pen", "pgk", "php", "pkr", "pln", "pyg", "qar", "ron", "rsd", "rub",
    "rwf", "sar", "sbd", "scr", "sek", "sgd", "shp", "sle", "sos", "srd", "szl", "thb", "tjs",
    "tnd", "top", "try", "ttd", "twd", "tzs", "uah", "ugx", "usd", "uyu", "uzs", "vnd", "vuv",
    "wst", "xaf", "xcd", "xof", "xpf", "yer", "zar", "zmw",
];

fn currency(p: &Params) -> Result<Option<String>, ApiErr> {
    let Some(raw) = p.text("currency")? else {
        return Ok(None);
    };
    let c = raw.to_ascii_lowercase();
    if !CURRENCIES.contains(&c.as_str()) {
        return Err(ApiErr::invalid(format!(
            "Invalid currency: {raw}. Stripe currently supports these currencies: {}",
            CURRENCIES.join(", ")
        ))
        .param("currency"));
    }
    Ok(Some(c))
}

/// `metadata[key]=value`: up to 50 keys of at most 40 characters, values
/// of at most 500. An empty value (on update) removes the key.
fn metadata(p: &Params) -> Result<Option<Map<String, Value>>, ApiErr> {
    match p.0.get("metadata") {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(Some(Map::new())),
        Some(Value::Object(m)) => {
            if m.len() > 50 {
                return Err(
                    ApiErr::invalid("You can specify up to 50 keys in metadata.").param("metadata"),
                );
            }
            for (k, v) in m {
                let Some(v) = v.as_str() else {
                    return Err(ApiErr::invalid("Invalid string").param(format!("metadata[{k}]")));
                };
                if k.chars().count() > 40 {
                    return Err(ApiErr::invalid(format!(
                        "Metadata keys can have up to 40 characters; '{k}' is too long."
                    ))
                    .param(format!("metadata[{k}]")));
                }
                if v.chars().count() > 500 {
                    return Err(
                        ApiErr::invalid("Metadata values can have up to 500 characters.")
                            .param(format!("metadata[{k}]")),
                    );
                }
            }
            Ok(Some(m.clone()))
        }
        Some(_) => Err(ApiErr::invalid("Invalid hash").param("metadata")),
    }
}

fn merge_metadata(into: &mut Map<String, Value>, update: Map<String, Value>) {
    if update.is_empty() {
        into.clear();
    }
    for (k, v) in update {
        if v.as_str() == Some("") {
            into.remove(&k);
        } else {
            into.insert(k, v);
        }
    }
}

/// A page of a list, newest first: `limit` (1–100, 10 by default),
/// `starting_after`/`ending_before` (an id on the list), `created[gt|gte|lt|lte]`
/// or `created=<unix>`.
fn list(
    mut rows: Vec<(u64, i64, String, Value)>,
    p: &Params,
    url: &str,
    object: &str,
) -> Result<Value, ApiErr> {
    let limit = match p.text("limit")? {
        None => 10,
        Some(raw) => {
            let n: usize = raw.parse().map_err(|_| {
                ApiErr::invalid(format!("Invalid integer: {raw}"))
                    .code("parameter_invalid_integer")
                    .param("limit")
            })?;
            if !(1..=100).contains(&n) {
                return Err(ApiErr::invalid(
                    "This value must be greater than or equal to 1 and less than or equal to 100.",
                )
                .code("parameter_invalid_integer")
                .param("limit"));
            }
            n
        }
    };
    let bound = |op: &str| -> Result<Option<i64>, ApiErr> {
        let raw = match p.0.get("created") {
            Some(Value::Object(m)) => m.get(op).and_then(Value::as_str),
            Some(Value::String(s)) if op == "eq" => Some(s.as_str()),
            _ => None,
        };
        raw.map(|r| {
            r.parse().map_err(|_| {
                ApiErr::invalid(format!("Invalid integer: {r}"))
                    .code("parameter_invalid_integer")
                    .param(format!("created[{op}]"))
            })
        })
        .transpose()
    };
    let (eq, gt, gte, lt, lte) = (
        bound("eq")?,
        bound("gt")?,
        bound("gte")?,
        bound("lt")?,
        bound("lte")?,
    );
    rows.retain(|(_, created, _, _)| {
        eq.is_none_or(|b| *created == b)
            && gt.is_none_or(|b| *created > b)
            && gte.is_none_or(|b| *created >= b)
            && lt.is_none_or(|b| *created < b)
            && lte.is_none_or(|b| *created <= b)
    });
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let position = |param: &str, id: &str| {
        rows.iter().position(|r| r.2 == id).ok_or_else(|| {
            ApiErr::invalid(format!("No such {object}: '{id}'"))
                .code("resource_missing")
                .param(param)
        })
    };
    let (page, has_more): (Vec<Value>, bool) =
        match (p.text("starting_after")?, p.text("ending_before")?) {
            (Some(after), _) => {
                let from = position("starting_after", after)? + 1;
                let rest = &rows[from..];
                (
                    rest.iter().take(limit).map(|r| r.3.clone()).collect(),
                    rest.len() > limit,
                )
            }
            (None, Some(before)) => {
                let to = position("ending_before", before)?;
                let start = to.saturating_sub(limit);
                (
                    rows[start..to].iter().map(|r| r.3.clone()).collect(),
                    start > 0,
                )
            }
            (None, None) => (
                rows.iter().take(limit).map(|r| r.3.clone()).collect(),
                rows.len() > limit,
            ),
        };
    Ok(json!({"object": "list", "data": page, "has_more": has_more, "url": url}))
}

/// A request's parameters, bracket keys made nested: `metadata[a]=1` is
/// `{"metadata": {"a": "1"}}`, `types[]=x` and `types[0]=x` are arrays.
/// Every leaf is a string, as the form carried it.
struct Params(Map<String, Value>);

impl Params {
    fn parse(raw: &[u8]) -> Result<Params, ApiErr> {
        let mut root = Value::Object(Map::new());
        for pair in raw.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let key = percent_decode(k);
            let path = key_path(&key)?;
            insert(&mut root, &path, percent_decode(v), &key)?;
        }
        match arrays(root, false) {
            Value::Object(m) => Ok(Params(m)),
            _ => Ok(Params(Map::new())),
        }
    }

    fn text(&self, key: &str) -> Result<Option<&str>, ApiErr> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiErr::invalid("Invalid string: expected a string").param(key)),
        }
    }

    /// Refuses a parameter the endpoint does not have, as Stripe does.
    fn only(&self, allowed: &[&str]) -> Result<(), ApiErr> {
        match self
            .0
            .keys()
            .find(|k| !allowed.contains(&k.as_str()) && k.as_str() != "key")
        {
            Some(unknown) => Err(
                ApiErr::invalid(format!("Received unknown parameter: {unknown}"))
                    .code("parameter_unknown")
                    .param(unknown.clone()),
            ),
            None => Ok(()),
        }
    }
}

enum Segment {
    Name(String),
    Push,
}

fn key_path(key: &str) -> Result<Vec<Segment>, ApiErr> {
    let invalid = || ApiErr::invalid(format!("Invalid parameter name: {key}")).param(key);
    let (head, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    if head.is_empty() {
        return Err(invalid());
    }
    let mut path = vec![Segment::Name(head.to_string())];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[').ok_or_else(invalid)?;
        let end = inner.find(']').ok_or_else(invalid)?;
        let name = &inner[..end];
        path.push(if name.is_empty() {
            Segment::Push
        } else {
            Segment::Name(name.to_string())
        });
        rest = &inner[end + 1..];
    }
    Ok(path)
}

fn insert(node: &mut Value, path: &[Segment], value: String, key: &str) -> Result<(), ApiErr> {
    let Value::Object(map) = node else {
        return Err(ApiErr::invalid(format!("Invalid hash for {key}")).param(key));
    };
    let Some((first, rest)) = path.split_first() else {
        return Ok(());
    };
    let name = match first {
        Segment::Name(n) => n.clone(),
        Segment::Push => map.len().to_string(),
    };
    if rest.is_empty() {
        map.insert(name, Value::String(value));
        return Ok(());
    }
    let child = map.entry(name).or_insert_with(|| Value::Object(Map::new()));
    insert(child, rest, value, key)
}

/// Objects whose keys are all indices become arrays (metadata keys stay keys).
fn arrays(value: Value, in_metadata: bool) -> Value {
    let Value::Object(map) = value else {
        return value;
    };
    let indexed = !in_metadata
        && !map.is_empty()
        && map
            .keys()
            .all(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
    if indexed {
        let mut items: Vec<(u64, Value)> = map
            .into_iter()
            .map(|(k, v)| (k.parse().unwrap_or(u64::MAX), arrays(v, false)))
            .collect();
        items.sort_by_key(|(i, _)| *i);
        Value::Array(items.into_iter().map(|(_, v)| v).collect())
    } else {
        Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let metadata = k == "metadata";
                    (k, arrays(v, metadata))
                })
                .collect(),
        )
    }
}

fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < raw.len() => match (hex_value(raw[i + 1]), hex_value(raw[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pretty(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(v).unwrap_or_default())
}

/// `$12.50`-style for the refund refusal; every currency shown with two decimals.
fn money(cents: i64, currency: &str) -> String {
    let symbol = match currency {
        "usd" => "$",
        "zar" => "R",
        "eur" => "€",
        "gbp" => "£",
        _ => "",
    };
    format!("{symbol}{}.{:02}", cents / 100, cents % 100)
}

/// `sk_test_****abcd`: enough to recognise a key in a message, not to use it.
fn redact(key: &str) -> String {
    let prefix_len = key
        .match_indices('_')
        .nth(1)
        .map_or(0, |(i, _)| i + 1)
        .min(key.len());
    let tail: String = {
        let chars: Vec<char> = key.chars().collect();
        if chars.len() > prefix_len + 4 {
            chars[chars.len() - 4..].iter().collect()
        } else {
            String::new()
        }
    };
    format!("{}{}{tail}", &key[..prefix_len], "*".repeat(12))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn new_id(prefix: &str, len: usize) -> String {
    format!("{prefix}{}", token(len))
}

/// Letters and digits, unique per call: SHA-256 of a fresh UUIDv7 (unique
/// within the process) and a counter, read out in base 62.
fn token(len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut hasher = Sha256::new();
        hasher.update(uuid::Uuid::now_v7().as_bytes());
        hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        for b in hasher.finalize() {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[(b % 62) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracket_keys_become_nested_parameters() {
        let p = Params::parse(
            b"amount=1000&currency=zar&metadata[order_id]=o%201&metadata[0]=x&created[gte]=5&payment_method_types[0]=card&payment_method_types[1]=eft&expand[]=a&expand[]=b&q=a+b",
        )
        .unwrap();
        assert_eq!(
            Value::Object(p.0),
            json!({
                "amount": "1000", "currency": "zar",
                "metadata": {"order_id": "o 1", "0": "x"},
                "created": {"gte": "5"},
                "payment_method_types": ["card", "eft"],
                "expand": ["a", "b"],
                "q": "a b",
            })
        );
        assert!(Params::parse(b"metadata[a=1").is_err());
        assert!(Params::parse(b"a=1&a[b]=2").is_err());
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode(b"%41%2"), "A%2");
        assert_eq!(percent_decode(b"%zz%"), "%zz%");
        assert_eq!(percent_decode(b"%C3%A9"), "é");
    }

    #[test]
    fn keys_are_redacted_to_their_prefix_and_last_four() {
        assert_eq!(redact("sk_test_abcdefgh1234"), "sk_test_************1234");
        assert_eq!(redact("x"), "************");
    }
}
