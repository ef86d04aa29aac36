//! Spending federation coins: deterministic coin selection, fee quotes, BIP 143 sighashes,
//! partial signatures by each signer, and the witness once enough signatures are in.
//!
//! Every step is a pure function of its inputs, so every validator builds the same unsigned
//! transaction from the same UTXO set, payments and fee rate, and can check any other
//! validator's signatures before counting them.
//!
//! Fees: a spend pays `fee rate × virtual size`, where the size is that of the transaction
//! with worst-case witnesses (72-byte signatures), so the fee rate paid is never below the
//! configured one. [`quote_fee`] is the fee of a one-input, one-payment spend: what a peg-out
//! costs on its own, and at least its share of a batch whose inputs are no more than its
//! payments (inputs dominate the size). [`payment_minimum`] is the smallest amount worth
//! paying out: the quote plus the destination's dust threshold.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use bitcoin::absolute::LockTime;
use bitcoin::ecdsa::Signature;
use bitcoin::hashes::Hash;
use bitcoin::policy::{DEFAULT_BYTES_PER_SIGOP, MAX_STANDARD_TX_WEIGHT};
use bitcoin::script::{Script, ScriptBuf};
use bitcoin::secp256k1::{All, Message, PublicKey, Secp256k1};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{Amount, FeeRate, OutPoint, Sequence, Transaction, TxIn, TxOut, Weight, Witness};

use crate::federation::{Custody, DepositAccount, Federation};
use crate::keystore::SigningKey;
use crate::network::Network;

/// The most inputs in one spend. With 20 + 20 keys a deposit input weighs about 2 600 weight
/// units (and costs 40 sigops), so 150 inputs stay below the standard transaction weight of
/// 400 000 and sigop cost of 16 000; the weight is checked too.
pub const SPEND_INPUTS_MAX: usize = 150;
/// The most payments in one spend.
pub const SPEND_PAYMENTS_MAX: usize = 1_000;
/// The largest signature, as sized for fee estimates: a 71-byte DER signature with a 33-byte
/// `r` (any signer's worst case) plus the sighash byte.
pub const SIGNATURE_SIZE_MAX_BYTES: usize = 72;
/// Blocks a Litecoin MWEB peg-out output (paid by the block's HogEx transaction) must be deep
/// before it may be spent (`PEGOUT_MATURITY`); earlier spends are refused with
/// `bad-txns-premature-spend-of-pegout`.
pub const MWEB_PEG_OUT_MATURITY_BLOCKS: u32 = 6;
/// Confirmations a coinbase output needs before it may be spent (`COINBASE_MATURITY`: the
/// spending transaction may enter the block 100 above the coinbase's); earlier spends are
/// refused with `bad-txns-premature-spend-of-coinbase`.
pub const COINBASE_MATURITY_BLOCKS: u32 = 100;
/// The highest fee rate accepted, in sat/vB: a guard against a misconfigured fee rate
/// spending the federation's coins on fees.
pub const FEE_RATE_MAX_SAT_PER_VB: u64 = 10_000;

static SECP: LazyLock<Secp256k1<All>> = LazyLock::new(Secp256k1::new);

/// A coin held by the federation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Utxo {
    /// Where it is.
    pub outpoint: OutPoint,
    /// What it is worth.
    pub value: Amount,
    /// Which federation script holds it.
    pub custody: Custody,
    /// The height of the block that confirmed it.
    pub height: u32,
    /// True if Litecoin's MWEB paid it (an output of a HogEx transaction): it matures after
    /// [`MWEB_PEG_OUT_MATURITY_BLOCKS`].
    pub mweb_peg_out: bool,
}

impl Utxo {
    /// The first block height whose block may spend it.
    pub fn spendable_height(&self) -> u32 {
        let depth = if self.mweb_peg_out {
            MWEB_PEG_OUT_MATURITY_BLOCKS
        } else {
            1
        };
        self.height.saturating_add(depth)
    }
}

/// An output a spend must create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    /// Where it goes.
    pub script_pubkey: ScriptBuf,
    /// What the recipient receives.
    pub value: Amount,
}

/// Which key set signs a spend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpendBranch {
    /// The validators, m of n.
    Federation,
    /// The recovery keys, k of r, after the recovery delay.
    Recovery,
}

/// The chain-wide inputs of a spend: the same for every validator at the same main-chain tip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpendParams {
    /// The main chain (dust and relay-fee policy).
    pub network: Network,
    /// The fee rate to pay.
    pub fee_rate: FeeRate,
    /// The height of the next main-chain block: coins not spendable there are skipped.
    pub next_block_height: u32,
}

