//! What an operator does: emergency stop, halt and resume (surviving restarts), editing
//! wallets.json while running, and checking a broken configuration.

use std::time::{Duration, Instant};

use crate::support::*;
use alloy::primitives::{Address, address};
use serde_json::json;

const A: Address = address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
const D: Address = address!("dddddddddddddddddddddddddddddddddddddddd");
const C: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");

fn buy(maker: Address, order: u8, token: u64) -> Fill {
    Fill::v2(order, maker, C, true, token, 100 * ONE, 50 * ONE)
}

/// Waits for the n-th row to reach a final status and returns (status, reason).
async fn outcome(d: &Daemon, n: usize) -> (String, String) {
    wait_for(20, &format!("row {n} to finish"), async || {
        let r = d.trades();
        let row = r.get(n)?;
        (row["status"] != "pending")
            .then(|| (row["status"].as_str().unwrap().to_owned(), row["reason"].as_str().unwrap_or("").to_owned()))
    })
    .await
}

/// Polls the daemon's log for `needle` for at most one second (the promised reaction time).
async fn within_a_second(d: &Daemon, needle: &str, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while d.log().matches(needle).count() < times {
        assert!(Instant::now() < deadline, "daemon did not log {needle:?} within a second:\n{}", d.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A settings edit with a mistake, not applied yet, does not hide the daemon that trades:
/// `status` shows it (the file's mode, journals and socket, with a warning naming the problem).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_status_when_the_settings_file_gets_a_bad_value_then_the_running_daemon_is_still_shown() {
    let Running { anvil: _anvil, dir: _dir, d } = running(&wallets(&[(A, "a", true)], 0.1)).await;
    // An edit not applied yet (the daemon keeps the settings it started with), and wrong.
    d.set("copy", "max_copy_delay_s = 9999999999");
    let (code, out, err) = d.run_cli(&["status", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("the settings have problems") && err.contains("copy.max_copy_delay_s"), "{err}");
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (st["daemon"]["running"].as_bool(), st["daemon"]["answers"].as_bool()),
        (Some(true), Some(true)),
        "{st}"
    );
    // check-config still refuses it, by name.
    let (code, _, err) = d.run_cli(&["check-config", "--offline"]);
    assert_eq!(code, 78, "{err}");
}

/// The EMERGENCY_STOP file and `polycopy halt` stop new executions within a second, `resume`
/// restarts them, and the halted state survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_halt_when_stop_file_or_cli_then_no_executions_until_resume() {
    let Running { anvil, dir, mut d } = running(&wallets(&[(A, "a", true)], 0.1)).await;
    anvil.emit(&buy(A, 1, 1)).await;
    assert_eq!(outcome(&d, 0).await.0, "executed");

    std::fs::write(dir.path().join("EMERGENCY_STOP"), "").unwrap();
    within_a_second(&d, "BREAKER TRIPPED (emergency_stop)", 1).await;
    anvil.emit(&buy(A, 2, 2)).await;
    assert_eq!(outcome(&d, 1).await, ("rejected".into(), "halted".into()));

    let (code, _, err) = d.run_cli(&["resume"]);
    assert_eq!(code, 1, "resume refuses while the stop file exists");
    assert!(err.contains("EMERGENCY_STOP"), "{err}");
    std::fs::remove_file(dir.path().join("EMERGENCY_STOP")).unwrap();
    let (code, out, _) = d.run_cli(&["resume"]);
    assert_eq!(code, 0);
    assert!(out.contains("was emergency_stop"), "{out}");
    within_a_second(&d, "breaker reset by cli", 1).await;
    anvil.emit(&buy(A, 3, 3)).await;
    assert_eq!(outcome(&d, 2).await.0, "executed");

    let (code, _, _) = d.run_cli(&["halt", "--reason", "checking the logs"]);
    assert_eq!(code, 0);
    within_a_second(&d, "BREAKER TRIPPED (manual) by cli", 1).await;
    anvil.emit(&buy(A, 4, 4)).await;
    assert_eq!(outcome(&d, 3).await, ("rejected".into(), "halted".into()));

    assert!(d.stop().success());
    d.start();
    d.wait_live().await;
    let st = d.status();
    assert_eq!(st["breaker"]["tripped"], true);
    assert_eq!(st["breaker"]["reason"], "checking the logs");
    anvil.emit(&buy(A, 5, 5)).await;
    assert_eq!(outcome(&d, 4).await, ("rejected".into(), "halted".into()));
    let (code, _, _) = d.run_cli(&["resume"]);
    assert_eq!(code, 0);
    within_a_second(&d, "breaker reset by cli", 2).await;
    anvil.emit(&buy(A, 6, 6)).await;
    assert_eq!(outcome(&d, 5).await.0, "executed");
}

/// wallets.json edited while running: a new target is watched and copied without a restart; a
/// broken edit is rejected with every problem reported and the old targets keep running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reload_when_wallets_edited_then_applied_or_rejected_live() {
    let Running { anvil, dir: _dir, mut d } = running(&wallets(&[(A, "a", true)], 0.1)).await;

    d.write_wallets(&wallets(&[(A, "a", true), (D, "newcomer", true)], 0.1));
    wait_for(10, "the reload", async || (!d.events("wallets_reloaded").is_empty()).then_some(())).await;
    assert!(d.events("wallets_reloaded")[0].contains("added [newcomer]"));
    anvil.emit(&buy(D, 1, 10)).await;
    assert_eq!(outcome(&d, 0).await.0, "executed");

    d.write_wallets_text(&format!(
        r#"{{"wallets": [
            {{"address": "{A}", "label": "a"}},
            {{"address": "0xnothex", "label": "typo"}},
            {{"address": "{D}", "label": "newcomer", "sizing": {{"mode": "multiplier", "multiplier": -2}}}},
            {{"address": "{A}", "label": "again"}}
        ]}}"#
    ));
    let rejected = wait_for(10, "the rejection", async || d.events("wallets_rejected").into_iter().next()).await;
    for needle in [
        "wallets[1] (typo): address",
        "wallets[2] (newcomer): sizing.multiplier",
        "wallets[3] (again): address: duplicate",
    ] {
        assert!(rejected.contains(needle), "{needle} missing from {rejected}");
        assert!(d.log().contains(needle));
    }
    // `status` shows the set still running, not the refused file's nothing.
    let st = d.status();
    let labels: Vec<&str> = st["targets"].as_array().unwrap().iter().filter_map(|t| t["label"].as_str()).collect();
    assert_eq!(labels, ["a", "newcomer"], "{st}");
    assert!(st["wallets_error"].as_str().unwrap().contains("typo"), "{st}");
    // /health says it too, degraded: trading goes on, the next restart would stop at the file.
    let base = d.http_base().await;
    let (_, health) = crate::support::http::http_get(&base, "/health").await;
    assert!(health.contains(r#""name":"wallets","status":"degraded""#), "{health}");
    anvil.emit(&buy(A, 2, 11)).await;
    anvil.emit(&buy(D, 3, 12)).await;
    assert_eq!(outcome(&d, 1).await.0, "executed");
    assert_eq!(outcome(&d, 2).await.0, "executed");

    // A valid file again, without D; SIGHUP also reloads.
    d.write_wallets(&wallets(&[(A, "a", true)], 0.1));
    wait_for(10, "the second reload", async || (d.events("wallets_reloaded").len() >= 2).then_some(())).await;
    assert!(d.events("wallets_reloaded")[1].contains("removed [newcomer]"));
    let (_, health) = crate::support::http::http_get(&base, "/health").await;
    assert!(!health.contains(r#""name":"wallets""#), "a good file read again: {health}");
    anvil.emit(&buy(D, 4, 13)).await;
    anvil.emit(&buy(A, 5, 14)).await;
    let (status, _) = outcome(&d, 3).await;
    assert_eq!(status, "executed");
    assert_eq!(d.trades()[3]["token_id"], "14", "the removed target's fill is not journaled");
    // Its copies are still open and its exits no longer read: said, naming it.
    let stranded =
        |d: &Daemon| d.events("warning").into_iter().filter(|m| m.contains("no longer watched")).collect::<Vec<_>>();
    let said = wait_for(10, "the stranded positions said", async || stranded(&d).into_iter().next()).await;
    assert!(said.contains(&format!("newcomer ({D}): 2 position(s)")), "{said}");
    assert!(!said.contains(&A.to_string()), "{said}");
    assert!(d.stop().success());
    // Said again at the next start: the operator may have missed it, or removed it while stopped.
    d.start();
    d.wait_live().await;
    wait_for(10, "said again at start", async || (stranded(&d).len() >= 2).then_some(())).await;
    assert!(stranded(&d)[1].contains(&D.to_string()), "{:?}", stranded(&d));
    assert!(d.stop().success());
}

/// While the daemon starts, between reading wallets.json and watching it: an edit saved then is
/// still applied once it is up, and a SIGHUP (whose default action ends a process, which systemd
/// would not restart) is taken as a reload, never as the end; a SIGTERM still ends it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_start_when_wallets_edited_or_sighup_during_it_then_applied_and_still_running() {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    let hold = dir.path().join("hold");
    for (round, sighup) in [true, false].into_iter().enumerate() {
        std::fs::write(&hold, "").unwrap();
        d.start_with(&[("POLYCOPY_FAULT", "hold_before_watching"), ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap())]);
        let held = async || (d.log().matches("fault injection: holding").count() > round).then_some(());
        wait_for(20, "the start held", held).await;
        let label = if sighup { "hupped" } else { "edited" };
        d.write_wallets(&wallets(&[(A, "a", true), (D, label, true)], 0.1));
        if sighup {
            let pid = d.pid().unwrap().to_string();
            assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
        }
        std::fs::remove_file(&hold).unwrap();
        d.wait_live().await;
        wait_for(10, "the edit applied", async || {
            d.events("wallets_reloaded").into_iter().find(|m| m.contains(&format!("added [{label}]")))
        })
        .await;
        anvil.emit(&buy(D, if sighup { 1 } else { 2 }, 20)).await;
        let n = if sighup { 0 } else { 1 };
        assert_eq!(outcome(&d, n).await.0, "executed", "{label}");
        assert!(d.stop().success(), "{label}: still running until stopped");
        d.write_wallets(&wallets(&[(A, "a", true)], 0.1));
    }
    // A stop asked during the start is not held until it ends (`systemctl stop` must not wait).
    std::fs::write(&hold, "").unwrap();
    d.start_with(&[("POLYCOPY_FAULT", "hold_before_watching"), ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap())]);
    wait_for(20, "the start held", async || (d.log().matches("fault injection: holding").count() > 2).then_some(()))
        .await;
    let pid = d.pid().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    // Ended within wait_exit's 20 s while the start is still held.
    d.wait_exit().await;
    std::fs::remove_file(&hold).unwrap();
}

