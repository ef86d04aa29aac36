//! An async JSON-RPC client for Litecoin Core and Bitcoin Core, on `reqwest`.
//!
//! Async because the node runs on an async runtime: a slow main-chain node must not block a
//! worker thread. Every response body is read up to a size limit before it is parsed, and what
//! the node returns is still main-chain data to verify (headers with [`crate::verify_header`],
//! proofs with [`crate::verify_tx_out_proof`]), not something to trust.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bitcoin::{Amount, BlockHash, Txid};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Default limit on one response body: a raw 4 MB block is 8 MB of hex.
pub const RESPONSE_SIZE_MAX_BYTES_DEFAULT: usize = 16 * 1024 * 1024;
/// Default time limit on one request, connection included.
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Default number of idle keep-alive connections kept for reuse.
pub const IDLE_CONNECTIONS_MAX_DEFAULT: usize = 4;
/// How long an idle connection is kept: below Core's `-rpcservertimeout` default of 30 s, so
/// the client never reuses a connection the node has already closed.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(20);

/// How to authenticate to the node. `Debug` shows no password.
#[derive(Clone, PartialEq, Eq)]
pub enum RpcAuth {
    /// `-rpcuser` / `-rpcpassword`.
    UserPassword {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// The `.cookie` file the node writes into its datadir when no password is configured.
    /// Read on every request, so a restarted node's new cookie is picked up.
    CookieFile(PathBuf),
}

impl std::fmt::Debug for RpcAuth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcAuth::UserPassword { user, .. } => formatter
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
            RpcAuth::CookieFile(path) => formatter.debug_tuple("CookieFile").field(path).finish(),
        }
    }
}

/// Where and how to reach the node.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// Base URL, e.g. `http://127.0.0.1:19443`.
    pub url: String,
    /// Credentials.
    pub auth: RpcAuth,
    /// Time limit on one request.
    pub timeout: Duration,
    /// Largest response body accepted.
    pub response_size_max_bytes: usize,
    /// Idle keep-alive connections kept for reuse. Core waits for open connections before it
    /// exits (up to `-rpcservertimeout`), so clients of short-lived test nodes use 0.
    pub idle_connections_max: usize,
}

impl RpcConfig {
    /// A config with the default time and size limits.
    pub fn new(url: impl Into<String>, auth: RpcAuth) -> Self {
        Self {
            url: url.into(),
            auth,
            timeout: REQUEST_TIMEOUT_DEFAULT,
            response_size_max_bytes: RESPONSE_SIZE_MAX_BYTES_DEFAULT,
            idle_connections_max: IDLE_CONNECTIONS_MAX_DEFAULT,
        }
    }
}

/// Why an RPC call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The URL does not parse or cannot carry a wallet path.
    #[error("invalid rpc url {url}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The cookie file cannot be read or has no `user:password` line.
    #[error("cannot use cookie file {path}: {reason}; is the node running with this datadir?")]
    Cookie {
        /// The cookie file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// No HTTP exchange happened (connection refused, timeout, …).
    #[error("rpc {method} failed to reach the node: {source}")]
    Transport {
        /// The RPC method.
        method: String,
        /// The HTTP client's error.
        source: reqwest::Error,
    },
    /// The node refused the credentials.
    #[error("rpc {method} unauthorized: check rpcuser/rpcpassword or the cookie file")]
    Unauthorized {
        /// The RPC method.
        method: String,
    },
    /// The body exceeded [`RpcConfig::response_size_max_bytes`].
    #[error("rpc {method} response exceeds {max} bytes")]
    ResponseTooLarge {
        /// The RPC method.
        method: String,
        /// The limit.
        max: usize,
    },
    /// The node answered with a JSON-RPC error.
    #[error("rpc {method} returned error {code}: {message}")]
    Rpc {
        /// The RPC method.
        method: String,
        /// The node's error code (e.g. -8 invalid parameter, -5 not found, -28 warming up).
        code: i64,
        /// The node's message.
        message: String,
    },
    /// The node answered with something that is not the expected JSON.
    #[error("rpc {method} answered HTTP {status} with an unexpected body: {reason}")]
    Decode {
        /// The RPC method.
        method: String,
        /// The HTTP status.
        status: u16,
        /// What did not parse.
        reason: String,
    },
}

