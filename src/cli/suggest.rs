//! `polycopy targets suggest`: candidates from Polymarket's leaderboard (Data API), each with its
//! last trade and the figures `vet` gives it over the last days, so a newcomer starts from
//! evidence rather than a placeholder. `--add` appends the ones worth a look to wallets.json,
//! disabled: enabling one stays a deliberate act.

use std::collections::HashSet;
use std::io::IsTerminal as _;
use std::time::Duration;

use alloy::primitives::Address;
use anyhow::{Context as _, Result};
use polymarket_client_sdk_v2::data::types::request::{TraderLeaderboardRequest, TradesRequest};
use polymarket_client_sdk_v2::data::types::{LeaderboardOrderBy, TimePeriod};
use serde_json::{Value, json};

use super::vet::{Outcome, Source, Who, analyze, defaults_of};
use super::{GlobalArgs, settings_or_bail};
use crate::config::{Settings, Wallets};
use crate::domain::{addr_lower, format_micros};
use crate::vet::render::{self, Vetted};

/// Longest the Data API may take for one answer.
const DATA_WAIT: Duration = Duration::from_secs(20);

/// The leaderboard's period.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Period {
    /// The last day.
    Day,
    /// The last week.
    Week,
    /// The last month.
    Month,
    /// All time.
    All,
}

/// `targets suggest`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct SuggestArgs {
    /// The leaderboard's period.
    #[arg(long, value_enum, default_value = "month")]
    pub period: Period,
    /// How many of the leaderboard's top traders to vet (1–50, the Data API's most).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub limit: u32,
    /// Days of chain history each candidate is vetted over (1–90; `vet` takes up to 365).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=90))]
    pub days: u32,
    /// Append the candidates worth a look (not listed yet, not flagged high-frequency, copies that
    /// made money over the period) to wallets.json, disabled.
    #[arg(long)]
    pub add: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// One leaderboard entry and what vetting it found.
struct Candidate {
    rank: i32,
    name: Option<String>,
    wallet: Address,
    pnl: rust_decimal::Decimal,
    volume: rust_decimal::Decimal,
    last_trade_ms: Option<i64>,
    listed: bool,
    vetted: Option<Vetted>,
    problem: Option<String>,
}

impl Candidate {
    /// Worth appending: new, copyable, vetted in full, and copying it made money over the period.
    fn worth_adding(&self) -> bool {
        !self.listed
            && self.vetted.as_ref().is_some_and(|v| {
                let r = &v.report;
                incomplete(v).is_none() && !r.high_frequency && !r.copies.is_empty() && r.realized.0 + r.open_pnl.0 > 0
            })
    }

    /// Its name as a terminal shows it: control and invisible characters (escapes, newlines,
    /// direction overrides) dropped.
    fn shown_name(&self) -> String {
        crate::domain::shown_plainly(self.name.as_deref().unwrap_or("-"))
    }
}

/// Why a vet's figures cannot be trusted as a whole, if so: markets left unsettled (a loser would
/// be valued at its last price), or fills left out. (Holdings before the period that could not
/// be read only leave exits of older positions uncopied, as live would.)
fn incomplete(v: &Vetted) -> Option<&'static str> {
    if v.gamma_error.is_some() {
        Some("INCOMPLETE: market results unknown (Gamma did not answer)")
    } else if v.undecodable > 0 {
        Some("INCOMPLETE: some fills could not be decoded")
    } else {
        None
    }
}

/// The targets wallets.json lists. Appending needs a sound file: said before the long part, not
/// after it; without `--add` a broken file only means candidates are vetted with built-in rules.
fn listed_targets(s: &crate::config::Settings, add: bool) -> Result<Vec<crate::config::Target>> {
    match Wallets::load(&s.wallets_path) {
        Ok(w) if add => {
            appendable(&s.wallets_path)?;
            Ok(w.targets)
        }
        Ok(w) => Ok(w.targets),
        Err(p) if add => {
            anyhow::bail!(
                "{} is not valid, so nothing can be added to it; fix it first (`polycopy check-config`):\n{}",
                s.wallets_path.display(),
                crate::config::problem::render(&p)
            )
        }
        Err(p) => {
            eprintln!(
                "warning: {} is not valid; candidates are vetted with the built-in rules:\n{}",
                s.wallets_path.display(),
                crate::config::problem::render(&p)
            );
            Ok(Vec::new())
        }
    }
}

