//! The market metadata cache in the journal.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreResult, dec_u256, hex_b256, now_ms};
use crate::clob::TickSize;
use crate::domain::{Price, Shares, TokenId};
use crate::market::MarketInfo;

impl Store {
    /// Stores (or replaces) what a token is.
    ///
    /// # Errors
    /// On a database error.
    pub fn put_market(&self, m: &MarketInfo) -> StoreResult<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO markets (token_id, condition_id, question, outcome, neg_risk, tick, min_size, closed, \
             end_ms, payout, fetched_at_ms, slug) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                m.token_id.to_string(),
                m.condition_id.map(|c| format!("{c:#x}")),
                m.question,
                m.outcome,
                m.neg_risk,
                m.tick.map(TickSize::micros),
                m.min_size.0,
                m.closed,
                m.end_ms,
                m.payout.map(|p| p.0),
                now_ms(),
                m.slug
            ],
        )?;
        Ok(())
    }

    /// What a token is, with when it was fetched (unix ms).
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn market(&self, token: &TokenId) -> StoreResult<Option<(MarketInfo, i64)>> {
        let row = self
            .conn
            .query_row(
                "SELECT condition_id, question, outcome, neg_risk, tick, min_size, closed, end_ms, payout, fetched_at_ms, \
                 slug FROM markets WHERE token_id = ?1",
                [token.to_string()],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, bool>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, bool>(6)?,
                        r.get::<_, Option<i64>>(7)?,
                        r.get::<_, Option<i64>>(8)?,
                        r.get::<_, i64>(9)?,
                        r.get::<_, Option<String>>(10)?,
                    ))
                },
            )
            .optional()?;
        let Some((cond, question, outcome, neg_risk, tick, min_size, closed, end_ms, payout, at, slug)) = row else {
            return Ok(None);
        };
        let info = MarketInfo {
            token_id: *token,
            condition_id: cond.map(|c| hex_b256(&c, "markets.condition_id")).transpose()?,
            question,
            outcome,
            neg_risk,
            tick: tick.and_then(TickSize::from_micros),
            min_size: Shares(min_size),
            closed,
            end_ms,
            payout: payout.map(Price),
            slug,
        };
        Ok(Some((info, at)))
    }

    /// Names ("question — outcome") of the tokens the journal knows, for reports.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn market_names(&self) -> StoreResult<std::collections::HashMap<TokenId, String>> {
        let mut st = self.conn.prepare("SELECT token_id, question, outcome FROM markets")?;
        let rows =
            st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
        let mut out = std::collections::HashMap::new();
        for r in rows {
            let (t, q, o) = r?;
            out.insert(dec_u256(&t, "markets.token_id")?, format!("{q} — {o}"));
        }
        Ok(out)
    }
}
