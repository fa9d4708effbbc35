//! `[telegram]`: how loud each kind of message is, the delivery limits, and when the scheduled
//! reports go out.

use serde::Deserialize;

/// How loud one kind of Telegram message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyLevel {
    /// Delivered with sound.
    On,
    /// Delivered without sound.
    Silent,
    /// Not sent.
    Off,
}

/// `[telegram]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramSettings {
    /// Level per event kind.
    pub notify: std::collections::BTreeMap<String, NotifyLevel>,
    /// Messages per second to one chat.
    pub per_chat_per_second: u32,
    /// Messages per minute to a group chat.
    pub per_group_per_minute: u32,
    /// Pending messages held.
    pub queue_capacity: usize,
    /// Attempts for a routine message.
    pub routine_attempts: u32,
    /// Daily report time, UTC.
    pub daily_report_at: String,
    /// Weekly report day.
    pub weekly_report_day: String,
    /// Long-poll timeout, seconds.
    pub poll_timeout_s: u32,
    /// A chat Telegram refuses for good (bot blocked, chat not found) is tried again this often, seconds.
    pub parked_retry_s: u32,
    /// Users who may command the bot in the authorized chats (empty: every member).
    pub allowed_user_ids: Vec<u64>,
}

/// Event kinds that must always reach the operator.
pub const ALWAYS_ON: [&str; 6] = ["breaker_tripped", "breaker_reset", "error", "alert", "warning", "operator"];
/// Event kinds that can be configured.
pub const EVENT_KINDS: [&str; 22] = [
    "redeemed",
    "warning",
    "operator",
    "started",
    "stopped",
    "fill_detected",
    "sized",
    "rejected",
    "executed",
    "breaker_tripped",
    "breaker_reset",
    "wallets_reloaded",
    "wallets_rejected",
    "reorg",
    "withdrawn",
    "reorged_after_copy",
    "orphaned",
    "unorphaned",
    "settled",
    "corrected",
    "alert",
    "error",
];

impl TelegramSettings {
    /// The level of `kind` (alerts always on; unlisted kinds on).
    #[must_use]
    pub fn level(&self, kind: &str) -> NotifyLevel {
        if ALWAYS_ON.contains(&kind) {
            return NotifyLevel::On;
        }
        self.notify.get(kind).copied().unwrap_or(NotifyLevel::On)
    }

    /// True when scheduled reports are turned off (`daily_report_at = "off"`).
    #[must_use]
    pub fn reports_off(&self) -> bool {
        self.daily_report_at.eq_ignore_ascii_case("off")
    }

    /// The daily report time as seconds after midnight UTC (`None`: off or invalid).
    #[must_use]
    pub fn daily_report_secs(&self) -> Option<u32> {
        let parts: Vec<&str> = self.daily_report_at.split(':').collect();
        let n = |s: &str| s.parse::<u32>().ok();
        match parts.as_slice() {
            [h, m] => Some(n(h).filter(|h| *h < 24)? * 3600 + n(m).filter(|m| *m < 60)? * 60),
            [h, m, s] => {
                Some(n(h).filter(|h| *h < 24)? * 3600 + n(m).filter(|m| *m < 60)? * 60 + n(s).filter(|s| *s < 60)?)
            }
            _ => None,
        }
    }

    /// The weekly report day, 0 = Monday.
    #[must_use]
    pub fn weekly_day(&self) -> Option<u32> {
        let d = self.weekly_report_day.to_ascii_lowercase();
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .iter()
            .position(|x| d.starts_with(x))
            .and_then(|i| u32::try_from(i).ok())
    }
}
