//! Governance from the command line: `consort org …`, `consort gov …`, `consort account …`
//! (registration and keys), `consort reg …` (the regulator) and `consort bank …` (e-money).
//!
//! Every write signs one transaction with `--key`, submits it and waits until it is final, then
//! says what changed and what to do next.

use crate::client::Client;
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use consort_types::{
    AccountId, Amount, Asset, Call,
    gov::{Action, FreezeTarget, OrgId, OrgKind, role},
};
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

/// The node and the signing key of a write.
#[derive(Args)]
pub struct Signer {
    /// A node's API URL.
    #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
    pub node: String,
    /// File with the signing account's private key (hex).
    #[arg(long)]
    pub key: PathBuf,
}

/// A node to read from.
#[derive(Args)]
pub struct Reader {
    /// A node's API URL.
    #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
    pub node: String,
}

/// Sign `call` with the key in `key`, submit it through `node` and wait until it is final.
pub fn send(node: &str, key: &Path, call: Call) -> anyhow::Result<String> {
    let key = consort_node::node::load_key(key)?;
    let client = Client::new(node);
    let hash = client.submit(&key, call, None)?;
    client.wait_finalized(&hash, Duration::from_secs(30))?;
    Ok(hash)
}

fn account(text: &str, what: &str) -> anyhow::Result<AccountId> {
    text.parse()
        .map_err(|e| anyhow::anyhow!("{what} is not a hex ed25519 public key: {e}"))
}

fn org(text: &str) -> anyhow::Result<OrgId> {
    text.parse().map_err(|e| anyhow::anyhow!("{e}"))
}

fn asset(text: &str) -> anyhow::Result<Asset> {
    text.parse().map_err(|e| anyhow::anyhow!("{e}"))
}

