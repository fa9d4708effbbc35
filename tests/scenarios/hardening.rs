//! Hostile input and lost resources at the edges of the CLI: a malformed `.env` never echoes a
//! secret and names the right line, a port in use is a clean refusal, output that cannot be
//! written is a clean error, a placeholder key is refused, and an environment override is blamed
//! on its variable.

use crate::support::*;
use alloy::primitives::{Address, address};

const A: Address = address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
const KEY: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";

fn daemon(dir: &std::path::Path) -> Daemon {
    Daemon::new(dir, "http://127.0.0.1:1", "", &wallets(&[(A, "a", true)], 0.1))
}

/// A `.env` line that does not parse: the error names its real line and never the value; a `.env`
/// in a parent directory is not read.
#[test]
fn test_env_file_when_malformed_then_line_named_and_secret_not_shown() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&dir.path().join("work"));
    let env = format!("A=1\nB=2\n# a comment\nC=3\nPRIVATE_KEY=\"{KEY}\nD=4\n");
    std::fs::write(d.dir.join(".env"), env).unwrap();
    let (code, out, err) = d.run_cli(&["check-config", "--offline"]);
    assert_eq!(code, 78, "{out}{err}");
    assert!(err.contains("line 5 is not KEY=VALUE"), "{err}");
    assert!(!err.contains(&KEY[2..]) && !out.contains(&KEY[2..]), "the key was shown: {err}");
    // Stopping trading, or seeing it, does not wait for the fix: a warning, and the halt stored.
    drop(polycopy::store::Store::open(&d.dir.join("journal.db")).unwrap());
    let (code, out, err) = d.run_cli(&["halt", "--reason", "env broken"]);
    assert_eq!(code, 3, "halted in the journal, no daemon running: {out}{err}");
    assert!(err.contains("line 5 is not KEY=VALUE") && out.contains("halted"), "{out}{err}");
    assert!(!err.contains(&KEY[2..]) && !out.contains(&KEY[2..]), "the key was shown: {err}");
    let (code, out, err) = d.run_cli(&["status"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("env broken"), "{out}");
    // In the parent directory only: not read (the wrong chain URL would fail the offline check).
    std::fs::remove_file(d.dir.join(".env")).unwrap();
    std::fs::write(dir.path().join(".env"), "PAPER_TRADING=maybe\n").unwrap();
    let (code, out, err) = d.run_cli(&["check-config", "--offline"]);
    assert_eq!(code, 0, "a parent directory's .env was read: {out}{err}");
    // A byte-order mark (a file saved by some Windows editors) is not part of the first key; a key
    // set twice takes its last value, as systemd reads an env file.
    std::fs::remove_file(dir.path().join(".env")).unwrap();
    for (text, ok) in [
        ("\u{feff}PAPER_TRADING=true\n", true),
        ("\u{feff}PAPER_TRADING=maybe\n", false),
        ("PAPER_TRADING=\nPAPER_TRADING=maybe\n", false),
        ("PAPER_TRADING=maybe\nPAPER_TRADING=true\n", true),
    ] {
        std::fs::write(d.dir.join(".env"), text).unwrap();
        let (code, out, err) = d.run_cli(&["check-config", "--offline"]);
        assert_eq!(code == 0, ok, "{text:?}: {out}{err}");
        assert!(!err.contains("not KEY=VALUE"), "{text:?}: {err}");
    }
}

