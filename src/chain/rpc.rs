//! JSON-RPC access to Polygon through alloy: every call paced by governor and bounded by a timeout,
//! endpoints tried in order (websocket first when configured, then the HTTP URLs), failing over
//! after repeated errors. URLs are only ever shown redacted.

use std::num::NonZeroU32;
use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder, WsConnect};
use alloy::rpc::types::{Filter, Log, TransactionRequest};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::redact_url;

/// Errors talking to the chain. Messages carry redacted URLs only.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The node answered with an error or the transport failed.
    #[error("rpc {endpoint}: {message}")]
    Rpc {
        /// Redacted endpoint.
        endpoint: String,
        /// What happened (scrubbed of the URL).
        message: String,
    },
    /// The call took longer than the configured timeout.
    #[error("rpc {endpoint}: timed out after {ms} ms")]
    Timeout {
        /// Redacted endpoint.
        endpoint: String,
        /// The timeout.
        ms: u64,
    },
    /// The chain changed while a range was being read; it is read again.
    #[error("chain moved while reading blocks {from}..={to}")]
    ChainMoved {
        /// Range start.
        from: u64,
        /// Range end.
        to: u64,
    },
    /// `eth_getLogs` over a range failed while the node answered for its blocks: providers refuse
    /// a range whose answer would be too large, so the feed reads it again in halves.
    #[error("reading the logs of blocks {from}..={to}: {cause}")]
    LogsRefused {
        /// Range start.
        from: u64,
        /// Range end.
        to: u64,
        /// The node's answer.
        cause: Box<ChainError>,
    },
    /// A block the node should have is missing.
    #[error("block {0} not found")]
    MissingBlock(u64),
    /// Not connected.
    #[error("not connected")]
    NotConnected,
    /// The endpoint serves another chain.
    #[error("rpc {endpoint} is on chain {got}, not {want}: check POLYGON_RPC_URL (or chain.chain_id for a test chain)")]
    WrongChain {
        /// Redacted endpoint.
        endpoint: String,
        /// What it said.
        got: u64,
        /// What the settings want.
        want: u64,
    },
    /// The journal failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The store actor is gone.
    #[error("store unavailable: {0}")]
    Mailbox(String),
}

/// A pending transaction as the detection source reads it: (hash, from, to, input).
pub type PoolTx = (B256, Address, Address, Bytes);

