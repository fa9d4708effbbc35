//! Approving an intent and running its placement without holding the supervisor.
//!
//! Approval is quick and happens in the actor: the breaker, the limits against the book *with every
//! order in flight reserved*, then the reservation. The placement (journal the intent, send, resolve,
//! journal the outcome) runs as its own task, bounded by a number of slots; its outcome comes back
//! as a message ([`Placed`]) that books the execution and releases the reservation. So halts,
//! `/health`, the watchdog and Telegram never wait behind a venue call, and several orders can be in
//! flight at once.
//!
//! A task, not a future spawned on the actor's context: actix polls every future spawned on a
//! context each time the context wakes, so thousands of placements waiting for a slot (a backfill)
//! made each message cost as much as all of them (measured: 20,000 fills ran at a third of the
//! speed of 5,000).
//!
//! Paper fills at the target's price need no venue: the intent and its simulated execution are
//! journaled in one write ([`crate::actors::store::RecordPaperCopy`]), with many more slots (they
//! bound only how many copies wait on the journal at once, which its group commit takes together).

use actix::{AsyncContext, Context, Handler, Message, Response};
use futures_util::future::LocalBoxFuture;

use super::{Decision, Evaluate, RiskSupervisor};
use crate::actors::executor::{ExecError, Execute};
use crate::actors::notifier::Event;
use crate::actors::store::{PaperCopy, RecordExecution, RecordIntent, RecordPaperCopy, Writer};
use crate::domain::{Execution, Usdc};
use crate::risk::{DenyReason, Reservation, Written, check_intent};
use crate::store::now_ms;

/// How a placement ended, applied to the actor's state when it comes back.
pub(super) enum Step {
    /// Executed and journaled: the execution and the position and P&L the journal computed
    /// (`None`: this fill already had an execution, nothing to book).
    Done(Execution, Option<(Written, Usdc)>),
    /// Nothing more to do: the order's outcome was already booked another way.
    Skipped,
    /// The journal refused its intent (already handled, or its fill under a reorg's cloud): it
    /// never was a trade, and its approval no longer counts against the wallet's limits.
    NotJournaled,
    /// A journal write failed.
    DbError(String),
    /// The order has its outcome at the exchange, and booking it in the journal failed.
    Unbooked(String),
    /// The executor failed.
    ExecFailed(ExecError),
}

impl Handler<Evaluate> for RiskSupervisor {
    type Result = Response<Decision>;

    /// Gates and reserves one intent, then lets its placement run. `Approved` comes once the
    /// placement has its slot: a backfill's copies then wait, small, in the copier, not as
    /// thousands of placements started at once (each holding its order and its journal writes).
    /// A decision known at once is replied at once (no future to spawn and poll).
    fn handle(&mut self, m: Evaluate, ctx: &mut Context<Self>) -> Self::Result {
        match self.approve(m) {
            Err(decision) => Response::reply(decision),
            // Recovery at start waits for every answer before the feed starts: it must not wait
            // behind orders hanging at the exchange.
            Ok((m, may_send)) if m.recovered || m.at_start => {
                self.launch(ctx, m, may_send);
                Response::reply(Decision::Approved)
            }
            Ok((m, may_send)) => match self.placement(ctx, m, may_send, self.slots.clone()) {
                None => Response::reply(Decision::Approved),
                Some(waiting) => Response::fut(async move {
                    waiting.await;
                    Decision::Approved
                }),
            },
        }
    }
}

