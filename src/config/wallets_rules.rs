//! The copy rules of one `wallets.json` entry (or of `defaults`), read value by value so that
//! every problem is reported with its entry and field: sizing, price bounds, sells, caps and pace.

use rust_decimal::Decimal;
use serde_json::Value;

use super::wallets::{RULE_KEYS, Validator, kind};
use crate::config::settings::price_from_decimal;
use crate::domain::Usdc;
use crate::risk::{CopyRules, SizingRule};

impl Validator<'_> {
    pub(super) fn rules(&mut self, v: &Value, base: &CopyRules, entry: &str, extra: &[&str]) -> CopyRules {
        let mut r = base.clone();
        let Some(o) = v.as_object() else {
            self.err(Some(entry), "(entry)", format!("must be an object, got {}", kind(v)));
            return r;
        };
        for k in o.keys().filter(|k| !RULE_KEYS.contains(&k.as_str()) && !extra.contains(&k.as_str())) {
            self.err(
                Some(entry),
                &super::problem::shown_key(k),
                format!("unknown key (allowed: {})", [extra, &RULE_KEYS[..7]].concat().join(", ")),
            );
        }
        if let Some(s) = o.get("sizing")
            && let Some(sz) = self.sizing(s, entry)
        {
            r.sizing = sz;
        }
        for (key, slot) in [("min_price", &mut r.min_price), ("max_price", &mut r.max_price)] {
            if let Some(x) = o.get(key) {
                *slot = match x {
                    Value::Null => None,
                    _ => match self.decimal(x, entry, key).and_then(price_from_decimal) {
                        Some(p) => Some(p),
                        None => {
                            if self.problems.last().is_none_or(|p| p.field != key) {
                                self.err(Some(entry), key, format!("must be a price between 0 and 1, got {x}"));
                            }
                            None
                        }
                    },
                };
            }
        }
        if let (Some(lo), Some(hi)) = (r.min_price, r.max_price)
            && lo > hi
        {
            self.err(Some(entry), "min_price", format!("{lo} is above max_price {hi}"));
        }
        if let Some(x) = o.get("copy_sells") {
            match x.as_bool() {
                Some(b) => r.copy_sells = b,
                None => self.err(Some(entry), "copy_sells", format!("must be true or false, got {}", kind(x))),
            }
        }
        if let Some(x) = o.get("max_order_usdc") {
            r.max_order_usdc = self.usdc(x, entry, "max_order_usdc");
        }
        if let Some(x) = o.get("max_trades_per_hour") {
            r.max_trades_per_hour = self.int(x, Some(entry), "max_trades_per_hour", 1, 3600).map(|n| n as u32);
        }
        if let Some(x) = o.get("min_trade_interval_s") {
            r.min_trade_interval_s = self.int(x, Some(entry), "min_trade_interval_s", 0, 86_400);
        }
        r
    }

    fn sizing(&mut self, v: &Value, entry: &str) -> Option<SizingRule> {
        let Some(o) = v.as_object() else {
            self.err(
                Some(entry),
                "sizing",
                format!("must be an object like {{\"mode\": \"multiplier\", \"multiplier\": 0.1}}, got {}", kind(v)),
            );
            return None;
        };
        let mode = o.get("mode").and_then(Value::as_str);
        let (key, allowed) = match mode {
            Some("multiplier") => ("multiplier", ["mode", "multiplier"]),
            Some("fixed_usdc") => ("usdc", ["mode", "usdc"]),
            _ => {
                self.err(
                    Some(entry),
                    "sizing.mode",
                    format!(
                        "must be \"multiplier\" or \"fixed_usdc\", got {}",
                        o.get("mode").map_or("nothing".into(), kind)
                    ),
                );
                return None;
            }
        };
        for k in o.keys().filter(|k| !allowed.contains(&k.as_str())) {
            self.err(
                Some(entry),
                &format!("sizing.{}", super::problem::shown_key(k)),
                format!("unknown key for mode {:?}", mode.unwrap_or_default()),
            );
        }
        let field = format!("sizing.{key}");
        let Some(x) = o.get(key) else {
            self.err(Some(entry), &field, "missing");
            return None;
        };
        let d = self.decimal(x, entry, &field)?;
        if key == "multiplier" {
            if d <= Decimal::ZERO || d > Decimal::from(100) {
                self.err(Some(entry), &field, format!("must be greater than 0 and at most 100, got {d}"));
                return None;
            }
            Some(SizingRule::Multiplier(d))
        } else {
            self.usdc(x, entry, &field).map(SizingRule::FixedUsdc)
        }
    }

    pub(super) fn decimal(&mut self, v: &Value, entry: &str, field: &str) -> Option<Decimal> {
        // serde_json prints a float as its shortest round-trip text, so "0.1" stays exactly 0.1.
        let parsed = match v {
            Value::Number(n) => crate::config::settings::number_to_decimal(&n.to_string()),
            _ => None,
        };
        if parsed.is_none() {
            self.err(Some(entry), field, format!("must be a number, got {}", kind(v)));
        }
        parsed
    }

    pub(super) fn usdc(&mut self, v: &Value, entry: &str, field: &str) -> Option<Usdc> {
        let d = self.decimal(v, entry, field)?;
        if d <= Decimal::ZERO || d > Decimal::from(1_000_000) {
            self.err(Some(entry), field, format!("must be a USDC amount greater than 0 and at most 1000000, got {d}"));
            return None;
        }
        let u = Usdc::from_decimal(d);
        if u.is_none() {
            self.err(Some(entry), field, format!("has more than 6 decimals: {d}"));
        }
        u
    }

    pub(super) fn int(&mut self, v: &Value, entry: Option<&str>, field: &str, min: u64, max: u64) -> Option<u64> {
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.err(entry, field, format!("must be a whole number from {min} to {max}, got {}", kind(v)));
                None
            }
        }
    }
}
