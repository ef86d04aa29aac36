//! Asset codes of the multi-asset ledger: the pegged main-chain coin (e.g. `LTC`) and, later,
//! bank e-money (e.g. `CNY`). The chain's native asset is held in [`crate::Account`] itself.

use bytes::BufMut;
use commonware_codec::{Buf, Error as CodecError, FixedSize, Read, Write};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::{fmt, str::FromStr};

/// An asset code: 1 to 8 characters of `A-Z` and `0-9`, zero-padded on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Asset([u8; 8]);

/// Why text is not an asset code.
#[derive(Debug, thiserror::Error)]
#[error("asset code {0:?} is not 1 to 8 characters of A-Z and 0-9")]
pub struct BadAsset(pub String);

impl Asset {
    /// The code's bytes, without padding.
    pub fn code(&self) -> &str {
        let len = self.0.iter().position(|b| *b == 0).unwrap_or(8);
        std::str::from_utf8(&self.0[..len]).expect("checked ASCII")
    }

    /// The code zero-padded to 8 bytes, as on the wire.
    pub const fn padded(&self) -> [u8; 8] {
        self.0
    }

    /// The asset whose zero-padded code is `bytes`, if it is one.
    pub fn from_padded_bytes(bytes: [u8; 8]) -> Option<Self> {
        Self::from_padded(bytes)
    }

    fn from_padded(bytes: [u8; 8]) -> Option<Self> {
        let len = bytes.iter().position(|b| *b == 0).unwrap_or(8);
        let valid = len > 0
            && bytes[..len]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            && bytes[len..].iter().all(|b| *b == 0);
        valid.then_some(Self(bytes))
    }
}

impl FromStr for Asset {
    type Err = BadAsset;
    fn from_str(text: &str) -> Result<Self, BadAsset> {
        let bytes = text.as_bytes();
        if bytes.len() > 8 {
            return Err(BadAsset(text.to_string()));
        }
        let mut padded = [0u8; 8];
        padded[..bytes.len()].copy_from_slice(bytes);
        Self::from_padded(padded).ok_or_else(|| BadAsset(text.to_string()))
    }
}

impl fmt::Display for Asset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Write for Asset {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.write(buf);
    }
}

impl FixedSize for Asset {
    const SIZE: usize = 8;
}

impl Read for Asset {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let bytes = <[u8; 8]>::read_cfg(buf, &())?;
        Self::from_padded(bytes).ok_or(CodecError::Invalid("Asset", "not an asset code"))
    }
}

impl Serialize for Asset {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Asset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::{DecodeExt, Encode};

    #[test]
    fn codes_parse_round_trip_and_refuse_garbage() {
        let ltc: Asset = "LTC".parse().expect("valid");
        assert_eq!(ltc.to_string(), "LTC");
        assert_eq!(Asset::decode(ltc.encode()).expect("decodes"), ltc);
        for bad in ["", "ltc", "TOOLONGXX", "L C", "L\0C"] {
            assert!(bad.parse::<Asset>().is_err(), "{bad:?} accepted");
        }
        assert!(Asset::decode(commonware_codec::Copying(&b"L\0C\0\0\0\0\0"[..])).is_err());
    }
}
