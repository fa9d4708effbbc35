//! Our positions and realized P&L, kept at average cost. Pure arithmetic on exact amounts.

use std::collections::HashMap;

use crate::domain::{Execution, Shares, Side, TokenId, Usdc};

/// Our holding of one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Shares held.
    pub shares: Shares,
    /// What they cost in total (average-cost basis).
    pub cost: Usdc,
}

/// A position as the journal wrote it, stamped with the order of that write. Answers about
/// different writes can reach the book in another order than they were written (a booking still
/// queued while a settlement change is applied): the book takes a position only when it is newer
/// than the one it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Written {
    /// The position.
    pub position: Position,
    /// The journal's count of position writes at this one (increasing over the process's life).
    pub seq: u64,
}

/// All our positions, plus today's realized P&L.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    /// Open positions by token.
    pub positions: HashMap<TokenId, Position>,
}

impl Book {
    /// Our position in `token` (zero when we have none).
    #[must_use]
    pub fn position(&self, token: &TokenId) -> Position {
        self.positions.get(token).copied().unwrap_or_default()
    }

    /// Total cost of all open positions: the money at risk.
    #[must_use]
    pub fn exposure(&self) -> Usdc {
        Usdc(self.positions.values().map(|p| p.cost.0).sum())
    }

    /// Returns the position after `exec` and the P&L it realized, without changing the book.
    #[must_use]
    pub fn after(&self, exec: &Execution) -> (Position, Usdc) {
        position_after(self.position(&exec.token_id), exec)
    }

    /// Applies `exec` and returns the P&L it realized.
    pub fn apply(&mut self, exec: &Execution) -> Usdc {
        let (pos, realized) = self.after(exec);
        self.set(exec.token_id, pos);
        realized
    }

    /// Tokens we hold shares of.
    #[must_use]
    pub fn tokens(&self) -> Vec<TokenId> {
        self.positions.iter().filter(|(_, p)| p.shares.0 > 0).map(|(t, _)| *t).collect()
    }

    /// Replaces the position in `token` (dropping it when flat).
    pub fn set(&mut self, token: TokenId, pos: Position) {
        if pos.shares.0 == 0 {
            self.positions.remove(&token);
        } else {
            self.positions.insert(token, pos);
        }
    }
}

/// What the caps are checked against: a position's cost and the total at risk. The book itself,
/// or the book with the orders in flight reserved ([`crate::risk::reservations::Reserved`]).
pub trait Exposure {
    /// Our position in `token` (zero when we have none).
    fn position(&self, token: &TokenId) -> Position;
    /// Total cost of all open positions: the money at risk.
    fn exposure(&self) -> Usdc;
}

impl Exposure for Book {
    fn position(&self, token: &TokenId) -> Position {
        Self::position(self, token)
    }

    fn exposure(&self) -> Usdc {
        Self::exposure(self)
    }
}

/// The position after `exec` is applied to `pos`, and the P&L it realized (average cost).
#[must_use]
pub fn position_after(pos: Position, exec: &Execution) -> (Position, Usdc) {
    match exec.side {
        Side::Buy => (
            // Saturating: a node's absurd amounts (the feed saturates its sums too) must not panic
            // the journal's writer on the same range after every restart.
            Position {
                shares: Shares(pos.shares.0.saturating_add(exec.shares.0)),
                cost: Usdc(pos.cost.0.saturating_add(exec.usdc.0)),
            },
            Usdc::ZERO,
        ),
        Side::Sell => {
            let sold = exec.shares.0.min(pos.shares.0);
            // Cost of the shares sold, pro rata; the last share takes the remainder so no dust is left.
            let cost_out = if sold == pos.shares.0 {
                pos.cost.0
            } else {
                i64::try_from(i128::from(pos.cost.0) * i128::from(sold) / i128::from(pos.shares.0.max(1)))
                    .unwrap_or(pos.cost.0)
            };
            // Proceeds of shares the book never held (a position settled or sold meanwhile, shares
            // bought before they were watched) have no known cost: they realize nothing, rather
            // than counting whole as profit.
            let proceeds = proceeds_of(exec.usdc, Shares(sold), exec.shares).0;
            (
                Position { shares: Shares(pos.shares.0 - sold), cost: Usdc(pos.cost.0.saturating_sub(cost_out)) },
                Usdc(proceeds.saturating_sub(cost_out)),
            )
        }
    }
}

