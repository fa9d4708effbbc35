#![allow(missing_docs, clippy::cast_precision_loss)] // a measuring tool: figures are printed as floats
//! The load harness (issue #7): drives the real `polycopy` binary against a real anvil node and
//! reports, for a number of watched wallets:
//! - cold start: spawn → "chain feed live" (journal open, settings and wallets validated, feed
//!   subscribed), which includes the node's own answers;
//! - throughput: fills emitted while the daemon was down are backfilled and copied through the whole
//!   paper pipeline (feed → watcher → copier → risk → executor → journal), fills/s from spawn to the
//!   last execution, and from the first fill journaled to the last execution (the pipeline alone);
//! - latency at a steady RATE fills/s: journaled → executed (paper), or journaled → signed order stored
//!   (live, against the fake CLOB), p50/p99/max; and detection delay from the block timestamp;
//! - peak RSS of the daemon.
//!
//! `cargo build --release && cargo run --release --example loadgen -- [wallets] [fills] [paper|live] [rate]`
//! (defaults: 10 wallets, 5000 fills, paper, 100 fills/s). Needs anvil (scripts/test.sh installs it).

#[path = "../tests/scenarios/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use alloy::primitives::{Address, keccak256};
use serde_json::json;
use support::clob::{FakeClob, Token};
use support::live::{KEY, SIGNER};
use support::*;

const C: Address = alloy::primitives::address!("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1");
const ACTIVE: usize = 10;

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn query(d: &Daemon, sql: &str) -> Vec<i64> {
    let c = rusqlite::Connection::open(d.dir.join("journal.db")).unwrap();
    let mut st = c.prepare(sql).unwrap();
    st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

async fn wait_count(d: &Daemon, sql: &str, n: i64, secs: u64) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if query(d, sql).first().copied().unwrap_or(0) >= n {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "timed out waiting for {n}: {sql}\n{}", d.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `perf record` of `pid` into `$LOADGEN_PERF`, when set.
fn record_perf(pid: u32) -> Option<std::process::Child> {
    let out = std::env::var("LOADGEN_PERF").ok()?;
    let callgraph = std::env::var("LOADGEN_PERF_CALLGRAPH").unwrap_or_else(|_| "fp".into());
    std::process::Command::new("perf")
        .args(["record", "-F", "4000", "--call-graph", &callgraph, "-o", &out, "-p", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()
}

/// CPU time (user + system, ms) of each thread of `pid`, by thread name: the machine's noise
/// moves wall-clock figures from run to run, a thread's CPU time per fill much less.
fn cpu_ms_by_thread(pid: u32) -> std::collections::BTreeMap<String, f64> {
    let mut by = std::collections::BTreeMap::new();
    let tick_ms = 1000.0 / 100.0; // USER_HZ is 100 on Linux
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return by };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else { continue };
        // comm is in parentheses and may hold spaces; the fields after it are space-separated.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = stat[open + 1..close].to_owned();
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        *by.entry(name).or_insert(0.0) += ticks * tick_ms;
    }
    by
}

/// Now, in unix milliseconds (the journal's stamps).
fn unix_ms() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Each daemon thread's write calls and bytes so far (`syscw`, `wchar` of its `io` under
/// `/proc/<pid>/task`): the journal's WAL frames (writer thread), the checkpoints copying them into
/// the database (checkpoint thread), the log's lines.
fn writes_by_thread(pid: u32) -> std::collections::BTreeMap<String, (u64, u64)> {
    let mut by = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return by };
    for t in tasks.flatten() {
        let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim().to_owned();
        let io = std::fs::read_to_string(t.path().join("io")).unwrap_or_default();
        let field = |key: &str| {
            io.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0)
        };
        let e = by.entry(name).or_insert((0, 0));
        e.0 += field("syscw:");
        e.1 += field("wchar:");
    }
    by
}

/// Per-thread write calls and kilobytes per fill between two readings.
fn writes_per_fill(
    before: &std::collections::BTreeMap<String, (u64, u64)>,
    after: &std::collections::BTreeMap<String, (u64, u64)>,
    fills: usize,
) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (name, (calls, bytes)) in after {
        let (c0, b0) = before.get(name).copied().unwrap_or((0, 0));
        if *bytes > b0 {
            let per = |d: u64, scale: f64| ((d as f64 / fills as f64 / scale) * 10.0).round() / 10.0;
            out.insert(name.clone(), json!({ "calls": per(calls - c0, 1.0), "kb": per(bytes - b0, 1024.0) }));
        }
    }
    serde_json::Value::Object(out)
}

