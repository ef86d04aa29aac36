//! A real `litecoind -regtest` in a temporary datadir, for tests (feature `harness`).
//!
//! The node listens for RPC on a free loopback port, accepts no peers, authenticates with its
//! cookie file, and gets one wallet. Dropping the harness stops the node by its own pid:
//! SIGTERM, a grace period, then SIGKILL; drop blocks the calling thread until the node has
//! exited (well under a second). litecoind waits for open RPC connections before it exits (up
//! to its 30 s `-rpcservertimeout`), so clients of the node should be built from
//! [`LitecoindRegtest::rpc_config`], which keeps none open. If the process running the tests
//! is itself killed, the node outlives it; its datadir is then a stale temporary directory.

use std::env;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bitcoin::BlockHash;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::network::Network;
use crate::rpc::{RpcAuth, RpcClient, RpcConfig, RpcError};

/// What to do when `litecoind` is missing; part of [`HarnessError::NotInstalled`]'s message.
pub const LITECOIND_INSTALL_HINT: &str =
    "install it with `apt-get install -y litecoind` (Debian's Litecoin Core 0.21)";

/// Environment variable that overrides where to find `litecoind`.
pub const LITECOIND_ENV: &str = "LITECOIND";

pub use crate::network::MWEB_ACTIVATION_HEIGHT;

const RPC_POLL_INTERVAL: Duration = Duration::from_millis(100);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
const LOG_TAIL_LINES: usize = 20;
const START_ATTEMPTS_MAX: u32 = 3;

/// Why the harness could not provide a node.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// No `litecoind` binary was found.
    #[error("litecoind not found (looked at {searched}): {LITECOIND_INSTALL_HINT}")]
    NotInstalled {
        /// Where it looked.
        searched: String,
    },
    /// A local resource (port, temporary directory, log file) could not be had.
    #[error("cannot prepare a regtest node: {context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The binary could not be executed.
    #[error("cannot start {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The node exited before its RPC answered.
    #[error("litecoind exited during startup ({status}); its output ends with:\n{log_tail}")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// The end of its stderr and debug.log.
        log_tail: String,
    },
    /// The node kept running but its RPC did not answer in time.
    #[error("litecoind did not answer RPC within {waited_ms} ms; last error: {last_error}")]
    Timeout {
        /// How long the harness waited.
        waited_ms: u128,
        /// The last RPC error seen.
        last_error: String,
    },
    /// An RPC call made by the harness failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

/// How to start the node.
#[derive(Clone, Debug)]
pub struct RegtestOptions {
    /// The `litecoind` binary; default: `$LITECOIND`, else the first on `PATH`.
    pub binary: Option<PathBuf>,
    /// Arguments added after the harness's own (e.g. `-vbparams=mweb:9999999999:9999999999`
    /// to keep MWEB off, `-rpcserialversion=0` to get blocks rust-bitcoin can parse).
    pub extra_args: Vec<String>,
    /// How long to wait for RPC to answer.
    pub startup_timeout: Duration,
    /// The wallet to create.
    pub wallet_name: String,
}

impl Default for RegtestOptions {
    fn default() -> Self {
        Self {
            binary: None,
            extra_args: Vec::new(),
            startup_timeout: Duration::from_secs(60),
            wallet_name: "consort".into(),
        }
    }
}

/// A running `litecoind -regtest`, stopped on drop.
#[derive(Debug)]
pub struct LitecoindRegtest {
    child: Child,
    stopped: bool,
    rpc: RpcClient,
    rpc_port: u16,
    wallet_name: String,
    // Dropped after `Drop::drop` stopped the node, so the node never sees its datadir vanish.
    datadir: TempDir,
}

impl LitecoindRegtest {
    /// Starts a node with [`RegtestOptions::default`].
    ///
    /// # Errors
    /// [`HarnessError::NotInstalled`] without `litecoind`, otherwise why it did not come up.
    pub async fn start() -> Result<Self, HarnessError> {
        Self::start_with(RegtestOptions::default()).await
    }

