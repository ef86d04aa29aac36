//! Deterministic block execution.
//!
//! A block's transactions run against an in-memory overlay of the accounts they touch, loaded
//! from the parent's state in one read; the overlay is written back in key order. No clock, no
//! floats, no unordered iteration: the same parent state and transactions give the same root on
//! every node.

use crate::{
    admission,
    error::{BlockError, Fail},
    ledger,
    rules::{BlockInfo, Rules},
    state::{Merkleized, Runtime, Unmerkleized, from_value, to_value},
    store::Store,
};
use commonware_glue::stateful::db::Unmerkleized as _;
use consort_types::{
    Account, AccountId, Amount, Call, Digest, GenesisAccount, Outcome, SignedTx, TxError, TxHash,
    peg::PegError, state_key, state_key::TxLocation,
};
use std::collections::{BTreeMap, BTreeSet};

/// Whether transactions that may not take a place in the block are skipped (building a
/// block) or make the block invalid (verifying a peer's block). Either way a transaction that
/// takes its place and then fails is included with its failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Build: skip what may not be included and report what never can be.
    Propose,
    /// Verify: a transaction that may not be included rejects the whole block.
    Verify,
}

/// The accounts a block touches, before and after its transactions.
#[derive(Debug, Default)]
pub struct Overlay {
    accounts: BTreeMap<AccountId, Option<Account>>,
    dirty: BTreeSet<AccountId>,
}

impl Overlay {
    /// An overlay over already-loaded accounts (`None`: the account does not exist).
    pub fn new(accounts: BTreeMap<AccountId, Option<Account>>) -> Self {
        Self {
            accounts,
            dirty: BTreeSet::new(),
        }
    }

    /// Credit genesis allocations (the first block only).
    pub fn credit_genesis(&mut self, allocations: &[GenesisAccount]) {
        for allocation in allocations {
            let account = self.accounts.entry(allocation.id).or_insert(None);
            let entry = account.get_or_insert_with(Account::default);
            entry.balance = allocation.balance;
            self.dirty.insert(allocation.id);
        }
    }

    /// The account as the overlay sees it now.
    pub fn get(&self, id: &AccountId) -> Option<Account> {
        self.accounts.get(id).copied().flatten()
    }

    /// Make sure `ids` exist (validators, at genesis), with nothing in them if new.
    pub fn create(&mut self, ids: impl IntoIterator<Item = AccountId>) {
        for id in ids {
            let account = self.accounts.entry(id).or_insert(None);
            if account.is_none() {
                *account = Some(Account::default());
                self.dirty.insert(id);
            }
        }
    }

    /// The sender's account if `tx`'s nonce is the next one. A sender never seen before may
    /// make any call but a native transfer (which needs a funded account).
    pub fn check_nonce(&self, tx: &SignedTx) -> Result<Account, TxError> {
        let sender_id = &tx.tx.sender;
        let sender = match self.get(sender_id) {
            Some(account) => account,
            None if matches!(tx.tx.call, Call::Transfer { .. }) => {
                return Err(TxError::UnknownAccount(*sender_id));
            }
            None => Account::default(),
        };
        if tx.tx.nonce < sender.nonce {
            return Err(TxError::NonceReused {
                expected: sender.nonce,
                got: tx.tx.nonce,
            });
        }
        if tx.tx.nonce > sender.nonce {
            return Err(TxError::NonceTooHigh {
                expected: sender.nonce,
                got: tx.tx.nonce,
            });
        }
        Ok(sender)
    }

    /// Use the sender's nonce: every included transaction does, applied or failed.
    pub fn bump_nonce(&mut self, id: AccountId) -> Result<(), TxError> {
        let mut account = self.get(&id).unwrap_or_default();
        account.nonce = account
            .nonce
            .checked_add(1)
            .ok_or(TxError::InvalidAmount("nonce overflow"))?;
        self.accounts.insert(id, Some(account));
        self.dirty.insert(id);
        Ok(())
    }

    /// Move `amount` of the native coin from `from` to `to`. On error nothing changes.
    pub fn transfer(
        &mut self,
        from: AccountId,
        to: AccountId,
        amount: Amount,
    ) -> Result<(), TxError> {
        let mut sender = self.get(&from).unwrap_or_default();
        sender.balance =
            sender
                .balance
                .checked_sub(amount)
                .ok_or(TxError::InsufficientBalance {
                    balance: sender.balance,
                    needed: amount,
                })?;
        // A transfer to oneself only checks the balance.
        if to == from {
            return Ok(());
        }
        let mut recipient = self.get(&to).unwrap_or_default();
        recipient.balance = recipient
            .balance
            .checked_add(amount)
            .ok_or(TxError::InvalidAmount("recipient balance would overflow"))?;
        self.accounts.insert(from, Some(sender));
        self.accounts.insert(to, Some(recipient));
        self.dirty.insert(from);
        self.dirty.insert(to);
        Ok(())
    }

