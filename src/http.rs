//! The loopback HTTP server: `GET /health`, `GET /metrics` and `POST /alert` (cron's health check
//! relays its alerts through the daemon's notifier, and so to every sink), on hyper's HTTP/1 server.
//! Requests are bounded (head size, body size, time) and so are connections; no answer holds a secret.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{debug, warn};

use crate::actors::notifier::{Event, Notifier};
use crate::actors::risk_supervisor::{GetBreakerState, RiskSupervisor};
use crate::actors::store::{GetCheckpoint, GetOrderHealth, StoreActor};
use crate::chain::FeedStatus;
use crate::clob::reachability::Reachability;
use crate::config::settings::HealthSettings;
use crate::health::{HealthInput, HealthReport, Level, LiveInput, evaluate};
use crate::metrics::Metrics;
use crate::store::now_ms;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 32;
/// Largest request head.
const MAX_HEAD: usize = 8 * 1024;
/// Largest `POST /alert` body.
const MAX_ALERT_BODY: usize = 64 * 1024;

/// What the live checks read.
#[derive(Debug, Clone)]
pub struct LiveHealthSource {
    /// The CLOB as last seen.
    pub reach: Arc<Reachability>,
    /// Matched orders should settle within this.
    pub settle_timeout: Duration,
}

/// What the server reads to answer.
#[derive(Debug, Clone)]
pub struct HttpState {
    /// The feed's progress.
    pub feed: watch::Receiver<FeedStatus>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The journal, pinged by `/health`.
    pub store: Addr<StoreActor>,
    /// The breaker's owner.
    pub risk: Addr<RiskSupervisor>,
    /// Where relayed alerts go.
    pub notifier: Addr<Notifier>,
    /// Thresholds.
    pub health: HealthSettings,
    /// Confirmations (expected lag).
    pub confirmations: u64,
    /// Live trading's sources; `None` in paper mode.
    pub live: Option<LiveHealthSource>,
    /// The journal file and which file it was when opened.
    pub journal: Option<(std::path::PathBuf, crate::store::identity::FileIdentity)>,
    /// Who may `POST /alert`, and how often.
    pub alerts: Arc<crate::alert_gate::AlertGate>,
    /// Where the alert token is (named in a refusal; the token itself never is).
    pub alert_token_file: std::path::PathBuf,
    /// `[http] allowed_hosts`: the names served besides addresses and `localhost` (see
    /// [`served_host`]).
    pub allowed_hosts: Arc<[String]>,
    /// When the daemon started, unix ms: a feed not synced yet is judged from then.
    pub started_ms: i64,
    /// The dashboard as last read from the journal, and when (shown for 2 s before it is read again).
    pub dashboard: Arc<tokio::sync::Mutex<Option<(tokio::time::Instant, crate::dashboard::View)>>>,
}