/// Why a spend could not be built, signed or completed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpendError {
    /// No payments, or more than [`SPEND_PAYMENTS_MAX`].
    #[error("a spend needs 1 to {max} payments, got {count}")]
    PaymentCount {
        /// Payments given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A payment below its output's dust threshold would not be relayed.
    #[error("payment {index} of {value} is below the dust threshold of {dust}")]
    PaymentBelowDust {
        /// Its position.
        index: usize,
        /// Its value.
        value: Amount,
        /// The smallest value relayed for its script.
        dust: Amount,
    },
    /// The fee rate is below the minimum relay fee or above [`FEE_RATE_MAX_SAT_PER_VB`].
    #[error("fee rate of {sat_per_kvb} sat/kvB is outside {min}..={max} sat/kvB")]
    FeeRate {
        /// The rate given.
        sat_per_kvb: u64,
        /// The network's minimum relay fee rate.
        min: u64,
        /// The highest rate accepted.
        max: u64,
    },
    /// The same outpoint was offered twice.
    #[error("utxo {outpoint} appears twice")]
    DuplicateUtxo {
        /// The repeated outpoint.
        outpoint: OutPoint,
    },
    /// The spendable coins do not cover the payments and the fee.
    #[error("spendable federation coins of {available} do not cover {needed}")]
    InsufficientFunds {
        /// The value of every spendable coin offered.
        available: Amount,
        /// Payments plus the fee with every coin spent.
        needed: Amount,
    },
    /// Covering the payments would take more than [`SPEND_INPUTS_MAX`] inputs.
    #[error("the spend needs more than {max} inputs; pay out in smaller batches")]
    TooManyInputs {
        /// The limit.
        max: usize,
    },
    /// The transaction would exceed the standard weight limit.
    #[error("the spend weighs {weight} weight units, above the standard {max}")]
    TooHeavy {
        /// Its estimated weight.
        weight: u64,
        /// The standard limit.
        max: u64,
    },
    /// A sweep whose coins are worth less than its fee plus the dust threshold.
    #[error("sweeping {available} leaves less than the dust threshold of {dust} after the fee")]
    SweepBelowDust {
        /// The value of the coins.
        available: Amount,
        /// The destination's dust threshold.
        dust: Amount,
    },
    /// An amount overflowed (more than 21 million coins).
    #[error("amounts overflow")]
    AmountOverflow,
    /// The key is not in the key set that signs this spend.
    #[error("key {key} is not a signer of this spend")]
    NotASigner {
        /// The key.
        key: PublicKey,
    },
    /// A partial signature does not have one signature per input.
    #[error("signer {signer} gave {found} signatures for {expected} inputs")]
    SignatureCount {
        /// The signer.
        signer: PublicKey,
        /// Inputs of the spend.
        expected: usize,
        /// Signatures given.
        found: usize,
    },
    /// A signature that does not commit with `SIGHASH_ALL`.
    #[error("signer {signer}'s signature for input {input} is not SIGHASH_ALL")]
    SighashType {
        /// The signer.
        signer: PublicKey,
        /// The input.
        input: usize,
    },
    /// A high-S signature: valid ECDSA but not relayed (BIP 146 LOW_S).
    #[error("signer {signer}'s signature for input {input} is not low-S")]
    HighS {
        /// The signer.
        signer: PublicKey,
        /// The input.
        input: usize,
    },
    /// A signature that does not verify against the signer's key and the input's sighash.
    #[error("signer {signer}'s signature for input {input} does not verify")]
    InvalidSignature {
        /// The signer.
        signer: PublicKey,
        /// The input.
        input: usize,
    },
    /// Fewer valid signers than the threshold.
    #[error("{have} of the {need} required signatures are present")]
    InsufficientSignatures {
        /// Distinct valid signers.
        have: usize,
        /// The threshold.
        need: usize,
    },
}

/// One signer's signatures over a spend, one per input in input order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialSignatures {
    /// The signer's key.
    pub signer: PublicKey,
    /// Its `SIGHASH_ALL` signatures, one per input.
    pub signatures: Vec<Signature>,
}

/// A spend of federation coins, ready for signing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsignedSpend {
    transaction: Transaction,
    inputs: Vec<(Utxo, ScriptBuf)>,
    branch: SpendBranch,
    signers: Vec<PublicKey>,
    threshold: usize,
    fee: Amount,
    vsize_max: u64,
}

/// The smallest value `script_pubkey` may receive without being dust on `network`.
pub fn dust_threshold(network: &Network, script_pubkey: &Script) -> Amount {
    let rate = FeeRate::from_sat_per_kwu(network.dust_relay_fee_sat_per_kvb() / 4);
    script_pubkey.minimal_non_dust_custom(rate)
}

/// The fee of paying `destination` from one deposit coin, with change (see the module doc).
///
/// # Errors
/// [`SpendError::FeeRate`] for a rate outside the accepted range.
pub fn quote_fee(
    federation: &Federation,
    params: &SpendParams,
    destination: &Script,
) -> Result<Amount, SpendError> {
    check_fee_rate(params)?;
    let custody = Custody::Deposit(DepositAccount::new([0; 32]));
    let inputs = [(custody, federation.witness_script(&custody))];
    let outputs = [
        destination.to_owned(),
        federation.script_pubkey(&Custody::Base),
    ];
    let vsize = estimate_vsize(federation, SpendBranch::Federation, &inputs, &outputs);
    fee_for(params.fee_rate, vsize)
}

/// What a deposit prepays (into the peg's fee pool): the fee of moving that coin alone to
/// the federation's base script, one input and one output. So every coin has paid for the
/// consolidation or refresh that moves it before the recovery delay (a sweep of `n` coins
/// costs less than `n` single moves), and a batch that needs more coins than payments never
/// pays more than its coins prepaid.
///
/// # Errors
/// [`SpendError::FeeRate`] for a rate outside the accepted range.
pub fn deposit_prepaid_fee(
    federation: &Federation,
    params: &SpendParams,
) -> Result<Amount, SpendError> {
    check_fee_rate(params)?;
    let custody = Custody::Deposit(DepositAccount::new([0; 32]));
    let input = (custody, federation.witness_script(&custody));
    let outputs = [federation.script_pubkey(&Custody::Base)];
    let alone = estimate_vsize(
        federation,
        SpendBranch::Federation,
        std::slice::from_ref(&input),
        &outputs,
    );
    // One spare vbyte covers the rounding of a larger transaction's size.
    fee_for(params.fee_rate, alone + 1)
}

/// The smallest amount a peg-out to `destination` may burn: the quoted fee plus the
/// destination's dust threshold, so the user never pays more fee than value received.
///
/// # Errors
/// [`SpendError::FeeRate`] for a rate outside the accepted range.
pub fn payment_minimum(
    federation: &Federation,
    params: &SpendParams,
    destination: &Script,
) -> Result<Amount, SpendError> {
    let fee = quote_fee(federation, params, destination)?;
    fee.checked_add(dust_threshold(&params.network, destination))
        .ok_or(SpendError::AmountOverflow)
}

