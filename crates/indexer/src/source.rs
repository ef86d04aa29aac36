//! Where finalized blocks and their shop changes come from: a node's HTTP API.

use commonware_codec::DecodeExt as _;
use consort_types::{Block, changes::Changes};
use std::time::Duration;

/// Why a block could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The node did not answer (down, or the network failed): try again later.
    #[error("node {url}: {error}")]
    Unreachable {
        /// What was asked.
        url: String,
        /// What failed.
        error: String,
    },
    /// The node answered something that is not what was asked for.
    #[error("node {url}: {what}")]
    Bad {
        /// What was asked.
        url: String,
        /// What was wrong.
        what: String,
    },
    /// The node has the block but did not record its shop changes (it joined by state sync,
    /// or ran an older build when it executed the block).
    #[error(
        "node {url} did not record the shop changes of block {height}: {message}. Follow a node \
         that executed the chain from genesis"
    )]
    NotRecorded {
        /// The node.
        url: String,
        /// The block.
        height: u64,
        /// What the node said.
        message: String,
    },
}

impl SourceError {
    /// Whether trying again later may succeed.
    pub fn transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }
}

/// Finalized blocks by height.
pub trait Source {
    /// The height of the latest finalized block.
    ///
    /// # Errors
    /// If the source cannot answer.
    fn tip(&self) -> Result<u64, SourceError>;

    /// Finalized block `height` and the shop records it changed, or `None` if it is not final
    /// yet.
    ///
    /// # Errors
    /// If the source cannot answer, or has the block without its changes.
    fn block(&self, height: u64) -> Result<Option<(Block, Changes)>, SourceError>;
}

/// A node's HTTP API.
pub struct NodeSource {
    base: String,
    client: reqwest::blocking::Client,
}

impl NodeSource {
    /// The node whose API is at `base` (e.g. `http://127.0.0.1:8080`).
    ///
    /// # Errors
    /// If the HTTP client cannot be built.
    pub fn new(base: &str) -> Result<Self, SourceError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| SourceError::Unreachable {
                url: base.to_string(),
                error: e.to_string(),
            })?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            client,
        })
    }

    fn fetch(&self, path: &str) -> Result<(reqwest::StatusCode, bytes::Bytes), SourceError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |e: reqwest::Error| SourceError::Unreachable {
            url: url.clone(),
            error: e.to_string(),
        };
        let response = self.client.get(&url).send().map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().map_err(unreachable)?;
        if status.is_server_error() {
            return Err(SourceError::Unreachable {
                url,
                error: format!("{status}: {}", String::from_utf8_lossy(&body)),
            });
        }
        Ok((status, body))
    }

    fn bad(&self, path: &str, what: impl Into<String>) -> SourceError {
        SourceError::Bad {
            url: format!("{}{path}", self.base),
            what: what.into(),
        }
    }

    fn json(&self, path: &str, body: &[u8]) -> Result<serde_json::Value, SourceError> {
        serde_json::from_slice(body).map_err(|e| self.bad(path, format!("not JSON: {e}")))
    }
}

/// An active account of an active member organisation, as the chain says now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its organisation's id.
    pub org: String,
    /// Its [`consort_types::gov::role`] bits.
    pub roles: u16,
}

/// Who an account's key is on the chain now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// Its organisation and roles, if it is an active account of an active organisation.
    pub member: Option<Member>,
    /// The key it was rotated to, if it was (it then speaks for no one).
    pub rotated_to: Option<consort_types::AccountId>,
    /// The keys its account held before, newest first: their orders are its own.
    pub previous: Vec<consort_types::AccountId>,
}

/// Who is who on the chain, asked of a node's API from async code (the shop API's handlers):
/// the chain's id and accounts' registrations.
pub struct Directory {
    base: String,
    client: reqwest::Client,
}

