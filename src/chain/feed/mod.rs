//! The chain feed: one `eth_getLogs` filter for all targets (maker topic only), backfill from the
//! checkpoint in bounded ranges, then follow the head (websocket heads or polling), with reorgs
//! detected by block hash and failover between endpoints.
//!
//! Exactly-once starts here: the fills of a range and the new checkpoint are journaled in one
//! transaction *before* anything is dispatched, so a crash can neither skip nor repeat a range.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::{Addr, Recipient};
use alloy::primitives::{Address, B256};
use alloy::rpc::types::Filter;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::actors::notifier::{Event, Notifier};
use crate::actors::risk_supervisor::SetTrading;
use crate::actors::store::{self as store_msgs, Request, Writer};
use crate::actors::watcher::NewFills;
use crate::chain::history::fills_filter;
use crate::chain::range::{MAX_SHRINKS, RangeRead, RangeReader, Span};
use crate::chain::rpc::{BlockRef, ChainError, Rpc};
use crate::domain::TargetFill;

mod follow;
mod head;
mod own;

pub use own::{OwnBooked, OwnChange, OwnFill};

/// How far below the oldest block remembered a reorg deeper than all of them restarts the read.
const BELOW_THE_REMEMBERED: u64 = 128;

/// What the feed needs to know.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// Watched exchange contracts.
    pub exchanges: Vec<Address>,
    /// Blocks of burial before acting.
    pub confirmations: u64,
    /// First block when there is no checkpoint (0 = head).
    pub start_block: u64,
    /// Largest range per `eth_getLogs`.
    pub max_block_range: u64,
    /// Poll period (and safety poll under websocket).
    pub poll_interval: Duration,
    /// Longest reconnect backoff.
    pub backoff_max: Duration,
    /// Our own funder (live): its fills confirm our orders on chain instead of being copied.
    pub own: Option<Address>,
    /// An outage this long is alerted (the health check's `feed_stall_s`).
    pub stall: Duration,
    /// A head unchanged this long is a stuck endpoint (zero: never).
    pub head_stall: Duration,
}

/// The feed's progress, published for status and health.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedStatus {
    /// Latest head seen.
    pub head: u64,
    /// Last fully processed block.
    pub processed: u64,
    /// True once the first sync round completed.
    pub live: bool,
    /// Reconnections so far.
    pub reconnects: u64,
    /// When a sync round last succeeded, unix ms (0: never).
    pub last_ok_ms: i64,
    /// When the feed started, unix ms.
    pub started_ms: i64,
    /// When the feed last tried the chain, successfully or not, unix ms: "alive and trying".
    pub attempt_ms: i64,
    /// Since when every attempt has failed, unix ms (0: the last attempt succeeded).
    pub failing_since_ms: i64,
    /// Why the last attempt failed (endpoint redacted, every cause kept).
    pub last_error: Option<String>,
    /// Since when the feed has waited for the copier to take its last batch, unix ms (0: not
    /// waiting): the copies are at their bound, and the chain is not read meanwhile.
    pub copier_wait_since_ms: i64,
    /// The time of the newest block journaled, unix s (0: none yet): how far behind the chain an
    /// endpoint that lags, but moves, keeps us.
    pub read_through_s: u64,
}

/// The actors the feed talks to.
#[derive(Debug, Clone)]
pub struct FeedPeers {
    /// The journal's writer.
    pub writer: Writer,
    /// Where new fills go (the registry).
    pub sink: Recipient<NewFills>,
    /// Where events go.
    pub notifier: Addr<Notifier>,
    /// Where a journal failure is escalated: it trips the breaker.
    pub halt: Recipient<SetTrading>,
    /// Counters.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Where orders booked from our own fills are announced (live: the risk supervisor's book).
    pub own_fills: Option<Recipient<OwnBooked>>,
    /// Told how far the chain is journaled (our own fills included).
    pub clock: crate::chain::ChainClock,
}

/// How long the start may look for the common ancestor of a reorg it found before recovery
/// ([`ChainFeed::check_before_recovery`]); each call has its own timeout as well.
const REWIND_WITHIN: Duration = Duration::from_secs(30);

