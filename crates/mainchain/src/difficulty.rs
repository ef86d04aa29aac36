//! The difficulty rule: which `nBits` the next header must carry (Core's `GetNextWorkRequired`).

use std::collections::BTreeMap;

use bitcoin::pow::CompactTarget;

use crate::arith::U256;
use crate::network::{Chain, Network};
use crate::record::{HeaderError, HeaderRecord};

/// Timestamps of stored headers, looked up by height on the chain being extended.
///
/// The verifier asks for one timestamp per retarget: that of the period's first header. Callers
/// that keep every header can pass the slice of records; those that keep only the retarget
/// boundaries can keep a map.
pub trait HeaderTimes {
    /// The timestamp of the header at `height` on the parent's chain, if stored.
    fn time_at_height(&self, height: u32) -> Option<u32>;
}

/// Records sorted by height (gaps allowed), as a chain store would keep them.
impl HeaderTimes for [HeaderRecord] {
    fn time_at_height(&self, height: u32) -> Option<u32> {
        let index = self
            .binary_search_by_key(&height, |record| record.height)
            .ok()?;
        Some(self[index].time)
    }
}

/// Height to timestamp.
impl HeaderTimes for BTreeMap<u32, u32> {
    fn time_at_height(&self, height: u32) -> Option<u32> {
        self.get(&height).copied()
    }
}

/// The `nBits` a header at `parent.height + 1` with timestamp `time` must carry.
///
/// # Errors
/// [`HeaderError::HeightOverflow`] past `u32::MAX`, [`HeaderError::MissingPeriodStart`] when a
/// retarget needs a timestamp that `times` does not hold.
pub fn next_bits_required<T: HeaderTimes + ?Sized>(
    network: &Network,
    parent: &HeaderRecord,
    time: u32,
    times: &T,
) -> Result<CompactTarget, HeaderError> {
    let interval = network.retarget_interval_blocks();
    let height = parent
        .height
        .checked_add(1)
        .ok_or(HeaderError::HeightOverflow)?;
    if !height.is_multiple_of(interval) {
        return Ok(bits_between_retargets(network, parent, time));
    }
    if network.retargeting_disabled() {
        return Ok(parent.bits);
    }
    let first_height = period_first_height(network.chain, parent.height, interval);
    let first_time = times
        .time_at_height(first_height)
        .ok_or(HeaderError::MissingPeriodStart {
            height: first_height,
        })?;
    Ok(retarget_bits(network, parent.bits, parent.time, first_time))
}

/// Between retargets the bits stay, except under the min-difficulty rule (testnet, regtest): a
/// header more than two spacings after its parent may use the pow limit, and any other header
/// returns to the last bits not mined under that exception.
fn bits_between_retargets(network: &Network, parent: &HeaderRecord, time: u32) -> CompactTarget {
    if !network.allows_min_difficulty_blocks() {
        return parent.bits;
    }
    let pause_secs = 2 * i64::from(network.target_spacing_secs());
    if i64::from(time) > i64::from(parent.time) + pause_secs {
        return network.pow_limit_bits();
    }
    parent.last_regular_bits
}

/// The value of [`HeaderRecord::last_regular_bits`] for a header at `height` with `bits`: its
/// own bits, unless it is a min-difficulty block inside a period, which inherits its parent's.
/// This is Core's backwards walk "return the last non-special-min-difficulty-rules-block",
/// carried forward so that it costs no lookups.
pub(crate) fn last_regular_bits(
    network: &Network,
    height: u32,
    bits: CompactTarget,
    parent: &HeaderRecord,
) -> CompactTarget {
    let at_boundary = height.is_multiple_of(network.retarget_interval_blocks());
    if at_boundary || bits != network.pow_limit_bits() {
        bits
    } else {
        parent.last_regular_bits
    }
}

/// The height whose timestamp opens the period that ends at `parent_height`.
///
/// Bitcoin looks back `interval - 1` blocks. Litecoin looks back a full `interval` (Art Forz's
/// time-warp fix), except for the first retarget after genesis.
fn period_first_height(chain: Chain, parent_height: u32, interval: u32) -> u32 {
    // parent_height + 1 is a positive multiple of interval, so neither subtraction underflows.
    match chain {
        Chain::Litecoin if parent_height + 1 != interval => parent_height - interval,
        _ => parent_height - (interval - 1),
    }
}

