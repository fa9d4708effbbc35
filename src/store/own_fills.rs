//! Our own fills on chain, booked for orders whose outcome the CLOB never confirmed.
//!
//! The CLOB may answer `null` to a lookup of an order it filled (docs/PROTOCOL.md §7), and a POST may
//! never be answered at all. Our funder's `OrderFilled` on chain, whose order hash is our order id,
//! is the final word: it books the execution, in the same transaction as the order's outcome.

use alloy::primitives::Address;
use rusqlite::{OptionalExtension, params};

use super::journal::record_execution_in;
use super::{Store, StoreError, StoreResult, dec_u256, hex_addr, now_ms};
use crate::domain::{ExecMode, Execution, Price, Shares, Side, Usdc};
use crate::risk::Position;
use crate::store::FillStatus;

/// An order of ours booked from its fill on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnBooking {
    /// What was booked.
    pub exec: Execution,
    /// The target whose fill the order copied.
    pub wallet: Address,
    /// Our position afterwards, as the journal computed it.
    pub position: Position,
    /// P&L realized.
    pub realized: Usdc,
    /// What the journal had decided for the fill before (rejected, withdrawn), when the fill on
    /// chain overturned it: the operator is told, as the decision was wrong.
    pub overturned: Option<FillStatus>,
}

/// What our own fill on chain did to our order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnSettlement {
    /// Not an order of ours, or already settled.
    Nothing,
    /// A booked order is now known to be settled on chain.
    Settled,
    /// An order the CLOB never confirmed is booked from its fill.
    Booked(OwnBooking),
}

impl Store {
    /// Settles our order `order_id` with its fill on chain, in one call on the journal's one thread
    /// (so no outcome the executor journals meanwhile can slip between the two cases): an order
    /// already booked is marked settled (put back in the books if it had been taken out); an order
    /// whose fill is still pending is booked from the fill, in one transaction.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn settle_own_fill(
        &mut self,
        order_id: &str,
        shares: Shares,
        usdc: Usdc,
        tx_hash: &str,
    ) -> StoreResult<OwnSettlement> {
        let id = order_id.to_ascii_lowercase();
        let booked: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM orders o JOIN executions e ON e.fill_id = o.fill_id WHERE o.order_id = ?1)",
            [&id],
            |r| r.get(0),
        )?;
        if booked {
            return Ok(if self.order_settled(&id, tx_hash)? { OwnSettlement::Settled } else { OwnSettlement::Nothing });
        }
        Ok(self.book_own_fill(&id, shares, usdc, tx_hash)?.map_or(OwnSettlement::Nothing, OwnSettlement::Booked))
    }

    /// Books our order `order_id` from its fill on chain (`shares` for `usdc`, in transaction `tx`),
    /// when its fill has no execution yet: still pending, or even decided otherwise (refused after
    /// an unanswered send, say), as what the chain holds is what we own. Returns `None` when there
    /// is nothing to book (not ours, or already booked).
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn book_own_fill(
        &mut self,
        order_id: &str,
        shares: Shares,
        usdc: Usdc,
        tx_hash: &str,
    ) -> StoreResult<Option<OwnBooking>> {
        if shares.0 <= 0 {
            return Ok(None);
        }
        let tx = self.conn.savepoint()?;
        let row: Option<(i64, String, String, String, FillStatus)> = tx
            .query_row(
                "SELECT o.fill_id, i.side, i.token_id, f.wallet, f.status FROM orders o \
                 JOIN intents i ON i.fill_id = o.fill_id JOIN fills f ON f.id = o.fill_id \
                 WHERE o.order_id = ?1 \
                 AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.fill_id = o.fill_id)",
                [order_id.to_ascii_lowercase()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((fill_row, side, token, wallet, status)) = row else { return Ok(None) };
        let overturned = (status != FillStatus::Pending).then_some(status);
        let side = Side::parse(&side).ok_or(StoreError::Corrupt { column: "intents.side", value: side })?;
        let token_id = dec_u256(&token, "intents.token_id")?;
        let wallet = hex_addr(&wallet, "fills.wallet")?;
        let price = i64::try_from(i128::from(usdc.0) * 1_000_000 / i128::from(shares.0)).unwrap_or(0);
        let exec = Execution {
            fill_row,
            side,
            token_id,
            shares,
            price: Price(price),
            usdc,
            mode: ExecMode::Live,
            at_ms: now_ms(),
        };
        tx.execute(
            "UPDATE orders SET status = 'matched', shares = ?2, usdc = ?3, settled = 1, settle_tx = ?4, \
             message = 'booked from our fill on chain', updated_at_ms = ?5 WHERE fill_id = ?1",
            params![fill_row, shares.0, usdc.0, tx_hash, now_ms()],
        )?;
        let booked = record_execution_in(&tx, &exec, &wallet)?;
        tx.commit()?;
        Ok(booked.map(|(position, realized)| OwnBooking { exec, wallet, position, realized, overturned }))
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256, U256};

    use super::*;
    use crate::clob::order::StoredOrder;
    use crate::store::tests::fill_in;

    fn order(id: u8) -> StoredOrder {
        StoredOrder {
            order_id: B256::repeat_byte(id),
            neg_risk: false,
            salt: 1,
            maker: Address::ZERO,
            signer: Address::ZERO,
            token_id: U256::from(7),
            maker_amount: U256::from(5_000_000),
            taker_amount: U256::from(10_000_000),
            side: 0,
            signature_type: 0,
            timestamp: U256::ZERO,
            expiration: U256::ZERO,
            metadata: B256::ZERO,
            builder: B256::ZERO,
            signature: String::new(),
            order_type: "FAK".into(),
        }
    }

    /// Our order's fill on chain is what we own: it is booked whether the copy was still pending
    /// or had been decided otherwise, and the second case says so.
    #[test]
    fn our_fill_on_chain_books_a_pending_or_a_refused_copy_and_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let h = B256::repeat_byte;
        let out = s.journal_range(&[fill_in(1, 1, 5), fill_in(1, 2, 5)], (5, h(5)), &[]).unwrap();
        let rows: Vec<i64> = out.to_copy.iter().map(|p| p.row).collect();
        for (row, id) in rows.iter().zip([0x51, 0x52]) {
            let intent = crate::domain::OrderIntent {
                fill_row: *row,
                token_id: U256::from(7),
                ..crate::domain::test_intent(Side::Buy, 10_000_000, 510_000, 500_000)
            };
            assert!(s.record_intent(&intent).unwrap());
            s.record_order(*row, &order(id)).unwrap();
        }
        s.record_rejection(rows[1], "stale", "refused before the fix").unwrap();
        let id = |b: u8| format!("{:#x}", h(b));
        for (order_id, row, was) in [(id(0x51), rows[0], None), (id(0x52), rows[1], Some(FillStatus::Rejected))] {
            let got = s.settle_own_fill(&order_id, Shares(10_000_000), Usdc(5_100_000), "0x01").unwrap();
            let OwnSettlement::Booked(b) = got else { panic!("{order_id}: {got:?}") };
            assert_eq!((b.exec.fill_row, b.overturned, b.exec.usdc), (row, was, Usdc(5_100_000)));
            assert_eq!(s.fill_outcome(row).unwrap().map(|o| o.status), Some(FillStatus::Executed));
            let again = s.settle_own_fill(&order_id, Shares(10_000_000), Usdc(5_100_000), "0x01").unwrap();
            assert_eq!(again, OwnSettlement::Nothing, "booked once");
        }
        assert_eq!(s.book().unwrap().positions.values().map(|p| p.shares.0).sum::<i64>(), 20_000_000);
    }
}
