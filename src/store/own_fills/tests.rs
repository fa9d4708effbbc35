use alloy::primitives::{Address, B256, U256};

use super::*;
use crate::clob::order::StoredOrder;
use crate::store::tests::fill_in;
use crate::store::{OrderStatus, SettlementStep};

/// Our signed order `id` for 10 shares at a limit of 0.51.
fn order(id: u8, side: Side) -> StoredOrder {
    StoredOrder { order_id: B256::repeat_byte(id), ..StoredOrder::for_test(side, 10_000_000, 5_100_000) }
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

/// Reconcile expects the chain to lack only what is not settled yet: a match settled in part
/// already holds that part on chain.
#[test]
fn reconcile_counts_only_the_unsettled_rest_of_a_match_settled_in_part() {
    let (_dir, mut s, row) = bought();
    s.order_outcome(row, OrderStatus::Matched, Some((10_000_000, 5_100_000)), "matched").unwrap();
    let unsettled = |s: &Store| s.reconcile_state().unwrap()[&U256::from(7)].unsettled.0;
    assert_eq!(unsettled(&s), 10_000_000);
    s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(2_040_000), ("0xa", 1)).unwrap();
    assert_eq!(unsettled(&s), 6_000_000, "the 4 settled are on chain already");
}

/// A target's exit is sized on what its copies hold less its own SELLs still under way: a
/// second exit right behind the first does not count the first's shares again.
#[test]
fn a_targets_sell_under_way_has_claimed_its_copies_shares() {
    let (_dir, mut s, _) = bought();
    let (wallet, token) = (Address::repeat_byte(0xaa), U256::from(7));
    assert_eq!(s.copied_shares(&wallet, token).unwrap(), Shares(10_000_000));
    assert_eq!(s.copied_shares(&Address::repeat_byte(0xbb), token).unwrap(), Shares(0), "another target's");
    // Its SELL of all 10, signed and at the venue: nothing left to a second exit.
    let row = copies_from(&mut s, Side::Sell, 2, 1)[0];
    assert_eq!(s.copied_shares(&wallet, token).unwrap(), Shares(0));
    // It matched 4 and is over: 6 are left.
    s.order_outcome(row, OrderStatus::Matched, Some((4_000_000, 2_040_000)), "matched").unwrap();
    s.record_execution(&live_exec(row, Side::Sell, 4_000_000, 2_040_000), &wallet).unwrap();
    assert_eq!(s.copied_shares(&wallet, token).unwrap(), Shares(6_000_000));
    // A SELL that never left (a halt came before its send): its order stays signed, its fill is
    // refused, and it claims nothing.
    let never = copies_from(&mut s, Side::Sell, 3, 1)[0];
    s.record_rejection(never, "halted", "halted before it was sent").unwrap();
    assert_eq!(s.copied_shares(&wallet, token).unwrap(), Shares(6_000_000));
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
    assert_eq!(s.record_settlement_step(sell, SettlementStep::WithBuy { before_ms: 200 }).unwrap(), None, "not needed");
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

/// Holding 10 shares at 5.00, a SELL of ours of 4 for 2.40 matched and booked, not settled on
/// chain yet; returns its fill row.
fn sold_four_of_ten(s: &mut Store) -> i64 {
    let row = copies(s, Side::Sell, 1)[0];
    let held = Position { shares: Shares(10_000_000), cost: Usdc(5_000_000) };
    crate::store::journal::write_position(&s.conn, "7", held, 1).unwrap();
    s.record_execution(&live_exec(row, Side::Sell, 4_000_000, 2_400_000), &Address::repeat_byte(0xaa)).unwrap();
    s.order_outcome(row, OrderStatus::Matched, Some((4_000_000, 2_400_000)), "matched").unwrap();
    row
}

/// The same for a SELL of ours: while it awaits its settlement on chain (it may be taken out and
/// its shares come back, or settle late and be put back), the market is not paid out; once it
/// settled, what is held is.
#[test]
fn a_resolution_waits_for_a_sell_awaiting_settlement() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("j.db")).unwrap();
    sold_four_of_ten(&mut s);
    let one = Price(1_000_000);
    assert_eq!(s.record_settlement(U256::from(7), one).unwrap(), None, "the SELL may still come back");
    assert_eq!(position(&s), (6_000_000, 3_000_000));
    s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(2_400_000), ("0xa", 1)).unwrap();
    let paid = s.record_settlement(U256::from(7), one).unwrap().expect("paid out once settled");
    assert_eq!(paid.realized.0, 3_000_000, "the 6 held pay 6.00 against their 3.00");
    assert_eq!(position(&s), (0, 0));
}

