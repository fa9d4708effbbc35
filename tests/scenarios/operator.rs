//! The operator's own actions, run as an operator would: `close` (paper and against the fake CLOB),
//! allowed while halted and stopped by a halt raised after it started; `pause-market` obeyed by
//! copies (exits still copied), shown in status, persisted across restarts.

use std::process::Stdio;

use crate::support::*;
use alloy::primitives::{Address, address};
use serde_json::Value;

const A: Address = address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
const C: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");

fn positions(d: &Daemon) -> Vec<Value> {
    d.status()["positions"].as_array().cloned().unwrap_or_default()
}

/// Two positions; a halt closes nothing; `close --all` while halted sells both at market (journaled
/// like any order, reported), leaves the breaker as it was, and a second close finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_close_all_when_halted_then_everything_sold_and_still_halted() {
    let Running { anvil, dir: _dir, d } = running(&wallets(&[(A, "whale", true)], 0.1)).await;
    anvil.emit(&Fill::v2(1, A, C, true, 7, 100 * ONE, 50 * ONE)).await;
    anvil.emit(&Fill::v2(2, A, C, true, 8, 200 * ONE, 80 * ONE)).await;
    wait_for(30, "two copies", async || (with_status(&d.trades(), "executed").len() == 2).then_some(())).await;

    let (code, _, err) = d.run_cli(&["halt", "--reason", "3am incident"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(positions(&d).len(), 2, "a halt never closes anything by itself");

    let (code, out, err) = d.run_cli(&["close", "--all"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 SELL order(s) sent at market"), "{out}");
    assert_eq!(out.matches("sold ").count(), 2, "both outcomes followed: {out}");
    wait_for(10, "the book empty", async || positions(&d).is_empty().then_some(())).await;
    let st = d.status();
    assert_eq!(st["breaker"]["tripped"], true, "a close does not resume trading");
    let rows = d.trades();
    let closes: Vec<&Value> = rows.iter().filter(|r| r["wallet"] == format!("{:#x}", Address::ZERO)).collect();
    assert_eq!(closes.len(), 2, "each close order is journaled like any order: {rows:?}");
    for r in &closes {
        assert_eq!(r["status"], "executed", "{r}");
        assert_eq!(r["side"], "SELL", "{r}");
    }
    // At the last prices (the test settings simulate no paper slippage).
    let sold: Vec<(&str, &str)> =
        closes.iter().map(|r| (r["shares"].as_str().unwrap(), r["price"].as_str().unwrap())).collect();
    assert!(sold.contains(&("10", "0.5")) && sold.contains(&("20", "0.4")), "{sold:?}");
    let reported = wait_for(10, "the close reported", async || {
        let r = d.events("operator");
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(reported.len(), 1, "the close is reported once: {reported:?}");

    let (code, out, _) = d.run_cli(&["close", "--all"]);
    assert_eq!(code, 0);
    assert!(out.contains("nothing to sell"), "{out}");
}

/// Two targets in one outcome, one after the other: A's copies are closed by the operator, then B
/// opens the position anew. A's exit finds none of its copies (the close sold them) and sells
/// nothing: B's copies are B's to sell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_close_when_another_target_opens_the_outcome_again_then_the_first_ones_exit_sells_none_of_it() {
    const B: Address = address!("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    let anvil = Anvil::start().await;
    anvil.install_balances().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true), (B, "b", true)], 0.1));
    d.start();
    d.wait_live().await;
    // A buys 100 → we buy 10; the operator closes the outcome.
    anvil.emit(&Fill::v2(1, A, C, true, 77, 100 * ONE, 50 * ONE)).await;
    wait_for(30, "A's copy", async || (with_status(&d.trades(), "executed").len() == 1).then_some(())).await;
    let (code, out, err) = d.run_cli(&["close", "77"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_for(10, "the book empty", async || positions(&d).is_empty().then_some(())).await;
    // B buys 100 → we buy 10: B's.
    anvil.emit(&Fill::v2(2, B, C, true, 77, 100 * ONE, 50 * ONE)).await;
    wait_for(30, "B's copy", async || (with_status(&d.trades(), "executed").len() == 3).then_some(())).await;
    // A sells all it had: none of A's copies is left.
    anvil.set_balance(A, 77, 100 * ONE).await;
    anvil.emit(&Fill::v2(3, A, C, false, 77, 100 * ONE, 50 * ONE)).await;
    let rows = wait_for(20, "A's exit decided", async || {
        let r = d.trades();
        (r.len() == 4 && r[3]["status"] != "pending").then_some(r)
    })
    .await;
    assert_eq!((rows[3]["status"].as_str(), rows[3]["reason"].as_str()), (Some("rejected"), Some("no_position")));
    assert_eq!(positions(&d)[0]["shares"], "10", "B's copies are still held");
    // B sells all: B's 10 are sold.
    anvil.set_balance(B, 77, 100 * ONE).await;
    anvil.emit(&Fill::v2(4, B, C, false, 77, 100 * ONE, 50 * ONE)).await;
    wait_for(20, "B's exit", async || positions(&d).is_empty().then_some(())).await;
    assert!(d.stop().success());
}

/// Bad input is refused with the reason; a close with no daemon says how to get one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_close_when_bad_market_or_no_daemon_then_clear_refusal() {
    let Running { anvil: _anvil, dir: _dir, mut d } = running(&wallets(&[(A, "whale", true)], 0.1)).await;
    let (code, _, err) = d.run_cli(&["close", "0x1234"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("not a condition id"), "{err}");
    let (code, _, err) = d.run_cli(&["close", "no-such-market"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("knows no token of market no-such-market"), "{err}");
    let (code, _, err) = d.run_cli(&["close"]);
    assert_eq!(code, 2, "market or --all is required: {err}");
    d.stop();
    let (code, _, err) = d.run_cli(&["close", "--all"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("Start it"), "{err}");
}

/// A pause the journal is too busy to confirm in time (its write held on the writer's thread, a
/// slow disk) is said to be not confirmed, and is still both journaled and enforced once the write
/// goes through. Before, the reply's wait gave up on it: written, shown in `status`, and never
/// given to the supervisor, which went on copying buys into the market until a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_pause_market_when_the_journal_is_slow_then_still_enforced_once_written() {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "whale", true)], 0.1));
    let hold = dir.path().join("hold-pause");
    d.start_with(&[("POLYCOPY_FAULT", "hold_market_pause_write"), ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap())]);
    d.wait_live().await;
    std::fs::write(&hold, "").unwrap();
    let (code, out, err) = d.run_cli(&["pause-market", "7"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("not confirmed within 5 s") && err.contains("carried out once it answers"), "{err}");
    std::fs::remove_file(&hold).unwrap();
    wait_for(10, "the pause reported", async || {
        d.events("operator").into_iter().find(|m| m.contains("market token 7 paused"))
    })
    .await;
    anvil.emit(&Fill::v2(1, A, C, true, 7, 100 * ONE, 50 * ONE)).await;
    // An unpaused token is the marker that the paused one was decided.
    anvil.emit(&Fill::v2(2, A, C, true, 9, 100 * ONE, 50 * ONE)).await;
    let rows = wait_for(30, "both decided", async || {
        let t = d.trades();
        (t.len() == 2 && t.iter().all(|r| r["status"] != "pending")).then_some(t)
    })
    .await;
    assert_eq!((rows[0]["status"].as_str(), rows[0]["reason"].as_str()), (Some("rejected"), Some("market_paused")));
    assert_eq!(rows[1]["status"], "executed");
}

/// A market paused by its slug, and a BUY whose market cannot be looked up (Gamma does not
/// answer): it may be the paused market, so it is refused as paused, and the refusal says why.
/// Once the pause is lifted, the next BUY is copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_pause_market_when_a_buys_market_is_unknown_then_a_pause_by_slug_still_refuses_it() {
    let Running { anvil, dir: _dir, d } = running(&wallets(&[(A, "whale", true)], 0.1)).await;
    let (code, out, err) = d.run_cli(&["pause-market", "will-it-rain"]);
    assert_eq!(code, 0, "{out}{err}");
    anvil.emit(&Fill::v2(1, A, C, true, 7, 100 * ONE, 50 * ONE)).await;
    let rows = wait_for(30, "the buy decided", async || {
        let t = d.trades();
        (t.len() == 1 && t[0]["status"] != "pending").then_some(t)
    })
    .await;
    assert_eq!((rows[0]["status"].as_str(), rows[0]["reason"].as_str()), (Some("rejected"), Some("market_paused")));
    let said = wait_for(10, "the refusal reported", async || {
        d.events("rejected").into_iter().find(|m| m.contains("will-it-rain"))
    })
    .await;
    assert!(said.contains("not known yet"), "{said}");
    let (code, out, err) = d.run_cli(&["resume-market", "will-it-rain"]);
    assert_eq!(code, 0, "{out}{err}");
    anvil.emit(&Fill::v2(2, A, C, true, 7, 100 * ONE, 50 * ONE)).await;
    wait_for(30, "the next buy copied", async || (with_status(&d.trades(), "executed").len() == 1).then_some(())).await;
}

/// Gamma does not answer, but the journal knows the markets from before (their condition and
/// slug never change): a pause by slug still recognises its market's tokens, a token the journal
/// learnt after the pause included, and every other market's buys go on. Without the journal's
/// word, every buy would be refused as "perhaps" the paused market.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_pause_market_when_gamma_is_down_then_the_journal_still_names_the_markets() {
    let Running { anvil, dir: _dir, d } = running(&wallets(&[(A, "whale", true)], 0.1)).await;
    let put = |token: u64, condition: &str, slug: &str| {
        let c = rusqlite::Connection::open(d.dir.join("journal.db")).unwrap();
        c.execute(
            "INSERT INTO markets (token_id, condition_id, question, outcome, neg_risk, tick, min_size, closed, end_ms, \
             payout, fetched_at_ms, slug) VALUES (?1, ?2, 'Q', 'Yes', 0, NULL, 0, 0, NULL, NULL, 0, ?3)",
            rusqlite::params![token.to_string(), format!("0x{}", condition.repeat(32)), slug],
        )
        .unwrap();
    };
    put(8, "11", "will-it-rain");
    put(9, "22", "sunny");
    let (code, out, err) = d.run_cli(&["pause-market", "will-it-rain"]);
    assert_eq!(code, 0, "{out}{err}");
    // Learnt after the pause: not among its tokens, named by the journal all the same.
    put(10, "11", "will-it-rain");
    anvil.emit(&Fill::v2(1, A, C, true, 10, 100 * ONE, 50 * ONE)).await;
    anvil.emit(&Fill::v2(2, A, C, true, 9, 100 * ONE, 50 * ONE)).await;
    let rows = wait_for(30, "both decided", async || {
        let t = d.trades();
        (t.len() == 2 && t.iter().all(|r| r["status"] != "pending")).then_some(t)
    })
    .await;
    let by_token = |t: &str| rows.iter().find(|r| r["token_id"] == t).cloned().unwrap();
    assert_eq!(by_token("10")["reason"], "market_paused", "{rows:?}");
    assert_eq!(by_token("9")["status"], "executed", "another market's buy goes on: {rows:?}");
    let said = wait_for(10, "the refusal reported", async || {
        d.events("rejected").into_iter().find(|m| m.contains("will-it-rain"))
    })
    .await;
    assert!(!said.contains("not known yet"), "recognised, not guessed: {said}");
}

/// A paused market refuses buys with its own code, still copies exits, shows in status, survives a
/// restart (stored in the journal when no daemon runs), and copies buys again once resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_pause_market_when_paused_then_buys_refused_exits_copied_until_resumed() {
    let Running { anvil, dir: _dir, mut d } = running(&wallets(&[(A, "whale", true)], 0.1)).await;
    anvil.emit(&Fill::v2(1, A, C, true, 7, 100 * ONE, 50 * ONE)).await;
    wait_for(30, "the first copy", async || (with_status(&d.trades(), "executed").len() == 1).then_some(())).await;

    let (code, out, err) = d.run_cli(&["pause-market", "7"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("paused token 7"), "{out}");
    let st = d.status();
    assert_eq!(st["paused_markets"][0]["market"], "token 7", "{st}");
    let (_, text, _) = d.run_cli(&["status"]);
    assert!(text.contains("market PAUSED (no buys, exits copied): token 7 by cli"), "{text}");
    wait_for(10, "the pause reported", async || {
        d.events("operator").into_iter().find(|m| m.contains("market token 7 paused") && m.contains("by cli"))
    })
    .await;

    anvil.emit(&Fill::v2(2, A, C, true, 7, 100 * ONE, 50 * ONE)).await;
    // An unpaused token is the marker that the paused one was decided.
    anvil.emit(&Fill::v2(3, A, C, true, 9, 100 * ONE, 50 * ONE)).await;
    let rows = wait_for(30, "both decided", async || {
        let t = d.trades();
        (t.len() == 3 && t.iter().all(|r| r["status"] != "pending")).then_some(t)
    })
    .await;
    assert_eq!((rows[1]["status"].as_str(), rows[1]["reason"].as_str()), (Some("rejected"), Some("market_paused")));
    assert_eq!(rows[2]["status"], "executed");
    // The target sells half: the exit is copied although the market is paused.
    anvil.emit(&Fill::v2(4, A, C, false, 7, 100 * ONE, 50 * ONE)).await;
    wait_for(30, "the exit", async || (d.trades().get(3).is_some_and(|r| r["status"] == "executed")).then_some(()))
        .await;

    // With the daemon stopped the pause is lifted in the journal (exit 3 says no daemon), and a
    // new pause by slug is stored; the next start obeys the journal.
    d.stop();
    let (code, out, _) = d.run_cli(&["resume-market", "7"]);
    assert_eq!(code, 3);
    assert!(out.contains("token 7: buys are copied again"), "{out}");
    d.start();
    d.wait_live().await;
    anvil.emit(&Fill::v2(5, A, C, true, 7, 100 * ONE, 50 * ONE)).await;
    wait_for(30, "buys copied again", async || {
        (d.trades().get(4).is_some_and(|r| r["status"] == "executed")).then_some(())
    })
    .await;
    assert_eq!(d.status()["paused_markets"].as_array().map(Vec::len), Some(0));
}

/// Live: a close while halted sends one SELL to the CLOB, within the slippage cap and in whole
/// cents, and books what the exchange matched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_close_when_live_and_halted_then_sells_within_the_cap_and_says_partial_fills() {
    use crate::support::live::*;
    let mut l = live().await;
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(30, "the buy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    let (code, _, err) = l.d.run_cli(&["halt"]);
    assert_eq!(code, 0, "{err}");

    // The book takes half: the close says so and fails; closing again sells the rest.
    l.clob.script(&[crate::support::clob::Play::Partial(50)]);
    let (code, out, err) = l.d.run_cli(&["close", &STD_TOKEN.to_string()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("PARTLY filled: sold 5 of 10 shares"), "{out}");
    let (code, out, err) = l.d.run_cli(&["close", &STD_TOKEN.to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("sold 5 shares"), "{out}");
    let sells: Vec<_> = l.clob.orders().into_iter().filter(|o| o.side == "SELL").collect();
    assert_eq!(sells.len(), 2, "{sells:?}");
    // The last price is the target's 0.50; the cap (2 %) puts the limit at 0.49.
    assert!(sells.iter().all(|o| o.price >= 0.49 - 1e-9), "{sells:?}");
    let mut sizes: Vec<f64> = sells.iter().map(|o| o.shares).collect();
    sizes.sort_by(f64::total_cmp);
    assert_eq!(sizes, [5.0, 10.0], "{sells:?}");
    assert!(l.clob.refused().is_empty(), "{:?}", l.clob.refused());
    assert!(positions(&l.d).is_empty());
    assert_eq!(l.d.status()["breaker"]["tripped"], true);

    // close --all against the CLOB: a standard and a neg-risk position, each sold once under its
    // own exchange's domain, still halted.
    let (code, _, err) = l.d.run_cli(&["resume"]);
    assert_eq!(code, 0, "{err}");
    l.anvil.emit(&buy(2, STD_TOKEN)).await;
    l.anvil.emit(&buy(3, NEG_TOKEN)).await;
    wait_for(30, "two more buys", async || (with_status(&l.d.trades(), "executed").len() == 5).then_some(())).await;
    let (code, _, err) = l.d.run_cli(&["halt"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = l.d.run_cli(&["close", "--all"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches("sold 10 shares").count(), 2, "{out}");
    let sells: Vec<_> = l.clob.orders().into_iter().filter(|o| o.side == "SELL").collect();
    assert_eq!(sells.len(), 4, "{sells:?}");
    assert!(sells.iter().any(|o| o.token == NEG_TOKEN.to_string() && o.neg_risk), "{sells:?}");
    assert!(l.clob.refused().is_empty(), "{:?}", l.clob.refused());
    assert!(positions(&l.d).is_empty());
}

/// A halt stored in the journal while no daemon answered, by a CLI that could not read the
/// secrets (an operator's user not allowed the root-only environment file), with the key pasted
/// in its reason: the daemon that reads it there cleans it before it logs or journals an event
/// of it. Before, only the messages to Telegram were cleaned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_operator_when_a_halt_stored_offline_carries_the_key_then_the_daemon_never_logs_it() {
    use crate::support::live::*;
    let mut l = live().await;
    start_live(&mut l).await;
    assert_eq!(l.d.stop().code(), Some(0));
    let mut halt = l.d.cmd(&["halt", "--reason", &format!("pasted {KEY} by mistake")]);
    halt.env_remove("PRIVATE_KEY");
    let out = halt.output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("journal"), "{out:?}");
    start_live(&mut l).await;
    let bare = KEY.trim_start_matches("0x");
    wait_for(20, "the halt read at the start", async || {
        l.d.log().contains("pasted <redacted> by mistake").then_some(())
    })
    .await;
    let log = l.d.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(bare)).collect();
    assert!(lines.is_empty(), "the key is in the log: {lines:#?}");
    let c = rusqlite::Connection::open(l.d.dir.join("journal.db")).unwrap();
    let leaked: i64 =
        c.query_row("SELECT COUNT(*) FROM events WHERE instr(lower(message), ?1) > 0", [bare], |r| r.get(0)).unwrap();
    assert_eq!(leaked, 0, "the key is in the journal's events");
    assert_eq!(l.d.stop().code(), Some(0));
}

/// `incident` writes one owner-only file with the evidence (status, health, breaker history,
/// events, trades, settings, versions) and no secret: not the key, the bot token, the alert token
/// or an RPC URL's API key, even where one of them reached the journal's events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_incident_when_written_then_evidence_without_any_secret() {
    use crate::support::live::*;
    use std::os::unix::fs::PermissionsExt as _;
    const BOT: &str = "987654321:SECRET-bot-token-xyz";
    const RPC_KEY: &str = "secretapikey0123456789";
    let mut l = live().await;
    l.d.env.push(("TELEGRAM_BOT_TOKEN".into(), BOT.into()));
    l.d.env.push(("TELEGRAM_CHAT_ID".into(), "1001".into()));
    l.d.env.push(("POLYGON_RPC_FALLBACK_URLS".into(), format!("https://rpc.example/v2/{RPC_KEY}")));
    start_live(&mut l).await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(30, "the buy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    // An operator pastes a secret into a halt reason: it reaches the journal's events.
    let (code, _, err) = l.d.run_cli(&["halt", "--reason", &format!("leaked {BOT} and {KEY}")]);
    assert_eq!(code, 0, "{err}");
    let alert_token = std::fs::read_to_string(l.d.dir.join("journal.db.alert-token")).unwrap();
    // The daemon cleans a pasted secret from the reason before it stores, logs or sends it.
    let reason = l.d.status()["breaker"]["reason"].as_str().unwrap().to_owned();
    assert_eq!(reason, "leaked <redacted> and <redacted>");
    let (code, _, err) = l.d.run_cli(&["alert", &format!("pasted {}", alert_token.trim())]);
    assert_eq!(code, 0, "{err}");
    wait_for(10, "the alert", async || l.d.events("alert").into_iter().find(|m| m.contains("pasted <redacted>"))).await;
    assert!(!l.d.log().contains(BOT) && !l.d.log().contains(alert_token.trim()), "no secret in the log");

    let out = l.d.dir.join("incident.txt");
    let (code, stdout, err) = l.d.run_cli(&["incident", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("incident.txt"), "{stdout}");
    let text = std::fs::read_to_string(&out).unwrap();
    for section in [
        "===== status (polycopy status --json)",
        "===== health (GET /health",
        "breaker history",
        "===== settings files",
        "===== wallets.json",
        "===== environment",
        "log lines (journald)",
        "polycopy 0.",
    ] {
        assert!(text.contains(section), "missing {section:?}");
    }
    assert!(text.contains("\"tripped\": true"), "the status shows the halt");
    assert!(text.contains("TELEGRAM_BOT_TOKEN: set") && text.contains("PRIVATE_KEY: set"));
    for secret in [BOT, KEY, KEY.trim_start_matches("0x"), RPC_KEY, alert_token.trim()] {
        assert!(!text.contains(secret), "a secret is in the bundle");
    }
    assert!(text.contains("leaked <redacted>"), "the event is kept, its secret cut");
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (code, _, err) = l.d.run_cli(&["incident", "--out", out.to_str().unwrap()]);
    assert_ne!(code, 0, "an existing bundle is never overwritten: {err}");
    // One bad variable (often why an incident is written) does not turn the scrubbing off for the
    // others; and a key this process does not know, pasted into wallets.json, is masked there.
    const OTHER_KEY: &str = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    l.d.set_top(&format!("# pasted by mistake: {KEY} {BOT}"));
    let wallets = std::fs::read_to_string(l.d.dir.join("wallets.json")).unwrap();
    std::fs::write(l.d.dir.join("wallets.json"), format!("{wallets}\n\"{OTHER_KEY}\"\n")).unwrap();
    let second = l.d.dir.join("incident-2.txt");
    let run = l.d.cmd(&["incident", "--out", second.to_str().unwrap()]).env("TELEGRAM_CHAT_ID", "me").output().unwrap();
    let (code, _, err) = crate::support::output(run);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&second).unwrap();
    for secret in [BOT, KEY, KEY.trim_start_matches("0x"), RPC_KEY, alert_token.trim(), OTHER_KEY] {
        assert!(!text.contains(secret), "a secret is in the bundle written with a bad variable");
    }
    assert!(text.contains("<64 hex digits masked>"), "the pasted key's place is shown");
}

/// Live: a close the operator started goes out whatever the trading state, but a halt raised
/// after it started stops it before its POST (its send is taken back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_close_when_halted_after_it_started_then_its_order_does_not_leave() {
    use crate::support::live::*;
    let (l, hold) = live_with_a_position_and_sends_held().await;

    let mut close = close_held_before_its_post(&l, &hold).await;
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "stop everything"]);
    assert_eq!(code, 0, "{out}{err}");
    std::fs::remove_file(&hold).unwrap();
    wait_for(20, "the close's send taken back, or sent", async || {
        let o = orders_in_journal(&l.d);
        (o.get(1).is_some_and(|o| o.1 == "signed" && o.2 == 0) || l.clob.posts().len() > 1).then_some(())
    })
    .await;
    assert_eq!(l.clob.posts().len(), 1, "only the copy's BUY reached the CLOB: {:?}", l.clob.posts());
    let _ = close.kill();
    let _ = close.wait();
}

/// Live: a halt raised while the close's orders wait for the journal (a slow disk) stops them: the
/// close was asked before the halt, and a halt stops every order approved before it. Before, the
/// halt count was read once the orders were journaled, so they went out while halted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_close_when_halted_while_it_is_journaled_then_its_order_does_not_leave() {
    use crate::support::live::*;
    let mut l = live().await;
    let hold = l.d.dir.join("hold-close");
    l.d.start_with(&[
        ("POLYCOPY_FAULT", "hold_before_close_journaled"),
        ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap()),
    ]);
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(30, "the buy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    std::fs::write(&hold, "").unwrap();
    let close =
        l.d.cmd(&["close", &STD_TOKEN.to_string()]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for(20, "the close waiting for the journal", async || {
        l.d.log().contains("fault injection: holding").then_some(())
    })
    .await;
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "stop everything"]);
    assert_eq!(code, 0, "{out}{err}");
    std::fs::remove_file(&hold).unwrap();
    let out = close.wait_with_output().unwrap();
    assert!(out.status.code().is_some(), "the close command ended");
    let row = wait_for(20, "the close decided", async || {
        l.d.trades().into_iter().find(|r| r["side"] == "SELL" && r["status"] != "pending")
    })
    .await;
    assert_eq!((row["status"].as_str(), row["reason"].as_str()), (Some("rejected"), Some("halted")), "{row}");
    assert!(orders_in_journal(&l.d).iter().all(|o| o.2 <= 1), "{:?}", orders_in_journal(&l.d));
    // A later copy, refused while halted, is the marker that nothing more was going to leave.
    l.anvil.emit(&buy(2, STD_TOKEN)).await;
    wait_for(20, "the next copy refused", async || l.d.trades().iter().any(|r| r["reason"] == "halted").then_some(()))
        .await;
    assert_eq!(l.clob.posts().len(), 1, "only the copy's BUY reached the CLOB: {:?}", l.clob.posts());
}

