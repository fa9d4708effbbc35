//! Live trading against a real anvil node and a fake CLOB that checks HMAC headers and order
//! signatures like the real one: one signed V2 order per copied fill, the right outcome in the
//! journal for every answer the exchange gives, never a second order for a fill, and `doctor`.

use std::time::Duration;

use crate::support::clob::Play;
use crate::support::live::*;
use crate::support::*;
use serde_json::{Value, json};
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_target_buys_then_one_signed_v2_order_recovers_to_our_signer() {
    let mut l = live().await;
    start_live(&mut l).await;
    assert!(l.d.log().contains("LIVE trading"), "{}", l.d.log());
    // A signed order that left survives a power loss: every commit is synced (fsync) to disk.
    assert!(l.d.log().contains("journal opened: every commit synced to disk"), "{}", l.d.log());
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    l.anvil.emit(&buy(2, NEG_TOKEN)).await;
    wait_for(30, "two executions", async || (with_status(&l.d.trades(), "executed").len() == 2).then_some(())).await;
    assert!(l.clob.refused().is_empty(), "the fake refused: {:?}", l.clob.refused());
    let mut orders = l.clob.orders();
    orders.sort_by(|a, b| a.token.cmp(&b.token));
    assert_eq!(orders.len(), 2);
    for (o, token, neg) in [(&orders[0], STD_TOKEN, false), (&orders[1], NEG_TOKEN, true)] {
        assert_eq!(o.token, token.to_string());
        assert_eq!(o.side, "BUY");
        assert_eq!(o.maker, SIGNER, "EOA: the signer is the funder");
        assert!((o.shares - 10.0).abs() < 1e-9, "{o:?}");
        assert!((o.price - 0.51).abs() < 1e-9, "limit = 0.50 + 2% on the 0.01 tick: {o:?}");
        assert_eq!((o.order_type.as_str(), o.expiration), ("FAK", 0), "FAK by default, no expiry");
        assert_eq!(o.neg_risk, neg, "verified under the {} exchange's domain", if neg { "NegRisk V2" } else { "V2" });
    }
    assert_eq!(l.clob.posts().len(), 2);
    let rows = l.d.trades();
    for r in with_status(&rows, "executed") {
        assert_eq!((r["shares"].as_str(), r["price"].as_str()), (Some("10"), Some("0.51")), "{r}");
    }
    assert!(orders_in_journal(&l.d).iter().all(|(_, s, posts)| s == "matched" && *posts == 1));
}

/// A copy whose value has fractional cents (9.87 shares at 0.51 is 5.0337 pUSD): the FAK BUY carries a
/// whole-cent pUSD amount, and so does the full exit that follows, so the real CLOB's 2-decimal rule
/// never refuses them (the fake enforces it). Neither is cut to a whole-cent size: the BUY copies
/// 9.87 shares, and the exit sells all 9.87, leaving nothing behind. The limit is never passed and
/// the journal books what the exchange matched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_copy_value_has_fractional_cents_then_market_orders_carry_whole_cents() {
    let mut l = live().await;
    l.clob.edit_token(STD_TOKEN, |t| t.min_size = "1");
    start_live(&mut l).await;
    l.anvil.emit(&Fill::v2(1, A, C, true, STD_TOKEN, 98_700_000, 49_350_000)).await;
    wait_for(30, "the buy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    // The target sells everything: so do we, all 9.87 shares at a limit of 0.49 (4.8363 pUSD).
    l.anvil.emit(&Fill::v2(2, A, C, false, STD_TOKEN, 98_700_000, 49_350_000)).await;
    let rows = wait_for(30, "the sell to be decided", async || {
        let t = l.d.trades();
        (t.len() == 2 && t[1]["status"] != "pending").then_some(t)
    })
    .await;
    assert_eq!(rows[1]["status"], "executed", "{}", rows[1]);
    assert!(l.clob.refused().is_empty(), "the fake refused: {:?}", l.clob.refused());
    let mut orders = l.clob.orders();
    orders.sort_by(|a, b| a.side.cmp(&b.side));
    let (buy, sell) = (&orders[0], &orders[1]);
    for o in [buy, sell] {
        assert!((o.shares - 9.87).abs() < 1e-9, "the whole size: {o:?}");
    }
    assert_eq!(buy.side, "BUY");
    assert!(buy.price <= 0.51 + 1e-9, "never above 0.51: {buy:?}");
    assert_eq!(sell.side, "SELL");
    assert!(sell.price >= 0.49 - 1e-9, "never below 0.49: {sell:?}");
    let rows = l.d.trades();
    // Booked as the exchange answered: the BUY paid at most its signed 5.03, the SELL got at least
    // 9.87 × 0.49; nothing is left of the position.
    let usdc = |r: &Value| r["usdc"].as_str().unwrap().parse::<f64>().unwrap();
    assert!(rows[0]["shares"] == "9.87" && usdc(&rows[0]) <= 5.03, "{}", rows[0]);
    assert!(rows[1]["shares"] == "9.87" && usdc(&rows[1]) >= 4.8363, "{}", rows[1]);
}

