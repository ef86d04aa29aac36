//! Genesis: the chain id, the first validator set and the funded accounts.

use crate::{AccountId, Amount, Digest, limits, sha256};
use commonware_cryptography::ed25519;
use serde::{Deserialize, Serialize};

/// One validator of the first epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisValidator {
    /// Consensus and p2p identity (ed25519 public key, hex).
    pub public_key: AccountId,
    /// The p2p address other validators dial (`host:port`).
    pub p2p_address: String,
}

/// Per-account limits that take the place of fees on a permissioned chain: nobody pays to
/// write, but no account can crowd the others out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLimits {
    /// Most transactions of one sender in one block (the rest wait for later blocks).
    pub txs_per_block: u32,
    /// Largest encoded transaction of any account, in bytes.
    pub tx_size_max: u32,
    /// Most transactions of one sender waiting in a node's mempool.
    pub pending_max: u32,
}

/// An account funded at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisAccount {
    /// The account.
    pub id: AccountId,
    /// Its starting balance.
    pub balance: Amount,
}

/// The chain's starting point. Every node of a chain holds the same genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// Chain id carried by every transaction.
    pub chain_id: u64,
    /// Genesis time, ms since the Unix epoch (the genesis block's timestamp).
    pub genesis_time_ms: u64,
    /// The validators of epoch 0.
    pub validators: Vec<GenesisValidator>,
    /// Funded accounts.
    pub accounts: Vec<GenesisAccount>,
    /// The two-way peg with the main chain; absent, the chain runs without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peg: Option<crate::peg::PegConfig>,
    /// Organisations, modes and permissions; absent, an open chain without permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub governance: Option<crate::gov::GovernanceConfig>,
    /// Blocks per epoch; validator-set changes take effect at epoch boundaries (absent:
    /// [`crate::validators::DEFAULT_EPOCH_BLOCKS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_blocks: Option<u64>,
    /// Per-account rate and size limits (absent: only the global limits apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_limits: Option<AccountLimits>,
    /// How long a leader with nothing runnable waits before proposing an empty block, in ms
    /// (absent: [`EMPTY_BLOCK_INTERVAL_MS_DEFAULT`]). Blocks with work are built at once; this
    /// sets what an idle chain costs (blocks and disk) against how fast block-time expiries
    /// fire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_block_interval_ms: Option<u64>,
    /// The shop (needs governance: sellers, carriers and banks are its organisations);
    /// absent, commerce calls are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commerce: Option<crate::commerce::CommerceConfig>,
}

/// Default pace of empty blocks (ms).
pub const EMPTY_BLOCK_INTERVAL_MS_DEFAULT: u64 = 5_000;

/// Shortest allowed empty-block interval (ms).
pub const EMPTY_BLOCK_INTERVAL_MS_MIN: u64 = 100;

/// Longest allowed empty-block interval (ms).
pub const EMPTY_BLOCK_INTERVAL_MS_MAX: u64 = 60_000;

/// Why a genesis document is unusable.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// Not JSON of the right shape.
    #[error("genesis is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A rule is broken.
    #[error("genesis is invalid: {0}")]
    Invalid(String),
}

impl Genesis {
    /// Parse and check a genesis document.
    pub fn from_json(text: &str) -> Result<Self, GenesisError> {
        let genesis: Self = serde_json::from_str(text)?;
        genesis.check()?;
        Ok(genesis)
    }

