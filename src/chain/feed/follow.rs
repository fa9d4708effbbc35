//! The feed's outer loop: connect, subscribe, sync on every wake; on errors back off (capped,
//! doubling) and fail over between endpoints, so that no failure becomes a tight loop.

use std::time::Duration;

use alloy::pubsub::SubscriptionStream;
use alloy::rpc::types::{Header, Log};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::ChainFeed;
use crate::actors::notifier::Event;
use crate::actors::risk_supervisor::SetTrading;
use crate::chain::rpc::ChainError;

/// The first wait after a failure, and the wait again after a success.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// Whether the current outage was alerted (so it is alerted once, and its end announced).
#[derive(Debug, Default)]
struct Outage {
    alerted: bool,
    /// A failover for a head that stopped moving was told: the next ones of this outage are not.
    stuck_told: bool,
    /// When its first failed attempt was, unix ms (0: none). Kept here, not read back from the
    /// published status, which a range journaled meanwhile clears for `/health`.
    since_ms: i64,
}

/// How long to wait before the next attempt, and the outage being lived through.
struct Retry {
    /// The next wait.
    backoff: Duration,
    /// The cap it doubles up to.
    max: Duration,
    /// The outage this failure belongs to.
    outage: Outage,
}

impl Retry {
    /// Sleeps the current backoff, then doubles it up to the cap; true when the daemon stops first.
    async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        if sleep_or_shutdown(self.backoff, shutdown).await {
            return true;
        }
        self.backoff = (self.backoff * 2).min(self.max);
        false
    }
}

/// Over websocket, new heads and the targets' logs (none over HTTP: the feed polls).
#[derive(Default)]
struct Subscriptions {
    /// New heads.
    heads: Option<SubscriptionStream<Header>>,
    /// The targets' fills (none when no target is watched).
    logs: Option<SubscriptionStream<Log>>,
}

/// What ended a connection's sync loop.
#[derive(Debug, PartialEq, Eq)]
enum Followed {
    /// Connect (and subscribe) again.
    Reconnect,
    /// The daemon is stopping.
    Stopped,
}

/// What woke the feed between two syncs.
enum Wake {
    /// Time, a new head or a target's log: sync.
    Sync,
    /// A subscription ended or the target list changed: subscribe again.
    Reconnect,
    /// The daemon is stopping.
    Stop,
}

