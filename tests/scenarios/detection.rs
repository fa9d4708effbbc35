//! Detection before the block, on anvil with automine off so a genuine `matchOrders` transaction
//! sits in the pool: the stand-in exchange (tests/contracts, MockExchange) takes the real calldata
//! and emits the `OrderFilled` logs appended after it when the block is mined.
//!
//! Checked: a target whose trigger is `pending` is copied before the block; the mined log adds no
//! second copy and the fill's row shows both sightings; a dropped transaction becomes an orphan,
//! reported; with trigger `confirmed` nothing is sent before the block; V2 and V3 calldata both.

use crate::support::*;
use alloy::primitives::{Address, B256, Bytes, U256, address};
use alloy::sol_types::{SolCall as _, SolValue as _};
use polycopy::chain::abi::v2;
use polycopy::chain::pending::{Generation, order_hash_v2};
use serde_json::{Value, json};

const FAST: Address = address!("fa57fa57fa57fa57fa57fa57fa57fa57fa57fa57");
const SLOW: Address = address!("5105105105105105105105105105105105105105");
const OTHER: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");
const SENDER: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
/// Another of anvil's accounts: not an operator of any exchange.
const STRANGER: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const ORDER_FILLED: &str = "d543adfd945773f1a62f74f0ee55a5e3b9b1a28262980ba90b1a89f2ea84d8ee";

fn order(maker: Address, side: u8, token: u64, maker_amount: u64, taker_amount: u64, salt: u64) -> v2::SignedOrder {
    v2::SignedOrder {
        salt: U256::from(salt),
        maker,
        signer: maker,
        tokenId: U256::from(token),
        makerAmount: U256::from(maker_amount),
        takerAmount: U256::from(taker_amount),
        side,
        signatureType: 0,
        timestamp: U256::from(1_764_000_000_000u64),
        metadata: B256::ZERO,
        builder: B256::ZERO,
        signature: Bytes::from(vec![1u8; 65]),
    }
}

/// The `OrderFilled` log the exchange emits for one order's fill: (topics, data).
fn filled(
    hash: B256,
    maker: Address,
    taker: Address,
    side: u8,
    token: u64,
    making: u64,
    taking: u64,
) -> ([B256; 4], Bytes) {
    let data = (
        U256::from(side),
        U256::from(token),
        U256::from(making),
        U256::from(taking),
        U256::ZERO,
        B256::ZERO,
        B256::ZERO,
    )
        .abi_encode_params();
    ([ORDER_FILLED.parse().unwrap(), hash, maker.into_word(), taker.into_word()], Bytes::from(data))
}

/// A settlement in which `target` BUYs `shares` at `price_micros` as the resting maker, against
/// another wallet's SELL, on the V2 exchange or Exchange V3: the real calldata, and the logs.
fn settlement(
    generation: Generation,
    target: Address,
    token: u64,
    shares: u64,
    usdc: u64,
    salt: u64,
) -> (Address, String) {
    settlement_of(generation, target, true, token, (shares, usdc), salt)
}

/// A settlement in which `target`, the resting maker, BUYs (`buy`) or SELLs `shares` for `usdc`
/// against another wallet's opposite order.
fn settlement_of(
    generation: Generation,
    target: Address,
    buy: bool,
    token: u64,
    amounts: (u64, u64),
    salt: u64,
) -> (Address, String) {
    settlement_logging(generation, target, buy, token, amounts, salt, true)
}

/// [`settlement_of`], whose mined logs leave out the target's fill when `target_log` is false (as
/// a block read for other wallets than the target would).
fn settlement_logging(
    generation: Generation,
    target: Address,
    buy: bool,
    token: u64,
    (shares, usdc): (u64, u64),
    salt: u64,
    target_log: bool,
) -> (Address, String) {
    let exchange = if generation == Generation::V3 { V3_EXCHANGE } else { V2_EXCHANGE };
    // What each side gives: the buyer pUSD, the seller shares.
    let (side, target_gives, other_gives) = if buy { (0, usdc, shares) } else { (1, shares, usdc) };
    let maker = order(target, side, token, target_gives, other_gives, salt);
    let taker = order(OTHER, 1 - side, token, other_gives, target_gives, salt + 1);
    let (mh, th) = (order_hash_v2(&maker, generation, 137, exchange), order_hash_v2(&taker, generation, 137, exchange));
    let mut call = match generation {
        Generation::V3 => v2::matchOrders_1Call {
            takerOrder: taker,
            makerOrders: vec![maker],
            makerFillAmounts: vec![U256::from(target_gives)],
            makerFeeAmounts: vec![U256::ZERO],
            takerAmounts: v2::TakerAmounts {
                fillAmount: U256::from(other_gives),
                receiveAmount: U256::from(target_gives),
                feeAmount: U256::ZERO,
            },
        }
        .abi_encode(),
        _ => v2::matchOrders_0Call {
            conditionId: B256::repeat_byte(3),
            takerOrder: taker,
            makerOrders: vec![maker],
            takerFillAmount: U256::from(other_gives),
            makerFillAmounts: vec![U256::from(target_gives)],
            takerFeeAmount: U256::ZERO,
            makerFeeAmounts: vec![U256::ZERO],
        }
        .abi_encode(),
    };
    // The makers' logs first, then the taker's, as the exchange emits them.
    let logs: Vec<_> = [
        filled(mh, target, OTHER, side, token, target_gives, other_gives),
        filled(th, OTHER, exchange, 1 - side, token, other_gives, target_gives),
    ]
    .into_iter()
    .skip(usize::from(!target_log))
    .collect();
    let (topics, datas): (Vec<[B256; 4]>, Vec<Bytes>) = logs.into_iter().unzip();
    let trailer = (topics, datas).abi_encode_params();
    let len = U256::from(trailer.len()).to_be_bytes::<32>();
    call.extend_from_slice(&trailer);
    call.extend_from_slice(&len);
    (exchange, format!("0x{}", alloy::hex::encode(call)))
}

async fn send(anvil: &Anvil, to: Address, data: &str) -> B256 {
    send_from(anvil, SENDER, to, data).await
}

async fn send_from(anvil: &Anvil, from: &str, to: Address, data: &str) -> B256 {
    let v = anvil.raw("eth_sendTransaction", json!([{"from": from, "to": to, "data": data, "gas": "0x200000"}])).await;
    serde_json::from_value(v).unwrap()
}

/// Installs the stand-in exchange at `ex` with our sender as its only operator (mined at once).
async fn install_exchange(anvil: &Anvil, ex: Address) {
    let code: Value =
        serde_json::from_str(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contracts/standins.json")))
            .unwrap();
    anvil.raw("anvil_setCode", json!([ex, code["MockExchange"]])).await;
    // addOperator(SENDER)
    let selector = alloy::hex::encode(&alloy::primitives::keccak256("addOperator(address)")[..4]);
    let data = format!("0x{selector}{:0>64}", SENDER.trim_start_matches("0x").to_lowercase());
    let tx = send(anvil, ex, &data).await;
    wait_for(10, "the operator added", async || (!receipt(anvil, tx).await.is_null()).then_some(())).await;
}

/// A live daemon copying FAST, whose trigger is `pending`, with the pool read every 100 ms and
/// `extra` settings; the stand-in V2 exchange installed. The chain is mined `premine` blocks
/// first (a feed waiting for confirmations needs that deep a chain).
async fn fast_on_sight(extra: &[(&str, &str)], premine: u64) -> (Anvil, tempfile::TempDir, Daemon) {
    let anvil = Anvil::start().await;
    install_exchange(&anvil, V2_EXCHANGE).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(FAST, "fast", true)], 0.1));
    let base = [
        ("POLYCOPY_DETECTION__PENDING", "true"),
        ("POLYCOPY_DETECTION__TRIGGER", "pending"),
        ("POLYCOPY_DETECTION__PENDING_POLL_MS", "100"),
    ];
    for (k, v) in base.iter().chain(extra) {
        d.env.push(((*k).to_owned(), (*v).to_owned()));
    }
    if premine > 0 {
        anvil.mine(premine).await;
    }
    d.start();
    d.wait_live().await;
    (anvil, dir, d)
}

