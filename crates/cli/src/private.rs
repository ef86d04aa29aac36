//! `consort private …`: publish a sealing key, put private fields on chain sealed to their
//! recipients, and read and open them with signed requests.

use crate::client::Client;
use anyhow::{Context as _, bail};
use clap::Subcommand;
use commonware_codec::Encode as _;
use consort_types::{AccountId, Call, codec_util::Blob, sealed};
use serde_json::Value;
use std::{path::PathBuf, time::Duration};

const AFTER_HELP: &str = "\
Examples:
  consort private seal-key --key alice.key                 # once per account
  consort private put --key alice.key --about <seller> --to <regulator> \\
      --label shipping-address --text 'Room 5, 1 Harbour Road; +86 138 0000 0000'
  consort private get 0 --key seller.key                    # signed read, opened locally

The author and the party the record is about always receive a copy; add the regulator (every
record on a governed chain must be sealed to one) and anyone else who needs it with --to. The
chain and the nodes only ever hold ciphertext.";

#[derive(Subcommand)]
#[command(after_help = AFTER_HELP)]
pub enum PrivateCommand {
    /// Publish this account's sealing key (derived from its signing key), so that others can
    /// seal fields to it.
    SealKey {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
        /// File with the account's private key (hex).
        #[arg(long)]
        key: PathBuf,
    },
    /// Seal a field to its recipients and put it on chain.
    Put {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
        /// File with the author's private key (hex).
        #[arg(long)]
        key: PathBuf,
        /// The other party the record concerns (a seller, a carrier…); it receives a copy.
        #[arg(long)]
        about: String,
        /// More recipients, comma-separated (the regulator, a carrier…).
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
        /// What the field is: `shipping-address`, `phone`, `note`…
        #[arg(long)]
        label: String,
        /// The field's text.
        #[arg(long)]
        text: String,
    },
    /// Fetch a private record with a signed request and open this account's copy.
    Get {
        /// A node's API URL.
        #[arg(long, env = "CONSORT_NODE", default_value = "http://127.0.0.1:28000")]
        node: String,
        /// File with the reader's private key (hex).
        #[arg(long)]
        key: PathBuf,
        /// The record number.
        id: u64,
    },
}

/// Run a `consort private` command.
pub fn run(command: PrivateCommand) -> anyhow::Result<()> {
    match command {
        PrivateCommand::SealKey { node, key } => {
            let key = consort_node::node::load_key(&key)?;
            let (_, public) = sealed::keypair(&key.encode());
            let client = Client::new(&node);
            let hash = client.submit(&key, Call::SetSealKey { key: public }, None)?;
            client.wait_finalized(&hash, Duration::from_secs(30))?;
            println!("sealing key {} published", hex::encode(public));
            Ok(())
        }
        PrivateCommand::Put {
            node,
            key,
            about,
            to,
            label,
            text,
        } => {
            let key = consort_node::node::load_key(&key)?;
            let client = Client::new(&node);
            let author = crate::keys::account_of(&key);
            let about: AccountId = about
                .parse()
                .map_err(|e| anyhow::anyhow!("--about is not an account id: {e}"))?;
            let mut recipients = vec![author, about];
            for id in &to {
                let id: AccountId = id
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--to {id} is not an account id: {e}"))?;
                if !recipients.contains(&id) {
                    recipients.push(id);
                }
            }
            let mut keyed = Vec::new();
            for id in recipients {
                let answer = client.get(&format!("/v1/accounts/{id}/seal-key"))?;
                let Some(hex_key) = answer["seal_key"].as_str() else {
                    bail!("{id} has no sealing key yet; it runs `consort private seal-key` first");
                };
                let bytes: [u8; 32] = hex::decode(hex_key)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .context("the node sent a malformed sealing key")?;
                keyed.push((id, bytes));
            }
            let chain_id = client.get("/v1/status")?["chain_id"]
                .as_u64()
                .context("status has no chain_id")?;
            let info = sealed::context(chain_id, &author, &about, label.as_bytes());
            let envelope = sealed::seal(text.as_bytes(), &keyed, &info)?;
            let label_blob = Blob::new(label.into_bytes())
                .with_context(|| format!("--label is longer than {} bytes", sealed::LABEL_MAX))?;
            let first = envelope.copies.0.first().map(|c| c.encapped);
            let hash = client.submit(
                &key,
                Call::PutPrivate {
                    about,
                    label: label_blob,
                    envelope,
                },
                None,
            )?;
            client.wait_finalized(&hash, Duration::from_secs(30))?;
            let id = find_own(&client, &key, first)?;
            println!("private record {id} finalized ({hash}); only its recipients can open it");
            Ok(())
        }
        PrivateCommand::Get { node, key, id } => {
            let key = consort_node::node::load_key(&key)?;
            let client = Client::new(&node);
            let record = client.get_signed(&format!("/v1/private/{id}"), &key)?;
            let envelope: sealed::Sealed = serde_json::from_value(record["envelope"].clone())
                .context("the node sent a malformed envelope")?;
            let author: AccountId = parse(&record["author"])?;
            let about: AccountId = parse(&record["about"])?;
            let label = record["label"].as_str().unwrap_or_default().to_string();
            let chain_id = client.get("/v1/status")?["chain_id"]
                .as_u64()
                .context("status has no chain_id")?;
            let info = sealed::context(chain_id, &author, &about, label.as_bytes());
            let (secret, _) = sealed::keypair(&key.encode());
            let me = crate::keys::account_of(&key);
            let plaintext = sealed::open(&envelope, &me, &secret, &info)?;
            println!("record {id}: {label} by {author} about {about}");
            println!("{}", String::from_utf8_lossy(&plaintext));
            Ok(())
        }
    }
}

fn parse(value: &Value) -> anyhow::Result<AccountId> {
    value
        .as_str()
        .context("missing account")?
        .parse()
        .map_err(|e| anyhow::anyhow!("bad account in record: {e}"))
}

/// The newest record this author wrote whose first copy carries `encapped`.
fn find_own(
    client: &Client,
    key: &commonware_cryptography::ed25519::PrivateKey,
    encapped: Option<[u8; 32]>,
) -> anyhow::Result<u64> {
    let count = client.get("/v1/private")?["records"]
        .as_u64()
        .context("no record count")?;
    let want = encapped.map(hex::encode);
    for id in (0..count).rev().take(256) {
        let record = client.get_signed(&format!("/v1/private/{id}"), key)?;
        if record["envelope"]["copies"][0]["encapped"].as_str() == want.as_deref() {
            return Ok(id);
        }
    }
    bail!("the record is finalized but was not found among the newest 256")
}
