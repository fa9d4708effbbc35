//! Per-target copy quality from the journal: how copying each target actually went (copies and
//! refusals by reason, our price against the target's, how late we saw its fills, our P&L on its
//! copies against its own on the same fills, its last activity).

use std::collections::BTreeMap;

use alloy::primitives::Address;
use rusqlite::params;

use super::journal::IN_BOOKS;
use super::{Store, StoreResult, dec_u256, hex_addr};
use crate::domain::{ExecMode, OPERATOR, Shares, Side, TokenId, Usdc, addr_lower};
use crate::risk::Position;
use crate::risk::book::position_after;

/// One target's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TargetQuality {
    /// Copies executed.
    pub copies: u64,
    /// Fills not copied, by reason code.
    pub refusals: BTreeMap<String, u64>,
    /// Mean price difference of our copies against the target's, in basis points, against us
    /// positive (we paid more on a BUY, got less on a SELL).
    pub slippage_bps: Option<i64>,
    /// Median time from the target's block to our seeing its fill, ms.
    pub detection_ms: Option<i64>,
    /// Our realized P&L on its copies.
    pub our_realized_usdc: Usdc,
    /// Its own realized P&L on the fills we copied (average cost, per token).
    pub target_realized_usdc: Usdc,
    /// When we last saw one of its fills (unix ms).
    pub last_seen_ms: Option<i64>,
}

/// One copied fill: the target's side of it and ours.
struct Pair {
    side: Side,
    token: TokenId,
    target_shares: Shares,
    target_usdc: Usdc,
    target_price: i64,
    our_price: i64,
}

/// Each target's figures, as they are gathered.
type Qualities = BTreeMap<Address, TargetQuality>;

impl Store {
    /// Every target's figures since `since_ms` (0: all time), by wallet.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn target_quality(&self, since_ms: i64) -> StoreResult<BTreeMap<Address, TargetQuality>> {
        let mut out = Qualities::new();
        let operator = addr_lower(&OPERATOR);
        self.quality_counts(since_ms, &operator, &mut out)?;
        self.detection_delays(since_ms, &operator, &mut out)?;
        self.copy_results(since_ms, &operator, &mut out)?;
        Ok(out)
    }

    /// Each target's copies, refusals by reason, and last fill seen since `since_ms`.
    fn quality_counts(&self, since_ms: i64, operator: &str, out: &mut Qualities) -> StoreResult<()> {
        let mut st = self.conn.prepare(
            "SELECT wallet, status, COALESCE(reason, ''), COUNT(*), MAX(seen_at_ms) FROM fills \
             WHERE seen_at_ms >= ?1 AND wallet != ?2 GROUP BY wallet, status, reason",
        )?;
        let rows = st.query_map(params![since_ms, operator], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, super::FillStatus>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        for r in rows {
            let (w, status, reason, n, last) = r?;
            let q = out.entry(hex_addr(&w, "fills.wallet")?).or_default();
            let n = u64::try_from(n).unwrap_or(0);
            match status {
                super::FillStatus::Executed => q.copies += n,
                super::FillStatus::Rejected => *q.refusals.entry(reason).or_insert(0) += n,
                super::FillStatus::Pending | super::FillStatus::Withdrawn => {}
            }
            q.last_seen_ms = q.last_seen_ms.max(Some(last));
        }
        Ok(())
    }

    /// Each target's median delay from its block's time to our seeing the fill.
    fn detection_delays(&self, since_ms: i64, operator: &str, out: &mut Qualities) -> StoreResult<()> {
        let mut st = self.conn.prepare(
            "SELECT f.wallet, f.seen_at_ms - f.block_ts * 1000 FROM fills f \
             WHERE f.seen_at_ms >= ?1 AND f.wallet != ?2 AND f.block_ts > 0 ORDER BY f.wallet, 2",
        )?;
        let mut delays: BTreeMap<Address, Vec<i64>> = BTreeMap::new();
        for r in st.query_map(params![since_ms, operator], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (w, d) = r?;
            delays.entry(hex_addr(&w, "fills.wallet")?).or_default().push(d.max(0));
        }
        for (w, d) in delays {
            out.entry(w).or_default().detection_ms = d.get(d.len() / 2).copied();
        }
        Ok(())
    }

    /// Each target's copies against its own fills: our realized P&L, its, and the slippage.
    fn copy_results(&self, since_ms: i64, operator: &str, out: &mut Qualities) -> StoreResult<()> {
        // Copies taken out of the books (matched, never settled) are not results.
        let mut st = self.conn.prepare(&format!(
            "SELECT f.wallet, f.side, f.token_id, f.shares, f.usdc, f.price, e.price, e.realized_pnl FROM fills f \
             JOIN executions e ON e.fill_id = f.id WHERE f.seen_at_ms >= ?1 AND f.wallet != ?2 AND {IN_BOOKS} ORDER BY f.id",
        ))?;
        let mut pairs: BTreeMap<Address, Vec<Pair>> = BTreeMap::new();
        let rows = st.query_map(params![since_ms, operator], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                [
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                ],
            ))
        })?;
        for r in rows {
            let (w, side, token, n) = r?;
            let wallet = hex_addr(&w, "fills.wallet")?;
            out.entry(wallet).or_default().our_realized_usdc.0 += n[4];
            pairs.entry(wallet).or_default().push(Pair {
                side: super::side(&side, "fills.side")?,
                token: dec_u256(&token, "fills.token_id")?,
                target_shares: Shares(n[0]),
                target_usdc: Usdc(n[1]),
                target_price: n[2],
                our_price: n[3],
            });
        }
        for (w, ps) in pairs {
            let q = out.entry(w).or_default();
            q.slippage_bps = slippage_bps(&ps);
            q.target_realized_usdc = target_realized(&ps);
        }
        Ok(())
    }
}