/// A copy worth just over 1 USDC at its approved limit is worth 0.99 pUSD once its limit is on the
/// tick and its pUSD in whole cents: the real CLOB refuses a marketable BUY under 1 pUSD (the fake
/// does too). It is refused here as `below_minimum`, never sent, and never counted toward the
/// error breaker: five of them leave trading active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_market_buy_would_spend_under_one_pusd_then_refused_before_sending() {
    let mut l = live().await;
    l.clob.edit_token(STD_TOKEN, |t| t.min_size = "1");
    l.d.write_wallets(&json!({
        "defaults": {"sizing": {"mode": "fixed_usdc", "usdc": 1}},
        "wallets": [{"address": A.to_string(), "label": "whale", "enabled": true}],
    }));
    start_live(&mut l).await;
    // 7.69 shares (1 USDC at 0.13) at a limit of 0.1326, 1.0197 USDC: on a 0.01 tick, 0.13 and 0.99 pUSD.
    for order in 1..=5 {
        l.anvil.emit(&Fill::v2(order, A, C, true, STD_TOKEN, 100 * ONE, 13 * ONE)).await;
    }
    let rows = wait_for(30, "the five copies decided", async || {
        let t = l.d.trades();
        (t.len() == 5 && t.iter().all(|r| r["status"] != "pending")).then_some(t)
    })
    .await;
    for r in &rows {
        assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("rejected"), Some("below_minimum")), "{r}");
    }
    assert!(l.clob.posts().is_empty(), "nothing reached the CLOB: {:?}", l.clob.refused());
    assert_eq!(l.d.status()["breaker"]["state"], "active");
}

/// A BUY answered `matched` with an empty pUSD amount (read as 0) is not booked as shares for
/// nothing: the order is looked up and booked at its own price, 10 shares for 5.10 pUSD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_match_is_answered_without_its_pusd_then_it_is_booked_at_the_orders_price() {
    let mut l = live().await;
    l.clob.script(&[Play::FillEmptyMaking]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    let rows = wait_for(30, "the copy decided", async || {
        let t = l.d.trades();
        (t.len() == 1 && t[0]["status"] != "pending").then_some(t)
    })
    .await;
    assert_eq!(rows[0]["status"], "executed", "{}", rows[0]);
    assert_eq!((rows[0]["shares"].as_str(), rows[0]["usdc"].as_str()), (Some("10"), Some("5.1")), "{}", rows[0]);
    assert_eq!(l.clob.posts().len(), 1, "looked up, never sent again");
}

/// Each scripted answer ends in its journal state and message, with the expected number of POSTs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_exchange_answers_each_way_then_journal_and_post_counts_match() {
    let mut l = live().await;
    start_live(&mut l).await;
    // (plays, expected status, reason, POSTs, our shares, least wait between the POSTs in ms)
    let cases: Vec<(Vec<Play>, &str, Option<&str>, usize, Option<&str>, u64)> = vec![
        (vec![Play::Fill], "executed", None, 1, Some("10"), 0),
        (vec![Play::Partial(40)], "executed", None, 1, Some("4"), 0),
        (vec![Play::NoLiquidity], "rejected", Some("no_liquidity"), 1, None, 0),
        (vec![Play::Status(425, "too early"), Play::Fill], "executed", None, 2, Some("10"), 90),
        // live.rate_limit_wait_ms = 700
        (vec![Play::Status(429, "Too Many Requests"), Play::Fill], "executed", None, 2, Some("10"), 650),
        (vec![Play::Status(503, "trading is cancel-only"); 3], "rejected", Some("trading_paused"), 3, None, 90),
        // Last: a BUY refused for the balance moves trading to reducing (its own scenario below).
        (
            vec![Play::Status(400, "not enough balance / allowance")],
            "rejected",
            Some("insufficient_balance"),
            1,
            None,
            0,
        ),
    ];
    for (i, (plays, status, reason, posts, shares, min_gap_ms)) in cases.into_iter().enumerate() {
        let before = l.clob.posts().len();
        l.clob.script(&plays);
        let n = i + 1;
        l.anvil.emit(&buy(u8::try_from(n).unwrap(), STD_TOKEN)).await;
        let row = wait_for(30, &format!("case {n}"), async || {
            let rows = l.d.trades();
            rows.get(i).filter(|r| r["status"] != "pending").cloned()
        })
        .await;
        assert_eq!(row["status"].as_str(), Some(status), "case {n}: {row}");
        assert_eq!(row["reason"].as_str(), reason, "case {n}: {row}");
        if let Some(s) = shares {
            assert_eq!(row["shares"].as_str(), Some(s), "case {n}: {row}");
        }
        let sent = &l.clob.posts()[before..];
        assert_eq!(sent.len(), posts, "case {n}: POSTs");
        for w in sent.windows(2) {
            let gap = w[1].0 - w[0].0;
            assert!(gap >= Duration::from_millis(min_gap_ms), "case {n}: waited only {gap:?} before sending again");
        }
        // The same signed order every time: one id per fill.
        let ids: std::collections::HashSet<_> = sent.iter().map(|(_, id)| id.clone()).collect();
        assert_eq!(ids.len(), 1, "case {n}");
    }
    assert!(l.clob.refused().is_empty(), "{:?}", l.clob.refused());
    assert!(l.clob.cancels().is_empty(), "a FAK order given up cannot rest: nothing to cancel");
    // The balance refusal is an alert: an account problem, not the order's.
    wait_for(10, "the balance alert", async || {
        l.d.events("error").into_iter().find(|e| e.contains("insufficient_balance"))
    })
    .await;
}

