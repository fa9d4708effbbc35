//! A fake Polymarket CLOB (V2) that checks what the real one checks: the L1 EIP-712 `ClobAuth`
//! signature when credentials are derived, the L2 HMAC on every trading call, and that each posted
//! order's EIP-712 signature recovers to the configured signer under the right exchange's domain
//! (the NegRisk V2 exchange for neg-risk tokens). Each `POST /order` plays the next scripted
//! outcome; orders it accepted can be looked up by id.

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, Signature, U256};
use alloy::sol_types::{Eip712Domain, SolStruct};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use hmac::{Hmac, Mac};
use polymarket_client_sdk_v2::clob::types::OrderV2;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

pub const API_KEY: &str = "6f1c1e5e-8c1a-4b8e-9a7e-0d7e5a3b2c11";
pub const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";
pub const PASSPHRASE: &str = "pass-phrase-0001";
/// Our API key once [`FakeClob::rotate_key`] replaced it.
pub const ROTATED_API_KEY: &str = "0b9d2f44-1e7a-4c3d-8f61-5a2e9c7b4d20";
pub const STD_EXCHANGE: Address = alloy::primitives::address!("E111180000d2663C0091e4f400237545B87B996B");
pub const NEG_EXCHANGE: Address = alloy::primitives::address!("e2222d279d744050d28e00520010520000310F59");

alloy::sol! {
    struct ClobAuth {
        address address;
        string  timestamp;
        uint256 nonce;
        string  message;
    }
}

