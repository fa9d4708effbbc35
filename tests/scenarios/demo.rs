//! The documented local demo (scripts/demo.sh), run as a newcomer would: a local node, three
//! planted target trades, paper polycopy copying them within a minute, and everything stopped and
//! removed on exit.

use crate::support::live::KEY;
use crate::support::*;

/// Run from a shell that holds an installation's live settings, a key and a Telegram token (an
/// operator trying it on the server): the demo stays paper, on its own journal, and reaches no one.
#[test]
fn test_demo_when_run_then_three_copies_shown_and_everything_cleaned_up() {
    let real = tempfile::tempdir().unwrap();
    let live_db = real.path().join("live.db");
    let settings = real.path().join("polycopy.toml");
    std::fs::write(&settings, format!("mode = \"live\"\n[live]\ndb_path = \"{}\"\n", live_db.display())).unwrap();
    let out = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo.sh"))
        .env("POLYCOPY_BIN", bin())
        .env("ANVIL_BIN", anvil_bin())
        .env("POLYCOPY_SYSTEM_CONFIG", &settings)
        .env("PRIVATE_KEY", KEY)
        .env("TELEGRAM_BOT_TOKEN", "123456:not-a-real-token")
        .env("TELEGRAM_CHAT_ID", "42")
        .output()
        .unwrap();
    let (code, stdout, stderr) = output(out);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("polycopy copied all 3 trades"), "{stdout}");
    assert_eq!(stdout.matches("executed ").count(), 3, "{stdout}");
    assert!(stdout.contains("ours 10 at 0.5") && stdout.contains("ours 4 at 0.6"), "{stdout}");
    assert!(stdout.contains("paper mode") && !stdout.contains("LIVE"), "{stdout}");
    assert!(!live_db.exists(), "the installation's live journal was touched");
    // Its directory is gone and nothing it started still runs.
    let dir = stdout
        .split("journal ")
        .nth(1)
        .and_then(|s| s.split("/journal.db").next())
        .expect("the demo names its directory")
        .to_owned();
    assert!(!std::path::Path::new(&dir).exists(), "{dir} was left behind");
    let ps = std::process::Command::new("pgrep").args(["-f", &dir]).output().unwrap();
    assert!(ps.stdout.is_empty(), "processes left: {}", String::from_utf8_lossy(&ps.stdout));
}
