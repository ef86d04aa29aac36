//! What a block changed in the shop's records, named by what each record is: the feed the
//! marketplace's read side (the indexer) follows.
//!
//! State keys are digests, so the state alone cannot say which order or product a key holds.
//! Executing a block therefore lists, beside its writes, each shop record a committed
//! transaction or the block's own steps (expiry, auto-completion) wrote, with the record's
//! value after the block. Every node computes the same list from the same block; it is the
//! node's own record (like its transaction index), not part of the header.

use crate::{Digest, commerce::RecordId, gov::OrgId, state_key::commerce as key};
use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error as CodecError, Read, ReadExt, Write};
use serde::Serialize;

/// Largest encoded value of a shop record in a change (bytes): an order of the most lines is
/// well under this.
pub const CHANGE_VALUE_MAX: usize = 16 * 1024;

/// Most changes one block lists: a block's transactions each change a bounded number of
/// records (the largest, `ship_orders`, a few hundred), and end of block handles at most
/// [`crate::commerce::DUE_PER_BLOCK_MAX`] deadlines.
pub const CHANGES_PER_BLOCK_MAX: usize = 1 << 20;

/// A shop record, by what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A product's head ([`crate::commerce::ProductHead`]).
    Product {
        /// The product.
        id: RecordId,
    },
    /// A variant's price and stock ([`crate::commerce::VariantState`]).
    Variant {
        /// The product.
        product: RecordId,
        /// The variant.
        variant: u16,
    },
    /// An order ([`crate::commerce::Order`]).
    Order {
        /// The order.
        id: RecordId,
    },
    /// A shipment of an order ([`crate::commerce::Shipment`]).
    Shipment {
        /// The order.
        order: RecordId,
        /// Its number.
        shipment: u16,
    },
    /// A review of an order line ([`crate::commerce::ReviewHead`]).
    Review {
        /// The order.
        order: RecordId,
        /// The line.
        line: u8,
    },
    /// A seller organisation's ratings and sales ([`crate::commerce::SellerStats`]).
    Seller {
        /// The organisation.
        org: OrgId,
    },
    /// A payout ([`crate::commerce::Payout`]).
    Payout {
        /// The payout.
        id: RecordId,
    },
    /// An order's after-sales case ([`crate::commerce::AfterSale`]).
    AfterSale {
        /// The order.
        order: RecordId,
    },
}

impl Record {
    const PRODUCT: u8 = 0;
    const VARIANT: u8 = 1;
    const ORDER: u8 = 2;
    const SHIPMENT: u8 = 3;
    const REVIEW: u8 = 4;
    const SELLER: u8 = 5;
    const PAYOUT: u8 = 6;
    const AFTER_SALE: u8 = 7;

    /// The state key the record lives under.
    pub fn key(&self) -> Digest {
        match self {
            Self::Product { id } => key::product(id),
            Self::Variant { product, variant } => key::variant(product, *variant),
            Self::Order { id } => key::order(id),
            Self::Shipment { order, shipment } => key::shipment(order, *shipment),
            Self::Review { order, line } => key::review(order, *line),
            Self::Seller { org } => key::seller(org),
            Self::Payout { id } => key::payout(id),
            Self::AfterSale { order } => key::after_sale(order),
        }
    }
}

impl Write for Record {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            Self::Product { id } => {
                Self::PRODUCT.write(buf);
                id.write(buf);
            }
            Self::Variant { product, variant } => {
                Self::VARIANT.write(buf);
                product.write(buf);
                variant.write(buf);
            }
            Self::Order { id } => {
                Self::ORDER.write(buf);
                id.write(buf);
            }
            Self::Shipment { order, shipment } => {
                Self::SHIPMENT.write(buf);
                order.write(buf);
                shipment.write(buf);
            }
            Self::Review { order, line } => {
                Self::REVIEW.write(buf);
                order.write(buf);
                line.write(buf);
            }
            Self::Seller { org } => {
                Self::SELLER.write(buf);
                org.write(buf);
            }
            Self::Payout { id } => {
                Self::PAYOUT.write(buf);
                id.write(buf);
            }
            Self::AfterSale { order } => {
                Self::AFTER_SALE.write(buf);
                order.write(buf);
            }
        }
    }
}

impl EncodeSize for Record {
    fn encode_size(&self) -> usize {
        1 + match self {
            Self::Product { id }
            | Self::Order { id }
            | Self::Payout { id }
            | Self::AfterSale { order: id } => id.encode_size(),
            Self::Variant { product, .. } => product.encode_size() + 2,
            Self::Shipment { order, .. } => order.encode_size() + 2,
            Self::Review { order, .. } => order.encode_size() + 1,
            Self::Seller { org } => org.encode_size(),
        }
    }
}

impl Read for Record {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(match u8::read(buf)? {
            Self::PRODUCT => Self::Product {
                id: RecordId::read(buf)?,
            },
            Self::VARIANT => Self::Variant {
                product: RecordId::read(buf)?,
                variant: u16::read(buf)?,
            },
            Self::ORDER => Self::Order {
                id: RecordId::read(buf)?,
            },
            Self::SHIPMENT => Self::Shipment {
                order: RecordId::read(buf)?,
                shipment: u16::read(buf)?,
            },
            Self::REVIEW => Self::Review {
                order: RecordId::read(buf)?,
                line: u8::read(buf)?,
            },
            Self::SELLER => Self::Seller {
                org: OrgId::read(buf)?,
            },
            Self::PAYOUT => Self::Payout {
                id: RecordId::read(buf)?,
            },
            Self::AFTER_SALE => Self::AfterSale {
                order: RecordId::read(buf)?,
            },
            tag => return Err(CodecError::InvalidEnum(tag)),
        })
    }
}