fn rows_of(d: &Daemon, wallet: Address) -> Vec<Value> {
    let w = wallet.to_string().to_lowercase();
    d.trades().into_iter().filter(|r| r["wallet"] == w).collect()
}

fn sources(row: &Value) -> Vec<String> {
    row["sightings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().split('@').next().unwrap().to_owned())
        .collect()
}

async fn receipt(anvil: &Anvil, tx: B256) -> Value {
    anvil.raw("eth_getTransactionReceipt", json!([tx])).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_detection_when_a_settlement_is_pending_then_the_trigger_decides_and_the_block_confirms() {
    let anvil = Anvil::start().await;
    for ex in [V2_EXCHANGE, V3_EXCHANGE] {
        install_exchange(&anvil, ex).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut wallets = wallets(&[(FAST, "fast", true), (SLOW, "slow", true)], 0.1);
    wallets["wallets"][1]["trigger"] = json!("confirmed");
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets);
    for (k, v) in [
        ("POLYCOPY_DETECTION__PENDING", "true"),
        ("POLYCOPY_DETECTION__TRIGGER", "pending"),
        ("POLYCOPY_DETECTION__PENDING_POLL_MS", "100"),
    ] {
        d.env.push((k.to_owned(), v.to_owned()));
    }
    d.start();
    d.wait_live().await;
    anvil.raw("evm_setAutomine", json!([false])).await;

    // FAST (trigger pending) buys 100 at 0.40 on V2: copied while the transaction is in the pool.
    let (ex, data) = settlement(Generation::V2, FAST, 11, 100 * ONE, 40 * ONE, 1);
    let tx = send(&anvil, ex, &data).await;
    let row =
        wait_for(20, "the pending copy", async || rows_of(&d, FAST).into_iter().find(|r| r["status"] == "executed"))
            .await;
    assert!(receipt(&anvil, tx).await.is_null(), "copied before the block");
    assert_eq!((row["provisional"].as_bool(), row["triggered_by"].as_str()), (Some(true), Some("pending")), "{row}");
    assert_eq!(sources(&row), vec!["pending"]);

    // SLOW (trigger confirmed) in the same pool: journaled as seen, not sent before its block.
    let (ex, data) = settlement(Generation::V3, SLOW, 12, 50 * ONE, 30 * ONE, 10);
    let slow_tx = send(&anvil, ex, &data).await;
    let seen = wait_for(20, "the confirmed-trigger sighting", async || rows_of(&d, SLOW).into_iter().next()).await;
    assert_eq!((seen["status"].as_str(), seen["triggered_by"].as_str()), (Some("pending"), None), "{seen}");
    // A forged settlement naming FAST, sent by someone who is not the exchange's operator: never
    // acted on (anyone can put one in the pool for free).
    let (ex, data) = settlement(Generation::V2, FAST, 15, 10_000 * ONE, 9_500 * ONE, 40);
    let forged = send_from(&anvil, STRANGER, ex, &data).await;
    // A later pending copy of FAST is the marker that the pool was read again since.
    let (ex, data) = settlement(Generation::V2, FAST, 13, 100 * ONE, 50 * ONE, 20);
    send(&anvil, ex, &data).await;
    wait_for(20, "the marker copy", async || {
        (rows_of(&d, FAST).iter().filter(|r| r["status"] == "executed").count() == 2).then_some(())
    })
    .await;
    assert_eq!(rows_of(&d, SLOW)[0]["status"], "pending", "nothing sent for SLOW before its block");
    assert!(
        rows_of(&d, FAST).iter().all(|r| !r["fill"].as_str().unwrap().starts_with(&forged.to_string())),
        "forged: ignored"
    );
    anvil.raw("anvil_dropTransaction", json!([forged])).await;
    assert_eq!(d.executions_for(&slow_tx), 0);

    // The block: FAST's fills are confirmed on their own rows (no second copy), SLOW's is copied now.
    anvil.mine(1).await;
    wait_for(20, "the block's fills", async || {
        let fast = rows_of(&d, FAST);
        let slow = rows_of(&d, SLOW);
        (fast.iter().all(|r| r["provisional"] == false)
            && slow.first().is_some_and(|r| r["status"] == "executed" && r["provisional"] == false))
        .then_some(())
    })
    .await;
    let fast = rows_of(&d, FAST);
    assert_eq!(fast.len(), 2, "one row per fill: {fast:?}");
    assert_eq!(d.executions_for(&tx), 1, "the mined log added no second copy");
    let first = fast.iter().find(|r| r["fill"].as_str().unwrap().starts_with(&tx.to_string())).unwrap();
    assert_eq!(sources(first), vec!["pending", "chain"], "{first}");
    let slow = &rows_of(&d, SLOW)[0];
    assert_eq!(
        (slow["triggered_by"].as_str(), sources(slow)),
        (Some("chain"), vec!["pending".to_owned(), "chain".to_owned()])
    );
    assert_eq!(d.executions_for(&slow_tx), 1);

    // A settlement dropped from the pool: FAST's copy was made, the fill becomes an orphan, reported.
    let (ex, data) = settlement(Generation::V2, FAST, 14, 100 * ONE, 30 * ONE, 30);
    let dropped = send(&anvil, ex, &data).await;
    wait_for(20, "the copy of the doomed fill", async || {
        rows_of(&d, FAST)
            .into_iter()
            .find(|r| r["status"] == "executed" && r["fill"].as_str().unwrap().starts_with(&dropped.to_string()))
    })
    .await;
    anvil.raw("anvil_dropTransaction", json!([dropped])).await;
    // Dropped once a block is mined without it (a node may not know a transaction for a moment).
    let orphan = wait_for(20, "the orphan report", async || {
        anvil.mine(1).await;
        d.events("orphaned").into_iter().find(|m| m.contains(&dropped.to_string()))
    })
    .await;
    assert!(orphan.contains("dropped or replaced") && orphan.contains("COPIED"), "{orphan}");
    let row =
        rows_of(&d, FAST).into_iter().find(|r| r["fill"].as_str().unwrap().starts_with(&dropped.to_string())).unwrap();
    assert_eq!(row["orphaned"], true, "{row}");
    anvil.mine(1).await;
    assert!(receipt(&anvil, dropped).await.is_null(), "it was never mined");
    assert_eq!(d.stop().code(), Some(0));
}

/// A daemon copying FAST on sight with the pending cap at 1 USDC (no slippage), fault point
/// `point` holding while `hold` exists, and `extra` settings; anvil no longer mining by itself.
struct Held {
    anvil: Anvil,
    dir: tempfile::TempDir,
    d: Daemon,
    hold: std::path::PathBuf,
    holds: tempfile::TempDir,
}

async fn capped_and_held(point: &str, extra: &[(&str, &str)]) -> Held {
    let holds = tempfile::tempdir().unwrap();
    let hold = holds.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let held = [
        ("POLYCOPY_DETECTION__PENDING_MAX_ORDER_USDC", "1"),
        ("POLYCOPY_COPY__MAX_SLIPPAGE_BPS", "0"),
        ("POLYCOPY_FAULT", point),
        ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap()),
    ];
    let (anvil, dir, d) = fast_on_sight(&[&held[..], extra].concat(), 0).await;
    anvil.raw("evm_setAutomine", json!([false])).await;
    Held { anvil, dir, d, hold, holds }
}

/// A sighting's copy that the pending cap alone refuses, held undecided while its transaction is
/// dropped (orphaned), then mined after all (a retry of the match): the mined fill waits for the
/// sighting's copy, which finds the fill no longer its to leave to a block. The mined fill is then
/// copied, once, on the target's own rules. Before, the sighting's copy answered "being placed"
/// and the mined fill's copy was dropped: the trade stayed undecided until a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_detection_when_a_held_sighting_is_orphaned_and_then_mined_then_its_block_copies_it() {
    let Held { anvil, dir: _dir, mut d, hold, holds: _holds } = capped_and_held("hold_before_sizing", &[]).await;

    // FAST buys 100 at 0.30: capped, 3.33 shares for 0.999 USDC (under the minimum); uncapped, 10.
    let (ex, data) = settlement(Generation::V2, FAST, 12, 100 * ONE, 30 * ONE, 3);
    let dropped = send(&anvil, ex, &data).await;
    wait_for(20, "the sighting's copy held", async || d.log().contains("fault injection: holding").then_some(())).await;
    anvil.raw("anvil_dropTransaction", json!([dropped])).await;
    wait_for(20, "the orphan report", async || {
        anvil.mine(1).await;
        d.events("orphaned").into_iter().find(|m| m.contains(&dropped.to_string()))
    })
    .await;
    // The match sent again and mined: the orphan's row is revived and handed on by its block.
    let mined = send(&anvil, ex, &data).await;
    anvil.mine(1).await;
    wait_for(20, "the mined fill waiting for the sighting's copy", async || {
        d.log().contains("a mined fill waits for its sighting's copy").then_some(())
    })
    .await;
    std::fs::remove_file(&hold).unwrap();
    let row =
        wait_for(30, "the copy by its block", async || fast_row(&d, mined).filter(|r| r["status"] != "pending")).await;
    assert_eq!(
        (row["status"].as_str(), row["shares"].as_str(), row["triggered_by"].as_str()),
        (Some("executed"), Some("10"), Some("chain")),
        "{row}"
    );
    assert_eq!(d.executions_for(&mined), 1);
    assert_eq!(d.stop().code(), Some(0));
}

