//! The risk supervisor: the one gateway every order passes. It checks each intent against the
//! limits and the breaker, journals it *before* execution, has the executor place it, journals the
//! outcome, and keeps the book. It also watches the breaker (CLI halt/resume through the journal)
//! and the emergency-stop file. Valuation (marks, settlement on chain) is in `valuation`.

mod day;
mod messages;
mod not_sent;
mod on_chain;
mod operator;
mod placement;
mod positions;
mod resolver;
mod settlement;
mod setup;
mod valuation;

pub use messages::{
    BuyOpen, Decision, Evaluate, Flush, GetBreakerState, GetPosition, HaltAsked, Placing, ResumeFrom, SetTrading,
};
pub use operator::{BookAdjusted, CHANGED_SINCE_SHOWN, Close, CloseStarted, MarketPauses, OperatorDid, close_summary};
pub use setup::{RiskConfig, RiskPeers, RiskState};
pub use valuation::GetPnlToday;

pub use settlement::CheckSettlement;
pub use valuation::{GetOpenTokens, Marks, Resolved};

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, MessageResult, Recipient, WrapFuture};
use alloy::primitives::Address;

use crate::actors::executor::{ExecError, Execute};
use crate::actors::notifier::{Event, Notifier};
use crate::actors::store::{
    GetBreaker, MarkUnresolved, NoteHaltAsked, RecordRefusal, RecordRejection, SetBreaker, StoreActor,
};
use crate::domain::{Shares, TokenId, Usdc};
use crate::metrics::Metrics;
use crate::risk::{Book, Breaker, BreakerState, DenyReason, Limits, WalletActivity, Written};
use crate::store::now_ms;

/// The gateway actor.
pub struct RiskSupervisor {
    /// Ends the daemon if this actor dies of a panic (see [`crate::actors::vital`]).
    _vital: crate::actors::vital::Vital,
    limits: Limits,
    breaker: Breaker,
    /// Bumped on every local breaker change, so a journal read that raced with it is ignored.
    breaker_epoch: u64,
    /// The cause last reported of a halt asked for while already halted (each new one is said
    /// once, not once per failing write).
    said_while_halted: Option<String>,
    book: Book,
    /// The journal's stamp of the last position the book took for each token (see [`Written`]).
    written: HashMap<TokenId, u64>,
    realized_today: Usdc,
    /// Marks (CLOB midpoints) of tokens we hold, and the unrealized P&L they give.
    marks: HashMap<TokenId, crate::domain::Price>,
    /// The position each mark was read for: shares bought since count at cost until the next mark
    /// (see [`crate::risk::day::unrealized_at`]).
    marked: HashMap<TokenId, crate::risk::Position>,
    unrealized: Usdc,
    /// Whether the CLOB has marked the book since the start (before, the journal's last marks).
    marked_since_start: bool,
    day_start_ms: i64,
    /// The open positions' unrealized P&L when the trading day opened (`None`: not known yet).
    unrealized_at_open: Option<Usdc>,
    /// The day last left, opened again if the clock is set back into it.
    left_day: Option<day::LeftDay>,
    day_starts_at_hour: u32,
    daily_loss_halts: bool,
    journal: Option<(PathBuf, crate::store::identity::FileIdentity)>,
    copies: HashMap<Address, VecDeque<i64>>,
    store: Addr<StoreActor>,
    writer: crate::actors::store::Writer,
    executor: Recipient<Execute>,
    notifier: Addr<Notifier>,
    stop_file: PathBuf,
    poll: Duration,
    metrics: Arc<Metrics>,
    gate: crate::risk::TradingGate,
    /// Exposure held by orders in flight (and by orders whose outcome is still unknown).
    reserved: crate::risk::Reservations,
    /// Placements running now (journal, send, resolve).
    in_flight: usize,
    /// Orders whose outcome is still unknown after their window, resolved in the background.
    unresolved: resolver::Unresolved,
    /// The operator was told the chain is read too far behind for the settlement check.
    chain_behind_told: bool,
    /// At most this many placements run at once; the rest wait for a slot, not the mailbox.
    slots: Arc<tokio::sync::Semaphore>,
    /// Slots of background attempts that may send nothing (trading stopped): only lookups and
    /// cancels, apart from the placements' slots (see `launch_unslotted`).
    resolve_slots: Arc<tokio::sync::Semaphore>,
    /// Replied to when no placement runs any more (shutdown).
    drained: Vec<tokio::sync::oneshot::Sender<()>>,
    /// Position questions waiting for a BUY of their token (see [`GetPosition`]): (token, until
    /// when, part of recovery at start, where the answer goes).
    position_waiters: Vec<(TokenId, std::time::Instant, bool, tokio::sync::oneshot::Sender<Shares>)>,
    /// Markets the operator paused: no BUY into them.
    paused_markets: operator::Paused,
    /// A close's limit is this far under its reference price.
    close_slippage_bps: u32,
    /// Counts close orders (keys of their reservations while they are journaled).
    close_nonce: u64,
    /// See [`RiskConfig::paper_instant`].
    paper_instant: Option<u32>,
    /// Its own address, once started: tasks awaiting a journal write report a failure here.
    me: Option<Addr<Self>>,
    /// Tokens whose exits, during recovery at start, waited their time for a BUY of the token
    /// already: the token's later exits do not wait again (each in turn would add its wait to the
    /// start's).
    waited_at_start: std::collections::HashSet<TokenId>,
}