/// The funder's pUSD runs out: the BUY the exchange refuses for its balance moves trading to
/// reducing (said, with its cause), not toward the error streak's halt, so the targets' exits are
/// still copied while every later BUY is refused before it is sent; a resume after funding trades
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_buy_is_refused_for_the_balance_then_reducing_and_exits_still_copied() {
    let mut l = live().await;
    // A single counted error would halt: the refusal must not count as one.
    l.d.start_with(&[("POLYCOPY_RISK__MAX_CONSECUTIVE_ERRORS", "1")]);
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the first copy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    l.clob.script(&[Play::Status(400, "not enough balance / allowance")]);
    l.anvil.emit(&buy(2, NEG_TOKEN)).await;
    let b = wait_for(20, "reducing", async || {
        let s = l.d.status();
        (s["breaker"]["state"] == "reducing").then(|| s["breaker"].clone())
    })
    .await;
    assert_eq!((b["code"].as_str(), b["tripped"].as_bool()), (Some("insufficient_balance"), Some(false)), "{b}");
    assert!(b["reason"].as_str().unwrap().contains("exits are still copied"), "{b}");
    wait_for(10, "the transition reported", async || {
        l.d.events("breaker_tripped").into_iter().find(|e| e.contains("insufficient_balance"))
    })
    .await;
    // The target exits the first market: copied. It buys again: refused before sending.
    l.anvil.emit(&Fill::v2(3, A, C, false, STD_TOKEN, 100 * ONE, 50 * ONE)).await;
    l.anvil.emit(&buy(4, STD_TOKEN)).await;
    let rows = wait_for(20, "both decided", async || {
        let t = l.d.trades();
        (t.len() == 4 && t.iter().all(|r| r["status"] != "pending")).then_some(t)
    })
    .await;
    assert_eq!((rows[2]["side"].as_str(), rows[2]["status"].as_str()), (Some("SELL"), Some("executed")), "{}", rows[2]);
    assert_eq!((rows[3]["status"].as_str(), rows[3]["reason"].as_str()), (Some("rejected"), Some("reducing")));
    assert_eq!(l.clob.posts().len(), 3, "the last BUY never reached the CLOB");
    assert_eq!(l.d.status()["breaker"]["state"], "reducing", "not halted by the refusal");
    // Funded: the operator resumes, and BUYs are copied again.
    let (code, _, err) = l.d.run_cli(&["resume"]);
    assert_eq!(code, 0, "{err}");
    l.anvil.emit(&buy(5, STD_TOKEN)).await;
    wait_for(20, "a BUY after the resume", async || (with_status(&l.d.trades(), "executed").len() == 3).then_some(()))
        .await;
}

/// A copy that made no trade (nothing matched, or refused) does not use up the target's budget of
/// copies: with ten minutes between copies, the next BUY right after a FAK that found no liquidity
/// is copied, not refused `min_trade_interval`; after a real copy, the next one is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_copy_finds_no_liquidity_then_the_targets_next_buy_is_not_held_back_by_its_interval() {
    let mut l = live().await;
    let mut w = wallets(&[(A, "whale", true)], 0.1);
    w["wallets"][0]["min_trade_interval_s"] = json!(600);
    l.d.write_wallets(&w);
    start_live(&mut l).await;
    l.clob.script(&[Play::NoLiquidity]);
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    let first =
        wait_for(20, "the first copy", async || l.d.trades().into_iter().next().filter(|r| r["status"] != "pending"))
            .await;
    assert_eq!((first["status"].as_str(), first["reason"].as_str()), (Some("rejected"), Some("no_liquidity")));
    l.anvil.emit(&buy(2, STD_TOKEN)).await;
    let second =
        wait_for(20, "the second copy", async || l.d.trades().into_iter().nth(1).filter(|r| r["status"] != "pending"))
            .await;
    assert_eq!(second["status"].as_str(), Some("executed"), "{second}");
    l.anvil.emit(&buy(3, STD_TOKEN)).await;
    let third =
        wait_for(20, "the third copy", async || l.d.trades().into_iter().nth(2).filter(|r| r["status"] != "pending"))
            .await;
    assert_eq!((third["status"].as_str(), third["reason"].as_str()), (Some("rejected"), Some("min_trade_interval")));
}

