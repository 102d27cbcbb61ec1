//! The card provider adapter, built to Stripe's public HTTP API: form-encoded
//! requests with `Authorization: Bearer` and `Idempotency-Key`, Stripe's
//! JSON objects and error format, and `Stripe-Signature` on its webhooks.
//! `--stripe-api-base` points it at Stripe or at a stand-in speaking the
//! same protocol (the tests' and the load driver's).

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// How old a signed webhook may be (Stripe's own libraries' default).
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// No answer in time, no connection, or a 5xx/429: try again later with
    /// the same idempotency key.
    #[error("the payment provider did not answer: {0}")]
    Unavailable(String),
    /// The provider refused the request (4xx): trying again will not help.
    #[error("the payment provider refused: {0}")]
    Refused(String),
}

/// A PaymentIntent as far as the platform reads it.
#[derive(Clone, Debug, Deserialize)]
pub struct Intent {
    pub id: String,
    pub amount: i64,
    #[serde(default)]
    pub amount_received: i64,
    pub currency: String,
    pub status: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub metadata: std::collections::HashMap<String, String>,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub last_payment_error: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Refund {
    pub id: String,
    pub amount: i64,
    pub status: String,
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default)]
    pub metadata: std::collections::HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct List<T> {
    data: Vec<T>,
    #[serde(default)]
    has_more: bool,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    message: String,
}

/// The client: one per node, shared by every org (the platform is the
/// merchant of record in this version; per-org connected accounts are
/// future work).
pub struct Stripe {
    http: reqwest::Client,
    base: String,
    secret: String,
}

impl Stripe {
    pub fn from_config(c: &kernel::Config) -> Option<Stripe> {
        let secret = c.stripe_secret_key.clone()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(c.stripe_timeout_ms))
            .connect_timeout(Duration::from_millis(c.stripe_timeout_ms.min(5_000)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("voelgoed/", env!("CARGO_PKG_VERSION")))
            .build()
            .ok()?;
        Some(Stripe {
            http,
            base: c.stripe_api_base.trim_end_matches('/').to_string(),
            secret,
        })
    }

    async fn send<T: for<'de> Deserialize<'de>>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ProviderError> {
        let resp = req
            .bearer_auth(&self.secret)
            .header("Stripe-Version", "2024-06-20")
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| ProviderError::Unavailable(format!("unreadable reply: {e}")));
        }
        let detail = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| format!("{} ({})", b.error.message, b.error.kind))
            .unwrap_or_else(|_| format!("HTTP {status}"));
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 409 {
            Err(ProviderError::Unavailable(detail))
        } else {
            Err(ProviderError::Refused(detail))
        }
    }

    /// `POST /v1/payment_intents`: the same key gives the same intent.
    pub async fn create_intent(
        &self,
        amount: i64,
        currency: &str,
        order_id: &str,
        org: &str,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError> {
        let form = [
            ("amount", amount.to_string()),
            ("currency", currency.to_ascii_lowercase()),
            ("metadata[order_id]", order_id.to_string()),
            ("metadata[org]", org.to_string()),
            ("automatic_payment_methods[enabled]", "true".to_string()),
        ];
        self.send(
            self.http
                .post(format!("{}/v1/payment_intents", self.base))
                .header("Idempotency-Key", idempotency_key)
                .form(&form),
        )
        .await
    }

    /// `POST /v1/refunds` for part or all of an intent.
    pub async fn refund(
        &self,
        intent: &str,
        amount: i64,
        refund_id: &str,
        idempotency_key: &str,
    ) -> Result<Refund, ProviderError> {
        let form = [
            ("payment_intent", intent.to_string()),
            ("amount", amount.to_string()),
            ("metadata[refund_id]", refund_id.to_string()),
        ];
        self.send(
            self.http
                .post(format!("{}/v1/refunds", self.base))
                .header("Idempotency-Key", idempotency_key)
                .form(&form),
        )
        .await
    }

    /// `GET /v1/payment_intents/{id}`.
    pub async fn intent(&self, id: &str) -> Result<Intent, ProviderError> {
        self.send(self.http.get(format!(
            "{}/v1/payment_intents/{}",
            self.base,
            urlencode(id)
        )))
        .await
    }

    /// Every intent created at or after `since` (Unix seconds), paging
    /// through `starting_after`; at most `max` of them.
    pub async fn intents_since(
        &self,
        since: i64,
        max: usize,
    ) -> Result<Vec<Intent>, ProviderError> {
        let mut out: Vec<Intent> = Vec::new();
        loop {
            let mut q = vec![
                ("limit", "100".to_string()),
                ("created[gte]", since.to_string()),
            ];
            if let Some(last) = out.last() {
                q.push(("starting_after", last.id.clone()));
            }
            let page: List<Intent> = self
                .send(
                    self.http
                        .get(format!("{}/v1/payment_intents", self.base))
                        .query(&q),
                )
                .await?;
            let more = page.has_more && !page.data.is_empty();
            out.extend(page.data);
            if !more || out.len() >= max {
                return Ok(out);
            }
        }
    }
}

fn urlencode(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Checks a `Stripe-Signature` header (`t=...,v1=...[,v1=...]`): an
/// HMAC-SHA256 of `t.body` under the webhook secret, `t` within the
/// tolerance of `now` (Unix seconds). Anything else is false.
pub fn verify_signature(secret: &str, header: &str, body: &[u8], now: i64) -> bool {
    let mut t: Option<i64> = None;
    let mut sigs: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k {
            "t" => t = v.parse().ok(),
            "v1" => {
                if let Ok(bytes) = hex_decode(v) {
                    sigs.push(bytes);
                }
            }
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > SIGNATURE_TOLERANCE_SECS || sigs.is_empty() {
        return false;
    }
    sigs.iter().any(|sig| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(sig).is_ok()
    })
}

/// The header Stripe would send for `body` at `t` (for tests and tools).
pub fn sign(secret: &str, body: &[u8], t: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let sig: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={sig}")
}

fn hex_decode(s: &str) -> Result<Vec<u8>, ()> {
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return Err(());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| ()))
        .collect()
}

/// A webhook event as far as the platform reads it.
#[derive(Debug, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: EventData,
}

#[derive(Debug, Deserialize)]
pub struct EventData {
    pub object: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_secret_and_time() {
        let body = br#"{"id":"evt_1"}"#;
        let h = sign("whsec_abc", body, 1_000);
        assert!(verify_signature("whsec_abc", &h, body, 1_000));
        assert!(verify_signature("whsec_abc", &h, body, 1_299));
        assert!(!verify_signature("whsec_abc", &h, body, 1_301), "stale");
        assert!(
            !verify_signature("whsec_abd", &h, body, 1_000),
            "other secret"
        );
        assert!(
            !verify_signature("whsec_abc", &h, b"{}", 1_000),
            "other body"
        );
        assert!(!verify_signature("whsec_abc", "t=1000", body, 1_000));
        assert!(!verify_signature("whsec_abc", "", body, 1_000));
        assert!(!verify_signature(
            "whsec_abc",
            &h.replace("v1=", "v0="),
            body,
            1_000
        ));
        // A rotated secret: Stripe sends one v1 per secret; any may match.
        let other = sign("whsec_old", body, 1_000);
        let both = format!("{h},{}", other.split(',').nth(1).unwrap());
        assert!(verify_signature("whsec_old", &both, body, 1_000));
    }
}
