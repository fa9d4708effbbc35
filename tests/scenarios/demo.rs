//! The documented local demo (scripts/demo.sh), run as a newcomer would: a local node, three
//! planted target trades, paper polycopy copying them within a minute, and everything stopped and
//! removed on exit.

use crate::support::*;

#[test]
fn test_demo_when_run_then_three_copies_shown_and_everything_cleaned_up() {
    let out = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo.sh"))
        .env("POLYCOPY_BIN", bin())
        .env("ANVIL_BIN", anvil_bin())
        .output()
        .unwrap();
    let (code, stdout, stderr) = output(out);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("polycopy copied all 3 trades"), "{stdout}");
    assert_eq!(stdout.matches("executed ").count(), 3, "{stdout}");
    assert!(stdout.contains("ours 10 at 0.5") && stdout.contains("ours 4 at 0.6"), "{stdout}");
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
