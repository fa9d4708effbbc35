//! The trading engine against the fake CLOB: orders in flight without a lock (a hanging POST holds
//! up no halt, no health answer, no other copy), several orders in flight at once, every outcome
//! resolved as it happens (a `null` lookup, a resting GTD order, our own fill on chain), and a
//! restart with unresolved orders that becomes ready at once.

use std::time::Duration;

use crate::support::clob::{Play, Token};
use crate::support::http::http_get;
use crate::support::live::*;
use crate::support::telegram::FakeTelegram;
use crate::support::*;
use alloy::primitives::B256;
use serde_json::{Value, json};

/// Replaces a setting the live harness wrote (a second line would be a duplicate key).
fn reset(d: &Daemon, from: &str, to: &str) {
    let p = d.dir.join("polycopy.toml");
    let s = std::fs::read_to_string(&p).unwrap();
    assert!(s.contains(from), "{from} not in the settings");
    std::fs::write(p, s.replace(from, to)).unwrap();
}

fn row(d: &Daemon, n: usize) -> Option<Value> {
    d.trades().into_iter().nth(n)
}

/// The order's id (its hash) as the journal has it.
fn order_id(d: &Daemon, n: usize) -> B256 {
    orders_in_journal(d)[n].0.parse().unwrap()
}

/// A live daemon (GTD orders; each of `settings` replaced in its settings file first) whose copy
/// of a target's BUY rests on the book.
async fn resting_gtd(settings: &[(&str, &str)]) -> Live {
    let mut l = live().await;
    for (from, to) in settings {
        reset(&l.d, from, to);
    }
    l.d.set("live", "order_type = \"GTD\"");
    l.clob.script(&[Play::Rest]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the order resting", async || (orders_in_journal(&l.d).first()?.1 == "live").then_some(())).await;
    l
}

/// An order whose answer never comes, whose lookups answer `null`, and whose sends again are all
/// refused (a market that stopped taking orders): over its whole life, windows and restarts
/// together, a null lookup leads to at most two more sends of it, never one per run; and with no
/// fill of ours on chain past its settlement it ends as a no-fill, its exposure released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_null_lookups_and_refused_resends_then_sent_at_most_twice_more_and_ends_a_no_fill() {
    let mut l = live().await;
    reset(&l.d, "resolve_for_s = 15", "resolve_for_s = 2");
    l.d.set("live", "settle_timeout_s = 2");
    l.clob.null_lookups();
    let refused = Play::Status(400, "invalid order: the market is not accepting orders");
    l.clob.script(&[Play::Lost, refused.clone(), refused.clone(), refused.clone(), refused]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(30, "the outcome to be unknown", async || row(&l.d, 0).filter(|r| r["reason"] == "unknown")).await;
    for restart in 0..2 {
        l.d.kill9();
        let before = l.clob.requests("/data/order");
        start_live(&mut l).await;
        wait_for(30, "two lookups after the restart", async || {
            (l.clob.requests("/data/order") >= before + 2).then_some(())
        })
        .await;
        let posts = l.clob.posts().len();
        assert!(posts <= 3, "restart {restart}: {posts} POSTs for one order");
    }
    assert_eq!(l.clob.posts().len(), 3, "the first send, and one more in each of the first two runs");
    let r = wait_for(60, "the copy to end", async || {
        l.anvil.mine(1).await;
        row(&l.d, 0).filter(|r| r["status"] != "pending")
    })
    .await;
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("rejected"), Some("no_liquidity")), "{r}");
    assert_eq!(l.clob.posts().len(), 3, "never sent again");
    assert_eq!(l.d.status()["daemon"]["reserved_usdc"], "0", "{}", l.d.status());
}

/// An accepted order whose answer never comes and whose lookups answer `null` (the real CLOB's
/// quirk): a handful of POSTs at most, never a loop, and our own fill on chain books it without a
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_lookups_answer_null_then_booked_from_our_fill_on_chain_without_restart() {
    let mut l = live().await;
    reset(&l.d, "resolve_for_s = 15", "resolve_for_s = 3");
    l.clob.null_lookups();
    l.clob.script(&[Play::Hang]);
    start_live(&mut l).await;
    let pid = l.d.pid();
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    let r = wait_for(30, "the outcome to be unknown", async || row(&l.d, 0).filter(|r| r["reason"] == "unknown")).await;
    assert_eq!(r["status"], "pending", "{r}");
    let posts = l.clob.posts().len();
    assert!((1..=3).contains(&posts), "a null lookup led to {posts} POSTs");
    assert!(l.clob.requests("/data/order") >= 2, "looked up, with backoff");

    // Our funder's fill of that order settles on chain: 10 shares for 5.10 pUSD.
    let ours = Fill { order_hash: order_id(&l.d, 0), ..Fill::v2(0, SIGNER, C, true, STD_TOKEN, 10 * ONE, 5_100_000) };
    l.anvil.emit(&ours).await;
    let r = wait_for(20, "the booking", async || row(&l.d, 0).filter(|r| r["status"] == "executed")).await;
    assert_eq!((r["shares"].as_str(), r["usdc"].as_str()), (Some("10"), Some("5.1")), "{r}");
    assert_eq!(l.d.pid(), pid, "no restart was needed");
    // Reported a moment after the journal's booking.
    wait_for(10, "the booking reported", async || {
        l.d.log().contains("was filled on chain, never confirmed by the CLOB").then_some(())
    })
    .await;
    assert_eq!(orders_in_journal(&l.d)[0].1, "matched");
    assert_eq!(l.clob.posts().len(), posts, "nothing more was sent");
    let st = l.d.status();
    assert_eq!(st["positions"][0]["shares"], "10", "{st}");
}

/// Our BUY's outcome is unknown past its window (no answer, lookups `null`) when the target sells:
/// the SELL's copy waits for that BUY rather than being refused as `no_position` at once (a BUY
/// found filled later would stay open, the target's exit lost, nobody told). Our fill on chain
/// books the BUY, and the SELL is then copied on what it bought.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_target_sells_while_our_buy_is_of_unknown_outcome_then_the_sell_waits_and_is_copied() {
    let mut l = live().await;
    reset(&l.d, "resolve_for_s = 15", "resolve_for_s = 2");
    l.clob.null_lookups();
    l.clob.script(&[Play::Hang]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(30, "the BUY's outcome to be unknown", async || row(&l.d, 0).filter(|r| r["reason"] == "unknown")).await;
    l.anvil.emit(&Fill::v2(2, A, C, false, STD_TOKEN, 100 * ONE, 50 * ONE)).await;
    wait_for(20, "the SELL journaled", async || row(&l.d, 1)).await;
    // A later fill of another token is decided: the SELL had every chance to be refused by now.
    l.anvil.emit(&buy(3, STD_TOKEN + 7)).await;
    let other = (STD_TOKEN + 7).to_string();
    wait_for(20, "the later BUY decided", async || {
        l.d.trades().into_iter().find(|r| r["token_id"] == other.as_str() && r["status"] != "pending")
    })
    .await;
    let sell = row(&l.d, 1).unwrap();
    assert_eq!(sell["status"], "pending", "the SELL waits for our BUY's outcome: {sell}");

    // Our funder's fill of that BUY settles on chain: 10 shares for 5.10 pUSD.
    let ours = Fill { order_hash: order_id(&l.d, 0), ..Fill::v2(0, SIGNER, C, true, STD_TOKEN, 10 * ONE, 5_100_000) };
    l.anvil.emit(&ours).await;
    let sell = wait_for(30, "the SELL copied", async || row(&l.d, 1).filter(|r| r["status"] != "pending")).await;
    assert_eq!((sell["status"].as_str(), sell["side"].as_str()), (Some("executed"), Some("SELL")), "{sell}");
    assert_eq!(sell["shares"].as_str(), Some("10"), "all it bought: the target sold all it had: {sell}");
}

/// An order of unknown outcome whose match settles on chain in parts (one match, several
/// transactions): each part is booked, and the rest stays reserved until the chain is read past
/// the settlement timeout after the first, so the caps count what a later part may still add;
/// then it is let go, without a restart, a lookup's answer or anything sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_our_unconfirmed_match_settles_in_parts_then_the_rest_stays_reserved_until_settlement_ends() {
    let mut l = live().await;
    reset(&l.d, "resolve_for_s = 15", "resolve_for_s = 3");
    l.d.set("live", "settle_timeout_s = 15");
    l.clob.null_lookups();
    l.clob.script(&[Play::Hang]);
    start_live(&mut l).await;
    let pid = l.d.pid();
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(30, "the outcome to be unknown", async || row(&l.d, 0).filter(|r| r["reason"] == "unknown")).await;
    let posts = l.clob.posts().len();
    let reserved = async |usdc: &str| {
        wait_for(20, &format!("{usdc} pUSD reserved"), async || {
            (l.d.status()["daemon"]["reserved_usdc"] == usdc).then_some(())
        })
        .await;
    };
    reserved("5.1").await;
    let ours = |shares: u64, usdc: u64| Fill {
        order_hash: order_id(&l.d, 0),
        ..Fill::v2(0, SIGNER, C, true, STD_TOKEN, shares * ONE, usdc)
    };
    l.anvil.emit(&ours(4, 2_040_000)).await;
    wait_for(20, "the first part", async || row(&l.d, 0).filter(|r| r["shares"] == "4")).await;
    reserved("3.06").await;
    l.anvil.emit(&ours(3, 1_530_000)).await;
    wait_for(20, "the second part", async || row(&l.d, 0).filter(|r| r["shares"] == "7")).await;
    reserved("1.53").await;
    // Blocks go on being mined (and read): once past the settlement timeout, no part can come.
    wait_for(40, "the rest let go", async || {
        l.anvil.mine(1).await;
        (l.d.status()["daemon"]["reserved_usdc"] == "0").then_some(())
    })
    .await;
    let st = l.d.status();
    assert_eq!(st["positions"][0]["shares"], "7", "{st}");
    assert_eq!(row(&l.d, 0).unwrap()["usdc"], "3.57");
    assert_eq!(l.clob.posts().len(), posts, "nothing more was sent");
    assert_eq!(l.d.pid(), pid, "no restart was needed");
    let errors = l.d.events("error");
    assert!(errors.iter().all(|e| e.contains("unknown outcome")), "only the window's end was an error: {errors:?}");
}

/// The target's exit goes stale while our BUY of the token is of unknown outcome (nothing booked
/// yet): the exit is refused, and the operator is told that BUY may still fill and stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_an_exit_is_stale_while_our_buy_is_of_unknown_outcome_then_the_operator_is_told() {
    let mut l = live().await;
    reset(&l.d, "resolve_for_s = 15", "resolve_for_s = 2");
    l.d.set("copy", "max_copy_delay_s = 2");
    l.clob.null_lookups();
    l.clob.script(&[Play::Hang]);
    let hold = l.d.dir.join("hold-sizing");
    l.d.start_with(&[("POLYCOPY_FAULT", "hold_before_sizing"), ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap())]);
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(30, "the BUY's outcome to be unknown", async || row(&l.d, 0).filter(|r| r["reason"] == "unknown")).await;
    std::fs::write(&hold, "").unwrap();
    let (block, _) = l.anvil.emit(&Fill::v2(2, A, C, false, STD_TOKEN, 100 * ONE, 50 * ONE)).await;
    wait_for(20, "the exit held", async || l.d.log().contains("fault injection: holding").then_some(())).await;
    l.anvil.wait_older_than(block, 2).await;
    std::fs::remove_file(&hold).unwrap();
    let sale = wait_for(20, "the exit decided", async || row(&l.d, 1).filter(|r| r["status"] != "pending")).await;
    assert_eq!((sale["status"].as_str(), sale["reason"].as_str()), (Some("rejected"), Some("stale")), "{sale}");
    let alert = wait_for(20, "the alert", async || {
        l.d.events("alert").into_iter().find(|a| a.contains("longer ago than copy.max_copy_delay_s"))
    })
    .await;
    assert!(alert.contains("outcome not known yet"), "{alert}");
}

