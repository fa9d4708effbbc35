//! What our book is worth and when it is final, against anvil and the fake CLOB/Gamma: settlement
//! of our own orders on chain, marks driving the daily loss limit, market metadata (closed, ending,
//! resolved markets), and paper trading's `order_book` fill model.

use crate::support::clob::{FakeClob, Play, Token};
use crate::support::http::http_get;
use crate::support::live::*;
use crate::support::*;
use alloy::primitives::{Address, B256};
use serde_json::{Value, json};

fn settled(d: &Daemon) -> Vec<(String, i64)> {
    let c = rusqlite::Connection::open(d.dir.join("journal.db")).unwrap();
    let mut st = c.prepare("SELECT order_id, settled FROM orders ORDER BY fill_id").unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

fn position_shares(d: &Daemon, token: u64) -> i64 {
    let c = rusqlite::Connection::open(d.dir.join("journal.db")).unwrap();
    c.query_row("SELECT COALESCE(SUM(shares), 0) FROM positions WHERE token_id = ?1", [token.to_string()], |r| r.get(0))
        .unwrap()
}

/// A live daemon whose matches must settle on chain within 3 s, once it has copied a target's BUY
/// (answered `matched` by the CLOB).
async fn copied_with_settle_timeout() -> Live {
    let mut l = live().await;
    l.d.set("live", "settle_timeout_s = 3");
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the copy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    l
}

/// Our fill on chain settling the first order we sent (10 shares for 5.10, BUY), with `fee` pUSD
/// charged on top.
fn our_fill_of_the_first_order(l: &Live, fee: u64) -> Fill {
    let mut ours = Fill::v2(0, SIGNER, V2_EXCHANGE, true, STD_TOKEN, 10 * ONE, 5_100_000);
    ours.order_hash = l.clob.orders()[0].id.parse().unwrap();
    ours.words[4] = alloy::primitives::U256::from(fee);
    ours
}

/// Our own `OrderFilled` on chain confirms a matched order; a matched order that never shows up on
/// chain is reported and taken out of our books after `settle_timeout_s`.
/// Midpoints from the CLOB mark our position; a mark that puts today's realized plus unrealized
/// P&L past the daily loss limit trips the breaker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_match_settles_or_not_on_chain_then_confirmed_or_reversed() {
    let l = copied_with_settle_timeout().await;
    let id = l.clob.orders()[0].id.clone();
    // The exchange settles our order: our funder is the maker, the hash is our order id.
    let mut ours = Fill::v2(0, SIGNER, V2_EXCHANGE, true, STD_TOKEN, 10 * ONE, 5_100_000);
    ours.order_hash = id.parse().unwrap();
    l.anvil.emit(&ours).await;
    wait_for(20, "settlement", async || (settled(&l.d)[0].1 == 1).then_some(())).await;
    assert_eq!(l.d.trades().len(), 1, "our own fill is never copied");

    l.anvil.emit(&buy(2, NEG_TOKEN)).await;
    wait_for(20, "the second copy", async || (position_shares(&l.d, NEG_TOKEN) == 10 * ONE as i64).then_some(())).await;
    // Overdue once the chain is read past the match by the timeout: blocks go on being mined.
    let alert = wait_for(20, "the unsettled alert", async || {
        l.anvil.mine(1).await;
        l.d.events("alert").into_iter().find(|e| e.contains("did not settle on chain"))
    })
    .await;
    assert!(alert.contains(&format!("{NEG_TOKEN}")), "{alert}");
    assert_eq!(position_shares(&l.d, NEG_TOKEN), 0, "reversed in our books");
    assert_eq!(position_shares(&l.d, STD_TOKEN), 10 * ONE as i64, "the settled one stays");
    assert_eq!(settled(&l.d)[1].1, -1);

    // It settles after all: put back.
    let late_id = settled(&l.d)[1].0.clone();
    let mut late = Fill::v2(0, SIGNER, V2_EXCHANGE, true, NEG_TOKEN, 10 * ONE, 5_100_000);
    late.order_hash = late_id.parse().unwrap();
    l.anvil.emit(&late).await;
    wait_for(20, "the late settlement", async || (settled(&l.d)[1].1 == 1).then_some(())).await;
    assert_eq!(position_shares(&l.d, NEG_TOKEN), 10 * ONE as i64, "put back in our books");
    // Reports are journaled on their own thread, after the booking they tell of: wait for it.
    wait_for(20, "the put-back alert", async || l.d.events("alert").into_iter().find(|e| e.contains("put back"))).await;
}

