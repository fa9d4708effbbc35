//! Telegram's limits as the real Bot API applies them (the fake refuses what it refuses): a long
//! reply arrives whole in several messages, each within 4096 UTF-16 units, whatever the operator
//! put in the targets' labels; and ours: a command is answered within
//! seconds even while the risk supervisor is busy.

use crate::support::telegram::FakeTelegram;
use crate::support::*;
use alloy::primitives::Address;
use serde_json::json;

const TOKEN: &str = "123456789:TEST-SECRET-TOKEN-abcdef";
const OP: i64 = 1001;

/// Sixty targets named with emoji (two UTF-16 units each) and HTML's special characters: counted
/// in characters, each part of the /targets reply fitted, counted as Telegram does it did not, and
/// the reply was refused and lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_targets_when_labels_are_emoji_then_the_reply_arrives_whole_within_telegrams_limits() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let labels: Vec<String> = (0..60).map(|i| format!("{}<w&{i:02}>", "🐋".repeat(55))).collect();
    let wallets = json!({"defaults": {"sizing": {"mode": "multiplier", "multiplier": 0.1}},
        "wallets": labels.iter().enumerate().map(|(i, l)| {
            let mut a = [0u8; 20];
            a[0] = 0xa0;
            a[19] = i as u8 + 1;
            json!({"address": Address::from(a).to_string(), "label": l})
        }).collect::<Vec<_>>()});
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets);
    d.with_telegram(&tg, &OP.to_string());
    d.set("telegram", r#"notify = { started = "off", stopped = "off" }"#);
    d.start();
    d.wait_live().await;

    let before = tg.sent_to(OP).len();
    tg.inject_message(OP, "/targets");
    let replies = wait_for(30, "every target in the /targets reply", async || {
        let after = tg.sent_to(OP)[before..].to_vec();
        let all: String = after.iter().map(|m| m.text.clone()).collect();
        labels.iter().all(|l| all.contains(l.as_str())).then_some(after)
    })
    .await;
    assert!(replies.len() >= 3, "one reply in several messages: {}", replies.len());
    for m in &replies {
        assert!(m.text.encode_utf16().count() <= 4096, "{} units", m.text.encode_utf16().count());
    }
    assert_eq!(tg.bad_requests(), Vec::<String>::new(), "nothing refused by Telegram");
}

/// A risk supervisor busy for a long while (a resume held in its turn, as a long backlog would
/// hold it): `/status` and `/resume` say it is unavailable within seconds. Before, they waited for
/// it without end and the operator got no answer at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_commands_when_the_supervisor_is_busy_then_answered_unavailable_not_silence() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let a = alloy::primitives::address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(a, "whale", true)], 0.1));
    d.with_telegram(&tg, &OP.to_string());
    let hold = dir.path().join("hold");
    d.start_with(&[("POLYCOPY_FAULT", "hold_resume"), ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap())]);
    d.wait_live().await;
    let (code, _, err) = d.run_cli(&["halt", "--reason", "a look"]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(&hold, "").unwrap();
    let resume =
        d.cmd(&["resume"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    wait_for(20, "the supervisor busy", async || d.log().contains("fault injection: holding").then_some(())).await;
    for (cmd, answer) in [("/status", "the status is unavailable"), ("/resume", "the risk supervisor is unavailable")] {
        let before = tg.sent_to(OP).len();
        tg.inject_message(OP, cmd);
        let reply = wait_for(20, &format!("the answer to {cmd}"), async || {
            tg.sent_to(OP)[before..].iter().find(|m| m.text.contains(answer)).cloned()
        })
        .await;
        assert!(reply.text.contains("try again"), "{cmd}: {}", reply.text);
    }
    std::fs::remove_file(&hold).unwrap();
    let _ = resume.wait_with_output();
}
