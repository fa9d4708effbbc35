//! `/targets` (and `/wallets`): each target with how copying it went (copies, refusals, our price
//! against its, how late we saw its fills, our P&L on its copies against its own).

use crate::actors::store::{GetStatus, GetTargetQuality};
use crate::actors::watcher::ListTargets;
use crate::actors::within;
use crate::store::TargetQuality;

/// The reply, or `None` when the actors did not answer.
pub async fn reply(ops: &super::commands::Ops) -> Option<String> {
    let wait = super::replies::ANSWER_WAIT;
    let (Ok(targets), Ok(Ok(st)), Ok(Ok(quality))) = tokio::join!(
        within(wait, ops.registry.send(ListTargets)),
        within(wait, ops.store.send(GetStatus)),
        within(wait, ops.store.send(GetTargetQuality(0))),
    ) else {
        return None;
    };
    if targets.is_empty() {
        return Some("no targets watched: enable some in wallets.json".into());
    }
    let lines: Vec<String> = targets
        .iter()
        .map(|t| {
            let a = crate::domain::addr_lower(&t.target.address);
            let all = st.fills_by_wallet.get(&a).copied().unwrap_or(0);
            let q = quality.get(&t.target.address).cloned().unwrap_or_default();
            format!(
                "{} {}…{}: {}, {} fills since start, {all} in the journal\n  {}",
                t.target.label,
                &a[..6],
                &a[a.len() - 4..],
                if t.paused { "PAUSED" } else { "copying" },
                t.fills_seen,
                quality_line(&q)
            )
        })
        .collect();
    Some(lines.join("\n"))
}

/// One line of figures for a person.
#[must_use]
pub fn quality_line(q: &TargetQuality) -> String {
    let refused: u64 = q.refusals.values().sum();
    let top = q.refusals.iter().max_by_key(|(_, n)| **n).map(|(r, n)| format!(" (most: {r} {n})")).unwrap_or_default();
    let slip = q.slippage_bps.map_or_else(|| "n/a".to_owned(), |b| format!("{b} bps"));
    let late = q.detection_ms.map_or_else(|| "n/a".to_owned(), |ms| format!("{:.1} s", ms as f64 / 1000.0));
    format!(
        "{} copies, {refused} refused{top}; slippage {slip}; seen {late} after the block; P&L ours {} USDC vs its {} USDC",
        q.copies, q.our_realized_usdc, q.target_realized_usdc
    )
}