/// The exchange answers "not now" (429) to every send of our order, yet its match settles on
/// chain between two sends (the first answer hid an order the engine took): the fill is booked,
/// and the refusal that ends the retries is stale. No "refused" report, no error toward the
/// breaker, for a copy that is booked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_our_fill_on_chain_books_an_order_the_exchange_then_refuses_then_no_refusal_is_reported() {
    let mut l = live().await;
    l.clob.script(&vec![Play::Status(429, "too many requests, retry after 3 seconds"); 3]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the first POST", async || (!l.clob.posts().is_empty()).then_some(())).await;
    let ours = Fill { order_hash: order_id(&l.d, 0), ..Fill::v2(0, SIGNER, C, true, STD_TOKEN, 10 * ONE, 5_100_000) };
    l.anvil.emit(&ours).await;
    wait_for(20, "our fill booked", async || row(&l.d, 0).filter(|r| r["shares"] == "10")).await;
    wait_for(30, "the placement's end", async || {
        l.d.log().lines().find(|l| l.contains("placement ended") && l.contains("fill=1 ")).map(str::to_owned)
    })
    .await;
    assert_eq!(l.clob.posts().len(), 3, "sent three times, refused each time");
    assert!(l.d.events("error").iter().all(|e| !e.contains("refused")), "{:?}", l.d.events("error"));
    assert_eq!(row(&l.d, 0).unwrap()["status"], "executed");
    assert_eq!(l.d.status()["daemon"]["reserved_usdc"], "0");
    assert_eq!(l.d.events("rejected"), Vec::<String>::new(), "no refusal reported");
}

/// Starts `l`, copies a BUY of 10 shares whose POST the CLOB takes, books the first part of its
/// match (4 shares) from our fill on chain while the order is placed, and waits for the
/// placement's end (however the CLOB was scripted to answer).
async fn first_part_settles_while_placed(l: &mut Live) {
    start_live(l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the POST", async || (l.clob.posts().len() == 1).then_some(())).await;
    let ours = Fill { order_hash: order_id(&l.d, 0), ..Fill::v2(0, SIGNER, C, true, STD_TOKEN, 4 * ONE, 2_040_000) };
    l.anvil.emit(&ours).await;
    wait_for(20, "the first part", async || row(&l.d, 0).filter(|r| r["shares"] == "4")).await;
    wait_for(30, "the placement's end", async || {
        l.d.log().lines().find(|l| l.contains("placement ended") && l.contains("fill=1 ")).map(str::to_owned)
    })
    .await;
}

/// The first part of our match settles on chain while the order is placed, then the order's own
/// answer (its lookup, the POST's answer lost) books the whole match: nothing is left to settle,
/// so nothing stays reserved. The rest was held until the settlement timeout, its exposure counted
/// twice (in the book and in the caps' reservations).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_part_settles_first_and_the_answer_books_the_whole_match_then_nothing_stays_reserved() {
    let mut l = live().await;
    // The POST's wait outlasts the part's booking however loaded the machine is.
    reset(&l.d, "request_timeout_ms = 1500", "request_timeout_ms = 6000");
    l.d.set("live", "settle_timeout_s = 600");
    l.clob.script(&[Play::Hang]);
    first_part_settles_while_placed(&mut l).await;
    assert_eq!(row(&l.d, 0).unwrap()["shares"], "10", "the answer booked the whole match");
    let st = l.d.status();
    assert_eq!(st["daemon"]["reserved_usdc"], "0", "nothing left to hold: {st}");
}

/// As above, but the first part of the match settles while the order is still being placed (its
/// answer never came): the placement then ends on the part the chain booked, and the rest stays
/// reserved for a later part of the same match all the same, until the settlement timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_our_match_settles_in_part_while_its_order_is_placed_then_the_rest_stays_reserved_past_the_placement()
 {
    let mut l = live().await;
    reset(&l.d, "resolve_for_s = 15", "resolve_for_s = 4");
    l.d.set("live", "settle_timeout_s = 10");
    l.clob.null_lookups();
    l.clob.script(&[Play::Hang]);
    first_part_settles_while_placed(&mut l).await;
    let st = l.d.status();
    assert_eq!(st["daemon"]["reserved_usdc"], "3.06", "the rest of the match is still held: {st}");
    assert_eq!(row(&l.d, 0).unwrap()["status"], "executed");
    // Once the chain is read past the settlement timeout, no part can come: the rest is let go.
    wait_for(40, "the rest let go", async || {
        l.anvil.mine(1).await;
        (l.d.status()["daemon"]["reserved_usdc"] == "0").then_some(())
    })
    .await;
    assert_eq!(l.d.status()["positions"][0]["shares"], "4");
}

/// An accepted order whose answer never comes and whose lookups say `MATCHED` with a matched size
/// of 0: not a no-fill (its exposure kept, nothing sent again), and booked from our own fill on
/// chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_lookup_says_matched_with_no_size_then_not_a_no_fill_and_booked_from_chain() {
    let mut l = live().await;
    reset(&l.d, "resolve_for_s = 15", "resolve_for_s = 3");
    l.clob.unsized_lookups();
    l.clob.script(&[Play::Hang]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    let r = wait_for(30, "the outcome to be unknown", async || row(&l.d, 0).filter(|r| r["reason"] == "unknown")).await;
    assert_eq!(r["status"], "pending", "not a no-fill: {r}");
    assert_eq!(l.clob.posts().len(), 1, "the exchange has it: never sent again");
    assert!(l.clob.requests("/data/order") >= 2, "looked up, with backoff");
    assert_eq!(l.d.status()["daemon"]["reserved_usdc"], "5.1", "its exposure is kept");

    let ours = Fill { order_hash: order_id(&l.d, 0), ..Fill::v2(0, SIGNER, C, true, STD_TOKEN, 10 * ONE, 5_100_000) };
    l.anvil.emit(&ours).await;
    let r = wait_for(20, "the booking", async || row(&l.d, 0).filter(|r| r["status"] == "executed")).await;
    assert_eq!((r["shares"].as_str(), r["usdc"].as_str()), (Some("10"), Some("5.1")), "{r}");
    assert_eq!(l.clob.posts().len(), 1, "nothing more was sent");
}

/// An order whose answer never comes, whose lookups fail, and with no fill of ours on chain long
/// after it was sent did not fill: a FAK order matches when it arrives or never, and a match
/// settles within `settle_timeout_s`. Once the chain is read that far it ends as a no-fill, without
/// a restart or an alert, its exposure released and nothing sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_an_unanswered_order_has_no_fill_on_chain_past_settlement_then_it_did_not_fill() {
    let mut l = live().await;
    // The window ends well after the settlement timeout, so that the chain is read that far by
    // then even on a loaded machine (with 3 s, a feed 1 s behind made the outcome unknown first).
    reset(&l.d, "resolve_for_s = 15", "resolve_for_s = 8");
    l.d.set("live", "settle_timeout_s = 2");
    l.clob.script(&[Play::HangUnmatched]);
    l.clob.lookups_down(true);
    start_live(&mut l).await;
    let pid = l.d.pid();
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the order sent", async || (l.clob.posts().len() == 1).then_some(())).await;
    // Blocks go on being mined (and read) while the order's fate is looked up.
    let r = wait_for(40, "the copy to end", async || {
        l.anvil.mine(1).await;
        row(&l.d, 0).filter(|r| r["status"] != "pending")
    })
    .await;
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("rejected"), Some("no_liquidity")), "{r}");
    assert_eq!(orders_in_journal(&l.d)[0].1, "no_fill");
    assert_eq!(l.clob.posts().len(), 1, "never sent again");
    assert_eq!(l.d.pid(), pid, "no restart was needed");
    assert!(l.d.events("error").is_empty(), "{:?}", l.d.events("error"));
    let st = l.d.status();
    assert!(st["positions"].as_array().is_none_or(Vec::is_empty), "{st}");
}

/// A GTD order resting on the book longer than the resolve window is neither an error nor sent
/// again, and is booked once when it fills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_gtd_order_rests_then_no_error_no_resend_and_booked_once_when_filled() {
    let mut l = live().await;
    reset(&l.d, "resolve_for_s = 15", "resolve_for_s = 2");
    l.d.set("live", "order_type = \"GTD\"");
    l.clob.script(&[Play::Rest]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    // Lookups back off 0.25, 0.5, 1, 2, 4 s: six of them span well past the 2 s window.
    wait_for(30, "six lookups of the resting order", async || (l.clob.requests("/data/order") >= 6).then_some(()))
        .await;
    let r = row(&l.d, 0).unwrap();
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("pending"), None), "resting is not an error: {r}");
    assert!(l.d.events("error").is_empty(), "{:?}", l.d.events("error"));
    assert_eq!(l.clob.posts().len(), 1, "never sent again");

    l.clob.fill_resting();
    let r = wait_for(20, "the fill", async || row(&l.d, 0).filter(|r| r["status"] == "executed")).await;
    assert_eq!(r["shares"].as_str(), Some("10"), "{r}");
    assert_eq!(l.clob.posts().len(), 1);
    assert_eq!(l.d.executions_for(&l.anvil_tx_of_first_fill().await), 1);
}

/// A resting GTD order whose market resolves: the exchange takes it off the book and its lookup
/// answers `CANCELED_MARKET_RESOLVED`, a status the SDK does not name. It is final (nothing
/// matched: a no-fill), not an unknown looked up until its window ends and then counted as an
/// error; never sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_resting_orders_market_resolves_then_it_ends_as_the_exchange_says() {
    let mut l = live().await;
    l.d.set("live", "order_type = \"GTD\"");
    l.clob.script(&[Play::Rest]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "resting on the book", async || l.clob.orders().iter().any(|o| o.resting).then_some(())).await;
    l.clob.resolve_resting();
    let r = wait_for(30, "the order ended", async || row(&l.d, 0).filter(|r| r["status"] != "pending")).await;
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("rejected"), Some("no_liquidity")), "{r}");
    assert!(l.d.events("error").is_empty(), "not an error: {:?}", l.d.events("error"));
    assert_eq!(l.clob.posts().len(), 1, "never sent again");
}

