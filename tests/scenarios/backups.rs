//! Backups an operator can trust, run for real: retention by age (not by a file count), the audit
//! finding a corrupted backup among sound ones and alerting through the daemon, encrypted backups
//! that restore only with their key, the settings and wallets saved with the journal and restorable,
//! and the off-site copy.

use std::path::Path;
use std::process::Command;

use crate::support::*;
use alloy::primitives::{Address, address};
use serde_json::Value;

const A: Address = address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
const C: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");

fn buy(order: u8) -> Fill {
    Fill::v2(order, A, C, true, u64::from(order), 10 * ONE, 5 * ONE)
}

fn trades_of(d: &Daemon, db: &str) -> Vec<Value> {
    let (code, out, err) = output(d.cmd_db(db, &["trades", "--json", "--limit", "1000"]).output().unwrap());
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// Runs `script` with sh in `dir`; it must succeed. Returns its stdout.
fn sh(dir: &Path, script: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The names of the entries of `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

fn file_name(path: &str) -> String {
    Path::new(path).file_name().unwrap().to_string_lossy().into_owned()
}

/// A new age identity at `path`; returns its public recipient (age1...).
fn age_key(path: &Path) -> String {
    let out = Command::new("age-keygen").arg("-o").arg(path).output().expect("age-keygen (install age)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new("age-keygen").arg("-y").arg(path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let recipient = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(recipient.starts_with("age1"), "{recipient}");
    recipient
}

/// A daemon directory (settings, wallets) with an empty journal, not running.
fn idle(dir: &Path) -> Daemon {
    let d = Daemon::new(dir, "http://127.0.0.1:1", "", &wallets(&[(A, "a", true)], 1.0));
    drop(polycopy::store::Store::open(&dir.join("journal.db")).unwrap());
    d
}

/// A backup taken as root (update.sh, or by hand) into the service's backup directory belongs to
/// that directory's owner, as the nightly ones do: the monthly audit, run as the service's user,
/// reads it rather than calling it corrupt.
#[test]
fn test_backup_when_taken_as_root_then_owned_like_its_directory() {
    let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if !as_root {
        eprintln!("not root: ownership not tested on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = idle(dir.path());
    let b = dir.path().join("backups");
    std::fs::create_dir(&b).unwrap();
    std::os::unix::fs::chown(&b, Some(65_534), Some(65_534)).unwrap();
    let (code, out, err) = d.script("backup.sh", &["--dir", b.to_str().unwrap(), "--no-encrypt", "--no-copy"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let all = names(&b);
    assert!(all.len() >= 2, "{all:?}");
    for n in all {
        let m = std::fs::metadata(b.join(&n)).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&m), 65_534, "{n}");
    }
}

/// As root: an idle daemon's directory `svc` inside a world-readable temporary directory, for a
/// test to hand to the service's user (nobody); `None`, said, when not root.
fn a_service_users_home() -> Option<(tempfile::TempDir, std::path::PathBuf, Daemon)> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    if !std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        eprintln!("not root: acting as another user not tested on this machine");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.path().join("svc");
    let d = idle(&home);
    Some((dir, home, d))
}

/// A backup that would leave the daemon less free space beside its journal than it needs is refused
/// with nothing written (a full disk would trip the breaker at the next journal write).
#[test]
fn test_backup_when_the_disk_is_too_full_then_refused_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = idle(dir.path());
    let b = dir.path().join("backups");
    let args = ["--dir", b.to_str().unwrap(), "--no-encrypt", "--no-copy"];
    let (code, out, err) = d.script("backup.sh", &args, &[("BACKUP_RESERVE_MB", "1000000000")]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("not enough free space beside") && err.contains("Nothing was written"), "{err}");
    assert!(names(&b).is_empty(), "{:?}", names(&b));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".polycopy-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no plaintext copy begun");
    let (code, _, err) = d.script("backup.sh", &args, &[("BACKUP_RESERVE_MB", "1")]);
    assert_eq!(code, 0, "with room it goes: {err}");
}

/// A restore run as root into a shared directory where another user planted a file at the path
/// (the monthly restore test) does not give that user the restored journal: it stays root's, and
/// the file it replaced is named.
#[test]
fn test_restore_when_run_as_root_over_a_planted_file_then_the_copy_is_not_given_to_its_owner() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let Some((dir, _home, d)) = a_service_users_home() else { return };
    let b = dir.path().join("backups");
    let (code, out, err) = d.script("backup.sh", &["--dir", b.to_str().unwrap(), "--no-encrypt", "--no-copy"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let journal = out.trim().to_owned();
    // A shared, sticky directory like /tmp, and a file planted in it by nobody.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let planted = shared.join("restore-test.db");
    std::fs::write(&planted, "").unwrap();
    std::os::unix::fs::chown(&planted, Some(65_534), Some(65_534)).unwrap();
    let db = planted.to_str().unwrap();
    let (code, out, err) = d.script("restore.sh", &[&journal, "--db", db, "--no-service"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let m = std::fs::metadata(&planted).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (0, 0o600), "{out}{err}");
    assert!(err.contains("is not given to it"), "{err}");
}

/// Run as root on an installation whose journal belongs to the service's user, the backup is taken
/// as that user: root never writes by path inside directories that user owns (links it planted
/// there could send root's writes anywhere), and the files are that user's like the nightly ones.
#[test]
fn test_backup_when_run_as_root_then_taken_as_the_journals_owner() {
    use std::os::unix::fs::MetadataExt as _;
    let Some((_dir, home, d)) = a_service_users_home() else { return };
    let b = home.join("backups");
    std::fs::create_dir(&b).unwrap();
    let (code, _, err) = output(Command::new("chown").args(["-R", "65534:65534"]).arg(&home).output().unwrap());
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = d.script("backup.sh", &["--dir", b.to_str().unwrap(), "--no-encrypt", "--no-copy"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("backing up as nobody, the journal's owner"), "{err}");
    let all = names(&b);
    assert!(all.len() >= 2, "{all:?}");
    for n in all {
        assert_eq!(std::fs::metadata(b.join(&n)).unwrap().uid(), 65_534, "{n}");
    }
    // Nothing of root's left behind beside the journal.
    let root_owned: Vec<String> = std::fs::read_dir(&home)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.metadata().is_ok_and(|m| m.uid() == 0))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(root_owned.is_empty(), "{root_owned:?}");
}

/// Retention counts days: 40 backups of the last 10 days (more than the old default of 30 files)
/// all stay, backups older than 30 days go with their checksums and settings archives, whatever
/// their mode or encryption, except the newest of the other mode's journal (nothing backs it up
/// while this mode runs); --keep-days 7 keeps exactly the last 7 days; --keep-count is only an
/// extra cap, and says so when it cuts into --keep-days.
#[test]
fn test_backup_retention_when_backups_age_then_deleted_by_days_not_by_count() {
    let dir = tempfile::tempdir().unwrap();
    let d = idle(dir.path());
    let b = dir.path().join("b");
    std::fs::create_dir_all(&b).unwrap();
    let bdir = b.display().to_string();
    let aged = |name: &str, age: &str| {
        let (f, sum) = (b.join(name), b.join(format!("{name}.sha256")));
        std::fs::write(&f, "x").unwrap();
        std::fs::write(&sum, "x").unwrap();
        let ok = Command::new("touch").args(["-d", age]).arg(&f).arg(&sum).status().unwrap();
        assert!(ok.success());
    };
    // Four a day for 10 days: 1 h, 7 h, 13 h, ... 235 h old.
    for i in 0..40u32 {
        aged(&format!("polycopy-paper-young{i:02}.db.gz"), &format!("{} hours ago", 6 * i + 1));
    }
    aged("polycopy-paper-edge.db.gz", "29 days ago");
    aged("polycopy-paper-old.db.gz", "31 days ago");
    aged("polycopy-paper-old.config.tgz", "31 days ago");
    aged("polycopy-live-old.db.gz.age", "60 days ago");
    aged("polycopy-live-last.db.gz.age", "45 days ago");
    aged("polycopy-live-last.config.tgz", "45 days ago");
    std::fs::write(b.join("notes.txt"), "the operator's").unwrap();
    assert!(Command::new("touch").args(["-d", "90 days ago"]).arg(b.join("notes.txt")).status().unwrap().success());

    let (code, out, err) = d.script("backup.sh", &["--dir", &bdir], &[]);
    assert_eq!(code, 0, "{err}");
    let new = out.trim().to_owned();
    let all = names(&b);
    assert!(all.iter().all(|n| !n.contains("-old.")), "older than 30 days, with their checksums: {all:?}");
    let young = |all: &[String]| all.iter().filter(|n| n.contains("young") && n.ends_with(".db.gz")).count();
    assert_eq!(young(all.as_slice()), 40, "every backup of the last 30 days is kept, however many: {all:?}");
    assert_eq!(all.iter().filter(|n| n.contains("young") && n.ends_with(".sha256")).count(), 40);
    assert!(b.join("polycopy-paper-edge.db.gz").exists(), "29 days old is kept");
    for kept in ["polycopy-live-last.db.gz.age", "polycopy-live-last.config.tgz"] {
        assert!(b.join(kept).exists() && b.join(format!("{kept}.sha256")).exists(), "the last live backup: {all:?}");
    }
    assert!(b.join("notes.txt").exists(), "files that are not backups are never deleted");
    assert!(Path::new(&new).exists() && Path::new(&format!("{new}.sha256")).exists(), "{new}");

    // 7 days: 1 h ... 163 h stay (28 of them), 169 h and older go.
    let (code, _, err) = d.script("backup.sh", &["--dir", &bdir, "--keep-days", "7"], &[]);
    assert_eq!(code, 0, "{err}");
    let all = names(&b);
    assert_eq!(young(all.as_slice()), 28, "{all:?}");
    assert!(b.join("polycopy-paper-young27.db.gz").exists() && !b.join("polycopy-paper-young28.db.gz").exists());
    assert!(!b.join("polycopy-paper-edge.db.gz").exists() && !b.join("polycopy-paper-edge.db.gz.sha256").exists());
    assert!(Path::new(&new).exists(), "the first real backup is minutes old");

    // A count cap keeps the 5 newest (the 3 real ones and the 2 youngest) and warns that it cut
    // into the 30 days.
    let (code, _, err) = d.script("backup.sh", &["--dir", &bdir, "--keep-count", "5"], &[]);
    assert_eq!(code, 0, "{err}");
    let all = names(&b);
    let journals: Vec<&String> = all.iter().filter(|n| n.ends_with(".db.gz")).collect();
    assert_eq!(journals.len(), 5, "{all:?}");
    assert!(b.join("polycopy-paper-young01.db.gz").exists() && !b.join("polycopy-paper-young02.db.gz").exists());
    assert!(err.contains("younger than --keep-days 30"), "{err}");
    assert_eq!(
        all.iter().filter(|n| n.starts_with("polycopy-paper-") && n.ends_with(".config.tgz")).count(),
        3,
        "the real backups keep their settings archives: {all:?}"
    );
}

/// The audit opens every backup: all sound at first; then bit rot in one (checksum) and a truncated
/// journal behind a matching checksum in another (only the integrity check finds it) are each
/// named FAILED, the others stay ok, it exits 1 and the alert goes through the daemon's notifier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_backup_audit_when_a_backup_is_corrupted_then_names_it_and_alerts() {
    let Running { anvil, dir, d } = running(&wallets(&[(A, "a", true)], 1.0)).await;
    let url = d.http_base().await;
    let b = dir.path().join("backups");
    let bdir = b.display().to_string();
    let mut journals = Vec::new();
    for i in 1..=3u8 {
        anvil.emit(&buy(i)).await;
        wait_for(20, "the copy", async || (with_status(&d.trades(), "executed").len() == usize::from(i)).then_some(()))
            .await;
        let (code, out, err) = d.script("backup.sh", &["--dir", &bdir], &[]);
        assert_eq!(code, 0, "{err}");
        journals.push(file_name(out.trim()));
    }
    let audit = |d: &Daemon| d.script("backup_audit.sh", &["--dir", &bdir, "--url", &url], &[]);
    let (code, out, err) = audit(&d);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.lines().filter(|l| l.contains(": ok: journal sound")).count(), 3, "{out}");
    assert_eq!(out.lines().filter(|l| l.contains(": ok: settings archive")).count(), 3, "{out}");

    // Bit rot: one byte of the first backup flipped.
    let first = b.join(&journals[0]);
    let mut bytes = std::fs::read(&first).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&first, &bytes).unwrap();
    // The second: a valid gzip with a matching checksum around a truncated journal.
    let second = &journals[1];
    sh(
        &b,
        &format!(
            "gunzip -c {second} | head -c 8192 | gzip > cut.tmp && mv cut.tmp {second} && sha256sum {second} > {second}.sha256"
        ),
    );

    let (code, out, err) = audit(&d);
    assert_eq!(code, 1, "{out}{err}");
    let line = |name: &str| {
        out.lines().find(|l| l.starts_with(&format!("{name}: "))).unwrap_or_else(|| panic!("no line for {name}: {out}"))
    };
    assert!(line(&journals[0]).contains("FAILED: does not match its checksum"), "{out}");
    assert!(line(&journals[1]).contains("FAILED: integrity check failed"), "{out}");
    assert!(line(&journals[2]).contains(": ok: journal sound"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("polycopy-") && l.contains(": FAILED: ")).count(),
        2,
        "the settings archives are fine: {out}"
    );
    assert!(err.contains("backup audit: 2 of 6 backup file(s) FAILED"), "{err}");
    let alerts = wait_for(10, "the audit's alert", async || {
        let a = d.events("alert");
        a.iter()
            .any(|m| m.contains("backup audit") && m.contains(&journals[0]) && m.contains(&journals[1]))
            .then_some(a)
    })
    .await;
    assert!(!alerts.iter().any(|m| m.contains(&journals[2])), "{alerts:?}");

    // The cron job's backup (--alert) whose off-site copy fails tells the operator through the
    // daemon, naming the error, not only its log file.
    std::fs::write(dir.path().join("blocked"), "a file, not a directory").unwrap();
    let blocked = dir.path().join("blocked").join("polycopy").display().to_string();
    let (code, out, err) = d.script("backup.sh", &["--dir", &bdir, "--copy-to", &blocked, "--alert"], &[]);
    assert_eq!(code, 75, "{out}{err}");
    let alert = wait_for(10, "the backup's alert", async || {
        d.events("alert").into_iter().find(|m| m.contains("backup FAILED (exit 75)"))
    })
    .await;
    assert!(alert.contains(&format!("off-site copy to {blocked} FAILED")), "{alert}");

    // An empty directory is a failure too: nothing to restore from.
    std::fs::create_dir_all(dir.path().join("none")).unwrap();
    let none = dir.path().join("none").display().to_string();
    let (code, out, _) = d.script("backup_audit.sh", &["--dir", &none, "--no-alert"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no backup in"), "{out}");
}

/// Encrypted to an age recipient (from the environment, as cron sets it): only ciphertext and
/// checksums reach the backup directory; without the key, or with another one, restore refuses
/// and writes nothing; with it, the journal comes back sound and equal to the live one. The audit
/// checks ciphertext by checksum without the key, fully with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_encrypted_backup_when_restored_with_its_key_then_sound_and_refused_without() {
    let Running { anvil, dir, d } = running(&wallets(&[(A, "a", true)], 1.0)).await;
    for i in 1..=3u8 {
        anvil.emit(&buy(i)).await;
    }
    wait_for(20, "3 copies", async || (with_status(&d.trades(), "executed").len() == 3).then_some(())).await;
    let key = dir.path().join("backup.key");
    let recipient = age_key(&key);
    let b = dir.path().join("backups");
    let bdir = b.display().to_string();

    let (code, out, err) = d.script("backup.sh", &["--dir", &bdir], &[("BACKUP_ENCRYPT_TO", recipient.as_str())]);
    assert_eq!(code, 0, "{err}");
    let enc = out.trim().to_owned();
    assert!(enc.ends_with(".db.gz.age"), "{enc}");
    let all = names(&b);
    assert_eq!(all.len(), 4, "journal and settings, each with its checksum, no temporary leftovers: {all:?}");
    for n in &all {
        if n.ends_with(".sha256") {
            continue;
        }
        assert!(n.ends_with(".db.gz.age") || n.ends_with(".config.tgz.age"), "{n}");
        let bytes = std::fs::read(b.join(n)).unwrap();
        assert!(bytes.starts_with(b"age-encryption.org/v1"), "{n} is age ciphertext");
        sh(&b, &format!("sha256sum --status -c {n}.sha256"));
    }
    assert!(
        names(dir.path()).iter().all(|n| !n.starts_with(".polycopy-tmp")),
        "the plaintext working copy is gone: {:?}",
        names(dir.path())
    );

    // No key: refused, nothing written.
    let (code, _, err) = d.script("restore.sh", &[&enc, "--db", "restored.db", "--no-service"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("encrypted with age: pass --identity"), "{err}");
    assert!(!dir.path().join("restored.db").exists());
    // Another key: refused, nothing written.
    let other = dir.path().join("other.key");
    age_key(&other);
    let other_s = other.display().to_string();
    let (code, _, err) =
        d.script("restore.sh", &[&enc, "--db", "restored.db", "--no-service", "--identity", &other_s], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not the key this backup was encrypted to"), "{err}");
    assert!(!dir.path().join("restored.db").exists());
    // The key: a sound journal, the same as the live one.
    let key_s = key.display().to_string();
    let (code, _, err) =
        d.script("restore.sh", &[&enc, "--db", "restored.db", "--no-service", "--identity", &key_s], &[]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = d.run_cli(&["db-check", "--file", "restored.db"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(trades_of(&d, "restored.db"), trades_of(&d, "journal.db"));
    assert_eq!(trades_of(&d, "restored.db").len(), 3);

    let (code, out, err) = d.script("backup_audit.sh", &["--dir", &bdir, "--no-alert"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.lines().filter(|l| l.contains(": ok: checksum only")).count(), 2, "{out}");
    let (code, out, err) = d.script("backup_audit.sh", &["--dir", &bdir, "--no-alert", "--identity", &key_s], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.lines().any(|l| l.contains(".db.gz.age: ok: journal sound")), "{out}");
    assert!(out.lines().any(|l| l.contains(".config.tgz.age: ok: settings archive")), "{out}");
}

/// The settings file edited with a mistake while the daemon trades on its old settings: check-config
/// reports the problem and still names the mode, the journal, its alert token and the targets
/// file, so the cron backup goes on (it stopped, and every script's alert with it).
#[test]
fn test_backup_when_the_settings_file_was_edited_wrong_then_the_journal_is_still_backed_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = idle(dir.path());
    // A mistake saved while the daemon trades on its old settings (not restarted).
    d.set("risk", "max_order_usd = 5");
    let (code, out, _) = d.run_cli(&["check-config", "--json", "--offline"]);
    assert_eq!(code, 78, "{out}");
    let c: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(c["ok"], false);
    // The scripts still learn where the journal, its alert token and the targets are.
    assert_eq!(c["mode"], "paper", "{c}");
    assert!(c["db_path"].as_str().is_some_and(|p| p.ends_with("journal.db")), "{c}");
    assert!(c["alert_token_file"].is_string(), "{c}");
    assert!(c["wallets_path"].as_str().is_some_and(|p| p.ends_with("wallets.json")), "{c}");
    let b = dir.path().join("backups");
    let (code, out, err) = d.script("backup.sh", &["--dir", &b.display().to_string()], &[]);
    assert_eq!(code, 0, "backups go on: {err}");
    assert!(Path::new(out.trim()).exists(), "{out}");
    assert_eq!(c["settings_valid"], false, "{c}");
    // The settings file as it is now is saved too (the mistake included: it is what runs next).
    let archive = out.trim().replace(".db.gz", ".config.tgz");
    let listing = sh(&b, &format!("tar -tzf {archive}"));
    assert!(listing.lines().any(|l| l == "settings-1.toml"), "{listing}");
}

/// The settings file and wallets.json are saved with the journal (never a secrets file), can be
/// extracted for reading (--config-to) and put back in place (--with-config), the edited ones kept
/// aside.
#[test]
fn test_backup_when_taken_then_settings_and_wallets_are_saved_and_restorable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = idle(dir.path());
    std::fs::write(dir.path().join("polycopy.env"), "PRIVATE_KEY=SECRET-NEVER-BACKED-UP\n").unwrap();
    let settings = std::fs::read_to_string(dir.path().join("polycopy.toml")).unwrap();
    let wallets_json = std::fs::read_to_string(dir.path().join("wallets.json")).unwrap();
    let b = dir.path().join("backups");
    let bdir = b.display().to_string();

    let (code, out, err) = d.script("backup.sh", &["--dir", &bdir], &[]);
    assert_eq!(code, 0, "{err}");
    let journal = out.trim().to_owned();
    let archive = journal.replace(".db.gz", ".config.tgz");
    assert!(Path::new(&format!("{archive}.sha256")).exists(), "{:?}", names(&b));
    assert_eq!(std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777, 0o600);
    let listing = sh(&b, &format!("tar -tzf {archive}"));
    let mut entries: Vec<&str> = listing.lines().collect();
    entries.sort_unstable();
    assert_eq!(entries, ["MANIFEST", "settings-1.toml", "wallets.json"]);
    let content = sh(&b, &format!("tar -xzOf {archive}"));
    assert!(content.contains(&wallets_json) && !content.contains("SECRET"), "{content}");

    // The operator edits both files; the saved ones can be read...
    std::fs::write(dir.path().join("wallets.json"), "{\"wallets\": []}").unwrap();
    std::fs::write(dir.path().join("polycopy.toml"), format!("{settings}\n# edited\n")).unwrap();
    let (code, _, err) = d.script("restore.sh", &[&journal, "--config-to", "saved"], &[]);
    assert_eq!(code, 0, "{err}");
    let saved = dir.path().join("saved");
    assert_eq!(std::fs::read_to_string(saved.join("settings-1.toml")).unwrap(), settings);
    assert_eq!(std::fs::read_to_string(saved.join("wallets.json")).unwrap(), wallets_json);
    let manifest = std::fs::read_to_string(saved.join("MANIFEST")).unwrap();
    assert!(manifest.lines().any(|l| l.starts_with("wallets.json\t/") && l.ends_with("/wallets.json")), "{manifest}");
    assert!(!dir.path().join("restored.db").exists(), "--config-to touches no journal");

    // ...and put back, with the journal.
    let (code, _, err) =
        d.script("restore.sh", &[&journal, "--db", "restored.db", "--no-service", "--with-config"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(dir.path().join("polycopy.toml")).unwrap(), settings);
    assert_eq!(std::fs::read_to_string(dir.path().join("wallets.json")).unwrap(), wallets_json);
    let all = names(dir.path());
    assert!(all.iter().any(|n| n.starts_with("wallets.json.before-restore-")), "{all:?}");
    assert!(all.iter().any(|n| n.starts_with("polycopy.toml.before-restore-")), "{all:?}");
    let (code, out, _) = d.run_cli(&["db-check", "--file", "restored.db"]);
    assert_eq!(code, 0, "{out}");

    // A settings archive whose wallets.json is a link to the secrets file (the backup directory is
    // the service user's, checksums and all): refused, nothing copied through the link.
    let forged = dir.path().join("forged");
    std::fs::create_dir(&forged).unwrap();
    let env_file = dir.path().join("polycopy.env");
    sh(&forged, &format!("tar -xzf {archive} && rm wallets.json && ln -s {} wallets.json", env_file.display()));
    sh(
        &forged,
        &format!(
            "tar -czf {archive} MANIFEST settings-1.toml wallets.json && cd {bdir} && \
             sha256sum $(basename {archive}) > $(basename {archive}).sha256"
        ),
    );
    let before = std::fs::read_to_string(dir.path().join("wallets.json")).unwrap();
    for args in [
        vec![journal.as_str(), "--config-to", "forged-out"],
        vec![journal.as_str(), "--db", "r2.db", "--no-service", "--with-config"],
    ] {
        let (code, out, err) = d.script("restore.sh", &args, &[]);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(err.contains("holds 'wallets.json', which is not a plain file"), "{err}");
        assert!(!out.contains("SECRET") && !err.contains("SECRET"), "{out}{err}");
    }
    assert_eq!(std::fs::read_to_string(dir.path().join("wallets.json")).unwrap(), before);
    assert!(!dir.path().join("forged-out/wallets.json").exists());

    // A server whose settings trade the other mode (a new server's paper settings, a live backup):
    // the journal would land where that mode's journal is read, so the settings must go first.
    d.set_top("mode = \"live\"");
    let live_settings = std::fs::read_to_string(dir.path().join("polycopy.toml")).unwrap();
    let (code, _, err) = d.script(
        "restore.sh",
        &[&journal, "--db", "other.db", "--no-service", "--with-config"],
        &[("ALLOW_OTHER_MODE", "1")],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Put the saved settings back first") && err.contains("--config-to DIR"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.path().join("polycopy.toml")).unwrap(), live_settings, "untouched");
    assert!(!dir.path().join("other.db").exists(), "no journal restored");
    // Over the daemon's own journal, never (its daemon would refuse it); elsewhere, to read it.
    let own = std::fs::read(dir.path().join("journal.db")).unwrap();
    let (code, _, err) = d.script("restore.sh", &[&journal, "--no-service"], &[("ALLOW_OTHER_MODE", "1")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("its daemon would refuse the paper journal"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("journal.db")).unwrap(), own, "untouched");
    let (code, _, err) =
        d.script("restore.sh", &[&journal, "--db", "read.db", "--no-service"], &[("ALLOW_OTHER_MODE", "1")]);
    assert_eq!(code, 0, "{err}");
    assert!(dir.path().join("read.db").exists());
}

/// --copy-to a local directory (created) lands the whole set, checksums included, and so does
/// BACKUP_COPY_TO; a destination that cannot be written exits 75 with a clear line and keeps the
/// local backup.
#[test]
fn test_backup_copy_to_when_local_dir_then_the_set_lands_and_a_failed_copy_keeps_the_local_one() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = idle(dir.path());
    let b = dir.path().join("backups");
    let bdir = b.display().to_string();
    let off = dir.path().join("offsite").join("polycopy");
    let off_s = off.display().to_string();

    let (code, out, err) = d.script("backup.sh", &["--dir", &bdir, "--copy-to", &off_s], &[]);
    assert_eq!(code, 0, "{err}");
    let name = file_name(out.trim());
    let config = name.replace(".db.gz", ".config.tgz");
    for n in [name.clone(), format!("{name}.sha256"), config.clone(), format!("{config}.sha256")] {
        assert_eq!(std::fs::read(off.join(&n)).unwrap(), std::fs::read(b.join(&n)).unwrap(), "{n}");
    }
    assert_eq!(std::fs::metadata(&off).unwrap().permissions().mode() & 0o777, 0o700);
    sh(&off, &format!("sha256sum --status -c {name}.sha256"));

    // From the environment, as a cron line could set it...
    let (code, out, err) = d.script("backup.sh", &["--dir", &bdir], &[("BACKUP_COPY_TO", off_s.as_str())]);
    assert_eq!(code, 0, "{err}");
    assert!(off.join(file_name(out.trim())).exists(), "{:?}", names(&off));
    // ...or from backup.conf beside the settings, which is then saved with them.
    let second = dir.path().join("second");
    std::fs::write(dir.path().join("backup.conf"), format!("BACKUP_COPY_TO=\"{}\"\n", second.display())).unwrap();
    let (code, out, err) = d.script("backup.sh", &["--dir", &bdir], &[]);
    assert_eq!(code, 0, "{err}");
    let name = file_name(out.trim());
    assert!(second.join(&name).exists() && second.join(format!("{name}.sha256")).exists(), "{err}");
    let listing = sh(&b, &format!("tar -tzf {}", name.replace(".db.gz", ".config.tgz")));
    assert!(listing.lines().any(|l| l == "backup.conf"), "{listing}");

    std::fs::write(dir.path().join("blocked"), "a file, not a directory").unwrap();
    let blocked = dir.path().join("blocked").join("polycopy").display().to_string();
    let (code, out, err) = d.script("backup.sh", &["--dir", &bdir, "--copy-to", &blocked], &[]);
    assert_eq!(code, 75, "{out}{err}");
    assert!(err.contains(&format!("off-site copy to {blocked} FAILED")), "{err}");
    assert!(err.contains("the local backup is kept"), "{err}");
    let local = out.trim();
    assert!(Path::new(local).exists() && Path::new(&format!("{local}.sha256")).exists(), "{local}");
}

/// The backup scripts explain themselves, and say the secrets file is never backed up.
#[test]
fn test_backup_scripts_when_asked_for_help_then_explain_themselves() {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    for s in ["backup.sh", "restore.sh", "backup_audit.sh"] {
        let out = Command::new("bash").arg(scripts.join(s)).arg("--help").output().unwrap();
        let (code, out, err) = output(out);
        assert_eq!(code, 0, "{s}: {err}");
        assert!(out.contains("Usage:"), "{s}: {out}");
        let text = std::fs::read_to_string(scripts.join(s)).unwrap();
        assert!(text.contains("set -euo pipefail"), "{s}");
    }
    let out = Command::new("bash").arg(scripts.join("backup.sh")).arg("--help").output().unwrap();
    let (_, out, _) = output(out);
    assert!(out.contains("NOT backed up: the secrets file polycopy.env"), "{out}");
    let out = Command::new("bash").arg(scripts.join("backup.sh")).args(["--keep-days", "0"]).output().unwrap();
    assert_eq!(output(out).0, 64);
}

/// Run as root on a journal that belongs to the service's user, maintenance runs as that user: a
/// link that user planted in the journal's archive directory (where root used to truncate, chmod
/// and chown by path) sends none of root's writes elsewhere. The binary itself, run as root on
/// that journal, refuses and says how to run it.
#[test]
fn test_maintenance_when_run_as_root_then_as_the_journals_owner_and_a_planted_link_goes_nowhere() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let Some((dir, home, d)) = a_service_users_home() else { return };
    {
        let c = rusqlite::Connection::open(home.join("journal.db")).unwrap();
        c.execute("INSERT INTO events (at_ms, kind, message) VALUES (0, 'x', 'old')", []).unwrap();
    }
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "root's").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let archive = home.join("journal.db.archive");
    std::fs::create_dir(&archive).unwrap();
    let (code, _, err) = output(Command::new("chown").args(["-R", "65534:65534"]).arg(&home).output().unwrap());
    assert_eq!(code, 0, "{err}");
    // Planted by the service's user where the month's archive is written.
    let link = archive.join(".1970-01.db.gz.tmp");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let (code, _, err) = output(Command::new("chown").args(["-h", "65534:65534"]).arg(&link).output().unwrap());
    assert_eq!(code, 0, "{err}");
    let untouched = || {
        let m = std::fs::metadata(&victim).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o777), (0, 0o600));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's");
    };

    let (code, _, err) = d.run_cli(&["maintenance", "--prune-days", "30"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("run as the journal's owner (nobody), not as root"), "{err}");
    untouched();
    let (code, out, err) = d.script("maintenance.sh", &["--prune-days", "30"], &[]);
    assert!(err.contains("maintaining the journal as nobody, the journal's owner"), "{err}");
    assert_ne!(code, 0, "the link is not the service user's to write through: {out}{err}");
    untouched();
    // Without the link, the archive is written, the service user's.
    std::fs::remove_file(&link).unwrap();
    let (code, out, err) = d.script("maintenance.sh", &["--prune-days", "30"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::metadata(archive.join("1970-01.db.gz")).unwrap().uid(), 65_534);
    untouched();
}

/// `backup --out` never overwrites a file (naming the journal, it swapped a snapshot in under the
/// daemon), and `vet --chart` never empties one that is not a chart (naming the journal, it
/// truncated it before reading the chain).
#[test]
fn test_backup_and_vet_when_pointed_at_the_journal_then_refused_and_it_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let d = idle(dir.path());
    let journal = dir.path().join("journal.db");
    let before = std::fs::read(&journal).unwrap();
    let (code, _, err) = d.run_cli(&["backup", "--out", "journal.db"]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("a backup never overwrites a file"), "{err}");
    let (code, out, err) = d.run_cli(&["vet", "0x1111111111111111111111111111111111111111", "--chart", "journal.db"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("is not a PNG chart"), "{err}");
    assert_eq!(std::fs::read(&journal).unwrap(), before, "untouched");
    let (code, _, err) = d.run_cli(&["backup", "--out", "fresh.db"]);
    assert_eq!(code, 0, "{err}");
    assert!(!dir.path().join("fresh.partial").exists());
}
