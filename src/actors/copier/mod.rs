//! The copier: turns one target fill into a sized [`OrderIntent`](crate::domain::OrderIntent) (pure sizing in
//! [`crate::risk::sizing`]) and hands it to the risk supervisor. For a SELL it learns how much of its
//! position the target sold from the chain (`balanceOf` at the previous block), falling back to the
//! position observed from the target's journaled fills. A copy into a closed market, or a buy into
//! one ending too soon, is held back (market metadata from [`crate::market`]).

use std::sync::Arc;

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message, ResponseFuture};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use crate::actors::lanes::{Access, Lanes};
use crate::actors::notifier::Notifier;
use crate::actors::risk_supervisor::{Decision, Flush, RiskSupervisor};
use crate::actors::store::{MinedAt, PendingBefore, StoreActor, TargetPosition};
use crate::chain::Reads;
use crate::domain::{Shares, Side, TokenId, Usdc, u256_to_micros};
use crate::market::MarketDirectory;
use crate::risk::CopyRules;
use crate::store::PendingFill;

pub mod admission;
mod decide;
mod refuse;
use refuse::Parked;
pub use refuse::Refuse;

/// Copy one journaled target fill.
#[derive(Debug, Message)]
#[rtype(result = "Decision")]
pub struct Copy {
    /// The fill (and its intent, when recovering after a crash).
    pub pending: PendingFill,
    /// The target's label.
    pub label: String,
    /// The target's rules.
    pub rules: CopyRules,
    /// Part of recovery at start, which waits for every decision before the feed starts: decided
    /// without waiting for a placement slot (see [`Evaluate::at_start`](crate::actors::risk_supervisor::Evaluate::at_start)).
    pub at_start: bool,
    /// Its slot among the copies waiting for a decision (a fill from the feed holds one; see
    /// [`admission`]), freed once decided.
    pub admitted: Option<admission::Admitted>,
}

/// A copy nobody waits for (a watcher's): [`Copy`](struct@Copy) without a reply. A waited copy holds a future
/// on the copier's context until decided, and actix polls every such future on each wake: a
/// backfill's hundreds of them made each message cost as much as all of them.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unwaited(pub Copy);

/// Copy settings shared by all targets.
#[derive(Debug, Clone)]
pub struct CopierConfig {
    /// Limit price distance, bps.
    pub max_slippage_bps: u32,
    /// Smallest order value.
    pub min_order_usdc: Usdc,
    /// Oldest fill still copied, seconds (0: no limit).
    pub max_copy_delay_s: u64,
    /// Where outcome-token balances are held: Conditional Tokens, or Exchange V3's PositionManager.
    pub positions: crate::chain::positions::PositionContracts,
    /// Live: orders on Exchange V3 markets are not signed (only CLOB V2 orders are), so their
    /// copies are refused with a clear reason rather than sent to fail at the exchange.
    pub refuse_v3: bool,
    /// Do not copy into closed markets.
    pub skip_closed: bool,
    /// Do not buy into a market ending within this many minutes (0: no limit).
    pub min_minutes_to_end: u64,
    /// The largest copy of a fill seen only pending (0: none beyond the usual caps).
    pub pending_max_order_usdc: Usdc,
    /// Whether a sized copy is reported (see [`crate::actors::notifier::Details`]).
    pub report_sized: bool,
}

/// A copy waiting for the one before it on the same token, with where its decision goes.
/// BUYs of one token sized at once: enough to keep the placement slots busy, few enough that a
/// backfill of thousands of fills on one token does not start thousands of tasks.
const MAX_BUYS_PER_TOKEN: usize = 16;

type Queued = (Copy, Option<oneshot::Sender<Decision>>);

/// Sizes copies: one at a time per token (a SELL must see what the BUY before it got), several
/// tokens at once (a slow metadata or balance read on one holds up no other).
pub struct Copier {
    /// Ends the daemon if this actor dies of a panic (see [`crate::actors::vital`]).
    _vital: crate::actors::vital::Vital,
    /// Shared with each copy's task (a clone per copy allocated its lists).
    cfg: Arc<CopierConfig>,
    rpc: Option<Arc<Reads>>,
    markets: Option<Arc<MarketDirectory>>,
    store: Addr<StoreActor>,
    risk: Addr<RiskSupervisor>,
    notifier: Addr<Notifier>,
    /// Copies being sized per token, and those waiting their turn.
    lanes: Lanes<TokenId, Queued>,
    /// Replied to when no copy is being sized any more.
    idle: Vec<oneshot::Sender<()>>,
    /// Fills (journal rows) with a copy queued or being decided, and whether that copy is of the
    /// fill as seen in the pool (a sighting): one copy of a fill at a time.
    deciding: std::collections::HashMap<i64, bool>,
    /// A sighting's fill mined while its sighting's copy was still being decided (left to its
    /// block by the pending cap, say): its copy, or the registry's refusal of it, decided once
    /// that copy is, not dropped as a duplicate.
    after_sighting: std::collections::HashMap<i64, Parked>,
    /// Targets' exits already said to be refused as stale (see [`stale_exit_alert`]).
    stale_exits_told: StaleExitsTold,
}

