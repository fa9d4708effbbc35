//! Redemptions in the journal: one row per attempt to turn a resolved market's winning tokens into
//! pUSD, with the signed transaction stored before it is sent.

use alloy::primitives::B256;
use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreResult, dec_u256, hex_b256, now_ms};
use crate::domain::{Price, Shares, TokenId, Usdc};

/// Where a redemption stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedeemStatus {
    /// Journaled, nothing signed yet.
    Planned,
    /// The signed transaction is journaled; it may or may not have left.
    Signed,
    /// Sent; waiting for its receipt.
    Sent,
    /// Mined and paid.
    Redeemed,
    /// The last attempt reverted (or would have): tried again after a pause, within the budget.
    Reverted,
    /// The budget is spent: reported, left to the operator.
    Failed,
    /// Its transaction never made it (another took its nonce): the next round plans it again.
    Dropped,
    /// Paper mode: the redemption is simulated.
    Paper,
}

impl RedeemStatus {
    /// As journaled.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Signed => "signed",
            Self::Sent => "sent",
            Self::Redeemed => "redeemed",
            Self::Reverted => "reverted",
            Self::Failed => "failed",
            Self::Dropped => "dropped",
            Self::Paper => "paper",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Self::Planned,
            Self::Signed,
            Self::Sent,
            Self::Redeemed,
            Self::Reverted,
            Self::Failed,
            Self::Dropped,
            Self::Paper,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// One redemption row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedemptionRow {
    /// Row id.
    pub id: i64,
    /// The market.
    pub condition_id: B256,
    /// Its tokens we held.
    pub tokens: Vec<TokenId>,
    /// Shares held on chain when planned.
    pub shares: Shares,
    /// What it should pay.
    pub expected: Usdc,
    /// Where it stands.
    pub status: RedeemStatus,
    /// Its transaction, once signed.
    pub tx_hash: Option<B256>,
    /// The signed transaction (hex), once signed.
    pub raw_tx: Option<String>,
    /// Earlier transactions of this attempt, re-priced since (same nonce): one of them may be the
    /// one mined.
    pub replaced: Vec<B256>,
    /// Attempts that reverted.
    pub attempts: u32,
    /// Not before this (unix ms).
    pub next_try_ms: i64,
}

/// A resolved token of ours with what a share pays, as the journal knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// The token.
    pub token_id: TokenId,
    /// Its market.
    pub condition_id: B256,
    /// Traded on the neg-risk exchange.
    pub neg_risk: bool,
    /// What one share pays.
    pub payout: Price,
    /// Shares the journal settled at the resolution.
    pub settled: Shares,
    /// The exchange it was traded on (its generation: V3 tokens live in the PositionManager).
    pub exchange: Option<alloy::primitives::Address>,
}

const COLS: &str =
    "id, condition_id, tokens, shares, expected, status, tx_hash, raw_tx, attempts, next_try_ms, replaced";

fn row(r: &Row<'_>) -> rusqlite::Result<(i64, [String; 4], [i64; 4], Option<String>, Option<String>)> {
    Ok((
        r.get(0)?,
        [r.get(1)?, r.get(2)?, r.get(5)?, r.get(10)?],
        [r.get(3)?, r.get(4)?, r.get(8)?, r.get(9)?],
        r.get(6)?,
        r.get(7)?,
    ))
}

fn parse(raw: (i64, [String; 4], [i64; 4], Option<String>, Option<String>)) -> StoreResult<RedemptionRow> {
    let (id, s, n, tx, rawtx) = raw;
    let corrupt = |c: &'static str, v: &str| super::StoreError::Corrupt { column: c, value: v.to_owned() };
    Ok(RedemptionRow {
        id,
        condition_id: hex_b256(&s[0], "redemptions.condition_id")?,
        tokens: s[1]
            .split(',')
            .filter(|t| !t.is_empty())
            .map(|t| dec_u256(t, "redemptions.tokens"))
            .collect::<StoreResult<_>>()?,
        shares: Shares(n[0]),
        expected: Usdc(n[1]),
        status: RedeemStatus::parse(&s[2]).ok_or_else(|| corrupt("redemptions.status", &s[2]))?,
        tx_hash: tx.map(|h| hex_b256(&h, "redemptions.tx_hash")).transpose()?,
        raw_tx: rawtx,
        replaced: s[3]
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| hex_b256(h, "redemptions.replaced"))
            .collect::<StoreResult<_>>()?,
        attempts: u32::try_from(n[2]).unwrap_or(0),
        next_try_ms: n[3],
    })
}