/// A SELL of ours taken out for not settling in time may still settle late and be put back: a
/// market resolving meanwhile waits out the grace (paid out at once, the SELL put back later would
/// sell shares already paid, and its proceeds would be lost). Past the grace, what is held is paid.
#[test]
fn a_resolution_waits_out_the_grace_of_a_sell_taken_out() {
    let one = Price(1_000_000);
    for late in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let row = sold_four_of_ten(&mut s);
        s.record_settlement_change(row, false).unwrap().expect("taken out");
        assert_eq!(position(&s), (10_000_000, 5_000_000), "its shares are back");
        assert_eq!(s.record_settlement(U256::from(7), one).unwrap(), None, "it may still settle late");
        let paid = if late {
            s.settle_own_fill(&id(0x51), Shares(4_000_000), Usdc(2_400_000), ("0xa", 1)).unwrap();
            s.record_settlement_change(row, true).unwrap().expect("put back");
            s.record_settlement(U256::from(7), one).unwrap().expect("paid once put back")
        } else {
            s.conn.execute("UPDATE orders SET updated_at_ms = 0 WHERE fill_id = ?1", [row]).unwrap();
            s.record_settlement(U256::from(7), one).unwrap().expect("paid past the grace")
        };
        let (shares, realized) = if late { (6_000_000, 3_000_000) } else { (10_000_000, 5_000_000) };
        assert_eq!((paid.exec.shares.0, paid.realized.0), (shares, realized), "late: {late}");
        assert_eq!(position(&s), (0, 0));
    }
}

/// The same for a SELL taken out in part (2 of its 4 settled in time): the rest may still settle
/// late and grow it, so the market waits; once it has, the 6 held are paid.
#[test]
fn a_resolution_waits_out_the_grace_of_a_sell_taken_out_in_part() {
    let one = Price(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("j.db")).unwrap();
    let row = sold_four_of_ten(&mut s);
    s.settle_own_fill(&id(0x51), Shares(2_000_000), Usdc(1_200_000), ("0xa", 1)).unwrap();
    s.record_settlement_change(row, false).unwrap().expect("the rest taken out");
    assert_eq!(position(&s), (8_000_000, 4_000_000), "2 sold, 2 back");
    assert_eq!(s.record_settlement(U256::from(7), one).unwrap(), None, "the rest may still settle late");
    s.settle_own_fill(&id(0x51), Shares(2_000_000), Usdc(1_200_000), ("0xb", 1)).unwrap();
    assert_eq!(position(&s), (6_000_000, 3_000_000), "grown by the late part");
    let paid = s.record_settlement(U256::from(7), one).unwrap().expect("paid once whole");
    assert_eq!((paid.exec.shares.0, paid.realized.0), (6_000_000, 3_000_000));
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
    s.order_outcome(rows[0], OrderStatus::Matched, Some((10_000_000, 5_100_000)), "matched (found by lookup)").unwrap();
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
    crate::store::journal::write_position(&s.conn, "7", Position { shares: Shares(2_000_000), cost: Usdc(800_000) }, 1)
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

/// A node's absurd figures for what our BUY got (the feed saturates its sums at i64::MAX) are
/// capped at what its pUSD buys at the lowest price any tick allows: never booked whole, where
/// the book's sums would overflow (overflow checks are on; a panic there would loop on restart).
#[test]
fn our_fills_never_get_more_than_the_order_can() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("j.db")).unwrap();
    copies(&mut s, Side::Buy, 1);
    let got = s.settle_own_fill(&id(0x51), Shares(i64::MAX), Usdc(5_100_000), ("0xa", 1)).unwrap();
    assert!(matches!(got, OwnSettlement::Booked(ref b) if b.exec.shares == Shares(51_000_000_000)), "{got:?}");
    // A second such transaction: the journal's sum of the rows does not overflow (SQLite's SUM
    // fails on one, and the feed would read the same range again for ever).
    s.settle_own_fill(&id(0x51), Shares(i64::MAX), Usdc(i64::MAX), ("0xb", 1)).unwrap();
}

