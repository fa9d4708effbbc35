//! A staged install (`install.sh --root`), operated as on a server: the daemon is started exactly as
//! the installed unit says (its ExecStart arguments, WorkingDirectory and EnvironmentFile), and the
//! operator's commands run from another directory with a clean environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{bin, output, wait_for};

/// One staged installation (default instance or a named one).
pub struct Installed {
    pub root: PathBuf,
    pub instance: Option<String>,
    pub port: u16,
    child: Option<Child>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A clean environment: PATH only.
pub fn clean(c: &mut Command) -> &mut Command {
    c.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default())
}

impl Installed {
    /// Runs `install.sh --root ROOT` (with `--instance`/`--http-port` when given).
    pub fn stage(root: &Path, instance: Option<&str>) -> Self {
        let port = free_port();
        let mut c = Command::new("bash");
        c.arg(repo().join("scripts/install.sh")).args(["--root", root.to_str().unwrap(), "--bin", &bin()]);
        c.args(["--http-port", &port.to_string()]);
        if let Some(i) = instance {
            c.args(["--instance", i]);
        }
        let (code, out, err) = output(clean(&mut c).output().unwrap());
        assert_eq!(code, 0, "install.sh failed: {out}{err}");
        Self { root: root.to_owned(), instance: instance.map(str::to_owned), port, child: None }
    }

    fn sub(&self) -> String {
        self.instance.as_ref().map_or(String::new(), |i| format!("/{i}"))
    }

    /// The instance's settings file.
    pub fn settings(&self) -> PathBuf {
        self.root.join(format!("etc/polycopy{}/polycopy.toml", self.sub()))
    }

    /// The instance's environment file.
    pub fn env_file(&self) -> PathBuf {
        self.root.join(format!("etc/polycopy{}/polycopy.env", self.sub()))
    }

    /// The instance's state directory.
    pub fn state(&self) -> PathBuf {
        self.root.join(format!("var/lib/polycopy{}", self.sub()))
    }

    /// Puts `line` at the top of the settings (before any section), or into `[section]`.
    pub fn set(&self, section: Option<&str>, line: &str) {
        let p = self.settings();
        let s = std::fs::read_to_string(&p).unwrap();
        let s = match section {
            None => format!("{line}\n{s}"),
            Some(sec) => {
                let header = format!("[{sec}]\n");
                if s.contains(&header) {
                    s.replacen(&header, &format!("{header}{line}\n"), 1)
                } else {
                    format!("{s}\n{header}{line}\n")
                }
            }
        };
        std::fs::write(p, s).unwrap();
    }

    /// Replaces `from` by `to` in the settings.
    pub fn edit(&self, from: &str, to: &str) {
        let p = self.settings();
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(s.contains(from), "{from} not in {s}");
        std::fs::write(p, s.replace(from, to)).unwrap();
    }

    /// Test pacing (fast polls, short timeouts) in the installed settings.
    pub fn fast(&self) {
        for (sec, line) in [
            ("chain", "poll_interval_ms = 100"),
            ("chain", "request_timeout_ms = 2000"),
            ("risk", "breaker_poll_ms = 100"),
            ("risk", "max_order_usdc = 1000"),
            ("risk", "max_position_usdc = 5000"),
            ("risk", "max_total_exposure_usdc = 10000"),
            ("telegram", "daily_report_at = \"off\""),
        ] {
            self.set(Some(sec), line);
        }
    }

    /// Appends `KEY=VALUE` lines to the environment file the unit reads.
    pub fn env(&self, pairs: &[(&str, &str)]) {
        let p = self.env_file();
        let mut s = std::fs::read_to_string(&p).unwrap();
        for (k, v) in pairs {
            s.push_str(&format!("\n{k}={v}\n"));
        }
        std::fs::write(p, s).unwrap();
    }

    /// The unit file's `Key=` values, with `%i` expanded.
    fn unit(&self) -> BTreeMap<String, String> {
        let name = if self.instance.is_some() { "polycopy@.service" } else { "polycopy.service" };
        let text = std::fs::read_to_string(self.root.join("etc/systemd/system").join(name)).unwrap();
        let inst = self.instance.clone().unwrap_or_default();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().replace("%i", &inst)))
            .collect()
    }

    /// `KEY=VALUE` pairs of an environment file as systemd reads it (comments and blanks skipped).
    fn env_pairs(path: &Path) -> Vec<(String, String)> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }

    /// Starts the daemon exactly as the installed unit does: ExecStart's arguments, its
    /// WorkingDirectory, and its EnvironmentFile less UnsetEnvironment as the only environment
    /// (plus PATH).
    pub fn start(&mut self) {
        let unit = self.unit();
        let exec: Vec<&str> = unit["ExecStart"].split_whitespace().collect();
        let env_file = PathBuf::from(&unit["EnvironmentFile"]);
        let wd = PathBuf::from(&unit["WorkingDirectory"]);
        assert!(exec[0].starts_with(self.root.to_str().unwrap()), "a staged unit runs the staged binary: {exec:?}");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let mut c = Command::new(exec[0]);
        c.args(&exec[1..]).current_dir(&wd);
        let unset: Vec<String> =
            unit.get("UnsetEnvironment").map_or_else(Vec::new, |v| v.split_whitespace().map(str::to_owned).collect());
        let pairs = Self::env_pairs(&env_file).into_iter().filter(|(k, _)| !unset.contains(k));
        clean(&mut c).envs(pairs).stdout(Stdio::null()).stderr(log);
        self.child = Some(c.spawn().unwrap());
    }

    fn log_path(&self) -> PathBuf {
        self.root.join(format!("daemon{}.log", self.sub().replace('/', "-")))
    }

    /// The daemon's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until the daemon's feed is live.
    pub async fn wait_live(&self) {
        wait_for(30, "the installed daemon to go live", async || {
            let log = self.log();
            match (log.rfind("polycopy started"), log.rfind("chain feed live")) {
                (Some(s), Some(l)) if l > s => Some(()),
                _ => {
                    assert!(!log.contains("Error:"), "the daemon failed to start:\n{log}");
                    None
                }
            }
        })
        .await;
    }

    /// Stops the daemon (SIGTERM, as systemd does) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }

    /// The daemon's process, when it exited: its status.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    /// The health server.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The installed `polycopy` with `args`, run from `cwd` with a clean environment.
    pub fn cli(&self, cwd: &Path, args: &[&str]) -> (i32, String, String) {
        self.cli_env(cwd, args, &[])
    }

    /// [`Installed::cli`] with `env` added to the clean environment (what the operator's shell exports).
    pub fn cli_env(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut c = Command::new(self.root.join("usr/local/bin/polycopy"));
        if let Some(i) = &self.instance {
            c.args(["--instance", i]);
        }
        c.args(args).current_dir(cwd);
        output(clean(&mut c).envs(env.iter().copied()).output().unwrap())
    }

    /// An installed script with `args` (and `--instance`), run from `cwd` with a clean environment.
    pub fn script(&self, cwd: &Path, name: &str, args: &[&str]) -> (i32, String, String) {
        let mut c = Command::new("bash");
        c.arg(self.root.join("usr/local/lib/polycopy").join(name));
        if let Some(i) = &self.instance {
            c.args(["--instance", i]);
        }
        c.args(args).current_dir(cwd);
        output(clean(&mut c).output().unwrap())
    }
}
