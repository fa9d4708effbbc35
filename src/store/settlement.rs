//! Matches that did not settle on chain: taken out of the books once overdue, in part when our
//! fills on chain settled only part of them, and put back when they settle late.

use rusqlite::{Connection, OptionalExtension, params};

use super::journal::{position_of, write_position};
use super::restate::{Pivot, restate_after};
use super::{Store, StoreResult};
use crate::domain::{Execution, Price, Shares, Side, Usdc};
use crate::risk::book::{Booked, booked_on, position_without, proceeds_of, released_derived};
use crate::risk::{Position, Written};

/// Shares our fills on chain may fall short of what the CLOB booked and still settle the order:
/// less than one lot (0.01 share) is rounding between the two counts, not a part that failed, and
/// is never taken out as dust with an alert.
pub(crate) const SETTLED_WITHIN: Shares = Shares(10_000);

/// An execution taken out of the books or put back (see [`Store::record_settlement_change`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementChange {
    /// What was taken out or put back: the whole execution, or the part that did not settle.
    pub exec: Execution,
    /// Shares of the execution that settled on chain and stay booked (0: none did).
    pub kept: Shares,
    /// Our position in its token afterwards, as the journal wrote it.
    pub position: Written,
    /// Our position in its token before the change, as the journal had it.
    pub before: Position,
    /// What the change did to realized P&L (negative when profit was taken out).
    pub realized_change: Usdc,
    /// Shares of a BUY taken out that the position no longer held (later SELLs sold them): the
    /// book could not take them out, and may hold shares we do not own once those SELLs are
    /// taken out too. The operator is told to reconcile.
    pub short: Shares,
    /// The token's executions booked after this one, booked again in their order
    /// ([`crate::risk::restate`]): when each was booked (unix ms) and what that changed of its
    /// realized P&L (of this execution's too, when part of it stays).
    pub restated: Vec<(i64, Usdc)>,
}

impl Store {
    /// Takes the unsettled execution of fill `row` out of the books (`restored` false), or puts one
    /// that settled late back (`restored` true), in one transaction, on the journal's own position
    /// row (never a copy of it held elsewhere, which may lag behind a booking on the same token).
    ///
    /// What our fills on chain settled of the order decides how much: with none, the whole
    /// execution goes (`settled = -1`); with a part, only the rest goes and the execution keeps what
    /// settled (`settled = 1`: a later part grows it again, as any part does). An order put back
    /// is booked as much as settled. Returns `None` when the order no longer waits for this change
    /// (it settled meanwhile, or another check made it).
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn record_settlement_change(&mut self, row: i64, restored: bool) -> StoreResult<Option<SettlementChange>> {
        let step = if restored { SettlementStep::PutBack } else { SettlementStep::TakeOut { overdue_before: None } };
        self.settlement_change(row, step)
    }

    /// Makes the settlement check's `step` for the execution of fill `row` (see
    /// [`Store::record_settlement_change`] and [`SettlementStep`]). `None` when the order no longer
    /// waits for it, or the step is not needed.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn record_settlement_step(&mut self, row: i64, step: SettlementStep) -> StoreResult<Option<SettlementChange>> {
        self.settlement_change(row, step)
    }

    fn settlement_change(&mut self, row: i64, step: SettlementStep) -> StoreResult<Option<SettlementChange>> {
        let Some((exec, realized)) = self.execution_for(row)? else { return Ok(None) };
        let tx = self.conn.savepoint()?;
        let (restored, with_buy_before, overdue_before) = match step {
            SettlementStep::PutBack => (true, None, None),
            SettlementStep::TakeOut { overdue_before } => (false, None, overdue_before),
            SettlementStep::WithBuy { before_ms } => (false, Some(before_ms), None),
        };
        if let Some(before_ms) = with_buy_before
            && !buys_lack_shares(&tx, &exec.token_id.to_string(), before_ms)?
        {
            return Ok(None);
        }
        let (settled_shares, settled_usdc) = settled_on_chain(&tx, row)?;
        let partly = settled_shares.0 > 0 && settled_shares.0 + SETTLED_WITHIN.0 < exec.shares.0;
        let (from, to) = match (restored, partly) {
            (true, _) => (2, 1),
            (false, true) => (0, 1),
            (false, false) => (0, -1),
        };
        let n = tx.execute(
            "UPDATE orders SET settled = ?3, updated_at_ms = ?2 WHERE fill_id = ?1 AND settled = ?4 \
             AND (?5 IS NULL OR updated_at_ms < ?5)",
            params![row, now(), to, from, overdue_before],
        )?;
        if n != 1 {
            return Ok(None);
        }
        if !restored {
            // Kept in part, the order is settled by what our fills on chain hold: the last of them
            // is its settling transaction (a reorg that takes it away makes the part wait again).
            tx.execute(
                "UPDATE orders SET clob_shares = COALESCE(clob_shares, ?2), settle_tx = CASE WHEN ?3 THEN \
                 (SELECT f.tx_hash FROM own_fills f WHERE f.order_id = orders.order_id \
                 ORDER BY f.seen_at_ms DESC, f.tx_hash DESC LIMIT 1) ELSE settle_tx END WHERE fill_id = ?1",
                params![row, exec.shares.0, partly],
            )?;
        }
        let settled = (settled_shares, settled_usdc);
        let change = if restored {
            put_back(&tx, exec, partly, settled)?
        } else {
            take_out(&tx, exec, realized, partly, settled, with_buy_before.is_some())?
        };
        tx.commit()?;
        Ok(Some(change))
    }
}