/// The bits after a retarget (Core's `CalculateNextWorkRequired`, retargeting enabled): the
/// last target scaled by the period's actual timespan, clamped to a factor of four either way,
/// and capped at the pow limit.
pub fn retarget_bits(
    network: &Network,
    last_bits: CompactTarget,
    last_time: u32,
    first_time: u32,
) -> CompactTarget {
    let timespan_target = i64::from(network.target_timespan_secs());
    let timespan_actual = (i64::from(last_time) - i64::from(first_time))
        .clamp(timespan_target / 4, timespan_target * 4);
    let timespan_actual = u64::try_from(timespan_actual).expect("clamped to a positive range");
    let timespan_target = u64::from(network.target_timespan_secs());

    let limit = U256::from_target(network.pow_limit());
    let mut target = U256::from_compact(last_bits.to_consensus()).value;
    // Litecoin's powLimit leaves no headroom in 256 bits for the multiplication, so Litecoin Core
    // drops the lowest bit first and restores the scale afterwards. Bitcoin Core does not.
    let shift = network.chain == Chain::Litecoin && target.bits() > limit.bits() - 1;
    if shift {
        target = target.shr(1);
    }
    target = target
        .wrapping_mul_u64(timespan_actual)
        .checked_div_u64(timespan_target)
        .expect("target timespans are positive constants");
    if shift {
        target = target.shl(1);
    }
    CompactTarget::from_consensus(target.min(limit).to_compact())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::network::NetworkKind;
    use bitcoin::hashes::Hash;
    use bitcoin::{BlockHash, Work};

    fn bits(value: u32) -> CompactTarget {
        CompactTarget::from_consensus(value)
    }

    /// Cases of `get_next_work*` in Bitcoin Core's `src/test/pow_tests.cpp` (mainnet).
    #[test]
    fn bitcoin_retargets_match_bitcoin_core_pow_tests() {
        let network = Network::BITCOIN_MAINNET;
        // Block 32255 after period start 30240: the first real difficulty change.
        let next = retarget_bits(&network, bits(0x1d00_ffff), 1_262_152_739, 1_261_130_161);
        assert_eq!(next, bits(0x1d00_d86a));
        // Block 2015: slower than target, capped at the pow limit.
        let next = retarget_bits(&network, bits(0x1d00_ffff), 1_233_061_996, 1_231_006_505);
        assert_eq!(next, bits(0x1d00_ffff));
        // Block 68543: faster than a quarter of the target, clamped.
        let next = retarget_bits(&network, bits(0x1c05_a3f4), 1_279_297_671, 1_279_008_237);
        assert_eq!(next, bits(0x1c01_68fd));
        // Block 46367 with a made-up period start: slower than four times, clamped.
        let next = retarget_bits(&network, bits(0x1c38_7f6f), 1_269_211_443, 1_263_163_443);
        assert_eq!(next, bits(0x1d00_e1fd));
    }

    /// Cases of `get_next_work*` in Litecoin Core 0.21's `src/test/pow_tests.cpp` (mainnet).
    #[test]
    fn litecoin_retargets_match_litecoin_core_pow_tests() {
        let network = Network::LITECOIN_MAINNET;
        // Block 280223.
        let next = retarget_bits(&network, bits(0x1c0a_c141), 1_358_378_777, 1_358_118_740);
        assert_eq!(next, bits(0x1c09_3f8d));
        // Block 2015 after genesis: capped at the pow limit (exercises the one-bit shift).
        let next = retarget_bits(&network, bits(0x1e0f_fff0), 1_318_480_354, 1_317_972_665);
        assert_eq!(next, bits(0x1e0f_ffff));
        // Block 578591: clamped at a quarter of the timespan.
        let next = retarget_bits(&network, bits(0x1b07_5cf1), 1_401_757_934, 1_401_682_934);
        assert_eq!(next, bits(0x1b01_d73c));
        // Block 1001951 with a made-up period start: clamped at four times the timespan.
        let next = retarget_bits(&network, bits(0x1b01_5318), 1_464_900_315, 1_463_690_315);
        assert_eq!(next, bits(0x1b05_4c60));
    }

    #[test]
    fn litecoin_period_starts_one_block_earlier_than_bitcoin_except_the_first() {
        assert_eq!(period_first_height(Chain::Bitcoin, 2015, 2016), 0);
        assert_eq!(period_first_height(Chain::Litecoin, 2015, 2016), 0);
        assert_eq!(period_first_height(Chain::Bitcoin, 32_255, 2016), 30_240);
        assert_eq!(period_first_height(Chain::Litecoin, 32_255, 2016), 30_239);
    }

    /// A record mined at `claimed` bits after regular blocks at 0x1c00ffff.
    fn record(network: &Network, height: u32, claimed: CompactTarget, time: u32) -> HeaderRecord {
        HeaderRecord {
            hash: BlockHash::from_byte_array([0; 32]),
            height,
            bits: claimed,
            time,
            chainwork: Work::from_be_bytes([0; 32]),
            last_regular_bits: if claimed == network.pow_limit_bits() {
                bits(0x1c00_ffff)
            } else {
                claimed
            },
        }
    }

    #[test]
    fn mainnet_keeps_bits_between_retargets_whatever_the_timestamp() {
        let network = Network::LITECOIN_MAINNET;
        let parent = record(&network, 100, bits(0x1c0a_c141), 1_000_000);
        let times: BTreeMap<u32, u32> = BTreeMap::new();
        for time in [999_000, 1_000_001, 2_000_000] {
            let next = next_bits_required(&network, &parent, time, &times);
            assert_eq!(next, Ok(bits(0x1c0a_c141)));
        }
    }

    #[test]
    fn testnet_allows_the_pow_limit_only_after_two_spacings() {
        let network = Network::new(Chain::Litecoin, NetworkKind::Testnet);
        let parent = record(&network, 100, bits(0x1c0a_c141), 1_000_000);
        let times: BTreeMap<u32, u32> = BTreeMap::new();
        let on_time = next_bits_required(&network, &parent, 1_000_300, &times);
        assert_eq!(on_time, Ok(bits(0x1c0a_c141)));
        let late = next_bits_required(&network, &parent, 1_000_301, &times);
        assert_eq!(late, Ok(network.pow_limit_bits()));
    }

    #[test]
    fn testnet_returns_to_the_last_regular_bits_after_a_min_difficulty_block() {
        let network = Network::BITCOIN_TESTNET;
        let regular = record(&network, 100, bits(0x1c00_ffff), 1_000_000);
        let limit = network.pow_limit_bits();
        let easy = HeaderRecord {
            height: 101,
            bits: limit,
            time: 1_002_000,
            last_regular_bits: last_regular_bits(&network, 101, limit, &regular),
            ..regular
        };
        assert_eq!(easy.last_regular_bits, bits(0x1c00_ffff));
        let times: BTreeMap<u32, u32> = BTreeMap::new();
        let next = next_bits_required(&network, &easy, 1_002_600, &times);
        assert_eq!(next, Ok(bits(0x1c00_ffff)));
    }

    #[test]
    fn a_min_difficulty_block_on_a_boundary_is_regular() {
        let network = Network::BITCOIN_TESTNET;
        let parent = record(&network, 4031, bits(0x1c00_ffff), 1_000_000);
        let limit = network.pow_limit_bits();
        assert_eq!(last_regular_bits(&network, 4032, limit, &parent), limit);
        assert_eq!(
            last_regular_bits(&network, 4033, limit, &parent),
            bits(0x1c00_ffff)
        );
    }

    #[test]
    fn regtest_never_retargets_and_needs_no_period_start() {
        let network = Network::LITECOIN_REGTEST;
        let limit = network.pow_limit_bits();
        let parent = record(&network, 2015, limit, 1_000_000);
        let parent = HeaderRecord {
            last_regular_bits: limit,
            ..parent
        };
        let times: BTreeMap<u32, u32> = BTreeMap::new();
        assert_eq!(
            next_bits_required(&network, &parent, 1_000_001, &times),
            Ok(limit)
        );
    }

    #[test]
    fn a_retarget_without_the_period_start_is_an_error_not_a_guess() {
        let network = Network::BITCOIN_MAINNET;
        let parent = record(&network, 32_255, bits(0x1d00_ffff), 1_262_152_739);
        let times: BTreeMap<u32, u32> = BTreeMap::new();
        let next = next_bits_required(&network, &parent, 1_262_153_464, &times);
        assert_eq!(
            next,
            Err(HeaderError::MissingPeriodStart { height: 30_240 })
        );
        let times = BTreeMap::from([(30_240, 1_261_130_161)]);
        let next = next_bits_required(&network, &parent, 1_262_153_464, &times);
        assert_eq!(next, Ok(bits(0x1d00_d86a)));
    }
}
