//! Signed read requests: how a reader proves which account asks for restricted data (private
//! records on a node, order views and carts on an indexer), without a session or a password.
//!
//! A signed request carries three headers:
//!
//! * `X-Consort-Account`: the reader's account id (hex ed25519 public key);
//! * `X-Consort-Time`: unix seconds, within [`READ_WINDOW_SECS`] of the server's clock;
//! * `X-Consort-Signature`: hex ed25519 signature, under [`READ_NAMESPACE`], of
//!   [`read_message`] (chain id, host, method, path with query, time). The chain id keeps a
//!   signature made for one chain (a test net, say) from opening data of another; the host
//!   (the request's `Host`, as sent: name, and `:port` unless it is the scheme's default)
//!   keeps one made for one server from opening the same data on another within the window:
//!   a server refuses a host it does not answer to ([`serves`]).
//!
//! A request that changes something (a cart) signs its body too: [`request_message`].

use crate::AccountId;
use commonware_codec::DecodeExt as _;
use commonware_cryptography::{Verifier as _, ed25519};
use std::net::SocketAddr;

/// Namespace of read-request signatures.
pub const READ_NAMESPACE: &[u8] = b"_CONSORT_READ";

/// How far a signed request's time may be from the server's clock.
pub const READ_WINDOW_SECS: u64 = 300;

/// What a reader signs: `chain_id host METHOD path?query time`.
pub fn read_message(
    chain_id: u64,
    host: &str,
    method: &str,
    path_and_query: &str,
    time: u64,
) -> Vec<u8> {
    format!("{chain_id} {host} {method} {path_and_query} {time}").into_bytes()
}

/// What a request with a body signs: [`read_message`] followed by a space and the hex
/// sha256 of the body (an empty body signs as a read).
pub fn request_message(
    chain_id: u64,
    host: &str,
    method: &str,
    path_and_query: &str,
    time: u64,
    body: &[u8],
) -> Vec<u8> {
    let mut message = read_message(chain_id, host, method, path_and_query, time);
    if !body.is_empty() {
        message.push(b' ');
        message.extend_from_slice(hex::encode(crate::sha256(&[body])).as_bytes());
    }
    message
}

/// The hosts a server listening on `listen` answers to by default: its address (and
/// `localhost` for a loopback one), with the port, and without it on port 80. None for an
/// unspecified address (`0.0.0.0`): such a server answers to any host unless told its names.
pub fn default_hosts(listen: SocketAddr) -> Vec<String> {
    let ip = listen.ip();
    if ip.is_unspecified() {
        return Vec::new();
    }
    let port = listen.port();
    let mut names = vec![match ip {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    }];
    if ip.is_loopback() {
        names.push("localhost".into());
    }
    let mut hosts: Vec<String> = names.iter().map(|name| format!("{name}:{port}")).collect();
    if port == 80 {
        hosts.extend(names);
    }
    hosts
}

/// Whether a server answering to `hosts` serves a request for `host` (letter case aside).
/// An empty list serves any host.
pub fn serves(hosts: &[String], host: &str) -> bool {
    hosts.is_empty() || hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
}

/// Why a signed request is refused (HTTP 401 `unsigned_read`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadAuthError {
    /// A header is missing.
    #[error(
        "this is restricted data: sign the request (header {0} is missing; the consort CLI's \
         commands do it for you)"
    )]
    Missing(&'static str),
    /// A header is not what it should be.
    #[error("{0}")]
    Malformed(&'static str),
    /// The time is too far from the server's clock.
    #[error(
        "the signed time {time} is more than {READ_WINDOW_SECS} s from the server's clock \
         {now}; sign again with the current time"
    )]
    Stale {
        /// The signed time.
        time: u64,
        /// The server's clock.
        now: u64,
    },
    /// The request names a host this server does not answer to.
    #[error(
        "this server does not answer to host {0:?}: send (and sign) the request for one of \
         its own hosts"
    )]
    WrongHost(String),
    /// The signature does not verify.
    #[error(
        "the signature does not verify for this chain id, host, account, method, path and time"
    )]
    BadSignature,
}

/// The three headers' values, as received.
#[derive(Debug, Clone, Copy)]
pub struct ReadHeaders<'a> {
    /// `X-Consort-Account`.
    pub account: Option<&'a str>,
    /// `X-Consort-Time`.
    pub time: Option<&'a str>,
    /// `X-Consort-Signature`.
    pub signature: Option<&'a str>,
}

/// A request as the server received it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Its `Host` (or HTTP/2 authority), as sent.
    pub host: Option<&'a str>,
    /// `GET`, `POST`...
    pub method: &'a str,
    /// The path with its query string.
    pub path_and_query: &'a str,
    /// The body (empty for a read).
    pub body: &'a [u8],
}

