//! `consort validators …`: who runs consensus now and next, and the governance calls that change
//! it. Changes take effect at the next epoch boundary, without restarting any node.

use crate::{client::Client, gov::send};
use anyhow::Context as _;
use clap::Subcommand;
use consort_types::{AccountId, Call, gov::Action};
use serde_json::Value;
use std::{net::SocketAddr, path::PathBuf};

const AFTER_HELP: &str = "\
Examples:
  consort validators list
  consort validators federation-key --key validator.key --keystore federation.keystore \
      --passphrase-file federation.pass           # on a chain with a peg, before propose-add
  consort validators propose-add --key org-admin.key --validator <hex key> --address 10.0.0.5:27000
  consort gov vote 3 --yes --key other-admin.key       # members vote; >2/3 of organisations pass it
  consort validators propose-remove --key org-admin.key --validator <hex key>
  consort validators leave --key validator.key          # a validator steps down by itself

A new validator starts its node with the chain's genesis and its own key before the vote: it
follows the chain, and joins consensus at the first epoch boundary after the proposal passes.
On a chain with a two-way peg it first registers its federation key (secp256k1, kept in an
encrypted keystore its node's `mainchain` section names): the committee that includes it forms
the next federation, and the peg's coins are swept to it.";

#[derive(Subcommand)]
#[command(after_help = AFTER_HELP)]
pub enum ValidatorsCommand {
    /// The current epoch and its committee, the registry (the next epoch's committee), and the
    /// next epoch boundary.
    List {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
    },
    /// Propose adding a validator node (an organisation admin's key). It joins consensus at the
    /// first epoch boundary after the proposal passes.
    ProposeAdd {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
        /// File with the proposing admin's private key (hex).
        #[arg(long)]
        key: PathBuf,
        /// The new validator's public key (hex; `consort keys show --key FILE`).
        #[arg(long)]
        validator: String,
        /// Where its p2p endpoint listens (ip:port), for the other validators to dial.
        #[arg(long)]
        address: SocketAddr,
    },
    /// Propose removing a validator node (an organisation admin's key). Its votes stop counting
    /// at the first epoch boundary after the proposal passes.
    ProposeRemove {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
        /// File with the proposing admin's private key (hex).
        #[arg(long)]
        key: PathBuf,
        /// The validator's public key (hex).
        #[arg(long)]
        validator: String,
    },
    /// Register this validator's peg federation key on chain (the validator's own key), with
    /// a proof that it holds it. Creates the keystore (a new random key, encrypted with the
    /// passphrase) if it does not exist. Needed before `propose-add` on a chain with a peg;
    /// the key cannot change while the account is a validator.
    FederationKey {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
        /// File with the validator's private key (hex).
        #[arg(long)]
        key: PathBuf,
        /// The federation keystore (created if absent).
        #[arg(long)]
        keystore: PathBuf,
        /// File holding the keystore's passphrase.
        #[arg(long)]
        passphrase_file: PathBuf,
    },
    /// Leave the validator set (the validator's own key) at the next epoch boundary.
    Leave {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
        /// File with the validator's private key (hex).
        #[arg(long)]
        key: PathBuf,
    },
}

/// Run a `consort validators` command.
pub fn run(command: ValidatorsCommand) -> anyhow::Result<()> {
    match command {
        ValidatorsCommand::List { node } => {
            let sets = Client::new(&node).get("/v1/validators")?;
            print!("{}", render(&sets));
            Ok(())
        }
        ValidatorsCommand::ProposeAdd {
            node,
            key,
            validator,
            address,
        } => {
            let key_id = parse_key(&validator)?;
            let hash = send(
                &node,
                &key,
                Call::Propose {
                    action: Action::AddValidator {
                        key: key_id,
                        address,
                    },
                },
            )?;
            proposed(&node, &hash)
        }
        ValidatorsCommand::ProposeRemove {
            node,
            key,
            validator,
        } => {
            let key_id = parse_key(&validator)?;
            let hash = send(
                &node,
                &key,
                Call::Propose {
                    action: Action::RemoveValidator { key: key_id },
                },
            )?;
            proposed(&node, &hash)
        }
        ValidatorsCommand::FederationKey {
            node,
            key,
            keystore,
            passphrase_file,
        } => federation_key(&node, &key, &keystore, &passphrase_file),
        ValidatorsCommand::Leave { node, key } => {
            send(&node, &key, Call::LeaveValidator)?;
            let sets = Client::new(&node).get("/v1/validators")?;
            println!(
                "left the registry; consensus continues without this validator from block {}",
                sets["next_boundary"].as_u64().unwrap_or(0) + 1
            );
            Ok(())
        }
    }
}

/// Open (or create) the federation keystore and register its key for the validator's account.
fn federation_key(
    node: &str,
    key: &std::path::Path,
    keystore: &std::path::Path,
    passphrase_file: &std::path::Path,
) -> anyhow::Result<()> {
    use consort_mainchain::{KdfParams, Keystore, SigningKey};
    use consort_types::codec_util::Blob;
    let passphrase = std::fs::read(passphrase_file).with_context(|| {
        format!(
            "cannot read the passphrase file {}",
            passphrase_file.display()
        )
    })?;
    let passphrase = passphrase.trim_ascii();
    let signing = if keystore.exists() {
        Keystore::open(keystore)?.unlock(passphrase)?
    } else {
        let generated = SigningKey::generate()?;
        Keystore::create(keystore, &generated, passphrase, KdfParams::default())?;
        println!("created {} with a new federation key", keystore.display());
        generated
    };
    let account = AccountId::new(commonware_cryptography::Signer::public_key(
        &consort_node::node::load_key(key)?,
    ));
    let chain_id = Client::new(node).get("/v1/status")?["chain_id"]
        .as_u64()
        .context("the node's status has no chain_id")?;
    let call = Call::RegisterFederationKey {
        key: Blob(signing.public_key().serialize().to_vec()),
        proof: Blob(
            signing
                .prove_possession(chain_id, account.as_bytes())
                .to_vec(),
        ),
    };
    send(node, key, call)?;
    println!(
        "registered federation key {} for validator {account}; point its node's mainchain \
         keystore at {}",
        signing.public_key(),
        keystore.display()
    );
    Ok(())
}

fn parse_key(text: &str) -> anyhow::Result<AccountId> {
    text.parse()
        .map_err(|e| anyhow::anyhow!("--validator is not a hex ed25519 public key: {e}"))
}

fn proposed(node: &str, hash: &str) -> anyhow::Result<()> {
    let gov = Client::new(node).get("/v1/gov")?;
    let id = gov["next_proposal"]
        .as_u64()
        .context("governance overview has no next_proposal")?
        .saturating_sub(1);
    println!("proposal {id} finalized ({hash}); the proposer's organisation voted for it");
    println!("other organisations vote with: consort gov vote {id} --yes --key ADMIN.key");
    Ok(())
}

/// The validator sets as a short report.
pub fn render(sets: &Value) -> String {
    let mut out = format!(
        "epoch {} (blocks of {}), finalized height {}, next boundary at {}\n",
        sets["epoch"], sets["epoch_blocks"], sets["finalized_height"], sets["next_boundary"]
    );
    let list = |title: &str, members: &Value, out: &mut String| {
        out.push_str(title);
        out.push('\n');
        for member in members.as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {}  {}\n",
                member["key"].as_str().unwrap_or("?"),
                member["address"].as_str().unwrap_or("?")
            ));
        }
    };
    list("committee (votes now):", &sets["committee"], &mut out);
    if sets["pending_change"].as_bool().unwrap_or(false) {
        list(
            "registry (votes from the next epoch):",
            &sets["registry"],
            &mut out,
        );
    }
    out
}
