//! Messages for the trading path: intents before anything leaves, orders and their outcomes,
//! executions, settlements, our own fills on chain, marks and market metadata.

use actix::{Context, Handler, Message, ResponseFuture};
use alloy::primitives::Address;

use super::{Request, StoreActor};
use crate::domain::{Execution, OrderIntent, Shares, TokenId, Usdc};
use crate::risk::Written;
use crate::store::{PaperBooking, Store, StoreResult};

/// Settle (or book) our order with its fill on chain (see [`crate::store::OwnSettlement`]).
#[derive(Debug)]
pub struct BookOwnFill {
    /// Our order id (its hash).
    pub order_id: String,
    /// Shares filled on chain.
    pub shares: Shares,
    /// pUSD paid or received.
    pub usdc: Usdc,
    /// The fee the exchange charged, pUSD.
    pub fee: Usdc,
    /// The settling transaction.
    pub tx: String,
    /// The block it was read in.
    pub block: u64,
}
store_handler!(BookOwnFill -> crate::store::OwnSettled, |s, m| s.settle_own_fill_paying(
    &m.order_id,
    m.shares,
    m.usdc,
    m.fee,
    (&m.tx, m.block)
));

/// The shares of a token one target's copies hold (see [`Store::copied_shares`]).
#[derive(Debug)]
pub struct CopiedShares {
    /// The target.
    pub wallet: Address,
    /// The outcome token.
    pub token: TokenId,
}
store_handler!(CopiedShares -> Shares, |s, m| s.copied_shares(&m.wallet, m.token));

/// Where a fill seen pending was mined, once journaled (see [`crate::store::Store::mined_at`]).
#[derive(Debug)]
pub struct MinedAt(pub i64);
store_handler!(MinedAt -> Option<(u64, i64)>, |s, m| s.mined_at(m.0));

/// The target's trades of the same token journaled before a fill seen pending (see
/// [`crate::store::Store::pending_before`]).
#[derive(Debug)]
pub struct PendingBefore {
    /// The fill seen pending.
    pub row: i64,
    /// The block its target's balance is read at.
    pub at: u64,
}
store_handler!(PendingBefore -> Vec<(alloy::primitives::B256, i64, bool)>, |s, m| s.pending_before(m.row, m.at));

/// Record the unrealized P&L a trading day opened with.
#[derive(Debug)]
pub struct SetDayOpen {
    /// The day's opening, unix ms.
    pub day_start_ms: i64,
    /// Unrealized P&L of the open positions then.
    pub unrealized: Usdc,
}
store_handler!(SetDayOpen -> (), |s, m| s.set_day_open(m.day_start_ms, m.unrealized));

/// Move the unrealized P&L a trading day opened with (see [`crate::store::Store::move_day_open`]).
#[derive(Debug)]
pub struct MoveDayOpen {
    /// The day's opening, unix ms.
    pub day_start_ms: i64,
    /// The opening's new value.
    pub unrealized: Usdc,
}
store_handler!(MoveDayOpen -> (), |s, m| s.move_day_open(m.day_start_ms, m.unrealized));

/// Orders in flight, for `/health`.
#[derive(Debug)]
pub struct GetOrderHealth;
store_handler!(GetOrderHealth -> crate::store::OrderHealth, |s, _m| s.order_health());

/// Store the signed order of a fill before it is sent (returns the fill's one order).
#[derive(Debug)]
pub struct RecordOrder {
    /// The fill.
    pub fill_row: i64,
    /// The signed order.
    pub order: crate::clob::order::StoredOrder,
}
store_handler!(RecordOrder -> (crate::store::OrderRow, Committed), stamped by |(_, c), at| c.0 = Some(at), |s, m| {
    Ok((s.record_order(m.fill_row, &m.order)?, Committed::default()))
});

/// When a write's commit ended (set once it did).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed(pub Option<std::time::Instant>);

/// The order stored for a fill.
#[derive(Debug)]
pub struct GetOrder(pub i64);
store_handler!(GetOrder -> Option<crate::store::OrderRow>, |s, m| s.order_for(m.0));