impl std::fmt::Debug for RiskSupervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RiskSupervisor")
            .field("breaker", &self.breaker)
            .field("book", &self.book)
            .finish_non_exhaustive()
    }
}

const HOUR_MS: i64 = 3_600_000;

/// Paper copies at the target's price waiting on the journal at once: about one group commit's
/// worth, so a backfill's copies are journaled together without all of them queued at once.
const PAPER_SLOTS: usize = 256;

/// Background attempts that may send nothing, run at once (each a cancel and a few lookups).
const RESOLVE_SLOTS: usize = 16;

impl RiskSupervisor {
    /// A supervisor starting from `state`.
    #[must_use]
    pub fn new(cfg: RiskConfig, state: RiskState, peers: RiskPeers) -> Self {
        let RiskConfig {
            limits,
            max_consecutive_errors,
            stop_file,
            poll,
            max_in_flight,
            day_starts_at_hour,
            daily_loss_halts,
            close_slippage_bps,
            journal,
            paper_instant,
        } = cfg;
        let RiskPeers { store, writer, executor, notifier, metrics, gate } = peers;
        gate.set(state.breaker.trading());
        let mut copies: HashMap<Address, VecDeque<i64>> = HashMap::new();
        for (w, t) in state.recent_copies {
            copies.entry(w).or_default().push_back(t);
        }
        // The journal's marks were read for the positions as the journal holds them.
        let marked = state.marks.keys().map(|t| (*t, state.book.position(t))).collect();
        let mut supervisor = Self {
            _vital: crate::actors::vital::Vital::new("the risk supervisor"),
            limits,
            breaker: Breaker::new(state.breaker, max_consecutive_errors),
            breaker_epoch: 0,
            said_while_halted: None,
            book: state.book,
            written: HashMap::new(),
            realized_today: state.realized_today,
            marked,
            marks: state.marks,
            unrealized: Usdc::ZERO,
            marked_since_start: false,
            day_start_ms: state.day_start_ms,
            unrealized_at_open: state.unrealized_at_open,
            left_day: None,
            day_starts_at_hour,
            daily_loss_halts,
            journal,
            copies,
            store,
            writer,
            executor,
            notifier,
            stop_file,
            poll,
            metrics,
            gate,
            reserved: crate::risk::Reservations::default(),
            in_flight: 0,
            unresolved: resolver::Unresolved::default(),
            chain_behind_told: false,
            resolve_slots: Arc::new(tokio::sync::Semaphore::new(RESOLVE_SLOTS)),
            slots: Arc::new(tokio::sync::Semaphore::new(if paper_instant.is_some() {
                PAPER_SLOTS
            } else {
                max_in_flight.max(1)
            })),
            drained: Vec::new(),
            position_waiters: Vec::new(),
            paused_markets: operator::Paused::new(&state.paused_markets),
            close_slippage_bps,
            close_nonce: 0,
            paper_instant,
            me: None,
            waited_at_start: std::collections::HashSet::new(),
        };
        // Valued at the journal's last marks until the CLOB marks it again (a token it no longer
        // marks keeps its last mark instead of counting at cost against an opening that did not).
        supervisor.revalue();
        supervisor
    }

