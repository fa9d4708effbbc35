//! The SQLite journal: the single source of truth for fills, intents, executions, positions, the
//! chain checkpoint and the breaker. WAL mode with `synchronous=NORMAL` survives a process kill;
//! live trading syncs every commit (`FULL`), so a signed order that left survives a power loss too.
//!
//! Only the store actor writes while the daemon runs; the CLI opens its own connection (WAL allows
//! readers beside the writer, and the few CLI writes, halt and resume, are single statements).

mod approvals;
mod archive;
pub mod batch;
mod book;
mod cancels;
mod checkpoint;
mod correction;
mod fill_status;
pub mod identity;
mod journal;
pub mod lock;
mod maintenance;
mod markets;
mod operator;
mod ops;
mod orders;
pub mod other_journal;
mod own_fills;
mod pasted;
mod quality;
mod queries;
mod ranges;
mod reconcile;
mod recovery;
mod redemptions;
mod restate;
mod schema;
mod settlement;
pub mod sightings;
mod vet_cache;

use std::path::Path;

use alloy::primitives::{Address, B256, U256};

pub use approvals::SentApproval;
pub use archive::Pruned;
pub use cancels::OwedCancel;
pub use correction::Correction;
pub use fill_status::FillStatus;
pub use journal::{FillStanding, PaperBooking, PendingFill};
pub use maintenance::{backup_file, check_file};
pub use operator::{FillOutcome, PausedMarket};
pub use ops::{ExecRow, FeeRow, FillCounts, HeldClass, HeldMessage, Holding, Resolution};
pub use orders::{OrderHealth, OrderRow, OrderStatus, Unsettled};
pub use own_fills::{ForgottenFee, OwnBooking, OwnSettled, OwnSettlement};
pub use quality::TargetQuality;
pub use queries::{PositionRow, StatusReport, TradeRow};
pub use ranges::JournalOutcome;
pub use ranges::Rewound;
pub use reconcile::TokenState;
pub use redemptions::{RedeemStatus, RedemptionRow, Resolved};
pub use settlement::{SettlementChange, SettlementStep};
pub use sightings::{ActOnSight, DetectionStats, LeftToBlock, Orphan};
pub use vet_cache::Coverage;

/// Errors from the journal.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file or its directory could not be prepared.
    #[error("cannot prepare database file {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a sound SQLite database (truncated, overwritten, or not a journal at all).
    #[error(
        "the journal {path} is damaged or is not a polycopy journal ({cause}). Nothing was changed. \
         Restore the newest backup with scripts/restore.sh (RUNBOOK.md, \"Journal damaged\") and keep \
         the damaged file for inspection"
    )]
    Damaged {
        /// The file.
        path: String,
        /// What SQLite said.
        cause: String,
    },
    /// The journal was written by a newer polycopy, whose schema this binary does not know: run on
    /// it, this binary would ignore what the newer one records (a rollback by hand after an update).
    #[error(
        "the journal {path} was written by a newer polycopy (schema {found}; this binary knows {known}). \
         Nothing was changed. Run the newer binary, or restore the backup taken before the update with \
         scripts/restore.sh, which halts it (RUNBOOK.md, \"Update\")"
    )]
    NewerSchema {
        /// The file.
        path: String,
        /// Its schema version.
        found: usize,
        /// The newest this binary knows.
        known: usize,
    },
    /// A command of a newer polycopy would migrate a journal an older daemon still runs on (the
    /// binary was swapped under it): that daemon would then fail on the changed tables.
    #[error(
        "the journal {path} has schema {found}, this polycopy {known}, and a daemon{pid} still runs on it: \
         a command migrating it would break that daemon. Restart it with this binary (it migrates the \
         journal as it starts: systemctl restart <its unit>), then run this command again"
    )]
    OlderSchemaInUse {
        /// The file.
        path: String,
        /// Its schema version.
        found: usize,
        /// The newest this binary knows.
        known: usize,
        /// " (pid N)", or empty.
        pid: String,
    },
    /// The batch this write was part of did not commit: the write did not happen.
    #[error("{0}")]
    NotCommitted(String),
    /// The journal's writer thread is gone: nothing can be journaled.
    #[error("the journal writer stopped")]
    WriterGone,
    /// A reconcile correction was computed against a position that has changed since: not booked.
    #[error(
        "the position in {token} is {now} shares, not the {compared} shares reconcile compared with the chain: \
         it changed since (a copy was booked meanwhile). Nothing was changed: run reconcile again"
    )]
    PositionMoved {
        /// The token.
        token: String,
        /// What reconcile read.
        compared: crate::domain::Shares,
        /// What the journal holds now.
        now: crate::domain::Shares,
    },
    /// A stored value did not parse back (the file was edited by hand or is corrupt).
    #[error("corrupt value in column {column}: {value:?}")]
    Corrupt {
        /// Where.
        column: &'static str,
        /// What.
        value: String,
    },
}

