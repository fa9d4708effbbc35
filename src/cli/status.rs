//! `status`: what the journal and the running daemon say, as text or JSON (the incident bundle
//! embeds the JSON).

use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use super::{GlobalArgs, open_store};
use crate::config::problem::render;
use crate::config::{Problem, Settings, Wallets};
use crate::control::client::ask;
use crate::control::{Reply, Request};
use crate::domain::addr_lower;
use crate::risk::BreakerState;
use crate::store::{StatusReport, now_ms};

/// Everything `status` shows, gathered once.
struct View {
    report: StatusReport,
    targets: Vec<Value>,
    wallets_error: Option<Vec<Problem>>,
    paused_markets: Vec<Value>,
    stop_file: bool,
    daemon: Option<Reply>,
    /// A daemon that answered on this journal's socket but trades another journal (a shared
    /// `control_socket`, the mode switched in the file): not this journal's.
    other: Option<Reply>,
    holder: Option<Option<u32>>,
    breaker: BreakerState,
}

fn gather(s: &Settings) -> Result<View> {
    let store = open_store(s)?;
    let report = store.status()?;
    let quality = store.target_quality(0)?;
    let wallets = Wallets::load(&s.wallets_path);
    let seen = |a: &str| report.fills_by_wallet.get(a).copied().unwrap_or(0);
    let quality_of = |a: &str| {
        a.parse::<alloy::primitives::Address>()
            .ok()
            .and_then(|w| quality.get(&w))
            .map_or(serde_json::Value::Null, quality_json)
    };
    let targets: Vec<Value> = match &wallets {
        Ok(w) => w
            .targets
            .iter()
            .map(|t| {
                let a = addr_lower(&t.address);
                json!({"address": a, "label": t.label, "enabled": t.enabled, "fills_seen": seen(&a),
                       "quality": quality_of(&a)})
            })
            .collect(),
        // The edit was refused, so the daemon still runs the set it last applied: show that one.
        Err(_) => store
            .running_targets()?
            .into_iter()
            .map(|(a, label)| {
                let q = quality_of(&a);
                json!({"address": a, "label": label, "enabled": true, "fills_seen": seen(&a), "running": true,
                       "quality": q})
            })
            .collect(),
    };
    let paused_markets = store
        .paused_markets()?
        .iter()
        .map(|m| {
            json!({"market": m.selector.to_string(), "key": m.selector.key(), "since_ms": m.since_ms, "by": m.by,
                   "tokens": m.tokens.iter().map(ToString::to_string).collect::<Vec<_>>()})
        })
        .collect();
    // The running daemon's own view wins (its breaker may be ahead of the journal, e.g. disk full).
    let answered = ask(&s.control_socket_path(), &Request::Status, Duration::from_millis(1_000)).ok();
    let (daemon, other) = match answered {
        Some(d) if !crate::control::client::same_journal(std::path::Path::new(&d.journal), &s.db_path) => {
            (None, Some(d))
        }
        d => (d, None),
    };
    let breaker = daemon.as_ref().map_or_else(|| report.breaker.clone(), |d| d.breaker.clone());
    let holder = if daemon.is_some() { None } else { crate::store::lock::holder(&s.db_path) };
    Ok(View {
        report,
        targets,
        wallets_error: wallets.err(),
        paused_markets,
        stop_file: s.emergency_stop_file.exists(),
        daemon,
        other,
        holder,
        breaker,
    })
}

fn to_json(s: &Settings, v: &View) -> Value {
    let r = &v.report;
    json!({
        "mode": s.mode.as_str(),
        "journal": s.db_path.display().to_string(),
        "daemon": match (&v.daemon, &v.holder) {
            (Some(d), _) => json!({"running": true, "pid": d.pid, "halted": d.halted, "answers": true, "http": d.http,
                "orders_in_flight": d.in_flight.as_ref().map(|f| f.orders),
                "reserved_usdc": d.in_flight.as_ref().map(|f| f.reserved_usdc.clone())}),
            (None, Some(pid)) => json!({"running": true, "pid": pid, "answers": false}),
            (None, None) => json!({"running": false}),
        },
        "other_daemon": v.other.as_ref().map(|d| json!({"pid": d.pid, "mode": d.mode, "journal": d.journal,
            "halted": d.halted})),
        "breaker": breaker_json(&v.breaker),
        "emergency_stop_file": v.stop_file,
        "paused_markets": v.paused_markets,
        "targets": v.targets,
        "wallets_error": v.wallets_error.as_ref().map(|p| render(p)),
        "positions": r.positions,
        "exposure_usdc": r.exposure_usdc,
        "realized_today_usdc": r.realized_today_usdc,
        "fees_today_usdc": r.fees_today_usdc,
        "unrealized_usdc": r.unrealized_usdc,
        "last_block": r.last_block,
        "last_fill": r.last_fill,
        "fills_by_status": r.fills_by_status,
    })
}

