//! Health: each check and the overall verdict, as a pure function of what the daemon knows.

use serde::Serialize;

use crate::chain::FeedStatus;
use crate::clob::reachability::ReachabilitySnapshot;
use crate::config::settings::HealthSettings;
use crate::risk::{BreakerState, TradingState};
use crate::store::OrderHealth;

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
    /// Live trading's own state; `None` in paper mode.
    pub live: Option<LiveInput>,
    /// Now, unix ms.
    pub now_ms: i64,
    /// When the daemon started, unix ms (0: not known).
    pub started_ms: i64,
    /// The last edit of wallets.json was refused (the previous targets run on).
    pub wallets_refused: bool,
}

/// What the live checks look at.
#[derive(Debug, Clone)]
pub struct LiveInput {
    /// The CLOB as last seen.
    pub clob: ReachabilitySnapshot,
    /// Orders in flight (`Err`: the journal did not say).
    pub orders: Result<OrderHealth, String>,
    /// A matched order should settle on chain within this, ms.
    pub settle_timeout_ms: i64,
}

/// Evaluates every check.
#[must_use]
pub fn evaluate(i: &HealthInput<'_>, t: &HealthSettings) -> HealthReport {
    let mut checks = Vec::with_capacity(5);
    checks.push(chain_check(&i.feed, i.confirmations, (i.now_ms, i.started_ms), t));
    checks.push(match &i.db {
        Ok(()) => Check { name: "database", status: Level::Healthy, detail: "journal answers".into() },
        Err(e) => Check { name: "database", status: Level::Unhealthy, detail: e.clone() },
    });
    let b = i.breaker;
    checks.push(match b.trading() {
        TradingState::Halted => Check {
            name: "breaker",
            status: Level::Unhealthy,
            detail: format!("tripped ({}) by {}: {}", b.code, b.by, b.reason),
        },
        TradingState::Reducing => Check {
            name: "breaker",
            status: Level::Degraded,
            detail: format!("reducing ({}) by {}: {}: only exits are copied", b.code, b.by, b.reason),
        },
        TradingState::Active => Check { name: "breaker", status: Level::Healthy, detail: "trading active".into() },
    });
    checks.push(match &i.telegram {
        None => Check { name: "telegram", status: Level::Healthy, detail: "not configured".into() },
        Some(Ok(())) => Check { name: "telegram", status: Level::Healthy, detail: "connected".into() },
        Some(Err(e)) => Check { name: "telegram", status: Level::Degraded, detail: e.clone() },
    });
    if let Some(l) = &i.live {
        checks.push(clob_check(&l.clob, i.now_ms, t.clob_stale_s));
        checks.push(orders_check(&l.orders, l.settle_timeout_ms, i.now_ms));
    }
    if i.wallets_refused {
        // Trading goes on with the targets last read; only the next start is at stake.
        checks.push(Check {
            name: "wallets",
            status: Level::Degraded,
            detail: "wallets.json was refused at its last edit: the previous targets keep running, but a restart \
                     would stop at it. `polycopy check-config` says what is wrong"
                .into(),
        });
    }
    let status = checks.iter().map(|c| c.status).max().unwrap_or(Level::Healthy);
    HealthReport { status, checks }
}

