//! The settings' range and cross-field checks, one function per section. Every violation is
//! reported, each at its field, so that one start shows them all.

use alloy::primitives::Address;

use super::settings::{ALWAYS_ON, EVENT_KINDS, NotifyLevel, Settings};
use crate::config::Problem;
use crate::config::problem::quoted;

/// Every violation in `s`, each naming `file`.
pub(super) fn all(s: &Settings, file: &str) -> Vec<Problem> {
    let mut p = Vec::new();
    let mut bad = |field: &str, msg: String| p.push(Problem::new(file, field, msg));
    chain(s, &mut bad);
    copy(s, &mut bad);
    risk(s, &mut bad);
    http_and_paths(s, &mut bad);
    detection(s, &mut bad);
    alerts_and_health(s, &mut bad);
    telegram(s, &mut bad);
    paper_and_live(s, &mut bad);
    durations(s, &mut bad);
    p
}

/// `[chain]`: the feed's pace, ranges, timeouts and failover.
/// The longest any wait or interval may be set to: 30 days. Far beyond any use, and far from what
/// overflows a `Duration` added to an `Instant` (a panic at the first order, then at every start).
const LONGEST_S: u64 = 30 * 86_400;

fn durations(s: &Settings, bad: &mut impl FnMut(&str, String)) {
    let (h, c, m, a, r, d, k, l) =
        (&s.health, &s.chain, &s.markets, &s.alerts, &s.redeem, &s.detection, &s.risk, &s.live);
    let seconds = [
        ("health.feed_stall_s", h.feed_stall_s),
        ("health.clob_stale_s", h.clob_stale_s),
        ("health.max_chain_age_s", h.max_chain_age_s),
        ("chain.head_stall_s", c.head_stall_s),
        ("copy.max_copy_delay_s", s.copy.max_copy_delay_s),
        ("markets.refresh_s", m.refresh_s),
        ("alerts.check_every_s", a.check_every_s),
        ("redeem.check_every_s", r.check_every_s),
        ("redeem.retry_after_s", r.retry_after_s),
        ("redeem.confirm_wait_s", r.confirm_wait_s),
        ("detection.rtds_stale_s", d.rtds_stale_s),
        ("risk.mark_interval_s", k.mark_interval_s),
        ("live.gtd_expiry_s", l.gtd_expiry_s),
        ("live.resolve_for_s", l.resolve_for_s),
        ("live.settle_timeout_s", l.settle_timeout_s),
    ];
    let millis = [
        ("chain.poll_interval_ms", c.poll_interval_ms),
        ("chain.request_timeout_ms", c.request_timeout_ms),
        ("chain.balance_timeout_ms", c.balance_timeout_ms),
        ("chain.reconnect_backoff_max_ms", c.reconnect_backoff_max_ms),
        ("markets.timeout_ms", m.timeout_ms),
        ("alerts.clob_slow_ms", a.clob_slow_ms),
        ("alerts.clock_max_offset_ms", a.clock_max_offset_ms),
        ("detection.pending_poll_ms", d.pending_poll_ms),
        ("risk.breaker_poll_ms", k.breaker_poll_ms),
        ("live.request_timeout_ms", l.request_timeout_ms),
        ("live.retry_backoff_ms", l.retry_backoff_ms),
        ("live.rate_limit_wait_ms", l.rate_limit_wait_ms),
    ];
    let too_long = seconds.into_iter().filter(|(_, v)| *v > LONGEST_S).map(|(k, v)| (k, v, "s", LONGEST_S));
    let too_long = too_long
        .chain(millis.into_iter().filter(|(_, v)| *v > LONGEST_S * 1000).map(|(k, v)| (k, v, "ms", LONGEST_S * 1000)));
    for (key, v, unit, max) in too_long {
        bad(key, format!("must be at most {max} {unit} (30 days), got {v}"));
    }
}

fn chain(s: &Settings, bad: &mut impl FnMut(&str, String)) {
    let c = &s.chain;
    if c.exchanges.is_empty() {
        bad("chain.exchanges", "must list at least one exchange".into());
    }
    if c.poll_interval_ms < 50 || c.poll_interval_ms > 600_000 {
        bad("chain.poll_interval_ms", format!("must be 50..=600000, got {}", c.poll_interval_ms));
    }
    if c.confirmations > 128 {
        bad("chain.confirmations", format!("must be 0..=128, got {}", c.confirmations));
    }
    if c.max_block_range == 0 || c.max_block_range > 10_000 {
        bad("chain.max_block_range", format!("must be 1..=10000, got {}", c.max_block_range));
    }
    if c.rpc_requests_per_second == 0 {
        bad("chain.rpc_requests_per_second", "must be at least 1".into());
    }
    if c.request_timeout_ms < 100 {
        bad("chain.request_timeout_ms", format!("must be at least 100, got {}", c.request_timeout_ms));
    }
    // Polygon makes a block every two seconds or so, and gaps of several happen: below this, a
    // healthy endpoint would be failed over.
    if c.head_stall_s != 0 && c.head_stall_s < 10 {
        bad("chain.head_stall_s", format!("must be 0 (off) or at least 10, got {}", c.head_stall_s));
    }
    if c.balance_timeout_ms < 50 {
        bad("chain.balance_timeout_ms", format!("must be at least 50, got {}", c.balance_timeout_ms));
    }
    if c.failover_after_errors == 0 {
        bad("chain.failover_after_errors", "must be at least 1".into());
    }
}

