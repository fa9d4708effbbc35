//! How big our copy of one target fill is. Pure; every rounding is down to the CLOB's 0.01-share lot.
//!
//! - BUY, `multiplier`: target shares × multiplier.
//! - BUY, `fixed_usdc`: the amount ÷ the target's price.
//! - BUY, either mode: clipped so that shares × limit price stays within the wallet's `max_order_usdc`;
//!   the limit never above the wallet's `max_price`.
//! - The limit price moves against us by the slippage and never further: it is kept inside the
//!   widest range any tick allows ([0.0001, 0.9999]), so a clamp only ever moves it our way; the
//!   executor then puts it on the market's own tick, inward, or refuses it.
//! - SELL, any mode: the same fraction of our position as the target sold of its own (its balance
//!   before the fill), never more than we hold; raised to the market's smallest order when that is
//!   more (an exit only takes risk off, and a part the exchange refuses would leave us holding more
//!   than the target's proportion at every step of a scaled exit).
//! - A BUY under the market's smallest order is refused here, before it is approved: sent, the
//!   exchange refuses it, and its approval would have used up the target's trade budget.

use rust_decimal::Decimal;

use crate::domain::{LOT, ONE, Price, Shares, Side, TargetFill, Usdc, mul_price_floor};
use crate::risk::DenyReason;

/// How BUY copies are sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizingRule {
    /// Our shares = target shares × this.
    Multiplier(Decimal),
    /// Spend this much per copied BUY.
    FixedUsdc(Usdc),
}

/// One target's copy settings, after `defaults` were merged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRules {
    /// BUY sizing.
    pub sizing: SizingRule,
    /// Skip fills priced below this.
    pub min_price: Option<Price>,
    /// Skip fills priced above this.
    pub max_price: Option<Price>,
    /// Mirror the target's sells.
    pub copy_sells: bool,
    /// Clip each BUY to this value.
    pub max_order_usdc: Option<Usdc>,
    /// Copies allowed per hour for this wallet (overrides the risk default).
    pub max_trades_per_hour: Option<u32>,
    /// Minimum seconds between two copies of this wallet.
    pub min_trade_interval_s: Option<u64>,
}

impl CopyRules {
    /// Rules with this sizing and nothing else restricted: sells copied, no band, no own limits.
    #[must_use]
    pub const fn new(sizing: SizingRule) -> Self {
        Self {
            sizing,
            min_price: None,
            max_price: None,
            copy_sells: true,
            max_order_usdc: None,
            max_trades_per_hour: None,
            min_trade_interval_s: None,
        }
    }
}

/// What sizing needs to know besides the fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizingContext {
    /// Our current position in the fill's token.
    pub our_position: Shares,
    /// The target's balance of the token just before this fill, when known.
    pub target_balance_before: Option<Shares>,
    /// How far the limit price may move from the target's price, in basis points.
    pub max_slippage_bps: u32,
    /// Smallest order value worth sending.
    pub min_order_usdc: Usdc,
    /// The market's smallest order, shares (0: not known).
    pub market_min_shares: Shares,
    /// Oldest fill still copied, seconds (0: no limit).
    pub max_copy_delay_s: u64,
    /// Now, unix ms.
    pub now_ms: i64,
}

/// A sized copy: our shares and the worst price we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sized {
    /// Whole lots.
    pub shares: Shares,
    /// Worst acceptable price.
    pub limit_price: Price,
}

/// Lowest and highest limit price we ever send: the range of the finest tick (0.0001). Narrower
/// would raise a BUY's limit (or lower a SELL's) past the slippage on a 0.0001-tick market.
const PRICE_FLOOR: i64 = 100;
const PRICE_CEIL: i64 = ONE - 100;

/// Rounds down to a whole number of lots.
#[must_use]
pub const fn floor_lot(micros: i64) -> i64 {
    micros - micros.rem_euclid(LOT)
}

