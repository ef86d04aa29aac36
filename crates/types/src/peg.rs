//! The two-way peg's configuration, its records in the authenticated state and its typed
//! errors. The checks themselves (proof of work, merkle proofs, scripts, signatures) live in
//! `consort-chain`, which knows the main chain's formats.

use crate::{
    AccountId, Asset, codec_record,
    codec_util::{Blob, List},
};
use serde::{Deserialize, Serialize};

/// Most deposit outputs one claim transaction claims (all of one main-chain transaction).
pub const CLAIM_OUTPUTS_MAX: usize = 2_048;
/// Most headers one relay transaction carries.
pub const RELAY_HEADERS_MAX: usize = 500;
/// Largest main-chain transaction a claim may carry (bytes). Litecoin's HogEx can be large;
/// together with the proof it must fit one Consort transaction (`TX_SIZE_MAX`).
pub const CLAIM_TX_SIZE_MAX: usize = 81_920;
/// Largest merkle proof (`gettxoutproof` output) a claim or confirmation may carry (bytes).
pub const TX_PROOF_SIZE_MAX: usize = 16_384;
/// Largest main-chain output script a peg-out may pay (bytes).
pub const PAYOUT_SCRIPT_SIZE_MAX: usize = 64;
/// Largest DER signature plus sighash byte.
pub const PEG_SIGNATURE_SIZE_MAX: usize = 73;
/// Most inputs of a peg-out batch (one signature each).
pub const BATCH_INPUTS_MAX: usize = 150;
/// Most requests paid by one batch.
pub const BATCH_REQUESTS_MAX: usize = 200;
/// Most claims waiting out their contest period at once; more are refused until some mature.
/// A main-chain reorganisation re-checks every pending claim, so this bounds that work.
pub const PENDING_CLAIMS_MAX: usize = 16_384;
/// Most federation coins (oldest first) coin selection looks at when it builds a batch; a
/// request the window cannot pay makes the runtime consolidate the window's oldest coins.
pub const SELECTION_COINS_MAX: usize = 1_024;
/// Most fee bumps of one batch (each doubles its fee): after that it waits as it is.
pub const BATCH_BUMPS_MAX: usize = 4;
/// Main-chain blocks past the deposit confirmations (k) a fully signed batch may stay
/// unconfirmed before it is fee-bumped.
pub const BUMP_AFTER_EXTRA_BLOCKS: u32 = 6;
/// Most queued peg-out requests (oldest first) end of block looks at when it builds a batch.
pub const BATCH_SCAN_REQUESTS_MAX: usize = 256;
/// Most members of one federation: OP_CHECKMULTISIG's key limit (the validator set may be
/// larger; the federation is then formed by the first this many members in committee order).
pub const FEDERATION_MEMBERS_MAX: usize = 20;
/// Most federations that may hold coins or take claims at once (the current one and those
/// it replaced that are still being swept or in their grace period). A committee change
/// beyond it waits (the federation stays) until the oldest retires.
pub const FEDERATIONS_LIVE_MAX: u32 = 8;
/// Bytes of a federation key (compressed secp256k1).
pub const FEDERATION_KEY_SIZE: usize = 33;
/// Bytes of a proof of possession of a federation key (compact ECDSA).
pub const KEY_PROOF_SIZE: usize = 64;
/// Main-chain blocks deposits to a replaced federation's addresses are still credited after
/// the switch, when genesis does not say.
pub const DEFAULT_FEDERATION_GRACE_BLOCKS: u32 = 4_032;

fn default_grace() -> u32 {
    DEFAULT_FEDERATION_GRACE_BLOCKS
}

