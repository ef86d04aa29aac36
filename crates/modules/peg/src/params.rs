//! The peg's parameters from genesis, and what depends on the federation: deposit addresses,
//! fees and quotes.

use crate::{
    Peg, REGTEST_BITS, REGTEST_GENESIS_TIME, federations::genesis_keys, parse_key, parse_network,
};
use bitcoin::{FeeRate, ScriptBuf, hashes::Hash as _, pow::CompactTarget, secp256k1::PublicKey};
use consort_mainchain::{
    self as mc, Custody, DepositAccount, Federation, Network, Recovery, SpendParams,
};
use consort_types::{
    AccountId, Asset, Genesis,
    peg::{HeaderEntry, MEDIAN_TIME_SPAN, PegConfig, PegError, RecentTimes},
};

impl Peg {
    /// The peg `genesis` configures, if any.
    ///
    /// # Errors
    /// What is wrong with the configuration.
    pub fn from_genesis(genesis: &Genesis) -> Result<Option<Self>, String> {
        let Some(config) = &genesis.peg else {
            return Ok(None);
        };
        let network = parse_network(&config.network).ok_or_else(|| {
            format!(
                "unknown network {:?}: use litecoin-regtest, litecoin-testnet, litecoin-mainnet, \
                 bitcoin-regtest, bitcoin-testnet or bitcoin-mainnet",
                config.network
            )
        })?;
        let keys = genesis_keys(&config.federation_keys)?;
        if keys.len() != genesis.validators.len() {
            return Err("one federation key per validator, in validator order".into());
        }
        let recovery_keys = config
            .recovery_keys
            .iter()
            .map(|k| parse_key(k))
            .collect::<Result<Vec<_>, _>>()?;
        let recovery = Recovery::new(
            recovery_keys,
            usize::from(config.recovery_threshold),
            config.recovery_delay_blocks,
        )
        .map_err(|e| e.to_string())?;
        let federation =
            Federation::new(keys.clone(), recovery.clone()).map_err(|e| e.to_string())?;
        if config.confirmations == 0 {
            return Err("confirmations must be at least 1".into());
        }
        mc::quote_fee(
            &federation,
            &spend_params(network, config, 0),
            &ScriptBuf::new(),
        )
        .map_err(|e| format!("fee rate: {e}"))?;
        let checkpoint = match &config.checkpoint {
            Some(checkpoint) => {
                let header = mc::decode_header(checkpoint.header.as_slice())
                    .map_err(|e| format!("checkpoint header: {e}"))?;
                let chainwork: [u8; 32] = checkpoint
                    .chainwork
                    .as_slice()
                    .try_into()
                    .map_err(|_| "checkpoint chainwork must be 32 bytes".to_string())?;
                mc::check_proof_of_work(&network, &header)
                    .map_err(|e| format!("checkpoint header: {e}"))?;
                if checkpoint.recent_times.len() >= MEDIAN_TIME_SPAN {
                    return Err(format!(
                        "checkpoint recent_times holds at most {} timestamps (the headers \
                         before it)",
                        MEDIAN_TIME_SPAN - 1
                    ));
                }
                if let Some(start) = checkpoint.period_start
                    && start.height >= checkpoint.height
                {
                    return Err("checkpoint period_start must be before the checkpoint".into());
                }
                let mut times = checkpoint.recent_times.clone();
                times.push(header.time);
                HeaderEntry {
                    hash: header.block_hash().to_byte_array(),
                    prev: header.prev_blockhash.to_byte_array(),
                    height: checkpoint.height,
                    bits: header.bits.to_consensus(),
                    time: header.time,
                    chainwork,
                    last_regular_bits: header.bits.to_consensus(),
                    recent_times: RecentTimes::from_slice(&times),
                }
            }
            None if network.kind == mc::NetworkKind::Regtest => {
                let bits = CompactTarget::from_consensus(REGTEST_BITS);
                let work = mc::target_from_bits(&network, bits)
                    .map_err(|e| e.to_string())?
                    .to_work();
                HeaderEntry {
                    hash: network.genesis_hash().to_byte_array(),
                    prev: [0; 32],
                    height: 0,
                    bits: REGTEST_BITS,
                    time: REGTEST_GENESIS_TIME,
                    chainwork: work.to_be_bytes(),
                    last_regular_bits: REGTEST_BITS,
                    recent_times: RecentTimes::from_slice(&[REGTEST_GENESIS_TIME]),
                }
            }
            None => return Err("testnet and mainnet pegs need a checkpoint header".into()),
        };
        Ok(Some(Self {
            config: config.clone(),
            network,
            recovery,
            chain_id: genesis.chain_id,
            keys,
            validators: genesis.validators.iter().map(|v| v.public_key).collect(),
            checkpoint,
        }))
    }

