//! Reading one block range for the feed, and how many blocks each read asks for.
//!
//! A backfill reads the chain in ranges, and each range is journaled before the next one moves
//! the checkpoint. The feed reads range k+1 while range k is being journaled. Without that, every
//! `eth_getLogs` round trip stood idle beside the journal: a quarter of a 5,000-fill backfill was
//! the node serving one long range while nothing else ran (BENCHMARKS.md, sixth round).
//!
//! The size of a range adapts to how dense the logs are. The target is about one journal part of
//! fills per read ([`crate::chain::parts::PART_FILLS`]):
//! - sparse history is read in long ranges, up to `chain.max_block_range`;
//! - a dense stretch is read in short ones, so its first part is journaled and copied sooner;
//! - a read the node refuses halves the range. Providers refuse a range whose answer is too large
//!   (docs/PROTOCOL.md §3, "Reading logs"), and asking for the same range again would fail forever.

use std::collections::BTreeMap;

use actix::Addr;
use alloy::primitives::{Address, B256};
use alloy::rpc::types::Log;
use tracing::{debug, warn};

use crate::actors::notifier::{Event, Notifier};
use crate::chain::history::{decode_logs, fills_filter, headers_for};
use crate::chain::parts::PART_FILLS;
use crate::chain::rpc::{BlockRef, ChainError, Rpc};
use crate::domain::TargetFill;

/// Addresses per `eth_getLogs` topic list: keeps each request well under nodes' size limits.
const TOPIC_CHUNK: usize = 2_000;

/// Blocks in the first read of a start: small, so that a dense backfill's first copies come early
/// and its reads overlap the journal from the start.
const FIRST_SPAN: u64 = 4;

/// Blocks this close to the safe head (the head less the confirmations) are read block by block,
/// by hash (see [`RangeReader::logs_by_hash`]); the ones behind them by number, in one call. A
/// provider's backends lag one another by a few blocks, more while they catch up after an outage,
/// which is when the feed catches up too: a margin of about five minutes of Polygon's blocks (a
/// backend that has not indexed a block answers "no logs" for it by number, and "unknown block"
/// by hash). Each block read by hash is one call: at most this many per catch-up.
const BY_HASH_WITHIN: u64 = 150;

/// The first block of `from..=to` read by hash (`to + 1` when none is): every block within
/// [`BY_HASH_WITHIN`] of `safe_head`, wherever the range starts.
const fn first_by_hash(from: u64, to: u64, safe_head: u64) -> u64 {
    let near = safe_head.saturating_sub(BY_HASH_WITHIN - 1);
    if to >= near { if near > from { near } else { from } } else { to + 1 }
}

/// Refused reads one sync takes before it gives up: each halves the range, so nine take the
/// default 500 blocks down to one. A refusal is an answer, so each costs one quick call.
pub const MAX_SHRINKS: u32 = 9;

/// How many blocks the next read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    blocks: u64,
    /// The most blocks a read may ask for in this sync: `chain.max_block_range`, lowered below a
    /// range the node refused.
    ceiling: u64,
    max: u64,
}

impl Span {
    /// The first span of a feed whose reads are capped at `max` blocks (at least one).
    #[must_use]
    pub fn new(max: u64) -> Self {
        let max = max.max(1);
        Self { blocks: FIRST_SPAN.min(max), ceiling: max, max }
    }

    /// Blocks for the next read.
    #[must_use]
    pub fn blocks(self) -> u64 {
        self.blocks
    }

    /// At the start of a sync: a range refused in an earlier sync may be tried again (a refusal
    /// may have been a passing fault), at the span learned so far.
    #[must_use]
    pub fn for_sync(self) -> Self {
        Self { ceiling: self.max, ..self }
    }