/// The peg, as genesis configures it. Absent: the chain runs without a peg.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PegConfig {
    /// `litecoin` or `bitcoin`, then `-regtest`, `-testnet` or `-mainnet`.
    pub network: String,
    /// The asset code of the pegged coin on Consort (e.g. `LTC`).
    pub asset: Asset,
    /// The validators' secp256k1 federation keys (compressed, hex), in genesis validator
    /// order.
    pub federation_keys: Vec<String>,
    /// Keys of the emergency recovery branch (compressed, hex).
    pub recovery_keys: Vec<String>,
    /// How many recovery keys must sign.
    pub recovery_threshold: u8,
    /// Main-chain blocks a coin must age before the recovery keys may move it.
    pub recovery_delay_blocks: u16,
    /// Confirmations a deposit needs before it may be claimed (k).
    pub confirmations: u32,
    /// Deposits of at least this many satoshis need `large_confirmations` (0: no such rule).
    #[serde(default)]
    pub large_deposit_sat: u64,
    /// Confirmations a large deposit needs.
    #[serde(default)]
    pub large_confirmations: u32,
    /// Main-chain blocks after the claim's k confirmations before the coins are spendable (c).
    pub contest_blocks: u32,
    /// Fee rate of peg-out transactions (sat/vB).
    pub fee_rate_sat_per_vb: u64,
    /// Main-chain blocks after a federation is replaced (the committee changed) during which
    /// deposits to its addresses are still credited: a deposit mined at most this many blocks
    /// after the switch is claimed to the old federation's script and swept to the new one.
    #[serde(default = "default_grace")]
    pub federation_grace_blocks: u32,
    /// Where the on-chain header chain starts. Absent: the network's genesis block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
}

/// A trusted main-chain header to start the light client from (testnet and mainnet, where
/// relaying from genesis would take millions of headers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Its height.
    pub height: u32,
    /// The 80-byte header, hex.
    pub header: Blob<80>,
    /// Cumulative chain work up to and including it (32 bytes, big-endian, hex).
    pub chainwork: Blob<32>,
    /// Timestamps of the up to 10 headers before it, oldest first: with its own, the median
    /// time past the next header must exceed.
    #[serde(default)]
    pub recent_times: Vec<u32>,
    /// The header the first difficulty retarget after the checkpoint reads as its period's
    /// start, when that header is not after the checkpoint (Bitcoin: the first of the period;
    /// Litecoin: the one before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_start: Option<PeriodStart>,
}

/// A header's height and timestamp: what a retarget reads of its period's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodStart {
    /// Its height.
    pub height: u32,
    /// Its timestamp.
    pub time: u32,
}

/// Headers whose timestamps make the median time past.
pub const MEDIAN_TIME_SPAN: usize = 11;
/// Seconds a relayed header's timestamp may be ahead of the Consort block that carries it
/// (the main chains' two hours).
pub const HEADER_FUTURE_DRIFT_S: u64 = 7_200;

/// A main-chain outpoint. `txid` is in internal byte order (as hashed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Outpoint {
    /// The transaction id.
    #[serde(with = "crate::hex_serde::main_hash")]
    pub txid: [u8; 32],
    /// The output index.
    pub vout: u32,
}
codec_record!(Outpoint {
    txid: [u8; 32],
    vout: u32
});

/// A main-chain header the light client accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderEntry {
    /// Block hash (internal byte order).
    #[serde(with = "crate::hex_serde::main_hash")]
    pub hash: [u8; 32],
    /// The parent's hash.
    #[serde(with = "crate::hex_serde::main_hash")]
    pub prev: [u8; 32],
    /// Height.
    pub height: u32,
    /// `nBits`.
    pub bits: u32,
    /// Timestamp (main-chain seconds; informational, never compared with a clock).
    pub time: u32,
    /// Cumulative work, big-endian.
    #[serde(with = "crate::hex_serde::bytes32")]
    pub chainwork: [u8; 32],
    /// Bits of the last header not mined under the min-difficulty rule.
    pub last_regular_bits: u32,
    /// Timestamps of the last [`MEDIAN_TIME_SPAN`] headers up to this one (fewer near the
    /// start): their median is the time the next header must exceed.
    pub recent_times: RecentTimes,
}

/// Up to [`MEDIAN_TIME_SPAN`] timestamps, oldest first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentTimes {
    /// How many of `times` are used.
    pub len: u8,
    /// The timestamps (the first `len`).
    pub times: [u32; MEDIAN_TIME_SPAN],
}

