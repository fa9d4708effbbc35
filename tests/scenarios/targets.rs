//! Per-target copy quality, live: two targets, the figures in `status --json`, `/targets` and
//! `/metrics` match what the journal says happened (hand-computed below).

use crate::support::telegram::FakeTelegram;
use crate::support::*;
use alloy::primitives::{Address, address};
use serde_json::Value;

const A: Address = address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
const B: Address = address!("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
const C: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");
const TOKEN: &str = "123456789:TEST-SECRET-TOKEN-abcdef";
const OP: i64 = 1001;

fn quality(st: &Value, label: &str) -> Value {
    st["targets"].as_array().unwrap().iter().find(|t| t["label"] == label).unwrap()["quality"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_target_quality_when_two_targets_then_status_telegram_and_metrics_match_the_journal() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d =
        Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "whale", true), (B, "shark", true)], 0.1));
    d.with_telegram(&tg, &OP.to_string());
    // Paper fills 1 % against us, so our price differs from the target's by exactly 100 bps.
    for (k, v) in [("POLYCOPY_PAPER__SLIPPAGE_BPS", "100"), ("POLYCOPY_ALERTS__CHECK_EVERY_S", "1")] {
        d.env.push((k.to_owned(), v.to_owned()));
    }
    d.start();
    d.wait_live().await;
    // whale buys 100 at 0.50 (we: 10 at 0.505) and sells all at 0.60 (we: 10 at 0.594);
    // shark sells a token we never held (refused: no_position).
    anvil.emit(&Fill::v2(1, A, C, true, 7, 100 * ONE, 50 * ONE)).await;
    wait_for(20, "the buy", async || (with_status(&d.trades(), "executed").len() == 1).then_some(())).await;
    anvil.emit(&Fill::v2(2, A, C, false, 7, 100 * ONE, 60 * ONE)).await;
    anvil.emit(&Fill::v2(3, B, C, false, 9, 100 * ONE, 60 * ONE)).await;
    wait_for(20, "all decided", async || {
        let t = d.trades();
        (t.len() == 3 && t.iter().all(|r| r["status"] != "pending")).then_some(())
    })
    .await;

    let st = d.status();
    let whale = quality(&st, "whale");
    assert_eq!(whale["copies"], 2, "{whale}");
    assert_eq!(whale["refusals"], serde_json::json!({}), "{whale}");
    assert_eq!(whale["slippage_bps"], 100, "{whale}");
    // Ours: 5.94 - 5.05; the whale's own on the same fills: 60 - 50.
    assert_eq!(
        (whale["our_realized_usdc"].as_str(), whale["target_realized_usdc"].as_str()),
        (Some("0.89"), Some("10"))
    );
    assert!(whale["detection_ms"].as_i64().is_some_and(|ms| ms >= 0), "{whale}");
    assert!(whale["last_seen_ms"].as_i64().is_some(), "{whale}");
    let shark = quality(&st, "shark");
    assert_eq!(shark["copies"], 0, "{shark}");
    assert_eq!(shark["refusals"], serde_json::json!({"no_position": 1}), "{shark}");
    assert_eq!(shark["slippage_bps"], Value::Null, "no copy, no slippage");

    let before = tg.sent_to(OP).len();
    tg.inject_message(OP, "/targets");
    let reply = wait_for(20, "the /targets reply", async || {
        tg.sent_to(OP)[before..].iter().find(|m| m.text.contains("fills since start")).cloned()
    })
    .await;
    assert!(reply.text.contains("2 copies, 0 refused; slippage 100 bps"), "{}", reply.text);
    assert!(reply.text.contains("P&L ours 0.89 USDC vs its 10 USDC"), "{}", reply.text);
    assert!(reply.text.contains("0 copies, 1 refused (most: no_position 1)"), "{}", reply.text);

    let metrics = wait_for(20, "the per-target series", async || {
        let (_, body) = crate::support::http::http_get(&d.http_base().await, "/metrics").await;
        body.contains("polycopy_target_copies{target=\"whale\"} 2").then_some(body)
    })
    .await;
    for want in [
        "polycopy_target_refusals{target=\"shark\"} 1",
        "polycopy_target_slippage_bps{target=\"whale\"} 100",
        "polycopy_target_realized_pnl_usdc{target=\"whale\",whose=\"ours\"} 0.89",
        "polycopy_target_realized_pnl_usdc{target=\"whale\",whose=\"target\"} 10",
    ] {
        assert!(metrics.contains(want), "missing {want}");
    }
}