/// The block that settled our match is reorged away and nothing settles it again: the match waits
/// for its settlement once more and, overdue, is taken out of our books.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_the_block_that_settled_a_match_is_reorged_away_then_it_is_taken_out_once_overdue() {
    let l = copied_with_settle_timeout().await;
    let ours = our_fill_of_the_first_order(&l, 0);
    l.anvil.emit(&ours).await;
    wait_for(20, "settlement", async || (settled(&l.d)[0].1 == 1).then_some(())).await;
    l.anvil.raw("anvil_reorg", json!([1, []])).await;
    l.anvil.mine(1).await;
    wait_for(20, "the reorg noticed", async || (!l.d.events("reorg").is_empty()).then_some(())).await;
    assert_eq!(settled(&l.d)[0].1, 0, "waits for its settlement again");
    assert_eq!(position_shares(&l.d, STD_TOKEN), 10 * ONE as i64, "still booked while it may come back");
    wait_for(30, "the unsettled alert", async || {
        l.anvil.mine(1).await;
        l.d.events("alert").into_iter().find(|e| e.contains("did not settle on chain"))
    })
    .await;
    assert_eq!((settled(&l.d)[0].1, position_shares(&l.d, STD_TOKEN)), (-1, 0), "taken out of our books");
}

/// Our fill on chain journaled, and the daemon killed before the range that read it moved the
/// checkpoint; while it is down a reorg takes that block away. At the start the fill is forgotten
/// (the checkpoint's own block is still on the chain, so the reorg is not seen otherwise), the
/// backfill does not find it again, and the match, overdue, is taken out of our books: it had
/// been settled by a transaction that no longer exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_killed_after_our_fill_was_journaled_and_its_block_reorged_away_then_the_match_waits_again() {
    let mut l = live().await;
    l.d.set("live", "settle_timeout_s = 3");
    l.d.start_with(&[("POLYCOPY_FAULT", "abort_after_own_fills")]);
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the copy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    let ours = our_fill_of_the_first_order(&l, 0);
    l.anvil.emit(&ours).await;
    assert!(!l.d.wait_exit().await.success(), "the fault aborted the daemon");
    assert_eq!(settled(&l.d)[0].1, 1, "settled by our fill, journaled before the abort");
    l.anvil.raw("anvil_reorg", json!([1, []])).await;
    start_live(&mut l).await;
    let alert = wait_for(30, "the unsettled alert", async || {
        l.anvil.mine(1).await;
        l.d.events("alert").into_iter().find(|e| e.contains("did not settle on chain"))
    })
    .await;
    assert!(alert.contains(&format!("{STD_TOKEN}")), "{alert}");
    assert_eq!((settled(&l.d)[0].1, position_shares(&l.d, STD_TOKEN)), (-1, 0), "taken out of our books");
}

/// A match of which only a part settles on chain in time: only the rest is taken out of our
/// books, and it comes back when it settles after all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_match_settles_only_in_part_then_only_the_rest_is_reversed() {
    let l = copied_with_settle_timeout().await;
    let id: B256 = l.clob.orders()[0].id.parse().unwrap();
    let ours = |shares: u64, usdc: u64| Fill {
        order_hash: id,
        ..Fill::v2(0, SIGNER, V2_EXCHANGE, true, STD_TOKEN, shares * ONE, usdc)
    };
    l.anvil.emit(&ours(4, 2_040_000)).await;
    let alert = wait_for(20, "the unsettled alert", async || {
        l.anvil.mine(1).await;
        l.d.events("alert").into_iter().find(|e| e.contains("settled on chain within"))
    })
    .await;
    assert!(alert.contains("only 4 shares of it settled"), "{alert}");
    assert_eq!(position_shares(&l.d, STD_TOKEN), 4 * ONE as i64, "what settled stays booked");
    assert_eq!(settled(&l.d)[0].1, 1, "what is left of it is settled");
    // The rest settles after all: booked again as a part.
    l.anvil.emit(&ours(6, 3_060_000)).await;
    wait_for(20, "the rest booked", async || (position_shares(&l.d, STD_TOKEN) == 10 * ONE as i64).then_some(())).await;
    let r = with_status(&l.d.trades(), "executed")[0].clone();
    assert_eq!((r["shares"].as_str(), r["usdc"].as_str()), (Some("10"), Some("5.1")), "{r}");
}

/// The alerts once both take-outs' are journaled (reports are journaled on their own thread,
/// after the change they tell of; the BUY's, sent last, is the marker).
async fn both_alerts(d: &Daemon) -> Vec<String> {
    wait_for(20, "the BUY's take-out reported", async || {
        let alerts = d.events("alert");
        alerts.iter().any(|a| a.contains("did not settle on chain within")).then_some(alerts)
    })
    .await
}

