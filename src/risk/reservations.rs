//! Exposure held by orders in flight. An approved intent reserves what it may add before it is sent,
//! so the next intent is checked against the book as it will be, not as it was: caps hold while
//! several orders are in flight at once. The reservation is released when the outcome is booked.

use std::collections::{HashMap, HashSet};

use crate::domain::{OrderIntent, Shares, Side, TokenId, Usdc, mul_price_ceil};
use crate::risk::{Book, Exposure, Position};

/// What one order in flight may still do to the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// The token.
    pub token: TokenId,
    /// BUY adds shares and cost; SELL takes shares away.
    pub side: Side,
    /// At most this many shares.
    pub shares: Shares,
    /// At most this much pUSD (shares at the limit price, rounded up).
    pub usdc: Usdc,
    /// Being placed now (else its outcome is unknown and it waits for a lookup or our fill on chain:
    /// its exposure stays reserved, and a target's SELL of its token waits for it a while; see
    /// `RiskSupervisor::awaits_buy`).
    pub placing: bool,
}

impl Reservation {
    /// The most `intent` can move.
    #[must_use]
    pub fn of(intent: &OrderIntent) -> Self {
        Self {
            token: intent.token_id,
            side: intent.side,
            shares: intent.shares,
            usdc: Usdc(mul_price_ceil(intent.shares, intent.limit_price)),
            placing: true,
        }
    }
}

/// What the orders in flight on one token hold, kept as running totals so that checking an intent
/// costs the same with thousands of orders in flight as with one (a backfill approves thousands
/// before the first is placed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Held {
    buy_shares: i64,
    buy_usdc: i64,
    sell_shares: i64,
    /// BUYs being placed now (not those whose outcome is unknown).
    placing_buys: u32,
}

/// Reservations by fill row (one order per fill), with running totals per token and overall.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reservations {
    by_fill: HashMap<i64, Reservation>,
    by_token: HashMap<TokenId, Held>,
    buy_usdc: i64,
    /// Orders our fill on chain booked while they were being placed, which can fill no more (not
    /// a GTD order resting): whatever their placement still answers, their outcome is known.
    done_on_chain: HashSet<i64>,
    /// FAK or FOK orders of unknown outcome that our fill on chain booked in part, by when that
    /// part was booked (unix s): the rest of the same match may settle in a later transaction, so
    /// it stays held until the chain is read past the settlement timeout.
    awaiting_parts: HashMap<i64, u64>,
}

impl Reservations {
    /// Holds `r` for the order of `fill_row` (replacing what that fill held before).
    pub fn add(&mut self, fill_row: i64, r: Reservation) {
        self.release(fill_row);
        self.count(&r, 1);
        self.by_fill.insert(fill_row, r);
    }

    /// The order of `fill_row` is no longer being placed; its outcome is unknown, so its exposure
    /// stays reserved until a lookup or our fill on chain decides it.
    pub fn unresolved(&mut self, fill_row: i64) {
        let Some(r) = self.by_fill.get_mut(&fill_row) else { return };
        if r.placing && r.side == Side::Buy {
            let held = self.by_token.entry(r.token).or_default();
            held.placing_buys = held.placing_buys.saturating_sub(1);
        }
        r.placing = false;
    }

    /// True while anything is held for the order of `fill_row`.
    #[must_use]
    pub fn holds(&self, fill_row: i64) -> bool {
        self.by_fill.contains_key(&fill_row)
    }

    /// True while the order of `fill_row` is being placed (not only of unknown outcome).
    #[must_use]
    pub fn placing(&self, fill_row: i64) -> bool {
        self.by_fill.get(&fill_row).is_some_and(|r| r.placing)
    }

