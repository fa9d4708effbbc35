//! What the daemon reports: every event and its stable kind. Its text for a person is in `text`.

use actix::Message;

use crate::config::Problem;
use crate::domain::{Execution, OrderIntent, Price, Shares, TargetFill, Usdc};
use crate::risk::{BreakerState, DenyReason};

/// Something the operator should hear about.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum Event {
    /// The daemon started.
    Started {
        /// PAPER or LIVE.
        mode: &'static str,
        /// Enabled targets.
        targets: usize,
        /// Our version.
        version: &'static str,
        /// Set when it starts halted or reducing: what the operator must know first.
        trading: Option<String>,
    },
    /// The daemon is stopping.
    Stopped {
        /// Why.
        reason: String,
    },
    /// A target fill was seen and journaled.
    FillDetected {
        /// The fill.
        fill: TargetFill,
        /// The target's label.
        label: String,
    },
    /// A fill was sized into an intent, before the risk checks.
    Sized {
        /// The target's label.
        label: String,
        /// The intent.
        intent: OrderIntent,
    },
    /// A fill was not copied.
    Rejected {
        /// The fill.
        fill: TargetFill,
        /// The target's label.
        label: String,
        /// Why.
        reason: DenyReason,
        /// The market, when known.
        market: Option<crate::market::MarketRef>,
    },
    /// A copy was executed.
    Executed {
        /// The fill copied.
        fill: TargetFill,
        /// The target's label.
        label: String,
        /// What we did.
        exec: Execution,
        /// Block timestamp → execution, ms.
        latency_ms: i64,
        /// Our own part, µs: the fill's journal write committed → this copy's journaled (paper);
        /// `None` when not measured (live copies, recovered fills).
        pipeline_us: Option<u64>,
        /// The market, when known.
        market: Option<crate::market::MarketRef>,
        /// P&L this copy realized (a SELL).
        realized: Option<Usdc>,
    },
    /// The breaker tripped.
    BreakerTripped(BreakerState),
    /// The breaker was cleared.
    BreakerReset {
        /// The state it had.
        was: BreakerState,
        /// Who cleared it.
        by: String,
    },
    /// wallets.json was reloaded.
    WalletsReloaded {
        /// New targets.
        added: Vec<String>,
        /// Targets no longer watched.
        removed: Vec<String>,
        /// Targets whose rules changed.
        changed: Vec<String>,
    },
    /// A wallets.json edit was refused; the last good targets keep running.
    WalletsRejected(Vec<Problem>),
    /// A reorg was detected.
    Reorg {
        /// Blocks rewound.
        depth: u64,
        /// Common ancestor.
        ancestor: u64,
        /// Journaled fills above it.
        suspects: usize,
    },
    /// A fill left the chain before we acted on it: never copied.
    Withdrawn {
        /// The fill.
        fill: TargetFill,
    },
    /// A pending settlement was dropped, replaced or reverted: its targets' fills never happened.
    /// One report per transaction, whatever the number of fills in it.
    Orphaned {
        /// The transaction.
        tx: alloy::primitives::B256,
        /// Its fills of our targets, each with whether we had copied it.
        fills: Vec<crate::store::Orphan>,
        /// What became of it.
        cause: String,
    },
    /// Fills reported gone (orphaned, or reorged out after a copy) were mined after all (in this
    /// transaction): they stand.
    Unorphaned {
        /// The transaction that carried them.
        tx: alloy::primitives::B256,
        /// The fills as mined.
        fills: Vec<TargetFill>,
    },
    /// A fill we copied left the chain: our copy stands, the operator should know.
    ReorgedAfterCopy {
        /// The fill.
        fill: TargetFill,
    },
    /// An order of ours the CLOB never confirmed was filled on chain, and is booked from there.
    BookedOnChain {
        /// Our order id.
        order: String,
        /// What was booked.
        exec: Execution,
        /// The order was the operator's own close (its outcome answers a command), not a copy.
        by_operator: bool,
    },
    /// Our fills on chain of a booked SELL got other pUSD than booked (a lookup books at the
    /// order's limit price): the chain's amount replaced it.
    Corrected {
        /// Our order id.
        order: String,
        /// The token.
        token_id: crate::domain::TokenId,
        /// pUSD booked before.
        booked: Usdc,
        /// pUSD on chain.
        chain: Usdc,
        /// P&L the correction realized.
        realized: Usdc,
    },
    /// A resolved market settled one of our positions at its payout (1, 0, or 0.5 for an even result).
    Settled {
        /// "question — outcome".
        market: String,
        /// Shares settled.
        shares: Shares,
        /// What a share paid.
        payout: Price,
        /// P&L realized by the settlement.
        realized: Usdc,
    },
    /// An alert raised outside the daemon (health_check.sh), relayed to every sink.
    Alert {
        /// What the alert says.
        message: String,
    },
    /// A warning: not an outage yet, but the operator should look (see `crate::warnings`).
    Warning {
        /// Stable kind (`disk_low`, `drawdown`, ...).
        code: &'static str,
        /// What was seen, with the threshold.
        message: String,
    },
    /// A resolved market's winnings were redeemed into pUSD (paper: simulated).
    Redeemed {
        /// The market.
        condition: alloy::primitives::B256,
        /// Shares redeemed.
        shares: crate::domain::Shares,
        /// pUSD paid.
        payout: Usdc,
        /// The transaction (`None` in paper mode).
        tx: Option<alloy::primitives::B256>,
    },
    /// The operator acted by hand (a close, a market pause): reported to every chat.
    Operator {
        /// What was done.
        message: String,
    },
    /// Something needs a human.
    Error {
        /// What.
        message: String,
    },
}

impl Event {
    /// Stable kind name, as stored in the events log.
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Started { .. } => "started",
            Self::Stopped { .. } => "stopped",
            Self::FillDetected { .. } => "fill_detected",
            Self::Sized { .. } => "sized",
            Self::Rejected { .. } => "rejected",
            Self::Executed { .. } | Self::BookedOnChain { .. } => "executed",
            Self::BreakerTripped(_) => "breaker_tripped",
            Self::BreakerReset { .. } => "breaker_reset",
            Self::WalletsReloaded { .. } => "wallets_reloaded",
            Self::WalletsRejected(_) => "wallets_rejected",
            Self::Reorg { .. } => "reorg",
            Self::Withdrawn { .. } => "withdrawn",
            Self::Orphaned { .. } => "orphaned",
            Self::Unorphaned { .. } => "unorphaned",
            Self::ReorgedAfterCopy { .. } => "reorged_after_copy",
            Self::Settled { .. } => "settled",
            Self::Corrected { .. } => "corrected",
            Self::Alert { .. } => "alert",
            Self::Operator { .. } => "operator",
            Self::Redeemed { .. } => "redeemed",
            Self::Warning { .. } => "warning",
            Self::Error { .. } => "error",
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::settings::EVENT_KINDS;

    /// Every kind an event can have is one `telegram.notify` accepts, and the other way round: a
    /// new event must be listed there, or operators cannot set its level.
    #[test]
    fn every_event_kind_can_be_configured() {
        let src = include_str!("event.rs");
        let body = &src[src.find("pub const fn kind(&self)").unwrap()..src.find("#[cfg(test)]").unwrap()];
        let kinds: Vec<&str> = body.split("=> \"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
        assert!(kinds.len() > 10, "{kinds:?}");
        for k in &kinds {
            assert!(EVENT_KINDS.contains(k), "event kind {k} is missing from EVENT_KINDS");
        }
        for k in EVENT_KINDS {
            assert!(kinds.contains(&k), "EVENT_KINDS lists {k}, which no event has");
        }
    }
}