/// Targets' exits already said to be refused as stale, by target and token.
type StaleExitsTold = Arc<std::sync::Mutex<std::collections::HashSet<(alloy::primitives::Address, TokenId)>>>;

/// The alert for a target's exit refused as stale while `held` shares of `token` bought by its
/// copies are ours (`None`: none booked yet, but a BUY of ours of it, of unknown outcome, may
/// still fill): the target has left, no later fill of its will say so, and the position stays
/// open until the operator closes it.
#[must_use]
pub fn stale_exit_alert(label: &str, token: &TokenId, held: Option<Shares>) -> String {
    let open = match held {
        Some(shares) => format!("the {shares} shares its copies bought may still be open"),
        None => "our BUY of it (outcome not known yet) may still fill and stay open".to_owned(),
    };
    format!(
        "{label} sold token {token} longer ago than copy.max_copy_delay_s: its exit is not copied, and {open}: check \
         `polycopy status` and close them if so (`polycopy close {token}`)"
    )
}

impl std::fmt::Debug for Copier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Copier").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Copier {
    /// A copier reading balances through `rpc` and market metadata from `markets` (when given).
    #[must_use]
    pub fn new(
        cfg: CopierConfig,
        rpc: Option<Arc<Reads>>,
        markets: Option<Arc<MarketDirectory>>,
        store: Addr<StoreActor>,
        risk: Addr<RiskSupervisor>,
        notifier: Addr<Notifier>,
    ) -> Self {
        Self {
            _vital: crate::actors::vital::Vital::new("the copier"),
            cfg: Arc::new(cfg),
            rpc,
            markets,
            store,
            risk,
            notifier,
            lanes: Lanes::new(MAX_BUYS_PER_TOKEN),
            idle: Vec::new(),
            deciding: std::collections::HashMap::new(),
            after_sighting: std::collections::HashMap::new(),
            stale_exits_told: Arc::default(),
        }
    }
}

impl Actor for Copier {
    type Context = Context<Self>;
}

impl Handler<Copy> for Copier {
    type Result = ResponseFuture<Decision>;

    /// Sizes the fill and has the risk supervisor decide, in its token's order (see [`Lanes`]).
    fn handle(&mut self, m: Copy, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.arrive(m, Some(tx), ctx);
        Box::pin(async move { rx.await.unwrap_or_else(|_| Decision::Failed("the copier stopped".into())) })
    }
}

impl Handler<Unwaited> for Copier {
    type Result = ();

    /// Sizes the fill and has the risk supervisor decide, in its token's order (see [`Lanes`]).
    fn handle(&mut self, Unwaited(m): Unwaited, ctx: &mut Context<Self>) {
        self.arrive(m, None, ctx);
    }
}

/// BUYs of a token are sized side by side; a SELL (sized on our position and the target's balance
/// after every earlier copy) and a recovered intent run alone.
fn access_of(m: &Copy) -> Access {
    if m.pending.fill.side == Side::Buy && m.pending.intent.is_none() { Access::Shared } else { Access::Exclusive }
}

impl Copier {
    /// Starts `m` now, or queues it behind the copies of its token it must follow.
    fn arrive(&mut self, m: Copy, tx: Option<oneshot::Sender<Decision>>, ctx: &mut Context<Self>) {
        let row = m.pending.row;
        let sighting = m.pending.fill.block_number == 0;
        if self.deciding.get(&row) == Some(&true)
            && !sighting
            && m.pending.intent.is_none()
            && !self.after_sighting.contains_key(&row)
        {
            // Its block handed it on as the sighting's copy ended (left to the block): decided
            // after that copy, which may still be placing it (then this one finds it so).
            debug!(fill = row, "a mined fill waits for its sighting's copy to be decided");
            self.after_sighting.insert(row, Parked::Copy(m, tx));
            return;
        }
        if let std::collections::hash_map::Entry::Vacant(v) = self.deciding.entry(row) {
            v.insert(sighting);
        } else {
            // The fill came again (a reorg's rescan, a sighting mined after it was withdrawn)
            // while its first copy is still being decided: that one decides. Sized again, the
            // second could find every share claimed by the first's SELL and refuse the fill.
            debug!(fill = m.pending.row, "a copy of this fill is already being decided");
            if let Some(tx) = tx {
                let _ = tx.send(Decision::AlreadyPlacing);
            }
            return;
        }
        let token = m.pending.fill.token_id;
        let access = access_of(&m);
        if let Some((m, tx)) = self.lanes.arrive(token, access, (m, tx)) {
            self.start(m, tx, ctx);
        }
    }

