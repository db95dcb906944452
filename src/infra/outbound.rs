//! Requests kiss-auth makes to URLs its users chose (event webhooks): a client that times out at
//! 10 s, follows no redirects and, in production, connects only to public addresses — the URL is
//! checked when it is registered, and every connection's resolved address again (a name can be
//! re-pointed at an internal address after it was checked).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a client may be sent to `ip`: not loopback, private, link-local (which holds the cloud
/// metadata address 169.254.169.254), shared (CGNAT), unspecified, multicast or reserved; IPv6
/// unique-local (fd00:ec2::254, the IPv6 metadata address, is one) and IPv4-mapped private
/// addresses are refused the same way.
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// Why a URL cannot be a webhook's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("The url must be an absolute http:// or https:// URL.")]
    Malformed,
    #[error("The url must use https://.")]
    NotHttps,
    #[error("The url must not carry a user name or password.")]
    Credentials,
    #[error("The url must not point to a loopback, private, link-local or metadata address.")]
    NotPublic,
    #[error("The url's host name could not be resolved.")]
    Unresolvable,
}

/// Checks a webhook URL: absolute `http(s)://` without credentials; in production `https://`
/// only, and a host that resolves to public addresses only.
pub async fn check_url(raw: &str, production: bool) -> Result<Url, UrlRefused> {
    let url = Url::parse(raw).map_err(|_| UrlRefused::Malformed)?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(UrlRefused::Malformed);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused::Credentials);
    }
    if !production {
        return Ok(url);
    }
    if url.scheme() != "https" {
        return Err(UrlRefused::NotHttps);
    }
    let bare = bare_host(url.host_str().unwrap_or_default());
    let addresses: Vec<IpAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((bare, 443))
            .await
            .map_err(|_| UrlRefused::Unresolvable)?
            .map(|socket| socket.ip())
            .collect(),
    };
    if addresses.is_empty() {
        return Err(UrlRefused::Unresolvable);
    }
    if !addresses.into_iter().all(is_public) {
        return Err(UrlRefused::NotPublic);
    }
    Ok(url)
}

/// Resolves names like the system does, keeping only public addresses.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = resolved.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err("the host resolves to no public address".into());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// The client for webhook deliveries. With `public_only` (production) it resolves names to
/// public addresses only; a URL with an IP literal is not resolved, so callers check those with
/// [`is_public`] before sending.
pub fn client(public_only: bool) -> reqwest::Client {
    super::sms::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("kiss-auth-webhooks/", env!("CARGO_PKG_VERSION")));
    if public_only {
        builder = builder.dns_resolver(PublicOnly);
    }
    builder.build().unwrap_or_default()
}

/// The IP a URL names literally, if it does.
pub fn literal_ip(url: &Url) -> Option<IpAddr> {
    bare_host(url.host_str()?).parse().ok()
}

/// A host without the brackets of an IPv6 literal.
fn bare_host(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(ip: &str) -> bool {
        is_public(ip.parse().unwrap())
    }

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!public(ip), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(public(ip), "{ip}");
        }
    }

    #[tokio::test]
    async fn production_urls_are_https_and_public() {
        assert_eq!(
            check_url("http://hooks.example.com/x", true)
                .await
                .unwrap_err(),
            UrlRefused::NotHttps
        );
        for internal in [
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost/hook",
        ] {
            assert_eq!(
                check_url(internal, true).await.unwrap_err(),
                UrlRefused::NotPublic,
                "{internal}"
            );
        }
        assert_eq!(
            check_url("https://user:pw@8.8.8.8/", true)
                .await
                .unwrap_err(),
            UrlRefused::Credentials
        );
        assert!(check_url("https://8.8.8.8/hook", true).await.is_ok());
        assert_eq!(
            check_url("ftp://x.example/", false).await.unwrap_err(),
            UrlRefused::Malformed
        );
        assert!(check_url("http://127.0.0.1:9/hook", false).await.is_ok());
    }
}
