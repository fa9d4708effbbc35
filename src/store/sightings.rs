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

/// What [`Store::leave_to_block`] did with a sighting's refused copy.
#[derive(Debug)]
pub enum LeftToBlock {
    /// Still in the pool: its block hands it on.
    Waits,
    /// Its block was journaled meanwhile: the mined fill, to be copied now.
    Mined(Box<PendingFill>),
    /// A SELL mined after a BUY of its wallet and token that is not copied yet: too late to wait
    /// for it (the chain ordered the two while the SELL was sized).
    Late,
    /// Not left to its block (it has an intent, is no longer waiting, or nothing it waits behind).
    Not,
}

/// Whether a BUY of `wallet`'s `token` mined before the SELL in `row` waits for its copy (handed
/// on by its block, no intent yet).
fn bought_before(tx: &Connection, row: i64, token: &str, wallet: &str) -> rusqlite::Result<bool> {
    tx.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM fills s, fills b INDEXED BY fills_wallet WHERE s.id = ?3 \
         AND b.wallet = ?1 AND b.token_id = ?2 AND b.side = 'BUY' AND b.status = 'pending' AND b.orphaned = 0 \
         AND b.provisional = 0 AND b.triggered_by = 'chain' \
         AND (b.block_number, b.log_index) < (s.block_number, s.log_index) \
         AND NOT EXISTS (SELECT 1 FROM intents WHERE fill_id = b.id))",
    )?
    .query_row(params![wallet, token, row], |r| r.get(0))
}

/// How long an orphan may still be adopted by a replacement of its settlement: the operator's
/// retry of a match comes within minutes, and an hour leaves a wide margin. Longer, a later real
/// fill of the same order and size (a resting order filled in equal parts) would be taken for the
/// retry and never copied. The same transaction mined after all finds its row by identity at any
/// age.
pub(super) const ORPHAN_ADOPTABLE_MS: i64 = 3_600_000;

/// Whether any fill waits for its block (provisional, or orphaned recently enough to be adopted)
/// and any RTDS row waits for its fill.
pub(super) fn anything_waiting(tx: &Connection, now: i64) -> rusqlite::Result<(bool, bool)> {
    query_one(
        tx,
        "SELECT EXISTS (SELECT 1 FROM fills INDEXED BY fills_provisional WHERE provisional = 1 AND orphaned = 0) \
             OR EXISTS (SELECT 1 FROM fills INDEXED BY fills_provisional \
                        WHERE provisional = 1 AND orphaned = 1 AND seen_at_ms >= ?1), \
                EXISTS (SELECT 1 FROM rtds_staged)",
        [now - ORPHAN_ADOPTABLE_MS],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// The row of fill `f`'s identity, if journaled.
pub(super) fn row_of(tx: &Connection, f: &TargetFill) -> rusqlite::Result<Option<i64>> {
    tx.prepare_cached("SELECT id FROM fills WHERE tx_hash = ?1 AND order_hash = ?2 AND occurrence = ?3")?
        .query_row(params![f.id.tx_hash.to_string(), f.id.order_hash.to_string(), f.id.occurrence], |r| r.get(0))
        .optional()
}

/// Records `source`'s first sighting of fill `row`.
pub(super) fn record_sighting(tx: &Connection, row: i64, source: &str, at_ms: i64) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT OR IGNORE INTO sightings (fill_id, source, seen_at_ms) VALUES (?1, ?2, ?3)",
        params![row, source, at_ms],
    )?;
    Ok(())
}

/// Links an RTDS row seen before `row` was journaled to it (as its `rtds` sighting).
pub(super) fn link_staged(tx: &Connection, row: i64, f: &TargetFill) -> rusqlite::Result<()> {
    let key =
        params![f.id.tx_hash.to_string(), addr_lower(&f.wallet), f.token_id.to_string(), f.side.as_str(), f.shares.0];
    let staged: Option<(i64, i64)> = tx
        .prepare_cached(
            "SELECT occurrence, seen_at_ms FROM rtds_staged WHERE tx_hash = ?1 AND wallet = ?2 AND token_id = ?3 \
             AND side = ?4 AND shares = ?5 ORDER BY occurrence LIMIT 1",
        )?
        .query_row(key, |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((occurrence, at)) = staged {
        record_sighting(tx, row, "rtds", at)?;
        exec(
            tx,
            "DELETE FROM rtds_staged WHERE tx_hash = ?1 AND wallet = ?2 AND token_id = ?3 AND side = ?4 AND shares = ?5 \
             AND occurrence = ?6",
            params![
                f.id.tx_hash.to_string(),
                addr_lower(&f.wallet),
                f.token_id.to_string(),
                f.side.as_str(),
                f.shares.0,
                occurrence
            ],
        )?;
    }
    Ok(())
}

/// The mined log of a provisional fill: its block and exact amounts replace the provisional ones,
/// an orphan that was mined after all is one no more, and a fill whose target waited for the
/// block is handed on. Returns what to hand on, and whether it had been reported orphaned.
pub(super) fn confirm(tx: &Connection, row: i64, mined: &TargetFill) -> StoreResult<(Option<PendingFill>, bool)> {
    let token = mined.token_id.to_string();
    let before = load_fill(tx, row, &token)?;
    let (status, triggered, has_intent, orphaned): (super::FillStatus, Option<String>, bool, bool) = query_one(
        tx,
        "SELECT status, triggered_by, EXISTS (SELECT 1 FROM intents WHERE fill_id = fills.id), orphaned FROM fills WHERE id = ?1",
        [row],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let revive = orphaned && status == super::FillStatus::Withdrawn && !has_intent;
    let hand_on = !has_intent && (revive || (status == super::FillStatus::Pending && triggered.is_none()));
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
    Ok((
        hand_on.then(|| PendingFill { row, fill: mined.clone(), intent: None, journaled: None, booked: None }),
        orphaned,
    ))
}

/// How far behind the block a re-sent settlement is mined in a copied fill taken as gone may be
/// (about an hour of Polygon blocks) and still be taken as the same trade.
pub(super) const REINCLUDED_ADOPTABLE_BLOCKS: u64 = 1_800;

/// A fill mined under a transaction hash the journal does not know, that is a suspect of a reorg
/// mined again: the settlement that a reorg dropped, sent again as a new transaction (another
/// nonce or fee, so another hash). The suspect row takes the new identity, and the fill is then a
/// re-inclusion, not a new trade: copied at most once. Returns the row adopted.
///
/// # Errors
/// On a database error.
pub(super) fn adopt_reincluded(tx: &Connection, mined: &TargetFill) -> StoreResult<Option<i64>> {
    adopt_reincluded_near(tx, mined, mined.block_number, true)
}

/// [`adopt_reincluded`] for a fill seen at `near_block` (its own block once mined; the journal's
/// checkpoint for one seen pending, whose block is not known yet).
///
/// A copy left `unchecked` (its wallet was not watched when a reorg put it in doubt) is adopted only
/// by a mined fill (`unchecked`): its own transaction may still be on the chain, and a settlement
/// seen only in the pool may never be mined.
fn adopt_reincluded_near(
    tx: &Connection,
    mined: &TargetFill,
    near_block: u64,
    unchecked: bool,
) -> StoreResult<Option<i64>> {
    // A suspect, or a copied fill already taken as gone that recent (the operator's settlement
    // service may notice the drop and send again well after the sweep's two blocks).
    let known: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM fills WHERE tx_hash = ?1 AND order_hash = ?2 AND occurrence = ?3)",
        )?
        .query_row(
            params![mined.id.tx_hash.to_string(), mined.id.order_hash.to_string(), mined.id.occurrence],
            |r| r.get(0),
        )?;
    if known {
        return Ok(None);
    }
    let mut params: Vec<Box<dyn rusqlite::ToSql>> = same_match_params(mined).into_iter().collect();
    params.push(Box::new((near_block.saturating_sub(REINCLUDED_ADOPTABLE_BLOCKS)) as i64));
    params.push(Box::new(unchecked));
    let row: Option<i64> = tx
        .prepare_cached(&format!(
            "SELECT id FROM fills INDEXED BY fills_order WHERE provisional = 0 \
             AND (suspect = 1 OR ((reorged_after_copy = 1 OR (unchecked = 1 AND ?9)) AND block_number >= ?8)) \
             AND {SAME_MATCH} \
             ORDER BY id LIMIT 1"
        ))?
        .query_row(rusqlite::params_from_iter(params), |r| r.get(0))
        .optional()?;
    if let Some(id) = row {
        tracing::info!(
            row = id,
            tx = %mined.id.tx_hash,
            "a fill a reorg dropped is mined again in another transaction: the same trade, not a new one"
        );
        rekey(tx, id, mined)?;
    }
    Ok(row)
}