/// The target's price moved against us by `bps`, kept inside the tradable range.
#[must_use]
pub fn limit_price(side: Side, target: Price, bps: u32) -> Price {
    let delta = i64::try_from(i128::from(target.0) * i128::from(bps) / 10_000).unwrap_or(ONE);
    let p = match side {
        Side::Buy => target.0.saturating_add(delta),
        Side::Sell => target.0.saturating_sub(delta),
    };
    Price(p.clamp(PRICE_FLOOR, PRICE_CEIL))
}

/// Refuses a fill older than `max_copy_delay_s` (0: no limit) at `now_ms`: checked before anything
/// is looked up on the network, and again in [`size_copy`]. Exits too: a backfill after a long
/// outage records history without trading at old prices (the copier tells the operator of an
/// exit refused so while we hold the target's copies).
///
/// # Errors
/// [`DenyReason::Stale`].
pub fn check_fresh(fill: &TargetFill, max_copy_delay_s: u64, now_ms: i64) -> Result<(), DenyReason> {
    let age_s = now_ms / 1000 - i64::try_from(fill.block_ts).unwrap_or(i64::MAX);
    if max_copy_delay_s > 0 && age_s > i64::try_from(max_copy_delay_s).unwrap_or(i64::MAX) {
        return Err(DenyReason::Stale { age_s, max_s: max_copy_delay_s });
    }
    Ok(())
}

/// Sizes our copy of `fill` under `rules`.
///
/// # Errors
/// The [`DenyReason`] when the fill is not to be copied.
pub fn size_copy(fill: &TargetFill, rules: &CopyRules, ctx: &SizingContext) -> Result<Sized, DenyReason> {
    check_fresh(fill, ctx.max_copy_delay_s, ctx.now_ms)?;
    // The band says what we buy. An exit is copied at any price (a stop-loss at 0.03, a profit
    // taken at 0.97): refused, the position would be held to resolution.
    let out_of_band =
        rules.min_price.is_some_and(|m| fill.price < m) || rules.max_price.is_some_and(|m| fill.price > m);
    if fill.side == Side::Buy && out_of_band {
        return Err(DenyReason::PriceOutOfBand { price: fill.price, min: rules.min_price, max: rules.max_price });
    }
    let mut limit = limit_price(fill.side, fill.price, ctx.max_slippage_bps);
    if fill.side == Side::Buy
        && let Some(max) = rules.max_price
    {
        // The band caps what we pay, not only the target's price: in band, so never below it.
        limit = limit.min(max);
    }
    let shares = match fill.side {
        Side::Buy => buy_shares(fill, rules, limit),
        Side::Sell => {
            if !rules.copy_sells {
                return Err(DenyReason::SellsDisabled);
            }
            sell_shares(fill.shares, ctx, limit)?
        }
    };
    let notional = Usdc(mul_price_floor(Shares(shares), limit));
    // Selling all we hold is never refused for its size: what is left below the minimum could
    // never be sold later.
    let exits_all = fill.side == Side::Sell && shares >= ctx.our_position.0;
    if shares < LOT || (notional < ctx.min_order_usdc && !exits_all) {
        return Err(DenyReason::BelowMinimum { shares: Shares(shares), notional, min: ctx.min_order_usdc });
    }
    if fill.side == Side::Buy && shares < ctx.market_min_shares.0 {
        let min = Usdc(mul_price_floor(ctx.market_min_shares, limit));
        return Err(DenyReason::BelowMinimum { shares: Shares(shares), notional, min });
    }
    Ok(Sized { shares: Shares(shares), limit_price: limit })
}

fn buy_shares(fill: &TargetFill, rules: &CopyRules, limit: Price) -> i64 {
    let raw = match rules.sizing {
        SizingRule::Multiplier(m) => {
            let v = (Decimal::from(fill.shares.0) * m).floor();
            i64::try_from(v.mantissa() / 10i128.pow(v.scale())).unwrap_or(0).max(0)
        }
        SizingRule::FixedUsdc(u) => div_by_price(u.0, fill.price),
    };
    let mut shares = floor_lot(raw);
    if let Some(cap) = rules.max_order_usdc {
        shares = shares.min(floor_lot(div_by_price(cap.0, limit)));
    }
    shares
}

