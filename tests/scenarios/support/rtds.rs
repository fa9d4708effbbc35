//! A fake of Polymarket's RTDS websocket (`wss://ws-live-data.polymarket.com`), quirks included:
//! it streams `activity`/`trades` frames for other wallets all the time (the real firehose carries
//! every trade), answers pings, and can freeze a socket: no more data while pings are still
//! answered, as the real feed does every 14–63 minutes (docs/PROTOCOL.md §8). A frozen socket
//! stays frozen; only a new connection gets data again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

#[derive(Default)]
struct State {
    /// Per connection: its outbox, and whether it is frozen.
    conns: Vec<(mpsc::UnboundedSender<String>, bool)>,
    subscriptions: usize,
}

pub struct FakeRtds {
    pub url: String,
    state: Arc<Mutex<State>>,
}

/// A trade row as RTDS sends it.
pub fn trade_frame(wallet: &str, token: &str, side: &str, size: &str, tx: &str) -> String {
    format!(
        r#"{{"topic":"activity","type":"trades","timestamp":1764590000123,"connection_id":"x","payload":{{"asset":"{token}","bio":"","conditionId":"0x{}","eventSlug":"e","icon":"","name":"n","outcome":"Yes","outcomeIndex":0,"price":0.4,"profileImage":"","proxyWallet":"{wallet}","pseudonym":"p","side":"{side}","size":{size},"slug":"s","timestamp":1764590000,"title":"Will it?","transactionHash":"{tx}"}}}}"#,
        "11".repeat(32)
    )
}

impl FakeRtds {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else { return };
                    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
                    let idx = {
                        let mut s = st.lock().unwrap();
                        s.conns.push((tx, false));
                        s.conns.len() - 1
                    };
                    let (mut sink, mut stream) = ws.split();
                    let mut chatter = tokio::time::interval(Duration::from_millis(100));
                    loop {
                        tokio::select! {
                            m = stream.next() => match m {
                                Some(Ok(Message::Text(t))) if t.contains("\"subscribe\"") => st.lock().unwrap().subscriptions += 1,
                                // Pings are answered even when frozen.
                                Some(Ok(Message::Ping(p))) => { let _ = sink.send(Message::Pong(p)).await; }
                                Some(Ok(_)) => {}
                                _ => return,
                            },
                            f = rx.recv() => {
                                let Some(f) = f else { return };
                                if sink.send(Message::text(f)).await.is_err() { return; }
                            }
                            _ = chatter.tick() => {
                                // Everyone else's trades, unless this socket is frozen.
                                let frozen = st.lock().unwrap().conns[idx].1;
                                if !frozen {
                                    let f = trade_frame("0x9999999999999999999999999999999999999999", "1", "BUY", "1", &format!("0x{}", "99".repeat(32)));
                                    if sink.send(Message::text(f)).await.is_err() { return; }
                                }
                            }
                        }
                    }
                });
            }
        });
        Self { url, state }
    }

    /// Sends `frame` on every socket that is not frozen.
    pub fn push(&self, frame: &str) {
        for (tx, frozen) in &self.state.lock().unwrap().conns {
            if !frozen {
                let _ = tx.send(frame.to_owned());
            }
        }
    }

    /// Freezes every socket open now (new ones are not).
    pub fn freeze_open(&self) {
        for c in &mut self.state.lock().unwrap().conns {
            c.1 = true;
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().conns.len()
    }

    /// Subscription messages received so far.
    pub fn subscriptions(&self) -> usize {
        self.state.lock().unwrap().subscriptions
    }
}
