//! The store actor: the daemon's only way into the journal. Its jobs run on the journal's writer
//! thread (rusqlite is synchronous), which commits everything waiting in one transaction (group
//! commit, [`crate::store::batch`]); each sender gets its answer once its write is durable.

use std::sync::mpsc::Sender;

use actix::{Actor, Context, Handler, Message, ResponseFuture};
use alloy::primitives::{Address, B256};

use crate::domain::{Execution, OrderIntent, Shares, TargetFill, TokenId, Usdc};
use crate::risk::{Book, BreakerState, Position};
use crate::store::batch::{Job, Reply, commit_failed, spawn_writer};
use crate::store::{JournalOutcome, PaperBooking, PendingFill, Store, StoreError, StoreResult};

/// Hands journal work to the writer thread.
#[derive(Debug)]
pub struct StoreActor {
    writer: Writer,
}

impl StoreActor {
    /// Starts the writer thread that owns `store`.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn new(store: Store) -> std::io::Result<Self> {
        Ok(Self { writer: Writer { jobs: spawn_writer(store)? } })
    }

    /// A way to the same writer that does not pass through this actor's mailbox.
    #[must_use]
    pub fn writer(&self) -> Writer {
        self.writer.clone()
    }
}

/// One journal call, run atomically on the writer thread: every store message is one.
pub trait Request: Send + 'static {
    /// Its answer.
    type Out: Send + 'static;
    /// Named in the log when it fails.
    const NAME: &'static str;
    /// Runs it against the journal.
    ///
    /// # Errors
    /// The journal's.
    fn run(self, store: &mut Store) -> StoreResult<Self::Out>;
    /// Given a successful answer and the moment its commit ended (the start or the end of a copy's
    /// measured latency; most answers carry no time and ignore it).
    fn stamp(out: &mut Self::Out, at: std::time::Instant);
}

/// Queues requests straight on the journal's writer thread, beside the store actor. The copy path
/// uses it: the actor's mailbox adds a hop each way (its context polls the answer too), and at a
/// poll's burst of fills each hop is taken by every fill before the next.
#[derive(Debug, Clone)]
pub struct Writer {
    jobs: Sender<Job>,
}

impl Writer {
    /// Queues `r`; its answer comes once the batch it ran in committed.
    pub fn ask<R: Request>(&self, r: R) -> impl std::future::Future<Output = StoreResult<R::Out>> + 'static {
        let name = R::NAME;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |store: &mut Store| {
            let result = store.atomically(move |s| r.run(s));
            Box::new(move |commit: Option<&str>, committed: std::time::Instant| {
                let mut result = match commit {
                    Some(e) => Err(commit_failed(e)),
                    None => result,
                };
                if let Ok(v) = &mut result {
                    R::stamp(v, committed);
                }
                // Logged here once, so an error is never lost when the sender used do_send.
                if let Err(e) = &result {
                    tracing::error!(message = name, cause = %e, "journal operation failed");
                }
                let _ = tx.send(result);
            }) as Reply
        });
        let sent = self.jobs.send(job).is_ok();
        async move {
            if !sent {
                tracing::error!(message = name, "journal operation failed: the writer stopped");
                return Err(StoreError::WriterGone);
            }
            rx.await.unwrap_or(Err(StoreError::WriterGone))
        }
    }
}

impl Actor for StoreActor {
    type Context = Context<Self>;
}

/// Implements a store message (plain data declared beside it): its reply type and its handler,
/// which is one journal call run atomically on the writer thread. `stamped by f`: `f` is given the
/// answer and the moment its commit ended.
macro_rules! store_handler {
    ($name:ident -> $out:ty, |$store:ident, $msg:ident| $body:expr) => {
        store_handler!($name -> $out, stamped by |_, _| {}, |$store, $msg| $body);
    };
    ($name:ident -> $out:ty, stamped by $stamp:expr, |$store:ident, $msg:ident| $body:expr) => {
        impl Message for $name {
            type Result = StoreResult<$out>;
        }

        impl Request for $name {
            type Out = $out;
            const NAME: &'static str = stringify!($name);
            fn run(self, $store: &mut Store) -> StoreResult<$out> {
                let $msg = self;
                $body
            }
            fn stamp(out: &mut $out, at: std::time::Instant) {
                let stamp: fn(&mut $out, std::time::Instant) = $stamp;
                stamp(out, at);
            }
        }

        impl Handler<$name> for StoreActor {
            type Result = ResponseFuture<StoreResult<$out>>;
            fn handle(&mut self, m: $name, _: &mut Context<Self>) -> Self::Result {
                Box::pin(self.writer.ask(m))
            }
        }
    };
}

