//! Every key of the authenticated state in one place. A key is the SHA-256 of a readable path,
//! so that keys of different kinds never collide.

use crate::{AccountId, Digest, sha256};
use commonware_codec::{EncodeSize, Write};

/// Longest id a key path holds (bytes): an outpoint, 36.
const ID_BYTES_MAX: usize = 48;

/// An id's canonical encoding, on the stack: deriving a key costs one SHA-256 and no
/// allocation. A block of shop orders derives a few hundred thousand keys.
struct Enc {
    bytes: [u8; ID_BYTES_MAX],
    len: usize,
}

impl Enc {
    /// `id`'s encoding.
    ///
    /// # Panics
    /// If it is longer than [`ID_BYTES_MAX`], or writes other than its `encode_size` bytes
    /// (as `encode` would): ids are fixed in size (an account, an organisation, an asset, a
    /// record's place, an outpoint), and the tests below derive one key of each.
    fn of(id: &(impl Write + EncodeSize)) -> Self {
        let len = id.encode_size();
        assert!(len <= ID_BYTES_MAX, "a key's id fits ID_BYTES_MAX");
        let mut bytes = [0u8; ID_BYTES_MAX];
        let mut rest = &mut bytes[..len];
        id.write(&mut rest);
        assert!(rest.is_empty(), "an id writes its encode_size");
        Self { bytes, len }
    }
}

impl std::ops::Deref for Enc {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// `accounts/{id}` → [`crate::Account`].
pub fn account(id: &AccountId) -> Digest {
    sha256(&[b"accounts/", &Enc::of(id)])
}

/// `balances/{asset}/{id}` → `u64` base units of a non-native asset.
pub fn balance(asset: &crate::Asset, id: &AccountId) -> Digest {
    sha256(&[b"balances/", &Enc::of(asset), b"/", &Enc::of(id)])
}

/// `assets/{asset}/supply` → `u64` total of an asset on Consort.
pub fn asset_supply(asset: &crate::Asset) -> Digest {
    sha256(&[b"assets/", &Enc::of(asset), b"/supply"])
}

/// Keys of governance records.
pub mod gov {
    use super::Enc;
    use crate::{AccountId, Digest, gov::OrgId, sha256};

    /// `gov/state` → [`crate::gov::GovState`].
    pub fn state() -> Digest {
        static KEY: std::sync::LazyLock<Digest> =
            std::sync::LazyLock::new(|| sha256(&[b"gov/state"]));
        *KEY
    }
    /// `gov/orgs/{id}` → [`crate::gov::Org`].
    pub fn org(id: &OrgId) -> Digest {
        sha256(&[b"gov/orgs/", &Enc::of(id)])
    }
    /// `gov/accounts/{id}` → [`crate::gov::Registration`].
    pub fn registration(id: &AccountId) -> Digest {
        sha256(&[b"gov/accounts/", &Enc::of(id)])
    }
    /// `gov/frozen/{target}` → `true` while frozen.
    pub fn frozen(target: &crate::gov::FreezeTarget) -> Digest {
        sha256(&[b"gov/frozen/", &Enc::of(target)])
    }

