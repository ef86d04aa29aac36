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

//!
//! * [`epoch`]: the epoch schedule and each committee's consensus participants.
//! * [`query`]: the registry and committees in state.
//! * [`execute`]: registry changes (`leave_validator`, and governance's enactments).
//! * [`committee`]: the next committee from the current one and the registry.

pub mod committee;
pub mod epoch;
pub mod execute;
pub mod query;

pub use committee::next_committee;
pub use epoch::{epoch_of, epocher, genesis_participants, is_boundary, participants};
pub use execute::{add, check_add, check_remove, remove};
pub use query::{committee, is_validator, registry};

use consort_execution::{BlockError, Runtime, Store};
use consort_types::{
    Genesis, limits::VALIDATORS_MAX, state_key::validators as key, validators::ValidatorSet,
};

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
    if set.members.0.len() > VALIDATORS_MAX {
        return Err(BlockError::Invariant(format!(
            "next committee of {} members exceeds VALIDATORS_MAX",
            set.members.0.len()
        )));
    }
    let next = epoch
        .checked_add(1)
        .ok_or_else(|| BlockError::Invariant("epoch number overflows".into()))?;
    store.put(&key::committee(next), &set).await?;
    Ok(Some(set))
}