/// The account that signed `request` for chain `chain_id` on a server answering to `hosts`
/// ([`serves`]), or why it is refused.
///
/// # Errors
/// If a header is missing or malformed, the host is not the server's, the time is stale or
/// the signature does not verify.
pub fn verify(
    chain_id: u64,
    hosts: &[String],
    request: Request<'_>,
    headers: ReadHeaders<'_>,
    now_secs: u64,
) -> Result<AccountId, ReadAuthError> {
    let host = request.host.ok_or(ReadAuthError::Missing("host"))?;
    if !serves(hosts, host) {
        return Err(ReadAuthError::WrongHost(host.chars().take(256).collect()));
    }
    let account: AccountId = headers
        .account
        .ok_or(ReadAuthError::Missing("x-consort-account"))?
        .parse()
        .map_err(|_| {
            ReadAuthError::Malformed("x-consort-account is not a hex ed25519 public key")
        })?;
    let time: u64 = headers
        .time
        .ok_or(ReadAuthError::Missing("x-consort-time"))?
        .parse()
        .map_err(|_| ReadAuthError::Malformed("x-consort-time is not unix seconds"))?;
    let signature = headers
        .signature
        .ok_or(ReadAuthError::Missing("x-consort-signature"))?;
    if time.abs_diff(now_secs) > READ_WINDOW_SECS {
        return Err(ReadAuthError::Stale {
            time,
            now: now_secs,
        });
    }
    let signature = hex::decode(signature)
        .ok()
        .and_then(|bytes| {
            ed25519::Signature::decode(commonware_codec::Copying(bytes.as_slice())).ok()
        })
        .ok_or(ReadAuthError::Malformed(
            "x-consort-signature is not a hex ed25519 signature",
        ))?;
    let message = request_message(
        chain_id,
        host,
        request.method,
        request.path_and_query,
        time,
        request.body,
    );
    let verified = account
        .public_key()
        .is_some_and(|key| key.verify(READ_NAMESPACE, &message, &signature));
    if verified {
        Ok(account)
    } else {
        Err(ReadAuthError::BadSignature)
    }
}

/// The host a request to `url` carries (`Host`) when `url` is in the canonical form a URL
/// parser gives (lower case, IP addresses as they print, no default port written out): its
/// host and `:port` unless the port is the scheme's default. A client holding a parsed URL
/// signs its host and port as the parser gives them instead.
pub fn host_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if authority.is_empty() {
        return None;
    }
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        ":443"
    } else {
        ":80"
    };
    Some(
        authority
            .strip_suffix(default_port)
            .unwrap_or(authority)
            .to_ascii_lowercase(),
    )
}

/// A host a server is told it answers to (configuration), as clients send it: lower case,
/// without a default port (`:80`, `:443`).
///
/// # Errors
/// If it is empty or is not a bare `host[:port]` (a scheme, path or space in it).
pub fn public_host(name: &str) -> Result<String, String> {
    let bad = name.is_empty()
        || name.contains("://")
        || name.contains(['/', '?', '#', '@'])
        || name.chars().any(char::is_whitespace);
    if bad {
        return Err(format!(
            "public host {name:?} is not a bare host[:port] as clients send it in Host (e.g. \
             shop.example.com or 10.0.0.5:8080)"
        ));
    }
    let name = name.to_ascii_lowercase();
    Ok(name
        .strip_suffix(":80")
        .or_else(|| name.strip_suffix(":443"))
        .unwrap_or(&name)
        .to_string())
}