/// A BUY that never settles on chain, whose shares a later SELL of ours sold (so it cannot have
/// settled either): when the BUY is overdue the SELL goes out with it, first, and the book holds
/// nothing we never owned (taken out one check after the other, the SELL gave back 10 shares).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_buy_never_settles_after_its_shares_were_sold_then_both_go_out_and_nothing_is_left() {
    let l = copied_with_settle_timeout().await;
    // The SELL four seconds later, so that the BUY is overdue (3 s) well before it.
    l.anvil.wait_older_than(l.anvil.head().await, 4).await;
    l.anvil.emit(&Fill::v2(2, A, C, false, STD_TOKEN, 100 * ONE, 50 * ONE)).await;
    let sold = wait_for(20, "the SELL copied", async || {
        let t: Vec<serde_json::Value> = with_status(&l.d.trades(), "executed").into_iter().cloned().collect();
        (t.len() == 2).then_some(t)
    })
    .await;
    // Its shares, not the position: the BUY is overdue already, and under load the settlement
    // check may be taking both out (the SELL first, giving its 10 back) when the book is read.
    assert_eq!(sold[1]["shares"].as_str(), Some("10"), "sold out: {}", sold[1]);
    wait_for(30, "both taken out", async || {
        l.anvil.mine(1).await;
        settled(&l.d).iter().all(|(_, s)| *s == -1).then_some(())
    })
    .await;
    assert_eq!(position_shares(&l.d, STD_TOKEN), 0, "no shares we never owned");
    let alerts = both_alerts(&l.d).await;
    assert!(alerts.iter().any(|a| a.contains("sold shares that an earlier BUY of ours")), "{alerts:?}");
    assert!(!alerts.iter().any(|a| a.contains("reconcile")), "nothing was sold from under the BUY: {alerts:?}");
}

