//! Property tests of the two files an operator edits by hand: `wallets.json` and the settings
//! TOML. Whatever the text, parsing never panics, and whatever it accepts obeys every rule the
//! daemon relies on. CI runs a fixed number of cases (`PROPTEST_CASES`, 256 by default).

use std::collections::HashSet;

use polycopy::config::settings::SettingsSources;
use polycopy::config::{Settings, Wallets};
use polycopy::risk::SizingRule;
use proptest::prelude::*;
use rust_decimal::Decimal;

/// Values that are often wrong in real files: every JSON kind, edge numbers, odd strings.
fn json_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("1e400".to_owned()),
        Just("0.0000001".to_owned()),
        Just("100.5".to_owned()),
        Just("\"\"".to_owned()),
        Just("\"x\\ny\"".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        (0u64..2_000_000).prop_map(|n| n.to_string()),
        (0u32..1000, 0u32..1000).prop_map(|(a, b)| format!("{a}.{b}")),
        "[a-zA-Z0-9 ]{0,70}".prop_map(|s| format!("{s:?}")),
        (0u8..4).prop_map(|i| format!("\"0x{}\"", format!("{i:x}").repeat(40))),
        Just("\"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\"".to_owned()),
        Just("{\"mode\": \"multiplier\", \"multiplier\": 0.5}".to_owned()),
        Just("{\"mode\": \"fixed_usdc\", \"usdc\": 20}".to_owned()),
        Just("{\"mode\": \"multiplier\", \"multiplier\": -2}".to_owned()),
    ]
}

const WALLET_KEYS: [&str; 12] = [
    "address",
    "label",
    "enabled",
    "sizing",
    "min_price",
    "max_price",
    "copy_sells",
    "max_order_usdc",
    "max_trades_per_hour",
    "min_trade_interval_s",
    "comment",
    "colour",
];

fn wallet_entry() -> impl Strategy<Value = String> {
    proptest::collection::vec((proptest::sample::select(&WALLET_KEYS[..]), json_value()), 0..8).prop_map(|kv| {
        let body: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
        format!("{{{}}}", body.join(", "))
    })
}

fn wallets_text() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(wallet_entry(), 0..6).prop_map(|e| format!("{{\"wallets\": [{}]}}", e.join(", "))),
        (wallet_entry(), proptest::collection::vec(wallet_entry(), 0..4))
            .prop_map(|(d, e)| format!("{{\"defaults\": {d}, \"wallets\": [{}]}}", e.join(", "))),
        proptest::collection::vec(json_value(), 0..6)
            .prop_map(|a| format!("{{\"target_wallets\": [{}], \"max_trade_frequency\": 5}}", a.join(", "))),
        // Plain garbage and cut-off files.
        ".{0,200}",
        wallet_entry().prop_map(|e| format!("{{\"wallets\": [{e}")),
    ]
}

proptest! {
    #[test]
    fn wallets_never_panic_and_never_accept_a_bad_entry(text in wallets_text()) {
        if let Ok(w) = Wallets::parse(&text, "wallets.json") {
            let mut seen = HashSet::new();
            for t in &w.targets {
                prop_assert!(!t.address.is_zero(), "{text}");
                prop_assert!(seen.insert(t.address), "duplicate address accepted: {text}");
                prop_assert!(!t.label.is_empty() && t.label.chars().count() <= 64, "{text}");
                prop_assert!(!t.label.chars().any(char::is_control), "{text}");
                match t.rules.sizing {
                    SizingRule::Multiplier(m) => prop_assert!(m > Decimal::ZERO && m <= Decimal::from(100), "{text}"),
                    SizingRule::FixedUsdc(u) => prop_assert!(u.0 > 0, "{text}"),
                }
                if let (Some(lo), Some(hi)) = (t.rules.min_price, t.rules.max_price) {
                    prop_assert!(lo <= hi, "{text}");
                }
                if let Some(n) = t.rules.max_trades_per_hour {
                    prop_assert!(n >= 1, "{text}");
                }
            }
        }
    }
}

/// Settings lines: known keys with values of every kind, unknown keys, and broken TOML.
fn settings_line() -> impl Strategy<Value = (String, String)> {
    let keys = proptest::sample::select(
        &[
            ("", "db_path"),
            ("", "emergency_stop_file"),
            ("", "log_format"),
            ("chain", "poll_interval_ms"),
            ("chain", "reconnect_backoff_max_ms"),
            ("chain", "chain_id"),
            ("copy", "max_slippage_bps"),
            ("copy", "min_order_usdc"),
            ("risk", "max_order_usdc"),
            ("risk", "max_trades_per_hour"),
            ("risk", "daily_loss_action"),
            ("risk", "day_starts_at_hour"),
            ("http", "listen"),
            ("http", "allow_remote"),
            ("live", "order_type"),
            ("risk", "max_ordr_usdc"),
        ][..],
    );
    let values = prop_oneof![
        Just("\"\"".to_owned()),
        Just("\"0.0.0.0:9187\"".to_owned()),
        Just("\"127.0.0.1:0\"".to_owned()),
        Just("\"halt\"".to_owned()),
        Just("\"GTD\"".to_owned()),
        Just("true".to_owned()),
        Just("-5".to_owned()),
        Just("1.5".to_owned()),
        Just("0".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("[1, 2]".to_owned()),
        Just("{ a = 1 }".to_owned()),
        (0u64..100_000).prop_map(|n| n.to_string()),
        "[a-z ]{0,10}".prop_map(|s| format!("{s:?}")),
        Just("= =".to_owned()),
    ];
    (keys, values).prop_map(|((section, key), v)| (section.to_owned(), format!("{key} = {v}")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn settings_never_panic_and_never_accept_an_unsafe_value(lines in proptest::collection::vec(settings_line(), 0..6)) {
        let mut top = String::new();
        let mut sections: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
        for (section, line) in &lines {
            if section.is_empty() {
                top.push_str(line);
                top.push('\n');
            } else {
                sections.entry(section.clone()).or_default().push_str(&format!("{line}\n"));
            }
        }
        let mut text = top;
        for (s, body) in &sections {
            text.push_str(&format!("[{s}]\n{body}"));
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("polycopy.toml");
        std::fs::write(&file, &text).unwrap();
        let loaded = Settings::load(&SettingsSources { config_file: Some(file), system_file: None });
        if let Ok(s) = loaded {
            prop_assert!(!s.db_path.as_os_str().is_empty(), "{text}");
            prop_assert!(!s.emergency_stop_file.as_os_str().is_empty(), "{text}");
            prop_assert!(s.chain.reconnect_backoff_max_ms >= 100, "{text}");
            prop_assert!(s.risk.max_trades_per_hour >= 1, "{text}");
            prop_assert!(s.risk.day_starts_at_hour < 24, "{text}");
            let listen = s.http.listen.as_str();
            prop_assert!(
                listen.is_empty() || s.http.allow_remote || listen.starts_with("127.") || listen.starts_with("[::1]") || listen.starts_with("localhost"),
                "{text}"
            );
            prop_assert!(!text.contains("max_ordr_usdc"), "an unknown key was accepted: {text}");
            prop_assert!(!text.contains("= 1.5") || !text.lines().any(|l| l.ends_with("= 1.5") && !l.contains("usdc")), "a fraction in a whole number: {text}");
        }
    }
}
