//! `consort devnet`: a whole local consortium on loopback, N validator processes.

use crate::keys;
use crate::process::{free_port, stop};
use anyhow::{Context as _, bail};
use consort_node::NodeConfig;
use consort_types::{Amount, Genesis, GenesisAccount, GenesisValidator};
use serde_json::json;
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// Demo accounts funded at genesis.
pub const DEMO_ACCOUNTS: [&str; 4] = ["alice", "bob", "carol", "dave"];

/// Each demo account's starting balance.
pub const DEMO_BALANCE: u64 = 1_000_000_000;

/// Genesis settings of a new devnet chain that `consort devnet` takes from its command line
/// (absent: the devnet's defaults). A resumed chain keeps its genesis.
#[derive(Clone, Copy, Debug, Default)]
pub struct Settings {
    /// How long an idle leader waits before an empty block (ms).
    pub empty_block_interval_ms: Option<u64>,
    /// How long an unpaid (or unaccepted cash-on-delivery) order waits before it expires (s).
    pub payment_window_s: Option<u64>,
}

/// The shortest payment window the demo shop allows: it confirms a bank transfer a few blocks
/// after placing it, and that order must not have expired by then.
pub const DEMO_PAYMENT_WINDOW_MIN_S: u64 = 30;

impl Settings {
    /// Check the settings against the devnet in `dir`: a resumed chain keeps its genesis (a
    /// setting given for it is said to be ignored), and the demo needs
    /// [`DEMO_PAYMENT_WINDOW_MIN_S`].
    ///
    /// # Errors
    /// If the demo would run with a shorter payment window.
    fn check(self, dir: &Path, demo: bool) -> anyhow::Result<()> {
        if dir.join("genesis.json").exists() {
            if self.empty_block_interval_ms.is_some() || self.payment_window_s.is_some() {
                eprintln!(
                    "note: {} holds a chain already; its genesis settings stay \
                     (--empty-block-interval-ms and --payment-window apply to a new chain)",
                    dir.display()
                );
            }
            return Ok(());
        }
        if let Some(window) = self.payment_window_s
            && demo
            && window < DEMO_PAYMENT_WINDOW_MIN_S
        {
            anyhow::bail!(
                "--payment-window {window}: the demo shop needs at least \
                 {DEMO_PAYMENT_WINDOW_MIN_S} s (its bank transfer is confirmed a few blocks after \
                 it is placed); give more, or --no-demo"
            );
        }
        Ok(())
    }

    /// Amend a new genesis with these settings.
    fn shape(self, genesis: &mut Genesis) {
        if let (Some(window), Some(commerce)) = (self.payment_window_s, &mut genesis.commerce) {
            commerce.payment_window_ms = window.saturating_mul(1_000);
        }
    }
}

/// Create keys, genesis and configs in `dir` unless they exist; return the node config paths.
pub fn prepare(validators: usize, dir: &Path, settings: Settings) -> anyhow::Result<Vec<PathBuf>> {
    settings.check(dir, false)?;
    prepare_with(
        validators,
        dir,
        Vec::new(),
        None,
        settings.empty_block_interval_ms,
        |genesis| settings.shape(genesis),
    )
}

/// The devnet's peg settings: k confirmations, c contest blocks, fee rate.
pub const PEG_CONFIRMATIONS: u32 = 2;
/// Contest blocks of the devnet's peg.
pub const PEG_CONTEST_BLOCKS: u32 = 3;

/// The devnet shop's platform fee, in basis points.
pub const DEVNET_FEE_RATE_BP: u32 = 200;

/// Blocks per epoch on the devnet: short, so validator-set changes take effect within a minute.
pub const DEVNET_EPOCH_BLOCKS: u64 = 60;

/// Write a federation keystore and its passphrase file for one key holder.
fn federation_keystore(dir: &Path, name: &str) -> anyhow::Result<(String, PathBuf, PathBuf)> {
    use consort_mainchain::{KdfParams, Keystore, SigningKey};
    use std::io::Read as _;
    std::fs::create_dir_all(dir)?;
    let key = SigningKey::generate()?;
    let mut secret = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .context("cannot read /dev/urandom")?;
    let passphrase = hex::encode(secret);
    let pass_file = dir.join(format!("{name}.pass"));
    std::fs::write(&pass_file, &passphrase)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&pass_file, std::fs::Permissions::from_mode(0o600))?;
    }
    let keystore = dir.join(format!("{name}.keystore"));
    Keystore::create(&keystore, &key, passphrase.as_bytes(), KdfParams::MINIMUM)?;
    Ok((
        key.public_key().to_string(),
        std::path::absolute(keystore)?,
        std::path::absolute(pass_file)?,
    ))
}

