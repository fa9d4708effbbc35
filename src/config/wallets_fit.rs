//! Whether the targets' rules fit the settings: a wallet's own cap or fixed amount below
//! `copy.min_order_usdc` passes each file's own checks, and then every BUY of that target is
//! refused `below_minimum` at run time without a word at the start; a fixed amount whose price
//! with the slippage passes `risk.max_order_usdc` is refused `max_order_usdc` every time.
//! `check-config` says so: the first as a problem (it was one before these checks grew), the
//! rounding traps as warnings (a configuration that ran before still passes, and an update is not
//! refused for it).

use crate::config::{Problem, Wallets};
use crate::domain::{LOT, Usdc};
use crate::risk::SizingRule;

/// The settings a target's rules must fit.
#[derive(Debug, Clone, Copy)]
pub struct Fit {
    /// `copy.min_order_usdc`.
    pub min_order_usdc: Usdc,
    /// `copy.max_slippage_bps`: a BUY's limit is the target's price raised by it.
    pub max_slippage_bps: u32,
    /// `risk.max_order_usdc`: a larger BUY is refused, not clipped.
    pub max_order_usdc: Usdc,
}

/// What `check-config` says of the targets' rules against the settings.
#[derive(Debug, Default)]
pub struct Misfits {
    /// A cap or fixed amount below the smallest order: every BUY refused.
    pub problems: Vec<Problem>,
    /// A cap with no room above the smallest order, or a fixed amount over the global cap at
    /// the limit: nearly every BUY refused.
    pub warnings: Vec<Problem>,
}

/// The enabled targets whose every (or nearly every) BUY the settings would refuse, named in
/// `wallets_file`.
#[must_use]
pub fn below_minimum(wallets: &Wallets, fit: Fit, wallets_file: &str) -> Misfits {
    let min_order_usdc = fit.min_order_usdc;
    // A cap clips to whole lots at the limit price: up to one lot's worth (at most 0.01 USDC)
    // under the cap, so a cap of exactly the minimum rounds under it nearly every time.
    let least_cap = Usdc(min_order_usdc.0.saturating_add(LOT));
    let mut out = Vec::new();
    let mut warned = Vec::new();
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
        if let Some(cap) = t.rules.max_order_usdc {
            if cap < min_order_usdc {
                out.push(refuse("max_order_usdc", cap));
            } else if cap < least_cap {
                warned.push(
                    Problem::new(
                        wallets_file,
                        "max_order_usdc",
                        format!(
                            "{cap} leaves no room above copy.min_order_usdc {min_order_usdc}: a BUY clipped to it \
                             rounds down to whole 0.01-share lots and lands under the minimum nearly every time \
                             (below_minimum). Set it at least {least_cap}"
                        ),
                    )
                    .in_entry(entry.clone()),
                );
            }
        }
        if let SizingRule::FixedUsdc(usdc) = t.rules.sizing {
            if usdc < min_order_usdc {
                out.push(refuse("sizing.usdc", usdc));
            }
            // Shares are the amount at the target's price; the order is valued at the limit,
            // the price raised by the slippage (the wallet's own cap clips it back).
            let raised = i128::from(usdc.0) * (10_000 + i128::from(fit.max_slippage_bps)) / 10_000;
            let spend = t.rules.max_order_usdc.map_or(raised, |c| raised.min(i128::from(c.0)));
            if spend > i128::from(fit.max_order_usdc.0) {
                warned.push(
                    Problem::new(
                        wallets_file,
                        "sizing.usdc",
                        format!(
                            "{usdc} at the target's price is worth up to {} at our limit (slippage {} bps), over \
                             risk.max_order_usdc {}: nearly every BUY of this target would be refused (max_order_usdc). \
                             Lower it, give the wallet a max_order_usdc of at most {}, or raise risk.max_order_usdc",
                            Usdc(i64::try_from(spend).unwrap_or(i64::MAX)),
                            fit.max_slippage_bps,
                            fit.max_order_usdc,
                            fit.max_order_usdc
                        ),
                    )
                    .in_entry(entry.clone()),
                );
            }
        }
    }
    Misfits { problems: out, warnings: warned }
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

    fn fit(min: i64) -> Fit {
        Fit { min_order_usdc: Usdc(min), max_slippage_bps: 200, max_order_usdc: Usdc(100_000_000) }
    }

    #[test]
    fn a_targets_cap_or_fixed_amount_below_the_smallest_order_is_named() {
        let mult = SizingRule::Multiplier(rust_decimal::Decimal::new(1, 1));
        // (target, fields named)
        let cases: Vec<(Target, Vec<&str>)> = vec![
            (target(true, mult, None), vec![]),
            (target(true, mult, Some(2_000_000)), vec![]),
            (target(true, mult, Some(1_010_000)), vec![]),
            // Exactly the minimum: clipped to whole lots, nearly every BUY lands under it.
            (target(true, mult, Some(1_000_000)), vec!["warning: max_order_usdc"]),
            (target(true, mult, Some(1_009_999)), vec!["warning: max_order_usdc"]),
            (target(true, mult, Some(500_000)), vec!["max_order_usdc"]),
            // A fixed amount at the global cap: 100 at the price is 102 at the limit, refused.
            (target(true, SizingRule::FixedUsdc(Usdc(100_000_000)), None), vec!["warning: sizing.usdc"]),
            (target(true, SizingRule::FixedUsdc(Usdc(98_000_000)), None), vec![]),
            // The wallet's own cap clips it back under the global one.
            (target(true, SizingRule::FixedUsdc(Usdc(100_000_000)), Some(100_000_000)), vec![]),
            (target(true, SizingRule::FixedUsdc(Usdc(100_000_000)), Some(101_000_000)), vec!["warning: sizing.usdc"]),
            (target(true, SizingRule::FixedUsdc(Usdc(900_000)), None), vec!["sizing.usdc"]),
            (target(true, SizingRule::FixedUsdc(Usdc(900_000)), Some(500_000)), vec!["max_order_usdc", "sizing.usdc"]),
            // A disabled entry copies nothing: nothing to say.
            (target(false, SizingRule::FixedUsdc(Usdc(900_000)), None), vec![]),
        ];
        for (t, want) in cases {
            let w = Wallets { targets: vec![t.clone()] };
            let m = below_minimum(&w, fit(1_000_000), "wallets.json");
            let warned = m.warnings.into_iter().map(|p| format!("warning: {}", p.field));
            let got: Vec<String> = m.problems.into_iter().map(|p| p.field).chain(warned).collect();
            assert_eq!(got, want, "{t:?}");
        }
    }
}
