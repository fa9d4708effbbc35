//! The trading day and its P&L. The daily loss limit counts what was lost *today*: the P&L realized
//! since the day opened plus the change of the open positions' unrealized P&L since then, not the
//! lifetime unrealized P&L of positions opened on earlier days.

use crate::domain::Usdc;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// The unrealized P&L of `p` at `mark`, a mark read while the position was `marked`: shares
/// bought since count at what they cost until the next mark (a mark read before them says
/// nothing of their price: an hour-old mark far from a new BUY's price would book that gap at
/// once, tripping the daily loss limit, or hiding a loss). Sold down to no more than was marked,
/// the whole position counts at the mark.
#[must_use]
pub fn unrealized_at(p: crate::risk::Position, mark: crate::domain::Price, marked: crate::risk::Position) -> i64 {
    if p.shares.0 <= 0 {
        return 0;
    }
    if p.shares.0 <= marked.shares.0 {
        return crate::domain::mul_price_floor(p.shares, mark) - p.cost.0;
    }
    // The shares marked at what they cost then; the ones added since at their own cost (nothing).
    let marked_shares = marked.shares.0.max(0);
    crate::domain::mul_price_floor(crate::domain::Shares(marked_shares), mark) - marked.cost.0.clamp(0, p.cost.0)
}

/// When the trading day containing `now_ms` opened, for days that start at `hour` UTC.
#[must_use]
pub const fn day_start(now_ms: i64, hour: u32) -> i64 {
    let offset = hour as i64 * HOUR_MS;
    let shifted = now_ms - offset;
    shifted - shifted.rem_euclid(DAY_MS) + offset
}

/// Today's P&L: realized today plus the change of unrealized P&L since the day opened (`None`: the
/// opening value is not known yet, so nothing unrealized counts).
#[must_use]
pub const fn pnl_today(realized_today: Usdc, unrealized_now: Usdc, unrealized_at_open: Option<Usdc>) -> Usdc {
    let change = match unrealized_at_open {
        Some(open) => unrealized_now.0 - open.0,
        None => 0,
    };
    Usdc(realized_today.0 + change)
}

/// What a booking moves of the day's opening unrealized P&L: nothing when it is dated today; all
/// it moved of unrealized P&L (`unrealized_after − unrealized_before`, its token at its mark) when it
/// is dated to an earlier day (a part a GTD order or our fill on chain added to an execution of
/// yesterday). Its realized P&L is that day's, so the unrealized P&L it took away or added must not
/// show as today's either.
#[must_use]
pub const fn carried_to_open(
    booked_at_ms: i64,
    day_start_ms: i64,
    unrealized_before: i64,
    unrealized_after: i64,
) -> i64 {
    if booked_at_ms < day_start_ms { unrealized_after - unrealized_before } else { 0 }
}

