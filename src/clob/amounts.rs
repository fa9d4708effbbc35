//! The amounts a signed order carries, as the real CLOB accepts them (docs/PROTOCOL.md §7).
//!
//! A market order (FAK or FOK) may carry at most 2 decimals on its pUSD side: a BUY's maker amount
//! and a SELL's taker amount. Limit orders (GTD) follow the tick and lot rules instead, and the SDK's
//! own builder computes them. For market orders we choose the amounts ourselves:
//! - a SELL keeps its approved size, with the cents rounded up (it asks at least the limit): a size
//!   cut to a whole-cent value would leave shares behind, up to half of them on a 0.001 tick (the
//!   step there is 10 shares), and after a target's full exit nothing else sells them;
//! - a BUY takes the largest size whose value at the limit is a whole cent (its price is then
//!   exactly the limit, so it crosses an ask resting at the limit) when that trims at most
//!   [`MAX_TRIM_PER_MILLE`] of the size and stays above the market's minimum; otherwise it keeps the
//!   approved size with the cents rounded down (it pays at most the limit).
//!
//! Rounded cents move the order's price by less than one cent over the whole order, always in our
//! favour, so an order may miss a book resting exactly at its limit; it never passes the limit.
//! One exception: a SELL near 1 whose cents rounded up would ask a price of 1 or more (5 shares at
//! 0.999 is 4.995 pUSD; 5.00 is a price of 1, which no book takes) rounds them down instead, and
//! asks under one cent less than its limit over the whole order rather than never selling.

use crate::domain::{LOT, ONE, Price, Shares, Side, Usdc};
use crate::risk::DenyReason;

/// One cent in micro-units: the pUSD resolution of a market order.
pub const CENT: i64 = 10_000;

/// What an order gives and gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderAmounts {
    /// Shares bought or sold, micro-units (whole lots).
    pub shares: Shares,
    /// pUSD paid (BUY) or asked (SELL), micro-units.
    pub usdc: Usdc,
}

impl OrderAmounts {
    /// (maker amount, taker amount) as signed: a BUY gives pUSD for shares, a SELL the reverse.
    #[must_use]
    pub const fn maker_taker(self, side: Side) -> (i64, i64) {
        match side {
            Side::Buy => (self.usdc.0, self.shares.0),
            Side::Sell => (self.shares.0, self.usdc.0),
        }
    }
}

const fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// The most a BUY is trimmed, in thousandths of its size, to price it exactly at its limit.
pub const MAX_TRIM_PER_MILLE: i64 = 10;

/// The least pUSD a marketable (FAK/FOK) BUY may spend: the CLOB refuses one below it ("invalid
/// amount for a marketable BUY order ($0.99), min size: $1"; docs/PROTOCOL.md, "Prices, sizes,
/// minimums"), and a refusal from the exchange would count toward the error breaker.
pub const MARKET_BUY_MIN_USDC: Usdc = Usdc(ONE);

/// The amounts of a FAK/FOK order for `shares` (whole lots) at `limit`.
///
/// # Errors
/// [`DenyReason::BelowMinimum`] when no valid amounts reach the market's minimum, a cent, or for a
/// BUY [`MARKET_BUY_MIN_USDC`].
pub fn market_order_amounts(
    side: Side,
    shares: Shares,
    limit: Price,
    min_size: Shares,
) -> Result<OrderAmounts, DenyReason> {
    let a = amounts_at_limit(side, shares, limit, min_size)?;
    if side == Side::Buy && a.usdc < MARKET_BUY_MIN_USDC {
        return Err(DenyReason::BelowMinimum { shares: a.shares, notional: a.usdc, min: MARKET_BUY_MIN_USDC });
    }
    Ok(a)
}

