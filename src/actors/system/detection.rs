//! Detection before the block: the pending-transaction reader and the RTDS trade feed, started
//! with the chain feed and stopped with it.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use actix::Addr;
use alloy::primitives::Address;
use std::collections::HashSet;
use tokio::sync::watch;

use super::trading::Trading;
use crate::actors::watcher::Registry;
use crate::chain::{Rpc, RpcConfig};
use crate::config::Settings;

/// What detection reads from and hands its sightings to.
pub(super) struct Sources<'a> {
    /// The RPC endpoints' settings.
    pub rpc: &'a RpcConfig,
    /// The watchers, which act on a sighting.
    pub registry: &'a Addr<Registry>,
    /// The targets being watched.
    pub targets: &'a watch::Receiver<Vec<Address>>,
    /// Targets whose pending trades are acted on before the block.
    pub act_now: &'a watch::Receiver<HashSet<Address>>,
    /// How far the chain feed has read.
    pub feed: &'a watch::Receiver<crate::chain::feed::FeedStatus>,
}

/// Starts what `[detection]` asks for, each until `stop`.
pub(super) fn start(s: &Settings, t: &Trading, i: &Sources<'_>, stop: &CancellationToken) {
    if s.detection.pending {
        let mempool = crate::chain::mempool::Mempool::new(
            crate::chain::mempool::MempoolConfig {
                exchanges: s.chain.exchanges.clone(),
                chain_id: s.chain.chain_id,
                poll: Duration::from_millis(s.detection.pending_poll_ms),
                orphan_after_blocks: s.detection.orphan_after_blocks,
                confirmations: s.chain.confirmations,
                feed_fresh_ms: crate::chain::mempool::in_order::fresh_for_ms(
                    s.chain.poll_interval_ms,
                    s.chain.request_timeout_ms,
                ),
            },
            // Its own connection over HTTP: reading the pool never waits behind the feed.
            Rpc::new(RpcConfig { ws_url: None, ..i.rpc.clone() }),
            pool_source(s, i.rpc, stop),
            crate::chain::mempool::MempoolPeers {
                store: t.store.clone(),
                sink: i.registry.clone().recipient(),
                notifier: t.notifier.clone(),
                metrics: t.metrics.clone(),
                feed: i.feed.clone(),
            },
            i.targets.clone(),
            i.act_now.clone(),
        );
        // On a thread of its own: a real node's pool is megabytes of JSON read four times a
        // second, which must not delay the journal's and the copies' turns on the actors' thread.
        if !actix::Arbiter::new().spawn(mempool.run(stop.clone())) {
            warn!("the pending-transaction reader could not start");
        }
        info!(trigger = s.detection.trigger.as_str(), "watching pending transactions to the exchanges");
    }
    if s.detection.rtds {
        let cfg = crate::market::rtds::RtdsConfig {
            url: s.detection.rtds_url.clone(),
            stale: Duration::from_secs(s.detection.rtds_stale_s),
            standby: s.detection.rtds_standby,
        };
        actix::spawn(crate::market::rtds::run(cfg, t.store.clone(), i.targets.clone(), stop.clone()));
        info!(url = %crate::config::redact_url(&s.detection.rtds_url), "reading the RTDS trade feed (sightings only)");
    }
}

/// Where the pending-transaction source reads: the node's pool, or a websocket subscription (its
/// own connection, started here) when the settings ask for one and POLYGON_WS_URL is set.
fn pool_source(s: &Settings, rpc_cfg: &RpcConfig, stop: &CancellationToken) -> crate::chain::mempool::PoolSource {
    use crate::chain::mempool::PoolSource;
    use crate::config::settings::PendingSource;
    match (s.detection.pending_source, &rpc_cfg.ws_url) {
        (PendingSource::Txpool, _) => PoolSource::Txpool,
        (PendingSource::Subscription, None) => {
            warn!("detection.pending_source = \"subscription\" needs POLYGON_WS_URL; reading the node's pool instead");
            PoolSource::Txpool
        }
        (PendingSource::Subscription, Some(_)) => {
            let (tx, rx) = tokio::sync::mpsc::channel(4_096);
            let ws = Rpc::new(RpcConfig { http_urls: Vec::new(), ..rpc_cfg.clone() });
            actix::spawn(crate::chain::mempool::subscribe(ws, s.chain.exchanges.clone(), tx, stop.clone()));
            PoolSource::Subscription(rx)
        }
    }
}
