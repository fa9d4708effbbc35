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

/// The checkpoint thread's nice value, the lowest: a fill's copy then preempts a checkpoint at
/// once instead of queueing behind it on the same core. Load harness, p99 of 2,000 paper copies at
/// 100 fills/s (BENCHMARKS.md, seventh round): at the same priority 0.91–1.67 ms (1 run of 9 under
/// 1 ms); at nice 10 1.07 and 1.10 ms; at nice 19 0.85–1.24 ms (6 runs of 7 under 1 ms). Even at
/// 19 it keeps a small share of a busy core, so a long backfill delays checkpoints (the WAL grows
/// meanwhile) but never stops them; they catch up once the backfill ends.
const NICE: i32 = 19;

/// Lowers the calling thread's priority to [`NICE`]. Linux's nice value is per thread; elsewhere
/// `setpriority` would lower the whole process, so this does nothing there.
#[allow(unsafe_code)]
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority only reads its arguments; `who` = 0 is the calling thread on Linux.
        let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
        if r != 0 {
            tracing::debug!(cause = %std::io::Error::last_os_error(), "the checkpoint thread keeps its priority");
        }
    }
}

fn run(conn: &rusqlite::Connection, stop: &Receiver<()>) {
    lower_priority();
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

    /// The nice value of this process's thread named `name`, from /proc (field 19 of its stat).
    #[cfg(target_os = "linux")]
    fn nice_of(name: &str) -> Option<i32> {
        std::fs::read_dir("/proc/self/task").ok()?.flatten().find_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            if comm.trim() != name {
                return None;
            }
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            // After the command's closing parenthesis: state is field 3, nice field 19.
            stat.rsplit_once(')')?.1.split_whitespace().nth(16)?.parse().ok()
        })
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_checkpoint_thread_runs_below_the_trading_threads() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("journal.db")).unwrap();
        let _stop = store.checkpoint_in_background().unwrap().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match nice_of("checkpoint") {
                Some(n) if n == NICE => break,
                seen => assert!(std::time::Instant::now() < deadline, "checkpoint thread's nice: {seen:?}"),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
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
