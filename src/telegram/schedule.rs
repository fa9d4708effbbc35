//! Scheduled reports: the daily one at a configured UTC time, the weekly one on a configured day,
//! each sent as text plus a PNG chart.

use actix::Addr;
use tracing::{info, warn};

use crate::actors::store::{AddEvent, GetReportData, LastEventAt, StoreActor};
use crate::actors::watcher::{ListTargets, Registry};
use crate::actors::within;
use crate::report::{self, Period};
use crate::store::now_ms;
use crate::telegram::outbox::{Class, Outgoing};

const DAY_MS: i64 = 86_400_000;

/// How late a scheduled report a stop made the daemon miss is still sent at the start.
const CATCH_UP_MS: i64 = 6 * 3_600_000;

/// The events log's kind for a scheduled report of `period` sent: what a start reads to catch up.
/// One per period: a stop between the daily report and the weekly one must not count both sent.
const fn sent_kind(period: Period) -> &'static str {
    match period {
        Period::Daily => "report_sent_daily",
        Period::Weekly => "report_sent_weekly",
        Period::Monthly => "report_sent_monthly",
    }
}

/// The scheduled reports a stop spanning their time missed (an update at 17:59:58 that took ten
/// seconds skipped the 18:00 report): due less than six hours ago, and after the last one of its
/// period sent (`None`: none ever was, so there is nothing to catch up). `last_sent`: the daily
/// one's and the weekly one's.
#[must_use]
pub fn missed(now_ms: i64, secs: u32, weekday: u32, last_sent: (Option<i64>, Option<i64>)) -> Vec<Period> {
    let due = next_fire(now_ms, secs, None) - DAY_MS;
    let late = |last: Option<i64>| last.is_some_and(|last| last < due && now_ms - due <= CATCH_UP_MS);
    let mut out = Vec::new();
    if late(last_sent.0) {
        out.push(Period::Daily);
    }
    if report::weekday(due) == weekday && late(last_sent.1) {
        out.push(Period::Weekly);
    }
    out
}

/// The next time (unix ms, strictly after `now_ms`) at `secs` past midnight UTC, on `weekday`
/// (0 = Monday) when given.
#[must_use]
pub fn next_fire(now_ms: i64, secs: u32, weekday: Option<u32>) -> i64 {
    let day0 = now_ms - now_ms.rem_euclid(DAY_MS);
    let mut t = day0 + i64::from(secs) * 1000;
    while t <= now_ms || weekday.is_some_and(|w| report::weekday(t) != w) {
        t += DAY_MS;
    }
    t
}

/// Longest a report waits for each answer of the journal: a month of rows is read at once, but a
/// journal that does not answer in this time gets the report said unavailable, not silence.
const REPORT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Builds a report from the journal: its text and (when drawing works) its chart.
pub async fn build_report(
    store: &Addr<StoreActor>,
    registry: &Addr<Registry>,
    period: Period,
) -> Option<(String, Option<Vec<u8>>)> {
    let now = now_ms();
    let (span, execs, prices, counts, fees, book) =
        within(REPORT_WAIT, store.send(GetReportData { period, now_ms: now })).await.ok()?.ok()?;
    let labels: std::collections::HashMap<_, _> = within(REPORT_WAIT, registry.send(ListTargets))
        .await
        .ok()?
        .into_iter()
        .map(|t| (t.target.address, t.target.label))
        .collect();
    // Replaying the whole history and drawing take a while: both run off the actors' thread, which
    // halts, the control socket and the copies share.
    let names = labels.clone();
    let made = tokio::task::spawn_blocking(move || {
        let r = report::build(span, (&execs, &fees), &prices, &counts, &names).with_journal_positions(&book, &prices);
        // A chart that fails, or panics, costs the chart only: the text is still sent.
        let png = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| report::chart_png(&r)))
            .map_err(|_| "drawing panicked".to_owned())
            .and_then(|p| p.map_err(|e| e.to_string()));
        (report::text(&r), png)
    })
    .await;
    let (mut text, png) = match made {
        Ok((text, Ok(png))) => (text, Some(png)),
        Ok((text, Err(e))) => {
            warn!(cause = %e, "report chart");
            (text, None)
        }
        Err(e) => {
            warn!(cause = %e, "report: its task failed");
            return None;
        }
    };
    // The weekly (and monthly) report says how copying each target went over the period.
    if period != Period::Daily
        && let Ok(Ok(quality)) =
            within(REPORT_WAIT, store.send(crate::actors::store::GetTargetQuality(span.from_ms))).await
        && !quality.is_empty()
    {
        text.push_str("\ncopy quality by target:");
        for (wallet, q) in &quality {
            let who = labels.get(wallet).cloned().unwrap_or_else(|| crate::domain::addr_lower(wallet));
            text.push_str(&format!("\n{who}: {}", crate::telegram::targets::quality_line(q)));
        }
    }
    if png.is_some() {
        text.push_str("\nchart: blue = cumulative realized P&L, red = exposure, black = zero");
    }
    Some((text, png))
}

