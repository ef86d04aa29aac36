//! The federation's custody scripts: the m-of-n multisig of the validators' secp256k1 keys with
//! a timelocked recovery branch, and one deposit address per Consort account.
//!
//! # Script shape
//!
//! Every federation output is a P2WSH output whose witness script is
//!
//! ```text
//! [<commitment: 32 bytes> OP_DROP]                                # deposit scripts only
//! OP_IF
//!     <m> <validator key 1> … <validator key n> <n> OP_CHECKMULTISIG
//! OP_ELSE
//!     <delay blocks> OP_CHECKSEQUENCEVERIFY OP_DROP
//!     <k> <recovery key 1> … <recovery key r> <r> OP_CHECKMULTISIG
//! OP_ENDIF
//! ```
//!
//! with m = ⌊2n/3⌋ + 1 ([`federation_threshold`]) and the keys of each set sorted by their
//! 33-byte compressed encoding (BIP 67), so every validator derives the same script from the
//! same set of keys in any order. The witness that spends it is
//!
//! * federation branch: `<> <sig 1> … <sig m> <01> <witness script>`: m signatures in the
//!   order of their keys in the script (OP_CHECKMULTISIG walks keys and signatures in step),
//!   the empty element for OP_CHECKMULTISIG's extra pop (NULLDUMMY), and `01` to take the
//!   OP_IF branch (MINIMALIF allows only `01` or empty);
//! * recovery branch: `<> <sig 1> … <sig k> <> <witness script>`, valid only in a version-2
//!   transaction whose input `nSequence` is at least the delay (BIP 68/112): the recovery keys
//!   can move a coin once it has been `delay` blocks deep and the federation has not moved
//!   it. This is the last resort if the validators lose their keys or stop signing. The
//!   clock runs for every coin, so a live federation must move (consolidate to its base
//!   script) any coin before it is `delay` blocks old; the delay should be long (months:
//!   e.g. 52 560 Litecoin blocks ≈ 3 months) and the oldest-first coin selection of
//!   [`crate::build_spend`] spends old coins first.
//!
//! The recovery keys are a separate, cold key set (a Liquid-style emergency key set). They
//! may overlap with the validators' keys; k-of-r is chosen by whoever sets up the federation.
//!
//! # Deposit addresses: a committed prefix rather than tweaked keys
//!
//! A deposit address names its Consort account without an `OP_RETURN`, so it works from any
//! wallet or exchange and from Litecoin's MWEB, whose peg-outs carry no memo. The account is
//! committed by prefixing the witness script with `<commitment> OP_DROP`, where
//! `commitment = SHA256(SHA256(tag) ‖ SHA256(tag) ‖ account)` (a BIP 340 tagged hash, tag
//! `consort/deposit/v1`). The alternative, pay-to-contract tweaking of each key by
//! `H(key ‖ account)` (Liquid), was rejected because:
//!
//! * signing needs no per-deposit key derivation: every validator and every recovery holder
//!   signs every input with the one key it holds (in a keystore, or cold storage for the
//!   recovery set), and a partial signature is checked against that published key;
//! * the spending condition is literally the federation's; there is no tweak arithmetic whose
//!   subtleties (the tweak must commit to the key, tweaked secrets must be derived correctly
//!   for each of n keys per deposit) could cost funds;
//! * the cost is 34 witness bytes (8.5 virtual bytes) per spent deposit, and on spending the
//!   witness reveals the commitment, which links the output to the account only for someone
//!   who already knows the account; the claim on Consort links them publicly anyway.
//!
//! The commitment is deterministic, so validators recognise deposits to known accounts
//! ([`crate::DepositIndex`]) and re-derive the spending script from (federation, account).

use bitcoin::ScriptBuf;
use bitcoin::blockdata::opcodes::all::{
    OP_CHECKMULTISIG, OP_CSV, OP_DROP, OP_ELSE, OP_ENDIF, OP_IF,
};
use bitcoin::hashes::{Hash, HashEngine, sha256};
use bitcoin::script::Builder;
use bitcoin::secp256k1::PublicKey;

