//! The trading day on the supervisor's clock: it rolls at the configured hour on a timer (not only
//! when an intent arrives), records the unrealized P&L it opened with, and lifts a `reducing` state
//! that the previous day's loss limit set.

use tracing::{info, warn};

use super::RiskSupervisor;
use crate::actors::notifier::Event;
use crate::actors::store::{MoveDayOpen, SetDayOpen};
use crate::domain::Usdc;
use crate::risk::day::day_start;
use crate::risk::{BreakerState, TradingState};

/// A backward step of the clock up to this long (unix ms) keeps the day that opened.
const STEP_BACK_MS: i64 = 10 * 60_000;

impl RiskSupervisor {
    /// Opens a new trading day when `now_ms` is past the current one, and lifts a `reducing` the
    /// loss limit set on an earlier day (also one the daemon was not running to see end).
    /// Everything that counts P&L by day (marks, bookings, settlements) calls it first, so
    /// nothing of the new day is counted on the old one between the hour and the next poll.
    pub(super) fn roll_day(&mut self, now_ms: i64) {
        let start = day_start(now_ms, self.day_starts_at_hour);
        let mut changed = false;
        // Forward, or back by more than a small step: a clock stepped back a little over the hour
        // (NTP) must not open yesterday again, forgetting today's losses; a clock that ran ahead
        // and was corrected must not leave the day in the future, counting nothing as today's.
        if start > self.day_start_ms || now_ms < self.day_start_ms - STEP_BACK_MS {
            changed = true;
            let left =
                LeftDay { start_ms: self.day_start_ms, realized: self.realized_today, open: self.unrealized_at_open };
            if start < self.day_start_ms {
                let earlier = self.left_day.take();
                self.reopen(start, earlier);
            } else {
                self.open_day(start);
            }
            self.left_day = Some(left);
        }
        if daily_limit_of_an_earlier_day(&self.breaker.state, self.day_start_ms) {
            changed = true;
            self.lift();
            self.notifier.do_send(Event::Alert {
                message: "a new trading day opened: the daily loss limit is reset and copies are active again".into(),
            });
        }
        if changed {
            self.publish();
        }
    }

    /// Opens the day that starts at `start`, with nothing realized yet.
    fn open_day(&mut self, start: i64) {
        self.day_start_ms = start;
        self.realized_today = Usdc::ZERO;
        // With nothing open the day opens at zero whatever was marked.
        if self.marked_since_start || self.book.positions.is_empty() {
            self.open_day_at(self.unrealized);
        } else {
            // Valued only at the journal's last marks: the CLOB's first marks open the day
            // (see the Marks handler), so a stale mark's move does not count as today's.
            self.unrealized_at_open = None;
        }
        info!(day_start_ms = start, "a new trading day opened");
    }

    /// The clock, run ahead into a day that had not come, was set back into the day that starts
    /// at `start`: that day is opened again with what it had realized (`earlier`, when it is the
    /// day left), plus what was realized in the day that never was, which was made today too.
    /// Opening it at zero would forget the day's losses, and the loss limit would allow a second
    /// day's worth. Set back to a day this run did not see (ahead since the start), the day
    /// keeps what it counted: a restart reads the day again from the journal.
    fn reopen(&mut self, start: i64, earlier: Option<LeftDay>) {
        self.day_start_ms = start;
        if let Some(earlier) = earlier.filter(|e| e.start_ms == start) {
            self.realized_today = Usdc(earlier.realized.0.saturating_add(self.realized_today.0));
            // The day's opening value as it was; its journal row still holds it.
            self.unrealized_at_open = earlier.open;
        }
        warn!(
            day_start_ms = start,
            realized_today = self.realized_today.0,
            "the clock was set back into an earlier trading day: it is open again with what it realized"
        );
        // Past its loss limit again: reducing again, and said, as when the limit was first met.
        self.check_daily_loss();
    }

