//! `wallets.json`: the target wallets and their copy rules.
//!
//! Two formats are accepted:
//! - `{"defaults": {...}, "wallets": [{"address", "label", "enabled", ...rules}]}`; per-wallet rules
//!   override `defaults`, which override the built-in defaults (multiplier 0.1, sells copied).
//! - the seed runbooks' `{"target_wallets": ["0x…"], "max_trade_frequency": N,
//!   "min_trade_interval_minutes": M}`: every address enabled, with those limits.
//!
//! The file is validated by hand over a JSON tree so that *every* problem is reported with its
//! entry and field, not just the first one serde would stop at.

use std::collections::HashMap;
use std::str::FromStr;

use alloy::primitives::Address;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::config::Problem;
use crate::config::settings::Trigger;
use crate::domain::addr_lower;
use crate::risk::{CopyRules, SizingRule};

/// One target wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The wallet (proxy/Safe/funder) address, as on its Polymarket profile.
    pub address: Address,
    /// A short name for reports.
    pub label: String,
    /// Disabled entries are kept in the file but not watched.
    pub enabled: bool,
    /// Its copy rules, defaults merged in.
    pub rules: CopyRules,
    /// When its fills are acted on (its own, else the file's defaults'; none: the settings').
    pub trigger: Option<Trigger>,
}

/// A validated `wallets.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Wallets {
    /// Every entry, enabled or not, in file order.
    pub targets: Vec<Target>,
}

impl Wallets {
    /// The enabled targets.
    pub fn enabled(&self) -> impl Iterator<Item = &Target> {
        self.targets.iter().filter(|t| t.enabled)
    }

    /// Reads and validates a file.
    ///
    /// # Errors
    /// Every problem in the file.
    pub fn load(path: &std::path::Path) -> Result<Self, Vec<Problem>> {
        use std::io::Read as _;
        let file = path.display().to_string();
        let cannot = |e: String| vec![Problem::new(&file, "(file)", e)];
        let f = std::fs::File::open(path)
            .map_err(|e| cannot(format!("cannot read: {e}; copy config/wallets.json from the repository")))?;
        // Read one byte past the limit, so a file that is too big is said to be, not cut and misread.
        let mut bytes = Vec::new();
        f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| cannot(format!("cannot read: {e}")))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(cannot(format!(
                "larger than {} MiB: polycopy reads at most that much (at most {MAX_TARGETS} targets)",
                MAX_FILE_BYTES >> 20
            )));
        }
        let text = String::from_utf8(bytes)
            .map_err(|e| cannot(format!("not UTF-8 text (byte {}): save it as UTF-8", e.utf8_error().valid_up_to())))?;
        Self::parse(&text, &file)
    }

    /// Validates the text of a wallets file named `file`.
    ///
    /// # Errors
    /// Every problem in the text.
    pub fn parse(text: &str, file: &str) -> Result<Self, Vec<Problem>> {
        // Some editors start a UTF-8 file with a byte-order mark; JSON has no use for it.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let root: Value = super::strict_json::parse(text).map_err(|e| {
            vec![Problem::new(
                file,
                "(syntax)",
                format!("invalid JSON at line {} column {}: {e}", e.line(), e.column()),
            )]
        })?;
        let mut v = Validator { file, problems: Vec::new() };
        let targets = v.root(&root);
        if v.problems.is_empty() { Ok(Self { targets }) } else { Err(v.problems) }
    }
}

/// Largest `wallets.json` read: ample for [`MAX_TARGETS`] entries with rules and comments, and a
/// bound on what a runaway generator can make the daemon parse.
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// Most entries a file may list (each enabled one is a watcher actor and a log filter topic).
pub const MAX_TARGETS: usize = 10_000;

pub(super) const RULE_KEYS: [&str; 8] = [
    "sizing",
    "min_price",
    "max_price",
    "copy_sells",
    "max_order_usdc",
    "max_trades_per_hour",
    "min_trade_interval_s",
    "comment",
];

/// The addresses and labels (lowercased) of the entries read so far, each with the entry that
/// named it first.
#[derive(Default)]
struct Seen {
    addresses: HashMap<Address, String>,
    labels: HashMap<String, String>,
}

/// Reads one file's JSON tree, collecting every problem instead of stopping at the first.
pub(super) struct Validator<'a> {
    file: &'a str,
    pub(super) problems: Vec<Problem>,
}

