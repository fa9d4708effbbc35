//! What the vetted wallet held when the period began. A wallet that sells 100 of the 1,000 shares
//! it held sold a tenth, and the daemon, which reads the balance on chain, copies a tenth; a replay
//! starting from nothing would read "sold all it had" and sell all of ours, realizing early.
//! The balance is read at the block before the period, which needs a node that keeps state that
//! old (an archive node); where it cannot be read the replay falls back to what the period shows,
//! and the report says for how many tokens.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::Address;

use crate::chain::positions::PositionContracts;
use crate::chain::rpc::Rpc;
use crate::domain::{Shares, Side, TokenId, u256_to_micros};
use crate::vet::Trade;

/// Tokens in a row whose balance cannot be read before the rest are given up on: a node without
/// the state answers every read the same way, and a wallet may have sold hundreds of tokens.
const GIVE_UP_AFTER: usize = 3;

/// The wallet's holdings at the period's start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldBefore {
    /// The balances read, by token.
    pub known: BTreeMap<TokenId, Shares>,
    /// Tokens whose balance could not be read (their sales are sized from the period alone).
    pub unknown: usize,
}

/// The tokens whose starting balance changes a copy: those the wallet sells after buying them in
/// the period. A sale of a token not bought in the period is never copied (we would hold none of
/// it), so its balance is not read.
#[must_use]
pub fn tokens_to_read(trades: &[Trade]) -> Vec<TokenId> {
    let mut bought = BTreeSet::new();
    let mut out = BTreeSet::new();
    for t in trades {
        match t.side {
            Side::Buy => {
                bought.insert(t.token_id);
            }
            Side::Sell if bought.contains(&t.token_id) => {
                out.insert(t.token_id);
            }
            Side::Sell => {}
        }
    }
    out.into_iter().collect()
}

/// Reads `wallet`'s balance of each of `tokens` at block `at`. A token lives in Conditional Tokens
/// or in the V3 PositionManager (the cache does not keep which exchange a fill came from), so both
/// are asked and the answers added: a token id belongs to one of them only.
pub async fn read(
    rpc: &Rpc,
    contracts: &PositionContracts,
    wallet: Address,
    tokens: &[TokenId],
    at: u64,
) -> HeldBefore {
    let mut held = HeldBefore::default();
    let mut failed_in_a_row = 0;
    for (i, token) in tokens.iter().enumerate() {
        if failed_in_a_row >= GIVE_UP_AFTER {
            held.unknown += tokens.len() - i;
            break;
        }
        let (ctf, v3) = tokio::join!(
            rpc.balance_of(contracts.conditional_tokens, wallet, *token, at),
            rpc.balance_of_if_deployed(contracts.position_manager, wallet, *token, at),
        );
        let v3 = v3.ok().map(|b| b.map(u256_to_micros));
        match combine(ctf.ok().map(u256_to_micros), v3) {
            Some(v) => {
                failed_in_a_row = 0;
                held.known.insert(*token, Shares(v));
            }
            None => {
                failed_in_a_row += 1;
                held.unknown += 1;
            }
        }
    }
    held
}

/// One balance from the two contracts' answers (`None`: no answer; for Conditional Tokens
/// `Some(None)` is a balance too large for shares in micros, for the PositionManager
/// `Some(None)` is no code at that block and `Some(Some(None))` a balance too large). Conditional
/// Tokens must answer: a failed read there with the
/// PositionManager's 0 (it knows no CTF token) would read "held nothing". The PositionManager
/// must answer too unless it had no code at that block (`Some(None)`: before V3): a read of it
/// that failed would read a V3 position as nothing held.
fn combine(ctf: Option<Option<i64>>, v3: Option<Option<Option<i64>>>) -> Option<i64> {
    match (ctf, v3) {
        (Some(Some(a)), Some(None)) => Some(a),
        (Some(Some(a)), Some(Some(Some(b)))) => Some(a.saturating_add(b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Price;

    fn t(side: Side, token: u64) -> Trade {
        Trade { at_ms: 0, side, token_id: TokenId::from(token), shares: Shares(1), price: Price(1), taker: true }
    }

    #[test]
    fn only_tokens_sold_after_a_buy_in_the_period_are_read() {
        let cases: [(&[Trade], &[u64]); 4] = [
            (&[], &[]),
            (&[t(Side::Sell, 1)], &[]),
            (&[t(Side::Sell, 1), t(Side::Buy, 1)], &[]),
            (&[t(Side::Buy, 1), t(Side::Buy, 2), t(Side::Sell, 2), t(Side::Sell, 1), t(Side::Sell, 3)], &[1, 2]),
        ];
        for (trades, want) in cases {
            let want: Vec<TokenId> = want.iter().map(|n| TokenId::from(*n)).collect();
            assert_eq!(tokens_to_read(trades), want, "{trades:?}");
        }
    }

    #[test]
    fn a_balance_is_known_when_both_contracts_answer_or_the_position_manager_is_not_there_yet() {
        // (Conditional Tokens, PositionManager, known balance); the PositionManager's answer is
        // None (failed), Some(None) (no code at that block) or Some(Some(balance)).
        let cases = [
            (None, None, None),
            (Some(Some(5)), Some(None), Some(5)),
            // The PositionManager exists and its read failed: a V3 position would read as none.
            (Some(Some(5)), None, None),
            (Some(Some(0)), None, None),
            // Conditional Tokens did not answer: not known, whatever the PositionManager says.
            (None, Some(Some(Some(7))), None),
            (None, Some(Some(Some(0))), None),
            (Some(Some(5)), Some(Some(Some(0))), Some(5)),
            (Some(Some(0)), Some(Some(Some(3))), Some(3)),
            // A balance no shares figure can hold is not a balance to size by.
            (Some(None), Some(Some(Some(0))), None),
            (Some(Some(0)), Some(Some(None)), None),
        ];
        for (ctf, v3, want) in cases {
            assert_eq!(combine(ctf, v3), want, "{ctf:?} {v3:?}");
        }
    }
}
