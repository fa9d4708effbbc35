//! The amounts a signed order carries, as the real CLOB accepts them (docs/PROTOCOL.md §7).
//!
//! A market order (FAK or FOK) may carry at most 2 decimals on its pUSD side: a BUY's maker amount
//! and a SELL's taker amount. Limit orders (GTD) follow the tick and lot rules instead, and the SDK's
//! own builder computes them. For market orders we choose the amounts ourselves:
//! - preferably the largest size (in 0.01-share lots, never more than approved) whose value at the
//!   limit price is a whole cent: the order's price is then exactly the approved limit;
//! - when that size would fall below the market's minimum, the approved size with the cents rounded
//!   in our favour (a BUY pays less, a SELL asks more): the limit is never exceeded either way.

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

/// The amounts of a FAK/FOK order for `shares` (whole lots) at `limit`.
///
/// # Errors
/// [`DenyReason::BelowMinimum`] when no valid amounts reach the market's minimum or a cent.
pub fn market_order_amounts(
    side: Side,
    shares: Shares,
    limit: Price,
    min_size: Shares,
) -> Result<OrderAmounts, DenyReason> {
    let lots = shares.0 / LOT;
    let floor = min_size.0.max(LOT);
    let value = |s: i64| i128::from(s) * i128::from(limit.0) / i128::from(ONE);
    // lots × LOT × limit / ONE is a whole cent exactly when lots × limit is a multiple of ONE.
    let step = ONE / gcd(limit.0.max(1), ONE);
    let exact = (lots - lots % step) * LOT;
    if exact >= floor {
        let usdc = i64::try_from(value(exact)).unwrap_or(i64::MAX);
        return Ok(OrderAmounts { shares: Shares(exact), usdc: Usdc(usdc) });
    }
    let s = lots * LOT;
    let raw = i64::try_from(value(s)).unwrap_or(i64::MAX);
    let usdc = match side {
        Side::Buy => raw - raw.rem_euclid(CENT),
        // value() truncated: a remainder in the product means the true value is above `raw`.
        Side::Sell => {
            let exact_value = i128::from(s) * i128::from(limit.0) % i128::from(ONE) == 0;
            let up = if exact_value { raw } else { raw + 1 };
            (up + CENT - 1).div_euclid(CENT) * CENT
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
        // 9.87 shares at 0.51: 5.0337 pUSD has 4 decimals; 9 shares at 0.51 is 4.59 exactly.
        assert_eq!(m(Side::Buy, 9_870_000, 510_000, 5_000_000), Ok((9_000_000, 4_590_000)));
        // 10 at 0.51: already whole cents.
        assert_eq!(m(Side::Buy, 10_000_000, 510_000, 5_000_000), Ok((10_000_000, 5_100_000)));
        // 5.5 at 0.51 with a minimum of 5: 5 shares is exact (2.55).
        assert_eq!(m(Side::Buy, 5_500_000, 510_000, 5_000_000), Ok((5_000_000, 2_550_000)));
        // 1.37 at 0.51, minimum 1.2: the exact size (1 share) is below it, so the size stays and the
        // cents round in our favour.
        assert_eq!(m(Side::Buy, 1_370_000, 510_000, 1_200_000), Ok((1_370_000, 690_000)));
        assert_eq!(m(Side::Sell, 1_370_000, 510_000, 1_200_000), Ok((1_370_000, 700_000)));
        assert_eq!(m(Side::Buy, 10_000, 10_000, 0).map_err(|e| e.code()), Err("below_minimum"));
    }

    /// Every tick, both sides, a spread of sizes and prices: the pUSD side has at most 2 decimals,
    /// shares are whole lots no more than approved and at least the minimum, and the order's price
    /// never passes the limit (a BUY pays at most it, a SELL receives at least it).
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
                            let at_limit = i128::from(a.shares.0) * i128::from(limit.0);
                            let paid = i128::from(a.usdc.0) * i128::from(ONE);
                            match side {
                                Side::Buy => assert!(paid <= at_limit, "{ctx}"),
                                Side::Sell => assert!(paid >= at_limit, "{ctx}"),
                            }
                        }
                    }
                }
            }
        }
    }
}
