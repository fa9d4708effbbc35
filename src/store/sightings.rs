//! Fills seen before their block: journaled provisional from a pending settlement, confirmed by
//! the mined log (the same row: the identity is the same), or orphaned when their transaction is
//! dropped, replaced or reverted. Every source's first sighting of a fill is kept, so the lead of
//! each source over the mined log is measured in production.

use std::collections::{BTreeMap, HashSet};

use alloy::primitives::{Address, B256};
use rusqlite::{Connection, OptionalExtension, params};

use super::journal::{PendingFill, exec, insert_fill, load_fill, move_target_position, query_one};
use super::{Store, StoreResult, hex_b256, now_ms};
use crate::domain::{TargetFill, addr_lower};

/// Records `source`'s first sighting of fill `row`.
pub(super) fn record_sighting(tx: &Connection, row: i64, source: &str, at_ms: i64) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT OR IGNORE INTO sightings (fill_id, source, seen_at_ms) VALUES (?1, ?2, ?3)",
        params![row, source, at_ms],
    )?;
    Ok(())
}

/// The mined log of a provisional fill: its block and exact amounts replace the provisional ones,
/// an orphan that was mined after all is one no more, and a fill whose target waited for the
/// block is handed on (returned).
pub(super) fn confirm(tx: &Connection, row: i64, mined: &TargetFill) -> StoreResult<Option<PendingFill>> {
    let token = mined.token_id.to_string();
    let before = load_fill(tx, row, &token)?;
    let (status, triggered, has_intent, orphaned): (String, Option<String>, bool, bool) = query_one(
        tx,
        "SELECT status, triggered_by, EXISTS (SELECT 1 FROM intents WHERE fill_id = fills.id), orphaned FROM fills WHERE id = ?1",
        [row],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let revive = orphaned && status == "withdrawn" && !has_intent;
    let hand_on = !has_intent && (revive || (status == "pending" && triggered.is_none()));
    exec(
        tx,
        "UPDATE fills SET provisional = 0, orphaned = 0, block_number = ?2, block_hash = ?3, log_index = ?4, \
         block_ts = ?5, shares = ?6, usdc = ?7, price = ?8, fee = ?9, \
         status = CASE WHEN ?10 THEN 'pending' ELSE status END, reason = CASE WHEN ?10 THEN NULL ELSE reason END, \
         triggered_by = CASE WHEN ?11 THEN 'chain' ELSE triggered_by END WHERE id = ?1",
        params![
            row,
            mined.block_number as i64,
            mined.block_hash.to_string(),
            mined.log_index as i64,
            mined.block_ts as i64,
            mined.shares.0,
            mined.usdc.0,
            mined.price.0,
            mined.fee,
            revive,
            hand_on
        ],
    )?;
    if orphaned {
        // Its orphaning took the target's fill back; the chain says it happened.
        move_target_position(tx, mined, 1)?;
    } else if (before.shares, before.side) != (mined.shares, mined.side) {
        // The taker's provisional amounts were at its limit; the log has what it really got.
        move_target_position(tx, &before, -1)?;
        move_target_position(tx, mined, 1)?;
    }
    Ok(hand_on.then(|| PendingFill { row, fill: mined.clone(), intent: None }))
}

/// A provisional fill of another transaction with the same order, side, token and amount as
/// `mined`: the operator replaced the settlement (a new transaction hash for the same match). It
/// is re-keyed to the mined transaction, so the replacement confirms it instead of being copied
/// a second time. Its row, if there is one.
pub(super) fn adopt_replacement(tx: &Connection, mined: &TargetFill) -> StoreResult<Option<i64>> {
    let row: Option<i64> = tx
        .prepare_cached(
            "SELECT id FROM fills INDEXED BY fills_provisional WHERE provisional = 1 AND order_hash = ?1 AND wallet = ?2 \
             AND side = ?3 AND token_id = ?4 AND shares = ?5 AND tx_hash != ?6 ORDER BY id LIMIT 1",
        )?
        .query_row(
            params![
                mined.id.order_hash.to_string(),
                addr_lower(&mined.wallet),
                mined.side.as_str(),
                mined.token_id.to_string(),
                mined.shares.0,
                mined.id.tx_hash.to_string()
            ],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = row {
        exec(
            tx,
            "UPDATE fills SET tx_hash = ?2, occurrence = ?3 WHERE id = ?1",
            params![id, mined.id.tx_hash.to_string(), mined.id.occurrence],
        )?;
    }
    Ok(row)
}

/// A provisional fill taken back: what it was and whether we had copied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// The fill as it was seen pending.
    pub fill: TargetFill,
    /// We had acted on it (an intent exists): our copy stays and is reconciled like any position.
    pub copied: bool,
}

/// Detection figures from the journal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectionStats {
    /// Per source, each fill's lead over the mined log in ms (positive: the source saw it first),
    /// sorted.
    pub leads: BTreeMap<String, Vec<i64>>,
    /// Fills per source that were seen there and never mined.
    pub orphans: u64,
    /// Fills seen only on chain.
    pub chain_only: u64,
}