/// A sighting's copy left to its block by the pending cap, and held before that copy ends; the
/// target is paused meanwhile and the block comes: the registry's refusal of the mined fill waits
/// for the sighting's copy and is journaled once that copy ends. Before, it was dropped (a copy of
/// the fill was being decided) while that copy placed nothing: the fill stayed undecided until a
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_detection_when_a_target_is_paused_while_its_sighting_is_left_to_its_block_then_the_block_refuses_it() {
    let tg = crate::support::telegram::FakeTelegram::start("123456789:DETECTION-TEST-TOKEN-abcdef").await;
    let telegram =
        [("TELEGRAM_BOT_TOKEN", tg.token.as_str()), ("TELEGRAM_CHAT_ID", "1001"), ("TELEGRAM_API_URL", &tg.url)];
    let Held { anvil, dir: _dir, mut d, hold, holds: _holds } =
        capped_and_held("hold_after_left_to_block", &telegram).await;

    // FAST buys 100 at 0.30: capped, 3.33 shares for 0.999 USDC (under the minimum): left to its block.
    let (ex, data) = settlement(Generation::V2, FAST, 12, 100 * ONE, 30 * ONE, 3);
    let tx = send(&anvil, ex, &data).await;
    wait_for(20, "the sighting left to its block", async || d.log().contains("fault injection: holding").then_some(()))
        .await;
    tg.inject_message(1001, "/pause fast");
    wait_for(10, "the target paused", async || {
        tg.sent_to(1001).iter().any(|m| m.text.to_lowercase().contains("paused fast")).then_some(())
    })
    .await;
    anvil.mine(1).await;
    wait_for(20, "the registry's refusal of the mined fill parked", async || {
        d.log().contains("refusal of a mined fill waits for its sighting's copy").then_some(())
    })
    .await;
    std::fs::remove_file(&hold).unwrap();
    let row = wait_for(20, "the fill decided", async || fast_row(&d, tx).filter(|r| r["status"] != "pending")).await;
    assert_eq!((row["status"].as_str(), row["reason"].as_str()), (Some("rejected"), Some("paused")), "{row}");
    assert_eq!(d.executions_for(&tx), 0, "a paused target's BUY is not copied");
    assert_eq!(d.stop().code(), Some(0));
}

/// The load figures for BENCHMARKS.md: anvil mining a block every 2 s, 40 settlements of a
/// target sent at spread-out moments (the pending source's lead over the mined log), then 200
/// settlements in one second (decoded without falling behind), our own pending-path time from
/// /metrics. Ignored by default:
/// `cargo nextest run --release --test scenarios detection:: --run-ignored only --no-capture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load figure for BENCHMARKS.md"]
async fn load_detection_lead_at_two_second_blocks() {
    let extra = [("POLYCOPY_CHAIN__POLL_INTERVAL_MS", "100"), ("POLYCOPY_RISK__MAX_TRADES_PER_HOUR", "100000")];
    let (anvil, _dir, mut d) = fast_on_sight(&extra, 0).await;
    anvil.raw("evm_setAutomine", json!([false])).await;
    anvil.raw("evm_setIntervalMining", json!([2])).await;
    // Spread over blocks: each settlement lands at another moment of its block's 2 s.
    let mut salt = 1_000;
    for i in 0..40u64 {
        salt += 2;
        let (ex, data) = settlement(Generation::V2, FAST, 100 + i, 100 * ONE, 40 * ONE, salt);
        send(&anvil, ex, &data).await;
        tokio::time::sleep(std::time::Duration::from_millis(700 + (i * 389) % 1_100)).await;
    }
    wait_for(60, "all 40 confirmed", async || {
        let t = d.trades();
        (t.len() == 40 && t.iter().all(|r| r["provisional"] == false)).then_some(())
    })
    .await;
    let (_, out, _) = d.run_cli(&["stats", "detection", "--days", "1"]);
    println!("lead at 2 s blocks, 40 settlements:\n{out}");
    // A burst: 200 settlements in about a second (a target's and others' orders).
    let t0 = std::time::Instant::now();
    for i in 0..200u64 {
        salt += 2;
        let (ex, data) = settlement(Generation::V2, FAST, 1_000 + i, 100 * ONE, 40 * ONE, salt);
        send(&anvil, ex, &data).await;
    }
    let sent_s = t0.elapsed().as_secs_f64();
    wait_for(120, "the burst journaled", async || (d.trades().len() >= 240).then_some(())).await;
    let took = t0.elapsed().as_secs_f64();
    let (_, body) = crate::support::http::http_get(&d.http_base().await, "/metrics").await;
    let own: Vec<&str> = body.lines().filter(|l| l.starts_with("polycopy_pending_processing_seconds")).collect();
    println!("burst: 200 settlements sent in {sent_s:.2} s, all journaled {took:.2} s after the first was sent");
    println!("{}", own.join("\n"));
    assert_eq!(d.stop().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_detection_when_pending_transactions_come_by_subscription_then_copied_before_the_block() {
    let anvil = Anvil::start().await;
    install_exchange(&anvil, V2_EXCHANGE).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(FAST, "fast", true)], 0.1));
    for (k, v) in [
        ("POLYCOPY_DETECTION__PENDING", "true".to_owned()),
        ("POLYCOPY_DETECTION__PENDING_SOURCE", "subscription".to_owned()),
        ("POLYCOPY_DETECTION__TRIGGER", "pending".to_owned()),
        ("POLYCOPY_DETECTION__PENDING_POLL_MS", "100".to_owned()),
        ("POLYGON_WS_URL", format!("ws://127.0.0.1:{}", anvil.port)),
    ] {
        d.env.push((k.to_owned(), v));
    }
    d.start();
    d.wait_live().await;
    wait_for(20, "the subscription", async || d.log().contains("pending transactions: ").then_some(())).await;
    anvil.raw("evm_setAutomine", json!([false])).await;
    let (ex, data) = settlement(Generation::V2, FAST, 21, 100 * ONE, 40 * ONE, 500);
    let tx = send(&anvil, ex, &data).await;
    let row =
        wait_for(20, "the pending copy", async || rows_of(&d, FAST).into_iter().find(|r| r["status"] == "executed"))
            .await;
    assert!(receipt(&anvil, tx).await.is_null(), "copied before the block");
    assert_eq!(row["triggered_by"], "pending", "{row}");
    // Dropped: without a pool snapshot, the node is asked about the transaction itself.
    let (ex, data) = settlement(Generation::V2, FAST, 22, 100 * ONE, 40 * ONE, 510);
    let dropped = send(&anvil, ex, &data).await;
    wait_for(20, "the second pending copy", async || {
        (rows_of(&d, FAST).iter().filter(|r| r["status"] == "executed").count() == 2).then_some(())
    })
    .await;
    anvil.raw("anvil_dropTransaction", json!([dropped])).await;
    wait_for(20, "the orphan report", async || {
        anvil.mine(1).await;
        d.events("orphaned").into_iter().find(|m| m.contains(&dropped.to_string()))
    })
    .await;
    anvil.mine(1).await;
    wait_for(20, "the first confirmed", async || {
        rows_of(&d, FAST)
            .into_iter()
            .find(|r| r["provisional"] == false && r["fill"].as_str().unwrap().starts_with(&tx.to_string()))
    })
    .await;
    assert_eq!(d.executions_for(&tx), 1);
    assert_eq!(d.stop().code(), Some(0));
}