use crate::address::segwit_address;
use crate::network::Network;

/// The most keys in either key set: OP_CHECKMULTISIG's limit (`MAX_PUBKEYS_PER_MULTISIG`).
/// Larger validator sets need another construction (e.g. tapscript `OP_CHECKSIGADD`).
pub const FEDERATION_KEYS_MAX: usize = 20;

/// The largest standard witness script (`MAX_STANDARD_P2WSH_SCRIPT_SIZE` in Core's policy).
pub const WITNESS_SCRIPT_SIZE_MAX_BYTES: usize = 3_600;

/// The BIP 340 tag of the deposit commitment.
pub const DEPOSIT_COMMITMENT_TAG: &[u8] = b"consort/deposit/v1";

/// The number of validator signatures a federation spend needs: ⌊2n/3⌋ + 1, more than two
/// thirds of `keys`.
pub const fn federation_threshold(keys: usize) -> usize {
    keys * 2 / 3 + 1
}

/// Why a federation could not be formed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FederationError {
    /// Too few or too many validator keys.
    #[error("a federation needs 1 to {max} validator keys, got {count}")]
    KeyCount {
        /// Keys given.
        count: usize,
        /// The limit, [`FEDERATION_KEYS_MAX`].
        max: usize,
    },
    /// Too few or too many recovery keys.
    #[error("the recovery set needs 1 to {max} keys, got {count}")]
    RecoveryKeyCount {
        /// Keys given.
        count: usize,
        /// The limit, [`FEDERATION_KEYS_MAX`].
        max: usize,
    },
    /// The same key twice in one set: it would count twice towards the threshold.
    #[error("key {key} appears twice in one key set")]
    DuplicateKey {
        /// The repeated key.
        key: PublicKey,
    },
    /// The recovery threshold is 0 or above the number of recovery keys.
    #[error("recovery threshold {threshold} must be between 1 and the {keys} recovery keys")]
    RecoveryThreshold {
        /// The threshold given.
        threshold: usize,
        /// Recovery keys given.
        keys: usize,
    },
    /// A recovery delay of 0 blocks would let the recovery keys spend at once.
    #[error("the recovery delay must be at least 1 block")]
    RecoveryDelayZero,
}

/// The Consort account a deposit address pays: its 32-byte ed25519 public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DepositAccount([u8; 32]);

impl DepositAccount {
    /// The account with public key `bytes`.
    pub const fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The account's public key bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 32 bytes committed in the account's deposit script (see the module doc).
    pub fn commitment(&self) -> [u8; 32] {
        let tag = sha256::Hash::hash(DEPOSIT_COMMITMENT_TAG);
        let mut engine = sha256::Hash::engine();
        engine.input(tag.as_byte_array());
        engine.input(tag.as_byte_array());
        engine.input(&self.0);
        sha256::Hash::from_engine(engine).to_byte_array()
    }
}

/// Which federation script holds a coin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Custody {
    /// The federation's base script: change and migrated funds.
    Base,
    /// A deposit script: the base script prefixed by an account's commitment.
    Deposit(DepositAccount),
}

/// The emergency key set: `threshold` of `keys` may spend any federation coin once it is
/// `delay_blocks` deep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    keys: Vec<PublicKey>,
    threshold: usize,
    delay_blocks: u16,
}

impl Recovery {
    /// A recovery set; `keys` in any order (they are sorted).
    ///
    /// # Errors
    /// [`FederationError`] for an empty, oversized or repeating key set, a threshold outside
    /// 1..=keys, or a zero delay. The delay is a BIP 68 block count, so at most 65535.
    pub fn new(
        keys: Vec<PublicKey>,
        threshold: usize,
        delay_blocks: u16,
    ) -> Result<Self, FederationError> {
        let count = keys.len();
        if count == 0 || count > FEDERATION_KEYS_MAX {
            return Err(FederationError::RecoveryKeyCount {
                count,
                max: FEDERATION_KEYS_MAX,
            });
        }
        if threshold == 0 || threshold > count {
            return Err(FederationError::RecoveryThreshold {
                threshold,
                keys: count,
            });
        }
        if delay_blocks == 0 {
            return Err(FederationError::RecoveryDelayZero);
        }
        Ok(Self {
            keys: sorted_unique(keys)?,
            threshold,
            delay_blocks,
        })
    }

