//! The operator scripts, run for real: backup while the daemon writes, restore, retention, refusal
//! of corrupt backups, health checks, and maintenance.

use crate::support::*;
use alloy::primitives::{Address, address};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt as _;

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

/// A backup taken while the daemon journals a stream of fills restores into a fresh, sound journal
/// consistent with the live one; a quiet backup matches it exactly; corrupt backups are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_backup_when_daemon_writing_then_restores_consistent_journal() {
    let Running { anvil, dir, d } = running(&wallets(&[(A, "a", true)], 1.0)).await;
    let backups = dir.path().join("backups");
    let bdir = backups.display().to_string();

    // Back up while fills stream in.
    let mut backup = None;
    for i in 1..=40u8 {
        anvil.emit(&buy(i)).await;
        if i == 20 {
            wait_for(20, "some journaled fills", async || (d.trades().len() >= 10).then_some(())).await;
            backup = Some(d.script_cmd("backup.sh", &["--dir", &bdir], &[]).spawn().unwrap());
        }
    }
    let (code, out, err) = output(backup.unwrap().wait_with_output().unwrap());
    assert_eq!(code, 0, "{err}");
    let during = out.trim().to_owned();
    assert!(std::path::Path::new(&format!("{during}.sha256")).exists());
    wait_for(30, "all 40 copies", async || (with_status(&d.trades(), "executed").len() == 40).then_some(())).await;

    let (code, _, err) = d.script("restore.sh", &[&during, "--db", "restored-during.db", "--no-service"], &[]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = d.run_cli(&["db-check", "--file", "restored-during.db"]);
    assert_eq!(code, 0, "{out}");
    let live = trades_of(&d, "journal.db");
    let snap = trades_of(&d, "restored-during.db");
    assert!(!snap.is_empty() && snap.len() <= live.len(), "{} backed up, {} live", snap.len(), live.len());
    for row in &snap {
        let now = live.iter().find(|r| r["fill"] == row["fill"]).expect("every backed-up fill is in the live journal");
        assert!(row["status"] == now["status"] || row["status"] == "pending", "{row} vs {now}");
    }

    let (code, out, err) = d.script("backup.sh", &["--dir", &bdir], &[]);
    assert_eq!(code, 0, "{err}");
    let quiet = out.trim().to_owned();
    let (code, _, err) = d.script("restore.sh", &[&quiet, "--db", "restored-quiet.db", "--no-service"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(trades_of(&d, "restored-quiet.db"), trades_of(&d, "journal.db"));
    restore_over_another_daemons_journal(&d, &quiet);

    // A flipped byte: the checksum refuses it and nothing is touched.
    let mut bytes = std::fs::read(&quiet).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&quiet, &bytes).unwrap();
    let (code, _, err) = d.script("restore.sh", &[&quiet, "--db", "restored-quiet.db", "--no-service"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("does not match its checksum"), "{err}");
    // A well-formed archive with a matching checksum whose content is not a sound journal.
    let fake = backups.join("polycopy-fake.db.gz");
    let gz = std::process::Command::new("sh").arg("-c").arg(format!("head -c 8192 /dev/urandom | gzip > {0} && cd {1} && sha256sum polycopy-fake.db.gz > polycopy-fake.db.gz.sha256", fake.display(), backups.display())).status().unwrap();
    assert!(gz.success());
    let (code, _, err) = d.script("restore.sh", &[fake.to_str().unwrap(), "--db", "x.db", "--no-service"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("integrity"), "{err}");
    assert!(!dir.path().join("x.db").exists());
}

/// `--db` naming a journal another daemon runs on (another instance's, its `--instance`
/// forgotten): refused while that daemon holds its lock, nothing touched; once it is stopped, the
/// journal is restored halted, as the configured one is, since a daemon will start on it.
fn restore_over_another_daemons_journal(d: &Daemon, backup: &str) {
    let (other, lock) = (d.dir.join("other.db"), d.dir.join("other.db.lock"));
    std::fs::write(&other, b"the other daemon's journal").unwrap();
    std::fs::write(&lock, b"").unwrap();
    // In a group of its own: flock's child holds the lock too, and both must go to free it.
    let mut holder = std::os::unix::process::CommandExt::process_group(
        std::process::Command::new("flock").arg("-x").arg(&lock).args(["-c", "echo held; sleep 60"]),
        0,
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "held");
    let (code, _, err) = d.script("restore.sh", &[backup, "--db", "other.db", "--no-service"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("a daemon is still running on"), "{err}");
    assert_eq!(std::fs::read(&other).unwrap(), b"the other daemon's journal", "nothing touched");
    let group = format!("-{}", holder.id());
    assert!(std::process::Command::new("kill").args(["-KILL", "--", &group]).status().unwrap().success());
    holder.wait().unwrap();
    let (code, _, err) = d.script("restore.sh", &[backup, "--db", "other.db", "--no-service"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("HALTED in the restored journal"), "{err}");
    let (code, out, err) = output(d.cmd_db("other.db", &["status", "--json"]).output().unwrap());
    assert_eq!(code, 0, "{out}{err}");
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["breaker"]["tripped"], true, "{st}");
}

/// Retention deletes exactly the expired backups: by age, then by count.
#[test]
fn test_backup_retention_when_old_files_then_exactly_the_expired_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::new(dir.path(), "http://127.0.0.1:1", "", &wallets(&[(A, "a", true)], 1.0));
    drop(polycopy::store::Store::open(&dir.path().join("journal.db")).unwrap());
    let b = dir.path().join("b");
    std::fs::create_dir_all(&b).unwrap();
    let touch = |name: &str, age: &str| {
        for f in [name.to_owned(), format!("{name}.sha256")] {
            std::fs::write(b.join(&f), "x").unwrap();
            assert!(std::process::Command::new("touch").args(["-d", age]).arg(b.join(&f)).status().unwrap().success());
        }
    };
    touch("polycopy-paper-old1.db.gz", "20 days ago");
    touch("polycopy-paper-old2.db.gz", "15 days ago");
    touch("polycopy-paper-recent1.db.gz", "2 days ago");
    touch("polycopy-paper-recent2.db.gz", "1 day ago");
    let bdir = b.display().to_string();
    let (code, _, err) = d.script("backup.sh", &["--dir", &bdir, "--keep-days", "14", "--keep-count", "10"], &[]);
    assert_eq!(code, 0, "{err}");
    let list = || {
        let mut v: Vec<String> = std::fs::read_dir(&b)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".gz"))
            .collect();
        v.sort();
        v
    };
    let after_age = list();
    assert_eq!(after_age.len(), 3, "{after_age:?}");
    assert!(after_age.iter().all(|n| !n.contains("old")));
    assert!(!b.join("polycopy-paper-old1.db.gz.sha256").exists());
    let (code, out, err) = d.script("backup.sh", &["--dir", &bdir, "--keep-days", "14", "--keep-count", "2"], &[]);
    assert_eq!(code, 0, "{err}");
    let kept = list();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.iter().all(|n| !n.contains("recent")), "the two newest are the two real backups: {kept:?} ({out})");
}

