//! Journal queries for the operator surfaces (Telegram commands, reports): paused targets, P&L by
//! day, and the history a report is drawn from.

use super::journal::IN_BOOKS;
use std::collections::{BTreeMap, HashSet};

use alloy::primitives::Address;
use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreResult, dec_u256, hex_addr, now_ms};
use crate::domain::{ExecMode, Execution, Price, Shares, Side, TokenId, Usdc, addr_lower, mul_price_floor};
use crate::risk::Written;

/// How long after a SELL of ours was taken out of the books (its match not settled in time) it
/// may still settle late, ms: a market resolving within it waits before paying out what is held.
/// The exchange's own retries of a failed settlement take minutes.
pub const SELL_TAKEN_OUT_GRACE_MS: i64 = 3_600_000;

/// A position closed by its market's resolution (see [`Store::record_settlement`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The settlement, as a SELL of every share at the payout.
    pub exec: Execution,
    /// Our position afterwards, as the journal wrote it (none).
    pub position: Written,
    /// P&L it realized.
    pub realized: Usdc,
}

/// One execution as the report replays it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRow {
    /// The execution.
    pub exec: Execution,
    /// The target copied.
    pub wallet: Address,
    /// P&L it realized.
    pub realized: Usdc,
}

/// A fee one of our orders paid on chain, as the report counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeRow {
    /// The target whose fill the order copied (the operator's own address for a close).
    pub wallet: Address,
    /// pUSD.
    pub fee: Usdc,
    /// When it was read (unix ms), which dates it.
    pub at_ms: i64,
}

/// Counts of a period's fills by wallet and outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FillCounts {
    /// (wallet, status, reason) → count.
    pub by: BTreeMap<(String, super::FillStatus, String), u64>,
}

/// How a held Telegram message is queued again: as it was before the stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldClass {
    /// Merged into digests under a burst.
    Routine,
    /// First, never merged.
    Alert,
    /// A command's reply or a report: never merged (a digest would cut it to a sample).
    Direct,
}

impl HeldClass {
    /// As the journal keeps it (`telegram_held.alert`: 0 and 1 before replies were told apart).
    const fn code(self) -> i64 {
        match self {
            Self::Routine => 0,
            Self::Alert => 1,
            Self::Direct => 2,
        }
    }

    const fn from_code(code: i64) -> Self {
        match code {
            1 => Self::Alert,
            2 => Self::Direct,
            _ => Self::Routine,
        }
    }
}

/// How undelivered Telegram messages are kept ([`Store::hold_telegram`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// At a stop: everything undelivered; `replaces_snapshots`: this run wrote snapshots, all
    /// numbered above the rows it sent again.
    AtStop {
        /// This run wrote snapshots.
        replaces_snapshots: bool,
    },
    /// While delivery fails: what waits now, so that a crash loses none of it.
    Snapshot,
}

/// A Telegram message kept in the journal across a stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldMessage {
    /// Its chat.
    pub chat: i64,
    /// How it was queued.
    pub class: HeldClass,
    /// Its text.
    pub text: String,
    /// Without sound.
    pub silent: bool,
    /// Telegram HTML.
    pub html: bool,
}

