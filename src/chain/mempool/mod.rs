//! The pending-transaction source: the node's pool of pending transactions is read on a timer;
//! settlements (`matchOrders`) sent to the watched exchanges are decoded into the fills of our
//! targets, journaled provisional with the identity their mined logs will have, and handed on at
//! once for targets whose trigger is `pending`. A settlement that leaves the pool without being
//! mined (dropped, replaced), reverts, or stays unmined too long makes its fills orphans,
//! reported. Reading the pool never blocks the feed: this task has its own connection.
//!
//! The pool is read with `txpool_content` (Bor and Geth expose it; a provider may not): one call
//! per round whatever the traffic, filtered here by recipient.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use actix::{Addr, Recipient};
use alloy::primitives::{Address, B256};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::actors::notifier::{Event, Notifier};
use crate::actors::store::{GetCheckpoint, JournalPending, OrphanTx, ProvisionalTxs, ReplacementTxs, StoreActor};
use crate::actors::watcher::NewFills;
use crate::chain::pending::{Decoded, Sighting, decode_pending};
use crate::chain::rpc::{ChainError, PoolTx, Rpc};

pub mod in_order;
mod subscription;
pub use subscription::subscribe;

/// Rounds a sighted transaction may be missing from the pool with no receipt before it counts
/// as dropped (one round may fall between its leaving the pool and its receipt appearing).
const MISSING_ROUNDS: u32 = 2;
/// Transaction hashes remembered as already decoded, at most.
const SEEN_MAX: usize = 50_000;
/// How long a settlement whose sender could not be checked is checked again (a subscription
/// delivers it once). Later, its block triggers the copy anyway, and an endless backlog would
/// spend the node's budget on settlements mined long ago.
const RETRY_FOR: Duration = Duration::from_secs(10);
/// Blocks a mined settlement is followed for while its log is not journaled (the feed waits for
/// its confirmations; a fill whose target was removed meanwhile is never journaled).
const FOLLOW_MINED_BLOCKS: u64 = 128;
/// Most settlements waiting for their sender's check.
const RETRY_MAX: usize = 1_000;
/// How long an exchange's answer to "is this sender an operator" is trusted.
const OPERATOR_TTL: Duration = Duration::from_secs(600);
/// Senders whose operator status is kept; past it, only known operators are kept.
const MAX_OPERATORS_CACHED: usize = 1_024;

/// What the source needs to know.
#[derive(Debug, Clone)]
pub struct MempoolConfig {
    /// The watched exchanges.
    pub exchanges: Vec<Address>,
    /// The chain (the order hash's EIP-712 domain).
    pub chain_id: u64,
    /// How often the pool is read.
    pub poll: Duration,
    /// Blocks after which a sighted, still unmined transaction is an orphan.
    pub orphan_after_blocks: u64,
    /// Blocks the feed stays behind the head on purpose (`chain.confirmations`).
    pub confirmations: u64,
    /// How long the feed may go without a successful round and still be at the head, ms
    /// ([`in_order::fresh_for_ms`]).
    pub feed_fresh_ms: i64,
}

/// Where pending transactions come from.
#[derive(Debug)]
pub enum PoolSource {
    /// `txpool_content` read every round.
    Txpool,
    /// A websocket subscription (full bodies, else hashes looked up), fed in by [`subscribe`].
    Subscription(mpsc::Receiver<PoolTx>),
}

/// Where the source's results go.
#[derive(Debug, Clone)]
pub struct MempoolPeers {
    /// The journal.
    pub store: Addr<StoreActor>,
    /// The registry (fills to copy now).
    pub sink: Recipient<NewFills>,
    /// Reports.
    pub notifier: Addr<Notifier>,
    /// Counters.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// How far the chain feed has read: sightings are acted on only while it is at the head.
    pub feed: watch::Receiver<crate::chain::feed::FeedStatus>,
}

