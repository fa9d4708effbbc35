//! Telegram against a fake Bot API server: every action reported once, commands answered with the
//! journal's truth from authorized chats only, paced delivery with digests under a burst, 429 and
//! outages survived, scheduled reports with a PNG, and the token never leaked.

use std::time::Duration;

use crate::support::http::http_get;
use crate::support::telegram::FakeTelegram;
use crate::support::*;
use alloy::primitives::{Address, address};
use serde_json::json;

const A: Address = address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
const B: Address = address!("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
const C: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");
const TOKEN: &str = "123456789:TEST-SECRET-TOKEN-abcdef";
const OP: i64 = 1001;
const STRANGER: i64 = 666;

fn two_targets() -> serde_json::Value {
    json!({"defaults": {"sizing": {"mode": "multiplier", "multiplier": 0.1}},
           "wallets": [{"address": A.to_string(), "label": "whale", "max_price": 0.8},
                       {"address": B.to_string(), "label": "shark"}]})
}

async fn message_containing(tg: &FakeTelegram, chat: i64, needle: &str) -> crate::support::telegram::Sent {
    wait_for(20, &format!("a message with {needle:?}"), async || {
        tg.sent_to(chat).into_iter().find(|m| m.text.contains(needle))
    })
    .await
}

/// Waits for the reply to the n-th command (counting messages to the chat after `before`).
async fn reply_after(tg: &FakeTelegram, chat: i64, before: usize) -> crate::support::telegram::Sent {
    wait_for(20, "a reply", async || tg.sent_to(chat).get(before).cloned()).await
}

/// A copy produces exactly one message with the right numbers, a rejected fill one message naming
/// the rule; the start is announced and the commands are registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_report_when_copied_or_rejected_then_one_message_each() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &two_targets());
    d.with_telegram(&tg, &OP.to_string());
    d.set("telegram", r#"notify = { rejected = "silent" }"#);
    d.start();
    d.wait_live().await;
    message_containing(&tg, OP, "started in PAPER mode, 2 targets").await;
    let status_cmd =
        wait_for(10, "the command menu", async || tg.commands().into_iter().find(|c| c["command"] == "status")).await;
    assert_eq!(status_cmd["description"], "mode, breaker, chain lag, targets, exposure, today's P&L");
    assert_eq!(tg.commands().len(), 18);

    anvil.emit(&Fill::v2(1, A, C, true, 7, 100 * ONE, 50 * ONE)).await;
    // Formatted for a phone: HTML, the side at a glance, the numbers, the target, the trade's link.
    let m = message_containing(&tg, OP, "copied <i>whale</i>").await;
    for want in ["🟢 <b>BUY</b> 10 shares", "<b>token 7</b>", "at 0.5 = <b>5 USDC</b>", "(target 100 at 0.5)"] {
        assert!(m.text.contains(want), "{want:?} missing in {}", m.text);
    }
    assert!(m.text.contains("<a href=\"https://polygonscan.com/tx/0x"), "{}", m.text);
    assert!(tg.parse_modes().iter().all(|p| p == "HTML") && !tg.parse_modes().is_empty());
    anvil.emit(&Fill::v2(2, A, C, true, 8, 100 * ONE, 90 * ONE)).await;
    let r = message_containing(&tg, OP, "not copied").await;
    assert!(r.text.contains("the target's price 0.9 is outside this target's band (0 to 0.8)"), "{}", r.text);
    assert!(r.text.contains("<code>price_out_of_band</code>") && !r.text.contains("🟢"), "{}", r.text);
    assert!(r.silent && !m.silent, "rejections are configured silent, copies are not");
    // A later copy is the marker: once its notice is out, a duplicate of the earlier ones would be too.
    anvil.emit(&Fill::v2(3, A, C, true, 9, 100 * ONE, 50 * ONE)).await;
    message_containing(&tg, OP, "<b>token 9</b>").await;
    assert_eq!(tg.sent_to(OP).iter().filter(|m| m.text.contains("copied <i>whale</i>")).count(), 2);
    assert_eq!(tg.sent_to(OP).iter().filter(|m| m.text.contains("not copied")).count(), 1);
    // A cron health alert relayed through the daemon reaches the chat, and /health shows Telegram.
    // Only with the daemon's token (any local process or a web page could otherwise flood the chat),
    // and at a bounded pace.
    let base = d.http_base().await;
    let token = std::fs::read_to_string(dir.path().join("journal.db.alert-token")).unwrap();
    let post = |auth: Option<String>, body: &str| {
        let mut c = std::process::Command::new("curl");
        c.args(["-sS", "-o", "/dev/stderr", "-w", "%{http_code}", "-X", "POST", "--data-binary", body]);
        if let Some(a) = auth {
            c.args(["-H", &format!("Authorization: Bearer {}", a.trim())]);
        }
        let (_, code, answer) = crate::support::output(c.arg(format!("{base}/alert")).output().unwrap());
        (code, answer)
    };
    let (code, answer) = post(None, "forged: no token");
    assert_eq!(code, "401");
    assert!(answer.contains("journal.db.alert-token") && !answer.contains(token.trim()), "{answer}");
    assert!(!answer.contains(&dir.path().display().to_string()), "the journal's directory: {answer}");
    assert_eq!(post(Some("0".repeat(64)), "forged: wrong token").0, "401");
    // A long alert (every failing check of a bad night) is relayed cut, not refused.
    let long = format!("health check: disk low; {}", "chain: no answer; ".repeat(200));
    assert_eq!(post(Some(token.clone()), &long).0, "202");
    let m = message_containing(&tg, OP, "ALERT: health check: disk low").await;
    assert!(m.text.contains("…(cut)"), "{}", m.text);
    // An empty one is refused without spending a turn of the pace.
    assert_eq!(post(Some(token.clone()), "  ").0, "400");
    let codes: Vec<String> = (0..6).map(|i| post(Some(token.clone()), &format!("flood {i}")).0).collect();
    assert_eq!(codes.iter().filter(|c| *c == "429").count(), 2, "a burst of 5 then one a minute: {codes:?}");
    message_containing(&tg, OP, "ALERT: flood 3").await;
    assert!(!tg.sent_to(OP).iter().any(|m| m.text.contains("forged") || m.text.contains("flood 5")));
    let health = crate::support::output(
        std::process::Command::new("curl").args(["-sS", &format!("{base}/health")]).output().unwrap(),
    )
    .1;
    assert!(health.contains(r#""name":"telegram","status":"healthy","detail":"connected""#), "{health}");
    assert!(d.stop().success());
    message_containing(&tg, OP, "polycopy stopped: SIGTERM").await;
    assert!(!d.log().contains("TEST-SECRET-TOKEN"));
}

/// A daemon watching two targets, commanded from chat `OP` of a fake Telegram, its routine
/// reports off.
async fn commanded() -> (Anvil, FakeTelegram, tempfile::TempDir, Daemon) {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &two_targets());
    d.with_telegram(&tg, &OP.to_string());
    d.set("telegram", r#"notify = { executed = "off", rejected = "off", started = "off", stopped = "off" }"#);
    d.start();
    d.wait_live().await;
    (anvil, tg, dir, d)
}

/// The commands answer from authorized chats with the journal's truth; /halt stops executions,
/// /resume needs the button; /pause stops one target and survives a restart; a stranger's
/// commands change nothing and get no reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_commands_when_authorized_then_obeyed_and_strangers_ignored() {
    let (anvil, tg, dir, mut d) = commanded().await;
    anvil.emit(&Fill::v2(1, A, C, true, 7, 100 * ONE, 50 * ONE)).await;
    wait_for(20, "a copy", async || (with_status(&d.trades(), "executed").len() == 1).then_some(())).await;

    // Sends a command and returns the first new message containing `needle` (alerts may arrive first).
    let ask = async |cmd: &str, needle: &str| {
        let before = tg.sent_to(OP).len();
        tg.inject_message(OP, cmd);
        wait_for(10, &format!("a reply to {cmd} with {needle:?}"), async || {
            tg.sent_to(OP)[before..].iter().find(|m| m.text.contains(needle)).map(|m| m.text.clone())
        })
        .await
    };
    let status = ask("/status", "mode PAPER").await;
    assert!(
        status.contains("mode PAPER") && status.contains("breaker ok") && status.contains("exposure 5 USDC"),
        "{status}"
    );
    assert!(status.contains("targets 2 watched, 0 paused"), "{status}");
    let positions = ask("/positions", "open positions").await;
    assert!(positions.contains("token 7\n  10 sh at avg 0.5 (cost 5 USDC), not marked yet"), "{positions}");
    let status = ask("/status", "daily loss limit used").await;
    assert!(status.contains("of 10000 USDC allowed") && status.contains("unrealized"), "{status}");
    assert!(status.contains("today's P&L 0 USDC, 0% of the 1000 USDC daily loss limit used"), "{status}");
    assert!(status.contains("last fill BUY 100 7 at 0.5 → executed"), "{status}");
    ask("/version", "PAPER mode, up").await;
    let balance = ask("/balance", "PAPER mode: no wallet").await;
    assert!(
        balance.contains("open positions: cost 5 USDC") && balance.contains("realized P&L, all time: 0 USDC"),
        "{balance}"
    );
    ask("/targets", "whale 0xaaaa…aaaa").await;
    ask("/report fortnightly", "usage: /report [daily|weekly|monthly]").await;
    let trades = ask("/trades 5", "ours").await;
    assert!(trades.contains("whale BUY 100 at 0.5 · token 7\n  ours 10 at 0.5 = 5 USDC"), "{trades}");
    let pnl = ask("/pnl 3", "realized P&L").await;
    assert!(pnl.contains("last 3 days: 0 USDC"), "{pnl}");
    let wallets = ask("/wallets", "whale").await;
    assert!(wallets.contains("whale 0xaaaa…aaaa: copying, 1 fills since start"), "{wallets}");
    let help = ask("/help", "/status").await;
    assert!(help.starts_with("polycopy commands:") && help.contains("/pause") && help.contains("/report"), "{help}");
    assert!(!help.contains("doc comment") && !help.contains("variant"), "no source comment in /help: {help}");
    ask("/start", "copies the trades").await;
    ask("/STATUS", "mode PAPER").await;
    // Invisible marks a keyboard or a paste puts around a command do not hide it.
    ask("\u{200E}/status\u{200B}", "mode PAPER").await;
    ask("/trades lots", "usage: /trades [n]").await;
    ask("/frobnicate", "unknown command").await;
    // A command addressed to another bot in a group gets no answer; ours (with our name) does.
    let before = tg.sent_to(OP).len();
    tg.inject_message(OP, "/halt@OtherBot");
    ask("/status@polycopy_test_bot", "mode PAPER").await;
    assert_eq!(tg.sent_to(OP).len(), before + 1, "only the marker was answered");
    assert_eq!(d.status()["breaker"]["tripped"], false, "another bot's /halt is not ours");

    // A stranger: no reply, no effect.
    for cmd in ["/halt", "/pause whale", "/status", "/resume"] {
        tg.inject_message(STRANGER, cmd);
    }
    tg.inject_callback(STRANGER, "resume:0:0");
    // Updates are handled in order: the answer to a later command of ours is the marker.
    ask("/status", "mode PAPER").await;
    assert!(tg.sent_to(STRANGER).is_empty());
    assert!(d.log().contains("unauthorized chat"));
    assert_eq!(d.status()["breaker"]["tripped"], false);

    // /halt: the next fill is not executed (the breaker alert and the reply both arrive).
    let before = tg.sent_to(OP).len();
    tg.inject_message(OP, "/halt lunch");
    wait_for(10, "the halt reply", async || {
        tg.sent_to(OP)[before..].iter().any(|m| m.text.contains("HALTED (PAPER): no new orders (lunch)")).then_some(())
    })
    .await;
    // The breaker alert reaches the chat too (message_containing fails the test if it never does).
    message_containing(&tg, OP, "BREAKER TRIPPED (manual) by telegram: lunch").await;
    anvil.emit(&Fill::v2(2, A, C, true, 9, 100 * ONE, 50 * ONE)).await;
    let last =
        wait_for(20, "the halted fill", async || d.trades().into_iter().nth(1).filter(|r| r["status"] != "pending"))
            .await;
    assert_eq!((last["status"].as_str(), last["reason"].as_str()), (Some("rejected"), Some("halted")));
    // A second /halt does not pretend to store its reason.
    ask("/halt dinner", "already halted (manual) by telegram: lunch").await;
    // /resume asks first; without the button nothing changes.
    let before = tg.sent_to(OP).len();
    tg.inject_message(OP, "/resume");
    let confirm = reply_after(&tg, OP, before).await;
    assert_eq!(confirm.buttons.len(), 1, "{confirm:?}");
    let button = confirm.buttons[0].clone();
    assert!(button.starts_with("resume:"), "{button}");
    assert_eq!(d.status()["breaker"]["tripped"], true);
    // With the emergency stop file present, neither /resume nor the button resumes, and both say why.
    std::fs::write(dir.path().join("EMERGENCY_STOP"), "").unwrap();
    ask("/resume", "emergency stop file").await;
    let before = tg.sent_to(OP).len();
    tg.inject_callback(OP, &button);
    wait_for(10, "the refusal", async || {
        tg.sent_to(OP)[before..].iter().any(|m| m.text.contains("emergency stop file")).then_some(())
    })
    .await;
    std::fs::remove_file(dir.path().join("EMERGENCY_STOP")).unwrap();
    // Without the file, the button resumes the halt it was offered for.
    let before = tg.sent_to(OP).len();
    tg.inject_callback(OP, &button);
    wait_for(10, "resumed", async || {
        tg.sent_to(OP)[before..].iter().any(|m| m.text.contains("resumed: trading active again")).then_some(())
    })
    .await;
    // A halt after a button was offered voids it, even one that found trading halted already.
    ask("/halt once more", "HALTED").await;
    let before = tg.sent_to(OP).len();
    tg.inject_message(OP, "/resume");
    let offered = reply_after(&tg, OP, before).await.buttons[0].clone();
    ask("/halt and again", "already halted").await;
    let before = tg.sent_to(OP).len();
    tg.inject_callback(OP, &offered);
    wait_for(10, "the voided button refused", async || {
        tg.sent_to(OP)[before..]
            .iter()
            .any(|m| m.text.contains("halted again after this button was offered"))
            .then_some(())
    })
    .await;
    assert_eq!(d.status()["breaker"]["tripped"], true, "still halted");
    let before = tg.sent_to(OP).len();
    tg.inject_message(OP, "/resume");
    let fresh = reply_after(&tg, OP, before).await.buttons[0].clone();
    let before = tg.sent_to(OP).len();
    tg.inject_callback(OP, &fresh);
    wait_for(10, "resumed", async || {
        tg.sent_to(OP)[before..].iter().any(|m| m.text.contains("resumed: trading active again")).then_some(())
    })
    .await;
    // A newer halt: the old button, pressed again, is refused and changes nothing.
    ask("/halt again", "HALTED").await;
    let before = tg.sent_to(OP).len();
    tg.inject_callback(OP, &button);
    wait_for(10, "the stale button refused", async || {
        tg.sent_to(OP)[before..].iter().any(|m| m.text.contains("this button was for an earlier halt")).then_some(())
    })
    .await;
    assert_eq!(d.status()["breaker"]["tripped"], true, "a stale button does not clear a newer halt");
    let before = tg.sent_to(OP).len();
    tg.inject_message(OP, "/resume");
    let button = reply_after(&tg, OP, before).await.buttons[0].clone();
    let before = tg.sent_to(OP).len();
    tg.inject_callback(OP, &button);
    wait_for(10, "resumed again", async || {
        tg.sent_to(OP)[before..].iter().any(|m| m.text.contains("resumed: trading active again")).then_some(())
    })
    .await;
    wait_for(5, "the callback answered", async || (!tg.callbacks_answered().is_empty()).then_some(())).await;
    wait_for(5, "the used button removed", async || (!tg.markups_removed().is_empty()).then_some(())).await;
    anvil.emit(&Fill::v2(3, A, C, true, 10, 100 * ONE, 50 * ONE)).await;
    wait_for(20, "copying again", async || (with_status(&d.trades(), "executed").len() == 2).then_some(())).await;

    // /pause one target only, across a restart.
    ask("/pause WHALE", "paused whale").await;
    // Reported as what the operator did: in the journal's events, so to every chat too.
    wait_for(10, "the pause reported", async || {
        d.events("operator").into_iter().find(|m| m.contains("target whale paused") && m.contains("by telegram"))
    })
    .await;
    anvil.emit(&Fill::v2(4, A, C, true, 11, 100 * ONE, 50 * ONE)).await;
    anvil.emit(&Fill::v2(5, B, C, true, 12, 100 * ONE, 50 * ONE)).await;
    let rows = wait_for(20, "both fills", async || {
        let r = d.trades();
        (r.len() == 5 && r.iter().all(|x| x["status"] != "pending")).then_some(r)
    })
    .await;
    assert_eq!(rows[3]["reason"], "paused");
    assert_eq!(rows[4]["status"], "executed");
    assert!(d.stop().success());
    d.start();
    d.wait_live().await;
    anvil.emit(&Fill::v2(6, A, C, true, 13, 100 * ONE, 50 * ONE)).await;
    let row = wait_for(20, "the fill after restart", async || {
        d.trades().into_iter().nth(5).filter(|r| r["status"] != "pending")
    })
    .await;
    assert_eq!(row["reason"], "paused", "the pause survived the restart");
    ask("/unpause whale", "copying whale again").await;
    anvil.emit(&Fill::v2(7, A, C, true, 14, 100 * ONE, 50 * ONE)).await;
    let row = wait_for(20, "the fill after unpause", async || {
        d.trades().into_iter().nth(6).filter(|r| r["status"] != "pending")
    })
    .await;
    assert_eq!(row["status"], "executed");
}

/// Commands typed while the daemon was down arrive at its next start, up to a day late: a late
/// /unpause (which resumes buying without asking) is not done and says so, a late /pause is, and
/// the same /unpause sent now is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_commands_when_a_resumption_is_an_hour_old_then_it_is_not_done() {
    let (anvil, tg, _dir, d) = whale_with_telegram().await;
    tg.inject_message_sent_ago(OP, "/pause whale", 3_600);
    message_containing(&tg, OP, "paused whale").await;
    tg.inject_message_sent_ago(OP, "/unpause whale", 3_000);
    let refused = message_containing(&tg, OP, "was sent 50 min ago").await;
    assert!(refused.text.contains("not done"), "{}", refused.text);
    anvil.emit(&Fill::v2(1, A, C, true, 10, 100 * ONE, 50 * ONE)).await;
    let row =
        wait_for(20, "the fill", async || d.trades().into_iter().next().filter(|r| r["status"] != "pending")).await;
    assert_eq!(row["reason"], "paused", "still paused: {row}");
    tg.inject_message(OP, "/unpause whale");
    message_containing(&tg, OP, "copying whale again").await;
}

/// A resume button offered before a restart, and a /halt after it that found trading already
/// halted: the button is refused. The gate's count of halts starts afresh in the new process and
/// may count the same again; the time of the last halt is journaled and does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_resume_button_when_halted_again_after_a_restart_then_refused() {
    let (_anvil, tg, _dir, mut d) = whale_with_telegram().await;
    tg.inject_message(OP, "/halt lunch");
    message_containing(&tg, OP, "HALTED").await;
    let before = tg.sent_to(OP).len();
    tg.inject_message(OP, "/resume");
    let button = wait_for(10, "the resume button", async || {
        tg.sent_to(OP)[before..].iter().find_map(|m| m.buttons.first().cloned())
    })
    .await;
    assert!(d.stop().success());
    d.start();
    d.wait_live().await;

    let before = tg.sent_to(OP).len();
    tg.inject_message(OP, "/halt and stay halted");
    wait_for(10, "the second halt's answer", async || {
        tg.sent_to(OP)[before..].iter().any(|m| m.text.contains("already halted")).then_some(())
    })
    .await;
    assert!(d.status()["breaker"]["halt_asked_ms"].as_i64() > d.status()["breaker"]["since_ms"].as_i64());
    let before = tg.sent_to(OP).len();
    tg.inject_callback(OP, &button);
    wait_for(10, "the button refused", async || {
        tg.sent_to(OP)[before..]
            .iter()
            .any(|m| m.text.contains("halted again after this button was offered"))
            .then_some(())
    })
    .await;
    assert_eq!(d.status()["breaker"]["state"], "halted", "still halted");
}

