//! Restricted reads: private records are served only to requests signed by an entitled
//! account (a recipient, the author, the party concerned, or a regulator), and even then only as
//! ciphertext: the node never holds plaintext.
//!
//! A signed request carries three headers:
//!
//! * `X-Consort-Account`: the reader's account id (hex ed25519 public key);
//! * `X-Consort-Time`: unix seconds, within [`READ_WINDOW_SECS`] of the node's clock;
//! * `X-Consort-Signature`: hex ed25519 signature, under the [`READ_NAMESPACE`] namespace, of
//!   [`read_message`] (chain id, host, method, path with query, time). The chain id keeps a
//!   signature made for one chain (a test net, say) from opening records on another; the host
//!   keeps one made for another server from opening them here.
//!
//! Reads are idempotent, so a signature replayed to this node inside the window reveals
//! nothing new; outside it, it is refused.

use crate::shared::{ApiError, Shared, read};
use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode, Uri},
    routing::get,
};
use consort_types::{
    AccountId,
    gov::{Org, Registration, role},
    sealed::{PrivateRecord, SealKey},
    signed_read,
    state_key::{gov as gkey, private as key},
};
use serde_json::{Value, json};
use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

pub use consort_types::signed_read::{READ_NAMESPACE, READ_WINDOW_SECS, read_message};

type AppState = State<Arc<Shared>>;

/// Routes over private records and sealing keys.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/accounts/{id}/seal-key", get(seal_key))
        .route("/v1/private", get(count))
        .route("/v1/private/{id}", get(record))
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unsigned_read", message)
}

/// The host a request names: its HTTP/2 authority, else its `Host` header.
pub fn request_host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    uri.authority().map(|a| a.as_str()).or_else(|| {
        headers
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
    })
}

/// The account that signed this request for chain `chain_id` on a server answering to
/// `hosts` ([`signed_read::serves`]), or why it is refused.
pub fn signed_reader(
    chain_id: u64,
    hosts: &[String],
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    now_secs: u64,
) -> Result<AccountId, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    signed_read::verify(
        chain_id,
        hosts,
        signed_read::Request {
            host: request_host(uri, headers),
            method: method.as_str(),
            path_and_query: path,
            body: &[],
        },
        signed_read::ReadHeaders {
            account: header("x-consort-account"),
            time: header("x-consort-time"),
            signature: header("x-consort-signature"),
        },
        now_secs,
    )
    .map_err(|e| unauthorized(e.to_string()))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Shared {
    /// The account that signed this read for this node's chain and API hosts, checked
    /// against the clock now ([`signed_reader`]), or why it is refused.
    ///
    /// # Errors
    /// 401 as [`signed_reader`].
    pub fn signed_reader(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<AccountId, ApiError> {
        signed_reader(
            self.genesis.chain_id,
            self.api_hosts(),
            method,
            uri,
            headers,
            now_secs(),
        )
    }
}

/// Whether `account` is an active regulator account of a member organisation.
async fn is_regulator(s: &Shared, account: &AccountId) -> Result<bool, ApiError> {
    let Some(registration) =
        read::<Registration>(&s.databases, &gkey::registration(account)).await?
    else {
        return Ok(false);
    };
    if !registration.active || registration.roles & role::REGULATOR == 0 {
        return Ok(false);
    }
    Ok(read::<Org>(&s.databases, &gkey::org(&registration.org))
        .await?
        .is_some_and(|o| o.active))
}

async fn seal_key(State(s): AppState, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id: AccountId = id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "account is not a hex ed25519 public key",
        )
    })?;
    let key: Option<SealKey> = read(&s.databases, &key::seal_key(&id)).await?;
    Ok(Json(json!({
        "account": id,
        "seal_key": key.map(hex::encode),
    })))
}

async fn count(State(s): AppState) -> Result<Json<Value>, ApiError> {
    let next: u64 = read(&s.databases, &key::next()).await?.unwrap_or(0);
    Ok(Json(json!({ "records": next })))
}

