//! Hex text forms of byte-like values for JSON (API, config files).

use commonware_codec::{DecodeExt, Encode};
use std::fmt;

/// Parse a hex string (with or without `0x`) into bytes.
pub fn decode(text: &str) -> Result<Vec<u8>, hex::FromHexError> {
    hex::decode(text.strip_prefix("0x").unwrap_or(text))
}

/// Encode a codec value as lowercase hex.
pub fn encode<T: Encode>(value: &T) -> String {
    hex::encode(value.encode())
}

/// Why a hex value could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HexError {
    /// Not hex.
    #[error("not hexadecimal: {0}")]
    Hex(#[from] hex::FromHexError),
    /// Hex, but not a valid encoding of the value.
    #[error("not a valid encoding: {0}")]
    Codec(#[from] commonware_codec::Error),
}

/// Parse a fixed-size codec value (key, digest, signature) from hex.
pub fn parse<T: DecodeExt<()>>(text: &str) -> Result<T, HexError> {
    let bytes = decode(text)?;
    Ok(T::decode(bytes)?)
}

/// Serde adapter: a codec value as a hex string.
pub mod as_hex {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Serialize as hex.
    pub fn serialize<T: Encode, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(value))
    }

    /// Deserialize from hex.
    pub fn deserialize<'de, T: DecodeExt<()>, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(D::Error::custom)
    }
}

/// Display helper: short hex of a value for logs.
pub struct Short<'a, T>(pub &'a T);

impl<T: Encode> fmt::Display for Short<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0.encode();
        let n = bytes.len().min(4);
        write!(f, "{}", hex::encode(&bytes[..n]))
    }
}