/// Pays `payments` (in their order, change last) from the oldest spendable coins of `utxos`.
///
/// Coins are taken oldest first (by height, then txid, then output index) until they cover
/// the payments and the fee; change above its dust threshold returns to the federation's base
/// script, smaller change is left to the fee. Coins not spendable at
/// `params.next_block_height` (immature MWEB peg-outs) are skipped.
///
/// # Errors
/// A [`SpendError`] for bad payments, a bad fee rate, duplicate coins, or too few coins.
pub fn build_spend(
    federation: &Federation,
    params: &SpendParams,
    utxos: &[Utxo],
    payments: &[Payment],
) -> Result<UnsignedSpend, SpendError> {
    let change_script = federation.script_pubkey(&Custody::Base);
    build_spend_to(federation, params, utxos, payments, &change_script)
}

/// [`build_spend`] with change to `change_script` (a P2WSH script, so the fee estimate
/// holds): the base script of the federation that replaced `federation`, when a batch of
/// its coins also sweeps them to the new one.
///
/// # Errors
/// As [`build_spend`].
pub fn build_spend_to(
    federation: &Federation,
    params: &SpendParams,
    utxos: &[Utxo],
    payments: &[Payment],
    change_script: &Script,
) -> Result<UnsignedSpend, SpendError> {
    check_fee_rate(params)?;
    check_payments(&params.network, payments)?;
    let candidates = spendable_sorted(utxos, params.next_block_height)?;
    let payments_total = sum(payments.iter().map(|payment| payment.value))?;
    let mut outputs: Vec<TxOut> = payments.iter().map(to_tx_out).collect();
    let change_script = change_script.to_owned();
    let change_dust = dust_threshold(&params.network, &change_script);
    let mut selected = Vec::new();
    let mut selected_total = Amount::ZERO;
    for utxo in candidates {
        if selected.len() == SPEND_INPUTS_MAX {
            return Err(SpendError::TooManyInputs {
                max: SPEND_INPUTS_MAX,
            });
        }
        selected_total = selected_total
            .checked_add(utxo.value)
            .ok_or(SpendError::AmountOverflow)?;
        selected.push(utxo.clone());
        let without_change = spend_fee(federation, params, &selected, &outputs)?;
        let needed = payments_total
            .checked_add(without_change)
            .ok_or(SpendError::AmountOverflow)?;
        let Some(excess) = selected_total.checked_sub(needed) else {
            continue;
        };
        outputs.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: change_script.clone(),
        });
        let with_change = spend_fee(federation, params, &selected, &outputs)?;
        let change = excess.checked_sub(with_change - without_change);
        match change {
            Some(change) if change >= change_dust => {
                outputs.last_mut().expect("change was pushed").value = change;
            }
            _ => {
                outputs.pop();
            }
        }
        return unsigned_spend(federation, SpendBranch::Federation, selected, outputs);
    }
    let needed = payments_total
        .checked_add(spend_fee(federation, params, &selected, &outputs)?)
        .ok_or(SpendError::AmountOverflow)?;
    Err(SpendError::InsufficientFunds {
        available: selected_total,
        needed,
    })
}

/// Moves every spendable coin of `utxos` to `destination`, less the fee: a migration to a new
/// federation's base script ([`SpendBranch::Federation`]) or an emergency recovery
/// ([`SpendBranch::Recovery`], valid once every coin is the recovery delay deep).
///
/// # Errors
/// A [`SpendError`] for a bad fee rate, no or too many coins, or a remainder below dust.
pub fn build_sweep(
    federation: &Federation,
    params: &SpendParams,
    utxos: &[Utxo],
    destination: &Script,
    branch: SpendBranch,
) -> Result<UnsignedSpend, SpendError> {
    check_fee_rate(params)?;
    let selected: Vec<Utxo> = spendable_sorted(utxos, params.next_block_height)?
        .into_iter()
        .cloned()
        .collect();
    if selected.len() > SPEND_INPUTS_MAX {
        return Err(SpendError::TooManyInputs {
            max: SPEND_INPUTS_MAX,
        });
    }
    let available = sum(selected.iter().map(|utxo| utxo.value))?;
    let mut output = TxOut {
        value: Amount::ZERO,
        script_pubkey: destination.to_owned(),
    };
    let inputs = with_scripts(federation, &selected);
    let vsize = estimate_vsize(federation, branch, &inputs, &[destination.to_owned()]);
    let fee = fee_for(params.fee_rate, vsize)?;
    let dust = dust_threshold(&params.network, destination);
    output.value = available
        .checked_sub(fee)
        .filter(|value| *value >= dust)
        .ok_or(SpendError::SweepBelowDust { available, dust })?;
    unsigned_spend(federation, branch, selected, vec![output])
}

impl UnsignedSpend {
    /// The federation spend of exactly `inputs` to exactly `outputs`: what [`build_spend`]
    /// returned, rebuilt from its recorded coins and outputs (e.g. from a side-chain record).
    ///
    /// # Errors
    /// [`SpendError::TooHeavy`] for a transaction above the standard weight.
    pub fn rebuild(
        federation: &Federation,
        inputs: Vec<Utxo>,
        outputs: Vec<TxOut>,
    ) -> Result<Self, SpendError> {
        unsigned_spend(federation, SpendBranch::Federation, inputs, outputs)
    }

    /// The unsigned transaction (empty witnesses).
    pub fn transaction(&self) -> &Transaction {
        &self.transaction
    }

    /// The coins spent, in input order, with their witness scripts.
    pub fn inputs(&self) -> &[(Utxo, ScriptBuf)] {
        &self.inputs
    }

    /// Which key set signs.
    pub fn branch(&self) -> SpendBranch {
        self.branch
    }

