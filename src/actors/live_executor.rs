//! The live executor: places an approved intent on Polymarket's CLOB exactly once.
//!
//! Order of events for one fill: market rules → limit on the tick and size in lots → the order is
//! built and signed with a salt derived from the fill → **stored in the journal** → counted as sent →
//! posted. An answer that does not say what happened (timeout, reset, 5xx, "Duplicated") is
//! resolved by looking the order up by its hash; only an order the exchange does not have is sent
//! again, and then it is the very same signed order, which cannot fill twice. A fill whose order
//! is already in the journal (a crash came between) starts with that lookup.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Context, Handler, ResponseFuture};
use rust_decimal::Decimal;
use tracing::{info, warn};

use crate::actors::executor::{ExecError, Execute};
use crate::actors::store::{GetOrder, OrderOutcome, OrderSent, RecordOrder, Writer};
use crate::chain::ChainClock;
use crate::clob::account::OrderKind;
use crate::clob::amounts::market_order_amounts;
use crate::clob::order::{StoredOrder, salt_for};
use crate::clob::outcome::{LookupOutcome, PostOutcome, past_any_fill, stable_code};
use crate::clob::pricing::{approved_limit_on_tick, size_for_market};
use crate::clob::venue::{Venue, decimal_to_micros};
use crate::domain::{ExecMode, Execution, OrderIntent, Price, Shares, Side, Usdc, mul_price_ceil, mul_price_floor};
use crate::risk::TradingGate;
use crate::store::OrderStatus;
use crate::store::{OrderRow, now_ms};

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
        Self { venue, writer, rules, gate, chain }
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
            gate: self.gate.clone(),
            chain: self.chain.clone(),
            journaled: m.journaled,
            fresh_intent: m.fresh_intent,
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
    /// The operator's own order: the trading gate does not stop it.
    manual: bool,
    /// Checked again before every send: a halt during a long resolution stops re-sends too.
    gate: TradingGate,
    /// How far our own fills on chain are journaled.
    chain: ChainClock,
    /// When the fill's journal write committed.
    journaled: Option<std::time::Instant>,
    /// The intent was journaled by this placement.
    fresh_intent: bool,
}

fn journal_err(e: impl std::fmt::Display) -> ExecError {
    ExecError::Journal(e.to_string())
}

impl Run {
    fn may_send(&self) -> bool {
        self.may_send && (self.manual || self.gate.allows(self.intent.side))
    }

    fn age_s(&self) -> i64 {
        now_ms() / 1000 - i64::try_from(self.intent.block_ts).unwrap_or(0)
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
            return self.drive(o.order, ever_sent).await;
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
        self.drive(stored.order, false).await
    }

    async fn outcome(&self, status: OrderStatus, amounts: Option<(i64, i64)>, message: &str) -> Result<(), ExecError> {
        let m = OrderOutcome { fill_row: self.intent.fill_row, status, amounts, message: message.to_owned() };
        self.writer.ask(m).await.map_err(journal_err)
    }

