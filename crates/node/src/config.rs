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
