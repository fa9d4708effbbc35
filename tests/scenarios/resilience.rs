//! Nothing lost, nothing doubled: restarts with backfill, reorgs, a cut websocket, and a crash right
//! after an intent was journaled.

use crate::support::*;
use alloy::primitives::{Address, address};
use serde_json::json;

const A: Address = address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
const C: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");

fn buy(order: u8, token: u64) -> Fill {
    Fill::v2(order, A, C, true, token, 100 * ONE, 50 * ONE)
}

/// Emits a marker fill after everything else and waits until it is journaled and decided: every
/// block before it has been processed, so a duplicate of an earlier fill would be in the journal by
/// now. Returns the marker's tx hash.
async fn marker(anvil: &Anvil, d: &Daemon, order: u8, token: u64) -> alloy::primitives::B256 {
    let (_, tx) = anvil.emit(&buy(order, token)).await;
    let hex = format!("{tx:#x}");
    wait_for(20, "the marker fill", async || {
        d.trades()
            .iter()
            .any(|r| r["fill"].as_str().is_some_and(|f| f.starts_with(&hex)) && r["status"] != "pending")
            .then_some(())
    })
    .await;
    tx
}

async fn executed(d: &Daemon, n: usize) -> Vec<serde_json::Value> {
    wait_for(20, &format!("{n} executed copies"), async || {
        let r = d.trades();
        (with_status(&r, "executed").len() >= n).then_some(r)
    })
    .await
}

/// Restart with the same journal: the fill copied before is not copied again, and fills emitted
/// while the daemon was down are backfilled from the checkpoint and copied once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_restart_when_fills_happened_while_down_then_backfills_without_duplicates() {
    let Running { anvil, dir: _dir, mut d } = running(&wallets(&[(A, "a", true)], 0.1)).await;
    let (_, tx1) = anvil.emit(&buy(1, 11)).await;
    executed(&d, 1).await;
    assert!(d.stop().success());

    let (_, tx2) = anvil.emit(&buy(2, 12)).await;
    anvil.mine(3).await;
    let (_, tx3) = anvil.emit(&buy(3, 13)).await;
    d.start();
    let rows = executed(&d, 3).await;
    // Give a duplicate every chance to appear: a later marker fill is processed after all of them.
    anvil.mine(2).await;
    marker(&anvil, &d, 99, 19).await;
    let rows2 = d.trades();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows2.len(), 4, "the three fills and the marker, nothing twice");
    for tx in [tx1, tx2, tx3] {
        assert_eq!(d.executions_for(&tx), 1, "{tx}");
    }
    let st = d.status();
    assert_eq!(st["positions"].as_array().unwrap().len(), 4, "three tokens and the marker's");
}

/// With `confirmations = 2`, a fill reorged out before it had its confirmations is never copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reorg_when_fill_unconfirmed_then_never_copied() {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    anvil.mine(3).await; // so that head − confirmations exists
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "confirmations = 2", &wallets(&[(A, "a", true)], 0.1));
    d.start();
    d.wait_live().await;
    let (bn, _) = anvil.emit(&buy(1, 21)).await;
    anvil.raw("anvil_reorg", json!([1, []])).await;
    anvil.mine(4).await;
    // A later fill proves the feed went past the reorged block.
    anvil.emit(&buy(2, 22)).await;
    anvil.mine(2).await;
    let rows = executed(&d, 1).await;
    assert_eq!(rows.len(), 1, "only the surviving fill is journaled: {rows:#?}");
    assert_eq!(rows[0]["token_id"], "22");
    assert!(d.status()["last_block"].as_u64().unwrap() >= bn + 2);
}