/// Journal the fills of a range and move the checkpoint (one transaction).
#[derive(Debug)]
pub struct JournalRange {
    /// The range's fills.
    pub fills: Vec<TargetFill>,
    /// The new checkpoint.
    pub to: (u64, B256),
    /// Blocks holding fills, for reorg detection.
    pub blocks: Vec<(u64, B256)>,
    /// The last (or only) part of the range read: sweeps the suspects it did not see again (see
    /// [`crate::store::Store::journal_blocks`]).
    pub sweep: bool,
}
store_handler!(JournalRange -> JournalOutcome, stamped by |o, at| stamp_journaled(&mut o.to_copy, at), |s, m| {
    s.journal_blocks(&m.fills, m.to, &m.blocks, m.sweep)
});

/// Marks fills whose journal write committed at `at`: their copies' latency is measured from then.
fn stamp_journaled(fills: &mut [PendingFill], at: std::time::Instant) {
    for p in fills {
        p.journaled = Some(at);
    }
}

/// Journal fills seen in a pending transaction (see [`crate::store::Store::journal_pending`]).
#[derive(Debug)]
pub struct JournalPending {
    /// The provisional fills.
    pub fills: Vec<TargetFill>,
    /// Which source saw them.
    pub source: &'static str,
    /// Wallets whose fills are copied at once (trigger `pending`).
    pub act_now: std::collections::HashSet<alloy::primitives::Address>,
}
store_handler!(JournalPending -> Vec<PendingFill>, stamped by |v, at| stamp_journaled(v, at), |s, m| {
    s.journal_pending(&m.fills, m.source, &m.act_now)
});

/// Journal RTDS rows of targets as sightings (see [`crate::store::Store::record_rtds`]).
#[derive(Debug)]
pub struct RecordRtds(pub Vec<(crate::market::rtds::row::RtdsRow, i64)>);
store_handler!(RecordRtds -> (), |s, m| s.record_rtds(&m.0));

/// Orphan the provisional fills of a transaction that will not be mined.
#[derive(Debug)]
pub struct OrphanTx(pub B256);
store_handler!(OrphanTx -> Vec<crate::store::Orphan>, |s, m| s.orphan_tx(m.0));

/// Each detection source's lead over the mined log since a time (unix ms).
#[derive(Debug)]
pub struct GetDetectionStats(pub i64);
store_handler!(GetDetectionStats -> crate::store::DetectionStats, |s, m| s.detection_stats(m.0));

/// Transactions with provisional fills waiting for their block.
#[derive(Debug)]
pub struct ProvisionalTxs;
store_handler!(ProvisionalTxs -> Vec<B256>, |s, _m| s.provisional_txs());

/// Rewind to a reorg's common ancestor.
#[derive(Debug)]
pub struct Rewind(pub (u64, B256));
store_handler!(Rewind -> usize, |s, m| s.rewind(m.0));

/// Recently processed block hashes, newest first.
#[derive(Debug)]
pub struct RecentBlocks;
store_handler!(RecentBlocks -> Vec<(u64, B256)>, |s, _m| s.recent_blocks());

/// The stored checkpoint.
#[derive(Debug)]
pub struct GetCheckpoint;
store_handler!(GetCheckpoint -> Option<(u64, B256)>, |s, _m| s.checkpoint());

/// Settle (or book) our order with its fill on chain (see [`crate::store::OwnSettlement`]).
#[derive(Debug)]
pub struct BookOwnFill {
    /// Our order id (its hash).
    pub order_id: String,
    /// Shares filled on chain.
    pub shares: Shares,
    /// pUSD paid or received.
    pub usdc: Usdc,
    /// The settling transaction.
    pub tx: String,
}
store_handler!(BookOwnFill -> crate::store::OwnSettlement, |s, m| s.settle_own_fill(&m.order_id, m.shares, m.usdc, &m.tx));