impl StoreError {
    /// This error, as [`StoreError::Damaged`] when SQLite says the file is not a sound database.
    #[must_use]
    pub fn damaged_at(self, path: &Path) -> Self {
        match &self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) =>
            {
                Self::Damaged { path: path.display().to_string(), cause: self.to_string() }
            }
            _ => self,
        }
    }

    /// True when another connection holds the lock (the daemon is writing): retry later.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
    }
}

/// Result alias for the store.
pub type StoreResult<T> = Result<T, StoreError>;

/// An open journal.
#[derive(Debug)]
pub struct Store {
    conn: rusqlite::Connection,
    /// The journal file (None for an in-memory journal).
    path: Option<std::path::PathBuf>,
    /// The UTC hour the trading day starts at (`risk.day_starts_at_hour`): "today" in what the
    /// journal reports is the day the daily loss limit counts.
    day_starts_at_hour: u32,
}

impl Store {
    /// Opens (creating and migrating) the journal at `path`, with mode 0600.
    ///
    /// # Errors
    /// When the file cannot be created, opened or migrated.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let io = |source| StoreError::Io { path: path.display().to_string(), source };
        refuse_empty(path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let conn = rusqlite::Connection::open(path)?;
        set_private(path).map_err(io)?;
        Self::configure(conn, path)
    }

    /// Opens an existing journal (migrating it if needed); never creates one. For the commands that
    /// only read or control: a missing file is an error, not a new empty journal.
    ///
    /// # Errors
    /// When the file does not exist or cannot be opened or migrated.
    pub fn open_existing(path: &Path) -> StoreResult<Self> {
        Self::open_existing_as(path, false)
    }

    /// [`Store::open_existing`] for a halt, which must be stored even in a journal an older daemon
    /// runs on (migrating it may break that daemon, which then stops trading as well).
    ///
    /// # Errors
    /// As [`Store::open_existing`], never [`StoreError::OlderSchemaInUse`].
    pub fn open_existing_for_halt(path: &Path) -> StoreResult<Self> {
        Self::open_existing_as(path, true)
    }

    fn open_existing_as(path: &Path, halting: bool) -> StoreResult<Self> {
        use rusqlite::OpenFlags;
        refuse_empty(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = rusqlite::Connection::open_with_flags(path, flags)?;
        let (found, known) = schema::versions(&conn).map_err(|e| StoreError::from(e).damaged_at(path))?;
        if found < known
            && !halting
            && let Some(pid) = lock::holder(path)
        {
            let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
            return Err(StoreError::OlderSchemaInUse { path: path.display().to_string(), found, known, pid });
        }
        Self::configure(conn, path)
    }

    fn configure(conn: rusqlite::Connection, path: &Path) -> StoreResult<Self> {
        Self::prepare(conn, path).map_err(|e| e.damaged_at(path))
    }

    fn prepare(conn: rusqlite::Connection, path: &Path) -> StoreResult<Self> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // A job's savepoint keeps the pages it changes for a rollback; on a file, past 64 KiB, that
        // doubled the bytes the writer wrote (BENCHMARKS.md, sixth round). Rollback data only: the
        // WAL, and so what a crash keeps, is the same.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Every statement of a fill's life stays prepared.
        conn.set_prepared_statement_cache_capacity(64);
        let (found, known) = schema::versions(&conn)?;
        if found > known {
            return Err(StoreError::NewerSchema { path: path.display().to_string(), found, known });
        }
        schema::migrate(&conn)?;
        Ok(Self { conn, path: Some(path.to_owned()), day_starts_at_hour: 0 })
    }

    /// The journal with its trading day starting at `hour` UTC (0 unless set: the UTC day).
    #[must_use]
    pub const fn with_trading_day(mut self, hour: u32) -> Self {
        self.day_starts_at_hour = hour;
        self
    }

    /// Start (unix ms) of the trading day containing `now_ms`.
    #[must_use]
    pub fn trading_day_start(&self, now_ms: i64) -> i64 {
        crate::risk::day::day_start(now_ms, self.day_starts_at_hour)
    }

    /// Syncs every commit to disk (`synchronous=FULL`), for live trading. WAL with `NORMAL`
    /// survives a killed process but may lose the last commits to a power loss or a kernel crash;
    /// a signed order journaled and sent, then lost that way, would be copied and signed again
    /// after the reboot: a second real order. It costs one fsync per commit (about 0.15 ms here).
    /// Paper trading keeps `NORMAL`: nothing leaves, and what a power loss takes back (fills, paper
    /// executions and the checkpoint, together) is read and simulated again.
    ///
    /// # Errors
    /// On a database error.
    pub fn sync_every_commit(&self) -> StoreResult<()> {
        Ok(self.conn.pragma_update(None, "synchronous", "FULL")?)
    }