    /// Starts a node, waits until its RPC answers, and creates the wallet.
    ///
    /// # Errors
    /// [`HarnessError::NotInstalled`] without `litecoind`, otherwise why it did not come up.
    pub async fn start_with(options: RegtestOptions) -> Result<Self, HarnessError> {
        let binary = find_litecoind(options.binary.as_deref())?;
        let mut attempt = 1;
        loop {
            match Self::start_once(&binary, &options).await {
                // Another process may take a probed port before the node binds it.
                Err(HarnessError::Exited { log_tail, .. })
                    if attempt < START_ATTEMPTS_MAX && log_tail.contains("bind") =>
                {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_once(binary: &Path, options: &RegtestOptions) -> Result<Self, HarnessError> {
        let datadir = tempfile::Builder::new()
            .prefix("consort-litecoind-")
            .tempdir()
            .map_err(|source| HarnessError::Io {
                context: "create the datadir",
                source,
            })?;
        let [rpc_port, p2p_port] = free_loopback_ports()?;
        let stderr =
            File::create(datadir.path().join("stderr.log")).map_err(|source| HarnessError::Io {
                context: "create stderr.log",
                source,
            })?;
        let child = Command::new(binary)
            .args(node_args(datadir.path(), rpc_port, p2p_port))
            .args(&options.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|source| HarnessError::Spawn {
                binary: binary.to_owned(),
                source,
            })?;
        let rpc = RpcClient::new(rpc_config(datadir.path(), rpc_port))?;
        let mut node = Self {
            child,
            stopped: false,
            rpc,
            rpc_port,
            wallet_name: options.wallet_name.clone(),
            datadir,
        };
        node.wait_for_rpc(options.startup_timeout).await?;
        node.rpc.create_wallet(&options.wallet_name).await?;
        Ok(node)
    }

    async fn wait_for_rpc(&mut self, timeout: Duration) -> Result<(), HarnessError> {
        let started = Instant::now();
        loop {
            let last_error = match self.rpc.get_blockchain_info().await {
                Ok(_) => return Ok(()),
                Err(error) => error.to_string(),
            };
            if let Some(status) = self.child.try_wait().map_err(|source| HarnessError::Io {
                context: "poll litecoind",
                source,
            })? {
                self.stopped = true;
                return Err(HarnessError::Exited {
                    status,
                    log_tail: self.log_tail(),
                });
            }
            if started.elapsed() > timeout {
                return Err(HarnessError::Timeout {
                    waited_ms: started.elapsed().as_millis(),
                    last_error,
                });
            }
            tokio::time::sleep(RPC_POLL_INTERVAL).await;
        }
    }

    /// The node's network.
    pub fn network(&self) -> Network {
        Network::LITECOIN_REGTEST
    }

    /// A client for the node (and its only wallet).
    pub fn rpc(&self) -> &RpcClient {
        &self.rpc
    }

    /// A config for more clients of this node. It keeps no idle connections: litecoind waits
    /// for open ones (up to `-rpcservertimeout`, 30 s) before it exits, which would stall drop.
    pub fn rpc_config(&self) -> RpcConfig {
        rpc_config(self.datadir.path(), self.rpc_port)
    }

    /// The RPC port on 127.0.0.1.
    pub fn rpc_port(&self) -> u16 {
        self.rpc_port
    }

    /// The node's cookie file, for clients of other crates.
    pub fn cookie_file(&self) -> PathBuf {
        self.datadir.path().join("regtest").join(".cookie")
    }

    /// The node's datadir.
    pub fn datadir(&self) -> &Path {
        self.datadir.path()
    }

    /// The name of the wallet the harness created.
    pub fn wallet_name(&self) -> &str {
        &self.wallet_name
    }

    /// The node's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Mines `blocks` blocks to a new wallet address; returns their hashes.
    ///
    /// # Errors
    /// [`HarnessError::Rpc`].
    pub async fn mine(&self, blocks: u32) -> Result<Vec<BlockHash>, HarnessError> {
        let address = self
            .wallet_rpc()?
            .get_new_address("", Some("bech32"))
            .await?;
        Ok(self.rpc.generate_to_address(blocks, &address).await?)
    }

    /// A client bound to the harness's wallet (`/wallet/<name>`): keeps working when a test
    /// loads more wallets, where [`Self::rpc`]'s wallet calls would be ambiguous.
    ///
    /// # Errors
    /// [`HarnessError::Rpc`] if the URL cannot carry the wallet path.
    pub fn wallet_rpc(&self) -> Result<RpcClient, HarnessError> {
        Ok(self.rpc.for_wallet(&self.wallet_name)?)
    }

    /// Mines until Litecoin's MWEB soft fork is active ([`MWEB_ACTIVATION_HEIGHT`]), working
    /// around litecoind's refusal to mine the first MWEB block without an MWEB transaction
    /// (litecoin-project/litecoin#807): at height 431 it pegs 1 LTC into an MWEB address of the
    /// wallet first. Returns the tip height. Needs spendable coins by height 431, which
    /// mining to it provides.
    ///
    /// # Errors
    /// [`HarnessError::Rpc`], e.g. if the node was started with MWEB disabled.
    pub async fn activate_mweb(&self) -> Result<u32, HarnessError> {
        let height = self.rpc.get_block_count().await?;
        let before_first_mweb_block = MWEB_ACTIVATION_HEIGHT - 1;
        if height >= MWEB_ACTIVATION_HEIGHT {
            return Ok(height);
        }
        if height < before_first_mweb_block {
            self.mine(before_first_mweb_block - height).await?;
        }
        let wallet = self.wallet_rpc()?;
        let mweb_address = wallet.get_new_address("", Some("mweb")).await?;
        wallet
            .send_to_address(&mweb_address, bitcoin::Amount::from_sat(100_000_000))
            .await?;
        self.mine(1).await?;
        Ok(self.rpc.get_block_count().await?)
    }

    /// Stops the node: SIGTERM to its pid, up to 30 s to exit, then SIGKILL. Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // Failure means the process is already gone; `wait` below reaps it either way.
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            let deadline = Instant::now() + SHUTDOWN_GRACE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(RPC_POLL_INTERVAL);
            }
        }
        // `Child::kill` sends SIGKILL to this child's pid, which stays ours until reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of the node's stderr and debug.log.
    fn log_tail(&self) -> String {
        let mut tail = String::new();
        for path in [
            self.datadir.path().join("stderr.log"),
            self.datadir.path().join("regtest/debug.log"),
        ] {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(LOG_TAIL_LINES);
            tail.push_str(&format!(
                "--- {}\n{}\n",
                path.display(),
                lines[start..].join("\n")
            ));
        }
        tail
    }
}

impl Drop for LitecoindRegtest {
    fn drop(&mut self) {
        self.stop();
    }
}

fn rpc_config(datadir: &Path, rpc_port: u16) -> RpcConfig {
    let cookie = datadir.join("regtest").join(".cookie");
    let mut config = RpcConfig::new(
        format!("http://127.0.0.1:{rpc_port}"),
        RpcAuth::CookieFile(cookie),
    );
    config.idle_connections_max = 0;
    config
}

fn node_args(datadir: &Path, rpc_port: u16, p2p_port: u16) -> Vec<String> {
    vec![
        "-regtest".into(),
        format!("-datadir={}", datadir.display()),
        format!("-rpcport={rpc_port}"),
        format!("-port={p2p_port}"),
        "-listen=0".into(),
        "-listenonion=0".into(),
        "-dnsseed=0".into(),
        "-rpcbind=127.0.0.1".into(),
        "-rpcallowip=127.0.0.1".into(),
        "-fallbackfee=0.0001".into(),
        "-txindex=1".into(),
        "-printtoconsole=0".into(),
        "-server=1".into(),
    ]
}

/// The binary to run: `explicit`, else `$LITECOIND`, else the first `litecoind` on `PATH`.
///
/// # Errors
/// [`HarnessError::NotInstalled`], whose message says how to install it.
pub fn find_litecoind(explicit: Option<&Path>) -> Result<PathBuf, HarnessError> {
    if let Some(path) = explicit {
        return existing(path.to_owned());
    }
    if let Some(path) = env::var_os(LITECOIND_ENV) {
        return existing(PathBuf::from(path));
    }
    let path_var = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path_var)
        .map(|directory| directory.join("litecoind"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| HarnessError::NotInstalled {
            searched: format!("litecoind on PATH={}", path_var.to_string_lossy()),
        })
}

fn existing(path: PathBuf) -> Result<PathBuf, HarnessError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::NotInstalled {
            searched: path.display().to_string(),
        })
    }
}

