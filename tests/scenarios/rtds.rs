//! The RTDS source against a fake RTDS websocket that behaves like the real one (it streams other
//! wallets' trades, answers pings, and can go silent while still answering them): rows of targets
//! become sightings of their fills, seen before or after the fill is journaled; an RTDS row and
//! the mined log are one fill; a silent socket is rebuilt within the watchdog time.

use std::time::Instant;

use crate::support::rtds::{FakeRtds, trade_frame};
use crate::support::*;
use alloy::primitives::{Address, B256, address};
use serde_json::{Value, json};

const FAST: Address = address!("fa57fa57fa57fa57fa57fa57fa57fa57fa57fa57");
const OTHER: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");
const SENDER: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const STALE_S: u64 = 2;

fn staged(d: &Daemon) -> i64 {
    let c = rusqlite::Connection::open(d.dir.join("journal.db")).unwrap();
    c.query_row("SELECT COUNT(*) FROM rtds_staged", [], |r| r.get(0)).unwrap_or(-1)
}

fn row_of(d: &Daemon, tx: B256) -> Option<Value> {
    d.trades().into_iter().find(|r| r["fill"].as_str().is_some_and(|f| f.starts_with(&tx.to_string())))
}

fn sources(row: &Value) -> Vec<String> {
    row["sightings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().split('@').next().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_rtds_when_target_rows_stream_then_they_are_sightings_of_the_fill_and_a_silent_socket_is_rebuilt() {
    let anvil = Anvil::start().await;
    let rtds = FakeRtds::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(FAST, "fast", true)], 0.1));
    for (k, v) in [
        ("POLYCOPY_DETECTION__RTDS", "true".to_owned()),
        ("POLYCOPY_DETECTION__RTDS_URL", rtds.url.clone()),
        ("POLYCOPY_DETECTION__RTDS_STALE_S", STALE_S.to_string()),
    ] {
        d.env.push((k.to_owned(), v));
    }
    d.start();
    d.wait_live().await;
    // The primary socket and the standby, each subscribed.
    wait_for(20, "two subscribed sockets", async || (rtds.subscriptions() >= 2).then_some(())).await;
    let fast = FAST.to_string().to_lowercase();

    // RTDS first: the row waits for its fill, which is in the pool, not yet mined.
    anvil.raw("evm_setAutomine", json!([false])).await;
    let fill = Fill::v2(1, FAST, OTHER, true, 7, 100 * ONE, 40 * ONE);
    let tx: B256 = serde_json::from_value(
        anvil
            .raw(
                "eth_sendTransaction",
                json!([{"from": SENDER, "to": fill.exchange, "data": fill.calldata(), "gas": "0x100000"}]),
            )
            .await,
    )
    .unwrap();
    rtds.push(&trade_frame("0x2222222222222222222222222222222222222222", "7", "BUY", "100", &tx.to_string()));
    rtds.push(&trade_frame(&fast, "7", "BUY", "100", &tx.to_string()));
    // Both sockets deliver the row: one staged sighting; the other wallet's row is not ours.
    wait_for(20, "the staged RTDS row", async || (staged(&d) == 1).then_some(())).await;
    anvil.mine(1).await;
    anvil.raw("evm_setAutomine", json!([true])).await;
    let row = wait_for(20, "the fill with its RTDS sighting", async || {
        row_of(&d, tx).filter(|r| r["status"] == "executed" && r["sightings"].as_array().unwrap().len() == 2)
    })
    .await;
    assert_eq!(sources(&row), vec!["rtds", "chain"], "one fill, both sightings: {row}");
    assert_eq!(d.trades().len(), 1, "the RTDS row is no fill of its own");
    assert_eq!(staged(&d), 0);

    // The chain first: a later RTDS row is linked to the journaled fill directly.
    let (_, tx2) = anvil.emit(&Fill::v2(2, FAST, OTHER, true, 8, 50 * ONE, 25 * ONE)).await;
    wait_for(20, "the second fill", async || row_of(&d, tx2).filter(|r| r["status"] != "pending")).await;
    rtds.push(&trade_frame(&fast, "8", "BUY", "50", &tx2.to_string()));
    let row = wait_for(20, "the late RTDS sighting", async || {
        row_of(&d, tx2).filter(|r| r["sightings"].as_array().unwrap().len() == 2)
    })
    .await;
    let mut both = sources(&row);
    both.sort();
    assert_eq!(both, vec!["chain", "rtds"], "{row}");

    // Silence on both sockets while they still answer pings: each is rebuilt within the watchdog time.
    let before = rtds.connections();
    let t0 = Instant::now();
    rtds.freeze_open();
    wait_for(20, "both sockets rebuilt", async || (rtds.connections() >= before + 2).then_some(())).await;
    let took = t0.elapsed().as_secs_f64();
    assert!(took <= STALE_S as f64 + 2.0, "rebuilt after {took:.1} s; the watchdog is {STALE_S} s");
    assert!(d.log().contains("rebuilding the socket"), "the rebuild is logged");
    assert_eq!(d.stop().code(), Some(0));
}
