//! Health: each check and the overall verdict, as a pure function of what the daemon knows.

use serde::Serialize;

use crate::chain::FeedStatus;
use crate::config::settings::HealthSettings;
use crate::risk::BreakerState;

/// How bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine.
    Healthy,
    /// Working, with a problem to look at.
    Degraded,
    /// Not doing its job: alert.
    Unhealthy,
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Its name.
    pub name: &'static str,
    /// Its verdict.
    pub status: Level,
    /// What was seen.
    pub detail: String,
}

/// The whole report (`GET /health`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// The worst of the checks.
    pub status: Level,
    /// Every check.
    pub checks: Vec<Check>,
}

/// What the checks look at.
#[derive(Debug, Clone)]
pub struct HealthInput<'a> {
    /// The chain feed's progress.
    pub feed: FeedStatus,
    /// Confirmations setting (expected lag).
    pub confirmations: u64,
    /// The breaker.
    pub breaker: &'a BreakerState,
    /// The journal answered (or why not).
    pub db: Result<(), String>,
    /// Telegram: `None` when not configured.
    pub telegram: Option<Result<(), String>>,
    /// Paper or live.
    pub paper: bool,
    /// Now, unix ms.
    pub now_ms: i64,
}

/// Evaluates every check.
#[must_use]
pub fn evaluate(i: &HealthInput<'_>, t: &HealthSettings) -> HealthReport {
    let mut checks = Vec::with_capacity(5);
    let f = &i.feed;
    let stalled_s = (i.now_ms - f.last_ok_ms) / 1000;
    let lag = f.head.saturating_sub(f.processed).saturating_sub(i.confirmations);
    let chain = if !f.live {
        (Level::Degraded, "starting: first chain sync not finished".to_owned())
    } else if stalled_s > i64::try_from(t.feed_stall_s).unwrap_or(i64::MAX) {
        (
            Level::Unhealthy,
            format!("no successful chain read for {stalled_s} s (head {}, processed {})", f.head, f.processed),
        )
    } else if lag > t.max_head_lag_blocks {
        (Level::Degraded, format!("{lag} blocks behind the head {}", f.head))
    } else {
        (Level::Healthy, format!("head {}, processed {}, last read {stalled_s} s ago", f.head, f.processed))
    };
    checks.push(Check { name: "chain", status: chain.0, detail: chain.1 });
    checks.push(match &i.db {
        Ok(()) => Check { name: "database", status: Level::Healthy, detail: "journal answers".into() },
        Err(e) => Check { name: "database", status: Level::Unhealthy, detail: e.clone() },
    });
    checks.push(if i.breaker.tripped {
        Check {
            name: "breaker",
            status: Level::Unhealthy,
            detail: format!("tripped ({}) by {}: {}", i.breaker.code, i.breaker.by, i.breaker.reason),
        }
    } else {
        Check { name: "breaker", status: Level::Healthy, detail: "trading active".into() }
    });
    checks.push(match &i.telegram {
        None => Check { name: "telegram", status: Level::Healthy, detail: "not configured".into() },
        Some(Ok(())) => Check { name: "telegram", status: Level::Healthy, detail: "connected".into() },
        Some(Err(e)) => Check { name: "telegram", status: Level::Degraded, detail: e.clone() },
    });
    if !i.paper {
        checks.push(Check { name: "clob", status: Level::Unhealthy, detail: "live trading is not available".into() });
    }
    let status = checks.iter().map(|c| c.status).max().unwrap_or(Level::Healthy);
    HealthReport { status, checks }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(feed: FeedStatus, breaker: &BreakerState, db: Result<(), String>) -> HealthInput<'_> {
        HealthInput { feed, confirmations: 0, breaker, db, telegram: None, paper: true, now_ms: 100_000 }
    }

    const T: HealthSettings = HealthSettings { feed_stall_s: 60, max_head_lag_blocks: 30 };

    #[test]
    fn each_check_sets_the_verdict() {
        let ok = BreakerState::default();
        let tripped = BreakerState { tripped: true, code: "manual".into(), ..BreakerState::default() };
        let live = FeedStatus { head: 100, processed: 100, live: true, reconnects: 0, last_ok_ms: 99_000 };
        // (feed, breaker, db) → overall
        let cases = [
            (live, &ok, Ok(()), Level::Healthy),
            (FeedStatus { live: false, ..live }, &ok, Ok(()), Level::Degraded),
            (FeedStatus { processed: 69, ..live }, &ok, Ok(()), Level::Degraded),
            (FeedStatus { processed: 70, ..live }, &ok, Ok(()), Level::Healthy),
            (FeedStatus { last_ok_ms: 39_000, ..live }, &ok, Ok(()), Level::Unhealthy),
            (live, &tripped, Ok(()), Level::Unhealthy),
            (live, &ok, Err("timeout".into()), Level::Unhealthy),
        ];
        for (i, (feed, b, db, want)) in cases.into_iter().enumerate() {
            assert_eq!(evaluate(&input(feed, b, db), &T).status, want, "case {i}");
        }
    }
}