/// The same match settled again (an operator's retry) and seen in the pool after the first
/// settlement was mined and copied: not copied a second time; it waits for its own block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_detection_when_a_mined_match_is_seen_again_in_the_pool_then_not_copied_twice() {
    let (anvil, _dir, mut d) = fast_on_sight(&[], 0).await;

    // Mined at once (automine on) and copied from its block.
    let (ex, data) = settlement(Generation::V2, FAST, 21, 100 * ONE, 40 * ONE, 50);
    let first = send(&anvil, ex, &data).await;
    wait_for(20, "the copy from the block", async || (d.executions_for(&first) == 1).then_some(())).await;

    // The same calldata again, now held in the pool.
    anvil.raw("evm_setAutomine", json!([false])).await;
    let again = send(&anvil, ex, &data).await;
    wait_for(20, "the retry seen in the pool", async || {
        rows_of(&d, FAST).into_iter().find(|r| r["fill"].as_str().unwrap().starts_with(&again.to_string()))
    })
    .await;
    // A later pending copy is the marker that the pool was read since.
    let (ex, marker) = settlement(Generation::V2, FAST, 22, 100 * ONE, 50 * ONE, 60);
    let marker = send(&anvil, ex, &marker).await;
    wait_for(20, "the marker copy", async || (d.executions_for(&marker) == 1).then_some(())).await;
    assert_eq!(d.executions_for(&again), 0, "the retry of a mined match was copied again");
    let row =
        rows_of(&d, FAST).into_iter().find(|r| r["fill"].as_str().unwrap().starts_with(&again.to_string())).unwrap();
    assert_eq!((row["status"].as_str(), row["triggered_by"].as_str()), (Some("pending"), None), "{row}");
    assert_eq!(d.stop().code(), Some(0));
}

/// A settlement copied on sight and mined, then taken out by a shallow reorg before its block is
/// deep enough for the feed (confirmations 3): it is still followed after its receipt, so it
/// becomes an orphan, reported, instead of a provisional row left for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_detection_when_a_mined_settlement_is_reorged_out_before_its_log_counts_then_orphaned() {
    let (anvil, _dir, mut d) = fast_on_sight(&[("POLYCOPY_CHAIN__CONFIRMATIONS", "3")], 5).await;
    anvil.raw("evm_setAutomine", json!([false])).await;

    let (ex, data) = settlement(Generation::V2, FAST, 31, 100 * ONE, 40 * ONE, 70);
    let tx = send(&anvil, ex, &data).await;
    wait_for(20, "the pending copy", async || (d.executions_for(&tx) == 1).then_some(())).await;
    anvil.mine(1).await;
    wait_for(10, "the receipt", async || (!receipt(&anvil, tx).await.is_null()).then_some(())).await;
    // Two later pending copies: the pool was read, and its settlements followed up, since the
    // receipt was there.
    for (token, salt) in [(32, 80), (33, 90)] {
        let (ex, marker) = settlement(Generation::V2, FAST, token, 100 * ONE, 50 * ONE, salt);
        let marker = send(&anvil, ex, &marker).await;
        wait_for(20, "a marker copy", async || (d.executions_for(&marker) == 1).then_some(())).await;
    }
    anvil.raw("anvil_reorg", json!([1, []])).await;
    let orphan = wait_for(30, "the orphan report", async || {
        anvil.mine(1).await;
        d.events("orphaned").into_iter().find(|m| m.contains(&tx.to_string()))
    })
    .await;
    assert!(orphan.contains("COPIED"), "{orphan}");
    assert_eq!(d.stop().code(), Some(0));
}

/// A paper daemon copying FAST on sight, whose feed waits for `confirmations`, with every SELL's
/// sizing held while the returned file exists; FAST's balances are readable on chain.
async fn sell_sizing_held(confirmations: u64) -> (Anvil, tempfile::TempDir, Daemon, std::path::PathBuf) {
    let anvil = Anvil::start().await;
    anvil.install_balances().await;
    install_exchange(&anvil, V2_EXCHANGE).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(FAST, "fast", true)], 0.1));
    let hold = dir.path().join("hold-sell-sizing");
    // A feed waiting for confirmations needs that deep a chain to go live.
    anvil.mine(confirmations + 2).await;
    let confirmations = confirmations.to_string();
    d.start_with(&[
        ("POLYCOPY_CHAIN__CONFIRMATIONS", confirmations.as_str()),
        ("POLYCOPY_DETECTION__PENDING", "true"),
        ("POLYCOPY_DETECTION__TRIGGER", "pending"),
        ("POLYCOPY_DETECTION__PENDING_POLL_MS", "100"),
        ("POLYCOPY_FAULT", "hold_before_sell_sizing"),
        ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap()),
    ]);
    d.wait_live().await;
    (anvil, dir, d, hold)
}

/// FAST sells 600 of its 1,000 of token 21: seen in the pool, its copy held before its sizing.
/// The operator replaces the settlement (the same match, another transaction), and it is mined;
/// after that block FAST holds the 400 it kept. Returns the replacement.
async fn sell_replaced_while_held(anvil: &Anvil, d: &Daemon, hold: &std::path::Path) -> B256 {
    std::fs::write(hold, "").unwrap();
    anvil.raw("evm_setAutomine", json!([false])).await;
    let (ex, data) = settlement_of(Generation::V2, FAST, false, 21, (600 * ONE, 300 * ONE), 3);
    let seen = send(anvil, ex, &data).await;
    wait_for(20, "the pending sell held before its sizing", async || {
        d.log().contains("fault injection: holding").then_some(())
    })
    .await;
    anvil.raw("anvil_dropTransaction", json!([seen])).await;
    let v =
        anvil.raw("eth_sendTransaction", json!([{"from": SENDER, "to": ex, "data": data, "gas": "0x200100"}])).await;
    let replacement: B256 = serde_json::from_value(v).unwrap();
    assert_ne!(replacement, seen);
    anvil.mine(1).await;
    assert!(!receipt(anvil, replacement).await.is_null(), "the replacement was mined");
    anvil.set_balance(FAST, 21, 400 * ONE).await;
    replacement
}

/// Releases the held sale's sizing and checks its copy: FAST sold 600 of its 1,000, so 60% of our 100.
async fn sale_released_sells_sixty_percent(d: &Daemon, hold: &std::path::Path) {
    std::fs::remove_file(hold).unwrap();
    let sold = wait_for(20, "the sale copied", async || {
        rows_of(d, FAST).into_iter().find(|r| r["side"] == "SELL" && r["status"] != "pending")
    })
    .await;
    assert_eq!(
        (sold["status"].as_str(), sold["shares"].as_str()),
        (Some("executed"), Some("60")),
        "60% of our 100: {sold}"
    );
}

/// A target's SELL seen pending whose copy waits (here held before its sizing, as behind other
/// copies of its token) while the operator replaces the settlement and the replacement is mined:
/// it is sized on the target's balance before the block it was mined in. Read at the head, after
/// the sale, "sold 600 of 1,000" would look like "sold all it had" and sell all our copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_detection_when_a_pending_sell_is_mined_under_a_replacement_then_sized_before_its_block() {
    let (anvil, _dir, mut d, hold) = sell_sizing_held(0).await;

    // FAST buys 1,000 (mined at once): we buy 100. A block later it holds 1,000 on chain.
    let (ex, data) = settlement_of(Generation::V2, FAST, true, 21, (1_000 * ONE, 400 * ONE), 1);
    send(&anvil, ex, &data).await;
    wait_for(20, "the buy copied", async || {
        rows_of(&d, FAST).into_iter().find(|r| r["status"] == "executed" && r["provisional"] == false)
    })
    .await;
    anvil.set_balance(FAST, 21, 1_000 * ONE).await;
    anvil.mine(1).await;

    let replacement = sell_replaced_while_held(&anvil, &d, &hold).await;
    wait_for(20, "the sale's row confirmed by the replacement's block", async || {
        rows_of(&d, FAST)
            .into_iter()
            .find(|r| r["fill"].as_str().unwrap().starts_with(&replacement.to_string()) && r["provisional"] == false)
    })
    .await;

    sale_released_sells_sixty_percent(&d, &hold).await;
    assert_eq!(rows_of(&d, FAST).len(), 2, "one row per fill: {:?}", rows_of(&d, FAST));
    assert_eq!(d.executions_for(&replacement), 1);
    assert_eq!(d.stop().code(), Some(0));
}

