//! Recovery at start: the fills journaled but not finished when the daemon stopped, with the
//! intents and what was booked for them, so that each is resolved (looked up, never sent twice)
//! and reserves only what may still fill.

use super::journal::{FILL_COLS, PendingFill, fill_from_row, parse_fill};
use super::{Store, StoreResult};
use crate::domain::{OrderIntent, OrderType, Price, Shares, Usdc};

/// Withdraws the orphaned sightings whose copy never left (see
/// [`Store::defer_unacted_sightings`]): their intent and never-posted order are taken back.
fn withdraw_unsent_orphans(tx: &rusqlite::Connection) -> StoreResult<usize> {
    let rows: Vec<i64> = {
        let mut st = tx.prepare(
            "SELECT f.id FROM fills f WHERE f.provisional = 1 AND f.orphaned = 1 AND f.status = 'pending' \
             AND EXISTS (SELECT 1 FROM intents i WHERE i.fill_id = f.id) \
             AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.fill_id = f.id) \
             AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.fill_id = f.id AND (o.status != 'signed' OR o.posts > 0))",
        )?;
        st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
    };
    for row in &rows {
        tx.execute("DELETE FROM orders WHERE fill_id = ?1", [row])?;
        tx.execute("DELETE FROM intents WHERE fill_id = ?1", [row])?;
        tx.execute(
            "UPDATE fills SET status = 'withdrawn', reason = 'orphaned', \
             detail = 'its transaction left the pool before our copy was sent: the copy is taken back' WHERE id = ?1",
            [row],
        )?;
    }
    Ok(rows.len())
}

impl Store {
    /// Our fills on chain journaled above the checkpoint are forgotten at a start, as a reorg
    /// forgets them: they are journaled before the range that read them
    /// commits, so a stop between the two leaves them above it, and the blocks they came from may
    /// have been reorged away while the daemon was down, which the checkpoint's own hash does not
    /// show. The backfill reads every block above the checkpoint again, and those still on the
    /// chain come back with it (each transaction counts once). Returns how many were forgotten.
    ///
    /// # Errors
    /// On a database error.
    pub fn forget_own_fills_above_checkpoint(&mut self) -> StoreResult<usize> {
        Ok(self.forget_own_fills_above_checkpoint_paying()?.0)
    }

    /// [`Self::forget_own_fills_above_checkpoint`], with the fees those fills had booked: a running
    /// daemon's P&L of the day gives them back until the fills are read again.
    ///
    /// # Errors
    /// On a database error.
    pub fn forget_own_fills_above_checkpoint_paying(&mut self) -> StoreResult<(usize, Vec<super::ForgottenFee>)> {
        let Some((block, _)) = self.checkpoint()? else { return Ok((0, Vec::new())) };
        let tx = self.conn.savepoint()?;
        let above: i64 = tx.query_row(
            "SELECT COUNT(*) FROM own_fills WHERE block_number > ?1",
            [i64::try_from(block).unwrap_or(i64::MAX)],
            |r| r.get(0),
        )?;
        let fees = super::own_fills::rewind_own_fills(&tx, block)?;
        tx.commit()?;
        Ok((usize::try_from(above).unwrap_or(0), fees))
    }

