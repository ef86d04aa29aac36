//! Federations: the keys that hold the peg's coins, generation by generation.
//!
//! The genesis validators form federation 0 with the keys genesis lists. Every other
//! validator registers its key on chain (`register_federation_key`, with a proof of
//! possession) before governance may add it. When the last block of an epoch fixes a
//! committee whose members' keys differ from the current federation's, that committee forms
//! the next federation ([`Peg::follow_committee`]):
//!
//! * deposit addresses switch to the new federation's scripts at once;
//! * deposits to the replaced federation's addresses mined up to
//!   [`PegConfig::federation_grace_blocks`](consort_types::peg::PegConfig) main-chain blocks
//!   after the switch are still credited (to coins of the old federation);
//! * end of block sweeps the old federation's coins to the new federation's base script in
//!   batches the old federation's members sign (paying queued peg-outs from them when it
//!   can), before anything else;
//! * a member removed from the validator registry stops counting at once: only members still
//!   in the registry sign, for any federation;
//! * a replaced federation retires (its coin list is no longer summed) once it holds no coin,
//!   no claim to it is pending and its claim window has closed.

use crate::{Peg, list, parse_key};
use bitcoin::secp256k1::PublicKey;
use consort_execution::{BlockError, Fail, Runtime, Store};
use consort_mainchain::{self as mc, Federation};
use consort_types::{
    AccountId,
    codec_util::{Blob, List},
    peg::{
        FEDERATION_KEY_SIZE, FEDERATION_MEMBERS_MAX, FEDERATIONS_LIVE_MAX, FederationRecord,
        KEY_PROOF_SIZE, Outpoint, PegError, PegTotals,
    },
    state_key::{peg as key, validators as validators_key},
    validators::ValidatorSet,
};

// A federation's members are its multisig's keys.
const _: () = assert!(FEDERATION_MEMBERS_MAX == mc::FEDERATION_KEYS_MAX);

/// A federation read from the state, with its scripts.
#[derive(Clone, Debug)]
pub struct Federated {
    /// Its record.
    pub record: FederationRecord,
    /// Its custody scripts.
    pub federation: Federation,
}

impl Federated {
    /// The position of `account` among the members, if it is one.
    pub fn position(&self, account: &AccountId) -> Option<u16> {
        self.record
            .members
            .0
            .iter()
            .position(|m| m == account)
            .and_then(|i| u16::try_from(i).ok())
    }

    /// The key of the member at `position`.
    pub fn key(&self, position: u16) -> Option<PublicKey> {
        let bytes = self.record.keys.0.get(usize::from(position))?;
        PublicKey::from_slice(bytes.as_slice()).ok()
    }
}

impl Peg {
    /// The federation of `keys` with the genesis recovery set.
    ///
    /// # Errors
    /// Why the keys do not make a federation.
    pub fn form(&self, keys: Vec<PublicKey>) -> Result<Federation, mc::FederationError> {
        Federation::new(keys, self.recovery.clone())
    }

