//! End to end against a real anvil node: exactly the enabled targets' own fills are copied, once
//! each, with the right side, token, size and price; proportional exits read the chain.

use crate::support::*;
use alloy::primitives::{Address, address};
use serde_json::{Value, json};

const A: Address = address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"); // enabled target
const B: Address = address!("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"); // disabled target
const S: Address = address!("5555555555555555555555555555555555555555"); // a stranger
const C1: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1"); // counterparties
const C2: Address = address!("c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2");

fn row(rows: &[Value], status: &str) -> Vec<(String, String, String, String, String, String)> {
    with_status(rows, status)
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
            (s("side"), s("token_id"), s("target_shares"), s("target_price"), s("shares"), s("price"))
        })
        .collect()
}

/// Maker and taker fills of an enabled target in both layouts, next to a disabled target's, a
/// stranger's and the counterparties' events naming our target as taker: only the target's own
/// fills are journaled and copied, as the hand-computed table says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_copy_when_targets_rest_and_take_then_only_their_own_fills_are_copied() {
    let Running { anvil, dir: _dir, mut d } = running(&wallets(&[(A, "whale", true), (B, "off", false)], 0.1)).await;

    // 1. V2, A rests: buys 100 of token 1001 for 50 (0.5); the taker was C1.
    anvil.emit(&Fill::v2(1, A, C1, true, 1001, 100 * ONE, 50 * ONE)).await;
    // 2. V2, A takes: buys 50 of 1002 for 30 (0.6) against two resting sellers, in one block:
    //    A's taker event (taker = exchange) plus C1's and C2's maker events that name A as taker.
    anvil
        .emit_block(&[
            Fill::v2(2, C1, A, false, 1002, 20 * ONE, 12 * ONE),
            Fill::v2(3, C2, A, false, 1002, 30 * ONE, 18 * ONE),
            Fill::v2(4, A, V2_EXCHANGE, true, 1002, 50 * ONE, 30 * ONE),
        ])
        .await;
    // 3. V1, A rests: buys 100 of 1003 for 35 (0.35).
    anvil.emit(&Fill::v1(5, A, C2, true, 1003, 100 * ONE, 35 * ONE)).await;
    // 4. The disabled target and a stranger trade: never copied.
    anvil.emit(&Fill::v2(6, B, C1, true, 1001, 100 * ONE, 50 * ONE)).await;
    anvil.emit(&Fill::v1(7, S, C1, true, 1001, 100 * ONE, 50 * ONE)).await;
    // 5. V1, A takes: sells 50 of 1001 for 30 (0.6); the maker side was C1 buying (names A as taker).
    anvil
        .emit_block(&[
            Fill::v1(8, C1, A, true, 1001, 50 * ONE, 30 * ONE),
            Fill::v1(9, A, crate::support::V1_EXCHANGE, false, 1001, 50 * ONE, 30 * ONE),
        ])
        .await;

    let rows = wait_for(20, "4 executed copies", async || {
        let rows = d.trades();
        (with_status(&rows, "executed").len() >= 4).then_some(rows)
    })
    .await;
    let s = |x: &str| x.to_owned();
    // (side, token, target shares, target price, our shares, our price). Multiplier 0.1, lots of 0.01.
    // The exit: A held 100 of 1001 (observed) and sold 50 → we sell half of our 10.
    let want = vec![
        (s("BUY"), s("1001"), s("100"), s("0.5"), s("10"), s("0.5")),
        (s("BUY"), s("1002"), s("50"), s("0.6"), s("5"), s("0.6")),
        (s("BUY"), s("1003"), s("100"), s("0.35"), s("10"), s("0.35")),
        (s("SELL"), s("1001"), s("50"), s("0.6"), s("5"), s("0.6")),
    ];
    assert_eq!(row(&rows, "executed"), want);
    assert_eq!(rows.len(), 4, "only A's own fills are journaled: {rows:#?}");
    assert!(rows.iter().all(|r| r["wallet"] == format!("{A:#x}")));
    let roles: Vec<&str> = rows.iter().map(|r| r["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["maker", "taker", "maker", "taker"]);

    let st = d.status();
    let positions = st["positions"].as_array().unwrap();
    let pos = |t: &str| positions.iter().find(|p| p["token_id"] == t).map(|p| p["shares"].as_str().unwrap().to_owned());
    assert_eq!(pos("1001").as_deref(), Some("5"));
    assert_eq!(pos("1002").as_deref(), Some("5"));
    assert_eq!(pos("1003").as_deref(), Some("10"));
    assert_eq!(st["realized_today_usdc"], "0.5"); // sold 5 at 0.6 bought at 0.5

    assert!(d.stop().success());
    assert!(d.log().contains("stopped"));
}

/// A target sells 40% of its on-chain balance (read at the previous block from a Conditional Tokens
/// stand-in): we sell 40% of ours. Then it sells everything: we sell what we hold and no more; a
/// further sell finds nothing to sell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_sell_when_target_sells_part_of_its_balance_then_we_sell_the_same_fraction() {
    let anvil = Anvil::start().await;
    anvil.install_balances().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "whale", true)], 0.1));
    d.start();
    d.wait_live().await;
    assert!(d.log().contains("journal opened: synced at checkpoints"), "paper: {}", d.log());

    // A buys 100 → we buy 10. On chain A holds 1000 (it had more from elsewhere).
    anvil.emit(&Fill::v2(1, A, C1, true, 77, 100 * ONE, 40 * ONE)).await;
    wait_for(20, "the buy", async || (with_status(&d.trades(), "executed").len() == 1).then_some(())).await;
    anvil.set_balance(A, 77, 1000 * ONE).await;
    // A sells 400 of its 1000 (40%) → we sell 4 of our 10.
    anvil.emit(&Fill::v2(2, A, C1, false, 77, 400 * ONE, 200 * ONE)).await;
    let rows = wait_for(20, "the 40% sell", async || {
        let r = d.trades();
        (with_status(&r, "executed").len() == 2).then_some(r)
    })
    .await;
    assert_eq!(rows[1]["side"], "SELL");
    assert_eq!(rows[1]["shares"], "4");
    // A sells 600 with 600 left (all): we sell our remaining 6, not 60.
    anvil.set_balance(A, 77, 600 * ONE).await;
    anvil.emit(&Fill::v2(3, A, C1, false, 77, 600 * ONE, 300 * ONE)).await;
    let rows = wait_for(20, "the full exit", async || {
        let r = d.trades();
        (with_status(&r, "executed").len() == 3).then_some(r)
    })
    .await;
    assert_eq!(rows[2]["shares"], "6");
    // Another sell: we hold nothing.
    anvil.set_balance(A, 77, 50 * ONE).await;
    anvil.emit(&Fill::v2(4, A, C1, false, 77, 50 * ONE, 25 * ONE)).await;
    let rows = wait_for(20, "the rejected sell", async || {
        let r = d.trades();
        (r.len() == 4 && r[3]["status"] == "rejected").then_some(r)
    })
    .await;
    assert_eq!(rows[3]["reason"], "no_position");
    assert!(d.status()["positions"].as_array().unwrap().is_empty());
}