impl RpcError {
    /// The node's JSON-RPC error code, if the node answered with one.
    pub fn rpc_code(&self) -> Option<i64> {
        match self {
            RpcError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Part of `getblockchaininfo`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct BlockchainInfo {
    /// `main`, `test` or `regtest`.
    pub chain: String,
    /// Height of the active tip.
    pub blocks: u32,
    /// Height of the best known header.
    pub headers: u32,
    /// Hash of the active tip.
    #[serde(rename = "bestblockhash")]
    pub best_block_hash: BlockHash,
    /// Cumulative work of the active chain, hex.
    pub chainwork: String,
    /// True while the node is still syncing.
    #[serde(rename = "initialblockdownload")]
    pub initial_block_download: bool,
}

/// Part of `getblockheader <hash> true`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct BlockHeaderInfo {
    /// Block hash.
    pub hash: BlockHash,
    /// Height.
    pub height: u32,
    /// Confirmations; -1 if the block is not on the active chain.
    pub confirmations: i64,
    /// Cumulative work up to this block, hex.
    pub chainwork: String,
    /// Parent's hash (absent for genesis).
    #[serde(rename = "previousblockhash")]
    pub previous_block_hash: Option<BlockHash>,
}

/// `createwallet`'s answer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CreatedWallet {
    /// The wallet's name.
    pub name: String,
    /// A warning, empty if none.
    #[serde(default)]
    pub warning: String,
}

/// One entry of `testmempoolaccept`'s answer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct MempoolAcceptance {
    /// The transaction's id.
    pub txid: Txid,
    /// True if the node would accept it.
    pub allowed: bool,
    /// Why not, e.g. `non-BIP68-final` or `mandatory-script-verify-flag-failed (…)`.
    #[serde(rename = "reject-reason", default)]
    pub reject_reason: Option<String>,
    /// Its virtual size, when allowed.
    #[serde(default)]
    pub vsize: Option<u64>,
}

/// Part of `gettxout`'s answer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct TxOutInfo {
    /// Confirmations; 0 while in the mempool.
    pub confirmations: u32,
    /// The output's value.
    #[serde(with = "bitcoin::amount::serde::as_btc")]
    pub value: Amount,
    /// The output's script.
    #[serde(rename = "scriptPubKey")]
    pub script_pubkey: ScriptPubKeyInfo,
}

/// The script part of `gettxout`'s answer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ScriptPubKeyInfo {
    /// The script, hex.
    pub hex: String,
}

/// The shape of every JSON-RPC 1.0 answer from Core.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error: Option<EnvelopeError>,
}

#[derive(Deserialize)]
struct EnvelopeError {
    code: i64,
    message: String,
}

/// A JSON-RPC client; cheap to clone (clones share the connection pool).
#[derive(Clone, Debug)]
pub struct RpcClient {
    http: reqwest::Client,
    url: Url,
    auth: Arc<RpcAuth>,
    response_size_max_bytes: usize,
    keep_alive: bool,
    next_id: Arc<AtomicU64>,
}

