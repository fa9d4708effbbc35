//! The paper executor. Its default fill model (`target_price`) fills at the target's price moved
//! against us by `paper.slippage_bps`, never past the order's limit price, and needs no network.
//! The `order_book` model walks the token's live CLOB book up to the limit instead, partial fills
//! included. Live orders are [`crate::actors::live_executor`]'s.

use actix::{Actor, Context, Handler, Message, ResponseFuture};

use crate::clob::public::PublicClob;
use crate::domain::{
    ExecMode, Execution, OrderIntent, OrderType, Price, Shares, Side, Usdc, mul_price_ceil, mul_price_floor,
};
use crate::risk::book_walk::walk_book;
use crate::risk::sizing::limit_price;

/// Why an execution did not produce a fill.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecError {
    /// Not placed, or refused by the exchange, for good. `code` is stable; `counts_as_error` says
    /// whether it adds to the breaker's error streak (an account or venue problem, not the order's).
    #[error("{code}: {message}")]
    Rejected {
        /// Stable code.
        code: &'static str,
        /// Why, in the exchange's or our words.
        message: String,
        /// Adds to the error streak.
        counts_as_error: bool,
    },
    /// Accepted, but nothing matched (FAK/FOK without liquidity).
    #[error("{code}: {message}")]
    NoFill {
        /// Stable code.
        code: &'static str,
        /// The exchange's words.
        message: String,
    },
    /// Sent, and what became of it is not known yet: the next start looks it up (never re-sends a
    /// new order).
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// The exchange refused our credentials even after deriving them again.
    #[error("credentials refused: {0}")]
    Auth(String),
    /// The journal could not store the signed order, so it was not sent.
    #[error("journal: {0}")]
    Journal(String),
    /// Nothing was (or will be) sent because sending was not allowed (the breaker is tripped); any
    /// order already at the exchange was resolved first.
    #[error("not sent: trading is halted")]
    NotSent,
}

impl ExecError {
    /// A failure of the machinery (mailbox, task), counted as an error.
    #[must_use]
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Rejected { code: "execution_error", message: message.into(), counts_as_error: true }
    }
}

/// Execute one approved intent.
#[derive(Debug, Message)]
#[rtype(result = "Result<Execution, ExecError>")]
pub struct Execute {
    /// The intent, already journaled.
    pub intent: OrderIntent,
    /// Unix ms now.
    pub at_ms: i64,
    /// False while the breaker is tripped: only resolve what an earlier run already sent.
    pub may_send: bool,
    /// The operator's own order (a close): sent whatever the trading state, so a closed trading
    /// gate does not stop it; a halt raised after it started does.
    pub manual: bool,
    /// The trading gate's count of halts when the close started or the copy was approved (`None`:
    /// as the executor finds it).
    pub halts_seen: Option<u64>,
    /// When the fill's journal write committed: the signed order's storing is timed from it.
    pub journaled: Option<std::time::Instant>,
    /// The intent was journaled by this very placement, so no order can exist for it yet (an
    /// order row needs its intent's): the live executor skips looking one up.
    pub fresh_intent: bool,
    /// Handed on by recovery at a start (or a later attempt of such a placement): a pool sighting
    /// of an earlier run is not taken to stand until its block or the pool's follower says so.
    pub at_start: bool,
}

/// Simulated execution.
#[derive(Debug)]
pub struct PaperExecutor {
    /// Ends the daemon if this actor dies of a panic (see [`crate::actors::vital`]).
    _vital: crate::actors::vital::Vital,
    slippage_bps: u32,
    /// Set for the `order_book` fill model: where the books come from.
    books: Option<PublicClob>,
}

impl PaperExecutor {
    /// A paper executor with this much simulated slippage, filling against `books` when given
    /// (the `order_book` fill model).
    #[must_use]
    pub const fn new(slippage_bps: u32, books: Option<PublicClob>) -> Self {
        Self { _vital: crate::actors::vital::Vital::new("the paper executor"), slippage_bps, books }
    }
}

