//! The subcommands an operator runs. Everything but `run` reads (or, for halt/resume, writes one row
//! of) the journal directly, so it works with or without a running daemon.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::config::problem::render;
use crate::config::settings::SettingsSources;
use crate::config::{Env, Problem, Settings, Wallets};
use crate::domain::addr_lower;
use crate::risk::BreakerState;
use crate::store::{Store, now_ms};

/// polycopy: mirror Polymarket target wallets' trades, paper trading by default.
#[derive(Debug, Parser)]
#[command(name = "polycopy", version, about)]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every subcommand takes.
#[derive(Debug, Args, Default, Clone)]
pub struct GlobalArgs {
    /// Settings file layered over the defaults and /etc/polycopy/polycopy.toml.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Target wallets file (overrides `wallets_path`).
    #[arg(long, global = true, value_name = "PATH")]
    pub wallets: Option<PathBuf>,
    /// SQLite journal (overrides `db_path`).
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Run,
    /// Validate settings, environment and wallets.json; print every problem.
    CheckConfig {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Breaker, targets, positions, last block, last fill.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The journal, newest first: one row per target fill.
    Trades {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// How many rows.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Trip the breaker: no order leaves until `resume` (a running daemon obeys within a second).
    Halt {
        /// Why, for the record.
        #[arg(long, default_value = "manual halt from the command line")]
        reason: String,
    },
    /// Clear the breaker.
    Resume,
    /// Check the live-trading setup (key, funder, CLOB, credentials, pUSD, allowances, region) and
    /// explain each problem; exit 1 when live trading would fail. Needs PRIVATE_KEY.
    Doctor {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Online backup of the journal to a file (safe while the daemon runs), integrity-checked.
    Backup {
        /// Where to write the copy.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check a journal file's integrity (the configured one, or --file); exit 1 when it is not sound.
    DbCheck {
        /// The file to check (default: the configured journal).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// `PRAGMA quick_check` instead of the full integrity check.
        #[arg(long)]
        quick: bool,
    },
    /// The daily or weekly report: P&L, copies and rejections, positions, per-target breakdown.
    Report {
        /// `daily` (since 00:00 UTC) or `weekly` (the last seven days).
        #[arg(value_enum)]
        period: ReportPeriod,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Integrity check, prune old journal rows, ANALYZE, and VACUUM unless the database is busy.
    Maintenance {
        /// Delete finished fills and events older than this many days.
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..))]
        prune_days: u32,
        /// Skip VACUUM.
        #[arg(long)]
        no_vacuum: bool,
    },
}

/// Which report.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReportPeriod {
    /// Since 00:00 UTC.
    Daily,
    /// The last seven days.
    Weekly,
}

/// Exit code when maintenance could not VACUUM because the database was busy (EX_TEMPFAIL).
pub const EXIT_BUSY: i32 = 75;

/// Loads the settings with the global overrides applied.
///
/// # Errors
/// Every settings problem.
pub fn load_settings(g: &GlobalArgs) -> Result<Settings, Vec<Problem>> {
    // POLYCOPY_SYSTEM_CONFIG moves (or, set empty, disables) the system-wide settings file.
    let system_file = match std::env::var_os("POLYCOPY_SYSTEM_CONFIG") {
        None => Some(PathBuf::from(crate::config::settings::SYSTEM_TOML)),
        Some(p) if p.is_empty() => None,
        Some(p) => Some(PathBuf::from(p)),
    };
    let mut s = Settings::load(&SettingsSources { config_file: g.config.clone(), system_file })?;
    if let Some(w) = &g.wallets {
        s.wallets_path.clone_from(w);
    }
    if let Some(d) = &g.db {
        s.db_path.clone_from(d);
    } else if crate::config::env::live_requested() {
        // Real money keeps its own journal: paper history never mixes with it.
        s.db_path.clone_from(&s.live.db_path);
    }
    Ok(s)
}

fn settings_or_bail(g: &GlobalArgs) -> Result<Settings> {
    load_settings(g).map_err(|p| anyhow::anyhow!("invalid settings:\n{}", render(&p)))
}

fn open_store(s: &Settings) -> Result<Store> {
    Store::open(&s.db_path).with_context(|| format!("opening the journal {}", s.db_path.display()))
}

/// `check-config`: returns the process exit code (0 clean, 1 problems).
///
/// # Errors
/// Never for a bad configuration (that is the output); only when printing fails.
pub fn check_config(g: &GlobalArgs, as_json: bool) -> Result<i32> {
    let mut problems = Vec::new();
    let settings = load_settings(g).map_err(|p| problems.extend(p)).ok();
    let env = Env::from_process().map_err(|p| problems.extend(p)).ok();
    let wallets_path = g
        .wallets
        .clone()
        .or_else(|| settings.as_ref().map(|s| s.wallets_path.clone()))
        .unwrap_or_else(|| PathBuf::from("config/wallets.json"));
    let wallets = Wallets::load(&wallets_path).map_err(|p| problems.extend(p)).ok();
    let enabled = wallets.as_ref().map_or(0, |w| w.enabled().count());
    if as_json {
        let out = json!({
            "ok": problems.is_empty(),
            "problems": problems,
            "mode": env.as_ref().map(|e| if e.paper_trading { "paper" } else { "live" }),
            "targets_enabled": enabled,
            "wallets_path": wallets_path.display().to_string(),
            "db_path": settings.as_ref().map(|s| s.db_path.display().to_string()),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if problems.is_empty() {
        println!("configuration OK");
        if let (Some(s), Some(e)) = (&settings, &env) {
            println!("  mode: {}", if e.paper_trading { "PAPER" } else { "LIVE" });
            println!(
                "  rpc: {}",
                e.rpc_urls.iter().map(|u| crate::config::redact_url(u)).collect::<Vec<_>>().join(", ")
            );
            println!("  websocket: {}", e.ws_url.as_deref().map_or("none (polling)".into(), crate::config::redact_url));
            println!("  journal: {}", s.db_path.display());
            println!(
                "  telegram: {}",
                if e.telegram_bot_token.is_some() { "configured" } else { "off (TELEGRAM_BOT_TOKEN not set)" }
            );
        }
        println!("  targets: {enabled} enabled in {}", wallets_path.display());
    } else {
        eprintln!("{} problem(s) found:\n{}", problems.len(), render(&problems));
    }
    Ok(i32::from(!problems.is_empty()))
}

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
        Err(_) => Vec::new(),
    };
    let stop_file = s.emergency_stop_file.exists();
    if as_json {
        let out = json!({
            "breaker": breaker_json(&report.breaker),
            "emergency_stop_file": stop_file,
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
    let b = &report.breaker;
    if b.tripped {
        println!("breaker: TRIPPED ({}) by {} since {}: {}", b.code, b.by, fmt_ms(b.since_ms), b.reason);
    } else {
        println!("breaker: ok (trading active)");
    }
    if stop_file {
        println!("emergency stop file present: {}", s.emergency_stop_file.display());
    }
    println!("last processed block: {}", report.last_block.map_or("none yet".into(), |n| n.to_string()));
    println!("targets:");
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
    json!({"tripped": b.tripped, "code": b.code, "reason": b.reason, "by": b.by, "since_ms": b.since_ms})
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

/// `halt`.
///
/// # Errors
/// When the journal cannot be written.
pub fn halt(g: &GlobalArgs, reason: &str) -> Result<()> {
    let s = settings_or_bail(g)?;
    let store = open_store(&s)?;
    let cur = store.breaker()?;
    if cur.tripped {
        println!("already halted ({}) by {}: {}", cur.code, cur.by, cur.reason);
        return Ok(());
    }
    store.set_breaker(&BreakerState {
        tripped: true,
        code: "manual".into(),
        reason: reason.into(),
        by: "cli".into(),
        since_ms: now_ms(),
    })?;
    store.add_event("breaker_tripped", &format!("halted from the command line: {reason}"))?;
    println!("halted: no new orders (a running daemon obeys within a second). Undo with `polycopy resume`.");
    Ok(())
}

/// `resume`.
///
/// # Errors
/// When the stop file is present or the journal cannot be written.
pub fn resume(g: &GlobalArgs) -> Result<()> {
    let s = settings_or_bail(g)?;
    if s.emergency_stop_file.exists() {
        bail!("the emergency stop file {} is present: remove it first, then resume", s.emergency_stop_file.display());
    }
    let store = open_store(&s)?;
    let cur = store.breaker()?;
    if !cur.tripped {
        println!("not halted: nothing to resume");
        return Ok(());
    }
    store.set_breaker(&BreakerState {
        tripped: false,
        code: String::new(),
        reason: String::new(),
        by: "cli".into(),
        since_ms: now_ms(),
    })?;
    store.add_event("breaker_reset", &format!("resumed from the command line (was {}: {})", cur.code, cur.reason))?;
    println!("resumed (was {} by {}: {})", cur.code, cur.by, cur.reason);
    Ok(())
}

/// `backup`.
///
/// # Errors
/// When the journal cannot be read or the copy written or verified.
pub fn backup(g: &GlobalArgs, out: &std::path::Path) -> Result<()> {
    let s = settings_or_bail(g)?;
    if !s.db_path.exists() {
        bail!("no journal at {}: nothing to back up", s.db_path.display());
    }
    let tmp = out.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    open_store(&s)?.backup_to(&tmp).with_context(|| format!("writing the backup {}", tmp.display()))?;
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
    if let Err(problem) = crate::store::check_file(&s.db_path, false)? {
        eprintln!("{}: {problem}; not touching it (see RUNBOOK: database corrupted)", s.db_path.display());
        return Ok(1);
    }
    println!("integrity: ok");
    let mut store = open_store(&s)?;
    // Never hold the daemon up for long: wait at most a second for its lock, else come back later.
    store.set_busy_timeout(std::time::Duration::from_secs(1))?;
    let p = match store.prune(prune_days) {
        Ok(p) => p,
        Err(e) if e.is_busy() => {
            eprintln!("database busy (the daemon is writing): prune and VACUUM skipped, run maintenance again later");
            return Ok(EXIT_BUSY);
        }
        Err(e) => return Err(e.into()),
    };
    println!("pruned {} finished fills and {} events older than {prune_days} days", p.fills, p.events);
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

/// `doctor`: returns the exit code (0 healthy, 1 a check failed).
///
/// # Errors
/// Invalid settings or environment, or no PRIVATE_KEY.
pub fn doctor(g: &GlobalArgs, as_json: bool) -> Result<i32> {
    let s = settings_or_bail(g)?;
    let env = Env::from_process().map_err(|p| anyhow::anyhow!("invalid environment:\n{}", render(&p)))?;
    let cfg = crate::clob::venue::VenueConfig::from_settings(&s, &env).map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let d = rt.block_on(crate::clob::doctor::diagnose(&cfg, s.live.check_geoblock));
    if as_json {
        let checks: Vec<_> = d
            .checks
            .iter()
            .map(|c| json!({"check": c.name, "verdict": format!("{:?}", c.verdict).to_ascii_lowercase(), "detail": c.detail}))
            .collect();
        println!("{}", json!({"healthy": d.healthy(), "checks": checks}));
    } else {
        print!("{}", d.render());
        println!(
            "{}",
            if d.healthy() {
                "live trading setup looks right"
            } else {
                "live trading would fail: fix the FAIL lines above"
            }
        );
    }
    Ok(i32::from(!d.healthy()))
}
