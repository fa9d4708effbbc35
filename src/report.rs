//! The daily and weekly report: P&L realized and marked, copies and rejections by reason, best and
//! worst positions, a per-target breakdown, and a PNG chart of cumulative P&L and exposure. Built
//! from the journal alone (pure functions over its rows), so the CLI and Telegram show the same.

use std::collections::{BTreeMap, HashMap};

use alloy::primitives::Address;
use serde::Serialize;

use crate::domain::{ExecMode, Price, TokenId, Usdc, addr_lower, format_micros, mul_price_floor};
use crate::risk::Book;
use crate::store::{ExecRow, FeeRow, FillCounts, FillStatus};

mod chart;
pub use chart::{ChartError, chart_png, lines_png};

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// Since the trading day began (`risk.day_starts_at_hour` UTC, the hour the loss limit counts
    /// from; midnight UTC unless set).
    Daily,
    /// The last seven trading days, today included.
    Weekly,
    /// The last thirty trading days, today included.
    Monthly,
}

/// "HH:MM" UTC of a unix-ms time, for short lists.
#[must_use]
pub fn time_of_day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(String::new, |t| t.format("%H:%M").to_string())
}

impl Period {
    /// Start of the period whose last trading day began at `trading_day_start` (unix ms; see
    /// [`crate::store::Store::trading_day_start`]), so the daily report and the loss limit count
    /// the same day.
    #[must_use]
    pub const fn start(self, trading_day_start: i64) -> i64 {
        match self {
            Self::Daily => trading_day_start,
            Self::Weekly => trading_day_start - 6 * 86_400_000,
            Self::Monthly => trading_day_start - 29 * 86_400_000,
        }
    }
}

/// What a report covers: its period, from the period's start to now (unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Which report.
    pub period: Period,
    /// Period start.
    pub from_ms: i64,
    /// Report time.
    pub to_ms: i64,
}

impl Span {
    /// The period ending at `now_ms`, whose trading day began at `trading_day_start`.
    #[must_use]
    pub const fn new(period: Period, trading_day_start: i64, now_ms: i64) -> Self {
        Self { period, from_ms: period.start(trading_day_start), to_ms: now_ms }
    }
}

/// One open position in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PositionLine {
    /// Token.
    pub token_id: String,
    /// Shares held.
    pub shares: String,
    /// Cost basis.
    pub cost_usdc: String,
    /// Marked at the last traded price.
    pub value_usdc: String,
    /// value − cost.
    pub unrealized_usdc: String,
    #[serde(skip)]
    unrealized: i64,
}

/// One target in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetLine {
    /// Label (or address).
    pub target: String,
    /// Copies executed.
    pub copied: u64,
    /// Fills not copied.
    pub rejected: u64,
    /// Realized P&L of its copies.
    pub realized_usdc: String,
    #[serde(skip)]
    realized: i64,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Daily or weekly.
    pub period: Period,
    /// Period start, unix ms.
    pub from_ms: i64,
    /// Report time, unix ms.
    pub to_ms: i64,
    /// Realized P&L in the period, fees included.
    pub realized_usdc: String,
    /// The fees our fills on chain paid in the period, counted in `realized_usdc` (and each in its
    /// target's line).
    pub fees_usdc: String,
    /// Unrealized P&L of open positions, at their CLOB midpoint (else the last traded price).
    pub unrealized_usdc: String,
    /// Cost of open positions.
    pub exposure_usdc: String,
    /// Copies executed in the period.
    pub copied: u64,
    /// Fills not copied, by reason code.
    pub rejected: BTreeMap<String, u64>,
    /// Best open positions (by unrealized P&L), up to 3.
    pub best: Vec<PositionLine>,
    /// Worst open positions, up to 3.
    pub worst: Vec<PositionLine>,
    /// Per target.
    pub targets: Vec<TargetLine>,
    /// (unix ms, cumulative realized P&L in the period, exposure) after each execution, for the chart.
    #[serde(skip)]
    pub series: Vec<(i64, i64, i64)>,
}