/// `[copy]`: orders in flight and slippage.
fn copy(s: &Settings, bad: &mut impl FnMut(&str, String)) {
    if !(1..=64).contains(&s.copy.max_in_flight) {
        bad("copy.max_in_flight", format!("must be 1..=64, got {}", s.copy.max_in_flight));
    }
    if s.copy.max_slippage_bps > 5_000 {
        bad("copy.max_slippage_bps", format!("must be 0..=5000, got {}", s.copy.max_slippage_bps));
    }
    let pending_cap = s.detection.pending_max_order_usdc;
    if pending_cap.0 > 0 && s.copy.min_order_usdc > pending_cap {
        bad(
            "detection.pending_max_order_usdc",
            format!(
                "{pending_cap} is below copy.min_order_usdc {}: no copy of a pending fill could be sent (0: no cap of its own)",
                s.copy.min_order_usdc
            ),
        );
    }
    // A minimum above the cap refuses every BUY (above the cap or below the minimum) while
    // check-config said OK; trading only exits is what `reducing` is for.
    if s.copy.min_order_usdc > s.risk.max_order_usdc {
        bad(
            "copy.min_order_usdc",
            format!(
                "{} is above risk.max_order_usdc {}: no BUY could ever be copied",
                s.copy.min_order_usdc, s.risk.max_order_usdc
            ),
        );
    }
}

/// `[risk]`: limits that fit inside each other, the daily loss action, the breaker's poll.
fn risk(s: &Settings, bad: &mut impl FnMut(&str, String)) {
    let r = &s.risk;
    for (field, v) in [
        ("risk.max_order_usdc", r.max_order_usdc),
        ("risk.max_position_usdc", r.max_position_usdc),
        ("risk.max_total_exposure_usdc", r.max_total_exposure_usdc),
        ("risk.daily_loss_limit_usdc", r.daily_loss_limit_usdc),
    ] {
        if v.0 <= 0 {
            bad(field, "must be greater than 0".into());
        }
    }
    if r.max_order_usdc > r.max_position_usdc {
        bad(
            "risk.max_order_usdc",
            format!("{} is above risk.max_position_usdc {}", r.max_order_usdc, r.max_position_usdc),
        );
    }
    if r.max_position_usdc > r.max_total_exposure_usdc {
        bad(
            "risk.max_position_usdc",
            format!("{} is above risk.max_total_exposure_usdc {}", r.max_position_usdc, r.max_total_exposure_usdc),
        );
    }
    if r.day_starts_at_hour > 23 {
        bad("risk.day_starts_at_hour", format!("must be 0..=23 (UTC), got {}", r.day_starts_at_hour));
    }
    if r.max_trades_per_hour == 0 {
        bad("risk.max_trades_per_hour", "must be at least 1".into());
    }
    if r.max_consecutive_errors == 0 {
        bad("risk.max_consecutive_errors", "must be at least 1".into());
    }
    if r.breaker_poll_ms < 10 || r.breaker_poll_ms > 1_000 {
        bad(
            "risk.breaker_poll_ms",
            format!("must be 10..=1000 so a halt is obeyed within a second, got {}", r.breaker_poll_ms),
        );
    }
}

