//! A FAK (or FOK) order simulated against an order book: take the best levels up to the limit
//! price, partial fills included. Pure; paper trading's `order_book` fill model.

use crate::domain::{Price, Shares, Side, Usdc, mul_price_ceil, mul_price_floor};

/// One price level of a book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// Price.
    pub price: Price,
    /// Shares resting there.
    pub size: Shares,
}

/// What walking the book gave: shares and the collateral paid (BUY) or received (SELL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walk {
    /// Shares filled (0: nothing within the limit).
    pub shares: Shares,
    /// Collateral, rounded against us at each level.
    pub usdc: Usdc,
}

/// Fills up to `shares` of a `side` order limited at `limit` against the opposite side of the
/// book (`asks` for a BUY, `bids` for a SELL), best price first. `all_or_nothing` (FOK) gives
/// nothing unless everything fills.
#[must_use]
pub fn walk_book(side: Side, shares: Shares, limit: Price, opposite: &[Level], all_or_nothing: bool) -> Walk {
    let mut levels: Vec<Level> = opposite
        .iter()
        .copied()
        .filter(|l| l.size.0 > 0 && if side == Side::Buy { l.price <= limit } else { l.price >= limit })
        .collect();
    // Best first: the cheapest ask, the highest bid.
    match side {
        Side::Buy => levels.sort_by_key(|l| l.price),
        Side::Sell => levels.sort_by_key(|l| std::cmp::Reverse(l.price)),
    }
    let (mut left, mut filled, mut usdc) = (shares.0, 0i64, 0i64);
    for l in levels {
        if left == 0 {
            break;
        }
        let take = Shares(left.min(l.size.0));
        usdc += if side == Side::Buy { mul_price_ceil(take, l.price) } else { mul_price_floor(take, l.price) };
        filled += take.0;
        left -= take.0;
    }
    if all_or_nothing && left > 0 {
        return Walk { shares: Shares::ZERO, usdc: Usdc::ZERO };
    }
    Walk { shares: Shares(filled), usdc: Usdc(usdc) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ONE;

    fn lv(price: i64, size: i64) -> Level {
        Level { price: Price(price), size: Shares(size * ONE) }
    }

    #[test]
    fn walks_best_levels_up_to_the_limit() {
        let asks = [lv(530_000, 10), lv(500_000, 4), lv(510_000, 3)];
        let bids = [lv(480_000, 2), lv(490_000, 5), lv(450_000, 100)];
        // (side, shares, limit, book, FOK) → (shares, usdc)
        for (side, want_shares, limit, book, fok, shares, usdc) in [
            // Both cheaper levels, stopped by the limit: 4 × 0.50 + 3 × 0.51.
            (Side::Buy, 10, 510_000, &asks[..], false, 7, 3_530_000),
            (Side::Buy, 10, 510_000, &asks[..], true, 0, 0),
            (Side::Buy, 5, 530_000, &asks[..], false, 5, 2_510_000),
            (Side::Buy, 10, 490_000, &asks[..], false, 0, 0),
            // Highest bids first: 5 × 0.49 + 2 × 0.48.
            (Side::Sell, 10, 480_000, &bids[..], false, 7, 3_410_000),
            (Side::Sell, 3, 400_000, &bids[..], false, 3, 1_470_000),
            (Side::Sell, 10, 500_000, &bids[..], false, 0, 0),
            (Side::Buy, 10, 990_000, &[][..], false, 0, 0),
        ] {
            let w = walk_book(side, Shares(want_shares * ONE), Price(limit), book, fok);
            assert_eq!(
                (w.shares, w.usdc),
                (Shares(shares * ONE), Usdc(usdc)),
                "{side:?} {want_shares} @ {limit} fok={fok}"
            );
        }
    }
}
