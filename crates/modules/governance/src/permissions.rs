//! Who may make which call, and what is frozen: the [`Permissions`] of a governed chain.

use crate::Gov;
use crate::unauthorized;
use consort_execution::Permissions;
use consort_execution::{BlockError, Fail, Runtime, Store, ledger};
use consort_types::{
    AccountId, Call,
    codec_util::List,
    gov::{FreezeTarget, GovError, Org, PendingRotation, Registration, role},
    state_key::gov as key,
};

impl Gov {
    /// The sender's registration if it is active and its organisation is a member.
    pub(crate) async fn active<E: Runtime>(
        store: &mut Store<'_, E>,
        sender: &AccountId,
    ) -> Result<Option<Registration>, BlockError> {
        let registration = store
            .get::<Registration>(&key::registration(sender))
            .await?;
        Self::active_of(store, registration).await
    }

    /// [`Gov::active`] with the registration already read.
    async fn active_of<E: Runtime>(
        store: &mut Store<'_, E>,
        registration: Option<Registration>,
    ) -> Result<Option<Registration>, BlockError> {
        let Some(registration) = registration else {
            return Ok(None);
        };
        if !registration.active {
            return Ok(None);
        }
        let org: Option<Org> = store.get(&key::org(&registration.org)).await?;
        Ok(org.filter(|o| o.active).map(|_| registration))
    }

    pub(crate) async fn frozen<E: Runtime>(
        store: &mut Store<'_, E>,
        target: FreezeTarget,
    ) -> Result<bool, BlockError> {
        if Self::freezes(store).await? == 0 {
            return Ok(false);
        }
        Ok(store
            .get::<bool>(&key::frozen(&target))
            .await?
            .unwrap_or(false))
    }

    /// How many freezes are in force. Read once per block (the store keeps what it read), it
    /// spares every transaction its freeze reads while nothing is frozen.
    pub(crate) async fn freezes<E: Runtime>(store: &mut Store<'_, E>) -> Result<u64, BlockError> {
        Ok(store.get::<u64>(&key::frozen_count()).await?.unwrap_or(0))
    }

    /// Add `delta` (±1) to the count of freezes in force.
    pub(crate) async fn count_freezes<E: Runtime>(
        store: &mut Store<'_, E>,
        delta: i64,
    ) -> Result<(), BlockError> {
        let count = Self::freezes(store).await?;
        let count = count.checked_add_signed(delta).ok_or_else(|| {
            BlockError::Invariant(format!("freeze count {count} cannot move by {delta}"))
        })?;
        if count == 0 {
            store.delete(&key::frozen_count()).await?;
        } else {
            store.put(&key::frozen_count(), &count).await?;
        }
        Ok(())
    }

    /// Refuse a sender whose account or organisation is frozen (`registration`: its
    /// registration, read by the caller). The regulator's own calls and governance votes skip
    /// this check ([`Gov::authorize`]): a regulator must never be able to silence the
    /// organisations whose votes can overrule it.
    async fn check_frozen_registered<E: Runtime>(
        store: &mut Store<'_, E>,
        sender: &AccountId,
        registration: Option<&Registration>,
    ) -> Result<(), Fail> {
        let mut targets = vec![FreezeTarget::Account(*sender)];
        if let Some(registration) = registration {
            targets.push(FreezeTarget::Org(registration.org));
        }
        Self::refuse_frozen(store, targets).await
    }

