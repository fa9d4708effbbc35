//! Starts the daemon: opens the journal, recovers unfinished work, starts every actor and the chain
//! feed, watches wallets.json and signals, and shuts down cleanly.

mod background;
mod detection;
mod inputs;
mod opening;
mod redeemer;
mod trading;
mod wallets_file;

use std::time::Duration;

use actix::Addr;
use tracing::{info, warn};

use crate::actors::copier::Copier;
use crate::actors::notifier::{Event, Flushed, Notifier};
use crate::actors::risk_supervisor::Flush;
use crate::actors::store::{GetCheckpoint, StoreActor, Unfinished};
use crate::actors::watcher::{HandedOn, Recover, Registry, Reload};
use crate::config::{Env, Settings};
use crate::store::StoreError;
use inputs::Inputs;

/// Everything the daemon runs with.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Settings.
    pub settings: Settings,
    /// Endpoints and secrets.
    pub env: Env,
}

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The journal could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// wallets.json is invalid at start.
    #[error("{file} is invalid:\n{problems}")]
    Wallets {
        /// The file.
        file: String,
        /// Every problem.
        problems: String,
    },
    /// The health/metrics address cannot be bound.
    #[error("cannot serve /health and /metrics on {addr} (change http.listen, or set it to \"\" to turn it off)")]
    Http {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A setting cannot be put to work.
    #[error("cannot start: {0}")]
    Setup(String),
    /// The journal holds copies of the other mode: a configuration to fix, not a start to retry.
    #[error("cannot start: {0}")]
    OtherModesJournal(String),
    /// The live-trading setup failed its checks.
    #[error("live trading cannot start:\n{0}")]
    Live(String),
    /// The CLOB refused the API credentials (a clock off, an incident at the CLOB): a restart
    /// may work, unlike [`DaemonError::Live`].
    #[error("live trading cannot start yet:\n{0}")]
    LiveCredentials(String),
    /// An actor went away during start.
    #[error("actor unavailable during start: {0}")]
    Mailbox(String),
}

fn mailbox(e: actix::MailboxError) -> DaemonError {
    DaemonError::Mailbox(e.to_string())
}

/// Runs the daemon until SIGINT or SIGTERM. Must be called inside an actix `System`.
///
/// The start runs in phases, each in its own module: `opening` checks everything that can refuse
/// a start, `trading` starts the actors that own state and orders, `inputs` builds what brings
/// fills in, `background` starts the tasks beside the trading path. Recovery of what a crash
/// interrupted comes last, before the feed runs.
///
/// # Errors
/// When it cannot start: journal, wallets.json.
pub async fn run_daemon(cfg: DaemonConfig) -> Result<(), DaemonError> {
    // Taken over first: a SIGHUP's default action ends the process, and systemd would not restart
    // a daemon that ended on it. One arriving during the start is acted on once it is up. SIGTERM
    // and SIGINT keep ending a start at once (`systemctl stop` must not wait for it).
    let mut signals = Signals::install_hangup();
    // An actor that dies of a panic ends the daemon from now on, rather than leave it half-running.
    crate::actors::vital::arm();
    let s = &cfg.settings;
    let o = opening::open(s).await?;
    // Held until the daemon returns: the journal's lock and the control socket's file.
    let (_journal_lock, _control_file) = (o.journal_lock, o.control_file);
    // A halt asked while the start checks the exchange is carried out at once (stored in the
    // journal, read by the risk supervisor as it starts), not left unanswered behind those checks.
    let starting = crate::control::starting::Starting::answer(o.control, &s.db_path, s.mode);
    let t = trading::start(s, &cfg.env, o.store, o.state, o.journal_file, o.now).await?;
    let (control, halted) = starting.serving().await.map_err(DaemonError::Setup)?;
    if let Some((reason, by)) = halted {
        t.gate.close();
        t.risk.do_send(crate::actors::risk_supervisor::SetTrading { halt: true, code: "manual", reason, by });
    }
    // One token ends every background task at shutdown (see crate::tasks).
    let stop = tokio_util::sync::CancellationToken::new();
    crate::tasks::spawn_until(&stop, crate::control::server::serve(control, control_peers(s, &t, o.http.as_ref())));
    let mut i = inputs::build(s, &cfg.env, &t, &o.wallets, o.paused).await;
    // Between reading wallets.json and watching it (tests act inside this window).
    crate::fault::hold_at("hold_before_watching").await;
    let b = background::start(s, &cfg.env, &t, &i, o.http, &stop).await?;

    // Finish what a crash interrupted before anything new comes in: the feed starts only once
    // every fill journaled before the last stop (and any order sent for it) is decided. A reorg
    // while the daemon was down is found first, so nothing is sent for a trade it took away.
    i.feed.check_before_recovery(Duration::from_secs(3)).await;
    let unfinished = t.store.send(Unfinished).await.map_err(mailbox)??;
    if !unfinished.is_empty() {
        info!(count = unfinished.len(), "recovering fills journaled before the last stop");
        let n = i.registry.send(Recover(unfinished)).await.map_err(mailbox)?;
        info!(decided = n, "recovery finished");
    }
    // Cancels a previous run could not get answered: asked again in the background.
    if let Some(venue) = &t.venue {
        actix::spawn(crate::actors::live_executor::pay_owed_cancels(venue.clone(), t.writer.clone()));
    }

    // The feed stops first at shutdown (no new fills), on its own child of the token.
    let feed_stop = stop.child_token();
    let Inputs { copier, registry, feed, mut status, n_targets, rpc, targets, act_now, .. } = i;
    let feed_task = actix::spawn(feed.run(feed_stop.clone()));
    let sources =
        detection::Sources { rpc: &rpc, registry: &registry, targets: &targets, act_now: &act_now, feed: &status };
    detection::start(s, &t, &sources, &feed_stop);
    let stops = Stops { all: stop.clone(), feed: feed_stop, pings: b.pings.clone() };
    announce(&cfg, &t, n_targets);
    // The status is read and let go in the arm: a reference held on would block the feed's updates.
    let early = tokio::select! {
        st = status.wait_for(|st| st.live) => {
            if let Ok(st) = st {
                info!(block = st.processed, "chain feed live");
                crate::service::status(&format!("copying {n_targets} targets from block {}", st.processed));
            }
            None
        }
        r = wait_for_signal(&registry, &mut signals) => Some(r),
    };
    let reason = match early {
        Some(r) => r,
        None => wait_for_signal(&registry, &mut signals).await,
    };
    shutdown(reason, &stops, feed_task, (&registry, &copier), &t.notifier, &t.store, b.telegram.as_ref()).await;
    drop(b.file_watcher);
    t.reports.stop();
    Ok(())
}

