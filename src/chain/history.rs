//! Reading fills from the chain's past: the `eth_getLogs` filter by maker, the headers a range of
//! logs needs, decoding those logs into fills, and finding blocks by time. Shared by the live feed
//! (its backfill) and `polycopy vet` (a wallet's history), so both read the chain the same way.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::{Address, B256};
use alloy::rpc::types::{Filter, Log};

use crate::chain::events::{
    DecodeError, ORDER_FILLED_V1, ORDER_FILLED_V2, RawLog, address_topic, assign_occurrences, decode_order_filled,
};
use crate::chain::rpc::{BlockRef, ChainError, Rpc};
use crate::domain::TargetFill;

/// `OrderFilled` logs of `exchanges` whose maker (topic 2) is one of `makers`.
#[must_use]
pub fn fills_filter(exchanges: &[Address], makers: &[Address]) -> Filter {
    Filter::new()
        .address(exchanges.to_vec())
        .event_signature(vec![ORDER_FILLED_V1, ORDER_FILLED_V2])
        .topic2(makers.iter().map(address_topic).collect::<Vec<B256>>())
}

/// The headers of every block in `from..=to` that holds one of `logs`, asked for at once (still
/// paced by the RPC client): one round trip, not one per block.
///
/// # Errors
/// On an RPC failure or a block the node does not have.
pub async fn headers_for(rpc: &Rpc, logs: &[Log], from: u64, to: u64) -> Result<BTreeMap<u64, BlockRef>, ChainError> {
    let wanted: BTreeSet<u64> =
        logs.iter().filter(|l| !l.removed).filter_map(|l| l.block_number).filter(|n| (from..=to).contains(n)).collect();
    let got = futures_util::future::try_join_all(wanted.iter().map(|n| rpc.block_required(*n))).await?;
    Ok(got.into_iter().map(|b| (b.number, b)).collect())
}

/// What a range of logs decoded into.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The fills, in chain order, occurrences numbered.
    pub fills: Vec<TargetFill>,
    /// Logs that did not decode: (transaction, log index, why).
    pub undecodable: Vec<(B256, u64, DecodeError)>,
}

/// Decodes the logs of `from..=to` into fills, checking each log's block hash against `headers`
/// (the chain we are reading): a log of another branch means the chain moved under us.
///
/// # Errors
/// [`ChainError::ChainMoved`] or [`ChainError::MissingBlock`]: read the range again.
pub fn decode_logs(logs: &[Log], headers: &BTreeMap<u64, BlockRef>, from: u64, to: u64) -> Result<Decoded, ChainError> {
    let mut out = Decoded { fills: Vec::with_capacity(logs.len()), undecodable: Vec::new() };
    let malformed = |why: &str| ChainError::MalformedLogs { from, to, why: why.to_owned() };
    // One log is one fill: an answer that repeats a log (load-balanced providers have) must not
    // make two copies of it, and one that says two things of one position is not believed.
    let mut seen: BTreeMap<(u64, u64), &Log> = BTreeMap::new();
    // A polled answer cannot report a removal: a log flagged removed (a provider in the middle of
    // a reorg, or lying) says the chain moved under us. Skipped, its fill would be lost as the
    // checkpoint moved past it: the range is read again.
    if logs.iter().any(|l| l.removed) {
        return Err(ChainError::ChainMoved { from, to });
    }
    for log in logs {
        // A mined range's log always says where it is: one that does not is read again, never
        // skipped (skipping it would lose its fill as the checkpoint moves on).
        let (Some(bn), Some(bh), Some(tx), Some(li)) =
            (log.block_number, log.block_hash, log.transaction_hash, log.log_index)
        else {
            return Err(malformed("a log without its block, transaction or index"));
        };
        if !(from..=to).contains(&bn) {
            continue;
        }
        match seen.insert((bn, li), log) {
            Some(earlier) if earlier == log => continue,
            Some(_) => return Err(malformed(&format!("two different logs at block {bn} index {li}"))),
            None => {}
        }
        let header = headers.get(&bn).copied().ok_or(ChainError::MissingBlock(bn))?;
        if header.hash != bh {
            return Err(ChainError::ChainMoved { from, to });
        }
        let raw = RawLog {
            address: log.address(),
            topics: log.topics(),
            data: &log.data().data,
            tx_hash: tx,
            block_number: bn,
            block_hash: bh,
            log_index: li,
            // The header's, checked by its hash: a log's own timestamp is the node's word only.
            block_ts: header.timestamp,
        };
        match decode_order_filled(&raw) {
            Ok(f) => out.fills.push(f),
            Err(e) => out.undecodable.push((tx, li, e)),
        }
    }
    out.fills.sort_by_key(|f| (f.block_number, f.log_index));
    assign_occurrences(&mut out.fills);
    Ok(out)
}

/// The fills of `makers` on `exchanges` in `from..=to`, read in one `eth_getLogs` (the caller
/// keeps the range within the node's limit). Block times come from the logs where the node puts
/// them there, else from the headers. For settled history only: the live feed checks each log's
/// block against the header it fetched.
///
/// # Errors
/// On an RPC failure, or when the chain moved while the range was read.
pub async fn read_fills(
    rpc: &Rpc,
    exchanges: &[Address],
    makers: &[Address],
    from: u64,
    to: u64,
) -> Result<Decoded, ChainError> {
    let logs = rpc.logs(&fills_filter(exchanges, makers).from_block(from).to_block(to)).await?;
    let headers = match stamped(&logs) {
        Some(h) => h,
        None => headers_for(rpc, &logs, from, to).await?,
    };
    decode_logs(&logs, &headers, from, to)
}