impl RiskSupervisor {
    /// The breaker, the trading state, paused markets and every limit against the book with the
    /// orders in flight reserved; approved, the intent's exposure is reserved. Returns the intent
    /// (a SELL cut to what is sellable) and whether it may be sent, or the refusal.
    fn approve(&mut self, mut m: Evaluate) -> Result<(Evaluate, bool), Decision> {
        if self.reserved.holds(m.intent.fill_row) {
            // One order per fill: a second reservation would replace the first one's, and the
            // twin's end would then release the exposure of the order still in flight.
            tracing::debug!(fill = m.intent.fill_row, "this fill's order is already being placed");
            return Err(Decision::AlreadyPlacing);
        }
        let now = now_ms();
        self.roll_day(now);
        // Its checks are made under the halts counted so far: a halt after this (even one resumed
        // since) stops its sends, wherever it waits (a slot, its turn, a retry's pause). A retry
        // in the background keeps the count of its first approval.
        m.halts_seen.get_or_insert(self.gate.halts());
        // A recovered intent may already be at the exchange: even while halted it goes to the
        // executor, which only resolves what was sent and sends nothing new.
        // The operator's own close goes out in every trading state. Found again after a restart
        // (where the gate's count of halts starts afresh) it goes out if it was started after the
        // last halt asked for (journaled, also one that found trading already halted), as a close
        // while halted is; a halt raised after it started stays its last word.
        let started_after_halt = self.breaker.state.tripped
            && i64::try_from(m.fill.block_ts).unwrap_or(0).saturating_mul(1000) >= self.breaker.last_halt_ms();
        let operators_own = super::operator::is_operator(&m) && (!m.recovered || started_after_halt);
        let may_send = operators_own || (self.breaker.is_active() && self.gate.allows(m.intent.side));
        if self.breaker.state.reducing && !m.recovered && m.intent.side == crate::domain::Side::Buy {
            let reason = DenyReason::Reducing {
                reason: format!("only exits are copied ({}: {})", self.breaker.state.code, self.breaker.state.reason),
            };
            return Err(self.deny(&m, reason));
        }
        if !may_send && !m.recovered {
            let reason = if self.breaker.is_active() {
                // Closed by the control socket; the halt itself is the next message in the mailbox.
                DenyReason::Halted { reason: "manual: a halt was requested".into() }
            } else {
                self.halted_reason()
            };
            return Err(self.deny(&m, reason));
        }
        if !m.recovered
            && m.intent.side == crate::domain::Side::Buy
            && let Some(market) = self.paused_markets.covering(&m.intent.token_id, m.market.as_ref())
        {
            let reason = DenyReason::MarketPaused { market };
            return Err(self.deny(&m, reason));
        }
        if !m.recovered && m.intent.side == crate::domain::Side::Sell {
            // Never sell what another SELL in flight already claimed, or what we do not hold.
            let sellable = self.reserved.sellable(&self.book, &m.intent.token_id);
            let whole = crate::domain::Shares(sellable.0 - sellable.0.rem_euclid(crate::domain::LOT));
            if whole.0 <= 0 {
                return Err(self.deny(&m, DenyReason::NoPosition));
            }
            m.intent.shares = m.intent.shares.min(whole);
        }
        if !m.recovered {
            let activity = self.activity(&m.intent.wallet, now, m.max_trades_per_hour, m.min_trade_interval_s);
            let view = self.reserved.over(&self.book);
            if let Err(r) = check_intent(&m.intent, &self.limits, &view, self.pnl_today(), &activity, now) {
                return Err(self.deny(&m, r));
            }
            // Counted when approved: two orders in flight for one wallet are two trades. Only
            // BUYs: exits are exempt from the frequency limits, and must not use up their budget.
            if m.intent.side == crate::domain::Side::Buy {
                self.copies.entry(m.intent.wallet).or_default().push_back(now);
                m.counted_at_ms = Some(now);
            }
        }
        self.reserved.add(m.intent.fill_row, Reservation::of(&m.intent));
        if let Some((shares, usdc)) = m.booked {
            // Filled in part before a restart: the book holds that part already.
            self.reserved.filled_part(m.intent.fill_row, shares, usdc);
        }
        self.publish_reserved();
        Ok((m, may_send))
    }
}

/// A placement's outcome, sent back to the supervisor by the task that ran it.
pub(super) struct Placed {
    m: Evaluate,
    step: Step,
    /// A BUY sent more than once that ended refused: an earlier send's answer may have
    /// hidden a match that settles later (see [`RiskSupervisor::finish`]).
    sent_again: bool,
    /// The fill's journal commit → the paper copy's (live orders measure theirs when the signed
    /// order is stored, in the executor).
    elapsed: Option<std::time::Duration>,
}

