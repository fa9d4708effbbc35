//! Fills in: the fills of a block range are journaled with the checkpoint in one transaction, so
//! that a crash can never skip or half-record a range; a reorg rewinds the checkpoint and makes
//! the fills above the common ancestor suspects until the rescan sees them again.

use alloy::primitives::B256;
use rusqlite::{Connection, OptionalExtension, params};

use super::journal::{FILL_COLS, PendingFill, exec, insert_fill, load_fill, query_one};
use super::{Store, StoreResult, hex_b256, now_ms};
use crate::domain::TargetFill;

/// What journaling a block range did.
#[derive(Debug, Clone, Default)]
pub struct JournalOutcome {
    /// Fills to run through the pipeline: new ones, and ones a reorg withdrew and the chain re-included.
    pub to_copy: Vec<PendingFill>,
    /// Fills withdrawn by a reorg before we acted: never to be copied.
    pub withdrawn: Vec<TargetFill>,
    /// Fills we had already copied whose transaction left the chain.
    pub reorged_after_copy: Vec<TargetFill>,
    /// Fills reported gone (orphaned, or copied and then reorged out) mined after all.
    pub unorphaned: Vec<TargetFill>,
    /// Copied fills of wallets no longer watched that a reorg put in doubt: the rescan cannot
    /// check them, and they stand as booked (the operator is told).
    pub unchecked: Vec<TargetFill>,
}

/// What the journal knows of a fill seen again.
struct Known {
    row: i64,
    status: super::FillStatus,
    suspect: bool,
    has_intent: bool,
    provisional: bool,
    /// Copied, then swept as gone from the chain.
    reorged_after_copy: bool,
    /// Copied, put in doubt by a reorg while its wallet was not watched (see [`sweep_gone`]).
    unchecked: bool,
}

/// Whether detection left anything for a range's fills to meet: asked once per range, so that its
/// bookkeeping costs nothing when there is nothing for it.
#[derive(Clone, Copy)]
struct Waiting {
    provisional: bool,
    staged: bool,
    /// Fills a reorg made suspects are waiting to be seen again.
    suspects: bool,
}

/// What a rewind did (see [`Store::rewind`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewound {
    /// Fills that became reorg suspects.
    pub suspects: usize,
    /// Fees of ours forgotten with their fills: realized P&L gives them back until the rescan
    /// reads those fills again.
    pub fees_forgotten: Vec<super::ForgottenFee>,
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
        let (provisional, staged) = super::sightings::anything_waiting(&tx, now)?;
        let since = to.0.saturating_sub(super::sightings::REINCLUDED_ADOPTABLE_BLOCKS) as i64;
        let suspects: bool = tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM fills INDEXED BY fills_suspect WHERE suspect = 1) \
                 OR EXISTS (SELECT 1 FROM fills INDEXED BY fills_reorged WHERE reorged_after_copy = 1 \
                 AND block_number >= ?1) \
                 OR EXISTS (SELECT 1 FROM fills INDEXED BY fills_unchecked WHERE unchecked = 1 AND block_number >= ?1)",
            )?
            .query_row([since], |r| r.get(0))?;
        let waiting = Waiting { provisional, staged, suspects };
        for f in fills {
            journal_fill(&tx, f, now, waiting, &mut out)?;
        }
        if sweep {
            sweep_gone(&tx, to.0.saturating_sub(REINCLUDED_WITHIN), &mut out)?;
        }
        advance_checkpoint(&tx, to, blocks, now)?;
        tx.commit()?;
        Ok(out)
    }

    /// Rewinds to the common ancestor after a reorg: fills above it become suspects until the rescan
    /// sees them again (they keep their status: one already copied stays copied), and our own
    /// fills above it are forgotten until it does, with the fees they had booked.
    ///
    /// # Errors
    /// On a database error.
    pub fn rewind(&mut self, ancestor: (u64, B256)) -> StoreResult<Rewound> {
        let tx = self.conn.savepoint()?;
        let n = exec(
            &tx,
            // A fill already taken as gone by an earlier reorg (withdrawn, or flagged after its copy)
            // is not a suspect again: its target's position was given back once, and a deeper
            // reorg must not give it back twice. Seen again, it is still adopted (`journal_fill`).
            "UPDATE fills SET suspect = 1 WHERE block_number > ?1 AND status != 'withdrawn' AND reorged_after_copy = 0",
            [ancestor.0 as i64],
        )?;
        exec(&tx, "DELETE FROM recent_blocks WHERE number > ?1", [ancestor.0 as i64])?;
        let fees_forgotten = super::own_fills::rewind_own_fills(&tx, ancestor.0)?;
        exec(
            &tx,
            "INSERT INTO checkpoint (id, block_number, block_hash, updated_at_ms) VALUES (1, ?1, ?2, ?3) \
             ON CONFLICT (id) DO UPDATE SET block_number = ?1, block_hash = ?2, updated_at_ms = ?3",
            params![ancestor.0 as i64, ancestor.1.to_string(), now_ms()],
        )?;
        tx.commit()?;
        Ok(Rewound { suspects: n, fees_forgotten })
    }
}

