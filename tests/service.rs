//! What systemd and monitoring see: the sd_notify protocol on a real unix datagram socket, and
//! `/health` and `/metrics` over HTTP.

mod support;

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, address};
use support::http::http_get;
use support::*;

const A: Address = address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
const C: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");

/// The daemon speaks sd_notify: READY=1 once the feed is live, WATCHDOG=1 periodically, no more
/// watchdog pings once the chain feed is stuck (node gone), and STOPPING=1 on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_sd_notify_when_run_under_systemd_then_ready_watchdog_stopping() {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g2 = got.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(n) = sock.recv(&mut buf) {
                g2.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    });
    let count = |needle: &str| got.lock().unwrap().iter().filter(|m| m.lines().any(|l| l == needle)).count();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    d.env.push(("NOTIFY_SOCKET".into(), sock_path.display().to_string()));
    d.env.push(("WATCHDOG_USEC".into(), "400000".into())); // pings every 200 ms
    d.start();
    wait_for(20, "READY=1", async || (count("READY=1") == 1).then_some(())).await;
    assert!(d.log().contains("chain feed live"), "READY only after the feed is live");
    wait_for(10, "watchdog pings", async || (count("WATCHDOG=1") >= 3).then_some(())).await;

    // feed_stall_s is 3 in the test settings: pings stop a little after the node is gone. Each
    // watchdog tick that does not ping logs it: three such ticks after the count are the marker that
    // nothing more was sent.
    let skipped = || d.log().matches("watchdog not fed").count();
    let before_drop = skipped();
    drop(anvil); // the node is gone: the feed can no longer read the chain
    wait_for(20, "the watchdog to stop", async || (skipped() > before_drop).then_some(())).await;
    let before = count("WATCHDOG=1");
    let ticks = skipped();
    wait_for(10, "three more watchdog ticks", async || (skipped() >= ticks + 3).then_some(())).await;
    assert_eq!(count("WATCHDOG=1"), before, "no watchdog pings while the feed is stuck");

    assert!(d.stop().success());
    assert_eq!(count("STOPPING=1"), 1);
}

/// After a scripted run, `/metrics` parses as Prometheus text and its counters match the journal;
/// `/health` is healthy, flips to unhealthy (503) when the breaker trips, and neither leaks a secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_metrics_and_health_when_scripted_run_then_match_journal() {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "a", true)], 0.1));
    d.env.push(("TELEGRAM_BOT_TOKEN".into(), "123456:SECRET-BOT-TOKEN".into()));
    d.env.push(("TELEGRAM_CHAT_ID".into(), "1".into()));
    d.env.push(("TELEGRAM_API_URL".into(), "http://127.0.0.1:9".into())); // unreachable: errors carry the URL
    d.env.push(("POLYGON_RPC_FALLBACK_URLS".into(), format!("{}/secret-api-key", anvil.http_url())));
    d.start();
    d.wait_live().await;
    let base = d.http_base().await;

    anvil.emit(&Fill::v2(1, A, C, true, 1, 100 * ONE, 50 * ONE)).await; // executed
    anvil.emit(&Fill::v2(2, A, C, true, 2, 100 * ONE, 40 * ONE)).await; // executed
    anvil.emit(&Fill::v2(3, A, C, false, 3, 100 * ONE, 40 * ONE)).await; // no position: rejected
    let rows = wait_for(20, "3 finished fills", async || {
        let r = d.trades();
        (r.len() == 3 && r.iter().all(|x| x["status"] != "pending")).then_some(r)
    })
    .await;

    let (code, body) = http_get(&base, "/metrics").await;
    assert_eq!(code, 200);
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("{name} missing in\n{body}"))
    };
    let executed = with_status(&rows, "executed").len() as f64;
    let rejected = with_status(&rows, "rejected").len() as f64;
    assert_eq!(value("polycopy_fills_seen_total", None), rows.len() as f64);
    assert_eq!(value("polycopy_copies_executed_total", None), executed);
    assert_eq!(value("polycopy_copies_rejected_total", Some(("reason", "no_position"))), rejected);
    assert_eq!(value("polycopy_breaker_tripped", None), 0.0);
    assert_eq!(value("polycopy_exposure_usdc", None), 9.0); // 10 × 0.5 + 10 × 0.4
    assert!(scrape.samples.iter().any(|s| s.metric == "polycopy_detection_latency_seconds"), "{body}");

    let (code, health) = http_get(&base, "/health").await;
    assert_eq!(code, 200, "{health}");
    let h: serde_json::Value = serde_json::from_str(&health).unwrap();
    // Everything is fine but Telegram, which this test points at a dead port: degraded, still HTTP 200.
    assert_eq!(h["status"], "degraded", "{health}");
    let tg = h["checks"].as_array().unwrap().iter().find(|c| c["name"] == "telegram").unwrap().clone();
    assert_eq!(tg["status"], "degraded", "{health}");
    assert_eq!(h["checks"].as_array().unwrap().len(), 4);

    let (c, _, _) = d.run_cli(&["halt", "--reason", "maintenance"]);
    assert_eq!(c, 0);
    let (code, health) = wait_for(5, "unhealthy", async || {
        let (code, body) = http_get(&base, "/health").await;
        (code == 503).then_some((code, body))
    })
    .await;
    assert_eq!(code, 503);
    assert!(health.contains("\"breaker\"") && health.contains("maintenance"), "{health}");
    let (_, metrics) = http_get(&base, "/metrics").await;
    assert!(metrics.contains("polycopy_breaker_tripped 1"));
    for body in [&metrics, &health, &d.log()] {
        assert!(!body.contains("SECRET-BOT-TOKEN") && !body.contains("secret-api-key"), "a secret leaked");
    }
    let (code, _) = http_get(&base, "/nope").await;
    assert_eq!(code, 404);
}