impl RecentTimes {
    /// From up to the last [`MEDIAN_TIME_SPAN`] of `times` (oldest first).
    pub fn from_slice(times: &[u32]) -> Self {
        let tail = &times[times.len().saturating_sub(MEDIAN_TIME_SPAN)..];
        let mut recent = Self::default();
        recent.times[..tail.len()].copy_from_slice(tail);
        recent.len = u8::try_from(tail.len()).unwrap_or(u8::MAX);
        recent
    }

    /// The timestamps in use, oldest first.
    pub fn as_slice(&self) -> &[u32] {
        &self.times[..usize::from(self.len).min(MEDIAN_TIME_SPAN)]
    }
}

impl commonware_codec::Write for RecentTimes {
    fn write(&self, buf: &mut impl bytes::BufMut) {
        self.len.write(buf);
        for time in self.as_slice() {
            time.write(buf);
        }
    }
}

impl commonware_codec::EncodeSize for RecentTimes {
    fn encode_size(&self) -> usize {
        1 + 4 * self.as_slice().len()
    }
}

impl commonware_codec::Read for RecentTimes {
    type Cfg = ();
    fn read_cfg(
        buf: &mut impl commonware_codec::Buf,
        _: &(),
    ) -> Result<Self, commonware_codec::Error> {
        use commonware_codec::ReadExt;
        let len = u8::read(buf)?;
        if usize::from(len) > MEDIAN_TIME_SPAN {
            return Err(commonware_codec::Error::Invalid(
                "RecentTimes",
                "more than MEDIAN_TIME_SPAN timestamps",
            ));
        }
        let mut recent = Self {
            len,
            ..Self::default()
        };
        for slot in recent.times.iter_mut().take(usize::from(len)) {
            *slot = u32::read(buf)?;
        }
        Ok(recent)
    }
}
codec_record!(HeaderEntry {
    hash: [u8; 32],
    prev: [u8; 32],
    height: u32,
    bits: u32,
    time: u32,
    chainwork: [u8; 32],
    last_regular_bits: u32,
    recent_times: RecentTimes,
});

impl HeaderEntry {
    /// The median of [`HeaderEntry::recent_times`] (Core's median time past of the next
    /// header's parent); 0 if there are none.
    pub fn median_time_past(&self) -> u32 {
        let mut times = self.recent_times.as_slice().to_vec();
        times.sort_unstable();
        times.get(times.len() / 2).copied().unwrap_or(0)
    }

    /// `recent_times` for a child with timestamp `time`.
    pub fn recent_times_after(&self, time: u32) -> RecentTimes {
        let mut times = self.recent_times.as_slice().to_vec();
        times.push(time);
        RecentTimes::from_slice(&times)
    }
}

/// Where a claim stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    /// Credited but not spendable: waiting out the contest period.
    Pending,
    /// Spendable.
    Credited,
    /// The deposit left the most-work chain during the contest period; nothing stays credited.
    /// The outpoint may be claimed again if it is mined again.
    Void,
}

impl ClaimStatus {
    /// Wire tag.
    pub const fn tag(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Credited => 1,
            Self::Void => 2,
        }
    }

    /// From a wire tag.
    pub const fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            0 => Some(Self::Pending),
            1 => Some(Self::Credited),
            2 => Some(Self::Void),
            _ => None,
        }
    }
}

/// A claimed deposit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    /// Who was credited.
    pub account: AccountId,
    /// Satoshis.
    pub value: u64,
    /// The main-chain block that confirmed the deposit.
    #[serde(with = "crate::hex_serde::main_hash")]
    pub block: [u8; 32],
    /// Its height.
    pub height: u32,
    /// Paid by Litecoin's MWEB (an output of the HogEx transaction).
    pub mweb: bool,
    /// Where it stands ([`ClaimStatus`] tag).
    pub status: u8,
    /// The Consort height of the claim.
    pub claimed_at: u64,
    /// Main-chain height at which it becomes spendable (if it stays on the best chain).
    pub matures_at: u32,
    /// The federation (generation) whose deposit script it pays.
    pub federation: u32,
}
codec_record!(ClaimRecord {
    account: AccountId,
    value: u64,
    block: [u8; 32],
    height: u32,
    mweb: bool,
    status: u8,
    claimed_at: u64,
    matures_at: u32,
    federation: u32,
});

