//! Header-chain verification: linkage, proof of work, difficulty and cumulative work.
//!
//! Pure and deterministic: no clock, no I/O. The caller keeps the records (see
//! [`HeaderRecord`]) and supplies the few timestamps a retarget needs through
//! [`HeaderTimes`].
//!
//! Core rules this module does not check, because they need a clock or more history than a
//! record holds: a timestamp above the median of the previous 11 (`time-too-old`) and at most
//! two hours ahead of the local clock (`time-too-new`) are checked by the peg's light client,
//! which keeps the recent timestamps and has its block's time; the minimum header versions of
//! BIP34/65/66 (`bad-version`) are not checked. A light client therefore trusts the most-work
//! chain among the ones its relayers show it, after enough confirmations.

use bitcoin::Work;
use bitcoin::block::Header;
use bitcoin::consensus::encode;
use bitcoin::hashes::Hash;
use bitcoin::pow::{CompactTarget, Target};

use crate::arith::U256;
use crate::difficulty::{self, HeaderTimes};
use crate::network::{Network, PowHash};

pub use crate::record::{HEADER_SIZE_BYTES, HeaderError, HeaderRecord};

impl HeaderRecord {
    /// The record of `header` as block 0 of `network`.
    ///
    /// # Errors
    /// [`HeaderError::GenesisMismatch`] if `header` is not this network's genesis.
    pub fn genesis(network: &Network, header: &Header) -> Result<Self, HeaderError> {
        let hash = header.block_hash();
        if hash != network.genesis_hash() {
            return Err(HeaderError::GenesisMismatch {
                expected: network.genesis_hash(),
                found: hash,
            });
        }
        let target = target_from_bits(network, header.bits)?;
        Ok(Self {
            hash,
            height: 0,
            bits: header.bits,
            time: header.time,
            chainwork: target.to_work(),
            last_regular_bits: header.bits,
        })
    }
}

/// Parses exactly one 80-byte header.
///
/// # Errors
/// [`HeaderError::Length`] for any other length.
pub fn decode_header(bytes: &[u8]) -> Result<Header, HeaderError> {
    if bytes.len() != HEADER_SIZE_BYTES {
        return Err(HeaderError::Length {
            length: bytes.len(),
        });
    }
    // Every 80-byte string is a header: all six fields have fixed widths.
    Ok(encode::deserialize(bytes).expect("80 bytes always decode as a header"))
}

/// The proof-of-work hash of `header`, in Core's little-endian `uint256` byte order.
pub fn pow_hash(function: PowHash, header: &Header) -> [u8; 32] {
    match function {
        PowHash::Sha256d => header.block_hash().to_byte_array(),
        PowHash::Scrypt => {
            let bytes = encode::serialize(header);
            let params = scrypt::Params::new(10, 1, 1, 32)
                .expect("N = 2^10, r = 1, p = 1, 32 bytes are valid scrypt parameters");
            let mut out = [0_u8; 32];
            scrypt::scrypt(&bytes, &bytes, &params, &mut out)
                .expect("the output length matches the parameters");
            out
        }
    }
}

/// The target encoded by `bits`, refused as Core's `CheckProofOfWork` refuses it: negative,
/// zero, overflowing, or above the network's pow limit.
///
/// # Errors
/// One of the `Bits*` variants of [`HeaderError`].
pub fn target_from_bits(network: &Network, bits: CompactTarget) -> Result<Target, HeaderError> {
    let raw = bits.to_consensus();
    let decoded = U256::from_compact(raw);
    if decoded.negative {
        return Err(HeaderError::BitsNegative { bits: raw });
    }
    // Before the zero check: an overflowing exponent also shifts the mantissa out to zero.
    if decoded.overflow {
        return Err(HeaderError::BitsOverflow { bits: raw });
    }
    if decoded.value.is_zero() {
        return Err(HeaderError::BitsZero { bits: raw });
    }
    if decoded.value > U256::from_target(network.pow_limit()) {
        return Err(HeaderError::BitsAbovePowLimit { bits: raw });
    }
    Ok(decoded.value.to_target())
}