    /// Check the document's rules: validators present and distinct, accounts distinct, no
    /// overflow of total supply.
    pub fn check(&self) -> Result<(), GenesisError> {
        let invalid = |m: &str| Err(GenesisError::Invalid(m.to_string()));
        if self.validators.is_empty() || self.validators.len() > limits::VALIDATORS_MAX {
            return invalid("validators must number between 1 and VALIDATORS_MAX");
        }
        if let Some(l) = self.account_limits
            && (l.txs_per_block == 0
                || l.pending_max == 0
                || l.tx_size_max < 256
                || l.tx_size_max as usize > limits::TX_SIZE_MAX)
        {
            return invalid(
                "account_limits: txs_per_block and pending_max at least 1, tx_size_max from 256 \
                 to TX_SIZE_MAX",
            );
        }
        if self.empty_block_interval_ms.is_some_and(|ms| {
            !(EMPTY_BLOCK_INTERVAL_MS_MIN..=EMPTY_BLOCK_INTERVAL_MS_MAX).contains(&ms)
        }) {
            return invalid(
                "empty_block_interval_ms must be from EMPTY_BLOCK_INTERVAL_MS_MIN (100) to \
                 EMPTY_BLOCK_INTERVAL_MS_MAX (60000)",
            );
        }
        if self.epoch_blocks.is_some_and(|blocks| blocks < 2) {
            return invalid("epoch_blocks must be at least 2");
        }
        if self
            .validators
            .iter()
            .any(|v| v.p2p_address.parse::<std::net::SocketAddr>().is_err())
        {
            return invalid("every validator p2p_address must be ip:port");
        }
        if self.accounts.len() > limits::GENESIS_ACCOUNTS_MAX {
            return invalid("too many genesis accounts");
        }
        if self
            .validators
            .iter()
            .any(|v| v.public_key.public_key().is_none())
        {
            return invalid("a validator key is not a valid ed25519 public key");
        }
        let mut keys: Vec<_> = self.validators.iter().map(|v| &v.public_key).collect();
        keys.sort();
        keys.dedup();
        if keys.len() != self.validators.len() {
            return invalid("a validator is listed twice");
        }
        let mut ids: Vec<_> = self.accounts.iter().map(|a| &a.id).collect();
        ids.sort();
        ids.dedup();
        if ids.len() != self.accounts.len() {
            return invalid("an account is listed twice");
        }
        if let Some(peg) = &self.peg
            && peg.federation_keys.len() != self.validators.len()
        {
            return invalid("the peg needs one federation key per validator, in validator order");
        }
        if let Some(gov) = &self.governance {
            if gov.organisations.is_empty() {
                return invalid("governance needs at least one founding organisation");
            }
            let mut ids: Vec<_> = gov.organisations.iter().map(|o| o.id).collect();
            ids.sort();
            ids.dedup();
            if ids.len() != gov.organisations.len() {
                return invalid("an organisation is listed twice");
            }
            if !ids.contains(&gov.registrar) {
                return invalid("the registrar must be a founding organisation");
            }
            if gov.vote_period_blocks == 0 {
                return invalid("vote_period_blocks must be at least 1");
            }
        }
        if let Some(shop) = &self.commerce {
            if self.governance.is_none() {
                return invalid(
                    "commerce needs governance: sellers, carriers and banks are its organisations",
                );
            }
            if shop.fee_rate_bp > crate::commerce::FEE_RATE_BP_MAX {
                return invalid("commerce fee_rate_bp must be at most FEE_RATE_BP_MAX (5000)");
            }
            if shop.payment_window_ms == 0
                || shop.receipt_window_ms == 0
                || shop.after_sale_window_ms == 0
            {
                return invalid(
                    "commerce payment_window_ms, receipt_window_ms and after_sale_window_ms \
                     must be more than 0",
                );
            }
        }
        let mut total = Amount::ZERO;
        for account in &self.accounts {
            total = match total.checked_add(account.balance) {
                Some(t) => t,
                None => return invalid("total supply overflows"),
            };
        }
        Ok(())
    }

    /// A digest of the canonical JSON form: two nodes with different genesis never agree on a
    /// block.
    pub fn digest(&self) -> Digest {
        let json = serde_json::to_vec(self).expect("genesis serializes");
        sha256(&[b"consort/genesis/", &json])
    }

    /// The validators' consensus keys, in genesis order. Valid by [`Genesis::check`].
    pub fn validator_keys(&self) -> Vec<ed25519::PublicKey> {
        self.validators
            .iter()
            .map(|v| {
                v.public_key
                    .public_key()
                    .expect("genesis check rejects invalid validator keys")
            })
            .collect()
    }

    /// How long an idle leader waits before proposing an empty block (ms).
    pub fn empty_block_interval_ms(&self) -> u64 {
        self.empty_block_interval_ms
            .unwrap_or(EMPTY_BLOCK_INTERVAL_MS_DEFAULT)
    }

    /// Blocks per epoch.
    pub fn epoch_blocks(&self) -> u64 {
        self.epoch_blocks
            .unwrap_or(crate::validators::DEFAULT_EPOCH_BLOCKS)
    }

    /// The validator set of epoch 0. Valid by [`Genesis::check`].
    pub fn validator_set(&self) -> crate::validators::ValidatorSet {
        crate::validators::ValidatorSet {
            members: crate::codec_util::List(
                self.validators
                    .iter()
                    .map(|v| crate::validators::ValidatorEntry {
                        key: v.public_key,
                        address: v
                            .p2p_address
                            .parse()
                            .expect("genesis check rejects bad p2p addresses"),
                    })
                    .collect(),
            ),
        }
    }

    /// Total supply at genesis.
    pub fn total_supply(&self) -> Amount {
        self.accounts.iter().fold(Amount::ZERO, |t, a| {
            t.checked_add(a.balance).expect("checked")
        })
    }
}