/// An order sent before a crash whose lookups answer `null`, found again after the copy has grown
/// too old to send: the exchange may have filled it, so it is not refused as stale (which would
/// drop our fill on chain later), it is not sent again, and our fill on chain books it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_an_unanswered_order_is_found_stale_after_a_restart_then_kept_and_booked_from_chain() {
    let mut l = live().await;
    reset(&l.d, "resolve_for_s = 15", "resolve_for_s = 2");
    l.d.set("copy", "max_copy_delay_s = 2");
    l.clob.null_lookups();
    l.clob.script(&[Play::Hang]);
    start_live(&mut l).await;
    let (block, _) = l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the POST", async || (!l.clob.posts().is_empty()).then_some(())).await;
    l.d.kill9();
    l.anvil.wait_older_than(block, 2).await;
    start_live(&mut l).await;
    let r = wait_for(30, "the outcome to be unknown", async || row(&l.d, 0).filter(|r| r["reason"] == "unknown")).await;
    assert_eq!(r["status"], "pending", "an order the exchange may have filled is not refused: {r}");
    assert_eq!(l.clob.posts().len(), 1, "too old to send again");

    let ours = Fill { order_hash: order_id(&l.d, 0), ..Fill::v2(0, SIGNER, C, true, STD_TOKEN, 10 * ONE, 5_100_000) };
    l.anvil.emit(&ours).await;
    let r = wait_for(20, "the booking", async || row(&l.d, 0).filter(|r| r["status"] == "executed")).await;
    assert_eq!((r["shares"].as_str(), r["usdc"].as_str()), (Some("10"), Some("5.1")), "{r}");
    assert_eq!(l.d.status()["positions"][0]["shares"], "10");
    assert_eq!(l.clob.posts().len(), 1);
}

/// A GTD order found resting by a lookup (here after a restart, as after a POST whose answer was
/// lost) is watched until its expiry like one answered `live`: no error, no alert, never sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_resting_gtd_order_is_found_by_lookup_after_a_restart_then_watched_not_an_error() {
    let mut l = resting_gtd(&[("resolve_for_s = 15", "resolve_for_s = 2")]).await;
    l.d.kill9();
    start_live(&mut l).await;
    let before = l.clob.requests("/data/order");
    // Lookups back off 0.25, 0.5, 1, 2, 4 s: six of them span well past the 2 s window.
    wait_for(30, "six lookups after the restart", async || {
        (l.clob.requests("/data/order") >= before + 6).then_some(())
    })
    .await;
    let r = row(&l.d, 0).unwrap();
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("pending"), None), "resting is not an error: {r}");
    assert!(l.d.events("error").is_empty(), "{:?}", l.d.events("error"));
    assert_eq!(l.clob.posts().len(), 1, "never sent again");
    l.clob.fill_resting();
    let r = wait_for(20, "the fill", async || row(&l.d, 0).filter(|r| r["status"] == "executed")).await;
    assert_eq!(r["shares"].as_str(), Some("10"), "{r}");
    assert_eq!(l.clob.posts().len(), 1);
}

/// A GTD order resting on the book when trading is halted is taken off it (it could still fill
/// and add exposure nobody approved any more): cancelled once, its copy ends with nothing matched
/// and says why, and nothing is sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_halted_while_a_gtd_order_rests_then_it_is_cancelled() {
    let l = resting_gtd(&[]).await;
    assert!(l.clob.cancels().is_empty(), "not cancelled while trading goes on");
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "resting order test"]);
    assert_eq!(code, 0, "{out}{err}");
    let cancels = wait_for(10, "the cancel", async || Some(l.clob.cancels()).filter(|c| !c.is_empty())).await;
    assert_eq!(cancels[0].1, format!("{:#x}", order_id(&l.d, 0)));
    let r = wait_for(20, "the copy to end", async || row(&l.d, 0).filter(|r| r["status"] != "pending")).await;
    assert_eq!(r["reason"], "no_liquidity", "{r}");
    assert!(r["detail"].as_str().unwrap_or("").contains("when trading stopped"), "{r}");
    assert_eq!(orders_in_journal(&l.d)[0].1, "no_fill");
    assert_eq!((l.clob.cancels().len(), l.clob.posts().len()), (1, 1), "cancelled once, never sent again");
}

/// Our API key was replaced on the exchange's side while a GTD order rests, and trading halts:
/// no POST is sent while halted, so it is the refused cancel that derives the credentials again,
/// and the order comes off the book. Before, only a POST derived them: every cancel and lookup
/// failed until the order expired, free to fill after the halt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_the_api_key_is_replaced_while_halted_then_the_cancel_derives_it_again() {
    let l = resting_gtd(&[]).await;
    l.clob.rotate_key();
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "rotated key test"]);
    assert_eq!(code, 0, "{out}{err}");
    // A cancel refused for the key is asked again after each lookup's wait (0.25 s doubling to
    // 4 s): under a loaded CI machine that took over 10 s once.
    wait_for(30, "off the book", async || l.clob.orders().iter().all(|o| !o.resting).then_some(())).await;
    let r = wait_for(20, "the copy to end", async || row(&l.d, 0).filter(|r| r["status"] != "pending")).await;
    assert_eq!(r["reason"], "no_liquidity", "{r}");
    assert_eq!(l.clob.posts().len(), 1, "never sent again");
}

/// The same when the halt lands while a lookup is deriving the rotated key, so that the halt
/// drops that lookup halfway: the cancel derives the key itself at once. Before, the dropped
/// derivation counted as one just made, and every cancel was refused for the next 30 s while the
/// order stayed on the book and could fill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_halt_drops_a_lookup_deriving_a_rotated_key_then_the_cancel_is_not_held_back() {
    let l = resting_gtd(&[]).await;
    let derivations = || l.clob.requests("/auth/derive-api-key") + l.clob.requests("/auth/api-key");
    let before = derivations();
    l.clob.derivations_hang(true);
    l.clob.rotate_key();
    wait_for(20, "a lookup deriving the key", async || (derivations() > before).then_some(())).await;
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "rotated key test"]);
    assert_eq!(code, 0, "{out}{err}");
    let halted = std::time::Instant::now();
    l.clob.derivations_hang(false);
    wait_for(30, "off the book", async || l.clob.orders().iter().all(|o| !o.resting).then_some(())).await;
    // Generous for a loaded machine; the fault held the cancel 30 s.
    assert!(halted.elapsed() < Duration::from_secs(10), "the cancel came {:?} after the halt", halted.elapsed());
    let r = wait_for(20, "the copy to end", async || row(&l.d, 0).filter(|r| r["status"] != "pending")).await;
    assert_eq!(r["reason"], "no_liquidity", "{r}");
    assert_eq!(l.clob.posts().len(), 1, "never sent again");
}

/// A GTD order refused "not now" (503) until the retries run out is given up, and a cancel is
/// asked once all the same: had an answer been lost on the way after the exchange took it, it
/// would rest until its expiry with nobody watching it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_gtd_order_is_given_up_after_503s_then_a_cancel_is_asked_once() {
    gtd_given_up_gets_one_cancel(vec![Play::Status(503, "trading is currently cancel-only"); 3], "trading_paused")
        .await;
}

/// The same when the send after a 503 is refused for good (a balance that may count the order the
/// 503 hid): before, a refusal after "not now" asked no cancel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_gtd_order_is_refused_after_a_503_then_a_cancel_is_asked_once() {
    let script = vec![
        Play::Status(503, "trading is currently cancel-only"),
        Play::Status(400, "not enough balance / allowance"),
    ];
    gtd_given_up_gets_one_cancel(script, "insufficient_balance").await;
}

async fn gtd_given_up_gets_one_cancel(script: Vec<Play>, reason: &str) {
    let mut l = live().await;
    l.d.set("live", "order_type = \"GTD\"");
    let sends = script.len();
    l.clob.script(&script);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    let r = wait_for(30, "the copy given up", async || row(&l.d, 0).filter(|r| r["status"] != "pending")).await;
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("rejected"), Some(reason)), "{r}");
    // A later copy, filled, is the marker that nothing more was asked for the first.
    l.anvil.emit(&buy(2, STD_TOKEN)).await;
    wait_for(30, "the next copy", async || row(&l.d, 1).filter(|r| r["status"] == "executed")).await;
    let cancels = l.clob.cancels();
    assert_eq!(cancels.len(), 1, "asked once: {cancels:?}");
    assert_eq!(cancels[0].1, format!("{:#x}", order_id(&l.d, 0)));
    assert_eq!(l.clob.posts().len(), sends + 1, "the retries, never a new order, and the next copy");
}

/// The same, the exchange failing the first cancel (503): it is asked again, in the background,
/// once, and the copies after it are not held up meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_the_cancel_of_a_gtd_order_given_up_fails_then_it_is_asked_again() {
    let mut l = live().await;
    l.d.set("live", "order_type = \"GTD\"");
    l.clob.script(&vec![Play::Status(503, "trading is currently cancel-only"); 3]);
    l.clob.fail_cancels(1);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(30, "the copy given up", async || row(&l.d, 0).filter(|r| r["status"] != "pending")).await;
    let id = format!("{:#x}", order_id(&l.d, 0));
    let cancels = wait_for(30, "the cancel asked again", async || {
        let c = l.clob.cancels();
        (c.len() >= 2).then_some(c)
    })
    .await;
    assert!(cancels.iter().all(|(_, c)| *c == id), "{cancels:?}");
    // A later copy, filled, is the marker that nothing more was asked once it was answered.
    l.anvil.emit(&buy(2, STD_TOKEN)).await;
    wait_for(30, "the next copy", async || row(&l.d, 1).filter(|r| r["status"] == "executed")).await;
    assert_eq!(l.clob.cancels().len(), 2, "answered the second time: not asked again");
}

/// The same, the exchange failing every cancel until the daemon stops: the cancel is owed in the
/// journal, and the next start asks it again. Nothing else watches that order, and a halt does
/// not reach it, so a restart must not forget it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_cancel_owed_is_unanswered_at_a_restart_then_the_next_start_asks_it() {
    let mut l = live().await;
    l.d.set("live", "order_type = \"GTD\"");
    l.clob.script(&vec![Play::Status(503, "trading is currently cancel-only"); 3]);
    l.clob.fail_cancels(u32::MAX);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(30, "the copy given up", async || row(&l.d, 0).filter(|r| r["status"] != "pending")).await;
    let id = format!("{:#x}", order_id(&l.d, 0));
    wait_for(30, "the cancel owed in the journal", async || (cancels_owed(&l.d) == [id.clone()]).then_some(())).await;
    l.d.stop();
    let before = l.clob.cancels().len();
    assert!(l.clob.cancels().iter().all(|(_, c)| *c == id));
    l.clob.fail_cancels(0);
    start_live(&mut l).await;
    wait_for(30, "the cancel asked again after the start, and answered", async || {
        let asked = l.clob.cancels().len() > before;
        (asked && cancels_owed(&l.d).is_empty()).then_some(())
    })
    .await;
    let after: Vec<_> = l.clob.cancels().split_off(before);
    assert!(after.iter().all(|(_, c)| *c == id), "only the order owed: {after:?}");
    assert_eq!(l.clob.posts().len(), 3, "never sent again");
}

/// The orders whose cancel the journal says is owed.
fn cancels_owed(d: &Daemon) -> Vec<String> {
    let c = rusqlite::Connection::open(d.dir.join("journal.db")).unwrap();
    let mut st =
        c.prepare("SELECT order_id FROM orders WHERE cancel_owed_until_s IS NOT NULL ORDER BY fill_id").unwrap();
    st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

/// A GTD order put on the book whose answer never came and whose lookups fail (503): a halt
/// cancels it all the same, since it may rest there and fill after the halt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_halted_while_an_unanswered_gtd_order_may_rest_then_it_is_cancelled() {
    halt_cancels_an_unanswered_gtd(false).await;
}

/// The same, once its resolve window closed and it waits in the background for its next attempt
/// (15 s away at first, half an hour later on): the halt brings that attempt forward.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_halted_while_an_unanswered_gtd_order_waits_in_the_background_then_it_is_cancelled() {
    halt_cancels_an_unanswered_gtd(true).await;
}