/// Exits are exempt from the frequency limits and do not use up their budget: with two copies an
/// hour, a BUY, its exit, and another BUY are all copied; a third BUY is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_frequency_when_a_target_exits_then_the_exit_uses_none_of_its_buys_budget() {
    let anvil = Anvil::start().await;
    anvil.install_balances().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = json!({
        "defaults": {"sizing": {"mode": "multiplier", "multiplier": 0.1}},
        "wallets": [{"address": A.to_string(), "label": "whale", "max_trades_per_hour": 2}],
    });
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &rules);
    d.start();
    d.wait_live().await;
    // One at a time: the copier decides fills of different tokens side by side.
    let decided = async |n: usize| {
        wait_for(20, &format!("{n} decisions"), async || {
            let r = d.trades();
            (r.len() == n && r.iter().all(|r| r["status"] != "pending")).then_some(r)
        })
        .await
    };
    anvil.emit(&Fill::v2(1, A, C1, true, 77, 100 * ONE, 40 * ONE)).await;
    decided(1).await;
    anvil.set_balance(A, 77, 100 * ONE).await;
    anvil.emit(&Fill::v2(2, A, C1, false, 77, 100 * ONE, 50 * ONE)).await;
    decided(2).await;
    anvil.emit(&Fill::v2(3, A, C1, true, 78, 100 * ONE, 40 * ONE)).await;
    decided(3).await;
    anvil.emit(&Fill::v2(4, A, C1, true, 79, 100 * ONE, 40 * ONE)).await;
    let rows = decided(4).await;
    let decided: Vec<(&str, &str)> =
        rows.iter().map(|r| (r["side"].as_str().unwrap(), r["status"].as_str().unwrap())).collect();
    assert_eq!(decided, [("BUY", "executed"), ("SELL", "executed"), ("BUY", "executed"), ("BUY", "rejected")]);
    assert_eq!(rows[3]["reason"], "trade_rate", "{:?}", rows[3]);
}