/// The feed task's state.
pub struct ChainFeed {
    cfg: FeedConfig,
    rpc: Rpc,
    writer: Writer,
    sink: Recipient<NewFills>,
    notifier: Addr<Notifier>,
    halt: Recipient<SetTrading>,
    own_fills: Option<Recipient<OwnBooked>>,
    clock: crate::chain::ChainClock,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    targets: watch::Receiver<Vec<Address>>,
    status: watch::Sender<FeedStatus>,
    checkpoint: Option<(u64, B256)>,
    span: Span,
    /// The head last seen, and since when it has been that block.
    head_seen: Option<(u64, std::time::Instant)>,
}

impl std::fmt::Debug for ChainFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainFeed")
            .field("rpc", &self.rpc)
            .field("checkpoint", &self.checkpoint)
            .finish_non_exhaustive()
    }
}

/// Runs `r` on the journal's writer thread. Straight, not through the store actor's mailbox: a
/// poll's fills are handed on as soon as the feed has the answer, and each fill's latency is
/// counted from the commit.
async fn ask<R: Request>(writer: &Writer, r: R) -> Result<R::Out, ChainError> {
    writer.ask(r).await.map_err(ChainError::from)
}

impl ChainFeed {
    /// A feed over `rpc`, journaling into `store` and dispatching to `sink`.
    #[must_use]
    pub fn new(
        cfg: FeedConfig,
        rpc: Rpc,
        peers: FeedPeers,
        targets: watch::Receiver<Vec<Address>>,
        status: watch::Sender<FeedStatus>,
    ) -> Self {
        let FeedPeers { writer, sink, notifier, halt, metrics, own_fills, clock } = peers;
        let span = Span::new(cfg.max_block_range);
        Self {
            cfg,
            rpc,
            writer,
            sink,
            notifier,
            halt,
            metrics,
            own_fills,
            clock,
            targets,
            status,
            checkpoint: None,
            span,
            head_seen: None,
        }
    }

    /// One round: check for a reorg, then journal and dispatch every block up to the safe head.
    async fn sync(&mut self) -> Result<(), ChainError> {
        let mut span = self.span;
        let done = self.sync_ranges(&mut span).await;
        self.span = span;
        done
    }

    /// [`Self::sync`], reading each range while the one before it is journaled; `span` learns from
    /// every read.
    async fn sync_ranges(&mut self, span: &mut Span) -> Result<(), ChainError> {
        let head = self.rpc.block_number().await?;
        self.head_seen = Some(
            head::head_moves(self.head_seen, head, std::time::Instant::now(), self.cfg.head_stall)
                .map_err(|for_s| ChainError::HeadStuck { endpoint: self.rpc.endpoint().to_string(), head, for_s })?,
        );
        // Published at once: until this round has read up to it, the feed is behind this head
        // (sightings wait for their blocks meanwhile, see crate::chain::mempool::in_order).
        self.status.send_modify(|s| s.head = s.head.max(head));
        let safe = head.saturating_sub(self.cfg.confirmations);
        let mut cp = self.start_point(safe).await?;
        // The target list is read again for every range: a target added during a long backfill
        // is watched from the next range on.
        let reader = RangeReader {
            rpc: &self.rpc,
            exchanges: &self.cfg.exchanges,
            own: self.cfg.own,
            notifier: &self.notifier,
            head,
            confirmations: self.cfg.confirmations,
        };
        let next_range = |after: u64, span: Span| (after < safe).then(|| (after + 1, safe.min(after + span.blocks())));
        *span = span.for_sync();
        let mut shrinks = 0;
        // A range read ahead while the one before it was journaled; none: read from `cp`.
        let mut read = None;
        loop {
            let result = match read.take() {
                Some(result) => result,
                None => match next_range(cp.0, *span) {
                    Some((from, to)) => reader.read(self.watched_now(), from, to, cp.1).await,
                    None => break,
                },
            };
            let this = match result {
                Ok(this) => this,
                // Everything before the refused range is journaled: it is read again from `cp`, smaller.
                Err(ChainError::LogsRefused { from, to, cause }) if to > from && shrinks < MAX_SHRINKS => {
                    shrinks += 1;
                    *span = span.after_refusal(to - from + 1);
                    if matches!(*cause, ChainError::Timeout { .. }) {
                        // Too slow for the range, not a refusal: each retry would wait a whole
                        // timeout. The next sync, after the usual backoff, reads half of it.
                        return Err(*cause);
                    }
                    warn!(from, to, blocks = span.blocks(), cause = %cause, "the node refused a range of logs; reading smaller ranges");
                    continue;
                }
                Err(e) => return Err(e),
            };
            *span = span.after_read(this.to - this.from + 1, this.logs);
            let (to, parent, end_ts) = (this.to, this.end.hash, this.end.timestamp);
            // The next range is read while this one is journaled: both only borrow the feed, and
            // the checkpoint moves in `cp` as each part commits.
            let journal = self.journal_range(this, &mut cp);
            let (journaled, next) = match next_range(to, *span) {
                Some((from, next_to)) => {
                    let next = reader.read(self.watched_now(), from, next_to, parent);
                    let (j, n) = tokio::join!(journal, next);
                    (j, Some(n))
                }
                None => (journal.await, None),
            };
            self.checkpoint = Some(cp);
            journaled?;
            self.clock.advance(end_ts);
            self.publish_progress(head, to, false);
            read = next;
        }
        self.publish_progress(head, cp.0, true);
        Ok(())
    }