/// `check-config` on a wallets.json with three different mistakes prints all three with their
/// entries and exits 78 (EX_CONFIG); a clean configuration exits 0.
#[test]
fn test_check_config_when_three_mistakes_then_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::new(dir.path(), "http://127.0.0.1:1", "", &wallets(&[(A, "a", true)], 0.1));
    let (code, out, _) = d.run_cli(&["check-config", "--offline"]);
    assert_eq!(code, 0, "{out}");
    d.write_wallets(&json!({"wallets": [
        {"address": "0x12345", "label": "short"},
        {"address": A.to_string(), "label": "greedy", "max_order_usdc": -5},
        {"address": D.to_string(), "label": "typo", "copy_sell": false}
    ]}));
    let (code, _, err) = d.run_cli(&["check-config", "--offline"]);
    assert_eq!(code, 78, "a configuration problem is EX_CONFIG");
    assert!(err.contains("3 problem(s)"), "{err}");
    assert!(err.contains("wallets[0] (short): address"), "{err}");
    assert!(err.contains("wallets[1] (greedy): max_order_usdc"), "{err}");
    assert!(err.contains("wallets[2] (typo): copy_sell: unknown key"), "{err}");
    let (code, out, _) = d.run_cli(&["check-config", "--json", "--offline"]);
    assert_eq!(code, 78);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["problems"].as_array().unwrap().len(), 3);
    assert_eq!(v["problems"][0]["entry"], "wallets[0] (short)");
}

