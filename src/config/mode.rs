//! Paper or live: decided by the settings file that every command reads, never by an environment
//! variable only the service sees. `PAPER_TRADING` may confirm the mode; a disagreement is an error,
//! so no two commands can ever act on different journals.

use serde::{Deserialize, Serialize};

use crate::config::Problem;

/// What the daemon trades with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Simulated fills, no keys (the default).
    #[default]
    Paper,
    /// Real orders on Polymarket's CLOB.
    Live,
}

impl Mode {
    /// `paper` or `live`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Paper => "paper",
            Self::Live => "live",
        }
    }

    /// True for paper trading.
    #[must_use]
    pub const fn is_paper(self) -> bool {
        matches!(self, Self::Paper)
    }

    /// The mode named `s` (as [`Self::as_str`] writes it), if any.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "paper" => Some(Self::Paper),
            "live" => Some(Self::Live),
            _ => None,
        }
    }
}

/// Checks the settings' `mode` against the environment.
///
/// `paper_var` is `PAPER_TRADING` as set (`None`: unset); `has_key` whether `PRIVATE_KEY` is set;
/// `origin` names the settings files read; `need_key` is true for commands that sign (run, doctor).
#[must_use]
pub fn check_mode(mode: Mode, paper_var: Option<bool>, has_key: bool, origin: &str, need_key: bool) -> Vec<Problem> {
    let mut p = Vec::new();
    match (mode, paper_var) {
        (Mode::Paper, Some(false)) => p.push(Problem::new(
            "environment",
            "PAPER_TRADING",
            format!(
                "PAPER_TRADING=false, but the settings ({origin}) say mode = \"paper\". The mode lives in the \
                 settings file so that every command agrees: set mode = \"live\" there to trade live, or \
                 remove PAPER_TRADING"
            ),
        )),
        (Mode::Live, Some(true)) => p.push(Problem::new(
            "environment",
            "PAPER_TRADING",
            format!(
                "PAPER_TRADING=true, but the settings ({origin}) say mode = \"live\": set mode = \"paper\" \
                 there, or remove PAPER_TRADING"
            ),
        )),
        _ => {}
    }
    if mode == Mode::Live && need_key && !has_key {
        p.push(Problem::new(
            "environment",
            "PRIVATE_KEY",
            format!(
                "the settings ({origin}) say mode = \"live\", but PRIVATE_KEY is not in the environment. The \
                 service reads it from its EnvironmentFile (polycopy.env beside those settings); by hand, run \
                 the command as root so that file is read, or export it"
            ),
        ));
    }
    p
}

/// Environment names of the Python system polycopy replaces, and what replaces each. They are
/// refused rather than ignored: an operator who set a loss limit must not trade without one.
pub const LEGACY_ENV: [(&str, &str); 8] = [
    ("MAX_POSITION_SIZE", "POLYCOPY_RISK__MAX_POSITION_USDC (or [risk] max_position_usdc)"),
    ("MAX_DAILY_LOSS", "POLYCOPY_RISK__DAILY_LOSS_LIMIT_USDC (or [risk] daily_loss_limit_usdc)"),
    ("MAX_ORDER_SIZE", "POLYCOPY_RISK__MAX_ORDER_USDC (or [risk] max_order_usdc)"),
    ("MAX_TOTAL_EXPOSURE", "POLYCOPY_RISK__MAX_TOTAL_EXPOSURE_USDC (or [risk] max_total_exposure_usdc)"),
    ("MAX_SLIPPAGE", "POLYCOPY_COPY__MAX_SLIPPAGE_BPS (or [copy] max_slippage_bps, in basis points)"),
    ("MAX_TRADES_PER_HOUR", "POLYCOPY_RISK__MAX_TRADES_PER_HOUR (or [risk] max_trades_per_hour)"),
    ("POLYGON_RPC", "POLYGON_RPC_URL"),
    ("DATABASE_PATH", "[live] db_path / db_path in the settings file"),
];

/// One problem per legacy variable that is set.
#[must_use]
pub fn legacy_env_problems(get: &dyn Fn(&str) -> Option<String>) -> Vec<Problem> {
    LEGACY_ENV
        .iter()
        .filter(|(name, _)| get(name).is_some_and(|v| !v.trim().is_empty()))
        .map(|(name, instead)| {
            Problem::new(
                "environment",
                *name,
                format!("is not a polycopy setting (it would be ignored): use {instead}"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_decide_and_the_environment_may_only_confirm() {
        // (mode, PAPER_TRADING, key set, need key) → problem fields
        let cases: [(Mode, Option<bool>, bool, bool, &[&str]); 8] = [
            (Mode::Paper, None, false, true, &[]),
            (Mode::Paper, Some(true), false, true, &[]),
            (Mode::Paper, Some(false), true, true, &["PAPER_TRADING"]),
            (Mode::Live, None, true, true, &[]),
            (Mode::Live, Some(false), true, true, &[]),
            (Mode::Live, Some(true), true, true, &["PAPER_TRADING"]),
            (Mode::Live, None, false, true, &["PRIVATE_KEY"]),
            (Mode::Live, None, false, false, &[]),
        ];
        for (i, (mode, var, key, need, want)) in cases.into_iter().enumerate() {
            let got: Vec<String> = check_mode(mode, var, key, "f.toml", need).into_iter().map(|p| p.field).collect();
            assert_eq!(got, want, "case {i}");
        }
        let p = check_mode(Mode::Live, None, false, "/etc/polycopy/polycopy.toml", true);
        assert!(p[0].message.contains("mode = \"live\"") && p[0].message.contains("/etc/polycopy/polycopy.toml"));
    }

    #[test]
    fn legacy_names_are_refused_with_their_replacement() {
        let get = |k: &str| match k {
            "MAX_DAILY_LOSS" => Some("50".to_owned()),
            "MAX_POSITION_SIZE" => Some(String::new()),
            _ => None,
        };
        let p = legacy_env_problems(&get);
        assert_eq!(p.len(), 1);
        assert!(p[0].message.contains("POLYCOPY_RISK__DAILY_LOSS_LIMIT_USDC"), "{p:?}");
    }
}
