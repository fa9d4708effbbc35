//! Settings: `config/default.toml` (built in) < `/etc/polycopy/polycopy.toml` < `--config PATH` <
//! `POLYCOPY_*` environment variables. Unknown keys are errors; amounts are read exactly.

use std::path::PathBuf;

use alloy::primitives::Address;
use serde::Deserialize;

use crate::config::Problem;
use crate::domain::Usdc;
use crate::risk::Limits;

pub use super::settings_load::SettingsSources;
use super::settings_numbers::de_usdc;
pub use super::settings_numbers::{number_to_decimal, price_from_decimal};
pub use super::settings_telegram::{ALWAYS_ON, EVENT_KINDS, NotifyLevel, TelegramSettings};

/// The built-in defaults, documented line by line.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");
/// The system-wide settings file, read when present.
pub const SYSTEM_TOML: &str = "/etc/polycopy/polycopy.toml";

/// All settings of the daemon.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Paper or live: every command reads it here, so they all act on the same journal.
    pub mode: crate::config::Mode,
    /// SQLite journal path (the paper journal; after [`Settings::load`] the journal of the mode).
    pub db_path: PathBuf,
    /// The daemon's control socket ("" = the journal's path with `.sock` appended).
    pub control_socket: PathBuf,
    /// Targets file path.
    pub wallets_path: PathBuf,
    /// While this file exists the breaker is tripped.
    pub emergency_stop_file: PathBuf,
    /// How the log is written.
    pub log_format: LogFormat,
    /// Chain access.
    pub chain: ChainSettings,
    /// Copy sizing.
    pub copy: CopySettings,
    /// Hard limits and breaker.
    pub risk: RiskSettings,
    /// Paper execution.
    pub paper: PaperSettings,
    /// The health and metrics server.
    pub http: HttpSettings,
    /// Health thresholds.
    pub health: HealthSettings,
    /// Telegram reports and commands.
    pub telegram: TelegramSettings,
    /// Live trading on the CLOB.
    pub live: LiveSettings,
    /// Market metadata.
    pub markets: MarketsSettings,
    /// Warning alerts.
    pub alerts: AlertsSettings,
    /// Redemption of resolved markets.
    pub redeem: RedeemSettings,
    /// `[detection]`.
    pub detection: DetectionSettings,
    /// The settings files read, for messages.
    #[serde(skip)]
    pub origin: String,
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Listen address; empty = off.
    pub listen: String,
    /// Allow a listen address that is not loopback.
    pub allow_remote: bool,
    /// Host names served besides addresses and `localhost` (the name a firewall-guarded server is
    /// reached by); every other name is refused, wherever the server listens.
    pub allowed_hosts: Vec<String>,
}

/// `[health]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    /// Seconds without a successful chain read before the feed counts as stuck.
    pub feed_stall_s: u64,
    /// Blocks of lag before the feed counts as behind.
    pub max_head_lag_blocks: u64,
    /// Live: seconds without any answer from the CLOB before it counts as unreachable.
    pub clob_stale_s: u64,
    /// Seconds the newest block read may be older than this host's clock before the feed counts
    /// as behind (five times as long: unhealthy); 0 = off.
    pub max_chain_age_s: u64,
}

/// `[chain]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSettings {
    /// The chain id every RPC endpoint must report (137: Polygon).
    pub chain_id: u64,
    /// Watched exchange contracts.
    pub exchanges: Vec<Address>,
    /// Conditional Tokens (ERC-1155) contract for target balances.
    pub conditional_tokens: Address,
    /// Exchange V3's ERC-1155 PositionManager: where V3 markets' positions are held.
    pub position_manager: Address,
    /// The exchanges of the V3 generation (their tokens' balances are read from the PositionManager).
    pub v3_exchanges: Vec<Address>,
    /// Poll period, ms.
    pub poll_interval_ms: u64,
    /// Blocks of burial before acting.
    pub confirmations: u64,
    /// First block when there is no checkpoint; 0 = head.
    pub start_block: u64,
    /// Largest `eth_getLogs` range.
    pub max_block_range: u64,
    /// JSON-RPC pacing.
    pub rpc_requests_per_second: u32,
    /// Per-call timeout, ms.
    pub request_timeout_ms: u64,
    /// Timeout of a target balance read, ms.
    pub balance_timeout_ms: u64,
    /// Reconnect backoff cap, ms.
    pub reconnect_backoff_max_ms: u64,
    /// Failures on one endpoint before trying the next.
    pub failover_after_errors: u32,
    /// Seconds the head may stay at one block before the endpoint counts as stuck (0: never).
    pub head_stall_s: u64,
}

