//! The local dashboard in a real headless browser (Debian's Chromium): the page loads without a
//! console error, shows the planted positions and targets, refreshes in place, and a screenshot
//! is kept as a test artifact (target/test-artifacts/dashboard.png); a page reached through a
//! host name of its own (DNS rebinding) is refused, one the operator listed is served.

use std::process::Command;

use crate::support::*;
use alloy::primitives::{Address, address};

const A: Address = address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
const B: Address = address!("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
const C: Address = address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");

fn chromium() -> String {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return c.to_owned();
        }
    }
    panic!("a headless Chromium is needed for the dashboard test: apt-get install chromium (.ci/run does)");
}

/// Runs headless Chromium on `url` with `args`; returns (stdout, stderr).
fn browse(url: &str, args: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .arg("90")
        .arg(chromium())
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .args(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=4000"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_dashboard_when_opened_in_a_browser_then_positions_and_targets_without_errors() {
    let anvil = Anvil::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d =
        Daemon::new(dir.path(), &anvil.http_url(), "", &wallets(&[(A, "whale", true), (B, "shark", true)], 0.1));
    d.env.push(("POLYCOPY_ALERTS__CHECK_EVERY_S".into(), "1".into()));
    d.env.push(("POLYCOPY_HTTP__ALLOWED_HOSTS".into(), "listed.example".into()));
    d.start();
    d.wait_live().await;
    anvil.emit(&Fill::v2(1, A, C, true, 7, 100 * ONE, 50 * ONE)).await;
    anvil.emit(&Fill::v2(2, B, C, false, 9, 100 * ONE, 60 * ONE)).await;
    wait_for(20, "both decided", async || {
        let t = d.trades();
        (t.len() == 2 && t.iter().all(|r| r["status"] != "pending")).then_some(())
    })
    .await;
    let base = d.http_base().await;
    // The target figures are refreshed with the warning checks: wait for them on the page itself.
    wait_for(20, "the targets on the page", async || {
        let (_, body) = crate::support::http::http_get(&base, "/dashboard").await;
        body.contains("<td class=\"l\">whale</td><td>1</td>").then_some(())
    })
    .await;

    let url = format!("{base}/dashboard");
    let (dom, log) = browse(&url, &["--dump-dom"]);
    for want in [
        "polycopy · paper mode",
        "id=\"state\">active</span>",
        "<td class=\"l\">token 7</td><td>10</td>",
        "<td class=\"l\">whale</td><td>1</td>",
        "<td class=\"l\">shark</td><td>0</td><td>1</td>",
        "<td class=\"l\">shark</td><td>SELL</td>",
        "refused: no_position",
        "<svg id=\"pnl\"",
    ] {
        assert!(dom.contains(want), "missing {want:?} in the page:\n{dom}");
    }
    for bad in ["Uncaught", "Failed to load resource", "Refused to"] {
        assert!(!log.contains(bad), "the browser reported {bad:?}:\n{log}");
    }
    // The live part alone, as the page's refresh fetches it.
    let (code, part) = crate::support::http::http_get(&base, "/dashboard?part=live").await;
    assert_eq!(code, 200);
    assert!(part.contains("id=\"positions\"") && !part.contains("<html"), "{part}");
    // Many tabs, or a loop of requests, do not each put their queries on the journal's writer:
    // forty pages at once share one or two reads.
    let reads = async || {
        let (_, m) = crate::support::http::http_get(&base, "/metrics").await;
        m.lines().find_map(|l| l.strip_prefix("polycopy_dashboard_reads_total ")?.trim().parse::<u64>().ok()).unwrap()
    };
    let before = reads().await;
    let pages = (0..40).map(|_| crate::support::http::http_get(&base, "/dashboard?part=live"));
    for (code, part) in futures_util::future::join_all(pages).await {
        assert!(code == 200 && part.contains("id=\"positions\""), "{code} {part}");
    }
    assert!(reads().await - before <= 2, "{} reads for 40 pages", reads().await - before);

    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let (_, log) = browse(&url, &[&format!("--screenshot={}", shot.display()), "--window-size=1280,1000"]);
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}):\n{log}"));
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot, {} bytes", png.len());

    // DNS rebinding: a page elsewhere points a name of its own at this machine. The browser asks
    // for that name, and gets no positions.
    let port = base.rsplit(':').next().unwrap();
    let rules = "--host-resolver-rules=MAP rebound.example 127.0.0.1, MAP listed.example 127.0.0.1";
    let (dom, log) = browse(&format!("http://rebound.example:{port}/dashboard"), &["--dump-dom", rules]);
    assert!(dom.contains("answers to its address, localhost and the names in"), "{dom}\n{log}");
    assert!(!dom.contains("whale"), "{dom}");
    // A name the operator listed in [http] allowed_hosts is served.
    let (dom, log) = browse(&format!("http://listed.example:{port}/dashboard"), &["--dump-dom", rules]);
    assert!(dom.contains("<td class=\"l\">whale</td>"), "{dom}\n{log}");
    let (code, _) = crate::support::http::http_get(&format!("http://localhost:{port}"), "/health").await;
    assert_eq!(code, 200, "localhost is still served");
}
