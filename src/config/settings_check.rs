//! Type checks of the merged settings before they are deserialized.
//!
//! serde stops at the first wrong value, the `config` crate rounds `1.5` into an integer setting,
//! and both name the last file read even when the value came from an environment variable. This
//! walks the merged tree against the built-in defaults (every setting has one, and its type is the
//! setting's type) and reports every problem at the place it was written.

use config::{Value, ValueKind};

use crate::config::Problem;

/// Tables whose keys are free (checked by their own validation).
const FREE_TABLES: [&str; 1] = ["telegram.notify"];

/// Every type problem of `merged` against `defaults`.
#[must_use]
pub fn check(defaults: &config::Map<String, Value>, merged: &config::Map<String, Value>) -> Vec<Problem> {
    let mut out = Vec::new();
    table(defaults, merged, "", &mut out);
    out
}

fn table(defaults: &config::Map<String, Value>, merged: &config::Map<String, Value>, at: &str, out: &mut Vec<Problem>) {
    let mut keys: Vec<&String> = merged.keys().collect();
    keys.sort();
    for k in keys {
        let key = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
        let v = &merged[k];
        match defaults.get(k) {
            None => {
                let closest = defaults
                    .keys()
                    .min_by_key(|d| crate::config::env_vars::distance(k, d))
                    .filter(|d| crate::config::env_vars::distance(k, d) <= 4);
                let hint = closest.map_or_else(
                    || " (config/default.toml lists every setting)".to_owned(),
                    |d| format!(": did you mean {}?", if at.is_empty() { d.clone() } else { format!("{at}.{d}") }),
                );
                // The key as the operator typed it may hold a newline (a forged log line) or a
                // pasted private key: shown only in a safe form.
                let leaf = crate::config::problem::shown_key(k);
                let shown = if at.is_empty() { leaf } else { format!("{at}.{leaf}") };
                out.push(problem(v, &shown, format!("unknown setting {shown}{hint}")));
            }
            Some(d) => value(d, v, &key, out),
        }
    }
}

fn value(default: &Value, v: &Value, key: &str, out: &mut Vec<Problem>) {
    let wrong = |want: &str| format!("must be {want}, got {}", shown(&v.kind));
    let msg = match (&default.kind, &v.kind) {
        (ValueKind::Table(d), ValueKind::Table(m)) => {
            if !FREE_TABLES.contains(&key) {
                table(d, m, key, out);
            }
            None
        }
        (ValueKind::Table(_), _) => Some(wrong("a table of settings")),
        // USDC amounts are exact decimals: a fraction is meant.
        (_, _) if key.ends_with("_usdc") => match &v.kind {
            ValueKind::I64(_) | ValueKind::U64(_) | ValueKind::Float(_) => None,
            ValueKind::String(s) if crate::config::settings::number_to_decimal(s).is_some() => None,
            _ => Some(wrong("a USDC amount")),
        },
        (ValueKind::I64(_) | ValueKind::U64(_) | ValueKind::I128(_) | ValueKind::U128(_), _) => whole(&v.kind),
        (ValueKind::Boolean(_), ValueKind::Boolean(_)) => None,
        (ValueKind::Boolean(_), ValueKind::String(s)) if matches!(s.as_str(), "true" | "false") => None,
        (ValueKind::Boolean(_), _) => Some(wrong("true or false")),
        (ValueKind::String(_), ValueKind::String(_)) => None,
        (ValueKind::String(_), _) => Some(wrong("a string in quotes")),
        (ValueKind::Array(_), ValueKind::Array(_)) => None,
        (ValueKind::Array(_), _) => Some(wrong("a list")),
        _ => None,
    };
    if let Some(m) = msg {
        out.push(problem(v, key, m));
    }
}

