//! Our book as the journal keeps it: positions (each write stamped), realized P&L by trading
//! day and the day's opening value, the breaker, target positions, and the events log.

use alloy::primitives::Address;
use rusqlite::{Connection, OptionalExtension, params};

use super::journal::{IN_BOOKS, exec, query_one};
use super::{Store, StoreResult, dec_u256, hex_addr, now_ms};
use crate::domain::{Shares, TokenId, Usdc, addr_lower};
use crate::risk::{Book, BreakerState, Position, Written};

impl Store {
    /// Where fill `row` was mined, once its block is journaled: the block, and what its wallet
    /// traded of its token earlier in that block (BUYs add, SELLs take away). A fill seen pending
    /// is sized on its balance before it, and the journal knows its block even when the operator
    /// mined it under another transaction than the one seen.
    ///
    /// # Errors
    /// On a database error.
    pub fn mined_at(&self, row: i64) -> StoreResult<Option<(u64, i64)>> {
        let found: Option<(i64, i64)> = self
            .conn
            .query_row(
                "SELECT f.block_number, (SELECT COALESCE(SUM(CASE WHEN e.side = 'BUY' THEN e.shares ELSE -e.shares END), 0) \
                 FROM fills e INDEXED BY fills_wallet WHERE e.wallet = f.wallet AND e.token_id = f.token_id \
                 AND e.block_number = f.block_number AND e.block_hash = f.block_hash AND e.log_index < f.log_index \
                 AND e.provisional = 0 AND e.suspect = 0 AND e.status != 'withdrawn') \
                 FROM fills f WHERE f.id = ?1 AND f.provisional = 0 AND f.block_number > 0",
                [row],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(found.map(|(block, earlier)| (u64::try_from(block).unwrap_or(0), earlier)))
    }

    /// The target's trades of the same token journaled before fill `row` (itself seen pending)
    /// that a balance read at block `at` may not hold: those still pending as far as the journal
    /// knows, and those it has mined above `at`. Each as (transaction, shares bought less sold,
    /// still pending).
    ///
    /// # Errors
    /// On a database error.
    pub fn pending_before(&self, row: i64, at: u64) -> StoreResult<Vec<(alloy::primitives::B256, i64, bool)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT e.tx_hash, SUM(CASE WHEN e.side = 'BUY' THEN e.shares ELSE -e.shares END), MAX(e.provisional) \
             FROM fills f JOIN fills e INDEXED BY fills_wallet ON e.wallet = f.wallet AND e.token_id = f.token_id \
             WHERE f.id = ?1 AND e.id < f.id AND (e.provisional = 1 OR e.block_number > ?2) AND e.orphaned = 0 \
             AND e.suspect = 0 AND e.status != 'withdrawn' GROUP BY e.tx_hash",
        )?;
        let at = i64::try_from(at).unwrap_or(i64::MAX);
        let rows: Vec<(String, i64, bool)> = st
            .query_map(rusqlite::params![row, at], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        rows.into_iter().map(|(tx, net, pending)| Ok((super::hex_b256(&tx, "fills.tx_hash")?, net, pending))).collect()
    }