/// Record the unrealized P&L a trading day opened with.
#[derive(Debug)]
pub struct SetDayOpen {
    /// The day's opening, unix ms.
    pub day_start_ms: i64,
    /// Unrealized P&L of the open positions then.
    pub unrealized: Usdc,
}
store_handler!(SetDayOpen -> (), |s, m| s.set_day_open(m.day_start_ms, m.unrealized));

/// Orders in flight, for `/health`.
#[derive(Debug)]
pub struct GetOrderHealth;
store_handler!(GetOrderHealth -> crate::store::OrderHealth, |s, _m| s.order_health());

/// Store the signed order of a fill before it is sent (returns the fill's one order).
#[derive(Debug)]
pub struct RecordOrder {
    /// The fill.
    pub fill_row: i64,
    /// The signed order.
    pub order: crate::clob::order::StoredOrder,
}
store_handler!(RecordOrder -> (crate::store::OrderRow, Committed), stamped by |(_, c), at| c.0 = Some(at), |s, m| {
    Ok((s.record_order(m.fill_row, &m.order)?, Committed::default()))
});

/// When a write's commit ended (set once it did).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed(pub Option<std::time::Instant>);

/// The order stored for a fill.
#[derive(Debug)]
pub struct GetOrder(pub i64);
store_handler!(GetOrder -> Option<crate::store::OrderRow>, |s, m| s.order_for(m.0));

/// Count a send of a fill's order, before it leaves.
#[derive(Debug)]
pub struct OrderSent(pub i64);
store_handler!(OrderSent -> (), |s, m| s.order_sent(m.0));

/// What became of a fill's order.
#[derive(Debug)]
pub struct OrderOutcome {
    /// The fill.
    pub fill_row: i64,
    /// New status.
    pub status: crate::store::OrderStatus,
    /// Shares and pUSD, when it matched.
    pub amounts: Option<(i64, i64)>,
    /// The exchange's words.
    pub message: String,
}
store_handler!(OrderOutcome -> (), |s, m| s.order_outcome(m.fill_row, m.status, m.amounts, &m.message));

/// Matched orders whose settlement is overdue.
#[derive(Debug)]
pub struct UnsettledBefore(pub i64);
store_handler!(UnsettledBefore -> Vec<crate::store::Unsettled>, |s, m| s.unsettled_before(m.0));

/// Record an intent before it is executed; false when the fill must not be executed.
#[derive(Debug)]
pub struct RecordIntent(pub OrderIntent);
store_handler!(RecordIntent -> bool, |s, m| s.record_intent(&m.0));

/// Record an execution with the position and P&L it produced.
#[derive(Debug)]
pub struct RecordExecution {
    /// What was executed.
    pub exec: Execution,
    /// The target copied.
    pub wallet: Address,
}
store_handler!(RecordExecution -> Option<(Position, Usdc)>, |s, m| s.record_execution(&m.exec, &m.wallet));

/// A paper copy's intent and simulated execution, journaled in one write (see
/// [`crate::actors::risk_supervisor`]'s placement): nothing leaves the process, so the intent needs
/// no write of its own before the execution.
#[derive(Debug)]
pub struct RecordPaperCopy {
    /// The approved intent.
    pub intent: OrderIntent,
    /// Its simulated execution.
    pub exec: Execution,
    /// The target copied.
    pub wallet: Address,
    /// The intent is new (else it was journaled before a restart).
    pub fresh: bool,
    /// False while trading is halted: the intent is journaled, nothing is executed.
    pub may_send: bool,
}

/// What became of a paper copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaperCopy {
    /// Executed: the execution and the position and P&L it led to (`None`: the fill already had
    /// an execution, nothing was booked twice).
    Booked(Execution, Option<(Position, Usdc)>),
    /// The journal says it must not be executed (already handled, or under a reorg).
    Skipped,
    /// Halted: journaled, not executed.
    NotSent,
}

