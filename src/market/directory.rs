//! Where market metadata comes from: memory, then the journal's cache, then the Gamma API. Each
//! layer has an expiry; a resolved market never changes again. A failed fetch is remembered for a
//! while so an unreachable Gamma costs one timeout per token and minute, not one per fill.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix::Addr;
use polymarket_client_sdk_v2::gamma::Client as Gamma;
use polymarket_client_sdk_v2::gamma::types::request::MarketsRequest;
use tracing::warn;

use crate::actors::store::{GetMarket, PutMarket, StoreActor};
use crate::clob::venue::{VenueError, bounded, sdk_error};
use crate::domain::TokenId;
use crate::market::info::{MarketInfo, from_gamma};
use crate::store::now_ms;

/// How long a failed lookup is not retried.
const NEGATIVE_TTL: Duration = Duration::from_secs(60);

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
        })
    }

    /// What `token` is, if Gamma (now or earlier) said so.
    pub async fn get(&self, token: TokenId) -> Option<MarketInfo> {
        let cached = self.mem.lock().ok().and_then(|m| m.get(&token).cloned());
        match cached {
            Some((at, Some(info))) if fresh(&info, at.elapsed(), self.ttl) => return Some(info),
            Some((at, None)) if at.elapsed() < NEGATIVE_TTL => return None,
            _ => {}
        }
        if let Ok(Ok(Some((info, fetched_ms)))) = self.store.send(GetMarket(token)).await {
            let age = Duration::from_millis(u64::try_from(now_ms() - fetched_ms).unwrap_or(0));
            if fresh(&info, age, self.ttl) {
                self.remember(token, Some(info.clone()));
                return Some(info);
            }
        }
        self.refresh(&[token]).await.into_iter().next()
    }

    /// Asks Gamma about `tokens` in one call and caches the answers; returns what it learned.
    pub async fn refresh(&self, tokens: &[TokenId]) -> Vec<MarketInfo> {
        if tokens.is_empty() {
            return Vec::new();
        }
        let req = MarketsRequest::builder().clob_token_ids(tokens.to_vec()).build();
        let markets = match bounded(self.timeout, &[], self.gamma.markets(&req)).await {
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
        for t in tokens {
            let info = markets.iter().find_map(|m| from_gamma(m, *t));
            if let Some(i) = &info {
                self.store.do_send(PutMarket(i.clone()));
                out.push(i.clone());
            }
            self.remember(*t, info);
        }
        out
    }

    fn remember(&self, token: TokenId, info: Option<MarketInfo>) {
        if let Ok(mut m) = self.mem.lock() {
            m.insert(token, (Instant::now(), info));
        }
    }
}