    /// How many freezes are in force (absent: none), so that the common case, nothing frozen,
    /// costs one read per block instead of one per target per transaction.
    pub fn frozen_count() -> Digest {
        static KEY: std::sync::LazyLock<Digest> =
            std::sync::LazyLock::new(|| sha256(&[b"gov/frozen-count"]));
        *KEY
    }
    /// `emoney/{asset}` → [`crate::gov::EMoney`].
    pub fn emoney(asset: &crate::Asset) -> Digest {
        sha256(&[b"emoney/", &Enc::of(asset)])
    }
    /// `emoney/assets` → the list of e-money asset codes ever issued.
    pub fn emoney_assets() -> Digest {
        static KEY: std::sync::LazyLock<Digest> =
            std::sync::LazyLock::new(|| sha256(&[b"emoney/assets"]));
        *KEY
    }
    /// `gov/halted` → the height at which the emergency brake was pulled, while it holds.
    pub fn halted() -> Digest {
        static KEY: std::sync::LazyLock<Digest> =
            std::sync::LazyLock::new(|| sha256(&[b"gov/halted"]));
        *KEY
    }
    /// `gov/proposals/{id}` → [`crate::gov::Proposal`].
    pub fn proposal(id: u64) -> Digest {
        sha256(&[b"gov/proposals/", &id.to_be_bytes()])
    }
    /// `gov/rotations/{account}` → the [`crate::gov::PendingRotation`] of an admin's
    /// rotation of `account`, while it waits.
    pub fn rotation(account: &AccountId) -> Digest {
        sha256(&[b"gov/rotations/", &Enc::of(account)])
    }
    /// `gov/rotations-due/{height}` → the accounts whose pending rotation falls due at
    /// `height` (a list of at most [`crate::gov::ROTATIONS_DUE_PER_BLOCK_MAX`]; entries
    /// cancelled or confirmed meanwhile are skipped).
    pub fn rotations_due(height: u64) -> Digest {
        sha256(&[b"gov/rotations-due/", &height.to_be_bytes()])
    }
    /// `gov/rotated-to/{old}` → the key `old` was rotated to (written once, kept for ever:
    /// payments to `old` are refused with the new key named).
    pub fn rotated_to(old: &AccountId) -> Digest {
        sha256(&[b"gov/rotated-to/", &Enc::of(old)])
    }
    /// `gov/rotated-from/{new}` → the key rotated to `new` (written with
    /// [`rotated_to`]; a rotation's new key is never registered before, so each key has at
    /// most one): the account's earlier keys, for reading what it did under them.
    pub fn rotated_from(new: &AccountId) -> Digest {
        sha256(&[b"gov/rotated-from/", &Enc::of(new)])
    }
}

/// Keys of private records.
pub mod private {
    use super::Enc;
    use crate::{AccountId, Digest, sha256};

    /// `private/seal-keys/{id}` → the account's [`crate::sealed::SealKey`].
    pub fn seal_key(id: &AccountId) -> Digest {
        sha256(&[b"private/seal-keys/", &Enc::of(id)])
    }
    /// `private/records/{n}` → [`crate::sealed::PrivateRecord`].
    pub fn record(id: u64) -> Digest {
        sha256(&[b"private/records/", &id.to_be_bytes()])
    }
    /// `private/next` → `u64`, the next record number.
    pub fn next() -> Digest {
        static KEY: std::sync::LazyLock<Digest> =
            std::sync::LazyLock::new(|| sha256(&[b"private/next"]));
        *KEY
    }
}

/// Keys of the validator registry.
pub mod validators {
    use crate::{Digest, sha256};

    /// `validators/registry` → [`crate::validators::ValidatorSet`]: the live registry
    /// (absent: the genesis set).
    pub fn registry() -> Digest {
        static KEY: std::sync::LazyLock<Digest> =
            std::sync::LazyLock::new(|| sha256(&[b"validators/registry"]));
        *KEY
    }
    /// `validators/epochs/{e}` → [`crate::validators::ValidatorSet`]: the committee of epoch
    /// `e` (absent for epoch 0: the genesis set).
    pub fn committee(epoch: u64) -> Digest {
        sha256(&[b"validators/epochs/", &epoch.to_be_bytes()])
    }
}

/// Keys of the peg's records.
pub mod peg {
    use super::Enc;
    use crate::{Digest, peg::Outpoint, sha256};