impl RpcClient {
    /// A client for the node at `config.url`. Connects lazily, on the first call.
    ///
    /// # Errors
    /// [`RpcError::Url`] for a bad URL, [`RpcError::Transport`] if the HTTP client cannot be
    /// built.
    pub fn new(config: RpcConfig) -> Result<Self, RpcError> {
        let url = Url::parse(&config.url).map_err(|error| RpcError::Url {
            url: config.url.clone(),
            reason: error.to_string(),
        })?;
        // The node is local or on a private network; a system HTTP proxy would only be in the way.
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .pool_max_idle_per_host(config.idle_connections_max)
            .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|source| RpcError::Transport {
                method: "connect".into(),
                source,
            })?;
        Ok(Self {
            http,
            url,
            auth: Arc::new(config.auth),
            response_size_max_bytes: config.response_size_max_bytes,
            keep_alive: config.idle_connections_max > 0,
            next_id: Arc::new(AtomicU64::new(1)),
        })
    }

    /// A client for the wallet `name` (`/wallet/<name>`), needed once several are loaded.
    ///
    /// # Errors
    /// [`RpcError::Url`] if the base URL cannot carry a path.
    pub fn for_wallet(&self, name: &str) -> Result<Self, RpcError> {
        let mut url = self.url.clone();
        url.path_segments_mut()
            .map_err(|()| RpcError::Url {
                url: self.url.to_string(),
                reason: "cannot be a base".into(),
            })?
            .clear()
            .push("wallet")
            .push(name);
        Ok(Self {
            url,
            ..self.clone()
        })
    }

    /// Calls `method` with `params` and decodes the result as `T`.
    ///
    /// # Errors
    /// Any [`RpcError`]; an error answer from the node is [`RpcError::Rpc`] with its code.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<T, RpcError> {
        let (user, password) = self.credentials().await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = json!({ "jsonrpc": "1.0", "id": id, "method": method, "params": params });
        let transport = |source| RpcError::Transport {
            method: method.to_owned(),
            source,
        };
        let mut builder = self
            .http
            .post(self.url.clone())
            .basic_auth(user, Some(password));
        if !self.keep_alive {
            // The node closes the connection itself, even if this client's runtime is blocked
            // and cannot drop its end: an open connection would delay the node's shutdown.
            builder = builder.header(reqwest::header::CONNECTION, "close");
        }
        let mut response = builder.json(&request).send().await.map_err(transport)?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(RpcError::Unauthorized {
                method: method.to_owned(),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > self.response_size_max_bytes {
                return Err(RpcError::ResponseTooLarge {
                    method: method.to_owned(),
                    max: self.response_size_max_bytes,
                });
            }
            body.extend_from_slice(&chunk);
        }
        decode_answer(method, status, &body)
    }

    async fn credentials(&self) -> Result<(String, String), RpcError> {
        match self.auth.as_ref() {
            RpcAuth::UserPassword { user, password } => Ok((user.clone(), password.clone())),
            RpcAuth::CookieFile(path) => {
                let cookie_error = |reason: String| RpcError::Cookie {
                    path: path.clone(),
                    reason,
                };
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|error| cookie_error(error.to_string()))?;
                let (user, password) = text
                    .trim_end()
                    .split_once(':')
                    .ok_or_else(|| cookie_error("no ':' between user and password".into()))?;
                Ok((user.to_owned(), password.to_owned()))
            }
        }
    }

    /// `getblockchaininfo`.
    ///
    /// # Errors
    /// Any [`RpcError`].
    pub async fn get_blockchain_info(&self) -> Result<BlockchainInfo, RpcError> {
        self.call("getblockchaininfo", vec![]).await
    }

    /// `getblockcount`: height of the active tip.
    ///
    /// # Errors
    /// Any [`RpcError`].
    pub async fn get_block_count(&self) -> Result<u32, RpcError> {
        self.call("getblockcount", vec![]).await
    }

    /// `getblockhash <height>` on the active chain.
    ///
    /// # Errors
    /// Any [`RpcError`]; code -8 for a height above the tip.
    pub async fn get_block_hash(&self, height: u32) -> Result<BlockHash, RpcError> {
        self.call("getblockhash", vec![json!(height)]).await
    }

    /// `getbestblockhash`: hash of the active tip.
    ///
    /// # Errors
    /// Any [`RpcError`].
    pub async fn get_best_block_hash(&self) -> Result<BlockHash, RpcError> {
        self.call("getbestblockhash", vec![]).await
    }

    /// `getblockheader <hash> false`: the 80 serialized header bytes.
    ///
    /// # Errors
    /// Any [`RpcError`]; code -5 for an unknown block.
    pub async fn get_block_header_raw(&self, hash: &BlockHash) -> Result<Vec<u8>, RpcError> {
        let hex_text: String = self
            .call("getblockheader", vec![json!(hash), json!(false)])
            .await?;
        decode_hex("getblockheader", &hex_text)
    }

    /// `getblockheader <hash> true`: height, confirmations and chain work of a header.
    ///
    /// # Errors
    /// Any [`RpcError`]; code -5 for an unknown block.
    pub async fn get_block_header_info(
        &self,
        hash: &BlockHash,
    ) -> Result<BlockHeaderInfo, RpcError> {
        self.call("getblockheader", vec![json!(hash), json!(true)])
            .await
    }

    /// `getrawtransaction <txid> false [blockhash]`: the serialized transaction. Without a
    /// block hash the node needs `-txindex` or the transaction in its mempool.
    ///
    /// # Errors
    /// Any [`RpcError`]; code -5 for an unknown transaction.
    pub async fn get_raw_transaction(
        &self,
        txid: &Txid,
        block_hash: Option<&BlockHash>,
    ) -> Result<Vec<u8>, RpcError> {
        let mut params = vec![json!(txid), json!(false)];
        params.extend(block_hash.map(|hash| json!(hash)));
        let hex_text: String = self.call("getrawtransaction", params).await?;
        decode_hex("getrawtransaction", &hex_text)
    }

    /// `gettxoutproof [txids] [blockhash]`: a header and partial merkle tree proving `txids`.
    ///
    /// # Errors
    /// Any [`RpcError`].
    pub async fn get_tx_out_proof(
        &self,
        txids: &[Txid],
        block_hash: Option<&BlockHash>,
    ) -> Result<Vec<u8>, RpcError> {
        let mut params = vec![json!(txids)];
        params.extend(block_hash.map(|hash| json!(hash)));
        let hex_text: String = self.call("gettxoutproof", params).await?;
        decode_hex("gettxoutproof", &hex_text)
    }

    /// `sendrawtransaction <hex>`: submits a signed transaction, returns its txid.
    ///
    /// # Errors
    /// Any [`RpcError`]; code -26 for a rejected transaction, -27 if already in the chain.
    pub async fn send_raw_transaction(&self, transaction: &[u8]) -> Result<Txid, RpcError> {
        self.call("sendrawtransaction", vec![json!(hex::encode(transaction))])
            .await
    }

    /// `generatetoaddress <blocks> <address>`: mines blocks (regtest), returns their hashes.
    ///
    /// # Errors
    /// Any [`RpcError`].
    pub async fn generate_to_address(
        &self,
        blocks: u32,
        address: &str,
    ) -> Result<Vec<BlockHash>, RpcError> {
        self.call("generatetoaddress", vec![json!(blocks), json!(address)])
            .await
    }

    /// `getnewaddress <label> [type]`, type one of `legacy`, `p2sh-segwit`, `bech32` (and
    /// `mweb` on Litecoin). Addresses stay strings: rust-bitcoin does not know Litecoin's.
    ///
    /// # Errors
    /// Any [`RpcError`]; code -18 without a loaded wallet.
    pub async fn get_new_address(
        &self,
        label: &str,
        address_type: Option<&str>,
    ) -> Result<String, RpcError> {
        let mut params = vec![json!(label)];
        params.extend(address_type.map(|kind| json!(kind)));
        self.call("getnewaddress", params).await
    }

    /// `sendtoaddress <address> <amount>`: pays from the wallet, returns the txid.
    ///
    /// # Errors
    /// Any [`RpcError`]; code -6 for insufficient funds.
    pub async fn send_to_address(&self, address: &str, amount: Amount) -> Result<Txid, RpcError> {
        self.call(
            "sendtoaddress",
            vec![json!(address), json!(amount_to_rpc(amount))],
        )
        .await
    }

    /// `createwallet <name>`: Litecoin Core 0.21 creates no wallet by default.
    ///
    /// # Errors
    /// Any [`RpcError`]; code -4 if the wallet exists.
    pub async fn create_wallet(&self, name: &str) -> Result<CreatedWallet, RpcError> {
        self.call("createwallet", vec![json!(name)]).await
    }

    /// `invalidateblock <hash>`: marks a block and its descendants invalid (simulates a reorg).
    ///
    /// # Errors
    /// Any [`RpcError`].
    pub async fn invalidate_block(&self, hash: &BlockHash) -> Result<(), RpcError> {
        self.call("invalidateblock", vec![json!(hash)]).await
    }

    /// `getblock <hash> 0`: the serialized block. After Litecoin's MWEB activation only a node
    /// run with `-rpcserialversion=0` returns bytes rust-bitcoin decodes (no witnesses, no
    /// MWEB extension block).
    ///
    /// # Errors
    /// Any [`RpcError`]; code -5 for an unknown block.
    pub async fn get_block_raw(&self, hash: &BlockHash) -> Result<Vec<u8>, RpcError> {
        let hex_text: String = self.call("getblock", vec![json!(hash), json!(0)]).await?;
        decode_hex("getblock", &hex_text)
    }

    /// `testmempoolaccept [<hex>]`: whether the node would accept a signed transaction now,
    /// without relaying it.
    ///
    /// # Errors
    /// Any [`RpcError`]; a transaction that does not decode is code -22.
    pub async fn test_mempool_accept(
        &self,
        transaction: &[u8],
    ) -> Result<MempoolAcceptance, RpcError> {
        let results: Vec<MempoolAcceptance> = self
            .call("testmempoolaccept", vec![json!([hex::encode(transaction)])])
            .await?;
        results.into_iter().next().ok_or_else(|| RpcError::Decode {
            method: "testmempoolaccept".into(),
            status: StatusCode::OK.as_u16(),
            reason: "empty result array".into(),
        })
    }

    /// `gettxout <txid> <vout> <include_mempool>`: an unspent output, or `None` if it is spent
    /// or never existed.
    ///
    /// # Errors
    /// Any [`RpcError`].
    pub async fn get_tx_out(
        &self,
        txid: &Txid,
        vout: u32,
        include_mempool: bool,
    ) -> Result<Option<TxOutInfo>, RpcError> {
        self.call(
            "gettxout",
            vec![json!(txid), json!(vout), json!(include_mempool)],
        )
        .await
    }
}

