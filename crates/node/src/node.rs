//! Start a node: tokio runtime with durable storage, authenticated p2p over the genesis
//! validator set, the validator stack, gossip and the API.

use crate::{api, config::NodeConfig, gossip};
use commonware_cryptography::{ChaCha20Poly1305, Signer as _, ed25519};
use commonware_p2p::{Address, AddressableManager as _, authenticated::lookup};
use commonware_runtime::{Quota, Runner as _, Spawner as _, Supervisor as _, tokio as cw_tokio};
use commonware_stream::{
    cups::{self, Cups},
    sake::{self, Sake},
};
use commonware_utils::{NZU32, NZUsize, ordered::Map};
use consort_chain::{
    ChainObserver, Mempool,
    validator::{self, Channels, channel},
};
use consort_types::{Block, Genesis, hex_serde};
use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tracing::info;

/// Finalized-block events buffered for slow WebSocket readers (who are told what they missed).
pub const EVENTS_BUFFERED: usize = 4096;

/// Namespace of p2p handshakes.
const P2P_NAMESPACE: &[u8] = b"_CONSORT_P2P";

/// The latest finalized block as the node knows it.
#[derive(Clone, Debug, Default)]
pub struct Tip {
    /// Height of the latest finalized block.
    pub height: u64,
    /// Its digest (hex).
    pub hash: String,
    /// Its timestamp (ms).
    pub timestamp_ms: u64,
}

/// Upper bounds (ms) of the finality latency histogram's buckets; the last bucket is +Inf.
pub const FINALITY_BUCKETS_MS: [u64; 11] = [10, 25, 50, 100, 200, 300, 500, 750, 1000, 2000, 5000];

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Counters {
    /// Blocks per finality latency bucket (see [`FINALITY_BUCKETS_MS`]; the last is +Inf).
    pub finality_buckets: [std::sync::atomic::AtomicU64; FINALITY_BUCKETS_MS.len() + 1],
    /// Finalized transactions since start.
    pub txs_finalized: std::sync::atomic::AtomicU64,
    /// Sum of finality latencies of blocks this node finalized (ms), and their count.
    pub finality_ms_sum: std::sync::atomic::AtomicU64,
    /// Blocks finalized since start.
    pub blocks_finalized: std::sync::atomic::AtomicU64,
}