async fn halt_cancels_an_unanswered_gtd(window_closed: bool) {
    let mut l = live().await;
    l.d.set("live", "order_type = \"GTD\"");
    if window_closed {
        reset(&l.d, "resolve_for_s = 15", "resolve_for_s = 2");
    }
    l.clob.script(&[Play::HangRest]);
    l.clob.lookups_down(true);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the POST", async || (l.clob.posts().len() == 1).then_some(())).await;
    wait_for(20, "the outcome unknown", async || (orders_in_journal(&l.d).first()?.1 == "unknown").then_some(())).await;
    if window_closed {
        wait_for(20, "the window to close", async || {
            l.d.events("error").into_iter().find(|e| e.contains("unknown outcome"))
        })
        .await;
    }
    assert!(l.clob.cancels().is_empty(), "not cancelled while trading goes on");
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "unanswered gtd test"]);
    assert_eq!(code, 0, "{out}{err}");
    let cancels = wait_for(10, "the cancel", async || Some(l.clob.cancels()).filter(|c| !c.is_empty())).await;
    assert_eq!(cancels[0].1, format!("{:#x}", order_id(&l.d, 0)));
    // Cancelled is proof the exchange held it: journaled, so that no lookup answering null, in
    // this run or after a restart (where the halt's count starts afresh), sends it again.
    wait_for(10, "the exchange's hold journaled", async || {
        let c = rusqlite::Connection::open(l.d.dir.join("journal.db")).unwrap();
        let held: i64 = c.query_row("SELECT exchange_has FROM orders", [], |r| r.get(0)).unwrap();
        (held == 1).then_some(())
    })
    .await;
    assert_eq!(l.clob.posts().len(), 1, "never sent again");
}

/// A halt while a GTD order's send is unanswered and the exchange has not put it on the book yet
/// (a lagging engine): the first cancel finds nothing to cancel; once a lookup finds the order
/// resting, it is cancelled. Before, that first "not canceled" counted as the cancel and the order
/// rested until its expiry, free to fill after the halt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_halted_before_a_lagging_exchange_books_a_gtd_order_then_it_is_cancelled_once_it_rests() {
    cancelled_once_it_lands(false).await;
}

/// The same while every lookup fails (503): no lookup ever says the order rests, and the cancel is
/// asked again after each wait, a few times, so it still comes off the book once it lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_halted_before_a_lagging_exchange_books_a_gtd_order_and_lookups_fail_then_it_is_still_cancelled()
{
    cancelled_once_it_lands(true).await;
}

async fn cancelled_once_it_lands(lookups_down: bool) {
    let mut l = live().await;
    l.d.set("live", "order_type = \"GTD\"");
    l.clob.lookups_down(lookups_down);
    l.clob.script(&[Play::HangUnseen]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the POST", async || (l.clob.posts().len() == 1).then_some(())).await;
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "lagging engine test"]);
    assert_eq!(code, 0, "{out}{err}");
    let first =
        wait_for(20, "a cancel of the unanswered order", async || Some(l.clob.cancels()).filter(|c| !c.is_empty()))
            .await;
    assert_eq!(first[0].1, format!("{:#x}", order_id(&l.d, 0)));
    assert!(l.clob.orders().is_empty(), "nothing on the book to cancel yet");
    l.clob.land_unseen();
    wait_for(20, "the order cancelled once it rests", async || (l.clob.cancels().len() >= 2).then_some(())).await;
    wait_for(20, "off the book", async || l.clob.orders().iter().all(|o| !o.resting).then_some(())).await;
    assert_eq!(l.clob.posts().len(), 1, "never sent again");
}

/// A halt while an order's POST is on its way (sent, not answered yet): the halt stops what is not
/// sent and does not recall what is, and its reply says so rather than "nothing new is sent" alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_halt_when_an_order_is_on_its_way_then_its_reply_says_so() {
    let mut l = live().await;
    reset(&l.d, "request_timeout_ms = 1500", "request_timeout_ms = 30000");
    l.clob.script(&[Play::Hang]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the POST", async || (l.clob.posts().len() == 1).then_some(())).await;
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "under way test"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("halted: nothing new is sent; 1 order was already on its way to the exchange"), "{out}");
}

/// A BUY answered 503 although the exchange took and matched it (a gateway's answer), then refused
/// when sent again (the exchange checks the balance the first send spent before it sees the
/// duplicate): the copy is refused, but its size stays held against the caps until our fill on
/// chain books it (or the settlement timeout passes), so a second BUY cannot pass the exposure cap
/// meanwhile on pUSD the first already spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_buy_answered_503_is_refused_when_sent_again_then_its_size_stays_held_until_the_chain_books_it()
 {
    let mut l = live().await;
    l.clob.resends_checked_first();
    l.clob.script(&[
        Play::FillThenStatus(503, "upstream connect error"),
        Play::Status(400, "not enough balance / allowance"),
    ]);
    l.d.start_with(&[
        ("POLYCOPY_RISK__MAX_TOTAL_EXPOSURE_USDC", "8"),
        ("POLYCOPY_RISK__MAX_POSITION_USDC", "8"),
        ("POLYCOPY_RISK__MAX_ORDER_USDC", "8"),
    ]);
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    let r = wait_for(20, "the first copy refused", async || row(&l.d, 0).filter(|r| r["status"] != "pending")).await;
    assert_eq!(r["status"], "rejected", "{r}");
    assert_eq!(l.clob.posts().len(), 2, "sent twice: {:?}", l.clob.posts());
    // 5.10 held still: another 5.10 would pass the 8 of exposure.
    l.anvil.emit(&buy(2, NEG_TOKEN)).await;
    let r = wait_for(20, "the second copy decided", async || row(&l.d, 1).filter(|r| r["status"] != "pending")).await;
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("rejected"), Some("max_total_exposure")), "{r}");
    // Our fill on chain books the first: the position holds it.
    let ours = Fill { order_hash: order_id(&l.d, 0), ..Fill::v2(0, SIGNER, C, true, STD_TOKEN, 10 * ONE, 5_100_000) };
    l.anvil.emit(&ours).await;
    wait_for(20, "the first booked from the chain", async || {
        (l.d.status()["positions"][0]["shares"] == "10").then_some(())
    })
    .await;
    assert_eq!(l.clob.posts().len(), 2, "never sent again");
}

/// A halt while a GTD order's POST is on its way; the cancel sent beside it answers `canceled` (the
/// exchange took the order), then the POST itself answers 503, as a gateway may after the engine
/// took it. The order is not journaled as refused or never sent: the exchange held it, so lookups
/// decide what it did before the cancel. Never sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_gtd_order_cancelled_at_a_halt_is_answered_503_then_it_is_looked_up_not_refused() {
    let mut l = live().await;
    l.d.set("live", "order_type = \"GTD\"");
    reset(&l.d, "request_timeout_ms = 1500", "request_timeout_ms = 30000");
    l.clob.script(&[Play::RestThenStatus(3_000, 503, "upstream request timeout")]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(10, "resting on the book", async || l.clob.orders().iter().any(|o| o.resting).then_some(())).await;
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "cancelled then 503 test"]);
    assert_eq!(code, 0, "{out}{err}");
    let r = wait_for(20, "the copy to end", async || row(&l.d, 0).filter(|r| r["status"] != "pending")).await;
    assert_eq!(r["reason"], "no_liquidity", "ended by its lookup, as cancelled with nothing matched: {r}");
    let c = rusqlite::Connection::open(l.d.dir.join("journal.db")).unwrap();
    let held: i64 = c.query_row("SELECT exchange_has FROM orders", [], |r| r.get(0)).unwrap();
    assert_eq!(held, 1);
    assert_eq!(l.clob.posts().len(), 1, "never sent again");
}

/// A halt while an unanswered GTD order waits in the background and the only placement slot
/// (`copy.max_in_flight = 1`) is held by a resting order being watched (lookups failing): the
/// background attempt the halt brings forward sends nothing, so it does not queue for the slot,
/// and its cancel goes at once rather than once the other order's watch ends, minutes later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_halted_while_every_slot_watches_a_resting_order_then_a_background_gtd_is_cancelled_at_once() {
    let mut l = live().await;
    l.d.set("live", "order_type = \"GTD\"");
    l.d.set("copy", "max_in_flight = 1");
    reset(&l.d, "resolve_for_s = 15", "resolve_for_s = 2");
    l.clob.script(&[Play::HangRest, Play::Rest]);
    l.clob.lookups_down(true);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the first order's window closed", async || {
        l.d.events("error").into_iter().find(|e| e.contains("unknown outcome"))
    })
    .await;
    l.anvil.emit(&buy(2, STD_TOKEN)).await;
    wait_for(20, "the second order resting", async || (orders_in_journal(&l.d).get(1)?.1 == "live").then_some(()))
        .await;
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "busy slot test"]);
    assert_eq!(code, 0, "{out}{err}");
    let first = format!("{:#x}", order_id(&l.d, 0));
    wait_for(10, "the background order's cancel", async || {
        l.clob.cancels().iter().any(|(_, id)| *id == first).then_some(())
    })
    .await;
    assert_eq!(l.clob.posts().len(), 2, "nothing sent again");
}

/// A halt while a GTD order's POST is unanswered on a slow exchange that has put it on the book:
/// the cancel goes at once, beside the POST, not after its answer (half a minute away here), so
/// the order cannot fill for the whole request timeout after the halt. Never sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_halted_while_a_gtd_orders_post_hangs_then_it_is_cancelled_at_once() {
    let mut l = live().await;
    l.d.set("live", "order_type = \"GTD\"");
    reset(&l.d, "request_timeout_ms = 1500", "request_timeout_ms = 30000");
    l.clob.script(&[Play::HangRest]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the POST", async || (l.clob.posts().len() == 1).then_some(())).await;
    wait_for(10, "resting on the book", async || l.clob.orders().iter().any(|o| o.resting).then_some(())).await;
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "hanging post test"]);
    assert_eq!(code, 0, "{out}{err}");
    let cancels =
        wait_for(5, "the cancel, before the POST's answer", async || Some(l.clob.cancels()).filter(|c| !c.is_empty()))
            .await;
    assert_eq!(cancels[0].1, format!("{:#x}", order_id(&l.d, 0)));
    wait_for(5, "off the book", async || l.clob.orders().iter().all(|o| !o.resting).then_some(())).await;
    assert_eq!(l.clob.posts().len(), 1, "never sent again");
}

/// A halt while the lookup of a resting order hangs on a slow exchange: the cancel does not wait
/// for the lookup's answer (nor its timeout, half a minute here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_halted_while_a_resting_orders_lookup_hangs_then_it_is_cancelled_at_once() {
    let l = resting_gtd(&[("request_timeout_ms = 1500", "request_timeout_ms = 30000")]).await;
    l.clob.lookups_hang(true);
    let before = l.clob.requests("/data/order");
    wait_for(20, "a lookup held by the exchange", async || (l.clob.requests("/data/order") > before).then_some(()))
        .await;
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "slow lookup test"]);
    assert_eq!(code, 0, "{out}{err}");
    let cancels = wait_for(10, "the cancel", async || Some(l.clob.cancels()).filter(|c| !c.is_empty())).await;
    assert_eq!(cancels[0].1, format!("{:#x}", order_id(&l.d, 0)));
    l.clob.lookups_hang(false);
    let r = wait_for(40, "the copy to end", async || row(&l.d, 0).filter(|r| r["status"] != "pending")).await;
    assert_eq!(r["reason"], "no_liquidity", "{r}");
    assert_eq!((l.clob.cancels().len(), l.clob.posts().len()), (1, 1), "cancelled once, never sent again");
}

