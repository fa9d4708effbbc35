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
    /// A match taken out of the books as never settled has settled after all and waits to be put
    /// back: the chain has it, the journal not yet.
    pub settling: bool,
    /// An order of ours for it is not resolved yet (sent with no answer, unknown, resting, or
    /// matched and not booked): the chain may hold its fill, which the daemon books once it knows.
    pub in_flight: bool,
    /// The latest block holding a fill of ours on chain: a node whose head is behind it does not
    /// show that fill yet.
    pub last_fill_block: Option<u64>,
    /// The exchange its trades were seen on (which tells a V3 market).
    pub exchange: Option<alloy::primitives::Address>,
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
            // What a match booked less what our fills on chain have settled of it so far: an order
            // settled in part holds that part on chain already.
            "SELECT e.token_id, SUM(CASE e.side WHEN 'BUY' THEN 1 ELSE -1 END * MAX(e.shares - COALESCE( \
             (SELECT SUM(f.shares) FROM own_fills f WHERE f.order_id = o.order_id), 0), 0)) FROM orders o \
             JOIN executions e ON e.fill_id = o.fill_id WHERE o.status = 'matched' AND o.settled = 0 GROUP BY e.token_id",
        )?;
        for r in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (t, n) = r?;
            out.entry(dec_u256(&t, "token_id")?).or_default().unsettled = Shares(n);
        }
        let mut st = self.conn.prepare(
            "SELECT DISTINCT i.token_id FROM orders o JOIN intents i ON i.fill_id = o.fill_id WHERE o.settled = 2",
        )?;
        for t in st.query_map([], |r| r.get::<_, String>(0))? {
            out.entry(dec_u256(&t?, "token_id")?).or_default().settling = true;
        }
        let mut st = self.conn.prepare(
            "SELECT DISTINCT i.token_id FROM orders o JOIN intents i ON i.fill_id = o.fill_id \
             WHERE o.status IN ('sent', 'unknown', 'live', 'delayed') \
             OR (o.status = 'matched' AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.fill_id = o.fill_id))",
        )?;
        for t in st.query_map([], |r| r.get::<_, String>(0))? {
            out.entry(dec_u256(&t?, "token_id")?).or_default().in_flight = true;
        }
        let mut st = self.conn.prepare(
            "SELECT i.token_id, MAX(f.block_number) FROM own_fills f JOIN orders o ON o.order_id = f.order_id \
             JOIN intents i ON i.fill_id = o.fill_id WHERE f.block_number IS NOT NULL GROUP BY i.token_id",
        )?;
        for r in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (t, block) = r?;
            if let Some(s) = out.get_mut(&dec_u256(&t, "token_id")?) {
                s.last_fill_block = u64::try_from(block).ok();
            }
        }
        let mut st = self.conn.prepare("SELECT token_id, MAX(exchange) FROM fills GROUP BY token_id")?;
        for r in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)))? {
            let (t, exchange) = r?;
            if let (Some(s), Some(e)) = (out.get_mut(&dec_u256(&t, "token_id")?), exchange) {
                s.exchange = Some(super::hex_addr(&e, "fills.exchange")?);
            }
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
    /// average cost (no P&L), an increase comes in at `price`. `compared`: the journal's shares the
    /// difference was computed from; when the position is no longer that (a copy was booked since
    /// reconcile read it), nothing is booked: setting the old figure would undo that copy. Returns
    /// the position before and the new one as written (stamped 0 when nothing changed).
    ///
    /// # Errors
    /// [`super::StoreError::PositionMoved`], or a database error.
    pub fn adjust_position(
        &mut self,
        token: TokenId,
        (compared, to): (Option<Shares>, Shares),
        price: Price,
        cause: &str,
        by: &str,
    ) -> StoreResult<(crate::risk::Position, Written)> {
        let pos = self.book()?.position(&token);
        if let Some(compared) = compared.filter(|c| *c != pos.shares) {
            return Err(super::StoreError::PositionMoved { token: token.to_string(), compared, now: pos.shares });
        }
        let delta = to.0 - pos.shares.0;
        if delta == 0 {
            return Ok((pos, Written { position: pos, seq: 0 }));
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
        // Emptied by the operator (sold elsewhere, then reconciled), as a close empties it: the
        // targets' earlier copies no longer claim shares another target's copies buy later.
        super::book::note_operator_close(&tx, true, side, &token.to_string(), after, now)?;
        tx.execute(
            "INSERT INTO events (at_ms, kind, message) VALUES (?1, 'reconcile', ?2)",
            params![
                now,
                format!("position in {token} set from {} to {} shares by {by} ({cause})", pos.shares, after.shares)
            ],
        )?;
        tx.commit()?;
        Ok((pos, written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ONE;

    #[test]
    fn a_correction_computed_against_a_position_that_moved_since_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let t = TokenId::from(7u8);
        let set = |s: &mut Store, compared: Option<i64>, to: i64| {
            s.adjust_position(t, (compared.map(Shares), Shares(to)), Price(ONE / 2), "test", "test").map(|(_, w)| w)
        };
        assert_eq!(set(&mut s, Some(0), 10 * ONE).unwrap().position.shares, Shares(10 * ONE));
        // Reconcile read 10, then a copy made it 15: setting 12 would sell the copy out of the books.
        assert_eq!(set(&mut s, Some(10 * ONE), 15 * ONE).unwrap().position.shares, Shares(15 * ONE));
        let e = set(&mut s, Some(10 * ONE), 12 * ONE).unwrap_err();
        assert!(matches!(e, crate::store::StoreError::PositionMoved { .. }), "{e}");
        assert!(e.to_string().contains("run reconcile again"), "{e}");
        assert_eq!(s.book().unwrap().position(&t).shares, Shares(15 * ONE), "nothing booked");
        // An older CLI's request (no figure compared) still sets it.
        assert_eq!(set(&mut s, None, 12 * ONE).unwrap().position.shares, Shares(12 * ONE));
    }

    /// Emptied by reconcile (the operator sold elsewhere), a position's earlier copies no longer
    /// claim shares: a target's exit must not sell what another target's copies buy later.
    #[test]
    fn a_position_reconciled_to_zero_resets_the_targets_claims() {
        use crate::domain::{ExecMode, Execution, OrderIntent, Side};
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let f = crate::store::tests::fill_in(1, 1, 5);
        let row = s
            .journal_range(std::slice::from_ref(&f), (5, alloy::primitives::B256::repeat_byte(5)), &[])
            .unwrap()
            .to_copy[0]
            .row;
        assert!(s.record_intent(&OrderIntent::for_fill(&f, row, Shares(10 * ONE), Price(ONE / 2))).unwrap());
        let exec = Execution {
            fill_row: row,
            side: Side::Buy,
            token_id: f.token_id,
            shares: Shares(10 * ONE),
            price: Price(ONE / 2),
            usdc: Usdc(5 * ONE),
            mode: ExecMode::Paper,
            at_ms: 1,
        };
        s.record_execution(&exec, &f.wallet).unwrap();
        assert_eq!(s.copied_shares(&f.wallet, f.token_id).unwrap(), Shares(10 * ONE));
        s.adjust_position(f.token_id, (Some(Shares(10 * ONE)), Shares(0)), Price(ONE / 2), "sold by hand", "cli")
            .unwrap();
        assert_eq!(s.copied_shares(&f.wallet, f.token_id).unwrap(), Shares(0));
    }
}