/// Hears finalized blocks: updates the tip, prunes the mempool, feeds events and metrics.
pub struct Observer {
    /// The node's mempool.
    pub mempool: Mempool,
    /// The tip.
    pub tip: Mutex<Tip>,
    /// Finalized-block events for WebSocket subscribers (JSON).
    pub events: tokio::sync::broadcast::Sender<Arc<String>>,
    /// Metrics.
    pub counters: Counters,
    /// Amounts from which the regulator gets an alert.
    pub alert_threshold: Option<u64>,
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

impl ChainObserver for Observer {
    fn finalized(&self, block: &Arc<Block>) {
        use std::sync::atomic::Ordering::Relaxed;
        self.mempool.on_finalized(block);
        let hash = hex_serde::encode(&commonware_cryptography::Digestible::digest(block.as_ref()));
        {
            let mut tip = self.tip.lock().expect("tip lock");
            if block.number() <= tip.height && !tip.hash.is_empty() {
                return;
            }
            *tip = Tip {
                height: block.number(),
                hash: hash.clone(),
                timestamp_ms: block.header.timestamp_ms,
            };
        }
        let latency = wall_ms().saturating_sub(block.header.timestamp_ms);
        self.counters
            .txs_finalized
            .fetch_add(block.txs.len() as u64, Relaxed);
        self.counters.blocks_finalized.fetch_add(1, Relaxed);
        self.counters.finality_ms_sum.fetch_add(latency, Relaxed);
        let bucket = FINALITY_BUCKETS_MS
            .iter()
            .position(|&bound| latency <= bound)
            .unwrap_or(FINALITY_BUCKETS_MS.len());
        self.counters.finality_buckets[bucket].fetch_add(1, Relaxed);
        let event = serde_json::json!({
            "type": "block_finalized",
            "height": block.number(),
            "hash": hash,
            "timestamp_ms": block.header.timestamp_ms,
            "txs": block.txs.iter().map(|t| hex_serde::encode(&t.hash())).collect::<Vec<_>>(),
            "failed": block
                .txs
                .iter()
                .zip(&block.outcomes)
                .filter_map(|(t, outcome)| {
                    outcome.failure().map(|code| {
                        serde_json::json!({"tx": hex_serde::encode(&t.hash()), "code": code})
                    })
                })
                .collect::<Vec<_>>(),
        });
        let _ = self.events.send(Arc::new(event.to_string()));
        for (tx, outcome) in block.txs.iter().zip(&block.outcomes) {
            if let Some(code) = outcome.failure() {
                // A failed transaction moved nothing: no alert, no gov or peg event.
                let event = serde_json::json!({
                    "type": "tx_failed",
                    "height": block.number(),
                    "tx": hex_serde::encode(&tx.hash()),
                    "sender": tx.tx.sender,
                    "call": tx.tx.call.kind(),
                    "code": code,
                });
                let _ = self.events.send(Arc::new(event.to_string()));
                continue;
            }
            if let Some(threshold) = self.alert_threshold
                && let Some(event) = alert_event(tx, threshold, block.number())
            {
                let _ = self.events.send(Arc::new(event.to_string()));
            }
            if is_governance(&tx.tx.call) {
                let event = serde_json::json!({
                    "type": "gov",
                    "height": block.number(),
                    "tx": hex_serde::encode(&tx.hash()),
                    "sender": tx.tx.sender,
                    "call": tx.tx.call,
                });
                let _ = self.events.send(Arc::new(event.to_string()));
            }
            if let Some(detail) = peg_event(tx) {
                let event = serde_json::json!({
                    "type": "peg",
                    "height": block.number(),
                    "tx": hex_serde::encode(&tx.hash()),
                    "sender": tx.tx.sender,
                    "call": tx.tx.call.kind(),
                    "detail": detail,
                });
                let _ = self.events.send(Arc::new(event.to_string()));
            }
        }
    }
}

/// Governance and supervision calls, which the events stream reports as `gov` events (a
/// passed proposal's effect, e.g. a halt, shows in `GET /v1/gov` and the proposal).
fn is_governance(call: &consort_types::Call) -> bool {
    use consort_types::Call;
    matches!(
        call,
        Call::Propose { .. }
            | Call::Vote { .. }
            | Call::Register { .. }
            | Call::Revoke { .. }
            | Call::SelfRegister
            | Call::Freeze { .. }
            | Call::Unfreeze { .. }
            | Call::LeaveValidator
            | Call::Rotate { .. }
            | Call::CancelRotation
    )
}

/// An alert for the regulator if `tx` moves at least `threshold` base units.
fn alert_event(
    tx: &consort_types::SignedTx,
    threshold: u64,
    height: u64,
) -> Option<serde_json::Value> {
    use consort_types::Call;
    let (amount, asset, to) = match &tx.tx.call {
        Call::Transfer { to, amount } => (*amount, None, Some(*to)),
        Call::TransferAsset { asset, to, amount } | Call::Issue { asset, to, amount } => {
            (*amount, Some(*asset), Some(*to))
        }
        Call::Redeem { asset, amount } => (*amount, Some(*asset), None),
        Call::PegOut { amount, .. } => (*amount, None, None),
        _ => return None,
    };
    (amount.units() >= threshold).then(|| {
        serde_json::json!({
            "type": "alert",
            "reason": "large_transfer",
            "threshold": threshold,
            "height": height,
            "tx": hex_serde::encode(&tx.hash()),
            "call": tx.tx.call.kind(),
            "sender": tx.tx.sender,
            "to": to,
            "asset": asset.map(|a| a.to_string()),
            "amount": amount,
        })
    })
}

/// What the events stream says about a finalized peg transaction (none for other calls).
fn peg_event(tx: &consort_types::SignedTx) -> Option<serde_json::Value> {
    use consort_types::Call;
    Some(match &tx.tx.call {
        Call::RelayHeaders { headers } => serde_json::json!({"headers": headers.0.len()}),
        Call::ClaimDeposit {
            account,
            transaction,
            vout,
            ..
        } => {
            let txid =
                bitcoin::consensus::deserialize::<bitcoin::Transaction>(transaction.as_slice())
                    .map(|t| t.compute_txid().to_string())
                    .unwrap_or_default();
            serde_json::json!({
                "account": account,
                "deposit": format!("{txid}:{vout}"),
                "status_url": format!("/v1/peg/claims/{txid}/{vout}"),
            })
        }
        Call::PegOut { amount, script } => serde_json::json!({
            "amount": amount,
            "script_pubkey": hex::encode(script.as_slice()),
        }),
        Call::SignBatch { batch, .. } => serde_json::json!({
            "batch": batch,
            "status_url": format!("/v1/peg/batches/{batch}"),
        }),
        Call::ConfirmBatch { batch, .. } => serde_json::json!({
            "batch": batch,
            "status_url": format!("/v1/peg/batches/{batch}"),
        }),
        _ => return None,
    })
}

/// Read the validator key file (hex of the 32-byte ed25519 private key).
pub fn load_key(path: &std::path::Path) -> anyhow::Result<ed25519::PrivateKey> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read key file {}: {e}", path.display()))?;
    hex_serde::parse(text.trim()).map_err(|e| {
        anyhow::anyhow!(
            "key file {} is not a hex ed25519 private key: {e}",
            path.display()
        )
    })
}

