//! The command side of the control socket (blocking: the CLI has no runtime).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{MAX_REPLY, Reply, Request};

/// Why the daemon did not answer.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nobody listens on the socket: no daemon trades on this journal.
    #[error("no daemon is running on this journal (nothing listens on {0})")]
    NoDaemon(String),
    /// Connected, but no complete answer in time.
    #[error("the daemon did not answer on {path} within {ms} ms")]
    Timeout {
        /// The socket.
        path: String,
        /// The wait.
        ms: u128,
    },
    /// The daemon that answers trades another mode or journal than the command means.
    #[error(
        "refused: the daemon on this socket (pid {pid}) trades the {mode} journal {journal}, but the settings name \
         the {want_mode} journal {want_journal}; name its journal with --db to act on it"
    )]
    OtherDaemon {
        /// Its mode.
        mode: String,
        /// Its journal.
        journal: String,
        /// Its process id.
        pid: u32,
        /// The mode the settings name.
        want_mode: String,
        /// The journal the settings name.
        want_journal: String,
    },
    /// Any other failure talking to it.
    #[error("talking to the daemon on {path}: {cause}")]
    Io {
        /// The socket.
        path: String,
        /// What went wrong.
        cause: String,
    },
}

/// The daemon a command means: the mode and the journal its settings name.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// `paper` or `live`; `None` when the command names its journal itself (`--db`), whatever
    /// the settings' mode.
    pub mode: Option<&'a str>,
    /// The journal.
    pub journal: &'a Path,
}

/// [`ask`], for a request that changes what a daemon trades (anything but a halt or a status):
/// the daemon that answers is first asked who it is, and the request is refused unless it trades
/// in the mode and on the journal the command means. A control socket set in the settings is
/// shared by both modes' daemons, so the one answering may be the daemon the operator is moving
/// away from.
///
/// # Errors
/// [`ControlError::OtherDaemon`] for another daemon; as [`ask`] otherwise.
pub fn ask_expected(
    socket: &Path,
    expected: Expected<'_>,
    req: &Request,
    timeout: Duration,
) -> Result<Reply, ControlError> {
    let who = ask(socket, &Request::Status, timeout)?;
    let other_mode = expected.mode.is_some_and(|m| m != who.mode);
    if other_mode || !same_journal(Path::new(&who.journal), expected.journal) {
        return Err(ControlError::OtherDaemon {
            mode: who.mode,
            journal: who.journal,
            pid: who.pid,
            want_mode: expected.mode.unwrap_or("named").to_owned(),
            want_journal: expected.journal.display().to_string(),
        });
    }
    ask(socket, req, timeout)
}

/// Whether the daemon's journal `a` and this command's `b` name one file. This command's relative
/// path is its own working directory's (made absolute here); a daemon names its journal
/// absolutely, so only one that does not (an older one) cannot be compared.
#[must_use]
pub fn same_journal(a: &Path, b: &Path) -> bool {
    if !a.is_absolute() {
        return true;
    }
    let b = std::path::absolute(b).unwrap_or_else(|_| b.to_owned());
    match (std::fs::canonicalize(a), std::fs::canonicalize(&b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Sends `req` to the daemon listening on `socket` and waits at most `timeout` for its reply.
///
/// # Errors
/// [`ControlError::NoDaemon`] when nothing listens, `Timeout` or `Io` otherwise.
pub fn ask(socket: &Path, req: &Request, timeout: Duration) -> Result<Reply, ControlError> {
    let path = socket.display().to_string();
    let stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            return Err(ControlError::NoDaemon(path));
        }
        Err(e) => return Err(ControlError::Io { path, cause: e.to_string() }),
    };
    let io = |e: std::io::Error| {
        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
            ControlError::Timeout { path: path.clone(), ms: timeout.as_millis() }
        } else {
            ControlError::Io { path: path.clone(), cause: e.to_string() }
        }
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line =
        serde_json::to_string(req).map_err(|e| ControlError::Io { path: path.clone(), cause: e.to_string() })?;
    line.push('\n');
    (&stream).write_all(line.as_bytes()).map_err(io)?;
    let mut reader = BufReader::new((&stream).take(MAX_REPLY as u64));
    let mut answer = String::new();
    reader.read_line(&mut answer).map_err(io)?;
    if answer.is_empty() {
        return Err(ControlError::Io { path, cause: "the daemon closed the connection without answering".into() });
    }
    serde_json::from_str(&answer).map_err(|e| ControlError::Io { path, cause: format!("unreadable answer: {e}") })
}
