//! `polycopy incident`: one file with the evidence an incident review needs (status, health,
//! breaker history, recent events and trades, the configuration without secrets, the last log lines,
//! versions), written owner-only. Every secret the process knows is scrubbed from all of it, and
//! environment values are never copied at all (only which variables are set).

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use secrecy::ExposeSecret as _;

use super::{GlobalArgs, open_store, settings_or_bail};
use crate::config::{Env, Settings};
use crate::store::now_ms;

/// Log lines taken from journald.
const LOG_LINES: u32 = 300;

/// `incident [--out FILE]`: writes the bundle and prints its path.
///
/// # Errors
/// When the settings are invalid or the file cannot be written.
pub fn incident(g: &GlobalArgs, out: Option<&Path>) -> Result<i32> {
    let s = settings_or_bail(g)?;
    let env = Env::from_process().ok();
    let secrets = secrets(&s, env.as_ref());
    let secret_refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let mut b = String::new();
    section(&mut b, "polycopy incident bundle", &header(&s, g));
    let status = match super::status::status_value(&s) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        Err(e) => format!("unavailable: {e:#}"),
    };
    section(&mut b, "status (polycopy status --json)", &status);
    section(&mut b, "health (GET /health of the running daemon)", &health(&s));
    section(&mut b, "journal: breaker history, warnings, recent events and trades", &journal(&s));
    section(&mut b, "settings files (as read; secrets are never in them, scrubbed anyway)", &settings_text(&s));
    section(
        &mut b,
        "wallets.json",
        // A key pasted into it by mistake (any key, not only the one this process knows) is masked.
        &std::fs::read_to_string(&s.wallets_path)
            .map_or_else(|e| format!("unreadable: {e}"), |t| crate::config::problem::mask_key_shaped(&t)),
    );
    section(&mut b, "environment (which variables are set; values are never copied)", &env_names());
    section(&mut b, &format!("last {LOG_LINES} log lines (journald)"), &journal_log(g));
    let text = crate::config::env::scrub(&b, &secret_refs);
    let path = out.map_or_else(
        || PathBuf::from(format!("polycopy-incident-{}.txt", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"))),
        Path::to_path_buf,
    );
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    println!("{}", path.display());
    eprintln!("incident bundle written (mode 0600): attach it to the incident record; no secret is in it");
    Ok(0)
}

fn section(b: &mut String, title: &str, body: &str) {
    let _ = writeln!(b, "===== {title} =====\n{}\n", body.trim_end());
}

fn header(s: &Settings, g: &GlobalArgs) -> String {
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned())))
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!(
        "written {} (unix ms {})\nhost {}\npolycopy {}\nSQLite {}\nOS {os}, kernel {}\nmode {}, instance {}\nsettings {}\njournal {}",
        chrono::Utc::now().to_rfc3339(),
        now_ms(),
        host.trim(),
        env!("CARGO_PKG_VERSION"),
        rusqlite::version(),
        kernel.trim(),
        s.mode.as_str(),
        g.instance.as_deref().unwrap_or("(default)"),
        s.origin,
        s.db_path.display()
    )
}

/// Everything secret this process knows: the key, the bot token, the alert token and the chain
/// endpoints (their URLs often carry an API key), in full and in their telling parts.
fn secrets(s: &Settings, env: Option<&Env>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(e) = env {
        if let Some(k) = &e.private_key {
            let k = k.expose_secret().trim().to_owned();
            out.push(k.trim_start_matches("0x").to_owned());
            out.push(k);
        }
        if let Some(t) = &e.telegram_bot_token {
            out.push(t.expose_secret().to_owned());
        }
        for u in e.rpc_urls.iter().chain(e.ws_url.iter()) {
            out.push(u.clone());
            if let Ok(p) = url::Url::parse(u) {
                out.extend(p.path_segments().into_iter().flatten().filter(|seg| seg.len() >= 12).map(str::to_owned));
                out.extend(p.query().map(str::to_owned));
                if !p.password().unwrap_or_default().is_empty() {
                    out.push(p.password().unwrap_or_default().to_owned());
                }
            }
        }
    }
    // Read each on its own too: the environment may be invalid (one bad variable), its secrets not.
    out.extend(crate::config::env::secrets_each(&|k| std::env::var(k).ok()));
    if let Ok(t) = std::fs::read_to_string(crate::alert_gate::token_path(&s.db_path)) {
        out.push(t.trim().to_owned());
    }
    // Longest first, so a secret containing another is removed whole.
    out.sort_by_key(|x| std::cmp::Reverse(x.len()));
    out
}