/// Whether entries can be added to the wallets file at `path`: its format holds a `wallets` list
/// and its directory can be written (the new file is written beside it, then renamed).
fn appendable(path: &std::path::Path) -> Result<()> {
    let name = path.display();
    let real = std::fs::canonicalize(path).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let text = std::fs::read_to_string(&real).map_err(|e| anyhow::anyhow!("{name}: cannot read: {e}"))?;
    crate::config::wallets_edit::append_entries(&text, &[])
        .map_err(|e| anyhow::anyhow!("{name}: {e}; nothing was vetted"))?;
    let dir = real.parent().unwrap_or_else(|| std::path::Path::new("."));
    let probe = dir.join(format!(".polycopy-write-probe-{}", std::process::id()));
    let made = std::fs::OpenOptions::new().write(true).create_new(true).open(&probe);
    if made.is_ok() {
        let _ = std::fs::remove_file(&probe);
    }
    made.map(drop).map_err(|e| {
        anyhow::anyhow!(
            "{name}: its directory {} cannot be written ({e}): run as its owner; nothing was vetted",
            dir.display()
        )
    })
}

/// Runs `targets suggest`; the exit code.
///
/// # Errors
/// When the settings, the Data API, the chain or wallets.json fail.
pub fn suggest(g: &GlobalArgs, a: &SuggestArgs) -> Result<i32> {
    let s = settings_or_bail(g)?;
    let env = super::env_for(&s, false)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let listed = listed_targets(&s, a.add)?;
    let mut list = rt.block_on(candidates(&env.data_api_url, a))?;
    let src = rt.block_on(Source::connect(&s, &env, false))?;
    let chatty = !a.json && std::io::stderr().is_terminal();
    let n = list.len();
    for (i, c) in list.iter_mut().enumerate() {
        if chatty {
            eprintln!("vetting {}/{n}: {} ({}) …", i + 1, c.shown_name(), addr_lower(&c.wallet));
        }
        let entry = listed.iter().find(|t| t.address == c.wallet);
        c.listed = entry.is_some();
        let who = Who {
            wallet: c.wallet,
            label: entry.map(|t| t.label.clone()),
            rules: entry.map_or_else(|| defaults_of(&s.wallets_path, c.wallet), |t| t.rules.clone()),
            rules_from: if entry.is_some() { "its entry".into() } else { "the defaults".into() },
        };
        // One candidate the node could not vet is that candidate's problem: the others vetted
        // already, and those after it, still count.
        match rt.block_on(analyze(&s, &env, &src, who, a.days, None, false)) {
            Ok(Outcome::Vetted(v)) => c.vetted = Some(*v),
            Ok(Outcome::NoFills { .. }) => c.problem = Some(format!("no fills on chain in the last {} days", a.days)),
            Ok(Outcome::TooOld(why)) => c.problem = Some(why),
            Err(e) => {
                c.problem = Some(format!("not vetted: {}", crate::config::env::redact(&format!("{e:#}"))));
            }
        }
    }
    let added = if a.add { add(&s, &list, &listed)? } else { Vec::new() };
    if a.json {
        println!(
            "{}",
            json!({"days": a.days, "candidates": list.iter().map(as_json).collect::<Vec<_>>(), "added": added})
        );
    } else {
        print!("{}", table(&list, a.days));
        if a.add {
            if added.is_empty() {
                println!("\nnothing added to {}: no new candidate is worth a look", s.wallets_path.display());
            } else {
                println!(
                    "\nadded to {}, disabled: {}. Vet them yourself (`polycopy vet <label> --days 30`), then set \
                     \"enabled\": true on the ones you trust",
                    s.wallets_path.display(),
                    added.join(", ")
                );
            }
        }
    }
    Ok(0)
}

/// The leaderboard's top traders and each one's last trade.
async fn candidates(url: &str, a: &SuggestArgs) -> Result<Vec<Candidate>> {
    let client = polymarket_client_sdk_v2::data::Client::new(url).map_err(|e| anyhow::anyhow!("{e}"))?;
    let period = match a.period {
        Period::Day => TimePeriod::Day,
        Period::Week => TimePeriod::Week,
        Period::Month => TimePeriod::Month,
        Period::All => TimePeriod::All,
    };
    let limit = i32::try_from(a.limit).unwrap_or(10);
    let req = TraderLeaderboardRequest::builder()
        .time_period(period)
        .order_by(LeaderboardOrderBy::Pnl)
        .limit(limit)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .build();
    let what = || format!("the Data API leaderboard ({})", crate::config::redact_url(url));
    let rows = tokio::time::timeout(DATA_WAIT, client.leaderboard(&req))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {} s", DATA_WAIT.as_secs()))
        .with_context(what)?
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(what)?;
    let mut out = Vec::new();
    for r in rows {
        let req = TradesRequest::builder()
            .user(r.proxy_wallet)
            .limit(1)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .taker_only(false)
            .build();
        let last = tokio::time::timeout(DATA_WAIT, client.trades(&req)).await.ok().and_then(Result::ok);
        out.push(Candidate {
            rank: r.rank,
            name: r.user_name,
            wallet: r.proxy_wallet,
            pnl: r.pnl,
            volume: r.vol,
            last_trade_ms: last.and_then(|t| t.first().map(|t| t.timestamp.saturating_mul(1000))),
            listed: false,
            vetted: None,
            problem: None,
        });
    }
    Ok(out)
}

