//! Live matches that never settle on chain: taken out of the books once overdue, and put back if
//! they settle after all.

use std::time::Duration;

use actix::{ActorFutureExt, Context, Handler, Message, ResponseActFuture, WrapFuture};
use tracing::error;

use super::RiskSupervisor;
use crate::actors::notifier::Event;
use crate::actors::store::{GetExecution, RecordSettlementChange, StoreActor, UnsettledBefore};
use crate::domain::{Shares, Side, TokenId, Usdc};
use crate::store::SettlementStep;
use crate::store::{SettlementChange, Unsettled, now_ms};

/// Take matched orders that never settled on chain out of our books (live).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CheckSettlement {
    /// How long a matched order may take to settle.
    pub timeout: Duration,
    /// How far the chain is journaled, our own fills included (unix seconds; 0: nothing read since
    /// the start): a match is overdue only once the chain is read that long past it.
    pub chain_read_s: u64,
}

/// What one check changed, and the journal error that stopped it, if one did.
type Changes = (Vec<(Unsettled, SettlementChange)>, Option<String>);

impl Handler<CheckSettlement> for RiskSupervisor {
    type Result = ResponseActFuture<Self, ()>;

    /// The journal makes each change on its own rows, and the book takes the positions it wrote
    /// unless it has newer ones: a booking on the same token still on its way to us is never
    /// overwritten, and nothing waits behind the journal meanwhile (not even a halt's report).
    fn handle(&mut self, m: CheckSettlement, _: &mut Context<Self>) -> Self::Result {
        let now = now_ms();
        self.tell_if_chain_behind(now, m.chain_read_s, m.timeout);
        let read_s = m.chain_read_s.min(u64::try_from(now / 1000).unwrap_or(0));
        if !self.reserved.later_parts_overdue(read_s, m.timeout.as_secs()).is_empty() {
            self.publish_reserved();
        }
        let before = overdue_before(now, m.chain_read_s, m.timeout);
        let work = change_in_journal(self.store.clone(), before, self.reserved.tokens_being_sold());
        Box::pin(work.into_actor(self).map(move |(changes, failed), act, _| {
            // Counted on the day it lands in, as every booking is: a change just past the hour
            // must not push yesterday past the limit, whose `reducing` would then outlive the roll.
            act.roll_day(now_ms());
            for (u, c) in changes {
                // A change of an execution booked on an earlier day: its P&L is that day's, also
                // what it restates of later bookings today (their cost rebuilt without it). What
                // it moved of unrealized P&L is measured on the journal's positions before and
                // after it, at the token's mark (before a closed position forgets its mark), never
                // on the book, which may hold a booking of the token not yet adopted, or not hold
                // one the change already counts.
                if c.exec.at_ms < act.day_start_ms {
                    let (start, token) = (act.day_start_ms, c.exec.token_id);
                    let restated_today: i64 = c.restated.iter().filter(|(at, _)| *at >= start).map(|(_, x)| x.0).sum();
                    let moved = act.unrealized_of(&token, c.position.position) - act.unrealized_of(&token, c.before);
                    act.carry_into_day_open(Usdc(moved + restated_today));
                }
                act.adopt(c.exec.token_id, c.position);
                // Today's P&L counts it only if it was booked today (as the journal's sum does).
                if c.exec.at_ms >= act.day_start_ms {
                    act.realized_today = Usdc(act.realized_today.0 + c.realized_change.0);
                }
                for (at_ms, change) in &c.restated {
                    if *at_ms >= act.day_start_ms {
                        act.realized_today = Usdc(act.realized_today.0 + change.0);
                    }
                }
                let e = &c.exec;
                let what = format!("{} {} shares of token {}", e.side.as_str(), e.shares, e.token_id);
                let message = if u.settled_late {
                    format!("order {} settled on chain after it was taken out of our books: {what} put back", u.order_id)
                } else if u.with_buy {
                    format!(
                        "order {} sold shares that an earlier BUY of ours, which did not settle on chain, was to deliver: \
                         {what} taken out of our books with that BUY (put back if it settles after all)",
                        u.order_id
                    )
                } else if c.kept.0 > 0 {
                    format!(
                        "order {} matched on the CLOB but only {} shares of it settled on chain within {}s: the rest, {what}, taken out of our books",
                        u.order_id,
                        c.kept,
                        m.timeout.as_secs()
                    )
                } else {
                    format!(
                        "order {} matched on the CLOB but did not settle on chain within {}s: {what} taken out of our books",
                        u.order_id,
                        m.timeout.as_secs()
                    )
                };
                let message = restated_note(message, &c.restated);
                let message = if c.short.0 > 0 {
                    format!(
                        "{message}. Our position held only {} of those shares (later SELLs sold the rest, and cannot have settled \
                         either): check the book against the chain with `polycopy reconcile` (and `--apply` once the difference is understood)",
                        Shares(e.shares.0 - c.short.0)
                    )
                } else {
                    message
                };
                error!("{message}");
                act.notifier.do_send(Event::Alert { message });
            }
            if let Some(e) = failed {
                act.trip("database_error", &format!("journal write failed (a settlement change of our position): {e}"), "daemon");
            }
            act.revalue();
            act.check_daily_loss();
            act.publish();
        }))
    }
}

