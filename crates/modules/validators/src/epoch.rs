//! The epoch schedule: fixed-length epochs from genesis, the last block of each fixing the next
//! epoch's committee.

use commonware_consensus::types::{Epoch, Epocher, FixedEpocher, Height};
use commonware_cryptography::ed25519;
use commonware_utils::{NZU64, TryFromIterator as _, ordered::Set};
use consort_types::{Genesis, validators::ValidatorSet};
use std::num::NonZeroU64;

/// The epoch schedule of `genesis`.
pub fn epocher(genesis: &Genesis) -> FixedEpocher {
    FixedEpocher::new(NonZeroU64::new(genesis.epoch_blocks()).unwrap_or(NZU64!(2)))
}

/// The epoch block `height` belongs to.
pub fn epoch_of(genesis: &Genesis, height: u64) -> Epoch {
    epocher(genesis)
        .containing(Height::new(height))
        .map_or(Epoch::zero(), |info| info.epoch())
}

/// Whether `height` is the last block of its epoch.
pub fn is_boundary(genesis: &Genesis, height: u64) -> bool {
    let epocher = epocher(genesis);
    epocher
        .last(epoch_of(genesis, height))
        .is_some_and(|last| last.get() == height)
}

/// The consensus participants of `committee`.
///
/// # Panics
/// If the committee holds a key twice or a key that is not a point: committees are built from
/// the registry, which holds distinct valid keys.
pub fn participants(committee: &ValidatorSet) -> Set<ed25519::PublicKey> {
    Set::try_from_iter(committee.keys().filter_map(|k| k.public_key()))
        .expect("committees hold distinct valid keys")
}

/// The consensus participants of epoch 0: genesis's validators, sorted as consensus indexes
/// them.
///
/// # Panics
/// If genesis names a validator twice (genesis validation refuses that).
pub fn genesis_participants(genesis: &Genesis) -> Set<ed25519::PublicKey> {
    Set::try_from_iter(genesis.validator_keys()).expect("genesis validators are distinct")
}
