//! Counters and gauges the daemon exposes at `/metrics` (Prometheus text format). Updated by the
//! notifier (every action passes there), the feed and the risk supervisor; never holds a secret.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

mod render;

/// Upper bounds of the detection latency buckets, milliseconds.
const LATENCY_BUCKETS_MS: [i64; 10] = [250, 500, 1_000, 2_000, 3_000, 5_000, 10_000, 30_000, 60_000, 300_000];

/// The daemon's metrics. Shared behind an `Arc`; every field is lock-free except the reasons map.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Target fills journaled.
    pub fills_seen: AtomicU64,
    /// Copies executed.
    pub executed: AtomicU64,
    rejected: Mutex<BTreeMap<String, u64>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_MS.len()],
    latency_count: AtomicU64,
    latency_sum_ms: AtomicI64,
    /// Breaker state.
    pub breaker_tripped: AtomicBool,
    /// Total cost of open positions, micro-USDC.
    pub exposure: AtomicI64,
    /// pUSD held by BUY orders in flight or of unknown outcome, micro-USDC.
    pub reserved: AtomicI64,
    /// Orders in flight or of unknown outcome (each holding a reservation).
    pub orders_in_flight: AtomicU64,
    /// Target fills handed to the copier and not yet decided (bounded: see
    /// `crate::actors::copier::admission`).
    pub copies_waiting: AtomicU64,
    /// Realized P&L today, micro-USDC.
    pub pnl_today: AtomicI64,
    /// Unrealized P&L of open positions at their marks, micro-USDC.
    pub unrealized_pnl: AtomicI64,
    /// Today's P&L as the daily loss limit counts it (realized today plus the change of unrealized
    /// since the day opened), micro-USDC.
    pub pnl_counted_today: AtomicI64,
    /// The daily loss limit, micro-USDC (a positive amount).
    pub daily_loss_limit: AtomicI64,
    /// Telegram messages that could not be delivered.
    pub telegram_send_failures: AtomicU64,
    /// Reorgs detected.
    pub reorgs: AtomicU64,
    /// Telegram updates from chats that are not authorized (ignored).
    pub telegram_unauthorized: AtomicU64,
    /// Telegram is configured and started.
    pub telegram_on: AtomicBool,
    /// A bot token is configured, but Telegram could not start with it (refused token, unusable
    /// API URL): the daemon has no alerts and no commands, which `/health` must not call fine.
    pub telegram_refused: AtomicBool,
    /// The last edit of wallets.json was refused: the previous targets run, a restart would stop.
    pub wallets_refused: AtomicBool,
    /// The last attempt to deliver to Telegram failed (cleared by the next success).
    pub telegram_failing: AtomicBool,
    /// Authorized chats Telegram refuses to deliver to for good (parked: blocked, not found,
    /// moved to a supergroup), each retried now and then.
    pub telegram_parked_chats: AtomicU64,
    /// Telegram answered our last poll for commands with 409: another process polls this bot.
    pub telegram_poll_conflict: AtomicBool,
    /// Polls for commands have failed for a while: a /halt typed in Telegram is not received.
    pub telegram_commands_failing: AtomicBool,
    /// Live trading (else paper).
    pub live: AtomicBool,
    /// 0 active, 1 reducing, 2 halted.
    pub trading_state: std::sync::atomic::AtomicU8,
    warnings: Mutex<BTreeMap<String, u64>>,
    /// Warning checks run (see `crate::warnings`).
    pub warning_checks: AtomicU64,
    /// Targets being copied (enabled, not paused), at the last warning check.
    pub targets_copying: AtomicU64,
    /// Each target's copy quality (label, lower-case address, figures), refreshed with the warning
    /// checks.
    pub targets: Mutex<Vec<(String, String, crate::store::TargetQuality)>>,
    /// Redemption rounds run (see `crate::redeem`).
    pub redeem_rounds: AtomicU64,
    /// Times the dashboard was read from the journal (pages are served from a short-lived copy).
    pub dashboard_reads: AtomicU64,
    /// Redemption rounds that could not read or try every market (a node error): the markets
    /// left are tried at the next round.
    pub redeem_round_failures: AtomicU64,
    /// The CLOB's last answer time to the warning check, ms (at least 1; 0: unknown).
    pub clob_response_ms: AtomicI64,
    /// Detection figures over the last day (each source's lead over the mined log), refreshed
    /// with the per-target figures.
    pub detection: Mutex<crate::store::DetectionStats>,
    pending_buckets: [AtomicU64; PENDING_BUCKETS_US.len()],
    pending_count: AtomicU64,
    pending_sum_us: AtomicI64,
}

/// Upper bounds of the pending-path processing histogram, microseconds.
const PENDING_BUCKETS_US: [i64; 8] = [100, 250, 500, 1_000, 2_000, 5_000, 10_000, 50_000];
/// Upper bounds of the detection-lead histogram, ms (negative: the source was later than the log).
const LEAD_BUCKETS_MS: [i64; 10] = [-1_000, 0, 500, 1_000, 2_000, 3_000, 5_000, 10_000, 30_000, 60_000];

impl Metrics {
    fn mode(&self) -> &'static str {
        if self.live.load(Ordering::Relaxed) { "live" } else { "paper" }
    }

    /// Orders in flight or of unknown outcome, and the pUSD their BUYs hold, as the risk
    /// supervisor last published them (for status answers that must not wait on it).
    #[must_use]
    pub fn in_flight(&self) -> (u64, crate::domain::Usdc) {
        (self.orders_in_flight.load(Ordering::Relaxed), crate::domain::Usdc(self.reserved.load(Ordering::Relaxed)))
    }

    /// Counts a warning sent, under its kind.
    pub fn warning(&self, code: &str) {
        if let Ok(mut m) = self.warnings.lock() {
            *m.entry(code.to_owned()).or_insert(0) += 1;
        }
    }

    /// Records the time our pending path took for one round's settlements (decode to journaled).
    pub fn observe_pending_decode(&self, d: std::time::Duration) {
        let us = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        for (i, le) in PENDING_BUCKETS_US.iter().enumerate() {
            if us <= *le {
                self.pending_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.pending_count.fetch_add(1, Ordering::Relaxed);
        self.pending_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Counts a rejection under its reason code.
    pub fn rejected(&self, code: &str) {
        if let Ok(mut m) = self.rejected.lock() {
            *m.entry(code.to_owned()).or_insert(0) += 1;
        }
    }

    /// Records one detection latency (block timestamp → order sent).
    pub fn observe_latency(&self, ms: i64) {
        let ms = ms.max(0);
        for (i, le) in LATENCY_BUCKETS_MS.iter().enumerate() {
            if ms <= *le {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ms.fetch_add(ms, Ordering::Relaxed);
    }
}
