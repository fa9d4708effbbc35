//! What the real Bot API does that an operator meets in a group or on a reused token: a group that
//! takes text but not pictures, a chat that blocked the bot and writes again, a webhook left on the
//! token, and Telegram down for `getMe` alone.
//! Each used to leave commands (a /halt included) or reports unanswered.

use crate::support::telegram::FakeTelegram;
use crate::support::*;
use alloy::primitives::{Address, address};

const A: Address = address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
const C: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");
const TOKEN: &str = "123456789:TEST-SECRET-TOKEN-abcdef";
const OP: i64 = 1001;

/// A paper daemon reporting to `chat` (a parked chat tried again only every ten minutes).
fn daemon(anvil: &Anvil, dir: &std::path::Path, tg: &FakeTelegram, chat: i64) -> Daemon {
    let mut d = Daemon::new(dir, &anvil.http_url(), "", &wallets(&[(A, "whale", true)], 0.1));
    d.with_telegram(tg, &chat.to_string());
    d.set("telegram", "parked_retry_s = 600");
    d
}

/// A daemon running while the operator's chat has blocked the bot (its messages refused, parked).
async fn running_while_blocked(anvil: &Anvil, dir: &std::path::Path, tg: &FakeTelegram) -> Daemon {
    tg.block(OP, true);
    let mut d = daemon(anvil, dir, tg, OP);
    d.start();
    d.wait_live().await;
    d
}

async fn started(tg: &FakeTelegram, d: &mut Daemon) {
    d.start();
    d.wait_live().await;
    wait_for(20, "the start announced", async || {
        tg.sent_to(OP).iter().any(|m| m.text.contains("started in PAPER mode")).then_some(())
    })
    .await;
}

/// Sends `cmd` and waits for the reply that contains `needle`.
async fn asked(tg: &FakeTelegram, cmd: &str, needle: &str) -> String {
    let before = tg.sent_to(OP).len();
    tg.inject_message(OP, cmd);
    wait_for(20, &format!("the reply to {cmd}"), async || {
        tg.sent_to(OP).into_iter().skip(before).find(|m| m.text.contains(needle)).map(|m| m.text)
    })
    .await
}

/// A chat where the bot may not send photos: the report's figures arrive without the chart, the
/// chat is not parked, and the replies after it are not held behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_report_when_the_chat_refuses_photos_then_its_text_arrives_and_nothing_waits_behind_it() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    tg.no_photos(OP);
    let dir = tempfile::tempdir().unwrap();
    let mut d = daemon(&anvil, dir.path(), &tg, OP);
    started(&tg, &mut d).await;
    let report = asked(&tg, "/report", "Daily report").await;
    assert!(report.starts_with("Daily report"), "{report}");
    assert!(tg.refused(OP) >= 1, "the picture was refused");
    asked(&tg, "/status", "mode PAPER").await;
    let (_, health) = crate::support::http::http_get(&d.http_base().await, "/health").await;
    assert!(!health.contains("refuse our messages"), "not parked: {health}");
    assert!(tg.sent_to(OP).iter().all(|m| m.photo.is_none()));
}

/// A chat that blocked the bot is parked (tried again every ten minutes); when its user unblocks
/// the bot and writes, what was held and the reply go at once, not at the next try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_delivery_when_a_parked_chat_writes_again_then_it_is_served_at_once() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let _d = running_while_blocked(&anvil, dir.path(), &tg).await;
    wait_for(20, "the chat refusing", async || (tg.refused(OP) >= 1).then_some(())).await;
    tg.block(OP, false);
    tg.inject_message(OP, "/halt back");
    wait_for(20, "the held start and the reply", async || {
        let sent = tg.sent_to(OP);
        (sent.iter().any(|m| m.text.contains("started in PAPER mode"))
            && sent.iter().any(|m| m.text.contains("HALTED")))
        .then_some(())
    })
    .await;
}