/// The exchange takes the order and never answers: the daemon marks it unknown, finds it by lookup,
/// and books it once, without a second POST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_answer_never_comes_then_resolved_by_lookup_exactly_once() {
    let mut l = live().await;
    start_live(&mut l).await;
    l.clob.script(&[Play::Hang]);
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    let row = settled_row(&l.d).await;
    assert_eq!(row["status"].as_str(), Some("executed"), "{row}");
    assert_eq!(l.clob.posts().len(), 1, "never sent again");
    assert!(l.clob.requests("/data/order") >= 1, "looked up");
    assert!(l.d.log().contains("order outcome unknown; looking it up"), "{}", l.d.log());
    assert_eq!(orders_in_journal(&l.d)[0].1, "matched");
}

/// Killed between POST and answer: after a restart the stored order is looked up and booked; no
/// second order is created for the fill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_killed_between_post_and_answer_then_no_second_order_after_restart() {
    let mut l = live().await;
    start_live(&mut l).await;
    l.clob.script(&[Play::Hang]);
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the POST", async || (!l.clob.posts().is_empty()).then_some(())).await;
    l.d.kill9();
    assert_eq!(orders_in_journal(&l.d).len(), 1, "the signed order was stored before it was sent");
    // Halted while down: the order already sent is still resolved (and booked), nothing new leaves.
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "operator"]);
    assert_eq!(code, 3, "no daemon runs: the halt is stored and the exit code says so: {out}{err}");
    assert!(err.contains("no daemon is running on this journal"), "{err}");
    start_live(&mut l).await;
    let row = settled_row(&l.d).await;
    assert_eq!(row["status"].as_str(), Some("executed"), "{row}");
    assert_eq!(l.clob.orders().len(), 1);
    assert_eq!(l.clob.posts().len(), 1, "no second POST");
    assert!(l.d.log().contains("resolving an order stored before the last stop"), "{}", l.d.log());
    l.anvil.emit(&buy(2, STD_TOKEN)).await;
    let row =
        wait_for(20, "the halted copy", async || l.d.trades().into_iter().nth(1).filter(|r| r["status"] != "pending"))
            .await;
    assert_eq!(row["reason"].as_str(), Some("halted"), "{row}");
    assert_eq!(l.clob.posts().len(), 1, "nothing sent while halted");
}

/// A fill older than `max_copy_delay_s` is rejected as stale and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_fill_is_stale_then_no_order_is_sent() {
    let mut l = live().await;
    l.d.set("copy", "max_copy_delay_s = 2");
    start_live(&mut l).await;
    assert!(l.d.stop().success());
    let (block, _) = l.anvil.emit(&buy(1, STD_TOKEN)).await;
    l.anvil.wait_older_than(block, 2).await;
    start_live(&mut l).await;
    let row = settled_row(&l.d).await;
    assert_eq!((row["status"].as_str(), row["reason"].as_str()), (Some("rejected"), Some("stale")), "{row}");
    assert!(l.clob.posts().is_empty());
}

/// The CLOB refuses an order for its tick (the market's tick changed within the minute its rules
/// are cached, as it does near 0 or 1): the market's rules are read again for the next order,
/// not trusted for the rest of the minute with every copy refused the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_an_order_is_refused_for_its_tick_then_the_markets_rules_are_read_again() {
    let mut l = live().await;
    l.clob.script(&[Play::Status(400, "order 0xab breaks minimum tick size rule: 0.001")]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    let first =
        wait_for(20, "the refusal", async || l.d.trades().into_iter().next().filter(|r| r["status"] != "pending"))
            .await;
    assert_eq!((first["status"].as_str(), first["reason"].as_str()), (Some("rejected"), Some("invalid_price")));
    let books = l.clob.requests("/book");
    l.anvil.emit(&buy(2, STD_TOKEN)).await;
    wait_for(20, "the second copy", async || l.d.trades().into_iter().nth(1).filter(|r| r["status"] == "executed"))
        .await;
    assert!(l.clob.requests("/book") > books, "the rules were read again after the tick refusal");
}

fn doctor(d: &Daemon, env: &[(&str, &str)]) -> (i32, Value) {
    let out = d.cmd(&["doctor", "--json"]).envs(env.iter().copied()).output().unwrap();
    let (code, stdout, stderr) = output(out);
    let v = serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("doctor --json: {stdout}\n{stderr}"));
    (code, v)
}