/// The blocks of `logs` as the logs themselves describe them, when every log carries its block's
/// time (nodes that implement `blockTimestamp` in logs): no header needs to be fetched.
fn stamped(logs: &[Log]) -> Option<BTreeMap<u64, BlockRef>> {
    let mut out = BTreeMap::new();
    for l in logs.iter().filter(|l| !l.removed) {
        let (number, hash, timestamp) = (l.block_number?, l.block_hash?, l.block_timestamp?);
        out.insert(number, BlockRef { number, hash, parent: B256::ZERO, timestamp });
    }
    Some(out)
}

/// The oldest block the node has a header for (0 on an archive node; a pruned or freshly started
/// node begins later). A binary search: about 30 paced calls.
///
/// # Errors
/// On an RPC failure.
pub async fn earliest_block(rpc: &Rpc, head: u64) -> Result<BlockRef, ChainError> {
    if let Some(b) = rpc.block(0).await? {
        return Ok(b);
    }
    // Invariant: `hi` exists, everything below `lo` does not.
    let (mut lo, mut hi) = (1, head);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if rpc.block(mid).await?.is_some() {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    rpc.block_required(hi).await
}

/// The first block in `lo..=hi` whose timestamp is at or after `ts` (seconds); `hi` when none is.
/// Block times only grow, so a binary search finds it.
///
/// # Errors
/// On an RPC failure or a missing block.
pub async fn first_block_at(rpc: &Rpc, mut lo: u64, mut hi: u64, ts: u64) -> Result<u64, ChainError> {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if rpc.block_required(mid).await?.timestamp >= ts {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{LogData, U256, address};

    const BLOCK: u64 = 7;
    const HASH: B256 = B256::repeat_byte(8);

    /// A V2 `OrderFilled` log of a BUY of `shares` whole shares at position `index` of block 7.
    fn fill_log(index: u64, shares: u64) -> Log {
        let maker = address!("1111111111111111111111111111111111111111");
        let taker = address!("2222222222222222222222222222222222222222");
        let topics = vec![ORDER_FILLED_V2, B256::repeat_byte(1), address_topic(&maker), address_topic(&taker)];
        let words = [0, 77, shares * 500_000, shares * 1_000_000, 0, 0, 0];
        let data: Vec<u8> = words.iter().flat_map(|w| U256::from(*w).to_be_bytes::<32>()).collect();
        Log {
            inner: alloy::primitives::Log {
                address: address!("E111180000d2663C0091e4f400237545B87B996B"),
                data: LogData::new_unchecked(topics, data.into()),
            },
            block_hash: Some(HASH),
            block_number: Some(BLOCK),
            // A node's own word on the time, which the header's (checked by its hash) overrides.
            block_timestamp: Some(1),
            transaction_hash: Some(B256::repeat_byte(9)),
            transaction_index: Some(0),
            log_index: Some(index),
            removed: false,
        }
    }

    fn headers() -> BTreeMap<u64, BlockRef> {
        BTreeMap::from([(BLOCK, BlockRef { number: BLOCK, hash: HASH, parent: B256::ZERO, timestamp: 1_700_000_000 })])
    }

    #[test]
    fn a_log_repeated_in_the_answer_is_one_fill_and_a_contradiction_is_read_again() {
        let no_index = Log { log_index: None, ..fill_log(3, 10) };
        // (the node's answer, the fills' shares, or an error)
        let cases: Vec<(Vec<Log>, Result<Vec<i64>, ()>, &str)> = vec![
            (vec![fill_log(3, 10), fill_log(4, 20)], Ok(vec![10_000_000, 20_000_000]), "two logs"),
            (vec![fill_log(3, 10), fill_log(3, 10)], Ok(vec![10_000_000]), "one log twice"),
            (
                vec![fill_log(3, 10), fill_log(4, 20), fill_log(3, 10)],
                Ok(vec![10_000_000, 20_000_000]),
                "repeated later",
            ),
            (vec![fill_log(3, 10), fill_log(3, 20)], Err(()), "two logs at one position"),
            (vec![fill_log(4, 20), no_index], Err(()), "a log without its index"),
        ];
        for (logs, want, why) in cases {
            match (decode_logs(&logs, &headers(), BLOCK, BLOCK), want) {
                (Ok(d), Ok(shares)) => {
                    assert_eq!(d.fills.iter().map(|f| f.shares.0).collect::<Vec<_>>(), shares, "{why}");
                    let occurrences: Vec<u32> = d.fills.iter().map(|f| f.id.occurrence).collect();
                    assert_eq!(occurrences, (0..u32::try_from(shares.len()).unwrap()).collect::<Vec<_>>(), "{why}");
                    assert!(d.fills.iter().all(|f| f.block_ts == 1_700_000_000), "{why}: the header's time");
                }
                (Err(ChainError::MalformedLogs { .. }), Err(())) => {}
                (got, want) => panic!("{why}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_polled_log_flagged_removed_makes_the_range_read_again_never_skipped() {
        let removed = Log { removed: true, ..fill_log(4, 20) };
        let got = decode_logs(&[fill_log(3, 10), removed], &headers(), BLOCK, BLOCK);
        assert!(matches!(got, Err(ChainError::ChainMoved { .. })), "{got:?}");
    }
}