/// A change the settlement check makes to an order (see [`Store::record_settlement_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettlementStep {
    /// Book again, as much as settled, an order taken out that settled late.
    PutBack,
    /// Take out what did not settle in time. With `overdue_before` (the check's bound, unix ms),
    /// only if the order is still overdue then: a reorg's rewind since the check listed it restarts
    /// the wait of the orders whose fills it forgot, and those are left for the rescan.
    TakeOut {
        /// The check's overdue bound, unix ms.
        overdue_before: Option<i64>,
    },
    /// Take out a SELL listed with an overdue BUY of its token
    /// ([`crate::store::Unsettled::with_buy`]), but only while the position lacks shares that
    /// BUY's take-out needs (`before_ms`: the check's overdue bound): what it sold beyond them was
    /// ours, and it stays booked. Made newest SELL first, so only as many go as the BUYs need.
    WithBuy {
        /// The check's overdue bound, unix ms.
        before_ms: i64,
    },
}

fn now() -> i64 {
    super::now_ms()
}

/// Books again, as much as settled, an execution that settled late (it may have grown while out
/// of the books); a SELL at the chain's proceeds (no correction could reach it while it was out),
/// at the position's cost as it is now, its realized P&L being what this says.
fn put_back(tx: &Connection, exec: Execution, partly: bool, settled: (Shares, Usdc)) -> StoreResult<SettlementChange> {
    let row = exec.fill_row;
    let token = exec.token_id.to_string();
    let before = position_of(tx, &token)?;
    let (settled_shares, settled_usdc) = settled;
    let whole = (settled_shares.0 - exec.shares.0).abs() <= SETTLED_WITHIN.0;
    let rebook =
        partly || (exec.side == Side::Sell && whole && (settled_shares, settled_usdc) != (exec.shares, exec.usdc));
    let exec = if rebook { shrink(tx, &exec, settled_shares, settled_usdc)? } else { exec };
    let (p, booked) = booked_on(before, &exec);
    let realized_now = booked.realized;
    tx.execute(
        "UPDATE executions SET realized_pnl = ?2, held = ?3, released = ?4 WHERE fill_id = ?1",
        params![row, realized_now.0, booked.held.0, (exec.side == Side::Sell).then_some(booked.released.0)],
    )?;
    if !whole_again(tx, row, settled_shares)? {
        let detail = "matched on the CLOB, settled on chain late and in part; the rest reversed";
        tx.execute("UPDATE fills SET detail = ?2 WHERE id = ?1", params![row, detail])?;
    }
    let position = write_position(tx, &token, p, now())?;
    let pivot = Pivot { row, at_ms: exec.at_ms };
    let (position, restated) = match restate_after(tx, &token, pivot, before, None)? {
        Some(r) => (r.position, r.changes),
        None => (position, Vec::new()),
    };
    Ok(SettlementChange {
        exec,
        kept: Shares(0),
        position,
        before,
        realized_change: realized_now,
        short: Shares(0),
        restated,
    })
}