/// The settings that decide what a command acts on may not come from the environment, which the
/// service sees and an operator's shell does not: the stop file among them, or the operator would
/// touch a file the daemon never reads. Each is refused, named, with where to put it.
#[test]
fn test_check_config_when_the_environment_sets_the_journal_or_the_stop_file_then_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), "http://127.0.0.1:1", "", &wallets(&[(A, "a", true)], 0.1));
    for (var, value) in [
        ("POLYCOPY_EMERGENCY_STOP_FILE", "/run/polycopy/STOP"),
        ("POLYCOPY_DB_PATH", "other.db"),
        ("POLYCOPY_CONTROL_SOCKET", "/tmp/other.sock"),
        ("POLYCOPY_WALLETS_PATH", "/tmp/other-wallets.json"),
    ] {
        d.env.push((var.into(), value.into()));
        let (code, _, err) = d.run_cli(&["check-config", "--offline"]);
        assert_eq!(code, 78, "{var}: {err}");
        assert!(err.contains(var) && err.contains("only in the settings"), "{var}: {err}");
        d.env.pop();
    }
    let (code, out, err) = d.run_cli(&["check-config", "--offline"]);
    assert_eq!(code, 0, "{out}{err}");
}

/// `check-config` tries every chain endpoint: a node on Polygon's chain id answers with its head; a
/// closed port and a node on another chain are problems naming the variable (exit 78); `--offline`
/// skips the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_check_config_when_endpoints_tried_then_dead_or_wrong_chain_refused() {
    let anvil = Anvil::start().await;
    let other = Anvil::start_on_chain(1).await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    let (code, out, err) = d.run_cli(&["check-config"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("answers, chain 137, head block"), "{out}");
    let cases = [
        ("http://127.0.0.1:1".to_owned(), "POLYGON_RPC_URL: http://127.0.0.1:1 does not work"),
        (other.http_url(), "is on chain 1, not 137"),
    ];
    for (url, want) in cases {
        let out = d.cmd(&["check-config"]).env("POLYGON_RPC_URL", &url).output().unwrap();
        let (code, _, err) = crate::support::output(out);
        assert_eq!(code, 78, "{url}: {err}");
        assert!(err.contains(want), "{url}: {err}");
        let out = d.cmd(&["check-config", "--offline"]).env("POLYGON_RPC_URL", &url).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{url}: --offline does not try it");
    }
}

