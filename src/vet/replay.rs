//! The replay: a wallet's fills through the same sizing and limits the daemon applies, each copy
//! priced as it would really have been (after a copy delay), and the figures a trader decides on.
//! Pure: reading the wallet's history (chain, Gamma) is the caller's.
//!
//! Pricing model, said per copy: the wallet's own next fill of the same token and side at or
//! shortly after the delay in which it took liquidity (`next_fill`: the market as a marketable
//! order found it then; a fill of its resting order is only its own limit, and a copy pays the
//! spread), else the target's price moved by the slippage cap (`slippage_cap`: the worst the copy's
//! limit accepts). A next fill beyond the cap
//! means the copy's limit would not have filled: refused as `price_moved`.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::domain::{
    ExchangeVersion, ExecMode, Execution, FillId, OrderIntent, Price, Role, Shares, Side, TargetFill, TokenId, Usdc,
    mul_price_ceil, mul_price_floor,
};
use crate::risk::book::position_after;
use crate::risk::sizing::{SizingContext, size_copy};
use crate::risk::{Book, CopyRules, Limits, WalletActivity, check_intent};
use crate::vet::resolutions::{Resolution, schedule};

/// One fill of the vetted wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trade {
    /// When (its block's time), unix ms.
    pub at_ms: i64,
    /// Its side.
    pub side: Side,
    /// The token.
    pub token_id: TokenId,
    /// Shares.
    pub shares: Shares,
    /// Price.
    pub price: Price,
    /// The wallet took liquidity (its order crossed the book): its price is the market's for a
    /// marketable order then. A resting order's fill (maker) is its own limit, which a copy, itself
    /// marketable, would not have got.
    pub taker: bool,
}

/// How the replay copies.
#[derive(Debug, Clone)]
pub struct VetConfig {
    /// The wallet's rules (from wallets.json, or the defaults).
    pub rules: CopyRules,
    /// The hard limits.
    pub limits: Limits,
    /// Copy delay after the wallet's fill, ms.
    pub delay_ms: i64,
    /// The slippage cap, bps.
    pub max_slippage_bps: u32,
    /// Smallest order value.
    pub min_order_usdc: Usdc,
    /// A sale within this long of the buy it closes is a round trip (the high-frequency flag).
    pub round_trip_ms: i64,
    /// The wallet's next fill prices a copy only when it comes within this long after the copy
    /// (later, it says nothing about the market at the copy's time).
    pub price_window_ms: i64,
    /// A fill older than this when copied is refused as stale, seconds (0: no limit), as live.
    pub max_copy_delay_s: u64,
    /// The hour (UTC) the trading day starts at: the daily loss limit counts from it, as live.
    pub day_starts_at_hour: u32,
}

/// How a copy was priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceModel {
    /// The wallet's own next fill of the token after the delay.
    NextFill,
    /// The wallet's price moved by the slippage cap.
    SlippageCap,
}

/// One replayed copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Copy {
    /// When it would have been placed, unix ms.
    pub at_ms: i64,
    /// Side.
    pub side: Side,
    /// Token.
    pub token_id: TokenId,
    /// Our shares.
    pub shares: Shares,
    /// Our price.
    pub price: Price,
    /// How the price was found.
    pub model: PriceModel,
    /// P&L it realized (SELLs).
    pub realized: Usdc,
}

/// What vetting found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// The wallet's fills in the period.
    pub fills: usize,
    /// The copies.
    pub copies: Vec<Copy>,
    /// Fills not copied, by reason.
    pub refusals: BTreeMap<String, u64>,
    /// What the BUY copies cost.
    pub invested: Usdc,
    /// Realized P&L (SELLs and resolved markets).
    pub realized: Usdc,
    /// Open positions' value less their cost (at the last price seen).
    pub open_pnl: Usdc,
    /// Share of closed trades that made money, percent.
    pub win_rate_pct: Option<u32>,
    /// Largest fall of cumulative realized P&L from a peak.
    pub max_drawdown: Usdc,
    /// Median time a position was held before a sale, ms.
    pub median_hold_ms: Option<i64>,
    /// The wallet's fills per hour over the period.
    pub trades_per_hour: Decimal,
    /// Share of the wallet's sales that close its own buy within the round-trip window, percent.
    pub round_trip_pct: u32,
    /// Flagged as high-frequency / wash trading: most sales are quick round trips.
    pub high_frequency: bool,
    /// The largest share of the money invested in one token, percent.
    pub concentration_pct: u32,
    /// After each copy and each market settled: (unix ms, cumulative realized P&L, cost of what is
    /// open), for the chart.
    #[serde(skip)]
    pub series: Vec<(i64, i64, i64)>,
}