impl Directory {
    /// The node whose API is at `base`.
    ///
    /// # Errors
    /// If the HTTP client cannot be built.
    pub fn new(base: &str) -> Result<Self, SourceError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SourceError::Unreachable {
                url: base.to_string(),
                error: e.to_string(),
            })?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            client,
        })
    }

    /// GET `path`: `None` on 404, the JSON otherwise.
    async fn fetch(&self, path: &str) -> Result<Option<serde_json::Value>, SourceError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |e: reqwest::Error| SourceError::Unreachable {
            url: url.clone(),
            error: e.to_string(),
        };
        let response = self.client.get(&url).send().await.map_err(unreachable)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(SourceError::Unreachable {
                url,
                error: format!("{status}: {}", String::from_utf8_lossy(&body)),
            });
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| SourceError::Bad {
                url,
                what: format!("not JSON: {e}"),
            })
    }

    fn bad(&self, path: &str, what: &str) -> SourceError {
        SourceError::Bad {
            url: format!("{}{path}", self.base),
            what: what.to_string(),
        }
    }

    /// The bank organisation that issues e-money `asset`, or `None` if it is not e-money.
    ///
    /// # Errors
    /// If the node does not answer, or answers something else.
    pub async fn issuer(&self, asset: &str) -> Result<Option<String>, SourceError> {
        let path = format!("/v1/emoney/{asset}");
        let Some(answer) = self.fetch(&path).await? else {
            return Ok(None);
        };
        answer["issuer"]
            .as_str()
            .map(|issuer| Some(issuer.to_string()))
            .ok_or_else(|| self.bad(&path, "e-money without its issuer"))
    }

    /// The chain's id.
    ///
    /// # Errors
    /// If the node does not answer, or answers without one.
    pub async fn chain_id(&self) -> Result<u64, SourceError> {
        let path = "/v1/status";
        self.fetch(path)
            .await?
            .and_then(|v| v["chain_id"].as_u64())
            .ok_or_else(|| self.bad(path, "no chain_id"))
    }

    /// Who `account` is on the chain: its organisation and roles, if it is an active account
    /// of an active organisation (`member` is `None` for anyone else: customers of an open
    /// chain, revoked accounts, removed organisations), the key it was rotated to, and the
    /// keys its account held before.
    ///
    /// # Errors
    /// If the node does not answer, or answers something else.
    pub async fn identity(
        &self,
        account: &consort_types::AccountId,
    ) -> Result<Identity, SourceError> {
        let path = format!("/v1/accounts/{account}/registration");
        let Some(answer) = self.fetch(&path).await? else {
            return Ok(Identity::default());
        };
        let key = |value: &serde_json::Value| -> Result<consort_types::AccountId, SourceError> {
            value
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| self.bad(&path, &format!("{value} is not an account key")))
        };
        let rotated_to = match &answer["rotated_to"] {
            serde_json::Value::Null => None,
            value => Some(key(value)?),
        };
        let previous = match answer["previous_keys"].as_array() {
            Some(keys) => keys.iter().map(key).collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let member = self.member_from(&path, &answer["registration"]).await?;
        Ok(Identity {
            member,
            rotated_to,
            previous,
        })
    }

    /// The member a registration (as the node's registration route shows it) makes, if its
    /// account and organisation are active.
    async fn member_from(
        &self,
        path: &str,
        registration: &serde_json::Value,
    ) -> Result<Option<Member>, SourceError> {
        if registration.is_null() || registration["active"] != serde_json::Value::Bool(true) {
            return Ok(None);
        }
        let (Some(org), Some(roles)) = (
            registration["org"].as_str(),
            registration["roles"]
                .as_u64()
                .and_then(|r| u16::try_from(r).ok()),
        ) else {
            return Err(self.bad(path, "a registration without org and roles"));
        };
        let org_path = format!("/v1/gov/orgs/{org}");
        let active = self
            .fetch(&org_path)
            .await?
            .is_some_and(|v| v["org"]["active"] == serde_json::Value::Bool(true));
        Ok(active.then(|| Member {
            org: org.to_string(),
            roles,
        }))
    }
}

impl Source for NodeSource {
    fn tip(&self) -> Result<u64, SourceError> {
        let path = "/v1/status";
        let (status, body) = self.fetch(path)?;
        if !status.is_success() {
            return Err(self.bad(path, format!("answered {status}")));
        }
        self.json(path, &body)?["finalized_height"]
            .as_u64()
            .ok_or_else(|| self.bad(path, "no finalized_height"))
    }

    fn block(&self, height: u64) -> Result<Option<(Block, Changes)>, SourceError> {
        let path = format!("/v1/blocks/{height}/raw");
        let (status, body) = self.fetch(&path)?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.bad(&path, format!("answered {status}")));
        }
        let block =
            Block::decode(body).map_err(|e| self.bad(&path, format!("not a block: {e}")))?;
        if block.number() != height {
            return Err(self.bad(&path, format!("not block {height}")));
        }
        let path = format!("/v1/blocks/{height}/changes?format=binary");
        let (status, body) = self.fetch(&path)?;
        if status == reqwest::StatusCode::NOT_FOUND {
            let answer = self.json(&path, &body)?;
            return match answer["error"]["code"].as_str() {
                Some("changes_not_recorded") => Err(SourceError::NotRecorded {
                    url: self.base.clone(),
                    height,
                    message: answer["error"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                }),
                // Final in marshal a moment before the change log has it: not yet.
                _ => Ok(None),
            };
        }
        if !status.is_success() {
            return Err(self.bad(&path, format!("answered {status}")));
        }
        let changes = Changes::decode(body)
            .map_err(|e| self.bad(&path, format!("changes do not decode: {e}")))?;
        Ok(Some((block, changes)))
    }
}
