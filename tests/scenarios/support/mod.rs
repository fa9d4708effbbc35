//! Test support: a real anvil node, Polymarket's `OrderFilled` events emitted at the real exchange
//! addresses, a Conditional Tokens stand-in, a TCP proxy that can cut connections, and the real
//! polycopy binary run as a separate process against a temp dir with its own SQLite file.
#![allow(dead_code, missing_docs)]

pub mod capped_rpc;
pub mod clob;
pub mod http;
pub mod installed;
pub mod live;
pub mod rtds;
pub mod telegram;
pub mod telegram_text;
pub mod ws_tap;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256, address, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use serde_json::{Value, json};

pub const V2_EXCHANGE: Address = address!("E111180000d2663C0091e4f400237545B87B996B");
pub const V1_EXCHANGE: Address = address!("4bFb41d5B3570DeFd03C39a9A4D8dE6Bd8B8982E");
pub const CONDITIONAL_TOKENS: Address = address!("4D97DCd97eC945f40cF65F87097ACe5EA0476045");
/// Exchange V3 and its PositionManager, at the addresses the default settings name.
pub const V3_EXCHANGE: Address = address!("e3333700cA9d93003F00f0F71f8515005F6c00Aa");
pub const POSITION_MANAGER: Address = address!("006F54F7f9A22e0000CC2AB60031000000ae9fEF");
const SENDER: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const TOPIC_V1: &str = "d0a08e8c493f9c94f29311604c9de1b4e8c8d4c06bd0c789af57f2d65bfec0f6";
const TOPIC_V2: &str = "d543adfd945773f1a62f74f0ee55a5e3b9b1a28262980ba90b1a89f2ea84d8ee";
/// Emits LOG4 with topics = calldata[0..128], data = calldata[128..] (docs/TESTING.md §5).
const EMITTER: &str = "0x366000600037606035604035602035600035608036036080a400";
/// `balanceOf(owner, id)` → sload(keccak256(pad32(owner) ‖ id)); ignores the selector.
const BALANCES: &str = "0x60043560005260243560205260406000205460005260206000f3";

pub const ONE: u64 = 1_000_000;

/// Polls `f` until it returns `Some`, or panics with `what` after `secs`.
pub async fn wait_for<T>(secs: u64, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs}s waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn anvil_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ANVIL_BIN") {
        return PathBuf::from(p);
    }
    let local =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    if local.exists() { local } else { PathBuf::from("anvil") }
}