/// What the CLI's control socket acts on.
fn control_peers(
    s: &Settings,
    t: &trading::Trading,
    http: Option<&tokio::net::TcpListener>,
) -> crate::control::server::ControlPeers {
    crate::control::server::ControlPeers {
        store: t.store.clone(),
        risk: t.risk.clone(),
        gate: t.gate.clone(),
        stop_file: s.emergency_stop_file.clone(),
        mode: s.mode,
        // Absolute: a command run from another directory compares it with its own journal.
        journal: std::path::absolute(&s.db_path).unwrap_or_else(|_| s.db_path.clone()),
        http: http.and_then(|l| l.local_addr().ok()).map(|a| a.to_string()),
        metrics: t.metrics.clone(),
        funder: t.venue.as_ref().map(|v| v.funder()),
    }
}

/// Tells systemd the start is done, and the log and the operator what started.
fn announce(cfg: &DaemonConfig, t: &trading::Trading, n_targets: usize) {
    let s = &cfg.settings;
    // Alive and trying: systemd may count the start done now; the chain may still be unreachable
    // (a provider outage must not become a restart loop), which /health shows and the feed alerts.
    crate::service::ready(&format!("started with {n_targets} targets; waiting for the chain"));
    let mode = if s.mode.is_paper() { "PAPER" } else { "LIVE" };
    let funder = t.venue.as_ref().map_or_else(|| "none (paper)".to_owned(), |v| format!("{:#x}", v.funder()));
    info!(mode, funder = %funder, targets = n_targets, db = %s.db_path.display(), rpc = ?cfg.env.rpc_urls.iter().map(|u| crate::config::redact_url(u)).collect::<Vec<_>>(), "polycopy started");
    let b = &t.state_at_start;
    let trading = (b.tripped || b.reducing).then(|| {
        format!(
            "trading is {} ({}) by {}: {} — nothing new is bought{} until /resume",
            b.trading().as_str().to_ascii_uppercase(),
            b.code,
            b.by,
            b.reason,
            if b.reducing { " (exits still copied)" } else { " or sold" }
        )
    });
    t.notifier.do_send(Event::Started { mode, targets: n_targets, version: env!("CARGO_PKG_VERSION"), trading });
    if s.mode.is_paper() {
        tell_live_left_open(s, t);
    }
}

