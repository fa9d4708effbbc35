//! Warning alerts, end to end: each fires through the notifier to Telegram when its condition holds,
//! and not again within its cool-down (checked after several later checks, counted by
//! `polycopy_warning_checks_total`); `polycopy alert --test` reaches Telegram through POST /alert.

use crate::support::http::http_get;
use crate::support::telegram::FakeTelegram;
use crate::support::*;
use alloy::primitives::{Address, address};

const A: Address = address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
const C: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");
const TOKEN: &str = "123456789:TEST-SECRET-TOKEN-abcdef";
const OP: i64 = 1001;

async fn checks(d: &Daemon) -> u64 {
    let (_, body) = http_get(&d.http_base().await, "/metrics").await;
    body.lines()
        .find_map(|l| l.strip_prefix("polycopy_warning_checks_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until `n` more warning checks ran: the marker that nothing more was going to be sent.
async fn after_checks(d: &Daemon, n: u64) {
    let start = checks(d).await;
    wait_for(30, "later warning checks", async || (checks(d).await >= start + n).then_some(())).await;
}

fn warned(tg: &FakeTelegram, code: &str) -> usize {
    tg.sent_to(OP).iter().filter(|m| m.text.contains(&format!("WARNING ({code})"))).count()
}

async fn daemon_with(tg: &FakeTelegram, anvil: &Anvil, dir: &std::path::Path, alerts: &[&str]) -> Daemon {
    let mut d = Daemon::new(dir, &anvil.http_url(), "", &wallets(&[(A, "whale", true)], 0.1));
    d.with_telegram(tg, &OP.to_string());
    for line in ["check_every_s = 1", "cooldown_min = 60"].iter().chain(alerts) {
        let (k, v) = line.split_once(" = ").unwrap();
        d.env.push((format!("POLYCOPY_ALERTS__{}", k.to_ascii_uppercase()), v.to_owned()));
    }
    d
}

/// Disk, drawdown and win rate each warn once, then stay quiet within the cool-down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_warnings_when_thresholds_crossed_then_each_sent_once_per_cooldown() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    // More free disk than any machine has; a round trip that loses; a small daily limit.
    let mut d = daemon_with(
        &tg,
        &anvil,
        dir.path(),
        &["disk_min_free_mb = 1000000000", "win_rate_min_pct = 100", "win_rate_window = 1", "drawdown_pct = 80"],
    )
    .await;
    let cfg = d.dir.join("polycopy.toml");
    let text =
        std::fs::read_to_string(&cfg).unwrap().replace("daily_loss_limit_usdc = 1000", "daily_loss_limit_usdc = 1.2");
    std::fs::write(&cfg, text).unwrap();
    d.start();
    d.wait_live().await;
    wait_for(20, "the disk warning", async || (warned(&tg, "disk_low") == 1).then_some(())).await;

    // The target buys at 0.50 and sells at 0.40: our copy loses 1 USDC of the 1.2 allowed (83 %).
    anvil.emit(&Fill::v2(1, A, C, true, 7, 100 * ONE, 50 * ONE)).await;
    anvil.emit(&Fill::v2(2, A, C, false, 7, 100 * ONE, 40 * ONE)).await;
    wait_for(30, "both copies", async || (with_status(&d.trades(), "executed").len() == 2).then_some(())).await;
    wait_for(20, "the win-rate warning", async || (warned(&tg, "win_rate") == 1).then_some(())).await;
    wait_for(20, "the drawdown warning", async || (warned(&tg, "drawdown") == 1).then_some(())).await;
    assert_eq!(d.status()["breaker"]["tripped"], false, "a warning is not a halt");

    after_checks(&d, 3).await;
    for code in ["disk_low", "win_rate", "drawdown"] {
        assert_eq!(warned(&tg, code), 1, "{code} repeats only after its cool-down");
    }
    assert_eq!(d.events("warning").len(), 3, "{:?}", d.events("warning"));
    let (_, metrics) = http_get(&d.http_base().await, "/metrics").await;
    assert!(metrics.contains("polycopy_warnings_total{kind=\"disk_low\"} 1"), "{metrics}");
    assert!(metrics.contains("polycopy_targets_copying 1"), "{metrics}");
    let _ = d.stop();
}

/// No target fill for the window while a target is copied: warned once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_warning_when_no_fill_for_the_window_then_sent_once() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = daemon_with(&tg, &anvil, dir.path(), &["no_fill_minutes = 1"]).await;
    d.start();
    d.wait_live().await;
    wait_for(120, "the no-fill warning", async || (warned(&tg, "no_fills") == 1).then_some(())).await;
    let m = tg.sent_to(OP).into_iter().find(|m| m.text.contains("WARNING (no_fills)")).unwrap();
    assert!(m.text.contains("1 target(s) are copied"), "{}", m.text);
    after_checks(&d, 3).await;
    assert_eq!(warned(&tg, "no_fills"), 1);
}

/// Live: a CLOB that answers slowly, with a clock 30 s ahead of ours, is warned about, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_warnings_when_clob_slow_and_clock_skewed_then_both_sent_once() {
    use crate::support::live::*;
    let mut l = live().await;
    let tg = FakeTelegram::start(TOKEN).await;
    l.d.with_telegram(&tg, &OP.to_string());
    for (k, v) in [("CHECK_EVERY_S", "1"), ("CLOB_SLOW_MS", "150"), ("CLOCK_MAX_OFFSET_MS", "2000")] {
        l.d.env.push((format!("POLYCOPY_ALERTS__{k}"), v.to_owned()));
    }
    l.clob.clock(30, 300);
    start_live(&mut l).await;
    wait_for(30, "the slow-CLOB warning", async || (warned(&tg, "clob_slow") == 1).then_some(())).await;
    wait_for(30, "the clock warning", async || (warned(&tg, "clock") == 1).then_some(())).await;
    let m = tg.sent_to(OP).into_iter().find(|m| m.text.contains("WARNING (clock)")).unwrap();
    assert!(m.text.contains("off the CLOB"), "{}", m.text);
    after_checks(&l.d, 3).await;
    assert_eq!((warned(&tg, "clob_slow"), warned(&tg, "clock")), (1, 1));
}

/// `polycopy alert --test` goes through POST /alert and the notifier to Telegram; with no daemon it
/// says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_alert_test_when_daemon_runs_then_reaches_telegram() {
    let anvil = Anvil::start().await;
    let tg = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = daemon_with(&tg, &anvil, dir.path(), &[]).await;
    d.start();
    d.wait_live().await;
    let (code, out, err) = d.run_cli(&["alert", "--test"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_for(20, "the test alert on Telegram", async || {
        tg.sent_to(OP).into_iter().find(|m| m.text.contains("ALERT: TEST alert from `polycopy alert --test`"))
    })
    .await;
    let (code, _, err) = d.run_cli(&["alert"]);
    assert_eq!(code, 64, "{err}");
    let _ = d.stop();
    let (code, _, err) = d.run_cli(&["alert", "--test"]);
    assert_eq!(code, 3, "{err}");
}