    /// Apply a native transfer whose signature and stateless rules were already checked:
    /// check the nonce, move the coins, use the nonce. On error nothing changes.
    pub fn apply(&mut self, tx: &SignedTx) -> Result<(), TxError> {
        self.check_nonce(tx)?;
        let Call::Transfer { to, amount } = &tx.tx.call else {
            return Err(TxError::Unauthorized {
                call: tx.tx.call.kind(),
                reason: "only native transfers apply to the account overlay",
            });
        };
        self.transfer(tx.tx.sender, *to, *amount)?;
        self.bump_nonce(tx.tx.sender)
    }

    /// Move all of `from`'s native balance to `to` (a key rotation). On error nothing changes;
    /// two balances never sum past the total supply, so it does not fail in practice.
    pub fn move_all(&mut self, from: AccountId, to: AccountId) -> Result<(), TxError> {
        if from == to {
            return Ok(());
        }
        let mut source = self.get(&from).unwrap_or_default();
        let mut target = self.get(&to).unwrap_or_default();
        target.balance = target
            .balance
            .checked_add(source.balance)
            .ok_or(TxError::InvalidAmount("balance would overflow"))?;
        source.balance = Amount::new(0);
        self.accounts.insert(from, Some(source));
        self.accounts.insert(to, Some(target));
        self.dirty.insert(from);
        self.dirty.insert(to);
        Ok(())
    }

    /// Add accounts loaded after the block began; those the overlay holds stay as they are.
    pub fn include(&mut self, accounts: BTreeMap<AccountId, Option<Account>>) {
        for (id, account) in accounts {
            self.accounts.entry(id).or_insert(account);
        }
    }

    /// Changed accounts in key order.
    pub fn changes(&self) -> impl Iterator<Item = (&AccountId, Account)> {
        self.dirty
            .iter()
            .filter_map(|id| self.get(id).map(|account| (id, account)))
    }
}

/// The accounts every transaction of `txs` reads or writes, in order.
pub fn touched(txs: &[SignedTx]) -> BTreeSet<AccountId> {
    let mut ids = BTreeSet::new();
    for tx in txs {
        ids.insert(tx.tx.sender);
        match &tx.tx.call {
            Call::Transfer { to, .. } => {
                ids.insert(*to);
            }
            Call::Rotate { account, new } => {
                ids.insert(*account);
                ids.insert(*new);
            }
            _ => {}
        }
    }
    ids
}

/// Read accounts from a batch.
pub async fn load_accounts<E: Runtime>(
    batch: &Unmerkleized<E>,
    ids: impl IntoIterator<Item = AccountId>,
) -> Result<BTreeMap<AccountId, Option<Account>>, BlockError> {
    let ids: Vec<AccountId> = ids.into_iter().collect();
    let keys: Vec<Digest> = ids.iter().map(state_key::account).collect();
    let key_refs: Vec<&Digest> = keys.iter().collect();
    let values = batch
        .get_many(&key_refs)
        .await
        .map_err(|e| BlockError::Database(format!("{e:?}")))?;
    let mut accounts = BTreeMap::new();
    for ((id, key), value) in ids.into_iter().zip(keys).zip(values) {
        let account = match value {
            Some(bytes) => {
                Some(from_value::<Account>(&bytes).ok_or(BlockError::CorruptState(key))?)
            }
            None => None,
        };
        accounts.insert(id, account);
    }
    Ok(accounts)
}

/// What executing a block produced.
pub struct Executed<E: Runtime> {
    /// The state after the block.
    pub merkleized: Merkleized<E>,
    /// Transactions included, in order (applied or failed).
    pub included: Vec<SignedTx>,
    /// Each included transaction's outcome, by position.
    pub outcomes: Vec<Outcome>,
    /// Transactions building refused a place, with why (not those that merely wait: out of
    /// nonce order for this parent, or over the per-block rate).
    pub rejected: Vec<(TxHash, TxError)>,
    /// Included transactions that failed, with the whole error (the block keeps its code).
    pub failures: Vec<(TxHash, TxError)>,
    /// The next epoch's committee, if this is the last block of an epoch.
    pub next_committee: Option<consort_types::validators::ValidatorSet>,
}

