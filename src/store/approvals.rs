//! Approvals a redemption waits for, journaled before they are sent: after a restart the daemon
//! follows the one it sent (sent again, re-priced) instead of signing a second one behind it. A
//! second approval would not only cost its gas: signed with the next nonce, it and everything the
//! signer sends after it wait behind the first, which nobody re-prices any more.

use alloy::primitives::{Address, B256};
use rusqlite::params;

use super::{Store, StoreResult, hex_addr, hex_b256, now_ms};
use crate::domain::addr_lower;

/// An approval journaled and not yet seen in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentApproval {
    /// The token contract whose operator it sets.
    pub book: Address,
    /// The operator it approves.
    pub operator: Address,
    /// Its transaction's hash.
    pub tx_hash: B256,
    /// Its signed bytes, hex.
    pub raw_tx: String,
}

impl Store {
    /// Journals approval `a` before it is sent; it replaces any earlier one of the same operator
    /// (a re-priced transaction stands for the one it replaced).
    ///
    /// # Errors
    /// On a database error.
    pub fn approval_signed(&self, a: &SentApproval) -> StoreResult<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO approvals (book, operator, tx_hash, raw_tx, signed_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![addr_lower(&a.book), addr_lower(&a.operator), a.tx_hash.to_string(), a.raw_tx, now_ms()],
        )?;
        Ok(())
    }

    /// Forgets the approval of `operator` on `book`: in effect, or never to be mined.
    ///
    /// # Errors
    /// On a database error.
    pub fn approval_settled(&self, book: &Address, operator: &Address) -> StoreResult<()> {
        self.conn.execute(
            "DELETE FROM approvals WHERE book = ?1 AND operator = ?2",
            params![addr_lower(book), addr_lower(operator)],
        )?;
        Ok(())
    }

    /// The approvals sent and not yet seen in effect.
    ///
    /// # Errors
    /// On a database error, or a row that does not parse.
    pub fn sent_approvals(&self) -> StoreResult<Vec<SentApproval>> {
        let mut st =
            self.conn.prepare("SELECT book, operator, tx_hash, raw_tx FROM approvals ORDER BY signed_at_ms")?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (book, operator, tx_hash, raw_tx) = row?;
            out.push(SentApproval {
                book: hex_addr(&book, "approvals.book")?,
                operator: hex_addr(&operator, "approvals.operator")?,
                tx_hash: hex_b256(&tx_hash, "approvals.tx_hash")?,
                raw_tx,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256};

    use super::{SentApproval, Store};

    #[test]
    fn an_approval_is_kept_until_settled_and_a_repriced_one_stands_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("j.db")).unwrap();
        let (ctf, adapter, router) =
            (Address::with_last_byte(1), Address::with_last_byte(2), Address::with_last_byte(3));
        let sent = |operator, tx: u8| SentApproval {
            book: ctf,
            operator,
            tx_hash: B256::repeat_byte(tx),
            raw_tx: format!("0x{tx:02x}"),
        };
        assert!(s.sent_approvals().unwrap().is_empty());
        s.approval_signed(&sent(adapter, 1)).unwrap();
        s.approval_signed(&sent(router, 2)).unwrap();
        s.approval_signed(&sent(adapter, 3)).unwrap();
        let mut kept = s.sent_approvals().unwrap();
        kept.sort_by_key(|a| a.operator);
        assert_eq!(kept, vec![sent(adapter, 3), sent(router, 2)], "the re-priced one replaced the first");
        s.approval_settled(&ctf, &adapter).unwrap();
        assert_eq!(s.sent_approvals().unwrap(), vec![sent(router, 2)]);
        // Reopened: still there.
        drop(s);
        let s = Store::open(&dir.path().join("j.db")).unwrap();
        assert_eq!(s.sent_approvals().unwrap(), vec![sent(router, 2)]);
    }
}
