//! Background tasks end on one cancellation token. The daemon's root token is cancelled last at
//! shutdown (after the feed stopped, copies finished and Telegram drained), so no probe, ticker,
//! server or poll loop outlives the stop; phases that must stop earlier (the feed, the watchdog
//! pings) run on child tokens cancelled first.

use std::future::Future;

use tokio_util::sync::CancellationToken;

/// Spawns `task` on the current arbiter; it ends when it returns or when `stop` is cancelled.
pub fn spawn_until(stop: &CancellationToken, task: impl Future<Output = ()> + 'static) {
    let stop = stop.clone();
    actix::spawn(async move {
        // The stop first: a task cancelled and woken in the same turn must not run once more.
        tokio::select! {
            biased;
            () = stop.cancelled() => {}
            () = task => {}
        }
    });
}
