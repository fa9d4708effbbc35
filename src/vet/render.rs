//! `vet`'s report for people (text), for machines (JSON, money as exact decimal strings) and as a
//! chart (PNG).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::domain::{addr_lower, format_micros};
use crate::vet::{PriceModel, Report};

/// Everything `vet` says about one wallet.
#[derive(Debug, Clone)]
pub struct Vetted {
    /// The wallet.
    pub wallet: alloy::primitives::Address,
    /// Its label in wallets.json, when it has one.
    pub label: Option<String>,
    /// The period, unix ms.
    pub from_ms: i64,
    /// The period's end (the chain head's time), unix ms.
    pub to_ms: i64,
    /// The blocks read.
    pub blocks: (u64, u64),
    /// Blocks answered from the journal's cache.
    pub cached_blocks: u64,
    /// Fill logs that could not be decoded, left out (see [`crate::vet::history::History`]).
    pub undecodable: usize,
    /// The copy delay, ms.
    pub delay_ms: i64,
    /// The slippage cap, bps.
    pub max_slippage_bps: u32,
    /// Where the rules came from ("wallets.json", the --rules file, "defaults").
    pub rules_from: String,
    /// The rules, in words.
    pub rules: String,
    /// Markets of the replayed tokens Gamma said are resolved / tokens asked about.
    pub settled: (usize, usize),
    /// The wallet's balances before the period: (tokens read, tokens that could not be read, the
    /// block they were read at). Only tokens it sold after buying them in the period are read.
    pub held_before: (usize, usize, u64),
    /// Why markets could not be settled (Gamma unreachable), if so.
    pub gamma_error: Option<String>,
    /// The replay's figures.
    pub report: Report,
}

fn usdc(v: i64) -> String {
    format_micros(v)
}

