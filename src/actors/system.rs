//! Starts the daemon: opens the journal, recovers unfinished work, starts every actor and the chain
//! feed, watches wallets.json and signals, and shuts down cleanly.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::actors::copier::{Copier, CopierConfig};
use crate::actors::executor::PaperExecutor;
use crate::actors::live_executor::{LiveExecutor, LiveRules};
use crate::actors::notifier::{AddSink, Details, Event, Flushed, Notifier, ReportWriter};
use crate::actors::risk_supervisor::{
    CheckSettlement, Flush, GetOpenTokens, Marks, Resolved, RiskConfig, RiskPeers, RiskState, RiskSupervisor,
};
use crate::actors::store::{GetCheckpoint, StoreActor, Unfinished};
use crate::actors::watcher::{HandedOn, Recover, Registry, Reload};
use crate::chain::{ChainFeed, FeedConfig, FeedPeers, FeedStatus, Rpc, RpcConfig};
use crate::clob::venue::{Venue, VenueConfig};
use crate::config::{Env, Settings, Wallets, problem::render};
use crate::domain::Usdc;
use crate::market::MarketDirectory;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError, now_ms};

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
    /// The live-trading setup failed its checks.
    #[error("live trading cannot start:\n{0}")]
    Live(String),
    /// An actor went away during start.
    #[error("actor unavailable during start: {0}")]
    Mailbox(String),
}

fn mailbox(e: actix::MailboxError) -> DaemonError {
    DaemonError::Mailbox(e.to_string())
}

/// Checks the live setup like `polycopy doctor` and returns the connection; any failed check stops
/// the start with the doctor's explanation.
async fn live_venue(s: &Settings, env: &Env) -> Result<Arc<Venue>, DaemonError> {
    let cfg = VenueConfig::from_settings(s, env).map_err(DaemonError::Live)?;
    let d = crate::clob::doctor::diagnose(&cfg, s.live.check_geoblock).await;
    for line in d.render().lines() {
        info!("doctor {line}");
    }
    match d.venue {
        Some(v) if d.healthy() => Ok(Arc::new(v)),
        _ => Err(DaemonError::Live(d.render())),
    }
}

/// Marks open positions at the CLOB's midpoints every `every`, and settles those whose market
/// resolved (Gamma). A failure is logged once until the next success: the quick start runs without
/// network access to Polymarket.
async fn mark_to_market(
    src: crate::clob::public::PublicClob,
    markets: Option<Arc<MarketDirectory>>,
    risk: Addr<RiskSupervisor>,
    every: Duration,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut failing = false;
    loop {
        tick.tick().await;
        let Ok(tokens) = risk.send(GetOpenTokens).await else { return };
        match src.midpoints(&tokens).await {
            Ok(marks) => {
                failing = false;
                if !marks.is_empty() {
                    risk.do_send(Marks(marks.into_iter().collect()));
                }
            }
            Err(e) if !failing => {
                failing = true;
                warn!(cause = %e, "cannot read midpoints; unrealized P&L keeps its last marks");
            }
            Err(_) => {}
        }
        if let Some(d) = &markets {
            let resolved: Vec<_> = d.refresh(&tokens).await.into_iter().filter(|i| i.payout.is_some()).collect();
            if !resolved.is_empty() {
                risk.do_send(Resolved(resolved));
            }
        }
    }
}

/// Keeps `/health`'s view of the CLOB current when no order goes out: an authenticated read every
/// `every` unless some other call got an answer in the meantime.
async fn probe_clob(venue: Arc<Venue>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let last = venue.reachability().snapshot().last_answer_ms;
        if now_ms() - last >= i64::try_from(every.as_millis()).unwrap_or(i64::MAX) {
            // The answer (or its absence) is recorded by the venue itself.
            let _ = venue.collateral().await;
        }
    }
}