/// The headers that sign a request by `key` for chain `chain_id` to `host` ([`host_of`]) at
/// unix second `time`: `[(name, value); 3]`.
pub fn sign(
    key: &ed25519::PrivateKey,
    chain_id: u64,
    host: &str,
    method: &str,
    path_and_query: &str,
    time: u64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    use commonware_codec::Encode as _;
    use commonware_cryptography::Signer as _;
    let message = request_message(chain_id, host, method, path_and_query, time, body);
    let signature = key.sign(READ_NAMESPACE, &message);
    [
        (
            "x-consort-account",
            AccountId::new(key.public_key()).to_string(),
        ),
        ("x-consort-time", time.to_string()),
        ("x-consort-signature", hex::encode(signature.encode())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer as _;

    fn headers<'a>(signed: &'a [(&'static str, String); 3]) -> ReadHeaders<'a> {
        ReadHeaders {
            account: Some(&signed[0].1),
            time: Some(&signed[1].1),
            signature: Some(&signed[2].1),
        }
    }

    const HOST: &str = "127.0.0.1:8080";

    fn hosts() -> Vec<String> {
        default_hosts("127.0.0.1:8080".parse().expect("address"))
    }

    fn check(
        chain: u64,
        host: &str,
        method: &str,
        path: &str,
        body: &[u8],
        signed: &[(&'static str, String); 3],
        now: u64,
    ) -> Result<AccountId, ReadAuthError> {
        let request = Request {
            host: Some(host),
            method,
            path_and_query: path,
            body,
        };
        verify(chain, &hosts(), request, headers(signed), now)
    }

    #[test]
    fn a_signature_opens_only_what_it_signed() {
        let key = ed25519::PrivateKey::from_seed(7);
        let body = &b"{\"a\":1}"[..];
        let signed = sign(&key, 1, HOST, "POST", "/v1/shop/cart", 1_000, body);
        let me = AccountId::new(key.public_key());
        let ok = check(1, HOST, "POST", "/v1/shop/cart", body, &signed, 1_100);
        assert_eq!(ok, Ok(me));
        // The loopback name of the same server, as a client might send it: signed for the
        // address, it does not verify.
        for (chain, host, method, path, body) in [
            (2, HOST, "POST", "/v1/shop/cart", body),
            (1, "localhost:8080", "POST", "/v1/shop/cart", body),
            (1, HOST, "GET", "/v1/shop/cart", body),
            (1, HOST, "POST", "/v1/shop/cart?x", body),
            (1, HOST, "POST", "/v1/shop/cart", &b"{\"a\":2}"[..]),
            (1, HOST, "POST", "/v1/shop/cart", &b""[..]),
        ] {
            assert_eq!(
                check(chain, host, method, path, body, &signed, 1_100),
                Err(ReadAuthError::BadSignature)
            );
        }
        assert!(matches!(
            check(1, HOST, "POST", "/v1/shop/cart", body, &signed, 2_000),
            Err(ReadAuthError::Stale { .. })
        ));
        let missing = ReadHeaders {
            signature: None,
            ..headers(&signed)
        };
        let request = Request {
            host: Some(HOST),
            method: "POST",
            path_and_query: "/v1/shop/cart",
            body: b"",
        };
        assert_eq!(
            verify(1, &hosts(), request, missing, 1_000),
            Err(ReadAuthError::Missing("x-consort-signature"))
        );
        let hostless = Request {
            host: None,
            ..request
        };
        assert_eq!(
            verify(1, &hosts(), hostless, headers(&signed), 1_000),
            Err(ReadAuthError::Missing("host"))
        );
    }

    #[test]
    fn a_request_signed_for_another_server_is_refused_here() {
        // Signed for the server on port 9090 and replayed, host and all, to this one.
        let key = ed25519::PrivateKey::from_seed(7);
        let other = "127.0.0.1:9090";
        let signed = sign(&key, 1, other, "GET", "/v1/shop/orders", 1_000, b"");
        assert_eq!(
            check(1, other, "GET", "/v1/shop/orders", b"", &signed, 1_000),
            Err(ReadAuthError::WrongHost(other.into()))
        );
        // A server that answers to any host (listening on every interface, told no names)
        // still checks the signature over the host the request names.
        let request = Request {
            host: Some(other),
            method: "GET",
            path_and_query: "/v1/shop/orders",
            body: b"",
        };
        assert!(verify(1, &[], request, headers(&signed), 1_000).is_ok());
        let elsewhere = Request {
            host: Some(HOST),
            ..request
        };
        assert_eq!(
            verify(1, &[], elsewhere, headers(&signed), 1_000),
            Err(ReadAuthError::BadSignature)
        );
    }

    #[test]
    fn hosts_are_named_as_clients_send_them() {
        assert_eq!(
            hosts(),
            vec!["127.0.0.1:8080".to_string(), "localhost:8080".to_string()]
        );
        assert!(default_hosts("0.0.0.0:8080".parse().expect("address")).is_empty());
        assert_eq!(
            default_hosts("10.0.0.5:80".parse().expect("address")),
            vec!["10.0.0.5:80".to_string(), "10.0.0.5".to_string()]
        );
        assert_eq!(
            default_hosts("[::1]:81".parse().expect("address")),
            vec!["[::1]:81".to_string(), "localhost:81".to_string()]
        );
        assert!(serves(&hosts(), "LOCALHOST:8080"));
        assert!(!serves(&hosts(), "127.0.0.1:8081"));
        // A URL's host as a request would name it: lower case, the scheme's default port
        // dropped.
        for (url, host) in [
            ("http://127.0.0.1:8080/v1/x", Some("127.0.0.1:8080")),
            ("http://Shop.Example:80", Some("shop.example")),
            ("https://shop.example:443/a?b", Some("shop.example")),
            ("https://shop.example:8443", Some("shop.example:8443")),
            ("http:///x", None),
            ("HTTPS://shop.example:443", Some("shop.example")),
        ] {
            assert_eq!(host_of(url).as_deref(), host, "{url}");
        }
        for (host, public) in [
            ("Shop.Example:443", "shop.example"),
            ("10.0.0.5:8080", "10.0.0.5:8080"),
        ] {
            assert_eq!(public_host(host).as_deref(), Ok(public), "{host}");
        }
        for bad in ["", "https://shop.example", "shop.example/v1", "a b"] {
            assert!(public_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_read_signs_as_a_request_without_a_body() {
        assert_eq!(
            request_message(1, HOST, "GET", "/v1/private/0", 5, b""),
            read_message(1, HOST, "GET", "/v1/private/0", 5)
        );
    }
}