/// With `confirmations = 0`, a fill already copied and then reorged out is reported as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reorg_when_fill_already_copied_then_reported() {
    let Running { anvil, dir: _dir, d } = running(&wallets(&[(A, "a", true)], 0.1)).await;
    anvil.emit(&buy(1, 31)).await;
    executed(&d, 1).await;
    anvil.raw("anvil_reorg", json!([1, []])).await;
    // Gone once the chain is two blocks past its height without it (it may be mined again).
    anvil.mine(3).await;
    let rows = wait_for(20, "the reorg to be noticed", async || {
        let r = d.trades();
        (r[0]["reorged_after_copy"] == true).then_some(r)
    })
    .await;
    assert_eq!(rows[0]["status"], "executed", "our copy stands");
    let reported = wait_for(10, "the reorg reported", async || {
        let r = d.events("reorged_after_copy");
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert!(reported[0].contains("COPIED"));
    assert_eq!(d.events("reorg").len(), 1);
}

/// A flood the copier cannot keep up with (every copy held undecided, as behind a stuck node): no
/// more than the copier's bound of copies wait in memory, the feed waits for them (said in the
/// log), and once copies are decided again every fill is copied once, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_backpressure_when_copies_wait_at_their_bound_then_the_feed_waits_and_loses_nothing() {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    let hold = dir.path().join("hold-sizing");
    std::fs::write(&hold, "").unwrap();
    d.start_with(&[
        ("POLYCOPY_FAULT", "hold_before_sizing"),
        ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap()),
        ("POLYCOPY_FAULT_COPIES_WAITING", "3"),
    ]);
    d.wait_live().await;
    let mut txs = Vec::new();
    for i in 0..8u8 {
        txs.push(anvil.emit(&buy(40 + i, 40 + u64::from(i))).await.1);
    }
    wait_for(30, "the feed waiting for the copier", async || {
        d.log().contains("copies waiting for a decision reached their bound").then_some(())
    })
    .await;
    // Every slot is held by a copy that cannot move on: the count cannot change until released.
    assert_eq!(d.metric("polycopy_copies_waiting").await.as_deref(), Some("3"));
    assert!(with_status(&d.trades(), "executed").is_empty(), "nothing is decided while held");
    // Past the stall threshold, /health says why the chain is not read: alive, degraded.
    let base = d.http_base().await;
    let health = wait_for(20, "/health naming the wait", async || {
        let (code, body) = crate::support::http::http_get(&base, "/health").await;
        body.contains("waits for the copier").then_some((code, body))
    })
    .await;
    assert_eq!(health.0, 200, "degraded, not down: {}", health.1);

    std::fs::remove_file(&hold).unwrap();
    executed(&d, 8).await;
    marker(&anvil, &d, 99, 49).await;
    assert_eq!(d.trades().len(), 9, "the eight fills and the marker, nothing twice");
    for tx in &txs {
        assert_eq!(d.executions_for(tx), 1, "{tx}");
    }
    wait_for(10, "no copy waiting", async || {
        (d.metric("polycopy_copies_waiting").await.as_deref() == Some("0")).then_some(())
    })
    .await;
    assert_eq!(d.stop().code(), Some(0));
}

/// The websocket to the node is cut mid-stream: the daemon reconnects and backfills; no fill is lost
/// and none doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_websocket_when_cut_then_reconnects_and_loses_nothing() {
    let anvil = Anvil::start().await;
    // Only the websocket goes through the proxy: its open connections are the websocket's, so
    // "connected again" below cannot be an HTTP keep-alive connection.
    let proxy = Proxy::start(format!("127.0.0.1:{}", anvil.port).parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    d.env.push(("POLYGON_WS_URL".into(), format!("ws://{}", proxy.addr)));
    d.start();
    d.wait_live().await;
    assert!(d.log().contains("ws=true"), "connected over websocket");
    anvil.emit(&buy(1, 41)).await;
    executed(&d, 1).await;
    let mut txs = Vec::new();
    for i in 0..3u8 {
        // Cut only once the daemon is connected again (on a loaded machine a reconnect takes a while).
        wait_for(30, "the daemon to be connected", async || (proxy.open() > 0).then_some(())).await;
        assert!(proxy.cut() > 0, "there was a connection to cut");
        txs.push(anvil.emit(&buy(10 + i, 42 + u64::from(i))).await.1);
        anvil.mine(1).await;
    }
    let rows = executed(&d, 4).await;
    marker(&anvil, &d, 99, 49).await;
    assert_eq!(d.trades().len(), 5, "four fills and the marker, nothing twice: {rows:#?}");
    for tx in txs {
        assert_eq!(d.executions_for(&tx), 1);
    }
    assert!(d.log().contains("connected to the chain"), "{}", d.log());
}