/// Runs the daemon until SIGINT or SIGTERM. Must be called inside an actix `System`.
///
/// # Errors
/// When it cannot start: journal, wallets.json.
pub async fn run_daemon(cfg: DaemonConfig) -> Result<(), DaemonError> {
    let s = &cfg.settings;
    let paper = s.mode.is_paper();
    let wallets = Wallets::load(&s.wallets_path)
        .map_err(|p| DaemonError::Wallets { file: s.wallets_path.display().to_string(), problems: render(&p) })?;
    // First, so a second daemon on the same journal stops here, before it touches anything.
    let mut journal_lock =
        crate::store::lock::JournalLock::acquire(&s.db_path).map_err(|e| DaemonError::Setup(e.to_string()))?;
    let (control_listener, _control_file) =
        crate::control::server::bind(&s.control_socket_path()).map_err(DaemonError::Setup)?;
    // Bound before any actor starts: a port in use is a clean refusal, not a half-started daemon.
    let http_listener = if s.http.listen.is_empty() {
        None
    } else {
        Some(
            crate::http::bind(&s.http.listen)
                .await
                .map_err(|e| DaemonError::Http { addr: s.http.listen.clone(), source: e })?,
        )
    };
    let store = Store::open(&s.db_path)?;
    journal_lock
        .lock_file(&s.db_path)
        .map_err(|e| DaemonError::Setup(format!("{e} (through another path to the same file)")))?;
    store.quick_check()?;
    // Which file the journal is, watched by the supervisor and /health (deleted or replaced).
    let journal_file = crate::store::identity::FileIdentity::of(&s.db_path).map(|id| (s.db_path.clone(), id));
    let now = now_ms();
    let paused = store.paused()?;
    let day_start_ms = crate::risk::day::day_start(now, s.risk.day_starts_at_hour);
    let book = store.book()?;
    // With nothing open, the day's opening unrealized P&L is simply zero; otherwise the first marks
    // set it when the journal has no record for today (a first start mid-day).
    let unrealized_at_open = store.day_open(day_start_ms)?.or_else(|| book.positions.is_empty().then_some(Usdc::ZERO));
    let state = RiskState {
        breaker: store.breaker()?,
        book,
        realized_today: store.realized_since(day_start_ms)?,
        recent_copies: store.copies_since(now - 3_600_000)?,
        day_start_ms,
        unrealized_at_open,
        paused_markets: store.paused_markets()?,
    };
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
    let gate = crate::risk::TradingGate::new(state.breaker.tripped);
    let state_at_start = state.breaker.clone();
    let walks_books = s.paper.fill_model == "order_book";
    let (executor, venue) = if paper {
        let books = if walks_books {
            let timeout = Duration::from_millis(s.live.request_timeout_ms);
            match crate::clob::public::PublicClob::new(&cfg.env.clob_host, timeout) {
                Ok(p) => Some(p),
                Err(e) => {
                    return Err(DaemonError::Setup(format!("paper.fill_model = \"order_book\" needs CLOB_HOST: {e}")));
                }
            }
        } else {
            None
        };
        (PaperExecutor::new(s.paper.slippage_bps, books).start().recipient(), None)
    } else {
        let venue = live_venue(s, &cfg.env).await?;
        info!(funder = %format!("{:#x}", venue.funder()), signer = %format!("{:#x}", venue.signer()), "LIVE trading: real orders are signed and sent to the CLOB");
        let rules = LiveRules {
            max_copy_delay_s: s.copy.max_copy_delay_s,
            resolve_for: Duration::from_secs(s.live.resolve_for_s),
            max_retries: s.live.max_retries,
            retry_backoff: Duration::from_millis(s.live.retry_backoff_ms),
            rate_limit_wait: Duration::from_millis(s.live.rate_limit_wait_ms),
        };
        (LiveExecutor::new(venue.clone(), writer.clone(), rules, gate.clone()).start().recipient(), Some(venue))
    };
    let risk = RiskSupervisor::new(
        RiskConfig {
            limits: s.limits(),
            max_consecutive_errors: s.risk.max_consecutive_errors,
            stop_file: s.emergency_stop_file.clone(),
            poll: Duration::from_millis(s.risk.breaker_poll_ms),
            max_in_flight: s.copy.max_in_flight,
            day_starts_at_hour: s.risk.day_starts_at_hour,
            daily_loss_halts: s.risk.daily_loss_action == "halt",
            close_slippage_bps: s.copy.max_slippage_bps,
            journal: journal_file.clone(),
            // Paper without an order book to walk fills at the target's price: no executor needed.
            paper_instant: (paper && !walks_books).then_some(s.paper.slippage_bps),
        },
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
    // One token ends every background task at shutdown (see crate::tasks).
    let stop = tokio_util::sync::CancellationToken::new();
    crate::tasks::spawn_until(
        &stop,
        crate::control::server::serve(
            control_listener,
            crate::control::server::ControlPeers {
                store: store.clone(),
                risk: risk.clone(),
                gate: gate.clone(),
                stop_file: s.emergency_stop_file.clone(),
                mode: s.mode,
                journal: s.db_path.clone(),
                http: http_listener.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.to_string()),
            },
        ),
    );
    let rpc_cfg = RpcConfig {
        chain_id: s.chain.chain_id,
        ws_url: cfg.env.ws_url.clone(),
        http_urls: cfg.env.rpc_urls.clone(),
        requests_per_second: s.chain.rpc_requests_per_second,
        timeout: Duration::from_millis(s.chain.request_timeout_ms),
        failover_after: s.chain.failover_after_errors,
    };
    // Balance reads go over HTTP (lazy: no connection is made until the first call).
    let mut balance_rpc = Rpc::new(RpcConfig {
        ws_url: None,
        // Lazy, as before: the feed identifies the chain on the same endpoints, and a node that is
        // down at start must not turn balance reads off for the daemon's whole life.
        chain_id: 0,
        timeout: Duration::from_millis(s.chain.balance_timeout_ms.min(s.chain.request_timeout_ms)),
        ..rpc_cfg.clone()
    });
    let balance_rpc = match balance_rpc.connect().await {
        Ok(()) => Some(Arc::new(balance_rpc)),
        Err(e) => {
            warn!(cause = %e, "balance reads unavailable; proportional sells use observed positions");
            None
        }
    };
    let details = Details::wanted(Details::debug_logged(), cfg.env.telegram_bot_token.as_ref().map(|_| &s.telegram));
    let copier_cfg = CopierConfig {
        max_slippage_bps: s.copy.max_slippage_bps,
        min_order_usdc: s.copy.min_order_usdc,
        max_copy_delay_s: s.copy.max_copy_delay_s,
        positions: crate::chain::positions::PositionContracts::from_settings(&s.chain),
        refuse_v3: !paper,
        skip_closed: s.copy.skip_closed,
        min_minutes_to_end: s.copy.min_minutes_to_end,
        pending_max_order_usdc: s.detection.pending_max_order_usdc,
        report_sized: details.sized,
    };
    let markets = match MarketDirectory::new(
        &cfg.env.gamma_url,
        store.clone(),
        Duration::from_secs(s.markets.refresh_s),
        Duration::from_millis(s.markets.timeout_ms),
    ) {
        Ok(d) => Some(Arc::new(d)),
        Err(e) => {
            warn!(cause = %e, "market metadata unavailable: closed markets are not skipped");
            None
        }
    };
    let copier =
        Copier::new(copier_cfg, balance_rpc, markets.clone(), store.clone(), risk.clone(), notifier.clone()).start();
    let (targets_tx, targets_rx) = watch::channel(Vec::new());
    let (act_now_tx, act_now_rx) = watch::channel(std::collections::HashSet::new());
    let mut registry =
        Registry::new(s.wallets_path.clone(), copier.clone(), notifier.clone(), store.clone(), targets_tx)
            .with_triggers(s.detection.trigger, act_now_tx)
            .with_details(details);
    registry.apply(&wallets);
    let n_targets = wallets.enabled().count();
    if n_targets == 0 {
        warn!(
            wallets = %s.wallets_path.display(),
            "no target wallet is enabled: nothing will be copied. Set \"enabled\": true on an entry of wallets.json (or add one); it is picked up without a restart"
        );
    }
    let registry = registry.with_paused(paused).start();

    let (status_tx, mut status_rx) = watch::channel(FeedStatus::default());
    let feed_cfg = FeedConfig {
        exchanges: s.chain.exchanges.clone(),
        confirmations: s.chain.confirmations,
        start_block: s.chain.start_block,
        max_block_range: s.chain.max_block_range,
        poll_interval: Duration::from_millis(s.chain.poll_interval_ms),
        backoff_max: Duration::from_millis(s.chain.reconnect_backoff_max_ms),
        own: venue.as_ref().map(|v| v.funder()),
        stall: Duration::from_secs(s.health.feed_stall_s),
    };
    let feed = ChainFeed::new(
        feed_cfg,
        Rpc::new(rpc_cfg.clone()),
        FeedPeers {
            writer: writer.clone(),
            sink: registry.clone().recipient(),
            notifier: notifier.clone(),
            halt: risk.clone().recipient(),
            metrics: metrics.clone(),
            own_fills: venue.as_ref().map(|_| risk.clone().recipient()),
        },
        targets_rx.clone(),
        status_tx,
    );
    if let Some(listener) = http_listener {
        let alert_token_file = crate::alert_gate::token_path(&s.db_path);
        let token = crate::alert_gate::load_or_create(&alert_token_file)
            .map_err(|e| DaemonError::Setup(format!("the alert token: {e}")))?;
        crate::config::env::register_secrets([secrecy::ExposeSecret::expose_secret(&token)]);
        crate::store::same_owner_of(&alert_token_file, &s.db_path);
        let state = crate::http::HttpState {
            alerts: Arc::new(crate::alert_gate::AlertGate::new(token)),
            alert_token_file,
            feed: status_rx.clone(),
            metrics: metrics.clone(),
            store: store.clone(),
            risk: risk.clone(),
            notifier: notifier.clone(),
            health: s.health,
            confirmations: s.chain.confirmations,
            journal: journal_file.clone(),
            live: venue.as_ref().map(|v| crate::http::LiveHealthSource {
                reach: v.reachability(),
                settle_timeout: Duration::from_secs(s.live.settle_timeout_s),
            }),
        };
        let bound = listener.local_addr().map_or_else(|_| s.http.listen.clone(), |a| a.to_string());
        info!(listen = %bound, "serving /health and /metrics on http://{bound}");
        crate::tasks::spawn_until(&stop, crate::http::serve(listener, state));
    }
    if let Some(v) = &venue {
        let every =
            (Duration::from_secs(s.health.clob_stale_s) / 4).clamp(Duration::from_secs(1), Duration::from_secs(15));
        crate::tasks::spawn_until(&stop, probe_clob(v.clone(), every));
    }
    if venue.is_some() {
        // Matched orders must settle on chain; one that does not within the timeout is reported
        // and taken out of our books.
        let timeout = Duration::from_secs(s.live.settle_timeout_s);
        let risk = risk.clone();
        crate::tasks::spawn_until(&stop, async move {
            let mut tick =
                tokio::time::interval((timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(30)));
            loop {
                tick.tick().await;
                risk.do_send(CheckSettlement { timeout });
            }
        });
    }
    if s.risk.mark_interval_s > 0 {
        match crate::clob::public::PublicClob::new(&cfg.env.clob_host, Duration::from_millis(s.live.request_timeout_ms))
        {
            Ok(src) => {
                crate::tasks::spawn_until(
                    &stop,
                    mark_to_market(src, markets.clone(), risk.clone(), Duration::from_secs(s.risk.mark_interval_s)),
                );
            }
            Err(e) => warn!(cause = %e, "positions are not marked to market"),
        }
    }
    // The feed tries at least once per backoff cap plus a call's timeout; a longer silence is a stuck loop.
    let trying_within = Duration::from_secs(s.health.feed_stall_s).max(
        Duration::from_millis(s.chain.reconnect_backoff_max_ms) + 3 * Duration::from_millis(s.chain.request_timeout_ms),
    );
    // No WATCHDOG=1 after STOPPING=1: the pings stop first.
    let pings = stop.child_token();
    crate::tasks::spawn_until(&pings, crate::service::watchdog(status_rx.clone(), risk.clone(), trying_within));
    let _file_watcher = watch_wallets_file(&s.wallets_path, registry.clone());

    let telegram = crate::telegram::start(&cfg.env, &s.telegram, &stop, |out| crate::telegram::commands::Ops {
        store: store.clone(),
        risk: risk.clone(),
        registry: registry.clone(),
        feed: status_rx.clone(),
        paper,
        out,
        metrics: metrics.clone(),
        stop_file: s.emergency_stop_file.clone(),
        limits: s.limits(),
        started_ms: now,
        venue: venue.clone(),
        closes: crate::telegram::operator::PendingCloses::default(),
    })
    .await;
    if let Some(tg) = &telegram {
        notifier.do_send(AddSink(tg.sink.clone().recipient()));
    }
    let warnings = crate::warnings::probe::Sources {
        store: store.clone(),
        risk: risk.clone(),
        registry: registry.clone(),
        notifier: notifier.clone(),
        venue: venue.clone(),
        journal_dir: s
            .db_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf),
        metrics: metrics.clone(),
    };
    crate::tasks::spawn_until(&stop, crate::warnings::probe::run(warnings, warning_schedule(s, now)));
    if s.redeem.enabled {
        match redeemer(s, &cfg.env, venue.as_deref(), store.clone(), notifier.clone(), metrics.clone()) {
            Ok(r) => crate::tasks::spawn_until(&stop, r.run()),
            Err(why) => notifier.do_send(crate::actors::notifier::Event::Error { message: why }),
        }
    }

    // Finish what a crash interrupted before anything new comes in: the feed starts only once
    // every fill journaled before the last stop (and any order sent for it) is decided.
    let unfinished = store.send(Unfinished).await.map_err(mailbox)??;
    if !unfinished.is_empty() {
        info!(count = unfinished.len(), "recovering fills journaled before the last stop");
        let n = registry.send(Recover(unfinished)).await.map_err(mailbox)?;
        info!(decided = n, "recovery finished");
    }

    // The feed stops first at shutdown (no new fills), on its own child of the token.
    let feed_stop = stop.child_token();
    let feed_task = actix::spawn(feed.run(feed_stop.clone()));
    if s.detection.pending {
        let mempool = crate::chain::mempool::Mempool::new(
            crate::chain::mempool::MempoolConfig {
                exchanges: s.chain.exchanges.clone(),
                chain_id: s.chain.chain_id,
                poll: Duration::from_millis(s.detection.pending_poll_ms),
                orphan_after_blocks: s.detection.orphan_after_blocks,
            },
            // Its own connection over HTTP: reading the pool never waits behind the feed.
            Rpc::new(RpcConfig { ws_url: None, ..rpc_cfg.clone() }),
            pool_source(s, &rpc_cfg, &feed_stop),
            crate::chain::mempool::MempoolPeers {
                store: store.clone(),
                sink: registry.clone().recipient(),
                notifier: notifier.clone(),
                metrics: metrics.clone(),
            },
            targets_rx.clone(),
            act_now_rx,
        );
        actix::spawn(mempool.run(feed_stop.clone()));
        info!(trigger = s.detection.trigger.as_str(), "watching pending transactions to the exchanges");
    }
    if s.detection.rtds {
        let cfg = crate::market::rtds::RtdsConfig {
            url: s.detection.rtds_url.clone(),
            stale: Duration::from_secs(s.detection.rtds_stale_s),
            standby: s.detection.rtds_standby,
        };
        actix::spawn(crate::market::rtds::run(cfg, store.clone(), targets_rx.clone(), feed_stop.clone()));
        info!(url = %crate::config::redact_url(&s.detection.rtds_url), "reading the RTDS trade feed (sightings only)");
    }
    let stops = Stops { all: stop.clone(), feed: feed_stop, pings };
    // Alive and trying: systemd may count the start done now; the chain may still be unreachable
    // (a provider outage must not become a restart loop), which /health shows and the feed alerts.
    crate::service::ready(&format!("started with {n_targets} targets; waiting for the chain"));

    let mode = if paper { "PAPER" } else { "LIVE" };
    let funder = venue.as_ref().map_or_else(|| "none (paper)".to_owned(), |v| format!("{:#x}", v.funder()));
    info!(mode, funder = %funder, targets = n_targets, db = %s.db_path.display(), rpc = ?cfg.env.rpc_urls.iter().map(|u| crate::config::redact_url(u)).collect::<Vec<_>>(), "polycopy started");
    let b = &state_at_start;
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
    notifier.do_send(Event::Started { mode, targets: n_targets, version: env!("CARGO_PKG_VERSION"), trading });
    tokio::select! {
        st = status_rx.wait_for(|st| st.live) => {
            if let Ok(st) = st {
                info!(block = st.processed, "chain feed live");
                crate::service::status(&format!("copying {n_targets} targets from block {}", st.processed));
            }
        }
        r = wait_for_signal(&registry) => {
            shutdown(r, &stops, feed_task, (&registry, &copier), &notifier, &store, telegram.as_ref()).await;
            reports.stop();
            return Ok(());
        }
    }
    let reason = wait_for_signal(&registry).await;
    shutdown(reason, &stops, feed_task, (&registry, &copier), &notifier, &store, telegram.as_ref()).await;
    reports.stop();
    Ok(())
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
    let _ = notifier.send(Flushed).await;
    if let Some(tg) = telegram {
        tg.drain(Duration::from_secs(5)).await;
    }
    // The store handles messages in order: this reply means everything before it is written.
    let _ = store.send(GetCheckpoint).await;
    stops.all.cancel();
    info!("stopped");
}