/// A live copy of a sighting in the pool waits for its turn at the CLOB (held there); the target's
/// transaction is dropped meanwhile and its sighting orphaned: the signed order never leaves, and
/// the copy is taken back with a stable reason. The operator's retry of that match, mined as a new
/// transaction, is then copied once (kept as a refusal with its intent, it would never be).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_sighting_is_orphaned_while_its_order_waits_its_turn_then_it_never_leaves() {
    use crate::support::live::{A, STD_TOKEN, live};
    let mut l = live().await;
    install_exchange(&l.anvil, V2_EXCHANGE).await;
    let hold = l.d.dir.join("hold-at-turn");
    std::fs::write(&hold, "").unwrap();
    l.d.start_with(&[
        ("POLYCOPY_DETECTION__PENDING", "true"),
        ("POLYCOPY_DETECTION__TRIGGER", "pending"),
        ("POLYCOPY_DETECTION__PENDING_POLL_MS", "100"),
        ("POLYCOPY_FAULT", "hold_at_turn"),
        ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap()),
    ]);
    l.d.wait_live().await;
    l.anvil.raw("evm_setAutomine", json!([false])).await;
    let (ex, data) = settlement(Generation::V2, A, STD_TOKEN, 100 * ONE, 50 * ONE, 7);
    let doomed = send(&l.anvil, ex, &data).await;
    wait_for(20, "the copy held at its turn", async || l.d.log().contains("fault injection: holding").then_some(()))
        .await;
    l.anvil.raw("anvil_dropTransaction", json!([doomed])).await;
    wait_for(20, "the orphan report", async || {
        l.anvil.mine(1).await;
        l.d.events("orphaned").into_iter().find(|m| m.contains(&doomed.to_string()))
    })
    .await;
    std::fs::remove_file(&hold).unwrap();
    let row = wait_for(20, "the copy decided", async || {
        l.d.trades().into_iter().find(|r| r["status"] != "pending").filter(|r| r["side"] == "BUY")
    })
    .await;
    assert_eq!((row["status"].as_str(), row["reason"].as_str()), (Some("withdrawn"), Some("orphaned")), "{row}");
    assert!(row["detail"].as_str().unwrap_or("").contains("before our order left"), "{row}");
    assert!(l.clob.posts().is_empty(), "nothing left for the CLOB");
    let (ex, data) = settlement(Generation::V2, A, STD_TOKEN, 100 * ONE, 50 * ONE, 7);
    let retry = send(&l.anvil, ex, &data).await;
    l.anvil.mine(1).await;
    let rows = wait_for(30, "the retry copied", async || {
        let t = l.d.trades();
        t.iter().any(|r| r["status"] == "executed").then_some(t)
    })
    .await;
    assert_eq!(rows.len(), 1, "the same trade, one row: {rows:?}");
    assert!(rows[0]["fill"].as_str().unwrap().starts_with(&retry.to_string()), "{rows:?}");
    assert_eq!(l.clob.posts().len(), 1, "copied once");
    assert_eq!(l.d.stop().code(), Some(0));
}

/// Two sightings copied live, each signed order held at its turn; the daemon is killed before
/// either leaves, and while it is down one transaction is mined and the other dropped. At the
/// restart nothing is sent on the word of the pool of an earlier run: the mined one is copied
/// once, by its block, and the dropped one never, an orphan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_restarted_with_unsent_copies_of_sightings_then_only_the_mined_one_is_copied() {
    use crate::support::live::{A, STD_TOKEN, live};
    let mut l = live().await;
    install_exchange(&l.anvil, V2_EXCHANGE).await;
    let hold = l.d.dir.join("hold-at-turn");
    std::fs::write(&hold, "").unwrap();
    let held: Vec<(&str, &str)> =
        [("POLYCOPY_FAULT", "hold_at_turn"), ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap())].into_iter().collect();
    l.d.start_with(&[&ON_SIGHT[..], &held[..]].concat());
    l.d.wait_live().await;
    l.anvil.raw("evm_setAutomine", json!([false])).await;
    let (ex, data) = settlement(Generation::V2, A, STD_TOKEN, 100 * ONE, 50 * ONE, 7);
    let mined = send(&l.anvil, ex, &data).await;
    let (ex, data) = settlement(Generation::V2, A, STD_TOKEN, 100 * ONE, 50 * ONE, 8);
    let dropped = send(&l.anvil, ex, &data).await;
    wait_for(20, "both copies signed and held at their turn", async || {
        (l.d.log().matches("fault injection: holding").count() >= 2).then_some(())
    })
    .await;
    l.d.kill9();
    // The later nonce is dropped, so the earlier one can be mined alone.
    l.anvil.raw("anvil_dropTransaction", json!([dropped])).await;
    l.anvil.mine(1).await;
    std::fs::remove_file(&hold).unwrap();
    l.d.start_with(&ON_SIGHT);
    l.d.wait_live().await;
    let orphan = wait_for(30, "the dropped sighting orphaned", async || {
        l.anvil.mine(1).await;
        l.d.events("orphaned").into_iter().find(|m| m.contains(&dropped.to_string()))
    })
    .await;
    assert!(!orphan.contains("COPIED"), "{orphan}");
    wait_for(30, "the mined one copied", async || (l.d.executions_for(&mined) == 1).then_some(())).await;
    assert_eq!(l.clob.posts().len(), 1, "one order: the mined trade's copy");
    assert_eq!(l.d.executions_for(&dropped), 0);
    assert_eq!(l.d.stop().code(), Some(0));
}

/// Pending detection on, the target copied on sight, the pool read every 100 ms.
/// A target's SELL seen in the pool while the chain feed is still reading the blocks behind it,
/// its BUY among them (a restart's backfill, a stalled endpoint), waits for its block: copies keep
/// the chain's order, so the SELL is sized on the copy of the BUY before it rather than refused
/// for want of a position (and the BUY then copied into a position the target has left).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_detection_when_the_feed_is_behind_then_a_sighting_waits_for_its_block() {
    let anvil = Anvil::start().await;
    install_exchange(&anvil, V2_EXCHANGE).await;
    let rpc = crate::support::capped_rpc::CappedRpc::start(&anvil.http_url(), 100_000).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &rpc.url, "", &wallets(&[(FAST, "fast", true)], 0.1));
    d.env.extend(ON_SIGHT.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    d.start();
    d.wait_live().await;
    // The BUY is mined while the feed cannot read logs: it stays behind the head.
    rpc.hold_logs(true);
    let (ex, data) = settlement(Generation::V2, FAST, 11, 100 * ONE, 40 * ONE, 1);
    send(&anvil, ex, &data).await;
    anvil.mine(2).await;
    wait_for(20, "the feed held reading the BUY's block", async || (rpc.logs_waiting() > 0).then_some(())).await;
    anvil.raw("evm_setAutomine", json!([false])).await;
    let (ex, data) = settlement_of(Generation::V2, FAST, false, 11, (100 * ONE, 45 * ONE), 2);
    let sell = send(&anvil, ex, &data).await;
    let row = wait_for(20, "the SELL sighted", async || {
        rows_of(&d, FAST).into_iter().find(|r| r["fill"].as_str().unwrap().starts_with(&sell.to_string()))
    })
    .await;
    assert_eq!((row["status"].as_str(), row["triggered_by"].as_str()), (Some("pending"), None), "waits: {row}");
    rpc.hold_logs(false);
    anvil.mine(1).await;
    let rows = wait_for(30, "both copied, in the chain's order", async || {
        let r = rows_of(&d, FAST);
        (r.len() == 2 && r.iter().all(|r| r["status"] != "pending")).then_some(r)
    })
    .await;
    // Both copied, the SELL by its block; how much it sells is the exit sizing's business (the
    // target's balance on chain, which this stand-in exchange does not move).
    for r in &rows {
        assert_eq!((r["status"].as_str(), r["triggered_by"].as_str()), (Some("executed"), Some("chain")), "{rows:?}");
    }
    assert_eq!(d.stop().code(), Some(0));
}