    /// Takes the journal's position in `token` unless the book already has a newer one: answers
    /// about the journal's writes may arrive in another order than they were written.
    fn adopt(&mut self, token: TokenId, w: Written) {
        let seen = self.written.entry(token).or_default();
        if w.seq > *seen {
            *seen = w.seq;
            self.book.set(token, w.position);
            // A position closed forgets its mark (the journal does too): bought again later, it
            // counts at cost until marked again, never at the price it had before.
            if w.position.shares.0 == 0 {
                self.marks.remove(&token);
                self.marked.remove(&token);
            } else if let Some(marked) = self.marked.get_mut(&token)
                && w.position.shares.0 < marked.shares.0
            {
                // Sold down: what is left is what the mark was read for; a BUY after it adds
                // shares of its own, at their cost.
                *marked = w.position;
            }
        }
    }

    /// Publishes the breaker, exposure and P&L gauges.
    fn publish(&self) {
        // Only ever restricts here: opening is a resume's job (see TradingGate).
        self.gate.restrict(self.breaker.state.trading());
        self.metrics.breaker_tripped.store(self.breaker.state.tripped, Ordering::Relaxed);
        let state = match self.breaker.state.trading() {
            crate::risk::TradingState::Active => 0,
            crate::risk::TradingState::Reducing => 1,
            crate::risk::TradingState::Halted => 2,
        };
        self.metrics.trading_state.store(state, Ordering::Relaxed);
        self.metrics.exposure.store(self.book.exposure().0, Ordering::Relaxed);
        self.metrics.pnl_today.store(self.realized_today.0, Ordering::Relaxed);
        self.metrics.unrealized_pnl.store(self.unrealized.0, Ordering::Relaxed);
        self.metrics.pnl_counted_today.store(self.pnl_today().0, Ordering::Relaxed);
        self.metrics.daily_loss_limit.store(self.limits.daily_loss_limit_usdc.0, Ordering::Relaxed);
    }

    /// The exposure held by orders in flight, for `/metrics`: kept apart from [`Self::publish`],
    /// as it changes with every approval and outcome.
    pub(super) fn publish_reserved(&self) {
        self.metrics.reserved.store(self.reserved.buy_usdc().0, Ordering::Relaxed);
        self.metrics.orders_in_flight.store(self.reserved.len() as u64, Ordering::Relaxed);
    }

    fn trip(&mut self, code: &str, reason: &str, by: &str) {
        if self.breaker.trip(code, reason, by, now_ms()) {
            self.breaker_epoch += 1;
            self.store.do_send(SetBreaker(self.breaker.state.clone()));
            self.notifier.do_send(Event::BreakerTripped(self.breaker.state.clone()));
            self.publish();
            self.unresolved.bring_forward(None);
        } else if code != self.breaker.state.code && self.said_while_halted.as_deref() != Some(code) {
            // Already halted for another cause: the halt stands as it is, but this cause (a
            // journal that fails, say) is said, or a later resume would lift it unmentioned.
            self.said_while_halted = Some(code.to_owned());
            let message = format!(
                "while already halted ({}): {code}: {reason} (a resume does not clear its cause)",
                self.breaker.state.code
            );
            tracing::error!("{message}");
            self.notifier.do_send(Event::Error { message });
        }
    }

    /// Moves to reducing: only exits go out from now on.
    pub(super) fn reduce(&mut self, code: &str, reason: &str, by: &str) {
        if self.breaker.reduce(code, reason, by, now_ms()) {
            self.breaker_epoch += 1;
            self.store.do_send(SetBreaker(self.breaker.state.clone()));
            self.notifier.do_send(Event::BreakerTripped(self.breaker.state.clone()));
            self.publish();
            // Only BUYs are stopped: their attempts come forward (a resting one is cancelled);
            // exits, still allowed, keep their turn.
            self.unresolved.bring_forward(Some(crate::domain::Side::Buy));
        }
    }

    /// Back to active, by the operator's resume: the gate opens.
    pub(super) fn reset(&mut self, by: &str) {
        if let Some(was) = self.breaker.reset(by, now_ms()) {
            self.said_while_halted = None;
            self.gate.open();
            self.reset_done(was, by);
        }
    }