    /// How commits are synced: SQLite's `synchronous` level (1 `NORMAL`, 2 `FULL`).
    ///
    /// # Errors
    /// On a database error.
    pub fn synchronous(&self) -> StoreResult<i64> {
        Ok(self.conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?)
    }

    /// Sets how long a statement waits for another connection's lock.
    ///
    /// # Errors
    /// On a database error.
    pub fn set_busy_timeout(&self, d: std::time::Duration) -> StoreResult<()> {
        Ok(self.conn.busy_timeout(d)?)
    }

    /// Runs `PRAGMA quick_check` (a few seconds even on a large journal): the daemon refuses to
    /// start on a damaged file instead of finding out at its first write.
    ///
    /// # Errors
    /// [`StoreError::Damaged`] naming the file and the way out.
    pub fn quick_check(&self) -> StoreResult<()> {
        let path = self.path.as_ref().map_or_else(|| ":memory:".to_owned(), |p| p.display().to_string());
        let r: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| StoreError::Damaged { path: path.clone(), cause: e.to_string() })?;
        if r == "ok" {
            Ok(())
        } else {
            Err(StoreError::Damaged { path, cause: r.lines().take(3).collect::<Vec<_>>().join("; ") })
        }
    }

    /// Runs `PRAGMA integrity_check`; `Ok(())` when the file is sound.
    ///
    /// # Errors
    /// The problems SQLite found, or a query error.
    pub fn integrity_check(&self) -> StoreResult<Result<(), String>> {
        let r: String = self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        Ok(if r == "ok" { Ok(()) } else { Err(r) })
    }
}

/// SQLite takes an empty file for a new database: a journal emptied by accident would start over
/// without a word, positions and history gone. A new journal is a file that is absent.
fn refuse_empty(path: &Path) -> StoreResult<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0) {
        return Err(StoreError::Damaged {
            path: path.display().to_string(),
            cause: "the file is empty (0 bytes); if this is a new installation, delete it and start again".into(),
        });
    }
    Ok(())
}

/// Mode 0700 for a directory of ours (the monthly archives).
pub(crate) fn set_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

#[cfg(unix)]
pub(crate) fn set_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// The name (or uid) of the user the journal at `db` belongs to when this process runs as root and
/// that user is another: its directory's owner, else the journal's own (never followed through a
/// link that user could have planted). Root must not write by path in that user's directories.
#[must_use]
pub fn root_on_anothers_journal(db: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if effective_uid()? != 0 {
        return None;
    }
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let owners = [std::fs::metadata(dir).ok().map(|m| m.uid()), std::fs::symlink_metadata(db).ok().map(|m| m.uid())];
    let owner = owners.into_iter().flatten().find(|uid| *uid != 0)?;
    Some(user_name(owner).unwrap_or_else(|| owner.to_string()))
}

/// This process's effective uid (Linux: `/proc/self/status`).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The login name of `uid` in `/etc/passwd`.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    })
}

/// Gives `file` the owner and group of `like` (files the daemon creates beside its journal).
pub fn same_owner_of(file: &Path, like: &Path) {
    same_owner(file, like);
}

/// Gives `file` the owner and group of `like` (when run as root; otherwise a no-op that fails quietly).
#[cfg(unix)]
pub(crate) fn same_owner(file: &Path, like: &Path) {
    use std::os::unix::fs::MetadataExt;
    if let (Ok(want), Ok(have)) = (std::fs::metadata(like), std::fs::metadata(file))
        && (want.uid() != have.uid() || want.gid() != have.gid())
    {
        let _ = std::os::unix::fs::chown(file, Some(want.uid()), Some(want.gid()));
    }
}

#[cfg(not(unix))]
pub(crate) fn same_owner(_: &Path, _: &Path) {}

#[cfg(not(unix))]
pub(crate) fn set_private(_: &Path) -> std::io::Result<()> {
    Ok(())
}

pub(crate) fn hex_b256(v: &str, column: &'static str) -> StoreResult<B256> {
    v.parse().map_err(|_| StoreError::Corrupt { column, value: v.to_owned() })
}

pub(crate) fn hex_addr(v: &str, column: &'static str) -> StoreResult<Address> {
    v.parse().map_err(|_| StoreError::Corrupt { column, value: v.to_owned() })
}

pub(crate) fn dec_u256(v: &str, column: &'static str) -> StoreResult<U256> {
    U256::from_str_radix(v, 10).map_err(|_| StoreError::Corrupt { column, value: v.to_owned() })
}

