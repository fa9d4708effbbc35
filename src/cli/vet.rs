//! `polycopy vet <wallet|label>`: would copying this wallet have paid? Its fills over the period
//! are read from the chain (cached in the journal), replayed through our sizing and limits with a
//! copy delay and a slippage model, settled where Gamma says a market resolved, and reported.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use alloy::primitives::Address;
use anyhow::{Context as _, Result};
use serde_json::Value;

use super::{EXIT_USAGE, GlobalArgs, settings_or_bail};
use crate::chain::history::{earliest_block, first_block_at};
use crate::chain::rpc::Rpc;
use crate::config::{Settings, Wallets};
use crate::domain::{Price, TokenId, addr_lower};
use crate::risk::CopyRules;
use crate::store::Store;
use crate::vet::history::{self, Span};
use crate::vet::render::{self, Vetted};
use crate::vet::{Trade, VetConfig, replay};

/// Blocks a range must be buried under before it is cached: a reorg deeper than this on Polygon
/// is not expected (docs/PROTOCOL.md, finality).
const CACHE_BURIAL: u64 = 64;
/// Longest Gamma may take for one answer.
const GAMMA_WAIT: Duration = Duration::from_secs(20);
/// Tokens per Gamma request.
const GAMMA_BATCH: usize = 20;
/// Polygon's block time: the default copy delay is one block plus the burial we wait for.
const BLOCK_MS: i64 = 2_000;

/// `vet`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct VetArgs {
    /// The wallet: an address (0x…) or a label from wallets.json.
    pub wallet: String,
    /// How many days back from the chain's head.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=365))]
    pub days: u32,
    /// Copy rules to vet with instead of the wallet's: a JSON object of wallets.json rule fields
    /// (`{"sizing": {...}, "max_order_usdc": 20}`), or a wallets.json-format file.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// The copy's delay after the wallet's fill, ms (default: one block plus the confirmations).
    #[arg(long)]
    pub delay_ms: Option<u32>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Write the chart (cumulative P&L and open cost) to this PNG file.
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,
    /// Read everything from the chain; neither read nor write the journal's cache.
    #[arg(long)]
    pub no_cache: bool,
}

/// A problem with what the operator asked for: exit 64 with the message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Runs `vet`; the exit code.
///
/// # Errors
/// When the settings, the chain or the journal fail.
pub fn vet(g: &GlobalArgs, a: &VetArgs) -> Result<i32> {
    let s = settings_or_bail(g)?;
    let env = super::env_for(&s, false)?;
    match resolve(&s, a) {
        Ok((wallet, label, rules, rules_from)) => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(run(&s, &env, a, Who { wallet, label, rules, rules_from }))
        }
        Err(e) => {
            eprintln!("Error: {e}");
            Ok(EXIT_USAGE)
        }
    }
}

/// The wallet being vetted and the rules it is vetted with.
pub(super) struct Who {
    /// The wallet.
    pub wallet: Address,
    /// Its label, if listed.
    pub label: Option<String>,
    /// The rules to replay with.
    pub rules: CopyRules,
    /// Where they came from.
    pub rules_from: String,
}

/// The wallet, its label, its rules and where they came from.
fn resolve(s: &Settings, a: &VetArgs) -> Result<(Address, Option<String>, CopyRules, String), BadInput> {
    let file = s.wallets_path.display().to_string();
    let loaded = Wallets::load(&s.wallets_path);
    let unreadable = loaded.as_ref().err().map(|p| crate::config::problem::render(p));
    let listed = loaded.ok();
    let arg = a.wallet.trim();
    let entry = if arg.starts_with("0x") || arg.starts_with("0X") {
        let addr: Address = arg
            .parse()
            .map_err(|_| BadInput(format!("{arg:?} is not a wallet address (0x followed by 40 hexadecimal digits)")))?;
        listed.as_ref().and_then(|w| w.targets.iter().find(|t| t.address == addr)).cloned().ok_or(addr)
    } else {
        let w = listed.as_ref().ok_or_else(|| {
            BadInput(format!("{file} could not be read, so the label {arg:?} means nothing: give the address (0x…)"))
        })?;
        let t = w.targets.iter().find(|t| t.label.eq_ignore_ascii_case(arg)).ok_or_else(|| {
            let labels: Vec<&str> = w.targets.iter().map(|t| t.label.as_str()).collect();
            BadInput(format!(
                "no target labelled {arg:?} in {file} (labels there: {}). Give an address (0x…) to vet a wallet \
                 that is not listed",
                if labels.is_empty() { "none".to_owned() } else { labels.join(", ") }
            ))
        })?;
        Ok(t.clone())
    };
    let (wallet, label, rules, from) = match entry {
        Ok(t) => (t.address, Some(t.label), t.rules, format!("its entry in {file}")),
        Err(addr) => match &unreadable {
            None => (addr, None, defaults_of(&s.wallets_path, addr), format!("the defaults of {file}")),
            Some(why) => {
                eprintln!("warning: {file} is not valid, so its rules cannot be used:\n{why}");
                (
                    addr,
                    None,
                    crate::config::wallets::builtin_rules(),
                    format!("the built-in defaults ({file} is not valid)"),
                )
            }
        },
    };
    match &a.rules {
        None => Ok((wallet, label, rules, from)),
        Some(p) => Ok((wallet, label, rules_file(p, wallet)?, p.display().to_string())),
    }
}