impl Store {
    /// Our resolved tokens: settled positions and tokens whose payout the journal knows.
    ///
    /// A token is neg-risk when Gamma said so, or when an order of ours for it was signed for the
    /// neg-risk exchange (the CLOB's own word, asked when the order was built): a Gamma record
    /// without the field reads as standard, and the standard adapter would redeem nothing of a
    /// neg-risk market's tokens.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn resolved_tokens(&self) -> StoreResult<Vec<Resolved>> {
        let mut st = self.conn.prepare(
            "SELECT m.token_id, m.condition_id, m.neg_risk OR EXISTS (SELECT 1 FROM orders o \
             JOIN intents i ON i.fill_id = o.fill_id WHERE i.token_id = m.token_id \
             AND json_extract(o.signed, '$.neg_risk') = 1), m.payout, \
             (SELECT COALESCE(SUM(shares), 0) FROM settlements s WHERE s.token_id = m.token_id), \
             (SELECT exchange FROM fills f WHERE f.token_id = m.token_id LIMIT 1) \
             FROM markets m WHERE m.payout IS NOT NULL AND m.condition_id IS NOT NULL \
             AND m.token_id IN (SELECT token_id FROM settlements UNION SELECT token_id FROM executions)",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (t, c, neg_risk, payout, settled, exchange) = r?;
            out.push(Resolved {
                token_id: dec_u256(&t, "markets.token_id")?,
                condition_id: hex_b256(&c, "markets.condition_id")?,
                neg_risk,
                payout: Price(payout),
                settled: Shares(settled),
                exchange: exchange.map(|e| super::hex_addr(&e, "fills.exchange")).transpose()?,
            });
        }
        Ok(out)
    }

    /// The redemption of `condition` still being worked on (not redeemed, failed or dropped).
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn open_redemption(&self, condition: &B256) -> StoreResult<Option<RedemptionRow>> {
        let raw = self
            .conn
            .query_row(
                &format!(
                    "SELECT {COLS} FROM redemptions WHERE condition_id = ?1 \
                     AND status IN ('planned', 'signed', 'sent', 'reverted') ORDER BY id DESC LIMIT 1"
                ),
                [condition.to_string()],
                row,
            )
            .optional()?;
        raw.map(parse).transpose()
    }

    /// Every redemption being worked on, and the ones left to the operator (`failed`: not planned
    /// again, so a cause that cannot heal does not repeat its errors).
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn open_redemptions(&self) -> StoreResult<Vec<RedemptionRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {COLS} FROM redemptions WHERE status IN ('planned', 'signed', 'sent', 'reverted', 'failed') ORDER BY id"
        ))?;
        let rows: Vec<_> = st.query_map([], row)?.collect::<rusqlite::Result<_>>()?;
        rows.into_iter().map(parse).collect()
    }

    /// Markets whose redemption was booked redeemed since `since_ms`.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn redeemed_since(&self, since_ms: i64) -> StoreResult<Vec<B256>> {
        let mut st = self.conn.prepare(
            "SELECT DISTINCT condition_id FROM redemptions WHERE status = 'redeemed' AND updated_at_ms >= ?1",
        )?;
        let rows: Vec<String> = st.query_map([since_ms], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        rows.iter().map(|c| hex_b256(c, "redemptions.condition_id")).collect()
    }

    /// Whether `condition` has any redemption row.
    ///
    /// # Errors
    /// On a database error.
    pub fn redemption_exists(&self, condition: &B256) -> StoreResult<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM redemptions WHERE condition_id = ?1)",
            [condition.to_string()],
            |r| r.get(0),
        )?)
    }

    /// Journals a new redemption.
    ///
    /// # Errors
    /// On a database error.
    pub fn plan_redemption(
        &self,
        condition: &B256,
        tokens: &[TokenId],
        shares: Shares,
        expected: Usdc,
        status: RedeemStatus,
    ) -> StoreResult<i64> {
        let now = now_ms();
        let list: Vec<String> = tokens.iter().map(ToString::to_string).collect();
        self.conn.execute(
            "INSERT INTO redemptions (condition_id, tokens, shares, expected, status, created_at_ms, updated_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![condition.to_string(), list.join(","), shares.0, expected.0, status.as_str(), now],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Plans redemption `id` again for what is held now (`shares`, paying `expected`), while it
    /// waits for an attempt (planned, or reverted and due again): a retry is judged against what it
    /// can pay now, not against a plan an earlier balance made. Returns whether it changed.
    ///
    /// # Errors
    /// On a database error.
    pub fn redemption_replanned(&self, id: i64, shares: Shares, expected: Usdc) -> StoreResult<bool> {
        let changed = self.conn.execute(
            "UPDATE redemptions SET shares = ?2, expected = ?3, updated_at_ms = ?4 \
             WHERE id = ?1 AND status IN ('planned', 'reverted') AND (shares != ?2 OR expected != ?3)",
            params![id, shares.0, expected.0, now_ms()],
        )?;
        Ok(changed > 0)
    }

    /// Stores the signed transaction before it is sent.
    ///
    /// # Errors
    /// On a database error.
    pub fn redemption_signed(&self, id: i64, tx_hash: &B256, raw_tx: &str) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE redemptions SET status = 'signed', tx_hash = ?2, raw_tx = ?3, replaced = '', updated_at_ms = ?4 \
             WHERE id = ?1",
            params![id, tx_hash.to_string(), raw_tx, now_ms()],
        )?;
        Ok(())
    }

    /// Journals a re-priced transaction of redemption `id` (same nonce, higher fees) before it is
    /// sent: it becomes the one sent again, and the one it replaces is kept, as either may be mined.
    ///
    /// # Errors
    /// On a database error.
    pub fn redemption_repriced(&self, id: i64, tx_hash: &B256, raw_tx: &str) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE redemptions SET status = 'signed', \
             replaced = CASE WHEN replaced = '' THEN tx_hash ELSE replaced || ',' || tx_hash END, \
             tx_hash = ?2, raw_tx = ?3, updated_at_ms = ?4 WHERE id = ?1 AND tx_hash IS NOT NULL",
            params![id, tx_hash.to_string(), raw_tx, now_ms()],
        )?;
        Ok(())
    }

    /// Moves a redemption on.
    ///
    /// # Errors
    /// On a database error.
    pub fn redemption_status(
        &self,
        id: i64,
        status: RedeemStatus,
        message: &str,
        attempts: u32,
        next_try_ms: i64,
    ) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE redemptions SET status = ?2, message = ?3, attempts = ?4, next_try_ms = ?5, updated_at_ms = ?6 \
             WHERE id = ?1",
            params![id, status.as_str(), message, attempts, next_try_ms, now_ms()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redemption_waiting_for_an_attempt_is_planned_again_for_what_is_held_now() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("j.db")).unwrap();
        let c = B256::repeat_byte(3);
        let id = s.plan_redemption(&c, &[], Shares(10), Usdc(10), RedeemStatus::Planned).unwrap();
        s.redemption_status(id, RedeemStatus::Reverted, "reverted", 1, 0).unwrap();
        assert!(s.redemption_replanned(id, Shares(6), Usdc(6)).unwrap());
        assert!(!s.redemption_replanned(id, Shares(6), Usdc(6)).unwrap(), "unchanged");
        let row = s.open_redemption(&c).unwrap().unwrap();
        assert_eq!((row.shares, row.expected), (Shares(6), Usdc(6)));
        // Signed, its transaction is what it is: never planned again under it.
        s.redemption_signed(id, &B256::repeat_byte(4), "0x00").unwrap();
        assert!(!s.redemption_replanned(id, Shares(5), Usdc(5)).unwrap());
    }

    #[test]
    fn markets_redeemed_lately_are_listed_until_they_are_old() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("j.db")).unwrap();
        let (c1, c2) = (B256::repeat_byte(1), B256::repeat_byte(2));
        let planned = |c| s.plan_redemption(&c, &[], Shares(1), Usdc(1), RedeemStatus::Planned).unwrap();
        let (r1, r2) = (planned(c1), planned(c2));
        s.redemption_status(r1, RedeemStatus::Redeemed, "mined", 1, 0).unwrap();
        s.redemption_status(r2, RedeemStatus::Reverted, "reverted", 1, 0).unwrap();
        let before = now_ms() - 1_000;
        assert_eq!(s.redeemed_since(before).unwrap(), vec![c1], "only the one redeemed");
        assert!(s.redeemed_since(now_ms() + 1_000).unwrap().is_empty(), "and only lately");
    }

    #[test]
    fn a_token_our_orders_traded_on_the_neg_risk_exchange_is_neg_risk_whatever_gamma_says() {
        use crate::domain::{ExecMode, Execution, OrderIntent, Side, Usdc};
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let h = B256::repeat_byte;
        // (our order signed for the neg-risk exchange, Gamma's flag, read as neg-risk)
        for (n, (signed_neg, gamma_neg, want)) in
            [(false, false, false), (true, false, true), (false, true, true)].into_iter().enumerate()
        {
            let n = u8::try_from(n).unwrap() + 1;
            let f =
                crate::domain::TargetFill { token_id: TokenId::from(100 + n), ..crate::store::tests::fill_in(n, n, 5) };
            let row = s.journal_range(std::slice::from_ref(&f), (5, h(5)), &[(5, h(5))]).unwrap().to_copy[0].row;
            let intent = OrderIntent::for_fill(&f, row, Shares(10_000_000), Price(500_000));
            assert!(s.record_intent(&intent).unwrap());
            let order = crate::clob::order::StoredOrder {
                order_id: h(n),
                neg_risk: signed_neg,
                ..crate::clob::order::StoredOrder::for_test(Side::Buy, 10_000_000, 5_000_000)
            };
            s.record_order(row, &order).unwrap();
            let e = Execution {
                fill_row: row,
                side: Side::Buy,
                token_id: f.token_id,
                shares: Shares(10_000_000),
                price: Price(500_000),
                usdc: Usdc(5_000_000),
                mode: ExecMode::Live,
                at_ms: 1,
            };
            s.record_execution(&e, &f.wallet).unwrap();
            s.put_market(&crate::market::MarketInfo {
                token_id: f.token_id,
                condition_id: Some(h(50 + n)),
                question: String::new(),
                outcome: String::new(),
                neg_risk: gamma_neg,
                tick: None,
                min_size: Shares(0),
                closed: true,
                end_ms: None,
                payout: Some(Price(1_000_000)),
                slug: None,
            })
            .unwrap();
            let got = s.resolved_tokens().unwrap().into_iter().find(|r| r.token_id == f.token_id).unwrap();
            assert_eq!(got.neg_risk, want, "signed neg-risk {signed_neg}, Gamma {gamma_neg}");
        }
    }

    #[test]
    fn a_repriced_transaction_keeps_the_ones_it_replaced_until_a_new_attempt_is_signed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("j.db")).unwrap();
        let market = B256::repeat_byte(7);
        let id =
            s.plan_redemption(&market, &[TokenId::from(1u8)], Shares(10), Usdc(10), RedeemStatus::Planned).unwrap();
        let (h1, h2, h3, h4) = (B256::repeat_byte(1), B256::repeat_byte(2), B256::repeat_byte(3), B256::repeat_byte(4));
        // (what happens, the transaction then followed, the ones it replaced)
        let steps: [(&dyn Fn(), B256, Vec<B256>); 4] = [
            (&|| s.redemption_signed(id, &h1, "0x01").unwrap(), h1, vec![]),
            (&|| s.redemption_repriced(id, &h2, "0x02").unwrap(), h2, vec![h1]),
            (&|| s.redemption_repriced(id, &h3, "0x03").unwrap(), h3, vec![h1, h2]),
            // The attempt reverted: a retry is a new transaction, with a nonce of its own.
            (&|| s.redemption_signed(id, &h4, "0x04").unwrap(), h4, vec![]),
        ];
        for (step, sent, replaced) in steps {
            step();
            let row = s.open_redemption(&market).unwrap().unwrap();
            assert_eq!((row.tx_hash, row.replaced, row.status), (Some(sent), replaced, RedeemStatus::Signed));
        }
    }
}