/// What the next `POST /order` does.
#[derive(Debug, Clone)]
pub enum Play {
    /// Matched in full at the limit.
    Fill,
    /// Matched in full, answered `matched` with an empty `makingAmount` (which the SDK reads as 0).
    FillEmptyMaking,
    /// Matched this percentage (rounded down to lots).
    Partial(u32),
    /// FAK with nothing to match (answered `success: false`).
    NoLiquidity,
    /// An HTTP error with this body text (`{"error": ...}`).
    Status(u16, &'static str),
    /// Takes the order (it matches in full) and never answers.
    Hang,
    /// Takes the order, finds nothing to match (a FAK order killed), and never answers.
    HangUnmatched,
    /// Lost on its way: the exchange never sees the order (lookups find nothing), and no answer
    /// comes.
    Lost,
    /// Takes the order (it matches in full) and answers after this many milliseconds.
    Slow(u64),
    /// A GTD order that rests on the book (answered `live`) until `fill_resting`.
    Rest,
    /// Takes the order (it matches in full) and answers this HTTP error all the same (a gateway's
    /// 503 after the engine took it).
    FillThenStatus(u16, &'static str),
    /// A GTD order put on the book (resting) whose answer, after this many milliseconds, is this
    /// HTTP error all the same (a gateway's 503 after the engine took the order).
    RestThenStatus(u64, u16, &'static str),
    /// A GTD order put on the book (resting) whose answer never comes.
    HangRest,
    /// A GTD order taken and held back before the book (a lagging engine): unknown to lookups and
    /// cancels until `land_unseen` puts it on the book, resting; its answer never comes.
    HangUnseen,
    /// A market order held by the market's matching delay (sports markets): answered `delayed`
    /// with empty amounts at once, looked up as `null` for this many milliseconds, then matched
    /// this percentage (rounded down to lots; 0: killed, looked up as cancelled).
    Delayed(u64, u32),
    /// [`Play::Delayed`] matched in full, whose answer never comes.
    DelayedUnanswered(u64),
}

/// An order the fake accepted.
#[derive(Debug, Clone)]
pub struct Order {
    pub id: String,
    pub token: String,
    pub side: String,
    pub shares: f64,
    pub price: f64,
    pub matched: f64,
    pub neg_risk: bool,
    pub maker: Address,
    pub salt: u64,
    pub order_type: String,
    /// Unix seconds (0 unless GTD).
    pub expiration: u64,
    /// Resting on the book, not yet filled.
    pub resting: bool,
    /// Taken off the book by the exchange when its market resolved: looked up as
    /// `CANCELED_MARKET_RESOLVED` (a status the SDK does not name).
    pub market_resolved: bool,
    /// Held by the market's matching delay until then: lookups answer `null`.
    pub delayed_until: Option<Instant>,
}

/// A token the fake lists (its Gamma market is "Market <token>", outcome "Yes").
#[derive(Debug, Clone)]
pub struct Token {
    pub neg_risk: bool,
    pub tick: &'static str,
    pub min_size: &'static str,
    pub mid: Option<&'static str>,
    /// The market no longer trades.
    pub closed: bool,
    /// Resolved: what a share of this token pays ("1" or "0").
    pub payout: Option<&'static str>,
    /// Minutes from now to the market's end.
    pub ends_in_min: i64,
    /// Resting (price, size) levels.
    pub bids: Vec<(&'static str, &'static str)>,
    pub asks: Vec<(&'static str, &'static str)>,
}

impl Token {
    pub fn open(neg_risk: bool) -> Self {
        Self {
            neg_risk,
            tick: "0.01",
            min_size: "5",
            mid: None,
            closed: false,
            payout: None,
            ends_in_min: 24 * 60,
            bids: Vec::new(),
            asks: Vec::new(),
        }
    }
}

/// A switch requests wait on until it is off: a watch channel, so a held request is answered the
/// moment it is turned off, with no polling.
struct Gate(tokio::sync::watch::Sender<bool>);

impl Default for Gate {
    fn default() -> Self {
        Self(tokio::sync::watch::channel(false).0)
    }
}

#[derive(Default)]
struct State {
    signer: Address,
    script: VecDeque<Play>,
    tokens: HashMap<String, Token>,
    orders: HashMap<String, Order>,
    posts: Vec<(Instant, String)>,
    /// Order ids `DELETE /order` asked to cancel, in order, with when.
    cancels: Vec<(Instant, String)>,
    requests: HashMap<String, u64>,
    refused: Vec<String>,
    allowance: &'static str,
    version: u32,
    blocked: bool,
    /// Our API key was revoked: authenticated reads answer 401.
    revoked: bool,
    /// A send of an order it already has gets the next scripted answer, not "Duplicated" (as an
    /// exchange whose balance check comes first would answer).
    resends_checked_first: bool,
    /// Our API key was replaced (as after a key rotation on the exchange's side): requests signed
    /// with the old one answer 401, and deriving the credentials gives the new one.
    rotated: bool,
    /// Lookups of filled orders answer `null`, as the real CLOB does for some filled FAK orders.
    null_lookups: bool,
    /// Lookups of filled orders answer `MATCHED` with a matched size of 0 (matched, not sized yet).
    unsized_lookups: bool,
    /// Lookups of an order held by a matching delay answer it `LIVE`, nothing matched (else `null`).
    delayed_looked_up_live: bool,
    /// Order lookups answer 503 (the engine is down).
    lookups_down: bool,
    /// Cancels still to answer 503 (the exchange asked, nothing cancelled).
    cancels_failing: u32,
    /// Every request answers 503, credentials and the version included (the whole CLOB is down).
    down: bool,
    /// Order lookups are held unanswered (a slow exchange) while this says so.
    lookups_hang: Gate,
    /// While on, `GET /balance-allowance` is held unanswered.
    balance_hang: Gate,
    /// While on, deriving or creating our credentials is held unanswered.
    derivations_hang: Gate,
    /// What an unscripted POST gets outside chaos mode (a fill by default).
    default_play: Option<Play>,
    /// Orders taken and not on the book yet (`Play::HangUnseen`).
    unseen: Vec<Order>,
    /// POSTs being answered now, and the most at once.
    posting: u64,
    max_posting: u64,
    /// When set, unscripted POSTs draw a random play from this generator state.
    chaos: Option<u64>,
    /// Faults played at random: (hang, 503, 425, partial, no liquidity, rest).
    faults: [u64; 7],
    /// `GET /time`: the server's clock is this far ahead of ours (s), answered after this delay.
    time_offset_s: i64,
    time_delay_ms: u64,
    /// The Data API's `/positions` of any user: (token, size as the API writes it, redeemable).
    data_positions: Vec<(String, String, bool)>,
    /// The Data API's trader leaderboard: (wallet, user name, P&L, volume, last trade unix s).
    leaderboard: Vec<(Address, String, String, String, i64)>,
}

impl State {
    /// The next play in chaos mode (a fill otherwise): 75% fills, the rest faults.
    fn random_play(&mut self) -> Play {
        let Some(x) = self.chaos.as_mut() else { return self.default_play.clone().unwrap_or(Play::Fill) };
        // xorshift64*
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D) % 100;
        let (play, i) = match r {
            0..=2 => (Play::Hang, 0),
            3..=8 => (Play::Status(503, "trading is currently cancel-only"), 1),
            9..=13 => (Play::Status(425, "too early"), 2),
            14..=16 => (Play::Partial(50), 3),
            17..=19 => (Play::NoLiquidity, 4),
            20..=22 => (Play::Rest, 5),
            23..=24 => (Play::Delayed(800, 100), 6),
            _ => return Play::Fill,
        };
        self.faults[i] += 1;
        play
    }
}

/// What Polymarket's own approval flow sets: the uint256 maximum (docs/PROTOCOL.md §7).
pub const MAX_ALLOWANCE: &str = "115792089237316195423570985008687907853269984665640564039457584007913129639935";

pub struct FakeClob {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeClob {
    /// A CLOB that accepts orders signed by `signer`.
    pub async fn start(signer: Address) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State { signer, allowance: MAX_ALLOWANCE, version: 2, ..State::default() }));
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, st).await;
                });
            }
        });
        Self { url: format!("http://{addr}"), state }
    }

    pub fn token(&self, id: u64, t: Token) {
        self.state.lock().unwrap().tokens.insert(id.to_string(), t);
    }

    pub fn script(&self, plays: &[Play]) {
        self.state.lock().unwrap().script.extend(plays.iter().cloned());
    }

    /// Unscripted POSTs play random faults from now on (seeded, so a run can be repeated).
    pub fn chaos(&self, seed: u64) {
        self.state.lock().unwrap().chaos = Some(seed.max(1));
    }

    /// Faults played so far: (hang, 503, 425, partial, no liquidity, rested).
    pub fn faults(&self) -> [u64; 7] {
        self.state.lock().unwrap().faults
    }

    pub fn set_allowance(&self, a: &'static str) {
        self.state.lock().unwrap().allowance = a;
    }

    /// Lookups of filled orders answer `null` from now on (the real CLOB's quirk, docs/PROTOCOL.md §7).
    /// The Data API's `/positions` answer (GAMMA_URL-like: DATA_API_URL points here in the tests).
    /// The Data API leaderboard (and each trader's last trade, for `/trades`).
    pub fn leaderboard(&self, rows: &[(Address, &str, &str, &str, i64)]) {
        self.state.lock().unwrap().leaderboard =
            rows.iter().map(|(a, n, p, v, t)| (*a, (*n).to_owned(), (*p).to_owned(), (*v).to_owned(), *t)).collect();
    }

    pub fn data_positions(&self, list: &[(u64, &str, bool)]) {
        self.state.lock().unwrap().data_positions =
            list.iter().map(|(t, size, r)| (t.to_string(), (*size).to_owned(), *r)).collect();
    }

    /// `GET /time` answers a clock `offset_s` ahead of ours, after `delay_ms`.
    pub fn clock(&self, offset_s: i64, delay_ms: u64) {
        let mut s = self.state.lock().unwrap();
        s.time_offset_s = offset_s;
        s.time_delay_ms = delay_ms;
    }

    pub fn null_lookups(&self) {
        self.state.lock().unwrap().null_lookups = true;
    }

    /// Lookups of an order held by a matching delay answer it `LIVE`, nothing matched yet (what
    /// the real CLOB answers then is not documented; by default `null`).
    pub fn delayed_looked_up_live(&self) {
        self.state.lock().unwrap().delayed_looked_up_live = true;
    }

    pub fn unsized_lookups(&self) {
        self.state.lock().unwrap().unsized_lookups = true;
    }

    /// Every unscripted POST gets `play` from now on (e.g. `Slow(50)`: a CLOB answering in 50 ms).
    pub fn default_play(&self, play: Play) {
        self.state.lock().unwrap().default_play = Some(play);
    }

    /// Order lookups answer 503 from now on (or again normally).
    /// Order lookups are held unanswered (a slow exchange) until this is turned off again.
    pub fn lookups_hang(&self, hang: bool) {
        self.state.lock().unwrap().lookups_hang.0.send_replace(hang);
    }

    /// Holds (or lets go) the answers to credential derivations.
    pub fn derivations_hang(&self, hang: bool) {
        self.state.lock().unwrap().derivations_hang.0.send_replace(hang);
    }

    pub fn balance_hang(&self, hang: bool) {
        self.state.lock().unwrap().balance_hang.0.send_replace(hang);
    }

    pub fn lookups_down(&self, down: bool) {
        self.state.lock().unwrap().lookups_down = down;
    }

    /// The whole CLOB answers 503 while `down`: version, credentials, books, orders, lookups.
    pub fn down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    /// Fills every resting order in full.
    pub fn fill_resting(&self) {
        for o in self.state.lock().unwrap().orders.values_mut() {
            if o.resting {
                o.resting = false;
                o.matched = o.shares;
            }
        }
    }

    /// The markets of the resting orders resolve: the exchange takes them off the book, as
    /// `CANCELED_MARKET_RESOLVED`, with what they matched before.
    pub fn resolve_resting(&self) {
        for o in self.state.lock().unwrap().orders.values_mut() {
            if o.resting {
                o.resting = false;
                o.market_resolved = true;
            }
        }
    }

    /// The orders a lagging engine held back (`Play::HangUnseen`) reach the book, resting.
    pub fn land_unseen(&self) {
        let mut s = self.state.lock().unwrap();
        for o in std::mem::take(&mut s.unseen) {
            s.orders.insert(o.id.clone(), o);
        }
    }

    /// The next `n` cancels answer 503 and cancel nothing.
    pub fn fail_cancels(&self, n: u32) {
        self.state.lock().unwrap().cancels_failing = n;
    }

    /// Order ids we were asked to cancel, with when.
    pub fn cancels(&self) -> Vec<(Instant, String)> {
        self.state.lock().unwrap().cancels.clone()
    }

    /// The most POSTs the fake was answering at once.
    pub fn max_concurrent_posts(&self) -> u64 {
        self.state.lock().unwrap().max_posting
    }

    /// A send of an order the fake already has takes the next scripted answer, not "Duplicated".
    pub fn resends_checked_first(&self) {
        self.state.lock().unwrap().resends_checked_first = true;
    }

    /// Replaces our API key: requests with the old one answer 401 until the credentials are
    /// derived again.
    pub fn rotate_key(&self) {
        self.state.lock().unwrap().rotated = true;
    }

    /// Revokes our API key: authenticated reads answer 401 from now on.
    pub fn revoke(&self) {
        self.state.lock().unwrap().revoked = true;
    }

    pub fn set_version(&self, v: u32) {
        self.state.lock().unwrap().version = v;
    }

    pub fn set_mid(&self, token: u64, mid: &'static str) {
        self.edit_token(token, |t| t.mid = Some(mid));
    }

    pub fn edit_token(&self, token: u64, f: impl FnOnce(&mut Token)) {
        if let Some(t) = self.state.lock().unwrap().tokens.get_mut(&token.to_string()) {
            f(t);
        }
    }

    /// Times of each `POST /order`, with the order id.
    pub fn posts(&self) -> Vec<(Instant, String)> {
        self.state.lock().unwrap().posts.clone()
    }

    pub fn orders(&self) -> Vec<Order> {
        self.state.lock().unwrap().orders.values().cloned().collect()
    }

    /// Requests the fake refused for bad auth or signatures (should stay empty).
    pub fn refused(&self) -> Vec<String> {
        self.state.lock().unwrap().refused.clone()
    }

    pub fn requests(&self, path: &str) -> u64 {
        self.state.lock().unwrap().requests.get(path).copied().unwrap_or(0)
    }
}