    /// Sizes `m` as its own task (not a future on the actor's context, which actix polls on
    /// every wake); when decided, [`Decided`] starts the copies of its token waiting for it.
    fn start(&mut self, mut m: Copy, tx: Option<oneshot::Sender<Decision>>, ctx: &mut Context<Self>) {
        let token = m.pending.fill.token_id;
        let row = m.pending.row;
        let access = access_of(&m);
        let admitted = m.admitted.take();
        // Boxed once: the sizing future is about 2 KB, and a task moves its future several times.
        let work = Box::pin(self.size_and_decide(m));
        // Moves its lane on however the task ends: a sizing that panicked must not leave the
        // token's later copies (and their slots) waiting for ever.
        let mut lane = LaneDone { me: ctx.address(), token, access, row, placed: false };
        actix::spawn(async move {
            let decision = work.await;
            lane.placed = matches!(decision, Decision::Approved | Decision::AlreadyPlacing);
            drop(admitted);
            if let Some(tx) = tx {
                let _ = tx.send(decision);
            }
            drop(lane);
        });
    }
}

/// Sends [`Decided`] for its copy when dropped.
struct LaneDone {
    me: Addr<Copier>,
    token: TokenId,
    access: Access,
    row: i64,
    placed: bool,
}

impl Drop for LaneDone {
    fn drop(&mut self) {
        let (token, access, row, placed) = (self.token, self.access, self.row, self.placed);
        self.me.do_send(Decided { token, access, row, placed });
    }
}

/// A copy of `token` (of the fill in journal row `row`) was decided: its lane moves on.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Decided {
    token: TokenId,
    access: Access,
    row: i64,
    /// The copy was approved (or found being placed): a mined copy of its fill adds nothing.
    placed: bool,
}

impl Handler<Decided> for Copier {
    type Result = ();

    fn handle(&mut self, Decided { token, access, row, placed }: Decided, ctx: &mut Context<Self>) {
        self.deciding.remove(&row);
        // The mined fill of a sighting whose copy placed nothing (left to its block; refused, as
        // an orphan the block revives) is decided now; one whose copy was placed adds nothing.
        match self.after_sighting.remove(&row) {
            Some(Parked::Copy(m, tx)) if !placed => self.arrive(m, tx, ctx),
            Some(Parked::Refusal(r)) if !placed => self.refuse(r),
            Some(Parked::Copy(_, tx)) => {
                debug!(fill = row, "a copy of this fill was decided: the mined fill adds nothing");
                if let Some(tx) = tx {
                    let _ = tx.send(Decision::AlreadyPlacing);
                }
            }
            Some(Parked::Refusal(_)) => {
                debug!(fill = row, "a copy of this fill was placed before the registry's refusal: it stands");
            }
            None => {}
        }
        for (m, tx) in self.lanes.done(token, access) {
            self.start(m, tx, ctx);
        }
        if self.lanes.is_idle() {
            for w in self.idle.drain(..) {
                let _ = w.send(());
            }
        }
    }
}

impl Copier {
    /// Starts `m`'s decision, which runs beside the copier (metadata and balance reads are
    /// network calls).
    fn size_and_decide(&mut self, m: Copy) -> impl std::future::Future<Output = Decision> + 'static {
        let task = decide::CopyTask {
            cfg: self.cfg.clone(),
            rpc: self.rpc.clone(),
            markets: self.markets.clone(),
            store: self.store.clone(),
            risk: self.risk.clone(),
            notifier: self.notifier.clone(),
            stale_exits_told: self.stale_exits_told.clone(),
        };
        task.decide(m)
    }
}