/// A coin the federation holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederationCoin {
    /// Where it is.
    pub outpoint: Outpoint,
    /// Satoshis.
    pub value: u64,
    /// The deposit account whose script holds it; `None` for the federation's base script
    /// (change).
    pub custody: Option<AccountId>,
    /// Main-chain height of its block.
    pub height: u32,
    /// Paid by MWEB (matures later).
    pub mweb: bool,
    /// The federation (generation) whose script holds it.
    pub federation: u32,
}
codec_record!(FederationCoin {
    outpoint: Outpoint,
    value: u64,
    custody: Option<AccountId>,
    height: u32,
    mweb: bool,
    federation: u32,
});

/// Where a peg-out request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PegOutStatus {
    /// Burned, waiting for a batch.
    Queued,
    /// In a batch being signed or confirmed.
    Batched,
    /// Its batch is confirmed on the main chain.
    Completed,
}

impl PegOutStatus {
    /// Wire tag.
    pub const fn tag(self) -> u8 {
        match self {
            Self::Queued => 0,
            Self::Batched => 1,
            Self::Completed => 2,
        }
    }

    /// From a wire tag.
    pub const fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            0 => Some(Self::Queued),
            1 => Some(Self::Batched),
            2 => Some(Self::Completed),
            _ => None,
        }
    }
}

/// A peg-out request: coins burned on Consort, owed on the main chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PegOutRequest {
    /// Its number.
    pub id: u64,
    /// Who burned.
    pub account: AccountId,
    /// Satoshis burned.
    pub amount: u64,
    /// The fee quoted when it was made; the recipient receives `amount - fee`.
    pub fee: u64,
    /// The main-chain output script paid.
    pub script: Blob<PAYOUT_SCRIPT_SIZE_MAX>,
    /// [`PegOutStatus`] tag.
    pub status: u8,
    /// The batch paying it, once batched.
    pub batch: Option<u64>,
    /// Consort height of the request.
    pub requested_at: u64,
}
codec_record!(PegOutRequest {
    id: u64,
    account: AccountId,
    amount: u64,
    fee: u64,
    script: Blob<PAYOUT_SCRIPT_SIZE_MAX>,
    status: u8,
    batch: Option<u64>,
    requested_at: u64,
});

/// An output of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutput {
    /// Satoshis.
    pub value: u64,
    /// Output script.
    pub script: Blob<PAYOUT_SCRIPT_SIZE_MAX>,
}
codec_record!(BatchOutput {
    value: u64,
    script: Blob<PAYOUT_SCRIPT_SIZE_MAX>,
});

/// Where a batch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    /// Collecting validator signatures.
    Signing,
    /// Has the federation threshold of signatures: ready to broadcast.
    Signed,
    /// Confirmed on the main chain.
    Confirmed,
}

impl BatchStatus {
    /// Wire tag.
    pub const fn tag(self) -> u8 {
        match self {
            Self::Signing => 0,
            Self::Signed => 1,
            Self::Confirmed => 2,
        }
    }

    /// From a wire tag.
    pub const fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            0 => Some(Self::Signing),
            1 => Some(Self::Signed),
            2 => Some(Self::Confirmed),
            _ => None,
        }
    }
}

/// An earlier version of a batch, replaced by a fee bump (it spends the same coins, so at
/// most one version ever confirms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchVersion {
    /// Its txid.
    #[serde(with = "crate::hex_serde::main_hash")]
    pub txid: [u8; 32],
    /// Its fee (satoshis).
    pub fee: u64,
    /// The value of its federation output (change, or a consolidation's one output); 0 if
    /// it has none.
    pub change: u64,
}
codec_record!(BatchVersion {
    txid: [u8; 32],
    fee: u64,
    change: u64
});