    /// Back to active by the daemon (the loss limit's day has ended). Unlike a resume, it opens
    /// only the exits-only gate it lifts: a halt that closed the gate ahead of its message to us
    /// stays closed, and its message halts us next.
    pub(super) fn lift(&mut self) {
        if let Some(was) = self.breaker.reset("daemon", now_ms()) {
            self.gate.lift_exits_only();
            self.reset_done(was, "daemon");
        }
    }

    fn reset_done(&mut self, was: BreakerState, by: &str) {
        self.breaker_epoch += 1;
        self.store.do_send(SetBreaker(self.breaker.state.clone()));
        self.notifier.do_send(Event::BreakerReset { was, by: by.to_owned() });
    }

    fn activity(&mut self, wallet: &Address, now: i64, own_max: Option<u32>, gap: Option<u64>) -> WalletActivity {
        let q = self.copies.entry(*wallet).or_default();
        while q.front().is_some_and(|t| *t <= now - HOUR_MS) {
            q.pop_front();
        }
        WalletActivity {
            trades_last_hour: u32::try_from(q.len()).unwrap_or(u32::MAX),
            last_trade_ms: q.back().copied(),
            max_trades_per_hour: own_max,
            min_trade_interval_s: gap,
        }
    }

    /// Journals and reports a placement's refusal (its intent journaled: the order's outcome).
    fn reject(&self, m: &Evaluate, reason: DenyReason) -> Decision {
        self.store.do_send(RecordRejection { row: m.intent.fill_row, code: reason.code(), detail: reason.to_string() });
        self.said_rejected(m, reason)
    }

    /// Journals and reports a copy refused before approval: a fresh copy's refusal never touches
    /// a fill whose intent an earlier copy of it journaled (see `RecordRefusal`); a recovered
    /// intent's is its own outcome.
    fn deny(&self, m: &Evaluate, reason: DenyReason) -> Decision {
        if m.recovered {
            return self.reject(m, reason);
        }
        self.store.do_send(RecordRefusal { row: m.intent.fill_row, code: reason.code(), detail: reason.to_string() });
        self.said_rejected(m, reason)
    }

    fn said_rejected(&self, m: &Evaluate, reason: DenyReason) -> Decision {
        self.notifier.do_send(Event::Rejected {
            fill: m.fill.clone(),
            label: m.label.clone(),
            reason: reason.clone(),
            market: m.market.clone(),
        });
        Decision::Rejected(reason)
    }

    fn count_error(&mut self) {
        if self.breaker.record_error(now_ms()) {
            self.gate.close();
            self.breaker_epoch += 1;
            self.store.do_send(SetBreaker(self.breaker.state.clone()));
            self.notifier.do_send(Event::BreakerTripped(self.breaker.state.clone()));
            self.unresolved.bring_forward(None);
        }
    }

    fn halted_reason(&self) -> DenyReason {
        DenyReason::Halted { reason: format!("{}: {}", self.breaker.state.code, self.breaker.state.reason) }
    }