    /// Per wallet and token, the shares its copies still hold of positions open in our books (as
    /// [`Store::copied_shares`] counts them, SELLs under way aside): what that wallet's exits
    /// would sell.
    ///
    /// # Errors
    /// On a database error.
    pub fn open_copies(&self) -> StoreResult<Vec<(Address, TokenId, Shares)>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT f.wallet, f.token_id, SUM(CASE WHEN e.side = 'BUY' THEN e.shares ELSE -e.shares END) AS held \
             FROM executions e JOIN fills f ON f.id = e.fill_id JOIN positions p ON p.token_id = f.token_id \
             WHERE p.shares > 0 AND {IN_BOOKS} AND e.executed_at_ms > \
             COALESCE((SELECT c.at_ms FROM claims_reset c WHERE c.token_id = f.token_id), -1) \
             GROUP BY f.wallet, f.token_id HAVING held > 0 ORDER BY f.wallet, f.token_id"
        ))?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (w, t, held) = row?;
            out.push((hex_addr(&w, "fills.wallet")?, dec_u256(&t, "fills.token_id")?, Shares(held)));
        }
        Ok(out)
    }

    /// The shares of `token` our copies of `wallet` hold (see `copied_shares_in`).
    ///
    /// # Errors
    /// On a database error.
    pub fn copied_shares(&self, wallet: &Address, token: TokenId) -> StoreResult<Shares> {
        copied_shares_in(&self.conn, wallet, token)
    }

    /// Our positions as stored.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn book(&self) -> StoreResult<Book> {
        let mut st = self.conn.prepare("SELECT token_id, shares, cost FROM positions")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))?;
        let mut b = Book::default();
        for r in rows {
            let (t, s, c) = r?;
            b.set(dec_u256(&t, "positions.token_id")?, Position { shares: Shares(s), cost: Usdc(c) });
        }
        Ok(b)
    }

    /// Realized P&L since `day_start_ms` (the trading day's opening), of executions still in our
    /// books (not those whose match never settled on chain and was taken out), less the fees our
    /// fills on chain paid since then.
    ///
    /// # Errors
    /// On a database error.
    pub fn realized_since(&self, day_start_ms: i64) -> StoreResult<Usdc> {
        let v: i64 = query_one(
            &self.conn,
            &format!(
                "SELECT COALESCE(SUM(p), 0) FROM (SELECT realized_pnl AS p FROM executions e WHERE executed_at_ms >= ?1 \
                 AND {IN_BOOKS} UNION ALL SELECT realized_pnl FROM settlements WHERE at_ms >= ?1 \
                 UNION ALL SELECT -fee FROM own_fills WHERE fee > 0 AND seen_at_ms >= ?1)"
            ),
            [day_start_ms],
            |r| r.get(0),
        )?;
        Ok(Usdc(v))
    }

    /// The fees our fills on chain paid since `since_ms` (when each was read), already counted in
    /// [`Store::realized_since`].
    ///
    /// # Errors
    /// On a database error.
    pub fn fees_since(&self, since_ms: i64) -> StoreResult<Usdc> {
        let v: i64 = query_one(
            &self.conn,
            "SELECT COALESCE(SUM(fee), 0) FROM own_fills WHERE fee > 0 AND seen_at_ms >= ?1",
            [since_ms],
            |r| r.get(0),
        )?;
        Ok(Usdc(v))
    }

    /// Realized P&L since the start of the trading day containing `now_ms` (the day the daily loss
    /// limit counts; see [`Store::with_trading_day`]).
    ///
    /// # Errors
    /// On a database error.
    pub fn realized_today(&self, now_ms: i64) -> StoreResult<Usdc> {
        self.realized_since(self.trading_day_start(now_ms))
    }

    /// The open positions' unrealized P&L when the trading day of `day_start_ms` opened.
    ///
    /// # Errors
    /// On a database error.
    pub fn day_open(&self, day_start_ms: i64) -> StoreResult<Option<Usdc>> {
        Ok(self
            .conn
            .query_row("SELECT unrealized FROM day_open WHERE day_start_ms = ?1", [day_start_ms], |r| r.get(0))
            .optional()?
            .map(Usdc))
    }

    /// Records the unrealized P&L a trading day opened with (the first record of a day stands).
    ///
    /// # Errors
    /// On a database error.
    pub fn set_day_open(&self, day_start_ms: i64, unrealized: Usdc) -> StoreResult<()> {
        exec(
            &self.conn,
            "INSERT OR IGNORE INTO day_open (day_start_ms, unrealized) VALUES (?1, ?2)",
            params![day_start_ms, unrealized.0],
        )?;
        Ok(())
    }

    /// Moves the unrealized P&L a trading day opened with to `unrealized` (a change of the book
    /// that is not the day's P&L: a booking dated to an earlier day, an adjustment), recorded or not.
    ///
    /// # Errors
    /// On a database error.
    pub fn move_day_open(&self, day_start_ms: i64, unrealized: Usdc) -> StoreResult<()> {
        exec(
            &self.conn,
            "INSERT INTO day_open (day_start_ms, unrealized) VALUES (?1, ?2) \
             ON CONFLICT (day_start_ms) DO UPDATE SET unrealized = excluded.unrealized",
            params![day_start_ms, unrealized.0],
        )?;
        Ok(())
    }

    /// BUY copies per wallet since `since_ms` (what the frequency limits count): (wallet,
    /// executed_at_ms), oldest first.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn copies_since(&self, since_ms: i64) -> StoreResult<Vec<(Address, i64)>> {
        let mut st = self.conn.prepare(
            "SELECT wallet, executed_at_ms FROM executions WHERE executed_at_ms >= ?1 AND side = 'BUY' \
             ORDER BY executed_at_ms",
        )?;
        let rows = st.query_map([since_ms], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        rows.map(|r| {
            let (w, t) = r?;
            Ok((hex_addr(&w, "executions.wallet")?, t))
        })
        .collect()
    }

    /// The target's position in `token` as observed from its journaled fills up to the fill of
    /// `row` (included): the running total less the target's later fills of it that still count
    /// (a range or a backfill journals several of its trades before the first is sized, and an
    /// exit sized on the total would take the later ones for its own). Not below zero.
    ///
    /// # Errors
    /// On a database error.
    pub fn target_position_at(&self, wallet: &Address, token: &TokenId, row: i64) -> StoreResult<Option<Shares>> {
        Ok(self
            .conn
            .query_row(
                "SELECT MAX(tp.shares - COALESCE((SELECT SUM(CASE WHEN f.side = 'BUY' THEN f.shares ELSE -f.shares END) \
                 FROM fills f INDEXED BY fills_wallet WHERE f.wallet = ?1 AND f.token_id = ?2 AND f.id > ?3 \
                 AND f.orphaned = 0 AND f.status != 'withdrawn'), 0), 0) \
                 FROM target_positions tp WHERE tp.wallet = ?1 AND tp.token_id = ?2",
                params![addr_lower(wallet), token.to_string(), row],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(Shares))
    }

    /// The target's position in `token` as observed from its journaled fills.
    ///
    /// # Errors
    /// On a database error.
    pub fn target_position(&self, wallet: &Address, token: &TokenId) -> StoreResult<Option<Shares>> {
        Ok(self
            .conn
            .query_row(
                "SELECT shares FROM target_positions WHERE wallet = ?1 AND token_id = ?2",
                params![addr_lower(wallet), token.to_string()],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(Shares))
    }

    /// The stored breaker state (not tripped when never set).
    ///
    /// # Errors
    /// On a database error.
    pub fn breaker(&self) -> StoreResult<BreakerState> {
        // Polled several times a second on the writer: prepared once.
        Ok(query_one(
            &self.conn,
            "SELECT tripped, code, reason, by, since_ms, reducing, halt_asked_ms FROM breaker WHERE id = 1",
            [],
            |r| {
                Ok(BreakerState {
                    tripped: r.get(0)?,
                    code: r.get(1)?,
                    reason: r.get(2)?,
                    by: r.get(3)?,
                    since_ms: r.get(4)?,
                    reducing: r.get(5)?,
                    halt_asked_ms: r.get(6)?,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
    }

    /// Stores the breaker state.
    ///
    /// # Errors
    /// On a database error.
    pub fn set_breaker(&self, s: &BreakerState) -> StoreResult<()> {
        exec(
            &self.conn,
            "INSERT INTO breaker (id, tripped, code, reason, by, since_ms, reducing, halt_asked_ms) \
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO UPDATE SET tripped = ?1, code = ?2, \
             reason = ?3, by = ?4, since_ms = ?5, reducing = ?6, halt_asked_ms = max(halt_asked_ms, ?7)",
            params![s.tripped, s.code, s.reason, s.by, s.since_ms, s.reducing, s.halt_asked_ms],
        )?;
        Ok(())
    }

    /// [`Self::set_breaker`] for the daemon's own changes: never over a halt the command line wrote
    /// that the daemon has not seen yet (asked later than any halt `s` knows of). A state change of
    /// its own between that write and its next read of the journal (the day's roll lifting a
    /// `reducing`, a limit reached) would otherwise erase the halt, and the daemon trade on.
    ///
    /// # Errors
    /// On a database error.
    pub fn set_breaker_from_daemon(&self, s: &BreakerState) -> StoreResult<()> {
        exec(
            &self.conn,
            "INSERT INTO breaker (id, tripped, code, reason, by, since_ms, reducing, halt_asked_ms) \
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO UPDATE SET tripped = ?1, code = ?2, \
             reason = ?3, by = ?4, since_ms = ?5, reducing = ?6, halt_asked_ms = max(halt_asked_ms, ?7) \
             WHERE NOT (breaker.tripped = 1 AND breaker.reducing = 0 AND (?1 = 0 OR ?6 = 1) \
             AND breaker.halt_asked_ms > ?7)",
            params![s.tripped, s.code, s.reason, s.by, s.since_ms, s.reducing, s.halt_asked_ms],
        )?;
        Ok(())
    }

    /// Notes a halt asked for at `at_ms` while trading is already halted: the halt stands as it
    /// is, but a close or a resume button from before it must not outlive it in a restart.
    ///
    /// # Errors
    /// On a database error.
    pub fn note_halt_asked(&self, at_ms: i64) -> StoreResult<()> {
        exec(
            &self.conn,
            "UPDATE breaker SET halt_asked_ms = max(halt_asked_ms, ?1) WHERE id = 1 AND tripped = 1",
            params![at_ms],
        )?;
        Ok(())
    }

    /// When the newest event of `kind` was logged, unix ms (`None`: never, or pruned).
    ///
    /// # Errors
    /// On a database error.
    pub fn last_event_at(&self, kind: &str) -> StoreResult<Option<i64>> {
        Ok(self.conn.query_row("SELECT MAX(at_ms) FROM events WHERE kind = ?1", [kind], |r| r.get(0))?)
    }

    /// Appends to the events log.
    ///
    /// # Errors
    /// On a database error.
    pub fn add_event(&self, kind: &str, message: &str) -> StoreResult<()> {
        // The events log is read back by operators and put in incident bundles: an error text a
        // message quotes loses any secret this process knows first.
        let message = crate::config::env::redact(message);
        exec(
            &self.conn,
            "INSERT INTO events (at_ms, kind, message) VALUES (?1, ?2, ?3)",
            params![now_ms(), kind, message],
        )?;
        Ok(())
    }
}

/// Position writes so far in this process: each write takes the next number, in the order the
/// journal's one writer makes them, so the book can tell a newer position from an older one.
static POSITION_WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Stores our position in `token` (none at all once it holds no shares); returns it stamped with
/// the order of this write.
/// Notes that the operator's own SELL (`by_operator`: its fill's wallet is
/// [`crate::domain::OPERATOR`]) left the position in `token` empty at `at_ms`: the copies booked
/// until then were sold by it, and no target's exit claims them again (see
/// [`Store::copied_shares`]). A partial close resets nothing: a target's exit is still bounded by
/// what we hold.
pub(crate) fn note_operator_close(
    tx: &Connection,
    by_operator: bool,
    side: crate::domain::Side,
    token: &str,
    left: Position,
    at_ms: i64,
) -> StoreResult<()> {
    // Less than a lot left is empty to a close: it sells whole lots, and the dust cannot be sold.
    if by_operator && left.shares.0 < crate::domain::LOT && side == crate::domain::Side::Sell {
        exec(
            tx,
            "INSERT INTO claims_reset (token_id, at_ms) VALUES (?1, ?2) \
             ON CONFLICT (token_id) DO UPDATE SET at_ms = MAX(at_ms, ?2)",
            params![token, at_ms],
        )?;
    }
    Ok(())
}

pub(crate) fn write_position(tx: &Connection, token: &str, position: Position, at_ms: i64) -> StoreResult<Written> {
    if position.shares.0 == 0 {
        exec(tx, "DELETE FROM positions WHERE token_id = ?1", [token])?;
        // Its mark goes with it: bought again, it is not valued at a price from before.
        exec(tx, "DELETE FROM marks WHERE token_id = ?1", [token])?;
    } else {
        exec(
            tx,
            "INSERT INTO positions (token_id, shares, cost, updated_at_ms) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (token_id) DO UPDATE SET shares = ?2, cost = ?3, updated_at_ms = ?4",
            params![token, position.shares.0, position.cost.0, at_ms],
        )?;
    }
    let seq = POSITION_WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    Ok(Written { position, seq })
}

/// The shares of `token` our copies of `wallet` hold: its copies' BUYs less their SELLs, of
/// executions still in our books (never below zero). A target's exit is sized on this, not
/// on the whole position: other targets' copies of the same outcome are theirs to sell. Only
/// copies booked after the operator's last close that emptied the position count: what that
/// close sold is not claimed again from another target's later copies.
///
/// # Errors
/// On a database error.
pub(super) fn copied_shares_in(conn: &Connection, wallet: &Address, token: TokenId) -> StoreResult<Shares> {
    let (token, wallet) = (token.to_string(), addr_lower(wallet));
    let booked: i64 = query_one(
        conn,
        &format!(
            "SELECT COALESCE(SUM(CASE WHEN e.side = 'BUY' THEN e.shares ELSE -e.shares END), 0) \
             FROM fills f INDEXED BY fills_wallet JOIN executions e ON e.fill_id = f.id \
             WHERE f.wallet = ?2 AND f.token_id = ?1 AND {IN_BOOKS} AND e.executed_at_ms > \
             COALESCE((SELECT c.at_ms FROM claims_reset c WHERE c.token_id = ?1), -1)"
        ),
        params![token, wallet],
        |r| r.get(0),
    )?;
    // This target's SELLs still under way (being decided, or booked in part with the rest
    // still able to fill: the same test as recovery's) have claimed their shares already: a second exit right behind the first must not count
    // them again, or it would sell another target's copies.
    let selling: i64 = query_one(
        conn,
        "SELECT COALESCE(SUM(MAX(i.shares - COALESCE(e.shares, 0), 0)), 0) FROM fills f \
         JOIN intents i ON i.fill_id = f.id LEFT JOIN executions e ON e.fill_id = f.id \
         WHERE f.wallet = ?2 AND f.token_id = ?1 AND i.side = 'SELL' AND f.orphaned = 0 \
         AND (f.status = 'pending' OR (f.status = 'executed' AND EXISTS (SELECT 1 FROM orders o \
         WHERE o.fill_id = f.id AND o.status IN ('sent', 'live', 'delayed', 'unknown'))))",
        params![token, wallet],
        |r| r.get(0),
    )?;
    Ok(Shares((booked - selling).max(0)))
}
