//! Why a fill was not copied: one typed reason, one stable code, the same in logs, SQLite and messages.

use std::fmt;

use crate::domain::{Price, Shares, Usdc};

/// The code of the daily loss limit: its refusals, and the trading state it sets (the new day
/// lifts the `reducing` it set, and only that one).
pub const DAILY_LOSS_LIMIT: &str = "daily_loss_limit";

/// The code of a copy refused before its order left because the target's trade was gone from the
/// chain (an orphaned sighting, a reorg): the copy is taken back, so the trade is copied afresh
/// if it is mined after all.
pub const TARGET_FILL_GONE: &str = "target_fill_gone";

/// Why a target fill was not copied. `Display` gives `code: key=value ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    /// The target's price is outside the wallet's `min_price`/`max_price` band.
    PriceOutOfBand {
        /// The target's price.
        price: Price,
        /// Lower bound, if any.
        min: Option<Price>,
        /// Upper bound, if any.
        max: Option<Price>,
    },
    /// The wallet has `copy_sells = false`.
    SellsDisabled,
    /// The copy rounds to less than one lot or less than the minimum order value.
    BelowMinimum {
        /// Our size after rounding.
        shares: Shares,
        /// Its value.
        notional: Usdc,
        /// The minimum order value.
        min: Usdc,
    },
    /// The target sold a token we do not hold.
    NoPosition,
    /// The target sold but neither the chain nor its observed fills tell how much it held.
    UnknownTargetBalance,
    /// The target sold, and the journal could not say what this target's copies hold: selling
    /// our whole position could sell other targets' copies, so nothing is sold.
    CopiesUnknown {
        /// The journal's error.
        cause: String,
    },
    /// The order's value exceeds the per-order cap.
    MaxOrderUsdc {
        /// This order's value.
        notional: Usdc,
        /// The cap.
        max: Usdc,
    },
    /// The position in this market would exceed its cap.
    MaxPositionUsdc {
        /// Cost of the position after this order.
        after: Usdc,
        /// The cap.
        max: Usdc,
    },
    /// Total exposure would exceed its cap.
    MaxTotalExposure {
        /// Exposure after this order.
        after: Usdc,
        /// The cap.
        max: Usdc,
    },
    /// The wallet already had its allowed number of copies in the last hour.
    TradeRate {
        /// Copies in the last hour.
        count: u32,
        /// Allowed per hour.
        max: u32,
    },
    /// The last copy of this wallet was too recent.
    MinTradeInterval {
        /// Seconds since the last copy.
        since_s: i64,
        /// Required gap.
        min_s: u64,
    },
    /// Today's realized loss reached the daily limit.
    DailyLossLimit {
        /// Today's realized P&L.
        pnl: Usdc,
        /// The limit (a positive amount of loss).
        limit: Usdc,
    },
    /// The circuit breaker is tripped.
    Halted {
        /// Why it tripped.
        reason: String,
    },
    /// Trading is reducing: only exits are copied, this would add exposure.
    Reducing {
        /// Why trading is reducing.
        reason: String,
    },
    /// The target wallet is no longer a watched target.
    WalletInactive,
    /// The operator paused this target.
    Paused,
    /// The operator paused this market: nothing that adds exposure to it is copied.
    MarketPaused {
        /// The pause as the operator gave it (token, condition or slug).
        market: String,
    },
    /// The fill is older than the maximum copy delay.
    Stale {
        /// Seconds since the target's block.
        age_s: i64,
        /// The limit.
        max_s: u64,
    },
    /// The market no longer trades (`copy.skip_closed`).
    MarketClosed,
    /// The market ends too soon to buy into (`copy.min_minutes_to_end`).
    NearEnd {
        /// Minutes left.
        minutes_left: i64,
        /// The setting.
        min: u64,
    },
    /// The exchange refused the order or nothing matched; `code` is stable, `message` is the
    /// exchange's own words.
    Venue {
        /// Stable code (`insufficient_balance`, `no_liquidity`, ...).
        code: &'static str,
        /// What the exchange said.
        message: String,
    },
}

