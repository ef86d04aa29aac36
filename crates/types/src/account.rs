//! Accounts: an ed25519 public key owns a balance of the native asset and a nonce.

use crate::{Amount, hex_serde};
use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error as CodecError, FixedSize, Read, ReadExt, Write};
use commonware_cryptography::ed25519;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::{fmt, str::FromStr};

/// An account's id: its ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(ed25519::PublicKey);

impl AccountId {
    /// The account owned by `key`.
    pub const fn new(key: ed25519::PublicKey) -> Self {
        Self(key)
    }

    /// The public key that signs for this account.
    pub const fn public_key(&self) -> &ed25519::PublicKey {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex_serde::encode(&self.0))
    }
}

impl FromStr for AccountId {
    type Err = hex_serde::HexError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(hex_serde::parse(text)?))
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
        self.0.write(buf);
    }
}

impl FixedSize for AccountId {
    const SIZE: usize = ed25519::PublicKey::SIZE;
}

impl Read for AccountId {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self(ed25519::PublicKey::read(buf)?))
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