/// A transaction's (hash, from, to, input), if it has a recipient.
#[must_use]
pub fn pool_tx(t: &alloy::rpc::types::Transaction) -> Option<PoolTx> {
    use alloy::consensus::Transaction as _;
    let to = t.to()?;
    Some((*t.inner.tx_hash(), t.inner.signer(), to, t.input().clone()))
}

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

    /// ERC-1155 `balanceOf(owner, token)` on `contract` at block `at`.
    ///
    /// # Errors
    /// On an RPC failure or a malformed answer.
    pub async fn balance_of(
        &self,
        contract: Address,
        owner: Address,
        token: U256,
        at: u64,
    ) -> Result<U256, ChainError> {
        use alloy::sol_types::SolCall as _;
        let p = self.provider()?;
        let data = crate::chain::abi::balanceOfCall { owner, id: token }.abi_encode();
        let tx = TransactionRequest::default().to(contract).input(Bytes::from(data).into());
        let out: Bytes = self.call(p.call(tx).block(at.into())).await?;
        crate::chain::abi::balanceOfCall::abi_decode_returns(&out).map_err(|e| ChainError::Rpc {
            endpoint: self.endpoint(),
            message: format!("balanceOf returned {} bytes: {e}", out.len()),
        })
    }

    /// The node's pending transactions (`txpool_content`, its `pending` part): (hash, from, to,
    /// input) of each, those without a recipient (contract creations) left out.
    ///
    /// # Errors
    /// On an RPC failure, or when the node does not expose its pool.
    pub async fn txpool_pending(&self) -> Result<Vec<PoolTx>, ChainError> {
        let p = self.provider()?;
        let v: serde_json::Value = self.call(p.raw_request("txpool_content".into(), ())).await?;
        let mut out = Vec::new();
        for by_nonce in v.get("pending").and_then(serde_json::Value::as_object).into_iter().flat_map(|m| m.values()) {
            for tx in by_nonce.as_object().into_iter().flat_map(|m| m.values()) {
                let field = |k: &str| tx.get(k).and_then(serde_json::Value::as_str);
                let (Some(hash), Some(from), Some(to), Some(input)) = (
                    field("hash").and_then(|h| h.parse().ok()),
                    field("from").and_then(|f| f.parse().ok()),
                    field("to").and_then(|t| t.parse().ok()),
                    field("input"),
                ) else {
                    continue;
                };
                if let Ok(input) = input.parse::<Bytes>() {
                    out.push((hash, from, to, input));
                }
            }
        }
        Ok(out)
    }

    /// Subscribes to pending transactions with their bodies (websocket endpoints that support it).
    ///
    /// # Errors
    /// On an RPC failure, or when the node does not offer full bodies.
    pub async fn subscribe_pending_full(
        &self,
    ) -> Result<alloy::pubsub::Subscription<alloy::rpc::types::Transaction>, ChainError> {
        let p = self.provider()?;
        self.call(p.subscribe_full_pending_transactions()).await
    }

    /// Subscribes to pending transactions' hashes (websocket endpoints).
    ///
    /// # Errors
    /// On an RPC failure.
    pub async fn subscribe_pending_hashes(&self) -> Result<alloy::pubsub::Subscription<B256>, ChainError> {
        let p = self.provider()?;
        self.call(p.subscribe_pending_transactions()).await
    }

    /// Transaction `hash` as (hash, from, to, input) and whether it is still pending; `None` when
    /// the node does not know it (dropped) or it has no recipient.
    ///
    /// # Errors
    /// On an RPC failure.
    pub async fn transaction(&self, hash: B256) -> Result<Option<(PoolTx, bool)>, ChainError> {
        let p = self.provider()?;
        let tx = self.call(p.get_transaction_by_hash(hash)).await?;
        Ok(tx.and_then(|t| pool_tx(&t).map(|x| (x, t.block_number.is_none()))))
    }

    /// Whether `who` is an operator of `exchange` (may settle matches there), at the head.
    ///
    /// # Errors
    /// On an RPC failure or an answer that is not a boolean (not an exchange).
    pub async fn is_operator(&self, exchange: Address, who: Address) -> Result<bool, ChainError> {
        use alloy::sol_types::SolCall as _;
        let p = self.provider()?;
        let data = crate::chain::abi::isOperatorCall { usr: who }.abi_encode();
        let tx = TransactionRequest::default().to(exchange).input(Bytes::from(data).into());
        let out: Bytes = self.call(p.call(tx).block(alloy::eips::BlockId::latest())).await?;
        crate::chain::abi::isOperatorCall::abi_decode_returns(&out)
            .map_err(|e| ChainError::Rpc { endpoint: self.endpoint(), message: format!("isOperator: {e}") })
    }

    /// Whether transaction `hash` was mined and succeeded: `None` when the node has no receipt.
    ///
    /// # Errors
    /// On an RPC failure.
    pub async fn receipt_status(&self, hash: B256) -> Result<Option<bool>, ChainError> {
        let p = self.provider()?;
        let r = self.call(p.get_transaction_receipt(hash)).await?;
        Ok(r.map(|r| r.status()))
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

/// Removes a URL (and its path, which may hold an API key) from an error text.
/// An error with every cause under it: the transport's "error sending request" alone hides whether
/// DNS, the TCP connection or TLS failed, which is what the operator needs to know.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
        next = cause.source();
    }
    out
}

fn scrub_url(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &redact_url(url));
    if let Some((_, rest)) = url.split_once("://")
        && let Some(i) = rest.find(['/', '?'])
    {
        let tail = &rest[i..];
        if tail.len() > 1 {
            out = out.replace(tail, "/…");
        }
    }
    out
}