/// The installation's `polycopy.env` and a `.env` in the directory the command runs from disagree:
/// the installation's wins (a command acts on the installed daemon with its settings, never with a
/// checkout's leftovers), and the `.env` does not even fill what the installation's file leaves
/// unset (a limit or a mode the daemon does not have); the command says it was not read. A line
/// of the installation's file that systemd would read otherwise than the command is refused by
/// number, its text not shown.
#[test]
fn test_env_file_when_the_installation_and_the_working_directory_disagree_then_the_installation_wins() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&dir.path().join("work"));
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("polycopy.toml"), "").unwrap();
    std::fs::write(etc.join("polycopy.env"), "PAPER_TRADING=true\n").unwrap();
    std::fs::write(d.dir.join(".env"), "PAPER_TRADING=maybe\n").unwrap();
    let system = etc.join("polycopy.toml");
    let check = || {
        let out = d.cmd(&["check-config", "--offline"]).env("POLYCOPY_SYSTEM_CONFIG", &system).output().unwrap();
        crate::support::output(out)
    };
    let (code, out, err) = check();
    assert_eq!(code, 0, "the working directory's .env won: {out}{err}");
    std::fs::write(etc.join("polycopy.env"), "# nothing set here\n").unwrap();
    let (code, out, err) = check();
    assert_eq!(code, 0, ".env filled what the installation leaves unset: {out}{err}");
    assert!(err.contains("./.env is not read"), "{err}");
    let secret = "0x1111111111111111111111111111111111111111111111111111111111111111";
    for line in [format!("PRIVATE_KEY={secret}  # the signer"), format!("export PRIVATE_KEY={secret}")] {
        std::fs::write(etc.join("polycopy.env"), format!("# the key\n{line}\n")).unwrap();
        let (code, out, err) = check();
        assert_eq!(code, 78, "{line}: {out}{err}");
        assert!(err.contains("line 2") && err.contains("systemd"), "{err}");
        assert!(!err.contains(secret) && !out.contains(secret), "{err}");
    }
    // Saved by a Windows editor with a byte-order mark: systemd would log the first line, key and
    // all, and start the daemon without it.
    std::fs::write(etc.join("polycopy.env"), format!("\u{feff}PRIVATE_KEY={secret}\n")).unwrap();
    let (code, out, err) = check();
    assert_eq!(code, 78, "{out}{err}");
    assert!(err.contains("line 1") && err.contains("byte-order mark"), "{err}");
    assert!(!err.contains(secret) && !out.contains(secret), "{err}");
}

/// `POLYCOPY_SYSTEM_CONFIG` naming a file that is not there (a typo) is refused: the command would
/// otherwise act on built-in defaults and a journal in the working directory, never the
/// installation meant. Set empty, it means no installation.
#[test]
fn test_system_config_when_it_names_a_missing_file_then_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let typo = dir.path().join("etc/polycopy.tmol");
    for args in [&["status"][..], &["halt", "--reason", "x"], &["check-config", "--offline"]] {
        let out = d.cmd(args).env("POLYCOPY_SYSTEM_CONFIG", &typo).output().unwrap();
        let (code, out, err) = crate::support::output(out);
        assert_eq!(code, 78, "{args:?}: {out}{err}");
        assert!(err.contains("POLYCOPY_SYSTEM_CONFIG") && err.contains("does not exist"), "{err}");
    }
}

/// The health port taken by another process: a clean message naming the setting, no panic and no
/// backtrace, and nothing started.
#[test]
fn test_run_when_port_in_use_then_clean_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let d = daemon(dir.path());
    let out = d.cmd(&["run"]).env("POLYCOPY_HTTP__LISTEN", format!("127.0.0.1:{port}")).output().unwrap();
    let (code, _, err) = crate::support::output(out);
    assert_ne!(code, 0);
    assert!(err.contains("Address already in use") && err.contains("http.listen"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

/// Output to a full disk (`/dev/full`): a clean error and EX_IOERR, not a panic.
#[test]
fn test_cli_when_output_cannot_be_written_then_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    drop(polycopy::store::Store::open(&dir.path().join("journal.db")).unwrap());
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = d.cmd(&["status"]).stdout(full).output().unwrap();
    let (code, _, err) = crate::support::output(out);
    assert_eq!(code, 74, "{err}");
    assert!(err.contains("cannot write the output") && !err.contains("panicked"), "{err}");
}

/// The all-zero placeholder key is not a key; a non-loopback listen set through the environment is
/// blamed on that variable, not on the settings file.
#[test]
fn test_check_config_when_placeholder_key_or_env_listen_then_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    d.set_top("mode = \"live\"");
    let zeros = format!("0x{}", "0".repeat(64));
    let out = d.cmd(&["check-config", "--offline"]).env("PRIVATE_KEY", &zeros).output().unwrap();
    let (code, _, err) = crate::support::output(out);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("PRIVATE_KEY") && !err.contains(&zeros), "{err}");
    let out = d
        .cmd(&["check-config", "--offline"])
        .env("PRIVATE_KEY", KEY)
        .env("POLYCOPY_HTTP__LISTEN", "0.0.0.0:9187")
        .output()
        .unwrap();
    let (code, _, err) = crate::support::output(out);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("environment: POLYCOPY_HTTP__LISTEN"), "{err}");
}

