//! The pure trading core: sizing a copy, checking it against limits, keeping the book, and the
//! circuit breaker. No I/O and no clock: the actors gather state, call these, and do the effects.

pub mod book;
pub mod book_walk;
pub mod breaker;
pub mod close;
pub mod day;
pub mod gate;
pub mod limits;
pub mod market;
pub mod reason;
pub mod reconcile;
pub mod reservations;
pub mod restate;
pub mod sizing;

pub use book::{Book, Exposure, Position, Written};
pub use breaker::{Breaker, BreakerState, TradingState};
pub use gate::TradingGate;
pub use limits::{Limits, WalletActivity, check_intent};
pub use reason::DenyReason;
pub use reservations::{Reservation, Reservations};
pub use sizing::{CopyRules, SizingRule, size_copy};
