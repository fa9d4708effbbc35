//! A JSON-RPC endpoint in front of anvil that refuses `eth_getLogs` over more than `cap` blocks, as
//! RPC providers do (docs/PROTOCOL.md §3, "Reading logs": QuickNode's free plan allows 5). Every
//! other call, and every range within the cap, is passed to anvil unchanged. It can also answer a
//! few `eth_getLogs` as a load balancer's lagging backend does: "no logs" for a range by number,
//! "unknown block" for a block by hash.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::http::read_request;

/// The endpoint, and what it refused and served.
pub struct CappedRpc {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    refused: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
    faults: Arc<Faults>,
}

/// The lagging backend's misbehaviours, armed by the test.
#[derive(Default)]
struct Faults {
    lagging: AtomicUsize,
    behind: AtomicUsize,
    newest_missing: AtomicUsize,
    estimates_refused: AtomicUsize,
    receipts_hidden: AtomicBool,
    raw_sends: AtomicUsize,
    /// While set, `eth_getLogs` calls wait unanswered (a stalled backend); how many wait now.
    logs_held: AtomicBool,
    logs_waiting: AtomicUsize,
    /// `eth_blockNumber` answered this many blocks behind anvil's head (a backend behind).
    head_lag: std::sync::atomic::AtomicU64,
    /// While set, `txpool_content` fails (its megabytes timed out, or no longer served).
    pool_refused: AtomicBool,
    /// While set, `eth_sendRawTransaction` is refused as bor refuses a tip below its minimum.
    sends_refused: AtomicBool,
}

impl CappedRpc {
    /// Listens on a free port, forwarding to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, cap: u64) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (refused, served): (Arc<AtomicUsize>, Arc<AtomicUsize>) = (Arc::default(), Arc::default());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let faults: Arc<Faults> = Arc::default();
        let (r, s, f) = (refused.clone(), served.clone(), faults.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(sock, upstream.clone(), cap, (r.clone(), s.clone()), f.clone()));
            }
        });
        Self { url, refused, served, faults }
    }

    /// While `hidden`, transactions and receipts are looked up on a backend that has not seen them
    /// yet (null), while sending still reaches the one that mined them.
    pub fn hide_receipts(&self, hidden: bool) {
        self.faults.receipts_hidden.store(hidden, Ordering::SeqCst);
    }

    /// While `held`, `eth_getLogs` calls wait unanswered, as on a stalled backend (the feed falls
    /// behind the head); released, they are answered.
    pub fn hold_logs(&self, held: bool) {
        self.faults.logs_held.store(held, Ordering::SeqCst);
    }

    /// `eth_getLogs` calls waiting now.
    pub fn logs_waiting(&self) -> usize {
        self.faults.logs_waiting.load(Ordering::SeqCst)
    }

    /// `eth_sendRawTransaction` calls passed on so far.
    pub fn raw_sends(&self) -> usize {
        self.faults.raw_sends.load(Ordering::SeqCst)
    }

    /// The next `n` block-by-number calls are answered by a backend two blocks behind the one that
    /// answers for the head (a load balancer's): it has no block above the head less two.
    pub fn behind(&self, n: usize) {
        self.faults.behind.store(n, Ordering::SeqCst);
    }

    /// The next `n` calls for the newest block by number are answered by a backend one block
    /// behind the one that named it as the head (null): the block the feed was just told of.
    pub fn newest_missing(&self, n: usize) {
        self.faults.newest_missing.store(n, Ordering::SeqCst);
    }

    /// Calls for the newest block still to be answered as missing.
    pub fn still_missing(&self) -> usize {
        self.faults.newest_missing.load(Ordering::SeqCst)
    }

    /// The next `n` `eth_estimateGas` calls are refused as a rate-limited provider refuses them
    /// (-32005 "limit exceeded"): the node failing, not the call reverting.
    pub fn refuse_estimates(&self, n: usize) {
        self.faults.estimates_refused.store(n, Ordering::SeqCst);
    }

    /// From now on, `eth_blockNumber` names a head `lag` blocks behind anvil's (a backend that
    /// has not seen the newest blocks; state asked at that head is read as it was then).
    pub fn heads_behind(&self, lag: u64) {
        self.faults.head_lag.store(lag, Ordering::SeqCst);
    }

    /// While `refused`, every transaction sent is refused ("transaction underpriced", as bor
    /// answers a tip below the network's minimum) and counted; every other call is served.
    pub fn refuse_sends(&self, refused: bool) {
        self.faults.sends_refused.store(refused, Ordering::SeqCst);
    }

    /// While `refused`, reading the node's pool fails; every other call is served.
    pub fn refuse_pool(&self, refused: bool) {
        self.faults.pool_refused.store(refused, Ordering::SeqCst);
    }

    /// Calls still to be answered from behind.
    pub fn still_behind(&self) -> usize {
        self.faults.behind.load(Ordering::SeqCst)
    }

    /// The next `n` `eth_getLogs` calls are answered by a backend that has not indexed the newest
    /// blocks yet.
    pub fn lag(&self, n: usize) {
        self.faults.lagging.store(n, Ordering::SeqCst);
    }

    /// `eth_getLogs` calls refused for their range.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// `eth_getLogs` calls passed on.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

