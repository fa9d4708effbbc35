//! The trading day on the supervisor's clock: it rolls at the configured hour on a timer (not only
//! when an intent arrives), records the unrealized P&L it opened with, and lifts a `reducing` state
//! that the previous day's loss limit set.

use tracing::info;

use super::RiskSupervisor;
use crate::actors::notifier::Event;
use crate::actors::store::SetDayOpen;
use crate::domain::Usdc;
use crate::risk::TradingState;
use crate::risk::day::day_start;

impl RiskSupervisor {
    /// Opens a new trading day when `now_ms` is past the current one.
    pub(super) fn roll_day(&mut self, now_ms: i64) {
        let start = day_start(now_ms, self.day_starts_at_hour);
        if start == self.day_start_ms {
            return;
        }
        self.day_start_ms = start;
        self.realized_today = Usdc::ZERO;
        self.open_day_at(self.unrealized);
        info!(day_start_ms = start, "a new trading day opened");
        // The daily loss limit is daily: its `reducing` ends with the day. A halt (manual, errors,
        // or the limit configured to halt) waits for the operator.
        let s = &self.breaker.state;
        if s.trading() == TradingState::Reducing && s.code == crate::risk::reason::DAILY_LOSS_LIMIT {
            self.reset("daemon");
            self.notifier.do_send(Event::Alert {
                message: "a new trading day opened: the daily loss limit is reset and copies are active again".into(),
            });
        }
        self.publish();
    }

    /// Records the day's opening unrealized P&L (in the journal too, so a restart keeps it).
    pub(super) fn open_day_at(&mut self, unrealized: Usdc) {
        self.unrealized_at_open = Some(unrealized);
        self.store.do_send(SetDayOpen { day_start_ms: self.day_start_ms, unrealized });
    }
}
