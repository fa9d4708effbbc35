//! Redemption on a real node: stand-ins at the real addresses (tests/contracts/Standins.sol) accept
//! the real calls and move balances. A resolved winning position is redeemed once, a losing one
//! costs no transaction, a kill between journaling and sending does not redeem twice, a revert is
//! retried within a budget and reported, and a Safe funder redeems through `execTransaction`
//! signed by its owner.

use crate::support::live::*;
use crate::support::*;
use alloy::primitives::{Address, B256, U256, address};
use alloy::sol;
use alloy::sol_types::SolCall;
use serde_json::{Value, json};

const PUSD: Address = address!("C011a7E12a19f7B1f670d46F03B03f3342E82DFB");
const STD_ADAPTER: Address = address!("AdA100Db00Ca00073811820692005400218FcE1f");
const NEG_ADAPTER: Address = address!("adA2005600Dec949baf300f4C6120000bDB6eAab");
const ROUTER: Address = address!("12121212006e4CD160D18e3f00711DA5c3372600");
/// A V3 position: condition 0x…77 (31 bytes), outcome 0.
const V3_TOKEN: u64 = 0x7700;
/// anvil's second dev account: sets the stand-ins up without touching our signer's nonce.
const SETUP: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

mod ctf {
    alloy::sol! {
        function setBalance(address owner, uint256 id, uint256 value);
        function balanceOf(address owner, uint256 id) returns (uint256);
    }
}
mod erc20 {
    alloy::sol! { function balanceOf(address owner) returns (uint256); }
}
sol! {
    function setMarket(bytes32 conditionId, uint256 t0, uint256 t1, uint256 p0, uint256 p1);
    function setFailing(bool f);
    function calls() returns (uint256);
    function setOwner(address o);
    function nonce() returns (uint256);
    function setPayout(uint256 positionId, uint256 payout);
    function setUnreported(bytes32 conditionId, bool u);
    function setPayouts(bytes32 conditionId, uint256 n0, uint256 n1);
    function setApprovalForAll(address operator, bool approved);
}