/// Every refusal code known ahead of time: the rules' own and the exchange's that the order path
/// names. `/metrics` shows each from the start (at 0), so a first refusal is an increase.
pub const KNOWN_CODES: [&str; 35] = [
    "v3_unsupported",
    "price_out_of_band",
    "sells_disabled",
    "below_minimum",
    "no_position",
    "unknown_target_balance",
    "copies_unknown",
    "max_order_usdc",
    "max_position_usdc",
    "max_total_exposure",
    "trade_rate",
    "min_trade_interval",
    "daily_loss_limit",
    "halted",
    "reducing",
    "wallet_inactive",
    "paused",
    "market_paused",
    "stale",
    "market_closed",
    "near_end",
    "no_liquidity",
    "insufficient_balance",
    "closed_only",
    "invalid_signature",
    "exchange_rejected",
    "engine_restarting",
    "rate_limited",
    "trading_paused",
    "invalid_order",
    "auth_error",
    "order_not_built",
    "clob_unavailable",
    "invalid_price",
    "execution_error",
];

impl DenyReason {
    /// The stable, machine-readable code stored in the journal.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::PriceOutOfBand { .. } => "price_out_of_band",
            Self::SellsDisabled => "sells_disabled",
            Self::BelowMinimum { .. } => "below_minimum",
            Self::NoPosition => "no_position",
            Self::UnknownTargetBalance => "unknown_target_balance",
            Self::CopiesUnknown { .. } => "copies_unknown",
            Self::MaxOrderUsdc { .. } => "max_order_usdc",
            Self::MaxPositionUsdc { .. } => "max_position_usdc",
            Self::MaxTotalExposure { .. } => "max_total_exposure",
            Self::TradeRate { .. } => "trade_rate",
            Self::MinTradeInterval { .. } => "min_trade_interval",
            Self::DailyLossLimit { .. } => DAILY_LOSS_LIMIT,
            Self::Halted { .. } => "halted",
            Self::Reducing { .. } => "reducing",
            Self::WalletInactive => "wallet_inactive",
            Self::Paused => "paused",
            Self::MarketPaused { .. } => "market_paused",
            Self::Stale { .. } => "stale",
            Self::MarketClosed => "market_closed",
            Self::NearEnd { .. } => "near_end",
            Self::Venue { code, .. } => code,
        }
    }
}

impl DenyReason {
    /// Why, in plain words for the operator (the code stays beside it for searching).
    #[must_use]
    pub fn explain(&self) -> String {
        match self {
            Self::PriceOutOfBand { price, min, max } => format!(
                "the target's price {price} is outside this target's band ({} to {})",
                min.map_or_else(|| "0".to_owned(), |p| p.to_string()),
                max.map_or_else(|| "1".to_owned(), |p| p.to_string())
            ),
            Self::SellsDisabled => "this target's sells are not copied (copy_sells is false)".into(),
            Self::BelowMinimum { shares, notional, min } => {
                format!("too small: {shares} shares for {notional} USDC, under the {min} USDC minimum")
            }
            Self::NoPosition => "we hold none of this outcome from this target's copies to sell".into(),
            Self::UnknownTargetBalance => {
                "the target's holding before this sale is unknown, so the share it sold cannot be mirrored".into()
            }
            Self::CopiesUnknown { cause } => format!(
                "the journal could not say what this target's copies hold ({cause}): nothing is sold, so other \
                 targets' copies are not sold with them; sell by hand if this exit should be followed"
            ),
            Self::MaxOrderUsdc { notional, max } => {
                format!("over your {max} USDC per-order cap: this copy would be {notional} USDC")
            }
            Self::MaxPositionUsdc { after, max } => {
                format!("over your {max} USDC cap per outcome: the position in it would be {after} USDC")
            }
            Self::MaxTotalExposure { after, max } => {
                format!("over your {max} USDC total exposure cap: exposure would be {after} USDC")
            }
            Self::TradeRate { count, max } => {
                format!("this target already had {count} copies in the last hour (at most {max})")
            }
            Self::MinTradeInterval { since_s, min_s } => {
                format!("only {since_s} s since this target's last copy (at least {min_s} s apart)")
            }
            Self::DailyLossLimit { pnl, limit } => {
                format!("today's P&L {pnl} USDC reached the daily loss limit of {limit} USDC")
            }
            Self::Halted { reason } => format!("trading is halted: {reason}"),
            Self::Reducing { reason } => format!("only exits are copied now: {reason}"),
            Self::WalletInactive => "this wallet is no longer a watched target".into(),
            Self::Paused => {
                "this target is paused: its buys are not copied, its exits are (/unpause to copy it again)".into()
            }
            Self::MarketPaused { market } => {
                format!("this market is paused ({market}): exits are copied, buys are not (/resumemarket to lift it)")
            }
            Self::Stale { age_s, max_s } => {
                format!("seen {age_s} s after its block, later than the {max_s} s copy delay allows")
            }
            Self::MarketClosed => "the market no longer trades".into(),
            Self::NearEnd { minutes_left, min } => {
                format!("the market ends in {minutes_left} min (no buys within {min} min of the end)")
            }
            Self::Venue { message, .. } => format!("the exchange did not fill it: {message}"),
        }
    }
}

