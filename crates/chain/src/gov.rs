//! Consortium governance: who may write what, organisations admitted and removed by vote
//! (private mode: the founding organisation alone), accounts registered with roles.
//!
//! Votes count per organisation: a proposal passes when more than 2/3 of the member
//! organisations approve, is rejected as soon as that can no longer happen, and expires at
//! its deadline.

use crate::{
    error::{BlockError, Fail},
    state::Runtime,
    store::Store,
    validators,
};
use consort_types::{
    AccountId, Call, Genesis, TxError,
    codec_util::List,
    gov::{
        Action, EMoney, FreezeTarget, GovError, GovState, GovernanceConfig, Mode,
        OPEN_PROPOSALS_MAX, OPEN_PROPOSALS_PER_ORG_MAX, ORGS_MAX, Org, OrgId, OrgKind,
        PendingRotation, Proposal, ProposalStatus, ROTATIONS_DUE_PER_BLOCK_MAX, Registration, role,
    },
    state_key::gov as key,
    validators::ValidatorEntry,
};

/// Governance of a chain, from genesis.
#[derive(Clone, Debug)]
pub struct Gov {
    /// The configuration.
    pub config: GovernanceConfig,
    genesis: Genesis,
    /// The pegged coin's code: no bank may issue it.
    pegged: Option<consort_types::Asset>,
}

fn unauthorized(call: &Call, reason: &'static str) -> Fail {
    Fail::Tx(TxError::Unauthorized {
        call: call.kind(),
        reason,
    })
}

impl Gov {
    /// The governance `genesis` configures, if any.
    pub fn from_genesis(genesis: &Genesis) -> Option<Self> {
        genesis.governance.as_ref().map(|config| Self {
            config: config.clone(),
            genesis: genesis.clone(),
            pegged: genesis.peg.as_ref().map(|p| p.asset),
        })
    }

    fn founder(&self) -> OrgId {
        self.config.organisations[0].id
    }

    /// Write the founding organisations and their admins (block 1).
    pub async fn init<E: Runtime>(&self, store: &mut Store<'_, E>) -> Result<(), BlockError> {
        let mut state = GovState::default();
        for org in &self.config.organisations {
            store
                .put(
                    &key::org(&org.id),
                    &Org {
                        id: org.id,
                        kind: org.kind,
                        active: true,
                        admitted_at: 0,
                    },
                )
                .await?;
            state.members.0.push(org.id);
            for admin in &org.admins {
                store
                    .put(
                        &key::registration(admin),
                        &Registration {
                            org: org.id,
                            roles: org.kind.grantable(),
                            active: true,
                        },
                    )
                    .await?;
            }
        }
        for customer in &self.config.customers {
            if store
                .get::<Registration>(&key::registration(customer))
                .await?
                .is_none()
            {
                store
                    .put(
                        &key::registration(customer),
                        &Registration {
                            org: self.config.registrar,
                            roles: role::CUSTOMER,
                            active: true,
                        },
                    )
                    .await?;
            }
        }
        store.put(&key::state(), &state).await
    }

    /// The sender's registration if it is active and its organisation is a member.
    async fn active<E: Runtime>(
        store: &mut Store<'_, E>,
        sender: &AccountId,
    ) -> Result<Option<Registration>, BlockError> {
        let Some(registration) = store
            .get::<Registration>(&key::registration(sender))
            .await?
        else {
            return Ok(None);
        };
        if !registration.active {
            return Ok(None);
        }
        let org: Option<Org> = store.get(&key::org(&registration.org)).await?;
        Ok(org.filter(|o| o.active).map(|_| registration))
    }

    async fn frozen<E: Runtime>(
        store: &mut Store<'_, E>,
        target: FreezeTarget,
    ) -> Result<bool, BlockError> {
        Ok(store
            .get::<bool>(&key::frozen(&target))
            .await?
            .unwrap_or(false))
    }