async fn record(
    State(s): AppState,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let reader = s.signed_reader(&method, &uri, &headers)?;
    let record: PrivateRecord = read(&s.databases, &key::record(id)).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_record",
            format!("no private record {id}"),
        )
    })?;
    let entitled = reader == record.author
        || reader == record.about
        || record.envelope.recipients().any(|r| *r == reader)
        || is_regulator(&s, &reader).await?;
    if !entitled {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_entitled",
            format!("account {reader} is not a party to record {id}, a recipient, or a regulator"),
        ));
    }
    Ok(Json(json!({
        "id": record.id,
        "author": record.author,
        "about": record.about,
        "label": String::from_utf8_lossy(record.label.as_slice()),
        "height": record.height,
        "envelope": record.envelope,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::{Signer as _, ed25519};

    const CHAIN: u64 = 7;
    const HOST: &str = "127.0.0.1:8545";

    fn hosts() -> Vec<String> {
        signed_read::default_hosts(HOST.parse().expect("address"))
    }

    fn signed(key: &ed25519::PrivateKey, chain_id: u64, path: &str, time: u64) -> (Uri, HeaderMap) {
        use commonware_codec::Encode as _;
        let message = read_message(chain_id, HOST, "GET", path, time);
        let signature = key.sign(READ_NAMESPACE, &message);
        let mut headers = HeaderMap::new();
        let account = AccountId::new(key.public_key()).to_string();
        headers.insert("x-consort-account", account.parse().expect("header"));
        headers.insert("x-consort-time", time.to_string().parse().expect("header"));
        headers.insert(
            "x-consort-signature",
            hex::encode(signature.encode()).parse().expect("header"),
        );
        headers.insert(axum::http::header::HOST, HOST.parse().expect("header"));
        (path.parse().expect("uri"), headers)
    }

    #[test]
    fn signed_reads_name_their_account_and_anything_else_is_refused() {
        let key = ed25519::PrivateKey::from_seed(5);
        let now = 1_800_000_000;
        let (uri, headers) = signed(&key, CHAIN, "/v1/private/3", now);
        assert_eq!(
            signed_reader(CHAIN, &hosts(), &Method::GET, &uri, &headers, now + 10).expect("signed"),
            AccountId::new(key.public_key())
        );
        // Another path, method or account, a stale time, a missing header: refused.
        let other: Uri = "/v1/private/4".parse().expect("uri");
        assert!(signed_reader(CHAIN, &hosts(), &Method::GET, &other, &headers, now).is_err());
        assert!(signed_reader(CHAIN, &hosts(), &Method::POST, &uri, &headers, now).is_err());
        let mut impostor = headers.clone();
        let someone = AccountId::new(ed25519::PrivateKey::from_seed(6).public_key());
        impostor.insert(
            "x-consort-account",
            someone.to_string().parse().expect("header"),
        );
        assert!(signed_reader(CHAIN, &hosts(), &Method::GET, &uri, &impostor, now).is_err());
        assert!(
            signed_reader(
                CHAIN,
                &hosts(),
                &Method::GET,
                &uri,
                &headers,
                now + READ_WINDOW_SECS + 1
            )
            .is_err()
        );
        // Replayed to another server (the host it was signed for, sent to a server that does
        // not answer to it), or with its host changed: refused.
        let elsewhere = vec!["127.0.0.1:9999".to_string()];
        let error = signed_reader(CHAIN, &elsewhere, &Method::GET, &uri, &headers, now)
            .expect_err("another server's");
        assert!(format!("{error:?}").contains("does not answer to host"));
        let mut rehosted = headers.clone();
        rehosted.insert(
            axum::http::header::HOST,
            "localhost:8545".parse().expect("header"),
        );
        assert!(signed_reader(CHAIN, &hosts(), &Method::GET, &uri, &rehosted, now).is_err());
        let mut unsigned = headers.clone();
        unsigned.remove("x-consort-signature");
        let error = signed_reader(CHAIN, &hosts(), &Method::GET, &uri, &unsigned, now)
            .expect_err("unsigned");
        assert!(format!("{error:?}").contains("unsigned_read"));
    }

    #[test]
    fn a_read_signed_for_another_chain_is_refused() {
        let key = ed25519::PrivateKey::from_seed(5);
        let now = 1_800_000_000;
        let (uri, headers) = signed(&key, CHAIN + 1, "/v1/private/3", now);
        let error =
            signed_reader(CHAIN, &hosts(), &Method::GET, &uri, &headers, now).expect_err("refused");
        assert!(format!("{error:?}").contains("chain id"));
        assert!(signed_reader(CHAIN + 1, &hosts(), &Method::GET, &uri, &headers, now).is_ok());
    }

    fn mangle(text: &str, flips: &[(prop::sample::Index, char)]) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        for (index, c) in flips {
            if !chars.is_empty() {
                let at = index.index(chars.len());
                chars[at] = *c;
            }
        }
        chars.into_iter().collect()
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn mangled_or_random_read_signatures_never_panic_and_are_refused(
            account_flips in prop::collection::vec((any::<prop::sample::Index>(), any::<char>()), 0..3),
            time_flips in prop::collection::vec((any::<prop::sample::Index>(), any::<char>()), 0..2),
            signature_flips in prop::collection::vec((any::<prop::sample::Index>(), any::<char>()), 0..3),
            garbage in "[ -~]{0,140}",
            which in 0..4usize,
            skew in any::<u64>(),
        ) {
            let key = ed25519::PrivateKey::from_seed(5);
            let now = 1_800_000_000;
            let (uri, headers) = signed(&key, CHAIN, "/v1/private/3", now);
            let mut mangled = HeaderMap::new();
            for (name, flips) in [
                ("x-consort-account", &account_flips),
                ("x-consort-time", &time_flips),
                ("x-consort-signature", &signature_flips),
            ] {
                let value = headers[name].to_str().expect("ascii").to_string();
                let value = if which < 3 && name.ends_with(["account", "time", "signature"][which]) {
                    garbage.clone()
                } else {
                    mangle(&value, flips)
                };
                // Header values that HTTP itself refuses never reach the reader.
                if let Ok(value) = value.parse() {
                    mangled.insert(name, value);
                }
            }
            mangled.insert(axum::http::header::HOST, HOST.parse().expect("header"));
            // Hex is read in either case: only a change of meaning must be refused.
            let meaning = |map: &HeaderMap, name: &str| {
                map.get(name).and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase)
            };
            let changed = ["x-consort-account", "x-consort-time", "x-consort-signature"]
                .iter()
                .any(|name| meaning(&mangled, name) != meaning(&headers, name));
            let result = signed_reader(CHAIN, &hosts(), &Method::GET, &uri, &mangled, now.wrapping_add(skew % 600));
            if changed {
                prop_assert!(result.is_err(), "a mangled signed read was accepted");
            }
        }
    }
}