/// Two targets copied into the same outcome: one target's full exit sells only what its own
/// copies bought; the other's holding is left for its own exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_sell_when_two_targets_hold_one_outcome_then_each_exit_sells_only_its_own_copies() {
    let anvil = Anvil::start().await;
    anvil.install_balances().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "small", true), (B, "big", true)], 0.1));
    d.start();
    d.wait_live().await;

    // A buys 100 → we buy 10; B buys 500 → we buy 50. We hold 60.
    anvil.emit(&Fill::v2(1, A, C1, true, 77, 100 * ONE, 40 * ONE)).await;
    anvil.emit(&Fill::v2(2, B, C1, true, 77, 500 * ONE, 200 * ONE)).await;
    wait_for(20, "both buys", async || (with_status(&d.trades(), "executed").len() == 2).then_some(())).await;
    // A sells all it had: we sell A's 10, not our 60.
    anvil.set_balance(A, 77, 100 * ONE).await;
    anvil.emit(&Fill::v2(3, A, C1, false, 77, 100 * ONE, 50 * ONE)).await;
    let rows = wait_for(20, "A's exit", async || {
        let r = d.trades();
        (with_status(&r, "executed").len() == 3).then_some(r)
    })
    .await;
    assert_eq!((rows[2]["side"].as_str(), rows[2]["shares"].as_str()), (Some("SELL"), Some("10")), "{:?}", rows[2]);
    // A sells again: none of its copies is left, B's are not A's to sell.
    anvil.set_balance(A, 77, 20 * ONE).await;
    anvil.emit(&Fill::v2(4, A, C1, false, 77, 20 * ONE, 10 * ONE)).await;
    let rows = wait_for(20, "A's second sell refused", async || {
        let r = d.trades();
        (r.len() == 4 && r[3]["status"] == "rejected").then_some(r)
    })
    .await;
    assert_eq!(rows[3]["reason"], "no_position");
    // B sells half of its 500: we sell half of B's 50.
    anvil.set_balance(B, 77, 500 * ONE).await;
    anvil.emit(&Fill::v2(5, B, C1, false, 77, 250 * ONE, 125 * ONE)).await;
    let rows = wait_for(20, "B's half exit", async || {
        let r = d.trades();
        (with_status(&r, "executed").len() == 4).then_some(r)
    })
    .await;
    assert_eq!(rows[4]["shares"], "25", "{:?}", rows[4]);
    let pos = d.status()["positions"].clone();
    assert_eq!(pos[0]["shares"], "25", "{pos}");
    assert!(d.stop().success());
}

/// A V3-market target's SELL is sized from its PositionManager balance, not from Conditional Tokens
/// (where it holds nothing) nor from its observed fills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_sell_when_v3_market_then_sized_from_the_position_manager() {
    let anvil = Anvil::start().await;
    anvil.install_balances().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "whale", true)], 0.1));
    d.start();
    d.wait_live().await;
    let v3 = |order, buy, shares, usdc| Fill { exchange: V3_EXCHANGE, ..Fill::v2(order, A, C1, buy, 88, shares, usdc) };
    // A buys 100 on the V3 exchange → we buy 10. It holds 200 in the PositionManager, 0 in CTF.
    anvil.emit(&v3(1, true, 100 * ONE, 50 * ONE)).await;
    wait_for(20, "the buy", async || (with_status(&d.trades(), "executed").len() == 1).then_some(())).await;
    anvil.set_balance_in(POSITION_MANAGER, A, 88, 200 * ONE).await;
    // A sells 50 of its 200 (25 %) → we sell 2.5 of our 10 (observed fills would say 50 %).
    anvil.emit(&v3(2, false, 50 * ONE, 25 * ONE)).await;
    let rows = wait_for(20, "the sell", async || {
        let r = d.trades();
        (r.len() == 2 && r[1]["status"] != "pending").then_some(r)
    })
    .await;
    assert_eq!(
        (rows[1]["status"].as_str(), rows[1]["shares"].as_str()),
        (Some("executed"), Some("2.5")),
        "{}",
        rows[1]
    );
}