/// How many copies each price model priced.
fn priced_by(r: &Report) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for c in &r.copies {
        let k = match c.model {
            PriceModel::NextFill => "next_fill",
            PriceModel::SlippageCap => "slippage_cap",
        };
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

fn hours(ms: i64) -> String {
    let minutes = ms / 60_000;
    if minutes < 120 { format!("{minutes} min") } else { format!("{:.1} h", ms as f64 / 3_600_000.0) }
}

/// The report for a terminal.
#[must_use]
pub fn text(v: &Vetted) -> String {
    let r = &v.report;
    let mut s = String::new();
    let name =
        v.label.as_ref().map(|l| format!("{l} ({})", addr_lower(&v.wallet))).unwrap_or_else(|| addr_lower(&v.wallet));
    let _ = writeln!(s, "vet {name}");
    let _ = writeln!(
        s,
        "period       {} → {} UTC, blocks {}..={} ({} from the cache)",
        crate::report::date(v.from_ms),
        crate::report::date(v.to_ms),
        v.blocks.0,
        v.blocks.1,
        v.cached_blocks
    );
    if v.undecodable > 0 {
        let _ = writeln!(
            s,
            "skipped      {} fill log(s) that could not be decoded: left out of what follows (see the log)",
            v.undecodable
        );
    }
    let _ = writeln!(
        s,
        "copying      delay {} ms, slippage cap {} bps, rules from {}:\n             {}",
        v.delay_ms, v.max_slippage_bps, v.rules_from, v.rules
    );
    let _ = writeln!(s, "fills        {} ({} per hour)", r.fills, r.trades_per_hour.normalize());
    let priced: Vec<String> = priced_by(r).iter().map(|(k, n)| format!("{n} by {k}")).collect();
    let _ = writeln!(
        s,
        "copies       {}{}",
        r.copies.len(),
        if priced.is_empty() { String::new() } else { format!(" (priced: {})", priced.join(", ")) }
    );
    if r.refusals.is_empty() {
        let _ = writeln!(s, "refused      none");
    } else {
        let list: Vec<String> = r.refusals.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(s, "refused      {}", list.join(", "));
    }
    let _ = writeln!(s, "invested     {} USDC", usdc(r.invested.0));
    let _ = writeln!(s, "realized     {} USDC", usdc(r.realized.0));
    let _ = writeln!(s, "open P&L     {} USDC (at the last price seen)", usdc(r.open_pnl.0));
    let _ = writeln!(
        s,
        "win rate     {}",
        r.win_rate_pct.map_or_else(|| "n/a (nothing closed)".into(), |w| format!("{w}%"))
    );
    let _ = writeln!(s, "max drawdown {} USDC", usdc(r.max_drawdown.0));
    let _ = writeln!(s, "median hold  {}", r.median_hold_ms.map_or_else(|| "n/a".into(), hours));
    let _ = writeln!(s, "round trips  {}% of its sales close its own buy within 5 minutes", r.round_trip_pct);
    let _ = writeln!(s, "concentration {}% of the money in one token", r.concentration_pct);
    let _ = writeln!(s, "settled      {} of {} markets resolved (Gamma)", v.settled.0, v.settled.1);
    if let Some(e) = &v.gamma_error {
        let _ = writeln!(
            s,
            "             Gamma did not answer ({e}); markets it did not settle are valued at the last price seen"
        );
    }
    held_before(&mut s, v.held_before);
    if r.high_frequency {
        let _ = writeln!(
            s,
            "\nFLAG high-frequency / wash trading: most of its sales close its own buys within minutes. Its \
             edge lives inside the copy delay: copying it is unlikely to pay."
        );
    }
    if r.too_few_to_judge() {
        let _ = writeln!(
            s,
            "\nFLAG few copies: {} in the period, fewer than {}: too few to judge the trader by, whatever the \
             figures above say. Vet a longer period.",
            r.copies.len(),
            super::replay::FEW_COPIES
        );
    }
    s
}

/// What the report says of the wallet's balances before the period, when it sold any.
fn held_before(s: &mut String, (read, unknown, block): (usize, usize, u64)) {
    let mut label = "held before";
    if read > 0 {
        let _ = writeln!(
            s,
            "{label}  read at block {block} for {read} token(s) it sold: its sales are copied in proportion"
        );
        label = "           ";
    }
    if unknown > 0 {
        let _ = writeln!(
            s,
            "{label}  {unknown} token(s) it sold could not be read at block {block} (the node keeps no state that \
             old; an archive node does): their sales are sized as if it held only what it bought in the period, \
             which copies them as whole exits"
        );
    }
}

/// The report for machines: money as exact decimal strings.
#[must_use]
pub fn json(v: &Vetted) -> Value {
    let r = &v.report;
    let copies: Vec<Value> = r
        .copies
        .iter()
        .map(|c| {
            json!({"at_ms": c.at_ms, "side": c.side, "token_id": c.token_id.to_string(),
                   "shares": format_micros(c.shares.0), "price": format_micros(c.price.0),
                   "model": c.model, "realized_usdc": usdc(c.realized.0)})
        })
        .collect();
    json!({
        "wallet": addr_lower(&v.wallet),
        "label": v.label,
        "from_ms": v.from_ms,
        "to_ms": v.to_ms,
        "from_block": v.blocks.0,
        "to_block": v.blocks.1,
        "cached_blocks": v.cached_blocks,
        "undecodable_logs": v.undecodable,
        "delay_ms": v.delay_ms,
        "max_slippage_bps": v.max_slippage_bps,
        "rules_from": v.rules_from,
        "rules": v.rules,
        "fills": r.fills,
        "copies": r.copies.len(),
        "priced_by": priced_by(r),
        "refusals": r.refusals,
        "invested_usdc": usdc(r.invested.0),
        "realized_usdc": usdc(r.realized.0),
        "open_pnl_usdc": usdc(r.open_pnl.0),
        "win_rate_pct": r.win_rate_pct,
        "max_drawdown_usdc": usdc(r.max_drawdown.0),
        "median_hold_ms": r.median_hold_ms,
        "trades_per_hour": r.trades_per_hour.normalize().to_string(),
        "round_trip_pct": r.round_trip_pct,
        "high_frequency": r.high_frequency,
        "too_few_copies": r.too_few_to_judge(),
        "concentration_pct": r.concentration_pct,
        "markets_resolved": v.settled.0,
        "markets_asked": v.settled.1,
        "gamma_error": v.gamma_error,
        "held_before_block": v.held_before.2,
        "held_before_read": v.held_before.0,
        "held_before_unknown": v.held_before.1,
        "copy_list": copies,
    })
}

/// The chart: the copies' cumulative realized P&L and open cost over the period.
///
/// # Errors
/// When drawing or encoding fails.
pub fn chart(v: &Vetted) -> Result<Vec<u8>, crate::report::ChartError> {
    let name = v.label.clone().unwrap_or_else(|| addr_lower(&v.wallet));
    let title = format!(
        "vet {name} · {} → {} · realized {} USDC",
        crate::report::date(v.from_ms),
        crate::report::date(v.to_ms),
        usdc(v.report.realized.0)
    );
    let mut series = vec![(v.from_ms, 0, 0)];
    series.extend(v.report.series.iter().copied());
    crate::report::lines_png(&title, &series, v.from_ms, v.to_ms)
}