/// Fewer copies than this make no record of a trader, whatever their P&L: flagged wherever a vet
/// is shown, and said in what `targets suggest --add` appends.
pub const FEW_COPIES: usize = 10;

impl Report {
    /// Too few copies to judge the trader by ([`FEW_COPIES`]).
    #[must_use]
    pub fn too_few_to_judge(&self) -> bool {
        self.copies.len() < FEW_COPIES
    }
}

/// Replays `trades` (oldest first) under `cfg`; `resolved` settles markets at their payout, each
/// when its market ended where that is known (as the daemon frees a resolved position's exposure),
/// else at the period's end; `held_before` is what the wallet held of a token when the period began, where it is known (a
/// sale is copied in proportion to what the wallet held, as the daemon copies it).
#[must_use]
pub fn replay(
    trades: &[Trade],
    cfg: &VetConfig,
    resolved: &BTreeMap<TokenId, Resolution>,
    held_before: &BTreeMap<TokenId, Shares>,
) -> Report {
    let mut run = Replay {
        r: Report { fills: trades.len(), ..Report::default() },
        target_held: held_before.clone(),
        ..Replay::default()
    };
    let due = schedule(trades, resolved, cfg.delay_ms);
    let mut settled = 0;
    for (i, t) in trades.iter().enumerate() {
        let at = t.at_ms.saturating_add(cfg.delay_ms);
        // Markets that ended before this copy free their exposure first, as live.
        while let Some(&(when, token, payout)) = due.get(settled).filter(|d| d.0 <= at) {
            run.resolve(token, payout, when, cfg);
            settled += 1;
        }
        run.trade(t, &trades[i + 1..], cfg);
    }
    for &(when, token, payout) in due.get(settled..).unwrap_or_default() {
        run.resolve(token, payout, when, cfg);
    }
    run.settle(resolved);
    let Replay { mut r, book, invested_by, mut holds, wins, closed, .. } = run;
    if let (Some(last), false) = (trades.last(), r.copies.is_empty()) {
        // Settled markets move the line at the period's end; what is left open is its cost.
        let open: i64 =
            book.tokens().iter().filter(|t| !resolved.contains_key(*t)).map(|t| book.position(t).cost.0).sum();
        let end = r.series.last().map_or(i64::MIN, |p| p.0).max(last.at_ms.saturating_add(cfg.delay_ms));
        r.series.push((end, r.realized.0, open));
    }
    r.win_rate_pct = (closed > 0).then(|| wins * 100 / closed);
    holds.sort_unstable();
    r.median_hold_ms = median(&holds);
    r.trades_per_hour = per_hour(trades);
    r.round_trip_pct = round_trips(trades, cfg.round_trip_ms);
    // One quick sale is not a pattern: the flag needs a few.
    let sells = trades.iter().filter(|t| t.side == Side::Sell).count();
    r.high_frequency = r.round_trip_pct >= 50 && sells >= MIN_SALES_FOR_FLAG;
    r.concentration_pct = match (invested_by.values().max(), r.invested.0) {
        (Some(top), total) if total > 0 => u32::try_from(i128::from(*top) * 100 / i128::from(total)).unwrap_or(100),
        _ => 0,
    };
    r
}

/// The replay's running state: our simulated book, what the target holds, and the figures so far.
#[derive(Default)]
struct Replay {
    r: Report,
    book: Book,
    target_held: BTreeMap<TokenId, Shares>,
    opened_at: BTreeMap<TokenId, i64>,
    invested_by: BTreeMap<TokenId, i64>,
    last_price: BTreeMap<TokenId, Price>,
    copies_at: Vec<i64>,
    holds: Vec<i64>,
    wins: u32,
    closed: u32,
    /// Realized P&L so far, and its highest point (for the drawdown).
    cum: i64,
    peak: i64,
    /// The trading day of the last copy, and what its copies realized: past the daily loss
    /// limit, buys are refused until the next day, as live.
    day: (i64, i64),
}

