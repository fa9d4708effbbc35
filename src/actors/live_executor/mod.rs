//! The live executor: places an approved intent on Polymarket's CLOB exactly once.
//!
//! Order of events for one fill: market rules → limit on the tick and size in lots → the order is
//! built and signed with a salt derived from the fill → **stored in the journal** → counted as sent →
//! posted. An answer that does not say what happened (timeout, reset, 5xx, "Duplicated") is
//! resolved by looking the order up by its hash; only an order the exchange does not have is sent
//! again, and then it is the very same signed order, which cannot fill twice. A fill whose order
//! is already in the journal (a crash came between) starts with that lookup.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Context, Handler, ResponseFuture};
use tracing::info;

use crate::actors::executor::{ExecError, Execute};
use crate::actors::store::{
    FillStands, GetOrder, OrderHeld, OrderNeverSent, OrderOutcome, OrderSent, RecordOrder, Writer,
};
use crate::chain::ChainClock;
use crate::clob::account::OrderKind;
use crate::clob::amounts::market_order_amounts;
use crate::clob::order::{StoredOrder, salt_for};
use crate::clob::outcome::PostOutcome;
use crate::clob::pricing::{approved_limit_on_tick, size_for_market};
use crate::clob::venue::Venue;
use crate::domain::{Execution, OrderIntent};
use crate::risk::TradingGate;
use crate::store::OrderStatus;
use crate::store::now_ms;
use resolution::MAX_NULL_RESENDS;

mod cancels;
mod lookup;

pub use cancels::pay_owed as pay_owed_cancels;
mod post;
mod resolution;

use resolution::{AfterPost, Resolution, Step, Tries};

/// Timing and retry rules of live execution.
#[derive(Debug, Clone, Copy)]
pub struct LiveRules {
    /// A copy older than this (target's block to now) is not sent, seconds; 0 = no limit.
    pub max_copy_delay_s: u64,
    /// How long an unknown outcome is looked up.
    pub resolve_for: Duration,
    /// Retries after 425/503/429.
    pub max_retries: u32,
    /// First backoff.
    pub retry_backoff: Duration,
    /// Wait after a 429 that names none.
    pub rate_limit_wait: Duration,
    /// A match settles on chain within this (else it is reversed): an order of unknown fate with
    /// no fill of ours on chain this long after its last chance to match did not fill.
    pub settle_within: Duration,
}

/// Places orders on the CLOB.
#[derive(Debug)]
pub struct LiveExecutor {
    /// Ends the daemon if this actor dies of a panic (see [`crate::actors::vital`]).
    _vital: crate::actors::vital::Vital,
    venue: Arc<Venue>,
    writer: Writer,
    rules: LiveRules,
    gate: TradingGate,
    chain: ChainClock,
}

impl LiveExecutor {
    /// An executor trading through `venue`, journaling straight on the journal's `writer` (the
    /// store actor's mailbox would add a hop each way to every step of an order), sending nothing
    /// while `gate` is closed, and knowing from `chain` how far our own fills on chain are journaled.
    #[must_use]
    pub const fn new(
        venue: Arc<Venue>,
        writer: Writer,
        rules: LiveRules,
        gate: TradingGate,
        chain: ChainClock,
    ) -> Self {
        Self { _vital: crate::actors::vital::Vital::new("the live executor"), venue, writer, rules, gate, chain }
    }
}

impl Actor for LiveExecutor {
    type Context = Context<Self>;
}

impl Handler<Execute> for LiveExecutor {
    type Result = ResponseFuture<Result<Execution, ExecError>>;

    /// Places (or resolves) the intent's one order.
    fn handle(&mut self, m: Execute, _: &mut Context<Self>) -> Self::Result {
        let run = Run {
            venue: self.venue.clone(),
            writer: self.writer.clone(),
            rules: self.rules,
            intent: m.intent,
            may_send: m.may_send,
            manual: m.manual,
            halts_before: m.halts_seen.unwrap_or_else(|| self.gate.halts()),
            gate: self.gate.clone(),
            chain: self.chain.clone(),
            journaled: m.journaled,
            fresh_intent: m.fresh_intent,
            at_start: m.at_start,
        };
        Box::pin(async move { run.execute().await })
    }
}

