//! What the risk supervisor starts from: the state read from the journal, its settings, and the
//! actors it talks to.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Recipient};
use alloy::primitives::Address;

use crate::actors::executor::Execute;
use crate::actors::notifier::Notifier;
use crate::actors::store::StoreActor;
use crate::domain::Usdc;
use crate::metrics::Metrics;
use crate::risk::{Book, BreakerState, Limits};

/// What the supervisor starts from.
#[derive(Debug)]
pub struct RiskState {
    /// Persisted breaker.
    pub breaker: BreakerState,
    /// Our positions.
    pub book: Book,
    /// Realized P&L today.
    pub realized_today: Usdc,
    /// Copies in the last hour: (wallet, unix ms).
    pub recent_copies: Vec<(Address, i64)>,
    /// When the current trading day opened, unix ms.
    pub day_start_ms: i64,
    /// The open positions' unrealized P&L when it opened, if recorded.
    pub unrealized_at_open: Option<Usdc>,
    /// The last marks the journal holds (the opening above was valued at marks like these).
    pub marks: std::collections::HashMap<crate::domain::TokenId, crate::domain::Price>,
    /// Markets the operator paused.
    pub paused_markets: Vec<crate::store::PausedMarket>,
}

/// How the supervisor decides.
#[derive(Debug, Clone)]
pub struct RiskConfig {
    /// The hard limits.
    pub limits: Limits,
    /// Execution errors in a row that halt.
    pub max_consecutive_errors: u32,
    /// While this file exists trading is halted.
    pub stop_file: PathBuf,
    /// How often the breaker, the stop file and the trading day are checked.
    pub poll: Duration,
    /// Placements running at once.
    pub max_in_flight: usize,
    /// The trading day opens at this hour, UTC.
    pub day_starts_at_hour: u32,
    /// The daily loss limit halts (else it reduces: only exits are copied).
    pub daily_loss_halts: bool,
    /// A close sells at most this far under its reference price (the copy slippage cap).
    pub close_slippage_bps: u32,
    /// The journal file, and which file it was when opened: watched so trading halts if it is
    /// deleted or replaced.
    pub journal: Option<(PathBuf, crate::store::identity::FileIdentity)>,
    /// Paper trading at the target's price (the slippage, bps): each copy is journaled with its
    /// simulated execution in one write, with no executor round trip (and many more slots).
    pub paper_instant: Option<u32>,
}

/// Where the supervisor's collaborators and settings come from.
#[derive(Debug)]
pub struct RiskPeers {
    /// Journal.
    pub store: Addr<StoreActor>,
    /// The same journal's writer, straight: a placement's writes skip the store actor's mailbox.
    pub writer: crate::actors::store::Writer,
    /// Order placement.
    pub executor: Recipient<Execute>,
    /// Events.
    pub notifier: Addr<Notifier>,
    /// Gauges.
    pub metrics: Arc<Metrics>,
    /// Where the breaker is published for senders (and closed early by the control socket).
    pub gate: crate::risk::TradingGate,
}
