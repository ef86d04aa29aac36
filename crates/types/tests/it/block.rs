//! Blocks and headers: what peers send through marshal (proposals, backfill).

use crate::{
    codec::{check_canonical, check_round_trip, config, decode, mutate, mutations, random_bytes},
    strategies::{block, encoded},
};
use commonware_codec::Encode as _;
use commonware_cryptography::Digestible as _;
use consort_types::{Block, Header};
use proptest::prelude::*;

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn random_bytes_never_panic_the_block_and_header_decoders(bytes in random_bytes(1024)) {
        check_canonical::<Block>(&bytes)?;
        check_canonical::<Header>(&bytes)?;
    }

    #[test]
    fn mutated_blocks_are_refused_or_decode_canonically(
        block in block(),
        mutations in mutations(),
    ) {
        let bytes = mutate(encoded(&block), &mutations);
        check_canonical::<Block>(&bytes)?;
        if let Ok(decoded) = decode::<Block>(&bytes) {
            // A block that decodes commits to exactly its transactions.
            prop_assert_eq!(decoded.header.tx_count as usize, decoded.txs.len());
            prop_assert_eq!(decoded.header.tx_root, consort_types::block::tx_root(&decoded.txs, &decoded.outcomes));
            prop_assert_eq!(decoded.digest(), decoded.header.digest());
        }
    }

    #[test]
    fn mutated_headers_are_refused_or_decode_canonically(
        block in block(),
        mutations in mutations(),
    ) {
        check_canonical::<Header>(&mutate(encoded(&block.header), &mutations))?;
    }

    #[test]
    fn every_block_round_trips_with_its_digest(block in block()) {
        check_round_trip(&block)?;
        check_round_trip(&block.header)?;
        let back: Block = decode(&block.encode()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.digest(), block.digest());
    }
}
