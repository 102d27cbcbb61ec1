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
    /// SQLite synchronous=FULL: survive power loss at the cost of write speed [default: false, i.e. NORMAL]
    #[arg(long, env = "VOELGOED_SQLITE_SYNC_FULL", global = true)]
    pub sqlite_sync_full: Option<bool>,
    /// Sign-ups, logins and device pairings one client address may make a minute [default: 60]
    #[arg(long, env = "VOELGOED_SENSITIVE_PER_MINUTE", global = true)]
    pub sensitive_per_minute: Option<u32>,
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
            public_url: self
                .public_url
                .clone()
                .or(file.public_url)
                .unwrap_or_else(|| format!("http://{addr}")),
            secure_cookies: self
                .secure_cookies
                .or(file.secure_cookies)
                .unwrap_or(d.secure_cookies),
            max_body_bytes: d.max_body_bytes,
            db_max_connections: self
                .db_max_connections
                .or(file.db_max_connections)
                .unwrap_or(d.db_max_connections),
            sqlite_synchronous_full: self
                .sqlite_sync_full
                .or(file.sqlite_sync_full)
                .unwrap_or(false),
            sensitive_per_minute: self
                .sensitive_per_minute
                .or(file.sensitive_per_minute)
                .unwrap_or(d.sensitive_per_minute),
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
    }
}