/// Mean of each copy's price difference against us, in basis points of the target's price.
fn slippage_bps(ps: &[Pair]) -> Option<i64> {
    let each: Vec<i64> = ps
        .iter()
        .filter(|p| p.target_price > 0)
        .map(|p| {
            let diff = match p.side {
                Side::Buy => p.our_price - p.target_price,
                Side::Sell => p.target_price - p.our_price,
            };
            i64::try_from(i128::from(diff) * 10_000 / i128::from(p.target_price)).unwrap_or(0)
        })
        .collect();
    (!each.is_empty()).then(|| each.iter().sum::<i64>() / i64::try_from(each.len()).unwrap_or(1))
}

/// The target's realized P&L on the fills we copied, at average cost per token (as our own book).
fn target_realized(ps: &[Pair]) -> Usdc {
    let mut book: BTreeMap<TokenId, Position> = BTreeMap::new();
    let mut realized = 0i64;
    for p in ps {
        let pos = book.get(&p.token).copied().unwrap_or_default();
        let exec = crate::domain::Execution {
            fill_row: 0,
            side: p.side,
            token_id: p.token,
            shares: p.target_shares,
            price: crate::domain::Price(p.target_price),
            usdc: p.target_usdc,
            mode: ExecMode::Paper,
            at_ms: 0,
        };
        let (after, r) = position_after(pos, &exec);
        realized += r.0;
        book.insert(p.token, after);
    }
    Usdc(realized)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ONE;

    fn pair(side: Side, shares: i64, price: i64, ours: i64) -> Pair {
        Pair {
            side,
            token: TokenId::from(1u8),
            target_shares: Shares(shares),
            target_usdc: Usdc(shares / ONE * price),
            target_price: price,
            our_price: ours,
        }
    }

    #[test]
    fn slippage_counts_against_us_on_both_sides() {
        // BUY at 0.51 for the target's 0.50: +200 bps; SELL at 0.39 for 0.40: +250 bps; mean 225.
        let ps = [pair(Side::Buy, 10 * ONE, 500_000, 510_000), pair(Side::Sell, 10 * ONE, 400_000, 390_000)];
        assert_eq!(slippage_bps(&ps), Some(225));
        // Better than the target: negative.
        assert_eq!(slippage_bps(&[pair(Side::Buy, ONE, 500_000, 490_000)]), Some(-200));
        assert_eq!(slippage_bps(&[]), None);
    }

    #[test]
    fn the_targets_pnl_is_its_own_round_trips_at_average_cost() {
        // Buys 100 at 0.50, sells 60 at 0.60: +6.00; sells the rest at 0.40: -4.00.
        let ps = [
            pair(Side::Buy, 100 * ONE, 500_000, 0),
            pair(Side::Sell, 60 * ONE, 600_000, 0),
            pair(Side::Sell, 40 * ONE, 400_000, 0),
        ];
        assert_eq!(target_realized(&ps), Usdc(2 * ONE));
    }
}
