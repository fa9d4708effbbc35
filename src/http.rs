//! A deliberately small HTTP/1.1 server on loopback for `GET /health`, `GET /metrics` and
//! `POST /alert` (cron's health check relays its alerts through the daemon's notifier, and so to
//! every sink). One request per connection, no keep-alive. No answer ever holds a secret.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::actors::notifier::{Event, Notifier};
use crate::actors::risk_supervisor::{GetBreakerState, RiskSupervisor};
use crate::actors::store::{GetCheckpoint, StoreActor};
use crate::chain::FeedStatus;
use crate::config::settings::HealthSettings;
use crate::health::{HealthInput, HealthReport, Level, evaluate};
use crate::metrics::Metrics;
use crate::store::now_ms;

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
    /// Paper mode.
    pub paper: bool,
}

impl HttpState {
    /// Runs every health check now.
    pub async fn health(&self) -> HealthReport {
        let db = match tokio::time::timeout(Duration::from_secs(2), self.store.send(GetCheckpoint)).await {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err(e))) => Err(format!("journal error: {e}")),
            Ok(Err(e)) => Err(format!("journal actor gone: {e}")),
            Err(_) => Err("journal did not answer within 2 s".into()),
        };
        let breaker = tokio::time::timeout(Duration::from_secs(2), self.risk.send(GetBreakerState))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| crate::risk::BreakerState {
                tripped: true,
                code: "unknown".into(),
                reason: "risk supervisor did not answer".into(),
                ..Default::default()
            });
        let input = HealthInput {
            feed: *self.feed.borrow(),
            confirmations: self.confirmations,
            breaker: &breaker,
            db,
            telegram: self.metrics.telegram_on.load(std::sync::atomic::Ordering::Relaxed).then(|| {
                if self.metrics.telegram_failing.load(std::sync::atomic::Ordering::Relaxed) {
                    Err("the last delivery to Telegram failed; retrying".to_owned())
                } else {
                    Ok(())
                }
            }),
            paper: self.paper,
            now_ms: now_ms(),
        };
        evaluate(&input, &self.health)
    }
}

/// Serves until the listener fails. Bind errors are returned so the caller can report them.
///
/// # Errors
/// When the address cannot be bound.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Accepts connections forever.
pub async fn serve(listener: TcpListener, state: HttpState) {
    loop {
        match listener.accept().await {
            Ok((sock, _)) => {
                let state = state.clone();
                actix::spawn(async move {
                    if let Err(e) = handle(sock, &state).await {
                        debug!(cause = %e, "http connection ended with an error");
                    }
                });
            }
            Err(e) => {
                warn!(cause = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(mut sock: TcpStream, state: &HttpState) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    // Read the request head (bounded); bodies are not accepted.
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let m = sock.read(&mut buf[n..]).await?;
            n += m;
            if m == 0 || buf[..n].windows(4).any(|w| w == b"\r\n\r\n") || n == buf.len() {
                return Ok::<(), std::io::Error>(());
            }
        }
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return Ok(());
    }
    let request = String::from_utf8_lossy(&buf[..n]).into_owned();
    let (head, body_start) = request.split_once("\r\n\r\n").unwrap_or((&request, ""));
    let mut parts = head.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET", "/health") => {
            let report = state.health().await;
            let code = if report.status == Level::Unhealthy { "503 Service Unavailable" } else { "200 OK" };
            (code, "application/json", serde_json::to_string(&report).unwrap_or_default())
        }
        ("GET", "/metrics") => {
            ("200 OK", "text/plain; version=0.0.4", state.metrics.render(&state.feed.borrow(), now_ms()))
        }
        ("POST", "/alert") => {
            let message: String = body_start.trim().chars().filter(|c| !c.is_control()).take(1_000).collect();
            if message.is_empty() {
                ("400 Bad Request", "text/plain", "empty alert\n".to_owned())
            } else {
                state.notifier.do_send(Event::Alert { message });
                ("202 Accepted", "text/plain", "relayed\n".to_owned())
            }
        }
        ("GET", _) => ("404 Not Found", "text/plain", "not found: try /health or /metrics\n".to_owned()),
        _ => ("405 Method Not Allowed", "text/plain", "GET /health, GET /metrics or POST /alert\n".to_owned()),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(resp.as_bytes()).await?;
    sock.shutdown().await
}