/// One unsigned main-chain transaction paying queued peg-outs, built by the runtime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Its number.
    pub id: u64,
    /// The requests it pays, in output order.
    pub requests: List<u64, BATCH_REQUESTS_MAX>,
    /// The coins it spends, in input order.
    pub inputs: List<FederationCoin, BATCH_INPUTS_MAX>,
    /// Its outputs: payments, then change to the federation if any.
    pub outputs: List<BatchOutput, { BATCH_REQUESTS_MAX + 1 }>,
    /// The fee it pays (satoshis).
    pub fee: u64,
    /// The sum of the requests' quoted fees.
    pub quoted: u64,
    /// Its txid (internal byte order; segwit: signatures do not change it).
    #[serde(with = "crate::hex_serde::main_hash")]
    pub txid: [u8; 32],
    /// [`BatchStatus`] tag.
    pub status: u8,
    /// Positions in its federation's member list of the members that signed, ascending.
    pub signers: List<u16, 256>,
    /// Consort height it was built at.
    pub created_at: u64,
    /// Main-chain height of its confirmation (0 until then).
    pub confirmed_height: u32,
    /// The light client's tip when it reached the signature threshold (0 before): a fee
    /// bump comes `confirmations + BUMP_AFTER_EXTRA_BLOCKS` blocks later if it is still
    /// unconfirmed.
    pub signed_at: u32,
    /// Versions replaced by fee bumps, oldest first; a proof of any confirms the batch.
    pub replaced: List<BatchVersion, BATCH_BUMPS_MAX>,
    /// The federation whose coins it spends: its members sign (`signers` are positions in
    /// its member list).
    pub federation: u32,
    /// The federation its change (or consolidation output) goes to: the current one when it
    /// was built, so a batch of a replaced federation's coins sweeps them to the new one.
    pub change_to: u32,
}
codec_record!(Batch {
    id: u64,
    requests: List<u64, BATCH_REQUESTS_MAX>,
    inputs: List<FederationCoin, BATCH_INPUTS_MAX>,
    outputs: List<BatchOutput, { BATCH_REQUESTS_MAX + 1 }>,
    fee: u64,
    quoted: u64,
    txid: [u8; 32],
    status: u8,
    signers: List<u16, 256>,
    created_at: u64,
    confirmed_height: u32,
    signed_at: u32,
    replaced: List<BatchVersion, BATCH_BUMPS_MAX>,
    federation: u32,
    change_to: u32,
});

impl Batch {
    /// The index of its federation output (change, or a consolidation's or sweep's one
    /// output), if it has one: the outputs are the payments in request order, then that
    /// output. By position, never by script: a peg-out may pay any script, even one a future
    /// federation will use.
    pub fn change_index(&self) -> Option<usize> {
        (self.outputs.0.len() > self.requests.0.len()).then_some(self.requests.0.len())
    }
}

/// The peg's running totals and counters. The conservation invariant, asserted after every
/// block that touches the peg:
/// `supply + pending_claims + fee_pool + pending_peg_outs = Σ coins + Σ in-flight batch inputs`
/// where `Σ coins` is the coin list's running sum and `pending_claims` equals the pending
/// list's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PegTotals {
    /// Spendable pegged coins on Consort (satoshis).
    pub supply: u64,
    /// Credited but still contestable.
    pub pending_claims: u64,
    /// Burned and not yet confirmed on the main chain.
    pub pending_peg_outs: u64,
    /// Quoted fees not (yet) spent on main-chain fees; pays batches whose real fee exceeds
    /// their quotes.
    pub fee_pool: u64,
    /// Next peg-out request id.
    pub next_request: u64,
    /// Next batch id.
    pub next_batch: u64,
    /// The batch being signed or confirmed, if any (one at a time).
    pub in_flight: Option<u64>,
    /// End of block found no batch to build and nothing it depends on (coins, the queue, the
    /// main-chain tip, the fee pool) changed since: it skips the work until something does.
    pub idle: bool,
    /// The current federation (generation): deposit addresses and change use its script.
    pub federation: u32,
    /// The oldest federation that may still hold coins or take claims; every generation from
    /// it to `federation` is live, and the invariant sums their coin lists.
    pub oldest_federation: u32,
}
codec_record!(PegTotals {
    supply: u64,
    pending_claims: u64,
    pending_peg_outs: u64,
    fee_pool: u64,
    next_request: u64,
    next_batch: u64,
    in_flight: Option<u64>,
    idle: bool,
    federation: u32,
    oldest_federation: u32,
});

