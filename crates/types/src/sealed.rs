//! Private fields sealed on chain: each recipient gets its own HPKE (RFC 9180) copy of the
//! payload, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, from the
//! `hpke` crate. The chain stores and checks the envelope's shape; only clients seal and open.
//!
//! Every account's sealing key is derived from its ed25519 signing key with HPKE's
//! `DeriveKeyPair`, so the account's key file is all a user keeps. The HPKE `info` binds a copy
//! to the chain, the author, the subject account and the record's label: a copy lifted into
//! another record does not open.

use crate::{
    AccountId, codec_record,
    codec_util::{Blob, List},
};
use hpke::{
    Deserializable as _, Kem as _, OpModeR, OpModeS, Serializable as _, aead::ChaCha20Poly1305,
    kdf::HkdfSha256, kem::X25519HkdfSha256,
};
use serde::{Deserialize, Serialize};

/// Most recipients of one sealed field.
pub const RECIPIENTS_MAX: usize = 8;
/// Largest sealed payload, in bytes.
pub const PLAINTEXT_MAX: usize = 2048;
/// Largest ciphertext of one copy (payload and tag).
pub const CIPHERTEXT_MAX: usize = PLAINTEXT_MAX + 16;
/// Longest record label.
pub const LABEL_MAX: usize = 32;

/// An account's public sealing key (X25519).
pub type SealKey = [u8; 32];

/// One recipient's copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedCopy {
    /// Who can open it.
    pub recipient: AccountId,
    /// The HPKE encapsulated key.
    #[serde(with = "crate::hex_serde::bytes32")]
    pub encapped: [u8; 32],
    /// The HPKE ciphertext.
    pub ciphertext: Blob<CIPHERTEXT_MAX>,
}
codec_record!(SealedCopy {
    recipient: AccountId,
    encapped: [u8; 32],
    ciphertext: Blob<CIPHERTEXT_MAX>,
});

/// A field sealed to its recipients.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// One copy per recipient.
    pub copies: List<SealedCopy, RECIPIENTS_MAX>,
}
codec_record!(Sealed {
    copies: List<SealedCopy, RECIPIENTS_MAX>,
});

impl Sealed {
    /// The recipients, in copy order.
    pub fn recipients(&self) -> impl Iterator<Item = &AccountId> {
        self.copies.0.iter().map(|c| &c.recipient)
    }
}

/// A private record on chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateRecord {
    /// Its number.
    pub id: u64,
    /// Who wrote it.
    pub author: AccountId,
    /// The other party it concerns (a seller, a carrier, the author for a profile).
    pub about: AccountId,
    /// What it is (`shipping-address`, `phone`, `note`…).
    pub label: Blob<LABEL_MAX>,
    /// The sealed payload.
    pub envelope: Sealed,
    /// Consort height it was written at.
    pub height: u64,
}
codec_record!(PrivateRecord {
    id: u64,
    author: AccountId,
    about: AccountId,
    label: Blob<LABEL_MAX>,
    envelope: Sealed,
    height: u64,
});

/// Why the chain refused a private record or sealing key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrivateError {
    /// A recipient published no sealing key.
    #[error("account {0} has no sealing key; it publishes one with `consort private seal-key`")]
    NoSealKey(String),
    /// A party that must hold a copy does not.
    #[error("the {0} must be a recipient of the record")]
    RecipientMissing(&'static str),
    /// No regulator holds a copy.
    #[error("an active regulator account must be a recipient of every private record")]
    RegulatorMissing,
    /// The envelope's shape is wrong.
    #[error("bad envelope: {0}")]
    BadEnvelope(&'static str),
    /// Not an X25519 public key.
    #[error("the sealing key is not a valid X25519 public key")]
    BadSealKey,
}

impl PrivateError {
    /// A stable machine-readable code.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::NoSealKey(_) => "private_no_seal_key",
            Self::RecipientMissing(_) => "private_recipient_missing",
            Self::RegulatorMissing => "private_regulator_missing",
            Self::BadEnvelope(_) => "private_bad_envelope",
            Self::BadSealKey => "private_bad_seal_key",
        }
    }
}

/// Whether `key` is a valid X25519 public key for sealing.
pub fn valid_key(key: &SealKey) -> bool {
    <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(key).is_ok()
}

/// Why sealing or opening failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// No recipients, too many, or one twice.
    #[error("a sealed field needs 1 to {RECIPIENTS_MAX} distinct recipients")]
    Recipients,
    /// The payload is too large.
    #[error("the payload is {0} bytes, the limit is {PLAINTEXT_MAX}")]
    TooLarge(usize),
    /// A recipient's sealing key is not a valid X25519 key.
    #[error("the sealing key of {0} is not valid")]
    BadKey(String),
    /// This account holds no copy.
    #[error("this record is not sealed to {0}")]
    NotARecipient(String),
    /// The copy does not open with this key and context.
    #[error("the copy does not open: wrong key, or it was made for another record")]
    Open,
}

/// The HPKE `info` of a record's copies.
pub fn context(chain_id: u64, author: &AccountId, about: &AccountId, label: &[u8]) -> Vec<u8> {
    let mut info = b"consort/private/v1/".to_vec();
    info.extend_from_slice(&chain_id.to_be_bytes());
    info.extend_from_slice(author.as_ref());
    info.extend_from_slice(about.as_ref());
    info.extend_from_slice(label);
    info
}