fn opt(p: Option<Price>) -> String {
    p.map_or_else(|| "none".to_owned(), |p| p.to_string())
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code();
        match self {
            Self::PriceOutOfBand { price, min, max } => {
                write!(f, "{code}: price={price} min={} max={}", opt(*min), opt(*max))
            }
            Self::BelowMinimum { shares, notional, min } => {
                write!(f, "{code}: shares={shares} usdc={notional} min_usdc={min}")
            }
            Self::MaxOrderUsdc { notional, max } => write!(f, "{code}: usdc={notional} max={max}"),
            Self::MaxPositionUsdc { after, max } | Self::MaxTotalExposure { after, max } => {
                write!(f, "{code}: after={after} max={max}")
            }
            Self::TradeRate { count, max } => write!(f, "{code}: last_hour={count} max={max}"),
            Self::MinTradeInterval { since_s, min_s } => {
                write!(f, "{code}: since_s={since_s} min_s={min_s}")
            }
            Self::DailyLossLimit { pnl, limit } => {
                write!(f, "{code}: pnl_today={pnl} limit=-{limit}")
            }
            Self::Halted { reason } | Self::Reducing { reason } => write!(f, "{code}: {reason}"),
            Self::MarketPaused { market } => write!(f, "{code}: {market}"),
            Self::CopiesUnknown { cause } => write!(f, "{code}: {cause}"),
            Self::Stale { age_s, max_s } => write!(f, "{code}: age_s={age_s} max_s={max_s}"),
            Self::Venue { message, .. } => write!(f, "{code}: {message}"),
            Self::NearEnd { minutes_left, min } => write!(f, "{code}: minutes_left={minutes_left} min={min}"),
            Self::SellsDisabled
            | Self::NoPosition
            | Self::UnknownTargetBalance
            | Self::WalletInactive
            | Self::Paused
            | Self::MarketClosed => f.write_str(code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rules_refusal_has_a_known_code_and_says_why() {
        // (reason, its line in the journal, a phrase of its explanation)
        for (reason, line, phrase) in [
            (DenyReason::NoPosition, "no_position", "none of this outcome"),
            (DenyReason::UnknownTargetBalance, "unknown_target_balance", "holding before this sale"),
            (
                DenyReason::CopiesUnknown { cause: "database is locked".into() },
                "copies_unknown: database is locked",
                "nothing is sold",
            ),
            (DenyReason::Paused, "paused", "its exits are"),
        ] {
            assert!(KNOWN_CODES.contains(&reason.code()), "{line}");
            assert_eq!(reason.to_string(), line);
            assert!(reason.explain().contains(phrase), "{}", reason.explain());
        }
        // Every code the order path can journal is shown by /metrics from the start.
        for code in crate::clob::outcome::REFUSAL_CODES.iter().chain(&["execution_error"]) {
            assert!(KNOWN_CODES.contains(code), "{code}");
        }
    }
}