/// A running paper daemon copying "whale" (A), reporting to the operator's chat, its start announced.
async fn whale_with_telegram() -> (Anvil, FakeTelegram, tempfile::TempDir, Daemon) {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "whale", true)], 0.1));
    d.with_telegram(&tg, &OP.to_string());
    d.start();
    d.wait_live().await;
    message_containing(&tg, OP, "started in PAPER mode").await;
    (anvil, tg, dir, d)
}

/// A paper daemon copying the whale, with Telegram (`setup` adjusts it, `env` starts it), one
/// copy made, and the `/close all` offer sent for it.
async fn close_offered(
    env: &[(&str, &str)],
    setup: impl FnOnce(&mut Daemon),
) -> (Anvil, FakeTelegram, tempfile::TempDir, Daemon, crate::support::telegram::Sent) {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "whale", true)], 0.1));
    d.with_telegram(&tg, &OP.to_string());
    setup(&mut d);
    d.start_with(env);
    d.wait_live().await;
    message_containing(&tg, OP, "started in PAPER mode").await;
    anvil.emit(&Fill::v2(1, A, C, true, 7, 100 * ONE, 50 * ONE)).await;
    wait_for(30, "the copy", async || (with_status(&d.trades(), "executed").len() == 1).then_some(())).await;
    let before = tg.sent_to(OP).len();
    tg.inject_message(OP, "/close all");
    let offer =
        wait_for(20, "the offer", async || tg.sent_to(OP)[before..].iter().find(|m| !m.buttons.is_empty()).cloned())
            .await;
    (anvil, tg, dir, d, offer)
}