struct Run {
    venue: Arc<Venue>,
    writer: Writer,
    rules: LiveRules,
    intent: OrderIntent,
    /// False while halted: resolve an order sent before, send nothing.
    may_send: bool,
    /// The operator's own order: the trading state does not stop it, a halt raised after it
    /// started does.
    manual: bool,
    /// The gate's count of halts when this placement was approved (or began, for an order found
    /// again): a halt since stops its sends, even once trading has resumed.
    halts_before: u64,
    /// Checked again before every send: a halt during a long resolution stops re-sends too.
    gate: TradingGate,
    /// How far our own fills on chain are journaled.
    chain: ChainClock,
    /// When the fill's journal write committed.
    journaled: Option<std::time::Instant>,
    /// The intent was journaled by this placement.
    fresh_intent: bool,
    /// Handed on by recovery at a start ([`Execute::at_start`]).
    at_start: bool,
}

fn journal_err(e: impl std::fmt::Display) -> ExecError {
    ExecError::Journal(e.to_string())
}

impl Run {
    fn may_send(&self) -> bool {
        // A halt since approval stops it, resumed or not: its checks were made before the halt.
        // A close started while halted goes out (the operator's order ignores the trading state).
        let no_halt_since = self.gate.halts() == self.halts_before;
        let allowed = no_halt_since && (self.manual || self.gate.allows(self.intent.side));
        self.may_send && allowed
    }

    /// Trading stopped before the exchange took the order: never sent, or every send refused "not
    /// now" (425, 429, 503, a refused key), which the exchange says of an order it did not take.
    /// Nothing is left to look up: it ends as not sent, with no error.
    async fn never_accepted(&self, order: &StoredOrder, r: &Resolution) -> Result<Execution, ExecError> {
        if r.ever_sent {
            self.withdraw_given_up(order).await;
            let message = "not_sent: refused for now by the exchange, and trading stopped before it was sent again";
            self.outcome(OrderStatus::Rejected, None, message).await?;
        }
        Err(ExecError::NotSent)
    }

    /// How the target's fill stands before a send. A sighting (seen in the pool, its block not
    /// read yet) stands for a placement begun in this run (a later attempt of it included), while
    /// the pool's follower watches it; one recovered at a start waits for its block or its
    /// orphaning: its transaction may have been dropped while the daemon was down, and the
    /// follower checks it again only a few rounds after the start.
    async fn standing(&self) -> Result<crate::store::FillStanding, ExecError> {
        let standing = self.writer.ask(FillStands(self.intent.fill_row)).await.map_err(journal_err)?;
        Ok(match standing {
            crate::store::FillStanding::Sighted if !self.at_start => crate::store::FillStanding::Stands,
            s => s,
        })
    }

    fn age_s(&self) -> i64 {
        now_ms() / 1000 - i64::try_from(self.intent.block_ts).unwrap_or(0)
    }

    /// How long the copy stays fresh enough to send (`None`: no freshness limit).
    fn fresh_for(&self) -> Option<std::time::Duration> {
        let max = i64::try_from(self.rules.max_copy_delay_s).unwrap_or(i64::MAX);
        (max > 0).then(|| std::time::Duration::from_secs(u64::try_from(max - self.age_s()).unwrap_or(0)))
    }

    fn stale(&self) -> Option<ExecError> {
        let max = self.rules.max_copy_delay_s;
        let age = self.age_s();
        (max > 0 && age > i64::try_from(max).unwrap_or(i64::MAX)).then(|| ExecError::Rejected {
            code: "stale",
            message: format!("the target's fill is {age}s old (max_copy_delay_s = {max}); not sent"),
            counts_as_error: false,
        })
    }