impl Message for Placed {
    type Result = ();
}

impl Handler<Placed> for RiskSupervisor {
    type Result = ();

    fn handle(&mut self, Placed { m, step, sent_again, elapsed }: Placed, _: &mut Context<Self>) {
        self.finish(&m, step, sent_again, elapsed);
    }
}

impl RiskSupervisor {
    /// Runs the placement of `m` (already reserved) as its own task once it has a slot; [`Placed`]
    /// brings the outcome.
    pub(super) fn launch(&mut self, ctx: &mut Context<Self>, mut m: Evaluate, may_send: bool) {
        // Approved under the halts counted so far (see `approve`; a background attempt keeps its
        // first approval's count).
        m.halts_seen.get_or_insert(self.gate.halts());
        let slots = self.slots.clone();
        if let Some(waiting) = self.placement(ctx, m, may_send, slots) {
            actix::spawn(waiting);
        }
    }

    /// Starts the placement of `m`, which may send nothing, with a slot of its own kind (see
    /// [`RiskSupervisor::resolve_due`]): not behind placements watching orders for minutes, and
    /// not hundreds at once after an outage, which would crowd the operator's own orders out of
    /// the CLOB's pace.
    pub(super) fn launch_unslotted(&mut self, ctx: &mut Context<Self>, mut m: Evaluate) {
        m.halts_seen.get_or_insert(self.gate.halts());
        let slots = self.resolve_slots.clone();
        if let Some(waiting) = self.placement(ctx, m, false, slots) {
            actix::spawn(waiting);
        }
    }

    /// Counts the placement of `m` as in flight and starts it as its own task when a slot is free
    /// (`None`); else the returned future waits for its slot and then starts it. Slots go to
    /// waiters in turn, so one free now means nobody was waiting for it.
    fn placement(
        &mut self,
        ctx: &Context<Self>,
        m: Evaluate,
        may_send: bool,
        slots: std::sync::Arc<tokio::sync::Semaphore>,
    ) -> Option<LocalBoxFuture<'static, ()>> {
        self.in_flight += 1;
        let placer = Placer {
            writer: self.writer.clone(),
            executor: self.executor.clone(),
            paper: self.paper_instant,
            me: ctx.address(),
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                placer.start(m, may_send, Some(slot));
                None
            }
            Err(_) => {
                Some(Box::pin(async move {
                    // Closed only at shutdown: the placement then runs without a slot.
                    let slot = slots.acquire_owned().await.ok();
                    placer.start(m, may_send, slot);
                }))
            }
        }
    }
}

/// What a placement needs from the supervisor, taken along so that it runs beside it.
struct Placer {
    writer: Writer,
    executor: actix::Recipient<Execute>,
    paper: Option<u32>,
    me: actix::Addr<RiskSupervisor>,
}

impl Placer {
    /// Runs the placement of `m` as its own task, holding `slot` until it ends.
    fn start(self, m: Evaluate, may_send: bool, slot: Option<tokio::sync::OwnedSemaphorePermit>) {
        actix::spawn(async move {
            let (m, step, sent_again, elapsed) = match self.paper {
                Some(slippage_bps) => {
                    let (m, step, committed) = paper_copy(&self.writer, m, may_send, slippage_bps).await;
                    let elapsed = m.journaled.zip(committed).map(|(from, to)| to.saturating_duration_since(from));
                    (m, step, false, elapsed)
                }
                None => {
                    let (m, step) = place(&self.writer, &self.executor, m, may_send).await;
                    let sent_again = sent_again_short(&self.writer, &m, &step).await;
                    (m, step, sent_again, None)
                }
            };
            drop(slot);
            self.me.do_send(Placed { m, step, sent_again, elapsed });
        });
    }
}

