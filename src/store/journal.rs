//! Journal operations: fills in (atomically with the checkpoint), intents before execution,
//! outcomes after, reorg bookkeeping, breaker state and events.

use alloy::primitives::{Address, B256};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Store, StoreResult, dec_u256, hex_addr, hex_b256, now_ms, utc_day_start};
use crate::domain::{
    ExchangeVersion, Execution, FillId, OrderIntent, OrderType, Price, Role, Shares, Side, TargetFill, TokenId, Usdc,
    addr_lower,
};
use crate::risk::{Book, BreakerState, Position};

/// Runs a statement through the connection's statement cache: the journal's few statements run for
/// every fill, and parsing them again each time cost more than executing them.
pub(super) fn exec<P: rusqlite::Params>(c: &Connection, sql: &str, p: P) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(p)
}

/// [`exec`] for a one-row query.
pub(super) fn query_one<T, P: rusqlite::Params>(
    c: &Connection,
    sql: &str,
    p: P,
    f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(p, f)
}

/// Inserts a fill unless its identity is journaled already (then nothing changes); a new fill
/// moves the target's tracked position. `provisional`: seen pending, its block not yet known;
/// `triggered`: which sighting hands it to the copier (`None`: not yet). The new row, or `None`
/// when the identity was journaled already.
pub(super) fn insert_fill(
    tx: &Connection,
    f: &TargetFill,
    now: i64,
    provisional: bool,
    triggered: Option<&str>,
) -> rusqlite::Result<Option<i64>> {
    // RETURNING hands back the new row, so the common case (a fill not seen before) needs no
    // second lookup by identity.
    let mut st = tx.prepare_cached(
        "INSERT OR IGNORE INTO fills (tx_hash, order_hash, occurrence, log_index, block_number, block_hash, block_ts, \
         exchange, version, wallet, role, side, token_id, shares, usdc, price, fee, seen_at_ms, provisional, triggered_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20) RETURNING id",
    )?;
    let row: Option<i64> = st
        .query_row(
            params![
                f.id.tx_hash.to_string(),
                f.id.order_hash.to_string(),
                f.id.occurrence,
                f.log_index as i64,
                f.block_number as i64,
                f.block_hash.to_string(),
                f.block_ts as i64,
                addr_lower(&f.exchange),
                if f.version == ExchangeVersion::V1 { "V1" } else { "V2" },
                addr_lower(&f.wallet),
                f.role.as_str(),
                f.side.as_str(),
                f.token_id.to_string(),
                f.shares.0,
                f.usdc.0,
                f.price.0,
                f.fee,
                now,
                provisional,
                triggered
            ],
            |r| r.get(0),
        )
        .optional()?;
    if row.is_some() {
        move_target_position(tx, f, 1)?;
    }
    Ok(row)
}

/// Moves the target's tracked position by `sign` × the fill (−1 takes a fill back).
pub(super) fn move_target_position(tx: &Connection, f: &TargetFill, sign: i64) -> rusqlite::Result<()> {
    let delta = sign * if f.side == Side::Buy { f.shares.0 } else { -f.shares.0 };
    exec(
        tx,
        "INSERT INTO target_positions (wallet, token_id, shares) VALUES (?1, ?2, MAX(?3, 0)) \
         ON CONFLICT (wallet, token_id) DO UPDATE SET shares = MAX(shares + ?3, 0)",
        params![addr_lower(&f.wallet), f.token_id.to_string(), delta],
    )?;
    Ok(())
}

/// What journaling a paper copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaperBooking {
    /// Executed: the position and P&L it led to (`None`: the fill already had an execution,
    /// nothing was booked twice).
    Booked(Option<(Position, Usdc)>),
    /// The journal says it must not be executed (already handled, or under a reorg).
    Skipped,
    /// Halted: the intent is journaled, nothing executed.
    NotSent,
}

/// A fill as journaled, with its row id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingFill {
    /// Row id in `fills`.
    pub row: i64,
    /// The fill.
    pub fill: TargetFill,
    /// The intent already recorded for it, if any (a crash came between intent and outcome).
    pub intent: Option<OrderIntent>,
    /// When this fill's journal write committed: the end of its batch's commit, as the journal's
    /// writer answered (`None` for fills recovered at start). The start of its copy's measured
    /// latency.
    pub journaled: Option<std::time::Instant>,
}

