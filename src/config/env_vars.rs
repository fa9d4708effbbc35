//! `POLYCOPY_*` environment variables: each must name a setting (or be one of the few the scripts and
//! tests use). A misspelled one is refused with the closest valid name, never silently ignored: an
//! operator who set a limit must not trade without it.

use config::{Config, File, FileFormat, Value, ValueKind};

use crate::config::Problem;
use crate::config::settings::DEFAULT_TOML;

/// `POLYCOPY_*` variables that are not settings.
const NOT_SETTINGS: [&str; 8] = [
    "POLYCOPY_SYSTEM_CONFIG",
    "POLYCOPY_BIN",
    "POLYCOPY_ARGS",
    "POLYCOPY_FAULT",
    "POLYCOPY_FAULT_HOLD",
    "POLYCOPY_FAULT_CLOCK",
    "POLYCOPY_FAULT_COPIES_WAITING",
    "POLYCOPY_INSTANCE",
];

/// Tables whose keys are free (any event kind): `POLYCOPY_TELEGRAM__NOTIFY__<KIND>`.
const OPEN_TABLES: [&str; 1] = ["POLYCOPY_TELEGRAM__NOTIFY__"];

fn flatten(prefix: &str, v: &Value, out: &mut Vec<String>) {
    match &v.kind {
        ValueKind::Table(t) => {
            for (k, v) in t {
                let name = if prefix.is_empty() {
                    k.to_ascii_uppercase()
                } else {
                    format!("{prefix}__{}", k.to_ascii_uppercase())
                };
                flatten(&name, v, out);
            }
        }
        _ => out.push(format!("POLYCOPY_{prefix}")),
    }
}

/// Every settings variable name, from the built-in defaults.
#[must_use]
pub fn known_names() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(c) = Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml)).build()
        && let Ok(map) = c.try_deserialize::<config::Map<String, Value>>()
    {
        for (k, v) in &map {
            flatten(&k.to_ascii_uppercase(), v, &mut out);
        }
    }
    out.sort();
    out
}

/// Edit distance between two names (for "did you mean").
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// One problem per `POLYCOPY_*` variable in `names` that names no setting.
#[must_use]
pub fn unknown_vars<'a>(names: impl Iterator<Item = &'a str>) -> Vec<Problem> {
    let known = known_names();
    let names: Vec<&str> = names.collect();
    // Read only with the prefix in upper case: `polycopy_risk__…` would be ignored without a word,
    // and the daemon would trade without the limit the operator meant to set.
    let lower_prefix = names
        .iter()
        .copied()
        .filter(|n| n.get(..9).is_some_and(|p| p.eq_ignore_ascii_case("POLYCOPY_")) && !n.starts_with("POLYCOPY_"))
        .map(|n| {
            Problem::new(
                "environment",
                n,
                format!("would be ignored: write the prefix in upper case, {}", n.to_ascii_uppercase()),
            )
        });
    let unknown = names
        .iter()
        .copied()
        .filter(|n| n.starts_with("POLYCOPY_"))
        .filter(|n| !NOT_SETTINGS.contains(n) && !OPEN_TABLES.iter().any(|t| n.starts_with(t)))
        .filter(|n| !known.iter().any(|k| k.eq_ignore_ascii_case(n)))
        .map(|n| {
            let upper = n.to_ascii_uppercase();
            let best = known.iter().min_by_key(|k| distance(&upper, k)).filter(|k| distance(&upper, k) <= 4);
            let hint = best.map_or_else(
                || " (see config/default.toml; levels are separated by two underscores)".to_owned(),
                |k| format!(": did you mean {k}?"),
            );
            Problem::new("environment", n, format!("is not a setting, so it would be ignored{hint}"))
        });
    lower_prefix.chain(unknown).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelled_variable_is_refused_with_the_closest_name() {
        let known = known_names();
        assert!(known.contains(&"POLYCOPY_RISK__MAX_ORDER_USDC".to_owned()), "{known:?}");
        // (variable, refused, suggestion)
        let cases = [
            ("POLYCOPY_RISK_MAX_ORDER_USDC", true, Some("POLYCOPY_RISK__MAX_ORDER_USDC")),
            ("POLYCOPY_RISK__MAX_ORDER_USDC", false, None),
            ("polycopy_risk__max_order_usdc", true, Some("upper case, POLYCOPY_RISK__MAX_ORDER_USDC")),
            ("Polycopy_RISK__DAILY_LOSS_LIMIT_USDC", true, Some("upper case")),
            ("POLYCOPY_risk__max_order_usdc", false, None),
            ("ПОЛИКОПИ_RISK", false, None),
            ("POLYCOPé_RISK", false, None),
            ("POLYCOPY_RISK__MAX_ORDR_USDC", true, Some("POLYCOPY_RISK__MAX_ORDER_USDC")),
            ("POLYCOPY_SYSTEM_CONFIG", false, None),
            ("POLYCOPY_TELEGRAM__NOTIFY__EXECUTED", false, None),
            ("POLYCOPY_NONSENSE_THAT_IS_FAR_AWAY", true, None),
            ("PATH", false, None),
        ];
        for (name, refused, hint) in cases {
            let p = unknown_vars(std::iter::once(name));
            assert_eq!(!p.is_empty(), refused, "{name}: {p:?}");
            if let Some(h) = hint {
                assert!(p[0].message.contains(h), "{name}: {p:?}");
            }
        }
    }
}
