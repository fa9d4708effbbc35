//! The start's second phase: the actors that own state and orders (journal, reports, executor,
//! risk supervisor), wired together.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use tracing::{info, warn};

use super::DaemonError;
use crate::actors::executor::PaperExecutor;
use crate::actors::live_executor::{LiveExecutor, LiveRules};
use crate::actors::notifier::{Notifier, ReportWriter};
use crate::actors::risk_supervisor::{RiskConfig, RiskPeers, RiskState, RiskSupervisor};
use crate::actors::store::{StoreActor, Writer};
use crate::clob::venue::{Venue, VenueConfig};
use crate::config::{Env, Settings};
use crate::metrics::Metrics;
use crate::risk::{BreakerState, TradingGate};
use crate::store::Store;
use crate::store::identity::FileIdentity;

/// The actors that trade, started.
pub(super) struct Trading {
    /// The journal's actor (reads, and writes in order with them).
    pub store: Addr<StoreActor>,
    /// The journal's writer thread (group commit).
    pub writer: Writer,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The thread reports run on; stopped last.
    pub reports: actix::Arbiter,
    /// Where every action is reported.
    pub notifier: Addr<Notifier>,
    /// Closed while trading is halted: checked just before anything is sent.
    pub gate: TradingGate,
    /// The trading state the daemon started in (reported at start).
    pub state_at_start: BreakerState,
    /// The CLOB, in live mode.
    pub venue: Option<Arc<Venue>>,
    /// The risk supervisor.
    pub risk: Addr<RiskSupervisor>,
    /// Which file the journal is (for `/health`).
    pub journal: Option<(PathBuf, FileIdentity)>,
    /// When the start began (ms since the epoch).
    pub started_ms: i64,
    /// How far the feed has journaled the chain (the live executor reads it).
    pub chain_clock: crate::chain::ChainClock,
}

/// Starts the journal's writer, the reports' thread, the executor for this mode and the risk
/// supervisor holding `state`. Live mode checks its setup first, as `polycopy doctor` does.
pub(super) async fn start(
    s: &Settings,
    env: &Env,
    store: Store,
    state: RiskState,
    journal: Option<(PathBuf, FileIdentity)>,
    started_ms: i64,
) -> Result<Trading, DaemonError> {
    let paper = s.mode.is_paper();
    // The journal's writer thread owns this connection from here on.
    let store =
        StoreActor::new(store).map_err(|e| DaemonError::Setup(format!("cannot start the journal writer: {e}")))?;
    let writer = store.writer();
    let store: Addr<StoreActor> = store.start();
    let metrics = Arc::new(Metrics::default());
    metrics.live.store(!paper, std::sync::atomic::Ordering::Relaxed);
    // Reports (formatting, logging, the events log, forwarding to Telegram) run on a thread of
    // their own: they never hold up a copy or a halt, and a backfill's thousands of `copied` lines
    // (a third of the actor thread's time when they shared it) cost the trading path nothing.
    let reports = actix::Arbiter::new();
    let notifier = {
        let (store, metrics) = (store.clone(), metrics.clone());
        let writer = ReportWriter::start_in_arbiter(&reports.handle(), move |_| ReportWriter::new(store, metrics));
        Notifier::new(&writer).start()
    };
    if state.breaker.tripped {
        warn!(code = %state.breaker.code, reason = %state.breaker.reason, "starting with the breaker TRIPPED: no orders until `polycopy resume`");
    }
    let gate = TradingGate::new(state.breaker.tripped);
    let state_at_start = state.breaker.clone();
    let chain_clock = crate::chain::ChainClock::default();
    let (executor, venue) = executor(s, env, &writer, &gate, &chain_clock).await?;
    let risk = RiskSupervisor::new(
        risk_config(s, journal.clone(), paper),
        state,
        RiskPeers {
            store: store.clone(),
            writer: writer.clone(),
            executor,
            notifier: notifier.clone(),
            metrics: metrics.clone(),
            gate: gate.clone(),
        },
    )
    .start();
    Ok(Trading {
        store,
        writer,
        metrics,
        reports,
        notifier,
        gate,
        state_at_start,
        venue,
        risk,
        journal,
        started_ms,
        chain_clock,
    })
}

