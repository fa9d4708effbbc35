//! A node whose head stops moving (stuck, or cut off from its peers) still answers every call:
//! nothing fails, yet no new fill can be seen. Once the head has stayed at one block longer than
//! `chain.head_stall_s`, the feed counts the endpoint as failing: `/health` turns unhealthy and
//! says why, the operator is told once, and both end when blocks come again.

use crate::support::http::http_get;
use crate::support::*;
use alloy::primitives::{Address, address};

const A: Address = address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
const C: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_chain_when_the_head_stops_moving_then_unhealthy_told_and_recovered() {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    // anvil makes a block only when a transaction arrives: left alone, its head stays put.
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    d.replace_setting("head_stall_s = 0", "head_stall_s = 10");
    d.start();
    d.wait_live().await;
    let base = d.http_base().await;
    // head_stall_s (10 s, the least allowed), then health.feed_stall_s (3 s in the test settings)
    // without a good read.
    let health = wait_for(40, "an unhealthy /health", async || {
        let (code, body) = http_get(&base, "/health").await;
        (code == 503).then_some(body)
    })
    .await;
    assert!(health.contains("has stayed at block"), "{health}");
    let alert = wait_for(20, "the operator told", async || {
        d.events("error").into_iter().find(|m| m.contains("has not answered"))
    })
    .await;
    assert!(alert.contains("has stayed at block"), "{alert}");

    // Blocks again, one a second from now on: the next fill is copied, health and the operator
    // hear the end of it.
    anvil.emit(&Fill::v2(1, A, C, true, 71, 100 * ONE, 50 * ONE)).await;
    anvil.raw("evm_setIntervalMining", serde_json::json!([1])).await;
    wait_for(30, "the copy", async || {
        let r = d.trades();
        (with_status(&r, "executed").len() == 1).then_some(())
    })
    .await;
    wait_for(20, "the end told", async || d.events("error").into_iter().find(|m| m.contains("answers again"))).await;
    wait_for(20, "a healthy /health", async || (http_get(&base, "/health").await.0 == 200).then_some(())).await;
    assert!(d.stop().success());
}

/// An endpoint that lags the chain (a backend minutes behind) answers every read, and its head
/// may even move: only the blocks' own times show that every copy comes that much late (and,
/// past `copy.max_copy_delay_s`, is refused as stale). `/health` says so: degraded once the
/// newest block read is older than `health.max_chain_age_s`, unhealthy at five times that.
/// anvil's newest block, left alone, ages the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_chain_when_the_newest_block_read_is_old_by_the_clock_then_degraded_then_unhealthy() {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    d.replace_setting("max_chain_age_s = 0", "max_chain_age_s = 2");
    d.start();
    d.wait_live().await;
    anvil.mine(1).await;
    let base = d.http_base().await;
    let degraded = wait_for(20, "a degraded /health", async || {
        let (code, body) = http_get(&base, "/health").await;
        (code == 200 && body.contains("lags the chain")).then_some(body)
    })
    .await;
    assert!(degraded.contains("\"status\":\"degraded\""), "{degraded}");
    let unhealthy = wait_for(30, "an unhealthy /health", async || {
        let (code, body) = http_get(&base, "/health").await;
        (code == 503).then_some(body)
    })
    .await;
    assert!(unhealthy.contains("lags the chain"), "{unhealthy}");
    // Fresh blocks again: healthy.
    anvil.raw("evm_setIntervalMining", serde_json::json!([1])).await;
    wait_for(20, "a healthy /health", async || {
        (http_get(&base, "/health").await.0 == 200 && !http_get(&base, "/health").await.1.contains("lags"))
            .then_some(())
    })
    .await;
    assert!(d.stop().success());
}