/// As above with the feed only one block behind (which counts as caught up), and the token held
/// through another target's copies: FAST's SELL seen in the pool is sized on FAST's own copies,
/// none yet (its BUY is in the block not read), so it waits for its block rather than being
/// refused for good because SLOW's copies make the token look held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_detection_when_a_target_sells_a_token_held_through_another_targets_copies_then_the_sighting_waits_for_its_block()
 {
    let anvil = Anvil::start().await;
    install_exchange(&anvil, V2_EXCHANGE).await;
    let rpc = crate::support::capped_rpc::CappedRpc::start(&anvil.http_url(), 100_000).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &rpc.url, "", &wallets(&[(FAST, "fast", true), (SLOW, "slow", true)], 0.1));
    d.env.extend(ON_SIGHT.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    d.start();
    d.wait_live().await;
    let (ex, data) = settlement(Generation::V2, SLOW, 12, 100 * ONE, 40 * ONE, 1);
    send(&anvil, ex, &data).await;
    wait_for(20, "SLOW's BUY copied", async || {
        rows_of(&d, SLOW).into_iter().find(|r| r["status"] == "executed" && r["provisional"] == false)
    })
    .await;
    // FAST's BUY is mined in one block the feed cannot read yet.
    rpc.hold_logs(true);
    let (ex, data) = settlement(Generation::V2, FAST, 12, 100 * ONE, 40 * ONE, 2);
    send(&anvil, ex, &data).await;
    wait_for(20, "the feed held reading the BUY's block", async || (rpc.logs_waiting() > 0).then_some(())).await;
    anvil.raw("evm_setAutomine", json!([false])).await;
    let (ex, data) = settlement_of(Generation::V2, FAST, false, 12, (100 * ONE, 45 * ONE), 3);
    let sell = send(&anvil, ex, &data).await;
    let row = wait_for(20, "the SELL sighted", async || {
        rows_of(&d, FAST).into_iter().find(|r| r["fill"].as_str().unwrap().starts_with(&sell.to_string()))
    })
    .await;
    assert_eq!((row["status"].as_str(), row["triggered_by"].as_str()), (Some("pending"), None), "waits: {row}");
    rpc.hold_logs(false);
    anvil.mine(1).await;
    let rows = wait_for(30, "both of FAST's copied, in the chain's order", async || {
        let r = rows_of(&d, FAST);
        (r.len() == 2 && r.iter().all(|r| r["status"] != "pending")).then_some(r)
    })
    .await;
    for r in &rows {
        assert_eq!((r["status"].as_str(), r["triggered_by"].as_str()), (Some("executed"), Some("chain")), "{rows:?}");
    }
    assert_eq!(d.stop().code(), Some(0));
}

const ON_SIGHT: [(&str, &str); 3] = [
    ("POLYCOPY_DETECTION__PENDING", "true"),
    ("POLYCOPY_DETECTION__TRIGGER", "pending"),
    ("POLYCOPY_DETECTION__PENDING_POLL_MS", "100"),
];

/// A live daemon copying on sight whose copy of a settlement still in the pool was sent once and
/// refused "not now" (503), killed during the wait before its retry: the order's fate is open.
/// Returns it (not running) and the settlement's transaction.
async fn killed_while_a_sent_copy_of_a_sighting_waits() -> (crate::support::live::Live, B256) {
    use crate::support::live::{A, STD_TOKEN, live};
    let mut l = live().await;
    install_exchange(&l.anvil, V2_EXCHANGE).await;
    l.d.replace_setting("retry_backoff_ms = 100", "retry_backoff_ms = 60000");
    l.clob.script(&[crate::support::clob::Play::Status(503, "trading is currently cancel-only")]);
    l.d.start_with(&ON_SIGHT);
    l.d.wait_live().await;
    l.anvil.raw("evm_setAutomine", json!([false])).await;
    let (ex, data) = settlement(Generation::V2, A, STD_TOKEN, 100 * ONE, 50 * ONE, 7);
    let tx = send(&l.anvil, ex, &data).await;
    wait_for(20, "the first POST, refused for now", async || (l.clob.posts().len() == 1).then_some(())).await;
    wait_for(20, "the wait before the retry", async || {
        l.d.log().contains("order refused for now; sending the same order again after a wait").then_some(())
    })
    .await;
    l.d.kill9();
    (l, tx)
}

/// A sighting's copy is sent and refused "not now" (503); the daemon is killed during the wait
/// before the retry, and the target's transaction is dropped while it is down. At the restart the
/// order may have reached the exchange, so it is looked up; its lookups find nothing, and still
/// the same order is not sent again on the word of a pool read before the stop: it waits for the
/// chain, which orphans the sighting, and then it is only ever looked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_restarted_with_a_sent_copy_of_a_dropped_sighting_then_it_is_not_sent_again() {
    let (mut l, tx) = killed_while_a_sent_copy_of_a_sighting_waits().await;
    l.anvil.raw("anvil_dropTransaction", json!([tx])).await;
    l.d.start_with(&ON_SIGHT);
    l.d.wait_live().await;
    wait_for(30, "the orphan report", async || {
        l.anvil.mine(1).await;
        l.d.events("orphaned").into_iter().find(|m| m.contains(&tx.to_string()))
    })
    .await;
    // Later lookups are the marker that the order was handled since, and still only looked up.
    let lookups = l.clob.requests("/data/order");
    wait_for(30, "two more lookups", async || (l.clob.requests("/data/order") >= lookups + 2).then_some(())).await;
    assert_eq!(l.clob.posts().len(), 1, "never sent again for a trade that did not happen");
    assert_eq!(l.d.executions_for(&tx), 0);
}

/// As above, but the target's transaction is still in the pool at the restart and is mined once
/// the recovered order has waited: the block confirms the trade, and the same signed order is
/// sent again within its window (not left to a later round, nor given up as unknown), once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_restarted_with_a_sent_copy_of_a_sighting_mined_later_then_sent_again_once() {
    let (mut l, tx) = killed_while_a_sent_copy_of_a_sighting_waits().await;
    l.d.start_with(&ON_SIGHT);
    l.d.wait_live().await;
    wait_for(20, "the recovered order waiting for the chain", async || {
        l.d.log().contains("sighting from before the start").then_some(())
    })
    .await;
    l.anvil.mine(1).await;
    wait_for(30, "the copy booked", async || (l.d.executions_for(&tx) == 1).then_some(())).await;
    assert_eq!(l.clob.posts().len(), 2, "the refused send and one more");
    assert!(l.d.events("error").iter().all(|e| !e.contains("unknown")), "{:?}", l.d.events("error"));
    assert_eq!(l.d.stop().code(), Some(0));
}