/// Journals one fill of a range: a new one is handed on; one seen before is confirmed (seen
/// pending first) or revived (re-included after a reorg).
fn journal_fill(
    tx: &Connection,
    f: &TargetFill,
    now: i64,
    waiting: Waiting,
    out: &mut JournalOutcome,
) -> StoreResult<()> {
    if waiting.provisional && super::sightings::row_of(tx, f)?.is_none() {
        super::sightings::adopt_replacement(tx, f, now)?;
    }
    if waiting.suspects {
        super::sightings::adopt_reincluded(tx, f)?;
    }
    if let Some(row) = insert_fill(tx, f, now, false, Some("chain"))? {
        if waiting.staged {
            super::sightings::link_staged(tx, row, f)?;
        }
        out.to_copy.push(PendingFill { row, fill: f.clone(), intent: None, journaled: None, booked: None });
        return Ok(());
    }
    let k = known(tx, f)?;
    // The chain's sighting of a fill it shows first is the fill's own seen_at_ms.
    if waiting.staged {
        super::sightings::link_staged(tx, k.row, f)?;
    }
    if k.provisional {
        // Seen pending first: the mined log confirms it (and hands it on if the target's trigger
        // waited for the block).
        super::sightings::record_sighting(tx, k.row, "chain", now)?;
        let (hand_on, was_orphan) = super::sightings::confirm(tx, k.row, f)?;
        out.to_copy.extend(hand_on);
        if was_orphan {
            out.unorphaned.push(f.clone());
        }
        return Ok(());
    }
    // Seen before: a re-inclusion after a reorg (same identity, maybe another block), also one
    // mined again later than the sweep waited for (it was taken as gone: taken back now).
    let revive = k.status == super::FillStatus::Withdrawn && !k.has_intent;
    // An unchecked copy seen again is simply on the chain: its target's position was never given
    // back, so nothing moves but its place.
    if k.suspect || revive || k.reorged_after_copy || k.unchecked {
        exec(
            tx,
            "UPDATE fills SET suspect = 0, reorged_after_copy = 0, unchecked = 0, block_number = ?2, block_hash = ?3, \
             log_index = ?4, status = CASE WHEN ?5 THEN 'pending' ELSE status END, \
             reason = CASE WHEN ?5 THEN NULL ELSE reason END WHERE id = ?1",
            params![k.row, f.block_number as i64, f.block_hash.to_string(), f.log_index as i64, revive],
        )?;
        if revive || k.reorged_after_copy {
            // The sweep took the target's fill back; the chain says it happened.
            super::journal::move_target_position(tx, f, 1)?;
        }
        if k.reorged_after_copy {
            // Reported as copied and then gone: said to stand after all.
            out.unorphaned.push(f.clone());
        }
        if revive || (k.status == super::FillStatus::Pending && !k.has_intent) {
            out.to_copy.push(PendingFill { row: k.row, fill: f.clone(), intent: None, journaled: None, booked: None });
        }
    }
    Ok(())
}

/// What the journal holds for a fill already journaled, by its identity.
fn known(tx: &Connection, f: &TargetFill) -> StoreResult<Known> {
    let key = params![f.id.tx_hash.to_string(), f.id.order_hash.to_string(), f.id.occurrence];
    Ok(query_one(
        tx,
        "SELECT id, status, suspect, EXISTS (SELECT 1 FROM intents WHERE fill_id = fills.id), provisional, \
         reorged_after_copy, unchecked FROM fills WHERE tx_hash = ?1 AND order_hash = ?2 AND occurrence = ?3",
        key,
        |r| {
            Ok(Known {
                row: r.get(0)?,
                status: r.get(1)?,
                suspect: r.get(2)?,
                has_intent: r.get(3)?,
                provisional: r.get(4)?,
                reorged_after_copy: r.get(5)?,
                unchecked: r.get(6)?,
            })
        },
    )?)
}

