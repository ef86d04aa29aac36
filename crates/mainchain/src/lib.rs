//! Talks to and verifies the Bitcoin-family main chain (Litecoin, Bitcoin): network parameters, header-chain proof-of-work and difficulty checks, merkle inclusion proofs, federation custody scripts and signing, and a JSON-RPC client.
//!
//! Verification ([`header`], [`difficulty`], [`merkle`]) is pure and deterministic: no clock,
//! no I/O, every decode of untrusted bytes bounded. [`rpc`] is the only part that talks to a
//! node; what it returns is checked by the verifiers before it is believed. Litecoin's proof of
//! work is scrypt, not the double SHA-256 of its block hash, so rust-bitcoin's
//! `Header::validate_pow` must not be used for it: [`verify_header`] picks the hash from the
//! [`Network`]. With the `harness` feature, [`regtest`] runs a real `litecoind -regtest` for
//! tests.
//!
//! Custody ([`federation`], [`deposit`], [`spend`], [`keystore`]) is the validators' side of
//! the peg: the m-of-n P2WSH script with its timelocked recovery branch, one deposit address
//! per Consort account, deterministic spends signed key by key, and the encrypted file each
//! validator keeps its secp256k1 key in. [`address`] reads and writes main-chain addresses.

pub mod address;
mod arith;
pub mod deposit;
pub mod difficulty;
pub mod federation;
pub mod header;
pub mod keystore;
pub mod merkle;
pub mod network;
mod record;
#[cfg(feature = "harness")]
pub mod regtest;
pub mod rpc;
pub mod spend;

pub use address::{ADDRESS_LENGTH_MAX, AddressError, script_pubkey_for_address, segwit_address};
pub use deposit::{DepositIndex, is_hogex};
pub use difficulty::{HeaderTimes, next_bits_required, retarget_bits};
pub use federation::{
    Custody, DepositAccount, FEDERATION_KEYS_MAX, Federation, FederationError, Recovery,
    federation_threshold,
};
pub use header::{
    HEADER_SIZE_BYTES, HeaderError, HeaderRecord, check_proof_of_work, decode_header, pow_hash,
    target_from_bits, verify_header,
};
pub use keystore::{
    KdfParams, Keystore, KeystoreError, SigningKey, key_possession_message, verify_possession,
};
pub use merkle::{
    MerkleProofError, TX_OUT_PROOF_SIZE_MAX_BYTES, TxInclusion, decode_tx_out_proof,
    verify_tx_out_proof,
};
pub use network::{Chain, Network, NetworkKind, PowHash, RETARGET_INTERVAL_BLOCKS};
pub use rpc::{MempoolAcceptance, RpcAuth, RpcClient, RpcConfig, RpcError, TxOutInfo};
pub use spend::{
    COINBASE_MATURITY_BLOCKS, MWEB_PEG_OUT_MATURITY_BLOCKS, PartialSignatures, Payment,
    SPEND_INPUTS_MAX, SPEND_PAYMENTS_MAX, SpendBranch, SpendError, SpendParams, UnsignedSpend,
    Utxo, build_spend, build_spend_to, build_sweep, custody_witness, deposit_prepaid_fee,
    dust_threshold, payment_minimum, quote_fee,
};