    /// Federation `generation`.
    ///
    /// # Errors
    /// [`BlockError::CorruptState`] if it does not exist or its keys do not form one.
    pub async fn federation<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        generation: u32,
    ) -> Result<Federated, BlockError> {
        let at = key::federation(generation);
        let record: FederationRecord = store.get(&at).await?.ok_or(BlockError::CorruptState(at))?;
        let keys = record
            .keys
            .0
            .iter()
            .map(|k| PublicKey::from_slice(k.as_slice()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| BlockError::CorruptState(at))?;
        let federation = self.form(keys).map_err(|_| BlockError::CorruptState(at))?;
        Ok(Federated { record, federation })
    }

    /// The current federation: deposit addresses and change use its scripts.
    ///
    /// # Errors
    /// A database failure or a corrupt record.
    pub async fn current<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
    ) -> Result<Federated, BlockError> {
        let totals = self.totals(store).await?;
        self.federation(store, totals.federation).await
    }

    /// Every live federation, oldest first (the current one last).
    ///
    /// # Errors
    /// A database failure or a corrupt record.
    pub async fn live<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
    ) -> Result<Vec<Federated>, BlockError> {
        let totals = self.totals(store).await?;
        let mut all = Vec::new();
        for generation in totals.oldest_federation..=totals.federation {
            all.push(self.federation(store, generation).await?);
        }
        Ok(all)
    }

    /// The main-chain height after which no claim to the replaced federation `record` is
    /// taken: its grace period, then room for the deposits mined in it to be confirmed and
    /// claimed. `None` while it is current.
    pub fn claims_close(&self, record: &FederationRecord) -> Option<u32> {
        let grace = self.config.federation_grace_blocks;
        let confirmations = self
            .config
            .confirmations
            .max(self.config.large_confirmations)
            .max(mc::COINBASE_MATURITY_BLOCKS);
        record.replaced_main.map(|replaced| {
            replaced
                .saturating_add(grace)
                .saturating_add(grace)
                .saturating_add(confirmations)
        })
    }

    /// Whether a deposit mined at main-chain height `mined` to an address of `record` is
    /// credited when claimed with the light client's tip at `tip`.
    pub fn takes_deposit(&self, record: &FederationRecord, mined: u32, tip: u32) -> bool {
        match (record.replaced_main, self.claims_close(record)) {
            (Some(replaced), Some(close)) => {
                mined <= replaced.saturating_add(self.config.federation_grace_blocks)
                    && tip <= close
            }
            _ => true,
        }
    }

    /// Whether `account` is in the live validator registry (the genesis set until
    /// governance first changes it).
    ///
    /// # Errors
    /// A database failure.
    pub async fn is_validator<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        account: &AccountId,
    ) -> Result<bool, BlockError> {
        Ok(
            match store
                .get::<ValidatorSet>(&validators_key::registry())
                .await?
            {
                Some(set) => set.contains(account),
                None => self.validators.contains(account),
            },
        )
    }

    /// Whether `account` is a member of a live federation (it may sign batches; which ones,
    /// the batch decides).
    ///
    /// # Errors
    /// A database failure or a corrupt record.
    pub async fn may_sign<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        account: &AccountId,
    ) -> Result<bool, BlockError> {
        let totals = self.totals(store).await?;
        for generation in totals.oldest_federation..=totals.federation {
            let at = key::federation(generation);
            let record: FederationRecord =
                store.get(&at).await?.ok_or(BlockError::CorruptState(at))?;
            if record.members.0.contains(account) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `account`'s registered federation key.
    ///
    /// # Errors
    /// A database failure.
    pub async fn registered_key<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        account: &AccountId,
    ) -> Result<Option<PublicKey>, BlockError> {
        let bytes: Option<Blob<FEDERATION_KEY_SIZE>> =
            store.get(&key::federation_key(account)).await?;
        Ok(bytes.and_then(|b| PublicKey::from_slice(b.as_slice()).ok()))
    }

    /// Federation 0 and the genesis validators' keys (block 1).
    pub(crate) async fn init_federation<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
    ) -> Result<(), BlockError> {
        for (account, key) in self.validators.iter().zip(&self.keys) {
            self.put_key(store, account, key).await?;
        }
        let record = FederationRecord {
            generation: 0,
            members: List(self.validators.clone()),
            keys: List(
                self.keys
                    .iter()
                    .map(|k| Blob(k.serialize().to_vec()))
                    .collect(),
            ),
            formed_at: 1,
            since_main: self.checkpoint.height,
            replaced_main: None,
            pending_claims: 0,
        };
        store.put(&key::federation(0), &record).await?;
        Ok(())
    }

    async fn put_key<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        account: &AccountId,
        key: &PublicKey,
    ) -> Result<(), BlockError> {
        let bytes = key.serialize();
        store
            .put(
                &key::federation_key(account),
                &Blob::<FEDERATION_KEY_SIZE>(bytes.to_vec()),
            )
            .await?;
        store
            .put(&key::federation_key_owner(&bytes), account)
            .await?;
        Ok(())
    }

    /// `register_federation_key`: the sender's key, proved by a signature of
    /// [`mc::key_possession_message`]; unique to one account; fixed while the sender is in
    /// the validator registry.
    pub(crate) async fn register_key<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        sender: &AccountId,
        key_bytes: &Blob<FEDERATION_KEY_SIZE>,
        proof: &Blob<KEY_PROOF_SIZE>,
    ) -> Result<(), Fail> {
        let key = PublicKey::from_slice(key_bytes.as_slice())
            .map_err(|_| PegError::BadFederationKey("not a compressed secp256k1 public key"))?;
        if !mc::verify_possession(&key, self.chain_id, sender.as_bytes(), proof.as_slice()) {
            return Err(PegError::BadFederationKey(
                "the proof is not the key's signature of this chain and the sender's account",
            )
            .into());
        }
        let owner: Option<AccountId> = store
            .get(&key::federation_key_owner(&key.serialize()))
            .await?;
        match owner {
            Some(owner) if owner == *sender => return Ok(()),
            Some(_) => return Err(PegError::KeyInUse.into()),
            None => {}
        }
        let old = self.registered_key(store, sender).await?;
        // Fixed while the key may sign anything: a validator's, or a live federation
        // member's (whose old key stays in that federation's script anyway).
        if old.is_some()
            && (self.is_validator(store, sender).await? || self.may_sign(store, sender).await?)
        {
            return Err(PegError::KeyLocked.into());
        }
        if let Some(old) = old {
            store
                .delete(&key::federation_key_owner(&old.serialize()))
                .await?;
        }
        self.put_key(store, sender, &key).await?;
        Ok(())
    }

    /// The last block of an epoch fixed `committee` for the next: if its members' keys
    /// differ from the current federation's, they form the next federation, which takes
    /// over at once (deposit addresses switch; end of block starts sweeping the old coins).
    /// Members without a registered key are left out (governance admits none such); the
    /// first [`FEDERATION_MEMBERS_MAX`] in committee order form it. With
    /// [`FEDERATIONS_LIVE_MAX`] federations live, the change waits for the next epoch.
    ///
    /// # Errors
    /// A database failure.
    pub async fn follow_committee<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        committee: &ValidatorSet,
        height: u64,
    ) -> Result<(), BlockError> {
        let mut totals = self.totals(store).await?;
        let current = self.federation(store, totals.federation).await?;
        let mut members = Vec::new();
        let mut keys = Vec::new();
        for member in &committee.members.0 {
            if members.len() == FEDERATION_MEMBERS_MAX {
                break;
            }
            if let Some(key) = self.registered_key(store, &member.key).await? {
                members.push(member.key);
                keys.push(key);
            }
        }
        let sorted = |keys: &[PublicKey]| {
            let mut bytes: Vec<[u8; 33]> = keys.iter().map(PublicKey::serialize).collect();
            bytes.sort_unstable();
            bytes
        };
        if keys.is_empty() || sorted(&keys) == sorted(current.federation.keys()) {
            return Ok(());
        }
        let live = totals
            .federation
            .saturating_sub(totals.oldest_federation)
            .saturating_add(1);
        if live >= FEDERATIONS_LIVE_MAX || self.form(keys.clone()).is_err() {
            tracing::warn!(
                live,
                "the committee changed but the peg federation stays: too many federations \
                 are still being swept, or the keys do not form one"
            );
            return Ok(());
        }
        let tip = self.tip(store).await?;
        let mut old = current.record;
        old.replaced_main = Some(tip.height);
        store.put(&key::federation(old.generation), &old).await?;
        let generation = totals
            .federation
            .checked_add(1)
            .ok_or_else(|| BlockError::Invariant("federation generation overflows".into()))?;
        let record = FederationRecord {
            generation,
            members: List(members),
            keys: List(keys.iter().map(|k| Blob(k.serialize().to_vec())).collect()),
            formed_at: height,
            since_main: tip.height,
            replaced_main: None,
            pending_claims: 0,
        };
        store.put(&key::federation(generation), &record).await?;
        totals.federation = generation;
        totals.idle = false;
        store.put(&key::totals(), &totals).await?;
        tracing::info!(
            generation,
            height,
            "the peg federation follows the new committee"
        );
        Ok(())
    }

    /// Retire the oldest replaced federations that hold no coin, have no pending claim and
    /// whose claim window closed before main-chain height `tip`. Only with no batch in
    /// flight (a batch's change may go to any live federation).
    pub(crate) async fn retire<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        totals: &mut PegTotals,
        tip: u32,
    ) -> Result<(), BlockError> {
        while totals.oldest_federation < totals.federation {
            let oldest = self.federation(store, totals.oldest_federation).await?;
            let coins = list::coins(totals.oldest_federation)
                .head::<Outpoint, E>(store)
                .await?;
            let closed = self.claims_close(&oldest.record).is_some_and(|c| tip > c);
            if coins.len > 0 || oldest.record.pending_claims > 0 || !closed {
                break;
            }
            totals.oldest_federation += 1;
        }
        Ok(())
    }

    /// Count a claim to federation `generation` in or out of its contest period.
    pub(crate) async fn count_pending<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        generation: u32,
        added: bool,
    ) -> Result<(), BlockError> {
        let at = key::federation(generation);
        let mut record: FederationRecord =
            store.get(&at).await?.ok_or(BlockError::CorruptState(at))?;
        record.pending_claims = if added {
            record.pending_claims.checked_add(1)
        } else {
            record.pending_claims.checked_sub(1)
        }
        .ok_or_else(|| {
            BlockError::Invariant(format!("federation {generation}'s pending claims"))
        })?;
        store.put(&at, &record).await?;
        Ok(())
    }
}

/// Parse genesis federation keys.
pub(crate) fn genesis_keys(texts: &[String]) -> Result<Vec<PublicKey>, String> {
    texts.iter().map(|k| parse_key(k)).collect()
}