fn pretty(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

const ORG_HELP: &str = "\
Examples:
  consort org list
  consort org propose-admit --key platform-admin.key --org acme-shop --kind seller --admin <hex key>
  consort gov vote 0 --yes --key bank-admin.key       # more than 2/3 of members must approve
  consort org propose-remove --key platform-admin.key --org acme-shop";

/// `consort org`.
#[derive(Subcommand)]
#[command(after_help = ORG_HELP)]
pub enum OrgCommand {
    /// Member organisations, the mode, the registrar.
    List(Reader),
    /// One organisation: kind, membership, admission height, freeze.
    Show {
        #[command(flatten)]
        reader: Reader,
        /// Its id.
        id: String,
    },
    /// Propose admitting an organisation with its first admin (an admin's key).
    ProposeAdmit {
        #[command(flatten)]
        signer: Signer,
        /// The new organisation's id (1 to 16 of a-z, 0-9, -).
        #[arg(long)]
        org: String,
        /// operator, seller, bank, logistics or regulator.
        #[arg(long)]
        kind: String,
        /// Its first admin account (hex public key).
        #[arg(long)]
        admin: String,
    },
    /// Propose removing an organisation: its accounts can no longer act.
    ProposeRemove {
        #[command(flatten)]
        signer: Signer,
        /// The organisation.
        #[arg(long)]
        org: String,
    },
}

/// Run `consort org`.
pub fn run_org(command: OrgCommand) -> anyhow::Result<()> {
    match command {
        OrgCommand::List(reader) => {
            let gov = Client::new(&reader.node).get("/v1/gov")?;
            println!(
                "mode {}, registrar {}, {} open proposals",
                gov["mode"], gov["registrar"], gov["open_proposals"]
            );
            for member in gov["members"].as_array().into_iter().flatten() {
                println!(
                    "  {:<16} {:<10} admitted at {}",
                    member["id"].as_str().unwrap_or("?"),
                    member["kind"].as_str().unwrap_or("?"),
                    member["admitted_at"]
                );
            }
            Ok(())
        }
        OrgCommand::Show { reader, id } => {
            pretty(&Client::new(&reader.node).get(&format!("/v1/gov/orgs/{}", org(&id)?))?)
        }
        OrgCommand::ProposeAdmit {
            signer,
            org: id,
            kind,
            admin,
        } => {
            let kind: OrgKind =
                serde_json::from_value(Value::String(kind.clone())).map_err(|_| {
                    anyhow::anyhow!(
                        "--kind {kind}: expected operator, seller, bank, logistics or regulator"
                    )
                })?;
            let action = Action::AdmitOrg {
                org: org(&id)?,
                kind,
                admin: account(&admin, "--admin")?,
            };
            propose(&signer, action)
        }
        OrgCommand::ProposeRemove { signer, org: id } => {
            propose(&signer, Action::RemoveOrg { org: org(&id)? })
        }
    }
}

/// Submit a proposal and say how the others vote on it.
pub fn propose(signer: &Signer, action: Action) -> anyhow::Result<()> {
    let hash = send(&signer.node, &signer.key, Call::Propose { action })?;
    let gov = Client::new(&signer.node).get("/v1/gov")?;
    let id = gov["next_proposal"]
        .as_u64()
        .context("governance overview has no next_proposal")?
        .saturating_sub(1);
    let proposal = Client::new(&signer.node).get(&format!("/v1/gov/proposals/{id}"))?;
    println!(
        "proposal {id} is {} ({hash}); your organisation voted for it",
        proposal["status"].as_str().unwrap_or("?")
    );
    if proposal["status"] == "open" {
        println!("other organisations vote with: consort gov vote {id} --yes --key ADMIN.key");
    }
    Ok(())
}

const GOV_HELP: &str = "\
Examples:
  consort gov proposals
  consort gov show 3
  consort gov vote 3 --yes --key shop-admin.key
  consort gov vote 3 --no --key bank-admin.key
  consort gov propose-halt --key platform-admin.key     # the emergency brake
  consort gov propose-resume --key platform-admin.key

While the chain is halted every transaction but proposals, votes and the regulator's
freezes is refused (chain_halted); blocks keep being finalized.";

/// `consort gov`.
#[derive(Subcommand)]
#[command(after_help = GOV_HELP)]
pub enum GovCommand {
    /// Open proposals and the governance settings.
    Proposals(Reader),
    /// One proposal: action, proposer, deadline, votes, status.
    Show {
        #[command(flatten)]
        reader: Reader,
        /// The proposal number.
        id: u64,
    },
    /// Vote for your organisation (an admin's key).
    Vote {
        #[command(flatten)]
        signer: Signer,
        /// The proposal number.
        id: u64,
        /// Approve.
        #[arg(long, conflicts_with = "no", required_unless_present = "no")]
        yes: bool,
        /// Reject.
        #[arg(long)]
        no: bool,
    },
    /// Propose pulling the emergency brake: once it passes, only proposals, votes and the
    /// regulator's freezes go through until a resume passes.
    ProposeHalt(Signer),
    /// Propose releasing the emergency brake.
    ProposeResume(Signer),
}

/// Run `consort gov`.
pub fn run_gov(command: GovCommand) -> anyhow::Result<()> {
    match command {
        GovCommand::Proposals(reader) => {
            let client = Client::new(&reader.node);
            let gov = client.get("/v1/gov")?;
            println!(
                "{} mode; votes stay open {} blocks",
                gov["mode"].as_str().unwrap_or("?"),
                gov["vote_period_blocks"]
            );
            if gov["halted"] == true {
                println!(
                    "HALTED by governance since block {}: only proposals, votes and freezes \
                     are accepted",
                    gov["halted_at"]
                );
            }
            let open = gov["open_proposals"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if open.is_empty() {
                println!("no open proposals");
            }
            for id in open {
                let p = client.get(&format!("/v1/gov/proposals/{id}"))?;
                println!(
                    "  #{id} {} by {}, deadline {}: {} for, {} against",
                    p["proposal"]["action"],
                    p["proposal"]["proposer"].as_str().unwrap_or("?"),
                    p["proposal"]["deadline"],
                    p["proposal"]["yes"].as_array().map_or(0, Vec::len),
                    p["proposal"]["no"].as_array().map_or(0, Vec::len),
                );
            }
            Ok(())
        }
        GovCommand::Show { reader, id } => {
            pretty(&Client::new(&reader.node).get(&format!("/v1/gov/proposals/{id}"))?)
        }
        GovCommand::Vote {
            signer,
            id,
            yes,
            no: _,
        } => {
            send(
                &signer.node,
                &signer.key,
                Call::Vote {
                    proposal: id,
                    approve: yes,
                },
            )?;
            let proposal = Client::new(&signer.node).get(&format!("/v1/gov/proposals/{id}"))?;
            println!(
                "voted {} on proposal {id}; it is now {}",
                if yes { "for" } else { "against" },
                proposal["status"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        GovCommand::ProposeHalt(signer) => propose(&signer, Action::Halt),
        GovCommand::ProposeResume(signer) => propose(&signer, Action::Resume),
    }
}

const ACCOUNT_HELP: &str = "\
Examples:
  consort account <hex id>                                  # balance, nonce, state proof
  consort account self-register --key me.key                # customers, via the registrar
  consort account register --key shop-admin.key --account <hex id> --roles seller
  consort account rotate --key me.key --new-key new.key     # move everything to a new key
  consort account rotate --key shop-admin.key --account <lost hex id> --new <hex id>
  consort account revoke --key shop-admin.key --account <hex id>";

/// `consort account …` writes.
#[derive(Subcommand)]
#[command(after_help = ACCOUNT_HELP)]
pub enum AccountCommand {
    /// Balance, nonce and state proof of an account.
    Show {
        #[command(flatten)]
        reader: Reader,
        /// Account id (hex public key).
        id: String,
    },
    /// Registration: organisation, roles, whether active or frozen.
    Registration {
        #[command(flatten)]
        reader: Reader,
        /// Account id (hex public key).
        id: String,
    },
    /// Register yourself as a customer of the registrar organisation.
    SelfRegister(Signer),
    /// Register an account with your organisation (an admin's key).
    Register {
        #[command(flatten)]
        signer: Signer,
        /// The account (hex public key).
        #[arg(long)]
        account: String,
        /// Comma-separated roles within what your organisation's kind grants: admin,
        /// customer, seller, bank, carrier, regulator, operator.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
    },
    /// Revoke an account of your organisation (an admin's key).
    Revoke {
        #[command(flatten)]
        signer: Signer,
        /// The account (hex public key).
        #[arg(long)]
        account: String,
    },
    /// Move an account's registration and balances to a new key: your own (default, at
    /// once), or, as its organisation's admin, an account whose key was lost. An admin's
    /// rotation waits the genesis rotation delay (600 blocks by default), during which the
    /// account may cancel it; a second admin of the organisation sending the same rotation
    /// applies it at once.
    Rotate {
        #[command(flatten)]
        signer: Signer,
        /// The account to rotate (default: the signer's).
        #[arg(long)]
        account: Option<String>,
        /// File with the new private key (its public key is the new account id).
        #[arg(long, conflicts_with = "new", required_unless_present = "new")]
        new_key: Option<PathBuf>,
        /// The new account id (hex public key), when the new key is held elsewhere.
        #[arg(long)]
        new: Option<String>,
    },
    /// Object to a pending rotation of your key by an admin of your organisation (your key is
    /// not lost): the rotation is dropped. Accepted even while the chain is halted.
    CancelRotation(Signer),
}

fn roles(names: &[String]) -> anyhow::Result<u16> {
    let mut bits = 0;
    for name in names {
        bits |= match name.trim() {
            "admin" => role::ADMIN,
            "customer" => role::CUSTOMER,
            "seller" => role::SELLER,
            "bank" => role::BANK,
            "carrier" => role::CARRIER,
            "regulator" => role::REGULATOR,
            "operator" => role::OPERATOR,
            other => bail!(
                "unknown role {other}; roles are admin, customer, seller, bank, carrier, \
                 regulator, operator"
            ),
        };
    }
    Ok(bits)
}

/// Run `consort account …`.
pub fn run_account(command: AccountCommand) -> anyhow::Result<()> {
    match command {
        AccountCommand::Show { reader, id } => {
            pretty(&Client::new(&reader.node).get(&format!("/v1/accounts/{id}"))?)
        }
        AccountCommand::Registration { reader, id } => {
            pretty(&Client::new(&reader.node).get(&format!("/v1/accounts/{id}/registration"))?)
        }
        AccountCommand::SelfRegister(signer) => {
            send(&signer.node, &signer.key, Call::SelfRegister)?;
            println!("registered as a customer of the registrar");
            Ok(())
        }
        AccountCommand::Register {
            signer,
            account: id,
            roles: names,
        } => {
            let id = account(&id, "--account")?;
            send(
                &signer.node,
                &signer.key,
                Call::Register {
                    account: id,
                    roles: roles(&names)?,
                },
            )?;
            println!("{id} registered with roles {}", names.join(","));
            Ok(())
        }
        AccountCommand::Revoke {
            signer,
            account: id,
        } => {
            let id = account(&id, "--account")?;
            send(&signer.node, &signer.key, Call::Revoke { account: id })?;
            println!("{id} revoked: it can no longer act");
            Ok(())
        }
        AccountCommand::Rotate {
            signer,
            account: id,
            new_key,
            new,
        } => {
            let own = crate::keys::account_of(&consort_node::node::load_key(&signer.key)?);
            let id = match id {
                Some(text) => account(&text, "--account")?,
                None => own,
            };
            let new = match (new_key, new) {
                (Some(path), _) => crate::keys::account_of(&consort_node::node::load_key(&path)?),
                (None, Some(text)) => account(&text, "--new")?,
                (None, None) => bail!("give --new-key FILE or --new ID"),
            };
            send(&signer.node, &signer.key, Call::Rotate { account: id, new })?;
            if id == own {
                println!(
                    "{id} rotated to {new}: registration and balances moved; the old key no \
                     longer acts"
                );
            } else {
                println!(
                    "rotation of {id} to {new} sent: if no rotation of {id} was pending it now \
                     waits the rotation delay (the account may cancel it); if another admin \
                     asked for the same rotation, it applied at once"
                );
            }
            Ok(())
        }
        AccountCommand::CancelRotation(signer) => {
            send(&signer.node, &signer.key, Call::CancelRotation)?;
            println!("the pending rotation of your key is cancelled");
            Ok(())
        }
    }
}

const REG_HELP: &str = "\
Examples:
  consort reg freeze --key regulator.key --account <hex id>
  consort reg unfreeze --key regulator.key --account <hex id>
  consort reg freeze --key regulator.key --asset CNY
  consort reg alerts --count 10                 # transfers at or above the genesis threshold
  consort reg supply CNY HKD
  consort audit export --from 1 --to 500 --format csv";

/// What a freeze applies to.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// An account (hex public key).
    #[arg(long)]
    account: Option<String>,
    /// An asset code.
    #[arg(long)]
    asset: Option<String>,
    /// An organisation id.
    #[arg(long)]
    org: Option<String>,
}

impl Target {
    fn parse(&self) -> anyhow::Result<FreezeTarget> {
        Ok(match (&self.account, &self.asset, &self.org) {
            (Some(id), _, _) => FreezeTarget::Account(account(id, "--account")?),
            (_, Some(code), _) => FreezeTarget::Asset(asset(code)?),
            (_, _, Some(id)) => FreezeTarget::Org(org(id)?),
            _ => bail!("give --account, --asset or --org"),
        })
    }
}

/// `consort reg`: the regulator's tools.
#[derive(Subcommand)]
#[command(after_help = REG_HELP)]
pub enum RegCommand {
    /// Freeze an account, asset or organisation (the regulator's key): a frozen account cannot
    /// send or receive, a frozen asset cannot move, a frozen organisation's accounts cannot act.
    Freeze {
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        target: Target,
    },
    /// Lift a freeze.
    Unfreeze {
        #[command(flatten)]
        signer: Signer,
        #[command(flatten)]
        target: Target,
    },
    /// Print alert events (large transfers, issues, redemptions, peg-outs) as they finalize.
    Alerts {
        #[command(flatten)]
        reader: Reader,
        /// Stop after this many alerts (default: until interrupted).
        #[arg(long)]
        count: Option<usize>,
    },
    /// E-money totals per issuer: issued, redeemed, outstanding, reserves.
    Supply {
        #[command(flatten)]
        reader: Reader,
        /// Asset codes.
        #[arg(required = true)]
        assets: Vec<String>,
    },
}

/// Run `consort reg`.
pub fn run_reg(command: RegCommand) -> anyhow::Result<()> {
    match command {
        RegCommand::Freeze { signer, target } => {
            let target = target.parse()?;
            send(&signer.node, &signer.key, Call::Freeze { target })?;
            println!("frozen: {}", serde_json::to_string(&target)?);
            Ok(())
        }
        RegCommand::Unfreeze { signer, target } => {
            let target = target.parse()?;
            send(&signer.node, &signer.key, Call::Unfreeze { target })?;
            println!("unfrozen: {}", serde_json::to_string(&target)?);
            Ok(())
        }
        RegCommand::Alerts { reader, count } => alerts(&reader.node, count),
        RegCommand::Supply { reader, assets } => {
            let client = Client::new(&reader.node);
            for code in assets {
                let money = client.get(&format!("/v1/emoney/{}", asset(&code)?))?;
                println!(
                    "{code}: issuer {}, issued {}, redeemed {}, outstanding {}, reserves {} (reported at {}){}",
                    money["issuer"].as_str().unwrap_or("?"),
                    money["issued"],
                    money["redeemed"],
                    money["supply"],
                    money["reserves"],
                    money["reported_at"],
                    if money["frozen"] == true {
                        ", FROZEN"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
    }
}

fn alerts(node: &str, count: Option<usize>) -> anyhow::Result<()> {
    let url = format!(
        "{}/v1/events",
        node.replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1)
    );
    let (mut socket, _) = tungstenite::connect(&url)
        .with_context(|| format!("cannot open the event stream {url}; is the node running?"))?;
    let mut seen = 0;
    eprintln!("following alerts on {url} (Ctrl-C to stop)");
    while count.is_none_or(|c| seen < c) {
        let message = socket.read().context("the event stream closed")?;
        let Ok(text) = message.into_text() else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if event["type"] == "alert" {
            println!("{event}");
            seen += 1;
        }
    }
    Ok(())
}

const BANK_HELP: &str = "\
Examples:
  consort bank issue --key bank.key --asset CNY --to <hex id> --amount 10000   # against a deposit
  consort bank redeem --key holder.key --asset CNY --amount 2500               # a withdrawal
  consort bank reserve --key bank.key --asset CNY --reserves 7500 --attestation audit.pdf
  consort bank supply CNY";

/// `consort bank`: e-money.
#[derive(Subcommand)]
#[command(after_help = BANK_HELP)]
pub enum BankCommand {
    /// Issue e-money 1:1 against a fiat deposit (a bank account's key; the first issue of a
    /// code binds it to the bank).
    Issue {
        #[command(flatten)]
        signer: Signer,
        /// The currency code.
        #[arg(long)]
        asset: String,
        /// Who receives it (hex public key).
        #[arg(long)]
        to: String,
        /// Base units.
        #[arg(long)]
        amount: u64,
    },
    /// Redeem (burn) e-money for a fiat withdrawal from the issuing bank (any holder).
    Redeem {
        #[command(flatten)]
        signer: Signer,
        /// The currency code.
        #[arg(long)]
        asset: String,
        /// Base units.
        #[arg(long)]
        amount: u64,
    },
    /// Publish a reserve report: reserves held and the SHA-256 of the attestation document.
    Reserve {
        #[command(flatten)]
        signer: Signer,
        /// The currency code.
        #[arg(long)]
        asset: String,
        /// Reserves held, in base units.
        #[arg(long)]
        reserves: u64,
        /// The attestation document (its SHA-256 goes on chain).
        #[arg(long)]
        attestation: PathBuf,
    },
    /// Issued, redeemed, outstanding and reserves of an asset.
    Supply {
        #[command(flatten)]
        reader: Reader,
        /// The currency code.
        asset: String,
    },
}

/// Run `consort bank`.
pub fn run_bank(command: BankCommand) -> anyhow::Result<()> {
    match command {
        BankCommand::Issue {
            signer,
            asset: code,
            to,
            amount,
        } => {
            let to = account(&to, "--to")?;
            send(
                &signer.node,
                &signer.key,
                Call::Issue {
                    asset: asset(&code)?,
                    to,
                    amount: Amount::new(amount),
                },
            )?;
            println!("issued {amount} {code} to {to}");
            supply(&signer.node, &code)
        }
        BankCommand::Redeem {
            signer,
            asset: code,
            amount,
        } => {
            send(
                &signer.node,
                &signer.key,
                Call::Redeem {
                    asset: asset(&code)?,
                    amount: Amount::new(amount),
                },
            )?;
            println!("redeemed {amount} {code}; the issuing bank pays it out");
            supply(&signer.node, &code)
        }
        BankCommand::Reserve {
            signer,
            asset: code,
            reserves,
            attestation,
        } => {
            let document = std::fs::read(&attestation)
                .with_context(|| format!("cannot read {}", attestation.display()))?;
            let statement: [u8; 32] = consort_types::sha256(&[&document]).into();
            send(
                &signer.node,
                &signer.key,
                Call::ReserveReport {
                    asset: asset(&code)?,
                    reserves,
                    statement,
                },
            )?;
            println!(
                "reserve report for {code}: {reserves}, attestation sha256 {}",
                hex::encode(statement)
            );
            supply(&signer.node, &code)
        }
        BankCommand::Supply {
            reader,
            asset: code,
        } => supply(&reader.node, &code),
    }
}

fn supply(node: &str, code: &str) -> anyhow::Result<()> {
    run_reg(RegCommand::Supply {
        reader: Reader {
            node: node.to_string(),
        },
        assets: vec![code.to_string()],
    })
}