/// `[copy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopySettings {
    /// Limit price distance from the target's price, bps.
    pub max_slippage_bps: u32,
    /// Smallest order value.
    #[serde(deserialize_with = "de_usdc")]
    pub min_order_usdc: Usdc,
    /// Oldest fill still copied, seconds after its block (0: no limit).
    pub max_copy_delay_s: u64,
    /// Do not copy into closed markets.
    pub skip_closed: bool,
    /// Do not buy into a market ending within this many minutes (0: no limit).
    pub min_minutes_to_end: u64,
    /// Orders placed at once; further approved copies wait for a slot.
    pub max_in_flight: usize,
}

/// `[markets]`: market metadata from the Gamma API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketsSettings {
    /// Metadata older than this is fetched again, seconds (resolved markets never are).
    pub refresh_s: u64,
    /// One Gamma call longer than this is abandoned, ms.
    pub timeout_ms: u64,
}

/// `[alerts]`: warnings through the notifier before things become an outage; 0 turns one off.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsSettings {
    /// Seconds between two checks.
    pub check_every_s: u64,
    /// A warning repeats at most this often, minutes.
    pub cooldown_min: u64,
    /// Minutes without a target fill while targets are copied.
    pub no_fill_minutes: u64,
    /// Share of the daily loss limit used, percent.
    pub drawdown_pct: u32,
    /// Slowest acceptable CLOB answer, ms (live).
    pub clob_slow_ms: u64,
    /// Least free disk beside the journal, MiB.
    pub disk_min_free_mb: u64,
    /// Largest clock offset against the CLOB, ms (live); an unsynchronised clock is warned about too.
    pub clock_max_offset_ms: u64,
    /// Lowest acceptable win rate of the latest closed trades, percent.
    pub win_rate_min_pct: u32,
    /// How many of the latest closed trades.
    pub win_rate_window: u32,
}

/// `[redeem]`: turning resolved markets' winning tokens back into pUSD.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemSettings {
    /// Redeem (false: Polymarket's auto-redeem does it).
    pub enabled: bool,
    /// Seconds between rounds.
    pub check_every_s: u64,
    /// Attempts before a redemption is left to the operator.
    pub attempts: u32,
    /// Seconds before the first retry (doubling after each next one, at most an hour).
    pub retry_after_s: u64,
    /// Seconds a round waits for a transaction to be mined.
    pub confirm_wait_s: u64,
    /// pUSD, the collateral the adapters pay.
    pub pusd: Address,
    /// The standard collateral adapter.
    pub standard_adapter: Address,
    /// The neg-risk collateral adapter.
    pub neg_risk_adapter: Address,
    /// Exchange V3's Router (redeems V3 positions).
    pub router: Address,
}

/// When a target's fill is acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// On the mined `OrderFilled` log (certain, later).
    Confirmed,
    /// On the first sighting of its settlement, before its block (sooner; it may never be mined).
    Pending,
}

impl Trigger {
    /// "confirmed" or "pending".
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Pending => "pending",
        }
    }

    /// Parses "confirmed"/"pending".
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "confirmed" => Some(Self::Confirmed),
            "pending" => Some(Self::Pending),
            _ => None,
        }
    }
}

/// How the log is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line, for a log shipper.
    Json,
}

/// What reaching the daily loss limit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DailyLossAction {
    /// Trading goes to `reducing`: exits of open positions are still copied, nothing new is bought.
    Reduce,
    /// Trading halts: nothing is sent.
    Halt,
}

/// How a paper copy is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FillModel {
    /// At the target's price moved by the simulated slippage (no network).
    TargetPrice,
    /// By walking the CLOB's live order book.
    OrderBook,
}

/// Where pending transactions are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PendingSource {
    /// The node's pool, read on a timer.
    Txpool,
    /// A websocket subscription.
    Subscription,
}

/// `[detection]`: seeing a target's trade before its block.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionSettings {
    /// Watch pending transactions to the exchanges (the node must expose its transaction pool).
    pub pending: bool,
    /// Where they come from: `txpool` (`txpool_content` read on a timer) or `subscription`
    /// (`eth_subscribe` over POLYGON_WS_URL: full bodies, else hashes looked up).
    pub pending_source: PendingSource,
    /// When fills are acted on, unless a target's own `trigger` says otherwise.
    pub trigger: Trigger,
    /// How often the transaction pool is read, ms.
    pub pending_poll_ms: u64,
    /// A sighted transaction not mined after this many blocks is an orphan.
    pub orphan_after_blocks: u64,
    /// The largest copy of a fill seen only pending (0: the usual caps alone).
    #[serde(deserialize_with = "de_usdc")]
    pub pending_max_order_usdc: Usdc,
    /// Read Polymarket's RTDS trade feed as a sighting source (it never triggers a copy).
    pub rtds: bool,
    /// RTDS's websocket URL.
    pub rtds_url: String,
    /// No RTDS data for this long: the socket is rebuilt, seconds.
    pub rtds_stale_s: u64,
    /// Keep a second RTDS socket as a standby.
    pub rtds_standby: bool,
}