/// A chat where the bot may not write (muted: 400 "CHAT_WRITE_FORBIDDEN", a refusal naming no
/// rights) is parked with its messages held, not each message dropped in turn as a bad one; once
/// the bot may write again and the chat writes, the held start and the reply arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_delivery_when_the_bot_is_muted_in_the_chat_then_it_is_parked_and_nothing_is_dropped() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    tg.mute(OP, true);
    let dir = tempfile::tempdir().unwrap();
    let mut d = daemon(&anvil, dir.path(), &tg, OP);
    d.start();
    d.wait_live().await;
    let base = d.http_base().await;
    wait_for(20, "the chat parked", async || {
        let (_, health) = crate::support::http::http_get(&base, "/health").await;
        health.contains("refuse our messages").then_some(())
    })
    .await;
    tg.mute(OP, false);
    tg.inject_message(OP, "/status");
    wait_for(20, "the held start and the reply", async || {
        let sent = tg.sent_to(OP);
        (sent.iter().any(|m| m.text.contains("started in PAPER mode"))
            && sent.iter().any(|m| m.text.contains("mode PAPER")))
        .then_some(())
    })
    .await;
}

/// A command's reply held over a restart (its chat refused it) comes back as a reply, whole: it
/// came back as a routine message, merged with the copies' reports into a digest that quoted 300
/// characters of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_delivery_when_a_reply_is_held_over_a_restart_then_it_arrives_whole() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = running_while_blocked(&anvil, dir.path(), &tg).await;
    for i in 1..=3 {
        anvil.emit(&Fill::v2(i, A, C, true, 5, 100 * ONE, 50 * ONE)).await;
    }
    wait_for(20, "3 copies", async || (with_status(&d.trades(), "executed").len() == 3).then_some(())).await;
    tg.inject_message(OP, "/help");
    wait_for(20, "the command handled", async || d.log().contains("command=/help").then_some(())).await;
    assert!(d.stop().success());
    tg.block(OP, false);
    d.start();
    d.wait_live().await;
    let help = wait_for(20, "the held reply", async || {
        tg.sent_to(OP).into_iter().find(|m| m.text.contains("polycopy commands:")).map(|m| m.text)
    })
    .await;
    assert!(help.starts_with("(held from before the restart) polycopy commands:"), "{help}");
    assert!(help.contains("/help — this list"), "whole: {help}");
}

/// The authorized group is upgraded to a supergroup (a new id): commands from the new id, a /halt
/// among them, were ignored as a stranger's and every message to the old id was refused. The new
/// id is the group's: obeyed, answered there, and the operator told to name it in the settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_commands_when_the_group_becomes_a_supergroup_then_its_new_id_is_obeyed_and_answered() {
    const GROUP: i64 = -4001;
    const SUPER: i64 = -1_001_234_567_890;
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = daemon(&anvil, dir.path(), &tg, GROUP);
    d.start();
    d.wait_live().await;
    wait_for(20, "the start announced", async || {
        tg.sent_to(GROUP).iter().any(|m| m.text.contains("started in PAPER mode")).then_some(())
    })
    .await;
    tg.migrate(GROUP, SUPER);
    let told = wait_for(20, "the operator told", async || {
        tg.sent_to(SUPER).into_iter().find(|m| m.text.contains("became a supergroup")).map(|m| m.text)
    })
    .await;
    assert!(told.contains(&format!("set TELEGRAM_CHAT_ID to {SUPER}")), "{told}");
    tg.inject_message(SUPER, "/halt moved");
    wait_for(20, "the halt answered in the new group", async || {
        tg.sent_to(SUPER).iter().any(|m| m.text.contains("HALTED")).then_some(())
    })
    .await;
    assert_eq!(d.status()["breaker"]["tripped"], true, "{}", d.status());
    // A copy's report goes there too.
    anvil.emit(&Fill::v2(1, A, C, true, 5, 100 * ONE, 50 * ONE)).await;
    wait_for(20, "the report in the new group", async || {
        tg.sent_to(SUPER).iter().any(|m| m.text.contains("not copied")).then_some(())
    })
    .await;
}