/// Whether `m`, a BUY whose placement ended refused, was sent more than once: the exchange answers "not now" (425, 429, 503) of orders it did
/// not take, but an answer lost on the way (a gateway's 503, a timeout) may have hidden a match of
/// an earlier send, which then settles on chain later. Only then is the journal asked.
async fn sent_again_short(writer: &Writer, m: &Evaluate, step: &Step) -> bool {
    if m.intent.side != crate::domain::Side::Buy {
        return false;
    }
    // Only a refusal: a no-fill is the last send's own answer, or the chain's word once any fill
    // of any send would be there, and a match is booked with what it got. (A market BUY's match
    // is nearly always a little short of the intent's shares, its pUSD being whole cents: asking
    // the journal after every match cost every other copy a turn at its writer.)
    let short = matches!(step, Step::ExecFailed(ExecError::Rejected { .. }));
    short
        && matches!(
            writer.ask(crate::actors::store::GetOrder(m.intent.fill_row)).await,
            Ok(Some(o)) if o.posts >= 2
        )
}

/// Journal the intent (before anything leaves), have the executor place it, journal the outcome.
async fn place(writer: &Writer, executor: &actix::Recipient<Execute>, m: Evaluate, may_send: bool) -> (Evaluate, Step) {
    let intent = m.intent.clone();
    if !m.recovered {
        match writer.ask(RecordIntent(intent.clone())).await {
            Ok(true) => {}
            Ok(false) => return (m, Step::NotJournaled),
            Err(e) => return (m, Step::DbError(e.to_string())),
        }
        crate::fault::abort_at("abort_after_intent");
    }
    let wallet = intent.wallet;
    let manual = super::operator::is_operator(&m);
    let journaled = m.journaled;
    let fresh_intent = !m.recovered;
    let halts_seen = m.halts_seen;
    let at_start = m.at_start;
    let e = Execute { intent, at_ms: now_ms(), may_send, manual, halts_seen, journaled, fresh_intent, at_start };
    let exec = match executor.send(e).await {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => return (m, Step::ExecFailed(e)),
        Err(e) => return (m, Step::ExecFailed(ExecError::internal(e.to_string()))),
    };
    match writer.ask(RecordExecution { exec: exec.clone(), wallet }).await {
        // Reported as booked: a part our fill on chain booked first was reported then.
        Ok(Some((booked, position, realized))) => (m, Step::Done(booked, Some((position, realized)))),
        Ok(None) => (m, Step::Done(exec, None)),
        Err(e) => (m, Step::Unbooked(e.to_string())),
    }
}

/// A paper copy at the target's price: the intent (unless recovered) and its simulated execution
/// in one journal write. Nothing leaves the process, so there is nothing to be durable before.
/// Also returns when that write's commit ended.
async fn paper_copy(
    writer: &Writer,
    m: Evaluate,
    may_send: bool,
    slippage_bps: u32,
) -> (Evaluate, Step, Option<std::time::Instant>) {
    let exec = crate::actors::executor::paper_fill(&m.intent, slippage_bps, now_ms());
    let copy =
        RecordPaperCopy { intent: m.intent.clone(), exec, wallet: m.intent.wallet, fresh: !m.recovered, may_send };
    let (step, committed) = match writer.ask(copy).await {
        Ok((PaperCopy::Booked(exec, booked), c)) => (Step::Done(exec, booked), c.0),
        Ok((PaperCopy::Skipped, c)) => (Step::NotJournaled, c.0),
        Ok((PaperCopy::NotSent, c)) => (Step::ExecFailed(ExecError::NotSent), c.0),
        Err(e) => (Step::DbError(e.to_string()), None),
    };
    (m, step, committed)
}