/// Why a transaction does not take a place in the block being built.
enum Skip {
    /// It may fit a later block (out of nonce order for this parent, or over the per-block
    /// rate): the pool keeps it.
    Wait(TxError),
    /// It can never take a place as it stands: the pool drops it.
    Refuse(TxError),
}

/// Whether `tx` may take the next place in the block: size, per-block rate, exact nonce and
/// the sender's eligibility ([`admission::eligible`]) against the block's state so far.
async fn place<E: Runtime>(
    overlay: &Overlay,
    store: &mut Store<'_, E>,
    rules: Rules<'_>,
    per_sender: &BTreeMap<AccountId, u32>,
    tx: &SignedTx,
) -> Result<Result<(), Skip>, BlockError> {
    if let Some(limits) = rules.genesis.account_limits
        && per_sender.get(&tx.tx.sender).copied().unwrap_or(0) >= limits.txs_per_block
    {
        return Ok(Err(Skip::Wait(TxError::RateLimited {
            limit: limits.txs_per_block,
            scope: "in this block",
        })));
    }
    let eligible = admission::eligible(store, rules, tx).await;
    // Eligibility only reads; nothing to keep from its journal.
    store.rollback();
    match eligible {
        Ok(()) => {}
        Err(Fail::Tx(error)) => return Ok(Err(Skip::Refuse(error))),
        Err(Fail::Db(error)) => return Err(error),
    }
    match overlay.check_nonce(tx) {
        Ok(_) => Ok(Ok(())),
        Err(error @ (TxError::NonceTooHigh { .. } | TxError::NonceReused { .. })) => {
            Ok(Err(Skip::Wait(error)))
        }
        Err(error) => Ok(Err(Skip::Refuse(error))),
    }
}

/// Run a placed transaction's call. Its records go through `store`'s journal and native
/// coins through the overlay; on failure both are left as they were. The outer `Result` is
/// for database failures.
async fn run<E: Runtime>(
    overlay: &mut Overlay,
    store: &mut Store<'_, E>,
    rules: Rules<'_>,
    tx: &SignedTx,
    block: BlockInfo,
) -> Result<Result<(), TxError>, BlockError> {
    let sender = &tx.tx.sender;
    let call = &tx.tx.call;
    let result = match dispatch(overlay, store, rules, sender, call, block).await {
        // A rotation also moves the native coins, last, so that nothing is left half-done.
        Ok(()) => match call {
            // An admin's rotation may only be recorded, to apply after a delay (gov hands the
            // coins over at `end_block` then): move them only if the key moved now.
            Call::Rotate { account, new } => {
                match crate::gov::Gov::rotated_to(store, account).await {
                    Ok(Some(to)) if to == *new => {
                        overlay.move_all(*account, *new).map_err(Fail::Tx)
                    }
                    Ok(_) => Ok(()),
                    Err(error) => Err(Fail::Db(error)),
                }
            }
            _ => Ok(()),
        },
        Err(fail) => Err(fail),
    };
    match result {
        Ok(()) => {
            store.commit();
            Ok(Ok(()))
        }
        Err(Fail::Tx(error)) => {
            store.rollback();
            Ok(Err(error))
        }
        Err(Fail::Db(error)) => Err(error),
    }
}

/// The one place that routes each call to its module. Every arm is written out: a new call
/// does not compile until it has a home.
async fn dispatch<E: Runtime>(
    overlay: &mut Overlay,
    store: &mut Store<'_, E>,
    rules: Rules<'_>,
    sender: &AccountId,
    call: &Call,
    block: BlockInfo,
) -> Result<(), Fail> {
    if let Some(gov) = rules.gov {
        gov.check_targets(store, call).await?;
    }
    let height = block.height;
    match call {
        Call::Transfer { to, amount } => Ok(overlay.transfer(*sender, *to, *amount)?),
        Call::TransferAsset { asset, to, amount } => {
            ledger::transfer(store, asset, sender, to, amount.units()).await
        }
        Call::SetSealKey { .. } | Call::PutPrivate { .. } => {
            crate::private::apply(store, rules.gov.is_some(), sender, call, height).await
        }
        Call::LeaveValidator => crate::validators::remove(store, rules.genesis, sender).await,
        Call::Propose { .. }
        | Call::Vote { .. }
        | Call::Register { .. }
        | Call::Revoke { .. }
        | Call::SelfRegister
        | Call::Freeze { .. }
        | Call::Unfreeze { .. }
        | Call::Issue { .. }
        | Call::Redeem { .. }
        | Call::ReserveReport { .. }
        | Call::Rotate { .. }
        | Call::CancelRotation => match rules.gov {
            Some(gov) => gov.apply(store, sender, call, height).await,
            None => Err(Fail::Tx(TxError::Unauthorized {
                call: call.kind(),
                reason: "this chain has no governance section in genesis",
            })),
        },
        Call::RelayHeaders { .. }
        | Call::ClaimDeposit { .. }
        | Call::PegOut { .. }
        | Call::SignBatch { .. }
        | Call::ConfirmBatch { .. } => match rules.peg {
            Some(peg) => peg.apply(store, sender, call, height).await,
            None => Err(Fail::Tx(TxError::Peg(PegError::Disabled))),
        },
    }
}

