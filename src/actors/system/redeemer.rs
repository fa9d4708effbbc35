//! The redemption loop's setup: which contracts, which signer, or why it cannot run.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;

use crate::actors::notifier::Notifier;
use crate::actors::store::StoreActor;
use crate::config::Settings;
use crate::metrics::Metrics;

/// The redemption loop for this mode, or why it cannot run (said once, at start).
pub(super) fn redeemer(
    s: &Settings,
    env: &crate::config::Env,
    venue: Option<&crate::clob::venue::Venue>,
    store: Addr<StoreActor>,
    notifier: Addr<Notifier>,
    metrics: Arc<Metrics>,
    gate: crate::risk::TradingGate,
) -> Result<crate::redeem::task::Redeemer, String> {
    use crate::clob::SigType;
    let r = &s.redeem;
    let cfg = crate::redeem::task::RedeemConfig {
        every: Duration::from_secs(r.check_every_s.max(1)),
        attempts: r.attempts.max(1),
        retry_base: Duration::from_secs(r.retry_after_s),
        confirm_wait: Duration::from_secs(r.confirm_wait_s),
        contracts: crate::redeem::task::Contracts {
            ctf: s.chain.conditional_tokens,
            position_manager: s.chain.position_manager,
            router: r.router,
            v3_exchanges: s.chain.v3_exchanges.clone(),
            pusd: r.pusd,
            standard_adapter: r.standard_adapter,
            neg_risk_adapter: r.neg_risk_adapter,
        },
    };
    let Some(v) = venue else {
        return Ok(crate::redeem::task::Redeemer {
            store,
            notifier,
            chain: None,
            funder: alloy::primitives::Address::ZERO,
            safe: false,
            cfg,
            metrics,
            data_api: None,
            node_failures: std::sync::Mutex::default(),
            gate,
            reverted_approvals: std::sync::Mutex::default(),
            nonce_used_since: std::sync::Mutex::default(),
        });
    };
    let sig = SigType::parse(&s.live.signature_type).map_err(|e| format!("redemption off: live.signature_type {e}"))?;
    if matches!(sig, SigType::PolyProxy | SigType::Poly1271) {
        return Err(format!(
            "redemption is off: a {} funder acts through Polymarket's own wallet contracts, which polycopy does not \
             drive; turn on Polymarket's auto-redeem, or redeem on polymarket.com (set redeem.enabled = false to \
             silence this)",
            s.live.signature_type
        ));
    }
    let key = env.private_key.as_ref().ok_or("redemption off: PRIVATE_KEY is not set")?;
    let signer: alloy::signers::local::PrivateKeySigner = secrecy::ExposeSecret::expose_secret(key)
        .parse()
        .map_err(|_| "redemption off: PRIVATE_KEY is not a key".to_owned())?;
    let url = env.rpc_urls.first().ok_or("redemption off: no POLYGON_RPC_URL")?;
    let chain = crate::redeem::chain::Chain::new(url, signer, s.chain.chain_id)
        .map_err(|e| format!("redemption off: {e}"))?
        .with_gate(gate.clone());
    Ok(crate::redeem::task::Redeemer {
        store,
        notifier,
        chain: Some(chain),
        funder: v.funder(),
        safe: sig == SigType::PolyGnosisSafe,
        cfg,
        metrics,
        data_api: Some(env.data_api_url.clone()),
        node_failures: std::sync::Mutex::default(),
        gate,
        reverted_approvals: std::sync::Mutex::default(),
        nonce_used_since: std::sync::Mutex::default(),
    })
}