    /// The order of `fill_row` filled `shares` for `usdc` in part (a GTD order resting on the
    /// book, booked from its fill on chain): the book holds that part now, so the reservation
    /// keeps only the rest, which may still fill. Returns false when nothing is held for it.
    pub fn filled_part(&mut self, fill_row: i64, shares: Shares, usdc: Usdc) -> bool {
        let Some(r) = self.by_fill.get(&fill_row).copied() else { return false };
        let rest =
            Reservation { shares: Shares((r.shares.0 - shares.0).max(0)), usdc: Usdc((r.usdc.0 - usdc.0).max(0)), ..r };
        self.count(&r, -1);
        self.count(&rest, 1);
        self.by_fill.insert(fill_row, rest);
        true
    }

    /// Notes that our fill on chain booked the order of `fill_row` while it was being placed, and
    /// that it can fill no more: an `unknown` answer from its placement is stale.
    pub fn done_on_chain(&mut self, fill_row: i64) {
        if self.by_fill.contains_key(&fill_row) {
            self.done_on_chain.insert(fill_row);
        }
    }

    /// True when our fill on chain booked the order of `fill_row` for good while it was placed.
    #[must_use]
    pub fn is_done_on_chain(&self, fill_row: i64) -> bool {
        self.done_on_chain.contains(&fill_row)
    }

    /// Shares the order of `fill_row` may still move (0 when nothing is held).
    #[must_use]
    pub fn rest(&self, fill_row: i64) -> Shares {
        self.by_fill.get(&fill_row).map_or(Shares(0), |r| r.shares)
    }

    /// The order of `fill_row` (a FAK or FOK order no longer being placed) filled in part on chain,
    /// booked at `booked_s` (unix s): one match can settle in several transactions, so its rest
    /// stays held for later parts until [`Self::later_parts_overdue`] lets it go. The first part's
    /// time is kept when more parts come.
    pub fn await_later_parts(&mut self, fill_row: i64, booked_s: u64) {
        if self.by_fill.contains_key(&fill_row) {
            self.awaiting_parts.entry(fill_row).or_insert(booked_s);
        }
    }

    /// True while the rest of the order of `fill_row` is held for later parts of its match.
    #[must_use]
    pub fn awaits_parts(&self, fill_row: i64) -> bool {
        self.awaiting_parts.contains_key(&fill_row)
    }

    /// Releases every rest held for later parts that can no longer come: the chain is read
    /// (`read_s`, the earlier of the chain as read and this host's clock) `settle_s` past the
    /// first part. Returns their fill rows.
    pub fn later_parts_overdue(&mut self, read_s: u64, settle_s: u64) -> Vec<i64> {
        let rows: Vec<i64> = self
            .awaiting_parts
            .iter()
            .filter(|&(_, booked_s)| read_s >= booked_s.saturating_add(settle_s))
            .map(|(row, _)| *row)
            .collect();
        for row in &rows {
            self.release(*row);
        }
        rows
    }

    /// Lets go of the order of `fill_row`.
    pub fn release(&mut self, fill_row: i64) -> Option<Reservation> {
        self.done_on_chain.remove(&fill_row);
        self.awaiting_parts.remove(&fill_row);
        let r = self.by_fill.remove(&fill_row)?;
        self.count(&r, -1);
        Some(r)
    }

    /// Adds (`sign` 1) or takes away (-1) `r` from the running totals.
    fn count(&mut self, r: &Reservation, sign: i64) {
        let held = self.by_token.entry(r.token).or_default();
        match r.side {
            Side::Buy => {
                held.buy_shares += sign * r.shares.0;
                held.buy_usdc += sign * r.usdc.0;
                self.buy_usdc += sign * r.usdc.0;
                if r.placing {
                    held.placing_buys =
                        if sign > 0 { held.placing_buys + 1 } else { held.placing_buys.saturating_sub(1) };
                }
            }
            Side::Sell => held.sell_shares += sign * r.shares.0,
        }
        if *held == Held::default() {
            self.by_token.remove(&r.token);
        }
    }

    /// pUSD held by every BUY in flight or of unknown outcome (at its limit, less what filled).
    #[must_use]
    pub const fn buy_usdc(&self) -> Usdc {
        Usdc(self.buy_usdc)
    }