/// Settings of the wrong type are all reported at once, each where it was written: a fraction in
/// a whole-number setting is refused (not rounded), and a bad environment override names its
/// variable, not the settings file or the built-in defaults.
#[test]
fn test_check_config_when_settings_have_type_errors_then_each_is_named_where_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::new(dir.path(), "http://127.0.0.1:1", "", &wallets(&[(A, "a", true)], 0.1));
    d.set("chain", "max_block_range = 1.5");
    d.set("copy", "skip_closed = \"yes\"");
    d.set("risk", "mark_interval_s = -3");
    let out = d.cmd(&["check-config"]).env("POLYCOPY_HEALTH__FEED_STALL_S", "soon").output().unwrap();
    let (code, _, err) = crate::support::output(out);
    assert_eq!(code, 78, "{err}");
    for needle in [
        "chain.max_block_range: must be a whole number of at least 0, got 1.5",
        "copy.skip_closed: must be true or false, got \"yes\"",
        "risk.mark_interval_s: must be a whole number of at least 0, got -3",
        "environment: POLYCOPY_HEALTH__FEED_STALL_S: must be a whole number",
    ] {
        assert!(err.contains(needle), "{needle} missing from {err}");
    }
    assert!(!err.contains("built-in defaults"), "{err}");
}

/// The journal cannot be written (another process holds an exclusive lock past the busy timeout):
/// the breaker trips with `database_error`, nothing is executed, and when the journal recovers the
/// fill is journaled and refused as halted until the operator resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_journal_when_unwritable_then_breaker_trips() {
    let Running { anvil, dir, d } = running(&wallets(&[(A, "a", true)], 0.1)).await;
    // Holds the lock until the daemon has given up on it (its 5 s busy timeout) and tripped.
    let lock = LockedJournal::hold(&dir.path().join("journal.db"));
    anvil.emit(&buy(A, 1, 1)).await;
    wait_for(20, "the breaker to trip", async || d.log().contains("BREAKER TRIPPED (database_error)").then_some(()))
        .await;
    // While the journal cannot take the breaker, `status` shows the daemon's own (tripped) breaker.
    let st = d.status();
    assert_eq!(st["breaker"]["code"], "database_error", "{st}");
    lock.release();
    assert_eq!(outcome(&d, 0).await, ("rejected".into(), "halted".into()));
    assert_eq!(d.status()["breaker"]["code"], "database_error");
    let (code, _, _) = d.run_cli(&["resume"]);
    assert_eq!(code, 0);
    within_a_second(&d, "breaker reset by cli", 1).await;
    anvil.emit(&buy(A, 2, 2)).await;
    assert_eq!(outcome(&d, 1).await.0, "executed");
}