/// The outcome of the operator's own close answers a command: it reaches the chat even with the
/// copies' `executed` and `rejected` messages turned off (the reply promises it), while a copy's
/// does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_close_when_copies_messages_are_off_then_its_outcome_still_reaches_the_chat() {
    let (_anvil, tg, _dir, _d, offer) = close_offered(&[], |d| {
        d.set("telegram", r#"notify = { executed = "off", rejected = "off" }"#);
    })
    .await;
    tg.inject_callback(OP, &offer.buttons[0]);
    message_containing(&tg, OP, "closed by the operator: SELL 10 shares").await;
    let copies: Vec<_> = tg.sent_to(OP).into_iter().filter(|m| m.text.contains("copied")).collect();
    assert!(copies.is_empty(), "the copy's own message stays off: {copies:?}");
}

/// Live: the operator's close is sent, its answer never comes, and our fill on chain books it. That
/// booking answers the command too ("each outcome is reported here"): it reaches the chat with
/// the copies' `executed` messages turned off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_close_when_live_and_booked_from_our_fill_on_chain_then_its_outcome_still_reaches_the_chat() {
    use crate::support::clob::Play;
    use crate::support::live::{SIGNER, STD_TOKEN, buy, live, orders_in_journal};
    let mut l = live().await;
    let tg = FakeTelegram::start(TOKEN).await;
    l.d.with_telegram(&tg, &OP.to_string());
    l.d.set("telegram", r#"notify = { executed = "off" }"#);
    l.d.start();
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(30, "the copy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    l.clob.null_lookups();
    l.clob.script(&[Play::Hang]);
    let before = tg.sent_to(OP).len();
    tg.inject_message(OP, "/close all");
    let offer =
        wait_for(20, "the offer", async || tg.sent_to(OP)[before..].iter().find(|m| !m.buttons.is_empty()).cloned())
            .await;
    tg.inject_callback(OP, &offer.buttons[0]);
    let close = wait_for(30, "the close's order", async || orders_in_journal(&l.d).get(1).cloned()).await;
    // Our funder's SELL of the 10 shares settles on chain.
    let order_hash: alloy::primitives::B256 = close.0.parse().unwrap();
    let ours = Fill { order_hash, ..Fill::v2(0, SIGNER, C, false, STD_TOKEN, 10 * ONE, 4_900_000) };
    l.anvil.emit(&ours).await;
    let booked = message_containing(&tg, OP, "was filled on chain").await;
    assert!(booked.text.contains("SELL 10 shares"), "{}", booked.text);
}

/// A copy booked between the press of Close and the close itself (the offer listed 10 shares, the
/// book now holds 20) is not sold on that press: the supervisor compares its book with what the
/// offer showed as it plans the close, in the same step, and refuses. Before, the journal was
/// checked first and the close then sold whatever the book held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_close_when_a_copy_is_booked_after_the_press_then_nothing_unseen_is_sold() {
    let held = tempfile::tempdir().unwrap();
    let hold = held.path().join("hold-close");
    let fault = [("POLYCOPY_FAULT", "hold_before_close_asked"), ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap())];
    let (anvil, tg, _dir, d, offer) = close_offered(&fault, |_| {}).await;
    assert!(offer.text.contains("10 sh of"), "{}", offer.text);
    std::fs::write(&hold, "").unwrap();
    let before = tg.sent_to(OP).len();
    tg.inject_callback(OP, &offer.buttons[0]);
    wait_for(20, "the press held", async || d.log().contains("hold_before_close_asked").then_some(())).await;
    anvil.emit(&Fill::v2(2, A, C, true, 7, 100 * ONE, 50 * ONE)).await;
    wait_for(30, "the second copy", async || (with_status(&d.trades(), "executed").len() == 2).then_some(())).await;
    std::fs::remove_file(&hold).unwrap();
    let said = wait_for(30, "the press answered", async || {
        tg.sent_to(OP)[before..].iter().find(|m| m.text.contains("since this was offered")).map(|m| m.text.clone())
    })
    .await;
    assert!(said.contains("send /close again"), "{said}");
    let st = d.status();
    assert_eq!(st["positions"][0]["shares"], "20", "nothing sold: {st}");
    assert!(d.trades().iter().all(|t| t["side"] != "SELL"), "no close order: {:?}", d.trades());
}