    async fn execute(self) -> Result<Execution, ExecError> {
        let row = self.intent.fill_row;
        // A fresh intent cannot have an order yet (an order needs its intent): no lookup.
        let existing =
            if self.fresh_intent { None } else { self.writer.ask(GetOrder(row)).await.map_err(journal_err)? };
        if let Some(o) = existing {
            info!(fill = row, order = %o.order.id_hex(), status = %o.status, "resolving an order stored before the last stop");
            if let Some(done) = self.replay(&o) {
                return done;
            }
            let ever_sent = o.status != OrderStatus::Signed || o.posts > 0;
            return self.drive(o.order, ever_sent, o.exchange_has, o.null_resends).await;
        }
        if !self.may_send() {
            return Err(ExecError::NotSent);
        }
        if let Some(e) = self.stale() {
            return Err(e);
        }
        let i = &self.intent;
        let rules = self.venue.market_rules(i.token_id).await.map_err(|e| ExecError::Rejected {
            code: "clob_unavailable",
            message: format!("market rules of token {}: {e}", i.token_id),
            counts_as_error: true,
        })?;
        let deny = |r: crate::risk::DenyReason| ExecError::Rejected {
            code: r.code(),
            message: r.to_string(),
            counts_as_error: false,
        };
        // The limit the risk supervisor approved, on the tick, never worse: the one price everywhere.
        let limit = approved_limit_on_tick(i.side, i.limit_price, rules.tick).map_err(deny)?;
        let mut shares = size_for_market(i.shares, rules.min_size, limit).map_err(deny)?;
        // Market orders carry a whole-cent pUSD side (docs/PROTOCOL.md §7); GTD follows the tick rules.
        let amounts = if self.venue.order_kind() == OrderKind::Gtd {
            None
        } else {
            let a = market_order_amounts(i.side, shares, limit, rules.min_size).map_err(deny)?;
            shares = a.shares;
            Some(a)
        };
        let salt = salt_for(&i.fill_id);
        let order =
            self.venue.sign(i.token_id, i.side, shares, limit, salt, rules.neg_risk, amounts).await.map_err(|e| {
                ExecError::Rejected { code: "order_not_built", message: e.to_string(), counts_as_error: true }
            })?;
        // Durable before it leaves: from here on, this fill has exactly this order.
        let (stored, committed) = self.writer.ask(RecordOrder { fill_row: row, order }).await.map_err(journal_err)?;
        // Our own part of a live copy, µs: the fill's journal commit → the signed order's.
        let pipeline_us =
            self.journaled.zip(committed.0).map(|(from, to)| crate::actors::micros(to.saturating_duration_since(from)));
        info!(fill = row, order = %stored.order.id_hex(), side = %i.side, shares = %shares, limit = %limit, pipeline_us,
            "order signed and journaled; sending");
        self.drive(stored.order, false, false, 0).await
    }

    /// The exchange said it holds the order: journaled, so that no later window or restart sends
    /// it again on a lookup answering null.
    async fn held(&self, r: &mut Resolution) -> Result<(), ExecError> {
        if !r.known {
            self.writer.ask(OrderHeld(self.intent.fill_row)).await.map_err(journal_err)?;
        }
        r.known = true;
        Ok(())
    }

    async fn outcome(&self, status: OrderStatus, amounts: Option<(i64, i64)>, message: &str) -> Result<(), ExecError> {
        let m = OrderOutcome { fill_row: self.intent.fill_row, status, amounts, message: message.to_owned() };
        self.writer.ask(m).await.map_err(journal_err)
    }