/// One keep-alive connection: each request is refused or forwarded.
async fn serve(
    mut sock: TcpStream,
    upstream: String,
    cap: u64,
    (refused, served): (Arc<AtomicUsize>, Arc<AtomicUsize>),
    faults: Arc<Faults>,
) {
    let Faults {
        lagging,
        behind,
        newest_missing,
        estimates_refused,
        receipts_hidden,
        raw_sends,
        logs_held,
        logs_waiting,
        head_lag,
        pool_refused,
        sends_refused,
    } = &*faults;
    while let Some((_, _, body, _)) = read_request(&mut sock).await {
        let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if req["method"] == "eth_getLogs" && logs_held.load(Ordering::SeqCst) {
            logs_waiting.fetch_add(1, Ordering::SeqCst);
            while logs_held.load(Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            logs_waiting.fetch_sub(1, Ordering::SeqCst);
        }
        if req["method"] == "txpool_content" && pool_refused.load(Ordering::SeqCst) {
            let refusal = json!({"jsonrpc": "2.0", "id": req["id"].clone(), "error": {"code": -32000, "message": "request timed out"}});
            if !answer(&mut sock, &refusal).await {
                return;
            }
            continue;
        }
        let lag = head_lag.load(Ordering::SeqCst);
        if req["method"] == "eth_blockNumber" && lag > 0 {
            let Some(head) = upstream_head(&upstream).await else { return };
            let behind = json!({"jsonrpc": "2.0", "id": req["id"].clone(), "result": format!("{:#x}", head.saturating_sub(lag))});
            if !answer(&mut sock, &behind).await {
                return;
            }
            continue;
        }
        if req["method"] == "eth_sendRawTransaction" {
            raw_sends.fetch_add(1, Ordering::SeqCst);
            if sends_refused.load(Ordering::SeqCst) {
                let refusal = json!({"jsonrpc": "2.0", "id": req["id"].clone(), "error": {"code": -32000, "message": "transaction underpriced"}});
                if !answer(&mut sock, &refusal).await {
                    return;
                }
                continue;
            }
        }
        let lookup = req["method"] == "eth_getTransactionReceipt" || req["method"] == "eth_getTransactionByHash";
        if lookup && receipts_hidden.load(Ordering::SeqCst) {
            if !answer(&mut sock, &json!({"jsonrpc": "2.0", "id": req["id"].clone(), "result": null})).await {
                return;
            }
            continue;
        }
        if req["method"] == "eth_estimateGas"
            && estimates_refused.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
        {
            let refusal = json!({"jsonrpc": "2.0", "id": req["id"].clone(), "error": {"code": -32005, "message": "limit exceeded"}});
            if !answer(&mut sock, &refusal).await {
                return;
            }
            continue;
        }
        let lag = if req["method"] != "eth_getBlockByNumber" {
            None
        } else if behind.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            Some(2)
        } else if newest_missing.load(Ordering::SeqCst) > 0 && is_newest(&upstream, &req).await {
            newest_missing.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).ok().map(|_| 1)
        } else {
            None
        };
        if let Some(lag) = lag {
            let Some(answer) = from_behind(&upstream, &req, &body, lag).await else { return };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                answer.len()
            );
            if sock.write_all(head.as_bytes()).await.is_err() || sock.write_all(&answer).await.is_err() {
                return;
            }
            continue;
        }
        let lags = req["method"] == "eth_getLogs"
            && lagging.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        let answer = if lags {
            let id = req["id"].clone();
            if req["params"][0]["blockHash"].is_string() {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": "unknown block"}})
            } else {
                json!({"jsonrpc": "2.0", "id": id, "result": []})
            }
            .to_string()
            .into_bytes()
        } else {
            match over_cap(&req, cap) {
                Some(id) => {
                    refused.fetch_add(1, Ordering::SeqCst);
                    // QuickNode's words for it.
                    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32614, "message": format!("eth_getLogs is limited to a {cap} range")}})
                    .to_string()
                    .into_bytes()
                }
                None => {
                    if req["method"] == "eth_getLogs" {
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                    match forward(&upstream, &body).await {
                        Some(b) => b,
                        None => return,
                    }
                }
            }
        };
        let head =
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", answer.len());
        if sock.write_all(head.as_bytes()).await.is_err() || sock.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// Writes `body` as one JSON answer; false when the connection is gone.