/// Per-thread CPU µs per fill between two readings.
fn cpu_us_per_fill(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
    fills: usize,
) -> serde_json::Value {
    let per = |ms: f64| (ms * 1000.0 / fills as f64).round();
    let mut out = serde_json::Map::new();
    let mut total = 0.0;
    for (name, ms) in after {
        let d = ms - before.get(name).copied().unwrap_or(0.0);
        total += d;
        if d > 0.0 {
            out.insert(name.clone(), json!(per(d)));
        }
    }
    out.insert("total".into(), json!(per(total)));
    serde_json::Value::Object(out)
}

fn stop_perf(perf: Option<std::process::Child>) {
    if let Some(mut p) = perf {
        let _ = std::process::Command::new("kill").args(["-INT", &p.id().to_string()]).status();
        let _ = p.wait();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n_wallets: usize = args.first().and_then(|v| v.parse().ok()).unwrap_or(10).max(ACTIVE);
    let n_fills: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(5000);
    let live = args.get(2).is_some_and(|m| m == "live");
    let rate: u64 = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(100).clamp(5, 10_000);

    let anvil = Anvil::start().await;
    let makers: Vec<Address> = (0..n_wallets).map(|i| Address::from_word(keccak256(i.to_be_bytes()))).collect();
    let labels: Vec<String> = (0..n_wallets).map(|i| format!("w{i}")).collect();
    let entries: Vec<(Address, &str, bool)> = makers.iter().zip(&labels).map(|(a, l)| (*a, l.as_str(), true)).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(dir.path(), &anvil.http_url(), "max_block_range = 2000", &wallets(&entries, 0.1))
        .with_config_apart();
    // LOADGEN_RUST_LOG / LOADGEN_LOG: a more detailed log, kept at that path (to see where time goes).
    let filter = std::env::var("LOADGEN_RUST_LOG").unwrap_or_else(|_| "warn,polycopy=info".into());
    d.env.push(("RUST_LOG".into(), filter));
    let fake_clob = if live {
        let clob = FakeClob::start(SIGNER).await;
        clob.token(1001, Token::open(false));
        // LOADGEN_CLOB_MS: the fake CLOB answers every order after this long (the real one takes tens
        // of milliseconds), so orders overlap in flight.
        if let Some(ms) = std::env::var("LOADGEN_CLOB_MS").ok().and_then(|v| v.parse().ok()) {
            clob.default_play(support::clob::Play::Slow(ms));
        }
        for (k, v) in [
            ("PAPER_TRADING", "false"),
            ("PRIVATE_KEY", KEY),
            ("CLOB_HOST", clob.url.as_str()),
            ("GAMMA_URL", clob.url.as_str()),
        ] {
            d.env.push((k.into(), v.into()));
        }
        d.set_top("mode = \"live\"");
        d.set("live", "check_geoblock = false");
        // Our own processing is measured, not Polymarket's pacing (live.requests_per_second, 50 by
        // default, caps real order flow well below this harness's rates).
        d.set("live", "requests_per_second = 100000");
        Some(clob)
    } else {
        None
    };
    // LOADGEN_IN_FLIGHT: copy.max_in_flight (else the daemon's default).
    let in_flight = std::env::var("LOADGEN_IN_FLIGHT").ok();
    let mut env = vec![
        ("POLYCOPY_RISK__MAX_TRADES_PER_HOUR", "100000000"),
        ("POLYCOPY_RISK__MAX_POSITION_USDC", "100000000"),
        ("POLYCOPY_RISK__MAX_TOTAL_EXPOSURE_USDC", "100000000"),
        ("POLYCOPY_COPY__MAX_COPY_DELAY_S", "0"),
        ("POLYCOPY_HTTP__LISTEN", ""),
        // The node is local: our processing is measured, not the pacing meant for a paid provider.
        ("POLYCOPY_CHAIN__RPC_REQUESTS_PER_SECOND", "100000"),
    ];
    if let Some(n) = in_flight.as_deref() {
        env.push(("POLYCOPY_COPY__MAX_IN_FLIGHT", n));
    }

    // 1. Cold start (no checkpoint yet: it starts at the head).
    let t = Instant::now();
    d.start_with(&env);
    d.wait_live().await;
    let cold = t.elapsed();
    d.stop();

    // 2. Throughput: fills land while the daemon is down, then it backfills and copies them all.
    let fill =
        |i: usize| Fill::v2(u8::try_from(i % 250 + 1).unwrap(), makers[i % ACTIVE], C, true, 1001, 100 * ONE, 50 * ONE);
    let t = Instant::now();
    for chunk in (0..n_fills).collect::<Vec<_>>().chunks(200) {
        anvil.emit_block(&chunk.iter().map(|i| fill(*i)).collect::<Vec<_>>()).await;
    }
    let emit = t.elapsed();
    let t = Instant::now();
    let spawn_ms = unix_ms();
    d.start_with(&env);
    let pid = d.pid().unwrap_or(0);
    // LOADGEN_PERF=FILE: `perf record` of the daemon during the backfill (or, with
    // LOADGEN_PERF_PHASE=steady, during the steady phase), into FILE (call graphs from frame
    // pointers, or as LOADGEN_PERF_CALLGRAPH says, e.g. `dwarf`).
    let perf_steady = std::env::var("LOADGEN_PERF_PHASE").is_ok_and(|p| p == "steady");
    let perf = (!perf_steady).then(|| record_perf(pid)).flatten();
    let cpu_before = cpu_ms_by_thread(pid);
    let writes_before = writes_by_thread(pid);
    let done = wait_count(&d, "SELECT COUNT(*) FROM executions", n_fills as i64, 600).await;
    let backfill_cpu = cpu_us_per_fill(&cpu_before, &cpu_ms_by_thread(pid), n_fills);
    let backfill_writes = writes_per_fill(&writes_before, &writes_by_thread(pid), n_fills);
    let backfill = done - t;
    // From the journal's own stamps, not the 20 ms polls: spawn → last execution, and the first
    // fill journaled → last execution (the pipeline alone, without the start and the first read).
    let last_exec_ms = query(&d, "SELECT MAX(executed_at_ms) FROM executions")[0];
    let first_journaled_ms = query(&d, "SELECT MIN(seen_at_ms) FROM fills")[0];
    let per_s = |ms: i64| (n_fills as f64 * 1000.0 / ms.max(1) as f64).round();
    stop_perf(perf);

    // 3. Latency at a steady rate: blocks of 5 fills (one fill a block up to 20 fills/s), paced to
    //    `rate` fills/s.
    // LOADGEN_STEADY: how many fills (default 500; more gives a steadier p99).
    let steady: usize = std::env::var("LOADGEN_STEADY").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let per_block: usize = if rate <= 20 { 1 } else { 5 };
    let before = query(&d, "SELECT COUNT(*) FROM executions")[0];
    let gap = Duration::from_micros(1_000_000 * per_block as u64 / rate);
    let perf = perf_steady.then(|| record_perf(pid)).flatten();
    let cpu_before = cpu_ms_by_thread(pid);
    let t = Instant::now();
    for b in 0..steady / per_block {
        anvil.emit_block(&(0..per_block).map(|i| fill(n_fills + b * per_block + i)).collect::<Vec<_>>()).await;
        let next = gap * u32::try_from(b + 1).unwrap_or(u32::MAX);
        tokio::time::sleep(next.saturating_sub(t.elapsed())).await;
    }
    wait_count(&d, "SELECT COUNT(*) FROM executions", before + steady as i64, 120).await;
    stop_perf(perf);
    let steady_cpu = cpu_us_per_fill(&cpu_before, &cpu_ms_by_thread(pid), steady);
    let since = format!("(SELECT MAX(id) - {steady} FROM fills)");
    let mut processing = if live {
        query(
            &d,
            &format!(
                "SELECT o.created_at_ms - f.seen_at_ms FROM orders o JOIN fills f ON f.id = o.fill_id WHERE f.id > {since}"
            ),
        )
    } else {
        query(
            &d,
            &format!(
                "SELECT e.executed_at_ms - f.seen_at_ms FROM executions e JOIN fills f ON f.id = e.fill_id WHERE f.id > {since}"
            ),
        )
    };
    let mut detection = query(&d, &format!("SELECT seen_at_ms - block_ts * 1000 FROM fills WHERE id > {since}"));
    // The daemon's own measure, µs: the fill's journal write committed → the paper copy journaled
    // (the `copied` line) or the signed order journaled (the `order signed` line). The steady
    // phase's copies are the last ones logged (a backfill's last lines may follow its last row).
    let mut pipeline_us: Vec<i64> = d
        .log()
        .lines()
        .filter(|l| l.contains(if live { "order signed and journaled" } else { "copied " }))
        .filter_map(|l| l.split("pipeline_us=").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect();
    pipeline_us.drain(..pipeline_us.len().saturating_sub(steady));
    pipeline_us.sort_unstable();
    if std::env::var_os("LOADGEN_TRACE").is_some() {
        eprintln!("latencies in fill order: {:?}", &processing);
    }
    processing.sort_unstable();
    detection.sort_unstable();

    // 4. Live: halt-to-stop under in-flight load. Fills keep arriving at the same rate for a second
    //    before and after `polycopy halt`; measured: the command's acknowledgement, and the last
    //    POST the fake CLOB received after the halt was issued (0: none).
    let halt = if let Some(clob) = fake_clob.as_ref() {
        let emit_for = |from: usize| {
            let anvil = &anvil;
            async move {
                let t = Instant::now();
                for b in 0..(rate as usize / per_block).max(1) {
                    let i0 = from + b * per_block;
                    anvil.emit_block(&(0..per_block).map(|i| fill(i0 + i)).collect::<Vec<_>>()).await;
                    let next = gap * u32::try_from(b + 1).unwrap_or(u32::MAX);
                    tokio::time::sleep(next.saturating_sub(t.elapsed())).await;
                }
            }
        };
        let base = n_fills + steady + 10;
        emit_for(base).await;
        let issued = Instant::now();
        let (code, _, err) = d.run_cli(&["halt", "--reason", "loadgen"]);
        let ack_ms = issued.elapsed().as_millis();
        assert_eq!(code, 0, "halt: {err}");
        emit_for(base + rate as usize + 10).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let last_post_ms = clob
            .posts()
            .iter()
            .filter(|(at, _)| *at >= issued)
            .map(|(at, _)| at.duration_since(issued).as_millis())
            .max()
            .unwrap_or(0);
        Some(json!({"halt_ack_ms": ack_ms, "last_post_after_halt_ms": last_post_ms}))
    } else {
        None
    };
    let rss = peak_rss_mb(pid);
    d.stop();
    if let Ok(keep) = std::env::var("LOADGEN_LOG") {
        let _ = std::fs::copy(d.dir.join("daemon.log"), keep);
    }
    // LOADGEN_KEEP_DB=FILE: the journal after the run, to look at its tables and indexes.
    if let Ok(keep) = std::env::var("LOADGEN_KEEP_DB") {
        let _ = std::fs::copy(d.dir.join("journal.db"), keep);
    }

    let what = if live { "journaled → signed order stored" } else { "journaled → executed" };
    let report = json!({
        "mode": if live { "live" } else { "paper" },
        "wallets": n_wallets,
        "fills": n_fills,
        "cold_start_ms": cold.as_millis(),
        "emit_s": emit.as_secs_f64(),
        "backfill_s": backfill.as_secs_f64(),
        "throughput_fills_per_s": per_s(last_exec_ms - spawn_ms),
        "throughput_polled_fills_per_s": (n_fills as f64 / backfill.as_secs_f64()).round(),
        "pipeline_fills_per_s": per_s(last_exec_ms - first_journaled_ms),
        "backfill_phases_ms": {
            "spawn_to_first_journaled": first_journaled_ms - spawn_ms,
            "first_journaled_to_last_execution": last_exec_ms - first_journaled_ms,
        },
        "backfill_cpu_us_per_fill": backfill_cpu,
        "backfill_writes_per_fill": backfill_writes,
        "latency": what,
        "steady_rate_fills_per_s": rate,
        "latency_ms_p50_p99_max": [percentile(&processing, 0.5), percentile(&processing, 0.99), processing.last().copied().unwrap_or(0)],
        "pipeline_us": {
            "from": "fill journaled (its range committed)",
            "to": if live { "signed order journaled" } else { "paper execution journaled" },
            "count": pipeline_us.len(),
            "p50_p99_max": [percentile(&pipeline_us, 0.5), percentile(&pipeline_us, 0.99), pipeline_us.last().copied().unwrap_or(0)],
        },
        "steady_cpu_us_per_fill": steady_cpu,
        "detection_ms_p50_p99_max": [percentile(&detection, 0.5), percentile(&detection, 0.99), detection.last().copied().unwrap_or(0)],
        "peak_rss_mb": (rss * 10.0).round() / 10.0,
        "halt_under_load": halt,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}