    /// The keys that may sign, in script order.
    pub fn signers(&self) -> &[PublicKey] {
        &self.signers
    }

    /// Signatures needed.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The fee: inputs minus outputs.
    pub fn fee(&self) -> Amount {
        self.fee
    }

    /// The virtual size the fee was computed for, an upper bound of the signed size.
    pub fn vsize_max(&self) -> u64 {
        self.vsize_max
    }

    /// The BIP 143 `SIGHASH_ALL` digest of each input, in input order.
    pub fn sighashes(&self) -> Vec<Message> {
        let mut cache = SighashCache::new(&self.transaction);
        self.inputs
            .iter()
            .enumerate()
            .map(|(index, (utxo, script))| {
                let sighash = cache
                    .p2wsh_signature_hash(index, script, utxo.value, EcdsaSighashType::All)
                    .expect("every input has an index in the transaction");
                Message::from_digest(sighash.to_byte_array())
            })
            .collect()
    }

    /// `key`'s signatures over every input: deterministic (RFC 6979), low-S and low-R.
    ///
    /// # Errors
    /// [`SpendError::NotASigner`] if `key` is not in this spend's key set.
    pub fn sign(&self, key: &SigningKey) -> Result<PartialSignatures, SpendError> {
        let signer = key.public_key();
        if !self.signers.contains(&signer) {
            return Err(SpendError::NotASigner { key: signer });
        }
        let signatures = self
            .sighashes()
            .iter()
            .map(|message| Signature::sighash_all(key.sign_ecdsa(message)))
            .collect();
        Ok(PartialSignatures { signer, signatures })
    }

    /// Checks a signer's signatures before they are counted: a signer of this spend, one
    /// low-S `SIGHASH_ALL` signature per input, each valid for its input's sighash.
    ///
    /// # Errors
    /// The first [`SpendError`] found.
    pub fn verify(&self, partial: &PartialSignatures) -> Result<(), SpendError> {
        self.verify_against(partial, &self.sighashes())
    }

    fn verify_against(
        &self,
        partial: &PartialSignatures,
        sighashes: &[Message],
    ) -> Result<(), SpendError> {
        let signer = partial.signer;
        if !self.signers.contains(&signer) {
            return Err(SpendError::NotASigner { key: signer });
        }
        if partial.signatures.len() != sighashes.len() {
            return Err(SpendError::SignatureCount {
                signer,
                expected: sighashes.len(),
                found: partial.signatures.len(),
            });
        }
        for (input, (signature, message)) in partial.signatures.iter().zip(sighashes).enumerate() {
            if signature.sighash_type != EcdsaSighashType::All {
                return Err(SpendError::SighashType { signer, input });
            }
            let mut normalized = signature.signature;
            normalized.normalize_s();
            if normalized != signature.signature {
                return Err(SpendError::HighS { signer, input });
            }
            SECP.verify_ecdsa(message, &signature.signature, &signer)
                .map_err(|_| SpendError::InvalidSignature { signer, input })?;
        }
        Ok(())
    }

    /// The signed transaction, from any `threshold` valid signers among `partials`.
    ///
    /// Every partial signature is verified; repeats of a signer count once; when more than
    /// the threshold signed, the first signers in script order are used. Signatures go into
    /// each witness in the order of their keys in the script, after the empty element
    /// OP_CHECKMULTISIG pops.
    ///
    /// # Errors
    /// The [`SpendError`] of an invalid partial signature, or
    /// [`SpendError::InsufficientSignatures`].
    pub fn assemble(&self, partials: &[PartialSignatures]) -> Result<Transaction, SpendError> {
        let sighashes = self.sighashes();
        let mut signed = BTreeSet::new();
        for partial in partials {
            self.verify_against(partial, &sighashes)?;
            let position = self
                .signers
                .iter()
                .position(|key| *key == partial.signer)
                .expect("verified signers are in the key set");
            signed.insert(position);
        }
        if signed.len() < self.threshold {
            return Err(SpendError::InsufficientSignatures {
                have: signed.len(),
                need: self.threshold,
            });
        }
        let chosen: Vec<&PartialSignatures> = signed
            .iter()
            .take(self.threshold)
            .map(|position| {
                partials
                    .iter()
                    .find(|partial| partial.signer == self.signers[*position])
                    .expect("every position came from a partial")
            })
            .collect();
        let mut transaction = self.transaction.clone();
        for (index, (input, (_, script))) in
            transaction.input.iter_mut().zip(&self.inputs).enumerate()
        {
            let signatures: Vec<Signature> = chosen
                .iter()
                .map(|partial| partial.signatures[index])
                .collect();
            input.witness = custody_witness(self.branch, &signatures, script);
        }
        Ok(transaction)
    }
}

/// The witness spending a custody script by `branch` with `signatures` (already in key
/// order): `<> <sig 1> … <sig k> <01 or empty> <witness script>`. Low level: it checks
/// nothing, so tests can show what the main chain does with too few signatures.
pub fn custody_witness(branch: SpendBranch, signatures: &[Signature], script: &Script) -> Witness {
    let mut witness = Witness::new();
    witness.push([]);
    for signature in signatures {
        witness.push(signature.serialize());
    }
    match branch {
        SpendBranch::Federation => witness.push([1]),
        SpendBranch::Recovery => witness.push([]),
    }
    witness.push(script.as_bytes());
    witness
}

fn check_fee_rate(params: &SpendParams) -> Result<(), SpendError> {
    let sat_per_kvb = params.fee_rate.to_sat_per_kwu() * 4;
    let min = params.network.min_relay_fee_sat_per_kvb();
    let max = FEE_RATE_MAX_SAT_PER_VB * 1_000;
    if sat_per_kvb < min || sat_per_kvb > max {
        return Err(SpendError::FeeRate {
            sat_per_kvb,
            min,
            max,
        });
    }
    Ok(())
}