    /// Refuse a sender whose account or organisation is frozen. The regulator's own calls and
    /// governance votes pass: a regulator must never be able to silence the organisations
    /// whose votes can overrule it.
    async fn check_frozen<E: Runtime>(
        store: &mut Store<'_, E>,
        sender: &AccountId,
        call: &Call,
    ) -> Result<(), Fail> {
        if matches!(
            call,
            Call::Freeze { .. } | Call::Unfreeze { .. } | Call::Propose { .. } | Call::Vote { .. }
        ) {
            return Ok(());
        }
        let mut targets = vec![FreezeTarget::Account(*sender)];
        if let Some(registration) = store
            .get::<Registration>(&key::registration(sender))
            .await?
        {
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
        let mut targets = Vec::new();
        let mut accounts = Vec::new();
        match call {
            Call::Transfer { to, .. } => accounts.push(*to),
            Call::TransferAsset { asset, to, .. } | Call::Issue { asset, to, .. } => {
                accounts.push(*to);
                targets.push(FreezeTarget::Asset(*asset));
            }
            Call::Redeem { asset, .. } => targets.push(FreezeTarget::Asset(*asset)),
            Call::PegOut { .. } => targets.extend(self.pegged.map(FreezeTarget::Asset)),
            Call::ClaimDeposit { account, .. } => {
                accounts.push(*account);
                targets.extend(self.pegged.map(FreezeTarget::Asset));
            }
            Call::Rotate { account, .. } => {
                accounts.push(*account);
                for asset in self.assets(store).await? {
                    if crate::ledger::balance(store, &asset, account).await? > 0 {
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
    async fn assets<E: Runtime>(
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

    async fn refuse_frozen<E: Runtime>(
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
    async fn check_recipient<E: Runtime>(
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

    /// The key `old` was rotated to, if it was.
    pub async fn rotated_to<E: Runtime>(
        store: &mut Store<'_, E>,
        old: &AccountId,
    ) -> Result<Option<AccountId>, BlockError> {
        store.get(&key::rotated_to(old)).await
    }

    /// The height at which governance halted the chain, while the brake holds.
    pub async fn halted<E: Runtime>(store: &mut Store<'_, E>) -> Result<Option<u64>, BlockError> {
        store.get::<u64>(&key::halted()).await
    }

    /// The role bits of `account` if its registration is active and its organisation a member.
    pub async fn active_roles<E: Runtime>(
        store: &mut Store<'_, E>,
        account: &AccountId,
    ) -> Result<Option<u16>, BlockError> {
        Ok(Self::active(store, account).await?.map(|r| r.roles))
    }

    async fn has_role<E: Runtime>(
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
        Self::check_frozen(store, sender, call).await?;
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
                if validators::is_validator(store, &self.genesis, sender).await? {
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
            Call::Transfer { .. }
            | Call::TransferAsset { .. }
            | Call::ClaimDeposit { .. }
            | Call::PegOut { .. }
            | Call::ConfirmBatch { .. }
            | Call::SetSealKey { .. }
            | Call::PutPrivate { .. } => {
                if validators::is_validator(store, &self.genesis, sender).await?
                    || Self::active(store, sender).await?.is_some()
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

    /// Apply a governance call already authorized.
    pub async fn apply<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        sender: &AccountId,
        call: &Call,
        height: u64,
    ) -> Result<(), Fail> {
        match call {
            Call::SelfRegister => {
                store
                    .put(
                        &key::registration(sender),
                        &Registration {
                            org: self.config.registrar,
                            roles: role::CUSTOMER,
                            active: true,
                        },
                    )
                    .await?;
                Ok(())
            }
            Call::Register { account, roles } => {
                let admin = Self::active(store, sender).await?.expect("authorized");
                let org: Org = store
                    .get(&key::org(&admin.org))
                    .await?
                    .ok_or(BlockError::CorruptState(key::org(&admin.org)))?;
                if roles & !org.kind.grantable() != 0 || *roles == 0 {
                    return Err(GovError::RolesNotGrantable {
                        kind: org.kind,
                        roles: *roles,
                    }
                    .into());
                }
                if store
                    .get::<Registration>(&key::registration(account))
                    .await?
                    .is_some()
                {
                    return Err(GovError::AlreadyRegistered(account.to_string()).into());
                }
                store
                    .put(
                        &key::registration(account),
                        &Registration {
                            org: admin.org,
                            roles: *roles,
                            active: true,
                        },
                    )
                    .await?;
                Ok(())
            }
            Call::Revoke { account } => {
                let admin = Self::active(store, sender).await?.expect("authorized");
                let mut registration: Registration = store
                    .get(&key::registration(account))
                    .await?
                    .filter(|r: &Registration| r.org == admin.org && r.active)
                    .ok_or_else(|| GovError::NotRegistered(account.to_string()))?;
                registration.active = false;
                store
                    .put(&key::registration(account), &registration)
                    .await?;
                Ok(())
            }
            Call::Freeze { target } => {
                store.put(&key::frozen(target), &true).await?;
                Ok(())
            }
            Call::Unfreeze { target } => {
                store.delete(&key::frozen(target)).await?;
                Ok(())
            }
            Call::Issue { asset, to, amount } => {
                let bank = Self::active(store, sender).await?.expect("authorized");
                let org: Org = store
                    .get(&key::org(&bank.org))
                    .await?
                    .ok_or(BlockError::CorruptState(key::org(&bank.org)))?;
                if org.kind != OrgKind::Bank || self.pegged == Some(*asset) {
                    return Err(GovError::NotIssuer(asset.to_string()).into());
                }
                let existing = store.get::<EMoney>(&key::emoney(asset)).await?;
                if existing.is_none() {
                    let mut assets = store
                        .get::<List<consort_types::Asset, { consort_types::gov::ASSETS_MAX }>>(
                            &key::emoney_assets(),
                        )
                        .await?
                        .unwrap_or_default();
                    if assets.0.len() >= consort_types::gov::ASSETS_MAX {
                        return Err(GovError::AtCapacity("e-money assets").into());
                    }
                    assets.0.push(*asset);
                    store.put(&key::emoney_assets(), &assets).await?;
                }
                let mut money = existing.unwrap_or(EMoney {
                    issuer: bank.org,
                    issued: 0,
                    redeemed: 0,
                    reserves: 0,
                    reported_at: 0,
                    statement: [0; 32],
                });
                if money.issuer != bank.org {
                    return Err(GovError::NotIssuer(asset.to_string()).into());
                }
                money.issued = money
                    .issued
                    .checked_add(amount.units())
                    .ok_or(TxError::InvalidAmount("issuance overflows"))?;
                store.put(&key::emoney(asset), &money).await?;
                crate::ledger::credit(store, asset, to, amount.units()).await
            }
            Call::Redeem { asset, amount } => {
                let mut money: EMoney = store
                    .get(&key::emoney(asset))
                    .await?
                    .ok_or_else(|| GovError::NotIssuer(asset.to_string()))?;
                let held = crate::ledger::balance(store, asset, sender).await?;
                if held < amount.units() {
                    return Err(GovError::RedeemTooMuch(asset.to_string()).into());
                }
                crate::ledger::debit(store, asset, sender, amount.units()).await?;
                money.redeemed += amount.units();
                store.put(&key::emoney(asset), &money).await?;
                Ok(())
            }
            Call::ReserveReport {
                asset,
                reserves,
                statement,
            } => {
                let bank = Self::active(store, sender).await?.expect("authorized");
                let mut money: EMoney = store
                    .get(&key::emoney(asset))
                    .await?
                    .filter(|m: &EMoney| m.issuer == bank.org)
                    .ok_or_else(|| GovError::NotIssuer(asset.to_string()))?;
                money.reserves = *reserves;
                money.reported_at = height;
                money.statement = *statement;
                store.put(&key::emoney(asset), &money).await?;
                Ok(())
            }
            Call::Rotate { account, new } if account == sender => {
                self.rotate(store, account, new).await
            }
            Call::Rotate { account, new } => {
                self.rotate_by_admin(store, sender, account, new, height)
                    .await
            }
            Call::CancelRotation => {
                store.delete(&key::rotation(sender)).await?;
                Ok(())
            }
            Call::Propose { action } => self.propose(store, sender, action, height).await,
            Call::Vote { proposal, approve } => {
                let admin = Self::active(store, sender).await?.expect("authorized");
                self.vote(store, admin.org, *proposal, *approve, height)
                    .await
            }
            _ => unreachable!("not a governance call"),
        }
    }

    /// Refuse a rotation to the same key or to a registered one.
    async fn check_rotation<E: Runtime>(
        store: &mut Store<'_, E>,
        account: &AccountId,
        new: &AccountId,
    ) -> Result<(), Fail> {
        if account == new {
            return Err(GovError::SameKey.into());
        }
        if store
            .get::<Registration>(&key::registration(new))
            .await?
            .is_some()
        {
            return Err(GovError::AlreadyRegistered(new.to_string()).into());
        }
        Ok(())
    }

    /// An admin's rotation of another account's key (the key is lost) is the strongest power
    /// on the chain, so it waits `rotation_delay_blocks`, during which the account may object
    /// ([`Call::CancelRotation`]); a second, different admin of the organisation sending the
    /// same rotation confirms it at once. It applies at the end of its due block
    /// ([`Self::end_block`]).
    async fn rotate_by_admin<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        admin: &AccountId,
        account: &AccountId,
        new: &AccountId,
        height: u64,
    ) -> Result<(), Fail> {
        Self::check_rotation(store, account, new).await?;
        let delay = self.config.rotation_delay_blocks();
        if delay == 0 {
            return self.rotate(store, account, new).await;
        }
        match store
            .get::<PendingRotation>(&key::rotation(account))
            .await?
        {
            Some(pending) if pending.new == *new && pending.admin != *admin => {
                self.rotate(store, account, new).await
            }
            Some(_) => Err(GovError::RotationPending(account.to_string()).into()),
            None => {
                let due = height.saturating_add(delay);
                let mut accounts = store
                    .get::<List<AccountId, ROTATIONS_DUE_PER_BLOCK_MAX>>(&key::rotations_due(due))
                    .await?
                    .unwrap_or_default();
                if accounts.0.len() >= ROTATIONS_DUE_PER_BLOCK_MAX {
                    return Err(GovError::AtCapacity(
                        "rotations falling due in one block (ROTATIONS_DUE_PER_BLOCK_MAX); \
                         send it again next block",
                    )
                    .into());
                }
                accounts.0.push(*account);
                store.put(&key::rotations_due(due), &accounts).await?;
                let pending = PendingRotation {
                    new: *new,
                    admin: *admin,
                    due,
                };
                store.put(&key::rotation(account), &pending).await?;
                Ok(())
            }
        }
    }

    /// Move `account`'s registration and asset balances to `new`, and remember where it went
    /// (authorized; the native balance moves in the execution overlay).
    async fn rotate<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        account: &AccountId,
        new: &AccountId,
    ) -> Result<(), Fail> {
        Self::check_rotation(store, account, new).await?;
        store.delete(&key::rotation(account)).await?;
        store.put(&key::rotated_to(account), new).await?;
        let mut registration: Registration = store
            .get(&key::registration(account))
            .await?
            .ok_or_else(|| GovError::NotRegistered(account.to_string()))?;
        store.put(&key::registration(new), &registration).await?;
        registration.active = false;
        store
            .put(&key::registration(account), &registration)
            .await?;
        for asset in self.assets(store).await? {
            let held = crate::ledger::balance(store, &asset, account).await?;
            if held > 0 {
                crate::ledger::debit(store, &asset, account, held).await?;
                crate::ledger::credit(store, &asset, new, held).await?;
            }
        }
        Ok(())
    }

    async fn propose<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        sender: &AccountId,
        action: &Action,
        height: u64,
    ) -> Result<(), Fail> {
        let admin = Self::active(store, sender).await?.expect("authorized");
        let call = Call::Propose { action: *action };
        if self.config.mode == Mode::Private && admin.org != self.founder() {
            return Err(unauthorized(
                &call,
                "in private mode only the founding organisation decides",
            ));
        }
        match action {
            Action::AdmitOrg { org, .. } => {
                if store.get::<Org>(&key::org(org)).await?.is_some() {
                    return Err(GovError::OrgExists(org.to_string()).into());
                }
            }
            Action::RemoveOrg { org } => {
                let member = store
                    .get::<Org>(&key::org(org))
                    .await?
                    .is_some_and(|o| o.active);
                if !member {
                    return Err(GovError::UnknownOrg(org.to_string()).into());
                }
                if self.config.mode == Mode::Private && *org == self.founder() {
                    return Err(unauthorized(
                        &call,
                        "the founding organisation of a private chain cannot be removed",
                    ));
                }
            }
            Action::AddValidator { .. } => {}
            Action::RemoveValidator { key } => {
                validators::check_remove(store, &self.genesis, key).await?;
            }
            Action::Halt => {
                if Self::halted(store).await?.is_some() {
                    return Err(GovError::AlreadyInState("halted").into());
                }
            }
            Action::Resume => {
                if Self::halted(store).await?.is_none() {
                    return Err(GovError::AlreadyInState("running").into());
                }
            }
        }
        let mut state: GovState = store
            .get(&key::state())
            .await?
            .ok_or(BlockError::CorruptState(key::state()))?;
        self.check_open(store, &mut state, admin.org, action, height)
            .await?;
        let id = state.next_proposal;
        state.next_proposal += 1;
        state.open.0.push(id);
        store.put(&key::state(), &state).await?;
        let proposal = Proposal {
            id,
            action: *action,
            proposer: admin.org,
            deadline: height.saturating_add(self.config.vote_period_blocks),
            yes: List(Vec::new()),
            no: List(Vec::new()),
            status: ProposalStatus::Open.tag(),
        };
        store.put(&key::proposal(id), &proposal).await?;
        // The proposer's organisation votes for its own proposal.
        self.vote(store, admin.org, id, true, height).await
    }

    /// Refuse a proposal that would exceed a cap or that an open one already decides. Open
    /// proposals past their deadline, which take no more votes, expire first: a slot frees
    /// the block after a deadline, not only at that block's end.
    async fn check_open<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        state: &mut GovState,
        org: OrgId,
        action: &Action,
        height: u64,
    ) -> Result<(), Fail> {
        Self::expire(store, state, height).await?;
        let (mut own, mut additions) = (0, 0);
        for id in &state.open.0 {
            let open: Proposal = store
                .get(&key::proposal(*id))
                .await?
                .ok_or(BlockError::CorruptState(key::proposal(*id)))?;
            if open.action.conflicts_with(action) {
                return Err(GovError::DuplicateProposal(*id).into());
            }
            own += usize::from(open.proposer == org);
            additions += usize::from(matches!(open.action, Action::AddValidator { .. }));
        }
        if state.open.0.len() >= OPEN_PROPOSALS_MAX {
            return Err(GovError::AtCapacity("open proposals (OPEN_PROPOSALS_MAX)").into());
        }
        if own >= OPEN_PROPOSALS_PER_ORG_MAX {
            return Err(GovError::AtCapacity(
                "open proposals of the proposing organisation (OPEN_PROPOSALS_PER_ORG_MAX); \
                 wait until one passes, fails or expires",
            )
            .into());
        }
        if let Action::AddValidator { key, address } = action {
            let entry = ValidatorEntry {
                key: *key,
                address: *address,
            };
            validators::check_add(store, &self.genesis, &entry, additions).await?;
        }
        Ok(())
    }

    async fn vote<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        org: OrgId,
        id: u64,
        approve: bool,
        height: u64,
    ) -> Result<(), Fail> {
        let mut proposal: Proposal = store
            .get(&key::proposal(id))
            .await?
            .filter(|p: &Proposal| p.status == ProposalStatus::Open.tag() && height <= p.deadline)
            .ok_or(GovError::NoSuchProposal(id))?;
        if proposal.yes.0.contains(&org) || proposal.no.0.contains(&org) {
            return Err(GovError::AlreadyVoted(org.to_string()).into());
        }
        if approve {
            proposal.yes.0.push(org);
        } else {
            proposal.no.0.push(org);
        }
        let mut state: GovState = store
            .get(&key::state())
            .await?
            .ok_or(BlockError::CorruptState(key::state()))?;
        let members = state.members.0.len();
        let counted = |list: &List<OrgId, ORGS_MAX>| {
            list.0
                .iter()
                .filter(|o| state.members.0.contains(o))
                .count()
        };
        let (yes, no) = (counted(&proposal.yes), counted(&proposal.no));
        let passes = match self.config.mode {
            Mode::Private => proposal.proposer == self.founder(),
            Mode::Consortium => 3 * yes > 2 * members,
        };
        let hopeless = 3 * (members - no.min(members)) <= 2 * members;
        if passes {
            proposal.status = ProposalStatus::Passed.tag();
            self.enact(store, &mut state, &proposal.action, height)
                .await?;
        } else if hopeless {
            proposal.status = ProposalStatus::Rejected.tag();
        }
        if proposal.status != ProposalStatus::Open.tag() {
            state.open.0.retain(|p| *p != id);
        }
        store.put(&key::state(), &state).await?;
        store.put(&key::proposal(id), &proposal).await?;
        Ok(())
    }

    async fn enact<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        state: &mut GovState,
        action: &Action,
        height: u64,
    ) -> Result<(), Fail> {
        match action {
            Action::AdmitOrg { org, kind, admin } => {
                if state.members.0.len() >= ORGS_MAX {
                    return Err(GovError::AtCapacity("member organisations").into());
                }
                store
                    .put(
                        &key::org(org),
                        &Org {
                            id: *org,
                            kind: *kind,
                            active: true,
                            admitted_at: height,
                        },
                    )
                    .await?;
                state.members.0.push(*org);
                // The first admin: a fresh account, or one the organisation brings along.
                if store
                    .get::<Registration>(&key::registration(admin))
                    .await?
                    .is_none_or(|r| !r.active)
                {
                    store
                        .put(
                            &key::registration(admin),
                            &Registration {
                                org: *org,
                                roles: kind.grantable(),
                                active: true,
                            },
                        )
                        .await?;
                }
            }
            Action::RemoveOrg { org } => {
                let mut record: Org = store
                    .get(&key::org(org))
                    .await?
                    .ok_or(BlockError::CorruptState(key::org(org)))?;
                record.active = false;
                store.put(&key::org(org), &record).await?;
                state.members.0.retain(|o| o != org);
            }
            Action::AddValidator { key, address } => {
                let entry = ValidatorEntry {
                    key: *key,
                    address: *address,
                };
                validators::add(store, &self.genesis, entry).await?;
            }
            Action::RemoveValidator { key } => {
                validators::remove(store, &self.genesis, key).await?;
            }
            // A second halt (or resume) passing after the first is a no-op.
            Action::Halt => {
                if Self::halted(store).await?.is_none() {
                    store.put(&key::halted(), &height).await?;
                }
            }
            Action::Resume => store.delete(&key::halted()).await?,
        }
        Ok(())
    }

    /// End of block: proposals past their deadline expire, and admins' rotations due now
    /// apply. Returns the native balances the execution overlay moves: `(old key, new key)`.
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
    async fn apply_due_rotations<E: Runtime>(
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
            if !Self::rotation_allowed(store, &account, &pending).await? {
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

    async fn rotation_allowed<E: Runtime>(
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
        let new_free = store
            .get::<Registration>(&key::registration(&pending.new))
            .await?
            .is_none();
        for target in [
            FreezeTarget::Account(*account),
            FreezeTarget::Account(pending.admin),
            FreezeTarget::Org(registration.org),
        ] {
            if Self::frozen(store, target).await? {
                return Ok(false);
            }
        }
        Ok(admin && new_free)
    }

    /// Mark open proposals past their deadline expired and drop them from `state.open` (the
    /// caller writes `state`). Returns whether any expired.
    async fn expire<E: Runtime>(
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
