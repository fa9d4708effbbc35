//! The chain's word on what a SELL of ours got, when it differs from what was booked.
//!
//! A copy booked from the CLOB's lookup is priced at the order's limit (the lookup names no
//! amounts), and a taker that matched at a better price got the difference: a SELL more pUSD than
//! booked. Once our fills on chain of that order add up to the shares booked, their pUSD is what
//! the SELL got (gross of fees, as every amount the journal books: docs/PROTOCOL.md §5, *Fees*), and
//! the execution and its P&L take it. A BUY is not corrected this way: a taker BUY's logged
//! collateral can exceed what it finally paid (docs/PROTOCOL.md §3, *Reading one log from the
//! maker's side*), and its price improvement arrives as more shares, which the growth of an
//! execution already books.

use rusqlite::{Connection, OptionalExtension, params};

use super::journal::exec as run;
use super::settlement::SETTLED_WITHIN;
use super::{StoreError, StoreResult, dec_u256};
use crate::domain::{Price, Shares, Side, TokenId, Usdc};
use crate::risk::book::proceeds_of;

/// A SELL whose proceeds the chain corrected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    /// The copied fill's journal row.
    pub fill_row: i64,
    /// The token.
    pub token_id: TokenId,
    /// pUSD booked before.
    pub booked: Usdc,
    /// pUSD our fills on chain got.
    pub chain: Usdc,
    /// P&L the correction realized: the difference, in the share of the shares the book held
    /// when the SELL was booked (the rest realized nothing).
    pub realized: Usdc,
    /// When the SELL was booked (unix ms): the journal counts the difference on that day.
    pub at_ms: i64,
}

/// Moves the SELL execution of `fill_row` to `usdc` when our fills on chain hold its `shares`
/// (within [`SETTLED_WITHIN`]: the shares booked stay) and other pUSD; it realizes the difference. An execution taken out of the books is
/// left as it is: putting it back brings the chain's amounts.
pub(crate) fn correct_sell_in(
    tx: &Connection,
    fill_row: i64,
    shares: Shares,
    usdc: Usdc,
) -> StoreResult<Option<Correction>> {
    type Row = (String, String, i64, i64, bool, i64, i64);
    let row: Option<Row> = tx
        .query_row(
            "SELECT e.side, e.token_id, e.shares, e.usdc, \
             EXISTS (SELECT 1 FROM orders o WHERE o.fill_id = e.fill_id AND o.settled IN (-1, 2)), e.executed_at_ms, \
             COALESCE(e.held, e.shares) FROM executions e WHERE e.fill_id = ?1",
            [fill_row],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
        )
        .optional()?;
    let Some((side, token, had_shares, had_usdc, out_of_books, at_ms, held)) = row else { return Ok(None) };
    let side = Side::parse(&side).ok_or(StoreError::Corrupt { column: "executions.side", value: side })?;
    let same_shares = (shares.0 - had_shares).abs() <= SETTLED_WITHIN.0;
    if side != Side::Sell || !same_shares || usdc.0 == had_usdc || out_of_books {
        return Ok(None);
    }
    // Only the proceeds of shares the book held count against its cost (see `held`).
    let (held, booked) = (Shares(held), Shares(had_shares));
    let realized = Usdc(proceeds_of(usdc, held, booked).0 - proceeds_of(Usdc(had_usdc), held, booked).0);
    run(
        tx,
        "UPDATE executions SET usdc = ?2, price = ?3, realized_pnl = realized_pnl + ?4 WHERE fill_id = ?1",
        params![fill_row, usdc.0, Price::average(shares, usdc).0, realized.0],
    )?;
    Ok(Some(Correction {
        fill_row,
        token_id: dec_u256(&token, "executions.token_id")?,
        booked: Usdc(had_usdc),
        chain: usdc,
        realized,
        at_ms,
    }))
}