/// `[risk]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskSettings {
    /// Per-order cap.
    #[serde(deserialize_with = "de_usdc")]
    pub max_order_usdc: Usdc,
    /// Per-token position cap.
    #[serde(deserialize_with = "de_usdc")]
    pub max_position_usdc: Usdc,
    /// Total exposure cap.
    #[serde(deserialize_with = "de_usdc")]
    pub max_total_exposure_usdc: Usdc,
    /// Copies per wallet per hour.
    pub max_trades_per_hour: u32,
    /// Daily realized loss limit.
    #[serde(deserialize_with = "de_usdc")]
    pub daily_loss_limit_usdc: Usdc,
    /// Error streak that trips the breaker.
    pub max_consecutive_errors: u32,
    /// Breaker/stop-file poll period, ms.
    pub breaker_poll_ms: u64,
    /// How often open positions are marked at CLOB midpoints, seconds (0 = never).
    pub mark_interval_s: u64,
    /// What the daily loss limit does.
    pub daily_loss_action: DailyLossAction,
    /// The trading day (and the daily loss limit) opens at this hour, UTC.
    pub day_starts_at_hour: u32,
}

/// `[paper]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperSettings {
    /// Simulated slippage against us, bps (`target_price` model).
    pub slippage_bps: u32,
    /// How a paper copy is priced.
    pub fill_model: FillModel,
}

/// `[live]`: live trading on Polymarket's CLOB V2.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveSettings {
    /// The journal used when live (paper history never mixes with real money).
    pub db_path: PathBuf,
    /// How the key signs: `eoa`, `poly_proxy`, `poly_gnosis_safe` or `poly_1271`.
    pub signature_type: String,
    /// The wallet holding the funds ("" = derived from the key for the signature type).
    pub funder: String,
    /// `FAK`, `FOK` or `GTD`.
    pub order_type: String,
    /// Lifetime of a GTD order, seconds (the CLOB wants at least a minute of margin).
    pub gtd_expiry_s: u64,
    /// One CLOB call longer than this is abandoned; after a POST its outcome is `unknown`, ms.
    pub request_timeout_ms: u64,
    /// How long an `unknown` order is looked up before it is left for the next start, seconds.
    pub resolve_for_s: u64,
    /// Retries of a POST answered 425 (engine restarting) or 503, while the copy is not stale.
    pub max_retries: u32,
    /// First wait before such a retry, doubled each time, ms.
    pub retry_backoff_ms: u64,
    /// Wait after a 429 when the answer names no delay, ms.
    pub rate_limit_wait_ms: u64,
    /// Most CLOB calls per second (Polymarket allows 350 order posts per second in bursts).
    pub requests_per_second: u32,
    /// A "matched" order not seen on chain within this many seconds is reported and reversed.
    pub settle_timeout_s: u64,
    /// Ask Polymarket whether this server's region may trade (`doctor`, live start).
    pub check_geoblock: bool,
}

impl Settings {
    /// Cross-field and range checks; every violation is returned.
    #[must_use]
    pub fn validate(&self, file: &str) -> Vec<Problem> {
        super::settings_rules::all(self, file)
    }

    /// The daemon's control socket: `control_socket`, or the journal's path with `.sock` appended.
    #[must_use]
    pub fn control_socket_path(&self) -> PathBuf {
        if self.control_socket.as_os_str().is_empty() {
            let mut p = self.db_path.clone().into_os_string();
            p.push(".sock");
            PathBuf::from(p)
        } else {
            self.control_socket.clone()
        }
    }