/// A sighted transaction waiting for its block.
#[derive(Debug, Clone, Copy)]
struct Tracked {
    first_head: u64,
    /// Rounds in a row that neither the pool nor a receipt showed it.
    missing: u32,
    /// The head when it was first missed, in this run of misses.
    missing_since: Option<u64>,
    /// The head when its receipt was first there: its block is at most this.
    mined_by: Option<u64>,
    /// The head when it was first found reverted or dropped, while it held a match taken over from
    /// an earlier transaction: orphaned once the feed has read that far.
    failed_at: Option<u64>,
}

impl Tracked {
    const fn new(head: u64) -> Self {
        Self { first_head: head, missing: 0, missing_since: None, mined_by: None, failed_at: None }
    }

    /// Missed once more at `head`.
    fn missed(self, head: u64) -> Self {
        Self { missing: self.missing + 1, missing_since: Some(self.missing_since.unwrap_or(head)), ..self }
    }

    /// Dropped or replaced: missed for [`MISSING_ROUNDS`] rounds, and a block was mined since the
    /// first miss. A node behind a load balancer, or another endpoint than the one that announced
    /// the transaction, may not know it for a moment: a few rounds alone prove nothing, a block
    /// mined without it does.
    const fn dropped(&self, head: u64) -> bool {
        match self.missing_since {
            Some(since) => self.missing >= MISSING_ROUNDS && head > since,
            None => false,
        }
    }
}

/// The source's state.
pub struct Mempool {
    cfg: MempoolConfig,
    rpc: Rpc,
    source: PoolSource,
    peers: MempoolPeers,
    targets: watch::Receiver<Vec<Address>>,
    act_now: watch::Receiver<HashSet<Address>>,
    seen: HashSet<B256>,
    tracked: HashMap<B256, Tracked>,
    /// (exchange, sender) → is an operator, and when the exchange said so.
    operators: HashMap<(Address, Address), (bool, Instant)>,
    /// When an unanswered isOperator was last warned about.
    operator_warned: Option<Instant>,
    /// When a settlement from a sender that is not an operator was last warned about.
    forged_warned: Option<Instant>,
    /// Settlements whose sender could not be checked yet (a subscription delivers each once),
    /// and a subscription's arrivals waiting for their round.
    retry: Vec<PoolTx>,
    /// When each waiting settlement was first kept for a retry (see [`RETRY_FOR`]).
    retried: HashMap<B256, Instant>,
    /// When the followed transactions were last looked at.
    followed_at: Option<Instant>,
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool").field("tracked", &self.tracked.len()).finish_non_exhaustive()
    }
}

impl Mempool {
    /// A source reading the pool through `rpc`.
    #[must_use]
    pub fn new(
        cfg: MempoolConfig,
        rpc: Rpc,
        source: PoolSource,
        peers: MempoolPeers,
        targets: watch::Receiver<Vec<Address>>,
        act_now: watch::Receiver<HashSet<Address>>,
    ) -> Self {
        Self {
            cfg,
            rpc,
            source,
            peers,
            targets,
            act_now,
            seen: HashSet::new(),
            tracked: HashMap::new(),
            operators: HashMap::new(),
            operator_warned: None,
            forged_warned: None,
            retry: Vec::new(),
            retried: HashMap::new(),
            followed_at: None,
        }
    }