/// Takes out of the books what did not settle of `exec` (all of it, or the rest when `partly`),
/// with the P&L it had realized.
fn take_out(
    tx: &Connection,
    exec: Execution,
    realized: Usdc,
    partly: bool,
    settled: (Shares, Usdc),
    with_buy: bool,
) -> StoreResult<SettlementChange> {
    let row = exec.fill_row;
    let token = exec.token_id.to_string();
    let before = position_of(tx, &token)?;
    let booked = Booked { realized, ..booked_of(tx, row)? };
    let (side, exec_at) = (exec.side, exec.at_ms);
    let (out, booked_out) =
        if partly { unsettled_part(tx, &exec, booked, settled.0, settled.1)? } else { (exec, booked) };
    let (p, undone) = position_without(before, out.side, &booked_out);
    let detail = if with_buy {
        "matched on the CLOB, sold shares a BUY of ours that did not settle on chain was to deliver; reversed with it"
    } else if partly {
        "matched on the CLOB, settled on chain in part in time; the rest reversed"
    } else {
        "matched on the CLOB, not settled on chain in time; reversed"
    };
    tx.execute("UPDATE fills SET reason = 'unsettled', detail = ?2 WHERE id = ?1", params![row, detail])?;
    let position = write_position(tx, &token, p, now())?;
    if out.side == Side::Sell {
        // The operator's close taken out gives back what it sold: the claims it ended come back.
        tx.execute(
            "DELETE FROM claims_reset WHERE token_id = ?1 AND EXISTS \
             (SELECT 1 FROM executions WHERE fill_id = ?2 AND wallet = ?3)",
            params![token, row, crate::domain::addr_lower(&crate::domain::OPERATOR)],
        )?;
    }
    let kept = if partly { settled.0 } else { Shares(0) };
    let short = match out.side {
        Side::Buy => Shares((out.shares.0 - before.shares.0).max(0)),
        Side::Sell => Shares(0),
    };
    let pivot = Pivot { row, at_ms: exec_at };
    let (position, restated) = match restate_after(tx, &token, pivot, before, Some((side, booked)))? {
        Some(r) => (r.position, r.changes),
        None => (position, Vec::new()),
    };
    Ok(SettlementChange { exec: out, kept, position, before, realized_change: Usdc(-undone.0), short, restated })
}

/// Clears the `unsettled` reason of fill `row` once our fills on chain (`settled` shares in all)
/// hold everything the CLOB said its order matched, and says whether they do. What the settlement
/// check took out comes back in parts; until the last, the fill keeps saying some never settled.
pub(super) fn whole_again(tx: &Connection, row: i64, settled: Shares) -> StoreResult<bool> {
    let clob: Option<i64> =
        tx.query_row("SELECT clob_shares FROM orders WHERE fill_id = ?1", [row], |r| r.get(0)).optional()?.flatten();
    let whole = clob.is_none_or(|c| settled.0 + SETTLED_WITHIN.0 >= c);
    if whole {
        tx.execute("UPDATE fills SET reason = NULL, detail = NULL WHERE id = ?1 AND reason = 'unsettled'", [row])?;
    }
    Ok(whole)
}

/// True while our position in `token` holds fewer shares than the BUYs of it overdue at
/// `before_ms` (matched, not settled) still wait for on chain: their take-out would find them sold.
fn buys_lack_shares(tx: &Connection, token: &str, before_ms: i64) -> StoreResult<bool> {
    let waiting: i64 = tx.query_row(
        "SELECT COALESCE(SUM(e.shares - COALESCE((SELECT SUM(f.shares) FROM own_fills f \
           WHERE f.order_id = o.order_id), 0)), 0) \
         FROM orders o JOIN executions e ON e.fill_id = o.fill_id \
         WHERE e.token_id = ?1 AND e.side = 'BUY' AND o.status = 'matched' AND o.settled = 0 AND o.updated_at_ms < ?2",
        params![token, before_ms],
        |r| r.get(0),
    )?;
    Ok(position_of(tx, token)?.shares.0 + SETTLED_WITHIN.0 < waiting)
}

