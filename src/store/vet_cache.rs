//! `polycopy vet`'s cache of a wallet's fills: the blocks already read for it (one contiguous range
//! of buried blocks) and what was found there, so a second run reads only what is new and an
//! interrupted read resumes where it stopped. Written by the CLI on its own connection; the daemon
//! never touches these tables.

use alloy::primitives::Address;
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, StoreResult, dec_u256, now_ms};
use crate::domain::{Price, Shares, Side, addr_lower};
use crate::vet::Trade;

/// The blocks read for a wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    /// First block read.
    pub from: u64,
    /// Last block read.
    pub to: u64,
}

fn block(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// The blocks read for `wallet` under `exchanges` (a cache made under another set of
    /// exchanges is forgotten: it would miss fills).
    ///
    /// # Errors
    /// On a database error.
    pub fn vet_coverage(&self, wallet: Address, exchanges: &str) -> StoreResult<Option<Coverage>> {
        let w = addr_lower(&wallet);
        let row: Option<(String, i64, i64)> = self
            .conn
            .query_row("SELECT exchanges, from_block, to_block FROM vet_scans WHERE wallet = ?1", [&w], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        match row {
            Some((ex, from, to)) if ex == exchanges => {
                Ok(Some(Coverage { from: u64::try_from(from).unwrap_or(0), to: u64::try_from(to).unwrap_or(0) }))
            }
            Some(_) => {
                self.vet_forget(wallet)?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Forgets everything cached for `wallet`.
    ///
    /// # Errors
    /// On a database error.
    pub fn vet_forget(&self, wallet: Address) -> StoreResult<()> {
        let w = addr_lower(&wallet);
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM vet_fills WHERE wallet = ?1", [&w])?;
        tx.execute("DELETE FROM vet_scans WHERE wallet = ?1", [&w])?;
        tx.commit()?;
        Ok(())
    }

    /// Records that `from..=to` was read for `wallet` and held `fills`, in one transaction. The
    /// cached range grows to cover it only when the two touch (the caller reads outward from it);
    /// a range apart from it (another vet of the same wallet ran meanwhile) keeps its fills but
    /// claims nothing, so the blocks between are never served as read.
    ///
    /// # Errors
    /// On a database error.
    pub fn vet_store(
        &self,
        wallet: Address,
        exchanges: &str,
        from: u64,
        to: u64,
        fills: &[(u64, u64, Trade)],
    ) -> StoreResult<()> {
        let w = addr_lower(&wallet);
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO vet_fills (wallet, block_number, log_index, at_ms, side, token_id, shares, price, taker)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (bn, li, t) in fills {
                st.execute(params![
                    w,
                    block(*bn),
                    block(*li),
                    t.at_ms,
                    t.side.as_str(),
                    t.token_id.to_string(),
                    t.shares.0,
                    t.price.0,
                    t.taker
                ])?;
            }
        }
        tx.execute(
            "INSERT INTO vet_scans (wallet, exchanges, from_block, to_block, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (wallet) DO UPDATE SET from_block = min(from_block, ?3), to_block = max(to_block, ?4),
             updated_at_ms = ?5 WHERE ?3 <= to_block + 1 AND ?4 + 1 >= from_block",
            params![w, exchanges, block(from), block(to), now_ms()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The cached fills of `wallet` in `from..=to`, in chain order.
    ///
    /// # Errors
    /// On a database error or a value that does not parse back.
    pub fn vet_fills(&self, wallet: Address, from: u64, to: u64) -> StoreResult<Vec<(u64, u64, Trade)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT block_number, log_index, at_ms, side, token_id, shares, price, taker FROM vet_fills
             WHERE wallet = ?1 AND block_number BETWEEN ?2 AND ?3 ORDER BY block_number, log_index",
        )?;
        let rows = st.query_map(params![addr_lower(&wallet), block(from), block(to)], |r| {
            Ok((
                (r.get::<_, i64>(0)?, r.get::<_, i64>(1)?),
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get::<_, Option<bool>>(7)?.unwrap_or(false),
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let ((bn, li), at_ms, side, token, shares, price, taker) = row?;
            let side = Side::parse(&side).ok_or(StoreError::Corrupt { column: "vet_fills.side", value: side })?;
            let token_id = dec_u256(&token, "vet_fills.token_id")?;
            let at = |v: i64| u64::try_from(v).unwrap_or(0);
            let (shares, price) = (Shares(shares), Price(price));
            out.push((at(bn), at(li), Trade { at_ms, side, token_id, shares, price, taker }));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::Address;

    use crate::store::Store;

    /// The cached range grows only by ranges that touch it: two vets of one wallet reading apart
    /// (one of them interrupted) never make the blocks between count as read.
    #[test]
    fn the_cached_range_grows_only_by_ranges_that_touch_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("j.db")).unwrap();
        let w = Address::repeat_byte(7);
        let covered = |s: &Store| s.vet_coverage(w, "ex").unwrap().map(|c| (c.from, c.to));
        s.vet_store(w, "ex", 100, 199, &[]).unwrap();
        s.vet_store(w, "ex", 500, 599, &[]).unwrap();
        assert_eq!(covered(&s), Some((100, 199)), "apart: claims nothing");
        s.vet_store(w, "ex", 200, 299, &[]).unwrap();
        s.vet_store(w, "ex", 50, 99, &[]).unwrap();
        assert_eq!(covered(&s), Some((50, 299)), "touching, on either side");
        s.vet_store(w, "ex", 150, 350, &[]).unwrap();
        assert_eq!(covered(&s), Some((50, 350)), "overlapping");
    }
}