async fn answer(sock: &mut TcpStream, body: &Value) -> bool {
    let body = body.to_string();
    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
    sock.write_all(head.as_bytes()).await.is_ok() && sock.write_all(body.as_bytes()).await.is_ok()
}

/// anvil's head.
async fn upstream_head(upstream: &str) -> Option<u64> {
    let ask_head = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).to_string();
    let real: Value = serde_json::from_slice(&forward(upstream, ask_head.as_bytes()).await?).ok()?;
    hex(&real["result"])
}

fn hex(v: &Value) -> Option<u64> {
    v.as_str().and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok())
}

/// Whether `req` (a block by number) asks for anvil's newest block.
async fn is_newest(upstream: &str, req: &Value) -> bool {
    let asked = hex(&req["params"][0]);
    asked.is_some() && asked == upstream_head(upstream).await
}

/// `req` (a block by number) answered as a node `lag` blocks behind anvil would.
async fn from_behind(upstream: &str, req: &Value, body: &[u8], lag: u64) -> Option<Vec<u8>> {
    let head = upstream_head(upstream).await?.saturating_sub(lag);
    let id = req["id"].clone();
    match hex(&req["params"][0]) {
        Some(n) if n > head => Some(json!({"jsonrpc": "2.0", "id": id, "result": null}).to_string().into_bytes()),
        _ => forward(upstream, body).await,
    }
}

/// The request's id when it is an `eth_getLogs` over more than `cap` blocks.
fn over_cap(req: &Value, cap: u64) -> Option<Value> {
    if req["method"] != "eth_getLogs" {
        return None;
    }
    let block =
        |k: &str| req["params"][0][k].as_str().and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok());
    let (from, to) = (block("fromBlock")?, block("toBlock")?);
    (to.saturating_sub(from) + 1 > cap).then(|| req["id"].clone())
}

/// Passes `body` to anvil on a connection of its own; its answer's body.
async fn forward(upstream: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(upstream).await.ok()?;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {upstream}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.ok()?;
    s.write_all(body).await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let at = super::http::find(&buf, b"\r\n\r\n")? + 4;
    Some(buf[at..].to_vec())
}
