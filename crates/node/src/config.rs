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
    /// MiB of memory for the storage page cache (state, blocks, consensus journals), allocated
    /// and zeroed at start: 32 to 65,536 (it must fit in the machine's memory), 32 if not
    /// named. A cache smaller than the state written since the state database's inactivity
    /// floor makes each block's commit read that floor back from disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_cache_mib: Option<u32>,
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

    /// The storage page cache to allocate, in MiB: the config's, or the default.
    ///
    /// # Errors
    /// If the config names a size outside the allowed range.
    pub fn page_cache_mib(&self) -> anyhow::Result<u32> {
        use consort_chain::validator::{
            PAGE_CACHE_MIB_DEFAULT, PAGE_CACHE_MIB_MAX, PAGE_CACHE_MIB_MIN,
        };
        match self.page_cache_mib {
            None => Ok(PAGE_CACHE_MIB_DEFAULT),
            Some(mib) if (PAGE_CACHE_MIB_MIN..=PAGE_CACHE_MIB_MAX).contains(&mib) => Ok(mib),
            Some(mib) => anyhow::bail!(
                "page_cache_mib {mib} is out of range: name {PAGE_CACHE_MIB_MIN} to \
                 {PAGE_CACHE_MIB_MAX} MiB, or leave it out for {PAGE_CACHE_MIB_DEFAULT}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cache(page_cache_mib: Option<u32>) -> NodeConfig {
        NodeConfig {
            genesis: "genesis.json".into(),
            key_file: "key".into(),
            data_dir: "data".into(),
            p2p_listen: "127.0.0.1:1".parse().expect("address"),
            api_listen: "127.0.0.1:2".parse().expect("address"),
            api_public_hosts: Vec::new(),
            mainchain: None,
            shop_db: None,
            page_cache_mib,
        }
    }

    #[test]
    fn page_cache_defaults_and_refuses_sizes_out_of_range() {
        assert_eq!(with_cache(None).page_cache_mib().expect("default"), 32);
        assert_eq!(with_cache(Some(32)).page_cache_mib().expect("least"), 32);
        assert_eq!(with_cache(Some(256)).page_cache_mib().expect("named"), 256);
        assert_eq!(
            with_cache(Some(65_536)).page_cache_mib().expect("most"),
            65_536
        );
        for mib in [0, 31, 65_537] {
            let error = with_cache(Some(mib))
                .page_cache_mib()
                .expect_err("out of range");
            assert!(error.to_string().contains("32 to 65536 MiB"), "{error}");
        }
        // A config written before the setting existed reads as the default, and the default
        // is not written out.
        let old = r#"{"genesis": "g.json", "key_file": "k", "data_dir": "d",
            "p2p_listen": "127.0.0.1:3000", "api_listen": "127.0.0.1:8080"}"#;
        let read: NodeConfig = serde_json::from_str(old).expect("decodes");
        assert_eq!(read.page_cache_mib().expect("default"), 32);
        let text = serde_json::to_string(&with_cache(None)).expect("encodes");
        assert!(!text.contains("page_cache_mib"), "{text}");
    }
}
