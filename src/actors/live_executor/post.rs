//! What a POST's answer leads to: a match booked, a refusal journaled, the same signed order sent
//! again after a wait, or lookups when the exchange may have it (resting, unknown, duplicated).

use std::time::Duration;

use rust_decimal::Decimal;
use tracing::warn;

use super::resolution::{AfterPost, Resolution, Tries};
use super::{Run, cancels};
use crate::actors::executor::ExecError;
use crate::actors::store::OweCancel;
use crate::clob::order::StoredOrder;
use crate::clob::outcome::{MATCHING_DELAY_MAX_S, PostOutcome};
use crate::clob::venue::decimal_to_micros;
use crate::domain::{Execution, Shares, Side, Usdc};
use crate::store::{OrderStatus, OwedCancel, now_ms};

impl Run {
    /// Acts on what a POST answered: books a match, records a refusal, waits before the same signed
    /// order is sent again, or turns to lookups when the exchange may have it.
    pub(super) async fn after_post(
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
            PostOutcome::Matched { making, taking } => match self.fitted(order, making, taking) {
                None => {
                    // Shares for no pUSD (an empty amount reads as 0), or an amount we cannot
                    // read: not a fill to book, and not zero either. Looked up, and booked from
                    // the chain. The exchange said it has the order: a lookup answering null is
                    // no reason to send it again.
                    let message =
                        format!("answered matched with amounts {making} / {taking} that do not fit the order");
                    warn!(order = %id, cause = %message, "looking the order up (it is never sent as a new order)");
                    self.held(r).await?;
                    self.uncertain(r, message).await?;
                }
                // A GTD order crossed in part: the rest rests on the book and is watched (and
                // cancelled if trading stops) like an order answered `live`; what it matched is
                // booked by our fill on chain or when it can fill no more.
                part @ Some(_) if rests_after_part(order, making, taking, now_ms() / 1000) => {
                    self.rests(order, r, part, "matched in part; the rest rests on the book").await?;
                }
                Some((shares, usdc)) => return done(self.finish_post(shares, usdc).await),
            },
            // A market order held by the market's matching delay (sports markets) never rests:
            // looked up until it matched or was killed, never cancelled, never sent again.
            // (A market order answered `live` cannot rest either: the same.)
            PostOutcome::Live | PostOutcome::Delayed if !order.order_type.eq_ignore_ascii_case("GTD") => {
                self.delayed(r).await?;
            }
            PostOutcome::Live | PostOutcome::Delayed => self.rests(order, r, None, "resting on the book").await?,
            PostOutcome::NoFill { message } => {
                self.outcome(OrderStatus::NoFill, None, &message).await?;
                return done(Err(ExecError::NoFill { code: "no_liquidity", message }));
            }
            PostOutcome::Rejected { code, message, counts_as_error } => {
                // Refused after an earlier send was answered "not now": that answer may have hidden
                // an order the exchange took (a gateway's 503), and this refusal may even count it
                // (a balance that holds its pUSD). A GTD order gets its one cancel, as one given up.
                if tries.retries > 0 {
                    self.withdraw_given_up(order).await;
                }
                if code == "invalid_price" {
                    self.venue.forget_rules(self.intent.token_id);
                }
                return done(self.refused(code, message, counts_as_error).await);
            }
            PostOutcome::Retry { code, message, wait_ms } => {
                tries.retries += 1;
                let retries = tries.retries;
                if retries > self.rules.max_retries {
                    self.withdraw_given_up(order).await;
                    return done(self.refused(code, format!("{message} (after {retries} attempts)"), true).await);
                }
                let wait = self.retry_wait(code, wait_ms, retries);
                if let Some(left) = self.fresh_for()
                    && wait > left
                {
                    // The exchange did not take it, and it would be too old to send once the wait
                    // is over: refused now, so its slot is not held for nothing.
                    let message = format!(
                        "{message}: the wait ({} s) outlasts the copy's freshness ({} s left of max_copy_delay_s); not \
                         sent again",
                        wait.as_secs(),
                        left.as_secs()
                    );
                    self.withdraw_given_up(order).await;
                    return done(self.refused(code, message, false).await);
                }
                self.wait_to_retry(&id, code, wait, retries).await;
                r.lookup_first = false;
            }
            PostOutcome::Unauthorized { message } => {
                if let Err(e) = self.reauthenticate(&id, message, tries).await {
                    // Given up after "not now" answers, one of which may have hidden an order the
                    // exchange took: a GTD order gets its one cancel, as on any other give-up.
                    if tries.retries > 0 {
                        self.withdraw_given_up(order).await;
                    }
                    return done(Err(e));
                }
                r.lookup_first = false;
            }
            PostOutcome::Duplicate { message } => {
                // The exchange has this very order: from now on only lookups and the chain decide.
                self.held(r).await?;
                self.uncertain(r, message).await?;
            }
            PostOutcome::Unknown { message } => {
                warn!(order = %id, cause = %message, "order outcome unknown; looking it up (it is never sent as a new order)");
                self.uncertain(r, message).await?;
            }
        }
        Ok(AfterPost::Again)
    }

    /// Sends `order`; says too whether a cancel asked meanwhile was answered "canceled" (proof the
    /// exchange holds it). A GTD order may rest once the exchange takes it: should trading stop
    /// while its POST is unanswered (a slow exchange may hold the answer for the whole request
    /// timeout), its cancel goes at once, beside the POST, not after its answer, so it cannot
    /// fill for seconds after the halt. A cancel that finds nothing on the book yet is asked again
    /// by the lookups that follow.
    pub(super) async fn send(&self, order: &StoredOrder) -> (PostOutcome, bool) {
        let post = self.venue.post(order);
        if !order.order_type.eq_ignore_ascii_case("GTD") {
            return (post.await, false);
        }
        tokio::pin!(post);
        tokio::select! {
            biased;
            answer = &mut post => return (answer, false),
            () = self.until_stopped() => {}
        }
        let id = order.id_hex();
        let (answer, cancel) = tokio::join!(post, self.venue.cancel(&id));
        match &cancel {
            Ok(true) => tracing::info!(order = %id, "trading stopped while our order was being sent: it is cancelled"),
            Ok(false) => {
                tracing::info!(order = %id, "trading stopped while our order was being sent: nothing to cancel yet; looked up")
            }
            Err(e) => {
                warn!(order = %id, cause = %e, "trading stopped while our order was being sent; the cancel failed: asked again by the lookups")
            }
        }
        (answer, matches!(cancel, Ok(true)))
    }

    /// A GTD order given up after "not now" answers is cancelled once, best effort: the exchange
    /// says 425, 429 and 503 of orders it did not take, but an answer lost on the way (a gateway's
    /// 503 after the engine took it) would leave an order resting until its expiry that nobody
    /// watches or cancels at a halt. A cancel of an order the exchange does not hold costs nothing;
    /// a fill of one it did hold is booked by our fill on chain. A FAK or FOK order cannot rest.
    ///
    /// A cancel that fails is owed: journaled, and asked again in the background with growing
    /// waits until the exchange answers or the order expires, also after a restart
    /// ([`super::cancels`]), so the placement's slot is not held for it.
    pub(super) async fn withdraw_given_up(&self, order: &StoredOrder) {
        let expiry_s = i64::try_from(order.expiration).unwrap_or(i64::MAX);
        if !order.order_type.eq_ignore_ascii_case("GTD") || expiry_s <= now_ms() / 1000 {
            return;
        }
        let id = order.id_hex();
        if let Err(e) = cancels::cancel_given_up(&self.venue, &id).await {
            warn!(order = %id, cause = %e, "a GTD order given up could not be cancelled: asked again in the background");
            let owed = OwedCancel { fill_row: self.intent.fill_row, order_id: id, until_s: expiry_s };
            if let Err(e) = self.writer.ask(OweCancel { fill_row: owed.fill_row, until_s: expiry_s }).await {
                warn!(order = %owed.order_id, cause = %e, "could not journal the cancel owed: a restart will not ask it again");
            }
            actix::spawn(cancels::pay(self.venue.clone(), self.writer.clone(), owed, false));
        }
    }

    /// The exchange may have the order: journaled as unknown, and only lookups (first) and our
    /// fill on chain decide it from now on.
    pub(super) async fn uncertain(&self, r: &mut Resolution, message: String) -> Result<(), ExecError> {
        r.uncertain = true;
        self.outcome(OrderStatus::Unknown, None, &message).await?;
        r.last_unknown = message;
        r.lookup_first = true;
        Ok(())
    }

    /// An order the exchange holds on its book (answered `live` or `delayed`, or crossed in part
    /// with the rest resting): watched, by lookups, until it can fill no more.
    async fn rests(
        &self,
        order: &StoredOrder,
        r: &mut Resolution,
        part: Option<(i64, i64)>,
        message: &str,
    ) -> Result<(), ExecError> {
        r.known = true;
        r.uncertain = true;
        r.resting = true;
        self.outcome(OrderStatus::Live, part, message).await?;
        r.lookup_first = true;
        r.reset_window(self.resting_window(order));
        Ok(())
    }

    /// How long a delayed market order is looked up at least before it is left to the chain: the
    /// matches reported came up to 43 s after the POST.
    const DELAYED_WINDOW: Duration = Duration::from_secs(MATCHING_DELAY_MAX_S);

    /// A market order the exchange took and holds for the market's matching delay before it
    /// matches: journaled `delayed` (held by its status, never sent again, even after a restart)
    /// and looked up until it matched or was killed. A lookup answering null meanwhile is no
    /// reason to send it again; a halt meanwhile cancels nothing (a market order never rests).
    pub(super) async fn delayed(&self, r: &mut Resolution) -> Result<(), ExecError> {
        r.known = true;
        r.uncertain = true;
        r.working.get_or_insert_with(|| self.gate.posting());
        self.outcome(OrderStatus::Delayed, None, "held by the market's matching delay").await?;
        r.lookup_first = true;
        // Matches were reported up to 43 s after the POST (docs/PROTOCOL.md §7): the window is
        // long enough for them, and an order unresolved after it is settled by our fill on chain.
        r.reset_window(self.rules.resolve_for.max(Self::DELAYED_WINDOW));
        Ok(())
    }

    /// The wait before the same order is sent again after a refusal for now (`code`): the
    /// exchange's own wait when it named one, else a backoff.
    fn retry_wait(&self, code: &'static str, wait_ms: Option<u64>, retries: u32) -> Duration {
        match (code, wait_ms) {
            (_, Some(ms)) => Duration::from_millis(ms),
            ("rate_limited", None) => self.rules.rate_limit_wait,
            _ => self.rules.retry_backoff * 2u32.saturating_pow(retries - 1),
        }
    }

    /// Waits `wait` before the same order is sent again after a refusal for now (`code`).
    async fn wait_to_retry(&self, id: &str, code: &'static str, wait: Duration, retries: u32) {
        warn!(order = %id, code, attempt = retries, wait_ms = wait.as_millis() as u64, "order refused for now; sending the same order again after a wait");
        // A halt (or reducing, for a BUY) ends the wait: the order will not be sent again, and
        // its slot is not held for the rest of a long wait the exchange named.
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = self.until_stopped() => {}
        }
    }

    /// Derives our API credentials again after the CLOB refused them, once per placement; a
    /// second refusal, or a failed derivation, ends the order as refused.
    async fn reauthenticate(&self, id: &str, message: String, tries: &mut Tries) -> Result<(), ExecError> {
        if tries.reauthed {
            self.outcome(OrderStatus::Rejected, None, &format!("auth_error: {message}")).await?;
            return Err(ExecError::Auth(message));
        }
        tries.reauthed = true;
        warn!(order = %id, "the CLOB refused our API credentials; deriving them again");
        if let Err(e) = self.venue.reauthenticate().await {
            self.outcome(OrderStatus::Rejected, None, &format!("auth_error: {e}")).await?;
            return Err(ExecError::Auth(e.to_string()));
        }
        Ok(())
    }

    /// How long an order accepted onto the book is watched ([`resting_for`]).
    pub(super) fn resting_window(&self, order: &StoredOrder) -> Duration {
        let expiry_s = u64::try_from(order.expiration).unwrap_or(0);
        let now_s = u64::try_from(now_ms() / 1000).unwrap_or(0);
        resting_for(expiry_s, now_s, self.rules.resolve_for, self.rules.settle_within)
    }

    /// Journals a final refusal as `code: message` (so a restart replays it with its code).
    pub(super) async fn refused(
        &self,
        code: &'static str,
        message: String,
        counts_as_error: bool,
    ) -> Result<Execution, ExecError> {
        self.outcome(OrderStatus::Rejected, None, &format!("{code}: {message}")).await?;
        Err(ExecError::Rejected { code, message, counts_as_error })
    }

    /// A POST's matched amounts as (shares, pUSD) in base units; `None` when one cannot be read.
    pub(super) fn amounts(&self, making: Decimal, taking: Decimal) -> Option<(i64, i64)> {
        let (give, get) = (decimal_to_micros(making)?, decimal_to_micros(taking)?);
        Some(if self.intent.side == Side::Buy { (get, give) } else { (give, get) })
    }

    /// A POST's matched amounts as (shares, pUSD), made to fit the order we signed
    /// ([`crate::clob::matched::fit`]); `None` when they cannot be read or do not fit.
    fn fitted(&self, order: &StoredOrder, making: Decimal, taking: Decimal) -> Option<(i64, i64)> {
        let (shares, usdc) = self.amounts(making, taking)?;
        crate::clob::matched::fit(order, self.intent.side, shares, usdc)
    }

    /// Books `shares` for `usdc` (fitted to the order) as the POST answered them.
    pub(super) async fn finish_post(&self, shares: i64, usdc: i64) -> Result<Execution, ExecError> {
        self.outcome(OrderStatus::Matched, Some((shares, usdc)), "matched").await?;
        crate::fault::abort_at("abort_after_order_outcome");
        Ok(self.execution(Shares(shares), Usdc(usdc)))
    }
}