/// A sighting's copy is held just before its POST while the target's transaction is dropped and
/// the sighting orphaned; the order then goes, matches, and the daemon dies between journaling
/// the match and booking it. At the restart the shares we hold are booked (the fill being an
/// orphan changes nothing about what we bought), and nothing is sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_live_when_a_match_on_an_orphaned_sighting_was_not_booked_before_a_crash_then_booked_at_restart() {
    use crate::support::live::{A, STD_TOKEN, live};
    let mut l = live().await;
    install_exchange(&l.anvil, V2_EXCHANGE).await;
    let hold = l.d.dir.join("hold-before-post");
    std::fs::write(&hold, "").unwrap();
    let faults: Vec<(&str, &str)> = [
        ("POLYCOPY_FAULT", "hold_before_post,abort_after_order_outcome"),
        ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap()),
    ]
    .into_iter()
    .collect();
    l.d.start_with(&[&ON_SIGHT[..], &faults[..]].concat());
    l.d.wait_live().await;
    l.anvil.raw("evm_setAutomine", json!([false])).await;
    let (ex, data) = settlement(Generation::V2, A, STD_TOKEN, 100 * ONE, 50 * ONE, 7);
    let tx = send(&l.anvil, ex, &data).await;
    wait_for(20, "the copy held before its POST", async || {
        l.d.log().contains("fault injection: holding").then_some(())
    })
    .await;
    l.anvil.raw("anvil_dropTransaction", json!([tx])).await;
    wait_for(20, "the orphan report", async || {
        l.anvil.mine(1).await;
        l.d.events("orphaned").into_iter().find(|m| m.contains(&tx.to_string()))
    })
    .await;
    std::fs::remove_file(&hold).unwrap();
    wait_for(20, "the crash after the match was journaled", async || {
        l.d.log().contains("fault injection: aborting").then_some(())
    })
    .await;
    l.d.kill9();
    assert_eq!(l.d.executions_for(&tx), 0, "died before booking");
    l.d.start_with(&ON_SIGHT);
    l.d.wait_live().await;
    wait_for(20, "the match booked", async || (l.d.executions_for(&tx) == 1).then_some(())).await;
    assert_eq!(l.clob.posts().len(), 1, "nothing sent again");
    let status = l.d.status();
    assert!(status.to_string().contains(&STD_TOKEN.to_string()), "the position is held: {status}");
    assert_eq!(l.d.stop().code(), Some(0));
}

/// A settlement copied on sight and mined, whose block holds no fill of the target (here its logs
/// leave it out; in life, a target removed meanwhile): once old and read past by the feed, it is
/// an orphan, reported, instead of a provisional row counted in the target's position for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_detection_when_a_mined_settlement_never_shows_the_targets_fill_then_orphaned() {
    let (anvil, _dir, mut d) = fast_on_sight(&[], 0).await;
    anvil.raw("evm_setAutomine", json!([false])).await;
    let (ex, data) = settlement_logging(Generation::V2, FAST, true, 41, (100 * ONE, 40 * ONE), 700, false);
    let tx = send(&anvil, ex, &data).await;
    wait_for(20, "the pending copy", async || (d.executions_for(&tx) == 1).then_some(())).await;
    anvil.mine(1).await;
    wait_for(10, "the receipt", async || (!receipt(&anvil, tx).await.is_null()).then_some(())).await;
    anvil.mine(130).await;
    let orphan = wait_for(30, "the orphan report", async || {
        d.events("orphaned").into_iter().find(|m| m.contains(&tx.to_string()))
    })
    .await;
    assert!(orphan.contains("COPIED") && orphan.contains("no fill of a watched target"), "{orphan}");
    let row = rows_of(&d, FAST).into_iter().next().unwrap();
    assert_eq!((row["orphaned"].as_bool(), row["provisional"].as_bool()), (Some(true), Some(true)), "{row}");
    assert_eq!(d.stop().code(), Some(0));
}

/// As above, but the replacement's block is not journaled yet when the copy is sized (the feed
/// waits for 3 confirmations): the first transaction is neither in the pool nor mined, so the
/// target's balance at the head (after the sale) is not used; the journal's own figure is, and
/// the copy still sells 60% of ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_detection_when_a_pending_sell_is_replaced_and_mined_before_the_feed_reads_it_then_sized_before_it() {
    let (anvil, _dir, mut d, hold) = sell_sizing_held(3).await;

    // FAST buys 1,000 (mined at once, confirmed 3 blocks later): we buy 100.
    let (ex, data) = settlement_of(Generation::V2, FAST, true, 21, (1_000 * ONE, 400 * ONE), 1);
    send(&anvil, ex, &data).await;
    anvil.set_balance(FAST, 21, 1_000 * ONE).await;
    wait_for(20, "the buy copied and confirmed", async || {
        anvil.mine(1).await;
        rows_of(&d, FAST).into_iter().find(|r| r["status"] == "executed" && r["provisional"] == false)
    })
    .await;

    // The replacement is one block deep: not journaled yet.
    sell_replaced_while_held(&anvil, &d, &hold).await;

    sale_released_sells_sixty_percent(&d, &hold).await;
    assert_eq!(d.stop().code(), Some(0));
}

/// The node stops serving its pool (its answer times out) while a sighted settlement is dropped:
/// the followed settlement is still looked up by itself, so the sighting is orphaned, not left
/// standing (a copy waiting its turn would otherwise be sent for a trade that never happened).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_detection_when_the_pool_cannot_be_read_then_a_dropped_sighting_is_still_orphaned() {
    let (anvil, proxy, _dir, d) = sightings_through_a_proxy().await;
    let (ex, data) = settlement(Generation::V2, FAST, 11, 100 * ONE, 40 * ONE, 1);
    let tx = send(&anvil, ex, &data).await;
    wait_for(20, "the sighting", async || rows_of(&d, FAST).into_iter().next()).await;
    proxy.refuse_pool(true);
    anvil.raw("anvil_dropTransaction", json!([tx])).await;
    let row = wait_for(30, "the sighting orphaned", async || {
        anvil.mine(1).await;
        rows_of(&d, FAST).into_iter().find(|r| r["reason"] == "orphaned")
    })
    .await;
    assert_eq!(row["status"], "withdrawn", "{row}");
    assert_eq!(d.executions_for(&tx), 0);
}

/// A daemon watching FAST through a proxy in front of anvil, its sightings journaled and left to
/// their blocks (trigger `confirmed`), blocks mined by hand.
async fn sightings_through_a_proxy() -> (Anvil, crate::support::capped_rpc::CappedRpc, tempfile::TempDir, Daemon) {
    let anvil = Anvil::start().await;
    install_exchange(&anvil, V2_EXCHANGE).await;
    let proxy = crate::support::capped_rpc::CappedRpc::start(&anvil.http_url(), u64::MAX).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &proxy.url, "", &wallets(&[(FAST, "fast", true)], 0.1));
    d.start_with(&[&ON_SIGHT[..], &[("POLYCOPY_DETECTION__TRIGGER", "confirmed")][..]].concat());
    d.wait_live().await;
    anvil.raw("evm_setAutomine", json!([false])).await;
    (anvil, proxy, dir, d)
}

/// A settlement of FAST sighted, then sent again by the operator (the same match, a second
/// transaction), which takes the sighting over: (the first, the resubmission).
async fn resubmitted(anvil: &Anvil, d: &Daemon) -> (B256, B256) {
    let (ex, data) = settlement(Generation::V2, FAST, 11, 100 * ONE, 40 * ONE, 1);
    let first = send(anvil, ex, &data).await;
    wait_for(20, "the sighting", async || rows_of(d, FAST).into_iter().next()).await;
    let again = send(anvil, ex, &data).await;
    wait_for(20, "the resubmission took the fill over", async || {
        rows_of(d, FAST).into_iter().find(|r| r["fill"].as_str().unwrap().starts_with(&again.to_string()))
    })
    .await;
    (first, again)
}

/// The operator resubmits a pending settlement (the same match, a second transaction); the first
/// one is mined and the resubmission dropped (its match was filled) while the chain feed is
/// behind. The fill is not reported as a trade that never happened: the failed resubmission waits
/// for the feed, and the first transaction's block confirms the fill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_detection_when_a_resubmission_fails_because_the_first_was_mined_then_the_fill_is_not_orphaned() {
    let (anvil, proxy, _dir, d) = sightings_through_a_proxy().await;
    let (first, again) = resubmitted(&anvil, &d).await;
    let under = |tx: B256, provisional: bool| {
        rows_of(&d, FAST)
            .into_iter()
            .find(|r| r["fill"].as_str().unwrap().starts_with(&tx.to_string()) && r["provisional"] == provisional)
    };
    proxy.hold_logs(true);
    anvil.raw("anvil_dropTransaction", json!([again])).await;
    wait_for(30, "the failed resubmission decided", async || {
        anvil.mine(1).await;
        (d.log().contains("a resubmitted settlement failed") || !d.events("orphaned").is_empty()).then_some(())
    })
    .await;
    assert!(d.events("orphaned").is_empty(), "{:?}", d.events("orphaned"));
    proxy.hold_logs(false);
    wait_for(30, "the fill confirmed by the first transaction's block", async || under(first, false)).await;
    assert!(d.events("orphaned").is_empty() && d.events("unorphaned").is_empty(), "{:?}", d.events("orphaned"));
    assert_eq!(rows_of(&d, FAST).len(), 1, "one fill");
}