    /// The recovery keys, sorted.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Signatures a recovery spend needs.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Blocks a coin must be deep before the recovery keys may spend it.
    pub fn delay_blocks(&self) -> u16 {
        self.delay_blocks
    }
}

/// The validators' keys, their threshold and the recovery set: everything the custody scripts
/// are derived from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Federation {
    keys: Vec<PublicKey>,
    threshold: usize,
    recovery: Recovery,
}

impl Federation {
    /// The federation of `keys` (in any order; they are sorted), with threshold
    /// [`federation_threshold`]`(keys.len())`.
    ///
    /// # Errors
    /// [`FederationError::KeyCount`] for 0 or more than [`FEDERATION_KEYS_MAX`] keys,
    /// [`FederationError::DuplicateKey`] for a repeated key.
    pub fn new(keys: Vec<PublicKey>, recovery: Recovery) -> Result<Self, FederationError> {
        let count = keys.len();
        if count == 0 || count > FEDERATION_KEYS_MAX {
            return Err(FederationError::KeyCount {
                count,
                max: FEDERATION_KEYS_MAX,
            });
        }
        let federation = Self {
            keys: sorted_unique(keys)?,
            threshold: federation_threshold(count),
            recovery,
        };
        let script_size = federation
            .witness_script(&Custody::Deposit(DepositAccount::new([0; 32])))
            .len();
        assert!(
            script_size <= WITNESS_SCRIPT_SIZE_MAX_BYTES,
            "20 + 20 keys make a {script_size}-byte script, far below the standard limit"
        );
        Ok(federation)
    }

    /// The validators' keys, sorted: the order of their signatures in a witness.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Signatures a federation spend needs.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The recovery set.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The witness script of `custody` (see the module doc for its shape).
    pub fn witness_script(&self, custody: &Custody) -> ScriptBuf {
        let mut builder = Builder::new();
        if let Custody::Deposit(account) = custody {
            builder = builder
                .push_slice(account.commitment())
                .push_opcode(OP_DROP);
        }
        builder = push_multisig(builder.push_opcode(OP_IF), self.threshold, &self.keys);
        builder = builder
            .push_opcode(OP_ELSE)
            .push_int(i64::from(self.recovery.delay_blocks))
            .push_opcode(OP_CSV)
            .push_opcode(OP_DROP);
        builder = push_multisig(builder, self.recovery.threshold, &self.recovery.keys);
        builder.push_opcode(OP_ENDIF).into_script()
    }

    /// The P2WSH output script of `custody`.
    pub fn script_pubkey(&self, custody: &Custody) -> ScriptBuf {
        ScriptBuf::new_p2wsh(&self.witness_script(custody).wscript_hash())
    }

    /// The bech32 address of `custody` on `network`.
    pub fn address(&self, network: &Network, custody: &Custody) -> String {
        segwit_address(network, &self.script_pubkey(custody))
            .expect("a P2WSH output script is a witness program")
    }

    /// The address where `account` deposits.
    pub fn deposit_address(&self, network: &Network, account: DepositAccount) -> String {
        self.address(network, &Custody::Deposit(account))
    }

    /// The federation's own address: change and migrations go here.
    pub fn base_address(&self, network: &Network) -> String {
        self.address(network, &Custody::Base)
    }
}

/// `<threshold> <key 1> … <key n> <n> OP_CHECKMULTISIG`.
fn push_multisig(builder: Builder, threshold: usize, keys: &[PublicKey]) -> Builder {
    let count = |value: usize| i64::try_from(value).expect("at most 20 keys");
    let mut builder = builder.push_int(count(threshold));
    for key in keys {
        builder = builder.push_slice(key.serialize());
    }
    builder
        .push_int(count(keys.len()))
        .push_opcode(OP_CHECKMULTISIG)
}

