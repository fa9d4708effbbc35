//! Installing, uninstalling and updating, in staging roots: idempotent installs that keep the
//! operator's edits, a unit systemd accepts, and an update that rolls back a broken binary.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;
use alloy::primitives::{Address, address};

const A: Address = address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
const C: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    output(cmd.output().unwrap())
}

/// Every file under `root`: (mode, content) by relative path.
fn tree(root: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                out.insert(format!("{rel}/"), (mode, Vec::new()));
                stack.push(p);
            } else {
                out.insert(rel, (mode, std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// Re-running the installer with a different binary while the service runs is refused (the next
/// restart would run it unverified, with no rollback): update.sh changes a running service's
/// binary. Stopped, or the same binary, the installer goes on.
#[test]
fn test_install_when_the_service_runs_and_the_binary_differs_then_refused() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path().display().to_string();
    let other = root.path().join("other-polycopy");
    std::fs::write(&other, "#!/bin/sh\necho 'polycopy 9.9.9'\n").unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).unwrap();
    let units = root.path().join("active-units");
    let systemctl = root.path().join("systemctl");
    std::fs::write(
        &systemctl,
        format!("#!/bin/sh\n[ \"$1\" = list-units ] && cat {} 2>/dev/null\nexit 0\n", units.display()),
    )
    .unwrap();
    std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let install = |b: &str| {
        run(Command::new("bash")
            .arg(repo().join("scripts/install.sh"))
            .args(["--root", &r, "--bin", b])
            .env("SYSTEMCTL", &systemctl))
    };
    let (code, _, err) = install(&bin());
    assert_eq!(code, 0, "{err}");
    std::fs::write(&units, "polycopy.service loaded active running polycopy\n").unwrap();
    let (code, _, err) = install(&bin());
    assert_eq!(code, 0, "the same binary: nothing replaced, {err}");
    let (code, _, err) = install(other.to_str().unwrap());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("refusing to replace the binary under running polycopy.service") && err.contains("update.sh"),
        "{err}"
    );
    let installed = root.path().join("usr/local/bin/polycopy");
    assert!(std::fs::read(&installed).unwrap() == std::fs::read(bin()).unwrap(), "the running binary is kept");
    std::fs::write(&units, "").unwrap();
    let (code, _, err) = install(other.to_str().unwrap());
    assert_eq!(code, 0, "stopped: {err}");
    assert!(std::fs::read(&installed).unwrap() == std::fs::read(&other).unwrap());
}