/// A label for a candidate: its user name made safe (letters, digits, `-`, `_`), unique among
/// `taken` (lower case), else `lb-` and the address's start.
fn label_for(c: &Candidate, taken: &mut HashSet<String>) -> String {
    let clean: String = c
        .name
        .as_deref()
        .unwrap_or_default()
        .chars()
        .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '-' || *ch == '_')
        .take(32)
        .collect();
    // A label that looks like an address would be read as one by `vet`.
    let base = if clean.is_empty() || clean.to_ascii_lowercase().starts_with("0x") {
        format!("lb-{}", &addr_lower(&c.wallet)[2..8])
    } else {
        clean
    };
    let mut label = base.clone();
    let mut k = 2;
    while taken.contains(&label.to_lowercase()) {
        label = format!("{base}-{k}");
        k += 1;
    }
    taken.insert(label.to_lowercase());
    label
}

/// Appends the candidates worth a look to wallets.json, disabled; returns their labels.
fn add(s: &Settings, list: &[Candidate], listed: &[crate::config::wallets::Target]) -> Result<Vec<String>> {
    let mut taken: HashSet<String> = listed.iter().map(|t| t.label.to_lowercase()).collect();
    let today = crate::report::date(crate::store::now_ms());
    let mut entries = Vec::new();
    let mut labels = Vec::new();
    for c in list.iter().filter(|c| c.worth_adding()) {
        let Some(v) = &c.vetted else { continue };
        let label = label_for(c, &mut taken);
        let days = (v.to_ms - v.from_ms) / 86_400_000;
        entries.push(json!({
            "address": addr_lower(&c.wallet),
            "label": label,
            "enabled": false,
            "comment": format!(
                "suggested {today}: leaderboard #{}; vet over {days} days: {} copies, realized {} USDC, win rate {}{}",
                c.rank,
                v.report.copies.len(),
                format_micros(v.report.realized.0),
                v.report.win_rate_pct.map_or_else(|| "n/a".into(), |w| format!("{w}%")),
                if v.report.too_few_to_judge() { " (too few copies to judge: vet a longer period)" } else { "" }
            ),
        }));
        labels.push(label);
    }
    if !entries.is_empty() {
        crate::config::wallets_edit::append_to_file(&s.wallets_path, &entries).map_err(anyhow::Error::msg)?;
    }
    Ok(labels)
}

fn as_json(c: &Candidate) -> Value {
    json!({
        "rank": c.rank,
        "name": c.name,
        "wallet": addr_lower(&c.wallet),
        "leaderboard_pnl_usdc": c.pnl.normalize().to_string(),
        "volume_usdc": c.volume.normalize().to_string(),
        "last_trade_ms": c.last_trade_ms,
        "listed": c.listed,
        "worth_adding": c.worth_adding(),
        "incomplete": c.vetted.as_ref().and_then(incomplete),
        "vet": c.vetted.as_ref().map(render::json),
        "problem": c.problem,
    })
}

/// The candidates as a table for a terminal.
fn table(list: &[Candidate], days: u32) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "{:>4}  {:<20} {:<42} {:>14} {:>10}  {:<11} | vet over {days} days\n",
        "rank", "trader", "wallet", "P&L (board)", "last trade", "",
    );
    for c in list {
        let name: String = c.shown_name().chars().take(20).collect();
        let last = c.last_trade_ms.map_or_else(|| "-".into(), crate::report::date);
        let vet = match (&c.vetted, &c.problem) {
            (Some(v), _) => {
                let r = &v.report;
                format!(
                    "{} fills, {} copies, realized {} USDC, open {} USDC, win {}, drawdown {} USDC{}{}{}",
                    r.fills,
                    r.copies.len(),
                    format_micros(r.realized.0),
                    format_micros(r.open_pnl.0),
                    r.win_rate_pct.map_or_else(|| "n/a".into(), |w| format!("{w}%")),
                    format_micros(r.max_drawdown.0),
                    if r.high_frequency { "  FLAG high-frequency" } else { "" },
                    if r.too_few_to_judge() { "  FLAG few copies" } else { "" },
                    incomplete(v).map(|w| format!("  {w}")).unwrap_or_default()
                )
            }
            (None, Some(p)) => p.clone(),
            (None, None) => "-".into(),
        };
        let listed = if c.listed { "listed" } else { "" };
        let _ = writeln!(
            s,
            "{:>4}  {:<20} {:<42} {:>14} {:>10}  {:<11} | {vet}",
            c.rank,
            name,
            addr_lower(&c.wallet),
            c.pnl.round_dp(2).normalize().to_string(),
            last,
            listed
        );
    }
    s
}