store_handler!(RecordPaperCopy -> (PaperCopy, Committed), stamped by |(_, c), at| c.0 = Some(at), |s, m| {
    let copy = match s.record_paper_copy(&m.intent, &m.exec, &m.wallet, m.fresh, m.may_send)? {
        PaperBooking::Booked(booked) => PaperCopy::Booked(m.exec, booked),
        PaperBooking::Skipped => PaperCopy::Skipped,
        PaperBooking::NotSent => PaperCopy::NotSent,
    };
    Ok((copy, Committed::default()))
});

/// Mark a fill as not copied.
#[derive(Debug)]
pub struct RecordRejection {
    /// Fill row.
    pub row: i64,
    /// Stable reason code.
    pub code: &'static str,
    /// Reason with numbers.
    pub detail: String,
}
store_handler!(RecordRejection -> (), |s, m| s.record_rejection(m.row, m.code, &m.detail));

/// Keep a fill pending with reason `unknown`: its order's fate is looked up at the next start.
#[derive(Debug)]
pub struct MarkUnresolved {
    /// Fill row.
    pub row: i64,
    /// What is known.
    pub detail: String,
}
store_handler!(MarkUnresolved -> (), |s, m| s.mark_unresolved(m.row, &m.detail));

/// A fill's execution and its realized P&L.
#[derive(Debug)]
pub struct GetExecution(pub i64);
store_handler!(GetExecution -> Option<(Execution, Usdc)>, |s, m| s.execution_for(m.0));

/// Take an unsettled execution out of the books, or put one that settled late back.
#[derive(Debug)]
pub struct RecordSettlementChange {
    /// The fill.
    pub fill_row: i64,
    /// Its token.
    pub token: TokenId,
    /// Our position after the change.
    pub position: Position,
    /// True when put back.
    pub restored: bool,
}
store_handler!(RecordSettlementChange -> (), |s, m| s.record_settlement_change(m.fill_row, &m.token, m.position, m.restored));

/// The latest marks of tokens we hold.
#[derive(Debug)]
pub struct SetMarks(pub std::collections::HashMap<TokenId, crate::domain::Price>);
store_handler!(SetMarks -> (), |s, m| s.set_marks(&m.0));

/// What a token is, with when it was fetched.
#[derive(Debug)]
pub struct GetMarket(pub TokenId);
store_handler!(GetMarket -> Option<(crate::market::MarketInfo, i64)>, |s, m| s.market(&m.0));

/// Cache what a token is.
#[derive(Debug)]
pub struct PutMarket(pub crate::market::MarketInfo);
store_handler!(PutMarket -> (), |s, m| s.put_market(&m.0));

/// A resolved market closed one of our positions.
#[derive(Debug)]
pub struct RecordSettlement {
    /// The settlement, as a SELL at the payout.
    pub exec: Execution,
    /// P&L it realized.
    pub realized: Usdc,
}
store_handler!(RecordSettlement -> (), |s, m| s.record_settlement(&m.exec, m.realized));

/// Fills journaled but not finished.
#[derive(Debug)]
pub struct Unfinished;
store_handler!(Unfinished -> Vec<PendingFill>, |s, _m| s.unfinished());

/// Our positions.
#[derive(Debug)]
pub struct LoadBook;
store_handler!(LoadBook -> Book, |s, _m| s.book());

/// A target's observed position in a token.
#[derive(Debug)]
pub struct TargetPosition {
    /// The target.
    pub wallet: Address,
    /// The token.
    pub token: TokenId,
}
store_handler!(TargetPosition -> Option<Shares>, |s, m| s.target_position(&m.wallet, &m.token));

/// The stored breaker.
#[derive(Debug)]
pub struct GetBreaker;
store_handler!(GetBreaker -> BreakerState, |s, _m| s.breaker());

/// Store the breaker.
#[derive(Debug)]
pub struct SetBreaker(pub BreakerState);
store_handler!(SetBreaker -> (), |s, m| s.set_breaker(&m.0));

/// Append to the events log.
#[derive(Debug)]
pub struct AddEvent {
    /// Event kind.
    pub kind: &'static str,
    /// Text.
    pub message: String,
}
store_handler!(AddEvent -> (), |s, m| s.add_event(m.kind, &m.message));