/// [`market_order_amounts`] before the BUY's least spend.
fn amounts_at_limit(side: Side, shares: Shares, limit: Price, min_size: Shares) -> Result<OrderAmounts, DenyReason> {
    let lots = shares.0 / LOT;
    let floor = min_size.0.max(LOT);
    let value = |s: i64| i128::from(s) * i128::from(limit.0) / i128::from(ONE);
    let s = lots * LOT;
    if side == Side::Buy {
        // lots × LOT × limit / ONE is a whole cent exactly when lots × limit is a multiple of ONE.
        let step = ONE / gcd(limit.0.max(1), ONE);
        let exact = (lots - lots % step) * LOT;
        let trimmed = i128::from(s - exact) * 1000 <= i128::from(s) * i128::from(MAX_TRIM_PER_MILLE);
        if exact >= floor && trimmed {
            let usdc = i64::try_from(value(exact)).unwrap_or(i64::MAX);
            return Ok(OrderAmounts { shares: Shares(exact), usdc: Usdc(usdc) });
        }
    }
    let raw = i64::try_from(value(s)).unwrap_or(i64::MAX);
    let usdc = match side {
        Side::Buy => raw - raw.rem_euclid(CENT),
        // value() truncated: a remainder in the product means the true value is above `raw`.
        Side::Sell => {
            let exact_value = i128::from(s) * i128::from(limit.0) % i128::from(ONE) == 0;
            let up = if exact_value { raw } else { raw + 1 };
            let cents_up = (up + CENT - 1).div_euclid(CENT) * CENT;
            // pUSD asked per share must stay under 1 (shares and pUSD share the 6 decimals).
            if cents_up >= s { raw - raw.rem_euclid(CENT) } else { cents_up }
        }
    };
    if s < floor || usdc < CENT {
        return Err(DenyReason::BelowMinimum {
            shares: Shares(s),
            notional: Usdc(raw),
            min: Usdc(i64::try_from(value(floor)).unwrap_or(i64::MAX)),
        });
    }
    Ok(OrderAmounts { shares: Shares(s), usdc: Usdc(usdc) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clob::pricing::TickSize;

    #[test]
    fn examples() {
        let m = |side, shares: i64, limit: i64, min: i64| {
            market_order_amounts(side, Shares(shares), Price(limit), Shares(min)).map(|a| (a.shares.0, a.usdc.0))
        };
        for (side, shares, limit, min, want, why) in [
            (Side::Buy, 10_000_000, 510_000, 5_000_000, (10_000_000, 5_100_000), "already whole cents"),
            (Side::Sell, 10_000_000, 510_000, 5_000_000, (10_000_000, 5_100_000), "already whole cents"),
            // 9.87 at 0.51 is 5.0337 pUSD; the exact size, 9 shares, would trim 8.8%.
            (Side::Buy, 9_870_000, 510_000, 5_000_000, (9_870_000, 5_030_000), "kept, cents down"),
            (Side::Sell, 9_870_000, 510_000, 5_000_000, (9_870_000, 5_040_000), "kept, cents up"),
            // 123.45 at 0.51: 123 shares is 62.73 exactly, a trim of 0.36%.
            (Side::Buy, 123_450_000, 510_000, 5_000_000, (123_000_000, 62_730_000), "trimmed to the limit"),
            (Side::Sell, 123_450_000, 510_000, 5_000_000, (123_450_000, 62_960_000), "a SELL is never trimmed"),
            // A full exit of 19.99 at 0.977 (a 0.001 tick): the exact size would be 10 shares.
            (Side::Sell, 19_990_000, 977_000, 5_000_000, (19_990_000, 19_540_000), "no half left behind"),
            (Side::Buy, 19_990_000, 977_000, 5_000_000, (19_990_000, 19_530_000), "no half copy"),
            // 3.37 at 0.51, minimum 3.2: the exact size (3 shares) is below it.
            (Side::Buy, 3_370_000, 510_000, 3_200_000, (3_370_000, 1_710_000), "minimum"),
            (Side::Sell, 1_370_000, 510_000, 1_200_000, (1_370_000, 700_000), "minimum"),
            // 5 at 0.999 is 4.995: up would be 5.00, a price of 1.
            (Side::Sell, 5_000_000, 999_000, 5_000_000, (5_000_000, 4_990_000), "never a price of 1"),
            (Side::Sell, 5_000_000, 990_000, 5_000_000, (5_000_000, 4_950_000), "already whole cents"),
        ] {
            assert_eq!(m(side, shares, limit, min), Ok(want), "{side:?} {shares} at {limit}: {why}");
        }
        assert_eq!(m(Side::Buy, 10_000, 10_000, 0).map_err(|e| e.code()), Err("below_minimum"));
        // A marketable BUY spends at least 1 pUSD: 7.69 shares at 0.13 would be 0.99 (a SELL has no
        // such floor).
        for (shares, limit, ok) in
            [(7_690_000, 130_000, false), (7_700_000, 130_000, true), (1_370_000, 510_000, false)]
        {
            assert_eq!(m(Side::Buy, shares, limit, 0).is_ok(), ok, "{shares} at {limit}");
        }
        assert!(m(Side::Sell, 1_370_000, 510_000, 0).is_ok());
    }

    /// Every tick, both sides, a spread of sizes and prices: the pUSD side has at most 2 decimals,
    /// shares are whole lots no more than approved and at least the minimum, and the order's price
    /// never passes the limit (a BUY pays at most it, a SELL receives at least it, except a SELL
    /// whose rounded-up cents would ask a price of 1: under one cent less in all).
    #[test]
    fn two_decimals_on_the_pusd_side_for_every_tick() {
        for t in TickSize::ALLOWED {
            let tick = TickSize::from_micros(t).unwrap();
            for limit in (t..ONE).step_by(usize::try_from(t * 37).unwrap()) {
                let limit = Price(limit);
                if !tick.is_valid(limit) {
                    continue;
                }
                for shares in [10_000, 50_000, 990_000, 1_000_000, 5_010_000, 9_870_000, 123_450_000] {
                    for side in [Side::Buy, Side::Sell] {
                        for min in [0, 1_000_000, 5_000_000] {
                            let Ok(a) = market_order_amounts(side, Shares(shares), limit, Shares(min)) else {
                                continue;
                            };
                            let ctx = format!("tick {t} limit {} shares {shares} {side:?} min {min}: {a:?}", limit.0);
                            assert_eq!(a.usdc.0 % CENT, 0, "{ctx}");
                            assert_eq!(a.shares.0 % LOT, 0, "{ctx}");
                            assert!(a.shares.0 <= shares && a.shares.0 >= min.max(LOT), "{ctx}");
                            let whole = shares - shares % LOT;
                            match side {
                                Side::Sell => assert_eq!(a.shares.0, whole, "a SELL keeps its size: {ctx}"),
                                Side::Buy => assert!((whole - a.shares.0) * 1000 <= whole * 10, "{ctx}"),
                            }
                            let at_limit = i128::from(a.shares.0) * i128::from(limit.0);
                            let paid = i128::from(a.usdc.0) * i128::from(ONE);
                            // A SELL asks at least its limit, unless that would be a price of 1 or
                            // more: then it asks under 1, less than a cent below the limit in all.
                            let one = i128::from(a.shares.0) * i128::from(ONE);
                            match side {
                                Side::Buy => assert!(paid <= at_limit, "{ctx}"),
                                Side::Sell if paid >= at_limit => assert!(paid < one, "{ctx}"),
                                Side::Sell => {
                                    assert!(paid + i128::from(CENT) * i128::from(ONE) >= one, "{ctx}");
                                    assert!(at_limit - paid < i128::from(CENT) * i128::from(ONE), "{ctx}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
