//! Hard limits every intent must pass. Pure: the caller passes the book, the wallet's recent activity,
//! today's P&L and the time.
//!
//! Orders that only reduce a position (SELLs) are exempt from the size and exposure caps and from the
//! frequency limits, so a limit can never trap us in a position the target has left; the breaker
//! (halt) stops everything.

use crate::domain::{OrderIntent, Side, Usdc};
use crate::risk::{DenyReason, Exposure};

/// The operator's hard limits (`[risk]` in the settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single BUY, in USDC at its limit price.
    pub max_order_usdc: Usdc,
    /// Largest cost of our position in any one token.
    pub max_position_usdc: Usdc,
    /// Largest total cost of all open positions.
    pub max_total_exposure_usdc: Usdc,
    /// Default copies per wallet per rolling hour (a wallet may set its own).
    pub max_trades_per_hour: u32,
    /// Today's loss at which buys stop, a positive amount: today's P&L as the limit counts it
    /// (realized since the trading day opened, at `risk.day_starts_at_hour` UTC, plus the change
    /// of unrealized P&L since then).
    pub daily_loss_limit_usdc: Usdc,
}

/// What one wallet did recently, for the frequency limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WalletActivity {
    /// Copies of this wallet in the last hour.
    pub trades_last_hour: u32,
    /// When the last copy was approved, unix ms.
    pub last_trade_ms: Option<i64>,
    /// The wallet's own per-hour limit, if it has one.
    pub max_trades_per_hour: Option<u32>,
    /// The wallet's minimum gap between copies, if any.
    pub min_trade_interval_s: Option<u64>,
}

