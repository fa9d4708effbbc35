//! When the replay settles a resolved market: at its end, as the daemon settles a position once
//! its market resolves, and not at the end of the vetted period. A position left open in the
//! replay until then would hold exposure the daemon had freed, and the caps would refuse every
//! later buy of a trader who holds short markets to their resolution.

use std::collections::BTreeMap;

use crate::domain::{Price, TokenId};
use crate::vet::Trade;

/// A market that resolved: what one share of the token paid, and when its market ended (Gamma's
/// `closedTime`, else its end date: a market already in the journal's cache has only the end
/// date), where known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// What one share pays.
    pub payout: Price,
    /// When the market ended, unix ms; `None`: unknown, settled at the end of the period.
    pub ended_ms: Option<i64>,
}

impl Resolution {
    /// A resolution whose time is unknown: settled at the end of the period.
    #[must_use]
    pub const fn at_period_end(payout: Price) -> Self {
        Self { payout, ended_ms: None }
    }
}

/// The resolved tokens to settle during the replay, in the order they settle: (when, token,
/// payout). A market is settled at its end, or just after the last copy of its token where a
/// fill comes later than the end Gamma gives (an end date is often the one announced, not the
/// real one): never before a fill of its own token. `delay_ms` is the replay's copy delay.
/// Tokens whose end is unknown are left to the period's end.
#[must_use]
pub fn schedule(
    trades: &[Trade],
    resolved: &BTreeMap<TokenId, Resolution>,
    delay_ms: i64,
) -> Vec<(i64, TokenId, Price)> {
    let mut last_copy: BTreeMap<TokenId, i64> = BTreeMap::new();
    for t in trades {
        let at = t.at_ms.saturating_add(delay_ms);
        last_copy.entry(t.token_id).and_modify(|l| *l = (*l).max(at)).or_insert(at);
    }
    let mut due: Vec<(i64, TokenId, Price)> = resolved
        .iter()
        .filter_map(|(token, r)| {
            let ended = r.ended_ms?;
            let last = last_copy.get(token)?;
            Some((ended.max(last.saturating_add(1)), *token, r.payout))
        })
        .collect();
    // By time, then token: the drawdown depends on the order, and the same history must vet the
    // same each time.
    due.sort_unstable_by_key(|(at, token, _)| (*at, *token));
    due
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ONE, Shares, Side};

    fn trade(at_ms: i64, token: u8) -> Trade {
        Trade {
            at_ms,
            side: Side::Buy,
            token_id: TokenId::from(token),
            shares: Shares(ONE),
            price: Price(ONE / 2),
            taker: true,
        }
    }

    #[test]
    fn each_resolved_market_settles_at_its_end_and_never_before_its_own_last_copy() {
        let trades = [trade(1_000, 1), trade(2_000, 2), trade(9_000, 2), trade(3_000, 3), trade(4_000, 4)];
        let r = |payout, ended_ms| Resolution { payout: Price(payout), ended_ms };
        let resolved: BTreeMap<TokenId, Resolution> = [
            // Ended after its copy: settled at its end.
            (TokenId::from(1u8), r(ONE, Some(5_000))),
            // Gamma's end is before a later fill of the token: settled just after that copy.
            (TokenId::from(2u8), r(0, Some(3_000))),
            // End unknown: left to the period's end.
            (TokenId::from(3u8), r(ONE, None)),
            // Same end as token 1: after it, in token order.
            (TokenId::from(4u8), r(0, Some(5_000))),
            // Never traded in the period: nothing to settle.
            (TokenId::from(5u8), r(ONE, Some(1))),
        ]
        .into();
        let due = schedule(&trades, &resolved, 100);
        assert_eq!(
            due,
            [
                (5_000, TokenId::from(1u8), Price(ONE)),
                (5_000, TokenId::from(4u8), Price(0)),
                (9_101, TokenId::from(2u8), Price(0)),
            ]
        );
    }
}