/// Builds the report from every execution ever (the book is replayed), the fees our fills on
/// chain paid (`fees`, oldest first; those before the period are left out), the last traded
/// prices, the period's fill counts and the targets' labels.
#[must_use]
pub fn build(
    Span { period, from_ms: from, to_ms: now_ms }: Span,
    (executions, fees): (&[ExecRow], &[FeeRow]),
    last_prices: &BTreeMap<TokenId, Price>,
    counts: &FillCounts,
    labels: &HashMap<Address, String>,
) -> Report {
    let mut book = Book::default();
    let (mut realized, mut fees_paid) = (0i64, 0i64);
    let mut series = vec![(from, 0, 0)];
    let mut per_target: BTreeMap<String, (u64, u64, i64)> = BTreeMap::new();
    // Spelled once per target, not once per execution and target (a long history of many targets).
    let spelled: HashMap<String, &String> = labels.iter().map(|(a, l)| (addr_lower(a), l)).collect();
    let name = |w: &str| spelled.get(w).map_or_else(|| w.to_owned(), |l| (*l).clone());
    for step in in_time_order(executions, fees) {
        let (at_ms, who, pnl) = match step {
            Step::Exec(row) => {
                book.apply(&row.exec);
                let who = if row.exec.mode == ExecMode::Settlement {
                    "resolved markets".to_owned()
                } else {
                    name(&addr_lower(&row.wallet))
                };
                (row.exec.at_ms, who, row.realized.0)
            }
            Step::Fee(f) => {
                if f.at_ms >= from {
                    fees_paid += f.fee.0;
                }
                (f.at_ms, name(&addr_lower(&f.wallet)), -f.fee.0)
            }
        };
        if at_ms >= from {
            realized += pnl;
            series.push((at_ms, realized, book.exposure().0));
            per_target.entry(who).or_default().2 += pnl;
        }
    }
    if series.len() == 1 {
        series[0].2 = book.exposure().0;
    }
    series.push((now_ms, realized, book.exposure().0));
    let (copied, rejected) = tally(counts, &mut per_target, name);
    let lines = position_lines(&book, last_prices);
    let unrealized: i64 = lines.iter().map(|l| l.unrealized).sum();
    let best: Vec<PositionLine> = lines.iter().filter(|l| l.unrealized > 0).take(3).cloned().collect();
    let worst: Vec<PositionLine> = lines.iter().rev().filter(|l| l.unrealized < 0).take(3).cloned().collect();
    Report {
        period,
        from_ms: from,
        to_ms: now_ms,
        realized_usdc: format_micros(realized),
        fees_usdc: format_micros(fees_paid),
        unrealized_usdc: format_micros(unrealized),
        exposure_usdc: Usdc(book.exposure().0).to_string(),
        copied,
        rejected,
        best,
        worst,
        targets: per_target
            .into_iter()
            .map(|(target, (c, r, pnl))| TargetLine {
                target,
                copied: c,
                rejected: r,
                realized_usdc: format_micros(pnl),
                realized: pnl,
            })
            .collect(),
        series,
    }
}

impl Report {
    /// The open positions, their exposure and unrealized P&L as the journal holds them (`book`,
    /// the positions every other view reads): the replay orders executions by time, and an order
    /// booked in parts around another booking can leave it a position the journal no longer holds.
    /// The chart's series stays the replay's.
    #[must_use]
    pub fn with_journal_positions(mut self, book: &Book, last_prices: &BTreeMap<TokenId, Price>) -> Self {
        let lines = position_lines(book, last_prices);
        self.unrealized_usdc = format_micros(lines.iter().map(|l| l.unrealized).sum());
        self.exposure_usdc = Usdc(book.exposure().0).to_string();
        self.best = lines.iter().filter(|l| l.unrealized > 0).take(3).cloned().collect();
        self.worst = lines.iter().rev().filter(|l| l.unrealized < 0).take(3).cloned().collect();
        self
    }
}