/// The journal's part of a status report.
#[derive(Debug)]
pub struct GetStatus;
store_handler!(GetStatus -> crate::store::StatusReport, |s, _m| s.status());

/// The newest journal rows.
#[derive(Debug)]
pub struct GetTrades(pub u32);
store_handler!(GetTrades -> Vec<crate::store::TradeRow>, |s, m| s.trades(m.0));

/// Realized P&L per day.
#[derive(Debug)]
pub struct GetPnlByDay {
    /// How many days.
    pub days: u32,
    /// Now, unix ms.
    pub now_ms: i64,
}
store_handler!(GetPnlByDay -> Vec<(i64, Usdc)>, |s, m| s.pnl_by_day(m.days, m.now_ms));

/// Everything a report is built from: all executions, last prices, the period's fill counts.
#[derive(Debug)]
pub struct GetReportData {
    /// Period start, unix ms.
    pub since_ms: i64,
}
/// What [`GetReportData`] returns.
pub type ReportData =
    (Vec<crate::store::ExecRow>, std::collections::BTreeMap<TokenId, crate::domain::Price>, crate::store::FillCounts);
store_handler!(GetReportData -> ReportData, |s, m| Ok((s.executions(0)?, s.last_prices()?, s.fill_counts(m.since_ms)?)));

/// Persist a target's paused state.
#[derive(Debug)]
pub struct SetPaused {
    /// The target.
    pub wallet: Address,
    /// Paused or not.
    pub paused: bool,
    /// Who.
    pub by: String,
}
store_handler!(SetPaused -> bool, |s, m| s.set_paused(&m.wallet, m.paused, &m.by));

/// Record the targets the daemon now watches.
#[derive(Debug)]
pub struct SetRunningTargets(pub Vec<(Address, String)>);
store_handler!(SetRunningTargets -> (), |s, m| s.set_running_targets(&m.0));

/// Keep Telegram messages undelivered at a stop.
#[derive(Debug)]
pub struct HoldTelegram(pub Vec<crate::store::HeldMessage>);
store_handler!(HoldTelegram -> (), |s, m| s.hold_telegram(&m.0));

/// Take the Telegram messages held from before the last stop.
#[derive(Debug)]
pub struct TakeHeldTelegram;
store_handler!(TakeHeldTelegram -> Vec<crate::store::HeldMessage>, |s, _m| s.take_held_telegram());

/// The names of the markets the journal knows, by token.
#[derive(Debug)]
pub struct MarketNames;
store_handler!(MarketNames -> std::collections::HashMap<TokenId, String>, |s, _m| s.market_names());

/// Journal a close order with its intent (before it is sent); answers its fill row, the fill and the intent.
#[derive(Debug)]
pub struct RecordClose {
    /// The SELL.
    pub order: crate::risk::close::CloseOrder,
    /// Separates closes asked within one millisecond.
    pub nonce: u64,
}
store_handler!(RecordClose -> (i64, crate::domain::TargetFill, crate::domain::OrderIntent), |s, m| s.record_close(&m.order, m.nonce));

/// The tokens of a market as the journal knows them.
#[derive(Debug)]
pub struct TokensOf(pub crate::risk::close::MarketSelector);
store_handler!(TokensOf -> Vec<TokenId>, |s, m| s.tokens_of(&m.0));

/// Pause a market (true) or lift its pause (false); answers whether anything changed.
#[derive(Debug)]
pub struct SetMarketPaused {
    /// The market.
    pub selector: crate::risk::close::MarketSelector,
    /// Its tokens known now.
    pub tokens: Vec<TokenId>,
    /// Pause or lift.
    pub paused: bool,
    /// Who.
    pub by: String,
}
store_handler!(SetMarketPaused -> bool, |s, m| if m.paused {
    s.pause_market(&m.selector, &m.tokens, &m.by)
} else {
    s.resume_market(&m.selector)
});

/// The paused markets.
#[derive(Debug)]
pub struct PausedMarkets;
store_handler!(PausedMarkets -> Vec<crate::store::PausedMarket>, |s, _m| s.paused_markets());