/// A webhook left on the token: every poll answered 409 while sends worked, so reports flowed and
/// no command arrived. It is removed and a /halt is obeyed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_commands_when_a_webhook_is_set_on_the_token_then_it_is_removed_and_a_halt_obeyed() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    tg.set_webhook();
    let dir = tempfile::tempdir().unwrap();
    let mut d = daemon(&anvil, dir.path(), &tg, OP);
    started(&tg, &mut d).await;
    asked(&tg, "/halt webhook test", "HALTED").await;
    assert_eq!(d.status()["breaker"]["tripped"], true, "{}", d.status());
    assert!(tg.requests("deletewebhook") >= 1);
}

/// Telegram answers everything but `getMe` at the start and after: the bot's name stays unknown,
/// and "/halt@bot" (what a Telegram client sends from its menu in a group) was taken for another
/// bot's command and dropped. It is obeyed. Any other command addressed by name may be another
/// bot's in the same group (a paper and a live instance side by side): dropped, unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_commands_when_the_bots_name_is_unknown_then_a_halt_addressed_by_name_is_obeyed_and_others_dropped() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    tg.get_me_down(true);
    let dir = tempfile::tempdir().unwrap();
    let mut d = daemon(&anvil, dir.path(), &tg, OP);
    started(&tg, &mut d).await;
    asked(&tg, "/halt@polycopy_test_bot", "HALTED").await;
    assert_eq!(d.status()["breaker"]["tripped"], true, "{}", d.status());
    wait_for(20, "the breaker's alert", async || {
        tg.sent_to(OP).iter().any(|m| m.text.contains("BREAKER TRIPPED")).then_some(())
    })
    .await;
    let before = tg.sent_to(OP).len();
    tg.inject_message(OP, "/pausemarket@paper_bot 1001");
    wait_for(20, "the addressed command dropped", async || {
        d.log().contains("a command addressed by name was dropped").then_some(())
    })
    .await;
    asked(&tg, "/status", "mode PAPER").await;
    assert_eq!(tg.sent_to(OP).len(), before + 1, "one reply, to /status: {:?}", tg.sent_to(OP));
    assert_eq!(d.status()["paused_markets"], serde_json::json!([]), "{}", d.status());
    // Another bot's command, once our name is known again, is still none of our business.
    tg.get_me_down(false);
    asked(&tg, "/status@polycopy_test_bot", "mode PAPER").await;
    let before = tg.sent_to(OP).len();
    tg.inject_message(OP, "/status@another_bot");
    asked(&tg, "/status", "mode PAPER").await;
    assert_eq!(tg.sent_to(OP).len(), before + 1, "one reply, to our own /status");
}

/// The node goes away: `/health` turns unhealthy, and `/status` on Telegram says so first, rather
/// than a chain "lag 0 blocks" and "trading active" that read as fine while nothing is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_status_when_the_chain_feed_stalls_then_it_says_so_first() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = daemon(&anvil, dir.path(), &tg, OP);
    started(&tg, &mut d).await;
    let fine = asked(&tg, "/status", "mode PAPER").await;
    assert!(!fine.contains('⚠'), "{fine}");
    let base = d.http_base().await;
    drop(anvil);
    wait_for(20, "/health unhealthy", async || {
        let (code, body) = crate::support::http::http_get(&base, "/health").await;
        (code != 200 && body.contains("no successful chain read")).then_some(())
    })
    .await;
    let stalled = asked(&tg, "/status", "mode PAPER").await;
    assert!(stalled.starts_with("mode PAPER\n⚠ chain UNHEALTHY: no successful chain read for"), "{stalled}");
}