/// The chain feed's check, at `now_ms` for a daemon started at `started_ms` (0: not known): also
/// what Telegram's `/status` says of the feed.
#[must_use]
pub fn chain_check(f: &FeedStatus, confirmations: u64, (now_ms, started_ms): (i64, i64), t: &HealthSettings) -> Check {
    let stalled_s = (now_ms - f.last_ok_ms) / 1000;
    let lag = f.head.saturating_sub(f.processed).saturating_sub(confirmations);
    let stall_s = i64::try_from(t.feed_stall_s).unwrap_or(i64::MAX);
    let why = f.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
    let failing_s = (f.failing_since_ms != 0).then(|| (now_ms - f.failing_since_ms) / 1000);
    // Before the first sync, a feed that is not failing must at least be trying: a recovery that
    // never ends (the feed not started), or a feed that stopped, would otherwise read "starting"
    // for ever. A failing one waits out its backoff and is judged by how long it has failed.
    let tried_s = (now_ms - f.attempt_ms.max(f.started_ms).max(started_ms)) / 1000;
    let chain = if !f.live && f.failing_since_ms == 0 && started_ms != 0 && tried_s > stall_s {
        (Level::Unhealthy, format!("not synced with the chain, and no attempt for {tried_s} s since the start{why}"))
    } else if !f.live {
        match failing_s {
            // Still waiting for the chain after the stall threshold: the operator must act.
            Some(s) if f.started_ms != 0 && s > stall_s => {
                (Level::Unhealthy, format!("no chain sync since the start, failing for {s} s{why}"))
            }
            Some(s) => (Level::Degraded, format!("starting: the chain does not answer yet ({s} s){why}")),
            None if f.processed > 0 => {
                (Level::Degraded, format!("catching up: processed {} of head {}", f.processed, f.head))
            }
            None => (Level::Degraded, "starting: first chain sync not finished".to_owned()),
        }
    } else if f.copier_wait_since_ms != 0 && stalled_s > stall_s {
        // Alive, and not reading the chain on purpose: the copies are at their bound (each waits
        // on a node or CLOB read). Nothing is lost; the operator should know why fills lag.
        let waited_s = (now_ms - f.copier_wait_since_ms) / 1000;
        (
            Level::Degraded,
            format!(
                "the chain feed waits for the copier for {waited_s} s: copies waiting for a decision are at their \
                 bound (head {}, processed {})",
                f.head, f.processed
            ),
        )
    } else if stalled_s > stall_s {
        (
            Level::Unhealthy,
            format!("no successful chain read for {stalled_s} s (head {}, processed {}){why}", f.head, f.processed),
        )
    } else if let Some(age_s) = too_old(f, now_ms, age_limit(t.max_chain_age_s.saturating_mul(5), confirmations)) {
        // Every copy is refused as stale by now (copy.max_copy_delay_s is 300 s by default).
        (Level::Unhealthy, behind_the_clock(f, age_s))
    } else if lag > t.max_head_lag_blocks {
        (Level::Degraded, format!("{lag} blocks behind the head {}", f.head))
    } else if let Some(age_s) = too_old(f, now_ms, age_limit(t.max_chain_age_s, confirmations)) {
        (Level::Degraded, behind_the_clock(f, age_s))
    } else {
        (Level::Healthy, format!("head {}, processed {}, last read {stalled_s} s ago", f.head, f.processed))
    };
    Check { name: "chain", status: chain.0, detail: chain.1 }
}

/// The age allowed the newest block read: `limit_s` (0: off) past the `confirmations` blocks a
/// fill waits for, which are not read yet by design (about 2 s each on Polygon).
fn age_limit(limit_s: u64, confirmations: u64) -> u64 {
    if limit_s == 0 { 0 } else { limit_s.saturating_add(confirmations.saturating_mul(2)) }
}

/// How old the newest block read is, when older than `limit_s` (0: never).
fn too_old(f: &FeedStatus, now_ms: i64, limit_s: u64) -> Option<u64> {
    let age_s = u64::try_from(now_ms / 1000).unwrap_or(0).saturating_sub(f.read_through_s);
    (limit_s > 0 && f.read_through_s > 0 && age_s > limit_s).then_some(age_s)
}

fn behind_the_clock(f: &FeedStatus, age_s: u64) -> String {
    format!(
        "the newest block read ({}) is {age_s} s old by this host's clock: the endpoint lags the chain (or the \
         clock is off), and copies come that much late",
        f.processed
    )
}

/// What `/health` says of Telegram: `None` when no bot is configured, else fine or the first
/// problem found, worst first (a configured bot that could not start included).
#[must_use]
pub fn telegram_check(m: &crate::metrics::Metrics) -> Option<Result<(), String>> {
    use std::sync::atomic::Ordering::Relaxed;
    if m.telegram_on.load(Relaxed) {
        Some(telegram_state(m))
    } else if m.telegram_refused.load(Relaxed) {
        Some(Err("a bot token is configured, but Telegram could not start with it (see the log at start): no \
                  alerts and no commands until TELEGRAM_BOT_TOKEN or TELEGRAM_API_URL is fixed and the daemon \
                  restarted"
            .to_owned()))
    } else {
        None
    }
}