/// Execute `txs` as `block` on `batch` under `rules` (block 1 also credits genesis).
///
/// Each transaction first needs a place ([`place`]): while building, one without is skipped
/// (and reported in [`Executed::rejected`] if it can never have one); while verifying, one
/// without makes the block invalid. A placed transaction runs; applied or failed, it is
/// included with its [`Outcome`] and uses its nonce.
pub async fn execute_block<E: Runtime>(
    batch: Unmerkleized<E>,
    block: BlockInfo,
    txs: Vec<SignedTx>,
    rules: Rules<'_>,
    mode: Mode,
) -> Result<Executed<E>, BlockError> {
    let height = block.height;
    let genesis = (height == 1).then_some(rules.genesis);
    let mut ids = touched(&txs);
    if let Some(genesis) = genesis {
        ids.extend(genesis.accounts.iter().map(|a| a.id));
        ids.extend(genesis.validators.iter().map(|v| v.public_key));
    }
    let mut overlay = Overlay::new(load_accounts(&batch, ids).await?);
    let mut store = Store::new(&batch);
    if let Some(genesis) = genesis {
        overlay.credit_genesis(&genesis.accounts);
        overlay.create(genesis.validators.iter().map(|v| v.public_key));
        if let Some(peg) = rules.peg {
            peg.init(&mut store).await?;
            store.commit();
        }
        if let Some(gov) = rules.gov {
            gov.init(&mut store).await?;
            store.commit();
        }
    }
    let mut included = Vec::with_capacity(txs.len());
    let mut outcomes = Vec::with_capacity(txs.len());
    let mut rejected = Vec::new();
    let mut failures = Vec::new();
    // Transactions of each sender in this block, for the per-account rate limit.
    let mut per_sender: BTreeMap<AccountId, u32> = BTreeMap::new();
    for (index, tx) in txs.into_iter().enumerate() {
        match (
            place(&overlay, &mut store, rules, &per_sender, &tx).await?,
            mode,
        ) {
            (Ok(()), _) => {}
            (Err(Skip::Wait(_)), Mode::Propose) => continue,
            (Err(Skip::Refuse(error)), Mode::Propose) => {
                rejected.push((tx.hash(), error));
                continue;
            }
            (Err(Skip::Wait(error) | Skip::Refuse(error)), Mode::Verify) => {
                return Err(BlockError::InvalidTx { index, error });
            }
        }
        let outcome = match run(&mut overlay, &mut store, rules, &tx, block).await? {
            Ok(()) => Outcome::Applied,
            Err(error) => {
                let outcome = Outcome::failed(&error);
                failures.push((tx.hash(), error));
                outcome
            }
        };
        // Placed means the nonce is the next one and not u64::MAX: this cannot fail.
        overlay
            .bump_nonce(tx.tx.sender)
            .map_err(|e| BlockError::Invariant(format!("placed transaction's nonce: {e}")))?;
        *per_sender.entry(tx.tx.sender).or_default() += 1;
        included.push(tx);
        outcomes.push(outcome);
    }
    if let Some(gov) = rules.gov {
        let rotations = gov.end_block(&mut store, height).await?;
        store.commit();
        // Admins' rotations that waited out their delay: the native coins move with the key.
        let ids = rotations.iter().flat_map(|(old, new)| [*old, *new]);
        overlay.include(load_accounts(&batch, ids).await?);
        for (old, new) in rotations {
            overlay
                .move_all(old, new)
                .map_err(|error| BlockError::Invariant(format!("rotation: {error}")))?;
        }
    }
    if let Some(peg) = rules.peg {
        peg.end_block(&mut store, height).await?;
        store.commit();
        if store.touched() {
            peg.check_invariant(&mut store).await?;
        }
    }
    let next_committee = crate::validators::end_block(&mut store, rules.genesis, height).await?;
    store.commit();
    let records = store.into_writes();
    let mut batch = batch;
    for (id, account) in overlay.changes() {
        batch = batch.write(state_key::account(id), Some(to_value(&account)));
    }
    for (key, value) in records {
        batch = batch.write(key, value);
    }
    for (index, (tx, outcome)) in included.iter().zip(&outcomes).enumerate() {
        let location = TxLocation {
            height,
            index: u32::try_from(index).expect("BLOCK_TXS_MAX fits u32"),
            applied: outcome.is_applied(),
        };
        batch = batch.write(state_key::tx(&tx.hash()), Some(to_value(&location)));
    }
    let merkleized = batch
        .merkleize()
        .await
        .map_err(|e| BlockError::Database(format!("{e:?}")))?;
    Ok(Executed {
        merkleized,
        included,
        outcomes,
        rejected,
        failures,
        next_committee,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::{Signer, ed25519};
    use consort_types::{Amount, Tx};

    fn id(seed: u64) -> AccountId {
        AccountId::new(ed25519::PrivateKey::from_seed(seed).public_key())
    }

    fn transfer(from: u64, to: u64, nonce: u64, amount: u64) -> SignedTx {
        Tx {
            chain_id: 1,
            sender: id(from),
            nonce,
            call: Call::Transfer {
                to: id(to),
                amount: Amount::new(amount),
            },
        }
        .sign(&ed25519::PrivateKey::from_seed(from))
    }

    fn funded() -> Overlay {
        let mut overlay = Overlay::default();
        overlay.credit_genesis(&[GenesisAccount {
            id: id(1),
            balance: Amount::new(100),
        }]);
        overlay
    }

    #[test]
    fn transfer_moves_balance_and_bumps_nonce() {
        let mut overlay = funded();
        overlay.apply(&transfer(1, 2, 0, 30)).expect("applies");
        assert_eq!(
            overlay.get(&id(1)).map(|a| (a.balance.units(), a.nonce)),
            Some((70, 1))
        );
        assert_eq!(overlay.get(&id(2)).map(|a| a.balance.units()), Some(30));
    }

    #[test]
    fn replayed_nonce_is_refused_and_changes_nothing() {
        let mut overlay = funded();
        overlay.apply(&transfer(1, 2, 0, 30)).expect("applies");
        let before = overlay.get(&id(1));
        assert!(matches!(
            overlay.apply(&transfer(1, 2, 0, 30)),
            Err(TxError::NonceReused {
                expected: 1,
                got: 0
            })
        ));
        assert_eq!(overlay.get(&id(1)), before);
    }

    #[test]
    fn overdraft_is_refused_and_changes_nothing() {
        let mut overlay = funded();
        assert!(matches!(
            overlay.apply(&transfer(1, 2, 0, 101)),
            Err(TxError::InsufficientBalance { .. })
        ));
        assert_eq!(
            overlay.get(&id(1)).map(|a| (a.balance.units(), a.nonce)),
            Some((100, 0))
        );
        assert_eq!(overlay.get(&id(2)), None);
    }

    #[test]
    fn unknown_sender_is_refused() {
        let mut overlay = funded();
        assert!(matches!(
            overlay.apply(&transfer(9, 2, 0, 1)),
            Err(TxError::UnknownAccount(_))
        ));
    }

    #[test]
    fn self_transfer_keeps_balance_and_bumps_nonce() {
        let mut overlay = funded();
        overlay.apply(&transfer(1, 1, 0, 40)).expect("applies");
        assert_eq!(
            overlay.get(&id(1)).map(|a| (a.balance.units(), a.nonce)),
            Some((100, 1))
        );
    }

    #[test]
    fn supply_is_conserved_over_many_transfers() {
        let mut overlay = funded();
        let mut nonces = [0u64; 4];
        for step in 0..200u64 {
            let from = 1 + step % 4;
            let to = 1 + (step * 7 + 3) % 4;
            let amount = 1 + step % 13;
            if overlay
                .apply(&transfer(from, to, nonces[(from - 1) as usize], amount))
                .is_ok()
            {
                nonces[(from - 1) as usize] += 1;
            }
            let total: u64 = (1..=4)
                .filter_map(|s| overlay.get(&id(s)))
                .map(|a| a.balance.units())
                .sum();
            assert_eq!(total, 100, "supply changed at step {step}");
        }
    }
}