/// Waits for SIGINT/SIGTERM (returning which), reloading wallets.json on every SIGHUP meanwhile.
async fn wait_for_signal(registry: &Addr<Registry>) -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        warn!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return "SIGTERM",
            _ = int.recv() => return "SIGINT",
            _ = hup.recv() => {
                info!("SIGHUP: reloading wallets.json");
                registry.do_send(Reload);
            }
        }
    }
}

/// Watches the directory holding wallets.json (editors replace files by renaming) and asks for a
/// reload when the file changes. The watcher lives as long as the returned value.
fn watch_wallets_file(path: &std::path::Path, registry: Addr<Registry>) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let file_name = path.file_name()?.to_owned();
    let dir: PathBuf =
        path.parent().filter(|d| !d.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), PathBuf::from);
    let last = Arc::new(Mutex::new(std::time::Instant::now() - Duration::from_secs(1)));
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if !matches!(ev.kind, EventKind::Create(_) | EventKind::Modify(_)) {
            return;
        }
        if !ev.paths.iter().any(|p| p.file_name() == Some(file_name.as_os_str())) {
            return;
        }
        // Editors write in several steps: let them finish, then read once.
        if let Ok(mut l) = last.lock() {
            *l = std::time::Instant::now();
        }
        let (last, registry) = (last.clone(), registry.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            if last.lock().is_ok_and(|l| l.elapsed() >= Duration::from_millis(140)) {
                registry.do_send(Reload);
            }
        });
    })
    .map_err(|e| warn!(cause = %e, "cannot watch wallets.json; reload with SIGHUP"))
    .ok()?;
    w.watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| warn!(cause = %e, "cannot watch wallets.json; reload with SIGHUP"))
        .ok()?;
    Some(w)
}

