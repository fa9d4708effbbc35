//! What our own fills on chain tell the supervisor: an order the CLOB never confirmed booked from
//! its fill, a part a later transaction added, a SELL's proceeds corrected to what the chain
//! paid, or the fee a fill paid. The journal has made each change already; the book, today's P&L and the reservations
//! follow here, without waiting for a restart.

use actix::{Context, Handler};

use super::RiskSupervisor;
use crate::actors::notifier::Event;
use crate::chain::{OwnBooked, OwnChange};
use crate::domain::Usdc;

impl Handler<OwnBooked> for RiskSupervisor {
    type Result = ();

    /// Takes into the book what the journal booked from our fill on chain, without waiting for a
    /// restart: an order the CLOB never confirmed (a lookup answering `null`, a POST never
    /// answered), a part a later fill added, or the exact pUSD of an order booked at its limit.
    fn handle(&mut self, m: OwnBooked, _: &mut Context<Self>) {
        match m.change {
            OwnChange::Booked(b) => self.booked_on_chain(m.order_id, b),
            OwnChange::Corrected(c) => self.corrected_on_chain(m.order_id, &c),
            OwnChange::Fee { fee, at_ms } => self.fee_changed(Usdc(-fee.0), at_ms),
            OwnChange::FeeForgotten(f) => self.fee_changed(f.fee, f.at_ms),
        }
    }
}

impl RiskSupervisor {
    fn booked_on_chain(&mut self, order_id: String, b: crate::store::OwnBooking) {
        if let Some(was) = b.overturned {
            let message = format!(
                "our order {} filled on chain ({} {} shares of token {}) after its copy had been journaled {}: booked now; check why (docs/RUNBOOK.md, reconcile)",
                order_id,
                b.exec.side.as_str(),
                b.exec.shares,
                b.exec.token_id,
                was.as_str()
            );
            tracing::error!("{message}");
            self.notifier.do_send(Event::Alert { message });
        }
        // An order that may still fill (a GTD order resting), or whose placement still runs, keeps
        // holding what may still fill: its placement or the resolver ends it. Any other is done with.
        let row = b.exec.fill_row;
        if b.open || self.reserved.placing(row) {
            let held = self.reserved.filled_part(row, b.exec.shares, b.exec.usdc);
            if !b.open {
                self.reserved.done_on_chain(row);
                // A BUY's match may settle its rest in a later transaction, after the placement
                // ends (its lookup then replays only this part): the rest stays held until the
                // settlement timeout, as below, whatever the placement ends with.
                if held && b.exec.side == crate::domain::Side::Buy && self.reserved.rest(row).0 > 0 {
                    self.reserved.await_later_parts(row, u64::try_from(crate::store::now_ms() / 1000).unwrap_or(0));
                }
            }
        } else {
            self.unresolved.done(row);
            // One match can settle in several transactions: a BUY's part smaller than what the
            // order held keeps the rest held (caps hold) until a later part books it or the chain
            // is read past the settlement timeout (`CheckSettlement` lets it go). Nothing is looked
            // up or sent for it again: its outcome is the chain's. A SELL's rest is let go: held,
            // it would claim shares a target's exit may need (a refused exit is lost).
            let buy = b.exec.side == crate::domain::Side::Buy;
            if self.reserved.filled_part(row, b.exec.shares, b.exec.usdc) && buy && self.reserved.rest(row).0 > 0 {
                self.reserved.done_on_chain(row);
                self.reserved.await_later_parts(row, u64::try_from(crate::store::now_ms() / 1000).unwrap_or(0));
            } else {
                self.reserved.release(row);
            }
        }
        self.publish_reserved();
        self.roll_day(crate::store::now_ms());
        let restated_today: i64 = b.restated.iter().filter(|(at, _)| *at >= self.day_start_ms).map(|(_, c)| c.0).sum();
        self.realized_today = Usdc(self.realized_today.0 + restated_today);
        // A part of an earlier day's execution restates today's bookings after it: that change is
        // the earlier day's (its cost), so the day's opening value moves with it, as for a
        // settlement change of an earlier day; only today's own moves count.
        if b.exec.at_ms < self.day_start_ms {
            self.carry_into_day_open(Usdc(restated_today));
        }
        let by_operator = b.wallet == crate::domain::OPERATOR;
        let event = Event::BookedOnChain { order: order_id, exec: b.exec.clone(), by_operator };
        self.take_booking(&b.exec, b.position, b.realized, event);
        self.wake_position_waiters();
    }

    /// A fee our fill on chain paid (`change` negative), or one a reorg forgot with its fill
    /// (positive), moves today's P&L when it is dated today (`at_ms`), as the journal's sum does.
    /// A fee can trip the daily loss limit as any loss does.
    fn fee_changed(&mut self, change: Usdc, at_ms: i64) {
        self.roll_day(crate::store::now_ms());
        if at_ms >= self.day_start_ms {
            self.realized_today = Usdc(self.realized_today.0 + change.0);
        }
        self.check_daily_loss();
        self.publish();
    }

    /// The journal replaced a SELL's proceeds with the chain's: today's P&L follows, and the
    /// operator is told what changed.
    fn corrected_on_chain(&mut self, order: String, c: &crate::store::Correction) {
        self.roll_day(crate::store::now_ms());
        // Today's P&L counts it only if the SELL was booked today (as the journal's sum does).
        if c.at_ms >= self.day_start_ms {
            self.realized_today = Usdc(self.realized_today.0 + c.realized.0);
        }
        self.notifier.do_send(Event::Corrected {
            order,
            token_id: c.token_id,
            booked: c.booked,
            chain: c.chain,
            realized: c.realized,
        });
        self.revalue();
        self.check_daily_loss();
        self.publish();
    }
}
