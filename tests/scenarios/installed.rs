//! Live mode as installed and operated: a staged install (`install.sh --root`), the daemon started
//! exactly as its unit starts it (ExecStart, WorkingDirectory, EnvironmentFile) in live mode against
//! the fake CLOB, and every documented operator command run from another directory with a clean
//! environment. Each must act on the live journal of the daemon that trades.

use std::path::Path;

use crate::support::clob::{FakeClob, Token};
use crate::support::http::http_get;
use crate::support::installed::{Installed, clean};
use crate::support::live::{A, KEY, SIGNER, STD_TOKEN, buy};
use crate::support::*;
use serde_json::Value;

/// The running live install and what it talks to (dropped daemon first).
struct LiveInstall {
    inst: Installed,
    clob: FakeClob,
    anvil: Anvil,
    /// Where the operator's shell is: not the service's working directory.
    elsewhere: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

async fn live_install() -> LiveInstall {
    live_install_with(false).await
}

/// [`live_install`], with a `control_socket` set in the settings when `shared_socket` (one path
/// for both modes, so the daemon answering there is the one that trades, whatever its mode).
async fn live_install_with(shared_socket: bool) -> LiveInstall {
    let anvil = Anvil::start().await;
    let clob = FakeClob::start(SIGNER).await;
    clob.token(STD_TOKEN, Token::open(false));
    let dir = tempfile::tempdir().unwrap();
    let mut inst = Installed::stage(&dir.path().join("root"), None);
    inst.edit("mode = \"paper\"", "mode = \"live\"");
    inst.fast();
    inst.set(Some("live"), "request_timeout_ms = 1500");
    // Probed every 2 s, so a revoked key shows within seconds.
    inst.set(Some("health"), "clob_stale_s = 8");
    if shared_socket {
        inst.set(None, &format!("control_socket = {:?}", inst.state().join("polycopy.sock").display().to_string()));
    }
    let w = wallets(&[(A, "whale", true)], 0.1);
    std::fs::write(inst.root.join("etc/polycopy/wallets.json"), w.to_string()).unwrap();
    inst.env(&[
        ("POLYGON_RPC_URL", &anvil.http_url()),
        ("PAPER_TRADING", "false"),
        ("PRIVATE_KEY", KEY),
        ("CLOB_HOST", &clob.url),
        ("GEOBLOCK_URL", &clob.url),
        ("GAMMA_URL", &clob.url),
        ("RUST_LOG", "info,polycopy=debug"),
    ]);
    inst.start();
    inst.wait_live().await;
    LiveInstall { inst, clob, anvil, elsewhere: tempfile::tempdir().unwrap(), _dir: dir }
}

impl LiveInstall {
    /// One copy made live, then the settings file switched to paper and the service not
    /// restarted: `status` shows the live daemon that still trades, and `trades` its copy.
    async fn copied_then_switched_to_paper(&self) {
        self.anvil.emit(&buy(1, STD_TOKEN)).await;
        self.decided(1).await;
        self.inst.edit("mode = \"live\"", "mode = \"paper\"");
        let (code, out, err) = self.cli(&["status", "--json"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(err.contains("the daemon that trades") && err.contains("runs live"), "{err}");
        let st: Value = serde_json::from_str(&out).unwrap();
        assert!(st["journal"].as_str().unwrap().ends_with("polycopy-live.db"), "{st}");
        assert_eq!((st["mode"].as_str(), st["daemon"]["running"].as_bool()), (Some("live"), Some(true)), "{st}");
        assert_eq!(self.trades().len(), 1, "the live copy, not an empty paper journal");
    }

    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        self.inst.cli(self.elsewhere.path(), args)
    }

    fn script(&self, name: &str, args: &[&str]) -> (i32, String, String) {
        self.inst.script(self.elsewhere.path(), name, args)
    }

    fn trades(&self) -> Vec<Value> {
        let (code, out, err) = self.cli(&["trades", "--json"]);
        assert_eq!(code, 0, "{out}{err}");
        let mut v: Vec<Value> = serde_json::from_str(&out).unwrap();
        v.reverse();
        v
    }

    fn live_db(&self) -> std::path::PathBuf {
        self.inst.state().join("polycopy-live.db")
    }

    /// A target's BUY now is refused as halted, read from the live journal itself (`trades` refuses
    /// an invalid settings file, as it should), and nothing reaches the CLOB.
    async fn next_copy_refused_as_halted(&self) {
        self.anvil.emit(&buy(1, STD_TOKEN)).await;
        let reason = wait_for(20, "the copy decided", async || {
            let c = rusqlite::Connection::open(self.live_db()).ok()?;
            c.query_row("SELECT reason FROM fills WHERE status != 'pending'", [], |r| r.get::<_, String>(0)).ok()
        })
        .await;
        assert_eq!(reason, "halted");
        assert!(self.clob.posts().is_empty(), "nothing reached the CLOB while halted");
    }

    async fn decided(&self, n: usize) -> Vec<Value> {
        wait_for(20, "the copies to be decided", async || {
            let t = self.trades();
            (t.len() == n && t.iter().all(|r| r["status"] != "pending")).then_some(t)
        })
        .await
    }

    fn nothing_in(&self, dir: &Path) {
        let n = std::fs::read_dir(dir).unwrap().count();
        assert_eq!(n, 0, "a command created files in the operator's directory");
    }
}

/// `polycopy halt` from another directory with a clean environment stops the live daemon (a
/// following target fill sends nothing to the CLOB), and `resume` restarts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_live_when_halted_from_elsewhere_then_nothing_sent_until_resume() {
    let l = live_install().await;
    let (code, out, err) = l.cli(&["halt", "--reason", "operator check"]);
    assert_eq!(code, 0, "the live daemon acknowledges: {out}{err}");
    assert!(out.contains("live daemon") && out.contains("polycopy-live.db"), "{out}");
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    let t = l.decided(1).await;
    assert_eq!((t[0]["status"].as_str(), t[0]["reason"].as_str()), (Some("rejected"), Some("halted")), "{t:?}");
    assert!(l.clob.posts().is_empty(), "nothing reached the CLOB while halted");

