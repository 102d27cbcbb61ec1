//! What the webhooks slice decides: who gets which event, how it is
//! signed, and what an attempt's answer means.

use std::{collections::HashMap, time::Instant};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use hmac::{Hmac, Mac};
use kernel::{
    ApiError, ApiResult, Envelope, Permission, Stmt, Tx,
    clock::{MICROS_PER_SEC, rfc3339},
    events::emit,
    ids::{DeliveryId, OrgId, WebhookId},
    jobs::{HandlerResult, JobError, NewJob},
};
use serde::Serialize;
use sha2::Sha256;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Deliver, EndpointDisabled, Subject, outbound::Outbound, store};
use crate::{App, identity::Actor};

/// The event types an endpoint may ask for (some are announced by slices
/// still to come: refunds, cancellations, revocations).
pub const EVENT_TYPES: [&str; 13] = [
    "order.created",
    "order.paid",
    "order.expired",
    "order.refunded",
    "order.cancelled",
    "ticket.issued",
    "ticket.revoked",
    "ticket.transferred",
    "ticket.admitted",
    "ticket.exited",
    "ticket.admission_undone",
    "event.published",
    "event.cancelled",
];

/// After a rotation, the old secret keeps verifying this long.
const OVERLAP_MICROS: i64 = 24 * 3600 * MICROS_PER_SEC;
/// An endpoint failing this long is disabled.
const FAILING_LIMIT_MICROS: i64 = 3 * 24 * 3600 * MICROS_PER_SEC;
/// A delivery waiting for an earlier one about the same subject looks again
/// after this long.
const ORDER_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// An endpoint as the API shows it (never its secret).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: WebhookId,
    pub url: String,
    pub event_types: Vec<String>,
    /// `active` or `disabled`.
    pub status: String,
    /// Why it was disabled, when it was.
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed (disabled after three days).
    pub failing_since: Option<String>,
    /// After a rotation: until when the previous secret also signs.
    pub previous_secret_until: Option<String>,
    pub created_at: String,
}

impl From<store::Endpoint> for WebhookView {
    fn from(e: store::Endpoint) -> WebhookView {
        WebhookView {
            id: e.id,
            url: e.url,
            event_types: serde_json::from_str(&e.event_types).unwrap_or_default(),
            status: e.status,
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since.map(rfc3339),
            previous_secret_until: e
                .previous_until
                .filter(|_| e.previous_secret.is_some())
                .map(rfc3339),
            created_at: rfc3339(e.created_at),
        }
    }
}

/// A new secret: `whsec_` and 32 random bytes in base64.
fn new_secret() -> String {
    format!("whsec_{}", B64.encode(kernel::auth::random_bytes::<32>()))
}

/// The Standard Webhooks signature of one message: `v1,` and the base64
/// HMAC-SHA256 of `id.timestamp.body` under the decoded secret.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = B64.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    Some(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