/// A close not confirmed within its 10 s (its orders waiting for a slow journal) is said to be of
/// unknown outcome, never "not closed": it still goes out once the journal answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_close_when_not_confirmed_in_time_then_said_unknown_and_it_still_goes_out() {
    let held = tempfile::tempdir().unwrap();
    let hold = held.path().join("hold-close");
    let fault = [("POLYCOPY_FAULT", "hold_before_close_journaled"), ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap())];
    let (_anvil, tg, _dir, d, offer) = close_offered(&fault, |_| {}).await;
    std::fs::write(&hold, "").unwrap();
    let before = tg.sent_to(OP).len();
    tg.inject_callback(OP, &offer.buttons[0]);
    let said = wait_for(30, "the press answered", async || {
        tg.sent_to(OP)[before..].iter().find(|m| m.text.contains("close")).map(|m| m.text.clone())
    })
    .await;
    assert!(said.contains("outcome unknown") && !said.contains("not closed"), "{said}");
    std::fs::remove_file(&hold).unwrap();
    message_containing(&tg, OP, "closed by the operator: SELL 10 shares").await;
    assert!(d.status()["positions"].as_array().is_some_and(Vec::is_empty));
}

/// A paused target's buys are refused; its exit of what we copied from it before the pause is
/// still copied, so the position is not left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_pause_when_the_target_exits_then_its_exit_is_still_copied() {
    let (anvil, tg, _dir, mut d) = whale_with_telegram().await;
    anvil.install_balances().await;
    anvil.emit(&Fill::v2(1, A, C, true, 21, 100 * ONE, 50 * ONE)).await;
    wait_for(20, "the buy", async || (with_status(&d.trades(), "executed").len() == 1).then_some(())).await;
    tg.inject_message(OP, "/pause whale");
    message_containing(&tg, OP, "its exits still are").await;
    anvil.emit(&Fill::v2(2, A, C, true, 22, 100 * ONE, 50 * ONE)).await;
    anvil.set_balance(A, 21, 100 * ONE).await;
    anvil.emit(&Fill::v2(3, A, C, false, 21, 100 * ONE, 60 * ONE)).await;
    let rows = wait_for(20, "both fills decided", async || {
        let r = d.trades();
        (r.len() == 3 && r.iter().all(|x| x["status"] != "pending")).then_some(r)
    })
    .await;
    assert_eq!(rows[1]["reason"], "paused", "{:?}", rows[1]);
    assert_eq!(
        (rows[2]["status"].as_str(), rows[2]["shares"].as_str()),
        (Some("executed"), Some("10")),
        "{:?}",
        rows[2]
    );
    assert!(d.status()["positions"].as_array().unwrap().is_empty());
    assert!(d.stop().success());
}

/// How many copies the messages to `chat` report: single "copied …" messages plus digest counts.
fn copies_reported(tg: &FakeTelegram, chat: i64) -> u64 {
    tg.sent_to(chat)
        .iter()
        .map(|m| {
            if m.text.contains("copied <i>") && !m.text.contains(" copies executed") {
                1
            } else if let Some(n) =
                m.text.split(" copies executed").next().filter(|_| m.text.contains(" copies executed"))
            {
                n.trim().parse().unwrap_or(0)
            } else {
                0
            }
        })
        .sum()
}