fn verdict<'a>(v: &'a Value, check: &str) -> (&'a str, &'a str) {
    let c = v["checks"].as_array().unwrap().iter().find(|c| c["check"] == check).unwrap();
    (c["verdict"].as_str().unwrap(), c["detail"].as_str().unwrap())
}

/// `doctor` passes a healthy setup and explains, in plain words with the fix, a funder that does
/// not match the signature type, a missing allowance and an unreachable CLOB; live start refuses to
/// run on a failed check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_doctor_when_setup_is_wrong_then_each_problem_is_explained_and_exit_is_nonzero() {
    let mut l = live().await;
    let (code, v) = doctor(&l.d, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(verdict(&v, "clob").0, "ok");
    assert_eq!(verdict(&v, "region").0, "ok");
    assert!(!v.to_string().contains(&KEY[2..]), "the key never appears");
    // The money lifecycle's contracts are checked for code, not trusted; on a test chain a missing
    // one is a warning (on Polygon, a failure).
    assert_eq!(verdict(&v, "redemption").0, "ok", "{v}");
    let (ver, detail) = verdict(&v, "contract: conditional tokens");
    assert_eq!(ver, "warn", "{detail}");
    assert!(detail.contains("holds no code"), "{detail}");
    assert_eq!(verdict(&v, "share approvals").0, "warn", "nothing to ask: {v}");
    l.anvil.install_balances().await;
    // The funder has not let the exchanges move its outcome shares: every exit would be refused.
    let (code, v) = doctor(&l.d, &[]);
    assert_eq!(code, 1, "{v}");
    let (ver, detail) = verdict(&v, "share approvals");
    assert_eq!(ver, "fail", "{v}");
    assert!(detail.contains("every SELL") && detail.contains("setApprovalForAll"), "{detail}");
    // Conditional Tokens with operator approvals; the funder approves both V2 exchanges.
    let standins: Value =
        serde_json::from_str(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contracts/standins.json")))
            .unwrap();
    l.anvil.raw("anvil_setCode", json!([CONDITIONAL_TOKENS, standins["MockCTF"]])).await;
    for exchange in ["0xE111180000d2663C0091e4f400237545B87B996B", "0xe2222d279d744050d28e00520010520000310F59"] {
        let data = format!("0xa22cb465{:0>64}{:0>64}", &exchange[2..], "1");
        l.anvil
            .raw(
                "eth_sendTransaction",
                json!([{"from": format!("{SIGNER:#x}"), "to": format!("{CONDITIONAL_TOKENS:#x}"), "data": data, "gas": "0x200000"}]),
            )
            .await;
    }
    l.anvil.mine(1).await;
    let (code, v) = doctor(&l.d, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(verdict(&v, "share approvals").0, "ok", "{v}");
    assert_eq!(verdict(&v, "contract: conditional tokens").0, "ok");
    assert_eq!(verdict(&v, "contract: V3 position manager").0, "ok");
    let (code, v) = doctor(&l.d, &[("POLYCOPY_LIVE__SIGNATURE_TYPE", "poly_proxy")]);
    let (ver, detail) = verdict(&v, "redemption");
    assert_eq!(ver, "warn", "{v}");
    assert!(detail.contains("not supported") && detail.contains("auto-redeem"), "{detail}");
    let _ = code;

    // The operator's own EOA configured as a Safe funder.
    let funder = format!("{SIGNER:#x}");
    let (code, v) =
        doctor(&l.d, &[("POLYCOPY_LIVE__SIGNATURE_TYPE", "poly_gnosis_safe"), ("POLYCOPY_LIVE__FUNDER", &funder)]);
    assert_eq!(code, 1);
    let (ver, detail) = verdict(&v, "funder");
    assert_eq!(ver, "fail");
    assert!(detail.contains("set live.signature_type = \"eoa\""), "{detail}");

    l.clob.set_allowance("0");
    let (code, v) = doctor(&l.d, &[]);
    assert_eq!(code, 1);
    let (ver, detail) = verdict(&v, "allowances");
    assert_eq!(ver, "fail");
    assert!(detail.contains("missing allowance") && detail.contains("Approve pUSD"), "{detail}");

    // Live start runs the same checks and stops on a failure, as a configuration to fix (78: systemd
    // does not restart it five times over).
    l.d.start();
    let status = l.d.wait_exit().await;
    assert_eq!(status.code(), Some(78), "{}", l.d.log());
    assert!(
        l.d.log().contains("live trading cannot start") && l.d.log().contains("missing allowance"),
        "{}",
        l.d.log()
    );
    l.clob.set_allowance("1000000000");

    let (code, v) = doctor(&l.d, &[("CLOB_HOST", "http://127.0.0.1:9")]);
    assert_eq!(code, 1);
    let (ver, detail) = verdict(&v, "clob");
    assert_eq!(ver, "fail");
    assert!(detail.contains("cannot reach the CLOB") && detail.contains("CLOB_HOST"), "{detail}");
}

/// Live and paper keep separate journals by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_no_db_given_then_live_journal_is_separate_from_paper() {
    let l = live().await;
    let db_of = |mode: &str, paper_var: Option<&str>| {
        let settings = std::fs::read_to_string(l.d.dir.join("polycopy.toml")).unwrap();
        let settings = settings.replace("mode = \"live\"", &format!("mode = \"{mode}\""));
        std::fs::write(l.d.dir.join("mode.toml"), settings).unwrap();
        let mut c = std::process::Command::new(bin());
        c.current_dir(&l.d.dir)
            .args(["--config", "mode.toml", "--wallets", "wallets.json", "check-config", "--json", "--offline"])
            .env_clear()
            .env("POLYCOPY_SYSTEM_CONFIG", "")
            .env("PRIVATE_KEY", KEY);
        if let Some(v) = paper_var {
            c.env("PAPER_TRADING", v);
        }
        let (code, out, err) = output(c.output().unwrap());
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
        (code, v["db_path"].as_str().unwrap().to_owned(), v["mode"].as_str().unwrap().to_owned())
    };
    let paper = (0, "data/polycopy-paper.db".to_owned(), "paper".to_owned());
    let live_db = (0, "data/polycopy-live.db".to_owned(), "live".to_owned());
    assert_eq!(db_of("paper", None), paper);
    assert_eq!(db_of("live", None), live_db);
    // The environment may confirm the mode, never change it: a disagreement is a configuration error.
    assert_eq!(db_of("live", Some("false")), live_db);
    assert_eq!(db_of("paper", Some("false")).0, 78);
    assert_eq!(db_of("live", Some("true")).0, 78);
}

/// A journal that holds paper copies (live.db_path naming the paper journal, `--db`, or a paper
/// backup restored over the live one) is refused by a live daemon before anything is sent: paper
/// positions would count as real exposure, and a target's exit would sell shares never bought.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_the_journal_holds_paper_copies_then_the_start_is_refused() {
    let mut l = live().await;
    let settings = std::fs::read_to_string(l.d.dir.join("polycopy.toml")).unwrap();
    std::fs::write(l.d.dir.join("polycopy.toml"), settings.replace("mode = \"live\"", "mode = \"paper\"")).unwrap();
    let live_env = l.d.env.clone();
    l.d.env.retain(|(k, _)| k != "PAPER_TRADING");
    l.d.start();
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the paper copy", async || {
        l.d.trades().first().and_then(|t| (t["status"] == "executed").then_some(()))
    })
    .await;
    l.d.stop();

    std::fs::write(l.d.dir.join("polycopy.toml"), settings).unwrap();
    l.d.env = live_env;
    l.d.start();
    let status = l.d.wait_exit().await;
    assert_eq!(status.code(), Some(78), "a configuration to fix: systemd does not restart it");
    let log = l.d.log();
    assert!(log.contains("holds 1 paper copies and this daemon trades live"), "{log}");
    assert!(l.clob.orders().is_empty(), "nothing was sent");
}