fn health(s: &Settings) -> String {
    let reply =
        crate::control::client::ask(&s.control_socket_path(), &crate::control::Request::Status, Duration::from_secs(1));
    let Some(addr) = reply.ok().and_then(|r| r.http).and_then(|a| a.parse().ok()) else {
        return "no running daemon answered (or its HTTP server is off)".into();
    };
    match super::alert::request(addr, "GET", "/health", None, "") {
        Ok((code, body)) => format!("HTTP {code}\n{body}"),
        Err(e) => format!("unavailable: {e}"),
    }
}

fn journal(s: &Settings) -> String {
    let store = match open_store(s) {
        Ok(st) => st,
        Err(e) => return format!("unavailable: {e:#}"),
    };
    let mut b = String::new();
    let kinds: [(&str, &[&str], u32); 3] = [
        ("breaker history (newest first)", &["breaker_tripped", "breaker_reset"], 100),
        ("warnings and alerts (newest first)", &["warning", "alert", "error", "operator"], 100),
        ("all events (newest first)", &[], 200),
    ];
    for (title, which, n) in kinds {
        let _ = writeln!(b, "--- {title}");
        match store.recent_events(which, n) {
            Ok(rows) => {
                for (at, kind, message) in rows {
                    let when = chrono::DateTime::from_timestamp_millis(at).map(|t| t.to_rfc3339()).unwrap_or_default();
                    let _ = writeln!(b, "{when} {kind}: {message}");
                }
            }
            Err(e) => {
                let _ = writeln!(b, "unavailable: {e}");
            }
        }
    }
    let _ = writeln!(b, "--- last 50 trades (polycopy trades --json)");
    match store.trades(50) {
        Ok(rows) => b.push_str(&serde_json::to_string_pretty(&rows).unwrap_or_default()),
        Err(e) => b.push_str(&format!("unavailable: {e}")),
    }
    b
}

fn settings_text(s: &Settings) -> String {
    let mut b = String::new();
    // Joined as `settings_load` joins them.
    for f in s.origin.split(" + ").map(str::trim).filter(|f| !f.is_empty() && Path::new(f).is_file()) {
        let _ = writeln!(b, "--- {f}");
        match std::fs::read_to_string(f) {
            Ok(t) => b.push_str(&redact_toml(&t)),
            Err(e) => b.push_str(&format!("unreadable: {e}\n")),
        }
    }
    if b.is_empty() { format!("built-in defaults only ({})", s.origin) } else { b }
}

/// Settings hold no secrets by design; a line whose key looks like one is cut anyway.
fn redact_toml(t: &str) -> String {
    t.lines()
        .map(|l| {
            let key = l.split('=').next().unwrap_or("").trim().to_ascii_lowercase();
            let secretish = ["key", "token", "secret", "password", "passphrase"].iter().any(|w| key.contains(w));
            if l.contains('=') && secretish {
                format!("{} = <redacted>\n", l.split('=').next().unwrap_or("").trim())
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

fn env_names() -> String {
    let known = [
        "POLYGON_RPC_URL",
        "POLYGON_RPC_FALLBACK_URLS",
        "POLYGON_WS_URL",
        "PRIVATE_KEY",
        "CLOB_HOST",
        "GAMMA_URL",
        "GEOBLOCK_URL",
        "PAPER_TRADING",
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_CHAT_ID",
        "TELEGRAM_API_URL",
    ];
    let mut names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("POLYCOPY_") || known.contains(&k.as_str()))
        .collect();
    names.sort();
    if names.is_empty() {
        return "none of polycopy's variables is set in this shell (the service reads its own environment file)".into();
    }
    names.iter().map(|n| format!("{n}: set")).collect::<Vec<_>>().join("\n")
}

/// The service's last log lines, bounded in time; says why when there are none.
fn journal_log(g: &GlobalArgs) -> String {
    let unit = super::unit_name(g);
    let child = std::process::Command::new("journalctl")
        .args(["-u", &unit, "-n", &LOG_LINES.to_string(), "--no-pager", "-o", "short-iso"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => return format!("journalctl is not available here ({e}): attach the log by hand"),
    };
    // Read on a thread: a full pipe must not stall us, and a hung journalctl must not hang the bundle.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(done) = rx.recv_timeout(Duration::from_secs(10)) else {
        return "journalctl did not answer within 10 s".into();
    };
    match done {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => format!("journalctl failed: {}", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => format!("journalctl failed: {e}"),
    }
}