/// The node accepts the websocket but refuses subscriptions (and failover is out of reach): the
/// daemon backs off between attempts instead of reconnecting in a loop, and copies once the node
/// accepts them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_websocket_when_subscriptions_refused_then_backs_off_and_recovers() {
    let anvil = Anvil::start().await;
    let tap = crate::support::ws_tap::WsTap::start(anvil.port).await;
    tap.refuse_subscriptions(true);
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    // No failover to the HTTP endpoint: only the backoff stands between refusals.
    d.replace_setting("failover_after_errors = 2", "failover_after_errors = 1000");
    d.env.push(("POLYGON_WS_URL".into(), format!("ws://{}", tap.addr)));
    d.start();
    wait_for(30, "the daemon started", async || d.log().contains("polycopy started").then_some(())).await;
    // The marker is the daemon's own outage alert, due once the chain has failed for
    // health.feed_stall_s (3 s here): until then only the backoff paces the attempts.
    let alert = wait_for(30, "the outage alert", async || {
        d.events("error").into_iter().find(|m| m.contains("has not answered"))
    })
    .await;
    assert!(alert.contains("subscriptions are not available"), "{alert}");
    let refused = tap.refused();
    // A backoff doubling from 250 ms makes about five attempts (two subscriptions each) in 3 s;
    // reconnecting in a loop makes hundreds.
    assert!(refused < 30, "{refused} subscriptions refused in 3 s: the daemon retried without backing off");
    tap.refuse_subscriptions(false);
    d.wait_live().await;
    anvil.emit(&buy(1, 61)).await;
    executed(&d, 1).await;
    assert!(d.log().contains("subscription failed; reconnecting"));
}

/// The process dies (abort, as hard as SIGKILL) right after the intent is written: after a restart
/// the fill is executed exactly once. (In paper the intent and its simulated execution are one
/// write, so the crash leaves the fill pending with neither; live journals the intent alone first.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_crash_when_intent_journaled_then_executed_once_after_restart() {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    d.start_with(&[("POLYCOPY_FAULT", "abort_after_intent")]);
    d.wait_live().await;
    let (_, tx) = anvil.emit(&buy(1, 51)).await;
    let status = d.wait_exit().await;
    assert!(!status.success(), "the fault killed it");
    let rows = d.trades();
    assert_eq!(rows[0]["status"], "pending", "journaled, not executed");
    assert_eq!(d.executions_for(&tx), 0);

    d.start();
    executed(&d, 1).await;
    anvil.mine(2).await;
    marker(&anvil, &d, 99, 59).await;
    assert_eq!(d.executions_for(&tx), 1);
    assert_eq!(d.trades().len(), 2, "the fill once, and the marker");
    assert!(d.log().contains("recovering fills journaled before the last stop"));
}

/// The primary RPC endpoint is dead: the daemon fails over to the fallback URL and copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_rpc_when_primary_dead_then_fails_over_to_fallback() {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens, connections are refused at once.
    let mut d = Daemon::new(dir.path(), "http://127.0.0.1:9/secret-key-path", "", &wallets(&[(A, "a", true)], 0.1));
    d.env.push(("POLYGON_RPC_FALLBACK_URLS".into(), anvil.http_url()));
    d.start();
    d.wait_live().await;
    anvil.emit(&buy(1, 61)).await;
    executed(&d, 1).await;
    let log = d.log();
    assert!(log.contains("failing over") || log.contains("now using"), "{log}");
    assert!(!log.contains("secret-key-path"), "the URL path is redacted in logs");
}