/// How Telegram is doing once started: fine, or why not.
///
/// # Errors
/// The problem, in words.
pub fn telegram_state(m: &crate::metrics::Metrics) -> Result<(), String> {
    use std::sync::atomic::Ordering::Relaxed;
    let parked = m.telegram_parked_chats.load(Relaxed);
    if m.telegram_poll_conflict.load(Relaxed) {
        Err("another process polls this bot's commands (Telegram answers 409): each command reaches only one \
             of them; give each instance its own bot"
            .to_owned())
    } else if m.telegram_commands_failing.load(Relaxed) {
        Err("Telegram's commands cannot be fetched (getUpdates keeps failing, see the log): a /halt typed there \
             is not received; `polycopy halt` on the server is"
            .to_owned())
    } else if parked > 0 {
        Err(format!(
            "{parked} authorized chat(s) refuse our messages (bot blocked, chat not found or moved): they are held; \
             see the log"
        ))
    } else if m.telegram_failing.load(Relaxed) {
        Err("the last delivery to Telegram failed; retrying".to_owned())
    } else {
        Ok(())
    }
}

/// The last failure, as the end of a sentence (nothing when there was none).
fn why(c: &ReachabilitySnapshot) -> String {
    if c.last_error.is_empty() { String::new() } else { format!(": {}", c.last_error) }
}

/// The CLOB's check (live): reachable and taking our credentials. Also what `/status` says of it.
#[must_use]
pub fn clob_check(c: &ReachabilitySnapshot, now_ms: i64, stale_s: u64) -> Check {
    let stale_ms = i64::try_from(stale_s).unwrap_or(i64::MAX).saturating_mul(1000);
    let (status, detail) = if c.auth_refused {
        (Level::Unhealthy, format!("the CLOB refuses our API credentials ({}): see RUNBOOK, API errors", c.last_error))
    } else if c.last_answer_ms == 0 && (c.since_ms == 0 || now_ms - c.since_ms <= stale_ms) {
        (Level::Degraded, "no answer from the CLOB yet".to_owned())
    } else if c.last_answer_ms == 0 {
        // Never answered since the start: nothing can be sent, however long that has lasted.
        (
            Level::Unhealthy,
            format!("no answer from the CLOB in the {} s since the start{}", (now_ms - c.since_ms) / 1000, why(c)),
        )
    } else if now_ms - c.last_answer_ms > stale_ms {
        (Level::Unhealthy, format!("no answer from the CLOB for {} s{}", (now_ms - c.last_answer_ms) / 1000, why(c)))
    } else {
        (
            Level::Healthy,
            format!("reachable and authenticated, last answer {} s ago", (now_ms - c.last_answer_ms) / 1000),
        )
    };
    Check { name: "clob", status, detail }
}

