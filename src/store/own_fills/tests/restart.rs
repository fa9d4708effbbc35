//! Our fills on chain journaled above the checkpoint when the daemon stopped.

use super::*;

fn settled(s: &Store, row: i64) -> i64 {
    s.conn.query_row("SELECT settled FROM orders WHERE fill_id = ?1", [row], |r| r.get(0)).unwrap()
}

/// Our fill in block 9 settled a BUY and paid a fee, and the daemon stopped before the range that
/// read it moved the checkpoint past block 5: at the start it is forgotten (its block may have
/// been reorged away meanwhile), the order waits for its settlement again and the fee leaves the
/// day's P&L. Read again by the backfill, it settles the order once, with its fee, and the booking
/// is unchanged throughout. One below the checkpoint stays.
#[test]
fn our_fills_above_the_checkpoint_are_forgotten_at_a_start_and_read_again() {
    let (_dir, mut s, row) = bought();
    s.order_outcome(row, OrderStatus::Matched, Some((10_000_000, 5_100_000)), "matched").unwrap();
    s.journal_range(&[], (5, B256::repeat_byte(5)), &[]).unwrap();
    let fee = Usdc(20_000);
    s.settle_own_fill_paying(&id(0x51), Shares(10_000_000), Usdc(5_100_000), fee, ("0xa", 9)).unwrap();
    assert_eq!((settled(&s, row), s.realized_today(0).unwrap()), (1, Usdc(-20_000)));
    assert_eq!(s.forget_own_fills_above_checkpoint().unwrap(), 1);
    assert_eq!((settled(&s, row), s.realized_today(0).unwrap()), (0, Usdc::ZERO));
    assert_eq!(position(&s), (10_000_000, 5_100_000), "the booking stays");
    s.settle_own_fill_paying(&id(0x51), Shares(10_000_000), Usdc(5_100_000), fee, ("0xa", 9)).unwrap();
    assert_eq!((settled(&s, row), s.realized_today(0).unwrap()), (1, Usdc(-20_000)));
    assert_eq!(position(&s), (10_000_000, 5_100_000));
    // Once the checkpoint is past it, a start keeps it.
    s.journal_range(&[], (9, B256::repeat_byte(9)), &[]).unwrap();
    assert_eq!(s.forget_own_fills_above_checkpoint().unwrap(), 0);
    assert_eq!(settled(&s, row), 1);
}