/// One federation: the keys of a committee's members, from the epoch it took over. The
/// genesis validators form federation 0; each committee change whose members' keys differ
/// forms the next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederationRecord {
    /// Its number (generation).
    pub generation: u32,
    /// The members' accounts, in committee order; `keys[i]` is `members[i]`'s key.
    pub members: List<AccountId, FEDERATION_MEMBERS_MAX>,
    /// The members' federation keys (compressed secp256k1).
    pub keys: List<Blob<FEDERATION_KEY_SIZE>, FEDERATION_MEMBERS_MAX>,
    /// Consort height of the block that formed it.
    pub formed_at: u64,
    /// The light client's tip when it took over.
    pub since_main: u32,
    /// The light client's tip when the next federation replaced it (`None` while current):
    /// deposits to its addresses mined up to `grace` blocks later are still credited.
    pub replaced_main: Option<u32>,
    /// Claims to its addresses in their contest period.
    pub pending_claims: u64,
}
codec_record!(FederationRecord {
    generation: u32,
    members: List<AccountId, FEDERATION_MEMBERS_MAX>,
    keys: List<Blob<FEDERATION_KEY_SIZE>, FEDERATION_MEMBERS_MAX>,
    formed_at: u64,
    since_main: u32,
    replaced_main: Option<u32>,
    pending_claims: u64,
});

/// The tip of the on-chain header chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MainTip {
    /// Block hash.
    #[serde(with = "crate::hex_serde::main_hash")]
    pub hash: [u8; 32],
    /// Height.
    pub height: u32,
}
codec_record!(MainTip {
    hash: [u8; 32],
    height: u32
});

/// One output a claim claims: which output, credited to whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositOutput {
    /// Who is credited: the account the output's deposit script commits to.
    pub account: AccountId,
    /// The output's index in the main-chain transaction.
    pub vout: u32,
}
codec_record!(DepositOutput {
    account: AccountId,
    vout: u32
});

/// The head of a list the peg keeps one state key per item (federation coins, pending claims,
/// the peg-out queue): its length, the sum of its items' values, its ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListHead<T> {
    /// Items in the list.
    pub len: u64,
    /// Sum of the items' values (satoshis).
    pub sum: u64,
    /// The oldest item.
    pub first: Option<T>,
    /// The newest item.
    pub last: Option<T>,
}

impl<T> Default for ListHead<T> {
    fn default() -> Self {
        Self {
            len: 0,
            sum: 0,
            first: None,
            last: None,
        }
    }
}

/// One item's place in a list kept one key per item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListLink<T> {
    /// The item before it (older).
    pub prev: Option<T>,
    /// The item after it (newer).
    pub next: Option<T>,
    /// Its value (satoshis), counted in the head's sum.
    pub value: u64,
}

impl<T: commonware_codec::Write> commonware_codec::Write for ListHead<T> {
    fn write(&self, buf: &mut impl bytes::BufMut) {
        self.len.write(buf);
        self.sum.write(buf);
        self.first.write(buf);
        self.last.write(buf);
    }
}

impl<T: commonware_codec::EncodeSize> commonware_codec::EncodeSize for ListHead<T> {
    fn encode_size(&self) -> usize {
        self.len.encode_size()
            + self.sum.encode_size()
            + self.first.encode_size()
            + self.last.encode_size()
    }
}

