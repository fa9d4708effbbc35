//! Exposure held by orders in flight. An approved intent reserves what it may add before it is sent,
//! so the next intent is checked against the book as it will be, not as it was: caps hold while
//! several orders are in flight at once. The reservation is released when the outcome is booked.

use std::collections::HashMap;

use crate::domain::{OrderIntent, Shares, Side, TokenId, Usdc, mul_price_ceil};
use crate::risk::{Book, Position};

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
    /// its exposure stays reserved, but nothing waits for it).
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

/// Reservations by fill row (one order per fill).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reservations(HashMap<i64, Reservation>);

impl Reservations {
    /// Holds `r` for the order of `fill_row`.
    pub fn add(&mut self, fill_row: i64, r: Reservation) {
        self.0.insert(fill_row, r);
    }

    /// The order of `fill_row` is no longer being placed; its outcome is unknown, so its exposure
    /// stays reserved until a lookup or our fill on chain decides it.
    pub fn unresolved(&mut self, fill_row: i64) {
        if let Some(r) = self.0.get_mut(&fill_row) {
            r.placing = false;
        }
    }

    /// Lets go of the order of `fill_row`.
    pub fn release(&mut self, fill_row: i64) -> Option<Reservation> {
        self.0.remove(&fill_row)
    }

    /// Orders in flight.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing is in flight.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The book with every BUY in flight filled at its limit: what the caps are checked against.
    /// SELLs in flight are not subtracted (they lower exposure only once they fill).
    #[must_use]
    pub fn view(&self, book: &Book) -> Book {
        let mut view = book.clone();
        for r in self.0.values().filter(|r| r.side == Side::Buy) {
            let p = view.position(&r.token);
            view.set(r.token, Position { shares: Shares(p.shares.0 + r.shares.0), cost: Usdc(p.cost.0 + r.usdc.0) });
        }
        view
    }

    /// True while a BUY of `token` is being placed: a SELL sized now would not see what it buys.
    #[must_use]
    pub fn buying(&self, token: &TokenId) -> bool {
        self.0.values().any(|r| r.placing && r.side == Side::Buy && &r.token == token)
    }

    /// Our position in `token` that no SELL in flight has claimed yet: what the next SELL is sized on.
    #[must_use]
    pub fn sellable(&self, book: &Book, token: &TokenId) -> Shares {
        let claimed: i64 =
            self.0.values().filter(|r| r.side == Side::Sell && &r.token == token).map(|r| r.shares.0).sum();
        Shares((book.position(token).shares.0 - claimed).max(0))
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
        let view = r.view(&book);
        assert_eq!(view.exposure(), Usdc(5_000_000 + mul_price_ceil(buy.shares, buy.limit_price)));
        assert_eq!(r.sellable(&book, &U256::from(1)), Shares(10_000_000 - sell.shares.0));
        assert_eq!(r.len(), 2);
        assert!(r.buying(&U256::from(1)) && !r.buying(&U256::from(2)));
        r.unresolved(1);
        assert!(!r.buying(&U256::from(1)), "an order with an unknown outcome holds exposure, not the next SELL");
        assert_eq!(r.view(&book).exposure(), Usdc(5_000_000 + mul_price_ceil(buy.shares, buy.limit_price)));
        r.release(1);
        r.release(2);
        assert!(r.is_empty());
        assert_eq!(r.view(&book), book);
    }
}