/// Live: a close held before its POST, then a halt, then the daemon killed (a stop that outwaits
/// its grace): after the restart, still halted, the close found again is only looked up. The
/// operator's close goes out in any trading state only in the run that started it; the halt
/// raised after it is the last word across a restart too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_close_when_halted_after_it_started_and_restarted_then_its_order_never_leaves() {
    let (mut l, hold) = live_with_a_position_and_sends_held().await;

    let close = close_held_before_its_post(&l, &hold).await;
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "stop everything"]);
    assert_eq!(code, 0, "{out}{err}");
    killed_with_the_close_held(&mut l, close, &hold);
    restarted_and_the_close_only_looked_up(&mut l).await;
    assert_eq!(l.d.status()["breaker"]["state"], "halted");
}

/// Live: halted first, then a close (allowed while halted) held before its POST, and the daemon
/// killed: after the restart, still halted, the close found again goes out, since it was started
/// after the halt in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_close_when_started_while_halted_and_restarted_then_it_still_goes_out() {
    let (mut l, hold) = live_with_a_position_and_sends_held().await;
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "closing out"]);
    assert_eq!(code, 0, "{out}{err}");
    // The close is stamped in whole seconds: it starts in a later second than the halt.
    a_new_second().await;

    let close = close_held_before_its_post(&l, &hold).await;
    killed_with_the_close_held(&mut l, close, &hold);

    l.d.start();
    l.d.wait_live().await;
    wait_for(30, "the close's SELL sent", async || (l.clob.posts().len() == 2).then_some(())).await;
    let r = wait_for(30, "the close booked", async || {
        l.d.trades().into_iter().nth(1).filter(|r| r["status"] == "executed")
    })
    .await;
    assert_eq!(r["side"], "SELL", "{r}");
    assert_eq!(l.d.status()["breaker"]["state"], "halted", "still halted");
}

