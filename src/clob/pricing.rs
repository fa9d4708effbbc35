//! The CLOB's price and size rules (docs/PROTOCOL.md §5), as pure functions:
//! - a price is a multiple of the market's tick and lies in `[tick, 1 − tick]`;
//! - our limit is the target's price moved against us by at most `max_slippage_bps`, rounded to the
//!   tick *inward* (a BUY rounds down, a SELL rounds up), so rounding never adds slippage;
//! - a size is a whole number of 0.01-share lots, at least the market's minimum.

use crate::domain::{LOT, ONE, Price, Shares, Side};
use crate::risk::DenyReason;

/// A market's tick size, one of the CLOB's allowed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TickSize(i64);

impl TickSize {
    /// The allowed ticks, in micro-USDC: 0.1, 0.01, 0.005, 0.0025, 0.001, 0.0001.
    pub const ALLOWED: [i64; 6] = [100_000, 10_000, 5_000, 2_500, 1_000, 100];

    /// The tick of `micros` micro-USDC; `None` when the CLOB does not use it.
    #[must_use]
    pub fn from_micros(micros: i64) -> Option<Self> {
        Self::ALLOWED.contains(&micros).then_some(Self(micros))
    }

    /// The tick in micro-USDC.
    #[must_use]
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Lowest valid price.
    #[must_use]
    pub const fn min_price(self) -> Price {
        Price(self.0)
    }

    /// Highest valid price.
    #[must_use]
    pub const fn max_price(self) -> Price {
        Price(ONE - self.0)
    }

    /// True when `p` is on the grid and inside the valid range.
    #[must_use]
    pub const fn is_valid(self, p: Price) -> bool {
        p.0 % self.0 == 0 && p.0 >= self.0 && p.0 <= ONE - self.0
    }
}

/// Our limit price for a copy of a fill at `target`: moved against us by at most `max_slippage_bps`,
/// rounded inward to the tick and kept in `[tick, 1 − tick]`.
///
/// # Errors
/// [`DenyReason::PriceOutOfBand`] when no valid price lies within the allowed slippage (a BUY of a
/// target that paid less than one tick, a SELL above `1 − tick`).
pub fn limit_price_on_tick(
    side: Side,
    target: Price,
    max_slippage_bps: u32,
    tick: TickSize,
) -> Result<Price, DenyReason> {
    let t = tick.micros();
    let delta = i64::try_from(i128::from(target.0) * i128::from(max_slippage_bps) / 10_000).unwrap_or(ONE);
    let p = match side {
        // The most we accept to pay, rounded down: never more slippage than allowed.
        Side::Buy => (target.0.saturating_add(delta)).div_euclid(t) * t,
        // The least we accept to receive, rounded up.
        Side::Sell => {
            let raw = target.0.saturating_sub(delta);
            (raw + t - 1).div_euclid(t) * t
        }
    };
    let clamped = p.clamp(tick.min_price().0, tick.max_price().0);
    // Clamping may only move the price in our favour, never past the allowed slippage.
    let within = match side {
        Side::Buy => clamped <= target.0.saturating_add(delta),
        Side::Sell => clamped >= target.0.saturating_sub(delta),
    };
    if !within {
        return Err(DenyReason::PriceOutOfBand {
            price: target,
            min: Some(tick.min_price()),
            max: Some(tick.max_price()),
        });
    }
    Ok(Price(clamped))
}

/// The approved limit on the market's tick, rounded inward (a BUY down, a SELL up), so the price
/// sent is never worse than the one the risk supervisor approved.
///
/// # Errors
/// [`DenyReason::PriceOutOfBand`] when no valid price lies on our side of the approved limit.
pub fn approved_limit_on_tick(side: Side, approved: Price, tick: TickSize) -> Result<Price, DenyReason> {
    let t = tick.micros();
    let p = match side {
        Side::Buy => approved.0.div_euclid(t) * t,
        Side::Sell => (approved.0 + t - 1).div_euclid(t) * t,
    };
    if p < tick.min_price().0 || p > tick.max_price().0 {
        return Err(DenyReason::PriceOutOfBand {
            price: approved,
            min: Some(tick.min_price()),
            max: Some(tick.max_price()),
        });
    }
    Ok(Price(p))
}