    /// Posts and resolves until the order's fate is known (or the resolve window closes).
    /// `ever_sent`: the order may already be at the exchange (a stored order that was posted).
    async fn drive(&self, order: StoredOrder, ever_sent: bool) -> Result<Execution, ExecError> {
        let id = order.id_hex();
        let mut r = Resolution::new(ever_sent, self.rules.resolve_for);
        let mut tries = Tries::default();
        loop {
            if r.lookup_first {
                match self.look_up(&order, &mut r).await {
                    Step::Done(result) => return result,
                    Step::Wait => {
                        self.wait_or_stop(&mut r).await;
                        continue;
                    }
                    Step::Send => {
                        if let Some(done) = self.booked_meanwhile().await? {
                            return done;
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
                return self.refused(code, message, counts_as_error).await;
            }
            // The gate is checked after the wait for a turn under the CLOB's pace (which can be
            // long under load): a halt during that wait stops this send.
            self.venue.pace().await;
            if !self.may_send() {
                if r.ever_sent {
                    // Sent before the halt: its fate is still looked up, nothing new leaves.
                    r.lookup_first = true;
                    r.resent = true;
                    continue;
                }
                // Halted between approval and the first send: the stored order never leaves.
                return Err(ExecError::NotSent);
            }
            self.writer.ask(OrderSent(self.intent.fill_row)).await.map_err(journal_err)?;
            r.ever_sent = true;
            match self.after_post(self.venue.post(&order).await, &order, &mut r, &mut tries).await? {
                AfterPost::Done(result) => return result,
                AfterPost::Again => {}
            }
        }
    }

    /// Acts on what a POST answered: books a match, records a refusal, waits before the same signed
    /// order is sent again, or turns to lookups when the exchange may have it.
    async fn after_post(
        &self,
        outcome: PostOutcome,
        order: &StoredOrder,
        r: &mut Resolution,
        tries: &mut Tries,
    ) -> Result<AfterPost, ExecError> {
        let id = order.id_hex();
        let done = |result| Ok(AfterPost::Done(result));
        if r.uncertain && outcome.refuses() {
            // The refusal is of this send only; what an earlier one did is looked up (never a new
            // order), and our own fill on chain books it if it filled.
            warn!(order = %id, answer = ?outcome, "the same order sent again was refused; an earlier send may have filled: looking it up");
            r.last_unknown = format!("sent again and refused ({outcome:?}); an earlier send's fate is unknown");
            r.lookup_first = true;
            r.resent = true;
            return Ok(AfterPost::Again);
        }
        match outcome {
            PostOutcome::Matched { making, taking } if rests_after_part(order, making, taking, now_ms() / 1000) => {
                // A GTD order crossed in part: the rest rests on the book and is watched (and
                // cancelled if trading stops) like an order answered `live`; what it matched is
                // booked by our fill on chain or when it can fill no more.
                r.known = true;
                r.uncertain = true;
                r.resting = true;
                let part = self.amounts(making, taking);
                self.outcome(OrderStatus::Live, part, "matched in part; the rest rests on the book").await?;
                r.lookup_first = true;
                r.reset_window(self.resting_window(order));
            }
            PostOutcome::Matched { making, taking } => return done(self.finish_post(making, taking).await),
            PostOutcome::Live | PostOutcome::Delayed => {
                r.known = true;
                r.uncertain = true;
                r.resting = true;
                self.outcome(OrderStatus::Live, None, "resting on the book").await?;
                r.lookup_first = true;
                r.reset_window(self.resting_window(order));
            }
            PostOutcome::NoFill { message } => {
                self.outcome(OrderStatus::NoFill, None, &message).await?;
                return done(Err(ExecError::NoFill { code: "no_liquidity", message }));
            }
            PostOutcome::Rejected { code, message, counts_as_error } => {
                return done(self.refused(code, message, counts_as_error).await);
            }
            PostOutcome::Retry { code, message, wait_ms } => {
                tries.retries += 1;
                let retries = tries.retries;
                if retries > self.rules.max_retries {
                    return done(self.refused(code, format!("{message} (after {retries} attempts)"), true).await);
                }
                let wait = match (code, wait_ms) {
                    (_, Some(ms)) => Duration::from_millis(ms),
                    ("rate_limited", None) => self.rules.rate_limit_wait,
                    _ => self.rules.retry_backoff * 2u32.saturating_pow(retries - 1),
                };
                warn!(order = %id, code, attempt = retries, wait_ms = wait.as_millis() as u64, "order refused for now; sending the same order again after a wait");
                tokio::time::sleep(wait).await;
                r.lookup_first = false;
            }
            PostOutcome::Unauthorized { message } => {
                if tries.reauthed {
                    self.outcome(OrderStatus::Rejected, None, &format!("auth_error: {message}")).await?;
                    return done(Err(ExecError::Auth(message)));
                }
                tries.reauthed = true;
                warn!(order = %id, "the CLOB refused our API credentials; deriving them again");
                if let Err(e) = self.venue.reauthenticate().await {
                    self.outcome(OrderStatus::Rejected, None, &format!("auth_error: {e}")).await?;
                    return done(Err(ExecError::Auth(e.to_string())));
                }
                r.lookup_first = false;
            }
            PostOutcome::Duplicate { message } => {
                // The exchange has this very order: from now on only lookups and the chain decide.
                r.known = true;
                r.uncertain = true;
                self.outcome(OrderStatus::Unknown, None, &message).await?;
                r.last_unknown = message;
                r.lookup_first = true;
            }
            PostOutcome::Unknown { message } => {
                warn!(order = %id, cause = %message, "order outcome unknown; looking it up (it is never sent as a new order)");
                r.uncertain = true;
                self.outcome(OrderStatus::Unknown, None, &message).await?;
                r.last_unknown = message;
                r.lookup_first = true;
            }
        }
        Ok(AfterPost::Again)
    }

    /// How long an order accepted onto the book is watched: a GTD order until its expiry (plus the
    /// time the CLOB takes to expire it), else the resolve window.
    fn resting_window(&self, order: &StoredOrder) -> Duration {
        let expiry_s = u64::try_from(order.expiration).unwrap_or(0);
        let now_s = u64::try_from(now_ms() / 1000).unwrap_or(0);
        if expiry_s > now_s {
            Duration::from_secs(expiry_s - now_s) + self.rules.resolve_for
        } else {
            self.rules.resolve_for
        }
    }

    /// Waits before the next lookup. When trading stops this resting order's side meanwhile, the
    /// wait ends at once, so it is cancelled without waiting; other changes of the trading state
    /// (they are rare: the gate rings only when its level changes) leave the wait as it was. A
    /// cancel that failed is asked again after the wait, never in a loop.
    async fn wait_or_stop(&self, r: &mut Resolution) {
        let until = tokio::time::Instant::now() + r.next_wait();
        loop {
            let changed = self.gate.changed();
            if r.resting && r.sendable_at_lookup && !self.may_send() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(until) => return,
                () = changed => {}
            }
        }
    }

    /// Takes a resting order off the book once trading no longer allows its side (halted; a BUY
    /// while reducing): an order that stays there could still fill. Asked once per resolution; the
    /// lookups that follow say what it matched before.
    async fn cancel_if_stopped(&self, order: &StoredOrder, r: &mut Resolution) {
        r.sendable_at_lookup = self.may_send();
        if !r.resting || r.cancel_asked || r.sendable_at_lookup {
            return;
        }
        let id = order.id_hex();
        match self.venue.cancel(&id).await {
            Ok(true) => {
                r.cancel_asked = true;
                info!(order = %id, "trading stopped: our resting order is taken off the book");
            }
            // Not open to cancel now (matched, expired, or not on the book yet: a delayed order):
            // the lookup says which, and a cancel is asked again after the next wait while it rests.
            Ok(false) => info!(order = %id, "trading stopped: the exchange did not cancel our order; looking it up"),
            // Asked again at the next lookup, after its wait.
            Err(e) => {
                warn!(order = %id, cause = %e, "trading stopped, but our resting order could not be cancelled yet")
            }
        }
    }

    /// One lookup of an order whose fate is open, and what to do next.
    async fn look_up(&self, order: &StoredOrder, r: &mut Resolution) -> Step {
        let id = order.id_hex();
        self.cancel_if_stopped(order, r).await;
        match self.venue.lookup(&id).await {
            Ok(found) => match found.state {
                LookupOutcome::Done { matched } => {
                    Step::Done(self.finish_lookup(order, matched, found.price, r.cancel_asked).await)
                }
                // A resting order is neither an error nor a reason to send anything: it is watched,
                // a GTD order until its expiry, however we learnt it rests (an answer, a lookup).
                LookupOutcome::Pending if !r.resting => {
                    r.resting = true;
                    r.known = true;
                    r.uncertain = true;
                    r.reset_window(self.resting_window(order));
                    match self.outcome(OrderStatus::Live, None, "resting on the book (found by lookup)").await {
                        Ok(()) => Step::Wait,
                        Err(e) => Step::Done(Err(e)),
                    }
                }
                LookupOutcome::Pending if r.expired() => {
                    Step::Done(self.unknown(&format!("order {id} still working on the book")).await)
                }
                LookupOutcome::Pending => Step::Wait,
                // Not found is not proof of absence: the CLOB answers `null` for some filled orders
                // (docs/PROTOCOL.md §7). The same signed order goes again at most once per window,
                // and never once the exchange said it has it; our own fill on chain settles the rest.
                LookupOutcome::NotFound if r.expired() => Step::Done(
                    self.unknown(&format!("{}; the exchange does not report order {id}", r.last_unknown)).await,
                ),
                LookupOutcome::NotFound if r.known || r.resent || !self.may_send() => {
                    if !r.ever_sent && !self.may_send() {
                        return Step::Done(Err(ExecError::NotSent));
                    }
                    Step::Wait
                }
                LookupOutcome::NotFound => {
                    r.resent = true;
                    r.lookup_first = false;
                    Step::Send
                }
            },
            Err(e) if r.expired() => Step::Done(self.unknown(&format!("{}; lookup failed: {e}", r.last_unknown)).await),
            Err(_) => Step::Wait,
        }
    }

    /// Journals a final refusal as `code: message` (so a restart replays it with its code).
    async fn refused(
        &self,
        code: &'static str,
        message: String,
        counts_as_error: bool,
    ) -> Result<Execution, ExecError> {
        self.outcome(OrderStatus::Rejected, None, &format!("{code}: {message}")).await?;
        Err(ExecError::Rejected { code, message, counts_as_error })
    }

    /// The booking our own fill on chain made while this order was being resolved, if it did.
    async fn booked_meanwhile(&self) -> Result<Option<Result<Execution, ExecError>>, ExecError> {
        let row = self.writer.ask(GetOrder(self.intent.fill_row)).await.map_err(journal_err)?;
        Ok(row.filter(|o| o.status == OrderStatus::Matched).and_then(|o| self.replay(&o)))
    }

    /// The outcome an earlier run already journaled for this fill's order, when it is final.
    fn replay(&self, o: &OrderRow) -> Option<Result<Execution, ExecError>> {
        let message = o.message.clone().unwrap_or_default();
        match (o.status, o.amounts) {
            (OrderStatus::Matched, Some((shares, usdc))) => Some(Ok(self.execution(Shares(shares), Usdc(usdc)))),
            (OrderStatus::NoFill, _) => Some(Err(ExecError::NoFill { code: "no_liquidity", message })),
            (OrderStatus::Rejected, _) => {
                let (code, rest) = message.split_once(": ").unwrap_or(("", &message));
                Some(Err(ExecError::Rejected {
                    code: stable_code(code),
                    message: rest.to_owned(),
                    // Counted when it happened.
                    counts_as_error: false,
                }))
            }
            _ => None,
        }
    }

    /// Ends a resolution window without an answer from the exchange: the chain decides when it can
    /// (our own fill booked the order meanwhile, or none came long after the order could last
    /// match); else the outcome stays unknown and the order is resolved in the background.
    async fn unknown(&self, message: &str) -> Result<Execution, ExecError> {
        // Read before the order: every fill of ours up to this block time is journaled by now.
        let chain_read_s = self.chain.read_through_s();
        let row = self.writer.ask(GetOrder(self.intent.fill_row)).await.map_err(journal_err)?;
        if let Some(o) = row {
            if o.status == OrderStatus::Matched
                && let Some(done) = self.replay(&o)
            {
                return done;
            }
            let last_sent_s = o.last_sent_ms.map_or(0, |ms| u64::try_from(ms / 1000).unwrap_or(0));
            let expiry_s = u64::try_from(o.order.expiration).unwrap_or(u64::MAX);
            let within_s = self.rules.settle_within.as_secs();
            if o.last_sent_ms.is_some()
                && past_any_fill(&o.order.order_type, last_sent_s, expiry_s, within_s, chain_read_s)
            {
                // Filled in part on chain (a GTD order that rested): that part is its outcome.
                if let Some(done) = self.filled_in_part(&o).await? {
                    return Ok(done);
                }
                let message = format!(
                    "order {} did not fill: no fill of ours on chain {within_s}s after it could last match ({message})",
                    o.order.id_hex()
                );
                warn!(order = %o.order.id_hex(), "{message}");
                self.outcome(OrderStatus::NoFill, None, &message).await?;
                return Err(ExecError::NoFill { code: "no_liquidity", message });
            }
        }
        self.outcome(OrderStatus::Unknown, None, message).await?;
        Err(ExecError::Unknown(message.to_owned()))
    }

    /// The part of this order our fills on chain booked while it could still fill (`o.amounts` on
    /// an order with no final answer), made its final outcome now that it can fill no more.
    async fn filled_in_part(&self, o: &OrderRow) -> Result<Option<Execution>, ExecError> {
        let Some((shares, usdc)) = o.amounts.filter(|(shares, _)| *shares > 0) else { return Ok(None) };
        self.outcome(OrderStatus::Matched, Some((shares, usdc)), "filled in part on chain; it can fill no more")
            .await?;
        Ok(Some(self.execution(Shares(shares), Usdc(usdc))))
    }

    fn execution(&self, shares: Shares, usdc: Usdc) -> Execution {
        let price = if shares.0 > 0 {
            Price(i64::try_from(i128::from(usdc.0) * 1_000_000 / i128::from(shares.0)).unwrap_or(0))
        } else {
            Price(0)
        };
        Execution {
            fill_row: self.intent.fill_row,
            side: self.intent.side,
            token_id: self.intent.token_id,
            shares,
            price,
            usdc,
            mode: ExecMode::Live,
            at_ms: now_ms(),
        }
    }

    /// A POST's matched amounts as (shares, pUSD) in base units; `None` when one cannot be read.
    fn amounts(&self, making: Decimal, taking: Decimal) -> Option<(i64, i64)> {
        let (give, get) = (decimal_to_micros(making)?, decimal_to_micros(taking)?);
        Some(if self.intent.side == Side::Buy { (get, give) } else { (give, get) })
    }

    async fn finish_post(&self, making: Decimal, taking: Decimal) -> Result<Execution, ExecError> {
        let Some((shares, usdc)) = self.amounts(making, taking) else {
            // An amount we cannot read is not zero: the order's fate is looked up instead.
            return self.unknown(&format!("unreadable matched amounts {making} / {taking}")).await;
        };
        self.outcome(OrderStatus::Matched, Some((shares, usdc)), "matched").await?;
        crate::fault::abort_at("abort_after_order_outcome");
        Ok(self.execution(Shares(shares), Usdc(usdc)))
    }

    async fn finish_lookup(
        &self,
        order: &StoredOrder,
        matched: Decimal,
        price: Decimal,
        cancelled: bool,
    ) -> Result<Execution, ExecError> {
        let (Some(matched_units), Some(price_units)) = (decimal_to_micros(matched), decimal_to_micros(price)) else {
            return self.unknown(&format!("unreadable lookup amounts {matched} at {price}")).await;
        };
        let shares = Shares(matched_units);
        if shares.0 <= 0 {
            // The exchange may not count yet what our fills on chain already booked.
            let row = self.writer.ask(GetOrder(self.intent.fill_row)).await.map_err(journal_err)?;
            if let Some(o) = row
                && let Some(done) = self.filled_in_part(&o).await?
            {
                return Ok(done);
            }
            let why = if cancelled { " (taken off the book when trading stopped)" } else { "" };
            let message = format!("order {} ended with nothing matched{why}", order.id_hex());
            self.outcome(OrderStatus::NoFill, None, &message).await?;
            return Err(ExecError::NoFill { code: "no_liquidity", message });
        }
        // The lookup gives the order's limit price; we book at it (paying at most that).
        let p = Price(price_units);
        let usdc = if self.intent.side == Side::Buy {
            Usdc(mul_price_ceil(shares, p))
        } else {
            Usdc(mul_price_floor(shares, p))
        };
        self.outcome(OrderStatus::Matched, Some((shares.0, usdc.0)), "matched (found by lookup)").await?;
        Ok(self.execution(shares, usdc))
    }
}

/// True when a GTD order answered `matched` (`making` given for `taking`) got fewer shares than it
/// was signed for, before its expiry: the rest still rests. Shares decide: a GTD order is sized in
/// shares, and a better price changes only its pUSD (a BUY filled below its limit pays less).
fn rests_after_part(order: &StoredOrder, making: Decimal, taking: Decimal, now_s: i64) -> bool {
    let expiry_s = i64::try_from(order.expiration).unwrap_or(i64::MAX);
    // Our BUY takes the shares, our SELL gives them.
    let (shares, signed) = if order.side == 0 { (taking, order.taker_amount) } else { (making, order.maker_amount) };
    let (Some(shares), Ok(signed)) = (decimal_to_micros(shares), i64::try_from(signed)) else {
        return false;
    };
    order.order_type.eq_ignore_ascii_case("GTD") && expiry_s > now_s && shares < signed
}

/// Where the resolution of one order stands.
#[derive(Debug)]
struct Resolution {
    /// The next step is a lookup (else a send).
    lookup_first: bool,
    /// It may be at the exchange: it was posted (now or before a restart).
    ever_sent: bool,
    /// A send of it may have reached the exchange with its fate unknown (posted before a restart,
    /// or answered inconclusively). From then on no refusal is final: the exchange refuses the same
    /// order sent again once it filled it, a copy is stale by the time a resolver looks again, and
    /// only a lookup or our own fill on chain can say what the first send did.
    uncertain: bool,
    /// The exchange said it has it ("Duplicated", resting, delayed): never sent again.
    known: bool,
    /// Sent again in this window already.
    resent: bool,
    /// Known to rest on the book: watched until its expiry.
    resting: bool,
    /// Its cancellation was asked for (trading stopped while it rested).
    cancel_asked: bool,
    /// Trading allowed its side at the last lookup.
    sendable_at_lookup: bool,
    /// The last inconclusive answer, for the record.
    last_unknown: String,
    until: Instant,
    wait: Duration,
}

impl Resolution {
    fn new(ever_sent: bool, window: Duration) -> Self {
        Self {
            lookup_first: ever_sent,
            ever_sent,
            uncertain: ever_sent,
            known: false,
            resent: false,
            resting: false,
            cancel_asked: false,
            sendable_at_lookup: true,
            last_unknown: String::new(),
            until: Instant::now() + window,
            wait: Duration::from_millis(250),
        }
    }

    fn expired(&self) -> bool {
        Instant::now() >= self.until
    }

    fn reset_window(&mut self, window: Duration) {
        self.until = Instant::now() + window;
        self.wait = Duration::from_millis(250);
    }

    /// Backoff between lookups: 250 ms doubling to 4 s, never a tight loop.
    fn next_wait(&mut self) -> Duration {
        let w = self.wait;
        self.wait = (self.wait * 2).min(Duration::from_secs(4));
        w
    }
}

/// What a lookup leads to.
enum Step {
    /// The order's fate (or the window's end) is decided.
    Done(Result<Execution, ExecError>),
    /// Look again after a wait.
    Wait,
    /// Send the same signed order (once).
    Send,
}

/// Sends of one order the exchange refused for now, and whether our credentials were derived
/// again (once per order).
#[derive(Debug, Default)]
struct Tries {
    retries: u32,
    reauthed: bool,
}

/// What a POST's answer leaves to do.
enum AfterPost {
    /// The order's fate is known.
    Done(Result<Execution, ExecError>),
    /// Send again or look it up, as the resolution now says.
    Again,
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256, U256};
    use rust_decimal::Decimal;

    use super::*;

    fn order(order_type: &str, expiration: u64) -> StoredOrder {
        StoredOrder {
            order_id: B256::ZERO,
            neg_risk: false,
            salt: 1,
            maker: Address::ZERO,
            signer: Address::ZERO,
            token_id: U256::from(7),
            // Gives 5.10 pUSD for 10 shares.
            maker_amount: U256::from(5_100_000),
            taker_amount: U256::from(10_000_000),
            side: 0,
            signature_type: 0,
            timestamp: U256::ZERO,
            expiration: U256::from(expiration),
            metadata: B256::ZERO,
            builder: B256::ZERO,
            signature: String::new(),
            order_type: order_type.into(),
        }
    }

    #[test]
    fn only_a_gtd_order_that_got_fewer_shares_than_signed_before_its_expiry_still_rests() {
        // (type, expiry, pUSD given, shares taken, now, still rests); signed: 5.10 for 10 shares
        for (kind, expiry, gave, got, now, want) in [
            ("GTD", 2_000, "2.04", "4", 1_000, true),
            ("GTD", 2_000, "5.10", "10", 1_000, false),
            // Filled below its limit: less pUSD, every share.
            ("GTD", 2_000, "4.80", "10", 1_000, false),
            ("GTD", 2_000, "2.04", "4", 2_000, false),
            ("FAK", 0, "2.04", "4", 1_000, false),
        ] {
            let (making, taking) = (gave.parse().unwrap(), got.parse().unwrap());
            assert_eq!(
                rests_after_part(&order(kind, expiry), making, taking, now),
                want,
                "{kind} {expiry} {gave} {got} {now}"
            );
        }
        assert!(!rests_after_part(&order("GTD", 2_000), Decimal::ONE, Decimal::MAX, 1_000), "unreadable");
        assert_eq!(decimal_to_micros(Decimal::MAX), None, "an absurd amount is unreadable, not a panic");
    }
}