/// `install.sh --root` twice produces the same tree with the right modes and keeps an edited
/// wallets.json; `uninstall.sh` removes the program and keeps the data.
#[test]
fn test_install_when_run_twice_then_same_tree_and_operator_edits_kept() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path().display().to_string();
    let install =
        || run(Command::new("bash").arg(repo().join("scripts/install.sh")).args(["--root", &r, "--bin", &bin()]));
    let (code, _, err) = install();
    assert_eq!(code, 0, "{err}");
    let first = tree(root.path());
    let mode = |p: &str| first.get(p).unwrap_or_else(|| panic!("{p} not installed")).0;
    assert_eq!(mode("usr/local/bin/polycopy"), 0o755);
    assert_eq!(mode("etc/polycopy/polycopy.env"), 0o600);
    assert_eq!(mode("etc/polycopy/wallets.json"), 0o640);
    assert_eq!(mode("etc/polycopy/polycopy.toml"), 0o640);
    assert_eq!(mode("var/lib/polycopy/"), 0o700);
    assert_eq!(mode("etc/systemd/system/polycopy.service"), 0o644);
    assert_eq!(mode("etc/cron.d/polycopy"), 0o644);
    assert_eq!(mode("etc/logrotate.d/polycopy"), 0o644);
    assert_eq!(mode("usr/local/lib/polycopy/backup.sh"), 0o755);
    assert!(first.contains_key("usr/local/share/doc/polycopy/RUNBOOK.md"));
    // The generated settings name the settings reference, and it is installed right there.
    let toml = String::from_utf8(first["etc/polycopy/polycopy.toml"].1.clone()).unwrap();
    let reference = format!("{r}/usr/local/share/doc/polycopy/default.toml");
    assert!(toml.contains(&reference), "{toml}");
    assert_eq!(std::fs::read(&reference).unwrap(), std::fs::read(repo().join("config/default.toml")).unwrap());
    assert!(
        toml.contains("mode = \"paper\"") && toml.contains(&format!("{r}/var/lib/polycopy/polycopy-live.db")),
        "{toml}"
    );
    let cron = String::from_utf8(first["etc/cron.d/polycopy"].1.clone()).unwrap();
    assert!(cron.contains("/usr/local/lib/polycopy/backup.sh") && !cron.contains('@'), "{cron}");
    // Failures alerted, overlapping runs skipped, and root's output kept out of the service
    // user's log directory.
    assert!(
        cron.contains("polycopy flock -n ")
            && cron.contains("/var/log/polycopy/.backup.lock ")
            && cron.contains("--keep-days 30 --alert"),
        "{cron}"
    );
    assert!(cron.contains("reconcile --alert 2>&1 | logger -t polycopy-reconcile"), "{cron}");

    let (code, _, err) = install();
    assert_eq!(code, 0, "{err}");
    assert_eq!(tree(root.path()), first, "a second install changes nothing");

    let wallets = root.path().join("etc/polycopy/wallets.json");
    std::fs::write(&wallets, "{\"wallets\": []}").unwrap();
    let (code, _, err) = install();
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&wallets).unwrap(), "{\"wallets\": []}", "the operator's edit is kept");

    // The installed settings are valid for the installed binary.
    let (code, out, err) = run(Command::new(root.path().join("usr/local/bin/polycopy"))
        .args([
            "--config",
            &format!("{r}/etc/polycopy/polycopy.toml"),
            "--wallets",
            wallets.to_str().unwrap(),
            "check-config",
            "--offline",
        ])
        .env("POLYCOPY_SYSTEM_CONFIG", ""));
    assert_eq!(code, 0, "{out}{err}");

    std::fs::write(root.path().join("var/lib/polycopy/polycopy-paper.db"), "data").unwrap();
    let (code, _, err) = run(Command::new("bash").arg(repo().join("scripts/uninstall.sh")).args(["--root", &r]));
    assert_eq!(code, 0, "{err}");
    assert!(!root.path().join("usr/local/bin/polycopy").exists());
    assert!(!root.path().join("etc/systemd/system/polycopy.service").exists());
    assert!(root.path().join("var/lib/polycopy/polycopy-paper.db").exists(), "data kept");
    assert!(wallets.exists() && root.path().join("etc/polycopy/polycopy.env").exists(), "settings kept");
}

