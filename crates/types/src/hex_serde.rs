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

/// Serde adapter: 32 bytes as plain hex.
pub mod bytes32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Serialize as hex.
    pub fn serialize<S: Serializer>(value: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(value))
    }

    /// Deserialize from hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let bytes = super::decode(&String::deserialize(d)?).map_err(D::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| D::Error::custom("expected 32 bytes"))
    }
}

/// Serde adapter: a main-chain hash (block hash, txid) kept in internal byte order, shown
/// byte-reversed as Bitcoin and Litecoin Core display it.
pub mod main_hash {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Serialize as reversed hex.
    pub fn serialize<S: Serializer>(value: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        let mut reversed = *value;
        reversed.reverse();
        s.serialize_str(&hex::encode(reversed))
    }

    /// Deserialize from reversed hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let bytes = super::decode(&String::deserialize(d)?).map_err(D::Error::custom)?;
        let mut hash: [u8; 32] = bytes
            .try_into()
            .map_err(|_| D::Error::custom("expected 32 bytes"))?;
        hash.reverse();
        Ok(hash)
    }
}