impl Store {
    /// Journals fills seen in a pending transaction by `source` (provisional, block unknown).
    /// Those of wallets in `act_now` are handed to the copier at once (their trigger is
    /// `pending`); the others wait for the mined log. Returns the fills to copy now.
    ///
    /// # Errors
    /// On a database error (nothing is written).
    pub fn journal_pending(
        &mut self,
        fills: &[TargetFill],
        source: &str,
        act_now: &HashSet<Address>,
    ) -> StoreResult<Vec<PendingFill>> {
        let now = now_ms();
        let tx = self.conn.savepoint()?;
        let mut out = Vec::new();
        for f in fills {
            let act = act_now.contains(&f.wallet);
            let inserted = insert_fill(&tx, f, now, true, act.then_some(source))?;
            let row: i64 = query_one(
                &tx,
                "SELECT id FROM fills WHERE tx_hash = ?1 AND order_hash = ?2 AND occurrence = ?3",
                params![f.id.tx_hash.to_string(), f.id.order_hash.to_string(), f.id.occurrence],
                |r| r.get(0),
            )?;
            record_sighting(&tx, row, source, now)?;
            if inserted && act {
                out.push(PendingFill { row, fill: f.clone(), intent: None });
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Marks the provisional fills of transaction `tx_hash` orphaned: never copied if not acted on
    /// yet, the target's tracked position taken back. Returns them.
    ///
    /// # Errors
    /// On a database error.
    pub fn orphan_tx(&mut self, tx_hash: B256) -> StoreResult<Vec<Orphan>> {
        let tx = self.conn.savepoint()?;
        let rows: Vec<(i64, String, bool)> = {
            let mut st = tx.prepare_cached(
                "SELECT id, token_id, EXISTS (SELECT 1 FROM intents WHERE fill_id = fills.id) FROM fills \
                 INDEXED BY fills_provisional WHERE provisional = 1 AND orphaned = 0 AND tx_hash = ?1",
            )?;
            st.query_map([tx_hash.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        for (row, token, copied) in rows {
            let fill = load_fill(&tx, row, &token)?;
            exec(
                &tx,
                "UPDATE fills SET orphaned = 1, status = CASE WHEN status = 'pending' AND ?2 = 0 THEN 'withdrawn' ELSE status END, \
                 reason = CASE WHEN status = 'pending' AND ?2 = 0 THEN 'orphaned' ELSE reason END WHERE id = ?1",
                params![row, copied],
            )?;
            move_target_position(&tx, &fill, -1)?;
            out.push(Orphan { fill, copied });
        }
        tx.commit()?;
        Ok(out)
    }

    /// Transactions with provisional fills still waiting for their block.
    ///
    /// # Errors
    /// On a database error or a corrupt hash.
    pub fn provisional_txs(&self) -> StoreResult<Vec<B256>> {
        let mut st = self.conn.prepare_cached(
            "SELECT DISTINCT tx_hash FROM fills INDEXED BY fills_provisional WHERE provisional = 1 AND orphaned = 0",
        )?;
        let hashes: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        hashes.iter().map(|h| hex_b256(h, "fills.tx_hash")).collect()
    }

    /// Every sighting of fill `row`: (source, unix ms), earliest first.
    ///
    /// # Errors
    /// On a database error.
    pub fn sightings_of(&self, row: i64) -> StoreResult<Vec<(String, i64)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT source, seen_at_ms FROM sightings WHERE fill_id = ?1 ORDER BY seen_at_ms")?;
        let rows = st.query_map([row], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Each source's lead over the mined log for fills seen since `since_ms`, and the orphans.
    ///
    /// # Errors
    /// On a database error.
    pub fn detection_stats(&self, since_ms: i64) -> StoreResult<DetectionStats> {
        let mut out = DetectionStats::default();
        let mut st = self.conn.prepare(
            "SELECT s.source, c.seen_at_ms - s.seen_at_ms FROM sightings s \
             JOIN sightings c ON c.fill_id = s.fill_id AND c.source = 'chain' \
             WHERE s.source != 'chain' AND s.seen_at_ms >= ?1",
        )?;
        for r in st.query_map([since_ms], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (source, lead) = r?;
            out.leads.entry(source).or_default().push(lead);
        }
        for v in out.leads.values_mut() {
            v.sort_unstable();
        }
        out.orphans = self.conn.query_row(
            "SELECT COUNT(*) FROM fills WHERE orphaned = 1 AND seen_at_ms >= ?1",
            [since_ms],
            |r| r.get::<_, i64>(0),
        )? as u64;
        out.chain_only = self.conn.query_row(
            "SELECT COUNT(*) FROM sightings c WHERE c.source = 'chain' AND c.seen_at_ms >= ?1 \
             AND NOT EXISTS (SELECT 1 FROM sightings o WHERE o.fill_id = c.fill_id AND o.source != 'chain')",
            [since_ms],
            |r| r.get::<_, i64>(0),
        )? as u64;
        Ok(out)
    }
}