/// Row `id` takes `mined`'s transaction: the same match, settled under another hash.
fn rekey(tx: &Connection, id: i64, mined: &TargetFill) -> StoreResult<()> {
    exec(
        tx,
        "UPDATE fills SET tx_hash = ?2, occurrence = ?3 WHERE id = ?1",
        params![id, mined.id.tx_hash.to_string(), mined.id.occurrence],
    )?;
    Ok(())
}

/// The same match as `f`: same order, wallet, side and token, and the same amount the target
/// gives. A BUY taker's shares seen pending are only a bound (priced at its limit; the log has
/// the price improvement), while what it pays is exact; so a BUY matches on either amount.
const SAME_MATCH: &str = "order_hash = ?1 AND wallet = ?2 AND side = ?3 AND token_id = ?4 \
     AND (shares = ?5 OR (side = 'BUY' AND usdc = ?7)) AND tx_hash != ?6";

fn same_match_params(f: &TargetFill) -> [Box<dyn rusqlite::ToSql>; 7] {
    [
        Box::new(f.id.order_hash.to_string()),
        Box::new(addr_lower(&f.wallet)),
        Box::new(f.side.as_str()),
        Box::new(f.token_id.to_string()),
        Box::new(f.shares.0),
        Box::new(f.id.tx_hash.to_string()),
        Box::new(f.usdc.0),
    ]
}

/// A provisional fill of another transaction of the same match as `mined`: the operator replaced
/// the settlement (a new transaction hash for the same match). It is re-keyed to the mined
/// transaction, so the replacement confirms it instead of being copied a second time. Its row, if
/// there is one.
pub(super) fn adopt_replacement(tx: &Connection, mined: &TargetFill, now: i64) -> StoreResult<Option<i64>> {
    let mut params: Vec<Box<dyn rusqlite::ToSql>> = same_match_params(mined).into();
    params.push(Box::new(now - ORPHAN_ADOPTABLE_MS));
    let row: Option<i64> = tx
        .prepare_cached(&format!(
            "SELECT id FROM fills INDEXED BY fills_order WHERE provisional = 1 AND (orphaned = 0 OR (seen_at_ms >= ?8 \
             AND status != 'rejected')) AND {SAME_MATCH} ORDER BY id LIMIT 1"
        ))?
        .query_row(rusqlite::params_from_iter(params), |r| r.get(0))
        .optional()?;
    if let Some(id) = row {
        exec(tx, "UPDATE fills SET replaced_tx = tx_hash WHERE id = ?1", params![id])?;
        rekey(tx, id, mined)?;
    }
    Ok(row)
}

/// The block the journal has read the chain to (0 before any).
fn checkpoint_block(tx: &Connection) -> StoreResult<u64> {
    let n: Option<i64> = tx
        .prepare_cached("SELECT block_number FROM checkpoint WHERE id = 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(n.map_or(0, i64::unsigned_abs))
}

/// Which sightings [`Store::journal_pending`] copies at once.
#[derive(Debug, Clone, Copy)]
pub struct ActOnSight<'a> {
    /// Wallets whose fills are copied at once (trigger `pending`).
    pub wallets: &'a HashSet<Address>,
    /// Fills whose amounts are only a bound (V1/V2 takers): never copied before their block.
    pub at_limit: Option<&'a HashSet<crate::domain::FillId>>,
}

impl<'a> ActOnSight<'a> {
    /// The fills of `wallets`, none of them at a bound.
    #[must_use]
    pub const fn of(wallets: &'a HashSet<Address>) -> Self {
        Self { wallets, at_limit: None }
    }
}

/// Whether `f` is a SELL of a token its target's copies hold none of, with no BUY of it by that
/// target being copied: acted on now it would be refused for good (an exit is sized on the
/// target's own copies, not on another target's of the same outcome), while the target's BUY of
/// it may be mined just before it, in a block the feed has not read yet or never seen in the pool
/// (the feed may be a block behind, and a pool read misses some). It waits for its block, where
/// the chain's order puts that BUY, copied, first. (A BUY being copied is waited for by the
/// copier as always.)
fn sells_what_we_do_not_hold(tx: &Connection, f: &TargetFill) -> StoreResult<bool> {
    if f.side != crate::domain::Side::Sell {
        return Ok(false);
    }
    if super::book::copied_shares_in(tx, &f.wallet, f.token_id)?.0 > 0 {
        return Ok(false);
    }
    let buying: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM fills INDEXED BY fills_wallet WHERE wallet = ?2 AND token_id = ?1 \
             AND status = 'pending' AND side = 'BUY' AND orphaned = 0)",
        )?
        .query_row(params![f.token_id.to_string(), addr_lower(&f.wallet)], |r| r.get(0))?;
    Ok(!buying)
}

