//! What the daemon reports: every event, and its text for a person (logs, the journal's events,
//! Telegram).

use actix::Message;

use crate::config::Problem;
use crate::domain::{Execution, OrderIntent, Price, Shares, TargetFill, Usdc, addr_lower};
use crate::risk::{BreakerState, DenyReason};

/// Copies an orphan report names one by one (the rest are counted): a message stays readable.
const ORPHANS_LISTED: usize = 10;

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
    /// Fills reported orphaned were mined after all (in this transaction): they stand.
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
    /// A resolved market settled one of our positions at 1 or 0.
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

    /// One line for a person.
    #[must_use]
    pub fn text(&self) -> String {
        match self {
            Self::Started { mode, targets, version, trading } => {
                let state = trading.as_ref().map(|t| format!(": {t}")).unwrap_or_default();
                format!("polycopy {version} started in {mode} mode, {targets} targets{state}")
            }
            Self::Stopped { reason } => format!("polycopy stopped: {reason}"),
            Self::FillDetected { .. } | Self::Sized { .. } | Self::Rejected { .. } | Self::Executed { .. } => {
                self.copy_text()
            }
            Self::BreakerTripped(s) if s.reducing => {
                format!("TRADING REDUCING ({}) by {}: {}: only exits are copied until resume", s.code, s.by, s.reason)
            }
            Self::BreakerTripped(s) => {
                format!("BREAKER TRIPPED ({}) by {}: {}", s.code, s.by, s.reason)
            }
            Self::BreakerReset { was, by } => {
                format!("breaker reset by {by} (was {}: {})", was.code, was.reason)
            }
            Self::WalletsReloaded { added, removed, changed } => format!(
                "wallets reloaded: added [{}], removed [{}], changed [{}]",
                added.join(", "),
                removed.join(", "),
                changed.join(", ")
            ),
            Self::WalletsRejected(p) => format!(
                "wallets.json rejected, the last good targets keep running: {}",
                p.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            ),
            Self::Reorg { .. }
            | Self::Withdrawn { .. }
            | Self::Orphaned { .. }
            | Self::Unorphaned { .. }
            | Self::ReorgedAfterCopy { .. } => self.chain_text(),
            Self::BookedOnChain { order, exec } => format!(
                "our order {} was filled on chain, never confirmed by the CLOB: booked {} {} shares of {} at {} ({} USDC)",
                short_token(order),
                exec.side,
                exec.shares,
                short_token(&exec.token_id.to_string()),
                exec.price,
                exec.usdc
            ),
            Self::Corrected { order, token_id, booked, chain, realized } => format!(
                "our SELL order {} of {} settled on chain for {chain} USDC, not the {booked} booked from the CLOB's \
                 answer: booked the chain's amount (P&L {realized} USDC)",
                short_token(order),
                short_token(&token_id.to_string()),
            ),
            Self::Settled { market, shares, payout, realized } => {
                format!("market resolved: {market}: {shares} shares settled at {payout}, realized {realized} USDC")
            }
            Self::Alert { message } => format!("ALERT: {message}"),
            Self::Operator { message } => message.clone(),
            Self::Redeemed { condition, shares, payout, tx } => match tx {
                Some(tx) => {
                    format!("redeemed {shares} shares of market {condition:#x}: {payout} pUSD paid (tx {tx:#x})")
                }
                None => format!("paper: redeemed {shares} shares of market {condition:#x}: {payout} pUSD (simulated)"),
            },
            Self::Warning { code, message } => format!("WARNING ({code}): {message}"),
            Self::Error { message } => format!("error: {message}"),
        }
    }

    /// The text of a target fill's way through the copier: detected, sized, copied or not.
    fn copy_text(&self) -> String {
        let fill_ref = |f: &TargetFill| format!("{}:{}", f.id.tx_hash, f.log_index);
        match self {
            Self::FillDetected { fill, label } => format!(
                "{label} {} {} shares of {} at {} ({})",
                fill.side,
                fill.shares,
                short_token(&fill.token_id.to_string()),
                fill.price,
                fill_ref(fill)
            ),
            Self::Sized { label, intent } => format!(
                "sized copy of {label}: {} {} shares of {} limit {}",
                intent.side,
                intent.shares,
                short_token(&intent.token_id.to_string()),
                intent.limit_price
            ),
            Self::Rejected { fill, reason, .. } if fill.wallet == crate::domain::OPERATOR => format!(
                "close not filled: SELL {} shares of {}: {}",
                fill.shares,
                short_token(&fill.token_id.to_string()),
                reason.explain()
            ),
            Self::Executed { fill, exec, realized, .. } if fill.wallet == crate::domain::OPERATOR => {
                format!(
                    "closed by the operator: SELL {} shares of {} at {} = {} USDC{}",
                    exec.shares,
                    short_token(&exec.token_id.to_string()),
                    exec.price,
                    exec.usdc,
                    realized.map(|r| format!(", realized {r} USDC")).unwrap_or_default()
                )
            }
            Self::Rejected { fill, label, reason, market } => {
                let of = market.as_ref().map_or_else(String::new, |m| format!(" of {m}"));
                format!("not copied: {label} {} {}{of} at {}: {reason}", fill.side, fill.shares, fill.price)
            }
            Self::Executed { fill, label, exec, latency_ms, market, .. } => format!(
                "copied {label}: {} {} shares of {} at {} = {} USDC (target {} at {}, {latency_ms} ms after {})",
                exec.side,
                exec.shares,
                market.as_ref().map_or_else(|| short_token(&exec.token_id.to_string()), ToString::to_string),
                exec.price,
                exec.usdc,
                fill.shares,
                fill.price,
                // A fill seen pending has no block yet: its time is when it was seen.
                if fill.block_number == 0 { "it was seen pending" } else { "the block" },
            ),
            _ => self.kind().to_owned(),
        }
    }

    /// The text of what the chain did to fills already seen: reorgs, withdrawn and orphaned fills.
    fn chain_text(&self) -> String {
        let fill_ref = |f: &TargetFill| format!("{}:{}", f.id.tx_hash, f.log_index);
        match self {
            Self::Reorg { depth, ancestor, suspects } => {
                format!("reorg of {depth} blocks back to {ancestor}; {suspects} journaled fills being re-checked")
            }
            Self::Withdrawn { fill } => format!(
                "fill {} of {} left the chain before we acted: not copied",
                fill_ref(fill),
                addr_lower(&fill.wallet)
            ),
            Self::Orphaned { tx, fills, cause } => {
                let n_copied = fills.iter().filter(|o| o.copied).count();
                let mut copied: Vec<String> = fills
                    .iter()
                    .filter(|o| o.copied)
                    .take(ORPHANS_LISTED)
                    .map(|o| {
                        format!(
                            "{} {} shares of {} for {}",
                            o.fill.side,
                            o.fill.shares,
                            short_token(&o.fill.token_id.to_string()),
                            addr_lower(&o.fill.wallet)
                        )
                    })
                    .collect();
                if n_copied > ORPHANS_LISTED {
                    copied.push(format!("and {} more", n_copied - ORPHANS_LISTED));
                }
                format!(
                    "pending settlement {tx} was {cause}: {} fill(s) of targets never happened, {n_copied} of them copied. {}",
                    fills.len(),
                    if copied.is_empty() {
                        "None was copied".to_owned()
                    } else {
                        format!(
                            "COPIED before its block: {}. Our copies stand; check the positions (`polycopy reconcile`). \
                             Should it be mined after all, that is reported too",
                            copied.join("; ")
                        )
                    }
                )
            }
            Self::Unorphaned { tx, fills } => format!(
                "{} fill(s) reported orphaned were mined after all in {tx}: they stand, and copies made of them are \
                 right (targets waiting for the block are copied now)",
                fills.len()
            ),
            Self::ReorgedAfterCopy { fill } => format!(
                "fill {} of {} was COPIED and then left the chain in a reorg: our copy stands, check the position",
                fill_ref(fill),
                addr_lower(&fill.wallet)
            ),
            _ => self.kind().to_owned(),
        }
    }
}

/// Shortens a long decimal token id for a person: `1234…5678`.
#[must_use]
pub fn short_token(t: &str) -> String {
    if t.len() > 12 { format!("{}…{}", &t[..4], &t[t.len() - 4..]) } else { t.to_owned() }
}

#[cfg(test)]
mod tests {
    use crate::config::settings::EVENT_KINDS;

    /// Every kind an event can have is one `telegram.notify` accepts, and the other way round: a
    /// new event must be listed there, or operators cannot set its level.
    #[test]
    fn every_event_kind_can_be_configured() {
        let src = include_str!("event.rs");
        let body = &src[src.find("pub const fn kind(&self)").unwrap()..src.find("/// One line for a person.").unwrap()];
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
