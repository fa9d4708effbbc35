//! Live orders in the journal: the signed order stored before it is sent, its outcome after, and
//! its settlement on chain.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, StoreResult, dec_u256, now_ms};
use crate::clob::order::StoredOrder;
use crate::domain::{ExecMode, Execution, Price, Shares, Side, TokenId, Usdc};

/// A stored live order and what is known of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    /// The fill it copies.
    pub fill_row: i64,
    /// The signed order.
    pub order: StoredOrder,
    /// Where it stands.
    pub status: OrderStatus,
    /// How many times it was posted.
    pub posts: i64,
    /// Shares and pUSD, once it matched.
    pub amounts: Option<(i64, i64)>,
    /// The last thing the exchange (or we) said about it.
    pub message: Option<String>,
    /// When it was last sent, unix ms (`None`: never).
    pub last_sent_ms: Option<i64>,
    /// The exchange said it holds it (it rests, or answered Duplicated or matched without
    /// amounts): never sent again, whatever a lookup answers.
    pub exchange_has: bool,
    /// Sends after a lookup answered null, over the order's life.
    pub null_resends: u32,
}

/// Where one of our orders stands, as the journal keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// Signed and stored, never posted.
    Signed,
    /// Posted; the exchange's answer is not in yet.
    Sent,
    /// Matched (shares and pUSD known); settles on chain.
    Matched,
    /// Resting on the book (GTD).
    Live,
    /// Accepted for delayed matching.
    Delayed,
    /// Nothing matched (FAK/FOK killed, or cancelled).
    NoFill,
    /// Refused by the exchange.
    Rejected,
    /// Its fate is not known yet: looked up, never sent again blindly.
    Unknown,
}

impl OrderStatus {
    /// The name stored in the journal.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Signed => "signed",
            Self::Sent => "sent",
            Self::Matched => "matched",
            Self::Live => "live",
            Self::Delayed => "delayed",
            Self::NoFill => "no_fill",
            Self::Rejected => "rejected",
            Self::Unknown => "unknown",
        }
    }

    /// Reads a stored name.
    ///
    /// # Errors
    /// A name the journal should not hold.
    pub fn parse(s: &str) -> StoreResult<Self> {
        Ok(match s {
            "signed" => Self::Signed,
            "sent" => Self::Sent,
            "matched" => Self::Matched,
            "live" => Self::Live,
            "delayed" => Self::Delayed,
            "no_fill" => Self::NoFill,
            "rejected" => Self::Rejected,
            "unknown" => Self::Unknown,
            other => return Err(StoreError::Corrupt { column: "orders.status", value: other.to_owned() }),
        })
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A matched order whose place in our books must change: its settlement on chain is overdue
/// (take it out), or it settled after it was taken out (put it back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsettled {
    /// The fill it copies.
    pub fill_row: i64,
    /// The CLOB order id.
    pub order_id: String,
    /// When it matched, unix ms.
    pub matched_at_ms: i64,
    /// True when it settled after it had been taken out of the books.
    pub settled_late: bool,
    /// A SELL not overdue itself, of a token whose earlier BUY is: it sold shares that BUY was to
    /// deliver, so it cannot have settled either, and goes out first (else the BUY's take-out
    /// finds its shares sold, and this SELL's later take-out gives back shares we never owned).
    pub with_buy: bool,
}

impl Store {
    /// Stores a signed order for `fill_row` (whose intent is journaled). Never replaces one: an
    /// existing order for the fill is returned instead, so the fill keeps one order forever.
    ///
    /// # Errors
    /// On a database error.
    pub fn record_order(&mut self, fill_row: i64, o: &StoredOrder) -> StoreResult<OrderRow> {
        let json =
            serde_json::to_string(o).map_err(|e| StoreError::Corrupt { column: "signed", value: e.to_string() })?;
        let now = now_ms();
        self.conn.execute(
            "INSERT OR IGNORE INTO orders (fill_id, order_id, signed, status, created_at_ms, updated_at_ms) \
             VALUES (?1, ?2, ?3, 'signed', ?4, ?4)",
            params![fill_row, o.id_hex(), json, now],
        )?;
        self.order_for(fill_row)?.ok_or(StoreError::Corrupt { column: "orders", value: fill_row.to_string() })
    }