/// The devnet consortium: the demo accounts administer its four founding organisations
/// (alice the platform, bob the shop, carol the bank, dave the regulator); `customers` are
/// registered with the platform.
fn devnet_governance(
    demo: &[GenesisAccount],
    customers: Vec<consort_types::AccountId>,
) -> consort_types::gov::GovernanceConfig {
    use consort_types::gov::{GenesisOrg, GovernanceConfig, Mode, OrgKind};
    let org = |id: &str, kind, admin: usize| GenesisOrg {
        id: id.parse().expect("valid organisation id"),
        kind,
        admins: vec![demo[admin].id],
    };
    GovernanceConfig {
        mode: Mode::Consortium,
        organisations: vec![
            org("platform", OrgKind::Operator, 0),
            org("shop", OrgKind::Seller, 1),
            org("bank", OrgKind::Bank, 2),
            org("regulator", OrgKind::Regulator, 3),
        ],
        registrar: "platform".parse().expect("valid organisation id"),
        vote_period_blocks: 10_000,
        alert_threshold: Some(DEMO_BALANCE / 10),
        customers,
        rotation_delay_blocks: None,
    }
}

/// Take the shop's read model out of node configs (benchmarks measure the chain alone: an
/// indexer in node 0 would share its cores).
pub fn without_shop(configs: &[PathBuf]) -> anyhow::Result<()> {
    for path in configs {
        let mut config = NodeConfig::load(path)?;
        if config.shop_db.take().is_some() {
            std::fs::write(path, serde_json::to_string_pretty(&config)?)?;
        }
    }
    Ok(())
}

/// [`prepare`], funding `extra` accounts in genesis besides the demo accounts (and registering
/// them as customers); `shape` amends the genesis before it is checked and written (a
/// benchmark adds organisations and accounts).
pub fn prepare_with(
    validators: usize,
    dir: &Path,
    extra: Vec<GenesisAccount>,
    main: Option<&crate::mainchain::DevChain>,
    empty_block_interval_ms: Option<u64>,
    shape: impl FnOnce(&mut Genesis),
) -> anyhow::Result<Vec<PathBuf>> {
    let genesis_path = dir.join("genesis.json");
    if genesis_path.exists() {
        let genesis = Genesis::from_json(&std::fs::read_to_string(&genesis_path)?)?;
        if genesis.validators.len() != validators {
            eprintln!(
                "note: {} already holds a chain with {} validators; resuming it (use another --dir for a new chain)",
                dir.display(),
                genesis.validators.len()
            );
        }
        return Ok((0..genesis.validators.len())
            .map(|i| dir.join(format!("validators/{i}/config.json")))
            .collect());
    }
    if validators == 0 {
        bail!("--validators must be at least 1");
    }
    std::fs::create_dir_all(dir)?;
    let mut genesis_validators = Vec::new();
    let mut configs = Vec::new();
    let mut federation_keys = Vec::new();
    for i in 0..validators {
        let vdir = dir.join(format!("validators/{i}"));
        let key_file = vdir.join("key");
        let public_key = keys::new_key_file(&key_file)?;
        let p2p: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let api: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        genesis_validators.push(GenesisValidator {
            public_key,
            p2p_address: p2p.to_string(),
        });
        let mainchain = match main {
            Some(chain) => {
                let (public, keystore, passphrase_file) = federation_keystore(&vdir, "federation")?;
                federation_keys.push(public);
                Some(consort_node::config::MainchainConfig {
                    rpc_url: chain.rpc_url.clone(),
                    rpc_cookie: Some(chain.cookie.clone()),
                    rpc_user: None,
                    rpc_password: None,
                    keystore,
                    passphrase_file,
                })
            }
            None => None,
        };
        let config = NodeConfig {
            genesis: std::path::absolute(&genesis_path)?,
            key_file: std::path::absolute(&key_file)?,
            data_dir: std::path::absolute(vdir.join("data"))?,
            p2p_listen: p2p,
            api_listen: api,
            api_public_hosts: Vec::new(),
            mainchain,
            // Node 0 keeps the shop's read model and serves the shop API.
            shop_db: (i == 0)
                .then(|| std::path::absolute(vdir.join("shop/shop.sqlite")))
                .transpose()?,
            page_cache_mib: None,
        };
        let path = vdir.join("config.json");
        std::fs::write(&path, serde_json::to_string_pretty(&config)?)?;
        configs.push(path);
    }
    let mut accounts = Vec::new();
    let customers: Vec<_> = extra.iter().map(|a| a.id).collect();
    for name in DEMO_ACCOUNTS {
        let id = keys::new_key_file(&dir.join(format!("accounts/{name}.key")))?;
        accounts.push(GenesisAccount {
            id,
            balance: Amount::new(DEMO_BALANCE),
        });
    }
    let governance = devnet_governance(&accounts, customers);
    let operator = accounts[0].id;
    accounts.extend(extra);
    let mut genesis = Genesis {
        chain_id: 1,
        genesis_time_ms: u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?,
        validators: genesis_validators,
        accounts,
        governance: Some(governance),
        epoch_blocks: Some(DEVNET_EPOCH_BLOCKS),
        empty_block_interval_ms,
        account_limits: Some(consort_types::AccountLimits {
            txs_per_block: u32::try_from(consort_types::limits::BLOCK_TXS_MAX)?,
            tx_size_max: u32::try_from(consort_types::limits::TX_SIZE_MAX)?,
            pending_max: u32::try_from(consort_types::limits::NONCE_WINDOW_MAX)?,
        }),
        peg: match main {
            Some(_) => {
                let mut recovery_keys = Vec::new();
                for i in 0..3 {
                    let (public, _, _) =
                        federation_keystore(&dir.join("recovery"), &format!("recovery-{i}"))?;
                    recovery_keys.push(public);
                }
                Some(consort_types::peg::PegConfig {
                    network: "litecoin-regtest".into(),
                    asset: "LTC".parse().expect("valid asset code"),
                    federation_keys,
                    recovery_keys,
                    recovery_threshold: 2,
                    recovery_delay_blocks: 1_000,
                    confirmations: PEG_CONFIRMATIONS,
                    large_deposit_sat: 0,
                    large_confirmations: 0,
                    contest_blocks: PEG_CONTEST_BLOCKS,
                    fee_rate_sat_per_vb: 10,
                    // A day of Litecoin blocks: deposits sent to an address just before the
                    // validators change are still credited.
                    federation_grace_blocks: 576,
                    checkpoint: None,
                })
            }
            None => None,
        },
        // The shop: a 2% platform fee to the operator's demo account, 30 minutes to pay,
        // 7 days after delivery to confirm receipt, 7 days for each step of after-sales.
        commerce: Some(consort_types::commerce::CommerceConfig {
            fee_rate_bp: DEVNET_FEE_RATE_BP,
            fee_account: operator,
            payment_window_ms: 30 * 60 * 1_000,
            receipt_window_ms: 7 * 24 * 60 * 60 * 1_000,
            after_sale_window_ms: consort_types::commerce::AFTER_SALE_WINDOW_MS_DEFAULT,
        }),
    };
    shape(&mut genesis);
    genesis.check()?;
    std::fs::write(&genesis_path, serde_json::to_string_pretty(&genesis)?)?;
    Ok(configs)
}

