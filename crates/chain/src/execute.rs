//! Deterministic block execution.
//!
//! A block's transactions run against an in-memory overlay of the accounts they touch, loaded
//! from the parent's state in one read; the overlay is written back in key order. No clock, no
//! floats, no unordered iteration: the same parent state and transactions give the same root on
//! every node.

use crate::{
    peg::{self, Fail, Peg},
    state::{Merkleized, Runtime, Unmerkleized, from_value, to_value},
    store::Store,
};
use commonware_glue::stateful::db::Unmerkleized as _;
use consort_types::{
    Account, AccountId, Amount, Call, Digest, Genesis, GenesisAccount, SignedTx, TxError, TxHash,
    peg::PegError, state_key, state_key::TxLocation,
};
use std::collections::{BTreeMap, BTreeSet};

/// Whether invalid transactions are skipped (building a block) or make the block invalid
/// (verifying a peer's block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Build: drop what fails and report it.
    Propose,
    /// Verify: any failure rejects the whole block.
    Verify,
}

/// Why a block cannot be executed.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// A transaction in a peer's block fails.
    #[error("transaction {index} is invalid: {error}")]
    InvalidTx {
        /// Position in the block.
        index: usize,
        /// Why.
        error: TxError,
    },
    /// A stored value does not decode: the database is corrupt.
    #[error("stored state under {0} does not decode")]
    CorruptState(Digest),
    /// The database failed.
    #[error("state database: {0}")]
    Database(String),
    /// A read-only snapshot went stale: a block was applied while it was read. Read again
    /// from a fresh snapshot.
    #[error("the state moved on while it was read")]
    StaleRead,
    /// A ledger invariant does not hold after the block: a bug, never a user's fault.
    #[error("invariant broken: {0}")]
    Invariant(String),
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

    /// Count a transaction other than a native transfer against the sender's nonce.
    pub fn bump_nonce(&mut self, id: AccountId, mut account: Account) -> Result<(), TxError> {
        account.nonce = account
            .nonce
            .checked_add(1)
            .ok_or(TxError::InvalidAmount("nonce overflow"))?;
        self.accounts.insert(id, Some(account));
        self.dirty.insert(id);
        Ok(())
    }

    /// Apply a native transfer whose signature and stateless rules were already checked. On
    /// error nothing changes.
    pub fn apply(&mut self, tx: &SignedTx) -> Result<(), TxError> {
        let sender_id = &tx.tx.sender;
        let mut sender = self.check_nonce(tx)?;
        match &tx.tx.call {
            Call::Transfer { to, amount } => {
                sender.balance =
                    sender
                        .balance
                        .checked_sub(*amount)
                        .ok_or(TxError::InsufficientBalance {
                            balance: sender.balance,
                            needed: *amount,
                        })?;
                sender.nonce = sender
                    .nonce
                    .checked_add(1)
                    .ok_or(TxError::InvalidAmount("nonce overflow"))?;
                // Self-transfers only bump the nonce.
                let mut recipient = if to == sender_id {
                    sender
                } else {
                    self.get(to).unwrap_or_default()
                };
                recipient.balance = recipient
                    .balance
                    .checked_add(*amount)
                    .ok_or(TxError::InvalidAmount("recipient balance would overflow"))?;
                if to == sender_id {
                    sender = recipient;
                } else {
                    self.accounts.insert(*to, Some(recipient));
                    self.dirty.insert(*to);
                }
            }
            _ => unreachable!("Overlay::apply takes native transfers"),
        }
        self.accounts.insert(*sender_id, Some(sender));
        self.dirty.insert(*sender_id);
        Ok(())
    }

    /// Move all of `from`'s native balance to `to` (a key rotation). On error nothing changes;
    /// two balances never sum past the total supply, so it does not fail in practice.
    pub fn move_all(&mut self, from: AccountId, to: AccountId) -> Result<(), TxError> {
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
    /// Transactions applied, in order.
    pub included: Vec<SignedTx>,
    /// Transactions dropped while building, with why (not those merely out of nonce order).
    pub rejected: Vec<(TxHash, TxError)>,
    /// The next epoch's committee, if this is the last block of an epoch.
    pub next_committee: Option<consort_types::validators::ValidatorSet>,
}

/// What a block executes against besides its parent state.
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    /// The chain's genesis (credited in block 1).
    pub genesis: &'a Genesis,
    /// The peg, if genesis configures one.
    pub peg: Option<&'a Peg>,
    /// Governance and permissions, if genesis configures them.
    pub gov: Option<&'a crate::gov::Gov>,
}

