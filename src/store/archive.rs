//! Archive before prune: rows the journal no longer needs go to one compressed SQLite database per
//! month (`<journal>.archive/YYYY-MM.db.gz`, by the row's own time) before they are deleted.
//!
//! The rows to move are fixed once (temporary id tables), archived month by month (a month's file is
//! opened, appended to with `INSERT OR IGNORE` on each row's identity, compressed to a temporary file, synced
//! and renamed over the old one), and only then deleted from the journal, exactly those ids, in one
//! transaction. A crash at any point leaves every row in the journal, the archive, or both; never in
//! neither, and running again does not duplicate archived rows.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::{Store, StoreError, StoreResult, now_ms};

/// What pruning moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Fills never copied (with their intents and orders), archived then deleted.
    pub fills: usize,
    /// Events.
    pub events: usize,
    /// The monthly archive files written.
    pub files: Vec<PathBuf>,
}

/// What is deleted before a batch of fills: they were chosen a while ago (before the archives were
/// written), so a fill copied since (an orphan adopted, a refusal overturned by our own fill) is
/// kept; then their children (orders and intents reference the fill).
const FILLS_FIRST: [&str; 3] = [
    "DELETE FROM temp.prune_batch WHERE id IN (SELECT f.id FROM main.fills f WHERE f.id IN \
     (SELECT id FROM temp.prune_batch) AND (f.status NOT IN ('rejected', 'withdrawn') OR f.suspect != 0 \
     OR EXISTS (SELECT 1 FROM main.executions e WHERE e.fill_id = f.id)))",
    "DELETE FROM main.orders WHERE fill_id IN (SELECT id FROM temp.prune_batch)",
    "DELETE FROM main.intents WHERE fill_id IN (SELECT id FROM temp.prune_batch)",
];
/// A batch of fills, once [`FILLS_FIRST`] ran.
const FILLS_LAST: &str = "DELETE FROM main.fills WHERE id IN (SELECT id FROM temp.prune_batch)";

/// Ids deleted per transaction (see `delete_in_batches`).
const DELETE_BATCH: usize = 500;

/// Fills nothing reads any more: never copied (refused, withdrawn), not under a reorg check.
const OLD_FILLS: &str = "SELECT id, strftime('%Y-%m', seen_at_ms / 1000, 'unixepoch') FROM main.fills \
    WHERE status IN ('rejected', 'withdrawn') AND suspect = 0 AND seen_at_ms < ?1 \
    AND id NOT IN (SELECT fill_id FROM main.executions)";