/// A damaged journal is found at start, not at the first write: a truncated file and a file that is
/// not a database each stop the daemon with exit 65 (systemd does not restart it), a message naming
/// the file and the way out, and `status` says the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_start_when_journal_damaged_then_refused_naming_file_and_restore() {
    let Running { anvil, dir, mut d } = running(&wallets(&[(A, "a", true)], 0.1)).await;
    for i in 0..20 {
        anvil.emit(&buy(A, i, u64::from(i) + 1)).await;
    }
    outcome(&d, 19).await;
    assert!(d.stop().success());
    let db = dir.path().join("journal.db");
    // Everything in the main file (no WAL left to read pages from), so cutting the file cuts data.
    rusqlite::Connection::open(&db).unwrap().execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let _ = std::fs::remove_file(dir.path().join("journal.db-wal"));
    let _ = std::fs::remove_file(dir.path().join("journal.db-shm"));
    let len = std::fs::metadata(&db).unwrap().len();
    let truncated = std::fs::read(&db).unwrap()[..usize::try_from(len / 2).unwrap()].to_vec();
    let cases =
        [("truncated", truncated), ("not a database", b"hello, this is not SQLite".repeat(200)), ("empty", Vec::new())];
    for (what, bytes) in cases {
        std::fs::write(&db, &bytes).unwrap();
        d.start();
        let status = d.wait_exit().await;
        assert_eq!(status.code(), Some(65), "{what}: {}", d.log());
        let log = d.log();
        assert!(log.contains("journal.db is damaged") && log.contains("restore.sh"), "{what}: {log}");
        let (code, _, err) = d.run_cli(&["status"]);
        assert_ne!(code, 0);
        assert!(err.contains("journal.db is damaged"), "{what}: {err}");
        assert_eq!(std::fs::read(&db).unwrap(), bytes, "{what}: the damaged file is left as it was");
    }
}