/// A node that reports a reorg with `"removed": true` on the log subscription: with new heads hidden
/// and a 30 s poll, only that notification can wake the feed, which then finds the reorg by hash and
/// reports the copied fill that left the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reorg_when_node_sends_removed_log_then_detected_at_once() {
    let anvil = Anvil::start().await;
    let tap = crate::support::ws_tap::WsTap::start(anvil.port).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    d.replace_setting("poll_interval_ms = 100", "poll_interval_ms = 30000");
    d.env.push(("POLYGON_WS_URL".into(), format!("ws://{}", tap.addr)));
    d.start();
    d.wait_live().await;
    tap.hide_heads();
    // The log subscription alone delivers the fill and wakes the feed.
    anvil.emit(&buy(1, 71)).await;
    executed(&d, 1).await;
    assert!(tap.saw_log());
    anvil.raw("anvil_reorg", json!([1, []])).await;
    assert!(tap.inject_removed());
    wait_for(10, "the removed log to be acted on", async || (!d.events("reorg").is_empty()).then_some(())).await;
    assert!(d.log().contains("node reported a removed log"), "{}", d.log());
    // Gone for good once two more blocks came without it (it could have been mined again); their
    // fills' logs wake the feed.
    anvil.emit(&buy(2, 72)).await;
    anvil.emit(&buy(3, 73)).await;
    wait_for(10, "the copy flagged", async || (d.trades()[0]["reorged_after_copy"] == true).then_some(())).await;
    wait_for(10, "the reorg reported", async || (d.events("reorged_after_copy").len() == 1).then_some(())).await;
}

/// After a long enough outage the backfill journals what the target did but does not copy fills
/// older than `max_copy_delay_s` at their stale prices; fresh fills are copied as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_backfill_when_fill_older_than_max_delay_then_journaled_as_stale() {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    d.set("copy", "max_copy_delay_s = 2");
    d.start();
    d.wait_live().await;
    assert!(d.stop().success());
    let (block, _) = anvil.emit(&buy(1, 81)).await;
    anvil.wait_older_than(block, 2).await;
    d.start();
    let row =
        wait_for(20, "the stale fill", async || d.trades().into_iter().next().filter(|r| r["status"] != "pending"))
            .await;
    assert_eq!((row["status"].as_str(), row["reason"].as_str()), (Some("rejected"), Some("stale")), "{row}");
    anvil.emit(&buy(2, 82)).await;
    executed(&d, 1).await;
}

/// A target's exit that goes stale while its sizing waits (here held at its balance read, as behind
/// a slow node or a BUY of its token in flight) is refused `stale` when it is sized, not approved
/// on the time it arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_copy_when_an_exit_goes_stale_while_its_sizing_waits_then_refused_as_stale() {
    let anvil = Anvil::start().await;
    anvil.install_balances().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    d.set("copy", "max_copy_delay_s = 2");
    let hold = dir.path().join("hold-sell-sizing");
    d.start_with(&[("POLYCOPY_FAULT", "hold_before_sell_sizing"), ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap())]);
    d.wait_live().await;
    anvil.emit(&buy(1, 93)).await;
    executed(&d, 1).await;
    std::fs::write(&hold, "").unwrap();
    let (block, _) = anvil.emit(&Fill::v2(2, A, C, false, 93, 100 * ONE, 50 * ONE)).await;
    wait_for(20, "the sale's sizing held", async || d.log().contains("fault injection: holding").then_some(())).await;
    anvil.wait_older_than(block, 2).await;
    std::fs::remove_file(&hold).unwrap();
    let sale =
        wait_for(20, "the sale decided", async || d.trades().into_iter().nth(1).filter(|r| r["status"] != "pending"))
            .await;
    assert_eq!((sale["status"].as_str(), sale["reason"].as_str()), (Some("rejected"), Some("stale")), "{sale}");
    let told = async |n: usize| {
        wait_for(20, &format!("{n} stale exits told"), async || {
            let said = d.events("alert").into_iter().filter(|e| e.contains("longer ago than copy.max_copy_delay_s"));
            (said.count() == n).then_some(())
        })
        .await;
    };
    told(1).await;

    // The target buys again (copied) and its exit goes stale again: said again, not only once a run.
    anvil.emit(&buy(3, 93)).await;
    executed(&d, 2).await;
    std::fs::write(&hold, "").unwrap();
    let (block, _) = anvil.emit(&Fill::v2(4, A, C, false, 93, 100 * ONE, 50 * ONE)).await;
    wait_for(20, "the second sale's sizing held", async || {
        (d.log().matches("fault injection: holding").count() >= 2).then_some(())
    })
    .await;
    anvil.wait_older_than(block, 2).await;
    std::fs::remove_file(&hold).unwrap();
    wait_for(20, "the second sale decided", async || {
        d.trades().into_iter().nth(3).filter(|r| r["status"] != "pending")
    })
    .await;
    told(2).await;
    assert_eq!(d.stop().code(), Some(0));
}