/// Run a node until the process is stopped.
pub fn run(config: NodeConfig) -> anyhow::Result<()> {
    let genesis_text = std::fs::read_to_string(&config.genesis)
        .map_err(|e| anyhow::anyhow!("cannot read genesis {}: {e}", config.genesis.display()))?;
    let genesis = Arc::new(Genesis::from_json(&genesis_text)?);
    let signer = load_key(&config.key_file)?;
    if !genesis.validator_keys().contains(&signer.public_key()) {
        info!(
            "this node's key is not a genesis validator: it follows the chain and votes once \
             governance adds it to the validator set"
        );
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let runtime = cw_tokio::Runner::new(
        cw_tokio::Config::new().with_storage_directory(config.data_dir.join("storage")),
    );
    runtime.start(|context| async move {
        if let Err(error) = serve(context, config, genesis, signer).await {
            tracing::error!(%error, "node stopped");
            std::process::exit(1);
        }
    });
    Ok(())
}

async fn serve(
    context: cw_tokio::Context,
    config: NodeConfig,
    genesis: Arc<Genesis>,
    signer: ed25519::PrivateKey,
) -> anyhow::Result<()> {
    let max_validators = consort_types::limits::VALIDATORS_MAX;
    let max_message = validator::max_message_size(max_validators as u32).max(
        consort_types::limits::GOSSIP_SIZE_MAX as u32
            + 2 * consort_types::limits::TX_SIZE_MAX as u32,
    );
    let handshake = Cups::<_, ChaCha20Poly1305>::new(
        Sake {
            signer: signer.clone(),
            synchrony_bound: Duration::from_secs(5),
            max_handshake_age: Duration::from_secs(10),
            version: sake::Version::V1,
        },
        cups::Version::V1,
    );
    let mut p2p_config = lookup::Config::local(
        handshake,
        P2P_NAMESPACE,
        config.p2p_listen,
        NZUsize!(max_validators),
        max_message,
        NZUsize!(4096),
    );
    // The current epoch's committee and the previous one (connected during the hand-over).
    p2p_config.tracked_peer_sets = NZUsize!(2);
    let (mut network, oracle) = lookup::Network::new(context.child("network"), p2p_config);
    // Each epoch's committee becomes the p2p peer set of that epoch (the orchestrator tracks
    // the current epoch at start and every later one as it enters it).
    let tracker: consort_chain::epochs::PeerTracker = Box::new({
        let mut oracle = oracle.clone();
        move |epoch, committee| {
            let peers: Vec<_> = committee
                .members
                .0
                .iter()
                .filter_map(|v| Some((v.key.public_key()?, Address::from(v.address))))
                .collect();
            match Map::try_from(peers) {
                Ok(peers) => {
                    oracle.track(epoch, peers);
                    info!(
                        epoch,
                        peers = committee.members.0.len(),
                        "tracking the epoch's validators"
                    );
                }
                Err(_) => tracing::warn!(epoch, "committee holds a key twice; not tracked"),
            }
        }
    });
    // A channel's mailbox holds peers × burst messages: keep the burst modest.
    let quota = Quota::per_second(NZU32!(1024));
    let pairs: Vec<_> = channel::CONSENSUS
        .iter()
        .map(|c| network.register(*c, quota))
        .collect();
    let txs_channel = network.register(channel::TXS, quota);
    network.start();

    info!(p2p = %config.p2p_listen, "p2p started");
    let mempool = Mempool::with_limits(consort_chain::mempool::PoolLimits {
        pending_max: genesis
            .account_limits
            .map_or(consort_types::limits::NONCE_WINDOW_MAX as usize, |l| {
                l.pending_max as usize
            }),
        sender_bytes_max: consort_chain::mempool::SENDER_BYTES_MAX,
    });
    let (events, _) = tokio::sync::broadcast::channel(EVENTS_BUFFERED);
    let observer = Arc::new(Observer {
        mempool: mempool.clone(),
        tip: Mutex::new(Tip::default()),
        events,
        counters: Counters::default(),
        alert_threshold: genesis.governance.as_ref().and_then(|g| g.alert_threshold),
    });
    let peg = consort_chain::peg::Peg::from_genesis(&genesis)
        .map_err(|e| anyhow::anyhow!("genesis peg section: {e}"))?;
    let watch_signer = signer.clone();
    let running = validator::start(
        context.child("validator"),
        validator::Config {
            genesis: genesis.clone(),
            signer,
            partition_prefix: "consort".into(),
            mempool: mempool.clone(),
            observer: observer.clone(),
            tracker,
        },
        Channels::from_ordered(pairs.into_iter()),
        oracle.clone(),
        oracle.clone(),
        |inner| inner,
    )
    .await;
    let databases = running.stateful.subscribe_databases().await;
    let admission = Arc::new(
        consort_chain::pipeline::Admission::new(
            genesis.clone(),
            mempool.clone(),
            databases.clone(),
        )
        .map_err(|e| anyhow::anyhow!("genesis peg section: {e}"))?,
    );
    let (sender, receiver) = txs_channel;
    context.child("gossip_send").spawn({
        let mempool = mempool.clone();
        move |ctx| gossip::send_loop(ctx, mempool, sender)
    });
    context.child("gossip_receive").spawn({
        let mempool = mempool.clone();
        let admission = admission.clone();
        let chain_id = genesis.chain_id;
        move |ctx| gossip::receive_loop(ctx, mempool, admission, chain_id, receiver)
    });

    let shared = Arc::new(api::Shared {
        gov: consort_chain::gov::Gov::from_genesis(&genesis),
        admission,
        genesis: genesis.clone(),
        mempool,
        databases,
        marshal: running.marshal,
        observer,
        peers: std::sync::atomic::AtomicUsize::new(0),
        peg: peg.clone().map(|peg| crate::peg::PegNode {
            peg,
            watch: std::sync::Mutex::new(crate::peg::load_watch_list(&config.data_dir)),
            data_dir: config.data_dir.clone(),
        }),
        blocking_tasks: Arc::new(tokio::sync::Semaphore::new(api::BLOCKING_TASKS_MAX)),
        event_subscribers: Arc::new(tokio::sync::Semaphore::new(api::EVENT_SUBSCRIBERS_MAX)),
    });
    context.child("peer_count").spawn({
        let shared = shared.clone();
        move |ctx| count_peers(ctx, shared)
    });
    if let (Some(peg), Some(main)) = (peg, &config.mainchain) {
        let watcher = start_watcher(peg, main, &genesis, &watch_signer)?;
        context.child("peg_watcher").spawn({
            let shared = shared.clone();
            move |ctx| crate::peg::watch_loop(ctx, shared, watcher, watch_signer)
        });
        info!(rpc = %main.rpc_url, "peg watcher started");
    } else if shared.peg.is_some() {
        info!("peg configured but no `mainchain` section: this node does not relay or sign");
    }
    let listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for the API on {}: {e}", config.api_listen))?;
    info!(api = %config.api_listen, p2p = %config.p2p_listen, "node started");
    crate::serve::serve(
        listener,
        api::router(shared),
        crate::serve::Limits::default(),
    )
    .await;
    Ok(())
}

/// The peg watcher of this validator: its main-chain RPC client and unlocked federation key.
fn start_watcher(
    peg: consort_chain::peg::Peg,
    main: &crate::config::MainchainConfig,
    genesis: &Genesis,
    signer: &ed25519::PrivateKey,
) -> anyhow::Result<consort_chain::watcher::Watcher> {
    use consort_mainchain::{Keystore, RpcAuth, RpcClient, RpcConfig};
    let auth = match (&main.rpc_cookie, &main.rpc_user, &main.rpc_password) {
        (Some(cookie), _, _) => RpcAuth::CookieFile(cookie.clone()),
        (None, Some(user), Some(password)) => RpcAuth::UserPassword {
            user: user.clone(),
            password: password.clone(),
        },
        _ => anyhow::bail!("mainchain needs rpc_cookie, or rpc_user and rpc_password"),
    };
    let rpc = RpcClient::new(RpcConfig::new(main.rpc_url.clone(), auth))?;
    let passphrase = std::fs::read(&main.passphrase_file).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the keystore passphrase {}: {e}",
            main.passphrase_file.display()
        )
    })?;
    let key = Keystore::open(&main.keystore)?.unlock(passphrase.trim_ascii())?;
    let me = consort_types::AccountId::new(signer.public_key());
    let index = genesis
        .validators
        .iter()
        .position(|v| v.public_key == me)
        .and_then(|i| u16::try_from(i).ok())
        .ok_or_else(|| anyhow::anyhow!("this node is not a genesis validator"))?;
    if peg.federation_key(index) != Some(&key.public_key()) {
        anyhow::bail!(
            "the keystore's key is not this validator's federation key in genesis; check keystore"
        );
    }
    Ok(consort_chain::watcher::Watcher::new(
        peg,
        rpc,
        Some((index, key)),
    ))
}

