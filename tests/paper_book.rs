//! Paper trading's `order_book` fill model: a copy is filled against the token's live CLOB book (the
//! fake CLOB here), level by level up to the limit, partially or not at all; the default model needs
//! no CLOB.

mod support;

use alloy::primitives::{Address, address};
use support::clob::{FakeClob, Token};
use support::*;

const A: Address = address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
const C: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_paper_when_order_book_model_then_fills_walk_the_book() {
    let anvil = Anvil::start().await;
    let clob = FakeClob::start(Address::ZERO).await;
    // Asks: 4 at 0.50, 3 at 0.51, 10 at 0.53. Our copies buy 10 at a limit of 0.51.
    clob.token(1001, Token { asks: vec![("0.53", "10"), ("0.50", "4"), ("0.51", "3")], ..Token::open(false) });
    clob.token(1002, Token { asks: vec![("0.60", "50")], ..Token::open(false) });
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    d.env.push(("CLOB_HOST".into(), clob.url.clone()));
    d.set("paper", "fill_model = \"order_book\"");
    d.start();
    d.wait_live().await;
    for (order, token) in [(1, 1001), (2, 1002)] {
        anvil.emit(&Fill::v2(order, A, C, true, token, 100 * ONE, 50 * ONE)).await;
    }
    let rows = wait_for(20, "both copies", async || {
        let r = d.trades();
        (r.len() == 2 && r.iter().all(|r| r["status"] != "pending")).then_some(r)
    })
    .await;
    // 4 × 0.50 + 3 × 0.51 = 3.53 for 7 shares: a partial fill at the average price.
    assert_eq!(
        (rows[0]["status"].as_str(), rows[0]["shares"].as_str(), rows[0]["usdc"].as_str()),
        (Some("executed"), Some("7"), Some("3.53")),
        "{}",
        rows[0]
    );
    assert_eq!((rows[1]["status"].as_str(), rows[1]["reason"].as_str()), (Some("rejected"), Some("no_liquidity")));
    assert!(clob.requests("/book") >= 2);
}
