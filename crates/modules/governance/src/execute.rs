//! The governance calls: registration, proposals and votes, supervision (freezes), banks'
//! e-money, key rotations.

use crate::Gov;
use crate::unauthorized;
use consort_execution::{BlockError, Context, Fail, Runtime, Store, ledger, ledger::Denom};
use consort_types::{
    AccountId, Call, TxError,
    codec_util::List,
    gov::{
        Action, EMoney, GovError, GovState, Mode, OPEN_PROPOSALS_MAX, OPEN_PROPOSALS_PER_ORG_MAX,
        ORGS_MAX, Org, OrgId, OrgKind, PendingRotation, Proposal, ProposalStatus,
        ROTATIONS_DUE_PER_BLOCK_MAX, Registration, role,
    },
    state_key::gov as key,
    validators::ValidatorEntry,
};

impl Gov {
    /// Apply a governance call already authorized.
    pub async fn apply<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        ctx: Context<'_>,
        call: &Call,
    ) -> Result<(), Fail> {
        let (sender, height) = (ctx.sender, ctx.height());
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
                let admin = Self::active(store, sender)
                    .await?
                    .ok_or_else(|| GovError::NotRegistered(sender.to_string()))?;
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
                let admin = Self::active(store, sender)
                    .await?
                    .ok_or_else(|| GovError::NotRegistered(sender.to_string()))?;
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
                if !Self::frozen(store, *target).await? {
                    store.put(&key::frozen(target), &true).await?;
                    Self::count_freezes(store, 1).await?;
                }
                Ok(())
            }
            Call::Unfreeze { target } => {
                if Self::frozen(store, *target).await? {
                    store.delete(&key::frozen(target)).await?;
                    Self::count_freezes(store, -1).await?;
                }
                Ok(())
            }
            Call::Issue { asset, to, amount } => {
                let bank = Self::active(store, sender)
                    .await?
                    .ok_or_else(|| GovError::NotRegistered(sender.to_string()))?;
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
                ledger::credit(store, asset, to, amount.units()).await
            }
            Call::Redeem { asset, amount } => {
                let mut money: EMoney = store
                    .get(&key::emoney(asset))
                    .await?
                    .ok_or_else(|| GovError::NotIssuer(asset.to_string()))?;
                let held = ledger::balance(store, asset, sender).await?;
                if held < amount.units() {
                    return Err(GovError::RedeemTooMuch(asset.to_string()).into());
                }
                ledger::debit(store, asset, sender, amount.units()).await?;
                // Never more is redeemed than was issued, which fits a u64.
                money.redeemed = money.redeemed.checked_add(amount.units()).ok_or_else(|| {
                    BlockError::Invariant(format!("{asset}: redeemed exceeds u64"))
                })?;
                store.put(&key::emoney(asset), &money).await?;
                Ok(())
            }
            Call::ReserveReport {
                asset,
                reserves,
                statement,
            } => {
                let bank = Self::active(store, sender)
                    .await?
                    .ok_or_else(|| GovError::NotRegistered(sender.to_string()))?;
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
                let admin = Self::active(store, sender)
                    .await?
                    .ok_or_else(|| GovError::NotRegistered(sender.to_string()))?;
                self.vote(store, admin.org, *proposal, *approve, height)
                    .await
            }
            _ => Err(unauthorized(call, "not a governance call")),
        }
    }

    /// Refuse a key that cannot be a new organisation's first admin: one rotated away (made
    /// active again, it would be an account whose orders [`Gov::current_key`] hands to its
    /// successor), or an active member of another organisation (an account belongs to one).
    /// A key whose organisation was removed may be brought along.
    async fn check_new_admin<E: Runtime>(
        store: &mut Store<'_, E>,
        admin: &AccountId,
    ) -> Result<(), Fail> {
        if let Some(new) = Self::rotated_to(store, admin).await? {
            return Err(GovError::RotatedAway {
                old: admin.to_string(),
                new: new.to_string(),
            }
            .into());
        }
        if Self::active(store, admin).await?.is_some() {
            return Err(GovError::AlreadyRegistered(admin.to_string()).into());
        }
        Ok(())
    }

    /// Refuse a rotation to the same key or to a registered one, or of an account that has
    /// rotated [`ROTATION_HOPS_MAX`](consort_types::gov::ROTATION_HOPS_MAX) times already
    /// (reads at most that many keys back).
    ///
    /// Admission asks it too, against the finalized state: each refusal stays true once it
    /// holds (registrations are never removed, rotations only add up), so a rotation it
    /// refuses there could only fail in a block, using its nonce.
    ///
    /// # Errors
    /// [`Fail::Tx`] with why, or [`Fail::Db`] if the state cannot be read.
    pub async fn check_rotation<E: Runtime>(
        store: &mut Store<'_, E>,
        account: &AccountId,
        new: &AccountId,
    ) -> Result<(), Fail> {
        if account == new {
            return Err(GovError::SameKey.into());
        }
        let mut rotations = 0;
        let mut at = *account;
        while let Some(before) = store.get::<AccountId>(&key::rotated_from(&at)).await? {
            rotations += 1;
            if rotations >= consort_types::gov::ROTATION_HOPS_MAX {
                return Err(GovError::RotationLimit(account.to_string()).into());
            }
            at = before;
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
    pub(crate) async fn rotate_by_admin<E: Runtime>(
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
    pub(crate) async fn rotate<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        account: &AccountId,
        new: &AccountId,
    ) -> Result<(), Fail> {
        Self::check_rotation(store, account, new).await?;
        store.delete(&key::rotation(account)).await?;
        store.put(&key::rotated_to(account), new).await?;
        store.put(&key::rotated_from(new), account).await?;
        let mut registration: Registration = store
            .get(&key::registration(account))
            .await?
            .ok_or_else(|| GovError::NotRegistered(account.to_string()))?;
        store.put(&key::registration(new), &registration).await?;
        registration.active = false;
        store
            .put(&key::registration(account), &registration)
            .await?;
        ledger::move_all(store, Denom::Native, account, new).await?;
        for asset in self.assets(store).await? {
            ledger::move_all(store, asset, account, new).await?;
        }
        Ok(())
    }

    pub(crate) async fn propose<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        sender: &AccountId,
        action: &Action,
        height: u64,
    ) -> Result<(), Fail> {
        let admin = Self::active(store, sender)
            .await?
            .ok_or_else(|| GovError::NotRegistered(sender.to_string()))?;
        let call = Call::Propose { action: *action };
        if self.config.mode == Mode::Private && Some(admin.org) != self.founder() {
            return Err(unauthorized(
                &call,
                "in private mode only the founding organisation decides",
            ));
        }
        match action {
            Action::AdmitOrg { org, admin, .. } => {
                if store.get::<Org>(&key::org(org)).await?.is_some() {
                    return Err(GovError::OrgExists(org.to_string()).into());
                }
                Self::check_new_admin(store, admin).await?;
            }
            Action::RemoveOrg { org } => {
                let member = store
                    .get::<Org>(&key::org(org))
                    .await?
                    .is_some_and(|o| o.active);
                if !member {
                    return Err(GovError::UnknownOrg(org.to_string()).into());
                }
                if self.config.mode == Mode::Private && Some(*org) == self.founder() {
                    return Err(unauthorized(
                        &call,
                        "the founding organisation of a private chain cannot be removed",
                    ));
                }
            }
            Action::AddValidator { .. } => {}
            Action::RemoveValidator { key } => {
                consort_validators::check_remove(store, &self.genesis, key).await?;
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
        state.next_proposal = id
            .checked_add(1)
            .ok_or_else(|| BlockError::Invariant("proposal ids exhausted".into()))?;
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
    pub(crate) async fn check_open<E: Runtime>(
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
            consort_validators::check_add(store, &self.genesis, &entry, additions).await?;
        }
        Ok(())
    }

    pub(crate) async fn vote<E: Runtime>(
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
        let mut state: GovState = store
            .get(&key::state())
            .await?
            .ok_or(BlockError::CorruptState(key::state()))?;
        let votes = if approve {
            &mut proposal.yes
        } else {
            &mut proposal.no
        };
        // A list past ORGS_MAX would never decode again, and organisations may come and go
        // while a proposal is open. Votes of those removed count for nothing: drop them when
        // the list is full (a removed organisation is never admitted again, so it cannot vote
        // twice). The voter is a member not in the list, so there is room after.
        if votes.0.len() >= ORGS_MAX {
            votes.0.retain(|o| state.members.0.contains(o));
        }
        votes.0.push(org);
        let members = state.members.0.len();
        let counted = |list: &List<OrgId, ORGS_MAX>| {
            list.0
                .iter()
                .filter(|o| state.members.0.contains(o))
                .count()
        };
        let (yes, no) = (counted(&proposal.yes), counted(&proposal.no));
        let passes = match self.config.mode {
            Mode::Private => Some(proposal.proposer) == self.founder(),
            Mode::Consortium => 3 * yes > 2 * members,
        };
        let hopeless = 3 * (members - no.min(members)) <= 2 * members;
        // An admission whose admin key can no longer be one (it rotated away, or joined
        // another organisation, while the vote ran) cannot pass: it is rejected, freeing its
        // place, so that a new proposal can name a usable key.
        let enactable = match &proposal.action {
            Action::AdmitOrg { admin, .. } if passes => {
                match Self::check_new_admin(store, admin).await {
                    Ok(()) => true,
                    Err(Fail::Tx(_)) => false,
                    Err(error) => return Err(error),
                }
            }
            _ => true,
        };
        if passes && enactable {
            proposal.status = ProposalStatus::Passed.tag();
            self.enact(store, &mut state, &proposal.action, height)
                .await?;
        } else if hopeless || passes {
            proposal.status = ProposalStatus::Rejected.tag();
        }
        if proposal.status != ProposalStatus::Open.tag() {
            state.open.0.retain(|p| *p != id);
        }
        store.put(&key::state(), &state).await?;
        store.put(&key::proposal(id), &proposal).await?;
        Ok(())
    }

    pub(crate) async fn enact<E: Runtime>(
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
                // Checked at proposing and again before enacting (`vote`).
                Self::check_new_admin(store, admin).await?;
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
                // The first admin: a fresh account, or one the organisation brings along from
                // a removed one (never a rotated-away key: its orders and payments follow its
                // successor).
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
                consort_validators::add(store, &self.genesis, entry).await?;
            }
            Action::RemoveValidator { key } => {
                consort_validators::remove(store, &self.genesis, key).await?;
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
}