impl RiskSupervisor {
    /// Tells the operator, once per episode, that the chain is read too far behind for the check
    /// to decide anything: matches cannot be confirmed or taken out until it catches up (a stuck
    /// or lagging endpoint; blocks come every two seconds or so on Polygon).
    fn tell_if_chain_behind(&mut self, now_ms: i64, chain_read_s: u64, timeout: Duration) {
        let behind = chain_behind(now_ms, chain_read_s, timeout);
        if behind && !self.chain_behind_told {
            self.chain_behind_told = true;
            self.notifier.do_send(Event::Warning {
                code: "chain_behind",
                message: format!(
                    "the chain is journaled only up to {} s ago: matches made since then can be neither confirmed nor \
                     taken out of the books until it catches up. Check the RPC endpoint (docs/RUNBOOK.md, Chain \
                     endpoint down)",
                    chain_lag_ms(now_ms, chain_read_s) / 1000
                ),
            });
        } else if caught_up(now_ms, chain_read_s, timeout) {
            // Re-armed only well within the limit: a lag hovering at it warns once.
            self.chain_behind_told = false;
        }
    }
}

/// True when the chain is journaled more than the settlement timeout (at least a minute) behind
/// the host's clock; not before the first range is read after the start.
#[must_use]
pub fn chain_behind(now_ms: i64, chain_read_s: u64, timeout: Duration) -> bool {
    chain_read_s > 0 && chain_lag_ms(now_ms, chain_read_s) > behind_limit_ms(timeout)
}

/// True when the chain is journaled within half of that limit again.
#[must_use]
pub fn caught_up(now_ms: i64, chain_read_s: u64, timeout: Duration) -> bool {
    chain_read_s > 0 && chain_lag_ms(now_ms, chain_read_s) <= behind_limit_ms(timeout) / 2
}

/// How far the chain as journaled is behind the host's clock, ms.
fn chain_lag_ms(now_ms: i64, chain_read_s: u64) -> i64 {
    now_ms.saturating_sub(read_ms(chain_read_s))
}

/// The chain's journaled time (unix seconds) in unix ms.
fn read_ms(chain_read_s: u64) -> i64 {
    i64::try_from(chain_read_s.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn behind_limit_ms(timeout: Duration) -> i64 {
    i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX).max(60_000)
}

/// Matches from before this time (unix ms) are overdue: `timeout` before now, and before how far
/// the chain is read. A feed behind (after a restart, a stalled node) has not yet journaled the
/// settlements of recent matches, and not seeing them is not proof they never came.
#[must_use]
pub fn overdue_before(now_ms: i64, chain_read_s: u64, timeout: Duration) -> i64 {
    now_ms.min(read_ms(chain_read_s)).saturating_sub(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX))
}