/// One daemon per journal: a second `run` on the same journal is refused even with another control
/// socket and HTTP port, naming the running daemon's pid; the first keeps trading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_second_daemon_when_same_journal_then_refused_naming_the_first() {
    let Running { anvil, dir, d } = running(&wallets(&[(A, "a", true)], 0.1)).await;
    let settings = std::fs::read_to_string(dir.path().join("polycopy.toml")).unwrap();
    std::fs::write(dir.path().join("other.toml"), format!("control_socket = \"other.sock\"\n{settings}")).unwrap();
    let mut c = std::process::Command::new(bin());
    c.current_dir(dir.path())
        .args(["--config", "other.toml", "--wallets", "wallets.json", "--db", "journal.db", "run"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(d.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let (code, out, err) = crate::support::output(c.output().unwrap());
    assert_ne!(code, 0, "{out}{err}");
    let pid = d.pid().unwrap();
    assert!(err.contains(&format!("another polycopy daemon (pid {pid}) is running on the journal")), "{err}");
    assert!(!dir.path().join("other.sock").exists());
    // Another path to the same file (a symlink), even with the lock file deleted: refused too.
    std::os::unix::fs::symlink(dir.path().join("journal.db"), dir.path().join("alias.db")).unwrap();
    std::fs::remove_file(dir.path().join("journal.db.lock")).unwrap();
    let mut c = std::process::Command::new(bin());
    c.current_dir(dir.path())
        .args(["--config", "other.toml", "--wallets", "wallets.json", "--db", "alias.db", "run"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(d.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let (code, out, err) = crate::support::output(c.output().unwrap());
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("through another path to the same file"), "{err}");
    anvil.emit(&buy(A, 1, 1)).await;
    assert_eq!(outcome(&d, 0).await.0, "executed", "the first daemon trades on");
}

/// `polycopy status | head -1`: a reader that goes away ends the command quietly (128 + SIGPIPE),
/// never with a panic and a backtrace.
#[test]
fn test_cli_when_output_pipe_closes_then_quiet_exit() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::new(dir.path(), "http://127.0.0.1:1", "", &wallets(&[(A, "a", true)], 0.1));
    drop(polycopy::store::Store::open(&dir.path().join("journal.db")).unwrap());
    let mut child =
        d.cmd(&["status"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}

/// A journal deleted under the running daemon is noticed within a second: trading halts
/// (`database_error`) and `/health` turns red naming the journal, instead of trading on into an
/// unlinked file nothing reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_journal_when_deleted_while_running_then_halted_and_health_red() {
    let Running { anvil: _anvil, dir, d } = running(&wallets(&[(A, "a", true)], 0.1)).await;
    let base = d.http_base().await;
    std::fs::remove_file(dir.path().join("journal.db")).unwrap();
    within_a_second(&d, "BREAKER TRIPPED (database_error)", 1).await;
    assert!(d.log().contains("was deleted while the daemon runs"), "{}", d.log());
    let (code, health) = crate::support::http::http_get(&base, "/health").await;
    assert_eq!(code, 503, "{health}");
    assert!(health.contains("\"database\"") && health.contains("deleted"), "{health}");
}

/// A daemon whose control socket takes the connection but never answers (a start still under
/// way, say): `halt` says it is not confirmed, and stores the halt in the journal as well, which
/// the daemon reads on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_halt_when_the_socket_never_answers_then_stored_in_the_journal_too() {
    let Running { anvil: _anvil, dir, mut d } = running(&wallets(&[(A, "a", true)], 0.1)).await;
    assert!(d.stop().success());
    let _silent = std::os::unix::net::UnixListener::bind(dir.path().join("journal.db.sock")).unwrap();
    let (code, out, err) = d.run_cli(&["halt", "--reason", "no answer"]);
    assert_eq!(code, 4, "not confirmed: {out}{err}");
    assert!(err.contains("NOT confirmed") && err.contains("halted in the journal"), "{err}");
    let c = rusqlite::Connection::open(dir.path().join("journal.db")).unwrap();
    let (tripped, reason): (i64, String) =
        c.query_row("SELECT tripped, reason FROM breaker", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!((tripped, reason.as_str()), (1, "no answer"));
}

/// wallets.json a symbolic link to a file kept elsewhere (a config-management layout): an edit of
/// the file it names is reloaded without a signal, as an edit of wallets.json itself is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reload_when_wallets_json_is_a_link_and_its_target_is_edited_then_applied() {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    let real = dir.path().join("managed");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::rename(dir.path().join("wallets.json"), real.join("wallets.json")).unwrap();
    std::os::unix::fs::symlink(real.join("wallets.json"), dir.path().join("wallets.json")).unwrap();
    d.start();
    d.wait_live().await;
    let edited = wallets(&[(A, "a", true), (D, "newcomer", true)], 0.1);
    std::fs::write(real.join("wallets.json"), serde_json::to_string_pretty(&edited).unwrap()).unwrap();
    wait_for(10, "the reload", async || (!d.events("wallets_reloaded").is_empty()).then_some(())).await;
    assert!(d.events("wallets_reloaded")[0].contains("added [newcomer]"));
    assert_eq!(d.stop().code(), Some(0));
}

/// A daemon copying A whose supervisor holds a `resume` in its turn while the file `hold` exists
/// in its directory (fault point `hold_resume`).
async fn resume_held_when_asked() -> (Anvil, tempfile::TempDir, Daemon) {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    let hold = dir.path().join("hold");
    d.start_with(&[("POLYCOPY_FAULT", "hold_resume"), ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap())]);
    d.wait_live().await;
    (anvil, dir, d)
}

/// health_check.sh --allow-halted (how update.sh and restore.sh check a daemon that was halted)
/// accepts a halt, never a risk supervisor that does not answer: that daemon would be declared
/// healthy and then killed by the watchdog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_health_check_when_halts_are_allowed_then_a_supervisor_that_does_not_answer_still_fails() {
    let (_anvil, dir, d) = resume_held_when_asked().await;
    let hold = dir.path().join("hold");
    let url = d.http_base().await;
    let check = || {
        let args = ["--url", url.as_str(), "--no-backup-check", "--min-disk-mb", "1", "--allow-halted"];
        d.script("health_check.sh", &args, &[])
    };
    // An operator's reason may say anything, these words too.
    let (code, _, err) = d.run_cli(&["halt", "--reason", "the CLOB did not answer"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = check();
    assert_eq!(code, 0, "a halt is allowed: {out}{err}");
    std::fs::write(&hold, "").unwrap();
    let resume =
        d.cmd(&["resume"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    wait_for(20, "the supervisor held", async || d.log().contains("fault injection: holding").then_some(())).await;
    let (code, out, err) = check();
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("breaker") && out.contains("did not answer"), "{out}{err}");
    std::fs::remove_file(&hold).unwrap();
    let _ = resume.wait_with_output().unwrap();
}

/// A `resume` from the command line waits its turn behind a busy supervisor; a `halt` sent
/// meanwhile finds trading still halted (as the journal says) and answers so. The queued resume
/// must not then open trading again: the halt was the operator's last word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_halt_when_a_resume_is_still_queued_then_the_halt_wins() {
    let (anvil, dir, d) = resume_held_when_asked().await;
    let hold = dir.path().join("hold");
    let (code, _, err) = d.run_cli(&["halt", "--reason", "first look"]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(&hold, "").unwrap();
    let resume =
        d.cmd(&["resume"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    wait_for(20, "the resume held in the supervisor's turn", async || {
        d.log().contains("fault injection: holding").then_some(())
    })
    .await;
    let (code, out, err) = d.run_cli(&["halt", "--reason", "second look"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("already halted"), "{out}");
    std::fs::remove_file(&hold).unwrap();
    let (_, out, err) = output(resume.wait_with_output().unwrap());
    assert!(!out.contains("resumed (was"), "{out}{err}");
    // The resume has had its turn: anything the supervisor decides now comes after it.
    anvil.emit(&buy(A, 1, 1)).await;
    assert_eq!(outcome(&d, 0).await, ("rejected".into(), "halted".into()));
    assert_eq!(d.status()["breaker"]["tripped"], true);
    // And a resume asked for after the halt works as ever.
    let (code, out, _) = d.run_cli(&["resume"]);
    assert_eq!(code, 0, "{out}");
    anvil.emit(&buy(A, 2, 2)).await;
    assert_eq!(outcome(&d, 1).await.0, "executed");
}