/// The executor for this mode, and the CLOB connection in live mode.
async fn executor(
    s: &Settings,
    env: &Env,
    writer: &Writer,
    gate: &TradingGate,
    chain: &crate::chain::ChainClock,
) -> Result<(actix::Recipient<crate::actors::executor::Execute>, Option<Arc<Venue>>), DaemonError> {
    if s.mode.is_paper() {
        let books = if s.paper.fill_model == crate::config::settings::FillModel::OrderBook {
            let timeout = Duration::from_millis(s.live.request_timeout_ms);
            match crate::clob::public::PublicClob::new(&env.clob_host, timeout) {
                Ok(p) => Some(p),
                Err(e) => {
                    return Err(DaemonError::Setup(format!("paper.fill_model = \"order_book\" needs CLOB_HOST: {e}")));
                }
            }
        } else {
            None
        };
        return Ok((PaperExecutor::new(s.paper.slippage_bps, books).start().recipient(), None));
    }
    let venue = live_venue(s, env).await?;
    info!(funder = %format!("{:#x}", venue.funder()), signer = %format!("{:#x}", venue.signer()), "LIVE trading: real orders are signed and sent to the CLOB");
    let rules = LiveRules {
        max_copy_delay_s: s.copy.max_copy_delay_s,
        resolve_for: Duration::from_secs(s.live.resolve_for_s),
        max_retries: s.live.max_retries,
        retry_backoff: Duration::from_millis(s.live.retry_backoff_ms),
        rate_limit_wait: Duration::from_millis(s.live.rate_limit_wait_ms),
        settle_within: Duration::from_secs(s.live.settle_timeout_s),
    };
    let executor =
        LiveExecutor::new(venue.clone(), writer.clone(), rules, gate.clone(), chain.clone()).start().recipient();
    Ok((executor, Some(venue)))
}

/// The risk supervisor's settings.
fn risk_config(s: &Settings, journal: Option<(PathBuf, FileIdentity)>, paper: bool) -> RiskConfig {
    let walks_books = s.paper.fill_model == crate::config::settings::FillModel::OrderBook;
    RiskConfig {
        limits: s.limits(),
        max_consecutive_errors: s.risk.max_consecutive_errors,
        stop_file: s.emergency_stop_file.clone(),
        poll: Duration::from_millis(s.risk.breaker_poll_ms),
        max_in_flight: s.copy.max_in_flight,
        day_starts_at_hour: s.risk.day_starts_at_hour,
        daily_loss_halts: s.risk.daily_loss_action == crate::config::settings::DailyLossAction::Halt,
        close_slippage_bps: s.copy.max_slippage_bps,
        journal,
        // Paper without an order book to walk fills at the target's price: no executor needed.
        paper_instant: (paper && !walks_books).then_some(s.paper.slippage_bps),
    }
}

/// Checks the live setup like `polycopy doctor` and returns the connection. A failed check stops
/// the start with the doctor's explanation, unless every failure was the CLOB not answering.
async fn live_venue(s: &Settings, env: &Env) -> Result<Arc<Venue>, DaemonError> {
    let cfg = VenueConfig::from_settings(s, env).map_err(DaemonError::Live)?;
    let d = crate::clob::doctor::diagnose(&cfg, s.live.check_geoblock).await;
    for line in d.render().lines() {
        info!("doctor {line}");
    }
    if !d.healthy() && !d.only_unanswered() {
        let text = d.render();
        return Err(if d.only_credentials_or_unanswered() {
            DaemonError::LiveCredentials(text)
        } else {
            DaemonError::Live(text)
        });
    }
    if d.healthy() {
        let text = d.render();
        return d.venue.map(Arc::new).ok_or(DaemonError::Live(text));
    }
    // The setup is not known to be wrong and the CLOB may be back in a minute: starting lets
    // recovery, the feed, our own fills on chain and the operator's commands work meanwhile,
    // where refusing would leave systemd to give up after a few restarts. Orders wait for the
    // credentials (nothing leaves without them); `/health` shows the CLOB as unreachable.
    warn!(
        "the CLOB does not answer: starting without it; the connection is retried in the background and \
         nothing is sent until it answers"
    );
    match d.venue {
        Some(v) => Ok(Arc::new(v)),
        None => Venue::unconnected(cfg).map(Arc::new).map_err(|e| DaemonError::Live(e.to_string())),
    }
}