/// The warnings' schedule and thresholds from `[alerts]`.
fn warning_schedule(s: &Settings, started_ms: i64) -> crate::warnings::probe::Schedule {
    let a = &s.alerts;
    crate::warnings::probe::Schedule {
        every: Duration::from_secs(a.check_every_s.max(1)),
        cooldown: Duration::from_secs(a.cooldown_min.saturating_mul(60)),
        thresholds: crate::warnings::Thresholds {
            no_fill_minutes: a.no_fill_minutes,
            drawdown_pct: a.drawdown_pct,
            clob_slow_ms: a.clob_slow_ms,
            disk_min_free_mb: a.disk_min_free_mb,
            clock_max_offset_ms: a.clock_max_offset_ms,
            win_rate_min_pct: a.win_rate_min_pct,
            win_rate_window: a.win_rate_window,
        },
        daily_loss_limit: s.risk.daily_loss_limit_usdc,
        started_ms,
    }
}

/// The redemption loop for this mode, or why it cannot run (said once, at start).
fn redeemer(
    s: &Settings,
    env: &crate::config::Env,
    venue: Option<&crate::clob::venue::Venue>,
    store: Addr<StoreActor>,
    notifier: Addr<Notifier>,
    metrics: Arc<Metrics>,
) -> Result<crate::redeem::task::Redeemer, String> {
    use crate::clob::SigType;
    let r = &s.redeem;
    let cfg = crate::redeem::task::RedeemConfig {
        every: Duration::from_secs(r.check_every_s.max(1)),
        attempts: r.attempts.max(1),
        retry_base: Duration::from_secs(r.retry_after_s),
        confirm_wait: Duration::from_secs(r.confirm_wait_s),
        contracts: crate::redeem::task::Contracts {
            ctf: s.chain.conditional_tokens,
            position_manager: s.chain.position_manager,
            router: r.router,
            v3_exchanges: s.chain.v3_exchanges.clone(),
            pusd: r.pusd,
            standard_adapter: r.standard_adapter,
            neg_risk_adapter: r.neg_risk_adapter,
        },
    };
    let Some(v) = venue else {
        return Ok(crate::redeem::task::Redeemer {
            store,
            notifier,
            chain: None,
            funder: alloy::primitives::Address::ZERO,
            safe: false,
            cfg,
            metrics,
            data_api: None,
        });
    };
    let sig = SigType::parse(&s.live.signature_type).map_err(|e| format!("redemption off: live.signature_type {e}"))?;
    if matches!(sig, SigType::PolyProxy | SigType::Poly1271) {
        return Err(format!(
            "redemption is off: a {} funder acts through Polymarket's own wallet contracts, which polycopy does not \
             drive; turn on Polymarket's auto-redeem, or redeem on polymarket.com (set redeem.enabled = false to \
             silence this)",
            s.live.signature_type
        ));
    }
    let key = env.private_key.as_ref().ok_or("redemption off: PRIVATE_KEY is not set")?;
    let signer: alloy::signers::local::PrivateKeySigner = secrecy::ExposeSecret::expose_secret(key)
        .parse()
        .map_err(|_| "redemption off: PRIVATE_KEY is not a key".to_owned())?;
    let url = env.rpc_urls.first().ok_or("redemption off: no POLYGON_RPC_URL")?;
    let chain =
        crate::redeem::chain::Chain::new(url, signer, s.chain.chain_id).map_err(|e| format!("redemption off: {e}"))?;
    Ok(crate::redeem::task::Redeemer {
        store,
        notifier,
        chain: Some(chain),
        funder: v.funder(),
        safe: sig == SigType::PolyGnosisSafe,
        cfg,
        metrics,
        data_api: Some(env.data_api_url.clone()),
    })
}

/// Where the pending-transaction source reads: the node's pool, or a websocket subscription (its
/// own connection, started here) when the settings ask for one and POLYGON_WS_URL is set.
fn pool_source(
    s: &Settings,
    rpc_cfg: &RpcConfig,
    stop: &tokio_util::sync::CancellationToken,
) -> crate::chain::mempool::PoolSource {
    use crate::chain::mempool::PoolSource;
    use crate::config::settings::PendingSource;
    match (s.detection.pending_source, &rpc_cfg.ws_url) {
        (PendingSource::Txpool, _) => PoolSource::Txpool,
        (PendingSource::Subscription, None) => {
            warn!("detection.pending_source = \"subscription\" needs POLYGON_WS_URL; reading the node's pool instead");
            PoolSource::Txpool
        }
        (PendingSource::Subscription, Some(_)) => {
            let (tx, rx) = tokio::sync::mpsc::channel(4_096);
            let ws = Rpc::new(RpcConfig { http_urls: Vec::new(), ..rpc_cfg.clone() });
            actix::spawn(crate::chain::mempool::subscribe(ws, s.chain.exchanges.clone(), tx, stop.clone()));
            PoolSource::Subscription(rx)
        }
    }
}
