//! `polycopy vet` on history planted on anvil: three wallets (a slow profitable one, one whose edge
//! lives inside one block, a quick round-tripper), figures checked against tables computed by hand
//! below; the second run reads from the journal's cache; bad input gets a clear message.

use crate::support::clob::{FakeClob, Token};
use crate::support::*;
use alloy::primitives::{Address, address};
use serde_json::Value;

const SLOW: Address = address!("5105105105105105105105105105105105105105");
const EDGE: Address = address!("ed9eed9eed9eed9eed9eed9eed9eed9eed9eed9e");
const FLIP: Address = address!("f11bf11bf11bf11bf11bf11bf11bf11bf11bf11b");
const OTHER: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");
const DAY: u64 = 86_400;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Plants the three wallets' fills from `p` (unix seconds) on; returns nothing, the tables below
/// say what each must give.
async fn plant(anvil: &Anvil, p: u64) {
    // SLOW: buys 100 of token 11 at 0.40, sells them 5 h later at 0.60; buys 100 of token 12 at
    // 0.30 and holds (its market resolves Yes).
    anvil.emit_at(p, &Fill::v2(1, SLOW, OTHER, true, 11, 100 * ONE, 40 * ONE)).await;
    anvil.emit_at(p + 5 * 3600, &Fill::v2(2, SLOW, OTHER, false, 11, 100 * ONE, 60 * ONE)).await;
    anvil.emit_at(p + 6 * 3600, &Fill::v2(3, SLOW, OTHER, true, 12, 100 * ONE, 30 * ONE)).await;
    // EDGE: buys 100 at 0.40; a block later it takes 10 more at 0.404 off the book (the market
    // moved: a marketable copy would have paid that) and at once sells all 110 at 0.41.
    let q = p + 7 * 3600;
    anvil.emit_at(q, &Fill::v2(4, EDGE, OTHER, true, 21, 100 * ONE, 40 * ONE)).await;
    anvil.emit_at(q + 2, &Fill::v2(5, EDGE, V2_EXCHANGE, true, 21, 10 * ONE, 4_040_000)).await;
    anvil.emit_at(q + 3, &Fill::v2(6, EDGE, OTHER, false, 21, 110 * ONE, 45_100_000)).await;
    // FLIP: six round trips, each a buy of 50 at 0.50 sold a minute later at 0.501.
    let r = p + 8 * 3600;
    for k in 0..6u8 {
        let t = r + u64::from(k) * 600;
        anvil.emit_at(t, &Fill::v2(10 + 2 * k, FLIP, OTHER, true, 31, 50 * ONE, 25 * ONE)).await;
        anvil.emit_at(t + 60, &Fill::v2(11 + 2 * k, FLIP, OTHER, false, 31, 50 * ONE, 25_050_000)).await;
    }
    // Bury it all under the cache's depth.
    anvil.mine(70).await;
}

fn vet(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["vet"];
    all.extend_from_slice(args);
    d.run_cli(&all)
}

