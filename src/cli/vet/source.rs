//! Reading a wallet's history (the chain, the journal's cache, Gamma's resolutions) and
//! replaying it: what `vet` and `targets suggest` share.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::chain::history::{earliest_block, first_block_at};
use crate::chain::rpc::Rpc;
use crate::config::Settings;
use crate::domain::TokenId;
use crate::store::Store;
use crate::vet::history::{self, Span};
use crate::vet::holdings;
use crate::vet::render::Vetted;
use crate::vet::{Resolution, Trade, VetConfig, replay};

use super::Who;

/// Blocks a range must be buried under before it is cached: a reorg deeper than this on Polygon
/// is not expected (docs/PROTOCOL.md, finality).
const CACHE_BURIAL: u64 = 64;
/// Longest Gamma may take for one answer.
const GAMMA_WAIT: Duration = Duration::from_secs(20);
/// Tokens per Gamma request.
const GAMMA_BATCH: usize = 20;
/// Polygon's block time: the default copy delay is one block plus the burial we wait for.
const BLOCK_MS: i64 = 2_000;

/// The chain and the journal's cache a vet reads.
pub(crate) struct Source {
    rpc: Rpc,
    cache: Option<Store>,
    head: u64,
    head_ts: u64,
    earliest: crate::chain::BlockRef,
}

impl Source {
    /// Connects to the chain (and opens the cache unless `no_cache`).
    pub(crate) async fn connect(s: &Settings, env: &crate::config::Env, no_cache: bool) -> Result<Self> {
        let mut rpc = crate::cli::http_rpc(s, env);
        rpc.connect().await.context("connecting to the chain (POLYGON_RPC_URL)")?;
        let head = rpc.block_number().await?;
        let head_ts = rpc.block_required(head).await?.timestamp;
        let earliest = earliest_block(&rpc, head).await?;
        let cache = if no_cache { None } else { open_cache(s) };
        Ok(Self { rpc, cache, head, head_ts, earliest })
    }
}

/// What vetting one wallet came to.
pub(crate) enum Outcome {
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

/// Why `days` of history cannot be read from the node of `src` (it keeps blocks only from its
/// earliest), when they cannot; `start_ts` is the first second asked for.
fn too_old(src: &Source, days: u32, start_ts: u64) -> Option<String> {
    let earliest = src.earliest;
    if start_ts >= earliest.timestamp {
        return None;
    }
    let kept = src.head_ts.saturating_sub(earliest.timestamp) / 86_400;
    Some(format!(
        "--days {days} reaches back to {} UTC, but the node ({}) keeps blocks only from {} ({} UTC, {kept} days \
         ago). Ask for --days {} or fewer, or use a node that keeps more history (POLYGON_RPC_URL)",
        crate::report::date(ms(start_ts)),
        src.rpc.endpoint(),
        earliest.number,
        crate::report::date(ms(earliest.timestamp)),
        kept.max(1)
    ))
}

/// Reads `who`'s last `days` of fills and replays them.
pub(crate) async fn analyze(
    s: &Settings,
    env: &crate::config::Env,
    src: &Source,
    who: Who,
    days: u32,
    delay_ms: Option<u32>,
    progress: bool,
) -> Result<Outcome> {
    let (head, head_ts) = (src.head, src.head_ts);
    let start_ts = head_ts.saturating_sub(u64::from(days) * 86_400);
    if let Some(why) = too_old(src, days, start_ts) {
        return Ok(Outcome::TooOld(why));
    }
    let from = first_block_at(&src.rpc, src.earliest.number, head, start_ts).await?;
    let span = Span {
        wallet: who.wallet,
        exchanges: replayed_exchanges(s)?,
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
    let contracts = crate::chain::positions::PositionContracts::from_settings(&s.chain);
    let before = from.saturating_sub(1);
    let held = holdings::read(&src.rpc, &contracts, who.wallet, &holdings::tokens_to_read(&trades), before).await;
    let rules_text = who.rules.to_string();
    let cfg = VetConfig {
        rules: who.rules,
        limits: s.limits(),
        delay_ms: delay_ms.map_or_else(|| default_delay(s), i64::from),
        max_slippage_bps: s.copy.max_slippage_bps,
        min_order_usdc: s.copy.min_order_usdc,
        round_trip_ms: 5 * 60_000,
        price_window_ms: 60_000,
        max_copy_delay_s: s.copy.max_copy_delay_s,
        day_starts_at_hour: s.risk.day_starts_at_hour,
    };
    let report = replay(&trades, &cfg, &resolved, &held.known);
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
        undecodable: h.undecodable,
        delay_ms: cfg.delay_ms,
        max_slippage_bps: cfg.max_slippage_bps,
        rules_from: who.rules_from,
        rules: rules_text,
        settled: (resolved.len(), asked),
        held_before: (held.known.len(), held.unknown, before),
        gamma_error,
        report,
    })))
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
pub(crate) fn keep_owner(db: &std::path::Path, like: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut f = db.as_os_str().to_owned();
        f.push(suffix);
        crate::store::same_owner_of(std::path::Path::new(&f), like);
    }
}

