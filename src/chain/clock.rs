//! How far the chain has been read, shared between the feed, which moves it, and the live
//! executor, which asks whether a match of one of our orders would be on chain by now.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The timestamp (unix seconds) of the last block whose logs are journaled, our own fills
/// included; 0 until the feed journals its first range after the start.
#[derive(Debug, Clone, Default)]
pub struct ChainClock(Arc<AtomicU64>);

impl ChainClock {
    /// Every log up to this block time is in the journal.
    #[must_use]
    pub fn read_through_s(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// The logs of blocks up to `ts` are journaled. Never goes back (a reorg's re-read does not
    /// unlearn what older blocks held).
    pub fn advance(&self, ts: u64) {
        self.0.fetch_max(ts, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_only_moves_forward_and_is_shared() {
        let clock = ChainClock::default();
        let seen = clock.clone();
        assert_eq!(seen.read_through_s(), 0);
        clock.advance(100);
        clock.advance(90);
        assert_eq!(seen.read_through_s(), 100);
    }
}
