//! Small codec building blocks: bounded byte strings and lists, and a macro that gives a record
//! struct its canonical encoding (its fields in declaration order).

use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error as CodecError, RangeCfg, Read, Write};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes of at most `MAX` bytes, length-prefixed on the wire, hex in JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Blob<const MAX: usize>(pub Vec<u8>);

impl<const MAX: usize> Blob<MAX> {
    /// Wrap bytes; `None` if longer than `MAX`.
    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() <= MAX).then_some(Self(bytes))
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl<const MAX: usize> Write for Blob<MAX> {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.write(buf);
    }
}

impl<const MAX: usize> EncodeSize for Blob<MAX> {
    fn encode_size(&self) -> usize {
        self.0.encode_size()
    }
}

impl<const MAX: usize> Read for Blob<MAX> {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self(Vec::<u8>::read_cfg(
            buf,
            &(RangeCfg::from(..=MAX), ()),
        )?))
    }
}

impl<const MAX: usize> Serialize for Blob<MAX> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for Blob<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(text.trim()).map_err(serde::de::Error::custom)?;
        Self::new(bytes).ok_or_else(|| serde::de::Error::custom(format!("longer than {MAX} bytes")))
    }
}

/// A list of at most `MAX` items, length-prefixed on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct List<T, const MAX: usize>(pub Vec<T>);

impl<T, const MAX: usize> Default for List<T, MAX> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T: Write, const MAX: usize> Write for List<T, MAX> {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.write(buf);
    }
}

impl<T: EncodeSize, const MAX: usize> EncodeSize for List<T, MAX> {
    fn encode_size(&self) -> usize {
        self.0.encode_size()
    }
}

impl<T: Read<Cfg = ()>, const MAX: usize> Read for List<T, MAX> {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self(Vec::<T>::read_cfg(
            buf,
            &(RangeCfg::from(..=MAX), ()),
        )?))
    }
}

/// Give a struct whose fields all decode with `Cfg = ()` its canonical encoding: the fields in
/// the order listed.
#[macro_export]
macro_rules! codec_record {
    ($name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        impl ::commonware_codec::Write for $name {
            fn write(&self, buf: &mut impl ::bytes::BufMut) {
                $( ::commonware_codec::Write::write(&self.$field, buf); )*
            }
        }
        impl ::commonware_codec::EncodeSize for $name {
            fn encode_size(&self) -> usize {
                0 $( + ::commonware_codec::EncodeSize::encode_size(&self.$field) )*
            }
        }
        impl ::commonware_codec::Read for $name {
            type Cfg = ();
            fn read_cfg(
                buf: &mut impl ::commonware_codec::Buf,
                _: &(),
            ) -> Result<Self, ::commonware_codec::Error> {
                Ok(Self {
                    $( $field: <$ty as ::commonware_codec::ReadExt>::read(buf)?, )*
                })
            }
        }
    };
}

/// UTF-8 text of at most `MAX` bytes, length-prefixed on the wire, a string in JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text<const MAX: usize>(String);

impl<const MAX: usize> Text<MAX> {
    /// Wrap text; `None` if longer than `MAX` bytes.
    pub fn new(text: impl Into<String>) -> Option<Self> {
        let text = text.into();
        (text.len() <= MAX).then_some(Self(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<const MAX: usize> Write for Text<MAX> {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.len().write(buf);
        buf.put_slice(self.0.as_bytes());
    }
}

impl<const MAX: usize> EncodeSize for Text<MAX> {
    fn encode_size(&self) -> usize {
        self.0.len().encode_size() + self.0.len()
    }
}

impl<const MAX: usize> Read for Text<MAX> {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let bytes = Vec::<u8>::read_cfg(buf, &(RangeCfg::from(..=MAX), ()))?;
        String::from_utf8(bytes)
            .map(Self)
            .map_err(|_| CodecError::Invalid("Text", "not UTF-8"))
    }
}

impl<const MAX: usize> Serialize for Text<MAX> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for Text<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::new(text).ok_or_else(|| serde::de::Error::custom(format!("longer than {MAX} bytes")))
    }
}
