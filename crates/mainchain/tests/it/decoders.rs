//! Decoders of main-chain data that arrive in Consort transactions and API paths: 80-byte
//! headers (`relay_headers`), `gettxoutproof` merkle proofs (`claim_deposit`, `confirm_batch`),
//! main-chain transactions (`claim_deposit`), DER signatures (`sign_batch`) and addresses
//! (`peg-out` quotes). Random and mutated inputs are refused without panics. Needs no
//! `litecoind`.

use bitcoin::consensus::encode;
use bitcoin::hashes::Hash as _;
use bitcoin::{BlockHash, Transaction, Txid};
use consort_mainchain::{
    Network, check_proof_of_work, decode_header, decode_tx_out_proof, script_pubkey_for_address,
    segwit_address, target_from_bits, verify_tx_out_proof,
};
use proptest::{prelude::*, sample::Index};
use std::str::FromStr;

/// A wallet payment's proof in block 102, recorded from `litecoind -regtest` 0.21.2.1 (as in
/// `merkle.rs`).
const PROOF_102: &str = "000000205bfb929b3b423a49e3b0f8f5f584402e1609a39be1cc2d8ea19e9af44976861b337d5df701d0d4305eb96bf5a698ebc4865413ffae12810a74577d406ce0ee586ffc046bffff7f2000000000020000000285a1fad068e478204533b3dcb555daef092f9dcfb005b2feb6748bda63a5fc0cd0fc4b709969294053070349e67690d4ed8ec68afeb1b0102d90d1cea3cb96d70105";
const BLOCK_102: &str = "450f862e01e2d43fed5216dd13a9d37ee0477b45d5ce4e8129042abb4928e2b6";
const PAYMENT_102: &str = "d796cba3ced1902d10b0b1fe8ac68eedd49076e64903075340296999704bfcd0";

/// The payment of Bitcoin block 170 (the first ever), legacy serialization.
const TX_170: &str = "0100000001c997a5e56e104102fa209c6a852dd90660a20b2d9c352423edce25857fcd3704000000004847304402204e45e16932b8af514961a1d3a1a25fdf3f4f7732e9d624c6c61548ab5fb8cd410220181522ec8eca07de4860a4acdd12909d831cc56cbbac4622082221a8768d1d0901ffffffff0200ca9a3b00000000434104ae1a62fe09c5f51b13905f07f06b99a2f7159b2225f374cd378d71302fa28414e7aab37397f554a7df5f142c21c1b7303b8a0626f1baded5c72a704f7e6cd84cac00286bee0000000043410411db93e1dcdb8a016b49840f8c53bc1eb68a382e97b1482ecad7b148a6909a5cb2e0eaddfb84ccf9744464f82e160bfa9b8b64f9d4c03f999b8643f656b412a3ac00000000";

/// Addresses of each kind the peg pays.
const ADDRESSES: [(&str, Network); 5] = [
    (
        "rltc1qk5vq69xx5mj09e2rn6afjfvq47msg7pdc636tntrqudtks20ssdslfx0u8",
        Network::LITECOIN_REGTEST,
    ),
    (
        "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
        Network::BITCOIN_MAINNET,
    ),
    (
        "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297",
        Network::BITCOIN_MAINNET,
    ),
    (
        "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
        Network::BITCOIN_MAINNET,
    ),
    (
        "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
        Network::BITCOIN_MAINNET,
    ),
];

const NETWORKS: [Network; 6] = [
    Network::LITECOIN_REGTEST,
    Network::LITECOIN_TESTNET,
    Network::LITECOIN_MAINNET,
    Network::BITCOIN_REGTEST,
    Network::BITCOIN_TESTNET,
    Network::BITCOIN_MAINNET,
];

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).expect("fixture is hex")
}