impl<T: commonware_codec::Read<Cfg = ()>> commonware_codec::Read for ListHead<T> {
    type Cfg = ();
    fn read_cfg(
        buf: &mut impl commonware_codec::Buf,
        _: &(),
    ) -> Result<Self, commonware_codec::Error> {
        use commonware_codec::ReadExt;
        Ok(Self {
            len: u64::read(buf)?,
            sum: u64::read(buf)?,
            first: Option::<T>::read(buf)?,
            last: Option::<T>::read(buf)?,
        })
    }
}

impl<T: commonware_codec::Write> commonware_codec::Write for ListLink<T> {
    fn write(&self, buf: &mut impl bytes::BufMut) {
        self.prev.write(buf);
        self.next.write(buf);
        self.value.write(buf);
    }
}

impl<T: commonware_codec::EncodeSize> commonware_codec::EncodeSize for ListLink<T> {
    fn encode_size(&self) -> usize {
        self.prev.encode_size() + self.next.encode_size() + self.value.encode_size()
    }
}

impl<T: commonware_codec::Read<Cfg = ()>> commonware_codec::Read for ListLink<T> {
    type Cfg = ();
    fn read_cfg(
        buf: &mut impl commonware_codec::Buf,
        _: &(),
    ) -> Result<Self, commonware_codec::Error> {
        use commonware_codec::ReadExt;
        Ok(Self {
            prev: Option::<T>::read(buf)?,
            next: Option::<T>::read(buf)?,
            value: u64::read(buf)?,
        })
    }
}

/// Why a peg transaction was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PegError {
    /// Genesis configures no peg.
    #[error("this chain has no peg; start it with a `peg` section in genesis")]
    Disabled,
    /// A relayed header fails a check.
    #[error("main-chain header {index} is invalid: {reason}")]
    BadHeader {
        /// Its position in the relay.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A relayed header's parent is unknown.
    #[error(
        "main-chain header {index} does not connect to a known header; relay from the fork point"
    )]
    UnknownParent {
        /// Its position in the relay.
        index: usize,
    },
    /// A relayed header's timestamp is not above the median of the 11 before it.
    #[error("main-chain header {index} has time {time}, not above the median time past {median}")]
    TimeTooOld {
        /// Its position in the relay.
        index: usize,
        /// Its timestamp.
        time: u32,
        /// The median time past.
        median: u32,
    },
    /// A relayed header's timestamp is too far ahead of the Consort block carrying it.
    #[error(
        "main-chain header {index} has time {time}, more than two hours after this block's {now}; relay it later"
    )]
    TimeTooNew {
        /// Its position in the relay.
        index: usize,
        /// Its timestamp.
        time: u32,
        /// The Consort block's time (seconds).
        now: u64,
    },
    /// Every relayed header is already known.
    #[error("every relayed header is already known")]
    NothingNew,
    /// The claimed transaction does not decode.
    #[error("the main-chain transaction does not decode: {0}")]
    BadTransaction(String),
    /// The merkle proof fails.
    #[error("the merkle proof does not show the transaction in a block: {0}")]
    BadProof(String),
    /// The proof's block is not on the most-work chain the light client knows.
    #[error("block {0} is not on the light client's most-work chain; relay its headers first")]
    NotInBestChain(String),
    /// Too few confirmations yet.
    #[error("the deposit has {have} confirmations, {need} are needed; claim again later")]
    TooFewConfirmations {
        /// Confirmations now.
        have: u32,
        /// Needed.
        need: u32,
    },
    /// The output does not exist or is not the federation's deposit script for the account.
    #[error("output {vout} does not pay this account's federation deposit address")]
    NotADeposit {
        /// The output.
        vout: u32,
    },
    /// A deposit worth less than twice the fee of spending it.
    #[error(
        "a deposit of {value} satoshis is below the minimum of {minimum}: it would cost more to spend than it is worth"
    )]
    DepositTooSmall {
        /// Its value.
        value: u64,
        /// The smallest deposit credited.
        minimum: u64,
    },
    /// The outpoint is already claimed.
    #[error("outpoint {0} is already claimed")]
    AlreadyClaimed(String),
    /// A claim's outputs are empty or name one output twice.
    #[error("bad claim outputs: {0}")]
    BadOutputs(&'static str),
    /// Too many claims or coins are waiting.
    #[error("the peg is at capacity ({0}); retry after pending claims mature")]
    AtCapacity(&'static str),
    /// A peg-out destination that is not a standard output script or is the federation's.
    #[error(
        "peg-out destination is not a standard main-chain output script other than the federation's"
    )]
    BadDestination,
    /// A peg-out below the minimum.
    #[error("a peg-out must be at least {minimum} satoshis (fee quote {fee} plus the dust limit)")]
    BelowMinimum {
        /// Smallest accepted amount.
        minimum: u64,
        /// The quoted fee.
        fee: u64,
    },
    /// No such batch, or not in a state that takes this call.
    #[error("batch {0} does not exist or does not take this call now")]
    BadBatch(u64),
    /// The signatures do not verify for the signer's federation key.
    #[error("the signatures do not verify for this validator's federation key: {0}")]
    BadSignatures(String),
    /// This validator already signed.
    #[error("this validator already signed batch {0}")]
    AlreadySigned(u64),
    /// The sender is not a member of the federation whose coins the batch spends.
    #[error(
        "the sender is not a member of federation {0}, whose coins the batch spends; only its members sign"
    )]
    NotAMember(u32),
    /// A federation key that does not parse, or whose proof of possession fails.
    #[error("bad federation key: {0}")]
    BadFederationKey(&'static str),
    /// Another account registered this federation key.
    #[error("this federation key is registered to another account")]
    KeyInUse,
    /// A federation key cannot change while its account is a validator or a member of a live
    /// federation.
    #[error(
        "this federation key cannot change while its account is a validator or a member of a live federation; leave the validator set and wait until its federations retire"
    )]
    KeyLocked,
    /// The deposit paid a replaced federation's address after its grace period.
    #[error(
        "output {vout} pays the address of federation {federation}, replaced; deposits to it are credited only within its grace period"
    )]
    AddressRetired {
        /// The output.
        vout: u32,
        /// The replaced federation.
        federation: u32,
    },
}