/// Live: halted, then a close (allowed while halted) held before its POST, then a second halt
/// (trading already halted: it changes nothing else), and the daemon killed. After the restart
/// the close found again is only looked up: the later halt is journaled, so it stays the
/// operator's last word although the halt in force began before the close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_close_when_halted_again_after_it_started_and_restarted_then_its_order_never_leaves() {
    let (mut l, hold) = live_with_a_position_and_sends_held().await;
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "closing out"]);
    assert_eq!(code, 0, "{out}{err}");
    a_new_second().await;
    let close = close_held_before_its_post(&l, &hold).await;
    let (code, out, err) = l.d.run_cli(&["halt", "--reason", "no, stop the close too"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("already halted"), "{out}");
    killed_with_the_close_held(&mut l, close, &hold);
    restarted_and_the_close_only_looked_up(&mut l).await;
    let b = &l.d.status()["breaker"];
    assert_eq!(b["state"], "halted");
    assert_eq!(b["reason"], "closing out", "the first halt's reason stays: {b}");
}

/// The daemon killed (a stop that outwaits its grace) while the close's send is held.
fn killed_with_the_close_held(
    l: &mut crate::support::live::Live,
    mut close: std::process::Child,
    hold: &std::path::Path,
) {
    l.d.kill9();
    let _ = close.kill();
    let _ = close.wait();
    std::fs::remove_file(hold).unwrap();
}

