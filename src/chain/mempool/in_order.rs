//! Whether a sighting may be acted on before its block: only while the chain feed has read up to
//! the head. Copies follow the target's trades in the chain's order: a SELL seen in the pool while
//! the feed still reads the blocks behind it (a restart's backfill, a stalled endpoint) would be
//! sized before the BUY it sells is copied (refused as no position, or selling a newer copy).
//! Behind, a sighting waits for its own block, which hands it on in log order.

use std::collections::{HashMap, HashSet};

use alloy::primitives::{Address, B256};

use crate::chain::feed::FeedStatus;
use crate::domain::{Side, TargetFill, TokenId};

/// How long a sighting waits for the feed to reach the head before it is left to its block.
pub const CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The least time the feed may go without a successful round and still count as caught up, ms.
pub const FEED_FRESH_MS: i64 = 15_000;

/// How long the feed may go without a successful round and still count as caught up, ms: two of
/// its polls and a request's timeout (a slow poll set on purpose is not "behind"), at least
/// [`FEED_FRESH_MS`]. An endpoint hanging longer is behind whatever head it saw.
#[must_use]
pub fn fresh_for_ms(poll_interval_ms: u64, request_timeout_ms: u64) -> i64 {
    let ms = poll_interval_ms.saturating_mul(2).saturating_add(request_timeout_ms);
    i64::try_from(ms).unwrap_or(i64::MAX).max(FEED_FRESH_MS)
}

/// Whether the feed `st` is caught up at `now_ms`: live, its last round successful and no older
/// than `fresh_ms`, and no more than one block past the confirmations behind the newest head
/// known: the one it last saw, or `pool_head`, the pool reader's (a feed endpoint behind a load
/// balancer may lag the one the pool is read from, and would pass for caught up on its own).
///
/// `exits`: the sightings include a SELL. Then not even the newest block may be unread: a BUY
/// of the same target in it, copied after the SELL, would be held once the target has left (its
/// exit sized on a balance that already counts the sale, our copy of the BUY never sold).
#[must_use]
pub fn caught_up(st: &FeedStatus, pool_head: u64, confirmations: u64, fresh_ms: i64, now_ms: i64, exits: bool) -> bool {
    st.live
        && st.failing_since_ms == 0
        && now_ms - st.last_ok_ms <= fresh_ms
        && st.head.max(pool_head).saturating_sub(st.processed) <= confirmations + u64::from(!exits)
}

/// The (wallet, token) pairs with fills in more than one transaction of `fills`, one read of the
/// pool, a SELL among them: their order is not known until they are mined (a pool lists its
/// transactions by sender, and settlements come from several operators), so none of them is
/// acted on before its block. A BUY and the SELL of it seen together would otherwise be copied
/// SELL first, the SELL refused. BUYs alone may be copied in either order.
#[must_use]
pub fn in_unknown_order(fills: &[TargetFill]) -> HashSet<(Address, TokenId)> {
    let mut txs: HashMap<(Address, TokenId), (HashSet<B256>, bool)> = HashMap::new();
    for f in fills {
        let e = txs.entry((f.wallet, f.token_id)).or_default();
        e.0.insert(f.id.tx_hash);
        e.1 |= f.side == Side::Sell;
    }
    txs.into_iter().filter(|(_, (t, sell))| t.len() > 1 && *sell).map(|(k, _)| k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_of_one_wallet_and_token_in_several_transactions_of_a_read_wait_for_their_blocks() {
        let (a, b) = (Address::repeat_byte(0xaa), Address::repeat_byte(0xbb));
        let fill = |wallet, token: u64, tx: u8| {
            let mut f = crate::store::tests::fill_in(tx, 1, 0);
            let side = if tx.is_multiple_of(2) { Side::Sell } else { Side::Buy };
            (f.wallet, f.token_id, f.side) = (wallet, TokenId::from(token), side);
            f
        };
        // (fills of one read, the pairs left to their blocks)
        let cases: Vec<(Vec<TargetFill>, Vec<(Address, u64)>)> = vec![
            (vec![fill(a, 1, 1)], vec![]),
            // Two legs of one transaction: mined together, in the calldata's order.
            (vec![fill(a, 1, 1), fill(a, 1, 1)], vec![]),
            // A BUY (odd transactions) and a SELL (even) in two transactions: their order is not known.
            (vec![fill(a, 1, 1), fill(a, 1, 2)], vec![(a, 1)]),
            // Two BUYs: either order will do.
            (vec![fill(a, 1, 1), fill(a, 1, 3)], vec![]),
            // Other tokens and other wallets are not held back.
            (vec![fill(a, 1, 1), fill(a, 2, 2), fill(b, 1, 4)], vec![]),
            (vec![fill(a, 1, 1), fill(a, 1, 2), fill(b, 1, 3)], vec![(a, 1)]),
        ];
        for (fills, want) in cases {
            let want: HashSet<(Address, TokenId)> = want.into_iter().map(|(w, t)| (w, TokenId::from(t))).collect();
            assert_eq!(in_unknown_order(&fills), want, "{fills:?}");
        }
    }

    fn status(live: bool, head: u64, processed: u64, last_ok_ms: i64, failing_since_ms: i64) -> FeedStatus {
        FeedStatus { live, head, processed, last_ok_ms, failing_since_ms, ..FeedStatus::default() }
    }

    #[test]
    fn a_sighting_is_acted_on_only_while_the_feed_is_at_the_head() {
        let now = 1_000_000;
        let cases = [
            (status(true, 100, 100, now - 1_000, 0), 0, true, "at the head"),
            (status(true, 101, 100, now - 1_000, 0), 0, true, "a block behind: a round in progress"),
            (status(true, 105, 100, now - 1_000, 0), 0, false, "a backfill"),
            (status(true, 105, 102, now - 1_000, 0), 2, true, "within its confirmations"),
            (status(false, 100, 100, now - 1_000, 0), 0, false, "not live yet (a start)"),
            (status(true, 100, 100, now - FEED_FRESH_MS - 1, 0), 0, false, "no round for too long"),
            (status(true, 100, 100, now - 1_000, now - 500), 0, false, "the last round failed"),
        ];
        for (st, confirmations, want, why) in cases {
            assert_eq!(caught_up(&st, 0, confirmations, FEED_FRESH_MS, now, false), want, "{why}");
        }
        // (the pool reader's head, SELLs among the sightings, caught up): the feed at 100 of the
        // 100 it saw. A SELL waits for the newest block to be read: a BUY in it comes first.
        for (pool_head, exits, want) in [
            (100, false, true),
            (101, false, true),
            (101, true, false),
            (100, true, true),
            (104, false, false),
            (90, true, true),
        ] {
            let st = status(true, 100, 100, now - 1_000, 0);
            assert_eq!(caught_up(&st, pool_head, 0, FEED_FRESH_MS, now, exits), want, "pool at {pool_head}, {exits}");
        }
        assert!(!caught_up(&status(true, 101, 100, now - 1_000, 0), 0, 0, FEED_FRESH_MS, now, true), "a SELL");
        assert!(caught_up(&status(true, 102, 100, now - 1_000, 0), 0, 2, FEED_FRESH_MS, now, true), "confirmations");
        let slow = fresh_for_ms(30_000, 10_000);
        assert_eq!(slow, 70_000, "a slow poll set on purpose is not behind");
        assert!(caught_up(&status(true, 100, 100, now - 40_000, 0), 0, 0, slow, now, false));
        assert_eq!(fresh_for_ms(2_000, 10_000), FEED_FRESH_MS);
    }
}