/// A paper daemon started while the live journal still holds real positions or orders of unknown
/// outcome (the operator switched back to paper): nothing follows them now (no exits mirrored, no
/// redemption, no lookups), so the operator is told at every start until they are closed.
fn tell_live_left_open(s: &crate::config::Settings, t: &trading::Trading) {
    if s.live.db_path == s.db_path {
        return;
    }
    let (path, notifier) = (s.live.db_path.clone(), t.notifier.clone());
    // Read off the actors' thread: another journal's file, however slow, never holds up a halt.
    actix::spawn(async move {
        let read = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || crate::store::other_journal::left_open(&path)).await
        };
        match read {
            Ok(Ok(None)) => {}
            Ok(Ok(Some(l))) => {
                let message = format!(
                    "the live journal {} still holds {} open position(s) bought with real money (cost {} USDC) and \
                     {} order(s) whose outcome is not settled, and this daemon trades PAPER: nothing mirrors their \
                     exits, redeems them or looks the orders up. Switch back to live to close them (RUNBOOK: Going \
                     back to paper)",
                    path.display(),
                    l.positions,
                    l.cost,
                    l.orders
                );
                tracing::error!("{message}");
                notifier.do_send(Event::Error { message });
            }
            Ok(Err(e)) => warn!(journal = %path.display(), cause = %e, "the live journal could not be read"),
            Err(e) => warn!(journal = %path.display(), cause = %e, "the live journal's read failed"),
        }
    });
}

/// The daemon's cancellation token and the children that stop first.
struct Stops {
    /// Every background task.
    all: tokio_util::sync::CancellationToken,
    /// The chain feed.
    feed: tokio_util::sync::CancellationToken,
    /// The systemd watchdog pings.
    pings: tokio_util::sync::CancellationToken,
}

async fn shutdown(
    reason: &'static str,
    stops: &Stops,
    feed_task: tokio::task::JoinHandle<()>,
    (registry, copier): (&Addr<Registry>, &Addr<Copier>),
    notifier: &Addr<Notifier>,
    store: &Addr<StoreActor>,
    telegram: Option<&crate::telegram::Telegram>,
) {
    info!(reason, "shutting down: no new fills; letting in-flight copies finish");
    stops.pings.cancel();
    crate::service::stopping();
    stops.feed.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), feed_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), registry.send(HandedOn)).await;
    if tokio::time::timeout(Duration::from_secs(5), copier.send(Flush)).await.is_err() {
        warn!("in-flight copies did not finish within 5 s; they are resolved at the next start");
    }
    notifier.do_send(Event::Stopped { reason: reason.to_owned() });
    // Bounded like every step before: a wedged actor or writer must not turn a stop into systemd's
    // SIGKILL at TimeoutStopSec (what was journaled before stays; the rest is recovered at start).
    if tokio::time::timeout(Duration::from_secs(3), notifier.send(Flushed)).await.is_err() {
        warn!("the reports did not flush within 3 s");
    }
    if let Some(tg) = telegram
        && tokio::time::timeout(Duration::from_secs(6), tg.drain(Duration::from_secs(5))).await.is_err()
    {
        warn!("Telegram's queue did not drain within 6 s; what is held is sent at the next start");
    }
    // The store handles messages in order: this reply means everything before it is written.
    // All the waits of a stop add up to 27 s at most, inside the unit's TimeoutStopSec (30 s).
    if tokio::time::timeout(Duration::from_secs(3), store.send(GetCheckpoint)).await.is_err() {
        warn!("the journal did not confirm its last writes within 3 s; what it wrote is recovered at the next start");
    }
    stops.all.cancel();
    info!("stopped");
}

/// Waits for SIGINT/SIGTERM (returning which), reloading wallets.json on every SIGHUP meanwhile.
/// The signals the daemon answers once up: SIGTERM and SIGINT stop it, SIGHUP reloads wallets.json.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Takes SIGHUP over (the others keep their default action until the daemon is up).
    fn install_hangup() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let hup = signal(SignalKind::hangup())
            .map_err(|e| warn!(cause = %e, "cannot take SIGHUP over: it would end the daemon; reload with a file edit"))
            .ok();
        Self { term: None, int: None, hup }
    }
}

async fn wait_for_signal(registry: &Addr<Registry>, signals: &mut Signals) -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Signals { term, int, hup } = signals;
    if term.is_none() || int.is_none() {
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(t), Ok(i)) => (*term, *int) = (Some(t), Some(i)),
            _ => {
                warn!("cannot install signal handlers; stop with SIGKILL");
                return std::future::pending().await;
            }
        }
    }
    let (Some(term), Some(int)) = (term, int) else { return std::future::pending().await };
    loop {
        let hangup = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term.recv() => return "SIGTERM",
            _ = int.recv() => return "SIGINT",
            _ = hangup => {
                info!("SIGHUP: reloading wallets.json");
                registry.do_send(Reload);
            }
        }
    }
}