/// Start the node processes of `configs`, logging to `dir/logs`.
pub fn spawn(dir: &Path, configs: &[PathBuf]) -> anyhow::Result<Vec<Child>> {
    let exe = std::env::current_exe()?;
    std::fs::create_dir_all(dir.join("logs"))?;
    let mut children = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let log = std::fs::File::create(dir.join(format!("logs/node-{i}.log")))?;
        let child = Command::new(&exe)
            .arg("node")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start node {i}"))?;
        children.push(child);
    }
    Ok(children)
}

/// Wait until every node answers `/v1/status`; return their API URLs. On failure every child
/// is stopped.
pub fn wait_until_up(
    configs: &[PathBuf],
    children: &mut [Child],
    dir: &Path,
) -> anyhow::Result<Vec<String>> {
    let urls = api_urls(configs)?;
    wait_for_nodes(&urls, children, dir, &AtomicBool::new(false))?;
    Ok(urls)
}

fn api_urls(configs: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    configs
        .iter()
        .map(|c| Ok(format!("http://{}", NodeConfig::load(c)?.api_listen)))
        .collect()
}

fn wait_for_nodes(
    urls: &[String],
    children: &mut [Child],
    dir: &Path,
    stop_flag: &AtomicBool,
) -> anyhow::Result<()> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let start = Instant::now();
    for (i, url) in urls.iter().enumerate() {
        loop {
            if client
                .get(format!("{url}/v1/status"))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                eprintln!(
                    "  node {i} up at {url} ({:.1}s)",
                    start.elapsed().as_secs_f64()
                );
                break;
            }
            if let Ok(Some(status)) = children[i].try_wait() {
                stop(children);
                bail!(
                    "node {i} exited ({status}); see {}/logs/node-{i}.log",
                    dir.display()
                );
            }
            if start.elapsed() > Duration::from_secs(60) || stop_flag.load(Ordering::SeqCst) {
                stop(children);
                bail!(
                    "node {i} did not answer within 60 s; see {}/logs/node-{i}.log",
                    dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// Run the devnet until Ctrl-C.
pub fn run(validators: usize, dir: &Path, settings: Settings, demo: bool) -> anyhow::Result<()> {
    settings.check(dir, demo)?;
    let fresh = !dir.join("genesis.json").exists();
    let resumed_with_peg = dir.join("litecoind").exists();
    let main = match crate::mainchain::find() {
        Some(binary) if fresh || resumed_with_peg => {
            eprintln!(
                "starting litecoind -regtest (datadir {}/litecoind)...",
                dir.display()
            );
            Some(Arc::new(crate::mainchain::DevChain::start(&binary, dir)?))
        }
        _ => None,
    };
    let configs = prepare_with(
        validators,
        dir,
        Vec::new(),
        main.as_deref(),
        settings.empty_block_interval_ms,
        |genesis| settings.shape(genesis),
    )?;
    let urls = api_urls(&configs)?;
    std::fs::write(
        dir.join("devnet.json"),
        serde_json::to_string_pretty(&json!({
            "nodes": urls.iter().enumerate().map(|(i, u)| json!({"index": i, "api": u})).collect::<Vec<_>>(),
            "genesis": std::path::absolute(dir.join("genesis.json"))?,
            "accounts_dir": std::path::absolute(dir.join("accounts"))?,
        }))?,
    )?;
    let stop_flag = Arc::new(AtomicBool::new(false));
    {
        let flag = stop_flag.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("cannot install the Ctrl-C handler")?;
    }
    let mut children = spawn(dir, &configs)?;
    eprintln!(
        "starting {} validators (logs in {}/logs)...",
        children.len(),
        dir.display()
    );
    wait_for_nodes(&urls, &mut children, dir, &stop_flag)?;
    let shop = if demo {
        match crate::demo::seed(dir, &urls[0]) {
            Ok(shop) => Some(shop),
            Err(error) => {
                eprintln!("warning: the demo shop could not be set up: {error:#}");
                None
            }
        }
    } else {
        None
    };
    println!("Consort devnet is running ({} validators).", urls.len());
    for (i, url) in urls.iter().enumerate() {
        println!("  node {i}: {url}");
    }
    println!("Demo accounts (keys in {}/accounts):", dir.display());
    for name in DEMO_ACCOUNTS {
        let key = consort_node::node::load_key(&dir.join(format!("accounts/{name}.key")))?;
        println!("  {name}: {}", keys::account_of(&key));
    }
    let miner = match &main {
        Some(chain) => {
            println!(
                "Main-chain peg: on. litecoind -regtest RPC at {} (cookie {}), a block every {} s; \
                 deposits are claimed after {} confirmations and spendable {} blocks later.",
                chain.rpc_url,
                chain.cookie.display(),
                crate::mainchain::BLOCK_INTERVAL.as_secs(),
                PEG_CONFIRMATIONS,
                PEG_CONTEST_BLOCKS
            );
            println!(
                "  deposit: consort peg address --node {} <account id>, then pay it from any wallet",
                urls[0]
            );
            Some(chain.mine_until(stop_flag.clone()))
        }
        None => {
            println!(
                "Main-chain peg: off. Install Litecoin Core (`apt-get install litecoind`) and start \
                 a new devnet (another --dir) to run the two-way peg."
            );
            None
        }
    };
    println!(
        "Try: consort transfer --node {} --key {}/accounts/alice.key --to <bob's id> --amount 5",
        urls[0],
        dir.display()
    );
    match shop {
        Some(shop) => {
            println!(
                "Shop: {} products from three sellers, customers with orders in every state. \
                 Node 0 serves the shop API ({}/v1/shop/search?q=耳机). Try:",
                shop.products, urls[0]
            );
            println!(
                "  export CONSORT_NODE={} CONSORT_REGULATOR={}",
                urls[0], shop.regulator
            );
            println!("  export CONSORT_KEY={}", shop.customer_key.display());
            println!("  consort shop search 蓝牙耳机 --in-stock");
            println!("  consort shop orders; consort shop track <order>");
            println!("  consort shop cart add <product>; consort shop checkout --address '...'");
            let genesis = Genesis::from_json(&std::fs::read_to_string(dir.join("genesis.json"))?)?;
            if let Some(commerce) = genesis.commerce {
                println!(
                    "An unpaid order and an unaccepted cash-on-delivery one expire {} s after \
                     they were placed, and their stock comes back (--payment-window of a new chain).",
                    commerce.payment_window_ms / 1_000
                );
            }
        }
        None => println!(
            "Shop: node 0 serves the shop API ({}/v1/shop/search?q=耳机); `consort shop demo \
             --dir {}` fills it with a demo shop.",
            urls[0],
            dir.display()
        ),
    }
    println!("Press Ctrl-C to stop.");
    while !stop_flag.load(Ordering::SeqCst) {
        for (i, child) in children.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                eprintln!(
                    "node {i} exited ({status}); see {}/logs/node-{i}.log",
                    dir.display()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("stopping...");
    stop(&mut children);
    if let Some(miner) = miner {
        let _ = miner.join();
    }
    drop(main);
    eprintln!("stopped; run the same command to resume the chain");
    Ok(())
}
