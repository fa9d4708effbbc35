//! The market metadata cache in the journal.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreResult, dec_u256, hex_b256, now_ms};
use crate::clob::TickSize;
use crate::domain::{Price, Shares, TokenId};
use crate::market::MarketInfo;

impl Store {
    /// Stores (or refreshes) what a token is. What does not change once known is kept when a
    /// later answer lacks it: a market on the neg-risk exchange stays there (a Gamma record without
    /// `negRisk` would have its orders signed for the other exchange and its positions redeemed
    /// through the wrong adapter), and so do its condition id, tick, end and slug. The payout is
    /// always the answer's: it is cleared on purpose until the chain confirms it.
    ///
    /// # Errors
    /// On a database error.
    pub fn put_market(&self, m: &MarketInfo) -> StoreResult<()> {
        self.upsert_market(m, "payout = excluded.payout")
    }

    /// Stores what a token is, as [`Store::put_market`], without its payout: a row's payout is left
    /// as it was (a new row has none). For a reader that takes Gamma's word unchecked (`vet`):
    /// the daemon settles positions at the payout it finds here, which only its own check against
    /// the chain may write.
    ///
    /// # Errors
    /// On a database error.
    pub fn put_market_facts(&self, m: &MarketInfo) -> StoreResult<()> {
        self.upsert_market(&MarketInfo { payout: None, ..m.clone() }, "payout = payout")
    }

    /// The upsert of both, `payout_rule` saying what a known row's payout becomes.
    fn upsert_market(&self, m: &MarketInfo, payout_rule: &str) -> StoreResult<()> {
        self.conn.execute(
            &format!(
                "INSERT INTO markets (token_id, condition_id, question, outcome, neg_risk, tick, min_size, closed, \
                 end_ms, payout, fetched_at_ms, slug) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                 ON CONFLICT (token_id) DO UPDATE SET condition_id = COALESCE(excluded.condition_id, condition_id), \
                 question = excluded.question, outcome = excluded.outcome, neg_risk = (excluded.neg_risk OR neg_risk), \
                 tick = COALESCE(excluded.tick, tick), min_size = excluded.min_size, closed = excluded.closed, \
                 end_ms = COALESCE(excluded.end_ms, end_ms), {payout_rule}, \
                 fetched_at_ms = excluded.fetched_at_ms, slug = COALESCE(excluded.slug, slug)"
            ),
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

    /// Names ("question — outcome") of `tokens` (as the journal writes them) that the journal knows,
    /// for a page or a reply: only those shown are read, on the journal's one writer, never the
    /// whole table, which grows with every market ever traded.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn market_names(&self, tokens: &[String]) -> StoreResult<std::collections::HashMap<TokenId, String>> {
        let mut st = self.conn.prepare_cached("SELECT question, outcome FROM markets WHERE token_id = ?1")?;
        let mut out = std::collections::HashMap::new();
        for t in tokens {
            let name = st.query_row([t], |r| Ok(format!("{} — {}", r.get::<_, String>(0)?, r.get::<_, String>(1)?)));
            if let Some(name) = name.optional()? {
                out.insert(dec_u256(t, "markets.token_id")?, name);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{B256, U256};

    fn info(neg_risk: bool, condition: Option<B256>, tick: Option<TickSize>, payout: Option<Price>) -> MarketInfo {
        MarketInfo {
            token_id: U256::from(7),
            condition_id: condition,
            question: "Q?".into(),
            outcome: "Yes".into(),
            neg_risk,
            tick,
            min_size: Shares(5_000_000),
            closed: false,
            end_ms: None,
            payout,
            slug: None,
        }
    }

    /// Names are read for the tokens asked only; an unknown one is left out.
    #[test]
    fn names_are_read_for_the_tokens_shown() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("j.db")).unwrap();
        s.put_market(&info(false, None, None, None)).unwrap();
        s.put_market(&MarketInfo { token_id: U256::from(8), question: "R?".into(), ..info(false, None, None, None) })
            .unwrap();
        let names = s.market_names(&["7".into(), "9".into()]).unwrap();
        assert_eq!(names.into_iter().collect::<Vec<_>>(), [(U256::from(7), "Q? — Yes".to_owned())]);
        assert!(s.market_names(&[]).unwrap().is_empty());
    }

    /// A later answer that lacks what was known keeps it; the payout is always the answer's.
    #[test]
    fn a_refresh_keeps_what_the_answer_lacks_and_takes_the_payout_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("j.db")).unwrap();
        let c = Some(B256::repeat_byte(5));
        let tick = TickSize::from_micros(10_000);
        // (stored, then put, then read)
        let cases = [
            (info(true, c, tick, Some(Price(1_000_000))), info(false, None, None, None), info(true, c, tick, None)),
            (info(false, None, None, None), info(true, c, tick, Some(Price(0))), info(true, c, tick, Some(Price(0)))),
            (info(false, c, tick, None), info(false, c, tick, None), info(false, c, tick, None)),
        ];
        for (first, then, want) in cases {
            s.conn.execute("DELETE FROM markets", []).unwrap();
            s.put_market(&first).unwrap();
            s.put_market(&then).unwrap();
            assert_eq!(s.market(&U256::from(7)).unwrap().unwrap().0, want, "{first:?} then {then:?}");
        }
    }

    /// `vet`'s facts never write a result: Gamma's payout, unchecked on chain, stays out of the
    /// journal the daemon settles from, and a payout the daemon checked stays in.
    #[test]
    fn facts_leave_the_payout_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("j.db")).unwrap();
        let c = Some(B256::repeat_byte(5));
        let paid = Some(Price(1_000_000));
        // (stored first, if any; then the facts put; the payout read)
        for (first, facts, want) in [
            (None, info(false, c, None, paid), None),
            (Some(info(false, c, None, None)), info(false, c, None, paid), None),
            (Some(info(false, c, None, paid)), info(false, c, None, Some(Price(0))), paid),
            (Some(info(false, c, None, paid)), info(false, c, None, None), paid),
        ] {
            s.conn.execute("DELETE FROM markets", []).unwrap();
            if let Some(f) = &first {
                s.put_market(f).unwrap();
            }
            s.put_market_facts(&facts).unwrap();
            let (got, _) = s.market(&U256::from(7)).unwrap().unwrap();
            assert_eq!(got.payout, want, "{first:?} then {facts:?}");
            assert_eq!(got.condition_id, c);
        }
    }
}
