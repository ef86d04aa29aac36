//! Start a node: tokio runtime with durable storage, authenticated p2p over the genesis
//! validator set, the validator stack, gossip and the API.

use crate::{
    api,
    config::NodeConfig,
    gossip,
    observer::{Counters, EVENTS_BUFFERED, Observer, Tip},
};
use commonware_cryptography::{ChaCha20Poly1305, Signer as _, ed25519};
use commonware_p2p::{Address, AddressableManager as _, authenticated::lookup};
use commonware_runtime::{Quota, Runner as _, Spawner as _, Supervisor as _, tokio as cw_tokio};
use commonware_stream::{
    cups::{self, Cups},
    sake::{self, Sake},
};
use commonware_utils::{NZU32, NZUsize, ordered::Map};
use consort_chain::{
    Mempool,
    validator::{self, Channels, channel},
};
use consort_types::{Genesis, hex_serde};
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use tracing::info;

/// Namespace of p2p handshakes.
const P2P_NAMESPACE: &[u8] = b"_CONSORT_P2P";

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
    // Refused before anything starts.
    config.page_cache_mib()?;
    std::fs::create_dir_all(&config.data_dir)?;
    crate::format::check(&config.data_dir)?;
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
    let txindex = Arc::new(
        consort_chain::txindex::TxIndex::open(context.child("txindex"), "consort")
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the transaction index: {e}"))?,
    );
    let (indexer, indexed_blocks) =
        futures::channel::mpsc::channel(consort_chain::txindex::FOLLOW_QUEUE);
    let changelog = Arc::new(
        crate::changelog::ChangeLog::open(&config.data_dir)
            .map_err(|e| anyhow::anyhow!("cannot open the shop change log: {e}"))?,
    );
    let observer = Arc::new(Observer {
        indexer: Mutex::new(indexer),
        changelog,
        mempool: mempool.clone(),
        tip: Mutex::new(Tip::default()),
        events,
        interest: Default::default(),
        counters: Counters::default(),
        alert_threshold: genesis.governance.as_ref().and_then(|g| g.alert_threshold),
    });
    let peg = consort_peg::Peg::from_genesis(&genesis)
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
            page_cache_mib: config.page_cache_mib()?,
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
        .map_err(|e| anyhow::anyhow!("genesis peg section: {e}"))?
        .with_tx_index(txindex.clone()),
    );
    context.child("txindex_follow").spawn({
        let txindex = txindex.clone();
        let marshal = running.marshal.clone();
        move |ctx| consort_chain::txindex::follow(ctx, txindex, marshal, indexed_blocks)
    });
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
        gov: consort_governance::Gov::from_genesis(&genesis),
        admission,
        genesis: genesis.clone(),
        mempool,
        databases,
        marshal: running.marshal,
        txindex,
        observer,
        peers: std::sync::atomic::AtomicUsize::new(0),
        peg: peg.clone().map(|peg| crate::shared::PegNode {
            peg,
            watch: std::sync::Mutex::new(crate::peg::load_watch_list(&config.data_dir)),
            watch_adds: std::sync::Mutex::new((std::time::Instant::now(), 0)),
            data_dir: config.data_dir.clone(),
        }),
        blocking_tasks: Arc::new(tokio::sync::Semaphore::new(api::BLOCKING_TASKS_MAX)),
        event_subscribers: Arc::new(tokio::sync::Semaphore::new(api::EVENT_SUBSCRIBERS_MAX)),
        api_hosts: std::sync::OnceLock::new(),
    });
    context.child("peer_count").spawn({
        let shared = shared.clone();
        move |ctx| count_peers(ctx, shared)
    });
    if let (Some(peg), Some(main)) = (peg, &config.mainchain) {
        let watcher = start_watcher(peg, main, &watch_signer)?;
        context.child("peg_watcher").spawn({
            let shared = shared.clone();
            move |ctx| crate::peg::watch_loop(ctx, shared, watcher, watch_signer)
        });
        info!(rpc = %main.rpc_url, "peg watcher started");
    } else if shared.peg.is_some() {
        info!("peg configured but no `mainchain` section: this node does not relay or sign");
    }
    let listener = crate::serve::listen(config.api_listen)
        .map_err(|e| anyhow::anyhow!("cannot listen for the API on {}: {e}", config.api_listen))?;
    info!(api = %config.api_listen, p2p = %config.p2p_listen, "node started");
    let hosts = api_hosts(
        listener.local_addr().unwrap_or(config.api_listen),
        &config.api_public_hosts,
    )
    .map_err(|e| anyhow::anyhow!("api_public_hosts in the node's config: {e}"))?;
    let _ = shared.api_hosts.set(hosts.clone());
    let mut router = api::router(shared);
    // Kept until the node stops: dropping it stops following.
    let _indexer = match &config.shop_db {
        Some(db) => {
            let own = own_api_url(config.api_listen);
            let service = consort_indexer::Service::start(db, &own).map_err(|e| {
                anyhow::anyhow!("cannot start the shop indexer on {}: {e}", db.display())
            })?;
            let _ = service.shop().hosts.set(hosts);
            info!(db = %db.display(), "shop indexer started; /v1/shop/... served");
            router = router.merge(consort_indexer::api::routes(service.shop()));
            Some(service)
        }
        None => None,
    };
    crate::serve::serve_apart(listener, router, crate::serve::Limits::default())
        .await
        .map_err(|e| anyhow::anyhow!("the API server stopped: {e}"))?;
    Ok(())
}

