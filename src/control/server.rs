//! The daemon side of the control socket.
//!
//! A halt closes the trading gate first (so nothing new leaves from that instant, even while the
//! risk supervisor waits on an order in flight), persists the breaker through the journal actor
//! (its own thread), and only then tells the risk supervisor. None of these waits on a venue call,
//! so the acknowledgement comes within a second.

use std::path::{Path, PathBuf};
use std::time::Duration;

use actix::Addr;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, info, warn};

use super::{MAX_LINE, Reply, Request};
use crate::actors::risk_supervisor::{GetBreakerState, HaltAsked, ResumeFrom, RiskSupervisor, SetTrading};
use crate::actors::store::{GetBreaker, NoteHaltAsked, SetBreaker, StoreActor};
use crate::config::Mode;
use crate::risk::{BreakerState, TradingGate};
use crate::store::now_ms;

/// Longest socket path the kernel accepts (`sun_path` less its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// What the control server works with.
#[derive(Debug, Clone)]
pub struct ControlPeers {
    /// The journal actor (persists a halt without waiting on the risk supervisor).
    pub store: Addr<StoreActor>,
    /// The breaker's owner.
    pub risk: Addr<RiskSupervisor>,
    /// Closed at once on a halt.
    pub gate: TradingGate,
    /// While it exists, resume is refused.
    pub stop_file: PathBuf,
    /// Paper or live.
    pub mode: Mode,
    /// The journal this daemon trades on.
    pub journal: PathBuf,
    /// Where its HTTP server listens (`POST /alert`), when it runs one.
    pub http: Option<String>,
    /// What the risk supervisor last published (orders in flight), read without asking it.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// The funder it trades for (live), which a reconcile must have compared the chain with.
    pub funder: Option<alloy::primitives::Address>,
}