impl PegError {
    /// A stable machine-readable code.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Disabled => "peg_disabled",
            Self::BadHeader { .. } => "peg_bad_header",
            Self::UnknownParent { .. } => "peg_unknown_parent",
            Self::NothingNew => "peg_nothing_new",
            Self::TimeTooOld { .. } => "peg_header_time_too_old",
            Self::TimeTooNew { .. } => "peg_header_time_too_new",
            Self::BadTransaction(_) => "peg_bad_transaction",
            Self::BadProof(_) => "peg_bad_proof",
            Self::NotInBestChain(_) => "peg_not_in_best_chain",
            Self::TooFewConfirmations { .. } => "peg_too_few_confirmations",
            Self::NotADeposit { .. } => "peg_not_a_deposit",
            Self::AlreadyClaimed(_) => "peg_already_claimed",
            Self::DepositTooSmall { .. } => "peg_deposit_too_small",
            Self::AtCapacity(_) => "peg_at_capacity",
            Self::BadOutputs(_) => "peg_bad_outputs",
            Self::BadDestination => "peg_bad_destination",
            Self::BelowMinimum { .. } => "peg_below_minimum",
            Self::BadBatch(_) => "peg_bad_batch",
            Self::BadSignatures(_) => "peg_bad_signatures",
            Self::AlreadySigned(_) => "peg_already_signed",
            Self::NotAMember(_) => "peg_not_a_member",
            Self::BadFederationKey(_) => "peg_bad_federation_key",
            Self::KeyInUse => "peg_key_in_use",
            Self::KeyLocked => "peg_key_locked",
            Self::AddressRetired { .. } => "peg_address_retired",
        }
    }
}
