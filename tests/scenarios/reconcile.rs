//! `polycopy reconcile` against a real node and the Data API as the fake serves it: differences
//! planted in each direction are found and explained, `--apply` books them through the running
//! daemon, a second run is clean, and `--alert` (the cron job) reaches the notifier.

use crate::support::clob::{Play, Token};
use crate::support::live::*;
use crate::support::*;
use serde_json::Value;

const OTHER: u64 = 3003;
const DUSTY: u64 = 4004;

fn positions(d: &Daemon) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = d.status()["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["token_id"].as_str().unwrap().to_owned(), p["shares"].as_str().unwrap().to_owned()))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reconcile_when_chain_differs_then_explained_applied_and_alerted() {
    let mut l = live().await;
    l.clob.token(DUSTY, Token::open(false));
    l.anvil.install_balances().await;
    start_live(&mut l).await;
    for (i, t) in [(1, STD_TOKEN), (2, NEG_TOKEN), (3, DUSTY)] {
        l.anvil.emit(&buy(i, t)).await;
    }
    wait_for(30, "three buys", async || (with_status(&l.d.trades(), "executed").len() == 3).then_some(())).await;
    // Before our matches settle on chain, nothing is booked: the chain's figure would count them
    // twice once they do.
    l.anvil.set_balance(SIGNER, STD_TOKEN, 2 * ONE).await;
    let (code, out, err) = l.d.run_cli(&["reconcile", "--apply"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("applied: position in"), "{out}{err}");
    assert!(err.contains("not settled on chain or resolved yet"), "{err}");
    settle_buys_on_chain(&l, &[STD_TOKEN, NEG_TOKEN, DUSTY]).await;
    // The chain: 2 more of one token, 6 fewer of another, a V3 token we never journaled, and half a
    // hundredth of a share of dust. The Data API says the same.
    l.anvil.set_balance(SIGNER, STD_TOKEN, 12 * ONE).await;
    l.anvil.set_balance(SIGNER, NEG_TOKEN, 4 * ONE).await;
    l.anvil.set_balance(SIGNER, DUSTY, 10 * ONE + 5_000).await;
    l.anvil.set_balance_in(POSITION_MANAGER, SIGNER, OTHER, 5 * ONE).await;
    l.clob.data_positions(&[
        (STD_TOKEN, "12", false),
        (NEG_TOKEN, "4", false),
        (DUSTY, "10.005", false),
        (OTHER, "5", false),
    ]);

    let (code, out, err) = l.d.run_cli(&["reconcile", "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let mut found: Vec<(String, String, String)> = r["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["token_id"].as_str().unwrap().to_owned(),
                d["delta"].as_str().unwrap().to_owned(),
                d["cause"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    let want = [
        (STD_TOKEN.to_string(), "2".to_owned(), "bought_outside".to_owned()),
        (NEG_TOKEN.to_string(), "-6".to_owned(), "sold_outside".to_owned()),
        (OTHER.to_string(), "5".to_owned(), "bought_outside".to_owned()),
        (DUSTY.to_string(), "0.005".to_owned(), "dust".to_owned()),
    ];
    let mut want = want.to_vec();
    want.sort();
    assert_eq!(found, want, "{out}");
    assert!(r["problems"].as_array().unwrap().is_empty(), "{out}");

    // Run with another key than the daemon's (rotated in the env file, not restarted; a shell's
    // leftover): every position would read as sold outside. The daemon refuses each change.
    let other_key = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
    let held = positions(&l.d);
    let out = l.d.cmd(&["reconcile", "--apply"]).env("PRIVATE_KEY", other_key).output().unwrap();
    let (code, out, err) = output(out);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("applied: position in"), "{out}{err}");
    assert!(err.contains("refused: reconcile compared the chain balances of"), "{err}");
    assert_eq!(positions(&l.d), held, "nothing rebooked");

    // --apply books each one through the daemon (its book follows), never as an order.
    let posts = l.clob.posts().len();
    let (code, out, err) = l.d.run_cli(&["reconcile", "--apply"]);
    assert_eq!(code, 1, "differences were found: {out}{err}");
    assert_eq!(out.matches("applied: position in").count(), 4, "{out}");
    assert_eq!(l.clob.posts().len(), posts, "reconcile never trades");
    let mut want_pos = vec![
        (STD_TOKEN.to_string(), "12".to_owned()),
        (NEG_TOKEN.to_string(), "4".to_owned()),
        (DUSTY.to_string(), "10.005".to_owned()),
        (OTHER.to_string(), "5".to_owned()),
    ];
    want_pos.sort();
    assert_eq!(positions(&l.d), want_pos);
    // The token the journal never traded is booked at what the account paid (the Data API's
    // average price, 0.5), not at 0: its value is not profit when it resolves.
    let other = l.d.status()["positions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["token_id"].as_str() == Some(OTHER.to_string().as_str()))
        .cloned();
    assert_eq!(other.as_ref().map(|p| p["cost_usdc"].clone()), Some(Value::from("2.5")), "{other:?}");
    let (code, out, _) = l.d.run_cli(&["reconcile"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no difference"), "{out}");
    wait_for(10, "the four reconcile reports", async || (l.d.events("reconcile").len() == 4).then_some(())).await;
    // Each is said as an operator's action (to every chat), with the change and its cause.
    let said = wait_for(10, "the four corrections said", async || {
        let said: Vec<String> = l.d.events("operator").into_iter().filter(|e| e.contains("shares by cli")).collect();
        (said.len() == 4).then_some(said)
    })
    .await;
    let std = format!("position in token {STD_TOKEN} set from 10 to 12 shares by cli");
    assert!(said.iter().any(|e| e.contains(&std)), "{said:?}");

    // The target exits its whole position in the dusty token: we sell every whole lot (10) and the
    // 0.005 left is reported as dust, not left silently.
    l.anvil.set_balance(A, DUSTY, 100 * ONE).await;
    l.anvil.emit(&Fill::v2(9, A, C, false, DUSTY, 100 * ONE, 50 * ONE)).await;
    let warning = wait_for(30, "the dust warning", async || {
        l.d.events("warning").into_iter().find(|m| m.contains("WARNING (dust)"))
    })
    .await;
    assert!(warning.contains("0.005 shares") && warning.contains("less than one lot"), "{warning}");
    l.anvil.set_balance(SIGNER, DUSTY, 5_000).await;
    l.clob.data_positions(&[
        (STD_TOKEN, "12", false),
        (NEG_TOKEN, "4", false),
        (DUSTY, "0.005", false),
        (OTHER, "5", false),
    ]);

    // The daily cron job: a new difference alerts through the daemon's notifier.
    l.anvil.set_balance(SIGNER, STD_TOKEN, 11 * ONE).await;
    l.clob.data_positions(&[
        (STD_TOKEN, "11", false),
        (NEG_TOKEN, "4", false),
        (DUSTY, "0.005", false),
        (OTHER, "5", false),
    ]);
    let (code, out, err) = l.d.run_cli(&["reconcile", "--alert"]);
    assert_eq!(code, 1, "{out}{err}");
    wait_for(10, "the reconcile alert", async || {
        l.d.events("alert")
            .into_iter()
            .find(|m| m.contains("reconcile: 1 difference(s)") && m.contains("sold outside polycopy"))
    })
    .await;
}

/// The daemon stopped while a BUY of ours was sent and unanswered (lookups failing), and the
/// chain already holds its shares: `reconcile --apply` says an order is in flight and books
/// nothing. Booked as bought outside, the shares would be counted twice once the daemon resolves
/// the order at its next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reconcile_when_an_order_is_in_flight_then_apply_waits_for_it() {
    let mut l = live().await;
    l.anvil.install_balances().await;
    l.clob.script(&[Play::Hang]);
    l.clob.lookups_down(true);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the POST", async || (l.clob.posts().len() == 1).then_some(())).await;
    l.d.kill9();
    l.anvil.set_balance(SIGNER, STD_TOKEN, 10 * ONE).await;
    l.clob.data_positions(&[(STD_TOKEN, "10", false)]);
    let (code, out, err) = l.d.run_cli(&["reconcile", "--apply"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("order in flight"), "{out}{err}");
    assert!(!out.contains("applied: position in"), "{out}{err}");
    assert!(positions(&l.d).is_empty(), "nothing booked: {:?}", positions(&l.d));
}

/// The daemon stopped, and the funder's balance moved on chain after the last block its journal
/// read: `reconcile --apply` shows the journal behind the chain and books nothing (read at the
/// node's head, a late settlement of our own match would be counted again once the daemon reads
/// it). Once the daemon runs and has caught up, the difference is booked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reconcile_when_the_balance_moved_after_the_journals_block_then_apply_waits_for_the_daemon() {
    let mut l = one_buy_settled().await;
    l.anvil.set_balance(SIGNER, STD_TOKEN, 10 * ONE).await;
    l.clob.data_positions(&[(STD_TOKEN, "10", false)]);
    let (code, out, err) = l.d.run_cli(&["reconcile"]);
    assert_eq!(code, 0, "the chain and the journal agree: {out}{err}");
    assert_eq!(l.d.stop().code(), Some(0));
    // A block first: anvil writes a storage change into the head's own state.
    l.anvil.mine(1).await;
    l.anvil.set_balance(SIGNER, STD_TOKEN, 12 * ONE).await;
    l.clob.data_positions(&[(STD_TOKEN, "12", false)]);
    let before = positions(&l.d);
    let (code, out, err) = l.d.run_cli(&["reconcile", "--apply"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("journal behind the chain"), "{out}{err}");
    assert!(!out.contains("applied"), "{out}{err}");
    assert_eq!(positions(&l.d), before, "nothing booked");
    start_live(&mut l).await;
    let (code, out, err) = l.d.run_cli(&["reconcile", "--apply"]);
    assert_eq!(code, 1, "a difference was found: {out}{err}");
    assert_eq!(out.matches("applied: position in").count(), 1, "{out}{err}");
    assert_eq!(positions(&l.d), vec![(STD_TOKEN.to_string(), "12".to_owned())]);
}

/// A live daemon with one copied buy of the standard token, settled on chain.
async fn one_buy_settled() -> Live {
    let mut l = live().await;
    l.anvil.install_balances().await;
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(30, "the buy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    settle_buys_on_chain(&l, &[STD_TOKEN]).await;
    l
}

/// Reconcile's node is behind the block that settled our BUY (the daemon's feed saw it; a load
/// balancer's backend has not yet): read there, the shares look sold outside. `--apply` books
/// nothing (the shares would leave the books, and the target's exit would never be mirrored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reconcile_when_its_node_is_behind_our_settled_fill_then_apply_books_nothing() {
    let l = one_buy_settled().await;
    l.anvil.set_balance(SIGNER, STD_TOKEN, 10 * ONE).await;
    l.clob.data_positions(&[(STD_TOKEN, "10", false)]);
    let filled_in: u64 = {
        let c = rusqlite::Connection::open(l.d.dir.join("journal.db")).unwrap();
        c.query_row("SELECT MAX(block_number) FROM own_fills", [], |r| r.get::<_, i64>(0)).unwrap() as u64
    };
    let proxy = crate::support::capped_rpc::CappedRpc::start(&l.anvil.http_url(), u64::MAX).await;
    proxy.heads_behind(l.anvil.head().await - filled_in + 1);
    let before = positions(&l.d);
    let out = l.d.cmd(&["reconcile", "--apply"]).env("POLYGON_RPC_URL", &proxy.url).output().unwrap();
    let (code, out, err) = output(out);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("chain 0") && out.contains("node behind our fill"), "{out}{err}");
    assert!(!out.contains("applied: position in"), "{out}{err}");
    assert_eq!(positions(&l.d), before, "nothing booked");
    // A node at the head agrees with the journal.
    let (code, out, err) = l.d.run_cli(&["reconcile", "--apply"]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Tokens bought outside polycopy in markets that resolved, as the Data API lists them
/// (`redeemable`, priced at their payout): the winning one is "resolved, not redeemed" (redeem it),
/// the losing one is no difference at all. Told to redeem it, the operator would only burn it,
/// and the nightly `--alert` would say so for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reconcile_when_tokens_bought_outside_resolved_then_only_the_winning_ones_are_to_redeem() {
    const WON: u64 = 5005;
    const LOST: u64 = 6006;
    let l = one_buy_settled().await;
    for (t, payout) in [(WON, "1"), (LOST, "0")] {
        l.clob.token(t, Token::open(false));
        l.clob.edit_token(t, |k| (k.closed, k.payout) = (true, Some(payout)));
        l.anvil.set_balance(SIGNER, t, 5 * ONE).await;
    }
    l.anvil.set_balance(SIGNER, STD_TOKEN, 10 * ONE).await;
    l.clob.data_positions(&[(STD_TOKEN, "10", false), (WON, "5", true), (LOST, "5", true)]);
    let (code, out, err) = l.d.run_cli(&["reconcile", "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let found: Vec<(String, String)> = r["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["token_id"].as_str().unwrap().to_owned(), d["cause"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(found, [(WON.to_string(), "unredeemed".to_owned())], "{out}");
}

/// The V3 PositionManager's address holds no code on this chain (not deployed there yet, or a
/// wrong address in polycopy.toml): it holds nothing, and the Conditional Tokens markets are
/// compared and booked as always, not all reported unreadable every night.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reconcile_when_the_position_manager_has_no_code_then_the_other_markets_are_compared() {
    let l = one_buy_settled().await;
    l.anvil.set_balance(SIGNER, STD_TOKEN, 4 * ONE).await;
    l.clob.data_positions(&[(STD_TOKEN, "4", false)]);
    l.d.set("chain", "position_manager = \"0x00000000000000000000000000000000000a11ce\"");
    let (code, out, err) = l.d.run_cli(&["reconcile", "--apply"]);
    assert_eq!(code, 1, "a difference: {out}{err}");
    assert!(!format!("{out}{err}").contains("could not be read"), "{out}{err}");
    assert_eq!(out.matches("applied: position in").count(), 1, "{out}{err}");
    assert_eq!(positions(&l.d), vec![(STD_TOKEN.to_string(), "4".to_owned())]);
}

/// The chain cannot be read: the Data API's figure is shown, but `--apply` does not book it (it
/// can lag a fresh trade); the position is left as the journal has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reconcile_when_the_chain_is_unreadable_then_apply_books_nothing() {
    let l = one_buy_settled().await;
    l.clob.data_positions(&[(STD_TOKEN, "4", false)]);
    let before = positions(&l.d);
    let out = l.d.cmd(&["reconcile", "--apply"]).env("POLYGON_RPC_URL", "http://127.0.0.1:9").output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("Data API 4") && stdout.contains("sold outside polycopy"), "{stdout}");
    assert!(stderr.contains(&format!("not applied: {STD_TOKEN}: the chain could not be read")), "{stdout}{stderr}");
    assert!(!stdout.contains("applied: position in"), "{stdout}");
    assert_eq!(positions(&l.d), before, "nothing booked");
    // The daily cron run (--alert) says so through the daemon, as it says a run that failed
    // outright: neither may stop working unnoticed.
    let out = l.d.cmd(&["reconcile", "--alert"]).env("POLYGON_RPC_URL", "http://127.0.0.1:9").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for(10, "the alert of an incomplete run", async || {
        l.d.events("alert")
            .into_iter()
            .find(|m| m.contains("reconcile could not compare every position: chain unreadable"))
    })
    .await;
    let out = l.d.cmd(&["reconcile", "--alert"]).env("DATA_API_URL", "not a url").output().unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for(10, "the alert of a failed run", async || {
        l.d.events("alert").into_iter().find(|m| m.contains("reconcile FAILED"))
    })
    .await;
    // With the chain readable again, the chain's figure is the one booked.
    l.anvil.set_balance(SIGNER, STD_TOKEN, 4 * ONE).await;
    let (code, out, err) = l.d.run_cli(&["reconcile", "--apply"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(out.matches("applied: position in").count(), 1, "{out}{err}");
    assert_eq!(positions(&l.d), vec![(STD_TOKEN.to_string(), "4".to_owned())]);
}

/// The daemon runs but its control socket was removed: `--apply` refuses to write behind it (its
/// book would keep the old count, and its exits would sell shares that are gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reconcile_when_the_daemon_runs_without_its_socket_then_apply_is_refused() {
    let l = one_buy_settled().await;
    l.anvil.set_balance(SIGNER, STD_TOKEN, 4 * ONE).await;
    l.clob.data_positions(&[(STD_TOKEN, "4", false)]);
    let before = positions(&l.d);
    l.d.remove_control_socket();
    let (code, out, err) = l.d.run_cli(&["reconcile", "--apply"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("nothing answers on its control socket"), "{out}{err}");
    assert!(!out.contains("applied"), "{out}{err}");
    assert_eq!(positions(&l.d), before, "nothing booked behind the daemon");
}

/// Past the 10,000 positions the Data API can be read for (losing tokens are never redeemed, so
/// its list only grows), its list is not used in part: the journal's token listed after them would
/// read as "holds none", a false "sold outside polycopy" every night.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reconcile_when_the_data_api_lists_more_than_can_be_read_then_it_is_not_used() {
    let l = one_buy_settled().await;
    l.anvil.set_balance(SIGNER, STD_TOKEN, 10 * ONE).await;
    let mut listed: Vec<(u64, &str, bool)> = (0..10_000).map(|i| (900_000 + i, "0", true)).collect();
    listed.push((STD_TOKEN, "10", false));
    l.clob.data_positions(&listed);
    let (code, out, err) = l.d.run_cli(&["reconcile"]);
    assert_eq!(code, 1, "a source that could not be read: {out}{err}");
    assert!(format!("{out}{err}").contains("lists 10000 positions or more"), "{out}{err}");
    assert!(!out.contains("sold outside"), "{out}");
}

/// Paper mode has nothing on chain to reconcile with, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reconcile_when_paper_then_says_there_is_nothing_to_compare() {
    let Running { anvil: _a, dir: _dir, d } = running(&wallets(&[(A, "whale", true)], 0.1)).await;
    let (code, out, _) = d.run_cli(&["reconcile"]);
    assert_eq!(code, 0);
    assert!(out.contains("paper mode"), "{out}");
}

/// Today's P&L after `reconcile --apply`: an adjustment (shares that left outside polycopy, booked
/// at cost) is not today's trading. A position marked at a loss and reconciled away leaves the
/// day's loss where it was, instead of wiping it (and with it what the daily loss limit counts);
/// the day's opening value moves instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reconcile_when_a_marked_position_is_applied_away_then_todays_pnl_does_not_move() {
    let mut l = live().await;
    l.d.set("risk", "mark_interval_s = 1");
    l.clob.set_mid(STD_TOKEN, "0.2");
    l.anvil.install_balances().await;
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(30, "the copy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    settle_buys_on_chain(&l, &[STD_TOKEN]).await;
    let base = l.d.http_base().await;
    // 10 shares for 5.10 marked at 0.20: -3.10 today.
    let gauge = async |name: &str| {
        let (_, m) = crate::support::http::http_get(&base, "/metrics").await;
        m.lines().find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_owned))
    };
    wait_for(20, "marked", async || gauge("polycopy_pnl_today_usdc").await.filter(|p| p == "-3.1")).await;
    l.anvil.set_balance(SIGNER, STD_TOKEN, 0).await;
    l.clob.data_positions(&[]);
    let (code, out, err) = l.d.run_cli(&["reconcile", "--apply"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("applied: position in"), "{out}{err}");
    assert!(positions(&l.d).is_empty(), "{out}");
    // The book revalued without the position (the same step publishes today's P&L).
    wait_for(20, "the book revalued", async || gauge("polycopy_unrealized_pnl_usdc").await.filter(|u| u == "0")).await;
    assert_eq!(gauge("polycopy_pnl_today_usdc").await.as_deref(), Some("-3.1"), "the day's loss stays");
}