/// The paper fill of `intent` against a book's levels on the other side (a FAK or FOK).
///
/// # Errors
/// [`ExecError::NoFill`] when nothing fills within the limit.
pub fn book_fill(
    intent: &OrderIntent,
    opposite: &[crate::risk::book_walk::Level],
    at_ms: i64,
) -> Result<Execution, ExecError> {
    let w = walk_book(intent.side, intent.shares, intent.limit_price, opposite, intent.order_type == OrderType::Fok);
    if w.shares == Shares::ZERO {
        return Err(ExecError::NoFill {
            code: "no_liquidity",
            message: format!("no {} liquidity within the limit {} in the order book", intent.side, intent.limit_price),
        });
    }
    let price = Price::average(w.shares, w.usdc);
    Ok(Execution {
        fill_row: intent.fill_row,
        side: intent.side,
        token_id: intent.token_id,
        shares: w.shares,
        price,
        usdc: w.usdc,
        mode: ExecMode::Paper,
        at_ms,
    })
}

/// The paper fill of `intent`: target price moved against us, capped at the limit.
#[must_use]
pub fn paper_fill(intent: &OrderIntent, slippage_bps: u32, at_ms: i64) -> Execution {
    let moved = limit_price(intent.side, intent.target_price, slippage_bps);
    let price = match intent.side {
        Side::Buy => Price(moved.0.min(intent.limit_price.0)),
        Side::Sell => Price(moved.0.max(intent.limit_price.0)),
    };
    // We pay rounded up and receive rounded down: paper never flatters us.
    let usdc = match intent.side {
        Side::Buy => Usdc(mul_price_ceil(intent.shares, price)),
        Side::Sell => Usdc(mul_price_floor(intent.shares, price)),
    };
    Execution {
        fill_row: intent.fill_row,
        side: intent.side,
        token_id: intent.token_id,
        shares: intent.shares,
        price,
        usdc,
        mode: ExecMode::Paper,
        at_ms,
    }
}

impl Actor for PaperExecutor {
    type Context = Context<Self>;
}

impl Handler<Execute> for PaperExecutor {
    type Result = ResponseFuture<Result<Execution, ExecError>>;

    /// Fills the intent on paper.
    fn handle(&mut self, m: Execute, _: &mut Context<Self>) -> Self::Result {
        if !m.may_send {
            return Box::pin(async { Err(ExecError::NotSent) });
        }
        let Some(books) = self.books.clone() else {
            let fill = paper_fill(&m.intent, self.slippage_bps, m.at_ms);
            return Box::pin(async move { Ok(fill) });
        };
        Box::pin(async move {
            let (bids, asks) = books.book(m.intent.token_id).await.map_err(|e| ExecError::Rejected {
                code: "clob_unavailable",
                message: format!("order book of token {}: {e}", m.intent.token_id),
                counts_as_error: true,
            })?;
            book_fill(&m.intent, if m.intent.side == Side::Buy { &asks } else { &bids }, m.at_ms)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ONE;

    fn intent(side: Side, target: i64, limit: i64) -> OrderIntent {
        crate::domain::test_intent(side, 10 * ONE, limit, target)
    }

    #[test]
    fn fills_at_target_moved_against_us_capped_at_limit() {
        // (side, target, limit, slippage bps) → price
        for (side, target, limit, bps, want) in [
            (Side::Buy, 500_000, 510_000, 0, 500_000),
            (Side::Buy, 500_000, 510_000, 100, 505_000),
            (Side::Buy, 500_000, 510_000, 1_000, 510_000),
            (Side::Sell, 500_000, 490_000, 100, 495_000),
            (Side::Sell, 500_000, 490_000, 1_000, 490_000),
        ] {
            let e = paper_fill(&intent(side, target, limit), bps, 0);
            assert_eq!(e.price, Price(want), "{side:?} {bps}");
            assert_eq!(e.usdc, Usdc(want * 10));
        }
    }
}
