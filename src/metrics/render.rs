//! The metrics as Prometheus text: one function per group of series, and the writer of one
//! series with its `HELP` and `TYPE` lines.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{LATENCY_BUCKETS_MS, LEAD_BUCKETS_MS, Metrics, PENDING_BUCKETS_US};
use crate::chain::FeedStatus;
use crate::domain::format_micros;

impl Metrics {
    /// Renders everything in the Prometheus text exposition format.
    #[must_use]
    pub fn render(&self, feed: &FeedStatus, now_ms: i64) -> String {
        let mut o = String::with_capacity(2048);
        write_metric(&mut o, "polycopy_up", "gauge", "1 while the daemon runs.", &one("1".into()));
        write_metric(
            &mut o,
            "polycopy_build_info",
            "gauge",
            "Always 1; the labels say which build runs.",
            &[(format!("{{version=\"{}\",mode=\"{}\"}}", env!("CARGO_PKG_VERSION"), self.mode()), "1".into())],
        );
        for (name, kind, help, v) in crate::metrics_process::sample() {
            write_metric(&mut o, name, kind, help, &one(v));
        }
        self.render_copies(&mut o);
        render_chain(&mut o, feed, now_ms);
        self.render_incidents(&mut o);
        self.render_money(&mut o);
        self.render_operations(&mut o);
        self.render_targets(&mut o);
        self.render_detection(&mut o);
        o
    }

    /// The warning and operations series (appended to [`Metrics::render`]).
    fn render_operations(&self, o: &mut String) {
        let sent = self.warnings.lock().map(|m| m.clone()).unwrap_or_default();
        let kinds: Vec<(String, String)> = crate::warnings::WarningKind::ALL
            .iter()
            .map(|k| (format!("{{kind=\"{}\"}}", k.code()), sent.get(k.code()).copied().unwrap_or(0).to_string()))
            .collect();
        write_metric(o, "polycopy_warnings_total", "counter", "Warning alerts sent since start, by kind.", &kinds);
        write_metric(
            o,
            "polycopy_warning_checks_total",
            "counter",
            "Warning checks run since start.",
            &one(ld(&self.warning_checks)),
        );
        write_metric(
            o,
            "polycopy_redeem_rounds_total",
            "counter",
            "Redemption rounds run since start.",
            &one(ld(&self.redeem_rounds)),
        );
        write_metric(
            o,
            "polycopy_dashboard_reads_total",
            "counter",
            "Times the dashboard was read from the journal (pages share a read for 2 s).",
            &one(ld(&self.dashboard_reads)),
        );
        write_metric(
            o,
            "polycopy_redeem_round_failures_total",
            "counter",
            "Redemption rounds that could not read every resolved market (tried again next round).",
            &one(ld(&self.redeem_round_failures)),
        );
        write_metric(
            o,
            "polycopy_targets_copying",
            "gauge",
            "Targets being copied (enabled and not paused) at the last warning check.",
            &one(ld(&self.targets_copying)),
        );
        let ms = self.clob_response_ms.load(Ordering::Relaxed);
        let secs = if ms > 0 { format_micros(ms * 1_000) } else { "NaN".into() };
        write_metric(
            o,
            "polycopy_clob_response_seconds",
            "gauge",
            "The CLOB's last answer time to the warning check (live).",
            &one(secs),
        );
        let tg = if self.telegram_refused.load(Ordering::Relaxed) {
            "1".into()
        } else if self.telegram_on.load(Ordering::Relaxed) {
            u8::from(self.telegram_failing.load(Ordering::Relaxed)).to_string()
        } else {
            "NaN".into()
        };
        write_metric(
            o,
            "polycopy_telegram_failing",
            "gauge",
            "1 while the last Telegram delivery failed (NaN: Telegram off).",
            &one(tg),
        );
        write_metric(
            o,
            "polycopy_telegram_parked_chats",
            "gauge",
            "Authorized chats Telegram refuses to deliver to (blocked, not found, moved); retried now and then.",
            &one(self.telegram_parked_chats.load(Ordering::Relaxed).to_string()),
        );
    }

    /// The per-target series (labels are the targets' own: few, and escaped).
    fn render_targets(&self, o: &mut String) {
        let targets = self.targets.lock().map(|t| t.clone()).unwrap_or_default();
        let esc = |l: &str| l.replace('\\', "\\\\").replace('"', "\\\"");
        let series = |f: &dyn Fn(&crate::store::TargetQuality) -> Option<String>| -> Vec<(String, String)> {
            targets.iter().filter_map(|(l, _, q)| f(q).map(|v| (format!("{{target=\"{}\"}}", esc(l)), v))).collect()
        };
        write_metric(
            o,
            "polycopy_target_copies",
            "gauge",
            "Copies of each target in the journal.",
            &series(&|q| Some(q.copies.to_string())),
        );
        write_metric(
            o,
            "polycopy_target_refusals",
            "gauge",
            "Fills of each target not copied, in the journal.",
            &series(&|q| Some(q.refusals.values().sum::<u64>().to_string())),
        );
        write_metric(
            o,
            "polycopy_target_slippage_bps",
            "gauge",
            "Mean price of our copies against each target's, basis points (positive: against us).",
            &series(&|q| q.slippage_bps.map(|b| b.to_string())),
        );
        write_metric(
            o,
            "polycopy_target_detection_seconds",
            "gauge",
            "Median time from each target's block to our seeing its fill, seconds.",
            &series(&|q| q.detection_ms.map(|ms| format_micros(ms * 1_000))),
        );
        let mut pnl = series(&|q| Some(q.our_realized_usdc.to_string()));
        for (labels, _) in &mut pnl {
            labels.insert_str(labels.len() - 1, ",whose=\"ours\"");
        }
        let mut theirs = series(&|q| Some(q.target_realized_usdc.to_string()));
        for (labels, _) in &mut theirs {
            labels.insert_str(labels.len() - 1, ",whose=\"target\"");
        }
        pnl.extend(theirs);
        write_metric(
            o,
            "polycopy_target_realized_pnl_usdc",
            "gauge",
            "Realized P&L on each target's copied fills: ours, and the target's own on the same fills.",
            &pnl,
        );
    }

