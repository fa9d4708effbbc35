//! What the live journal leaves open while a paper daemon runs: positions bought with real money,
//! and orders whose outcome is not known yet. Nothing watches them then (no exits mirrored, no
//! redemption, no lookups), so the operator must hear of it. Read-only: the file is never created
//! or migrated (a live daemon of another version may be the one that wrote it).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::StoreResult;
use crate::domain::Usdc;

/// Real-money business a journal leaves open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeftOpen {
    /// Positions with shares.
    pub positions: i64,
    /// What they cost.
    pub cost: Usdc,
    /// Orders signed or sent whose outcome is not known, matches not yet settled on chain, and
    /// matches settled after they were taken out of our books (booked back only by a live daemon).
    pub orders: i64,
}

/// What the journal at `path` leaves open; `None` when there is no such file or nothing is open.
///
/// # Errors
/// When the file exists but cannot be read as a journal.
pub fn left_open(path: &Path) -> StoreResult<Option<LeftOpen>> {
    if !path.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(Duration::from_secs(2))?;
    let (positions, cost): (i64, i64) =
        conn.query_row("SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM positions WHERE shares > 0", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let orders: i64 = conn.query_row(
        "SELECT COUNT(*) FROM orders WHERE status IN ('signed', 'sent', 'live', 'delayed', 'unknown') \
         OR (status = 'matched' AND settled = 0) OR settled = 2",
        [],
        |r| r.get(0),
    )?;
    Ok((positions > 0 || orders > 0).then_some(LeftOpen { positions, cost: Usdc(cost), orders }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn an_empty_or_missing_journal_leaves_nothing_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live.db");
        assert_eq!(left_open(&path).unwrap(), None);
        drop(Store::open(&path).unwrap());
        assert_eq!(left_open(&path).unwrap(), None);
    }
}
