//! Valuation of the book: marks to market (CLOB midpoints) and resolved markets. The daily loss
//! limit counts realized plus unrealized P&L.

use std::collections::HashMap;

use actix::{ActorFutureExt, Context, Handler, Message, MessageResult, ResponseActFuture, WrapFuture};

use super::RiskSupervisor;
use crate::actors::notifier::Event;
use crate::actors::store::{RecordSettlement, SetMarks};
use crate::domain::{Price, TokenId, Usdc};
use crate::market::MarketInfo;
use crate::store::now_ms;

/// The tokens we hold (for marking to market).
#[derive(Debug, Message)]
#[rtype(result = "Vec<TokenId>")]
pub struct GetOpenTokens;

/// New marks (CLOB midpoints) for tokens we hold.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Marks(pub HashMap<TokenId, Price>);

impl RiskSupervisor {
    /// Realized P&L today plus the change of the open positions' unrealized P&L since the day opened.
    pub(super) fn pnl_today(&self) -> Usdc {
        crate::risk::day::pnl_today(self.realized_today, self.unrealized, self.unrealized_at_open)
    }

    /// Unrealized P&L of the positions that have a mark (unmarked ones count at cost).
    pub(super) fn revalue(&mut self) {
        let mut total = 0i64;
        for (token, mark) in &self.marks {
            let p = self.book.position(token);
            let marked = self.marked.get(token).copied().unwrap_or(p);
            total += crate::risk::day::unrealized_at(p, *mark, marked);
        }
        self.unrealized = Usdc(total);
    }

    pub(super) fn check_daily_loss(&mut self) {
        let pnl = self.pnl_today();
        let active = self.breaker.state.trading() == crate::risk::TradingState::Active;
        if active && pnl.0 <= -self.limits.daily_loss_limit_usdc.0 {
            let change = Usdc(pnl.0 - self.realized_today.0);
            let reason = format!(
                "P&L today {pnl} (realized {}, change of unrealized since the day opened {change}) reached the limit -{}",
                self.realized_today, self.limits.daily_loss_limit_usdc
            );
            if self.daily_loss_halts {
                self.trip(crate::risk::reason::DAILY_LOSS_LIMIT, &reason, "daemon");
            } else {
                self.reduce(crate::risk::reason::DAILY_LOSS_LIMIT, &reason, "daemon");
            }
        }
    }
}

/// Markets that resolved: our positions in them settle at what a share pays (1, 0, or 0.5 for an
/// even result).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Resolved(pub Vec<MarketInfo>);

impl Handler<Resolved> for RiskSupervisor {
    type Result = ResponseActFuture<Self, ()>;

    /// Closes each position in a resolved market as a SELL of every share at its payout. The
    /// journal settles the position it holds (never a copy of it that may lag behind a booking on
    /// its way to us, and only once), and the book takes what the journal wrote.
    fn handle(&mut self, m: Resolved, _: &mut Context<Self>) -> Self::Result {
        // What a SELL in flight sells is not ours to settle: settled at a later check, once the
        // SELL's outcome is booked.
        let due: Vec<(MarketInfo, Price)> =
            m.0.into_iter()
                .filter(|i| !self.reserved.selling(&i.token_id))
                .filter_map(|i| i.payout.map(|p| (i, p)))
                .collect();
        let store = self.store.clone();
        let work = async move {
            let mut settled = Vec::new();
            for (info, payout) in due {
                match store.send(RecordSettlement { token: info.token_id, payout }).await {
                    Ok(Ok(Some(r))) => settled.push((info, r)),
                    // Nothing held any more: settled already.
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => return (settled, Some(e.to_string())),
                    Err(e) => return (settled, Some(e.to_string())),
                }
            }
            (settled, None)
        };
        Box::pin(work.into_actor(self).map(|(settled, failed), act, _| {
            act.roll_day(now_ms());
            for (info, r) in settled {
                // Written just before the day rolled (dated yesterday): what it moved of unrealized
                // P&L moves the day's opening value with it, as any booking of an earlier day does,
                // else today would count the position's disappearance as a loss or a gain.
                let token = info.token_id;
                if r.position.seq > act.written.get(&token).copied().unwrap_or(0) {
                    let before = act.unrealized_of(&token, act.book.position(&token));
                    let after = act.unrealized_of(&token, r.position.position);
                    let carried = crate::risk::day::carried_to_open(r.exec.at_ms, act.day_start_ms, before, after);
                    act.carry_into_day_open(Usdc(carried));
                }
                act.adopt(info.token_id, r.position);
                act.marks.remove(&info.token_id);
                act.marked.remove(&info.token_id);
                // Counted on the day the journal dates it, as every booking is: a settlement written
                // just before the day rolled is yesterday's after a restart too.
                if r.exec.at_ms >= act.day_start_ms {
                    act.realized_today = Usdc(act.realized_today.0 + r.realized.0);
                }
                let (shares, payout, realized) = (r.exec.shares, r.exec.price, r.realized);
                act.notifier.do_send(Event::Settled { market: info.name(), shares, payout, realized });
            }
            if let Some(e) = failed {
                act.trip(
                    "database_error",
                    &format!("journal write failed (the settlement of a resolved market): {e}"),
                    "daemon",
                );
            }
            act.revalue();
            act.check_daily_loss();
            act.publish();
        }))
    }
}

impl Handler<GetOpenTokens> for RiskSupervisor {
    type Result = MessageResult<GetOpenTokens>;

    /// Tokens with a non-zero position.
    fn handle(&mut self, _: GetOpenTokens, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.book.tokens())
    }
}

impl Handler<Marks> for RiskSupervisor {
    type Result = ();

    /// Revalues the book at the new marks; the daily loss limit counts the unrealized part too.
    fn handle(&mut self, mut m: Marks, _: &mut Context<Self>) {
        self.roll_day(now_ms());
        // Marks read for a position closed meanwhile are dropped: bought again later, it must not
        // be valued at them.
        m.0.retain(|token, _| self.book.position(token).shares.0 > 0);
        self.store.do_send(SetMarks(m.0.clone()));
        for token in m.0.keys() {
            self.marked.insert(*token, self.book.position(token));
        }
        self.marks.extend(m.0);
        self.marked_since_start = true;
        self.revalue();
        // The first marks of a day whose opening value was not recorded (a start mid-day): from now on.
        if self.unrealized_at_open.is_none() {
            self.open_day_at(self.unrealized);
        }
        self.check_daily_loss();
        self.publish();
    }
}

/// Today's P&L as the daily loss limit counts it (realized today plus the change of unrealized
/// P&L since the day opened).
#[derive(Debug, actix::Message)]
#[rtype(result = "Usdc")]
pub struct GetPnlToday;

impl actix::Handler<GetPnlToday> for RiskSupervisor {
    type Result = actix::MessageResult<GetPnlToday>;

    fn handle(&mut self, _: GetPnlToday, _: &mut actix::Context<Self>) -> Self::Result {
        actix::MessageResult(self.pnl_today())
    }
}