    /// The detection series: each source's lead over the mined log, orphans, our pending path's time.
    fn render_detection(&self, o: &mut String) {
        let d = self.detection.lock().map(|d| d.clone()).unwrap_or_default();
        let mut lead = Vec::new();
        for (source, leads) in &d.leads {
            for le in LEAD_BUCKETS_MS {
                let n = leads.iter().filter(|l| **l <= le).count();
                lead.push((
                    format!("_bucket{{source=\"{source}\",le=\"{}\"}}", format_micros(le * 1_000)),
                    n.to_string(),
                ));
            }
            lead.push((format!("_bucket{{source=\"{source}\",le=\"+Inf\"}}"), leads.len().to_string()));
            lead.push((format!("_sum{{source=\"{source}\"}}"), format_micros(leads.iter().sum::<i64>() * 1_000)));
            lead.push((format!("_count{{source=\"{source}\"}}"), leads.len().to_string()));
        }
        write_metric(
            o,
            "polycopy_detection_lead_seconds",
            "histogram",
            "How long before the mined log each source saw a fill, over the last day, seconds (negative: later).",
            &lead,
        );
        write_metric(
            o,
            "polycopy_detection_orphans",
            "gauge",
            "Fills seen pending in the last day whose transaction was never mined.",
            &[(String::new(), d.orphans.to_string())],
        );
        let mut own: Vec<(String, String)> = PENDING_BUCKETS_US
            .iter()
            .zip(&self.pending_buckets)
            .map(|(le, c)| (format!("_bucket{{le=\"{}\"}}", format_micros(*le)), ld(c)))
            .collect();
        own.push(("_bucket{le=\"+Inf\"}".into(), ld(&self.pending_count)));
        own.push(("_sum".into(), format_micros(self.pending_sum_us.load(Ordering::Relaxed))));
        own.push(("_count".into(), ld(&self.pending_count)));
        write_metric(
            o,
            "polycopy_pending_processing_seconds",
            "histogram",
            "Our own time per pool round with settlements of targets: decoding to journaled, seconds.",
            &own,
        );
    }

    /// Fills seen, copies executed and refused, the breaker, the trading state, and latency.
    fn render_copies(&self, o: &mut String) {
        write_metric(
            o,
            "polycopy_fills_seen_total",
            "counter",
            "Target fills journaled since start.",
            &one(ld(&self.fills_seen)),
        );
        write_metric(
            o,
            "polycopy_copies_executed_total",
            "counter",
            "Copies executed since start.",
            &one(ld(&self.executed)),
        );
        let mut counted = self.rejected.lock().map(|m| m.clone()).unwrap_or_default();
        for code in crate::risk::reason::KNOWN_CODES {
            counted.entry(code.to_owned()).or_insert(0);
        }
        let reasons: Vec<(String, String)> =
            counted.iter().map(|(k, v)| (format!("{{reason=\"{k}\"}}"), v.to_string())).collect();
        write_metric(
            o,
            "polycopy_copies_rejected_total",
            "counter",
            "Fills not copied since start, by reason code.",
            &reasons,
        );
        let tripped = u8::from(self.breaker_tripped.load(Ordering::Relaxed)).to_string();
        write_metric(o, "polycopy_breaker_tripped", "gauge", "1 while the circuit breaker is tripped.", &one(tripped));
        write_metric(
            o,
            "polycopy_trading_state",
            "gauge",
            "0 active, 1 reducing (only exits are copied), 2 halted.",
            &one(self.trading_state.load(Ordering::Relaxed).to_string()),
        );
        let mut lat: Vec<(String, String)> = LATENCY_BUCKETS_MS
            .iter()
            .zip(&self.latency_buckets)
            .map(|(le, c)| (format!("_bucket{{le=\"{}\"}}", format_micros(le * 1_000)), ld(c)))
            .collect();
        lat.push(("_bucket{le=\"+Inf\"}".into(), ld(&self.latency_count)));
        lat.push(("_sum".into(), format_micros(self.latency_sum_ms.load(Ordering::Relaxed) * 1_000)));
        lat.push(("_count".into(), ld(&self.latency_count)));
        write_metric(
            o,
            "polycopy_detection_latency_seconds",
            "histogram",
            "Target block timestamp to our order, seconds (block timestamps have 1 s resolution).",
            &lat,
        );
    }

