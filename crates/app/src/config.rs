//! Configuration: flags beat environment (both via clap), which beat the
//! optional TOML file, which beats the defaults.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::Args;
use kernel::Config;
use serde::Deserialize;

#[derive(Args, Debug, Clone, Default)]
pub struct ConfigArgs {
    /// A TOML file with any of the settings below (keys as the long flags, with '_').
    #[arg(long, env = "VOELGOED_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Where the embedded SQLite database lives (when DATABASE_URL is unset) [default: data]
    #[arg(long, env = "VOELGOED_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://...): production mode. Unset: embedded SQLite.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Redis URL (redis://...): warm tier and PubSub across nodes. Unset: in-process only.
    #[arg(long, env = "REDIS_URL", global = true, hide_env_values = true)]
    pub redis_url: Option<String>,
    /// How long a hold keeps its tickets, in seconds [default: 900]
    #[arg(long, env = "VOELGOED_HOLD_TTL_SECS", global = true)]
    pub hold_ttl_secs: Option<i64>,
    /// Allow self-service sign-up at POST /api/v1/signup [default: true]
    #[arg(long, env = "VOELGOED_SIGNUP", global = true)]
    pub signup: Option<bool>,
    /// The URL people open, for printed links [default: http://<addr>]
    #[arg(long, env = "VOELGOED_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Mark session cookies Secure (serve behind HTTPS) [default: false]
    #[arg(long, env = "VOELGOED_SECURE_COOKIES", global = true)]
    pub secure_cookies: Option<bool>,
    /// Database connection pool size [default: 16]
    #[arg(long, env = "VOELGOED_DB_MAX_CONNECTIONS", global = true)]
    pub db_max_connections: Option<u32>,
    /// SQLite synchronous=FULL: a committed sale or admission survives power loss; false switches to NORMAL (about 10% faster writes) [default: true]
    #[arg(long, env = "VOELGOED_SQLITE_SYNC_FULL", global = true)]
    pub sqlite_sync_full: Option<bool>,
    /// Sign-ups, logins and device pairings one client address may make a minute [default: 60]
    #[arg(long, env = "VOELGOED_SENSITIVE_PER_MINUTE", global = true)]
    pub sensitive_per_minute: Option<u32>,
    /// Storefront holds and checkouts one client address may make a minute; 0 switches the limit off [default: 60]
    #[arg(long, env = "VOELGOED_STOREFRONT_PER_MINUTE", global = true)]
    pub storefront_per_minute: Option<u32>,
    /// Checkouts one buyer (by e-mail) may make a minute, across nodes; 0 switches the limit off [default: 10]
    #[arg(long, env = "VOELGOED_BUYER_PER_MINUTE", global = true)]
    pub buyer_per_minute: Option<u32>,
    /// How long a priced order waits for its payment before it expires and gives its tickets back, in seconds [default: 1800]
    #[arg(long, env = "VOELGOED_PAYMENT_TIMEOUT_SECS", global = true)]
    pub payment_timeout_secs: Option<i64>,
    /// Close a connection whose request headers have not arrived in this many seconds [default: 10]
    #[arg(long, env = "VOELGOED_HEADER_TIMEOUT_SECS", global = true)]
    pub header_timeout_secs: Option<u64>,
    /// Answer 408 to a request whose body has not arrived in this many seconds [default: 30]
    #[arg(long, env = "VOELGOED_BODY_TIMEOUT_SECS", global = true)]
    pub body_timeout_secs: Option<u64>,
    /// Answer 503 to a request whose handler runs longer than this many seconds (live streams are exempt once open) [default: 15]
    #[arg(long, env = "VOELGOED_HANDLER_TIMEOUT_SECS", global = true)]
    pub handler_timeout_secs: Option<u64>,
    /// Live streams one organization may hold open at once [default: 100]
    #[arg(long, env = "VOELGOED_LIVE_STREAMS_PER_ORG", global = true)]
    pub live_streams_per_org: Option<usize>,
    /// On shutdown, running jobs get this many seconds to finish before they are handed back to the queue [default: 10]
    #[arg(long, env = "VOELGOED_JOBS_GRACE_SECS", global = true)]
    pub jobs_grace_secs: Option<u64>,
    /// A job running this many seconds on a node that stopped answering (killed, cut off) goes back to the queue for another node; keep it above the longest job [default: 300]
    #[arg(long, env = "VOELGOED_JOBS_RESCUE_SECS", global = true)]
    pub jobs_rescue_secs: Option<u64>,
    /// Let webhook endpoints point at private, loopback and link-local addresses (for a receiver on the same host or network) [default: false]
    #[arg(long, env = "VOELGOED_WEBHOOKS_ALLOW_PRIVATE", global = true)]
    pub webhooks_allow_private: Option<bool>,
    /// Send mail over SMTP: smtp://user:pass@host:port (STARTTLS when offered, required when the URL has credentials; add ?tls=required to insist, or use smtps://). Without it, mail is written as .eml files under the data dir's mail/
    #[arg(long, env = "VOELGOED_SMTP_URL", global = true)]
    pub smtp_url: Option<String>,
    /// The address mail is sent from; the display name is the organization's [default: tickets@localhost]
    #[arg(long, env = "VOELGOED_MAIL_FROM", global = true)]
    pub mail_from: Option<String>,
    /// Stripe's API base URL (or a stand-in speaking its protocol) [default: https://api.stripe.com]
    #[arg(long, env = "VOELGOED_STRIPE_API_BASE", global = true)]
    pub stripe_api_base: Option<String>,
    /// Stripe secret key (sk_...): turns on card payments. Without it, card checkouts answer 422 and EFT still works
    #[arg(
        long,
        env = "VOELGOED_STRIPE_SECRET_KEY",
        global = true,
        hide_env_values = true
    )]
    pub stripe_secret_key: Option<String>,
    /// Stripe publishable key (pk_...), for the buyer's page to confirm a card payment
    #[arg(long, env = "VOELGOED_STRIPE_PUBLISHABLE_KEY", global = true)]
    pub stripe_publishable_key: Option<String>,
    /// The secret Stripe signs its webhooks with (whsec_...), checked at POST /api/v1/payments/stripe/webhook
    #[arg(
        long,
        env = "VOELGOED_STRIPE_WEBHOOK_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub stripe_webhook_secret: Option<String>,
    /// How long one call to the payment provider may take, in milliseconds [default: 10000]
    #[arg(long, env = "VOELGOED_STRIPE_TIMEOUT_MS", global = true)]
    pub stripe_timeout_ms: Option<u64>,
    /// The master key sealing private keys at rest: a file of 32 bytes (raw, hex or base64). Default: master.key in the data dir (embedded) or a key kept in the database (production, warned: give every node the same file)
    #[arg(long, env = "VOELGOED_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<std::path::PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    addr: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    redis_url: Option<String>,
    hold_ttl_secs: Option<i64>,
    signup: Option<bool>,
    public_url: Option<String>,
    secure_cookies: Option<bool>,
    db_max_connections: Option<u32>,
    sqlite_sync_full: Option<bool>,
    sensitive_per_minute: Option<u32>,
    storefront_per_minute: Option<u32>,
    buyer_per_minute: Option<u32>,
    payment_timeout_secs: Option<i64>,
    header_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
    handler_timeout_secs: Option<u64>,
    live_streams_per_org: Option<usize>,
    jobs_grace_secs: Option<u64>,
    jobs_rescue_secs: Option<u64>,
    webhooks_allow_private: Option<bool>,
    smtp_url: Option<String>,
    mail_from: Option<String>,
    stripe_api_base: Option<String>,
    stripe_secret_key: Option<String>,
    stripe_publishable_key: Option<String>,
    stripe_webhook_secret: Option<String>,
    stripe_timeout_ms: Option<u64>,
    master_key_file: Option<std::path::PathBuf>,
}