/// A side as the journal spells it; anything else is a corrupt row, never a guess (a SELL read as
/// a BUY would turn a position the wrong way).
pub(crate) fn side(v: &str, column: &'static str) -> StoreResult<crate::domain::Side> {
    crate::domain::Side::parse(v).ok_or_else(|| StoreError::Corrupt { column, value: v.to_owned() })
}

/// Milliseconds since the epoch.
#[must_use]
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).saturating_add(crate::fault::clock_shift_ms())
}

/// Start of the current UTC day, unix ms.
#[must_use]
pub const fn utc_day_start(now_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(86_400_000)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{ExchangeVersion, FillId, Price, Role, Shares, Side, TargetFill, Usdc};
    use alloy::primitives::{Address, B256, U256};

    fn fill(order: u8, block: u64) -> TargetFill {
        fill_in(1, order, block)
    }

    #[test]
    fn live_trading_syncs_every_commit_and_the_level_holds_for_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        assert_eq!(s.synchronous().unwrap(), 1, "NORMAL by default (paper)");
        s.sync_every_commit().unwrap();
        assert_eq!(s.synchronous().unwrap(), 2, "FULL for live trading");
        // Still FULL after a write: the level is the connection's, not a transaction's.
        s.journal_range(&[fill(1, 5)], (5, B256::repeat_byte(5)), &[(5, B256::repeat_byte(5))]).unwrap();
        assert_eq!(s.synchronous().unwrap(), 2);
    }

    /// A halt the command line wrote is never erased by a change of the daemon's own that does not
    /// know of it; a halt it knows of, it may lift (a resume through it); its trips always land.
    #[test]
    fn the_daemon_never_writes_over_a_halt_it_has_not_seen() {
        use crate::risk::BreakerState;
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("j.db")).unwrap();
        let halt = BreakerState {
            tripped: true,
            code: "manual".into(),
            by: "cli".into(),
            since_ms: 200,
            halt_asked_ms: 200,
            ..BreakerState::default()
        };
        s.set_breaker(&halt).unwrap();
        // (the daemon's state written, the halt still stands)
        let active = |asked: i64| BreakerState {
            by: "daemon".into(),
            since_ms: 300,
            halt_asked_ms: asked,
            ..BreakerState::default()
        };
        let reducing = BreakerState { reducing: true, code: "daily_loss_limit".into(), ..active(100) };
        for (state, stands) in [(active(100), true), (reducing, true), (active(200), false)] {
            s.set_breaker(&halt).unwrap();
            s.set_breaker_from_daemon(&state).unwrap();
            assert_eq!(s.breaker().unwrap().tripped, stands, "{state:?}");
        }
        let trip = BreakerState {
            tripped: true,
            code: "database_error".into(),
            since_ms: 400,
            halt_asked_ms: 400,
            ..active(0)
        };
        s.set_breaker(&halt).unwrap();
        s.set_breaker_from_daemon(&trip).unwrap();
        assert_eq!(s.breaker().unwrap().code, "database_error");
    }

    #[test]
    fn a_journal_of_a_newer_polycopy_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        drop(Store::open(&path).unwrap());
        let (_, known) = schema::versions(&rusqlite::Connection::open(&path).unwrap()).unwrap();
        rusqlite::Connection::open(&path).unwrap().pragma_update(None, "user_version", known + 1).unwrap();
        for open in [Store::open, Store::open_existing] {
            match open(&path) {
                Err(e @ StoreError::NewerSchema { .. }) => {
                    assert!(e.to_string().contains(&format!("schema {}; this binary knows {known}", known + 1)), "{e}");
                }
                other => panic!("{:?}", other.map(|_| ())),
            }
        }
        let (found, _) = schema::versions(&rusqlite::Connection::open(&path).unwrap()).unwrap();
        assert_eq!(found, known + 1, "left as it was");
    }

    #[test]
    fn a_command_never_migrates_a_journal_an_older_daemon_runs_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        drop(Store::open(&path).unwrap());
        let (_, known) = schema::versions(&rusqlite::Connection::open(&path).unwrap()).unwrap();
        // As an older daemon's journal: one migration behind, and that daemon holding its lock.
        rusqlite::Connection::open(&path).unwrap().pragma_update(None, "user_version", known - 1).unwrap();
        let held = lock::JournalLock::acquire(&path).unwrap();
        match Store::open_existing(&path) {
            Err(e @ StoreError::OlderSchemaInUse { .. }) => {
                assert!(e.to_string().contains("Restart it with this binary"), "{e}");
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
        let (found, _) = schema::versions(&rusqlite::Connection::open(&path).unwrap()).unwrap();
        assert_eq!(found, known - 1, "left as it was");
        // A halt is stored whatever it costs that daemon (here the migration itself fails: the
        // version was lowered by hand, its tables are already the newest).
        assert!(!matches!(Store::open_existing_for_halt(&path), Err(StoreError::OlderSchemaInUse { .. })));
        drop(held);
    }

    /// A BUY of 10 shares at 0.50 by wallet 0xaa…, in transaction `tx` (shared by the store's tests).
    /// A maker BUY of 10 shares at 0.50 by wallet 0xaa…, in transaction `tx`, of order `order`.
    pub(crate) fn fill_in(tx: u8, order: u8, block: u64) -> TargetFill {
        TargetFill {
            id: FillId { tx_hash: B256::repeat_byte(tx), order_hash: B256::repeat_byte(order), occurrence: 0 },
            wallet: Address::repeat_byte(0xaa),
            role: Role::Maker,
            side: Side::Buy,
            token_id: U256::from(7),
            shares: Shares(10_000_000),
            usdc: Usdc(5_000_000),
            price: Price(500_000),
            fee: 0,
            exchange: Address::ZERO,
            version: ExchangeVersion::V2,
            block_number: block,
            block_hash: B256::repeat_byte(u8::try_from(block % 250).unwrap()),
            log_index: 0,
            block_ts: 0,
        }
    }

    #[test]
    fn a_corrupt_side_or_mode_is_an_error_never_a_guess() {
        use crate::domain::{Execution, OrderIntent};
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let f = fill(1, 5);
        let row = s.journal_range(std::slice::from_ref(&f), (5, B256::repeat_byte(5)), &[]).unwrap().to_copy[0].row;
        assert!(s.record_intent(&OrderIntent::for_fill(&f, row, Shares(10_000_000), Price(500_000))).unwrap());
        let exec = Execution {
            fill_row: row,
            side: Side::Sell,
            token_id: f.token_id,
            shares: Shares(10_000_000),
            price: Price(500_000),
            usdc: Usdc(5_000_000),
            mode: crate::domain::ExecMode::Paper,
            at_ms: 1,
        };
        s.record_execution(&exec, &f.wallet).unwrap();
        assert_eq!(s.executions(0).unwrap()[0].exec.side, Side::Sell);
        assert!(s.target_quality(0).is_ok());
        for (sql, column) in [
            ("UPDATE executions SET side = 'sell'", "executions.side"),
            ("UPDATE executions SET side = 'SELL', mode = 'papr'", "executions.mode"),
        ] {
            s.conn.execute(sql, []).unwrap();
            match s.executions(0) {
                Err(StoreError::Corrupt { column: c, .. }) => assert_eq!(c, column),
                other => panic!("{sql}: {other:?}"),
            }
        }
        s.conn.execute("UPDATE fills SET side = 'Sell'", []).unwrap();
        assert!(matches!(s.target_quality(0), Err(StoreError::Corrupt { column: "fills.side", .. })));
        let token = f.token_id.to_string();
        for (sql, column) in [
            ("UPDATE fills SET side = 'BUY', role = 'Taker'", "role"),
            ("UPDATE fills SET role = 'maker', version = 'V3'", "version"),
        ] {
            s.conn.execute(sql, []).unwrap();
            match journal::load_fill(&s.conn, row, &token) {
                Err(StoreError::Corrupt { column: c, .. }) => assert_eq!(c, column),
                other => panic!("{sql}: {other:?}"),
            }
        }
        s.conn.execute("UPDATE fills SET version = 'V2', status = 'done'", []).unwrap();
        assert!(s.fill_outcome(row).is_err(), "an unknown status is not read as any status");
    }

    /// With the trading day starting at 13:00 UTC, "today" and the days of the P&L history are the
    /// trading days the daily loss limit counts, not UTC days.
    #[test]
    fn realized_today_and_pnl_by_day_follow_the_trading_day() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap().with_trading_day(13);
        let hour = 3_600_000;
        let day = 20_000 * 24 * hour;
        let settle = |s: &mut Store, at_ms: i64, realized: i64| {
            s.conn
                .execute(
                    "INSERT INTO settlements (token_id, shares, price, usdc, realized_pnl, at_ms) VALUES ('7', 1, 1, 1, ?1, ?2)",
                    [realized, at_ms],
                )
                .unwrap();
        };
        settle(&mut s, day + 12 * hour, 1_000_000);
        settle(&mut s, day + 14 * hour, 2_000_000);
        let now = day + 15 * hour;
        assert_eq!(s.realized_today(now).unwrap(), Usdc(2_000_000), "12:00 belongs to the day before");
        assert_eq!(
            s.pnl_by_day(2, now).unwrap(),
            vec![(day - 11 * hour, Usdc(1_000_000)), (day + 13 * hour, Usdc(2_000_000))]
        );
        let utc = Store::open(&dir.path().join("j.db")).unwrap();
        assert_eq!(utc.realized_today(now).unwrap(), Usdc(3_000_000), "unset: the UTC day");
    }

    #[test]
    fn opens_private_wal_file_and_journals_each_fill_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/j.db");
        let mut s = Store::open(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let mode: String = s.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let first = s.journal_range(&[fill(1, 5)], (5, B256::repeat_byte(5)), &[]).unwrap();
        assert_eq!(first.to_copy.len(), 1);
        let again = s.journal_range(&[fill(1, 5)], (6, B256::repeat_byte(6)), &[]).unwrap();
        assert!(again.to_copy.is_empty(), "a journaled fill is never handed out twice");
        assert_eq!(s.checkpoint().unwrap(), Some((6, B256::repeat_byte(6))));
        assert_eq!(s.integrity_check().unwrap(), Ok(()));
        drop(s);
        // Reopening migrates nothing twice and keeps the data.
        let s = Store::open(&path).unwrap();
        assert_eq!(s.unfinished().unwrap().len(), 1);
    }

    #[test]
    fn a_withdrawn_fill_is_never_executed_but_revives_if_reincluded() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let out = s.journal_range(&[fill(1, 5)], (5, B256::repeat_byte(5)), &[(5, B256::repeat_byte(5))]).unwrap();
        let row = out.to_copy[0].row;
        assert_eq!(s.rewind((4, B256::repeat_byte(4))).unwrap().suspects, 1);
        let intent = crate::domain::OrderIntent { fill_row: row, ..crate::domain::test_intent(Side::Buy, 1, 1, 1) };
        // Its old height and the block after it read again without it: still looked for (a
        // dropped transaction is usually mined again a block or two later), and no intent meanwhile.
        let out = s.journal_range(&[], (6, B256::repeat_byte(9)), &[]).unwrap();
        assert!(out.withdrawn.is_empty());
        assert!(!s.record_intent(&intent).unwrap(), "a suspect gets no intent");
        let out = s.journal_range(&[], (7, B256::repeat_byte(10)), &[]).unwrap();
        assert_eq!(out.withdrawn.len(), 1);
        assert!(!s.record_intent(&intent).unwrap(), "withdrawn fills get no intent");
        // The transaction comes back in a later block: it is a real fill again.
        let out = s.journal_range(&[fill(1, 9)], (9, B256::repeat_byte(11)), &[]).unwrap();
        assert_eq!(out.to_copy.len(), 1);
        assert!(s.record_intent(&intent).unwrap());
        assert!(!s.record_intent(&intent).unwrap(), "one intent per fill");
    }

    /// A fill with an intent and no order yet when the daemon stopped, its block reorged away: its
    /// copy never left, so it is taken back at the start and waits for the rescan, as one without
    /// an intent does; a paper copy of it is not executed meanwhile. Seen again, both are handed
    /// on afresh; one with an order sent is still recovered.
    #[test]
    fn an_unsent_copy_of_a_suspect_is_taken_back_at_the_start_and_handed_on_by_the_rescan() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let h = B256::repeat_byte;
        let out = s.journal_range(&[fill(1, 5), fill(2, 5)], (5, h(5)), &[(5, h(5))]).unwrap();
        let (with_intent, without) = (out.to_copy[0].row, out.to_copy[1].row);
        let intent =
            crate::domain::OrderIntent { fill_row: with_intent, ..crate::domain::test_intent(Side::Buy, 1, 1, 1) };
        assert!(s.record_intent(&intent).unwrap());
        assert_eq!(s.rewind((4, h(4))).unwrap().suspects, 2);
        s.defer_unacted_sightings().unwrap();
        assert!(s.unfinished().unwrap().is_empty(), "both wait for the rescan");
        assert!(!s.record_intent(&intent).unwrap(), "nor is it copied again under the cloud");
        // The rescan sees the first again: handed on afresh; the second, not seen, is withdrawn.
        let out = s.journal_range(&[fill(1, 6)], (6, h(26)), &[(6, h(26))]).unwrap();
        assert_eq!(out.to_copy.iter().map(|p| p.row).collect::<Vec<_>>(), [with_intent]);
        let out = s.journal_range(&[], (9, h(29)), &[]).unwrap();
        assert_eq!(out.withdrawn.len(), 1, "{without}");
        assert!(s.record_intent(&intent).unwrap(), "copied once it stands");
    }

    /// A fill whose copy order is journaled and not yet resolved, then reorged away: flagged as a
    /// copied one (the order is only looked up), never withdrawn; mined again later, it stands
    /// again and is not handed out for a second copy.
    #[test]
    fn a_fill_with_its_order_in_flight_is_flagged_by_a_reorg_never_withdrawn() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let h = B256::repeat_byte;
        let out = s.journal_range(&[fill(1, 5)], (5, h(5)), &[(5, h(5))]).unwrap();
        let row = out.to_copy[0].row;
        let intent = crate::domain::OrderIntent { fill_row: row, ..crate::domain::test_intent(Side::Buy, 1, 1, 1) };
        assert!(s.record_intent(&intent).unwrap());
        assert_eq!(s.rewind((4, h(4))).unwrap().suspects, 1);
        assert_eq!(s.fill_standing(row).unwrap(), FillStanding::Suspect);
        s.journal_range(&[], (6, h(26)), &[]).unwrap();
        let out = s.journal_range(&[], (7, h(27)), &[]).unwrap();
        assert!(out.withdrawn.is_empty(), "{out:?}");
        assert_eq!(out.reorged_after_copy.len(), 1, "{out:?}");
        assert_eq!(s.fill_standing(row).unwrap(), FillStanding::Gone, "nothing new leaves for it");
        // A deeper reorg later does not take it back a second time.
        let held = s.target_position(&Address::repeat_byte(0xaa), &U256::from(7)).unwrap();
        assert_eq!(s.rewind((3, h(3))).unwrap().suspects, 0);
        s.journal_range(&[], (6, h(36)), &[]).unwrap();
        let out = s.journal_range(&[], (7, h(37)), &[]).unwrap();
        assert!(out.reorged_after_copy.is_empty(), "reported once: {out:?}");
        assert_eq!(s.target_position(&Address::repeat_byte(0xaa), &U256::from(7)).unwrap(), held, "given back once");
        let status: String = s.conn.query_row("SELECT status FROM fills WHERE id = ?1", [row], |r| r.get(0)).unwrap();
        assert_eq!(status, "pending", "its order's outcome is still booked when it comes");
        // Mined again later: it stands again, and is not copied a second time.
        let out = s.journal_range(&[fill(1, 9)], (9, h(29)), &[]).unwrap();
        assert!(out.to_copy.is_empty(), "{out:?}");
        assert_eq!(out.unorphaned.len(), 1);
        assert_eq!(s.fill_standing(row).unwrap(), FillStanding::Stands);
    }

    /// A copied fill whose transaction a reorg drops and the next block mines again is neither
    /// flagged as reorged after its copy nor reported; a refused one that never comes back keeps
    /// its refusal (it is not made pending again, so never decided twice).
    #[test]
    fn a_fill_mined_again_a_block_later_is_not_gone_and_a_refused_one_stays_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let h = B256::repeat_byte;
        let out = s.journal_range(&[fill(1, 5), fill(2, 5)], (5, h(5)), &[(5, h(5))]).unwrap();
        let (copied, refused) = (out.to_copy[0].row, out.to_copy[1].row);
        s.conn.execute("UPDATE fills SET status = 'executed' WHERE id = ?1", [copied]).unwrap();
        s.record_rejection(refused, "max_exposure", "too much").unwrap();
        assert_eq!(s.rewind((4, h(4))).unwrap().suspects, 2);
        // The new block 5 has neither; block 6 has the copied one again; block 7 nothing, and
        // the refused one is gone then, two blocks past its height.
        for (fills, n) in [(vec![], 5), (vec![fill(1, 6)], 6)] {
            let out = s.journal_range(&fills, (u64::from(n), h(20 + n)), &[]).unwrap();
            assert!(out.reorged_after_copy.is_empty() && out.withdrawn.is_empty(), "block {n}");
        }
        let out = s.journal_range(&[], (7, h(27)), &[]).unwrap();
        assert!(out.reorged_after_copy.is_empty());
        assert_eq!(out.withdrawn.len(), 1, "the refused one is gone");
        let status = |row: i64| -> (String, bool, bool) {
            s.conn
                .query_row("SELECT status, suspect, reorged_after_copy FROM fills WHERE id = ?1", [row], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .unwrap()
        };
        assert_eq!(status(copied), ("executed".into(), false, false));
        assert_eq!(status(refused), ("rejected".into(), false, false));
    }

    /// A refusal that lands while its fill is a reorg's suspect (a SELL sized while the BUY before
    /// it in the same block could not be journaled) leaves it pending: the rescan that confirms
    /// the block hands it on again and it is decided afresh, never left refused by the reorg.
    #[test]
    fn a_refusal_under_a_reorgs_cloud_leaves_the_fill_to_the_rescan() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let h = B256::repeat_byte;
        let out = s.journal_range(&[fill(1, 5), fill(2, 5), fill(3, 5)], (5, h(5)), &[(5, h(5))]).unwrap();
        let (buy, sell, sent) = (out.to_copy[0].row, out.to_copy[1].row, out.to_copy[2].row);
        let placed =
            crate::domain::OrderIntent::for_fill(&out.to_copy[2].fill, sent, Shares(10_000_000), Price(500_000));
        assert!(s.record_intent(&placed).unwrap());
        assert_eq!(s.rewind((4, h(4))).unwrap().suspects, 3);
        s.record_rejection(sell, "no_position", "sized while the BUY before it was not journaled").unwrap();
        // An order's own outcome is always recorded, suspect or not.
        s.record_rejection(sent, "no_liquidity", "nothing matched").unwrap();
        let status: String = s.conn.query_row("SELECT status FROM fills WHERE id = ?1", [sent], |r| r.get(0)).unwrap();
        assert_eq!(status, "rejected");
        let status: String = s.conn.query_row("SELECT status FROM fills WHERE id = ?1", [sell], |r| r.get(0)).unwrap();
        assert_eq!(status, "pending");
        // The same block again: both are handed on again (the one with its order is not).
        let out = s.journal_range(&[fill(1, 5), fill(2, 5), fill(3, 5)], (5, h(5)), &[(5, h(5))]).unwrap();
        let again: Vec<i64> = out.to_copy.iter().map(|p| p.row).collect();
        assert!(again.contains(&buy) && again.contains(&sell), "{out:?}");
    }

    /// A fill handed to the copier a second time while its first copy is placed: the second copy's
    /// refusal (made before any intent of its own) leaves the fill to the first copy's order,
    /// which would otherwise find its trade "gone" and never be sent; a fill with no intent is
    /// refused as before, and an order's own outcome is recorded whatever the refusals said.
    #[test]
    fn a_refusal_before_approval_never_overrides_an_earlier_copys_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let h = B256::repeat_byte;
        let out = s.journal_range(&[fill(1, 5), fill(2, 5)], (5, h(5)), &[(5, h(5))]).unwrap();
        let (placed_row, plain) = (out.to_copy[0].row, out.to_copy[1].row);
        let placed =
            crate::domain::OrderIntent::for_fill(&out.to_copy[0].fill, placed_row, Shares(10_000_000), Price(500_000));
        assert!(s.record_intent(&placed).unwrap());
        s.record_refusal(placed_row, "no_position", "every share claimed by the first copy's SELL").unwrap();
        s.record_refusal(plain, "no_position", "nothing held").unwrap();
        let status = |s: &Store, row: i64| -> String {
            s.conn.query_row("SELECT status FROM fills WHERE id = ?1", [row], |r| r.get(0)).unwrap()
        };
        assert_eq!(status(&s, placed_row), "pending", "left to the order already placed");
        assert_eq!(status(&s, plain), "rejected");
        s.record_rejection(placed_row, "no_liquidity", "nothing matched").unwrap();
        assert_eq!(status(&s, placed_row), "rejected", "the order's own outcome");
    }

    /// A range journaled in parts (a long backfill): a reorg's suspect that a later part brings
    /// back in a later block is not swept as gone by an earlier part.
    #[test]
    fn a_suspect_is_swept_only_once_the_whole_range_is_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let h = B256::repeat_byte;
        s.journal_range(&[fill(1, 5), fill(2, 6)], (6, h(6)), &[(5, h(5)), (6, h(6))]).unwrap();
        assert_eq!(s.rewind((4, h(4))).unwrap().suspects, 2);
        // The rescan: block 5 again with the first fill (one part), then block 8 brings the second
        // one back (the last part).
        let first = s.journal_blocks(&[fill(1, 5)], (7, h(7)), &[(5, h(5))], false).unwrap();
        assert!(first.withdrawn.is_empty(), "not swept before the range is done: {first:?}");
        let last = s.journal_blocks(&[fill(2, 8)], (8, h(8)), &[(8, h(8))], true).unwrap();
        assert!(last.withdrawn.is_empty() && last.reorged_after_copy.is_empty(), "{last:?}");
        assert_eq!(s.checkpoint().unwrap(), Some((8, h(8))));
        // Without it, the sweep at the end of the range finds the suspect gone.
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        s.journal_range(&[fill(1, 5), fill(2, 6)], (6, h(6)), &[(5, h(5)), (6, h(6))]).unwrap();
        s.rewind((4, h(4))).unwrap();
        let last = s.journal_blocks(&[fill(1, 5)], (8, h(8)), &[(5, h(5))], true).unwrap();
        assert_eq!(last.withdrawn.len(), 1, "{last:?}");
    }
}