/// health_check.sh: 0 against a healthy daemon; non-zero naming the check when the breaker is
/// tripped, when the node is gone (the feed stalls), and when the daemon is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_health_check_when_things_break_then_names_the_check() {
    let Running { anvil, dir, mut d } = running(&wallets(&[(A, "a", true)], 1.0)).await;
    let url = d.http_base().await;
    let bdir = dir.path().join("backups").display().to_string();
    let (code, _, err) = d.script("backup.sh", &["--dir", &bdir], &[]);
    assert_eq!(code, 0, "{err}");
    let check = |d: &Daemon, extra: &[&str]| {
        let mut args = vec!["--url", url.as_str(), "--backup-dir", bdir.as_str(), "--min-disk-mb", "1"];
        args.extend_from_slice(extra);
        d.script("health_check.sh", &args, &[])
    };
    let (code, out, err) = check(&d, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "healthy");
    // Without --url: the settings say port 0 (only the daemon knows its port, as when an override
    // cron cannot read moved it), and the running daemon says where it listens.
    let (code, out, err) = d.script("health_check.sh", &["--backup-dir", &bdir, "--min-disk-mb", "1"], &[]);
    assert_eq!((code, out.trim()), (0, "healthy"), "{err}");

    let (code, out, _) = check(&d, &["--backup-dir", "/nonexistent"]);
    assert_eq!(code, 1);
    assert!(out.contains("backup: no backup"), "{out}");

    d.run_cli(&["halt", "--reason", "test"]);
    let (code, out, _) = wait_for(5, "breaker alert", async || {
        let r = check(&d, &[]);
        (r.0 != 0).then_some(r)
    })
    .await;
    assert_eq!(code, 1);
    assert!(out.contains("breaker: ") && out.contains("tripped"), "{out}");
    // The alert went through the daemon's notifier (journaled a moment after the script's answer).
    wait_for(10, "the breaker alert journaled", async || {
        d.events("alert").into_iter().find(|a| a.contains("health check: UNHEALTHY") && a.contains("breaker"))
    })
    .await;
    d.run_cli(&["resume"]);
    wait_for(5, "healthy again", async || (check(&d, &[]).0 == 0).then_some(())).await;

    drop(anvil);
    let (code, out, _) = wait_for(15, "chain alert", async || {
        let r = check(&d, &[]);
        (r.0 != 0).then_some(r)
    })
    .await;
    assert_eq!(code, 1);
    assert!(out.contains("chain: unhealthy: no successful chain read"), "{out}");

    d.kill9();
    let (code, out, _) = check(&d, &[]);
    assert_eq!(code, 2);
    assert!(out.contains("process: daemon down"), "{out}");
    // Another instance answers healthy on the address checked: the journal has no daemon, and
    // that is what is said.
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_url = format!("http://{}", other.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut c, _)) = other.accept().await {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf).await;
            let body = r#"{"status":"healthy","checks":[]}"#;
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = c.write_all(format!("{head}{body}").as_bytes()).await;
        }
    });
    let args = ["--url", other_url.as_str(), "--backup-dir", bdir.as_str(), "--min-disk-mb", "1"];
    let (code, out, err) = d.script("health_check.sh", &args, &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("process: no daemon runs on the journal"), "{out}");
}