/// An integer setting: a whole, non-negative number (the `config` crate would round 1.5 to 2).
fn whole(kind: &ValueKind) -> Option<String> {
    let bad = |got: String| Some(format!("must be a whole number of at least 0, got {got}"));
    match kind {
        ValueKind::I64(n) if *n < 0 => bad(n.to_string()),
        ValueKind::I128(n) if *n < 0 => bad(n.to_string()),
        ValueKind::I64(_) | ValueKind::U64(_) | ValueKind::I128(_) | ValueKind::U128(_) => None,
        ValueKind::String(s) if s.trim().parse::<u64>().is_ok() => None,
        other => bad(shown(other)),
    }
}

fn shown(kind: &ValueKind) -> String {
    match kind {
        ValueKind::Nil => "nothing".into(),
        ValueKind::Boolean(b) => b.to_string(),
        ValueKind::I64(n) => n.to_string(),
        ValueKind::I128(n) => n.to_string(),
        ValueKind::U64(n) => n.to_string(),
        ValueKind::U128(n) => n.to_string(),
        ValueKind::Float(f) => format!("{f:?}"),
        ValueKind::String(s) => super::problem::quoted(s),
        ValueKind::Table(_) => "a table".into(),
        ValueKind::Array(_) => "a list".into(),
    }
}

/// A problem placed where the value was written: its file, or its environment variable.
fn problem(v: &Value, key: &str, msg: String) -> Problem {
    match v.origin() {
        None => Problem::new("built-in defaults", key, msg),
        Some("the environment") => {
            let var = format!("POLYCOPY_{}", key.replace('.', "__").to_ascii_uppercase());
            Problem::new("environment", &var, msg)
        }
        Some(file) => Problem::new(file, key, msg),
    }
}

#[cfg(test)]
mod tests {
    use config::{Config, File, FileFormat};

    use super::*;

    fn tree(text: &str) -> config::Map<String, Value> {
        match Config::builder().add_source(File::from_str(text, FileFormat::Toml)).build().unwrap().cache.kind {
            ValueKind::Table(t) => t,
            _ => unreachable!(),
        }
    }

    #[test]
    fn every_type_problem_is_reported_with_its_key() {
        let defaults = tree("a = 1\nb = true\nc = \"x\"\nmax_usdc = 5\n[t]\nn = 2\nl = [1]\n");
        let cases: [(&str, &[&str]); 8] = [
            ("a = 3\nmax_usdc = 2.5\n[t]\nn = 0\n", &[]),
            ("a = 1.5", &["a: must be a whole number of at least 0, got 1.5"]),
            ("a = -1", &["a: must be a whole number of at least 0, got -1"]),
            ("b = \"yes\"", &["b: must be true or false, got \"yes\""]),
            ("c = 3", &["c: must be a string in quotes, got 3"]),
            ("t = 1", &["t: must be a table of settings, got 1"]),
            (
                "z = 1\n[t]\nn = 0.5\nl = 3",
                &["t.l: must be a list", "t.n: must be a whole number", "z: unknown setting z"],
            ),
            ("max_usdc = \"lots\"", &["max_usdc: must be a USDC amount"]),
        ];
        for (text, want) in cases {
            let got: Vec<String> =
                check(&defaults, &tree(text)).iter().map(|p| format!("{}: {}", p.field, p.message)).collect();
            assert_eq!(got.len(), want.len(), "{text}: {got:?}");
            for (g, w) in got.iter().zip(want) {
                assert!(g.starts_with(w), "{text}: {g} does not start with {w}");
            }
        }
    }

    #[test]
    fn an_unknown_key_is_never_echoed_raw() {
        let defaults = tree("a = 1\n[t]\nn = 2\n");
        let key = "ab".repeat(32);
        for text in ["\"x\\nERROR forged line\" = 1".to_owned(), format!("{key} = 1"), format!("[t]\n\"0x{key}\" = 1")]
        {
            let got: Vec<String> =
                check(&defaults, &tree(&text)).iter().map(|p| format!("{}: {}", p.field, p.message)).collect();
            assert_eq!(got.len(), 1, "{text}: {got:?}");
            assert!(!got[0].contains('\n') && !got[0].contains(&key), "{got:?}");
        }
    }
}