/// What journaling a block range did.
#[derive(Debug, Clone, Default)]
pub struct JournalOutcome {
    /// Fills to run through the pipeline: new ones, and ones a reorg withdrew and the chain re-included.
    pub to_copy: Vec<PendingFill>,
    /// Fills withdrawn by a reorg before we acted: never to be copied.
    pub withdrawn: Vec<TargetFill>,
    /// Fills we had already copied whose transaction left the chain.
    pub reorged_after_copy: Vec<TargetFill>,
    /// Fills reported orphaned whose transaction was mined after all.
    pub unorphaned: Vec<TargetFill>,
}

/// The columns [`fill_from_row`] reads, from `fills f`.
pub(super) const FILL_COLS: &str = "f.id, f.tx_hash, f.order_hash, f.occurrence, f.log_index, f.block_number, f.block_hash, \
    f.block_ts, f.exchange, f.version, f.wallet, f.role, f.side, f.token_id, f.shares, f.usdc, f.price, f.fee";

pub(super) fn fill_from_row(r: &Row<'_>) -> rusqlite::Result<(i64, [String; 8], [i64; 9])> {
    Ok((
        r.get(0)?,
        [r.get(1)?, r.get(2)?, r.get(6)?, r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?],
        [r.get(3)?, r.get(4)?, r.get(5)?, r.get(7)?, r.get(14)?, r.get(15)?, r.get(16)?, r.get(17)?, 0],
    ))
}

pub(super) fn parse_fill(row: (i64, [String; 8], [i64; 9]), token: &str) -> StoreResult<(i64, TargetFill)> {
    let (id, s, n) = row;
    let corrupt = |column, value: &str| super::StoreError::Corrupt { column, value: value.to_owned() };
    Ok((
        id,
        TargetFill {
            id: FillId {
                tx_hash: hex_b256(&s[0], "tx_hash")?,
                order_hash: hex_b256(&s[1], "order_hash")?,
                occurrence: u32::try_from(n[0]).map_err(|_| corrupt("occurrence", &n[0].to_string()))?,
            },
            wallet: hex_addr(&s[5], "wallet")?,
            role: if s[6] == "taker" { Role::Taker } else { Role::Maker },
            side: Side::parse(&s[7]).ok_or_else(|| corrupt("side", &s[7]))?,
            token_id: dec_u256(token, "token_id")?,
            shares: Shares(n[4]),
            usdc: Usdc(n[5]),
            price: Price(n[6]),
            fee: n[7],
            exchange: hex_addr(&s[3], "exchange")?,
            version: if s[4] == "V1" { ExchangeVersion::V1 } else { ExchangeVersion::V2 },
            block_number: n[2].unsigned_abs(),
            block_hash: hex_b256(&s[2], "block_hash")?,
            log_index: n[1].unsigned_abs(),
            block_ts: n[3].unsigned_abs(),
        },
    ))
}

