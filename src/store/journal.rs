//! Journal operations: a fill's row and the target's position, intents before execution, outcomes
//! after. The book, breaker state and events are in [`super::book`]; block ranges and reorgs in
//! [`super::ranges`].

use alloy::primitives::Address;
use rusqlite::{Connection, OptionalExtension, Row, params};

pub(crate) use super::book::write_position;
use super::{Store, StoreResult, dec_u256, hex_addr, hex_b256, now_ms};
use crate::domain::{
    ExchangeVersion, Execution, FillId, OrderIntent, OrderType, Price, Role, Shares, Side, TargetFill, Usdc, addr_lower,
};
use crate::risk::{Position, Written};

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
    Booked(Option<(Written, Usdc)>),
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
    /// What the journal already booked for this fill's order (shares, pUSD), found at start: an
    /// order that filled in part before a restart reserves only the rest.
    pub booked: Option<(Shares, Usdc)>,
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
            role: match s[6].as_str() {
                "maker" => Role::Maker,
                "taker" => Role::Taker,
                other => return Err(corrupt("role", other)),
            },
            side: Side::parse(&s[7]).ok_or_else(|| corrupt("side", &s[7]))?,
            token_id: dec_u256(token, "token_id")?,
            shares: Shares(n[4]),
            usdc: Usdc(n[5]),
            price: Price(n[6]),
            fee: n[7],
            exchange: hex_addr(&s[3], "exchange")?,
            version: match s[4].as_str() {
                "V1" => ExchangeVersion::V1,
                "V2" => ExchangeVersion::V2,
                other => return Err(corrupt("version", other)),
            },
            block_number: n[2].unsigned_abs(),
            block_hash: hex_b256(&s[2], "block_hash")?,
            log_index: n[1].unsigned_abs(),
            block_ts: n[3].unsigned_abs(),
        },
    ))
}

/// SQL condition on an execution `e`: still in our books. An execution whose order matched on the
/// CLOB but never settled on chain was taken out of them (`orders.settled = -1`), with its P&L,
/// and stays out until the settlement check puts it back (`2`: settled late, its P&L recomputed
/// then).
pub(crate) const IN_BOOKS: &str =
    "NOT EXISTS (SELECT 1 FROM orders o WHERE o.fill_id = e.fill_id AND o.settled IN (-1, 2))";

impl Store {
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
    pub fn record_execution(&mut self, e: &Execution, wallet: &Address) -> StoreResult<Option<(Written, Usdc)>> {
        let tx = self.conn.savepoint()?;
        let fresh = record_execution_in(&tx, e, wallet)?;
        tx.commit()?;
        Ok(fresh)
    }

