//! Whether a sighting may be acted on before its block: only while the chain feed has read up to
//! the head. Copies follow the target's trades in the chain's order: a SELL seen in the pool while
//! the feed still reads the blocks behind it (a restart's backfill, a stalled endpoint) would be
//! sized before the BUY it sells is copied (refused as no position, or selling a newer copy).
//! Behind, a sighting waits for its own block, which hands it on in log order.

use crate::chain::feed::FeedStatus;

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
/// than `fresh_ms`, and no more than one block past the confirmations behind the head it last saw.
#[must_use]
pub fn caught_up(st: &FeedStatus, confirmations: u64, fresh_ms: i64, now_ms: i64) -> bool {
    st.live
        && st.failing_since_ms == 0
        && now_ms - st.last_ok_ms <= fresh_ms
        && st.head.saturating_sub(st.processed) <= confirmations + 1
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(caught_up(&st, confirmations, FEED_FRESH_MS, now), want, "{why}");
        }
        let slow = fresh_for_ms(30_000, 10_000);
        assert_eq!(slow, 70_000, "a slow poll set on purpose is not behind");
        assert!(caught_up(&status(true, 100, 100, now - 40_000, 0), 0, slow, now));
        assert_eq!(fresh_for_ms(2_000, 10_000), FEED_FRESH_MS);
    }
}
