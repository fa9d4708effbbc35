//! Where market metadata comes from: memory, then the journal's cache, then the Gamma API. Each
//! layer has an expiry; a resolved market never changes again. A failed fetch is remembered for a
//! while so an unreachable Gamma costs one timeout per token and minute, not one per fill.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Addr;
use alloy::primitives::{Address, B256};
use polymarket_client_sdk_v2::gamma::Client as Gamma;
use polymarket_client_sdk_v2::gamma::types::request::MarketsRequest;
use polymarket_client_sdk_v2::gamma::types::response::Market as GammaMarket;
use tracing::{info, warn};

use crate::actors::store::{GetMarket, PutMarket, PutMarketFacts, StoreActor};
use crate::chain::Reads;
use crate::chain::rpc::ConditionResult;
use crate::clob::venue::{VenueError, bounded, sdk_error};
use crate::domain::{Price, TokenId};
use crate::market::info::{MarketInfo, PayoutCheck, check_payout, from_gamma};
use crate::store::now_ms;

/// Tokens asked for in one call to Gamma: its URL stays short, and one page holds the answer.
const GAMMA_TOKENS_PER_CALL: usize = 20;

/// How long a result Gamma shows may be missing on chain before the operator is told.
const RESULT_LATE: Duration = Duration::from_secs(6 * 3600);

/// How long a failed lookup is not retried.
const NEGATIVE_TTL: Duration = Duration::from_secs(60);

/// Tokens held in memory past which stale ones are dropped (each one a few hundred bytes).
const MEM_PRUNE_AT: usize = 4_096;

/// Drops from memory what would be asked again anyway: months of short markets would otherwise
/// keep every token ever looked up. A resolved market's facts stay in the journal, read from it
/// when next asked.
fn prune(mem: &mut HashMap<TokenId, (Instant, Option<MarketInfo>)>, ttl: Duration) {
    mem.retain(|_, (at, info)| at.elapsed() < if info.is_some() { ttl } else { NEGATIVE_TTL });
}

/// What one refresh of the held markets learned.
#[derive(Debug, Default)]
pub struct Refreshed {
    /// The markets as Gamma describes them; `payout` is set only on those that settle now.
    pub markets: Vec<MarketInfo>,
    /// A value for each token whose market closed with a result that cannot settle yet (the
    /// chain has none, could not be read, or disagrees): the result's payout, the lower of two
    /// disputed ones. A closed market has no book, so without this its position would stay valued
    /// at the last midpoint read before it closed, and the daily loss limit would not see a loss.
    pub result_marks: HashMap<TokenId, Price>,
}

impl Refreshed {
    /// Whether Gamma says `token`'s market no longer trades (it has no book to mark against).
    #[must_use]
    pub fn closed(&self, token: &TokenId) -> bool {
        self.markets.iter().any(|m| m.token_id == *token && m.closed)
    }
}

/// Market metadata, cached.
pub struct MarketDirectory {
    gamma: Gamma,
    store: Addr<StoreActor>,
    /// token → (fetched at, what we know; None after a failed lookup).
    mem: Mutex<HashMap<TokenId, (Instant, Option<MarketInfo>)>>,
    ttl: Duration,
    timeout: Duration,
    /// Set while Gamma fails, so the failure is logged once, not on every lookup.
    failing: std::sync::atomic::AtomicBool,
    /// Where results are read: a node and Conditional Tokens' address.
    results: Option<(Arc<Reads>, Address)>,
    /// Markets whose result Gamma and the chain disagree on, already told.
    disagreeing: Mutex<std::collections::HashSet<B256>>,
    /// Markets Gamma shows resolved that wait for the chain's result: since when, and told yet.
    waiting: Mutex<HashMap<B256, (Instant, bool)>>,
    /// Where a result held back (disputed, or long missing on chain) is told.
    notifier: Option<Addr<crate::actors::notifier::Notifier>>,
}

impl std::fmt::Debug for MarketDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketDirectory").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

fn fresh(info: &MarketInfo, age: Duration, ttl: Duration) -> bool {
    info.payout.is_some() || age < ttl
}