/// The target's balance of the token just before this fill: on chain at the previous block plus what
/// it traded earlier in the same block, both as the journal has its block (never a running total
/// in memory, which a restart mid-block or a reorg's re-read would get wrong); else its observed
/// position before this fill. A fill seen pending whose block the journal has by now is read like
/// a mined one.
pub(super) async fn target_balance_before(
    cfg: &CopierConfig,
    rpc: Option<&Reads>,
    store: &Addr<StoreActor>,
    pending: &crate::store::PendingFill,
) -> Option<Shares> {
    // A test stretches the wait a SELL may have behind other copies of its token.
    crate::fault::hold_at("hold_before_sell_sizing").await;
    let fill = &pending.fill;
    let mined = match store
        .send(MinedAt(pending.row))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        Ok(mined) => mined,
        Err(cause) => {
            warn!(%cause, "where the fill was mined, and what came before it in its block, is not known");
            None
        }
    };
    let (at, earlier_in_block) = match (rpc, fill.block_number, mined) {
        (_, _, Some((n, earlier))) => (Some(n.saturating_sub(1)), earlier),
        (Some(rpc), 0, None) => match before_pending(rpc, fill.id.tx_hash).await {
            Some(at) => (Some(at), pending_earlier(rpc, store, pending, at).await),
            None => (None, 0),
        },
        // The journal did not answer: the block's earlier trades are not known, so the chain's
        // balance is not read (it would miss them); the journal's own figure is tried below.
        (_, _, None) => (None, 0),
    };
    if let (Some(rpc), Some(at)) = (rpc, at) {
        // The market's generation decides the contract: V3 markets keep positions in PositionManager.
        let contract = cfg.positions.for_exchange(fill.exchange);
        match rpc.balance_of(contract, fill.wallet, fill.token_id, at).await {
            Ok(b) => {
                if let Some(v) = u256_to_micros(b) {
                    return Some(Shares(v.saturating_add(earlier_in_block).max(0)));
                }
            }
            Err(e) => debug!(cause = %e, "balanceOf failed; using the observed position"),
        }
    }
    // The journal's observed position up to this fill includes it (a SELL): add it back. It
    // held at least what it sold (its holdings from before we watched are not observed).
    let observed = store
        .send(TargetPosition { wallet: fill.wallet, token: fill.token_id, row: pending.row })
        .await
        .ok()?
        .ok()??;
    Some(Shares(observed.0.saturating_add(fill.shares.0).max(fill.shares.0)))
}

/// What the target's trades of the token seen pending before this one, and not mined by block
/// `at`, moved its balance: a pending BUY then SELL would otherwise read as "sold all it had" (a
/// balance at the head without the BUY), and our whole position would be sold for half of it.
async fn pending_earlier(rpc: &Reads, store: &Addr<StoreActor>, pending: &PendingFill, at: u64) -> i64 {
    let Ok(Ok(earlier)) = store.send(PendingBefore { row: pending.row, at }).await else { return 0 };
    let mut net = 0i64;
    for (tx, shares, still_pending) in earlier {
        // Journaled as mined above `at`: not in the balance read. Still pending to the journal:
        // mined by `at` after all (the journal not there yet), the balance holds it already.
        let in_balance =
            still_pending && tx != pending.fill.id.tx_hash && matches!(rpc.mined_in(tx).await, Ok(Some(n)) if n <= at);
        if !in_balance {
            net = net.saturating_add(shares);
        }
    }
    net
}

/// The block to read a fill seen pending at: the head while its transaction is still in the
/// pool, or the block before the one it was mined in (a SELL may wait behind other copies of its
/// token). Read at the head after the sale, the target's balance is what it kept, and "sold 600
/// of 1,000" would look like "sold all it had". `None` when neither can be told: a transaction
/// gone from the pool may have been replaced by another (same match, another hash) that is mined
/// already, and the journal's own figure is used instead.
async fn before_pending(rpc: &Reads, tx: alloy::primitives::B256) -> Option<u64> {
    let (head, mined) = tokio::join!(rpc.block_number(), rpc.mined_in(tx));
    let head = head.ok()?;
    match mined.ok()? {
        Some(n) if n <= head => Some(n.saturating_sub(1)),
        // Mined above the head this node gave: the head is before it.
        Some(_) => Some(head),
        None => rpc.transaction(tx).await.ok()?.is_some_and(|(_, pending)| pending).then_some(head),
    }
}

impl Handler<Flush> for Copier {
    type Result = ResponseFuture<()>;

    /// Replies after every copy queued before it, and the risk supervisor's work, is done.
    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> Self::Result {
        let risk = self.risk.clone();
        let sized = if self.lanes.is_idle() {
            None
        } else {
            let (tx, rx) = oneshot::channel();
            self.idle.push(tx);
            Some(rx)
        };
        Box::pin(async move {
            if let Some(rx) = sized {
                let _ = rx.await;
            }
            risk.send(Flush).await.unwrap_or(());
        })
    }
}