    /// Orders in flight.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_fill.len()
    }

    /// True when nothing is in flight.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_fill.is_empty()
    }

    /// The book with every BUY in flight filled at its limit: what the caps are checked against.
    /// SELLs in flight are not subtracted (they lower exposure only once they fill).
    #[must_use]
    pub const fn over<'a>(&'a self, book: &'a Book) -> Reserved<'a> {
        Reserved { book, reserved: self }
    }

    /// True while a BUY of `token` is being placed: a SELL sized now would not see what it buys.
    /// (BUYs of unknown outcome are the risk supervisor's to weigh: it knows which are resolved
    /// in the background.)
    #[must_use]
    pub fn buying(&self, token: &TokenId) -> bool {
        self.by_token.get(token).is_some_and(|h| h.placing_buys > 0)
    }

    /// True while a SELL of `token` is in flight or of unknown outcome.
    #[must_use]
    pub fn selling(&self, token: &TokenId) -> bool {
        self.by_token.get(token).is_some_and(|h| h.sell_shares > 0)
    }

    /// The tokens a SELL is being placed for now (not those of unknown outcome only).
    #[must_use]
    pub fn tokens_being_sold(&self) -> Vec<TokenId> {
        let mut tokens: Vec<TokenId> =
            self.by_fill.values().filter(|r| r.placing && r.side == Side::Sell).map(|r| r.token).collect();
        tokens.dedup();
        tokens
    }

    /// Our position in `token` that no SELL in flight has claimed yet: what the next SELL is sized on.
    #[must_use]
    pub fn sellable(&self, book: &Book, token: &TokenId) -> Shares {
        let claimed = self.by_token.get(token).map_or(0, |h| h.sell_shares);
        Shares((book.position(token).shares.0 - claimed).max(0))
    }
}

/// The book as it will be once every BUY in flight fills at its limit (see [`Reservations::over`]).
#[derive(Debug, Clone, Copy)]
pub struct Reserved<'a> {
    book: &'a Book,
    reserved: &'a Reservations,
}