fn code(name: &str) -> String {
    let all: Value =
        serde_json::from_str(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contracts/standins.json")))
            .unwrap();
    all[name].as_str().unwrap().to_owned()
}

/// The fake Gamma's condition of a token's market.
fn condition(token: u64) -> B256 {
    B256::from(U256::from(token))
}

async fn send(a: &Anvil, to: Address, data: Vec<u8>) {
    send_as(a, SETUP, to, data).await;
}

/// Sends `data` to `to` from `from` (one of anvil's unlocked dev accounts) and waits for its receipt.
async fn send_as(a: &Anvil, from: &str, to: Address, data: Vec<u8>) {
    let tx: String = serde_json::from_value(
        a.raw("eth_sendTransaction", json!([{"from": from, "to": to, "data": format!("0x{}", alloy::primitives::hex::encode(data)), "gas": "0x200000"}]))
            .await,
    )
    .unwrap();
    wait_for(10, "the setup transaction", async || {
        let r = a.raw("eth_getTransactionReceipt", json!([tx])).await;
        (!r.is_null()).then_some(())
    })
    .await;
}

async fn read(a: &Anvil, to: Address, data: Vec<u8>) -> U256 {
    let out: String = serde_json::from_value(
        a.raw("eth_call", json!([{"to": to, "data": format!("0x{}", alloy::primitives::hex::encode(data))}, "latest"]))
            .await,
    )
    .unwrap();
    U256::from_str_radix(out.trim_start_matches("0x"), 16).unwrap_or_default()
}

async fn install(a: &Anvil) {
    for (at, name) in [
        (CONDITIONAL_TOKENS, "MockCTF"),
        (POSITION_MANAGER, "MockCTF"),
        (PUSD, "MockPUSD"),
        (STD_ADAPTER, "MockAdapter"),
        (NEG_ADAPTER, "MockAdapter"),
        (ROUTER, "MockRouter"),
    ] {
        a.raw("anvil_setCode", json!([at, code(name)])).await;
    }
}

async fn hold(a: &Anvil, owner: Address, token: u64, micros: u64) {
    hold_in(a, CONDITIONAL_TOKENS, owner, token, micros).await;
}

async fn hold_in(a: &Anvil, book: Address, owner: Address, token: u64, micros: u64) {
    let data = ctf::setBalanceCall { owner, id: U256::from(token), value: U256::from(micros) }.abi_encode();
    send(a, book, data).await;
}

async fn market(a: &Anvil, adapter: Address, token: u64, wins: bool) {
    let (p0, p1) = if wins { (ONE, 0) } else { (0, ONE) };
    let t1 = format!("9{token}").parse::<u64>().unwrap();
    let data = setMarketCall {
        conditionId: condition(token),
        t0: U256::from(token),
        t1: U256::from(t1),
        p0: U256::from(p0),
        p1: U256::from(p1),
    }
    .abi_encode();
    send(a, adapter, data).await;
}

async fn calls_to(a: &Anvil, adapter: Address) -> U256 {
    read(a, adapter, callsCall {}.abi_encode()).await
}

async fn pusd_of(a: &Anvil, who: Address) -> U256 {
    read(a, PUSD, erc20::balanceOfCall { owner: who }.abi_encode()).await
}

/// A live daemon redeeming every second, with a winning and a losing position settled.
async fn settled(extra: &[(&str, &str)], fault: Option<&str>) -> Live {
    settled_with(extra, fault, &[]).await
}

/// [`settled`], with the results of the markets of `unreported` tokens not on chain yet when
/// Gamma shows them resolved.
async fn settled_with(extra: &[(&str, &str)], fault: Option<&str>, unreported: &[u64]) -> Live {
    settle(live().await, extra, fault, unreported, false).await
}

/// [`settled`], the daemon reaching the node through a proxy that refuses every gas estimate
/// from the start (before the markets resolve), until told otherwise.
async fn settled_with_estimates_refused(extra: &[(&str, &str)]) -> (Live, crate::support::capped_rpc::CappedRpc) {
    let mut l = live().await;
    let proxy = crate::support::capped_rpc::CappedRpc::start(&l.anvil.http_url(), u64::MAX).await;
    proxy.refuse_estimates(usize::MAX);
    l.d.env.push(("POLYGON_RPC_URL".into(), proxy.url.clone()));
    (settle(l, extra, None, &[], false).await, proxy)
}

/// `l` started with the redemption settings `extra`, two copies held and their markets resolved
/// (after a halt, when `halted`): the standard market's copy wins, the neg-risk one's loses.
async fn settle(l: Live, extra: &[(&str, &str)], fault: Option<&str>, unreported: &[u64], halted: bool) -> Live {
    settle_markets(l, extra, fault, unreported, halted, false).await
}

/// [`settle`], the neg-risk market's copy winning too when `neg_wins`.
async fn settle_markets(
    mut l: Live,
    extra: &[(&str, &str)],
    fault: Option<&str>,
    unreported: &[u64],
    halted: bool,
    neg_wins: bool,
) -> Live {
    install(&l.anvil).await;
    l.d.set("risk", "mark_interval_s = 1");
    for (k, v) in [("CHECK_EVERY_S", "1"), ("RETRY_AFTER_S", "1"), ("CONFIRM_WAIT_S", "10")].iter().chain(extra) {
        l.d.env.push((format!("POLYCOPY_REDEEM__{k}"), (*v).to_owned()));
    }
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    l.anvil.emit(&buy(2, NEG_TOKEN)).await;
    wait_for(30, "two copies", async || (with_status(&l.d.trades(), "executed").len() == 2).then_some(())).await;
    settle_buys_on_chain(&l, &[STD_TOKEN, NEG_TOKEN]).await;
    // What the exchange left us on chain, and how the two markets resolve.
    hold(&l.anvil, SIGNER, STD_TOKEN, 10 * ONE).await;
    hold(&l.anvil, SIGNER, NEG_TOKEN, 10 * ONE).await;
    market(&l.anvil, STD_ADAPTER, STD_TOKEN, true).await;
    market(&l.anvil, NEG_ADAPTER, NEG_TOKEN, neg_wins).await;
    if let Some(point) = fault {
        // Restarted with the fault armed before the markets resolve.
        l.d.stop();
        l.d.start_with(&[("POLYCOPY_FAULT", point)]);
        l.d.wait_live().await;
    }
    if halted {
        let (code, out, err) = l.d.run_cli(&["halt", "--reason", "emergency"]);
        assert_eq!(code, 0, "{out}{err}");
    }
    for t in unreported {
        send(&l.anvil, CONDITIONAL_TOKENS, setUnreportedCall { conditionId: condition(*t), u: true }.abi_encode())
            .await;
    }
    l.clob.edit_token(STD_TOKEN, |t| (t.closed, t.payout) = (true, Some("1")));
    l.clob.edit_token(NEG_TOKEN, |t| (t.closed, t.payout) = (true, Some(if neg_wins { "1" } else { "0" })));
    l
}

/// Redemption rounds run, from /metrics: the marker that nothing more was going to happen.
async fn rounds(d: &Daemon) -> u64 {
    let (_, body) = crate::support::http::http_get(&d.http_base().await, "/metrics").await;
    body.lines()
        .find_map(|l| l.strip_prefix("polycopy_redeem_rounds_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The journal's redemption rows: (market, status).
async fn rows(d: &Daemon) -> Vec<(String, String)> {
    let c = rusqlite::Connection::open(d.dir.join("journal.db")).unwrap();
    let mut st = c.prepare("SELECT condition_id, status FROM redemptions ORDER BY id").unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_market_resolves_then_winner_redeemed_once_loser_without_a_transaction() {
    let l = settled(&[], None).await;
    wait_for(30, "the pUSD paid", async || (pusd_of(&l.anvil, SIGNER).await == U256::from(10 * ONE)).then_some(()))
        .await;
    let ev = wait_for(10, "the redemption reported", async || l.d.events("redeemed").into_iter().next()).await;
    assert!(ev.contains("redeemed 10 shares") && ev.contains("10 pUSD paid"), "{ev}");
    // Three later rounds: still one call, and never one for the losing market.
    let start = rounds(&l.d).await;
    wait_for(20, "later rounds", async || (rounds(&l.d).await >= start + 3).then_some(())).await;
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::from(1));
    assert_eq!(calls_to(&l.anvil, NEG_ADAPTER).await, U256::ZERO, "a losing position costs no transaction");
    assert_eq!(rows(&l.d).await.len(), 1, "one redemption, for the winner");
    assert_eq!(rows(&l.d).await[0].1, "redeemed");
    assert!(l.d.status()["positions"].as_array().unwrap().is_empty(), "both closed in the books");
    // The lost market's tokens stay in the funder, worth nothing: reconcile has nothing to say.
    let (code, out, err) = l.d.run_cli(&["reconcile"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no difference"), "{out}");
}

/// The Data API lists positions the journal never saw resolve (bought outside polycopy): a
/// winning one is said, once, to be redeemable; a losing one (priced 0) is not, as there is
/// nothing to redeem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_the_data_api_lists_positions_the_journal_never_saw_resolve_then_only_winners_are_said() {
    const WON: u64 = 5005;
    const LOST: u64 = 6006;
    let l = settled(&[], None).await;
    for (t, payout) in [(WON, "1"), (LOST, "0")] {
        l.clob.token(t, crate::support::clob::Token::open(false));
        l.clob.edit_token(t, |k| (k.closed, k.payout) = (true, Some(payout)));
    }
    l.clob.data_positions(&[(WON, "5", true), (LOST, "7", true)]);
    let said = wait_for(30, "the redeemable warning", async || {
        l.d.events("warning").into_iter().find(|m| m.contains("WARNING (redeemable)"))
    })
    .await;
    assert!(said.contains(&format!("5 shares of {WON}")), "{said}");
    let start = rounds(&l.d).await;
    wait_for(20, "later rounds", async || (rounds(&l.d).await >= start + 3).then_some(())).await;
    let warnings: Vec<String> =
        l.d.events("warning").into_iter().filter(|m| m.contains("WARNING (redeemable)")).collect();
    assert_eq!(warnings.len(), 1, "said once, and never of the lost market: {warnings:?}");
}

/// A winning neg-risk position is redeemed through the neg-risk adapter, and a standard one through
/// the standard adapter, each once: the standard adapter would burn nothing of a neg-risk market's
/// tokens and pay nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_a_neg_risk_market_wins_then_redeemed_through_its_own_adapter() {
    let l = settle_markets(live().await, &[], None, &[], false, true).await;
    wait_for(30, "both paid", async || (pusd_of(&l.anvil, SIGNER).await == U256::from(20 * ONE)).then_some(())).await;
    wait_for(10, "both reported", async || (l.d.events("redeemed").len() == 2).then_some(())).await;
    assert_eq!(calls_to(&l.anvil, NEG_ADAPTER).await, U256::from(1));
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::from(1));
    let start = rounds(&l.d).await;
    wait_for(20, "later rounds", async || (rounds(&l.d).await >= start + 3).then_some(())).await;
    let statuses: Vec<String> = rows(&l.d).await.into_iter().map(|r| r.1).collect();
    assert_eq!(statuses, ["redeemed", "redeemed"]);
    assert_eq!(calls_to(&l.anvil, NEG_ADAPTER).await, U256::from(1), "once");
}

/// The node the daemon reads lags behind the one that mined its redemption (a load balancer's
/// backends): the receipt is not found, sending the same bytes again says the nonce was used, and
/// the redemption is still booked `redeemed` once the receipt shows, not `dropped` (which would
/// leave the pUSD paid unreported and the market planned again), also when the receipt stays
/// missing for rounds, longer than a round's wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_the_receipt_lags_behind_the_nonce_then_booked_redeemed_not_dropped() {
    let mut l = live().await;
    let proxy = crate::support::capped_rpc::CappedRpc::start(&l.anvil.http_url(), u64::MAX).await;
    l.d.env.push(("POLYGON_RPC_URL".into(), proxy.url.clone()));
    proxy.hide_receipts(true);
    let l = settle(l, &[("CONFIRM_WAIT_S", "2")], None, &[], false).await;
    wait_for(30, "the pUSD paid", async || (pusd_of(&l.anvil, SIGNER).await == U256::from(10 * ONE)).then_some(()))
        .await;
    // The same bytes sent again (a later round: the node does not know them), refused for their nonce.
    let sent = proxy.raw_sends();
    wait_for(30, "the redemption sent again", async || (proxy.raw_sends() > sent).then_some(())).await;
    // Rounds go by, each refused for the nonce and finding no receipt in its wait: not dropped.
    wait_for(30, "two more rounds", async || (proxy.raw_sends() > sent + 2).then_some(())).await;
    assert_eq!(rows(&l.d).await.first().map(|r| r.1.clone()).as_deref(), Some("sent"));
    proxy.hide_receipts(false);
    wait_for(30, "the redemption booked", async || (rows(&l.d).await.first()?.1 == "redeemed").then_some(())).await;
    let ev = wait_for(10, "the redemption reported", async || l.d.events("redeemed").into_iter().next()).await;
    assert!(ev.contains("10 pUSD paid"), "{ev}");
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::from(1));
}

/// Markets the journal knows resolved.
fn resolved_in_journal(d: &Daemon) -> i64 {
    let c = rusqlite::Connection::open(d.dir.join("journal.db")).unwrap();
    c.query_row("SELECT COUNT(*) FROM markets WHERE payout IS NOT NULL", [], |r| r.get(0)).unwrap()
}

/// A halt means nothing leaves: while halted no redemption (nor approval) is signed with the key,
/// though the winning market has resolved; once trading resumes it is redeemed, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_halted_then_nothing_is_signed_until_resumed() {
    let l = settle(live().await, &[], None, &[], true).await;
    wait_for(30, "both resolutions in the journal", async || (resolved_in_journal(&l.d) == 2).then_some(())).await;
    let start = rounds(&l.d).await;
    wait_for(20, "three rounds after", async || (rounds(&l.d).await >= start + 3).then_some(())).await;
    assert!(rows(&l.d).await.is_empty(), "nothing journaled to send");
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::ZERO, "nothing sent");
    assert!(l.d.log().contains("trading is halted: no redemption or approval is signed"), "{}", l.d.log());
    let (code, out, err) = l.d.run_cli(&["resume"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_for(30, "the pUSD paid", async || (pusd_of(&l.anvil, SIGNER).await == U256::from(10 * ONE)).then_some(()))
        .await;
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::from(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_killed_between_journal_and_send_then_sent_once_after_restart() {
    let mut l = settled(&[], Some("abort_after_redeem_signed")).await;
    let status = l.d.wait_exit().await;
    assert!(!status.success(), "the fault aborted the daemon");
    assert_eq!(rows(&l.d).await.first().map(|r| r.1.clone()), Some("signed".to_owned()), "journaled, not sent");
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::ZERO);
    l.d.start();
    l.d.wait_live().await;
    wait_for(30, "the pUSD paid", async || (pusd_of(&l.anvil, SIGNER).await == U256::from(10 * ONE)).then_some(()))
        .await;
    wait_for(10, "the row redeemed", async || (rows(&l.d).await[0].1 == "redeemed").then_some(())).await;
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::from(1), "the same transaction, once");
    assert_eq!(rows(&l.d).await.len(), 1);
}

/// A redemption journaled signed by a daemon that stopped before sending it is not sent by a
/// daemon restarted under a halt: a halt means nothing leaves with the key. It is sent, the same
/// transaction and once, when trading resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_signed_before_a_halt_then_sent_only_once_trading_resumes() {
    let mut l = settled(&[], Some("abort_after_redeem_signed")).await;
    assert!(!l.d.wait_exit().await.success(), "the fault aborted the daemon");
    let (_, out, err) = l.d.run_cli(&["halt", "--reason", "maintenance"]);
    assert!(out.contains("halted in the journal"), "{out}{err}");
    l.d.start();
    l.d.wait_live().await;
    let start = rounds(&l.d).await;
    wait_for(30, "three rounds under the halt", async || (rounds(&l.d).await >= start + 3).then_some(())).await;
    assert_eq!(rows(&l.d).await.first().map(|r| r.1.clone()), Some("signed".to_owned()), "held, journaled");
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::ZERO, "nothing sent while halted");
    let (code, out, err) = l.d.run_cli(&["resume"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_for(30, "the pUSD paid", async || (pusd_of(&l.anvil, SIGNER).await == U256::from(10 * ONE)).then_some(()))
        .await;
    wait_for(10, "the row redeemed", async || (rows(&l.d).await[0].1 == "redeemed").then_some(())).await;
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::from(1), "the same transaction, once");
    assert_eq!(rows(&l.d).await.len(), 1);
}