/// Whether a fill is still a trade to copy (see [`crate::store::Store::fill_standing`]).
#[derive(Debug)]
pub struct FillStands(pub i64);
store_handler!(FillStands -> crate::store::FillStanding, |s, m| s.fill_standing(m.0));

/// Count a send of a fill's order, before it leaves (and whether a lookup answering null led to it).
#[derive(Debug)]
pub struct OrderSent(pub i64, pub bool);
store_handler!(OrderSent -> (), |s, m| s.order_sent(m.0, m.1));

/// Take back the count of a fill order's first send: a halt stopped it before it left.
#[derive(Debug)]
pub struct OrderNeverSent(pub i64);
store_handler!(OrderNeverSent -> bool, |s, m| s.order_never_sent(m.0));

/// What became of a fill's order.
#[derive(Debug)]
pub struct OrderOutcome {
    /// The fill.
    pub fill_row: i64,
    /// New status.
    pub status: crate::store::OrderStatus,
    /// Shares and pUSD, when it matched.
    pub amounts: Option<(i64, i64)>,
    /// The exchange's words.
    pub message: String,
}
store_handler!(OrderOutcome -> (), |s, m| s.order_outcome(m.fill_row, m.status, m.amounts, &m.message));

/// The exchange said it holds the order of fill `.0`: never sent again.
#[derive(Debug)]
pub struct OrderHeld(pub i64);
store_handler!(OrderHeld -> (), |s, m| s.order_held(m.0));

/// The cancel of fill `fill_row`'s GTD order given up failed: owed until `until_s` (its expiry).
#[derive(Debug)]
pub struct OweCancel {
    /// The fill.
    pub fill_row: i64,
    /// The order's expiry, unix seconds.
    pub until_s: i64,
}
store_handler!(OweCancel -> (), |s, m| s.owe_cancel(m.fill_row, m.until_s));

/// The exchange answered the cancel owed for fill `.0`'s order.
#[derive(Debug)]
pub struct CancelPaid(pub i64);
store_handler!(CancelPaid -> (), |s, m| s.cancel_paid(m.0));

/// The cancels still owed at unix second `.0` (see [`crate::store::Store::owed_cancels`]).
#[derive(Debug)]
pub struct OwedCancels(pub i64);
store_handler!(OwedCancels -> Vec<crate::store::OwedCancel>, |s, m| s.owed_cancels(m.0));

/// Matched orders whose settlement is overdue.
#[derive(Debug)]
pub struct UnsettledBefore(pub i64);
store_handler!(UnsettledBefore -> Vec<crate::store::Unsettled>, |s, m| s.unsettled_before(m.0));

/// Record an intent before it is executed; false when the fill must not be executed.
#[derive(Debug)]
pub struct RecordIntent(pub OrderIntent);
store_handler!(RecordIntent -> bool, |s, m| s.record_intent(&m.0));

/// Record an execution with the position and P&L it produced. Answers with what was booked: all of
/// it, or the part it adds to what our fill on chain booked first.
#[derive(Debug)]
pub struct RecordExecution {
    /// What was executed.
    pub exec: Execution,
    /// The target copied.
    pub wallet: Address,
}
store_handler!(RecordExecution -> Option<(Execution, Written, Usdc)>, |s, m| s.record_execution_part(&m.exec, &m.wallet));

/// A paper copy's intent and simulated execution, journaled in one write (see
/// [`crate::actors::risk_supervisor`]'s placement): nothing leaves the process, so the intent needs
/// no write of its own before the execution.
#[derive(Debug)]
pub struct RecordPaperCopy {
    /// The approved intent.
    pub intent: OrderIntent,
    /// Its simulated execution.
    pub exec: Execution,
    /// The target copied.
    pub wallet: Address,
    /// The intent is new (else it was journaled before a restart).
    pub fresh: bool,
    /// False while trading is halted: the intent is journaled, nothing is executed.
    pub may_send: bool,
}

/// What became of a paper copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaperCopy {
    /// Executed: the execution and the position and P&L it led to (`None`: the fill already had
    /// an execution, nothing was booked twice).
    Booked(Execution, Option<(Written, Usdc)>),
    /// The journal says it must not be executed (already handled, or under a reorg).
    Skipped,
    /// Halted: journaled, not executed.
    NotSent,
}