    /// [`Store::record_execution`], saying what was booked: all of `e`, or only the part it adds
    /// to an execution booked before (our fill on chain booked part of the order first). An
    /// answer that adds nothing books nothing (`None`).
    ///
    /// # Errors
    /// On a database error.
    pub fn record_execution_part(
        &mut self,
        e: &Execution,
        wallet: &Address,
    ) -> StoreResult<Option<(Execution, Written, Usdc)>> {
        let tx = self.conn.savepoint()?;
        let had: Option<(i64, i64, i64)> = tx
            .query_row("SELECT shares, usdc, executed_at_ms FROM executions WHERE fill_id = ?1", [e.fill_row], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let booked = record_execution_in(&tx, e, wallet)?;
        tx.commit()?;
        Ok(booked.map(|(position, realized)| {
            let part = match had {
                // Dated to the execution it grows, as the journal's sums date its P&L.
                Some((shares, usdc, at_ms)) => {
                    let (shares, usdc) = (Shares(e.shares.0 - shares), Usdc(e.usdc.0 - usdc));
                    Execution { shares, usdc, price: Price::average(shares, usdc), at_ms, ..e.clone() }
                }
                None => e.clone(),
            };
            (part, position, realized)
        }))
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
        // An intent journaled before a restart is executed only while its fill stands: one under a
        // reorg's cloud stays pending (recovered again at the next start), one gone is not a trade.
        if !fresh && !matches!(self.fill_standing(i.fill_row)?, FillStanding::Stands | FillStanding::Sighted) {
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

    /// Whether fill `row` is still a trade to copy: standing; a suspect of a reorg the rescan has
    /// not seen again yet (it is decided within a few blocks); or gone (withdrawn, refused, an
    /// orphaned sighting, copied and then taken as gone by a reorg, no such row). An order already sent for one that does not stand is only
    /// looked up; one for a suspect waits for the rescan's word before it is sent again.
    ///
    /// # Errors
    /// On a database error.
    pub fn fill_standing(&self, row: i64) -> StoreResult<FillStanding> {
        let found: Option<(bool, bool, bool)> = self
            .conn
            .query_row(
                "SELECT status IN ('pending', 'executed') AND orphaned = 0 AND reorged_after_copy = 0, suspect, \
                 provisional FROM fills WHERE id = ?1",
                [row],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        Ok(match found {
            Some((true, false, false)) => FillStanding::Stands,
            Some((true, false, true)) => FillStanding::Sighted,
            Some((true, true, _)) => FillStanding::Suspect,
            _ => FillStanding::Gone,
        })
    }

    /// Marks a pending fill as not copied, with the stable reason code and its detail. A fill
    /// under a reorg's cloud (`suspect`) with no intent stays pending: the copier's refusal may be
    /// the reorg's doing (a SELL sized while the BUY before it, in the same block, could not be
    /// journaled), and the rescan hands it on again once its block is confirmed, or the sweep
    /// withdraws it. An order's own outcome (its intent journaled) is always recorded.
    ///
    /// # Errors
    /// On a database error.
    pub fn record_rejection(&mut self, row: i64, code: &str, detail: &str) -> StoreResult<()> {
        if code == crate::risk::reason::TARGET_FILL_GONE && self.take_back_gone_copy(row, detail)? {
            return Ok(());
        }
        exec(
            &self.conn,
            "UPDATE fills SET status = 'rejected', reason = ?2, detail = ?3 WHERE id = ?1 AND status = 'pending' \
             AND (suspect = 0 OR EXISTS (SELECT 1 FROM intents WHERE fill_id = ?1))",
            params![row, code, detail],
        )?;
        Ok(())
    }

    /// Marks a pending fill as not copied by a refusal made before its copy had an intent. A fill
    /// can come to the copier twice (a reorg's rescan or a sighting mined after it was withdrawn
    /// hands it on again while its first copy is still being decided): the second copy's refusal
    /// (a SELL finding every share claimed by the first's order, say) must not mark the fill
    /// refused under the first copy's order, which would then find its trade "gone" and never be
    /// sent. So a fill with an intent is left to its order's own outcome; a suspect one stays
    /// pending, as in [`Self::record_rejection`]. Returns whether the fill was marked.
    ///
    /// # Errors
    /// On a database error.
    pub fn record_refusal(&mut self, row: i64, code: &str, detail: &str) -> StoreResult<bool> {
        let changed = exec(
            &self.conn,
            "UPDATE fills SET status = 'rejected', reason = ?2, detail = ?3 WHERE id = ?1 AND status = 'pending' \
             AND suspect = 0 AND NOT EXISTS (SELECT 1 FROM intents WHERE fill_id = ?1)",
            params![row, code, detail],
        )?;
        Ok(changed > 0)
    }
}

impl Store {
    /// A copy refused because the target's trade went from the chain before our order left: its
    /// intent and never-posted order are taken back and the fill withdrawn (`orphaned`, or
    /// `reorged_out` for a block swept away), as if it had gone before it was copied. Kept as a
    /// refusal with its intent, a trade mined after all (the same transaction late, a replacement,
    /// a re-inclusion) would find a copy already made and never be copied. False (nothing done)
    /// when the order was ever posted or anything was booked (then only lookups decide), or when
    /// the trade stands again already (mined between the refusal and this write: the refusal
    /// stands, as it did before copies were taken back).
    fn take_back_gone_copy(&mut self, row: i64, detail: &str) -> StoreResult<bool> {
        let tx = self.conn.savepoint()?;
        let unsent: bool = query_one(
            &tx,
            "SELECT f.status = 'pending' AND (f.orphaned = 1 OR f.reorged_after_copy = 1) \
             AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.fill_id = f.id) \
             AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.fill_id = f.id AND o.posts > 0) FROM fills f WHERE f.id = ?1",
            [row],
            |r| r.get(0),
        )?;
        if !unsent {
            return Ok(false);
        }
        exec(&tx, "DELETE FROM orders WHERE fill_id = ?1", [row])?;
        exec(&tx, "DELETE FROM intents WHERE fill_id = ?1", [row])?;
        exec(
            &tx,
            "UPDATE fills SET status = 'withdrawn', reason = CASE WHEN orphaned = 1 THEN 'orphaned' ELSE 'reorged_out' END, \
             detail = ?2 WHERE id = ?1",
            params![row, detail],
        )?;
        tx.commit()?;
        Ok(true)
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

/// Our position in `token` as the journal has it (none: zero).
pub(super) fn position_of(tx: &Connection, token: &str) -> StoreResult<Position> {
    let mut st = tx.prepare_cached("SELECT shares, cost FROM positions WHERE token_id = ?1")?;
    let mut rows = st.query([token])?;
    Ok(match rows.next()? {
        Some(r) => Position { shares: Shares(r.get(0)?), cost: Usdc(r.get(1)?) },
        None => Position::default(),
    })
}

/// The next number in the order live bookings are made in (see the `booking_seq` table). Paper
/// executions take none: they are never taken out of the books, and their copy path stays one
/// write shorter.
pub(crate) fn next_booking(tx: &rusqlite::Connection) -> StoreResult<i64> {
    Ok(tx.prepare_cached("UPDATE booking_seq SET n = n + 1 WHERE id = 1 RETURNING n")?.query_row([], |r| r.get(0))?)
}

/// [`Store::record_execution`] inside a caller's transaction.
pub(crate) fn record_execution_in(
    tx: &rusqlite::Connection,
    e: &Execution,
    wallet: &Address,
) -> StoreResult<Option<(Written, Usdc)>> {
    let token = e.token_id.to_string();
    let before = position_of(tx, &token)?;
    let (position, booked) = crate::risk::book::booked_on(before, e);
    let realized = booked.realized;
    // A number taken for an execution already booked (a later answer growing it) is left unused.
    let seq = if e.mode == crate::domain::ExecMode::Paper { None } else { Some(next_booking(tx)?) };
    let n = exec(
        tx,
        "INSERT OR IGNORE INTO executions (fill_id, mode, wallet, side, token_id, shares, price, usdc, realized_pnl, executed_at_ms, held, released, booked_seq) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            e.fill_row,
            e.mode.as_str(),
            addr_lower(wallet),
            e.side.as_str(),
            token,
            e.shares.0,
            e.price.0,
            e.usdc.0,
            realized.0,
            e.at_ms,
            booked.held.0,
            (e.side == Side::Sell).then_some(booked.released.0),
            seq
        ],
    )?;
    if n != 1 {
        return grow_from_answer(tx, e);
    }
    let written = write_position(tx, &token, position, e.at_ms)?;
    // Dated when booked: every copy booked before it was stamped before it.
    let by_operator = *wallet == crate::domain::OPERATOR;
    super::book::note_operator_close(tx, by_operator, e.side, &token, position, e.at_ms.max(now_ms()))?;
    exec(tx, "UPDATE fills SET status = 'executed', reason = NULL, detail = NULL WHERE id = ?1", [e.fill_row])?;
    Ok(Some((written, realized)))
}

/// An answer for an order whose execution is booked already: a later answer may say it filled
/// further (a GTD order resting, a match booked in part from the chain first); only that part is
/// booked. Not once the settlement check took out what the chain never settled of it: the CLOB's
/// word on that match was disproved, and only our fills on chain grow it again.
fn grow_from_answer(tx: &rusqlite::Connection, e: &Execution) -> StoreResult<Option<(Written, Usdc)>> {
    let disproved: bool = query_one(
        tx,
        "SELECT EXISTS (SELECT 1 FROM orders WHERE fill_id = ?1 AND clob_shares IS NOT NULL)",
        [e.fill_row],
        |r| r.get(0),
    )?;
    if disproved {
        return Ok(None);
    }
    let grown = super::own_fills::grow_execution_in(tx, e.fill_row, e.shares, e.usdc, e.at_ms)?;
    if grown.is_some() {
        // More than our fills on chain hold is booked now: the order waits for its settlement
        // again, so what never settles is taken out when overdue. (An order settled before
        // own_fills was kept has no rows there: its settlement stands.)
        exec(
            tx,
            "UPDATE orders SET settled = 0, updated_at_ms = ?3 WHERE fill_id = ?1 AND settled = 1 \
             AND EXISTS (SELECT 1 FROM own_fills f WHERE f.order_id = orders.order_id) \
             AND (SELECT SUM(f.shares) FROM own_fills f WHERE f.order_id = orders.order_id) + ?4 < ?2",
            params![e.fill_row, e.shares.0, super::now_ms(), super::settlement::SETTLED_WITHIN.0],
        )?;
    }
    Ok(grown.map(|g| (g.position, g.realized)))
}

/// Whether a copied target fill is still a trade on chain ([`Store::fill_standing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillStanding {
    /// On the chain we follow.
    Stands,
    /// Seen in the pool, its block not read yet, not orphaned so far: it stands as long as the
    /// pool's follower runs (it orphans a dropped transaction within a few rounds), which a
    /// placement recovered at a start cannot take for granted.
    Sighted,
    /// Its block was reorged away and the rescan has not seen it again yet.
    Suspect,
    /// Withdrawn, refused or orphaned: no longer a trade to copy.
    Gone,
}
