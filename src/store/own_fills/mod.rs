//! Our own fills on chain, booked for orders whose outcome the CLOB never confirmed.
//!
//! The CLOB may answer `null` to a lookup of an order it filled (docs/PROTOCOL.md §7), and a POST may
//! never be answered at all. Our funder's `OrderFilled` on chain, whose order hash is our order id,
//! is the final word: it books the execution, in the same transaction as the order's outcome.

use alloy::primitives::Address;
use rusqlite::{Connection, OptionalExtension, params};

use super::correction::correct_sell_in;
use super::journal::{exec as run, query_one, record_execution_in, write_position};
use super::settlement::SETTLED_WITHIN;
use super::{Store, StoreError, StoreResult, dec_u256, hex_addr, now_ms};
use crate::clob::order::StoredOrder;
use crate::domain::{ExecMode, Execution, Price, Shares, Side, Usdc};
use crate::risk::book::{Booked, booked_on};
use crate::risk::{Position, Written};
use crate::store::FillStatus;

/// An order of ours booked from its fill on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnBooking {
    /// What was booked: the whole fill so far, or the part a later transaction added.
    pub exec: Execution,
    /// The target whose fill the order copied.
    pub wallet: Address,
    /// Our position afterwards, as the journal wrote it.
    pub position: Written,
    /// P&L realized.
    pub realized: Usdc,
    /// What the journal had decided for the fill before (rejected, withdrawn), when the fill on
    /// chain overturned it: the operator is told, as the decision was wrong.
    pub overturned: Option<FillStatus>,
    /// The order may still fill further (a GTD order before its expiry, with no final answer):
    /// it stays watched and what may still fill stays reserved.
    pub open: bool,
    /// The token's later executions booked again with this part (the rest of a match taken out
    /// of the books, settling late): when each was booked (unix ms) and what that changed of its
    /// realized P&L.
    pub restated: Vec<(i64, Usdc)>,
}

/// What our own fill on chain did to our order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnSettlement {
    /// Not an order of ours, or a transaction already counted.
    Nothing,
    /// A booked order is now known to be settled on chain.
    Settled,
    /// An order the CLOB never confirmed is booked from its fill, or a booked one filled further.
    Booked(OwnBooking),
    /// A booked SELL's fills on chain hold its shares for other pUSD than booked (it was priced at
    /// its limit): the chain's amount replaces it.
    Corrected(super::correction::Correction),
}

/// The part of an execution a later fill of its order added (see [`grow_execution_in`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grown {
    /// The part: the shares and pUSD added.
    pub part: Execution,
    /// The target whose fill the order copied.
    pub wallet: Address,
    /// Our position afterwards, as the journal wrote it.
    pub position: Written,
    /// P&L the part realized.
    pub realized: Usdc,
    /// The token's later executions booked again with the part ([`slot_part`]): when each was
    /// booked (unix ms) and what that changed of its realized P&L.
    pub restated: Vec<(i64, Usdc)>,
}

/// What one transaction of our fills on chain did: to the order's booking, and the fee it paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnSettled {
    /// What the fills did to the order's booking.
    pub settlement: OwnSettlement,
    /// The fee this transaction charged, booked now as realized P&L (0 when it had none, or was
    /// counted before).
    pub fee: Usdc,
    /// When the journal booked it (unix ms): the trading day whose P&L it is in.
    pub at_ms: i64,
}

/// A fee of ours a reorg forgot with its fill (see [`Store::rewind`]): realized P&L gives it
/// back until the fill is read again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgottenFee {
    /// Our order id.
    pub order_id: String,
    /// The fee, pUSD.
    pub fee: Usdc,
    /// When it was booked (unix ms): the day whose P&L it was in.
    pub at_ms: i64,
}