/// The rules wallets.json gives a wallet it does not list: its `defaults` (else the built-in ones).
pub(super) fn defaults_of(path: &std::path::Path, wallet: Address) -> CopyRules {
    let defaults = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v.get("defaults").cloned());
    let doc = serde_json::json!({"defaults": defaults.unwrap_or(Value::Object(serde_json::Map::new())),
                                 "wallets": [{"address": addr_lower(&wallet)}]});
    Wallets::parse(&doc.to_string(), "wallets.json")
        .ok()
        .and_then(|w| w.targets.into_iter().next())
        .map_or_else(crate::config::wallets::builtin_rules, |t| t.rules)
}

/// The rules in `--rules FILE`: an object of rule fields, or a wallets.json-format file (the
/// wallet's entry, else its defaults). Every problem is named with the file.
fn rules_file(path: &std::path::Path, wallet: Address) -> Result<CopyRules, BadInput> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| BadInput(format!("--rules {name}: cannot read: {e}")))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        BadInput(format!("--rules {name}: invalid JSON at line {} column {}: {e}", e.line(), e.column()))
    })?;
    let Value::Object(mut obj) = v else {
        return Err(BadInput(format!("--rules {name}: must be a JSON object of rule fields")));
    };
    let doc = if obj.contains_key("wallets") || obj.contains_key("defaults") {
        let entry = obj
            .get("wallets")
            .and_then(Value::as_array)
            .and_then(|l| {
                l.iter().find(|e| e.get("address").and_then(Value::as_str).and_then(|a| a.parse().ok()) == Some(wallet))
            })
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"address": addr_lower(&wallet)}));
        serde_json::json!({"defaults": obj.remove("defaults").unwrap_or(serde_json::json!({})), "wallets": [entry]})
    } else {
        obj.insert("address".into(), Value::String(addr_lower(&wallet)));
        serde_json::json!({"wallets": [obj]})
    };
    let w = Wallets::parse(&doc.to_string(), &name)
        .map_err(|p| BadInput(format!("--rules {name}:\n{}", crate::config::problem::render(&p))))?;
    w.targets.into_iter().next().map(|t| t.rules).ok_or_else(|| BadInput(format!("--rules {name}: no rules in it")))
}

async fn run(s: &Settings, env: &crate::config::Env, a: &VetArgs, who: Who) -> Result<i32> {
    // A chart that cannot be written is said before the chain is read, not after.
    if let Some(p) = &a.chart {
        std::fs::File::create(p).with_context(|| format!("--chart: cannot write {}", p.display()))?;
    }
    let src = Source::connect(s, env, a.no_cache).await?;
    let wallet = who.wallet;
    let v = match analyze(s, env, &src, who, a.days, a.delay_ms, !a.json && std::io::stderr().is_terminal()).await? {
        Outcome::Vetted(v) => v,
        Outcome::TooOld(why) => return Ok(refuse(a, wallet, "period_too_long", &why, EXIT_USAGE)),
        Outcome::NoFills { from, to } => {
            let why = format!(
                "{} made no fills on the watched exchanges in the last {} days (blocks {from}..={to}): nothing to \
                 vet. Check that it is the wallet's proxy/Safe address shown on its Polymarket profile (not the \
                 signer's), or ask for more --days",
                addr_lower(&wallet),
                a.days
            );
            return Ok(refuse(a, wallet, "no_fills", &why, 1));
        }
    };
    if let Some(p) = &a.chart {
        let png = render::chart(&v).map_err(|e| anyhow::anyhow!("drawing the chart: {e}"))?;
        std::fs::write(p, png).with_context(|| format!("writing the chart to {}", p.display()))?;
    }
    if a.json {
        println!("{}", render::json(&v));
    } else {
        print!("{}", render::text(&v));
        if let Some(p) = &a.chart {
            println!("chart        {}", p.display());
        }
    }
    Ok(0)
}