impl Validator<'_> {
    pub(super) fn err(&mut self, entry: Option<&str>, field: &str, msg: impl Into<String>) {
        let mut p = Problem::new(self.file, field, msg);
        if let Some(e) = entry {
            p = p.in_entry(e);
        }
        self.problems.push(p);
    }

    fn root(&mut self, root: &Value) -> Vec<Target> {
        let Some(obj) = root.as_object() else {
            self.err(None, "(root)", format!("must be a JSON object, got {}", kind(root)));
            return Vec::new();
        };
        if obj.contains_key("target_wallets") {
            return self.runbook_format(obj);
        }
        for k in obj.keys().filter(|k| !matches!(k.as_str(), "defaults" | "wallets" | "comment")) {
            self.err(None, &super::problem::shown_key(k), "unknown key (expected \"defaults\" and \"wallets\")");
        }
        let base = builtin_rules();
        let defaults = match obj.get("defaults") {
            None => base,
            Some(d) => self.rules(d, &base, "defaults", &["trigger"]),
        };
        let default_trigger =
            obj.get("defaults").and_then(|d| d.get("trigger")).and_then(|t| self.trigger(t, "defaults"));
        let Some(list) = obj.get("wallets") else {
            self.err(None, "wallets", "missing: list the target wallets here (an empty list is allowed)");
            return Vec::new();
        };
        let Some(list) = list.as_array() else {
            self.err(None, "wallets", format!("must be a list, got {}", kind(list)));
            return Vec::new();
        };
        if list.len() > MAX_TARGETS {
            self.err(None, "wallets", format!("lists {} entries; at most {MAX_TARGETS} are allowed", list.len()));
            return Vec::new();
        }
        let mut targets = Vec::new();
        let mut seen = Seen::default();
        for (i, w) in list.iter().enumerate() {
            if let Some(t) = self.entry(i, w, &defaults, default_trigger, &mut seen) {
                targets.push(t);
            }
        }
        targets
    }

    /// One entry of `wallets`: the target it names, or `None` when it has any problem (each one
    /// recorded, in the order of its fields, then duplicates of earlier entries).
    fn entry(
        &mut self,
        i: usize,
        w: &Value,
        defaults: &CopyRules,
        default_trigger: Option<Trigger>,
        seen: &mut Seen,
    ) -> Option<Target> {
        // The label names the entry in every problem, only when it is one the label rules take:
        // never a key, a seed phrase or anything else long pasted there, nor a forged line.
        let label_hint = w
            .get("label")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|l| {
                !l.is_empty()
                    && l.chars().count() <= 64
                    && !super::problem::looks_like_key(l)
                    && crate::domain::shown_plainly(l) == *l
            })
            .map(|l| format!(" ({l})"))
            .unwrap_or_default();
        let entry = format!("wallets[{i}]{label_hint}");
        let Some(wo) = w.as_object() else {
            self.err(Some(&entry), "(entry)", format!("must be an object, got {}", kind(w)));
            return None;
        };
        let before = self.problems.len();
        let address = match wo.get("address") {
            None => {
                self.err(Some(&entry), "address", "missing");
                None
            }
            Some(a) => self.address(a, &entry, "address"),
        };
        let mut label = self.label(wo, &entry, address);
        // A label we made (the short address) that an earlier entry already has: two addresses
        // alike at both ends. The whole address names it instead; the operator wrote no label to
        // fix, so it is no reason to refuse the file.
        if let Some(a) = address
            && !wo.contains_key("label")
            && seen.labels.contains_key(&label.to_lowercase())
        {
            label = addr_lower(&a);
        }
        let enabled = match wo.get("enabled") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(x) => {
                self.err(Some(&entry), "enabled", format!("must be true or false, got {}", kind(x)));
                false
            }
        };
        let rules = self.rules(w, defaults, &entry, &["address", "label", "enabled", "trigger"]);
        let trigger = wo.get("trigger").and_then(|t| self.trigger(t, &entry)).or(default_trigger);
        if let Some(a) = address
            && let Some(first) = seen.addresses.insert(a, entry.clone())
        {
            self.err(Some(&entry), "address", format!("duplicate of {first} ({})", addr_lower(&a)));
        }
        if !label.is_empty()
            && let Some(first) = seen.labels.insert(label.to_lowercase(), entry.clone())
        {
            self.err(
                Some(&entry),
                "label",
                format!("duplicate of {first} ({label:?}); labels name targets in commands"),
            );
        }
        let address = address.filter(|_| self.problems.len() == before)?;
        Some(Target { address, label, enabled, rules, trigger })
    }

    /// An entry's label: its own (trimmed), or the short address when it has none.
    fn label(&mut self, wo: &Map<String, Value>, entry: &str, address: Option<Address>) -> String {
        match wo.get("label") {
            None => address.map(|a| short(&a)).unwrap_or_default(),
            Some(Value::String(s)) if super::problem::looks_like_key(s) => {
                self.err(Some(entry), "label", format!("is {}", super::problem::KEY_SHAPED));
                String::new()
            }
            Some(Value::String(s)) if crate::domain::shown_plainly(s) != *s => {
                // A newline in a label would forge lines in the text log and in messages; a
                // direction override or a zero-width character would make it read as another.
                self.err(
                    Some(entry),
                    "label",
                    "must not contain control or invisible characters (newlines, tabs, escapes, direction overrides, \
                     zero-width spaces)",
                );
                String::new()
            }
            Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 64 => s.trim().to_owned(),
            Some(l) => {
                self.err(
                    Some(entry),
                    "label",
                    format!("must be a non-empty string of at most 64 characters, got {}", kind(l)),
                );
                String::new()
            }
        }
    }

    fn runbook_format(&mut self, obj: &Map<String, Value>) -> Vec<Target> {
        for k in obj.keys() {
            match k.as_str() {
                "target_wallets" | "max_trade_frequency" | "min_trade_interval_minutes" | "comment" => {}
                "min_confidence_score" => self.err(
                    None,
                    k,
                    "not supported: polycopy scores no trades, it copies every fill of a target that passes \
                     its rules. Remove it; to be selective, use the {\"wallets\": [...]} format with per-wallet \
                     min_price / max_price, max_order_usdc and sizing (see README, wallets.json)",
                ),
                _ => self.err(None, &super::problem::shown_key(k), "unknown key for the target_wallets format"),
            }
        }
        let mut rules = builtin_rules();
        if let Some(v) = obj.get("max_trade_frequency") {
            rules.max_trades_per_hour = self.int(v, None, "max_trade_frequency", 1, 3600).map(|n| n as u32);
        }
        if let Some(v) = obj.get("min_trade_interval_minutes") {
            rules.min_trade_interval_s = self.int(v, None, "min_trade_interval_minutes", 0, 1440).map(|m| m * 60);
        }
        let Some(list) = obj.get("target_wallets").and_then(Value::as_array) else {
            self.err(None, "target_wallets", "must be a list of addresses");
            return Vec::new();
        };
        if list.len() > MAX_TARGETS {
            let n = list.len();
            self.err(None, "target_wallets", format!("lists {n} addresses; at most {MAX_TARGETS} are allowed"));
            return Vec::new();
        }
        let mut out: Vec<Target> = Vec::new();
        // A set, not a scan of `out`: a seed file can list many thousands of addresses.
        let mut seen = std::collections::HashSet::new();
        for (i, a) in list.iter().enumerate() {
            let entry = format!("target_wallets[{i}]");
            if let Some(address) = self.address(a, &entry, "address") {
                if !seen.insert(address) {
                    self.err(Some(&entry), "address", format!("duplicate address {}", addr_lower(&address)));
                    continue;
                }
                out.push(Target {
                    address,
                    label: short(&address),
                    enabled: true,
                    rules: rules.clone(),
                    trigger: None,
                });
            }
        }
        out
    }

    fn address(&mut self, v: &Value, entry: &str, field: &str) -> Option<Address> {
        let Some(s) = v.as_str() else {
            self.err(Some(entry), field, format!("must be a 0x-prefixed hex string, got {}", kind(v)));
            return None;
        };
        let hex = s.strip_prefix("0x").unwrap_or("");
        if hex.len() != 40 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            self.err(Some(entry), field, crate::config::problem::not_an_address(s));
            return None;
        }
        let a = Address::from_str(s).ok()?;
        let mixed = hex.chars().any(|c| c.is_ascii_lowercase()) && hex.chars().any(|c| c.is_ascii_uppercase());
        if mixed && Address::parse_checksummed(s, None).is_err() {
            self.err(
                Some(entry),
                field,
                format!(
                    "{s:?} has a bad checksum (mixed case must be EIP-55); check for a typo or write it in lower case"
                ),
            );
            return None;
        }
        if a == Address::ZERO {
            self.err(Some(entry), field, "the zero address is not a wallet");
            return None;
        }
        Some(a)
    }

    /// Reads rule keys from `v` over `base`; keys outside the rules and `extra` are errors.
    fn trigger(&mut self, v: &Value, entry: &str) -> Option<Trigger> {
        let t = v.as_str().and_then(Trigger::parse);
        if t.is_none() {
            self.err(Some(entry), "trigger", format!("must be \"confirmed\" or \"pending\", got {}", kind(v)));
        }
        t
    }
}