/// A journaled redemption the node refuses round after round (a tip below the network's minimum)
/// is sent again each round, the same transaction, and not silently: the operator is told once.
/// Once the node takes it, it is redeemed, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_the_node_keeps_refusing_its_transaction_then_told_once_and_sent_when_taken() {
    let mut l = live().await;
    let proxy = crate::support::capped_rpc::CappedRpc::start(&l.anvil.http_url(), u64::MAX).await;
    l.d.env.push(("POLYGON_RPC_URL".into(), proxy.url.clone()));
    let mut l = settle(l, &[], Some("abort_after_redeem_signed"), &[], false).await;
    assert!(!l.d.wait_exit().await.success(), "the fault aborted the daemon");
    assert_eq!(rows(&l.d).await.first().map(|r| r.1.clone()), Some("signed".to_owned()), "journaled, not sent");
    proxy.refuse_sends(true);
    l.d.start();
    l.d.wait_live().await;
    let told = wait_for(30, "the refusals told", async || {
        l.d.events("error").into_iter().find(|e| e.contains("the node refused the signed redemption"))
    })
    .await;
    assert!(told.contains("transaction underpriced") && told.contains("3 rounds in a row"), "{told}");
    let start = rounds(&l.d).await;
    wait_for(20, "three rounds more", async || (rounds(&l.d).await >= start + 3).then_some(())).await;
    let told: Vec<String> =
        l.d.events("error").into_iter().filter(|e| e.contains("the node refused the signed redemption")).collect();
    assert_eq!(told.len(), 1, "told once: {told:?}");
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::ZERO);
    proxy.refuse_sends(false);
    wait_for(30, "the pUSD paid", async || (pusd_of(&l.anvil, SIGNER).await == U256::from(10 * ONE)).then_some(()))
        .await;
    wait_for(10, "the row redeemed", async || (rows(&l.d).await[0].1 == "redeemed").then_some(())).await;
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::from(1), "the same transaction, once");
    assert_eq!(rows(&l.d).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_it_reverts_then_retried_within_budget_and_reported() {
    let l = settled(&[("ATTEMPTS", "3")], None).await;
    let data = setFailingCall { f: true }.abi_encode();
    send(&l.anvil, STD_ADAPTER, data.clone()).await;
    send(&l.anvil, NEG_ADAPTER, data).await;
    wait_for(30, "the first failure reported", async || {
        l.d.events("error").into_iter().find(|m| m.contains("failed (attempt 1 of 3)") && m.contains("revert"))
    })
    .await;
    // It works again before the budget is spent: redeemed on a retry.
    send(&l.anvil, STD_ADAPTER, setFailingCall { f: false }.abi_encode()).await;
    wait_for(30, "the pUSD paid", async || (pusd_of(&l.anvil, SIGNER).await == U256::from(10 * ONE)).then_some(()))
        .await;
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::from(1));
}

