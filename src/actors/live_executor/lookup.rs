//! Resolving an order whose fate is open: lookups with backoff, a resting order taken off the book
//! when trading stops, and the journal's word (our own fill on chain, no fill long after the order
//! could last match) when the exchange gives none.

use rust_decimal::Decimal;
use tracing::{info, warn};

use super::resolution::{Resolution, Step};
use super::{Run, journal_err};
use crate::actors::executor::ExecError;
use crate::actors::store::GetOrder;
use crate::clob::order::StoredOrder;
use crate::clob::outcome::{LookupOutcome, past_any_fill, stable_code};
use crate::clob::venue::decimal_to_micros;
use crate::domain::{ExecMode, Execution, Price, Shares, Usdc};
use crate::store::{OrderRow, OrderStatus, now_ms};

/// Cancels asked of an order never seen resting that the exchange answered "not canceled" before
/// they stop: each after a lookup's wait (4 s at most), so about the first 10 s after a halt.
const UNHELD_CANCELS: u32 = 4;

/// A GTD order whose send may have reached the exchange, not yet seen resting (its POST timed out,
/// lookups fail or lag), may rest all the same: it is cancelled too when trading stops. A cancel
/// of an order the exchange does not hold answers "not canceled" and costs nothing.
fn may_rest(order: &StoredOrder, r: &Resolution) -> bool {
    r.uncertain
        && order.order_type.eq_ignore_ascii_case("GTD")
        && i64::try_from(order.expiration).unwrap_or(i64::MAX) > crate::store::now_ms() / 1000
}

