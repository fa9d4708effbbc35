//! What the operator asks for by hand, journaled: closes (a SELL of our own position, recorded like a
//! copy so it is exactly-once and recovered after a crash) and paused markets.

use alloy::primitives::{B256, keccak256};
use rusqlite::{OptionalExtension, params};

use super::journal::IN_BOOKS;
use super::{Store, StoreResult, dec_u256, now_ms};
use crate::domain::{
    ExchangeVersion, FillId, OPERATOR, OrderIntent, OrderType, Price, Role, Shares, Side, TargetFill, TokenId, Usdc,
    addr_lower,
};
use crate::risk::close::{CloseOrder, MarketSelector};

/// A market the operator paused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PausedMarket {
    /// As the operator named it.
    pub selector: MarketSelector,
    /// Its tokens the journal knew when it was paused (a token pause is its own token).
    pub tokens: Vec<TokenId>,
    /// When, unix ms.
    pub since_ms: i64,
    /// Who.
    pub by: String,
}

/// How one journaled order ended, as far as the journal knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillOutcome {
    /// Where the fill stands.
    pub status: super::FillStatus,
    /// Why, when refused.
    pub detail: Option<String>,
    /// The shares the order asked for.
    pub ordered: Option<Shares>,
    /// What it got: shares and average price.
    pub executed: Option<(Shares, Price)>,
}

/// The operator's close order as a fill of its own (wallet [`OPERATOR`], never on chain), with a
/// transaction hash no chain fill can have: seeded by the time, the close's nonce and the token.
fn close_fill(o: &CloseOrder, nonce: u64, now: i64) -> TargetFill {
    let block_ts = u64::try_from(now / 1000).unwrap_or(0);
    let mut seed = b"polycopy-close".to_vec();
    seed.extend_from_slice(&now.to_be_bytes());
    seed.extend_from_slice(&nonce.to_be_bytes());
    seed.extend_from_slice(&o.token_id.to_be_bytes::<32>());
    let usdc = crate::domain::mul_price_floor(o.shares, o.reference);
    TargetFill {
        id: FillId { tx_hash: keccak256(&seed), order_hash: keccak256(o.token_id.to_be_bytes::<32>()), occurrence: 0 },
        wallet: OPERATOR,
        role: Role::Taker,
        side: Side::Sell,
        token_id: o.token_id,
        shares: o.shares,
        usdc: Usdc(usdc),
        price: o.reference,
        fee: 0,
        exchange: OPERATOR,
        version: ExchangeVersion::V2,
        block_number: 0,
        block_hash: B256::ZERO,
        log_index: 0,
        block_ts,
    }
}

impl Store {
    /// Journals a close order and its intent in one transaction, before anything is sent: the row
    /// is recovered after a crash like any copy (looked up, never sent twice). It is dated when the
    /// operator asked (`asked_ms`), not when it is written: a halt raised while it waited for the
    /// journal is later than the close, and stops it after a restart too.
    ///
    /// # Errors
    /// On a database error (nothing is written).
    pub fn record_close(
        &mut self,
        o: &CloseOrder,
        nonce: u64,
        asked_ms: i64,
    ) -> StoreResult<(i64, TargetFill, OrderIntent)> {
        let now = asked_ms;
        let block_ts = u64::try_from(now / 1000).unwrap_or(0);
        let fill = close_fill(o, nonce, now);
        let usdc = fill.usdc.0;
        let tx = self.conn.savepoint()?;
        tx.execute(
            "INSERT INTO fills (tx_hash, order_hash, occurrence, log_index, block_number, block_hash, block_ts, \
             exchange, version, wallet, role, side, token_id, shares, usdc, price, fee, seen_at_ms) \
             VALUES (?1, ?2, 0, 0, 0, ?3, ?4, ?5, 'V2', ?5, 'taker', 'SELL', ?6, ?7, ?8, ?9, 0, ?10)",
            params![
                fill.id.tx_hash.to_string(),
                fill.id.order_hash.to_string(),
                B256::ZERO.to_string(),
                now / 1000,
                addr_lower(&OPERATOR),
                o.token_id.to_string(),
                o.shares.0,
                usdc,
                o.reference.0,
                now
            ],
        )?;
        let row = tx.last_insert_rowid();
        let intent = OrderIntent {
            fill_id: fill.id,
            fill_row: row,
            wallet: OPERATOR,
            token_id: o.token_id,
            side: Side::Sell,
            shares: o.shares,
            limit_price: o.limit,
            target_price: o.reference,
            order_type: OrderType::Fak,
            block_ts,
        };
        tx.execute(
            "INSERT INTO intents (fill_id, token_id, side, shares, limit_price, target_price, order_type, created_at_ms) \
             VALUES (?1, ?2, 'SELL', ?3, ?4, ?5, 'FAK', ?6)",
            params![row, o.token_id.to_string(), o.shares.0, o.limit.0, o.reference.0, now],
        )?;
        tx.commit()?;
        Ok((row, fill, intent))
    }

