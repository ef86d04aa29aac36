//! A validator's secp256k1 custody key, and the encrypted file it lives in.
//!
//! # File format (version 1)
//!
//! ```json
//! {
//!   "version": 1,
//!   "public_key": "02…",
//!   "kdf": { "algorithm": "argon2id", "memory_kib": 65536, "iterations": 3,
//!            "parallelism": 4, "salt": "<32 bytes hex>" },
//!   "cipher": { "algorithm": "xchacha20poly1305", "nonce": "<24 bytes hex>",
//!               "ciphertext": "<48 bytes hex: 32-byte secret and 16-byte tag>" }
//! }
//! ```
//!
//! The passphrase goes through Argon2id (RFC 9106, version 0x13) with a random salt to a
//! 32-byte key, which seals the secret key with XChaCha20-Poly1305 under a random 24-byte
//! nonce. Everything outside the ciphertext (version, public key, KDF parameters, salt) is the
//! AEAD's associated data, so an edited header fails authentication like a wrong passphrase;
//! after decryption the secret must also match the stored public key. The public key is in
//! the clear so a node knows its federation key without the passphrase. Files are created
//! with mode 0600, written to a temporary file and moved into place without replacing an
//! existing keystore; one that others may read is refused.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use argon2::{Algorithm, Argon2, Params, Version};
use bitcoin::secp256k1::{self, All, Message, PublicKey, Secp256k1, SecretKey};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The format version written.
pub const KEYSTORE_VERSION: u32 = 1;
/// The largest keystore file read.
pub const KEYSTORE_FILE_SIZE_MAX_BYTES: u64 = 16 * 1024;
/// The least Argon2 memory accepted, in KiB (OWASP's floor for Argon2id is 19 MiB).
pub const KDF_MEMORY_MIN_KIB: u32 = 19 * 1024;
/// The most Argon2 memory accepted, in KiB: bounds what a file can make the node allocate.
pub const KDF_MEMORY_MAX_KIB: u32 = 2 * 1024 * 1024;
/// The most Argon2 passes accepted.
pub const KDF_ITERATIONS_MAX: u32 = 64;
/// The most Argon2 lanes accepted.
pub const KDF_PARALLELISM_MAX: u32 = 16;

const KDF_ALGORITHM: &str = "argon2id";
const CIPHER_ALGORITHM: &str = "xchacha20poly1305";
const SALT_SIZE_BYTES: usize = 32;
const NONCE_SIZE_BYTES: usize = 24;
const SECRET_SIZE_BYTES: usize = 32;
const TAG_SIZE_BYTES: usize = 16;
const AAD_DOMAIN: &[u8] = b"consort/keystore";

static SECP: LazyLock<Secp256k1<All>> = LazyLock::new(Secp256k1::new);

/// Why a keystore could not be written or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// The passphrase does not open the keystore, or its encrypted part was altered (the two
    /// cannot be told apart: that is what authenticated encryption means).
    #[error("wrong passphrase for keystore {path} (or its contents were altered)")]
    WrongPassphrase {
        /// The keystore.
        path: PathBuf,
    },
    /// The file is not a keystore this version can read.
    #[error("keystore {path} is corrupt: {reason}")]
    Corrupt {
        /// The keystore.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A keystore written by a newer version.
    #[error("keystore {path} has version {found}; this build reads version {KEYSTORE_VERSION}")]
    UnsupportedVersion {
        /// The keystore.
        path: PathBuf,
        /// Its version.
        found: u64,
    },
    /// Group or others may access the file.
    #[error("keystore {path} has mode {mode:o}; run `chmod 600 {path}`")]
    Permissions {
        /// The keystore.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A keystore already exists where one was to be created.
    #[error("keystore {path} already exists; it is never overwritten")]
    AlreadyExists {
        /// The keystore.
        path: PathBuf,
    },
    /// An empty passphrase.
    #[error("the keystore passphrase must not be empty")]
    EmptyPassphrase,
    /// KDF parameters outside the accepted bounds.
    #[error("argon2 parameters out of bounds: {reason}")]
    KdfParams {
        /// Which bound.
        reason: String,
    },
    /// The operating system refused a file operation or randomness.
    #[error("keystore {path}: cannot {action}: {source}")]
    Io {
        /// The keystore.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// RFC 9106's second recommended setting: 64 MiB, 3 passes, 4 lanes.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 4,
        }
    }
}