    /// Before recovery at a start: a reorg while the daemon was down that took away blocks under
    /// the checkpoint (any such reorg changes the checkpoint's own hash) is found and rewound now,
    /// so recovery sees the fills it took away as suspects (an unsent copy of one is taken back, a
    /// sent one waits for the rescan) instead of sending copies of trades that may be gone. Best
    /// effort within `within`: an endpoint that does not answer leaves it to the feed, as before.
    ///
    /// Each endpoint is asked in turn, with its share of `within`; once one says the checkpoint's
    /// block changed, the common ancestor is looked for within `REWIND_WITHIN` (each call has its own
    /// timeout), and the rewind itself, in the local journal, is never cut half-way. The feed then
    /// starts on the endpoint it would have started on.
    pub async fn check_before_recovery(&mut self, within: Duration) {
        let cp = match ask(&self.writer, store_msgs::GetCheckpoint).await {
            Ok(Some(cp)) => cp,
            Ok(None) => return,
            Err(e) => return warn!(cause = %e, "the checkpoint could not be read before recovery"),
        };
        let count = self.rpc.endpoint_count().max(1);
        let until = tokio::time::Instant::now() + within;
        let mut moved = 0;
        let mut changed = None;
        for k in 0..count {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            let share = left / u32::try_from(count - k).unwrap_or(1);
            match tokio::time::timeout(share, self.checkpoint_on_chain(cp)).await {
                Ok(Ok(same)) => {
                    changed = Some(!same);
                    break;
                }
                Ok(Err(e)) => {
                    warn!(endpoint = %self.rpc.endpoint(), cause = %e, "the checkpoint could not be checked before recovery")
                }
                Err(_) => warn!(endpoint = %self.rpc.endpoint(), "the chain did not answer in time before recovery"),
            }
            if k + 1 < count && self.rpc.next_endpoint() {
                moved += 1;
            }
        }
        if changed == Some(true) {
            self.rewind_before_recovery(cp).await;
        } else if changed.is_none() {
            warn!("recovery runs without the checkpoint checked against the chain: the feed checks it once it runs");
        }
        // Back to the endpoint the feed starts on (a slow first answer is no failure of it).
        for _ in 0..(count - moved) % count {
            self.rpc.next_endpoint();
        }
    }

    /// True when the checkpoint's block is on the chain as we journaled it. A node that has not
    /// reached it cannot say: an error.
    async fn checkpoint_on_chain(&mut self, cp: (u64, B256)) -> Result<bool, ChainError> {
        if !self.rpc.is_connected() {
            self.rpc.connect().await?;
            self.connected();
        }
        match self.rpc.block(cp.0).await? {
            Some(b) => Ok(b.hash == cp.1),
            None => {
                warn!(endpoint = %self.rpc.endpoint(), block = cp.0, "the node has not reached our checkpoint yet");
                Err(ChainError::ChainMoved { from: cp.0, to: cp.0 })
            }
        }
    }