    let (code, out, err) = l.cli(&["resume"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("resumed"), "{out}");
    l.anvil.emit(&buy(2, STD_TOKEN)).await;
    let t = l.decided(2).await;
    assert_eq!(t[1]["status"], "executed", "{t:?}");
    assert_eq!(l.clob.posts().len(), 1);
    l.nothing_in(l.elsewhere.path());
    assert!(!l.inst.state().join("polycopy-paper.db").exists(), "no paper journal appeared");
}

/// Mid-incident the operator has already switched the file back to paper and mistyped a key, and
/// the live daemon still trades on the settings it started with: `halt` reaches that daemon,
/// saying so, rather than refusing or writing to the paper journal; `resume` is refused there
/// unless the live journal is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_live_when_the_file_says_paper_and_is_invalid_then_halt_still_reaches_the_live_daemon() {
    let l = live_install().await;
    l.inst.edit("mode = \"live\"", "mode = \"paper\"");
    l.inst.set(Some("risk"), "max_ordr_usdc = 5");
    let (code, out, err) = l.cli(&["halt", "--reason", "incident"]);
    assert_eq!(code, 0, "the live daemon acknowledges: {out}{err}");
    assert!(out.contains("live daemon") && out.contains("polycopy-live.db"), "{out}");
    assert!(err.contains("max_ordr_usdc") && err.contains("daemon that runs is in live mode"), "{err}");
    l.next_copy_refused_as_halted().await;

