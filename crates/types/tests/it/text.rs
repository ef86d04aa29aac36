//! Text forms that the API, the CLI and config files parse: hex transactions, ids and codes,
//! JSON values, and the genesis document.

use crate::{
    codec::{config, mutate, mutations},
    strategies::{action_with, freeze_target_with, key_account, sealed_with, signed_tx},
};
use commonware_codec::Encode as _;
use consort_types::{
    AccountId, Asset, Genesis, GenesisAccount, GenesisValidator, SignedTx, TxHash,
    codec_util::Blob,
    genesis::AccountLimits,
    gov::{Action, FreezeTarget, OrgId},
    hex_serde,
    sealed::Sealed,
};
use proptest::prelude::*;

/// The API's path for a submitted transaction: hex, then the untrusted decoder.
fn decode_hex_tx(text: &str) -> Option<SignedTx> {
    let bytes = hex_serde::decode(text).ok()?;
    SignedTx::decode_untrusted(&bytes).ok()
}

/// Hex-ish text: mostly hex digits, sometimes a `0x`, sometimes anything.
fn hexish() -> impl Strategy<Value = String> {
    prop_oneof![
        "(0x)?[0-9a-fA-F]{0,200}",
        "[0-9a-fA-Fx \u{00e9}\u{1F600}]{0,100}",
        any::<String>(),
    ]
}

fn a_genesis() -> Genesis {
    use commonware_cryptography::{Signer as _, ed25519};
    let id = |seed| AccountId::new(ed25519::PrivateKey::from_seed(seed).public_key());
    Genesis {
        chain_id: 7,
        genesis_time_ms: 1_700_000_000_000,
        validators: (0..3)
            .map(|i| GenesisValidator {
                public_key: id(i),
                p2p_address: format!("127.0.0.1:{}", 3000 + i),
            })
            .collect(),
        accounts: (10..13)
            .map(|i| GenesisAccount {
                id: id(i),
                balance: consort_types::Amount::new(u64::MAX / 4),
            })
            .collect(),
        peg: None,
        governance: None,
        epoch_blocks: Some(100),
        empty_block_interval_ms: Some(1_000),
        account_limits: Some(AccountLimits {
            txs_per_block: 8,
            tx_size_max: 4096,
            pending_max: 64,
        }),
        commerce: None,
    }
}

/// A genesis that passes `from_json` keeps the promises its accessors rely on.
fn check_genesis(text: &str) -> Result<(), TestCaseError> {
    if let Ok(genesis) = Genesis::from_json(text) {
        prop_assert_eq!(genesis.validator_keys().len(), genesis.validators.len());
        prop_assert_eq!(
            genesis.validator_set().members.0.len(),
            genesis.validators.len()
        );
        let _ = genesis.total_supply();
        prop_assert!(genesis.epoch_blocks() >= 2);
        let _ = genesis.digest();
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn random_text_never_panics_the_hex_and_id_parsers(text in hexish()) {
        let _ = decode_hex_tx(&text);
        let _ = hex_serde::parse::<TxHash>(&text);
        let _ = text.parse::<AccountId>();
        let _ = text.parse::<Asset>();
        let _ = text.parse::<OrgId>();
        let quoted = serde_json::to_string(&text).expect("a string serializes");
        let _ = serde_json::from_str::<Blob<32>>(&quoted);
        let _ = serde_json::from_str::<AccountId>(&quoted);
    }

    #[test]
    fn a_hex_transaction_decodes_with_or_without_0x_and_in_either_case(tx in signed_tx()) {
        let text = hex::encode(tx.encode());
        for form in [text.clone(), format!("0x{text}"), text.to_uppercase()] {
            let back = decode_hex_tx(&form);
            prop_assert_eq!(back.as_ref().map(SignedTx::hash), Some(tx.hash()));
        }
    }

    #[test]
    fn random_json_never_panics_the_json_decoders(text in any::<String>()) {
        let _ = serde_json::from_str::<Action>(&text);
        let _ = serde_json::from_str::<FreezeTarget>(&text);
        let _ = serde_json::from_str::<Sealed>(&text);
        check_genesis(&text)?;
    }

    #[test]
    fn json_values_round_trip_and_mutated_json_never_panics(
        action in action_with(key_account()),
        target in freeze_target_with(key_account()),
        sealed in sealed_with(key_account()),
        mutations in mutations(),
    ) {
        let json = serde_json::to_string(&action).expect("serializes");
        prop_assert_eq!(serde_json::from_str::<Action>(&json).ok(), Some(action));
        let mutated = mutate(json.into_bytes(), &mutations);
        let _ = serde_json::from_slice::<Action>(&mutated);
        let json = serde_json::to_string(&target).expect("serializes");
        prop_assert_eq!(serde_json::from_str::<FreezeTarget>(&json).ok(), Some(target));
        let json = serde_json::to_string(&sealed).expect("serializes");
        prop_assert_eq!(serde_json::from_str::<Sealed>(&json).ok(), Some(sealed));
        let mutated = mutate(json.into_bytes(), &mutations);
        let _ = serde_json::from_slice::<Sealed>(&mutated);
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn mutated_genesis_documents_are_refused_or_keep_their_promises(mutations in mutations()) {
        let json = serde_json::to_vec(&a_genesis()).expect("serializes");
        let mutated = mutate(json, &mutations);
        check_genesis(&String::from_utf8_lossy(&mutated))?;
    }
}

#[test]
fn the_genesis_of_these_properties_is_valid_and_round_trips() {
    let genesis = a_genesis();
    let json = serde_json::to_string(&genesis).expect("serializes");
    assert_eq!(Genesis::from_json(&json).expect("valid"), genesis);
}