async fn respond(sock: &mut TcpStream, code: u16, body: &Value, extra: &str) {
    let text = body.to_string();
    let r = format!(
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = sock.write_all(r.as_bytes()).await;
    let _ = sock.shutdown().await;
}

fn l1_ok(h: &HashMap<String, String>) -> bool {
    let (Some(addr), Some(sig), Some(ts), Some(nonce)) =
        (h.get("POLY_ADDRESS"), h.get("POLY_SIGNATURE"), h.get("POLY_TIMESTAMP"), h.get("POLY_NONCE"))
    else {
        return false;
    };
    let Ok(addr) = Address::from_str(addr) else { return false };
    let auth = ClobAuth {
        address: addr,
        timestamp: ts.clone(),
        nonce: U256::from_str(nonce).unwrap_or_default(),
        message: "This message attests that I control the given wallet".into(),
    };
    let domain = Eip712Domain {
        name: Some("ClobAuthDomain".into()),
        version: Some("1".into()),
        chain_id: Some(U256::from(137)),
        ..Eip712Domain::default()
    };
    Signature::from_str(sig)
        .ok()
        .and_then(|s| s.recover_address_from_prehash(&auth.eip712_signing_hash(&domain)).ok())
        .is_some_and(|a| a == addr)
}

fn l2_ok(st: &Arc<Mutex<State>>, h: &HashMap<String, String>, method: &str, path: &str, body: &str) -> bool {
    let api_key = current_key(st);
    let (Some(sig), Some(ts), Some(key), Some(pass)) =
        (h.get("POLY_SIGNATURE"), h.get("POLY_TIMESTAMP"), h.get("POLY_API_KEY"), h.get("POLY_PASSPHRASE"))
    else {
        return false;
    };
    if *key != api_key || pass != PASSPHRASE || !h.contains_key("POLY_ADDRESS") {
        return false;
    }
    let path = path.split('?').next().unwrap_or(path);
    let mut mac = Hmac::<Sha256>::new_from_slice(&URL_SAFE.decode(SECRET).unwrap()).unwrap();
    mac.update(format!("{ts}{method}{path}{body}").as_bytes());
    URL_SAFE.encode(mac.finalize().into_bytes()) == *sig
}

/// The API key the exchange takes now.
fn current_key(st: &Arc<Mutex<State>>) -> &'static str {
    if st.lock().unwrap().rotated { ROTATED_API_KEY } else { API_KEY }
}

