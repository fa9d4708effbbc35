//! WAL checkpoints off the writer thread.
//!
//! SQLite checkpoints a WAL journal from whichever connection commits past 1,000 pages, and a
//! checkpoint syncs the database file: on a virtual disk that is ten milliseconds and more inside
//! one commit, every second or two under load, and every copy waiting on that commit waits with it
//! (measured: a paper copy's p99 of 10–11 ms at 100 fills/s, its p50 1–2 ms). The writer's own
//! checkpoints are turned off and a second connection checkpoints in the background instead.
//! `PASSIVE` never blocks the writer: it copies what it can and leaves the rest for next time.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use super::{Store, StoreResult};

/// How often the background connection checkpoints.
const EVERY: Duration = Duration::from_millis(500);

/// Dropped when the writer stops: the checkpointer then checkpoints once more and ends.
#[derive(Debug)]
pub struct Checkpointer(#[allow(dead_code)] Sender<()>);

impl Store {
    /// Moves checkpoints of a file journal to a background thread. An in-memory journal, or one
    /// whose second connection cannot be opened, keeps SQLite's own checkpoints (`None`).
    ///
    /// # Errors
    /// When the writer's checkpoints cannot be turned off (nothing is changed then).
    pub fn checkpoint_in_background(&mut self) -> StoreResult<Option<Checkpointer>> {
        let Some(path) = self.path.clone() else { return Ok(None) };
        let conn = match rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(cause = %e, "the journal checkpoints on its writer: a second connection failed");
                return Ok(None);
            }
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new().name("checkpoint".into()).spawn(move || run(&conn, &rx));
        if let Err(e) = spawned {
            tracing::warn!(cause = %e, "the journal checkpoints on its writer: no thread for it");
            return Ok(None);
        }
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(Some(Checkpointer(tx)))
    }
}

fn run(conn: &rusqlite::Connection, stop: &Receiver<()>) {
    loop {
        let last = matches!(stop.recv_timeout(EVERY), Err(RecvTimeoutError::Disconnected));
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(cause = %e, "journal checkpoint failed; retrying");
        }
        if last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_frames(path: &std::path::Path) -> u64 {
        std::fs::metadata(path.with_extension("db-wal")).map_or(0, |m| m.len())
    }

    #[test]
    fn the_writer_no_longer_checkpoints_and_the_background_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let mut store = Store::open(&path).unwrap();
        let stop = store.checkpoint_in_background().unwrap().expect("a file journal checkpoints in the background");
        let auto: i64 = store.conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0)).unwrap();
        assert_eq!(auto, 0, "the writer's own checkpoints are off");
        store.conn.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        for _ in 0..50 {
            store.conn.execute("INSERT INTO t VALUES (zeroblob(65536))", []).unwrap();
        }
        assert!(wal_frames(&path) > 0);
        drop(stop);
        // The checkpointer's last run copies every frame; the database file then holds the rows.
        let want = 50 * 65_536;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() < want {
            assert!(std::time::Instant::now() < deadline, "the background checkpoint never ran");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