impl KdfParams {
    /// The cheapest accepted setting, for tests.
    pub const MINIMUM: KdfParams = KdfParams {
        memory_kib: KDF_MEMORY_MIN_KIB,
        iterations: 1,
        parallelism: 1,
    };

    fn check(&self) -> Result<Params, KeystoreError> {
        let bounds = [
            (
                "memory_kib",
                self.memory_kib,
                KDF_MEMORY_MIN_KIB,
                KDF_MEMORY_MAX_KIB,
            ),
            ("iterations", self.iterations, 1, KDF_ITERATIONS_MAX),
            ("parallelism", self.parallelism, 1, KDF_PARALLELISM_MAX),
        ];
        for (name, value, min, max) in bounds {
            if !(min..=max).contains(&value) {
                return Err(KeystoreError::KdfParams {
                    reason: format!("{name} = {value} is outside {min}..={max}"),
                });
            }
        }
        Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(SECRET_SIZE_BYTES),
        )
        .map_err(|error| KeystoreError::KdfParams {
            reason: error.to_string(),
        })
    }
}

/// A secp256k1 signing key. `Debug` shows only the public key; the secret is erased on drop.
pub struct SigningKey {
    secret: SecretKey,
    public: PublicKey,
}

impl SigningKey {
    /// A new key from the operating system's random source.
    ///
    /// # Errors
    /// [`KeystoreError::Io`] if the OS has no randomness to give.
    pub fn generate() -> Result<Self, KeystoreError> {
        loop {
            let mut bytes = Zeroizing::new([0_u8; SECRET_SIZE_BYTES]);
            fill_random(bytes.as_mut_slice())?;
            // Fails only for 0 or values ≥ the group order: probability ~2^-128.
            if let Some(key) = Self::from_secret_bytes(&bytes) {
                return Ok(key);
            }
        }
    }

    /// The key with secret `bytes`, or `None` if they are not a valid secret (0 or not below
    /// the group order).
    pub fn from_secret_bytes(bytes: &[u8; SECRET_SIZE_BYTES]) -> Option<Self> {
        let secret = SecretKey::from_slice(bytes).ok()?;
        let public = PublicKey::from_secret_key(&SECP, &secret);
        Some(Self { secret, public })
    }

    /// The public key: the validator's entry in the federation.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// An ECDSA signature of `message`: RFC 6979 nonces, low-S (libsecp256k1 always
    /// normalizes) and low-R (at most 71 bytes with the sighash byte).
    pub(crate) fn sign_ecdsa(&self, message: &Message) -> secp256k1::ecdsa::Signature {
        SECP.sign_ecdsa_low_r(message, &self.secret)
    }
}

impl SigningKey {
    /// Proof that this key's holder controls `account` on chain `chain_id`: a compact ECDSA
    /// signature of [`key_possession_message`] (what `register_federation_key` carries).
    pub fn prove_possession(&self, chain_id: u64, account: &[u8; 32]) -> [u8; 64] {
        self.sign_ecdsa(&key_possession_message(chain_id, account))
            .serialize_compact()
    }
}

/// What a federation key signs to prove its holder registers it for `account` on chain
/// `chain_id`: SHA-256d of the tag `consort/federation-key/v1`, the chain id (big-endian) and
/// the account's 32 bytes. The chain id keeps a proof from being replayed on another chain.
pub fn key_possession_message(chain_id: u64, account: &[u8; 32]) -> Message {
    use bitcoin::hashes::{Hash as _, sha256d};
    let mut bytes = Vec::with_capacity(25 + 8 + 32);
    bytes.extend_from_slice(b"consort/federation-key/v1");
    bytes.extend_from_slice(&chain_id.to_be_bytes());
    bytes.extend_from_slice(account);
    Message::from_digest(sha256d::Hash::hash(&bytes).to_byte_array())
}