/// How many blocks past its old height a reorged fill is looked for before it is taken as gone: a
/// transaction a reorg drops usually goes back to the pool and is mined again a block or two
/// later, and reading only up to the old height would call it gone (a false "copied, then
/// reorged" alarm, a refused fill decided again).
const REINCLUDED_WITHIN: u64 = 2;

/// Suspects the rescan has passed (up to block `to`) without seeing again are gone from the chain:
/// one already copied (or with its order journaled) is flagged, a pending one withdrawn (a refused one keeps its refusal: it is
/// not decided again if it comes back). The partial index keeps this sweep, run for every range,
/// independent of the journal's size.
///
/// A copied suspect of a wallet no longer watched (removed from the targets since it traded)
/// cannot be seen again, since the rescan reads only the wallets watched: it is not taken as gone
/// (that would report a copy reorged away, and give back the target's position, on no evidence);
/// its flag is lifted and the operator told it was not checked. Only a copy done with: one whose
/// order may still be in flight, or a fill not copied yet, is decided as any other, so nothing is
/// sent for a trade that may be gone.
fn sweep_gone(tx: &Connection, to: u64, out: &mut JournalOutcome) -> StoreResult<()> {
    let unwatched: Vec<(i64, String)> = {
        let mut st = tx.prepare_cached(
            "SELECT f.id, f.token_id FROM fills f INDEXED BY fills_suspect WHERE f.suspect = 1 \
             AND f.block_number <= ?1 AND f.status = 'executed' AND EXISTS (SELECT 1 FROM running_targets) \
             AND f.wallet NOT IN (SELECT address FROM running_targets) AND NOT EXISTS (SELECT 1 FROM orders o \
             WHERE o.fill_id = f.id AND o.status IN ('signed', 'sent', 'unknown', 'live', 'delayed'))",
        )?;
        let rows = st.query_map([to as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (row, token) in unwatched {
        exec(tx, "UPDATE fills SET suspect = 0, unchecked = 1 WHERE id = ?1", [row])?;
        let fill = load_fill(tx, row, &token)?;
        // Kept with the change itself: the alert the feed sends after the commit may be lost.
        let note = format!(
            "fill #{row} of {} in block {} was put in doubt by a reorg; its wallet is no longer watched, so it was \
             not checked again and stands as booked",
            fill.wallet, fill.block_number
        );
        exec(tx, "INSERT INTO events (at_ms, kind, message) VALUES (?1, 'reorg', ?2)", params![now_ms(), note])?;
        out.unchecked.push(fill);
    }
    let gone: Vec<(i64, String, super::FillStatus, bool)> = {
        let mut st = tx.prepare_cached(&format!(
            "SELECT {FILL_COLS}, f.status, EXISTS (SELECT 1 FROM intents i WHERE i.fill_id = f.id) \
             FROM fills f INDEXED BY fills_suspect WHERE f.suspect = 1 AND f.block_number <= ?1"
        ))?;
        let rows = st.query_map([to as i64], |r| Ok((r.get(0)?, r.get::<_, String>(13)?, r.get(18)?, r.get(19)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (row, token, status, has_intent) in gone {
        let fill = load_fill(tx, row, &token)?;
        // A pending fill with an intent has an order journaled, maybe sent, whose outcome is still
        // being resolved: it is flagged as a copied one is, never withdrawn. Withdrawn, it would
        // not be adopted when the settlement comes back (under its own transaction or another)
        // and would be copied a second time beside the order in flight, or never if that order
        // had not left yet. Flagged, the executor only looks the order up, and the fill stands
        // again when it is mined again.
        let copied = status == super::FillStatus::Executed || (status == super::FillStatus::Pending && has_intent);
        // The target's tracked position takes back a trade that did not happen, where coming
        // back gives it back (a copied one, flagged; a pending one without an order). A refused
        // fill keeps nothing that would say so: it stays counted.
        let gives_back = copied || (status == super::FillStatus::Pending && !has_intent);
        if gives_back {
            super::journal::move_target_position(tx, &fill, -1)?;
        }
        if copied {
            exec(tx, "UPDATE fills SET suspect = 0, reorged_after_copy = 1 WHERE id = ?1", [row])?;
            out.reorged_after_copy.push(fill);
        } else {
            exec(
                tx,
                "UPDATE fills SET suspect = 0, \
                 status = CASE WHEN status = 'pending' THEN 'withdrawn' ELSE status END, \
                 reason = CASE WHEN status = 'pending' THEN 'reorged_out' ELSE reason END \
                 WHERE id = ?1 AND status != 'executed'",
                [row],
            )?;
            out.withdrawn.push(fill);
        }
    }
    Ok(())
}

/// Records the range's block hashes (for finding a reorg's common ancestor) and moves the
/// checkpoint to `to`. The newest 1,024 are kept, however old: kept by age, one range longer than
/// that (a catch-up after an outage) left only its own end, and a reorg of a few blocks then found
/// no block in common, restarting at a block never checked.
fn advance_checkpoint(tx: &Connection, to: (u64, B256), blocks: &[(u64, B256)], now: i64) -> StoreResult<()> {
    for (n, h) in blocks.iter().chain(std::iter::once(&to)) {
        exec(
            tx,
            "INSERT OR REPLACE INTO recent_blocks (number, hash) VALUES (?1, ?2)",
            params![*n as i64, h.to_string()],
        )?;
    }
    exec(
        tx,
        "DELETE FROM recent_blocks WHERE number < (SELECT MIN(number) FROM \
         (SELECT number FROM recent_blocks ORDER BY number DESC LIMIT 1024))",
        [],
    )?;
    exec(
        tx,
        "INSERT INTO checkpoint (id, block_number, block_hash, updated_at_ms) VALUES (1, ?1, ?2, ?3) \
         ON CONFLICT (id) DO UPDATE SET block_number = ?1, block_hash = ?2, updated_at_ms = ?3",
        params![to.0 as i64, to.1.to_string(), now],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256, U256};
    use std::collections::HashSet;

    use crate::domain::Shares;
    use crate::store::Store;
    use crate::store::tests::fill_in;

    fn row_count(s: &Store) -> i64 {
        s.conn.query_row("SELECT COUNT(*) FROM fills", [], |r| r.get(0)).unwrap()
    }

    fn target_position(s: &Store) -> Option<Shares> {
        s.target_position(&Address::repeat_byte(0xaa), &U256::from(7)).unwrap()
    }

    /// A journal whose fill in block 5 was copied and then reorged out (a suspect the rescan has
    /// not seen again yet): the store, its row.
    fn copied_then_reorged() -> (tempfile::TempDir, Store, i64) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let h = B256::repeat_byte;
        let out = s.journal_range(&[fill_in(1, 1, 5)], (5, h(5)), &[(5, h(5))]).unwrap();
        let row = out.to_copy[0].row;
        s.conn.execute("UPDATE fills SET status = 'executed' WHERE id = ?1", [row]).unwrap();
        s.rewind((4, h(4))).unwrap();
        (dir, s, row)
    }

    /// [`copied_then_reorged`], then taken as gone by the rescan (the sweep, two blocks past its
    /// height).
    fn copied_then_swept() -> (tempfile::TempDir, Store, i64) {
        let (dir, mut s, row) = copied_then_reorged();
        let out = s.journal_range(&[], (8, B256::repeat_byte(28)), &[]).unwrap();
        assert_eq!(out.reorged_after_copy.len(), 1);
        (dir, s, row)
    }

    /// The target's position up to one of its fills leaves out its later fills journaled in the
    /// same range: sold 10 of its 100, then 85 more, the first sale is of 100 held, not of 15.
    #[test]
    fn a_targets_position_up_to_a_fill_leaves_out_its_later_fills() {
        use crate::domain::Side;
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let fill = |tx: u8, side: Side, shares: i64, log_index: u64| crate::domain::TargetFill {
            side,
            shares: Shares(shares),
            log_index,
            ..crate::store::tests::fill_in(tx, tx, 5)
        };
        let fills = [fill(1, Side::Buy, 100, 0), fill(2, Side::Sell, 10, 1), fill(3, Side::Sell, 85, 2)];
        let rows: Vec<i64> =
            s.journal_range(&fills, (5, B256::repeat_byte(5)), &[]).unwrap().to_copy.iter().map(|p| p.row).collect();
        let (wallet, token) = (fills[0].wallet, fills[0].token_id);
        assert_eq!(s.target_position(&wallet, &token).unwrap(), Some(Shares(5)));
        // (row, position up to and with that fill)
        for (row, want) in [(rows[0], 100), (rows[1], 90), (rows[2], 5)] {
            assert_eq!(s.target_position_at(&wallet, &token, row).unwrap(), Some(Shares(want)), "row {row}");
        }
        assert_eq!(s.target_position_at(&Address::repeat_byte(0xbb), &token, rows[0]).unwrap(), None, "another's");
    }

    /// A range longer than the blocks remembered (a catch-up after an outage) keeps the blocks from
    /// before it: a shallow reorg after it finds a block in common below the range, and the feed
    /// reads the range again, rather than restarting at a block it never checked. The newest
    /// 1,024 are kept.
    #[test]
    fn the_blocks_remembered_are_the_newest_whatever_their_age() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let h = B256::repeat_byte;
        s.journal_range(&[], (5, h(5)), &[(4, h(4)), (5, h(5))]).unwrap();
        s.journal_range(&[], (3_000, h(30)), &[]).unwrap();
        let numbers: Vec<u64> = s.recent_blocks().unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(numbers, [3_000, 5, 4]);
        let many: Vec<(u64, B256)> = (3_001..4_100).map(|n| (n, h(7))).collect();
        s.journal_range(&[], (4_100, h(8)), &many).unwrap();
        let kept = s.recent_blocks().unwrap();
        assert_eq!(kept.len(), 1_024);
        assert_eq!((kept[0].0, kept[1_023].0), (4_100, 3_077));
    }

    /// A target removed after its copied fill and before the reorg under it: the rescan does not
    /// read its wallet, so not seeing the fill again says nothing. Not taken as gone, and said to
    /// be unchecked. A watched target's fill is still taken as gone, and so is an unwatched one
    /// not copied yet (nothing may be sent for a trade that may be gone).
    #[test]
    fn a_copied_suspect_of_a_wallet_no_longer_watched_is_not_taken_as_gone() {
        let (other, ours) = (Address::repeat_byte(0xbb), Address::repeat_byte(0xaa));
        // (wallet watched, the fill copied, taken as gone, said unchecked)
        for (watched, copied, gone, unchecked) in [
            (Some(other), true, 0, 1),
            (Some(ours), true, 1, 0),
            (Some(other), false, 1, 0),
            // Every target disabled: none watched, none checked.
            (None, true, 0, 1),
        ] {
            let (_dir, mut s, row) = copied_then_reorged();
            if !copied {
                s.conn.execute("UPDATE fills SET status = 'pending' WHERE id = ?1", [row]).unwrap();
            }
            let watched: Vec<(Address, String)> = watched.into_iter().map(|w| (w, "t".into())).collect();
            s.set_running_targets(&watched).unwrap();
            assert_eq!(s.running_targets().unwrap().len(), watched.len());
            let out = s.journal_range(&[], (8, B256::repeat_byte(28)), &[]).unwrap();
            let case = format!("{watched:?} copied {copied}");
            assert_eq!(out.reorged_after_copy.len() + out.withdrawn.len(), gone, "{case}");
            assert_eq!(out.unchecked.len(), unchecked, "{case}");
            let noted: usize = s
                .conn
                .query_row(
                    "SELECT COUNT(*) FROM events WHERE kind = 'reorg' AND message LIKE '%not checked%'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(noted, unchecked, "kept with the change: {case}");
            let suspect: bool =
                s.conn.query_row("SELECT suspect FROM fills WHERE id = ?1", [row], |r| r.get(0)).unwrap();
            assert!(!suspect, "{case}");
        }
    }

    /// A copied fill of a wallet no longer watched, left standing unchecked; the wallet is watched
    /// again and the dropped settlement is mined again under another transaction: the same
    /// trade, not copied a second time, the target's position counted once.
    #[test]
    fn an_unchecked_copy_is_still_the_same_trade_when_mined_again_under_another_transaction() {
        let (_dir, mut s, row) = copied_then_reorged();
        s.set_running_targets(&[(Address::repeat_byte(0xbb), "other".into())]).unwrap();
        let out = s.journal_range(&[], (8, B256::repeat_byte(28)), &[]).unwrap();
        assert_eq!(out.unchecked.len(), 1);
        s.set_running_targets(&[(Address::repeat_byte(0xaa), "back".into())]).unwrap();
        let h = B256::repeat_byte;
        let out = s.journal_range(&[fill_in(2, 1, 9)], (9, h(29)), &[(9, h(29))]).unwrap();
        assert!(out.to_copy.is_empty(), "not a new trade: {out:?}");
        assert_eq!(row_count(&s), 1);
        let tx: String = s.conn.query_row("SELECT tx_hash FROM fills WHERE id = ?1", [row], |r| r.get(0)).unwrap();
        assert_eq!(tx, h(2).to_string());
        assert_eq!(target_position(&s), Some(Shares(10_000_000)), "counted once");
        let (block, unchecked): (i64, bool) = s
            .conn
            .query_row("SELECT block_number, unchecked FROM fills WHERE id = ?1", [row], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((block, unchecked), (9, false), "in its new block, no longer in doubt");
        // A later trade of the same order and size is a new one: the row is not adoptable again.
        let out = s.journal_range(&[fill_in(3, 1, 10)], (10, h(30)), &[(10, h(30))]).unwrap();
        assert_eq!(out.to_copy.len(), 1);
        // Seen only in the pool, a settlement of the same match does not adopt an unchecked row:
        // its original transaction may well be on the chain still.
        let (_dir, mut s, row) = copied_then_reorged();
        s.set_running_targets(&[(Address::repeat_byte(0xbb), "other".into())]).unwrap();
        s.journal_range(&[], (8, h(28)), &[]).unwrap();
        s.journal_pending(
            &[fill_in(4, 1, 0)],
            "pending",
            crate::store::ActOnSight::of(&HashSet::from([Address::repeat_byte(0xaa)])),
        )
        .unwrap();
        let (tx, unchecked): (String, bool) = s
            .conn
            .query_row("SELECT tx_hash, unchecked FROM fills WHERE id = ?1", [row], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((tx, unchecked), (h(1).to_string(), true), "a pending fill is not taken for the unchecked one");
    }

    /// A copied fill whose settlement a reorg drops, sent again as another transaction (another
    /// hash): the same trade, copied once. Its row takes the new identity and block.
    #[test]
    fn a_fill_mined_again_under_another_transaction_is_the_same_trade() {
        let (_dir, mut s, row) = copied_then_reorged();
        let h = B256::repeat_byte;
        let out = s.journal_range(&[fill_in(2, 1, 6)], (6, h(26)), &[(6, h(26))]).unwrap();
        assert!(out.to_copy.is_empty(), "not a new trade: {out:?}");
        let out = s.journal_range(&[], (9, h(29)), &[]).unwrap();
        assert!(out.reorged_after_copy.is_empty() && out.withdrawn.is_empty(), "not gone: {out:?}");
        assert_eq!(row_count(&s), 1);
        let (tx, block): (String, i64) = s
            .conn
            .query_row("SELECT tx_hash, block_number FROM fills WHERE id = ?1", [row], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((tx, block), (h(2).to_string(), 6));
        assert_eq!(target_position(&s), Some(Shares(10_000_000)), "counted once");
        // Another trade of the same order with no reorg suspect is a new fill.
        let out = s.journal_range(&[fill_in(3, 1, 10)], (10, h(30)), &[(10, h(30))]).unwrap();
        assert_eq!(out.to_copy.len(), 1);
    }

    /// The dropped settlement sent again is seen in the pool before its block (pending detection
    /// on): the pending sighting takes over the suspect's row as the mined one would, so its block
    /// copies nothing and the target's position counts the trade once. The same after the sweep.
    #[test]
    fn a_dropped_copied_fill_sent_again_and_seen_pending_is_the_same_trade() {
        let h = B256::repeat_byte;
        let wallet = Address::repeat_byte(0xaa);
        for swept in [false, true] {
            let (_dir, mut s, row) = if swept { copied_then_swept() } else { copied_then_reorged() };
            let now = s
                .journal_pending(&[fill_in(2, 1, 0)], "pending", crate::store::ActOnSight::of(&HashSet::from([wallet])))
                .unwrap();
            assert!(now.is_empty(), "not copied from the pool (swept {swept}): {now:?}");
            let out = s.journal_range(&[fill_in(2, 1, 9)], (9, h(29)), &[(9, h(29))]).unwrap();
            assert!(out.to_copy.is_empty(), "not a new trade (swept {swept}): {out:?}");
            assert_eq!(row_count(&s), 1, "swept {swept}");
            let tx: String = s.conn.query_row("SELECT tx_hash FROM fills WHERE id = ?1", [row], |r| r.get(0)).unwrap();
            assert_eq!(tx, h(2).to_string());
            assert_eq!(target_position(&s), Some(Shares(10_000_000)), "counted once (swept {swept})");
            assert!(s.sightings_of(row).unwrap().iter().any(|(src, _)| src == "pending"), "its sighting is kept");
        }
    }

    /// The settlement sent again only after the sweep took the copied fill as gone (more than
    /// two blocks late): still the same trade. Flag lifted, said, counted once.
    #[test]
    fn a_fill_sent_again_after_the_sweep_under_another_transaction_is_the_same_trade() {
        let (_dir, mut s, row) = copied_then_swept();
        let h = B256::repeat_byte;
        let out = s.journal_range(&[fill_in(2, 1, 40)], (40, h(40)), &[(40, h(40))]).unwrap();
        assert!(out.to_copy.is_empty(), "not a new trade: {out:?}");
        assert_eq!(out.unorphaned.len(), 1, "said to stand after all");
        assert_eq!(row_count(&s), 1);
        let flag: bool =
            s.conn.query_row("SELECT reorged_after_copy FROM fills WHERE id = ?1", [row], |r| r.get(0)).unwrap();
        assert!(!flag);
        assert_eq!(target_position(&s), Some(Shares(10_000_000)), "counted once");
        // Long after (over an hour of blocks), the same order's trade of the same size is a new one.
        s.conn.execute("UPDATE fills SET reorged_after_copy = 1 WHERE id = ?1", [row]).unwrap();
        let out = s.journal_range(&[fill_in(3, 1, 5_000)], (5_000, h(50)), &[(5_000, h(50))]).unwrap();
        assert_eq!(out.to_copy.len(), 1);
    }

    /// What an order waiting to be sent again learns of its target's fill: it stands, it is a
    /// suspect of a reorg (wait for the rescan), or it is gone (only look the order up).
    #[test]
    fn a_fill_stands_is_suspect_then_gone_as_the_rescan_decides() {
        use crate::store::FillStanding::{Gone, Stands, Suspect};
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let h = B256::repeat_byte;
        let out = s.journal_range(&[fill_in(1, 1, 5), fill_in(1, 2, 5)], (5, h(5)), &[(5, h(5))]).unwrap();
        let (pending, copied) = (out.to_copy[0].row, out.to_copy[1].row);
        s.conn.execute("UPDATE fills SET status = 'executed' WHERE id = ?1", [copied]).unwrap();
        assert_eq!((s.fill_standing(pending).unwrap(), s.fill_standing(copied).unwrap()), (Stands, Stands));
        s.rewind((4, h(4))).unwrap();
        assert_eq!((s.fill_standing(pending).unwrap(), s.fill_standing(copied).unwrap()), (Suspect, Suspect));
        s.journal_range(&[], (8, h(28)), &[]).unwrap();
        assert_eq!((s.fill_standing(pending).unwrap(), s.fill_standing(copied).unwrap()), (Gone, Gone));
        assert_eq!(s.fill_standing(9_999).unwrap(), Gone, "no such row");
    }

    /// A copied fill taken as gone (not seen within two blocks of its height) that is mined
    /// again later: no longer flagged, said to stand, and the target's position counts it again.
    #[test]
    fn a_copied_fill_mined_again_after_the_sweep_stands_again() {
        let (_dir, mut s, row) = copied_then_swept();
        let h = B256::repeat_byte;
        assert_eq!(target_position(&s), Some(Shares(0)), "a trade that did not happen is taken back");
        let out = s.journal_range(&[fill_in(1, 1, 12)], (12, h(32)), &[(12, h(32))]).unwrap();
        assert!(out.to_copy.is_empty(), "copied already");
        assert_eq!(out.unorphaned.len(), 1, "said to stand after all");
        let (flag, block): (bool, i64) = s
            .conn
            .query_row("SELECT reorged_after_copy, block_number FROM fills WHERE id = ?1", [row], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((flag, block), (false, 12));
        assert_eq!(target_position(&s), Some(Shares(10_000_000)));
    }
}