    /// The pegged asset.
    pub const fn asset(&self) -> Asset {
        self.config.asset
    }

    /// The chain id.
    pub const fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The genesis federation key of `account`, if it is a genesis validator.
    pub fn genesis_key(&self, account: &AccountId) -> Option<&PublicKey> {
        let index = self.validators.iter().position(|v| v == account)?;
        self.keys.get(index)
    }

    /// `account`'s deposit script under `federation`.
    pub fn deposit_script(&self, federation: &Federation, account: &AccountId) -> ScriptBuf {
        federation.script_pubkey(&Custody::Deposit(DepositAccount::new(*account.as_bytes())))
    }

    /// `account`'s deposit address under `federation`.
    pub fn deposit_address(&self, federation: &Federation, account: &AccountId) -> String {
        federation.deposit_address(&self.network, DepositAccount::new(*account.as_bytes()))
    }

    /// Confirmations a deposit of `value` satoshis paid by `tx` needs: a coinbase's at least
    /// [`mc::COINBASE_MATURITY_BLOCKS`], since the federation could not spend it before (and a
    /// reorganisation deletes an immature coinbase for good).
    pub fn confirmations_needed(&self, tx: &bitcoin::Transaction, value: u64) -> u32 {
        let need = self.confirmations_for(value);
        if tx.is_coinbase() {
            need.max(mc::COINBASE_MATURITY_BLOCKS)
        } else {
            need
        }
    }

    /// Confirmations a deposit of `value` satoshis needs (not a coinbase: see
    /// [`Peg::confirmations_needed`]).
    pub const fn confirmations_for(&self, value: u64) -> u32 {
        if self.config.large_deposit_sat > 0
            && value >= self.config.large_deposit_sat
            && self.config.large_confirmations > self.config.confirmations
        {
            self.config.large_confirmations
        } else {
            self.config.confirmations
        }
    }

    /// The smallest deposit claimed under `federation` (the current one), in satoshis: twice
    /// [`Peg::deposit_fee`]. Smaller ones are refused on chain and ignored (and reported) by
    /// the watchers.
    pub fn deposit_minimum(&self, federation: &Federation) -> u64 {
        self.deposit_fee(federation).saturating_mul(2)
    }

    /// What a deposit pays, out of its value, into the fee pool, in satoshis: the fee of
    /// moving that coin alone under `federation` (the current one; see
    /// [`mc::deposit_prepaid_fee`]), so consolidations, sweeps and refreshes before the
    /// recovery delay are paid for.
    pub fn deposit_fee(&self, federation: &Federation) -> u64 {
        mc::deposit_prepaid_fee(federation, &spend_params(self.network, &self.config, 0))
            .map_or(u64::MAX, |fee| fee.to_sat())
    }

    /// The fee quote and the minimum amount of a peg-out to `script` under `federation` (the
    /// current one).
    ///
    /// # Errors
    /// [`PegError::BadDestination`] for a script that is not a standard output or is the
    /// federation's.
    pub fn quote(
        &self,
        federation: &Federation,
        script: &ScriptBuf,
        tip_height: u32,
    ) -> Result<(u64, u64), PegError> {
        let standard = script.is_p2pkh()
            || script.is_p2sh()
            || script.is_p2wpkh()
            || script.is_p2wsh()
            || script.is_p2tr();
        if !standard || *script == federation.script_pubkey(&Custody::Base) {
            return Err(PegError::BadDestination);
        }
        let params = spend_params(self.network, &self.config, tip_height);
        let fee =
            mc::quote_fee(federation, &params, script).map_err(|_| PegError::BadDestination)?;
        let minimum = mc::payment_minimum(federation, &params, script)
            .map_err(|_| PegError::BadDestination)?;
        Ok((fee.to_sat(), minimum.to_sat()))
    }
}

pub(crate) fn spend_params(network: Network, config: &PegConfig, tip_height: u32) -> SpendParams {
    SpendParams {
        network,
        fee_rate: FeeRate::from_sat_per_vb(config.fee_rate_sat_per_vb).unwrap_or(FeeRate::MAX),
        next_block_height: tip_height.saturating_add(1),
    }
}
