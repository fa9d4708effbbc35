//! Redemption: a resolved market's winning tokens are turned back into pUSD, so live capital does
//! not drain into resolved positions. What to redeem is a pure function of what the journal knows
//! (resolutions, payouts) and what the chain holds; sending is in [`task`], the calls in [`calls`].
//!
//! Supported: CTF markets (the V1 and CLOB V2 exchanges) through the collateral adapters, and
//! Exchange V3 markets through the Router (per outcome, an explicit amount of PositionManager
//! shares), for an EOA funder (the key's own address) and a Gnosis Safe funder (through
//! `execTransaction` signed by its owner). Not supported, and said so by `doctor`: Polymarket proxy
//! wallets (they act through the proxy factory and its relayer); their winnings are reported as
//! unredeemed by `reconcile`.

pub mod calls;
pub mod chain;
pub mod doctor;
pub mod task;

use std::collections::BTreeMap;

use alloy::primitives::B256;

use crate::domain::{Price, Shares, TokenId, Usdc, mul_price_floor};

/// A resolved token and what the chain holds of it for our funder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The token.
    pub token_id: TokenId,
    /// Its market.
    pub condition_id: B256,
    /// Neg-risk market (its own adapter).
    pub neg_risk: bool,
    /// What one share pays (1, 0, or 0.5 for an even result).
    pub payout: Price,
    /// Shares our funder holds on chain.
    pub shares: Shares,
    /// An Exchange V3 token (a PositionManager position, redeemed through the Router).
    pub v3: bool,
}

/// What to do with one resolved market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Winning tokens on chain: one redemption transaction.
    Redeem {
        /// The market (a V3 position: the position id itself, each outcome being redeemed alone).
        condition_id: B256,
        /// Through the V3 Router.
        v3: bool,
        /// Through the neg-risk adapter.
        neg_risk: bool,
        /// Its tokens we hold.
        tokens: Vec<TokenId>,
        /// Shares held.
        shares: Shares,
        /// What it pays.
        expected: Usdc,
    },
    /// Only losing tokens: worth nothing, so no transaction (and no gas) is spent on them.
    Worthless {
        /// The market.
        condition_id: B256,
        /// Shares held.
        shares: Shares,
    },
}

/// One plan per resolved market we still hold tokens of; markets with nothing on chain are done.
#[must_use]
pub fn plan(held: &[Held]) -> Vec<Plan> {
    let mut by_market: BTreeMap<B256, Vec<&Held>> = BTreeMap::new();
    for h in held.iter().filter(|h| h.shares.0 > 0) {
        // A CTF redemption takes a market's outcomes at once; the V3 Router one outcome and amount.
        let key = if h.v3 { B256::from(h.token_id) } else { h.condition_id };
        by_market.entry(key).or_default().push(h);
    }
    by_market
        .into_iter()
        .map(|(condition_id, hs)| {
            let shares = Shares(hs.iter().map(|h| h.shares.0).sum());
            let expected = Usdc(hs.iter().map(|h| mul_price_floor(h.shares, h.payout)).sum());
            if expected.0 == 0 {
                Plan::Worthless { condition_id, shares }
            } else {
                Plan::Redeem {
                    condition_id,
                    v3: hs.iter().any(|h| h.v3),
                    neg_risk: hs.iter().any(|h| h.neg_risk),
                    tokens: hs.iter().map(|h| h.token_id).collect(),
                    shares,
                    expected,
                }
            }
        })
        .collect()
}

/// The pause before attempt `n + 1` after `n` failed ones: doubling from `base`, at most an hour.
#[must_use]
pub fn retry_after_ms(base_ms: i64, attempts: u32) -> i64 {
    base_ms.saturating_mul(1_i64 << attempts.min(20)).min(3_600_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ONE;

    fn h(token: u64, market: u8, payout: i64, shares: i64) -> Held {
        Held {
            token_id: TokenId::from(token),
            condition_id: B256::repeat_byte(market),
            neg_risk: market == 9,
            payout: Price(payout),
            shares: Shares(shares),
            v3: market == 7,
        }
    }

    #[test]
    fn winners_are_redeemed_losers_cost_no_transaction() {
        let plans = plan(&[
            h(1, 1, ONE, 10 * ONE), // won
            h(2, 1, 0, 3 * ONE),    // its other outcome: lost, redeemed with it
            h(3, 2, 0, 7 * ONE),    // lost market
            h(4, 3, ONE, 0),        // nothing left on chain
            h(5, 9, ONE, 2 * ONE),  // neg-risk market
            h(6, 7, ONE, 4 * ONE),  // V3 market, winning outcome: redeemed alone
            h(8, 7, 0, ONE),        // its losing outcome: no transaction
        ]);
        assert_eq!(
            plans,
            // Ordered by key: the V3 positions' ids are small numbers here.
            vec![
                Plan::Redeem {
                    condition_id: B256::from(TokenId::from(6u8)),
                    v3: true,
                    neg_risk: false,
                    tokens: vec![TokenId::from(6u8)],
                    shares: Shares(4 * ONE),
                    expected: Usdc(4 * ONE),
                },
                Plan::Worthless { condition_id: B256::from(TokenId::from(8u8)), shares: Shares(ONE) },
                Plan::Redeem {
                    condition_id: B256::repeat_byte(1),
                    v3: false,
                    neg_risk: false,
                    tokens: vec![TokenId::from(1u8), TokenId::from(2u8)],
                    shares: Shares(13 * ONE),
                    expected: Usdc(10 * ONE),
                },
                Plan::Worthless { condition_id: B256::repeat_byte(2), shares: Shares(7 * ONE) },
                Plan::Redeem {
                    condition_id: B256::repeat_byte(9),
                    v3: false,
                    neg_risk: true,
                    tokens: vec![TokenId::from(5u8)],
                    shares: Shares(2 * ONE),
                    expected: Usdc(2 * ONE),
                },
            ]
        );
    }

    #[test]
    fn retries_double_up_to_an_hour() {
        for (attempts, want) in [(0, 60_000), (1, 120_000), (3, 480_000), (10, 3_600_000), (40, 3_600_000)] {
            assert_eq!(retry_after_ms(60_000, attempts), want, "{attempts}");
        }
    }
}
