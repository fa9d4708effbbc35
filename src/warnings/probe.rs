//! Gathers the warnings' observation every `alerts.check_every_s` and sends each due warning through
//! the notifier once per cool-down. Every source is bounded in time (a hung `df` on a dead mount, a
//! slow CLOB) and a source that fails is simply unknown: it never warns and never blocks the rest.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::Addr;
use tracing::debug;

use super::{ClockReading, Cooldowns, Observation, Thresholds, due};
use crate::actors::notifier::{Event, Notifier};
use crate::actors::risk_supervisor::{GetBreakerState, GetPnlToday, RiskSupervisor};
use crate::actors::store::{RecentWins, StoreActor, TargetActivity};
use crate::actors::watcher::{ListTargets, Registry};
use crate::clob::venue::Venue;
use crate::domain::Usdc;
use crate::metrics::Metrics;
use crate::store::now_ms;

/// Longest any one source may take.
const SOURCE_WAIT: Duration = Duration::from_secs(5);

/// What the warnings look at.
#[derive(Clone)]
pub struct Sources {
    /// Last target fill, latest closed trades.
    pub store: Addr<StoreActor>,
    /// Today's P&L and the breaker.
    pub risk: Addr<RiskSupervisor>,
    /// Targets being copied.
    pub registry: Addr<Registry>,
    /// Where warnings go.
    pub notifier: Addr<Notifier>,
    /// Live only: the CLOB's answer time and clock.
    pub venue: Option<Arc<Venue>>,
    /// The journal's directory (its disk).
    pub journal_dir: PathBuf,
    /// Counts checks and warnings.
    pub metrics: Arc<Metrics>,
}

/// The `[alerts]` settings the loop needs.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Between two looks.
    pub every: Duration,
    /// A warning repeats only after this.
    pub cooldown: Duration,
    /// The thresholds.
    pub thresholds: Thresholds,
    /// The daily loss limit.
    pub daily_loss_limit: Usdc,
    /// Unix ms the daemon started.
    pub started_ms: i64,
}

/// Looks, warns, waits; until cancelled.
pub async fn run(src: Sources, sch: Schedule) {
    let mut cooldowns = Cooldowns::default();
    // Warnings sent before a restart keep their cool-down.
    if let Some(sent) = bounded(async { src.store.send(crate::actors::store::RecentWarnings).await.ok()?.ok() }).await {
        for (at, message) in sent {
            if let Some(kind) = super::WarningKind::from_message(&message) {
                cooldowns.remember(kind, at);
            }
        }
    }
    let cooldown_ms = i64::try_from(sch.cooldown.as_millis()).unwrap_or(i64::MAX);
    let mut checks: u64 = 0;
    let mut tick = tokio::time::interval(sch.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let o = observe(&src, &sch).await;
        src.metrics.targets_copying.store(o.targets_copying as u64, Ordering::Relaxed);
        // An unanswered probe is unknown (0), not the last answer's time.
        let ms = o.clob_ms.map_or(0, |ms| i64::try_from(ms.max(1)).unwrap_or(i64::MAX));
        src.metrics.clob_response_ms.store(ms, Ordering::Relaxed);
        for (kind, message) in due(&o, &sch.thresholds) {
            if cooldowns.admit(kind, o.now_ms, cooldown_ms) {
                src.notifier.do_send(Event::Warning { code: kind.code(), message });
            }
        }
        // The per-target figures scan the journal on its writer thread: every fifth check is often
        // enough for a gauge, and keeps that scan off most of the writes' way.
        if checks.is_multiple_of(5) {
            publish_targets(&src).await;
        }
        checks += 1;
        src.metrics.warning_checks.fetch_add(1, Ordering::Relaxed);
    }
}

async fn bounded<T>(f: impl std::future::Future<Output = Option<T>>) -> Option<T> {
    tokio::time::timeout(SOURCE_WAIT, f).await.ok().flatten()
}

async fn observe(src: &Sources, sch: &Schedule) -> Observation {
    let t = &sch.thresholds;
    let targets = bounded(async { src.registry.send(ListTargets).await.ok() }).await;
    let last_fill = bounded(async { src.store.send(TargetActivity).await.ok()?.ok() }).await.flatten();
    let pnl = bounded(async { src.risk.send(GetPnlToday).await.ok() }).await;
    let breaker = bounded(async { src.risk.send(GetBreakerState).await.ok() }).await;
    let wins = if t.win_rate_min_pct > 0 && t.win_rate_window > 0 {
        bounded(async { src.store.send(RecentWins(t.win_rate_window)).await.ok()?.ok() }).await
    } else {
        None
    };
    let (clob_ms, offset_ms) = match &src.venue {
        Some(v) => clob_clock(v).await,
        None => (None, None),
    };
    let disk = if t.disk_min_free_mb > 0 { free_bytes(&src.journal_dir).await } else { None };
    let synchronised = if t.clock_max_offset_ms > 0 { ntp_synchronised().await } else { None };
    Observation {
        now_ms: now_ms(),
        targets_copying: targets.map_or(0, |ts| ts.iter().filter(|t| !t.paused).count()),
        last_fill_ms: last_fill,
        started_ms: sch.started_ms,
        pnl_today: pnl,
        daily_loss_limit: sch.daily_loss_limit,
        breaker_tripped: breaker.is_some_and(|b| b.tripped || b.reducing),
        clob_ms,
        disk_free_bytes: disk,
        clock: ClockReading { synchronised, offset_ms },
        wins,
    }
}