/// Gamma shows the result before the oracle has reported it on chain: rounds wait without
/// spending the budget (no transaction, no attempt), and the market is redeemed once it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_gamma_is_ahead_of_the_chain_then_it_waits_without_spending_attempts() {
    let l = settled_with(&[("ATTEMPTS", "2")], None, &[STD_TOKEN]).await;
    let start = rounds(&l.d).await;
    wait_for(30, "more rounds than the budget", async || (rounds(&l.d).await >= start + 4).then_some(())).await;
    assert!(l.d.events("error").iter().all(|m| !m.contains("redemption")), "{:?}", l.d.events("error"));
    assert!(rows(&l.d).await.is_empty(), "nothing planned while the chain has no result");
    // Nor settled in the books: the winner's payout is not booked before the chain has it.
    assert!(l.d.events("settled").iter().all(|m| !m.contains("settled at 1")), "{:?}", l.d.events("settled"));
    // But valued at it meanwhile (the closed market has no book): 10 shares at 1 against 5.10 paid.
    wait_for(20, "the waiting position marked at its result", async || {
        (l.d.status()["unrealized_usdc"] == "4.9").then_some(())
    })
    .await;
    send(&l.anvil, CONDITIONAL_TOKENS, setUnreportedCall { conditionId: condition(STD_TOKEN), u: false }.abi_encode())
        .await;
    wait_for(30, "the pUSD paid", async || (pusd_of(&l.anvil, SIGNER).await == U256::from(10 * ONE)).then_some(()))
        .await;
    wait_for(10, "the row redeemed", async || (rows(&l.d).await[0].1 == "redeemed").then_some(())).await;
    assert!(l.d.events("settled").iter().any(|m| m.contains("settled at 1")), "{:?}", l.d.events("settled"));
}

/// The node refuses the redemption's gas estimates (rate limited) for more rounds than the
/// budget allows attempts: no attempt is spent, the operator is told once that it cannot be
/// prepared, and the market is redeemed once the node answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_the_node_fails_then_no_attempt_is_spent_and_it_is_redeemed_later() {
    let (l, proxy) = settled_with_estimates_refused(&[("ATTEMPTS", "2")]).await;
    wait_for(60, "the operator told once", async || {
        l.d.events("error").into_iter().find(|m| m.contains("could not be prepared for 3 rounds"))
    })
    .await;
    assert!(l.d.events("error").iter().all(|m| !m.contains("failed (attempt")), "{:?}", l.d.events("error"));
    assert!(rows(&l.d).await.iter().all(|r| r.1 != "failed"), "no attempt spent");
    proxy.refuse_estimates(0);
    wait_for(30, "the pUSD paid", async || (pusd_of(&l.anvil, SIGNER).await == U256::from(10 * ONE)).then_some(()))
        .await;
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::from(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_budget_spent_then_left_to_the_operator() {
    let l = settled(&[("ATTEMPTS", "2")], None).await;
    send(&l.anvil, STD_ADAPTER, setFailingCall { f: true }.abi_encode()).await;
    wait_for(30, "the final failure", async || {
        l.d.events("error")
            .into_iter()
            .find(|m| m.contains("failed 2 times") && m.contains("redeem it on polymarket.com"))
    })
    .await;
    assert_eq!(rows(&l.d).await[0].1, "failed");
    // Left to the operator: later rounds plan nothing new and repeat no error.
    let start = rounds(&l.d).await;
    wait_for(20, "later rounds", async || (rounds(&l.d).await >= start + 3).then_some(())).await;
    assert_eq!(rows(&l.d).await.len(), 1);
    assert_eq!(l.d.events("error").iter().filter(|m| m.contains("failed 2 times")).count(), 1);
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::ZERO);
}

/// A Gnosis Safe funder: the approval and the redemption go through `execTransaction`, whose
/// signature the stand-in Safe recovers to its owner (our signer) before it calls as the Safe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_safe_funder_then_exec_transaction_signed_by_the_owner() {
    let safe = polycopy::clob::SigType::PolyGnosisSafe.derived_funder(SIGNER).unwrap();
    let mut l = live().await;
    install(&l.anvil).await;
    l.anvil.raw("anvil_setCode", json!([safe, code("MockSafe")])).await;
    send(&l.anvil, safe, setOwnerCall { o: SIGNER }.abi_encode()).await;
    l.d.set("live", "signature_type = \"poly_gnosis_safe\"");
    for (k, v) in [("CHECK_EVERY_S", "1"), ("CONFIRM_WAIT_S", "10")] {
        l.d.env.push((format!("POLYCOPY_REDEEM__{k}"), v.to_owned()));
    }
    start_live(&mut l).await;
    // The Safe holds a resolved winning token the journal settled.
    hold(&l.anvil, safe, STD_TOKEN, 7 * ONE).await;
    market(&l.anvil, STD_ADAPTER, STD_TOKEN, true).await;
    {
        let c = rusqlite::Connection::open(l.d.dir.join("journal.db")).unwrap();
        c.execute(
            "INSERT INTO markets (token_id, condition_id, question, outcome, neg_risk, tick, min_size, closed, end_ms, payout, fetched_at_ms) \
             VALUES (?1, ?2, 'Will it?', 'Yes', 0, 10000, 5000000, 1, 0, 1000000, ?3)",
            rusqlite::params![STD_TOKEN.to_string(), condition(STD_TOKEN).to_string(), i64::MAX / 2],
        )
        .unwrap();
        c.execute(
            "INSERT INTO settlements (token_id, shares, price, usdc, realized_pnl, at_ms) VALUES (?1, 7000000, 1000000, 7000000, 0, 0)",
            [STD_TOKEN.to_string()],
        )
        .unwrap();
    }
    wait_for(30, "the Safe paid", async || (pusd_of(&l.anvil, safe).await == U256::from(7 * ONE)).then_some(())).await;
    assert_eq!(pusd_of(&l.anvil, SIGNER).await, U256::ZERO, "paid to the Safe, not to the signer");
    // Approval and redemption: two Safe transactions, each checked against the owner's signature.
    assert_eq!(read(&l.anvil, safe, nonceCall {}.abi_encode()).await, U256::from(2));
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::from(1));
}