    // A resume is not sent to a daemon of another mode than the file says: it could restart the
    // real-money trading the operator is moving away from. Naming the journal does it.
    let (code, out, err) = l.cli(&["resume"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("refused") && err.contains("live") && err.contains("--db"), "{err}");
    let live_db = l.live_db();
    let (code, out, err) = l.cli(&["--db", live_db.to_str().unwrap(), "resume"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("live daemon") && out.contains("resumed"), "{out}");
    assert!(!l.inst.state().join("polycopy-paper.db").exists(), "no paper journal appeared");
}

/// A half-edited settings file that no longer parses at all (an unclosed quote): not even its
/// mode and journals can be read, and the live daemon still trades on the settings it started
/// with. `halt` finds it on the installation's own socket and halts it, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_live_when_the_settings_file_does_not_parse_then_halt_still_reaches_the_live_daemon() {
    let l = live_install().await;
    l.inst.edit("mode = \"live\"", "mode = \"live");
    let (code, out, err) = l.cli(&["halt", "--reason", "incident"]);
    assert_eq!(code, 0, "the live daemon acknowledges: {out}{err}");
    assert!(out.contains("live daemon") && out.contains("polycopy-live.db"), "{out}");
    assert!(err.contains("cannot be read") && err.contains("installed live daemon"), "{err}");
    l.next_copy_refused_as_halted().await;
    assert!(!l.inst.state().join("polycopy-paper.db").exists(), "no paper journal appeared");
    // A resume is never sent to the daemon guessed at (mid-switch, the file may have been meant to
    // say paper): refused until the file reads again.
    let (code, out, err) = l.cli(&["resume"]);
    assert_eq!(code, 78, "{out}{err}");
    assert!(err.contains("a resume is never sent to a daemon guessed at"), "{err}");
    l.inst.edit("mode = \"live", "mode = \"live\"");
    let (code, out, err) = l.cli(&["resume"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("resumed"), "{out}");
}

/// A `.env` in the operator's directory (a checkout's, say) that points `POLYCOPY_SYSTEM_CONFIG` at
/// other settings is not read on an installed server, with a note: `halt` still reaches the live daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_live_when_a_dotenv_points_at_other_settings_then_halt_still_reaches_the_live_daemon() {
    let l = live_install().await;
    let other = l.elsewhere.path().join("other.toml");
    std::fs::write(&other, "mode = \"paper\"\ndb_path = \"elsewhere-paper.db\"\n").unwrap();
    std::fs::write(l.elsewhere.path().join(".env"), format!("POLYCOPY_SYSTEM_CONFIG={}\n", other.display())).unwrap();
    let (code, out, err) = l.cli(&["halt", "--reason", "from a checkout"]);
    assert_eq!(code, 0, "the live daemon acknowledges: {out}{err}");
    assert!(out.contains("live daemon") && out.contains("polycopy-live.db"), "{out}");
    assert!(err.contains("./.env is not read"), "{err}");
    assert!(!l.elsewhere.path().join("elsewhere-paper.db").exists(), "no journal from the other settings");
}

/// `status` from elsewhere shows the live journal and the live daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_live_when_status_then_it_reads_the_live_journal() {
    let l = live_install().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    let t = l.decided(1).await;
    assert_eq!(t[0]["status"], "executed");
    let (code, out, err) = l.cli(&["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    let st: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["mode"], "live");
    assert_eq!(st["journal"].as_str(), l.live_db().to_str());
    assert_eq!(st["daemon"]["running"], true, "{st}");
    assert_eq!(st["positions"].as_array().map(Vec::len), Some(1), "{st}");
    let (code, out, _) = l.cli(&["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("mode: LIVE") && out.contains("daemon: running"), "{out}");
    l.nothing_in(l.elsewhere.path());
}

/// `trades` from elsewhere lists the live journal's copy, with our order's fill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_live_when_trades_then_they_read_the_live_journal() {
    let l = live_install().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    l.decided(1).await;
    let (code, out, err) = l.cli(&["trades"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("executed") && out.contains("ours 10 at 0.51"), "{out}");
    assert!(!l.inst.state().join("polycopy-paper.db").exists(), "no paper journal was read or made");
    l.nothing_in(l.elsewhere.path());
}

/// The same with a control socket set in the settings, shared by both modes: the daemon that
/// answers on it runs live, so commands follow it, and an update is refused, as without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_live_when_the_file_says_paper_and_the_socket_is_shared_then_commands_act_on_the_live_daemon() {
    let l = live_install_with(true).await;
    l.copied_then_switched_to_paper().await;
    let (code, out, err) = l.cli(&["check-config", "--json", "--offline"]);
    let cfg: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{code} {out}{err}"));
    assert_eq!((cfg["mode"].as_str(), cfg["running_mode"].as_str()), (Some("paper"), Some("live")), "{cfg}");
    let (code, out, err) = l.script("update.sh", &[&bin()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("restart the service") && err.contains("not updating"), "{err}");
    assert!(!l.inst.state().join("polycopy-paper.db").exists(), "no paper journal was read or made");
}

/// The file is switched back to paper and the service not restarted: the live daemon still
/// trades. Every command and script acts on it, saying so, rather than on the idle paper journal
/// (a status that looks fine, a backup of the wrong file, a pause that pauses nothing); a close
/// is refused unless its journal is named; the health check says the service must be restarted
/// or the file put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_live_when_the_file_says_paper_but_the_live_daemon_runs_then_commands_act_on_it() {
    let l = live_install().await;
    l.copied_then_switched_to_paper().await;

    let (code, out, err) = l.cli(&["pause-market", &STD_TOKEN.to_string()]);
    assert_eq!(code, 0, "the live daemon pauses it: {out}{err}");
    // Buying again in it is not sent to the live daemon the file moves away from, as a resume is not.
    let (code, out, err) = l.cli(&["resume-market", &STD_TOKEN.to_string()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("refused") && err.contains("--db"), "{err}");
    let live_db = l.live_db();
    let (code, out, err) = l.cli(&["--db", live_db.to_str().unwrap(), "resume-market", &STD_TOKEN.to_string()]);
    assert_eq!(code, 0, "named, it is: {out}{err}");
    let (code, out, err) = l.cli(&["close", "--all"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("refused") && err.contains("--db"), "{err}");
    assert!(l.clob.posts().len() == 1, "nothing sold");
    // Named with --db as the refusal says, a reconcile acts in the live daemon's mode, never
    // "paper mode: nothing to reconcile".
    let (_, out, err) = l.cli(&["--db", live_db.to_str().unwrap(), "reconcile", "--apply"]);
    assert!(!out.contains("paper mode") && err.contains("trades live"), "{out}{err}");

    let (code, out, err) = l.cli(&["check-config", "--json", "--offline"]);
    let cfg: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{code} {out}{err}"));
    assert_eq!((cfg["mode"].as_str(), cfg["running_mode"].as_str()), (Some("paper"), Some("live")), "{cfg}");
    let (code, out, err) = l.script("backup.sh", &[]);
    assert_eq!(code, 0, "{out}{err}");
    let backups: Vec<String> = std::fs::read_dir(l.inst.root.join("var/backups/polycopy"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".db.gz"))
        .collect();
    assert!(backups.len() == 1 && backups[0].starts_with("polycopy-live-"), "the live journal: {backups:?}");
    let (code, out, _) = l.script("health_check.sh", &["--no-backup-check", "--min-disk-mb", "1"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("restart the service"), "{out}");
    // An update would restart the service into the file's mode behind the operator's back: refused.
    let (code, out, err) = l.script("update.sh", &[&bin()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("restart the service") && err.contains("not updating"), "{err}");
    assert!(!l.inst.root.join("usr/local/bin/polycopy.prev").exists(), "nothing swapped");
    assert!(!l.inst.state().join("polycopy-paper.db").exists(), "no paper journal was read or made");
    // A journal restored where the file's mode will read it (--db, as the refusal of a restore
    // without it says) is halted, though no daemon ever ran on that path: the next start runs it.
    let backup = l.inst.root.join("var/backups/polycopy").join(&backups[0]);
    let paper_db = l.inst.state().join("polycopy-paper.db");
    let mut c = std::process::Command::new("bash");
    c.arg(l.inst.root.join("usr/local/lib/polycopy/restore.sh"))
        .args([backup.to_str().unwrap(), "--no-service", "--db", paper_db.to_str().unwrap()])
        .current_dir(l.elsewhere.path());
    let (code, out, err) =
        output(crate::support::installed::clean(&mut c).env("ALLOW_OTHER_MODE", "1").output().unwrap());
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("trading is HALTED in the restored journal"), "{err}");
    let (_, st, err) = l.cli(&["--db", paper_db.to_str().unwrap(), "status", "--json"]);
    let st: Value = serde_json::from_str(&st).unwrap_or_else(|_| panic!("{st}{err}"));
    assert_eq!(st["breaker"]["state"], "halted", "{st}");
    assert_eq!(l.cli(&["status", "--json"]).0, 0);
    let live: Value = serde_json::from_str(&l.cli(&["status", "--json"]).1).unwrap();
    assert_eq!(live["breaker"]["state"], "active", "the live daemon was not the one halted: {live}");
    // A cron backup still running holds the journal open: the restore waits for it, and refuses
    // when it goes on (a database renamed under an open connection can be damaged).
    let job_lock = l.inst.root.join("var/log/polycopy/.backup.lock");
    std::fs::write(&job_lock, "").unwrap();
    // One process holds it (bash becomes the sleep, the locked descriptor with it): killed, it is gone.
    let hold = "exec 9>>\"$0\"; flock 9; exec sleep 60";
    let mut job = std::process::Command::new("bash").args(["-c", hold]).arg(&job_lock).spawn().unwrap();
    wait_for(10, "the job's lock held", async || {
        let free = std::process::Command::new("flock").args(["-n"]).arg(&job_lock).arg("true").status().unwrap();
        (!free.success()).then_some(())
    })
    .await;
    let restored_before = std::fs::read(&paper_db).unwrap();
    let mut c = std::process::Command::new("bash");
    c.arg(l.inst.root.join("usr/local/lib/polycopy/restore.sh"))
        .args([backup.to_str().unwrap(), "--no-service", "--db", paper_db.to_str().unwrap()])
        .current_dir(l.elsewhere.path());
    let c = crate::support::installed::clean(&mut c).env("ALLOW_OTHER_MODE", "1").env("RESTORE_JOB_WAIT_S", "1");
    let (code, out, err) = output(c.output().unwrap());
    job.kill().unwrap();
    let _ = job.wait();
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("the cron backup job still runs") && err.contains("nothing was touched"), "{err}");
    assert_eq!(std::fs::read(&paper_db).unwrap(), restored_before, "the journal left as it was");
    l.nothing_in(l.elsewhere.path());
}

/// `backup.sh` from elsewhere with a clean environment backs up the live journal, mode 0600.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_live_when_backup_sh_runs_then_the_live_journal_is_backed_up() {
    use std::os::unix::fs::PermissionsExt;
    let l = live_install().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    l.decided(1).await;
    let (code, out, err) = l.script("backup.sh", &[]);
    assert_eq!(code, 0, "{out}{err}");
    let gz = l.inst.root.join("var/backups/polycopy");
    let file = std::fs::read_dir(&gz)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "gz"))
        .expect("a backup in the installed backup directory");
    assert!(file.file_name().unwrap().to_string_lossy().starts_with("polycopy-live-"), "{file:?}");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let restored = l.inst.root.join("check.db");
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("gunzip -c {} > {}", file.display(), restored.display()))
        .status()
        .unwrap();
    assert!(ok.success());
    let c = rusqlite::Connection::open(&restored).unwrap();
    let n: i64 = c.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1, "the backup is of the live journal (it has our order)");
    l.nothing_in(l.elsewhere.path());
}

/// `maintenance.sh` from elsewhere with a clean environment archives and prunes the live journal
/// (its orders reference intents), keeping the copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_live_when_maintenance_sh_runs_then_the_live_journal_is_pruned() {
    let l = live_install().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    l.decided(1).await;
    // A refused fill, aged: maintenance archives and prunes it from the live journal.
    assert_eq!(l.cli(&["halt"]).0, 0);
    l.anvil.emit(&buy(2, STD_TOKEN)).await;
    l.decided(2).await;
    {
        let c = rusqlite::Connection::open(l.live_db()).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c.execute("UPDATE fills SET seen_at_ms = 0 WHERE status = 'rejected'", []).unwrap();
    }
    let (code, out, err) = l.script("maintenance.sh", &["--prune-days", "1", "--no-vacuum"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("pruned 1 fills never copied"), "{out}");
    assert!(l.inst.state().join("polycopy-live.db.archive").is_dir(), "the monthly archives sit beside the journal");
    assert_eq!(l.trades().len(), 1, "the copy stays");
    l.nothing_in(l.elsewhere.path());
}

/// `health_check.sh` from elsewhere with a clean environment, as cron runs it, is green on a
/// healthy live daemon (its first backup is not due yet on a fresh install).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_live_when_health_check_sh_runs_then_green() {
    let l = live_install().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    l.decided(1).await;
    let (code, out, err) = l.script("health_check.sh", &["--min-disk-mb", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "healthy");
    l.nothing_in(l.elsewhere.path());
}

/// Back to paper (the file switched and the service restarted, or stopped): the live journal
/// named with `--db` is still read and reconciled as live, by its own copies, with no daemon on it
/// to say so. It answered "paper mode: nothing on chain to reconcile" and labelled it PAPER.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_when_the_live_journal_is_named_with_no_daemon_then_commands_act_in_live_mode() {
    let mut l = live_install().await;
    l.copied_then_switched_to_paper().await;
    l.inst.stop();
    let live_db = l.live_db();
    let db = live_db.to_str().unwrap();
    let (code, out, err) = l.cli(&["--db", db, "status", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let st: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["mode"], "live", "{st}");
    assert!(err.contains("holds live copies"), "{err}");
    let (_, out, err) = l.cli(&["--db", db, "reconcile"]);
    assert!(!out.contains("nothing on chain to reconcile") && !err.contains("nothing on chain"), "{out}{err}");
    assert!(!l.inst.state().join("polycopy-paper.db").exists(), "no paper journal appeared");
}

/// The settings file switched to paper and the service not restarted: the live daemon still
/// trades, and when it is unhealthy, health_check.sh's alert reaches it with its own token (the
/// paper journal's token, which the file's mode names, does not exist or is not the daemon's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_live_when_the_file_says_paper_then_health_check_alerts_reach_the_live_daemon() {
    let l = live_install().await;
    l.copied_then_switched_to_paper().await;
    let live_db = l.live_db();
    let (code, out, err) = l.cli(&["--db", live_db.to_str().unwrap(), "halt", "--reason", "drill"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = l.script("health_check.sh", &["--min-disk-mb", "1"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!err.contains("cannot read the alert token") && !err.contains("could not relay"), "{err}");
    wait_for(20, "the alert journaled by the live daemon", async || {
        let c = rusqlite::Connection::open(l.live_db()).ok()?;
        c.query_row(
            "SELECT message FROM events WHERE kind = 'alert' AND message LIKE '%health check: UNHEALTHY%'",
            [],
            |r| r.get::<_, String>(0),
        )
        .ok()
    })
    .await;
}

/// Live `/health` is 200 and healthy when all is well, and names the failing live check (the CLOB
/// refusing our credentials) otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_live_when_all_well_then_healthy_and_a_failing_live_check_is_named() {
    let l = live_install().await;
    let (code, body) = http_get(&l.inst.base(), "/health").await;
    assert_eq!(code, 200, "{body}");
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["status"], "healthy", "{body}");
    let names: Vec<&str> = h["checks"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert!(names.contains(&"clob") && names.contains(&"orders"), "{names:?}");
    let (_, metrics) = http_get(&l.inst.base(), "/metrics").await;
    assert!(metrics.contains("polycopy_build_info{version=") && metrics.contains("mode=\"live\""), "{metrics}");
    assert!(metrics.contains("process_resident_memory_bytes"), "{metrics}");

    l.clob.revoke();
    let body = wait_for(30, "the clob check to fail", async || {
        let (code, body) = http_get(&l.inst.base(), "/health").await;
        (code == 503).then_some(body)
    })
    .await;
    let h: Value = serde_json::from_str(&body).unwrap();
    let clob = h["checks"].as_array().unwrap().iter().find(|c| c["name"] == "clob").unwrap();
    assert_eq!(clob["status"], "unhealthy", "{body}");
    assert!(clob["detail"].as_str().unwrap().contains("refuses our API credentials"), "{body}");
    let (code, out, _) = l.script("health_check.sh", &["--no-backup-check", "--min-disk-mb", "1"]);
    assert_eq!(code, 1);
    assert!(out.contains("clob: unhealthy"), "{out}");
}

/// `status` from a directory without a journal creates no file and says why.
#[test]
fn test_status_when_no_journal_then_nothing_created_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in [&["status"][..], &["trades"], &["halt"], &["backup", "--out", "b.db"], &["maintenance"]] {
        let mut c = std::process::Command::new(bin());
        c.args(cmd).current_dir(dir.path());
        let (code, out, err) = output(clean(&mut c).env("POLYCOPY_SYSTEM_CONFIG", "").output().unwrap());
        assert_ne!(code, 0, "{cmd:?}: {out}");
        assert!(err.contains("no journal at data/polycopy-paper.db"), "{cmd:?}: {err}");
        assert!(err.contains("has not run with these settings yet"), "{err}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "{cmd:?} created {left:?}");
    }
}

/// Two instances of the template unit on one staged root keep separate journals, and both answer
/// their scripts and commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_two_instances_when_installed_then_separate_journals_and_both_answer() {
    use alloy::primitives::address;
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let targets =
        [address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), address!("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")];
    let mut insts = Vec::new();
    for (name, t) in ["acct1", "acct2"].into_iter().zip(targets) {
        let mut i = Installed::stage(&root, Some(name));
        i.fast();
        std::fs::write(
            root.join(format!("etc/polycopy/{name}/wallets.json")),
            wallets(&[(t, name, true)], 1.0).to_string(),
        )
        .unwrap();
        i.env(&[
            ("POLYGON_RPC_URL", &anvil.http_url()),
            ("GAMMA_URL", "http://127.0.0.1:9"),
            ("CLOB_HOST", "http://127.0.0.1:9"),
        ]);
        i.start();
        insts.push(i);
    }
    for i in &insts {
        i.wait_live().await;
    }
    let c = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");
    anvil.emit(&Fill::v2(1, targets[0], c, true, 11, 10 * ONE, 5 * ONE)).await;
    anvil.emit(&Fill::v2(2, targets[1], c, true, 22, 10 * ONE, 5 * ONE)).await;
    let elsewhere = tempfile::tempdir().unwrap();
    for (i, token) in insts.iter().zip(["11", "22"]) {
        let rows: Vec<Value> = wait_for(20, "each instance's copy", async || {
            let (code, out, _) = i.cli(elsewhere.path(), &["trades", "--json"]);
            let v: Vec<Value> = if code == 0 { serde_json::from_str(&out).ok()? } else { return None };
            (v.len() == 1 && v[0]["status"] == "executed").then_some(v)
        })
        .await;
        assert_eq!(rows[0]["token_id"], token, "each journal holds only its own target's fill");
        let (code, out, _) = i.cli(elsewhere.path(), &["status", "--json"]);
        assert_eq!(code, 0);
        let st: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(st["journal"].as_str(), i.state().join("polycopy-paper.db").to_str());
        let (code, out, err) =
            i.script(elsewhere.path(), "health_check.sh", &["--no-backup-check", "--min-disk-mb", "1"]);
        assert_eq!(code, 0, "{out}{err}");
        let (code, out, err) = i.script(elsewhere.path(), "backup.sh", &[]);
        assert_eq!(code, 0, "{out}{err}");
        let name = i.instance.clone().unwrap();
        assert!(out.contains(&format!("var/backups/polycopy/{name}/")), "{out}");
    }
    which_instance(&root, elsewhere.path());
    // A halt of one instance leaves the other trading.
    let (code, out, err) = insts[0].cli(elsewhere.path(), &["halt"]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, out, _) = insts[1].cli(elsewhere.path(), &["status", "--json"]);
    let st: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["breaker"]["tripped"], false, "{st}");
    // The binary is shared: an update of one instance is refused while the other's settings are
    // ones the new binary refuses (it would exit 78 there at its next restart).
    insts[1].set(Some("copy"), "max_copy_delay_s = 9999999999");
    let (code, out, err) = insts[0].script(elsewhere.path(), "update.sh", &[&bin()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("instance acct2") && err.contains("not updating"), "{err}");
    assert!(!root.join("usr/local/bin/polycopy.prev").exists(), "nothing swapped");
}

