//! Blocks for unit tests: a well-formed header over given transactions and outcomes, with
//! zeroed state roots (for checks that never execute the block).

use commonware_consensus::types::{Epoch, Height, Round, View};
use commonware_cryptography::{Signer as _, ed25519};
use commonware_utils::range::NonEmptyRange;
use consort_types::{Block, BlockContext, Digest, Header, Outcome, SignedTx, block::tx_root};

/// A block at `height` on `parent`, stamped `timestamp_ms`, holding `txs` with `outcomes`.
pub(crate) fn block(
    height: u64,
    parent: Digest,
    timestamp_ms: u64,
    txs: Vec<SignedTx>,
    outcomes: Vec<Outcome>,
) -> Block {
    let header = Header {
        context: BlockContext {
            round: Round::new(Epoch::zero(), View::new(height)),
            leader: ed25519::PrivateKey::from_seed(0).public_key(),
            parent: (View::zero(), parent),
        },
        parent,
        height: Height::new(height),
        timestamp_ms,
        tx_count: u32::try_from(txs.len()).expect("a test block is small"),
        tx_root: tx_root(&txs, &outcomes),
        state_root: [0u8; 32].into(),
        ops_root: [0u8; 32].into(),
        ops_range: NonEmptyRange::new(
            commonware_storage::mmr::Location::new(0)..commonware_storage::mmr::Location::new(1),
        )
        .expect("non-empty"),
        next_committee: None,
    };
    Block::new(header, txs, outcomes)
}