/// The first chain endpoint is down, the second answers: balance reads move to the second as the
/// feed does, so an exit is sized on the target's balance on chain (it held 1,000 before we watched
/// and sells half of its 1,100: we sell half of ours), not on the journal's figure for the rest of
/// the run (which knows only the 100 it bought since, and would sell all of ours).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_balance_reads_when_the_first_endpoint_is_down_then_they_move_to_the_next() {
    let anvil = Anvil::start().await;
    anvil.install_balances().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), "http://127.0.0.1:9", "", &wallets(&[(A, "a", true)], 0.1));
    d.env.push(("POLYGON_RPC_FALLBACK_URLS".into(), anvil.http_url()));
    d.replace_setting("failover_after_errors = 2", "failover_after_errors = 1");
    d.start();
    d.wait_live().await;
    // A first exit's balance read meets the dead endpoint (sized on the journal's figure).
    anvil.emit(&buy(1, 96)).await;
    executed(&d, 1).await;
    anvil.emit(&Fill::v2(2, A, C, false, 96, 100 * ONE, 50 * ONE)).await;
    wait_for(20, "the first exit decided", async || d.trades().into_iter().nth(1).filter(|r| r["status"] != "pending"))
        .await;
    // The target held 1,000 of 95 before we watched; it buys 100 (we copy 10), then sells 550.
    anvil.set_balance(A, 95, 1_000 * ONE).await;
    anvil.emit(&buy(3, 95)).await;
    executed(&d, 3).await;
    anvil.set_balance(A, 95, 1_100 * ONE).await;
    anvil.emit(&Fill::v2(4, A, C, false, 95, 550 * ONE, 275 * ONE)).await;
    let sale =
        wait_for(20, "the exit decided", async || d.trades().into_iter().nth(3).filter(|r| r["status"] != "pending"))
            .await;
    assert_eq!(
        (sale["status"].as_str(), sale["shares"].as_str()),
        (Some("executed"), Some("5")),
        "half of ours: {sale}"
    );
    assert_eq!(d.stop().code(), Some(0));
}

/// A target's exit found by the backfill after a long outage is stale like any fill (history is not
/// traded at old prices), but while we hold its copies the operator is told: the target has left,
/// no later fill of its will say so, and the position stays open until closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_backfill_when_exit_older_than_max_delay_then_refused_and_the_open_position_told() {
    let anvil = Anvil::start().await;
    anvil.install_balances().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    d.set("copy", "max_copy_delay_s = 2");
    d.start();
    d.wait_live().await;
    anvil.emit(&buy(1, 91)).await;
    executed(&d, 1).await;
    assert!(d.stop().success());
    // While we are down, the target sells all it holds of 91, in two fills, and buys 92.
    anvil.set_balance(A, 91, 100 * ONE).await;
    let (block, _) = anvil.emit(&Fill::v2(2, A, C, false, 91, 50 * ONE, 30 * ONE)).await;
    anvil.emit(&Fill::v2(4, A, C, false, 91, 50 * ONE, 30 * ONE)).await;
    anvil.emit(&buy(3, 92)).await;
    anvil.wait_older_than(block + 2, 2).await;
    d.start();
    let rows = wait_for(20, "the backfill decided", async || {
        let r = d.trades();
        (r.len() == 4 && r.iter().all(|r| r["status"] != "pending")).then_some(r)
    })
    .await;
    for row in &rows[1..] {
        assert_eq!((row["status"].as_str(), row["reason"].as_str()), (Some("rejected"), Some("stale")), "{rows:?}");
    }
    wait_for(10, "the alert", async || Some(d.events("alert")).filter(|a| !a.is_empty())).await;
    // Said once for the two exits: a fresh copy decided after them is the marker.
    anvil.emit(&buy(5, 93)).await;
    executed(&d, 2).await;
    let alerts = d.events("alert");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].contains("its exit is not copied") && alerts[0].contains("the 10 shares"), "{alerts:?}");
    assert_eq!(d.status()["positions"][0]["shares"], "10", "{}", d.status());
}

