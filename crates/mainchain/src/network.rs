//! Consensus and RPC parameters of the main chains Consort can peg to.
//!
//! Values come from `src/chainparams.cpp` and `src/chainparamsbase.cpp` of Litecoin Core 0.21
//! and Bitcoin Core. "Testnet" means Litecoin's `testnet4` and Bitcoin's `testnet3` (the one that
//! shares the `tb` address prefix and the 20-minute min-difficulty rule; Bitcoin's `testnet4`
//! adds BIP94 rules that are not modelled here).

use std::str::FromStr;

use bitcoin::BlockHash;
use bitcoin::pow::{CompactTarget, Target};

/// Blocks between two difficulty retargets, the same on every supported network.
pub const RETARGET_INTERVAL_BLOCKS: u32 = 2016;

/// The first block of Litecoin regtest with MWEB active (BIP 9 deployment, 144-block periods:
/// started at 144, locked in at 288, active from 432). That block must carry a peg-in to MWEB.
pub const MWEB_ACTIVATION_HEIGHT: u32 = 432;

/// Which Bitcoin-family chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Chain {
    /// Litecoin: scrypt proof of work, 2.5-minute blocks.
    Litecoin,
    /// Bitcoin: double SHA-256 proof of work, 10-minute blocks.
    Bitcoin,
}

/// Which network of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetworkKind {
    /// Local test network: minimum difficulty, no retargeting.
    Regtest,
    /// Public test network: retargets, and allows min-difficulty blocks after a pause.
    Testnet,
    /// The production network.
    Mainnet,
}

/// The hash function whose output must not exceed the target from `nBits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PowHash {
    /// `scrypt(header, salt = header, N = 1024, r = 1, p = 1, dkLen = 32)` (Litecoin).
    Scrypt,
    /// `SHA-256(SHA-256(header))`, which is also the block hash (Bitcoin).
    Sha256d,
}

/// A main-chain network: a chain and one of its networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Network {
    /// The chain.
    pub chain: Chain,
    /// The network of that chain.
    pub kind: NetworkKind,
}

/// Big-endian pow limit `00000fff…ff` (Litecoin mainnet and testnet4).
const POW_LIMIT_LITECOIN_PUBLIC: [u8; 32] = pow_limit_bytes(2, 0x0f);
/// Big-endian pow limit `00000000ffff…ff` (Bitcoin mainnet and testnet3).
const POW_LIMIT_BITCOIN_PUBLIC: [u8; 32] = pow_limit_bytes(4, 0xff);
/// Big-endian pow limit `7fff…ff` (every regtest).
const POW_LIMIT_REGTEST: [u8; 32] = pow_limit_bytes(0, 0x7f);

/// `zero_bytes` leading zero bytes, then `first`, then 0xff up to 32 bytes.
const fn pow_limit_bytes(zero_bytes: usize, first: u8) -> [u8; 32] {
    let mut bytes = [0xff_u8; 32];
    let mut index = 0;
    while index < zero_bytes {
        bytes[index] = 0;
        index += 1;
    }
    bytes[zero_bytes] = first;
    bytes
}

impl Network {
    /// Litecoin regtest.
    pub const LITECOIN_REGTEST: Network = Network::new(Chain::Litecoin, NetworkKind::Regtest);
    /// Litecoin testnet4.
    pub const LITECOIN_TESTNET: Network = Network::new(Chain::Litecoin, NetworkKind::Testnet);
    /// Litecoin mainnet.
    pub const LITECOIN_MAINNET: Network = Network::new(Chain::Litecoin, NetworkKind::Mainnet);
    /// Bitcoin regtest.
    pub const BITCOIN_REGTEST: Network = Network::new(Chain::Bitcoin, NetworkKind::Regtest);
    /// Bitcoin testnet3.
    pub const BITCOIN_TESTNET: Network = Network::new(Chain::Bitcoin, NetworkKind::Testnet);
    /// Bitcoin mainnet.
    pub const BITCOIN_MAINNET: Network = Network::new(Chain::Bitcoin, NetworkKind::Mainnet);

    /// The network `kind` of `chain`.
    pub const fn new(chain: Chain, kind: NetworkKind) -> Self {
        Self { chain, kind }
    }

    /// The proof-of-work hash function.
    pub const fn pow_hash(&self) -> PowHash {
        match self.chain {
            Chain::Litecoin => PowHash::Scrypt,
            Chain::Bitcoin => PowHash::Sha256d,
        }
    }