impl HttpState {
    /// Runs every health check now.
    pub async fn health(&self) -> HealthReport {
        let moved = self.journal.as_ref().and_then(|(p, id)| crate::store::identity::journal_moved(p, Some(*id)));
        // The three questions at once: one after the other, a busy journal and supervisor made the
        // answer take 6 s, past the health check's 5 s, which then said the daemon was down.
        let wait = Duration::from_secs(2);
        let checkpoint = async {
            match moved {
                Some(why) => Err(why),
                None => Ok(tokio::time::timeout(wait, self.store.send(GetCheckpoint)).await),
            }
        };
        let breaker = tokio::time::timeout(wait, self.risk.send(GetBreakerState));
        let orders = async {
            match self.live {
                Some(_) => Some(tokio::time::timeout(wait, self.store.send(GetOrderHealth)).await),
                None => None,
            }
        };
        let (answered, breaker, orders) = tokio::join!(checkpoint, breaker, orders);
        let db = match answered {
            Err(why) => Err(why),
            Ok(Ok(Ok(Ok(_)))) => Ok(()),
            Ok(Ok(Ok(Err(e)))) => Err(format!("journal error: {e}")),
            Ok(Ok(Err(e))) => Err(format!("journal actor gone: {e}")),
            Ok(Err(_)) => Err("journal did not answer within 2 s".into()),
        };
        let breaker = breaker.ok().and_then(Result::ok).unwrap_or_else(|| crate::risk::BreakerState {
            tripped: true,
            code: "unknown".into(),
            reason: "risk supervisor did not answer".into(),
            ..Default::default()
        });
        let live = match (&self.live, orders) {
            (None, _) | (Some(_), None) => None,
            (Some(l), Some(orders)) => {
                let orders = match orders {
                    Ok(Ok(Ok(o))) => Ok(o),
                    Ok(Ok(Err(e))) => Err(e.to_string()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("journal did not answer within 2 s".into()),
                };
                let settle_timeout_ms = i64::try_from(l.settle_timeout.as_millis()).unwrap_or(i64::MAX);
                Some(LiveInput { clob: l.reach.snapshot(), orders, settle_timeout_ms })
            }
        };
        let input = HealthInput {
            feed: self.feed.borrow().clone(),
            confirmations: self.confirmations,
            breaker: &breaker,
            db,
            telegram: crate::health::telegram_check(&self.metrics),
            live,
            now_ms: now_ms(),
            started_ms: self.started_ms,
            wallets_refused: self.metrics.wallets_refused.load(std::sync::atomic::Ordering::Relaxed),
        };
        let mut report = evaluate(&input, &self.health);
        // Details quote errors from nodes and servers, which can name a URL with its key: anyone
        // on the host may read `/health`.
        for c in &mut report.checks {
            c.detail = crate::config::env::redact(&c.detail);
        }
        report
    }
}

/// Binds the listener. Bind errors are returned so the caller can report them.
///
/// # Errors
/// When the address cannot be bound.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Accepts connections forever, at most `MAX_CONNECTIONS` at once.
pub async fn serve(listener: TcpListener, state: HttpState) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        match listener.accept().await {
            Ok((sock, _)) => {
                let state = state.clone();
                actix::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(route(req, &state).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(5))
                        .max_buf_size(MAX_HEAD)
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(sock), svc);
                    match tokio::time::timeout(Duration::from_secs(30), conn).await {
                        Ok(Err(e)) => debug!(cause = %e, "http connection ended with an error"),
                        Err(_) => debug!("http connection cut after 30 s"),
                        Ok(Ok(())) => {}
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                warn!(cause = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn text(status: StatusCode, ctype: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Whether a request's `Host` may be served: an IP address, `localhost`, one of `allowed` (the
/// names the operator listed), or none at all. A web page the operator opens elsewhere can point a
/// host name of its own at this server (DNS rebinding) and read the dashboard through the
/// operator's browser or SSH tunnel; such a request names that host, never an address.
#[must_use]
pub fn served_host(host: Option<&str>, allowed: &[String]) -> bool {
    let Some(host) = host else { return true };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| if port.parse::<u16>().is_ok() { h } else { host })
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok()
        || allowed.iter().any(|a| a.strip_suffix('.').unwrap_or(a).eq_ignore_ascii_case(name))
}

/// Whether `name` can be an entry of `[http] allowed_hosts`: a DNS name, without scheme, port,
/// path or wildcard.
#[must_use]
pub fn host_name_shape(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').filter(|l| !l.is_empty()).count() > 0
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

async fn route(req: Request<Incoming>, state: &HttpState) -> Response<Full<Bytes>> {
    let host = req.headers().get(hyper::header::HOST).map(|h| h.to_str().unwrap_or("\u{0}"));
    if !served_host(host, &state.allowed_hosts) {
        return text(
            StatusCode::MISDIRECTED_REQUEST,
            "text/plain",
            "this server answers to its address, localhost and the names in [http] allowed_hosts only\n".into(),
        );
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") => {
            let report = state.health().await;
            let code = if report.status == Level::Unhealthy { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
            text(code, "application/json", serde_json::to_string(&report).unwrap_or_default())
        }
        (&Method::GET, "/metrics") => {
            text(StatusCode::OK, "text/plain; version=0.0.4", state.metrics.render(&state.feed.borrow(), now_ms()))
        }
        (&Method::POST, "/alert") => alert(req, state).await,
        (&Method::GET, "/dashboard") => {
            let part = req.uri().query().is_some_and(|q| q.split('&').any(|kv| kv == "part=live"));
            match dashboard_view(state).await {
                Some(v) => {
                    let body = if part { crate::dashboard::live(&v) } else { crate::dashboard::page(&v) };
                    text(StatusCode::OK, "text/html; charset=utf-8", body)
                }
                None => {
                    text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "the journal did not answer; retry\n".into())
                }
            }
        }
        (&Method::GET, _) => text(StatusCode::NOT_FOUND, "text/plain", "not found: try /health or /metrics\n".into()),
        _ => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET /health, GET /metrics, GET /dashboard or POST /alert\n".into(),
        ),
    }
}

async fn alert(req: Request<Incoming>, state: &HttpState) -> Response<Full<Bytes>> {
    use crate::alert_gate::Refusal;
    let auth = req.headers().get(hyper::header::AUTHORIZATION).map(hyper::header::HeaderValue::as_bytes);
    if !state.alerts.authorized(auth) {
        // The file's name only: where the journal lives is not for whoever asks without the token.
        let file = state.alert_token_file.file_name().unwrap_or_default().to_string_lossy();
        return text(
            StatusCode::UNAUTHORIZED,
            "text/plain",
            format!(
                "POST /alert needs \"Authorization: Bearer <token>\" with the token in {file}, beside the journal\n"
            ),
        );
    }
    let auth = auth.map(<[u8]>::to_vec);
    let body = match Limited::new(req.into_body(), MAX_ALERT_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                format!("an alert is at most {MAX_ALERT_BODY} bytes\n"),
            );
        }
    };
    let Some(message) = alert_text(&body) else {
        return text(StatusCode::BAD_REQUEST, "text/plain", "empty alert\n".into());
    };
    // The pace is spent only on an alert that is relayed: a refused body loses neither its turn
    // nor the count of alerts refused before it.
    let dropped = match state.alerts.admit(auth.as_deref()) {
        Ok(n) => n,
        Err(Refusal::Unauthorized) => return text(StatusCode::UNAUTHORIZED, "text/plain", "unauthorized\n".into()),
        Err(Refusal::TooMany) => {
            let mut r = text(
                StatusCode::TOO_MANY_REQUESTS,
                "text/plain",
                "too many alerts: one a minute after a burst; this one is counted and reported with the next\n".into(),
            );
            r.headers_mut().insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from_static("60"));
            return r;
        }
    };
    let message =
        if dropped > 0 { format!("{message} ({dropped} earlier alert(s) refused by the rate limit)") } else { message };
    state.notifier.do_send(Event::Alert { message });
    text(StatusCode::ACCEPTED, "text/plain", "relayed\n".into())
}