    /// Journals and reports an execution that produced no fill, and feeds the breaker.
    /// A placement that ended without a trade (`sent_again`: sent more than once, see `finish`).
    fn exec_failed(&mut self, m: &Evaluate, e: ExecError, sent_again: bool) -> Decision {
        match e {
            ExecError::NotSent => {
                let reason = not_sent::not_sent_reason(&self.breaker.state, m.intent.side);
                self.reject(m, reason)
            }
            ExecError::Rejected { code, message, counts_as_error } => {
                // Gone stale while it waited for its turn: the position stays open (see the copier).
                let held = self.book.position(&m.intent.token_id).shares;
                if code == "stale" && m.intent.side == crate::domain::Side::Sell && held.0 > 0 {
                    let message = crate::actors::copier::stale_exit_alert(&m.label, &m.intent.token_id, Some(held));
                    tracing::warn!("{message}");
                    self.notifier.do_send(Event::Alert { message });
                }
                let balance =
                    code == crate::clob::outcome::INSUFFICIENT_BALANCE && m.intent.side == crate::domain::Side::Buy;
                if balance && sent_again {
                    // Refused when sent again: most likely the pUSD an earlier send's match spent
                    // behind a lost answer (its size stays held until the chain says), not an
                    // empty wallet. Said, neither reducing nor counted.
                    self.notifier.do_send(Event::Error {
                        message: format!(
                            "order for {} refused when sent again: {code}: {message} (an earlier send may have \
                             matched; its size stays held until our fill on chain or the settlement timeout)",
                            m.label
                        ),
                    });
                } else if balance {
                    // The funder's pUSD (or its allowance) does not cover our BUYs: more BUYs would
                    // be refused the same way, but exits still free cash and must go on. Reducing,
                    // not the error streak's halt, which would stop them too.
                    self.notifier
                        .do_send(Event::Error { message: format!("order for {} refused: {code}: {message}", m.label) });
                    self.reduce(
                        code,
                        &format!(
                            "the exchange refused a BUY for the funder's pUSD balance or allowance ({message}): \
                             exits are still copied; fund the wallet (or approve pUSD), then resume"
                        ),
                        "daemon",
                    );
                } else if counts_as_error {
                    self.count_error();
                    self.notifier
                        .do_send(Event::Error { message: format!("order for {} refused: {code}: {message}", m.label) });
                }
                self.reject(m, DenyReason::Venue { code, message })
            }
            ExecError::NoFill { code, message } => self.reject(m, DenyReason::Venue { code, message }),
            ExecError::Unknown(message) => {
                // Left pending and reserved: it is looked up again in the background (resolver.rs),
                // booked if it filled, and never sent as a new order.
                // An order found again at a start is not counted: it was sent by the run before,
                // and a restart during an exchange outage must not halt trading on orders that
                // only wait for an answer (each is still reported).
                if !(m.recovered && m.at_start) {
                    self.count_error();
                }
                self.store.do_send(MarkUnresolved { row: m.intent.fill_row, detail: message.clone() });
                self.notifier.do_send(Event::Error {
                    message: format!("order for {} has an unknown outcome ({message}); it keeps being looked up in the background and is booked if it filled, never sent as a new order", m.label),
                });
                Decision::Failed(message)
            }
            ExecError::Auth(message) => {
                self.trip("auth_error", &format!("the CLOB refused our API credentials: {message}"), "daemon");
                self.store.do_send(RecordRejection {
                    row: m.intent.fill_row,
                    code: "auth_error",
                    detail: message.clone(),
                });
                Decision::Failed(message)
            }
            ExecError::Journal(message) => {
                self.trip("database_error", &format!("journal write failed: {message}"), "daemon");
                Decision::Failed(message)
            }
        }
    }

    /// Reads the journal's breaker (CLI halt/resume) and the stop file.
    fn poll_breaker(&mut self, ctx: &mut Context<Self>) {
        self.roll_day(now_ms());
        if let Some((path, opened)) = &self.journal
            && let Some(why) = crate::store::identity::journal_moved(path, Some(*opened))
        {
            self.trip("database_error", &format!("{why}: restore it (see RUNBOOK) and restart"), "daemon");
        }
        self.publish();
        self.wake_position_waiters();
        if self.breaker.is_active() && self.stop_file.exists() {
            let reason = format!("emergency stop file {} is present", self.stop_file.display());
            self.trip("emergency_stop", &reason, "stop-file");
        }
        let epoch = self.breaker_epoch;
        ctx.spawn(self.store.send(GetBreaker).into_actor(self).map(move |res, act, _| {
            let Ok(Ok(db)) = res else { return };
            let mem = &act.breaker.state;
            if act.breaker_epoch != epoch || db == *mem {
                return;
            }
            if (BreakerState { halt_asked_ms: mem.halt_asked_ms, ..db.clone() }) == *mem {
                // Only a halt asked for while halted differs (the command line's, written to the
                // journal): the later time is kept on both sides.
                if db.halt_asked_ms > mem.halt_asked_ms {
                    act.breaker.state.halt_asked_ms = db.halt_asked_ms;
                    act.publish();
                } else {
                    act.store.do_send(SetBreaker(mem.clone()));
                }
                return;
            }
            // A halt the command line wrote while we changed state on our own (asked later than
            // any halt we know of) is obeyed, whatever the times: the journal kept it over ours.
            let newer_halt = db.trading() == crate::risk::TradingState::Halted && db.halt_asked_ms > mem.halt_asked_ms;
            if db.since_ms < mem.since_ms && !newer_halt {
                // Our newer state never reached the journal (it was failing): write it again, so
                // a trip survives a restart.
                act.store.do_send(SetBreaker(mem.clone()));
                return;
            }
            act.breaker_epoch += 1;
            let db = BreakerState { halt_asked_ms: db.halt_asked_ms.max(mem.halt_asked_ms), ..db };
            if db.trading() != crate::risk::TradingState::Active {
                act.gate.set(db.trading());
                act.breaker.state = db.clone();
                act.unresolved.bring_forward(stopped_side(db.trading()));
                act.notifier.do_send(Event::BreakerTripped(db));
            } else {
                let was = std::mem::replace(&mut act.breaker.state, db.clone());
                act.breaker.consecutive_errors = 0;
                act.gate.open();
                if was.trading() != crate::risk::TradingState::Active {
                    act.notifier.do_send(Event::BreakerReset { was, by: db.by });
                }
            }
        }));
    }
}

