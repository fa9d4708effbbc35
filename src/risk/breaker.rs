//! The trading state, as a small state machine: `active`, `reducing` (exits of open positions are
//! copied, anything that adds exposure is refused) or `halted` (nothing is sent).
//!
//! A manual halt, the emergency-stop file, N consecutive execution errors and a database error halt;
//! the daily loss limit reduces by default. Only an explicit resume goes back to active; the actor
//! persists every change.

use serde::{Deserialize, Serialize};

/// What may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TradingState {
    /// Copies go out.
    Active,
    /// Only exits (SELLs of open positions) go out.
    Reducing,
    /// Nothing goes out.
    Halted,
}

impl TradingState {
    /// `active`, `reducing` or `halted`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Reducing => "reducing",
            Self::Halted => "halted",
        }
    }
}

/// The breaker's persisted state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BreakerState {
    /// True while no order may be sent (halted).
    pub tripped: bool,
    /// True while only exits may be sent (reducing; never with `tripped`).
    #[serde(default)]
    pub reducing: bool,
    /// Stable code of the cause: `manual`, `emergency_stop`, `error_streak`, `database_error`, `daily_loss_limit`.
    pub code: String,
    /// Human-readable cause.
    pub reason: String,
    /// Who or what tripped it (`cli`, `telegram`, `daemon`).
    pub by: String,
    /// When it last changed, unix ms.
    pub since_ms: i64,
    /// When a halt was last asked for, unix ms, also one that found trading already halted (0:
    /// never). Kept across a resume; only ever grows.
    #[serde(default)]
    pub halt_asked_ms: i64,
}

impl BreakerState {
    /// The trading state this is.
    #[must_use]
    pub const fn trading(&self) -> TradingState {
        if self.tripped {
            TradingState::Halted
        } else if self.reducing {
            TradingState::Reducing
        } else {
            TradingState::Active
        }
    }
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

    /// Halts; returns false (and changes nothing) when it was already halted, so the first cause
    /// is the one kept and reported. Reducing gives way to halted.
    pub fn trip(&mut self, code: &str, reason: &str, by: &str, now_ms: i64) -> bool {
        if self.state.tripped {
            return false;
        }
        self.state = BreakerState {
            tripped: true,
            reducing: false,
            code: code.to_owned(),
            reason: reason.to_owned(),
            by: by.to_owned(),
            since_ms: now_ms,
            halt_asked_ms: now_ms.max(self.state.halt_asked_ms),
        };
        true
    }

    /// Notes a halt asked for while already halted; returns whether that moved the time of the
    /// last one (the halt itself, its cause and its start stay as they are).
    pub fn halt_asked(&mut self, now_ms: i64) -> bool {
        if !self.state.tripped || now_ms <= self.state.halt_asked_ms {
            return false;
        }
        self.state.halt_asked_ms = now_ms;
        true
    }

    /// When the halt in force was last asked for: the operator's close started before it stops.
    #[must_use]
    pub fn last_halt_ms(&self) -> i64 {
        self.state.since_ms.max(self.state.halt_asked_ms)
    }

    /// Moves from active to reducing; returns false (and changes nothing) otherwise.
    pub fn reduce(&mut self, code: &str, reason: &str, by: &str, now_ms: i64) -> bool {
        if self.state.trading() != TradingState::Active {
            return false;
        }
        self.state = BreakerState {
            tripped: false,
            reducing: true,
            code: code.to_owned(),
            reason: reason.to_owned(),
            by: by.to_owned(),
            since_ms: now_ms,
            halt_asked_ms: self.state.halt_asked_ms,
        };
        true
    }

    /// Back to active; returns the state it had, or `None` when it was active.
    pub fn reset(&mut self, by: &str, now_ms: i64) -> Option<BreakerState> {
        if self.state.trading() == TradingState::Active {
            return None;
        }
        let halt_asked_ms = self.state.halt_asked_ms;
        let was = std::mem::replace(
            &mut self.state,
            BreakerState {
                tripped: false,
                reducing: false,
                code: String::new(),
                reason: String::new(),
                by: by.to_owned(),
                since_ms: now_ms,
                halt_asked_ms,
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
    fn a_halt_asked_while_halted_moves_only_the_time_of_the_last_halt() {
        let mut b = Breaker::new(BreakerState::default(), 3);
        // (action at ms, changed, since_ms after, last halt after)
        let steps: [(&str, i64, bool, i64, i64); 6] = [
            ("asked", 1, false, 0, 0),
            ("trip", 10, true, 10, 10),
            ("asked", 20, true, 10, 20),
            ("asked", 15, false, 10, 20),
            ("reset", 30, true, 30, 30),
            ("trip", 40, true, 40, 40),
        ];
        for (i, (action, at, changed, since, last)) in steps.into_iter().enumerate() {
            let did = match action {
                "asked" => b.halt_asked(at),
                "trip" => b.trip("manual", "halt", "cli", at),
                _ => b.reset("cli", at).is_some(),
            };
            assert_eq!((did, b.state.since_ms, b.last_halt_ms()), (changed, since, last), "step {i}");
        }
        assert_eq!(b.state.code, "manual");
    }

    #[test]
    fn reducing_sits_between_active_and_halted() {
        let mut b = Breaker::new(BreakerState::default(), 3);
        // (action, changed, state after)
        let steps: [(&str, bool, TradingState); 6] = [
            ("reduce", true, TradingState::Reducing),
            ("reduce", false, TradingState::Reducing),
            ("trip", true, TradingState::Halted),
            ("reduce", false, TradingState::Halted),
            ("reset", true, TradingState::Active),
            ("reset", false, TradingState::Active),
        ];
        for (i, (action, changed, after)) in steps.into_iter().enumerate() {
            let did = match action {
                "reduce" => b.reduce("daily_loss_limit", "loss", "daemon", 1),
                "trip" => b.trip("manual", "halt", "cli", 2),
                _ => b.reset("cli", 3).is_some(),
            };
            assert_eq!((did, b.state.trading()), (changed, after), "step {i}");
        }
        assert!(b.is_active());
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