/// A BUY overdue while a SELL of its shares is still being placed: the BUY waits for the SELL's
/// outcome (taken out alone, the SELL matching later would give back shares we never owned), then
/// both go out, the SELL first, and the book holds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_buy_is_overdue_while_a_sell_of_its_shares_is_in_flight_then_it_waits_for_it() {
    let l = copied_with_settle_timeout().await;
    l.clob.script(&[Play::Hang]);
    l.clob.lookups_hang(true);
    l.anvil.emit(&Fill::v2(2, A, C, false, STD_TOKEN, 100 * ONE, 50 * ONE)).await;
    wait_for(20, "the SELL sent", async || (l.clob.posts().len() == 2).then_some(())).await;
    wait_for(30, "the overdue BUY waiting", async || {
        l.anvil.mine(1).await;
        l.d.log().contains("an overdue BUY waits").then_some(())
    })
    .await;
    assert_eq!(settled(&l.d)[0].1, 0, "the BUY is still booked");
    // The exchange answers: the SELL matched.
    l.clob.lookups_hang(false);
    wait_for(30, "the SELL booked", async || (with_status(&l.d.trades(), "executed").len() == 2).then_some(())).await;
    wait_for(30, "both taken out", async || {
        l.anvil.mine(1).await;
        (settled(&l.d).iter().filter(|(_, s)| *s == -1).count() == 2).then_some(())
    })
    .await;
    assert_eq!(position_shares(&l.d, STD_TOKEN), 0, "no shares we never owned");
    let alerts = both_alerts(&l.d).await;
    assert!(!alerts.iter().any(|a| a.contains("reconcile")), "{alerts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_daily_loss_limit_reached_then_reducing_exits_copied_buys_refused() {
    let mut l = live().await;
    l.d.set("risk", "mark_interval_s = 1");
    l.clob.set_mid(STD_TOKEN, "0.5");
    l.d.start_with(&[("POLYCOPY_RISK__DAILY_LOSS_LIMIT_USDC", "3")]);
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the copy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    // 10 shares bought for 5.10 today: at 0.50 that is -0.10, at 0.10 it is -4.10, past the -3 limit.
    assert_eq!(l.d.status()["breaker"]["state"], "active");
    l.clob.set_mid(STD_TOKEN, "0.1");
    let b = wait_for(20, "reducing", async || {
        let s = l.d.status();
        (s["breaker"]["state"] == "reducing").then(|| s["breaker"].clone())
    })
    .await;
    assert_eq!((b["code"].as_str(), b["tripped"].as_bool()), (Some("daily_loss_limit"), Some(false)), "{b}");
    assert!(b["reason"].as_str().unwrap().contains("P&L today -4.1"), "{b}");
    let base = l.d.http_base().await;
    let (_, metrics) = http_get(&base, "/metrics").await;
    assert!(metrics.contains("polycopy_unrealized_pnl_usdc -4.1"), "{metrics}");
    assert!(metrics.contains("polycopy_pnl_today_usdc -4.1"), "{metrics}");
    assert!(metrics.contains("polycopy_daily_loss_limit_usdc 3\n"), "{metrics}");
    assert!(metrics.contains("polycopy_trading_state 1"), "{metrics}");
    let (code, health) = http_get(&base, "/health").await;
    assert!(code == 200 && health.contains("reducing"), "reducing is degraded, not down: {health}");
    assert_eq!(l.d.status()["unrealized_usdc"], "-4.1");
    let (code, out, err) = l.d.run_cli(&["report", "daily", "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((report["realized_usdc"].as_str(), report["unrealized_usdc"].as_str()), (Some("0"), Some("-4.1")));

    // The target exits: our exit is copied. It buys again: refused, nothing is added.
    l.anvil.emit(&Fill::v2(2, A, C, false, STD_TOKEN, 100 * ONE, 50 * ONE)).await;
    l.anvil.emit(&buy(3, STD_TOKEN)).await;
    let rows = wait_for(20, "both decided", async || {
        let t = l.d.trades();
        (t.len() == 3 && t.iter().all(|r| r["status"] != "pending")).then_some(t)
    })
    .await;
    assert_eq!((rows[1]["side"].as_str(), rows[1]["status"].as_str()), (Some("SELL"), Some("executed")), "{}", rows[1]);
    assert_eq!(
        (rows[2]["status"].as_str(), rows[2]["reason"].as_str()),
        (Some("rejected"), Some("reducing")),
        "{}",
        rows[2]
    );
    assert_eq!(l.clob.posts().len(), 2, "the BUY never reached the CLOB");
}

/// Marks stop coming (the CLOB no longer gives a midpoint) while a BUY is booked far from the last
/// one: the new shares count at their cost until the next mark, so the old mark's gap is neither
/// booked as today's loss at once (which would move trading to `reducing`) nor hides one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_buy_is_booked_far_from_a_stale_mark_then_its_shares_count_at_cost() {
    let mut l = live().await;
    l.d.set("risk", "mark_interval_s = 1");
    l.clob.set_mid(STD_TOKEN, "0.5");
    l.d.start_with(&[("POLYCOPY_RISK__DAILY_LOSS_LIMIT_USDC", "3")]);
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    // 10 shares for 5.10, marked at 0.50: -0.10.
    wait_for(20, "the copy marked", async || (l.d.status()["unrealized_usdc"] == "-0.1").then_some(())).await;
    l.clob.edit_token(STD_TOKEN, |t| t.mid = None);
    // The target buys at 0.90: we buy 10 more near 0.91. Valued at the old 0.50 they would be a
    // 4 USDC loss at once, past the 3 USDC limit.
    l.anvil.emit(&Fill::v2(2, A, C, true, STD_TOKEN, 100 * ONE, 90 * ONE)).await;
    wait_for(20, "the second copy", async || (with_status(&l.d.trades(), "executed").len() == 2).then_some(())).await;
    // What the daily loss limit counts (the supervisor's figure): the new shares at cost.
    assert_eq!(l.d.metric("polycopy_unrealized_pnl_usdc").await.as_deref(), Some("-0.1"));
    assert_eq!(l.d.metric("polycopy_pnl_today_usdc").await.as_deref(), Some("-0.1"));
    let st = l.d.status();
    assert_eq!(st["breaker"]["state"], "active", "{st}");
    // Marked again at 0.70: every share counts at the mark, 14 for a cost of 14.20.
    l.clob.set_mid(STD_TOKEN, "0.7");
    wait_for(20, "the next mark", async || {
        (l.d.metric("polycopy_unrealized_pnl_usdc").await.as_deref() == Some("-0.2")).then_some(())
    })
    .await;
    assert_eq!(l.d.status()["breaker"]["state"], "active");
}

/// A live daemon with a daily loss limit of 3 whose trading day starts at the next whole UTC hour,
/// marks read once an hour, and its clock (the commands' too) moved by the number written to the
/// returned file (`POLYCOPY_FAULT_CLOCK`); also returns that hour, unix ms.
async fn live_with_a_movable_day() -> (Live, std::path::PathBuf, i64) {
    let mut l = live().await;
    l.d.set("risk", "mark_interval_s = 3600");
    let next_hour_ms = (polycopy::store::now_ms() / 3_600_000 + 1) * 3_600_000;
    l.d.set("risk", &format!("day_starts_at_hour = {}", (next_hour_ms / 3_600_000) % 24));
    // Copies stay fresh whatever the moved clock says of their blocks.
    l.d.set("copy", "max_copy_delay_s = 0");
    let clock = l.d.dir.join("clock-shift");
    l.d.env.push(("POLYCOPY_FAULT_CLOCK".into(), clock.to_string_lossy().into_owned()));
    l.d.start_with(&[("POLYCOPY_RISK__DAILY_LOSS_LIMIT_USDC", "3")]);
    l.d.wait_live().await;
    (l, clock, next_hour_ms)
}

/// The trading day rolls on the supervisor's timer, with no fill, intent or mark arriving: the
/// daily loss limit's `reducing` ends at the configured hour, the lift is reported, today's P&L
/// starts again at zero, and the next BUY is copied. The limit is reached on a fee alone and marks
/// are read once an hour, so nothing but the timer can roll the day. The daemon's clock is moved
/// forward past the hour (`POLYCOPY_FAULT_CLOCK`, the commands' too) while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_the_trading_day_rolls_on_its_timer_then_the_loss_limits_reducing_ends() {
    let (l, clock, next_hour_ms) = live_with_a_movable_day().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the copy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    // Settled on chain with a fee of 3.50 pUSD: past the -3 limit.
    let ours = our_fill_of_the_first_order(&l, 3_500_000);
    l.anvil.emit(&ours).await;
    wait_for(20, "reducing", async || (l.d.status()["breaker"]["state"] == "reducing").then_some(())).await;
    assert_eq!(l.d.status()["realized_today_usdc"], "-3.5");

    // Past the hour, and nothing arrives: the timer rolls the day.
    let shift = next_hour_ms + 5_000 - polycopy::store::now_ms();
    std::fs::write(&clock, shift.to_string()).unwrap();
    wait_for(20, "the day rolled and the limit lifted", async || {
        (l.d.status()["breaker"]["state"] == "active").then_some(())
    })
    .await;
    wait_for(20, "the lift reported", async || {
        l.d.events("alert").into_iter().find(|e| e.contains("daily loss limit is reset"))
    })
    .await;
    assert_eq!(l.d.trades().len(), 1, "no fill came in: the timer rolled it");
    let s = l.d.status();
    assert_eq!((s["realized_today_usdc"].as_str(), s["fees_today_usdc"].as_str()), (Some("0"), Some("0")), "{s}");
    let (_, metrics) = http_get(&l.d.http_base().await, "/metrics").await;
    assert!(metrics.contains("polycopy_pnl_today_usdc 0\n"), "today starts again: {metrics}");
    l.anvil.emit(&buy(2, STD_TOKEN)).await;
    let rows = wait_for(20, "the next copy", async || {
        let t = l.d.trades();
        (t.len() == 2 && t[1]["status"] != "pending").then_some(t)
    })
    .await;
    assert_eq!((rows[1]["status"].as_str(), rows[1]["reason"].as_str()), (Some("executed"), None), "{}", rows[1]);
}

