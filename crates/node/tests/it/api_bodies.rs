//! API request bodies: `POST /v1/txs` and `POST /v1/txs/batch` parse JSON, then hex, then
//! [`SignedTx::decode_untrusted`]. The handlers do this inline; these properties run the same
//! steps on random and mutated bodies.

use commonware_codec::Encode as _;
use commonware_cryptography::{Signer as _, ed25519};
use consort_node::api::{SubmitBatch, SubmitTx};
use consort_types::{AccountId, Amount, Call, SignedTx, Tx, hex_serde};
use proptest::{prelude::*, sample::Index};

/// What the handlers do with one hex string.
fn decode_hex_tx(text: &str) -> Option<SignedTx> {
    let bytes = hex_serde::decode(text).ok()?;
    SignedTx::decode_untrusted(&bytes).ok()
}

fn transfer(seed: u64, nonce: u64) -> SignedTx {
    let key = ed25519::PrivateKey::from_seed(seed);
    Tx {
        chain_id: 1,
        sender: AccountId::new(key.public_key()),
        nonce,
        call: Call::Transfer {
            to: AccountId::new(ed25519::PrivateKey::from_seed(seed + 1).public_key()),
            amount: Amount::new(nonce + 1),
        },
    }
    .sign(&key)
}

/// Overwrite a few bytes of `text` (the result may not be UTF-8: a body is bytes).
fn mangle(text: String, edits: &[(Index, u8)]) -> Vec<u8> {
    let mut bytes = text.into_bytes();
    for (index, byte) in edits {
        let at = index.index(bytes.len());
        bytes[at] = *byte;
    }
    bytes
}

/// If `text` decodes to a transaction, that transaction re-encodes to the same hex.
fn check_hex(text: &str) -> Result<(), TestCaseError> {
    if let Some(tx) = decode_hex_tx(text) {
        let hex = text.strip_prefix("0x").unwrap_or(text).to_ascii_lowercase();
        prop_assert_eq!(hex::encode(tx.encode()), hex);
    }
    Ok(())
}

/// A parsed batch body's transactions are each refused or canonical.
fn check_batch(body: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(batch) = serde_json::from_slice::<SubmitBatch>(body) {
        for text in &batch.txs {
            check_hex(text)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bodies_never_panic_the_submit_decoders(body in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(submit) = serde_json::from_slice::<SubmitTx>(&body) {
            check_hex(&submit.tx)?;
        }
        check_batch(&body)?;
    }

    #[test]
    fn mangled_submit_bodies_are_refused_or_carry_canonical_transactions(
        seeds in prop::collection::vec((0..4u64, 0..1000u64), 1..4),
        edits in prop::collection::vec((any::<Index>(), any::<u8>()), 1..4),
    ) {
        let txs: Vec<String> = seeds.iter().map(|(s, n)| hex::encode(transfer(*s, *n).encode())).collect();
        let single = serde_json::json!({"tx": txs[0]}).to_string();
        if let Ok(submit) = serde_json::from_slice::<SubmitTx>(&mangle(single, &edits)) {
            check_hex(&submit.tx)?;
        }
        let batch = serde_json::json!({"txs": txs}).to_string();
        check_batch(&mangle(batch, &edits))?;
    }
}

#[test]
fn a_valid_body_decodes_to_its_transaction() {
    let tx = transfer(1, 0);
    let body = serde_json::json!({"tx": hex::encode(tx.encode())}).to_string();
    let submit: SubmitTx = serde_json::from_str(&body).expect("parses");
    assert_eq!(decode_hex_tx(&submit.tx).map(|t| t.hash()), Some(tx.hash()));
}
