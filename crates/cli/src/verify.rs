//! `consort verify`: fetch evidence from a node and check it as a light client — an account's
//! balance and nonce, an order's state, a review's head and text — trusting only genesis.

use crate::client::Client;
use anyhow::{Context as _, bail};
use commonware_codec::DecodeExt as _;
use consort_client::light::{
    AccountEvidence, ChunkEvidence, Verified, VerifiedRecord, verify_account, verify_header,
    verify_record, verify_tx,
};
use consort_types::{
    Account, AccountId, Amount, Call, Genesis,
    commerce::{CommerceCall, Order, RecordId, ReviewHead},
    state_key::commerce as key,
};
use serde_json::Value;
use std::time::Duration;

/// Attempts while the node's proof is not yet tied to a finalized height.
const ATTEMPTS: usize = 20;

/// A finalized block's header and certificate, and the epoch boundaries leading to it.
struct Finalized {
    header: Vec<u8>,
    finalization: Vec<u8>,
    boundaries: Vec<(Vec<u8>, Vec<u8>)>,
}

fn field(value: &Value, name: &str) -> anyhow::Result<Vec<u8>> {
    hex::decode(
        value[name]
            .as_str()
            .with_context(|| format!("the node sent no {name}"))?,
    )
    .with_context(|| format!("{name} is not hex"))
}

/// Fetch the evidence that block `height` is finalized.
fn finalized(client: &Client, genesis: &Genesis, height: u64) -> anyhow::Result<Finalized> {
    let block = client.get(&format!("/v1/blocks/{height}"))?;
    let epoch = consort_validators::epoch_of(genesis, height).get();
    let blocks = genesis.epoch_blocks();
    let mut boundaries = Vec::new();
    for e in 0..epoch {
        let boundary = client.get(&format!("/v1/blocks/{}", (e + 1) * blocks - 1))?;
        boundaries.push((
            field(&boundary, "header")?,
            field(&boundary, "finalization")?,
        ));
    }
    Ok(Finalized {
        header: field(&block, "header")?,
        finalization: field(&block, "finalization")?,
        boundaries,
    })
}

fn failed(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("verification FAILED: {error}; do not trust this node's answer")
}

/// Fetch and verify `id`'s balance and nonce.
pub fn account(client: &Client, genesis: &Genesis, id: &str) -> anyhow::Result<Verified> {
    let id: AccountId = id
        .parse()
        .context("the account id must be a hex ed25519 key")?;
    for _ in 0..ATTEMPTS {
        let answer = client.get(&format!("/v1/accounts/{id}"))?;
        let proof = &answer["proof"];
        // The state may be one block ahead of what the node has announced as final: ask again.
        let Some(height) = proof["height"].as_u64() else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let evidence = finalized(client, genesis, height)?;
        let proof_bytes = field(proof, "proof")?;
        let account = Account {
            balance: Amount::new(answer["balance"].as_u64().context("no balance")?),
            nonce: answer["nonce"].as_u64().context("no nonce")?,
        };
        return verify_account(
            genesis,
            &AccountEvidence {
                id,
                account,
                header: &evidence.header,
                finalization: &evidence.finalization,
                proof: &proof_bytes,
                boundaries: &evidence.boundaries,
            },
        )
        .map_err(failed);
    }
    bail!("the node never tied its account proof to a finalized block; try again or another node")
}

/// Fetch `path` (a record proof route, signed with `signer` if given) until the node ties its
/// proof to a finalized block, and verify the record under `record_key`.
fn record(
    client: &Client,
    genesis: &Genesis,
    path: &str,
    signer: Option<&commonware_cryptography::ed25519::PrivateKey>,
    record_key: &consort_types::Digest,
) -> anyhow::Result<VerifiedRecord> {
    for _ in 0..ATTEMPTS {
        let answer = match signer {
            Some(key) => client.get_signed(path, key)?,
            None => client.get(path)?,
        };
        let proof = &answer["proof"];
        let Some(height) = proof["height"].as_u64() else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let evidence = finalized(client, genesis, height)?;
        let chunks = proof["chunks"]
            .as_array()
            .context("the node sent no chunks")?
            .iter()
            .map(|c| {
                let key = field(c, "key")?;
                Ok(ChunkEvidence {
                    key: consort_types::Digest::decode(commonware_codec::Copying(key.as_slice()))
                        .context("a chunk key is not a digest")?,
                    value: field(c, "value")?,
                    proof: field(c, "proof")?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        return verify_record(
            genesis,
            &evidence.header,
            &evidence.finalization,
            &evidence.boundaries,
            record_key,
            &chunks,
        )
        .map_err(failed);
    }
    bail!("the node never tied its proof to a finalized block; try again or another node")
}

/// Fetch and verify order `id`'s state, reading as `signer` (a party to the order or a
/// regulator: orders are restricted).
pub fn order(
    client: &Client,
    genesis: &Genesis,
    id: &str,
    signer: &commonware_cryptography::ed25519::PrivateKey,
) -> anyhow::Result<(VerifiedRecord, Order)> {
    let id: RecordId = id.parse()?;
    let verified = record(
        client,
        genesis,
        &format!("/v1/commerce/orders/{id}/proof"),
        Some(signer),
        &key::order(&id),
    )?;
    let order = Order::decode(commonware_codec::Copying(verified.bytes.as_slice()))
        .map_err(|e| failed(format!("the proven record is not an order: {e}")))?;
    Ok((verified, order))
}

/// A review proven: its head, the transaction that carries its current version, and that
/// version's content.
pub struct VerifiedReview {
    /// The head, proven in state.
    pub record: VerifiedRecord,
    /// The head.
    pub head: ReviewHead,
    /// The content, proven by the transaction's inclusion in its finalized block.
    pub content: consort_types::commerce::ReviewContent,
}

/// Fetch and verify the review of `line` of order `order_id`: its head from the state, then
/// the transaction at the head's `content_at` from its own finalized block, whose content must
/// hash to the head's digest.
pub fn review(
    client: &Client,
    genesis: &Genesis,
    order_id: &str,
    line: u8,
) -> anyhow::Result<VerifiedReview> {
    let order_id: RecordId = order_id.parse()?;
    let verified = record(
        client,
        genesis,
        &format!("/v1/commerce/reviews/{order_id}/{line}/proof"),
        None,
        &key::review(&order_id, line),
    )?;
    let head = ReviewHead::decode(commonware_codec::Copying(verified.bytes.as_slice()))
        .map_err(|e| failed(format!("the proven record is not a review: {e}")))?;
    let at = head.content_at;
    let carrier = finalized(client, genesis, at.height)?;
    let (header, _) = verify_header(
        genesis,
        &carrier.header,
        &carrier.finalization,
        &carrier.boundaries,
    )
    .map_err(failed)?;
    let served = client.get(&format!("/v1/blocks/{}/txs/{}", at.height, at.index))?;
    let (tx, outcome) = verify_tx(
        &header,
        at.index,
        &field(&served, "tx")?,
        &field(&served, "outcome")?,
        &field(&served, "proof")?,
    )
    .map_err(failed)?;
    let content = match tx.tx.call {
        Call::Commerce(
            CommerceCall::Review { content, .. } | CommerceCall::ReviseReview { content, .. },
        ) if outcome.is_applied() => content,
        _ => {
            return Err(failed(
                "the transaction the review names is not an applied review",
            ));
        }
    };
    if content.digest() != head.digest {
        return Err(failed(
            "the review's text does not hash to the proven digest",
        ));
    }
    Ok(VerifiedReview {
        record: verified,
        head,
        content,
    })
}
