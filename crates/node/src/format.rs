//! The storage format of a node's data directory, recorded beside its storage.
//!
//! What a node keeps on disk (the state database's value size and kind, the encodings of the
//! records in it) changes between versions of Consort without changing the names it is kept
//! under. A node that opened another format's storage would read garbage or diverge from its
//! peers, so the format is written once, when the storage is made, and checked at every start.

use std::path::Path;

/// The storage format this build writes and reads. Raise it whenever what is on disk changes
/// meaning: the state database (its kind, [`consort_state::STATE_VALUE_SIZE`]), the
/// encoding of a record kept in state, or a journal's layout.
///
/// 1: 128-byte values in an unordered current QMDB; orders encode their changing fields
/// first.
pub const STORAGE_FORMAT: u32 = 1;

/// The file, in the data directory, that names the storage format.
pub const FORMAT_FILE: &str = "storage-format";

/// Check that `data_dir`'s storage is of [`STORAGE_FORMAT`], recording the format if the
/// storage is new.
///
/// # Errors
/// If the storage was made by a build of another format (or one from before formats were
/// recorded), or the marker cannot be read or written.
pub fn check(data_dir: &Path) -> anyhow::Result<()> {
    let marker = data_dir.join(FORMAT_FILE);
    let storage = data_dir.join("storage");
    let fresh = || {
        record(data_dir, &marker).map_err(|e| {
            anyhow::anyhow!(
                "cannot record the storage format in {}: {e}",
                marker.display()
            )
        })
    };
    let found = match std::fs::read_to_string(&marker) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let empty = match std::fs::read_dir(&storage) {
                Ok(mut entries) => entries.next().is_none(),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => true,
                Err(error) => {
                    anyhow::bail!("cannot read {}: {error}", storage.display())
                }
            };
            if empty {
                return fresh();
            }
            anyhow::bail!(
                "{} holds storage from a Consort build older than storage formats (this build \
                 reads format {STORAGE_FORMAT}); move that directory away and start the node \
                 on an empty one: it syncs the chain from its peers. (Storage made by a build \
                 of commit 3c3aaa8, the last before the marker, is format 1: `echo 1 > {}` \
                 adopts it.)",
                storage.display(),
                marker.display()
            );
        }
        Err(error) => anyhow::bail!("cannot read {}: {error}", marker.display()),
    };
    match found.trim().parse::<u32>() {
        Ok(STORAGE_FORMAT) => Ok(()),
        Ok(other) => anyhow::bail!(
            "{} holds storage of format {other}; this build reads format {STORAGE_FORMAT}. Run \
             the build that made it, or move the directory away and start the node on an empty \
             one: it syncs the chain from its peers",
            data_dir.display()
        ),
        Err(_) => anyhow::bail!(
            "{} does not name a storage format (it holds {:?}); restore it, or move the data \
             directory away and start the node on an empty one",
            marker.display(),
            found.trim()
        ),
    }
}

/// Write the marker durably: a temporary file synced, renamed into place, the directory
/// synced, so a crash leaves either no marker (beside empty storage: made again) or a whole one.
fn record(data_dir: &Path, marker: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    std::fs::create_dir_all(data_dir)?;
    let temporary = data_dir.join(format!("{FORMAT_FILE}.new"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(format!("{STORAGE_FORMAT}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, marker)?;
    std::fs::File::open(data_dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_directory_records_the_format_and_opens_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("node");
        check(&data).expect("a new directory");
        let text = std::fs::read_to_string(data.join(FORMAT_FILE)).expect("marker");
        assert_eq!(text.trim(), STORAGE_FORMAT.to_string());
        std::fs::create_dir_all(data.join("storage/partition")).expect("storage");
        check(&data).expect("the same format opens");
    }

    #[test]
    fn storage_of_another_format_or_of_none_is_refused_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Storage from before formats were recorded.
        std::fs::create_dir_all(dir.path().join("storage/partition")).expect("storage");
        let error = check(dir.path()).expect_err("no marker beside storage");
        assert!(
            error.to_string().contains("older than storage formats"),
            "{error}"
        );
        assert!(!dir.path().join(FORMAT_FILE).exists(), "nothing written");
        // Another format.
        let other = STORAGE_FORMAT + 1;
        std::fs::write(dir.path().join(FORMAT_FILE), format!("{other}\n")).expect("write");
        let error = check(dir.path()).expect_err("another format");
        assert!(
            error.to_string().contains(&format!("format {other}")),
            "{error}"
        );
        // Garbage.
        std::fs::write(dir.path().join(FORMAT_FILE), "latest").expect("write");
        let error = check(dir.path()).expect_err("garbage");
        assert!(
            error.to_string().contains("does not name a storage format"),
            "{error}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FORMAT_FILE)).expect("read"),
            "latest",
            "the marker is left as found"
        );
    }
}
