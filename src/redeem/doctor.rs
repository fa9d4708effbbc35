//! `doctor`'s checks of the money lifecycle: each contract the settings name holds code on this
//! chain (verified, not trusted as a constant), and whether redemption can run for this funder.

use std::time::Duration;

use alloy::primitives::Address;
use alloy::providers::{Provider as _, ProviderBuilder};

use crate::clob::SigType;
use crate::clob::doctor::{Check, Verdict};
use crate::config::Settings;

/// The contracts and their checks, then the redemption support of `sig` (and, for a Safe funder,
/// that the Safe exists).
pub async fn checks(s: &Settings, rpc_url: Option<&str>, sig: SigType, funder: Option<Address>) -> Vec<Check> {
    let mut out = vec![redemption(s, sig)];
    let ctf_uses = "target exits and reconcile of CTF markets";
    let v3_uses = "target exits, reconcile and redemption of V3 markets";
    let mut contracts: Vec<(&'static str, Address, &str)> = vec![
        ("contract: conditional tokens", s.chain.conditional_tokens, ctf_uses),
        ("contract: V3 position manager", s.chain.position_manager, v3_uses),
        ("contract: pUSD", s.redeem.pusd, "redemption payouts"),
        ("contract: standard adapter", s.redeem.standard_adapter, "redemption of CTF markets"),
        ("contract: neg-risk adapter", s.redeem.neg_risk_adapter, "redemption of neg-risk markets"),
        ("contract: V3 exchange", s.chain.v3_exchanges.first().copied().unwrap_or(Address::ZERO), "watching V3 fills"),
        ("contract: V3 router", s.redeem.router, "redemption of V3 markets"),
    ];
    if let (SigType::PolyGnosisSafe, Some(f)) = (sig, funder) {
        contracts.push(("funder: Safe", f, "everything the funder does (it is not deployed)"));
    }
    let provider = rpc_url.and_then(|u| u.parse().ok()).map(|u| ProviderBuilder::new().connect_http(u));
    match (&provider, funder) {
        (Some(p), Some(f)) => out.push(share_approvals(p, s.chain.conditional_tokens, f).await),
        (None, _) => {
            out.push(Check { name: SHARES, verdict: Verdict::Skipped, detail: "no POLYGON_RPC_URL to ask".into() })
        }
        (_, None) => out.push(Check {
            name: SHARES,
            verdict: Verdict::Skipped,
            detail: "not checked: the funder is not known (see above)".into(),
        }),
    }
    for (name, at, uses) in contracts {
        let Some(p) = &provider else {
            out.push(Check { name, verdict: Verdict::Skipped, detail: "no POLYGON_RPC_URL to ask".into() });
            continue;
        };
        let code = tokio::time::timeout(Duration::from_secs(10), p.get_code_at(at).into_future()).await;
        out.push(match code {
            Ok(Ok(c)) if !c.is_empty() => Check { name, verdict: Verdict::Ok, detail: format!("{at:#x} holds code") },
            // Orders still work without it (a warning, not a failure); redemption, reconciliation or
            // proportional exits of that generation do not.
            Ok(Ok(_)) => Check {
                name,
                verdict: Verdict::Warn,
                detail: format!(
                    "{at:#x} holds no code on chain {}: {uses} will not work; check the address in the settings \
                     against Polymarket's published contracts (docs/PROTOCOL.md)",
                    s.chain.chain_id
                ),
            },
            Ok(Err(e)) => Check {
                name,
                verdict: Verdict::Warn,
                detail: format!("could not ask the node: {}", crate::config::env::redact(&e.to_string())),
            },
            Err(_) => Check { name, verdict: Verdict::Warn, detail: "the node did not answer within 10 s".into() },
        });
    }
    out
}

const SHARES: &str = "share approvals";

/// Whether both V2 exchanges may move the funder's outcome shares (`setApprovalForAll` on
/// Conditional Tokens, read on chain). Without it every SELL, so every exit, is refused "not enough
/// balance / allowance" while BUYs go through (their pUSD allowances are separate), and the
/// refusals count toward the breaker with positions open.
async fn share_approvals(p: &impl alloy::providers::Provider, ctf: Address, funder: Address) -> Check {
    let mut missing = Vec::new();
    let mut asked = 0;
    for (label, neg) in [("the CTF Exchange V2", false), ("the NegRisk CTF Exchange V2", true)] {
        let Some(exchange) =
            polymarket_client_sdk_v2::contract_config(crate::clob::account::POLYGON, neg).and_then(|c| c.exchange_v2)
        else {
            continue;
        };
        asked += 1;
        let call = alloy::rpc::types::TransactionRequest::default()
            .to(ctf)
            .input(crate::redeem::calls::is_approved(funder, exchange).into());
        let answer = tokio::time::timeout(Duration::from_secs(10), p.call(call).into_future()).await;
        let warn = |detail: String| Check { name: SHARES, verdict: Verdict::Warn, detail };
        match answer {
            Ok(Ok(word)) if word.len() == 32 => {
                if word.iter().all(|b| *b == 0) {
                    missing.push(format!("{label} ({exchange:#x})"));
                }
            }
            Ok(Ok(_)) => {
                return warn(format!("conditional tokens at {ctf:#x} gave no answer (no code on this chain?)"));
            }
            Ok(Err(e)) => {
                return warn(format!("could not ask the node: {}", crate::config::env::redact(&e.to_string())));
            }
            Err(_) => return warn("the node did not answer within 10 s".into()),
        }
    }
    if asked == 0 {
        return Check { name: SHARES, verdict: Verdict::Warn, detail: "no V2 exchange known to ask about".into() };
    }
    if missing.is_empty() {
        return Check {
            name: SHARES,
            verdict: Verdict::Ok,
            detail: format!("both V2 exchanges may move {funder:#x}'s outcome shares: exits can sell"),
        };
    }
    Check {
        name: SHARES,
        verdict: Verdict::Fail,
        detail: format!(
            "missing approval: {} may not move {funder:#x}'s outcome shares, so every SELL (every exit) would be \
             refused with \"not enough balance / allowance\" and count toward the breaker. Approve them: \
             setApprovalForAll(exchange, true) on Conditional Tokens {ctf:#x}, sent from the funder \
             (polymarket.com's approval flow, any trade made there once, sets it)",
            missing.join(" and ")
        ),
    }
}

fn redemption(s: &Settings, sig: SigType) -> Check {
    let name = "redemption";
    if !s.redeem.enabled {
        return Check { name, verdict: Verdict::Skipped, detail: "redeem.enabled = false (auto-redeem?)".into() };
    }
    match sig {
        SigType::Eoa => Check {
            name,
            verdict: Verdict::Ok,
            detail:
                "resolved winnings are redeemed through the collateral adapters (V3 markets: the Router), gas paid \
                     in POL by the key"
                    .into(),
        },
        SigType::PolyGnosisSafe => Check {
            name,
            verdict: Verdict::Ok,
            detail: "resolved winnings are redeemed through the Safe's execTransaction signed by the key (its owner); \
                     gas paid in POL by the key"
                .into(),
        },
        SigType::PolyProxy | SigType::Poly1271 => Check {
            name,
            verdict: Verdict::Warn,
            detail: format!(
                "not supported for {} funders (they act through Polymarket's own wallet contracts): turn on \
                 Polymarket's auto-redeem, or set redeem.enabled = false; reconcile lists unredeemed winnings",
                s.live.signature_type
            ),
        },
    }
}