/// The part of a SELL's `usdc` (for `shares`) that the `held` shares of it brought: the proceeds
/// that count against the book's cost.
#[must_use]
pub fn proceeds_of(usdc: Usdc, held: Shares, shares: Shares) -> Usdc {
    if held.0 >= shares.0 {
        return usdc;
    }
    Usdc(i64::try_from(i128::from(usdc.0) * i128::from(held.0) / i128::from(shares.0.max(1))).unwrap_or(usdc.0))
}

/// The shares of SELL `exec` that position `pos` held when it was booked (all of a BUY's).
#[must_use]
pub fn held_of(pos: Position, exec: &Execution) -> Shares {
    match exec.side {
        Side::Buy => exec.shares,
        Side::Sell => Shares(exec.shares.0.min(pos.shares.0).max(0)),
    }
}

/// The cost basis a SELL took out of the position when it was booked (`before` → `after`); zero
/// for a BUY. Kept per execution (and summed over its parts) so that taking the SELL out gives
/// back exactly what it took, whatever prices and holdings its parts were booked at.
#[must_use]
pub fn released_by(side: Side, before: Position, after: Position) -> Usdc {
    match side {
        Side::Buy => Usdc::ZERO,
        Side::Sell => Usdc((before.cost.0 - after.cost.0).max(0)),
    }
}

/// The cost basis a SELL released, derived from what it was booked at, for executions written
/// before [`released_by`] was kept: its held shares' proceeds less the P&L they realized (exact
/// for a SELL booked in one part).
#[must_use]
pub fn released_derived(usdc: Usdc, held: Shares, shares: Shares, realized: Usdc) -> Usdc {
    Usdc(proceeds_of(usdc, held, shares).0 - realized.0)
}

/// `exec` booked on position `pos`: the position after it, and what it put on the books.
#[must_use]
pub fn booked_on(pos: Position, exec: &Execution) -> (Position, Booked) {
    let (after, realized) = position_after(pos, exec);
    let booked = Booked {
        shares: exec.shares,
        usdc: exec.usdc,
        realized,
        held: held_of(pos, exec),
        released: released_by(exec.side, pos, after),
    };
    (after, booked)
}

/// What an execution put on the books, as taking it out must undo it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Booked {
    /// Shares booked.
    pub shares: Shares,
    /// pUSD booked.
    pub usdc: Usdc,
    /// P&L it realized.
    pub realized: Usdc,
    /// Shares of a SELL the book held (the rest, never on the books, realized nothing).
    pub held: Shares,
    /// Cost basis a SELL took out of the position ([`released_by`]).
    pub released: Usdc,
}

/// Our position after taking an execution out of the books (its order matched on the CLOB but
/// never settled on chain): a BUY gives back its shares and cost; a SELL gets back the shares of it
/// the book held at the cost basis they released. Returns the position and the realized P&L
/// undone.
#[must_use]
pub fn position_without(pos: Position, side: Side, b: &Booked) -> (Position, Usdc) {
    match side {
        Side::Buy => (
            Position { shares: Shares((pos.shares.0 - b.shares.0).max(0)), cost: Usdc((pos.cost.0 - b.usdc.0).max(0)) },
            Usdc::ZERO,
        ),
        Side::Sell => (
            Position { shares: Shares(pos.shares.0 + b.held.0.min(b.shares.0)), cost: Usdc(pos.cost.0 + b.released.0) },
            b.realized,
        ),
    }
}