/// On a server with named instances only, a command that names none is refused with the list
/// (built-in defaults and a journal in the working directory would act on no account), also from
/// a directory holding a paper trial's journal; `POLYCOPY_INSTANCE` names one; and
/// `POLYCOPY_SYSTEM_CONFIG` beside a named instance is two answers, refused.
fn which_instance(root: &std::path::Path, elsewhere: &std::path::Path) {
    let polycopy = root.join("usr/local/bin/polycopy");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = std::process::Command::new(&polycopy);
        c.args(args).current_dir(elsewhere);
        output(clean(&mut c).envs(env.iter().copied()).output().unwrap())
    };
    std::fs::create_dir_all(elsewhere.join("data")).unwrap();
    std::fs::write(elsewhere.join("data/polycopy-paper.db"), b"").unwrap();
    for cmd in [&["halt"][..], &["status"], &["check-config", "--offline"]] {
        let (code, out, err) = run(cmd, &[]);
        assert_ne!(code, 0, "{cmd:?}: {out}{err}");
        assert!(err.contains("only the instances acct1, acct2") && err.contains("--instance"), "{cmd:?}: {err}");
    }
    std::fs::remove_dir_all(elsewhere.join("data")).unwrap();
    let (code, out, err) = run(&["status", "--json"], &[("POLYCOPY_INSTANCE", "acct2")]);
    assert_eq!(code, 0, "{out}{err}");
    let st: Value = serde_json::from_str(&out).unwrap();
    assert!(st["journal"].as_str().unwrap().ends_with("acct2/polycopy-paper.db"), "{st}");
    // The scripts read it too: acct2's backup lands in acct2's directory, never the default's.
    let mut c = std::process::Command::new("bash");
    c.arg(root.join("usr/local/lib/polycopy/backup.sh")).current_dir(elsewhere);
    let (code, out, err) = output(clean(&mut c).env("POLYCOPY_INSTANCE", "acct2").output().unwrap());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("var/backups/polycopy/acct2/"), "{out}");
    // Settings named with --config are not a guess: not refused.
    std::fs::write(elsewhere.join("own.toml"), "mode = \"paper\"\n").unwrap();
    let (_, out, err) = run(&["--config", "own.toml", "check-config", "--offline"], &[]);
    assert!(!err.contains("only the instances"), "{out}{err}");
    // Set empty in the shell, the variable detaches nothing here: a halt naming no instance is
    // still refused, and a status naming one acts on it (not "two answers").
    let (code, out, err) = run(&["halt"], &[("POLYCOPY_SYSTEM_CONFIG", "")]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("only the instances acct1, acct2"), "{err}");
    let (code, out, err) = run(&["--instance", "acct2", "status", "--json"], &[("POLYCOPY_SYSTEM_CONFIG", "")]);
    assert_eq!(code, 0, "{out}{err}");
    let st: Value = serde_json::from_str(&out).unwrap();
    assert!(st["journal"].as_str().unwrap().ends_with("acct2/polycopy-paper.db"), "{st}");
    let acct1 = root.join("etc/polycopy/acct1/polycopy.toml");
    let (code, out, err) =
        run(&["--instance", "acct2", "halt"], &[("POLYCOPY_SYSTEM_CONFIG", acct1.to_str().unwrap())]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("POLYCOPY_SYSTEM_CONFIG") && err.contains("acct2"), "{err}");
}