/// Journal time to execution time of every execution, ms, in order.
fn internal_latencies(dir: &std::path::Path) -> Vec<i64> {
    let c = rusqlite::Connection::open(dir.join("journal.db")).unwrap();
    let mut st = c
        .prepare(
            "SELECT e.executed_at_ms - f.seen_at_ms FROM executions e JOIN fills f ON f.id = e.fill_id ORDER BY f.id",
        )
        .unwrap();
    st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

/// A burst of 200 copies: the fake sees no more than the allowed rate per chat (1/s, and 20/min in
/// a group), nothing is lost (digests add up to 200 in each chat), and a Telegram that answers
/// slowly does not slow the executions down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_burst_when_200_copies_then_paced_digested_and_trading_not_slowed() {
    const GROUP: i64 = -100_123;
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "whale", true)], 0.1));
    d.with_telegram(&tg, &format!("{OP},{GROUP}"));
    d.start();
    d.wait_live().await;
    let burst = async |first: u8| {
        for b in 0..10u8 {
            let fills: Vec<Fill> =
                (0..10u8).map(|i| Fill::v2(first + b * 10 + i, A, C, true, 5, 100 * ONE, 50 * ONE)).collect();
            anvil.emit_block(&fills).await;
        }
    };
    burst(0).await;
    wait_for(30, "100 copies", async || (with_status(&d.trades(), "executed").len() == 100).then_some(())).await;
    let fast = *internal_latencies(dir.path()).iter().max().unwrap();

    tg.slow(Duration::from_secs(3));
    burst(100).await;
    wait_for(30, "200 copies", async || (with_status(&d.trades(), "executed").len() == 200).then_some(())).await;
    let slow_phase = internal_latencies(dir.path())[100..].iter().copied().max().unwrap();
    assert!(slow_phase <= fast + 1_000, "a slow Telegram slowed executions: max {slow_phase} ms vs {fast} ms");
    tg.slow(Duration::ZERO);

    for chat in [OP, GROUP] {
        wait_for(90, "all 200 copies reported", async || (copies_reported(&tg, chat) == 200).then_some(())).await;
    }
    assert_eq!(copies_reported(&tg, OP), 200, "nothing lost, nothing doubled");
    for (chat, min_gap, per_min) in [(OP, 950, 60), (GROUP, 2_900, 20)] {
        let times: Vec<std::time::Instant> = tg.sent_to(chat).iter().map(|m| m.at).collect();
        for w in times.windows(2) {
            let gap = w[1].duration_since(w[0]).as_millis();
            assert!(
                gap + 50 >= min_gap,
                "chat {chat}: two messages {gap} ms apart: {:?}",
                tg.sent_to(chat).iter().map(|m| m.text.chars().take(60).collect::<String>()).collect::<Vec<_>>()
            );
        }
        for (i, t) in times.iter().enumerate() {
            let in_minute = times[i..].iter().take_while(|u| u.duration_since(*t) < Duration::from_secs(60)).count();
            assert!(in_minute <= per_min, "chat {chat}: {in_minute} messages within a minute");
        }
        assert!(times.len() < 60, "chat {chat}: a flood of {} messages instead of digests", times.len());
    }
}

/// A 429 with `retry_after` is obeyed; a Telegram outage of a minute loses no alert; the token never
/// appears in the daemon's output even while the fake fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_delivery_when_429_or_outage_then_obeyed_and_no_alert_lost() {
    let (anvil, tg, _dir, mut d) = whale_with_telegram().await;

    tg.fail_429(1, 2);
    anvil.emit(&Fill::v2(1, A, C, true, 5, 100 * ONE, 50 * ONE)).await;
    let m = message_containing(&tg, OP, "copied <i>whale</i>").await;
    let refused = tg.last_429().expect("the first attempt got a 429");
    assert!(m.at.duration_since(refused) >= Duration::from_millis(1_900), "retry_after not obeyed");
    assert_eq!(tg.sent_to(OP).iter().filter(|m| m.text.contains("copied <i>whale</i>")).count(), 1);

    tg.down_for(Duration::from_secs(60));
    let (code, _, _) = d.run_cli(&["halt", "--reason", "outage-test"]);
    assert_eq!(code, 0);
    anvil.emit(&Fill::v2(2, A, C, true, 6, 100 * ONE, 50 * ONE)).await; // rejected: halted (routine)
    let alert = wait_for(100, "the alert after the outage", async || {
        tg.sent_to(OP).into_iter().find(|m| m.text.contains("BREAKER TRIPPED (manual) by cli: outage-test"))
    })
    .await;
    assert!(!alert.silent);
    // The routine notice sent during the outage is not dropped either: it follows, alone or in a digest.
    message_containing(&tg, OP, "not copied").await;
    let log = d.log();
    assert!(log.contains("Telegram send failed"), "the outage was noticed");
    assert!(!log.contains("dropped"), "nothing is dropped: {log}");

    // Down again, then a stop: what is undelivered is kept in the journal and sent after the start.
    tg.down_for(Duration::from_secs(3600));
    anvil.emit(&Fill::v2(3, A, C, true, 7, 100 * ONE, 50 * ONE)).await; // rejected: halted
    wait_for(20, "the rejection", async || {
        d.trades().iter().any(|t| t["token_id"] == "7" && t["status"] == "rejected").then_some(())
    })
    .await;
    assert!(d.stop().success());
    assert!(d.log().contains("kept for the next start"), "{}", d.log());
    tg.down_for(Duration::ZERO);
    d.start();
    d.wait_live().await;
    let held = wait_for(20, "the held refusal", async || {
        tg.sent_to(OP)
            .into_iter()
            .find(|m| m.text.contains("(held from before the restart)") && m.text.contains("not copied"))
    })
    .await;
    let held = [held.text];
    assert!(held.iter().any(|t| t.contains("not copied")), "the refusal of fill 3 was held: {held:?}");
    assert!(d.stop().success());
    assert!(!d.log().contains("TEST-SECRET-TOKEN"), "the token leaked into the log");
}

/// Telegram down, an alert waiting, and the daemon killed (the watchdog's SIGABRT, the OOM killer):
/// no stop wrote what waited, yet the alert is delivered after the next start, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_delivery_when_the_daemon_crashes_while_telegram_is_down_then_the_waiting_alert_is_delivered_after_the_start()
 {
    let (_anvil, tg, _dir, mut d) = whale_with_telegram().await;
    tg.down_for(Duration::from_secs(3600));
    let (code, _, _) = d.run_cli(&["halt", "--reason", "crash-test"]);
    assert_eq!(code, 0);
    wait_for(20, "the waiting alert kept in the journal", async || {
        let c = rusqlite::Connection::open(d.dir.join("journal.db")).ok()?;
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM telegram_held WHERE text LIKE '%BREAKER TRIPPED%crash-test%'", [], |r| {
                r.get(0)
            })
            .ok()?;
        (n == 1).then_some(())
    })
    .await;
    d.kill9();
    tg.down_for(Duration::ZERO);
    d.start();
    d.wait_live().await;
    let held = message_containing(&tg, OP, "(held from before the restart)").await;
    assert!(held.text.contains("BREAKER TRIPPED (manual) by cli: crash-test"), "{}", held.text);
    // Delivered and forgotten: a later stop keeps nothing of it.
    wait_for(20, "the held rows forgotten", async || {
        let c = rusqlite::Connection::open(d.dir.join("journal.db")).ok()?;
        let n: i64 = c.query_row("SELECT COUNT(*) FROM telegram_held", [], |r| r.get(0)).ok()?;
        (n == 0).then_some(())
    })
    .await;
    let tripped =
        tg.sent_to(OP).iter().filter(|m| m.text.contains("BREAKER TRIPPED (manual) by cli: crash-test")).count();
    assert_eq!(tripped, 1, "{:?}", tg.sent_to(OP));
}