/// One step of the replay: an execution, or a fee one of our fills paid.
enum Step<'a> {
    Exec(&'a ExecRow),
    Fee(&'a FeeRow),
}

/// `executions` and `fees` (each oldest first) merged into one replay, oldest first; an execution
/// goes before a fee of the same moment (the fee is read after its fill).
fn in_time_order<'a>(executions: &'a [ExecRow], fees: &'a [FeeRow]) -> Vec<Step<'a>> {
    let mut out = Vec::with_capacity(executions.len() + fees.len());
    let mut fees = fees.iter().peekable();
    for row in executions {
        while let Some(f) = fees.next_if(|f| f.at_ms < row.exec.at_ms) {
            out.push(Step::Fee(f));
        }
        out.push(Step::Exec(row));
    }
    out.extend(fees.map(Step::Fee));
    out
}

/// Copies and refusals in the period: in total, refusals by reason, and each target's counts in
/// `per_target` (copied, refused, P&L).
fn tally(
    counts: &FillCounts,
    per_target: &mut BTreeMap<String, (u64, u64, i64)>,
    name: impl Fn(&str) -> String,
) -> (u64, BTreeMap<String, u64>) {
    let mut copied = 0;
    let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
    for ((wallet, status, reason), n) in &counts.by {
        let t = per_target.entry(name(wallet)).or_default();
        match status {
            FillStatus::Executed => {
                copied += n;
                t.0 += n;
            }
            FillStatus::Rejected => {
                *rejected.entry(reason.clone()).or_default() += n;
                t.1 += n;
            }
            FillStatus::Pending | FillStatus::Withdrawn => {}
        }
    }
    (copied, rejected)
}

/// Every open position valued at its last price (at cost when none is known), best first.
fn position_lines(book: &Book, last_prices: &BTreeMap<TokenId, Price>) -> Vec<PositionLine> {
    let mut lines: Vec<PositionLine> = book
        .positions
        .iter()
        .map(|(token, p)| {
            let value = last_prices.get(token).map_or(p.cost.0, |px| mul_price_floor(p.shares, *px));
            let unrealized = value - p.cost.0;
            PositionLine {
                token_id: token.to_string(),
                shares: p.shares.to_string(),
                cost_usdc: p.cost.to_string(),
                value_usdc: format_micros(value),
                unrealized_usdc: format_micros(unrealized),
                unrealized,
            }
        })
        .collect();
    lines.sort_by_key(|l| std::cmp::Reverse(l.unrealized));
    lines
}

/// The report's title.
pub(crate) const fn title(p: Period) -> &'static str {
    match p {
        Period::Daily => "Daily report",
        Period::Weekly => "Weekly report",
        Period::Monthly => "Monthly report (30 days)",
    }
}

/// The report as plain text for a person (CLI and Telegram).
#[must_use]
pub fn text(r: &Report) -> String {
    let title = format!("{} (since {} {} UTC)", title(r.period), date(r.from_ms), time_of_day(r.from_ms));
    let fees =
        if r.fees_usdc == format_micros(0) { String::new() } else { format!(" after {} USDC of fees", r.fees_usdc) };
    let mut s = format!(
        "{title}\nP&L realized {} USDC{fees}, unrealized {} USDC (open positions at their CLOB midpoint, else the last traded price)\nexposure {} USDC\ncopies {}",
        r.realized_usdc, r.unrealized_usdc, r.exposure_usdc, r.copied
    );
    let total_rejected: u64 = r.rejected.values().sum();
    s.push_str(&format!(", not copied {total_rejected}"));
    if !r.rejected.is_empty() {
        let reasons: Vec<String> = r.rejected.iter().map(|(k, v)| format!("{k} {v}")).collect();
        s.push_str(&format!(" ({})", reasons.join(", ")));
    }
    let pos = |l: &PositionLine| {
        format!(
            "  {} sh of {}: {} USDC",
            l.shares,
            crate::actors::notifier::short_token(&l.token_id),
            l.unrealized_usdc
        )
    };
    if !r.best.is_empty() {
        s.push_str("\nbest:\n");
        s.push_str(&r.best.iter().map(pos).collect::<Vec<_>>().join("\n"));
    }
    if !r.worst.is_empty() {
        s.push_str("\nworst:\n");
        s.push_str(&r.worst.iter().map(pos).collect::<Vec<_>>().join("\n"));
    }
    if !r.targets.is_empty() {
        s.push_str("\nper target:");
        for t in &r.targets {
            s.push_str(&format!(
                "\n  {}: {} copied, {} not, P&L {} USDC",
                t.target, t.copied, t.rejected, t.realized_usdc
            ));
        }
    }
    s
}

