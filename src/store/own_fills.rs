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
}

impl Store {
    /// Settles our order `order_id` with its fill in transaction `tx_hash`, read in `block` (`shares` for `usdc`, all
    /// its logs summed), in one call on the journal's one thread, so no outcome the executor journals
    /// meanwhile can slip in between. Each transaction counts once, however often it is read. An
    /// order can fill in several (a GTD order resting on the book, a big match the operator settles
    /// in parts), so what the chain says is the sum of them all: an order with no execution yet is
    /// booked from that sum; a booked one grows by what the sum adds to it, a booked SELL takes
    /// the sum's proceeds, and it is marked settled once the sum holds every share booked.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn settle_own_fill(
        &mut self,
        order_id: &str,
        shares: Shares,
        usdc: Usdc,
        (tx_hash, block): (&str, u64),
    ) -> StoreResult<OwnSettlement> {
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
        let Some((fill_row, booked, signed, status)) = order else { return Ok(OwnSettlement::Nothing) };
        let signed: StoredOrder = serde_json::from_str(&signed)
            .map_err(|_| StoreError::Corrupt { column: "orders.signed", value: signed })?;
        let open = may_still_fill(&signed, &status, now_ms() / 1000);
        let counted = run(
            &tx,
            "INSERT OR IGNORE INTO own_fills (order_id, tx_hash, shares, usdc, seen_at_ms, block_number) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, tx_hash, shares.0, usdc.0, now_ms(), i64::try_from(block).unwrap_or(i64::MAX)],
        )?;
        if counted == 0 || shares.0 <= 0 {
            return Ok(OwnSettlement::Nothing);
        }
        let (all_shares, all_usdc): (i64, i64) = query_one(
            &tx,
            "SELECT COALESCE(SUM(shares), 0), COALESCE(SUM(usdc), 0) FROM own_fills WHERE order_id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (all_shares, all_usdc) = capped_at_size(&signed, Shares(all_shares), Usdc(all_usdc), &id);
        let fill = OwnFillSum { fill_row, shares: all_shares, usdc: all_usdc, tx_hash, open };
        let result = if booked {
            settle_booked(&tx, &id, &fill)?
        } else {
            book_own_fill(&tx, &fill)?.map_or(OwnSettlement::Nothing, OwnSettlement::Booked)
        };
        tx.commit()?;
        Ok(result)
    }
}