/// A secret pasted in the wrong place is never repeated back: a key where a target's address
/// goes, and an env line (`TELEGRAM_BOT_TOKEN=…`, not TOML) in the settings file. Each is refused
/// by its place (entry, line), for `check-config` as text and JSON and for any other command.
#[test]
fn test_check_config_when_a_secret_is_pasted_in_the_wrong_file_then_refused_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    d.write_wallets_text(&format!(r#"{{"wallets": [{{"address": "{KEY}", "label": "oops"}}]}}"#));
    for args in [&["check-config", "--offline"][..], &["check-config", "--offline", "--json"]] {
        let (code, out, err) = d.run_cli(args);
        assert_eq!(code, 78, "{out}{err}");
        assert!(!out.contains(&KEY[2..40]) && !err.contains(&KEY[2..40]), "the key was shown: {out}{err}");
        assert!(format!("{out}{err}").contains("private key"), "{out}{err}");
    }

    d.write_wallets(&wallets(&[(A, "a", true)], 0.1));
    let token = "123456789:AAHsecretBotTokenValue";
    d.set_top(&format!("TELEGRAM_BOT_TOKEN={token}"));
    for args in [&["check-config", "--offline"][..], &["status"], &["halt", "--reason", "x"]] {
        let (code, out, err) = d.run_cli(args);
        assert_ne!(code, 0, "{args:?}: {out}{err}");
        assert!(!out.contains("secretBotToken") && !err.contains("secretBotToken"), "{args:?}: {out}{err}");
        assert!(err.contains("line 1"), "{args:?}: {err}");
    }
}

/// A `control_socket` mistyped to name the journal (given by `--db`, so no settings rule sees
/// both paths): the start is refused and the journal, with its standing halt, is left
/// as it was; the same path in the settings file is refused by name.
#[test]
fn test_run_when_control_socket_names_the_journal_then_refused_and_journal_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    drop(polycopy::store::Store::open(&d.dir.join("journal.db")).unwrap());
    let (code, out, err) = d.run_cli(&["halt", "--reason", "weekend"]);
    assert_eq!(code, 3, "no daemon: stored in the journal: {out}{err}");
    let journal = d.dir.join("journal.db");
    let before = std::fs::metadata(&journal).unwrap().len();
    d.set_top(&format!("control_socket = {:?}", journal.display().to_string()));
    let out = d.cmd(&["run"]).output().unwrap();
    let (code, _, err) = crate::support::output(out);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("not a socket"), "{err}");
    let (code, _, err) = d.run_cli(&["check-config", "--offline"]);
    assert_eq!(code, 78, "check-config saw nothing: {err}");
    assert!(err.contains("control_socket: is the journal itself"), "{err}");
    assert!(std::fs::metadata(&journal).unwrap().len() >= before, "the journal was replaced");
    let (_, status, _) = d.run_cli(&["status", "--json"]);
    assert!(status.contains("weekend"), "the halt is gone: {status}");

    d.replace_setting(&format!("control_socket = {:?}", journal.display().to_string()), "");
    let live = d.dir.join("live.db").display().to_string();
    d.set_top(&format!("control_socket = {live:?}"));
    d.set("live", &format!("db_path = {live:?}"));
    let (code, _, err) = d.run_cli(&["check-config", "--offline"]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("control_socket: must not be the same path as live.db_path"), "{err}");
}