/// How close today is to the daily loss limit, for people: "today's P&L -12.5 USDC, 6% of the 200
/// USDC daily loss limit used".
#[must_use]
pub fn daily_loss_line(pnl_today: Usdc, limit: Usdc) -> String {
    let used = if pnl_today.0 < 0 && limit.0 > 0 {
        i64::try_from(i128::from(-pnl_today.0) * 100 / i128::from(limit.0)).unwrap_or(i64::MAX)
    } else {
        0
    };
    format!("today's P&L {pnl_today} USDC, {used}% of the {limit} USDC daily loss limit used")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_bought_after_the_mark_count_at_cost_until_the_next() {
        use crate::domain::{Price, Shares};
        use crate::risk::Position;
        let pos = |shares: i64, cost: i64| Position { shares: Shares(shares), cost: Usdc(cost) };
        // (position, mark, position when marked, unrealized)
        let cases = [
            // All marked: the mark's value less the cost.
            (pos(10_000_000, 5_000_000), Price(600_000), pos(10_000_000, 5_000_000), 1_000_000),
            // 100 bought at 0.60 onto 10 bought at 0.50 and marked at 0.10 an hour ago: the 10 at
            // the mark (1 for 5), the 100 at their cost; not a 50 USDC loss at once.
            (pos(110_000_000, 65_000_000), Price(100_000), pos(10_000_000, 5_000_000), -4_000_000),
            // Nothing held when marked: at cost.
            (pos(10_000_000, 5_000_000), Price(100_000), pos(0, 0), 0),
            // Sold down below what was marked: the rest is marked.
            (pos(4_000_000, 2_000_000), Price(600_000), pos(10_000_000, 5_000_000), 400_000),
            // Closed.
            (pos(0, 0), Price(600_000), pos(10_000_000, 5_000_000), 0),
        ];
        for (p, mark, marked, want) in cases {
            assert_eq!(unrealized_at(p, mark, marked), want, "{p:?} at {mark:?}, {marked:?} marked");
        }
    }

    #[test]
    fn the_daily_loss_line_says_how_much_of_the_limit_is_used() {
        for (pnl, limit, want) in [
            (-12_500_000, 200_000_000, "today's P&L -12.5 USDC, 6% of the 200 USDC daily loss limit used"),
            (5_000_000, 200_000_000, "today's P&L 5 USDC, 0% of the 200 USDC daily loss limit used"),
            (-250_000_000, 200_000_000, "today's P&L -250 USDC, 125% of the 200 USDC daily loss limit used"),
        ] {
            assert_eq!(daily_loss_line(Usdc(pnl), Usdc(limit)), want);
        }
    }

    #[test]
    fn days_open_at_the_configured_hour() {
        let midnight = 1_796_083_200_000; // 2026-12-01 00:00 UTC
        // (now, hour) → day start
        let cases = [
            (midnight, 0, midnight),
            (midnight + 5 * HOUR_MS, 0, midnight),
            (midnight - 1, 0, midnight - DAY_MS),
            (midnight + 5 * HOUR_MS, 6, midnight - DAY_MS + 6 * HOUR_MS),
            (midnight + 6 * HOUR_MS, 6, midnight + 6 * HOUR_MS),
            (midnight + 23 * HOUR_MS, 22, midnight + 22 * HOUR_MS),
        ];
        for (i, (now, hour, want)) in cases.into_iter().enumerate() {
            assert_eq!(day_start(now, hour), want, "case {i}");
        }
    }

    #[test]
    fn a_part_dated_yesterday_moves_nothing_of_todays_pnl() {
        let day = 1_796_083_200_000;
        // (booked at, unrealized before, after, realized of the part, at open, unrealized now
        // before the part) → today's P&L after it
        let cases = [
            // 100 shares at cost 0.60 opened the day marked 0.40 (-20); yesterday's SELL part sells
            // them at 0.40 (realized -20, yesterday's): 0 today, not +20
            (day - 120_000, -20, 0, -20, -20, -20, 0),
            // cost 0.30 marked 0.80 at the open (+50): not -50 today
            (day - 120_000, 50, 0, 50, 50, 50, 0),
            // the same part booked today: its realized P&L counts today, the unrealized it took
            // away too, and they cancel
            (day + 1, -20, 0, -20, -20, -20, 0),
            // a loss that grew by 30 today stays today's whatever yesterday's part did
            (day - 1, -50, -30, -20, -20, -50, -30),
        ];
        for (i, (at, before, after, realized, open, now_before, want)) in cases.into_iter().enumerate() {
            let carried = carried_to_open(at, day, before, after);
            let realized_today = if at >= day { realized } else { 0 };
            let now = now_before - before + after;
            assert_eq!(pnl_today(Usdc(realized_today), Usdc(now), Some(Usdc(open + carried))), Usdc(want), "case {i}");
        }
    }

    #[test]
    fn only_todays_change_of_unrealized_counts() {
        // (realized today, unrealized now, at open) → P&L today
        let cases = [
            (0, -50, Some(-50), 0),   // a loss carried from yesterday is not today's
            (0, -80, Some(-50), -30), // it grew by 30 today
            (-20, 0, Some(-20), 0),   // sold today at yesterday's mark: no loss today
            (10, -5, Some(0), 5),
            (10, -500, None, 10), // opening value unknown yet: realized only
        ];
        for (i, (r, u, open, want)) in cases.into_iter().enumerate() {
            assert_eq!(pnl_today(Usdc(r), Usdc(u), open.map(Usdc)), Usdc(want), "case {i}");
        }
    }
}
