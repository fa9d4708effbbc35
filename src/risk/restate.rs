//! Rebooking a token's later executions after an earlier one changed.
//!
//! At average cost, every SELL releases cost at the average of what the position held when it was
//! booked. When an earlier execution is taken out of the books (its order never settled on chain)
//! or put back (it settled late), the SELLs booked after it released cost at an average that was
//! not the real one: a BUY at 0.60 taken out from under a SELL that sold at an average of 0.50 leaves
//! that SELL's P&L understated, and the cost it did not release stuck in the position (or dropped
//! once the position is flat). Rebooking them in their order from the position before the change
//! moves that difference where it belongs, into their realized P&L.

use super::book::{Booked, Position, booked_on};
use crate::domain::{Execution, Shares, Side, Usdc};

/// The position before a run of bookings, from the position `now` after all of them and what each
/// put on the books (`booked`, in any order: each is a sum). `None` when the amounts do not add
/// up (a position clamped at zero by an older change, or changed by something that is not an
/// execution): then no rebooking can be exact.
#[must_use]
pub fn position_before(now: Position, booked: &[(Side, Booked)]) -> Option<Position> {
    let (mut shares, mut cost) = (i128::from(now.shares.0), i128::from(now.cost.0));
    for (side, b) in booked {
        match side {
            Side::Buy => {
                shares -= i128::from(b.shares.0);
                cost -= i128::from(b.usdc.0);
            }
            Side::Sell => {
                shares += i128::from(b.held.0.min(b.shares.0));
                cost += i128::from(b.released.0);
            }
        }
    }
    let shares = i64::try_from(shares).ok().filter(|s| *s >= 0)?;
    let cost = i64::try_from(cost).ok().filter(|c| *c >= 0)?;
    Some(Position { shares: Shares(shares), cost: Usdc(cost) })
}

/// Books `execs` in their order from `start`: the position after them, and what each put on the
/// books (its realized P&L, the shares of it held, the cost it released).
#[must_use]
pub fn rebook(start: Position, execs: &[Execution]) -> (Position, Vec<Booked>) {
    let mut pos = start;
    let booked = execs
        .iter()
        .map(|e| {
            let (after, b) = booked_on(pos, e);
            pos = after;
            b
        })
        .collect();
    (pos, booked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ExecMode, ONE, Price};
    use crate::risk::book::position_without;
    use alloy::primitives::U256;

    fn exec(side: Side, shares: i64, usdc: i64, at_ms: i64) -> Execution {
        Execution {
            fill_row: at_ms,
            side,
            token_id: U256::from(1),
            shares: Shares(shares * ONE / 10),
            price: Price(0),
            usdc: Usdc(usdc * ONE / 100),
            mode: ExecMode::Live,
            at_ms,
        }
    }

    fn pos(shares: i64, cost: i64) -> Position {
        Position { shares: Shares(shares * ONE / 10), cost: Usdc(cost * ONE / 100) }
    }

    /// A run of executions booked one after the other, then one of them taken out: the plain
    /// take-out, and the rebooking of the others from the position before the run. Amounts in
    /// tenths of a share and hundredths of a pUSD.
    #[test]
    fn taking_an_execution_out_moves_the_cost_it_shifted_into_realized_pnl() {
        let buy = |s, u, at| exec(Side::Buy, s, u, at);
        let sell = |s, u, at| exec(Side::Sell, s, u, at);
        // (start, the run, index taken out, position after the rebooking, realized after it)
        let cases = [
            // 10 at 0.40 held, 10 bought at 0.60 that never settled, 10 sold at 0.70: the SELL
            // sold the 0.40 shares, so it realized 3.00, not 2.00, and nothing is left.
            (pos(100, 400), vec![buy(100, 600, 1), sell(100, 700, 2)], 0, pos(0, 0), 300),
            // Half sold: 5 of the 0.40 shares left at 2.00, the SELL realized 1.50 (not 0.50).
            (pos(100, 400), vec![buy(100, 600, 1), sell(50, 350, 2)], 0, pos(50, 200), 150),
            // Sold more than the position held without the BUY: only the 10 held realize.
            (pos(100, 400), vec![buy(100, 600, 1), sell(150, 1050, 2)], 0, pos(0, 0), 300),
            // Nothing held before: the SELL held nothing, realized nothing.
            (pos(0, 0), vec![buy(100, 600, 1), sell(100, 700, 2)], 0, pos(0, 0), 0),
            // A BUY after the SELL: bought at its own price, untouched by the change.
            (pos(100, 400), vec![buy(100, 600, 1), sell(50, 350, 2), buy(100, 800, 3)], 0, pos(150, 1000), 150),
            // A SELL taken out: the later SELL sold from a bigger position at the same average.
            (pos(100, 400), vec![sell(50, 300, 1), buy(100, 800, 2), sell(100, 900, 3)], 0, pos(100, 600), 300),
        ];
        for (start, run, out, want_pos, want_realized) in cases {
            let (now, booked) = rebook(start, &run);
            let all: Vec<_> = run.iter().map(|e| e.side).zip(booked.iter().copied()).collect();
            assert_eq!(position_before(now, &all), Some(start), "{run:?}");
            let mut kept = run.clone();
            kept.remove(out);
            let (after, rebooked) = rebook(start, &kept);
            assert_eq!(after, want_pos, "{run:?}");
            let realized: i64 = rebooked.iter().map(|b| b.realized.0).sum();
            assert_eq!(realized, want_realized * ONE / 100, "{run:?}");
            // What the plain take-out gives for a lone execution (nothing after it) agrees.
            let (one, b) = booked_on(start, &run[0]);
            assert_eq!(position_without(one, run[0].side, &b).0, start);
        }
    }

    #[test]
    fn amounts_that_do_not_add_up_give_no_start() {
        let b = Booked {
            shares: Shares(10 * ONE),
            usdc: Usdc(6 * ONE),
            realized: Usdc::ZERO,
            held: Shares(10 * ONE),
            released: Usdc::ZERO,
        };
        // (position now, bookings, start)
        let cases = [
            (pos(100, 600), vec![(Side::Buy, b)], Some(Position::default())),
            // The position was clamped at zero by an older change: 10 bought, none held now.
            (pos(0, 0), vec![(Side::Buy, b)], None),
            (pos(0, 0), vec![(Side::Sell, b)], Some(Position { shares: Shares(10 * ONE), cost: Usdc::ZERO })),
        ];
        for (now, booked, want) in cases {
            assert_eq!(position_before(now, &booked), want, "{now:?} {booked:?}");
        }
    }
}