    /// Rewinds to the common ancestor of a reorg found before recovery.
    async fn rewind_before_recovery(&mut self, cp: (u64, B256)) {
        let ancestor = match tokio::time::timeout(REWIND_WITHIN, self.find_ancestor(cp)).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                return warn!(cause = %e, "a reorg found before recovery: its ancestor could not be read; the feed finds it again");
            }
            Err(_) => {
                return warn!(
                    "a reorg found before recovery: its ancestor was not found in time; the feed finds it again"
                );
            }
        };
        if let Err(e) = self.rewind_to(cp, ancestor).await {
            warn!(cause = %e, "a reorg found before recovery could not be rewound: the feed finds it again");
        }
    }

    /// Says which endpoint the feed is connected to, and counts the connection.
    fn connected(&self) {
        if self.rpc.is_ws() {
            info!(endpoint = %self.rpc.endpoint(), ws = true, "connected to the chain");
        } else {
            info!(endpoint = %self.rpc.endpoint(), ws = false, "using chain endpoint (HTTP polling)");
        }
        self.status.send_modify(|s| s.reconnects = self.rpc.connects.saturating_sub(1));
    }

    /// Where a sync starts: the checkpoint (the first one below `safe` on a new journal), or, when
    /// its block is no longer on the chain, the common ancestor a reorg left.
    async fn start_point(&mut self, safe: u64) -> Result<(u64, B256), ChainError> {
        let cp = match self.checkpoint {
            Some(cp) => cp,
            None => self.initial_checkpoint(safe).await?,
        };
        match self.rpc.block(cp.0).await? {
            Some(b) if b.hash == cp.1 => Ok(cp),
            Some(_) => self.handle_reorg(cp).await,
            // The node has not reached our checkpoint: a lagging endpoint (or a backend of a load
            // balancer behind the others), read again after a short pause; or a reorg to a shorter
            // chain, which a block we remember below its head tells apart at once (else nothing
            // would be noticed until the new chain grew past the checkpoint).
            None if self.shorter_chain(safe.saturating_add(self.cfg.confirmations)).await? => {
                self.handle_reorg(cp).await
            }
            None => Err(ChainError::ChainMoved { from: cp.0, to: safe.max(cp.0) }),
        }
    }

    /// Whether the newest block we remember at or below `head` is no longer on the chain.
    async fn shorter_chain(&self, head: u64) -> Result<bool, ChainError> {
        let recent = ask(&self.writer, store_msgs::RecentBlocks).await?;
        let Some((n, h)) = recent.iter().find(|(n, _)| *n <= head) else { return Ok(false) };
        Ok(self.rpc.block(*n).await?.is_some_and(|b| b.hash != *h))
    }

    /// Publishes how far the feed has journaled the chain (`done`: caught up with the head).
    fn publish_progress(&self, head: u64, processed: u64, done: bool) {
        let read_through_s = self.clock.read_through_s();
        self.status.send_modify(|s| {
            s.head = head;
            s.processed = processed;
            s.read_through_s = read_through_s;
            if done {
                s.live = true;
                s.last_ok_ms = crate::store::now_ms();
            } else {
                s.attempt_ms = crate::store::now_ms();
            }
            // A range journaled is a success: a timeout earlier in a long backfill (answered by
            // reading half the range) must not read as "failing since the start" until it ends.
            s.failing_since_ms = 0;
            s.last_error = None;
        });
    }

    /// Journals a range read and hands its new fills on, in parts; `cp` follows each committed part.
    async fn journal_range(&self, read: RangeRead, cp: &mut (u64, B256)) -> Result<(), ChainError> {
        let RangeRead { from, to, end, fills, ours, .. } = read;
        // Idempotent, and before the checkpoint moves: a failure re-reads the range.
        let any_ours = !ours.is_empty();
        self.settle_own(ours).await?;
        if any_ours {
            crate::fault::abort_at("abort_after_own_fills");
        }
        // A long range is journaled in parts, each handed on as soon as it is journaled.
        let parts = crate::chain::parts::split_at_blocks(fills);
        let n_parts = parts.len();
        for (k, part) in parts.into_iter().enumerate() {
            let last = k + 1 == n_parts;
            let part_to = match part.last() {
                Some(f) if !last => (f.block_number, f.block_hash),
                _ => (to, end.hash),
            };
            let blocks: Vec<(u64, B256)> =
                part.iter().map(|f| (f.block_number, f.block_hash)).collect::<BTreeMap<_, _>>().into_iter().collect();
            let n_fills = part.len();
            let write = store_msgs::JournalRange { fills: part, to: part_to, blocks, sweep: last };
            let outcome = ask(&self.writer, write).await?;
            *cp = part_to;
            if n_fills > 0 {
                debug!(from, to = part_to.0, fills = n_fills, new = outcome.to_copy.len(), "journaled range");
            }
            self.hand_on(outcome).await;
        }
        Ok(())
    }

    /// Reports what a journal write found and hands its new fills to the registry.
    async fn hand_on(&self, outcome: crate::store::JournalOutcome) {
        for f in outcome.withdrawn {
            self.notifier.do_send(Event::Withdrawn { fill: f });
        }
        for f in outcome.reorged_after_copy {
            self.notifier.do_send(Event::ReorgedAfterCopy { fill: f });
        }
        for f in outcome.unchecked {
            let message = format!(
                "a reorg put in doubt the trade of {} in block {} (tx {}) that we copied, but that wallet is no longer \
                 watched, so the chain was not checked for it again: our copy stands as booked (check it, or watch the \
                 wallet again)",
                f.wallet, f.block_number, f.id.tx_hash
            );
            warn!("{message}");
            self.notifier.do_send(Event::Alert { message });
        }
        let mut unorphaned: BTreeMap<B256, Vec<TargetFill>> = BTreeMap::new();
        for f in outcome.unorphaned {
            unorphaned.entry(f.id.tx_hash).or_default().push(f);
        }
        for (tx, fills) in unorphaned {
            self.notifier.do_send(Event::Unorphaned { tx, fills });
        }
        if !outcome.to_copy.is_empty() {
            self.metrics.fills_seen.fetch_add(outcome.to_copy.len() as u64, std::sync::atomic::Ordering::Relaxed);
            // Awaited, not fired: the feed reads no further range until the registry has taken
            // these (back-pressure; they are journaled, so a registry gone is recovered at start).
            let send = self.sink.send(NewFills(outcome.to_copy));
            if let Err(e) = self.wait_for_copier(send).await {
                warn!(cause = %e, "fills journaled but not handed on; they are copied at the next start");
            }
        }
    }

    /// Waits for the registry to take a batch. Past a second the copies are at their bound (see
    /// `crate::actors::copier::admission`): the feed says it is alive and waiting, every second,
    /// so the watchdog and `/health` do not take a copier catching up for a dead chain feed.
    async fn wait_for_copier<F: std::future::Future>(&self, send: F) -> F::Output {
        const BEAT: Duration = Duration::from_secs(1);
        tokio::pin!(send);
        if let Ok(out) = tokio::time::timeout(BEAT, &mut send).await {
            return out;
        }
        let since = crate::store::now_ms() - 1_000;
        let mut beat = tokio::time::interval(BEAT);
        let out = loop {
            tokio::select! {
                out = &mut send => break out,
                _ = beat.tick() => self.status.send_modify(|s| {
                    s.attempt_ms = crate::store::now_ms();
                    s.copier_wait_since_ms = since;
                }),
            }
        };
        self.status.send_modify(|s| s.copier_wait_since_ms = 0);
        out
    }

    async fn initial_checkpoint(&mut self, safe: u64) -> Result<(u64, B256), ChainError> {
        if let Some(cp) = ask(&self.writer, store_msgs::GetCheckpoint).await? {
            // After a journal write failed mid-range (own fills committed, the range's fills not),
            // the fills of ours above the checkpoint may be of blocks a reorg has since replaced:
            // read again with their range, never kept on a transaction no longer on the chain.
            let (forgotten, fees) = ask(&self.writer, store_msgs::ForgetOwnFillsAboveCheckpoint).await?;
            if let Some(r) = &self.own_fills {
                // Booked in today's P&L already: given back until the fills are read again.
                for fee in fees {
                    r.do_send(OwnBooked { order_id: fee.order_id.clone(), change: OwnChange::FeeForgotten(fee) });
                }
            }
            if forgotten > 0 {
                info!(forgotten, "our fills on chain journaled above the checkpoint wait to be read again");
            }
            info!(block = cp.0, "resuming from the stored checkpoint");
            self.checkpoint = Some(cp);
            return Ok(cp);
        }
        let start = if self.cfg.start_block > 0 { self.cfg.start_block - 1 } else { safe };
        let b = self.rpc.block_required(start).await?;
        info!(block = start, "no checkpoint yet: starting after block {start} (history is not copied)");
        ask(
            &self.writer,
            store_msgs::JournalRange { fills: Vec::new(), to: (start, b.hash), blocks: Vec::new(), sweep: true },
        )
        .await?;
        self.checkpoint = Some((start, b.hash));
        Ok((start, b.hash))
    }

    /// Finds the newest stored block still on the chain, rewinds the journal to it, and reports.
    async fn handle_reorg(&mut self, cp: (u64, B256)) -> Result<(u64, B256), ChainError> {
        let ancestor = self.find_ancestor(cp).await?;
        self.rewind_to(cp, ancestor).await
    }

    /// The newest stored block at or below `cp` still on the chain (just below the oldest one we
    /// know when the reorg is deeper than that).
    async fn find_ancestor(&mut self, cp: (u64, B256)) -> Result<(u64, B256), ChainError> {
        let recent = ask(&self.writer, store_msgs::RecentBlocks).await?;
        let mut ancestor = None;
        // Blocks above a shorter chain's head are missing; once one below is found, a missing
        // block means the node is not a chain to walk back on.
        let mut found_one = false;
        for (n, h) in recent.iter().filter(|(n, _)| *n <= cp.0) {
            match self.rpc.block(*n).await? {
                Some(b) if b.hash == *h => {
                    ancestor = Some((*n, *h));
                    break;
                }
                Some(_) => found_one = true,
                None if !found_one => {}
                // A node that lacks a block below one it just had is not a chain to walk back on:
                // read again shortly, as when the chain moves under a read.
                None => return Err(ChainError::ChainMoved { from: *n, to: cp.0 }),
            }
        }
        Ok(match ancestor {
            Some(a) => a,
            None => {
                // Deeper than anything we remember: restart just below the oldest block we know.
                // The fork is somewhere below it, and what the replaced blocks under it held is
                // not known: said, never silent.
                // A margin below it: the fork may be deeper, and re-reading blocks costs little.
                let oldest = recent.last().map_or(cp.0, |(n, _)| *n).saturating_sub(BELOW_THE_REMEMBERED);
                let b: BlockRef = self.rpc.block_required(oldest).await?;
                let message = format!(
                    "a chain reorganisation reaches below the {} blocks remembered (down to block {oldest} at least): \
                     fills replaced below it are not known to have been seen. Run `polycopy reconcile` and check the \
                     targets' recent trades",
                    recent.len()
                );
                error!("{message}");
                self.notifier.do_send(Event::Error { message });
                (oldest, b.hash)
            }
        })
    }

    /// Rewinds the journal from `cp` to `ancestor`, and reports.
    async fn rewind_to(&mut self, cp: (u64, B256), ancestor: (u64, B256)) -> Result<(u64, B256), ChainError> {
        let rewound = ask(&self.writer, store_msgs::Rewind(ancestor)).await?;
        let suspects = rewound.suspects;
        if let Some(r) = &self.own_fills {
            for fee in rewound.fees_forgotten {
                r.do_send(OwnBooked { order_id: fee.order_id.clone(), change: OwnChange::FeeForgotten(fee) });
            }
        }
        warn!(from = cp.0, ancestor = ancestor.0, suspects, "reorg detected; rescanning from the common ancestor");
        self.notifier.do_send(Event::Reorg { depth: cp.0 - ancestor.0, ancestor: ancestor.0, suspects });
        self.checkpoint = Some(ancestor);
        Ok(ancestor)
    }

    /// `OrderFilled` logs of the watched exchanges whose maker (topic 2) is one of `targets`.
    fn filter(&self, targets: &[Address]) -> Filter {
        fills_filter(&self.cfg.exchanges, targets)
    }

    /// [`Self::watched`] for the target list as it is now (it changes when wallets.json does).
    fn watched_now(&self) -> Vec<Address> {
        self.watched(self.targets.borrow().clone())
    }

    /// The makers whose fills we read: the targets, and our own funder when live.
    fn watched(&self, mut targets: Vec<Address>) -> Vec<Address> {
        if let Some(own) = self.cfg.own
            && !targets.contains(&own)
        {
            targets.push(own);
        }
        targets
    }
}
