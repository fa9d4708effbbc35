//! Online backup (SQLite's backup API, safe while the daemon writes), integrity checks, pruning and
//! VACUUM that refuses to wait on a busy database.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{Store, StoreError, StoreResult};

/// Copies the journal at `journal` to `out` as it is, never migrated (a daemon of an older
/// polycopy may run on it), with SQLite's online backup API, then checks the copy.
///
/// # Errors
/// When the journal cannot be read, or the copy cannot be written or fails its check.
pub fn backup_file(journal: &Path, out: &Path) -> StoreResult<()> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let src = Connection::open_with_flags(journal, flags)?;
    src.busy_timeout(Duration::from_secs(5))?;
    let mut dst = Connection::open(out)?;
    {
        let b = rusqlite::backup::Backup::new(&src, &mut dst)?;
        copy_all(&b)?;
    }
    let ok: String = dst.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if ok != "ok" {
        return Err(StoreError::Corrupt { column: "backup integrity_check", value: ok });
    }
    Ok(())
}

impl Store {
    /// Runs `ANALYZE` and then `VACUUM` without waiting for locks: returns `Ok(false)` when another
    /// connection (the daemon) is writing, rather than blocking it.
    ///
    /// # Errors
    /// On a database error other than busy.
    pub fn vacuum_if_idle(&self) -> StoreResult<bool> {
        self.conn.execute_batch("ANALYZE")?;
        self.conn.busy_timeout(Duration::ZERO)?;
        let r = self.conn.execute_batch("VACUUM");
        self.conn.busy_timeout(Duration::from_secs(5))?;
        match r {
            Ok(()) => Ok(true),
            Err(e) => {
                let e = StoreError::from(e);
                if e.is_busy() { Ok(false) } else { Err(e) }
            }
        }
    }
}

/// Attempts at a copy the source's lock refuses before the backup gives up.
const BACKUP_ATTEMPTS: u32 = 100;

/// Copies every page in one step. A copy made in small steps starts again whenever another
/// connection writes between two of them, and the daemon writes every poll: a journal big enough
/// to need more steps than fit between two polls would never finish. One step reads a single
/// snapshot; in WAL mode the daemon's writes go on meanwhile.
fn copy_all(b: &rusqlite::backup::Backup<'_, '_>) -> StoreResult<()> {
    use rusqlite::backup::StepResult;
    for _ in 0..BACKUP_ATTEMPTS {
        match b.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More | StepResult::Busy | StepResult::Locked => std::thread::sleep(Duration::from_millis(50)),
            _ => {}
        }
    }
    Err(StoreError::NotCommitted(format!("the backup could not read the journal in {BACKUP_ATTEMPTS} attempts")))
}

/// Checks any SQLite file without creating or migrating it: `Ok(Ok(()))` when sound and a polycopy
/// journal, `Ok(Err(problem))` otherwise.
///
/// # Errors
/// When the file cannot be opened at all.
pub fn check_file(path: &Path, quick: bool) -> StoreResult<Result<(), String>> {
    if !path.exists() {
        return Ok(Err(format!("{} does not exist", path.display())));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let pragma = if quick { "PRAGMA quick_check" } else { "PRAGMA integrity_check" };
    let verdict = match conn.query_row(pragma, [], |r| r.get::<_, String>(0)) {
        Ok(v) => v,
        Err(e) => return Ok(Err(format!("not a readable SQLite database: {e}"))),
    };
    if verdict != "ok" {
        return Ok(Err(format!("integrity check failed: {verdict}")));
    }
    let is_journal: bool = conn
        .query_row("SELECT COUNT(*) = 1 FROM sqlite_master WHERE type = 'table' AND name = 'fills'", [], |r| r.get(0))
        .unwrap_or(false);
    Ok(if is_journal { Ok(()) } else { Err("a sound SQLite file, but not a polycopy journal".into()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A journal of thousands of pages backed up while another connection writes all the time (the
    /// daemon, every poll): the copy finishes, and holds what was there when it began.
    #[test]
    fn a_backup_finishes_while_another_connection_keeps_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let store = Store::open(&path).unwrap();
        store.conn.execute_batch("CREATE TABLE filler (b BLOB); BEGIN;").unwrap();
        for _ in 0..4_000 {
            store.conn.execute("INSERT INTO filler VALUES (zeroblob(2000))", []).unwrap();
        }
        store.conn.execute_batch("COMMIT").unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let writes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let writer = {
            let (stop, writes, path) = (stop.clone(), writes.clone(), path.clone());
            std::thread::spawn(move || {
                let c = Connection::open(&path).unwrap();
                c.busy_timeout(Duration::from_secs(5)).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    c.execute("INSERT INTO events (at_ms, kind, message) VALUES (0, 'x', 'y')", []).unwrap();
                    writes.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        // The writer is under way before the copy starts.
        while writes.load(Ordering::Relaxed) < 10 {
            std::thread::yield_now();
        }
        let out = dir.path().join("copy.db");
        // What `polycopy backup` runs: its own read-only connection beside the writers.
        let r = backup_file(&path, &out);
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        r.unwrap();
        let copy = Connection::open(&out).unwrap();
        let n: i64 = copy.query_row("SELECT COUNT(*) FROM filler", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 4_000);
    }
}
