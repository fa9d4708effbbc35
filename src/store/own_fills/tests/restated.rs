//! Later executions booked again when an earlier one is taken out of the books or put back.

use super::*;

/// 10 shares held at 4.00, a BUY of 10 for 6.00 (order 0x51) booked at 1 that never settles,
/// and a SELL of 10 for 7.00 (order 0x52) booked at 2 that settled on chain; returns the rows.
fn held_bought_sold() -> (tempfile::TempDir, Store, i64, i64) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("j.db")).unwrap();
    let held = Position { shares: Shares(10_000_000), cost: Usdc(4_000_000) };
    crate::store::journal::write_position(&s.conn, "7", held, 1).unwrap();
    let buy = copies(&mut s, Side::Buy, 1)[0];
    s.record_execution(&live_exec(buy, Side::Buy, 10_000_000, 6_000_000), &Address::repeat_byte(0xaa)).unwrap();
    let sell = copies_from(&mut s, Side::Sell, 2, 1)[0];
    let e = Execution { at_ms: 2, ..live_exec(sell, Side::Sell, 10_000_000, 7_000_000) };
    s.record_execution(&e, &Address::repeat_byte(0xaa)).unwrap();
    s.order_outcome(buy, OrderStatus::Matched, Some((10_000_000, 6_000_000)), "matched").unwrap();
    s.settle_own_fill(&id(0x52), Shares(10_000_000), Usdc(7_000_000), ("0xb", 1)).unwrap();
    (dir, s, buy, sell)
}

fn realized_of(s: &Store, row: i64) -> i64 {
    s.execution_for(row).unwrap().unwrap().1.0
}

/// The SELL sold the 10 shares held at 0.40, not shares at the 0.50 average the BUY made: taken
/// out, the BUY takes its cost with it and the SELL realizes 3.00, not 2.00 with 1.00 of cost
/// dropped from a flat position. Put back when it settles late, the SELL is at 2.00 again.
#[test]
fn a_buy_taken_out_from_under_a_later_sell_restates_what_it_realized() {
    let (_dir, mut s, buy, sell) = held_bought_sold();
    assert_eq!((realized_of(&s, sell), position(&s)), (2_000_000, (10_000_000, 5_000_000)));
    let out = s.record_settlement_change(buy, false).unwrap().unwrap();
    assert_eq!(out.position.position, Position::default());
    assert_eq!(out.restated, vec![(2, Usdc(1_000_000))]);
    assert_eq!((realized_of(&s, sell), position(&s)), (3_000_000, (0, 0)));
    assert_eq!(s.realized_today(0).unwrap().0, 3_000_000, "the day's sum follows");
    // It settles late after all: booked again before the SELL, which is back at 2.00.
    s.settle_own_fill(&id(0x51), Shares(10_000_000), Usdc(6_000_000), ("0xa", 1)).unwrap();
    let back = s.record_settlement_change(buy, true).unwrap().unwrap();
    assert_eq!(back.restated, vec![(2, Usdc(-1_000_000))]);
    assert_eq!((realized_of(&s, sell), position(&s)), (2_000_000, (10_000_000, 5_000_000)));
    assert_eq!(s.realized_today(0).unwrap().0, 2_000_000);
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
    assert_eq!(realized_of(&s, sell), 2_000_000);
}
