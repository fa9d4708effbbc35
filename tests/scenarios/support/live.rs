//! The live-trading harness: a target, a fake CLOB (tests/scenarios/support/clob.rs) listing a standard and a
//! neg-risk token, and a live daemon signing with anvil's first dev key.

use alloy::primitives::{Address, address};
use serde_json::Value;

use super::clob::{FakeClob, Token};
use super::{Anvil, Daemon, Fill, ONE, wait_for, wallets};

pub const A: Address = address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
pub const C: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");
/// anvil's first dev key and its address: our signer in these tests.
pub const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
pub const SIGNER: Address = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
pub const STD_TOKEN: u64 = 1001;
pub const NEG_TOKEN: u64 = 2002;

pub struct Live {
    pub anvil: Anvil,
    pub clob: FakeClob,
    pub d: Daemon,
    _dir: tempfile::TempDir,
}

/// A target A (multiplier 0.1), the fake CLOB listing a standard and a neg-risk token, and a live
/// daemon (not started) configured for short timeouts.
pub async fn live() -> Live {
    let anvil = Anvil::start().await;
    let clob = FakeClob::start(SIGNER).await;
    for (t, neg) in [(STD_TOKEN, false), (NEG_TOKEN, true)] {
        clob.token(t, Token::open(neg));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "whale", true)], 0.1));
    d.set_top("mode = \"live\"");
    d.env.extend(
        [
            ("PAPER_TRADING", "false"),
            ("PRIVATE_KEY", KEY),
            ("CLOB_HOST", clob.url.as_str()),
            ("GEOBLOCK_URL", clob.url.as_str()),
            ("GAMMA_URL", clob.url.as_str()),
            ("DATA_API_URL", clob.url.as_str()),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    for line in [
        "request_timeout_ms = 1500",
        "resolve_for_s = 15",
        "max_retries = 2",
        "retry_backoff_ms = 100",
        "rate_limit_wait_ms = 700",
    ] {
        d.set("live", line);
    }
    Live { anvil, clob, d, _dir: dir }
}

/// A: buys 100 shares of `token` at 0.50 (we copy 10 at a limit of 0.51).
pub fn buy(order: u8, token: u64) -> Fill {
    Fill::v2(order, A, C, true, token, 100 * ONE, 50 * ONE)
}

pub async fn settled_row(d: &Daemon) -> Value {
    wait_for(30, "the copy to finish", async || {
        d.trades().into_iter().next().filter(|r| r["status"] != "pending" || r["reason"] == "unknown")
    })
    .await
}

/// Our funder's fills on chain settle each copied BUY (10 shares for 5.10 each; the journal finds
/// an order by its hash alone, so which of `tokens` a log names does not matter); waits until the
/// journal has them all settled.
pub async fn settle_buys_on_chain(l: &Live, tokens: &[u64]) {
    for (order, token) in l.clob.orders().iter().zip(tokens) {
        let order_hash = order.id.parse().unwrap();
        l.anvil.emit(&Fill { order_hash, ..Fill::v2(0, SIGNER, C, true, *token, 10 * ONE, 5_100_000) }).await;
    }
    wait_for(20, "our BUYs settled on chain", async || {
        let c = rusqlite::Connection::open(l.d.dir.join("journal.db")).ok()?;
        let waiting: i64 = c.query_row("SELECT COUNT(*) FROM orders WHERE settled != 1", [], |r| r.get(0)).ok()?;
        (waiting == 0).then_some(())
    })
    .await;
}

pub fn orders_in_journal(d: &Daemon) -> Vec<(String, String, i64)> {
    let c = rusqlite::Connection::open(d.dir.join("journal.db")).unwrap();
    let mut st = c.prepare("SELECT order_id, status, posts FROM orders ORDER BY fill_id").unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
}

pub async fn start_live(l: &mut Live) {
    l.d.start();
    l.d.wait_live().await;
}
