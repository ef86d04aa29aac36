//! `consort verify`: fetch an account's evidence from a node and check it as a light client.

use crate::client::Client;
use anyhow::{Context as _, bail};
use consort_client::light::{AccountEvidence, Verified, verify_account};
use consort_types::{Account, AccountId, Amount, Genesis};
use std::time::Duration;

/// Attempts while the node's proof is not yet tied to a finalized height.
const ATTEMPTS: usize = 20;

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
        let block = client.get(&format!("/v1/blocks/{height}"))?;
        let field = |value: &serde_json::Value, name: &str| -> anyhow::Result<Vec<u8>> {
            hex::decode(
                value[name]
                    .as_str()
                    .with_context(|| format!("the node sent no {name}"))?,
            )
            .with_context(|| format!("{name} is not hex"))
        };
        let header = field(&block, "header")?;
        let finalization = field(&block, "finalization")?;
        let proof_bytes = field(proof, "proof")?;
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
        let account = Account {
            balance: Amount::new(answer["balance"].as_u64().context("no balance")?),
            nonce: answer["nonce"].as_u64().context("no nonce")?,
        };
        return verify_account(
            genesis,
            &AccountEvidence {
                id,
                account,
                header: &header,
                finalization: &finalization,
                proof: &proof_bytes,
                boundaries: &boundaries,
            },
        )
        .map_err(|e| anyhow::anyhow!("verification FAILED: {e}; do not trust this node's answer"));
    }
    bail!("the node never tied its account proof to a finalized block; try again or another node")
}