/// Started again: the close found again is looked up, and nothing but the copy's BUY was sent.
async fn restarted_and_the_close_only_looked_up(l: &mut crate::support::live::Live) {
    let lookups = l.clob.requests("/data/order");
    l.d.start();
    l.d.wait_live().await;
    wait_for(30, "the close's order looked up after the restart, or sent", async || {
        (l.clob.requests("/data/order") >= lookups + 2 || l.clob.posts().len() > 1).then_some(())
    })
    .await;
    assert_eq!(l.clob.posts().len(), 1, "only the copy's BUY reached the CLOB: {:?}\n{}", l.clob.posts(), l.d.log());
}

/// Waits into a later second: a close is stamped in whole seconds.
async fn a_new_second() {
    let from = std::time::SystemTime::now();
    wait_for(5, "a new second", async || {
        (from.elapsed().unwrap() >= std::time::Duration::from_millis(1_100)).then_some(())
    })
    .await;
}

/// Live, with every send held before its POST while the returned file exists (it does not yet):
/// a target BUY copied, so we hold a position of the standard token.
async fn live_with_a_position_and_sends_held() -> (crate::support::live::Live, std::path::PathBuf) {
    use crate::support::live::*;
    let mut l = live().await;
    let hold = l.d.dir.join("hold-before-post");
    l.d.start_with(&[("POLYCOPY_FAULT", "hold_before_post"), ("POLYCOPY_FAULT_HOLD", hold.to_str().unwrap())]);
    l.d.wait_live().await;
    l.anvil.emit(&buy(1, STD_TOKEN)).await;
    wait_for(30, "the buy", async || (with_status(&l.d.trades(), "executed").len() == 1).then_some(())).await;
    (l, hold)
}

