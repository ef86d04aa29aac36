//! Signed read requests: how a reader proves which account asks for restricted data (private
//! records on a node, order views and carts on an indexer), without a session or a password.
//!
//! A signed request carries three headers:
//!
//! * `X-Consort-Account`: the reader's account id (hex ed25519 public key);
//! * `X-Consort-Time`: unix seconds, within [`READ_WINDOW_SECS`] of the server's clock;
//! * `X-Consort-Signature`: hex ed25519 signature, under [`READ_NAMESPACE`], of
//!   [`read_message`] (chain id, method, path with query, time). The chain id keeps a
//!   signature made for one chain (a test net, say) from opening data of another.
//!
//! A request that changes something (a cart) signs its body too: [`request_message`].

use crate::AccountId;
use commonware_codec::DecodeExt as _;
use commonware_cryptography::{Verifier as _, ed25519};

/// Namespace of read-request signatures.
pub const READ_NAMESPACE: &[u8] = b"_CONSORT_READ";

/// How far a signed request's time may be from the server's clock.
pub const READ_WINDOW_SECS: u64 = 300;

/// What a reader signs: `chain_id METHOD path?query time`.
pub fn read_message(chain_id: u64, method: &str, path_and_query: &str, time: u64) -> Vec<u8> {
    format!("{chain_id} {method} {path_and_query} {time}").into_bytes()
}

/// What a request with a body signs: [`read_message`] followed by a space and the hex
/// sha256 of the body (an empty body signs as a read).
pub fn request_message(
    chain_id: u64,
    method: &str,
    path_and_query: &str,
    time: u64,
    body: &[u8],
) -> Vec<u8> {
    let mut message = read_message(chain_id, method, path_and_query, time);
    if !body.is_empty() {
        message.push(b' ');
        message.extend_from_slice(hex::encode(crate::sha256(&[body])).as_bytes());
    }
    message
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
    /// The signature does not verify.
    #[error("the signature does not verify for this chain id, account, method, path and time")]
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

/// The account that signed a request for chain `chain_id` (`body` empty for a read), or why
/// it is refused.
///
/// # Errors
/// If a header is missing or malformed, the time is stale or the signature does not verify.
pub fn verify(
    chain_id: u64,
    method: &str,
    path_and_query: &str,
    headers: ReadHeaders<'_>,
    body: &[u8],
    now_secs: u64,
) -> Result<AccountId, ReadAuthError> {
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
    let message = request_message(chain_id, method, path_and_query, time, body);
    let verified = account
        .public_key()
        .is_some_and(|key| key.verify(READ_NAMESPACE, &message, &signature));
    if verified {
        Ok(account)
    } else {
        Err(ReadAuthError::BadSignature)
    }
}

/// The headers that sign a request by `key` for chain `chain_id` at unix second `time`:
/// `[(name, value); 3]`.
pub fn sign(
    key: &ed25519::PrivateKey,
    chain_id: u64,
    method: &str,
    path_and_query: &str,
    time: u64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    use commonware_codec::Encode as _;
    use commonware_cryptography::Signer as _;
    let message = request_message(chain_id, method, path_and_query, time, body);
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

    #[test]
    fn a_signature_opens_only_what_it_signed() {
        let key = ed25519::PrivateKey::from_seed(7);
        let signed = sign(&key, 1, "POST", "/v1/shop/cart", 1_000, b"{\"a\":1}");
        let me = AccountId::new(key.public_key());
        let ok = verify(
            1,
            "POST",
            "/v1/shop/cart",
            headers(&signed),
            b"{\"a\":1}",
            1_100,
        );
        assert_eq!(ok, Ok(me));
        for (chain, method, path, body, now) in [
            (2, "POST", "/v1/shop/cart", &b"{\"a\":1}"[..], 1_100),
            (1, "GET", "/v1/shop/cart", &b"{\"a\":1}"[..], 1_100),
            (1, "POST", "/v1/shop/cart?x", &b"{\"a\":1}"[..], 1_100),
            (1, "POST", "/v1/shop/cart", &b"{\"a\":2}"[..], 1_100),
            (1, "POST", "/v1/shop/cart", &b""[..], 1_100),
        ] {
            assert_eq!(
                verify(chain, method, path, headers(&signed), body, now),
                Err(ReadAuthError::BadSignature)
            );
        }
        assert!(matches!(
            verify(
                1,
                "POST",
                "/v1/shop/cart",
                headers(&signed),
                b"{\"a\":1}",
                2_000
            ),
            Err(ReadAuthError::Stale { .. })
        ));
        let missing = ReadHeaders {
            signature: None,
            ..headers(&signed)
        };
        assert_eq!(
            verify(1, "POST", "/v1/shop/cart", missing, b"", 1_000),
            Err(ReadAuthError::Missing("x-consort-signature"))
        );
    }

    #[test]
    fn a_read_signs_as_before() {
        // An empty body signs exactly the read message nodes have always checked.
        assert_eq!(
            request_message(1, "GET", "/v1/private/0", 5, b""),
            read_message(1, "GET", "/v1/private/0", 5)
        );
    }
}
