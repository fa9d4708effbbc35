//! The notifier: every action of the daemon arrives here as an [`Event`], is logged as a structured
//! tracing event and appended to the journal's events log. Telegram becomes another sink of it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix::{Actor, Addr, Context, Handler, Message, Recipient};
use tracing::{debug, error, info, warn};

use crate::actors::store::{AddEvent, StoreActor};
use crate::config::Problem;
use crate::domain::{Execution, OrderIntent, Price, Shares, TargetFill, Usdc, addr_lower};
use crate::metrics::Metrics;
use crate::risk::{BreakerState, DenyReason};

mod burst;
pub use burst::Notifier;

/// Which per-fill detail events (a fill detected, a copy sized) anyone reads: the notifier's debug
/// log, or a Telegram set to report them (both off by default). Each one sent costs the actors'
/// thread and the report thread work on every fill (BENCHMARKS.md, seventh round), so those nobody
/// reads are not sent. Settled at start: neither the log filter nor Telegram's levels
/// change while the daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Details {
    /// Send [`Event::FillDetected`].
    pub fill_detected: bool,
    /// Send [`Event::Sized`].
    pub sized: bool,
}

impl Details {
    /// Every detail event (for a caller that does not decide).
    pub const ALL: Self = Self { fill_detected: true, sized: true };

    /// What is read, given whether the notifier's debug lines are logged and the levels of the
    /// Telegram that is configured, if any.
    #[must_use]
    pub fn wanted(debug_logged: bool, telegram: Option<&crate::config::settings::TelegramSettings>) -> Self {
        let reported =
            |kind: &str| telegram.is_some_and(|t| t.level(kind) != crate::config::settings::NotifyLevel::Off);
        Self { fill_detected: debug_logged || reported("fill_detected"), sized: debug_logged || reported("sized") }
    }

