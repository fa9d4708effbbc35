//! Online backup (SQLite's backup API, safe while the daemon writes), integrity checks, pruning and
//! VACUUM that refuses to wait on a busy database.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{Store, StoreError, StoreResult};

impl Store {
    /// Copies the journal to `out` with SQLite's online backup API, then checks the copy.
    ///
    /// # Errors
    /// When the copy cannot be written or fails its integrity check.
    pub fn backup_to(&self, out: &Path) -> StoreResult<()> {
        let mut dst = Connection::open(out)?;
        {
            let b = rusqlite::backup::Backup::new(&self.conn, &mut dst)?;
            // Small steps with pauses: the daemon keeps writing while the copy runs.
            b.run_to_completion(256, Duration::from_millis(5), None)?;
        }
        let ok: String = dst.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if ok != "ok" {
            return Err(StoreError::Corrupt { column: "backup integrity_check", value: ok });
        }
        Ok(())
    }

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
