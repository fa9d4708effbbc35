//! The daemon that trades, when it is not the one the settings file names: a daemon reads its
//! settings once, at its start, so after the file's mode was changed and the service not restarted
//! the other mode's daemon still trades. Commands find it here (see `settings_or_bail`).

use std::path::PathBuf;

use super::{GlobalArgs, other_mode_socket};
use crate::config::{Mode, Settings};

/// The daemon that trades in the other mode than the settings file now says: the file's mode was
/// changed and the service not restarted (a daemon reads its settings once, at its start).
#[derive(Debug, Clone)]
pub(super) struct OtherModeDaemon {
    /// Its mode.
    pub(super) mode: Mode,
    /// Its journal (absolute, as it names it).
    pub(super) journal: PathBuf,
    /// Its process id.
    pid: u32,
}

impl OtherModeDaemon {
    /// The situation in words, for a warning or a refusal.
    pub(super) fn describe(&self, file_mode: Mode) -> String {
        format!(
            "the settings say {} mode, but the daemon that trades (pid {}) runs {} on the journal {} (its mode \
             is read at its start: restart the service to apply the file's)",
            file_mode.as_str(),
            self.pid,
            self.mode.as_str(),
            self.journal.display()
        )
    }

    /// Points `s` at that daemon: its mode and journal (and so its control socket, which follows
    /// the journal).
    pub(super) fn follow(&self, s: &mut Settings) {
        s.mode = self.mode;
        s.db_path.clone_from(&self.journal);
    }
}

/// With `--db`, the mode of the daemon that answers on that journal, when it differs from the
/// file's (the file switched, the service not restarted): a `reconcile` of the live journal named
/// so must not answer "paper mode: nothing to reconcile". With no daemon on it, the journal's own
/// copies say its mode (one journal never holds both: a daemon refuses the other mode's).
pub(super) fn mode_of_the_named_journals_daemon(g: &GlobalArgs, s: &mut Settings) {
    use crate::control::{Request, client::ask};
    if g.db.is_none() {
        return;
    }
    let Ok(who) = ask(&s.control_socket_path(), &Request::Status, std::time::Duration::from_secs(2)) else {
        mode_of_the_journal(s);
        return;
    };
    let Some(mode) = Mode::parse(&who.mode) else { return };
    if crate::control::client::same_journal(std::path::Path::new(&who.journal), &s.db_path) {
        take_mode(s, mode, |db, m| format!("the daemon on {} trades {m}", db.display()));
    }
}

/// `s` takes `mode` when it is not the file's, saying why (`said`, of the journal and the mode).
fn take_mode(s: &mut Settings, mode: Mode, said: fn(&std::path::Path, &str) -> String) {
    if mode != s.mode {
        eprintln!(
            "note: {} (the settings say {}): this command acts in its mode",
            said(&s.db_path, mode.as_str()),
            s.mode.as_str()
        );
        s.mode = mode;
    }
}

/// The mode of the copies the journal `s` names holds, when it holds only one mode's and it is not
/// the file's: `s` takes it, with a note.
fn mode_of_the_journal(s: &mut Settings) {
    use rusqlite::OpenFlags;
    // Read only, as it is: opening it as the journal would migrate an older daemon's schema (which
    // that daemon, rolled back to, would then refuse), and this command may only read.
    let Ok(c) = rusqlite::Connection::open_with_flags(&s.db_path, OpenFlags::SQLITE_OPEN_READ_ONLY) else { return };
    let holds = |m: crate::domain::ExecMode| {
        c.query_row("SELECT EXISTS (SELECT 1 FROM executions WHERE mode = ?1)", [m.as_str()], |r| r.get::<_, bool>(0))
            .unwrap_or(false)
    };
    let mode = match (holds(crate::domain::ExecMode::Paper), holds(crate::domain::ExecMode::Live)) {
        (false, true) => Mode::Live,
        (true, false) => Mode::Paper,
        _ => return,
    };
    take_mode(s, mode, |db, m| format!("the journal {} holds {m} copies", db.display()));
}

/// [`OtherModeDaemon`], when no daemon answers on the settings' own control socket and one
/// answers on the other mode's. Every command acts on the daemon that trades: a status, a close, a
/// backup or a reconcile run against the idle journal of the file's new mode would look fine and
/// act on nothing. `None` with `--db` (the command names its journal). With a control socket set
/// in the settings (shared by both modes) the daemon answering there is the one that trades: it is
/// followed when its mode is not the file's.
pub(super) fn daemon_of_the_other_mode(g: &GlobalArgs, s: &Settings) -> Option<OtherModeDaemon> {
    use crate::control::{Request, client::ask};
    const WAIT: std::time::Duration = std::time::Duration::from_secs(2);
    if g.db.is_none() && !s.control_socket.as_os_str().is_empty() {
        let who = ask(&s.control_socket_path(), &Request::Status, WAIT).ok()?;
        let mode = Mode::parse(&who.mode)?;
        return (mode != s.mode).then(|| OtherModeDaemon { mode, journal: PathBuf::from(who.journal), pid: who.pid });
    }
    let other = other_mode_socket(g, s)?;
    if ask(&s.control_socket_path(), &Request::Status, WAIT).is_ok() {
        return None;
    }
    let who = ask(&other, &Request::Status, WAIT).ok()?;
    let mode = Mode::parse(&who.mode)?;
    (mode != s.mode).then(|| OtherModeDaemon { mode, journal: PathBuf::from(who.journal), pid: who.pid })
}