/// `status --json` as a value.
///
/// # Errors
/// When the journal cannot be read.
pub fn status_value(s: &Settings) -> Result<Value> {
    Ok(to_json(s, &gather(s)?))
}

/// `status`.
///
/// # Errors
/// When the settings or the journal cannot be read.
pub fn status(g: &GlobalArgs, as_json: bool) -> Result<()> {
    let s = super::settings_for_reading(g)?;
    let v = gather(&s)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&to_json(&s, &v))?);
        return Ok(());
    }
    println!("mode: {} (journal {})", s.mode.as_str().to_ascii_uppercase(), s.db_path.display());
    match (&v.daemon, &v.holder) {
        (Some(d), _) => {
            println!("daemon: running (pid {}){}", d.pid, if d.halted { ", halted" } else { "" });
            if let Some(f) = d.in_flight.as_ref().filter(|f| f.orders > 0) {
                println!(
                    "orders in flight or of unknown outcome: {} (their BUYs hold {} USDC of the caps)",
                    f.orders, f.reserved_usdc
                );
            }
        }
        (None, Some(pid)) => println!(
            "daemon: running{} but its control socket does not answer",
            pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
        ),
        (None, None) => println!("daemon: not running on this journal"),
    }
    if let Some(d) = &v.other {
        println!(
            "warning: the daemon on the control socket (pid {}) trades the {} journal {}, not this one{}",
            d.pid,
            d.mode,
            d.journal,
            if d.halted { " (halted)" } else { "" }
        );
    }
    print_trading(&v.breaker);
    if v.stop_file {
        println!("emergency stop file present: {}", s.emergency_stop_file.display());
    }
    println!("last processed block: {}", v.report.last_block.map_or("none yet".into(), |n| n.to_string()));
    print_targets(&v);
    print_book(&v.report);
    Ok(())
}

fn print_trading(b: &BreakerState) {
    if b.reducing {
        println!(
            "trading: REDUCING ({}) by {} since {}: {}: only exits are copied",
            b.code,
            b.by,
            fmt_ms(b.since_ms),
            b.reason
        );
    } else if b.tripped {
        println!("breaker: TRIPPED ({}) by {} since {}: {}", b.code, b.by, fmt_ms(b.since_ms), b.reason);
    } else {
        println!("breaker: ok (trading active)");
    }
}

fn print_targets(v: &View) {
    if v.wallets_error.is_some() {
        println!("targets (wallets.json is refused: the set the daemon last applied, still running):");
    } else {
        println!("targets:");
    }
    for t in &v.targets {
        println!(
            "  {} {:<16} {:<8} fills seen {}",
            t["address"].as_str().unwrap_or(""),
            t["label"].as_str().unwrap_or(""),
            if t["enabled"].as_bool().unwrap_or(false) { "enabled" } else { "disabled" },
            t["fills_seen"]
        );
    }
    if let Some(p) = &v.wallets_error {
        println!("  wallets.json has problems:\n{}", render(p));
    }
    for m in &v.paused_markets {
        println!(
            "market PAUSED (no buys, exits copied): {} by {} since {}",
            m["market"].as_str().unwrap_or(""),
            m["by"].as_str().unwrap_or(""),
            fmt_ms(m["since_ms"].as_i64().unwrap_or(0))
        );
    }
}

fn print_book(report: &StatusReport) {
    println!(
        "positions (exposure {} USDC, realized today {} USDC after {} USDC of fees, unrealized {} USDC at the last marks):",
        report.exposure_usdc, report.realized_today_usdc, report.fees_today_usdc, report.unrealized_usdc
    );
    if report.positions.is_empty() {
        println!("  none");
    }
    for p in &report.positions {
        println!("  {} shares of {} at avg {} (cost {} USDC)", p.shares, p.token_id, p.avg_price, p.cost_usdc);
    }
    if let Some(f) = &report.last_fill {
        println!(
            "last fill: {} {} {} {} at {} → {}",
            f.fill, f.wallet, f.side, f.target_shares, f.target_price, f.status
        );
    }
}

fn breaker_json(b: &BreakerState) -> Value {
    json!({"state": b.trading().as_str(), "tripped": b.tripped, "reducing": b.reducing, "code": b.code,
           "reason": b.reason, "by": b.by, "since_ms": b.since_ms, "halt_asked_ms": b.halt_asked_ms})
}

fn fmt_ms(ms: i64) -> String {
    format!("{}s ago", (now_ms() - ms) / 1000)
}

/// A target's copy quality as `status --json` shows it (amounts as decimal strings).
fn quality_json(q: &crate::store::TargetQuality) -> Value {
    json!({
        "copies": q.copies,
        "refusals": q.refusals,
        "slippage_bps": q.slippage_bps,
        "detection_ms": q.detection_ms,
        "our_realized_usdc": q.our_realized_usdc.to_string(),
        "target_realized_usdc": q.target_realized_usdc.to_string(),
        "last_seen_ms": q.last_seen_ms,
    })
}