fn query(path: &str, key: &str) -> String {
    path.split_once('?')
        .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix(&format!("{key}="))))
        .unwrap_or("")
        .to_owned()
}

fn dec(v: &Value, k: &str) -> U256 {
    U256::from_str(v[k].as_str().unwrap_or("0")).unwrap_or_default()
}

/// Rebuilds the signed order from the body and checks its signature; returns the order or why not.
fn verify_order(order: &Value, signer: Address, neg_risk: bool) -> Result<(OrderV2, B256), String> {
    let mut o = OrderV2::default();
    o.salt = U256::from(order["salt"].as_u64().ok_or("salt is not a JSON number")?);
    o.maker = Address::from_str(order["maker"].as_str().unwrap_or("")).map_err(|e| e.to_string())?;
    o.signer = Address::from_str(order["signer"].as_str().unwrap_or("")).map_err(|e| e.to_string())?;
    o.tokenId = dec(order, "tokenId");
    o.makerAmount = dec(order, "makerAmount");
    o.takerAmount = dec(order, "takerAmount");
    o.side = match order["side"].as_str() {
        Some("BUY") => 0,
        Some("SELL") => 1,
        _ => return Err("bad side".into()),
    };
    o.signatureType = u8::try_from(order["signatureType"].as_u64().unwrap_or(9)).unwrap_or(9);
    o.timestamp = dec(order, "timestamp");
    o.metadata = B256::from_str(order["metadata"].as_str().unwrap_or("")).map_err(|e| e.to_string())?;
    o.builder = B256::from_str(order["builder"].as_str().unwrap_or("")).map_err(|e| e.to_string())?;
    let domain = Eip712Domain {
        name: Some("Polymarket CTF Exchange".into()),
        version: Some("2".into()),
        chain_id: Some(U256::from(137)),
        verifying_contract: Some(if neg_risk { NEG_EXCHANGE } else { STD_EXCHANGE }),
        ..Eip712Domain::default()
    };
    let hash = o.eip712_signing_hash(&domain);
    let sig = Signature::from_str(order["signature"].as_str().unwrap_or("")).map_err(|e| e.to_string())?;
    let who = sig.recover_address_from_prehash(&hash).map_err(|e| e.to_string())?;
    if who != signer || o.signer != signer {
        return Err(format!("signature recovers to {who}, expected {signer}"));
    }
    Ok((o, hash))
}

fn units(u: U256) -> f64 {
    u.to::<u128>() as f64 / 1e6
}

fn book(token: &str, t: &Token) -> Value {
    // Like the real CLOB: bids ascending and asks descending, the best level last.
    let side = |levels: &[(&str, &str)], asc: bool| {
        let mut v: Vec<_> = levels.to_vec();
        v.sort_by(|a, b| a.0.parse::<f64>().unwrap().total_cmp(&b.0.parse::<f64>().unwrap()));
        if !asc {
            v.reverse();
        }
        v.into_iter().map(|(p, s)| json!({"price": p, "size": s})).collect::<Vec<_>>()
    };
    json!({"market": format!("0x{}", "11".repeat(32)), "asset_id": token, "timestamp": "1700000000000",
        "hash": "h", "bids": side(&t.bids, true), "asks": side(&t.asks, false), "min_order_size": t.min_size,
        "neg_risk": t.neg_risk, "tick_size": t.tick, "last_trade_price": "0.5"})
}

fn gamma_market(token: &str, t: &Token) -> Value {
    let (yes, no) = match t.payout {
        Some("1") => ("1", "0"),
        // Resolved evenly ("unknown", 50-50): Gamma shows no winner.
        Some("0.5") => ("0.5", "0.5"),
        Some(_) => ("0", "1"),
        None => (t.mid.unwrap_or("0.5"), "0.5"),
    };
    let end = iso_in_minutes(t.ends_in_min);
    json!({"id": format!("m{token}"), "question": format!("Market {token}"),
        // One condition per market: both outcomes (`token` and `9token`) share it.
        "conditionId": format!("0x{:064x}", token.trim_start_matches('9').parse::<u64>().unwrap_or(0)), "endDate": end,
        "outcomes": "[\"Yes\", \"No\"]", "outcomePrices": format!("[\"{yes}\", \"{no}\"]"),
        "active": !t.closed, "closed": t.closed, "orderPriceMinTickSize": t.tick.parse::<f64>().unwrap(),
        "orderMinSize": t.min_size.parse::<f64>().unwrap(), "negRisk": t.neg_risk,
        "clobTokenIds": format!("[\"{token}\", \"9{token}\"]")})
}

