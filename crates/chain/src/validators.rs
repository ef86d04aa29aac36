//! The validator registry in state, and the committee each epoch runs with.
//!
//! Governance edits the registry at once; the last block of every epoch derives the next
//! epoch's committee from it. Committees are written once and never change, so a node that
//! replays the chain, restarts, or catches up reads the same committee for an epoch as every
//! other node.
//!
//! A change never lets newcomers hold the new committee hostage: the members that stay must
//! reach a quorum of the new committee on their own, so at most `f` newcomers join per epoch
//! (the rest join at the following boundaries), and if every member is removed at once the
//! removals wait until newcomers are in. A newcomer that never comes online therefore cannot
//! stall consensus — the failure every surveyed BFT consortium chain reports after a
//! validator-set change. (Committees of fewer than four tolerate no fault; they still grow,
//! one newcomer per epoch.)

use crate::{
    error::{BlockError, Fail},
    state::Runtime,
    store::Store,
};
use commonware_consensus::types::{Epoch, Epocher, FixedEpocher, Height};
use commonware_utils::NZU64;
use consort_types::{
    AccountId, Genesis,
    gov::GovError,
    limits::VALIDATORS_MAX,
    state_key::validators as key,
    validators::{ValidatorEntry, ValidatorSet},
};
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

/// The live registry (the genesis set until governance first changes it).
pub async fn registry<E: Runtime>(
    store: &mut Store<'_, E>,
    genesis: &Genesis,
) -> Result<ValidatorSet, BlockError> {
    Ok(store
        .get::<ValidatorSet>(&key::registry())
        .await?
        .unwrap_or_else(|| genesis.validator_set()))
}

/// The committee of `epoch`, if its boundary block has been executed.
pub async fn committee<E: Runtime>(
    store: &mut Store<'_, E>,
    genesis: &Genesis,
    epoch: u64,
) -> Result<Option<ValidatorSet>, BlockError> {
    if epoch == 0 {
        return Ok(Some(genesis.validator_set()));
    }
    store.get(&key::committee(epoch)).await
}

/// Whether `key` is in the live registry.
pub async fn is_validator<E: Runtime>(
    store: &mut Store<'_, E>,
    genesis: &Genesis,
    key: &AccountId,
) -> Result<bool, BlockError> {
    Ok(registry(store, genesis).await?.contains(key))
}

/// Check that `entry` may join: not a member yet, and room left in the registry for it and
/// the `pending` additions already proposed (so no enactment can exceed [`VALIDATORS_MAX`]).
pub async fn check_add<E: Runtime>(
    store: &mut Store<'_, E>,
    genesis: &Genesis,
    entry: &ValidatorEntry,
    pending: usize,
) -> Result<(), Fail> {
    let set = registry(store, genesis).await?;
    if set.contains(&entry.key) {
        return Err(GovError::ValidatorExists(entry.key.to_string()).into());
    }
    if set.members.0.len().saturating_add(pending) >= VALIDATORS_MAX {
        return Err(GovError::AtCapacity(
            "validators (VALIDATORS_MAX, counting open add_validator proposals); remove one \
             or wait for the open additions to be decided",
        )
        .into());
    }
    Ok(())
}

/// Check that `key` may leave: a member, and not the last.
pub async fn check_remove<E: Runtime>(
    store: &mut Store<'_, E>,
    genesis: &Genesis,
    key: &AccountId,
) -> Result<(), Fail> {
    let set = registry(store, genesis).await?;
    if !set.contains(key) {
        return Err(GovError::UnknownValidator(key.to_string()).into());
    }
    if set.members.0.len() == 1 {
        return Err(GovError::LastValidator.into());
    }
    Ok(())
}

/// Add `entry` to the registry (checked by [`check_add`]).
pub async fn add<E: Runtime>(
    store: &mut Store<'_, E>,
    genesis: &Genesis,
    entry: ValidatorEntry,
) -> Result<(), Fail> {
    check_add(store, genesis, &entry, 0).await?;
    let mut set = registry(store, genesis).await?;
    set.members.0.push(entry);
    store.put(&key::registry(), &set).await?;
    Ok(())
}

/// Remove `key` from the registry (checked by [`check_remove`]).
pub async fn remove<E: Runtime>(
    store: &mut Store<'_, E>,
    genesis: &Genesis,
    key: &AccountId,
) -> Result<(), Fail> {
    check_remove(store, genesis, key).await?;
    let mut set = registry(store, genesis).await?;
    set.members.0.retain(|v| v.key != *key);
    store.put(&key::registry(), &set).await?;
    Ok(())
}

/// End of block: the last block of epoch `e` fixes the committee of epoch `e + 1` (returned,
/// for the block header).
pub async fn end_block<E: Runtime>(
    store: &mut Store<'_, E>,
    genesis: &Genesis,
    height: u64,
) -> Result<Option<ValidatorSet>, BlockError> {
    if !is_boundary(genesis, height) {
        return Ok(None);
    }
    let epoch = epoch_of(genesis, height).get();
    let current = committee(store, genesis, epoch)
        .await?
        .ok_or(BlockError::CorruptState(key::committee(epoch)))?;
    let set = next_committee(&current, &registry(store, genesis).await?);
    assert!(
        set.members.0.len() <= VALIDATORS_MAX,
        "next_committee keeps committees within VALIDATORS_MAX"
    );
    store.put(&key::committee(epoch + 1), &set).await?;
    Ok(Some(set))
}

