//! Online backup (SQLite's backup API, safe while the daemon writes), integrity checks, pruning and
//! VACUUM that refuses to wait on a busy database.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{Store, StoreError, StoreResult, now_ms};

/// What pruning removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Fills never copied (with their intents and orders), archived then deleted.
    pub fills: usize,
    /// Events.
    pub events: usize,
}

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

    /// Moves old rows that nothing reads any more into the archive database `archive` (created when
    /// missing, mode 0600), then deletes them, in one transaction: fills older than `days` that were
    /// never copied (refused, stale, withdrawn) with their intents and orders, and events older than
    /// `days`. Copied fills, their orders and executions stay: positions, P&L replays, reports and
    /// reconciliation read them, and they are one row per copy.
    ///
    /// # Errors
    /// On a database error.
    pub fn prune(&mut self, days: u32, archive: &Path) -> StoreResult<Pruned> {
        let cutoff = now_ms() - i64::from(days) * 86_400_000;
        let name = archive
            .to_str()
            .ok_or_else(|| StoreError::Corrupt { column: "archive path", value: archive.display().to_string() })?;
        // ATTACH opens with the journal's flags, which do not create files: create it first.
        drop(Connection::open(archive)?);
        self.conn.execute("ATTACH DATABASE ?1 AS archive", [name])?;
        let _ = super::set_private(archive);
        // Owned like the journal: run once as root, the archive must stay writable for the service
        // user's weekly cron job.
        if let Some(journal) = self.path.as_deref() {
            super::same_owner(archive, journal);
        }
        let result = self.archive_and_delete(cutoff);
        let detached = self.conn.execute_batch("DETACH DATABASE archive");
        let pruned = result?;
        detached?;
        Ok(pruned)
    }

    fn archive_and_delete(&mut self, cutoff: i64) -> StoreResult<Pruned> {
        let tx = self.conn.transaction()?;
        for t in ["fills", "intents", "orders", "events"] {
            tx.execute_batch(&format!("CREATE TABLE IF NOT EXISTS archive.{t} AS SELECT * FROM main.{t} WHERE 0"))?;
        }
        let old = "SELECT id FROM main.fills WHERE status IN ('rejected', 'withdrawn') AND suspect = 0 \
                   AND seen_at_ms < ?1 AND id NOT IN (SELECT fill_id FROM main.executions)";
        for (table, key) in [("fills", "id"), ("intents", "fill_id"), ("orders", "fill_id")] {
            tx.execute(
                &format!("INSERT INTO archive.{table} SELECT * FROM main.{table} WHERE {key} IN ({old})"),
                [cutoff],
            )?;
        }
        tx.execute("INSERT INTO archive.events SELECT * FROM main.events WHERE at_ms < ?1", [cutoff])?;
        // Children first: orders and intents reference the fill.
        tx.execute(&format!("DELETE FROM main.orders WHERE fill_id IN ({old})"), [cutoff])?;
        tx.execute(&format!("DELETE FROM main.intents WHERE fill_id IN ({old})"), [cutoff])?;
        let fills = tx.execute(&format!("DELETE FROM main.fills WHERE id IN ({old})"), [cutoff])?;
        let events = tx.execute("DELETE FROM main.events WHERE at_ms < ?1", [cutoff])?;
        tx.commit()?;
        Ok(Pruned { fills, events })
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
