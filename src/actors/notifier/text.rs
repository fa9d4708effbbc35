//! An event's text for a person: one line for logs, the journal's events and Telegram.

use super::event::Event;
use crate::domain::{TargetFill, addr_lower};

/// Copies an orphan report names one by one (the rest are counted): a message stays readable.
const ORPHANS_LISTED: usize = 10;

impl Event {
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
                // The daily loss limit's `reducing` ends with its day; any other waits for a resume.
                let until = if s.code == crate::risk::reason::DAILY_LOSS_LIMIT {
                    "until the next trading day opens (or resume)"
                } else {
                    "until resume"
                };
                format!("TRADING REDUCING ({}) by {}: {}: only exits are copied {until}", s.code, s.by, s.reason)
            }
            Self::BreakerTripped(s) => {
                format!("BREAKER TRIPPED ({}) by {}: {}", s.code, s.by, s.reason)
            }
            Self::BreakerReset { was, by } => {
                format!("breaker reset by {by} (was {}: {})", was.code, was.reason)
            }
            Self::WalletsReloaded { added, removed, changed } => format!(
                "wallets reloaded: added [{}], removed [{}], changed [{}]{}",
                added.join(", "),
                removed.join(", "),
                changed.join(", "),
                if removed.is_empty() {
                    ""
                } else {
                    ". A target no longer watched has its exits no longer copied: what was copied from it stays \
                     open until you close it or it resolves (/pause instead keeps copying its exits)"
                }
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
            Self::BookedOnChain { order, exec, .. } => format!(
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
                "{} fill(s) reported gone (orphaned, or reorged out) were mined after all in {tx}: they stand, and \
                 copies made of them are right (targets waiting for the block are copied now)",
                fills.len()
            ),
            Self::ReorgedAfterCopy { fill } => format!(
                "fill {} of {} was COPIED (or its copy order journaled) and then left the chain in a reorg: a copy \
                 made stands, an order in flight is only looked up and its outcome decides (one not sent never \
                 leaves); check the position",
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
