//! A small blocking client of the node API.

use anyhow::{Context as _, bail};
use commonware_codec::Encode;
use commonware_cryptography::ed25519;
use consort_types::{AccountId, Amount, Call, Tx};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A node's API.
pub struct Client {
    base: String,
    http: reqwest::blocking::Client,
    /// The node that says which chain signed requests are for (default: `base`), so that a
    /// shop server never chooses the chain a signature is valid on.
    chain_from: Option<String>,
}

impl Client {
    /// A client of the node at `base` (e.g. `http://127.0.0.1:28000`).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client builds"),
            chain_from: None,
        }
    }

    /// The same client, asking `node` (not `base`) for the chain id its signatures name.
    pub fn chain_from(mut self, node: &str) -> Self {
        self.chain_from = Some(node.trim_end_matches('/').to_string());
        self
    }

    /// The answer's JSON, or its error as `code: message`.
    pub fn check(response: reqwest::blocking::Response) -> anyhow::Result<Value> {
        let status = response.status();
        let body: Value = response.json().context("the node's answer is not JSON")?;
        if !status.is_success() {
            let code = body["error"]["code"].as_str().unwrap_or("unknown");
            let message = body["error"]["message"].as_str().unwrap_or("");
            bail!("{code}: {message}");
        }
        Ok(body)
    }

    /// GET a path.
    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let response = self.http.get(&url).send().with_context(|| {
            format!("cannot reach {url}; is the node running? (consort devnet prints the URLs)")
        })?;
        Self::check(response)
    }

    /// POST JSON to a path.
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .post(&url)
            .timeout(Duration::from_secs(60))
            .json(body)
            .send()
            .with_context(|| format!("cannot reach {url}; is the node running?"))?;
        Self::check(response)
    }

    /// GET a restricted path with a request signed by `key` for the node's chain (see
    /// `consort_types::signed_read`).
    pub fn get_signed(&self, path: &str, key: &ed25519::PrivateKey) -> anyhow::Result<Value> {
        self.signed(reqwest::Method::GET, path, None, key)
    }

    /// A request signed by `key` (its body too), for restricted reads and cart changes.
    pub fn signed(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        key: &ed25519::PrivateKey,
    ) -> anyhow::Result<Value> {
        let response = self.send_signed(method, path, body, key, Some(Duration::from_secs(10)))?;
        Self::check(response)
    }

    /// Send a signed request and return the response as it comes (`timeout` None: a stream).
    pub fn send_signed(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        key: &ed25519::PrivateKey,
        timeout: Option<Duration>,
    ) -> anyhow::Result<reqwest::blocking::Response> {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("the clock is before 1970")?
            .as_secs();
        let chain_id = self.chain_id()?;
        let bytes = body
            .map(serde_json::to_vec)
            .transpose()?
            .unwrap_or_default();
        let url = format!("{}{path}", self.base);
        // The host as the request carries it: the parsed URL's (lower case, addresses as
        // they print, no default port), sent explicitly so that what is signed is what is sent.
        let parsed = reqwest::Url::parse(&url).with_context(|| format!("{url} is not a URL"))?;
        let name = parsed
            .host_str()
            .with_context(|| format!("{url} names no host"))?;
        let host = match parsed.port() {
            Some(port) => format!("{name}:{port}"),
            None => name.to_string(),
        };
        let mut request = self
            .http
            .request(method.clone(), parsed)
            .header(reqwest::header::HOST, &host);
        for (name, value) in consort_types::signed_read::sign(
            key,
            chain_id,
            &host,
            method.as_str(),
            path,
            time,
            &bytes,
        ) {
            request = request.header(name, value);
        }
        if body.is_some() {
            request = request
                .header("content-type", "application/json")
                .body(bytes);
        }
        request = match timeout {
            Some(timeout) => request.timeout(timeout),
            None => request.timeout(Duration::from_secs(24 * 3600)),
        };
        request
            .send()
            .with_context(|| format!("cannot reach {url}; is the node running?"))
    }

    /// The chain's id, as the node says.
    pub fn chain_id(&self) -> anyhow::Result<u64> {
        let status = match &self.chain_from {
            Some(node) => Client::new(node).get("/v1/status")?,
            None => self.get("/v1/status")?,
        };
        status["chain_id"]
            .as_u64()
            .context("status has no chain_id")
    }

    /// Sign and submit a transfer; returns its hash.
    pub fn transfer(
        &self,
        key: &ed25519::PrivateKey,
        to: AccountId,
        amount: u64,
        nonce: Option<u64>,
    ) -> anyhow::Result<String> {
        self.submit(
            key,
            Call::Transfer {
                to,
                amount: Amount::new(amount),
            },
            nonce,
        )
    }

    /// Sign and submit any call; returns its hash. Without `nonce`, the sender's next one
    /// (0 for an account the chain has not seen send yet).
    pub fn submit(
        &self,
        key: &ed25519::PrivateKey,
        call: Call,
        nonce: Option<u64>,
    ) -> anyhow::Result<String> {
        let status = self.get("/v1/status")?;
        let chain_id = status["chain_id"]
            .as_u64()
            .context("status has no chain_id")?;
        let sender = crate::keys::account_of(key);
        let nonce = match nonce {
            Some(n) => n,
            None => {
                // Count this node's pending transactions of the sender, so quick successive
                // transfers do not collide.
                match self.get(&format!("/v1/accounts/{sender}")) {
                    Ok(account) => account["next_nonce"]
                        .as_u64()
                        .or_else(|| account["nonce"].as_u64())
                        .context("account has no nonce")?,
                    Err(error) if error.to_string().starts_with("unknown_account") => 0,
                    Err(error) => return Err(error),
                }
            }
        };
        let tx = Tx {
            chain_id,
            sender,
            nonce,
            call,
        }
        .sign(key);
        let url = format!("{}/v1/txs", self.base);
        let response = self
            .http
            .post(&url)
            .json(&json!({"tx": hex::encode(tx.encode())}))
            .send()
            .with_context(|| format!("cannot reach {url}"))?;
        let body = Self::check(response)?;
        Ok(body["hash"]
            .as_str()
            .context("no hash in answer")?
            .to_string())
    }

    /// Poll a transaction until it is finalized, failed (included, its nonce used, nothing
    /// else changed) or rejected.
    pub fn wait_finalized(&self, hash: &str, timeout: Duration) -> anyhow::Result<Value> {
        let start = Instant::now();
        let mut unknown_since: Option<Instant> = None;
        loop {
            let status = match self.get(&format!("/v1/txs/{hash}")) {
                Ok(status) => status,
                // Between leaving the pool and being indexed as final, a transaction is
                // briefly unknown to the node: ask again.
                Err(error)
                    if error.to_string().starts_with("unknown_tx")
                        && unknown_since.get_or_insert_with(Instant::now).elapsed()
                            < Duration::from_secs(5) =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                Err(error) => return Err(error),
            };
            match status["status"].as_str() {
                Some("finalized") => return Ok(status),
                Some("rejected") => bail!("rejected: {}", status["error"]),
                Some("failed") => bail!(
                    "failed at height {} ({}): the transaction was included and used its \
                     nonce, but changed nothing",
                    status["height"],
                    status["error"]["code"].as_str().unwrap_or("unknown code")
                ),
                _ if start.elapsed() > timeout => bail!("not finalized after {timeout:?}"),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}