impl ChainFeed {
    /// Runs until `shutdown` is cancelled: connect, sync, wait for the next head, repeat; on errors
    /// reconnect with capped exponential backoff and fail over between endpoints.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let now = crate::store::now_ms();
        self.status.send_modify(|s| {
            s.started_ms = now;
            s.attempt_ms = now;
        });
        let mut retry = Retry { backoff: FIRST_BACKOFF, max: self.cfg.backoff_max, outage: Outage::default() };
        while !shutdown.is_cancelled() {
            let connected = self.rpc.is_connected() || self.connect(&mut retry.outage).await;
            let subscribed = if connected { self.subscriptions(&mut retry.outage).await } else { None };
            let Some(mut subs) = subscribed else {
                if retry.wait(&shutdown).await {
                    break;
                }
                continue;
            };
            if self.follow(&mut subs, &mut retry, &shutdown).await == Followed::Stopped {
                return;
            }
        }
    }

    /// Connects to the current endpoint; false (reported, and failed over) when it cannot.
    async fn connect(&mut self, outage: &mut Outage) -> bool {
        if let Err(e) = self.rpc.connect().await {
            warn!(endpoint = %self.rpc.endpoint(), cause = %e, "cannot connect to the chain: check POLYGON_RPC_URL / POLYGON_WS_URL and the network");
            self.attempt_failed(&e, outage);
            if self.rpc.fail() {
                self.notifier.do_send(Event::Error { message: format!("failing over to {}", self.rpc.endpoint()) });
            }
            return false;
        }
        self.connected();
        true
    }

    /// Over websocket, subscribes to new heads and the targets' logs: both wake a sync at once, and
    /// a log the node marks `removed` makes that sync find the reorg by hash. `None` when a
    /// subscription is refused: the connection is dropped and made again after the backoff (a node
    /// that accepts connections but refuses subscriptions must not cause a tight loop).
    async fn subscriptions(&mut self, outage: &mut Outage) -> Option<Subscriptions> {
        if !self.rpc.is_ws() {
            return Some(Subscriptions::default());
        }
        let current = self.targets.borrow_and_update().clone();
        let targets = self.watched(current);
        let heads = self.rpc.subscribe_heads().await.map(|s| s.into_stream());
        let logs = if targets.is_empty() {
            // An empty topic list would match every maker: subscribe to nothing instead.
            Ok(None)
        } else {
            self.rpc.subscribe_logs(&self.filter(&targets)).await.map(|s| Some(s.into_stream()))
        };
        match (heads, logs) {
            (Ok(heads), Ok(logs)) => Some(Subscriptions { heads: Some(heads), logs }),
            (Err(e), _) | (_, Err(e)) => {
                warn!(cause = %e, "subscription failed; reconnecting");
                self.attempt_failed(&e, outage);
                self.rpc.fail();
                None
            }
        }
    }

    /// Syncs on every wake until the connection must be made again or the daemon stops.
    async fn follow(&mut self, subs: &mut Subscriptions, retry: &mut Retry, shutdown: &CancellationToken) -> Followed {
        let mut moved: u64 = 0;
        loop {
            // A stop ends a sync between two awaits: a long backfill would otherwise go on
            // journaling and handing on fills (orders sent after the copier's flush) until the
            // shutdown gave up waiting for it. What is journaled is handed on at the next start.
            let synced = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Followed::Stopped,
                r = self.sync() => r,
            };
            match synced {
                Ok(()) => {
                    moved = 0;
                    self.rpc.ok();
                    retry.backoff = FIRST_BACKOFF;
                    self.attempt_succeeded(&mut retry.outage);
                }
                // Twenty in a row: the endpoint is failing (the arm below fails over and reconnects).
                // A block the node just named and then did not have is a backend behind a load
                // balancer lagging another, as a moved chain is: read again, not failed over.
                Err(e @ (ChainError::ChainMoved { .. } | ChainError::MissingBlock(_))) if moved < 20 => {
                    debug!(cause = %e, "chain moved during a read, or a backend lags; reading again");
                    moved += 1;
                    // Behind a load balancer whose nodes disagree every read can say "moved":
                    // after a few in a row, a pause growing to 2 s, never a tight loop.
                    if moved > 3 {
                        let pause = std::time::Duration::from_millis(100 * moved.min(20));
                        tokio::select! {
                            () = shutdown.cancelled() => return Followed::Stopped,
                            () = tokio::time::sleep(pause) => {}
                        }
                    }
                    continue;
                }
                Err(ChainError::Store(e)) => {
                    // The chain is fine; the journal is not. Nothing can be copied safely.
                    self.halt.do_send(SetTrading {
                        halt: true,
                        code: "database_error",
                        reason: format!("journal write failed: {e}"),
                        by: "daemon".into(),
                    });
                    self.checkpoint = None; // re-read it from the journal when it recovers
                    if retry.wait(shutdown).await {
                        return Followed::Stopped;
                    }
                }
                Err(e) => {
                    warn!(endpoint = %self.rpc.endpoint(), cause = %e, "chain sync failed; reconnecting (check POLYGON_RPC_URL if it persists)");
                    self.attempt_failed(&e, &mut retry.outage);
                    // A head that stopped moving is told at its first failover: when the whole chain
                    // halts every endpoint has it, and each failover would be another alert.
                    let stuck = matches!(e, ChainError::HeadStuck { .. });
                    if self.rpc.fail() && !(stuck && std::mem::replace(&mut retry.outage.stuck_told, true)) {
                        self.notifier.do_send(Event::Error {
                            message: format!("chain endpoint failing; now using {}", self.rpc.endpoint()),
                        });
                    }
                    if retry.wait(shutdown).await {
                        return Followed::Stopped;
                    }
                    return Followed::Reconnect;
                }
            }
            let wake = match self.next_wake(subs, shutdown).await {
                Wake::Sync => self.drain_ready(subs),
                other => other,
            };
            match wake {
                Wake::Sync => {}
                Wake::Reconnect => return Followed::Reconnect,
                Wake::Stop => return Followed::Stopped,
            }
        }
    }

    /// Waits for the poll interval, a new head, a target's log or a change of targets.
    async fn next_wake(&mut self, subs: &mut Subscriptions, shutdown: &CancellationToken) -> Wake {
        let poll = tokio::time::sleep(self.cfg.poll_interval);
        tokio::select! {
            () = shutdown.cancelled() => Wake::Stop,
            () = poll => Wake::Sync,
            // Over websocket the new list needs a new log subscription; over HTTP the next sync reads it.
            _ = self.targets.changed() => if subs.heads.is_some() { Wake::Reconnect } else { Wake::Sync },
            h = next_or_pending(subs.heads.as_mut()) => {
                if h.is_some() {
                    return Wake::Sync;
                }
                warn!("head subscription ended; reconnecting");
                self.rpc.fail();
                Wake::Reconnect
            }
            l = next_or_pending(subs.logs.as_mut()) => match l {
                None => {
                    warn!("log subscription ended; reconnecting");
                    self.rpc.fail();
                    Wake::Reconnect
                }
                Some(log) if log.removed => {
                    warn!(tx = ?log.transaction_hash, block = ?log.block_number, "node reported a removed log; checking for a reorg");
                    Wake::Sync
                }
                Some(_) => Wake::Sync,
            },
        }
    }

    /// Takes what already waits on the subscriptions: the sync about to run reads it all. A busy
    /// target's block brings many logs at once, and each one left there would wake a sync of its
    /// own, every one paced at the node. A subscription that ended asks for a reconnect.
    fn drain_ready(&mut self, subs: &mut Subscriptions) -> Wake {
        use futures_util::FutureExt as _;
        // Bounded: a stream that never runs dry must not hold the sync back.
        for _ in 0..1_024 {
            let head = subs.heads.as_mut().and_then(|h| h.next().now_or_never());
            let log = subs.logs.as_mut().and_then(|l| l.next().now_or_never());
            match (head, log) {
                (Some(None), _) | (_, Some(None)) => {
                    warn!("a subscription ended; reconnecting");
                    self.rpc.fail();
                    return Wake::Reconnect;
                }
                (None, None) => break,
                (_, Some(Some(log))) if log.removed => {
                    warn!(tx = ?log.transaction_hash, block = ?log.block_number, "node reported a removed log; checking for a reorg");
                }
                _ => {}
            }
        }
        Wake::Sync
    }

    /// Publishes a failed attempt; an outage longer than the stall threshold is alerted once.
    fn attempt_failed(&mut self, e: &ChainError, outage: &mut Outage) {
        let now = crate::store::now_ms();
        let cause = e.to_string();
        if outage.since_ms == 0 {
            outage.since_ms = now;
        }
        let since = outage.since_ms;
        self.status.send_modify(|s| {
            s.attempt_ms = now;
            if s.failing_since_ms == 0 {
                s.failing_since_ms = now;
            }
            s.last_error = Some(cause.clone());
        });
        let stall_ms = i64::try_from(self.cfg.stall.as_millis()).unwrap_or(i64::MAX);
        if !outage.alerted && now - since >= stall_ms {
            outage.alerted = true;
            self.notifier.do_send(Event::Error {
                message: format!(
                    "the chain has not answered for {} s ({cause}); nothing can be copied until it does. \
                     Check POLYGON_RPC_URL and the provider",
                    (now - since) / 1000
                ),
            });
        }
    }

    /// Publishes a successful attempt; the end of an alerted outage is announced.
    fn attempt_succeeded(&mut self, outage: &mut Outage) {
        let now = crate::store::now_ms();
        let since = std::mem::take(&mut outage.since_ms);
        outage.stuck_told = false;
        self.status.send_modify(|s| {
            s.attempt_ms = now;
            s.failing_since_ms = 0;
            s.last_error = None;
        });
        if std::mem::take(&mut outage.alerted) {
            self.notifier.do_send(Event::Error {
                message: format!(
                    "the chain answers again after {} s without it; copying resumed",
                    (now - since) / 1000
                ),
            });
        }
    }
}

/// The next item of an optional stream; pending forever when there is no stream.
async fn next_or_pending<S: futures_util::Stream + Unpin>(s: Option<&mut S>) -> Option<S::Item> {
    match s {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// Sleeps for `d`; returns true if shutdown was requested meanwhile.
async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(d) => shutdown.is_cancelled(),
    }
}
