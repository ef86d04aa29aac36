//! The checks a call passes besides its own rules: whether its sender may make it (before it
//! takes a place in a block, at admission and in the block alike) and whether what it touches
//! is open to it (when it runs; a refusal then is its receipt). Governance implements them for
//! a consortium chain; [`Open`] is a chain without a governance section.

use crate::error::{BlockError, Fail};
use consort_state::{Runtime, Store};
use consort_types::{AccountId, Call};
use std::future::Future;

/// Permission and freeze checks.
pub trait Permissions: Sync {
    /// Whether accounts, organisations and roles are governed (a consortium chain).
    fn governed(&self) -> bool;

    /// Whether `account` is active and holds `role` (a bit of [`consort_types::gov::role`]).
    ///
    /// # Errors
    /// If the state cannot be read.
    fn holds_role<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        account: &AccountId,
        role: u16,
    ) -> impl Future<Output = Result<bool, BlockError>> + Send;

    /// Whether `sender` may make `call` now: its registration, role and freezes, and the
    /// emergency brake. The answer depends only on the sender and the call's kind (but for
    /// `rotate`, which names an account), so admission may cache it per finalized block.
    ///
    /// # Errors
    /// [`Fail::Tx`] with why, or [`Fail::Db`] if the state cannot be read.
    fn authorize<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        sender: &AccountId,
        call: &Call,
    ) -> impl Future<Output = Result<(), Fail>> + Send;

    /// Whether what `call` touches besides its sender (a recipient and its organisation, an
    /// asset moved) is open to it. Checked when it runs.
    ///
    /// # Errors
    /// [`Fail::Tx`] with why, or [`Fail::Db`] if the state cannot be read.
    fn check_targets<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        call: &Call,
    ) -> impl Future<Output = Result<(), Fail>> + Send;
}

/// A chain without governance: any key may make any call its module accepts, and nothing is
/// ever frozen.
#[derive(Clone, Copy, Debug, Default)]
pub struct Open;

impl Permissions for Open {
    fn governed(&self) -> bool {
        false
    }

    async fn holds_role<E: Runtime>(
        &self,
        _store: &mut Store<'_, E>,
        _account: &AccountId,
        _role: u16,
    ) -> Result<bool, BlockError> {
        Ok(false)
    }

    async fn authorize<E: Runtime>(
        &self,
        _store: &mut Store<'_, E>,
        _sender: &AccountId,
        _call: &Call,
    ) -> Result<(), Fail> {
        Ok(())
    }

    async fn check_targets<E: Runtime>(
        &self,
        _store: &mut Store<'_, E>,
        _call: &Call,
    ) -> Result<(), Fail> {
        Ok(())
    }
}