/// Finds the matches overdue (`before`, unix ms) and those that settled late, and has the journal
/// change each, in an order that never leaves a position the reverse would not: per token, takes
/// out newest first and puts back oldest first ([`crate::risk::book::change_order`]).
///
/// A BUY of a token a SELL is being placed for (`selling`) waits for a later check, and so do
/// the SELLs listed with it: that SELL may be selling what the BUY was to deliver, and once it
/// matched it is taken out with the BUY. (A SELL of unknown outcome does not hold it: it may stay
/// unknown for hours, and one booked later gives back only what the book held.)
async fn change_in_journal(store: actix::Addr<StoreActor>, before: i64, selling: Vec<TokenId>) -> Changes {
    let overdue = match store.send(UnsettledBefore(before)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return (Vec::new(), Some(e.to_string())),
        Err(e) => return (Vec::new(), Some(e.to_string())),
    };
    let mut listed = Vec::new();
    for u in overdue {
        if let Ok(Ok(Some((exec, _)))) = store.send(GetExecution(u.fill_row)).await {
            listed.push((u, exec));
        }
    }
    let waiting: Vec<TokenId> = listed
        .iter()
        .filter(|(u, e)| !u.settled_late && e.side == Side::Buy && selling.contains(&e.token_id))
        .map(|(u, e)| {
            tracing::debug!(fill = u.fill_row, token = %e.token_id, "an overdue BUY waits: a SELL of its token is being placed");
            e.token_id
        })
        .collect();
    let mut found: Vec<_> = listed
        .into_iter()
        .filter(|(u, e)| u.settled_late || !waiting.contains(&e.token_id) || (e.side == Side::Sell && !u.with_buy))
        .map(|(u, e)| (u, e.at_ms))
        .collect();
    // A SELL taken out with its BUY goes first even at the same millisecond.
    found.sort_by_key(|(u, at)| (crate::risk::book::change_order(u.settled_late, *at), !u.with_buy));
    let mut changes = Vec::new();
    for (u, _) in found {
        let step = match (u.settled_late, u.with_buy) {
            (true, _) => SettlementStep::PutBack,
            (false, true) => SettlementStep::WithBuy { before_ms: before },
            (false, false) => SettlementStep::TakeOut { overdue_before: Some(before) },
        };
        match store.send(RecordSettlementChange { fill_row: u.fill_row, step }).await {
            Ok(Ok(Some(c))) => changes.push((u, c)),
            // Settled meanwhile, or another check made the change.
            Ok(Ok(None)) => {}
            Ok(Err(e)) => return (changes, Some(e.to_string())),
            Err(e) => return (changes, Some(e.to_string())),
        }
    }
    (changes, None)
}

/// `message`, with what rebooking the token's later executions changed of their realized P&L.
fn restated_note(message: String, restated: &[(i64, Usdc)]) -> String {
    if restated.is_empty() {
        return message;
    }
    let total = Usdc(restated.iter().map(|(_, c)| c.0).sum());
    format!(
        "{message}. The {} later booking(s) of that token it changed were booked again at the average cost without it: \
         their realized P&L changed by {total} pUSD",
        restated.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_match_is_overdue_only_once_the_chain_is_read_past_its_timeout() {
        let timeout = Duration::from_secs(60);
        // (now ms, chain read through s, overdue before ms)
        for (now, read_s, want) in [
            (1_000_000, 1_000, 940_000),
            // The feed 10 minutes behind: only matches 11 minutes old count.
            (1_000_000, 400, 340_000),
            // Nothing read since the start: nothing is overdue.
            (1_000_000, 0, -60_000),
            // The chain ahead of the host's clock: the host's clock bounds it.
            (1_000_000, 2_000, 940_000),
        ] {
            assert_eq!(overdue_before(now, read_s, timeout), want, "now {now}, read {read_s}");
        }
    }

    #[test]
    fn the_chain_is_behind_past_the_timeout_and_at_least_a_minute() {
        // (now ms, chain read through s, settle timeout s, behind)
        for (now, read_s, timeout, want) in [
            (1_000_000, 1_000, 120, false),
            (1_000_000, 879, 120, true),
            (1_000_000, 880, 120, false),
            // A short timeout still allows a minute.
            (1_000_000, 945, 3, false),
            (1_000_000, 939, 3, true),
            // Nothing read since the start: the feed's own health check says so.
            (1_000_000, 0, 120, false),
        ] {
            assert_eq!(chain_behind(now, read_s, Duration::from_secs(timeout)), want, "{now} {read_s} {timeout}");
        }
        // Re-armed only within half the limit (60 s of 120).
        let t = Duration::from_secs(120);
        assert!(!caught_up(1_000_000, 900, t) && caught_up(1_000_000, 940, t) && !caught_up(1_000_000, 0, t));
    }
}