/// A stop during a long backfill ends it at once: the feed journaled and handed on ranges for as
/// long as the shutdown waited for it (orders sent after the copier's flush). What it had not
/// read yet is read at the next start, and every fill is copied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_backfill_when_stopped_midway_then_it_ends_at_once_and_resumes_at_the_next_start() {
    let anvil = Anvil::start().await;
    let rpc = crate::support::capped_rpc::CappedRpc::start(&anvil.http_url(), 3).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &rpc.url, "max_block_range = 3", &wallets(&[(A, "a", true)], 0.1));
    d.start();
    d.wait_live().await;
    assert!(d.stop().success());
    // A fill in every range, so that every range journaled shows in the log.
    let mut txs = Vec::new();
    for i in 0..30u8 {
        txs.push(anvil.emit(&buy(i + 1, 300 + u64::from(i))).await.1);
        anvil.mine(2).await;
    }
    d.start();
    wait_for(30, "the backfill under way", async || d.log().contains("journaled range").then_some(())).await;
    assert!(d.stop().success());
    let log = d.log();
    let after: Vec<&str> =
        log.rsplit("shutting down").next().unwrap_or("").lines().filter(|l| l.contains("journaled range")).collect();
    // One range may finish between the stop's log line and the feed's cancellation; a backfill that
    // went on would journal a range (each with a fill) every few hundred ms until it was given up.
    assert!(after.len() <= 1, "the backfill went on after the stop: {after:?}");
    d.start();
    wait_for(90, "the 30 copies", async || (with_status(&d.trades(), "executed").len() >= 30).then_some(())).await;
    marker(&anvil, &d, 99, 399).await;
    for tx in &txs {
        assert_eq!(d.executions_for(tx), 1, "{tx}");
    }
}

/// A reorg to a shorter chain (its head below our checkpoint, nothing mined since) is found at once:
/// it was taken for a node that lags, read again and again, and not noticed until the new chain
/// grew past the checkpoint. A block we remember below the new head tells them apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reorg_when_the_new_chain_is_shorter_then_found_at_once() {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    d.start();
    d.wait_live().await;
    anvil.emit(&buy(1, 71)).await;
    anvil.emit(&buy(2, 72)).await;
    executed(&d, 2).await;
    // Both fills' blocks go, and one other block takes their place: the new head is below the
    // checkpoint, and the block at its height is not the one we read.
    anvil.raw("anvil_rollback", json!([2])).await;
    anvil.mine(1).await;
    wait_for(20, "the reorg found", async || (!d.events("reorg").is_empty()).then_some(())).await;
    assert!(!d.log().contains("reaches below"), "{}", d.log());
}

/// An RPC endpoint on another chain is never taken for Polygon: the daemon refuses it at every
/// connect, names the endpoint's chain and the setting, and copies nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_rpc_when_endpoint_on_another_chain_then_refused_and_named() {
    let anvil = Anvil::start_on_chain(1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    d.start();
    let base = d.http_base().await;
    wait_for(20, "the refusal", async || d.log().contains("is on chain 1, not 137").then_some(())).await;
    assert!(d.log().contains("POLYGON_RPC_URL"), "{}", d.log());
    let (_, health) = crate::support::http::http_get(&base, "/health").await;
    assert!(health.contains("starting"), "never live on the wrong chain: {health}");
    assert!(!d.log().contains("chain feed live"));
}