/// An Exchange V3 market: its PositionManager shares are redeemed through the Router, after the
/// Router is approved on the PositionManager, for the amount held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_v3_market_resolves_then_redeemed_through_the_router() {
    let mut l = live().await;
    install(&l.anvil).await;
    l.clob.token(V3_TOKEN, crate::support::clob::Token::open(false));
    l.d.set("risk", "mark_interval_s = 1");
    for (k, v) in [("CHECK_EVERY_S", "1"), ("CONFIRM_WAIT_S", "10")] {
        l.d.env.push((format!("POLYCOPY_REDEEM__{k}"), v.to_owned()));
    }
    start_live(&mut l).await;
    // Live orders are not signed for V3 markets: the target's fill is refused with its own reason.
    l.anvil.emit(&Fill { exchange: V3_EXCHANGE, ..buy(1, V3_TOKEN) }).await;
    let row = wait_for(30, "the V3 fill decided", async || {
        l.d.trades().into_iter().next().filter(|r| r["status"] != "pending")
    })
    .await;
    assert_eq!(row["reason"], "v3_unsupported", "{row}");
    // Our funder holds V3 shares (bought on polymarket.com) of a market that resolved for us.
    hold_in(&l.anvil, POSITION_MANAGER, SIGNER, V3_TOKEN, 10 * ONE).await;
    send(&l.anvil, ROUTER, setPayoutCall { positionId: U256::from(V3_TOKEN), payout: U256::from(ONE) }.abi_encode())
        .await;
    {
        let c = rusqlite::Connection::open(l.d.dir.join("journal.db")).unwrap();
        c.execute("UPDATE markets SET payout = 1000000, closed = 1 WHERE token_id = ?1", [V3_TOKEN.to_string()])
            .unwrap();
        c.execute(
            "INSERT INTO settlements (token_id, shares, price, usdc, realized_pnl, at_ms) \
             VALUES (?1, 10000000, 1000000, 10000000, 0, 0)",
            [V3_TOKEN.to_string()],
        )
        .unwrap();
    }
    wait_for(30, "the pUSD paid", async || (pusd_of(&l.anvil, SIGNER).await == U256::from(10 * ONE)).then_some(()))
        .await;
    assert_eq!(calls_to(&l.anvil, ROUTER).await, U256::from(1));
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::ZERO, "not through a CTF adapter");
    let left =
        read(&l.anvil, POSITION_MANAGER, ctf::balanceOfCall { owner: SIGNER, id: U256::from(V3_TOKEN) }.abi_encode())
            .await;
    assert_eq!(left, U256::ZERO, "every share redeemed");
}

/// A market resolved evenly (the oracle's "unknown", 50-50): Gamma shows it closed with no
/// winner, and only Conditional Tokens has the result. Nothing is settled before the chain has
/// it; then the position is settled at 0.5 and redeemed for half a pUSD a share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_a_market_resolves_evenly_then_settled_at_half_and_redeemed() {
    let l = holding("10").await;
    let (yes, no) = (U256::from(STD_TOKEN), U256::from(format!("9{STD_TOKEN}").parse::<u64>().unwrap()));
    let half = U256::from(ONE / 2);
    send(
        &l.anvil,
        STD_ADAPTER,
        setMarketCall { conditionId: condition(STD_TOKEN), t0: yes, t1: no, p0: half, p1: half }.abi_encode(),
    )
    .await;
    let cond = condition(STD_TOKEN);
    send(&l.anvil, CONDITIONAL_TOKENS, setUnreportedCall { conditionId: cond, u: true }.abi_encode()).await;
    l.clob.edit_token(STD_TOKEN, |t| (t.closed, t.payout) = (true, Some("0.5")));
    // Gamma alone says nothing about who won: later redemption rounds find nothing settled.
    let start = rounds(&l.d).await;
    wait_for(20, "later rounds", async || (rounds(&l.d).await >= start + 3).then_some(())).await;
    assert!(l.d.events("settled").is_empty(), "{:?}", l.d.events("settled"));
    assert_eq!(l.d.status()["positions"].as_array().unwrap().len(), 1, "still open");
    // The oracle reports [1, 1].
    send(
        &l.anvil,
        CONDITIONAL_TOKENS,
        setPayoutsCall { conditionId: cond, n0: U256::from(1), n1: U256::from(1) }.abi_encode(),
    )
    .await;
    send(&l.anvil, CONDITIONAL_TOKENS, setUnreportedCall { conditionId: cond, u: false }.abi_encode()).await;
    let ev = wait_for(30, "the settlement", async || l.d.events("settled").into_iter().next()).await;
    assert!(ev.contains("10 shares settled at 0.5"), "{ev}");
    wait_for(30, "the pUSD paid", async || (pusd_of(&l.anvil, SIGNER).await == U256::from(5 * ONE)).then_some(()))
        .await;
    let ev = wait_for(10, "the redemption reported", async || l.d.events("redeemed").into_iter().next()).await;
    assert!(ev.contains("redeemed 10 shares") && ev.contains("5 pUSD paid"), "{ev}");
    assert!(l.d.status()["positions"].as_array().unwrap().is_empty(), "closed in the books");
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::from(1));
}

/// Gamma shows our outcome won while Conditional Tokens holds the other result (a disputed result
/// that changed, or Gamma ahead of a report that went the other way): nothing is settled or
/// redeemed while they disagree; once Gamma agrees with the chain, it settles at the chain's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_gamma_and_the_chain_disagree_then_nothing_is_settled_until_they_agree() {
    let l = holding("10").await;
    market(&l.anvil, STD_ADAPTER, STD_TOKEN, false).await;
    let cond = condition(STD_TOKEN);
    send(
        &l.anvil,
        CONDITIONAL_TOKENS,
        setPayoutsCall { conditionId: cond, n0: U256::ZERO, n1: U256::from(1) }.abi_encode(),
    )
    .await;
    l.clob.edit_token(STD_TOKEN, |t| (t.closed, t.payout) = (true, Some("1")));
    wait_for(20, "the disagreement logged", async || {
        l.d.log().contains("Gamma and Conditional Tokens disagree").then_some(())
    })
    .await;
    let start = rounds(&l.d).await;
    wait_for(20, "later rounds", async || (rounds(&l.d).await >= start + 3).then_some(())).await;
    assert!(l.d.events("settled").is_empty(), "{:?}", l.d.events("settled"));
    assert_eq!(l.d.status()["positions"].as_array().unwrap().len(), 1, "still open");
    // Valued at the worse of the two results meanwhile: nothing, against 5.10 paid.
    wait_for(20, "the disputed position marked at the worse result", async || {
        (l.d.status()["unrealized_usdc"] == "-5.1").then_some(())
    })
    .await;
    assert_eq!(l.d.log().matches("Gamma and Conditional Tokens disagree").count(), 1, "told once");
    let told: Vec<String> = l.d.events("warning").into_iter().filter(|m| m.contains("result_disputed")).collect();
    assert_eq!(told.len(), 1, "the operator told once: {told:?}");
    assert!(told[0].contains("pays 1, Conditional Tokens says 0"), "{told:?}");
    // Gamma catches up with the chain: our outcome lost.
    l.clob.edit_token(STD_TOKEN, |t| t.payout = Some("0"));
    let ev = wait_for(30, "the settlement", async || l.d.events("settled").into_iter().next()).await;
    assert!(ev.contains("10 shares settled at 0"), "{ev}");
    assert!(l.d.status()["positions"].as_array().unwrap().is_empty(), "closed in the books");
    let start = rounds(&l.d).await;
    wait_for(20, "later rounds", async || (rounds(&l.d).await >= start + 2).then_some(())).await;
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::ZERO, "a losing position is not redeemed");
}