/// Characters of an alert relayed; a longer one is cut, with a mark.
const ALERT_CHARS: usize = 1_000;

/// An alert's text: control characters out (a key split by a newline would be whole again after),
/// then secrets (before the cut: a cut must not leave half a key that no longer matches), then cut
/// to [`ALERT_CHARS`]. `None` when nothing is left.
pub(crate) fn alert_text(body: &[u8]) -> Option<String> {
    let printable: String = String::from_utf8_lossy(body).chars().filter(|c| !c.is_control()).collect();
    let clean = crate::config::env::redact(&printable);
    let clean = clean.trim();
    if clean.is_empty() {
        return None;
    }
    let mut cut: String = clean.chars().take(ALERT_CHARS).collect();
    if cut.len() < clean.len() {
        cut.push_str(" …(cut)");
    }
    Some(cut)
}

/// How long the journal's part of the dashboard is shown before it is read again. Each read puts
/// four queries on the journal's one writer, ahead of copies: open tabs, or a loop of requests,
/// cost at most one read per interval, and requests arriving together share it.
const DASHBOARD_FRESH: Duration = Duration::from_secs(2);

/// What the dashboard shows: the journal's part at most [`DASHBOARD_FRESH`] old, the trading state
/// and the figures kept in memory as they are now.
async fn dashboard_view(state: &HttpState) -> Option<crate::dashboard::View> {
    // One read of the journal at a time, the others waiting for it a bounded time only: queued
    // behind a slow journal, every open tab's request held a connection slot, shared with
    // /health and /metrics, until none was left for them.
    let mut cached = tokio::time::timeout(Duration::from_millis(2_500), state.dashboard.lock()).await.ok()?;
    let fresh = cached.as_ref().filter(|(at, _)| at.elapsed() < DASHBOARD_FRESH).map(|(_, v)| v.clone());
    let mut view = match fresh {
        Some(v) => v,
        None => {
            state.metrics.dashboard_reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let v = journal_view(state).await?;
            *cached = Some((tokio::time::Instant::now(), v.clone()));
            v
        }
    };
    drop(cached);
    if let Ok(Ok(b)) = tokio::time::timeout(Duration::from_millis(500), state.risk.send(GetBreakerState)).await {
        view.breaker = b;
    }
    view.targets = state.metrics.targets.lock().map(|t| t.clone()).unwrap_or_default();
    view.detection = state.metrics.detection.lock().map(|d| d.clone()).unwrap_or_default();
    Some(view)
}

