//! The messages the risk supervisor answers: an intent to evaluate, trading halted or resumed,
//! the trading state, a position, and the drain at shutdown.

use actix::Message;

use crate::domain::{OrderIntent, Shares, TargetFill, TokenId};
use crate::risk::{BreakerState, DenyReason};

/// What became of an intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Approved: its exposure is reserved and its placement runs (the outcome is reported).
    Approved,
    /// This fill's order is already being placed or resolved (the fill came again, after a reorg's
    /// rescan say): nothing is reserved or sent again; the placement running reports the outcome.
    AlreadyPlacing,
    /// Denied by a limit or the breaker.
    Rejected(DenyReason),
    /// The executor or the journal failed.
    Failed(String),
    /// A sighting's copy that only the pending cap made too small: not refused, its fill waits
    /// for its block, which hands it on to be copied on the target's own rules (or has already
    /// handed it on, or will revive it if it was orphaned).
    WaitsForBlock,
}

/// Approve (or deny) and execute one intent.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Decision")]
pub struct Evaluate {
    /// The sized intent.
    pub intent: OrderIntent,
    /// The fill it mirrors.
    pub fill: TargetFill,
    /// The target's label.
    pub label: String,
    /// The wallet's own per-hour limit.
    pub max_trades_per_hour: Option<u32>,
    /// The wallet's minimum gap between copies.
    pub min_trade_interval_s: Option<u64>,
    /// True when the intent was journaled before a crash: execute it, do not re-approve it.
    pub recovered: bool,
    /// Part of recovery at start: answered as soon as it is approved, not once its placement has
    /// a slot, so that a start never waits behind orders hanging at the exchange.
    pub at_start: bool,
    /// "question — outcome", when known.
    pub market: Option<crate::market::MarketRef>,
    /// When the fill's journal write committed (see [`crate::store::PendingFill::journaled`]).
    pub journaled: Option<std::time::Instant>,
    /// What the journal already booked for this order (shares, pUSD), when recovered at start
    /// with part of it filled: only the rest is reserved.
    pub booked: Option<(Shares, crate::domain::Usdc)>,
    /// The trading gate's count of halts when the operator's close started, or when a copy was
    /// approved (set then): a halt after that stops its sends. `None` until then.
    pub halts_seen: Option<u64>,
    /// When its approval was counted against the wallet's frequency limits (a BUY; set then):
    /// taken back if the intent is never journaled (its fill became a reorg's suspect meanwhile,
    /// and is handed on again once the rescan confirms it).
    pub counted_at_ms: Option<i64>,
}

/// Whether a BUY of ours of a token is being placed or of unknown outcome (it may yet fill).
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct BuyOpen(pub TokenId);

/// Whether the fill in this journal row has an order being placed or resolved (its exposure held).
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct Placing(pub i64);

/// Our current position in a token, for a SELL's size.
#[derive(Debug, Message)]
#[rtype(result = "Shares")]
pub struct GetPosition {
    /// The token.
    pub token: TokenId,
    /// Part of recovery at start, which the feed waits for: answered without waiting for BUYs of
    /// unknown outcome (the operator is told instead), so the daemon is ready at once.
    pub at_start: bool,
}

/// Halt or resume trading from inside the daemon (the feed on a journal failure, Telegram).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SetTrading {
    /// True to halt, false to resume.
    pub halt: bool,
    /// Stable code of the cause when halting (`manual`, `database_error`, ...).
    pub code: &'static str,
    /// Why.
    pub reason: String,
    /// Who.
    pub by: String,
}

/// A halt asked for while trading was read as already halted: the halt, its cause and its start
/// stay as they are; its time is noted (and journaled), so that the operator's close and a resume
/// button from before it stop at it even after a restart. If trading is no longer halted when it
/// arrives (a resume queued before it was handled first, or the state was read from a journal
/// behind the supervisor), it halts: a halt is never answered "halted" and then not obeyed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct HaltAsked {
    /// When it was asked for, unix ms.
    pub at_ms: i64,
    /// The halt's reason, should it have to halt.
    pub reason: String,
    /// Who asked.
    pub by: String,
}

/// Resume from the halt (or `reducing`) that began at `since_ms`, unless the gate counted a halt
/// after `halts_seen` was read: a halt that came while the resume was being confirmed (even one
/// that found trading already halted and changed nothing else) is never lifted by it. Answers
/// whether it resumed.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct ResumeFrom {
    /// When the halt being resumed began (`None`: whichever halt is in force, as the command
    /// line's `resume` asks).
    pub since_ms: Option<i64>,
    /// The gate's count of halts when the resume was asked for.
    pub halts_seen: u64,
    /// When the last halt was asked for, as the resume's offer read it (`None`: not checked).
    /// Unlike the gate's count, it survives a restart.
    pub last_halt_ms: Option<i64>,
    /// Who.
    pub by: String,
}

/// The breaker's current state (for `/health`).
#[derive(Debug, Message)]
#[rtype(result = "BreakerState")]
pub struct GetBreakerState;

/// Replies once every placement started before it has finished (used to drain at shutdown).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Flush;