    /// Reorgs and Telegram delivery: what went wrong around the trading.
    fn render_incidents(&self, o: &mut String) {
        write_metric(o, "polycopy_reorgs_total", "counter", "Reorgs detected since start.", &one(ld(&self.reorgs)));
        write_metric(
            o,
            "polycopy_telegram_send_failures_total",
            "counter",
            "Telegram messages that could not be delivered.",
            &one(ld(&self.telegram_send_failures)),
        );
        write_metric(
            o,
            "polycopy_telegram_unauthorized_total",
            "counter",
            "Telegram updates from unauthorized chats, ignored without reply.",
            &one(ld(&self.telegram_unauthorized)),
        );
    }

    /// Exposure and P&L.
    fn render_money(&self, o: &mut String) {
        let exposure = format_micros(self.exposure.load(Ordering::Relaxed));
        write_metric(o, "polycopy_exposure_usdc", "gauge", "Total cost of open positions, USDC.", &one(exposure));
        let reserved = format_micros(self.reserved.load(Ordering::Relaxed));
        write_metric(
            o,
            "polycopy_reserved_usdc",
            "gauge",
            "USDC held by BUY orders in flight or of unknown outcome (at their limit, less what filled).",
            &one(reserved),
        );
        write_metric(
            o,
            "polycopy_orders_in_flight",
            "gauge",
            "Orders in flight or of unknown outcome, each holding its exposure against the caps.",
            &one(ld(&self.orders_in_flight)),
        );
        write_metric(
            o,
            "polycopy_copies_waiting",
            "gauge",
            "Target fills handed to the copier and not yet decided; at its bound the feed waits (back-pressure).",
            &one(ld(&self.copies_waiting)),
        );
        let pnl = format_micros(self.pnl_today.load(Ordering::Relaxed));
        write_metric(o, "polycopy_realized_pnl_today_usdc", "gauge", "Realized P&L today (UTC), USDC.", &one(pnl));
        let unrealized = format_micros(self.unrealized_pnl.load(Ordering::Relaxed));
        write_metric(
            o,
            "polycopy_unrealized_pnl_usdc",
            "gauge",
            "Unrealized P&L of open positions at their marks (CLOB midpoints), USDC.",
            &one(unrealized),
        );
        let counted = format_micros(self.pnl_counted_today.load(Ordering::Relaxed));
        write_metric(
            o,
            "polycopy_pnl_today_usdc",
            "gauge",
            "P&L today as the daily loss limit counts it: realized today plus the change of unrealized since the day opened, USDC.",
            &one(counted),
        );
        let limit = format_micros(self.daily_loss_limit.load(Ordering::Relaxed));
        write_metric(
            o,
            "polycopy_daily_loss_limit_usdc",
            "gauge",
            "The daily loss limit (risk.daily_loss_limit_usdc): at -this, buys stop for the day, USDC.",
            &one(limit),
        );
    }
}

/// One unlabelled value.
fn one(v: String) -> Vec<(String, String)> {
    vec![(String::new(), v)]
}

/// A counter's value as text.
fn ld(a: &AtomicU64) -> String {
    a.load(Ordering::Relaxed).to_string()
}

/// Where the chain feed stands: head, processed block, lag, last sync, reconnects.
fn render_chain(o: &mut String, feed: &FeedStatus, now_ms: i64) {
    write_metric(o, "polycopy_chain_head_block", "gauge", "Latest chain head seen.", &one(feed.head.to_string()));
    write_metric(
        o,
        "polycopy_chain_processed_block",
        "gauge",
        "Last fully processed block.",
        &one(feed.processed.to_string()),
    );
    let lag = feed.head.saturating_sub(feed.processed).to_string();
    write_metric(
        o,
        "polycopy_chain_head_lag_blocks",
        "gauge",
        "Blocks between the head and the last processed block.",
        &one(lag),
    );
    let since = if feed.last_ok_ms > 0 { format_micros((now_ms - feed.last_ok_ms) * 1_000) } else { "NaN".into() };
    write_metric(
        o,
        "polycopy_chain_seconds_since_sync",
        "gauge",
        "Seconds since the last successful chain read.",
        &one(since),
    );
    let at = if feed.last_ok_ms > 0 { format_micros(feed.last_ok_ms * 1_000) } else { "NaN".into() };
    write_metric(
        o,
        "polycopy_chain_last_sync_timestamp_seconds",
        "gauge",
        "Unix time of the last successful chain read.",
        &one(at),
    );
    write_metric(
        o,
        "polycopy_rpc_reconnects_total",
        "counter",
        "Reconnections to the chain endpoints.",
        &one(feed.reconnects.to_string()),
    );
}

/// Appends one metric with its HELP and TYPE lines.
fn write_metric(o: &mut String, name: &str, kind: &str, help: &str, lines: &[(String, String)]) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, v) in lines {
        let _ = writeln!(o, "{name}{labels} {v}");
    }
}