/// Two distinct free ports on 127.0.0.1, found by binding port 0 and releasing it.
fn free_loopback_ports() -> Result<[u16; 2], HarnessError> {
    let io = |source| HarnessError::Io {
        context: "reserve a loopback port",
        source,
    };
    // Both listeners stay open until both ports are known, so the two differ.
    let first = TcpListener::bind("127.0.0.1:0").map_err(io)?;
    let second = TcpListener::bind("127.0.0.1:0").map_err(io)?;
    Ok([
        first.local_addr().map_err(io)?.port(),
        second.local_addr().map_err(io)?.port(),
    ])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_fails_with_the_install_command() {
        let error = find_litecoind(Some(Path::new("/nonexistent/litecoind"))).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("apt-get install -y litecoind"),
            "{message}"
        );
        assert!(message.contains("/nonexistent/litecoind"), "{message}");
    }

    #[test]
    fn free_ports_are_distinct_and_nonzero() {
        let [first, second] = free_loopback_ports().unwrap();
        assert_ne!(first, second);
        assert!(first > 0 && second > 0);
    }

    #[test]
    fn the_node_is_confined_to_loopback_and_keeps_a_transaction_index() {
        let args = node_args(Path::new("/tmp/x"), 1, 2);
        for expected in [
            "-regtest",
            "-listen=0",
            "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1",
            "-txindex=1",
            "-fallbackfee=0.0001",
            "-rpcport=1",
            "-port=2",
        ] {
            assert!(args.iter().any(|arg| arg == expected), "{expected} missing");
        }
    }
}
