//! Accounts: an ed25519 public key owns a balance of the native asset and a nonce.

use crate::{Amount, hex_serde};
use bytes::BufMut;
use commonware_codec::{
    Buf, DecodeExt as _, EncodeSize, Error as CodecError, FixedSize, Read, ReadExt, Write,
};
use commonware_cryptography::ed25519;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::{fmt, str::FromStr};

/// An account's id: the 32 bytes of its ed25519 public key.
///
/// Kept as bytes: decoding a transaction or a block never pays for elliptic-curve point
/// decompression (about as costly as a batched signature check); the key is decompressed only
/// when a signature is verified. Ids parsed from text ([`FromStr`], JSON) must be valid keys;
/// ids decoded from binary are checked when their signature is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId([u8; 32]);

impl AccountId {
    /// The account owned by `key`.
    pub fn new(key: ed25519::PublicKey) -> Self {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(key.as_ref());
        Self(bytes)
    }

    /// The id's bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The public key that signs for this account, if the bytes are a valid ed25519 key.
    pub fn public_key(&self) -> Option<ed25519::PublicKey> {
        ed25519::PublicKey::decode(commonware_codec::Copying(self.0.as_slice())).ok()
    }
}

impl AsRef<[u8]> for AccountId {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<ed25519::PublicKey> for AccountId {
    fn from(key: ed25519::PublicKey) -> Self {
        Self::new(key)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(self.0))
    }
}

impl FromStr for AccountId {
    type Err = hex_serde::HexError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // Text comes from people and programs: insist on a real key, so a typo is caught here.
        let key: ed25519::PublicKey = hex_serde::parse(text)?;
        Ok(Self::new(key))
    }
}

impl Serialize for AccountId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Write for AccountId {
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }
}

impl FixedSize for AccountId {
    const SIZE: usize = 32;
}

impl Read for AccountId {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self(<[u8; 32]>::read(buf)?))
    }
}

/// The state of one account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Spendable balance of the native asset.
    pub balance: Amount,
    /// The nonce the account's next transaction must carry.
    pub nonce: u64,
}

impl Write for Account {
    fn write(&self, buf: &mut impl BufMut) {
        self.balance.write(buf);
        self.nonce.write(buf);
    }
}

impl EncodeSize for Account {
    fn encode_size(&self) -> usize {
        16
    }
}

impl Read for Account {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self {
            balance: Amount::read(buf)?,
            nonce: u64::read(buf)?,
        })
    }
}