/// Flip bits, overwrite bytes, cut and extend.
fn mutate(
    mut bytes: Vec<u8>,
    edits: &[(Index, u8, u8)],
    cut: Option<Index>,
    tail: &[u8],
) -> Vec<u8> {
    for (index, kind, value) in edits {
        if bytes.is_empty() {
            break;
        }
        let at = index.index(bytes.len());
        match kind % 3 {
            0 => bytes[at] ^= 1 << (value % 8),
            1 => bytes[at] = *value,
            _ => {
                bytes.insert(at, *value);
            }
        }
    }
    if let Some(cut) = cut {
        bytes.truncate(cut.index(bytes.len() + 1));
    }
    bytes.extend_from_slice(tail);
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(Index, u8, u8)>> {
    prop::collection::vec((any::<Index>(), any::<u8>(), any::<u8>()), 1..4)
}

fn tail() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..3)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_80_bytes_are_a_header_and_proof_of_work_checks_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 78..83),
        network in 0..NETWORKS.len(),
    ) {
        let network = &NETWORKS[network];
        match decode_header(&bytes) {
            Ok(header) => {
                prop_assert_eq!(bytes.len(), 80);
                prop_assert_eq!(encode::serialize(&header), bytes);
                let _ = check_proof_of_work(network, &header);
                let _ = target_from_bits(network, header.bits);
            }
            Err(_) => prop_assert_ne!(bytes.len(), 80),
        }
    }

    #[test]
    fn random_bytes_never_panic_the_proof_transaction_and_signature_decoders(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        block in any::<[u8; 32]>(),
        txid in any::<[u8; 32]>(),
    ) {
        let _ = decode_tx_out_proof(&bytes);
        let block = BlockHash::from_byte_array(block);
        let txid = Txid::from_byte_array(txid);
        prop_assert!(verify_tx_out_proof(&bytes, block, txid).is_err());
        if let Ok(tx) = encode::deserialize::<Transaction>(&bytes) {
            prop_assert_eq!(encode::serialize(&tx), bytes.clone());
        }
        let _ = bitcoin::ecdsa::Signature::from_slice(&bytes);
    }

    #[test]
    fn mutated_proofs_are_refused_or_still_prove_the_same_transaction(
        edits in edits(),
        cut in prop::option::of(any::<Index>()),
        tail in tail(),
    ) {
        let original = unhex(PROOF_102);
        let proof = mutate(original.clone(), &edits, cut, &tail);
        let block = BlockHash::from_str(BLOCK_102).expect("hash");
        let txid = Txid::from_str(PAYMENT_102).expect("txid");
        let _ = decode_tx_out_proof(&proof);
        if let Ok(inclusion) = verify_tx_out_proof(&proof, block, txid) {
            prop_assert_eq!(inclusion.txid, txid);
            prop_assert!(decode_tx_out_proof(&proof).is_ok());
        }
    }

    #[test]
    fn mutated_transactions_are_refused_or_decode_canonically(
        edits in edits(),
        cut in prop::option::of(any::<Index>()),
        tail in tail(),
    ) {
        let bytes = mutate(unhex(TX_170), &edits, cut, &tail);
        if let Ok(tx) = encode::deserialize::<Transaction>(&bytes) {
            prop_assert_eq!(encode::serialize(&tx), bytes);
        }
    }

    #[test]
    fn random_and_mutated_addresses_never_panic_the_address_parser(
        garbage in "[ -~]{0,100}",
        which in 0..ADDRESSES.len(),
        edits in prop::collection::vec((any::<Index>(), any::<char>()), 1..3),
        network in 0..NETWORKS.len(),
    ) {
        let network = &NETWORKS[network];
        let _ = script_pubkey_for_address(network, &garbage);
        let (address, home) = ADDRESSES[which];
        let mut chars: Vec<char> = address.chars().collect();
        for (index, c) in &edits {
            let at = index.index(chars.len());
            chars[at] = *c;
        }
        let mangled: String = chars.into_iter().collect();
        let _ = script_pubkey_for_address(network, &mangled);
        if let Ok(script) = script_pubkey_for_address(&home, &mangled) {
            // A segwit address that still parses names its script exactly.
            if let Ok(again) = segwit_address(&home, &script) {
                prop_assert_eq!(again, mangled.to_ascii_lowercase());
            }
        }
    }
}

#[test]
fn the_fixtures_of_these_properties_are_valid() {
    let block = BlockHash::from_str(BLOCK_102).expect("hash");
    let txid = Txid::from_str(PAYMENT_102).expect("txid");
    assert!(verify_tx_out_proof(&unhex(PROOF_102), block, txid).is_ok());
    let tx: Transaction = encode::deserialize(&unhex(TX_170)).expect("decodes");
    assert_eq!(
        tx.compute_txid().to_string(),
        "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16"
    );
    for (address, network) in ADDRESSES {
        assert!(
            script_pubkey_for_address(&network, address).is_ok(),
            "{address}"
        );
    }
}