    /// Refuse a call that touches a frozen account, organisation or asset other than its
    /// sender: a recipient (and its organisation), an asset moved, issued, redeemed, pegged
    /// out or claimed, a rotated account and any frozen asset it holds. Checked when the call
    /// executes: a refusal is the transaction's failure, its nonce used.
    pub async fn check_targets<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        call: &Call,
    ) -> Result<(), Fail> {
        // Payments to a rotated-away key: refused when the call runs (its nonce used), since
        // the answer depends on the recipient, not on the sender that admission checks.
        Self::check_recipient(store, call).await?;
        if Self::freezes(store).await? == 0 {
            return Ok(());
        }
        let mut targets = Vec::new();
        let mut accounts = Vec::new();
        match call {
            Call::Transfer { to, .. } => accounts.push(*to),
            Call::TransferAsset { asset, to, .. } | Call::Issue { asset, to, .. } => {
                accounts.push(*to);
                targets.push(FreezeTarget::Asset(*asset));
            }
            Call::Redeem { asset, .. } => targets.push(FreezeTarget::Asset(*asset)),
            Call::PegOut { .. } | Call::FundPegFees { .. } => {
                targets.extend(self.pegged.map(FreezeTarget::Asset));
            }
            Call::ClaimDeposit { outputs, .. } => {
                accounts.extend(outputs.0.iter().map(|o| o.account));
                accounts.sort_unstable();
                accounts.dedup();
                targets.extend(self.pegged.map(FreezeTarget::Asset));
            }
            Call::Rotate { account, .. } => {
                accounts.push(*account);
                for asset in self.assets(store).await? {
                    if ledger::balance(store, &asset, account).await? > 0 {
                        targets.push(FreezeTarget::Asset(asset));
                    }
                }
            }
            _ => {}
        }
        for account in accounts {
            targets.push(FreezeTarget::Account(account));
            if let Some(registration) = store
                .get::<Registration>(&key::registration(&account))
                .await?
            {
                targets.push(FreezeTarget::Org(registration.org));
            }
        }
        Self::refuse_frozen(store, targets).await
    }

    /// The pegged coin and every issued e-money asset.
    pub(crate) async fn assets<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
    ) -> Result<Vec<consort_types::Asset>, BlockError> {
        let mut assets: Vec<consort_types::Asset> = self.pegged.into_iter().collect();
        if let Some(issued) = store
            .get::<List<consort_types::Asset, { consort_types::gov::ASSETS_MAX }>>(
                &key::emoney_assets(),
            )
            .await?
        {
            assets.extend(issued.0);
        }
        Ok(assets)
    }

    pub(crate) async fn refuse_frozen<E: Runtime>(
        store: &mut Store<'_, E>,
        targets: Vec<FreezeTarget>,
    ) -> Result<(), Fail> {
        for target in targets {
            if Self::frozen(store, target).await? {
                let what = match target {
                    FreezeTarget::Account(id) => format!("account {id}"),
                    FreezeTarget::Asset(asset) => format!("asset {asset}"),
                    FreezeTarget::Org(org) => format!("organisation {org}"),
                };
                return Err(GovError::Frozen(what).into());
            }
        }
        Ok(())
    }

    /// Refuse payments to a key rotated away: nothing sent there could ever be spent.
    pub(crate) async fn check_recipient<E: Runtime>(
        store: &mut Store<'_, E>,
        call: &Call,
    ) -> Result<(), Fail> {
        let (Call::Transfer { to, .. } | Call::TransferAsset { to, .. } | Call::Issue { to, .. }) =
            call
        else {
            return Ok(());
        };
        match Self::rotated_to(store, to).await? {
            Some(new) => Err(GovError::RotatedAway {
                old: to.to_string(),
                new: new.to_string(),
            }
            .into()),
            None => Ok(()),
        }
    }

    pub(crate) async fn has_role<E: Runtime>(
        store: &mut Store<'_, E>,
        sender: &AccountId,
        bits: u16,
    ) -> Result<Option<Registration>, BlockError> {
        Ok(Self::active(store, sender)
            .await?
            .filter(|r| r.roles & bits != 0))
    }

    /// Check that `sender` may make `call`. Every call kind names who may make it:
    ///
    /// | call | who |
    /// |---|---|
    /// | `relay_headers`, `sign_batch` | validators (checked by the peg) |
    /// | `self_register` | an account not yet registered |
    /// | `cancel_rotation` | an account an admin's rotation waits on |
    /// | `leave_validator` | a validator in the registry |
    /// | `propose`, `vote`, `register`, `revoke` | an admin of a member organisation |
    /// | shop calls | the party each names ([`consort_types::commerce::Party`]): any active account to buy, a seller, carrier, bank or operator account for theirs |
    /// | everything else | any active account of a member organisation, or a validator |
    ///
    /// While governance holds the emergency brake ([`Action::Halt`]), every call but `propose`,
    /// `vote`, `freeze`, `unfreeze` and `cancel_rotation` (an objection moves nothing, and a
    /// halt must not eat the objection window) is refused with `chain_halted`.
    ///
    /// Payments (`transfer`, `transfer_asset`, `issue`) to a key rotated away are refused with
    /// the new key named.
    ///
    /// # Errors
    /// [`TxError::Unauthorized`] (or a database failure).
    pub async fn authorize<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        sender: &AccountId,
        call: &Call,
    ) -> Result<(), Fail> {
        if !matches!(
            call,
            Call::Propose { .. }
                | Call::Vote { .. }
                | Call::Freeze { .. }
                | Call::Unfreeze { .. }
                | Call::CancelRotation
        ) && Self::halted(store).await?.is_some()
        {
            return Err(GovError::Halted.into());
        }
        // The sender's registration, read once for the freeze check and the role checks.
        let registration = store
            .get::<Registration>(&key::registration(sender))
            .await?;
        if !matches!(
            call,
            Call::Freeze { .. } | Call::Unfreeze { .. } | Call::Propose { .. } | Call::Vote { .. }
        ) {
            Self::check_frozen_registered(store, sender, registration.as_ref()).await?;
        }
        match call {
            Call::Rotate { account, .. } => {
                let Some(registration) = Self::active(store, account).await? else {
                    return Err(GovError::NotRegistered(account.to_string()).into());
                };
                if sender == account {
                    return Ok(());
                }
                match Self::active(store, sender).await? {
                    Some(admin)
                        if admin.org == registration.org && admin.roles & role::ADMIN != 0 =>
                    {
                        Ok(())
                    }
                    _ => Err(unauthorized(
                        call,
                        "only the account itself or an admin of its organisation rotates its key",
                    )),
                }
            }
            Call::LeaveValidator => {
                if consort_validators::is_validator(store, &self.genesis, sender).await? {
                    Ok(())
                } else {
                    Err(unauthorized(
                        call,
                        "only a validator leaves the validator set",
                    ))
                }
            }
            Call::Freeze { .. } | Call::Unfreeze { .. } => {
                match Self::has_role(store, sender, role::REGULATOR).await? {
                    Some(_) => Ok(()),
                    None => Err(unauthorized(
                        call,
                        "only the regulator freezes and unfreezes",
                    )),
                }
            }
            Call::Issue { .. } | Call::ReserveReport { .. } => {
                match Self::has_role(store, sender, role::BANK).await? {
                    Some(_) => Ok(()),
                    None => Err(unauthorized(
                        call,
                        "only a bank account of a member bank issues e-money and reports reserves",
                    )),
                }
            }
            Call::Redeem { .. } => {
                if Self::active(store, sender).await?.is_some() {
                    Ok(())
                } else {
                    Err(unauthorized(
                        call,
                        "only registered accounts redeem e-money",
                    ))
                }
            }
            // The peg checks the sender against the federation at admission and execution.
            Call::RelayHeaders { .. } | Call::SignBatch { .. } => Ok(()),
            // A validator-to-be registers its federation key before it is proposed: any
            // account that is not frozen may (one key per account, proved by its signature).
            Call::RegisterFederationKey { .. } => Ok(()),
            Call::CancelRotation => {
                if store
                    .get::<PendingRotation>(&key::rotation(sender))
                    .await?
                    .is_some()
                {
                    Ok(())
                } else {
                    Err(GovError::NoPendingRotation(sender.to_string()).into())
                }
            }
            Call::SelfRegister => {
                if store
                    .get::<Registration>(&key::registration(sender))
                    .await?
                    .is_some()
                {
                    return Err(GovError::AlreadyRegistered(sender.to_string()).into());
                }
                Ok(())
            }
            Call::Propose { .. }
            | Call::Vote { .. }
            | Call::Register { .. }
            | Call::Revoke { .. } => match Self::active(store, sender).await? {
                Some(r) if r.roles & role::ADMIN != 0 => Ok(()),
                _ => Err(unauthorized(
                    call,
                    "only an admin of a member organisation may do this",
                )),
            },
            Call::Commerce(shop) => {
                use consort_types::commerce::Party;
                let (bits, reason) = match shop.party() {
                    Party::Buyer => (
                        role::ALL,
                        "only registered accounts shop; register first (self_register for customers)",
                    ),
                    Party::Seller => (
                        role::SELLER,
                        "only a seller account of a seller organisation may do this",
                    ),
                    Party::Carrier => (
                        role::CARRIER,
                        "only a carrier account of a logistics organisation may do this",
                    ),
                    Party::Bank => (
                        role::BANK,
                        "only a bank account of a member bank may do this",
                    ),
                    Party::Operator => (
                        role::OPERATOR,
                        "only an operator account of the platform may do this",
                    ),
                };
                match Self::active_of(store, registration).await? {
                    Some(r) if r.roles & bits != 0 => Ok(()),
                    _ => Err(unauthorized(call, reason)),
                }
            }
            Call::Transfer { .. }
            | Call::TransferAsset { .. }
            | Call::ClaimDeposit { .. }
            | Call::PegOut { .. }
            | Call::FundPegFees { .. }
            | Call::ConfirmBatch { .. }
            | Call::SetSealKey { .. }
            | Call::PutPrivate { .. } => {
                // Most senders are registered: the registry (a list) is read only for others.
                if Self::active_of(store, registration).await?.is_some()
                    || consort_validators::is_validator(store, &self.genesis, sender).await?
                {
                    Ok(())
                } else {
                    Err(unauthorized(
                        call,
                        "the sender is not a registered account of a member organisation; \
                         register first (self_register for customers)",
                    ))
                }
            }
        }
    }
}

impl Permissions for Gov {
    fn governed(&self) -> bool {
        true
    }

    async fn holds_role<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        account: &AccountId,
        role: u16,
    ) -> Result<bool, BlockError> {
        Ok(Self::active_roles(store, account)
            .await?
            .is_some_and(|roles| roles & role != 0))
    }

    async fn authorize<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        sender: &AccountId,
        call: &Call,
    ) -> Result<(), Fail> {
        Gov::authorize(self, store, sender, call).await
    }

    async fn check_targets<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        call: &Call,
    ) -> Result<(), Fail> {
        Gov::check_targets(self, store, call).await
    }
}