/// Removes the socket file when the daemon stops.
#[derive(Debug)]
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Binds the control socket, refusing when another daemon already answers on it (two daemons on one
/// journal would each check the caps against their own memory).
///
/// # Errors
/// A message for the operator: path too long, another daemon running, or the bind failure.
pub fn bind(path: &Path) -> Result<(UnixListener, SocketFile), String> {
    let shown = path.display();
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(format!(
            "the control socket path {shown} is longer than {MAX_SOCKET_PATH} bytes: set control_socket to a shorter path"
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => {
            return Err(format!(
                "another polycopy daemon is running on this journal (it answers on {shown}); stop it first"
            ));
        }
        // A socket left by a daemon that was killed: nobody listens, take it over. Only a socket:
        // a mistyped setting naming the journal or the stop file is refused too, never deleted.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            use std::os::unix::fs::FileTypeExt as _;
            match std::fs::symlink_metadata(path) {
                Ok(m) if m.file_type().is_socket() => {
                    let _ = std::fs::remove_file(path);
                }
                Ok(_) => {
                    return Err(format!(
                        "the control socket path {shown} is an existing file that is not a socket: \
                         control_socket must name a path of its own (it is left untouched)"
                    ));
                }
                Err(_) => {}
            }
        }
        Err(_) => {}
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("cannot listen on {shown}: {e}"))?;
    // The service user and its group (operators in it) may command; nobody else.
    set_mode(path, 0o660).map_err(|e| format!("cannot set the mode of {shown}: {e}"))?;
    Ok((listener, SocketFile(path.to_owned())))
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Answers commands until the listener fails.
pub async fn serve(listener: UnixListener, peers: ControlPeers) {
    info!(socket = ?listener.local_addr().ok().and_then(|a| a.as_pathname().map(Path::to_path_buf)), "control socket ready");
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let peers = peers.clone();
                actix::spawn(async move {
                    if let Err(e) = handle(stream, &peers).await {
                        debug!(cause = %e, "control connection ended with an error");
                    }
                });
            }
            Err(e) => {
                warn!(cause = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(stream: UnixStream, peers: &ControlPeers) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let Some(request) = read_request(read).await else { return Ok(()) };
    let reply = match request {
        Ok(req) => apply(req, peers).await,
        Err(e) => reply(peers, false, format!("unreadable request: {e}"), current(peers).await),
    };
    write_reply(&mut write, &reply).await
}

/// Reads a connection's one request line (within 2 s, at most [`MAX_LINE`] bytes); `None` when
/// none came.
pub(super) async fn read_request(read: OwnedReadHalf) -> Option<Result<Request, serde_json::Error>> {
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_LINE as u64));
    let n = tokio::time::timeout(Duration::from_secs(2), reader.read_line(&mut line)).await;
    matches!(n, Ok(Ok(1..))).then(|| serde_json::from_str::<Request>(&line))
}

/// Writes the reply line and ends the connection.
pub(super) async fn write_reply(write: &mut OwnedWriteHalf, reply: &Reply) -> std::io::Result<()> {
    let mut out = serde_json::to_string(reply).unwrap_or_default();
    out.push('\n');
    write.write_all(out.as_bytes()).await?;
    write.shutdown().await
}

fn reply(peers: &ControlPeers, ok: bool, message: String, breaker: BreakerState) -> Reply {
    Reply {
        ok,
        message,
        pid: std::process::id(),
        mode: peers.mode.as_str().to_owned(),
        journal: peers.journal.display().to_string(),
        halted: peers.gate.is_closed() || breaker.tripped,
        breaker,
        rows: Vec::new(),
        http: peers.http.clone(),
        in_flight: {
            let (orders, held) = peers.metrics.in_flight();
            Some(super::InFlight { orders, reserved_usdc: held.to_string() })
        },
    }
}

/// The breaker as the supervisor holds it, or (while it is busy) as the journal has it.
async fn current(peers: &ControlPeers) -> BreakerState {
    current_as(peers, peers.gate.trading()).await
}

/// [`current`], where `gate` is the trading state the gate held when the request arrived: with
/// neither the supervisor nor the journal answering in time, the state is the gate's and its cause
/// unknown. Never "active" for a daemon that is halted (`status` and health checks would pass it,
/// and a halt would overwrite the real cause with its own).
async fn current_as(peers: &ControlPeers, gate: crate::risk::TradingState) -> BreakerState {
    current_by(peers, gate, tokio::time::Instant::now() + Duration::from_millis(500)).await
}

/// [`current_as`], answered by `deadline` whatever it costs: the supervisor is asked for up to
/// 200 ms, then the journal for up to 300 ms, neither past the deadline.
async fn current_by(
    peers: &ControlPeers,
    gate: crate::risk::TradingState,
    deadline: tokio::time::Instant,
) -> BreakerState {
    let until = |ms: u64| deadline.min(tokio::time::Instant::now() + Duration::from_millis(ms));
    if let Ok(Ok(b)) = tokio::time::timeout_at(until(200), peers.risk.send(GetBreakerState)).await {
        return b;
    }
    if let Ok(Ok(Ok(b))) = tokio::time::timeout_at(until(300), peers.store.send(GetBreaker)).await {
        return b;
    }
    unread_breaker(gate)
}

/// The breaker when neither its owner nor the journal answered: the gate's state, cause unknown.
pub(crate) fn unread_breaker(gate: crate::risk::TradingState) -> BreakerState {
    use crate::risk::TradingState;
    BreakerState {
        tripped: gate == TradingState::Halted,
        reducing: gate == TradingState::Reducing,
        code: "unknown".into(),
        reason: "the daemon is busy: the cause was not read in time".into(),
        by: "daemon".into(),
        ..BreakerState::default()
    }
}

async fn apply(req: Request, peers: &ControlPeers) -> Reply {
    match req {
        Request::Status => {
            let b = current(peers).await;
            reply(peers, true, "running".into(), b)
        }
        Request::Halt { reason, by } => halt(peers, reason, by).await,
        Request::Resume { by } => resume(peers, by).await,
        Request::Close { market, by } => {
            let asked = (peers.gate.halts(), crate::store::now_ms());
            let result =
                super::market_ops::close((&peers.store, &peers.risk), market.as_deref(), &by, asked, None).await;
            let b = current(peers).await;
            match result {
                Ok(started) => {
                    let mut r = reply(peers, true, super::market_ops::close_text(&started, &by), b);
                    r.rows = started.orders.iter().map(|(row, _)| *row).collect();
                    r
                }
                Err(e) => reply(peers, false, e.to_string(), b),
            }
        }
        Request::Adjust { token, shares, compared, price, cause, by, funder } => {
            let result = match other_funder(peers.funder, funder.as_deref()) {
                Some(why) => Err(why),
                None => adjust(peers, &token, (compared, shares), price, cause, by).await,
            };
            let b = current(peers).await;
            match result {
                Ok(m) => reply(peers, true, m, b),
                Err(e) => reply(peers, false, e, b),
            }
        }
        Request::PauseMarket { market, paused, by } => {
            let result = super::market_ops::set_paused(&peers.store, &peers.risk, &market, paused, &by).await;
            let b = current(peers).await;
            match result {
                Ok(m) => reply(peers, true, m, b),
                Err(e) => reply(peers, false, e, b),
            }
        }
    }
}

/// Why a reconcile that compared the chain balances of `compared` must not rebook the positions
/// of a daemon trading for `ours`: every position would read as sold outside (or bought), and
/// exits of shares still held would no longer be mirrored.
fn other_funder(ours: Option<alloy::primitives::Address>, compared: Option<&str>) -> Option<String> {
    let (ours, compared) = (ours?, compared?);
    if compared.parse::<alloy::primitives::Address>().is_ok_and(|c| c == ours) {
        return None;
    }
    Some(format!(
        "refused: reconcile compared the chain balances of {compared}, but this daemon trades for {ours:#x} (the \
         key or funder changed since it started, or the command saw another environment): run reconcile with the \
         daemon's environment, or restart the daemon first"
    ))
}

async fn halt(peers: &ControlPeers, reason: String, by: String) -> Reply {
    let gate_before = peers.gate.trading();
    // From this instant nothing new is sent.
    peers.gate.close();
    let under_way = super::under_way_note(peers.gate.posts_under_way());
    // A reason is stored, logged and sent: never with a secret pasted into it, never unbounded.
    let reason = super::halt_reason(&reason);
    // The command line waits 1 s for the answer: every wait below fits inside 0.8 s in all.
    let answer_by = tokio::time::Instant::now() + Duration::from_millis(800);
    let before = current_as(peers, gate_before).await;
    let at = now_ms();
    if before.tripped {
        // The halt stands as it is; its time is journaled, so that a close started before it
        // stays stopped after a restart.
        let store = peers.store.send(NoteHaltAsked(at));
        let _ = tokio::time::timeout_at(answer_by, store).await;
        peers.risk.do_send(HaltAsked { at_ms: at, reason: reason.clone(), by: by.clone() });
        let msg = format!("already halted ({}) by {}: {}", before.code, before.by, before.reason);
        return reply(peers, true, msg, before);
    }
    let state = BreakerState {
        tripped: true,
        code: "manual".into(),
        reason: reason.clone(),
        by: by.clone(),
        since_ms: at,
        reducing: false,
        halt_asked_ms: at,
    };
    let persisted =
        matches!(tokio::time::timeout_at(answer_by, peers.store.send(SetBreaker(state.clone()))).await, Ok(Ok(Ok(()))));
    peers.risk.do_send(SetTrading { halt: true, code: "manual", reason, by });
    let msg = if persisted {
        format!("halted: nothing new is sent{under_way}")
    } else {
        format!(
            "halted: nothing new is sent{under_way} (the journal did not confirm the write in time; the daemon writes \
             it again)"
        )
    };
    reply(peers, true, msg, state)
}

async fn resume(peers: &ControlPeers, by: String) -> Reply {
    // A halt that comes after this instant wins over this resume, even one that found trading
    // halted already and so changed nothing the supervisor holds.
    let halts_seen = peers.gate.halts();
    // The command line waits 1 s for the answer: every wait below fits inside 0.85 s in all (a
    // busy supervisor made it 1.9 s, and a resume carried out was said to be unconfirmed).
    let answer_by = tokio::time::Instant::now() + Duration::from_millis(850);
    if peers.stop_file.exists() {
        let msg =
            format!("the emergency stop file {} is present: remove it first, then resume", peers.stop_file.display());
        return reply(peers, false, msg, current(peers).await);
    }
    let before = current_by(peers, peers.gate.trading(), answer_by - Duration::from_millis(450)).await;
    if before.trading() == crate::risk::TradingState::Active && !peers.gate.is_closed() {
        return reply(peers, true, "not halted: nothing to resume".into(), before);
    }
    // The message is queued at once; the supervisor answers within the wait (it never waits on a venue).
    let req = peers.risk.send(ResumeFrom { since_ms: None, halts_seen, last_halt_ms: None, by });
    match tokio::time::timeout_at(answer_by - Duration::from_millis(150), req).await {
        Ok(Ok(true)) => {
            let after = current_by(peers, peers.gate.trading(), answer_by).await;
            let msg = format!("resumed (was {} by {}: {})", before.code, before.by, before.reason);
            reply(peers, !after.tripped, msg, after)
        }
        Ok(Ok(false)) => {
            let after = current_by(peers, peers.gate.trading(), answer_by).await;
            // Another resume (the Telegram button) may have been first: then this one had nothing to do.
            if after.trading() == crate::risk::TradingState::Active && !peers.gate.is_closed() {
                return reply(peers, true, "already resumed: trading is active".into(), after);
            }
            let msg =
                "not resumed: trading was halted again while the resume waited its turn; resume again if that is \
                       still wanted"
                    .to_owned();
            reply(peers, false, msg, after)
        }
        _ => reply(
            peers,
            true,
            "resume queued: the supervisor did not confirm within 0.7 s; check `status`".into(),
            before,
        ),
    }
}

/// Books a reconcile correction through the journal actor, then gives the supervisor the new
/// position (it owns the book the limits are checked against).
async fn adjust(
    peers: &ControlPeers,
    token: &str,
    (compared, shares): (Option<i64>, i64),
    price: i64,
    cause: String,
    by: String,
) -> Result<String, String> {
    let t: crate::domain::TokenId = token.parse().map_err(|_| format!("{token:?} is not a token id"))?;
    let said = |from: crate::domain::Shares, to: crate::domain::Shares| {
        format!("position in token {t} set from {from} to {to} shares by {by} ({cause})")
    };
    let req = crate::actors::store::AdjustPosition {
        token: t,
        compared: compared.map(crate::domain::Shares),
        to: crate::domain::Shares(shares),
        price: crate::domain::Price(price),
        cause: cause.clone(),
        by: by.clone(),
    };
    match peers.store.send(req).await {
        Ok(Ok((before, pos))) => {
            let said = said(before.shares, pos.position.shares);
            peers.risk.do_send(crate::actors::risk_supervisor::BookAdjusted { token: t, before, position: pos, said });
            Ok(format!("position in {t} is now {} shares", pos.position.shares))
        }
        Ok(Err(e)) => Err(format!("the journal could not book it: {e}")),
        Err(_) => Err("the journal is unavailable right now".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::TradingState;

    #[test]
    fn a_breaker_not_read_in_time_is_the_gates_state_and_never_active_for_a_halted_daemon() {
        // (gate, tripped, reducing)
        for (gate, tripped, reducing) in [
            (TradingState::Halted, true, false),
            (TradingState::Reducing, false, true),
            (TradingState::Active, false, false),
        ] {
            let b = unread_breaker(gate);
            assert_eq!((b.tripped, b.reducing), (tripped, reducing), "{gate:?}");
            assert_eq!(b.code, "unknown", "{gate:?}");
            assert!(b.reason.contains("busy"), "{gate:?}: {}", b.reason);
        }
    }
}