/// A configuration error exits 78 (EX_CONFIG), and both units tell systemd not to restart on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_config_error_when_started_then_exits_78_and_is_not_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let mut inst = Installed::stage(&dir.path().join("root"), None);
    inst.set(Some("risk"), "max_trades_per_hour = 0");
    inst.start();
    let status = wait_for(20, "the daemon to exit", async || inst.exited()).await;
    assert_eq!(status.code(), Some(78), "{}", inst.log());
    assert!(inst.log().contains("risk.max_trades_per_hour"), "{}", inst.log());
    for unit in ["polycopy.service", "polycopy@.service"] {
        let text = std::fs::read_to_string(dir.path().join("root/etc/systemd/system").join(unit)).unwrap();
        assert!(text.contains("RestartPreventExitStatus=65 78"), "{unit}");
    }
    // The environment may not contradict the settings either.
    let mut inst2 = Installed::stage(&dir.path().join("root2"), None);
    inst2.env(&[("PAPER_TRADING", "false")]);
    inst2.start();
    let status = wait_for(20, "the daemon to exit", async || inst2.exited()).await;
    assert_eq!(status.code(), Some(78));
    assert!(inst2.log().contains("set mode = \"live\""), "{}", inst2.log());
    // Live in the settings, but the key is missing from the environment: the error says exactly that.
    let mut inst3 = Installed::stage(&dir.path().join("root3"), None);
    inst3.edit("mode = \"paper\"", "mode = \"live\"");
    inst3.start();
    let status = wait_for(20, "the daemon to exit", async || inst3.exited()).await;
    assert_eq!(status.code(), Some(78));
    let log = inst3.log();
    assert!(log.contains("say mode = \"live\", but PRIVATE_KEY is not in the environment"), "{log}");
}

