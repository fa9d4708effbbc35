//! `halt` and `resume`: through the running daemon's control socket when one runs, else stored in
//! the journal for the next start. Either way the operator is told which happened.

use std::time::Duration;

use anyhow::Result;

use super::{
    EXIT_NO_ACK, EXIT_NO_DAEMON, GlobalArgs, open_store, open_store_for_halt, other_mode_journal_held,
    other_mode_socket, settings_for_control,
};
use crate::config::Settings;
use crate::control::client::{ControlError, ask, ask_expected};
use crate::control::{Reply, Request};
use crate::risk::{BreakerState, TradingState};
use crate::store::{Store, now_ms};

/// How long a command waits for the daemon's acknowledgement.
const ACK_WAIT: Duration = Duration::from_secs(1);

fn said(r: &Reply) -> String {
    format!("the {} daemon (pid {}, journal {}) {}", r.mode, r.pid, r.journal, r.message)
}

/// Prints the daemon's answer; returns the exit code (0 done, 1 refused, 4 a resume the daemon
/// took but has not carried out yet: it is still halted).
fn answered(r: &Reply, ok_hint: &str, req: &Request) -> i32 {
    if r.ok && r.halted && matches!(req, Request::Resume { .. }) {
        eprintln!("{}. NOT confirmed yet: check with `status` before counting on it", said(r));
        EXIT_NO_ACK
    } else if r.ok {
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

/// What stores a change in a journal and says so: the journal, and the settings it is under.
type Offline<'a> = &'a dyn Fn(&Store, &Settings) -> Result<String>;

/// Asks the running daemon to carry out `req`; with no daemon, `offline` stores the change in the
/// journal and says what it did. Returns the exit code (0 acknowledged, 1 refused, 3 no daemon,
/// 4 no acknowledgement).
fn reach(g: &GlobalArgs, s: &Settings, req: &Request, ok_hint: &str, offline: Offline<'_>) -> Result<i32> {
    let is_halt = matches!(req, Request::Halt { .. });
    let answer = if matches!(req, Request::Halt { .. }) {
        // A halt goes to whichever daemon answers: stopping the wrong one too costs nothing.
        ask(&s.control_socket_path(), req, ACK_WAIT)
    } else {
        ask_expected(&s.control_socket_path(), super::expected(g, s), req, ACK_WAIT)
    };
    match answer {
        Ok(r) if is_halt => Ok(halt_answered(g, s, &r, ok_hint, req, offline)),
        Ok(r) => Ok(answered(&r, ok_hint, req)),
        Err(e @ ControlError::OtherDaemon { .. }) => {
            eprintln!("{e}");
            Ok(1)
        }
        Err(ControlError::NoDaemon(sock)) => {
            // The mode in the file may have changed since the daemon that trades started.
            if let Some(other) = other_mode_socket(g, s) {
                match other_daemon(g, s, req, &other, &sock, ok_hint) {
                    OtherDaemon::None => {}
                    OtherDaemon::Done(code) if is_halt => {
                        // Not carried out there (no answer in time, or refused): stored in the
                        // journal it holds, which it reads every few hundred ms.
                        if code != 0 {
                            halt_the_held_journal_of_the_other_mode(g, s, offline);
                        }
                        // The journal the file names is halted too: its next start stays halted.
                        if s.db_path.exists() {
                            store_too(s, offline);
                        }
                        return Ok(code);
                    }
                    OtherDaemon::Done(code) => return Ok(code),
                }
            }
            // No socket answers (removed), but the daemon that trades may hold the other mode's
            // journal: the file's mode was switched and the service not restarted.
            if is_halt && halt_the_held_journal_of_the_other_mode(g, s, offline) {
                if s.db_path.exists() {
                    store_too(s, offline);
                }
                eprintln!(
                    "NOT confirmed: nothing answers on {sock}; to stop trading for sure, touch the emergency stop file {}",
                    s.emergency_stop_file.display()
                );
                return Ok(EXIT_NO_ACK);
            }
            let store = if is_halt { open_store_for_halt(s)? } else { open_store(s)? };
            println!("{}", offline(&store, s)?);
            let (note, code) = no_socket_note(s, &sock);
            eprintln!("{note}");
            Ok(code)
        }
        Err(e) => {
            if is_halt {
                // A daemon that does not answer (still starting, say) still reads the journal's
                // breaker every few hundred ms: the halt is stored there as well, and in the other
                // mode's journal if a daemon holds it (a shared socket: the one not answering may
                // be that one).
                let held = halt_the_held_journal_of_the_other_mode(g, s, offline);
                if !held || s.db_path.exists() {
                    store_too(s, offline);
                }
            }
            let unit = super::unit_name(g);
            eprintln!(
                "error: {e}. NOT confirmed: check `systemctl status {unit}`; to stop trading for sure, touch the \
                 emergency stop file {}",
                s.emergency_stop_file.display()
            );
            Ok(EXIT_NO_ACK)
        }
    }
}

/// A daemon's answer to a halt. One that did not carry it out leaves it stored in the journal and
/// unconfirmed; one that trades another journal than the settings name (a shared control socket,
/// the mode switched in the file) leaves the named journal halted as well, so that its next start
/// stays halted.
fn halt_answered(g: &GlobalArgs, s: &Settings, r: &Reply, ok_hint: &str, req: &Request, offline: Offline<'_>) -> i32 {
    if !r.ok {
        eprintln!(
            "{}. NOT confirmed: the halt is stored in the journal as well; to stop trading for sure, touch the \
             emergency stop file {}",
            said(r),
            s.emergency_stop_file.display()
        );
        store_too(s, offline);
        if !crate::control::client::same_journal(std::path::Path::new(&r.journal), &s.db_path) {
            halt_the_held_journal_of_the_other_mode(g, s, offline);
        }
        return EXIT_NO_ACK;
    }
    let code = answered(r, ok_hint, req);
    if !crate::control::client::same_journal(std::path::Path::new(&r.journal), &s.db_path) && s.db_path.exists() {
        eprintln!(
            "warning: the daemon that answered trades the {} journal {}, not the {} journal {} the settings name: \
             that one is halted too",
            r.mode,
            r.journal,
            s.mode.as_str(),
            s.db_path.display()
        );
        store_too(s, offline);
    }
    code
}

/// Stores the halt in the other mode's journal of these settings when a daemon holds it (its lock
/// is taken): the file's mode was switched and the service not restarted, so that daemon trades
/// there, and reads the journal's breaker every `risk.breaker_poll_ms` whether or not its socket
/// answers. Says so; returns whether it was held. An instance's journals are its own: no other
/// instance's daemon is reached.
fn halt_the_held_journal_of_the_other_mode(g: &GlobalArgs, s: &Settings, offline: Offline<'_>) -> bool {
    let Some((other, pid)) = other_mode_journal_held(g, s) else { return false };
    eprintln!(
        "warning: the settings say {} mode, but a daemon{} holds the {} journal {} (the file's mode was changed \
         and the service not restarted): the halt is stored there, which it reads every {} ms; check it with \
         `status`",
        s.mode.as_str(),
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        other.mode.as_str(),
        other.db_path.display(),
        other.risk.breaker_poll_ms
    );
    store_too(&other, offline);
    true
}

/// Stores the change in the journal as well, saying what happened.
fn store_too(s: &Settings, offline: Offline<'_>) {
    match open_store_for_halt(s).and_then(|store| offline(&store, s)) {
        Ok(done) => eprintln!("{done}"),
        Err(e) => eprintln!("error: the change could not be stored in the journal either: {e:#}"),
    }
}

/// What the daemon of the other mode made of a command.
enum OtherDaemon {
    /// None runs there.
    None,
    /// It answered, or was found and did not: the exit code.
    Done(i32),
}

/// With nothing on the socket of the mode the file names: a daemon of the other mode may be the
/// one that trades (the file was switched, the service not yet restarted). A halt goes to it; a
/// resume is refused, since it could restart the trading the operator is moving away from.
fn other_daemon(
    g: &GlobalArgs,
    s: &Settings,
    req: &Request,
    other: &std::path::Path,
    sock: &str,
    ok_hint: &str,
) -> OtherDaemon {
    let is_halt = matches!(req, Request::Halt { .. });
    let asked = if is_halt { req } else { &Request::Status };
    match ask(other, asked, ACK_WAIT) {
        Err(ControlError::NoDaemon(_)) => OtherDaemon::None,
        Err(e) => {
            eprintln!(
                "error: nothing answers on {sock}, and a daemon of the other mode on {} did not answer either: {e}. \
                 NOT confirmed: to stop trading for sure, touch the emergency stop file {}",
                other.display(),
                s.emergency_stop_file.display()
            );
            OtherDaemon::Done(EXIT_NO_ACK)
        }
        Ok(r) if is_halt => {
            eprintln!(
                "warning: the settings say {} mode, but nothing answers on {sock}; the daemon that runs is in {} \
                 mode, so the halt went to it (it keeps its mode until it restarts)",
                s.mode.as_str(),
                r.mode
            );
            OtherDaemon::Done(answered(&r, ok_hint, req))
        }
        Ok(r) => {
            eprintln!(
                "refused: the settings say {} mode, but the daemon that runs is the {} one (pid {}, journal {}). \
                 To resume it, name its journal: `{} --db {} resume`",
                s.mode.as_str(),
                r.mode,
                r.pid,
                r.journal,
                cmd(g),
                r.journal,
            );
            OtherDaemon::Done(1)
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
    let reason = &crate::control::halt_reason(reason);
    let req = Request::Halt { reason: reason.to_owned(), by: "cli".into() };
    let hint = format!(". Undo with `{} resume`.", cmd(g));
    reach(g, &s, &req, &hint, &|store, at_journal| {
        let cur = store.breaker()?;
        let at = now_ms();
        if cur.tripped {
            // The halt stands; its time is journaled for the daemon's next start.
            store.note_halt_asked(at)?;
            return Ok(format!("already halted ({}) by {}: {}", cur.code, cur.by, cur.reason));
        }
        let state = BreakerState {
            tripped: true,
            code: "manual".into(),
            reason: reason.into(),
            by: "cli".into(),
            since_ms: at,
            halt_asked_ms: at,
            ..BreakerState::default()
        };
        store.set_breaker(&state)?;
        store.add_event("breaker_tripped", &format!("halted from the command line: {reason}"))?;
        Ok(format!("halted in the journal {}: the next start stays halted.", at_journal.db_path.display()))
    })
}

/// `resume`: returns the exit code as [`halt`] does; 1 when refused (stop file present, or a halt
/// came after the resume was asked for).
///
/// # Errors
/// When the settings are invalid, or with no daemon the journal cannot be written.
pub fn resume(g: &GlobalArgs) -> Result<i32> {
    let s = super::settings_for_resume(g)?;
    if s.emergency_stop_file.exists() {
        eprintln!(
            "refused: the emergency stop file {} is present: remove it first, then resume",
            s.emergency_stop_file.display()
        );
        return Ok(1);
    }
    reach(g, &s, &Request::Resume { by: "cli".into() }, "", &|store, at_journal| {
        // A daemon that runs but does not answer would open trading from the journal without the
        // ordering the socket gives (a halt asked after this resume must win): a resume is only
        // ever carried out where it can be acknowledged.
        if let Some(pid) = crate::store::lock::holder(&at_journal.db_path) {
            anyhow::bail!(
                "not resumed: a daemon{} holds {} but nothing answers on its control socket; restart it \
                 (`systemctl restart polycopy`, or `polycopy@NAME` for a named instance), then resume",
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                at_journal.db_path.display()
            );
        }
        let cur = store.breaker()?;
        if cur.trading() == TradingState::Active {
            return Ok("not halted: nothing to resume".to_owned());
        }
        store.set_breaker(&BreakerState { by: "cli".into(), since_ms: now_ms(), ..BreakerState::default() })?;
        let was = format!("{}: {}", cur.code, cur.reason);
        store.add_event("breaker_reset", &format!("resumed from the command line (was {was})"))?;
        Ok(format!(
            "resumed in the journal {} (was {} by {}: {})",
            at_journal.db_path.display(),
            cur.code,
            cur.by,
            cur.reason
        ))
    })
}
