//! The `consort` command: run a node or a local devnet, manage keys, send transfers, read
//! accounts and blocks.

mod audit;
mod bench;
mod client;
mod demo;
mod devnet;
mod gov;
mod indexer;
mod keys;
mod mainchain;
mod peg;
mod private;
mod process;
mod shop;
mod validators;
mod verify;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Consort: a consortium blockchain for B2C commerce, a side chain of a Bitcoin-family chain.
#[derive(Parser)]
#[command(
    name = "consort",
    version,
    about,
    long_about = None,
    after_help = "Logs go to standard error: info for Consort, warn for the commonware libraries. \
                  Set RUST_LOG to change that, e.g. RUST_LOG=info,consort_chain=debug."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node from a config file (written by `consort devnet`, or by hand).
    Node {
        /// The node's JSON config: genesis, key_file, data_dir, p2p_listen, api_listen; optional
        /// api_public_hosts, mainchain, shop_db and page_cache_mib (MiB of storage cache, 32 to
        /// 65536, allocated at start; 32 if not named).
        #[arg(long)]
        config: PathBuf,
    },
    /// Start a whole local consortium: N validator processes on loopback with funded demo
    /// accounts. Re-running with the same --dir resumes the chain. Ctrl-C stops everything.
    Devnet {
        /// Number of validators (tolerates ⌊(N−1)/3⌋ faulty).
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Where keys, genesis, configs, data and logs live.
        #[arg(long, default_value = "devnet")]
        dir: PathBuf,
        /// Only write keys, genesis and node configs, then exit (to start nodes yourself).
        #[arg(long)]
        init_only: bool,
        /// How long an idle leader waits before an empty block, in ms (genesis setting of a
        /// new chain; default 5000). Blocks with transactions are built at once.
        #[arg(long)]
        empty_block_interval_ms: Option<u64>,
        /// How long an unpaid order (or a cash-on-delivery order its seller has not accepted)
        /// waits before it expires and its stock comes back, in seconds (genesis setting of a
        /// new chain; default 1800). The demo shop's unpaid orders expire after it.
        #[arg(long)]
        payment_window: Option<u64>,
        /// Do not put the demo shop on a new chain (organisations admitted by vote, 210
        /// products, customers, orders in every state, reviews).
        #[arg(long)]
        no_demo: bool,
    },
    /// Benchmarks (run them on a release build).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Send a transfer and wait until it is finalized.
    Transfer {
        /// A node's API URL (see DIR/devnet.json).
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
        /// File with the sender's private key (hex).
        #[arg(long)]
        key: PathBuf,
        /// Recipient account id (hex public key).
        #[arg(long)]
        to: String,
        /// Amount in base units.
        #[arg(long)]
        amount: u64,
        /// Nonce to use (default: the account's next nonce).
        #[arg(long)]
        nonce: Option<u64>,
        /// Return once the node accepts it, without waiting for finality.
        #[arg(long)]
        no_wait: bool,
    },
    /// Accounts: `consort account ID` shows balance, nonce and state proof; subcommands
    /// register, revoke, self-register and rotate keys.
    #[command(args_conflicts_with_subcommands = true)]
    Account {
        #[command(subcommand)]
        command: Option<gov::AccountCommand>,
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
        /// Account id (hex public key).
        id: Option<String>,
    },
    /// Member organisations: list, show, propose admitting or removing one.
    Org {
        #[command(subcommand)]
        command: gov::OrgCommand,
    },
    /// Proposals and votes.
    Gov {
        #[command(subcommand)]
        command: gov::GovCommand,
    },
    /// The regulator: freeze and unfreeze, alerts, e-money totals.
    Reg {
        #[command(subcommand)]
        command: gov::RegCommand,
    },
    /// Bank e-money: issue, redeem, reserve reports, supply.
    Bank {
        #[command(subcommand)]
        command: gov::BankCommand,
    },
    /// Show a finalized block.
    Block {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
        /// Block height.
        height: u64,
    },
    /// Light client: fetch an account's balance, nonce and state proof plus the block header
    /// and finalization certificate it is proven under, and check them against the validators
    /// in your genesis file, trusting nothing the node says. Exits non-zero if anything fails.
    ///
    /// With `--order ID --key FILE`, prove an order's state (status, payment, amounts, lines,
    /// history) to one of its parties; with `--review ORDER:LINE`, prove a review's head and
    /// its text (the transaction carrying it, by its inclusion in its finalized block).
    #[command(verbatim_doc_comment)]
    Verify {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
        /// The chain's genesis document (your trust root; e.g. DIR/genesis.json of a devnet).
        #[arg(long)]
        genesis: PathBuf,
        /// Account id (hex public key).
        #[arg(required_unless_present_any = ["order", "review"])]
        id: Option<String>,
        /// An order id (HEIGHT-INDEX) to prove instead; needs --key of a party to it.
        #[arg(long, requires = "key", conflicts_with_all = ["id", "review"])]
        order: Option<String>,
        /// The key file to sign the order read with (the buyer, a seller or carrier account of
        /// the order, its bank, or a regulator).
        #[arg(long)]
        key: Option<PathBuf>,
        /// A review to prove instead: ORDER:LINE (e.g. 1520-3:0).
        #[arg(long, conflicts_with_all = ["id", "order"])]
        review: Option<String>,
    },
    /// Supervision: export every finalized transaction of a height range.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The two-way peg with the main chain: deposit addresses, peg-outs, status, audit.
    Peg {
        #[command(subcommand)]
        command: peg::PegCommand,
    },
    /// Private fields sealed to their recipients: sealing keys, put, signed get.
    Private {
        #[command(subcommand)]
        command: private::PrivateCommand,
    },
    /// Validator nodes: the current committee, and adding, removing or leaving by governance.
    Validators {
        #[command(subcommand)]
        command: validators::ValidatorsCommand,
    },
    /// Follow a node's finalized blocks into the shop's read model, a SQLite file:
    /// products with every version, variants' price and stock, orders with their lines and
    /// timeline, shipments and carriers' events, reviews, sellers, payouts. Each block is
    /// applied in one SQLite transaction with the cursor: stop it (Ctrl-C, or a kill) at any
    /// point and run it again to go on. A read model written by another version of consort
    /// is rebuilt from genesis on its own. Follow a node that executed the chain from genesis
    /// (one that joined by state sync lacks the earlier blocks' shop changes).
    ///
    /// Examples:
    ///   consort indexer --db shop.sqlite                  follow the local devnet's tip
    ///   consort indexer --db shop.sqlite --until 500      index blocks up to 500, then exit
    ///   consort indexer --db shop.sqlite --rebuild        start again from genesis
    ///   consort indexer --db shop.sqlite --dump           print every row, in key order
    ///   consort indexer --db shop.sqlite --listen 127.0.0.1:28100   and serve /v1/shop/...
    Indexer {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
        /// The index's SQLite file (created if missing).
        #[arg(long)]
        db: PathBuf,
        /// Stop once this block is indexed (default: follow the tip until stopped).
        #[arg(long)]
        until: Option<u64>,
        /// Delete the index first and build it again from genesis.
        #[arg(long)]
        rebuild: bool,
        /// Print the index's content (every row of every table, in key order) and exit.
        #[arg(long, conflicts_with_all = ["rebuild", "until", "listen"])]
        dump: bool,
        /// Also serve the shop API (search, products, compare, status; signed order views,
        /// update streams and carts) on this address, e.g. 127.0.0.1:28100.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// A host clients name to reach the shop API (`shop.example.com`), as sent in `Host`;
        /// repeat for more. Signed requests name the host they are for and the API answers
        /// only its own: its --listen address (and localhost on loopback) and these; listening
        /// on 0.0.0.0, only these (name 127.0.0.1:PORT too for local clients), or any host if
        /// none is named. A proxy in front must pass Host on unchanged.
        #[arg(long = "public-host", value_name = "HOST", requires = "listen")]
        public_hosts: Vec<String>,
    },
    /// The marketplace: search, compare, cart, checkout, orders and their tracking, reviews;
    /// sellers' publishing, stock, order handling and shipping; carriers' events; banks'
    /// payment confirmations. `consort shop --help` shows a whole shop's day.
    Shop {
        #[command(flatten)]
        at: shop::Endpoints,
        #[command(subcommand)]
        command: shop::ShopCommand,
    },
    /// Show a node's view of the chain.
    Status {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Start a fresh devnet, drive signed transfers from many accounts through every node, and
    /// report sustained finalized transactions per second and finality latency (p50, p99), next
    /// to this machine's single-core ed25519 verification rate measured in the same run.
    ///
    /// Build with `--release`: a debug build measures the debug build.
    Transfers {
        /// Validator processes.
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Measured seconds (after the warm-up).
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Warm-up seconds, not measured.
        #[arg(long, default_value_t = 3)]
        warmup: u64,
        /// Funded sender accounts (transactions rotate over them).
        #[arg(long, default_value_t = 4096)]
        accounts: usize,
        /// Transactions per POST /v1/txs/batch.
        #[arg(long, default_value_t = 512)]
        batch: usize,
        /// Most submitted-but-unfinalized transactions at once. The load is a closed loop, so
        /// by Little's law the latency is about inflight / throughput: a queue longer than a
        /// block only adds waiting, not throughput. The default, one full block
        /// (BLOCK_TXS_MAX = 8192), keeps the leader's next block full while measuring finality
        /// rather than queueing; raise it to find the saturation throughput.
        #[arg(long, default_value_t = 8192)]
        inflight: usize,
        /// Keep the devnet in this (new) directory instead of a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Start a fresh devnet with a shop (sellers, a carrier organisation, buyers holding a
    /// bank's e-money) and drive whole orders through it: place and pay, accept (many per
    /// transaction), ship with sealed labels (many per transaction), carrier events (many per transaction), confirm
    /// receipt, which settles escrow to the seller less the platform fee. Each step is sent
    /// once the previous one is final. Reports settled orders per second, the latency from
    /// placing to settled (p50, p99, and per step), shop transactions, QMDB operations and
    /// processor time per order (the validators' and the driver's, with the cores each kept
    /// busy: steadier than orders per second on a shared machine), and checks that the sellers
    /// received what the settled orders owe them. Plain transfers are measured first on the
    /// same devnet, for comparison.
    ///
    /// Build with `--release`: a debug build measures the debug build.
    Orders {
        /// Validator processes.
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Measured seconds (after the warm-up), for the transfers and then the orders.
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Warm-up seconds, not measured.
        #[arg(long, default_value_t = 3)]
        warmup: u64,
        /// Buyer accounts (registered customers funded with e-money).
        #[arg(long, default_value_t = 4096)]
        buyers: usize,
        /// Seller accounts, one product each.
        #[arg(long, default_value_t = 16)]
        sellers: usize,
        /// Carrier accounts of the carrier organisation.
        #[arg(long, default_value_t = 4)]
        carriers: usize,
        /// Most orders open (placed, not yet settled) at once. Closed loop: by Little's law
        /// settled orders per second ≈ inflight / latency. More fills blocks (up to
        /// BLOCK_TXS_MAX) and lengthens each step without settling more.
        #[arg(long, default_value_t = 4096)]
        inflight: usize,
        /// Transactions per POST /v1/txs/batch.
        #[arg(long, default_value_t = 512)]
        batch: usize,
        /// Skip the transfers measured first.
        #[arg(long)]
        no_transfers: bool,
        /// Keep the devnet in this (new) directory instead of a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Catalogue search through the shop API (HTTP `/v1/shop/search`) on a catalogue of
    /// --products, with node 0's indexer following a chain under the orders benchmark at the
    /// same time: queries per second and latency, with the settled orders per second of the
    /// same window. Run it on a release build.
    Search {
        /// Products in the catalogue.
        #[arg(long, default_value_t = 10_000)]
        products: usize,
        /// Query threads (closed loop: each sends its next query when the last is answered).
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Offered queries per second, shared by the --clients threads (open loop: each query
        /// is sent at its scheduled time, and its latency counts from that time, so a slow
        /// answer delays the ones behind it in the count too). 0: as fast as answered.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Validator processes.
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Measured seconds (after the warm-up).
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Warm-up seconds, not measured.
        #[arg(long, default_value_t = 3)]
        warmup: u64,
        /// Most orders open at once (the chain's load beside the queries).
        #[arg(long, default_value_t = 4096)]
        inflight: usize,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Every finalized transaction of blocks FROM..=TO (sender, kind, recipient, asset,
    /// amount, the whole call), as CSV or JSON, for the regulator's records.
    Export {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
        /// First block height.
        #[arg(long)]
        from: u64,
        /// Last block height.
        #[arg(long)]
        to: u64,
        /// csv or json.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a new ed25519 key, write it to a file (mode 0600) and print the account id.
    New {
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the account id of a key file.
    Show {
        /// The key file.
        key: PathBuf,
    },
}

/// Turn transparent huge pages off for this process. A node frees most of what a block
/// allocated (its chunk maps, the database batch) before the next block, and the allocator
/// gives idle pages back to the system; with huge pages every page it touches again costs the
/// kernel 2 MiB of zeroing, a tenth of a busy validator's time. With 4 KiB pages only what is
/// written is zeroed. Nothing breaks if the kernel refuses: the node just runs slower.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = nix::sys::prctl::set_thp_disable(true) {
        tracing::debug!(%error, "cannot turn transparent huge pages off");
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,commonware=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Node { config } => {
            no_huge_pages();
            let config = consort_node::NodeConfig::load(&config)?;
            consort_node::run(config)
        }
        Command::Devnet {
            validators,
            dir,
            init_only,
            empty_block_interval_ms,
            payment_window,
            no_demo,
        } => {
            let settings = devnet::Settings {
                empty_block_interval_ms,
                payment_window_s: payment_window,
            };
            if init_only {
                for config in devnet::prepare(validators, &dir, settings)? {
                    println!("{}", config.display());
                }
                Ok(())
            } else {
                devnet::run(validators, &dir, settings, !no_demo)
            }
        }
        Command::Bench {
            command:
                BenchCommand::Transfers {
                    validators,
                    duration,
                    warmup,
                    accounts,
                    batch,
                    inflight,
                    dir,
                    json,
                },
        } => {
            let report = bench::transfers(&bench::Options {
                validators,
                duration,
                warmup,
                accounts,
                batch,
                inflight,
                dir,
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                bench::print(&report);
            }
            Ok(())
        }
        Command::Bench {
            command:
                BenchCommand::Orders {
                    validators,
                    duration,
                    warmup,
                    buyers,
                    sellers,
                    carriers,
                    inflight,
                    batch,
                    no_transfers,
                    dir,
                    json,
                },
        } => {
            let report = bench::orders::run(&bench::orders::Options {
                validators,
                duration,
                warmup,
                buyers,
                sellers,
                carriers,
                inflight,
                batch,
                skip_transfers: no_transfers,
                dir,
                search: None,
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                bench::orders::print(&report);
            }
            Ok(())
        }
        Command::Bench {
            command:
                BenchCommand::Search {
                    products,
                    clients,
                    rate,
                    validators,
                    duration,
                    warmup,
                    inflight,
                    json,
                },
        } => {
            if products == 0 || clients == 0 {
                anyhow::bail!("--products and --clients must be > 0");
            }
            let report = bench::orders::run(&bench::orders::Options {
                validators,
                duration,
                warmup,
                buyers: 4096,
                sellers: 16,
                carriers: 4,
                inflight,
                batch: 512,
                skip_transfers: true,
                dir: None,
                search: Some(bench::search::Load {
                    products,
                    clients,
                    rate,
                }),
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                bench::orders::print(&report);
            }
            Ok(())
        }
        Command::Keys { command } => match command {
            KeysCommand::New { out } => {
                let id = keys::new_key_file(&out)?;
                println!("{id}");
                Ok(())
            }
            KeysCommand::Show { key } => {
                println!("{}", keys::account_of(&consort_node::node::load_key(&key)?));
                Ok(())
            }
        },
        Command::Transfer {
            node,
            key,
            to,
            amount,
            nonce,
            no_wait,
        } => {
            let key = consort_node::node::load_key(&key)?;
            let to = to.parse().context("--to must be a hex account id")?;
            let client = client::Client::new(&node);
            let hash = client.transfer(&key, to, amount, nonce)?;
            println!("submitted {hash}");
            if !no_wait {
                let status = client.wait_finalized(&hash, std::time::Duration::from_secs(30))?;
                println!("{}", serde_json::to_string_pretty(&status)?);
            }
            Ok(())
        }
        Command::Account {
            command: Some(command),
            ..
        } => gov::run_account(command),
        Command::Account {
            command: None,
            node,
            id,
        } => {
            let id = id.context("give an account id, or a subcommand (see --help)")?;
            let value = client::Client::new(&node).get(&format!("/v1/accounts/{id}"))?;
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(())
        }
        Command::Org { command } => gov::run_org(command),
        Command::Gov { command } => gov::run_gov(command),
        Command::Reg { command } => gov::run_reg(command),
        Command::Bank { command } => gov::run_bank(command),
        Command::Block { node, height } => {
            let value = client::Client::new(&node).get(&format!("/v1/blocks/{height}"))?;
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(())
        }
        Command::Verify {
            node,
            genesis,
            id,
            order,
            key,
            review,
        } => {
            let genesis = consort_types::Genesis::from_json(
                &std::fs::read_to_string(&genesis)
                    .with_context(|| format!("cannot read {}", genesis.display()))?,
            )?;
            let client = client::Client::new(&node);
            if let Some(order) = order {
                let key = consort_node::node::load_key(&key.context("--order needs --key")?)?;
                let (proven, found) = verify::order(&client, &genesis, &order, &key)?;
                println!(
                    "verified: order {order} is {} (payment {:?}), total {} {}, escrow {}, paid {}, refunded {}, settled {} (fee {}), {} changes (history {}), in finalized block {} (height {}), signed by {} of {} validators",
                    found.status.name(),
                    found.payment,
                    found.total,
                    found.currency,
                    found.escrow,
                    found.paid,
                    found.refunded,
                    found.settled,
                    found.fee,
                    found.changes,
                    hex::encode(found.history),
                    proven.block,
                    proven.header.height.get(),
                    proven.signers,
                    genesis.validators.len()
                );
                return Ok(());
            }
            if let Some(review) = review {
                let (order, line) = review
                    .split_once(':')
                    .context("--review takes ORDER:LINE, e.g. 1520-3:0")?;
                let line: u8 = line.parse().context("the line is a number from 0")?;
                let proven = verify::review(&client, &genesis, order, line)?;
                println!(
                    "verified: review of order {order} line {line}, version {}, rating {}/5 by {}: {:?} ({} photos), text in transaction {}, head in finalized block {} (height {}), signed by {} of {} validators",
                    proven.head.version,
                    proven.head.rating,
                    proven.head.author,
                    proven.content.text.as_str(),
                    proven.content.photos.0.len(),
                    proven.head.content_at,
                    proven.record.block,
                    proven.record.header.height.get(),
                    proven.record.signers,
                    genesis.validators.len()
                );
                return Ok(());
            }
            let id = id.context("give an account id, --order or --review")?;
            let verified = verify::account(&client, &genesis, &id)?;
            println!(
                "verified: account {id} has balance {} and nonce {} in finalized block {} (height {}, state root {}), signed by {} of {} validators",
                verified.account.balance.units(),
                verified.account.nonce,
                verified.block,
                verified.height,
                verified.state_root,
                verified.signers,
                genesis.validators.len()
            );
            Ok(())
        }
        Command::Peg { command } => peg::run(command),
        Command::Validators { command } => validators::run(command),
        Command::Private { command } => private::run(command),
        Command::Audit {
            command:
                AuditCommand::Export {
                    node,
                    from,
                    to,
                    format,
                    out,
                },
        } => {
            let client = client::Client::new(&node);
            let count = match out {
                Some(path) => {
                    let mut file = std::fs::File::create(&path)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    audit::export(&client, from, to, &format, &mut file)?
                }
                None => audit::export(&client, from, to, &format, &mut std::io::stdout().lock())?,
            };
            eprintln!("exported {count} transactions of blocks {from}..={to}");
            Ok(())
        }
        Command::Indexer {
            node,
            db,
            until,
            rebuild,
            dump,
            listen,
            public_hosts,
        } => indexer::run(&node, &db, until, rebuild, dump, (listen, public_hosts)),
        Command::Shop { at, command } => shop::run(&at, command),
        Command::Status { node } => {
            let value = client::Client::new(&node).get("/v1/status")?;
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(())
        }
    }
}
