//! Fills refused before any sizing, by the registry (a paused target's BUY, a target no longer
//! watched): refused through the copier, which knows whether a copy of the same fill is being
//! decided, and asks the supervisor whether one is being placed.

use actix::{Context, Handler, Message};
use tracing::debug;

use super::Copier;
use crate::actors::notifier::Event;
use crate::actors::risk_supervisor::Placing;
use crate::actors::store::RecordRefusal;
use crate::risk::DenyReason;
use crate::store::PendingFill;

/// Refuse `pending` for `reason`, unless a copy of the same fill decides it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Refuse {
    /// The fill refused.
    pub pending: PendingFill,
    /// Its target's label (or wallet).
    pub label: String,
    /// Why.
    pub reason: DenyReason,
}

impl Handler<Refuse> for Copier {
    type Result = ();

    /// The same fill may come again (a reorg's rescan) after the target was paused or removed,
    /// while its first copy, approved before that, waits for a slot with its intent not journaled
    /// yet: refused then, the fill would be marked refused under that copy, whose order would find
    /// its trade gone and never be sent. That copy decides; only a fill no copy has is refused.
    fn handle(&mut self, m: Refuse, _: &mut Context<Self>) {
        let row = m.pending.row;
        if self.deciding.contains_key(&row) {
            debug!(fill = row, "a copy of this fill is being decided: it decides, not the registry's refusal");
            return;
        }
        let (risk, store, notifier) = (self.risk.clone(), self.store.clone(), self.notifier.clone());
        actix::spawn(async move {
            if risk.send(Placing(row)).await.unwrap_or(false) {
                debug!(fill = row, "a copy of this fill is being placed: it decides, not the registry's refusal");
                return;
            }
            let Refuse { pending, label, reason } = m;
            store.do_send(RecordRefusal { row, code: reason.code(), detail: reason.to_string() });
            notifier.do_send(Event::Rejected { label, fill: pending.fill, reason, market: None });
        });
    }
}
