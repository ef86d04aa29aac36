//! The validator registry: who runs consensus, epoch by epoch.
//!
//! Governance changes the registry at once (an `add_validator` or `remove_validator` proposal
//! passes, a validator leaves); consensus follows at the next epoch boundary. The last block of
//! epoch `e` writes the committee of epoch `e + 1`, which never changes afterwards, so any node
//! can read the committee of any epoch from finalized state.

use crate::{AccountId, codec_record, codec_util::List, limits::VALIDATORS_MAX};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Blocks per epoch when genesis does not say.
pub const DEFAULT_EPOCH_BLOCKS: u64 = 1_000;

/// A validator: its consensus key and where its p2p endpoint listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorEntry {
    /// Consensus (and p2p identity) key.
    pub key: AccountId,
    /// P2p address.
    pub address: SocketAddr,
}
codec_record!(ValidatorEntry {
    key: AccountId,
    address: SocketAddr,
});

/// A validator set, in the order it was formed (consensus sorts it by key).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorSet {
    /// The validators.
    pub members: List<ValidatorEntry, VALIDATORS_MAX>,
}
codec_record!(ValidatorSet {
    members: List<ValidatorEntry, VALIDATORS_MAX>,
});

impl ValidatorSet {
    /// Whether `key` is a member.
    pub fn contains(&self, key: &AccountId) -> bool {
        self.members.0.iter().any(|v| v.key == *key)
    }

    /// The members' keys.
    pub fn keys(&self) -> impl Iterator<Item = AccountId> + '_ {
        self.members.0.iter().map(|v| v.key)
    }
}
