//! Whether the targets' rules fit the settings: a wallet's own cap or fixed amount below
//! `copy.min_order_usdc` passes each file's own checks, and then every BUY of that target is
//! refused `below_minimum` at run time without a word at the start. `check-config` says so.

use crate::config::{Problem, Wallets};
use crate::domain::Usdc;
use crate::risk::SizingRule;

/// The enabled targets whose every BUY the settings' smallest order (`min_order_usdc`) would
/// refuse, one problem each, named in `wallets_file`.
#[must_use]
pub fn below_minimum(wallets: &Wallets, min_order_usdc: Usdc, wallets_file: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    for (i, t) in wallets.targets.iter().enumerate().filter(|(_, t)| t.enabled) {
        let entry = format!("wallets[{i}] ({})", t.label);
        let refuse = |field: &str, value: Usdc| {
            Problem::new(
                wallets_file,
                field,
                format!(
                    "{value} is below copy.min_order_usdc {min_order_usdc}: every BUY of this target would be \
                     refused (below_minimum). Raise it, or lower copy.min_order_usdc"
                ),
            )
            .in_entry(entry.clone())
        };
        if let Some(cap) = t.rules.max_order_usdc
            && cap < min_order_usdc
        {
            out.push(refuse("max_order_usdc", cap));
        }
        if let SizingRule::FixedUsdc(usdc) = t.rules.sizing
            && usdc < min_order_usdc
        {
            out.push(refuse("sizing.usdc", usdc));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Target;
    use crate::risk::CopyRules;
    use alloy::primitives::Address;

    fn target(enabled: bool, sizing: SizingRule, cap: Option<i64>) -> Target {
        let mut rules = CopyRules::new(sizing);
        rules.max_order_usdc = cap.map(Usdc);
        Target { address: Address::repeat_byte(1), label: "t".into(), enabled, rules, trigger: None }
    }

    #[test]
    fn a_targets_cap_or_fixed_amount_below_the_smallest_order_is_named() {
        let one = Usdc(1_000_000);
        let mult = SizingRule::Multiplier(rust_decimal::Decimal::new(1, 1));
        // (target, fields named)
        let cases: Vec<(Target, Vec<&str>)> = vec![
            (target(true, mult, None), vec![]),
            (target(true, mult, Some(2_000_000)), vec![]),
            (target(true, mult, Some(1_000_000)), vec![]),
            (target(true, mult, Some(500_000)), vec!["max_order_usdc"]),
            (target(true, SizingRule::FixedUsdc(Usdc(900_000)), None), vec!["sizing.usdc"]),
            (target(true, SizingRule::FixedUsdc(Usdc(900_000)), Some(500_000)), vec!["max_order_usdc", "sizing.usdc"]),
            // A disabled entry copies nothing: nothing to say.
            (target(false, SizingRule::FixedUsdc(Usdc(900_000)), None), vec![]),
        ];
        for (t, want) in cases {
            let w = Wallets { targets: vec![t.clone()] };
            let got: Vec<String> = below_minimum(&w, one, "wallets.json").into_iter().map(|p| p.field).collect();
            assert_eq!(got, want, "{t:?}");
        }
    }
}
