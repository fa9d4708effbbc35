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
    /// Any other failure talking to it.
    #[error("talking to the daemon on {path}: {cause}")]
    Io {
        /// The socket.
        path: String,
        /// What went wrong.
        cause: String,
    },
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