    /// Sightings handed on at once whose copy had not left when the daemon stopped wait for their
    /// block instead: while it was down their transaction may have reverted or been dropped, and
    /// nothing follows the pool for them before recovery runs, so a copy sent at start could
    /// mirror a trade that never happened. "Not left" is no intent, or an intent whose signed
    /// order was never posted (its send is counted durably before the POST, so none reached the
    /// exchange): that intent and order are taken back, all or nothing. A block that has the
    /// fill hands it on to be copied afresh (the backfill included); one that never does leaves it
    /// uncopied, and the pool's follower makes it an orphan. Returns how many.
    ///
    /// A sighting found orphaned (its transaction dropped or replaced, before this start or as it
    /// opens, when the pool is not followed) whose copy never left is withdrawn the same way, as
    /// an orphan is that was never copied: were its trade mined after all (late, or adopted as a
    /// replacement), its block hands it on to be copied. Left pending with its intent, nothing would
    /// resolve it (no order left, and an orphan is not recovered) and its block would find a copy
    /// already made: the target's trade was never copied.
    ///
    /// The copies of fills under a reorg's cloud (their block reorged away, the rescan not past
    /// them yet) that never left are taken back the same way: the rescan hands the fill on afresh
    /// if it is mined again, and withdraws it if not. Recovered instead, a paper copy could only
    /// be booked at a later start, at a price long gone.
    ///
    /// # Errors
    /// On a database error.
    pub fn defer_unacted_sightings(&mut self) -> StoreResult<usize> {
        // A savepoint: the store actor's requests may already run inside a transaction.
        let tx = self.conn.savepoint()?;
        let unsent: Vec<i64> = {
            let mut st = tx.prepare(
                "SELECT f.id FROM fills f JOIN intents i ON i.fill_id = f.id LEFT JOIN orders o ON o.fill_id = f.id \
                 WHERE ((f.provisional = 1 AND f.orphaned = 0 AND f.triggered_by IS NOT NULL) OR f.suspect = 1) \
                 AND f.status = 'pending' AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.fill_id = f.id) \
                 AND (o.fill_id IS NULL OR (o.status = 'signed' AND o.posts = 0))",
            )?;
            st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        for row in &unsent {
            tx.execute("DELETE FROM orders WHERE fill_id = ?1", [row])?;
            tx.execute("DELETE FROM intents WHERE fill_id = ?1", [row])?;
        }
        let deferred = tx.execute(
            "UPDATE fills SET triggered_by = NULL WHERE provisional = 1 AND orphaned = 0 AND status = 'pending' \
             AND triggered_by IS NOT NULL AND NOT EXISTS (SELECT 1 FROM intents i WHERE i.fill_id = fills.id)",
            [],
        )?;
        let withdrawn = withdraw_unsent_orphans(&tx)?;
        tx.commit()?;
        Ok(deferred + withdrawn)
    }

    /// Fills journaled but not finished (for recovery at start), oldest first, with their intents:
    /// pending ones not under a reorg's cloud, and every fill whose order may still be at the
    /// exchange, whatever became of the fill since (executed in part, or taken away by a reorg
    /// or an orphaned sighting while its order was in flight): that order is looked up, holds its
    /// exposure until then, and is booked if it filled, since what we hold is ours either way. A
    /// match journaled whose execution was not (the daemon stopped between the two writes) is
    /// booked from its order row, however the fill stands now. A fill under a reorg's cloud is
    /// recovered when it has an intent (its placement waits for the rescan's word before any
    /// send, and holds its exposure meanwhile); without one, the rescan hands it on.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn unfinished(&self) -> StoreResult<Vec<PendingFill>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {FILL_COLS}, i.shares, i.limit_price, i.target_price, i.order_type, e.shares, e.usdc \
             FROM fills f LEFT JOIN intents i ON i.fill_id = f.id LEFT JOIN executions e ON e.fill_id = f.id \
             WHERE (f.status = 'pending' AND f.orphaned = 0 AND (f.suspect = 0 OR i.fill_id IS NOT NULL) \
             AND NOT (f.provisional = 1 AND f.triggered_by IS NULL)) \
             OR EXISTS (SELECT 1 FROM orders o \
             WHERE o.fill_id = f.id AND (o.status IN ('live', 'delayed', 'unknown', 'sent') \
             OR (o.status = 'matched' AND e.fill_id IS NULL))) \
             ORDER BY f.block_number, f.log_index"
        ))?;
        let rows = st.query_map([], |r| {
            Ok((
                fill_from_row(r)?,
                r.get::<_, String>(13)?,
                (r.get::<_, Option<i64>>(18)?, r.get::<_, Option<i64>>(19)?, r.get::<_, Option<i64>>(20)?),
                r.get::<_, Option<String>>(21)?,
                (r.get::<_, Option<i64>>(22)?, r.get::<_, Option<i64>>(23)?),
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (raw, token, (shares, limit, target), ot, (booked_shares, booked_usdc)) = r?;
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
            let booked = booked_shares.zip(booked_usdc).map(|(s, u)| (Shares(s), Usdc(u)));
            out.push(PendingFill { row, fill, intent, journaled: None, booked });
        }
        Ok(out)
    }
}
