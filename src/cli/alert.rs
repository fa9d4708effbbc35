//! `polycopy alert`: hands a message to the running daemon's notifier through `POST /alert`, the
//! same path the cron scripts use, so `alert --test` proves that path end to end (token, HTTP
//! server, notifier, Telegram). One blocking HTTP/1.1 request over loopback: a client crate would add
//! a dependency for a dozen lines.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Result;

use super::{EXIT_NO_DAEMON, GlobalArgs, settings_or_bail};

/// `alert [--test] [--direct] [MESSAGE]`: exit 0 when the daemon (or, `--direct`, a Telegram chat)
/// took it, 1 when it refused it (rate limit, token) or none did, 3 when no daemon answers, 64 on
/// bad usage.
///
/// # Errors
/// When the settings are invalid (not read with `--direct`).
pub fn alert(g: &GlobalArgs, test: bool, direct: bool, message: Option<&str>) -> Result<i32> {
    let text = match (test, message.map(str::trim)) {
        (true, _) => {
            format!("TEST alert from `polycopy alert --test` on {}: if you read this, alerts reach you", hostname())
        }
        (false, Some(m)) if !m.is_empty() => m.to_owned(),
        _ => {
            eprintln!("error: give a message, or --test");
            return Ok(super::EXIT_USAGE);
        }
    };
    if direct {
        return Ok(send_direct(g, &text));
    }
    let s = settings_or_bail(g)?;
    Ok(match send(&s, &text) {
        Ok(()) => 0,
        Err(code) => code,
    })
}

/// Sends `text` straight to Telegram; the exit code (0 when at least one chat took it).
fn send_direct(g: &GlobalArgs, text: &str) -> i32 {
    // An env file with a bad line is loaded only up to it: the Telegram lines are looked for in the
    // files themselves too, since a broken file may be why the daemon stopped. On an installed
    // server only the installation's file counts, as for every command: a checkout's `.env` where
    // the command happens to run may name a test bot, and the alert would say "sent".
    let dotenv = super::installed_settings(g).is_none().then(|| std::path::PathBuf::from(".env"));
    let files: Vec<std::path::PathBuf> = super::env_file(g).into_iter().chain(dotenv).collect();
    let get = |k: &str| std::env::var(k).ok().or_else(|| files.iter().find_map(|f| telegram_line(f, k)));
    let reach = match crate::config::env::telegram_reach(&get) {
        Ok(r) => r,
        Err(problems) => {
            let why: Vec<String> = problems.iter().map(ToString::to_string).collect();
            eprintln!("error: cannot reach Telegram without the daemon: {}", why.join("; "));
            return 1;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    // Cleaned as the daemon's `POST /alert` cleans it: no control characters, no secret (also those
    // only the env files hold), at most a thousand characters.
    let found = crate::config::env::secrets_each(&get);
    crate::config::env::register_secrets(found.iter().map(String::as_str));
    let Some(text) = crate::http::alert_text(text.as_bytes()) else {
        eprintln!("error: nothing is left of the message once cleaned");
        return super::EXIT_USAGE;
    };
    let (took, failed) = rt.block_on(crate::telegram::direct::send(&reach, &text));
    for f in &failed {
        eprintln!("not delivered: {f}");
    }
    if took == 0 {
        return 1;
    }
    println!("sent straight to Telegram: {took} of {} chat(s)", reach.chats.len());
    0
}

/// Hands `text` to the running daemon's notifier through `POST /alert`; says what happened on
/// stdout/stderr. `Err` carries the exit code: 1 refused or no HTTP server, 3 no daemon.
pub(super) fn send(s: &crate::config::Settings, text: &str) -> Result<(), i32> {
    // The running daemon says where it listens (the settings may name port 0, or an old address).
    let running =
        crate::control::client::ask(&s.control_socket_path(), &crate::control::Request::Status, Duration::from_secs(1))
            .ok()
            .and_then(|r| r.http);
    let Ok(addr) = running.as_deref().unwrap_or(&s.http.listen).parse::<SocketAddr>() else {
        eprintln!(
            "error: the daemon's HTTP server is off (http.listen = {:?}): alerts are relayed through POST /alert",
            s.http.listen
        );
        return Err(1);
    };
    let token_file = crate::alert_gate::token_path(&s.db_path);
    let token = match std::fs::read_to_string(&token_file) {
        Ok(t) => t.trim().to_owned(),
        Err(e) => {
            eprintln!(
                "error: cannot read the alert token {}: {e}. Run as the service user (or root); the daemon \
                 creates it at start",
                token_file.display()
            );
            return Err(if e.kind() == std::io::ErrorKind::NotFound { EXIT_NO_DAEMON } else { 1 });
        }
    };
    match request(addr, "POST", "/alert", Some(&token), text) {
        Ok((200..=299, _)) => {
            println!(
                "the daemon on {addr} took the alert: it goes to its log, the journal's events and every Telegram chat"
            );
            Ok(())
        }
        Ok((code, body)) => {
            eprintln!("the daemon refused the alert ({code}): {}", body.trim());
            Err(1)
        }
        Err(e) => {
            eprintln!("error: no daemon answers on {addr} ({e}): is it running? (`polycopy status`)");
            Err(EXIT_NO_DAEMON)
        }
    }
}

/// One HTTP/1.1 request to the daemon on loopback; returns the status code and body.
pub(super) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut answer = String::new();
    s.take(256 * 1024).read_to_string(&mut answer)?;
    let code = answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let text = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((code, text))
}

/// The value of `key` in the env file `file`, read line by line (a bad line elsewhere is skipped).
fn telegram_line(file: &std::path::Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().rev().find_map(|line| {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned())
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "this server".to_owned(), |h| h.trim().to_owned())
}