    /// Reads the pool until `shutdown`; failures are logged once per outage and retried.
    pub async fn run(mut self, shutdown: tokio_util::sync::CancellationToken) {
        let (mut failing, mut resumed) = (false, false);
        let mut pause = self.cfg.poll;
        loop {
            if !self.rpc.is_connected()
                && let Err(e) = self.rpc.connect().await
            {
                failing = self.failed(failing, &e);
                // A failed connection counts toward moving to the next endpoint, as the feed's do.
                self.rpc.fail();
            }
            if self.rpc.is_connected() {
                if !resumed {
                    resumed = self.resume_tracking().await;
                }
                match self.round().await {
                    Ok(()) => {
                        if failing {
                            info!("pending-transaction source back");
                        }
                        failing = false;
                        self.rpc.ok();
                    }
                    Err(e) => {
                        failing = self.failed(failing, &e);
                        self.rpc.fail();
                    }
                }
            }
            // Arrivals do not cut a failing pause short: each would otherwise be another try at once.
            pause = next_pause(pause, self.cfg.poll, failing);
            let wait = tokio::time::sleep(pause);
            match &mut self.source {
                // A subscription's transaction is dealt with as it arrives, not at the next tick.
                // A subscription whose task ended answers `None` at once, every time: its branch
                // is then off (the rounds still follow what was seen), or this loop would spin.
                PoolSource::Subscription(rx) => tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = wait => {}
                    t = rx.recv(), if !(failing || (rx.is_closed() && rx.is_empty())) => match t {
                        // Bounded like the retries: past it, a settlement is seen when mined.
                        Some(t) if self.retry.len() < RETRY_MAX => self.retry.push(t),
                        Some(t) => debug!(tx = %t.0, "too many settlements waiting: left to its block"),
                        None => warn!("the pending-transaction subscription ended; fills are still seen when mined"),
                    },
                },
                PoolSource::Txpool => tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = wait => {}
                },
            }
        }
    }

    fn failed(&self, already: bool, e: &ChainError) -> bool {
        if !already {
            warn!(cause = %e, "pending-transaction source failing; fills are still seen when mined");
        }
        true
    }

    /// Transactions the journal still waits for (after a restart) are followed again. True once done.
    async fn resume_tracking(&mut self) -> bool {
        let Ok(head) = self.rpc.block_number().await else { return false };
        let Ok(Ok(txs)) = self.peers.store.send(ProvisionalTxs).await else { return false };
        for tx in txs {
            self.seen.insert(tx);
            self.tracked.entry(tx).or_insert(Tracked::new(head));
        }
        true
    }

    /// One read of the pool: new settlements decoded and journaled, the tracked ones followed up.
    async fn round(&mut self) -> Result<(), ChainError> {
        let head = self.rpc.block_number().await?;
        let (pool, in_pool) = match self.read_pool().await {
            Ok(read) => read,
            // The pool is unreadable (a timeout of its large answer, a provider that stopped
            // serving it): the followed settlements are still looked up one by one, so a revert
            // or a drop still withdraws a copy waiting its turn.
            // The pool's error is the round's (a follow-up's own failure is only logged).
            Err(e) => {
                if self.followed_at.is_none_or(|t| t.elapsed() >= self.cfg.poll) {
                    match self.follow_up(head, None).await {
                        Ok(()) => self.followed_at = Some(Instant::now()),
                        Err(f) => debug!(cause = %f, "following up sightings without the pool failed"),
                    }
                }
                return Err(e);
            }
        };
        let seen_at = Instant::now();
        let fills = self.decode_new(&pool, head).await;
        if !fills.fills.is_empty() {
            self.hand_on(fills, seen_at, head).await?;
        }
        // Following up costs a call per followed transaction: once per poll period at most.
        if self.followed_at.is_none_or(|t| t.elapsed() >= self.cfg.poll) {
            self.follow_up(head, in_pool.as_ref()).await?;
            self.followed_at = Some(Instant::now());
        }
        if self.seen.len() > SEEN_MAX {
            // Old hashes are mined or gone; keep only what is still pending (as far as we know)
            // or followed.
            self.seen.retain(|h| in_pool.as_ref().is_some_and(|p| p.contains(h)) || self.tracked.contains_key(h));
        }
        Ok(())
    }

    /// This round's transactions, and the pool's hashes when the whole pool was read (a
    /// subscription gives only arrivals, so nothing can be concluded from a hash's absence).
    async fn read_pool(&mut self) -> Result<(Vec<PoolTx>, Option<HashSet<B256>>), ChainError> {
        Ok(match &mut self.source {
            PoolSource::Txpool => {
                let pool = self.rpc.txpool_pending(&self.cfg.exchanges).await?;
                let in_pool: HashSet<B256> = pool.iter().map(|(h, _, _, _)| *h).collect();
                (pool, Some(in_pool))
            }
            PoolSource::Subscription(rx) => {
                let mut pool = std::mem::take(&mut self.retry);
                while let Ok(t) = rx.try_recv() {
                    pool.push(t);
                }
                (pool, None)
            }
        })
    }

    /// Our targets' fills in settlements not seen before, sent by one of the exchange's operators;
    /// each such settlement is followed from now on.
    async fn decode_new(&mut self, pool: &[PoolTx], head: u64) -> Decoded {
        let targets: HashSet<Address> = self.targets.borrow().iter().copied().collect();
        let seen_s = u64::try_from(crate::store::now_ms() / 1000).unwrap_or(0);
        let mut fills = Decoded::default();
        // A pair whose check failed this round is not asked again this round.
        let mut unanswered: HashSet<(Address, Address)> = HashSet::new();
        for (hash, from, to, input) in pool {
            if !self.cfg.exchanges.contains(to) || !self.seen.insert(*hash) {
                continue;
            }
            let s = Sighting { tx_hash: *hash, exchange: *to, chain_id: self.cfg.chain_id, seen_s };
            match decode_pending(&s, input, &targets) {
                // Anyone can put a matchOrders naming a target in the pool (for free, if it is
                // never mined): only the exchange's own operators' settlements count.
                Ok(f) if !f.fills.is_empty() => match self.operator_once(*to, *from, &mut unanswered).await {
                    Some(true) => {
                        self.retried.remove(hash);
                        self.tracked.insert(*hash, Tracked::new(head));
                        fills.fills.extend(f.fills);
                        fills.at_limit.extend(f.at_limit);
                    }
                    Some(false) => {
                        self.retried.remove(hash);
                    }
                    // Unanswered: asked again next round (a subscription delivers it only once,
                    // so it is kept for the next round).
                    None => {
                        self.seen.remove(hash);
                        if matches!(self.source, PoolSource::Subscription(_)) {
                            self.keep_for_retry((*hash, *from, *to, input.clone()));
                        }
                    }
                },
                Ok(_) => {}
                Err(e) => debug!(tx = %hash, cause = %e, "pending transaction to an exchange not decoded"),
            }
        }
        fills
    }

    /// Whether the chain feed is at the head ([`in_order::caught_up`]), waiting up to
    /// [`in_order::CATCH_UP_WAIT`] for a round in progress to end (a round that starts a few blocks
    /// behind reads as behind for its length; a backfill or a stalled endpoint stays behind). This
    /// reader runs on its own thread: the wait holds up nothing else.
    async fn feed_at_the_head(&self, pool_head: u64, exits: bool) -> bool {
        let (confirmations, fresh_ms) = (self.cfg.confirmations, self.cfg.feed_fresh_ms);
        let at_head = |st: &crate::chain::feed::FeedStatus| {
            in_order::caught_up(st, pool_head, confirmations, fresh_ms, crate::store::now_ms(), exits)
        };
        let mut feed = self.peers.feed.clone();
        matches!(tokio::time::timeout(in_order::CATCH_UP_WAIT, feed.wait_for(at_head)).await, Ok(Ok(_)))
    }

    /// Journals sighted fills as provisional and hands those whose target acts on sight to the
    /// registry.
    async fn hand_on(&self, decoded: Decoded, seen_at: Instant, head: u64) -> Result<(), ChainError> {
        let Decoded { fills, at_limit } = decoded;
        let act_now = self.act_now.borrow().clone();
        // Waited for only when a fill here is of a target that acts on sight: the others'
        // sightings wait for their blocks, and a round of theirs never waits on the feed.
        let acting = fills.iter().any(|f| act_now.contains(&f.wallet));
        let exits = fills.iter().any(|f| f.side == crate::domain::Side::Sell && act_now.contains(&f.wallet));
        let caught_up = acting && self.feed_at_the_head(head, exits).await;
        let act_now = if caught_up { act_now } else { HashSet::new() };
        if !caught_up && acting {
            debug!(
                fills = fills.len(),
                "the chain feed is behind the head: sightings wait for their blocks, so copies keep the chain's order"
            );
        }
        let n = fills.len();
        let to_copy = self
            .peers
            .store
            .send(JournalPending { fills, source: "pending", act_now, at_limit })
            .await
            .map_err(|e| ChainError::Mailbox(e.to_string()))??;
        self.peers.metrics.observe_pending_decode(seen_at.elapsed());
        debug!(fills = n, now = to_copy.len(), "pending fills journaled");
        if !to_copy.is_empty() && self.peers.sink.send(NewFills(to_copy)).await.is_err() {
            warn!("pending fills journaled but not handed on; they are copied at the next start");
        }
        Ok(())
    }

    /// [`Self::operator`], not asked again for a pair that went unanswered earlier in the round.
    async fn operator_once(
        &mut self,
        exchange: Address,
        from: Address,
        unanswered: &mut HashSet<(Address, Address)>,
    ) -> Option<bool> {
        if unanswered.contains(&(exchange, from)) {
            return None;
        }
        let is = self.operator(exchange, from).await;
        if is.is_none() {
            unanswered.insert((exchange, from));
        }
        is
    }

    /// Keeps a settlement whose sender could not be checked for the next round, for at most
    /// [`RETRY_FOR`] and [`RETRY_MAX`] settlements.
    fn keep_for_retry(&mut self, t: PoolTx) {
        let since = *self.retried.entry(t.0).or_insert_with(Instant::now);
        if since.elapsed() > RETRY_FOR || self.retry.len() >= RETRY_MAX {
            debug!(tx = %t.0, "settlement's sender never checked: left to its block");
            self.retried.remove(&t.0);
            return;
        }
        self.retry.push(t);
    }

    /// Whether `from` is an operator of `exchange` (cached); `None` when the exchange did not
    /// answer (the settlement is not trusted until it does).
    async fn operator(&mut self, exchange: Address, from: Address) -> Option<bool> {
        if let Some((is, at)) = self.operators.get(&(exchange, from))
            && at.elapsed() < OPERATOR_TTL
        {
            return Some(*is);
        }
        match self.rpc.is_operator(exchange, from).await {
            Ok(is) => {
                // Anyone can put a settlement naming a target in the pool for free: neither the
                // cache nor the log may grow with every forged sender.
                if self.operators.len() >= MAX_OPERATORS_CACHED {
                    self.operators.retain(|_, (is, at)| *is && at.elapsed() < OPERATOR_TTL);
                }
                let say = self.forged_warned.is_none_or(|t| t.elapsed() > Duration::from_secs(60));
                if !is && say {
                    self.forged_warned = Some(Instant::now());
                    warn!(
                        exchange = %exchange,
                        sender = %from,
                        "a settlement naming a target was sent by an address that is not an operator of the exchange: ignored (forged, or not Polymarket's)"
                    );
                }
                self.operators.insert((exchange, from), (is, Instant::now()));
                Some(is)
            }
            Err(e) => {
                // Said once a minute at most: while it lasts, every settlement waits for its block.
                if self.operator_warned.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    warn!(cause = %e, exchange = %exchange, "the exchange does not answer isOperator: pending settlements are not trusted until it does (fills still count when mined)");
                    self.operator_warned = Some(Instant::now());
                }
                None
            }
        }
    }

    /// Sighted transactions that left the pool: mined (the feed confirms them), or orphans.
    async fn follow_up(&mut self, head: u64, in_pool: Option<&HashSet<B256>>) -> Result<(), ChainError> {
        let mut orphans = Vec::new();
        let mut round = Round::default();
        let tracked: Vec<(B256, Tracked)> = self.tracked.iter().map(|(h, t)| (*h, *t)).collect();
        for (hash, t) in tracked {
            let pending = match in_pool {
                Some(p) => p.contains(&hash),
                // No pool snapshot (a subscription): ask the node about this one.
                None => self.rpc.transaction(hash).await?.is_some_and(|(_, pending)| pending),
            };
            if pending {
                if let Some(e) = self.tracked.get_mut(&hash) {
                    *e = Tracked { missing: 0, missing_since: None, failed_at: None, ..*e };
                }
                if head.saturating_sub(t.first_head) >= self.cfg.orphan_after_blocks {
                    orphans.push((hash, format!("not mined within {} blocks", self.cfg.orphan_after_blocks)));
                }
                continue;
            }
            match self.rpc.receipt_status(hash).await? {
                Some(true) => {
                    if let Some(cause) = self.after_receipt(hash, t, head, &mut round).await? {
                        orphans.push((hash, cause));
                    }
                }
                Some(false) => {
                    if self.failed_for_good(hash, t, head, &mut round).await? {
                        orphans.push((hash, "reverted".to_owned()));
                    }
                }
                None => {
                    let t = t.missed(head);
                    if let Some(e) = self.tracked.get_mut(&hash) {
                        *e = t;
                    }
                    if t.dropped(head) && self.failed_for_good(hash, t, head, &mut round).await? {
                        orphans.push((hash, "dropped or replaced".to_owned()));
                    }
                }
            }
        }
        for (hash, cause) in orphans {
            // Forgotten only once the journal has it orphaned: a failed write is tried again at
            // the next round, not left reading as standing until a restart.
            let found =
                self.peers.store.send(OrphanTx(hash)).await.map_err(|e| ChainError::Mailbox(e.to_string()))??;
            self.tracked.remove(&hash);
            if !found.is_empty() {
                let copied = found.iter().filter(|o| o.copied).count();
                warn!(tx = %hash, fills = found.len(), copied, cause = %cause, "pending settlement orphaned");
                self.peers.notifier.do_send(Event::Orphaned { tx: hash, fills: found, cause });
            }
        }
        Ok(())
    }
}