/// The order in which settlement changes are applied: executions taken out of the books newest
/// first (a SELL sized on a BUY is undone before that BUY, so no step clamps at zero), then those put
/// back oldest first. Sort by this key.
#[must_use]
pub const fn change_order(put_back: bool, at_ms: i64) -> (u8, i64) {
    if put_back { (1, at_ms) } else { (0, -at_ms) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ONE, Price};
    use alloy::primitives::U256;

    #[test]
    fn reversing_an_execution_restores_the_position_before_it() {
        let start = Position { shares: Shares(10 * ONE), cost: Usdc(5 * ONE) };
        // (side, shares, usdc) applied then taken out again gives back the start.
        for (side, shares, usdc) in [(Side::Buy, 4 * ONE, 2_400_000), (Side::Sell, 4 * ONE, 3 * ONE)] {
            let e = exec(side, shares, usdc);
            let (after, booked) = booked_on(start, &e);
            let realized = booked.realized;
            let (back, undone) = position_without(after, side, &booked);
            assert_eq!(back, start, "{side:?}");
            assert_eq!(undone, realized);
            // Put back, it is booked again as it was.
            let (again, restored) = position_after(back, &e);
            assert_eq!((again, restored), (after, realized), "{side:?}");
        }
    }

    fn exec(side: Side, shares: i64, usdc: i64) -> Execution {
        Execution {
            fill_row: 1,
            side,
            token_id: U256::from(1),
            shares: Shares(shares),
            price: Price(0),
            usdc: Usdc(usdc),
            mode: crate::domain::ExecMode::Paper,
            at_ms: 0,
        }
    }

    #[test]
    fn realizes_pnl_at_average_cost() {
        let mut b = Book::default();
        assert_eq!(b.apply(&exec(Side::Buy, 10 * ONE, 4 * ONE)), Usdc(0));
        assert_eq!(b.apply(&exec(Side::Buy, 10 * ONE, 6 * ONE)), Usdc(0));
        assert_eq!(b.exposure(), Usdc(10 * ONE));
        // sell 5 of 20 at 0.7 = 3.5; cost out = 2.5
        assert_eq!(b.apply(&exec(Side::Sell, 5 * ONE, 3_500_000)), Usdc(ONE));
        assert_eq!(b.position(&U256::from(1)), Position { shares: Shares(15 * ONE), cost: Usdc(7_500_000) });
        // sell the rest at a loss: 15 for 6 → -1.5
        assert_eq!(b.apply(&exec(Side::Sell, 15 * ONE, 6 * ONE)), Usdc(-1_500_000));
        assert!(b.positions.is_empty());
    }

    #[test]
    fn a_buy_and_the_sell_sized_on_it_taken_out_leave_nothing() {
        let booked = |shares: i64, usdc: i64, realized: i64, released: i64| Booked {
            shares: Shares(shares * ONE),
            usdc: Usdc(usdc * ONE),
            realized: Usdc(realized * ONE),
            held: Shares(shares * ONE),
            released: Usdc(released * ONE),
        };
        let buy = (Side::Buy, booked(100, 50, 0, 0), 1_000);
        let sell = (Side::Sell, booked(50, 30, 5, 25), 2_000);
        let mut changes = [buy, sell];
        changes.sort_by_key(|c| change_order(false, c.2));
        let mut pos = Position { shares: Shares(50 * ONE), cost: Usdc(25 * ONE) };
        for (side, b, _) in changes {
            pos = position_without(pos, side, &b).0;
        }
        assert_eq!(pos, Position::default(), "no phantom shares");
        assert!(change_order(true, 5) > change_order(false, 9), "put back after every take-out");
    }

    /// Absurd amounts from a node (the feed saturates its sums at i64::MAX) saturate the book:
    /// overflow checks are on in release, and a panic in the journal's writer would stop the feed
    /// at the same range after every restart.
    #[test]
    fn absurd_amounts_saturate_rather_than_panic() {
        let pos = Position { shares: Shares(i64::MAX - 1), cost: Usdc(i64::MAX - 1) };
        let (after, realized) = position_after(pos, &exec(Side::Buy, i64::MAX, i64::MAX));
        assert_eq!((after.shares.0, after.cost.0, realized), (i64::MAX, i64::MAX, Usdc::ZERO));
        let (_, realized) =
            position_after(Position { shares: Shares(ONE), cost: Usdc(i64::MAX) }, &exec(Side::Sell, ONE, -5));
        assert_eq!(realized, Usdc(i64::MIN), "saturated, not wrapped");
    }

    #[test]
    fn a_sell_beyond_the_position_realizes_only_what_the_book_held() {
        let held = |shares: i64, cost: i64| Position { shares: Shares(shares * ONE), cost: Usdc(cost * ONE) };
        let sell = |shares: i64, usdc: i64| exec(Side::Sell, shares * ONE, usdc * ONE);
        // (position, sell, position after, realized)
        let cases = [
            (held(100, 60), sell(100, 95), held(0, 0), Usdc(35 * ONE)),
            (held(100, 60), sell(50, 40), held(50, 30), Usdc(10 * ONE)),
            // Half the shares sold were never on the books: half the proceeds count.
            (held(50, 30), sell(100, 80), held(0, 0), Usdc(10 * ONE)),
            // Nothing held (settled meanwhile): nothing realized, not the whole 95.
            (held(0, 0), sell(100, 95), held(0, 0), Usdc(0)),
        ];
        for (pos, e, after, realized) in cases {
            assert_eq!(position_after(pos, &e), (after, realized), "{pos:?} {e:?}");
            // Taken out again, it gives back only what the book held, at the cost it released.
            let (_, booked) = booked_on(pos, &e);
            assert_eq!(booked.released, released_derived(e.usdc, booked.held, e.shares, realized));
            let back = position_without(after, Side::Sell, &booked);
            assert_eq!(back, (pos, realized), "{pos:?} {e:?}");
        }
    }

    /// A SELL booked in parts, the position changed by something else between them: taken out, it
    /// gives back the sum of what each part took, not a cost derived from its average price.
    #[test]
    fn a_sell_booked_in_parts_gives_back_what_each_part_took() {
        let held = |shares: i64, cost: i64| Position { shares: Shares(shares * ONE), cost: Usdc(cost * ONE) };
        let sell = |shares: i64, usdc: i64| exec(Side::Sell, shares * ONE, usdc * ONE);
        // (position, first part, position between the parts, second part, position taken out,
        // cost the average price would have given back)
        let cases = [
            // Emptied between the parts (a resolution paid it out): the second part held nothing.
            (held(10, 5), sell(10, 5), held(0, 0), sell(10, 9), held(10, 5), 7 * ONE),
            // Partly emptied: the parts held 10 and 4 of their 10.
            (held(10, 5), sell(10, 6), held(4, 2), sell(10, 8), held(14, 7), 7_600_000),
            // Refilled at another cost between them, every share held: the average was right.
            (
                held(10, 5),
                sell(5, 4),
                held(20, 16),
                sell(10, 7),
                Position { shares: Shares(25 * ONE), cost: Usdc(18_500_000) },
                18_500_000,
            ),
        ];
        for (start, first, between, second, back, derived) in cases {
            let (_, one) = booked_on(start, &first);
            let (after, two) = booked_on(between, &second);
            let whole = Booked {
                shares: Shares(one.shares.0 + two.shares.0),
                usdc: Usdc(one.usdc.0 + two.usdc.0),
                realized: Usdc(one.realized.0 + two.realized.0),
                held: Shares(one.held.0 + two.held.0),
                released: Usdc(one.released.0 + two.released.0),
            };
            let case = format!("{start:?} {first:?} {between:?} {second:?}");
            assert_eq!(position_without(after, Side::Sell, &whole), (back, whole.realized), "{case}");
            let averaged = released_derived(whole.usdc, whole.held, whole.shares, whole.realized);
            assert_eq!(averaged.0 + after.cost.0, derived, "{case}");
        }
    }

    #[test]
    fn never_sells_below_zero() {
        let mut b = Book::default();
        b.apply(&exec(Side::Buy, 3 * ONE, ONE));
        let _ = b.apply(&exec(Side::Sell, 5 * ONE, 2 * ONE));
        assert_eq!(b.position(&U256::from(1)), Position::default());
    }
}