fn vet_json(d: &Daemon, who: &str) -> Value {
    let (code, out, err) = vet(d, &[who, "--days", "2", "--delay-ms", "2000", "--json"]);
    assert_eq!(code, 0, "vet {who}: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The figures that matter, as (field, value) pairs.
fn figures(v: &Value) -> Vec<(&'static str, Value)> {
    [
        "fills",
        "copies",
        "refusals",
        "priced_by",
        "invested_usdc",
        "realized_usdc",
        "open_pnl_usdc",
        "win_rate_pct",
        "max_drawdown_usdc",
        "median_hold_ms",
        "trades_per_hour",
        "round_trip_pct",
        "high_frequency",
        "concentration_pct",
        "markets_resolved",
    ]
    .into_iter()
    .map(|k| (k, v[k].clone()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_vet_when_history_is_planted_then_figures_equal_hand_computed_tables() {
    let genesis = now() - 3 * DAY;
    let anvil = Anvil::start_at(genesis).await;
    plant(&anvil, genesis + 2 * DAY).await;
    let clob = FakeClob::start(OTHER).await;
    clob.token(12, Token { closed: true, payout: Some("1"), ..Token::open(false) });
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(
        dir.path(),
        &anvil.http_url(),
        "",
        &wallets(&[(SLOW, "slow", false), (EDGE, "edge", false), (FLIP, "flipper", false)], 0.1),
    );
    d.env.retain(|(k, _)| k != "GAMMA_URL");
    d.env.push(("GAMMA_URL".into(), clob.url.clone()));
    use serde_json::json;

    // SLOW, copied 10 % with a 2 % cap and no later fill to price by: buy 10 at 0.408 (4.08),
    // sell 10 at 0.588 (5.88): +1.80; buy 10 of token 12 at 0.306 (3.06), resolved at 1: +6.94.
    let slow = vet_json(&d, "slow");
    assert_eq!(
        figures(&slow),
        vec![
            ("fills", json!(3)),
            ("copies", json!(3)),
            ("refusals", json!({})),
            ("priced_by", json!({"slippage_cap": 3})),
            ("invested_usdc", json!("7.14")),
            ("realized_usdc", json!("8.74")),
            ("open_pnl_usdc", json!("0")),
            ("win_rate_pct", json!(100)),
            ("max_drawdown_usdc", json!("0")),
            ("median_hold_ms", json!(5 * 3_600_000)),
            ("trades_per_hour", json!("0.5")),
            ("round_trip_pct", json!(0)),
            ("high_frequency", json!(false)),
            // 4.08 of 7.14 in token 11.
            ("concentration_pct", json!(57)),
            ("markets_resolved", json!(1)),
        ]
    );
    assert_eq!(slow["cached_blocks"], 0, "the first run reads the chain");
    // No ERC-1155 contract on this chain to read its balance before the period from: said, and
    // its sale sized from the period alone.
    assert_eq!((slow["held_before_read"].as_u64(), slow["held_before_unknown"].as_u64()), (Some(0), Some(1)));

    // EDGE, copied 2 s late: we buy 10 at its next fill's 0.404 (4.04); its 1-share buy is under
    // the 1 USDC minimum; we sell at the cap under 0.41 (0.4018): 4.018 − 4.04 = −0.022.
    let edge = vet_json(&d, "edge");
    assert_eq!(
        figures(&edge),
        vec![
            ("fills", json!(3)),
            ("copies", json!(2)),
            ("refusals", json!({"below_minimum": 1})),
            ("priced_by", json!({"next_fill": 1, "slippage_cap": 1})),
            ("invested_usdc", json!("4.04")),
            ("realized_usdc", json!("-0.022")),
            ("open_pnl_usdc", json!("0")),
            ("win_rate_pct", json!(0)),
            ("max_drawdown_usdc", json!("0.022")),
            ("median_hold_ms", json!(3_000)),
            // Three fills, counted over at least an hour.
            ("trades_per_hour", json!("3")),
            ("round_trip_pct", json!(100)),
            // One quick sale is not a pattern.
            ("high_frequency", json!(false)),
            ("concentration_pct", json!(100)),
            ("markets_resolved", json!(0)),
        ]
    );

    // FLIP: each round trip buys 5 at 0.51 (2.55) and sells at 0.49098 (2.4549): −0.0951, six times.
    let flip = vet_json(&d, "flipper");
    assert_eq!(
        figures(&flip),
        vec![
            ("fills", json!(12)),
            ("copies", json!(12)),
            ("refusals", json!({})),
            ("priced_by", json!({"slippage_cap": 12})),
            ("invested_usdc", json!("15.3")),
            ("realized_usdc", json!("-0.5706")),
            ("open_pnl_usdc", json!("0")),
            ("win_rate_pct", json!(0)),
            ("max_drawdown_usdc", json!("0.5706")),
            ("median_hold_ms", json!(60_000)),
            // 12 fills in 51 minutes, counted over an hour.
            ("trades_per_hour", json!("12")),
            ("round_trip_pct", json!(100)),
            ("high_frequency", json!(true)),
            ("concentration_pct", json!(100)),
            ("markets_resolved", json!(0)),
        ]
    );

    // The second run reads the buried blocks from the journal's cache and says the same.
    let again = vet_json(&d, "slow");
    assert_eq!(figures(&again), figures(&slow));
    let span = again["to_block"].as_u64().unwrap() - again["from_block"].as_u64().unwrap() + 1;
    assert!(again["cached_blocks"].as_u64().unwrap() >= span - 64, "{again}");

    // The text report and the chart.
    let png = dir.path().join("flipper.png");
    let (code, out, err) = vet(&d, &["flipper", "--days", "2", "--chart", png.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    for want in [
        "FLAG high-frequency",
        "realized     -0.5706 USDC",
        "priced: 12 by slippage_cap",
        "refused      none",
        "× 0.1 of its shares, sells copied",
        "held before  1 token(s) it sold could not be read",
    ] {
        assert!(out.contains(want), "{want:?} missing:\n{out}");
    }
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"), "a PNG chart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_vet_when_the_wallet_held_shares_before_the_period_then_its_sale_is_copied_in_proportion() {
    const HOLD: Address = address!("401d401d401d401d401d401d401d401d401d401d");
    let genesis = now() - 3 * DAY;
    let anvil = Anvil::start_at(genesis).await;
    anvil.install_balances().await;
    // Before the period it holds 300 of token 41; in it, it buys 100 at 0.40 and 5 h later sells
    // 100 at 0.60: a quarter of its 400.
    anvil.set_balance(HOLD, 41, 300 * ONE).await;
    let p = genesis + 2 * DAY;
    anvil.emit_at(p, &Fill::v2(1, HOLD, OTHER, true, 41, 100 * ONE, 40 * ONE)).await;
    anvil.emit_at(p + 5 * 3600, &Fill::v2(2, HOLD, OTHER, false, 41, 100 * ONE, 60 * ONE)).await;
    anvil.mine(70).await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(HOLD, "holder", false)], 0.1));

    // We buy 10 at the cap (0.408) and sell a quarter of them, 2.5, at 0.588: +0.45 realized; 7.5
    // stay open, valued at 0.60: +1.44. Sized from the period alone it would sell all 10 (+1.80).
    let v = vet_json(&d, "holder");
    assert_eq!((v["held_before_read"].as_u64(), v["held_before_unknown"].as_u64()), (Some(1), Some(0)), "{v}");
    let sold: Vec<&Value> = v["copy_list"].as_array().unwrap().iter().filter(|c| c["side"] == "SELL").collect();
    assert_eq!(sold.len(), 1, "{v}");
    assert_eq!(sold[0]["shares"], "2.5", "{v}");
    assert_eq!((v["realized_usdc"].as_str(), v["open_pnl_usdc"].as_str()), (Some("0.45"), Some("1.44")), "{v}");
    let (code, out, err) = vet(&d, &["holder", "--days", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("for 1 token(s) it sold: its sales are copied in proportion"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_vet_when_input_is_bad_then_it_says_what_is_wrong() {
    let genesis = now() - 3 * DAY;
    let anvil = Anvil::start_at(genesis).await;
    plant(&anvil, genesis + 2 * DAY).await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(SLOW, "slow", false)], 0.1));

    let (code, _, err) = vet(&d, &["nobody"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("no target labelled \"nobody\"") && err.contains("labels there: slow"), "{err}");

    let (code, _, err) = vet(&d, &["0x12345"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("is not an address: expected 0x followed by 40 hex digits"), "{err}");
    // A private key pasted by mistake, with or without 0x, is never repeated.
    let key = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    for arg in [key.to_owned(), format!("0x{key}")] {
        let (code, out, err) = vet(&d, &[&arg]);
        assert_eq!(code, 64, "{err}");
        assert!(err.contains("the length of a private key"), "{err}");
        assert!(!format!("{out}{err}").contains(&key[8..40]), "the key was repeated: {out}{err}");
    }
    // Nor one a digit short, taken for a label: a long label is named by its length.
    let (code, out, err) = vet(&d, &[&key[1..]]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("a string of 63 characters") && !format!("{out}{err}").contains(&key[8..40]), "{err}");

    let (code, _, err) = vet(&d, &["0x000000000000000000000000000000000000dEaD", "--days", "2"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("made no fills") && err.contains("proxy/Safe address"), "{err}");
    // The same for machines.
    let (code, out, _) = vet(&d, &["0x000000000000000000000000000000000000dEaD", "--days", "2", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!((code, v["error"].as_str()), (1, Some("no_fills")), "{v}");

    // The node began three days ago: thirty days is more history than it has.
    let (code, _, err) = vet(&d, &["slow", "--days", "30"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("keeps blocks only from") && err.contains("--days 2 or fewer"), "{err}");

    std::fs::write(dir.path().join("rules.json"), r#"{"sizing": {"mode": "multiplier", "multiplier": "x"}}"#).unwrap();
    let (code, _, err) = vet(&d, &["slow", "--days", "2", "--rules", "rules.json"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--rules rules.json") && err.contains("multiplier"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_targets_suggest_when_the_leaderboard_lists_traders_then_each_is_vetted_and_add_appends_disabled() {
    let genesis = now() - 3 * DAY;
    let anvil = Anvil::start_at(genesis).await;
    plant(&anvil, genesis + 2 * DAY).await;
    let clob = FakeClob::start(OTHER).await;
    clob.token(12, Token { closed: true, payout: Some("1"), ..Token::open(false) });
    let dead = address!("000000000000000000000000000000000000dEaD");
    let last = i64::try_from(now()).unwrap() - 3600;
    clob.leaderboard(&[
        (SLOW, "Slow And/Steady", "1250.5", "90000", last),
        (FLIP, "flipper", "900", "500000", last),
        (EDGE, "edgy", "800", "1000", last),
        (dead, "", "10", "10", last),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(EDGE, "edge", false)], 0.1));
    d.env.retain(|(k, _)| k != "GAMMA_URL");
    d.env.push(("GAMMA_URL".into(), clob.url.clone()));
    d.env.push(("DATA_API_URL".into(), clob.url.clone()));

    // Gamma unreachable: no market can be settled, a loser would be valued at its last price. A
    // vet that incomplete adds nobody, and says so.
    let before = std::fs::read_to_string(dir.path().join("wallets.json")).unwrap();
    let out = d
        .cmd(&["targets", "suggest", "--days", "2", "--limit", "4", "--add"])
        .env("GAMMA_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("INCOMPLETE: market results unknown") && stdout.contains("nothing added"), "{stdout}");
    assert_eq!(std::fs::read_to_string(dir.path().join("wallets.json")).unwrap(), before);

    let (code, out, err) = d.run_cli(&["targets", "suggest", "--days", "2", "--limit", "4", "--add", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let c = v["candidates"].as_array().unwrap();
    assert_eq!(c.len(), 4, "{v}");
    // The same figures `vet` gives (the table in the test above).
    assert_eq!((c[0]["rank"].as_i64(), c[0]["vet"]["realized_usdc"].as_str()), (Some(1), Some("8.74")), "{v}");
    assert_eq!(c[0]["last_trade_ms"], last * 1000);
    assert_eq!(c[1]["vet"]["high_frequency"], true, "{v}");
    assert_eq!(c[2]["listed"], true, "{v}");
    assert!(c[3]["problem"].as_str().unwrap().contains("no fills"), "{v}");
    let worth: Vec<bool> = c.iter().map(|x| x["worth_adding"].as_bool().unwrap()).collect();
    assert_eq!(worth, vec![true, false, false, false]);
    // Gamma's result, unchecked on chain, stays out of the journal the daemon settles from; what
    // the market is goes in.
    let journal = rusqlite::Connection::open(dir.path().join("journal.db")).unwrap();
    let payout: Option<i64> =
        journal.query_row("SELECT payout FROM markets WHERE token_id = '12'", [], |r| r.get(0)).unwrap();
    assert_eq!(payout, None, "vet wrote no result");
    // Only the slow wallet is appended, disabled, named after its user name made safe.
    assert_eq!(v["added"], serde_json::json!(["SlowAndSteady"]));
    let text = std::fs::read_to_string(dir.path().join("wallets.json")).unwrap();
    let w: Value = serde_json::from_str(&text).unwrap();
    let list = w["wallets"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{text}");
    assert_eq!(list[0]["label"], "edge", "what was there stays");
    assert_eq!(list[1]["address"], SLOW.to_string().to_lowercase());
    assert_eq!((list[1]["label"].as_str(), list[1]["enabled"].as_bool()), (Some("SlowAndSteady"), Some(false)));
    assert!(list[1]["comment"].as_str().unwrap().contains("realized 8.74 USDC"), "{text}");
    assert!(list[1]["comment"].as_str().unwrap().contains("too few copies to judge"), "three copies: {text}");
    let (code, out, err) = d.run_cli(&["check-config", "--offline"]);
    assert_eq!(code, 0, "the file still validates: {out}{err}");

    // Run again: the slow wallet is listed now, nothing more is added.
    let (code, out, err) = d.run_cli(&["targets", "suggest", "--days", "2", "--limit", "4", "--add"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("nothing added"), "{out}");
    assert!(out.contains("FLAG high-frequency"), "{out}");
    assert!(out.contains("FLAG few copies"), "{out}");

    // A file in the target_wallets format cannot hold disabled entries: said before any vetting.
    std::fs::write(dir.path().join("wallets.json"), format!(r#"{{"target_wallets": ["{EDGE}"]}}"#)).unwrap();
    let (code, out, err) = d.run_cli(&["targets", "suggest", "--days", "2", "--limit", "4", "--add"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("no top-level \"wallets\" list") && err.contains("nothing was vetted"), "{err}");
    assert!(!out.contains("FLAG"), "nothing was vetted: {out}");
}

/// The chain-read figure for BENCHMARKS.md: 10,000 fills of one wallet (100 blocks of 100, a block
/// a minute, 20 tokens, two buys for one sale), `vet` run twice (chain, then cache), timed, with
/// peak memory from `/usr/bin/time` when there is one. Ignored by default:
/// `cargo nextest run --release --test scenarios vet:: --run-ignored only --no-capture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load figure for BENCHMARKS.md"]
async fn load_vet_reads_10000_fills_from_the_chain() {
    let genesis = now() - 3 * DAY;
    let anvil = Anvil::start_at(genesis).await;
    let start = genesis + 2 * DAY;
    anvil.raw("evm_setAutomine", serde_json::json!([false])).await;
    for b in 0..100u64 {
        for i in 0..100u64 {
            let n = b * 100 + i;
            let buy = n % 3 != 2;
            let shares = (50 + n % 50) * ONE;
            let usdc = shares / 1_000_000 * (300_000 + (n * 7_919) % 400_000);
            let f = Fill::v2((n % 250) as u8, SLOW, OTHER, buy, 1 + n % 20, shares, usdc);
            anvil.raw("eth_sendTransaction", serde_json::json!([{"from": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "to": f.exchange, "data": f.calldata(), "gas": "0x100000"}])).await;
        }
        anvil.raw("evm_mine", serde_json::json!([start + b * 60])).await;
    }
    anvil.raw("evm_setAutomine", serde_json::json!([true])).await;
    anvil.mine(70).await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(SLOW, "slow", false)], 0.1));
    let timed = std::path::Path::new("/usr/bin/time").exists();
    for run in ["chain", "cache"] {
        let t = std::time::Instant::now();
        let mut c = if timed {
            let mut c = std::process::Command::new("/usr/bin/time");
            c.arg("-v").arg(bin());
            c.current_dir(&d.dir).args([
                "--config",
                "polycopy.toml",
                "--wallets",
                "wallets.json",
                "--db",
                "journal.db",
            ]);
            c.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
            c.envs(d.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            c
        } else {
            d.cmd(&[])
        };
        let out = c.args(["vet", "slow", "--days", "2", "--json"]).output().unwrap();
        let secs = t.elapsed().as_secs_f64();
        let (code, stdout, stderr) = output(out);
        assert_eq!(code, 0, "{stdout}{stderr}");
        let v: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["fills"], 10_000);
        let rss =
            stderr.lines().find(|l| l.contains("Maximum resident set size")).unwrap_or("peak memory not measured");
        println!(
            "vet of 10,000 fills from the {run}: {secs:.2} s, cached blocks {}, {}",
            v["cached_blocks"],
            rss.trim()
        );
    }
}

/// In live mode the copier refuses every fill on an Exchange V3 market (`v3_unsupported`): vet
/// leaves them out there, saying so, rather than counting copies live trading never makes. Paper
/// copies them, and so does its vet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_vet_when_live_and_a_wallet_trades_on_exchange_v3_then_those_fills_are_left_out() {
    let genesis = now() - 3 * DAY;
    let anvil = Anvil::start_at(genesis).await;
    let p = genesis + 2 * DAY;
    anvil.emit_at(p, &Fill::v2(1, SLOW, OTHER, true, 11, 100 * ONE, 40 * ONE)).await;
    anvil
        .emit_at(p + 60, &Fill { exchange: V3_EXCHANGE, ..Fill::v2(2, SLOW, OTHER, true, 12, 100 * ONE, 30 * ONE) })
        .await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(SLOW, "slow", false)], 0.1));
    let paper = vet_json(&d, "slow");
    assert_eq!((paper["fills"].as_u64(), paper["copies"].as_u64()), (Some(2), Some(2)), "{paper}");
    d.set_top("mode = \"live\"");
    let (code, out, err) = vet(&d, &["slow", "--days", "2", "--delay-ms", "2000", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("Exchange V3") && err.contains("left out"), "{err}");
    let live: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((live["fills"].as_u64(), live["copies"].as_u64()), (Some(1), Some(1)), "{live}");
}