/// One shop record a block changed: its canonical encoding after the block, or `None` if the
/// block removed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Which record.
    pub record: Record,
    /// Its value after the block.
    pub value: Option<Vec<u8>>,
}

impl Write for Change {
    fn write(&self, buf: &mut impl BufMut) {
        self.record.write(buf);
        match &self.value {
            None => 0u8.write(buf),
            Some(bytes) => {
                1u8.write(buf);
                // Bounded by CHANGE_VALUE_MAX when built; a u32 length is ample.
                (bytes.len() as u32).write(buf);
                buf.put_slice(bytes);
            }
        }
    }
}

impl EncodeSize for Change {
    fn encode_size(&self) -> usize {
        self.record.encode_size() + 1 + self.value.as_ref().map_or(0, |v| 4 + v.len())
    }
}

impl Read for Change {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let record = Record::read(buf)?;
        let value = match u8::read(buf)? {
            0 => None,
            1 => {
                let len = u32::read(buf)? as usize;
                if len > CHANGE_VALUE_MAX {
                    return Err(CodecError::Invalid("Change", "value too large"));
                }
                if buf.remaining() < len {
                    return Err(CodecError::EndOfBuffer);
                }
                let mut bytes = vec![0u8; len];
                buf.copy_to_slice(&mut bytes);
                Some(bytes)
            }
            tag => return Err(CodecError::InvalidEnum(tag)),
        };
        Ok(Self { record, value })
    }
}

/// The shop records one block changed, in record order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes(pub Vec<Change>);

impl Write for Changes {
    fn write(&self, buf: &mut impl BufMut) {
        // Bounded by CHANGES_PER_BLOCK_MAX.
        (self.0.len() as u32).write(buf);
        for change in &self.0 {
            change.write(buf);
        }
    }
}

impl EncodeSize for Changes {
    fn encode_size(&self) -> usize {
        4 + self.0.iter().map(EncodeSize::encode_size).sum::<usize>()
    }
}

impl Read for Changes {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let count = u32::read(buf)? as usize;
        if count > CHANGES_PER_BLOCK_MAX {
            return Err(CodecError::Invalid("Changes", "too many"));
        }
        // Each change takes at least 10 bytes: never allocate for more than the input holds.
        let mut changes = Vec::with_capacity(count.min(buf.remaining() / 10));
        let mut last: Option<Record> = None;
        for _ in 0..count {
            let change = Change::read(buf)?;
            if last.is_some_and(|l| l >= change.record) {
                return Err(CodecError::Invalid("Changes", "not in record order"));
            }
            last = Some(change.record);
            changes.push(change);
        }
        Ok(Self(changes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::{DecodeExt as _, Encode as _};

    fn id(height: u64, index: u32) -> RecordId {
        RecordId { height, index }
    }

    #[test]
    fn changes_round_trip_and_refuse_disorder() {
        let org: OrgId = "shop".parse().expect("org");
        let changes = Changes(vec![
            Change {
                record: Record::Product { id: id(3, 0) },
                value: Some(vec![1, 2, 3]),
            },
            Change {
                record: Record::Variant {
                    product: id(3, 0),
                    variant: 2,
                },
                value: Some(vec![4; 32]),
            },
            Change {
                record: Record::Order { id: id(9, 1) },
                value: Some(vec![5; 300]),
            },
            Change {
                record: Record::Shipment {
                    order: id(9, 1),
                    shipment: 0,
                },
                value: Some(vec![6]),
            },
            Change {
                record: Record::Review {
                    order: id(9, 1),
                    line: 0,
                },
                value: Some(vec![7]),
            },
            Change {
                record: Record::Seller { org },
                value: Some(vec![8]),
            },
            Change {
                record: Record::Payout { id: id(12, 4) },
                value: None,
            },
        ]);
        let bytes = changes.encode();
        assert_eq!(bytes.len(), changes.encode_size());
        assert_eq!(Changes::decode(bytes).expect("decodes"), changes);
        let mut reversed = changes.clone();
        reversed.0.reverse();
        assert!(Changes::decode(reversed.encode()).is_err());
        let mut twice = changes.clone();
        twice.0.push(twice.0[6].clone());
        assert!(Changes::decode(twice.encode()).is_err());
    }

    #[test]
    fn garbage_does_not_decode() {
        for bad in [
            &[0u8, 0, 0, 1, 9][..],
            &[0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 7],
            &[255, 255, 255, 255],
        ] {
            assert!(Changes::decode(bytes::Bytes::copy_from_slice(bad)).is_err());
        }
        // A value longer than CHANGE_VALUE_MAX.
        let mut long = vec![0u8, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
        long.extend_from_slice(&((CHANGE_VALUE_MAX + 1) as u32).to_be_bytes());
        long.extend(std::iter::repeat_n(0u8, CHANGE_VALUE_MAX + 1));
        assert!(Changes::decode(bytes::Bytes::from(long)).is_err());
    }
}