/// Reads Core's answer: the JSON-RPC error if there is one (Core sends those with HTTP 500 or
/// 404), else the result decoded as `T`.
fn decode_answer<T: DeserializeOwned>(
    method: &str,
    status: StatusCode,
    body: &[u8],
) -> Result<T, RpcError> {
    let decode_error = |reason: String| RpcError::Decode {
        method: method.to_owned(),
        status: status.as_u16(),
        reason,
    };
    let envelope: Envelope = serde_json::from_slice(body).map_err(|error| {
        let excerpt = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        decode_error(format!("{error}; body starts {excerpt:?}"))
    })?;
    if let Some(EnvelopeError { code, message }) = envelope.error {
        return Err(RpcError::Rpc {
            method: method.to_owned(),
            code,
            message,
        });
    }
    serde_json::from_value(envelope.result).map_err(|error| decode_error(error.to_string()))
}

fn decode_hex(method: &str, text: &str) -> Result<Vec<u8>, RpcError> {
    hex::decode(text).map_err(|error| RpcError::Decode {
        method: method.to_owned(),
        status: StatusCode::OK.as_u16(),
        reason: format!("not hex: {error}"),
    })
}

/// An amount as Core parses it without floating point: a decimal string with 8 places.
fn amount_to_rpc(amount: Amount) -> String {
    let sats = amount.to_sat();
    format!("{}.{:08}", sats / 100_000_000, sats % 100_000_000)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use bitcoin::hashes::Hash;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    use super::*;

    /// A one-shot HTTP server on a free loopback port: answers one request with `status` and
    /// `body`, and hands back the request it read.
    async fn serve_once(status: &'static str, body: String) -> (String, JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let request = read_request(&mut socket).await;
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(response.as_bytes()).await.unwrap();
            socket.shutdown().await.unwrap();
            request
        });
        (url, handle)
    }

    async fn read_request(socket: &mut tokio::net::TcpStream) -> String {
        let mut buffer = Vec::new();
        let mut chunk = [0_u8; 4096];
        loop {
            let read = socket.read(&mut chunk).await.unwrap();
            buffer.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&buffer).into_owned();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let length = text[..head_end]
                    .lines()
                    .find_map(|line| {
                        line.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if buffer.len() >= head_end + 4 + length {
                    return text;
                }
            }
            assert!(read > 0, "connection closed mid-request");
        }
    }

    fn client(url: &str, auth: RpcAuth) -> RpcClient {
        RpcClient::new(RpcConfig::new(url, auth)).unwrap()
    }

    fn user_password() -> RpcAuth {
        RpcAuth::UserPassword {
            user: "user".into(),
            password: "pass".into(),
        }
    }

    #[tokio::test]
    async fn a_call_posts_json_rpc_with_basic_auth_and_decodes_the_result() {
        let (url, server) =
            serve_once("200 OK", r#"{"result":101,"error":null,"id":1}"#.into()).await;
        let count = client(&url, user_password())
            .get_block_count()
            .await
            .unwrap();
        assert_eq!(count, 101);
        let request = server.await.unwrap();
        assert!(request.starts_with("POST / HTTP/1.1"));
        assert!(
            request
                .to_ascii_lowercase()
                .contains("authorization: basic dxnlcjpwyxnz")
        );
        assert!(request.contains(r#""method":"getblockcount""#));
        assert!(request.contains(r#""params":[]"#));
    }

    #[tokio::test]
    async fn a_client_without_idle_connections_asks_the_node_to_close() {
        let (url, server) =
            serve_once("200 OK", r#"{"result":1,"error":null,"id":1}"#.into()).await;
        let mut config = RpcConfig::new(url, user_password());
        config.idle_connections_max = 0;
        RpcClient::new(config)
            .unwrap()
            .get_block_count()
            .await
            .unwrap();
        let request = server.await.unwrap().to_ascii_lowercase();
        assert!(request.contains("connection: close"), "{request}");
    }

    #[tokio::test]
    async fn a_cookie_file_supplies_the_credentials() {
        let datadir = tempfile::tempdir().unwrap();
        let cookie = datadir.path().join(".cookie");
        std::fs::write(&cookie, "__cookie__:secret").unwrap();
        let (url, server) =
            serve_once("200 OK", r#"{"result":null,"error":null,"id":1}"#.into()).await;
        let hash = BlockHash::from_byte_array([7; 32]);
        client(&url, RpcAuth::CookieFile(cookie))
            .invalidate_block(&hash)
            .await
            .unwrap();
        let request = server.await.unwrap();
        assert!(request.contains("X19jb29raWVfXzpzZWNyZXQ="));
        assert!(request.contains(&format!(r#""params":["{hash}"]"#)));
    }

    #[tokio::test]
    async fn a_missing_cookie_file_says_which_file() {
        let auth = RpcAuth::CookieFile(PathBuf::from("/nonexistent/regtest/.cookie"));
        let error = client("http://127.0.0.1:1", auth)
            .get_block_count()
            .await
            .unwrap_err();
        assert!(matches!(error, RpcError::Cookie { .. }), "{error}");
        assert!(error.to_string().contains("/nonexistent/regtest/.cookie"));
    }

    #[tokio::test]
    async fn a_node_error_keeps_its_code_and_message() {
        let body =
            r#"{"result":null,"error":{"code":-8,"message":"Block height out of range"},"id":1}"#;
        let (url, _server) = serve_once("500 Internal Server Error", body.into()).await;
        let error = client(&url, user_password())
            .get_block_hash(9_999)
            .await
            .unwrap_err();
        assert_eq!(error.rpc_code(), Some(-8));
        assert_eq!(
            error.to_string(),
            "rpc getblockhash returned error -8: Block height out of range"
        );
    }

    #[tokio::test]
    async fn wrong_credentials_are_reported_as_unauthorized() {
        let (url, _server) = serve_once("401 Unauthorized", String::new()).await;
        let error = client(&url, user_password())
            .get_block_count()
            .await
            .unwrap_err();
        assert!(matches!(error, RpcError::Unauthorized { .. }), "{error}");
    }

    #[tokio::test]
    async fn a_response_above_the_size_limit_is_refused_unparsed() {
        let body = format!(
            r#"{{"result":"{}","error":null,"id":1}}"#,
            "ab".repeat(4096)
        );
        let (url, _server) = serve_once("200 OK", body).await;
        let mut config = RpcConfig::new(url, user_password());
        config.response_size_max_bytes = 1024;
        let error = RpcClient::new(config)
            .unwrap()
            .get_best_block_hash()
            .await
            .unwrap_err();
        assert!(
            matches!(error, RpcError::ResponseTooLarge { max: 1024, .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_non_json_answer_is_a_decode_error_with_the_status() {
        let (url, _server) = serve_once("503 Service Unavailable", "busy".into()).await;
        let error = client(&url, user_password())
            .get_block_count()
            .await
            .unwrap_err();
        assert!(
            matches!(error, RpcError::Decode { status: 503, .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_connection_refused_is_a_transport_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let error = client(&url, user_password())
            .get_block_count()
            .await
            .unwrap_err();
        assert!(matches!(error, RpcError::Transport { .. }), "{error}");
    }

    #[tokio::test]
    async fn a_mempool_refusal_keeps_its_reason() {
        let body = r#"{"result":[{"txid":"0101010101010101010101010101010101010101010101010101010101010101","allowed":false,"reject-reason":"non-BIP68-final"}],"error":null,"id":1}"#;
        let (url, server) = serve_once("200 OK", body.into()).await;
        let answer = client(&url, user_password())
            .test_mempool_accept(&[0xab, 0xcd])
            .await
            .unwrap();
        assert!(!answer.allowed);
        assert_eq!(answer.reject_reason.as_deref(), Some("non-BIP68-final"));
        assert!(server.await.unwrap().contains(r#""params":[["abcd"]]"#));
    }

    #[tokio::test]
    async fn a_spent_output_is_none_and_an_unspent_one_has_an_exact_value() {
        let (url, _server) =
            serve_once("200 OK", r#"{"result":null,"error":null,"id":1}"#.into()).await;
        let txid = Txid::from_byte_array([1; 32]);
        let client_for = |url: &str| client(url, user_password());
        assert_eq!(
            client_for(&url).get_tx_out(&txid, 0, true).await.unwrap(),
            None
        );
        let body = r#"{"result":{"bestblock":"00","confirmations":1,"value":1.49990001,"scriptPubKey":{"hex":"0014ab","type":"witness_v0_keyhash"},"coinbase":false},"error":null,"id":1}"#;
        let (url, _server) = serve_once("200 OK", body.into()).await;
        let output = client_for(&url)
            .get_tx_out(&txid, 0, true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(output.value, Amount::from_sat(149_990_001));
        assert_eq!(output.script_pubkey.hex, "0014ab");
    }

    #[test]
    fn wallet_clients_address_the_wallet_path() {
        let base = client("http://127.0.0.1:19443", user_password());
        assert_eq!(
            base.for_wallet("w 1").unwrap().url.as_str(),
            "http://127.0.0.1:19443/wallet/w%201"
        );
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let shown = format!("{:?}", client("http://127.0.0.1:1", user_password()));
        assert!(
            shown.contains("user") && !shown.contains("pass\""),
            "{shown}"
        );
    }

    #[test]
    fn amounts_are_sent_as_exact_decimal_strings() {
        assert_eq!(amount_to_rpc(Amount::from_sat(150_000_000)), "1.50000000");
        assert_eq!(amount_to_rpc(Amount::from_sat(1)), "0.00000001");
        assert_eq!(
            amount_to_rpc(Amount::from_sat(2_100_000_000_000_000)),
            "21000000.00000000"
        );
    }
}
