//! One daemon per journal: an exclusive lock on `<journal>.lock`, held for the daemon's life and
//! naming its process id. Two daemons on one journal would each check the caps against their own
//! memory and exceed them together; the second one is refused before it touches anything.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file of a journal.
#[must_use]
pub fn lock_path(journal: &Path) -> PathBuf {
    let mut p = journal.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("another polycopy daemon{} is running on the journal {journal}: stop it first", .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Held {
        /// Its process id, when it wrote one.
        pid: Option<u32>,
        /// The journal.
        journal: String,
    },
    /// The lock file could not be opened.
    #[error("cannot lock {path}: {cause}")]
    Io {
        /// The lock file.
        path: String,
        /// Why.
        cause: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process dies, however it dies).
#[derive(Debug)]
pub struct JournalLock {
    _file: File,
    /// The journal file itself, locked too once it exists: a symlink or another path to the same
    /// file, or a deleted lock file, must not let a second daemon in.
    _journal: Option<File>,
}

fn open(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)
}

fn read_pid(f: &mut File) -> Option<u32> {
    let mut s = String::new();
    f.rewind().ok()?;
    f.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

impl JournalLock {
    /// Takes the lock of `journal` for this process.
    ///
    /// # Errors
    /// [`LockError::Held`] when another daemon runs on it.
    pub fn acquire(journal: &Path) -> Result<Self, LockError> {
        let path = lock_path(journal);
        let io = |cause| LockError::Io { path: path.display().to_string(), cause };
        let mut f = open(&path).map_err(io)?;
        match f.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held { pid: read_pid(&mut f), journal: journal.display().to_string() });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let _ = super::set_private(&path);
        f.set_len(0).map_err(io)?;
        f.rewind().map_err(io)?;
        writeln!(f, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: f, _journal: None })
    }

    /// Also locks the journal file itself (its inode, whatever path leads to it). SQLite's own
    /// locks are of another kind (fcntl), so this never gets in its way.
    ///
    /// # Errors
    /// [`LockError::Held`] when another daemon holds the file through another path.
    pub fn lock_file(&mut self, journal: &Path) -> Result<(), LockError> {
        let io = |cause| LockError::Io { path: journal.display().to_string(), cause };
        let f = File::open(journal).map_err(io)?;
        match f.try_lock() {
            Ok(()) => {
                self._journal = Some(f);
                Ok(())
            }
            Err(TryLockError::WouldBlock) => Err(LockError::Held { pid: None, journal: journal.display().to_string() }),
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

/// The process id of the daemon holding the lock of `journal`, if one does (`Some(None)`: held, no
/// pid written). Never creates the lock file.
#[must_use]
pub fn holder(journal: &Path) -> Option<Option<u32>> {
    let mut f = File::open(lock_path(journal)).ok()?;
    match f.try_lock_shared() {
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => Some(read_pid(&mut f)),
        Err(TryLockError::Error(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("j.db");
        assert_eq!(holder(&j), None);
        let first = JournalLock::acquire(&j).unwrap();
        // flock locks belong to the open file: a second open in this process conflicts like another
        // process would.
        match JournalLock::acquire(&j) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("{other:?}"),
        }
        assert_eq!(holder(&j), Some(Some(std::process::id())));
        drop(first);
        assert_eq!(holder(&j), None);
        assert!(JournalLock::acquire(&j).is_ok());
    }
}