impl Mempool {
    /// Whether a followed settlement found reverted or dropped at `head` is an orphan now. One
    /// holding a match it took over from an earlier transaction (an operator's resubmission) may
    /// have failed because that earlier one was mined: its fills are orphaned only once the feed
    /// has read up to that head, by when the earlier transaction's log has confirmed them (and
    /// there is nothing left to orphan); while the earlier one is still pending, they wait for it.
    /// Orphaned at once, they were reported as trades that never happened, and a copy waiting its
    /// turn withdrawn. An earlier one that reverted or is gone decides nothing: orphaned now.
    async fn failed_for_good(
        &mut self,
        hash: B256,
        t: Tracked,
        head: u64,
        round: &mut Round,
    ) -> Result<bool, ChainError> {
        let Some(earlier) = round.replacements(&self.peers.store).await?.get(&hash).copied() else {
            return Ok(true);
        };
        match self.rpc.receipt_status(earlier).await? {
            Some(true) => {}
            Some(false) => return Ok(true),
            None => {
                let stuck = head.saturating_sub(t.first_head) >= self.cfg.orphan_after_blocks;
                if stuck || !self.rpc.transaction(earlier).await?.is_some_and(|(_, pending)| pending) {
                    return Ok(true);
                }
                debug!(tx = %hash, earlier = %earlier, "a resubmitted settlement failed while the one it replaced is pending: waiting for it");
                return Ok(false);
            }
        }
        let at = t.failed_at.unwrap_or(head);
        if t.failed_at.is_none() {
            info!(tx = %hash, block = at, "a resubmitted settlement failed: its match may have been mined under the earlier transaction, so it is orphaned only once the chain feed has read that far");
            if let Some(e) = self.tracked.get_mut(&hash) {
                e.failed_at = Some(at);
            }
        }
        Ok(round.checkpoint(&self.peers.store).await? >= at)
    }