/// The sealing key pair of an account, from its ed25519 private key bytes.
pub fn keypair(signing_key: &[u8]) -> (SealSecret, SealKey) {
    let mut ikm = b"consort/seal-key/v1/".to_vec();
    ikm.extend_from_slice(signing_key);
    let (secret, public) = X25519HkdfSha256::derive_keypair(&ikm);
    let mut key = [0u8; 32];
    key.copy_from_slice(&public.to_bytes());
    (SealSecret(secret), key)
}

/// An account's secret sealing key.
pub struct SealSecret(<X25519HkdfSha256 as hpke::Kem>::PrivateKey);

/// Seal `payload` to each of `recipients` (account and sealing key) under `info`.
///
/// # Errors
/// [`SealError`] for bad recipients, keys or sizes.
pub fn seal(
    payload: &[u8],
    recipients: &[(AccountId, SealKey)],
    info: &[u8],
) -> Result<Sealed, SealError> {
    if payload.len() > PLAINTEXT_MAX {
        return Err(SealError::TooLarge(payload.len()));
    }
    let mut seen: Vec<&AccountId> = Vec::new();
    if recipients.is_empty() || recipients.len() > RECIPIENTS_MAX {
        return Err(SealError::Recipients);
    }
    let mut copies = Vec::with_capacity(recipients.len());
    for (account, key) in recipients {
        if seen.contains(&account) {
            return Err(SealError::Recipients);
        }
        seen.push(account);
        let public = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(key)
            .map_err(|_| SealError::BadKey(account.to_string()))?;
        let (encapped, ciphertext) = hpke::single_shot_seal::<
            ChaCha20Poly1305,
            HkdfSha256,
            X25519HkdfSha256,
        >(&OpModeS::Base, &public, info, payload, &[])
        .map_err(|_| SealError::BadKey(account.to_string()))?;
        let mut encapped_bytes = [0u8; 32];
        encapped_bytes.copy_from_slice(&encapped.to_bytes());
        copies.push(SealedCopy {
            recipient: *account,
            encapped: encapped_bytes,
            ciphertext: Blob(ciphertext),
        });
    }
    Ok(Sealed {
        copies: List(copies),
    })
}

/// Open `me`'s copy of `sealed` with its secret sealing key.
///
/// # Errors
/// [`SealError::NotARecipient`] or [`SealError::Open`].
pub fn open(
    sealed: &Sealed,
    me: &AccountId,
    secret: &SealSecret,
    info: &[u8],
) -> Result<Vec<u8>, SealError> {
    let copy = sealed
        .copies
        .0
        .iter()
        .find(|c| c.recipient == *me)
        .ok_or_else(|| SealError::NotARecipient(me.to_string()))?;
    let encapped = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&copy.encapped)
        .map_err(|_| SealError::Open)?;
    hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        &secret.0,
        &encapped,
        info,
        copy.ciphertext.as_slice(),
        &[],
    )
    .map_err(|_| SealError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::{Signer as _, ed25519};

    fn account(seed: u64) -> (AccountId, SealSecret, SealKey) {
        use commonware_codec::Encode as _;
        let key = ed25519::PrivateKey::from_seed(seed);
        let (secret, public) = keypair(&key.encode());
        (AccountId::new(key.public_key()), secret, public)
    }

    #[test]
    fn every_recipient_opens_and_nobody_else() {
        let (buyer, buyer_secret, buyer_key) = account(1);
        let (seller, seller_secret, seller_key) = account(2);
        let (regulator, regulator_secret, regulator_key) = account(3);
        let (stranger, stranger_secret, _) = account(4);
        let info = context(7, &buyer, &seller, b"shipping-address");
        let payload = b"Room 5, 1 Harbour Road, +86 138 0000 0000";
        let sealed = seal(
            payload,
            &[
                (buyer, buyer_key),
                (seller, seller_key),
                (regulator, regulator_key),
            ],
            &info,
        )
        .expect("seals");
        for (who, secret) in [
            (buyer, &buyer_secret),
            (seller, &seller_secret),
            (regulator, &regulator_secret),
        ] {
            assert_eq!(open(&sealed, &who, secret, &info).expect("opens"), payload);
        }
        assert_eq!(
            open(&sealed, &stranger, &stranger_secret, &info),
            Err(SealError::NotARecipient(stranger.to_string()))
        );
        // The seller's secret does not open the buyer's copy; nor does another record's info.
        let mut lifted = sealed.clone();
        lifted.copies.0[0].recipient = seller;
        assert_eq!(
            open(&lifted, &seller, &seller_secret, &info),
            Err(SealError::Open)
        );
        let other = context(7, &buyer, &seller, b"phone");
        assert_eq!(
            open(&sealed, &buyer, &buyer_secret, &other),
            Err(SealError::Open)
        );
        // The ciphertext does not contain the payload.
        use commonware_codec::Encode as _;
        let bytes = sealed.encode();
        assert!(!bytes.windows(payload.len()).any(|w| w == payload));
    }

    #[test]
    fn bad_recipients_and_sizes_are_refused() {
        let (buyer, _, buyer_key) = account(1);
        assert_eq!(seal(b"x", &[], b""), Err(SealError::Recipients));
        assert_eq!(
            seal(b"x", &[(buyer, buyer_key), (buyer, buyer_key)], b""),
            Err(SealError::Recipients)
        );
        assert_eq!(
            seal(&[0; PLAINTEXT_MAX + 1], &[(buyer, buyer_key)], b""),
            Err(SealError::TooLarge(PLAINTEXT_MAX + 1))
        );
    }
}