/// POLYCOPY_SYSTEM_CONFIG in the installation's polycopy.env: systemd would give it to the daemon
/// while commands run by hand ignore it there, so the two would act on other settings. Refused by
/// the daemon and by commands (a halt and status still run, with a warning).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_when_the_env_file_points_at_other_settings_then_refused() {
    let root = tempfile::tempdir().unwrap();
    let mut inst = Installed::stage(root.path(), None);
    let other = root.path().join("etc/polycopy/other.toml");
    std::fs::copy(inst.settings(), &other).unwrap();
    inst.env(&[("POLYCOPY_SYSTEM_CONFIG", other.to_str().unwrap())]);
    for args in [&["resume"][..], &["check-config"][..]] {
        let (code, out, err) = inst.cli(root.path(), args);
        assert_eq!(code, 78, "{args:?}: {out}{err}");
        assert!(err.contains("POLYCOPY_SYSTEM_CONFIG is set in") && err.contains("--instance"), "{args:?}: {err}");
    }
    let (_, out, err) = inst.cli(root.path(), &["status"]);
    assert!(err.contains("warning: POLYCOPY_SYSTEM_CONFIG is set in"), "{out}{err}");
    inst.start();
    let status = wait_for(20, "the daemon's refusal", async || inst.exited()).await;
    assert_eq!(status.code(), Some(78), "{}", inst.log());
    assert!(inst.log().contains("POLYCOPY_SYSTEM_CONFIG is set in"), "{}", inst.log());
}

