//! Which wallet `vet` looks at, and with which rules: a label or an address, its entry in
//! wallets.json, the file's defaults, or a `--rules` file.

use alloy::primitives::Address;
use anyhow::Result;
use serde_json::Value;

use crate::config::{Settings, Wallets};
use crate::domain::addr_lower;
use crate::risk::CopyRules;

use super::VetArgs;

/// A problem with what the operator asked for: exit 64 with the message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// The wallet being vetted and the rules it is vetted with.
pub(crate) struct Who {
    /// The wallet.
    pub wallet: Address,
    /// Its label, if listed.
    pub label: Option<String>,
    /// The rules to replay with.
    pub rules: CopyRules,
    /// Where they came from.
    pub rules_from: String,
}

/// The wallet, its label, its rules and where they came from.
pub(crate) fn resolve(s: &Settings, a: &VetArgs) -> Result<(Address, Option<String>, CopyRules, String), BadInput> {
    let file = s.wallets_path.display().to_string();
    let loaded = Wallets::load(&s.wallets_path);
    let unreadable = loaded.as_ref().err().map(|p| crate::config::problem::render(p));
    let listed = loaded.ok();
    let arg = a.wallet.trim();
    let entry = if arg.starts_with("0x") || arg.starts_with("0X") {
        let addr: Address =
            arg.parse().map_err(|_| BadInput(format!("the wallet {}", crate::config::problem::not_an_address(arg))))?;
        listed.as_ref().and_then(|w| w.targets.iter().find(|t| t.address == addr)).cloned().ok_or(addr)
    } else if crate::config::problem::looks_like_key(arg) {
        // Never repeated: what is pasted here is sometimes the private key.
        return Err(BadInput(format!("the wallet given has {}", crate::config::problem::KEY_SHAPED)));
    } else {
        let w = listed.as_ref().ok_or_else(|| {
            BadInput(format!(
                "{file} could not be read, so the label {} means nothing: give the address (0x…)",
                crate::config::problem::quoted(arg)
            ))
        })?;
        let t = w.targets.iter().find(|t| t.label.eq_ignore_ascii_case(arg)).ok_or_else(|| {
            let labels: Vec<&str> = w.targets.iter().map(|t| t.label.as_str()).collect();
            BadInput(format!(
                "no target labelled {} in {file} (labels there: {}). Give an address (0x…) to vet a wallet \
                 that is not listed",
                crate::config::problem::quoted(arg),
                if labels.is_empty() { "none".to_owned() } else { labels.join(", ") }
            ))
        })?;
        Ok(t.clone())
    };
    let (wallet, label, rules, from) = match entry {
        Ok(t) => (t.address, Some(t.label), t.rules, format!("its entry in {file}")),
        Err(addr) => match &unreadable {
            None => (addr, None, defaults_of(&s.wallets_path, addr), format!("the defaults of {file}")),
            Some(why) => {
                eprintln!("warning: {file} is not valid, so its rules cannot be used:\n{why}");
                (
                    addr,
                    None,
                    crate::config::wallets::builtin_rules(),
                    format!("the built-in defaults ({file} is not valid)"),
                )
            }
        },
    };
    match &a.rules {
        None => Ok((wallet, label, rules, from)),
        Some(p) => Ok((wallet, label, rules_file(p, wallet)?, p.display().to_string())),
    }
}

/// The rules wallets.json gives a wallet it does not list: its `defaults` (else the built-in ones).
pub(crate) fn defaults_of(path: &std::path::Path, wallet: Address) -> CopyRules {
    let defaults = std::fs::read_to_string(path)
        .ok()
        // A byte-order mark (Notepad) is accepted by the daemon's reader, so here too.
        .and_then(|t| serde_json::from_str::<Value>(t.strip_prefix('\u{feff}').unwrap_or(&t)).ok())
        .and_then(|v| v.get("defaults").cloned());
    let doc = serde_json::json!({"defaults": defaults.unwrap_or(Value::Object(serde_json::Map::new())),
                                 "wallets": [{"address": addr_lower(&wallet)}]});
    Wallets::parse(&doc.to_string(), "wallets.json")
        .ok()
        .and_then(|w| w.targets.into_iter().next())
        .map_or_else(crate::config::wallets::builtin_rules, |t| t.rules)
}

/// The rules in `--rules FILE`: an object of rule fields, or a wallets.json-format file (the
/// wallet's entry, else its defaults). Every problem is named with the file.
fn rules_file(path: &std::path::Path, wallet: Address) -> Result<CopyRules, BadInput> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| BadInput(format!("--rules {name}: cannot read: {e}")))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        BadInput(format!("--rules {name}: invalid JSON at line {} column {}: {e}", e.line(), e.column()))
    })?;
    let Value::Object(mut obj) = v else {
        return Err(BadInput(format!("--rules {name}: must be a JSON object of rule fields")));
    };
    let doc = if obj.contains_key("wallets") || obj.contains_key("defaults") {
        let entry = obj
            .get("wallets")
            .and_then(Value::as_array)
            .and_then(|l| {
                l.iter().find(|e| e.get("address").and_then(Value::as_str).and_then(|a| a.parse().ok()) == Some(wallet))
            })
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"address": addr_lower(&wallet)}));
        serde_json::json!({"defaults": obj.remove("defaults").unwrap_or(serde_json::json!({})), "wallets": [entry]})
    } else {
        obj.insert("address".into(), Value::String(addr_lower(&wallet)));
        serde_json::json!({"wallets": [obj]})
    };
    let w = Wallets::parse(&doc.to_string(), &name)
        .map_err(|p| BadInput(format!("--rules {name}:\n{}", crate::config::problem::render(&p))))?;
    w.targets.into_iter().next().map(|t| t.rules).ok_or_else(|| BadInput(format!("--rules {name}: no rules in it")))
}
