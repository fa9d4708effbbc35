//! A websocket subscription to the node's pending transactions, for nodes that offer one
//! instead of (or besides) `txpool_content`: only transactions sent to the watched exchanges are
//! passed on, to the round that decodes them.

use std::time::{Duration, Instant};

use alloy::primitives::Address;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::chain::rpc::{ChainError, PoolTx, Rpc};

/// Feeds a subscription's pending transactions to the exchanges into `out` until `shutdown`:
/// full bodies where the node offers them, else hashes each looked up (paced by `rpc`).
/// Reconnects after a failure, with a doubling pause.
pub async fn subscribe(
    mut rpc: Rpc,
    exchanges: Vec<Address>,
    out: mpsc::Sender<PoolTx>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut pause = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let ended = tokio::select! {
            () = shutdown.cancelled() => return,
            r = follow_subscription(&mut rpc, &exchanges, &out) => r,
        };
        if let Err(e) = ended {
            warn!(cause = %e, "pending-transaction subscription failed; resubscribing");
            rpc.fail();
        }
        // A subscription that ran a good while was healthy: the next failure starts the pauses over.
        if started.elapsed() > Duration::from_secs(60) {
            pause = Duration::from_secs(1);
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

async fn follow_subscription(
    rpc: &mut Rpc,
    exchanges: &[Address],
    out: &mpsc::Sender<PoolTx>,
) -> Result<(), ChainError> {
    use futures_util::StreamExt as _;
    if !rpc.is_connected() {
        rpc.connect().await?;
    }
    match rpc.subscribe_pending_full().await {
        Ok(sub) => {
            info!("pending transactions: full bodies by subscription");
            let mut stream = sub.into_stream();
            while let Some(t) = stream.next().await {
                if let Some(p) = crate::chain::rpc::pool_tx(&t).filter(|p| exchanges.contains(&p.2))
                    && out.send(p).await.is_err()
                {
                    return Ok(());
                }
            }
        }
        Err(e) => {
            info!(cause = %e, "full pending transactions not offered; subscribing to hashes");
            let mut stream = rpc.subscribe_pending_hashes().await?.into_stream();
            while let Some(h) = stream.next().await {
                if let Some((p, true)) = rpc.transaction(h).await?
                    && exchanges.contains(&p.2)
                    && out.send(p).await.is_err()
                {
                    return Ok(());
                }
            }
        }
    }
    Err(ChainError::NotConnected)
}