/// A SELL whose answer never came is booked from the lookup at its limit price; our fill on chain
/// then says it got more (it matched above its limit): the execution, the P&L and the report take
/// the chain's proceeds, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_sell_booked_at_its_limit_settles_higher_then_the_chains_proceeds_are_booked() {
    let mut l = live().await;
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the BUY copied", async || row(&l.d, 0).filter(|r| r["status"] == "executed")).await;
    l.clob.script(&[Play::Hang]);
    l.anvil.emit(&Fill::v2(2, A, C, false, STD_TOKEN, 100 * ONE, 50 * ONE)).await;
    let r =
        wait_for(30, "the SELL booked by lookup", async || row(&l.d, 1).filter(|r| r["status"] == "executed")).await;
    let shares: u64 = r["shares"].as_str().unwrap().parse().unwrap();
    let booked = r["usdc"].as_str().unwrap().to_owned();
    assert!(orders_in_journal(&l.d)[1].1 == "matched", "{:?}", orders_in_journal(&l.d));
    // Our funder's SELL settles on chain at 0.52 a share, above any limit the copy signed.
    let chain_usdc = shares * 520_000;
    let ours =
        Fill { order_hash: order_id(&l.d, 1), ..Fill::v2(0, SIGNER, C, false, STD_TOKEN, shares * ONE, chain_usdc) };
    l.anvil.emit(&ours).await;
    let want = format!("{}", rust_decimal::Decimal::new(i64::try_from(chain_usdc).unwrap(), 6).normalize());
    let r =
        wait_for(20, "the chain's proceeds booked", async || row(&l.d, 1).filter(|r| r["usdc"] == want.as_str())).await;
    assert_ne!(booked, want, "the lookup's limit price was below the chain's: {r}");
    wait_for(10, "the correction reported", async || (l.d.events("corrected").len() == 1).then_some(())).await;
    assert_eq!(l.clob.posts().len(), 2, "nothing more was sent");
}

/// A GTD order answered `matched` for part of it leaves the rest on the book: that rest is watched
/// like a resting order (so a halt cancels it), and the part is booked once the order is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_gtd_order_crosses_in_part_then_the_rest_is_watched_and_cancelled_at_a_halt() {
    let mut l = live().await;
    l.d.set("live", "order_type = \"GTD\"");
    l.clob.script(&[Play::Partial(40)]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the rest resting", async || (orders_in_journal(&l.d).first()?.1 == "live").then_some(())).await;
    assert_eq!(row(&l.d, 0).unwrap()["status"], "pending", "not finished while the rest rests");
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "partial cross test"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_for(10, "the cancel", async || (!l.clob.cancels().is_empty()).then_some(())).await;
    let r = wait_for(20, "the part booked", async || row(&l.d, 0).filter(|r| r["status"] == "executed")).await;
    assert_eq!(r["shares"], "4", "{r}");
    assert_eq!((l.clob.cancels().len(), l.clob.posts().len()), (1, 1));
}

/// A resting GTD order that fills in two transactions before the CLOB's lookup says so is booked
/// part by part from our fills on chain, and the lookup's "matched" adds nothing more: one
/// execution, the position exactly what filled, one POST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_resting_gtd_order_fills_in_two_transactions_then_both_parts_are_booked() {
    let l = resting_gtd(&[("resolve_for_s = 15", "resolve_for_s = 2")]).await;
    let ours = |shares: u64, usdc: u64| Fill {
        order_hash: order_id(&l.d, 0),
        ..Fill::v2(0, SIGNER, C, true, STD_TOKEN, shares * ONE, usdc)
    };
    l.anvil.emit(&ours(4, 2_040_000)).await;
    let r = wait_for(20, "the first part", async || row(&l.d, 0).filter(|r| r["status"] == "executed")).await;
    assert_eq!((r["shares"].as_str(), r["usdc"].as_str()), (Some("4"), Some("2.04")), "{r}");
    l.anvil.emit(&ours(6, 3_060_000)).await;
    let r = wait_for(20, "the second part", async || row(&l.d, 0).filter(|r| r["shares"] == "10")).await;
    assert_eq!(r["usdc"].as_str(), Some("5.1"), "{r}");
    wait_for(20, "the book to hold both parts", async || {
        (l.d.status()["positions"][0]["shares"] == "10").then_some(())
    })
    .await;
    // The CLOB now says the whole order matched: nothing more is booked.
    l.clob.fill_resting();
    wait_for(30, "the lookup's answer journaled", async || {
        let c = rusqlite::Connection::open(l.d.dir.join("journal.db")).ok()?;
        let m: String = c.query_row("SELECT message FROM orders", [], |r| r.get(0)).ok()?;
        m.contains("found by lookup").then_some(())
    })
    .await;
    let st = l.d.status();
    assert_eq!(st["positions"][0]["shares"], "10", "{st}");
    assert_eq!(row(&l.d, 0).unwrap()["shares"], "10");
    assert_eq!(l.d.executions_for(&l.anvil_tx_of_first_fill().await), 1);
    assert_eq!(l.clob.posts().len(), 1, "never sent again");
    assert!(l.d.events("error").is_empty(), "{:?}", l.d.events("error"));
}

/// Our fill on chain reorged out, and the operator's settlement of the same match resubmitted in
/// another transaction: the part counts once (4 shares, not 8), and the order's later part books
/// the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_our_fill_is_reorged_out_and_resubmitted_then_it_counts_once() {
    let l = resting_gtd(&[]).await;
    let ours = |shares: u64, usdc: u64| Fill {
        order_hash: order_id(&l.d, 0),
        ..Fill::v2(0, SIGNER, C, true, STD_TOKEN, shares * ONE, usdc)
    };
    l.anvil.emit(&ours(4, 2_040_000)).await;
    wait_for(20, "the first part", async || row(&l.d, 0).filter(|r| r["shares"] == "4")).await;
    l.anvil.raw("anvil_reorg", json!([1, []])).await;
    l.anvil.mine(1).await;
    wait_for(20, "the reorg noticed", async || (!l.d.events("reorg").is_empty()).then_some(())).await;
    assert!(l.d.log().contains("our fills on chain in the blocks it took away"), "our fill forgotten with its block");
    // Another transaction first, so the resubmitted settlement has a hash of its own.
    l.anvil.emit(&Fill::v2(9, C, C, true, STD_TOKEN, ONE, 510_000)).await;
    let (_, again) = l.anvil.emit(&ours(4, 2_040_000)).await;
    wait_for(20, "the resubmitted settlement read", async || l.d.log().contains(&format!("{again:#x}")).then_some(()))
        .await;
    assert_eq!(row(&l.d, 0).unwrap()["shares"], "4", "counted once");
    assert_eq!(l.d.status()["positions"][0]["shares"], "4");
    l.anvil.emit(&ours(6, 3_060_000)).await;
    let r = wait_for(20, "the second part", async || row(&l.d, 0).filter(|r| r["shares"] == "10")).await;
    assert_eq!(r["usdc"].as_str(), Some("5.1"), "{r}");
    assert_eq!(l.clob.posts().len(), 1, "never sent again");
}

/// A resting GTD order filled in part on chain is still open: after a restart it is watched again
/// (not taken as finished), only its rest stays reserved, and what fills later is booked; nothing
/// is sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_gtd_order_filled_in_part_rests_over_a_restart_then_it_is_still_watched() {
    let mut l = resting_gtd(&[]).await;
    let whole = l.d.metric("polycopy_reserved_usdc").await.expect("the reservation in /metrics");
    let ours = Fill { order_hash: order_id(&l.d, 0), ..Fill::v2(0, SIGNER, C, true, STD_TOKEN, 4 * ONE, 2_040_000) };
    l.anvil.emit(&ours).await;
    let r = wait_for(20, "the part booked", async || row(&l.d, 0).filter(|r| r["shares"] == "4")).await;
    assert_eq!(r["status"], "executed", "{r}");
    assert_eq!(orders_in_journal(&l.d)[0].1, "live", "a part is not the order's end");
    let rest = wait_for(10, "the reservation to hold only the rest", async || {
        l.d.metric("polycopy_reserved_usdc").await.filter(|r| *r != whole)
    })
    .await;
    l.d.kill9();
    start_live(&mut l).await;
    // The restart reserves what may still fill, not the whole order again.
    assert_eq!(l.d.metric("polycopy_reserved_usdc").await.as_deref(), Some(rest.as_str()), "before: {whole}");
    l.clob.fill_resting();
    let r =
        wait_for(30, "the rest booked after the restart", async || row(&l.d, 0).filter(|r| r["shares"] == "10")).await;
    assert_eq!(r["status"], "executed", "{r}");
    // Each part is reported once: 4 from the chain, then the 6 the CLOB's answer added.
    wait_for(10, "the rest reported", async || l.d.log().contains("copied whale: BUY 6 shares").then_some(())).await;
    wait_for(20, "the book to hold all of it", async || (l.d.status()["positions"][0]["shares"] == "10").then_some(()))
        .await;
    assert_eq!(orders_in_journal(&l.d)[0].1, "matched");
    assert_eq!(l.d.executions_for(&l.anvil_tx_of_first_fill().await), 1);
    assert_eq!(l.clob.posts().len(), 1, "never sent again");
    wait_for(10, "nothing held once it ended", async || {
        (l.d.metric("polycopy_reserved_usdc").await.as_deref() == Some("0")).then_some(())
    })
    .await;
}

/// Six fills on six tokens reach the CLOB together, each order placed while the others wait on
/// their answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_six_fills_on_six_tokens_then_their_orders_are_in_flight_together() {
    let mut l = live().await;
    let tokens: Vec<u64> = (0..6).map(|i| 3001 + i).collect();
    for t in &tokens {
        l.clob.token(*t, Token::open(false));
    }
    // Each answer takes 4 s (within the request timeout): all six are open at once only if none
    // waited for another's answer.
    reset(&l.d, "request_timeout_ms = 1500", "request_timeout_ms = 6000");
    l.clob.script(&vec![Play::Slow(4_000); 6]);
    start_live(&mut l).await;
    let fills: Vec<Fill> = tokens.iter().zip(1u8..).map(|(t, o)| buy(o, *t)).collect();
    l.anvil.emit_block(&fills).await;
    wait_for(30, "six executions", async || (with_status(&l.d.trades(), "executed").len() == 6).then_some(())).await;
    assert_eq!(l.clob.max_concurrent_posts(), 6, "orders in flight at once");
    assert_eq!(l.clob.posts().len(), 6, "one order each");
    assert!(l.clob.refused().is_empty(), "{:?}", l.clob.refused());
}