/// Whether a sighting of the same wallet and token in another transaction waits for its block,
/// one of the two a SELL: `f` copied now could come before it on chain (a SELL sized before the
/// BUY it sells is refused for good). Two BUYs may be copied in either order.
fn waiting_beside(tx: &Connection, f: &TargetFill) -> StoreResult<bool> {
    Ok(tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM fills INDEXED BY fills_provisional WHERE provisional = 1 AND orphaned = 0 \
             AND triggered_by IS NULL AND status = 'pending' AND wallet = ?1 AND token_id = ?2 AND tx_hash != ?3 \
             AND (?4 = 'SELL' OR side = 'SELL'))",
        )?
        .query_row(
            params![addr_lower(&f.wallet), f.token_id.to_string(), f.id.tx_hash.to_string(), f.side.as_str()],
            |r| r.get(0),
        )?)
}

/// Whether the match `f` was seen in is already journaled from a mined block under another
/// transaction (and not orphaned since).
fn mined_twin(tx: &Connection, f: &TargetFill) -> StoreResult<bool> {
    Ok(tx
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM fills WHERE provisional = 0 AND orphaned = 0 AND {SAME_MATCH})"
        ))?
        .query_row(rusqlite::params_from_iter(same_match_params(f)), |r| r.get(0))?)
}

/// Every sighting of fill ?1, earliest first: the journaled ones, and the chain's own when it
/// showed the fill first (the fill's seen_at_ms). Ties list the chain last.
const SIGHTINGS_OF: &str = "SELECT source, seen_at_ms FROM ( \
    SELECT source, seen_at_ms FROM sightings WHERE fill_id = ?1 \
    UNION ALL SELECT 'chain', f.seen_at_ms FROM fills f WHERE f.id = ?1 AND f.provisional = 0 \
        AND NOT EXISTS (SELECT 1 FROM sightings c WHERE c.fill_id = ?1 AND c.source = 'chain')) \
    ORDER BY seen_at_ms, source = 'chain'";

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

impl DetectionStats {
    /// The nearest-rank percentile `p` (0–100) of `source`'s leads, ms.
    #[must_use]
    pub fn lead(&self, source: &str, p: usize) -> Option<i64> {
        percentile(self.leads.get(source)?, p)
    }

    /// How many of `source`'s fills it saw before the mined log.
    #[must_use]
    pub fn led(&self, source: &str) -> usize {
        self.leads.get(source).map_or(0, |v| v.iter().filter(|l| **l > 0).count())
    }
}

/// The nearest-rank percentile `p` (0–100) of sorted values.
#[must_use]
pub fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

impl Store {
    /// Journals RTDS rows of targets as sightings: of the fill they describe when it is journaled
    /// already (the `occurrence`-th of its transaction's identical fills), else staged until it is.
    /// Staged rows older than a day are dropped: their fill never came.
    ///
    /// # Errors
    /// On a database error.
    pub fn record_rtds(&mut self, rows: &[(crate::market::rtds::row::RtdsRow, i64)]) -> StoreResult<()> {
        let tx = self.conn.savepoint()?;
        for (r, at) in rows {
            let (txh, wallet, token) = (r.tx_hash.to_string(), addr_lower(&r.wallet), r.token_id.to_string());
            let fill: Option<i64> = tx
                .prepare_cached(
                    "SELECT id FROM fills WHERE tx_hash = ?1 AND wallet = ?2 AND token_id = ?3 AND side = ?4 AND shares = ?5 \
                     ORDER BY occurrence LIMIT 1 OFFSET ?6",
                )?
                .query_row(params![txh, wallet, token, r.side.as_str(), r.shares.0, r.occurrence], |x| x.get(0))
                .optional()?;
            match fill {
                Some(row) => record_sighting(&tx, row, "rtds", *at)?,
                None => {
                    exec(
                        &tx,
                        "INSERT OR IGNORE INTO rtds_staged (tx_hash, wallet, token_id, side, shares, occurrence, seen_at_ms) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![txh, wallet, token, r.side.as_str(), r.shares.0, r.occurrence, at],
                    )?;
                }
            }
        }
        exec(&tx, "DELETE FROM rtds_staged WHERE seen_at_ms < ?1", [now_ms() - 86_400_000])?;
        tx.commit()?;
        Ok(())
    }