/// The price each token is marked at (last midpoint, else the last price traded).
#[derive(Debug)]
pub struct LastPrices;
store_handler!(LastPrices -> std::collections::BTreeMap<TokenId, crate::domain::Price>, |s, _m| s.last_prices());

/// When the last target fill was seen (unix ms), if any.
#[derive(Debug)]
pub struct TargetActivity;
store_handler!(TargetActivity -> Option<i64>, |s, _m| s.last_target_fill_ms());

/// (wins, trades) among the latest `n` closed trades (SELLs and settlements).
#[derive(Debug)]
pub struct RecentWins(pub u32);
store_handler!(RecentWins -> (u32, u32), |s, m| s.recent_wins(m.0));

/// Set our position in a token to what the chain holds (`reconcile --apply`).
#[derive(Debug)]
pub struct AdjustPosition {
    /// The token.
    pub token: TokenId,
    /// The shares the chain holds.
    pub to: crate::domain::Shares,
    /// An increase comes in at this price.
    pub price: crate::domain::Price,
    /// Why (the reconcile cause).
    pub cause: String,
    /// Who.
    pub by: String,
}
store_handler!(AdjustPosition -> crate::risk::Position, |s, m| s.adjust_position(m.token, m.to, m.price, &m.cause, &m.by));

/// The latest warnings journaled (unix ms, message), newest first: their cool-downs survive a restart.
#[derive(Debug)]
pub struct RecentWarnings;
store_handler!(RecentWarnings -> Vec<(i64, String)>, |s, _m| Ok(s
    .recent_events(&["warning"], 100)?
    .into_iter()
    .map(|(at, _, message)| (at, message))
    .collect()));

/// Our resolved tokens with their payouts.
#[derive(Debug)]
pub struct ResolvedTokens;
store_handler!(ResolvedTokens -> Vec<crate::store::Resolved>, |s, _m| s.resolved_tokens());

/// Redemptions being worked on.
#[derive(Debug)]
pub struct OpenRedemptions;
store_handler!(OpenRedemptions -> Vec<crate::store::RedemptionRow>, |s, _m| s.open_redemptions());

/// Journal a new redemption; answers its row id.
#[derive(Debug)]
pub struct PlanRedemption {
    /// The market.
    pub condition_id: alloy::primitives::B256,
    /// Its tokens we hold.
    pub tokens: Vec<TokenId>,
    /// Shares held.
    pub shares: crate::domain::Shares,
    /// What it pays.
    pub expected: crate::domain::Usdc,
    /// Planned (live) or paper.
    pub status: crate::store::RedeemStatus,
}
store_handler!(PlanRedemption -> i64, |s, m| s.plan_redemption(&m.condition_id, &m.tokens, m.shares, m.expected, m.status));

/// Journal a redemption's signed transaction (before it is sent).
#[derive(Debug)]
pub struct RedemptionSigned {
    /// The row.
    pub id: i64,
    /// Its hash.
    pub tx_hash: alloy::primitives::B256,
    /// Its bytes, hex.
    pub raw_tx: String,
}
store_handler!(RedemptionSigned -> (), |s, m| s.redemption_signed(m.id, &m.tx_hash, &m.raw_tx));

/// Move a redemption on.
#[derive(Debug)]
pub struct RedemptionStatus {
    /// The row.
    pub id: i64,
    /// Its new status.
    pub status: crate::store::RedeemStatus,
    /// Why.
    pub message: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not before (unix ms).
    pub next_try_ms: i64,
}
store_handler!(RedemptionStatus -> (), |s, m| s.redemption_status(m.id, m.status, &m.message, m.attempts, m.next_try_ms));

/// Whether a market has any redemption row.
#[derive(Debug)]
pub struct RedemptionExists(pub alloy::primitives::B256);
store_handler!(RedemptionExists -> bool, |s, m| s.redemption_exists(&m.0));

/// Every target's copy quality since a time (0: all).
#[derive(Debug)]
pub struct GetTargetQuality(pub i64);
store_handler!(GetTargetQuality -> std::collections::BTreeMap<Address, crate::store::TargetQuality>, |s, m| s.target_quality(m.0));