    /// The tokens of a market as the journal knows them (a token is itself).
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn tokens_of(&self, sel: &MarketSelector) -> StoreResult<Vec<TokenId>> {
        let (sql, arg) = match sel {
            MarketSelector::Token(t) => return Ok(vec![*t]),
            MarketSelector::Condition(c) => {
                ("SELECT token_id FROM markets WHERE lower(condition_id) = ?1 ORDER BY token_id", format!("{c:#x}"))
            }
            MarketSelector::Slug(s) => {
                ("SELECT token_id FROM markets WHERE lower(slug) = ?1 ORDER BY token_id", s.clone())
            }
        };
        let mut st = self.conn.prepare(sql)?;
        let rows = st.query_map([arg], |r| r.get::<_, String>(0))?;
        rows.map(|t| dec_u256(&t?, "markets.token_id")).collect()
    }

    /// Pauses a market (`tokens`: its tokens known now). Returns false when it was already paused.
    ///
    /// # Errors
    /// On a database error.
    pub fn pause_market(&self, sel: &MarketSelector, tokens: &[TokenId], by: &str) -> StoreResult<bool> {
        let list: Vec<String> = tokens.iter().map(ToString::to_string).collect();
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO paused_markets (key, tokens, since_ms, by) VALUES (?1, ?2, ?3, ?4)",
            params![sel.key(), list.join(","), now_ms(), by],
        )?;
        Ok(n == 1)
    }

    /// Lifts a market's pause. Returns false when it was not paused.
    ///
    /// # Errors
    /// On a database error.
    pub fn resume_market(&self, sel: &MarketSelector) -> StoreResult<bool> {
        Ok(self.conn.execute("DELETE FROM paused_markets WHERE key = ?1", [sel.key()])? == 1)
    }

    /// The paused markets, oldest first.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn paused_markets(&self) -> StoreResult<Vec<PausedMarket>> {
        let mut st = self.conn.prepare("SELECT key, tokens, since_ms, by FROM paused_markets ORDER BY since_ms")?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, String>(3)?))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (key, tokens, since_ms, by) = r?;
            let selector = MarketSelector::from_key(&key)
                .ok_or_else(|| super::StoreError::Corrupt { column: "paused_markets.key", value: key.clone() })?;
            let tokens = tokens
                .split(',')
                .filter(|t| !t.is_empty())
                .map(|t| dec_u256(t, "paused_markets.tokens"))
                .collect::<StoreResult<Vec<_>>>()?;
            out.push(PausedMarket { selector, tokens, since_ms, by });
        }
        Ok(out)
    }

    /// How a fill row ended (`None`: no such row).
    ///
    /// # Errors
    /// On a database error.
    pub fn fill_outcome(&self, row: i64) -> StoreResult<Option<FillOutcome>> {
        Ok(self
            .conn
            .query_row(
                "SELECT f.status, f.detail, i.shares, e.shares, e.price FROM fills f \
                 LEFT JOIN intents i ON i.fill_id = f.id LEFT JOIN executions e ON e.fill_id = f.id WHERE f.id = ?1",
                [row],
                |r| {
                    let exec = match (r.get::<_, Option<i64>>(3)?, r.get::<_, Option<i64>>(4)?) {
                        (Some(s), Some(p)) => Some((Shares(s), Price(p))),
                        _ => None,
                    };
                    Ok(FillOutcome {
                        status: r.get(0)?,
                        detail: r.get(1)?,
                        ordered: r.get::<_, Option<i64>>(2)?.map(Shares),
                        executed: exec,
                    })
                },
            )
            .optional()?)
    }

    /// When the last target fill (not an operator's close) was seen, unix ms.
    ///
    /// # Errors
    /// On a database error.
    pub fn last_target_fill_ms(&self) -> StoreResult<Option<i64>> {
        Ok(self.conn.query_row(
            "SELECT MAX(seen_at_ms) FROM fills WHERE wallet != ?1",
            [addr_lower(&OPERATOR)],
            |r| r.get::<_, Option<i64>>(0),
        )?)
    }

    /// (wins, trades) among the latest `n` closed trades: SELL executions and settlements, a win
    /// being a positive realized P&L.
    ///
    /// # Errors
    /// On a database error.
    pub fn recent_wins(&self, n: u32) -> StoreResult<(u32, u32)> {
        // Not a SELL taken out of the books (matched, never settled): it closed nothing.
        let (wins, total): (i64, i64) = self.conn.query_row(
            &format!(
                "SELECT COALESCE(SUM(pnl > 0), 0), COUNT(*) FROM ( \
                   SELECT realized_pnl AS pnl, at FROM ( \
                     SELECT realized_pnl, executed_at_ms AS at FROM executions e WHERE side = 'SELL' AND {IN_BOOKS} \
                     UNION ALL SELECT realized_pnl, at_ms AS at FROM settlements) \
                   ORDER BY at DESC LIMIT ?1)"
            ),
            [n],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((u32::try_from(wins).unwrap_or(0), u32::try_from(total).unwrap_or(0)))
    }

    /// The latest `n` events of these kinds (all kinds when empty), newest first: (at ms, kind, message).
    ///
    /// # Errors
    /// On a database error.
    pub fn recent_events(&self, kinds: &[&str], n: u32) -> StoreResult<Vec<(i64, String, String)>> {
        let filter = if kinds.is_empty() {
            String::new()
        } else {
            format!(
                "WHERE kind IN ({})",
                kinds.iter().map(|k| format!("'{}'", k.replace('\'', ""))).collect::<Vec<_>>().join(",")
            )
        };
        let mut st = self
            .conn
            .prepare(&format!("SELECT at_ms, kind, message FROM events {filter} ORDER BY id DESC LIMIT ?1"))?;
        let rows = st.query_map([n], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