impl Actor for RiskSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address());
        self.poll_breaker(ctx);
        ctx.run_interval(self.poll, Self::poll_breaker);
        // Often enough that an attempt a halt brought forward (the cancel of a GTD order that may
        // rest on the book) starts within half a second; a look at a small map otherwise.
        ctx.run_interval(Duration::from_millis(500), Self::resolve_due);
    }
}

impl Handler<GetBreakerState> for RiskSupervisor {
    type Result = MessageResult<GetBreakerState>;

    /// The breaker as the supervisor holds it.
    fn handle(&mut self, _: GetBreakerState, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.breaker.state.clone())
    }
}

/// The side a trading state stops on its own: `None` for every side (halted), BUYs while reducing.
fn stopped_side(state: crate::risk::TradingState) -> Option<crate::domain::Side> {
    (state == crate::risk::TradingState::Reducing).then_some(crate::domain::Side::Buy)
}

impl Handler<SetTrading> for RiskSupervisor {
    type Result = ();

    /// Halts or resumes.
    fn handle(&mut self, m: SetTrading, _: &mut Context<Self>) {
        if m.halt { self.trip(m.code, &m.reason, &m.by) } else { self.reset(&m.by) }
    }
}

impl Handler<HaltAsked> for RiskSupervisor {
    type Result = ();

    fn handle(&mut self, m: HaltAsked, _: &mut Context<Self>) {
        if !self.breaker.state.tripped {
            self.trip("manual", &m.reason, &m.by);
            return;
        }
        if self.breaker.halt_asked(m.at_ms) {
            self.store.do_send(NoteHaltAsked(m.at_ms));
            self.publish();
        }
    }
}

impl Handler<ResumeFrom> for RiskSupervisor {
    type Result = actix::AtomicResponse<Self, bool>;

    fn handle(&mut self, m: ResumeFrom, _: &mut Context<Self>) -> Self::Result {
        // The tests' hook: this resume's turn is stretched (nothing else in the mailbox runs
        // meanwhile), as a long backlog of fills ahead of it would.
        let turn = crate::fault::hold_at("hold_resume").into_actor(self);
        actix::AtomicResponse::new(Box::pin(turn.map(move |(), act, _| act.resume_from(&m))))
    }
}

impl RiskSupervisor {
    /// Resumes unless a halt came after the resume was asked for (see [`ResumeFrom`]).
    fn resume_from(&mut self, m: &ResumeFrom) -> bool {
        let state = &self.breaker.state;
        let same_halt = (state.tripped || state.reducing) && m.since_ms.is_none_or(|s| state.since_ms == s);
        let no_halt_since = m.last_halt_ms.is_none_or(|at| at >= self.breaker.last_halt_ms());
        if !same_halt || self.gate.halts() != m.halts_seen || !no_halt_since {
            return false;
        }
        self.reset(&m.by);
        true
    }
}

impl Handler<Flush> for RiskSupervisor {
    type Result = actix::ResponseFuture<()>;

    /// Replies once no placement runs any more (at shutdown: in-flight orders finish or time out).
    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> Self::Result {
        if self.in_flight == 0 {
            return Box::pin(async {});
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.drained.push(tx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