/// Telegram taking requests and never answering at a stop: the message being sent and every one
/// queued behind it (the daemon's "stopped" too) are kept in the journal and delivered after the
/// next start, even when the start after the stop was killed before it could send them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_delivery_when_telegram_hangs_at_a_stop_then_every_queued_message_is_kept() {
    let (anvil, tg, _dir, mut d) = whale_with_telegram().await;
    tg.inject_message(OP, "/halt");
    message_containing(&tg, OP, "BREAKER TRIPPED").await;
    tg.slow(Duration::from_secs(3600));
    for (n, token) in [(1, 7), (2, 8)] {
        anvil.emit(&Fill::v2(n, A, C, true, token, 100 * ONE, 50 * ONE)).await;
        let id = token.to_string();
        wait_for(20, "the rejection", async || {
            d.trades()
                .iter()
                .any(|t| t["token_id"].as_str() == Some(id.as_str()) && t["status"] == "rejected")
                .then_some(())
        })
        .await;
    }
    let before = tg.sent_to(OP).len();
    assert!(d.stop().success());
    // Started again while Telegram still hangs, and killed before they could go out: the held
    // messages stay in the journal until delivered, so the next start sends them still.
    d.start();
    d.wait_live().await;
    wait_for(20, "the held messages queued again", async || {
        d.log().contains("Telegram messages held from before the restart are sent first").then_some(())
    })
    .await;
    d.kill9();
    tg.slow(Duration::ZERO);
    d.start();
    d.wait_live().await;
    let held = wait_for(30, "both refusals and the stop, held and delivered", async || {
        let texts: Vec<String> = tg.sent_to(OP)[before..].iter().map(|m| m.text.clone()).collect();
        let all = texts.join("\n");
        (all.contains("token 7") && all.contains("token 8") && all.contains("stopped")).then_some(texts)
    })
    .await;
    assert!(held.iter().any(|t| t.contains("(held from before the restart)")), "{held:?}");
}

/// A second process polling the same bot (Telegram answers our polls 409 Conflict): one alert
/// naming the cause, /health degraded, and both cleared once we alone poll again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_commands_when_another_process_polls_the_bot_then_alerted_and_shown_in_health() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "whale", true)], 0.1));
    d.with_telegram(&tg, &OP.to_string());
    d.set("telegram", "poll_timeout_s = 1");
    d.start();
    d.wait_live().await;
    message_containing(&tg, OP, "started in PAPER mode").await;
    tg.conflict(true);
    let alert = message_containing(&tg, OP, "another process polls this Telegram bot").await;
    assert!(alert.text.contains("its own bot token"), "{}", alert.text);
    let base = d.http_base().await;
    let (_, health) = crate::support::http::http_get(&base, "/health").await;
    assert!(health.contains("another process polls this bot"), "{health}");
    let polls = tg.requests("getupdates");
    wait_for(10, "polling goes on", async || (tg.requests("getupdates") >= polls + 3).then_some(())).await;
    assert_eq!(tg.sent_to(OP).iter().filter(|m| m.text.contains("another process polls")).count(), 1, "said once");
    // The two pollers take turns: one poll of ours answered in between is no end of it.
    tg.conflict(false);
    let polls = tg.requests("getupdates");
    wait_for(10, "one poll answered", async || (tg.requests("getupdates") > polls + 1).then_some(())).await;
    tg.conflict(true);
    let polls = tg.requests("getupdates");
    wait_for(10, "more conflicts", async || (tg.requests("getupdates") >= polls + 3).then_some(())).await;
    assert_eq!(tg.sent_to(OP).iter().filter(|m| m.text.contains("another process polls")).count(), 1, "said once");
    let (_, health) = crate::support::http::http_get(&base, "/health").await;
    assert!(health.contains("another process polls this bot"), "{health}");
    tg.conflict(false);
    // A command answered is the marker that we poll alone again.
    let before = tg.sent_to(OP).len();
    tg.inject_message(OP, "/status");
    wait_for(10, "the reply", async || {
        tg.sent_to(OP)[before..].iter().any(|m| m.text.contains("mode PAPER")).then_some(())
    })
    .await;
    // Cleared once no 409 came for a while (twice the poll's timeout and a little).
    wait_for(20, "the conflict cleared", async || {
        let (_, health) = crate::support::http::http_get(&base, "/health").await;
        (!health.contains("another process polls")).then_some(())
    })
    .await;
}

/// Two authorized chats, one of which blocked the bot (Telegram answers 403): the other chat gets
/// every reply and notice within seconds, is told once that the first is refused, and the blocked
/// chat's messages are held and delivered when it unblocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_delivery_when_one_chat_blocked_then_the_other_is_served() {
    const OTHER: i64 = 2002;
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    tg.block(OTHER, true);
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "whale", true)], 0.1));
    d.with_telegram(&tg, &format!("{OTHER},{OP}"));
    d.set("telegram", "parked_retry_s = 2");
    d.start();
    d.wait_live().await;
    message_containing(&tg, OP, "started in PAPER mode").await;
    let notice = message_containing(&tg, OP, &format!("refuses messages to chat {OTHER}")).await;
    assert!(notice.text.contains("blocked"), "{}", notice.text);
    for (i, cmd) in ["/status", "/halt first", "/status"].iter().enumerate() {
        let before = tg.sent_to(OP).len();
        tg.inject_message(OP, cmd);
        let r = wait_for(5, &format!("the reply to {cmd}"), async || tg.sent_to(OP).get(before).cloned()).await;
        assert!(!r.text.is_empty(), "{i}");
    }
    anvil.emit(&Fill::v2(1, A, C, true, 5, 100 * ONE, 50 * ONE)).await;
    message_containing(&tg, OP, "not copied").await;
    assert_eq!(tg.sent_to(OP).iter().filter(|m| m.text.contains("refuses messages")).count(), 1, "said once");
    assert!(d.log().matches("will not deliver to this chat").count() == 1, "one log line");
    // /health says so: an operator watching it learns that a chat hears nothing.
    let base = d.http_base().await;
    let (_, health) = crate::support::http::http_get(&base, "/health").await;
    assert!(health.contains("1 authorized chat(s) refuse our messages"), "{health}");
    let (_, metrics) = crate::support::http::http_get(&base, "/metrics").await;
    assert!(metrics.contains("polycopy_telegram_parked_chats 1"), "{metrics}");

    tg.block(OTHER, false);
    message_containing(&tg, OTHER, "started in PAPER mode").await;
    message_containing(&tg, OTHER, "not copied").await;
    let (_, health) = crate::support::http::http_get(&base, "/health").await;
    assert!(!health.contains("refuse our messages"), "reachable again: {health}");
    assert!(d.stop().success());
    message_containing(&tg, OP, "polycopy stopped").await;
    message_containing(&tg, OTHER, "polycopy stopped").await;
}