impl Store {
    /// The last fully processed block.
    ///
    /// # Errors
    /// On a database error.
    pub fn checkpoint(&self) -> StoreResult<Option<(u64, B256)>> {
        let row: Option<(i64, String)> = self
            .conn
            .query_row("SELECT block_number, block_hash FROM checkpoint WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        row.map(|(n, h)| Ok((n.unsigned_abs(), hex_b256(&h, "checkpoint.block_hash")?))).transpose()
    }

    /// Hashes of recently processed blocks, newest first (for finding the common ancestor in a reorg).
    ///
    /// # Errors
    /// On a database error.
    pub fn recent_blocks(&self) -> StoreResult<Vec<(u64, B256)>> {
        let mut st = self.conn.prepare_cached("SELECT number, hash FROM recent_blocks ORDER BY number DESC")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        rows.map(|r| {
            let (n, h) = r?;
            Ok((n.unsigned_abs(), hex_b256(&h, "recent_blocks.hash")?))
        })
        .collect()
    }

    /// Journals the fills of blocks `(checkpoint, to]` and moves the checkpoint to `to`, in one
    /// transaction, so that a crash can never skip or half-record a range.
    ///
    /// # Errors
    /// On a database error (nothing is written).
    pub fn journal_range(
        &mut self,
        fills: &[TargetFill],
        to: (u64, B256),
        blocks: &[(u64, B256)],
    ) -> StoreResult<JournalOutcome> {
        self.journal_blocks(fills, to, blocks, true)
    }

    /// [`Store::journal_range`] for one part of a range cut at a block boundary
    /// ([`crate::chain::parts`]): `sweep` false while parts of the range are still to come. Suspects
    /// of a reorg are swept only once the whole range was journaled, since a later part may bring
    /// one of them back in a later block.
    ///
    /// # Errors
    /// On a database error (nothing is written).
    pub fn journal_blocks(
        &mut self,
        fills: &[TargetFill],
        to: (u64, B256),
        blocks: &[(u64, B256)],
        sweep: bool,
    ) -> StoreResult<JournalOutcome> {
        let now = now_ms();
        let tx = self.conn.savepoint()?;
        let mut out = JournalOutcome::default();
        // Detection's bookkeeping costs nothing when there is nothing for it: asked once per range.
        let (provisional_any, staged_any) = super::sightings::anything_waiting(&tx)?;
        for f in fills {
            if provisional_any && super::sightings::row_of(&tx, f)?.is_none() {
                super::sightings::adopt_replacement(&tx, f)?;
            }
            if let Some(row) = insert_fill(&tx, f, now, false, Some("chain"))? {
                if staged_any {
                    super::sightings::link_staged(&tx, row, f)?;
                }
                out.to_copy.push(PendingFill { row, fill: f.clone(), intent: None, journaled: None });
                continue;
            }
            let key = params![f.id.tx_hash.to_string(), f.id.order_hash.to_string(), f.id.occurrence];
            let (row, status, suspect, has_intent, provisional): (i64, String, bool, bool, bool) = query_one(
                &tx,
                "SELECT id, status, suspect, EXISTS (SELECT 1 FROM intents WHERE fill_id = fills.id), provisional \
                 FROM fills WHERE tx_hash = ?1 AND order_hash = ?2 AND occurrence = ?3",
                key,
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
            // The chain's sighting of a fill it shows first is the fill's own seen_at_ms.
            if staged_any {
                super::sightings::link_staged(&tx, row, f)?;
            }
            if provisional {
                // Seen pending first: the mined log confirms it (and hands it on if the target's
                // trigger waited for the block).
                super::sightings::record_sighting(&tx, row, "chain", now)?;
                let (hand_on, was_orphan) = super::sightings::confirm(&tx, row, f)?;
                if let Some(p) = hand_on {
                    out.to_copy.push(p);
                }
                if was_orphan {
                    out.unorphaned.push(f.clone());
                }
                continue;
            }
            // Seen before: a re-inclusion after a reorg (same identity, maybe another block).
            let revive = status == "withdrawn" && !has_intent;
            if suspect || revive {
                exec(
                    &tx,
                    "UPDATE fills SET suspect = 0, block_number = ?2, block_hash = ?3, log_index = ?4, \
                     status = CASE WHEN ?5 THEN 'pending' ELSE status END, reason = CASE WHEN ?5 THEN NULL ELSE reason END \
                     WHERE id = ?1",
                    params![row, f.block_number as i64, f.block_hash.to_string(), f.log_index as i64, revive],
                )?;
                if revive || (status == "pending" && !has_intent) {
                    out.to_copy.push(PendingFill { row, fill: f.clone(), intent: None, journaled: None });
                }
            }
        }
        // Suspects the rescan has passed without seeing again are gone from the chain. The partial
        // index keeps this sweep, run for every range, independent of the journal's size.
        let gone: Vec<(i64, String, String)> = if !sweep {
            Vec::new()
        } else {
            let mut st = tx.prepare_cached(&format!(
                "SELECT {FILL_COLS}, f.status FROM fills f INDEXED BY fills_suspect WHERE f.suspect = 1 AND f.block_number <= ?1"
            ))?;
            let rows =
                st.query_map([to.0 as i64], |r| Ok((r.get(0)?, r.get::<_, String>(13)?, r.get::<_, String>(18)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (row, token, status) in gone {
            let fill = load_fill(&tx, row, &token)?;
            if status == "executed" {
                exec(&tx, "UPDATE fills SET suspect = 0, reorged_after_copy = 1 WHERE id = ?1", [row])?;
                out.reorged_after_copy.push(fill);
            } else {
                exec(
                    &tx,
                    "UPDATE fills SET suspect = 0, status = 'withdrawn', reason = 'reorged_out' WHERE id = ?1 AND status != 'executed'",
                    [row],
                )?;
                out.withdrawn.push(fill);
            }
        }
        for (n, h) in blocks.iter().chain(std::iter::once(&to)) {
            exec(
                &tx,
                "INSERT OR REPLACE INTO recent_blocks (number, hash) VALUES (?1, ?2)",
                params![*n as i64, h.to_string()],
            )?;
        }
        exec(&tx, "DELETE FROM recent_blocks WHERE number < ?1", [to.0.saturating_sub(1024) as i64])?;
        exec(
            &tx,
            "INSERT INTO checkpoint (id, block_number, block_hash, updated_at_ms) VALUES (1, ?1, ?2, ?3) \
             ON CONFLICT (id) DO UPDATE SET block_number = ?1, block_hash = ?2, updated_at_ms = ?3",
            params![to.0 as i64, to.1.to_string(), now],
        )?;
        tx.commit()?;
        Ok(out)
    }

    /// Rewinds to the common ancestor after a reorg: fills above it become suspects until the rescan
    /// sees them again (they keep their status: one already copied stays copied).
    ///
    /// # Errors
    /// On a database error.
    pub fn rewind(&mut self, ancestor: (u64, B256)) -> StoreResult<usize> {
        let tx = self.conn.savepoint()?;
        let n = exec(
            &tx,
            "UPDATE fills SET suspect = 1 WHERE block_number > ?1 AND status != 'withdrawn'",
            [ancestor.0 as i64],
        )?;
        exec(&tx, "DELETE FROM recent_blocks WHERE number > ?1", [ancestor.0 as i64])?;
        exec(
            &tx,
            "INSERT INTO checkpoint (id, block_number, block_hash, updated_at_ms) VALUES (1, ?1, ?2, ?3) \
             ON CONFLICT (id) DO UPDATE SET block_number = ?1, block_hash = ?2, updated_at_ms = ?3",
            params![ancestor.0 as i64, ancestor.1.to_string(), now_ms()],
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// Records an intent, but only for a fill that is still pending, not under a reorg cloud, and
    /// has no intent yet. Returns false when the fill must not be executed.
    ///
    /// # Errors
    /// On a database error.
    pub fn record_intent(&mut self, i: &OrderIntent) -> StoreResult<bool> {
        let tx = self.conn.savepoint()?;
        let ok = record_intent_in(&tx, i)?;
        tx.commit()?;
        Ok(ok)
    }

    /// Records what the executor did, and the position and realized P&L it leads to, in one
    /// transaction. The position is computed here from the journal's own row, so concurrent orders
    /// on one token can never write a stale position. Returns `None` if this fill already had an
    /// execution (nothing is written twice), else the new position and the P&L realized.
    ///
    /// # Errors
    /// On a database error.
    pub fn record_execution(&mut self, e: &Execution, wallet: &Address) -> StoreResult<Option<(Position, Usdc)>> {
        let tx = self.conn.savepoint()?;
        let fresh = record_execution_in(&tx, e, wallet)?;
        tx.commit()?;
        Ok(fresh)
    }

    /// A paper copy in one write: its intent (unless `fresh` is false: journaled before a restart)
    /// and, when `may_send`, its simulated execution. Already inside the job's savepoint, so no
    /// savepoint of its own: a nested one would copy every page it touches once more.
    ///
    /// # Errors
    /// On a database error.
    pub fn record_paper_copy(
        &mut self,
        i: &OrderIntent,
        e: &Execution,
        wallet: &Address,
        fresh: bool,
        may_send: bool,
    ) -> StoreResult<PaperBooking> {
        if fresh && !record_intent_in(&self.conn, i)? {
            return Ok(PaperBooking::Skipped);
        }
        // The crash test's hook: dying here loses the intent with the execution (one write), so the
        // fill is still pending and is copied once after the restart.
        crate::fault::abort_at("abort_after_intent");
        if !may_send {
            return Ok(PaperBooking::NotSent);
        }
        Ok(PaperBooking::Booked(record_execution_in(&self.conn, e, wallet)?))
    }

    /// Marks a pending fill as not copied, with the stable reason code and its detail.
    ///
    /// # Errors
    /// On a database error.
    pub fn record_rejection(&mut self, row: i64, code: &str, detail: &str) -> StoreResult<()> {
        exec(
            &self.conn,
            "UPDATE fills SET status = 'rejected', reason = ?2, detail = ?3 WHERE id = ?1 AND status = 'pending'",
            params![row, code, detail],
        )?;
        Ok(())
    }

    /// Fills journaled but not finished (for recovery at start), oldest first, with their intents.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn unfinished(&self) -> StoreResult<Vec<PendingFill>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {FILL_COLS}, i.shares, i.limit_price, i.target_price, i.order_type, i.fill_id IS NOT NULL \
             FROM fills f LEFT JOIN intents i ON i.fill_id = f.id \
             WHERE f.status = 'pending' AND f.suspect = 0 AND f.orphaned = 0 \
             AND NOT (f.provisional = 1 AND f.triggered_by IS NULL) ORDER BY f.block_number, f.log_index"
        ))?;
        let rows = st.query_map([], |r| {
            Ok((
                fill_from_row(r)?,
                r.get::<_, String>(13)?,
                (r.get::<_, Option<i64>>(18)?, r.get::<_, Option<i64>>(19)?, r.get::<_, Option<i64>>(20)?),
                r.get::<_, Option<String>>(21)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (raw, token, (shares, limit, target), ot) = r?;
            let (row, fill) = parse_fill(raw, &token)?;
            let intent = match (shares, limit, target) {
                (Some(s), Some(l), Some(t)) => Some(OrderIntent {
                    fill_id: fill.id,
                    fill_row: row,
                    wallet: fill.wallet,
                    token_id: fill.token_id,
                    side: fill.side,
                    shares: Shares(s),
                    limit_price: Price(l),
                    target_price: Price(t),
                    order_type: if ot.as_deref() == Some("FOK") { OrderType::Fok } else { OrderType::Fak },
                    block_ts: fill.block_ts,
                }),
                _ => None,
            };
            out.push(PendingFill { row, fill, intent, journaled: None });
        }
        Ok(out)
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

    /// Realized P&L since `day_start_ms` (the trading day's opening).
    ///
    /// # Errors
    /// On a database error.
    pub fn realized_since(&self, day_start_ms: i64) -> StoreResult<Usdc> {
        let v: i64 = query_one(
            &self.conn,
            "SELECT COALESCE(SUM(p), 0) FROM (SELECT realized_pnl AS p FROM executions WHERE executed_at_ms >= ?1 \
             UNION ALL SELECT realized_pnl FROM settlements WHERE at_ms >= ?1)",
            [day_start_ms],
            |r| r.get(0),
        )?;
        Ok(Usdc(v))
    }

    /// Realized P&L since the start of the UTC day containing `now_ms`.
    ///
    /// # Errors
    /// On a database error.
    pub fn realized_today(&self, now_ms: i64) -> StoreResult<Usdc> {
        self.realized_since(utc_day_start(now_ms))
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

    /// Copies per wallet since `since_ms`: (wallet, executed_at_ms), oldest first.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn copies_since(&self, since_ms: i64) -> StoreResult<Vec<(Address, i64)>> {
        let mut st = self.conn.prepare(
            "SELECT wallet, executed_at_ms FROM executions WHERE executed_at_ms >= ?1 ORDER BY executed_at_ms",
        )?;
        let rows = st.query_map([since_ms], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        rows.map(|r| {
            let (w, t) = r?;
            Ok((hex_addr(&w, "executions.wallet")?, t))
        })
        .collect()
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
            "SELECT tripped, code, reason, by, since_ms, reducing FROM breaker WHERE id = 1",
            [],
            |r| {
                Ok(BreakerState {
                    tripped: r.get(0)?,
                    code: r.get(1)?,
                    reason: r.get(2)?,
                    by: r.get(3)?,
                    since_ms: r.get(4)?,
                    reducing: r.get(5)?,
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
            "INSERT INTO breaker (id, tripped, code, reason, by, since_ms, reducing) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (id) DO UPDATE SET tripped = ?1, code = ?2, reason = ?3, by = ?4, since_ms = ?5, reducing = ?6",
            params![s.tripped, s.code, s.reason, s.by, s.since_ms, s.reducing],
        )?;
        Ok(())
    }

    /// Appends to the events log.
    ///
    /// # Errors
    /// On a database error.
    pub fn add_event(&self, kind: &str, message: &str) -> StoreResult<()> {
        exec(
            &self.conn,
            "INSERT INTO events (at_ms, kind, message) VALUES (?1, ?2, ?3)",
            params![now_ms(), kind, message],
        )?;
        Ok(())
    }
}

pub(super) fn load_fill(tx: &rusqlite::Connection, row: i64, token: &str) -> StoreResult<TargetFill> {
    let raw = query_one(tx, &format!("SELECT {FILL_COLS} FROM fills f WHERE f.id = ?1"), [row], fill_from_row)?;
    Ok(parse_fill(raw, token)?.1)
}

/// [`Store::record_intent`] inside a caller's transaction.
pub(crate) fn record_intent_in(tx: &Connection, i: &OrderIntent) -> StoreResult<bool> {
    let ok: bool = query_one(
        tx,
        "SELECT status = 'pending' AND suspect = 0 AND NOT EXISTS (SELECT 1 FROM intents WHERE fill_id = ?1) \
         FROM fills WHERE id = ?1",
        [i.fill_row],
        |r| r.get(0),
    )?;
    if ok {
        exec(
            tx,
            "INSERT INTO intents (fill_id, token_id, side, shares, limit_price, target_price, order_type, created_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                i.fill_row,
                i.token_id.to_string(),
                i.side.as_str(),
                i.shares.0,
                i.limit_price.0,
                i.target_price.0,
                if i.order_type == OrderType::Fok { "FOK" } else { "FAK" },
                now_ms()
            ],
        )?;
    }
    Ok(ok)
}

/// [`Store::record_execution`] inside a caller's transaction.
pub(crate) fn record_execution_in(
    tx: &rusqlite::Connection,
    e: &Execution,
    wallet: &Address,
) -> StoreResult<Option<(Position, Usdc)>> {
    let token = e.token_id.to_string();
    let before = {
        let mut st = tx.prepare_cached("SELECT shares, cost FROM positions WHERE token_id = ?1")?;
        let mut rows = st.query([&token])?;
        match rows.next()? {
            Some(r) => Position { shares: Shares(r.get(0)?), cost: Usdc(r.get(1)?) },
            None => Position::default(),
        }
    };
    let (position, realized) = crate::risk::book::position_after(before, e);
    let n = exec(
        tx,
        "INSERT OR IGNORE INTO executions (fill_id, mode, wallet, side, token_id, shares, price, usdc, realized_pnl, executed_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            e.fill_row,
            e.mode,
            addr_lower(wallet),
            e.side.as_str(),
            token,
            e.shares.0,
            e.price.0,
            e.usdc.0,
            realized.0,
            e.at_ms
        ],
    )?;
    if n != 1 {
        return Ok(None);
    }
    if position.shares.0 == 0 {
        exec(tx, "DELETE FROM positions WHERE token_id = ?1", [&token])?;
    } else {
        exec(
            tx,
            "INSERT INTO positions (token_id, shares, cost, updated_at_ms) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (token_id) DO UPDATE SET shares = ?2, cost = ?3, updated_at_ms = ?4",
            params![token, position.shares.0, position.cost.0, e.at_ms],
        )?;
    }
    exec(tx, "UPDATE fills SET status = 'executed', reason = NULL, detail = NULL WHERE id = ?1", [e.fill_row])?;
    Ok(Some((position, realized)))
}
