//! `halt` and `resume`: through the running daemon's control socket when one runs, else stored in
//! the journal for the next start. Either way the operator is told which happened.

use std::time::Duration;

use anyhow::Result;

use super::{EXIT_NO_ACK, EXIT_NO_DAEMON, GlobalArgs, open_store, other_mode_socket, settings_for_control};
use crate::config::Settings;
use crate::control::client::{ControlError, ask};
use crate::control::{Reply, Request};
use crate::risk::{BreakerState, TradingState};
use crate::store::{Store, now_ms};

/// How long a command waits for the daemon's acknowledgement.
const ACK_WAIT: Duration = Duration::from_secs(1);

fn said(r: &Reply) -> String {
    format!("the {} daemon (pid {}, journal {}) {}", r.mode, r.pid, r.journal, r.message)
}

/// Prints the daemon's answer; returns the exit code (0 done, 1 refused).
fn answered(r: &Reply, ok_hint: &str) -> i32 {
    if r.ok {
        println!("{}{ok_hint}", said(r));
        0
    } else {
        eprintln!("{}", said(r));
        1
    }
}

/// `polycopy` with the instance, for the hints we print.
fn cmd(g: &GlobalArgs) -> String {
    g.instance.as_ref().map_or_else(|| "polycopy".to_owned(), |i| format!("polycopy --instance {i}"))
}

/// With no answer on the socket: a daemon may still hold the journal (its socket was removed).
/// It reads the journal's breaker every `risk.breaker_poll_ms`, so the stored change reaches it.
fn no_socket_note(s: &crate::config::Settings, sock: &str) -> (String, i32) {
    match crate::store::lock::holder(&s.db_path) {
        Some(pid) => (
            format!(
                "warning: a daemon{} holds this journal but nothing answers on {sock}: the change is stored in \
                 the journal, which it reads every {} ms; check it with `status`",
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                s.risk.breaker_poll_ms
            ),
            EXIT_NO_ACK,
        ),
        None => (format!("note: no daemon is running on this journal (nothing listens on {sock})"), EXIT_NO_DAEMON),
    }
}

/// Asks the running daemon to carry out `req`; with no daemon, `offline` stores the change in the
/// journal and says what it did. Returns the exit code (0 acknowledged, 1 refused, 3 no daemon,
/// 4 no acknowledgement).
fn reach(
    g: &GlobalArgs,
    s: &Settings,
    req: &Request,
    ok_hint: &str,
    offline: impl FnOnce(&Store) -> Result<String>,
) -> Result<i32> {
    match ask(&s.control_socket_path(), req, ACK_WAIT) {
        Ok(r) => Ok(answered(&r, ok_hint)),
        Err(ControlError::NoDaemon(sock)) => {
            // The mode in the file may have changed since the daemon that trades started: that
            // daemon is the one to act on, and the operator is told.
            if let Some(other) = other_mode_socket(g, s)
                && let Ok(r) = ask(&other, req, ACK_WAIT)
            {
                eprintln!(
                    "warning: the settings say {} mode, but nothing answers on {sock}; the daemon that runs is in {} \
                     mode, so the command went to it (it keeps its mode until it restarts)",
                    s.mode.as_str(),
                    r.mode
                );
                return Ok(answered(&r, ok_hint));
            }
            println!("{}", offline(&open_store(s)?)?);
            let (note, code) = no_socket_note(s, &sock);
            eprintln!("{note}");
            Ok(code)
        }
        Err(e) => {
            if matches!(req, Request::Halt { .. }) {
                // A daemon that does not answer (still starting, say) still reads the journal's
                // breaker every few hundred ms: the halt is stored there as well.
                match open_store(s).and_then(|store| offline(&store)) {
                    Ok(done) => eprintln!("{done}"),
                    Err(e) => eprintln!("error: the halt could not be stored in the journal either: {e:#}"),
                }
            }
            let unit = g.instance.as_ref().map_or_else(|| "polycopy".to_owned(), |i| format!("polycopy@{i}"));
            eprintln!(
                "error: {e}. NOT confirmed: check `systemctl status {unit}`; to stop trading for sure, touch the \
                 emergency stop file {}",
                s.emergency_stop_file.display()
            );
            Ok(EXIT_NO_ACK)
        }
    }
}

/// `halt`: returns the exit code (0 acknowledged, 3 no daemon, 4 no acknowledgement).
///
/// # Errors
/// When the settings are invalid, or with no daemon the journal cannot be written.
pub fn halt(g: &GlobalArgs, reason: &str) -> Result<i32> {
    let s = settings_for_control(g)?;
    if let Ok(t) = std::fs::read_to_string(crate::alert_gate::token_path(&s.db_path)) {
        crate::config::env::register_secrets([t.as_str()]);
    }
    let reason = &crate::config::env::redact(reason);
    let req = Request::Halt { reason: reason.to_owned(), by: "cli".into() };
    let hint = format!(". Undo with `{} resume`.", cmd(g));
    reach(g, &s, &req, &hint, |store| {
        let cur = store.breaker()?;
        if cur.tripped {
            return Ok(format!("already halted ({}) by {}: {}", cur.code, cur.by, cur.reason));
        }
        let state = BreakerState {
            tripped: true,
            code: "manual".into(),
            reason: reason.into(),
            by: "cli".into(),
            since_ms: now_ms(),
            ..BreakerState::default()
        };
        store.set_breaker(&state)?;
        store.add_event("breaker_tripped", &format!("halted from the command line: {reason}"))?;
        Ok(format!("halted in the journal {}: the next start stays halted.", s.db_path.display()))
    })
}

/// `resume`: returns the exit code as [`halt`] does; 1 when refused (stop file present).
///
/// # Errors
/// When the settings are invalid, or with no daemon the journal cannot be written.
pub fn resume(g: &GlobalArgs) -> Result<i32> {
    let s = settings_for_control(g)?;
    if s.emergency_stop_file.exists() {
        eprintln!(
            "refused: the emergency stop file {} is present: remove it first, then resume",
            s.emergency_stop_file.display()
        );
        return Ok(1);
    }
    reach(g, &s, &Request::Resume { by: "cli".into() }, "", |store| {
        let cur = store.breaker()?;
        if cur.trading() == TradingState::Active {
            return Ok("not halted: nothing to resume".to_owned());
        }
        store.set_breaker(&BreakerState { by: "cli".into(), since_ms: now_ms(), ..BreakerState::default() })?;
        let was = format!("{}: {}", cur.code, cur.reason);
        store.add_event("breaker_reset", &format!("resumed from the command line (was {was})"))?;
        Ok(format!("resumed in the journal {} (was {} by {}: {})", s.db_path.display(), cur.code, cur.by, cur.reason))
    })
}
