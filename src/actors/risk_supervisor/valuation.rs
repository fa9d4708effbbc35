//! Valuation of the book: marks to market (CLOB midpoints) and settlement on chain. The daily loss
//! limit counts realized plus unrealized P&L; a live match that never settles is taken out of the
//! books, and put back if it settles after all.

use std::collections::HashMap;
use std::time::Duration;

use actix::{ActorFutureExt, AsyncContext, AtomicResponse, Context, Handler, Message, MessageResult, WrapFuture};
use tracing::error;

use super::RiskSupervisor;
use crate::actors::notifier::Event;
use crate::actors::store::{GetExecution, RecordSettlement, RecordSettlementChange, SetMarks, UnsettledBefore};
use crate::domain::{ExecMode, Execution, Price, Side, TokenId, Usdc, mul_price_floor};
use crate::market::MarketInfo;
use crate::risk::book::{position_after, position_with, position_without};
use crate::store::now_ms;

/// Take matched orders that never settled on chain out of our books (live).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CheckSettlement {
    /// How long a matched order may take to settle.
    pub timeout: Duration,
}

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

impl Handler<CheckSettlement> for RiskSupervisor {
    type Result = AtomicResponse<Self, ()>;

    /// Takes out of the books executions whose order matched on the CLOB but never appeared on
    /// chain, and puts back those that appeared after all.
    fn handle(&mut self, m: CheckSettlement, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        let before = now_ms() - i64::try_from(m.timeout.as_millis()).unwrap_or(i64::MAX);
        let work = async move {
            let overdue = match store.send(UnsettledBefore(before)).await {
                Ok(Ok(v)) => v,
                _ => return Vec::new(),
            };
            let mut out = Vec::new();
            for u in overdue {
                if let Ok(Ok(Some(e))) = store.send(GetExecution(u.fill_row)).await {
                    out.push((u, e));
                }
            }
            out
        };
        AtomicResponse::new(Box::pin(work.into_actor(self).map(move |mut changes, act, ctx| {
            changes.sort_by_key(|(u, (exec, _))| crate::risk::book::change_order(u.settled_late, exec.at_ms));
            for (u, (exec, realized)) in changes {
                let pos = act.book.position(&exec.token_id);
                let restored = u.settled_late;
                let (after, realized_change) = if restored {
                    position_with(pos, exec.side, exec.shares, exec.usdc, realized)
                } else {
                    let (p, undone) = position_without(pos, exec.side, exec.shares, exec.usdc, realized);
                    (p, Usdc(-undone.0))
                };
                act.book.set(exec.token_id, after);
                // Today's P&L counts it only if it was booked today (as the journal's sum does).
                if exec.at_ms >= act.day_start_ms {
                    act.realized_today = Usdc(act.realized_today.0 + realized_change.0);
                }
                let change = RecordSettlementChange { fill_row: u.fill_row, token: exec.token_id, position: after, restored };
                act.journal_or_halt(ctx, "a settlement change of our position", change);
                let what = format!("{} {} shares of token {}", exec.side.as_str(), exec.shares, exec.token_id);
                let message = if restored {
                    format!("order {} settled on chain after it was taken out of our books: {what} put back", u.order_id)
                } else {
                    format!(
                        "order {} matched on the CLOB but did not settle on chain within {}s: {what} taken out of our books",
                        u.order_id,
                        m.timeout.as_secs()
                    )
                };
                error!("{message}");
                act.notifier.do_send(Event::Alert { message });
            }
            act.revalue();
            act.publish();
        })))
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