/// On a server with only named instances, the installer run without `--instance` (as after a
/// release) updates the shared files and creates no default instance: no settings, no cron jobs
/// alerting about a daemon never meant to run. `--default-instance` creates it.
#[test]
fn test_install_when_only_named_instances_then_a_plain_run_updates_shared_files_only() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path().display().to_string();
    let b = bin();
    let install = |extra: &[&str]| {
        let args = [&["--root", r.as_str(), "--bin", b.as_str()][..], extra].concat();
        run(Command::new("bash").arg(repo().join("scripts/install.sh")).args(args))
    };
    let (code, out, err) = install(&["--instance", "acct1", "--http-port", "9188"]);
    assert_eq!(code, 0, "{out}{err}");
    let binary = root.path().join("usr/local/bin/polycopy");
    std::fs::write(&binary, "old").unwrap();
    let (code, out, err) = install(&[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("only named instances (acct1)") && err.contains("--default-instance"), "{err}");
    assert_eq!(std::fs::read(&binary).unwrap(), std::fs::read(bin()).unwrap(), "the binary updated");
    for absent in ["etc/polycopy/polycopy.toml", "etc/polycopy/polycopy.env", "etc/cron.d/polycopy"] {
        assert!(!root.path().join(absent).exists(), "{absent} created");
    }
    assert!(root.path().join("etc/cron.d/polycopy-acct1").exists(), "the instance is untouched");
    let (code, out, err) = install(&["--default-instance"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        root.path().join("etc/polycopy/polycopy.toml").exists() && root.path().join("etc/cron.d/polycopy").exists()
    );
}

/// Both units (the plain one and the per-instance template) have every hardening option asked for,
/// do not restart on a configuration error, and `systemd-analyze verify` accepts them.
#[test]
fn test_unit_when_verified_then_systemd_accepts_it_and_it_is_hardened() {
    for (name, instance) in [("polycopy.service", ""), ("polycopy@.service", "%i/")] {
        let unit = std::fs::read_to_string(repo().join("systemd").join(name)).unwrap();
        for opt in [
            "Type=notify",
            "WatchdogSec=",
            "Restart=on-failure",
            "RestartPreventExitStatus=65 78",
            "StartLimitBurst=",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "User=polycopy",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "PrivateDevices=yes",
            "CapabilityBoundingSet=\n",
            "RestrictAddressFamilies=",
            "SystemCallFilter=@system-service",
            "MemoryMax=",
        ] {
            assert!(unit.contains(opt), "{opt} missing from {name}");
        }
        assert!(unit.contains(&format!("EnvironmentFile=/etc/polycopy/{instance}polycopy.env")), "{name}");
        assert!(unit.contains("StateDirectory=polycopy"), "{name}");
        if Command::new("systemd-analyze").arg("--version").output().is_err() {
            assert!(std::env::var_os("CI").is_none(), "CI must install systemd-analyze (.ci/run does)");
            eprintln!("systemd-analyze not installed: verification skipped on this machine");
            return;
        }
        // verify checks that ExecStart exists: point it at the binary under test.
        let dir = tempfile::tempdir().unwrap();
        let staged_name = if instance.is_empty() { name.to_owned() } else { "polycopy@acct1.service".to_owned() };
        let staged = dir.path().join(&staged_name);
        std::fs::write(&staged, unit.replace("/usr/local/bin/polycopy", &bin())).unwrap();
        let (code, out, err) = run(Command::new("systemd-analyze").arg("verify").arg(&staged));
        assert_eq!(code, 0, "{name}: {out}{err}");
        assert!(!err.contains(&format!("{staged_name}:")), "warnings about {name}: {err}");
    }
}

/// A unit systemd gives up on (a configuration error, or too many failed starts) tells the operator
/// on Telegram through its OnFailure= unit, which runs `polycopy alert --direct` as root (the only
/// user who may read the Telegram variables); systemd accepts both, for both kinds of instance.
#[test]
fn test_unit_when_it_fails_for_good_then_its_on_failure_unit_tells_telegram() {
    for (name, stopped, on_failure, instance) in [
        ("polycopy.service", "polycopy-stopped.service", "OnFailure=polycopy-stopped.service", ""),
        ("polycopy@.service", "polycopy-stopped@.service", "OnFailure=polycopy-stopped@%i.service", "--instance %i "),
    ] {
        let unit = std::fs::read_to_string(repo().join("systemd").join(name)).unwrap();
        assert!(unit.contains(on_failure), "{name}");
        let told = std::fs::read_to_string(repo().join("systemd").join(stopped)).unwrap();
        assert!(told.contains(&format!("ExecStart=/usr/local/bin/polycopy {instance}alert --direct \"")), "{told}");
        assert!(!told.contains("User="), "{stopped} runs as root: {told}");
        // Not for a failure systemd retries: only once the unit is failed for good.
        let unit_of = if instance.is_empty() { "polycopy.service" } else { "polycopy@%i.service" };
        assert!(told.contains(&format!("ExecCondition=/bin/systemctl is-failed --quiet {unit_of}")), "{told}");
        if Command::new("systemd-analyze").arg("--version").output().is_err() {
            assert!(std::env::var_os("CI").is_none(), "CI must install systemd-analyze (.ci/run does)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (unit_name, told_name) = if instance.is_empty() {
            (name.to_owned(), stopped.to_owned())
        } else {
            ("polycopy@acct1.service".to_owned(), "polycopy-stopped@acct1.service".to_owned())
        };
        for (n, text) in [(&unit_name, &unit), (&told_name, &told)] {
            std::fs::write(dir.path().join(n), text.replace("/usr/local/bin/polycopy", &bin())).unwrap();
        }
        let (code, out, err) = run(Command::new("systemd-analyze").arg("verify").arg(dir.path().join(&told_name)));
        assert_eq!(code, 0, "{stopped}: {out}{err}");
        assert!(!err.contains(&format!("{told_name}:")), "warnings about {stopped}: {err}");
    }
    // install.sh puts them beside the service units; uninstall.sh takes them away.
    let root = tempfile::tempdir().unwrap();
    let r = root.path().display().to_string();
    let (code, out, err) =
        run(Command::new("bash").arg(repo().join("scripts/install.sh")).args(["--root", &r, "--bin", &bin()]));
    assert_eq!(code, 0, "{out}{err}");
    for n in ["polycopy-stopped.service", "polycopy-stopped@.service"] {
        assert!(root.path().join("etc/systemd/system").join(n).exists(), "{n} installed");
    }
    let (code, out, err) = run(Command::new("bash").arg(repo().join("scripts/uninstall.sh")).args(["--root", &r]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(!root.path().join("etc/systemd/system/polycopy-stopped.service").exists(), "removed");
}

/// A script's message that cannot be written (the operator's terminal hung up during update.sh,
/// or stderr on a full disk) does not end the script under `set -e`: what the message announced
/// (a rollback, an alert) still happens.
#[test]
fn test_scripts_when_stderr_cannot_be_written_then_a_message_does_not_end_them() {
    let lib = repo().join("scripts/lib.sh");
    let script = format!(
        "set -euo pipefail; . '{}'; log crit 'rolling back' 2>/dev/full; log info 'still here' 2>/dev/full; echo rolled back",
        lib.display()
    );
    let (code, out, err) = run(Command::new("bash").args(["-c", &script]));
    assert_eq!((code, out.trim()), (0, "rolled back"), "{err}");
}

/// update.sh with a binary that starts but never becomes healthy: it backs up, swaps, restarts,
/// sees the failed health check, and puts the old binary and journal back; the old version runs
/// again, halted (its journal is older than the exchange). A daemon halted before an update is
/// updated and stays halted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_update_when_new_binary_unhealthy_then_rolls_back() {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 1.0));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let settings = std::fs::read_to_string(dir.path().join("polycopy.toml")).unwrap();
    std::fs::write(dir.path().join("polycopy.toml"), settings.replace("127.0.0.1:0", &format!("127.0.0.1:{port}")))
        .unwrap();
    let stage = dir.path().join("bin");
    std::fs::create_dir_all(&stage).unwrap();
    let installed = stage.join("polycopy");
    std::fs::copy(bin(), &installed).unwrap();
    let fake_systemctl = stage.join("systemctl");
    let p = dir.path().display();
    std::fs::write(
        &fake_systemctl,
        format!(
            // Like systemd, a unit whose process dies at once hits its start limit (`Restart=`
            // retried it until `StartLimitBurst`): later starts are refused until `reset-failed`.
            "#!/usr/bin/env bash\nset -u\npidf={p}/daemon.pid\nlimit={p}/start-limit-hit\ncase \"$1\" in\n\
             start) if [ -f $limit ]; then echo 'Start request repeated too quickly.' >&2; exit 1; fi\n\
             cd {p}; {bin} --config polycopy.toml --wallets wallets.json --db journal.db run >> {p}/daemon.log 2>&1 < /dev/null & echo $! > $pidf ;;\n\
             stop) if [ -f $pidf ]; then kill -TERM $(cat $pidf) 2>/dev/null; for i in $(seq 100); do kill -0 $(cat $pidf) 2>/dev/null || break; sleep 0.1; done; rm -f $pidf; fi ;;\n\
             restart) \"$0\" stop; \"$0\" start || exit 1; sleep 0.5; case \"$(ps -o stat= -p $(cat $pidf) 2>/dev/null)\" in ''|Z*) touch $limit ;; esac ;;\n\
             reset-failed) rm -f $limit ;;\n\
             is-active) if [ -f $pidf ] && kill -0 $(cat $pidf) 2>/dev/null; then echo active; else echo inactive; exit 3; fi ;;\nesac\n",
            bin = installed.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake_systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let broken = dir.path().join("broken-polycopy");
    // It answers --version and takes the configuration, then never runs.
    std::fs::write(
        &broken,
        "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'polycopy 9.9.9'; exit 0; }\n\
         for a in \"$@\"; do [ \"$a\" = check-config ] && exit 0; done\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();

    let env = [
        ("SYSTEMCTL", fake_systemctl.to_str().unwrap()),
        ("HEALTH_ARGS", &*format!("--url http://127.0.0.1:{port} --min-disk-mb 1")),
        ("UPDATE_HOLD_S", "2"),
    ];
    let sh = |args: &[&str]| d.script("update.sh", args, &env);
    let ctl = |cmd: &str| {
        run(Command::new(&fake_systemctl).arg(cmd).envs(d.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
    };
    // Whatever happens below, the daemon the fake systemctl started is stopped.
    struct StopOnDrop(PathBuf);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            let _ = Command::new(&self.0).arg("stop").output();
        }
    }
    let _guard = StopOnDrop(fake_systemctl.clone());
    ctl("start");
    d.wait_live().await;
    anvil.emit(&Fill::v2(1, A, C, true, 1, 10 * ONE, 5 * ONE)).await;
    wait_for(20, "a copy", async || (d.trades().len() == 1).then_some(())).await;
    let before = d.trades();

    let bdir = dir.path().join("backups").display().to_string();
    let common = ["--bin-path", installed.to_str().unwrap(), "--backup-dir", &bdir, "--timeout", "8"];
    // A binary that refuses the configuration as it is would exit 78 once restarted: never swapped in.
    let picky = dir.path().join("picky-polycopy");
    std::fs::write(
        &picky,
        "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'polycopy 9.9.8'; exit 0; }\n\
         echo 'wallets.json: wallets[0] (a): something new is required' >&2; exit 78\n",
    )
    .unwrap();
    std::fs::set_permissions(&picky, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, out, err) = sh(&[&[picky.to_str().unwrap()][..], &common[..]].concat());
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("refuses this configuration") && err.contains("something new is required"), "{err}");
    assert_eq!(std::fs::read(&installed).unwrap(), std::fs::read(bin()).unwrap(), "not swapped");
    assert!(!installed.with_extension("prev").exists(), "nothing moved");

    let (code, out, err) = sh(&[&[broken.to_str().unwrap()][..], &common[..]].concat());
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("rolling back") && err.contains("rolled back: the previous version runs again"), "{err}");
    assert_eq!(std::fs::read(&installed).unwrap(), std::fs::read(bin()).unwrap(), "the old binary is back");
    assert_eq!(d.trades(), before, "the journal is back");
    // The journal put back is older than the exchange: the old version runs halted until the
    // operator has reconciled and resumed.
    assert!(err.contains("trading is HALTED") && err.contains("reconcile"), "{err}");
    let b = d.status()["breaker"].clone();
    assert_eq!(b["state"], "halted", "{b}");
    assert!(b["reason"].as_str().unwrap().contains("journal restored from polycopy-"), "{b}");
    let health = |extra: &[&str]| {
        let url = format!("http://127.0.0.1:{port}");
        let args = [&["--url", url.as_str(), "--no-backup-check", "--min-disk-mb", "1"][..], extra].concat();
        d.script("health_check.sh", &args, &[])
    };
    let (code, out, err) = health(&[]);
    assert_eq!(code, 1, "halted is unhealthy: {out}{err}");
    let (code, out, err) = health(&["--allow-halted"]);
    assert_eq!(code, 0, "{out}{err}");

    // A binary that passes the first probe and falls over seconds later (a panic, a watchdog that
    // stops being fed) did not stay healthy: rolled back too.
    let falls_over = dir.path().join("falls-over-polycopy");
    std::fs::write(
        &falls_over,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = run ] && exec timeout 8 {real} \"$@\"; done\nexec {real} \"$@\"\n",
            real = bin()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&falls_over, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut held = env;
    held[2] = ("UPDATE_HOLD_S", "12");
    let (code, out, err) = d.script("update.sh", &[&[falls_over.to_str().unwrap()][..], &common[..]].concat(), &held);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("was healthy, then within 12 s") && err.contains("rolling back"), "{err}");
    assert_eq!(std::fs::read(&installed).unwrap(), std::fs::read(bin()).unwrap(), "the old binary is back");
    assert_eq!(d.status()["breaker"]["state"], "halted");

    // A good binary goes through while halted (the operator's halt stays), then trading resumes.
    let good = bin();
    let (code, out, err) = sh(&[&[good.as_str()][..], &common[..]].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("halted before the update"), "{err}");
    assert!(installed.with_extension("prev").exists());
    assert_eq!(d.status()["breaker"]["state"], "halted");
    let (code, out, err) = d.run_cli(&["resume"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = health(&[]);
    assert_eq!(code, 0, "{out}{err}");

    // A check that already fails before the update (here the disk, asked for more than any disk
    // has) is not the new version's doing: no rollback, and it is said.
    let low_disk = format!("--url http://127.0.0.1:{port} --min-disk-mb 999999999");
    let (code, out, err) = d.script(
        "update.sh",
        &[&[good.as_str()][..], &common[..]].concat(),
        &[("SYSTEMCTL", fake_systemctl.to_str().unwrap()), ("HEALTH_ARGS", &low_disk), ("UPDATE_HOLD_S", "2")],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("failing before the update: disk"), "{err}");
    assert!(err.contains("still failing as before the update, not because of it: disk"), "{err}");
    assert!(!err.contains("rolling back"), "{err}");
    assert_eq!(d.status()["breaker"]["state"], "active", "nothing restored, nothing halted");

    // A rollback whose journal restore is refused (here its wait setting is unusable; a cron job
    // holding the journal past the wait ends the same way): the previous version is started on
    // the journal the new one used, which is the newest, so it is not halted; not left stopped.
    let trades_now = d.trades();
    let refusing = [
        ("SYSTEMCTL", fake_systemctl.to_str().unwrap()),
        ("HEALTH_ARGS", &*format!("--url http://127.0.0.1:{port} --min-disk-mb 1")),
        ("UPDATE_HOLD_S", "2"),
        ("RESTORE_JOB_WAIT_S", "never"),
    ];
    let (code, out, err) = d.script("update.sh", &[&[broken.to_str().unwrap()][..], &common[..]].concat(), &refusing);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("the journal restore was refused, nothing touched"), "{err}");
    assert!(err.contains("rolled back: the previous version runs again"), "{err}");
    assert_eq!(std::fs::read(&installed).unwrap(), std::fs::read(bin()).unwrap(), "the old binary is back");
    assert_eq!(d.trades(), trades_now, "the journal in place is the one kept");
    assert_eq!(d.status()["breaker"]["state"], "active");

    // restore.sh with the service: stops it, restores, starts it, checks health.
    let newest = std::fs::read_dir(dir.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "gz"))
        .max()
        .unwrap();
    let (code, out, err) = d.script("restore.sh", &[newest.to_str().unwrap(), "--db", "journal.db"], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("stopping polycopy") && err.contains("starting polycopy"), "{err}");
    assert!(err.contains("trading is HALTED in the restored journal"), "{err}");
    assert_eq!(d.status()["breaker"]["state"], "halted");
    assert_eq!(d.trades(), before);
    assert!(
        std::fs::read_dir(dir.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("before-restore"))
    );

    // restore.sh --no-service while the daemon runs on that journal: refused, nothing touched
    // (the daemon would take the halt for itself and keep writing the file moved aside).
    let (code, out, err) = d.script("restore.sh", &[newest.to_str().unwrap(), "--no-service"], &env);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("a daemon is still running on") && err.contains("nothing was touched"), "{err}");
    assert_eq!(d.status()["daemon"]["answers"], true, "the daemon runs on, undisturbed");

    // A service the operator stopped stays stopped through an update: only the binary changes.
    ctl("stop");
    // (The last rollback moved the previous binary back: there may be no `.prev` left.)
    let _ = std::fs::remove_file(installed.with_extension("prev"));
    let (code, out, err) = sh(&[&[good.as_str()][..], &common[..]].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("was not running") && err.contains("left stopped"), "{err}");
    assert!(installed.with_extension("prev").exists(), "the binary was swapped");
    assert_eq!(d.status()["daemon"]["running"], false, "nothing was started");
}

/// Every operator script explains itself with --help and exits 0.
#[test]
fn test_scripts_when_asked_for_help_then_explain_themselves() {
    for s in ["backup.sh", "restore.sh", "health_check.sh", "maintenance.sh", "update.sh", "install.sh", "uninstall.sh"]
    {
        let (code, out, err) = run(Command::new("bash").arg(repo().join("scripts").join(s)).arg("--help"));
        assert_eq!(code, 0, "{s}: {err}");
        assert!(out.contains("Usage:"), "{s}: {out}");
        let text = std::fs::read_to_string(repo().join("scripts").join(s)).unwrap();
        assert!(text.contains("set -euo pipefail"), "{s}");
    }
}