/// The chain and the journal's cache a vet reads.
pub(super) struct Source {
    rpc: Rpc,
    cache: Option<Store>,
    head: u64,
    head_ts: u64,
    earliest: crate::chain::BlockRef,
}

impl Source {
    /// Connects to the chain (and opens the cache unless `no_cache`).
    pub(super) async fn connect(s: &Settings, env: &crate::config::Env, no_cache: bool) -> Result<Self> {
        let mut rpc = super::http_rpc(s, env);
        rpc.connect().await.context("connecting to the chain (POLYGON_RPC_URL)")?;
        let head = rpc.block_number().await?;
        let head_ts = rpc.block_required(head).await?.timestamp;
        let earliest = earliest_block(&rpc, head).await?;
        let cache = if no_cache { None } else { open_cache(s) };
        Ok(Self { rpc, cache, head, head_ts, earliest })
    }
}

/// What vetting one wallet came to.
pub(super) enum Outcome {
    /// The report.
    Vetted(Box<Vetted>),
    /// The period reaches before the node's history (the message says how far it goes).
    TooOld(String),
    /// The wallet made no fills in these blocks.
    NoFills {
        /// First block.
        from: u64,
        /// Last block.
        to: u64,
    },
}

/// Reads `who`'s last `days` of fills and replays them.
pub(super) async fn analyze(
    s: &Settings,
    env: &crate::config::Env,
    src: &Source,
    who: Who,
    days: u32,
    delay_ms: Option<u32>,
    progress: bool,
) -> Result<Outcome> {
    let (head, head_ts, earliest) = (src.head, src.head_ts, src.earliest);
    let start_ts = head_ts.saturating_sub(u64::from(days) * 86_400);
    if start_ts < earliest.timestamp {
        let kept = (head_ts - earliest.timestamp) / 86_400;
        return Ok(Outcome::TooOld(format!(
            "--days {days} reaches back to {} UTC, but the node ({}) keeps blocks only from {} ({} UTC, {kept} days \
             ago). Ask for --days {} or fewer, or use a node that keeps more history (POLYGON_RPC_URL)",
            crate::report::date(ms(start_ts)),
            src.rpc.endpoint(),
            earliest.number,
            crate::report::date(ms(earliest.timestamp)),
            kept.max(1)
        )));
    }
    let from = first_block_at(&src.rpc, earliest.number, head, start_ts).await?;
    let span = Span {
        wallet: who.wallet,
        exchanges: s.chain.exchanges.clone(),
        from,
        to: head,
        buried: head.saturating_sub(s.chain.confirmations.max(CACHE_BURIAL)),
        chunk: s.chain.max_block_range.max(1),
    };
    let mut bar = Progress::new(progress);
    let h = history::read(&src.rpc, src.cache.as_ref(), &span, &mut |done, total, n| bar.show(done, total, n)).await;
    bar.finish();
    let h = h?;
    let trades: Vec<Trade> = h.fills.iter().map(|(_, _, t)| *t).collect();
    if trades.is_empty() {
        return Ok(Outcome::NoFills { from, to: head });
    }
    let (resolved, asked, gamma_error) = resolutions(env, src.cache.as_ref(), &trades).await;
    let rules_text = who.rules.to_string();
    let cfg = VetConfig {
        rules: who.rules,
        limits: s.limits(),
        delay_ms: delay_ms.map_or_else(|| default_delay(s), i64::from),
        max_slippage_bps: s.copy.max_slippage_bps,
        min_order_usdc: s.copy.min_order_usdc,
        round_trip_ms: 5 * 60_000,
        price_window_ms: 60_000,
    };
    let report = replay(&trades, &cfg, &resolved);
    if src.cache.is_some() {
        keep_owner(&s.db_path, &s.db_path);
    }
    Ok(Outcome::Vetted(Box::new(Vetted {
        wallet: who.wallet,
        label: who.label,
        from_ms: ms(start_ts),
        to_ms: ms(head_ts),
        blocks: (from, head),
        cached_blocks: h.cached_blocks,
        delay_ms: cfg.delay_ms,
        max_slippage_bps: cfg.max_slippage_bps,
        rules_from: who.rules_from,
        rules: rules_text,
        settled: (resolved.len(), asked),
        gamma_error,
        report,
    })))
}

/// Says why nothing was vetted (on stderr; and as JSON on stdout with `--json`, for machines); the
/// exit code.
fn refuse(a: &VetArgs, wallet: Address, code: &str, why: &str, exit: i32) -> i32 {
    eprintln!("Error: {why}");
    if a.json {
        println!("{}", serde_json::json!({"wallet": addr_lower(&wallet), "error": code, "message": why}));
    }
    exit
}

