//! A node's configuration file (JSON).

use serde::{Deserialize, Serialize};
use std::{net::SocketAddr, path::PathBuf};

/// What `consort node --config FILE` reads.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeConfig {
    /// The chain's genesis document.
    pub genesis: PathBuf,
    /// File holding this validator's ed25519 private key (hex).
    pub key_file: PathBuf,
    /// Where the node keeps its durable state.
    pub data_dir: PathBuf,
    /// Where other validators reach this node's p2p endpoint.
    pub p2p_listen: SocketAddr,
    /// Where the HTTP API listens.
    pub api_listen: SocketAddr,
    /// Further hosts clients name to reach the API (`shop.example.com`, `10.0.0.5:8080`), as
    /// sent in `Host`: signed reads name the host they are for, and the API answers only its
    /// own. It answers to its listen address (and `localhost` on loopback) without being
    /// told; listening on every interface (`0.0.0.0`), only to these (list `127.0.0.1:PORT`
    /// too for clients on this machine), or to any host if none is named. A proxy in front
    /// must pass `Host` on unchanged (nginx: `proxy_set_header Host $http_host;`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_public_hosts: Vec<String>,
    /// The main-chain node and federation key of a validator that runs the peg watcher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mainchain: Option<MainchainConfig>,
    /// The shop's read model (SQLite file; its search index lives beside it, in
    /// `<file>.search`). When set, the node runs an indexer that follows its own finalized
    /// blocks into it and serves the shop API (`/v1/shop/...`) with the node's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop_db: Option<PathBuf>,
}

/// How a validator reaches its main-chain node and unlocks its federation key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MainchainConfig {
    /// JSON-RPC URL of Litecoin Core or Bitcoin Core (`http://127.0.0.1:19443`).
    pub rpc_url: String,
    /// The node's `.cookie` file (cookie auth); or give `rpc_user` and `rpc_password`.
    #[serde(default)]
    pub rpc_cookie: Option<PathBuf>,
    /// RPC user name.
    #[serde(default)]
    pub rpc_user: Option<String>,
    /// RPC password.
    #[serde(default)]
    pub rpc_password: Option<String>,
    /// This validator's encrypted federation keystore.
    pub keystore: PathBuf,
    /// A file holding the keystore's passphrase (mode 0600).
    pub passphrase_file: PathBuf,
}

impl NodeConfig {
    /// Read a config file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("config {} is not valid: {e}", path.display()))
    }
}