impl Store {
    /// Moves fills older than `days` that were never copied (with their intents and orders) and
    /// events older than `days` into the monthly archives under `dir`, then deletes them. Copied
    /// fills, their orders and executions stay: positions, P&L, reports and reconciliation read them.
    ///
    /// # Errors
    /// On a database or file error (nothing is deleted then).
    pub fn prune(&mut self, days: u32, dir: &Path) -> StoreResult<Pruned> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let _ = super::set_private_dir(dir);
        // Owned like the journal too: a first run as root must not leave a directory the
        // service's weekly maintenance cannot write in.
        if let Some(journal) = self.path.as_deref() {
            super::same_owner(dir, journal);
        }
        // Before the rows are chosen: a prune that waited must not act on a choice made before
        // the other one deleted rows (whose ids the journal may since have handed out again).
        let _one_at_a_time = self.lock_archives(dir)?;
        let cutoff = now_ms() - i64::from(days) * 86_400_000;
        self.conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS prune_fills (id INTEGER PRIMARY KEY, month TEXT NOT NULL); \
             CREATE TEMP TABLE IF NOT EXISTS prune_events (id INTEGER PRIMARY KEY, month TEXT NOT NULL); \
             DELETE FROM prune_fills; DELETE FROM prune_events;",
        )?;
        self.conn.execute(&format!("INSERT INTO prune_fills {OLD_FILLS}"), [cutoff])?;
        self.conn.execute(
            "INSERT INTO prune_events SELECT id, strftime('%Y-%m', at_ms / 1000, 'unixepoch') FROM main.events \
             WHERE at_ms < ?1",
            [cutoff],
        )?;
        let months: Vec<String> = {
            let mut st =
                self.conn.prepare("SELECT month FROM prune_fills UNION SELECT month FROM prune_events ORDER BY 1")?;
            st.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
        };
        let mut files = Vec::new();
        for m in &months {
            files.push(self.archive_month(dir, m)?);
        }
        let fills = self.delete_in_batches("prune_fills", &FILLS_FIRST, FILLS_LAST)?;
        let events = self.delete_in_batches(
            "prune_events",
            &[],
            "DELETE FROM main.events WHERE id IN (SELECT id FROM temp.prune_batch)",
        )?;
        self.conn.execute_batch("DROP TABLE prune_fills; DROP TABLE prune_events; DROP TABLE prune_batch;")?;
        Ok(Pruned { fills, events, files })
    }

    /// Deletes the rows whose ids `ids` (a temporary table) holds, [`DELETE_BATCH`] ids per
    /// transaction (taken into `temp.prune_batch`, which `first` and `last` read): each holds the
    /// journal's write lock, which the daemon's writer waits for at most 5 s before its write
    /// fails and trips the breaker; months of rows in one would hold it longer. Every row is
    /// archived already, so a run stopped between batches loses nothing (the next one archives the
    /// rest again, without duplicates). Returns the rows `last` deleted.
    fn delete_in_batches(&mut self, ids: &str, first: &[&str], last: &str) -> StoreResult<usize> {
        self.conn.execute_batch("CREATE TEMP TABLE IF NOT EXISTS prune_batch (id INTEGER PRIMARY KEY)")?;
        let mut deleted = 0;
        loop {
            // Immediate: its first statements on the journal only read, and a read transaction
            // cannot wait for the write lock when it later needs it (SQLITE_BUSY at once, while
            // the daemon writes); taking it first waits as the busy timeout says.
            let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM temp.prune_batch", [])?;
            let taken = tx.execute(
                &format!("INSERT INTO temp.prune_batch SELECT id FROM temp.{ids} ORDER BY id LIMIT {DELETE_BATCH}"),
                [],
            )?;
            tx.execute(&format!("DELETE FROM temp.{ids} WHERE id IN (SELECT id FROM temp.prune_batch)"), [])?;
            for sql in first {
                tx.execute(sql, [])?;
            }
            deleted += tx.execute(last, [])?;
            tx.commit()?;
            if taken == 0 {
                return Ok(deleted);
            }
        }
    }

    /// Waits until no other prune works in `dir` (maintenance run by hand during the weekly cron's):
    /// two would write the same work files, and each delete from the journal rows the other's
    /// archive may have lost. A prune that follows finds those rows archived and gone already.
    fn lock_archives(&self, dir: &Path) -> StoreResult<std::fs::File> {
        let path = dir.join(".prune.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        if let Some(journal) = self.path.as_deref() {
            super::same_owner(&path, journal);
        }
        f.lock().map_err(|e| io(&path, e))?;
        Ok(f)
    }

    /// Appends month `m`'s rows to `dir/m.db.gz`; returns the file.
    fn archive_month(&mut self, dir: &Path, m: &str) -> StoreResult<PathBuf> {
        let gz = dir.join(format!("{m}.db.gz"));
        let work = dir.join(format!(".{m}.db.work"));
        let _ = std::fs::remove_file(&work);
        if gz.exists() {
            gunzip(&gz, &work)?;
        }
        // ATTACH opens with the journal's flags, which do not create files: create it first.
        drop(Connection::open(&work)?);
        let name = work
            .to_str()
            .ok_or_else(|| StoreError::Corrupt { column: "archive path", value: work.display().to_string() })?;
        self.conn.execute("ATTACH DATABASE ?1 AS archive", [name])?;
        let appended = self.append_month(m);
        let detached = self.conn.execute_batch("DETACH DATABASE archive");
        appended?;
        detached?;
        let tmp = dir.join(format!(".{m}.db.gz.tmp"));
        gzip(&work, &tmp)?;
        let _ = super::set_private(&tmp);
        if let Some(journal) = self.path.as_deref() {
            // Owned like the journal: a run as root must not leave files the service's cron cannot update.
            super::same_owner(&tmp, journal);
        }
        std::fs::rename(&tmp, &gz).map_err(|e| io(&gz, e))?;
        // The rename is durable before the rows are deleted from the journal (whose commits are
        // synced): a power cut between them must not lose the rows from both.
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(dir, e))?;
        let _ = std::fs::remove_file(&work);
        Ok(gz)
    }

    fn append_month(&mut self, m: &str) -> StoreResult<()> {
        let tx = self.conn.transaction()?;
        // Row ids are not identities here: SQLite hands a deleted highest id out again. Each row is
        // known by what it is, so a run repeated after a crash adds nothing twice.
        for (t, key) in [
            ("fills", "tx_hash, order_hash, occurrence"),
            ("intents", "fill_id, created_at_ms"),
            ("orders", "order_id"),
            ("events", "id, at_ms, kind, message"),
        ] {
            tx.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS archive.{t} AS SELECT * FROM main.{t} WHERE 0; \
                 CREATE UNIQUE INDEX IF NOT EXISTS archive.{t}_key ON {t} ({key});"
            ))?;
            widen(&tx, t)?;
        }
        for (t, key) in [("fills", "id"), ("intents", "fill_id"), ("orders", "fill_id")] {
            tx.execute(
                &format!(
                    "INSERT OR IGNORE INTO archive.{t} SELECT * FROM main.{t} \
                     WHERE {key} IN (SELECT id FROM prune_fills WHERE month = ?1)"
                ),
                [m],
            )?;
        }
        tx.execute(
            "INSERT OR IGNORE INTO archive.events SELECT * FROM main.events \
             WHERE id IN (SELECT id FROM prune_events WHERE month = ?1)",
            [m],
        )?;
        tx.commit()?;
        Ok(())
    }
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io { path: path.display().to_string(), source }
}

