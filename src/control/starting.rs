//! The control socket while the daemon starts. It is bound first (a second daemon is refused at
//! once), but the actors that answer it exist only once the start's checks are done, which in
//! live mode ask the exchange (seconds when it is slow). Meanwhile a halt is carried out here: it
//! is stored in the journal, whose breaker the risk supervisor reads as it starts, before anything
//! can be sent; any other request is asked again later.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::{MAX_LINE, Reply, Request};
use crate::config::Mode;
use crate::risk::BreakerState;
use crate::store::{Store, now_ms};

/// A halt carried out while the daemon started: its reason and who asked.
pub type HaltedWhileStarting = Option<(String, String)>;

/// The socket answered while the daemon starts; [`Starting::serving`] hands it back.
#[derive(Debug)]
pub struct Starting {
    /// Dropped (the start failed) or sent: the answering task ends.
    done: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<UnixListener>,
    halted: std::sync::Arc<std::sync::Mutex<HaltedWhileStarting>>,
}

impl Starting {
    /// Answers `listener` for a daemon starting on `journal`, in `mode`.
    #[must_use]
    pub fn answer(listener: UnixListener, journal: PathBuf, mode: Mode) -> Self {
        let (done, mut until) = oneshot::channel();
        let halted = std::sync::Arc::new(std::sync::Mutex::new(None));
        let noted = halted.clone();
        let task = actix::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut until => return listener,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let (journal, noted) = (journal.clone(), noted.clone());
                            actix::spawn(async move {
                                if let Err(e) = handle(stream, journal, mode, noted).await {
                                    debug!(cause = %e, "control connection ended with an error during the start");
                                }
                            });
                        }
                        Err(e) => {
                            warn!(cause = %e, "control socket accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                }
            }
        });
        Self { done, task, halted }
    }

    /// The socket, for the daemon's own server once its actors run, and the halt carried out
    /// meanwhile (told to the risk supervisor at once: its next read of the journal may be a
    /// quarter of a second away).
    ///
    /// # Errors
    /// When the answering task ended some other way (it panicked).
    pub async fn serving(self) -> Result<(UnixListener, HaltedWhileStarting), String> {
        let _ = self.done.send(());
        let listener = self.task.await.map_err(|e| format!("the control socket's start-up task failed: {e}"))?;
        let halted = self.halted.lock().map(|mut h| h.take()).unwrap_or(None);
        Ok((listener, halted))
    }
}

async fn handle(
    stream: UnixStream,
    journal: PathBuf,
    mode: Mode,
    noted: std::sync::Arc<std::sync::Mutex<HaltedWhileStarting>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_LINE as u64));
    let n = tokio::time::timeout(Duration::from_secs(2), reader.read_line(&mut line)).await;
    if !matches!(n, Ok(Ok(1..))) {
        return Ok(());
    }
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(Request::Halt { reason, by }) => {
            let (j, why, who) = (journal.clone(), reason.clone(), by.clone());
            match tokio::task::spawn_blocking(move || store_halt(&j, &why, &who)).await {
                Ok(Ok((breaker, message, newly))) => {
                    if newly && let Ok(mut h) = noted.lock() {
                        *h = Some((breaker.reason.clone(), by));
                    }
                    answer(&journal, mode, true, message, breaker)
                }
                Ok(Err(e)) => answer(
                    &journal,
                    mode,
                    false,
                    format!("the daemon is starting and its journal refused the halt: {e}"),
                    BreakerState::default(),
                ),
                Err(e) => answer(
                    &journal,
                    mode,
                    false,
                    format!("the daemon is starting and the halt failed: {e}"),
                    BreakerState::default(),
                ),
            }
        }
        Ok(_) => answer(
            &journal,
            mode,
            false,
            "the daemon is starting (its checks can take a few seconds when the exchange is slow): ask again in a \
             moment; a halt is carried out at once"
                .into(),
            BreakerState::default(),
        ),
        Err(e) => answer(&journal, mode, false, format!("unreadable request: {e}"), BreakerState::default()),
    };
    let mut out = serde_json::to_string(&reply).unwrap_or_default();
    out.push('\n');
    write.write_all(out.as_bytes()).await?;
    write.shutdown().await
}

/// Stores a halt in the journal (or, halted already, the time it was asked): what the risk
/// supervisor reads as it starts. Returns the breaker, what to say, and whether it halted now.
fn store_halt(journal: &std::path::Path, reason: &str, by: &str) -> Result<(BreakerState, String, bool), String> {
    let store = Store::open_existing(journal).map_err(|e| e.to_string())?;
    let before = store.breaker().map_err(|e| e.to_string())?;
    let at = now_ms();
    if before.tripped && !before.reducing {
        store.note_halt_asked(at).map_err(|e| e.to_string())?;
        let message = format!("already halted ({}) by {}: {}", before.code, before.by, before.reason);
        return Ok((before, message, false));
    }
    let state = BreakerState {
        tripped: true,
        code: "manual".into(),
        reason: super::halt_reason(reason),
        by: by.to_owned(),
        since_ms: at,
        reducing: false,
        halt_asked_ms: at,
    };
    store.set_breaker(&state).map_err(|e| e.to_string())?;
    info!(by, "halted while the daemon starts: stored in the journal, read before anything is sent");
    Ok((state, "halted: the daemon is still starting and sends nothing before it has read this halt".into(), true))
}

fn answer(journal: &std::path::Path, mode: Mode, ok: bool, message: String, breaker: BreakerState) -> Reply {
    Reply {
        ok,
        message,
        pid: std::process::id(),
        mode: mode.as_str().to_owned(),
        journal: journal.display().to_string(),
        halted: breaker.tripped && !breaker.reducing,
        breaker,
        rows: Vec::new(),
        http: None,
        in_flight: None,
    }
}