/// How long an order resting on the book is watched: a GTD order until its expiry, then as long as
/// a match made just before it may take to settle on chain, plus the resolve window: at its end the
/// chain can say it did not fill. Closed at expiry plus the resolve window alone, an order expired
/// unfilled whose lookups answer `null` ended unknown, and counted as an error toward the breaker.
/// Any other order: the resolve window.
fn resting_for(expiry_s: u64, now_s: u64, resolve_for: Duration, settle_within: Duration) -> Duration {
    if expiry_s > now_s { Duration::from_secs(expiry_s - now_s) + settle_within + resolve_for } else { resolve_for }
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

#[cfg(test)]
mod tests {
    use alloy::primitives::U256;
    use rust_decimal::Decimal;

    use super::*;

    /// A GTD order is watched past its expiry for as long as its last match may take to settle,
    /// so the chain can say it did not fill when the window closes.
    #[test]
    fn a_resting_gtd_order_is_watched_until_the_chain_can_decide() {
        let (resolve, settle) = (Duration::from_secs(30), Duration::from_secs(120));
        // (expiry, now, watched for)
        for (expiry_s, now_s, want_s) in
            [(1_300, 1_000, 300 + 120 + 30), (1_000, 1_000, 30), (900, 1_000, 30), (0, 1_000, 30)]
        {
            assert_eq!(
                resting_for(expiry_s, now_s, resolve, settle),
                Duration::from_secs(want_s),
                "{expiry_s} {now_s}"
            );
        }
    }

    /// Our BUY giving 5.10 pUSD for 10 shares.
    fn order(order_type: &str, expiration: u64) -> StoredOrder {
        StoredOrder {
            expiration: U256::from(expiration),
            order_type: order_type.into(),
            ..StoredOrder::for_test(Side::Buy, 10_000_000, 5_100_000)
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