    /// Learns from a read of `blocks` blocks that brought `logs` logs: the next read aims at about
    /// [`PART_FILLS`] logs at that density. Only the first read of a start is small; sparse
    /// history goes straight back to the longest range (each read costs several paced calls).
    #[must_use]
    pub fn after_read(self, blocks: u64, logs: usize) -> Self {
        let target = PART_FILLS as u64;
        let fitting = match logs as u64 {
            0 => u64::MAX,
            n => blocks.max(1).saturating_mul(target) / n,
        };
        Self { blocks: fitting.min(self.ceiling).max(1), ..self }
    }

    /// After the node refused a read of `blocks` blocks: half of it (a provider may refuse a range
    /// for the size of its answer), at least one, and no read of this sync grows back to it.
    #[must_use]
    pub fn after_refusal(self, blocks: u64) -> Self {
        let half = (blocks / 2).max(1);
        Self { blocks: half, ceiling: half, max: self.max }
    }
}

/// What one range read brought: the fills to journal and our own funder's fills, checked against
/// one chain from `from` to `end`.
#[derive(Debug)]
pub struct RangeRead {
    /// First block.
    pub from: u64,
    /// Last block.
    pub to: u64,
    /// The last block as it was when the logs were read.
    pub end: BlockRef,
    /// Our targets' fills, in chain order.
    pub fills: Vec<TargetFill>,
    /// Our own funder's fills (they settle our orders, they are never copied).
    pub ours: Vec<TargetFill>,
    /// Logs the node returned.
    pub logs: usize,
}

/// What a range read needs from the feed, borrowed: the feed keeps journaling while it runs.
#[derive(Debug, Clone, Copy)]
pub struct RangeReader<'a> {
    /// The chain.
    pub rpc: &'a Rpc,
    /// Watched exchange contracts.
    pub exchanges: &'a [Address],
    /// Our own funder, if live.
    pub own: Option<Address>,
    /// Where an undecodable log is reported.
    pub notifier: &'a Addr<Notifier>,
    /// The chain's head when the sync began: the blocks near it, less `confirmations`, are read
    /// by hash.
    pub head: u64,
    /// The confirmations the feed waits for (ranges end that far below the head).
    pub confirmations: u64,
}