    /// Posts and resolves until the order's fate is known (or the resolve window closes).
    /// `ever_sent`: the order may already be at the exchange (a stored order that was posted);
    /// `held`: the exchange said it holds it, in an earlier window or before a restart;
    /// `null_resends`: sends a null lookup led to before this run.
    async fn drive(
        &self,
        order: StoredOrder,
        ever_sent: bool,
        held: bool,
        null_resends: u32,
    ) -> Result<Execution, ExecError> {
        let id = order.id_hex();
        let mut r = Resolution::new(ever_sent, self.rules.resolve_for);
        r.known = held;
        r.null_resends_left = MAX_NULL_RESENDS.saturating_sub(null_resends);
        let mut tries = Tries::default();
        loop {
            if r.lookup_first {
                match self.look_up(&order, &mut r).await {
                    Step::Done(result) => return result,
                    Step::Wait => {
                        self.wait_or_stop(&order, &mut r).await;
                        continue;
                    }
                    Step::Send => {
                        if let Some(done) = self.booked_meanwhile().await? {
                            return done;
                        }
                        match self.standing().await? {
                            crate::store::FillStanding::Stands => {}
                            // A reorg took the target's block (the rescan says within a few blocks
                            // whether the trade came back), or a sighting from before the start
                            // waits for its block. Looked up again meanwhile, not sent; nothing
                            // was sent either, so the one re-send of this window is still due
                            // once the chain confirms the trade.
                            crate::store::FillStanding::Suspect | crate::store::FillStanding::Sighted => {
                                info!(order = %id, "the copied trade is not known to stand (its block reorged away, or a sighting from before the start): waiting for the chain's word before any send");
                                self.wait_or_stop(&order, &mut r).await;
                                r.lookup_first = true;
                                r.resent = false;
                                continue;
                            }
                            // The target's trade is gone (a reorg took it, or its sighting was
                            // orphaned): what an earlier send did is looked up, nothing leaves again.
                            crate::store::FillStanding::Gone => {
                                info!(order = %id, "the copied trade is gone from the chain: the order is only looked up");
                                r.lookup_first = true;
                                r.resent = true;
                                continue;
                            }
                        }
                        info!(order = %id, "the exchange does not have the order: sending the same signed order once")
                    }
                }
            }
            // Checked before every send, a re-send after a crash or a retry included: a copy never
            // leaves at an old price.
            if let Some(ExecError::Rejected { code, message, counts_as_error }) = self.stale() {
                if r.uncertain {
                    // Too old to send again, but an earlier send may have filled: looked up only.
                    r.last_unknown = format!("not sent again ({message})");
                    r.lookup_first = true;
                    r.resent = true;
                    continue;
                }
                if r.ever_sent {
                    // Sent before and answered "not now" (a gateway's 503 may hide an order the
                    // exchange took): a GTD order gets its one cancel, as on any other give-up.
                    self.withdraw_given_up(&order).await;
                }
                return self.refused(code, message, counts_as_error).await;
            }
            // The gate is checked after the wait for a turn under the CLOB's pace (which can be
            // long under load): a halt during that wait stops this send.
            self.venue.pace().await;
            crate::fault::hold_at("hold_at_turn").await;
            if !self.may_send() {
                if r.uncertain {
                    // A send may have reached the exchange: its fate is still looked up, nothing
                    // new leaves.
                    r.lookup_first = true;
                    r.resent = true;
                    continue;
                }
                // Halted before any send reached the exchange: the stored order never leaves.
                return self.never_accepted(&order, &r).await;
            }
            // Asked before every send that no earlier send may have reached the exchange: the first,
            // and one after a "not now" (425, 429, 503) or a new login, whose wait the target's
            // trade may not have outlived.
            let standing = if r.uncertain { crate::store::FillStanding::Stands } else { self.standing().await? };
            // Under a reorg's cloud: the rescan decides within a few blocks; meanwhile nothing
            // leaves, and a copy that grows too old waiting is refused by the check above.
            if matches!(standing, crate::store::FillStanding::Suspect | crate::store::FillStanding::Sighted) {
                info!(order = %id, "the copied trade is not known to stand (its block reorged away, or a sighting from before the start): waiting for the chain's word before sending");
                self.wait_or_stop(&order, &mut r).await;
                continue;
            }
            if standing == crate::store::FillStanding::Gone {
                if r.ever_sent {
                    // Refused "not now" before, so most likely not taken; but a 503 may hide an
                    // order the exchange took. Looked up from now on, never sent again.
                    info!(order = %id, "the copied trade is gone from the chain: the order is only looked up");
                    r.uncertain = true;
                    r.lookup_first = true;
                    r.resent = true;
                    continue;
                }
                // The target's trade went while the order waited for its turn (a sighting from
                // the pool orphaned: its transaction dropped or replaced; a reorg swept its block):
                // nothing left, and nothing leaves.
                let message = "the target's trade is gone from the chain (orphaned or reorged away) before our order left; not sent";
                return self.refused(crate::risk::reason::TARGET_FILL_GONE, message.to_owned(), false).await;
            }
            let after_null = std::mem::take(&mut r.after_null);
            self.writer.ask(OrderSent(self.intent.fill_row, after_null)).await.map_err(journal_err)?;
            if after_null {
                r.null_resends_left = r.null_resends_left.saturating_sub(1);
            }
            let first_send = !r.ever_sent;
            r.ever_sent = true;
            crate::fault::hold_at("hold_before_post").await;
            // The send is counted durably first, and that write waits its turn at the journal's
            // writer: a halt acknowledged meanwhile must still stop this POST. A first send is
            // taken back (it never left); an order sent before is only looked up from now on.
            // Counted as under way before that last check, so a halt's reply can say it went.
            let under_way = self.gate.posting();
            if !self.may_send() {
                drop(under_way);
                let row = self.intent.fill_row;
                if first_send && self.writer.ask(OrderNeverSent(row)).await.map_err(journal_err)? {
                    return Err(ExecError::NotSent);
                }
                if !r.uncertain {
                    return self.never_accepted(&order, &r).await;
                }
                r.lookup_first = true;
                r.resent = true;
                continue;
            }
            let (answer, cancelled) = self.send(&order).await;
            drop(under_way);
            if cancelled {
                // The exchange held it: whatever this send answered besides a match or a rest (a
                // "not now" or a refusal of the send itself), only lookups and the chain decide
                // what it did before the cancel. Never journaled as refused, never sent again.
                self.held(&mut r).await?;
                r.cancel_asked = true;
                if !matches!(answer, PostOutcome::Matched { .. } | PostOutcome::Live | PostOutcome::Delayed) {
                    let message = format!("cancelled at a halt while being sent; the send answered {answer:?}");
                    self.uncertain(&mut r, message).await?;
                    continue;
                }
            }
            match self.after_post(answer, &order, &mut r, &mut tries).await? {
                AfterPost::Done(result) => return result,
                AfterPost::Again => {}
            }
        }
    }
}