/// `keys` sorted by their compressed encoding (BIP 67), refusing repeats.
fn sorted_unique(mut keys: Vec<PublicKey>) -> Result<Vec<PublicKey>, FederationError> {
    keys.sort_by_key(PublicKey::serialize);
    if let Some(pair) = keys.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(FederationError::DuplicateKey { key: pair[0] });
    }
    Ok(keys)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
pub(crate) mod tests {
    use bitcoin::blockdata::script::Instruction;
    use bitcoin::secp256k1::{Secp256k1, SecretKey};

    use super::*;

    /// The public key of secret `seed` (repeated to 32 bytes).
    pub(crate) fn key(seed: u8) -> PublicKey {
        let secret = SecretKey::from_slice(&[seed; 32]).unwrap();
        PublicKey::from_secret_key(&Secp256k1::signing_only(), &secret)
    }

    pub(crate) fn federation(validators: u8, recovery: u8) -> Federation {
        let keys = (1..=validators).map(key).collect();
        let recovery_keys = (101..101 + recovery).map(key).collect();
        Federation::new(keys, Recovery::new(recovery_keys, 2, 144).unwrap()).unwrap()
    }

    #[test]
    fn the_threshold_is_more_than_two_thirds() {
        let expected = [
            (1, 1),
            (2, 2),
            (3, 3),
            (4, 3),
            (5, 4),
            (6, 5),
            (7, 5),
            (10, 7),
        ];
        for (keys, threshold) in expected {
            assert_eq!(federation_threshold(keys), threshold, "n = {keys}");
            assert!(3 * threshold > 2 * keys);
        }
        assert_eq!(federation_threshold(20), 14);
    }

