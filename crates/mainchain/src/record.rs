//! What a header verifier keeps and why it refuses a header: the types [`crate::header`] and
//! [`crate::difficulty`] share (kept apart so neither imports the other both ways).

use bitcoin::pow::CompactTarget;
use bitcoin::{BlockHash, Work};

use crate::network::PowHash;

/// The size of a serialized block header.
pub const HEADER_SIZE_BYTES: usize = 80;

/// Why a header was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The input is not exactly one serialized header.
    #[error("a block header is {HEADER_SIZE_BYTES} bytes, got {length}")]
    Length {
        /// Bytes received.
        length: usize,
    },
    /// The header does not build on the given parent.
    #[error(
        "header builds on {found}, not on the parent {parent}: fetch the header that follows the parent"
    )]
    PrevHashMismatch {
        /// The parent's hash.
        parent: BlockHash,
        /// The header's `hashPrevBlock`.
        found: BlockHash,
    },
    /// The header at height 0 is not this network's genesis.
    #[error("genesis {found} is not the {expected} of this network: check the configured network")]
    GenesisMismatch {
        /// This network's genesis hash.
        expected: BlockHash,
        /// The hash of the header given.
        found: BlockHash,
    },
    /// `nBits` encodes a negative number.
    #[error("nBits {bits:#010x} encodes a negative target")]
    BitsNegative {
        /// The header's `nBits`.
        bits: u32,
    },
    /// `nBits` encodes zero.
    #[error("nBits {bits:#010x} encodes a zero target")]
    BitsZero {
        /// The header's `nBits`.
        bits: u32,
    },
    /// `nBits` encodes a number of more than 256 bits.
    #[error("nBits {bits:#010x} overflows 256 bits")]
    BitsOverflow {
        /// The header's `nBits`.
        bits: u32,
    },
    /// `nBits` is easier than this network ever allows.
    #[error("nBits {bits:#010x} is above the pow limit of this network")]
    BitsAbovePowLimit {
        /// The header's `nBits`.
        bits: u32,
    },
    /// The proof-of-work hash is above the target the header claims.
    #[error("header {hash} does not meet its own target {bits:#010x} under {pow_hash:?}")]
    InsufficientProofOfWork {
        /// The header's block hash.
        hash: BlockHash,
        /// The header's `nBits`.
        bits: u32,
        /// The hash function that was checked.
        pow_hash: PowHash,
    },
    /// `nBits` is not what the difficulty rule requires at this height.
    #[error(
        "header at height {height} claims nBits {found:#010x}, the difficulty rule requires {expected:#010x}"
    )]
    UnexpectedBits {
        /// Height of the header.
        height: u32,
        /// Bits the rule requires.
        expected: u32,
        /// Bits the header claims.
        found: u32,
    },
    /// A retarget needs the timestamp of a header the caller did not supply.
    #[error(
        "the retarget needs the timestamp of the header at height {height}: store it and retry"
    )]
    MissingPeriodStart {
        /// Height of the period's first header.
        height: u32,
    },
    /// The chain is longer than `u32::MAX` headers.
    #[error("height overflows u32")]
    HeightOverflow,
    /// Cumulative work overflows 256 bits.
    #[error("cumulative chain work overflows 256 bits")]
    ChainworkOverflow,
}

/// What a verifier keeps of an accepted header to verify the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderRecord {
    /// Block hash (double SHA-256 of the header on every chain).
    pub hash: BlockHash,
    /// Height; genesis is 0.
    pub height: u32,
    /// The header's `nBits`.
    pub bits: CompactTarget,
    /// The header's timestamp, seconds since the Unix epoch.
    pub time: u32,
    /// Work of the chain up to and including this header (Core's `nChainWork`).
    pub chainwork: Work,
    /// The bits of the nearest header at or before this one that was not mined under the
    /// min-difficulty rule; what the next header must carry if it comes on time (testnet and
    /// regtest only). For a mainnet record, or a record that starts a verifier from a
    /// checkpoint on mainnet, it equals `bits`.
    pub last_regular_bits: CompactTarget,
}