/// A backfill longer than one journal part (1,000 fills): the daemon is killed (SIGKILL) once the
/// first part is journaled, while its copies run; after the restart every fill is copied exactly
/// once and the checkpoint is past the last block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_backfill_when_killed_between_journal_parts_then_each_fill_copied_once() {
    let Running { anvil, dir: _dir, mut d } = running(&wallets(&[(A, "a", true)], 0.1)).await;
    assert!(d.stop().success());
    // 2,400 fills while the daemon is down: 12 blocks of 200, three parts of at least 1,000.
    for b in 0..12u16 {
        let fills: Vec<Fill> = (0..200u16)
            .map(|i| Fill::v2(u8::try_from((b * 200 + i) % 250 + 1).unwrap(), A, C, true, 1001, ONE, ONE / 2))
            .collect();
        anvil.emit_block(&fills).await;
    }
    let env = [
        ("POLYCOPY_RISK__MAX_TRADES_PER_HOUR", "100000000"),
        ("POLYCOPY_RISK__MAX_POSITION_USDC", "100000000"),
        ("POLYCOPY_RISK__MAX_TOTAL_EXPOSURE_USDC", "100000000"),
        ("POLYCOPY_COPY__MAX_COPY_DELAY_S", "0"),
        ("POLYCOPY_COPY__MIN_ORDER_USDC", "0"),
    ];
    d.start_with(&env);
    wait_for(60, "the first journal part", async || d.log().contains("fills=1000 new=1000").then_some(())).await;
    d.kill9();
    let db = d.dir.join("journal.db");
    let count = |sql: &str| -> i64 {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    };
    let fills_at_kill = count("SELECT COUNT(*) FROM fills");
    assert!(fills_at_kill >= 1000, "the first part was journaled: {fills_at_kill}");
    d.start_with(&env);
    wait_for(120, "2,400 executed copies", async || (count("SELECT COUNT(*) FROM executions") >= 2400).then_some(()))
        .await;
    marker(&anvil, &d, 99, 19).await;
    assert_eq!(count("SELECT COUNT(*) FROM fills"), 2401, "each fill journaled once, and the marker");
    assert_eq!(count("SELECT COUNT(*) FROM executions"), 2401, "each fill copied once, and the marker");
    assert_eq!(count("SELECT COUNT(*) FROM (SELECT fill_id FROM executions GROUP BY fill_id HAVING COUNT(*) > 1)"), 0);
}

/// A daemon live on anvil through an endpoint that can answer as a load balancer's lagging backend.
async fn live_behind_a_load_balancer() -> (Anvil, crate::support::capped_rpc::CappedRpc, tempfile::TempDir, Daemon) {
    let anvil = Anvil::start().await;
    let rpc = crate::support::capped_rpc::CappedRpc::start(&anvil.http_url(), 1_000).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &rpc.url, "", &wallets(&[(A, "a", true)], 0.1));
    d.start();
    d.wait_live().await;
    (anvil, rpc, dir, d)
}

/// Back after being down for a minute and more (40 blocks), the feed catches up on blocks behind the
/// head while a provider's backends are out of step: one that answers "no logs" by number for
/// blocks it has not indexed must not make the catch-up pass over a fill. Blocks within about five
/// minutes of the head are read by hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_feed_when_a_backend_lags_during_a_catch_up_then_no_fill_is_passed_over() {
    let (anvil, rpc, _dir, mut d) = live_behind_a_load_balancer().await;
    assert_eq!(d.stop().code(), Some(0));
    let (_, tx) = anvil.emit(&buy(1, 41)).await;
    anvil.mine(40).await;
    rpc.lag(1);
    d.start();
    d.wait_live().await;
    executed(&d, 1).await;
    assert_eq!(d.executions_for(&tx), 1);
}

/// A load-balanced provider whose backend has not indexed the newest block yet answers "no logs"
/// for it by number: the feed reads the blocks at the head by hash, which that backend answers
/// "unknown block", so the block is read again and its fill is not passed over for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_feed_when_a_backend_lags_at_the_head_then_no_fill_is_passed_over() {
    let (anvil, rpc, _dir, d) = live_behind_a_load_balancer().await;
    rpc.lag(2);
    let (_, tx) = anvil.emit(&buy(1, 41)).await;
    executed(&d, 1).await;
    assert_eq!(d.executions_for(&tx), 1);
}

/// A backend that lacks our checkpoint's block (two blocks behind the one that answered for the
/// head, behind a load balancer) is waited out, not taken for a reorg: no reorg reported, no fill
/// made a suspect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_feed_when_the_node_falls_behind_the_checkpoint_then_it_is_not_a_reorg() {
    let (anvil, rpc, _dir, d) = live_behind_a_load_balancer().await;
    anvil.emit(&buy(1, 51)).await;
    executed(&d, 1).await;
    // The next block's head comes from a fresh backend, our checkpoint's block from a lagging one.
    rpc.behind(6);
    anvil.emit(&buy(2, 52)).await;
    executed(&d, 2).await;
    assert_eq!(rpc.still_behind(), 0, "the lagging backend was asked");
    assert!(d.events("reorg").is_empty(), "{:?}", d.events("reorg"));
    // Read again, not taken for a failing endpoint (no reconnect, no failover).
    assert!(!d.log().contains("chain sync failed"), "{}", d.log());
    assert_eq!(d.trades()[0]["reorged_after_copy"], false);
    // The block the head named is missing on the backend asked for it: read again, not a failure.
    rpc.newest_missing(3);
    anvil.emit(&buy(3, 53)).await;
    executed(&d, 3).await;
    assert_eq!(rpc.still_missing(), 0, "the lagging backend was asked");
    assert!(!d.log().contains("chain sync failed"), "{}", d.log());
}

