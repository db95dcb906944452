//! Rate limits applied to routes (docs/api.md, "Rate limits"): a refused request is the contract's 429 and does
//! nothing else; every answer of a limited route carries the `RateLimit-Policy` / `RateLimit`
//! headers. The counting itself is `services::rate_limit`.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{Extensions, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;

use super::AppState;
use super::extract::{ParsedBody, parse_json_body, read_limited};
use crate::domain::Error;
use crate::domain::validation::Validate;
use crate::services::auth::CompanyAuth;
use crate::services::rate_limit::{Scope, Ticket};

/// Left in the request's extensions by an admitted request: the slot it holds in each of its
/// keys, for a handler that may give a reservation back.
#[derive(Clone)]
pub struct Admission(pub Ticket);

/// Runs the request if the limiter admits it under `keys`; a refusal is the 429 and nothing else
/// happens. Either way the answer carries the `RateLimit` headers.
pub async fn enforce(
    state: &AppState,
    keys: &[(Scope, String)],
    request: Request,
    next: Next,
) -> Response {
    let decision = match state.limiter.acquire(keys).await {
        Ok(decision) => decision,
        Err(err) => return err.into_response(),
    };
    let mut response = if decision.allowed {
        let mut request = request;
        request
            .extensions_mut()
            .insert(Admission(decision.ticket.clone()));
        next.run(request).await
    } else {
        count_refusal(keys.iter().map(|(scope, _)| *scope));
        Error::TooManyRequests {
            retry_after_secs: decision.retry_after_secs,
        }
        .into_response()
    };
    if let Some((policy, state)) = decision.header_values() {
        let headers = response.headers_mut();
        for (name, value) in [("ratelimit-policy", policy), ("ratelimit", state)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
    response
}

/// Metrics of a refused request: per scope, and for the OTP routes what it means (an SMS not
/// sent, a verification not made).
fn count_refusal(scopes: impl Iterator<Item = Scope>) {
    let (mut sms, mut verification) = (false, false);
    for scope in scopes {
        metrics::counter!("rate_limited_total", "scope" => scope.name()).increment(1);
        sms |= scope.limits_sms();
        verification |= scope.limits_verification();
    }
    if sms {
        metrics::counter!("sms_refused_total", "reason" => "limit").increment(1);
    }
    if verification {
        metrics::counter!("otp_verifications_total", "result" => "limited").increment(1);
    }
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy
/// (`KISS_TRUSTED_PROXIES`); then the right-most address of `X-Forwarded-For` that is not itself
/// a trusted proxy (each proxy appends the address it saw, so the entries left of the first
/// untrusted one are whatever the client chose to send).
pub fn client_ip(
    headers: &HeaderMap,
    extensions: &Extensions,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(&ip));
    let mut client = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_canonical())?;
    let forwarded = headers.get_all("x-forwarded-for").iter().rev();
    for value in forwarded {
        let Ok(value) = value.to_str() else {
            return Some(client);
        };
        for entry in value.rsplit(',') {
            if !is_trusted(client) {
                return Some(client);
            }
            match entry.trim().parse::<IpAddr>() {
                Ok(ip) => client = ip.to_canonical(),
                // A malformed entry ends what can be believed.
                Err(_) => return Some(client),
            }
        }
    }
    Some(client)
}

/// The address a per-IP limit counts under: an IPv4 address itself, an IPv6 address its /64 (one
/// subscriber usually holds a whole /64, so counting single addresses would not limit anyone).
pub fn ip_limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from_bits(
            v6.to_bits() & !((1u128 << 64) - 1),
        )),
    }
}

/// A body whose fields key its route's rate limits (the phone of an OTP request, the e-mail of a
/// sign-in).
pub trait LimitedBody: Validate<Raw: Clone + Sync> {
    /// The keys to count the request against; none when the body names no usable key (the
    /// route's validation then refuses it).
    fn rate_limit_keys(raw: &Self::Raw, client_ip: Option<IpAddr>) -> Vec<(Scope, String)>;
}

/// Middleware for the public routes, limited by a key in their body: reads the body under the
/// public body limit, parses it once, counts the request, and leaves the parsed body for the
/// handler's `Input<T>`.
pub async fn by_body<T: LimitedBody>(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let ip = client_ip(
        request.headers(),
        request.extensions(),
        &state.config.trusted_proxies,
    )
    .map(ip_limit_key);
    let (parts, body) = request.into_parts();
    let bytes = match read_limited(&parts.headers, body, state.config.public_body_limit_bytes).await
    {
        Ok(bytes) => bytes,
        Err(err) => return err.into_response(),
    };
    let raw: T::Raw = match parse_json_body(&parts.headers, &bytes) {
        Ok(raw) => raw,
        Err(err) => return err.into_response(),
    };
    let keys = T::rate_limit_keys(&raw, ip);
    let mut request = Request::from_parts(parts, Body::empty());
    request.extensions_mut().insert(ParsedBody(raw));
    if keys.is_empty() {
        return next.run(request).await;
    }
    enforce(&state, &keys, request, next).await
}

/// Middleware for the PMS writes: limits per company (the API token is authenticated first).
pub async fn per_company(
    State((state, scope)): State<(AppState, Scope)>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let auth = match CompanyAuth::from_request_parts(&mut parts, &state).await {
        Ok(auth) => auth,
        Err(err) => return err.into_response(),
    };
    let request = Request::from_parts(parts, body);
    enforce(
        &state,
        &[(scope, auth.company_id.to_string())],
        request,
        next,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_peer(peer: &str, forwarded: &[&str], trusted: &str) -> Option<IpAddr> {
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 40000)));
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        let trusted: Vec<IpNet> = trusted
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        client_ip(&headers, &extensions, &trusted)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        assert_eq!(
            from_peer("198.51.100.7", &["203.0.113.1"], ""),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn an_untrusted_peer_cannot_forge_x_forwarded_for() {
        assert_eq!(
            from_peer("198.51.100.7", &["203.0.113.1"], "10.0.0.0/8"),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_address_is_the_client() {
        // The client sent a forged first entry; the edge proxy appended the real address.
        assert_eq!(
            from_peer(
                "10.0.0.2",
                &["1.1.1.1, 203.0.113.9, 10.0.0.1"],
                "10.0.0.0/8"
            ),
            ip("203.0.113.9")
        );
        // Several header lines are one list, in order.
        assert_eq!(
            from_peer(
                "10.0.0.2",
                &["1.1.1.1", "203.0.113.9", "10.0.0.1"],
                "10.0.0.0/8"
            ),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_malformed_entry_stops_the_walk_at_the_last_believed_address() {
        assert_eq!(
            from_peer("10.0.0.2", &["203.0.113.9, garbage"], "10.0.0.0/8"),
            ip("10.0.0.2")
        );
        assert_eq!(from_peer("10.0.0.2", &[], "10.0.0.0/8"), ip("10.0.0.2"));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        assert_eq!(
            from_peer("::ffff:10.0.0.2", &["203.0.113.9"], "10.0.0.0/8"),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let a = ip_limit_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ip_limit_key("2001:db8:1:2:ffff::9".parse().unwrap());
        let other = ip_limit_key("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(a.to_string(), "2001:db8:1:2::");
        let v4: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(ip_limit_key(v4), v4);
    }
}
