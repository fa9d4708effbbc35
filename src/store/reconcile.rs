//! What `polycopy reconcile` reads from the journal, and how `--apply` books a correction: as an
//! adjustment row replayed like an execution (so reports and the book agree), never as a trade.

use std::collections::BTreeMap;

use rusqlite::params;

use super::{Store, StoreResult, dec_u256, now_ms};
use crate::domain::{ExecMode, Execution, Price, Shares, Side, TokenId, Usdc, mul_price_ceil};
use crate::risk::Written;
use crate::risk::book::position_after;

/// Per token: matched shares not yet settled on chain (BUY positive), and whether it resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenState {
    /// Booked from matches the chain has not settled yet.
    pub unsettled: Shares,
    /// Its market resolved (a payout is known or a settlement was booked).
    pub resolved: bool,
    /// It resolved against us (pays 0).
    pub worthless: bool,
}

impl Store {
    /// Tokens the journal has a reason to reconcile: open positions and settled ones (whose
    /// winnings may still sit on chain), with their unsettled matches and resolution.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn reconcile_state(&self) -> StoreResult<BTreeMap<TokenId, TokenState>> {
        let mut out: BTreeMap<TokenId, TokenState> = BTreeMap::new();
        let mut st = self.conn.prepare(
            "SELECT token_id FROM positions UNION SELECT token_id FROM settlements \
             UNION SELECT token_id FROM markets WHERE payout IS NOT NULL AND token_id IN (SELECT token_id FROM executions)",
        )?;
        for t in st.query_map([], |r| r.get::<_, String>(0))? {
            out.entry(dec_u256(&t?, "token_id")?).or_default();
        }
        let mut st = self.conn.prepare(
            "SELECT e.token_id, SUM(CASE e.side WHEN 'BUY' THEN e.shares ELSE -e.shares END) FROM orders o \
             JOIN executions e ON e.fill_id = o.fill_id WHERE o.status = 'matched' AND o.settled = 0 GROUP BY e.token_id",
        )?;
        for r in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (t, n) = r?;
            out.entry(dec_u256(&t, "token_id")?).or_default().unsettled = Shares(n);
        }
        let mut st = self.conn.prepare(
            "SELECT token_id, MIN(paid) FROM (SELECT token_id, payout AS paid FROM markets WHERE payout IS NOT NULL \
             UNION ALL SELECT token_id, price FROM settlements) GROUP BY token_id",
        )?;
        for r in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (t, paid) = r?;
            if let Some(s) = out.get_mut(&dec_u256(&t, "token_id")?) {
                s.resolved = true;
                s.worthless = paid == 0;
            }
        }
        Ok(out)
    }

    /// Sets our position in `token` to `to` shares (one transaction): a decrease leaves at the
    /// average cost (no P&L), an increase comes in at `price`. Returns the new position as written
    /// (stamped 0 when nothing changed).
    ///
    /// # Errors
    /// On a database error.
    pub fn adjust_position(
        &mut self,
        token: TokenId,
        to: Shares,
        price: Price,
        cause: &str,
        by: &str,
    ) -> StoreResult<Written> {
        let pos = self.book()?.position(&token);
        let delta = to.0 - pos.shares.0;
        if delta == 0 {
            return Ok(Written { position: pos, seq: 0 });
        }
        let (side, shares) = if delta > 0 { (Side::Buy, Shares(delta)) } else { (Side::Sell, Shares(-delta)) };
        let usdc = match side {
            Side::Buy => Usdc(mul_price_ceil(shares, price)),
            // Out at the average cost, so the correction realizes nothing.
            Side::Sell if shares.0 >= pos.shares.0 => pos.cost,
            Side::Sell => Usdc(
                i64::try_from(i128::from(pos.cost.0) * i128::from(shares.0) / i128::from(pos.shares.0.max(1)))
                    .unwrap_or(pos.cost.0),
            ),
        };
        let avg = Price::average(shares, usdc);
        let exec = Execution {
            fill_row: 0,
            side,
            token_id: token,
            shares,
            price: avg,
            usdc,
            mode: ExecMode::Adjustment,
            at_ms: now_ms(),
        };
        let (after, realized) = position_after(pos, &exec);
        let now = now_ms();
        let tx = self.conn.savepoint()?;
        tx.execute(
            "INSERT INTO adjustments (token_id, side, shares, price, usdc, realized_pnl, at_ms, cause, by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![token.to_string(), side.as_str(), shares.0, avg.0, usdc.0, realized.0, now, cause, by],
        )?;
        let written = super::journal::write_position(&tx, &token.to_string(), after, now)?;
        tx.execute(
            "INSERT INTO events (at_ms, kind, message) VALUES (?1, 'reconcile', ?2)",
            params![
                now,
                format!("position in {token} set from {} to {} shares by {by} ({cause})", pos.shares, after.shares)
            ],
        )?;
        tx.commit()?;
        Ok(written)
    }
}