/// The base fee rises past the redemption transaction's fee cap before any block takes it: the
/// transaction is signed again with higher fees and the same nonce, journaled before it is sent,
/// and the market is redeemed once, by the replacement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_the_base_fee_passes_its_fee_cap_then_repriced_and_redeemed_once() {
    let mut l = holding("1").await;
    let Repriced { first, second, replaced, .. } = priced_out(&mut l, None).await;
    assert_eq!(replaced, first, "the first transaction is kept");
    assert_ne!(second, first);
    l.anvil.raw("evm_mine", json!([])).await;
    wait_for(30, "the pUSD paid", async || (pusd_of(&l.anvil, SIGNER).await == U256::from(10 * ONE)).then_some(()))
        .await;
    wait_for(10, "the row redeemed", async || (rows(&l.d).await[0].1 == "redeemed").then_some(())).await;
    let ev = wait_for(10, "the redemption reported", async || l.d.events("redeemed").into_iter().next()).await;
    assert!(ev.contains(&second[2..]), "reported with the replacement's hash: {ev}");
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::from(1));
    assert_eq!(rows(&l.d).await.len(), 1);
    l.anvil.raw("evm_setAutomine", json!([true])).await;
}

/// The redemption is mined but pays less than planned (here nothing, and the tokens stay in the
/// funder, as with a wrong adapter: the call succeeds and touches nothing): one error says what was
/// paid, the row is left to the operator (`failed`), and it is not sent again in later rounds
/// although the tokens are still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_mined_but_paid_less_than_planned_then_reported_once_and_not_sent_again() {
    let l = holding("10").await;
    // The adapter knows other tokens for this market: it burns nothing of ours and pays nothing.
    let (t0, t1) = (U256::from(1), U256::from(2));
    let setup = setMarketCall { conditionId: condition(STD_TOKEN), t0, t1, p0: U256::from(ONE), p1: U256::ZERO };
    send(&l.anvil, STD_ADAPTER, setup.abi_encode()).await;
    l.clob.edit_token(STD_TOKEN, |t| (t.closed, t.payout) = (true, Some("1")));
    let err = wait_for(30, "the shortfall reported", async || {
        l.d.events("error").into_iter().find(|m| m.contains("but paid"))
    })
    .await;
    assert!(err.contains("paid 0 pUSD, not the 10 planned") && err.contains("Not tried again"), "{err}");
    let start = rounds(&l.d).await;
    wait_for(20, "later rounds", async || (rounds(&l.d).await >= start + 3).then_some(())).await;
    let held = read(
        &l.anvil,
        CONDITIONAL_TOKENS,
        ctf::balanceOfCall { owner: SIGNER, id: U256::from(STD_TOKEN) }.abi_encode(),
    )
    .await;
    assert_eq!(held, U256::from(10 * ONE), "the tokens are still in the funder");
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::from(1), "sent once");
    assert_eq!(rows(&l.d).await, vec![(condition(STD_TOKEN).to_string(), "failed".to_owned())]);
    let c = rusqlite::Connection::open(l.d.dir.join("journal.db")).unwrap();
    let msg: String = c.query_row("SELECT message FROM redemptions", [], |r| r.get(0)).unwrap();
    assert!(msg.starts_with("mined (tx 0x") && msg.ends_with("but paid 0 of 10 pUSD"), "{msg}");
    assert_eq!(l.d.events("error").iter().filter(|m| m.contains("but paid")).count(), 1);
    assert!(l.d.events("redeemed").is_empty(), "{:?}", l.d.events("redeemed"));
}

/// A live daemon redeeming every second (waiting `confirm_wait_s` for a receipt) whose copy of a
/// target's BUY of the standard token settled on chain: the funder holds 10 shares.
async fn holding(confirm_wait_s: &str) -> Live {
    let mut l = live().await;
    install(&l.anvil).await;
    l.d.set("risk", "mark_interval_s = 1");
    for (k, v) in [("CHECK_EVERY_S", "1"), ("CONFIRM_WAIT_S", confirm_wait_s)] {
        l.d.env.push((format!("POLYCOPY_REDEEM__{k}"), v.to_owned()));
    }
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(30, "the copy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    settle_buys_on_chain(&l, &[STD_TOKEN]).await;
    hold(&l.anvil, SIGNER, STD_TOKEN, 10 * ONE).await;
    l
}

/// Killed after journaling a re-priced transaction and before sending it; the base fee falls and
/// the first transaction, still in the pool, is mined. After the restart the redemption is found
/// by that hash: booked once, reported with it, and the re-priced one is never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_killed_after_repricing_and_the_first_is_mined_then_booked_by_it_once() {
    let mut l = holding("1").await;
    let Repriced { first, first_raw, replaced, .. } = priced_out(&mut l, Some("abort_after_redeem_repriced")).await;
    assert_eq!(replaced, first);
    assert!(!l.d.wait_exit().await.success(), "the fault aborted the daemon");
    // anvil drops a transaction its block could not take; a Bor (go-ethereum) node keeps it in
    // its pool, and any node that saw it may still hand it on: here it comes back from the test.
    l.anvil.raw("anvil_setNextBlockBaseFeePerGas", json!(["0x1"])).await;
    l.anvil.raw("evm_mine", json!([])).await;
    l.anvil.raw("eth_sendRawTransaction", json!([first_raw])).await;
    l.anvil.raw("evm_mine", json!([])).await;
    wait_for(30, "the pUSD paid", async || (pusd_of(&l.anvil, SIGNER).await == U256::from(10 * ONE)).then_some(()))
        .await;
    l.d.start();
    l.d.wait_live().await;
    wait_for(30, "the row redeemed", async || (rows(&l.d).await[0].1 == "redeemed").then_some(())).await;
    let ev = wait_for(10, "the redemption reported", async || l.d.events("redeemed").into_iter().next()).await;
    assert!(ev.contains(&first[2..]), "reported with the first transaction's hash: {ev}");
    let message: String = rusqlite::Connection::open(l.d.dir.join("journal.db"))
        .unwrap()
        .query_row("SELECT message FROM redemptions", [], |r| r.get(0))
        .unwrap();
    assert!(message.contains(&first[2..]), "the row names the transaction mined, not the last one: {message}");
    let start = rounds(&l.d).await;
    wait_for(20, "later rounds", async || (rounds(&l.d).await >= start + 2).then_some(())).await;
    l.anvil.raw("evm_mine", json!([])).await;
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::from(1), "redeemed once");
    assert_eq!(rows(&l.d).await.len(), 1);
    l.anvil.raw("evm_setAutomine", json!([true])).await;
}

