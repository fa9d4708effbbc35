//! The SQLite journal: the single source of truth for fills, intents, executions, positions, the
//! chain checkpoint and the breaker. WAL mode with `synchronous=NORMAL` survives a process kill.
//!
//! Only the store actor writes while the daemon runs; the CLI opens its own connection (WAL allows
//! readers beside the writer, and the few CLI writes, halt and resume, are single statements).

mod journal;
mod queries;
mod schema;

use std::path::Path;

use alloy::primitives::{Address, B256, U256};

pub use journal::{JournalOutcome, PendingFill};
pub use queries::{StatusReport, TradeRow};

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
    /// A stored value did not parse back (the file was edited by hand or is corrupt).
    #[error("corrupt value in column {column}: {value:?}")]
    Corrupt {
        /// Where.
        column: &'static str,
        /// What.
        value: String,
    },
}

/// Result alias for the store.
pub type StoreResult<T> = Result<T, StoreError>;

/// An open journal.
#[derive(Debug)]
pub struct Store {
    conn: rusqlite::Connection,
}

impl Store {
    /// Opens (creating and migrating) the journal at `path`, with mode 0600.
    ///
    /// # Errors
    /// When the file cannot be created, opened or migrated.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let io = |source| StoreError::Io { path: path.display().to_string(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let conn = rusqlite::Connection::open(path)?;
        set_private(path).map_err(io)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::migrate(&conn)?;
        Ok(Self { conn })
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

#[cfg(unix)]
fn set_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_private(_: &Path) -> std::io::Result<()> {
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

/// Milliseconds since the epoch.
#[must_use]
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Start of the current UTC day, unix ms.
#[must_use]
pub const fn utc_day_start(now_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(86_400_000)
}
