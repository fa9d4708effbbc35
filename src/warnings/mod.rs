//! Warning alerts: conditions that are not yet an outage but that an operator on call wants to hear
//! about before they become one (the runbooks' thresholds). Which warnings are due is a pure
//! function of one observation; each warning then waits out its cool-down before it repeats.
//! Gathering the observation (journal, supervisor, CLOB, disk, clock) is in [`probe`].

pub mod probe;

use std::collections::HashMap;
use std::fmt;

use crate::domain::Usdc;

/// The kinds of warning, each with its own cool-down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarningKind {
    /// No target fill seen for hours while targets are enabled: a stale exchange list or a dead feed.
    NoFills,
    /// Today's loss is nearing the daily limit.
    Drawdown,
    /// The CLOB answers slowly.
    ClobSlow,
    /// Little disk left beside the journal.
    DiskLow,
    /// The clock is not synchronised, or is off against the CLOB's.
    Clock,
    /// Recent copies lose more often than the threshold allows.
    WinRate,
}

impl WarningKind {
    /// Every kind (each has a series in `/metrics` from the start, so a first warning is an increase).
    pub const ALL: [Self; 6] =
        [Self::NoFills, Self::Drawdown, Self::ClobSlow, Self::DiskLow, Self::Clock, Self::WinRate];

    /// The kind a journaled warning names (`WARNING (<code>): …`).
    #[must_use]
    pub fn from_message(message: &str) -> Option<Self> {
        let code = message.strip_prefix("WARNING (")?.split(')').next()?;
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Stable code, as journaled and shown.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::NoFills => "no_fills",
            Self::Drawdown => "drawdown",
            Self::ClobSlow => "clob_slow",
            Self::DiskLow => "disk_low",
            Self::Clock => "clock",
            Self::WinRate => "win_rate",
        }
    }
}

impl fmt::Display for WarningKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The thresholds (`[alerts]`); 0 turns a warning off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Minutes without a target fill (while targets are enabled).
    pub no_fill_minutes: u64,
    /// Share of the daily loss limit used, percent.
    pub drawdown_pct: u32,
    /// Slowest acceptable CLOB answer, ms.
    pub clob_slow_ms: u64,
    /// Least free disk beside the journal, MiB.
    pub disk_min_free_mb: u64,
    /// Largest clock offset, ms (and an unsynchronised clock is warned about when this is set).
    pub clock_max_offset_ms: u64,
    /// Lowest acceptable win rate, percent.
    pub win_rate_min_pct: u32,
    /// Over this many of the latest closed trades.
    pub win_rate_window: u32,
}

/// What the clock looks like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClockReading {
    /// The system says whether NTP keeps it synchronised (`None`: it could not tell).
    pub synchronised: Option<bool>,
    /// Our clock less the CLOB's, ms (`None`: not measured).
    pub offset_ms: Option<i64>,
}

/// One look at everything the warnings watch; `None` where a figure is not known (never a warning).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// Now, unix ms.
    pub now_ms: i64,
    /// Targets being copied (enabled and not paused).
    pub targets_copying: usize,
    /// The last target fill seen, unix ms; else when watching began.
    pub last_fill_ms: Option<i64>,
    /// When the daemon started, unix ms (no "no fills" warning before it has run that long).
    pub started_ms: i64,
    /// Today's P&L as the daily loss limit counts it.
    pub pnl_today: Option<Usdc>,
    /// The daily loss limit (a positive amount).
    pub daily_loss_limit: Usdc,
    /// True while the breaker is already tripped or reducing (its own alert said it all).
    pub breaker_tripped: bool,
    /// The CLOB's last answer time, ms.
    pub clob_ms: Option<u64>,
    /// Free disk beside the journal, bytes.
    pub disk_free_bytes: Option<u64>,
    /// The clock.
    pub clock: ClockReading,
    /// Wins and trades among the latest closed trades.
    pub wins: Option<(u32, u32)>,
}

/// The warnings due now, each with its message.
#[must_use]
pub fn due(o: &Observation, t: &Thresholds) -> Vec<(WarningKind, String)> {
    [no_fills(o, t), drawdown(o, t), clob_slow(o, t), disk_low(o, t), clock(o, t), win_rate(o, t)]
        .into_iter()
        .flatten()
        .collect()
}

/// A warning: its kind and its text.
type Due = Option<(WarningKind, String)>;