/// Resolves the held market with blocks made by hand, lets the daemon send its redemption, then
/// raises the base fee far above the transaction's fee cap and waits until the daemon re-priced
/// it. `fault` is armed by a restart first.
async fn priced_out(l: &mut Live, fault: Option<&str>) -> Repriced {
    market(&l.anvil, STD_ADAPTER, STD_TOKEN, true).await;
    // Approved beforehand, so the one transaction left to the daemon is the redemption.
    let approve = setApprovalForAllCall { operator: STD_ADAPTER, approved: true }.abi_encode();
    send_as(&l.anvil, &SIGNER.to_string(), CONDITIONAL_TOKENS, approve).await;
    if let Some(point) = fault {
        l.d.stop();
        l.d.start_with(&[("POLYCOPY_FAULT", point)]);
        l.d.wait_live().await;
    }
    // From here blocks are made by hand: the redemption waits in the pool.
    l.anvil.raw("evm_setAutomine", json!([false])).await;
    l.clob.edit_token(STD_TOKEN, |t| (t.closed, t.payout) = (true, Some("1")));
    let first =
        wait_for(30, "the redemption sent", async || txs(&l.d).await.into_iter().next().and_then(|r| r.0)).await;
    let c = rusqlite::Connection::open(l.d.dir.join("journal.db")).unwrap();
    let first_raw: String = c.query_row("SELECT raw_tx FROM redemptions", [], |r| r.get(0)).unwrap();
    // The next block's base fee is far above the transaction's fee cap: it stays in the pool.
    l.anvil.raw("anvil_setNextBlockBaseFeePerGas", json!(["0xe8d4a51000"])).await;
    l.anvil.raw("evm_mine", json!([])).await;
    let (second, replaced) = wait_for(30, "the redemption re-priced", async || {
        txs(&l.d).await.into_iter().next().filter(|r| !r.1.is_empty()).and_then(|r| Some((r.0?, r.1)))
    })
    .await;
    Repriced { first, first_raw, second, replaced }
}

/// A redemption the daemon re-priced: its first transaction (hash, signed bytes), the re-priced
/// one's hash, and the row's `replaced`.
struct Repriced {
    first: String,
    first_raw: String,
    second: String,
    replaced: String,
}

/// The first redemption's approval is not mined for several rounds: it is waited for, with no
/// second approval signed, no redemption signed behind it and no attempt of the budget spent. The
/// base fee then passes its fee cap: it is signed again with higher fees, and the market is
/// redeemed once blocks come again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_the_approval_waits_for_a_block_then_no_attempt_is_spent_and_it_is_sent_once() {
    approval_waits(false).await;
}

/// Killed while the first redemption's approval waits in the pool: after the restart the daemon
/// follows the approval it journaled. No second approval is signed behind it (with the next nonce,
/// it would wait behind the first, which nobody would re-price any more), the first is re-priced
/// when the base fee passes its fee cap, and the market is redeemed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_restarted_while_the_approval_waits_then_it_is_followed_not_signed_again() {
    approval_waits(true).await;
}

/// The selectors of `setApprovalForAll` and of the adapter's `redeemPositions`.
const APPROVE: &str = "0xa22cb465";
const REDEEM: &str = "0x01b7037c";

