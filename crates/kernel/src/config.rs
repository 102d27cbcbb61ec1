//! Runtime configuration, resolved by the binary from flags, environment and
//! an optional TOML file (in that order of precedence).

use std::{fmt, net::SocketAddr, path::PathBuf};

#[derive(Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// `postgres://...` for production mode; `None` runs on SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// `redis://...` turns on the warm tier and cross-node PubSub.
    pub redis_url: Option<String>,
    /// How long a hold keeps its inventory before it expires.
    pub hold_ttl_secs: i64,
    /// Self-service sign-up (`POST /api/v1/signup`).
    pub signup_enabled: bool,
    /// The URL people open, used in printed links.
    pub public_url: String,
    /// Mark session cookies `Secure` (set when served over HTTPS).
    pub secure_cookies: bool,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Database pool size.
    pub db_max_connections: u32,
    /// SQLite `synchronous`: FULL (default: a commit survives power loss) or
    /// NORMAL (a crash of the process loses nothing, power loss the last
    /// moments).
    pub sqlite_synchronous_full: bool,
    /// Sign-ups, logins and pairings a client address may make a minute.
    pub sensitive_per_minute: u32,
    /// Storefront holds and checkouts a client address may make a minute
    /// (0: no limit).
    pub storefront_per_minute: u32,
    /// Checkouts one buyer (by e-mail) may make a minute, from anywhere
    /// (0: no limit).
    pub buyer_per_minute: u32,
    /// How long a priced order waits for its payment before it expires and
    /// gives its tickets back.
    pub payment_timeout_secs: i64,
    /// A connection that has not sent a request's headers in this time is
    /// closed.
    pub header_timeout_secs: u64,
    /// A request whose body has not arrived in this time is answered 408.
    pub body_timeout_secs: u64,
    /// A handler that runs past this is answered 503 `overloaded` (live
    /// streams are exempt once open).
    pub handler_timeout_secs: u64,
    /// Open live streams one organization may hold at once.
    pub live_streams_per_org: usize,
    /// On shutdown, running jobs get this long to finish before they are
    /// handed back to the queue.
    pub jobs_grace_secs: u64,
    /// A job running this long on a node that stopped answering (killed,
    /// partitioned) is given back to the queue for another node.
    pub jobs_rescue_secs: u64,
    /// Webhook targets may be private, loopback or link-local addresses.
    pub webhooks_allow_private: bool,
    /// `smtp://user:pass@host:port` (STARTTLS when the server offers it,
    /// required with credentials;
    /// `?tls=required` or `smtps://` to insist); `None` writes each message
    /// as an `.eml` file under `data_dir/mail/`.
    pub smtp_url: Option<String>,
    /// The address mail is sent from (its display name is the org's).
    pub mail_from: String,
    /// Stripe's API base (or a stand-in speaking its protocol).
    pub stripe_api_base: String,
    /// Stripe secret key; `None`: card payments are not configured (EFT works).
    pub stripe_secret_key: Option<String>,
    /// Stripe publishable key, for the buyer's page to confirm a card payment.
    pub stripe_publishable_key: Option<String>,
    /// The secret Stripe signs its webhooks with (`whsec_...`).
    pub stripe_webhook_secret: Option<String>,
    /// How long a call to the payment provider may take.
    pub stripe_timeout_ms: u64,
    /// The master key that seals private keys at rest (32 bytes, raw or as
    /// hex or base64 text). `None`: `master.key` in the data dir (embedded
    /// mode) or a key kept in the database (production mode; warned).
    pub master_key_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database_url: None,
            redis_url: None,
            hold_ttl_secs: 15 * 60,
            signup_enabled: true,
            public_url: "http://127.0.0.1:8080".into(),
            secure_cookies: false,
            max_body_bytes: 64 * 1024,
            db_max_connections: 16,
            sqlite_synchronous_full: true,
            sensitive_per_minute: 60,
            storefront_per_minute: 60,
            buyer_per_minute: 10,
            payment_timeout_secs: 1800,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            handler_timeout_secs: 15,
            live_streams_per_org: 100,
            jobs_grace_secs: 10,
            jobs_rescue_secs: 300,
            webhooks_allow_private: false,
            smtp_url: None,
            mail_from: "tickets@localhost".into(),
            stripe_api_base: "https://api.stripe.com".into(),
            stripe_secret_key: None,
            stripe_publishable_key: None,
            stripe_webhook_secret: None,
            stripe_timeout_ms: 10_000,
            master_key_file: None,
        }
    }
}

impl Config {
    /// Served over HTTPS (the public URL says so): HSTS, and `Secure`
    /// cookies unless configured otherwise.
    pub fn https(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

/// Replaces the password in a URL, so configuration can be logged.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("hold_ttl_secs", &self.hold_ttl_secs)
            .field("signup_enabled", &self.signup_enabled)
            .field("public_url", &self.public_url)
            .field("sqlite_synchronous_full", &self.sqlite_synchronous_full)
            .field("payment_timeout_secs", &self.payment_timeout_secs)
            .field("storefront_per_minute", &self.storefront_per_minute)
            .field("webhooks_allow_private", &self.webhooks_allow_private)
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("mail_from", &self.mail_from)
            .field("stripe_api_base", &self.stripe_api_base)
            .field("stripe_configured", &self.stripe_secret_key.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_database_password_never_reaches_the_log() {
        assert_eq!(
            super::redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(
            super::redact_url("redis://127.0.0.1/"),
            "redis://127.0.0.1/"
        );
    }
}