fn no_fills(o: &Observation, t: &Thresholds) -> Due {
    if t.no_fill_minutes == 0 || o.targets_copying == 0 {
        return None;
    }
    let window = i64::try_from(t.no_fill_minutes).unwrap_or(i64::MAX / 60_000).saturating_mul(60_000);
    // A quiet spell counts from the last fill, but only once the daemon has watched that long.
    let since = o.last_fill_ms.unwrap_or(o.started_ms);
    (o.now_ms - since >= window && o.now_ms - o.started_ms >= window).then(|| {
        (
            WarningKind::NoFills,
            format!(
                "no target fill seen for {} min while {} target(s) are copied: check the feed (status, /health) \
                 and that chain.exchanges lists the current exchange contracts",
                (o.now_ms - since) / 60_000,
                o.targets_copying
            ),
        )
    })
}

fn drawdown(o: &Observation, t: &Thresholds) -> Due {
    let pnl = o.pnl_today.filter(|pnl| pnl.0 < 0)?;
    if t.drawdown_pct == 0 || o.breaker_tripped || o.daily_loss_limit.0 <= 0 {
        return None;
    }
    let used = i128::from(-pnl.0) * 100 / i128::from(o.daily_loss_limit.0);
    (used >= i128::from(t.drawdown_pct)).then(|| {
        (
            WarningKind::Drawdown,
            format!(
                "today's P&L {pnl} USDC has used {used} % of the {} USDC daily loss limit (warning at {} %)",
                o.daily_loss_limit, t.drawdown_pct
            ),
        )
    })
}

fn clob_slow(o: &Observation, t: &Thresholds) -> Due {
    let ms = o.clob_ms.filter(|ms| t.clob_slow_ms > 0 && *ms > t.clob_slow_ms)?;
    Some((WarningKind::ClobSlow, format!("the CLOB took {ms} ms to answer (threshold {} ms)", t.clob_slow_ms)))
}

fn disk_low(o: &Observation, t: &Thresholds) -> Due {
    let free_mb =
        o.disk_free_bytes.map(|b| b / (1024 * 1024)).filter(|mb| t.disk_min_free_mb > 0 && *mb < t.disk_min_free_mb)?;
    Some((
        WarningKind::DiskLow,
        format!(
            "{free_mb} MiB free beside the journal (threshold {} MiB): prune old backups and logs (RUNBOOK, Maintenance)",
            t.disk_min_free_mb
        ),
    ))
}

fn clock(o: &Observation, t: &Thresholds) -> Due {
    if t.clock_max_offset_ms == 0 {
        return None;
    }
    if o.clock.synchronised == Some(false) {
        return Some((
            WarningKind::Clock,
            "the system clock is not synchronised by NTP (timedatectl): order expiries and the trading day \
             depend on it"
                .into(),
        ));
    }
    let off = o.clock.offset_ms.filter(|off| off.unsigned_abs() > t.clock_max_offset_ms)?;
    Some((WarningKind::Clock, format!("our clock is {off} ms off the CLOB's (threshold {} ms)", t.clock_max_offset_ms)))
}

fn win_rate(o: &Observation, t: &Thresholds) -> Due {
    let (wins, n) = o.wins?;
    if t.win_rate_min_pct == 0
        || t.win_rate_window == 0
        || n < t.win_rate_window
        || wins * 100 >= t.win_rate_min_pct * n
    {
        return None;
    }
    Some((
        WarningKind::WinRate,
        format!(
            "only {wins} of the last {n} closed trades made money ({} %, threshold {} %): review the targets",
            wins * 100 / n,
            t.win_rate_min_pct
        ),
    ))
}

/// When each warning last went out: one is sent again only after its cool-down.
#[derive(Debug, Clone, Default)]
pub struct Cooldowns(HashMap<WarningKind, i64>);

impl Cooldowns {
    /// Remembers that `kind` went out at `at_ms` (a warning journaled before a restart).
    pub fn remember(&mut self, kind: WarningKind, at_ms: i64) {
        let last = self.0.entry(kind).or_insert(at_ms);
        *last = (*last).max(at_ms);
    }