fn ms(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX / 1000) * 1000
}

/// One block plus the confirmations the daemon waits for: when a copy would really leave.
fn default_delay(s: &Settings) -> i64 {
    BLOCK_MS * (1 + i64::try_from(s.chain.confirmations).unwrap_or(0))
}

/// The journal for the cache: the configured one (created as the daemon would, owned like its
/// directory so a run as root does not lock the daemon out), or none when it cannot be opened
/// (the read then goes to the chain, and says so).
fn open_cache(s: &Settings) -> Option<Store> {
    let existed = s.db_path.exists();
    let opened = if existed { Store::open_existing(&s.db_path) } else { Store::open(&s.db_path) };
    match opened {
        Ok(st) => {
            let like = if existed {
                s.db_path.clone()
            } else {
                s.db_path.parent().map(std::path::Path::to_path_buf).unwrap_or_default()
            };
            keep_owner(&s.db_path, &like);
            Some(st)
        }
        Err(e) => {
            eprintln!("warning: no cache ({e}); reading everything from the chain");
            None
        }
    }
}

/// Gives the journal and its WAL files the owner of `like` (only root can change it; elsewhere a
/// no-op): SQLite creates the `-wal` and `-shm` files as whoever opens the journal first.
pub(super) fn keep_owner(db: &std::path::Path, like: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut f = db.as_os_str().to_owned();
        f.push(suffix);
        crate::store::same_owner_of(std::path::Path::new(&f), like);
    }
}

/// Which of the traded tokens' markets resolved, and how they paid: the journal's market cache,
/// then Gamma. Returns (payouts, tokens asked about, Gamma's failure).
async fn resolutions(
    env: &crate::config::Env,
    cache: Option<&Store>,
    trades: &[Trade],
) -> (BTreeMap<TokenId, Price>, usize, Option<String>) {
    let mut tokens: Vec<TokenId> = trades.iter().map(|t| t.token_id).collect();
    tokens.sort();
    tokens.dedup();
    let mut out = BTreeMap::new();
    let mut ask = Vec::new();
    for t in &tokens {
        match cache.and_then(|c| c.market(t).ok().flatten()) {
            Some((info, _)) if info.payout.is_some() => {
                out.insert(*t, info.payout.unwrap_or_default());
            }
            _ => ask.push(*t),
        }
    }
    let mut error = None;
    match polymarket_client_sdk_v2::gamma::Client::new(&env.gamma_url) {
        Err(e) => error = Some(e.to_string()),
        Ok(gamma) => {
            for batch in ask.chunks(GAMMA_BATCH) {
                let req = polymarket_client_sdk_v2::gamma::types::request::MarketsRequest::builder()
                    .clob_token_ids(batch.to_vec())
                    .build();
                match tokio::time::timeout(GAMMA_WAIT, gamma.markets(&req)).await {
                    Ok(Ok(markets)) => {
                        for t in batch {
                            let Some(info) = markets.iter().find_map(|m| crate::market::info::from_gamma(m, *t)) else {
                                continue;
                            };
                            if let Some(c) = cache {
                                let _ = c.put_market(&info);
                            }
                            if let Some(p) = info.payout {
                                out.insert(*t, p);
                            }
                        }
                    }
                    Ok(Err(e)) => {
                        error = Some(crate::config::redact_url(&e.to_string()));
                        break;
                    }
                    Err(_) => {
                        error = Some(format!("no answer within {} s", GAMMA_WAIT.as_secs()));
                        break;
                    }
                }
            }
        }
    }
    (out, tokens.len(), error)
}

/// A progress bar on the terminal for long reads (hand-written: one line of output does not
/// warrant a dependency).
struct Progress {
    on: bool,
    shown: bool,
}

impl Progress {
    const fn new(on: bool) -> Self {
        Self { on, shown: false }
    }

    fn show(&mut self, done: u64, total: u64, fills: usize) {
        if !self.on || total == 0 {
            return;
        }
        let pct = done * 100 / total;
        let filled = usize::try_from(pct / 4).unwrap_or(25);
        let bar = format!("{}{}", "#".repeat(filled), ".".repeat(25 - filled.min(25)));
        eprint!("\rreading the chain [{bar}] {pct:>3}%  {done}/{total} blocks, {fills} fills ");
        let _ = std::io::stderr().flush();
        self.shown = true;
    }

    fn finish(&mut self) {
        if self.shown {
            eprintln!();
        }
    }
}
