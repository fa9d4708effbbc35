//! Later executions booked again when an earlier one is taken out of the books or put back.

use super::*;

/// A journal whose position in token 7 is 10 shares at a cost of `cost` (pUSD, base units), as
/// bookings before these tests left it.
fn holding_ten_at(cost: i64) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("j.db")).unwrap();
    let held = Position { shares: Shares(10_000_000), cost: Usdc(cost) };
    crate::store::journal::write_position(&s.conn, "7", held, 1).unwrap();
    (dir, s)
}

/// 10 shares held at 3.00, a BUY of 10 for 5.00 (order 0x51) booked at 1 that has not settled,
/// and a SELL of 10 for 7.00 (order 0x52) booked at 2 that settled on chain; returns the rows.
fn held_bought_sold() -> (tempfile::TempDir, Store, i64, i64) {
    let (dir, mut s) = holding_ten_at(3_000_000);
    let buy = copies(&mut s, Side::Buy, 1)[0];
    s.record_execution(&live_exec(buy, Side::Buy, 10_000_000, 5_000_000), &Address::repeat_byte(0xaa)).unwrap();
    let sell = copies_from(&mut s, Side::Sell, 2, 1)[0];
    let e = Execution { at_ms: 2, ..live_exec(sell, Side::Sell, 10_000_000, 7_000_000) };
    s.record_execution(&e, &Address::repeat_byte(0xaa)).unwrap();
    s.order_outcome(buy, OrderStatus::Matched, Some((10_000_000, 5_000_000)), "matched").unwrap();
    s.settle_own_fill(&id(0x52), Shares(10_000_000), Usdc(7_000_000), ("0xb", 1)).unwrap();
    (dir, s, buy, sell)
}

fn realized_of(s: &Store, row: i64) -> i64 {
    s.execution_for(row).unwrap().unwrap().1.0
}

/// The SELL sold the 10 shares held at 0.30, not shares at the 0.40 average the BUY made: taken
/// out, the BUY takes its cost with it and the SELL realizes 4.00, not 3.00 with 1.00 of cost
/// dropped from a flat position. Put back when it settles late, the SELL is at 3.00 again.
#[test]
fn a_buy_taken_out_from_under_a_later_sell_restates_what_it_realized() {
    let (_dir, mut s, buy, sell) = held_bought_sold();
    assert_eq!((realized_of(&s, sell), position(&s)), (3_000_000, (10_000_000, 4_000_000)));
    let out = s.record_settlement_change(buy, false).unwrap().unwrap();
    assert_eq!(out.position.position, Position::default());
    assert_eq!(out.restated, vec![(2, Usdc(1_000_000))]);
    assert_eq!((realized_of(&s, sell), position(&s)), (4_000_000, (0, 0)));
    assert_eq!(s.realized_today(0).unwrap().0, 4_000_000, "the day's sum follows");
    // It settles late after all: booked again before the SELL, which is back at 3.00.
    s.settle_own_fill(&id(0x51), Shares(10_000_000), Usdc(5_000_000), ("0xa", 1)).unwrap();
    let back = s.record_settlement_change(buy, true).unwrap().unwrap();
    assert_eq!(back.restated, vec![(2, Usdc(-1_000_000))]);
    assert_eq!((realized_of(&s, sell), position(&s)), (3_000_000, (10_000_000, 4_000_000)));
    assert_eq!(s.realized_today(0).unwrap().0, 3_000_000);
}

/// A market resolved since the BUY moved the position by something that is not an execution:
/// the later bookings cannot be rebuilt, and the plain take-out stands (the operator reconciles).
#[test]
fn a_position_moved_by_a_resolution_since_is_not_restated() {
    let (_dir, mut s, buy, sell) = held_bought_sold();
    s.conn
        .execute(
            "INSERT INTO settlements (token_id, shares, price, usdc, realized_pnl, at_ms) VALUES ('7', 0, 0, 0, 0, 3)",
            [],
        )
        .unwrap();
    let out = s.record_settlement_change(buy, false).unwrap().unwrap();
    assert!(out.restated.is_empty());
    assert_eq!(realized_of(&s, sell), 3_000_000);
}

