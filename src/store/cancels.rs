//! Cancels we owe the exchange: a GTD order given up after "not now" answers may rest on the book
//! after all (an answer lost on the way), and a cancel of it that failed is asked again until it is
//! answered or the order expires. Kept in the journal so a restart goes on asking: nothing else
//! watches such an order, and a halt does not reach it.

use rusqlite::params;

use super::{Store, StoreResult};

/// A cancel still owed for one of our GTD orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedCancel {
    /// The fill the order copies.
    pub fill_row: i64,
    /// The exchange's id of the order (`0x…`).
    pub order_id: String,
    /// The order's expiry, unix seconds: it cannot fill after that, and nothing is owed.
    pub until_s: i64,
}

impl Store {
    /// Notes that the cancel of fill `fill_row`'s order failed and is owed until `until_s`.
    ///
    /// # Errors
    /// On a database error.
    pub fn owe_cancel(&self, fill_row: i64, until_s: i64) -> StoreResult<()> {
        self.conn
            .execute("UPDATE orders SET cancel_owed_until_s = ?2 WHERE fill_id = ?1", params![fill_row, until_s])?;
        Ok(())
    }

    /// Notes that the exchange answered the cancel of fill `fill_row`'s order (or that it expired).
    ///
    /// # Errors
    /// On a database error.
    pub fn cancel_paid(&self, fill_row: i64) -> StoreResult<()> {
        self.conn.execute("UPDATE orders SET cancel_owed_until_s = NULL WHERE fill_id = ?1", [fill_row])?;
        Ok(())
    }

    /// The cancels still owed at `now_s`; those of orders expired by then are forgotten.
    ///
    /// # Errors
    /// On a database error.
    pub fn owed_cancels(&self, now_s: i64) -> StoreResult<Vec<OwedCancel>> {
        self.conn.execute(
            "UPDATE orders SET cancel_owed_until_s = NULL WHERE cancel_owed_until_s IS NOT NULL AND cancel_owed_until_s <= ?1",
            [now_s],
        )?;
        let mut st = self.conn.prepare(
            "SELECT fill_id, order_id, cancel_owed_until_s FROM orders WHERE cancel_owed_until_s IS NOT NULL \
             ORDER BY fill_id",
        )?;
        let rows =
            st.query_map([], |r| Ok(OwedCancel { fill_row: r.get(0)?, order_id: r.get(1)?, until_s: r.get(2)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::B256;

    use super::*;
    use crate::clob::order::StoredOrder;
    use crate::domain::{OrderIntent, Price, Shares, Side};

    /// A journal with two stored orders; returns their fill rows.
    fn two_orders(s: &mut Store) -> Vec<i64> {
        let fills = [crate::store::tests::fill_in(1, 1, 5), crate::store::tests::fill_in(2, 2, 5)];
        let out = s.journal_range(&fills, (5, B256::repeat_byte(5)), &[]).unwrap();
        let mut rows = Vec::new();
        for (p, id) in out.to_copy.iter().zip([0x51u8, 0x52]) {
            assert!(
                s.record_intent(&OrderIntent::for_fill(&p.fill, p.row, Shares(10_000_000), Price(500_000))).unwrap()
            );
            let order = StoredOrder {
                order_id: B256::repeat_byte(id),
                ..StoredOrder::for_test(Side::Buy, 10_000_000, 5_000_000)
            };
            s.record_order(p.row, &order).unwrap();
            rows.push(p.row);
        }
        rows
    }

    #[test]
    fn a_cancel_is_owed_until_it_is_paid_or_its_order_expires() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let rows = two_orders(&mut s);
        assert!(s.owed_cancels(1_000).unwrap().is_empty(), "nothing owed yet");
        s.owe_cancel(rows[0], 2_000).unwrap();
        s.owe_cancel(rows[1], 3_000).unwrap();
        let owed = s.owed_cancels(1_000).unwrap();
        assert_eq!(
            owed.iter().map(|o| (o.fill_row, o.until_s)).collect::<Vec<_>>(),
            [(rows[0], 2_000), (rows[1], 3_000)]
        );
        assert_eq!(owed[0].order_id, format!("{:#x}", B256::repeat_byte(0x51)), "the id the exchange knows");
        // Reopened: still owed (a restart goes on asking).
        drop(s);
        let s = Store::open(&dir.path().join("j.db")).unwrap();
        s.cancel_paid(rows[1]).unwrap();
        assert_eq!(s.owed_cancels(1_000).unwrap().len(), 1, "a paid cancel is not owed");
        assert!(s.owed_cancels(2_000).unwrap().is_empty(), "an expired order cannot fill: nothing is owed");
        assert!(s.owed_cancels(0).unwrap().is_empty(), "and it is forgotten, not owed again");
    }
}