/// maintenance.sh archives then prunes fills never copied and events older than N days, keeps
/// every copy (positions, P&L and reports read them: the report is the same before and after), works
/// on a live-shaped journal (orders reference intents), and with the database busy refuses to VACUUM
/// (exit 75) instead of blocking the daemon; with the daemon running it never VACUUMs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_maintenance_when_old_rows_then_pruned_and_busy_db_is_not_vacuumed() {
    let Running { anvil, dir, mut d } = running(&wallets(&[(A, "a", true)], 1.0)).await;
    for i in 1..=2u8 {
        anvil.emit(&buy(i)).await;
    }
    // Two SELLs of tokens we never bought: refused (no_position), never copied.
    for i in 3..=4u8 {
        anvil.emit(&Fill::v2(i, A, C, false, u64::from(i), 10 * ONE, 5 * ONE)).await;
    }
    wait_for(20, "4 decisions", async || {
        (d.trades().iter().all(|r| r["status"] != "pending") && d.trades().len() == 4).then_some(())
    })
    .await;
    assert!(d.stop().success());
    let report = |d: &Daemon| {
        let (code, out, err) = d.run_cli(&["report", "weekly", "--json"]);
        assert_eq!(code, 0, "{err}");
        let mut v: Value = serde_json::from_str(&out).unwrap();
        v["from_ms"] = Value::Null;
        v["to_ms"] = Value::Null;
        v
    };
    let db = dir.path().join("journal.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        let old = store_now_ms() - 40 * 86_400_000;
        c.execute("UPDATE fills SET seen_at_ms = ?1", [old]).unwrap();
        c.execute("UPDATE events SET at_ms = ?1", [old]).unwrap();
        // As a live journal has them: an order row for a refused fill references its intent.
        c.execute_batch(
            "INSERT INTO intents (fill_id, token_id, side, shares, limit_price, target_price, order_type, created_at_ms) \
             SELECT id, token_id, side, shares, price, price, 'FAK', 0 FROM fills WHERE status = 'rejected' \
             AND id NOT IN (SELECT fill_id FROM intents); \
             INSERT INTO orders (fill_id, order_id, signed, status, created_at_ms, updated_at_ms) \
             SELECT fill_id, '0x' || fill_id, '{}', 'rejected', 0, 0 FROM intents WHERE fill_id IN \
             (SELECT id FROM fills WHERE status = 'rejected');",
        )
        .unwrap();
    }
    let before = report(&d);
    // (Run as root on a journal of the service's user, it runs as that user:
    // backups::test_maintenance_when_run_as_root_then_as_the_journals_owner_and_a_planted_link_goes_nowhere.)
    let (code, out, err) = d.script("maintenance.sh", &["--prune-days", "30"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("pruned 2 fills never copied"), "{out}");
    assert!(out.contains("vacuum: done"), "{out}");
    let left = d.trades();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|r| r["status"] == "executed"), "{left:?}");
    assert_eq!(report(&d), before, "pruning changes no figure a report shows");
    // One gzip-compressed SQLite file for the month the rows are from, owner-only.
    let month = chrono_month(store_now_ms() - 40 * 86_400_000);
    let gz = dir.path().join(format!("journal.db.archive/{month}.db.gz"));
    assert!(out.contains(&format!("{month}.db.gz")), "{out}");
    assert_eq!(std::fs::metadata(&gz).unwrap().permissions().mode() & 0o777, 0o600);
    let counts = |gz: &std::path::Path| {
        let plain = dir.path().join("archive-check.db");
        let (code, _, err) = output(
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("gunzip -c '{}' > '{}'", gz.display(), plain.display()))
                .output()
                .unwrap(),
        );
        assert_eq!(code, 0, "{err}");
        let archive = rusqlite::Connection::open(&plain).unwrap();
        let n = |t: &str| archive.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get::<_, i64>(0)).unwrap();
        (n("fills"), n("orders"), n("events"))
    };
    let (fills, orders, events) = counts(&gz);
    assert_eq!((fills, orders), (2, 2), "archived before deletion");
    assert!(events > 0);
    // A second prune of more rows of that month appends to the same file, without duplicates.
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute(
            "INSERT INTO events (at_ms, kind, message) VALUES (?1, 'x', 'late')",
            [store_now_ms() - 40 * 86_400_000],
        )
        .unwrap();
    }
    let (code, out, err) = d.script("maintenance.sh", &["--prune-days", "30", "--no-vacuum"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(counts(&gz), (2, 2, events + 1), "appended once: {out}");

    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("BEGIN IMMEDIATE; INSERT INTO events (at_ms, kind, message) VALUES (0, 'x', 'busy')").unwrap();
    let (code, out, _) = d.script("maintenance.sh", &["--prune-days", "30"], &[]);
    assert_eq!(code, 75, "{out}");
    assert!(out.contains("skipped"), "{out}");
    c.execute_batch("ROLLBACK").unwrap();
    // With the daemon running, the weekly run prunes but never VACUUMs: the rewrite would hold
    // the daemon's writes for as long as it takes.
    d.start();
    d.wait_live().await;
    let (code, out, err) = d.script("maintenance.sh", &["--prune-days", "30"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("pruned") && out.contains("skipped while the daemon"), "{out}");
    assert!(!out.contains("vacuum: done"), "{out}");
    assert!(d.stop().success());
}

fn store_now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// "YYYY-MM" (UTC) of a unix ms time, as the archive names its files.
fn chrono_month(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}")
}
