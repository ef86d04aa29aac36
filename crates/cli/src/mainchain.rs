//! The devnet's main chain: a `litecoind -regtest` with its datadir under the devnet
//! directory (so a resumed devnet resumes its main chain too), a wallet with coins, and a miner
//! that makes a block every few seconds for the demo.

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// The wallet the devnet's demo coins live in.
pub const WALLET: &str = "devnet";

/// A block every this often.
pub const BLOCK_INTERVAL: Duration = Duration::from_secs(5);

/// The `litecoind` on `PATH` (or `$LITECOIND`), if installed.
pub fn find() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("LITECOIND") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("litecoind"))
        .find(|candidate| candidate.is_file())
}

/// A blocking JSON-RPC client of Litecoin Core or Bitcoin Core.
pub struct Rpc {
    url: String,
    cookie: Option<PathBuf>,
    user: Option<(String, String)>,
    http: reqwest::blocking::Client,
}

impl Rpc {
    /// A client of `url` with cookie or user/password auth.
    ///
    /// # Errors
    /// If neither auth is given.
    pub fn new(
        url: String,
        cookie: Option<PathBuf>,
        user: Option<String>,
        password: Option<String>,
    ) -> anyhow::Result<Self> {
        let user = match (user, password) {
            (Some(u), Some(p)) => Some((u, p)),
            _ => None,
        };
        if cookie.is_none() && user.is_none() {
            bail!("give --rpc-cookie, or --rpc-user and --rpc-password");
        }
        Ok(Self {
            url,
            cookie,
            user,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    /// Call `method`.
    ///
    /// # Errors
    /// Transport failures and the node's error answers.
    pub fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let (user, password) = match (&self.user, &self.cookie) {
            (Some((u, p)), _) => (u.clone(), p.clone()),
            (None, Some(cookie)) => {
                let text = std::fs::read_to_string(cookie)
                    .with_context(|| format!("no RPC cookie at {}", cookie.display()))?;
                let (u, p) = text
                    .trim()
                    .split_once(':')
                    .context("malformed RPC cookie")?;
                (u.to_string(), p.to_string())
            }
            (None, None) => unreachable!("checked in new"),
        };
        let response: Value = self
            .http
            .post(&self.url)
            .basic_auth(user, Some(password))
            .json(&json!({"jsonrpc": "1.0", "id": 1, "method": method, "params": params}))
            .send()
            .with_context(|| format!("cannot reach the main-chain node at {}", self.url))?
            .json()?;
        if !response["error"].is_null() {
            bail!("{method}: {}", response["error"]);
        }
        Ok(response["result"].clone())
    }
}

/// A running regtest node, stopped by its pid on drop.
pub struct DevChain {
    child: Child,
    /// JSON-RPC URL.
    pub rpc_url: String,
    /// Cookie file for RPC auth.
    pub cookie: PathBuf,
    rpc: Rpc,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Ports {
    rpc: u16,
    p2p: u16,
}

impl DevChain {
    /// Start (or resume) the devnet's main chain in `dir/litecoind`.
    ///
    /// # Errors
    /// If litecoind does not start or answer.
    pub fn start(binary: &Path, dir: &Path) -> anyhow::Result<Self> {
        let datadir = std::path::absolute(dir.join("litecoind"))?;
        std::fs::create_dir_all(&datadir)?;
        let ports_file = datadir.join("ports.json");
        let ports: Ports = match std::fs::read_to_string(&ports_file) {
            Ok(text) => serde_json::from_str(&text)?,
            Err(_) => {
                let ports = Ports {
                    rpc: crate::process::free_port()?,
                    p2p: crate::process::free_port()?,
                };
                std::fs::write(&ports_file, serde_json::to_string(&ports)?)?;
                ports
            }
        };
        let log = std::fs::File::create(datadir.join("litecoind.log"))?;
        let child = Command::new(binary)
            .args([
                "-regtest".to_string(),
                format!("-datadir={}", datadir.display()),
                format!("-rpcport={}", ports.rpc),
                format!("-port={}", ports.p2p),
                "-listen=0".into(),
                "-listenonion=0".into(),
                "-dnsseed=0".into(),
                "-rpcbind=127.0.0.1".into(),
                "-rpcallowip=127.0.0.1".into(),
                "-fallbackfee=0.0001".into(),
                "-txindex=1".into(),
                "-rpcserialversion=0".into(),
                // Peg-out batches stuck below the miners' fee are replaced (replace-by-fee);
                // Litecoin Core relays replacements only with this (default 0).
                "-mempoolreplacement=1".into(),
                "-printtoconsole=0".into(),
                "-server=1".into(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let chain = Self {
            child,
            rpc_url: format!("http://127.0.0.1:{}", ports.rpc),
            cookie: datadir.join("regtest/.cookie"),
            rpc: Rpc::new(
                format!("http://127.0.0.1:{}/wallet/{WALLET}", ports.rpc),
                Some(datadir.join("regtest/.cookie")),
                None,
                None,
            )?,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match chain.call("getblockcount", json!([])) {
                Ok(_) => break,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(error) => bail!("litecoind did not answer within 60 s: {error}"),
            }
        }
        if chain.call("loadwallet", json!([WALLET])).is_err() {
            let _ = chain.call("createwallet", json!([WALLET]));
        }
        let height = chain
            .call("getblockcount", json!([]))?
            .as_u64()
            .unwrap_or(0);
        if height < 101 {
            chain.mine(101 - height)?;
        }
        Ok(chain)
    }

    /// Call `method` on the node (wallet methods go to the devnet wallet).
    ///
    /// # Errors
    /// Transport failures and the node's error answers.
    pub fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.rpc.call(method, params)
    }

    /// Mine `blocks` blocks to the wallet. Litecoin's first MWEB block (regtest height
    /// [`MWEB_ACTIVATION_HEIGHT`](consort_mainchain::network::MWEB_ACTIVATION_HEIGHT)) must
    /// carry a peg-in to MWEB, or Litecoin Core refuses to build it (`bad-txns-vin-empty`) and
    /// the chain stops there; the wallet makes one just before.
    ///
    /// # Errors
    /// RPC failures.
    pub fn mine(&self, blocks: u64) -> anyhow::Result<()> {
        let first_mweb = u64::from(consort_mainchain::network::MWEB_ACTIVATION_HEIGHT);
        let address = self.call("getnewaddress", json!(["", "bech32"]))?;
        let height = self
            .call("getblockcount", json!([]))?
            .as_u64()
            .context("getblockcount is not a number")?;
        let mut left = blocks;
        if height < first_mweb && height + blocks >= first_mweb {
            let before = first_mweb - 1 - height;
            if before > 0 {
                self.call("generatetoaddress", json!([before, address]))?;
            }
            let mweb = self.call("getnewaddress", json!(["", "mweb"]))?;
            self.call("sendtoaddress", json!([mweb, 1.0]))
                .context("the first MWEB block needs a peg-in to MWEB from the devnet wallet")?;
            left -= before;
        }
        if left > 0 {
            self.call("generatetoaddress", json!([left, address]))?;
        }
        Ok(())
    }

    /// Mine a block every [`BLOCK_INTERVAL`] until `stop` is set.
    pub fn mine_until(self: &Arc<Self>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
        let chain = self.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(BLOCK_INTERVAL);
                if let Err(error) = chain.mine(1) {
                    tracing::warn!(%error, "devnet miner");
                }
            }
        })
    }

    /// Stop the node by its pid (SIGTERM, then SIGKILL).
    pub fn stop(&mut self) {
        crate::process::stop(std::slice::from_mut(&mut self.child));
    }
}

impl Drop for DevChain {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_devnet_main_chain_mines_through_mweb_activation() {
        let binary = find().expect("litecoind on PATH (apt-get install litecoind)");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut chain = DevChain::start(&binary, dir.path()).expect("litecoind starts");
        // From 101 across the first MWEB block (432) in one call, then one more the way the
        // devnet's miner does.
        chain.mine(340).expect("mines across MWEB activation");
        chain.mine(1).expect("mines after activation");
        let height = chain.call("getblockcount", json!([])).expect("height");
        assert_eq!(height, json!(442));
        let info = chain
            .call("getblockchaininfo", json!([]))
            .expect("blockchain info");
        assert_eq!(info["softforks"]["mweb"]["active"], json!(true), "{info}");
        chain.stop();
    }
}
