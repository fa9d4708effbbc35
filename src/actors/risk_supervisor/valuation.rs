//! Valuation of the book: marks to market (CLOB midpoints) and resolved markets. The daily loss
//! limit counts realized plus unrealized P&L.

use std::collections::HashMap;

use actix::{ActorFutureExt, AsyncContext, Context, Handler, Message, MessageResult, WrapFuture};

use super::RiskSupervisor;
use crate::actors::notifier::Event;
use crate::actors::store::{RecordSettlement, SetMarks};
use crate::domain::{ExecMode, Execution, Price, Side, TokenId, Usdc, mul_price_floor};
use crate::market::MarketInfo;
use crate::risk::book::position_after;
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
    /// Journals a write that changes our positions; if it fails, trading halts with
    /// `database_error` (the books in memory and in the journal would drift apart unnoticed).
    pub(super) fn journal_or_halt<M>(&mut self, ctx: &mut Context<Self>, what: &'static str, msg: M)
    where
        M: Message<Result = crate::store::StoreResult<()>> + Send + 'static,
        crate::actors::store::StoreActor: actix::Handler<M>,
    {
        ctx.spawn(self.store.send(msg).into_actor(self).map(move |r, act, _| match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => act.trip("database_error", &format!("journal write failed ({what}): {e}"), "daemon"),
            Err(e) => act.trip("database_error", &format!("journal unavailable ({what}): {e}"), "daemon"),
        }));
    }

    /// Realized P&L today plus the change of the open positions' unrealized P&L since the day opened.
    pub(super) fn pnl_today(&self) -> Usdc {
        crate::risk::day::pnl_today(self.realized_today, self.unrealized, self.unrealized_at_open)
    }

    /// Unrealized P&L of the positions that have a mark (unmarked ones count at cost).
    pub(super) fn revalue(&mut self) {
        let mut total = 0i64;
        for (token, mark) in &self.marks {
            let p = self.book.position(token);
            if p.shares.0 > 0 {
                total += mul_price_floor(p.shares, *mark) - p.cost.0;
            }
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

/// Markets that resolved: our positions in them settle at what a share pays (1 or 0).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Resolved(pub Vec<MarketInfo>);

impl Handler<Resolved> for RiskSupervisor {
    type Result = ();

    /// Closes each position in a resolved market as a SELL at its payout, realizing its P&L.
    fn handle(&mut self, m: Resolved, ctx: &mut Context<Self>) {
        for info in m.0 {
            let (Some(payout), pos) = (info.payout, self.book.position(&info.token_id)) else { continue };
            if pos.shares.0 <= 0 {
                continue;
            }
            if self.reserved.selling(&info.token_id) {
                // What the SELL sold is not ours to settle: settled at a later check, once the
                // SELL's outcome is booked.
                continue;
            }
            let exec = Execution {
                fill_row: 0,
                side: Side::Sell,
                token_id: info.token_id,
                shares: pos.shares,
                price: payout,
                usdc: Usdc(mul_price_floor(pos.shares, payout)),
                mode: ExecMode::Settlement,
                at_ms: now_ms(),
            };
            let (after, realized) = position_after(pos, &exec);
            self.book.set(info.token_id, after);
            self.marks.remove(&info.token_id);
            self.realized_today = Usdc(self.realized_today.0 + realized.0);
            self.journal_or_halt(ctx, "the settlement of a resolved market", RecordSettlement { exec, realized });
            self.notifier.do_send(Event::Settled { market: info.name(), shares: pos.shares, payout, realized });
        }
        self.revalue();
        self.check_daily_loss();
        self.publish();
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
    fn handle(&mut self, m: Marks, _: &mut Context<Self>) {
        self.store.do_send(SetMarks(m.0.clone()));
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