impl RiskSupervisor {
    /// Applies a placement's outcome: books it, releases its reservation (kept while the outcome is
    /// unknown: the order may still fill), and wakes a shutdown waiting for the last one.
    pub(super) fn finish(&mut self, m: &Evaluate, step: Step, sent_again: bool, elapsed: Option<std::time::Duration>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        // A background attempt that ends unknown again is only rescheduled: it was reported (and
        // counted toward the error streak) once, when its first window closed.
        let retrying = self.unresolved.contains(m.intent.fill_row);
        // Our fill on chain booked it while the window closed (its reservation ended then), or for
        // good while this placement still ran (a FAK or FOK order fills once): the unknown answer
        // is stale, nothing is left to resolve and nothing went wrong.
        let booked_meanwhile =
            !self.reserved.holds(m.intent.fill_row) || self.reserved.is_done_on_chain(m.intent.fill_row);
        let step = match step {
            Step::ExecFailed(ExecError::Unknown(_)) if booked_meanwhile => Step::Skipped,
            // A refusal, a no-fill or "not sent" contradicted by our fill on chain, which booked
            // the order (an earlier send's answer lost, the engine took it): the chain is what
            // happened. Reported, it would say a booked copy was refused and count an error.
            Step::ExecFailed(e @ (ExecError::Rejected { .. } | ExecError::NoFill { .. } | ExecError::NotSent))
                if self.reserved.is_done_on_chain(m.intent.fill_row) =>
            {
                tracing::warn!(row = m.intent.fill_row, answer = %e,
                    "the exchange's last answer says the order did not fill, but our fill on chain booked it: the chain stands");
                Step::Skipped
            }
            step => step,
        };
        // A journal write that failed once the order may have left (its outcome, or its booking)
        // leaves it unresolved, not forgotten: its exposure stays reserved and it is looked up
        // again in the background, so a resume without a restart still books what it did.
        let may_have_left = match &step {
            Step::ExecFailed(ExecError::Unknown(_)) => true,
            Step::ExecFailed(ExecError::Journal(_)) | Step::Unbooked(_) => !booked_meanwhile,
            _ => false,
        };
        if let Step::ExecFailed(ExecError::Journal(e)) | Step::Unbooked(e) = &step
            && may_have_left
        {
            tracing::warn!(row = m.intent.fill_row, cause = %e,
                "a journal write failed once the order may have left: it stays reserved and is looked up again");
        }
        if let Step::Done(added, Some(_)) = &step
            && (self.reserved.awaits_parts(m.intent.fill_row) || sent_again)
        {
            // The order's own answer booked more than the chain's part (the whole match, say):
            // what it added is held by the book now, not by the rest still awaited.
            self.reserved.filled_part(m.intent.fill_row, added.shares, added.usdc);
        }
        if sent_again && !may_have_left && !matches!(step, Step::Skipped) {
            // Sent more than once and refused: an earlier send may have matched behind a lost
            // answer, and settle on chain later. The rest stays held (the caps count it) until our
            // fill on chain books it or the settlement timeout passes, as for later parts.
            self.reserved.await_later_parts(m.intent.fill_row, u64::try_from(now_ms() / 1000).unwrap_or(0));
            tracing::info!(row = m.intent.fill_row, rest = %self.reserved.rest(m.intent.fill_row),
                "a BUY sent more than once was refused: its size stays held against the caps until our fill on chain or the settlement timeout");
        }
        if may_have_left {
            self.reserved.unresolved(m.intent.fill_row);
            self.unresolved.failed(m, now_ms());
        } else if self.reserved.awaits_parts(m.intent.fill_row) && self.reserved.rest(m.intent.fill_row).0 > 0 {
            // Booked in part on chain while this attempt ran: its rest stays held for a later part
            // of the same match until the settlement timeout (`CheckSettlement` lets it go), also
            // when the attempt ends `Done` (a lookup replays the part the chain booked, not the
            // rest still settling; held a little too long, a rest only tightens the caps). It is
            // no longer being placed: a SELL of its token does not wait for it.
            self.reserved.unresolved(m.intent.fill_row);
            self.unresolved.done(m.intent.fill_row);
        } else {
            self.reserved.release(m.intent.fill_row);
            self.unresolved.done(m.intent.fill_row);
        }
        self.publish_reserved();
        tracing::debug!(
            fill = m.intent.fill_row,
            still_held = self.reserved.holds(m.intent.fill_row),
            "placement ended"
        );
        match step {
            Step::Done(exec, Some((position, realized))) => self.booked(m, exec, position, realized, elapsed),
            Step::Done(_, None) | Step::Skipped => {}
            Step::NotJournaled => self.uncount(m),
            Step::DbError(e) => self.trip("database_error", &format!("journal write failed: {e}"), "daemon"),
            Step::Unbooked(e) => self.trip(
                "database_error",
                &format!("journal write failed booking an order's outcome (it is looked up again): {e}"),
                "daemon",
            ),
            Step::ExecFailed(ExecError::Unknown(_)) if retrying => {}
            Step::ExecFailed(e) => {
                if !sent_again
                    && matches!(e, ExecError::Rejected { .. } | ExecError::NoFill { .. } | ExecError::NotSent)
                {
                    // No trade was made (refused before or when sent, or nothing matched): the
                    // target's budget of copies is not used up by it, as a restart, counting the
                    // journal's executions, would not count it either.
                    self.uncount(m);
                }
                let _ = self.exec_failed(m, e, sent_again);
            }
        }
        self.wake_position_waiters();
        if self.in_flight == 0 {
            for tx in self.drained.drain(..) {
                let _ = tx.send(());
            }
        }
    }