    /// `peg/totals` → [`crate::peg::PegTotals`].
    pub fn totals() -> Digest {
        static KEY: std::sync::LazyLock<Digest> =
            std::sync::LazyLock::new(|| sha256(&[b"peg/totals"]));
        *KEY
    }
    /// `peg/tip` → [`crate::peg::MainTip`].
    pub fn tip() -> Digest {
        static KEY: std::sync::LazyLock<Digest> =
            std::sync::LazyLock::new(|| sha256(&[b"peg/tip"]));
        *KEY
    }
    /// `peg/headers/{hash}` → [`crate::peg::HeaderEntry`].
    pub fn header(hash: &[u8; 32]) -> Digest {
        sha256(&[b"peg/headers/", hash])
    }
    /// `peg/period-start/{h}` → the timestamp of the header at height `h` before the
    /// checkpoint that the first retarget after it reads (from the checkpoint's config).
    pub fn period_start(height: u32) -> Digest {
        sha256(&[b"peg/period-start/", &height.to_be_bytes()])
    }
    /// `peg/height/{h}` → the best chain's block hash at height `h`.
    pub fn height(height: u32) -> Digest {
        sha256(&[b"peg/height/", &height.to_be_bytes()])
    }
    /// `peg/claims/{outpoint}` → [`crate::peg::ClaimRecord`].
    pub fn claim(outpoint: &Outpoint) -> Digest {
        sha256(&[b"peg/claims/", &Enc::of(outpoint)])
    }
    /// `peg/coins/{outpoint}` → [`crate::peg::FederationCoin`].
    pub fn coin(outpoint: &Outpoint) -> Digest {
        sha256(&[b"peg/coins/", &Enc::of(outpoint)])
    }
    /// `peg/list-heads/{name}` → a [`crate::peg::ListHead`]: `coins` (the federation's spendable
    /// coins), `pending` (claims in their contest period), `queue` (peg-out requests waiting
    /// for a batch), `maturing/{main-chain height}` (claims maturing there).
    pub fn list(name: &[u8]) -> Digest {
        sha256(&[b"peg/list-heads/", name])
    }
    /// `peg/list-links/{name length}{name}{item}` → the item's [`crate::peg::ListLink`].
    pub fn link(name: &[u8], item: &[u8]) -> Digest {
        let length = [u8::try_from(name.len()).unwrap_or(u8::MAX)];
        sha256(&[b"peg/list-links/", &length, name, item])
    }
    /// `peg/federations/{generation}` → [`crate::peg::FederationRecord`].
    pub fn federation(generation: u32) -> Digest {
        sha256(&[b"peg/federations/", &generation.to_be_bytes()])
    }
    /// `peg/federation-keys/{account}` → the account's registered federation key (33 bytes).
    pub fn federation_key(account: &crate::AccountId) -> Digest {
        sha256(&[b"peg/federation-keys/", account.as_bytes()])
    }
    /// `peg/federation-key-owners/{key}` → the account that registered the key.
    pub fn federation_key_owner(key: &[u8]) -> Digest {
        sha256(&[b"peg/federation-key-owners/", key])
    }
    /// `peg/requests/{id}` → [`crate::peg::PegOutRequest`].
    pub fn request(id: u64) -> Digest {
        sha256(&[b"peg/requests/", &id.to_be_bytes()])
    }
    /// `peg/batches/{id}` → [`crate::peg::Batch`].
    pub fn batch(id: u64) -> Digest {
        sha256(&[b"peg/batches/", &id.to_be_bytes()])
    }
    /// `peg/batches/{id}/signatures/{validator}` → one validator's signatures.
    pub fn batch_signatures(id: u64, validator: u16) -> Digest {
        sha256(&[
            b"peg/batches/",
            &id.to_be_bytes(),
            b"/signatures/",
            &validator.to_be_bytes(),
        ])
    }
}

/// Keys of the shop's records.
pub mod commerce {
    use super::Enc;
    use crate::{Asset, Digest, commerce::RecordId, gov::OrgId, sha256};

