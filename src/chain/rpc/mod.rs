//! JSON-RPC access to Polygon through alloy: every call paced by governor and bounded by a timeout,
//! endpoints tried in order (websocket first when configured, then the HTTP URLs), failing over
//! after repeated errors. URLs are only ever shown redacted.

use std::num::NonZeroU32;
use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::B256;
use alloy::providers::{DynProvider, Provider, ProviderBuilder, WsConnect};
use alloy::rpc::types::{Filter, Log};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::redact_url;

mod error;
mod pool;
mod reads;
mod views;

pub use error::ChainError;
use error::scrub_url;
pub(crate) use error::with_causes;
pub use pool::{PoolTx, pool_tx};
pub use reads::Reads;
pub use views::ConditionResult;

/// The parts of a block header the feed uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    /// Number.
    pub number: u64,
    /// Hash.
    pub hash: B256,
    /// Parent hash.
    pub parent: B256,
    /// Timestamp, seconds.
    pub timestamp: u64,
}

/// How to reach the chain.
#[derive(Debug, Clone)]
pub struct RpcConfig {
    /// Websocket endpoint, tried first when set.
    pub ws_url: Option<String>,
    /// HTTP endpoints, in order.
    pub http_urls: Vec<String>,
    /// Requests per second.
    pub requests_per_second: u32,
    /// Per-call timeout.
    pub timeout: Duration,
    /// Errors in a row on one endpoint before moving to the next.
    pub failover_after: u32,
    /// The chain every endpoint must be on (137: Polygon), checked at every connect; 0 = not
    /// checked (a lazy HTTP connection that makes no call until it is used).
    pub chain_id: u64,
}

/// A connection to one endpoint at a time, with failover.
pub struct Rpc {
    cfg: RpcConfig,
    endpoints: Vec<String>,
    idx: usize,
    provider: Option<DynProvider>,
    limiter: DefaultDirectRateLimiter,
    errors_in_row: u32,
    /// Connections made so far (for metrics: reconnects = connects − 1).
    pub connects: u64,
}

impl std::fmt::Debug for Rpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rpc").field("endpoint", &self.endpoint()).field("connected", &self.provider.is_some()).finish()
    }
}

/// The HTTP client every JSON-RPC connection of the process shares. Building one reads and
/// parses the system's root certificates (about 6 ms of CPU, on the actor thread): each endpoint
/// and every reconnect built its own, five of them before a start's first read
/// (BENCHMARKS.md, sixth round). A connection that failed is dropped from the shared pool with
/// its request, so a reconnect still opens a fresh one.
fn http_client() -> alloy::transports::http::Client {
    static CLIENT: std::sync::OnceLock<alloy::transports::http::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(alloy::transports::http::Client::new).clone()
}

impl Rpc {
    /// A client for `cfg` (not yet connected).
    #[must_use]
    pub fn new(cfg: RpcConfig) -> Self {
        let endpoints: Vec<String> = cfg.ws_url.iter().chain(&cfg.http_urls).cloned().collect();
        let rps = NonZeroU32::new(cfg.requests_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            cfg,
            endpoints,
            idx: 0,
            provider: None,
            limiter: RateLimiter::direct(Quota::per_second(rps)),
            errors_in_row: 0,
            connects: 0,
        }
    }

    /// The current endpoint, redacted.
    #[must_use]
    pub fn endpoint(&self) -> String {
        self.endpoints.get(self.idx).map(|u| redact_url(u)).unwrap_or_default()
    }

    /// True when the current endpoint is a websocket (heads arrive by subscription).
    #[must_use]
    pub fn is_ws(&self) -> bool {
        self.endpoints.get(self.idx).is_some_and(|u| u.starts_with("ws"))
    }

    /// Connects to the current endpoint.
    ///
    /// # Errors
    /// When the endpoint cannot be reached.
    pub async fn connect(&mut self) -> Result<(), ChainError> {
        let url = self.endpoints.get(self.idx).cloned().ok_or(ChainError::NotConnected)?;
        let endpoint = redact_url(&url);
        let err = |e: String| ChainError::Rpc { endpoint: endpoint.clone(), message: scrub_url(&e, &url) };
        let provider = if url.starts_with("ws") {
            let fut = ProviderBuilder::new().connect_ws(WsConnect::new(url.clone()));
            match tokio::time::timeout(self.cfg.timeout, fut).await {
                Ok(Ok(p)) => p.erased(),
                Ok(Err(e)) => return Err(err(with_causes(&e))),
                Err(_) => {
                    return Err(ChainError::Timeout { endpoint, ms: self.timeout_ms() });
                }
            }
        } else {
            let parsed = url.parse().map_err(|e: url::ParseError| err(e.to_string()))?;
            let client = alloy::rpc::client::ClientBuilder::default().http_with_client(http_client(), parsed);
            ProviderBuilder::new().connect_client(client).erased()
        };
        // Identify the chain before anything is read from it: an endpoint on another chain (or a
        // test node left in a setting) must never be taken for Polygon.
        if self.cfg.chain_id != 0 {
            let got = match tokio::time::timeout(self.cfg.timeout, provider.get_chain_id()).await {
                Ok(Ok(id)) => id,
                Ok(Err(e)) => return Err(err(with_causes(&e))),
                Err(_) => return Err(ChainError::Timeout { endpoint, ms: self.timeout_ms() }),
            };
            if got != self.cfg.chain_id {
                return Err(ChainError::WrongChain { endpoint, got, want: self.cfg.chain_id });
            }
        }
        self.provider = Some(provider);
        self.connects += 1;
        Ok(())
    }