/// The trading day rolls while the journal cannot be written (another process holds its lock past
/// the busy timeout): the day's opening value is not journaled, and trading halts
/// (`database_error`) rather than going on with a loss limit that a restart would forget. The
/// write was only logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_the_days_opening_value_cannot_be_journaled_then_trading_halts() {
    let (l, clock, next_hour_ms) = live_with_a_movable_day().await;
    let lock = LockedJournal::hold(&l.d.dir.join("journal.db"));
    let shift = next_hour_ms + 5_000 - polycopy::store::now_ms();
    std::fs::write(&clock, shift.to_string()).unwrap();
    wait_for(30, "the opening value's write failed", async || {
        l.d.log().contains("journal write failed (the trading day's opening value)").then_some(())
    })
    .await;
    lock.release();
    let b = wait_for(20, "halted", async || {
        let s = l.d.status();
        (s["breaker"]["state"] == "halted").then(|| s["breaker"].clone())
    })
    .await;
    assert_eq!(b["code"], "database_error", "{b}");
}

/// The clock ran ahead past the day's hour (a new day opened at zero) and is set back: the day it
/// left opens again with its losses, and the loss limit counts them with the next one, instead
/// of allowing a second day's worth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_the_clock_is_set_back_into_the_day_it_left_then_its_losses_still_count() {
    let (l, clock, next_hour_ms) = live_with_a_movable_day().await;
    let pnl_today = async |l: &Live, want: &str| {
        let line = format!("polycopy_realized_pnl_today_usdc {want}\n");
        wait_for(20, &format!("today's realized P&L {want}"), async || {
            http_get(&l.d.http_base().await, "/metrics").await.1.contains(&line).then_some(())
        })
        .await;
    };
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the copy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    // A fee of 2 pUSD: today's loss, short of the -3 limit.
    l.anvil.emit(&our_fill_of_the_first_order(&l, 2_000_000)).await;
    pnl_today(&l, "-2").await;

    // The clock runs ahead past the hour: a new day opens at zero.
    std::fs::write(&clock, (next_hour_ms + 5_000 - polycopy::store::now_ms()).to_string()).unwrap();
    pnl_today(&l, "0").await;
    // Set back into the day it left, a quarter of an hour before its end (more than the small
    // step an NTP correction may take, whatever the minute this runs at): that day is open again,
    // with its loss.
    std::fs::write(&clock, (next_hour_ms - 15 * 60_000 - polycopy::store::now_ms()).to_string()).unwrap();
    pnl_today(&l, "-2").await;
    assert_eq!(l.d.status()["breaker"]["state"], "active");

    // Another 1.50 of fees: -3.50 today, past the limit.
    l.anvil.emit(&buy(2, STD_TOKEN)).await;
    wait_for(20, "the second copy", async || (with_status(&l.d.trades(), "executed").len() == 2).then_some(())).await;
    let mut second = our_fill_of_the_first_order(&l, 1_500_000);
    second.order_hash = l.clob.orders()[1].id.parse().unwrap();
    l.anvil.emit(&second).await;
    wait_for(20, "reducing", async || (l.d.status()["breaker"]["state"] == "reducing").then_some(())).await;

    // Ahead past the hour again: the new day lifts the limit. Set back, the day it left is past
    // its limit again, and reducing again, not left active with its loss.
    std::fs::write(&clock, (next_hour_ms + 5_000 - polycopy::store::now_ms()).to_string()).unwrap();
    wait_for(20, "lifted", async || (l.d.status()["breaker"]["state"] == "active").then_some(())).await;
    std::fs::write(&clock, (next_hour_ms - 15 * 60_000 - polycopy::store::now_ms()).to_string()).unwrap();
    pnl_today(&l, "-3.5").await;
    wait_for(20, "reducing again", async || (l.d.status()["breaker"]["state"] == "reducing").then_some(())).await;
}