    /// The hard limits, as the risk core takes them.
    #[must_use]
    pub const fn limits(&self) -> Limits {
        Limits {
            max_order_usdc: self.risk.max_order_usdc,
            max_position_usdc: self.risk.max_position_usdc,
            max_total_exposure_usdc: self.risk.max_total_exposure_usdc,
            max_trades_per_hour: self.risk.max_trades_per_hour,
            daily_loss_limit_usdc: self.risk.daily_loss_limit_usdc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_validate() {
        let s = Settings::load(&SettingsSources::default()).unwrap();
        assert_eq!(s.chain.exchanges.len(), 5);
        assert_eq!(s.risk.max_order_usdc, Usdc(100_000_000));
        assert_eq!(s.copy.min_order_usdc, Usdc(1_000_000));
        assert_eq!(s.chain.confirmations, 0);
    }

    #[test]
    fn risky_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.toml");
        // (settings text, field refused)
        for (text, field) in [
            ("emergency_stop_file = \"\"\n", "emergency_stop_file"),
            ("db_path = \"\"\n", "db_path"),
            ("[chain]\nreconnect_backoff_max_ms = 0\n", "chain.reconnect_backoff_max_ms"),
            ("[http]\nlisten = \"0.0.0.0:9187\"\n", "http.listen"),
            ("[http]\nallowed_hosts = [\"polycopy.lan:9187\"]\n", "http.allowed_hosts"),
            ("[http]\nallowed_hosts = [\"*.lan\"]\n", "http.allowed_hosts"),
            ("db_path = \"same.db\"\n[live]\ndb_path = \"./same.db\"\n", "live.db_path"),
            ("[copy]\nmin_order_usdc = 200\n", "copy.min_order_usdc"),
            ("[detection]\npending_max_order_usdc = 0.5\n", "detection.pending_max_order_usdc"),
            ("[live]\nresolve_for_s = 0\n", "live.resolve_for_s"),
            ("[chain]\nhead_stall_s = 3\n", "chain.head_stall_s"),
            ("[live]\nsettle_timeout_s = 0\n", "live.settle_timeout_s"),
            ("[telegram]\nparked_retry_s = 0\n", "telegram.parked_retry_s"),
            ("[telegram]\nroutine_attempts = 0\n", "telegram.routine_attempts"),
            // Past the hand-off channel's limit: a panic when Telegram connects.
            ("[telegram]\nqueue_capacity = 3000000000000000000\n", "telegram.queue_capacity"),
            // Far past any use, and an overflow of `Instant + Duration` at the first order.
            ("[live]\nresolve_for_s = 9223372036854775807\n", "live.resolve_for_s"),
            ("[redeem]\nconfirm_wait_s = 2592001\n", "redeem.confirm_wait_s"),
            ("[live]\nretry_backoff_ms = 9223372036854775807\n", "live.retry_backoff_ms"),
            (
                "mode = \"live\"\n[chain]\nexchanges = [\"0xE111180000d2663C0091e4f400237545B87B996B\"]\n",
                "chain.exchanges",
            ),
        ] {
            std::fs::write(&f, text).unwrap();
            let errs =
                Settings::load(&SettingsSources { config_file: Some(f.clone()), system_file: None }).unwrap_err();
            assert!(errs.iter().any(|p| p.field == field), "{text}: {errs:?}");
        }
        std::fs::write(
            &f,
            "[http]\nlisten = \"0.0.0.0:9187\"\nallow_remote = true\nallowed_hosts = [\"polycopy.lan\"]\n",
        )
        .unwrap();
        assert!(Settings::load(&SettingsSources { config_file: Some(f), system_file: None }).is_ok());
    }

    #[test]
    fn a_key_pasted_into_a_setting_is_never_repeated() {
        let key = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.toml");
        for (text, field) in [
            (format!("[http]\nlisten = \"{key}\"\n"), "http.listen"),
            (format!("[telegram]\ndaily_report_at = \"{key}\"\n"), "telegram.daily_report_at"),
            (format!("[telegram]\nweekly_report_day = \"{key}\"\n"), "telegram.weekly_report_day"),
            (format!("[detection]\nrtds = true\nrtds_url = \"{key}\"\n"), "detection.rtds_url"),
            (format!("[http]\nallowed_hosts = [\"{key}/x\"]\n"), "http.allowed_hosts"),
            // A list whose elements the checks do not type: the parser's own message quoted it.
            (format!("[telegram]\nallowed_user_ids = [\"{key}\"]\n"), "(settings)"),
            // A word setting.
            (format!("log_format = \"{key}\"\n"), "log_format"),
        ] {
            std::fs::write(&f, &text).unwrap();
            let errs =
                Settings::load(&SettingsSources { config_file: Some(f.clone()), system_file: None }).unwrap_err();
            let all = format!("{errs:?}");
            assert!(errs.iter().any(|p| p.field == field), "{text}: {all}");
            assert!(!all.contains(&key[..20]), "{text}: {all}");
        }
    }

    #[test]
    fn overrides_from_a_file_are_exact_and_validated() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.toml");
        std::fs::write(&f, "[copy]\nmin_order_usdc = 0.1\n[risk]\nmax_order_usdc = 0.1\nmax_trades_per_hour = 0\n")
            .unwrap();
        let errs = Settings::load(&SettingsSources { config_file: Some(f.clone()), system_file: None }).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "risk.max_trades_per_hour");
        std::fs::write(&f, "[copy]\nmin_order_usdc = 0.1\n[risk]\nmax_order_usdc = 0.1\n").unwrap();
        let s = Settings::load(&SettingsSources { config_file: Some(f.clone()), system_file: None }).unwrap();
        assert_eq!(s.risk.max_order_usdc, Usdc(100_000));
        std::fs::write(&f, "[risk]\nmax_ordr_usdc = 1\n").unwrap();
        let errs = Settings::load(&SettingsSources { config_file: Some(f), system_file: None }).unwrap_err();
        assert!(errs[0].message.contains("max_ordr_usdc"), "{errs:?}");
    }
}