    /// RTDS rows waiting for their fill.
    ///
    /// # Errors
    /// On a database error.
    pub fn rtds_staged(&self) -> StoreResult<u64> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM rtds_staged", [], |r| r.get::<_, i64>(0))?.unsigned_abs())
    }

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
        act: ActOnSight<'_>,
    ) -> StoreResult<Vec<PendingFill>> {
        let now = now_ms();
        let unordered = crate::chain::mempool::in_order::in_unknown_order(fills);
        let tx = self.conn.savepoint()?;
        let mut out = Vec::new();
        for f in fills {
            // The same match already mined under another transaction (an operator's retry, seen
            // late or after a restart) is journaled but waits for its own block: if it is a second
            // fill of the order after all, its block hands it on; if it reverts, nothing was copied.
            // So does a fill whose order with the target's other trades of the token is not known
            // (seen in one read, or beside one waiting for its block), and one whose amounts are
            // only a bound.
            let act = act.wallets.contains(&f.wallet)
                && !act.at_limit.is_some_and(|l| l.contains(&f.id))
                && !unordered.contains(&(f.wallet, f.token_id))
                && !waiting_beside(&tx, f)?
                && !mined_twin(&tx, f)?
                && !sells_what_we_do_not_hold(&tx, f)?;
            // A resubmitted settlement (a new transaction for the same match) seen in the pool
            // takes over the first one's row rather than being copied again: one seen pending,
            // or one mined that a reorg dropped (its block then confirms or sweeps it as a
            // re-inclusion would be).
            if row_of(&tx, f)?.is_none()
                && (adopt_replacement(&tx, f, now)?.is_some()
                    || adopt_reincluded_near(&tx, f, checkpoint_block(&tx)?, false)?.is_some())
            {
                let row = row_of(&tx, f)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                record_sighting(&tx, row, source, now)?;
                continue;
            }
            let inserted = insert_fill(&tx, f, now, true, act.then_some(source))?.is_some();
            let row = row_of(&tx, f)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            record_sighting(&tx, row, source, now)?;
            link_staged(&tx, row, f)?;
            if inserted && act {
                out.push(PendingFill { row, fill: f.clone(), intent: None, journaled: None, booked: None });
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// A sighting's copy refused for what its block may change, left to that block instead: a
    /// refusal would be found on the row by the mined log, and the trade never copied.
    ///
    /// - A BUY that `detection.pending_max_order_usdc` alone made too small (`behind_a_buy`
    ///   false): its mined fill is not under that cap. Its block journaled already (while it was
    ///   sized, so nothing was handed on then): the mined fill is returned, to be copied now.
    /// - A SELL refused for want of a position while a BUY of the same wallet and token waits for
    ///   its block (`behind_a_buy`, left there as above while the SELL was handed on), or was
    ///   handed on by it and not copied yet: the chain orders the two. Its block journaled already
    ///   after such a BUY's: [`LeftToBlock::Late`] (refused; the BUY is copied, and the operator
    ///   is told). No such BUY: [`LeftToBlock::Not`], refused as before.
    ///
    /// The mined log (`confirm`) hands a fill left to its block on when its block comes, once. A fill with an
    /// intent, or no longer waiting (orphaned meanwhile: its block, if it comes, revives it), is
    /// not touched.
    ///
    /// # Errors
    /// On a database error.
    pub fn leave_to_block(&mut self, row: i64, behind_a_buy: bool) -> StoreResult<LeftToBlock> {
        let tx = self.conn.savepoint()?;
        // Only a fill a sighting handed on: one its block handed on (`chain`) has its copy already.
        let found: Option<(bool, String, String)> = tx
            .prepare_cached(
                "SELECT provisional, token_id, wallet FROM fills WHERE id = ?1 AND status = 'pending' \
                 AND orphaned = 0 AND suspect = 0 AND triggered_by IS NOT NULL AND triggered_by != 'chain' \
                 AND NOT EXISTS (SELECT 1 FROM intents WHERE fill_id = ?1)",
            )?
            .query_row([row], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        // A BUY of the wallet and token left to its block, or handed on by it and not copied yet.
        let buy_waits = |token: &str, wallet: &str| -> rusqlite::Result<bool> {
            tx.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM fills INDEXED BY fills_wallet WHERE wallet = ?1 AND token_id = ?2 \
                 AND side = 'BUY' AND status = 'pending' AND orphaned = 0 \
                 AND ((provisional = 1 AND triggered_by IS NULL) OR (provisional = 0 AND triggered_by = 'chain')) \
                 AND NOT EXISTS (SELECT 1 FROM intents WHERE fill_id = fills.id))",
            )?
            .query_row(params![wallet, token], |r| r.get(0))
        };
        let out = match found {
            Some((true, token, wallet)) if !behind_a_buy || buy_waits(&token, &wallet)? => {
                exec(&tx, "UPDATE fills SET triggered_by = NULL WHERE id = ?1", [row])?;
                LeftToBlock::Waits
            }
            Some((false, token, _)) if !behind_a_buy => {
                exec(&tx, "UPDATE fills SET triggered_by = 'chain' WHERE id = ?1", [row])?;
                let fill = load_fill(&tx, row, &token)?;
                LeftToBlock::Mined(Box::new(PendingFill { row, fill, intent: None, journaled: None, booked: None }))
            }
            Some((false, token, wallet)) if bought_before(&tx, row, &token, &wallet)? => LeftToBlock::Late,
            _ => LeftToBlock::Not,
        };
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
                 WHERE tx_hash = ?1 AND provisional = 1 AND orphaned = 0",
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

    /// Transactions whose provisional fills were taken over from an earlier transaction of the
    /// same match (a resubmission), with that earlier one: one that fails may have lost to it.
    ///
    /// # Errors
    /// On a database error or a corrupt hash.
    pub fn replacement_txs(&self) -> StoreResult<Vec<(B256, B256)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT DISTINCT tx_hash, replaced_tx FROM fills INDEXED BY fills_provisional WHERE provisional = 1 \
             AND orphaned = 0 AND replaced_tx IS NOT NULL",
        )?;
        let pairs: Vec<(String, String)> =
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        pairs.iter().map(|(h, e)| Ok((hex_b256(h, "fills.tx_hash")?, hex_b256(e, "fills.replaced_tx")?))).collect()
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
        let mut st = self.conn.prepare_cached(SIGHTINGS_OF)?;
        let rows = st.query_map([row], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Each source's lead over the mined log for fills seen since `since_ms`, and the orphans.
    ///
    /// # Errors
    /// On a database error.
    pub fn detection_stats(&self, since_ms: i64) -> StoreResult<DetectionStats> {
        let mut out = DetectionStats::default();
        // The chain saw a fill when it confirmed it (its 'chain' sighting) or, when the chain
        // showed it first, when it was journaled (its seen_at_ms).
        let mut st = self.conn.prepare(
            "SELECT s.source, COALESCE(c.seen_at_ms, f.seen_at_ms) - s.seen_at_ms FROM sightings s \
             JOIN fills f ON f.id = s.fill_id \
             LEFT JOIN sightings c ON c.fill_id = s.fill_id AND c.source = 'chain' \
             WHERE s.source != 'chain' AND f.provisional = 0 AND s.seen_at_ms >= ?1",
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
            "SELECT COUNT(*) FROM fills f WHERE f.provisional = 0 AND f.seen_at_ms >= ?1 \
             AND NOT EXISTS (SELECT 1 FROM sightings o WHERE o.fill_id = f.id AND o.source != 'chain')",
            [since_ms],
            |r| r.get::<_, i64>(0),
        )? as u64;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    const WALLET: Address = Address::repeat_byte(0xaa);

    fn fill(tx: u8, order: u8, block: u64) -> TargetFill {
        crate::store::tests::fill_in(tx, order, block)
    }

    fn rows(s: &Store) -> Vec<(String, bool, bool, Option<String>, String)> {
        let mut st = s
            .conn
            .prepare("SELECT tx_hash, provisional, orphaned, triggered_by, status FROM fills ORDER BY id")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn fills_of_one_token_in_two_transactions_of_one_read_wait_for_their_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let now: HashSet<Address> = [WALLET].into();
        let (buy, mut sell) = (fill(1, 8, 0), fill(2, 9, 0));
        sell.side = crate::domain::Side::Sell;
        // Which is mined first is not known: neither is copied before its block.
        assert!(s.journal_pending(&[sell.clone(), buy.clone()], "pending", ActOnSight::of(&now)).unwrap().is_empty());
        assert_eq!(rows(&s).len(), 2, "both journaled, provisional");
        // Seen in two reads, the BUY first, each is copied at once.
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        assert_eq!(s.journal_pending(&[buy], "pending", ActOnSight::of(&now)).unwrap().len(), 1);
        assert_eq!(s.journal_pending(&[sell], "pending", ActOnSight::of(&now)).unwrap().len(), 1);
    }

    #[test]
    fn a_sighting_beside_one_waiting_for_its_block_waits_too_unless_both_are_buys() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let now: HashSet<Address> = [WALLET].into();
        // A BUY seen while the feed was behind: it waits for its block.
        assert!(s.journal_pending(&[fill(1, 8, 0)], "pending", ActOnSight::of(&HashSet::new())).unwrap().is_empty());
        // A SELL of the token in a later read: it might come before that BUY on chain.
        let mut sell = fill(2, 9, 0);
        sell.side = crate::domain::Side::Sell;
        assert!(s.journal_pending(&[sell], "pending", ActOnSight::of(&now)).unwrap().is_empty());
        // Another token, and another BUY of the same token (two BUYs may come in either order),
        // are copied at once.
        let mut other = fill(3, 10, 0);
        other.token_id = alloy::primitives::U256::from(99);
        assert_eq!(s.journal_pending(&[other], "pending", ActOnSight::of(&now)).unwrap().len(), 1);
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        assert!(s.journal_pending(&[fill(1, 8, 0)], "pending", ActOnSight::of(&HashSet::new())).unwrap().is_empty());
        assert_eq!(s.journal_pending(&[fill(4, 11, 0)], "pending", ActOnSight::of(&now)).unwrap().len(), 1);
    }

    #[test]
    fn a_fill_whose_amounts_are_only_a_bound_waits_for_its_block() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let now: HashSet<Address> = [WALLET].into();
        let (taker, maker) = (fill(1, 8, 0), fill(2, 9, 0));
        let at_limit = HashSet::from([taker.id]);
        let act = ActOnSight { wallets: &now, at_limit: Some(&at_limit) };
        let copied = s.journal_pending(&[taker, maker.clone()], "pending", act).unwrap();
        assert_eq!(copied.iter().map(|p| p.fill.id).collect::<Vec<_>>(), vec![maker.id], "only the exact one");
        assert_eq!(rows(&s).len(), 2, "both journaled");
    }

    #[test]
    fn a_resubmitted_settlement_takes_over_the_row_and_the_block_confirms_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let now: HashSet<Address> = [WALLET].into();
        assert_eq!(
            s.journal_pending(&[fill(1, 9, 0)], "pending", ActOnSight::of(&now)).unwrap().len(),
            1,
            "copied at once"
        );
        // The operator resubmits the same match as transaction 2: no second copy.
        assert!(s.journal_pending(&[fill(2, 9, 0)], "pending", ActOnSight::of(&now)).unwrap().is_empty());
        assert_eq!(s.provisional_txs().unwrap(), vec![B256::repeat_byte(2)]);
        // Transaction 1 is then gone from the pool: nothing of it is left to orphan.
        assert!(s.orphan_tx(B256::repeat_byte(1)).unwrap().is_empty());
        let out = s.journal_range(&[fill(2, 9, 5)], (5, B256::repeat_byte(5)), &[(5, B256::repeat_byte(5))]).unwrap();
        assert!(out.to_copy.is_empty(), "it was handed on when first seen");
        let r = rows(&s);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!((r[0].1, r[0].2, r[0].3.as_deref()), (false, false, Some("pending")));
        assert_eq!(
            s.sightings_of(1).unwrap().iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
            vec!["pending", "chain"]
        );
    }

    #[test]
    fn a_buy_takers_replacement_mined_with_its_price_improvement_is_the_same_match() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let now: HashSet<Address> = [WALLET].into();
        // Seen pending: the shares a taker BUY gets are priced at its limit, a lower bound.
        assert_eq!(
            s.journal_pending(&[fill(1, 9, 0)], "pending", ActOnSight::of(&now)).unwrap().len(),
            1,
            "copied at once"
        );
        // Resubmitted as transaction 2 and mined before the pool showed it: the log has more shares
        // for the same pUSD.
        let mut mined = fill(2, 9, 5);
        mined.shares = crate::domain::Shares(mined.shares.0 + 400_000);
        let out = s.journal_range(&[mined], (5, B256::repeat_byte(5)), &[(5, B256::repeat_byte(5))]).unwrap();
        assert!(out.to_copy.is_empty(), "copied a second time");
        let r = rows(&s);
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(!r[0].1, "confirmed by the replacement's block");
    }

    #[test]
    fn a_pending_sighting_of_a_match_mined_under_another_transaction_waits_for_its_own_block() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let now: HashSet<Address> = [WALLET].into();
        let out = s.journal_range(&[fill(1, 9, 5)], (5, B256::repeat_byte(5)), &[(5, B256::repeat_byte(5))]).unwrap();
        assert_eq!(out.to_copy.len(), 1);
        // The operator's retry of that match, seen in the pool afterwards: not copied now.
        assert!(
            s.journal_pending(&[fill(2, 9, 0)], "pending", ActOnSight::of(&now)).unwrap().is_empty(),
            "copied a second time"
        );
        assert_eq!(rows(&s)[1].3, None, "it waits for its block");
        // Were it a second fill of the order after all, its block hands it on.
        let out = s.journal_range(&[fill(2, 9, 6)], (6, B256::repeat_byte(6)), &[(6, B256::repeat_byte(6))]).unwrap();
        assert_eq!(out.to_copy.len(), 1);
    }

    #[test]
    fn a_sighting_not_acted_on_before_a_restart_waits_for_its_block() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let now: HashSet<Address> = [WALLET].into();
        assert_eq!(s.journal_pending(&[fill(1, 9, 0)], "pending", ActOnSight::of(&now)).unwrap().len(), 1);
        // Stopped before the copier journaled an intent: at the start it is not copied blind.
        assert_eq!(s.defer_unacted_sightings().unwrap(), 1);
        assert!(s.unfinished().unwrap().is_empty(), "copied a settlement that may have reverted");
        // Its block, read by the backfill, hands it on once.
        let out = s.journal_range(&[fill(1, 9, 5)], (5, B256::repeat_byte(5)), &[(5, B256::repeat_byte(5))]).unwrap();
        assert_eq!(out.to_copy.len(), 1);
        assert_eq!(s.defer_unacted_sightings().unwrap(), 0);
    }

    #[test]
    fn a_sighting_whose_copy_never_left_before_a_restart_waits_for_its_block() {
        use crate::domain::{OrderIntent, Price, Shares};
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let now: HashSet<Address> = [WALLET].into();
        // (signed order, posted): the copy of each sighting when the daemon stopped.
        let cases = [(None, false), (Some(()), false), (Some(()), true)];
        let mut handed = Vec::new();
        for (n, (signed, posted)) in cases.iter().enumerate() {
            let n = u8::try_from(n).unwrap() + 1;
            let p = s.journal_pending(&[fill(n, 9 + n, 0)], "pending", ActOnSight::of(&now)).unwrap();
            let (row, f) = (p[0].row, p[0].fill.clone());
            assert!(s.record_intent(&OrderIntent::for_fill(&f, row, Shares(10_000_000), Price(500_000))).unwrap());
            if signed.is_some() {
                let order = crate::clob::order::StoredOrder::for_test(f.side, 10_000_000, 5_000_000);
                let order = crate::clob::order::StoredOrder { order_id: B256::repeat_byte(n), ..order };
                s.record_order(row, &order).unwrap();
            }
            if *posted {
                s.order_sent(row, false).unwrap();
            }
            handed.push(row);
        }
        assert_eq!(s.defer_unacted_sightings().unwrap(), 2, "the two copies that never left");
        let left: Vec<i64> = s.unfinished().unwrap().iter().map(|p| p.row).collect();
        assert_eq!(left, [handed[2]], "only the posted order is resolved at start (looked up, never sent again)");
        assert!(s.order_for(handed[1]).unwrap().is_none(), "the unsent order is taken back");
        // Their blocks hand them on to be copied afresh, once each.
        for n in 1..=2u8 {
            let b = u64::from(n) + 4;
            let out = s
                .journal_range(&[fill(n, 9 + n, b)], (b, B256::repeat_byte(n + 4)), &[(b, B256::repeat_byte(n + 4))])
                .unwrap();
            assert_eq!(out.to_copy.len(), 1, "sighting {n}");
        }
    }

    #[test]
    fn an_orphan_whose_copy_never_left_before_a_restart_is_copied_when_mined_after_all() {
        // (posted before the stop, withdrawn at the start, handed on by its block)
        for (posted, withdrawn, handed) in [(false, true, 1), (true, false, 0)] {
            let (_dir, mut s, row) = copied_sighting();
            if posted {
                s.order_sent(row, false).unwrap();
            }
            // Its transaction left the pool (found at this start, or just before the stop).
            for tx in s.provisional_txs().unwrap() {
                s.orphan_tx(tx).unwrap();
            }
            assert_eq!(s.defer_unacted_sightings().unwrap(), usize::from(withdrawn), "posted {posted}");
            let recovered: Vec<i64> = s.unfinished().unwrap().iter().map(|p| p.row).collect();
            assert_eq!(recovered, if posted { vec![row] } else { vec![] }, "a posted order is looked up");
            assert_eq!(s.order_for(row).unwrap().is_some(), posted, "an unsent order is taken back");
            // Mined after all: copied once, afresh, unless an order of it may be at the exchange.
            let out =
                s.journal_range(&[fill(1, 9, 5)], (5, B256::repeat_byte(5)), &[(5, B256::repeat_byte(5))]).unwrap();
            assert_eq!(out.to_copy.len(), handed, "posted {posted}");
        }
    }

    /// A journal with the sighting of transaction 1 copied at once: its intent and signed order
    /// (10 shares at 0.50) journaled, the order not sent yet.
    fn copied_sighting() -> (tempfile::TempDir, Store, i64) {
        use crate::domain::{OrderIntent, Price, Shares};
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let now: HashSet<Address> = [WALLET].into();
        let p = s.journal_pending(&[fill(1, 9, 0)], "pending", ActOnSight::of(&now)).unwrap();
        let (row, f) = (p[0].row, p[0].fill.clone());
        assert!(s.record_intent(&OrderIntent::for_fill(&f, row, Shares(10_000_000), Price(500_000))).unwrap());
        s.record_order(row, &crate::clob::order::StoredOrder::for_test(f.side, 10_000_000, 5_000_000)).unwrap();
        (dir, s, row)
    }

    #[test]
    fn a_sighting_left_to_its_block_by_the_pending_cap_is_copied_once_by_its_block() {
        let now: HashSet<Address> = [WALLET].into();
        let b5 = (5, B256::repeat_byte(5));
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let row = s.journal_pending(&[fill(1, 9, 0)], "pending", ActOnSight::of(&now)).unwrap()[0].row;
        assert!(matches!(s.leave_to_block(row, false).unwrap(), LeftToBlock::Waits), "its block decides");
        assert_eq!(rows(&s)[0].4, "pending", "not refused");
        assert!(s.unfinished().unwrap().is_empty(), "not copied at a restart before its block");
        let out = s.journal_range(&[fill(1, 9, 5)], b5, &[b5]).unwrap();
        assert_eq!(out.to_copy.iter().map(|p| p.row).collect::<Vec<_>>(), [row], "its block hands it on");
        assert_eq!(rows(&s)[0].3.as_deref(), Some("chain"));

        // Its block journaled while it was sized (nothing handed on then): the mined fill comes
        // back, to be copied now, and only once.
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let row = s.journal_pending(&[fill(1, 9, 0)], "pending", ActOnSight::of(&now)).unwrap()[0].row;
        assert!(s.journal_range(&[fill(1, 9, 5)], b5, &[b5]).unwrap().to_copy.is_empty());
        let LeftToBlock::Mined(mined) = s.leave_to_block(row, false).unwrap() else { panic!("the mined fill") };
        assert_eq!((mined.row, mined.fill.block_number), (row, 5));
        assert!(matches!(s.leave_to_block(row, false).unwrap(), LeftToBlock::Not), "handed on once");

        // A sighting whose copy has an intent is never handed on again.
        let (_dir, mut s, row) = copied_sighting();
        assert!(matches!(s.leave_to_block(row, false).unwrap(), LeftToBlock::Not));
        assert!(s.journal_range(&[fill(1, 9, 5)], b5, &[b5]).unwrap().to_copy.is_empty());
    }

    #[test]
    fn a_sighting_sell_is_left_to_its_block_only_behind_a_buy_left_there() {
        use crate::domain::Side;
        let now: HashSet<Address> = [WALLET].into();
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let mut sell = fill(2, 8, 0);
        sell.side = Side::Sell;
        // The BUY and the SELL handed on in two reads (the SELL while the BUY was being sized).
        let buy = s.journal_pending(&[fill(1, 9, 0)], "pending", ActOnSight::of(&now)).unwrap()[0].row;
        let sell = s.journal_pending(&[sell], "pending", ActOnSight::of(&now)).unwrap()[0].row;
        assert!(matches!(s.leave_to_block(sell, true).unwrap(), LeftToBlock::Not), "no BUY waits: refused");
        assert!(matches!(s.leave_to_block(buy, false).unwrap(), LeftToBlock::Waits));
        assert!(matches!(s.leave_to_block(sell, true).unwrap(), LeftToBlock::Waits), "behind the BUY");
        // Both blocks: both handed on, in the chain's order.
        let b5 = (5, B256::repeat_byte(5));
        let mut sold = fill(2, 8, 5);
        sold.side = Side::Sell;
        sold.log_index = 1;
        let out = s.journal_range(&[fill(1, 9, 5), sold.clone()], b5, &[b5]).unwrap();
        assert_eq!(out.to_copy.iter().map(|p| p.row).collect::<Vec<_>>(), [buy, sell]);

        // The BUY left to its block, and both blocks journaled before the SELL's copy ends: the
        // BUY is handed on, the SELL is too late to wait for it.
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let mut seen = fill(2, 8, 0);
        seen.side = Side::Sell;
        let buy = s.journal_pending(&[fill(1, 9, 0)], "pending", ActOnSight::of(&now)).unwrap()[0].row;
        let sell = s.journal_pending(&[seen], "pending", ActOnSight::of(&now)).unwrap()[0].row;
        assert!(matches!(s.leave_to_block(buy, false).unwrap(), LeftToBlock::Waits));
        let out = s.journal_range(&[fill(1, 9, 5), sold], b5, &[b5]).unwrap();
        assert_eq!(out.to_copy.iter().map(|p| p.row).collect::<Vec<_>>(), [buy], "the SELL's copy is under way");
        assert!(matches!(s.leave_to_block(sell, true).unwrap(), LeftToBlock::Late), "refused, and told");
    }

    #[test]
    fn a_match_journaled_without_its_execution_on_an_orphaned_sighting_is_recovered() {
        use crate::domain::{Price, Shares};
        use crate::store::OrderStatus;
        let (_dir, mut s, row) = copied_sighting();
        s.order_sent(row, false).unwrap();
        s.orphan_tx(B256::repeat_byte(1)).unwrap();
        // It matched, and the daemon stopped before the execution was written.
        s.order_outcome(row, OrderStatus::Matched, Some((10_000_000, 5_000_000)), "matched").unwrap();
        let left = s.unfinished().unwrap();
        assert_eq!(left.iter().map(|p| p.row).collect::<Vec<_>>(), [row], "the shares we hold are booked");
        assert!(left[0].intent.is_some());
        // Once booked, nothing is left to recover.
        let e = crate::domain::Execution {
            fill_row: row,
            side: left[0].fill.side,
            token_id: left[0].fill.token_id,
            shares: Shares(10_000_000),
            price: Price(500_000),
            usdc: crate::domain::Usdc(5_000_000),
            mode: crate::domain::ExecMode::Live,
            at_ms: 1,
        };
        assert!(s.record_execution(&e, &WALLET).unwrap().is_some());
        assert!(s.unfinished().unwrap().is_empty());
    }

    #[test]
    fn a_waiting_fill_is_handed_on_by_its_block_and_an_orphan_mined_after_all_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        // Trigger confirmed: journaled, not handed on, not recovered at a restart.
        assert!(s.journal_pending(&[fill(1, 9, 0)], "pending", ActOnSight::of(&HashSet::new())).unwrap().is_empty());
        assert!(s.unfinished().unwrap().is_empty(), "a waiting fill is not copied at a restart");
        let o = s.orphan_tx(B256::repeat_byte(1)).unwrap();
        assert_eq!(o.len(), 1);
        assert!(!o[0].copied);
        assert_eq!(rows(&s)[0].4, "withdrawn");
        // Mined after all: revived and handed on by the block.
        let out = s.journal_range(&[fill(1, 9, 6)], (6, B256::repeat_byte(6)), &[(6, B256::repeat_byte(6))]).unwrap();
        assert_eq!(out.to_copy.len(), 1);
        let r = rows(&s);
        assert_eq!((r[0].1, r[0].2, r[0].3.as_deref(), r[0].4.as_str()), (false, false, Some("chain"), "pending"));
    }

    #[test]
    fn a_copy_refused_as_gone_before_it_left_is_copied_afresh_when_its_trade_is_mined_after_all() {
        let gone = crate::risk::reason::TARGET_FILL_GONE;
        // (sent before it was found gone, copied afresh once mined)
        for (posted, copied_again) in [(false, true), (true, false)] {
            let (_dir, mut s, row) = copied_sighting();
            if posted {
                s.order_sent(row, false).unwrap();
            }
            // The pool's follower orphans it while the order waits its turn; the executor refuses.
            assert!(s.orphan_tx(B256::repeat_byte(1)).unwrap()[0].copied);
            s.order_outcome(row, crate::store::OrderStatus::Rejected, None, "target_fill_gone: gone").unwrap();
            s.record_rejection(row, gone, "gone").unwrap();
            let status = if posted { "rejected" } else { "withdrawn" };
            assert_eq!(rows(&s)[0].4, status, "posted: {posted}");
            // Mined after all.
            let out =
                s.journal_range(&[fill(1, 9, 6)], (6, B256::repeat_byte(6)), &[(6, B256::repeat_byte(6))]).unwrap();
            assert_eq!(out.to_copy.len() == 1, copied_again, "posted: {posted}");
            assert_eq!(out.to_copy.first().map(|p| p.intent.is_none()), copied_again.then_some(true));
        }
    }

    /// An orphan whose sighting was refused (a paused target, a stale fill) is never adopted: a
    /// later fill of the same order and size is decided on its own, not refused with it.
    #[test]
    fn a_refused_orphan_is_not_adopted_by_a_later_fill() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        assert!(s.journal_pending(&[fill(1, 9, 0)], "pending", ActOnSight::of(&HashSet::new())).unwrap().is_empty());
        s.conn.execute("UPDATE fills SET status = 'rejected', reason = 'target_paused'", []).unwrap();
        assert_eq!(s.orphan_tx(B256::repeat_byte(1)).unwrap().len(), 1);
        let out = s.journal_range(&[fill(2, 9, 6)], (6, B256::repeat_byte(6)), &[(6, B256::repeat_byte(6))]).unwrap();
        assert_eq!((out.to_copy.len(), rows(&s).len()), (1, 2), "{:?}", rows(&s));
    }

    #[test]
    fn an_orphan_is_adopted_by_a_replacement_for_an_hour_and_then_no_longer_waits() {
        let hour = ORPHAN_ADOPTABLE_MS;
        // (how long ago the orphan was seen, rows after its replacement is mined, still waiting)
        for (age_ms, rows_after, waiting) in [(60_000, 1, true), (hour + 60_000, 2, false)] {
            let dir = tempfile::tempdir().unwrap();
            let mut s = Store::open(&dir.path().join("j.db")).unwrap();
            assert!(
                s.journal_pending(&[fill(1, 9, 0)], "pending", ActOnSight::of(&HashSet::new())).unwrap().is_empty()
            );
            assert_eq!(s.orphan_tx(B256::repeat_byte(1)).unwrap().len(), 1);
            s.conn.execute("UPDATE fills SET seen_at_ms = ?1", [now_ms() - age_ms]).unwrap();
            assert_eq!(anything_waiting(&s.conn, now_ms()).unwrap().0, waiting, "{age_ms}");
            // The operator's retry of that match, mined as transaction 2: handed on either way
            // (the orphan was never acted on), as the orphan's row or as a row of its own.
            let out =
                s.journal_range(&[fill(2, 9, 6)], (6, B256::repeat_byte(6)), &[(6, B256::repeat_byte(6))]).unwrap();
            assert_eq!(out.to_copy.len(), 1, "{age_ms}");
            assert_eq!(rows(&s).len(), rows_after, "{age_ms}: {:?}", rows(&s));
        }
    }

    #[test]
    fn a_pending_sell_mined_under_a_replacement_is_known_at_its_block() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let now: HashSet<Address> = [WALLET].into();
        let sell = |tx: u8, block: u64, log_index: u64| TargetFill {
            side: crate::domain::Side::Sell,
            log_index,
            ..fill(tx, 9, block)
        };
        // Seen pending while the target's copies hold none of the token: journaled, waiting for
        // its block (the target's BUY of it may come first there, unread yet).
        let other = TargetFill { token_id: crate::domain::TokenId::from(777u64), ..sell(4, 0, 0) };
        assert!(s.journal_pending(&[other], "pending", ActOnSight::of(&now)).unwrap().is_empty());
        // An earlier BUY of the target's, copied: its copies hold the token, the sale is acted on.
        let earlier = fill(5, 5, 5);
        let b5 = (5, B256::repeat_byte(5));
        let copied = s.journal_range(std::slice::from_ref(&earlier), b5, &[b5]).unwrap().to_copy[0].row;
        let (shares, price) = (crate::domain::Shares(10_000_000), crate::domain::Price(500_000));
        assert!(s.record_intent(&crate::domain::OrderIntent::for_fill(&earlier, copied, shares, price)).unwrap());
        let exec = crate::domain::Execution {
            fill_row: copied,
            side: crate::domain::Side::Buy,
            token_id: earlier.token_id,
            shares,
            price,
            usdc: crate::domain::Usdc(5_000_000),
            mode: crate::domain::ExecMode::Paper,
            at_ms: 1,
        };
        s.record_execution(&exec, &earlier.wallet).unwrap();
        let row = s.journal_pending(&[sell(1, 0, 0)], "pending", ActOnSight::of(&now)).unwrap()[0].row;
        assert_eq!(s.mined_at(row).unwrap(), None, "not mined yet");
        // Block 6: the target buys 10 first, then its sale is mined as transaction 2.
        let buy = TargetFill { log_index: 0, ..fill(3, 8, 6) };
        let b6 = (6, B256::repeat_byte(6));
        s.journal_range(&[buy, sell(2, 6, 1)], b6, &[b6]).unwrap();
        assert_eq!(s.mined_at(row).unwrap(), Some((6, 10_000_000)));
    }

    /// What a target traded of a token earlier in a fill's block comes from the journal, so a
    /// restart between two of its sales in one block, or a reorg's re-read, sizes the second on
    /// the balance the first left. A fill a reorg withdrew, or of the branch it replaced, does not
    /// count.
    #[test]
    fn a_mined_fill_knows_what_its_wallet_traded_earlier_in_its_block() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let sell = |tx: u8, log_index: u64, shares: i64| TargetFill {
            side: crate::domain::Side::Sell,
            log_index,
            shares: crate::domain::Shares(shares),
            ..fill(tx, tx, 6)
        };
        let other_token = TargetFill { log_index: 1, token_id: alloy::primitives::U256::from(4242), ..sell(4, 1, 7) };
        let b6 = (6, B256::repeat_byte(6));
        s.journal_range(&[sell(1, 0, 600), other_token, sell(2, 2, 400), sell(3, 3, 50)], b6, &[b6]).unwrap();
        let row_of = |s: &Store, tx: u8| -> i64 {
            s.conn
                .query_row("SELECT id FROM fills WHERE tx_hash = ?1", [format!("{:#x}", B256::repeat_byte(tx))], |r| {
                    r.get(0)
                })
                .unwrap()
        };
        assert_eq!(s.mined_at(row_of(&s, 1)).unwrap(), Some((6, 0)), "first in its block");
        assert_eq!(s.mined_at(row_of(&s, 2)).unwrap(), Some((6, -600)), "after the first sale, not the other token");
        assert_eq!(s.mined_at(row_of(&s, 3)).unwrap(), Some((6, -1_000)));
        s.conn.execute("UPDATE fills SET status = 'withdrawn' WHERE id = ?1", [row_of(&s, 1)]).unwrap();
        assert_eq!(s.mined_at(row_of(&s, 3)).unwrap(), Some((6, -400)), "a withdrawn fill does not count");
        // Block 6 of the branch a reorg replaced: its fills at that height are not this block's.
        s.conn
            .execute(
                "UPDATE fills SET block_hash = ?2 WHERE id = ?1",
                (row_of(&s, 2), B256::repeat_byte(7).to_string()),
            )
            .unwrap();
        assert_eq!(s.mined_at(row_of(&s, 3)).unwrap(), Some((6, 0)), "another branch's block does not count");
    }
}