/// Faults a committee of `n` tolerates: `n = 3f + 1`, rounded down.
const fn faults(n: usize) -> usize {
    n.saturating_sub(1) / 3
}

/// The committee that follows `current` towards `registry`: registry members already in
/// `current` stay; newcomers join, in registry order, while the stayers alone still make a
/// quorum (`n - f`) of the result, and at least one joins. If no member stays, the current
/// ones stay until newcomers have joined, and then newcomers join only while the committee
/// stays within [`VALIDATORS_MAX`] (a whole committee of more than 22 replaced at once would
/// otherwise overflow it).
pub fn next_committee(current: &ValidatorSet, registry: &ValidatorSet) -> ValidatorSet {
    let mut staying: Vec<ValidatorEntry> = registry
        .members
        .0
        .iter()
        .filter(|v| current.contains(&v.key))
        .copied()
        .collect();
    if staying.is_empty() {
        staying.clone_from(&current.members.0);
    }
    let base = staying.len();
    for newcomer in registry
        .members
        .0
        .iter()
        .filter(|v| !current.contains(&v.key))
    {
        // A committee of fewer than four tolerates no fault, so it grows one newcomer at a
        // time: that newcomer must be online for the next epoch to make progress.
        let joined = staying.len() - base + 1;
        if joined > faults(staying.len() + 1).max(1) || staying.len() >= VALIDATORS_MAX {
            break;
        }
        staying.push(*newcomer);
    }
    let mut next = ValidatorSet::default();
    next.members.0 = staying;
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer;
    use consort_types::validators::ValidatorEntry;

    fn set(ids: &[u8]) -> ValidatorSet {
        let mut set = ValidatorSet::default();
        for id in ids {
            set.members.0.push(ValidatorEntry {
                key: AccountId::new(commonware_cryptography::Signer::public_key(
                    &commonware_cryptography::ed25519::PrivateKey::from_seed(u64::from(*id)),
                )),
                address: ([127, 0, 0, 1], 9000 + u16::from(*id)).into(),
            });
        }
        set
    }

    fn ids(set: &ValidatorSet) -> Vec<u8> {
        // The port names the validator.
        set.members
            .0
            .iter()
            .map(|v| u8::try_from(v.address.port() - 9000).expect("small id"))
            .collect()
    }

    #[test]
    fn newcomers_join_only_while_the_stayers_alone_make_a_quorum() {
        let four = set(&[1, 2, 3, 4]);
        // One newcomer to four: 4 of 5 is a quorum.
        assert_eq!(
            ids(&next_committee(&four, &set(&[1, 2, 3, 4, 5]))),
            [1, 2, 3, 4, 5]
        );
        // Three newcomers at once: one now, the next two when the five may lose one more.
        let wanted = set(&[1, 2, 3, 4, 5, 6, 7]);
        let first = next_committee(&four, &wanted);
        assert_eq!(ids(&first), [1, 2, 3, 4, 5]);
        let second = next_committee(&first, &wanted);
        assert_eq!(ids(&second), [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(next_committee(&second, &wanted), second);
        // Removals take effect at once; a swap is a removal and a newcomer.
        assert_eq!(ids(&next_committee(&four, &set(&[2, 3]))), [2, 3]);
        assert_eq!(
            ids(&next_committee(&four, &set(&[2, 3, 4, 9]))),
            [2, 3, 4, 9]
        );
    }

    #[test]
    fn small_committees_grow_one_at_a_time_and_a_full_replacement_waits() {
        let one = set(&[1]);
        let wanted = set(&[1, 2, 3]);
        let two = next_committee(&one, &wanted);
        assert_eq!(ids(&two), [1, 2]);
        assert_eq!(ids(&next_committee(&two, &wanted)), [1, 2, 3]);
        // Every member replaced: the old ones stay until one newcomer is in, then go.
        let replaced = set(&[7, 8, 9]);
        let step = next_committee(&set(&[1, 2, 3]), &replaced);
        assert_eq!(ids(&step), [1, 2, 3, 7]);
        assert_eq!(ids(&next_committee(&step, &replaced)), [7, 8]);
    }

    #[test]
    fn replacing_a_whole_committee_of_thirty_never_exceeds_validators_max() {
        let wanted = set(&(101..=130).collect::<Vec<u8>>());
        let mut committee = set(&(1..=30).collect::<Vec<u8>>());
        for _ in 0..64 {
            committee = next_committee(&committee, &wanted);
            assert!(
                committee.members.0.len() <= VALIDATORS_MAX,
                "a committee of {} exceeds VALIDATORS_MAX",
                committee.members.0.len()
            );
        }
        assert_eq!(ids(&committee), ids(&wanted), "the replacement completes");
    }
}