impl MarketDirectory {
    /// A directory asking the Gamma API at `host`, caching in the journal for `ttl`.
    ///
    /// # Errors
    /// When the URL is invalid.
    pub fn new(host: &str, store: Addr<StoreActor>, ttl: Duration, timeout: Duration) -> Result<Self, VenueError> {
        let gamma = Gamma::new(host).map_err(|e| sdk_error(&e, &[]))?;
        Ok(Self {
            gamma,
            store,
            mem: Mutex::default(),
            ttl,
            timeout,
            failing: std::sync::atomic::AtomicBool::new(false),
            results: None,
            disagreeing: Mutex::default(),
            waiting: Mutex::default(),
            notifier: None,
        })
    }

    /// Reads the result of a market Gamma shows closed without a winner from Conditional Tokens
    /// at `ctf` through `rpc`: an even (50-50) result is only there.
    #[must_use]
    pub fn with_results(mut self, rpc: Arc<Reads>, ctf: Address) -> Self {
        self.results = Some((rpc, ctf));
        self
    }

    /// Tells `notifier` of results held back: Gamma and the chain disagreeing, or the chain without
    /// a result long after Gamma showed one.
    #[must_use]
    pub fn with_notifier(mut self, notifier: Addr<crate::actors::notifier::Notifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    fn warn(&self, code: &'static str, message: String) {
        if let Some(n) = &self.notifier {
            n.do_send(crate::actors::notifier::Event::Warning { code, message });
        }
    }

    /// A market Gamma shows resolved whose result the chain does not have yet: told once it has
    /// waited [`RESULT_LATE`].
    fn note_waiting(&self, info: &MarketInfo) {
        let (Some(c), Some(_)) = (info.condition_id, info.payout) else { return };
        let Ok(mut w) = self.waiting.lock() else { return };
        let entry = w.entry(c).or_insert((Instant::now(), false));
        if !entry.1 && entry.0.elapsed() >= RESULT_LATE {
            entry.1 = true;
            self.warn(
                "result_not_on_chain",
                format!(
                    "{} shows resolved on Gamma for {} h, but Conditional Tokens has no result for it: its positions \
                     stay open, neither settled nor redeemed, until the chain has one",
                    info.name(),
                    RESULT_LATE.as_secs() / 3600
                ),
            );
        }
    }

    /// What `token` is, if Gamma (now or earlier) said so.
    pub async fn get(&self, token: TokenId) -> Option<MarketInfo> {
        let cached = self.mem.lock().ok().and_then(|m| m.get(&token).cloned());
        match cached {
            Some((at, Some(info))) if fresh(&info, at.elapsed(), self.ttl) => return Some(info),
            Some((at, None)) if at.elapsed() < NEGATIVE_TTL => return None,
            _ => {}
        }
        let mut known = None;
        if let Ok(Ok(Some((info, fetched_ms)))) = self.store.send(GetMarket(token)).await {
            let age = Duration::from_millis(u64::try_from(now_ms() - fetched_ms).unwrap_or(0));
            if fresh(&info, age, self.ttl) {
                self.remember(token, Some(info.clone()));
                return Some(info);
            }
            known = Some(info);
        }
        // A copy's path never waits on the chain for a result: the marking loop reads those.
        let fetched = self.fetch(&[token], None).await.into_iter().next();
        match (fetched, known) {
            (Some(info), _) => Some(info),
            // Gamma not answering, or not listing it now: what the journal knew still names the
            // market (its condition and slug never change), so a pause of it still recognises it;
            // asked again in a minute, as after any failure, not once the whole TTL has passed.
            // Its other facts are the last Gamma gave (an end date moved since reads as before).
            (None, Some(info)) => {
                if let Ok(mut m) = self.mem.lock() {
                    let at =
                        Instant::now().checked_sub(self.ttl.saturating_sub(NEGATIVE_TTL)).unwrap_or_else(Instant::now);
                    m.insert(token, (at, Some(info.clone())));
                }
                Some(info)
            }
            (None, None) => None,
        }
    }

    /// Asks Gamma about `tokens` and caches the answers, each closed market's result checked
    /// against the chain's; returns what it learned.
    pub async fn refresh(&self, tokens: &[TokenId]) -> Refreshed {
        let mut result_marks = HashMap::new();
        let markets = self.fetch(tokens, Some(&mut result_marks)).await;
        Refreshed { markets, result_marks }
    }

    /// Gamma's word on `tokens`; with `result_marks`, each closed market's result is read on chain
    /// too, and those that cannot settle yet are valued there.
    async fn fetch(
        &self,
        tokens: &[TokenId],
        mut result_marks: Option<&mut HashMap<TokenId, Price>>,
    ) -> Vec<MarketInfo> {
        if tokens.is_empty() {
            return Vec::new();
        }
        let markets = match self.markets(tokens).await {
            Ok(m) => {
                self.failing.store(false, std::sync::atomic::Ordering::Relaxed);
                m
            }
            Err(e) => {
                if !self.failing.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    warn!(cause = %e, "market metadata unavailable from the Gamma API; copies go on without it");
                }
                for t in tokens {
                    self.remember(*t, None);
                }
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        let mut results = HashMap::new();
        for t in tokens {
            let found = markets.iter().find_map(|m| from_gamma(m, *t).map(|i| (m, i)));
            let info = match found {
                Some((m, info)) => {
                    let (mut info, known_payout) = match self.store.send(GetMarket(*t)).await {
                        Ok(Ok(Some((known, _)))) => (super::info::keep_known(info, &known), known.payout),
                        _ => (info, None),
                    };
                    let mut unchecked = false;
                    if let (Some(marks), true) = (result_marks.as_deref_mut(), info.closed) {
                        let ids = m.clob_token_ids.as_ref();
                        let (outcomes, slot) =
                            (ids.map_or(0, Vec::len), ids.and_then(|i| i.iter().position(|x| x == t)));
                        let chain = self.result(&mut results, info.condition_id, outcomes).await;
                        let (settle, mark) = self.checked(&info, chain.as_ref().map(Option::as_ref), slot);
                        info.payout = super::info::journaled_payout(settle, matches!(chain, Some(None)), known_payout);
                        if let Some(mark) = mark {
                            marks.insert(*t, mark);
                        }
                    } else if self.results.is_some() {
                        // Unchecked, Gamma's word is kept by no one: the marking loop's refresh
                        // checks it against the chain before anything settles at it. Nor is a
                        // checked payout it wrote meanwhile cleared (the position it settled is
                        // never refreshed again, and its winnings would never be redeemed).
                        info.payout = None;
                        unchecked = true;
                    }
                    if unchecked {
                        self.store.do_send(PutMarketFacts(info.clone()));
                    } else {
                        self.store.do_send(PutMarket(info.clone()));
                    }
                    out.push(info.clone());
                    Some(info)
                }
                None => None,
            };
            self.remember(*t, info);
        }
        out
    }

    /// Gamma's markets holding `tokens`, open and closed. Gamma lists only open markets unless
    /// asked for closed ones, so the tokens it did not list are asked for again as closed (a
    /// resolved market, the one a payout is learned from); and it pages its answers, so the
    /// tokens are asked for in small groups, each with a page that holds them all.
    async fn markets(&self, tokens: &[TokenId]) -> Result<Vec<GammaMarket>, String> {
        let mut out = Vec::new();
        for group in tokens.chunks(GAMMA_TOKENS_PER_CALL) {
            let limit = i32::try_from(group.len()).unwrap_or(i32::MAX);
            let req = MarketsRequest::builder().clob_token_ids(group.to_vec()).limit(limit).build();
            let open = bounded(self.timeout, &[], self.gamma.markets(&req)).await.map_err(|e| e.to_string())?;
            let missing: Vec<TokenId> =
                group.iter().filter(|t| !open.iter().any(|m| from_gamma(m, **t).is_some())).copied().collect();
            out.extend(open);
            if !missing.is_empty() {
                let limit = i32::try_from(missing.len()).unwrap_or(i32::MAX);
                let req = MarketsRequest::builder().clob_token_ids(missing).closed(true).limit(limit).build();
                // Best effort: the open markets found are kept; the others are asked for again
                // at the next lookup.
                match bounded(self.timeout, &[], self.gamma.markets(&req)).await {
                    Ok(closed) => out.extend(closed),
                    Err(e) => warn!(cause = %e, "closed markets unavailable from the Gamma API"),
                }
            }
        }
        Ok(out)
    }

    /// The result of `condition` on chain, read once per refresh and market: `None` when there is
    /// no chain to read it on, `Some(None)` when the read failed (the next refresh reads it again).
    async fn result(
        &self,
        seen: &mut HashMap<B256, Option<ConditionResult>>,
        condition: Option<B256>,
        outcomes: usize,
    ) -> Option<Option<ConditionResult>> {
        let (Some((rpc, ctf)), Some(condition)) = (&self.results, condition) else { return None };
        if let Some(known) = seen.get(&condition) {
            return Some(known.clone());
        }
        let r = match rpc.condition_result(*ctf, condition, outcomes).await {
            Ok(r) => Some(r),
            Err(e) => {
                warn!(cause = %e, condition = %format!("{condition:#x}"), "cannot read a closed market's result on chain");
                None
            }
        };
        seen.insert(condition, r.clone());
        Some(r)
    }

    /// The payout `info` settles at, Gamma's checked against the chain's (see [`check_payout`]),
    /// and otherwise the value its positions are marked at meanwhile. A chain that could not be
    /// read settles nothing this time (Gamma may be ahead of it).
    fn checked(
        &self,
        info: &MarketInfo,
        chain: Option<Option<&ConditionResult>>,
        slot: Option<usize>,
    ) -> (Option<Price>, Option<Price>) {
        let condition = info.condition_id.map(|c| format!("{c:#x}")).unwrap_or_default();
        let check = match chain {
            // Not read: tried again at the next refresh, and not counted as the chain's silence.
            Some(None) => return (None, info.payout),
            Some(Some(r)) => check_payout(info.payout, Some(r), slot),
            None => check_payout(info.payout, None, slot),
        };
        match check {
            PayoutCheck::Settle(p) => {
                if info.payout.is_none() {
                    info!(condition, payout = %p, "market resolved evenly on chain");
                }
                (Some(p), None)
            }
            PayoutCheck::Wait => {
                self.note_waiting(info);
                // Gamma's result, or without one (no 0/1 price) the chain's for this outcome.
                let on_chain = chain.flatten().and_then(|r| crate::market::info::slot_payout(r, slot));
                (None, info.payout.or(on_chain))
            }
            PayoutCheck::Disagree { gamma, chain } => {
                let first = info.condition_id.is_some_and(|c| self.disagreeing.lock().is_ok_and(|mut d| d.insert(c)));
                if first {
                    warn!(
                        condition,
                        market = %info.name(),
                        gamma = %gamma,
                        chain = %chain,
                        "Gamma and Conditional Tokens disagree on what this outcome pays: not settled until they agree"
                    );
                    self.warn(
                        "result_disputed",
                        format!(
                            "Gamma says a share of {} pays {gamma}, Conditional Tokens says {chain}: its positions are \
                             not settled or redeemed until the two agree (a disputed result that changed?)",
                            info.name()
                        ),
                    );
                }
                // Valued at the worse of the two until they agree.
                (None, Some(gamma.min(chain)))
            }
        }
    }

    fn remember(&self, token: TokenId, info: Option<MarketInfo>) {
        if let Ok(mut m) = self.mem.lock() {
            if m.len() >= MEM_PRUNE_AT {
                prune(&mut m, self.ttl);
            }
            m.insert(token, (Instant::now(), info));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Shares;

    fn info(token: u64) -> MarketInfo {
        MarketInfo {
            token_id: TokenId::from(token),
            condition_id: None,
            question: "Will it rain today?".into(),
            outcome: "Yes".into(),
            neg_risk: false,
            tick: None,
            min_size: Shares::ZERO,
            closed: false,
            end_ms: None,
            payout: None,
            slug: None,
        }
    }

    /// Pruned, memory keeps only what it would still answer from: facts younger than the TTL, and
    /// "Gamma does not know it" younger than a minute.
    #[test]
    fn pruning_drops_only_what_would_be_asked_again() {
        // Short: an `Instant` cannot go back past the machine's boot.
        let ttl = Duration::from_secs(20);
        let ago = |s| Instant::now().checked_sub(Duration::from_secs(s)).unwrap();
        // (token, seen seconds ago, known to Gamma, kept)
        let cases = [
            (1, 0, true, true),
            (2, 19, true, true),
            (3, 21, true, false),
            (4, 30, false, true),
            (5, 61, false, false),
        ];
        let mut mem: HashMap<_, _> =
            cases.iter().map(|&(t, s, known, _)| (TokenId::from(t), (ago(s), known.then(|| info(t))))).collect();
        prune(&mut mem, ttl);
        for (t, s, known, kept) in cases {
            assert_eq!(mem.contains_key(&TokenId::from(t)), kept, "token {t}, {s} s old, known {known}");
        }
    }
}
