//! Transactions: `SignedTx::decode_untrusted`, the decoder of API bodies and gossip.

use crate::{
    codec::{check_canonical, check_round_trip, config, mutate, mutations, random_bytes},
    strategies::{call, encoded, properly_signed_tx, signed_tx, tx},
};
use commonware_codec::Encode as _;
use consort_types::{SignedTx, Tx, TxError, tx::Call};
use proptest::prelude::*;

/// Decode as the API and gossip do; a decoded transaction must re-encode to `bytes` and its
/// hash must be the hash of those bytes' parts.
fn check_untrusted(bytes: &[u8]) -> Result<(), TestCaseError> {
    match SignedTx::decode_untrusted(bytes) {
        Ok(tx) => {
            let encoded = tx.encode();
            prop_assert_eq!(encoded.as_ref(), bytes, "non-canonical: {:?}", tx);
            let rebuilt = SignedTx::new(tx.tx.clone(), tx.signature.clone());
            prop_assert_eq!(rebuilt.hash(), tx.hash());
        }
        Err(TxError::Malformed(_) | TxError::Oversized { .. }) => {}
        Err(other) => prop_assert!(false, "decoding returned {other:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn random_bytes_never_panic_the_transaction_decoder(bytes in random_bytes(512)) {
        check_untrusted(&bytes)?;
    }

    #[test]
    fn a_random_call_body_after_a_valid_prefix_is_refused_or_canonical(
        tag in 0..24u8,
        body in random_bytes(256),
        prefix in tx(),
    ) {
        // chain id, sender and nonce from a real transaction, then a tag and random bytes:
        // this reaches every call's decoder, which random bytes alone rarely do.
        let mut bytes = encoded(&prefix)[..48].to_vec();
        bytes.push(tag);
        bytes.extend_from_slice(&body);
        check_untrusted(&bytes)?;
        check_canonical::<Call>(&bytes[48..])?;
    }

    #[test]
    fn mutated_transactions_are_refused_or_decode_canonically(
        tx in signed_tx(),
        mutations in mutations(),
    ) {
        check_untrusted(&mutate(encoded(&tx), &mutations))?;
    }

    #[test]
    fn mutated_signed_transactions_never_verify_unless_unchanged(
        tx in properly_signed_tx(),
        mutations in mutations(),
    ) {
        let original = encoded(&tx);
        let bytes = mutate(original.clone(), &mutations);
        if let Ok(decoded) = SignedTx::decode_untrusted(&bytes)
            && bytes != original
        {
            prop_assert_ne!(decoded.hash(), tx.hash());
            prop_assert!(!decoded.verify_signature(), "a mutated transaction verifies");
        }
    }

    #[test]
    fn every_call_round_trips(call in call()) {
        check_round_trip(&call)?;
    }

    #[test]
    fn every_transaction_round_trips_with_its_hash(tx in signed_tx()) {
        check_round_trip(&tx)?;
        check_round_trip::<Tx>(&tx.tx)?;
        let back = SignedTx::decode_untrusted(&tx.encode()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.hash(), tx.hash());
    }
}
