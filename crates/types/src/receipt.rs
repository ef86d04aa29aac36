//! What executing a transaction did: applied, or failed with a stable error code.
//!
//! A transaction that fails at execution is still included in its block: it uses its nonce,
//! changes nothing else, and its outcome is committed by the block's transaction root, so
//! every node and light client agrees on why it failed.

use crate::TxError;
use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error as CodecError, Read, ReadExt, Write};
use serde::{Serialize, Serializer};

/// Longest failure code (bytes); every [`TxError::code`] fits.
pub const FAILURE_CODE_MAX: usize = 32;

/// A stable machine code of a failure (`insufficient_balance`, `peg_below_minimum`, …):
/// lowercase ASCII letters, digits and `_`, at most [`FAILURE_CODE_MAX`] bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FailureCode(String);

impl FailureCode {
    /// The code of `error`.
    pub fn of(error: &TxError) -> Self {
        let code = error.code();
        debug_assert!(
            Self::valid(code.as_bytes()),
            "error codes are valid: {code}"
        );
        Self(code.to_string())
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn valid(bytes: &[u8]) -> bool {
        !bytes.is_empty()
            && bytes.len() <= FAILURE_CODE_MAX
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
    }
}

impl std::fmt::Display for FailureCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for FailureCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// The outcome of one included transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It ran and its effects are in the state.
    Applied,
    /// It failed at execution: only its nonce was used.
    Failed(FailureCode),
}

impl Outcome {
    const APPLIED: u8 = 0;
    const FAILED: u8 = 1;

    /// The outcome of a failed execution.
    pub fn failed(error: &TxError) -> Self {
        Self::Failed(FailureCode::of(error))
    }

    /// Whether the transaction's effects were applied.
    pub const fn is_applied(&self) -> bool {
        matches!(self, Self::Applied)
    }

    /// The failure code, if it failed.
    pub fn failure(&self) -> Option<&FailureCode> {
        match self {
            Self::Applied => None,
            Self::Failed(code) => Some(code),
        }
    }
}

impl Write for Outcome {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            Self::Applied => Self::APPLIED.write(buf),
            Self::Failed(code) => {
                Self::FAILED.write(buf);
                // Valid codes are at most FAILURE_CODE_MAX (32) bytes: the length fits a u8.
                (code.0.len() as u8).write(buf);
                buf.put_slice(code.0.as_bytes());
            }
        }
    }
}

impl EncodeSize for Outcome {
    fn encode_size(&self) -> usize {
        match self {
            Self::Applied => 1,
            Self::Failed(code) => 2 + code.0.len(),
        }
    }
}

impl Read for Outcome {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        match u8::read(buf)? {
            Self::APPLIED => Ok(Self::Applied),
            Self::FAILED => {
                let len = usize::from(u8::read(buf)?);
                if buf.remaining() < len {
                    return Err(CodecError::EndOfBuffer);
                }
                let mut bytes = vec![0u8; len];
                buf.copy_to_slice(&mut bytes);
                if !FailureCode::valid(&bytes) {
                    return Err(CodecError::Invalid("Outcome", "bad failure code"));
                }
                let code = String::from_utf8(bytes)
                    .map_err(|_| CodecError::Invalid("Outcome", "bad failure code"))?;
                Ok(Self::Failed(FailureCode(code)))
            }
            tag => Err(CodecError::InvalidEnum(tag)),
        }
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Applied => s.serialize_str("applied"),
            Self::Failed(code) => s.serialize_str(code.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::{DecodeExt, Encode};

    #[test]
    fn outcomes_round_trip() {
        for outcome in [
            Outcome::Applied,
            Outcome::failed(&TxError::InsufficientBalance {
                balance: crate::Amount::new(1),
                needed: crate::Amount::new(2),
            }),
        ] {
            let bytes = outcome.encode();
            assert_eq!(Outcome::decode(bytes).expect("decodes"), outcome);
        }
    }

    #[test]
    fn a_failure_code_outside_the_alphabet_does_not_decode() {
        for bad in [&[1u8, 0][..], &[1, 2, b'A', b'b'], &[1, 33], &[2]] {
            assert!(
                Outcome::decode(bytes::Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
        let mut long = vec![1u8, 33];
        long.extend(std::iter::repeat_n(b'a', 33));
        assert!(Outcome::decode(bytes::Bytes::from(long)).is_err());
    }
}