/// Halted by hand, then the journal fails (another process locks it as a fill arrives): the halt
/// stands as it was, but the journal's failure is said, not swallowed because trading was already
/// halted, so a later resume does not lift it unmentioned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_halt_when_the_journal_fails_while_already_halted_then_the_failure_is_said() {
    let Running { anvil, dir: _dir, d } = running(&wallets(&[(A, "a", true)], 0.1)).await;
    let (code, out, err) = d.run_cli(&["halt", "--reason", "maintenance"]);
    assert_eq!(code, 0, "{out}{err}");
    let lock = LockedJournal::hold(&d.dir.join("journal.db"));
    anvil.emit(&buy(1, 61)).await;
    wait_for(30, "the failure said", async || {
        d.log().contains("while already halted (manual): database_error").then_some(())
    })
    .await;
    lock.release();
    assert_eq!(d.status()["breaker"]["code"], "manual", "the halt stands as it was");
}

/// A provider that refuses `eth_getLogs` over more than 3 blocks (docs/PROTOCOL.md §3, "Reading
/// logs"): the backfill reads smaller ranges, copies every fill once, and is never taken for an
/// outage of the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_backfill_when_provider_caps_log_ranges_then_reads_smaller_ranges_and_copies_all() {
    let anvil = Anvil::start().await;
    let rpc = crate::support::capped_rpc::CappedRpc::start(&anvil.http_url(), 3).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &rpc.url, "max_block_range = 50", &wallets(&[(A, "a", true)], 0.1));
    d.start();
    d.wait_live().await;
    assert!(d.stop().success());

    let mut txs = Vec::new();
    // Over 150 blocks: the older ones are read by number, in ranges the provider caps (the
    // newest are read block by block, by hash).
    for i in 0..8u8 {
        txs.push(anvil.emit(&buy(i + 1, 200 + u64::from(i))).await.1);
        anvil.mine(25).await;
    }
    d.start();
    wait_for(90, "8 executed copies", async || (with_status(&d.trades(), "executed").len() >= 8).then_some(())).await;
    marker(&anvil, &d, 99, 299).await;
    for tx in &txs {
        assert_eq!(d.executions_for(tx), 1, "{tx}");
    }
    assert_eq!(d.trades().len(), 9, "the eight fills and the marker, nothing twice");
    assert!(rpc.refused() >= 1, "the first backfill read (4 blocks) is over the cap");
    assert!(rpc.served() >= 10, "the blocks were read in ranges of at most 3");
    let log = d.log();
    assert!(log.contains("reading smaller ranges"), "{log}");
    assert!(!log.contains("chain sync failed"), "a refused range is not an outage: {log}");
}

/// A target's watcher dies of a panic while handing on a fill: the daemon does not go on
/// half-running (the target no longer copied while the watchdog is fed) but ends with
/// EX_SOFTWARE, which systemd restarts; the start copies the fill from the journal, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_actor_when_a_watcher_panics_then_the_daemon_ends_and_the_restart_copies_the_fill_once() {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    d.start_with(&[("POLYCOPY_FAULT", "panic_in_watcher")]);
    d.wait_live().await;
    let (_, tx) = anvil.emit(&buy(1, 61)).await;
    let status = d.wait_exit().await;
    assert_eq!(status.code(), Some(70), "ended as a software error, which systemd restarts");
    assert!(d.log().contains("a target's watcher died of a panic"), "{}", d.log());
    assert_eq!(d.executions_for(&tx), 0);

    d.start();
    executed(&d, 1).await;
    anvil.mine(2).await;
    marker(&anvil, &d, 99, 69).await;
    assert_eq!(d.executions_for(&tx), 1);
    assert_eq!(d.trades().len(), 2, "the fill once, and the marker");
}