impl ConfigArgs {
    /// Resolves the configuration; `addr` is the subcommand's `--addr`.
    pub fn resolve(&self, addr: Option<SocketAddr>) -> anyhow::Result<Config> {
        let file: FileConfig = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let d = Config::default();
        let addr = addr.or(file.addr).unwrap_or(d.addr);
        let hold_ttl_secs = self
            .hold_ttl_secs
            .or(file.hold_ttl_secs)
            .unwrap_or(d.hold_ttl_secs);
        anyhow::ensure!(
            (1..=24 * 3600).contains(&hold_ttl_secs),
            "hold_ttl_secs must be 1 to 86400"
        );
        let payment_timeout_secs = self
            .payment_timeout_secs
            .or(file.payment_timeout_secs)
            .unwrap_or(d.payment_timeout_secs);
        anyhow::ensure!(
            (1..=7 * 24 * 3600).contains(&payment_timeout_secs),
            "payment_timeout_secs must be 1 to 604800"
        );
        let secs = |flag: Option<u64>, file: Option<u64>, default: u64, name: &str| {
            let v = flag.or(file).unwrap_or(default);
            anyhow::ensure!((1..=3600).contains(&v), "{name} must be 1 to 3600");
            Ok(v)
        };
        let public_url = self
            .public_url
            .clone()
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{addr}"));
        Ok(Config {
            addr,
            data_dir: self
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or(d.data_dir),
            database_url: self
                .database_url
                .clone()
                .or(file.database_url)
                .filter(|s| !s.is_empty()),
            redis_url: self
                .redis_url
                .clone()
                .or(file.redis_url)
                .filter(|s| !s.is_empty()),
            hold_ttl_secs,
            signup_enabled: self.signup.or(file.signup).unwrap_or(d.signup_enabled),
            // Behind HTTPS, cookies are Secure unless told otherwise.
            secure_cookies: self
                .secure_cookies
                .or(file.secure_cookies)
                .unwrap_or(public_url.starts_with("https://")),
            public_url,
            max_body_bytes: d.max_body_bytes,
            db_max_connections: self
                .db_max_connections
                .or(file.db_max_connections)
                .unwrap_or(d.db_max_connections),
            sqlite_synchronous_full: self
                .sqlite_sync_full
                .or(file.sqlite_sync_full)
                .unwrap_or(d.sqlite_synchronous_full),
            sensitive_per_minute: self
                .sensitive_per_minute
                .or(file.sensitive_per_minute)
                .unwrap_or(d.sensitive_per_minute),
            storefront_per_minute: self
                .storefront_per_minute
                .or(file.storefront_per_minute)
                .unwrap_or(d.storefront_per_minute),
            buyer_per_minute: self
                .buyer_per_minute
                .or(file.buyer_per_minute)
                .unwrap_or(d.buyer_per_minute),
            payment_timeout_secs,
            header_timeout_secs: secs(
                self.header_timeout_secs,
                file.header_timeout_secs,
                d.header_timeout_secs,
                "header_timeout_secs",
            )?,
            body_timeout_secs: secs(
                self.body_timeout_secs,
                file.body_timeout_secs,
                d.body_timeout_secs,
                "body_timeout_secs",
            )?,
            handler_timeout_secs: secs(
                self.handler_timeout_secs,
                file.handler_timeout_secs,
                d.handler_timeout_secs,
                "handler_timeout_secs",
            )?,
            live_streams_per_org: self
                .live_streams_per_org
                .or(file.live_streams_per_org)
                .unwrap_or(d.live_streams_per_org)
                .max(1),
            jobs_grace_secs: secs(
                self.jobs_grace_secs,
                file.jobs_grace_secs,
                d.jobs_grace_secs,
                "jobs_grace_secs",
            )?,
            jobs_rescue_secs: secs(
                self.jobs_rescue_secs,
                file.jobs_rescue_secs,
                d.jobs_rescue_secs,
                "jobs_rescue_secs",
            )?,
            webhooks_allow_private: self
                .webhooks_allow_private
                .or(file.webhooks_allow_private)
                .unwrap_or(d.webhooks_allow_private),
            smtp_url: match self.smtp_url.clone().or(file.smtp_url) {
                Some(url) if !url.is_empty() => {
                    platform::mail::check_smtp_url(&url)
                        .map_err(|e| anyhow::anyhow!("smtp_url: {e}"))?;
                    Some(url)
                }
                _ => None,
            },
            mail_from: match self.mail_from.clone().or(file.mail_from) {
                Some(from) => {
                    platform::mail::check_address(&from)
                        .map_err(|e| anyhow::anyhow!("mail_from: {e}"))?;
                    from
                }
                None => d.mail_from,
            },
            stripe_api_base: {
                let base = self
                    .stripe_api_base
                    .clone()
                    .or(file.stripe_api_base)
                    .unwrap_or(d.stripe_api_base);
                anyhow::ensure!(
                    base.starts_with("https://") || base.starts_with("http://"),
                    "stripe_api_base must be an http(s) URL"
                );
                base.trim_end_matches('/').to_string()
            },
            stripe_secret_key: self
                .stripe_secret_key
                .clone()
                .or(file.stripe_secret_key)
                .filter(|s| !s.is_empty()),
            stripe_publishable_key: self
                .stripe_publishable_key
                .clone()
                .or(file.stripe_publishable_key)
                .filter(|s| !s.is_empty()),
            stripe_webhook_secret: self
                .stripe_webhook_secret
                .clone()
                .or(file.stripe_webhook_secret)
                .filter(|s| !s.is_empty()),
            stripe_timeout_ms: {
                let ms = self
                    .stripe_timeout_ms
                    .or(file.stripe_timeout_ms)
                    .unwrap_or(d.stripe_timeout_ms);
                anyhow::ensure!(
                    (50..=120_000).contains(&ms),
                    "stripe_timeout_ms must be 50 to 120000"
                );
                ms
            },
            master_key_file: self.master_key_file.clone().or(file.master_key_file),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let dir = std::env::temp_dir().join(format!("vg-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("voelgoed.toml");
        std::fs::write(
            &file,
            "hold_ttl_secs = 60\nsignup = false\ndata_dir = \"/tmp/x\"\n",
        )
        .unwrap();
        let args = ConfigArgs {
            config: Some(file),
            hold_ttl_secs: Some(30),
            ..Default::default()
        };
        let c = args.resolve(None).unwrap();
        assert_eq!(c.hold_ttl_secs, 30);
        assert!(!c.signup_enabled);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.addr, Config::default().addr);
        let bad = ConfigArgs {
            hold_ttl_secs: Some(0),
            ..Default::default()
        };
        assert!(bad.resolve(None).is_err());
        let https = ConfigArgs {
            public_url: Some("https://tickets.example.com".into()),
            ..Default::default()
        };
        assert!(https.resolve(None).unwrap().secure_cookies);
        assert!(https.resolve(None).unwrap().https());
    }
}