/// What our fills on chain of fill `row`'s order add up to.
fn settled_on_chain(tx: &Connection, row: i64) -> StoreResult<(Shares, Usdc)> {
    let (shares, usdc): (i64, i64) = tx.query_row(
        "SELECT COALESCE(SUM(f.shares), 0), COALESCE(SUM(f.usdc), 0) FROM own_fills f \
         JOIN orders o ON o.order_id = f.order_id WHERE o.fill_id = ?1",
        [row],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((Shares(shares), Usdc(usdc)))
}

/// Makes the execution `exec` what settled (`shares` for `usdc`), in its row and its order's, and
/// returns it.
fn shrink(tx: &Connection, exec: &Execution, shares: Shares, usdc: Usdc) -> StoreResult<Execution> {
    let price = Price::average(shares, usdc);
    tx.execute(
        "UPDATE executions SET shares = ?2, usdc = ?3, price = ?4 WHERE fill_id = ?1",
        params![exec.fill_row, shares.0, usdc.0, price.0],
    )?;
    tx.execute(
        "UPDATE orders SET shares = ?2, usdc = ?3 WHERE fill_id = ?1",
        params![exec.fill_row, shares.0, usdc.0],
    )?;
    Ok(Execution { shares, usdc, price, ..exec.clone() })
}

/// Keeps in the execution what settled (`shares` for `usdc`) and returns the part that did not,
/// with what that part had put on the books. A SELL's held shares and released cost basis are
/// split by shares: the part kept realizes what the chain paid for it over its share of that
/// cost, and the part taken out gives its share back to the position.
fn unsettled_part(
    tx: &Connection,
    exec: &Execution,
    booked: Booked,
    shares: Shares,
    usdc: Usdc,
) -> StoreResult<(Execution, Booked)> {
    let part_shares = Shares(exec.shares.0 - shares.0);
    let part_usdc = Usdc(exec.usdc.0 - usdc.0);
    // The shares the book held are split by shares too: a SELL beyond the book leaves its unheld
    // share in each part.
    let part_held = Shares(share_of(booked.held.0, part_shares.0, exec.shares.0));
    let (part_released, part_realized) = match exec.side {
        Side::Buy => (Usdc::ZERO, Usdc::ZERO),
        Side::Sell => {
            let part_cost = share_of(booked.released.0, part_held.0, booked.held.0);
            (Usdc(part_cost), Usdc(proceeds_of(part_usdc, part_held, part_shares).0 - part_cost))
        }
    };
    shrink(tx, exec, shares, usdc)?;
    tx.execute(
        "UPDATE executions SET realized_pnl = realized_pnl - ?2, held = ?3, \
         released = CASE WHEN side = 'SELL' THEN ?4 END WHERE fill_id = ?1",
        params![exec.fill_row, part_realized.0, booked.held.0 - part_held.0, booked.released.0 - part_released.0],
    )?;
    let part = Execution {
        shares: part_shares,
        usdc: part_usdc,
        price: Price::average(part_shares, part_usdc),
        ..exec.clone()
    };
    let part_booked = Booked {
        shares: part_shares,
        usdc: part_usdc,
        realized: part_realized,
        held: part_held,
        released: part_released,
    };
    Ok((part, part_booked))
}

/// `amount` × `part` / `whole`, exactly in 128 bits (`amount` whole when `whole` is not positive).
fn share_of(amount: i64, part: i64, whole: i64) -> i64 {
    if whole <= 0 || part >= whole {
        return amount;
    }
    i64::try_from(i128::from(amount) * i128::from(part) / i128::from(whole)).unwrap_or(amount)
}

/// What the execution of fill `row` put on the books. For a row written before `held` was kept,
/// every share counts as held; before `released` was, the cost it released is derived from its
/// proceeds and P&L.
pub(super) fn booked_of(tx: &Connection, row: i64) -> StoreResult<Booked> {
    let (side, shares, usdc, realized, held, released): (String, i64, i64, i64, i64, Option<i64>) = tx.query_row(
        "SELECT side, shares, usdc, realized_pnl, COALESCE(held, shares), released FROM executions WHERE fill_id = ?1",
        [row],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
    )?;
    let (shares, usdc, realized, held) = (Shares(shares), Usdc(usdc), Usdc(realized), Shares(held));
    let released = match (Side::parse(&side), released) {
        (Some(Side::Buy), _) => Usdc::ZERO,
        (Some(Side::Sell), Some(r)) => Usdc(r),
        (Some(Side::Sell), None) => released_derived(usdc, held, shares, realized),
        (None, _) => return Err(super::StoreError::Corrupt { column: "executions.side", value: side }),
    };
    Ok(Booked { shares, usdc, realized, held, released })
}