fn check_payments(network: &Network, payments: &[Payment]) -> Result<(), SpendError> {
    if payments.is_empty() || payments.len() > SPEND_PAYMENTS_MAX {
        return Err(SpendError::PaymentCount {
            count: payments.len(),
            max: SPEND_PAYMENTS_MAX,
        });
    }
    for (index, payment) in payments.iter().enumerate() {
        let dust = dust_threshold(network, &payment.script_pubkey);
        if payment.value < dust {
            return Err(SpendError::PaymentBelowDust {
                index,
                value: payment.value,
                dust,
            });
        }
    }
    Ok(())
}

/// The coins spendable at `next_block_height`, oldest first; duplicates refused.
fn spendable_sorted(utxos: &[Utxo], next_block_height: u32) -> Result<Vec<&Utxo>, SpendError> {
    let mut seen = BTreeSet::new();
    for utxo in utxos {
        if !seen.insert(utxo.outpoint) {
            return Err(SpendError::DuplicateUtxo {
                outpoint: utxo.outpoint,
            });
        }
    }
    let mut spendable: Vec<&Utxo> = utxos
        .iter()
        .filter(|utxo| utxo.spendable_height() <= next_block_height)
        .collect();
    spendable.sort_by_key(|utxo| (utxo.height, utxo.outpoint.txid, utxo.outpoint.vout));
    Ok(spendable)
}

fn sum(mut values: impl Iterator<Item = Amount>) -> Result<Amount, SpendError> {
    values.try_fold(Amount::ZERO, |total, value| {
        total.checked_add(value).ok_or(SpendError::AmountOverflow)
    })
}

fn to_tx_out(payment: &Payment) -> TxOut {
    TxOut {
        value: payment.value,
        script_pubkey: payment.script_pubkey.clone(),
    }
}

fn with_scripts(federation: &Federation, utxos: &[Utxo]) -> Vec<(Custody, ScriptBuf)> {
    utxos
        .iter()
        .map(|utxo| (utxo.custody, federation.witness_script(&utxo.custody)))
        .collect()
}

fn spend_fee(
    federation: &Federation,
    params: &SpendParams,
    selected: &[Utxo],
    outputs: &[TxOut],
) -> Result<Amount, SpendError> {
    let inputs = with_scripts(federation, selected);
    let scripts: Vec<ScriptBuf> = outputs
        .iter()
        .map(|output| output.script_pubkey.clone())
        .collect();
    let vsize = estimate_vsize(federation, SpendBranch::Federation, &inputs, &scripts);
    fee_for(params.fee_rate, vsize)
}

fn fee_for(fee_rate: FeeRate, vsize: u64) -> Result<Amount, SpendError> {
    fee_rate.fee_vb(vsize).ok_or(SpendError::AmountOverflow)
}

/// The virtual size of a spend of `inputs` to `outputs` with worst-case signatures, charged
/// for sigops as Core does (`max(weight, sigop cost × 20) / 4`, rounded up).
fn estimate_vsize(
    federation: &Federation,
    branch: SpendBranch,
    inputs: &[(Custody, ScriptBuf)],
    outputs: &[ScriptBuf],
) -> u64 {
    let threshold = match branch {
        SpendBranch::Federation => federation.threshold(),
        SpendBranch::Recovery => federation.recovery().threshold(),
    };
    let dummy = [0_u8; SIGNATURE_SIZE_MAX_BYTES];
    let selector: &[u8] = match branch {
        SpendBranch::Federation => &[1],
        SpendBranch::Recovery => &[],
    };
    let transaction = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: inputs
            .iter()
            .map(|(_, script)| {
                let mut witness = Witness::new();
                witness.push([]);
                for _ in 0..threshold {
                    witness.push(dummy);
                }
                witness.push(selector);
                witness.push(script.as_bytes());
                TxIn {
                    witness,
                    ..TxIn::default()
                }
            })
            .collect(),
        output: outputs
            .iter()
            .map(|script| TxOut {
                value: Amount::ZERO,
                script_pubkey: script.clone(),
            })
            .collect(),
    };
    let witness_sigops: usize = inputs.iter().map(|(_, script)| script.count_sigops()).sum();
    let output_sigops: usize = outputs
        .iter()
        .map(|script| script.count_sigops_legacy() * 4)
        .sum();
    let sigop_cost = u64::try_from(witness_sigops + output_sigops).expect("bounded by inputs");
    let weight = transaction
        .weight()
        .to_wu()
        .max(sigop_cost * u64::from(DEFAULT_BYTES_PER_SIGOP));
    weight.div_ceil(4)
}

