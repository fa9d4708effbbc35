//! The control socket while the daemon starts. It is bound first (a second daemon is refused at
//! once), but the actors that answer it exist only once the start's checks are done, which in
//! live mode ask the exchange (seconds when it is slow). Meanwhile a halt is carried out here: it
//! is stored in the journal and told to the risk supervisor as soon as it exists, before anything
//! can be sent; `status` is answered from the journal; any other request is asked again later.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::{Reply, Request};
use crate::config::Mode;
use crate::risk::BreakerState;
use crate::store::{Store, now_ms};

/// A halt carried out while the daemon started: its reason and who asked.
pub type HaltedWhileStarting = Option<(String, String)>;

/// How long the hand-over waits for connections still being answered (a request is read within
/// 2 s, and a journal write waits at most 5 s for the lock).
const HAND_OVER_WAIT: Duration = Duration::from_secs(8);

/// The socket answered while the daemon starts; [`Starting::serving`] hands it back.
#[derive(Debug)]
pub struct Starting {
    /// Dropped (the start failed) or sent: the answering task ends.
    done: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<UnixListener>,
    shared: Arc<Shared>,
}

/// What the answering tasks tell the start.
#[derive(Debug)]
struct Shared {
    /// The journal, absolute as the daemon names it.
    journal: PathBuf,
    mode: Mode,
    /// A halt carried out.
    halted: std::sync::Mutex<HaltedWhileStarting>,
    /// Connections accepted and not answered yet: the hand-over waits for them, so that a halt
    /// being written then is not missed.
    open: AtomicUsize,
}

impl Starting {
    /// Answers `listener` for a daemon starting on `journal`, in `mode`.
    #[must_use]
    pub fn answer(listener: UnixListener, journal: &Path, mode: Mode) -> Self {
        let (done, mut until) = oneshot::channel();
        let journal = std::path::absolute(journal).unwrap_or_else(|_| journal.to_path_buf());
        let shared = Arc::new(Shared { journal, mode, halted: std::sync::Mutex::new(None), open: AtomicUsize::new(0) });
        let each = shared.clone();
        let task = actix::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut until => return listener,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let open = Open::count(each.clone());
                            actix::spawn(async move {
                                if let Err(e) = handle(stream, &open.0).await {
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
        Self { done, task, shared }
    }

    /// The socket, for the daemon's own server once its actors run, and the halt carried out
    /// meanwhile (told to the risk supervisor at once: its next read of the journal may be a
    /// quarter of a second away). Requests still being answered are waited for first.
    ///
    /// # Errors
    /// When the answering task ended some other way (it panicked).
    pub async fn serving(self) -> Result<(UnixListener, HaltedWhileStarting), String> {
        let _ = self.done.send(());
        let listener = self.task.await.map_err(|e| format!("the control socket's start-up task failed: {e}"))?;
        let until = tokio::time::Instant::now() + HAND_OVER_WAIT;
        while self.shared.open.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let halted = self.shared.halted.lock().map(|mut h| h.take()).unwrap_or(None);
        Ok((listener, halted))
    }
}

/// One connection being answered, counted until it is dropped (however its handler ends).
struct Open(Arc<Shared>);

impl Open {
    fn count(shared: Arc<Shared>) -> Self {
        shared.open.fetch_add(1, Ordering::AcqRel);
        Self(shared)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn handle(stream: UnixStream, shared: &Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let Some(request) = super::server::read_request(read).await else { return Ok(()) };
    let (ok, message, breaker) = match request {
        Ok(Request::Halt { reason, by }) => halt(shared, reason, by).await,
        // The journal's breaker: what the daemon starts with, and any halt stored since.
        Ok(Request::Status) => (true, "starting".to_owned(), stored_breaker(&shared.journal).await),
        Ok(_) => (
            false,
            "the daemon is starting (its checks can take a few seconds when the exchange is slow): ask again in a \
             moment; a halt is carried out at once"
                .to_owned(),
            stored_breaker(&shared.journal).await,
        ),
        Err(e) => (false, format!("unreadable request: {e}"), stored_breaker(&shared.journal).await),
    };
    super::server::write_reply(&mut write, &answer(shared, ok, message, breaker)).await
}

/// Carries out a halt: stored in the journal, and noted for the hand-over.
async fn halt(shared: &Shared, reason: String, by: String) -> (bool, String, BreakerState) {
    let (journal, live, who) = (shared.journal.clone(), !shared.mode.is_paper(), by.clone());
    match tokio::task::spawn_blocking(move || store_halt(&journal, live, &reason, &who)).await {
        Ok(Ok((breaker, message, newly))) => {
            if newly && let Ok(mut h) = shared.halted.lock() {
                *h = Some((breaker.reason.clone(), by));
            }
            (true, message, breaker)
        }
        Ok(Err(e)) => (
            false,
            format!("the daemon is starting and its journal refused the halt: {e}"),
            stored_breaker(&shared.journal).await,
        ),
        Err(e) => {
            (false, format!("the daemon is starting and the halt failed: {e}"), stored_breaker(&shared.journal).await)
        }
    }
}

/// Stores a halt in the journal (or, halted already, the time it was asked), synced at once in
/// live mode as the daemon's own writes are. Returns the breaker, what to say, and whether it
/// halted now.
fn store_halt(journal: &Path, live: bool, reason: &str, by: &str) -> Result<(BreakerState, String, bool), String> {
    let store = Store::open_existing(journal).map_err(|e| e.to_string())?;
    if live {
        store.sync_every_commit().map_err(|e| e.to_string())?;
    }
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

/// The journal's breaker, or (unreadable) one that says halted for all anyone can tell: never
/// "active" for a daemon that may be halted.
async fn stored_breaker(journal: &Path) -> BreakerState {
    let j = journal.to_path_buf();
    match tokio::task::spawn_blocking(move || Store::open_existing(&j).and_then(|s| s.breaker())).await {
        Ok(Ok(b)) => b,
        _ => super::server::unread_breaker(crate::risk::TradingState::Halted),
    }
}

fn answer(shared: &Shared, ok: bool, message: String, breaker: BreakerState) -> Reply {
    Reply {
        ok,
        message,
        pid: std::process::id(),
        mode: shared.mode.as_str().to_owned(),
        journal: shared.journal.display().to_string(),
        halted: breaker.tripped && !breaker.reducing,
        breaker,
        rows: Vec::new(),
        http: None,
        in_flight: None,
    }
}
