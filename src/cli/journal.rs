//! The commands that read the journal (status, trades, report), copy it (backup), check it and
//! prune it. None of them creates a journal.

use std::os::unix::fs::OpenOptionsExt as _;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::json;

use super::{EXIT_BUSY, GlobalArgs, ReportPeriod, open_store, settings_or_bail};
use crate::config::Wallets;
use crate::config::problem::render;
use crate::control::Request;
use crate::control::client::ask;
use crate::domain::addr_lower;
use crate::risk::BreakerState;
use crate::store::now_ms;

/// `status`.
///
/// # Errors
/// When the settings or the journal cannot be read.
pub fn status(g: &GlobalArgs, as_json: bool) -> Result<()> {
    let s = settings_or_bail(g)?;
    let store = open_store(&s)?;
    let report = store.status()?;
    let wallets = Wallets::load(&s.wallets_path);
    let targets: Vec<serde_json::Value> = match &wallets {
        Ok(w) => w
            .targets
            .iter()
            .map(|t| {
                let a = addr_lower(&t.address);
                json!({"address": a, "label": t.label, "enabled": t.enabled,
                       "fills_seen": report.fills_by_wallet.get(&a).copied().unwrap_or(0)})
            })
            .collect(),
        // The edit was refused, so the daemon still runs the set it last applied: show that one.
        Err(_) => store
            .running_targets()?
            .into_iter()
            .map(|(a, label)| {
                let fills_seen = report.fills_by_wallet.get(&a).copied().unwrap_or(0);
                json!({"address": a, "label": label, "enabled": true, "fills_seen": fills_seen, "running": true})
            })
            .collect(),
    };
    let stop_file = s.emergency_stop_file.exists();
    let paused_markets: Vec<serde_json::Value> = store
        .paused_markets()?
        .iter()
        .map(|m| {
            json!({"market": m.selector.to_string(), "key": m.selector.key(), "since_ms": m.since_ms, "by": m.by,
                        "tokens": m.tokens.iter().map(ToString::to_string).collect::<Vec<_>>()})
        })
        .collect();
    // The running daemon's own view wins (its breaker may be ahead of the journal, e.g. disk full).
    let daemon = ask(&s.control_socket_path(), &Request::Status, Duration::from_millis(500)).ok();
    let breaker = daemon.as_ref().map_or_else(|| report.breaker.clone(), |d| d.breaker.clone());
    let holder = if daemon.is_some() { None } else { crate::store::lock::holder(&s.db_path) };
    if as_json {
        let out = json!({
            "mode": s.mode.as_str(),
            "journal": s.db_path.display().to_string(),
            "daemon": match (&daemon, &holder) {
                (Some(d), _) => json!({"running": true, "pid": d.pid, "halted": d.halted, "answers": true}),
                (None, Some(pid)) => json!({"running": true, "pid": pid, "answers": false}),
                (None, None) => json!({"running": false}),
            },
            "breaker": breaker_json(&breaker),
            "emergency_stop_file": stop_file,
            "paused_markets": paused_markets,
            "targets": targets,
            "wallets_error": wallets.as_ref().err().map(|p| render(p)),
            "positions": report.positions,
            "exposure_usdc": report.exposure_usdc,
            "realized_today_usdc": report.realized_today_usdc,
            "unrealized_usdc": report.unrealized_usdc,
            "last_block": report.last_block,
            "last_fill": report.last_fill,
            "fills_by_status": report.fills_by_status,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("mode: {} (journal {})", s.mode.as_str().to_ascii_uppercase(), s.db_path.display());
    match (&daemon, &holder) {
        (Some(d), _) => println!("daemon: running (pid {}){}", d.pid, if d.halted { ", halted" } else { "" }),
        (None, Some(pid)) => println!(
            "daemon: running{} but its control socket does not answer",
            pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
        ),
        (None, None) => println!("daemon: not running on this journal"),
    }
    let b = &breaker;
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
    if stop_file {
        println!("emergency stop file present: {}", s.emergency_stop_file.display());
    }
    println!("last processed block: {}", report.last_block.map_or("none yet".into(), |n| n.to_string()));
    if wallets.is_err() {
        println!("targets (wallets.json is refused: the set the daemon last applied, still running):");
    } else {
        println!("targets:");
    }
    for t in &targets {
        println!(
            "  {} {:<16} {:<8} fills seen {}",
            t["address"].as_str().unwrap_or(""),
            t["label"].as_str().unwrap_or(""),
            if t["enabled"].as_bool().unwrap_or(false) { "enabled" } else { "disabled" },
            t["fills_seen"]
        );
    }
    if let Err(p) = &wallets {
        println!("  wallets.json has problems:\n{}", render(p));
    }
    for m in &paused_markets {
        println!(
            "market PAUSED (no buys, exits copied): {} by {} since {}",
            m["market"].as_str().unwrap_or(""),
            m["by"].as_str().unwrap_or(""),
            fmt_ms(m["since_ms"].as_i64().unwrap_or(0))
        );
    }
    println!(
        "positions (exposure {} USDC, realized today {} USDC, unrealized {} USDC at the last marks):",
        report.exposure_usdc, report.realized_today_usdc, report.unrealized_usdc
    );
    for p in &report.positions {
        println!("  {} shares of {} at avg {} (cost {} USDC)", p.shares, p.token_id, p.avg_price, p.cost_usdc);
    }
    if let Some(f) = &report.last_fill {
        println!(
            "last fill: {} {} {} {} at {} → {}",
            f.fill, f.wallet, f.side, f.target_shares, f.target_price, f.status
        );
    }
    Ok(())
}

fn breaker_json(b: &BreakerState) -> serde_json::Value {
    json!({"state": b.trading().as_str(), "tripped": b.tripped, "reducing": b.reducing, "code": b.code,
           "reason": b.reason, "by": b.by, "since_ms": b.since_ms})
}

fn fmt_ms(ms: i64) -> String {
    format!("{}s ago", (now_ms() - ms) / 1000)
}

/// `trades`.
///
/// # Errors
/// When the settings or the journal cannot be read.
pub fn trades(g: &GlobalArgs, as_json: bool, limit: u32) -> Result<()> {
    let s = settings_or_bail(g)?;
    let rows = open_store(&s)?.trades(limit)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    for r in rows {
        let ours = match (&r.shares, &r.price) {
            (Some(s), Some(p)) => format!("ours {s} at {p}"),
            _ => r.detail.clone().or(r.reason.clone()).unwrap_or_default(),
        };
        let what = r.market.clone().unwrap_or_else(|| format!("token {}", r.token_id));
        println!(
            "{:<9} {} {} {:<4} {} at {} {what}  {}",
            r.status, r.fill, r.wallet, r.side, r.target_shares, r.target_price, ours
        );
    }
    Ok(())
}

/// `backup`.
///
/// # Errors
/// When the journal cannot be read or the copy written or verified.
pub fn backup(g: &GlobalArgs, out: &std::path::Path) -> Result<()> {
    let s = settings_or_bail(g)?;
    let store = open_store(&s)?;
    let tmp = out.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    // The copy holds the same secrets-adjacent history as the journal: owner-only from its first byte.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating the backup {}", tmp.display()))?;
    store.backup_to(&tmp).with_context(|| format!("writing the backup {}", tmp.display()))?;
    std::fs::rename(&tmp, out)?;
    println!("backup written and verified: {}", out.display());
    Ok(())
}

/// `db-check`: returns the exit code.
///
/// # Errors
/// When the settings cannot be loaded or the file cannot be opened.
pub fn db_check(g: &GlobalArgs, file: Option<&std::path::Path>, quick: bool) -> Result<i32> {
    let path = match file {
        Some(f) => f.to_path_buf(),
        None => settings_or_bail(g)?.db_path,
    };
    match crate::store::check_file(&path, quick)? {
        Ok(()) => {
            println!("{}: ok", path.display());
            Ok(0)
        }
        Err(problem) => {
            eprintln!("{}: {problem}", path.display());
            Ok(1)
        }
    }
}

/// `maintenance`: returns the exit code (0 done, 1 integrity failure, 75 VACUUM skipped: busy).
///
/// # Errors
/// On a database error.
pub fn maintenance(g: &GlobalArgs, prune_days: u32, no_vacuum: bool) -> Result<i32> {
    let s = settings_or_bail(g)?;
    let mut store = open_store(&s)?;
    if let Err(problem) = crate::store::check_file(&s.db_path, false)? {
        eprintln!("{}: {problem}; not touching it (see RUNBOOK: database corrupted)", s.db_path.display());
        return Ok(1);
    }
    println!("integrity: ok");
    // Never hold the daemon up for long: wait at most a second for its lock, else come back later.
    store.set_busy_timeout(std::time::Duration::from_secs(1))?;
    let archive = {
        let mut a = s.db_path.clone().into_os_string();
        a.push(".archive.db");
        std::path::PathBuf::from(a)
    };
    let p = match store.prune(prune_days, &archive) {
        Ok(p) => p,
        Err(e) if e.is_busy() => {
            eprintln!("database busy (the daemon is writing): prune and VACUUM skipped, run maintenance again later");
            return Ok(EXIT_BUSY);
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "pruned {} fills never copied and {} events older than {prune_days} days (archived first to {}); copies are kept",
        p.fills,
        p.events,
        archive.display()
    );
    if no_vacuum {
        return Ok(0);
    }
    if store.vacuum_if_idle()? {
        println!("analyze + vacuum: done");
        Ok(0)
    } else {
        eprintln!("database busy (the daemon is writing): VACUUM skipped, run maintenance again later");
        Ok(EXIT_BUSY)
    }
}

/// `report`.
///
/// # Errors
/// When the settings or the journal cannot be read.
pub fn report(g: &GlobalArgs, period: ReportPeriod, as_json: bool) -> Result<()> {
    use crate::report::{self, Period};
    let s = settings_or_bail(g)?;
    let store = open_store(&s)?;
    let period = match period {
        ReportPeriod::Daily => Period::Daily,
        ReportPeriod::Weekly => Period::Weekly,
        ReportPeriod::Monthly => Period::Monthly,
    };
    let now = now_ms();
    let labels = Wallets::load(&s.wallets_path)
        .map(|w| w.targets.into_iter().map(|t| (t.address, t.label)).collect())
        .unwrap_or_default();
    let r = report::build(
        period,
        now,
        &store.executions(0)?,
        &store.last_prices()?,
        &store.fill_counts(period.start(now))?,
        &labels,
    );
    if as_json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("{}", report::text(&r));
    }
    Ok(())
}