    /// `commerce/products/{id}` → [`crate::commerce::ProductHead`].
    pub fn product(id: &RecordId) -> Digest {
        sha256(&[b"commerce/products/", &Enc::of(id)])
    }
    /// `commerce/products/{id}/versions/{v}` → [`crate::commerce::ProductVersion`], each
    /// version replaced by an update.
    pub fn product_version(id: &RecordId, version: u32) -> Digest {
        sha256(&[
            b"commerce/products/",
            &Enc::of(id),
            b"/versions/",
            &version.to_be_bytes(),
        ])
    }
    /// `commerce/products/{id}/variants/{v}` → [`crate::commerce::VariantState`] (one state
    /// value).
    pub fn variant(id: &RecordId, variant: u16) -> Digest {
        sha256(&[
            b"commerce/products/",
            &Enc::of(id),
            b"/variants/",
            &variant.to_be_bytes(),
        ])
    }
    /// `commerce/orders/{id}` → [`crate::commerce::Order`].
    pub fn order(id: &RecordId) -> Digest {
        sha256(&[b"commerce/orders/", &Enc::of(id)])
    }
    /// `commerce/orders/{id}/shipments/{n}` → [`crate::commerce::Shipment`].
    pub fn shipment(id: &RecordId, n: u16) -> Digest {
        sha256(&[
            b"commerce/orders/",
            &Enc::of(id),
            b"/shipments/",
            &n.to_be_bytes(),
        ])
    }
    /// `commerce/reviews/{order}/{line}` → [`crate::commerce::ReviewHead`].
    pub fn review(order: &RecordId, line: u8) -> Digest {
        sha256(&[b"commerce/reviews/", &Enc::of(order), b"/", &[line]])
    }
    /// `commerce/reviews/{order}/{line}/versions/{v}` → [`crate::commerce::ProductVersion`]
    /// (digest and carrying transaction) of each replaced version.
    pub fn review_version(order: &RecordId, line: u8, version: u32) -> Digest {
        sha256(&[
            b"commerce/reviews/",
            &Enc::of(order),
            b"/",
            &[line],
            b"/versions/",
            &version.to_be_bytes(),
        ])
    }
    /// `commerce/sellers/{org}` → [`crate::commerce::SellerStats`].
    pub fn seller(org: &OrgId) -> Digest {
        sha256(&[b"commerce/sellers/", &Enc::of(org)])
    }
    /// `commerce/payouts/{id}` → [`crate::commerce::Payout`].
    pub fn payout(id: &RecordId) -> Digest {
        sha256(&[b"commerce/payouts/", &Enc::of(id)])
    }
    /// `commerce/orders/{id}/after_sale` → [`crate::commerce::AfterSale`].
    pub fn after_sale(order: &RecordId) -> Digest {
        sha256(&[b"commerce/orders/", &Enc::of(order), b"/after_sale"])
    }
    /// `commerce/holdings/{asset}` → [`crate::commerce::Holdings`].
    pub fn holdings(asset: &Asset) -> Digest {
        sha256(&[b"commerce/holdings/", &Enc::of(asset)])
    }
    /// `commerce/due/{second}` → `u32`: how many deadlines fall in that second of block time.
    pub fn due_count(second: u64) -> Digest {
        sha256(&[b"commerce/due/", &second.to_be_bytes()])
    }
    /// `commerce/due/{second}/{n}` → the [`RecordId`] of the order whose deadline it is.
    pub fn due(second: u64, n: u32) -> Digest {
        sha256(&[
            b"commerce/due/",
            &second.to_be_bytes(),
            b"/",
            &n.to_be_bytes(),
        ])
    }
    /// `commerce/due-cursor` → [`crate::commerce::DueCursor`].
    pub fn due_cursor() -> Digest {
        static KEY: std::sync::LazyLock<Digest> =
            std::sync::LazyLock::new(|| sha256(&[b"commerce/due-cursor"]));
        *KEY
    }
}

/// Where a finalized transaction sits: block height and position in the block, and whether
/// it applied (a failed one's code is in the block's outcomes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TxLocation {
    /// Height of the block.
    pub height: u64,
    /// Position in the block's transaction list.
    pub index: u32,
    /// Whether it applied; `false`: it failed and used only its nonce.
    pub applied: bool,
}

impl commonware_codec::Write for TxLocation {
    fn write(&self, buf: &mut impl bytes::BufMut) {
        self.height.write(buf);
        self.index.write(buf);
        self.applied.write(buf);
    }
}

impl commonware_codec::EncodeSize for TxLocation {
    fn encode_size(&self) -> usize {
        13
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
            applied: bool::read(buf)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Enc;
    use crate::{
        AccountId, Asset, commerce::RecordId, gov::FreezeTarget, gov::OrgId, peg::Outpoint,
    };
    use commonware_codec::Encode;
    use commonware_cryptography::{Signer as _, ed25519};

    /// Every kind of id a key path holds encodes on the stack exactly as `encode` does, so
    /// the keys are the ones the state has always used.
    #[test]
    fn ids_encode_on_the_stack_as_they_always_did() {
        fn same(id: &impl Encode) {
            assert_eq!(&*Enc::of(id), &id.encode()[..]);
        }
        let account = AccountId::new(ed25519::PrivateKey::from_seed(7).public_key());
        let org: OrgId = "express-logistic".parse().expect("org id");
        let asset: Asset = "CNY".parse().expect("asset");
        same(&account);
        same(&org);
        same(&asset);
        same(&RecordId {
            height: u64::MAX,
            index: u32::MAX,
        });
        same(&FreezeTarget::Account(account));
        same(&FreezeTarget::Asset(asset));
        same(&FreezeTarget::Org(org));
        same(&Outpoint {
            txid: [9; 32],
            vout: u32::MAX,
        });
        assert_eq!(
            super::account(&account),
            crate::sha256(&[b"accounts/", &account.encode()])
        );
    }
}