    /// Whether the log filter keeps the notifier's debug lines (where the detail events are logged).
    #[must_use]
    pub fn debug_logged() -> bool {
        tracing::enabled!(target: "polycopy::actors::notifier", tracing::Level::DEBUG)
    }
}

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
        let fill_ref = |f: &TargetFill| format!("{}:{}", f.id.tx_hash, f.log_index);
        match self {
            Self::Started { mode, targets, version, trading } => {
                let state = trading.as_ref().map(|t| format!(": {t}")).unwrap_or_default();
                format!("polycopy {version} started in {mode} mode, {targets} targets{state}")
            }
            Self::Stopped { reason } => format!("polycopy stopped: {reason}"),
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
            Self::BookedOnChain { order, exec } => format!(
                "our order {} was filled on chain, never confirmed by the CLOB: booked {} {} shares of {} at {} ({} USDC)",
                short_token(order),
                exec.side,
                exec.shares,
                short_token(&exec.token_id.to_string()),
                exec.price,
                exec.usdc
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
}

/// Shortens a long decimal token id for a person: `1234…5678`.
#[must_use]
pub fn short_token(t: &str) -> String {
    if t.len() > 12 { format!("{}…{}", &t[..4], &t[t.len() - 4..]) } else { t.to_owned() }
}

/// The report thread's side: logs and journals every event, counts it, and hands it to every sink
/// (Telegram). Events arrive from the [`Notifier`] in bursts.
#[derive(Debug)]
pub struct ReportWriter {
    store: Addr<StoreActor>,
    metrics: Arc<Metrics>,
    sinks: Vec<Recipient<Event>>,
}

impl ReportWriter {
    /// A report writer journaling into `store` and counting into `metrics`.
    #[must_use]
    pub const fn new(store: Addr<StoreActor>, metrics: Arc<Metrics>) -> Self {
        Self { store, metrics, sinks: Vec::new() }
    }
}

/// Adds a sink that receives every event from now on.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AddSink(pub Recipient<Event>);

impl Handler<AddSink> for ReportWriter {
    type Result = ();

    fn handle(&mut self, m: AddSink, _: &mut Context<Self>) {
        self.sinks.push(m.0);
    }
}

/// Replies once every event sent before it was handled (used to flush at shutdown).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Flushed;

impl Handler<Flushed> for ReportWriter {
    type Result = ();

    fn handle(&mut self, _: Flushed, _: &mut Context<Self>) {}
}

impl Actor for ReportWriter {
    type Context = Context<Self>;
}

/// Events in the order they were sent, handed to the report thread at once.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Burst(pub Vec<Event>);

impl Handler<Burst> for ReportWriter {
    type Result = ();

    fn handle(&mut self, burst: Burst, _: &mut Context<Self>) {
        for ev in burst.0 {
            self.report(ev);
        }
    }
}

impl ReportWriter {
    /// Logs the event with structured fields, appends it to the events log and hands it on.
    fn report(&self, ev: Event) {
        let kind = ev.kind();
        // A detected fill and its sizing are journaled (fills, intents), and the fill's outcome gets
        // an info line of its own that names the target's trade (copied, or not copied and why):
        // these two lines are for debugging, and are not even formatted otherwise. A backfill
        // detects and sizes thousands a second, and journald drops what passes its rate limit.
        if let Event::FillDetected { .. } | Event::Sized { .. } = ev {
            debug!(event = kind, "{}", ev.text());
        } else {
            self.log_and_journal(&ev);
        }
        if let Some((last, rest)) = self.sinks.split_last() {
            for sink in rest {
                sink.do_send(ev.clone());
            }
            last.do_send(ev);
        }
    }
}

impl ReportWriter {
    /// Counts the event for `/metrics`, logs it at its level, and appends it to the events log
    /// unless it has a journal row of its own.
    fn log_and_journal(&self, ev: &Event) {
        let kind = ev.kind();
        let text = ev.text();
        match ev {
            Event::Executed { latency_ms, .. } => {
                self.metrics.executed.fetch_add(1, Ordering::Relaxed);
                self.metrics.observe_latency(*latency_ms);
            }
            Event::Rejected { reason, .. } => self.metrics.rejected(reason.code()),
            Event::Warning { code, .. } => self.metrics.warning(code),
            Event::Reorg { .. } => {
                self.metrics.reorgs.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        match ev {
            Event::BreakerTripped(_)
            | Event::Error { .. }
            | Event::ReorgedAfterCopy { .. }
            | Event::WalletsRejected(_) => {
                error!(event = kind, "{text}");
            }
            Event::Warning { code, .. } => warn!(event = kind, code, "{text}"),
            Event::Rejected { reason, .. } => warn!(event = kind, reason = reason.code(), "{text}"),
            Event::Executed { latency_ms, pipeline_us, .. } => info!(event = kind, latency_ms, pipeline_us, "{text}"),
            _ => info!(event = kind, "{text}"),
        }
        // An executed copy has the journal's own row (executions): not written twice, one journal
        // job fewer per copy.
        if !matches!(ev, Event::Executed { .. }) {
            self.store.do_send(AddEvent { kind, message: text });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::{NotifyLevel, Settings, SettingsSources};

    #[test]
    fn detail_events_are_sent_only_when_someone_reads_them() {
        let defaults = Settings::load(&SettingsSources::default()).unwrap().telegram;
        let mut detected = defaults.clone();
        detected.notify.insert("fill_detected".into(), NotifyLevel::Silent);
        let mut sized = defaults.clone();
        sized.notify.insert("sized".into(), NotifyLevel::On);
        let none = Details { fill_detected: false, sized: false };
        let cases = [
            (false, None, none),
            (false, Some(&defaults), none),
            (true, None, Details::ALL),
            (true, Some(&defaults), Details::ALL),
            (false, Some(&detected), Details { fill_detected: true, sized: false }),
            (false, Some(&sized), Details { fill_detected: false, sized: true }),
        ];
        for (debug, telegram, want) in cases {
            let got = Details::wanted(debug, telegram);
            assert_eq!(got, want, "debug {debug}, telegram {:?}", telegram.map(|t| &t.notify));
        }
    }
}