fn check_types(types: &[String]) -> ApiResult<Vec<String>> {
    if types.is_empty() || types.len() > EVENT_TYPES.len() + 1 {
        return Err(ApiError::field(
            "event_types",
            "must list one or more event types, or [\"*\"]",
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for t in types {
        if t != "*" && !EVENT_TYPES.contains(&t.as_str()) {
            return Err(ApiError::field(
                "event_types",
                &format!(
                    "{t:?} is not an event type (one of {})",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    if out.iter().any(|t| t == "*") {
        out = vec!["*".into()];
    }
    Ok(out)
}

async fn check_url(app: &App, url: &str) -> ApiResult<()> {
    if url.len() > 2000 {
        return Err(ApiError::field("url", "is longer than 2000 characters"));
    }
    app.state::<Outbound>()
        .check(url)
        .await
        .map_err(|why| ApiError::field("url", &why))
}

/// Registers an endpoint; the secret is returned this once.
pub async fn create(
    app: &App,
    actor: &Actor,
    url: String,
    types: Vec<String>,
) -> ApiResult<(WebhookView, String)> {
    let t = actor.require(Permission::WebhooksManage)?;
    let types = check_types(&types)?;
    check_url(app, &url).await?;
    let secret = new_secret();
    let e = store::Endpoint {
        id: WebhookId::new(),
        url,
        event_types: serde_json::to_string(&types).map_err(ApiError::internal)?,
        secret: secret.clone(),
        previous_secret: None,
        previous_until: None,
        status: "active".into(),
        disabled_reason: None,
        failing_since: None,
        created_at: app.kernel.now(),
    };
    let audit = actor
        .audit("webhook.create", "webhook")
        .object(e.id)
        .after(serde_json::json!({"url": e.url, "event_types": types}))
        .stmt(e.created_at);
    app.db()
        .write_grouped(vec![store::insert_endpoint(t, &e), audit])
        .await?;
    Ok((e.into(), secret))
}

pub async fn list(app: &App, actor: &Actor) -> ApiResult<Vec<WebhookView>> {
    let t = actor.require(Permission::WebhooksManage)?;
    Ok(store::endpoints(app.db(), t)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

pub async fn get(app: &App, actor: &Actor, id: WebhookId) -> ApiResult<WebhookView> {
    let t = actor.require(Permission::WebhooksManage)?;
    store::endpoint(app.db(), t, id)
        .await?
        .map(Into::into)
        .ok_or(ApiError::NotFound)
}

/// A new secret; the old one keeps verifying for a day.
pub async fn rotate(app: &App, actor: &Actor, id: WebhookId) -> ApiResult<String> {
    let t = actor.require(Permission::WebhooksManage)?;
    let secret = new_secret();
    let now = app.kernel.now();
    let change = store::rotate(t, id, &secret, now + OVERLAP_MICROS);
    let audit = actor
        .audit("webhook.rotate_secret", "webhook")
        .object(id)
        .stmt(now);
    if !store::audited(app.db(), change, audit).await? {
        return Err(ApiError::NotFound);
    }
    Ok(secret)
}

/// Switches an endpoint on or off (on again after it was disabled).
pub async fn set_active(
    app: &App,
    actor: &Actor,
    id: WebhookId,
    active: bool,
) -> ApiResult<WebhookView> {
    let t = actor.require(Permission::WebhooksManage)?;
    let status = if active { "active" } else { "disabled" };
    let audit = actor
        .audit(
            if active {
                "webhook.enable"
            } else {
                "webhook.disable"
            },
            "webhook",
        )
        .object(id)
        .after(serde_json::json!({ "status": status }))
        .stmt(app.kernel.now());
    if !store::audited(app.db(), store::set_status(t, id, status), audit).await? {
        return Err(ApiError::NotFound);
    }
    get(app, actor, id).await
}

pub async fn delete(app: &App, actor: &Actor, id: WebhookId) -> ApiResult<()> {
    let t = actor.require(Permission::WebhooksManage)?;
    let audit = actor
        .audit("webhook.delete", "webhook")
        .object(id)
        .stmt(app.kernel.now());
    if !store::audited(app.db(), store::delete(t, id), audit).await? {
        return Err(ApiError::NotFound);
    }
    Ok(())
}

/// One attempt in the delivery log.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempted_at: String,
    /// The endpoint's HTTP status, when it answered.
    pub status: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// The headers sent (signed; no secret).
    pub request_headers: serde_json::Value,
}

/// One delivery in the log.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: DeliveryId,
    /// The `webhook-id` header: the same on every attempt and redelivery.
    pub event_id: Uuid,
    pub event_type: String,
    /// `pending`, `delivered`, `failed` (to be retried), `dead` (out of
    /// retries) or `cancelled` (the endpoint was disabled).
    pub status: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_latency_ms: Option<i64>,
    pub last_error: Option<String>,
    /// When the next attempt is due, while one is.
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    /// The request of each attempt, oldest first (in a single delivery's
    /// view and the page; empty in lists).
    pub attempt_log: Vec<AttemptView>,
}

fn view(d: store::Logged) -> DeliveryView {
    let dead = matches!(d.job_state.as_deref(), Some("dead" | "discarded"));
    // A running job's run_at is when it started, not when it runs next.
    let waiting = d.job_state.as_deref() == Some("available");
    let status = match d.status.as_str() {
        "failed" | "pending" if dead => "dead".to_string(),
        s => s.to_string(),
    };
    DeliveryView {
        id: d.id,
        event_id: d.event_id,
        event_type: d.event_type,
        status,
        attempts: d.attempts,
        last_status: d.last_status,
        last_latency_ms: d.last_latency_ms,
        last_error: d.last_error,
        next_attempt_at: d.job_run_at.filter(|_| waiting).map(rfc3339),
        created_at: rfc3339(d.created_at),
        delivered_at: d.delivered_at.map(rfc3339),
        attempt_log: Vec::new(),
    }
}

/// A page of an endpoint's deliveries, newest first, with the attempts of
/// each when `with_attempts`.
pub async fn deliveries(
    app: &App,
    actor: &Actor,
    endpoint: WebhookId,
    before: Option<DeliveryId>,
    limit: i64,
    with_attempts: bool,
) -> ApiResult<Vec<DeliveryView>> {
    let t = actor.require(Permission::WebhooksManage)?;
    store::endpoint(app.db(), t, endpoint)
        .await?
        .ok_or(ApiError::NotFound)?;
    let rows = store::deliveries(app.db(), t, endpoint, before, limit).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut v = view(r);
        if with_attempts {
            v.attempt_log = store::attempts(app.db(), t, v.id)
                .await?
                .into_iter()
                .map(|a| AttemptView {
                    attempted_at: rfc3339(a.attempted_at),
                    status: a.status,
                    latency_ms: a.latency_ms,
                    error: a.error,
                    request_headers: serde_json::from_str(&a.request_headers)
                        .unwrap_or(serde_json::Value::Null),
                })
                .collect();
        }
        out.push(v);
    }
    Ok(out)
}

/// Sends a delivery again (whatever became of it), as a new job.
pub async fn redeliver(
    app: &App,
    actor: &Actor,
    endpoint: WebhookId,
    delivery: DeliveryId,
) -> ApiResult<DeliveryView> {
    let t = actor.require(Permission::WebhooksManage)?;
    let e = store::endpoint(app.db(), t, endpoint)
        .await?
        .ok_or(ApiError::NotFound)?;
    if e.status != "active" {
        return Err(ApiError::Conflict(
            "the endpoint is disabled; enable it before redelivering".into(),
        ));
    }
    let job_id = Uuid::now_v7();
    let job = NewJob::of(&Deliver { delivery })
        .for_org(t.org().0)
        .with_id(job_id)
        .stmt(app.kernel.now());
    let audit = actor
        .audit("webhook.redeliver", "webhook_delivery")
        .object(delivery)
        .stmt(app.kernel.now());
    if !store::redeliver(app.db(), t, endpoint, delivery, job, job_id, audit).await? {
        return Err(ApiError::NotFound);
    }
    deliveries(app, actor, endpoint, None, 200, false)
        .await?
        .into_iter()
        .find(|d| d.id == delivery)
        .ok_or(ApiError::NotFound)
}

/// The body every attempt of a delivery sends, byte for byte.
#[derive(Serialize)]
struct Body<'a, E: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: String,
    version: u32,
    data: &'a E,
}

/// In the relay's transaction: a delivery and its job per (event, active
/// endpoint that wants its type).
pub async fn fan_out<E: Subject>(
    _app: &App,
    tx: &mut Tx,
    events: Vec<Envelope<E>>,
) -> Result<(), sqlx::Error> {
    let mut endpoints: HashMap<OrgId, Vec<(WebhookId, Vec<String>)>> = HashMap::new();
    let mut stmts = Vec::new();
    for e in &events {
        if let std::collections::hash_map::Entry::Vacant(slot) = endpoints.entry(e.org()) {
            let list = store::active_in(tx, e.org())
                .await?
                .into_iter()
                .map(|(id, types)| (id, serde_json::from_str(&types).unwrap_or_default()))
                .collect();
            slot.insert(list);
        }
        let wanted: Vec<WebhookId> = endpoints[&e.org()]
            .iter()
            .filter(|(_, types)| types.iter().any(|t| t == "*" || t == E::NAME))
            .map(|(id, _)| *id)
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let body = serde_json::to_string(&Body {
            kind: E::NAME,
            timestamp: rfc3339(e.occurred_at()),
            version: E::VERSION,
            data: e.data(),
        })
        .map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
        let now = e.occurred_at();
        for endpoint in wanted {
            let delivery = DeliveryId::new();
            let job_id = Uuid::now_v7();
            stmts.push(
                Stmt::new(
                    "INSERT INTO webhook_deliveries (id, org_id, endpoint_id, event_id, event_type, subject, body, status, job_id, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9) ON CONFLICT DO NOTHING",
                )
                .bind(delivery)
                .bind(e.org())
                .bind(endpoint)
                .bind(e.id())
                .bind(E::NAME)
                .bind(e.data().subject())
                .bind(body.clone())
                .bind(job_id)
                .bind(now),
            );
            stmts.push(
                NewJob::of(&Deliver { delivery })
                    .for_org(e.org().0)
                    .with_id(job_id)
                    .stmt(now),
            );
        }
    }
    if !stmts.is_empty() {
        tx.run_all(stmts).await?;
        kernel::jobs::wake_after_commit(super::QUEUE.name);
    }
    Ok(())
}

/// One attempt at a delivery (the `webhooks.deliver` job).
pub async fn deliver(app: &App, id: DeliveryId) -> HandlerResult {
    let db = app.db();
    let Some(d) = store::pending(db, id).await? else {
        return Ok(()); // the endpoint was deleted
    };
    if matches!(d.status.as_str(), "delivered" | "cancelled") {
        return Ok(());
    }
    if d.endpoint_status != "active" {
        store::cancel(id, "the endpoint is disabled")
            .execute(db)
            .await?;
        return Ok(());
    }
    if store::earlier_waiting(db, &d).await? {
        return Err(JobError::Snooze(ORDER_WAIT));
    }
    let now = app.kernel.now();
    let msg_id = d.event_id.to_string();
    let ts = now / MICROS_PER_SEC;
    let mut signatures = sign(&d.secret, &msg_id, ts, &d.body)
        .into_iter()
        .collect::<Vec<_>>();
    if let (Some(old), Some(until)) = (&d.previous_secret, d.previous_until)
        && until > now
    {
        signatures.extend(sign(old, &msg_id, ts, &d.body));
    }
    let signature = signatures.join(" ");
    let headers = serde_json::json!({
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": ts.to_string(),
        "webhook-signature": signature,
    });
    let out = app.state::<Outbound>();
    let started = Instant::now();
    // Checked again at every attempt: a literal address never reaches the
    // resolver, and a name may have been re-pointed since registration.
    let refused = if out.allow_private {
        None
    } else {
        out.check(&d.url)
            .await
            .err()
            .map(|why| format!("refused: the URL {why}"))
    };
    let sent = match refused {
        Some(why) => Err(why),
        None => out
            .client
            .post(&d.url)
            .header("content-type", "application/json")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", &signature)
            .body(d.body.clone())
            .send()
            .await
            .map_err(|e| describe(&e)),
    };
    let latency_ms = started.elapsed().as_millis() as i64;
    let (status, error) = match &sent {
        Ok(r) => (Some(r.status().as_u16() as i64), None),
        Err(e) => (None, Some(e.clone())),
    };
    metrics::counter!("voelgoed_webhook_attempts_total", "outcome" => match status {
        Some(200..=299) => "delivered",
        Some(_) => "refused",
        None => "unreachable",
    })
    .increment(1);
    metrics::histogram!("voelgoed_webhook_latency_seconds").record(latency_ms as f64 / 1000.0);
    let mut attempt = store::Attempt {
        delivery: id,
        org: d.org_id,
        at: now,
        status,
        latency_ms,
        error: error.clone(),
        headers: headers.to_string(),
        outcome: "failed",
    };
    let mut stmts = Vec::new();
    let result = match status {
        Some(200..=299) => {
            attempt.outcome = "delivered";
            stmts.push(store::endpoint_ok(d.endpoint_id));
            stmts.push(store::wake_followers(&d, now));
            Ok(())
        }
        Some(410) => {
            attempt.outcome = "cancelled";
            attempt.error = Some("410 Gone: the endpoint was disabled".into());
            stmts.push(store::endpoint_disabled(d.endpoint_id, "answered 410 Gone"));
            stmts.push(disabled_event(app, &d, "answered 410 Gone")?);
            Ok(())
        }
        _ => {
            let why = error.unwrap_or_else(|| format!("answered {}", status.unwrap_or(0)));
            stmts.push(store::endpoint_failing(d.endpoint_id, now));
            if d.failing_since
                .is_some_and(|since| now - since >= FAILING_LIMIT_MICROS)
            {
                let reason = "every delivery failed for three days";
                stmts.push(store::endpoint_disabled(d.endpoint_id, reason));
                stmts.push(disabled_event(app, &d, reason)?);
                tracing::warn!(endpoint = %d.endpoint_id, org = %d.org_id, url = %d.url, "webhook endpoint disabled after failing for three days");
            }
            Err(JobError::Failed(why))
        }
    };
    let mut all = store::attempt_stmts(&attempt);
    all.extend(stmts);
    // Its own transaction, statement by statement: waking the next
    // delivery's job must not share a group-committed statement with that
    // job's own update (see `Db::write_grouped`).
    let mut tx = db.begin().await?;
    for s in &all {
        s.execute_in(&mut tx).await?;
    }
    tx.commit().await?;
    // The next delivery about this subject may be due now.
    kernel::jobs::wake(super::QUEUE.name);
    result
}

fn disabled_event(app: &App, d: &store::Pending, reason: &str) -> Result<Stmt, JobError> {
    emit(
        &EndpointDisabled {
            org_id: d.org_id,
            webhook_id: d.endpoint_id,
            url: d.url.clone(),
            reason: reason.into(),
        },
        app.kernel.now(),
    )
    .map_err(|e| JobError::Failed(e.to_string()))
}

/// What went wrong with a request, short enough for the log.
fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out after 10 s".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(inner) = src {
        let text = inner.to_string();
        if text.contains("no public address") {
            s = text;
            break;
        }
        src = inner.source();
    }
    s
}