    /// Takes a change of the book that is not today's P&L into the day's opening value: what it
    /// moved of unrealized P&L, and of today's realized P&L (`moved`, both), moves the opening as
    /// well, so today's P&L, realized today plus the change of unrealized since the open, does not
    /// count it. A SELL of yesterday put back after the roll (its profit dated yesterday, the
    /// position it had taken back gone again) would otherwise read as today's loss, and an
    /// adjustment of reconcile as today's gain or loss. A day not opened yet (no marks since the
    /// start) opens at the first marks, which include the change.
    pub(super) fn carry_into_day_open(&mut self, moved: Usdc) {
        let moved = moved.0;
        if let Some(open) = self.unrealized_at_open
            && moved != 0
        {
            let open = Usdc(open.0 + moved);
            self.unrealized_at_open = Some(open);
            self.journal_day_open(MoveDayOpen { day_start_ms: self.day_start_ms, unrealized: open });
        }
    }

    /// The unrealized P&L of `p`, a position in `token`, at the token's mark (0 unmarked: counted
    /// at cost, as [`RiskSupervisor::revalue`] counts it).
    pub(super) fn unrealized_of(&self, token: &crate::domain::TokenId, p: crate::risk::Position) -> i64 {
        match self.marks.get(token) {
            Some(mark) => crate::risk::day::unrealized_at(p, *mark, self.marked.get(token).copied().unwrap_or(p)),
            None => 0,
        }
    }

    /// Records the day's opening unrealized P&L (in the journal too, so a restart keeps it).
    pub(super) fn open_day_at(&mut self, unrealized: Usdc) {
        self.unrealized_at_open = Some(unrealized);
        self.journal_day_open(SetDayOpen { day_start_ms: self.day_start_ms, unrealized });
    }

    /// Journals the day's opening value; a failed write halts (`database_error`), as any write
    /// the limits rest on: lost, a restart mid-day would open the day again at the marks of that
    /// moment and forget the day's losses so far. Queued on the writer now, in order with the
    /// day's other writes.
    fn journal_day_open<R: crate::actors::store::Request<Out = ()>>(&self, write: R) {
        let done = self.writer.ask(write);
        let me = self.me.clone();
        actix::spawn(async move {
            if let (Err(e), Some(me)) = (done.await, me) {
                me.do_send(DayOpenNotJournaled(e.to_string()));
            }
        });
    }
}

/// The day's opening value could not be journaled.
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
struct DayOpenNotJournaled(String);

impl actix::Handler<DayOpenNotJournaled> for RiskSupervisor {
    type Result = ();

    fn handle(&mut self, DayOpenNotJournaled(e): DayOpenNotJournaled, _: &mut actix::Context<Self>) {
        self.trip("database_error", &format!("journal write failed (the trading day's opening value): {e}"), "daemon");
    }
}

/// The trading day last left (by a roll), kept in case the clock is set back into it.
#[derive(Debug, Clone, Copy)]
pub(super) struct LeftDay {
    start_ms: i64,
    realized: Usdc,
    open: Option<Usdc>,
}

/// Whether `state` is the `reducing` of a daily loss limit reached before the day that opened at
/// `day_start_ms`: the limit is daily, so its `reducing` ends with its day. A halt (manual, errors,
/// or the limit configured to halt) waits for the operator.
fn daily_limit_of_an_earlier_day(state: &BreakerState, day_start_ms: i64) -> bool {
    state.trading() == TradingState::Reducing
        && state.code == crate::risk::reason::DAILY_LOSS_LIMIT
        && state.since_ms < day_start_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(tripped: bool, reducing: bool, code: &str, since_ms: i64) -> BreakerState {
        BreakerState {
            tripped,
            reducing,
            code: code.into(),
            reason: String::new(),
            by: "daemon".into(),
            since_ms,
            halt_asked_ms: 0,
        }
    }

    #[test]
    fn only_a_loss_limit_reducing_from_an_earlier_day_is_lifted() {
        let day = 1_000_000;
        let limit = crate::risk::reason::DAILY_LOSS_LIMIT;
        let cases = [
            (state(false, true, limit, day - 1), true, "reached yesterday (also while stopped)"),
            (state(false, true, limit, day), false, "reached at today's opening"),
            (state(false, true, limit, day + 5), false, "reached today"),
            (state(true, false, limit, day - 1), false, "the limit configured to halt"),
            (state(false, true, "manual", day - 1), false, "another cause's reducing"),
            (state(true, false, "manual", day - 1), false, "a manual halt"),
            (state(false, false, "", day - 1), false, "active"),
        ];
        for (s, lifted, why) in cases {
            assert_eq!(daily_limit_of_an_earlier_day(&s, day), lifted, "{why}");
        }
    }
}
