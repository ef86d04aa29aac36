//! Talks to and verifies the Bitcoin-family main chain (Litecoin, Bitcoin): network parameters, header-chain proof-of-work and difficulty checks, merkle inclusion proofs, and a JSON-RPC client.
//!
//! Verification ([`header`], [`difficulty`], [`merkle`]) is pure and deterministic: no clock,
//! no I/O, every decode of untrusted bytes bounded. [`rpc`] is the only part that talks to a
//! node; what it returns is checked by the verifiers before it is believed. Litecoin's proof of
//! work is scrypt, not the double SHA-256 of its block hash, so rust-bitcoin's
//! `Header::validate_pow` must not be used for it: [`verify_header`] picks the hash from the
//! [`Network`]. With the `harness` feature, [`regtest`] runs a real `litecoind -regtest` for
//! tests.

mod arith;
pub mod difficulty;
pub mod header;
pub mod merkle;
pub mod network;
#[cfg(feature = "harness")]
pub mod regtest;
pub mod rpc;

pub use difficulty::{HeaderTimes, next_bits_required, retarget_bits};
pub use header::{
    HEADER_SIZE_BYTES, HeaderError, HeaderRecord, check_proof_of_work, decode_header, pow_hash,
    target_from_bits, verify_header,
};
pub use merkle::{
    MerkleProofError, TX_OUT_PROOF_SIZE_MAX_BYTES, TxInclusion, decode_tx_out_proof,
    verify_tx_out_proof,
};
pub use network::{Chain, Network, NetworkKind, PowHash, RETARGET_INTERVAL_BLOCKS};
pub use rpc::{RpcAuth, RpcClient, RpcConfig, RpcError};