/// Starts `close` of the standard token with sends held (`hold` is created), and returns once its
/// SELL is counted and held before its POST.
async fn close_held_before_its_post(l: &crate::support::live::Live, hold: &std::path::Path) -> std::process::Child {
    use crate::support::live::*;
    std::fs::write(hold, "").unwrap();
    let close =
        l.d.cmd(&["close", &STD_TOKEN.to_string()]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for(20, "the close's SELL counted and held before its POST", async || {
        (l.d.log().contains("fault injection: holding") && orders_in_journal(&l.d).get(1).is_some_and(|o| o.2 == 1))
            .then_some(())
    })
    .await;
    close
}

/// A halted daemon that runs but no longer answers on its control socket (the file removed):
/// `resume` is refused (it would open trading from the journal, where a halt asked after it could
/// lose), and trading stays halted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_resume_when_the_running_daemon_does_not_answer_then_refused_and_still_halted() {
    let Running { anvil, dir: _dir, d } = running(&wallets(&[(A, "whale", true)], 0.1)).await;
    let (code, out, err) = d.run_cli(&["halt", "--reason", "look first"]);
    assert_eq!(code, 0, "{out}{err}");
    d.remove_control_socket();
    let (code, out, err) = d.run_cli(&["resume"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("not resumed") && err.contains("restart it"), "{out}{err}");
    anvil.emit(&Fill::v2(1, A, C, true, 7, 100 * ONE, 50 * ONE)).await;
    let r = wait_for(20, "the copy decided", async || d.trades().into_iter().find(|r| r["status"] != "pending")).await;
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("rejected"), Some("halted")), "{r}");
}

/// A daemon that runs but no longer answers on its control socket (the file removed) reads market
/// pauses only at its start: `pause-market` stores the pause, and says that the running daemon does
/// not know it (exit 4), never "no daemon is running".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_pause_market_when_the_running_daemon_does_not_answer_then_it_is_not_said_done() {
    let Running { anvil: _anvil, dir: _dir, d } = running(&wallets(&[(A, "whale", true)], 0.1)).await;
    d.remove_control_socket();
    let (code, out, err) = d.run_cli(&["pause-market", "7"]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(err.contains("does NOT know of this change until it restarts"), "{out}{err}");
    assert!(!err.contains("no daemon is running"), "{err}");
    assert!(out.contains("stored in the journal"), "{out}");
}
