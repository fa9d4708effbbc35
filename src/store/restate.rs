//! The journal's side of [`crate::risk::restate`]: after the settlement check takes an execution
//! out of the books or puts one back, the token's executions booked after it are booked again in
//! their order, so the P&L of later SELLs is what it would have been had the change been known when
//! they were booked, and no cost is left in (or missing from) the position.

use rusqlite::{Connection, params};

use super::journal::{IN_BOOKS, write_position};
use super::settlement::booked_of;
use super::{StoreError, StoreResult, dec_u256};
use crate::domain::{ExecMode, Execution, Price, Shares, Side, Usdc};
use crate::risk::Written;
use crate::risk::book::{Booked, Position};
use crate::risk::restate::{position_before, rebook};

/// The token's later executions booked again after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Restated {
    /// The position afterwards, as written.
    pub position: Written,
    /// Each execution whose realized P&L changed: (when it was booked, unix ms; the change).
    pub changes: Vec<(i64, Usdc)>,
}

/// The execution that changed: its journal row and when it was booked.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pivot {
    /// The copied fill's journal row.
    pub row: i64,
    /// When the execution was booked (unix ms).
    pub at_ms: i64,
}

/// Books again, from the position before `pivot`, the pivot as it is now (when still in the books)
/// and every execution of `token` booked after it, and writes what each realized and the position.
/// `before` is the position before the change, `had` what the pivot had put on the books (`None`
/// when it was out of them).
///
/// "After" is in the order the bookings were made (`booked_seq`), which the executions' times need
/// not follow. `None`, with nothing written, when nothing was booked after the pivot (the change
/// alone is exact), or when the bookings cannot be replayed exactly: a market's resolution or a
/// reconcile moved the position since, an older change clamped it, a part of an execution was
/// booked after a later one (a GTD order filling over time), or a booking has no place in the
/// order (written before it was kept).
pub(super) fn restate_after(
    tx: &Connection,
    token: &str,
    pivot: Pivot,
    before: Position,
    had: Option<(Side, Booked)>,
) -> StoreResult<Option<Restated>> {
    let Some(seq) = booked_seq(tx, pivot.row)? else { return Ok(None) };
    let later = executions_after(tx, token, pivot.row, seq)?;
    if later.is_empty() || moved_otherwise(tx, token, pivot, seq)? {
        return Ok(None);
    }
    let mut booked = Vec::with_capacity(later.len() + 1);
    for b in &later {
        booked.push((b.exec.side, booked_of(tx, b.exec.fill_row)?));
    }
    booked.extend(had);
    let Some(start) = position_before(before, &booked) else {
        tracing::warn!(token, "later executions not rebooked: the position does not add up from them");
        return Ok(None);
    };
    let mut run = Vec::with_capacity(later.len() + 1);
    if let Some(now) = pivot_in_books(tx, token, pivot.row)? {
        run.push(now);
    }
    run.extend(later);
    if run.windows(2).any(|w| w[0].grown_seq.is_some_and(|g| g > w[1].booked_seq.unwrap_or(i64::MAX))) {
        tracing::info!(token, "later executions not rebooked: a part of one was booked after a later one");
        return Ok(None);
    }
    let execs: Vec<Execution> = run.iter().map(|b| b.exec.clone()).collect();
    let (after, rebooked) = rebook(start, &execs);
    let mut changes = Vec::new();
    for (Booking { exec: e, realized: had_realized, .. }, b) in run.iter().zip(rebooked) {
        tx.execute(
            "UPDATE executions SET realized_pnl = ?2, held = ?3, released = ?4 WHERE fill_id = ?1",
            params![e.fill_row, b.realized.0, b.held.0, (e.side == Side::Sell).then_some(b.released.0)],
        )?;
        if b.realized != *had_realized {
            changes.push((e.at_ms, Usdc(b.realized.0 - had_realized.0)));
        }
    }
    let position = write_position(tx, token, after, super::now_ms())?;
    Ok(Some(Restated { position, changes }))
}

/// Where the pivot's booking is in the order of bookings (`None`: written before it was kept).
fn booked_seq(tx: &Connection, row: i64) -> StoreResult<Option<i64>> {
    Ok(tx.query_row("SELECT booked_seq FROM executions WHERE fill_id = ?1", [row], |r| r.get(0))?)
}

/// Something that moved the position in `token` since the pivot (booked `seq`) that the rebooking
/// cannot replay: a market's resolution, a reconcile, an execution in the books with no place in
/// the order of bookings, or a part of an earlier one booked after the pivot.
fn moved_otherwise(tx: &Connection, token: &str, pivot: Pivot, seq: i64) -> StoreResult<bool> {
    Ok(tx.query_row(
        &format!(
            "SELECT EXISTS (SELECT 1 FROM settlements WHERE token_id = ?1 AND at_ms >= ?2) \
             OR EXISTS (SELECT 1 FROM adjustments WHERE token_id = ?1 AND at_ms >= ?2) \
             OR EXISTS (SELECT 1 FROM executions e WHERE token_id = ?1 AND fill_id != ?3 AND {IN_BOOKS} \
             AND ((booked_seq IS NULL AND executed_at_ms >= ?2) OR (COALESCE(booked_seq, -1) < ?4 AND grown_seq > ?4)))"
        ),
        params![token, pivot.at_ms, pivot.row, seq],
        |r| r.get(0),
    )?)
}

/// An execution as the journal holds it, with the P&L it realized and its place in the order of
/// bookings.
struct Booking {
    exec: Execution,
    realized: Usdc,
    booked_seq: Option<i64>,
    grown_seq: Option<i64>,
}

const COLUMNS: &str = "fill_id, side, shares, price, usdc, realized_pnl, executed_at_ms, booked_seq, grown_seq";

type Row = (i64, String, [i64; 5], Option<i64>, Option<i64>);

/// The executions of `token` in the books booked after the pivot (`row`, booked `seq`), in the
/// order they were booked.
fn executions_after(tx: &Connection, token: &str, row: i64, seq: i64) -> StoreResult<Vec<Booking>> {
    let mut st = tx.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM executions e WHERE token_id = ?1 AND fill_id != ?2 AND booked_seq > ?3 \
         AND {IN_BOOKS} ORDER BY booked_seq"
    ))?;
    let rows = st.query_map(params![token, row, seq], row_of)?;
    rows.map(|r| execution(token, r?)).collect()
}

/// The pivot as it is now, when it is in the books.
fn pivot_in_books(tx: &Connection, token: &str, row: i64) -> StoreResult<Option<Booking>> {
    let mut st = tx.prepare_cached(&format!("SELECT {COLUMNS} FROM executions e WHERE fill_id = ?1 AND {IN_BOOKS}"))?;
    let mut rows = st.query_map([row], row_of)?;
    rows.next().map(|r| execution(token, r?)).transpose()
}

fn row_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((r.get(0)?, r.get(1)?, [r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?], r.get(7)?, r.get(8)?))
}

fn execution(token: &str, (row, side, n, booked_seq, grown_seq): Row) -> StoreResult<Booking> {
    let [shares, price, usdc, realized, at_ms] = n;
    let side = Side::parse(&side).ok_or(StoreError::Corrupt { column: "executions.side", value: side })?;
    let exec = Execution {
        fill_row: row,
        side,
        token_id: dec_u256(token, "executions.token_id")?,
        shares: Shares(shares),
        price: Price(price),
        usdc: Usdc(usdc),
        // Booking does not depend on the mode; only live orders are taken out or put back.
        mode: ExecMode::Live,
        at_ms,
    };
    Ok(Booking { exec, realized: Usdc(realized), booked_seq, grown_seq })
}