fn gunzip(from: &Path, to: &Path) -> StoreResult<()> {
    let f = std::fs::File::open(from).map_err(|e| io(from, e))?;
    let mut d = flate2::read::GzDecoder::new(f);
    let mut buf = Vec::new();
    d.read_to_end(&mut buf).map_err(|e| io(from, e))?;
    std::fs::write(to, buf).map_err(|e| io(to, e))
}

fn gzip(from: &Path, to: &Path) -> StoreResult<()> {
    let data = std::fs::read(from).map_err(|e| io(from, e))?;
    let f = std::fs::File::create(to).map_err(|e| io(to, e))?;
    let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::best());
    e.write_all(&data).map_err(|err| io(to, err))?;
    let f = e.finish().map_err(|err| io(to, err))?;
    f.sync_all().map_err(|err| io(to, err))
}

/// Gives an archive's table the columns the journal's has gained since the archive was made (a
/// month archived before an upgrade and appended to after it), so `SELECT *` still lines up.
fn widen(tx: &rusqlite::Transaction<'_>, t: &str) -> rusqlite::Result<()> {
    let columns = |schema: &str| -> rusqlite::Result<Vec<String>> {
        let mut st = tx.prepare(&format!("PRAGMA {schema}.table_info({t})"))?;
        let names = st.query_map([], |r| r.get::<_, String>(1))?.collect::<Result<Vec<_>, _>>()?;
        Ok(names)
    };
    let have = columns("archive")?;
    for c in columns("main")?.into_iter().filter(|c| !have.contains(c)) {
        tx.execute_batch(&format!("ALTER TABLE archive.{t} ADD COLUMN \"{c}\""))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More rows than a few batches: every one archived, every one deleted, none twice.
    #[test]
    fn rows_past_several_batches_are_all_archived_then_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let old = 2 * DELETE_BATCH + 3;
        for i in 0..old {
            s.add_event("info", &format!("old {i}")).unwrap();
        }
        s.conn
            .execute("UPDATE events SET at_ms = ?1 WHERE message LIKE 'old %'", [now_ms() - 40 * 86_400_000])
            .unwrap();
        s.add_event("info", "recent").unwrap();
        let archive = dir.path().join("archive");
        let p = s.prune(30, &archive).unwrap();
        assert_eq!((p.events, p.files.len()), (old, 1));
        let count = |s: &Store, like: &str| -> i64 {
            s.conn.query_row("SELECT COUNT(*) FROM events WHERE message LIKE ?1", [like], |r| r.get(0)).unwrap()
        };
        assert_eq!((count(&s, "old %"), count(&s, "recent")), (0, 1));
        let plain = dir.path().join("check.db");
        gunzip(&p.files[0], &plain).unwrap();
        let archived: i64 = Connection::open(&plain)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM events WHERE message LIKE 'old %'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(archived, i64::try_from(old).unwrap());
        assert_eq!(s.prune(30, &archive).unwrap().events, 0, "nothing left to move");
    }

    /// Two prunes at once (maintenance by hand during the weekly cron's): every old row ends in the
    /// archive exactly once and out of the journal.
    #[test]
    fn two_prunes_at_once_archive_every_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.db");
        let s = Store::open(&db).unwrap();
        let old = 3 * DELETE_BATCH;
        for i in 0..old {
            s.add_event("info", &format!("old {i}")).unwrap();
        }
        s.conn.execute("UPDATE events SET at_ms = ?1", [now_ms() - 40 * 86_400_000]).unwrap();
        drop(s);
        let archive = dir.path().join("archive");
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let (db, archive) = (db.clone(), archive.clone());
                std::thread::spawn(move || Store::open(&db).unwrap().prune(30, &archive).unwrap().events)
            })
            .collect();
        let deleted: usize = runs.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(deleted, old, "each row deleted once");
        let plain = dir.path().join("check.db");
        let files: Vec<_> = std::fs::read_dir(&archive)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "gz"))
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        gunzip(&files[0], &plain).unwrap();
        let (rows, distinct): (i64, i64) = Connection::open(&plain)
            .unwrap()
            .query_row("SELECT COUNT(*), COUNT(DISTINCT message) FROM events", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((rows, distinct), (i64::try_from(old).unwrap(), i64::try_from(old).unwrap()));
    }

    /// A fill chosen for pruning and copied before the delete (an orphan adopted meanwhile) stays.
    #[test]
    fn a_fill_copied_after_it_was_chosen_is_not_deleted() {
        use alloy::primitives::B256;
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let fills = [crate::store::tests::fill_in(1, 1, 5), crate::store::tests::fill_in(1, 2, 5)];
        s.journal_range(&fills, (5, B256::repeat_byte(5)), &[(5, B256::repeat_byte(5))]).unwrap();
        s.conn.execute("UPDATE fills SET status = 'withdrawn', seen_at_ms = 0", []).unwrap();
        s.conn
            .execute_batch(&format!(
                "CREATE TEMP TABLE prune_fills (id INTEGER PRIMARY KEY, month TEXT NOT NULL); \
                 INSERT INTO prune_fills {OLD_FILLS_AT_ZERO};"
            ))
            .unwrap();
        let chosen: i64 = s.conn.query_row("SELECT COUNT(*) FROM prune_fills", [], |r| r.get(0)).unwrap();
        assert_eq!(chosen, 2);
        // Adopted after it was chosen: copied now.
        s.conn.execute("UPDATE fills SET status = 'pending' WHERE id = (SELECT MAX(id) FROM fills)", []).unwrap();
        assert_eq!(s.delete_in_batches("prune_fills", &FILLS_FIRST, FILLS_LAST).unwrap(), 1);
        let left: Vec<String> = s
            .conn
            .prepare("SELECT status FROM fills")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(left, ["pending"]);
    }

    /// [`OLD_FILLS`] for every fill seen before now.
    const OLD_FILLS_AT_ZERO: &str = "SELECT id, '1970-01' FROM main.fills WHERE status IN ('rejected', 'withdrawn')";
}