/// Killed after the exchange's answer was journaled but before the execution was: after a restart
/// the journaled answer is booked as it is, with no lookup and no second POST, even though the
/// target was disabled meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_killed_after_the_answer_then_it_is_booked_from_the_journal() {
    let mut l = live().await;
    l.d.start_with(&[("POLYCOPY_FAULT", "abort_after_order_outcome")]);
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    let status = l.d.wait_exit().await;
    assert!(!status.success(), "the fault aborted the daemon");
    assert_eq!(orders_in_journal(&l.d)[0].1, "matched");
    // The operator disables the target meanwhile: its order is still booked, not dropped.
    l.d.write_wallets(&wallets(&[(A, "whale", false)], 0.1));
    start_live(&mut l).await;
    let row = settled_row(&l.d).await;
    assert_eq!((row["status"].as_str(), row["shares"].as_str()), (Some("executed"), Some("10")), "{row}");
    assert_eq!(l.clob.posts().len(), 1);
    assert_eq!(l.clob.requests("/data/order"), 0, "nothing to look up: the answer was journaled");
}

/// Market metadata from the Gamma API: a copy into a closed market, or a buy into one ending within
/// `copy.min_minutes_to_end`, is held back without an order; copies carry the market's name.
/// A market that resolves settles our position at what a share pays: the position closes, its P&L
/// is realized, reported, and counted in `status` and the daily report.
/// `live.order_type` FOK and GTD reach the exchange as such; a GTD order carries an expiry
/// `live.gtd_expiry_s` out (the fake refuses one under a minute, like the real CLOB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_order_type_set_then_fok_or_gtd_with_expiry_is_sent() {
    for (kind, token) in [("FOK", STD_TOKEN), ("GTD", NEG_TOKEN)] {
        let mut l = live().await;
        l.d.set("live", &format!("order_type = \"{kind}\""));
        start_live(&mut l).await;
        l.anvil.emit(&buy(1, token)).await;
        settled_row(&l.d).await;
        assert!(l.clob.refused().is_empty(), "{kind}: {:?}", l.clob.refused());
        let o = l.clob.orders().pop().unwrap();
        assert_eq!(o.order_type, kind);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        match kind {
            "GTD" => assert!((now + 280..=now + 305).contains(&o.expiration), "expires {} (now {now})", o.expiration),
            _ => assert_eq!(o.expiration, 0),
        }
    }
}