/// usdc ÷ price, in micro-shares, rounded down.
fn div_by_price(usdc: i64, price: Price) -> i64 {
    if price.0 <= 0 {
        return 0;
    }
    i64::try_from(i128::from(usdc) * i128::from(ONE) / i128::from(price.0)).unwrap_or(i64::MAX)
}

fn sell_shares(target_sold: Shares, ctx: &SizingContext, limit: Price) -> Result<i64, DenyReason> {
    let held = ctx.our_position.0;
    if held <= 0 {
        return Err(DenyReason::NoPosition);
    }
    let before = ctx.target_balance_before.ok_or(DenyReason::UnknownTargetBalance)?;
    if before.0 <= target_sold.0 {
        // It sold all it had (or more than we know of): we exit fully.
        return Ok(held);
    }
    let ours = i128::from(held) * i128::from(target_sold.0) / i128::from(before.0);
    let mut part = floor_lot(i64::try_from(ours).unwrap_or(0)).min(held);
    if part > 0 && part < ctx.market_min_shares.0 {
        // The exchange would refuse so small a part: the market's smallest order instead.
        part = ctx.market_min_shares.0.min(held);
    }
    // What would be left is worth less than the minimum order, or is fewer shares than the market
    // takes in one order: it could never be sold on its own, so this exit takes it all.
    let rest = held - part;
    let stranded = Usdc(mul_price_floor(Shares(rest), limit)) < ctx.min_order_usdc || rest < ctx.market_min_shares.0;
    Ok(if part > 0 && stranded { held } else { part })
}