/// The cap on what an order got comes after the proportion of a double count: our SELL of 10
/// shares at 0.99 counted twice gets 9.90, not the 10 cap halved to 5.
#[test]
fn a_sell_counted_twice_keeps_its_price() {
    let sell = order(0x51, Side::Sell);
    let got = capped_at_size(&sell, Shares(20_000_000), Usdc(19_800_000), "0x51");
    assert_eq!(got, (Shares(10_000_000), Usdc(9_900_000)));
    let buy = order(0x52, Side::Buy);
    // A BUY of 5.10 pUSD counted twice, with a better price: its shares in proportion.
    assert_eq!(
        capped_at_size(&buy, Shares(24_000_000), Usdc(10_200_000), "0x52"),
        (Shares(12_000_000), Usdc(5_100_000))
    );
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

/// The fee our fill on chain paid is realized P&L from when it is read, whatever becomes of the
/// booking: each transaction's once, however often it is read; a reorg that forgets the fill
/// gives it back (and says so, for the supervisor's count), and reading it again books it again.
/// Today's P&L, the fees of the day and the report's days all count it.
#[test]
fn a_fee_paid_on_chain_is_realized_once_per_transaction_and_follows_reorgs() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("j.db")).unwrap();
    copies(&mut s, Side::Buy, 1);
    let fee = Usdc(60_000);
    let day = s.trading_day_start(now_ms());
    let paid = |s: &mut Store, tx: &str, block: u64| {
        s.settle_own_fill_paying(&id(0x51), Shares(4_000_000), Usdc(2_040_000), fee, (tx, block)).unwrap()
    };
    let first = paid(&mut s, "0xa", 10);
    assert!(matches!(first.settlement, OwnSettlement::Booked(_)), "{first:?}");
    assert_eq!(first.fee, fee);
    assert_eq!((s.realized_since(day).unwrap(), s.fees_since(day).unwrap()), (Usdc(-60_000), fee));
    assert_eq!(s.pnl_by_day(1, now_ms()).unwrap()[0].1, Usdc(-60_000));
    assert_eq!(paid(&mut s, "0xa", 10).fee, Usdc::ZERO, "the same transaction read again");
    assert_eq!(s.realized_since(day).unwrap(), Usdc(-60_000));
    // Nothing of ours: no fee.
    let stranger = s.settle_own_fill_paying(&id(0x99), Shares(1_000_000), Usdc(510_000), fee, ("0xc", 10)).unwrap();
    assert_eq!(stranger.fee, Usdc::ZERO);

    let rewound = s.rewind((9, B256::repeat_byte(9))).unwrap();
    assert_eq!(rewound.fees_forgotten.len(), 1);
    assert_eq!((rewound.fees_forgotten[0].order_id.as_str(), rewound.fees_forgotten[0].fee), (id(0x51).as_str(), fee));
    assert_eq!(s.realized_since(day).unwrap(), Usdc::ZERO, "forgotten with its fill");
    assert_eq!(paid(&mut s, "0xa", 11).fee, fee, "read again: booked again");
    assert_eq!(s.realized_since(day).unwrap(), Usdc(-60_000));
    // A part in another transaction pays its own fee; a fill with none forgets nothing.
    assert_eq!(paid(&mut s, "0xb", 12).fee, fee);
    assert_eq!(s.fees_since(day).unwrap(), Usdc(120_000));
    assert_eq!(s.fees_since(now_ms() + 1).unwrap(), Usdc::ZERO, "dated when read");
}

/// A market resolves while a SELL of ours is in flight or of unknown outcome (at a start, before
/// recovery reserved it): the position is not settled until that SELL's outcome is known, so a
/// SELL the exchange filled is never booked on shares already paid out.
#[test]
fn a_settlement_waits_for_a_copy_in_flight_of_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("j.db")).unwrap();
    let wallet = Address::repeat_byte(0xaa);
    let buys = copies(&mut s, Side::Buy, 1);
    s.record_execution(&live_exec(buys[0], Side::Buy, 10_000_000, 5_100_000), &wallet).unwrap();
    s.conn.execute("UPDATE orders SET status = 'matched', settled = 1", []).unwrap();
    let sells = copies_from(&mut s, Side::Sell, 2, 1);
    let payout = Price(1_000_000);
    assert!(s.record_settlement(U256::from(7), payout).unwrap().is_none(), "its intent is journaled, the fill pending");
    s.order_outcome(sells[0], OrderStatus::Unknown, None, "no answer").unwrap();
    s.record_rejection(sells[0], "unknown", "looked up later").unwrap();
    assert!(s.record_settlement(U256::from(7), payout).unwrap().is_none(), "its outcome is unknown");
    s.order_outcome(sells[0], OrderStatus::NoFill, None, "no match").unwrap();
    let settled = s.record_settlement(U256::from(7), payout).unwrap().expect("settled once nothing is in flight");
    assert_eq!(settled.exec.shares, Shares(10_000_000));
}

mod restart;
mod restated;