impl RangeReader<'_> {
    /// Reads the fills of the `watched` makers (the targets and our own funder) in `from..=to`,
    /// whose first block must follow the block hashed `parent`.
    ///
    /// # Errors
    /// [`ChainError::ChainMoved`] when the chain changed under the read (read it again), or the
    /// RPC's error.
    pub async fn read(self, watched: Vec<Address>, from: u64, to: u64, parent: B256) -> Result<RangeRead, ChainError> {
        let started = std::time::Instant::now();
        let first = self.rpc.block_required(from).await?;
        if first.parent != parent {
            // A reorg below us since the check: the next round finds the ancestor.
            return Err(ChainError::ChainMoved { from, to });
        }
        let end = if to == from { first } else { self.rpc.block_required(to).await? };
        let refused = |e| ChainError::LogsRefused { from, to, cause: Box::new(e) };
        // The range's blocks near the head are read by hash, the ones behind them by number.
        let near_head = first_by_hash(from, to, self.head.saturating_sub(self.confirmations));
        let mut logs = if near_head > from {
            self.logs(&watched, from, near_head - 1).await.map_err(refused)?
        } else {
            Vec::new()
        };
        if near_head <= to {
            logs.extend(self.logs_by_hash(&watched, near_head, first, end).await?);
        }
        let (ours, fills): (Vec<_>, Vec<_>) =
            self.decode(&logs, from, to).await?.into_iter().partition(|f| Some(f.wallet) == self.own);
        let end_after = self.rpc.block_required(to).await?;
        if end_after.hash != end.hash {
            return Err(ChainError::ChainMoved { from, to });
        }
        // Both ends still canonical, so is every block between them. The first block alone was
        // checked against the checkpoint before the read: a reorg of it and of the checkpoint's
        // block since would have the range's fills read from two chains, and the new chain's
        // below `from` never read.
        if to > from && self.rpc.block_required(from).await?.hash != first.hash {
            return Err(ChainError::ChainMoved { from, to });
        }
        if !logs.is_empty() {
            let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            debug!(from, to, logs = logs.len(), ms, "read range");
        }
        Ok(RangeRead { from, to, end, fills, ours, logs: logs.len() })
    }

    /// The logs of blocks `from..=end` (the few nearest the head; `first` is the range's first
    /// block), asked for by each block's hash (EIP-234). Near the head a provider's backends lag
    /// one another: asked by number, one that has not indexed a block yet answers "no logs" for
    /// it, and its fills would be passed over for good; asked by hash, it answers that it does not
    /// know the block. That answer is taken as the chain having moved under the read: read again
    /// after a short pause, and only a long run of them fails the endpoint over.
    async fn logs_by_hash(
        self,
        watched: &[Address],
        from: u64,
        first: BlockRef,
        end: BlockRef,
    ) -> Result<Vec<Log>, ChainError> {
        // The blocks between the two ends, looked up by number, must link from one end to the other
        // by their parent hashes: a lagging backend answering for one of them with a block a reorg
        // replaced would otherwise have its logs read by that hash, and the real block's fills
        // passed over for good (both ends are checked canonical after the read).
        let mut blocks = Vec::new();
        for n in from..=end.number {
            blocks.push(match n {
                n if n == first.number => first,
                n if n == end.number => end,
                n => self.rpc.block_required(n).await?,
            });
        }
        if !linked(&blocks) || (from == first.number + 1 && blocks.first().is_some_and(|b| b.parent != first.hash)) {
            debug!(from, to = end.number, "the blocks near the head do not link by their parents; reading again");
            return Err(ChainError::ChainMoved { from: first.number, to: end.number });
        }
        let mut out = Vec::new();
        for (n, hash) in blocks.iter().map(|b| (b.number, b.hash)) {
            for chunk in watched.chunks(TOPIC_CHUNK) {
                match self.rpc.logs(&fills_filter(self.exchanges, chunk).at_block_hash(hash)).await {
                    Ok(logs) => out.extend(logs),
                    Err(ChainError::Rpc { message, .. }) => {
                        debug!(block = n, %message, "the node does not have a block it just named; reading again");
                        return Err(ChainError::ChainMoved { from: first.number, to: end.number });
                    }
                    Err(e) => {
                        return Err(ChainError::LogsRefused { from: first.number, to: end.number, cause: Box::new(e) });
                    }
                }
            }
        }
        Ok(out)
    }

    async fn logs(self, watched: &[Address], from: u64, to: u64) -> Result<Vec<Log>, ChainError> {
        let mut out = Vec::new();
        for chunk in watched.chunks(TOPIC_CHUNK) {
            out.extend(self.rpc.logs(&fills_filter(self.exchanges, chunk).from_block(from).to_block(to)).await?);
        }
        Ok(out)
    }

    /// Decodes logs into fills, checking each log's block against the chain we are reading.
    async fn decode(self, logs: &[Log], from: u64, to: u64) -> Result<Vec<TargetFill>, ChainError> {
        let headers: BTreeMap<u64, BlockRef> = headers_for(self.rpc, logs, from, to).await?;
        let decoded = decode_logs(logs, &headers, from, to)?;
        for (tx, li, e) in decoded.undecodable {
            warn!(tx = %tx, log_index = li, cause = %e, "undecodable OrderFilled log skipped");
            self.notifier.do_send(Event::Error { message: format!("undecodable fill log {tx}:{li}: {e}") });
        }
        Ok(decoded.fills)
    }
}

