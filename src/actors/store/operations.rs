//! Messages for the daemon's other readers and writers: recovery, status and reports, targets and
//! markets paused, operator closes and adjustments, Telegram's held messages, redemptions.

use actix::{Context, Handler, Message, ResponseFuture};
use alloy::primitives::Address;

use super::{Request, StoreActor};
use crate::domain::{Shares, TokenId, Usdc};
use crate::risk::{Book, BreakerState};
use crate::store::{PendingFill, Store, StoreResult};

/// Fills journaled but not finished, asked once at start (sightings handed on but not acted on
/// then wait for their blocks).
#[derive(Debug)]
pub struct Unfinished;
store_handler!(Unfinished -> Vec<PendingFill>, |s, _m| {
    s.defer_unacted_sightings()?;
    s.unfinished()
});

/// Our positions.
#[derive(Debug)]
pub struct LoadBook;
store_handler!(LoadBook -> Book, |s, _m| s.book());

/// Per wallet and token, the shares its copies still hold ([`Store::open_copies`]).
#[derive(Debug)]
pub struct OpenCopies;
store_handler!(OpenCopies -> Vec<(Address, TokenId, Shares)>, |s, _m| s.open_copies());

/// A target's observed position in a token, up to one of its fills (see
/// [`Store::target_position_at`](crate::store::Store::target_position_at)).
#[derive(Debug)]
pub struct TargetPosition {
    /// The target.
    pub wallet: Address,
    /// The token.
    pub token: TokenId,
    /// The fill's journal row.
    pub row: i64,
}
store_handler!(TargetPosition -> Option<Shares>, |s, m| s.target_position_at(&m.wallet, &m.token, m.row));

/// The stored breaker, its reason cleaned of the secrets this process knows.
#[derive(Debug)]
pub struct GetBreaker;
store_handler!(GetBreaker -> BreakerState, |s, _m| s.breaker().map(cleaned));

/// `b` with its reason cleaned of the secrets this process knows: a halt stored by a command that
/// could not read them (an operator's user not allowed the root-only environment file) may carry
/// a pasted one, which the daemon must not log, report or journal again.
#[must_use]
pub fn cleaned(mut b: BreakerState) -> BreakerState {
    b.reason = crate::config::env::redact(&b.reason);
    b
}

/// Store the breaker.
#[derive(Debug)]
pub struct SetBreaker(pub BreakerState);
store_handler!(SetBreaker -> (), |s, m| s.set_breaker_from_daemon(&m.0));

/// Note a halt asked for while already halted (unix ms).
#[derive(Debug)]
pub struct NoteHaltAsked(pub i64);
store_handler!(NoteHaltAsked -> (), |s, m| s.note_halt_asked(m.0));

/// Append to the events log.
#[derive(Debug)]
pub struct AddEvent {
    /// Event kind.
    pub kind: &'static str,
    /// Text.
    pub message: String,
}
store_handler!(AddEvent -> (), |s, m| s.add_event(m.kind, &m.message));

