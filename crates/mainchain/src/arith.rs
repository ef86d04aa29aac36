//! The few 256-bit unsigned operations Core's `arith_uint256` performs on targets.
//!
//! rust-bitcoin keeps its `U256` private and its compact decoding differs from Core's on
//! negative and overflowing `nBits`, so the difficulty code reproduces Core with this type:
//! shifts and multiplication wrap modulo 2^256 exactly as `arith_uint256` does.

use bitcoin::pow::Target;

/// An unsigned 256-bit integer; limb 0 is the most significant, so the derived order is numeric.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct U256([u64; 4]);

/// A decoded `nBits`, with the flags of Core's `SetCompact`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Compact {
    pub(crate) value: U256,
    pub(crate) negative: bool,
    pub(crate) overflow: bool,
}

impl U256 {
    pub(crate) const ZERO: U256 = U256([0; 4]);

    pub(crate) fn from_u64(value: u64) -> Self {
        U256([0, 0, 0, value])
    }

    pub(crate) fn from_be_bytes(bytes: [u8; 32]) -> Self {
        let mut limbs = [0_u64; 4];
        for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut word = [0_u8; 8];
            word.copy_from_slice(chunk);
            *limb = u64::from_be_bytes(word);
        }
        U256(limbs)
    }

    pub(crate) fn from_le_bytes(mut bytes: [u8; 32]) -> Self {
        bytes.reverse();
        Self::from_be_bytes(bytes)
    }

    pub(crate) fn to_be_bytes(self) -> [u8; 32] {
        let mut bytes = [0_u8; 32];
        for (chunk, limb) in bytes.chunks_exact_mut(8).zip(self.0) {
            chunk.copy_from_slice(&limb.to_be_bytes());
        }
        bytes
    }

    pub(crate) fn from_target(target: Target) -> Self {
        Self::from_be_bytes(target.to_be_bytes())
    }

    pub(crate) fn to_target(self) -> Target {
        Target::from_be_bytes(self.to_be_bytes())
    }

    pub(crate) fn is_zero(self) -> bool {
        self == Self::ZERO
    }

    fn low_u64(self) -> u64 {
        self.0[3]
    }

    /// Position of the highest set bit plus one; zero for zero.
    pub(crate) fn bits(self) -> u32 {
        for (index, limb) in self.0.iter().enumerate() {
            if *limb != 0 {
                let limbs_below = 3 - index as u32;
                return limbs_below * 64 + (64 - limb.leading_zeros());
            }
        }
        0
    }

    /// `self << shift`, dropping bits shifted past 2^256 (zero for `shift >= 256`).
    pub(crate) fn shl(self, shift: u32) -> Self {
        if shift >= 256 {
            return Self::ZERO;
        }
        let limb_shift = (shift / 64) as usize;
        let bit_shift = shift % 64;
        let mut out = [0_u64; 4];
        for (index, slot) in out.iter_mut().enumerate() {
            let source = index + limb_shift;
            if source > 3 {
                break;
            }
            *slot = self.0[source] << bit_shift;
            if bit_shift > 0 && source < 3 {
                *slot |= self.0[source + 1] >> (64 - bit_shift);
            }
        }
        U256(out)
    }

    /// `self >> shift` (zero for `shift >= 256`).
    pub(crate) fn shr(self, shift: u32) -> Self {
        if shift >= 256 {
            return Self::ZERO;
        }
        let limb_shift = (shift / 64) as usize;
        let bit_shift = shift % 64;
        let mut out = [0_u64; 4];
        for (index, slot) in out.iter_mut().enumerate().skip(limb_shift) {
            let source = index - limb_shift;
            *slot = self.0[source] >> bit_shift;
            if bit_shift > 0 && source > 0 {
                *slot |= self.0[source - 1] << (64 - bit_shift);
            }
        }
        U256(out)
    }

    /// `self + other`, or `None` past 2^256.
    pub(crate) fn checked_add(self, other: Self) -> Option<Self> {
        let mut out = [0_u64; 4];
        let mut carry = false;
        for index in (0..4).rev() {
            let (sum, overflow_a) = self.0[index].overflowing_add(other.0[index]);
            let (sum, overflow_b) = sum.overflowing_add(u64::from(carry));
            out[index] = sum;
            carry = overflow_a || overflow_b;
        }
        (!carry).then_some(U256(out))
    }

    /// `self * factor` modulo 2^256, as `arith_uint256::operator*=`.
    pub(crate) fn wrapping_mul_u64(self, factor: u64) -> Self {
        let mut out = [0_u64; 4];
        let mut carry: u128 = 0;
        for index in (0..4).rev() {
            let product = u128::from(self.0[index]) * u128::from(factor) + carry;
            out[index] = product as u64; // low half; the high half carries
            carry = product >> 64;
        }
        U256(out)
    }

    /// `self / divisor`, rounded down; `None` for a zero divisor.
    pub(crate) fn checked_div_u64(self, divisor: u64) -> Option<Self> {
        if divisor == 0 {
            return None;
        }
        let mut out = [0_u64; 4];
        let mut remainder: u128 = 0;
        for (slot, limb) in out.iter_mut().zip(self.0) {
            let dividend = (remainder << 64) | u128::from(limb);
            *slot = (dividend / u128::from(divisor)) as u64; // < 2^64 since remainder < divisor
            remainder = dividend % u128::from(divisor);
        }
        Some(U256(out))
    }

    /// Core's `arith_uint256::SetCompact`, flags included.
    pub(crate) fn from_compact(bits: u32) -> Compact {
        let size = bits >> 24;
        let mut word = bits & 0x007f_ffff;
        let value = if size <= 3 {
            word >>= 8 * (3 - size);
            U256::from_u64(u64::from(word))
        } else {
            U256::from_u64(u64::from(word)).shl(8 * (size - 3))
        };
        let negative = word != 0 && (bits & 0x0080_0000) != 0;
        let overflow =
            word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32));
        Compact {
            value,
            negative,
            overflow,
        }
    }

    /// Core's `arith_uint256::GetCompact` for a non-negative value.
    pub(crate) fn to_compact(self) -> u32 {
        let mut size = self.bits().div_ceil(8);
        let mut compact = if size <= 3 {
            (self.low_u64() << (8 * (3 - size))) as u32 // at most 24 bits are set
        } else {
            self.shr(8 * (size - 3)).low_u64() as u32 // at most 24 bits are set
        };
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        compact | (size << 24)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use bitcoin::pow::CompactTarget;

    #[test]
    fn compact_round_trips_the_values_core_uses() {
        for bits in [
            0x1d00_ffff_u32,
            0x1e0f_fff0,
            0x1e0f_ffff,
            0x207f_ffff,
            0x1b01_d73c,
            0x0300_8000,
        ] {
            let decoded = U256::from_compact(bits);
            assert!(!decoded.negative && !decoded.overflow, "{bits:#x}");
            let target = Target::from_compact(CompactTarget::from_consensus(bits));
            assert_eq!(decoded.value.to_target(), target, "{bits:#x}");
            assert_eq!(
                decoded.value.to_compact(),
                target.to_compact_lossy().to_consensus(),
                "{bits:#x}"
            );
        }
    }

    #[test]
    fn compact_flags_match_core_pow_tests() {
        // Core: GetCompact(true) of powLimit sets the sign bit; ~0x00800000 overflows.
        assert!(U256::from_compact(0x1d80_ffff).negative);
        assert!(U256::from_compact(!0x0080_0000_u32).overflow);
        assert!(U256::from_compact(0x2300_0001).overflow);
        assert!(!U256::from_compact(0x2200_0001).overflow);
        // A zero mantissa is zero, whatever the sign bit says.
        let zero = U256::from_compact(0x1d80_0000);
        assert!(zero.value.is_zero() && !zero.negative);
    }

    #[test]
    fn shifts_multiplication_and_division_agree_with_u128() {
        let value = U256::from_u64(0xdead_beef_1234_5678);
        assert_eq!(value.shl(64).shr(64), value);
        assert_eq!(value.shl(256), U256::ZERO);
        assert_eq!(value.shl(150).bits(), value.bits() + 150);
        assert_eq!(value.shl(200).bits(), 256, "bits past 2^256 are dropped");
        let product = value.wrapping_mul_u64(1_209_600);
        let expected = 0xdead_beef_1234_5678_u128 * 1_209_600;
        assert_eq!(
            product,
            U256([0, 0, (expected >> 64) as u64, expected as u64])
        );
        assert_eq!(product.checked_div_u64(1_209_600), Some(value));
        assert_eq!(value.checked_div_u64(0), None);
    }

    #[test]
    fn addition_carries_across_limbs_and_refuses_to_overflow() {
        let low_max = U256::from_u64(u64::MAX);
        assert_eq!(
            low_max.checked_add(U256::from_u64(1)),
            Some(U256([0, 0, 1, 0]))
        );
        let max = U256([u64::MAX; 4]);
        assert_eq!(max.checked_add(U256::from_u64(1)), None);
        assert_eq!(max.checked_add(U256::ZERO), Some(max));
    }

    #[test]
    fn multiplication_wraps_modulo_two_to_the_256() {
        let top = U256::from_u64(1).shl(255);
        assert_eq!(top.wrapping_mul_u64(2), U256::ZERO);
        assert_eq!(top.wrapping_mul_u64(3), top);
    }

    #[test]
    fn little_endian_bytes_read_as_core_reads_a_uint256() {
        let mut bytes = [0_u8; 32];
        bytes[0] = 0x01;
        bytes[31] = 0x80;
        let value = U256::from_le_bytes(bytes);
        assert_eq!(value.bits(), 256);
        assert_eq!(value.to_be_bytes()[31], 0x01);
    }
}