/// A 401 makes the daemon derive its API credentials again and send the same order once more; a
/// second 401 trips the breaker (`auth_error`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_credentials_refused_then_derived_again_then_breaker() {
    let mut l = live().await;
    start_live(&mut l).await;
    let derives = l.clob.requests("/auth/api-key");
    l.clob.script(&[Play::Status(401, "Unauthorized/Invalid api key"), Play::Fill]);
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    let row = settled_row(&l.d).await;
    assert_eq!(row["status"].as_str(), Some("executed"), "{row}");
    assert_eq!(l.clob.posts().len(), 2);
    assert_eq!(l.clob.requests("/auth/api-key"), derives + 1, "credentials derived again once");

    l.clob.script(&[
        Play::Status(401, "Unauthorized/Invalid api key"),
        Play::Status(401, "Unauthorized/Invalid api key"),
    ]);
    l.anvil.emit(&buy(2, STD_TOKEN)).await;
    let b = wait_for(20, "the breaker", async || {
        let s = l.d.status();
        (s["breaker"]["tripped"] == true).then(|| s["breaker"].clone())
    })
    .await;
    assert_eq!(b["code"], "auth_error", "{b}");
    assert_eq!(l.clob.posts().len(), 4);
}

/// With a control socket set in the settings, both modes' daemons would listen on it. The file is
/// switched back to paper while the live daemon, halted, still runs: `resume` and `close` from
/// the file's settings are refused (they would restart or sell real-money trading the operator
/// is moving away from), while `halt` still reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_shared_control_socket_answers_for_the_other_mode_then_resume_and_close_are_refused() {
    let mut l = live().await;
    let sock = l.d.dir.join("control.sock");
    l.d.set_top(&format!("control_socket = \"{}\"", sock.display()));
    start_live(&mut l).await;
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "incident"]);
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(l.d.dir.join("polycopy.toml")).unwrap();
    std::fs::write(l.d.dir.join("polycopy.toml"), text.replace("mode = \"live\"", "mode = \"paper\"")).unwrap();
    // As the operator runs it: the file's settings alone, no journal named.
    let file_says = |args: &[&str]| {
        let out = std::process::Command::new(bin())
            .current_dir(&l.d.dir)
            .args(["--config", "polycopy.toml", "--wallets", "wallets.json"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = file_says(&["resume"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refused") && err.contains("live journal") && err.contains("--db"), "{err}");
    // A close is refused as when the socket follows the journal: the daemon that trades is named.
    let (code, err) = file_says(&["close", "--all"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refused") && err.contains("runs live on the journal") && err.contains("--db"), "{err}");
    // A journal named with a relative --db (as from the journals' directory) is compared as the
    // file it names, not taken to be whatever the daemon trades.
    for args in [&["--db", "paper.db", "resume"][..], &["--db", "paper.db", "close", "--all"][..]] {
        let (code, err) = file_says(args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains("refused") && err.contains("live journal"), "{args:?}: {err}");
    }
    assert_eq!(l.d.status()["breaker"]["state"], "halted", "the live daemon is still halted");
    // The paper journal the file names now exists (the paper daemon about to start on it): a halt
    // the live daemon answers halts it as well, so that its start stays halted.
    let paper = l.d.dir.join("data/polycopy-paper.db");
    drop(polycopy::store::Store::open(&paper).unwrap());
    let (code, err) = file_says(&["halt", "--reason", "again"]);
    assert_eq!(code, 0, "a halt reaches whichever daemon answers: {err}");
    assert!(err.contains("that one is halted too"), "{err}");
    let breaker = polycopy::store::Store::open_existing(&paper).unwrap().breaker().unwrap();
    assert!(breaker.tripped && breaker.reason == "again", "{breaker:?}");
    // status shows the daemon that trades, its mode and journal, with a warning (as when the
    // socket follows the journal), never the idle paper journal as if nothing ran.
    let out = std::process::Command::new(bin())
        .current_dir(&l.d.dir)
        .args(["--config", "polycopy.toml", "--wallets", "wallets.json", "status", "--json"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(v["mode"], "live", "{v}");
    assert_eq!(v["daemon"]["running"], true, "{v}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("the daemon that trades"), "{out:?}");
}

/// A halt whose reason is longer than the control socket reads in one request (a pasted log) is
/// carried out, its reason cut, never refused as unreadable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_halt_when_its_reason_is_very_long_then_it_is_carried_out() {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "whale", true)], 0.1));
    d.start();
    d.wait_live().await;
    let reason = "x".repeat(6_000);
    let (code, out, err) = d.run_cli(&["halt", "--reason", &reason]);
    assert_eq!(code, 0, "{out}{err}");
    let breaker = d.status()["breaker"].clone();
    assert_eq!(breaker["state"], "halted", "{breaker}");
    let stored = breaker["reason"].as_str().unwrap();
    assert!(stored.len() < 600 && stored.ends_with("…(cut)"), "{stored}");
}

/// A CLOB that never answers (its host carries an API key in the path, as a proxy's may): the
/// daemon starts without it, `/health` turns the CLOB check unhealthy once it has been silent
/// for `clob_stale_s` since the start (not "starting" forever), and the key is in neither the
/// health report nor the log, though the transport's error names the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_the_clob_never_answers_then_health_is_unhealthy_without_its_key() {
    const PATH_KEY: &str = "pathKey0123456789abcdef";
    let mut l = live().await;
    l.d.env.retain(|(k, _)| k != "CLOB_HOST");
    // Nothing listens on port 9 (discard): every request fails to connect.
    l.d.env.push(("CLOB_HOST".into(), format!("http://127.0.0.1:9/{PATH_KEY}/")));
    l.d.set("health", "clob_stale_s = 4");
    start_live(&mut l).await;
    let base = l.d.http_base().await;
    let body = wait_for(30, "the CLOB check unhealthy", async || {
        let (_, body) = crate::support::http::http_get(&base, "/health").await;
        let v: Value = serde_json::from_str(&body).ok()?;
        let clob = v["checks"].as_array()?.iter().find(|c| c["name"] == "clob")?.clone();
        (clob["status"] == "unhealthy").then_some(body)
    })
    .await;
    assert!(body.contains("since the start"), "{body}");
    assert!(!body.contains(PATH_KEY), "{body}");
    assert!(!l.d.log().contains(PATH_KEY), "the key in the log");
}

/// The operator goes back to paper while the live journal still holds a position bought with real
/// money: the paper daemon starts (paper is never held hostage) and says, in the log and to the
/// operator, what nothing follows any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_paper_when_the_live_journal_still_holds_positions_then_the_start_says_so() {
    let mut l = live().await;
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(30, "the live copy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    assert!(l.d.stop().success());
    // The live journal moves to where the settings keep it; the paper one starts empty.
    let c = rusqlite::Connection::open(l.d.dir.join("journal.db")).unwrap();
    c.execute("VACUUM INTO ?1", [l.d.dir.join("live.db").to_str().unwrap()]).unwrap();
    drop(c);
    for f in ["journal.db", "journal.db-wal", "journal.db-shm"] {
        let _ = std::fs::remove_file(l.d.dir.join(f));
    }
    l.d.replace_setting("mode = \"live\"", "mode = \"paper\"");
    l.d.set("live", &format!("db_path = \"{}\"", l.d.dir.join("live.db").display()));
    l.d.env.retain(|(k, _)| k != "PAPER_TRADING");
    l.d.start();
    l.d.wait_live().await;
    let told = wait_for(10, "the operator told", async || {
        l.d.events("error").into_iter().find(|m| m.contains("live journal") && m.contains("1 open position"))
    })
    .await;
    assert!(told.contains("cost 5.1 USDC") && told.contains("PAPER"), "{told}");
}

/// A halt asked while a live start still checks a slow exchange (its balance check hangs until its
/// timeout): answered at once and carried out, not "NOT confirmed" behind those checks; the daemon,
/// once up, is halted with that reason and sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_halted_while_the_start_checks_a_slow_exchange_then_answered_and_obeyed() {
    let mut l = live().await;
    l.clob.balance_hang(true);
    l.d.start();
    let dir = l.d.dir.clone();
    wait_for(20, "the control socket bound", async || {
        std::fs::read_dir(&dir).ok()?.flatten().any(|e| e.path().extension().is_some_and(|x| x == "sock")).then_some(())
    })
    .await;
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "slow start"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("still starting"), "answered by the starting daemon: {out}{err}");
    // Still starting: `status` says halted, from the journal, never "active".
    let (_, out, err) = l.d.run_cli(&["status", "--json"]);
    let st: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
    assert_eq!(st["breaker"]["tripped"], true, "{st}");
    l.clob.balance_hang(false);
    l.d.wait_live().await;
    let st = l.d.status();
    assert_eq!(
        (st["breaker"]["tripped"].as_bool(), st["breaker"]["reason"].as_str()),
        (Some(true), Some("slow start"))
    );
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    let r =
        wait_for(20, "the copy decided", async || l.d.trades().into_iter().find(|r| r["status"] != "pending")).await;
    assert_eq!(r["reason"], "halted", "{r}");
    assert!(l.clob.posts().is_empty(), "nothing sent");
}