/// A POST that hangs for 40 s holds up nothing: a halt is obeyed at once (nothing new is sent),
/// `/health` and Telegram's `/status` answer, and another fill's order goes out and is booked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_post_hangs_then_halt_health_status_and_other_orders_do_not_wait() {
    let mut l = live().await;
    reset(&l.d, "request_timeout_ms = 1500", "request_timeout_ms = 40000");
    let tg = FakeTelegram::start("123456789:ENGINE-TEST-TOKEN-abcdef").await;
    l.d.with_telegram(&tg, "1001");
    l.clob.script(&[Play::Hang, Play::Fill]);
    start_live(&mut l).await;
    let base = l.d.http_base().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the hanging POST", async || (l.clob.posts().len() == 1).then_some(())).await;

    // Another fill's order goes out and is booked while the first one hangs.
    l.anvil.emit(&buy(2, NEG_TOKEN)).await;
    wait_for(20, "the second copy", async || row(&l.d, 1).filter(|r| r["status"] == "executed")).await;
    assert_eq!(row(&l.d, 0).unwrap()["status"], "pending", "the first one still hangs");

    let health = tokio::time::timeout(Duration::from_secs(1), http_get(&base, "/health")).await;
    assert!(matches!(&health, Ok((200, _))), "{health:?}");
    tg.inject_message(1001, "/status");
    let status = wait_for(5, "the /status reply", async || {
        tg.sent_to(1001).into_iter().find(|m| m.text.to_lowercase().contains("breaker")).map(|m| m.text)
    })
    .await;
    // The hanging order holds its exposure, and says so (10 shares at 0.51).
    assert!(status.contains("orders in flight 1 (their BUYs hold 5.1 USDC of the caps)"), "{status}");
    let st = l.d.status();
    assert_eq!((&st["daemon"]["orders_in_flight"], &st["daemon"]["reserved_usdc"]), (&json!(1), &json!("5.1")), "{st}");
    // /balance asks the CLOB for the funder's pUSD (250 in the fake), beside the hanging order.
    tg.inject_message(1001, "/balance");
    let balance = wait_for(10, "the /balance reply", async || {
        tg.sent_to(1001).into_iter().find(|m| m.text.contains("pUSD available to 0x")).map(|m| m.text)
    })
    .await;
    assert!(balance.starts_with("250 pUSD available to 0x") && balance.contains("open positions: cost"), "{balance}");

    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "hang test"]);
    assert_eq!(code, 0, "acknowledged within a second: {out}{err}");
    l.anvil.emit(&buy(3, NEG_TOKEN)).await;
    let r = wait_for(20, "the halted copy", async || row(&l.d, 2).filter(|r| r["status"] != "pending")).await;
    assert_eq!(r["reason"], "halted", "{r}");
    assert_eq!(l.clob.posts().len(), 2, "nothing new was sent while halted");
}

/// A Telegram `/halt` sent while a `/balance` waits on a CLOB that does not answer is obeyed at
/// once: its reply comes before the balance's, and nothing new is sent after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_halted_on_telegram_behind_a_hanging_balance_then_the_halt_does_not_wait() {
    let mut l = live().await;
    let tg = FakeTelegram::start("123456789:ENGINE-TEST-TOKEN-abcdef").await;
    l.d.with_telegram(&tg, "1001");
    start_live(&mut l).await;
    l.clob.balance_hang(true);
    tg.inject_message(1001, "/balance");
    tg.inject_message(1001, "/halt incident");
    let replies = wait_for(20, "the halt's reply", async || {
        let texts: Vec<String> = tg.sent_to(1001).into_iter().map(|m| m.text).collect();
        texts.iter().any(|t| t.starts_with("HALTED")).then_some(texts)
    })
    .await;
    assert!(!replies.iter().any(|t| t.contains("pUSD available") || t.contains("balance")), "{replies:?}");
    l.clob.balance_hang(false);
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    let r = wait_for(20, "the halted copy", async || row(&l.d, 0).filter(|r| r["status"] != "pending")).await;
    assert_eq!(r["reason"], "halted", "{r}");
    assert!(l.clob.posts().is_empty(), "nothing sent after the halt");
}

/// Starts the daemon with every send held before its POST while the returned file exists; a
/// target BUY is emitted and its send counted and held.
async fn first_send_held(l: &mut Live) -> std::path::PathBuf {
    let hold = l.d.dir.join("hold-before-post");
    std::fs::write(&hold, "").unwrap();
    l.d.start_with(&[("POLYCOPY_FAULT", "hold_before_post"), ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap())]);
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the send counted and held before its POST", async || {
        (l.d.log().contains("fault injection: holding") && orders_in_journal(&l.d).first().is_some_and(|o| o.2 == 1))
            .then_some(())
    })
    .await;
    hold
}

/// A halt acknowledged while an order's send is being counted in the journal (that write waits its
/// turn at the writer) stops that POST: the send is taken back and the copy ends refused as halted,
/// with nothing sent, nothing looked up and no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_halted_while_a_send_is_journaled_then_that_post_never_leaves() {
    let mut l = live().await;
    let hold = first_send_held(&mut l).await;

    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "halt inside the send"]);
    assert_eq!(code, 0, "acknowledged: {out}{err}");
    std::fs::remove_file(&hold).unwrap();
    let r = wait_for(20, "the copy decided", async || row(&l.d, 0).filter(|r| r["status"] != "pending")).await;
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("rejected"), Some("halted")), "{r}");
    assert!(l.clob.posts().is_empty(), "no POST after the halt: {:?}", l.clob.posts());
    assert_eq!(l.clob.requests("/data/order"), 0, "nothing to look up: it never left");
    let order = &orders_in_journal(&l.d)[0];
    assert_eq!((order.1.as_str(), order.2), ("signed", 0), "the send taken back");
    // Events are journaled in the order they are reported: the refusal's is the marker.
    wait_for(20, "the refusal reported", async || (!l.d.events("rejected").is_empty()).then_some(())).await;
    assert!(l.d.events("error").is_empty(), "no error: {:?}", l.d.events("error"));
}

/// One slot for orders: a second copy approved while the first order hangs waits for the slot; a
/// halt and a resume meanwhile stop it once the slot frees (its checks were made before the halt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_halted_and_resumed_while_a_copy_waits_for_a_slot_then_that_copy_never_leaves() {
    let mut l = live().await;
    l.d.set("copy", "max_in_flight = 1");
    l.clob.script(&[Play::Hang]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the first order at the exchange", async || (l.clob.posts().len() == 1).then_some(())).await;
    l.anvil.emit(&buy(2, NEG_TOKEN)).await;
    wait_for(20, "the second copy approved, waiting for the slot", async || {
        (l.d.status()["daemon"]["reserved_usdc"] == "10.2").then_some(())
    })
    .await;
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "halt while a copy waits for a slot"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = l.d.run_cli(&["resume"]);
    assert_eq!(code, 0, "{out}{err}");
    // The first order is found matched by its lookups; the slot frees.
    let r = wait_for(30, "the second copy decided", async || row(&l.d, 1).filter(|r| r["status"] != "pending")).await;
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("rejected"), Some("halted")), "{r}");
    assert_eq!(l.clob.posts().len(), 1, "the copy approved before the halt was never sent");
    assert_eq!(row(&l.d, 0).unwrap()["status"], "executed");
}

/// An order refused "not now" (429, with a minute's wait named) and then halted during that wait:
/// the exchange never took it, so it ends at once as not sent (refused as halted), with nothing to
/// look up, no error and no second POST, instead of waiting out the minute and then being looked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_halted_while_waiting_to_retry_a_429_then_it_ends_not_sent_without_an_error() {
    let mut l = live().await;
    l.clob.script(&[Play::Status(429, "too many requests, retry after 60 seconds")]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the 429 and its wait", async || l.d.log().contains("order refused for now").then_some(())).await;
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "halt during a retry's wait"]);
    assert_eq!(code, 0, "{out}{err}");
    let r = wait_for(10, "the copy decided", async || row(&l.d, 0).filter(|r| r["status"] != "pending")).await;
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("rejected"), Some("halted")), "{r}");
    assert_eq!(l.clob.posts().len(), 1, "never sent again");
    assert_eq!(l.clob.requests("/data/order"), 0, "nothing to look up: the exchange never took it");
    assert_eq!(orders_in_journal(&l.d)[0].1, "rejected");
    wait_for(10, "the refusal reported", async || (!l.d.events("rejected").is_empty()).then_some(())).await;
    assert!(l.d.events("error").is_empty(), "no error: {:?}", l.d.events("error"));
}

/// A 429 naming a wait longer than the copy stays fresh (max_copy_delay_s): the order is refused
/// at once, its slot freed, rather than held for ten minutes to be refused as stale after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_429_asks_to_wait_past_the_copys_freshness_then_refused_at_once() {
    let mut l = live().await;
    l.clob.script(&[Play::Status(429, "too many requests, retry after 600 seconds")]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    let r = wait_for(20, "the copy decided", async || row(&l.d, 0).filter(|r| r["status"] != "pending")).await;
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("rejected"), Some("rate_limited")), "{r}");
    assert_eq!(l.clob.posts().len(), 1, "never sent again");
    // Reported (and so logged) a moment after the journal's row.
    wait_for(10, "the refusal's reason logged", async || {
        l.d.log().contains("outlasts the copy's freshness").then_some(())
    })
    .await;
}

/// A copy approved before a halt that is resumed while the copy still waits (here, held before its
/// POST) does not go out after the resume: its checks were made before the halt. It ends refused
/// as halted, nothing sent; a copy approved after the resume goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_halted_and_resumed_while_a_copy_waits_then_that_copy_never_leaves() {
    let mut l = live().await;
    let hold = first_send_held(&mut l).await;

    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "halt while a copy waits"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = l.d.run_cli(&["resume"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_for(20, "active again", async || (l.d.status()["breaker"]["state"] == "active").then_some(())).await;
    std::fs::remove_file(&hold).unwrap();
    let r = wait_for(20, "the copy decided", async || row(&l.d, 0).filter(|r| r["status"] != "pending")).await;
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("rejected"), Some("halted")), "{r}");
    assert!(l.clob.posts().is_empty(), "no POST of a copy approved before the halt: {:?}", l.clob.posts());

    // The marker: a copy approved after the resume goes out.
    l.anvil.emit(&buy(2, STD_TOKEN)).await;
    wait_for(20, "the later copy executed", async || row(&l.d, 1).filter(|r| r["status"] == "executed")).await;
    assert_eq!(l.clob.posts().len(), 1);
}

/// The journal cannot be written (another process holds its lock) just as an order leaves: the
/// write of its outcome fails and the breaker trips. The order is not forgotten: its exposure
/// stays reserved, and once the journal is back and trading resumed, it is looked up again in
/// the background and booked, without a restart and with nothing sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_the_journal_fails_after_an_order_left_then_it_is_looked_up_again_and_booked() {
    let mut l = live().await;
    reset(&l.d, "resolve_for_s = 15", "resolve_for_s = 3");
    l.clob.script(&[Play::Hang]);
    let hold = first_send_held(&mut l).await;
    let pid = l.d.pid();
    // Another process takes the journal's lock past the daemon's busy timeout; the POST leaves.
    let lock = LockedJournal::hold(&l.d.dir.join("journal.db"));
    std::fs::remove_file(&hold).unwrap();
    wait_for(30, "the outcome's write failed", async || {
        l.d.log().contains("a journal write failed once the order may have left").then_some(())
    })
    .await;
    // Logged a moment after the warning, by the same handler.
    wait_for(10, "the breaker tripped", async || l.d.log().contains("BREAKER TRIPPED (database_error)").then_some(()))
        .await;
    lock.release();
    assert_eq!(l.d.status()["daemon"]["reserved_usdc"], "5.1", "its exposure is kept");

    let (code, out, err) = l.d.run_cli(&["resume"]);
    assert_eq!(code, 0, "{out}{err}");
    let r = wait_for(60, "booked by a lookup in the background", async || {
        row(&l.d, 0).filter(|r| r["status"] == "executed")
    })
    .await;
    assert_eq!(r["shares"], "10", "{r}");
    assert_eq!(l.clob.posts().len(), 1, "nothing sent again");
    assert_eq!(l.d.pid(), pid, "no restart was needed");
}