impl std::fmt::Display for CopyRules {
    /// The rules in a trader's words: "× 0.1 of its shares, BUYs at most 50 USDC, prices
    /// 0.05–0.95, sells copied, at most 20 copies an hour, 60 s apart".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::domain::format_micros;
        match self.sizing {
            SizingRule::Multiplier(m) => write!(f, "× {} of its shares", m.normalize())?,
            SizingRule::FixedUsdc(u) => write!(f, "{} USDC per BUY", format_micros(u.0))?,
        }
        if let Some(c) = self.max_order_usdc {
            write!(f, ", BUYs at most {} USDC", format_micros(c.0))?;
        }
        match (self.min_price, self.max_price) {
            (None, None) => {}
            (lo, hi) => write!(
                f,
                ", BUYs at prices {}–{}",
                format_micros(lo.map_or(0, |p| p.0)),
                format_micros(hi.map_or(ONE, |p| p.0))
            )?,
        }
        f.write_str(if self.copy_sells { ", sells copied" } else { ", sells not copied" })?;
        if let Some(n) = self.max_trades_per_hour {
            write!(f, ", at most {n} copies an hour")?;
        }
        if let Some(s) = self.min_trade_interval_s.filter(|s| *s > 0) {
            write!(f, ", {s} s apart")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::U256;
    use std::str::FromStr;

    fn fill(side: Side, shares: i64, price: i64) -> TargetFill {
        TargetFill { token_id: U256::from(1), ..crate::domain::test_fill(side, Shares(shares), Price(price)) }
    }

    fn rules(sizing: SizingRule) -> CopyRules {
        CopyRules::new(sizing)
    }

    fn ctx(pos: i64, before: Option<i64>) -> SizingContext {
        SizingContext {
            our_position: Shares(pos),
            target_balance_before: before.map(Shares),
            max_slippage_bps: 0,
            min_order_usdc: Usdc(ONE),
            market_min_shares: Shares::ZERO,
            max_copy_delay_s: 0,
            now_ms: 0,
        }
    }

    fn mult(s: &str) -> SizingRule {
        SizingRule::Multiplier(Decimal::from_str(s).unwrap())
    }

    #[test]
    fn sizes_buys_for_every_mode_and_rounding_case() {
        // (rule, target shares, price, wallet cap, expected shares or reason code)
        let cases: Vec<(SizingRule, i64, i64, Option<i64>, Result<i64, &str>)> = vec![
            (mult("0.1"), 100 * ONE, 500_000, None, Ok(10 * ONE)),
            (mult("0.1"), 123_456_789, 500_000, None, Ok(12_340_000)), // 12.3456789 → 12.34
            (mult("1"), 10_009_999, 500_000, None, Ok(10_000_000)),    // 10.009999 → 10.00
            (mult("0.001"), 100 * ONE, 500_000, None, Err("below_minimum")), // 0.1 share = $0.05
            (mult("2.5"), 4 * ONE, 250_000, None, Ok(10 * ONE)),
            (SizingRule::FixedUsdc(Usdc(20 * ONE)), 1, 470_000, None, Ok(42_550_000)), // 42.553 → 42.55
            (SizingRule::FixedUsdc(Usdc(20 * ONE)), 1, 1_000_000 - 1_000, None, Ok(20_020_000)),
            (SizingRule::FixedUsdc(Usdc(ONE / 2)), 1, 500_000, None, Err("below_minimum")),
            // wallet cap clips: $50 fixed at 0.5 → 100 shares, capped at $20 → 40 shares
            (SizingRule::FixedUsdc(Usdc(50 * ONE)), 1, 500_000, Some(20 * ONE), Ok(40 * ONE)),
            (mult("1"), 1_000 * ONE, 300_000, Some(10 * ONE), Ok(33_330_000)),
            // Exactly the smallest order value ($1: 2 shares at 0.5) is copied; a lot less is not.
            (mult("1"), 2 * ONE, 500_000, None, Ok(2 * ONE)),
            (mult("1"), 2 * ONE - LOT, 500_000, None, Err("below_minimum")),
            // A wallet cap that buys less than one lot at the price: nothing, not a rounding up.
            (mult("1"), 100 * ONE, 500_000, Some(4_999), Err("below_minimum")),
        ];
        for (i, (rule, shares, price, cap, want)) in cases.into_iter().enumerate() {
            let mut r = rules(rule);
            r.max_order_usdc = cap.map(Usdc);
            let got = size_copy(&fill(Side::Buy, shares, price), &r, &ctx(0, None));
            match want {
                Ok(s) => assert_eq!(got.map(|s| s.shares), Ok(Shares(s)), "case {i}"),
                Err(code) => assert_eq!(got.map_err(|e| e.code()), Err(code), "case {i}"),
            }
        }
    }

    #[test]
    fn sizes_sells_in_proportion_and_never_beyond_our_position() {
        // (our position, target sold, target balance before, expected)
        let cases: Vec<(i64, i64, Option<i64>, Result<i64, &str>)> = vec![
            (50 * ONE, 40 * ONE, Some(100 * ONE), Ok(20 * ONE)),  // 40% of 50
            (10 * ONE, 100 * ONE, Some(100 * ONE), Ok(10 * ONE)), // full exit
            (10 * ONE, 150 * ONE, Some(100 * ONE), Ok(10 * ONE)), // sold more than we knew: all, no more
            (33_330_000, ONE, Some(3 * ONE), Ok(11_110_000)),
            (0, 40 * ONE, Some(100 * ONE), Err("no_position")),
            (10 * ONE, 4 * ONE, None, Err("unknown_target_balance")),
            (10 * ONE, ONE / 100, Some(100 * ONE), Err("below_minimum")),
            // the rest would be worth less than the minimum (1 USDC at 0.6): all of it
            (2 * ONE, 80 * ONE, Some(100 * ONE), Ok(2 * ONE)),
            // a whole position worth less than the minimum still exits
            (ONE, 100 * ONE, Some(100 * ONE), Ok(ONE)),
            (ONE, 50 * ONE, Some(100 * ONE), Ok(ONE)),
            // under one lot: nothing can be sold
            (ONE / 200, 100 * ONE, Some(100 * ONE), Err("below_minimum")),
        ];
        for (i, (pos, sold, before, want)) in cases.into_iter().enumerate() {
            let got = size_copy(&fill(Side::Sell, sold, 600_000), &rules(mult("0.1")), &ctx(pos, before));
            match want {
                Ok(s) => assert_eq!(got.map(|s| s.shares), Ok(Shares(s)), "case {i}"),
                Err(code) => assert_eq!(got.map_err(|e| e.code()), Err(code), "case {i}"),
            }
        }
    }

    #[test]
    fn a_rest_below_the_markets_minimum_is_sold_with_the_exit() {
        // (our position, target sold of 100, market minimum, expected): at 0.60 a rest of 4.8
        // shares is worth 2.88, above the 1 USDC minimum, but under a 5-share market minimum.
        let cases = [
            (12 * ONE, 60 * ONE, 5 * ONE, 12 * ONE),
            (12 * ONE, 60 * ONE, 0, 7_200_000),
            (12 * ONE, 50 * ONE, 5 * ONE, 6 * ONE),
            (20 * ONE, 60 * ONE, 5 * ONE, 12 * ONE),
            // A part under the market's minimum is raised to it (2.4 of 12 → 5, 7 left)...
            (12 * ONE, 20 * ONE, 5 * ONE, 5 * ONE),
            // ...and all of it when what would be left is under the minimum too (1.8 of 9 → 9).
            (9 * ONE, 20 * ONE, 5 * ONE, 9 * ONE),
            // Fewer shares held than the minimum: the whole position, as sizing goes (the sender
            // then refuses it below the market's minimum: nothing smaller could be sold either).
            (4 * ONE, 20 * ONE, 5 * ONE, 4 * ONE),
        ];
        for (pos, sold, min, want) in cases {
            let c = SizingContext { market_min_shares: Shares(min), ..ctx(pos, Some(100 * ONE)) };
            let got = size_copy(&fill(Side::Sell, sold, 600_000), &rules(mult("0.1")), &c);
            assert_eq!(got.map(|s| s.shares), Ok(Shares(want)), "{pos} {sold} {min}");
        }
    }

    #[test]
    fn a_buy_under_the_markets_minimum_is_refused_before_approval() {
        // (target shares at 0.50 × 0.1, market minimum, expected shares or reason code)
        let cases: Vec<(i64, i64, Result<i64, &str>)> = vec![
            (40 * ONE, 5 * ONE, Err("below_minimum")), // 4 shares, worth 2 USDC, under 5 shares
            (50 * ONE, 5 * ONE, Ok(5 * ONE)),
            (40 * ONE, 0, Ok(4 * ONE)), // minimum not known: only our own minimum value applies
        ];
        for (target, min, want) in cases {
            let c = SizingContext { market_min_shares: Shares(min), ..ctx(0, None) };
            let got = size_copy(&fill(Side::Buy, target, 500_000), &rules(mult("0.1")), &c);
            match want {
                Ok(s) => assert_eq!(got.map(|s| s.shares), Ok(Shares(s)), "{target} {min}"),
                Err(code) => assert_eq!(got.map_err(|e| e.code()), Err(code), "{target} {min}"),
            }
        }
    }

    #[test]
    fn filters_by_price_band_and_sell_switch() {
        let mut r = rules(mult("1"));
        r.min_price = Some(Price(100_000));
        r.max_price = Some(Price(900_000));
        for (price, ok) in [(99_999, false), (100_000, true), (900_000, true), (900_001, false)] {
            let got = size_copy(&fill(Side::Buy, 10 * ONE, price), &r, &ctx(0, None));
            assert_eq!(got.is_ok(), ok, "price {price}");
        }
        // Exits are copied at any price: a stop-loss under the band, a profit taken above it.
        for price in [30_000, 970_000] {
            let got = size_copy(&fill(Side::Sell, 10 * ONE, price), &r, &ctx(10 * ONE, Some(10 * ONE)));
            assert_eq!(got.map(|s| s.shares), Ok(Shares(10 * ONE)), "SELL at {price}");
        }
        r.copy_sells = false;
        let got = size_copy(&fill(Side::Sell, 10 * ONE, 500_000), &r, &ctx(10 * ONE, Some(10 * ONE)));
        assert_eq!(got.map_err(|e| e.code()), Err("sells_disabled"));
    }

    #[test]
    fn rejects_stale_fills() {
        let mut f = fill(Side::Buy, 10 * ONE, 500_000);
        f.block_ts = 1_000;
        let mut c = ctx(0, None);
        c.max_copy_delay_s = 300;
        for (now_s, ok) in [(1_000, true), (1_300, true), (1_301, false)] {
            c.now_ms = now_s * 1000;
            let got = size_copy(&f, &rules(mult("1")), &c);
            assert_eq!(got.is_ok(), ok, "now {now_s}");
        }
        c.max_copy_delay_s = 0;
        c.now_ms = 1_000_000_000;
        assert!(size_copy(&f, &rules(mult("1")), &c).is_ok(), "0 = no limit");
    }

    #[test]
    fn limit_price_moves_against_us_within_range() {
        assert_eq!(limit_price(Side::Buy, Price(500_000), 200), Price(510_000));
        assert_eq!(limit_price(Side::Sell, Price(500_000), 200), Price(490_000));
        assert_eq!(limit_price(Side::Buy, Price(470_000), 0), Price(470_000));
        // (side, target, bps, limit): a clamp only ever moves the limit our way, down for a BUY
        // and up for a SELL, never past the slippage (a 0.0001-tick market trades at 0.0002).
        let cases = [
            (Side::Buy, 995_000, 200, 999_900),
            (Side::Buy, 999_900, 200, 999_900),
            (Side::Buy, 200, 200, 204),
            (Side::Buy, 100, 10_000, 200),
            (Side::Sell, 1_000, 200, 980),
            (Side::Sell, 500, 200, 490),
            (Side::Sell, 100, 200, 100),
            (Side::Sell, 999_900, 200, 979_902),
        ];
        for (side, target, bps, want) in cases {
            let got = limit_price(side, Price(target), bps);
            assert_eq!(got, Price(want), "{side:?} {target} {bps}");
            match side {
                Side::Buy => assert!(got.0 <= target + target * i64::from(bps) / 10_000),
                Side::Sell => assert!(got.0 >= target - target * i64::from(bps) / 10_000),
            }
        }
    }

    #[test]
    fn a_buy_never_pays_above_the_band() {
        // (sizing, price, max_price, bps, expected shares, expected limit)
        let cases: Vec<(SizingRule, i64, Option<i64>, u32, i64, i64)> = vec![
            // the band's top caps the limit: 0.95 + 2 % would be 0.969
            (mult("1"), 950_000, Some(950_000), 200, 10 * ONE, 950_000),
            (mult("1"), 900_000, Some(950_000), 1_000, 10 * ONE, 950_000),
            (mult("1"), 900_000, None, 200, 10 * ONE, 918_000),
            // fixed_usdc at the target's price, the limit capped at the band's top
            (SizingRule::FixedUsdc(Usdc(100 * ONE)), 500_000, Some(505_000), 200, 200 * ONE, 505_000),
            (SizingRule::FixedUsdc(Usdc(100 * ONE)), 500_000, None, 0, 200 * ONE, 500_000),
        ];
        for (i, (rule, price, max, bps, shares, limit)) in cases.into_iter().enumerate() {
            let mut r = rules(rule);
            r.max_price = max.map(Price);
            let c = SizingContext { max_slippage_bps: bps, ..ctx(0, None) };
            let got = size_copy(&fill(Side::Buy, 10 * ONE, price), &r, &c);
            assert_eq!(got, Ok(Sized { shares: Shares(shares), limit_price: Price(limit) }), "case {i}");
        }
    }

    #[test]
    fn rules_read_as_a_trader_would_say_them() {
        let mut r = CopyRules::new(SizingRule::Multiplier(Decimal::new(10, 2)));
        assert_eq!(r.to_string(), "× 0.1 of its shares, sells copied");
        r.sizing = SizingRule::FixedUsdc(Usdc(20 * ONE));
        r.max_order_usdc = Some(Usdc(50 * ONE));
        r.min_price = Some(Price(50_000));
        r.copy_sells = false;
        r.max_trades_per_hour = Some(20);
        r.min_trade_interval_s = Some(60);
        assert_eq!(
            r.to_string(),
            "20 USDC per BUY, BUYs at most 50 USDC, BUYs at prices 0.05–1, sells not copied, at most 20 copies an hour, 60 s apart"
        );
    }
}