impl Store {
    /// The paused targets.
    ///
    /// # Errors
    /// On a database error.
    pub fn paused(&self) -> StoreResult<HashSet<Address>> {
        let mut st = self.conn.prepare("SELECT wallet FROM paused_wallets")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|r| hex_addr(&r?, "paused_wallets.wallet")).collect()
    }

    /// Pauses or unpauses a target; returns false when it already was in that state.
    ///
    /// # Errors
    /// On a database error.
    pub fn set_paused(&self, wallet: &Address, paused: bool, by: &str) -> StoreResult<bool> {
        let n = if paused {
            self.conn.execute(
                "INSERT OR IGNORE INTO paused_wallets (wallet, paused_at, by) VALUES (?1, ?2, ?3)",
                params![addr_lower(wallet), now_ms(), by],
            )?
        } else {
            self.conn.execute("DELETE FROM paused_wallets WHERE wallet = ?1", [addr_lower(wallet)])?
        };
        Ok(n == 1)
    }

    /// Keeps Telegram messages that could not be delivered. At a stop, in place of the rows up to
    /// `resent_up_to` this run sent again (each is delivered, or among `held`) and of this run's
    /// snapshots; a snapshot (while delivery fails) replaces only the previous snapshot, the rows
    /// sent again staying until delivered ([`Holding`]).
    ///
    /// # Errors
    /// On a database error.
    pub fn hold_telegram(&mut self, held: &[HeldMessage], resent_up_to: i64, how: Holding) -> StoreResult<()> {
        let tx = self.conn.savepoint()?;
        if how != Holding::Snapshot {
            tx.execute("DELETE FROM telegram_held WHERE id <= ?1", [resent_up_to])?;
        }
        if how != (Holding::AtStop { replaces_snapshots: false }) {
            // Every row above those sent again is one of this run's snapshots.
            tx.execute("DELETE FROM telegram_held WHERE id > ?1", [resent_up_to])?;
        }
        // Numbered above every row this run sent again: a late "forget up to" from this run (its
        // delivery finishing as the stop writes) must never reach the rows held now.
        let top: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) FROM telegram_held", [], |r| r.get(0))?;
        {
            let mut st = tx.prepare(
                "INSERT INTO telegram_held (id, chat, alert, text, silent, html, held_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (n, h) in (1..).zip(held) {
                let id = top.max(resent_up_to) + n;
                st.execute(params![id, h.chat, h.class.code(), h.text, h.silent, h.html, now_ms()])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The Telegram messages held from before the last stop, oldest first, and the last row's id.
    /// They stay in the journal until delivered ([`Self::forget_held_telegram`]) or held again at
    /// the next stop: a crash before they go out loses none of them.
    ///
    /// # Errors
    /// On a database error.
    pub fn held_telegram(&self) -> StoreResult<(Vec<HeldMessage>, i64)> {
        let mut st = self.conn.prepare("SELECT id, chat, alert, text, silent, html FROM telegram_held ORDER BY id")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                HeldMessage {
                    chat: r.get(1)?,
                    class: HeldClass::from_code(r.get(2)?),
                    text: r.get(3)?,
                    silent: r.get(4)?,
                    html: r.get(5)?,
                },
            ))
        })?;
        let rows = rows.collect::<Result<Vec<_>, _>>()?;
        let last = rows.last().map_or(0, |(id, _)| *id);
        Ok((rows.into_iter().map(|(_, m)| m).collect(), last))
    }

    /// Forgets the held Telegram messages up to row `up_to` (those of `chat` only, when named):
    /// sent again and delivered.
    ///
    /// # Errors
    /// On a database error.
    pub fn forget_held_telegram(&self, up_to: i64, chat: Option<i64>) -> StoreResult<()> {
        self.conn
            .execute("DELETE FROM telegram_held WHERE id <= ?1 AND (?2 IS NULL OR chat = ?2)", params![up_to, chat])?;
        Ok(())
    }

    /// Replaces the record of the targets the daemon watches. A row with an empty address says
    /// the record was written, so that "watching none" is told apart from "never said" (the reorg
    /// sweep takes every wallet for watched until the daemon has said which it watches).
    ///
    /// # Errors
    /// On a database error.
    pub fn set_running_targets(&mut self, targets: &[(Address, String)]) -> StoreResult<()> {
        let tx = self.conn.savepoint()?;
        tx.execute("DELETE FROM running_targets", [])?;
        tx.execute("INSERT INTO running_targets (address, label) VALUES ('', '')", [])?;
        {
            let mut st = tx.prepare("INSERT OR REPLACE INTO running_targets (address, label) VALUES (?1, ?2)")?;
            for (a, label) in targets {
                st.execute(params![addr_lower(a), label])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The targets the daemon last applied, by label: `(address, label)`.
    ///
    /// # Errors
    /// On a database error.
    pub fn running_targets(&self) -> StoreResult<Vec<(String, String)>> {
        let mut st =
            self.conn.prepare("SELECT address, label FROM running_targets WHERE address != '' ORDER BY label")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every execution since `since_ms`, oldest first, with everything before it needed to replay the
    /// book (`since_ms` = 0 for all).
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn executions(&self, since_ms: i64) -> StoreResult<Vec<ExecRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT fill_id, side, token_id, shares, price, usdc, mode, executed_at_ms, wallet, realized_pnl \
             FROM executions e WHERE executed_at_ms >= ?1 AND {IN_BOOKS} \
             UNION ALL SELECT -id, 'SELL', token_id, shares, price, usdc, 'settlement', at_ms, ?2, realized_pnl \
             FROM settlements WHERE at_ms >= ?1 \
             UNION ALL SELECT -1000000000000 - id, side, token_id, shares, price, usdc, 'adjustment', at_ms, ?2, \
             realized_pnl FROM adjustments WHERE at_ms >= ?1 ORDER BY 8, 1"
        ))?;
        let rows = st.query_map(params![since_ms, addr_lower(&Address::ZERO)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                [
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, i64>(9)?,
                ],
                r.get::<_, String>(6)?,
                r.get::<_, String>(8)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (row, side, token, n, mode, wallet) = r?;
            out.push(ExecRow {
                exec: Execution {
                    fill_row: row,
                    side: super::side(&side, "executions.side")?,
                    token_id: dec_u256(&token, "executions.token_id")?,
                    shares: Shares(n[0]),
                    price: Price(n[1]),
                    usdc: Usdc(n[2]),
                    mode: crate::domain::ExecMode::parse(&mode)
                        .ok_or(super::StoreError::Corrupt { column: "executions.mode", value: mode })?,
                    at_ms: n[3],
                },
                wallet: hex_addr(&wallet, "executions.wallet")?,
                realized: Usdc(n[4]),
            });
        }
        Ok(out)
    }

    /// Closes our position in `token`, whose market resolved paying `payout` a share, as the
    /// journal holds it (one transaction): a SELL of every share at the payout is recorded as a
    /// settlement with the P&L it realizes, and the position (stamped) and its mark are removed.
    /// `None` when the journal holds no shares of it (settled already), or while a match of ours
    /// in it awaits its settlement on chain (the market is settled at a later check).
    ///
    /// # Errors
    /// On a database error.
    pub fn record_settlement(&mut self, token: TokenId, payout: Price) -> StoreResult<Option<Resolution>> {
        let tx = self.conn.savepoint()?;
        let pos = super::journal::position_of(&tx, &token.to_string())?;
        if pos.shares.0 <= 0 {
            return Ok(None);
        }
        // A match of ours not yet settled on chain (or settled late and waiting to be put back)
        // may still move the position: a BUY taken out would leave the payout behind, and a SELL
        // put back would sell shares already paid out. So may a copy still in flight or of
        // unknown outcome (at a start, before recovery has reserved it): a SELL the exchange
        // filled would otherwise be booked on a position already paid out. The next check
        // settles what is held once every such order is known either way. A SELL taken out for
        // not settling in time may still settle late for a while (put back then, it would sell
        // shares paid out here, and its proceeds would be lost): the market waits out that grace.
        let awaiting: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM orders o JOIN executions e ON e.fill_id = o.fill_id \
             WHERE e.token_id = ?1 AND o.status = 'matched' AND (o.settled IN (0, 2) \
             OR (e.side = 'SELL' AND o.updated_at_ms > ?2 \
             AND (o.settled = -1 OR (o.settled = 1 AND o.clob_shares > e.shares))))) \
             OR EXISTS (SELECT 1 FROM intents i JOIN fills f ON f.id = i.fill_id \
             LEFT JOIN orders o ON o.fill_id = i.fill_id WHERE i.token_id = ?1 \
             AND ((f.status = 'pending' AND f.suspect = 0 AND f.orphaned = 0) \
             OR o.status IN ('sent', 'unknown', 'live', 'delayed') \
             OR (o.status = 'matched' AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.fill_id = o.fill_id))))",
            params![token.to_string(), now_ms() - SELL_TAKEN_OUT_GRACE_MS],
            |r| r.get(0),
        )?;
        if awaiting {
            tracing::info!(token = %token, "market resolved: its settlement waits for a match of ours to settle on chain");
            return Ok(None);
        }
        let exec = Execution {
            fill_row: 0,
            side: Side::Sell,
            token_id: token,
            shares: pos.shares,
            price: payout,
            usdc: Usdc(mul_price_floor(pos.shares, payout)),
            mode: ExecMode::Settlement,
            at_ms: now_ms(),
        };
        let (after, realized) = crate::risk::book::position_after(pos, &exec);
        tx.execute(
            "INSERT INTO settlements (token_id, shares, price, usdc, realized_pnl, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![token.to_string(), exec.shares.0, exec.price.0, exec.usdc.0, realized.0, exec.at_ms],
        )?;
        let position = super::journal::write_position(&tx, &token.to_string(), after, exec.at_ms)?;
        tx.execute("DELETE FROM marks WHERE token_id = ?1", [token.to_string()])?;
        tx.commit()?;
        Ok(Some(Resolution { exec, position, realized }))
    }

    /// The price each token is marked at: its last CLOB midpoint, else the last price any target
    /// traded it at.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn last_prices(&self) -> StoreResult<BTreeMap<TokenId, Price>> {
        let mut st = self.conn.prepare(
            "SELECT token_id, price FROM fills WHERE id IN (SELECT MAX(id) FROM fills WHERE status != 'withdrawn' GROUP BY token_id)",
        )?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out: BTreeMap<TokenId, Price> = rows
            .map(|r| {
                let (t, p) = r?;
                Ok((dec_u256(&t, "fills.token_id")?, Price(p)))
            })
            .collect::<StoreResult<_>>()?;
        let mut st = self.conn.prepare("SELECT token_id, price FROM marks")?;
        let marks = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for m in marks {
            let (t, p) = m?;
            out.insert(dec_u256(&t, "marks.token_id")?, Price(p));
        }
        Ok(out)
    }

    /// Fills seen since `since_ms`, counted by wallet, status and reason.
    ///
    /// # Errors
    /// On a database error.
    pub fn fill_counts(&self, since_ms: i64) -> StoreResult<FillCounts> {
        let mut st = self.conn.prepare(
            "SELECT wallet, status, COALESCE(reason, ''), COUNT(*) FROM fills WHERE seen_at_ms >= ?1 GROUP BY 1, 2, 3",
        )?;
        let rows = st.query_map([since_ms], |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, super::FillStatus>(1)?, r.get::<_, String>(2)?),
                r.get::<_, i64>(3)?.unsigned_abs(),
            ))
        })?;
        Ok(FillCounts { by: rows.collect::<Result<_, _>>()? })
    }

    /// The fees our fills on chain paid since `since_ms`, oldest first, each with the target
    /// whose fill the order copied.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn fees_paid(&self, since_ms: i64) -> StoreResult<Vec<FeeRow>> {
        let mut st = self.conn.prepare(
            "SELECT fl.wallet, f.fee, f.seen_at_ms FROM own_fills f JOIN orders o ON o.order_id = f.order_id \
             JOIN fills fl ON fl.id = o.fill_id WHERE f.fee > 0 AND f.seen_at_ms >= ?1 ORDER BY f.seen_at_ms",
        )?;
        let rows =
            st.query_map([since_ms], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))?;
        rows.map(|row| {
            let (wallet, fee, at_ms) = row?;
            Ok(FeeRow { wallet: super::hex_addr(&wallet, "fills.wallet")?, fee: Usdc(fee), at_ms })
        })
        .collect()
    }

    /// Realized P&L per trading day (see [`Store::with_trading_day`]) for the last `days` days,
    /// oldest first, days without trades included; each day is keyed by its start.
    ///
    /// # Errors
    /// On a database error.
    pub fn pnl_by_day(&self, days: u32, now_ms: i64) -> StoreResult<Vec<(i64, Usdc)>> {
        let today = self.trading_day_start(now_ms);
        let first = today - i64::from(days.saturating_sub(1)) * 86_400_000;
        // Days are counted from `first`, a day start, so each row falls in the day it belongs to.
        let mut st = self.conn.prepare(&format!(
            "SELECT ?1 + ((t - ?1) / 86400000) * 86400000, SUM(p) FROM (SELECT executed_at_ms AS t, realized_pnl AS p \
             FROM executions e WHERE {IN_BOOKS} UNION ALL SELECT at_ms, realized_pnl FROM settlements \
             UNION ALL SELECT seen_at_ms, -fee FROM own_fills WHERE fee > 0) WHERE t >= ?1 GROUP BY 1"
        ))?;
        let rows = st.query_map([first], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
        let sums: BTreeMap<i64, i64> = rows.collect::<Result<_, _>>()?;
        Ok((0..i64::from(days.max(1)))
            .map(|i| {
                let day = first + i * 86_400_000;
                (day, Usdc(sums.get(&day).copied().unwrap_or(0)))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(text: &str) -> HeldMessage {
        HeldMessage { chat: 1, class: HeldClass::Alert, text: text.into(), silent: false, html: false }
    }

    fn texts(s: &Store) -> Vec<String> {
        s.held_telegram().unwrap().0.into_iter().map(|m| m.text).collect()
    }

    /// Held messages stay until forgotten; a stop's hold replaces those this run sent again, and a
    /// late "forget up to" of this run never reaches the rows held at that stop.
    #[test]
    fn held_messages_stay_until_delivered_and_a_late_forget_spares_the_next_hold() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let stop = Holding::AtStop { replaces_snapshots: false };
        s.hold_telegram(&[held("a"), held("b")], 0, stop).unwrap();
        let (msgs, last) = s.held_telegram().unwrap();
        assert_eq!((msgs.len(), texts(&s)), (2, vec!["a".to_owned(), "b".to_owned()]), "read, not taken");
        // The next stop: "b" still undelivered, "c" new; the rows sent again give way.
        s.hold_telegram(&[held("b"), held("c")], last, stop).unwrap();
        s.forget_held_telegram(last, None).unwrap();
        assert_eq!(texts(&s), ["b", "c"]);
        let (_, last) = s.held_telegram().unwrap();
        s.forget_held_telegram(last, None).unwrap();
        assert!(texts(&s).is_empty());
    }

    /// While delivery fails, snapshots of what waits replace each other and keep the rows sent
    /// again; the stop's hold replaces both; a late "forget up to" spares every snapshot.
    #[test]
    fn snapshots_replace_each_other_and_the_stop_replaces_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        s.hold_telegram(&[held("old")], 0, Holding::AtStop { replaces_snapshots: false }).unwrap();
        let (_, last) = s.held_telegram().unwrap();
        // This run sent "old" again (still undelivered), then "x" and "y" waited.
        s.hold_telegram(&[held("x")], last, Holding::Snapshot).unwrap();
        s.hold_telegram(&[held("x"), held("y")], last, Holding::Snapshot).unwrap();
        assert_eq!(texts(&s), ["old", "x", "y"], "a crash now loses nothing and repeats nothing");
        s.forget_held_telegram(last, None).unwrap();
        assert_eq!(texts(&s), ["x", "y"], "the late forget spares the snapshot");
        s.hold_telegram(&[held("y")], last, Holding::AtStop { replaces_snapshots: true }).unwrap();
        assert_eq!(texts(&s), ["y"]);
        // One chat's delivered while another's wait: only its rows go.
        s.hold_telegram(&[HeldMessage { chat: 2, ..held("z") }], last, Holding::Snapshot).unwrap();
        let (_, top) = s.held_telegram().unwrap();
        s.forget_held_telegram(top, Some(1)).unwrap();
        assert_eq!(texts(&s), ["z"]);
        // Everything delivered: an empty snapshot leaves nothing to repeat.
        s.hold_telegram(&[], last, Holding::Snapshot).unwrap();
        assert!(texts(&s).is_empty());
    }
}