/// Kills the daemon, has every order lookup answer 503 and starts it again: it must become ready
/// while the unresolved order is still being looked up.
async fn restart_with_lookups_down(l: &mut Live) {
    l.d.kill9();
    l.clob.lookups_down(true);
    let lookups_before = l.clob.requests("/data/order");
    l.d.start();
    l.d.wait_live().await;
    wait_for(20, "lookups after the restart", async || {
        (l.clob.requests("/data/order") >= lookups_before + 2).then_some(())
    })
    .await;
}

/// A restart with an unresolved order while the CLOB's engine answers 503 becomes ready at once
/// (the order is resolved beside the feed) and sends no second order for that fill. Its resolve
/// window is ten minutes here: a start that waited for it would not be live within `wait_live`'s
/// 20 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_restarted_with_unresolved_orders_while_clob_503_then_ready_promptly() {
    let mut l = live().await;
    reset(&l.d, "resolve_for_s = 15", "resolve_for_s = 600");
    l.clob.script(&[Play::Hang]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the POST", async || (l.clob.posts().len() == 1).then_some(())).await;
    restart_with_lookups_down(&mut l).await;
    assert_eq!(row(&l.d, 0).unwrap()["status"], "pending");
    assert_eq!(l.clob.posts().len(), 1, "no second order for the fill");
    l.clob.lookups_down(false);
    let r = wait_for(30, "the resolution", async || row(&l.d, 0).filter(|r| r["status"] == "executed")).await;
    assert_eq!(r["shares"].as_str(), Some("10"), "{r}");
    assert_eq!(l.clob.posts().len(), 1);
}

/// The same with the target's exit of that token journaled undecided (it waited for our BUY): at
/// the restart the exit's sizing waits for the BUY driven again at most a few seconds, not the two
/// minutes a running daemon gives it, so the start becomes ready (systemd's start timeout is two
/// minutes) and the operator is told the exit was sized without the BUY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_restarted_with_an_unresolved_buy_and_an_exit_of_its_token_then_ready_promptly() {
    let mut l = live().await;
    reset(&l.d, "resolve_for_s = 15", "resolve_for_s = 600");
    l.clob.script(&[Play::Hang]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the POST", async || (l.clob.posts().len() == 1).then_some(())).await;
    l.anvil.emit(&Fill::v2(2, A, C, false, STD_TOKEN, 100 * ONE, 50 * ONE)).await;
    wait_for(20, "the exit journaled", async || (l.d.trades().len() == 2).then_some(())).await;
    let started = std::time::Instant::now();
    restart_with_lookups_down(&mut l).await;
    assert!(started.elapsed() < Duration::from_secs(60), "ready in {:?}", started.elapsed());
    wait_for(20, "the exit sized without the BUY, said", async || {
        l.d.events("alert").into_iter().find(|e| e.contains("sized without our BUY of it still in flight"))
    })
    .await;
    assert_eq!(l.clob.posts().len(), 1, "no second order for the BUY, and nothing to sell yet");
}

/// More unfinished fills at a restart than placement slots, while the CLOB's engine answers 503:
/// recovery does not wait for slots held by orders that cannot be resolved yet, so the daemon is
/// ready at once; the waiting fill is sent once a slot frees, and each fill gets one order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_restarted_with_more_unfinished_than_slots_then_ready_promptly() {
    let mut l = live().await;
    l.d.set("copy", "max_in_flight = 1");
    l.clob.script(&[Play::Hang]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the POST", async || (l.clob.posts().len() == 1).then_some(())).await;
    l.anvil.emit(&buy(2, STD_TOKEN)).await;
    wait_for(20, "the second fill journaled", async || (l.d.trades().len() == 2).then_some(())).await;
    assert_eq!(l.clob.posts().len(), 1, "the second copy waits for the one slot");
    restart_with_lookups_down(&mut l).await;
    assert_eq!(l.clob.posts().len(), 1, "nothing new while the first order holds the slot");
    l.clob.lookups_down(false);
    wait_for(60, "both copies executed", async || l.d.trades().iter().all(|r| r["status"] == "executed").then_some(()))
        .await;
    assert_eq!(l.clob.posts().len(), 2, "one order per fill");
}

/// A restart while the whole CLOB answers 503 (credentials and version included): the daemon
/// starts anyway instead of exiting (systemd would give up after a few restarts), sends nothing,
/// and once the CLOB answers derives its credentials and resolves the order left unresolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_restarted_while_the_whole_clob_is_down_then_starts_and_resolves_once_back() {
    let mut l = live().await;
    l.clob.script(&[Play::Hang]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the POST", async || (l.clob.posts().len() == 1).then_some(())).await;
    l.d.kill9();
    l.clob.down(true);
    l.d.start();
    l.d.wait_live().await;
    assert!(l.d.log().contains("the CLOB does not answer: starting without it"), "{}", l.d.log());
    wait_for(20, "a retry of the connection", async || {
        l.d.log().contains("the CLOB still does not answer").then_some(())
    })
    .await;
    assert_eq!(row(&l.d, 0).unwrap()["status"], "pending");
    assert_eq!(l.clob.posts().len(), 1, "nothing sent while the CLOB is down");
    l.clob.down(false);
    wait_for(30, "the credentials", async || l.d.log().contains("API credentials derived").then_some(())).await;
    let r = wait_for(30, "the resolution", async || row(&l.d, 0).filter(|r| r["status"] == "executed")).await;
    assert_eq!(r["shares"].as_str(), Some("10"), "{r}");
    assert_eq!(l.clob.posts().len(), 1, "one order for the fill");
}

/// A restart with more unresolved orders than the error streak allows, while lookups fail: each
/// one's window closes unknown and is reported, but they were sent by the run before and only
/// wait for the exchange, so trading is not halted for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_restarted_with_unresolved_orders_past_the_error_streak_then_not_halted() {
    let mut l = live().await;
    l.d.set("risk", "max_consecutive_errors = 2");
    l.clob.script(&[Play::Hang, Play::Hang]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    l.anvil.emit(&buy(2, NEG_TOKEN)).await;
    wait_for(20, "both POSTs", async || (l.clob.posts().len() == 2).then_some(())).await;
    l.d.kill9();
    reset(&l.d, "resolve_for_s = 15", "resolve_for_s = 2");
    l.clob.lookups_down(true);
    l.d.start();
    l.d.wait_live().await;
    wait_for(30, "both windows to close", async || {
        (l.d.events("error").iter().filter(|e| e.contains("unknown outcome")).count() >= 2).then_some(())
    })
    .await;
    let breaker = l.d.status()["breaker"].clone();
    assert_eq!(breaker["state"], "active", "{breaker}");
    l.clob.lookups_down(false);
    wait_for(30, "both resolved", async || l.d.trades().iter().all(|r| r["status"] == "executed").then_some(())).await;
    assert_eq!(l.clob.posts().len(), 2, "one order per fill");
}

/// The target's fill is taken away by a reorg while our order for it hangs at the exchange, and
/// the daemon is killed: after the restart that order is still looked up and booked (what we
/// hold is ours whatever became of the target's trade), not dropped from recovery with its
/// exposure, and never sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_the_copied_fill_is_reorged_away_while_its_order_hangs_then_resolved_after_a_restart() {
    let mut l = live().await;
    l.clob.script(&[Play::Hang]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the POST", async || (l.clob.posts().len() == 1).then_some(())).await;
    l.anvil.raw("anvil_reorg", json!([1, []])).await;
    // Looked for two blocks past its old height (a dropped transaction is often mined again).
    l.anvil.mine(3).await;
    // Flagged as reorged after its copy (its order is out), never withdrawn: withdrawn, it would be
    // copied again if its settlement came back.
    let r =
        wait_for(20, "the target's fill taken away", async || row(&l.d, 0).filter(|r| r["reorged_after_copy"] == true))
            .await;
    assert_eq!(r["status"], "pending", "{r}");
    l.d.kill9();
    l.d.start();
    l.d.wait_live().await;
    let r = wait_for(30, "the order booked", async || row(&l.d, 0).filter(|r| r["status"] == "executed")).await;
    assert_eq!(r["shares"].as_str(), Some("10"), "{r}");
    assert_eq!(l.d.status()["positions"][0]["shares"], "10");
    assert_eq!(l.clob.posts().len(), 1, "never sent again");
}

/// The target's fill is taken away by a reorg while our POST for it hangs, and the exchange then
/// answers lookups of the order with `null`: the order is looked up, but the same signed order is
/// not sent again for a trade that no longer exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_the_copied_fill_is_reorged_away_then_its_order_is_never_sent_again() {
    let mut l = live().await;
    reset(&l.d, "request_timeout_ms = 1500", "request_timeout_ms = 6000");
    l.clob.null_lookups();
    l.clob.script(&[Play::Hang]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the POST", async || (l.clob.posts().len() == 1).then_some(())).await;
    l.anvil.raw("anvil_reorg", json!([1, []])).await;
    l.anvil.mine(3).await;
    // Flagged as reorged after its copy (its order is out), never withdrawn: withdrawn, it would be
    // copied again if its settlement came back.
    let r =
        wait_for(20, "the target's fill taken away", async || row(&l.d, 0).filter(|r| r["reorged_after_copy"] == true))
            .await;
    assert_eq!(r["status"], "pending", "{r}");
    wait_for(30, "the order looked up", async || (l.clob.requests("/data/order") >= 2).then_some(())).await;
    assert_eq!(l.clob.posts().len(), 1, "never sent again: {:?}", l.clob.posts());
    assert!(l.d.log().contains("the copied trade is gone from the chain"), "{}", l.d.log());
}

/// A copy's order signed and not sent yet (held at its turn) when the target's block is reorged
/// away, and the daemon killed while the fill is under the reorg's cloud: at the restart the copy,
/// which never left, is taken back (not left pending for ever) and the rescan decides the fill:
/// gone, it is withdrawn `reorged_out`. Nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_killed_with_an_unsent_copy_under_a_reorg_then_recovered_and_decided_by_the_rescan() {
    let (mut l, hold) = a_copy_held_at_its_turn().await;
    l.anvil.raw("anvil_reorg", json!([1, []])).await;
    l.anvil.mine(1).await;
    let journal = l.d.dir.join("journal.db");
    let suspect = || -> bool {
        let c = rusqlite::Connection::open(&journal).unwrap();
        c.query_row("SELECT suspect FROM fills", [], |r| r.get(0)).unwrap()
    };
    wait_for(20, "the fill under the reorg's cloud", async || suspect().then_some(())).await;
    l.d.kill9();
    std::fs::remove_file(&hold).unwrap();
    withdrawn_and_not_sent_after_a_start(&mut l).await;
}

/// The same copy held at its turn, the daemon killed, and the target's block reorged away while it
/// is down: the start finds the reorg before recovery (the checkpoint's block changed), so the
/// copy, which never left, is taken back instead of being sent for a trade that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_the_targets_block_is_reorged_away_while_down_then_its_unsent_copy_is_not_sent() {
    let (mut l, hold) = a_copy_held_at_its_turn().await;
    l.d.kill9();
    std::fs::remove_file(&hold).unwrap();
    l.anvil.raw("anvil_reorg", json!([1, []])).await;
    l.anvil.mine(1).await;
    withdrawn_and_not_sent_after_a_start(&mut l).await;
}