/// On an installed server a journal outside the service's state directory, the only place its
/// unit may write, is named by `check-config`: the service would fail at start and crash-loop.
#[test]
fn test_installed_when_the_journal_is_outside_the_state_directory_then_check_config_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let inst = Installed::stage(&dir.path().join("root"), None);
    let elsewhere = tempfile::tempdir().unwrap();
    let journal = format!("db_path = \"{}\"", inst.state().join("polycopy-paper.db").display());
    inst.edit(&journal, "db_path = \"/srv/polycopy/paper.db\"");
    let (code, out, err) = inst.cli(elsewhere.path(), &["check-config", "--offline"]);
    assert_eq!(code, 78, "{out}{err}");
    assert!(err.contains("db_path") && err.contains("outside the service's state directory"), "{err}");
    assert!(err.contains("ReadWritePaths="), "{err}");
    // Opened for writing by a drop-in, as the message says: fine.
    let drop_in = inst.root.join("etc/systemd/system/polycopy.service.d");
    std::fs::create_dir_all(&drop_in).unwrap();
    std::fs::write(drop_in.join("journal.conf"), "[Service]\nReadWritePaths=/srv/polycopy\n").unwrap();
    let (code, out, err) = inst.cli(elsewhere.path(), &["check-config", "--offline"]);
    assert_eq!(code, 0, "{out}{err}");
}

/// On an installed server a stop file the service cannot see as the operator's shell does (a
/// relative path, resolved in the service's state directory; a path under /tmp, hidden by the
/// unit's PrivateTmp) is named by `check-config`: touched in an emergency, it would never be obeyed.
#[test]
fn test_installed_when_the_stop_file_is_relative_or_hidden_from_the_service_then_check_config_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let inst = Installed::stage(&dir.path().join("root"), None);
    let elsewhere = tempfile::tempdir().unwrap();
    let stop = format!("emergency_stop_file = \"{}\"", inst.state().join("EMERGENCY_STOP").display());
    let (code, out, err) = inst.cli(elsewhere.path(), &["check-config", "--offline"]);
    assert_eq!(code, 0, "as installed: {out}{err}");
    for (path, said) in [("EMERGENCY_STOP", "must be an absolute path"), ("/tmp/polycopy.stop", "cannot see")] {
        inst.edit(&stop, &format!("emergency_stop_file = \"{path}\""));
        let (code, out, err) = inst.cli(elsewhere.path(), &["check-config", "--offline"]);
        assert_eq!(code, 78, "{path}: {out}{err}");
        assert!(err.contains("emergency_stop_file") && err.contains(said), "{path}: {err}");
        inst.edit(&format!("emergency_stop_file = \"{path}\""), &stop);
    }
    // The same for the targets file and the control socket: a command run elsewhere would read
    // other targets, or knock on a socket the daemon never opened.
    let settings = std::fs::read_to_string(inst.settings()).unwrap();
    let wallets = settings.lines().find(|l| l.starts_with("wallets_path")).expect("wallets_path installed").to_owned();
    inst.edit(&wallets, "wallets_path = \"wallets.json\"");
    inst.set(None, "control_socket = \"polycopy.sock\"");
    let (code, out, err) = inst.cli(elsewhere.path(), &["check-config", "--offline"]);
    assert_eq!(code, 78, "{out}{err}");
    for field in ["wallets_path", "control_socket"] {
        assert!(err.lines().any(|l| l.contains(field) && l.contains("must be an absolute path")), "{field}: {err}");
    }
}