impl Store {
    /// [`Store::settle_own_fill_paying`] for a fill that charged no fee.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn settle_own_fill(
        &mut self,
        order_id: &str,
        shares: Shares,
        usdc: Usdc,
        at: (&str, u64),
    ) -> StoreResult<OwnSettlement> {
        Ok(self.settle_own_fill_paying(order_id, shares, usdc, Usdc::ZERO, at)?.settlement)
    }

    /// Settles our order `order_id` with its fill in transaction `tx_hash`, read in `block` (`shares` for `usdc`, all
    /// its logs summed, and the `fee` they charged), in one call on the journal's one thread, so no outcome the executor journals
    /// meanwhile can slip in between. Each transaction counts once, however often it is read. An
    /// order can fill in several (a GTD order resting on the book, a big match the operator settles
    /// in parts), so what the chain says is the sum of them all: an order with no execution yet is
    /// booked from that sum; a booked one grows by what the sum adds to it, a booked SELL takes
    /// the sum's proceeds, and it is marked settled once the sum holds every share booked. The
    /// fee is realized P&L from now (the moment it was read), whatever becomes of the booking: it
    /// was paid on chain.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn settle_own_fill_paying(
        &mut self,
        order_id: &str,
        shares: Shares,
        usdc: Usdc,
        fee: Usdc,
        (tx_hash, block): (&str, u64),
    ) -> StoreResult<OwnSettled> {
        let at_ms = now_ms();
        let nothing = OwnSettled { settlement: OwnSettlement::Nothing, fee: Usdc::ZERO, at_ms };
        let id = order_id.to_ascii_lowercase();
        let tx = self.conn.savepoint()?;
        let order: Option<(i64, bool, String, String)> = tx
            .query_row(
                "SELECT o.fill_id, EXISTS (SELECT 1 FROM executions e WHERE e.fill_id = o.fill_id), o.signed, o.status \
                 FROM orders o WHERE o.order_id = ?1",
                [&id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((fill_row, booked, signed, status)) = order else { return Ok(nothing) };
        let signed: StoredOrder = serde_json::from_str(&signed)
            .map_err(|_| StoreError::Corrupt { column: "orders.signed", value: signed })?;
        let open = may_still_fill(&signed, &status, now_ms() / 1000);
        // A fee below zero is a node's nonsense, not a rebate: it books nothing.
        let fee = Usdc(fee.0.max(0));
        // Each row within what the order can give and get: the journal sums the rows, and SQLite's
        // SUM fails on an overflow (the feed would read the same range again for ever).
        let (shares, usdc, fee) = within_the_order(&signed, shares, usdc, fee);
        let counted = run(
            &tx,
            "INSERT OR IGNORE INTO own_fills (order_id, tx_hash, shares, usdc, seen_at_ms, block_number, fee) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![id, tx_hash, shares.0, usdc.0, at_ms, i64::try_from(block).unwrap_or(i64::MAX), fee.0],
        )?;
        if counted == 0 || shares.0 <= 0 {
            return Ok(nothing);
        }
        let (all_shares, all_usdc): (i64, i64) = query_one(
            &tx,
            "SELECT COALESCE(SUM(shares), 0), COALESCE(SUM(usdc), 0) FROM own_fills WHERE order_id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (all_shares, all_usdc) = capped_at_size(&signed, Shares(all_shares), Usdc(all_usdc), &id);
        let fill = OwnFillSum { fill_row, shares: all_shares, usdc: all_usdc, tx_hash, open };
        let settlement = if booked {
            settle_booked(&tx, &id, &fill)?
        } else {
            book_own_fill(&tx, &fill)?.map_or(OwnSettlement::Nothing, OwnSettlement::Booked)
        };
        tx.commit()?;
        Ok(OwnSettled { settlement, fee, at_ms })
    }
}

/// Forgets our fills on chain read above block `ancestor` (a reorg took those blocks away) until
/// the chain is read again: a fill still there comes back with it, and a settlement the operator
/// resubmitted in another transaction then counts once, not twice. An order whose settling
/// transaction was among them waits for its settlement again (so it is taken out if it never comes
/// back); one taken out and settled late is out again when nothing of it is left on chain. Every
/// order they touched counts its wait from now, so none is taken out before the rescan could read
/// its fills again. Returns the fees they had booked (realized P&L gives them back). Inside the
/// rewind's transaction.
pub(super) fn rewind_own_fills(tx: &Connection, ancestor: u64) -> StoreResult<Vec<ForgottenFee>> {
    let above = i64::try_from(ancestor).unwrap_or(i64::MAX);
    let gone: Vec<(String, String, i64, i64)> = {
        let mut st = tx.prepare("SELECT order_id, tx_hash, fee, seen_at_ms FROM own_fills WHERE block_number > ?1")?;
        let rows = st.query_map([above], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    run(tx, "DELETE FROM own_fills WHERE block_number > ?1", [above])?;
    let now = now_ms();
    for (order, gone_tx, _, _) in &gone {
        let left: i64 =
            query_one(tx, "SELECT COALESCE(SUM(shares), 0) FROM own_fills WHERE order_id = ?1", [order], |r| r.get(0))?;
        // An order settled before `own_fills` kept every transaction has no row for its settling
        // one: what the journal cannot count again, it leaves settled. (No settling transaction:
        // kept in part by the settlement check before it named one, so settled by these fills.)
        run(
            tx,
            "UPDATE orders SET settled = CASE settled WHEN 1 THEN 0 ELSE -1 END \
             WHERE order_id = ?1 AND ((settled = 1 AND ?3 + ?4 < \
             (SELECT e.shares FROM executions e WHERE e.fill_id = orders.fill_id) \
             AND (settle_tx IS NULL OR settle_tx = ?2 OR EXISTS (SELECT 1 FROM own_fills f \
             WHERE f.order_id = orders.order_id AND f.tx_hash = orders.settle_tx))) \
             OR (settled = 2 AND ?3 = 0))",
            params![order, gone_tx, left, SETTLED_WITHIN.0],
        )?;
        run(
            tx,
            "UPDATE orders SET updated_at_ms = MAX(updated_at_ms, ?2) WHERE order_id = ?1 AND settled = 0",
            params![order, now],
        )?;
    }
    if !gone.is_empty() {
        tracing::warn!(
            fills = gone.len(),
            after_block = ancestor,
            "reorg: our fills on chain in the blocks it took away wait to be read again"
        );
    }
    Ok(gone
        .into_iter()
        .filter(|(_, _, fee, _)| *fee > 0)
        .map(|(order_id, _, fee, at_ms)| ForgottenFee { order_id, fee: Usdc(fee), at_ms })
        .collect())
}

/// What our fills on chain (`f`, their sum) do to a booked order: grow its execution by what they
/// add, correct a SELL's proceeds, or mark it settled once they hold every share booked.
fn settle_booked(tx: &Connection, order_id: &str, f: &OwnFillSum<'_>) -> StoreResult<OwnSettlement> {
    let grown = grow_execution_in(tx, f.fill_row, f.shares, f.usdc, now_ms())?;
    let corrected = match grown {
        None => correct_sell_in(tx, f.fill_row, f.shares, f.usdc)?,
        Some(_) => None,
    };
    let settled = order_settled(tx, order_id, f.tx_hash, f.shares)?;
    if grown.is_some() {
        // A rest taken out earlier came back, in all or in part.
        super::settlement::whole_again(tx, f.fill_row, f.shares)?;
    }
    if grown.is_some() || settled || corrected.is_some() {
        run(
            tx,
            "UPDATE orders SET shares = MAX(COALESCE(shares, 0), ?2), usdc = CASE WHEN COALESCE(shares, 0) < ?2 OR ?4 \
             THEN ?3 ELSE usdc END WHERE fill_id = ?1",
            params![f.fill_row, f.shares.0, f.usdc.0, corrected.is_some()],
        )?;
    }
    Ok(match (grown, corrected) {
        (_, Some(c)) => OwnSettlement::Corrected(c),
        (Some(g), None) => OwnSettlement::Booked(OwnBooking {
            exec: g.part,
            wallet: g.wallet,
            position: g.position,
            realized: g.realized,
            overturned: None,
            open: f.open,
            restated: g.restated,
        }),
        (None, None) if settled => OwnSettlement::Settled,
        (None, None) => OwnSettlement::Nothing,
    })
}

/// Marks our booked order settled on chain once our fills there (`settled_shares` in all) hold
/// every share booked (within [`SETTLED_WITHIN`]): a part alone leaves it waiting, so what never settles of it is taken out
/// when it is overdue. An order already taken out of the books is marked `2` (settled late) at
/// its first part, so what settled is put back. Returns whether the order was still waiting.
fn order_settled(tx: &Connection, order_id: &str, tx_hash: &str, settled_shares: Shares) -> StoreResult<bool> {
    let n = run(
        tx,
        "UPDATE orders SET settled = CASE settled WHEN -1 THEN 2 ELSE 1 END, settle_tx = ?2 \
         WHERE order_id = ?1 AND (settled = -1 OR (settled = 0 AND ?3 >= \
         (SELECT e.shares FROM executions e WHERE e.fill_id = orders.fill_id)))",
        params![order_id, tx_hash, settled_shares.0.saturating_add(SETTLED_WITHIN.0)],
    )?;
    Ok(n > 0)
}

/// What our fills on chain of one order add up to, and whether the order may still fill.
struct OwnFillSum<'a> {
    fill_row: i64,
    shares: Shares,
    usdc: Usdc,
    /// The last transaction.
    tx_hash: &'a str,
    open: bool,
}

/// True while `order` may still fill: a GTD order before its expiry with no final answer yet
/// (`status` as the journal has it). A FAK or FOK order matched when it arrived, or never.
fn may_still_fill(order: &StoredOrder, status: &str, now_s: i64) -> bool {
    let expiry_s = i64::try_from(order.expiration).unwrap_or(i64::MAX);
    order.order_type.eq_ignore_ascii_case("GTD")
        && expiry_s > now_s
        && !matches!(status, "matched" | "no_fill" | "rejected")
}

/// One fill's figures clamped to the most its order can give or get (see [`capped_at_size`]):
/// never more than a node's saturated sums, which would overflow the journal's.
fn within_the_order(order: &StoredOrder, shares: Shares, usdc: Usdc, fee: Usdc) -> (Shares, Usdc, Usdc) {
    let Ok(gives) = i64::try_from(order.maker_amount) else { return (shares, usdc, fee) };
    if gives <= 0 {
        return (shares, usdc, fee);
    }
    let (most_shares, most_usdc) = if order.side == 0 { (gives.saturating_mul(10_000), gives) } else { (gives, gives) };
    (Shares(shares.0.min(most_shares)), Usdc(usdc.0.min(most_usdc)), Usdc(fee.0.min(most_usdc)))
}

/// The sum of our fills of `order`, never more than the order gives: the exchange never takes
/// more than an order's maker amount (pUSD for our BUY, shares for our SELL; the other side may
/// exceed the signed amount, as a better price goes to the taker as surplus), so more means a
/// settlement counted twice (a reorg forgets the fills it took away, so not from one, except for
/// rows read before fills carried their block). It is said, and capped, the other side in
/// proportion.
fn capped_at_size(order: &StoredOrder, shares: Shares, usdc: Usdc, order_id: &str) -> (Shares, Usdc) {
    let Ok(gives) = i64::try_from(order.maker_amount) else { return (shares, usdc) };
    if gives <= 0 {
        return (shares, usdc);
    }
    let buy = order.side == 0;
    let (mut given, mut other) = if buy { (usdc.0, shares.0) } else { (shares.0, usdc.0) };
    // What the order can get for what it gives: a BUY's shares at the lowest price any tick allows
    // (0.0001), a SELL's pUSD at a price of at most 1. Beyond that a node's figures are absurd, and
    // kept, their sums would overflow the book's arithmetic (overflow checks are on).
    let gets_at_most = if buy { gives.saturating_mul(10_000) } else { gives };
    if given > gives {
        tracing::error!(
            order = order_id,
            gave = given,
            signed = gives,
            "our fills on chain add up to more than the order gives: capped at it (a settlement counted twice?); check with reconcile"
        );
        other = i64::try_from(i128::from(other) * i128::from(gives) / i128::from(given)).unwrap_or(other);
        given = gives;
    }
    // After the proportion above: a SELL counted twice at 0.99 gets 9.9 for its 10 shares, not a
    // cap taken before halving it.
    if other > gets_at_most {
        tracing::error!(
            order = order_id,
            got = other,
            most = gets_at_most,
            "our fills on chain got more than the order can get: capped at it (a node's absurd figures?); check with reconcile"
        );
        other = gets_at_most;
    }
    if buy { (Shares(other), Usdc(given)) } else { (Shares(given), Usdc(other)) }
}

/// Books the order of `f.fill_row` from its fills on chain, when its fill has no execution yet:
/// still pending, or even decided otherwise (refused after an unanswered send, say), as what the
/// chain holds is what we own. An order that may still fill keeps its status, so it stays watched
/// (and is watched again after a restart); any other becomes `matched`.
fn book_own_fill(tx: &Connection, f: &OwnFillSum<'_>) -> StoreResult<Option<OwnBooking>> {
    let (side, token, wallet, status): (String, String, String, FillStatus) = query_one(
        tx,
        "SELECT i.side, i.token_id, f.wallet, f.status FROM intents i JOIN fills f ON f.id = i.fill_id \
         WHERE i.fill_id = ?1",
        [f.fill_row],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let overturned = (status != FillStatus::Pending).then_some(status);
    let side = Side::parse(&side).ok_or(StoreError::Corrupt { column: "intents.side", value: side })?;
    let exec = Execution {
        fill_row: f.fill_row,
        side,
        token_id: dec_u256(&token, "intents.token_id")?,
        shares: f.shares,
        price: Price::average(f.shares, f.usdc),
        usdc: f.usdc,
        mode: ExecMode::Live,
        at_ms: now_ms(),
    };
    let wallet = hex_addr(&wallet, "fills.wallet")?;
    let (status, message) = if f.open {
        ("status", "part booked from our fill on chain; the rest may still fill")
    } else {
        ("'matched'", "booked from our fill on chain")
    };
    run(
        tx,
        &format!(
            "UPDATE orders SET status = {status}, shares = ?2, usdc = ?3, settled = 1, settle_tx = ?4, \
             message = ?6, updated_at_ms = ?5 WHERE fill_id = ?1"
        ),
        params![f.fill_row, f.shares.0, f.usdc.0, f.tx_hash, now_ms(), message],
    )?;
    let booked = record_execution_in(tx, &exec, &wallet)?;
    Ok(booked.map(|(position, realized)| OwnBooking {
        exec,
        wallet,
        position,
        realized,
        overturned,
        open: f.open,
        restated: Vec::new(),
    }))
}

/// Grows the execution of `fill_row` to `shares` for `usdc` in all, when that is more shares than
/// it holds: an order that fills in parts is booked part by part, each part moving the position and
/// P&L by what it adds (so the totals are exact whichever source, the CLOB or the chain, said
/// more first). An execution taken out of the books (its match reversed) grows in its row only:
/// putting it back brings the whole. Returns the part booked (dated to its execution), if any.
pub(crate) fn grow_execution_in(
    tx: &Connection,
    fill_row: i64,
    shares: Shares,
    usdc: Usdc,
    at_ms: i64,
) -> StoreResult<Option<Grown>> {
    type Row = (String, String, String, i64, i64, bool, i64);
    let row: Option<Row> = tx
        .query_row(
            "SELECT e.side, e.token_id, e.wallet, e.shares, e.usdc, \
             EXISTS (SELECT 1 FROM orders o WHERE o.fill_id = e.fill_id AND o.settled IN (-1, 2)), e.executed_at_ms \
             FROM executions e WHERE e.fill_id = ?1",
            [fill_row],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
        )
        .optional()?;
    let Some((side, token, wallet, had_shares, had_usdc, out_of_books, booked_at_ms)) = row else { return Ok(None) };
    if shares.0 <= had_shares {
        return Ok(None);
    }
    let side = Side::parse(&side).ok_or(StoreError::Corrupt { column: "executions.side", value: side })?;
    let part_shares = Shares(shares.0 - had_shares);
    let part_usdc = Usdc(usdc.0.saturating_sub(had_usdc));
    let part = Execution {
        fill_row,
        side,
        token_id: dec_u256(&token, "executions.token_id")?,
        shares: part_shares,
        price: Price::average(part_shares, part_usdc),
        usdc: part_usdc,
        mode: ExecMode::Live,
        // The part belongs to its execution, whose time dates its P&L (the journal's sums and the
        // supervisor's day agree on it).
        at_ms: booked_at_ms,
    };
    let before = super::journal::position_of(tx, &token)?;
    // Out of the books, a part waits like the rest: putting it back books it whole.
    let (after, booked) = if out_of_books {
        let waiting = Booked {
            shares: part_shares,
            usdc: part_usdc,
            realized: Usdc::ZERO,
            held: part_shares,
            released: Usdc::ZERO,
        };
        (Position::default(), waiting)
    } else {
        booked_on(before, &part)
    };
    // What the rows before this part released is kept first (derived for a row written before it
    // was), so that the part's own release adds to it.
    let had = super::settlement::booked_of(tx, fill_row)?;
    let had_released = had.released;
    let released = (side == Side::Sell).then_some(had_released.0 + booked.released.0);
    let realized = booked.realized;
    run(
        tx,
        "UPDATE executions SET shares = ?2, usdc = ?3, price = ?4, realized_pnl = realized_pnl + ?5, \
         held = COALESCE(held, ?6) + ?7, released = ?8 WHERE fill_id = ?1",
        params![
            fill_row,
            shares.0,
            usdc.0,
            Price::average(shares, usdc).0,
            realized.0,
            had_shares,
            booked.held.0,
            released
        ],
    )?;
    if out_of_books {
        return Ok(None);
    }
    let position = write_position(tx, &token, after, at_ms)?;
    let (position, restated) = slot_part(tx, &token, (fill_row, booked_at_ms), before, (side, had), position)?;
    // A close that sold the rest of the position in this part: dated now, as the claims it ends
    // are of copies booked before this moment.
    let by_operator = wallet == crate::domain::addr_lower(&crate::domain::OPERATOR);
    super::book::note_operator_close(tx, by_operator, side, &token, after, at_ms.max(now_ms()))?;
    Ok(Some(Grown { part, wallet: hex_addr(&wallet, "executions.wallet")?, position, realized, restated }))
}

/// Where a part booked late belongs in the order of bookings. The rest of a match the settlement
/// check took out, settling late, belongs to its execution's own booking: the token's executions
/// booked after it are booked again with it ([`super::restate`]), as a put-back does. Any other
/// part (a GTD order filling over time) was booked at the position as it was when it came, and is
/// stamped as such, so a later rebooking that cannot place it exactly is not made.
fn slot_part(
    tx: &Connection,
    token: &str,
    (row, at_ms): (i64, i64),
    before: Position,
    had: (Side, crate::risk::book::Booked),
    position: Written,
) -> StoreResult<(Written, Vec<(i64, Usdc)>)> {
    let came_back: bool = query_one(
        tx,
        "SELECT EXISTS (SELECT 1 FROM orders WHERE fill_id = ?1 AND clob_shares IS NOT NULL)",
        [row],
        |r| r.get(0),
    )?;
    if came_back {
        let pivot = super::restate::Pivot { row, at_ms };
        if let Some(r) = super::restate::restate_after(tx, token, pivot, before, Some(had))? {
            return Ok((r.position, r.changes));
        }
    }
    let seq = super::journal::next_booking(tx)?;
    run(tx, "UPDATE executions SET grown_seq = ?2 WHERE fill_id = ?1", params![row, seq])?;
    Ok((position, Vec::new()))
}

#[cfg(test)]
mod tests;
