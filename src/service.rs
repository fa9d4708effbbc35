//! systemd integration through the sd_notify protocol: `READY=1` once the chain feed is live,
//! `WATCHDOG=1` only while the daemon's loops are healthy, `STOPPING=1` on shutdown. Without
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

/// Feeds the systemd watchdog at half its period, but only while the chain feed made progress
/// within `stall` and the actor system answers: a stuck daemon gets restarted instead of lingering.
pub async fn watchdog(feed: watch::Receiver<FeedStatus>, risk: Addr<RiskSupervisor>, stall: Duration) {
    let Some(period) = sd_notify::watchdog_enabled() else { return };
    let mut tick = tokio::time::interval(period / 2);
    loop {
        tick.tick().await;
        let st = *feed.borrow();
        let stalled_ms = now_ms() - st.last_ok_ms;
        let feed_ok = st.live && stalled_ms <= i64::try_from(stall.as_millis()).unwrap_or(i64::MAX);
        // The supervisor answers at once (placements run beside it), so this probes its mailbox only.
        let actors_ok =
            matches!(tokio::time::timeout(Duration::from_secs(1), risk.send(GetBreakerState)).await, Ok(Ok(_)));
        if feed_ok && actors_ok {
            send(&[NotifyState::Watchdog]);
        } else {
            debug!(feed_ok, actors_ok, stalled_ms, "watchdog not fed");
        }
    }
}