/// What a JSON value is, for messages.
pub(super) fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() > 24 => super::problem::quoted(s),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn short(a: &Address) -> String {
    let s = addr_lower(a);
    format!("{}…{}", &s[..6], &s[s.len() - 4..])
}

/// The rules a wallet gets when neither it nor `defaults` says otherwise.
#[must_use]
pub fn builtin_rules() -> CopyRules {
    CopyRules::new(SizingRule::Multiplier(Decimal::new(1, 1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Price, Usdc};

    const A: &str = "0x1111111111111111111111111111111111111111";
    const B: &str = "0x2222222222222222222222222222222222222222";

    #[test]
    fn merges_defaults_into_entries() {
        let text = format!(
            r#"{{"defaults": {{"sizing": {{"mode": "multiplier", "multiplier": 0.1}}, "max_order_usdc": 50}},
                "wallets": [{{"address": "{A}", "label": "whale-1", "sizing": {{"mode": "fixed_usdc", "usdc": 20}}}},
                            {{"address": "{B}", "enabled": false, "min_price": 0.05, "copy_sells": false}}]}}"#
        );
        let w = Wallets::parse(&text, "w.json").unwrap();
        assert_eq!(w.targets[0].rules.sizing, SizingRule::FixedUsdc(Usdc(20_000_000)));
        assert_eq!(w.targets[0].rules.max_order_usdc, Some(Usdc(50_000_000)));
        assert_eq!(w.targets[1].rules.sizing, SizingRule::Multiplier(Decimal::new(1, 1)));
        assert_eq!(w.targets[1].rules.min_price, Some(Price(50_000)));
        assert!(!w.targets[1].rules.copy_sells);
        assert_eq!(w.enabled().count(), 1);
    }

    #[test]
    fn a_key_pasted_where_an_address_goes_is_never_repeated() {
        let key = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
        for (text, says) in [
            (format!(r#"{{"wallets": [{{"address": "0x{key}"}}]}}"#), "private key"),
            (format!(r#"{{"wallets": [{{"address": "{key}"}}]}}"#), "private key"),
            (format!(r#"{{"target_wallets": ["0x{key}"]}}"#), "private key"),
            (format!(r#"{{"wallets": [{{"address": "{A}", "enabled": "{key}"}}]}}"#), "64 characters"),
            (format!(r#"{{"wallets": [{{"address": "{A}", "label": "0x{key}"}}]}}"#), "private key"),
            (format!(r#"{{"wallets": [{{"address": "0x{key}", "label": "{key}"}}]}}"#), "private key"),
            (format!(r#"{{"wallets": [{{"address": "0x{}zz"}}]}}"#, &key[..38]), "not all hex"),
            (format!(r#"{{"wallets": [{{"address": "{A}", "trigger": "{key}"}}]}}"#), "64 characters"),
            (format!(r#"{{"wallets": [{{"address": "{A}", "max_trades_per_hour": "{key}"}}]}}"#), "64 characters"),
            (format!(r#"{{"wallets": [{{"address": "{A}", "sizing": {{"mode": "{key}"}}}}]}}"#), "64 characters"),
            (format!(r#"{{"target_wallets": ["{A}"], "max_trade_frequency": "{key}"}}"#), "64 characters"),
        ] {
            let problems = Wallets::parse(&text, "w.json").unwrap_err();
            let all = crate::config::problem::render(&problems);
            assert!(!all.contains(&key[..38]), "{all}");
            assert!(all.contains(says), "{all}");
        }
    }

    #[test]
    fn a_label_with_hidden_characters_is_refused() {
        // (label, refused)
        for (label, refused) in [
            ("whale", false),
            ("baleine 🐋", false),
            ("whale\\nforged", true),
            ("\\u202eelahw", true),
            ("wha\\u200ble", true),
            ("a\\u2028forged line", true),
            // The zero-width joiner of an emoji sequence is part of the emoji; elsewhere it hides.
            ("🧑\\u200d💻 coder", false),
            ("wha\\u200dle", true),
            ("\\u200d", true),
            ("\\u2066whale\\u2069", true),
        ] {
            let text = format!(r#"{{"wallets": [{{"address": "{A}", "label": "{label}"}}]}}"#);
            let got = Wallets::parse(&text, "w.json");
            assert_eq!(got.is_err(), refused, "{label:?}: {got:?}");
            if let Err(errs) = got {
                assert!(errs[0].message.contains("invisible"), "{errs:?}");
            }
        }
    }

    /// A label the rules refuse never names its entry in the problems: a seed phrase pasted there
    /// would otherwise go, whole, to the log and every Telegram chat with each problem.
    #[test]
    fn a_refused_label_never_names_its_entry() {
        let phrase = "abandon ability able about above absent absorb abstract absurd abuse access accident";
        for label in [phrase, "x\\nERROR forged"] {
            let text = format!(r#"{{"wallets": [{{"address": "0x12", "label": "{label}"}}]}}"#);
            let errs = Wallets::parse(&text, "w.json").unwrap_err();
            assert!(errs.iter().all(|e| e.entry.as_deref() == Some("wallets[0]")), "{errs:?}");
            assert!(!crate::config::problem::render(&errs).contains("abandon ability"), "{errs:?}");
        }
        let text = r#"{"wallets": [{"address": "0x12", "label": "whale"}]}"#;
        let errs = Wallets::parse(text, "w.json").unwrap_err();
        assert_eq!(errs[0].entry.as_deref(), Some("wallets[0] (whale)"), "{errs:?}");
    }

    #[test]
    fn accepts_the_runbook_format() {
        let text = format!(
            r#"{{"target_wallets": ["{A}", "{B}"], "max_trade_frequency": 10, "min_trade_interval_minutes": 5}}"#
        );
        let w = Wallets::parse(&text, "w.json").unwrap();
        assert_eq!(w.enabled().count(), 2);
        assert_eq!(w.targets[0].rules.max_trades_per_hour, Some(10));
        assert_eq!(w.targets[0].rules.min_trade_interval_s, Some(300));
        // Some editors start the file with a UTF-8 byte-order mark: accepted.
        let with_bom = format!("\u{feff}{text}");
        assert_eq!(Wallets::parse(&with_bom, "w.json").unwrap(), w, "a BOM is accepted");
        // The seed example's confidence filter has no equivalent: refused, naming what to use instead.
        let text = format!(r#"{{"target_wallets": ["{A}"], "min_confidence_score": 0.7}}"#);
        let errs = Wallets::parse(&text, "w.json").unwrap_err();
        assert_eq!(errs[0].field, "min_confidence_score");
        assert!(errs[0].message.contains("min_price") && errs[0].message.contains("not supported"), "{errs:?}");
    }

    #[test]
    fn reports_every_problem_with_entry_and_field() {
        let text = format!(
            r#"{{"wallets": [
                {{"address": "0x123", "label": "bad-hex"}},
                {{"address": "{A}", "label": "a", "sizing": {{"mode": "multiplier", "multiplier": -1}}}},
                {{"address": "{A}", "label": "dup", "colour": "red"}},
                {{"address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "max_trades_per_hour": "ten", "min_price": 2}},
                {{"address": "0x5aAeb6053f3E94C9b9A09f33669435E7Ef1BeAed", "label": "bad-checksum"}}
            ]}}"#
        );
        let errs = Wallets::parse(&text, "w.json").unwrap_err();
        let got: Vec<(String, String)> =
            errs.iter().map(|p| (p.entry.clone().unwrap_or_default(), p.field.clone())).collect();
        let want = [
            ("wallets[0] (bad-hex)", "address"),
            ("wallets[1] (a)", "sizing.multiplier"),
            ("wallets[2] (dup)", "colour"),
            ("wallets[2] (dup)", "address"),
            ("wallets[3]", "min_price"),
            ("wallets[3]", "max_trades_per_hour"),
            ("wallets[4] (bad-checksum)", "address"),
        ];
        assert_eq!(got, want.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect::<Vec<_>>(), "{errs:#?}");
        assert!(errs[3].message.contains("duplicate of wallets[1]"));
    }

    #[test]
    fn two_unlabelled_addresses_alike_at_both_ends_are_not_refused_for_a_label_nobody_wrote() {
        let (x, y) = ("0x1111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1111", "0x1111bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb1111");
        let text = format!(r#"{{"wallets": [{{"address": "{x}"}}, {{"address": "{y}"}}]}}"#);
        let w = Wallets::parse(&text, "w.json").unwrap();
        let labels: Vec<_> = w.targets.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0x1111…1111", y]);
        // A label the operator wrote twice is still refused.
        let text =
            format!(r#"{{"wallets": [{{"address": "{x}", "label": "w"}}, {{"address": "{y}", "label": "W"}}]}}"#);
        assert!(Wallets::parse(&text, "w.json").is_err());
    }

    #[test]
    fn refuses_what_would_silently_change_meaning_or_forge_log_lines() {
        // A key written twice: serde_json would keep the last one and copy a wallet meant to stop.
        let text = format!(r#"{{"wallets": [{{"address": "{A}", "enabled": false, "enabled": true}}]}}"#);
        let errs = Wallets::parse(&text, "w.json").unwrap_err();
        assert!(errs[0].message.contains("\"enabled\" appears twice"), "{errs:?}");
        // A label with a newline would write a forged line into the text log.
        let text = format!(r#"{{"wallets": [{{"address": "{A}", "label": "x\nERROR breaker tripped"}}]}}"#);
        let errs = Wallets::parse(&text, "w.json").unwrap_err();
        assert_eq!(errs[0].field, "label", "{errs:?}");
        assert!(!errs.iter().any(|e| e.to_string().contains('\n')), "no raw newline in any message: {errs:?}");
        // Nor in an unknown key's name, at any level; and a key-shaped name is not repeated.
        let key = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
        for text in [
            format!(r#"{{"wallets": [], "x\nERROR forged": 1, "{key}": 2}}"#),
            format!(r#"{{"wallets": [{{"address": "{A}", "x\nERROR forged": 1, "{key}": 2}}]}}"#),
            format!(
                r#"{{"wallets": [{{"address": "{A}", "sizing": {{"mode": "fixed_usdc", "usdc": 5, "x\nERROR": 1}}}}]}}"#
            ),
        ] {
            let errs = Wallets::parse(&text, "w.json").unwrap_err();
            let all: String = errs.iter().map(ToString::to_string).collect();
            assert!(!all.contains('\n') && !all.contains(&key[..20]), "{all}");
            assert!(all.contains("unknown key"), "{all}");
        }
        // Too many entries: refused with the limit, and quickly (the check is linear).
        let many: Vec<String> = (1..=MAX_TARGETS + 1).map(|i| format!("\"0x{i:040x}\"")).collect();
        let text = format!(r#"{{"target_wallets": [{}]}}"#, many.join(","));
        let errs = Wallets::parse(&text, "w.json").unwrap_err();
        assert!(errs[0].message.contains(&format!("at most {MAX_TARGETS}")), "{errs:?}");
    }

    #[test]
    fn a_file_over_the_size_limit_is_refused_with_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallets.json");
        let pad = " ".repeat(usize::try_from(MAX_FILE_BYTES).unwrap());
        std::fs::write(&path, format!(r#"{{"wallets": []{pad}}}"#)).unwrap();
        let errs = Wallets::load(&path).unwrap_err();
        assert!(errs[0].message.contains("larger than 4 MiB"), "{errs:?}");
        std::fs::write(&path, r#"{"wallets": []}"#).unwrap();
        assert!(Wallets::load(&path).unwrap().targets.is_empty());
    }

    #[test]
    fn syntax_errors_give_a_position() {
        let errs = Wallets::parse("{\n \"wallets\": [,]\n}", "w.json").unwrap_err();
        assert!(errs[0].message.contains("line 2"), "{errs:?}");
    }
}