/// Checks that `header` meets the target it claims under the network's pow hash, and returns
/// the work it proves. Context-free: it does not check that the claimed target is the right one.
///
/// # Errors
/// A `Bits*` variant, or [`HeaderError::InsufficientProofOfWork`].
pub fn check_proof_of_work(network: &Network, header: &Header) -> Result<Work, HeaderError> {
    let target = target_from_bits(network, header.bits)?;
    let function = network.pow_hash();
    let hash_value = U256::from_le_bytes(pow_hash(function, header));
    if hash_value > U256::from_target(target) {
        return Err(HeaderError::InsufficientProofOfWork {
            hash: header.block_hash(),
            bits: header.bits.to_consensus(),
            pow_hash: function,
        });
    }
    Ok(target.to_work())
}

/// Verifies `header` as the child of `parent` and returns its record.
///
/// Checks, in order: it links to `parent`; its bits are what the difficulty rule requires
/// (asking `times` for the period's first timestamp at a retarget); its bits are a valid
/// target within the pow limit and its pow hash meets it. Then adds its work to the chain's.
///
/// # Errors
/// The first check that fails, as a [`HeaderError`].
pub fn verify_header<T: HeaderTimes + ?Sized>(
    network: &Network,
    parent: &HeaderRecord,
    header: &Header,
    times: &T,
) -> Result<HeaderRecord, HeaderError> {
    if header.prev_blockhash != parent.hash {
        return Err(HeaderError::PrevHashMismatch {
            parent: parent.hash,
            found: header.prev_blockhash,
        });
    }
    let height = parent
        .height
        .checked_add(1)
        .ok_or(HeaderError::HeightOverflow)?;
    // The rule before the proof: checking bits is cheap, a scrypt hash is not.
    let expected = difficulty::next_bits_required(network, parent, header.time, times)?;
    if header.bits != expected {
        return Err(HeaderError::UnexpectedBits {
            height,
            expected: expected.to_consensus(),
            found: header.bits.to_consensus(),
        });
    }
    let work = check_proof_of_work(network, header)?;
    let chainwork = U256::from_be_bytes(parent.chainwork.to_be_bytes())
        .checked_add(U256::from_be_bytes(work.to_be_bytes()))
        .ok_or(HeaderError::ChainworkOverflow)?;
    Ok(HeaderRecord {
        hash: header.block_hash(),
        height,
        bits: header.bits,
        time: header.time,
        chainwork: Work::from_be_bytes(chainwork.to_be_bytes()),
        last_regular_bits: difficulty::last_regular_bits(network, height, header.bits, parent),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::collections::BTreeMap;
    use std::str::FromStr;

    use bitcoin::BlockHash;

    use super::*;

    // Bitcoin mainnet headers, each hashing to the block hash noted (checked below). Source: the
    // header table of a public Rust SPV test suite; heights 32256 and 30240 cross-checked
    // against an independent list of retarget-boundary hashes.
    const BITCOIN_0: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";
    const BITCOIN_1: &str = "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299";
    const BITCOIN_1_HASH: &str = "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048";
    const BITCOIN_30240: &str = "01000000e6bf7fd7f7790a63786faa878d0dc7fd8f2ff365732e45862c66075100000000700d342f65c7b6834dffb615358a1897016f0448913372190cbe3d27a4b53355b1512b4bffff001dbfb02519";
    const BITCOIN_30240_HASH: &str =
        "000000000fa8bfa0f0dd32f956b874b2c7f1772c5fbedcb1b35e03335c7fb0a8";
    const BITCOIN_32255: &str = "0100000049c1daab3b6536ff1b2633c3a316a6e06ec287676cdeec4ca7baae6b00000000ac10b36b8f354b3353207de15940a5edbc05bb8364af75b4b5409e7823f2b48923ec3a4bffff001dbd5fa412";
    const BITCOIN_32255_HASH: &str =
        "00000000984f962134a7291e3693075ae03e521f0ee33378ec30a334d860034b";
    const BITCOIN_32256: &str = "010000004b0360d834a330ec7833e30e1f523ee05a0793361e29a73421964f980000000027b64a020af294e903feed93768705336a20090612a043f47af462a2f5e5b564f8ee3a4b6ad8001dd3a43707";
    const BITCOIN_32256_HASH: &str =
        "000000004f2886a170adb7204cb0c7a824217dd24d11a74423d564c4e0904967";
    const BITCOIN_34271: &str = "01000000405b203f92ee8012fffad48424cd52827504c06ca717cb7cd7aa69bc00000000a02521744962eccce06cb7187d2451f0dee624a291da2bf9c12ce786d92fa673b2a94b4b6ad8001dc0a41815";
    const BITCOIN_34272: &str = "01000000ce53367108008b0ab65be7a308c48a042167aaea7b2a45397e04365e0000000040fbd504d61cb1a110826bca68c81d41736908dcbdb3f65154bfaf9c92cf50d9c5aa4b4b28c4001dfe665c05";
    const BITCOIN_34272_HASH: &str =
        "000000002732d387256b57cabdcb17767e3d30e220ea73f844b1907c0b5919ea";

    // Litecoin mainnet headers. Genesis: the fields of `CreateGenesisBlock` in Litecoin Core's
    // chainparams.cpp, serialized (hash asserted there). Blocks 1 and 2: raw blocks in public
    // test suites (two independent ones for block 2), hashing to Litecoin Core's old
    // checkpoints 80ca095e… and 13957807….
    const LITECOIN_0: &str = "010000000000000000000000000000000000000000000000000000000000000000000000d9ced4ed1130f7b7faad9be25323ffafa33232a17c3edf6cfd97bee6bafbdd97b9aa8e4ef0ff0f1ecd513f7c";
    const LITECOIN_1: &str = "01000000e2bf047e7e5a191aa4ef34d314979dc9986e0f19251edaba5940fd1fe365a712f6509b1757baa71bc746e17cb4d0ed22e8935f71e2d0724336789021a40639fabfed8f4ef0ff0f1e7f270400";
    const LITECOIN_1_HASH: &str =
        "80ca095ed10b02e53d769eb6eaf92cd04e9e0759e5be4a8477b42911ba49c78f";
    const LITECOIN_2: &str = "010000008fc749ba1129b477844abee559079e4ed02cf9eab69e763de5020bd15e09ca80f27b45c33766594918ec67bd3a096dcc3a63fc015ce79821794e9fffa15743c5aafc944ef0ff0f1ed75e0000";
    const LITECOIN_2_HASH: &str =
        "13957807cdd1d02f993909fa59510e318763f99a506c4c426e3b254af09f40d7";

    fn header(hex_str: &str) -> Header {
        decode_header(&hex::decode(hex_str).unwrap()).unwrap()
    }

    fn hash(hex_str: &str) -> BlockHash {
        BlockHash::from_str(hex_str).unwrap()
    }

    /// A record for a header verified elsewhere (a checkpoint), with `chainwork` made up.
    fn checkpoint(hex_str: &str, height: u32) -> HeaderRecord {
        let header = header(hex_str);
        HeaderRecord {
            hash: header.block_hash(),
            height,
            bits: header.bits,
            time: header.time,
            chainwork: Work::from_be_bytes([0; 32]),
            last_regular_bits: header.bits,
        }
    }

    fn no_times() -> BTreeMap<u32, u32> {
        BTreeMap::new()
    }

    fn flip_bit(hex_str: &str, bit: usize) -> Header {
        let mut bytes = hex::decode(hex_str).unwrap();
        bytes[bit / 8] ^= 1 << (bit % 8);
        decode_header(&bytes).unwrap()
    }

    #[test]
    fn vectors_hash_to_the_published_block_hashes() {
        let pairs = [
            (BITCOIN_1, BITCOIN_1_HASH),
            (BITCOIN_30240, BITCOIN_30240_HASH),
            (BITCOIN_32255, BITCOIN_32255_HASH),
            (BITCOIN_32256, BITCOIN_32256_HASH),
            (BITCOIN_34272, BITCOIN_34272_HASH),
            (LITECOIN_1, LITECOIN_1_HASH),
            (LITECOIN_2, LITECOIN_2_HASH),
        ];
        for (raw, expected) in pairs {
            assert_eq!(header(raw).block_hash(), hash(expected));
        }
    }

    #[test]
    fn bitcoin_genesis_and_block_1_verify_with_core_chainwork() {
        let network = Network::BITCOIN_MAINNET;
        let genesis = HeaderRecord::genesis(&network, &header(BITCOIN_0)).unwrap();
        // Core's getblockheader: chainwork 0x100010001 at genesis, 0x200020002 at block 1.
        assert_eq!(
            genesis.chainwork,
            Work::from_be_bytes(work_bytes(0x1_0001_0001))
        );
        let first = verify_header(&network, &genesis, &header(BITCOIN_1), &no_times()).unwrap();
        assert_eq!(first.height, 1);
        assert_eq!(first.hash, hash(BITCOIN_1_HASH));
        assert_eq!(
            first.chainwork,
            Work::from_be_bytes(work_bytes(0x2_0002_0002))
        );
    }

    fn work_bytes(value: u64) -> [u8; 32] {
        let mut bytes = [0_u8; 32];
        bytes[24..].copy_from_slice(&value.to_be_bytes());
        bytes
    }

    #[test]
    fn bitcoin_first_difficulty_change_at_32256_verifies_from_the_period_start_time() {
        let network = Network::BITCOIN_MAINNET;
        let parent = checkpoint(BITCOIN_32255, 32_255);
        let times = BTreeMap::from([(30_240, header(BITCOIN_30240).time)]);
        let child = verify_header(&network, &parent, &header(BITCOIN_32256), &times).unwrap();
        assert_eq!(child.bits.to_consensus(), 0x1d00_d86a);
        assert_eq!(child.hash, hash(BITCOIN_32256_HASH));
        assert!(child.chainwork > parent.chainwork);
    }

    #[test]
    fn bitcoin_second_retarget_at_34272_verifies_from_the_records_of_its_period() {
        let network = Network::BITCOIN_MAINNET;
        let first = checkpoint(BITCOIN_32256, 32_256);
        let parent = checkpoint(BITCOIN_34271, 34_271);
        let records = [first, parent];
        let child = verify_header(&network, &parent, &header(BITCOIN_34272), &records[..]).unwrap();
        assert_eq!(child.bits.to_consensus(), 0x1d00_c428);
    }

    #[test]
    fn a_retarget_computed_from_the_wrong_period_start_is_refused() {
        let network = Network::BITCOIN_MAINNET;
        let parent = checkpoint(BITCOIN_32255, 32_255);
        let wrong = BTreeMap::from([(30_240, header(BITCOIN_30240).time + 86_400)]);
        let result = verify_header(&network, &parent, &header(BITCOIN_32256), &wrong);
        assert!(matches!(
            result,
            Err(HeaderError::UnexpectedBits {
                height: 32_256,
                found: 0x1d00_d86a,
                ..
            })
        ));
    }

    #[test]
    fn litecoin_genesis_block_1_and_block_2_verify_under_scrypt() {
        let network = Network::LITECOIN_MAINNET;
        let genesis = HeaderRecord::genesis(&network, &header(LITECOIN_0)).unwrap();
        let first = verify_header(&network, &genesis, &header(LITECOIN_1), &no_times()).unwrap();
        let second = verify_header(&network, &first, &header(LITECOIN_2), &no_times()).unwrap();
        assert_eq!(first.hash, hash(LITECOIN_1_HASH));
        assert_eq!(second.hash, hash(LITECOIN_2_HASH));
        assert!(genesis.chainwork < first.chainwork && first.chainwork < second.chainwork);
    }

    #[test]
    fn litecoin_pow_hash_is_scrypt_and_sha256d_would_refuse_block_1() {
        let block = header(LITECOIN_1);
        let scrypt_hash = pow_hash(PowHash::Scrypt, &block);
        let mut big_endian = scrypt_hash;
        big_endian.reverse();
        // scrypt(block 1) = 00000bf2367a38c5…, below the target 00000ffff0….
        assert_eq!(&big_endian[..4], &[0x00, 0x00, 0x0b, 0xf2]);
        // rust-bitcoin's validate_pow hashes with sha256d: wrong for Litecoin.
        assert!(block.validate_pow(block.target()).is_err());
        assert!(check_proof_of_work(&Network::LITECOIN_MAINNET, &block).is_ok());
    }

    #[test]
    fn every_single_bit_flip_in_litecoin_block_1_is_refused() {
        let network = Network::LITECOIN_MAINNET;
        let genesis = HeaderRecord::genesis(&network, &header(LITECOIN_0)).unwrap();
        for bit in 0..HEADER_SIZE_BYTES * 8 {
            let tampered = flip_bit(LITECOIN_1, bit);
            let result = verify_header(&network, &genesis, &tampered, &no_times());
            assert!(result.is_err(), "bit {bit} flipped was accepted");
        }
    }

    #[test]
    fn every_single_bit_flip_in_bitcoin_block_32256_is_refused() {
        let network = Network::BITCOIN_MAINNET;
        let parent = checkpoint(BITCOIN_32255, 32_255);
        let times = BTreeMap::from([(30_240, header(BITCOIN_30240).time)]);
        for bit in 0..HEADER_SIZE_BYTES * 8 {
            let tampered = flip_bit(BITCOIN_32256, bit);
            let result = verify_header(&network, &parent, &tampered, &times);
            assert!(result.is_err(), "bit {bit} flipped was accepted");
        }
    }

    #[test]
    fn tampering_nonce_bits_or_prev_hash_gives_the_matching_error() {
        let network = Network::LITECOIN_MAINNET;
        let genesis = HeaderRecord::genesis(&network, &header(LITECOIN_0)).unwrap();
        let mut nonce = header(LITECOIN_1);
        nonce.nonce ^= 1;
        assert!(matches!(
            verify_header(&network, &genesis, &nonce, &no_times()),
            Err(HeaderError::InsufficientProofOfWork {
                pow_hash: PowHash::Scrypt,
                ..
            })
        ));
        let mut prev = header(LITECOIN_1);
        prev.prev_blockhash = hash(LITECOIN_1_HASH);
        assert!(matches!(
            verify_header(&network, &genesis, &prev, &no_times()),
            Err(HeaderError::PrevHashMismatch { .. })
        ));
        let mut bits = header(LITECOIN_1);
        bits.bits = CompactTarget::from_consensus(0x1e0f_ffff);
        assert!(matches!(
            verify_header(&network, &genesis, &bits, &no_times()),
            Err(HeaderError::InsufficientProofOfWork { .. } | HeaderError::UnexpectedBits { .. })
        ));
    }

    #[test]
    fn bits_that_core_refuses_are_refused_before_hashing() {
        let network = Network::BITCOIN_MAINNET;
        let cases = [
            HeaderError::BitsNegative { bits: 0x1d80_ffff },
            HeaderError::BitsZero { bits: 0x1d00_0000 },
            // Core's pow_tests: ~0x00800000 overflows.
            HeaderError::BitsOverflow { bits: 0xff7f_ffff },
            HeaderError::BitsAbovePowLimit { bits: 0x1d01_ffff },
        ];
        for expected in cases {
            let bits = match expected {
                HeaderError::BitsNegative { bits }
                | HeaderError::BitsZero { bits }
                | HeaderError::BitsOverflow { bits }
                | HeaderError::BitsAbovePowLimit { bits } => bits,
                _ => unreachable!("only bits errors are listed"),
            };
            let mut block = header(BITCOIN_1);
            block.bits = CompactTarget::from_consensus(bits);
            assert_eq!(check_proof_of_work(&network, &block), Err(expected));
        }
    }

    #[test]
    fn a_genesis_of_another_network_is_refused() {
        let result = HeaderRecord::genesis(&Network::BITCOIN_MAINNET, &header(LITECOIN_0));
        assert!(matches!(result, Err(HeaderError::GenesisMismatch { .. })));
    }

    #[test]
    fn only_80_byte_headers_decode() {
        assert_eq!(
            decode_header(&[0; 79]),
            Err(HeaderError::Length { length: 79 })
        );
        assert_eq!(
            decode_header(&[0; 81]),
            Err(HeaderError::Length { length: 81 })
        );
        assert!(decode_header(&[0; 80]).is_ok());
    }

    #[test]
    fn record_slices_answer_time_lookups_by_height_with_gaps() {
        let records = [
            checkpoint(BITCOIN_30240, 30_240),
            checkpoint(BITCOIN_32255, 32_255),
        ];
        assert_eq!(
            records[..].time_at_height(30_240),
            Some(header(BITCOIN_30240).time)
        );
        assert_eq!(
            records[..].time_at_height(32_255),
            Some(header(BITCOIN_32255).time)
        );
        assert_eq!(records[..].time_at_height(31_000), None);
    }
}
