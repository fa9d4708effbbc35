//! Which file the journal is: a daemon whose journal was deleted or replaced under it would go on
//! writing into an unlinked file that nothing reads and no backup copies. Checked on the breaker's
//! timer and by `/health`.

use std::path::Path;

/// The device and inode of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
}

impl FileIdentity {
    /// The identity of the file at `path` now (`None`: there is none).
    #[must_use]
    pub fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| Self { dev: m.dev(), ino: m.ino() })
    }
}

/// Why the journal at `path` is not the file opened as `opened`, if it is not.
#[must_use]
pub fn journal_moved(path: &Path, opened: Option<FileIdentity>) -> Option<String> {
    let opened = opened?;
    match FileIdentity::of(path) {
        Some(now) if now == opened => None,
        Some(_) => Some(format!("the journal {} was replaced while the daemon runs", path.display())),
        None => Some(format!("the journal {} was deleted while the daemon runs", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_or_replaced_journal_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.db");
        std::fs::write(&p, "x").unwrap();
        let id = FileIdentity::of(&p);
        assert_eq!(journal_moved(&p, id), None);
        std::fs::write(dir.path().join("other"), "y").unwrap();
        std::fs::rename(dir.path().join("other"), &p).unwrap();
        assert!(journal_moved(&p, id).unwrap().contains("replaced"));
        std::fs::remove_file(&p).unwrap();
        assert!(journal_moved(&p, id).unwrap().contains("deleted"));
    }
}
