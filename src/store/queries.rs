//! Read-only views for the CLI (`status`, `trades`): plain rows with amounts as decimal strings.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreResult, now_ms};
use crate::domain::format_micros;
use crate::risk::BreakerState;

/// One line of `polycopy trades`: a target fill and what became of it. Field names are a stable interface.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TradeRow {
    /// `0x<tx hash>:<log index>`; a fill seen only pending (its log index not known yet) is
    /// `0x<tx hash>:pending-<order hash's first 8 hex digits>-<occurrence>`.
    pub fill: String,
    /// The fill's identity, stable from its first sighting on: `0x<tx>:0x<order hash>:<occurrence>`.
    pub id: String,
    /// Target wallet.
    pub wallet: String,
    /// The target's side.
    pub side: String,
    /// `maker` (the target's order rested) or `taker` (it crossed the book).
    pub role: String,
    /// Token id (decimal).
    pub token_id: String,
    /// Shares the target traded.
    pub target_shares: String,
    /// The target's price.
    pub target_price: String,
    /// `executed` | `rejected` | `pending` | `withdrawn`.
    pub status: String,
    /// Reason code when rejected or withdrawn.
    pub reason: Option<String>,
    /// The reason with its numbers.
    pub detail: Option<String>,
    /// Our shares, when executed.
    pub shares: Option<String>,
    /// Our price, when executed.
    pub price: Option<String>,
    /// Our USDC, when executed.
    pub usdc: Option<String>,
    /// Block the fill is in.
    pub block: u64,
    /// True when we copied it (or journaled its order) and its transaction later left the chain.
    pub reorged_after_copy: bool,
    /// When we saw it, unix ms.
    pub seen_at_ms: i64,
    /// "question — outcome", when the market's metadata is known.
    pub market: Option<String>,
    /// Seen in a pending settlement and its block not seen yet.
    pub provisional: bool,
    /// Its transaction was dropped, replaced or reverted before it was mined.
    pub orphaned: bool,
    /// Which sighting handed it to the copier: `pending`, `chain` (none yet: waiting for its block).
    pub triggered_by: Option<String>,
    /// Each source's first sighting, "source@unix ms", earliest first.
    pub sightings: Vec<String>,
}

/// Everything `polycopy status` shows that the journal knows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The breaker.
    pub breaker: BreakerState,
    /// Last processed block.
    pub last_block: Option<u64>,
    /// Fills seen per wallet (lower-case address).
    pub fills_by_wallet: HashMap<String, u64>,
    /// Fills per status.
    pub fills_by_status: HashMap<String, u64>,
    /// Open positions: token, shares, cost.
    pub positions: Vec<PositionRow>,
    /// Total cost of open positions.
    pub exposure_usdc: String,
    /// Realized P&L today (the trading day), fees included.
    pub realized_today_usdc: String,
    /// The fees our fills on chain paid today, counted in `realized_today_usdc`.
    pub fees_today_usdc: String,
    /// Unrealized P&L of the positions with a mark (CLOB midpoint); unmarked ones count at cost.
    pub unrealized_usdc: String,
    /// The newest fill.
    pub last_fill: Option<TradeRow>,
}

/// One open position.
#[derive(Debug, Clone, Serialize)]
pub struct PositionRow {
    /// Token id.
    pub token_id: String,
    /// Shares held.
    pub shares: String,
    /// Cost basis.
    pub cost_usdc: String,
    /// Average price paid.
    pub avg_price: String,
    /// The last mark (CLOB midpoint), when there is one.
    pub mark: Option<String>,
    /// Value at the mark minus cost, when marked.
    pub unrealized_usdc: Option<String>,
}