    /// The easiest target a header may claim (`consensus.powLimit`).
    pub fn pow_limit(&self) -> Target {
        let bytes = match (self.chain, self.kind) {
            (_, NetworkKind::Regtest) => POW_LIMIT_REGTEST,
            (Chain::Litecoin, _) => POW_LIMIT_LITECOIN_PUBLIC,
            (Chain::Bitcoin, _) => POW_LIMIT_BITCOIN_PUBLIC,
        };
        Target::from_be_bytes(bytes)
    }

    /// The pow limit in compact form, as Core's `powLimit.GetCompact()` (used by the
    /// min-difficulty rule).
    pub fn pow_limit_bits(&self) -> CompactTarget {
        self.pow_limit().to_compact_lossy()
    }

    /// Blocks between two retargets (`DifficultyAdjustmentInterval()`).
    pub const fn retarget_interval_blocks(&self) -> u32 {
        RETARGET_INTERVAL_BLOCKS
    }

    /// The time one retarget interval should take (`nPowTargetTimespan`).
    pub const fn target_timespan_secs(&self) -> u32 {
        match self.chain {
            Chain::Litecoin => 302_400,  // 3.5 days
            Chain::Bitcoin => 1_209_600, // 14 days
        }
    }

    /// The intended time between blocks (`nPowTargetSpacing`).
    pub const fn target_spacing_secs(&self) -> u32 {
        match self.chain {
            Chain::Litecoin => 150,
            Chain::Bitcoin => 600,
        }
    }

    /// True if the difficulty never changes (`fPowNoRetargeting`, regtest).
    pub const fn retargeting_disabled(&self) -> bool {
        matches!(self.kind, NetworkKind::Regtest)
    }

    /// True if a block more than two target spacings after its parent may use the pow limit
    /// (`fPowAllowMinDifficultyBlocks`, testnet and regtest).
    pub const fn allows_min_difficulty_blocks(&self) -> bool {
        matches!(self.kind, NetworkKind::Regtest | NetworkKind::Testnet)
    }

    /// The hash of block 0.
    pub fn genesis_hash(&self) -> BlockHash {
        let hex = match (self.chain, self.kind) {
            (Chain::Litecoin, NetworkKind::Mainnet) => {
                "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2"
            }
            (Chain::Litecoin, NetworkKind::Testnet) => {
                "4966625a4b2851d9fdee139e56211a0d88575f59ed816ff5e6a63deb4e3e29a0"
            }
            (Chain::Litecoin, NetworkKind::Regtest) => {
                "530827f38f93b43ed12af0b3ad25a288dc02ed74d6d7857862df51fc56c416f9"
            }
            (Chain::Bitcoin, NetworkKind::Mainnet) => {
                "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
            }
            (Chain::Bitcoin, NetworkKind::Testnet) => {
                "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943"
            }
            (Chain::Bitcoin, NetworkKind::Regtest) => {
                "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
            }
        };
        BlockHash::from_str(hex).expect("genesis hashes are 64 hex digits")
    }