/// A running anvil with chain id 137.
pub struct Anvil {
    child: Child,
    pub port: u16,
    pub rpc: DynProvider,
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Anvil {
    pub async fn start() -> Self {
        Self::start_on_chain(137).await
    }

    /// A node on another chain (Polygon is 137).
    pub async fn start_on_chain(chain_id: u64) -> Self {
        Self::start_with(chain_id, &[]).await
    }

    /// A node whose genesis block is `secs` (unix) old: history can be planted in the past.
    pub async fn start_at(genesis_ts: u64) -> Self {
        Self::start_with(137, &["--timestamp", &genesis_ts.to_string()]).await
    }

    async fn start_with(chain_id: u64, extra: &[&str]) -> Self {
        let mut child = Command::new(anvil_bin())
            .args(["--port", "0", "--chain-id", &chain_id.to_string(), "--number", "80000000"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start anvil (scripts/test.sh installs it)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !sent && let Some(rest) = line.split("Listening on ").nth(1) {
                    let _ = tx.send(rest.trim().to_owned());
                    sent = true;
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(20)).expect("anvil printed its address");
        let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
        let rpc = ProviderBuilder::new().connect_http(format!("http://127.0.0.1:{port}").parse().unwrap()).erased();
        let a = Self { child, port, rpc };
        for ex in [V2_EXCHANGE, V1_EXCHANGE, V3_EXCHANGE] {
            a.raw("anvil_setCode", json!([ex, EMITTER])).await;
        }
        a
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn raw(&self, method: &'static str, params: Value) -> Value {
        self.rpc.raw_request::<_, Value>(method.into(), params).await.unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    pub async fn head(&self) -> u64 {
        self.rpc.get_block_number().await.unwrap()
    }

    pub async fn mine(&self, n: u64) {
        for _ in 0..n {
            self.raw("evm_mine", json!([])).await;
        }
    }

    /// Sends one log-emitting transaction; returns (block number, tx hash).
    pub async fn emit(&self, fill: &Fill) -> (u64, B256) {
        let tx: B256 = serde_json::from_value(
            self.raw(
                "eth_sendTransaction",
                json!([{"from": SENDER, "to": fill.exchange, "data": fill.calldata(), "gas": "0x100000"}]),
            )
            .await,
        )
        .unwrap();
        let receipt = wait_for(10, "receipt", async || {
            let r = self.raw("eth_getTransactionReceipt", json!([tx])).await;
            (!r.is_null()).then_some(r)
        })
        .await;
        let bn = u64::from_str_radix(receipt["blockNumber"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
        (bn, tx)
    }

    /// Emits `fill` in a block stamped `ts` (unix seconds, later than the head's).
    pub async fn emit_at(&self, ts: u64, fill: &Fill) -> (u64, B256) {
        self.raw("evm_setNextBlockTimestamp", json!([ts])).await;
        self.emit(fill).await
    }

    /// Waits until block `n` is more than `secs` seconds old by the wall clock (what the daemon's
    /// staleness check compares): a condition on the block's own timestamp, not a guessed sleep.
    pub async fn wait_older_than(&self, n: u64, secs: u64) {
        let b = self.raw("eth_getBlockByNumber", json!([format!("{n:#x}"), false])).await;
        let ts = u64::from_str_radix(b["timestamp"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
        wait_for(secs + 10, "the block to age", async || {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            (now > ts + secs).then_some(())
        })
        .await;
    }

    /// Emits several fills in one block.
    pub async fn emit_block(&self, fills: &[Fill]) -> u64 {
        self.raw("evm_setAutomine", json!([false])).await;
        for f in fills {
            self.raw(
                "eth_sendTransaction",
                json!([{"from": SENDER, "to": f.exchange, "data": f.calldata(), "gas": "0x100000"}]),
            )
            .await;
        }
        self.raw("evm_mine", json!([])).await;
        self.raw("evm_setAutomine", json!([true])).await;
        self.head().await
    }

    /// Installs the Conditional Tokens and PositionManager stand-ins (ERC-1155 `balanceOf`).
    pub async fn install_balances(&self) {
        for at in [CONDITIONAL_TOKENS, POSITION_MANAGER] {
            self.raw("anvil_setCode", json!([at, BALANCES])).await;
        }
    }

    /// Sets `owner`'s ERC-1155 balance of `token` in the stand-in (then mines a block, so the
    /// balance is history for the next block).
    pub async fn set_balance(&self, owner: Address, token: u64, micros: u64) {
        self.set_balance_in(CONDITIONAL_TOKENS, owner, token, micros).await;
    }

    /// [`Anvil::set_balance`] in the stand-in at `contract` (the PositionManager for V3 tokens).
    pub async fn set_balance_in(&self, contract: Address, owner: Address, token: u64, micros: u64) {
        let mut key = [0u8; 64];
        key[12..32].copy_from_slice(owner.as_slice());
        key[32..].copy_from_slice(&U256::from(token).to_be_bytes::<32>());
        let slot = keccak256(key);
        let value = B256::from(U256::from(micros));
        self.raw("anvil_setStorageAt", json!([contract, slot, value])).await;
        self.mine(1).await;
    }
}

/// One `OrderFilled` log to emit.
#[derive(Clone, Debug)]
pub struct Fill {
    pub exchange: Address,
    pub v2: bool,
    pub order_hash: B256,
    pub maker: Address,
    pub taker: Address,
    pub words: Vec<U256>,
}

fn word(v: u64) -> U256 {
    U256::from(v)
}

impl Fill {
    /// V2: `side` 0 BUY / 1 SELL; BUY: maker pays `usdc` for `shares`; SELL: the reverse.
    pub fn v2(order: u8, maker: Address, taker: Address, buy: bool, token: u64, shares: u64, usdc: u64) -> Self {
        let (m, t) = if buy { (usdc, shares) } else { (shares, usdc) };
        Self {
            exchange: V2_EXCHANGE,
            v2: true,
            order_hash: B256::repeat_byte(order),
            maker,
            taker,
            words: vec![word(u64::from(!buy)), word(token), word(m), word(t), word(0), U256::ZERO, U256::ZERO],
        }
    }

    /// V1: asset 0 is collateral.
    pub fn v1(order: u8, maker: Address, taker: Address, buy: bool, token: u64, shares: u64, usdc: u64) -> Self {
        let words = if buy {
            vec![word(0), word(token), word(usdc), word(shares), word(0)]
        } else {
            vec![word(token), word(0), word(shares), word(usdc), word(0)]
        };
        Self { exchange: V1_EXCHANGE, v2: false, order_hash: B256::repeat_byte(order), maker, taker, words }
    }

    pub fn calldata(&self) -> String {
        let mut s = String::from("0x");
        s.push_str(if self.v2 { TOPIC_V2 } else { TOPIC_V1 });
        s.push_str(&hex(self.order_hash.as_slice()));
        s.push_str(&hex(self.maker.into_word().as_slice()));
        s.push_str(&hex(self.taker.into_word().as_slice()));
        for w in &self.words {
            s.push_str(&hex(&w.to_be_bytes::<32>()));
        }
        s
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A polycopy process with its own directory, settings, wallets file and journal.
pub struct Daemon {
    pub dir: PathBuf,
    child: Option<Child>,
    pub env: Vec<(String, String)>,
    /// Where the log stood when the daemon was last started: `wait_live` reads only what the
    /// running process wrote (a restarted daemon logs its start line only after recovery, so the
    /// previous run's "live" line must not count).
    log_at_start: usize,
    /// wallets.json, relative to `dir`.
    wallets: &'static str,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The polycopy binary: cargo's for the tests; for the load harness (an example, where cargo does
/// not say) `POLYCOPY_BIN` or the release build.
pub fn bin() -> String {
    option_env!("CARGO_BIN_EXE_polycopy").map_or_else(
        || {
            std::env::var("POLYCOPY_BIN")
                .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/polycopy").into())
        },
        str::to_owned,
    )
}

pub const BASE_SETTINGS: &str = r#"
log_format = "text"
[chain]
poll_interval_ms = 100
request_timeout_ms = 2000
reconnect_backoff_max_ms = 400
failover_after_errors = 2
# anvil makes a block only when a transaction arrives: its head stands still between a test's
# steps (tests/scenarios/stuck_node.rs turns the check on).
head_stall_s = 0
[copy]
max_slippage_bps = 200
min_order_usdc = 1
[risk]
max_order_usdc = 1000
max_position_usdc = 5000
max_total_exposure_usdc = 10000
max_trades_per_hour = 1000
daily_loss_limit_usdc = 1000
breaker_poll_ms = 100
[http]
listen = "127.0.0.1:0"
[health]
feed_stall_s = 3
# anvil makes a block only when a transaction arrives: between a test's steps its newest block
# grows old by the clock (tests/scenarios/stuck_node.rs turns the check on).
max_chain_age_s = 0
[telegram]
daily_report_at = "off"
[alerts]
# Warnings that depend on the machine (free disk) or on a test's trades stay off unless a test
# turns them on (tests/scenarios/warnings.rs, through POLYCOPY_ALERTS__* variables).
disk_min_free_mb = 0
win_rate_min_pct = 0
clock_max_offset_ms = 0
"#;

impl Daemon {
    /// Prepares a directory with `settings_extra` appended to the test settings and `wallets`.
    /// `chain_extra` lines go into the `[chain]` table of the test settings.
    pub fn new(dir: &Path, rpc_url: &str, chain_extra: &str, wallets: &Value) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let settings = BASE_SETTINGS.replace("[chain]\n", &format!("[chain]\n{chain_extra}\n"));
        // The stop file is the settings file's alone (the environment may not set it).
        let stop = dir.join("EMERGENCY_STOP");
        let settings = format!("emergency_stop_file = \"{}\"\n{settings}", stop.display());
        std::fs::write(dir.join("polycopy.toml"), settings).unwrap();
        std::fs::write(dir.join("wallets.json"), serde_json::to_string_pretty(wallets).unwrap()).unwrap();
        let env = vec![
            ("POLYGON_RPC_URL".into(), rpc_url.to_owned()),
            ("POLYCOPY_SYSTEM_CONFIG".into(), String::new()),
            ("RUST_LOG".into(), "info,polycopy=debug".into()),
            // Offline: market metadata is refused at once (a closed port), never looked up online.
            ("GAMMA_URL".into(), "http://127.0.0.1:9".into()),
        ];
        Self { dir: dir.to_owned(), child: None, env, log_at_start: 0, wallets: "wallets.json" }
    }

    /// Moves wallets.json into `config/`, apart from the journal and the log, as an installed
    /// daemon (and the quick start) keeps them: the daemon watches wallets.json's directory, so
    /// beside the journal every WAL write would wake its watcher (the load harness measures the
    /// real layout).
    pub fn with_config_apart(mut self) -> Self {
        std::fs::create_dir_all(self.dir.join("config")).unwrap();
        std::fs::rename(self.dir.join("wallets.json"), self.dir.join("config/wallets.json")).unwrap();
        self.wallets = "config/wallets.json";
        self
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_db("journal.db", args)
    }

    /// A polycopy command on another journal file.
    pub fn cmd_db(&self, db: &str, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.current_dir(&self.dir)
            .args(["--config", "polycopy.toml", "--wallets", self.wallets, "--db", db])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    }

    pub fn start(&mut self) {
        self.start_with(&[]);
    }

    pub fn start_with(&mut self, extra_env: &[(&str, &str)]) {
        self.log_at_start = self.log().len();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("daemon.log")).unwrap();
        let child =
            self.cmd(&["run"]).envs(extra_env.iter().copied()).stdout(Stdio::null()).stderr(log).spawn().unwrap();
        self.child = Some(child);
    }

    /// Waits until the daemon logs that its feed is live.
    pub async fn wait_live(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log_live_after_start() {
            assert!(Instant::now() < deadline, "daemon never went live; its log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_live_after_start(&self) -> bool {
        // This run's start line is followed by a live line.
        let log = self.log();
        let log = log.get(self.log_at_start..).unwrap_or(&log);
        match (log.rfind("polycopy started"), log.rfind("chain feed live")) {
            (Some(s), Some(l)) => l > s,
            _ => false,
        }
    }

    /// The base URL of the daemon's health/metrics server, from its log.
    pub async fn http_base(&self) -> String {
        wait_for(10, "the http server", async || {
            let log = self.log();
            let line = log.lines().rev().find(|l| l.contains("serving /health and /metrics on "))?;
            Some(line.split("serving /health and /metrics on ").nth(1)?.split_whitespace().next()?.to_owned())
        })
        .await
    }

    /// One unlabelled sample of the daemon's `/metrics`, as written (`None` when it is missing).
    pub async fn metric(&self, name: &str) -> Option<String> {
        let (_, body) = http::http_get(&self.http_base().await, "/metrics").await;
        body.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ').map(str::to_owned))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit by itself (e.g. after fault injection).
    pub async fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        wait_for(20, "daemon exit", async || c.try_wait().unwrap()).await
    }

    /// Removes the running daemon's control socket (one, in its directory): it runs on, holding its
    /// journal, but no command reaches it.
    pub fn remove_control_socket(&self) {
        let sockets: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sock"))
            .collect();
        assert_eq!(sockets.len(), 1, "{sockets:?}");
        std::fs::remove_file(&sockets[0]).unwrap();
    }

    /// The running daemon's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn run_cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cmd(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    /// Adds a top-level `line` (before any section) to the test settings.
    pub fn set_top(&self, line: &str) {
        let p = self.dir.join("polycopy.toml");
        let s = std::fs::read_to_string(&p).unwrap();
        std::fs::write(p, format!("{line}\n{s}")).unwrap();
    }

    /// Adds `line` to `[section]` of the test settings.
    pub fn set(&self, section: &str, line: &str) {
        let p = self.dir.join("polycopy.toml");
        let s = std::fs::read_to_string(&p).unwrap();
        let header = format!("[{section}]\n");
        let s = if s.contains(&header) {
            s.replace(&header, &format!("{header}{line}\n"))
        } else {
            format!("{s}\n{header}{line}\n")
        };
        std::fs::write(p, s).unwrap();
    }

    /// Replaces one line of the settings file; the line must be there (a test that edits a setting
    /// the file does not have would silently test the default).
    pub fn replace_setting(&self, from: &str, to: &str) {
        let p = self.dir.join("polycopy.toml");
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(s.contains(from), "polycopy.toml has no {from:?}");
        std::fs::write(p, s.replace(from, to)).unwrap();
    }

    /// Points the daemon at a fake Bot API with `chats` authorized.
    pub fn with_telegram(&mut self, fake: &telegram::FakeTelegram, chats: &str) {
        self.env.push(("TELEGRAM_BOT_TOKEN".into(), fake.token.clone()));
        self.env.push(("TELEGRAM_CHAT_ID".into(), chats.into()));
        self.env.push(("TELEGRAM_API_URL".into(), fake.url.clone()));
    }

    /// A command running `scripts/NAME` with this daemon's binary, settings, journal and environment.
    pub fn script_cmd(&self, name: &str, args: &[&str], extra_env: &[(&str, &str)]) -> Command {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name);
        let mut c = Command::new("bash");
        c.arg(path)
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("POLYCOPY_BIN", bin())
            .env("POLYCOPY_ARGS", format!("--config polycopy.toml --wallets {} --db journal.db", self.wallets))
            .envs(extra_env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs `scripts/NAME`; returns (exit code, stdout, stderr).
    pub fn script(&self, name: &str, args: &[&str], extra_env: &[(&str, &str)]) -> (i32, String, String) {
        output(self.script_cmd(name, args, extra_env).output().unwrap())
    }

    /// `polycopy trades --json`, oldest first.
    pub fn trades(&self) -> Vec<Value> {
        let (code, out, err) = self.run_cli(&["trades", "--json", "--limit", "1000"]);
        assert_eq!(code, 0, "trades failed: {err}");
        let mut v: Vec<Value> = serde_json::from_str(&out).unwrap();
        v.reverse();
        v
    }

    pub fn status(&self) -> Value {
        let (code, out, err) = self.run_cli(&["status", "--json"]);
        assert_eq!(code, 0, "status failed: {err}");
        serde_json::from_str(&out).unwrap()
    }

    pub fn write_wallets(&self, wallets: &Value) {
        let tmp = self.dir.join(format!("{}.tmp", self.wallets));
        std::fs::write(&tmp, serde_json::to_string_pretty(wallets).unwrap()).unwrap();
        std::fs::rename(tmp, self.dir.join(self.wallets)).unwrap();
    }

    pub fn write_wallets_text(&self, text: &str) {
        std::fs::write(self.dir.join(self.wallets), text).unwrap();
    }

    /// Rows of the journal's events log of `kind`.
    pub fn events(&self, kind: &str) -> Vec<String> {
        let c = rusqlite::Connection::open(self.dir.join("journal.db")).unwrap();
        let mut st = c.prepare("SELECT message FROM events WHERE kind = ?1 ORDER BY id").unwrap();
        st.query_map([kind], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    }

    /// Number of executions recorded for the fill row with this tx hash.
    pub fn executions_for(&self, tx: &B256) -> i64 {
        let c = rusqlite::Connection::open(self.dir.join("journal.db")).unwrap();
        c.query_row(
            "SELECT COUNT(*) FROM executions e JOIN fills f ON f.id = e.fill_id WHERE f.tx_hash = ?1",
            [tx.to_string()],
            |r| r.get(0),
        )
        .unwrap()
    }
}

/// Another process's exclusive lock on a journal, held from `hold` until `release`: the daemon's
/// writes wait their busy timeout and fail.
pub struct LockedJournal {
    release: std::sync::mpsc::Sender<()>,
    holder: std::thread::JoinHandle<()>,
}

impl LockedJournal {
    /// Returns once the lock is taken.
    pub fn hold(db: &Path) -> Self {
        let db = db.to_owned();
        let (locked_tx, locked) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let c = rusqlite::Connection::open(db).unwrap();
            c.execute_batch("BEGIN EXCLUSIVE").unwrap();
            locked_tx.send(()).unwrap();
            let _ = released.recv();
            c.execute_batch("COMMIT").unwrap();
        });
        locked.recv().unwrap();
        Self { release, holder }
    }

    /// Lets the lock go and waits until it is gone.
    pub fn release(self) {
        self.release.send(()).unwrap();
        self.holder.join().unwrap();
    }
}

/// A live paper daemon on its own anvil node and temp directory (dropped in reverse: the daemon
/// stops before its directory and node go away).
pub struct Running {
    pub anvil: Anvil,
    pub dir: tempfile::TempDir,
    pub d: Daemon,
}

/// Starts anvil and a daemon watching `wallets` with the test settings, and waits until it is live.
pub async fn running(wallets: &Value) -> Running {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", wallets);
    d.start();
    d.wait_live().await;
    Running { anvil, dir, d }
}

/// (exit code, stdout, stderr) of a finished process.
pub fn output(out: std::process::Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `wallets.json` with these (address, label, enabled) targets and multiplier sizing.
pub fn wallets(entries: &[(Address, &str, bool)], multiplier: f64) -> Value {
    json!({
        "defaults": {"sizing": {"mode": "multiplier", "multiplier": multiplier}},
        "wallets": entries.iter().map(|(a, l, e)| json!({"address": a.to_string(), "label": l, "enabled": e})).collect::<Vec<_>>(),
    })
}

/// The trade rows with a given status.
pub fn with_status<'a>(rows: &'a [Value], status: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["status"] == status).collect()
}

/// A TCP proxy in front of `target` that can cut every open connection.
pub struct Proxy {
    pub addr: SocketAddr,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let down: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let (c2, d2) = (conns.clone(), down.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if d2.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(inbound); // the endpoint is "down": every connection is closed at once
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c2.lock().unwrap().push(task.abort_handle());
            }
        });
        Self { addr, conns, down }
    }

    /// Takes the endpoint down (every connection closed at once) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
        if down {
            self.cut();
        }
    }

    /// Connections open through the proxy now.
    pub fn open(&self) -> usize {
        self.conns.lock().unwrap().iter().filter(|h| !h.is_finished()).count()
    }

    /// Drops every open connection (the client sees a reset).
    pub fn cut(&self) -> usize {
        let mut c = self.conns.lock().unwrap();
        let n = c.len();
        for h in c.drain(..) {
            h.abort();
        }
        n
    }
}