impl Exposure for Reserved<'_> {
    fn position(&self, token: &TokenId) -> Position {
        let p = self.book.position(token);
        let h = self.reserved.by_token.get(token).copied().unwrap_or_default();
        Position { shares: Shares(p.shares.0 + h.buy_shares), cost: Usdc(p.cost.0 + h.buy_usdc) }
    }

    fn exposure(&self) -> Usdc {
        Usdc(self.book.exposure().0 + self.reserved.buy_usdc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_intent;
    use alloy::primitives::U256;

    #[test]
    fn buys_in_flight_count_toward_the_caps_and_sells_claim_shares() {
        let mut book = Book::default();
        book.set(U256::from(1), Position { shares: Shares(10_000_000), cost: Usdc(5_000_000) });
        let mut r = Reservations::default();
        let buy = test_intent(Side::Buy, 4_000_000, 510_000, 500_000);
        r.add(1, Reservation::of(&buy));
        let sell = test_intent(Side::Sell, 3_000_000, 490_000, 500_000);
        r.add(2, Reservation::of(&sell));
        let view = r.over(&book);
        assert_eq!(view.exposure(), Usdc(5_000_000 + mul_price_ceil(buy.shares, buy.limit_price)));
        assert_eq!(r.sellable(&book, &U256::from(1)), Shares(10_000_000 - sell.shares.0));
        assert_eq!(r.len(), 2);
        assert!(r.buying(&U256::from(1)) && !r.buying(&U256::from(2)));
        assert_eq!(r.tokens_being_sold(), [U256::from(1)]);
        r.unresolved(2);
        assert!(r.tokens_being_sold().is_empty(), "a SELL of unknown outcome is not being placed");
        r.unresolved(1);
        assert!(!r.buying(&U256::from(1)), "an order with an unknown outcome holds exposure, not the next SELL");
        assert_eq!(r.over(&book).exposure(), Usdc(5_000_000 + mul_price_ceil(buy.shares, buy.limit_price)));
        r.release(1);
        r.release(2);
        assert!(r.is_empty());
        assert_eq!(r, Reservations::default(), "no running total is left behind");
    }

    /// A BUY that fills in part keeps holding only the rest, being placed or not.
    #[test]
    fn a_part_filled_while_placing_leaves_only_the_rest_held() {
        let book = Book::default();
        let mut r = Reservations::default();
        let buy = test_intent(Side::Buy, 10_000_000, 500_000, 500_000);
        r.add(1, Reservation::of(&buy));
        assert_eq!(r.over(&book).exposure(), Usdc(5_000_000));
        assert!(r.filled_part(1, Shares(4_000_000), Usdc(2_000_000)));
        assert_eq!(r.over(&book).exposure(), Usdc(3_000_000));
        assert!(r.buying(&U256::from(1)), "still being placed");
        assert!(r.filled_part(1, Shares(7_000_000), Usdc(3_500_000)), "more than the rest holds nothing, not less");
        assert_eq!(r.over(&book).exposure(), Usdc::ZERO);
        r.release(1);
        assert_eq!(r, Reservations::default());
        r.add(2, Reservation::of(&buy));
        assert!(r.placing(2));
        r.unresolved(2);
        assert!(!r.placing(2));
        assert!(r.filled_part(2, Shares(4_000_000), Usdc(2_000_000)), "an order of unknown outcome shrinks too");
        assert_eq!(r.over(&book).exposure(), Usdc(3_000_000));
        assert!(!r.buying(&U256::from(1)), "and is still not being placed");
        assert!(!r.filled_part(3, Shares(1), Usdc(1)) && !r.holds(3), "nothing held");
        assert!(r.holds(2));
        // Booked on chain for good while placed: known done until released, then forgotten.
        r.done_on_chain(3);
        assert!(!r.is_done_on_chain(3), "nothing held: nothing to note");
        r.done_on_chain(2);
        assert!(r.is_done_on_chain(2) && r.holds(2));
        r.release(2);
        assert!(!r.is_done_on_chain(2));
        assert_eq!(r, Reservations::default());
    }

    /// A FAK order booked in part on chain holds its rest for a later part of the same match until
    /// the chain is read past the settlement timeout after the first part; a later part shrinks it.
    #[test]
    fn the_rest_of_a_match_is_held_until_its_later_parts_can_no_longer_settle() {
        let book = Book::default();
        let mut r = Reservations::default();
        let buy = test_intent(Side::Buy, 10_000_000, 510_000, 500_000);
        r.add(1, Reservation::of(&buy));
        r.unresolved(1);
        assert!(r.filled_part(1, Shares(4_000_000), Usdc(2_040_000)));
        assert_eq!(r.rest(1), Shares(6_000_000));
        r.await_later_parts(1, 1_000);
        r.await_later_parts(7, 1_000);
        assert!(!r.holds(7), "nothing held: nothing awaited");
        // (chain read through, settlement timeout, released)
        for (read_s, settle_s, released) in [(0, 120, false), (1_119, 120, false), (1_000, 0, true)] {
            let mut r = r.clone();
            assert_eq!(r.later_parts_overdue(read_s, settle_s) == [1], released, "read {read_s}, settle {settle_s}");
            assert_eq!(r.holds(1), !released);
        }
        assert!(r.filled_part(1, Shares(3_000_000), Usdc(1_530_000)));
        r.await_later_parts(1, 1_100);
        assert_eq!(r.over(&book).exposure(), Usdc(5_100_000 - 2_040_000 - 1_530_000));
        assert!(r.later_parts_overdue(1_119, 120).is_empty());
        assert_eq!(r.later_parts_overdue(1_120, 120), [1], "timed from the first part");
        assert_eq!(r, Reservations::default(), "nothing left behind");
        r.add(2, Reservation::of(&buy));
        r.await_later_parts(2, 1_000);
        r.release(2);
        assert_eq!(r, Reservations::default(), "a release forgets the wait");
    }
}
