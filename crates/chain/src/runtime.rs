//! The runtime: deterministic block execution over the modules.
//!
//! A block's transactions run against one [`Store`] over the parent's state (the accounts they
//! touch read in one pass first); each call goes to its module through [`dispatch`], the one
//! exhaustive `match` on calls; everything written is handed back in key order. No clock, no
//! floats, no unordered iteration: the same parent state and transactions give the same root on
//! every node.

use crate::{admission, rules::Rules};
use commonware_glue::stateful::db::Unmerkleized as _;
use consort_execution::{
    BlockError, BlockInfo, Context, Fail, Open, Permissions as _, Runtime, Store, accounts,
    ledger::{self, Denom},
};
use consort_state::{Merkleized, Unmerkleized};
use consort_types::{
    AccountId, Call, Digest, Outcome, SignedTx, TxError, TxHash, commerce::CommerceError,
    peg::PegError, state_key,
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

/// What executing a block produced.
pub struct Executed<E: Runtime> {
    /// The state after the block.
    pub merkleized: Merkleized<E>,
    /// Transactions included, in order (applied or failed): the very list given when every
    /// one was included (always when verifying), so a verified block copies no transaction.
    pub included: std::sync::Arc<Vec<SignedTx>>,
    /// Each included transaction's outcome, by position.
    pub outcomes: Vec<Outcome>,
    /// Transactions building refused a place, with why (not those that merely wait: out of
    /// nonce order for this parent, or over the per-block rate).
    pub rejected: Vec<(TxHash, TxError)>,
    /// Included transactions that failed, with the whole error (the block keeps its code).
    pub failures: Vec<(TxHash, TxError)>,
    /// The next epoch's committee, if this is the last block of an epoch.
    pub next_committee: Option<consort_types::validators::ValidatorSet>,
    /// Every state key the block wrote or deleted (raw chunk keys), in key order.
    pub written: Vec<consort_types::Digest>,
    /// The shop records the block changed, with their values after it: the node keeps them
    /// for the read side ([`consort_types::changes`]).
    pub changes: consort_types::changes::Changes,
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
    match accounts::check_nonce(store, tx).await? {
        Ok(_) => Ok(Ok(())),
        Err(error @ (TxError::NonceTooHigh { .. } | TxError::NonceReused { .. })) => {
            Ok(Err(Skip::Wait(error)))
        }
        Err(error) => Ok(Err(Skip::Refuse(error))),
    }
}

/// Run a placed transaction's call through `store`'s journal: kept if it applies, dropped if
/// it fails. The outer `Result` is for database failures.
async fn run<E: Runtime>(
    store: &mut Store<'_, E>,
    rules: Rules<'_>,
    tx: &SignedTx,
    block: BlockInfo,
    index: u32,
) -> Result<Result<(), TxError>, BlockError> {
    let ctx = Context {
        sender: &tx.tx.sender,
        block,
        index,
    };
    match dispatch(store, rules, ctx, &tx.tx.call).await {
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

/// The one place that routes each call to its module. Every arm is written out, grouped by
/// module: a new call does not compile until it has a home.
async fn dispatch<E: Runtime>(
    store: &mut Store<'_, E>,
    rules: Rules<'_>,
    ctx: Context<'_>,
    call: &Call,
) -> Result<(), Fail> {
    match rules.gov {
        Some(gov) => gov.check_targets(store, call).await?,
        None => Open.check_targets(store, call).await?,
    }
    let sender = ctx.sender;
    match call {
        // Accounts and assets: one ledger for every asset.
        Call::Transfer { to, amount } => {
            ledger::transfer(store, Denom::Native, sender, to, amount.units()).await
        }
        Call::TransferAsset { asset, to, amount } => {
            ledger::transfer(store, asset, sender, to, amount.units()).await
        }
        // Private records.
        Call::SetSealKey { .. } | Call::PutPrivate { .. } => match rules.gov {
            Some(gov) => consort_private::apply(store, gov, ctx, call).await,
            None => consort_private::apply(store, &Open, ctx, call).await,
        },
        // Validators.
        Call::LeaveValidator => consort_validators::remove(store, rules.genesis, sender).await,
        // Governance, supervision, banks' e-money, key rotation.
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
            Some(gov) => gov.apply(store, ctx, call).await,
            None => Err(Fail::Tx(TxError::Unauthorized {
                call: call.kind(),
                reason: "this chain has no governance section in genesis",
            })),
        },
        // The two-way peg.
        Call::RelayHeaders { .. }
        | Call::ClaimDeposit { .. }
        | Call::PegOut { .. }
        | Call::SignBatch { .. }
        | Call::ConfirmBatch { .. }
        | Call::RegisterFederationKey { .. }
        | Call::FundPegFees { .. } => match rules.peg {
            Some(peg) => peg.apply(store, ctx, call).await,
            None => Err(Fail::Tx(TxError::Peg(PegError::Disabled))),
        },
        // The shop.
        Call::Commerce(shop) => match (rules.commerce, rules.gov) {
            (Some(commerce), Some(gov)) => commerce.apply(store, gov, ctx, shop).await,
            _ => Err(Fail::Tx(TxError::Commerce(CommerceError::Disabled))),
        },
    }
}

/// What banks and the peg created of an asset, for the conservation check.
struct Creation<'a> {
    peg: Option<&'a consort_peg::Peg>,
}

impl<E: Runtime> consort_commerce::conservation::Created<E> for Creation<'_> {
    async fn created(
        &self,
        store: &mut Store<'_, E>,
        asset: &consort_types::Asset,
    ) -> Result<i128, BlockError> {
        match self.peg {
            Some(peg) if peg.config.asset == *asset => {
                Ok(i128::from(peg.totals(store).await?.supply))
            }
            _ => consort_commerce::conservation::emoney_created(store, asset).await,
        }
    }
}