/// Whether `proof` (compact ECDSA) is `key`'s signature of [`key_possession_message`].
pub fn verify_possession(key: &PublicKey, chain_id: u64, account: &[u8; 32], proof: &[u8]) -> bool {
    let Ok(signature) = secp256k1::ecdsa::Signature::from_compact(proof) else {
        return false;
    };
    SECP.verify_ecdsa(&key_possession_message(chain_id, account), &signature, key)
        .is_ok()
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SigningKey")
            .field("public", &format_args!("{}", self.public))
            .finish_non_exhaustive()
    }
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        self.secret.non_secure_erase();
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    version: u32,
    public_key: String,
    kdf: KdfSection,
    cipher: CipherSection,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfSection {
    algorithm: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CipherSection {
    algorithm: String,
    nonce: String,
    ciphertext: String,
}

/// A keystore file read from disk, still locked.
#[derive(Clone, Debug)]
pub struct Keystore {
    path: PathBuf,
    public_key: PublicKey,
    params: KdfParams,
    salt: [u8; SALT_SIZE_BYTES],
    nonce: [u8; NONCE_SIZE_BYTES],
    ciphertext: Vec<u8>,
}

impl Keystore {
    /// Encrypts `key` under `passphrase` into a new file at `path` (mode 0600).
    ///
    /// # Errors
    /// [`KeystoreError::AlreadyExists`] if `path` exists, [`KeystoreError::EmptyPassphrase`],
    /// [`KeystoreError::KdfParams`], or [`KeystoreError::Io`].
    pub fn create(
        path: &Path,
        key: &SigningKey,
        passphrase: &[u8],
        params: KdfParams,
    ) -> Result<Keystore, KeystoreError> {
        if passphrase.is_empty() {
            return Err(KeystoreError::EmptyPassphrase);
        }
        let mut salt = [0_u8; SALT_SIZE_BYTES];
        let mut nonce = [0_u8; NONCE_SIZE_BYTES];
        fill_random(&mut salt)?;
        fill_random(&mut nonce)?;
        let cipher = cipher(passphrase, &params, &salt)?;
        let aad = associated_data(&key.public, &params, &salt);
        let secret = Zeroizing::new(key.secret.secret_bytes());
        let payload = Payload {
            msg: secret.as_slice(),
            aad: &aad,
        };
        let ciphertext = cipher
            .encrypt(&XNonce::from(nonce), payload)
            .expect("encrypting 32 bytes cannot exceed the cipher's length limit");
        let keystore = Keystore {
            path: path.to_owned(),
            public_key: key.public,
            params,
            salt,
            nonce,
            ciphertext,
        };
        keystore.write_new()?;
        Ok(keystore)
    }

    /// Reads and checks the file at `path` without decrypting it.
    ///
    /// # Errors
    /// [`KeystoreError::Permissions`] if group or others may access it,
    /// [`KeystoreError::UnsupportedVersion`], [`KeystoreError::Corrupt`], or
    /// [`KeystoreError::Io`].
    pub fn open(path: &Path) -> Result<Keystore, KeystoreError> {
        let io = |action| {
            move |source| KeystoreError::Io {
                path: path.to_owned(),
                action,
                source,
            }
        };
        let file = fs::File::open(path).map_err(io("open"))?;
        let mode = file.metadata().map_err(io("stat"))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeystoreError::Permissions {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
        let mut text = String::new();
        file.take(KEYSTORE_FILE_SIZE_MAX_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io("read"))?;
        if text.len() as u64 > KEYSTORE_FILE_SIZE_MAX_BYTES {
            return Err(corrupt(
                path,
                format!("larger than {KEYSTORE_FILE_SIZE_MAX_BYTES} bytes"),
            ));
        }
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Keystore, KeystoreError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|error| corrupt(path, error.to_string()))?;
        let version = value
            .get("version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| corrupt(path, "no numeric \"version\"".into()))?;
        if version != u64::from(KEYSTORE_VERSION) {
            return Err(KeystoreError::UnsupportedVersion {
                path: path.to_owned(),
                found: version,
            });
        }
        let file: FileV1 =
            serde_json::from_value(value).map_err(|error| corrupt(path, error.to_string()))?;
        if file.kdf.algorithm != KDF_ALGORITHM || file.cipher.algorithm != CIPHER_ALGORITHM {
            return Err(corrupt(path, "unknown kdf or cipher algorithm".into()));
        }
        let params = KdfParams {
            memory_kib: file.kdf.memory_kib,
            iterations: file.kdf.iterations,
            parallelism: file.kdf.parallelism,
        };
        params
            .check()
            .map_err(|error| corrupt(path, error.to_string()))?;
        let public_key = decode_hex::<33>(path, "public_key", &file.public_key)?;
        let public_key = PublicKey::from_slice(&public_key)
            .map_err(|error| corrupt(path, format!("public_key: {error}")))?;
        let ciphertext = hex::decode(&file.cipher.ciphertext)
            .map_err(|error| corrupt(path, format!("ciphertext: {error}")))?;
        if ciphertext.len() != SECRET_SIZE_BYTES + TAG_SIZE_BYTES {
            return Err(corrupt(path, "ciphertext is not 48 bytes".into()));
        }
        Ok(Keystore {
            path: path.to_owned(),
            public_key,
            params,
            salt: decode_hex(path, "salt", &file.kdf.salt)?,
            nonce: decode_hex(path, "nonce", &file.cipher.nonce)?,
            ciphertext,
        })
    }

    /// The key's public half, readable without the passphrase.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The KDF parameters the file was sealed with.
    pub fn kdf_params(&self) -> KdfParams {
        self.params
    }

    /// Decrypts the signing key.
    ///
    /// # Errors
    /// [`KeystoreError::WrongPassphrase`] if authentication fails,
    /// [`KeystoreError::Corrupt`] if the decrypted secret does not match the public key.
    pub fn unlock(&self, passphrase: &[u8]) -> Result<SigningKey, KeystoreError> {
        let cipher = cipher(passphrase, &self.params, &self.salt)?;
        let aad = associated_data(&self.public_key, &self.params, &self.salt);
        let payload = Payload {
            msg: &self.ciphertext,
            aad: &aad,
        };
        let secret = Zeroizing::new(cipher.decrypt(&XNonce::from(self.nonce), payload).map_err(
            |_| KeystoreError::WrongPassphrase {
                path: self.path.clone(),
            },
        )?);
        let bytes: &[u8; SECRET_SIZE_BYTES] = secret
            .as_slice()
            .try_into()
            .map_err(|_| corrupt(&self.path, "decrypted secret is not 32 bytes".into()))?;
        let key = SigningKey::from_secret_bytes(bytes)
            .ok_or_else(|| corrupt(&self.path, "decrypted secret is not a valid key".into()))?;
        if key.public != self.public_key {
            return Err(corrupt(
                &self.path,
                "decrypted secret does not match public_key".into(),
            ));
        }
        Ok(key)
    }

    fn to_json(&self) -> String {
        let file = FileV1 {
            version: KEYSTORE_VERSION,
            public_key: hex::encode(self.public_key.serialize()),
            kdf: KdfSection {
                algorithm: KDF_ALGORITHM.into(),
                memory_kib: self.params.memory_kib,
                iterations: self.params.iterations,
                parallelism: self.params.parallelism,
                salt: hex::encode(self.salt),
            },
            cipher: CipherSection {
                algorithm: CIPHER_ALGORITHM.into(),
                nonce: hex::encode(self.nonce),
                ciphertext: hex::encode(&self.ciphertext),
            },
        };
        serde_json::to_string_pretty(&file).expect("the keystore serializes") + "\n"
    }

    /// Writes a 0600 temporary file next to `path`, syncs it, and links it into place only if
    /// nothing is there.
    fn write_new(&self) -> Result<(), KeystoreError> {
        let path = &self.path;
        let io = |action| {
            move |source| KeystoreError::Io {
                path: path.clone(),
                action,
                source,
            }
        };
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let mut temporary = tempfile::Builder::new()
            .prefix(".keystore-")
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(directory)
            .map_err(io("create a temporary file"))?;
        temporary
            .write_all(self.to_json().as_bytes())
            .map_err(io("write"))?;
        temporary.as_file().sync_all().map_err(io("sync"))?;
        temporary.persist_noclobber(path).map_err(|error| {
            if error.error.kind() == std::io::ErrorKind::AlreadyExists {
                KeystoreError::AlreadyExists { path: path.clone() }
            } else {
                io("move into place")(error.error)
            }
        })?;
        if let Ok(directory) = fs::File::open(directory) {
            // Makes the new directory entry durable; a failure here leaves a usable file.
            let _ = directory.sync_all();
        }
        Ok(())
    }
}