/// Keep `shared.peers` at the number of live p2p sessions: the p2p tracker publishes one
/// `directory_connected` gauge per connected peer and removes it on disconnect.
async fn count_peers(context: cw_tokio::Context, shared: Arc<api::Shared>) {
    use commonware_runtime::{Clock as _, Metrics as _};
    loop {
        shared.peers.store(
            connected_peers(&context.encode()),
            std::sync::atomic::Ordering::Relaxed,
        );
        context.sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Connected peers in a Prometheus/OpenMetrics text encoding of the runtime's metrics.
fn connected_peers(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#') && line.contains("directory_connected{"))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use consort_types::{AccountId, Amount, Call, Tx};

    #[test]
    fn peers_are_counted_from_the_p2p_connected_gauges() {
        let metrics = "\
# HELP p2p_tracker_directory_connected Unix timestamp in milliseconds when each connected peer became active.
# TYPE p2p_tracker_directory_connected gauge
p2p_tracker_directory_connected{peer=\"aa\"} 1764431000000
p2p_tracker_directory_connected{peer=\"bb\"} 1764431000100
p2p_tracker_directory_blocked{peer=\"cc\"} 1
p2p_tracker_directory_tracked 3
";
        assert_eq!(connected_peers(metrics), 2);
        assert_eq!(connected_peers(""), 0);
    }

    fn transfer(amount: u64) -> consort_types::SignedTx {
        let key = ed25519::PrivateKey::from_seed(1);
        Tx {
            chain_id: 1,
            sender: AccountId::new(key.public_key()),
            nonce: 0,
            call: Call::Transfer {
                to: AccountId::new(ed25519::PrivateKey::from_seed(2).public_key()),
                amount: Amount::new(amount),
            },
        }
        .sign(&key)
    }

    #[test]
    fn transfers_at_or_above_the_threshold_raise_alerts() {
        assert!(alert_event(&transfer(999), 1_000, 5).is_none());
        let alert = alert_event(&transfer(1_000), 1_000, 5).expect("alert");
        assert_eq!(alert["type"], "alert");
        assert_eq!(alert["amount"], 1_000);
        assert_eq!(alert["height"], 5);
    }
}
