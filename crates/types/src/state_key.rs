//! Every key of the authenticated state in one place. A key is the SHA-256 of a readable path,
//! so that keys of different kinds never collide.

use crate::{AccountId, Digest, TxHash, sha256};
use commonware_codec::Encode;

/// `accounts/{id}` → [`crate::Account`].
pub fn account(id: &AccountId) -> Digest {
    sha256(&[b"accounts/", &id.encode()])
}

/// `txs/{hash}` → [`TxLocation`]: where a finalized transaction sits.
pub fn tx(hash: &TxHash) -> Digest {
    sha256(&[b"txs/", hash.as_ref()])
}

/// Where a finalized transaction sits: block height and position in the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TxLocation {
    /// Height of the block.
    pub height: u64,
    /// Position in the block's transaction list.
    pub index: u32,
}

impl commonware_codec::Write for TxLocation {
    fn write(&self, buf: &mut impl bytes::BufMut) {
        self.height.write(buf);
        self.index.write(buf);
    }
}

impl commonware_codec::EncodeSize for TxLocation {
    fn encode_size(&self) -> usize {
        12
    }
}

impl commonware_codec::Read for TxLocation {
    type Cfg = ();
    fn read_cfg(
        buf: &mut impl commonware_codec::Buf,
        _: &(),
    ) -> Result<Self, commonware_codec::Error> {
        use commonware_codec::ReadExt;
        Ok(Self {
            height: u64::read(buf)?,
            index: u32::read(buf)?,
        })
    }
}
