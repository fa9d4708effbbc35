//! Orders whose outcome is still unknown when their resolve window closes are not left for the
//! next start: they keep their reservation and are driven again in the background (looked up,
//! and at most the same signed order re-sent once per window, never a new order), on a schedule
//! that backs off, with a budget after which the operator is told once and the checks go on hourly.
//! Our own `OrderFilled` on chain books such an order too, whichever comes first.

use std::collections::HashMap;

use actix::Context;

use super::{Evaluate, RiskSupervisor};
use crate::actors::notifier::Event;
use crate::store::now_ms;

/// First wait after a window closed without an outcome.
const FIRST_MS: i64 = 15_000;
/// Longest wait between two attempts before the budget is spent.
const MAX_MS: i64 = 30 * 60_000;
/// Attempts before the operator is told (about three hours of backing off).
pub const BUDGET: u32 = 12;
/// Wait between attempts once the budget is spent.
const AFTER_BUDGET_MS: i64 = 60 * 60_000;

/// When attempt `attempts + 1` is due after a failure at `now`.
#[must_use]
pub const fn next_at(attempts: u32, now: i64) -> i64 {
    if attempts >= BUDGET {
        return now + AFTER_BUDGET_MS;
    }
    let shift = if attempts > 20 { 20 } else { attempts };
    let wait = FIRST_MS.saturating_mul(1 << shift);
    now + if wait > MAX_MS { MAX_MS } else { wait }
}

/// One order being resolved in the background.
#[derive(Debug)]
struct Pending {
    work: Evaluate,
    attempts: u32,
    next_at_ms: i64,
    running: bool,
    told: bool,
    /// A target's SELL of its token waited for this BUY's outcome as long as any may: later
    /// SELLs of it are sized without waiting again.
    waited_out: bool,
}

/// The orders still unresolved, by fill row.
#[derive(Debug, Default)]
pub struct Unresolved {
    pending: HashMap<i64, Pending>,
}

impl Unresolved {
    /// `work` ended without an outcome again: schedule its next attempt.
    pub fn failed(&mut self, work: &Evaluate, now: i64) {
        let p = self.pending.entry(work.intent.fill_row).or_insert_with(|| Pending {
            // A retry's time is not the first attempt's pipeline latency.
            work: Evaluate { recovered: true, journaled: None, ..work.clone() },
            attempts: 0,
            next_at_ms: 0,
            running: false,
            told: false,
            waited_out: false,
        });
        p.running = false;
        p.next_at_ms = next_at(p.attempts, now);
    }

    /// Every order of `side` (`None`: any) waiting for its next attempt is due now: trading just
    /// stopped for it, and one that may rest on the book (a GTD order whose answer never came) is
    /// cancelled by that attempt rather than at its turn, up to half an hour later. One attempt
    /// each, per change of trading state.
    pub fn bring_forward(&mut self, side: Option<crate::domain::Side>) {
        for p in self.pending.values_mut().filter(|p| !p.running && side.is_none_or(|s| p.work.intent.side == s)) {
            p.next_at_ms = 0;
        }
    }

    /// The order of `row` has an outcome (or will never be sent): forget it.
    pub fn done(&mut self, row: i64) {
        self.pending.remove(&row);
    }

    /// The fill rows of BUYs of `token` whose outcome is unknown: every one, or (`awaited_only`)
    /// those a target's SELL of it still waits for. Should one have filled, a SELL sized without
    /// it leaves us holding what the target sold, and no later fill of the target's says so.
    pub fn buys_of<'a>(
        &'a self,
        token: &'a crate::domain::TokenId,
        awaited_only: bool,
    ) -> impl Iterator<Item = i64> + 'a {
        self.pending
            .iter()
            .filter(move |(_, p)| {
                !(awaited_only && p.waited_out)
                    && p.work.intent.side == crate::domain::Side::Buy
                    && p.work.intent.token_id == *token
            })
            .map(|(row, _)| *row)
    }

    /// A SELL of `token` waited for its BUYs of unknown outcome as long as any may: the next
    /// SELLs of it do not wait for them again.
    pub fn stop_awaiting(&mut self, token: &crate::domain::TokenId) {
        for p in self.pending.values_mut().filter(|p| p.work.intent.token_id == *token) {
            p.waited_out = true;
        }
    }

    /// True when `row` is already being resolved in the background (a retry, not a first failure).
    #[must_use]
    pub fn contains(&self, row: i64) -> bool {
        self.pending.contains_key(&row)
    }

    /// The attempts due at `now`, marked running; and those whose budget just ran out (to tell).
    fn due(&mut self, now: i64) -> (Vec<Evaluate>, Vec<(i64, u32)>) {
        let mut run = Vec::new();
        let mut tell = Vec::new();
        for (row, p) in &mut self.pending {
            if p.running || p.next_at_ms > now {
                continue;
            }
            p.running = true;
            p.attempts += 1;
            if p.attempts > BUDGET && !p.told {
                p.told = true;
                tell.push((*row, p.attempts - 1));
            }
            run.push(p.work.clone());
        }
        (run, tell)
    }
}

impl RiskSupervisor {
    /// Drives again every unresolved order whose time has come.
    pub(super) fn resolve_due(&mut self, ctx: &mut Context<Self>) {
        let (run, tell) = self.unresolved.due(now_ms());
        for (row, attempts) in tell {
            self.notifier.do_send(Event::Error {
                message: format!(
                    "the order for fill {row} is still unresolved after {attempts} attempts over hours: check it at the \
                     exchange. Its exposure stays reserved, and it is looked up hourly and booked if it filled"
                ),
            });
        }
        for m in run {
            let may_send = self.breaker.is_active() && self.gate.allows(m.intent.side);
            if may_send {
                self.launch(ctx, m, may_send);
            } else {
                // Sends nothing new, only looks up and cancels (a GTD order that may rest): it does
                // not queue for a slot behind placements that may be watching orders for minutes,
                // or the cancel a halt brought forward would wait for them.
                self.launch_unslotted(ctx, m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_back_off_to_a_cap_and_slow_down_after_the_budget() {
        // (attempts so far, wait before the next)
        for (attempts, wait) in [
            (0, 15_000),
            (1, 30_000),
            (2, 60_000),
            (6, 960_000),
            (7, MAX_MS),
            (11, MAX_MS),
            (12, AFTER_BUDGET_MS),
            (40, AFTER_BUDGET_MS),
        ] {
            assert_eq!(next_at(attempts, 1_000) - 1_000, wait, "after {attempts} attempts");
        }
    }
}