/// The dashboard read from the journal, each part bounded in time (the page never waits on a busy
/// actor).
async fn journal_view(state: &HttpState) -> Option<crate::dashboard::View> {
    use crate::actors::store::{GetPnlByDay, GetStatus, GetTrades, MarketNames};
    let wait = Duration::from_secs(2);
    let status = tokio::time::timeout(wait, state.store.send(GetStatus)).await.ok()?.ok()?.ok()?;
    let pnl = tokio::time::timeout(wait, state.store.send(GetPnlByDay { days: 30, now_ms: now_ms() }))
        .await
        .ok()
        .and_then(|r| r.ok()?.ok())
        .unwrap_or_default();
    let trades = tokio::time::timeout(wait, state.store.send(GetTrades(20)))
        .await
        .ok()
        .and_then(|r| r.ok()?.ok())
        .unwrap_or_default();
    // Only the tokens the page shows.
    let mut shown: Vec<String> = status.positions.iter().map(|p| p.token_id.clone()).collect();
    shown.extend(trades.iter().map(|t| t.token_id.clone()));
    shown.sort_unstable();
    shown.dedup();
    let names = tokio::time::timeout(wait, state.store.send(MarketNames(shown)))
        .await
        .ok()
        .and_then(|r| r.ok()?.ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(t, n)| (t.to_string(), n))
        .collect();
    let mut pnl_by_day: Vec<(i64, i64)> = pnl.into_iter().map(|(d, p)| (d, p.0)).collect();
    pnl_by_day.sort_unstable();
    Some(crate::dashboard::View {
        mode: if state.metrics.live.load(std::sync::atomic::Ordering::Relaxed) { "live" } else { "paper" },
        breaker: status.breaker.clone(),
        status,
        pnl_by_day,
        targets: Vec::new(),
        trades,
        names,
        detection: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::{ALERT_CHARS, alert_text, host_name_shape, served_host};

    #[test]
    fn an_alert_loses_its_secrets_before_it_is_cut() {
        crate::config::env::register_secrets(["0xkeykeykeykeykey"]);
        let at_the_cut = format!("{}0xkeykeykeykeykey", "a".repeat(ALERT_CHARS - 4));
        let cases: [(&str, Option<String>); 5] = [
            ("", None),
            (" \n\t ", None),
            ("disk\u{7} low", Some("disk low".into())),
            ("key 0xkeykey\nkeykeykey", Some("key <redacted>".into())),
            (&at_the_cut, Some(format!("{}<red …(cut)", "a".repeat(ALERT_CHARS - 4)))),
        ];
        for (body, want) in cases {
            assert_eq!(alert_text(body.as_bytes()), want, "{body:?}");
        }
    }

    #[test]
    fn only_addresses_localhost_and_listed_names_are_served() {
        let listed = ["polycopy.lan".to_owned(), "Dash.Example.".to_owned()];
        // (Host header, names listed, served)
        for (host, allowed, served) in [
            (None, &[][..], true),
            (Some("127.0.0.1:9187"), &[][..], true),
            (Some("127.0.0.1"), &[][..], true),
            (Some("localhost:9187"), &[][..], true),
            (Some("LOCALHOST"), &[][..], true),
            (Some("localhost."), &[][..], true),
            (Some("[::1]:9187"), &[][..], true),
            (Some("[::1]"), &[][..], true),
            (Some("10.0.0.5:9187"), &[][..], true),
            (Some("evil.example:9187"), &[][..], false),
            (Some("evil.example"), &listed[..], false),
            (Some("localhost.evil.example"), &[][..], false),
            (Some("127.0.0.1.nip.io:9187"), &[][..], false),
            (Some("polycopy.lan"), &[][..], false),
            (Some("polycopy.lan:9187"), &listed[..], true),
            (Some("POLYCOPY.LAN."), &listed[..], true),
            (Some("dash.example"), &listed[..], true),
            (Some("polycopy.lan.evil.example"), &listed[..], false),
            (Some("\u{0}"), &listed[..], false),
            (Some(""), &listed[..], false),
        ] {
            assert_eq!(served_host(host, allowed), served, "{host:?} with {allowed:?}");
        }
    }

    #[test]
    fn allowed_hosts_are_names_only() {
        for (name, ok) in [
            ("polycopy.lan", true),
            ("dash-1.example.com.", true),
            ("", false),
            ("..", false),
            ("http://polycopy.lan", false),
            ("polycopy.lan:9187", false),
            ("*.example.com", false),
            ("polycopy.lan/dashboard", false),
            ("poly copy", false),
        ] {
            assert_eq!(host_name_shape(name), ok, "{name:?}");
        }
    }
}