/// The hosts an API listening on `listening` answers signed reads for: the address it
/// listens on ([`consort_types::signed_read::default_hosts`]) and `public_hosts`. Listening on
/// every interface, only `public_hosts` (loopback names are shared by every machine's
/// servers; list them to allow them), and any host if none is named.
///
/// # Errors
/// If a public host is not a bare `host[:port]`.
pub fn api_hosts(
    listening: std::net::SocketAddr,
    public_hosts: &[String],
) -> anyhow::Result<Vec<String>> {
    let mut hosts = consort_types::signed_read::default_hosts(listening);
    for name in public_hosts {
        hosts.push(consort_types::signed_read::public_host(name).map_err(anyhow::Error::msg)?);
    }
    Ok(hosts)
}

/// The URL at which this process reaches its own API (loopback when it listens on every
/// interface).
fn own_api_url(listen: std::net::SocketAddr) -> String {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    };
    format!("http://{}", std::net::SocketAddr::new(ip, listen.port()))
}

/// The peg watcher of this validator: its main-chain RPC client and unlocked federation key.
fn start_watcher(
    peg: consort_peg::Peg,
    main: &crate::config::MainchainConfig,
    signer: &ed25519::PrivateKey,
) -> anyhow::Result<consort_watcher::Watcher> {
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
    // A genesis validator's key is in genesis: a wrong keystore is caught now. A validator
    // that joined later registered its key on chain; the watcher signs only batches of the
    // federations its registered key is in.
    if let Some(genesis_key) = peg.genesis_key(&me)
        && *genesis_key != key.public_key()
    {
        anyhow::bail!(
            "the keystore's key is not this validator's federation key in genesis; check keystore"
        );
    }
    Ok(consort_watcher::Watcher::new(peg, rpc, Some((me, key))))
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
    use crate::observer::alert_event;
    use consort_types::{AccountId, Amount, Call, Tx};

    #[test]
    fn an_api_answers_its_own_hosts_and_only_those_it_is_told_on_every_interface() {
        let names = |hosts: Vec<String>| hosts.join(" ");
        let loopback = "127.0.0.1:8545".parse().expect("address");
        assert_eq!(
            names(api_hosts(loopback, &["Shop.Example:443".into()]).expect("hosts")),
            "127.0.0.1:8545 localhost:8545 shop.example"
        );
        let every = "0.0.0.0:8545".parse().expect("address");
        assert_eq!(
            names(api_hosts(every, &["shop.example".into()]).expect("hosts")),
            "shop.example"
        );
        assert!(api_hosts(every, &[]).expect("hosts").is_empty());
        assert!(api_hosts(loopback, &["https://shop.example".into()]).is_err());
    }

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