impl Run {
    /// Waits before the next lookup. When trading stops meanwhile the side of this order, resting
    /// or maybe resting (a GTD whose send's outcome is unknown), the wait ends at once, so it is
    /// cancelled within the halt's second; other changes of the trading state (they are rare: the
    /// gate rings only when its level changes) leave the wait as it was. A cancel that failed is
    /// asked again after the wait, never in a loop.
    pub(super) async fn wait_or_stop(&self, order: &StoredOrder, r: &mut Resolution) {
        let until = tokio::time::Instant::now() + r.next_wait();
        loop {
            let changed = self.gate.changed();
            if (r.resting || may_rest(order, r)) && r.sendable_at_lookup && !self.may_send() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(until) => return,
                () = changed => {}
            }
        }
    }

    /// Returns once trading no longer allows this order's side.
    pub(super) async fn until_stopped(&self) {
        loop {
            let changed = self.gate.changed();
            if !self.may_send() {
                return;
            }
            changed.await;
        }
    }

    /// Takes a resting order off the book once trading no longer allows its side (halted; a BUY
    /// while reducing): an order that stays there could still fill. Asked once per resolution; the
    /// lookups that follow say what it matched before.
    pub(super) async fn cancel_if_stopped(&self, order: &StoredOrder, r: &mut Resolution) {
        let was_sendable = std::mem::replace(&mut r.sendable_at_lookup, self.may_send());
        if was_sendable && !r.sendable_at_lookup {
            // A cancel that fails now is asked again after the backoff's first step, not after
            // the up to 4 s the lookups had reached while the order rested.
            r.restart_backoff();
        }
        if !(r.resting || may_rest(order, r)) || r.cancel_asked || r.sendable_at_lookup {
            return;
        }
        let id = order.id_hex();
        match self.venue.cancel(&id).await {
            Ok(true) => {
                r.cancel_asked = true;
                info!(order = %id, "trading stopped: our resting order is taken off the book");
                // Cancelled is proof the exchange held it: journaled, so that no lookup answering
                // null (in this window, a later one or after a restart) sends it again.
                if let Err(e) = self.held(r).await {
                    warn!(order = %id, cause = %e, "could not journal that the exchange held our cancelled order");
                }
            }
            // Not open to cancel now (matched, expired, or not on the book yet: a delayed order):
            // the lookup says which, and a cancel is asked again after the next wait while it rests.
            // One never seen resting may be on its way to the book (a lagging engine, lookups that
            // fail): asked again after each wait too, a few times, then left to the lookups.
            Ok(false) => {
                if !r.resting {
                    r.unheld_cancels += 1;
                }
                r.cancel_asked = !r.resting && r.unheld_cancels >= UNHELD_CANCELS;
                info!(order = %id, "trading stopped: the exchange did not cancel our order; looking it up");
            }
            // Asked again at the next lookup, after its wait.
            Err(e) => {
                warn!(order = %id, cause = %e, "trading stopped, but our resting order could not be cancelled yet")
            }
        }
    }

    /// One lookup of an order whose fate is open, and what to do next.
    pub(super) async fn look_up(&self, order: &StoredOrder, r: &mut Resolution) -> Step {
        let id = order.id_hex();
        let answer = loop {
            self.cancel_if_stopped(order, r).await;
            // A lookup of a resting order that trading may still stop is raced with the gate: a
            // slow exchange must not hold the cancel back until the request times out. Once stopped
            // (or cancelled), the next round of this loop cancels and lookups are awaited plainly.
            if !((r.resting || may_rest(order, r)) && r.sendable_at_lookup) {
                break self.venue.lookup(&id).await;
            }
            tokio::select! {
                answer = self.venue.lookup(&id) => break answer,
                () = self.until_stopped() => {}
            }
        };
        match answer {
            Ok(found) => match found.state {
                LookupOutcome::Done { matched } => Step::Done(self.finish_lookup(order, matched, r.cancel_asked).await),
                // A resting order is neither an error nor a reason to send anything: it is watched,
                // a GTD order until its expiry, however we learnt it rests (an answer, a lookup).
                // A market order the exchange still works on is held by a matching delay, not
                // resting: waited for, never cancelled, never sent again (see `delayed`).
                LookupOutcome::Pending if !order.order_type.eq_ignore_ascii_case("GTD") => {
                    // Once per resolution (a restart's, a background retry's too): journaled,
                    // counted for a halt's answer, looked up for the delay's whole window.
                    if r.working.is_none() {
                        if let Err(e) = self.delayed(r).await {
                            return Step::Done(Err(e));
                        }
                        Step::Wait
                    } else if r.expired() {
                        Step::Done(self.unknown(&format!("order {id} still held by the market's matching delay")).await)
                    } else {
                        Step::Wait
                    }
                }
                LookupOutcome::Pending if !r.resting => {
                    r.resting = true;
                    // A cancel asked while it was not on the book yet (answered "not canceled")
                    // does not count: now it rests, it is cancelled if trading stops.
                    r.cancel_asked = false;
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
                // The exchange has it and says it matched, not how much: never sent again, and
                // settled by our fill on chain (or its absence once any fill would be there).
                LookupOutcome::Unsized if r.expired() => {
                    Step::Done(self.unknown(&format!("order {id} matched; the exchange does not say how much")).await)
                }
                LookupOutcome::Unsized => {
                    r.uncertain = true;
                    match self.held(r).await {
                        Ok(()) => Step::Wait,
                        Err(e) => Step::Done(Err(e)),
                    }
                }
                // Not found is not proof of absence: the CLOB answers `null` for some filled orders
                // (docs/PROTOCOL.md §7). The same signed order goes again at most once per window,
                // and never once the exchange said it has it; our own fill on chain settles the rest.
                LookupOutcome::NotFound if r.expired() => Step::Done(
                    self.unknown(&format!("{}; the exchange does not report order {id}", r.last_unknown)).await,
                ),
                LookupOutcome::NotFound if r.known || r.resent || r.null_resends_left == 0 || !self.may_send() => {
                    if !r.ever_sent && !self.may_send() {
                        return Step::Done(Err(ExecError::NotSent));
                    }
                    Step::Wait
                }
                LookupOutcome::NotFound => {
                    r.resent = true;
                    r.after_null = true;
                    r.lookup_first = false;
                    Step::Send
                }
            },
            Err(e) if r.expired() => Step::Done(self.unknown(&format!("{}; lookup failed: {e}", r.last_unknown)).await),
            Err(_) => Step::Wait,
        }
    }

    /// The booking our own fill on chain made while this order was being resolved, if it did.
    pub(super) async fn booked_meanwhile(&self) -> Result<Option<Result<Execution, ExecError>>, ExecError> {
        let row = self.writer.ask(GetOrder(self.intent.fill_row)).await.map_err(journal_err)?;
        Ok(row.filter(|o| o.status == OrderStatus::Matched).and_then(|o| self.replay(&o)))
    }

    /// The outcome an earlier run already journaled for this fill's order, when it is final.
    pub(super) fn replay(&self, o: &OrderRow) -> Option<Result<Execution, ExecError>> {
        let message = o.message.clone().unwrap_or_default();
        match (o.status, o.amounts) {
            (OrderStatus::Matched, Some((shares, usdc))) => Some(Ok(self.execution(Shares(shares), Usdc(usdc)))),
            (OrderStatus::NoFill, _) => Some(Err(ExecError::NoFill { code: "no_liquidity", message })),
            // Trading stopped before the exchange took it (see `never_accepted`).
            (OrderStatus::Rejected, _) if message.starts_with("not_sent: ") => Some(Err(ExecError::NotSent)),
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
    pub(super) async fn unknown(&self, message: &str) -> Result<Execution, ExecError> {
        let now_s = || u64::try_from(now_ms() / 1000).unwrap_or(0);
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
                && past_any_fill(
                    &o.order.order_type,
                    o.exchange_has,
                    last_sent_s,
                    expiry_s,
                    within_s,
                    chain_read_s,
                    now_s(),
                )
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
    pub(super) async fn filled_in_part(&self, o: &OrderRow) -> Result<Option<Execution>, ExecError> {
        let Some((shares, usdc)) = o.amounts.filter(|(shares, _)| *shares > 0) else { return Ok(None) };
        self.outcome(OrderStatus::Matched, Some((shares, usdc)), "filled in part on chain; it can fill no more")
            .await?;
        Ok(Some(self.execution(Shares(shares), Usdc(usdc))))
    }

    pub(super) fn execution(&self, shares: Shares, usdc: Usdc) -> Execution {
        let price = Price::average(shares, usdc);
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

    pub(super) async fn finish_lookup(
        &self,
        order: &StoredOrder,
        matched: Decimal,
        cancelled: bool,
    ) -> Result<Execution, ExecError> {
        let Some(matched_units) = decimal_to_micros(matched) else {
            return self.unknown(&format!("unreadable matched size {matched}")).await;
        };
        if matched_units <= 0 {
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
        // A lookup says how much matched, not for how much: booked at the order's own price (what
        // a BUY pays at most, a SELL gets at least); our fill on chain corrects a SELL's proceeds.
        let Some((shares, usdc)) = crate::clob::matched::at_order_price(order, self.intent.side, matched_units) else {
            return self.unknown(&format!("order {} cannot be read to book {matched}", order.id_hex())).await;
        };
        self.outcome(OrderStatus::Matched, Some((shares, usdc)), "matched (found by lookup)").await?;
        Ok(self.execution(Shares(shares), Usdc(usdc)))
    }
}