store_handler!(RecordPaperCopy -> (PaperCopy, Committed), stamped by |(_, c), at| c.0 = Some(at), |s, m| {
    let copy = match s.record_paper_copy(&m.intent, &m.exec, &m.wallet, m.fresh, m.may_send)? {
        PaperBooking::Booked(booked) => PaperCopy::Booked(m.exec, booked),
        PaperBooking::Skipped => PaperCopy::Skipped,
        PaperBooking::NotSent => PaperCopy::NotSent,
    };
    Ok((copy, Committed::default()))
});

/// Mark a fill as not copied.
#[derive(Debug)]
pub struct RecordRejection {
    /// Fill row.
    pub row: i64,
    /// Stable reason code.
    pub code: &'static str,
    /// Reason with numbers.
    pub detail: String,
}
store_handler!(RecordRejection -> (), |s, m| s.record_rejection(m.row, m.code, &m.detail));

/// Mark a fill as not copied by a refusal made before its copy was approved (the registry's, the
/// copier's, the risk supervisor's limits): it never touches a fill whose intent is journaled, the
/// intent of an earlier copy of the same fill still being placed (see
/// [`Store::record_refusal`](crate::store::Store::record_refusal)).
#[derive(Debug)]
pub struct RecordRefusal {
    /// Fill row.
    pub row: i64,
    /// Stable reason code.
    pub code: &'static str,
    /// Reason with numbers.
    pub detail: String,
}
store_handler!(RecordRefusal -> bool, |s, m| s.record_refusal(m.row, m.code, &m.detail));

/// Keep a fill pending with reason `unknown`: its order's fate is looked up at the next start.
#[derive(Debug)]
pub struct MarkUnresolved {
    /// Fill row.
    pub row: i64,
    /// What is known.
    pub detail: String,
}
store_handler!(MarkUnresolved -> (), |s, m| s.mark_unresolved(m.row, &m.detail));

/// A fill's execution and its realized P&L.
#[derive(Debug)]
pub struct GetExecution(pub i64);
store_handler!(GetExecution -> Option<(Execution, Usdc)>, |s, m| s.execution_for(m.0));

/// Take an unsettled execution out of the books, or put one that settled late back.
#[derive(Debug)]
pub struct RecordSettlementChange {
    /// The fill.
    pub fill_row: i64,
    /// Which change.
    pub step: crate::store::SettlementStep,
}
store_handler!(RecordSettlementChange -> Option<crate::store::SettlementChange>, |s, m| s.record_settlement_step(m.fill_row, m.step));

/// The latest marks of tokens we hold.
#[derive(Debug)]
pub struct SetMarks(pub std::collections::HashMap<TokenId, crate::domain::Price>);
store_handler!(SetMarks -> (), |s, m| s.set_marks(&m.0));

/// What a token is, with when it was fetched.
#[derive(Debug)]
pub struct GetMarket(pub TokenId);
store_handler!(GetMarket -> Option<(crate::market::MarketInfo, i64)>, |s, m| s.market(&m.0));

/// Cache what a token is.
#[derive(Debug)]
pub struct PutMarket(pub crate::market::MarketInfo);
store_handler!(PutMarket -> (), |s, m| s.put_market(&m.0));

/// Cache what a token is, leaving a payout the journal holds as it is ([`Store::put_market_facts`]).
///
/// [`Store::put_market_facts`]: crate::store::Store::put_market_facts
#[derive(Debug)]
pub struct PutMarketFacts(pub crate::market::MarketInfo);
store_handler!(PutMarketFacts -> (), |s, m| s.put_market_facts(&m.0));

/// A resolved market closes our position in a token, as the journal holds it.
#[derive(Debug)]
pub struct RecordSettlement {
    /// The token.
    pub token: TokenId,
    /// What a share pays.
    pub payout: crate::domain::Price,
}
store_handler!(RecordSettlement -> Option<crate::store::Resolution>, |s, m| s.record_settlement(m.token, m.payout));