    #[test]
    fn every_key_order_derives_the_same_script() {
        let recovery = Recovery::new(vec![key(9), key(8), key(7)], 2, 10).unwrap();
        let forward = Federation::new(vec![key(1), key(2), key(3), key(4)], recovery.clone());
        let shuffled = Federation::new(vec![key(3), key(1), key(4), key(2)], recovery);
        let (forward, shuffled) = (forward.unwrap(), shuffled.unwrap());
        assert_eq!(forward, shuffled);
        let account = Custody::Deposit(DepositAccount::new([5; 32]));
        assert_eq!(
            forward.witness_script(&account),
            shuffled.witness_script(&account)
        );
        let encoded: Vec<_> = forward.keys().iter().map(PublicKey::serialize).collect();
        assert!(encoded.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn the_witness_script_has_the_documented_shape() {
        let federation = federation(4, 3);
        let account = DepositAccount::new([5; 32]);
        let script = federation.witness_script(&Custody::Deposit(account));
        let pushes: Vec<Instruction> = script.instructions().map(Result::unwrap).collect();
        assert_eq!(pushes.len(), 1 + 1 + 1 + 7 + 1 + 3 + 6 + 1);
        assert_eq!(
            pushes[0].push_bytes().unwrap().as_bytes(),
            &account.commitment()
        );
        assert_eq!(pushes[1].opcode(), Some(OP_DROP));
        assert_eq!(pushes[2].opcode(), Some(OP_IF));
        assert_eq!(pushes[3].script_num(), Some(3));
        for (index, expected) in federation.keys().iter().enumerate() {
            assert_eq!(
                pushes[4 + index].push_bytes().unwrap().as_bytes(),
                &expected.serialize()
            );
        }
        assert_eq!(pushes[8].script_num(), Some(4));
        assert_eq!(pushes[9].opcode(), Some(OP_CHECKMULTISIG));
        assert_eq!(pushes[10].opcode(), Some(OP_ELSE));
        assert_eq!(pushes[11].script_num(), Some(144));
        assert_eq!(pushes[12].opcode(), Some(OP_CSV));
        assert_eq!(pushes[13].opcode(), Some(OP_DROP));
        assert_eq!(pushes[14].script_num(), Some(2));
        assert_eq!(pushes[18].script_num(), Some(3));
        assert_eq!(pushes[19].opcode(), Some(OP_CHECKMULTISIG));
        assert_eq!(pushes[20].opcode(), Some(OP_ENDIF));

        let base = federation.witness_script(&Custody::Base);
        assert_eq!(&script.as_bytes()[34..], base.as_bytes());
        assert_eq!(script.count_sigops(), 4 + 3);
    }

    #[test]
    fn each_account_gets_its_own_address_and_the_base_differs_from_all() {
        let federation = federation(4, 3);
        let network = Network::LITECOIN_REGTEST;
        let first = federation.deposit_address(&network, DepositAccount::new([1; 32]));
        let second = federation.deposit_address(&network, DepositAccount::new([2; 32]));
        let base = federation.base_address(&network);
        assert!(first.starts_with("rltc1q") && first.len() == 64, "{first}");
        assert_ne!(first, second);
        assert_ne!(first, base);
        assert_eq!(
            first,
            federation.deposit_address(&network, DepositAccount::new([1; 32]))
        );
        // The same script on another chain: only the prefix and checksum differ.
        let bitcoin =
            federation.deposit_address(&Network::BITCOIN_MAINNET, DepositAccount::new([1; 32]));
        assert!(bitcoin.starts_with("bc1q"), "{bitcoin}");
        let decoded = |network: Network, text: &str| {
            crate::address::script_pubkey_for_address(&network, text).unwrap()
        };
        assert_eq!(
            decoded(Network::BITCOIN_MAINNET, &bitcoin),
            decoded(network, &first)
        );
    }

    #[test]
    fn the_commitment_is_a_tagged_hash_of_the_account() {
        let account = DepositAccount::new([0xab; 32]);
        let tag = sha256::Hash::hash(DEPOSIT_COMMITMENT_TAG).to_byte_array();
        let mut preimage = Vec::new();
        preimage.extend_from_slice(&tag);
        preimage.extend_from_slice(&tag);
        preimage.extend_from_slice(&[0xab; 32]);
        assert_eq!(
            account.commitment(),
            sha256::Hash::hash(&preimage).to_byte_array()
        );
        assert_ne!(account.commitment(), [0xab; 32]);
    }

    #[test]
    fn malformed_key_sets_are_refused() {
        let recovery = || Recovery::new(vec![key(9)], 1, 10).unwrap();
        assert_eq!(
            Federation::new(vec![], recovery()),
            Err(FederationError::KeyCount { count: 0, max: 20 })
        );
        let many = (1..=21).map(key).collect();
        assert_eq!(
            Federation::new(many, recovery()),
            Err(FederationError::KeyCount { count: 21, max: 20 })
        );
        assert_eq!(
            Federation::new(vec![key(1), key(2), key(1)], recovery()),
            Err(FederationError::DuplicateKey { key: key(1) })
        );
        assert_eq!(
            Recovery::new(vec![key(1), key(2)], 3, 10),
            Err(FederationError::RecoveryThreshold {
                threshold: 3,
                keys: 2
            })
        );
        assert_eq!(
            Recovery::new(vec![key(1)], 0, 10),
            Err(FederationError::RecoveryThreshold {
                threshold: 0,
                keys: 1
            })
        );
        assert_eq!(
            Recovery::new(vec![key(1)], 1, 0),
            Err(FederationError::RecoveryDelayZero)
        );
        assert_eq!(
            Recovery::new(vec![], 1, 10),
            Err(FederationError::RecoveryKeyCount { count: 0, max: 20 })
        );
    }

    #[test]
    fn the_largest_federation_stays_within_standardness() {
        let keys = (1..=20).map(key).collect();
        let recovery = Recovery::new((21..=40).map(key).collect(), 11, u16::MAX).unwrap();
        let federation = Federation::new(keys, recovery).unwrap();
        assert_eq!(federation.threshold(), 14);
        let script = federation.witness_script(&Custody::Deposit(DepositAccount::new([1; 32])));
        assert!(script.len() <= WITNESS_SCRIPT_SIZE_MAX_BYTES);
        // n > 16 is pushed as data, which accurate sigop counting charges as 20 each.
        assert_eq!(script.count_sigops(), 40);
    }
}
