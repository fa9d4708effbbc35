//! The start's third phase: what brings target fills in (the chain feed, one watcher per wallet,
//! the copier), built but not yet started: the feed runs only after recovery.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use alloy::primitives::Address;
use tokio::sync::watch;
use tracing::warn;

use super::trading::Trading;
use crate::actors::copier::{Copier, CopierConfig};
use crate::actors::notifier::Details;
use crate::actors::watcher::Registry;
use crate::chain::{ChainFeed, FeedConfig, FeedPeers, FeedStatus, Reads, Rpc, RpcConfig};
use crate::config::{Env, Settings, Wallets};
use crate::market::MarketDirectory;

/// The fill sources and the actors they feed.
pub(super) struct Inputs {
    /// The copier (sizes each fill into an intent).
    pub copier: Addr<Copier>,
    /// The registry of watchers, one per target wallet.
    pub registry: Addr<Registry>,
    /// The chain feed, to be run once recovery is done.
    pub feed: ChainFeed,
    /// The targets being watched, as the registry publishes them.
    pub targets: watch::Receiver<Vec<Address>>,
    /// Targets whose pending trades are acted on before the block.
    pub act_now: watch::Receiver<HashSet<Address>>,
    /// The feed's status, for `/health`, the watchdog and the start's own wait.
    pub status: watch::Receiver<FeedStatus>,
    /// Targets enabled at start.
    pub n_targets: usize,
    /// Gamma's market metadata, when reachable.
    pub markets: Option<Arc<MarketDirectory>>,
    /// The RPC endpoints' settings, for the other readers of the chain.
    pub rpc: RpcConfig,
}

/// Builds the copier, the watchers for `wallets` and the chain feed.
pub(super) async fn build(s: &Settings, env: &Env, t: &Trading, wallets: &Wallets, paused: HashSet<Address>) -> Inputs {
    let rpc = RpcConfig {
        chain_id: s.chain.chain_id,
        ws_url: env.ws_url.clone(),
        http_urls: env.rpc_urls.clone(),
        requests_per_second: s.chain.rpc_requests_per_second,
        timeout: Duration::from_millis(s.chain.request_timeout_ms),
        failover_after: s.chain.failover_after_errors,
    };
    let details = Details::wanted(Details::debug_logged(), env.telegram_bot_token.as_ref().map(|_| &s.telegram));
    let reads = balance_rpc(s, &rpc).await;
    let markets = markets(s, env, t, reads.clone());
    let copier = Copier::new(
        copier_config(s, details.sized),
        reads,
        markets.clone(),
        t.store.clone(),
        t.risk.clone(),
        t.notifier.clone(),
    )
    .start();
    let (targets_tx, targets) = watch::channel(Vec::new());
    let (act_now_tx, act_now) = watch::channel(HashSet::new());
    let mut registry =
        Registry::new(s.wallets_path.clone(), copier.clone(), t.notifier.clone(), t.store.clone(), targets_tx)
            .with_triggers(s.detection.trigger, act_now_tx)
            .with_details(details)
            .with_metrics(t.metrics.clone());
    registry.apply(wallets);
    let n_targets = wallets.enabled().count();
    if n_targets == 0 {
        warn!(
            wallets = %s.wallets_path.display(),
            "no target wallet is enabled: nothing will be copied. Set \"enabled\": true on an entry of wallets.json (or add one); it is picked up without a restart"
        );
    }
    let registry = registry.with_paused(paused).start();
    let (status_tx, status) = watch::channel(FeedStatus::default());
    let peers = FeedPeers {
        writer: t.writer.clone(),
        sink: registry.clone().recipient(),
        notifier: t.notifier.clone(),
        halt: t.risk.clone().recipient(),
        metrics: t.metrics.clone(),
        own_fills: t.venue.as_ref().map(|_| t.risk.clone().recipient()),
        clock: t.chain_clock.clone(),
    };
    let feed = ChainFeed::new(feed_config(s, t), Rpc::new(rpc.clone()), peers, targets.clone(), status_tx);
    Inputs { copier, registry, feed, targets, act_now, status, n_targets, markets, rpc }
}

/// The copier's settings.
fn copier_config(s: &Settings, report_sized: bool) -> CopierConfig {
    CopierConfig {
        max_slippage_bps: s.copy.max_slippage_bps,
        min_order_usdc: s.copy.min_order_usdc,
        max_copy_delay_s: s.copy.max_copy_delay_s,
        positions: crate::chain::positions::PositionContracts::from_settings(&s.chain),
        refuse_v3: !s.mode.is_paper(),
        skip_closed: s.copy.skip_closed,
        min_minutes_to_end: s.copy.min_minutes_to_end,
        pending_max_order_usdc: s.detection.pending_max_order_usdc,
        report_sized,
    }
}

/// The chain feed's settings.
fn feed_config(s: &Settings, t: &Trading) -> FeedConfig {
    FeedConfig {
        exchanges: s.chain.exchanges.clone(),
        confirmations: s.chain.confirmations,
        start_block: s.chain.start_block,
        max_block_range: s.chain.max_block_range,
        poll_interval: Duration::from_millis(s.chain.poll_interval_ms),
        backoff_max: Duration::from_millis(s.chain.reconnect_backoff_max_ms),
        own: t.venue.as_ref().map(|v| v.funder()),
        stall: Duration::from_secs(s.health.feed_stall_s),
        head_stall: Duration::from_secs(s.chain.head_stall_s),
    }
}

/// The connection balance reads and market results go over (HTTP, lazy: no connection is made
/// until the first call).
async fn balance_rpc(s: &Settings, rpc: &RpcConfig) -> Option<Arc<Reads>> {
    let reads = Reads::connect(&RpcConfig {
        ws_url: None,
        // Lazy, as before: the feed identifies the chain on the same endpoints, and a node that is
        // down at start must not turn balance reads off for the daemon's whole life.
        chain_id: 0,
        timeout: Duration::from_millis(s.chain.balance_timeout_ms.min(s.chain.request_timeout_ms)),
        ..rpc.clone()
    })
    .await;
    if reads.is_none() {
        warn!("balance reads unavailable; proportional sells use observed positions");
    }
    reads.map(Arc::new)
}

/// Gamma's market metadata (closed markets, end dates), when it can be set up.
fn markets(s: &Settings, env: &Env, t: &Trading, reads: Option<Arc<Reads>>) -> Option<Arc<MarketDirectory>> {
    match MarketDirectory::new(
        &env.gamma_url,
        t.store.clone(),
        Duration::from_secs(s.markets.refresh_s),
        Duration::from_millis(s.markets.timeout_ms),
    ) {
        Ok(d) => Some(Arc::new(match reads {
            Some(rpc) => d.with_results(rpc, s.chain.conditional_tokens).with_notifier(t.notifier.clone()),
            None => d.with_notifier(t.notifier.clone()),
        })),
        Err(e) => {
            warn!(cause = %e, "market metadata unavailable: closed markets are not skipped");
            None
        }
    }
}