/// A live daemon whose first copy (of a target's BUY) has its order signed and is held at its
/// turn, not sent; and the file that holds it.
async fn a_copy_held_at_its_turn() -> (Live, std::path::PathBuf) {
    let mut l = live().await;
    let hold = l.d.dir.join("hold-at-turn");
    std::fs::write(&hold, "").unwrap();
    l.d.start_with(&[("POLYCOPY_FAULT", "hold_at_turn"), ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap())]);
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the copy held at its turn", async || l.d.log().contains("fault injection: holding").then_some(()))
        .await;
    (l, hold)
}

/// Started again: the copy's fill, gone from the chain, is withdrawn `reorged_out`, and nothing
/// was sent.
async fn withdrawn_and_not_sent_after_a_start(l: &mut Live) {
    l.d.start();
    l.d.wait_live().await;
    l.anvil.mine(3).await;
    let r = wait_for(30, "the copy decided", async || row(&l.d, 0).filter(|r| r["status"] != "pending")).await;
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("withdrawn"), Some("reorged_out")), "{r}");
    assert!(l.clob.posts().is_empty(), "nothing sent: {:?}", l.clob.posts());
}

trait FirstTx {
    async fn anvil_tx_of_first_fill(&self) -> B256;
}

impl FirstTx for Live {
    async fn anvil_tx_of_first_fill(&self) -> B256 {
        let fill = self.d.trades()[0]["fill"].as_str().unwrap().to_owned();
        fill.split(':').next().unwrap().parse().unwrap()
    }
}

/// An order whose outcome is still unknown when its resolve window closes is not left for the
/// next start: it stays reserved and is looked up again in the background, and booked once the
/// exchange answers, without a restart and without a second order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_outcome_unknown_past_its_window_then_resolved_in_background() {
    let mut l = live().await;
    reset(&l.d, "resolve_for_s = 15", "resolve_for_s = 2");
    l.clob.script(&[Play::Hang]);
    l.clob.lookups_down(true);
    l.d.start();
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the POST", async || (l.clob.posts().len() == 1).then_some(())).await;
    // The window closes without an outcome: reported once, the fill stays pending.
    wait_for(30, "the window to close", async || {
        l.d.events("error").into_iter().find(|e| e.contains("unknown outcome"))
    })
    .await;
    assert_eq!(row(&l.d, 0).unwrap()["status"], "pending");
    // The exchange answers again: the background resolver books it, no restart.
    l.clob.lookups_down(false);
    let r =
        wait_for(60, "the background resolution", async || row(&l.d, 0).filter(|r| r["status"] == "executed")).await;
    assert_eq!(r["shares"].as_str(), Some("10"), "{r}");
    let ids: std::collections::HashSet<String> = l.clob.posts().into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 1, "one signed order, however often it was posted");
    assert_eq!(l.d.events("error").iter().filter(|e| e.contains("unknown outcome")).count(), 1, "reported once");
    assert!(l.d.stop().success());
}

/// The exchange said it holds the order ("Duplicated") and its lookups answer `null`: after a
/// restart the order is only looked up, never posted again (what the exchange said is journaled,
/// not forgotten with the resolve window).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_the_exchange_said_duplicated_then_a_restart_never_posts_it_again() {
    let mut l = live().await;
    reset(&l.d, "resolve_for_s = 15", "resolve_for_s = 2");
    l.clob.null_lookups();
    l.clob.script(&[Play::Hang]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    // The first POST hangs; a lookup answers null; the same order goes once more: "Duplicated".
    wait_for(30, "the POST sent again", async || (l.clob.posts().len() == 2).then_some(())).await;
    wait_for(30, "the window to close", async || {
        l.d.events("error").into_iter().find(|e| e.contains("unknown outcome"))
    })
    .await;
    l.d.stop();
    let before = l.clob.requests("/data/order");
    l.d.start();
    l.d.wait_live().await;
    wait_for(30, "lookups after the restart", async || (l.clob.requests("/data/order") >= before + 3).then_some(()))
        .await;
    assert_eq!(l.clob.posts().len(), 2, "never posted again: {:?}", l.clob.posts());
}

/// A target's exit handed to the copier a second time while its first copy waits for its sizing
/// (a reorg re-includes the very same transaction in a new block, and the rescan hands the fill on
/// again): the second copy is dropped, not sized. Sized, it found every share claimed by the
/// first copy's SELL, refused the fill `no_position`, and the first copy's order then found its
/// trade "gone" and was never sent: the exit was lost. One SELL is sent, and the fill is executed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_an_exit_comes_again_after_a_reorg_while_its_copy_waits_then_it_is_sent_once() {
    let mut l = live().await;
    let hold = l.d.dir.join("hold-sell-sizing");
    l.d.start_with(&[("POLYCOPY_FAULT", "hold_before_sell_sizing"), ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap())]);
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the BUY copied", async || row(&l.d, 0).filter(|r| r["status"] == "executed")).await;
    std::fs::write(&hold, "").unwrap();
    let (_, sale) = l.anvil.emit(&Fill::v2(2, A, C, false, STD_TOKEN, 100 * ONE, 50 * ONE)).await;
    wait_for(20, "the exit's sizing held", async || l.d.log().contains("fault injection: holding").then_some(())).await;
    // The same signed transaction, mined again in the block that replaces its own.
    let raw = l.anvil.raw("eth_getRawTransactionByHash", json!([sale])).await;
    l.anvil.raw("anvil_reorg", json!([1, [[raw, 0]]])).await;
    wait_for(30, "the exit handed on again", async || {
        l.d.log().contains("a copy of this fill is already being decided").then_some(())
    })
    .await;
    std::fs::remove_file(&hold).unwrap();
    let r = wait_for(30, "the exit decided", async || row(&l.d, 1).filter(|r| r["status"] != "pending")).await;
    assert_eq!((r["side"].as_str(), r["status"].as_str()), (Some("SELL"), Some("executed")), "{r}");
    let sells: Vec<_> = l.clob.orders().into_iter().filter(|o| o.side == "SELL").collect();
    assert_eq!(sells.len(), 1, "one SELL: {sells:?}");
    assert_eq!(l.d.trades().len(), 2, "one row per fill");
}

/// One slot for orders: a copy approved while the first order hangs waits for the slot, its intent
/// not journaled yet. Its target is then paused and a reorg re-includes its transaction, so the
/// rescan hands the BUY on again: the registry would refuse it (a paused target's BUY) and mark the
/// fill refused under the approved copy, whose order then found its trade gone and was never sent.
/// The approved copy decides: sent once, executed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_fill_comes_again_for_a_paused_target_while_its_copy_waits_for_a_slot_then_sent_once() {
    let mut l = live().await;
    let tg = FakeTelegram::start("123456789:ENGINE-TEST-TOKEN-abcdef").await;
    l.d.with_telegram(&tg, "1001");
    l.d.set("copy", "max_in_flight = 1");
    l.clob.script(&[Play::Hang]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the first order at the exchange", async || (l.clob.posts().len() == 1).then_some(())).await;
    let (_, second) = l.anvil.emit(&buy(2, NEG_TOKEN)).await;
    wait_for(20, "the second copy approved, waiting for the slot", async || {
        (l.d.status()["daemon"]["reserved_usdc"] == "10.2").then_some(())
    })
    .await;
    tg.inject_message(1001, "/pause whale");
    wait_for(10, "the target paused", async || {
        tg.sent_to(1001).iter().any(|m| m.text.to_lowercase().contains("paused")).then_some(())
    })
    .await;
    // The same signed transaction, mined again in the block that replaces its own.
    let raw = l.anvil.raw("eth_getRawTransactionByHash", json!([second])).await;
    l.anvil.raw("anvil_reorg", json!([1, [[raw, 0]]])).await;
    wait_for(30, "the fill handed on again", async || {
        l.d.log().contains("it decides, not the registry's refusal").then_some(())
    })
    .await;
    // The first order is found matched by its lookups; the slot frees.
    let r = wait_for(30, "the second copy decided", async || row(&l.d, 1).filter(|r| r["status"] != "pending")).await;
    assert_eq!(r["status"], "executed", "{r}");
    assert_eq!(l.clob.posts().len(), 2, "the approved copy was sent, once");
    assert_eq!(l.d.trades().len(), 2, "one row per fill");
}

/// A market order held by the market's matching delay (sports markets): answered `delayed` with
/// empty amounts, looked up as `null` (or `LIVE`, nothing matched) while the delay lasts. It is
/// journaled `delayed` (never sent again), a halt meanwhile cancels nothing (a market order never
/// rests), and once the delay ends its match is booked from the lookup, once, with no error.
async fn delayed_order_booked_once(looked_up_live: bool, answered: bool) {
    let mut l = live().await;
    l.clob.script(&[if answered { Play::Delayed(1_500, 100) } else { Play::DelayedUnanswered(4_000) }]);
    if looked_up_live {
        l.clob.delayed_looked_up_live();
    }
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the order held by the delay", async || {
        orders_in_journal(&l.d).first().filter(|o| o.1 == "delayed").cloned()
    })
    .await;
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "halt during a matching delay"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 order was already on its way to the exchange and is not recalled"), "{out}");
    let r = wait_for(20, "the copy booked", async || row(&l.d, 0).filter(|r| r["status"] != "pending")).await;
    assert_eq!((r["status"].as_str(), r["shares"].as_str()), (Some("executed"), Some("10")), "{r}");
    assert_eq!(l.clob.posts().len(), 1, "never sent again");
    assert!(l.clob.cancels().is_empty(), "a market order is not cancelled: {:?}", l.clob.cancels());
    assert!(l.clob.requests("/data/order") >= 2, "looked up through the delay");
    assert_eq!(orders_in_journal(&l.d)[0].1, "matched");
    assert!(l.d.events("error").is_empty(), "no error: {:?}", l.d.events("error"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_an_order_is_delayed_by_the_market_then_booked_once_and_a_halt_cancels_nothing() {
    delayed_order_booked_once(false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_delayed_order_is_looked_up_live_then_still_never_cancelled_and_booked_once() {
    delayed_order_booked_once(true, true).await;
}

/// The same when the POST's answer never comes (a timeout): the lookup finds the order working
/// (`LIVE`), and it is taken for delayed, not resting, from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_an_unanswered_market_order_is_looked_up_live_then_taken_for_delayed_never_cancelled() {
    delayed_order_booked_once(true, false).await;
}

/// A delayed FAK order that finds nothing to match once the delay ends (killed): a no-fill,
/// its exposure released, not an error, and never sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_delayed_order_is_killed_after_the_delay_then_a_no_fill_not_an_error() {
    let mut l = live().await;
    l.clob.script(&[Play::Delayed(1_000, 0)]);
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    let r = wait_for(20, "the copy decided", async || row(&l.d, 0).filter(|r| r["status"] != "pending")).await;
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("rejected"), Some("no_liquidity")), "{r}");
    assert_eq!(l.clob.posts().len(), 1, "never sent again");
    assert_eq!(l.d.status()["daemon"]["reserved_usdc"], "0", "its exposure released");
    wait_for(10, "the refusal reported", async || (!l.d.events("rejected").is_empty()).then_some(())).await;
    assert!(l.d.events("error").is_empty(), "no error: {:?}", l.d.events("error"));
}