/// Rounds a size down to whole lots and checks it against the market's minimum.
///
/// # Errors
/// [`DenyReason::BelowMinimum`] when the rounded size is below `min_size` (never bumped up: that
/// could exceed a cap).
pub fn size_for_market(shares: Shares, min_size: Shares, price: Price) -> Result<Shares, DenyReason> {
    let s = shares.0 - shares.0.rem_euclid(LOT);
    if s < min_size.0.max(LOT) {
        return Err(DenyReason::BelowMinimum {
            shares: Shares(s),
            notional: crate::domain::Usdc(crate::domain::mul_price_floor(Shares(s), price)),
            min: crate::domain::Usdc(crate::domain::mul_price_floor(min_size, price)),
        });
    }
    Ok(Shares(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(m: i64) -> TickSize {
        TickSize::from_micros(m).unwrap()
    }

    #[test]
    fn only_the_clob_ticks_exist() {
        for m in TickSize::ALLOWED {
            assert!(TickSize::from_micros(m).is_some());
        }
        for m in [0, 1, 50, 20_000, 1_000_000] {
            assert!(TickSize::from_micros(m).is_none(), "{m}");
        }
    }

    /// Every tick size, both sides, on and off the grid, at the range boundaries.
    #[test]
    fn limit_prices_round_inward_for_every_tick() {
        // (tick, side, target, bps, expected limit or None for out of band)
        let cases: &[(i64, Side, i64, u32, Option<i64>)] = &[
            // 0.1
            (100_000, Side::Buy, 500_000, 0, Some(500_000)),
            (100_000, Side::Buy, 550_000, 0, Some(500_000)), // off grid: down for a BUY
            (100_000, Side::Sell, 550_000, 0, Some(600_000)), // up for a SELL
            (100_000, Side::Buy, 500_000, 2_000, Some(600_000)),
            (100_000, Side::Buy, 950_000, 500, Some(900_000)), // capped at 1 − tick
            (100_000, Side::Sell, 50_000, 0, Some(100_000)),
            (100_000, Side::Buy, 50_000, 0, None), // no valid price at or below 0.05
            (100_000, Side::Sell, 950_000, 0, None), // nothing valid at or above 0.95
            // 0.01
            (10_000, Side::Buy, 470_000, 200, Some(470_000)), // 0.4794 → 0.47
            (10_000, Side::Sell, 470_000, 200, Some(470_000)), // 0.4606 → 0.47
            (10_000, Side::Buy, 470_000, 300, Some(480_000)), // 0.4841 → 0.48
            (10_000, Side::Sell, 470_000, 300, Some(460_000)), // 0.4559 → 0.46
            (10_000, Side::Buy, 990_000, 1_000, Some(990_000)),
            (10_000, Side::Sell, 10_000, 1_000, Some(10_000)),
            // 0.005
            (5_000, Side::Buy, 503_000, 0, Some(500_000)),
            (5_000, Side::Sell, 503_000, 0, Some(505_000)),
            (5_000, Side::Buy, 995_000, 100, Some(995_000)),
            // 0.0025
            (2_500, Side::Buy, 501_000, 0, Some(500_000)),
            (2_500, Side::Sell, 501_000, 0, Some(502_500)),
            (2_500, Side::Buy, 2_500, 0, Some(2_500)),
            // 0.001
            (1_000, Side::Buy, 123_456, 0, Some(123_000)),
            (1_000, Side::Sell, 123_456, 0, Some(124_000)),
            (1_000, Side::Buy, 999_500, 0, Some(999_000)),
            (1_000, Side::Buy, 500, 0, None),
            // 0.0001
            (100, Side::Buy, 123_456, 0, Some(123_400)),
            (100, Side::Sell, 123_456, 0, Some(123_500)),
            (100, Side::Sell, 999_950, 0, None),
            (100, Side::Buy, 999_950, 0, Some(999_900)),
        ];
        for (i, &(t, side, target, bps, want)) in cases.iter().enumerate() {
            let got = limit_price_on_tick(side, Price(target), bps, tick(t));
            match want {
                Some(p) => {
                    assert_eq!(got, Ok(Price(p)), "case {i}");
                    assert!(tick(t).is_valid(Price(p)), "case {i}: {p} not valid for tick {t}");
                }
                None => assert_eq!(got.map_err(|e| e.code()), Err("price_out_of_band"), "case {i}"),
            }
        }
    }

    #[test]
    fn never_more_slippage_than_allowed() {
        for t in TickSize::ALLOWED {
            for target in (1_000..1_000_000).step_by(7_919) {
                for bps in [0u32, 50, 200, 1_000] {
                    let allowed = i64::from(bps) * target / 10_000;
                    if let Ok(p) = limit_price_on_tick(Side::Buy, Price(target), bps, tick(t)) {
                        assert!(p.0 <= target + allowed && tick(t).is_valid(p));
                    }
                    if let Ok(p) = limit_price_on_tick(Side::Sell, Price(target), bps, tick(t)) {
                        assert!(p.0 >= target - allowed - 1 && tick(t).is_valid(p));
                    }
                }
            }
        }
    }

    #[test]
    fn the_price_sent_is_never_worse_than_the_approved_limit() {
        for t in TickSize::ALLOWED {
            for approved in (500..1_000_000).step_by(3_331) {
                if let Ok(p) = approved_limit_on_tick(Side::Buy, Price(approved), tick(t)) {
                    assert!(p.0 <= approved && tick(t).is_valid(p), "buy {approved} tick {t}: {p:?}");
                }
                if let Ok(p) = approved_limit_on_tick(Side::Sell, Price(approved), tick(t)) {
                    assert!(p.0 >= approved && tick(t).is_valid(p), "sell {approved} tick {t}: {p:?}");
                }
            }
        }
        assert_eq!(approved_limit_on_tick(Side::Buy, Price(510_000), tick(10_000)), Ok(Price(510_000)));
        assert_eq!(approved_limit_on_tick(Side::Buy, Price(519_999), tick(10_000)), Ok(Price(510_000)));
        assert_eq!(approved_limit_on_tick(Side::Sell, Price(490_001), tick(10_000)), Ok(Price(500_000)));
        assert!(approved_limit_on_tick(Side::Buy, Price(5_000), tick(10_000)).is_err());
    }

    #[test]
    fn sizes_round_down_and_respect_the_minimum() {
        let five = Shares(5 * ONE);
        for (shares, want) in [
            (5 * ONE, Ok(5 * ONE)),
            (5 * ONE + 9_999, Ok(5 * ONE)),
            (5_019_999, Ok(5_010_000)),
            (4_999_999, Err("below_minimum")),
            (0, Err("below_minimum")),
        ] {
            let got = size_for_market(Shares(shares), five, Price(500_000));
            assert_eq!(got.map(|s| s.0).map_err(|e| e.code()), want, "{shares}");
        }
        assert_eq!(size_for_market(Shares(9_999), Shares(0), Price(1)).map_err(|e| e.code()), Err("below_minimum"));
    }
}
