//! systemd integration through the sd_notify protocol: `READY=1` once the daemon is set up (the
//! chain may still be unreachable), `WATCHDOG=1` while it is alive and trying, a status line, and
//! `STOPPING=1` on shutdown. Without
//! `NOTIFY_SOCKET` (not under systemd) every call is a no-op.

use std::time::Duration;

use actix::Addr;
use sd_notify::NotifyState;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::actors::risk_supervisor::{GetBreakerState, RiskSupervisor};
use crate::chain::FeedStatus;
use crate::store::now_ms;

/// Tells systemd the daemon is ready, with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd the daemon is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        warn!(cause = %e, "sd_notify failed");
    }
}

/// Feeds the systemd watchdog six times a period while the daemon is alive and trying: the actor
/// system answers and the chain feed attempted a read within `trying_within` (successful or not).
/// A chain outage does not stop the pings (a restart cannot fix a provider, and would only turn an
/// outage into a restart loop); it shows in `/health` and is alerted. A stuck loop does stop them.
/// At half the period, one check that failed in passing (the supervisor's mailbox busy for a
/// second during a backfill) left one late ping to make the deadline, a coin flip; at a sixth,
/// only a daemon stuck for most of the period misses it.
pub async fn watchdog(feed: watch::Receiver<FeedStatus>, risk: Addr<RiskSupervisor>, trying_within: Duration) {
    let Some(period) = sd_notify::watchdog_enabled() else { return };
    let mut tick = tokio::time::interval(period / 6);
    let window = i64::try_from(trying_within.as_millis()).unwrap_or(i64::MAX);
    loop {
        tick.tick().await;
        let since_attempt_ms = now_ms() - feed.borrow().attempt_ms;
        let feed_trying = since_attempt_ms <= window;
        // The supervisor answers at once (placements run beside it), so this probes its mailbox only.
        let actors_ok =
            matches!(tokio::time::timeout(Duration::from_secs(1), risk.send(GetBreakerState)).await, Ok(Ok(_)));
        if feed_trying && actors_ok {
            send(&[NotifyState::Watchdog]);
        } else {
            debug!(feed_trying, actors_ok, since_attempt_ms, "watchdog not fed");
        }
    }
}

/// Updates the status line systemd shows (`systemctl status`).
pub fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}