    /// Drops the connection after a failure; after `failover_after` failures in a row, moves to the
    /// next endpoint. Returns true when it failed over.
    pub fn fail(&mut self) -> bool {
        self.provider = None;
        self.errors_in_row += 1;
        if self.errors_in_row >= self.cfg.failover_after && self.endpoints.len() > 1 {
            self.idx = (self.idx + 1) % self.endpoints.len();
            self.errors_in_row = 0;
            return true;
        }
        false
    }

    /// Drops the connection and moves to the next endpoint at once, without counting a failure
    /// (a check that tries each endpoint in turn); false when there is no other.
    pub fn next_endpoint(&mut self) -> bool {
        self.provider = None;
        if self.endpoints.len() < 2 {
            return false;
        }
        self.idx = (self.idx + 1) % self.endpoints.len();
        true
    }

    /// The number of endpoints configured.
    #[must_use]
    pub fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    /// Marks a successful round.
    pub const fn ok(&mut self) {
        self.errors_in_row = 0;
    }

    /// True when connected.
    #[must_use]
    pub const fn is_connected(&self) -> bool {
        self.provider.is_some()
    }

    fn timeout_ms(&self) -> u64 {
        u64::try_from(self.cfg.timeout.as_millis()).unwrap_or(u64::MAX)
    }

    async fn call<T, E: std::error::Error>(
        &self,
        fut: impl IntoFuture<Output = Result<T, E>>,
    ) -> Result<T, ChainError> {
        self.limiter.until_ready().await;
        let endpoint = self.endpoint();
        match tokio::time::timeout(self.cfg.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let url = self.endpoints.get(self.idx).map_or("", String::as_str);
                Err(ChainError::Rpc { endpoint, message: scrub_url(&with_causes(&e), url) })
            }
            Err(_) => Err(ChainError::Timeout { endpoint, ms: self.timeout_ms() }),
        }
    }

    fn provider(&self) -> Result<&DynProvider, ChainError> {
        self.provider.as_ref().ok_or(ChainError::NotConnected)
    }

    /// The latest block number.
    ///
    /// # Errors
    /// On an RPC failure.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        let p = self.provider()?;
        self.call(p.get_block_number()).await
    }

    /// The header of block `n`, `None` if the node does not have it.
    ///
    /// # Errors
    /// On an RPC failure.
    pub async fn block(&self, n: u64) -> Result<Option<BlockRef>, ChainError> {
        let p = self.provider()?;
        let b = self.call(p.get_block_by_number(BlockNumberOrTag::Number(n))).await?;
        Ok(b.map(|b| BlockRef {
            number: b.header.number,
            hash: b.header.hash,
            parent: b.header.parent_hash,
            timestamp: b.header.timestamp,
        }))
    }

    /// The header of block `n`; a missing block is an error.
    ///
    /// # Errors
    /// On an RPC failure or a missing block.
    pub async fn block_required(&self, n: u64) -> Result<BlockRef, ChainError> {
        self.block(n).await?.ok_or(ChainError::MissingBlock(n))
    }

    /// Logs matching `filter`.
    ///
    /// # Errors
    /// On an RPC failure.
    pub async fn logs(&self, filter: &Filter) -> Result<Vec<Log>, ChainError> {
        let p = self.provider()?;
        self.call(p.get_logs(filter)).await
    }

    /// Subscribes to logs matching `filter` (websocket endpoints only).
    ///
    /// # Errors
    /// On an RPC failure.
    pub async fn subscribe_logs(&self, filter: &Filter) -> Result<alloy::pubsub::Subscription<Log>, ChainError> {
        let p = self.provider()?;
        self.call(p.subscribe_logs(filter)).await
    }

    /// Subscribes to new heads (websocket endpoints only).
    ///
    /// # Errors
    /// On an RPC failure.
    pub async fn subscribe_heads(&self) -> Result<alloy::pubsub::Subscription<alloy::rpc::types::Header>, ChainError> {
        let p = self.provider()?;
        self.call(p.subscribe_blocks()).await
    }
}