    /// A followed settlement that was mined: followed until the feed has journaled its log, since
    /// a shallow reorg can still take it out before then. One whose log never comes (its target
    /// removed meanwhile, or logs unlike the transaction) is an orphan once it is old and the feed
    /// has read past its block: left provisional, it would count in the target's position for good
    /// and be followed again after every restart. Returns the orphan's cause.
    async fn after_receipt(
        &mut self,
        hash: B256,
        t: Tracked,
        head: u64,
        round: &mut Round,
    ) -> Result<Option<String>, ChainError> {
        if !round.provisional(&self.peers.store).await?.contains(&hash) {
            self.tracked.remove(&hash);
            return Ok(None);
        }
        // Its block is at most the head at which its receipt was first there.
        let mined_by = t.mined_by.unwrap_or(head);
        let old = head.saturating_sub(t.first_head) >= FOLLOW_MINED_BLOCKS;
        if old && round.checkpoint(&self.peers.store).await? >= mined_by {
            return Ok(Some(
                "mined, but no fill of a watched target in its block (a target removed since?)".to_owned(),
            ));
        }
        if let Some(e) = self.tracked.get_mut(&hash) {
            *e = Tracked { missing: 0, missing_since: None, mined_by: Some(mined_by), ..*e };
        }
        Ok(None)
    }
}

