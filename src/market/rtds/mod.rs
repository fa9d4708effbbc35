//! The RTDS source (optional, off by default): Polymarket's real-time `activity`/`trades`
//! firehose over a websocket, filtered here to our targets, each row journaled as a sighting of
//! the fill it will be linked to ([`row`]). It measures whether RTDS sees fills before their
//! block; it never triggers a copy by itself: its rows carry no order hash, so a copy made on one
//! could not be made one with the mined log's fill (docs/PROTOCOL.md §8).
//!
//! The feed is known to go silent while its socket still answers pings, and only a new socket
//! brings it back: a watchdog on *data* rebuilds the socket when nothing arrives for a while, and
//! a second socket runs as a standby so a rebuild loses nothing.

pub mod row;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use actix::Addr;
use alloy::primitives::Address;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

use crate::actors::store::{RecordRtds, StoreActor};
use row::{Occurrences, RtdsRow, parse_frame};

/// What the official client sends to subscribe to every trade.
const SUBSCRIBE: &str = r#"{"action":"subscribe","subscriptions":[{"topic":"activity","type":"trades"}]}"#;
/// Ping period of the official client.
const PING: Duration = Duration::from_secs(5);
/// Longest pause between reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Rows remembered to merge the two sockets' copies of a row.
const SEEN_MAX: usize = 100_000;

/// How to reach RTDS.
#[derive(Debug, Clone)]
pub struct RtdsConfig {
    /// The websocket URL.
    pub url: String,
    /// No data for this long: the socket is rebuilt.
    pub stale: Duration,
    /// Run a second socket as a standby.
    pub standby: bool,
}

/// Runs the RTDS source until `shutdown`: one socket (two with the standby) feeding one recorder.
pub async fn run(
    cfg: RtdsConfig,
    store: Addr<StoreActor>,
    targets: watch::Receiver<Vec<Address>>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let (tx, mut rx) = mpsc::channel::<(RtdsRow, i64)>(4_096);
    let sockets = if cfg.standby { 2 } else { 1 };
    for id in 0..sockets {
        tokio::spawn(socket(id, cfg.clone(), targets.clone(), tx.clone(), shutdown.clone()));
    }
    drop(tx);
    let mut seen: HashSet<RtdsRow> = HashSet::new();
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => return,
            r = rx.recv() => match r { Some(r) => r, None => return },
        };
        // Whatever else is waiting goes in the same journal write.
        let mut batch = vec![first];
        while let Ok(r) = rx.try_recv() {
            batch.push(r);
        }
        if seen.len() > SEEN_MAX {
            seen.clear();
        }
        batch.retain(|(r, _)| seen.insert(*r));
        if batch.is_empty() {
            continue;
        }
        match store.send(RecordRtds(batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(cause = %e, "RTDS sightings not journaled"),
            Err(e) => warn!(cause = %e, "RTDS sightings not journaled: the journal is gone"),
        }
    }
}

/// One socket: connect, subscribe, read; rebuilt when it closes, fails, or goes silent.
async fn socket(
    id: u8,
    cfg: RtdsConfig,
    targets: watch::Receiver<Vec<Address>>,
    out: mpsc::Sender<(RtdsRow, i64)>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let name = if id == 0 { "primary" } else { "standby" };
    let mut backoff = Duration::from_secs(1);
    let mut failing = false;
    loop {
        match tokio_tungstenite::connect_async(cfg.url.as_str()).await {
            Err(e) => {
                if !failing {
                    warn!(socket = name, url = %crate::config::redact_url(&cfg.url), cause = %e, "RTDS unreachable; retrying");
                    failing = true;
                }
            }
            Ok((mut ws, _)) => {
                if failing {
                    info!(socket = name, "RTDS connected again");
                }
                failing = false;
                backoff = Duration::from_secs(1);
                let mut silent = false;
                if ws.send(Message::text(SUBSCRIBE)).await.is_ok() {
                    match read(&mut ws, &cfg, &targets, &out, &shutdown).await {
                        End::Shutdown => return,
                        End::Silent => {
                            warn!(
                                socket = name,
                                silent_s = cfg.stale.as_secs(),
                                "RTDS sent no data while its socket stayed open; rebuilding the socket"
                            );
                            silent = true;
                        }
                        End::Closed(why) => debug!(socket = name, why = %why, "RTDS socket closed; reconnecting"),
                    }
                }
                let _ = ws.close(None).await;
                if silent {
                    // The server is up, the socket was stale: a new one at once.
                    continue;
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Why a socket's reading ended.
enum End {
    Shutdown,
    Silent,
    Closed(String),
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn read(
    ws: &mut Ws,
    cfg: &RtdsConfig,
    targets: &watch::Receiver<Vec<Address>>,
    out: &mpsc::Sender<(RtdsRow, i64)>,
    shutdown: &tokio_util::sync::CancellationToken,
) -> End {
    let mut occ = Occurrences::default();
    let mut last_data = Instant::now();
    // Checked at least twice per staleness period, so a silent feed is caught in time.
    let mut tick = tokio::time::interval(PING.min(cfg.stale / 2).max(Duration::from_millis(100)));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return End::Shutdown,
            _ = tick.tick() => {
                if last_data.elapsed() > cfg.stale {
                    return End::Silent;
                }
                if ws.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return End::Closed("ping failed".into());
                }
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    last_data = Instant::now();
                    let watched: HashSet<Address> = targets.borrow().iter().copied().collect();
                    match parse_frame(t.as_str(), &watched, &mut occ) {
                        Ok(rows) => {
                            let at = crate::store::now_ms();
                            for r in rows {
                                if out.send((r, at)).await.is_err() {
                                    return End::Shutdown;
                                }
                            }
                        }
                        Err(e) => debug!(cause = %e, "RTDS frame skipped"),
                    }
                    occ.clear_if_larger_than(SEEN_MAX);
                }
                Some(Ok(Message::Binary(_))) => last_data = Instant::now(),
                Some(Ok(Message::Close(f))) => return End::Closed(format!("closed by the server: {f:?}")),
                Some(Ok(_)) => {} // pings and pongs are not data
                Some(Err(e)) => return End::Closed(e.to_string()),
                None => return End::Closed("stream ended".into()),
            }
        }
    }
}
