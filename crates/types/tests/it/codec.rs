//! Helpers shared by the properties: strict decoding, the canonical-encoding check, and byte
//! mutations (bit flips, overwrites, truncation, extension, insertion, removal).

use commonware_codec::{Copying, Decode, Encode, Read};
use proptest::{
    prelude::*,
    sample::Index,
    test_runner::{Config, TestCaseError},
};
use std::fmt::Debug;

/// Cases per property: enough to find shallow bugs, few enough that the suite stays fast in a
/// debug build.
pub fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Decode all of `bytes` (trailing bytes are an error).
pub fn decode<T: Read<Cfg = ()>>(bytes: &[u8]) -> Result<T, commonware_codec::Error> {
    T::decode_cfg(Copying(bytes), &())
}

/// If `bytes` decode as a `T`, the value must re-encode to exactly `bytes`.
pub fn check_canonical<T>(bytes: &[u8]) -> Result<(), TestCaseError>
where
    T: Read<Cfg = ()> + Encode + Debug,
{
    if let Ok(value) = decode::<T>(bytes) {
        let encoded = value.encode();
        prop_assert_eq!(
            encoded.as_ref(),
            bytes,
            "{:?} decodes from bytes it does not encode to",
            value
        );
    }
    Ok(())
}

/// A value must encode to bytes that decode back to it, with the predicted size.
pub fn check_round_trip<T>(value: &T) -> Result<(), TestCaseError>
where
    T: Read<Cfg = ()> + Encode + Debug + PartialEq,
{
    let bytes = value.encode();
    prop_assert_eq!(
        bytes.len(),
        value.encode_size(),
        "encode_size of {:?}",
        value
    );
    let back = decode::<T>(&bytes).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    prop_assert_eq!(&back, value);
    Ok(())
}

/// One change to a byte string.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Flip one bit.
    FlipBit(Index, u8),
    /// Overwrite one byte.
    SetByte(Index, u8),
    /// Cut the string at a position.
    Truncate(Index),
    /// Append bytes.
    Extend(Vec<u8>),
    /// Insert bytes at a position.
    Insert(Index, Vec<u8>),
    /// Remove up to a few bytes at a position.
    Remove(Index, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let few = || prop::collection::vec(any::<u8>(), 1..8);
    prop_oneof![
        4 => (any::<Index>(), 0..8u8).prop_map(|(i, bit)| Mutation::FlipBit(i, bit)),
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => few().prop_map(Mutation::Extend),
        1 => (any::<Index>(), few()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<Index>(), 1..8u8).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

/// One to four mutations.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..=4)
}

/// Apply `mutations` to `bytes` in order.
pub fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match m {
            Mutation::FlipBit(i, bit) if len > 0 => bytes[i.index(len)] ^= 1 << bit,
            Mutation::SetByte(i, b) if len > 0 => bytes[i.index(len)] = *b,
            Mutation::Truncate(i) => bytes.truncate(i.index(len + 1)),
            Mutation::Extend(more) => bytes.extend_from_slice(more),
            Mutation::Insert(i, more) => {
                let at = i.index(len + 1);
                bytes.splice(at..at, more.iter().copied());
            }
            Mutation::Remove(i, n) if len > 0 => {
                let at = i.index(len);
                let end = (at + usize::from(*n)).min(len);
                bytes.drain(at..end);
            }
            _ => {}
        }
    }
    bytes
}

/// Random bytes up to `max` long, biased short.
pub fn random_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..64.min(max + 1)),
        1 => prop::collection::vec(any::<u8>(), 0..=max),
    ]
}