/// `polycopy report daily` prints the report; the scheduled report arrives as text plus a valid PNG;
/// /report sends it on demand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reports_when_due_or_asked_then_text_and_png() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "whale", true)], 0.1));
    d.with_telegram(&tg, &OP.to_string());
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 6;
    let hms = format!("{:02}:{:02}:{:02}", (at / 3600) % 24, (at / 60) % 60, at % 60);
    d.replace_setting("daily_report_at = \"off\"", &format!("daily_report_at = \"{hms}\""));
    d.start();
    d.wait_live().await;
    anvil.emit(&Fill::v2(1, A, C, true, 5, 100 * ONE, 50 * ONE)).await;
    anvil.emit(&Fill::v2(2, A, C, false, 5, 50 * ONE, 30 * ONE)).await;
    wait_for(20, "2 copies", async || (with_status(&d.trades(), "executed").len() == 2).then_some(())).await;

    let (code, out, err) = d.run_cli(&["report", "daily"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Daily report") && out.contains("P&L realized 0.5 USDC") && out.contains("whale: 2 copied"),
        "{out}"
    );
    let (code, out, _) = d.run_cli(&["report", "weekly", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["period"], "weekly");
    assert_eq!(v["copied"], 2);

    let scheduled =
        wait_for(30, "the scheduled report", async || tg.sent_to(OP).into_iter().find(|m| m.photo.is_some())).await;
    assert!(scheduled.text.starts_with("Daily report"), "{}", scheduled.text);
    let img = image::load_from_memory(scheduled.photo.as_ref().unwrap()).expect("a valid PNG");
    assert_eq!((img.width(), img.height()), (1000, 700));
    // Not blank: dark title text at the top, and more than a handful of colours.
    let rgb = img.to_rgb8();
    let dark = (0..40)
        .flat_map(|y| (0..rgb.width()).map(move |x| (x, y)))
        .filter(|(x, y)| rgb.get_pixel(*x, *y).0.iter().all(|c| *c < 90))
        .count();
    assert!(dark > 300, "the chart has a title");

    tg.inject_message(OP, "/report");
    wait_for(20, "the report on demand", async || {
        (tg.sent_to(OP).iter().filter(|m| m.photo.is_some()).count() == 2).then_some(())
    })
    .await;
}

/// A wrong token is reported clearly at start and trading goes on, and `/health` says the bot is
/// configured but off (no alerts, no commands) rather than "not configured"; without a token
/// Telegram is off and says so once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_token_when_wrong_or_missing_then_trading_goes_on() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "whale", true)], 0.1));
    d.env.push(("TELEGRAM_BOT_TOKEN".into(), "987654:WRONG-SECRET-TOKEN".into()));
    d.env.push(("TELEGRAM_CHAT_ID".into(), OP.to_string()));
    d.env.push(("TELEGRAM_API_URL".into(), tg.url.clone()));
    d.start();
    d.wait_live().await;
    anvil.emit(&Fill::v2(1, A, C, true, 5, 100 * ONE, 50 * ONE)).await;
    wait_for(20, "a copy", async || (with_status(&d.trades(), "executed").len() == 1).then_some(())).await;
    let base = d.http_base().await;
    let (code, health) = http_get(&base, "/health").await;
    assert!(code == 200 && health.contains("Telegram could not start"), "degraded, not down: {health}");
    assert!(!health.contains("WRONG-SECRET-TOKEN"), "{health}");
    let (_, metrics) = http_get(&base, "/metrics").await;
    assert!(metrics.contains("polycopy_telegram_failing 1"), "{metrics}");
    assert!(d.stop().success());
    let log = d.log();
    assert!(log.contains("Telegram refused the bot token (getMe failed): Telegram is off, trading goes on"), "{log}");
    assert!(!log.contains("WRONG-SECRET-TOKEN"));
    assert!(tg.sent().is_empty());

    d.env.retain(|(k, _)| !k.starts_with("TELEGRAM"));
    std::fs::remove_file(dir.path().join("daemon.log")).unwrap();
    d.start();
    d.wait_live().await;
    assert!(d.stop().success());
    assert_eq!(d.log().matches("Telegram off (TELEGRAM_BOT_TOKEN not set)").count(), 1);
}

/// A start while halted says so first thing; Telegram down at start still gets its command menu
/// once it answers; a refused wallets.json edit is announced once, however often it is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_start_when_halted_and_telegram_down_then_said_and_menu_registered() {
    let (_anvil, tg, _dir, mut d) = whale_with_telegram().await;
    assert!(d.stop().success());
    let (code, _, _) = d.run_cli(&["halt", "--reason", "weekend"]);
    assert_eq!(code, 3, "no daemon: stored in the journal");

    tg.down_for(Duration::from_secs(4));
    let menus_before = tg.requests("setMyCommands");
    d.start();
    d.wait_live().await;
    let started = wait_for(30, "a second start notice", async || {
        tg.sent_to(OP).into_iter().filter(|m| m.text.contains("started in PAPER mode")).nth(1)
    })
    .await;
    assert!(started.text.contains("trading is HALTED (manual) by cli: weekend"), "{}", started.text);
    wait_for(30, "the command menu registered after the outage", async || {
        (tg.requests("setMyCommands") > menus_before && tg.commands().len() > 10).then_some(())
    })
    .await;

    // The same broken file read three times (two writes and a SIGHUP): one announcement.
    let broken = format!(r#"{{"wallets": [{{"address": "{A}", "label": "whale", "sizing": 3}}]}}"#);
    d.write_wallets_text(&broken);
    wait_for(10, "the rejection", async || (!d.events("wallets_rejected").is_empty()).then_some(())).await;
    d.write_wallets_text(&broken);
    let _ = std::process::Command::new("kill").args(["-HUP", &d.pid().unwrap().to_string()]).status();
    d.write_wallets(&wallets(&[(A, "whale", true), (B, "shark", true)], 0.1));
    message_containing(&tg, OP, "added [shark]").await;
    assert_eq!(d.events("wallets_rejected").len(), 1, "announced once");
    assert_eq!(tg.sent_to(OP).iter().filter(|m| m.text.contains("wallets.json rejected")).count(), 1);
    assert!(d.stop().success());
}

/// An alert raised while the daemon starts, before Telegram has answered its first request (the
/// emergency stop file found at once, Telegram slow), still reaches the chat once it answers:
/// events from before the sink was settled are handed to it, not only logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_start_when_an_alert_is_raised_before_telegram_answers_then_it_still_reaches_the_chat() {
    let (_anvil, tg, dir, mut d) = whale_with_telegram().await;
    assert!(d.stop().success());
    std::fs::write(dir.path().join("EMERGENCY_STOP"), "").unwrap();
    tg.slow(Duration::from_secs(2));
    d.start();
    d.wait_live().await;
    wait_for(20, "the trip logged before Telegram answered", async || d.events("breaker_tripped").into_iter().next())
        .await;
    tg.slow(Duration::ZERO);
    let alert = message_containing(&tg, OP, "BREAKER TRIPPED (emergency_stop)").await;
    assert!(alert.text.contains("emergency stop file"), "{}", alert.text);
    assert!(d.stop().success());
}

/// `/close all` offers a button listing the positions; pressed while halted, it sells them and says
/// so; pressed again it does nothing. `/pausemarket` refuses the next buy there, `/resumemarket`
/// lifts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_close_when_confirmed_then_sold_once_and_pausemarket_obeyed() {
    let (anvil, tg, _dir, d) = whale_with_telegram().await;
    anvil.emit(&Fill::v2(1, A, C, true, 7, 100 * ONE, 50 * ONE)).await;
    wait_for(30, "the copy", async || (with_status(&d.trades(), "executed").len() == 1).then_some(())).await;
    let ask = async |cmd: &str, want: &str| {
        let before = tg.sent_to(OP).len();
        tg.inject_message(OP, cmd);
        wait_for(20, &format!("a reply to {cmd} with {want:?}"), async || {
            tg.sent_to(OP)[before..].iter().find(|m| m.text.contains(want)).cloned()
        })
        .await
    };
    // An offer pressed after a position it did not list was opened sells nothing.
    let stale = ask("/close all", "close ALL PAPER open positions at market").await;
    anvil.emit(&Fill::v2(3, A, C, true, 9, 100 * ONE, 50 * ONE)).await;
    wait_for(30, "a second copy", async || (with_status(&d.trades(), "executed").len() == 2).then_some(())).await;
    let before = tg.sent_to(OP).len();
    tg.inject_callback(OP, &stale.buttons[0]);
    wait_for(20, "the stale offer refused", async || {
        tg.sent_to(OP)[before..]
            .iter()
            .any(|m| m.text.contains("positions were opened or added to since"))
            .then_some(())
    })
    .await;
    assert_eq!(d.status()["positions"].as_array().map(Vec::len), Some(2), "nothing sold");
    ask("/halt", "HALTED").await;
    ask("/close", "usage: /close").await;
    let offer = ask("/close all", "close ALL PAPER open positions at market").await;
    assert!(offer.text.contains("10 sh of 7") && offer.text.contains("10 sh of 9"), "{}", offer.text);
    assert_eq!(offer.buttons.len(), 1);
    assert!(with_status(&d.trades(), "executed").len() == 2, "nothing is sold before the button");
    let before = tg.sent_to(OP).len();
    tg.inject_callback(OP, &offer.buttons[0]);
    wait_for(20, "the close", async || {
        tg.sent_to(OP)[before..].iter().any(|m| m.text.contains("closed by the operator: SELL 10 shares")).then_some(())
    })
    .await;
    assert!(d.status()["positions"].as_array().is_some_and(Vec::is_empty));
    let before = tg.sent_to(OP).len();
    tg.inject_callback(OP, &offer.buttons[0]);
    wait_for(20, "the second press refused", async || {
        tg.sent_to(OP)[before..].iter().any(|m| m.text.contains("already used")).then_some(())
    })
    .await;
    assert_eq!(with_status(&d.trades(), "executed").len(), 4, "one close of each, once");

    ask("/resume", "resume PAPER trading?").await;
    ask("/pausemarket 8", "paused token 8").await;
    let resume = tg.sent_to(OP).into_iter().rev().find(|m| !m.buttons.is_empty()).unwrap();
    tg.inject_callback(OP, &resume.buttons[0]);
    message_containing(&tg, OP, "resumed: trading active again").await;
    anvil.emit(&Fill::v2(2, A, C, true, 8, 100 * ONE, 50 * ONE)).await;
    ask("/status", "markets PAUSED (no buys, exits copied): token 8").await;
    let row = wait_for(20, "the paused buy", async || d.trades().into_iter().find(|r| r["status"] == "rejected")).await;
    assert_eq!(row["reason"], "market_paused");
    ask("/resumemarket 8", "token 8: buys are copied again").await;
    ask("/status", "mode PAPER").await;
}