/// Execute `txs` as `block` on `batch` under `rules` (block 1 also credits genesis).
///
/// Each transaction first needs a place ([`place`]): while building, one without is skipped
/// (and reported in [`Executed::rejected`] if it can never have one); while verifying, one
/// without makes the block invalid. A placed transaction runs; applied or failed, it is
/// included with its [`Outcome`] and uses its nonce.
///
/// # Errors
/// A database failure, a broken invariant, or (verifying) a transaction without a place.
pub async fn execute_block<E: Runtime>(
    batch: Unmerkleized<E>,
    block: BlockInfo,
    txs: impl Into<std::sync::Arc<Vec<SignedTx>>>,
    rules: Rules<'_>,
    mode: Mode,
) -> Result<Executed<E>, BlockError> {
    let txs: std::sync::Arc<Vec<SignedTx>> = txs.into();
    let height = block.height;
    let genesis = (height == 1).then_some(rules.genesis);
    let mut store = Store::new(&batch);
    // The accounts the block touches, read in one pass.
    let mut ids = touched(&txs);
    if let Some(genesis) = genesis {
        ids.extend(genesis.accounts.iter().map(|a| a.id));
        ids.extend(genesis.validators.iter().map(|v| v.public_key));
    }
    let mut keys: Vec<Digest> = ids.iter().map(state_key::account).collect();
    // What the shop's calls will read: their orders, shipments and products; and on a
    // governed chain each sender's registration, which every permission check reads.
    if rules.gov.is_some() {
        let senders: BTreeSet<&AccountId> = txs.iter().map(|tx| &tx.tx.sender).collect();
        keys.extend(senders.into_iter().map(state_key::gov::registration));
    }
    if rules.commerce.is_some() {
        let calls = txs.iter().filter_map(|tx| match &tx.tx.call {
            Call::Commerce(call) => Some(call),
            _ => None,
        });
        consort_commerce::keys_ahead(calls, &mut keys);
    }
    keys.sort_unstable();
    keys.dedup();
    store.prefetch(&keys).await?;
    if let Some(genesis) = genesis {
        for allocation in &genesis.accounts {
            ledger::allocate(&mut store, &allocation.id, allocation.balance).await?;
        }
        for validator in &genesis.validators {
            accounts::create(&mut store, &validator.public_key).await?;
        }
        store.commit();
        if let Some(peg) = rules.peg {
            peg.init(&mut store).await?;
            store.commit();
        }
        if let Some(gov) = rules.gov {
            gov.init(&mut store).await?;
            store.commit();
        }
    }
    // Positions in `txs` of the included transactions.
    let mut included = Vec::with_capacity(txs.len());
    let mut outcomes = Vec::with_capacity(txs.len());
    let mut rejected = Vec::new();
    let mut failures = Vec::new();
    // Transactions of each sender in this block, for the per-account rate limit.
    let mut per_sender: BTreeMap<AccountId, u32> = BTreeMap::new();
    for (index, tx) in txs.iter().enumerate() {
        // A candidate left out must leave the block holding only what verifiers' blocks hold.
        let mark = store.mark();
        match (place(&mut store, rules, &per_sender, tx).await?, mode) {
            (Ok(()), _) => {}
            (Err(Skip::Wait(_)), Mode::Propose) => {
                store.forget_since(mark);
                continue;
            }
            (Err(Skip::Refuse(error)), Mode::Propose) => {
                store.forget_since(mark);
                rejected.push((tx.hash(), error));
                continue;
            }
            (Err(Skip::Wait(error) | Skip::Refuse(error)), Mode::Verify) => {
                return Err(BlockError::InvalidTx { index, error });
            }
        }
        // The place it takes among the included transactions (what the block holds, so a
        // verifier counts the same; skipped candidates take none). A block holds far fewer
        // than 2^32 transactions (BLOCK_TXS_MAX).
        let position = u32::try_from(included.len()).unwrap_or(u32::MAX);
        let outcome = match run(&mut store, rules, tx, block, position).await {
            Ok(Ok(())) => Outcome::Applied,
            Ok(Err(error)) => {
                let outcome = Outcome::failed(&error);
                failures.push((tx.hash(), error));
                outcome
            }
            // A broken invariant while building: a bug, but one transaction must not stop
            // every proposal. Leave it out (its writes dropped) and let the pool forget it;
            // verifiers never see it.
            Err(BlockError::Invariant(reason)) if mode == Mode::Propose => {
                store.rollback();
                store.forget_since(mark);
                tracing::error!(tx = %tx.hash(), %reason, "left out a transaction that breaks an invariant");
                rejected.push((tx.hash(), TxError::StateUnavailable));
                continue;
            }
            Err(error) => return Err(error),
        };
        // Placed means the nonce is the next one and not u64::MAX: this cannot fail.
        accounts::bump_nonce(&mut store, &tx.tx.sender)
            .await?
            .map_err(|e| BlockError::Invariant(format!("placed transaction's nonce: {e}")))?;
        store.commit();
        let sent = per_sender.entry(tx.tx.sender).or_default();
        *sent = sent.saturating_add(1);
        included.push(index);
        outcomes.push(outcome);
    }
    let included = if included.len() == txs.len() {
        txs
    } else {
        std::sync::Arc::new(included.into_iter().map(|i| txs[i].clone()).collect())
    };
    if let Some(gov) = rules.gov {
        gov.end_block(&mut store, height).await?;
        store.commit();
        if let Some(commerce) = rules.commerce {
            commerce.end_block(&mut store, gov, block).await?;
            store.commit();
        }
    }
    // The last block of an epoch fixes the next committee; the peg's federation follows it
    // before end of block plans the next batch.
    let next_committee = consort_validators::end_block(&mut store, rules.genesis, height).await?;
    store.commit();
    if let Some(peg) = rules.peg {
        let before = store.commits();
        if let Some(committee) = &next_committee {
            peg.follow_committee(&mut store, committee, height).await?;
            store.commit();
        }
        peg.end_block(&mut store, height).await?;
        store.commit();
        // The conservation check runs in blocks that may have moved pegged value: a call
        // other than a native transfer, or the peg's own end of block.
        let moved = included
            .iter()
            .any(|tx| !matches!(tx.tx.call, Call::Transfer { .. }));
        if moved || store.commits() != before {
            peg.check_invariant(&mut store).await?;
        }
    }
    // Conservation per asset, in every block that moved value: what balances gained net and
    // what the shop holds must be what banks and the peg created.
    if !store.flows().is_empty() {
        let mut parent = Store::new(&batch);
        consort_commerce::conservation::check(
            &mut store,
            &mut parent,
            &Creation { peg: rules.peg },
        )
        .await?;
    }
    let changes = if store.notes().is_empty() {
        consort_types::changes::Changes::default()
    } else {
        consort_commerce::changes(&mut store)
    };
    let records = store.into_writes();
    let written = records.iter().map(|(key, _)| *key).collect();
    let mut batch = batch;
    for (key, value) in records {
        batch = batch.write(key, value);
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
        written,
        changes,
    })
}