/// Checks one intent against every limit; returns the first that denies it. `realized_today` is
/// today's P&L as the daily loss limit counts it (see [`Limits::daily_loss_limit_usdc`]).
///
/// # Errors
/// The [`DenyReason`] of the first limit the intent breaks.
pub fn check_intent(
    intent: &OrderIntent,
    limits: &Limits,
    book: &impl Exposure,
    realized_today: Usdc,
    activity: &WalletActivity,
    now_ms: i64,
) -> Result<(), DenyReason> {
    // Exits always go (they only reduce risk); the trading state decides the rest.
    if intent.side == Side::Sell {
        return Ok(());
    }
    if realized_today.0 <= -limits.daily_loss_limit_usdc.0 {
        return Err(DenyReason::DailyLossLimit { pnl: realized_today, limit: limits.daily_loss_limit_usdc });
    }
    let notional = intent.notional();
    if notional > limits.max_order_usdc {
        return Err(DenyReason::MaxOrderUsdc { notional, max: limits.max_order_usdc });
    }
    let pos_after = Usdc(book.position(&intent.token_id).cost.0.saturating_add(notional.0));
    if pos_after > limits.max_position_usdc {
        return Err(DenyReason::MaxPositionUsdc { after: pos_after, max: limits.max_position_usdc });
    }
    let exp_after = Usdc(book.exposure().0.saturating_add(notional.0));
    if exp_after > limits.max_total_exposure_usdc {
        return Err(DenyReason::MaxTotalExposure { after: exp_after, max: limits.max_total_exposure_usdc });
    }
    let max = activity.max_trades_per_hour.unwrap_or(limits.max_trades_per_hour);
    if activity.trades_last_hour >= max {
        return Err(DenyReason::TradeRate { count: activity.trades_last_hour, max });
    }
    if let (Some(min_s), Some(last)) = (activity.min_trade_interval_s, activity.last_trade_ms) {
        let since_s = (now_ms - last) / 1000;
        if since_s < i64::try_from(min_s).unwrap_or(i64::MAX) {
            return Err(DenyReason::MinTradeInterval { since_s, min_s });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Execution, ONE, Price, Shares};
    use crate::risk::Book;
    use alloy::primitives::U256;

    fn intent(side: Side, shares: i64, price: i64) -> OrderIntent {
        crate::domain::test_intent(side, shares, price, price)
    }

    const LIMITS: Limits = Limits {
        max_order_usdc: Usdc(50 * ONE),
        max_position_usdc: Usdc(100 * ONE),
        max_total_exposure_usdc: Usdc(150 * ONE),
        max_trades_per_hour: 3,
        daily_loss_limit_usdc: Usdc(20 * ONE),
    };

    fn book(token1_cost: i64, token2_cost: i64) -> Book {
        let mut b = Book::default();
        for (t, c) in [(1u64, token1_cost), (2, token2_cost)] {
            if c > 0 {
                b.apply(&Execution {
                    fill_row: 0,
                    side: Side::Buy,
                    token_id: U256::from(t),
                    shares: Shares(c * 2),
                    price: Price(500_000),
                    usdc: Usdc(c),
                    mode: crate::domain::ExecMode::Paper,
                    at_ms: 0,
                });
            }
        }
        b
    }

    /// One row per limit boundary: (intent, book costs, realized today, activity, expected code).
    #[test]
    fn denies_at_every_boundary() {
        let act = |n: u32, last: Option<i64>, own: Option<u32>, gap: Option<u64>| WalletActivity {
            trades_last_hour: n,
            last_trade_ms: last,
            max_trades_per_hour: own,
            min_trade_interval_s: gap,
        };
        let none = act(0, None, None, None);
        let now = 10_000_000;
        let cases: Vec<(OrderIntent, (i64, i64), i64, WalletActivity, Option<&str>)> = vec![
            (intent(Side::Buy, 100 * ONE, 500_000), (0, 0), 0, none, None), // exactly $50
            (intent(Side::Buy, 100 * ONE + 10_000, 500_000), (0, 0), 0, none, Some("max_order_usdc")),
            (intent(Side::Buy, 100 * ONE, 500_000), (50 * ONE, 0), 0, none, None), // position → exactly $100
            (intent(Side::Buy, 100 * ONE, 500_000), (50 * ONE + 1, 0), 0, none, Some("max_position_usdc")),
            (intent(Side::Buy, 100 * ONE, 500_000), (50 * ONE, 50 * ONE), 0, none, None), // exposure → $150
            (intent(Side::Buy, 100 * ONE, 500_000), (50 * ONE, 50 * ONE + 1), 0, none, Some("max_total_exposure")),
            (intent(Side::Buy, 2 * ONE, 500_000), (0, 0), 0, act(2, None, None, None), None),
            (intent(Side::Buy, 2 * ONE, 500_000), (0, 0), 0, act(3, None, None, None), Some("trade_rate")),
            (intent(Side::Buy, 2 * ONE, 500_000), (0, 0), 0, act(3, None, Some(4), None), None),
            // A wallet's own rate below the default binds too.
            (intent(Side::Buy, 2 * ONE, 500_000), (0, 0), 0, act(1, None, Some(1), None), Some("trade_rate")),
            // A last copy dated ahead of now (the clock stepped back) holds the next one back.
            (
                intent(Side::Buy, 2 * ONE, 500_000),
                (0, 0),
                0,
                act(1, Some(now + 60_000), None, Some(300)),
                Some("min_trade_interval"),
            ),
            (
                intent(Side::Buy, 2 * ONE, 500_000),
                (0, 0),
                0,
                act(1, Some(now - 299_999), None, Some(300)),
                Some("min_trade_interval"),
            ),
            (intent(Side::Buy, 2 * ONE, 500_000), (0, 0), 0, act(1, Some(now - 300_000), None, Some(300)), None),
            (intent(Side::Buy, 2 * ONE, 500_000), (0, 0), -20 * ONE + 1, none, None),
            (intent(Side::Buy, 2 * ONE, 500_000), (0, 0), -20 * ONE, none, Some("daily_loss_limit")),
            // an exit is never held back by the loss limit: it only reduces risk
            (intent(Side::Sell, 2 * ONE, 500_000), (0, 0), -20 * ONE, none, None),
            // sells reduce risk: caps and frequency do not block them
            (
                intent(Side::Sell, 1_000 * ONE, 500_000),
                (200 * ONE, 200 * ONE),
                0,
                act(9, Some(now), None, Some(300)),
                None,
            ),
        ];
        for (i, (it, (c1, c2), pnl, activity, want)) in cases.into_iter().enumerate() {
            let got = check_intent(&it, &LIMITS, &book(c1, c2), Usdc(pnl), &activity, now);
            assert_eq!(got.err().map(|e| e.code()), want, "case {i}");
        }
    }
}