/// `[http]` and the files: an address that parses and stays local unless allowed; no empty path.
fn http_and_paths(s: &Settings, bad: &mut impl FnMut(&str, String)) {
    if !s.http.listen.is_empty() && s.http.listen.parse::<std::net::SocketAddr>().is_err() {
        bad(
            "http.listen",
            format!("must be an address like 127.0.0.1:9187 (or \"\" for off), got {}", quoted(&s.http.listen)),
        );
    }
    if s.chain.reconnect_backoff_max_ms < 100 {
        bad(
            "chain.reconnect_backoff_max_ms",
            format!(
                "must be at least 100 (0 would reconnect in a tight loop), got {}",
                s.chain.reconnect_backoff_max_ms
            ),
        );
    }
    for (field, path) in [
        ("db_path", &s.db_path),
        ("live.db_path", &s.live.db_path),
        ("wallets_path", &s.wallets_path),
        ("emergency_stop_file", &s.emergency_stop_file),
    ] {
        if path.as_os_str().is_empty() {
            let why = if field == "emergency_stop_file" {
                "must not be empty (an empty stop file path would silently disable the stop file)"
            } else {
                "must not be empty: name the journal file"
            };
            bad(field, why.into());
        }
    }
    if same_file(&s.db_path, &s.live.db_path) {
        bad(
            "live.db_path",
            format!(
                "must not be the paper journal ({}): paper history never mixes with real money. Name a journal of its own",
                s.db_path.display()
            ),
        );
    }
    if let Some(field) = control_socket_clash(s) {
        bad("control_socket", format!("must not be the same path as {field}: a stale socket there is removed"));
    }
    if let Ok(addr) = s.http.listen.parse::<std::net::SocketAddr>()
        && !addr.ip().is_loopback()
        && !s.http.allow_remote
    {
        bad(
            "http.listen",
            format!(
                "{addr} is not a loopback address: /health, /metrics and /alert would be reachable from the network. \
                 Keep it on 127.0.0.1, or set http.allow_remote = true if a firewall guards it"
            ),
        );
    }
    for name in &s.http.allowed_hosts {
        if !crate::http::host_name_shape(name) {
            bad(
                "http.allowed_hosts",
                format!(
                    "{} is not a host name: list names only, without scheme, port, path or wildcard (e.g. \"polycopy.lan\")",
                    quoted(name)
                ),
            );
        }
    }
}

/// `[redeem]` and `[detection]`.
/// The setting whose file the control socket would be, if any (paths compared made absolute).
/// Asked again by `check-config` once `--db` has set the journal, after these rules ran.
#[must_use]
pub fn control_socket_clash(s: &Settings) -> Option<&'static str> {
    let socket = std::path::absolute(s.control_socket_path()).ok()?;
    [
        ("db_path", &s.db_path),
        ("live.db_path", &s.live.db_path),
        ("wallets_path", &s.wallets_path),
        ("emergency_stop_file", &s.emergency_stop_file),
    ]
    .into_iter()
    .find(|(_, p)| std::path::absolute(p).is_ok_and(|p| p == socket))
    .map(|(field, _)| field)
}

/// Whether two settings paths name one file: made absolute, and resolved through links when both
/// exist.
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    if let (Ok(a), Ok(b)) = (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        return a == b;
    }
    let normal = |p: &std::path::Path| std::path::absolute(p).map(|p| p.components().collect::<std::path::PathBuf>());
    matches!((normal(a), normal(b)), (Ok(a), Ok(b)) if a == b)
}

fn detection(s: &Settings, bad: &mut impl FnMut(&str, String)) {
    if s.redeem.check_every_s == 0 || s.redeem.attempts == 0 {
        bad("redeem", "check_every_s and attempts must be at least 1".into());
    }
    let d = &s.detection;
    if !(20..=60_000).contains(&d.pending_poll_ms) {
        bad("detection.pending_poll_ms", format!("must be 20..=60000, got {}", d.pending_poll_ms));
    }
    if d.orphan_after_blocks == 0 {
        bad("detection.orphan_after_blocks", "must be at least 1".into());
    }
    if d.rtds && !(d.rtds_url.starts_with("wss://") || d.rtds_url.starts_with("ws://")) {
        bad(
            "detection.rtds_url",
            format!("must be a ws:// or wss:// URL, got {:?}", crate::config::redact_url(&d.rtds_url)),
        );
    }
    if d.rtds_stale_s == 0 {
        bad("detection.rtds_stale_s", "must be at least 1".into());
    }
}

/// `[alerts]` and `[health]`.
fn alerts_and_health(s: &Settings, bad: &mut impl FnMut(&str, String)) {
    let a = &s.alerts;
    if a.check_every_s == 0 {
        bad("alerts.check_every_s", "must be at least 1".into());
    }
    if a.drawdown_pct > 100 {
        bad("alerts.drawdown_pct", format!("must be 0..=100 (0: off), got {}", a.drawdown_pct));
    }
    if a.win_rate_min_pct > 100 {
        bad("alerts.win_rate_min_pct", format!("must be 0..=100 (0: off), got {}", a.win_rate_min_pct));
    }
    if s.health.feed_stall_s == 0 {
        bad("health.feed_stall_s", "must be at least 1".into());
    }
    if s.health.clob_stale_s < 4 {
        bad(
            "health.clob_stale_s",
            format!("must be at least 4 (the CLOB is probed every quarter of it), got {}", s.health.clob_stale_s),
        );
    }
}

