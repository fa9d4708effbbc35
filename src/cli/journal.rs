//! The commands that read the journal (status, trades, report), copy it (backup), check it and
//! prune it. None of them creates a journal.

use std::os::unix::fs::OpenOptionsExt as _;

use anyhow::{Context as _, Result};

use super::{EXIT_BUSY, GlobalArgs, ReportPeriod, open_store, settings_or_bail};
use crate::config::Wallets;
use crate::store::now_ms;

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
    // Only read: a settings file edited with a mistake while the daemon trades on the settings it
    // started with must not stop the nightly backups (its journal and mode are still read).
    let s = super::settings_for_reading(g)?;
    super::require_journal(&s)?;
    // Never over a file: `--out` naming the journal itself would swap a snapshot in under the
    // running daemon, and everything journaled since would be lost at its next start.
    if out.exists() {
        anyhow::bail!("{} exists: a backup never overwrites a file, choose a new name", out.display());
    }
    let tmp = out.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    // The copy holds the same secrets-adjacent history as the journal: owner-only from its first byte.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating the backup {}", tmp.display()))?;
    // As it is, never migrated: a daemon of an older polycopy may run on it.
    crate::store::backup_file(&s.db_path, &tmp).with_context(|| format!("writing the backup {}", tmp.display()))?;
    // A link, not a rename: it fails rather than replace a file that appeared meanwhile. Where the
    // filesystem has no links (vfat, some network mounts), a copy into a file created new.
    let placed = std::fs::hard_link(&tmp, out).or_else(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            return Err(e);
        }
        let mut to = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(out)?;
        let copied = std::io::copy(&mut std::fs::File::open(&tmp)?, &mut to).and_then(|_| to.sync_all());
        if copied.is_err() {
            // Ours, half written: not a backup.
            let _ = std::fs::remove_file(out);
        }
        copied
    });
    let _ = std::fs::remove_file(&tmp);
    placed.with_context(|| format!("writing the backup {} (it must not exist yet)", out.display()))?;
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
        None => super::settings_for_reading(g)?.db_path,
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
    // The archive is written by path in a directory the journal's owner owns: as root, a link that
    // user planted there would have root truncate, chmod and chown any file (a way to root).
    if let Some(owner) = crate::store::root_on_anothers_journal(&s.db_path) {
        eprintln!(
            "maintenance is run as the journal's owner ({owner}), not as root: `runuser -u {owner} -- polycopy \
             maintenance`, or maintenance.sh, which does so"
        );
        return Ok(1);
    }
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
        a.push(".archive");
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
    let files: Vec<String> =
        p.files.iter().map(|f| f.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
    println!(
        "pruned {} fills never copied and {} events older than {prune_days} days (archived first to {}/{}); copies are kept",
        p.fills,
        p.events,
        archive.display(),
        if files.is_empty() { "nothing old enough".to_owned() } else { files.join(", ") }
    );
    if no_vacuum {
        return Ok(0);
    }
    // A VACUUM rewrites the whole file holding the write lock: on a large journal that outlasts the
    // daemon's wait for it, and its next write would trip the breaker. Free pages are reused anyway.
    if let Some(pid) = crate::store::lock::holder(&s.db_path) {
        println!(
            "analyze + vacuum: skipped while the daemon{} runs on this journal (free pages are reused; to shrink \
             the file, run maintenance with the service stopped)",
            pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
        );
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
    let span = report::Span::new(period, store.trading_day_start(now), now);
    let (executions, fees) = (store.executions(0)?, store.fees_paid(span.from_ms)?);
    let prices = store.last_prices()?;
    let r = report::build(span, (&executions, &fees), &prices, &store.fill_counts(span.from_ms)?, &labels)
        .with_journal_positions(&store.book()?, &prices);
    if as_json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("{}", report::text(&r));
    }
    Ok(())
}
