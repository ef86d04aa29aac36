//! End of block: proposals past their deadline expire, admins' rotations due now apply.

use crate::Gov;
use consort_execution::{BlockError, Fail, Runtime, Store, ledger};
use consort_types::{
    AccountId,
    codec_util::List,
    gov::{
        FreezeTarget, GovState, PendingRotation, Proposal, ProposalStatus,
        ROTATIONS_DUE_PER_BLOCK_MAX, role,
    },
    state_key::gov as key,
};

impl Gov {
    /// End of block: proposals past their deadline expire, and admins' rotations due now
    /// apply (every balance moving with the key). Returns the rotations applied, `(old key,
    /// new key)`.
    pub async fn end_block<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        height: u64,
    ) -> Result<Vec<(AccountId, AccountId)>, BlockError> {
        let Some(mut state) = store.get::<GovState>(&key::state()).await? else {
            return Ok(Vec::new());
        };
        if Self::expire(store, &mut state, height).await? {
            store.put(&key::state(), &state).await?;
        }
        self.apply_due_rotations(store, height).await
    }

    /// Admins' rotations due at `height` apply if they could still be made now: the chain
    /// running, the account active and neither it nor its organisation frozen, the admin
    /// still an unfrozen admin of that organisation, the new key still free. Otherwise they
    /// are dropped and the admin asks again (a halt drops them too, so that the holder gets a
    /// whole objection window on a running chain).
    pub(crate) async fn apply_due_rotations<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        height: u64,
    ) -> Result<Vec<(AccountId, AccountId)>, BlockError> {
        let Some(due) = store
            .get::<List<AccountId, ROTATIONS_DUE_PER_BLOCK_MAX>>(&key::rotations_due(height))
            .await?
        else {
            return Ok(Vec::new());
        };
        store.delete(&key::rotations_due(height)).await?;
        let mut moves = Vec::new();
        for account in due.0 {
            // Cancelled, confirmed, or asked again for a later block meanwhile: skip.
            let Some(pending) = store
                .get::<PendingRotation>(&key::rotation(&account))
                .await?
                .filter(|p| p.due == height)
            else {
                continue;
            };
            store.delete(&key::rotation(&account)).await?;
            if !self.rotation_allowed(store, &account, &pending).await? {
                continue;
            }
            match self.rotate(store, &account, &pending.new).await {
                Ok(()) => moves.push((account, pending.new)),
                Err(Fail::Db(error)) => return Err(error),
                Err(Fail::Tx(error)) => {
                    return Err(BlockError::Invariant(format!(
                        "a checked rotation of {account} failed: {error}"
                    )));
                }
            }
        }
        Ok(moves)
    }

    pub(crate) async fn rotation_allowed<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        account: &AccountId,
        pending: &PendingRotation,
    ) -> Result<bool, BlockError> {
        if Self::halted(store).await?.is_some() {
            return Ok(false);
        }
        let Some(registration) = Self::active(store, account).await? else {
            return Ok(false);
        };
        let admin = Self::active(store, &pending.admin)
            .await?
            .is_some_and(|a| a.org == registration.org && a.roles & role::ADMIN != 0);
        // As when it was asked for: a new key that is free, within the rotation cap.
        let new_free = match Self::check_rotation(store, account, &pending.new).await {
            Ok(()) => true,
            Err(Fail::Tx(_)) => false,
            Err(Fail::Db(error)) => return Err(error),
        };
        // As `check_targets` refuses a rotation now: a frozen asset the account holds must not
        // move with the key either.
        let mut targets = vec![
            FreezeTarget::Account(*account),
            FreezeTarget::Account(pending.admin),
            FreezeTarget::Org(registration.org),
        ];
        for asset in self.assets(store).await? {
            if ledger::balance(store, &asset, account).await? > 0 {
                targets.push(FreezeTarget::Asset(asset));
            }
        }
        for target in targets {
            if Self::frozen(store, target).await? {
                return Ok(false);
            }
        }
        Ok(admin && new_free)
    }

    /// Mark open proposals past their deadline expired and drop them from `state.open` (the
    /// caller writes `state`). Returns whether any expired.
    pub(crate) async fn expire<E: Runtime>(
        store: &mut Store<'_, E>,
        state: &mut GovState,
        height: u64,
    ) -> Result<bool, BlockError> {
        let mut expired = Vec::new();
        for id in &state.open.0 {
            let mut proposal: Proposal = store
                .get(&key::proposal(*id))
                .await?
                .ok_or(BlockError::CorruptState(key::proposal(*id)))?;
            if height > proposal.deadline {
                proposal.status = ProposalStatus::Expired.tag();
                store.put(&key::proposal(*id), &proposal).await?;
                expired.push(*id);
            }
        }
        state.open.0.retain(|id| !expired.contains(id));
        Ok(!expired.is_empty())
    }
}