/// Forgets our fills on chain read above block `ancestor` (a reorg took those blocks away) until
/// the chain is read again: a fill still there comes back with it, and a settlement the operator
/// resubmitted in another transaction then counts once, not twice. An order whose settling
/// transaction was among them waits for its settlement again (so it is taken out if it never comes
/// back); one taken out and settled late is out again when nothing of it is left on chain. Every
/// order they touched counts its wait from now, so none is taken out before the rescan could read
/// its fills again. Returns the fills forgotten. Inside the rewind's transaction.
pub(super) fn rewind_own_fills(tx: &Connection, ancestor: u64) -> StoreResult<usize> {
    let above = i64::try_from(ancestor).unwrap_or(i64::MAX);
    let gone: Vec<(String, String)> = {
        let mut st = tx.prepare("SELECT order_id, tx_hash FROM own_fills WHERE block_number > ?1")?;
        let rows = st.query_map([above], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    run(tx, "DELETE FROM own_fills WHERE block_number > ?1", [above])?;
    let now = now_ms();
    for (order, gone_tx) in &gone {
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
    Ok(gone.len())
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
        params![order_id, tx_hash, settled_shares.0 + SETTLED_WITHIN.0],
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

/// The sum of our fills of `order`, never more than the order gives: the exchange never takes
/// more than an order's maker amount (pUSD for our BUY, shares for our SELL; the other side may
/// exceed the signed amount, as a better price goes to the taker as surplus), so more means a
/// settlement counted twice (a reorg forgets the fills it took away, so not from one, except for
/// rows read before fills carried their block). It is said, and capped, the other side in
/// proportion.
fn capped_at_size(order: &StoredOrder, shares: Shares, usdc: Usdc, order_id: &str) -> (Shares, Usdc) {
    let Ok(gives) = i64::try_from(order.maker_amount) else { return (shares, usdc) };
    let (given, other) = if order.side == 0 { (usdc.0, shares.0) } else { (shares.0, usdc.0) };
    if gives <= 0 || given <= gives {
        return (shares, usdc);
    }
    tracing::error!(
        order = order_id,
        gave = given,
        signed = gives,
        "our fills on chain add up to more than the order gives: capped at it (a settlement counted twice?); check with reconcile"
    );
    let other = i64::try_from(i128::from(other) * i128::from(gives) / i128::from(given)).unwrap_or(other);
    if order.side == 0 { (Shares(other), Usdc(gives)) } else { (Shares(gives), Usdc(other)) }
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
    Ok(booked.map(|(position, realized)| OwnBooking { exec, wallet, position, realized, overturned, open: f.open }))
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
    let part_usdc = Usdc(usdc.0 - had_usdc);
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
        booked_on(super::journal::position_of(tx, &token)?, &part)
    };
    // What the rows before this part released is kept first (derived for a row written before it
    // was), so that the part's own release adds to it.
    let had_released = super::settlement::booked_of(tx, fill_row)?.released;
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
    Ok(Some(Grown { part, wallet: hex_addr(&wallet, "executions.wallet")?, position, realized }))
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256, U256};

    use super::*;
    use crate::clob::order::StoredOrder;
    use crate::store::tests::fill_in;
    use crate::store::{OrderStatus, SettlementStep};

    /// Our signed order `id` for 10 shares at a limit of 0.51.
    fn order(id: u8, side: Side) -> StoredOrder {
        let (pusd, shares) = (U256::from(5_100_000), U256::from(10_000_000));
        let (maker_amount, taker_amount) = if side == Side::Buy { (pusd, shares) } else { (shares, pusd) };
        StoredOrder {
            order_id: B256::repeat_byte(id),
            neg_risk: false,
            salt: 1,
            maker: Address::ZERO,
            signer: Address::ZERO,
            token_id: U256::from(7),
            maker_amount,
            taker_amount,
            side: u8::from(side == Side::Sell),
            signature_type: 0,
            timestamp: U256::ZERO,
            expiration: U256::ZERO,
            metadata: B256::ZERO,
            builder: B256::ZERO,
            signature: String::new(),
            order_type: "FAK".into(),
        }
    }

    /// Journals `n` copies of token 7 (`side`, 10 shares at 0.51), each with its stored order
    /// `0x5N`; returns their fill rows.
    fn copies(s: &mut Store, side: Side, n: u8) -> Vec<i64> {
        copies_from(s, side, 1, n)
    }

    /// [`copies`] of the fills `first..first + n` (orders `0x50 + first`…), for a journal that
    /// has earlier ones.
    fn copies_from(s: &mut Store, side: Side, first: u8, n: u8) -> Vec<i64> {
        let h = B256::repeat_byte;
        let fills: Vec<_> = (first..first + n).map(|i| fill_in(i, i, 5)).collect();
        let out = s.journal_range(&fills, (5, h(5)), &[]).unwrap();
        let rows: Vec<i64> = out.to_copy.iter().map(|p| p.row).collect();
        for (row, id) in rows.iter().zip(0x50 + first..) {
            let intent = crate::domain::OrderIntent {
                fill_row: *row,
                token_id: U256::from(7),
                ..crate::domain::test_intent(side, 10_000_000, 510_000, 500_000)
            };
            assert!(s.record_intent(&intent).unwrap());
            s.record_order(*row, &order(id, side)).unwrap();
        }
        rows
    }

    /// A live execution of token 7 for fill `row`: `shares` for `usdc`.
    fn live_exec(row: i64, side: Side, shares: i64, usdc: i64) -> Execution {
        Execution {
            fill_row: row,
            side,
            token_id: U256::from(7),
            shares: Shares(shares),
            price: Price::average(Shares(shares), Usdc(usdc)),
            usdc: Usdc(usdc),
            mode: ExecMode::Live,
            at_ms: 1,
        }
    }

    fn id(b: u8) -> String {
        format!("{:#x}", B256::repeat_byte(b))
    }

    fn position(s: &Store) -> (i64, i64) {
        let p = s.book().unwrap().positions.values().next().copied().unwrap_or_default();
        (p.shares.0, p.cost.0)
    }

    /// An order that fills in several transactions (a GTD order resting on the book) is booked
    /// part by part, whichever source says more first: the chain, or the CLOB's lookup. Each
    /// transaction counts once, and the totals are exactly what filled.
    #[test]
    fn an_order_filled_in_parts_is_booked_part_by_part_whoever_says_more_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let rows = copies(&mut s, Side::Buy, 1);
        let part = |got: OwnSettlement| match got {
            OwnSettlement::Booked(b) => (b.exec.shares.0, b.exec.usdc.0, b.position.position.shares.0),
            other => panic!("{other:?}"),
        };
        // 4 shares settle first: booked from the chain.
        assert_eq!(
            part(s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(2_000_000), ("0xa", 1)).unwrap()),
            (4_000_000, 2_000_000, 4_000_000)
        );
        assert_eq!(
            s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(2_000_000), ("0xa", 1)).unwrap(),
            OwnSettlement::Nothing,
            "read again"
        );
        // 3 more in a second transaction: only the part is booked.
        assert_eq!(
            part(s.settle_own_fill(&id(0x51), Shares(3_000_000), Usdc(1_530_000), ("0xb", 1)).unwrap()),
            (3_000_000, 1_530_000, 7_000_000)
        );
        assert_eq!(position(&s), (7_000_000, 3_530_000));
        // The CLOB's lookup says all 10 matched (at the limit, 5.10): the last 3 are booked.
        let whole = live_exec(rows[0], Side::Buy, 10_000_000, 5_100_000);
        let grown = s.record_execution(&whole, &Address::repeat_byte(0xaa)).unwrap();
        let (written, realized) = grown.unwrap();
        assert_eq!(
            (written.position, realized),
            (Position { shares: Shares(10_000_000), cost: Usdc(5_100_000) }, Usdc::ZERO)
        );
        assert_eq!(s.record_execution(&whole, &Address::repeat_byte(0xaa)).unwrap(), None, "said again");
        // Their transaction comes last: nothing more to book (a BUY's price improvement comes as
        // shares, and its logged pUSD is not corrected), and the order, which waited for these 3
        // since the lookup booked more than the chain held, is settled.
        assert_eq!(
            s.settle_own_fill(&id(0x51), Shares(3_000_000), Usdc(1_500_000), ("0xc", 1)).unwrap(),
            OwnSettlement::Settled
        );
        assert_eq!(position(&s), (10_000_000, 5_100_000));
        let (e, realized) = s.execution_for(rows[0]).unwrap().unwrap();
        assert_eq!((e.shares.0, e.usdc.0, e.price.0, realized.0), (10_000_000, 5_100_000, 510_000, 0));
    }

    /// The CLOB's answer after our fill on chain booked part of the order says what it booked: the
    /// part it adds, so the operator is told each part once; an answer adding nothing books nothing.
    #[test]
    fn an_answer_after_a_part_booked_on_chain_books_and_names_only_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let rows = copies(&mut s, Side::Buy, 1);
        let wallet = Address::repeat_byte(0xaa);
        s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(2_040_000), ("0xa", 1)).unwrap();
        let whole = Execution { at_ms: 86_400_000, ..live_exec(rows[0], Side::Buy, 10_000_000, 5_100_000) };
        let (part, written, _) = s.record_execution_part(&whole, &wallet).unwrap().unwrap();
        assert_eq!((part.shares.0, part.usdc.0, part.price.0), (6_000_000, 3_060_000, 510_000));
        let (first, _) = s.execution_for(rows[0]).unwrap().unwrap();
        assert_eq!(part.at_ms, first.at_ms, "dated to the execution it grows, a day before the answer");
        assert_eq!(written.position, Position { shares: Shares(10_000_000), cost: Usdc(5_100_000) });
        assert_eq!(s.record_execution_part(&whole, &wallet).unwrap(), None, "nothing more");
    }

    /// A SELL booked from the lookup at its limit (0.51) that matched higher gets the chain's
    /// proceeds and realizes the difference, once; a SELL settled for what was booked is only
    /// settled.
    #[test]
    fn the_chain_corrects_what_a_sell_booked_at_its_limit_got() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let wallet = Address::repeat_byte(0xaa);
        let held = Position { shares: Shares(30_000_000), cost: Usdc(15_000_000) };
        crate::store::journal::write_position(&s.conn, "7", held, 1).unwrap();
        let sells = copies(&mut s, Side::Sell, 3);
        s.record_execution(&live_exec(sells[0], Side::Sell, 10_000_000, 5_100_000), &wallet).unwrap();
        let (_, realized) = s.execution_for(sells[0]).unwrap().unwrap();
        assert_eq!(realized.0, 100_000, "as booked at the limit");
        let got = s.settle_own_fill(&id(0x51), Shares(10_000_000), Usdc(5_300_000), ("0xa", 1)).unwrap();
        let OwnSettlement::Corrected(c) = got else { panic!("{got:?}") };
        assert_eq!((c.booked.0, c.chain.0, c.realized.0), (5_100_000, 5_300_000, 200_000));
        let (e, realized) = s.execution_for(sells[0]).unwrap().unwrap();
        assert_eq!((e.usdc.0, e.price.0, realized.0), (5_300_000, 530_000, 300_000));
        assert_eq!(s.realized_today(1).unwrap().0, 300_000, "the execution (dated 1) carries it");
        let order = s.order_for(sells[0]).unwrap().unwrap();
        assert_eq!(order.amounts, Some((10_000_000, 5_300_000)), "the order's row says the chain's amounts");
        assert_eq!(position(&s), (20_000_000, 10_000_000), "the position's cost is not proceeds");
        assert_eq!(
            s.settle_own_fill(&id(0x51), Shares(10_000_000), Usdc(5_300_000), ("0xa", 1)).unwrap(),
            OwnSettlement::Nothing,
            "read again"
        );
        s.record_execution(&live_exec(sells[1], Side::Sell, 10_000_000, 5_100_000), &wallet).unwrap();
        let got = s.settle_own_fill(&id(0x52), Shares(10_000_000), Usdc(5_100_000), ("0xb", 1)).unwrap();
        assert_eq!(got, OwnSettlement::Settled);
        // Short of the shares booked by rounding (0.005): the proceeds are still the chain's.
        s.record_execution(&live_exec(sells[2], Side::Sell, 10_000_000, 5_100_000), &wallet).unwrap();
        let got = s.settle_own_fill(&id(0x53), Shares(9_995_000), Usdc(5_297_000), ("0xc", 1)).unwrap();
        let OwnSettlement::Corrected(c) = got else { panic!("{got:?}") };
        assert_eq!(c.realized.0, 197_000);
    }

    /// A match the CLOB answered for 10 shares of which our fills on chain settled 4: the order
    /// is not settled by that part; once overdue only the 6 that did not settle are taken out,
    /// and when they settle after all they are booked again, as any later part is.
    #[test]
    fn a_match_settled_in_part_loses_only_the_rest_when_overdue() {
        let (_dir, mut s, row) = bought();
        let (rows, wallet) = ([row], Address::repeat_byte(0xaa));
        s.order_outcome(rows[0], OrderStatus::Matched, Some((10_000_000, 5_100_000)), "matched").unwrap();
        assert_eq!(
            s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(2_040_000), ("0xa", 1)).unwrap(),
            OwnSettlement::Nothing,
            "a part does not settle the order"
        );
        assert_eq!(s.unsettled_before(i64::MAX).unwrap().len(), 1, "still waiting for the rest");
        let out = s.record_settlement_change(rows[0], false).unwrap().unwrap();
        assert_eq!((out.exec.shares.0, out.exec.usdc.0, out.kept.0), (6_000_000, 3_060_000, 4_000_000));
        assert_eq!(out.position.position, Position { shares: Shares(4_000_000), cost: Usdc(2_040_000) });
        let (e, _) = s.execution_for(rows[0]).unwrap().unwrap();
        assert_eq!((e.shares.0, e.usdc.0), (4_000_000, 2_040_000), "the execution keeps what settled");
        assert!(s.unsettled_before(i64::MAX).unwrap().is_empty(), "nothing more to take out");
        assert_eq!(s.record_settlement_change(rows[0], false).unwrap(), None, "made once");
        // A late CLOB answer for the whole match does not bring back what the chain disproved.
        let whole = live_exec(rows[0], Side::Buy, 10_000_000, 5_100_000);
        assert_eq!(s.record_execution_part(&whole, &wallet).unwrap(), None);
        assert_eq!(position(&s), (4_000_000, 2_040_000));
        // The rest settles after all, in two parts: each booked as a part, dated to its execution
        // (whose day its P&L counts on); the fill says some never settled until the last.
        match s.settle_own_fill(&id(0x51), Shares(2_000_000), Usdc(1_020_000), ("0xb", 1)).unwrap() {
            OwnSettlement::Booked(b) => assert_eq!((b.exec.shares.0, b.exec.at_ms), (2_000_000, 1)),
            other => panic!("{other:?}"),
        }
        assert_eq!(reason(&s, rows[0]).as_deref(), Some("unsettled"), "4 of the 10 still missing");
        assert_eq!(s.record_execution_part(&whole, &wallet).unwrap(), None, "the CLOB's word stays disproved");
        s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(2_040_000), ("0xc", 1)).unwrap();
        assert_eq!(reason(&s, rows[0]), None, "whole again");
        assert_eq!(position(&s), (10_000_000, 5_100_000));
    }

    /// The reason a fill's copy is not what it was booked as, if any.
    fn reason(s: &Store, row: i64) -> Option<String> {
        s.conn.query_row("SELECT reason FROM fills WHERE id = ?1", [row], |r| r.get(0)).unwrap()
    }

    /// A match taken out whole (nothing settled in time) of which a part settles later is put back
    /// as much as settled, and later parts grow it.
    #[test]
    fn a_match_taken_out_is_put_back_as_much_as_settled() {
        let (_dir, mut s, row) = bought();
        let rows = [row];
        let out = s.record_settlement_change(rows[0], false).unwrap().unwrap();
        assert_eq!((out.exec.shares.0, out.kept.0), (10_000_000, 0));
        assert_eq!(position(&s), (0, 0));
        s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(2_040_000), ("0xa", 1)).unwrap();
        let back = s.record_settlement_change(rows[0], true).unwrap().unwrap();
        assert_eq!((back.exec.shares.0, back.exec.usdc.0), (4_000_000, 2_040_000));
        assert_eq!(position(&s), (4_000_000, 2_040_000));
        assert_eq!(reason(&s, rows[0]).as_deref(), Some("unsettled"), "put back in part only");
        match s.settle_own_fill(&id(0x51), Shares(6_000_000), Usdc(3_060_000), ("0xb", 1)).unwrap() {
            OwnSettlement::Booked(b) => assert_eq!(b.exec.shares.0, 6_000_000),
            other => panic!("{other:?}"),
        }
        assert_eq!(position(&s), (10_000_000, 5_100_000));
        assert_eq!(reason(&s, rows[0]), None);
    }

    /// A journal with a BUY of 10 shares of token 7 booked (live, order 0x51) for 5.10, as the
    /// CLOB answered it; returns its fill row.
    fn bought() -> (tempfile::TempDir, Store, i64) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let row = copies(&mut s, Side::Buy, 1)[0];
        s.record_execution(&live_exec(row, Side::Buy, 10_000_000, 5_100_000), &Address::repeat_byte(0xaa)).unwrap();
        (dir, s, row)
    }

    /// A journal holding 10 shares of token 7 at a cost of 5.00, and a SELL of them booked (live,
    /// order 0x51) for `usdc`; returns its fill row.
    fn held_and_sold(usdc: i64) -> (tempfile::TempDir, Store, i64) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let row = copies(&mut s, Side::Sell, 1)[0];
        let held = Position { shares: Shares(10_000_000), cost: Usdc(5_000_000) };
        crate::store::journal::write_position(&s.conn, "7", held, 1).unwrap();
        s.record_execution(&live_exec(row, Side::Sell, 10_000_000, usdc), &Address::repeat_byte(0xaa)).unwrap();
        (dir, s, row)
    }

    /// A SELL of 10 (from 10 held at 5.00) of which 4 settled: the 6 taken out come back into the
    /// position at their share of the cost (3.00), and the 4 kept realize what the chain paid for
    /// them over theirs (2.00), whatever price the whole was booked at.
    #[test]
    fn a_sell_settled_in_part_splits_its_cost_by_shares() {
        // (booked pUSD, pUSD the 4 settled for, P&L change, P&L kept)
        let cases = [(6_000_000, 2_400_000, -600_000, 400_000), (5_100_000, 2_200_000, 100_000, 200_000)];
        for (booked, settled, change, kept) in cases {
            let (_dir, mut s, row) = held_and_sold(booked);
            s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(settled), ("0xa", 1)).unwrap();
            let out = s.record_settlement_change(row, false).unwrap().unwrap();
            assert_eq!((out.exec.shares.0, out.realized_change.0), (6_000_000, change), "{booked}");
            assert_eq!(out.position.position, Position { shares: Shares(6_000_000), cost: Usdc(3_000_000) });
            let (e, realized) = s.execution_for(row).unwrap().unwrap();
            assert_eq!((e.shares.0, e.usdc.0, realized.0), (4_000_000, settled, kept), "{booked}");
        }
    }

    /// A later SELL of shares we held anyway is not taken out with an unsettled BUY: the position
    /// has what the BUY's take-out needs, so the SELL (which may well settle) stays booked.
    #[test]
    fn a_sell_of_shares_held_anyway_stays_when_a_buy_is_taken_out() {
        let (_dir, mut s, buy) = bought();
        let held = Position { shares: Shares(110_000_000), cost: Usdc(55_100_000) };
        crate::store::journal::write_position(&s.conn, "7", held, 2).unwrap();
        let sell = copies_from(&mut s, Side::Sell, 2, 1)[0];
        s.record_execution(&live_exec(sell, Side::Sell, 50_000_000, 30_000_000), &Address::repeat_byte(0xaa)).unwrap();
        s.order_outcome(buy, OrderStatus::Matched, Some((10_000_000, 5_100_000)), "matched").unwrap();
        s.order_outcome(sell, OrderStatus::Matched, Some((50_000_000, 30_000_000)), "matched").unwrap();
        s.conn.execute("UPDATE orders SET updated_at_ms = 100 WHERE fill_id = ?1", [buy]).unwrap();
        s.conn.execute("UPDATE orders SET updated_at_ms = 300 WHERE fill_id = ?1", [sell]).unwrap();
        assert!(s.unsettled_before(200).unwrap().iter().any(|u| u.fill_row == sell && u.with_buy));
        assert_eq!(
            s.record_settlement_step(sell, SettlementStep::WithBuy { before_ms: 200 }).unwrap(),
            None,
            "not needed"
        );
        let out = s.record_settlement_change(buy, false).unwrap().unwrap();
        assert_eq!(out.short.0, 0);
        assert_eq!(position(&s).0, 50_000_000, "110 held, 50 sold, the unsettled 10 out");
    }

    /// A BUY taken out after a later SELL sold its shares: the position cannot give them back,
    /// and the change says how many it lacked (the operator is told to reconcile).
    #[test]
    fn a_buy_taken_out_after_its_shares_were_sold_says_what_the_book_lacked() {
        let (_dir, mut s, row) = bought();
        // A SELL of 6 of them booked since (its own row does not matter here).
        let left = Position { shares: Shares(4_000_000), cost: Usdc(2_040_000) };
        crate::store::journal::write_position(&s.conn, "7", left, 2).unwrap();
        let out = s.record_settlement_change(row, false).unwrap().unwrap();
        assert_eq!((out.exec.shares.0, out.short.0), (10_000_000, 6_000_000));
        assert_eq!(position(&s), (0, 0));
    }

    /// A BUY that never settled, and a later SELL of its shares not overdue itself: the SELL is
    /// taken out with it, first, so the position ends where it started and nothing is left that
    /// we never owned. Listed again once it settles late, the SELL alone is put back.
    #[test]
    fn a_sell_of_what_an_unsettled_buy_delivered_goes_out_with_it_first() {
        let (_dir, mut s, buy) = bought();
        let sell = copies_from(&mut s, Side::Sell, 2, 1)[0];
        s.record_execution(&live_exec(sell, Side::Sell, 10_000_000, 6_000_000), &Address::repeat_byte(0xaa)).unwrap();
        assert_eq!(position(&s), (0, 0));
        s.order_outcome(buy, OrderStatus::Matched, Some((10_000_000, 5_100_000)), "matched").unwrap();
        s.order_outcome(sell, OrderStatus::Matched, Some((10_000_000, 6_000_000)), "matched").unwrap();
        s.conn.execute("UPDATE orders SET updated_at_ms = 100 WHERE fill_id = ?1", [buy]).unwrap();
        s.conn.execute("UPDATE orders SET updated_at_ms = 300 WHERE fill_id = ?1", [sell]).unwrap();
        let due = s.unsettled_before(200).unwrap();
        let listed: Vec<_> = due.iter().map(|u| (u.fill_row, u.with_buy)).collect();
        assert_eq!(listed, [(buy, false), (sell, true)]);
        // Newest first, as the supervisor orders them.
        let out = s.record_settlement_step(sell, SettlementStep::WithBuy { before_ms: 200 }).unwrap().unwrap();
        assert_eq!(out.position.position, Position { shares: Shares(10_000_000), cost: Usdc(5_100_000) });
        let out = s.record_settlement_change(buy, false).unwrap().unwrap();
        assert_eq!(out.short.0, 0, "nothing sold from under it");
        assert_eq!(position(&s), (0, 0));
        assert_eq!(s.realized_today(0).unwrap().0, 0, "the SELL's profit went with it");
        assert!(s.unsettled_before(i64::MAX).unwrap().is_empty());
    }

    /// A market that resolves while a BUY of ours in it awaits its settlement on chain is not
    /// paid out yet (the BUY may be taken out of the books); once it settled, it is.
    #[test]
    fn a_resolution_waits_for_a_buy_awaiting_settlement() {
        let (_dir, mut s, row) = bought();
        s.order_outcome(row, OrderStatus::Matched, Some((10_000_000, 5_100_000)), "matched").unwrap();
        let one = Price(1_000_000);
        assert_eq!(s.record_settlement(U256::from(7), one).unwrap(), None);
        assert_eq!(position(&s), (10_000_000, 5_100_000));
        s.settle_own_fill(&id(0x51), Shares(10_000_000), Usdc(5_100_000), ("0xa", 1)).unwrap();
        let paid = s.record_settlement(U256::from(7), one).unwrap().expect("paid out once settled");
        assert_eq!(paid.realized.0, 4_900_000);
        assert_eq!(position(&s), (0, 0));
    }

    /// A SELL of 10 booked when the book held only 6 (at 3.00): the 4 never held realized nothing.
    /// Taken out, it gives back the 6 at their cost, not 10; corrected by the chain, only the 6's
    /// share of the difference is P&L.
    #[test]
    fn a_sell_beyond_the_book_gives_back_and_corrects_only_what_the_book_held() {
        let (_dir, mut s, row) = sold_ten_holding_six();
        let (_, realized) = s.execution_for(row).unwrap().unwrap();
        assert_eq!((realized.0, position(&s)), (60_000, (0, 0)), "3.06 for the 6 held, less their 3.00");
        let got = s.settle_own_fill(&id(0x51), Shares(10_000_000), Usdc(5_300_000), ("0xa", 1)).unwrap();
        let OwnSettlement::Corrected(c) = got else { panic!("{got:?}") };
        assert_eq!(c.realized.0, 120_000, "6/10 of the 0.20 more");
        // The same SELL, never settled, taken out: the 6 come back at 3.00, its P&L undone.
        let (_dir, mut s, row) = sold_ten_holding_six();
        let out = s.record_settlement_change(row, false).unwrap().unwrap();
        assert_eq!(out.realized_change.0, -60_000);
        assert_eq!(position(&s), (6_000_000, 3_000_000), "what the book held, not 10");
        // Settled in part (4 of the 10): the 6 taken out carry their share of the unheld, 3.6 of
        // them held, at 1.80 of the cost; the 4 kept keep 2.4 held and the rest of the P&L.
        let (_dir, mut s, row) = sold_ten_holding_six();
        s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(2_040_000), ("0xa", 1)).unwrap();
        let out = s.record_settlement_change(row, false).unwrap().unwrap();
        assert_eq!((out.exec.shares.0, out.realized_change.0), (6_000_000, -36_000));
        assert_eq!(position(&s), (3_600_000, 1_800_000));
        let (_, realized) = s.execution_for(row).unwrap().unwrap();
        assert_eq!(realized.0, 24_000);
    }

    /// A SELL booked in two parts (10 for 5.00 while 10 were held at 5.00, then 10 more for 9.00
    /// once the position had been paid out): taken out, it gives back the 10 at the 5.00 the first
    /// part took, not the 7.00 its average price would say.
    #[test]
    fn a_sell_grown_on_an_emptied_position_gives_back_the_cost_its_parts_took() {
        let (_dir, mut s, row) = held_and_sold(5_000_000);
        crate::store::journal::write_position(&s.conn, "7", Position::default(), 2).unwrap();
        let whole = live_exec(row, Side::Sell, 20_000_000, 14_000_000);
        s.record_execution_part(&whole, &Address::repeat_byte(0xaa)).unwrap().unwrap();
        assert_eq!(position(&s), (0, 0));
        let out = s.record_settlement_change(row, false).unwrap().unwrap();
        assert_eq!((out.exec.shares.0, out.realized_change.0), (20_000_000, 0));
        assert_eq!(position(&s), (10_000_000, 5_000_000));
        // A row written before the release was kept takes it from its proceeds and P&L (exact for
        // a SELL booked in one part).
        let (_dir, mut s, row) = held_and_sold(6_000_000);
        s.conn.execute("UPDATE executions SET released = NULL WHERE fill_id = ?1", [row]).unwrap();
        let out = s.record_settlement_change(row, false).unwrap().unwrap();
        assert_eq!(out.realized_change.0, -1_000_000);
        assert_eq!(position(&s), (10_000_000, 5_000_000));
    }

    /// A journal holding 6 shares of token 7 at 3.00, and a SELL of 10 booked (live, order 0x51)
    /// for 5.10: 4 of them beyond the book. Returns its fill row.
    fn sold_ten_holding_six() -> (tempfile::TempDir, Store, i64) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let row = copies(&mut s, Side::Sell, 1)[0];
        let held = Position { shares: Shares(6_000_000), cost: Usdc(3_000_000) };
        crate::store::journal::write_position(&s.conn, "7", held, 1).unwrap();
        s.record_execution(&live_exec(row, Side::Sell, 10_000_000, 5_100_000), &Address::repeat_byte(0xaa)).unwrap();
        (dir, s, row)
    }

    /// A SELL taken out of the books is no closed trade: the win rate leaves it out until it is
    /// put back.
    #[test]
    fn a_sell_taken_out_is_not_counted_as_a_win() {
        let (_dir, mut s, row) = held_and_sold(5_100_000);
        assert_eq!(s.recent_wins(10).unwrap(), (1, 1));
        s.record_settlement_change(row, false).unwrap().unwrap();
        assert_eq!(s.recent_wins(10).unwrap(), (0, 0));
    }

    /// A SELL taken out whole that then settles in full at a better price is put back at the
    /// chain's proceeds.
    #[test]
    fn a_sell_put_back_takes_the_chains_proceeds() {
        let (_dir, mut s, row) = held_and_sold(5_100_000);
        let rows = [row];
        s.record_settlement_change(rows[0], false).unwrap().unwrap();
        assert_eq!(position(&s), (10_000_000, 5_000_000));
        s.settle_own_fill(&id(0x51), Shares(9_995_000), Usdc(5_300_000), ("0xa", 1)).unwrap();
        assert_eq!(s.realized_today(1).unwrap().0, 0, "out of the books until it is put back");
        let back = s.record_settlement_change(rows[0], true).unwrap().unwrap();
        assert_eq!((back.exec.shares.0, back.exec.usdc.0), (9_995_000, 5_300_000), "0.005 short is the whole");
        assert_eq!(s.realized_today(1).unwrap().0, back.realized_change.0);
        // 9.995 of the 10 held sold for 5.30: 4.9975 of cost out, 0.005 shares left.
        let (e, realized) = s.execution_for(rows[0]).unwrap().unwrap();
        assert_eq!((e.usdc.0, realized.0), (5_300_000, 302_500));
        assert_eq!(position(&s), (5_000, 2_500));
    }

    /// A part booked from the chain (settled), then the CLOB's lookup says more matched: the order
    /// waits for its settlement again, so a rest that never settles is taken out when overdue. Our
    /// fills on chain short of the booking by less than a lot settle it.
    #[test]
    fn more_booked_than_settled_waits_for_settlement_again_within_a_lot() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let rows = copies(&mut s, Side::Buy, 1);
        let wallet = Address::repeat_byte(0xaa);
        s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(2_040_000), ("0xa", 1)).unwrap();
        s.order_outcome(rows[0], OrderStatus::Matched, Some((10_000_000, 5_100_000)), "matched (found by lookup)")
            .unwrap();
        s.record_execution_part(&live_exec(rows[0], Side::Buy, 10_000_000, 5_100_000), &wallet).unwrap().unwrap();
        assert_eq!(s.unsettled_before(i64::MAX).unwrap().len(), 1, "6 shares not seen on chain");
        assert_eq!(
            s.settle_own_fill(&id(0x51), Shares(5_995_000), Usdc(3_057_450), ("0xb", 1)).unwrap(),
            OwnSettlement::Settled,
            "0.005 short of the booking is rounding"
        );
        assert!(s.unsettled_before(i64::MAX).unwrap().is_empty());
    }

    /// A SELL settled in two transactions realizes each part against the cost it takes out.
    #[test]
    fn a_sell_filled_in_parts_realizes_each_part() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let rows = copies(&mut s, Side::Sell, 1);
        // A position of 10 at 0.50, as an earlier copy left it.
        let held = Position { shares: Shares(10_000_000), cost: Usdc(5_000_000) };
        crate::store::journal::write_position(&s.conn, "7", held, 1).unwrap();
        let realized = |got: OwnSettlement| match got {
            OwnSettlement::Booked(b) => (b.realized.0, b.position.position.shares.0),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            realized(s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(2_400_000), ("0xa", 1)).unwrap()),
            (400_000, 6_000_000)
        );
        assert_eq!(
            realized(s.settle_own_fill(&id(0x51), Shares(6_000_000), Usdc(3_600_000), ("0xb", 1)).unwrap()),
            (600_000, 0)
        );
        let (e, realized) = s.execution_for(rows[0]).unwrap().unwrap();
        assert_eq!((e.shares.0, e.usdc.0, realized.0), (10_000_000, 6_000_000, 1_000_000));
        assert_eq!(position(&s), (0, 0));
    }

    /// A match taken out of the books (and put back once it settles) changes the journal's own
    /// position row, which already holds a later booking on the same token, and every write is
    /// stamped later than the one before it; the change is made once.
    #[test]
    fn a_settlement_change_applies_to_the_journals_row_and_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let rows = copies(&mut s, Side::Buy, 2);
        let buy = |row: i64, usdc: i64| live_exec(row, Side::Buy, 10_000_000, usdc);
        let wallet = Address::repeat_byte(0xaa);
        let (first, _) = s.record_execution(&buy(rows[0], 5_100_000), &wallet).unwrap().unwrap();
        let (second, _) = s.record_execution(&buy(rows[1], 5_000_000), &wallet).unwrap().unwrap();
        assert!(second.seq > first.seq);
        let out = s.record_settlement_change(rows[0], false).unwrap().unwrap();
        assert_eq!(out.position.position, Position { shares: Shares(10_000_000), cost: Usdc(5_000_000) });
        assert!(out.position.seq > second.seq, "stamped after the booking it includes");
        assert_eq!(s.record_settlement_change(rows[0], false).unwrap(), None, "made once");
        assert_eq!(s.record_settlement_change(rows[0], true).unwrap(), None, "not settled yet: nothing to put back");
        assert_eq!(
            s.settle_own_fill(&id(0x51), Shares(10_000_000), Usdc(5_100_000), ("0xa", 1)).unwrap(),
            OwnSettlement::Settled
        );
        let back = s.record_settlement_change(rows[0], true).unwrap().unwrap();
        assert_eq!(back.position.position, Position { shares: Shares(20_000_000), cost: Usdc(10_100_000) });
        assert_eq!(position(&s), (20_000_000, 10_100_000));
    }

    /// A SELL taken out of the books that then turns out to have sold more (its fills on chain)
    /// is put back as it stands, realizing what all of it realizes; a resolved market settles the
    /// journal's own position once.
    #[test]
    fn a_sell_grown_while_out_of_the_books_is_put_back_whole_and_a_market_settles_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let rows = copies(&mut s, Side::Sell, 1);
        crate::store::journal::write_position(
            &s.conn,
            "7",
            Position { shares: Shares(10_000_000), cost: Usdc(5_000_000) },
            1,
        )
        .unwrap();
        let sold = live_exec(rows[0], Side::Sell, 4_000_000, 2_400_000);
        s.record_execution(&sold, &Address::repeat_byte(0xaa)).unwrap().unwrap();
        let out = s.record_settlement_change(rows[0], false).unwrap().unwrap();
        assert_eq!((out.position.position.shares.0, out.realized_change.0), (10_000_000, -400_000));
        // The chain says the order sold all 10 for 6.00.
        assert_eq!(
            s.settle_own_fill(&id(0x51), Shares(10_000_000), Usdc(6_000_000), ("0xa", 1)).unwrap(),
            OwnSettlement::Settled
        );
        let back = s.record_settlement_change(rows[0], true).unwrap().unwrap();
        assert_eq!((back.position.position, back.realized_change), (Position::default(), Usdc(1_000_000)));
        assert_eq!(s.execution_for(rows[0]).unwrap().unwrap().1, Usdc(1_000_000));
        // Its market resolves with nothing left; then one with shares held settles them once.
        assert_eq!(s.record_settlement(U256::from(7), Price(1_000_000)).unwrap(), None);
        crate::store::journal::write_position(
            &s.conn,
            "7",
            Position { shares: Shares(2_000_000), cost: Usdc(800_000) },
            1,
        )
        .unwrap();
        let r = s.record_settlement(U256::from(7), Price(1_000_000)).unwrap().unwrap();
        assert_eq!((r.exec.shares.0, r.exec.usdc.0, r.realized.0), (2_000_000, 2_000_000, 1_200_000));
        assert_eq!(r.position.position, Position::default());
        assert_eq!(s.record_settlement(U256::from(7), Price(1_000_000)).unwrap(), None, "once");
    }

    /// A part of our order read in block 10, then a reorg back to block 9 and the operator's
    /// settlement resubmitted in another transaction: the part counts once (4 shares, not 8), and
    /// until it is read again the order waits for its settlement.
    #[test]
    fn a_settlement_resubmitted_after_a_reorg_counts_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let row = copies(&mut s, Side::Buy, 1)[0];
        let got = s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(2_040_000), ("0xa", 10)).unwrap();
        assert!(matches!(got, OwnSettlement::Booked(ref b) if b.exec.shares.0 == 4_000_000), "{got:?}");
        // Older fills (no block) and fills at or below the ancestor stay.
        s.rewind((9, B256::repeat_byte(9))).unwrap();
        let settled = |s: &Store| -> i64 {
            s.conn.query_row("SELECT settled FROM orders WHERE fill_id = ?1", [row], |r| r.get(0)).unwrap()
        };
        assert_eq!(settled(&s), 0, "waits for its settlement again");
        assert_eq!(s.unsettled_before(i64::MAX).unwrap().len(), 1);
        let again = s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(2_040_000), ("0xb", 10)).unwrap();
        assert_eq!(again, OwnSettlement::Settled);
        assert_eq!((settled(&s), position(&s)), (1, (4_000_000, 2_040_000)), "4 shares, once");
        // The same transaction read again after a reorg that kept it counts once too.
        s.rewind((10, B256::repeat_byte(10))).unwrap();
        assert_eq!(settled(&s), 1, "nothing above block 10 to forget");
        s.rewind((9, B256::repeat_byte(9))).unwrap();
        let back = s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(2_040_000), ("0xb", 12)).unwrap();
        assert_eq!(back, OwnSettlement::Settled);
        assert_eq!(position(&s), (4_000_000, 2_040_000));
    }

    /// What a reorg does to orders whose fills it took away, beyond counting them once: one taken
    /// out of the books and settled late is out again; one settled by a transaction the journal
    /// never kept stays settled; one still waiting counts its wait from the rewind.
    #[test]
    fn a_reorg_undoes_only_the_settlements_it_took_away() {
        let settled = |s: &Store, row: i64| -> (i64, i64) {
            s.conn
                .query_row("SELECT settled, updated_at_ms FROM orders WHERE fill_id = ?1", [row], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap()
        };
        let (_dir, mut s, row) = bought();
        s.order_outcome(row, OrderStatus::Matched, Some((10_000_000, 5_100_000)), "matched").unwrap();
        s.record_settlement_change(row, false).unwrap().unwrap();
        s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(2_040_000), ("0xa", 10)).unwrap();
        assert_eq!(settled(&s, row).0, 2, "settled late, to be put back");
        s.rewind((9, B256::repeat_byte(9))).unwrap();
        assert_eq!(settled(&s, row).0, -1, "nothing of it left on chain: out again");
        assert!(s.unsettled_before(i64::MAX).unwrap().is_empty(), "nothing to put back");
        assert_eq!(position(&s), (0, 0));

        let (_dir, mut s, row) = bought();
        s.order_outcome(row, OrderStatus::Matched, Some((10_000_000, 5_100_000)), "matched").unwrap();
        s.conn.execute("UPDATE orders SET settled = 1, settle_tx = '0xold' WHERE fill_id = ?1", [row]).unwrap();
        s.settle_own_fill(&id(0x51), Shares(5_000_000), Usdc(2_550_000), ("0xa", 10)).unwrap();
        s.rewind((9, B256::repeat_byte(9))).unwrap();
        assert_eq!(settled(&s, row).0, 1, "settled by a transaction the journal never kept");

        let (_dir, mut s, row) = bought();
        s.order_outcome(row, OrderStatus::Matched, Some((10_000_000, 5_100_000)), "matched").unwrap();
        s.conn.execute("UPDATE orders SET updated_at_ms = 100 WHERE fill_id = ?1", [row]).unwrap();
        s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(2_040_000), ("0xa", 10)).unwrap();
        assert_eq!(s.unsettled_before(200).unwrap().len(), 1, "overdue, settled in part");
        s.rewind((9, B256::repeat_byte(9))).unwrap();
        assert_eq!(settled(&s, row).0, 0);
        assert!(s.unsettled_before(200).unwrap().is_empty(), "waits for the rescan: {:?}", settled(&s, row));
        // A check that listed it as overdue before the rewind leaves it for the rescan too.
        assert_eq!(s.record_settlement_step(row, SettlementStep::TakeOut { overdue_before: Some(200) }).unwrap(), None);
        assert_eq!(settled(&s, row).0, 0);

        // Kept in part by the settlement check, then the part's transaction is reorged away: the
        // part waits again, and is taken out when overdue.
        let (_dir, mut s, row) = bought();
        s.order_outcome(row, OrderStatus::Matched, Some((10_000_000, 5_100_000)), "matched").unwrap();
        s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(2_040_000), ("0xa", 10)).unwrap();
        s.record_settlement_change(row, false).unwrap().unwrap();
        assert_eq!((settled(&s, row).0, position(&s)), (1, (4_000_000, 2_040_000)), "kept in part");
        s.rewind((9, B256::repeat_byte(9))).unwrap();
        assert_eq!(settled(&s, row).0, 0, "its part waits again");
        let out = s.record_settlement_change(row, false).unwrap().unwrap();
        assert_eq!(out.exec.shares.0, 4_000_000);
        assert_eq!(position(&s), (0, 0));
    }

    /// Our fills of one order never add up to more than the order gives (pUSD for a BUY): a
    /// settlement replaced after a reorg (a second transaction for the same match) books nothing
    /// twice, while a BUY that got more shares than it asked for (a better price goes to the taker
    /// as shares) is booked whole.
    #[test]
    fn our_fills_are_capped_at_what_the_order_gives() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        copies(&mut s, Side::Buy, 1);
        let got = s.settle_own_fill(&id(0x51), Shares(11_000_000), Usdc(5_100_000), ("0xa", 1)).unwrap();
        assert!(matches!(got, OwnSettlement::Booked(ref b) if b.exec.shares == Shares(11_000_000)), "{got:?}");
        let again = s.settle_own_fill(&id(0x51), Shares(11_000_000), Usdc(5_100_000), ("0xb", 1)).unwrap();
        assert_eq!(again, OwnSettlement::Nothing);
        assert_eq!(position(&s), (11_000_000, 5_100_000));
    }

    /// Our order's fill on chain is what we own: it is booked whether the copy was still pending
    /// or had been decided otherwise, and the second case says so.
    #[test]
    fn our_fill_on_chain_books_a_pending_or_a_refused_copy_and_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let h = B256::repeat_byte;
        let out = s.journal_range(&[fill_in(1, 1, 5), fill_in(1, 2, 5)], (5, h(5)), &[]).unwrap();
        let rows: Vec<i64> = out.to_copy.iter().map(|p| p.row).collect();
        for (row, id) in rows.iter().zip([0x51, 0x52]) {
            let intent = crate::domain::OrderIntent {
                fill_row: *row,
                token_id: U256::from(7),
                ..crate::domain::test_intent(Side::Buy, 10_000_000, 510_000, 500_000)
            };
            assert!(s.record_intent(&intent).unwrap());
            s.record_order(*row, &order(id, Side::Buy)).unwrap();
        }
        s.record_rejection(rows[1], "stale", "refused before the fix").unwrap();
        let id = |b: u8| format!("{:#x}", h(b));
        for (order_id, row, was) in [(id(0x51), rows[0], None), (id(0x52), rows[1], Some(FillStatus::Rejected))] {
            let got = s.settle_own_fill(&order_id, Shares(10_000_000), Usdc(5_100_000), ("0x01", 1)).unwrap();
            let OwnSettlement::Booked(b) = got else { panic!("{order_id}: {got:?}") };
            assert_eq!((b.exec.fill_row, b.overturned, b.exec.usdc), (row, was, Usdc(5_100_000)));
            assert_eq!(s.fill_outcome(row).unwrap().map(|o| o.status), Some(FillStatus::Executed));
            let again = s.settle_own_fill(&order_id, Shares(10_000_000), Usdc(5_100_000), ("0x01", 1)).unwrap();
            assert_eq!(again, OwnSettlement::Nothing, "booked once");
        }
        assert_eq!(s.book().unwrap().positions.values().map(|p| p.shares.0).sum::<i64>(), 20_000_000);
    }
}