fn orders_check(o: &Result<OrderHealth, String>, settle_timeout_ms: i64, now_ms: i64) -> Check {
    let o = match o {
        Ok(o) => o,
        Err(e) => {
            return Check { name: "orders", status: Level::Degraded, detail: format!("cannot count orders: {e}") };
        }
    };
    let late = o.oldest_awaiting_ms.is_some_and(|t| now_ms - t > settle_timeout_ms);
    let status = if o.unresolved > 0 || late { Level::Degraded } else { Level::Healthy };
    let oldest = o.oldest_awaiting_ms.map_or(String::new(), |t| format!(" (oldest {} s)", (now_ms - t) / 1000));
    let detail = format!(
        "{} unresolved (sent, outcome being looked up), {} awaiting on-chain settlement{oldest}",
        o.unresolved, o.awaiting_settlement
    );
    Check { name: "orders", status, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(feed: FeedStatus, breaker: &BreakerState, db: Result<(), String>) -> HealthInput<'_> {
        HealthInput {
            feed,
            confirmations: 0,
            breaker,
            db,
            telegram: None,
            live: None,
            now_ms: 100_000,
            started_ms: 1_000,
            wallets_refused: false,
        }
    }

    const T: HealthSettings =
        HealthSettings { feed_stall_s: 60, max_head_lag_blocks: 30, clob_stale_s: 120, max_chain_age_s: 60 };

    #[test]
    fn an_endpoint_that_lags_but_moves_is_behind_by_its_blocks_own_times() {
        let now_ms = 1_000_000;
        let feed = |read_through_s| FeedStatus {
            head: 100,
            processed: 100,
            live: true,
            last_ok_ms: now_ms - 1_000,
            read_through_s,
            ..FeedStatus::default()
        };
        // (newest block read, unix s; the check's limit; verdict)
        for (read, limit, want) in [
            (995, 60, Level::Healthy),
            (900, 60, Level::Degraded),
            (600, 60, Level::Unhealthy),
            (600, 0, Level::Healthy),
            (0, 60, Level::Healthy),
        ] {
            let t = HealthSettings { max_chain_age_s: limit, ..T };
            let c = chain_check(&feed(read), 0, (now_ms, 1), &t);
            assert_eq!(c.status, want, "{read} {limit}: {c:?}");
            assert_eq!(c.detail.contains("lags the chain"), want != Level::Healthy, "{c:?}");
        }
        // 64 confirmations: the newest block read is two minutes behind the head by design.
        let c = chain_check(&feed(870), 64, (now_ms, 1), &T);
        assert_eq!(c.status, Level::Healthy, "{c:?}");
        let c = chain_check(&feed(800), 64, (now_ms, 1), &T);
        assert_eq!(c.status, Level::Degraded, "{c:?}");
    }

    #[test]
    fn a_refused_wallets_edit_is_degraded_and_named() {
        let ok = BreakerState::default();
        let feed = FeedStatus { head: 10, processed: 10, live: true, last_ok_ms: 99_000, ..FeedStatus::default() };
        let mut i = input(feed, &ok, Ok(()));
        assert_eq!(evaluate(&i, &T).status, Level::Healthy);
        i.wallets_refused = true;
        let r = evaluate(&i, &T);
        assert_eq!(r.status, Level::Degraded, "{r:?}");
        assert!(r.checks.iter().any(|c| c.name == "wallets" && c.detail.contains("a restart")), "{r:?}");
    }

    #[test]
    fn each_check_sets_the_verdict() {
        let ok = BreakerState::default();
        let tripped = BreakerState { tripped: true, code: "manual".into(), ..BreakerState::default() };
        let live = FeedStatus {
            head: 100,
            processed: 100,
            live: true,
            last_ok_ms: 99_000,
            started_ms: 1_000,
            attempt_ms: 99_000,
            ..FeedStatus::default()
        };
        // Not synced yet, the feed started at `started` and last tried at `tried` (0: never).
        let quiet = |started: i64, tried: i64| FeedStatus {
            live: false,
            processed: 0,
            started_ms: started,
            attempt_ms: tried,
            ..FeedStatus::default()
        };
        let down = |since: i64| FeedStatus {
            live: false,
            processed: 0,
            failing_since_ms: since,
            last_error: Some("dns error: failed to lookup address".into()),
            ..live.clone()
        };
        // (feed, breaker, db) → overall
        let cases = [
            (live.clone(), &ok, Ok(()), Level::Healthy),
            (FeedStatus { live: false, ..live.clone() }, &ok, Ok(()), Level::Degraded),
            (FeedStatus { processed: 69, ..live.clone() }, &ok, Ok(()), Level::Degraded),
            (FeedStatus { processed: 70, ..live.clone() }, &ok, Ok(()), Level::Healthy),
            // The newest block read, by the clock (100 s now): 50 s old is fine, 61 s is behind.
            (FeedStatus { read_through_s: 50, ..live.clone() }, &ok, Ok(()), Level::Healthy),
            (FeedStatus { read_through_s: 39, ..live.clone() }, &ok, Ok(()), Level::Degraded),
            (FeedStatus { last_ok_ms: 39_000, ..live.clone() }, &ok, Ok(()), Level::Unhealthy),
            // Not reading the chain because the copier is behind: alive, degraded.
            (
                FeedStatus { last_ok_ms: 39_000, copier_wait_since_ms: 40_000, ..live.clone() },
                &ok,
                Ok(()),
                Level::Degraded,
            ),
            (live.clone(), &tripped, Ok(()), Level::Unhealthy),
            (live.clone(), &ok, Err("timeout".into()), Level::Unhealthy),
            // The chain never answered since the start: starting for a while, then unhealthy.
            (down(50_000), &ok, Ok(()), Level::Degraded),
            (down(30_000), &ok, Ok(()), Level::Unhealthy),
            // Not synced and not trying: a recovery that never ends (the feed not started 99 s
            // after the daemon), or a feed that stopped trying, is unhealthy past the stall.
            (quiet(50_000, 0), &ok, Ok(()), Level::Degraded),
            (quiet(0, 0), &ok, Ok(()), Level::Unhealthy),
            (quiet(1_000, 30_000), &ok, Ok(()), Level::Unhealthy),
            (quiet(1_000, 95_000), &ok, Ok(()), Level::Degraded),
        ];
        for (i, (feed, b, db, want)) in cases.into_iter().enumerate() {
            assert_eq!(evaluate(&input(feed, b, db), &T).status, want, "case {i}");
        }
    }

    #[test]
    fn live_checks_name_what_fails() {
        let ok = BreakerState::default();
        let now = 1_000_000;
        let feed =
            FeedStatus { head: 100, processed: 100, live: true, last_ok_ms: now - 1_000, ..FeedStatus::default() };
        let clob = |answer: i64, auth_refused: bool| ReachabilitySnapshot {
            last_answer_ms: answer,
            auth_refused,
            last_error: "timeout".into(),
            since_ms: now - 60_000,
        };
        // Connected `since` ms ago and never answered.
        let silent = |since: i64| ReachabilitySnapshot { since_ms: now - since, ..clob(0, false) };
        let orders = |unresolved: i64, oldest: Option<i64>| OrderHealth {
            unresolved,
            awaiting_settlement: i64::from(oldest.is_some()),
            oldest_awaiting_ms: oldest,
        };
        // (clob, orders) → (overall, failing check)
        let cases = [
            (clob(now - 5_000, false), orders(0, None), Level::Healthy, None),
            (clob(now - 5_000, false), orders(0, Some(now - 10_000)), Level::Healthy, None),
            (clob(now - 500_000, false), orders(0, None), Level::Unhealthy, Some("clob")),
            (clob(now - 5_000, true), orders(0, None), Level::Unhealthy, Some("clob")),
            (clob(0, false), orders(0, None), Level::Degraded, Some("clob")),
            // Never answered: starting for a while, then unhealthy (nothing can be sent).
            (silent(T.clob_stale_s as i64 * 1000), orders(0, None), Level::Degraded, Some("clob")),
            (silent(T.clob_stale_s as i64 * 1000 + 1), orders(0, None), Level::Unhealthy, Some("clob")),
            (clob(now - 5_000, false), orders(2, None), Level::Degraded, Some("orders")),
            (clob(now - 5_000, false), orders(0, Some(now - 200_000)), Level::Degraded, Some("orders")),
        ];
        for (i, (c, o, want, failing)) in cases.into_iter().enumerate() {
            let input = HealthInput {
                feed: feed.clone(),
                confirmations: 0,
                breaker: &ok,
                db: Ok(()),
                telegram: None,
                live: Some(LiveInput { clob: c, orders: Ok(o), settle_timeout_ms: 120_000 }),
                now_ms: now,
                started_ms: now - 60_000,
                wallets_refused: false,
            };
            let r = evaluate(&input, &T);
            assert_eq!(r.status, want, "case {i}: {r:?}");
            let bad: Vec<_> = r.checks.iter().filter(|c| c.status != Level::Healthy).map(|c| c.name).collect();
            assert_eq!(bad.first().copied(), failing, "case {i}");
        }
    }
}
