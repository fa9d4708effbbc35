//! The circuit breaker: a small state machine deciding whether any order may leave.
//!
//! It trips on a manual halt, the emergency-stop file, N consecutive execution errors, a database
//! error or the daily loss limit. Only an explicit resume clears it; the actor persists every change.

use serde::{Deserialize, Serialize};

/// The breaker's persisted state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BreakerState {
    /// True while no order may be sent.
    pub tripped: bool,
    /// Stable code of the cause: `manual`, `emergency_stop`, `error_streak`, `database_error`, `daily_loss_limit`.
    pub code: String,
    /// Human-readable cause.
    pub reason: String,
    /// Who or what tripped it (`cli`, `telegram`, `daemon`).
    pub by: String,
    /// When it last changed, unix ms.
    pub since_ms: i64,
}

/// The breaker plus the error streak that can trip it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaker {
    /// Current state.
    pub state: BreakerState,
    /// Execution errors in a row.
    pub consecutive_errors: u32,
    /// Errors in a row that trip it.
    pub max_consecutive_errors: u32,
}

impl Breaker {
    /// A breaker in `state` that trips after `max_consecutive_errors` errors in a row.
    #[must_use]
    pub const fn new(state: BreakerState, max_consecutive_errors: u32) -> Self {
        Self { state, consecutive_errors: 0, max_consecutive_errors }
    }

    /// True when orders may go out.
    #[must_use]
    pub const fn is_active(&self) -> bool {
        !self.state.tripped
    }

    /// Trips it; returns false (and changes nothing) when it was already tripped, so the first cause
    /// is the one kept and reported.
    pub fn trip(&mut self, code: &str, reason: &str, by: &str, now_ms: i64) -> bool {
        if self.state.tripped {
            return false;
        }
        self.state = BreakerState {
            tripped: true,
            code: code.to_owned(),
            reason: reason.to_owned(),
            by: by.to_owned(),
            since_ms: now_ms,
        };
        true
    }

    /// Clears it; returns the state it had, or `None` when it was not tripped.
    pub fn reset(&mut self, by: &str, now_ms: i64) -> Option<BreakerState> {
        if !self.state.tripped {
            return None;
        }
        let was = std::mem::replace(
            &mut self.state,
            BreakerState {
                tripped: false,
                code: String::new(),
                reason: String::new(),
                by: by.to_owned(),
                since_ms: now_ms,
            },
        );
        self.consecutive_errors = 0;
        Some(was)
    }

    /// Counts an execution error; trips (and returns true) at the streak limit.
    pub fn record_error(&mut self, now_ms: i64) -> bool {
        self.consecutive_errors += 1;
        if self.consecutive_errors >= self.max_consecutive_errors {
            let reason = format!("{} consecutive execution errors", self.consecutive_errors);
            return self.trip("error_streak", &reason, "daemon", now_ms);
        }
        false
    }

    /// Ends an error streak.
    pub const fn record_success(&mut self) {
        self.consecutive_errors = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_once_and_keeps_the_first_cause() {
        let mut b = Breaker::new(BreakerState::default(), 3);
        assert!(b.is_active());
        assert!(b.trip("manual", "going to lunch", "cli", 5));
        assert!(!b.trip("emergency_stop", "file", "daemon", 6));
        assert_eq!(b.state.code, "manual");
        assert_eq!(b.state.since_ms, 5);
        let was = b.reset("cli", 7).unwrap();
        assert_eq!(was.reason, "going to lunch");
        assert!(b.is_active());
        assert_eq!(b.reset("cli", 8), None);
    }

    #[test]
    fn error_streak_trips_at_the_limit_and_success_resets_it() {
        let mut b = Breaker::new(BreakerState::default(), 3);
        assert!(!b.record_error(1));
        assert!(!b.record_error(2));
        b.record_success();
        assert!(!b.record_error(3));
        assert!(!b.record_error(4));
        assert!(b.record_error(5));
        assert_eq!(b.state.code, "error_streak");
        assert!(!b.is_active());
    }
}