    /// The order stored for a fill, if any.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn order_for(&self, fill_row: i64) -> StoreResult<Option<OrderRow>> {
        let row = self
            .conn
            .query_row(
                // Orders journaled before the send time was kept: their last update is no earlier.
                "SELECT signed, status, posts, shares, usdc, message, COALESCE(last_sent_ms, updated_at_ms), \
                 exchange_has = 1 OR status IN ('live', 'delayed'), null_resends FROM orders WHERE fill_id = ?1",
                [fill_row],
                |r| {
                    let amounts = match (r.get::<_, Option<i64>>(3)?, r.get::<_, Option<i64>>(4)?) {
                        (Some(s), Some(u)) => Some((s, u)),
                        _ => None,
                    };
                    let sent = if r.get::<_, i64>(2)? > 0 { Some(r.get::<_, i64>(6)?) } else { None };
                    let held: bool = r.get(7)?;
                    let null_resends = u32::try_from(r.get::<_, i64>(8)?).unwrap_or(u32::MAX);
                    Ok((
                        null_resends,
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        amounts,
                        r.get(5)?,
                        sent,
                        held,
                    ))
                },
            )
            .optional()?;
        row.map(|(null_resends, signed, status, posts, amounts, message, last_sent_ms, exchange_has)| {
            let order =
                serde_json::from_str(&signed).map_err(|_| StoreError::Corrupt { column: "signed", value: signed })?;
            Ok(OrderRow {
                fill_row,
                order,
                status: OrderStatus::parse(&status)?,
                posts,
                amounts,
                message,
                last_sent_ms,
                exchange_has,
                null_resends,
            })
        })
        .transpose()
    }

    /// Notes that the exchange said it holds the order (see [`OrderRow::exchange_has`]).
    ///
    /// # Errors
    /// On a database error.
    pub fn order_held(&self, fill_row: i64) -> StoreResult<()> {
        self.conn.execute("UPDATE orders SET exchange_has = 1 WHERE fill_id = ?1", [fill_row])?;
        Ok(())
    }

    /// Counts one more send of the order, before it leaves; `after_null`: a send because a lookup
    /// answered null (see [`OrderRow::null_resends`]).
    ///
    /// # Errors
    /// On a database error.
    pub fn order_sent(&self, fill_row: i64, after_null: bool) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE orders SET posts = posts + 1, status = CASE status WHEN 'matched' THEN status ELSE 'sent' END, \
             updated_at_ms = ?2, last_sent_ms = ?2, null_resends = null_resends + ?3 WHERE fill_id = ?1",
            params![fill_row, now_ms(), i64::from(after_null)],
        )?;
        Ok(())
    }

    /// Takes back the count of an order's first send, which a halt stopped before it left: the
    /// order was never posted, so it is a signed order again (a crash before this keeps it
    /// counted, and the order is then looked up). Returns whether it was taken back.
    ///
    /// # Errors
    /// On a database error.
    pub fn order_never_sent(&self, fill_row: i64) -> StoreResult<bool> {
        let n = self.conn.execute(
            "UPDATE orders SET posts = 0, status = 'signed', last_sent_ms = NULL, updated_at_ms = ?2 \
             WHERE fill_id = ?1 AND posts = 1 AND status = 'sent'",
            params![fill_row, now_ms()],
        )?;
        Ok(n == 1)
    }

    /// Records what became of the order (amounts in base units when it matched).
    ///
    /// # Errors
    /// On a database error.
    pub fn order_outcome(
        &self,
        fill_row: i64,
        status: OrderStatus,
        amounts: Option<(i64, i64)>,
        message: &str,
    ) -> StoreResult<()> {
        self.conn.execute(
            // A match (booked from the POST, a lookup or our fill on chain) is never downgraded by a
            // later answer about the same order: an inconclusive one, or the refusal of the same
            // order sent again (the exchange refuses a copy of an order it already filled).
            // Nor is a part already booked forgotten: an answer without amounts keeps them.
            // Resting (live, delayed) is the exchange saying it holds the order: kept once said, when
            // a later answer (an unknown outcome) replaces the status.
            "UPDATE orders SET status = ?2, shares = COALESCE(?3, shares), usdc = COALESCE(?4, usdc), message = ?5, \
             updated_at_ms = ?6, exchange_has = MAX(exchange_has, ?2 IN ('live', 'delayed')) \
             WHERE fill_id = ?1 AND NOT (status = 'matched' AND ?2 != 'matched')",
            params![fill_row, status.as_str(), amounts.map(|a| a.0), amounts.map(|a| a.1), message, now_ms()],
        )?;
        Ok(())
    }

    /// Leaves a pending fill pending, noting that its order's outcome is unknown.
    ///
    /// # Errors
    /// On a database error.
    pub fn mark_unresolved(&self, row: i64, detail: &str) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE fills SET reason = 'unknown', detail = ?2 WHERE id = ?1 AND status = 'pending'",
            params![row, detail],
        )?;
        Ok(())
    }

    /// The orders `/health` watches: sent but with no final answer (their fill still pending), and
    /// matched but not yet seen settling on chain (count, and the oldest one's last update, unix ms).
    ///
    /// # Errors
    /// On a database error.
    pub fn order_health(&self) -> StoreResult<OrderHealth> {
        let unresolved: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM orders o JOIN fills f ON f.id = o.fill_id WHERE f.status = 'pending' AND o.posts > 0",
            [],
            |r| r.get(0),
        )?;
        let (awaiting, oldest): (i64, Option<i64>) = self.conn.query_row(
            "SELECT COUNT(*), MIN(updated_at_ms) FROM orders WHERE status = 'matched' AND settled = 0",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(OrderHealth { unresolved, awaiting_settlement: awaiting, oldest_awaiting_ms: oldest })
    }

    /// Matched orders not seen on chain since before `before_ms`, the SELLs that sold what such a
    /// BUY was to deliver (see [`Unsettled::with_buy`]), and orders that settled after they were
    /// taken out of the books.
    ///
    /// # Errors
    /// On a database error.
    pub fn unsettled_before(&self, before_ms: i64) -> StoreResult<Vec<Unsettled>> {
        let mut st = self.conn.prepare(
            "SELECT fill_id, order_id, updated_at_ms, settled = 2, 0 FROM orders \
             WHERE (status = 'matched' AND settled = 0 AND updated_at_ms < ?1) OR settled = 2 \
             UNION ALL SELECT o.fill_id, o.order_id, o.updated_at_ms, 0, 1 FROM orders o \
             JOIN executions e ON e.fill_id = o.fill_id \
             WHERE o.status = 'matched' AND o.settled = 0 AND o.updated_at_ms >= ?1 AND e.side = 'SELL' \
             AND EXISTS (SELECT 1 FROM orders ob JOIN executions eb ON eb.fill_id = ob.fill_id \
               WHERE ob.status = 'matched' AND ob.settled = 0 AND ob.updated_at_ms < ?1 AND eb.side = 'BUY' \
               AND eb.token_id = e.token_id AND eb.executed_at_ms <= e.executed_at_ms) \
             ORDER BY 3",
        )?;
        let rows = st.query_map([before_ms], |r| {
            Ok(Unsettled {
                fill_row: r.get(0)?,
                order_id: r.get(1)?,
                matched_at_ms: r.get(2)?,
                settled_late: r.get(3)?,
                with_buy: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A fill's execution with its realized P&L.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn execution_for(&self, row: i64) -> StoreResult<Option<(Execution, Usdc)>> {
        let r = self
            .conn
            .query_row(
                "SELECT side, token_id, shares, price, usdc, realized_pnl, executed_at_ms FROM executions WHERE fill_id = ?1",
                [row],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        [r.get::<_, i64>(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?],
                    ))
                },
            )
            .optional()?;
        let Some((side, token, n)) = r else { return Ok(None) };
        let side = Side::parse(&side).ok_or(StoreError::Corrupt { column: "executions.side", value: side })?;
        let e = Execution {
            fill_row: row,
            side,
            token_id: dec_u256(&token, "executions.token_id")?,
            shares: Shares(n[0]),
            price: Price(n[1]),
            usdc: Usdc(n[2]),
            mode: ExecMode::Live,
            at_ms: n[4],
        };
        Ok(Some((e, Usdc(n[3]))))
    }

    /// Stores the latest mark of each token still held. A mark read for a position the journal has
    /// closed meanwhile (its row deleted, and its mark with it) is not written back: bought again
    /// later, the new position would be valued at it after a restart.
    ///
    /// # Errors
    /// On a database error.
    pub fn set_marks(&mut self, marks: &std::collections::HashMap<TokenId, Price>) -> StoreResult<()> {
        let tx = self.conn.savepoint()?;
        let now = now_ms();
        for (t, p) in marks {
            tx.execute(
                "INSERT INTO marks (token_id, price, at_ms) SELECT ?1, ?2, ?3 \
                 WHERE EXISTS (SELECT 1 FROM positions WHERE token_id = ?1 AND shares > 0) \
                 ON CONFLICT (token_id) DO UPDATE SET price = ?2, at_ms = ?3",
                params![t.to_string(), p.0, now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The last stored mark of each token: after a restart the book is valued at what the CLOB last
    /// said, as the day's opening was, rather than at cost until the next midpoints.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn marks(&self) -> StoreResult<std::collections::HashMap<TokenId, Price>> {
        let mut st = self.conn.prepare("SELECT token_id, price FROM marks")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        rows.map(|r| {
            let (t, p) = r?;
            Ok((dec_u256(&t, "marks.token_id")?, Price(p)))
        })
        .collect()
    }
}

/// Orders still in flight, for `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OrderHealth {
    /// Sent, no final answer yet.
    pub unresolved: i64,
    /// Matched, not yet seen on chain.
    pub awaiting_settlement: i64,
    /// Last update of the oldest of those, unix ms.
    pub oldest_awaiting_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mark is kept for a position held, never written back for one closed meanwhile.
    #[test]
    fn marks_are_stored_only_for_positions_held() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        s.conn
            .execute(
                "INSERT INTO positions (token_id, shares, cost, updated_at_ms) VALUES ('1', 10000000, 5000000, 0)",
                [],
            )
            .unwrap();
        let marks = [(TokenId::from(1u64), Price(600_000)), (TokenId::from(2u64), Price(400_000))].into();
        s.set_marks(&marks).unwrap();
        let stored = s.marks().unwrap();
        assert_eq!(stored.len(), 1, "{stored:?}");
        assert_eq!(stored.get(&TokenId::from(1u64)), Some(&Price(600_000)));
        // A newer mark replaces the old one.
        s.set_marks(&[(TokenId::from(1u64), Price(650_000))].into()).unwrap();
        assert_eq!(s.marks().unwrap().get(&TokenId::from(1u64)), Some(&Price(650_000)));
    }
}
