//! A websocket JSON-RPC tap between the daemon and anvil: forwards everything, remembers the
//! subscriptions, can hide new-head notifications, and can inject a log notification with
//! `"removed": true` (which anvil 1.7.1 never sends), as some real nodes do on a reorg; and can
//! refuse subscriptions with a JSON-RPC error, as a provider without websocket subscriptions does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

#[derive(Default)]
struct Shared {
    /// Request id → subscription kind, for eth_subscribe requests in flight.
    pending: HashMap<String, String>,
    /// Subscription id → kind ("newHeads", "logs").
    subs: HashMap<String, String>,
    /// The last log notification forwarded.
    last_log: Option<Value>,
    /// Writers to each connected client.
    clients: Vec<mpsc::UnboundedSender<Message>>,
    /// eth_subscribe is answered with an error instead of being forwarded.
    refuse_subscriptions: bool,
    /// How many eth_subscribe requests were refused.
    refused: usize,
}

pub struct WsTap {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    hide_heads: Arc<AtomicBool>,
}

impl WsTap {
    pub async fn start(anvil_port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared: Arc<Mutex<Shared>> = Arc::default();
        let hide_heads = Arc::new(AtomicBool::new(false));
        let (sh, hh) = (shared.clone(), hide_heads.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (sh, hh) = (sh.clone(), hh.clone());
                tokio::spawn(async move {
                    let Ok(client) = tokio_tungstenite::accept_async(tcp).await else { return };
                    let Ok((node, _)) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{anvil_port}")).await
                    else {
                        return;
                    };
                    let (mut c_tx, mut c_rx) = client.split();
                    let (mut n_tx, mut n_rx) = node.split();
                    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
                    sh.lock().unwrap().clients.push(out_tx.clone());
                    tokio::spawn(async move {
                        while let Some(m) = out_rx.recv().await {
                            if c_tx.send(m).await.is_err() {
                                break;
                            }
                        }
                    });
                    let (sh_up, refusals) = (sh.clone(), out_tx.clone());
                    tokio::spawn(async move {
                        while let Some(Ok(m)) = c_rx.next().await {
                            if let Message::Text(t) = &m
                                && let Ok(v) = serde_json::from_str::<Value>(t)
                                && v["method"] == "eth_subscribe"
                            {
                                let mut s = sh_up.lock().unwrap();
                                if s.refuse_subscriptions {
                                    s.refused += 1;
                                    let error = serde_json::json!({"jsonrpc": "2.0", "id": v["id"],
                                        "error": {"code": -32601, "message": "subscriptions are not available"}});
                                    let _ = refusals.send(Message::text(error.to_string()));
                                    continue;
                                }
                                let kind = v["params"][0].as_str().unwrap_or("").to_owned();
                                s.pending.insert(v["id"].to_string(), kind);
                            }
                            if n_tx.send(m).await.is_err() {
                                break;
                            }
                        }
                    });
                    while let Some(Ok(m)) = n_rx.next().await {
                        if let Message::Text(t) = &m
                            && let Ok(v) = serde_json::from_str::<Value>(t)
                        {
                            let mut s = sh.lock().unwrap();
                            if let Some(kind) = s.pending.remove(&v["id"].to_string())
                                && let Some(sub) = v["result"].as_str()
                            {
                                s.subs.insert(sub.to_owned(), kind);
                            }
                            if v["method"] == "eth_subscription" {
                                let sub = v["params"]["subscription"].as_str().unwrap_or("").to_owned();
                                match s.subs.get(&sub).map(String::as_str) {
                                    Some("newHeads") if hh.load(Ordering::SeqCst) => continue,
                                    Some("logs") => s.last_log = Some(v.clone()),
                                    _ => {}
                                }
                            }
                        }
                        if out_tx.send(m).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { addr, shared, hide_heads }
    }

    /// Stops forwarding new-head notifications (the daemon then learns of blocks only from logs
    /// and its poll).
    pub fn hide_heads(&self) {
        self.hide_heads.store(true, Ordering::SeqCst);
    }

    /// True once a log notification went through.
    pub fn saw_log(&self) -> bool {
        self.shared.lock().unwrap().last_log.is_some()
    }

    /// Sends the last log notification again, marked `"removed": true`. Returns false when there
    /// was none.
    pub fn inject_removed(&self) -> bool {
        let s = self.shared.lock().unwrap();
        let Some(mut v) = s.last_log.clone() else { return false };
        v["params"]["result"]["removed"] = Value::Bool(true);
        let text = v.to_string();
        s.clients.iter().any(|c| c.send(Message::text(text.clone())).is_ok())
    }

    /// Answers every eth_subscribe with an error (`true`) or forwards them again (`false`).
    pub fn refuse_subscriptions(&self, on: bool) {
        self.shared.lock().unwrap().refuse_subscriptions = on;
    }

    /// How many eth_subscribe requests were refused so far.
    pub fn refused(&self) -> usize {
        self.shared.lock().unwrap().refused
    }
}