/// The wait before the next read of the pool: one poll while it answers; while it fails, the
/// last pause doubled, up to 30 polls, so a node that refuses is not asked again at once.
fn next_pause(last: Duration, poll: Duration, failing: bool) -> Duration {
    if failing { (last * 2).min(poll * 30) } else { poll }
}

/// What one round of follow-ups reads from the journal, once and only when needed.
#[derive(Default)]
struct Round {
    /// The transactions whose fills the journal still holds provisional.
    provisional: Option<HashSet<B256>>,
    /// Those of them holding a match taken over from an earlier transaction, with that one.
    replacements: Option<HashMap<B256, B256>>,
    /// How far the feed has journaled the chain.
    checkpoint: Option<u64>,
}

impl Round {
    async fn provisional(&mut self, store: &Addr<StoreActor>) -> Result<&HashSet<B256>, ChainError> {
        if self.provisional.is_none() {
            let txs = store.send(ProvisionalTxs).await.map_err(|e| ChainError::Mailbox(e.to_string()))??;
            self.provisional = Some(txs.into_iter().collect());
        }
        Ok(self.provisional.get_or_insert_default())
    }

    async fn replacements(&mut self, store: &Addr<StoreActor>) -> Result<&HashMap<B256, B256>, ChainError> {
        if self.replacements.is_none() {
            let txs = store.send(ReplacementTxs).await.map_err(|e| ChainError::Mailbox(e.to_string()))??;
            self.replacements = Some(txs.into_iter().collect());
        }
        Ok(self.replacements.get_or_insert_default())
    }