impl Replay {
    /// One of the target's fills: copied (booked in our simulated book) or refused with its code.
    fn trade(&mut self, t: &Trade, later: &[Trade], cfg: &VetConfig) {
        self.last_price.insert(t.token_id, t.price);
        let before = self.target_held.get(&t.token_id).copied().unwrap_or_default();
        let after = match t.side {
            Side::Buy => before.0.saturating_add(t.shares.0),
            Side::Sell => (before.0 - t.shares.0).max(0),
        };
        self.target_held.insert(t.token_id, Shares(after));
        let at = t.at_ms.saturating_add(cfg.delay_ms);
        let today = crate::risk::day::day_start(at, cfg.day_starts_at_hour);
        if today != self.day.0 {
            self.day = (today, 0);
        }
        let state = (&self.book, Usdc(self.day.1));
        let (shares, price, model) = match copy_one(t, later, before, at, cfg, state, &self.copies_at) {
            Ok(c) => c,
            Err(code) => {
                *self.r.refusals.entry(code).or_insert(0) += 1;
                return;
            }
        };
        let usdc = match t.side {
            Side::Buy => Usdc(mul_price_ceil(shares, price)),
            Side::Sell => Usdc(mul_price_floor(shares, price)),
        };
        let exec = Execution {
            fill_row: 0,
            side: t.side,
            token_id: t.token_id,
            shares,
            price,
            usdc,
            mode: ExecMode::Paper,
            at_ms: at,
        };
        let (pos, realized) = position_after(self.book.position(&t.token_id), &exec);
        self.book.set(t.token_id, pos);
        if t.side == Side::Buy {
            // As live: only BUYs count toward the frequency limits.
            self.copies_at.push(at);
            self.r.invested.0 += usdc.0;
            *self.invested_by.entry(t.token_id).or_insert(0) += usdc.0;
            self.opened_at.entry(t.token_id).or_insert(at);
        } else {
            if let Some(since) = self.opened_at.get(&t.token_id) {
                self.holds.push(at.saturating_sub(*since));
            }
            if pos.shares.0 == 0 {
                self.opened_at.remove(&t.token_id);
            }
            self.close(realized.0);
        }
        self.day.1 += realized.0;
        self.r.realized.0 += realized.0;
        self.r.series.push((at, self.r.realized.0, self.book.exposure().0));
        self.r.copies.push(Copy { at_ms: at, side: t.side, token_id: t.token_id, shares, price, model, realized });
    }

    /// A closed trade: counted, a win when it made money, and the drawdown follows the running P&L.
    fn close(&mut self, realized: i64) {
        self.closed += 1;
        self.wins += u32::from(realized > 0);
        self.cum += realized;
        self.peak = self.peak.max(self.cum);
        self.r.max_drawdown = Usdc(self.r.max_drawdown.0.max(self.peak - self.cum));
    }

    /// Our position in `token`, whose market ended at `at` and paid `payout` a share: settled
    /// then, its result counted toward that trading day's loss, as live.
    fn resolve(&mut self, token: TokenId, payout: Price, at: i64, cfg: &VetConfig) {
        let pos = self.book.position(&token);
        if pos.shares.0 == 0 {
            return;
        }
        let realized = mul_price_floor(pos.shares, payout) - pos.cost.0;
        self.book.set(token, crate::risk::Position::default());
        self.opened_at.remove(&token);
        let day = crate::risk::day::day_start(at, cfg.day_starts_at_hour);
        if day != self.day.0 {
            self.day = (day, 0);
        }
        self.day.1 += realized;
        self.r.realized.0 += realized;
        self.close(realized);
        self.r.series.push((at, self.r.realized.0, self.book.exposure().0));
    }

    /// What is still open: settled at its market's payout (markets whose end is unknown), else
    /// valued at the last price seen.
    fn settle(&mut self, resolved: &BTreeMap<TokenId, Resolution>) {
        // In token order, not the book's (a hash map's, another each run): the drawdown depends on
        // the order resolutions are counted in, and the same history must vet the same each time.
        let mut tokens = self.book.tokens();
        tokens.sort_unstable();
        for token in tokens {
            let pos = self.book.position(&token);
            if let Some(res) = resolved.get(&token) {
                let realized = mul_price_floor(pos.shares, res.payout) - pos.cost.0;
                self.r.realized.0 += realized;
                self.close(realized);
            } else if let Some(p) = self.last_price.get(&token) {
                self.r.open_pnl.0 += mul_price_floor(pos.shares, *p) - pos.cost.0;
            }
        }
    }
}

