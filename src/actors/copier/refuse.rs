//! Fills refused before any sizing, by the registry (a paused target's BUY, a target no longer
//! watched): refused through the copier, which knows whether a copy of the same fill is being
//! decided, and asks the supervisor whether one is being placed.

use actix::{Context, Handler, Message};
use tokio::sync::oneshot;
use tracing::debug;

use super::{Copier, Copy};
use crate::actors::notifier::Event;
use crate::actors::risk_supervisor::{Decision, Placing};
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

/// What waits for a sighting's copy to be decided: the copy of its mined fill, or the registry's
/// refusal of it. Decided once that copy is, unless that copy placed the fill.
pub(super) enum Parked {
    /// The mined fill's copy, with whoever waits for its decision.
    Copy(Copy, Option<oneshot::Sender<Decision>>),
    /// The registry's refusal of the mined fill (its target paused or removed meanwhile).
    Refusal(Refuse),
}

impl Handler<Refuse> for Copier {
    type Result = ();

    /// The same fill may come again (a reorg's rescan) after the target was paused or removed,
    /// while its first copy, approved before that, waits for a slot with its intent not journaled
    /// yet: refused then, the fill would be marked refused under that copy, whose order would find
    /// its trade gone and never be sent. That copy decides; only a fill no copy has is refused.
    /// A sighting's copy may place nothing (the fill left to its block): the refusal of its mined
    /// fill waits for that copy, else nothing would ever decide the fill.
    fn handle(&mut self, m: Refuse, _: &mut Context<Self>) {
        let row = m.pending.row;
        match self.deciding.get(&row) {
            Some(&true) if m.pending.fill.block_number != 0 && !self.after_sighting.contains_key(&row) => {
                debug!(fill = row, "the registry's refusal of a mined fill waits for its sighting's copy");
                self.after_sighting.insert(row, Parked::Refusal(m));
            }
            Some(_) => {
                debug!(fill = row, "a copy of this fill is being decided: it decides, not the registry's refusal");
            }
            None => self.refuse(m),
        }
    }
}

impl Copier {
    /// Refuses `m`'s fill unless a copy of it is being placed.
    pub(super) fn refuse(&self, m: Refuse) {
        let row = m.pending.row;
        let (risk, store, notifier) = (self.risk.clone(), self.store.clone(), self.notifier.clone());
        actix::spawn(async move {
            if risk.send(Placing(row)).await.unwrap_or(false) {
                debug!(fill = row, "a copy of this fill is being placed: it decides, not the registry's refusal");
                return;
            }
            let Refuse { pending, label, reason } = m;
            let recorded = store.send(RecordRefusal { row, code: reason.code(), detail: reason.to_string() }).await;
            // A fill already decided (a refusal parked behind a sighting's copy that was refused
            // itself) is not reported refused a second time; a journal that failed to say is.
            if !matches!(recorded, Ok(Ok(false))) {
                notifier.do_send(Event::Rejected { label, fill: pending.fill, reason, market: None });
            }
        });
    }
}