    async fn checkpoint(&mut self, store: &Addr<StoreActor>) -> Result<u64, ChainError> {
        if let Some(n) = self.checkpoint {
            return Ok(n);
        }
        let cp = store.send(GetCheckpoint).await.map_err(|e| ChainError::Mailbox(e.to_string()))??;
        let n = cp.map_or(0, |(n, _)| n);
        self.checkpoint = Some(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::{Duration, Tracked, next_pause};

    #[test]
    fn a_failing_pool_is_read_again_after_a_pause_that_doubles_up_to_thirty_polls() {
        let poll = Duration::from_millis(200);
        let mut pause = poll;
        let mut seen = Vec::new();
        for _ in 0..8 {
            pause = next_pause(pause, poll, true);
            seen.push(pause.as_millis());
        }
        assert_eq!(seen, [400, 800, 1_600, 3_200, 6_000, 6_000, 6_000, 6_000]);
        // Answering again: back to one poll at once.
        assert_eq!(next_pause(pause, poll, false), poll);
        assert_eq!(next_pause(poll, poll, true), poll * 2);
    }

    /// A followed transaction neither the pool nor a receipt shows counts as dropped only after
    /// two rounds and a block mined since its first miss: rounds within one block prove nothing
    /// (the node asked may not know it yet). Seen again, its misses start over.
    #[test]
    fn a_transaction_is_dropped_only_once_a_block_passed_without_it() {
        // (misses at these heads, dropped at the last)
        let cases: [(&[u64], bool); 5] =
            [(&[10], false), (&[10, 10], false), (&[10, 10, 10, 10], false), (&[10, 11], true), (&[10, 10, 12], true)];
        for (heads, dropped) in cases {
            let t = heads.iter().fold(Tracked::new(9), |t, h| t.missed(*h));
            assert_eq!(t.dropped(*heads.last().unwrap()), dropped, "{heads:?}");
        }
        let seen_again = Tracked { missing: 0, missing_since: None, ..Tracked::new(9).missed(10) };
        assert!(!seen_again.missed(11).dropped(11), "one miss after being seen again");
    }
}
