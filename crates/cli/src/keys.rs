//! Key files: 32 bytes of OS randomness as an ed25519 private key, stored as hex (mode 0600).

use anyhow::Context as _;
use commonware_cryptography::{Signer as _, ed25519};
use consort_types::{AccountId, hex_serde};
use std::{io::Read as _, path::Path};

/// A fresh private key from the OS's randomness.
pub fn generate() -> anyhow::Result<ed25519::PrivateKey> {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .context("cannot read /dev/urandom")?;
    hex_serde::parse(&hex::encode(seed)).context("32 random bytes are a private key")
}

/// The account a key signs for.
pub fn account_of(key: &ed25519::PrivateKey) -> AccountId {
    AccountId::new(key.public_key())
}

/// Write `key` to `path` (0600), refusing to overwrite.
pub fn write_key(path: &Path, key: &ed25519::PrivateKey) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    std::io::Write::write_all(&mut file, hex_serde::encode(key).as_bytes())?;
    Ok(())
}

/// Create a key file and return its account id.
pub fn new_key_file(path: &Path) -> anyhow::Result<AccountId> {
    let key = generate()?;
    write_key(path, &key)?;
    Ok(account_of(&key))
}
