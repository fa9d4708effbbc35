//! What the exchange says an order of ours matched, held against the order we signed: nothing
//! matched for nothing paid is not a fill to book, and no answer makes us give more than we
//! signed (the exchange never takes more than an order's maker amount: pUSD for our BUY, shares
//! for our SELL). An answer that does not fit is treated as no answer: the order is looked up,
//! and our own fill on chain books it.

use alloy::primitives::U256;

use crate::clob::order::StoredOrder;
use crate::domain::Side;

/// The order's (shares, pUSD) as signed, base units; `None` when one does not fit an `i64`.
fn signed(order: &StoredOrder, side: Side) -> Option<(i64, i64)> {
    let units = |v: U256| i64::try_from(v).ok();
    let (maker, taker) = (units(order.maker_amount)?, units(order.taker_amount)?);
    Some(match side {
        Side::Buy => (taker, maker),
        Side::Sell => (maker, taker),
    })
}

/// `shares` for `usdc` as an answer reported them, made to fit `order`: `None` when either is not
/// positive (an empty amount reads as 0) or the order cannot be read; the side we give (a BUY's
/// pUSD, a SELL's shares) is capped at what we signed, as a reported decimal may round above it.
#[must_use]
pub fn fit(order: &StoredOrder, side: Side, shares: i64, usdc: i64) -> Option<(i64, i64)> {
    let (signed_shares, signed_usdc) = signed(order, side)?;
    if shares <= 0 || usdc <= 0 {
        return None;
    }
    Some(match side {
        Side::Buy => (shares, usdc.min(signed_usdc)),
        Side::Sell => (shares.min(signed_shares), usdc),
    })
}

/// `matched` shares of `order` (capped at its size) and their pUSD at the order's own price: what
/// a BUY pays at most (rounded up) or a SELL gets at least (rounded down). The price a lookup
/// reports is not used: an order's amounts are what the exchange can hold us to. `None` when
/// nothing matched or the order cannot be read.
#[must_use]
pub fn at_order_price(order: &StoredOrder, side: Side, matched: i64) -> Option<(i64, i64)> {
    let (size, pusd) = signed(order, side)?;
    let shares = matched.min(size);
    if shares <= 0 || size <= 0 {
        return None;
    }
    let value = i128::from(shares) * i128::from(pusd);
    let size = i128::from(size);
    let usdc = match side {
        Side::Buy => (value + size - 1) / size,
        Side::Sell => value / size,
    };
    Some((shares, i64::try_from(usdc).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our order for 9.87 shares at 5.03 pUSD (BUY) or 4.84 pUSD (SELL).
    fn order(side: Side) -> StoredOrder {
        StoredOrder::for_test(side, 9_870_000, if side == Side::Buy { 5_030_000 } else { 4_840_000 })
    }

    #[test]
    fn an_answer_is_booked_only_as_far_as_it_fits_the_order() {
        for (side, shares, usdc, want, why) in [
            (Side::Buy, 9_870_000, 5_029_752, Some((9_870_000, 5_029_752)), "as answered"),
            (Side::Buy, 10_000_000, 5_030_000, Some((10_000_000, 5_030_000)), "surplus shares are ours"),
            (Side::Buy, 9_870_000, 5_030_739, Some((9_870_000, 5_030_000)), "never more pUSD than signed"),
            (Side::Buy, 9_870_000, 0, None, "shares for nothing"),
            (Side::Buy, 0, 5_030_000, None, "nothing for pUSD"),
            (Side::Sell, 9_870_000, 4_840_248, Some((9_870_000, 4_840_248)), "as answered"),
            (Side::Sell, 9_880_000, 4_840_000, Some((9_870_000, 4_840_000)), "never more shares than signed"),
            (Side::Sell, 9_870_000, 0, None, "shares given for nothing"),
        ] {
            assert_eq!(fit(&order(side), side, shares, usdc), want, "{side:?}: {why}");
        }
    }

    #[test]
    fn a_lookup_is_priced_at_the_orders_own_amounts() {
        for (side, matched, want, why) in [
            (Side::Buy, 9_870_000, Some((9_870_000, 5_030_000)), "all of it: what we signed"),
            (Side::Buy, 4_935_000, Some((4_935_000, 2_515_000)), "half"),
            (Side::Buy, 1_000_000, Some((1_000_000, 509_626)), "one share, rounded up"),
            (Side::Buy, 20_000_000, Some((9_870_000, 5_030_000)), "never more than the order"),
            (Side::Sell, 1_000_000, Some((1_000_000, 490_374)), "one share, rounded down"),
            (Side::Buy, 0, None, "nothing matched"),
        ] {
            assert_eq!(at_order_price(&order(side), side, matched), want, "{side:?}: {why}");
        }
    }
}
