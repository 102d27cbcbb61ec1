//! Outbound HTTP for webhooks: one shared client with timeouts, no
//! redirects, and a resolver that refuses private, loopback and link-local
//! addresses after DNS resolution (so a hostname cannot smuggle one in),
//! unless the operator allows them.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Per delivery attempt.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The webhooks slice's client.
pub struct Outbound {
    pub client: reqwest::Client,
    pub allow_private: bool,
}

impl Outbound {
    pub fn new(allow_private: bool) -> Outbound {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("VoelgoedEvents-Webhooks/1")
            .dns_resolver(Arc::new(Guarded { allow_private }))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Outbound {
            client,
            allow_private,
        }
    }

    /// Whether `url` may be called: http(s), and every address its host
    /// resolves to is public (or private ones are allowed). The error says
    /// why not, for the caller to show.
    pub async fn check(&self, url: &str) -> Result<(), String> {
        let u = reqwest::Url::parse(url).map_err(|_| "is not an absolute URL".to_string())?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err("must be an http or https URL".into());
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err("must not carry credentials".into());
        }
        let host = u.host_str().ok_or("has no host")?.to_string();
        let port = u.port_or_known_default().unwrap_or(443);
        if self.allow_private {
            return Ok(());
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if let Ok(ip) = host.parse::<IpAddr>() {
            return if is_public(ip) {
                Ok(())
            } else {
                Err("points at a private, loopback or link-local address".into())
            };
        }
        let addrs = tokio::time::timeout(
            Duration::from_secs(3),
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .map_err(|_| "has a host that did not resolve in time".to_string())?
        .map_err(|_| "has a host that does not resolve".to_string())?
        .collect::<Vec<_>>();
        if addrs.is_empty() {
            return Err("has a host that does not resolve".into());
        }
        if addrs.iter().all(|a| is_public(a.ip())) {
            Ok(())
        } else {
            Err("resolves to a private, loopback or link-local address".into())
        }
    }
}

/// The resolver behind the client: only public addresses reach a socket.
struct Guarded {
    allow_private: bool,
}

impl Resolve for Guarded {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{} resolves to no public address (private, loopback and link-local targets are refused)",
                    name.as_str()
                )
                .into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// A globally routable unicast address: not loopback, private, link-local,
/// shared (CGNAT), unspecified, multicast, broadcast, documentation or
/// reserved, nor an IPv6 address that maps or embeds one of those.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 (embeds IPv4)
                || (s[0] == 0x2002) // 6to4 (embeds IPv4)
                || v6 == Ipv6Addr::from([0, 0, 0, 0, 0, 0, 0, 1]))
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} is not public");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[tokio::test]
    async fn a_target_is_checked_by_address_and_after_resolution() {
        let strict = Outbound::new(false);
        for url in [
            "http://127.0.0.1:9/hook",
            "http://[::1]/hook",
            "http://localhost:8080/hook",
            "http://169.254.169.254/latest/meta-data",
            "ftp://example.com/",
            "http://user:pw@1.1.1.1/",
            "not a url",
        ] {
            assert!(strict.check(url).await.is_err(), "{url} refused");
        }
        assert!(strict.check("https://1.1.1.1/hook").await.is_ok());
        assert!(
            Outbound::new(true)
                .check("http://127.0.0.1:9/hook")
                .await
                .is_ok()
        );
        // At delivery, the resolver refuses a name that resolves privately.
        let e = strict
            .client
            .post("http://localhost:9/hook")
            .send()
            .await
            .unwrap_err();
        assert!(format!("{e:?}").contains("no public address"), "{e:?}");
    }
}