fn corrupt(path: &Path, reason: String) -> KeystoreError {
    KeystoreError::Corrupt {
        path: path.to_owned(),
        reason,
    }
}

fn decode_hex<const N: usize>(
    path: &Path,
    field: &str,
    text: &str,
) -> Result<[u8; N], KeystoreError> {
    let bytes = hex::decode(text).map_err(|error| corrupt(path, format!("{field}: {error}")))?;
    bytes
        .try_into()
        .map_err(|_| corrupt(path, format!("{field} is not {N} bytes")))
}

fn fill_random(buffer: &mut [u8]) -> Result<(), KeystoreError> {
    getrandom::fill(buffer).map_err(|error| KeystoreError::Io {
        path: PathBuf::new(),
        action: "read the OS random source",
        source: std::io::Error::other(error.to_string()),
    })
}

/// The cipher keyed by Argon2id(passphrase, salt).
fn cipher(
    passphrase: &[u8],
    params: &KdfParams,
    salt: &[u8; SALT_SIZE_BYTES],
) -> Result<XChaCha20Poly1305, KeystoreError> {
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.check()?);
    let mut key = Zeroizing::new([0_u8; SECRET_SIZE_BYTES]);
    argon2
        .hash_password_into(passphrase, salt, key.as_mut_slice())
        .map_err(|error| KeystoreError::KdfParams {
            reason: error.to_string(),
        })?;
    Ok(XChaCha20Poly1305::new(&(*key).into()))
}