/// When the newest event of a kind was logged (see [`Store::last_event_at`]).
#[derive(Debug)]
pub struct LastEventAt(pub &'static str);
store_handler!(LastEventAt -> Option<i64>, |s, m| s.last_event_at(m.0));

/// The journal's part of a status report.
#[derive(Debug)]
pub struct GetStatus;
store_handler!(GetStatus -> crate::store::StatusReport, |s, _m| s.status());

/// The newest journal rows.
#[derive(Debug)]
pub struct GetTrades(pub u32);
store_handler!(GetTrades -> Vec<crate::store::TradeRow>, |s, m| s.trades(m.0));

/// Realized P&L per day.
#[derive(Debug)]
pub struct GetPnlByDay {
    /// How many days.
    pub days: u32,
    /// Now, unix ms.
    pub now_ms: i64,
}
store_handler!(GetPnlByDay -> Vec<(i64, Usdc)>, |s, m| s.pnl_by_day(m.days, m.now_ms));

/// Everything a report is built from: all executions, last prices, the period's fill counts.
#[derive(Debug)]
pub struct GetReportData {
    /// Which report.
    pub period: crate::report::Period,
    /// Report time, unix ms.
    pub now_ms: i64,
}
/// What [`GetReportData`] returns: the span (its start on the journal's trading day), every
/// execution, the last prices, the span's fill counts, the fees paid in it, and the positions.
pub type ReportData = (
    crate::report::Span,
    Vec<crate::store::ExecRow>,
    std::collections::BTreeMap<TokenId, crate::domain::Price>,
    crate::store::FillCounts,
    Vec<crate::store::FeeRow>,
    Book,
);
store_handler!(GetReportData -> ReportData, |s, m| {
    let span = crate::report::Span::new(m.period, s.trading_day_start(m.now_ms), m.now_ms);
    let (execs, prices, counts) = (s.executions(0)?, s.last_prices()?, s.fill_counts(span.from_ms)?);
    Ok((span, execs, prices, counts, s.fees_paid(span.from_ms)?, s.book()?))
});

/// Persist a target's paused state.
#[derive(Debug)]
pub struct SetPaused {
    /// The target.
    pub wallet: Address,
    /// Paused or not.
    pub paused: bool,
    /// Who.
    pub by: String,
}
store_handler!(SetPaused -> bool, |s, m| s.set_paused(&m.wallet, m.paused, &m.by));

/// Record the targets the daemon now watches.
#[derive(Debug)]
pub struct SetRunningTargets(pub Vec<(Address, String)>);
store_handler!(SetRunningTargets -> (), |s, m| s.set_running_targets(&m.0));

/// Keep Telegram messages undelivered (at a stop, or a snapshot while delivery fails).
#[derive(Debug)]
pub struct HoldTelegram(pub Vec<crate::store::HeldMessage>, pub i64, pub crate::store::Holding);
store_handler!(HoldTelegram -> (), |s, m| s.hold_telegram(&m.0, m.1, m.2));

/// Read the Telegram messages held from before the last stop (and the last row's id).
#[derive(Debug)]
pub struct TakeHeldTelegram;
store_handler!(TakeHeldTelegram -> (Vec<crate::store::HeldMessage>, i64), |s, _m| s.held_telegram());

/// Forget the held Telegram messages up to a row (of one chat, when named): delivered.
#[derive(Debug)]
pub struct ForgetHeldTelegram(pub i64, pub Option<i64>);
store_handler!(ForgetHeldTelegram -> (), |s, m| s.forget_held_telegram(m.0, m.1));

/// The names of the markets the journal knows, by token.
#[derive(Debug)]
pub struct MarketNames(pub Vec<String>);
store_handler!(MarketNames -> std::collections::HashMap<TokenId, String>, |s, m| s.market_names(&m.0));

/// Journal a close order with its intent (before it is sent); answers its fill row, the fill and the intent.
#[derive(Debug)]
pub struct RecordClose {
    /// The SELL.
    pub order: crate::risk::close::CloseOrder,
    /// Separates closes asked within one millisecond.
    pub nonce: u64,
    /// When the operator asked, unix ms.
    pub asked_ms: i64,
}
store_handler!(RecordClose -> (i64, crate::domain::TargetFill, crate::domain::OrderIntent), |s, m| s.record_close(&m.order, m.nonce, m.asked_ms));

/// The tokens of a market as the journal knows them.
#[derive(Debug)]
pub struct TokensOf(pub crate::risk::close::MarketSelector);
store_handler!(TokensOf -> Vec<TokenId>, |s, m| s.tokens_of(&m.0));

/// Pause a market (true) or lift its pause (false); answers whether anything changed.
#[derive(Debug)]
pub struct SetMarketPaused {
    /// The market.
    pub selector: crate::risk::close::MarketSelector,
    /// Its tokens known now.
    pub tokens: Vec<TokenId>,
    /// Pause or lift.
    pub paused: bool,
    /// Who.
    pub by: String,
}
store_handler!(SetMarketPaused -> bool, |s, m| {
    // Tests stretch this write (a slow disk) past the reply's wait.
    crate::fault::hold_here("hold_market_pause_write");
    if m.paused { s.pause_market(&m.selector, &m.tokens, &m.by) } else { s.resume_market(&m.selector) }
});

/// The paused markets.
#[derive(Debug)]
pub struct PausedMarkets;
store_handler!(PausedMarkets -> Vec<crate::store::PausedMarket>, |s, _m| s.paused_markets());

/// The price each token is marked at (last midpoint, else the last price traded).
#[derive(Debug)]
pub struct LastPrices;
store_handler!(LastPrices -> std::collections::BTreeMap<TokenId, crate::domain::Price>, |s, _m| s.last_prices());

/// When the last target fill was seen (unix ms), if any.
#[derive(Debug)]
pub struct TargetActivity;
store_handler!(TargetActivity -> Option<i64>, |s, _m| s.last_target_fill_ms());

/// (wins, trades) among the latest `n` closed trades (SELLs and settlements).
#[derive(Debug)]
pub struct RecentWins(pub u32);
store_handler!(RecentWins -> (u32, u32), |s, m| s.recent_wins(m.0));

/// Set our position in a token to what the chain holds (`reconcile --apply`).
#[derive(Debug)]
pub struct AdjustPosition {
    /// The token.
    pub token: TokenId,
    /// The journal's shares the difference was computed from (`None`: set it whatever it is).
    pub compared: Option<crate::domain::Shares>,
    /// The shares the chain holds.
    pub to: crate::domain::Shares,
    /// An increase comes in at this price.
    pub price: crate::domain::Price,
    /// Why (the reconcile cause).
    pub cause: String,
    /// Who.
    pub by: String,
}
store_handler!(AdjustPosition -> (crate::risk::Position, crate::risk::Written), |s, m| s.adjust_position(
    m.token,
    (m.compared, m.to),
    m.price,
    &m.cause,
    &m.by
));

/// The latest warnings journaled (unix ms, message), newest first: their cool-downs survive a restart.
#[derive(Debug)]
pub struct RecentWarnings;
store_handler!(RecentWarnings -> Vec<(i64, String)>, |s, _m| Ok(s
    .recent_events(&["warning"], 100)?
    .into_iter()
    .map(|(at, _, message)| (at, message))
    .collect()));

/// Our resolved tokens with their payouts.
#[derive(Debug)]
pub struct ResolvedTokens;
store_handler!(ResolvedTokens -> Vec<crate::store::Resolved>, |s, _m| s.resolved_tokens());

/// Markets booked redeemed since a time, unix ms ([`crate::store::Store::redeemed_since`]).
#[derive(Debug)]
pub struct RedeemedSince(pub i64);
store_handler!(RedeemedSince -> Vec<alloy::primitives::B256>, |s, m| s.redeemed_since(m.0));

/// Redemptions being worked on.
#[derive(Debug)]
pub struct OpenRedemptions;
store_handler!(OpenRedemptions -> Vec<crate::store::RedemptionRow>, |s, _m| s.open_redemptions());

/// Journal a new redemption; answers its row id.
#[derive(Debug)]
pub struct PlanRedemption {
    /// The market.
    pub condition_id: alloy::primitives::B256,
    /// Its tokens we hold.
    pub tokens: Vec<TokenId>,
    /// Shares held.
    pub shares: crate::domain::Shares,
    /// What it pays.
    pub expected: crate::domain::Usdc,
    /// Planned (live) or paper.
    pub status: crate::store::RedeemStatus,
}
store_handler!(PlanRedemption -> i64, |s, m| s.plan_redemption(&m.condition_id, &m.tokens, m.shares, m.expected, m.status));

/// Plan a redemption waiting for an attempt again, for what is held now (see
/// [`crate::store::Store::redemption_replanned`]).
#[derive(Debug)]
pub struct ReplanRedemption {
    /// The row.
    pub id: i64,
    /// Shares held now.
    pub shares: crate::domain::Shares,
    /// What they pay.
    pub expected: crate::domain::Usdc,
}
store_handler!(ReplanRedemption -> bool, |s, m| s.redemption_replanned(m.id, m.shares, m.expected));

/// Journal a redemption's signed transaction (before it is sent).
#[derive(Debug)]
pub struct RedemptionSigned {
    /// The row.
    pub id: i64,
    /// Its hash.
    pub tx_hash: alloy::primitives::B256,
    /// Its bytes, hex.
    pub raw_tx: String,
}
store_handler!(RedemptionSigned -> (), |s, m| s.redemption_signed(m.id, &m.tx_hash, &m.raw_tx));

/// A redemption's transaction re-priced (see [`crate::store::Store::redemption_repriced`]).
#[derive(Debug)]
pub struct RedemptionRepriced {
    /// The redemption.
    pub id: i64,
    /// The new transaction's hash.
    pub tx_hash: alloy::primitives::B256,
    /// Its signed bytes.
    pub raw_tx: String,
}
store_handler!(RedemptionRepriced -> (), |s, m| s.redemption_repriced(m.id, &m.tx_hash, &m.raw_tx));

/// Move a redemption on.
#[derive(Debug)]
pub struct RedemptionStatus {
    /// The row.
    pub id: i64,
    /// Its new status.
    pub status: crate::store::RedeemStatus,
    /// Why.
    pub message: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not before (unix ms).
    pub next_try_ms: i64,
}
store_handler!(RedemptionStatus -> (), |s, m| s.redemption_status(m.id, m.status, &m.message, m.attempts, m.next_try_ms));

/// Journal an approval before it is sent (see [`crate::store::Store::approval_signed`]).
#[derive(Debug)]
pub struct ApprovalSigned(pub crate::store::SentApproval);
store_handler!(ApprovalSigned -> (), |s, m| s.approval_signed(&m.0));

/// Forget an approval: in effect, or never to be mined.
#[derive(Debug)]
pub struct ApprovalSettled {
    /// The token contract.
    pub book: Address,
    /// The operator.
    pub operator: Address,
}
store_handler!(ApprovalSettled -> (), |s, m| s.approval_settled(&m.book, &m.operator));

/// The approvals sent and not yet seen in effect.
#[derive(Debug)]
pub struct SentApprovals;
store_handler!(SentApprovals -> Vec<crate::store::SentApproval>, |s, _m| s.sent_approvals());

/// Whether a market has any redemption row.
#[derive(Debug)]
pub struct RedemptionExists(pub alloy::primitives::B256);
store_handler!(RedemptionExists -> bool, |s, m| s.redemption_exists(&m.0));

/// Every target's copy quality since a time (0: all).
#[derive(Debug)]
pub struct GetTargetQuality(pub i64);
store_handler!(GetTargetQuality -> std::collections::BTreeMap<Address, crate::store::TargetQuality>, |s, m| s.target_quality(m.0));