/// The file switched back to paper, the service not restarted, and no answer on the live daemon's
/// control socket (removed, or something there that never replies): the live daemon still holds
/// its journal and trades. `halt` stores the halt in that journal, which the daemon reads every
/// few hundred ms, and says it is not confirmed; never "no daemon is running" or "no journal at".
async fn halt_reaches_the_held_live_journal(shared_socket: bool, silent: bool) {
    let l = live_install_with(shared_socket).await;
    l.inst.edit("mode = \"live\"", "mode = \"paper\"");
    let sock = l.inst.state().join(if shared_socket { "polycopy.sock" } else { "polycopy-live.db.sock" });
    std::fs::remove_file(&sock).unwrap();
    let _silent = silent.then(|| std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let (code, out, err) = l.cli(&["halt", "--reason", "socket gone"]);
    let said = format!("{out}{err}");
    assert_eq!(code, 4, "not confirmed: {said}");
    assert!(said.contains(&format!("halted in the journal {}", l.live_db().display())), "{said}");
    assert!(!said.contains("no daemon is running") && !said.contains("no journal at"), "{said}");
    wait_for(10, "the live daemon to read the halt from its journal", async || {
        l.inst.log().contains("BREAKER TRIPPED (manual) by cli").then_some(())
    })
    .await;
    l.next_copy_refused_as_halted().await;
    assert!(!l.inst.state().join("polycopy-paper.db").exists(), "no paper journal appeared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_live_when_the_file_says_paper_and_the_live_socket_is_gone_then_halt_reaches_its_journal() {
    halt_reaches_the_held_live_journal(false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_live_when_the_file_says_paper_and_the_live_socket_is_silent_then_halt_reaches_its_journal() {
    halt_reaches_the_held_live_journal(false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_live_when_the_file_says_paper_and_the_shared_socket_is_silent_then_halt_reaches_its_journal() {
    halt_reaches_the_held_live_journal(true, true).await;
}

/// `POLYCOPY_SYSTEM_CONFIG` set empty in the operator's shell (left from a demo or a test run):
/// on a server with an installation, commands still act on it, with a warning. Before, `halt`
/// looked for data/polycopy-paper.db under the working directory and the daemon traded on.
/// Settings named with --config are still read without the installation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_installed_when_the_shell_sets_the_system_config_empty_then_commands_act_on_the_installation() {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut inst = Installed::stage(&dir.path().join("root"), None);
    inst.fast();
    std::fs::write(inst.root.join("etc/polycopy/wallets.json"), wallets(&[(A, "whale", true)], 0.1).to_string())
        .unwrap();
    inst.env(&[
        ("POLYGON_RPC_URL", &anvil.http_url()),
        ("GAMMA_URL", "http://127.0.0.1:9"),
        ("CLOB_HOST", "http://127.0.0.1:9"),
    ]);
    inst.start();
    inst.wait_live().await;
    let elsewhere = tempfile::tempdir().unwrap();
    let empty = [("POLYCOPY_SYSTEM_CONFIG", "")];
    let (code, out, err) = inst.cli_env(elsewhere.path(), &["halt", "--reason", "empty var"], &empty);
    assert_eq!(code, 0, "the installed daemon acknowledges: {out}{err}");
    assert!(out.contains("paper daemon") && out.contains("polycopy-paper.db"), "{out}");
    assert!(err.contains("POLYCOPY_SYSTEM_CONFIG is set empty") && !err.contains("no journal at"), "{err}");
    wait_for(10, "the daemon to obey the halt", async || {
        inst.log().contains("BREAKER TRIPPED (manual) by cli").then_some(())
    })
    .await;
    let (code, out, err) = inst.cli_env(elsewhere.path(), &["status", "--json"], &empty);
    assert_eq!(code, 0, "{out}{err}");
    let st: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["journal"].as_str(), inst.state().join("polycopy-paper.db").to_str(), "{st}");
    // Any other command is refused: acting on either the installation or built-in defaults could
    // surprise (a scratch daemon started live, a close of the wrong journal).
    for cmd in [&["trades"][..], &["resume"], &["run"]] {
        let (code, out, err) = inst.cli_env(elsewhere.path(), cmd, &empty);
        assert_eq!(code, 78, "{cmd:?}: {out}{err}");
        assert!(err.contains("POLYCOPY_SYSTEM_CONFIG is set empty") && err.contains("--config"), "{cmd:?}: {err}");
    }
    std::fs::write(elsewhere.path().join("own.toml"), "mode = \"paper\"\n").unwrap();
    let (code, out, err) =
        inst.cli_env(elsewhere.path(), &["--config", "own.toml", "check-config", "--json", "--offline"], &empty);
    let cfg: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{code} {out}{err}"));
    assert_eq!(cfg["db_path"], "data/polycopy-paper.db", "--config with the empty variable: no installation");
    assert!(!err.contains("is set empty"), "{err}");
    let left: Vec<_> = std::fs::read_dir(elsewhere.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "only own.toml: {left:?}");
}