/// The hashes of the transactions waiting in the pool that call `selector`.
async fn in_pool(anvil: &Anvil, selector: &str) -> Vec<String> {
    let pool = anvil.raw("txpool_content", json!([])).await;
    let all: Vec<Value> = pool["pending"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .flat_map(|by_nonce| by_nonce.as_object().into_iter().flat_map(|m| m.values()).cloned().collect::<Vec<_>>())
        .collect();
    all.iter()
        .filter(|t| t["input"].as_str().is_some_and(|i| i.starts_with(selector)))
        .map(|t| t["hash"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// An approval not mined for several rounds (`restart`: and the daemon killed and started again
/// meanwhile), then priced out by the base fee, then mined.
async fn approval_waits(restart: bool) {
    let mut l = holding("1").await;
    market(&l.anvil, STD_ADAPTER, STD_TOKEN, true).await;
    // From here blocks are made by hand.
    l.anvil.raw("evm_setAutomine", json!([false])).await;
    l.clob.edit_token(STD_TOKEN, |t| (t.closed, t.payout) = (true, Some("1")));
    let first = wait_for(30, "the approval sent", async || in_pool(&l.anvil, APPROVE).await.pop()).await;
    if restart {
        l.d.kill9();
        l.d.start();
        l.d.wait_live().await;
    }
    let start = rounds(&l.d).await;
    wait_for(20, "later rounds", async || (rounds(&l.d).await >= start + 3).then_some(())).await;
    assert_eq!(in_pool(&l.anvil, APPROVE).await, vec![first.clone()], "one approval, not one per round or start");
    assert!(in_pool(&l.anvil, REDEEM).await.is_empty(), "nothing signed behind an approval that may never be mined");
    assert!(l.d.events("error").iter().all(|m| !m.contains("approving")), "{:?}", l.d.events("error"));
    let c = rusqlite::Connection::open(l.d.dir.join("journal.db")).unwrap();
    let attempts: i64 = c.query_row("SELECT attempts FROM redemptions", [], |r| r.get(0)).unwrap();
    assert_eq!(attempts, 0, "waiting for the approval spends no attempt");
    // The base fee passes the approval's fee cap (anvil then drops it from its pool): it is signed
    // again with higher fees.
    l.anvil.raw("anvil_setNextBlockBaseFeePerGas", json!(["0xe8d4a51000"])).await;
    l.anvil.raw("evm_mine", json!([])).await;
    let second =
        wait_for(30, "the approval re-priced", async || in_pool(&l.anvil, APPROVE).await.pop().filter(|h| *h != first))
            .await;
    assert_eq!(in_pool(&l.anvil, APPROVE).await, vec![second], "still one approval");
    // Blocks again: the approval, then the redemption.
    wait_for(30, "the pUSD paid", async || {
        l.anvil.raw("evm_mine", json!([])).await;
        (pusd_of(&l.anvil, SIGNER).await == U256::from(10 * ONE)).then_some(())
    })
    .await;
    wait_for(10, "the row redeemed", async || (rows(&l.d).await[0].1 == "redeemed").then_some(())).await;
    assert_eq!(calls_to(&l.anvil, STD_ADAPTER).await, U256::from(1));
    let approvals: i64 = c.query_row("SELECT COUNT(*) FROM approvals", [], |r| r.get(0)).unwrap();
    assert_eq!(approvals, 0, "the approval in effect is forgotten");
    l.anvil.raw("evm_setAutomine", json!([true])).await;
}

/// The journal's redemption transactions: (the one sent, the ones it replaced).
async fn txs(d: &Daemon) -> Vec<(Option<String>, String)> {
    let c = rusqlite::Connection::open(d.dir.join("journal.db")).unwrap();
    let mut st = c.prepare("SELECT tx_hash, replaced FROM redemptions ORDER BY id").unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

/// Paper mode runs the same lifecycle without a chain: a resolved winning position is redeemed
/// once, in the journal, at its payout, and reported; a losing one is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_redeem_when_paper_then_simulated_once() {
    let anvil = Anvil::start().await;
    let clob = crate::support::clob::FakeClob::start(Address::ZERO).await;
    for (t, neg) in [(STD_TOKEN, false), (NEG_TOKEN, true)] {
        clob.token(t, crate::support::clob::Token::open(neg));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "whale", true)], 0.1));
    d.set("risk", "mark_interval_s = 1");
    d.env.extend(
        [("GAMMA_URL", clob.url.as_str()), ("CLOB_HOST", clob.url.as_str()), ("POLYCOPY_REDEEM__CHECK_EVERY_S", "1")]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    d.start();
    d.wait_live().await;
    anvil.emit(&buy(1, STD_TOKEN)).await;
    anvil.emit(&buy(2, NEG_TOKEN)).await;
    wait_for(30, "two copies", async || (with_status(&d.trades(), "executed").len() == 2).then_some(())).await;
    clob.edit_token(STD_TOKEN, |t| (t.closed, t.payout) = (true, Some("1")));
    clob.edit_token(NEG_TOKEN, |t| (t.closed, t.payout) = (true, Some("0")));
    let ev = wait_for(30, "the simulated redemption", async || d.events("redeemed").into_iter().next()).await;
    assert!(ev.contains("paper: redeemed 10 shares") && ev.contains("10 pUSD (simulated)"), "{ev}");
    let start = rounds(&d).await;
    wait_for(20, "later rounds", async || (rounds(&d).await >= start + 3).then_some(())).await;
    assert_eq!(d.events("redeemed").len(), 1, "once, and not for the losing market");
    assert_eq!(rows(&d).await, vec![(condition(STD_TOKEN).to_string(), "paper".to_owned())]);
}

/// A live daemon holding 10 `STD_TOKEN` copied and settled, whose tokens are then gone from our
/// funder and from the Data API, as after a redemption outside polycopy (marked every second when
/// `marking`); with `reconcile --json`'s cause for the token.
async fn gone_from_the_funder(marking: bool) -> (Live, impl Fn(&Daemon) -> Option<String>) {
    let mut l = live().await;
    install(&l.anvil).await;
    if marking {
        l.d.set("risk", "mark_interval_s = 1");
    }
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(30, "the copy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    settle_buys_on_chain(&l, &[STD_TOKEN]).await;
    hold(&l.anvil, SIGNER, STD_TOKEN, 0).await;
    l.clob.data_positions(&[]);
    let cause = |d: &Daemon| {
        let (_, out, err) = d.run_cli(&["reconcile", "--json"]);
        let r: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
        let std_token = STD_TOKEN.to_string();
        let d = r["differences"].as_array().unwrap().iter().find(|d| d["token_id"] == std_token.as_str()).cloned();
        d.map(|d| d["cause"].as_str().unwrap().to_owned())
    };
    (l, cause)
}

/// Polymarket's auto-redeemer (or the website) redeemed a position while the journal had not seen
/// its market resolve (the daemon down, Gamma behind the chain): reconcile reads the result on
/// chain and reports it redeemed, not sold outside, and `--apply` books nothing (booked as sold at
/// cost, the payout would never reach realized P&L). Before the result is on chain, the same
/// missing tokens read as sold outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reconcile_when_redeemed_outside_before_the_journal_saw_the_result_then_redeemed_not_sold() {
    let (l, cause) = gone_from_the_funder(false).await;
    let cond = condition(STD_TOKEN);
    send(&l.anvil, CONDITIONAL_TOKENS, setUnreportedCall { conditionId: cond, u: true }.abi_encode()).await;
    assert_eq!(cause(&l.d).as_deref(), Some("sold_outside"), "no result on chain yet");
    send(&l.anvil, CONDITIONAL_TOKENS, setUnreportedCall { conditionId: cond, u: false }.abi_encode()).await;
    send(
        &l.anvil,
        CONDITIONAL_TOKENS,
        setPayoutsCall { conditionId: cond, n0: U256::from(1), n1: U256::ZERO }.abi_encode(),
    )
    .await;
    assert_eq!(cause(&l.d).as_deref(), Some("redeemed"));
    let (_, out, err) = l.d.run_cli(&["reconcile", "--apply"]);
    assert!(!out.contains("applied: position in"), "{out}{err}");
    let std_token = STD_TOKEN.to_string();
    let held =
        l.d.status()["positions"].as_array().unwrap().iter().find(|p| p["token_id"] == std_token.as_str()).cloned();
    assert_eq!(held.map(|p| p["shares"].clone()), Some(Value::from("10")), "kept for the resolution to settle");
}

/// Gamma shows the market closed while Conditional Tokens has no result for it (not reported yet,
/// or a market of the V3 exchange, whose results it never holds): tokens gone from our funder may
/// have been redeemed, so reconcile says so and `--apply` books no sale (at cost, a win would never
/// reach realized P&L).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reconcile_when_a_closed_market_has_no_result_on_chain_then_gone_tokens_are_not_booked_as_sold() {
    let (l, cause) = gone_from_the_funder(true).await;
    send(&l.anvil, CONDITIONAL_TOKENS, setUnreportedCall { conditionId: condition(STD_TOKEN), u: true }.abi_encode())
        .await;
    assert_eq!(cause(&l.d).as_deref(), Some("sold_outside"), "open, no result on chain");
    l.clob.edit_token(STD_TOKEN, |t| (t.closed, t.payout) = (true, Some("1")));
    let std_token = STD_TOKEN.to_string();
    wait_for(30, "the journal has it closed", async || {
        let c = rusqlite::Connection::open(l.d.dir.join("journal.db")).unwrap();
        let q = "SELECT closed FROM markets WHERE token_id = ?1";
        c.query_row(q, [&std_token], |r| r.get::<_, bool>(0)).ok().filter(|c| *c)
    })
    .await;
    assert_eq!(cause(&l.d).as_deref(), Some("sold_or_redeemed"));
    let (_, out, err) = l.d.run_cli(&["reconcile", "--apply"]);
    assert!(!out.contains("applied: position in") && out.contains("sold outside or redeemed"), "{out}{err}");
    let held =
        l.d.status()["positions"].as_array().unwrap().iter().find(|p| p["token_id"] == std_token.as_str()).cloned();
    assert_eq!(held.map(|p| p["shares"].clone()), Some(Value::from("10")), "nothing booked");
}