/// As above, but both transactions are dropped: nothing will ever confirm the match, so the failed
/// resubmission is orphaned at once, the feed behind or not (a copy waiting its turn must not
/// leave for a trade that never happened).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_detection_when_a_resubmission_and_the_first_are_both_dropped_then_orphaned_at_once() {
    let (anvil, proxy, _dir, d) = sightings_through_a_proxy().await;
    let (first, again) = resubmitted(&anvil, &d).await;
    proxy.hold_logs(true);
    for tx in [again, first] {
        anvil.raw("anvil_dropTransaction", json!([tx])).await;
    }
    let row = wait_for(30, "the sighting orphaned, the feed held", async || {
        anvil.mine(1).await;
        rows_of(&d, FAST).into_iter().find(|r| r["reason"] == "orphaned")
    })
    .await;
    assert_eq!(row["status"], "withdrawn", "{row}");
    proxy.hold_logs(false);
}

/// A settlement sighted in the pool, then the daemon restarted with pending detection off while
/// the transaction was dropped: nothing follows the pool any more, so the sighting is an orphan
/// at start (never copied, the target's position given back), not provisional for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_detection_when_turned_off_after_a_sighting_then_the_sighting_is_an_orphan() {
    let (anvil, _dir, mut d) = fast_on_sight(&[("POLYCOPY_DETECTION__TRIGGER", "confirmed")], 0).await;
    anvil.raw("evm_setAutomine", json!([false])).await;
    let (ex, data) = settlement(Generation::V2, FAST, 11, 100 * ONE, 40 * ONE, 1);
    let tx = send(&anvil, ex, &data).await;
    let seen = wait_for(20, "the sighting", async || rows_of(&d, FAST).into_iter().next()).await;
    assert_eq!((seen["status"].as_str(), seen["provisional"].as_bool()), (Some("pending"), Some(true)), "{seen}");
    d.stop();
    anvil.raw("anvil_dropTransaction", json!([tx])).await;
    d.env.retain(|(k, _)| !k.starts_with("POLYCOPY_DETECTION__"));
    d.start();
    d.wait_live().await;
    let row = rows_of(&d, FAST).into_iter().next().unwrap();
    assert_eq!((row["status"].as_str(), row["reason"].as_str()), (Some("withdrawn"), Some("orphaned")), "{row}");
    assert!(d.log().contains("pending detection is off: sightings of an earlier run are orphans"), "{}", d.log());
    assert_eq!(d.executions_for(&tx), 0);
}

/// The target buys and then sells half of it, both still in the pool (trigger pending): the SELL
/// is sized against a balance that holds the pending BUY, so half of our copies are sold, not all
/// (read at the head alone, the balance before the sale is 0: "it sold all it had").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_detection_when_a_pending_buy_then_a_pending_sell_then_the_sell_counts_the_buy() {
    let (anvil, _dir, d) = fast_on_sight(&[], 0).await;
    // Balances are read from a token contract (the stand-in): FAST holds none of token 31 yet.
    anvil.install_balances().await;
    anvil.raw("evm_setAutomine", json!([false])).await;
    let (ex, data) = settlement_of(Generation::V2, FAST, true, 31, (1_000 * ONE, 400 * ONE), 1);
    send(&anvil, ex, &data).await;
    wait_for(20, "the pending buy copied", async || rows_of(&d, FAST).into_iter().find(|r| r["status"] == "executed"))
        .await;
    let (ex, data) = settlement_of(Generation::V2, FAST, false, 31, (500 * ONE, 200 * ONE), 2);
    send(&anvil, ex, &data).await;
    let sell = wait_for(20, "the pending sell decided", async || {
        rows_of(&d, FAST).into_iter().find(|r| r["side"] == "SELL" && r["status"] != "pending")
    })
    .await;
    assert_eq!((sell["status"].as_str(), sell["shares"].as_str()), (Some("executed"), Some("50")), "{sell}");
}

/// FAST's row of the fill in transaction `tx`, once journaled.
fn fast_row(d: &Daemon, tx: B256) -> Option<Value> {
    rows_of(d, FAST).into_iter().find(|r| r["fill"].as_str().unwrap().starts_with(&tx.to_string()))
}

/// With `detection.pending_max_order_usdc` at the 1 USDC minimum order, a copy on sight is capped:
/// one the cap leaves at 2 shares for 1.00 USDC is copied before the block, and its block adds
/// nothing; one the cap would leave under the minimum (3.33 shares at 0.30: 0.999 USDC) is not
/// refused but left to its block, which copies it on the target's own rules (10 shares).
/// Refused on sight, the mined log would find the refusal on the fill's row: never copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_detection_when_the_pending_cap_alone_refuses_a_sighting_then_its_block_copies_it() {
    // No slippage: the limit is the target's price, so 1 USDC buys whole lots at 0.50, not at 0.30.
    let extra = [("POLYCOPY_DETECTION__PENDING_MAX_ORDER_USDC", "1"), ("POLYCOPY_COPY__MAX_SLIPPAGE_BPS", "0")];
    let (anvil, _dir, mut d) = fast_on_sight(&extra, 0).await;
    anvil.raw("evm_setAutomine", json!([false])).await;

    // FAST buys 100 at 0.50: our 10 capped to 2 (1.00 USDC), copied while in the pool.
    let (ex, data) = settlement(Generation::V2, FAST, 11, 100 * ONE, 50 * ONE, 1);
    let capped = send(&anvil, ex, &data).await;
    let row =
        wait_for(20, "the capped copy on sight", async || fast_row(&d, capped).filter(|r| r["status"] == "executed"))
            .await;
    assert!(receipt(&anvil, capped).await.is_null(), "copied before the block");
    assert_eq!((row["shares"].as_str(), row["triggered_by"].as_str()), (Some("2"), Some("pending")), "{row}");
    anvil.mine(1).await;
    let row =
        wait_for(20, "the capped copy confirmed", async || fast_row(&d, capped).filter(|r| r["provisional"] == false))
            .await;
    assert_eq!((row["status"].as_str(), row["shares"].as_str()), (Some("executed"), Some("2")), "{row}");
    assert_eq!(d.executions_for(&capped), 1, "the mined log added no second copy");

    // FAST buys 100 at 0.30: capped, 3.33 shares for 0.999 USDC (under the minimum); uncapped, 10.
    let (ex, data) = settlement(Generation::V2, FAST, 12, 100 * ONE, 30 * ONE, 3);
    let left = send(&anvil, ex, &data).await;
    let row = wait_for(20, "the sighting's copy decided", async || {
        fast_row(&d, left).filter(|r| r["status"] != "pending" || d.log().contains("its block decides it"))
    })
    .await;
    assert_eq!(
        (row["status"].as_str(), row["triggered_by"].as_str(), row["provisional"].as_bool()),
        (Some("pending"), None, Some(true)),
        "refused for the pending cap alone, the trade would never be copied: {row}"
    );
    assert!(receipt(&anvil, left).await.is_null(), "still in the pool");
    assert_eq!(d.executions_for(&left), 0, "nothing copied before the block");

    // Its block copies it, on the target's own rules, once.
    anvil.mine(1).await;
    let row =
        wait_for(20, "the copy by its block", async || fast_row(&d, left).filter(|r| r["status"] != "pending")).await;
    assert_eq!(
        (row["status"].as_str(), row["shares"].as_str(), row["triggered_by"].as_str(), row["provisional"].as_bool()),
        (Some("executed"), Some("10"), Some("chain"), Some(false)),
        "{row}"
    );
    assert_eq!(d.executions_for(&left), 1);
    assert_eq!(d.executions_for(&capped), 1);
    assert_eq!(d.stop().code(), Some(0));
}
