//! The start's fourth phase: the tasks beside the trading path (health and metrics, the CLOB
//! probe, settlement checks, marks, the watchdog, Telegram, warnings, redemption). Each runs until
//! the daemon's cancellation token is cancelled.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::DaemonError;
use super::inputs::Inputs;
use super::trading::Trading;
use crate::actors::notifier::AddSink;
use crate::actors::risk_supervisor::{CheckSettlement, GetOpenTokens, Marks, Resolved, RiskSupervisor};
use crate::clob::venue::Venue;
use crate::config::{Env, Settings};
use crate::domain::TokenId;
use crate::market::MarketDirectory;
use crate::store::now_ms;
use crate::tasks::spawn_until;

/// What the background phase hands back: kept alive, or stopped in order, at shutdown.
pub(super) struct Background {
    /// The Telegram bot, when configured (drained at shutdown).
    pub telegram: Option<crate::telegram::Telegram>,
    /// The wallets.json watcher: watching as long as it lives.
    pub file_watcher: Option<notify::RecommendedWatcher>,
    /// The systemd watchdog pings, stopped before anything else at shutdown.
    pub pings: CancellationToken,
}

/// Starts every background task, each until `stop`.
pub(super) async fn start(
    s: &Settings,
    env: &Env,
    t: &Trading,
    i: &Inputs,
    http: Option<tokio::net::TcpListener>,
    stop: &CancellationToken,
) -> Result<Background, DaemonError> {
    let started_ms = t.started_ms;
    if let Some(listener) = http {
        serve_http(s, t, i, listener, stop)?;
    }
    if let Some(v) = &t.venue {
        venue_checks(s, v, t, stop);
    }
    if s.risk.mark_interval_s > 0 {
        match crate::clob::public::PublicClob::new(&env.clob_host, Duration::from_millis(s.live.request_timeout_ms)) {
            Ok(src) => {
                let every = Duration::from_secs(s.risk.mark_interval_s);
                spawn_until(stop, mark_to_market(src, i.markets.clone(), t.risk.clone(), every));
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
    spawn_until(&pings, crate::service::watchdog(i.status.clone(), t.risk.clone(), trying_within));
    let file_watcher = super::wallets_file::watch(&s.wallets_path, i.registry.clone());
    // An edit saved while the daemon was starting (after the file was read, before it was watched)
    // is read now; an unchanged file changes nothing.
    i.registry.do_send(crate::actors::watcher::Reload);
    let telegram = telegram(s, env, t, i, started_ms, stop).await;
    spawn_until(stop, crate::warnings::probe::run(warning_sources(s, t, i), warning_schedule(s, started_ms)));
    if s.redeem.enabled {
        match super::redeemer::redeemer(
            s,
            env,
            t.venue.as_deref(),
            t.store.clone(),
            t.notifier.clone(),
            t.metrics.clone(),
            t.gate.clone(),
        ) {
            Ok(r) => spawn_until(stop, r.run()),
            Err(why) => t.notifier.do_send(crate::actors::notifier::Event::Error { message: why }),
        }
    }
    Ok(Background { telegram, file_watcher, pings })
}

/// Serves `/health`, `/metrics` and the alert webhook on `listener`.
fn serve_http(
    s: &Settings,
    t: &Trading,
    i: &Inputs,
    listener: tokio::net::TcpListener,
    stop: &CancellationToken,
) -> Result<(), DaemonError> {
    let alert_token_file = crate::alert_gate::token_path(&s.db_path);
    let token = crate::alert_gate::load_or_create(&alert_token_file)
        .map_err(|e| DaemonError::Setup(format!("the alert token: {e}")))?;
    crate::config::env::register_secrets([secrecy::ExposeSecret::expose_secret(&token)]);
    crate::store::same_owner_of(&alert_token_file, &s.db_path);
    let state = crate::http::HttpState {
        alerts: Arc::new(crate::alert_gate::AlertGate::new(token)),
        alert_token_file,
        feed: i.status.clone(),
        metrics: t.metrics.clone(),
        store: t.store.clone(),
        risk: t.risk.clone(),
        notifier: t.notifier.clone(),
        health: s.health,
        confirmations: s.chain.confirmations,
        allowed_hosts: s.http.allowed_hosts.clone().into(),
        started_ms: t.started_ms,
        dashboard: Arc::default(),
        journal: t.journal.clone(),
        live: t.venue.as_ref().map(|v| crate::http::LiveHealthSource {
            reach: v.reachability(),
            settle_timeout: Duration::from_secs(s.live.settle_timeout_s),
        }),
    };
    let bound = listener.local_addr().map_or_else(|_| s.http.listen.clone(), |a| a.to_string());
    info!(listen = %bound, "serving /health and /metrics on http://{bound}");
    spawn_until(stop, crate::http::serve(listener, state));
    Ok(())
}

/// Live mode's checks on the CLOB: reachability when no order goes out, and settlement of matches.
fn venue_checks(s: &Settings, venue: &Arc<Venue>, t: &Trading, stop: &CancellationToken) {
    let every = (Duration::from_secs(s.health.clob_stale_s) / 4).clamp(Duration::from_secs(1), Duration::from_secs(15));
    spawn_until(stop, probe_clob(venue.clone(), every));
    // Matched orders must settle on chain; one that does not within the timeout is reported
    // and taken out of our books.
    let timeout = Duration::from_secs(s.live.settle_timeout_s);
    let (risk, chain) = (t.risk.clone(), t.chain_clock.clone());
    spawn_until(stop, async move {
        let mut tick = tokio::time::interval((timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(30)));
        loop {
            tick.tick().await;
            risk.do_send(CheckSettlement { timeout, chain_read_s: chain.read_through_s() });
        }
    });
}

/// The Telegram bot, when a token is set; its sink receives every report from then on.
async fn telegram(
    s: &Settings,
    env: &Env,
    t: &Trading,
    i: &Inputs,
    started_ms: i64,
    stop: &CancellationToken,
) -> Option<crate::telegram::Telegram> {
    let telegram = crate::telegram::start(env, &s.telegram, stop, |out| crate::telegram::commands::Ops {
        store: t.store.clone(),
        risk: t.risk.clone(),
        registry: i.registry.clone(),
        feed: i.status.clone(),
        paper: s.mode.is_paper(),
        out,
        metrics: t.metrics.clone(),
        stop_file: s.emergency_stop_file.clone(),
        limits: s.limits(),
        health: s.health,
        confirmations: s.chain.confirmations,
        started_ms,
        venue: t.venue.clone(),
        closes: crate::telegram::operator::PendingCloses::default(),
        gate: t.gate.clone(),
        trading_turn: std::sync::Arc::default(),
    })
    .await;
    t.notifier.do_send(AddSink(telegram.as_ref().map(|tg| tg.sink.clone().recipient())));
    if telegram.is_none() && env.telegram_bot_token.is_some() {
        t.metrics.telegram_refused.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    telegram
}

/// What the warnings read.
fn warning_sources(s: &Settings, t: &Trading, i: &Inputs) -> crate::warnings::probe::Sources {
    crate::warnings::probe::Sources {
        store: t.store.clone(),
        risk: t.risk.clone(),
        registry: i.registry.clone(),
        notifier: t.notifier.clone(),
        venue: t.venue.clone(),
        journal_dir: s
            .db_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf),
        metrics: t.metrics.clone(),
    }
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

/// Marks open positions every `every`: at the CLOB's midpoints while their market trades, at its
/// result once it closed with one that cannot settle yet; settles those whose result Gamma and the
/// chain agree on. A failure is logged once until the next success: the quick start runs without
/// network access to Polymarket.
async fn mark_to_market(
    src: crate::clob::public::PublicClob,
    markets: Option<Arc<MarketDirectory>>,
    risk: Addr<RiskSupervisor>,
    every: Duration,
) {
    // The first marks at once: until then the book is valued at the journal's last marks.
    let mut tick = tokio::time::interval(every);
    let mut failing = false;
    // Markets the last refresh found closed: a closed market has no book, so asking for its
    // midpoint would at best be answered with nothing.
    let mut closed: std::collections::HashSet<TokenId> = std::collections::HashSet::new();
    loop {
        tick.tick().await;
        let Ok(tokens) = risk.send(GetOpenTokens).await else { return };
        let trading: Vec<TokenId> = tokens.iter().filter(|t| !closed.contains(t)).copied().collect();
        // Side by side: a slow Gamma or node must not hold up the midpoints the loss limit reads.
        let refresh = async {
            match &markets {
                Some(d) => d.refresh(&tokens).await,
                None => crate::market::directory::Refreshed::default(),
            }
        };
        let (refreshed, mids) = tokio::join!(refresh, src.midpoints(&trading));
        closed = tokens.iter().filter(|t| refreshed.closed(t)).copied().collect();
        let mut marks = match mids {
            Ok(marks) => {
                failing = false;
                marks
            }
            Err(e) => {
                if !failing {
                    warn!(cause = %e, "cannot read midpoints; unrealized P&L keeps its last marks");
                }
                failing = true;
                HashMap::new()
            }
        };
        // A market found closed just now: its result's value, or the marks it had.
        marks.retain(|t, _| !closed.contains(t));
        marks.extend(refreshed.result_marks);
        if !marks.is_empty() {
            risk.do_send(Marks(marks));
        }
        let resolved: Vec<_> = refreshed.markets.into_iter().filter(|i| i.payout.is_some()).collect();
        if !resolved.is_empty() {
            risk.do_send(Resolved(resolved));
        }
    }
}

/// Keeps `/health`'s view of the CLOB current when no order goes out: an authenticated read every
/// `every` unless some other call got an answer in the meantime.
async fn probe_clob(venue: Arc<Venue>, every: Duration) {
    connect_when_answering(&venue, every).await;
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

/// For a daemon that started while the CLOB did not answer: derives the API credentials once it
/// answers, retrying with a growing pause (1 s up to `every`), and says what the account's checks
/// find then (an allowance missing since is logged as the doctor would say it).
async fn connect_when_answering(venue: &Venue, every: Duration) {
    let mut pause = Duration::from_secs(1).min(every);
    while !venue.connected() {
        tokio::time::sleep(pause).await;
        match venue.reauthenticate().await {
            Ok(()) => {
                info!("the CLOB answers: API credentials derived, live orders can be sent");
                match venue.version().await {
                    Ok(2) => {}
                    Ok(v) => tracing::error!(
                        "doctor [FAIL] clob: the CLOB speaks protocol version {v}, polycopy signs V2 orders: every order \
                         will be refused; check CLOB_HOST and stop the daemon"
                    ),
                    Err(e) => warn!(error = %e, "the CLOB's protocol version could not be read"),
                }
                let mut checks = Vec::new();
                crate::clob::doctor::collateral(&mut checks, venue).await;
                for c in checks.iter().filter(|c| c.verdict == crate::clob::doctor::Verdict::Fail) {
                    tracing::error!("doctor [FAIL] {}: {}", c.name, c.detail);
                }
            }
            Err(e) if e.unanswered() => {
                warn!(error = %e, "the CLOB still does not answer; nothing is sent");
                pause = (pause * 2).min(every);
            }
            Err(e) => {
                // An answer, and a refusal: the setup is wrong (as `polycopy doctor` would say).
                tracing::error!(error = %e, "the CLOB refused to derive API credentials for this key; nothing is sent \
                    (run `polycopy doctor`)");
                pause = every;
            }
        }
    }
}