/// The UTC date of a unix-ms time, `YYYY-MM-DD`.
#[must_use]
pub fn date(ms: i64) -> String {
    // Days since 1970-01-01 to a civil date (proleptic Gregorian).
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The weekday of a unix-ms time, 0 = Monday.
#[must_use]
pub fn weekday(ms: i64) -> u32 {
    // 1970-01-01 was a Thursday (3).
    u32::try_from((ms.div_euclid(86_400_000) + 3).rem_euclid(7)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Execution, ONE, Shares, Side};
    use alloy::primitives::U256;

    fn exec(at: i64, side: Side, token: u64, shares: i64, usdc: i64, realized: i64, w: u8) -> ExecRow {
        ExecRow {
            exec: Execution {
                fill_row: at,
                side,
                token_id: U256::from(token),
                shares: Shares(shares),
                price: Price(0),
                usdc: Usdc(usdc),
                mode: ExecMode::Paper,
                at_ms: at,
            },
            wallet: Address::repeat_byte(w),
            realized: Usdc(realized),
        }
    }

    #[test]
    fn a_period_starts_on_the_trading_day() {
        let day = 20_000 * 86_400_000i64;
        let h = 3_600_000i64;
        // (period, trading day start, expected start)
        let cases = [
            (Period::Daily, day, day),
            (Period::Daily, day + 13 * h, day + 13 * h),
            (Period::Weekly, day + 13 * h, day + 13 * h - 6 * 86_400_000),
            (Period::Monthly, day, day - 29 * 86_400_000),
        ];
        for (period, start, want) in cases {
            assert_eq!(Span::new(period, start, start + h).from_ms, want, "{period:?} from {start}");
        }
    }

    #[test]
    fn the_daily_report_counts_what_the_trading_day_counts() {
        let day = 20_000 * 86_400_000i64;
        let h = 3_600_000i64;
        // A sale at 10:00 UTC belongs to yesterday's trading day when the day starts at 13:00.
        let execs = vec![
            exec(day + h, Side::Buy, 1, 10 * ONE, 5 * ONE, 0, 1),
            exec(day + 10 * h, Side::Sell, 1, 5 * ONE, 3 * ONE, ONE / 2, 1),
            exec(day + 14 * h, Side::Sell, 1, 5 * ONE, 3 * ONE, ONE / 4, 1),
        ];
        let none = (BTreeMap::new(), FillCounts::default(), HashMap::new());
        let mut fees = Vec::new();
        let at =
            |start| build(Span::new(Period::Daily, start, day + 15 * h), (&execs, &fees), &none.0, &none.1, &none.2);
        assert_eq!(at(day).realized_usdc, "0.75", "the UTC day holds both sales");
        let r = at(day + 13 * h);
        assert_eq!(r.realized_usdc, "0.25", "the trading day from 13:00 holds the second alone");
        assert!(text(&r).starts_with("Daily report (since "), "{}", text(&r));
        assert!(text(&r).contains(" 13:00 UTC)"), "{}", text(&r));
        assert!(!text(&r).contains("fees"), "no fees, no mention: {}", text(&r));
        // Fees our fills paid come off the period's P&L, and their target's, when they were paid.
        fees.extend([
            FeeRow { wallet: Address::repeat_byte(1), fee: Usdc(10_000), at_ms: day + 2 * h },
            FeeRow { wallet: Address::repeat_byte(1), fee: Usdc(60_000), at_ms: day + 14 * h + 1 },
        ]);
        let at =
            |start| build(Span::new(Period::Daily, start, day + 15 * h), (&execs, &fees), &none.0, &none.1, &none.2);
        let r = at(day + 13 * h);
        assert_eq!((r.realized_usdc.as_str(), r.fees_usdc.as_str()), ("0.19", "0.06"), "yesterday's fee left out");
        let points: Vec<i64> = r.series.iter().map(|p| p.1).collect();
        assert_eq!(points, [0, 250_000, 190_000, 190_000], "the fee drawn when it was paid");
        assert_eq!(r.targets[0].realized_usdc, "0.19", "its target's line carries it");
        assert!(text(&r).contains("P&L realized 0.19 USDC after 0.06 USDC of fees"), "{}", text(&r));
        assert_eq!(at(day).realized_usdc, "0.68");
    }

    #[test]
    fn sums_pnl_marks_positions_and_splits_by_target() {
        let day = 20_000 * 86_400_000i64;
        let now = day + 3_600_000;
        let execs = vec![
            exec(day - 1_000, Side::Buy, 1, 10 * ONE, 5 * ONE, 0, 1), // yesterday: in the book, not the period
            exec(day + 1_000, Side::Buy, 2, 10 * ONE, 4 * ONE, 0, 2),
            exec(day + 2_000, Side::Sell, 1, 5 * ONE, 3 * ONE, ONE / 2, 1),
        ];
        let prices = BTreeMap::from([(U256::from(1), Price(600_000)), (U256::from(2), Price(300_000))]);
        let mut counts = FillCounts::default();
        counts.by.insert((addr_lower(&Address::repeat_byte(1)), FillStatus::Executed, String::new()), 1);
        counts.by.insert((addr_lower(&Address::repeat_byte(2)), FillStatus::Executed, String::new()), 1);
        counts.by.insert((addr_lower(&Address::repeat_byte(2)), FillStatus::Rejected, "max_order_usdc".into()), 2);
        let labels = HashMap::from([(Address::repeat_byte(1), "whale".to_owned())]);
        let r = build(Span::new(Period::Daily, day, now), (&execs, &[]), &prices, &counts, &labels);
        assert_eq!(r.realized_usdc, "0.5");
        // token 1: 5 sh cost 2.5 worth 3 → +0.5; token 2: 10 sh cost 4 worth 3 → −1
        assert_eq!(r.unrealized_usdc, "-0.5");
        assert_eq!(r.exposure_usdc, "6.5");
        assert_eq!(r.copied, 2);
        assert_eq!(r.rejected.get("max_order_usdc"), Some(&2));
        assert_eq!(r.best[0].token_id, "1");
        assert_eq!(r.worst[0].token_id, "2");
        assert_eq!(r.targets.iter().find(|t| t.target == "whale").unwrap().realized_usdc, "0.5");
        let t = text(&r);
        assert!(t.contains("P&L realized 0.5 USDC") && t.contains("max_order_usdc 2"), "{t}");
        let png = chart_png(&r).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // Not a blank picture: a title in dark text, the blue P&L line, a green bar for the whale.
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        let count = |rows: std::ops::Range<u32>, f: &dyn Fn(&image::Rgb<u8>) -> bool| {
            rows.flat_map(|y| (0..img.width()).map(move |x| (x, y))).filter(|(x, y)| f(img.get_pixel(*x, *y))).count()
        };
        let dark = |p: &image::Rgb<u8>| p.0.iter().all(|c| *c < 90);
        let blue = |p: &image::Rgb<u8>| p.0[2] > 200 && p.0[0] < 80 && p.0[1] < 80;
        let green = |p: &image::Rgb<u8>| p.0[1] > 150 && p.0[0] < 100 && p.0[2] < 100;
        assert!(count(0..40, &dark) > 300, "the title is drawn");
        assert!(count(40..img.height(), &blue) > 200, "the P&L line is drawn");
        assert!(count(img.height() / 2..img.height(), &green) > 500, "the whale's gain is a green bar");
        if let Some(p) = std::env::var_os("POLYCOPY_CHART_OUT") {
            std::fs::write(p, &png).unwrap();
        }
        // The journal's positions are the ones shown, whatever the replay made of the history
        // (here it holds only token 2, 10 shares that cost 4): the figures every other view gives.
        let mut journal = Book::default();
        journal.set(U256::from(2), crate::risk::Position { shares: Shares(10 * ONE), cost: Usdc(4 * ONE) });
        let r = r.with_journal_positions(&journal, &prices);
        assert_eq!((r.exposure_usdc.as_str(), r.unrealized_usdc.as_str()), ("4", "-1"));
        assert!(r.best.is_empty() && r.worst[0].token_id == "2", "{r:?}");
        assert_eq!(r.realized_usdc, "0.5", "the period's realized P&L is the replay's");
    }

    #[test]
    fn dates_and_weekdays() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(20_417 * 86_400_000 + 5), "2025-11-25");
        assert_eq!(weekday(0), 3);
        assert_eq!(date(951_782_400_000), "2000-02-29");
    }
}