/// The CLOB's answer time and our clock against its own (which it gives in whole seconds: only
/// an offset beyond that second is counted).
async fn clob_clock(v: &Venue) -> (Option<u64>, Option<i64>) {
    let sent = now_ms();
    let t0 = Instant::now();
    let server_s = match tokio::time::timeout(SOURCE_WAIT, v.server_time()).await {
        Ok(Ok(s)) => s,
        // No answer within the wait is an answer time of at least the wait: slow, whatever else.
        Err(_) => return (u64::try_from(SOURCE_WAIT.as_millis()).ok(), None),
        Ok(Err(_)) => return (None, None),
    };
    let took = t0.elapsed();
    let mid = sent + i64::try_from(took.as_millis() / 2).unwrap_or(0);
    (u64::try_from(took.as_millis()).ok(), Some(clock_offset_ms(mid, server_s)))
}

/// Refreshes the per-target series of `/metrics` (labelled by the targets' labels).
async fn publish_targets(src: &Sources) {
    let (Some(targets), Some(quality)) = (
        bounded(async { src.registry.send(ListTargets).await.ok() }).await,
        bounded(async { src.store.send(crate::actors::store::GetTargetQuality(0)).await.ok()?.ok() }).await,
    ) else {
        return;
    };
    let rows = targets
        .iter()
        .map(|t| {
            let q = quality.get(&t.target.address).cloned().unwrap_or_default();
            (t.target.label.clone(), crate::domain::addr_lower(&t.target.address), q)
        })
        .collect();
    if let Ok(mut m) = src.metrics.targets.lock() {
        *m = rows;
    }
    let day_ago = crate::store::now_ms() - 86_400_000;
    if let Some(d) =
        bounded(async { src.store.send(crate::actors::store::GetDetectionStats(day_ago)).await.ok()?.ok() }).await
        && let Ok(mut m) = src.metrics.detection.lock()
    {
        *m = d;
    }
}

/// Our time less the CLOB's, where the CLOB's is `server_s` whole seconds (so anything inside
/// that second is no offset at all). Saturating: an absurd time from the server (a proxy's error
/// page read as a number) must say "far off", never panic the warnings' loop.
#[must_use]
pub fn clock_offset_ms(ours_ms: i64, server_s: i64) -> i64 {
    let lo = server_s.saturating_mul(1000);
    let hi = lo.saturating_add(999);
    if ours_ms < lo {
        ours_ms.saturating_sub(lo)
    } else if ours_ms > hi {
        ours_ms.saturating_sub(hi)
    } else {
        0
    }
}

/// Free bytes on the journal's file system (`df`, bounded: a dead mount must not hang the loop).
async fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let out = tokio::time::timeout(
        SOURCE_WAIT,
        tokio::process::Command::new("df").arg("-Pk").arg(dir).kill_on_drop(true).output(),
    )
    .await
    .ok()?
    .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kb = parse_df_available_kb(&text);
    if kb.is_none() {
        debug!(output = %text, "df gave no free space");
    }
    kb.map(|k| k.saturating_mul(1024))
}

/// The "Available" column of `df -Pk` output.
#[must_use]
pub fn parse_df_available_kb(text: &str) -> Option<u64> {
    text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()
}

/// Whether NTP keeps the clock synchronised, as systemd says (`None` off systemd).
async fn ntp_synchronised() -> Option<bool> {
    let out = tokio::time::timeout(
        SOURCE_WAIT,
        tokio::process::Command::new("timedatectl")
            .args(["show", "--property=NTPSynchronized", "--value"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    if !out.status.success() {
        return None;
    }
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_offset_counts_only_beyond_the_servers_second() {
        let far = [
            (0, i64::MAX, i64::MIN + 1),
            (0, i64::MIN, i64::MAX - 998),
            (i64::MAX, 0, i64::MAX - 999),
            (i64::MIN, 1 << 40, i64::MIN),
        ];
        let near = [(5_000, 5, 0), (5_999, 5, 0), (6_500, 5, 501), (3_000, 5, -2_000), (4_999, 5, -1)];
        // An absurd server time says "far off", never panics the warnings' loop.
        for (ours, server, want) in near.into_iter().chain(far) {
            assert_eq!(clock_offset_ms(ours, server), want, "{ours} vs {server}");
        }
    }

    #[test]
    fn df_output_is_read_or_unknown() {
        let ok = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 100 40 60 40% /\n";
        assert_eq!(parse_df_available_kb(ok), Some(60));
        assert_eq!(parse_df_available_kb("garbage"), None);
        assert_eq!(parse_df_available_kb(""), None);
    }
}