/// Which of the traded tokens' markets resolved, how they paid and when they ended: the journal's
/// market cache, then Gamma. Returns (resolutions, tokens asked about, Gamma's failure).
async fn resolutions(
    env: &crate::config::Env,
    cache: Option<&Store>,
    trades: &[Trade],
) -> (BTreeMap<TokenId, Resolution>, usize, Option<String>) {
    let mut tokens: Vec<TokenId> = trades.iter().map(|t| t.token_id).collect();
    tokens.sort();
    tokens.dedup();
    let mut out = BTreeMap::new();
    let mut ask = Vec::new();
    for t in &tokens {
        match cache.and_then(|c| c.market(t).ok().flatten()) {
            Some((info, _)) if info.payout.is_some() => {
                let payout = info.payout.unwrap_or_default();
                out.insert(*t, Resolution { payout, ended_ms: info.end_ms });
            }
            _ => ask.push(*t),
        }
    }
    let mut error = None;
    match polymarket_client_sdk_v2::gamma::Client::new(&env.gamma_url) {
        Err(e) => error = Some(e.to_string()),
        Ok(gamma) => {
            for batch in ask.chunks(GAMMA_BATCH) {
                // Only resolved markets pay out, and Gamma lists closed markets only when asked
                // for them (docs/PROTOCOL.md §6), in pages.
                let req = polymarket_client_sdk_v2::gamma::types::request::MarketsRequest::builder()
                    .clob_token_ids(batch.to_vec())
                    .closed(true)
                    .limit(i32::try_from(batch.len()).unwrap_or(i32::MAX))
                    .build();
                match tokio::time::timeout(GAMMA_WAIT, gamma.markets(&req)).await {
                    Ok(Ok(markets)) => {
                        for t in batch {
                            let found =
                                markets.iter().find_map(|m| crate::market::info::from_gamma(m, *t).map(|i| (m, i)));
                            let Some((market, info)) = found else { continue };
                            // What the market is, never its result: the daemon settles positions
                            // at the journal's payout, which only its check on chain writes.
                            if let Some(c) = cache {
                                let _ = c.put_market_facts(&info);
                            }
                            if let Some(payout) = info.payout {
                                // When it really closed, as the daemon settles it then, not the end
                                // date announced (hours or days away from the result, either way).
                                let ended_ms = crate::market::info::closed_at_ms(market).or(info.end_ms);
                                out.insert(*t, Resolution { payout, ended_ms });
                            }
                        }
                    }
                    Ok(Err(e)) => {
                        // The reason kept whole, only the secrets this process knows taken out.
                        error = Some(crate::config::env::redact(&e.to_string()));
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

pub(crate) fn ms(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000)
}

/// One block plus the confirmations the daemon waits for: when a copy would really leave.
fn default_delay(s: &Settings) -> i64 {
    BLOCK_MS * (1 + i64::try_from(s.chain.confirmations).unwrap_or(0))
}

/// The exchanges whose fills the replay copies: in live mode not Exchange V3's, whose fills the live
/// copier refuses (`v3_unsupported`): counted, they would show copies live trading never makes.
fn replayed_exchanges(s: &Settings) -> Result<Vec<alloy::primitives::Address>> {
    let live = !s.mode.is_paper();
    let (kept, left): (Vec<_>, Vec<_>) =
        s.chain.exchanges.iter().copied().partition(|e| !(live && s.chain.v3_exchanges.contains(e)));
    if !left.is_empty() {
        eprintln!("note: live mode copies no fill on an Exchange V3 market (v3_unsupported): those fills are left out");
    }
    // An empty list would ask the node for every contract's fills of the wallet.
    anyhow::ensure!(
        !kept.is_empty(),
        "chain.exchanges lists only Exchange V3, whose fills live mode does not copy: nothing to vet"
    );
    Ok(kept)
}