impl Store {
    /// Unrealized P&L of the marked positions: shares × mark (both micro) / 1e6, rounded down like
    /// the daemon's own valuation, less cost. Summed in i128 here, not in SQL: SQLite's 64-bit
    /// product overflows into floating point above about 9.2e12 (9.3 million shares at 0.99),
    /// and the status would fail to read it.
    ///
    /// # Errors
    /// On a database error.
    pub fn unrealized_at_marks(&self) -> StoreResult<i64> {
        let mut st = self
            .conn
            .prepare_cached("SELECT p.shares, p.cost, m.price FROM positions p JOIN marks m USING (token_id)")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))?;
        let mut total: i128 = 0;
        for row in rows {
            let (shares, cost, mark) = row?;
            total += i128::from(shares) * i128::from(mark) / 1_000_000 - i128::from(cost);
        }
        Ok(i64::try_from(total).unwrap_or(if total < 0 { i64::MIN } else { i64::MAX }))
    }

    /// How many copies of `mode` (paper or live) the journal holds: a daemon of the other mode
    /// refuses a journal that has any (paper history never mixes with real money).
    ///
    /// # Errors
    /// On a database error.
    pub fn copies_in_mode(&self, mode: crate::domain::ExecMode) -> StoreResult<u64> {
        let n: i64 =
            self.conn
                .query_row("SELECT COUNT(*) FROM executions WHERE mode = ?1", params![mode.as_str()], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The newest `limit` fills and their outcomes.
    ///
    /// # Errors
    /// On a database error.
    pub fn trades(&self, limit: u32) -> StoreResult<Vec<TradeRow>> {
        self.trade_rows("", limit)
    }

    /// The newest fill of a target (not one of the operator's closes).
    ///
    /// # Errors
    /// On a database error.
    pub fn last_target_fill(&self) -> StoreResult<Option<TradeRow>> {
        Ok(self.trade_rows("WHERE f.wallet != '0x0000000000000000000000000000000000000000'", 1)?.into_iter().next())
    }

    fn trade_rows(&self, filter: &str, limit: u32) -> StoreResult<Vec<TradeRow>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT f.tx_hash, f.log_index, f.wallet, f.side, f.token_id, f.shares, f.price, f.status, f.reason, f.detail, \
                    e.shares, e.price, e.usdc, f.block_number, f.reorged_after_copy, f.seen_at_ms, f.role, \
                    m.question || ' — ' || m.outcome, f.provisional, f.orphaned, f.triggered_by, \
                    f.order_hash, f.occurrence, \
                    (SELECT group_concat(source || '@' || seen_at_ms, ',') FROM \
                        (SELECT source, seen_at_ms FROM \
                            (SELECT source, seen_at_ms FROM sightings WHERE fill_id = f.id \
                             UNION ALL SELECT 'chain', f.seen_at_ms WHERE f.provisional = 0 AND NOT EXISTS \
                                (SELECT 1 FROM sightings c WHERE c.fill_id = f.id AND c.source = 'chain')) \
                         ORDER BY seen_at_ms, source = 'chain')) \
             FROM fills f LEFT JOIN executions e ON e.fill_id = f.id LEFT JOIN markets m ON m.token_id = f.token_id \
             {filter} ORDER BY f.id DESC LIMIT ?1"
        ))?;
        let rows = st.query_map(params![limit], |r| {
            let opt = |v: Option<i64>| v.map(format_micros);
            let (tx, order, occurrence): (String, String, i64) = (r.get(0)?, r.get(21)?, r.get(22)?);
            let provisional: bool = r.get(18)?;
            Ok(TradeRow {
                fill: if provisional {
                    format!("{tx}:pending-{}-{occurrence}", order.trim_start_matches("0x").get(..8).unwrap_or_default())
                } else {
                    format!("{tx}:{}", r.get::<_, i64>(1)?)
                },
                id: format!("{tx}:{order}:{occurrence}"),
                wallet: r.get(2)?,
                side: r.get(3)?,
                token_id: r.get(4)?,
                target_shares: format_micros(r.get(5)?),
                target_price: format_micros(r.get(6)?),
                status: r.get(7)?,
                reason: r.get(8)?,
                detail: r.get(9)?,
                shares: opt(r.get(10)?),
                price: opt(r.get(11)?),
                usdc: opt(r.get(12)?),
                block: r.get::<_, i64>(13)?.unsigned_abs(),
                reorged_after_copy: r.get(14)?,
                seen_at_ms: r.get(15)?,
                role: r.get(16)?,
                market: r.get(17)?,
                provisional,
                orphaned: r.get(19)?,
                triggered_by: r.get(20)?,
                sightings: r
                    .get::<_, Option<String>>(23)?
                    .map(|s| s.split(',').map(str::to_owned).collect())
                    .unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The journal's part of `polycopy status`.
    ///
    /// # Errors
    /// On a database error.
    pub fn status(&self) -> StoreResult<StatusReport> {
        let count_by = |sql: &str| -> StoreResult<HashMap<String, u64>> {
            let mut st = self.conn.prepare(sql)?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.unsigned_abs())))?;
            Ok(rows.collect::<Result<_, _>>()?)
        };
        let mut st = self.conn.prepare(
            "SELECT p.token_id, p.shares, p.cost, m.price FROM positions p LEFT JOIN marks m USING (token_id) \
             ORDER BY p.cost DESC",
        )?;
        let positions = st
            .query_map([], |r| {
                let (s, c, mark): (i64, i64, Option<i64>) = (r.get(1)?, r.get(2)?, r.get(3)?);
                let avg = if s > 0 { i64::try_from(i128::from(c) * 1_000_000 / i128::from(s)).unwrap_or(0) } else { 0 };
                // Rounded down like the daemon's own valuation.
                let value = |m: i64| i64::try_from(i128::from(s) * i128::from(m) / 1_000_000).unwrap_or(i64::MAX);
                Ok(PositionRow {
                    token_id: r.get(0)?,
                    shares: format_micros(s),
                    cost_usdc: format_micros(c),
                    avg_price: format_micros(avg),
                    mark: mark.map(format_micros),
                    unrealized_usdc: mark.map(|m| format_micros(value(m) - c)),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let exposure: i64 = self.conn.query_row("SELECT COALESCE(SUM(cost), 0) FROM positions", [], |r| r.get(0))?;
        let last_block: Option<i64> =
            self.conn.query_row("SELECT block_number FROM checkpoint WHERE id = 1", [], |r| r.get(0)).optional()?;
        let unrealized = self.unrealized_at_marks()?;
        Ok(StatusReport {
            breaker: self.breaker()?,
            last_block: last_block.map(i64::unsigned_abs),
            fills_by_wallet: count_by("SELECT wallet, COUNT(*) FROM fills GROUP BY wallet")?,
            fills_by_status: count_by("SELECT status, COUNT(*) FROM fills GROUP BY status")?,
            positions,
            exposure_usdc: format_micros(exposure),
            realized_today_usdc: format_micros(self.realized_today(now_ms())?.0),
            fees_today_usdc: format_micros(self.fees_since(self.trading_day_start(now_ms()))?.0),
            unrealized_usdc: format_micros(unrealized),
            last_fill: self.last_target_fill()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A position too large for SQLite's 64-bit product (20 million shares at 0.99) is valued
    /// exactly, and the status still reads.
    #[test]
    fn a_large_position_is_valued_without_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("j.db")).unwrap();
        // (shares, cost, mark), micro units
        let rows: [(i64, i64, i64); 2] =
            [(20_000_000_000_000, 10_000_000_000_000, 990_000), (10_000_000, 4_000_000, 500_000)];
        for (i, (shares, cost, mark)) in rows.iter().enumerate() {
            s.conn
                .execute(
                    "INSERT INTO positions (token_id, shares, cost, updated_at_ms) VALUES (?1, ?2, ?3, 0)",
                    params![i.to_string(), shares, cost],
                )
                .unwrap();
            s.conn
                .execute("INSERT INTO marks (token_id, price, at_ms) VALUES (?1, ?2, 0)", params![i.to_string(), mark])
                .unwrap();
        }
        // 19.8 M - 10 M, and 5 - 4 USDC.
        assert_eq!(s.unrealized_at_marks().unwrap(), 9_800_000_000_000 + 1_000_000);
        assert_eq!(s.status().unwrap().unrealized_usdc, "9800001");
    }
}