/// `/pause <address>` pauses the wallet at that address, even when another target's label is
/// spelled like it (a label may be any text).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_pause_when_a_label_looks_like_another_targets_address_then_the_address_wins() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let targets = json!({"defaults": {"sizing": {"mode": "multiplier", "multiplier": 0.1}},
           "wallets": [{"address": A.to_string(), "label": B.to_string().to_lowercase()},
                       {"address": B.to_string(), "label": "shark"}]});
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &targets);
    d.with_telegram(&tg, &OP.to_string());
    d.set("telegram", r#"notify = { executed = "off", rejected = "off", started = "off", stopped = "off" }"#);
    d.start();
    d.wait_live().await;
    tg.inject_message(OP, &format!("/pause {}", B.to_string().to_lowercase()));
    message_containing(&tg, OP, "paused shark").await;
    anvil.emit(&Fill::v2(1, A, C, true, 7, 100 * ONE, 50 * ONE)).await;
    anvil.emit(&Fill::v2(2, B, C, true, 8, 100 * ONE, 50 * ONE)).await;
    let rows = wait_for(20, "both fills", async || {
        let r = d.trades();
        (r.len() == 2 && r.iter().all(|x| x["status"] != "pending")).then_some(r)
    })
    .await;
    assert_eq!(rows[0]["status"], "executed", "{rows:?}");
    assert_eq!(rows[1]["reason"], "paused", "{rows:?}");
    assert!(d.stop().success());
}

/// In a group, `telegram.allowed_user_ids` names who may command the bot: another member's
/// `/halt` and button press get no answer and change nothing; a listed operator's are obeyed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_commands_when_a_group_member_is_not_an_allowed_user_then_ignored() {
    const GROUP: i64 = -1_001_234;
    const OPERATOR: u64 = 4242;
    const MEMBER: u64 = 777;
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &two_targets());
    d.with_telegram(&tg, &GROUP.to_string());
    d.set("telegram", &format!("allowed_user_ids = [{OPERATOR}]"));
    d.start();
    d.wait_live().await;
    tg.inject_message_from(GROUP, MEMBER, "/halt");
    tg.inject_callback_from(GROUP, MEMBER, "resume:0:0");
    tg.inject_message_from(GROUP, MEMBER, "/status");
    // Updates are handled in order: the operator's answer is the marker.
    tg.inject_message_from(GROUP, OPERATOR, "/status");
    wait_for(20, "the operator's answer", async || {
        tg.sent_to(GROUP).iter().any(|m| m.text.contains("mode PAPER")).then_some(())
    })
    .await;
    assert_eq!(tg.sent_to(GROUP).iter().filter(|m| m.text.contains("mode PAPER")).count(), 1, "only the operator's");
    assert_eq!(d.status()["breaker"]["tripped"], false, "a member's /halt is not obeyed");
    tg.inject_message_from(GROUP, OPERATOR, "/halt from the operator");
    wait_for(10, "the operator's halt", async || (d.status()["breaker"]["tripped"] == true).then_some(())).await;
    // The operator asks to resume; a member presses the real button: nothing happens.
    tg.inject_message_from(GROUP, OPERATOR, "/resume");
    let offer =
        wait_for(20, "the resume button", async || tg.sent_to(GROUP).into_iter().rev().find(|m| !m.buttons.is_empty()))
            .await;
    tg.inject_callback_from(GROUP, MEMBER, &offer.buttons[0]);
    tg.inject_message_from(GROUP, MEMBER, "just chatting");
    let answered = tg.sent_to(GROUP).iter().filter(|m| m.text.contains("mode PAPER")).count();
    tg.inject_message_from(GROUP, OPERATOR, "/status");
    wait_for(20, "the marker", async || {
        (tg.sent_to(GROUP).iter().filter(|m| m.text.contains("mode PAPER")).count() > answered).then_some(())
    })
    .await;
    assert_eq!(d.status()["breaker"]["tripped"], true, "a member's press does not resume");
    assert!(tg.callbacks_answered().is_empty(), "the member's press gets no answer at all");
    // The operator's own press does.
    tg.inject_callback_from(GROUP, OPERATOR, &offer.buttons[0]);
    wait_for(10, "resumed", async || (d.status()["breaker"]["tripped"] == false).then_some(())).await;
}

/// An operator fixes a mistyped command by editing the message, as Telegram invites: an edited
/// `/halt` is carried out (stopping is always safe), any other edited command is answered "send it
/// again" and not done; a stranger's edited `/halt` gets no answer and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_commands_when_edited_then_a_halt_is_obeyed_and_others_asked_again() {
    let (_anvil, tg, _dir, d) = commanded().await;

    tg.inject_edited_message(STRANGER, "/halt from a stranger");
    wait_for(10, "the stranger's edit ignored", async || {
        d.log().contains("Telegram update from an unauthorized chat ignored").then_some(())
    })
    .await;
    let before = tg.sent_to(OP).len();
    tg.inject_edited_message(OP, "/status");
    let asked = wait_for(10, "the edited /status answered", async || {
        tg.sent_to(OP)[before..].iter().find(|m| m.text.contains("was edited")).map(|m| m.text.clone())
    })
    .await;
    assert!(asked.contains("Send it again"), "{asked}");
    assert!(!tg.sent_to(OP)[before..].iter().any(|m| m.text.contains("mode PAPER")), "not carried out");
    assert_eq!(d.status()["breaker"]["tripped"], false, "the stranger's edit changed nothing");
    assert!(tg.sent_to(STRANGER).is_empty(), "a stranger gets no answer");

    tg.inject_edited_message(OP, "/halt typo fixed");
    wait_for(10, "the edited /halt obeyed", async || (d.status()["breaker"]["tripped"] == true).then_some(())).await;
    assert_eq!(d.status()["breaker"]["reason"], "typo fixed");
}