/// Bookings are replayed in the order they were made, not by their times: a SELL stamped before
/// a BUY but booked after it sold from the position that BUY made.
#[test]
fn later_executions_are_rebooked_in_the_order_they_were_booked() {
    let (_dir, mut s) = holding_ten_at(4_000_000);
    let p = copies(&mut s, Side::Buy, 1)[0];
    s.record_execution(&live_exec(p, Side::Buy, 10_000_000, 5_000_000), &Address::repeat_byte(0xaa)).unwrap();
    let b = copies_from(&mut s, Side::Buy, 2, 1)[0];
    let a = copies_from(&mut s, Side::Sell, 3, 1)[0];
    let buy_b = Execution { at_ms: 101, ..live_exec(b, Side::Buy, 10_000_000, 5_000_000) };
    s.record_execution(&buy_b, &Address::repeat_byte(0xaa)).unwrap();
    let sell_a = Execution { at_ms: 100, ..live_exec(a, Side::Sell, 10_000_000, 7_000_000) };
    s.record_execution(&sell_a, &Address::repeat_byte(0xaa)).unwrap();
    s.order_outcome(p, OrderStatus::Matched, Some((10_000_000, 5_000_000)), "matched").unwrap();
    let out = s.record_settlement_change(p, false).unwrap().unwrap();
    // Without P: 10 at 4.00, B makes 20 at 9.00, A sells 10 of them at 4.50 of cost: 2.50.
    assert_eq!(realized_of(&s, a), 2_500_000, "{out:?}");
    assert_eq!(position(&s), (10_000_000, 4_500_000));
}

/// A BUY of which 5 of 10 settled in time, then the other 5 late: the SELL after it is rebooked
/// when the rest is taken out, and again when it comes back, ending where a whole take-out and
/// put-back would (3.00 realized, 10 held at 4.00).
#[test]
fn the_rest_of_a_match_settling_late_rebooks_what_came_after_it() {
    let (_dir, mut s, buy, sell) = held_bought_sold();
    s.settle_own_fill(&id(0x51), Shares(5_000_000), Usdc(2_500_000), ("0xa", 1)).unwrap();
    let out = s.record_settlement_change(buy, false).unwrap().unwrap();
    assert_eq!(out.kept, Shares(5_000_000));
    // Without the 5 that did not settle: 15 at 5.50, the SELL of 10 released 3.666666 (rounded
    // down, the position keeping the remainder).
    assert_eq!((realized_of(&s, sell), position(&s)), (3_333_334, (5_000_000, 1_833_334)));
    let back = match s.settle_own_fill(&id(0x51), Shares(5_000_000), Usdc(2_500_000), ("0xc", 2)).unwrap() {
        OwnSettlement::Booked(b) => b,
        other => panic!("{other:?}"),
    };
    assert_eq!((realized_of(&s, sell), position(&s)), (3_000_000, (10_000_000, 4_000_000)));
    let restated: i64 = back.restated.iter().map(|(_, c)| c.0).sum();
    assert_eq!(restated, -333_334, "{back:?}");
    assert_eq!(s.realized_today(0).unwrap().0, 3_000_000);
}

/// A GTD SELL that filled in two parts with a BUY booked between them: the later part was booked
/// at the position as it was then, which a rebooking by execution cannot place; nothing is
/// rebooked and the plain change stands.
#[test]
fn a_part_booked_after_a_later_execution_stops_the_rebooking() {
    let (_dir, mut s) = holding_ten_at(4_000_000);
    let p = copies(&mut s, Side::Buy, 1)[0];
    s.record_execution(&live_exec(p, Side::Buy, 2_000_000, 800_000), &Address::repeat_byte(0xaa)).unwrap();
    let g = copies_from(&mut s, Side::Sell, 2, 1)[0];
    s.record_execution(
        &Execution { at_ms: 2, ..live_exec(g, Side::Sell, 4_000_000, 2_800_000) },
        &Address::repeat_byte(0xaa),
    )
    .unwrap();
    let b = copies_from(&mut s, Side::Buy, 3, 1)[0];
    s.record_execution(
        &Execution { at_ms: 3, ..live_exec(b, Side::Buy, 10_000_000, 5_000_000) },
        &Address::repeat_byte(0xaa),
    )
    .unwrap();
    // The SELL fills 6 more, booked now, after B.
    s.settle_own_fill(&id(0x52), Shares(10_000_000), Usdc(7_000_000), ("0xd", 1)).unwrap();
    assert_eq!(s.execution_for(g).unwrap().unwrap().0.shares, Shares(10_000_000));
    let before = realized_of(&s, g);
    s.order_outcome(p, OrderStatus::Matched, Some((2_000_000, 800_000)), "matched").unwrap();
    let out = s.record_settlement_change(p, false).unwrap().unwrap();
    assert!(out.restated.is_empty(), "{out:?}");
    assert_eq!(realized_of(&s, g), before);
    assert!(position(&s).0 <= 15_000_000, "no shares made up: {:?}", position(&s));
}
