//! A daemon that has stopped for good cannot report it: systemd runs `polycopy alert --direct`
//! (the units' OnFailure=, tests/scenarios/install.rs), which tells every authorized chat straight
//! through the Bot API. It needs only the Telegram variables: the daemon may have stopped because
//! another one, or a file, is broken. Its errors never show the token.

use crate::support::telegram::FakeTelegram;

const TOKEN: &str = "123456789:STOPPED-SECRET-TOKEN-abcdef";

fn direct(cwd: &std::path::Path, env: &[(&str, &str)], message: &str) -> (Option<i32>, String) {
    let out = std::process::Command::new(crate::support::bin())
        .args(["alert", "--direct", message])
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // No installation here: only this test's variables count.
        .env("POLYCOPY_SYSTEM_CONFIG", "")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_alert_direct_when_the_daemon_is_down_then_every_chat_is_told_without_it() {
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    // What may have stopped the daemon: a .env that does not parse and a key that is not one.
    std::fs::write(dir.path().join(".env"), "BROKEN LINE\n").unwrap();
    let env = [
        ("TELEGRAM_BOT_TOKEN", TOKEN),
        ("TELEGRAM_CHAT_ID", "1001,1002"),
        ("TELEGRAM_API_URL", tg.url.as_str()),
        ("PRIVATE_KEY", "not-a-key"),
    ];
    let (code, out) = direct(dir.path(), &env, "polycopy has stopped");
    assert_eq!(code, Some(0), "{out}");
    for chat in [1001, 1002] {
        let sent = tg.sent_to(chat);
        assert_eq!(sent.len(), 1, "{chat}: {sent:?}");
        assert_eq!(sent[0].text, "polycopy has stopped");
    }
    // Cleaned as the daemon's /alert cleans it: a pasted secret and control characters go.
    let (code, out) = direct(dir.path(), &env, &format!("leaked {TOKEN}\u{7} here"));
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(tg.sent_to(1001).last().unwrap().text, "leaked <redacted> here");
    // A chat that refuses is named, the token never shown; the others still hear it.
    tg.block(1002, true);
    let (code, out) = direct(dir.path(), &env, "again");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("not delivered: chat 1002") && out.contains("1 of 2 chat(s)"), "{out}");
    assert!(!out.contains("STOPPED-SECRET"), "{out}");
    // Telegram asks to slow down (nothing runs the alert again): it waits and is delivered.
    tg.block(1002, false);
    tg.fail_429(1, 1);
    let (code, out) = direct(dir.path(), &env, "after a 429");
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("not delivered"), "{out}");
    for chat in [1001, 1002] {
        assert!(tg.sent_to(chat).iter().any(|m| m.text == "after a 429"), "{chat}: {out}");
    }
    // The variables only in a .env whose first line is broken (loaded up to it, that is nothing):
    // read from the file itself.
    std::fs::write(
        dir.path().join(".env"),
        format!("BROKEN LINE\nTELEGRAM_BOT_TOKEN={TOKEN}\nTELEGRAM_CHAT_ID=1001\nTELEGRAM_API_URL={}\n", tg.url),
    )
    .unwrap();
    let (code, out) = direct(dir.path(), &[], "from the file");
    assert_eq!(code, Some(0), "{out}");
    assert!(tg.sent_to(1001).iter().any(|m| m.text == "from the file"), "{out}");
    // Without Telegram configured: a clear error, exit 1.
    std::fs::remove_file(dir.path().join(".env")).unwrap();
    let (code, out) = direct(dir.path(), &[("TELEGRAM_CHAT_ID", "1001")], "x");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("TELEGRAM_BOT_TOKEN"), "{out}");
}

/// On an installed server only the installation's environment file counts: a checkout's `.env`
/// where the command happens to run (naming a test bot and chat) is not read, so the alert goes
/// to the installation's chats, as every other command's settings do. The Telegram lines are
/// appended below the template's empty ones: the last one counts, as systemd reads the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_alert_direct_when_installed_then_a_dotenv_where_it_runs_is_not_read() {
    use crate::support::installed::{Installed, clean};
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let inst = Installed::stage(&dir.path().join("root"), None);
    inst.env(&[("TELEGRAM_BOT_TOKEN", TOKEN), ("TELEGRAM_CHAT_ID", "1001"), ("TELEGRAM_API_URL", tg.url.as_str())]);
    let checkout = tempfile::tempdir().unwrap();
    std::fs::write(
        checkout.path().join(".env"),
        format!("TELEGRAM_BOT_TOKEN={TOKEN}\nTELEGRAM_CHAT_ID=2002\nTELEGRAM_API_URL={}\n", tg.url),
    )
    .unwrap();
    let alert = || {
        let mut c = std::process::Command::new(inst.root.join("usr/local/bin/polycopy"));
        c.args(["alert", "--direct", "the service stopped"]).current_dir(checkout.path());
        crate::support::output(clean(&mut c).output().unwrap())
    };
    let (code, out, err) = alert();
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(tg.sent_to(1001).len(), 1, "the installation's chat");
    assert!(tg.sent_to(2002).is_empty(), "not the checkout's");
    // Without Telegram in the installation's file, the checkout's is still not used.
    let text = std::fs::read_to_string(inst.env_file()).unwrap();
    let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("TELEGRAM_")).collect();
    std::fs::write(inst.env_file(), kept.join("\n")).unwrap();
    let (code, out, err) = alert();
    assert_eq!(code, 1, "{out}{err}");
    assert!(tg.sent_to(2002).is_empty(), "not the checkout's");
}