/// Binds every cleartext field to the ciphertext.
fn associated_data(
    public_key: &PublicKey,
    params: &KdfParams,
    salt: &[u8; SALT_SIZE_BYTES],
) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + 4 + 33 + 12 + SALT_SIZE_BYTES);
    aad.extend_from_slice(AAD_DOMAIN);
    aad.extend_from_slice(&KEYSTORE_VERSION.to_le_bytes());
    aad.extend_from_slice(&public_key.serialize());
    aad.extend_from_slice(&params.memory_kib.to_le_bytes());
    aad.extend_from_slice(&params.iterations.to_le_bytes());
    aad.extend_from_slice(&params.parallelism.to_le_bytes());
    aad.extend_from_slice(salt);
    aad
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const PASSPHRASE: &[u8] = b"correct horse battery staple";

    fn created() -> (tempfile::TempDir, PathBuf, SigningKey) {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("validator.json");
        let key = SigningKey::generate().unwrap();
        Keystore::create(&path, &key, PASSPHRASE, KdfParams::MINIMUM).unwrap();
        (directory, path, key)
    }

    fn rewrite(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
        let mut value: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        edit(&mut value);
        fs::write(path, serde_json::to_string(&value).unwrap()).unwrap();
    }

    #[test]
    fn a_created_keystore_unlocks_to_the_same_key_and_is_private() {
        let (_directory, path, key) = created();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let keystore = Keystore::open(&path).unwrap();
        assert_eq!(keystore.public_key(), key.public_key());
        assert_eq!(keystore.kdf_params(), KdfParams::MINIMUM);
        let unlocked = keystore.unlock(PASSPHRASE).unwrap();
        assert_eq!(unlocked.secret, key.secret);
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&hex::encode(key.secret.secret_bytes())));
        assert!(text.contains("\"version\": 1"), "{text}");
    }

    #[test]
    fn a_wrong_passphrase_is_refused() {
        let (_directory, path, _key) = created();
        let error = Keystore::open(&path)
            .unwrap()
            .unlock(b"incorrect horse")
            .unwrap_err();
        assert!(
            matches!(error, KeystoreError::WrongPassphrase { .. }),
            "{error}"
        );
    }

    #[test]
    fn an_existing_keystore_is_never_overwritten() {
        let (_directory, path, key) = created();
        let before = fs::read(&path).unwrap();
        let error = Keystore::create(&path, &key, PASSPHRASE, KdfParams::MINIMUM).unwrap_err();
        assert!(
            matches!(error, KeystoreError::AlreadyExists { .. }),
            "{error}"
        );
        assert_eq!(fs::read(&path).unwrap(), before);
        let leftovers = fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "temporary file left behind");
    }

    #[test]
    fn an_edited_header_fails_authentication() {
        let (_directory, path, _key) = created();
        rewrite(&path, |value| {
            value["kdf"]["iterations"] = 2.into();
        });
        let error = Keystore::open(&path)
            .unwrap()
            .unlock(PASSPHRASE)
            .unwrap_err();
        assert!(
            matches!(error, KeystoreError::WrongPassphrase { .. }),
            "{error}"
        );
        // A swapped public key is caught the same way, before any decryption.
        let (_directory, path, _key) = created();
        let other = SigningKey::generate().unwrap().public_key();
        rewrite(&path, |value| {
            value["public_key"] = hex::encode(other.serialize()).into();
        });
        let error = Keystore::open(&path)
            .unwrap()
            .unlock(PASSPHRASE)
            .unwrap_err();
        assert!(
            matches!(error, KeystoreError::WrongPassphrase { .. }),
            "{error}"
        );
    }

    #[test]
    fn damaged_files_are_corrupt_not_panics() {
        let (_directory, path, _key) = created();
        let edits: [fn(&mut serde_json::Value); 8] = [
            |value| value["cipher"]["nonce"] = "zz".into(),
            |value| value["cipher"]["ciphertext"] = "00".into(),
            |value| value["kdf"]["salt"] = "0011".into(),
            |value| value["kdf"]["memory_kib"] = u32::MAX.into(),
            |value| value["kdf"]["algorithm"] = "scrypt".into(),
            |value| value["public_key"] = "02".into(),
            |value| value["extra"] = 1.into(),
            |value| value["version"] = "1".into(),
        ];
        let original = fs::read(&path).unwrap();
        for (index, edit) in edits.iter().enumerate() {
            fs::write(&path, &original).unwrap();
            rewrite(&path, edit);
            let error = Keystore::open(&path).unwrap_err();
            assert!(
                matches!(error, KeystoreError::Corrupt { .. }),
                "edit {index}: {error}"
            );
        }
        fs::write(&path, b"not json").unwrap();
        assert!(matches!(
            Keystore::open(&path),
            Err(KeystoreError::Corrupt { .. })
        ));
        fs::write(&path, vec![b' '; 20_000]).unwrap();
        assert!(matches!(
            Keystore::open(&path),
            Err(KeystoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_future_version_is_named_as_such() {
        let (_directory, path, _key) = created();
        rewrite(&path, |value| value["version"] = 2.into());
        let error = Keystore::open(&path).unwrap_err();
        assert!(
            matches!(error, KeystoreError::UnsupportedVersion { found: 2, .. }),
            "{error}"
        );
    }

    #[test]
    fn a_readable_keystore_is_refused_until_chmod_600() {
        let (_directory, path, _key) = created();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let error = Keystore::open(&path).unwrap_err();
        assert!(
            matches!(error, KeystoreError::Permissions { mode: 0o644, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("chmod 600"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Keystore::open(&path).is_ok());
    }

    #[test]
    fn weak_parameters_and_empty_passphrases_are_refused_at_creation() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("k.json");
        let key = SigningKey::generate().unwrap();
        let weak = KdfParams {
            memory_kib: 1024,
            ..KdfParams::MINIMUM
        };
        assert!(matches!(
            Keystore::create(&path, &key, PASSPHRASE, weak),
            Err(KeystoreError::KdfParams { .. })
        ));
        assert!(matches!(
            Keystore::create(&path, &key, b"", KdfParams::MINIMUM),
            Err(KeystoreError::EmptyPassphrase)
        ));
        assert!(!path.exists());
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let key = SigningKey::from_secret_bytes(&[0x42; 32]).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("4242"), "{shown}");
        assert!(shown.contains(&key.public_key().to_string()), "{shown}");
        assert!(SigningKey::from_secret_bytes(&[0; 32]).is_none());
    }
}