/// Sends the reports on schedule, forever.
pub async fn run(
    store: Addr<StoreActor>,
    registry: Addr<Registry>,
    out: crate::telegram::Queue,
    secs: u32,
    weekly_day: u32,
) {
    let last = async |period| {
        within(REPORT_WAIT, store.send(LastEventAt(sent_kind(period)))).await.ok().and_then(Result::ok).flatten()
    };
    let last_sent = (last(Period::Daily).await, last(Period::Weekly).await);
    let late = missed(now_ms(), secs, weekly_day, last_sent);
    if !late.is_empty() {
        info!(reports = late.len(), "a scheduled report was due while the daemon was stopped: sent now");
    }
    for period in late {
        if !send(&store, &registry, &out, period).await {
            return;
        }
    }
    loop {
        let now = now_ms();
        let daily = next_fire(now, secs, None);
        let weekly = next_fire(now, secs, Some(weekly_day));
        let at = daily.min(weekly);
        tokio::time::sleep(std::time::Duration::from_millis(u64::try_from(at - now).unwrap_or(0))).await;
        let mut due = vec![Period::Daily];
        if weekly == at {
            due.push(Period::Weekly);
        }
        for period in due {
            if !send(&store, &registry, &out, period).await {
                return;
            }
        }
    }
}

/// Builds and queues one scheduled report, and logs it sent; false once the queue is closed.
async fn send(
    store: &Addr<StoreActor>,
    registry: &Addr<Registry>,
    out: &crate::telegram::Queue,
    period: Period,
) -> bool {
    let Some((text, photo)) = build_report(store, registry, period).await else {
        // The journal or the target list did not answer: said, so a missing report is explained
        // in the log (an on-demand /report can be asked for once it answers).
        warn!(?period, "the scheduled report could not be built (journal or target list unavailable); skipped");
        return true;
    };
    info!(?period, "sending the scheduled report");
    let m = Outgoing {
        kind: "report",
        text,
        silent: false,
        class: Class::Direct,
        chat: None,
        buttons: Vec::new(),
        photo,
        html: false,
        tally: crate::telegram::outbox::Tally::default(),
    };
    if !out.push(m).await {
        return false;
    }
    store.do_send(AddEvent { kind: sent_kind(period), message: format!("the scheduled {period:?} report was queued") });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_due_while_stopped_is_caught_up_within_hours() {
        // 2026-11-25 is a Wednesday (weekday 2); reports at 18:00, the weekly one on Wednesdays.
        let day = 20_782 * DAY_MS;
        let at = |h: i64, m: i64| day + h * 3_600_000 + m * 60_000;
        let secs = 18 * 3600;
        let week_ago = Some(at(18, 0) - 7 * DAY_MS);
        // (now, last daily sent, last weekly sent, weekly day, due now)
        let cases = [
            (at(18, 1), Some(at(18, 0) - DAY_MS), week_ago, 2, vec![Period::Daily, Period::Weekly]),
            (at(18, 1), Some(at(18, 0) - DAY_MS), week_ago, 4, vec![Period::Daily]),
            (at(18, 1), Some(at(18, 0) + 500), week_ago, 4, vec![]),
            // Stopped between the daily report and the weekly one: only the weekly is due.
            (at(18, 1), Some(at(18, 0) + 500), week_ago, 2, vec![Period::Weekly]),
            // Down for two days: the last report due is sent, once.
            (at(20, 0), Some(at(18, 0) - 2 * DAY_MS), week_ago, 4, vec![Period::Daily]),
            // Before today's time: yesterday's is too long ago.
            (at(17, 59), Some(at(18, 0) - 2 * DAY_MS), week_ago, 4, vec![]),
            // Started seven hours after it was due: too late to be the day's report.
            (at(25, 0), Some(at(18, 0) - DAY_MS), week_ago, 4, vec![]),
            (at(23, 59), Some(at(18, 0) - DAY_MS), week_ago, 4, vec![Period::Daily]),
            (at(18, 1), None, None, 2, vec![]),
        ];
        for (now, daily, weekly, weekday, want) in cases {
            assert_eq!(missed(now, secs, weekday, (daily, weekly)), want, "{now} {daily:?} {weekly:?}");
        }
    }

    #[test]
    fn fires_at_the_next_time_and_weekday() {
        // 2026-11-25 is a Wednesday (weekday 2).
        let wed_noon = 20_782 * DAY_MS + 12 * 3_600_000;
        assert_eq!(report::weekday(wed_noon), 2);
        let six_pm = 18 * 3600;
        assert_eq!(next_fire(wed_noon, six_pm, None), 20_782 * DAY_MS + 18 * 3_600_000);
        assert_eq!(next_fire(wed_noon, 11 * 3600, None), 20_783 * DAY_MS + 11 * 3_600_000);
        // next Sunday (weekday 6) at 18:00
        assert_eq!(next_fire(wed_noon, six_pm, Some(6)), 20_786 * DAY_MS + 18 * 3_600_000);
        // exactly at the time: the next one
        let at = 20_782 * DAY_MS + 18 * 3_600_000;
        assert_eq!(next_fire(at, six_pm, None), at + DAY_MS);
    }
}