/// Whether each of `blocks` (consecutive numbers) is the parent of the next.
fn linked(blocks: &[BlockRef]) -> bool {
    blocks.windows(2).all(|w| w[1].number == w[0].number + 1 && w[1].parent == w[0].hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_link_only_when_each_is_the_parent_of_the_next() {
        let b = |number: u64, hash: u8, parent: u8| BlockRef {
            number,
            hash: B256::repeat_byte(hash),
            parent: B256::repeat_byte(parent),
            timestamp: 0,
        };
        // (blocks, linked)
        let cases: [(Vec<BlockRef>, bool); 5] = [
            (vec![], true),
            (vec![b(5, 5, 4)], true),
            (vec![b(5, 5, 4), b(6, 6, 5), b(7, 7, 6)], true),
            // Block 6 answered by a backend that has not seen the reorg: its hash is not 7's parent.
            (vec![b(5, 5, 4), b(6, 0x66, 5), b(7, 7, 6)], false),
            (vec![b(5, 5, 4), b(7, 7, 5)], false),
        ];
        for (blocks, want) in cases {
            assert_eq!(linked(&blocks), want, "{blocks:?}");
        }
    }

    #[test]
    fn blocks_within_the_margin_of_the_safe_head_are_read_by_hash() {
        // (from, to, safe head, first block read by hash)
        for (from, to, safe, want) in [
            (100, 100, 100, 100),
            (99, 100, 100, 99),
            // A catch-up after an outage: every block of it, not only the last few.
            (91, 100, 100, 91),
            (60, 100, 100, 60),
            (700, 1_000, 1_000, 851),
            // A backfill far behind the head: by number only.
            (10, 50, 1_000, 51),
            (0, 5, 10, 0),
        ] {
            assert_eq!(first_by_hash(from, to, safe), want, "{from}..={to}, safe head {safe}");
        }
    }

    #[test]
    fn test_span_when_reads_come_back_then_aims_at_a_part_of_logs() {
        // (span before, blocks read, logs, max, span after)
        let cases: &[(u64, u64, usize, u64, u64)] = &[
            (4, 4, 0, 500, 500),         // empty: the longest range
            (400, 2, 0, 500, 500),       // empty: the longest range
            (4, 4, 800, 500, 5),         // 200 a block: five blocks make a part
            (8, 8, 1_600, 500, 5),       // the same, from above
            (4, 4, 10, 500, 400),        // 2.5 a block: 400 blocks make a part
            (64, 64, 10, 500, 500),      // sparser: capped at the maximum
            (5, 5, 50_000, 500, 1),      // denser than a part a block: one block
            (500, 500, 1_000, 500, 500), // exactly a part
            (1, 1, 0, 1, 1),             // a maximum of one block
        ];
        for &(before, blocks, logs, max, after) in cases {
            let span = Span { blocks: before, ceiling: max, max };
            assert_eq!(span.after_read(blocks, logs).blocks(), after, "{before} {blocks} {logs} {max}");
        }
    }

    #[test]
    fn test_span_when_a_range_is_refused_then_halves_and_stays_below_it_for_the_sync() {
        // (blocks refused, span after, span after an empty read)
        let cases: &[(u64, u64, u64)] = &[(500, 250, 250), (8, 4, 4), (3, 1, 1), (1, 1, 1)];
        for &(refused, after, grown) in cases {
            let span = Span { blocks: refused, ceiling: 500, max: 500 }.after_refusal(refused);
            assert_eq!(span.blocks(), after, "{refused}");
            assert_eq!(span.after_read(after, 0).blocks(), grown, "{refused}");
        }
        // The next sync may grow past it again.
        let span = Span { blocks: 8, ceiling: 500, max: 500 }.after_refusal(8).for_sync();
        assert_eq!(span.after_read(4, 0).blocks(), 500);
    }

    #[test]
    fn test_span_first_read_is_small_and_never_above_the_maximum() {
        assert_eq!(Span::new(500).blocks(), FIRST_SPAN);
        assert_eq!(Span::new(2).blocks(), 2);
        assert_eq!(Span::new(0).blocks(), 1);
    }
}