/// Sizes, limits and prices one copy, or says why it is not made.
fn copy_one(
    t: &Trade,
    later: &[Trade],
    target_before: Shares,
    at: i64,
    cfg: &VetConfig,
    (book, realized_today): (&Book, Usdc),
    copies_at: &[i64],
) -> Result<(Shares, Price, PriceModel), String> {
    let fill = as_fill(t);
    let ctx = SizingContext {
        our_position: book.position(&t.token_id).shares,
        target_balance_before: Some(target_before),
        max_slippage_bps: cfg.max_slippage_bps,
        min_order_usdc: cfg.min_order_usdc,
        market_min_shares: Shares::ZERO,
        max_copy_delay_s: cfg.max_copy_delay_s,
        now_ms: at,
    };
    let sized = size_copy(&fill, &cfg.rules, &ctx).map_err(|r| r.code().to_owned())?;
    let mut shares = sized.shares;
    if t.side == Side::Sell {
        shares = shares.min(book.position(&t.token_id).shares);
    }
    let intent = OrderIntent::for_fill(&fill, 0, shares, sized.limit_price);
    let activity = WalletActivity {
        trades_last_hour: u32::try_from(copies_at.iter().filter(|c| **c > at - 3_600_000).count()).unwrap_or(u32::MAX),
        last_trade_ms: copies_at.last().copied(),
        max_trades_per_hour: cfg.rules.max_trades_per_hour,
        min_trade_interval_s: cfg.rules.min_trade_interval_s,
    };
    check_intent(&intent, &cfg.limits, book, realized_today, &activity, at).map_err(|r| r.code().to_owned())?;
    // The market as it really was after the delay, where the wallet's own next fill says so.
    let next = later
        .iter()
        .take_while(|n| n.at_ms <= at.saturating_add(cfg.price_window_ms))
        .find(|n| n.taker && n.token_id == t.token_id && n.side == t.side && n.at_ms >= at);
    match next {
        Some(n) => {
            let beyond = match t.side {
                Side::Buy => n.price > sized.limit_price,
                Side::Sell => n.price < sized.limit_price,
            };
            if beyond {
                return Err("price_moved".into());
            }
            Ok((shares, n.price, PriceModel::NextFill))
        }
        // At the copy's own limit (which the wallet's max_price may hold below the slippage's).
        None => Ok((shares, sized.limit_price, PriceModel::SlippageCap)),
    }
}

fn as_fill(t: &Trade) -> TargetFill {
    use alloy::primitives::{Address, B256};
    TargetFill {
        id: FillId { tx_hash: B256::ZERO, order_hash: B256::ZERO, occurrence: 0 },
        wallet: Address::with_last_byte(1),
        role: Role::Maker,
        side: t.side,
        token_id: t.token_id,
        shares: t.shares,
        usdc: Usdc(mul_price_floor(t.shares, t.price)),
        price: t.price,
        fee: 0,
        exchange: Address::ZERO,
        version: ExchangeVersion::V2,
        block_number: 0,
        block_hash: B256::ZERO,
        log_index: 0,
        block_ts: u64::try_from(t.at_ms / 1000).unwrap_or(0),
    }
}

/// Sales a wallet needs before its round trips can flag it.
const MIN_SALES_FOR_FLAG: usize = 3;

/// The median of sorted values (the mean of the two middle ones for an even count).
fn median(sorted: &[i64]) -> Option<i64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        // Summed wider: two absurd times from a node would overflow an i64 sum.
        _ => {
            let (a, b) = (sorted[n / 2 - 1], sorted[n / 2]);
            Some(i64::try_from((i128::from(a) + i128::from(b)) / 2).unwrap_or(b))
        }
    }
}

/// Fills per hour over the span of `trades` (at least an hour), two decimals.
fn per_hour(trades: &[Trade]) -> Decimal {
    let (Some(first), Some(last)) = (trades.first(), trades.last()) else { return Decimal::ZERO };
    let span_ms = (last.at_ms - first.at_ms).max(3_600_000);
    (Decimal::from(trades.len()) * Decimal::from(3_600_000) / Decimal::from(span_ms)).round_dp(2)
}

/// Share of the wallet's sales that close a buy of the same token within `window_ms`, percent.
fn round_trips(trades: &[Trade], window_ms: i64) -> u32 {
    let sells = trades.iter().filter(|t| t.side == Side::Sell).count();
    if sells == 0 {
        return 0;
    }
    let quick = trades
        .iter()
        .enumerate()
        .filter(|(_, t)| t.side == Side::Sell)
        .filter(|(i, t)| {
            // Only the fills inside the window can be the buy it closes: look back no further.
            trades[..*i]
                .iter()
                .rev()
                .take_while(|b| t.at_ms - b.at_ms <= window_ms)
                .any(|b| b.side == Side::Buy && b.token_id == t.token_id)
        })
        .count();
    u32::try_from(quick * 100 / sells).unwrap_or(100)
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