/// A command run as the service user from a directory it may not even look into (`sudo -u
/// polycopy …` from root's home, as the backup steps are run): that directory's `.env` is not its
/// own and taken as absent. A `.env` it can see but not read is still refused. Needs root to act as
/// another user; skipped otherwise.
#[test]
fn test_env_file_when_the_working_directory_is_closed_to_the_user_then_taken_as_absent() {
    use std::os::unix::fs::PermissionsExt as _;
    let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if !as_root {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = daemon(&dir.path().join("open"));
    let closed = dir.path().join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Read, it would fail the check: the mode is not a boolean.
    std::fs::write(closed.join(".env"), "PAPER_TRADING=maybe\n").unwrap();
    let run = |cwd: &std::path::Path| {
        let out = std::process::Command::new("runuser")
            .args(["-u", "nobody", "--", &bin(), "--config"])
            .arg(d.dir.join("polycopy.toml"))
            .arg("--wallets")
            .arg(d.dir.join("wallets.json"))
            .arg("--db")
            .arg(d.dir.join("journal.db"))
            .args(["check-config", "--offline"])
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let (code, out) = run(&closed);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains(".env"), "{out}");
    // Visible but not readable: a real problem, said.
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(closed.join(".env"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, out) = run(&closed);
    assert_eq!(code, Some(78), "{out}");
    assert!(out.contains("cannot read .env"), "{out}");
}

/// Run as root on an installation, `check-config` reads every file; the daemon, as the service
/// user, may not. A `wallets.json` saved 0600 root:root is named, with the fix, instead of a
/// clean bill that the next reload or start then contradicts.
#[test]
fn test_check_config_when_the_service_user_cannot_read_wallets_then_named() {
    use std::os::unix::fs::PermissionsExt as _;
    let as_root = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if !as_root.unwrap_or(false) {
        eprintln!("not root: the service user's view is not tested on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&dir.path().join("work"));
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("polycopy.toml"), "").unwrap();
    std::fs::set_permissions(etc.join("polycopy.toml"), std::fs::Permissions::from_mode(0o644)).unwrap();
    // The journal's directory belongs to the service user, as install.sh makes it.
    let ok = std::process::Command::new("chown").args(["65534:65534"]).arg(&d.dir).status().unwrap();
    assert!(ok.success());
    let wallets = d.dir.join("wallets.json");
    let check = || {
        let out = d
            .cmd(&["check-config", "--offline"])
            .env("POLYCOPY_SYSTEM_CONFIG", etc.join("polycopy.toml"))
            .output()
            .unwrap();
        crate::support::output(out)
    };
    std::fs::set_permissions(&wallets, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, out, err) = check();
    assert_eq!(code, 78, "{out}{err}");
    assert!(err.contains("wallets.json") && err.contains("cannot read") && err.contains("chmod 0640"), "{err}");
    std::fs::set_permissions(&wallets, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out, err) = check();
    assert_eq!(code, 0, "{out}{err}");
}

/// A variable that is not UTF-8 (bash exports PWD as it is, in a directory named in Latin-1) made
/// every command that reads the settings panic, `polycopy halt` included: the halt was not stored.
/// It is stored; one of polycopy's own variables that is not text is named.
#[test]
fn test_halt_when_the_environment_holds_a_variable_that_is_not_text_then_the_halt_is_stored() {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    drop(polycopy::store::Store::open(&dir.path().join("journal.db")).unwrap());
    let latin1 = std::ffi::OsStr::from_bytes(b"/tmp/caf\xe9");
    let out = d.cmd(&["halt", "--reason", "latin-1"]).env("PWD", latin1).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("no daemon is running on this journal"), "{err}");
    let (_, status, _) = d.run_cli(&["status", "--json"]);
    assert!(status.contains("latin-1"), "{status}");
    let out = d.cmd(&["check-config", "--offline"]).env("POLYCOPY_COPY__MAX_SLIPPAGE_BPS", latin1).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr) + String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("POLYCOPY_COPY__MAX_SLIPPAGE_BPS") && err.contains("not UTF-8"), "{err}");
}

/// A target whose own cap or fixed amount is below `copy.min_order_usdc` passes each file's own
/// checks, but every BUY of it would be refused: `check-config` names the entry and the field.
#[test]
fn test_check_config_when_a_targets_amount_is_below_the_smallest_order_then_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&dir.path().join("work"));
    let (code, out, err) = d.run_cli(&["check-config", "--offline"]);
    assert_eq!(code, 0, "{out}{err}");
    d.write_wallets_text(
        r#"{"wallets": [{"address": "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "label": "tiny",
            "sizing": {"mode": "fixed_usdc", "usdc": 0.5}}]}"#,
    );
    let (code, out, err) = d.run_cli(&["check-config", "--offline"]);
    assert_ne!(code, 0, "{out}{err}");
    let text = format!("{out}{err}");
    assert!(text.contains("(tiny)") && text.contains("sizing.usdc"), "{text}");
    assert!(text.contains("below copy.min_order_usdc 1"), "{text}");
}

/// A group chat authorized with no operator named: every member could resume trading and close
/// positions. `check-config` says so, as a warning (a private group of operators is allowed), and
/// not once the operators' user ids are listed.
#[test]
fn test_check_config_when_a_group_chat_names_no_operator_then_warned() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = daemon(&dir.path().join("work"));
    d.env.push(("TELEGRAM_BOT_TOKEN".into(), "123456789:HARDENING-TEST-TOKEN-abcdef".into()));
    d.env.push(("TELEGRAM_CHAT_ID".into(), "-1001234567890".into()));
    let (code, out, err) = d.run_cli(&["check-config", "--offline"]);
    assert_eq!(code, 0, "a warning, not a refusal: {out}{err}");
    assert!(err.contains("TELEGRAM_CHAT_ID") && err.contains("allowed_user_ids is empty"), "{out}{err}");
    d.set("telegram", "allowed_user_ids = [424242]");
    let (code, out, err) = d.run_cli(&["check-config", "--offline"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("allowed_user_ids is empty"), "{out}{err}");
}