/// Two chats, one of which blocked the bot (parked). Messages held at a stop go out to the other
/// after the start, and its rows are forgotten once delivered, while the parked chat's wait: a
/// crash then does not send the other chat its held messages a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_delivery_when_one_chat_stays_parked_then_the_others_held_messages_are_not_repeated_after_a_crash() {
    const PARKED: i64 = 2002;
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "whale", true)], 0.1));
    d.with_telegram(&tg, &format!("{OP},{PARKED}"));
    d.set("telegram", "parked_retry_s = 600");
    tg.block(PARKED, true);
    started(&tg, &mut d).await;
    tg.down_for(std::time::Duration::from_secs(3600));
    assert_eq!(d.run_cli(&["halt", "--reason", "held-test"]).0, 0);
    wait_for(20, "the halt journaled", async || (d.status()["breaker"]["tripped"] == true).then_some(())).await;
    assert!(d.stop().success());
    tg.down_for(std::time::Duration::ZERO);
    d.start();
    d.wait_live().await;
    let tripped = "BREAKER TRIPPED (manual) by cli: held-test";
    wait_for(20, "the held alert delivered", async || {
        tg.sent_to(OP).iter().any(|m| m.text.contains(tripped)).then_some(())
    })
    .await;
    let held_for = |chat: i64| {
        let c = rusqlite::Connection::open(d.dir.join("journal.db")).unwrap();
        c.query_row("SELECT COUNT(*) FROM telegram_held WHERE chat = ?1", [chat], |r| r.get::<_, i64>(0)).unwrap()
    };
    wait_for(20, "its rows forgotten", async || (held_for(OP) == 0).then_some(())).await;
    assert!(held_for(PARKED) > 0, "the parked chat's rows wait for it");
    d.kill9();
    d.start();
    d.wait_live().await;
    // The next start's own announcement is the marker: nothing held for this chat came before it.
    wait_for(20, "the start announced again", async || {
        (tg.sent_to(OP).iter().filter(|m| m.text.contains("started in PAPER mode")).count() == 3).then_some(())
    })
    .await;
    assert_eq!(tg.sent_to(OP).iter().filter(|m| m.text.contains(tripped)).count(), 1, "{:?}", tg.sent_to(OP));
}

/// The daily report's time passed while the daemon was stopped (an update at 17:59:58 that took
/// ten seconds): it is sent at the start, once, rather than skipped until the next day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_report_when_its_time_passed_while_stopped_then_sent_at_the_start() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = daemon(&anvil, dir.path(), &tg, OP);
    started(&tg, &mut d).await;
    assert!(d.stop().success());
    // The last report went out yesterday; today's was due two minutes ago.
    let now = polycopy::store::now_ms();
    let c = rusqlite::Connection::open(d.dir.join("journal.db")).unwrap();
    c.execute(
        "INSERT INTO events (at_ms, kind, message) VALUES (?1, 'report_sent_daily', 'x')",
        [now - 86_400_000 - 600_000],
    )
    .unwrap();
    drop(c);
    let due = chrono::DateTime::from_timestamp_millis(now - 120_000).unwrap().format("%H:%M").to_string();
    d.replace_setting("daily_report_at = \"off\"", &format!("daily_report_at = \"{due}\""));
    d.start();
    d.wait_live().await;
    let report = wait_for(20, "the report caught up", async || {
        tg.sent_to(OP).into_iter().find(|m| m.text.starts_with("Daily report")).map(|m| m.text)
    })
    .await;
    assert!(report.contains("Daily report"), "{report}");
    wait_for(20, "the report logged sent", async || (d.events("report_sent_daily").len() == 2).then_some(())).await;
    // Logged once it was queued, so the start sent it once.
    let daily = tg.sent_to(OP).iter().filter(|m| m.text.starts_with("Daily report")).count();
    assert_eq!(daily, 1, "{:?}", tg.sent_to(OP));
}