    /// True (and remembered) when `kind` may be sent at `now_ms`.
    pub fn admit(&mut self, kind: WarningKind, now_ms: i64, cooldown_ms: i64) -> bool {
        match self.0.get(&kind) {
            Some(last) if now_ms - last < cooldown_ms => false,
            _ => {
                self.0.insert(kind, now_ms);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ONE;

    const H: i64 = 3_600_000;
    const T: Thresholds = Thresholds {
        no_fill_minutes: 360,
        drawdown_pct: 80,
        clob_slow_ms: 2_000,
        disk_min_free_mb: 2_048,
        clock_max_offset_ms: 1_000,
        win_rate_min_pct: 40,
        win_rate_window: 10,
    };

    fn calm() -> Observation {
        Observation {
            now_ms: 100 * H,
            targets_copying: 2,
            last_fill_ms: Some(99 * H),
            started_ms: 0,
            pnl_today: Some(Usdc(-10 * ONE)),
            daily_loss_limit: Usdc(100 * ONE),
            breaker_tripped: false,
            clob_ms: Some(150),
            disk_free_bytes: Some(50 << 30),
            clock: ClockReading { synchronised: Some(true), offset_ms: Some(20) },
            wins: Some((6, 10)),
        }
    }

    #[test]
    fn each_warning_fires_on_its_condition_only() {
        let cases: Vec<(&str, Box<dyn Fn(&mut Observation)>, Vec<WarningKind>)> = vec![
            ("calm", Box::new(|_| {}), vec![]),
            ("no fill for 7 h", Box::new(|o| o.last_fill_ms = Some(93 * H)), vec![WarningKind::NoFills]),
            (
                "no fill ever, running 7 h",
                Box::new(|o| {
                    o.last_fill_ms = None;
                    o.started_ms = 93 * H;
                }),
                vec![WarningKind::NoFills],
            ),
            (
                "just started: no verdict yet",
                Box::new(|o| {
                    o.last_fill_ms = None;
                    o.started_ms = 99 * H;
                }),
                vec![],
            ),
            (
                "no targets: no fills expected",
                Box::new(|o| {
                    o.last_fill_ms = Some(0);
                    o.targets_copying = 0;
                }),
                vec![],
            ),
            ("80 % of the loss limit", Box::new(|o| o.pnl_today = Some(Usdc(-80 * ONE))), vec![WarningKind::Drawdown]),
            ("79 %", Box::new(|o| o.pnl_today = Some(Usdc(-79 * ONE))), vec![]),
            (
                "tripped already",
                Box::new(|o| {
                    o.pnl_today = Some(Usdc(-120 * ONE));
                    o.breaker_tripped = true;
                }),
                vec![],
            ),
            ("slow CLOB", Box::new(|o| o.clob_ms = Some(2_001)), vec![WarningKind::ClobSlow]),
            ("disk low", Box::new(|o| o.disk_free_bytes = Some(1 << 30)), vec![WarningKind::DiskLow]),
            ("NTP off", Box::new(|o| o.clock.synchronised = Some(false)), vec![WarningKind::Clock]),
            ("skewed", Box::new(|o| o.clock.offset_ms = Some(-1_500)), vec![WarningKind::Clock]),
            ("losing", Box::new(|o| o.wins = Some((3, 10))), vec![WarningKind::WinRate]),
            ("too few trades to judge", Box::new(|o| o.wins = Some((0, 9))), vec![]),
            (
                "unknowns never warn",
                Box::new(|o| {
                    o.clob_ms = None;
                    o.disk_free_bytes = None;
                    o.clock = ClockReading::default();
                    o.wins = None;
                    o.pnl_today = None;
                }),
                vec![],
            ),
        ];
        for (name, change, want) in cases {
            let mut o = calm();
            change(&mut o);
            let got: Vec<WarningKind> = due(&o, &T).into_iter().map(|(k, _)| k).collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn zero_turns_a_warning_off() {
        let mut o = calm();
        o.disk_free_bytes = Some(0);
        o.clob_ms = Some(60_000);
        let off = Thresholds { disk_min_free_mb: 0, clob_slow_ms: 0, ..T };
        assert!(due(&o, &off).is_empty());
    }

    #[test]
    fn journaled_warnings_name_their_kind() {
        assert_eq!(WarningKind::from_message("WARNING (disk_low): 3 MiB free"), Some(WarningKind::DiskLow));
        assert_eq!(WarningKind::from_message("WARNING (nope): x"), None);
        assert_eq!(WarningKind::from_message("ALERT: x"), None);
        let mut c = Cooldowns::default();
        c.remember(WarningKind::Clock, 10);
        assert!(!c.admit(WarningKind::Clock, 10 + H - 1, H), "a restart does not reset the cool-down");
    }

    #[test]
    fn a_warning_repeats_only_after_its_cooldown() {
        let mut c = Cooldowns::default();
        assert!(c.admit(WarningKind::DiskLow, 0, H));
        assert!(!c.admit(WarningKind::DiskLow, H - 1, H));
        assert!(c.admit(WarningKind::Clock, 1, H), "each kind has its own");
        assert!(c.admit(WarningKind::DiskLow, H, H));
    }
}
