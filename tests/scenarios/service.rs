//! What systemd and monitoring see: the sd_notify protocol on a real unix datagram socket, and
//! `/health` and `/metrics` over HTTP.

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::http::http_get;
use crate::support::*;
use alloy::primitives::{Address, address};

const A: Address = address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
const C: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");

/// The daemon speaks sd_notify: READY=1 once it is set up, even while the chain does not answer (a
/// provider outage must not become a systemd restart loop), WATCHDOG=1 all along while it is alive
/// and trying, and STOPPING=1 on SIGTERM. Meanwhile `/health` turns unhealthy (503) naming the
/// cause and the variable to check, the outage is alerted once, and its end is announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_sd_notify_when_chain_down_at_start_then_ready_pings_and_health_says_why() {
    let anvil = Anvil::start().await;
    let proxy = Proxy::start(format!("127.0.0.1:{}", anvil.port).parse().unwrap()).await;
    proxy.set_down(true);
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
    let mut d = Daemon::new(dir.path(), &format!("http://{}", proxy.addr), "", &wallets(&[(A, "a", true)], 0.1));
    d.env.push(("NOTIFY_SOCKET".into(), sock_path.display().to_string()));
    d.env.push(("WATCHDOG_USEC".into(), "400000".into())); // pings every 200 ms
    d.start();
    wait_for(20, "READY=1", async || (count("READY=1") == 1).then_some(())).await;
    assert!(!d.log().contains("chain feed live"), "ready while the chain is still down");
    wait_for(10, "watchdog pings", async || (count("WATCHDOG=1") >= 3).then_some(())).await;

    // feed_stall_s is 3 in the test settings: past it, /health is unhealthy and says why.
    let base = d.http_base().await;
    let health = wait_for(20, "an unhealthy /health", async || {
        let (code, body) = http_get(&base, "/health").await;
        (code == 503).then_some(body)
    })
    .await;
    assert!(health.contains("no chain sync since the start"), "{health}");
    let alert = wait_for(10, "the outage alert", async || {
        d.events("error").into_iter().find(|e| e.contains("has not answered"))
    })
    .await;
    assert!(alert.contains("POLYGON_RPC_URL"), "{alert}");
    assert!(d.log().contains("check POLYGON_RPC_URL"), "the log names the variable");
    let pings = count("WATCHDOG=1");
    wait_for(10, "pings during the outage", async || (count("WATCHDOG=1") >= pings + 3).then_some(())).await;

    proxy.set_down(false);
    d.wait_live().await;
    let back = wait_for(20, "the end of the outage", async || {
        d.events("error").into_iter().find(|e| e.contains("answers again"))
    })
    .await;
    // How long it lasted: this test's seconds, not the time since 1970.
    let lasted: u64 =
        back.split("after ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(lasted < 300, "{back}");
    let (code, _) = http_get(&base, "/health").await;
    assert_eq!(code, 200);
    assert_eq!(count("READY=1"), 1, "READY is sent once");

    assert!(d.stop().success());
    assert_eq!(count("STOPPING=1"), 1);
}

/// A chain endpoint whose name does not resolve: the log gives the DNS cause, not only "error
/// sending request", and names the variable to fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_chain_when_endpoint_name_does_not_resolve_then_log_gives_dns_cause() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), "https://polygon-rpc.invalid:8545", "", &wallets(&[(A, "a", true)], 0.1));
    d.start();
    let line = wait_for(20, "the connection failure", async || {
        d.log().lines().find(|l| l.contains("chain sync failed") || l.contains("cannot connect")).map(str::to_owned)
    })
    .await;
    assert!(line.contains("dns error") || line.contains("failed to lookup"), "{line}");
    assert!(line.contains("POLYGON_RPC_URL"), "{line}");
    assert!(d.stop().success());
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

    // The counters follow the reports, which reach the report thread a moment after the journal.
    let (executed, rejected) =
        (with_status(&rows, "executed").len() as f64, with_status(&rows, "rejected").len() as f64);
    let body = wait_for(10, "the copies counted in /metrics", async || {
        let (code, body) = http_get(&base, "/metrics").await;
        assert_eq!(code, 200);
        let counted = |name: &str| body.lines().any(|l| l.split_once(' ').is_some_and(|(k, _)| k == name));
        (counted("polycopy_copies_executed_total")
            && body.contains(&format!("polycopy_copies_executed_total {executed}"))
            && counted("polycopy_copies_rejected_total{reason=\"no_position\"}"))
        .then_some(body)
    })
    .await;
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