/// A transaction other than a native transfer: its records go through `store`'s journal, so
/// a refusal leaves nothing behind. The outer `Result` is for database failures.
async fn apply_other<E: Runtime>(
    overlay: &mut Overlay,
    store: &mut Store<'_, E>,
    rules: Rules<'_>,
    tx: &SignedTx,
    height: u64,
) -> Result<Result<(), TxError>, BlockError> {
    let sender = match overlay.check_nonce(tx) {
        Ok(account) => account,
        Err(error) => return Ok(Err(error)),
    };
    let result = match &tx.tx.call {
        Call::TransferAsset { asset, to, amount } => {
            transfer_asset(store, asset, &tx.tx.sender, to, amount.units()).await
        }
        Call::Transfer { .. } => unreachable!("native transfers go through the overlay"),
        Call::SetSealKey { .. } | Call::PutPrivate { .. } => {
            crate::private::apply(
                store,
                rules.gov.is_some(),
                &tx.tx.sender,
                &tx.tx.call,
                height,
            )
            .await
        }
        Call::LeaveValidator => {
            crate::validators::remove(store, rules.genesis, &tx.tx.sender).await
        }
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
            Some(gov) => gov.apply(store, &tx.tx.sender, &tx.tx.call, height).await,
            None => Err(Fail::Tx(TxError::Unauthorized {
                call: tx.tx.call.kind(),
                reason: "this chain has no governance section in genesis",
            })),
        },
        call => match rules.peg {
            Some(peg) => peg.apply(store, &tx.tx.sender, call, height).await,
            None => Err(Fail::Tx(TxError::Peg(PegError::Disabled))),
        },
    };
    match result {
        Ok(()) => {
            store.commit();
            let bumped = overlay.bump_nonce(tx.tx.sender, sender);
            // An admin's rotation may only be recorded, to apply after a delay (gov moves the
            // coins then, through `end_block`): move them only if the key moved now.
            if let (Ok(()), Call::Rotate { account, new }) = (&bumped, &tx.tx.call)
                && crate::gov::Gov::rotated_to(store, account).await? == Some(*new)
            {
                return Ok(overlay.move_all(*account, *new));
            }
            Ok(bumped)
        }
        Err(Fail::Tx(error)) => {
            store.rollback();
            Ok(Err(error))
        }
        Err(Fail::Db(error)) => Err(error),
    }
}

async fn transfer_asset<E: Runtime>(
    store: &mut Store<'_, E>,
    asset: &consort_types::Asset,
    from: &AccountId,
    to: &AccountId,
    amount: u64,
) -> Result<(), Fail> {
    let balance = peg::balance(store, asset, from).await?;
    if balance < amount {
        return Err(Fail::Tx(TxError::InsufficientBalance {
            balance: consort_types::Amount::new(balance),
            needed: consort_types::Amount::new(amount),
        }));
    }
    // A transfer to oneself only checks the balance.
    if from != to {
        peg::debit(store, asset, from, amount).await?;
        peg::credit(store, asset, to, amount).await?;
    }
    Ok(())
}

/// Execute `txs` as block `height` on `batch` under `rules` (block 1 also credits genesis).
pub async fn execute_block<E: Runtime>(
    batch: Unmerkleized<E>,
    height: u64,
    txs: Vec<SignedTx>,
    rules: Rules<'_>,
    mode: Mode,
) -> Result<Executed<E>, BlockError> {
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
    let mut rejected = Vec::new();
    // Transactions of each sender in this block, for the per-account rate limit.
    let mut per_sender: std::collections::BTreeMap<AccountId, u32> = Default::default();
    for (index, tx) in txs.into_iter().enumerate() {
        if let Some(limits) = rules.genesis.account_limits {
            let size = commonware_codec::EncodeSize::encode_size(&tx);
            if size > limits.tx_size_max as usize {
                let error = TxError::Oversized {
                    size,
                    max: limits.tx_size_max as usize,
                };
                if mode == Mode::Propose {
                    rejected.push((tx.hash(), error));
                    continue;
                }
                return Err(BlockError::InvalidTx { index, error });
            }
            if per_sender.get(&tx.tx.sender).copied().unwrap_or(0) >= limits.txs_per_block {
                if mode == Mode::Propose {
                    // Not refused: it waits in the pool for a later block.
                    continue;
                }
                return Err(BlockError::InvalidTx {
                    index,
                    error: TxError::RateLimited {
                        limit: limits.txs_per_block,
                        scope: "in this block",
                    },
                });
            }
        }
        if let Some(gov) = rules.gov {
            match gov.authorize(&mut store, &tx.tx.sender, &tx.tx.call).await {
                Ok(()) => {}
                Err(Fail::Db(error)) => return Err(error),
                Err(Fail::Tx(error)) if mode == Mode::Propose => {
                    rejected.push((tx.hash(), error));
                    continue;
                }
                Err(Fail::Tx(error)) => return Err(BlockError::InvalidTx { index, error }),
            }
        }
        let result = match &tx.tx.call {
            Call::Transfer { .. } => overlay.apply(&tx),
            _ => apply_other(&mut overlay, &mut store, rules, &tx, height).await?,
        };
        match result {
            Ok(()) => {
                *per_sender.entry(tx.tx.sender).or_default() += 1;
                included.push(tx);
            }
            // Out of nonce order for this parent: it may fit a later block (or is already in
            // an unfinalized ancestor); the pool keeps it until finality decides.
            Err(TxError::NonceTooHigh { .. } | TxError::NonceReused { .. })
                if mode == Mode::Propose => {}
            Err(error) if mode == Mode::Propose => rejected.push((tx.hash(), error)),
            Err(error) => return Err(BlockError::InvalidTx { index, error }),
        }
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
    for (index, tx) in included.iter().enumerate() {
        let location = TxLocation {
            height,
            index: u32::try_from(index).expect("BLOCK_TXS_MAX fits u32"),
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
        rejected,
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