/// The fee the exchange charged our order, read from our fill on chain, is realized P&L at once:
/// the supervisor's day (its limit can trip on fees alone), `status`, the metrics and the report
/// agree, and a restart counts it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_our_fill_pays_a_fee_on_chain_then_todays_pnl_counts_it_once() {
    let mut l = live().await;
    l.d.start_with(&[("POLYCOPY_RISK__DAILY_LOSS_LIMIT_USDC", "3")]);
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the copy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    assert_eq!(l.d.status()["realized_today_usdc"], "0");
    // Settled on chain with a fee of 3.50 pUSD on top: past the -3 limit on fees alone.
    let ours = our_fill_of_the_first_order(&l, 3_500_000);
    l.anvil.emit(&ours).await;
    let b = wait_for(20, "reducing", async || {
        let s = l.d.status();
        (s["breaker"]["state"] == "reducing").then(|| s["breaker"].clone())
    })
    .await;
    assert!(b["reason"].as_str().unwrap().contains("P&L today -3.5"), "{b}");
    let s = l.d.status();
    assert_eq!((s["realized_today_usdc"].as_str(), s["fees_today_usdc"].as_str()), (Some("-3.5"), Some("3.5")), "{s}");
    let (_, metrics) = http_get(&l.d.http_base().await, "/metrics").await;
    assert!(metrics.contains("polycopy_realized_pnl_today_usdc -3.5"), "{metrics}");
    let (code, out, err) = l.d.run_cli(&["report", "daily", "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((report["realized_usdc"].as_str(), report["fees_usdc"].as_str()), (Some("-3.5"), Some("3.5")));
    assert_eq!(report["targets"][0]["target"], "whale", "{report}");
    assert_eq!(report["targets"][0]["realized_usdc"], "-3.5", "the copy's target pays it: {report}");

    // After a restart the journal's day counts the fee once.
    l.d.stop();
    l.d.start_with(&[("POLYCOPY_RISK__DAILY_LOSS_LIMIT_USDC", "3")]);
    l.d.wait_live().await;
    let (_, metrics) = http_get(&l.d.http_base().await, "/metrics").await;
    assert!(metrics.contains("polycopy_realized_pnl_today_usdc -3.5"), "{metrics}");
    assert_eq!(l.d.status()["realized_today_usdc"], "-3.5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_restart_when_a_day_opened_with_a_gain_then_no_phantom_loss_and_an_earlier_days_limit_ends() {
    let mut l = live().await;
    l.d.set("risk", "mark_interval_s = 1");
    l.clob.set_mid(STD_TOKEN, "0.9");
    let limit = [("POLYCOPY_RISK__DAILY_LOSS_LIMIT_USDC", "3")];
    l.d.start_with(&limit);
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    // 10 shares for 5.10, marked at 0.90: +3.90.
    wait_for(20, "the copy marked", async || (l.d.status()["unrealized_usdc"] == "3.9").then_some(())).await;
    l.d.stop();

    // As if the day had opened with that gain, and yesterday's loss limit had left `reducing`
    // while the daemon was down at the roll. The CLOB no longer marks the token.
    let day_ms = polycopy::store::now_ms() / 86_400_000 * 86_400_000;
    let c = rusqlite::Connection::open(l.d.dir.join("journal.db")).unwrap();
    c.execute("INSERT OR REPLACE INTO day_open (day_start_ms, unrealized) VALUES (?1, 3900000)", [day_ms]).unwrap();
    c.execute(
        "INSERT OR REPLACE INTO breaker (id, tripped, reducing, code, reason, by, since_ms) \
         VALUES (1, 0, 1, 'daily_loss_limit', 'P&L yesterday', 'daemon', ?1)",
        [day_ms - 3_600_000],
    )
    .unwrap();
    drop(c);
    l.clob.edit_token(STD_TOKEN, |t| t.mid = None);

    l.d.start_with(&limit);
    l.d.wait_live().await;
    assert_eq!(l.d.events("breaker_tripped").len(), 0, "the journal's state was written, not reached");
    wait_for(20, "yesterday's limit lifted", async || (l.d.status()["breaker"]["state"] == "active").then_some(()))
        .await;
    wait_for(20, "the lift reported", async || {
        l.d.events("alert").into_iter().find(|e| e.contains("daily loss limit is reset"))
    })
    .await;
    // Valued at its last mark, not at cost: the day's gain is not counted as a -3.90 loss.
    l.anvil.emit(&buy(2, STD_TOKEN)).await;
    let rows = wait_for(20, "the second copy", async || {
        let t = l.d.trades();
        (t.len() == 2 && t.iter().all(|r| r["status"] != "pending")).then_some(t)
    })
    .await;
    assert_eq!((rows[1]["status"].as_str(), rows[1]["reason"].as_str()), (Some("executed"), None), "{}", rows[1]);
    assert_eq!(l.d.status()["breaker"]["state"], "active");
}

/// Started with nothing open, so the day opened at zero; a position bought and marked at a loss;
/// then a restart. The day's opening was journaled at the start, so the loss stays today's: marked
/// lower after the restart, the limit is reached. (Opened again at the first marks after the
/// restart, the loss so far would be forgotten and the operator could lose the limit twice.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_restart_when_the_day_opened_with_nothing_then_its_loss_still_counts() {
    let mut l = live().await;
    l.d.set("risk", "mark_interval_s = 1");
    l.clob.set_mid(STD_TOKEN, "0.5");
    let limit = [("POLYCOPY_RISK__DAILY_LOSS_LIMIT_USDC", "3")];
    l.d.start_with(&limit);
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(20, "the copy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    // 10 shares for 5.10, marked at 0.25: -2.60 today, inside the -3 limit.
    l.clob.set_mid(STD_TOKEN, "0.25");
    wait_for(20, "marked at 0.25", async || (l.d.status()["unrealized_usdc"] == "-2.6").then_some(())).await;
    assert_eq!(l.d.status()["breaker"]["state"], "active");
    l.d.stop();

    l.d.start_with(&limit);
    l.d.wait_live().await;
    wait_for(20, "marked again after the restart", async || (l.d.status()["unrealized_usdc"] == "-2.6").then_some(()))
        .await;
    // Another 0.10 down: -3.60 since the day opened.
    l.clob.set_mid(STD_TOKEN, "0.15");
    let b = wait_for(20, "reducing", async || {
        let s = l.d.status();
        (s["breaker"]["state"] == "reducing").then(|| s["breaker"].clone())
    })
    .await;
    assert!(b["reason"].as_str().unwrap().contains("P&L today -3.6"), "{b}");
}

/// A position marked at 0.20 and then sold off is bought again after a restart, with no mark
/// since: it counts at cost, not at the 0.20 it had before it was closed (-3.10 of loss that is
/// not there, enough to stop BUYs for the rest of the day).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_restart_when_a_closed_position_is_bought_again_then_its_old_mark_is_forgotten() {
    let mut l = live().await;
    l.d.set("risk", "mark_interval_s = 1");
    l.clob.set_mid(STD_TOKEN, "0.2");
    let limit = [("POLYCOPY_RISK__DAILY_LOSS_LIMIT_USDC", "3")];
    l.d.start_with(&[("POLYCOPY_RISK__DAILY_LOSS_LIMIT_USDC", "100")]);
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    // 10 shares for 5.10, marked at 0.20: -3.10.
    wait_for(20, "the copy marked", async || (l.d.status()["unrealized_usdc"] == "-3.1").then_some(())).await;
    l.anvil.emit(&Fill::v2(2, A, C, false, STD_TOKEN, 100 * ONE, 50 * ONE)).await;
    wait_for(20, "the exit", async || (with_status(&l.d.trades(), "executed").len() == 2).then_some(())).await;
    l.d.stop();

    // Marked once an hour from now on: the first marks, at the start, find nothing held.
    l.d.replace_setting("mark_interval_s = 1", "mark_interval_s = 3600");
    l.d.start_with(&limit);
    l.d.wait_live().await;
    l.anvil.emit(&buy(3, STD_TOKEN)).await;
    wait_for(20, "bought again", async || (with_status(&l.d.trades(), "executed").len() == 3).then_some(())).await;
    let s = l.d.status();
    assert_eq!(s["unrealized_usdc"], "0", "at cost until marked again: {s}");
    assert_eq!(s["breaker"]["state"], "active", "{s}");
}

/// A BUY whose intent was journaled but never sent (the process died in between) is not sent after
/// a restart that finds trading `reducing`: only exits go out, whenever they were approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_restart_when_reducing_then_a_recovered_buy_never_sent_stays_home() {
    let mut l = live().await;
    l.d.start_with(&[("POLYCOPY_FAULT", "abort_after_intent")]);
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    assert!(!l.d.wait_exit().await.success(), "the fault killed it");
    assert_eq!(l.d.trades()[0]["status"], "pending");
    let c = rusqlite::Connection::open(l.d.dir.join("journal.db")).unwrap();
    c.execute(
        "INSERT OR REPLACE INTO breaker (id, tripped, reducing, code, reason, by, since_ms) \
         VALUES (1, 0, 1, 'daily_loss_limit', 'P&L today -250', 'daemon', ?1)",
        [polycopy::store::now_ms()],
    )
    .unwrap();
    drop(c);
    l.d.start();
    l.d.wait_live().await;
    let r = wait_for(20, "the recovered BUY decided", async || {
        l.d.trades().into_iter().next().filter(|r| r["status"] != "pending")
    })
    .await;
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("rejected"), Some("reducing")), "{r}");
    assert!(l.clob.posts().is_empty(), "nothing was sent");
    assert_eq!(l.d.status()["breaker"]["state"], "reducing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_markets_when_closed_or_ending_then_held_back_and_named() {
    let mut l = live().await;
    const CLOSED: u64 = 3003;
    const ENDING: u64 = 4004;
    l.clob.token(CLOSED, Token { closed: true, ..Token::open(false) });
    l.clob.token(ENDING, Token { ends_in_min: 20, ..Token::open(false) });
    l.d.set("copy", "min_minutes_to_end = 60");
    start_live(&mut l).await;
    for (order, token) in [(1, CLOSED), (2, ENDING), (3, STD_TOKEN)] {
        l.anvil.emit(&buy(order, token)).await;
    }
    let rows = wait_for(20, "three finished copies", async || {
        let r = l.d.trades();
        (r.len() == 3 && r.iter().all(|r| r["status"] != "pending")).then_some(r)
    })
    .await;
    let got: Vec<_> = rows.iter().map(|r| (r["status"].as_str(), r["reason"].as_str(), r["market"].as_str())).collect();
    assert_eq!(
        got,
        [
            (Some("rejected"), Some("market_closed"), Some("Market 3003 — Yes")),
            (Some("rejected"), Some("near_end"), Some("Market 4004 — Yes")),
            (Some("executed"), None, Some("Market 1001 — Yes")),
        ]
    );
    assert_eq!(l.clob.posts().len(), 1, "only the open market got an order");
    // The report names the market (it follows the journal's row by a moment).
    wait_for(10, "the copy reported with its market", async || {
        l.d.log().contains("of Market 1001 — Yes").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_markets_when_resolved_then_position_settles_at_one_or_zero() {
    let mut l = live().await;
    l.d.set("risk", "mark_interval_s = 1");
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    l.anvil.emit(&buy(2, NEG_TOKEN)).await;
    wait_for(20, "two copies", async || (with_status(&l.d.trades(), "executed").len() == 2).then_some(())).await;
    // Each position: 10 shares for 5.10, settled on chain (until then a resolution waits: the
    // match may yet be taken out of the books).
    settle_buys_on_chain(&l, &[STD_TOKEN, NEG_TOKEN]).await;
    // The first market resolves for us, the second against us.
    l.clob.edit_token(STD_TOKEN, |t| (t.closed, t.payout) = (true, Some("1")));
    l.clob.edit_token(NEG_TOKEN, |t| (t.closed, t.payout) = (true, Some("0")));
    let status = wait_for(20, "both settlements", async || {
        let s = l.d.status();
        s["positions"].as_array().unwrap().is_empty().then_some(s)
    })
    .await;
    // +4.90 and -5.10.
    assert_eq!(status["realized_today_usdc"], "-0.2", "{status}");
    // Reports are journaled on their own thread, after the booking they tell of: wait for both.
    let settled = wait_for(20, "both settlements reported", async || {
        let e = l.d.events("settled");
        (e.len() >= 2).then_some(e)
    })
    .await;
    assert_eq!(settled.len(), 2, "{settled:?}");
    assert!(
        settled
            .iter()
            .any(|e| e.contains("Market 1001 — Yes") && e.contains("settled at 1") && e.contains("realized 4.9"))
    );
    assert!(
        settled
            .iter()
            .any(|e| e.contains("Market 2002 — Yes") && e.contains("settled at 0") && e.contains("realized -5.1"))
    );
    let (code, out, err) = l.d.run_cli(&["report", "daily", "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["realized_usdc"], "-0.2", "{report}");
    assert_eq!(report["exposure_usdc"], "0", "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_paper_when_order_book_model_then_fills_walk_the_book() {
    let anvil = Anvil::start().await;
    let clob = FakeClob::start(Address::ZERO).await;
    // Asks: 4 at 0.50, 3 at 0.51, 10 at 0.53. Our copies buy 10 at a limit of 0.51.
    clob.token(1001, Token { asks: vec![("0.53", "10"), ("0.50", "4"), ("0.51", "3")], ..Token::open(false) });
    clob.token(1002, Token { asks: vec![("0.60", "50")], ..Token::open(false) });
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    d.env.push(("CLOB_HOST".into(), clob.url.clone()));
    d.set("paper", "fill_model = \"order_book\"");
    d.start();
    d.wait_live().await;
    for (order, token) in [(1, 1001), (2, 1002)] {
        anvil.emit(&Fill::v2(order, A, C, true, token, 100 * ONE, 50 * ONE)).await;
    }
    let rows = wait_for(20, "both copies", async || {
        let r = d.trades();
        (r.len() == 2 && r.iter().all(|r| r["status"] != "pending")).then_some(r)
    })
    .await;
    // 4 × 0.50 + 3 × 0.51 = 3.53 for 7 shares: a partial fill at the average price.
    assert_eq!(
        (rows[0]["status"].as_str(), rows[0]["shares"].as_str(), rows[0]["usdc"].as_str()),
        (Some("executed"), Some("7"), Some("3.53")),
        "{}",
        rows[0]
    );
    assert_eq!((rows[1]["status"].as_str(), rows[1]["reason"].as_str()), (Some("rejected"), Some("no_liquidity")));
    assert!(clob.requests("/book") >= 2);
}