    /// The human-readable part of segwit (bech32) addresses.
    pub const fn bech32_hrp(&self) -> &'static str {
        match (self.chain, self.kind) {
            (Chain::Litecoin, NetworkKind::Mainnet) => "ltc",
            (Chain::Litecoin, NetworkKind::Testnet) => "tltc",
            (Chain::Litecoin, NetworkKind::Regtest) => "rltc",
            (Chain::Bitcoin, NetworkKind::Mainnet) => "bc",
            (Chain::Bitcoin, NetworkKind::Testnet) => "tb",
            (Chain::Bitcoin, NetworkKind::Regtest) => "bcrt",
        }
    }

    /// The version byte of base58 pay-to-pubkey-hash addresses (`PUBKEY_ADDRESS`).
    pub const fn base58_p2pkh_prefix(&self) -> u8 {
        match (self.chain, self.kind) {
            (Chain::Litecoin, NetworkKind::Mainnet) => 48, // L…
            (Chain::Bitcoin, NetworkKind::Mainnet) => 0,   // 1…
            (_, _) => 111,                                 // m… or n…
        }
    }

    /// The version bytes of base58 pay-to-script-hash addresses: Litecoin's `SCRIPT_ADDRESS2`
    /// (M… on mainnet, Q… on test networks) and the older `SCRIPT_ADDRESS` it shares with
    /// Bitcoin (3… / 2…), which Litecoin Core still accepts.
    pub const fn base58_p2sh_prefixes(&self) -> &'static [u8] {
        match (self.chain, self.kind) {
            (Chain::Litecoin, NetworkKind::Mainnet) => &[50, 5],
            (Chain::Litecoin, _) => &[58, 196],
            (Chain::Bitcoin, NetworkKind::Mainnet) => &[5],
            (Chain::Bitcoin, _) => &[196],
        }
    }

    /// The fee rate that defines dust (`DUST_RELAY_TX_FEE`), in satoshis per 1000 virtual
    /// bytes: an output worth less than spending it at this rate is not relayed. Litecoin
    /// Core uses ten times Bitcoin's 3000 (a P2WSH output needs 3300 litoshis, checked
    /// against litecoind 0.21 in the integration tests).
    pub const fn dust_relay_fee_sat_per_kvb(&self) -> u64 {
        match self.chain {
            Chain::Litecoin => 30_000,
            Chain::Bitcoin => 3_000,
        }
    }

    /// The default minimum relay fee rate (`DEFAULT_MIN_RELAY_TX_FEE`), in satoshis per 1000
    /// virtual bytes: the lowest fee rate a node accepts into its mempool.
    pub const fn min_relay_fee_sat_per_kvb(&self) -> u64 {
        1_000
    }

    /// The port the node's JSON-RPC server listens on by default.
    pub const fn rpc_port_default(&self) -> u16 {
        match (self.chain, self.kind) {
            (Chain::Litecoin, NetworkKind::Mainnet) => 9332,
            (Chain::Litecoin, NetworkKind::Testnet) => 19332,
            (Chain::Litecoin, NetworkKind::Regtest) => 19443,
            (Chain::Bitcoin, NetworkKind::Mainnet) => 8332,
            (Chain::Bitcoin, NetworkKind::Testnet) => 18332,
            (Chain::Bitcoin, NetworkKind::Regtest) => 18443,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const ALL: [Network; 6] = [
        Network::LITECOIN_REGTEST,
        Network::LITECOIN_TESTNET,
        Network::LITECOIN_MAINNET,
        Network::BITCOIN_REGTEST,
        Network::BITCOIN_TESTNET,
        Network::BITCOIN_MAINNET,
    ];

    #[test]
    fn pow_limits_compact_to_the_values_core_uses() {
        assert_eq!(
            Network::LITECOIN_MAINNET.pow_limit_bits().to_consensus(),
            0x1e0f_ffff
        );
        assert_eq!(
            Network::LITECOIN_TESTNET.pow_limit_bits().to_consensus(),
            0x1e0f_ffff
        );
        assert_eq!(
            Network::BITCOIN_MAINNET.pow_limit_bits().to_consensus(),
            0x1d00_ffff
        );
        assert_eq!(
            Network::BITCOIN_TESTNET.pow_limit_bits().to_consensus(),
            0x1d00_ffff
        );
        assert_eq!(
            Network::LITECOIN_REGTEST.pow_limit_bits().to_consensus(),
            0x207f_ffff
        );
        assert_eq!(
            Network::BITCOIN_REGTEST.pow_limit_bits().to_consensus(),
            0x207f_ffff
        );
    }

    #[test]
    fn pow_limit_is_the_full_width_value_not_the_compact_one() {
        let limit = Network::LITECOIN_MAINNET.pow_limit().to_be_bytes();
        assert_eq!(&limit[..3], &[0x00, 0x00, 0x0f]);
        assert!(limit[3..].iter().all(|byte| *byte == 0xff));
        // rust-bitcoin's constants are the compact-rounded limits; Core compares against the
        // full-width value, which is larger.
        let bitcoin_mainnet = Network::BITCOIN_MAINNET.pow_limit();
        assert!(bitcoin_mainnet > Target::MAX_ATTAINABLE_MAINNET);
        assert_eq!(
            bitcoin_mainnet.to_compact_lossy(),
            Target::MAX_ATTAINABLE_MAINNET.to_compact_lossy()
        );
        let regtest = Network::BITCOIN_REGTEST.pow_limit();
        assert!(regtest > Target::MAX_ATTAINABLE_REGTEST);
        assert_eq!(
            regtest.to_compact_lossy(),
            Target::MAX_ATTAINABLE_REGTEST.to_compact_lossy()
        );
    }

    #[test]
    fn bitcoin_genesis_hashes_match_rust_bitcoin() {
        use bitcoin::constants::genesis_block;
        let pairs = [
            (Network::BITCOIN_MAINNET, bitcoin::Network::Bitcoin),
            (Network::BITCOIN_TESTNET, bitcoin::Network::Testnet),
            (Network::BITCOIN_REGTEST, bitcoin::Network::Regtest),
        ];
        for (ours, theirs) in pairs {
            assert_eq!(
                ours.genesis_hash(),
                genesis_block(theirs).block_hash(),
                "{ours:?}"
            );
        }
    }

    #[test]
    fn only_litecoin_uses_scrypt() {
        for network in ALL {
            let expected = match network.chain {
                Chain::Litecoin => PowHash::Scrypt,
                Chain::Bitcoin => PowHash::Sha256d,
            };
            assert_eq!(network.pow_hash(), expected);
        }
    }

    #[test]
    fn only_regtest_disables_retargeting_and_mainnet_forbids_min_difficulty() {
        for network in ALL {
            assert_eq!(
                network.retargeting_disabled(),
                network.kind == NetworkKind::Regtest
            );
            assert_eq!(
                network.allows_min_difficulty_blocks(),
                network.kind != NetworkKind::Mainnet
            );
            assert_eq!(network.retarget_interval_blocks(), 2016);
        }
    }

    #[test]
    fn timespans_are_interval_times_spacing() {
        for network in ALL {
            assert_eq!(
                network.target_timespan_secs(),
                network.retarget_interval_blocks() * network.target_spacing_secs()
            );
        }
        assert_eq!(Network::LITECOIN_MAINNET.target_timespan_secs(), 302_400);
        assert_eq!(Network::BITCOIN_MAINNET.target_timespan_secs(), 1_209_600);
    }

    #[test]
    fn litecoin_dust_is_ten_times_bitcoin_dust() {
        assert_eq!(
            Network::LITECOIN_MAINNET.dust_relay_fee_sat_per_kvb(),
            30_000
        );
        assert_eq!(Network::BITCOIN_REGTEST.dust_relay_fee_sat_per_kvb(), 3_000);
        for network in ALL {
            assert_eq!(network.min_relay_fee_sat_per_kvb(), 1_000);
        }
    }

    #[test]
    fn base58_prefixes_follow_chainparams() {
        assert_eq!(Network::LITECOIN_MAINNET.base58_p2pkh_prefix(), 48);
        assert_eq!(Network::LITECOIN_MAINNET.base58_p2sh_prefixes(), &[50, 5]);
        assert_eq!(Network::LITECOIN_REGTEST.base58_p2pkh_prefix(), 111);
        assert_eq!(Network::LITECOIN_TESTNET.base58_p2sh_prefixes(), &[58, 196]);
        assert_eq!(Network::BITCOIN_MAINNET.base58_p2pkh_prefix(), 0);
        assert_eq!(Network::BITCOIN_MAINNET.base58_p2sh_prefixes(), &[5]);
        assert_eq!(Network::BITCOIN_TESTNET.base58_p2sh_prefixes(), &[196]);
    }

    #[test]
    fn address_prefixes_and_ports_follow_core() {
        assert_eq!(Network::LITECOIN_REGTEST.bech32_hrp(), "rltc");
        assert_eq!(Network::LITECOIN_TESTNET.bech32_hrp(), "tltc");
        assert_eq!(Network::LITECOIN_MAINNET.bech32_hrp(), "ltc");
        assert_eq!(Network::BITCOIN_REGTEST.bech32_hrp(), "bcrt");
        assert_eq!(Network::BITCOIN_TESTNET.bech32_hrp(), "tb");
        assert_eq!(Network::BITCOIN_MAINNET.bech32_hrp(), "bc");
        assert_eq!(Network::LITECOIN_REGTEST.rpc_port_default(), 19443);
        assert_eq!(Network::LITECOIN_MAINNET.rpc_port_default(), 9332);
        assert_eq!(Network::BITCOIN_REGTEST.rpc_port_default(), 18443);
        assert_eq!(Network::BITCOIN_MAINNET.rpc_port_default(), 8332);
    }
}
