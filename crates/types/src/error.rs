//! Why a transaction was refused. Every variant has a stable machine code.

use crate::{AccountId, Amount};
use serde::{Serialize, Serializer, ser::SerializeStruct};

/// A transaction refused by admission or execution. Refusal changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The bytes are not a transaction.
    #[error(
        "malformed transaction: {0}; send the canonical binary encoding (see `consort transfer --dry-run`)"
    )]
    Malformed(String),
    /// The encoding is larger than the limit.
    #[error("transaction is {size} bytes, the limit is {max}")]
    Oversized {
        /// Encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The signature does not verify for the sender's key.
    #[error("signature does not verify for the sender; sign the transaction with the sender's key")]
    BadSignature,
    /// Signed for another chain.
    #[error("transaction is for chain {got}, this is chain {expected}")]
    WrongChainId {
        /// This chain.
        expected: u64,
        /// The transaction's chain.
        got: u64,
    },
    /// The nonce was already used (a replay).
    #[error("nonce {got} was already used; the account's next nonce is {expected}")]
    NonceReused {
        /// The account's next nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The nonce is too far ahead of the account's.
    #[error("nonce {got} is too far ahead of the account's next nonce {expected}")]
    NonceTooHigh {
        /// The account's next nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The sender cannot pay.
    #[error("balance {balance} is less than {needed} (including pending transactions)")]
    InsufficientBalance {
        /// Spendable balance.
        balance: Amount,
        /// What this and the sender's pending transactions need.
        needed: Amount,
    },
    /// The sender has never held anything.
    #[error("account {0} does not exist; fund it with a transfer first")]
    UnknownAccount(AccountId),
    /// An amount that cannot be moved (zero) or would overflow.
    #[error("invalid amount: {0}")]
    InvalidAmount(&'static str),
    /// The same transaction is already known.
    #[error("transaction is already pending or finalized")]
    Duplicate,
    /// The node cannot read its state right now; retry later.
    #[error("the node cannot read its state right now; retry in a moment")]
    StateUnavailable,
    /// The node is at capacity; retry later.
    #[error("the mempool is full; retry in a moment")]
    MempoolFull,
    /// The sender reached its per-account rate limit.
    #[error("the sender has {limit} transactions {scope}; send more once some are finalized")]
    RateLimited {
        /// The limit.
        limit: u32,
        /// Where: "in this block" or "pending".
        scope: &'static str,
    },
    /// The sender may not make this call.
    #[error("{call} is not allowed for this sender: {reason}")]
    Unauthorized {
        /// The call's kind.
        call: &'static str,
        /// Who may make it.
        reason: &'static str,
    },
    /// A peg call was refused.
    #[error(transparent)]
    Peg(#[from] crate::peg::PegError),
    /// A governance call was refused.
    #[error(transparent)]
    Gov(#[from] crate::gov::GovError),
    /// A private record was refused.
    #[error(transparent)]
    Private(#[from] crate::sealed::PrivateError),
    /// A shop call was refused.
    #[error(transparent)]
    Commerce(#[from] crate::commerce::CommerceError),
}

impl TxError {
    /// A stable machine-readable code.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Oversized { .. } => "oversized",
            Self::BadSignature => "bad_signature",
            Self::WrongChainId { .. } => "wrong_chain_id",
            Self::NonceReused { .. } => "nonce_reused",
            Self::NonceTooHigh { .. } => "nonce_too_high",
            Self::InsufficientBalance { .. } => "insufficient_balance",
            Self::UnknownAccount(_) => "unknown_account",
            Self::InvalidAmount(_) => "invalid_amount",
            Self::Duplicate => "duplicate",
            Self::MempoolFull => "mempool_full",
            Self::StateUnavailable => "state_unavailable",
            Self::Unauthorized { .. } => "unauthorized",
            Self::RateLimited { .. } => "rate_limited",
            Self::Peg(error) => error.code(),
            Self::Gov(error) => error.code(),
            Self::Private(error) => error.code(),
            Self::Commerce(error) => error.code(),
        }
    }
}

impl Serialize for TxError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("TxError", 2)?;
        st.serialize_field("code", self.code())?;
        st.serialize_field("message", &self.to_string())?;
        st.end()
    }
}
