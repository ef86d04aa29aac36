//! Wire and domain primitives of the Consort chain: ids, amounts, transactions, blocks, genesis,
//! typed errors.
//!
//! Nothing here touches a runtime, the network, a database or the clock. Every decode of
//! untrusted bytes is bounded by a named limit from [`limits`].

pub mod account;
pub mod amount;
pub mod asset;
pub mod block;
pub mod changes;
pub mod codec_util;
pub mod commerce;
pub mod error;
pub mod genesis;
pub mod gov;
pub mod hex_serde;
pub mod limits;
pub mod peg;
pub mod receipt;
pub mod sealed;
pub mod signed_read;
pub mod state_key;
pub mod tx;
pub mod validators;

pub use account::{Account, AccountId};
pub use amount::Amount;
pub use asset::Asset;
pub use block::{Block, Header};
pub use error::TxError;
pub use genesis::{AccountLimits, Genesis, GenesisAccount, GenesisValidator};
pub use receipt::{FailureCode, Outcome};
pub use tx::{Call, SignedTx, Tx, TxHash};

/// The digest used throughout Consort (SHA-256).
pub type Digest = commonware_cryptography::sha256::Digest;

/// Consensus context embedded in every block (round, leader, parent view and digest).
pub type BlockContext = commonware_consensus::simplex::types::Context<
    Digest,
    commonware_cryptography::ed25519::PublicKey,
>;

/// Namespace of transaction signatures: a signature made for anything else never verifies as a
/// transaction.
pub const TX_NAMESPACE: &[u8] = b"_CONSORT_TX";

/// Namespace of consensus votes and certificates.
pub const CONSENSUS_NAMESPACE: &[u8] = b"_CONSORT_CONSENSUS";

/// Hash bytes with SHA-256.
pub fn sha256(parts: &[&[u8]]) -> Digest {
    use commonware_cryptography::{Hasher, Sha256};
    Sha256::hash(parts)
}