/// `[telegram]`: known event kinds, pacing, report times.
fn telegram(s: &Settings, bad: &mut impl FnMut(&str, String)) {
    let t = &s.telegram;
    for (kind, level) in &t.notify {
        if !EVENT_KINDS.contains(&kind.as_str()) {
            // The name as the operator wrote it, never a forged line or a pasted key.
            let kind = super::problem::shown_key(kind);
            bad(&format!("telegram.notify.{kind}"), format!("unknown event kind (known: {})", EVENT_KINDS.join(", ")));
        } else if ALWAYS_ON.contains(&kind.as_str()) && *level != NotifyLevel::On {
            bad(
                &format!("telegram.notify.{kind}"),
                "breaker, error and alert messages cannot be silenced or turned off".into(),
            );
        }
    }
    if t.per_chat_per_second == 0 || t.per_group_per_minute == 0 {
        bad("telegram.per_chat_per_second", "the pacing limits must be at least 1".into());
    }
    // Bounded above too: memory is, and the hand-off channel refuses a capacity past its limit.
    if !(10..=1_000_000).contains(&t.queue_capacity) {
        bad("telegram.queue_capacity", "must be from 10 to 1000000".into());
    }
    if t.daily_report_secs().is_none() && !t.reports_off() {
        bad(
            "telegram.daily_report_at",
            format!("must be a UTC time like \"18:00\" (or \"off\"), got {}", quoted(&t.daily_report_at)),
        );
    }
    if t.weekly_day().is_none() {
        bad(
            "telegram.weekly_report_day",
            format!("must be a weekday like \"sun\", got {}", quoted(&t.weekly_report_day)),
        );
    }
    // 0 would try a chat that refused the bot for good at every pacing tick, forever.
    if t.parked_retry_s == 0 || u64::from(t.parked_retry_s) > LONGEST_S {
        bad("telegram.parked_retry_s", format!("must be 1..={LONGEST_S} (30 days), got {}", t.parked_retry_s));
    }
    if t.routine_attempts == 0 {
        bad("telegram.routine_attempts", "must be at least 1 (0 would send no routine message)".into());
    }
    if t.poll_timeout_s == 0 || t.poll_timeout_s > 50 {
        bad("telegram.poll_timeout_s", format!("must be 1..=50, got {}", t.poll_timeout_s));
    }
}

/// `[paper]` and `[live]`.
fn paper_and_live(s: &Settings, bad: &mut impl FnMut(&str, String)) {
    if s.paper.slippage_bps > 5_000 {
        bad("paper.slippage_bps", format!("must be 0..=5000, got {}", s.paper.slippage_bps));
    }
    let l = &s.live;
    if let Err(e) = crate::clob::SigType::parse(&l.signature_type) {
        bad("live.signature_type", e);
    }
    if !l.funder.is_empty() && l.funder.parse::<Address>().is_err() {
        bad(
            "live.funder",
            format!("{} (or \"\" to derive it from the key)", crate::config::problem::not_an_address(&l.funder)),
        );
    }
    if let Err(e) = crate::clob::OrderKind::parse(&l.order_type) {
        bad("live.order_type", e);
    }
    if l.gtd_expiry_s < 70 {
        bad(
            "live.gtd_expiry_s",
            format!("must be at least 70 (the CLOB wants a minute of margin), got {}", l.gtd_expiry_s),
        );
    }
    if l.request_timeout_ms < 100 {
        bad("live.request_timeout_ms", format!("must be at least 100, got {}", l.request_timeout_ms));
    }
    if l.requests_per_second == 0 {
        bad("live.requests_per_second", "must be at least 1".into());
    }
    // 0 would leave every unknown order unresolved until the next start, its exposure reserved.
    if l.resolve_for_s == 0 {
        bad("live.resolve_for_s", "must be at least 1 (0 would never look an unknown order up)".into());
    }
    // 0 would take every match out of the books before its settlement could be read.
    if l.settle_timeout_s == 0 {
        bad(
            "live.settle_timeout_s",
            "must be at least 1 (0 would take every match out of the books before it settles; 120 is usual)".into(),
        );
    }
    if s.mode == crate::config::Mode::Live {
        // Our own fills on chain settle, book and (by their absence) end our orders: the feed must
        // read the exchanges our orders are signed for, or a filled order would end as no fill.
        let missing: Vec<String> = [false, true]
            .into_iter()
            .filter_map(|neg| crate::clob::order::order_domain(neg)?.verifying_contract)
            .filter(|x| !s.chain.exchanges.contains(x))
            .map(|x| x.to_checksum(None))
            .collect();
        if !missing.is_empty() {
            bad(
                "chain.exchanges",
                format!(
                    "live orders are signed for {}, which the feed must watch: our own fills there settle and book them",
                    missing.join(" and ")
                ),
            );
        }
    }
}
