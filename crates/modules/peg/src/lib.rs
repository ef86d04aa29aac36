//! The two-way peg's state machine: an on-chain light client of the main chain's headers,
//! deposit claims with a contest period, peg-out requests paid in batches the validators sign
//! on chain, and the conservation invariant.
//!
//! Everything here is deterministic: it reads only the block's transactions and the state, and
//! every check of main-chain data (proof of work, difficulty, merkle proofs, scripts, ECDSA
//! signatures) is a pure function from `consort-mainchain`.
//!
//! Accounting, in satoshis, kept in [`PegTotals`] and the running sums of the coin and pending
//! lists ([`list`]), checked after every block that touches the peg (O(1)), and re-derived
//! from every record by [`Peg::rederive`] in tests:
//!
//! ```text
//! supply + pending_claims + fee_pool + pending_peg_outs
//!     = Σ federation coins + Σ inputs of the batch in flight   (+ Σ pending claim values)
//! ```
//!
//! * claim: `pending_claims += v` and a pending claim record of `v`;
//! * maturity: `pending_claims -= v`, `supply += v`, a coin record of `v`;
//! * void (reorg): `pending_claims -= v`, the claim record is void;
//! * peg-out request of `a` with quoted fee `q`: `supply -= a`, `pending_peg_outs += a`;
//! * batch confirmed paying `Σ(a - q)` with real fee `f` and change `c`: the inputs leave,
//!   the change arrives, `pending_peg_outs -= Σa`, `fee_pool += Σq - f`.
//!
//! * [`params`]: deposit addresses, fees and quotes.
//! * [`federations`]: the federation of each committee, and the sweep to the next.
//! * [`genesis`]: the peg's records in block 1.
//! * [`headers`]: the light client of the main chain.
//! * [`deposit`]: deposit claims and their contest period.
//! * [`withdraw`]: peg-out requests and the batches that pay them.
//! * [`block`]: end of block and the conservation invariant.

pub mod block;
pub mod deposit;
pub mod federations;
pub mod genesis;
pub mod headers;
pub(crate) mod list;
pub mod params;
pub mod withdraw;

pub(crate) use block::{add, sub};
pub(crate) use params::spend_params;
pub(crate) use withdraw::to_utxo;

pub use federations::Federated;

use bitcoin::secp256k1::PublicKey;
use consort_execution::{Context, Fail, Runtime, Store};
use consort_mainchain::{Network, Recovery};
use consort_types::{
    AccountId, Call, TxError,
    peg::{HeaderEntry, PegConfig},
};

/// Regtest genesis blocks (Litecoin and Bitcoin share the timestamp and bits).
const REGTEST_GENESIS_TIME: u32 = 1_296_688_602;
const REGTEST_BITS: u32 = 0x207f_ffff;

/// Parse `litecoin-regtest`, `bitcoin-mainnet` and the like.
pub fn parse_network(name: &str) -> Option<Network> {
    Some(match name {
        "litecoin-regtest" => Network::LITECOIN_REGTEST,
        "litecoin-testnet" => Network::LITECOIN_TESTNET,
        "litecoin-mainnet" => Network::LITECOIN_MAINNET,
        "bitcoin-regtest" => Network::BITCOIN_REGTEST,
        "bitcoin-testnet" => Network::BITCOIN_TESTNET,
        "bitcoin-mainnet" => Network::BITCOIN_MAINNET,
        _ => return None,
    })
}

/// The peg of a chain: its configuration, parsed and checked once.
#[derive(Clone, Debug)]
pub struct Peg {
    /// The configuration from genesis.
    pub config: PegConfig,
    /// The main chain.
    pub network: Network,
    /// The emergency recovery set every federation's scripts share.
    recovery: Recovery,
    /// The chain id (proofs of possession of federation keys sign it).
    chain_id: u64,
    /// Genesis federation keys, in validator order (federation 0).
    keys: Vec<PublicKey>,
    /// Validator accounts in genesis order.
    validators: Vec<AccountId>,
    checkpoint: HeaderEntry,
}

fn parse_key(text: &str) -> Result<PublicKey, String> {
    text.parse()
        .map_err(|e| format!("{text:?} is not a compressed secp256k1 public key: {e}"))
}

impl Peg {
    /// Apply a peg call by `sender` in block `height`.
    pub async fn apply<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        ctx: Context<'_>,
        call: &Call,
    ) -> Result<(), Fail> {
        let (sender, height) = (ctx.sender, ctx.height());
        match call {
            Call::RelayHeaders { headers } => {
                if !self.is_validator(store, sender).await? {
                    return Err(TxError::Unauthorized {
                        call: call.kind(),
                        reason: "only validators relay main-chain headers",
                    }
                    .into());
                }
                self.relay(store, &headers.0, ctx.block.timestamp_ms / 1_000)
                    .await
            }
            Call::ClaimDeposit {
                transaction,
                proof,
                outputs,
            } => {
                self.claim(
                    store,
                    transaction.as_slice(),
                    proof.as_slice(),
                    &outputs.0,
                    height,
                )
                .await
            }
            Call::PegOut { amount, script } => {
                self.peg_out(store, sender, amount.units(), script, height)
                    .await
            }
            Call::SignBatch { batch, signatures } => {
                self.sign(store, sender, *batch, signatures).await
            }
            Call::RegisterFederationKey { key, proof } => {
                self.register_key(store, sender, key, proof).await
            }
            Call::FundPegFees { amount } => self.fund_fees(store, sender, amount.units()).await,
            Call::ConfirmBatch { batch, proof } => {
                self.confirm(store, *batch, proof.as_slice()).await
            }
            _ => Err(TxError::Unauthorized {
                call: call.kind(),
                reason: "not a peg call",
            }
            .into()),
        }
    }
}