    /// Takes back the count of `m`'s approval against its wallet's frequency limits.
    fn uncount(&mut self, m: &Evaluate) {
        if let Some(at) = m.counted_at_ms
            && let Some(q) = self.copies.get_mut(&m.intent.wallet)
            && let Some(i) = q.iter().position(|t| *t == at)
        {
            q.remove(i);
        }
    }

    /// A copy the journal booked: the book takes the journal's position, P&L and limits follow.
    pub(super) fn booked(
        &mut self,
        m: &Evaluate,
        exec: Execution,
        position: Written,
        realized: Usdc,
        elapsed: Option<std::time::Duration>,
    ) {
        let latency_ms = exec.at_ms - i64::try_from(m.fill.block_ts).unwrap_or(0) * 1000;
        let event = Event::Executed {
            fill: m.fill.clone(),
            label: m.label.clone(),
            exec: exec.clone(),
            latency_ms,
            pipeline_us: elapsed.map(crate::actors::micros),
            market: m.market.clone(),
            realized: (exec.side == crate::domain::Side::Sell).then_some(realized),
        };
        let dust = (exec.side == crate::domain::Side::Sell)
            .then(|| crate::risk::close::dust(position.position.shares))
            .flatten();
        self.take_booking(&exec, position, realized, event);
        if let Some(left) = dust {
            // A full exit sells every whole lot; what is left cannot be sold and is said, not hidden.
            self.notifier.do_send(Event::Warning {
                code: "dust",
                message: format!(
                    "{left} shares of {} are left after this sale: less than one lot, the exchange cannot take them \
                     (they pay out when the market resolves)",
                    crate::actors::notifier::short_token(&exec.token_id.to_string())
                ),
            });
        }
    }

    /// What every booking does, whoever learned of it: the journal's position replaces ours, the
    /// realized P&L counts today, the error streak ends, the event is reported, limits follow.
    pub(super) fn take_booking(&mut self, exec: &Execution, position: Written, realized: Usdc, event: Event) {
        self.roll_day(now_ms());
        // A part of an execution of an earlier day is dated to it (its realized P&L is that day's):
        // what it moves of unrealized P&L moves the day's opening value with it, measured from the
        // book's position, unless the book already holds a newer one.
        let token = exec.token_id;
        if position.seq > self.written.get(&token).copied().unwrap_or(0) {
            let before = self.unrealized_of(&token, self.book.position(&token));
            let after = self.unrealized_of(&token, position.position);
            let carried = crate::risk::day::carried_to_open(exec.at_ms, self.day_start_ms, before, after);
            self.carry_into_day_open(Usdc(carried));
        }
        self.adopt(exec.token_id, position);
        // A part an execution of an earlier trading day grew by counts on that day, as the
        // journal's sums date it.
        if exec.at_ms >= self.day_start_ms {
            self.realized_today = Usdc(self.realized_today.0 + realized.0);
        }
        self.breaker.record_success();
        self.notifier.do_send(event);
        self.revalue();
        self.check_daily_loss();
        self.publish();
    }
}