/// An RFC 3339 UTC time `minutes` from now.
fn iso_in_minutes(minutes: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn open_order(o: &Order) -> Value {
    let bare = if o.market_resolved {
        "CANCELED_MARKET_RESOLVED"
    } else if o.resting {
        "LIVE"
    } else if o.matched > 0.0 {
        "MATCHED"
    } else {
        "CANCELED"
    };
    // Polymarket's reference names the statuses `ORDER_STATUS_*`, its SDKs' enums name them bare:
    // both forms are answered, by the order's hash (its last hex digit even: prefixed), so that
    // every test meets both.
    let prefixed = o.id.chars().last().and_then(|c| c.to_digit(16)).is_some_and(|d| d % 2 == 0);
    let status = if prefixed { format!("ORDER_STATUS_{bare}") } else { bare.to_owned() };
    json!({"id": o.id, "status": status, "owner": API_KEY, "maker_address": o.maker,
        "market": format!("0x{}", "11".repeat(32)), "asset_id": o.token, "side": o.side,
        "original_size": format!("{}", o.shares), "size_matched": format!("{}", o.matched),
        "price": format!("{}", o.price), "associate_trades": [], "outcome": "Yes",
        "created_at": 1_700_000_000, "expiration": "0", "order_type": "FAK"})
}

async fn serve(mut sock: TcpStream, st: Arc<Mutex<State>>) -> Option<()> {
    let (method, path, body, h) = super::http::read_request(&mut sock).await?;
    let body = String::from_utf8_lossy(&body).into_owned();
    let route = path.split('?').next().unwrap_or("").to_owned();
    let key = if route.starts_with("/data/order/") { "/data/order".to_owned() } else { route.clone() };
    let down = {
        let mut s = st.lock().unwrap();
        *s.requests.entry(key).or_default() += 1;
        s.down
    };
    if down {
        respond(&mut sock, 503, &json!({"error": "service unavailable"}), "").await;
        return Some(());
    }
    let refuse = |st: &Arc<Mutex<State>>, why: String| st.lock().unwrap().refused.push(why);
    match (method.as_str(), route.as_str()) {
        ("POST", "/auth/api-key") | ("GET", "/auth/derive-api-key") => {
            let mut held = st.lock().unwrap().derivations_hang.0.subscribe();
            let _ = held.wait_for(|hang| !*hang).await;
            if !l1_ok(&h) {
                refuse(&st, format!("L1 {route}"));
                {
                    respond(&mut sock, 401, &json!({"error": "Invalid L1 Request headers"}), "").await;
                    return Some(());
                }
            }
            let key = current_key(&st);
            respond(&mut sock, 200, &json!({"apiKey": key, "secret": SECRET, "passphrase": PASSPHRASE}), "").await;
        }
        // The Data API's positions, with every field the real one sends.
        ("GET", "/positions") => {
            let user = query(&path, "user");
            // In pages, as the real one serves them (100 a page unless asked).
            let offset: usize = query(&path, "offset").parse().unwrap_or(0);
            let limit: usize = query(&path, "limit").parse().unwrap_or(100);
            let rows: Vec<Value> = {
                let s = st.lock().unwrap();
                s.data_positions
                    .iter()
                    .skip(offset)
                    .take(limit)
                    .map(|(asset, size, redeemable)| {
                        // As the real one: a resolved market's price is its payout.
                        let cur_price = match s.tokens.get(asset).and_then(|t| t.payout) {
                            Some(p) => p.parse::<f64>().unwrap(),
                            None => 0.5,
                        };
                        json!({"proxyWallet": user, "asset": asset, "conditionId": format!("0x{}", "11".repeat(32)),
                       "size": size.parse::<f64>().unwrap(), "avgPrice": 0.5, "initialValue": 1, "currentValue": 1,
                       "cashPnl": 0, "percentPnl": 0, "totalBought": 1, "realizedPnl": 0, "percentRealizedPnl": 0,
                       "curPrice": cur_price, "redeemable": redeemable, "mergeable": false, "title": "Will it?",
                       "slug": "will-it", "icon": "", "eventSlug": "will-it", "eventId": "", "outcome": "Yes",
                       "outcomeIndex": 0, "oppositeOutcome": "No", "oppositeAsset": "1", "endDate": "",
                       "negativeRisk": false})
                    })
                    .collect()
            };
            respond(&mut sock, 200, &Value::Array(rows), "").await;
        }
        // The Data API's leaderboard, with the fields the real one sends (numbers as numbers, rank
        // as a string).
        ("GET", "/v1/leaderboard") => {
            let limit: usize = query(&path, "limit").parse().unwrap_or(25);
            let rows: Vec<Value> = st
                .lock()
                .unwrap()
                .leaderboard
                .iter()
                .take(limit)
                .enumerate()
                .map(|(i, (a, name, pnl, vol, _))| {
                    json!({"rank": (i + 1).to_string(), "proxyWallet": a.to_string(), "userName": name,
                           "vol": vol.parse::<f64>().unwrap(), "pnl": pnl.parse::<f64>().unwrap(),
                           "profileImage": "", "xUsername": "", "verifiedBadge": false})
                })
                .collect();
            respond(&mut sock, 200, &Value::Array(rows), "").await;
        }
        // The Data API's trades of a user, newest first (one row: its last trade).
        ("GET", "/trades") => {
            let user = query(&path, "user").to_ascii_lowercase();
            let rows: Vec<Value> = st
                .lock()
                .unwrap()
                .leaderboard
                .iter()
                .filter(|r| r.0.to_string().to_ascii_lowercase() == user)
                .map(|(a, name, _, _, ts)| {
                    json!({"proxyWallet": a.to_string(), "side": "BUY", "asset": "11",
                           "conditionId": format!("0x{}", "11".repeat(32)), "size": 10, "price": 0.5,
                           "timestamp": ts, "title": "Will it?", "slug": "will-it", "icon": "",
                           "eventSlug": "will-it", "outcome": "Yes", "outcomeIndex": 0, "name": name,
                           "pseudonym": name, "bio": "", "profileImage": "", "profileImageOptimized": "",
                           "transactionHash": format!("0x{}", "ab".repeat(32))})
                })
                .collect();
            respond(&mut sock, 200, &Value::Array(rows), "").await;
        }
        // The real CLOB answers its clock as a bare number of seconds.
        ("GET", "/time") => {
            let (offset, delay) = {
                let s = st.lock().unwrap();
                (s.time_offset_s, s.time_delay_ms)
            };
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            respond(&mut sock, 200, &json!(now as i64 + offset), "").await;
        }
        ("GET", "/version") => {
            let v = st.lock().unwrap().version;
            respond(&mut sock, 200, &json!({"version": v}), "").await;
        }
        ("GET", "/api/geoblock") => {
            let b = st.lock().unwrap().blocked;
            respond(&mut sock, 200, &json!({"blocked": b, "ip": "127.0.0.1", "country": "NL", "region": "NH"}), "")
                .await;
        }
        // Gamma's market list, served here too (GAMMA_URL points at this fake in the tests).
        ("GET", "/markets") => {
            let wanted: Vec<String> = path
                .split_once('?')
                .map(|(_, q)| {
                    q.split('&').filter_map(|kv| kv.strip_prefix("clob_token_ids=")).map(str::to_owned).collect()
                })
                .unwrap_or_default();
            // As the real Gamma: only open markets unless closed ones are asked for, then only
            // those; one page of `limit` markets.
            let closed = query(&path, "closed") == "true";
            let limit = query(&path, "limit").parse::<usize>().unwrap_or(usize::MAX);
            let list: Vec<Value> = {
                let s = st.lock().unwrap();
                wanted
                    .iter()
                    .filter_map(|t| s.tokens.get(t).filter(|tok| tok.closed == closed).map(|tok| gamma_market(t, tok)))
                    .take(limit)
                    .collect()
            };
            respond(&mut sock, 200, &Value::Array(list), "").await;
        }
        ("GET", "/book" | "/tick-size" | "/neg-risk") => {
            let token = query(&path, "token_id");
            let t = st.lock().unwrap().tokens.get(&token).cloned();
            let Some(t) = t else {
                {
                    respond(&mut sock, 404, &json!({"error": "No orderbook exists for the requested token id"}), "")
                        .await;
                    return Some(());
                }
            };
            let v = match route.as_str() {
                "/book" => book(&token, &t),
                "/tick-size" => json!({"minimum_tick_size": t.tick.parse::<f64>().unwrap()}),
                _ => json!({"neg_risk": t.neg_risk}),
            };
            respond(&mut sock, 200, &v, "").await;
        }
        ("POST", "/midpoints") => {
            let reqs: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let mut out = serde_json::Map::new();
            {
                let s = st.lock().unwrap();
                for r in reqs.as_array().into_iter().flatten() {
                    let t = r["token_id"].as_str().unwrap_or("").to_owned();
                    if let Some(mid) = s.tokens.get(&t).and_then(|t| t.mid) {
                        out.insert(t, json!(mid));
                    }
                }
            }
            respond(&mut sock, 200, &Value::Object(out), "").await;
        }
        ("GET", "/balance-allowance") => {
            if !l2_ok(&st, &h, &method, &path, &body) || st.lock().unwrap().revoked {
                refuse(&st, format!("L2 {route}"));
                {
                    respond(&mut sock, 401, &json!({"error": "Unauthorized/Invalid api key"}), "").await;
                    return Some(());
                }
            }
            let mut held = st.lock().unwrap().balance_hang.0.subscribe();
            let _ = held.wait_for(|hang| !*hang).await;
            let a = st.lock().unwrap().allowance;
            let v = json!({"balance": "250000000", "allowances": {
                format!("{STD_EXCHANGE:#x}"): a, format!("{NEG_EXCHANGE:#x}"): a}});
            respond(&mut sock, 200, &v, "").await;
        }
        ("GET", r) if r.starts_with("/data/order/") => {
            if !l2_ok(&st, &h, &method, &path, &body) {
                refuse(&st, format!("L2 {route}"));
                {
                    respond(&mut sock, 401, &json!({"error": "Unauthorized/Invalid api key"}), "").await;
                    return Some(());
                }
            }
            let id = r.trim_start_matches("/data/order/").to_ascii_lowercase();
            let mut held = st.lock().unwrap().lookups_hang.0.subscribe();
            let _ = held.wait_for(|hang| !*hang).await;
            let (o, null, no_size, down, delayed_live) = {
                let s = st.lock().unwrap();
                (
                    s.orders.get(&id).cloned(),
                    s.null_lookups,
                    s.unsized_lookups,
                    s.lookups_down,
                    s.delayed_looked_up_live,
                )
            };
            if down {
                respond(&mut sock, 503, &json!({"error": "trading is currently unavailable"}), "").await;
                return Some(());
            }
            match o {
                Some(o) if o.delayed_until.is_some_and(|t| Instant::now() < t) => {
                    if delayed_live {
                        let mut v = open_order(&Order { resting: true, matched: 0.0, ..o });
                        v["size_matched"] = json!("0");
                        respond(&mut sock, 200, &v, "").await;
                    } else {
                        respond(&mut sock, 200, &Value::Null, "").await;
                    }
                }
                Some(o) if null && o.matched > 0.0 => respond(&mut sock, 200, &Value::Null, "").await,
                Some(o) if no_size && o.matched > 0.0 => {
                    let mut v = open_order(&o);
                    v["size_matched"] = json!("0");
                    respond(&mut sock, 200, &v, "").await;
                }
                Some(o) => respond(&mut sock, 200, &open_order(&o), "").await,
                None => respond(&mut sock, 404, &json!({"error": "order not found"}), "").await,
            }
        }
        ("POST", "/order") => post_order(&mut sock, &st, &h, &path, &body).await,
        ("DELETE", "/order") => {
            if !l2_ok(&st, &h, &method, &path, &body) {
                refuse(&st, format!("L2 DELETE {route}"));
                respond(&mut sock, 401, &json!({"error": "Unauthorized/Invalid api key"}), "").await;
                return Some(());
            }
            let id = serde_json::from_str::<Value>(&body).ok()?["orderID"].as_str()?.to_ascii_lowercase();
            // As the real CLOB: only an open order can be cancelled; what it matched stays matched.
            let cancelled = {
                let mut s = st.lock().unwrap();
                s.cancels.push((Instant::now(), id.clone()));
                if s.cancels_failing > 0 {
                    s.cancels_failing -= 1;
                    None
                } else {
                    Some(match s.orders.get_mut(&id) {
                        Some(o) if o.resting => {
                            o.resting = false;
                            true
                        }
                        _ => false,
                    })
                }
            };
            let Some(cancelled) = cancelled else {
                respond(&mut sock, 503, &json!({"error": "service unavailable"}), "").await;
                return Some(());
            };
            let v = if cancelled {
                json!({"canceled": [id], "not_canceled": {}})
            } else {
                json!({"canceled": [], "not_canceled": {id: "order can't be found - already canceled or matched"}})
            };
            respond(&mut sock, 200, &v, "").await;
        }
        _ => respond(&mut sock, 404, &json!({"error": format!("no route {method} {route}")}), "").await,
    }
    Some(())
}

async fn post_order(sock: &mut TcpStream, st: &Arc<Mutex<State>>, h: &HashMap<String, String>, path: &str, body: &str) {
    if !l2_ok(st, h, "POST", path, body) {
        st.lock().unwrap().refused.push("L2 /order".into());
        return respond(sock, 401, &json!({"error": "Unauthorized/Invalid api key"}), "").await;
    }
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let order = &v["order"];
    let token = order["tokenId"].as_str().unwrap_or("").to_owned();
    let (signer, tok) = {
        let s = st.lock().unwrap();
        (s.signer, s.tokens.get(&token).cloned())
    };
    let Some(tok) = tok else {
        return respond(sock, 400, &json!({"error": "market not found"}), "").await;
    };
    if v["owner"].as_str() != Some(current_key(st)) {
        st.lock().unwrap().refused.push("owner".into());
        return respond(sock, 400, &json!({"error": "the order owner has to be the owner of the API KEY"}), "").await;
    }
    let (o, hash) = match verify_order(order, signer, tok.neg_risk) {
        Ok(x) => x,
        Err(e) => {
            st.lock().unwrap().refused.push(format!("signature: {e}"));
            return respond(sock, 400, &json!({"error": "invalid signature"}), "").await;
        }
    };
    let id = format!("{hash:#x}");
    let buy = o.side == 0;
    let (shares, cash) =
        if buy { (units(o.takerAmount), units(o.makerAmount)) } else { (units(o.makerAmount), units(o.takerAmount)) };
    let play = {
        let mut s = st.lock().unwrap();
        s.posts.push((Instant::now(), id.clone()));
        if s.orders.contains_key(&id) && !s.resends_checked_first {
            None
        } else {
            let scripted = s.script.pop_front();
            Some(scripted.unwrap_or_else(|| s.random_play()))
        }
    };
    let Some(play) = play else {
        return respond(sock, 400, &json!({"error": format!("order {id} is invalid. Duplicated.")}), "").await;
    };
    let mut record = Order {
        id: id.clone(),
        token,
        side: if buy { "BUY" } else { "SELL" }.into(),
        shares,
        price: if shares > 0.0 { (cash / shares * 10_000.0).round() / 10_000.0 } else { 0.0 },
        matched: 0.0,
        neg_risk: tok.neg_risk,
        maker: o.maker,
        salt: o.salt.to::<u64>(),
        order_type: v["orderType"].as_str().unwrap_or("").to_owned(),
        expiration: order["expiration"].as_str().and_then(|e| e.parse().ok()).unwrap_or(u64::MAX),
        resting: false,
        market_resolved: false,
        delayed_until: None,
    };
    // What the real CLOB checks of the unsigned fields: a GTD expiry at least a minute out, none
    // on other types.
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let expiry_ok = match record.order_type.as_str() {
        "GTD" => record.expiration >= now_s + 60,
        "FAK" | "FOK" | "GTC" => record.expiration == 0,
        _ => false,
    };
    if !expiry_ok {
        st.lock()
            .unwrap()
            .refused
            .push(format!("order type {} with expiration {}", record.order_type, record.expiration));
        return respond(sock, 400, &json!({"error": "invalid order expiration"}), "").await;
    }
    // The real CLOB's market-order precision rule (docs/PROTOCOL.md §7): the pUSD side of a FAK/FOK
    // order carries at most 2 decimals, the shares side at most 4.
    let (pusd, shares_units) = if buy { (o.makerAmount, o.takerAmount) } else { (o.takerAmount, o.makerAmount) };
    if matches!(record.order_type.as_str(), "FAK" | "FOK")
        && (pusd % U256::from(10_000u64) != U256::ZERO || shares_units % U256::from(100u64) != U256::ZERO)
    {
        st.lock().unwrap().refused.push(format!("market order amounts {pusd} pUSD / {shares_units} shares"));
        let side = if buy { "buy" } else { "sell" };
        let msg = format!(
            "invalid amounts, the market {side} orders pUSD amount supports a max accuracy of 2 decimals, shares a max of 4 decimals"
        );
        return respond(sock, 400, &json!({"error": msg}), "").await;
    }
    // A limit order's price (its amounts' ratio) is a whole number of ticks, and its size at least
    // the market's minimum (docs/PROTOCOL.md §7): "breaks minimum tick size rule", "lower than the
    // minimum". Market orders are checked on their amounts above instead.
    if matches!(record.order_type.as_str(), "GTD" | "GTC") {
        let micros = |s: &str| (s.parse::<f64>().unwrap() * 1e6).round() as u64;
        let (tick, min) = (U256::from(micros(tok.tick)), U256::from(micros(tok.min_size)));
        let priced_in_ticks = pusd * U256::from(1_000_000u64) % (tick * shares_units) == U256::ZERO;
        let refusal = if shares_units.is_zero() || !priced_in_ticks {
            Some(format!(
                "order {id} is invalid. Price ({}), breaks minimum tick size rule: {}",
                record.price, tok.tick
            ))
        } else if shares_units < min {
            Some(format!("Size ({}) lower than the minimum: {}", shares, tok.min_size))
        } else {
            None
        };
        if let Some(msg) = refusal {
            st.lock().unwrap().refused.push(msg.clone());
            return respond(sock, 400, &json!({"error": msg}), "").await;
        }
    }
    // And a marketable BUY spends at least 1 pUSD (reported by its users; docs/PROTOCOL.md).
    if buy && matches!(record.order_type.as_str(), "FAK" | "FOK") && pusd < U256::from(1_000_000u64) {
        st.lock().unwrap().refused.push(format!("marketable BUY of {pusd} pUSD"));
        let dollars = format!("{:.2}", pusd.to::<u64>() as f64 / 1e6);
        let msg = format!("invalid amount for a marketable BUY order (${dollars}), min size: $1");
        return respond(sock, 400, &json!({"error": msg}), "").await;
    }
    let answer = |matched: f64, price: f64| {
        let (making, taking) = if buy { (matched * price, matched) } else { (matched, matched * price) };
        json!({"success": true, "errorMsg": "", "orderID": id, "status": "matched",
            "makingAmount": format!("{making:.6}"), "takingAmount": format!("{taking:.6}"),
            "transactionsHashes": [], "tradeIDs": ["t1"]})
    };
    match play {
        Play::Fill
        | Play::FillEmptyMaking
        | Play::Partial(_)
        | Play::Hang
        | Play::Slow(_)
        | Play::FillThenStatus(..) => {
            record.matched = match play {
                Play::Partial(p) => (shares * f64::from(p) / 100.0 * 100.0).floor() / 100.0,
                _ => shares,
            };
            // A GTD order's rest stays on the book after a partial cross (a FAK's is killed).
            record.resting = matches!(play, Play::Partial(_)) && record.order_type == "GTD";
            let (m, p) = (record.matched, record.price);
            st.lock().unwrap().orders.insert(id.clone(), record);
            if matches!(play, Play::Hang) {
                // Taken, and the answer never comes.
                tokio::time::sleep(Duration::from_secs(3_600)).await;
                return;
            }
            if let Play::FillThenStatus(code, text) = play {
                return respond(sock, code, &json!({"error": text}), "").await;
            }
            if let Play::Slow(ms) = play {
                {
                    let mut s = st.lock().unwrap();
                    s.posting += 1;
                    s.max_posting = s.max_posting.max(s.posting);
                }
                tokio::time::sleep(Duration::from_millis(ms)).await;
                st.lock().unwrap().posting -= 1;
            }
            let mut v = answer(m, p);
            if matches!(play, Play::FillEmptyMaking) {
                v["makingAmount"] = json!("");
            }
            respond(sock, 200, &v, "").await;
        }
        Play::Rest => {
            record.resting = true;
            st.lock().unwrap().orders.insert(id.clone(), record);
            let v = json!({"success": true, "errorMsg": "", "orderID": id, "status": "live",
                "makingAmount": "0", "takingAmount": "0", "transactionsHashes": [], "tradeIDs": []});
            respond(sock, 200, &v, "").await;
        }
        Play::DelayedUnanswered(ms) => {
            record.matched = shares;
            record.delayed_until = Some(Instant::now() + Duration::from_millis(ms));
            st.lock().unwrap().orders.insert(id.clone(), record);
            tokio::time::sleep(Duration::from_secs(3_600)).await;
        }
        Play::Delayed(ms, pct) => {
            record.matched = (shares * f64::from(pct) / 100.0 * 100.0).floor() / 100.0;
            record.delayed_until = Some(Instant::now() + Duration::from_millis(ms));
            st.lock().unwrap().orders.insert(id.clone(), record);
            let v = json!({"success": true, "errorMsg": "", "orderID": id, "status": "delayed",
                "makingAmount": "", "takingAmount": "", "transactionsHashes": [], "tradeIDs": []});
            respond(sock, 200, &v, "").await;
        }
        Play::HangUnmatched => {
            st.lock().unwrap().orders.insert(id.clone(), record);
            tokio::time::sleep(Duration::from_secs(3_600)).await;
        }
        Play::HangRest => {
            record.resting = true;
            st.lock().unwrap().orders.insert(id.clone(), record);
            tokio::time::sleep(Duration::from_secs(3_600)).await;
        }
        Play::RestThenStatus(ms, code, text) => {
            record.resting = true;
            st.lock().unwrap().orders.insert(id.clone(), record);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            respond(sock, code, &json!({"error": text}), "").await;
        }
        Play::Lost => tokio::time::sleep(Duration::from_secs(3_600)).await,
        Play::HangUnseen => {
            record.resting = true;
            st.lock().unwrap().unseen.push(record);
            tokio::time::sleep(Duration::from_secs(3_600)).await;
        }
        Play::NoLiquidity => {
            st.lock().unwrap().orders.insert(id.clone(), record);
            let v = json!({"success": false, "errorMsg": "no orders found to match with FAK order. FAK orders are partially filled or killed if no match is found.",
                "orderID": id, "status": "unmatched", "makingAmount": "", "takingAmount": ""});
            respond(sock, 200, &v, "").await;
        }
        Play::Status(code, text) => {
            let extra = if code == 429 { "Retry-After: 1\r\n" } else { "" };
            respond(sock, code, &json!({"error": text}), extra).await;
        }
    }
}