fn unsigned_spend(
    federation: &Federation,
    branch: SpendBranch,
    selected: Vec<Utxo>,
    outputs: Vec<TxOut>,
) -> Result<UnsignedSpend, SpendError> {
    let inputs = with_scripts(federation, &selected);
    let output_scripts: Vec<ScriptBuf> = outputs
        .iter()
        .map(|output| output.script_pubkey.clone())
        .collect();
    let vsize_max = estimate_vsize(federation, branch, &inputs, &output_scripts);
    let weight = Weight::from_vb(vsize_max).map_or(u64::MAX, Weight::to_wu);
    if weight > u64::from(MAX_STANDARD_TX_WEIGHT) {
        return Err(SpendError::TooHeavy {
            weight,
            max: u64::from(MAX_STANDARD_TX_WEIGHT),
        });
    }
    let (signers, threshold, sequence) = match branch {
        SpendBranch::Federation => (
            federation.keys().to_vec(),
            federation.threshold(),
            Sequence::ENABLE_RBF_NO_LOCKTIME,
        ),
        SpendBranch::Recovery => {
            let recovery = federation.recovery();
            (
                recovery.keys().to_vec(),
                recovery.threshold(),
                Sequence::from_height(recovery.delay_blocks()),
            )
        }
    };
    let transaction = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: selected
            .iter()
            .map(|utxo| TxIn {
                previous_output: utxo.outpoint,
                sequence,
                ..TxIn::default()
            })
            .collect(),
        output: outputs,
    };
    let inputs_total = sum(selected.iter().map(|utxo| utxo.value))?;
    let outputs_total = sum(transaction.output.iter().map(|output| output.value))?;
    let fee = inputs_total
        .checked_sub(outputs_total)
        .expect("selection covers the outputs");
    let inputs = selected
        .into_iter()
        .zip(inputs)
        .map(|(utxo, (_, script))| (utxo, script))
        .collect();
    Ok(UnsignedSpend {
        transaction,
        inputs,
        branch,
        signers,
        threshold,
        fee,
        vsize_max,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use bitcoin::hashes::Hash;
    use bitcoin::{Txid, WPubkeyHash};

    use super::*;
    use crate::federation::Recovery;
    use crate::federation::tests::key;

    fn signing_key(seed: u8) -> SigningKey {
        SigningKey::from_secret_bytes(&[seed; 32]).unwrap()
    }

    /// Validators with secrets 1..=4, recovery keys with secrets 101..=103 (2 of 3, 144 blocks).
    fn federation() -> Federation {
        let recovery = Recovery::new((101..=103).map(key).collect(), 2, 144).unwrap();
        Federation::new((1..=4).map(key).collect(), recovery).unwrap()
    }

    fn params() -> SpendParams {
        SpendParams {
            network: Network::LITECOIN_REGTEST,
            fee_rate: FeeRate::from_sat_per_vb(10).unwrap(),
            next_block_height: 1_000,
        }
    }

    fn utxo(txid_byte: u8, value_sat: u64, height: u32, custody: Custody) -> Utxo {
        Utxo {
            outpoint: OutPoint {
                txid: Txid::from_byte_array([txid_byte; 32]),
                vout: 0,
            },
            value: Amount::from_sat(value_sat),
            custody,
            height,
            mweb_peg_out: false,
        }
    }

    fn deposit(account: u8) -> Custody {
        Custody::Deposit(DepositAccount::new([account; 32]))
    }

    fn recipient() -> ScriptBuf {
        ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([9; 20]))
    }

    fn pay(value_sat: u64) -> Vec<Payment> {
        vec![Payment {
            script_pubkey: recipient(),
            value: Amount::from_sat(value_sat),
        }]
    }

    #[test]
    fn coins_are_taken_oldest_first_and_change_returns_to_the_base_script() {
        let federation = federation();
        let utxos = [
            utxo(3, 60_000, 12, deposit(1)),
            utxo(1, 50_000, 11, deposit(2)),
            utxo(2, 70_000, 10, Custody::Base),
        ];
        let spend = build_spend(&federation, &params(), &utxos, &pay(100_000)).unwrap();
        let inputs: Vec<u32> = spend.inputs().iter().map(|(utxo, _)| utxo.height).collect();
        assert_eq!(inputs, [10, 11]);
        let transaction = spend.transaction();
        assert_eq!(transaction.version, Version::TWO);
        assert_eq!(transaction.output.len(), 2);
        assert_eq!(transaction.output[0].script_pubkey, recipient());
        let change = &transaction.output[1];
        assert_eq!(
            change.script_pubkey,
            federation.script_pubkey(&Custody::Base)
        );
        assert_eq!(
            change.value,
            Amount::from_sat(120_000 - 100_000) - spend.fee()
        );
        assert_eq!(
            spend.fee(),
            params().fee_rate.fee_vb(spend.vsize_max()).unwrap()
        );
        assert_eq!(spend.inputs()[1].1, federation.witness_script(&deposit(2)));
    }

    #[test]
    fn every_order_of_the_same_coins_builds_the_same_transaction() {
        let federation = federation();
        let mut utxos = vec![
            utxo(5, 40_000, 20, deposit(1)),
            utxo(4, 40_000, 20, deposit(2)),
            utxo(6, 40_000, 19, deposit(3)),
        ];
        let first = build_spend(&federation, &params(), &utxos, &pay(70_000)).unwrap();
        utxos.reverse();
        let second = build_spend(&federation, &params(), &utxos, &pay(70_000)).unwrap();
        assert_eq!(first, second);
        let txids: Vec<u8> = first
            .transaction()
            .input
            .iter()
            .map(|input| input.previous_output.txid.to_byte_array()[0])
            .collect();
        // Height 19 first, then the two at height 20 by txid.
        assert_eq!(txids, [6, 4]);
    }

    #[test]
    fn the_quote_is_the_fee_of_a_single_payment_from_one_deposit() {
        let federation = federation();
        let utxos = [utxo(1, 1_000_000, 10, deposit(1))];
        let spend = build_spend(&federation, &params(), &utxos, &pay(500_000)).unwrap();
        let quote = quote_fee(&federation, &params(), &recipient()).unwrap();
        assert_eq!(spend.fee(), quote);
        let minimum = payment_minimum(&federation, &params(), &recipient()).unwrap();
        assert_eq!(minimum, quote + Amount::from_sat(2_940));
    }

    #[test]
    fn change_below_dust_is_left_to_the_fee() {
        let federation = federation();
        let quote = quote_fee(&federation, &params(), &recipient()).unwrap();
        let value = 1_000_000 - quote.to_sat() - 1_000;
        let utxos = [utxo(1, 1_000_000, 10, deposit(1))];
        let spend = build_spend(&federation, &params(), &utxos, &pay(value)).unwrap();
        assert_eq!(spend.transaction().output.len(), 1);
        assert_eq!(spend.fee(), Amount::from_sat(1_000_000 - value));
    }

    #[test]
    fn too_few_coins_report_what_is_available_and_needed() {
        let federation = federation();
        let utxos = [utxo(1, 50_000, 10, deposit(1))];
        let error = build_spend(&federation, &params(), &utxos, &pay(50_000)).unwrap_err();
        let SpendError::InsufficientFunds { available, needed } = error else {
            panic!("{error}");
        };
        assert_eq!(available, Amount::from_sat(50_000));
        assert!(needed > Amount::from_sat(50_000));
    }

    #[test]
    fn immature_mweb_peg_outs_are_not_spent() {
        let federation = federation();
        let mut hogex = utxo(1, 1_000_000, 995, deposit(1));
        hogex.mweb_peg_out = true;
        let error = build_spend(&federation, &params(), &[hogex.clone()], &pay(10_000));
        assert!(matches!(error, Err(SpendError::InsufficientFunds { .. })));
        hogex.height = 994;
        assert!(build_spend(&federation, &params(), &[hogex], &pay(10_000)).is_ok());
    }

    #[test]
    fn bad_payments_fee_rates_and_repeated_coins_are_refused() {
        let federation = federation();
        let utxos = [utxo(1, 1_000_000, 10, deposit(1))];
        assert!(matches!(
            build_spend(&federation, &params(), &utxos, &pay(2_939)),
            Err(SpendError::PaymentBelowDust { index: 0, .. })
        ));
        assert!(matches!(
            build_spend(&federation, &params(), &utxos, &[]),
            Err(SpendError::PaymentCount { count: 0, .. })
        ));
        let mut cheap = params();
        cheap.fee_rate = FeeRate::from_sat_per_kwu(200);
        assert!(matches!(
            build_spend(&federation, &cheap, &utxos, &pay(10_000)),
            Err(SpendError::FeeRate { .. })
        ));
        let twice = [utxos[0].clone(), utxos[0].clone()];
        assert!(matches!(
            build_spend(&federation, &params(), &twice, &pay(10_000)),
            Err(SpendError::DuplicateUtxo { .. })
        ));
    }

    #[test]
    fn any_three_of_four_signers_complete_the_spend_in_key_order() {
        let federation = federation();
        let utxos = [
            utxo(1, 60_000, 10, deposit(1)),
            utxo(2, 60_000, 11, Custody::Base),
        ];
        let spend = build_spend(&federation, &params(), &utxos, &pay(100_000)).unwrap();
        // Secrets 4, 1, 3 sign (validator 2 is down), in no particular order.
        let partials: Vec<PartialSignatures> = [4, 1, 3]
            .into_iter()
            .map(|seed| spend.sign(&signing_key(seed)).unwrap())
            .collect();
        for partial in &partials {
            spend.verify(partial).unwrap();
        }
        let signed = spend.assemble(&partials).unwrap();
        let sighashes = spend.sighashes();
        let ordered: Vec<PublicKey> = federation
            .keys()
            .iter()
            .copied()
            .filter(|key| *key != self::key(2))
            .collect();
        for (index, input) in signed.input.iter().enumerate() {
            let items: Vec<&[u8]> = input.witness.iter().collect();
            assert_eq!(items.len(), 1 + 3 + 1 + 1);
            assert!(items[0].is_empty());
            assert_eq!(items[4], &[1]);
            assert_eq!(items[5], spend.inputs()[index].1.as_bytes());
            for (item, signer) in items[1..4].iter().zip(&ordered) {
                let signature = Signature::from_slice(item).unwrap();
                assert!(item.len() <= SIGNATURE_SIZE_MAX_BYTES);
                SECP.verify_ecdsa(&sighashes[index], &signature.signature, signer)
                    .unwrap();
            }
        }
        assert!(signed.vsize() as u64 <= spend.vsize_max());
        assert_eq!(signed.compute_txid(), spend.transaction().compute_txid());
    }

    #[test]
    fn two_of_four_signatures_or_a_repeated_signer_are_not_enough() {
        let federation = federation();
        let utxos = [utxo(1, 60_000, 10, deposit(1))];
        let spend = build_spend(&federation, &params(), &utxos, &pay(30_000)).unwrap();
        let first = spend.sign(&signing_key(1)).unwrap();
        let second = spend.sign(&signing_key(2)).unwrap();
        let partials = [first.clone(), second, first];
        assert_eq!(
            spend.assemble(&partials),
            Err(SpendError::InsufficientSignatures { have: 2, need: 3 })
        );
    }

    #[test]
    fn outsiders_foreign_signatures_and_malleated_ones_are_refused() {
        let federation = federation();
        let utxos = [utxo(1, 60_000, 10, deposit(1))];
        let spend = build_spend(&federation, &params(), &utxos, &pay(30_000)).unwrap();
        let other = build_spend(&federation, &params(), &utxos, &pay(31_000)).unwrap();
        let outsider = signing_key(50);
        assert_eq!(
            spend.sign(&outsider),
            Err(SpendError::NotASigner {
                key: outsider.public_key()
            })
        );
        let signer = key(1);
        let foreign = other.sign(&signing_key(1)).unwrap();
        assert_eq!(
            spend.verify(&foreign),
            Err(SpendError::InvalidSignature { signer, input: 0 })
        );
        let mut partial = spend.sign(&signing_key(1)).unwrap();
        partial.signatures[0].sighash_type = EcdsaSighashType::AllPlusAnyoneCanPay;
        assert_eq!(
            spend.verify(&partial),
            Err(SpendError::SighashType { signer, input: 0 })
        );
        let mut partial = spend.sign(&signing_key(1)).unwrap();
        partial.signatures[0].signature = high_s(&partial.signatures[0].signature);
        assert_eq!(
            spend.verify(&partial),
            Err(SpendError::HighS { signer, input: 0 })
        );
        let mut partial = spend.sign(&signing_key(1)).unwrap();
        partial.signatures.push(partial.signatures[0]);
        assert!(matches!(
            spend.verify(&partial),
            Err(SpendError::SignatureCount { found: 2, .. })
        ));
        // A recovery key cannot sign the federation branch.
        assert!(matches!(
            spend.sign(&signing_key(101)),
            Err(SpendError::NotASigner { .. })
        ));
    }

    /// The same signature with s replaced by n − s.
    fn high_s(
        signature: &bitcoin::secp256k1::ecdsa::Signature,
    ) -> bitcoin::secp256k1::ecdsa::Signature {
        const ORDER: [u8; 32] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c,
            0xd0, 0x36, 0x41, 0x41,
        ];
        let compact = signature.serialize_compact();
        let mut s = [0_u8; 32];
        let mut borrow = 0_i16;
        for index in (0..32).rev() {
            let difference = i16::from(ORDER[index]) - i16::from(compact[32 + index]) - borrow;
            borrow = i16::from(difference < 0);
            s[index] = u8::try_from(difference.rem_euclid(256)).unwrap();
        }
        let mut bytes = compact;
        bytes[32..].copy_from_slice(&s);
        bitcoin::secp256k1::ecdsa::Signature::from_compact(&bytes).unwrap()
    }

    #[test]
    fn a_recovery_sweep_waits_for_the_delay_and_needs_recovery_keys() {
        let federation = federation();
        let utxos = [
            utxo(1, 60_000, 10, deposit(1)),
            utxo(2, 60_000, 11, Custody::Base),
        ];
        let destination = recipient();
        let sweep = build_sweep(
            &federation,
            &params(),
            &utxos,
            &destination,
            SpendBranch::Recovery,
        )
        .unwrap();
        let transaction = sweep.transaction();
        assert_eq!(transaction.output.len(), 1);
        assert_eq!(
            transaction.output[0].value,
            Amount::from_sat(120_000) - sweep.fee()
        );
        for input in &transaction.input {
            assert_eq!(input.sequence, Sequence::from_height(144));
        }
        assert_eq!(sweep.threshold(), 2);
        assert!(sweep.sign(&signing_key(1)).is_err());
        let partials = [
            sweep.sign(&signing_key(103)).unwrap(),
            sweep.sign(&signing_key(101)).unwrap(),
        ];
        let signed = sweep.assemble(&partials).unwrap();
        let items: Vec<&[u8]> = signed.input[0].witness.iter().collect();
        assert_eq!(items.len(), 1 + 2 + 1 + 1);
        assert!(
            items[3].is_empty(),
            "the recovery branch is selected by an empty element"
        );
        assert!(signed.vsize() as u64 <= sweep.vsize_max());
    }

    #[test]
    fn a_migration_sweep_pays_the_new_federations_base_script() {
        let old = federation();
        let recovery = Recovery::new((101..=103).map(key).collect(), 2, 144).unwrap();
        let new = Federation::new((2..=6).map(key).collect(), recovery).unwrap();
        assert_eq!(new.threshold(), 4);
        let utxos = [utxo(1, 60_000, 10, deposit(1))];
        let destination = new.script_pubkey(&Custody::Base);
        let sweep = build_sweep(
            &old,
            &params(),
            &utxos,
            &destination,
            SpendBranch::Federation,
        )
        .unwrap();
        assert_eq!(sweep.threshold(), 3);
        assert_eq!(sweep.signers(), old.keys());
        assert_eq!(sweep.transaction().output[0].script_pubkey, destination);
        let dust_only = [utxo(1, 3_000, 10, deposit(1))];
        assert!(matches!(
            build_sweep(
                &old,
                &params(),
                &dust_only,
                &destination,
                SpendBranch::Federation
            ),
            Err(SpendError::SweepBelowDust { .. })
        ));
    }

    #[test]
    fn the_largest_federation_spends_the_most_inputs_within_standard_weight() {
        let recovery = Recovery::new((21..=40).map(key).collect(), 11, 1_000).unwrap();
        let federation = Federation::new((1..=20).map(key).collect(), recovery).unwrap();
        let utxos: Vec<Utxo> = (0..SPEND_INPUTS_MAX)
            .map(|index| {
                let mut coin = utxo(
                    1,
                    10_000_000,
                    10,
                    deposit(u8::try_from(index % 200).unwrap()),
                );
                coin.outpoint.vout = u32::try_from(index).unwrap();
                coin
            })
            .collect();
        let total = 10_000_000 * SPEND_INPUTS_MAX as u64;
        let spend = build_spend(&federation, &params(), &utxos, &pay(total - 10_000_000)).unwrap();
        assert_eq!(spend.inputs().len(), SPEND_INPUTS_MAX);
        assert!(spend.vsize_max() * 4 <= u64::from(MAX_STANDARD_TX_WEIGHT));
        let one_more = [
            utxos.clone(),
            vec![{
                let mut coin = utxos[0].clone();
                coin.outpoint.vout = 10_000;
                coin
            }],
        ]
        .concat();
        assert_eq!(
            build_spend(&federation, &params(), &one_more, &pay(total)),
            Err(SpendError::TooManyInputs {
                max: SPEND_INPUTS_MAX
            })
        );
        // 150 inputs of the largest deposit script: about 391 000 of the 400 000.
    }

    #[test]
    fn litecoin_dust_follows_litecoind() {
        let p2wsh = federation().script_pubkey(&Custody::Base);
        assert_eq!(
            dust_threshold(&Network::LITECOIN_REGTEST, &p2wsh),
            Amount::from_sat(3_300)
        );
        assert_eq!(
            dust_threshold(&Network::BITCOIN_MAINNET, &p2wsh),
            Amount::from_sat(330)
        );
        assert_eq!(
            dust_threshold(&Network::LITECOIN_REGTEST, &recipient()),
            Amount::from_sat(2_940)
        );
    }
}
